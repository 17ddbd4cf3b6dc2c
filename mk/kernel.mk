# kernel: sources built only into the kernel, and the QEMU test matrix.
KERNEL_ONLY_SRCS += platform/plat.c
KTEST_SRCS += tests/kernel/smp_test.c tests/kernel/vm_kernel_test.c tests/kernel/part_test.c tests/kernel/alloc_kernel_test.c tests/kernel/pmem_kernel_test.c tests/kernel/shm_hostile_test.c

test-qemu: build/virt/kernel.elf build/sifive_u/kernel.elf
	$(Q)bash ci/qemu-matrix.sh build/virt/kernel.elf build/sifive_u/kernel.elf

.PHONY: test-qemu
TEST_STEPS += test-qemu

# Guest figures come from rdinstret under `-icount shift=0`: without icount
# QEMU's instret CSR reads the host's TSC. icount runs the harts round-robin
# on one host thread and its counter is global, so an SMP figure includes
# whatever the other harts executed meanwhile (they sit in wfi at boot).
QEMU_BENCH = qemu-system-riscv64 -nographic -bios default -icount shift=0

# bench_boot NAME SMP MEM BOOTARGS: one -icount boot, its log kept.
bench_boot = bash ci/qemu.sh --timeout 600 --log $(B)/logs/bench-$(1).log -- \
	$(QEMU_BENCH) -M virt -smp $(2) -m $(3) -kernel build/virt/kernel.elf \
	-append "$(4)" >/dev/null || exit 1

bench-guest: build/virt/kernel.elf
	$(Q)$(call bench_boot,boot-512m-smp1,1,512M,bench=boot)
	$(Q)$(call bench_boot,boot-16g-smp1,1,16G,bench=boot)
	$(Q)$(call bench_boot,boot-512m-smp8,8,512M,bench=boot)
	$(Q)for c in 512m-smp1 16g-smp1 512m-smp8; do \
		grep '^boot:' $(B)/logs/bench-boot-$$c.log | tr -d '\r' | sed "s/^/guest $$c: /"; done
	$(Q)$(call bench_boot,all-smp1,1,512M,bench=all)
	$(Q)$(call bench_boot,all-smp8,8,512M,bench=umm)
	$(Q)grep -hE 'bench: ' $(B)/logs/bench-all-smp1.log $(B)/logs/bench-all-smp8.log | \
		tr -d '\r' | sed 's/^\[[^]]*\] //'

.PHONY: bench-guest
BENCH_STEPS += bench-guest
