#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run every test program of the CXL-PNM stack and count TAP results.
#
# Host programs: $TESTBIN/host/* and their sanitizer builds in
# $BUILD/san/tests/host/*. Guest programs: $BUILD/guest/tests/*, then
# $BUILD/guest/faults/*, run in one VM boot (qemu/pnm-vm) as /pnm/tests/*
# and /pnm/faults/*; the guest's kernel log is checked last (dmesg_clean).
#
# Counting: "ok N ..." passed, "ok N ... # SKIP" skipped, "not ok N ..."
# failed. A program that exits non-zero without a "not ok" line, dies of a
# signal or times out, and a VM that fails or times out, each count as one
# failure more. A kselftest (a guest program built from tests/kselftest/)
# must run for real: its skips are printed as skipped but fail the run.
# The last line is "N passed, N failed[, N skipped]".
#
# Environment: BUILD, TESTBIN, HOST_TEST_TIMEOUT (s, default 600),
# GUEST_TEST_TIMEOUT (s, default 900), VM_TIMEOUT (s, default 2700),
# VM_DEVICES (default 4), VERBOSE=1 to print every program's full output.

set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
TESTBIN=${TESTBIN:-$BUILD/tests}
HOST_TEST_TIMEOUT=${HOST_TEST_TIMEOUT:-600}
GUEST_TEST_TIMEOUT=${GUEST_TEST_TIMEOUT:-900}
VM_TIMEOUT=${VM_TIMEOUT:-2700}
VM_DEVICES=${VM_DEVICES:-4}
VERBOSE=${VERBOSE:-0}
readonly KSFT_SKIP=4

total_pass=0
total_fail=0
total_skip=0
kselftest_skips=0
failed_names=()

workdir=$(mktemp -d /tmp/pnm-check.XXXXXX)
trap 'rm -rf "$workdir"' EXIT

# Count the TAP lines of output file $1 into tap_pass, tap_fail, tap_skip.
count_tap() {
	read -r tap_pass tap_fail tap_skip < <(awk '
		/^[ \t]*not ok [0-9]+/ { fail++; next }
		/^[ \t]*ok [0-9]+/ {
			if ($0 ~ /#[ \t]*[Ss][Kk][Ii][Pp]/) skip++; else pass++
		}
		END { printf "%d %d %d\n", pass, fail, skip }' "$1")
}

# Fold the result of one program into the totals and print its summary.
# $1 name, $2 exit status, $3 output file, $4 "kselftest" or "", $5 extra
# failure reason (timeout) or "".
record() {
	local name=$1 status=$2 out=$3 kind=$4 reason=$5 extra=0 verdict why=

	count_tap "$out"
	if [ -n "$reason" ]; then
		why=$reason
	elif [ "$status" -gt 128 ]; then
		why="killed by signal $((status - 128))"
	elif [ "$status" -eq "$KSFT_SKIP" ] && [ "$tap_fail" -eq 0 ]; then
		# Skipped as a whole: count it once if it printed no result.
		[ $((tap_pass + tap_skip)) -eq 0 ] && tap_skip=1
	elif [ "$status" -ne 0 ] && [ "$tap_fail" -eq 0 ]; then
		why="exit status $status without a failed test"
	fi
	[ -n "$why" ] && extra=1

	total_pass=$((total_pass + tap_pass))
	total_fail=$((total_fail + tap_fail + extra))
	total_skip=$((total_skip + tap_skip))
	if [ "$kind" = kselftest ]; then
		kselftest_skips=$((kselftest_skips + tap_skip))
	fi

	if [ $((tap_fail + extra)) -gt 0 ]; then
		verdict=FAIL
		failed_names+=("$name")
	elif [ "$tap_skip" -gt 0 ] && [ "$kind" = kselftest ]; then
		verdict=FAIL
		failed_names+=("$name (kselftest skipped)")
	elif [ "$tap_pass" -eq 0 ] && [ "$tap_skip" -gt 0 ]; then
		verdict=SKIP
	else
		verdict=PASS
	fi
	if [ "$verdict" = FAIL ] || [ "$VERBOSE" = 1 ]; then
		sed "s|^|    |" "$out"
	fi
	printf '%s %s: %d passed, %d failed, %d skipped%s\n' "$verdict" "$name" \
		"$tap_pass" "$tap_fail" "$tap_skip" "${why:+ ($why)}"
}

run_host_dir() {
	local dir=$1 label=$2 prog out status reason

	[ -d "$dir" ] || return 0
	for prog in "$dir"/*; do
		[ -f "$prog" ] && [ -x "$prog" ] || continue
		out=$workdir/out
		reason=
		# The outer subshell keeps bash's own "Segmentation fault"
		# notice out of the report; record() names the signal.
		( (cd "$workdir" && timeout -k 10 "$HOST_TEST_TIMEOUT" "$prog") \
			</dev/null >"$out" 2>&1 ) 2>/dev/null
		status=$?
		if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
			reason="timed out after ${HOST_TEST_TIMEOUT}s"
		fi
		record "$label/${prog##*/}" "$status" "$out" "" "$reason"
	done
}

is_kselftest() {
	[ -f "$TOP/tests/kselftest/$1.c" ]
}

# Guest-side script: runs every program of /pnm/tests, then those of
# /pnm/faults (they kill a device and unload cxl_pnm, so they come last),
# between marker lines.  Then the pseudo-test dmesg_clean fails if the
# kernel logged a warning splat, BUG, oops, lockdep, KASAN or UBSAN report
# or a hung task during the run, and prints those lines.  If any program
# failed, it also prints the kernel's warnings and errors logged since the
# tests started (the boot's own warnings are always there and say nothing).
guest_script='
failed=0
boot_lines=$(dmesg | wc -l)
for t in /pnm/tests/* /pnm/faults/*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	echo "pnm-test: begin ${t##*/}"
	timeout '"$GUEST_TEST_TIMEOUT"' "$t" </dev/null 2>&1
	status=$?
	echo "pnm-test: end ${t##*/} status $status"
	[ "$status" = 0 ] || failed=1
done
echo "pnm-test: begin dmesg_clean"
bad=$(dmesg | grep -E "WARNING:|BUG:|Oops|lockdep|INFO: possible|general protection|KASAN:|UBSAN:|blocked for more than")
status=0
if [ -n "$bad" ]; then
	echo "$bad" | sed "s/^/# /"
	echo "not ok 1 dmesg_clean"
	status=1
	failed=1
else
	echo "ok 1 dmesg_clean"
fi
echo "pnm-test: end dmesg_clean status $status"
if [ "$failed" = 1 ]; then
	echo "pnm-test: kernel log"
	dmesg -r | tail -n +$((boot_lines + 1)) | grep "^<[0-4]>" | tail -n 60
fi
exit 0
'

run_guest_tests() {
	local dir=$BUILD/guest/tests console=$workdir/console vm_status
	local name status kind line out=$workdir/out current=

	[ -d "$dir" ] && [ -n "$(find "$dir" -maxdepth 1 -type f -perm -u+x)" ] ||
		return 0
	echo "Booting the VM ($VM_DEVICES devices) for the guest tests"
	BUILD=$BUILD "$TOP/qemu/pnm-vm" --devices "$VM_DEVICES" \
		--timeout "$VM_TIMEOUT" -- sh -c "$guest_script" >"$console"
	vm_status=$?

	while IFS= read -r line; do
		case $line in
		"pnm-test: begin "*)
			current=${line#pnm-test: begin }
			: >"$out"
			;;
		"pnm-test: end "*)
			name=${line#pnm-test: end }
			status=${name##* status }
			name=${name% status *}
			kind=
			is_kselftest "$name" && kind=kselftest
			reason=
			# busybox timeout returns the status of the killed
			# program: 143 (SIGTERM).
			[ "$status" = 143 ] &&
				reason="killed by SIGTERM, probably the ${GUEST_TEST_TIMEOUT}s limit"
			record "vm/$name" "$status" "$out" "$kind" "$reason"
			current=
			;;
		"pnm-test: kernel log")
			current=dmesg
			echo "Guest kernel warnings and errors (tests failed):"
			;;
		*)
			if [ "$current" = dmesg ]; then
				echo "    $line"
			elif [ -n "$current" ]; then
				printf '%s\n' "$line" >>"$out"
			fi
			;;
		esac
	done <"$console"

	if [ -n "$current" ] && [ "$current" != dmesg ]; then
		kind=
		is_kselftest "$current" && kind=kselftest
		record "vm/$current" 1 "$out" "$kind" \
			"the VM stopped while it ran (qemu/pnm-vm status $vm_status)"
	elif [ "$vm_status" -ne 0 ]; then
		total_fail=$((total_fail + 1))
		failed_names+=("vm")
		echo "FAIL vm: qemu/pnm-vm exited with status $vm_status (see its message above)"
	fi
}

main() {
	run_host_dir "$TESTBIN/host" host
	run_host_dir "$BUILD/san/tests/host" san
	run_guest_tests

	if [ $((total_pass + total_fail + total_skip)) -eq 0 ]; then
		echo "no test program found in $TESTBIN/host, $BUILD/san/tests/host or $BUILD/guest/tests"
		total_fail=1
	fi
	if [ "${#failed_names[@]}" -gt 0 ]; then
		echo "Failed: ${failed_names[*]}"
	fi
	if [ "$kselftest_skips" -gt 0 ]; then
		echo "$kselftest_skips kselftest(s) skipped: the kselftests must run in the VM, so this run fails"
	fi
	if [ "$total_skip" -gt 0 ]; then
		echo "$total_pass passed, $total_fail failed, $total_skip skipped"
	else
		echo "$total_pass passed, $total_fail failed"
	fi
	[ "$total_fail" -eq 0 ] && [ "$kselftest_skips" -eq 0 ]
}

main
