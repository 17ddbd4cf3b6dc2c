# vm: Sv39 page-table engine (mm/pt.c) and address spaces (mm/vm.c).
MM_SRCS   += mm/pt.c mm/vm.c mm/vm_seg.c mm/vm_fault.c mm/vm_map.c mm/vm_kheap.c \
	     mm/vm_check.c mm/vm_objcache.c
UNIT_SRCS += tests/unit/pt_test.c tests/unit/vm_test.c
TSAN_SUITES += vm
