#!/usr/bin/env bash
# qemu.sh [--timeout S] [--log FILE] [--max-log BYTES] [--finisher yes|no] -- QEMU-COMMAND...
#
# Boot the kernel, copy the console to stdout (and to FILE), and decide the
# run from what no partition can produce:
#  - the kernel's last line: a whole console line that is exactly
#    "shutdown: ok" or "shutdown: failure". Every line a partition writes
#    starts with its "[name#id] " tag, with control characters escaped
#    (kernel/console.c), so a line that starts with "shutdown: " is the
#    kernel's own; text after a tag, an unterminated line or a flood cannot
#    look like one;
#  - on machines with the sifive,test0 finisher (QEMU virt, the default for
#    "-M virt"), QEMU's own exit status, which only the kernel can set (0
#    pass, 1 failure), and which must agree with that line. Boards without
#    one (sifive_u) do not end QEMU on System Reset: there the harness stops
#    QEMU once the kernel's last line is out.
# Exit status: 0 pass; 1 the kernel reported failure (or a panic), or the
# finisher and the last line disagree; 2 timeout, a log over BYTES (default
# 64 MiB: a flood), or QEMU ended without the kernel's last line.
set -u
timeout=120
log=""
maxlog=$((64 << 20))
finisher=auto
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--max-log) maxlog=$2; shift 2 ;;
	--finisher) finisher=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "qemu.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
if [ "$finisher" = auto ]; then
	finisher=no
	prev=""
	for a in "$@"; do
		case "$prev" in -M|-machine) case "$a" in virt|virt,*) finisher=yes ;; esac ;; esac
		prev=$a
	done
fi
[ -n "$log" ] || log=$(mktemp)
mkdir -p "$(dirname "$log")"
: >"$log"
chunk=$(mktemp)
trap 'rm -f "$chunk"' EXIT

LAST_RE='^shutdown: (ok|failure)'$'\r''?$'

"$@" </dev/null >"$log" 2>&1 &
qpid=$!
tail -n +1 -f "$log" --pid=$qpid 2>/dev/null &
tpid=$!

# new_lines: does the log have the kernel's last line among the whole lines
# written since the previous call? Scans only new bytes, up to the last
# newline, so a flood costs each byte once and a line is never judged by a
# piece of it.
scanned=0
new_lines() {
	local size n
	size=$(stat -c %s "$log")
	[ "$size" -gt "$scanned" ] || return 1
	tail -c +$((scanned + 1)) "$log" | head -c $((size - scanned)) >"$chunk"
	n=$(tr -cd '\n' <"$chunk" | wc -c)
	[ "$n" -gt 0 ] || return 1
	scanned=$((scanned + $(head -n "$n" "$chunk" | wc -c)))
	head -n "$n" "$chunk" | grep -aqE "$LAST_RE"
}

end=$(( $(date +%s) + timeout ))
status=""
while kill -0 $qpid 2>/dev/null; do
	if new_lines; then
		# give QEMU a moment to leave by itself (virt's finisher)
		for _ in $(seq 1 25); do
			kill -0 $qpid 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 $qpid 2>/dev/null; then
			kill $qpid 2>/dev/null
			[ "$finisher" = yes ] && status=nofinish
		fi
		break
	fi
	if [ "$(stat -c %s "$log")" -gt "$maxlog" ]; then
		kill $qpid 2>/dev/null
		status=flood
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

case "$status" in
timeout) echo "qemu.sh: timeout after ${timeout}s" >&2; exit 2 ;;
flood) echo "qemu.sh: console log over $maxlog bytes, QEMU stopped" >&2; exit 2 ;;
esac
last=$(grep -aE "$LAST_RE" "$log" | tail -n 1 | tr -d '\r')
if [ -z "$last" ]; then
	echo "qemu.sh: QEMU exited ($qrc) before the kernel shut down" >&2
	exit 2
fi
if [ "$finisher" = yes ]; then
	if [ "$status" = nofinish ]; then
		echo "qemu.sh: '$last' but the test finisher did not end QEMU" >&2
		exit 1
	fi
	if [ "$last" = "shutdown: ok" ] && [ "$qrc" = 0 ]; then
		exit 0
	fi
	if [ "$last" = "shutdown: ok" ]; then
		echo "qemu.sh: '$last' but QEMU's finisher status is $qrc" >&2
	fi
	exit 1
fi
[ "$last" = "shutdown: ok" ] && exit 0
exit 1
