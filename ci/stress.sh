#!/usr/bin/env bash
# stress.sh replay KERNEL | smp KERNEL | barrier KERNEL | host STRESS STRESS_TSAN
#
# The stress tool's steps of `make test` (docs/STRESS.md); each ends with
# "stress-<step>: N passed, N failed".
#  replay: the same short deterministic stress (-icount shift=0,sleep=off)
#          booted twice must print byte-identical logs ending in SUCCESS, and
#          another seed must print a different one.
#  smp:    short stresses on 4 and 8 harts with fail=, xfer=, irq=, onoff=
#          must end in SUCCESS with hot-plug cycles done; a corrupt=1 run
#          (a byte written through a stale pointer) must end in a FAILURE
#          line naming the manager, and QEMU's exit status must say failure;
#          debug=stall/stallwait/wedge must end in the watchdog's FAILURE
#          line naming the hart; partitions (parts=) beside the workload
#          must succeed with their ops counted, debug=kblock/kfault must
#          fail naming the partition.
#  barrier: check=1 onoff=1 on 8 harts for 20 s, 3 times (RUNS=): hot-plug
#          while the harts meet at the check barrier must not deadlock it.
#  host:   the engine on host threads under ASan+UBSan and under TSan, and
#          corrupt=1 there too.
set -u
cd "$(dirname "$0")/.."
mode=${1:?mode}
shift
logs=build/logs/stress
mkdir -p "$logs"
pass=0
fail=0

ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }

# boot NAME SMP ICOUNT OPTIONS: boot the stress program, log in $logs/NAME.log
boot() {
	local name=$1 smp=$2 icount=$3 opts=$4
	bash ci/qemu.sh --timeout "${STRESS_BOOT_TIMEOUT:-240}" --log "$logs/$name.log" -- \
		qemu-system-riscv64 -nographic -bios default -M virt -smp "$smp" -m 512M \
		$icount -kernel "$KERNEL" -append "stress=$opts" >/dev/null 2>&1
}

# The kernel's part of the log: from the stress program's first line on
# (OpenSBI's banner is the firmware's, not the run's).
run_part() {
	sed -n '/^stress: kernel/,$p' "$1" | tr -d '\r'
}

succeeded() {
	tail -n 5 "$1" | tr -d '\r' | grep -q '^stress: SUCCESS$'
}

case "$mode" in
replay)
	KERNEL=$1
	# Fixed-rate icount: QEMU 7.2's round-robin scheduler can stay on a
	# busy vCPU for good, so the workers yield (wfi) every 16 ops.
	ic="-icount shift=0,sleep=off"
	o="icount=1 yield=16 ops=3000 seed=7 stat=1 check=1 xfer=20 irq=2 fail=2"
	boot replay1 4 "$ic" "$o"; r1=$?
	boot replay2 4 "$ic" "$o"; r2=$?
	boot replay3 1 "$ic" "${o/seed=7/seed=8}"; r3=$?
	boot replay4 1 "$ic" "$o"; r4=$?
	if [ $r1 = 0 ] && [ $r2 = 0 ] && succeeded "$logs/replay1.log" &&
	   cmp -s "$logs/replay1.log" "$logs/replay2.log"; then
		ok "replay.same_seed_byte_identical ($(wc -l <"$logs/replay1.log") lines)"
	else
		bad replay.same_seed_byte_identical "status $r1/$r2; diff $logs/replay1.log $logs/replay2.log"
	fi
	if [ $r3 = 0 ] && [ $r4 = 0 ] && succeeded "$logs/replay3.log" &&
	   ! cmp -s <(run_part "$logs/replay4.log") <(run_part "$logs/replay3.log"); then
		ok replay.other_seed_differs
	else
		bad replay.other_seed_differs "status $r3, or seed 8 printed what seed 7 did"
	fi
	;;
smp)
	KERNEL=$1
	for cfg in "4|secs=3 fail=2 xfer=30 irq=4 onoff=1 check=1 stat=1" \
		   "8|secs=3 mgr=umm,kmalloc fail=1 onoff=1 xfer=50 irq=10 check=1 stat=1"; do
		smp=${cfg%%|*}
		opts=${cfg#*|}
		name=smp$smp
		boot "$name" "$smp" "" "$opts"; rc=$?
		cycles=$(grep -aoE '[0-9]+ hot-plug cycles' "$logs/$name.log" | grep -oE '^[0-9]+')
		if [ $rc = 0 ] && succeeded "$logs/$name.log" && [ "${cycles:-0}" -gt 0 ]; then
			ok "smp.${smp}_harts ($cycles hot-plug cycles)"
		else
			bad "smp.${smp}_harts" "status $rc, ${cycles:-no} hot-plug cycles ($logs/$name.log)"
		fi
	done
	# the watchdog: a hart that stops in an operation, one that never
	# arrives at the check barrier, one that hangs for good (the run must
	# still end); each must fail naming hart 3, and QEMU must exit failing
	for d in stall stallwait wedge; do
		boot "watchdog_$d" 4 "" "secs=60 check=1 stat=1 watchdog=3 debug=$d"; rc=$?
		line=$(tr -d '\r' <"$logs/watchdog_$d.log" | grep -a '^stress: FAILURE: ' | tail -n 1)
		if [ $rc = 1 ] && echo "$line" |
		   grep -qE "^stress: FAILURE: watchdog: hart 3 made no progress for [0-9]+ s in [a-z]+ .*\(seed 1\)$"; then
			ok "smp.watchdog_${d}_caught"
		else
			bad "smp.watchdog_${d}_caught" "status $rc, line '$line' ($logs/watchdog_$d.log)"
		fi
	done
	# partitions as stressors of a shared area: a clean run counts their
	# ops; a corrupted block and a fault must fail naming the partition
	boot parts 4 "" "secs=2 parts=8 pops=2000 check=1 stat=1"; rc=$?
	pops=$(tr -d '\r' <"$logs/parts.log" | grep -aoE '^stress: parts=8: [0-9]+ partition ops' | grep -oE '[0-9]+ partition' | grep -oE '^[0-9]+')
	if [ $rc = 0 ] && succeeded "$logs/parts.log" && [ "${pops:-0}" = 16000 ]; then
		ok "smp.parts ($pops partition ops)"
	else
		bad smp.parts "status $rc, ${pops:-no} partition ops ($logs/parts.log)"
	fi
	# beside the harts' workload: their ops counted while it runs (the
	# stat lines), harts with live partitions not hot-plugged (said),
	# hot-plug going on once they ended
	boot parts_beside 4 "" "secs=10 parts=4 onoff=1 stat=1"; rc=$?
	l=$(tr -d '\r' <"$logs/parts_beside.log")
	pops=$(echo "$l" | grep -aoE '^stress: parts=4: [0-9]+ partition ops beside [0-9]+' | grep -oE '^stress: parts=4: [0-9]+' | grep -oE '[0-9]+$')
	during=$(echo "$l" | sed -n '/^stress: parts=4: 4 partitions/,/^stress: parts=4: [0-9]/p' | grep -acE '^stress: [0-9]+s ops .* part-ops [1-9]')
	skips=$(echo "$l" | grep -acE '^stress: onoff: hart [1-3] has live partitions: not stopped')
	cycles=$(echo "$l" | grep -aoE '[0-9]+ hot-plug cycles' | grep -oE '^[0-9]+')
	if [ $rc = 0 ] && succeeded "$logs/parts_beside.log" && [ "${pops:-0}" = 8000 ] &&
	   [ "$during" -gt 0 ] && [ "$skips" -gt 0 ] && [ "${cycles:-0}" -gt 0 ] &&
	   echo "$l" | grep -qaE '^stress:  mm: .* ops by the harts .*, 8000 by 4 partitions'; then
		ok "smp.parts_beside ($pops partition ops, $during stat lines with their ops during the workload, $skips harts skipped by hot-plug, $cycles cycles)"
	else
		bad smp.parts_beside "status $rc, ${pops:-no} partition ops, $during stat lines, $skips skips, ${cycles:-no} cycles ($logs/parts_beside.log)"
	fi
	for d in kblock kfault; do
		boot "parts_$d" 4 "" "secs=1 parts=4 pops=500 debug=$d"; rc=$?
		line=$(tr -d '\r' <"$logs/parts_$d.log" | grep -a '^stress: FAILURE: ' | tail -n 1)
		if [ $rc = 1 ] && echo "$line" | grep -qE "^stress: FAILURE: partition stress3#[0-9]+ on hart 3 (exited with status 23|was stopped: load page fault)"; then
			ok "smp.parts_${d}_caught"
		else
			bad "smp.parts_${d}_caught" "status $rc, line '$line' ($logs/parts_$d.log)"
		fi
	done
	for m in umm kmalloc; do
		boot "corrupt_$m" 4 "" "ops=40000 corrupt=1 mgr=$m"; rc=$?
		line=$(tail -n 5 "$logs/corrupt_$m.log" | tr -d '\r' | grep '^stress: FAILURE: ')
		if [ $rc = 1 ] && echo "$line" | grep -q "^stress: FAILURE: $m: block .* byte .*(seed 1)$"; then
			ok "smp.corrupt_${m}_caught"
		else
			bad "smp.corrupt_${m}_caught" "status $rc, last line '$line'"
		fi
	done
	;;
barrier)
	# hot-plug while the others wait at the check barrier: 20 s of
	# check=1 onoff=1 on 8 harts, RUNS times (default 3), all SUCCESS
	KERNEL=$1
	for r in $(seq "${RUNS:-3}"); do
		boot "barrier$r" 8 "" "secs=20 check=1 onoff=1 stat=5 seed=$r"; rc=$?
		cycles=$(grep -aoE '[0-9]+ hot-plug cycles' "$logs/barrier$r.log" | grep -oE '^[0-9]+')
		checks=$(tr -d '\r' <"$logs/barrier$r.log" | grep -aoE '[0-9]+ checks$' | grep -oE '^[0-9]+')
		if [ $rc = 0 ] && succeeded "$logs/barrier$r.log" && [ "${cycles:-0}" -gt 0 ]; then
			ok "barrier.run$r ($cycles hot-plug cycles, ${checks:-?} checks)"
		else
			bad "barrier.run$r" "status $rc, ${cycles:-no} hot-plug cycles ($logs/barrier$r.log)"
		fi
	done
	;;
host)
	st=$1
	tsan=$2
	o="harts=4 secs=2 fail=2 xfer=50 irq=4 onoff=20 check=1 stat=1"
	"$st" $o >"$logs/host-asan.log" 2>&1; rc=$?
	if [ $rc = 0 ] && succeeded "$logs/host-asan.log"; then ok host.asan; else
		bad host.asan "status $rc ($logs/host-asan.log)"; fi
	TSAN_OPTIONS=halt_on_error=1 "$tsan" $o >"$logs/host-tsan.log" 2>&1; rc=$?
	if [ $rc = 0 ] && succeeded "$logs/host-tsan.log" &&
	   ! grep -q ThreadSanitizer "$logs/host-tsan.log"; then ok host.tsan; else
		bad host.tsan "status $rc ($logs/host-tsan.log)"; fi
	for m in umm kmalloc lmm mm; do
		"$st" harts=2 ops=20000 corrupt=1 mgr=$m >"$logs/host-corrupt-$m.log" 2>&1; rc=$?
		if [ $rc = 1 ] && tail -n 1 "$logs/host-corrupt-$m.log" |
		   grep -q "^stress: FAILURE: $m: block .* byte "; then ok "host.corrupt_${m}_caught"
		else bad "host.corrupt_${m}_caught" "status $rc ($logs/host-corrupt-$m.log)"; fi
	done
	for d in stall stallwait wedge; do
		"$st" harts=3 secs=60 check=1 watchdog=2 debug=$d >"$logs/host-watchdog-$d.log" 2>&1; rc=$?
		if [ $rc = 1 ] && grep -q "^stress: FAILURE: watchdog: hart 2 made no progress for [0-9]* s in " \
		   "$logs/host-watchdog-$d.log"; then ok "host.watchdog_${d}_caught"
		else bad "host.watchdog_${d}_caught" "status $rc ($logs/host-watchdog-$d.log)"; fi
	done
	"$st" harts=2 ops=100 mgr=nosuch >"$logs/host-badopt.log" 2>&1; rc=$?
	if [ $rc = 1 ] && grep -q "bad option 'mgr=nosuch'" "$logs/host-badopt.log"; then
		ok host.bad_option_refused
	else
		bad host.bad_option_refused "status $rc"
	fi
	;;
*)
	echo "stress.sh: unknown mode $mode" >&2
	exit 2
	;;
esac
echo "stress-$mode: $pass passed, $fail failed"
[ "$fail" = 0 ]
