# mm: LiSA-style shared areas (mm/mm.h), built for the kernel, U-mode
# partitions (mk/user.mk uses MM_AREA_SRCS) and the host.
MM_AREA_SRCS   := mm/mm.c mm/mm_lock.c mm/mm_alloc.c mm/mm_check.c
MM_SRCS        += $(MM_AREA_SRCS)
UNIT_SRCS      += tests/unit/mm_test.c
HOST_ONLY_SRCS += tests/host/mm_map_test.c
TSAN_SUITES    += mm mm_map
FUZZERS        += mm
