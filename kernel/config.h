/* config.h - build-time limits of the kernel (sizes, counts, rates).
 * Included from assembly too, so constants only. */
#ifndef CONFIG_H
#define CONFIG_H

#include "memlayout.h"   /* the memory map, and UL() */

#define MAX_HARTS      64              /* == ENV_MAX_CPUS (checked in hart.c) */
#define KSTACK_SIZE    16384           /* per-hart boot/trap stack */
#define KSTACK_GUARD   4096            /* unmapped page below each stack */
#define KSTACK_SLOT    (KSTACK_SIZE + KSTACK_GUARD)
#define EMERG_STACK_SIZE 4096          /* per-hart stack for traps on overflow */
#define UTRAP_STACK_SIZE 16384         /* per-hart stack for traps from U-mode */

/* Fields of struct hart that entry.S reads, at fixed offsets from tp
 * (hart.h checks them). */
#define HART_TP_STACK_LO  (-64)        /* lowest byte of the kernel stack */
#define HART_TP_EMERG_SP  (-56)        /* top of the emergency stack */
#define HART_TLS_MAX   2048            /* per-hart TLS block; kernel.ld checks */
#define TIMER_HZ       100             /* periodic tick on every hart */

/* Addresses and sizes of the address spaces: include/memlayout.h. */

#endif
