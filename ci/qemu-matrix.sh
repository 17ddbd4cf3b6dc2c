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

# suite NAME ARGS...: a test=all boot
suite() {
	local name=$1; shift
	local log=$logs/$name.log
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
		echo "$name: $line"
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
		echo "ok qemu.$name: $(grep -m1 -E '^panic: hart' "$log" | tr -d '\r')"
		pass=$((pass + 1))
	else
		echo "FAIL qemu.$name: exit $rc; expected a panic matching '$re' in $log"
		tail -n 20 "$log"
		fail=$((fail + 1))
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
		echo "ok qemu.virt-smp8-boot-loop: $n boots in a row"
		pass=$((pass + 1))
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
		echo "ok qemu.harness-$name: exit $rc"
		pass=$((pass + 1))
	else
		echo "FAIL qemu.harness-$name: exit $rc, expected $want; see $log"
		tail -n 10 "$log"
		fail=$((fail + 1))
	fi
}

# forged NAME WANT_RC BOARD-ARGS...: a boot of a forge.* test (the forger's
# lines must be there, tagged, and must not turn a failure into a pass)
forged() {
	local name=$1 want=$2; shift 2
	harness "$name" "$want" --timeout 20 -- "$@"
	if ! grep -aqE '^\[forger#[0-9]+\] shutdown: ok'$'\r''?$' "$logs/harness-$name.log"; then
		echo "FAIL qemu.harness-$name: the forger's tagged lines are missing"
		fail=$((fail + 1))
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
expect_panic virt-panic test=panic 'illegal instruction at 0x[0-9a-f]+ \(sepc'
expect_panic virt-wx-text test=wx.write_kernel_text 'store page fault at 0x[0-9a-f]+: kernel text \(read-execute\)'
expect_panic virt-wx-data test=wx.execute_kernel_data 'instruction page fault at 0x[0-9a-f]+: kernel data \(read-write, not executable\)'
expect_panic virt-kstack test=kstack.overflow "kernel stack overflow: hart [0-9]+'s stack guard page"
boot_loop
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
