/* env.c - the mm environment seam implemented for the kernel. */
#include "env.h"

#include <stdarg.h>
#include <stdio.h>

#include "boot.h"
#include "hart.h"
#include "panic.h"
#include "riscv.h"

unsigned long env_lock(env_spinlock_t *l)
{
	unsigned long flags = irq_save();

	while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE)) {
		/* spin on a plain load, interrupts restored meanwhile */
		irq_restore(flags);
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
			env_cpu_relax();
		flags = irq_save();
	}
	return flags;
}

void env_unlock(env_spinlock_t *l, unsigned long flags)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
	irq_restore(flags);
}

bool env_trylock(env_spinlock_t *l, unsigned long *flags)
{
	*flags = irq_save();
	if (!__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
		return true;
	irq_restore(*flags);
	return false;
}

unsigned char env_zero_block[ENV_ZERO_SIZE] __attribute__((aligned(64)));

unsigned env_ncpus(void)
{
	return harts_online;
}

uint64_t env_ticks(void)
{
	return rdtime();
}

uint64_t env_ticks_per_sec(void)
{
	return timebase_hz;
}

void env_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

_Noreturn void env_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vpanic(NULL, fmt, ap);
}

/* Page give-back (umm): the kernel's pools sit in the direct map, backed by
 * pages pmem handed out for good, so there is nothing to give the pages
 * back to yet: the hook declines (the caller keeps the memory as it was). */
int env_release_pages(void *addr, size_t len)
{
	(void)addr;
	(void)len;
	return E_NOTSUP;
}
