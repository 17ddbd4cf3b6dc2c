#!/usr/bin/env bash
# test.sh STEP... - run each test step (a make target), keep its log under
# build/logs/, and add up the "N passed, N failed" line each step ends with.
# A step that exits non-zero without such a line counts as one failure.
set -u
cd "$(dirname "$0")/.."
mkdir -p build/logs
start=$(date +%s)
total_p=0
total_f=0
for step in "$@"; do
	log="build/logs/$step.log"
	echo "== $step"
	make --no-print-directory "$step" 2>&1 | tee "$log" | grep -E '^(FAIL|ok |[A-Za-z0-9_-]+: [0-9]+ passed)|^[0-9]+ passed, [0-9]+ failed' | grep -v '^ok ' || true
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^([A-Za-z0-9_=.-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
		p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
		if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
	else
		p=0
		f=1
		echo "$step: exited $rc without a summary (log: $log)"
		tail -n 20 "$log"
	fi
	echo "$step: $p passed, $f failed"
	total_p=$((total_p + p))
	total_f=$((total_f + f))
done
echo "== make test took $(( $(date +%s) - start )) s"
echo "$total_p passed, $total_f failed"
[ "$total_f" = 0 ]
