# initrd: partition images from a cpio newc archive (platform/cpio.c) and
# their ELF checks (platform/elfimg.c), both also built for the host tests.
PLATFORM_SRCS += platform/cpio.c platform/elfimg.c
UNIT_SRCS     += tests/unit/cpio_test.c
FUZZERS       += cpio
KTEST_SRCS    += tests/kernel/part_image_test.c
