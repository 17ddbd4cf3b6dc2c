# programs: CPU indexes of host threads (mm/env_host.h) and their tests; the
# malloc replacement libraries built from the managers (tools/malloc); real
# programs run under them by `make test` and timed by `make bench-programs`.
HOST_ONLY_SRCS += tests/host/env_cpu_test.c
TSAN_SUITES    += env_cpu

# The malloc replacements: -O2, no sanitizers, -fPIC; only the malloc
# family is exported; initial-exec TLS (an LD_PRELOAD library sits in the
# static TLS block, and __tls_get_addr could call malloc).
SHIM_CFLAGS = -std=gnu11 -O2 -g -fPIC -shared -fvisibility=hidden -ftls-model=initial-exec \
	       -fno-builtin-malloc -fno-builtin-calloc \
	       $(HOST_WARN) -Iinclude -Imm -Itools/malloc -DHOST_BUILD
SHIM_COMMON := tools/malloc/shim.c mm/env_host.c
SHIM_umm     := tools/malloc/shim_umm.c $(sort $(wildcard mm/umm*.c))
SHIM_kmalloc := tools/malloc/shim_kmalloc.c $(sort $(wildcard mm/kmalloc*.c)) mm/lmm.c
SHIMS        := $(HB)/libumm-malloc.so $(HB)/libkmalloc-malloc.so

define shim_rule
$(HB)/lib$(1)-malloc.so: $(SHIM_COMMON) tools/malloc/shim.h $(SHIM_$(1)) $(wildcard include/*.h mm/*.h) | $(HB)
	@echo "  HOSTCC  $$@ (-O2, shared)"
	$$(Q)$$(HOST_CC) $$(SHIM_CFLAGS) -o $$@ $(SHIM_COMMON) $(SHIM_$(1)) -lpthread
endef
$(foreach m,umm kmalloc,$(eval $(call shim_rule,$(m))))

shims: $(SHIMS)
.PHONY: shims

# C programs of the real-program test and benchmark: -O2, no sanitizers,
# plain glibc malloc unless a shim is preloaded.
PROGRAM_BINS := threads keydtor forker api
$(HB)/programs/%: tests/programs/%.c
	@mkdir -p $(dir $@)
	@echo "  HOSTCC  $@ (-O2)"
	$(Q)$(HOST_CC) -std=gnu11 -O2 -g $(HOST_WARN) -pthread -o $@ $<

# Known failures, as program:manager pairs (none today); a listed pair that
# passes prints XPASS and counts as a failure until it is removed.
PROGRAMS_XFAIL ?=

test-programs: $(SHIMS) $(addprefix $(HB)/programs/,$(PROGRAM_BINS))
	$(Q)bash ci/deps.sh programs
	$(Q)PROGRAMS_XFAIL="$(PROGRAMS_XFAIL)" bash ci/programs.sh $(SHIMS)

TEST_STEPS += test-programs
.PHONY: test-programs

# Not in `make test` or `make bench`: minutes of real programs.
bench-programs: $(SHIMS) $(addprefix $(HB)/programs/,$(PROGRAM_BINS) workloads)
	$(Q)bash ci/bench-programs.sh $(SHIMS)

.PHONY: bench-programs
