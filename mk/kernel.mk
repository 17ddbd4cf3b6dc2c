# kernel: sources built only into the kernel, and the QEMU test matrix.
KERNEL_ONLY_SRCS += platform/plat.c
KTEST_SRCS += tests/kernel/ktest_env.c tests/kernel/smp_test.c tests/kernel/vm_kernel_test.c tests/kernel/part_test.c tests/kernel/alloc_kernel_test.c tests/kernel/pmem_kernel_test.c tests/kernel/shm_hostile_test.c tests/kernel/part_expect.c

# The linker script through the C preprocessor, so that its addresses come
# from include/memlayout.h (LINKER_SCRIPT: constants without C suffixes).
$(KO)/kernel.ld: linker/kernel.ld | deps
	@mkdir -p $(dir $@)
	@echo "  CPP     $@"
	$(Q)$(KCC) -E -P -undef -x assembler-with-cpp -DLINKER_SCRIPT -Iinclude -Ikernel \
		-MMD -MP -MT $@ -MF $@.d -o $@ $<

# The boot image: the flat kernel (objcopy keeps the loadable sections from
# the first byte of _start), whose first 64 bytes are the RISC-V boot image
# header entry.S writes. U-Boot's booti loads it; QEMU -kernel takes the ELF.
$(B)/%/Image: $(B)/%/kernel.elf
	@echo "  OBJCOPY $@"
	$(Q)$(CROSS)objcopy -O binary $< $@

all: $(KB)/Image

# Every field of the header, checked by parsing the Image (and its ELF for
# the BSS end); mutated copies must be rejected field by field.
test-image: build/virt/Image
	$(Q)python3 tests/host/image_check.py build/virt/Image build/virt/kernel.elf

.PHONY: test-image
TEST_STEPS += test-image

# The HiFive boot chain on QEMU virt: OpenSBI (-bios default) runs Debian's
# U-Boot for S-mode, whose distro boot finds extlinux.conf on a partitioned
# virtio disk (ci/uboot-disk.sh) and boots the Image with booti; the
# extlinux append line carries BOOTARGS. `make run BOOT=uboot` takes that
# path (virt only: u-boot-qemu has no sifive_u S-mode build).
UBOOT_SMODE := /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin
BOOT ?= opensbi
ifeq ($(BOOT),uboot)
ifneq ($(PLATFORM),virt)
$(error BOOT=uboot needs PLATFORM=virt)
endif
# `override`: the Makefile's own QEMU assignment (the -kernel ELF path) comes
# later and must not replace this one.
override QEMU = $(QEMU_virt) -nographic -bios default -kernel $(UBOOT_SMODE) \
	-drive file=$(KB)/uboot-disk.img,format=raw,if=none,id=hd0 \
	-device virtio-blk-device,drive=hd0
run debug: $(KB)/uboot-disk.img
$(KB)/uboot-disk.img: $(KB)/Image FORCE
	$(Q)INITRD="$(UBOOT_INITRD)" bash ci/uboot-disk.sh $< $@ $(BOOTARGS)
endif
.PHONY: FORCE

test-qemu: build/virt/kernel.elf build/sifive_u/kernel.elf build/virt/Image
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

bench-guest: build/virt/kernel.elf build/virt/Image
	$(Q)$(call bench_boot,boot-512m-smp1,1,512M,bench=boot)
	$(Q)$(call bench_boot,boot-16g-smp1,1,16G,bench=boot)
	$(Q)$(call bench_boot,boot-512m-smp8,8,512M,bench=boot)
	$(Q)$(call bench_boot,boot-2g-smp64,64,2G,bench=boot)
	$(Q)for c in 512m-smp1 16g-smp1 512m-smp8 2g-smp64; do \
		grep '^boot:' $(B)/logs/bench-boot-$$c.log | tr -d '\r' | sed "s/^/guest $$c: /"; done
	$(Q)bash ci/uboot-disk.sh build/virt/Image $(B)/logs/bench-uboot.img bench=boot
	$(Q)bash ci/qemu.sh --timeout 600 --log $(B)/logs/bench-boot-uboot-512m-smp1.log -- \
		$(QEMU_BENCH) -M virt -smp 1 -m 512M -kernel $(UBOOT_SMODE) \
		-drive file=$(B)/logs/bench-uboot.img,format=raw,if=none,id=hd0 \
		-device virtio-blk-device,drive=hd0 >/dev/null || exit 1
	$(Q)for c in 512m-smp1 uboot-512m-smp1; do \
		grep '^boot: instret [0-9]* from kernel entry' $(B)/logs/bench-boot-$$c.log | \
		tr -d '\r' | sed "s/^/guest $$c: /"; done
	$(Q)echo "guest image: build/virt/Image $$(stat -c %s build/virt/Image) bytes," \
		"image_size $$(od -An -tu8 -j16 -N8 build/virt/Image | tr -d ' ') bytes with BSS"
	$(Q)$(call bench_boot,all-smp1,1,512M,bench=all)
	$(Q)$(call bench_boot,all-smp8,8,512M,bench=umm)
	$(Q)grep -hE 'bench: ' $(B)/logs/bench-all-smp1.log $(B)/logs/bench-all-smp8.log | \
		tr -d '\r' | sed 's/^\[[^]]*\] //'

.PHONY: bench-guest
BENCH_STEPS += bench-guest

# make soak: 100 SMP=8 boots in a row, demo and a stress run alternating
# (ci/soak.sh; SOAK_BOOTS, SOAK_SMP, SOAK_STRESS). Not part of `make test`.
soak: build/virt/kernel.elf
	$(Q)bash ci/soak.sh build/virt/kernel.elf

.PHONY: soak
