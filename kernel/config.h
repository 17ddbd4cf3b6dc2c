/* config.h - build-time limits of the kernel (sizes, counts, rates).
 * Included from assembly too, so constants only. */
#ifndef CONFIG_H
#define CONFIG_H

#include "memlayout.h"   /* the memory map, and UL() */

#define MAX_HARTS      64              /* == ENV_MAX_CPUS (checked in hart.c) */
#define KSTACK_SIZE    16384           /* per-hart boot/trap stack */
#define KSTACK_GUARD   4096            /* unmapped page below each stack */
#define EMERG_STACK_SIZE 4096          /* per-hart stack for traps on overflow */
#define UTRAP_STACK_SIZE 16384         /* per-hart stack for traps from U-mode */

/* A secondary hart's slot of the stack window (memlayout.h KSTACK_WINDOW),
 * offsets from its base; the gaps are unmapped guard pages. The kernel
 * stack sits lowest, so the emergency and U-trap stacks lie above it (the
 * overflow check in entry.S's trap_vector relies on that). The physical
 * pages behind [HSTACK_PHYS_OFF, HSTACK_PHYS_END) are one contiguous block
 * (less the two inner guard pages, given back), so the slot's va -> pa is
 * one offset (hart.h hart_stack_pa). */
#define HSTACK_SLOT      65536
#define HSTACK_KSTACK    KSTACK_GUARD                                      /* 4 KiB */
#define HSTACK_EMERG     (HSTACK_KSTACK + KSTACK_SIZE + KSTACK_GUARD)      /* 24 KiB */
#define HSTACK_UTRAP     (HSTACK_EMERG + EMERG_STACK_SIZE + KSTACK_GUARD)  /* 32 KiB */
#define HSTACK_PHYS_OFF  HSTACK_KSTACK
#define HSTACK_PHYS_END  (HSTACK_UTRAP + UTRAP_STACK_SIZE)                 /* 48 KiB */
#if HSTACK_PHYS_END > HSTACK_SLOT || MAX_HARTS * HSTACK_SLOT > KSTACK_WINDOW_SIZE
#error "config.h: the hart stacks do not fit their slot or window"
#endif

/* Fields of struct hart that entry.S reads, at fixed offsets from tp
 * (hart.h checks them). */
#define HART_TP_STACK_LO  (-64)        /* lowest byte of the kernel stack */
#define HART_TP_EMERG_SP  (-56)        /* top of the emergency stack */
#define HART_TLS_MAX   2048            /* per-hart TLS block; kernel.ld checks */
#define TIMER_HZ       100             /* periodic tick on every hart */

/* Addresses and sizes of the address spaces: include/memlayout.h. */

#endif
