/* env.h - the one seam between the memory managers and their environment.
 *
 * Code in mm/ includes only this header (plus include/err.h and freestanding
 * C headers). It is implemented once for the kernel (kernel/env.c) and once
 * for the host (mm/env_host.c), which is what lets every manager be built and
 * tested on the host with sanitizers, fuzzers and ThreadSanitizer.
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

/* Dense index of the calling hart or thread, always < ENV_MAX_CPUS. Hart ids
 * are not dense; this index is. */
#ifdef KERNEL_BUILD
/* The kernel keeps it at a fixed offset from tp (kernel/hart.h checks), so
 * the managers' per-CPU fast paths read it in one load. */
#define ENV_KERNEL_TP_CPU (-48)
static inline unsigned env_cpu(void)
{
	unsigned long v;
	__asm__("ld %0, %1(tp)" : "=r"(v) : "i"(ENV_KERNEL_TP_CPU));
	return (unsigned)v;
}
#else
/* Host: cached per thread; the first call of a thread assigns it. */
extern _Thread_local unsigned env_cpu_plus1;
unsigned env_cpu_slow(void);
static inline unsigned env_cpu(void)
{
	unsigned v = env_cpu_plus1;
	return v ? v - 1 : env_cpu_slow();
}
#endif
/* Per-CPU pointer slots: one pointer per CPU and slot for a manager's hot
 * path (the global kmalloc instance keeps its per-CPU data in one), read and
 * written by the CPU itself in one instruction. Kernel: in struct hart just
 * below tp (kernel/hart.h checks the offset); host: thread-local, so a slot
 * dies with its thread. A slot starts as env_zero_block: a hot path reads
 * zeros there (empty lists, empty ranges) and goes to its slow path, which
 * sets the slot, without testing for NULL. Nothing writes env_zero_block. */
enum { ENV_SLOT_KMALLOC, ENV_NSLOTS };
#define ENV_ZERO_SIZE 16384
extern unsigned char env_zero_block[ENV_ZERO_SIZE];
#ifdef KERNEL_BUILD
#define ENV_KERNEL_TP_SLOTS (-40)
static inline __attribute__((always_inline)) void *env_slot_get(unsigned i)
{
	void *v;
	__asm__("ld %0, %1(tp)" : "=r"(v) : "i"(ENV_KERNEL_TP_SLOTS + 8 * (int)i));
	return v;
}
static inline __attribute__((always_inline)) void env_slot_set(unsigned i, void *v)
{
	__asm__ volatile("sd %0, %1(tp)" :: "r"(v), "i"(ENV_KERNEL_TP_SLOTS + 8 * (int)i) : "memory");
}
#else
extern _Thread_local void *env_slots[ENV_NSLOTS];
static inline void *env_slot_get(unsigned i) { return env_slots[i]; }
static inline void env_slot_set(unsigned i, void *v) { env_slots[i] = v; }
#endif

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

/* Interrupt state of the calling hart (no-ops on the host). */
#ifdef KERNEL_BUILD
/* sstatus.SIE (the kernel's riscv.h calls it SSTATUS_SIE; kernel/mem.c
 * checks they agree): mm/ includes no kernel header. */
#define ENV_SSTATUS_SIE 2ul

static inline unsigned long env_irq_save(void)
{
	unsigned long v;
	__asm__ volatile("csrrci %0, sstatus, %1" : "=r"(v) : "i"(ENV_SSTATUS_SIE) : "memory");
	return v & ENV_SSTATUS_SIE;
}

/* flags is 0 or SIE: setting it back needs no branch. */
static inline void env_irq_restore(unsigned long flags)
{
	__asm__ volatile("csrs sstatus, %0" :: "r"(flags) : "memory");
}
#else
static inline unsigned long env_irq_save(void) { return 0; }
static inline void env_irq_restore(unsigned long flags) { (void)flags; }
#endif

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

#endif
