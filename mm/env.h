/* env.h - the one seam between the memory managers and their environment.
 *
 * Code in mm/ includes only this header (plus include/err.h and freestanding
 * C headers). It is implemented once for the kernel (kernel/env.c, with the
 * inline part in kernel/env_kernel.h) and once for the host (mm/env_host.c,
 * mm/env_host.h), which is what lets every manager be built and tested on
 * the host with sanitizers, fuzzers and ThreadSanitizer.
 *
 * One manager does not use it, on purpose: mm/mm.c (the shared areas) is
 * compiled into U-mode partitions as well as into the kernel, and reaches
 * its environment only through the hooks of struct mm_env (attach, grow,
 * map, lock, relax, liveness of attachers), one environment per area, so
 * that a partition needs none of this seam.
 */
#ifndef MM_ENV_H
#define MM_ENV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ENV_PAGE_SHIFT 12
#define ENV_PAGE_SIZE  ((size_t)1 << ENV_PAGE_SHIFT)

/* Upper bound on harts (kernel) or threads (host) that use the managers at
 * once; per-CPU arrays are sized by it. */
#ifndef ENV_MAX_CPUS
#define ENV_MAX_CPUS 64
#endif

/*
 * Spinlock. In the kernel, env_lock() also disables interrupts on the calling
 * hart and returns the previous state, which env_unlock() restores; on the
 * host the flags are meaningless. Not recursive.
 */
typedef struct {
	uint32_t locked;
} env_spinlock_t;
#define ENV_SPINLOCK_INIT { 0 }

unsigned long env_lock(env_spinlock_t *l);
void env_unlock(env_spinlock_t *l, unsigned long flags);
/* Returns true with the lock held (and *flags set), false without waiting. */
bool env_trylock(env_spinlock_t *l, unsigned long *flags);

/* ---- the inline part: defined by the environment's own header ----------
 *
 * The managers' per-CPU fast paths need these in one or two instructions,
 * so each environment defines them inline in its own header, included at
 * the end of this file (kernel/env_kernel.h in the kernel build: its tp
 * layout and CSR bits; mm/env_host.h on the host: thread-locals), as musl's
 * mallocng takes its glue.h. This file only declares what they do:
 *
 *   unsigned env_cpu(void);
 *	Dense index of the calling hart or thread, always < ENV_MAX_CPUS.
 *	Hart ids are not dense; this index is.
 *   void *env_slot_get(unsigned i);  void env_slot_set(unsigned i, void *v);
 *	Per-CPU pointer slots, i < ENV_NSLOTS: one pointer per CPU and slot
 *	for a manager's hot path, read and written by the CPU itself. A
 *	manager owns its slot number (kmalloc: KMALLOC_ENV_SLOT). A slot dies
 *	with its thread on the host. A slot starts as env_zero_block: a hot
 *	path reads zeros there (empty lists, empty ranges) and goes to its
 *	slow path, which sets the slot, without testing for NULL. Nothing
 *	writes env_zero_block.
 *   unsigned long env_irq_save(void);  void env_irq_restore(unsigned long f);
 *	Interrupt state of the calling hart: save and disable, restore
 *	(no-ops on the host).
 */
#define ENV_NSLOTS 1
#define ENV_ZERO_SIZE 16384
extern unsigned char env_zero_block[ENV_ZERO_SIZE];

/* Number of CPU indexes in use (kernel: harts online; host: threads seen). */
unsigned env_ncpus(void);

/* Monotonic clock in ticks, and ticks per second. */
uint64_t env_ticks(void);
uint64_t env_ticks_per_sec(void);

/* Page give-back: the len bytes at addr (page-aligned, inside memory a
 * manager owns) are no longer needed; the environment may drop their
 * contents (they then read as zeros or as what they held before, either
 * way the manager must not rely on them) and reuse the pages until they
 * are next touched. Returns 0, or an error code when nothing was given
 * back (the memory stays as it was). Host: madvise(MADV_DONTNEED). */
int env_release_pages(void *addr, size_t len);

/* One line of diagnostic output; the format is printf's, without newline. */
void env_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A broken invariant: report "module_func: reason" and stop. */
_Noreturn void env_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void env_cpu_relax(void)
{
#if defined(__riscv)
	__asm__ volatile("nop");   /* Zihintpause is not assumed */
#elif defined(__x86_64__)
	__builtin_ia32_pause();
#endif
}


#ifdef KERNEL_BUILD
#include "env_kernel.h"
#else
#include "env_host.h"
#endif

#endif
