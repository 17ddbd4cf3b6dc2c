/* env_kernel.h - the kernel's inline part of the mm seam (mm/env.h includes
 * it in the kernel build): the dense hart index and the per-CPU slots at
 * fixed offsets below tp (struct hart, kernel/hart.h checks them), and
 * interrupt save/restore through sstatus.SIE.
 */
#ifndef KERNEL_ENV_KERNEL_H
#define KERNEL_ENV_KERNEL_H

#include "riscv.h"

/* struct hart keeps these just below the TLS block tp points at. */
#define ENV_KERNEL_TP_CPU   (-48)   /* unsigned long: the dense index */
#define ENV_KERNEL_TP_SLOTS (-40)   /* void *[ENV_NSLOTS] */

/* One load: the managers' per-CPU fast paths. */
static inline unsigned env_cpu(void)
{
	unsigned long v;
	__asm__("ld %0, %1(tp)" : "=r"(v) : "i"(ENV_KERNEL_TP_CPU));
	return (unsigned)v;
}

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

static inline unsigned long env_irq_save(void)
{
	unsigned long v;
	__asm__ volatile("csrrci %0, sstatus, %1" : "=r"(v) : "i"(SSTATUS_SIE) : "memory");
	return v & SSTATUS_SIE;
}

/* flags is 0 or SIE: setting it back needs no branch. */
static inline void env_irq_restore(unsigned long flags)
{
	__asm__ volatile("csrs sstatus, %0" :: "r"(flags) : "memory");
}

#endif
