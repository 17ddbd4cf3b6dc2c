# vm: Sv39 page-table engine (mm/pt.c) and address spaces (mm/vm.c).
MM_SRCS   += mm/pt.c mm/vm.c mm/vm_objcache.c
UNIT_SRCS += tests/unit/pt_test.c tests/unit/vm_test.c
TSAN_SUITES += vm
