/* memlayout.h - the memory map: every base and size of the kernel's and the
 * partitions' Sv39 address spaces, in one place (as xv6's memlayout.h).
 *
 * Constants only, so that C, assembly (kernel/entry.S) and the linker
 * script (linker/kernel.ld, run through the preprocessor) all read the same
 * numbers. The hardware's fields (PTE bits, VPN fields, satp) are in
 * mm/sv39.h; the kernel's limits (stacks, harts) in kernel/config.h.
 *
 *   virtual address                            what                      who maps it
 *   0xffff_ffff_ffff_ffff +------------------+
 *                         | kernel image     |  text, rodata, data, bss  entry.S (early),
 *   KERNEL_VMA            +------------------+  W^X, 2 MiB pages at      kernel/mem.c
 *   0xffff_ffff_8020_0000 | (text offset)    |  the load address
 *   KERNEL_WINDOW         +------------------+  1 GiB: root entry 510
 *   0xffff_ffff_8000_0000 |      ...         |
 *                         +------------------+
 *                         | shm window       |  SHM_KSLOTS x 16 MiB:     kernel/shm.c
 *   SHM_KWINDOW           +------------------+  the kernel's view of areas
 *   0xffff_fff0_0000_0000 |      ...         |
 *                         +------------------+
 *                         | hart stacks      |  one 64 KiB slot per      kernel/mem.c
 *   KSTACK_WINDOW         +------------------+  secondary hart, mapped   (mem_map_hart_stacks)
 *   0xffff_ffed_0000_0000 |      ...         |  when it is started
 *                         +------------------+
 *                         | vmap (MMIO)      |  16 GiB                   mem_map_mmio
 *   KVMAP_BASE            +------------------+
 *   0xffff_ffe8_4000_0000 | guard, 1 GiB     |
 *                         +------------------+
 *                         | kernel heap      |  32 GiB, grows up on      mm/vm.c (kheap)
 *   KHEAP_BASE            +------------------+  faults (kmalloc)
 *   0xffff_ffe0_0000_0000 | direct map       |  physical [0, 128 GiB)    entry.S (early),
 *                         |                  |  1 GiB / 2 MiB pages      kernel/mem.c
 *   DIRECT_MAP_BASE       +------------------+  root entries 256..383
 *   0xffff_ffc0_0000_0000 | (non-canonical)  |
 *   USER_VA_END           +------------------+
 *   0x0000_0040_0000_0000 | (unmapped)       |
 *   USER_STACK_TOP        +------------------+
 *   0x0000_0030_0000_0000 | stacks           |  one per partition id:    kernel/part.c
 *                         |                  |  top - id x 16 MiB,
 *                         |                  |  up to 256 KiB, grow down
 *                         +------------------+
 *                         | shared areas     |  slot x 256 MiB           kernel/shm.c
 *   USER_SHM_BASE         +------------------+  + id x 2 MiB
 *   0x0000_0020_0000_0000 |      ...         |
 *                         +------------------+
 *                         | heap             |  64 MiB, grows up         kernel/part.c
 *   USER_HEAP_BASE        +------------------+
 *   0x0000_0000_1000_0000 |      ...         |
 *                         +------------------+
 *                         | program          |  the partition ELF        kernel/elf.c
 *   USER_TEXT_BASE        +------------------+  (user/user.ld)
 *   0x0000_0000_0001_0000 | (unmapped)       |
 *   0                     +------------------+
 *
 * The upper-half root entries are the same in every address space, so a
 * trap never switches satp to reach kernel data; the lower half is each
 * partition's own.
 */
#ifndef MEMLAYOUT_H
#define MEMLAYOUT_H

#ifndef UL
#if defined(__ASSEMBLER__) || defined(LINKER_SCRIPT)
#define UL(x) x
#else
#define UL(x) x##ul
#endif
#endif

/* ---- the kernel (upper half) ---- */

/* The image is linked at KERNEL_VMA and runs from whatever 2 MiB-aligned
 * physical address it was loaded at (kernel_phys_base, set by entry.S).
 * KERNEL_TEXT_OFFSET is the boot image header's text_offset: where a loader
 * that moves the Image (U-Boot's booti) puts it past RAM's base. The ELF's
 * load address is KERNEL_ELF_LMA, where OpenSBI and booti put it on boards
 * with RAM at 0x80000000. */
#define KERNEL_WINDOW      UL(0xffffffff80000000)   /* the image's 1 GiB */
#define KERNEL_WINDOW_SIZE (UL(1) << 30)
#define KERNEL_TEXT_OFFSET UL(0x200000)
#define KERNEL_VMA         (KERNEL_WINDOW + KERNEL_TEXT_OFFSET)
#define KERNEL_LOAD_ALIGN  (UL(2) << 20)
#define KERNEL_ELF_LMA     (UL(0x80000000) + KERNEL_TEXT_OFFSET)
#define KERNEL_IMAGE_MAX   (KERNEL_WINDOW_SIZE - KERNEL_TEXT_OFFSET)

/* Direct map of physical memory: physical address pa is at
 * DIRECT_MAP_BASE + pa, for pa below DIRECT_MAP_SIZE. */
#define DIRECT_MAP_BASE    UL(0xffffffc000000000)
#define DIRECT_MAP_SIZE    (UL(128) << 30)

/* The kernel's VM segments: the heap kmalloc grows on, then, past a 1 GiB
 * unmapped gap, vmap (device registers, mem_map_mmio). */
#define KHEAP_BASE         (DIRECT_MAP_BASE + DIRECT_MAP_SIZE)
#define KHEAP_MAX          (UL(32) << 30)
#define KVMAP_GAP          (UL(1) << 30)
#define KVMAP_BASE         (KHEAP_BASE + KHEAP_MAX + KVMAP_GAP)
#define KVMAP_SIZE         (UL(16) << 30)

/* The stacks of the secondary harts (kernel/config.h's HSTACK_*): dense
 * hart index i owns [KSTACK_WINDOW + i * HSTACK_SLOT, +HSTACK_SLOT), whose
 * stacks are mapped (with unmapped guard pages between them) only for the
 * harts started; slot 0 stays unused (the boot hart's stacks are in the
 * image's BSS). */
#define KSTACK_WINDOW      UL(0xffffffed00000000)
#define KSTACK_WINDOW_SIZE (UL(1) << 30)

/* The kernel's window onto shared areas: slot s (of kernel/shm.h's
 * SHM_KSLOTS) at SHM_KWINDOW + s * SHM_KWINDOW_SLOT, one area's maximum. */
#define SHM_KWINDOW        UL(0xfffffff000000000)
#define SHM_KWINDOW_SLOT   (UL(16) << 20)

/* ---- a partition (lower half) ---- */

#define USER_TEXT_BASE     UL(0x10000)         /* user/user.ld links here */
#define USER_HEAP_BASE     UL(0x10000000)
#define USER_HEAP_MAX      (UL(64) << 20)
/* Shared areas: attach slot s of partition id at USER_SHM_BASE +
 * s * USER_SHM_SLOT + id * USER_SHM_ID_STRIDE (a different address in every
 * partition, so areas hold offsets, not pointers). */
#define USER_SHM_BASE      UL(0x2000000000)
#define USER_SHM_SLOT      (UL(256) << 20)
#define USER_SHM_ID_STRIDE (UL(2) << 20)
/* The stack of partition id tops out at USER_STACK_TOP - id *
 * USER_STACK_STRIDE; USER_STACK_SIZE is mapped at start, it grows down to
 * USER_STACK_MAX. */
#define USER_STACK_TOP     UL(0x3000000000)
#define USER_STACK_STRIDE  (UL(16) << 20)
#define USER_STACK_SIZE    (UL(16) << 10)
#define USER_STACK_MAX     (UL(256) << 10)
#define USER_VA_END        UL(0x4000000000)    /* end of the Sv39 lower half */

#if !defined(__ASSEMBLER__) && !defined(LINKER_SCRIPT)
_Static_assert(KVMAP_BASE + KVMAP_SIZE + KVMAP_GAP <= KSTACK_WINDOW, "vmap below the stack window");
_Static_assert(KSTACK_WINDOW + KSTACK_WINDOW_SIZE <= SHM_KWINDOW, "stacks below the shm window");
_Static_assert(USER_HEAP_BASE + USER_HEAP_MAX <= USER_SHM_BASE, "heap below shared areas");
_Static_assert(USER_STACK_MAX < USER_STACK_STRIDE, "stacks of two ids stay apart");
#endif

#endif
