# lmm: list-based memory manager (mm/lmm) and the physical page layer on it
# (mm/pmem), their unit suites, fuzzer and benchmark.
MM_SRCS     += mm/lmm.c mm/pmem.c
UNIT_SRCS   += tests/unit/lmm_test.c tests/unit/pmem_test.c
TSAN_SUITES += pmem
FUZZERS     += lmm
BENCH_STEPS += bench-lmm

# The benchmark: a HOST_BENCHES entry (-O2, no sanitizers).
LMM_BENCH_SRCS := bench/lmm_bench.c mm/env_host.c mm/lmm.c mm/pmem.c

HOST_BENCHES += lmm_bench
lmm_bench_SRCS = $(LMM_BENCH_SRCS)

bench-lmm: $(HB)/lmm_bench
	$(Q)$(HB)/lmm_bench

.PHONY: bench-lmm
