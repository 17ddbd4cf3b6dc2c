/* env_host.c - the mm environment seam for host builds (tests, fuzzers,
 * benchmarks): pthread-era atomics, a thread-local CPU index, stderr logs. */
#include "env.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned next_cpu;
static _Thread_local unsigned my_cpu_plus1;

unsigned long env_lock(env_spinlock_t *l)
{
	unsigned spins = 0;
	while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED)) {
			if (++spins % 64 == 0)
				sched_yield();   /* threads may outnumber cores */
			else
				env_cpu_relax();
		}
	}
	return 0;
}

void env_unlock(env_spinlock_t *l, unsigned long flags)
{
	(void)flags;
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

bool env_trylock(env_spinlock_t *l, unsigned long *flags)
{
	*flags = 0;
	return !__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE);
}

unsigned env_cpu(void)
{
	if (!my_cpu_plus1) {
		unsigned c = __atomic_fetch_add(&next_cpu, 1, __ATOMIC_RELAXED);
		/* Threads beyond the limit share indexes; per-CPU data must then
		 * still be safe, only slower (the kernel never exceeds it). */
		my_cpu_plus1 = c % ENV_MAX_CPUS + 1;
	}
	return my_cpu_plus1 - 1;
}

unsigned env_ncpus(void)
{
	unsigned n = __atomic_load_n(&next_cpu, __ATOMIC_RELAXED);
	return n == 0 ? 1 : (n > ENV_MAX_CPUS ? ENV_MAX_CPUS : n);
}

uint64_t env_ticks(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t env_ticks_per_sec(void)
{
	return 1000000000u;
}

unsigned long env_irq_save(void)
{
	return 0;
}

void env_irq_restore(unsigned long flags)
{
	(void)flags;
}

void env_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

_Noreturn void env_panic(const char *fmt, ...)
{
	va_list ap;
	fputs("panic: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
