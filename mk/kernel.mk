# kernel: sources built only into the kernel, and the QEMU test matrix.
KERNEL_ONLY_SRCS += platform/plat.c
KTEST_SRCS += tests/kernel/smp_test.c

test-qemu: build/virt/kernel.elf build/sifive_u/kernel.elf
	$(Q)bash ci/qemu-matrix.sh build/virt/kernel.elf build/sifive_u/kernel.elf

.PHONY: test-qemu
TEST_STEPS += test-qemu

# Guest figures come from rdinstret under `-icount shift=0`: without icount
# QEMU's instret CSR reads the host's TSC. icount runs the harts round-robin
# on one host thread and its counter is global, so an SMP figure includes
# whatever the other harts executed meanwhile (they sit in wfi at boot).
QEMU_BENCH = qemu-system-riscv64 -nographic -bios default -icount shift=0

bench-boot: build/virt/kernel.elf
	$(Q)for n in 1 8; do \
		bash ci/qemu.sh --timeout 120 --log $(B)/logs/bench-boot-smp$$n.log -- \
			$(QEMU_BENCH) -M virt -smp $$n -m 512M -kernel build/virt/kernel.elf \
			-append "bench=boot" >/dev/null || exit 1; \
		printf 'virt SMP=%s: ' $$n; grep '^boot:' $(B)/logs/bench-boot-smp$$n.log; \
	done

.PHONY: bench-boot
BENCH_STEPS += bench-boot
