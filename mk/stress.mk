# stress: the multi-hart stress tool (apps/stress, docs/STRESS.md). The
# engine builds into the kernel (the `stress` program) and, with threads
# as harts, into build/host/stress (ASan) and build/host/stress-tsan.
STRESS_ENGINE := apps/stress/stress.c apps/stress/stress_mgr.c apps/stress/stress_verify.c
KERNEL_ONLY_SRCS += $(STRESS_ENGINE) apps/stress/stress_kernel.c
HOST_PROGS   += stress
stress_SRCS  := $(STRESS_ENGINE) apps/stress/stress_host.c

$(HB)/stress-tsan: $(stress_SRCS) $(HOST_LIB_SRCS) $(wildcard include/*.h mm/*.h apps/stress/*.h) | $(HB)
	@echo "  HOSTCC  $@ (tsan)"
	$(Q)$(HOST_CC) $(HOST_BASE) -O2 $(HOST_TSAN) -o $@ $(stress_SRCS) $(HOST_LIB_SRCS) -lpthread

# make stress [SMP=n] [MEM=size] [PLATFORM=...] [STRESS='options']
#             [DETERMINISTIC=1: -icount shift=0,sleep=off, same seed same run]
STRESS        ?=
DETERMINISTIC ?= 0
STRESS_TIMEOUT ?= 900
stress_comma  := ,
STRESS_ICOUNT  = $(if $(filter 1,$(DETERMINISTIC)),-icount shift=0$(stress_comma)sleep=off)

# Under fixed-rate icount QEMU 7.2's round-robin scheduler may never leave a
# busy hart: the workers then yield (wfi) every 16 ops (docs/STRESS.md).
STRESS_DET_OPTS = $(if $(filter 1,$(DETERMINISTIC)),icount=1 yield=16 )

stress: $(KB)/kernel.elf
	$(Q)bash ci/qemu.sh --timeout $(STRESS_TIMEOUT) --log $(B)/logs/stress.log -- \
		$(QEMU) $(STRESS_ICOUNT) -append "stress=$(STRESS_DET_OPTS)$(STRESS)"

stress-host: $(HB)/stress $(HB)/stress-tsan
	$(Q)$(HB)/stress $(STRESS)

# make-test steps: a short deterministic run twice (byte-identical logs),
# short runs on 4 and 8 harts with fail=, xfer=, irq=, onoff=, a corrupt=1
# run that must fail naming the manager, and the host engine under ASan and
# TSan.
test-stress-replay: $(KB)/kernel.elf
	$(Q)bash ci/stress.sh replay $(KB)/kernel.elf
test-stress-smp: $(KB)/kernel.elf
	$(Q)bash ci/stress.sh smp $(KB)/kernel.elf
test-stress-host: $(HB)/stress $(HB)/stress-tsan
	$(Q)bash ci/stress.sh host $(HB)/stress $(HB)/stress-tsan

# Not in make test (about 90 s): hot-plug against the check barrier.
test-stress-barrier: $(KB)/kernel.elf
	$(Q)bash ci/stress.sh barrier $(KB)/kernel.elf

TEST_STEPS += test-stress-replay test-stress-smp test-stress-host

# The scaling report: 1..64 harts under icount, a table and a picture.
stress-report: $(KB)/kernel.elf
	$(Q)bash ci/deps.sh report
	$(Q)bash ci/stress-report.sh $(KB)/kernel.elf $(B)/stress

.PHONY: stress stress-host test-stress-barrier test-stress-replay test-stress-smp test-stress-host stress-report

# make stress-debug: the same boot waiting for gdb on :1234 (with
# DETERMINISTIC=1 a seed's run replays to the same state; docs/STRESS.md).
stress-debug: $(KB)/kernel.elf
	$(Q)bash ci/deps.sh debug
	@echo "QEMU waits for gdb on :1234; in another shell:"
	@echo "  gdb-multiarch $(KB)/kernel.elf -ex 'target remote :1234' -ex 'break s_failure'"
	$(QEMU) $(STRESS_ICOUNT) -append "stress=$(STRESS_DET_OPTS)$(STRESS)" -S -s

.PHONY: stress-debug
