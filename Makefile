# Makefile - the one entry point. `make help` lists targets and knobs.
#
# Module fragments in mk/*.mk add their sources and steps to the lists below;
# this file holds the rules.

PLATFORM ?= virt
SMP      ?= 4
MEM      ?= 512M
BOOTARGS ?=
V        ?= 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

B   := build
KB  := $(B)/$(PLATFORM)
HB  := $(B)/host

# ---- lists the fragments extend -------------------------------------------
MM_SRCS       :=   # managers: built for the kernel and for the host
PLATFORM_SRCS :=   # platform code shared by kernel and host (FDT, board)
UNIT_SRCS     :=   # tests built into the host unit binary and the kernel
KTEST_SRCS    :=   # kernel-only test suites
KERNEL_ONLY_SRCS := # kernel-only sources outside kernel/ and sbi/
HOST_ONLY_SRCS :=  # host-only tests and helpers, linked into build/host/unit
TSAN_SUITES   :=   # suites of the unit tests also run under ThreadSanitizer
FUZZERS       :=   # names N with tests/fuzz/N_fuzz.c
TEST_STEPS    :=   # make targets run by `make test`, each ending "N passed, N failed"
BENCH_STEPS   :=   # make targets run by `make bench`
HOST_PROGS    :=   # build/host/<name> programs built by `make host`

# ---- toolchain for the kernel and partitions (fragments use these) -------
PLATFORMS := virt sifive_u
CROSS    ?= riscv64-unknown-elf-
KCC      := $(CROSS)gcc
KARCH    := -march=rv64imac_zicsr_zifencei -mabi=lp64 -mcmodel=medany
# gcc 12 picks picolibc's multilib by the plain ISA string only
KARCH_LD := -march=rv64imac -mabi=lp64 -mcmodel=medany
# picolibc's default build is size-optimised (its memset stores a byte at a
# time); the release build has word-at-a-time string functions.
PICOLIBC := --specs=picolibc.specs --picolibc-buildtype=release
KCFLAGS  := $(KARCH) $(PICOLIBC) -std=gnu11 -O2 -g -Wall -Wextra \
	    -Wno-unused-parameter -ffreestanding -fno-common -fno-pie \
	    -fno-omit-frame-pointer -ftls-model=local-exec \
	    -Iinclude -Imm -Iplatform -Isbi -Ikernel -Itests -DKERNEL_BUILD
# The linker script is build/<platform>/kernel.ld, linker/kernel.ld after
# the preprocessor (mk/kernel.mk), given with -T by the link rule.
KLDFLAGS := $(KARCH_LD) $(PICOLIBC) -nostartfiles -static -no-pie \
	    -Wl,--gc-sections

include $(sort $(wildcard mk/*.mk))

# ---- host builds -----------------------------------------------------------
HOST_CC      ?= gcc
FUZZ_CC      ?= clang
HOST_WARN    := -Wall -Wextra -Wno-unused-parameter
HOST_INC     := -Iinclude -Imm -Iplatform -Itests
HOST_BASE    := -std=gnu11 -g -O1 -fno-omit-frame-pointer $(HOST_WARN) $(HOST_INC) -DHOST_BUILD
HOST_ASAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
HOST_TSAN    := -fsanitize=thread
HOST_LIB_SRCS = mm/env_host.c $(MM_SRCS) $(PLATFORM_SRCS)
UNIT_ALL     = tests/host/main.c tests/host/env.c tests/ktest.c $(HOST_LIB_SRCS) \
	       $(UNIT_SRCS) $(HOST_ONLY_SRCS)

$(HB)/unit: $(UNIT_ALL) $(wildcard include/*.h mm/*.h platform/*.h tests/*.h tests/unit/*.h) | $(HB)
	@echo "  HOSTCC  $@"
	$(Q)$(HOST_CC) $(HOST_BASE) $(HOST_ASAN) -o $@ $(UNIT_ALL) -lpthread

$(HB)/unit-tsan: $(UNIT_ALL) $(wildcard include/*.h mm/*.h platform/*.h tests/*.h tests/unit/*.h) | $(HB)
	@echo "  HOSTCC  $@ (tsan)"
	$(Q)$(HOST_CC) $(HOST_BASE) -O2 $(HOST_TSAN) -o $@ $(UNIT_ALL) -lpthread

$(HB)/fuzz-%: tests/fuzz/%_fuzz.c $(HOST_LIB_SRCS) $(wildcard include/*.h mm/*.h platform/*.h) | $(HB)
	@echo "  FUZZCC  $@"
	$(Q)$(FUZZ_CC) $(HOST_BASE) -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ $< $(HOST_LIB_SRCS)

$(HB):
	$(Q)mkdir -p $@

# Host programs: build/host/NAME from the sources in NAME_SRCS (a fragment
# sets both), ASan and UBSan on.
define host_prog
$(HB)/$(1): $$($(1)_SRCS) $(HOST_LIB_SRCS) $(wildcard include/*.h mm/*.h platform/*.h) | $(HB)
	@echo "  HOSTCC  $$@"
	$(Q)$(HOST_CC) $(HOST_BASE) $(HOST_ASAN) -o $$@ $$($(1)_SRCS) $(HOST_LIB_SRCS) $$($(1)_LIBS) -lpthread
endef
$(foreach p,$(HOST_PROGS),$(eval $(call host_prog,$(p))))

host: $(HB)/unit $(addprefix $(HB)/,$(HOST_PROGS))

# ---- kernel build ----------------------------------------------------------
KERNEL_SRCS = $(wildcard kernel/*.S kernel/*.c sbi/*.c) $(PLATFORM_SRCS) $(KERNEL_ONLY_SRCS) \
	      $(MM_SRCS) tests/ktest.c $(UNIT_SRCS) $(KTEST_SRCS)

# One kernel binary serves every board (it reads the device tree); each
# platform (PLATFORMS above) still gets its own build directory.
define kernel_rules
$(B)/$(1)/%.c.o: %.c | deps
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$<"
	$(Q)$(KCC) $(KCFLAGS) -MMD -MP -c -o $$@ $$<

$(B)/$(1)/%.S.o: %.S | deps
	@mkdir -p $$(dir $$@)
	@echo "  AS      $$<"
	$(Q)$(KCC) $(KCFLAGS) -MMD -MP -c -o $$@ $$<

$(B)/$(1)/kernel.elf: $$(patsubst %,$(B)/$(1)/%.o,$$(KERNEL_SRCS)) $(B)/$(1)/kernel.ld
	@echo "  LD      $$@"
	$(Q)$(KCC) $(KLDFLAGS) -T $(B)/$(1)/kernel.ld -Wl,-Map,$(B)/$(1)/kernel.map -o $$@ \
		$$(patsubst %,$(B)/$(1)/%.o,$$(KERNEL_SRCS))

-include $$(patsubst %,$(B)/$(1)/%.d,$$(KERNEL_SRCS)) $(B)/$(1)/kernel.ld.d
endef
$(foreach p,$(PLATFORMS),$(eval $(call kernel_rules,$(p))))

all: $(KB)/kernel.elf host

deps:
	$(Q)bash ci/deps.sh

# ---- running ---------------------------------------------------------------
QEMU_virt     := qemu-system-riscv64 -M virt -m $(MEM) -smp $(SMP)
QEMU_sifive_u := qemu-system-riscv64 -M sifive_u -m $(MEM) -smp $(if $(filter 4,$(SMP)),5,$(SMP))
QEMU          := $(QEMU_$(PLATFORM)) -nographic -bios default -kernel $(KB)/kernel.elf

run: $(KB)/kernel.elf
	$(Q)bash ci/qemu.sh --timeout 120 --log $(B)/logs/run.log -- \
		$(QEMU) -append "$(BOOTARGS)"

debug: $(KB)/kernel.elf
	$(Q)bash ci/deps.sh debug
	@echo "QEMU waits for gdb on :1234; in another shell:"
	@echo "  gdb-multiarch $(KB)/kernel.elf -ex 'target remote :1234'"
	$(QEMU) -append "$(BOOTARGS)" -S -s

# ---- tests and benchmarks ---------------------------------------------------
test: deps
	$(Q)bash ci/test.sh $(TEST_STEPS)

bench: deps
	$(Q)bash ci/deps.sh bench
	$(Q)bash ci/bench.sh $(BENCH_STEPS)

test-unit: $(HB)/unit
	$(Q)$(HB)/unit

test-tsan: $(HB)/unit-tsan
	$(Q)if [ -n "$(strip $(TSAN_SUITES))" ]; then \
		TSAN_OPTIONS=halt_on_error=1 KTEST_CPUS=4 $(HB)/unit-tsan $(TSAN_SUITES); \
	else echo "0 passed, 0 failed"; fi

FUZZ_SECONDS ?= 10
test-fuzz: $(addprefix $(HB)/fuzz-,$(FUZZERS))
	$(Q)bash ci/fuzz.sh $(FUZZ_SECONDS) $(FUZZERS)

TEST_STEPS := test-unit test-tsan test-fuzz $(TEST_STEPS)

clean:
	rm -rf $(B)

help:
	@echo "targets: all run test bench debug clean help host soak"
	@echo "knobs:   PLATFORM=virt|sifive_u (default virt)  SMP=n (default 4)"
	@echo "         MEM=size (default 512M)  BOOTARGS='run=demo|test=<suite>|test=all|bench=<name>'"
	@echo "         BOOT=opensbi|uboot (uboot: OpenSBI, U-Boot, extlinux, booti; virt only)"
	@echo "         V=1 shows every command"

.PHONY: all host deps run debug test bench test-unit test-tsan test-fuzz clean help
.DEFAULT_GOAL := all
