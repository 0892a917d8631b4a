#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# run-fuzz.sh FUZZER OUTDIR SECONDS: fuzz the device model's executor for
# SECONDS from the corpus in OUTDIR/corpus and the seeds in OUTDIR/seeds,
# and report one TAP result: "ok 1 exec_fuzz 60s N runs" or "not ok 1 ...".
# A failing input is kept as OUTDIR/crash-* (or timeout-*, oom-*); rerun
# it with "FUZZER INPUT".

set -uo pipefail
fuzzer=${1:?usage: run-fuzz.sh FUZZER OUTDIR SECONDS}
outdir=${2:?usage: run-fuzz.sh FUZZER OUTDIR SECONDS}
seconds=${3:?usage: run-fuzz.sh FUZZER OUTDIR SECONDS}
log=$(mktemp /tmp/exec-fuzz.XXXXXX)
trap 'rm -f "$log"' EXIT

echo "1..1"
mkdir -p "$outdir/corpus"
# -timeout: one input may take at most 10 s (inputs take milliseconds);
# -rss_limit_mb: the executor's scratch memory is bounded by the 1 MiB
# image, so 2 GiB only catches a runaway.
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$outdir/" \
	"$outdir/corpus" "$outdir/seeds" >"$log" 2>&1
status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
corpus=$(find "$outdir/corpus" -type f | wc -l)
if [ "$status" -eq 0 ] && [ -n "$runs" ]; then
	grep '^exec_fuzz: config' "$log" | sed 's/^/# /'
	echo "# corpus: $corpus inputs"
	echo "ok 1 exec_fuzz ${seconds}s $runs runs"
	exit 0
fi
tail -n 60 "$log" | sed 's/^/# /'
echo "not ok 1 exec_fuzz ${seconds}s: fuzzer exit status $status, ${runs:-?} runs"
exit 1
