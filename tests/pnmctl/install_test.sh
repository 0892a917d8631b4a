#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# `make install DESTDIR=...` into a scratch tree, then build examples/ with
# `pkg-config --cflags --libs libpnm` against that tree and run the example
# on a pnm-device it starts (direct transport), against the installed
# libpnm.so.1.
#
# Environment: TOP, BUILD, PNM_DEVICE (set by tests/pnmctl/build.mk).

set -u
# @TAP_INCLUDE@
TOP=${TOP:-@TOP@}
BUILD=${BUILD:-@BUILD@}
PNM_DEVICE=${PNM_DEVICE:-@PNM_DEVICE@}
work=$(mktemp -d /tmp/pnm-install-test.XXXXXX)
dest=$work/root
prefix=/usr/local
mem=/dev/shm/pnm-install-test-$$
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work" "$mem"
}
trap cleanup EXIT

echo "TAP version 13"
check "make install DESTDIR" \
	make -s -C "$TOP" O="$BUILD" install DESTDIR="$dest" PREFIX="$prefix"
lib=$dest$prefix/lib
check "libpnm.so.1 soname and symlinks" bash -c \
	"[ \"\$(readlink '$lib/libpnm.so')\" = libpnm.so.1 ] &&
	 [ \"\$(readlink '$lib/libpnm.so.1')\" = libpnm.so.1.0.0 ] &&
	 readelf -d '$lib/libpnm.so.1.0.0' | grep -q 'SONAME.*\\[libpnm.so.1\\]' &&
	 [ -f '$lib/libpnm.a' ]"
check "headers, tools, man page" bash -c \
	"cd '$dest$prefix' && ls include/pnm/pnm.h include/pnm/kvcache.h include/pnm/pnm_ref.h \
	 include/pnm/linux/cxl_pnm.h bin/pnmctl bin/pnm-demo bin/pnm-accuracy \
	 share/man/man1/pnmctl.1 share/pnmctl/perf-plot.py"
check "man page renders" bash -c \
	"MANWIDTH=80 man -l '$dest$prefix/share/man/man1/pnmctl.1' 2>&1 | grep -q 'pnmctl - list, bind'"

export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
check "pkg-config finds libpnm in the staged tree" bash -c \
	"pkg-config --cflags --libs libpnm | grep -q -- '-I$dest$prefix/include/pnm' &&
	 pkg-config --modversion libpnm | grep -qx 1.0.0"
check "example builds with pkg-config" \
	make -s -C "$TOP/examples" O="$work"
check "example links the installed libpnm.so.1" bash -c \
	"LD_LIBRARY_PATH='$lib' ldd '$work/pnm-hello' | grep -q 'libpnm.so.1 => $lib/libpnm.so.1'"

"$PNM_DEVICE" --mem "$mem" --size 64M 2>"$work/device.log" &
pid=$!
for _ in $(seq 100); do
	grep -q "ready" "$work/device.log" && break
	sleep 0.1
done
check "example runs on a device model" bash -c \
	"LD_LIBRARY_PATH='$lib' '$work/pnm-hello' 'direct:$mem' >'$work/out' 2>&1; s=\$?; cat '$work/out';
	 [ \$s = 0 ] && grep -q '^nop: ok' '$work/out' && grep -q 'matches the CPU reference' '$work/out'"
check "installed pnmctl selftest" \
	"$dest$prefix/bin/pnmctl" selftest "direct:$mem"
tap_done
