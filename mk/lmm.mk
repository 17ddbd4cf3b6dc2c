# lmm: list-based memory manager (mm/lmm) and the physical page layer on it
# (mm/pmem), their unit suites, fuzzer and benchmark.
MM_SRCS     += mm/lmm.c mm/pmem.c
UNIT_SRCS   += tests/unit/lmm_test.c tests/unit/pmem_test.c
TSAN_SUITES += pmem
FUZZERS     += lmm
BENCH_STEPS += bench-lmm

# The benchmark is built with -O2 and no sanitizers, so it is not a
# HOST_PROGS entry (that rule uses -O1 with ASan).
LMM_BENCH_SRCS := bench/lmm_bench.c mm/env_host.c mm/lmm.c mm/pmem.c

$(HB)/lmm_bench: $(LMM_BENCH_SRCS) $(wildcard include/*.h mm/*.h) | $(HB)
	@echo "  HOSTCC  $@ (-O2)"
	$(Q)$(HOST_CC) -std=gnu11 -O2 -g $(HOST_WARN) $(HOST_INC) -DHOST_BUILD \
		-o $@ $(LMM_BENCH_SRCS) -lpthread

bench-lmm: $(HB)/lmm_bench
	$(Q)$(HB)/lmm_bench

.PHONY: bench-lmm
