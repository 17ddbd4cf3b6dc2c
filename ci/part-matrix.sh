# part-matrix.sh - sourced by ci/qemu-matrix.sh (uses its $q, $kv, $ks,
# $img, $uboot, $logs, passed, failed): partitions of one's own from an
# initrd (apps/part.c, mk/sdk.mk). The examples (build/parts/{prod,cons}.elf,
# `make examples`) run from QEMU's -initrd at SMP=4 and 8 and on sifive_u,
# and through U-Boot's extlinux initrd line; then every refusal of a
# bootarg, an archive or an image gets a cheap SMP=2 boot that must end
# with exactly the expected problem lines, "part: boot refused" and a
# failing status, no partition having run.

pt=$logs/part
mkdir -p "$pt"

# patch_elf IN OUT PYTHON: a copy of IN with bytes changed by the Python
# statements (b: the bytearray; ph(i): the offset of program header i).
patch_elf() {
	python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
phoff = struct.unpack_from("<Q", b, 0x20)[0]
def ph(i):
    return phoff + 56 * i
exec(sys.argv[3])
open(sys.argv[2], "wb").write(b)
EOF
}

part_setup() {
	local s=riscv64-unknown-elf-strip
	$s -o "$pt/prod.elf" build/parts/prod.elf && $s -o "$pt/cons.elf" build/parts/cons.elf &&
	python3 tools/mkcpio.py "$pt/good.cpio" "$pt/prod.elf" "$pt/cons.elf" &&
	printf 'not an image\n' >"$pt/text.elf" &&
	python3 tools/mkcpio.py "$pt/notelf.cpio" "$pt/prod.elf" "$pt/text.elf" &&
	python3 tools/mkcpio.py "$pt/x86.cpio" --name=x86.elf /bin/true &&
	patch_elf "$pt/prod.elf" "$pt/class32.elf" 'b[4] = 1' &&
	python3 tools/mkcpio.py "$pt/class32.cpio" --name=prod.elf "$pt/class32.elf" &&
	patch_elf "$pt/prod.elf" "$pt/overlap.elf" \
		'struct.pack_into("<Q", b, ph(1) + 16, struct.unpack_from("<Q", b, ph(0) + 16)[0])' &&
	python3 tools/mkcpio.py "$pt/overlap.cpio" --name=prod.elf "$pt/overlap.elf" &&
	patch_elf "$pt/prod.elf" "$pt/high.elf" 'struct.pack_into("<Q", b, ph(2) + 16, 0x10000000)' &&
	python3 tools/mkcpio.py "$pt/high.cpio" --name=prod.elf "$pt/high.elf" &&
	patch_elf "$pt/prod.elf" "$pt/huge.elf" 'struct.pack_into("<Q", b, ph(2) + 40, 2**64 - 4096)' &&
	python3 tools/mkcpio.py "$pt/huge.cpio" --name=prod.elf "$pt/huge.elf" &&
	python3 tools/mkcpio.py "$pt/trunc.cpio" --truncate=-100 "$pt/prod.elf" "$pt/cons.elf" &&
	python3 tools/mkcpio.py "$pt/dup.cpio" "$pt/prod.elf" --name=./prod.elf "$pt/cons.elf" &&
	python3 tools/mkcpio.py "$pt/long.cpio" "$pt/prod.elf" --name=a_long_partition_name.elf \
		"$pt/cons.elf"
}

# part_run NAME SMP BOOTARGS WANT N [MACHINE KERNEL]: the examples from
# good.cpio (on virt and $kv unless given); every partition exits 0, N
# consumer lines say WANT, memory all returned.
part_run() {
	local name=$1 smp=$2 args=$3 want=$4 n=$5 m=${6:-virt} k=${7:-$kv} log=$logs/$1.log rc
	bash ci/qemu.sh --timeout 120 --log "$log" -- $q -M "$m" -smp "$smp" -m 512M -kernel "$k" \
		-initrd "$pt/good.cpio" -append "$args" >/dev/null
	rc=$?
	if [ $rc = 0 ] && grep -q '^part: done: .*physical memory all returned' "$log" &&
	   [ "$(grep -cE "^\[cons#[0-9]+\] $want" "$log")" = "$n" ] && ! grep -q 'stopped:' "$log"; then
		passed "$name" "$(grep -m1 '^part: done' "$log" | tr -d '\r')"
	else
		failed "$name" "exit $rc; expected every partition to exit 0 in $log" "$log" 20
	fi
}

# part_refuse NAME INITRD BOOTARGS REGEX [N]: a refused boot (INITRD "" for
# none): exactly N (default 1) problem lines, one matching REGEX, then
# "part: boot refused: N problem(s)", status failure, no partition ran.
part_refuse() {
	local name=$1 rd=$2 args=$3 re=$4 n=${5:-1} log=$logs/$1.log rc got
	bash ci/qemu.sh --timeout 60 --log "$log" -- $q -M virt -smp 2 -m 512M -kernel "$kv" \
		${rd:+-initrd "$rd"} -append "$args" >/dev/null
	rc=$?
	got=$(grep -E '^part: ' "$log" | grep -vcE '^part: (initrd: [0-9]+ bytes|boot refused)')
	if [ $rc = 1 ] && [ "$got" = "$n" ] && grep -qE "^part: .*$re" "$log" &&
	   grep -qE "^part: boot refused: $n problems? .*no partition started" "$log" &&
	   ! grep -qE '^\[|exited with status|stopped:|^panic' "$log"; then
		passed "$name" "$(grep -m1 -E "^part: .*$re" "$log" | tr -d '\r')"
	else
		failed "$name" "exit $rc, $got problem lines; expected $n, one matching '$re'" "$log" 12
	fi
}

# uboot_part NAME SMP BOOTARGS: good.cpio through U-Boot's extlinux initrd line.
uboot_part() {
	local name=$1 smp=$2 args=$3 log=$logs/$1.log rc
	INITRD="$pt/good.cpio" uboot_run "$name" "$smp" "$args"
	rc=$?
	[ $rc = 3 ] && return
	if [ $rc = 0 ] && grep -q '^Found /extlinux/extlinux.conf' "$log" &&
	   grep -qE '^part: initrd: [0-9]+ bytes at 0x[0-9a-f]+, 2 images' "$log" &&
	   grep -q '^part: done: .*physical memory all returned' "$log"; then
		passed "$name" "U-Boot initrd, $smp harts: $(grep -m1 '^part: done' "$log" | tr -d '\r')"
	else
		failed "$name" "exit $rc; see $log" "$log" 20
	fi
}

if part_setup; then
	two="part=prod@1:40,prod@2:40,cons@3:80,cons@0:80 area=board:64K:1M"
	part_run virt-part-smp4 4 "$two" "read 80 messages" 2
	part_run virt-part-smp8 8 "part=prod@1:30,prod@2:30,prod@3:30,cons@4:90,cons@5:90,cons@6:90,cons@7:90,cons@0:90 area=board:64K:1M" \
		"read 90 messages" 5
	part_run virt-part-same-hart 2 "part=prod@1:60,cons@1:60,cons@1:60" "read 60 messages" 2
	part_run sifive_u-part-smp5 5 "$two" "read 80 messages" 2 sifive_u "$ks"
	uboot_part virt-uboot-part-smp4 4 "$two"
	good=$pt/good.cpio
	part_refuse virt-part-no-image "$good" "part=prod@1,nosuch@1" "no image 'nosuch' in the initrd"
	part_refuse virt-part-no-hart "$good" "part=prod@1,cons@2" "hart 2 does not exist \(2 harts online"
	part_refuse virt-part-hart-nan "$good" "part=prod@one" "hart 'one' is not a number"
	part_refuse virt-part-no-at "$good" "part=prod" "entry 'prod': no '@<hart>'"
	part_refuse virt-part-quota "$good" "part=prod@1/1K" "quota 1024 bytes out of range"
	part_refuse virt-part-quota-huge "$good" "part=prod@1/64G" "quota [0-9]+ bytes out of range"
	part_refuse virt-part-arg-long "$good" "part=prod@1:$(printf 'x%.0s' $(seq 1 130))" \
		"argument longer than 127"
	part_refuse virt-part-area-max "$good" "part=prod@1 area=board:64K:64M" "max [0-9]+ bytes above the largest area"
	part_refuse virt-part-area-order "$good" "part=prod@1 area=board:1M:64K" "initial [0-9]+ bytes above max"
	part_refuse virt-part-area-small "$good" "part=prod@1 area=board:1K:64K" "initial 1024 bytes below"
	part_refuse virt-part-area-fields "$good" "part=prod@1 area=board:64K" "want <name>:<initial>:<max>"
	part_refuse virt-part-area-twice "$good" "part=prod@1 area=b:64K:1M,b:64K:1M" "area 'b' given twice"
	part_refuse virt-part-two-problems "$good" "part=nosuch@1,cons@9" "hart 9 does not exist" 2
	part_refuse virt-part-no-initrd "" "part=prod@1" "no initrd"
	part_refuse virt-part-initrd-not-cpio "$pt/prod.elf" "part=prod@1" "bad magic: not a cpio newc header"
	part_refuse virt-part-truncated "$pt/trunc.cpio" "part=prod@1" "archive truncated"
	part_refuse virt-part-duplicate "$pt/dup.cpio" "part=prod@1" "member './prod.elf': duplicate name"
	part_refuse virt-part-name-long "$pt/long.cpio" "part=prod@1" "member 'a_long_partition_name.elf': name too long"
	part_refuse virt-part-not-elf "$pt/notelf.cpio" "part=prod@1,text@1" "member 'text.elf': not an ELF image"
	part_refuse virt-part-wrong-machine "$pt/x86.cpio" "part=x86@1" "member 'x86.elf': not a RISC-V image \(wrong machine\)"
	part_refuse virt-part-wrong-class "$pt/class32.cpio" "part=prod@1" "member 'prod.elf': not ELF64 \(wrong class\)"
	part_refuse virt-part-overlap "$pt/overlap.cpio" "part=prod@1" "member 'prod.elf': PT_LOAD segments overlap"
	part_refuse virt-part-outside "$pt/high.cpio" "part=prod@1" "member 'prod.elf': segment outside the partition's program range"
	part_refuse virt-part-size-overflow "$pt/huge.cpio" "part=prod@1" "member 'prod.elf': segment outside the partition's program range"
else
	failed part-setup "could not build the test archives in $pt (make examples first)"
fi
