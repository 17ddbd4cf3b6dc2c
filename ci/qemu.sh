#!/usr/bin/env bash
# qemu.sh [--timeout S] [--log FILE] -- QEMU-COMMAND...
#
# Boot the kernel, copy the console to stdout (and to FILE), and stop when
# the kernel has shut down: QEMU virt exits by itself through the test
# finisher; on boards where System Reset does not end QEMU (sifive_u) the
# harness recognises the kernel's last line ("shutdown: ok|failure") and
# stops QEMU itself. Exit status: 0 after "shutdown: ok", 1 after
# "shutdown: failure" or a panic, 2 on timeout or when QEMU died without
# the kernel saying why.
set -u
timeout=120
log=""
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "qemu.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -n "$log" ] || log=$(mktemp)
mkdir -p "$(dirname "$log")"
: >"$log"

"$@" </dev/null >"$log" 2>&1 &
qpid=$!
tail -n +1 -f "$log" --pid=$qpid 2>/dev/null &
tpid=$!

end=$(( $(date +%s) + timeout ))
status=""
while kill -0 $qpid 2>/dev/null; do
	if grep -q '^shutdown: ' "$log"; then
		# give QEMU a moment to leave by itself (virt's finisher)
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 $qpid 2>/dev/null || break
			sleep 0.2
		done
		kill $qpid 2>/dev/null
		break
	fi
	if [ "$(date +%s)" -ge "$end" ]; then
		kill $qpid 2>/dev/null
		status=timeout
		break
	fi
	sleep 0.1
done
wait $qpid 2>/dev/null
qrc=$?
sleep 0.2
kill $tpid 2>/dev/null
wait $tpid 2>/dev/null

if [ "$status" = timeout ]; then
	echo "qemu.sh: timeout after ${timeout}s" >&2
	exit 2
fi
if grep -q '^shutdown: ok' "$log"; then
	exit 0
elif grep -q '^shutdown: failure' "$log"; then
	exit 1
fi
echo "qemu.sh: QEMU exited ($qrc) before the kernel shut down" >&2
exit 2
