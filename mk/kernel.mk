# kernel: sources built only into the kernel, and the QEMU test matrix.
KERNEL_ONLY_SRCS += platform/plat.c
KTEST_SRCS += tests/kernel/smp_test.c

test-qemu: build/virt/kernel.elf build/sifive_u/kernel.elf
	$(Q)bash ci/qemu-matrix.sh build/virt/kernel.elf build/sifive_u/kernel.elf

.PHONY: test-qemu
TEST_STEPS += test-qemu
