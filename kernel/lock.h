/* lock.h - spinlocks that save and restore the hart's interrupt state.
 * The lock itself is the mm seam's env_spinlock_t, so managers and kernel
 * share one implementation (kernel/env.c).
 *
 * ticketlock_t: a fair spinlock. Harts are served in the order they asked
 * (a ticket each), so one hart's stream of calls cannot starve another's;
 * the waiter spins with interrupts off (it holds its place in the queue),
 * so only short sections belong under it. */
#ifndef LOCK_H
#define LOCK_H

#include <stdint.h>

#include "env.h"

typedef env_spinlock_t spinlock_t;
#define SPINLOCK_INIT ENV_SPINLOCK_INIT

static inline unsigned long spin_lock_irqsave(spinlock_t *l)
{
	return env_lock(l);
}

static inline void spin_unlock_irqrestore(spinlock_t *l, unsigned long flags)
{
	env_unlock(l, flags);
}

typedef struct {
	uint32_t next;        /* the next ticket to hand out */
	uint32_t owner;       /* the ticket being served */
} ticketlock_t;
#define TICKETLOCK_INIT { 0, 0 }

static inline unsigned long ticket_lock_irqsave(ticketlock_t *l)
{
	unsigned long fl = env_irq_save();
	uint32_t me = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);

	while (__atomic_load_n(&l->owner, __ATOMIC_ACQUIRE) != me)
		env_cpu_relax();
	return fl;
}

static inline void ticket_unlock_irqrestore(ticketlock_t *l, unsigned long flags)
{
	/* only the holder writes owner: a plain increment, released */
	__atomic_store_n(&l->owner, l->owner + 1, __ATOMIC_RELEASE);
	env_irq_restore(flags);
}

#endif
