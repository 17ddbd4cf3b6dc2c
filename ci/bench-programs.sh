#!/usr/bin/env bash
# bench-programs.sh SHIM... - time real programs and allocator workloads
# under glibc, jemalloc, tcmalloc, mimalloc and each malloc shim, and write
# the table into docs/BENCHMARKS.md (tests/programs/bench_programs.py).
# BENCH_REPS sets the repetitions (default 3). Log: build/logs/.
set -u
cd "$(dirname "$0")/.."
bash ci/deps.sh bench && bash ci/deps.sh programs || exit 1
for lib in libjemalloc.so.2 libtcmalloc_minimal.so.4 libmimalloc.so.2; do
	[ -e "/usr/lib/x86_64-linux-gnu/$lib" ] || { echo "bench-programs: missing $lib"; exit 1; }
done
mkdir -p build/logs
/usr/bin/python3 tests/programs/bench_programs.py build/bench-programs "${BENCH_REPS:-3}" "$@" \
	2>&1 | tee build/logs/bench-programs.log
exit "${PIPESTATUS[0]}"
