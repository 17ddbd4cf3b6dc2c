# umm: micro memory manager (mm/umm), its unit suite (also under TSan), its
# fuzzer and the host allocator benchmark shared with other managers.
UMM_SRCS    := mm/umm.c mm/umm_cache.c mm/umm_check.c mm/umm_chunk.c mm/umm_fit.c
MM_SRCS     += $(UMM_SRCS)
UNIT_SRCS   += tests/unit/umm_test.c
TSAN_SUITES += umm
FUZZERS     += umm
BENCH_STEPS += bench-alloc

# bench/alloc_bench (a HOST_BENCHES entry: -O2 without sanitizers). A
# manager joining the benchmark appends its sources to ALLOC_BENCH_SRCS in
# its own fragment.
ALLOC_BENCH_SRCS += bench/alloc_bench.c mm/env_host.c $(UMM_SRCS)

HOST_BENCHES += alloc_bench
alloc_bench_SRCS = $(sort $(ALLOC_BENCH_SRCS))

bench-alloc: $(HB)/alloc_bench
	$(Q)bash bench/alloc_bench.sh $(HB)/alloc_bench

.PHONY: bench-alloc
