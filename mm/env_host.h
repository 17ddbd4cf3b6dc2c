/* env_host.h - host-only additions to the env seam (mm/env.h): the rules
 * for CPU indexes of threads, and the bracket that gives a thread beyond the
 * table an index of its own for the duration of one manager call.
 *
 * What the managers may assume about env_cpu() on the host (as on the
 * kernel): while a call into a manager runs, no other thread runs with the
 * same index. An index passes from one thread to another only with a
 * happens-before edge (a mutex), so per-CPU data changes hands cleanly.
 *
 * How the host keeps it:
 * - Exclusive indexes, 0 .. ENV_HOST_EXCLUSIVE - 1: a thread takes the lowest
 *   free one at its first env_cpu() and keeps it until its thread-key
 *   destructor retires it. A call after that (a later key destructor, libc's
 *   own thread cleanup) takes an index again; if it does so after the last
 *   round of key destructors, the index is retired once the kernel reports
 *   the thread gone (tgkill(0) gives ESRCH), never while it may still run.
 * - Shared indexes, ENV_HOST_EXCLUSIVE .. ENV_MAX_CPUS - 1, each with a
 *   mutex: a thread that finds no exclusive index free uses one of them, and
 *   only inside env_host_enter() .. env_host_leave(), which holds that
 *   index's mutex across the call. Outside a bracket such a thread has no
 *   index (env_cpu_plus1 is 0): a manager call it makes without a bracket
 *   waits in env_cpu_slow() until an exclusive index is retired.
 * So a program may run any number of threads as long as they call the
 * managers inside brackets (the malloc shims in tools/malloc do); callers
 * that never run more than ENV_HOST_EXCLUSIVE threads at once need none.
 *
 * The bracket also makes fork() safe: a fork handler (env_host_atfork)
 * waits until no thread is inside a bracket, so the child finds every
 * manager lock free; the child keeps only the forking thread's index.
 */
#ifndef MM_ENV_HOST_H
#define MM_ENV_HOST_H

#include "env.h"

/* ---- the host's inline part of the seam (mm/env.h includes this file) ---- */

/* env_cpu: cached per thread; the first call of a thread assigns it. */
extern _Thread_local unsigned env_cpu_plus1;
unsigned env_cpu_slow(void);
static inline unsigned env_cpu(void)
{
	unsigned v = env_cpu_plus1;
	return v ? v - 1 : env_cpu_slow();
}

/* Slots are thread-local, so a slot dies with its thread. */
extern _Thread_local void *env_slots[ENV_NSLOTS];
static inline void *env_slot_get(unsigned i) { return env_slots[i]; }
static inline void env_slot_set(unsigned i, void *v) { env_slots[i] = v; }

/* No interrupts on the host. */
static inline unsigned long env_irq_save(void) { return 0; }
static inline void env_irq_restore(unsigned long flags) { (void)flags; }

#ifndef ENV_HOST_SHARED
#define ENV_HOST_SHARED 8               /* indexes shared under a mutex */
#endif
#define ENV_HOST_EXCLUSIVE (ENV_MAX_CPUS - ENV_HOST_SHARED)
_Static_assert(ENV_HOST_SHARED >= 1 && ENV_HOST_EXCLUSIVE >= 1, "env_host: index split");

/* Per index: set while a thread is inside a bracket on it (fork waits). */
struct env_host_cpu {
	unsigned busy;
} __attribute__((aligned(64)));
extern struct env_host_cpu env_host_cpus[ENV_MAX_CPUS];
extern unsigned env_host_forking;       /* a fork waits for brackets to end */
extern unsigned env_host_full_fence;    /* no membarrier: enter pays a fence */

/* A full fence (TSan does not model fences: a seq_cst RMW instead). */
static inline void env_host_fence(void)
{
#if defined(__SANITIZE_THREAD__)
	static unsigned dummy;
	__atomic_fetch_add(&dummy, 0, __ATOMIC_SEQ_CST);
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

unsigned env_host_enter_slow(void);
void env_host_leave_slow(unsigned token);

/* Start a manager call: returns a token for env_host_leave. Nests (an inner
 * bracket is a no-op). Never fails; may wait for a shared index or a fork. */
static inline unsigned env_host_enter(void)
{
	unsigned c = env_cpu_plus1;

	if (__builtin_expect(c != 0, 1)) {
		struct env_host_cpu *h = &env_host_cpus[c - 1];
		if (h->busy)
			return 0;                       /* nested */
		__atomic_store_n(&h->busy, 1, __ATOMIC_RELAXED);
		/* pairs with the forker's membarrier (or its own fence) */
		if (__builtin_expect(__atomic_load_n(&env_host_full_fence, __ATOMIC_RELAXED), 0))
			env_host_fence();
		else
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (__builtin_expect(!__atomic_load_n(&env_host_forking, __ATOMIC_RELAXED), 1))
			return c;
		__atomic_store_n(&h->busy, 0, __ATOMIC_RELEASE);
	}
	return env_host_enter_slow();
}

/* End the call begun by the env_host_enter that returned `token`. */
static inline void env_host_leave(unsigned token)
{
	if (__builtin_expect(token - 1 < ENV_HOST_EXCLUSIVE, 1))
		__atomic_store_n(&env_host_cpus[token - 1].busy, 0, __ATOMIC_RELEASE);
	else if (token)
		env_host_leave_slow(token);
}

/* Threads that have used the shared indexes, and exclusive indexes now
 * taken (tests and stats; a snapshot). */
unsigned env_host_shared_users(void);
unsigned env_host_exclusive_used(void);

#endif
