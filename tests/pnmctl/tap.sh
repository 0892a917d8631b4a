# SPDX-License-Identifier: GPL-2.0-only
#
# TAP helpers for the pnmctl test scripts (bash on the host, busybox sh in
# the VM): ok/not ok lines as the kselftest harness prints them.

tap_n=0
tap_failed=0

# check NAME COMMAND...: one test, passed when COMMAND succeeds.  Its output
# is kept in $out for later checks and shown on failure.
check() {
	local name=$1

	shift
	tap_n=$((tap_n + 1))
	if out=$("$@" 2>&1); then
		echo "ok $tap_n $name"
	else
		echo "not ok $tap_n $name"
		echo "$out" | sed 's/^/# /'
		tap_failed=$((tap_failed + 1))
	fi
}

skip() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n $1 # SKIP $2"
}

# expect_fail STATUS PATTERN COMMAND...: exit status STATUS and a message
# matching PATTERN (grep -E) on stdout or stderr.
expect_fail() {
	local want=$1 pattern=$2 got

	shift 2
	got=0
	out=$("$@" 2>&1) || got=$?
	if [ "$got" != "$want" ]; then
		echo "exit status $got, expected $want: $out"
		return 1
	fi
	echo "$out" | grep -Eq -- "$pattern" || {
		echo "no message matching '$pattern' in: $out"
		return 1
	}
}

tap_done() {
	echo "# $tap_n tests, $tap_failed failed"
	[ "$tap_failed" = 0 ]
}
