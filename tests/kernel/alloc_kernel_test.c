/* alloc_kernel_test.c - the allocators under timer interrupts on every
 * hart: umm fast-path allocations and frees from the tick while all harts
 * run a pattern-checked stress on the same pool; kmalloc's reaper asked
 * for by the tick and run at each hart's safe point while all harts
 * allocate. Both end fully free and checked. */
#include <stdio.h>
#include <string.h>

#include "hart.h"
#include "kernel.h"
#include "kmalloc.h"
#include "ktest.h"
#include "mem.h"
#include "riscv.h"
#include "umm.h"

#define SLOTS 64

/* ---- umm ------------------------------------------------------------------ */

static umm_t *volatile tick_pool;
static volatile uint64_t tick_allocs[MAX_HARTS], tick_null[MAX_HARTS];
static void *tick_held[MAX_HARTS];
static volatile bool tick_stop[MAX_HARTS];   /* set by the hart's worker when it ends */

/* Timer context: fast path only; a NULL (contention) is allowed. */
static void umm_tick(void)
{
	umm_t *pool = tick_pool;
	unsigned i = this_hart()->index;
	uint8_t *p;

	if (!pool || tick_stop[i])
		return;
	if (tick_held[i]) {
		p = tick_held[i];
		if (p[0] != (uint8_t)(0xa0 + i) || p[47] != (uint8_t)(0xa0 + i))
			panic("umm_tick: block of hart %u overwritten", i);
		umm_free_fast(pool, tick_held[i]);
		tick_held[i] = NULL;
	}
	p = umm_alloc_fast(pool, 48, (uint8_t)i);
	if (!p) {
		tick_null[i]++;
		return;
	}
	memset(p, 0xa0 + (int)i, 48);
	tick_held[i] = p;
	tick_allocs[i]++;
}

struct ustress {
	umm_t *pool;
	uint64_t deadline;
	volatile unsigned bad;
};

static void umm_worker(unsigned i, void *arg)
{
	struct ustress *s = arg;
	uint8_t *mine[SLOTS] = { 0 };
	size_t sz[SLOTS] = { 0 };
	uint64_t x = 0x9e3779b97f4a7c15ull * (i + 1);

	while (rdtime() < s->deadline) {
		unsigned k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (unsigned)(x % SLOTS);
		if (mine[k]) {
			for (size_t j = 0; j < sz[k]; j++)
				if (mine[k][j] != (uint8_t)(k + i)) {
					s->bad++;
					break;
				}
			umm_free(s->pool, mine[k]);
			mine[k] = NULL;
		} else {
			sz[k] = 16 + (size_t)(x >> 40) % 2000;
			mine[k] = umm_alloc(s->pool, sz[k], (uint8_t)i);
			if (mine[k])
				memset(mine[k], (int)(k + i), sz[k]);
		}
	}
	for (unsigned k = 0; k < SLOTS; k++)
		if (mine[k])
			umm_free(s->pool, mine[k]);
	/* this hart's tick stops using the pool, its held block is freed,
	 * then its cached chunks go back (the tick runs on this hart only) */
	unsigned h = this_hart()->index;
	tick_stop[h] = true;
	__asm__ volatile("" ::: "memory");
	if (tick_held[h]) {
		umm_free(s->pool, tick_held[h]);
		tick_held[h] = NULL;
	}
	umm_flush(s->pool);
}

KTEST(umm, timer_interrupt_fast_path_during_cross_hart_stress)
{
	size_t size = 4u << 20;
	void *space = ktest_mem(size, 4096);
	struct ustress s;
	struct umm_stats st;
	umm_t *pool = ktest_mem(UMM_SIZE(harts_online), 64);   /* for the harts there are */

	ASSERT(space != NULL);
	ASSERT(pool != NULL);
	ASSERT_EQ(umm_init_cpus(pool, space, size, harts_online), 0);
	memset((void *)tick_allocs, 0, sizeof(tick_allocs));
	memset(tick_held, 0, sizeof(tick_held));
	memset((void *)tick_stop, 0, sizeof(tick_stop));
	s.pool = pool;
	s.bad = 0;
	s.deadline = rdtime() + timebase_hz;   /* 1 s */
	tick_pool = pool;
	ASSERT_EQ(timer_add_hook(umm_tick), 0);
	ktest_parallel(ktest_ncpus(), umm_worker, &s);
	timer_remove_hook(umm_tick);
	tick_pool = NULL;
	/* a tick that began before the removal may still run: let it end */
	for (uint64_t t = rdtime() + timebase_hz / 50; rdtime() < t;)
		env_cpu_relax();
	for (unsigned i = 0; i < harts_online; i++) {
		if (tick_held[i])
			umm_free(pool, tick_held[i]);
		EXPECT_GE(tick_allocs[i], 1);   /* every hart allocated in its tick */
	}
	EXPECT_EQ(s.bad, 0);
	umm_stats(pool, &st);
	EXPECT_EQ(st.live_bytes, 0);
	EXPECT_EQ(st.allocs, st.frees);
	EXPECT_EQ(umm_check(pool), 0);
	/* everything merged back: the whole capacity in one block */
	void *all = umm_alloc(pool, st.capacity, 0);
	EXPECT(all != NULL);
	umm_free(pool, all);
	printf("umm: timer ticks allocated %llu blocks on %u harts (%llu NULL from contention)\n",
	       (unsigned long long)({ uint64_t n = 0; for (unsigned i = 0; i < harts_online; i++) n += tick_allocs[i]; n; }),
	       harts_online,
	       (unsigned long long)({ uint64_t n = 0; for (unsigned i = 0; i < harts_online; i++) n += tick_null[i]; n; }));
}

/* ---- kmalloc ---------------------------------------------------------------- */

static kmalloc_t kinst;
static volatile bool reap_on;
static volatile uint64_t reaps[MAX_HARTS];
static volatile bool reap_due[MAX_HARTS];

static void *pages_get(void *ctx, size_t n)
{
	uintptr_t pa = pmem_alloc_pages(&kpmem, n, 0, 0, PMEM_NODE_ANY);
	(void)ctx;
	return pa ? pa_to_dmap(pa) : NULL;
}

static void pages_put(void *ctx, void *va, size_t n)
{
	(void)ctx;
	pmem_free_pages(&kpmem, (uintptr_t)va - DIRECT_MAP_BASE, n);
}

/* As the kernel's reaper (kernel/mem.c): the tick only asks; the hart
 * reaps at its next safe point, here the top of its worker loop, since no
 * interrupt handler may call into kmalloc. */
static void reap_tick(void)
{
	if (reap_on)
		reap_due[this_hart()->index] = true;
}

static void reap_if_due(unsigned i)
{
	if (!reap_due[i])
		return;
	reap_due[i] = false;
	kmalloc_reap_i(&kinst);
	reaps[i]++;
}

struct kstress {
	uint64_t deadline;
	volatile unsigned bad;
	void *volatile handoff[MAX_HARTS];
};

static void kmalloc_worker(unsigned i, void *arg)
{
	static const size_t sizes[] = { 32, 64, 96, 128, 192, 256, 512, 1024, 4096 };
	struct kstress *s = arg;
	uint8_t *mine[SLOTS] = { 0 };
	size_t sz[SLOTS] = { 0 };
	uint64_t x = 0x2545f4914f6cdd1dull * (i + 3);

	while (rdtime() < s->deadline) {
		unsigned k;
		void *give;

		reap_if_due(i);
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (unsigned)(x % SLOTS);
		if (mine[k]) {
			if (mine[k][0] != (uint8_t)(k ^ i) || mine[k][sz[k] - 1] != (uint8_t)(k ^ i))
				s->bad++;
			/* every eighth block is freed by the next hart */
			if ((x >> 50) % 8 == 0) {
				give = __atomic_exchange_n(&s->handoff[(i + 1) % harts_online],
							   mine[k], __ATOMIC_ACQ_REL);
				if (give)
					kfree_i(&kinst, give);
			} else {
				kfree_i(&kinst, mine[k]);
			}
			mine[k] = NULL;
		} else {
			sz[k] = sizes[(x >> 33) % 9];
			mine[k] = kmalloc_i(&kinst, sz[k]);
			if (mine[k]) {
				mine[k][0] = (uint8_t)(k ^ i);
				mine[k][sz[k] - 1] = (uint8_t)(k ^ i);
			}
		}
	}
	for (unsigned k = 0; k < SLOTS; k++)
		if (mine[k])
			kfree_i(&kinst, mine[k]);
}

KTEST(kmalloc, reaper_asked_by_timer_while_all_harts_allocate)
{
	static struct kstress s;
	static struct kmalloc_stats st;
	const struct kmalloc_page_source src = { pages_get, pages_put, NULL };
	uint64_t total = 0;

	/* a short TTL so the reaper has work: 20 ms */
	ASSERT_EQ(kmalloc_init_i(&kinst, &src, NULL, timebase_hz / 50), 0);
	memset(&s, 0, sizeof(s));
	memset((void *)reaps, 0, sizeof(reaps));
	memset((void *)reap_due, 0, sizeof(reap_due));
	s.deadline = rdtime() + timebase_hz;
	reap_on = true;
	ASSERT_EQ(timer_add_hook(reap_tick), 0);
	ktest_parallel(ktest_ncpus(), kmalloc_worker, &s);
	reap_on = false;
	timer_remove_hook(reap_tick);
	for (unsigned i = 0; i < harts_online; i++) {
		if (s.handoff[i])
			kfree_i(&kinst, s.handoff[i]);
		total += reaps[i];
	}
	EXPECT_EQ(s.bad, 0);
	EXPECT_GE(total, harts_online);
	kmalloc_reap_all_i(&kinst);
	kmalloc_stats_i(&kinst, &st);
	EXPECT_EQ(st.live_bytes, 0);
	EXPECT_EQ(st.cached_bytes, 0);
	/* one coalesced extent per run of pool chunks, plus per-CPU data */
	EXPECT_LE(st.pool_extents, st.pool_runs + st.cpus);
	EXPECT_EQ(kmalloc_check_i(&kinst, KMALLOC_CHECK_ALL), 0);
	printf("kmalloc: %llu reaps asked by the tick; pool %u extents in %u runs, %u cpus\n",
	       (unsigned long long)total, st.pool_extents, st.pool_runs, st.cpus);
	kmalloc_destroy_i(&kinst);
}
