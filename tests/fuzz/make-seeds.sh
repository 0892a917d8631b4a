#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Write the seed corpus of exec_fuzz into directory $1: valid command
# chains (DIGEST, SELECT, ATTEND, SELECT_ATTEND over one stream) for each
# dtype, a few shapes, and one raw SQ entry.  The byte layout is the one
# LLVMFuzzerTestOneInput() and fuzz_structured() read in tests/fuzz/exec_fuzz.c.

set -euo pipefail
out=${1:?usage: make-seeds.sh DIR}
mkdir -p "$out"

# Bytes as a hex string ("0a 00 ff") to a file.
emit() {
	local file=$1 hex
	shift
	: >"$file"
	for hex in $*; do
		printf "\\x$hex" >>"$file"
	done
}

# Header: KV steps, fill mode, commands - 1, seed (4), tail offset (4),
# capabilities mode (0: the device's own).
header() { echo "$1 $2 03 2a 00 00 00 00 00 00 00 00"; }

# A structured command: form 1, then opcode, dtype, page shift index,
# group - 1, head_dim / 16, flags, odd, n_tokens (2), k, n_list,
# n_slots (2), start (2), four length deltas, table mode, list step.
cmd() {
	local op=$1 dtype=$2 shift_idx=$3 group=$4 hd=$5 tokens_lo=$6 tokens_hi=$7
	echo "01 $op $dtype $shift_idx $group $hd 03 00 $tokens_lo $tokens_hi 03 01 $8 $9 00 00 00 00 00 00 02 00"
}

n=0
for dtype in 00 01 02; do
	fill=$(( (3 - 10#$dtype) % 4 ))	# fp32: fill 3, fp16: 2, bf16: 1
	for shape in "02 03 04 64 00 0a 00" "00 00 01 ff 01 50 00" "06 07 08 00 02 05 00"; do
		set -- $shape
		chain="$(cmd 01 $dtype $1 $2 $3 $4 $5 $6 $7) $(cmd 02 $dtype $1 $2 $3 $4 $5 $6 $7)"
		chain="$chain $(cmd 03 $dtype $1 $2 $3 $4 $5 $6 $7) $(cmd 04 $dtype $1 $2 $3 $4 $5 $6 $7)"
		emit "$out/seed-$n" "$(header 08 0$fill) $chain"
		n=$((n + 1))
	done
done
# One raw SQ entry (form 0): a NOP with a reserved byte set.
emit "$out/seed-$n" "01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 07 \
$(printf '00 %.0s' $(seq 1 56))"
