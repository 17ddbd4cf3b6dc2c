# kmalloc: kernel object allocator (mm/kmalloc), its unit suite (also run
# under TSan), fuzzer and host benchmark against glibc/jemalloc/tcmalloc/mimalloc.
KMALLOC_SRCS := mm/kmalloc.c mm/kmalloc_cache.c mm/kmalloc_debug.c mm/kmalloc_large.c \
		mm/kmalloc_map.c mm/kmalloc_pool.c mm/kmalloc_stats.c
MM_SRCS     += $(KMALLOC_SRCS)
UNIT_SRCS   += tests/unit/kmalloc_test.c tests/unit/kmalloc_map_test.c
TSAN_SUITES += kmalloc
FUZZERS     += kmalloc
BENCH_STEPS += bench-kmalloc

# A HOST_BENCHES entry (-O2 without sanitizers). -flto lets the env seam
# (env_cpu, env_irq_save: a tp load and a CSR write in the kernel) inline,
# as the peers' own per-thread lookups do.
KMALLOC_BENCH_SRCS := bench/kmalloc_bench.c mm/env_host.c $(KMALLOC_SRCS)

HOST_BENCHES += kmalloc_bench
kmalloc_bench_SRCS = $(KMALLOC_BENCH_SRCS)
kmalloc_bench_CFLAGS = -flto

bench-kmalloc: $(HB)/kmalloc_bench
	$(Q)bash bench/kmalloc_bench.sh $(HB)/kmalloc_bench

.PHONY: bench-kmalloc

# The debug build (-DKMALLOC_DEBUG: red zones, poisoning, the caller in
# messages) runs the kmalloc suite again, including its debug-only tests.
KDEBUG_SRCS := tests/host/main.c tests/host/env.c tests/ktest.c mm/env_host.c $(KMALLOC_SRCS) \
	       tests/unit/kmalloc_test.c tests/unit/kmalloc_map_test.c

$(HB)/unit-kdebug: $(KDEBUG_SRCS) $(wildcard include/*.h mm/*.h tests/*.h tests/unit/*.h) | $(HB)
	@echo "  HOSTCC  $@ (KMALLOC_DEBUG)"
	$(Q)$(HOST_CC) $(HOST_BASE) $(HOST_ASAN) -DKMALLOC_DEBUG -o $@ $(KDEBUG_SRCS) -lpthread

test-kmalloc-debug: $(HB)/unit-kdebug
	$(Q)$(HB)/unit-kdebug kmalloc

TEST_STEPS += test-kmalloc-debug
.PHONY: test-kmalloc-debug
