#!/usr/bin/env bash
# uboot-disk.sh IMAGE OUT.img [APPEND...]
# INITRD=FILE in the environment adds /initrd and an extlinux initrd line
# (U-Boot loads it and puts its range in /chosen linux,initrd-start/end).
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
if [ -n "${INITRD:-}" ]; then cp "$INITRD" "$d/root/initrd"; fi
# No bootargs, no append line: U-Boot 2023.01 (Debian 12) faults parsing an
# `append` with nothing after it ("Expected string literal", then a load
# access fault); without the line the kernel's default, run=demo, applies.
{
	echo "# extlinux.conf - read by U-Boot's distro boot (sysboot), which loads the"
	echo "# Image and enters it with booti: a0 = hart id, a1 = the device tree."
	echo "default unikernel"
	echo "timeout 0"
	echo "label unikernel"
	printf '\tkernel /Image\n'
	if [ -n "${INITRD:-}" ]; then printf '\tinitrd /initrd\n'; fi
	if [ -n "$append" ]; then printf '\tappend %s\n' "$append"; fi
} >"$d/root/extlinux/extlinux.conf"
rm -f "$out"
truncate -s $(( (part_start / 2048 + part_mib) ))M "$out"
echo "start=$part_start, type=83, bootable" | sfdisk -q "$out" >/dev/null
mke2fs -q -F -t ext2 -L boot -d "$d/root" -E offset=$((part_start * 512)) "$out" ${part_mib}M
