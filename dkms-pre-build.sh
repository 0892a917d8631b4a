#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# DKMS PRE_BUILD step of cxl_pnm (dkms.conf): extract the dax bus's private
# headers for kernel $1 from the installed linux-source package into
# ./ksrc/drivers/dax.  Runs in the DKMS build directory.
#
# Usage: dkms-pre-build.sh KERNELRELEASE [SOURCE_TARBALL]

set -eu
die() { echo "cxl-pnm: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 KERNELRELEASE [SOURCE_TARBALL]"
krel=$1
# 6.12.118+deb12-amd64 -> 6.12
series=$(echo "$krel" | sed -n 's/^\([0-9]*\.[0-9]*\)\..*/\1/p')
[ -n "$series" ] || die "cannot read the kernel series from '$krel'"
tarball=${2:-/usr/src/linux-source-$series.tar.xz}
[ -f "$tarball" ] ||
	die "$tarball missing: apt-get install linux-source-$series (the dax bus headers drivers/dax/bus.h and dax-private.h come from it)"

# The private headers must match the kernel: compare Debian versions when
# dpkg knows both packages.
if command -v dpkg-query >/dev/null; then
	src_ver=$(dpkg-query -W -f '${Version}' "linux-source-$series" 2>/dev/null || true)
	img_ver=$(dpkg-query -W -f '${Version}' "linux-image-$krel" 2>/dev/null ||
		dpkg-query -W -f '${Version}' "linux-image-$krel-unsigned" 2>/dev/null || true)
	if [ -n "$src_ver" ] && [ -n "$img_ver" ] && [ "$src_ver" != "$img_ver" ]; then
		die "linux-source-$series is $src_ver but linux-image-$krel is $img_ver: install the matching linux-source-$series"
	fi
fi

mkdir -p ksrc
tar -xJf "$tarball" -C ksrc --strip-components=1 --wildcards \
	'*/drivers/dax/bus.h' '*/drivers/dax/dax-private.h'
[ -f ksrc/drivers/dax/bus.h ] && [ -f ksrc/drivers/dax/dax-private.h ] ||
	die "$tarball has no drivers/dax/bus.h or dax-private.h"
echo "cxl-pnm: dax bus headers of $series taken from $tarball"
