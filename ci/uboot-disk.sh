#!/usr/bin/env bash
# uboot-disk.sh IMAGE OUT.img [APPEND...]
#
# An SD card's boot partition as U-Boot's distro boot finds it: a DOS
# partition table with one bootable Linux partition at 1 MiB holding an ext2
# file system with /Image and /extlinux/extlinux.conf, whose append line
# (APPEND, the kernel's bootargs) U-Boot puts in /chosen/bootargs. Built on
# a plain file with sfdisk and `mke2fs -d` at the partition's offset: no
# loop device, no mount, no root.
set -eu
image=$1
out=$2
shift 2
append="$*"
part_start=2048                 # sectors: 1 MiB
part_mib=16
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

mkdir -p "$d/root/extlinux"
cp "$image" "$d/root/Image"
cat >"$d/root/extlinux/extlinux.conf" <<CONF
# extlinux.conf - read by U-Boot's distro boot (sysboot), which loads the
# Image and enters it with booti: a0 = hart id, a1 = the device tree.
default unikernel
timeout 0
label unikernel
	kernel /Image
	append $append
CONF
rm -f "$out"
truncate -s $(( (part_start / 2048 + part_mib) ))M "$out"
echo "start=$part_start, type=83, bootable" | sfdisk -q "$out" >/dev/null
mke2fs -q -F -t ext2 -L boot -d "$d/root" -E offset=$((part_start * 512)) "$out" ${part_mib}M
