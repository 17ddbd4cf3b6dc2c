/* lock.h - spinlocks that save and restore the hart's interrupt state.
 * The lock itself is the mm seam's env_spinlock_t, so managers and kernel
 * share one implementation (kernel/env.c). */
#ifndef LOCK_H
#define LOCK_H

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

#endif
