#!/usr/bin/env bash
# qemu-matrix.sh KERNEL_virt KERNEL_sifive_u - boot every configuration of
# the test matrix, check each, and end with "N passed, N failed".
#
# A configuration's in-kernel tests count one each (the kernel's own
# "N passed, N failed" line); a boot that ends without that line, or whose
# exit status disagrees with it, counts one more failure. Special boots
# (the deliberate panic, 20 boots in a row) count one test each.
set -u
cd "$(dirname "$0")/.."
kv=$1
ks=$2
logs=build/logs/qemu
mkdir -p "$logs"
pass=0
fail=0
q="qemu-system-riscv64 -nographic -bios default"
numa="-object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G \
 -numa node,memdev=m0,cpus=0-1,nodeid=0 -numa node,memdev=m1,cpus=2-3,nodeid=1"

# passed NAME MSG: one check passed ("ok qemu.NAME: MSG").
passed() {
	echo "ok qemu.$1: $2"
	pass=$((pass + 1))
}

# failed NAME MSG [LOG LINES]: one check failed ("FAIL qemu.NAME: MSG"),
# then the last LINES lines of LOG when given.
failed() {
	echo "FAIL qemu.$1: $2"
	if [ $# -ge 4 ]; then
		tail -n "$4" "$3"
	fi
	fail=$((fail + 1))
}

# suite NAME ARGS...: a test=all boot
suite() {
	local name=$1; shift
	local log=$logs/$name.log t0=$SECONDS
	bash ci/qemu.sh --timeout "${QEMU_TIMEOUT:-480}" --log "$log" -- "$@" -append "test=all" >/dev/null
	local rc=$?
	local line p f
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	grep -E '^FAIL' "$log" | sed "s/^FAIL /FAIL $name: /"
	if [ -z "$line" ]; then
		echo "FAIL $name: no summary (exit $rc); last lines of $log:"
		tail -n 25 "$log"
		fail=$((fail + 1))
		return
	fi
	p=${line%% passed*}
	f=${line#*passed, }; f=${f%% failed*}
	pass=$((pass + p))
	fail=$((fail + f))
	if { [ "$f" = 0 ] && [ $rc != 0 ]; } || { [ "$f" != 0 ] && [ $rc != 1 ]; }; then
		echo "FAIL $name: exit status $rc disagrees with '$line'"
		fail=$((fail + 1))
	else
		echo "$name: $line ($((SECONDS - t0)) s)"
	fi
}

# expect_panic NAME BOOTARGS REGEX: a boot that must end in a panic whose
# first line matches REGEX, followed by the full register report, with a
# failing exit status.
expect_panic() {
	local name=$1 args=$2 re=$3
	local log=$logs/$name.log
	bash ci/qemu.sh --timeout 60 --log "$log" -- $q -M virt -smp 4 -m 512M -kernel "$kv" \
		-append "$args" >/dev/null
	local rc=$?
	if [ $rc = 1 ] &&
	   grep -qE "^panic: hart [0-9]+: $re" "$log" &&
	   grep -qE '^sepc 0x[0-9a-f]{16} stval 0x[0-9a-f]{16} scause 0x[0-9a-f]{16}' "$log" &&
	   grep -qE '^zero 0x0{16} +ra 0x[0-9a-f]{16} +sp 0x' "$log" &&
	   grep -qE 't6 0x[0-9a-f]{16}' "$log" &&
	   grep -q '^panic: stopping all harts' "$log" &&
	   ! grep -qE '^ok (panic|wx|kstack)' "$log"; then
		passed "$name" "$(grep -m1 -E '^panic: hart' "$log" | tr -d '\r')"
	else
		failed "$name" "exit $rc; expected a panic matching '$re' in $log" "$log" 20
	fi
}

# SMP=8 must come up every time (the boot hart is a lottery).
boot_loop() {
	local n=${BOOT_LOOP:-20} ok=0 i
	for i in $(seq 1 "$n"); do
		local log=$logs/virt-smp8-boot$i.log
		if bash ci/qemu.sh --timeout 60 --log "$log" -- $q -M virt -smp 8 -m 512M \
			-kernel "$kv" -append "run=demo" >/dev/null &&
		   grep -q '^harts online: 8:' "$log" && grep -q '^demo: done' "$log"; then
			ok=$((ok + 1))
		else
			echo "FAIL qemu.virt-smp8-boot-loop: boot $i failed, see $log"
			break
		fi
	done
	if [ "$ok" = "$n" ]; then
		passed virt-smp8-boot-loop "$n boots in a row"
	else
		fail=$((fail + 1))
	fi
}

# harness CASE WANT_RC QEMU.SH-ARGS...: ci/qemu.sh itself against a stand-in
# for QEMU, and against partitions that forge the kernel's last line: none
# may pass a run that did not pass.
harness() {
	local name=$1 want=$2; shift 2
	local log=$logs/harness-$name.log
	bash ci/qemu.sh --log "$log" "$@" >/dev/null 2>&1
	local rc=$?
	if [ $rc = "$want" ]; then
		passed "harness-$name" "exit $rc"
	else
		failed "harness-$name" "exit $rc, expected $want; see $log" "$log" 10
	fi
}

# forged NAME WANT_RC BOARD-ARGS...: a boot of a forge.* test (the forger's
# lines must be there, tagged, and must not turn a failure into a pass)
forged() {
	local name=$1 want=$2; shift 2
	harness "$name" "$want" --timeout 20 -- "$@"
	if ! grep -aqE '^\[forger#[0-9]+\] shutdown: ok'$'\r''?$' "$logs/harness-$name.log"; then
		failed "harness-$name" "the forger's tagged lines are missing"
	fi
}

harness fake-pass 0 --finisher yes --timeout 10 -- bash -c 'printf "shutdown: ok\n"; exit 0'
harness fake-finisher-disagrees 1 --finisher yes --timeout 10 -- bash -c 'printf "shutdown: ok\n"; exit 1'
harness fake-no-finisher 1 --finisher yes --timeout 10 -- bash -c 'printf "shutdown: ok\n"; sleep 60'
harness fake-unterminated 2 --finisher no --timeout 3 -- bash -c 'printf "[p#1] x\nshutdown: ok"; sleep 60'
harness fake-tagged 2 --finisher no --timeout 3 -- bash -c 'printf "[p#1] shutdown: ok\n[p#1] \\rshutdown: ok\nshutdown: okay\n"; sleep 60'
harness fake-flood 2 --finisher no --timeout 60 --max-log 1000000 -- bash -c 'yes "[p#1] shutdown: ok"'
harness virt-budget-bootarg 0 --timeout 60 -- $q -M virt -smp 2 -m 512M -kernel "$kv" \
	-append "test=budget.from_bootarg part_budget=1500"
forged virt-forge-fail 1 $q -M virt -smp 4 -m 512M -kernel "$kv" -append "test=forge.then_fail"
forged virt-forge-hang 2 $q -M virt -smp 4 -m 512M -kernel "$kv" -append "test=forge.then_hang"
forged sifive_u-forge-fail 1 $q -M sifive_u -smp 5 -m 512M -kernel "$ks" -append "test=forge.then_fail"
forged sifive_u-forge-hang 2 $q -M sifive_u -smp 5 -m 512M -kernel "$ks" -append "test=forge.then_hang"

suite virt-smp1 $q -M virt -smp 1 -m 512M -kernel "$kv"
suite virt-smp4 $q -M virt -smp 4 -m 512M -kernel "$kv"
suite virt-smp8 $q -M virt -smp 8 -m 512M -kernel "$kv"
suite virt-3g $q -M virt -smp 4 -m 3G -kernel "$kv"
suite virt-numa $q -M virt -smp 4 -m 2G $numa -kernel "$kv"
suite sifive_u-smp5 $q -M sifive_u -smp 5 -m 512M -kernel "$ks"
# The scale: many harts (plain multi-threaded TCG; -icount runs every hart on
# one host thread, and a preempted lock holder then stalls the other 63 for
# whole time slices: slower, see docs/ARCHITECTURE.md) and much memory.
# QEMU_SCALE=0 leaves them out.
if [ "${QEMU_SCALE:-1}" != 0 ]; then
	QEMU_TIMEOUT=${QEMU_TIMEOUT_SCALE:-1200} suite virt-smp16 $q -M virt -smp 16 -m 1G -kernel "$kv"
	QEMU_TIMEOUT=${QEMU_TIMEOUT_SCALE:-1200} suite virt-smp64 $q -M virt -smp 64 -m 2G -kernel "$kv"
	QEMU_TIMEOUT=${QEMU_TIMEOUT_SCALE:-1200} suite virt-16g $q -M virt -smp 4 -m 16G -kernel "$kv"
fi
expect_panic virt-panic test=panic 'illegal instruction at 0x[0-9a-f]+ \(sepc'
expect_panic virt-wx-text test=wx.write_kernel_text 'store page fault at 0x[0-9a-f]+: kernel text \(read-execute\)'
expect_panic virt-wx-data test=wx.execute_kernel_data 'instruction page fault at 0x[0-9a-f]+: kernel data \(read-write, not executable\)'
expect_panic virt-kstack test=kstack.overflow "kernel stack overflow: hart [0-9]+'s stack guard page"
# the same on a secondary hart, whose stack is in the stack window
expect_panic virt-kstack-secondary test=kstack.overflow_secondary "kernel stack overflow: hart [0-9]+'s stack guard page at 0xffffffed"

# A hart whose stacks cannot be allocated (nostacks=2: the second hart tried)
# is not started, with one line; the boot goes on with the others.
nostacks_boot() {
	local name=virt-nostacks log=$logs/virt-nostacks.log
	if bash ci/qemu.sh --timeout 60 --log "$log" -- $q -M virt -smp 4 -m 512M \
		-kernel "$kv" -append "run=demo nostacks=2" >/dev/null &&
	   grep -qE '^smp: hart [0-9]+ not started: no memory for its stacks' "$log" &&
	   grep -q '^harts online: 3:' "$log" && grep -q '^demo: done' "$log"; then
		passed "$name" "$(grep -m1 '^smp: hart' "$log" | tr -d '\r')"
	else
		failed "$name" "expected one hart left out for its stacks and the demo on 3; see $log" "$log" 20
	fi
}
nostacks_boot
boot_loop

# ---- boot image: load addresses and refusals --------------------------------
img=$(dirname "$kv")/Image

# load_at NAME ADDR: the same Image bytes entered at physical ADDR (any 2 MiB-
# aligned address; 8 GiB of RAM so that one of them is above 4 GiB) must boot
# the demo on 4 harts and say where it runs.
load_at() {
	local name=$1 addr=$2 log=$logs/$1.log elf=$logs/$1.elf
	# the wrapper's segment must hold the Image's bytes, unchanged
	bash ci/uboot-loadaddr.sh "$img" "$addr" "$elf" &&
	riscv64-unknown-elf-objcopy -O binary "$elf" "$elf.bin" && cmp -s "$elf.bin" "$img" &&
	bash ci/qemu.sh --timeout 120 --log "$log" -- $q -M virt -smp 4 -m 8G -kernel "$elf" \
		-append "run=demo" >/dev/null
	local rc=$?
	if [ $rc = 0 ] && grep -qE "^kernel: entered on hart [0-9]+, .*image at $addr" "$log" &&
	   grep -q '^harts online: 4:' "$log" && grep -q '^demo: done' "$log"; then
		passed "$name" "Image at $addr"
	else
		failed "$name" "exit $rc; the Image at $addr did not boot, see $log" "$log" 20
	fi
}

# refuse NAME REGEX QEMU-ARGS...: a boot the kernel must refuse with one line
# "kernel: ... stopping" or "kernel: refusing to boot: ..." matching REGEX,
# then stop by itself (System Reset ends QEMU), with no panic and no hang.
refuse() {
	local name=$1 re=$2 log=$logs/$1.log rc; shift 2
	timeout 60 "$@" -nographic -bios default </dev/null >"$log" 2>&1
	rc=$?
	if [ $rc != 124 ] && [ "$(grep -cE "^kernel: (refusing|.*stopping)" "$log")" = 1 ] &&
	   grep -qE "^kernel: .*$re" "$log" && ! grep -qE '^(panic|harts online)' "$log"; then
		passed "$name" "$(grep -E '^kernel: (refusing|.*stopping)' "$log" | tr -d '\r')"
	else
		failed "$name" "exit $rc; expected one refusal matching '$re' in $log" "$log" 10
	fi
}

# refuse_fdt NAME FDT REGEX: the Image at 0x80400000, entered through a shim
# that replaces the FDT pointer (see ci/uboot-loadaddr.sh).
refuse_fdt() {
	local elf=$logs/$1.elf
	if bash ci/uboot-loadaddr.sh "$img" 0x80400000 "$elf" "$2"; then
		refuse "$1" "$3" qemu-system-riscv64 -M virt -smp 2 -m 512M -kernel "$elf"
	else
		failed "$1" "could not build $elf"
	fi
}

# refuse_hart: a device tree whose only hart (the boot hart) has no MMU.
refuse_hart() {
	local d=$logs/nommu
	qemu-system-riscv64 -M virt,dumpdtb=$d.dtb -smp 1 -m 512M -nographic >/dev/null 2>&1
	dtc -q -I dtb -O dts "$d.dtb" | sed 's/mmu-type = "riscv,sv[0-9]*"/mmu-type = "riscv,none"/' |
		dtc -q -I dts -O dtb -o "$d-none.dtb" -
	refuse virt-boot-hart-no-mmu 'boot hart 0 unusable: mmu-type riscv,none' \
		qemu-system-riscv64 -M virt -smp 1 -m 512M -dtb "$d-none.dtb" -kernel "$kv"
}

load_at virt-image-at-0x80200000 0x80200000
load_at virt-image-at-0xffe00000 0xffe00000      # straddles the 4 GiB line
load_at virt-image-at-0x140600000 0x140600000    # above 4 GiB, not 1 GiB-related
bash ci/uboot-loadaddr.sh "$img" 0x80300000 "$logs/misaligned.elf" &&
	refuse virt-image-misaligned 'load address not 2 MiB-aligned' \
		qemu-system-riscv64 -M virt -smp 2 -m 512M -kernel "$logs/misaligned.elf"
refuse_fdt virt-fdt-misaligned +4 'device tree pointer 0x[0-9a-f]+ not 8-byte aligned'
refuse_fdt virt-fdt-not-ram 0x100000000 'device tree pointer 0x100000000 not in RAM'
refuse_fdt virt-fdt-bad-header 0x90000000 'device tree at 0x90000000: bad header: magic'
refuse_hart

# ---- the HiFive boot chain: OpenSBI, U-Boot (S-mode), extlinux, booti ------
uboot=/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin

# uboot_boot NAME SMP BOOTARGS: the Image on a partitioned virtio disk
# (ci/uboot-disk.sh), booted by U-Boot's distro boot. The log must show
# U-Boot's extlinux and booti steps, the append line arriving as the
# kernel's bootargs, every hart online, and the run's own verdict (the
# kernel's "N passed, N failed" for a test= boot, "demo: done" otherwise).
# uboot_run NAME SMP BOOTARGS: build $logs/NAME.img (INITRD from the
# environment adds an initrd) and boot it through U-Boot; returns
# ci/qemu.sh's status, 3 when the disk could not be built (already counted).
uboot_run() {
	local name=$1 smp=$2 args=$3 disk=$logs/$1.img
	if ! bash ci/uboot-disk.sh "$img" "$disk" "$args"; then
		failed "$name" "could not build $disk"
		return 3
	fi
	bash ci/qemu.sh --timeout "${QEMU_TIMEOUT:-240}" --log "$logs/$name.log" -- $q -M virt \
		-smp "$smp" -m 512M -kernel "$uboot" -drive file="$disk",format=raw,if=none,id=hd0 \
		-device virtio-blk-device,drive=hd0 >/dev/null
}

uboot_boot() {
	local name=$1 smp=$2 args=$3 log=$logs/$1.log rc line
	uboot_run "$name" "$smp" "$args"
	rc=$?
	[ $rc = 3 ] && return
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 | tr -d '\r')
	if [ $rc = 0 ] && grep -q '^Found /extlinux/extlinux.conf' "$log" &&
	   grep -q '^Starting kernel' "$log" && { [ -z "$args" ] || grep -q "^bootargs $args" "$log"; } &&
	   grep -q "^harts online: $smp:" "$log" &&
	   { [ -n "$line" ] && [ "${line#* passed, }" = "0 failed" ] || grep -q '^demo: done' "$log"; }; then
		passed "$name" "U-Boot booti, $smp harts, ${args:-no bootargs}${line:+: $line}"
	else
		echo "FAIL qemu.$name: exit $rc; see $log"
		grep -E '^FAIL' "$log"
		tail -n 20 "$log"
		fail=$((fail + 1))
	fi
}

uboot_boot virt-uboot-smp1-demo 1 ""   # no append line: what make run BOOT=uboot does
uboot_boot virt-uboot-smp4-demo 4 run=demo
uboot_boot virt-uboot-smp8-demo 8 run=demo
uboot_boot virt-uboot-smp4-tests 4 test=smp,fdt,vm
uboot_boot virt-uboot-smp8-tests 8 test=smp,fdt,vm
# ---- partitions of one's own from an initrd (QEMU -initrd and U-Boot) ------
. ci/part-matrix.sh
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
