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
# KO: the one kernel build (below); $(KB) holds a copy of its kernel.elf
KO  := $(B)/kernel

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
HOST_BENCHES  :=   # build/host/<name> benchmarks (-O2, no sanitizers)

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
# The linker script is build/kernel/kernel.ld, linker/kernel.ld after
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

# Host benchmarks: build/host/NAME from NAME_SRCS, -O2 and no sanitizers
# (so not HOST_PROGS), plus NAME_CFLAGS; expanded after every fragment.
define host_bench
$(HB)/$(1): $$($(1)_SRCS) $(wildcard include/*.h mm/*.h) | $(HB)
	@echo "  HOSTCC  $$@ (-O2)"
	$(Q)$(HOST_CC) -std=gnu11 -O2 -g $$($(1)_CFLAGS) $(HOST_WARN) $(HOST_INC) -DHOST_BUILD \
		-o $$@ $$($(1)_SRCS) -lpthread
endef
$(foreach p,$(HOST_BENCHES),$(eval $(call host_bench,$(p))))

host: $(HB)/unit $(addprefix $(HB)/,$(HOST_PROGS))

# ---- kernel build ----------------------------------------------------------
KERNEL_SRCS = $(wildcard kernel/*.S kernel/*.c sbi/*.c apps/*.c) $(PLATFORM_SRCS) $(KERNEL_ONLY_SRCS) \
	      $(MM_SRCS) tests/ktest.c $(UNIT_SRCS) $(KTEST_SRCS)

# One kernel binary serves every board (it reads the device tree): it is
# compiled and linked once in build/kernel/, and each platform's directory
# (PLATFORMS above) gets a copy, so that scripts name build/<platform>/.
$(KO)/%.c.o: %.c | deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(KCC) $(KCFLAGS) -MMD -MP -c -o $@ $<

$(KO)/%.S.o: %.S | deps
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	$(Q)$(KCC) $(KCFLAGS) -MMD -MP -c -o $@ $<

$(KO)/kernel.elf: $(patsubst %,$(KO)/%.o,$(KERNEL_SRCS)) $(KO)/kernel.ld
	@echo "  LD      $@"
	$(Q)$(KCC) $(KLDFLAGS) -T $(KO)/kernel.ld -Wl,-Map,$(KO)/kernel.map -o $@ \
		$(patsubst %,$(KO)/%.o,$(KERNEL_SRCS))

-include $(patsubst %,$(KO)/%.d,$(KERNEL_SRCS)) $(KO)/kernel.ld.d

$(foreach p,$(PLATFORMS),$(B)/$(p)/kernel.elf): $(KO)/kernel.elf
	@mkdir -p $(dir $@)
	$(Q)cp $< $@

all: $(KB)/kernel.elf host

deps:
	$(Q)bash ci/deps.sh

# ---- running ---------------------------------------------------------------
QEMU_virt     := qemu-system-riscv64 -M virt -m $(MEM) -smp $(SMP)
QEMU_sifive_u := qemu-system-riscv64 -M sifive_u -m $(MEM) -smp $(if $(filter 4,$(SMP)),5,$(SMP))
QEMU          := $(QEMU_$(PLATFORM)) -nographic -bios default -kernel $(KB)/kernel.elf

# RUN_DEPS, RUN_QEMU: what fragments add to `make run` (mk/sdk.mk: the initrd)
run: $(KB)/kernel.elf $(RUN_DEPS)
	$(Q)bash ci/qemu.sh --timeout 120 --log $(B)/logs/run.log -- \
		$(QEMU) $(RUN_QEMU) -append "$(BOOTARGS)"

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
	@echo "partitions: make partition SRC='a.c b.c' NAME=prod (-> build/parts/prod.elf), make examples,"
	@echo "         make run PARTS='prod.elf cons.elf' BOOTARGS='part=prod@1,cons@2 area=board:64K:1M'"

.PHONY: all host deps run debug test bench test-unit test-tsan test-fuzz clean help
.DEFAULT_GOAL := all
