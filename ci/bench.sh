#!/usr/bin/env bash
# bench.sh STEP... - run each benchmark step (a make target); logs go to
# build/logs/bench-STEP.log and the figures to the terminal.
set -u
cd "$(dirname "$0")/.."
mkdir -p build/logs
rc=0
for step in "$@"; do
	echo "== $step"
	make --no-print-directory "$step" 2>&1 | tee "build/logs/bench-$step.log"
	[ "${PIPESTATUS[0]}" = 0 ] || { echo "$step: failed"; rc=1; }
done
exit $rc
