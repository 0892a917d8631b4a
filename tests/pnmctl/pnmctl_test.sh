#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Host tests of pnmctl: perf (table, CSV, JSON, plot, model checks),
# selftest over the direct transport against a pnm-device it starts, and
# the argument errors of every subcommand.  The driver-side subcommands
# (list, info, stats, bind, unbind, region) run for real in the VM
# (pnmctl_guest_test.sh); here they only meet a machine without cxl_pnm.
#
# Environment: PNMCTL and PNM_DEVICE (set by tests/pnmctl/build.mk).

set -u
# @TAP_INCLUDE@
PNMCTL=${PNMCTL:-@PNMCTL@}
PNM_DEVICE=${PNM_DEVICE:-@PNM_DEVICE@}
work=$(mktemp -d /tmp/pnmctl-test.XXXXXX)
mem=/dev/shm/pnmctl-test-$$
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work" "$mem"
}
trap cleanup EXIT

echo "TAP version 13"

check "usage lists every command" bash -c \
	"'$PNMCTL' --help | grep -c -E '^  (list|info|stats|bind|unbind|region|selftest|perf) ' | grep -qx 8"
check "unknown command is a usage error" \
	expect_fail 2 "'frobnicate' is not a command" "$PNMCTL" frobnicate

# perf: 3 models x 4 contexts x 3 modes by default.
check "perf prints 36 rows" bash -c \
	"'$PNMCTL' perf | grep -c -E '^llama-3.1-(8b|70b|405b) ' | grep -qx 36"
check "perf --csv writes a header and 36 rows" bash -c \
	"'$PNMCTL' perf --csv '$work/p.csv' >/dev/null &&
	 head -1 '$work/p.csv' | grep -q '^model,context,mode,' &&
	 [ \$(wc -l <'$work/p.csv') = 37 ]"
check "perf -j is JSON" bash -c \
	"'$PNMCTL' perf -j --model 8b --context 128K >'$work/p.json' &&
	 /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==3, d' '$work/p.json'"
# Model checks.  With the KV cache far larger than HBM, PNM-KV must not need
# GPU memory per sequence: its batch is bound by CXL memory only, and at
# least the baseline's.
check "perf: PNM-KV batch >= baseline batch, bound by CXL memory" bash -c \
	"'$PNMCTL' perf --csv '$work/m.csv' --model 8b --context 1M >/dev/null &&
	 awk -F, 'NR>1 {b[\$3]=\$6; l[\$3]=\$7} END {exit !(b[\"pnm-kv\"] >= b[\"baseline\"] && l[\"pnm-kv\"] == \"CXL memory\")}' '$work/m.csv'"
check "perf: more devices never lower PNM-KV throughput" bash -c \
	"'$PNMCTL' perf -j --model 70b --context 512K --devices 4 | grep -A8 '\"pnm-kv\"' | sed -n 's/.*tokens_per_s\":\\(.*\\),/\\1/p' >'$work/a' &&
	 '$PNMCTL' perf -j --model 70b --context 512K --devices 16 | grep -A8 '\"pnm-kv\"' | sed -n 's/.*tokens_per_s\":\\(.*\\),/\\1/p' >'$work/b' &&
	 awk -v a=\"\$(cat '$work/a')\" -v b=\"\$(cat '$work/b')\" 'BEGIN {exit !(b+0 >= a+0 && a+0 > 0)}'"
check "perf: a batch that does not fit is reported" bash -c \
	"'$PNMCTL' perf --model 405b --context 1M --batch 100000 --max-batch 1000000 | grep -q 'does not fit'"
check "perf custom model" bash -c \
	"'$PNMCTL' perf --model custom --layers 4 --q-heads 8 --kv-heads 2 --head-dim 64 --params 1e9 --context 64K | grep -c '^custom ' | grep -qx 3"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
	check "perf --plot writes a PNG" bash -c \
		"'$PNMCTL' perf --plot '$work/p.png' >/dev/null &&
		 head -c 8 '$work/p.png' | od -An -c | grep -q 'P   N   G'"
else
	skip "perf --plot writes a PNG" "no python3-matplotlib"
fi
check "perf: bad --context names the value" \
	expect_fail 2 "--context '0x': expected a number" "$PNMCTL" perf --context 0x
check "perf: unknown --model" \
	expect_fail 2 "--model 'gpt5': not a built-in model" "$PNMCTL" perf --model gpt5
check "perf: custom model without its shape" \
	expect_fail 2 "--model custom needs" "$PNMCTL" perf --model custom
check "perf: bad --gpu" \
	expect_fail 2 "--gpu 'a100': expected h100 or h200" "$PNMCTL" perf --gpu a100
check "perf: --hit-rate above 1" \
	expect_fail 2 "--hit-rate '2': expected a number from 0 to 1" "$PNMCTL" perf --hit-rate 2

# selftest against a device model through the direct transport.
"$PNM_DEVICE" --mem "$mem" --size 64M 2>"$work/device.log" &
pid=$!
for _ in $(seq 100); do
	grep -q "ready" "$work/device.log" && break
	sleep 0.1
done
check "pnm-device ready" grep -q "pnm-device: ready $mem" "$work/device.log"
check "selftest direct: PASS" bash -c \
	"'$PNMCTL' selftest -v 'direct:$mem' >'$work/st' 2>&1; s=\$?; cat '$work/st';
	 [ \$s = 0 ] && grep -q '^PASS nop' '$work/st' && grep -q '^PASS digest' '$work/st' &&
	 grep -q '^PASS select_attend' '$work/st' && grep -q 'selftest PASS (3 of 3' '$work/st'"
check "selftest -v prints its steps" grep -q "SELECT_ATTEND, k 6 of 13 pages" "$work/st"
kill "$pid"
wait "$pid"
pid=
check "selftest on a missing backing file fails" \
	expect_fail 1 "selftest FAIL" "$PNMCTL" selftest "direct:$mem.missing"
check "selftest without a device is a usage error" \
	expect_fail 2 "selftest: name one device" "$PNMCTL" selftest

# Driver-side subcommands on a machine without cxl_pnm or with bad names.
check "list -j without devices is an empty array" bash -c \
	"[ -d /sys/class/cxl_pnm ] || [ \"\$('$PNMCTL' list -j | tr -d ' \n')\" = '[]' ]"
check "info: bad name" expect_fail 1 "'nvme0' is not a device name" "$PNMCTL" info nvme0
check "info: no argument" expect_fail 2 "info: name one device" "$PNMCTL" info
check "info: missing device says what to do" \
	expect_fail 1 "pnm97: no such device" "$PNMCTL" info pnm97
check "stats: missing device" expect_fail 1 "pnm97: no such device" "$PNMCTL" stats pnm97
check "bind: bad dax name" \
	expect_fail 1 "'dax0' is not a dax device name" "$PNMCTL" bind dax0
check "bind: missing dax device" \
	expect_fail 1 "dax97.0: no such dax device" "$PNMCTL" bind dax97.0
check "unbind: missing dax device" \
	expect_fail 1 "dax97.0: no such dax device" "$PNMCTL" unbind dax97.0
check "region: no verb" expect_fail 2 "expected 'create' or 'destroy'" "$PNMCTL" region
check "region create: neither -m nor -a" \
	expect_fail 2 "name memdevs with -m memN" "$PNMCTL" region create
check "region create: both -m and -a" \
	expect_fail 2 "name memdevs with -m memN" "$PNMCTL" region create -a -m mem0
check "region destroy: no region" \
	expect_fail 2 "region destroy: name a region" "$PNMCTL" region destroy
tap_done
