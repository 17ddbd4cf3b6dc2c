# fdt: device tree parser, board description, dtbinfo, libfdt oracle.
PLATFORM_SRCS += platform/fdt.c platform/board.c
UNIT_SRCS     += tests/unit/fdt_test.c
HOST_PROGS    += dtbinfo fdt_oracle
dtbinfo_SRCS    := tools/dtbinfo.c
fdt_oracle_SRCS := tests/host/fdt_oracle.c
fdt_oracle_LIBS := -lfdt
FUZZERS       += fdt
TEST_STEPS    += test-fdt

# Differential (dtbinfo vs libfdt) and rejection tests on a corpus built in
# build/fdt/ from QEMU's device trees and tests/fdt/*.dts.
test-fdt: $(HB)/dtbinfo $(HB)/fdt_oracle
	$(Q)bash tests/fdt/check.sh $(HB)/dtbinfo $(HB)/fdt_oracle $(B)/fdt

.PHONY: test-fdt
