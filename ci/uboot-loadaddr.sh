#!/usr/bin/env bash
# uboot-loadaddr.sh IMAGE ADDR OUT.elf [FDT]
#
# Wrap the boot Image, byte for byte, in an ELF whose one segment loads it
# at physical ADDR, for QEMU's -kernel: OpenSBI (fw_dynamic) then enters it
# at ADDR in S-mode with a0 = hart id and a1 = the FDT, as on a board whose
# loader put the Image there. (U-Boot's booti cannot test this: it moves any
# Image it finds in RAM to RAM base + text_offset, 0x80200000 on virt.)
#
# With FDT, a four-instruction shim at 0x80100000 is the entry instead: it
# replaces a1 before jumping to ADDR, to test how the kernel refuses a bad
# FDT pointer. FDT is "+N" (add N to the firmware's pointer) or an absolute
# address.
set -eu
image=$(realpath "$1")
addr=$2
out=$3
fdt=${4:-}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

{
	printf '\t.section .image, "ax"\n\t.incbin "%s"\n' "$image"
	if [ -n "$fdt" ]; then
		printf '\t.section .shim, "ax"\n\t.globl shim\nshim:\n'
		case $fdt in
		+*) printf '\tli t0, %s\n\tadd a1, a1, t0\n' "${fdt#+}" ;;
		*) printf '\tli a1, %s\n' "$fdt" ;;
		esac
		printf '\tli t0, %s\n\tjr t0\n' "$addr"
	fi
} >"$d/w.S"
entry=image_load
[ -n "$fdt" ] && entry=shim
cat >"$d/w.ld" <<LD
OUTPUT_ARCH(riscv)
ENTRY($entry)
SECTIONS {
	. = 0x80100000;
	.shim : { *(.shim) }
	. = $addr;
	image_load = .;
	.image : { *(.image) }
}
LD
riscv64-unknown-elf-gcc -c -o "$d/w.o" "$d/w.S"
riscv64-unknown-elf-ld --no-warn-rwx-segments -T "$d/w.ld" -o "$out" "$d/w.o"
