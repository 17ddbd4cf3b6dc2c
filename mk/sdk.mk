# sdk: partition programs of one's own (sdk/partition.h, docs/PARTITIONS.md).
#
#   make partition SRC='a.c b.c' NAME=prod   build/parts/prod.elf from the
#                                            user's C files (paths from the
#                                            repository, or absolute)
#   make examples                            build/parts/{prod,cons}.elf
#   make run PARTS='prod.elf cons.elf' BOOTARGS='part=prod@1,cons@2 area=board:64K:1M'
#                                            boots them from an initrd
#
# A program links against the runtime the built-in image uses (user/crt0.S,
# user/ulib.c, the shared-area sources MM_AREA_SRCS: the same objects) plus sdk/start.c, with picolibc,
# through user/user.ld. build/parts/NAME.elf keeps its symbols (for gdb);
# the initrd gets stripped copies.
PB := $(B)/parts
SDK_RT = $(B)/user/user/crt0.S.o $(B)/user/user/ulib.c.o \
	 $(patsubst %,$(B)/user/%.o,$(MM_AREA_SRCS)) $(B)/user/sdk/start.c.o
SDK_CFLAGS = $(USER_CFLAGS) -Isdk
SDK_LDFLAGS = $(KARCH_LD) $(PICOLIBC) -nostartfiles -static -no-pie -Wl,--no-relax \
	-T user/user.ld -Wl,--gc-sections

# partition_elf NAME SOURCES: the rule for build/parts/NAME.elf
define partition_elf
$(PB)/$(1).elf: $(2) $(wildcard $(addsuffix *.h,$(sort $(dir $(2))))) $$(SDK_RT) user/user.ld \
		sdk/partition.h user/ulib.h mm/mm.h | deps
	@mkdir -p $(PB)/obj/$(1)
	@echo "  PART    $$@"
	$(Q)for s in $(2); do \
		$$(KCC) $$(SDK_CFLAGS) -c -o $(PB)/obj/$(1)/$$$$(basename $$$$s).o $$$$s || exit 1; done
	$(Q)$$(KCC) $$(SDK_LDFLAGS) -o $$@ $$(addprefix $(PB)/obj/$(1)/,$$(addsuffix .o,$$(notdir $(2)))) \
		$$(SDK_RT)
endef

EXAMPLES := prod cons
$(foreach e,$(filter-out $(NAME),$(EXAMPLES)),$(eval $(call partition_elf,$(e),examples/$(e).c)))
ifneq ($(and $(NAME),$(SRC)),)
$(eval $(call partition_elf,$(NAME),$(SRC)))
endif

partition: $(if $(and $(NAME),$(SRC)),$(PB)/$(NAME).elf)
	@if [ -z "$(NAME)" ] || [ -z "$(SRC)" ]; then \
		echo "usage: make partition SRC='a.c b.c' NAME=prod  (-> $(PB)/prod.elf)"; exit 2; fi

examples: $(addprefix $(PB)/,$(addsuffix .elf,$(EXAMPLES)))

# The initrd: the PARTS files (a bare name is build/parts/NAME), stripped,
# in a cpio newc archive; rebuilt on every use (it is small).
INITRD := $(B)/initrd.cpio
PARTS_FILES = $(foreach f,$(PARTS),$(if $(findstring /,$(f)),$(f),$(PB)/$(f)))
$(INITRD): $(PARTS_FILES) tools/mkcpio.py FORCE | deps
	@echo "  CPIO    $@: $(notdir $(PARTS_FILES))"
	$(Q)rm -rf $(B)/initrd && mkdir -p $(B)/initrd
	$(Q)for f in $(PARTS_FILES); do \
		$(CROSS)strip -o $(B)/initrd/$$(basename $$f) $$f 2>/dev/null || \
		cp $$f $(B)/initrd/$$(basename $$f); done
	$(Q)python3 tools/mkcpio.py $@ $(addprefix $(B)/initrd/,$(notdir $(PARTS_FILES)))

initrd: $(INITRD)

-include $(B)/user/sdk/start.c.d

# `make run PARTS=...`: QEMU's -initrd, or with BOOT=uboot the disk's
# /initrd and an extlinux initrd line (ci/uboot-disk.sh).
RUN_DEPS  += $(if $(PARTS),$(INITRD))
ifeq ($(BOOT),uboot)
UBOOT_INITRD = $(if $(PARTS),$(INITRD))
$(KB)/uboot-disk.img: $(if $(PARTS),$(INITRD))
else
RUN_QEMU  += $(if $(PARTS),-initrd $(INITRD))
endif

# `make test` boots the examples (ci/qemu-matrix.sh)
test-qemu: examples

.PHONY: partition examples initrd FORCE
