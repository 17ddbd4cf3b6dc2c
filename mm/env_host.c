/* env_host.c - the mm environment seam for host builds (tests, fuzzers,
 * benchmarks, the malloc shims): spinlocks, CPU indexes for threads
 * (mm/env_host.h), logs written to stderr without allocating. */
#define _GNU_SOURCE
#include "env_host.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* CPU indexes for threads (the rules: mm/env_host.h). Lock order: fork_lock,
 * cpu_lock, then the shared indexes' mutexes in index order. */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t shared_lock[ENV_HOST_SHARED];
static pthread_key_t cpu_key;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static uint64_t cpu_used;               /* exclusive indexes taken, under cpu_lock */
static uint64_t cpu_late;               /* ... of them, taken after a retirement */
static pid_t cpu_owner[ENV_HOST_EXCLUSIVE];   /* tid per taken index */
static unsigned cpu_seen;
static unsigned shared_next, shared_users;
_Thread_local unsigned env_cpu_plus1;
static _Thread_local unsigned my_shared;      /* shared index + 1, or 0 */
static _Thread_local unsigned my_retired;     /* our key destructor ran */
static _Thread_local unsigned my_shared_calls;
static void *shared_slots[ENV_HOST_SHARED][ENV_NSLOTS];
struct env_host_cpu env_host_cpus[ENV_MAX_CPUS];
unsigned env_host_forking, env_host_full_fence;
unsigned char env_zero_block[ENV_ZERO_SIZE] __attribute__((aligned(64)));
_Thread_local void *env_slots[ENV_NSLOTS] = { [0 ... ENV_NSLOTS - 1] = env_zero_block };

_Static_assert(ENV_HOST_EXCLUSIVE <= 64, "env_host: one bit per exclusive index");
_Static_assert(ENV_MAX_CPUS <= 256, "env_host: kmalloc keeps the index in a byte");

static void slots_reset(void)
{
	for (unsigned i = 0; i < ENV_NSLOTS; i++)
		env_slots[i] = env_zero_block;
}

static void seen(unsigned c)
{
	if (c + 1 > cpu_seen)   /* read without the mutex by env_ncpus */
		__atomic_store_n(&cpu_seen, c + 1, __ATOMIC_RELAXED);
}

/* Key destructor: retire the index. A later call of this thread into a
 * manager takes one again (env_cpu_slow), so the index is never used by two
 * threads: it is ours until here, and free after. */
static void cpu_retire(void *v)
{
	unsigned c = (unsigned)(uintptr_t)v - 1;

	pthread_mutex_lock(&cpu_lock);
	if (c < ENV_HOST_EXCLUSIVE && cpu_owner[c] == gettid()) {
		cpu_used &= ~((uint64_t)1 << c);
		cpu_late &= ~((uint64_t)1 << c);
		cpu_owner[c] = 0;
	}
	pthread_mutex_unlock(&cpu_lock);
	if (env_cpu_plus1 == c + 1) {
		env_cpu_plus1 = 0;
		slots_reset();   /* the slots belong to the index, not the thread */
	}
	my_retired = 1;
}

/* Indexes taken after their thread's retirement may be held past its last
 * key destructor: free them once the kernel has no such thread. */
static void reclaim_late(void)
{
	pid_t pid = getpid();

	for (unsigned c = 0; c < ENV_HOST_EXCLUSIVE; c++) {
		if (!(cpu_late & ((uint64_t)1 << c)))
			continue;
		if (syscall(SYS_tgkill, pid, cpu_owner[c], 0) != 0 && errno == ESRCH &&
		    /* acquire: pairs with the dead thread's last env_host_leave */
		    !__atomic_load_n(&env_host_cpus[c].busy, __ATOMIC_ACQUIRE)) {
			cpu_used &= ~((uint64_t)1 << c);
			cpu_late &= ~((uint64_t)1 << c);
			cpu_owner[c] = 0;
		}
	}
}

/* Take the lowest free exclusive index; false if none. cpu_lock held. */
static bool take_exclusive(void)
{
	unsigned c = 0;

	if (cpu_used == (((uint64_t)2 << (ENV_HOST_EXCLUSIVE - 1)) - 1))
		reclaim_late();
	while (c < ENV_HOST_EXCLUSIVE && (cpu_used & ((uint64_t)1 << c)))
		c++;
	if (c == ENV_HOST_EXCLUSIVE)
		return false;
	cpu_used |= (uint64_t)1 << c;
	if (my_retired)
		cpu_late |= (uint64_t)1 << c;
	cpu_owner[c] = gettid();
	pthread_setspecific(cpu_key, (void *)(uintptr_t)(c + 1));
	seen(c);
	slots_reset();
	my_shared = 0;
	env_cpu_plus1 = c + 1;
	return true;
}

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void cpu_init(void)
{
	pthread_key_create(&cpu_key, cpu_retire);
	for (unsigned i = 0; i < ENV_HOST_SHARED; i++) {
		pthread_mutex_init(&shared_lock[i], NULL);
		for (unsigned j = 0; j < ENV_NSLOTS; j++)
			shared_slots[i][j] = env_zero_block;
	}
	/* brackets pay only a compiler barrier when fork can interrupt them */
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
		env_host_full_fence = 1;
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* First manager call of a thread outside a bracket (or after retirement):
 * an exclusive index, waiting for one to be retired if none is free. */
unsigned env_cpu_slow(void)
{
	unsigned waits = 0;

	pthread_once(&cpu_once, cpu_init);
	while (!env_cpu_plus1) {
		pthread_mutex_lock(&cpu_lock);
		bool ok = take_exclusive();
		pthread_mutex_unlock(&cpu_lock);
		if (ok)
			break;
		if (++waits == 1000)
			env_log("env_cpu: more than %d live threads call the managers "
				"outside env_host_enter; waiting for one to exit",
				ENV_HOST_EXCLUSIVE);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return env_cpu_plus1 - 1;
}

/* A shared index for one bracket: any free one, else wait for ours. */
static unsigned enter_shared(void)
{
	unsigned s = my_shared - 1, i;

	for (i = 0; i < ENV_HOST_SHARED; i++)
		if (pthread_mutex_trylock(&shared_lock[(s + i) % ENV_HOST_SHARED]) == 0)
			break;
	if (i == ENV_HOST_SHARED)
		pthread_mutex_lock(&shared_lock[s]);
	else
		s = (s + i) % ENV_HOST_SHARED;
	unsigned c = ENV_HOST_EXCLUSIVE + s;
	for (unsigned j = 0; j < ENV_NSLOTS; j++)
		env_slots[j] = shared_slots[s][j];
	env_host_cpus[c].busy = 1;   /* under the mutex: fork takes it too */
	env_cpu_plus1 = c + 1;
	return c + 1;
}

unsigned env_host_enter_slow(void)
{
	pthread_once(&cpu_once, cpu_init);
	for (;;) {
		if (__atomic_load_n(&env_host_forking, __ATOMIC_ACQUIRE)) {
			pthread_mutex_lock(&fork_lock);     /* held for the fork */
			pthread_mutex_unlock(&fork_lock);
		}
		if (env_cpu_plus1)
			return env_host_enter();   /* the fork is over: try again */
		/* a thread on the shared indexes tries for its own now and then */
		if (!my_shared || ++my_shared_calls % 4096 == 0) {
			pthread_mutex_lock(&cpu_lock);
			bool ok = take_exclusive();
			if (!ok && !my_shared) {
				my_shared = 1 + shared_next++ % ENV_HOST_SHARED;
				shared_users++;
				seen(ENV_MAX_CPUS - 1);
			}
			pthread_mutex_unlock(&cpu_lock);
			if (ok)
				continue;
		}
		return enter_shared();
	}
}

void env_host_leave_slow(unsigned token)
{
	unsigned s = token - 1 - ENV_HOST_EXCLUSIVE;

	for (unsigned j = 0; j < ENV_NSLOTS; j++)
		shared_slots[s][j] = env_slots[j];
	slots_reset();
	env_cpu_plus1 = 0;
	env_host_cpus[token - 1].busy = 0;
	pthread_mutex_unlock(&shared_lock[s]);
}

unsigned env_host_shared_users(void)
{
	return __atomic_load_n(&shared_users, __ATOMIC_RELAXED);
}

unsigned env_host_exclusive_used(void)
{
	pthread_mutex_lock(&cpu_lock);
	unsigned n = (unsigned)__builtin_popcountll(cpu_used);
	pthread_mutex_unlock(&cpu_lock);
	return n;
}

/* fork: no thread may be inside a bracket, so that the child finds every
 * manager lock free. Runs last among the prepare handlers (registered first). */
static void fork_prepare(void)
{
	pthread_mutex_lock(&fork_lock);
	pthread_mutex_lock(&cpu_lock);
	__atomic_store_n(&env_host_forking, 1, __ATOMIC_SEQ_CST);
	if (env_host_full_fence ||
	    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
		env_host_fence();
	for (unsigned i = 0; i < ENV_HOST_SHARED; i++)
		pthread_mutex_lock(&shared_lock[i]);
	for (unsigned c = 0; c < ENV_HOST_EXCLUSIVE; c++)
		while (__atomic_load_n(&env_host_cpus[c].busy, __ATOMIC_ACQUIRE) &&
		       c + 1 != env_cpu_plus1)
			sched_yield();
}

static void fork_parent(void)
{
	for (unsigned i = ENV_HOST_SHARED; i-- > 0;)
		pthread_mutex_unlock(&shared_lock[i]);
	__atomic_store_n(&env_host_forking, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&cpu_lock);
	pthread_mutex_unlock(&fork_lock);
}

/* The child has one thread: every index but its own is free again. */
static void fork_child(void)
{
	unsigned c = env_cpu_plus1;

	for (unsigned i = 0; i < ENV_HOST_SHARED; i++)
		pthread_mutex_init(&shared_lock[i], NULL);
	pthread_mutex_init(&cpu_lock, NULL);
	pthread_mutex_init(&fork_lock, NULL);
	cpu_used = cpu_late = 0;
	shared_users = 0;
	for (unsigned i = 0; i < ENV_HOST_EXCLUSIVE; i++)
		cpu_owner[i] = 0;
	if (c - 1 < ENV_HOST_EXCLUSIVE) {
		cpu_used = (uint64_t)1 << (c - 1);
		cpu_owner[c - 1] = gettid();
	}
	env_host_forking = 0;
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

/* Formatted on the stack and written with write(2): logs come from inside
 * manager calls, where stdio might allocate (and, in the malloc shims,
 * call back into the manager). */
static void log_line(const char *prefix, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", prefix);
	int k = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);

	n += k < 0 ? 0 : ((size_t)k < sizeof(buf) - n - 1 ? (size_t)k : sizeof(buf) - n - 2);
	buf[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t w = write(2, buf + off, n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

void env_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

_Noreturn void env_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("panic: ", fmt, ap);
	va_end(ap);
	abort();
}

/* Page give-back (umm): anonymous private pages read as zeros after
 * MADV_DONTNEED and are not resident until touched again. */
int env_release_pages(void *addr, size_t len)
{
	return madvise(addr, len, MADV_DONTNEED) ? E_FAILED : 0;
}
