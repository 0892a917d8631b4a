#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Prepare a Debian 12 machine to build and test the CXL-PNM stack. Install
# the build and VM packages, and fetch the guest kernel (image, headers,
# kbuild and a few files of its source) without installing it. Describe that
# kernel in BUILD/kernel.mk for the make fragments.
#
# Usage: setup.sh BUILD_DIR
#
# Idempotent: packages already installed are left alone, downloads and
# extracted trees are cached per kernel version under $PNM_KERNEL_CACHE
# (default BUILD_DIR/kernel) and reused.

set -euo pipefail

prog=${0##*/}
build=${1:?usage: $prog BUILD_DIR}
cache=${PNM_KERNEL_CACHE:-$build/kernel}

# Packages from bookworm. QEMU comes from bookworm-backports (see below).
packages=(
	build-essential make pkg-config
	ndctl daxctl libcxl-dev libdaxctl-dev liburing-dev
	busybox-static cpio xz-utils pahole kmod sparse
	python3-numpy python3-matplotlib libclang-rt-14-dev clang
)
# QEMU 7.2 (bookworm) lacks volatile CXL memory, so take 10.0 from backports.
qemu_pkg=qemu-system-x86
qemu_min_version=1:8.0
backports_list=/etc/apt/sources.list.d/bookworm-backports.sources
debian_list=/etc/apt/sources.list.d/debian.sources

# Files taken from linux-source-6.12 into KSRC, at their tree paths.
source_files=(
	drivers/dax/bus.h
	drivers/dax/dax-private.h
	tools/testing/selftests/kselftest_harness.h
	tools/testing/selftests/kselftest.h
	scripts/checkpatch.pl
	scripts/spelling.txt
	scripts/const_structs.checkpatch
	Documentation/userspace-api/ioctl/ioctl-number.rst
)

msg() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { msg "error: $*"; exit 1; }

apt_updated=0
apt_update() {
	[ "$apt_updated" = 1 ] && return
	msg "updating the apt package lists"
	apt-get update -qq || die "apt-get update failed"
	apt_updated=1
}

# True when the package lists are missing or older than a day, so that
# "the newest kernel" is resolved against current lists.
apt_lists_stale() {
	local fresh
	fresh=$(find /var/lib/apt/lists -maxdepth 1 -name '*InRelease' \
		-mmin -1440 2>/dev/null | head -n 1)
	[ -z "$fresh" ]
}

# Add bookworm-backports with the URI and keyring of debian.sources.
ensure_backports() {
	local uri keyring

	[ -f "$backports_list" ] && return
	[ -f "$debian_list" ] ||
		die "$debian_list not found: cannot derive the bookworm-backports source"
	uri=$(awk '/^URIs:/ { print $2; exit }' "$debian_list")
	keyring=$(awk '/^Signed-By:/ { print $2; exit }' "$debian_list")
	[ -n "$uri" ] || die "no URIs: line in $debian_list"
	msg "adding $backports_list ($uri)"
	{
		echo "Types: deb"
		echo "URIs: $uri"
		echo "Suites: bookworm-backports"
		echo "Components: main"
		[ -n "$keyring" ] && echo "Signed-By: $keyring"
	} >"$backports_list"
	apt_updated=0
	apt_update
}

installed_version() {
	dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null |
		awk '$1 == "installed" { print $2 }'
}

install_packages() {
	local missing=() pkg qemu_version

	for pkg in "${packages[@]}"; do
		[ -n "$(installed_version "$pkg")" ] || missing+=("$pkg")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		apt_update
		msg "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "${missing[@]}" >/dev/null ||
			die "apt-get install ${missing[*]} failed"
	fi

	qemu_version=$(installed_version "$qemu_pkg")
	if [ -z "$qemu_version" ] ||
	   dpkg --compare-versions "$qemu_version" lt "$qemu_min_version"; then
		apt_update
		msg "installing $qemu_pkg from bookworm-backports"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			-t bookworm-backports "$qemu_pkg" >/dev/null ||
			die "apt-get install -t bookworm-backports $qemu_pkg failed"
	fi
}

# Versions of package $1 known to apt, one a line.
versions_of() {
	apt-cache madison "$1" 2>/dev/null | awk -F' *[|] *' '{ print $2 }'
}

has_version() {
	versions_of "$1" | grep -qxF "$2"
}

# Find the newest Debian version V for which linux-source-6.12 and the
# image, headers, common headers and kbuild packages of one ABI all exist.
# Prints "V ABI_BASE" (ABI_BASE like 6.12.118+deb12).
resolve_kernel() {
	local version upstream name base

	for version in $(versions_of linux-source-6.12 | sort -u |
			 sort -r -V); do
		upstream=${version%%-*}
		for name in $(apt-cache pkgnames "linux-image-$upstream+" |
			      grep -E -- '-amd64-unsigned$' |
			      grep -v -E -- '-(cloud|rt)-amd64'); do
			base=${name#linux-image-}
			base=${base%-amd64-unsigned}
			has_version "$name" "$version" &&
			has_version "linux-headers-$base-amd64" "$version" &&
			has_version "linux-headers-$base-common" "$version" &&
			has_version "linux-kbuild-$base" "$version" &&
			{ echo "$version $base"; return 0; }
		done
	done
	return 1
}

# Download package $1 at version $2 into $3 unless it is cached there.
# Prints the .deb path.
fetch_deb() {
	local pkg=$1 version=$2 dir=$3 deb size

	# A download cut short leaves a truncated .deb: check its size.
	size=$(apt-cache show "$pkg=$version" 2>/dev/null |
		awk '/^Size:/ { print $2; exit }')
	deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
	if [ -n "$deb" ] && [ -n "$size" ] &&
	   [ "$(stat -c %s "$deb")" != "$size" ]; then
		msg "removing ${deb##*/}: size differs from the archive's $size bytes"
		rm -f "$deb"
		deb=
	fi
	if [ -z "$deb" ]; then
		msg "downloading $pkg $version"
		(cd "$dir" && apt-get download -qq \
			-o APT::Sandbox::User=root "$pkg=$version") >&2 ||
			die "apt-get download $pkg=$version failed"
		deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
		[ -n "$deb" ] || die "apt-get download left no .deb for $pkg"
	fi
	echo "$deb"
}

# Unpack image, headers and kbuild into one root: the headers tree links
# to the kbuild tree by relative symlinks, so they must share a root.
extract_kernel() {
	local root=$1 abi=$2; shift 2
	local deb makefile

	if [ ! -f "$root/.extracted" ]; then
		rm -rf "$root"
		mkdir -p "$root"
		for deb in "$@"; do
			msg "extracting ${deb##*/}"
			dpkg-deb -x "$deb" "$root"
		done
		touch "$root/.extracted"
	fi

	# The arch headers Makefile includes the common tree by absolute path.
	makefile=$root/usr/src/linux-headers-$abi/Makefile
	[ -f "$makefile" ] || die "$makefile missing after extraction"
	sed -i -E "s|^include (/usr/src/linux-headers-[^/]*-common/Makefile)$|include $root\\1|" \
		"$makefile"
	grep -q "^include $root/usr/src/" "$makefile" ||
		die "failed to repoint the include line of $makefile"
}

# Take the few files we need from the 144 MiB linux-source tarball,
# streaming it out of the .deb instead of unpacking it to disk.
extract_source() {
	local ksrc=$1 deb=$2 tarball members=() f

	for f in "${source_files[@]}"; do
		[ -f "$ksrc/$f" ] || members+=("linux-source-6.12/$f")
	done
	[ "${#members[@]}" -eq 0 ] && return
	tarball=./usr/src/linux-source-6.12.tar.xz
	msg "extracting ${#members[@]} files from ${deb##*/} (about 10 s)"
	mkdir -p "$ksrc"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "$tarball" |
		tar -xJ -C "$ksrc" --strip-components=1 "${members[@]}" ||
		die "failed to extract ${members[*]} from $deb"
}

# Build a trivial module against KDIR once per kernel version.
check_module_build() {
	local kdir=$1 stamp=$2 tmp

	[ -f "$stamp" ] && return
	msg "checking that an external module builds against $kdir"
	tmp=$(mktemp -d /tmp/pnm-setup-mod.XXXXXX)
	cat >"$tmp/hello.c" <<'MOD'
#include <linux/module.h>
static int __init hello_init(void) { return 0; }
static void __exit hello_exit(void) { }
module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MOD
	echo 'obj-m := hello.o' >"$tmp/Kbuild"
	if ! make -s -C "$kdir" M="$tmp" modules >"$tmp/log" 2>&1 ||
	   [ ! -f "$tmp/hello.ko" ]; then
		cat "$tmp/log" >&2
		rm -rf "$tmp"
		die "a trivial module failed to build against $kdir (log above)"
	fi
	rm -rf "$tmp"
	touch "$stamp"
}

write_kernel_mk() {
	local out=$build/kernel.mk
	local tmp=$out.tmp

	# With PNM_KERNEL_CACHE elsewhere, nothing has created BUILD_DIR yet.
	mkdir -p "$build"
	cat >"$tmp" <<MK
# Written by make setup (tools/setup/setup.sh); do not edit.
KVER := $kver
KABI := $kabi
KDIR := $kdir
KSRC := $ksrc
KIMAGE := $kimage
KMODULES := $kmodules
MK
	mv "$tmp" "$out"
	msg "wrote $out (kernel $kabi, Debian $kver)"
}

main() {
	local resolved base debdir root deb debs=() pkg

	[ "$(id -u)" -eq 0 ] ||
		die "must run as root (it installs packages with apt-get); try: sudo make setup"
	command -v apt-get >/dev/null || die "apt-get not found: this needs Debian 12"

	ensure_backports
	apt_lists_stale && apt_update
	install_packages

	resolved=$(resolve_kernel) ||
		die "no consistent kernel version set found: need linux-source-6.12," \
		    "linux-image-<v>-amd64-unsigned, linux-headers-<v>-amd64," \
		    "linux-headers-<v>-common and linux-kbuild-<v> of one Debian version" \
		    "(try apt-get update)"
	kver=${resolved% *}
	base=${resolved#* }
	kabi=$base-amd64
	msg "guest kernel: $kabi (Debian $kver)"

	debdir=$cache/$kver/debs
	root=$cache/$kver/root
	ksrc=$cache/$kver/src
	mkdir -p "$debdir"
	for pkg in "linux-image-$kabi-unsigned" "linux-headers-$kabi" \
		   "linux-headers-$base-common" "linux-kbuild-$base"; do
		debs+=("$(fetch_deb "$pkg" "$kver" "$debdir")")
	done
	deb=$(fetch_deb linux-source-6.12 "$kver" "$debdir")

	extract_kernel "$root" "$kabi" "${debs[@]}"
	extract_source "$ksrc" "$deb"

	kdir=$root/usr/src/linux-headers-$kabi
	kimage=$root/boot/vmlinuz-$kabi
	kmodules=$root/lib/modules/$kabi
	[ -f "$kimage" ] || die "$kimage missing after extraction"
	[ -d "$kmodules/kernel" ] || die "$kmodules missing after extraction"

	check_module_build "$kdir" "$cache/$kver/.module-build-ok"
	write_kernel_mk
}

main
