#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the base initramfs of the test VM: busybox, the guest init, and the
# CXL and device-DAX modules of the guest kernel with their dependencies,
# decompressed and indexed by depmod. The per-run files (/pnm) go into a
# second archive that qemu/pnm-vm appends, and the kernel unpacks both.
#
# Usage: mkinitramfs.sh KERNEL_MK GUEST_INIT OUTPUT

set -euo pipefail

prog=${0##*/}
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: $prog KERNEL_MK GUEST_INIT OUTPUT"
kernel_mk=$1
guest_init=$2
output=$3

# Modules the guest init loads. Their dependencies are added below.
# kmem is left out on purpose: CXL ram regions are flagged for kmem, and
# without it nothing claims the region's dax device before cxl_pnm does.
modules=(cxl_acpi cxl_pci cxl_mem dax_cxl device_dax)

[ -f "$kernel_mk" ] || die "$kernel_mk not found: run make setup first"
KABI=$(sed -n 's/^KABI := //p' "$kernel_mk")
KMODULES=$(sed -n 's/^KMODULES := //p' "$kernel_mk")
[ -d "$KMODULES/kernel" ] || die "$KMODULES: modules missing (run make setup again)"
busybox=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$busybox" 2>&1 | grep -q 'not a dynamic' ||
	die "$busybox is not static (apt-get install busybox-static)"

stage=$(mktemp -d /tmp/pnm-initramfs.XXXXXX)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,etc,lib/modules/"$KABI"}
cp "$busybox" "$stage/bin/busybox"
install -m 0755 "$guest_init" "$stage/init"
# The kernel opens /dev/console for init before devtmpfs is mounted.
if [ "$(id -u)" -eq 0 ]; then
	mknod -m 600 "$stage/dev/console" c 5 1
fi

# Path of module $1 in KMODULES ("-" and "_" are the same in module names).
module_path() {
	local pattern=${1//[-_]/[-_]}

	find "$KMODULES/kernel" -name "$pattern.ko*" -print -quit
}

declare -A seen=()
add_module() {
	local name=$1 path rel dest dep

	[ -n "${seen[$name]:-}" ] && return
	seen[$name]=1
	path=$(module_path "$name")
	if [ -z "$path" ]; then
		# Built into the kernel: nothing to copy.
		grep -q "/${name//[-_]/[-_]}.ko\$" "$KMODULES/modules.builtin" &&
			return
		die "module $name not found in $KMODULES"
	fi
	rel=${path#"$KMODULES"/}
	dest=$stage/lib/modules/$KABI/${rel%.xz}
	mkdir -p "${dest%/*}"
	case $path in
	*.xz) xz -dc "$path" >"$dest" ;;
	*.zst) zstd -qdc "$path" >"$dest" ;;
	*) cp "$path" "$dest" ;;
	esac
	for dep in $(modinfo -F depends "$path" | tr ',' ' '); do
		add_module "$dep"
	done
}

for m in "${modules[@]}"; do
	add_module "$m"
done
cp "$KMODULES"/modules.order "$KMODULES"/modules.builtin \
   "$KMODULES"/modules.builtin.modinfo "$stage/lib/modules/$KABI/"
depmod -b "$stage" "$KABI" || die "depmod failed for $KABI"

mkdir -p "$(dirname "$output")"
(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --quiet) >"$output.tmp.$$"
# A per-process temporary name: concurrent launchers may rebuild at once.
mv "$output.tmp.$$" "$output"
