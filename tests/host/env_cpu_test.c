/* env_cpu_test.c - CPU indexes of host threads (mm/env_host.h): 200 live
 * threads on umm and kmalloc through brackets, threads that free in
 * thread-key destructors while others start, and indexes retired after. */
#define _GNU_SOURCE
#include "ktest.h"
#include "env_host.h"
#include "kmalloc.h"
#include "umm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POOL (8u << 20)

struct world {
	umm_t *umm;
	kmalloc_t km;
	unsigned owner[ENV_MAX_CPUS];   /* thread inside a bracket on each index */
	unsigned clashes, bad;
	pthread_barrier_t all_live;
	pthread_key_t key;
	unsigned next_id;
};

static void *pages_get(void *ctx, size_t n)
{
	void *p = NULL;
	return posix_memalign(&p, ENV_PAGE_SIZE, n * ENV_PAGE_SIZE) ? NULL : p;
}

static void pages_put(void *ctx, void *va, size_t n) { free(va); }

/* Enter, and record that this thread is the only one on its index. */
static unsigned enter(struct world *w, unsigned id)
{
	unsigned t = env_host_enter(), c = env_cpu();
	unsigned old = 0;

	if (!__atomic_compare_exchange_n(&w->owner[c], &old, id, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		__atomic_add_fetch(&w->clashes, 1, __ATOMIC_RELAXED);
	return t;
}

static void leave(struct world *w, unsigned id, unsigned t)
{
	unsigned c = env_cpu();
	__atomic_compare_exchange_n(&w->owner[c], &id, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	env_host_leave(t);
}

/* A few allocations from each manager, filled with the thread's id and
 * checked before they are freed: a block handed to two threads shows. */
static void churn(struct world *w, unsigned id, unsigned rounds)
{
	for (unsigned r = 0; r < rounds; r++) {
		unsigned t = enter(w, id);
		size_t n = 16 + (id * 7 + r * 13) % 600;
		unsigned char *a = umm_alloc(w->umm, n, 0);
		unsigned char *b = kmalloc_i(&w->km, n);
		if (a)
			memset(a, (int)id, n);
		if (b)
			memset(b, (int)id, n);
		leave(w, id, t);
		sched_yield();
		t = enter(w, id);
		for (size_t i = 0; i < n; i++)
			if ((a && a[i] != (unsigned char)id) || (b && b[i] != (unsigned char)id)) {
				__atomic_add_fetch(&w->bad, 1, __ATOMIC_RELAXED);
				break;
			}
		if (!a || !b)
			__atomic_add_fetch(&w->bad, 1, __ATOMIC_RELAXED);
		umm_free(w->umm, a);
		kfree_i(&w->km, b);
		leave(w, id, t);
	}
}

static struct world *world_new(struct ktest_ctx *kt__)
{
	struct world *w = ktest_mem(sizeof(*w), 64);
	void *space = ktest_mem(POOL, 4096);

	w->umm = ktest_mem(sizeof(umm_t), 64);
	if (!w || !space || !w->umm || umm_init(w->umm, space, POOL))
		return NULL;
	struct kmalloc_page_source src = { pages_get, pages_put, NULL };
	if (kmalloc_init_i(&w->km, &src, NULL, 0))
		return NULL;
	/* One pool growth, here: kmalloc_pool_grow reads pool_bytes without
	 * the lock before it knows whether it grows (a race TSan reports that
	 * this test is not about). */
	kmalloc_tune_i(&w->km, 4096, 0);
	kfree_i(&w->km, kmalloc_i(&w->km, 16));
	return w;
}

static void world_check(struct ktest_ctx *kt__, struct world *w)
{
	EXPECT_EQ(w->clashes, 0);
	EXPECT_EQ(w->bad, 0);
	kmalloc_reap_all_i(&w->km);
	EXPECT_EQ(umm_check(w->umm), 0);
	EXPECT_EQ(kmalloc_check_i(&w->km, KMALLOC_CHECK_ALL), 0);
	kmalloc_destroy_i(&w->km);
}

#define NLIVE 200

/* Run `n` threads of `fn(w)` that meet at w->all_live, and join them all.
 * False if the barrier or a thread could not be made: then those made wait
 * at the barrier for good and are not joined (the test fails there). */
static bool run_all_live(struct world *w, pthread_t *th, unsigned n, void *(*fn)(void *))
{
	if (pthread_barrier_init(&w->all_live, NULL, n))
		return false;
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, fn, w))
			return false;
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&w->all_live);
	return true;
}

static void *live_thread(void *arg)
{
	struct world *w = arg;
	unsigned id = __atomic_add_fetch(&w->next_id, 1, __ATOMIC_RELAXED);

	churn(w, id, 4);
	pthread_barrier_wait(&w->all_live);   /* every thread is live here */
	churn(w, id, 20);
	return NULL;
}

/* More live threads than ENV_MAX_CPUS: those beyond the exclusive indexes
 * share under the bracket, never two at once on one index. */
KTEST(env_cpu, many_live_threads)
{
	struct world *w = world_new(kt__);
	pthread_t th[NLIVE];
	unsigned users0 = env_host_shared_users();

	ASSERT(w);
	ASSERT(run_all_live(w, th, NLIVE, live_thread));
	/* 200 threads were live at the barrier: at least 200 - 56 shared */
	EXPECT_GE(env_host_shared_users() - users0, NLIVE - ENV_HOST_EXCLUSIVE);
	world_check(kt__, w);
}

/* What a thread leaves in its key: a block of each manager. */
struct kv {
	struct world *w;
	void *ublk;
	unsigned id, round;
};

/* Key destructor: frees what the thread left, then (in the first round)
 * leaves more, so that another round runs and frees that too. */
static void key_free(void *v)
{
	struct kv *k = v, *n;
	struct world *w = k->w;
	unsigned id = k->id, round = k->round;
	unsigned t = enter(w, id);

	umm_free(w->umm, k->ublk);
	kfree_i(&w->km, k);
	leave(w, id, t);
	churn(w, id, 2);   /* overlaps the new threads' first calls */
	t = enter(w, id);
	if (round == 0 && (n = kmalloc_i(&w->km, sizeof(*n))) != NULL) {
		*n = (struct kv){ w, umm_alloc(w->umm, 100, 0), id, 1 };
		pthread_setspecific(w->key, n);
	}
	leave(w, id, t);
}

static void *exiting_thread(void *arg)
{
	struct world *w = arg;
	unsigned id = __atomic_add_fetch(&w->next_id, 1, __ATOMIC_RELAXED);

	churn(w, id, 3);
	unsigned t = enter(w, id);
	struct kv *k = kmalloc_i(&w->km, sizeof(*k));
	if (k)
		*k = (struct kv){ w, umm_alloc(w->umm, 200, 0), id, 0 };
	leave(w, id, t);
	if (k)
		pthread_setspecific(w->key, k);
	return NULL;
}

/* Threads exit freeing memory in key destructors that run after the
 * index's own (the key is newer), while new threads start and take the
 * indexes the exiting ones retire. */
KTEST(env_cpu, frees_in_key_destructors)
{
	struct world *w = world_new(kt__);
	enum { WAVES = 40, WIDTH = 8 };
	pthread_t th[WAVES][WIDTH];
	(void)env_cpu();   /* the index key exists before ours: ours runs later */
	unsigned used0 = env_host_exclusive_used();

	ASSERT(w);
	ASSERT_EQ(pthread_key_create(&w->key, key_free), 0);
	for (unsigned i = 0; i < WAVES; i++) {
		for (unsigned j = 0; j < WIDTH; j++)
			ASSERT_EQ(pthread_create(&th[i][j], NULL, exiting_thread, w), 0);
		if (i >= 2)   /* two waves in flight: starts overlap exits */
			for (unsigned j = 0; j < WIDTH; j++)
				pthread_join(th[i - 2][j], NULL);
	}
	for (unsigned i = WAVES - 2; i < WAVES; i++)
		for (unsigned j = 0; j < WIDTH; j++)
			pthread_join(th[i][j], NULL);
	pthread_key_delete(w->key);
	/* every exited thread retired its index, destructor frees included */
	EXPECT_EQ(env_host_exclusive_used(), used0);
	world_check(kt__, w);
}

struct waiter {
	struct world *w;
	unsigned go;
};

static void *unbracketed_thread(void *arg)
{
	struct waiter *wa = arg;
	struct world *w = wa->w;
	unsigned id = __atomic_add_fetch(&w->next_id, 1, __ATOMIC_RELAXED);
	unsigned c = env_cpu();   /* no bracket: waits while none is free */
	unsigned old = 0;

	while (!__atomic_load_n(&wa->go, __ATOMIC_ACQUIRE))
		sched_yield();
	if (!__atomic_compare_exchange_n(&w->owner[c], &old, id, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		__atomic_add_fetch(&w->clashes, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < 50; i++) {
		void *p = umm_alloc(w->umm, 64 + i, 0);
		if (!p)
			__atomic_add_fetch(&w->bad, 1, __ATOMIC_RELAXED);
		umm_free(w->umm, p);
	}
	__atomic_compare_exchange_n(&w->owner[c], &id, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	return NULL;
}

/* Threads that call a manager without a bracket never share an index:
 * beyond the exclusive ones they wait until exiting threads retire theirs. */
KTEST(env_cpu, unbracketed_threads_wait)
{
	struct world *w = world_new(kt__);
	enum { N = ENV_HOST_EXCLUSIVE + 24 };
	pthread_t th[N];
	struct waiter wa = { w, 0 };

	ASSERT(w);
	for (unsigned i = 0; i < N; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, unbracketed_thread, &wa), 0);
	/* the table full with N threads started: the others wait for one */
	while (env_host_exclusive_used() < ENV_HOST_EXCLUSIVE ||
	       __atomic_load_n(&w->next_id, __ATOMIC_RELAXED) < N)
		sched_yield();
	__atomic_store_n(&wa.go, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	EXPECT_EQ(w->next_id, N);
	world_check(kt__, w);
}

/* Not under TSan: its runtime destroys a thread's state in the last round
 * of key destructors, and this test's destructor runs after that. */
#ifndef __SANITIZE_THREAD__
/* A destructor that calls a manager in every round, re-arming itself, so
 * its last call comes after the index's own destructor has run for the
 * last time: the index taken then outlives the thread. */
struct late { struct world *w; unsigned id, rounds; };

static void late_free(void *v)
{
	struct late *l = v;
	unsigned t = enter(l->w, l->id);
	umm_free(l->w->umm, umm_alloc(l->w->umm, 48, 0));
	leave(l->w, l->id, t);
	if (++l->rounds < 16)
		pthread_setspecific(l->w->key, l);   /* glibc stops after 4 rounds */
}

static void *late_thread(void *arg)
{
	struct late *l = arg;
	churn(l->w, l->id, 2);
	pthread_setspecific(l->w->key, l);
	return NULL;
}

static void *hold_thread(void *arg)
{
	struct world *w = arg;
	unsigned id = __atomic_add_fetch(&w->next_id, 1, __ATOMIC_RELAXED);
	churn(w, id, 1);
	pthread_barrier_wait(&w->all_live);
	return NULL;
}

/* Indexes taken after the last destructor round are retired once their
 * threads are gone: a full table of new live threads gets them back
 * instead of falling to the shared indexes. */
KTEST(env_cpu, late_indexes_retired)
{
	struct world *w = world_new(kt__);
	enum { L = 8 };
	struct late ls[L];
	pthread_t th[ENV_HOST_EXCLUSIVE];

	ASSERT(w);
	(void)env_cpu();
	ASSERT_EQ(pthread_key_create(&w->key, late_free), 0);
	for (unsigned i = 0; i < L; i++) {
		ls[i] = (struct late){ w, 1000 + i, 0 };
		ASSERT_EQ(pthread_create(&th[i], NULL, late_thread, &ls[i]), 0);
	}
	for (unsigned i = 0; i < L; i++)
		pthread_join(th[i], NULL);
	pthread_key_delete(w->key);
	unsigned used = env_host_exclusive_used(), users0 = env_host_shared_users();
	EXPECT_LT(1, used);   /* the main thread's, and late ones held past exit */
	unsigned n = ENV_HOST_EXCLUSIVE - 1;   /* every index but the main thread's */
	ASSERT(run_all_live(w, th, n, hold_thread));
	EXPECT_EQ(env_host_shared_users(), users0);   /* all got an exclusive one */
	world_check(kt__, w);
}
#endif
