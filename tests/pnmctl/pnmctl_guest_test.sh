#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# pnmctl against the real driver, in the test VM (/pnm/tests/pnmctl_test):
# list, info, stats, selftest, then the last device goes through unbind,
# region destroy, region create and bind, and must come back under the same
# /dev/cxl/pnmN name and pass its selftest, so the tests after this one
# find the VM as the guest init left it.

PNMCTL=/pnm/bin/pnmctl
# @TAP_INCLUDE@

echo "TAP version 13"
last=$(ls /sys/class/cxl_pnm | sort -V | tail -n 1)
n_devs=$(ls /sys/class/cxl_pnm | wc -l)
check "a device is bound" [ -n "$last" ]

check "list shows every device" sh -c \
	"[ \$($PNMCTL list | grep -c '^pnm[0-9]') = $n_devs ]"
check "list -j names dax, region and memdev" sh -c \
	"$PNMCTL list -j | grep -q '\"dev\":\"$last\"' &&
	 $PNMCTL list -j | grep -q '\"region\":\"region' &&
	 $PNMCTL list -j | grep -q '\"memdev\":\"mem'"
check "list -D shows the dax devices bound to cxl_pnm" sh -c \
	"$PNMCTL list -D | grep -E -q '^dax[0-9.]+ +cxl_pnm '"
check "info: live, geometry from sysfs" sh -c \
	"$PNMCTL info $last | grep -q '^state  *live' &&
	 [ \"\$($PNMCTL info $last | sed -n 's/^kv_size  *//p')\" = \"\$(cat /sys/class/cxl_pnm/$last/kv_size)\" ]"
dax=$(basename "$(readlink /sys/class/cxl_pnm/$last/device)")
region=$($PNMCTL info -j "$last" | sed -n 's/.*"region":"\(region[0-9]*\)".*/\1/p')
memdev=$($PNMCTL info -j "$last" | sed -n 's/.*"memdev":"\(mem[0-9]*\)".*/\1/p')
check "info -j names $dax, $region, $memdev" \
	[ -n "$dax" ] && [ -n "$region" ] && [ -n "$memdev" ]
before=$(cat /sys/class/cxl_pnm/$last/cmds_completed)
check "selftest $last" sh -c "$PNMCTL selftest $last | grep -q 'selftest PASS'"
check "stats count the selftest's commands" sh -c \
	"[ \$($PNMCTL stats -j $last | sed -n 's/.*\"cmds_completed\":\([0-9]*\).*/\1/p') -ge \$(($before + 3)) ]"
check "bind of a bound device says so" sh -c \
	"$PNMCTL bind $dax | grep -q 'already bound to cxl_pnm as $last'"
check "info of a dax device says what to do" \
	expect_fail 1 "$dax: a dax device; name its pnm device" $PNMCTL info "$dax"
check "region destroy refuses a bound region" \
	expect_fail 1 "run 'pnmctl unbind $dax' first" $PNMCTL region destroy "$region"

check "unbind $last" sh -c \
	"$PNMCTL unbind -v $last 2>&1 | grep -q 'unbound from cxl_pnm (was $last)' &&
	 [ ! -e /sys/class/cxl_pnm/$last ] && [ ! -e /dev/cxl/$last ]"
check "info of the unbound device fails" \
	expect_fail 1 "$last: no such device" $PNMCTL info "$last"
check "unbind twice fails" \
	expect_fail 1 "$dax: not bound to cxl_pnm" $PNMCTL unbind "$dax"
check "bind $dax again" sh -c \
	"$PNMCTL bind -v $dax 2>&1 | grep -q 'bound to cxl_pnm as $last' && [ -e /dev/cxl/$last ]"
check "unbind $dax for the region test" $PNMCTL unbind "$dax"
check "region destroy $region" sh -c \
	"$PNMCTL region destroy -v $region && [ ! -e /sys/bus/cxl/devices/$region ]"
check "region create -m $memdev -b" sh -c \
	"$PNMCTL region create -v -b -m $memdev > /tmp/rc.out 2>&1; s=\$?; cat /tmp/rc.out; [ \$s = 0 ] &&
	 grep -q '^$memdev: region[0-9]* ([0-9]* MiB) -> dax[0-9.]*' /tmp/rc.out &&
	 grep -q 'bound to cxl_pnm as $last' /tmp/rc.out"
check "region create of a used memdev says what to do" \
	expect_fail 1 "$memdev: its endpoint decoder .* is already in use" \
	$PNMCTL region create -m "$memdev"
check "region create -a with every memdev in use" \
	expect_fail 1 "no CXL memdev without a region" $PNMCTL region create -a
check "$last is back and passes its selftest" sh -c \
	"[ -e /dev/cxl/$last ] && $PNMCTL selftest $last | grep -q 'selftest PASS'"
check "all $n_devs devices are bound again" sh -c \
	"[ \$(ls /sys/class/cxl_pnm | wc -l) = $n_devs ]"
tap_done
