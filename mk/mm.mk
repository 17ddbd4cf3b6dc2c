# mm: LiSA-style shared areas (mm/mm.h), built for the kernel, U-mode
# partitions and the host.
MM_SRCS        += mm/mm.c
UNIT_SRCS      += tests/unit/mm_test.c
HOST_ONLY_SRCS += tests/host/mm_map_test.c
TSAN_SUITES    += mm mm_map
FUZZERS        += mm
