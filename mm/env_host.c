/* env_host.c - the mm environment seam for host builds (tests, fuzzers,
 * benchmarks): pthread-era atomics, a thread-local CPU index, stderr logs. */
#include "env.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>

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

/* CPU indexes for threads: the lowest free one, returned when the thread
 * exits, so live threads never share an index; more than ENV_MAX_CPUS live
 * threads is refused (managers rely on it for their per-CPU data). */
static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t cpu_key;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static uint64_t cpu_used;
static unsigned cpu_seen;
_Thread_local unsigned env_cpu_plus1;
unsigned char env_zero_block[ENV_ZERO_SIZE] __attribute__((aligned(64)));
_Thread_local void *env_slots[ENV_NSLOTS] = { [0 ... ENV_NSLOTS - 1] = env_zero_block };

static void cpu_release(void *v)
{
	unsigned c = (unsigned)(uintptr_t)v - 1;

	pthread_mutex_lock(&cpu_lock);
	cpu_used &= ~((uint64_t)1 << c);
	pthread_mutex_unlock(&cpu_lock);
}

static void cpu_key_init(void)
{
	pthread_key_create(&cpu_key, cpu_release);
}

_Static_assert(ENV_MAX_CPUS <= 64, "env_host: one bit per CPU index");

unsigned env_cpu_slow(void)
{
	if (!env_cpu_plus1) {
		unsigned c = 0;

		pthread_once(&cpu_once, cpu_key_init);
		pthread_mutex_lock(&cpu_lock);
		while (c < ENV_MAX_CPUS && (cpu_used & ((uint64_t)1 << c)))
			c++;
		/* the managers' per-CPU data assumes one live owner per index */
		if (c == ENV_MAX_CPUS)
			env_panic("env_cpu: more than %d live threads use the managers",
				  ENV_MAX_CPUS);
		cpu_used |= (uint64_t)1 << c;
		pthread_setspecific(cpu_key, (void *)(uintptr_t)(c + 1));
		if (c + 1 > cpu_seen)   /* read without the mutex by env_ncpus */
			__atomic_store_n(&cpu_seen, c + 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&cpu_lock);
		env_cpu_plus1 = c + 1;
	}
	return env_cpu_plus1 - 1;
}

unsigned env_ncpus(void)
{
	unsigned n = __atomic_load_n(&cpu_seen, __ATOMIC_RELAXED);
	return n == 0 ? 1 : n;
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

/* Page give-back (umm): anonymous private pages read as zeros after
 * MADV_DONTNEED and are not resident until touched again. */
int env_release_pages(void *addr, size_t len)
{
	return madvise(addr, len, MADV_DONTNEED) ? E_FAILED : 0;
}
