#!/usr/bin/env bash
# soak.sh KERNEL - boot QEMU virt with SOAK_SMP (8) harts SOAK_BOOTS (100)
# times in a row, alternating the demo (run=demo) and a run of the stress
# tool on every hart (SOAK_STRESS, default 'stress=secs=15 onoff=1
# xfer=20': every manager, hart hot-plug, cross-hart frees; a test=...
# value runs test suites instead), and report hangs, failures and the
# slowest boot. Not part of `make test` (`make soak`). Every boot's log is kept in
# build/logs/soak/; the last line is "soak: N boots: P passed, F failed
# (H hangs); slowest ...".
set -u
cd "$(dirname "$0")/.."
kv=$1
boots=${SOAK_BOOTS:-100}
smp=${SOAK_SMP:-8}
stress=${SOAK_STRESS:-stress=secs=15 onoff=1 xfer=20}
timeout=${SOAK_TIMEOUT:-600}
logs=build/logs/soak
mkdir -p "$logs"
pass=0 fail=0 hangs=0 slow=0 slow_i=0 total=0
for i in $(seq 1 "$boots"); do
	if [ $((i % 2)) = 1 ]; then args=run=demo; else args=$stress; fi
	log=$logs/boot$i.log
	t0=$(date +%s)
	bash ci/qemu.sh --timeout "$timeout" --log "$log" -- qemu-system-riscv64 -nographic \
		-bios default -M virt -smp "$smp" -m 512M -kernel "$kv" -append "$args" >/dev/null
	rc=$?
	dt=$(($(date +%s) - t0))
	total=$((total + dt))
	if [ "$dt" -gt "$slow" ]; then slow=$dt slow_i=$i; fi
	ok=0
	if [ $rc = 0 ] && grep -q "^harts online: $smp:" "$log"; then
		case $args in
		run=demo) grep -q '^demo: done' "$log" && ok=1 ;;
		test=*) grep -qE '^[0-9]+ passed, 0 failed' "$log" && ok=1 ;;
		stress=*) grep -q '^stress: SUCCESS' "$log" && ok=1 ;;
		*) ok=1 ;;
		esac
	fi
	if [ $ok = 1 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		[ $rc = 2 ] && hangs=$((hangs + 1))
		echo "soak: boot $i ($args) failed, exit $rc, ${dt} s: $log"
		grep -E '^(FAIL|panic)' "$log" | head -5
	fi
	echo "soak: boot $i ($args) exit $rc ${dt} s" >>"$logs/summary"
done
echo "soak: $boots boots ($smp harts, run=demo and $stress alternating):" \
	"$pass passed, $fail failed ($hangs hangs, timeout $timeout s);" \
	"slowest boot $slow_i ($slow s), mean $((total / boots)) s"
[ "$fail" = 0 ]
