#!/usr/bin/env bash
# check.sh DTBINFO ORACLE OUTDIR - differential and rejection tests of the
# device tree parser.
#
# 1. Builds a corpus in OUTDIR: QEMU's own device trees (virt with several
#    -smp/-m values, two NUMA nodes, an initrd and bootargs; sifive_u with 5
#    harts) and the valid tests/fdt/*.dts compiled with dtc. On each blob,
#    dtbinfo (our parser) must print exactly what fdt_oracle (libfdt) prints.
# 2. Malformed blobs (dtc from tests/fdt/bad-*.dts, and binary patches of a
#    valid blob made with printf/dd/head): dtbinfo must exit 1 with exactly
#    one line "dtbinfo: FILE: reason" on stderr, the reason naming the
#    problem. A crash (ASan aborts, signals) fails the check.
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -u
dtbinfo=$1
oracle=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
pass=0
fail=0
mkdir -p "$out"
rm -f "$out"/*.dtb

ok()  { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }

# ---- corpus ----------------------------------------------------------------
qdump() { # NAME QEMU-ARGS...
	local name=$1; shift
	local m=$1; shift
	if ! qemu-system-riscv64 -M "$m,dumpdtb=$out/$name.dtb" "$@" -nographic \
		>"$out/$name.qemu.log" 2>&1 || [ ! -s "$out/$name.dtb" ]; then
		bad "fdt.dump.$name" "qemu could not dump the device tree ($out/$name.qemu.log)"
		rm -f "$out/$name.dtb"
	fi
}

head -c 4096 /dev/zero >"$out/initrd.bin"
qdump virt-smp1      virt -smp 1 -m 512M
qdump virt-smp4      virt -smp 4 -m 512M
qdump virt-smp8      virt -smp 8 -m 512M
qdump virt-3g        virt -smp 4 -m 3G
qdump virt-numa2     virt -smp 4 -m 2G \
	-object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G \
	-numa node,memdev=m0,cpus=0-1,nodeid=0 -numa node,memdev=m1,cpus=2-3,nodeid=1
qdump virt-initrd    virt -smp 2 -m 1G -kernel "$out/initrd.bin" -initrd "$out/initrd.bin" \
	-append "run=demo test=all"
qdump sifive_u-smp5  sifive_u -smp 5

for dts in "$here"/*.dts; do
	name=$(basename "$dts" .dts)
	# -q: bad-*.dts are meant to trip dtc's own warnings.
	if ! dtc -q -I dts -O dtb -o "$out/$name.dtb" "$dts" 2>"$out/$name.dtc.log"; then
		bad "fdt.dtc.$name" "dtc failed: $(head -n 3 "$out/$name.dtc.log")"
		rm -f "$out/$name.dtb"
	fi
done

# Generated trees with more harts than the board keeps (platform/board.h):
# gen NAME BOOT-CPUID CELLS, then "id [status]" lines on stdin.
gen() {
	local name=$1 boot=$2 ac=$3 id st reg
	{
		echo '/dts-v1/;'
		echo '/ { #address-cells = <2>; #size-cells = <2>; compatible = "project,harts";'
		echo 'memory@80000000 { device_type = "memory"; reg = <0x0 0x80000000 0x0 0x20000000>; };'
		echo "cpus { #address-cells = <$ac>; #size-cells = <0>; timebase-frequency = <10000000>;"
		while read -r id st; do
			if [ "$ac" = 2 ]; then reg="$((id >> 32)) $((id & 0xffffffff))"; else reg=$id; fi
			printf 'cpu@%x { device_type = "cpu"; reg = <%s>; riscv,isa = "rv64imac"; mmu-type = "riscv,sv39";%s };\n' \
				"$id" "$reg" "${st:+ status = \"$st\";}"
		done
		echo '}; };'
	} >"$out/$name.dts"
	if ! dtc -q -b "$boot" -I dts -O dtb -o "$out/$name.dtb" "$out/$name.dts" 2>"$out/$name.dtc.log"; then
		bad "fdt.dtc.$name" "dtc failed: $(head -n 3 "$out/$name.dtc.log")"
		rm -f "$out/$name.dtb"
	fi
}
seq 0 69 | gen harts70 0 1
# 66 usable and 23 disabled, interleaved (every third of the first 69 disabled)
for i in $(seq 0 88); do
	if [ $((i % 3)) = 2 ] && [ "$i" -lt 69 ]; then echo "$((1000 + i)) disabled"; else echo "$((1000 + i))"; fi
done | gen harts66-23 1000 1
# sparse 32-bit ids up to 0xffffffff; the boot hart, the largest, comes last
{ for i in $(seq 1 69); do echo $((i * 0x3b00000)); done; echo 4294967295; } | gen harts-sparse 4294967295 1
# two cells: 71 ids past 2^32 (boot_cpuid_phys is 32 bits: no boot hart among them)
{ for i in $(seq 0 69); do echo $(((1 << 33) + i * 7)); done; echo $(((1 << 40) + 5)); } | gen harts-cells2 0 2

# ---- differential: dtbinfo vs libfdt oracle -----------------------------------
for blob in "$out"/*.dtb; do
	name=$(basename "$blob" .dtb)
	case $name in bad-*) continue ;; esac
	if ! "$dtbinfo" "$blob" >"$out/$name.dtbinfo" 2>"$out/$name.dtbinfo.err"; then
		bad "fdt.diff.$name" "dtbinfo failed: $(head -n 3 "$out/$name.dtbinfo.err")"
		continue
	fi
	if ! "$oracle" "$blob" >"$out/$name.oracle" 2>"$out/$name.oracle.err"; then
		bad "fdt.diff.$name" "oracle failed: $(head -n 3 "$out/$name.oracle.err")"
		continue
	fi
	if ! grep -q '^hart ' "$out/$name.dtbinfo"; then
		bad "fdt.diff.$name" "no hart line in the output"
	elif d=$(diff -u "$out/$name.oracle" "$out/$name.dtbinfo"); then
		ok "fdt.diff.$name"
	else
		bad "fdt.diff.$name" "dtbinfo differs from the libfdt oracle"
		echo "$d"
	fi
done

# Facts the corpus must show (so the diff is not vacuous).
expect_line() { # NAME FILE REGEX
	if grep -qE "$3" "$out/$2.dtbinfo" 2>/dev/null; then ok "fdt.fact.$1"
	else bad "fdt.fact.$1" "no line matching '$3' in $out/$2.dtbinfo"; fi
}
expect_line virt-8-harts      virt-smp8 '^hart 7 usable riscv,sv(39|48|57) rv64'
expect_line virt-3g-above-4g  virt-3g '^memory 0x0000000080000000-0x000000013fffffff node -$'
expect_line numa-node-1       virt-numa2 '^memory 0x00000000c0000000-0x00000000ffffffff node 1$'
expect_line initrd            virt-initrd '^reserved 0x[0-9a-f]{16}-0x[0-9a-f]{16} initrd$'
expect_line bootargs          virt-initrd '^bootargs run=demo test=all$'
expect_line sifive-e51        sifive_u-smp5 '^hart 0 unusable no mmu-type$'
expect_line rv32-hart         multi '^hart 2 unusable isa rv32imac$'
expect_line disabled-hart     multi '^hart 1 unusable status disabled$'
expect_line memreserve        multi '^reserved 0x0000000084000000-0x0000000084001fff memreserve$'
expect_line one-cell          cells1 '^memory 0x0000000080000000-0x00000000fffffffe node -$'
# HiFive boards as their device trees describe them.
expect_line unmatched-s7      hifive-unmatched '^hart 0 unusable status disabled$'
expect_line unmatched-u74     hifive-unmatched '^hart 4 usable riscv,sv39 rv64imafdc_zicsr_zifencei$'
expect_line unmatched-16g     hifive-unmatched '^memory 0x0000000080000000-0x000000047fffffff node -$'
expect_line unmatched-opensbi hifive-unmatched '^reserved 0x0000000080000000-0x000000008007ffff mmode_resv0@80000000$'
expect_line unmatched-1mhz    hifive-unmatched '^timebase 1000000$'
expect_line unmatched-ext-s7  hifive-unmatched-isaext '^hart 0 unusable no mmu-type$'
expect_line unleashed-e51     hifive-unleashed '^hart 0 unusable no mmu-type$'
expect_line unleashed-u54     hifive-unleashed '^hart 1 usable riscv,sv39 rv64imafdc$'
expect_line unleashed-8g      hifive-unleashed '^memory 0x0000000080000000-0x000000027fffffff node -$'
# The current bindings.
expect_line isaext-only       isaext-cells2 '^hart 0 usable riscv,sv48 rv64imafdch_zicsr_zifencei_zba_zbb_sstc$'
expect_line isaext-preferred  isaext-cells2 '^hart 4294967297 usable riscv,sv57 rv64imafdc_zicsr$'
expect_line status-fail       isaext-cells2 '^hart 2 unusable status fail$'
expect_line status-fail-sss   isaext-cells2 '^hart 3 unusable status fail-sss$'
expect_line mmu-absent        isaext-cells2 '^hart 4 unusable no mmu-type$'
expect_line mmu-none          isaext-cells2 '^hart 5 unusable mmu-type riscv,none$'
expect_line isaext-no-base    isaext-cells2 '^hart 7 unusable no riscv,isa-base or riscv,isa$'
expect_line dynamic-cma       isaext-cells2 '^dynamic linux,cma size 0x2000000 alignment 0x400000 alloc-ranges 2 not allocated$'
expect_line dynamic-plain     isaext-cells2 '^dynamic sized-only size 0x10000 alignment 0x0 alloc-ranges 0 not allocated$'
# More harts than kept: 64 usable (and the boot hart) kept, the rest on one line.
expect_line harts70-left-out   harts70 '^board: harts left out: 64-69 \(6 in all; maximum 64 usable, 16 unusable\)$'
expect_line harts70-last-kept  harts70 '^hart 63 usable '
expect_line harts66-23-count   harts66-23 '\(9 in all; maximum 64 usable, 16 unusable\)$'
expect_line sparse-boot-kept   harts-sparse '^hart 4294967295 usable '
expect_line sparse-64th-out    harts-sparse '^board: harts left out: 3959422976 .*\(6 in all;'
expect_line cells2-first-kept  harts-cells2 '^hart 8589934592 usable '
expect_line cells2-left-out    harts-cells2 '^board: harts left out: 8589935040 .* 1099511627781 \(7 in all;'
if [ "$(grep -c '^hart .* usable ' "$out/harts70.dtbinfo" 2>/dev/null)" = 64 ] &&
   [ "$(grep -c '^hart ' "$out/harts66-23.dtbinfo" 2>/dev/null)" = 80 ]; then
	ok fdt.fact.harts-kept-counts
else
	bad fdt.fact.harts-kept-counts "want 64 usable harts of harts70 and 64 + 16 harts of harts66-23"
fi
# The same board in either ISA binding prints its usable harts the same way.
a=$(grep -E '^hart [1-4] ' "$out/hifive-unmatched.dtbinfo" 2>/dev/null)
b=$(grep -E '^hart [1-4] ' "$out/hifive-unmatched-isaext.dtbinfo" 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$(echo "$a" | wc -l)" = 4 ]; then
	ok fdt.fact.isa-same-either-binding
else
	bad fdt.fact.isa-same-either-binding "hart lines differ between the riscv,isa and riscv,isa-extensions trees"
fi

# ---- malformed blobs ---------------------------------------------------------------
be32() { od -An -tu4 --endian=big -j "$2" -N 4 "$1" | tr -d ' '; }
put32() { # FILE OFFSET VALUE: big-endian 32-bit store
	local v=$3
	printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((v >> 24 & 255)) $((v >> 16 & 255)) \
		$((v >> 8 & 255)) $((v & 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
patched() { # NAME: a fresh copy of the base blob
	cp "$out/multi.dtb" "$out/bad-$1.dtb"
	echo "$out/bad-$1.dtb"
}

reject() { # NAME FILE REASON-REGEX
	local name=$1 file=$2 want=$3 rc lines
	"$dtbinfo" "$file" >"$out/$name.rej.out" 2>"$out/$name.rej.err"
	rc=$?
	lines=$(wc -l <"$out/$name.rej.err")
	if [ "$rc" != 1 ]; then
		bad "fdt.reject.$name" "exit status $rc, want 1: $(head -n 5 "$out/$name.rej.err")"
	elif [ "$lines" != 1 ] || [ -s "$out/$name.rej.out" ]; then
		bad "fdt.reject.$name" "want one stderr line and no stdout, got: $(head -n 5 "$out/$name.rej.err")"
	elif ! grep -qE "^dtbinfo: $file: .*($want)" "$out/$name.rej.err"; then
		bad "fdt.reject.$name" "reason does not match /$want/: $(cat "$out/$name.rej.err")"
	else
		ok "fdt.reject.$name"
	fi
}

if [ -s "$out/multi.dtb" ]; then
	base=$out/multi.dtb
	size=$(stat -c %s "$base")
	ostruct=$(be32 "$base" 8)
	ostrings=$(be32 "$base" 12)

	: >"$out/bad-empty.dtb"
	reject empty "$out/bad-empty.dtb" 'too short'
	head -c 20 "$base" >"$out/bad-header-cut.dtb"
	reject header-cut "$out/bad-header-cut.dtb" 'too short'
	head -c $((size - 64)) "$base" >"$out/bad-truncated.dtb"
	reject truncated "$out/bad-truncated.dtb" 'totalsize [0-9]+ larger than'

	f=$(patched magic); put32 "$f" 0 $((0x12345678))
	reject magic "$f" 'bad magic 0x12345678'
	f=$(patched version); put32 "$f" 20 15
	reject version "$f" 'unsupported version 15'
	f=$(patched last-comp); put32 "$f" 24 18
	reject last-comp "$f" 'unsupported last_comp_version 18'
	f=$(patched totalsize); put32 "$f" 4 $((size + 4096))
	reject totalsize "$f" 'totalsize [0-9]+ larger than'
	f=$(patched struct-outside); put32 "$f" 8 $((0x7ffffff0))
	reject struct-outside "$f" 'struct block .* outside blob'
	f=$(patched struct-misaligned); put32 "$f" 8 $((ostruct + 2))
	reject struct-misaligned "$f" 'not 4-byte aligned'
	f=$(patched strings-outside); put32 "$f" 32 $((size))
	reject strings-outside "$f" 'strings block .* outside blob'
	f=$(patched rsvmap-outside); put32 "$f" 16 $((size + 8))
	reject rsvmap-outside "$f" 'reservation block .* outside blob'
	f=$(patched overlap-blocks); put32 "$f" 12 "$ostruct"
	reject overlap-blocks "$f" 'struct block .* overlaps strings block'
	f=$(patched overlap-header); put32 "$f" 8 16
	reject overlap-header "$f" 'overlaps'
	# Root node name "" -> "AAAA" and a struct block that ends right there.
	f=$(patched unterminated-name); put32 "$f" $((ostruct + 4)) $((0x41414141)); put32 "$f" 36 8
	reject unterminated-name "$f" 'unterminated node name'
	# The first property of the root sits after BEGIN_NODE and the empty name.
	f=$(patched prop-length); put32 "$f" $((ostruct + 12)) 4000000
	reject prop-length "$f" "property '[^']*' length 4000000 runs past struct block"
	f=$(patched nameoff); put32 "$f" $((ostruct + 16)) $((0x00ffffff))
	reject nameoff "$f" 'nameoff 0xffffff outside strings block'
	f=$(patched unknown-token); put32 "$f" $((ostruct + 8)) 7
	reject unknown-token "$f" 'unknown token 0x7'
	f=$(patched no-end); put32 "$f" $(($(be32 "$base" 36) + ostruct - 4)) 4
	reject no-end "$f" 'without FDT_END'
	f=$(patched unbalanced); put32 "$f" $(($(be32 "$base" 36) + ostruct - 8)) 4
	reject unbalanced "$f" 'FDT_END inside node'
	: "$ostrings"

	# 40 nested nodes from dtc.
	{
		echo '/dts-v1/; / {'
		for i in $(seq 40); do echo "n$i {"; done
		for i in $(seq 40); do echo '};'; done
		echo '};'
	} >"$out/deep.dts"
	dtc -q -I dts -O dtb -o "$out/bad-deep.dtb" "$out/deep.dts"
	reject deep "$out/bad-deep.dtb" 'nested deeper than 32'
fi
[ -s "$out/bad-overlap.dtb" ] && reject mem-overlap "$out/bad-overlap.dtb" 'memory ranges .* overlap'
[ -s "$out/bad-wrap.dtb" ] && reject mem-wrap "$out/bad-wrap.dtb" 'wraps past 2\^64'
[ -s "$out/bad-isaext.dtb" ] && reject isaext-not-list "$out/bad-isaext.dtb" 'riscv,isa-extensions is not a string list'
[ -s "$out/bad-dynsize.dtb" ] && reject dyn-size "$out/bad-dynsize.dtb" "node 'pool' size is not 2 cells"
[ -s "$out/bad-cells3.dtb" ] && reject cells3 "$out/bad-cells3.dtb" '#address-cells 3 not in 1..2'

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
