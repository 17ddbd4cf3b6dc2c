/* config.h - build-time limits of the kernel (sizes, counts, rates).
 * Included from assembly too, so constants only. */
#ifndef CONFIG_H
#define CONFIG_H

#ifdef __ASSEMBLER__
#define UL(x) x
#else
#define UL(x) x##ul
#endif

#define MAX_HARTS      64              /* == ENV_MAX_CPUS (checked in hart.c) */
#define KSTACK_SIZE    16384           /* per-hart boot/trap stack */
#define HART_TLS_MAX   2048            /* per-hart TLS block; kernel.ld checks */
#define TIMER_HZ       100             /* periodic tick on every hart */

/* The kernel image is linked at KERNEL_VMA and loaded at KERNEL_LMA: the
 * two differ by KERNEL_VA_OFFSET, and must agree modulo 1 GiB. */
#define KERNEL_VMA        UL(0xffffffff80200000)
#define KERNEL_LMA        UL(0x80200000)
#define KERNEL_VA_OFFSET  (KERNEL_VMA - KERNEL_LMA)
/* Direct map of physical memory (see DESIGN.md). */
#define DIRECT_MAP_BASE   UL(0xffffffc000000000)
#define DIRECT_MAP_SIZE   (UL(128) << 30)

#endif
