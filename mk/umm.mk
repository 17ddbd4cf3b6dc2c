# umm: micro memory manager (mm/umm), its unit suite (also under TSan), its
# fuzzer and the host allocator benchmark shared with other managers.
UMM_SRCS    := mm/umm.c mm/umm_cache.c mm/umm_check.c mm/umm_chunk.c mm/umm_fit.c
MM_SRCS     += $(UMM_SRCS)
UNIT_SRCS   += tests/unit/umm_test.c
TSAN_SUITES += umm
FUZZERS     += umm
BENCH_STEPS += bench-alloc

# bench/alloc_bench: -O2 without sanitizers, so not a HOST_PROGS entry. A
# manager joining the benchmark appends its source here (fragments that sort
# before this one are seen by the prerequisites, all of them by the recipe).
ALLOC_BENCH_SRCS += bench/alloc_bench.c mm/env_host.c $(UMM_SRCS)

$(HB)/alloc_bench: $(ALLOC_BENCH_SRCS) $(wildcard include/*.h mm/*.h) | $(HB)
	@echo "  HOSTCC  $@ (-O2)"
	$(Q)$(HOST_CC) -std=gnu11 -O2 -g $(HOST_WARN) $(HOST_INC) -DHOST_BUILD \
		-o $@ $(sort $(ALLOC_BENCH_SRCS)) -lpthread

bench-alloc: $(HB)/alloc_bench
	$(Q)bash bench/alloc_bench.sh $(HB)/alloc_bench

.PHONY: bench-alloc
