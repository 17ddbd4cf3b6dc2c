/* kmalloc_test.c - kmalloc on private instances: a page source over ktest_mem
 * (first fit, so pool chunks come out adjacent like a heap segment) and a
 * clock the tests move by hand. Runs on the host and in the kernel. */
#include <stdio.h>
#include <string.h>

#include "../ktest.h"
#include "kmalloc.h"
#include "kt_pages.h"

/* ---- page source and clock --------------------------------------------------- */

void *kt_pages_take(uint8_t *used, char *base, size_t last, size_t n)
{
	memset(&used[last + 1 - n], 1, n);
	return base + (last + 1 - n) * ENV_PAGE_SIZE;
}

void kt_pages_put(const struct kt_pages *pg, void *va, size_t n)
{
	unsigned long fl = env_lock(pg->lock);
	size_t i = (size_t)((char *)va - pg->base) / ENV_PAGE_SIZE;

	for (size_t k = 0; k < n; k++) {
		if (!pg->used[i + k])
			printf("%s: page %zu not out\n", pg->who, i + k);
		pg->used[i + k] = 0;
	}
	*pg->out -= n;
	if (pg->puts)
		(*pg->puts)++;
	env_unlock(pg->lock, fl);
}

#define ARENA_MAX_PAGES 4096

struct arena {
	env_spinlock_t lock;
	char *base;
	size_t npages, limit;      /* limit: pages that may be out at once */
	size_t out, gets, puts;
	uint8_t used[ARENA_MAX_PAGES];
};

static void *arena_get(void *ctx, size_t n)
{
	struct arena *a = ctx;
	unsigned long fl = env_lock(&a->lock);
	void *p = NULL;

	if (n && a->out + n <= a->limit)
		for (size_t i = 0, run = 0; i < a->npages; i++) {
			run = a->used[i] ? 0 : run + 1;
			if (run == n) {
				p = kt_pages_take(a->used, a->base, i, n);
				a->out += n;
				a->gets++;
				break;
			}
		}
	env_unlock(&a->lock, fl);
	return p;
}

static void arena_put(void *ctx, void *va, size_t n)
{
	struct arena *a = ctx;
	struct kt_pages pg = { "arena_put", &a->lock, a->base, a->used, &a->out, &a->puts };

	kt_pages_put(&pg, va, n);
}

static uint64_t fake_now(void *ctx)
{
	return __atomic_load_n((uint64_t *)ctx, __ATOMIC_RELAXED);
}

struct fix {
	kmalloc_t *km;
	struct arena *ar;
	uint64_t t;
	struct kmalloc_stats st;
};

/* An instance on `pages` arena pages with the fake clock (or the real one). */
static struct fix *fix_new(size_t pages, uint64_t ttl, bool real_clock)
{
	struct fix *f = ktest_mem(sizeof(*f), 64);
	if (!f || pages > ARENA_MAX_PAGES)
		return NULL;
	f->km = ktest_mem(sizeof(*f->km), 64);
	f->ar = ktest_mem(sizeof(*f->ar), 64);
	if (!f->km || !f->ar || !(f->ar->base = ktest_mem(pages * ENV_PAGE_SIZE, ENV_PAGE_SIZE)))
		return NULL;
	f->ar->npages = f->ar->limit = pages;
	struct kmalloc_page_source src = { arena_get, arena_put, f->ar };
	struct kmalloc_clock clk = { fake_now, &f->t };
	if (kmalloc_init_i(f->km, &src, real_clock ? NULL : &clk, ttl))
		return NULL;
	return f;
}

static struct kmalloc_stats *stats(struct fix *f)
{
	kmalloc_stats_i(f->km, &f->st);
	return &f->st;
}

/* Everything back in the pool: one extent, bytes add up. */
static bool settled(struct fix *f)
{
	kmalloc_reap_all_i(f->km);
	struct kmalloc_stats *s = stats(f);
	return kmalloc_check_i(f->km, KMALLOC_CHECK_ALL) == 0 && s->pool_extents == s->pool_runs &&
	       s->cached_bytes == 0 && s->live_bytes == 0;
}

static void fill(void *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		((unsigned char *)p)[i] = (unsigned char)(seed + i * 7);
}

static bool filled(const void *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (((const unsigned char *)p)[i] != (unsigned char)(seed + i * 7))
			return false;
	return true;
}

/* ---- API basics ------------------------------------------------------------------ */

KTEST(kmalloc, init_rejects_bad_source)
{
	kmalloc_t *km = ktest_mem(sizeof(*km), 64);
	struct kmalloc_page_source bad = { arena_get, NULL, NULL };
	ASSERT(km);
	EXPECT_EQ(kmalloc_init_i(km, NULL, NULL, 0), E_INVAL);
	EXPECT_EQ(kmalloc_init_i(km, &bad, NULL, 0), E_INVAL);
	EXPECT_EQ(kmalloc_init_i(NULL, &bad, NULL, 0), E_INVAL);
}

KTEST(kmalloc, sizes_alignment_and_ksize)
{
	struct fix *f = fix_new(1000, 1000, false);
	static void *p[300];
	ASSERT(f);
	EXPECT(kmalloc_i(f->km, 0) == NULL);
	EXPECT_EQ(kfree_i(f->km, NULL), 0);
	for (unsigned i = 0; i < 300; i++) {
		size_t n = i < 260 ? (size_t)i * 16 + 1 + i % 16 : 4096 + (i - 259) * 1500;
		p[i] = kmalloc_i(f->km, n);
		ASSERT(p[i]);
		EXPECT_EQ((uintptr_t)p[i] % 16, 0);
		EXPECT_GE(ksize_i(f->km, p[i]), n);
		fill(p[i], n, i);
	}
	ASSERT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	for (unsigned i = 0; i < 300; i++) {
		size_t n = i < 260 ? (size_t)i * 16 + 1 + i % 16 : 4096 + (i - 259) * 1500;
		EXPECT(filled(p[i], n, i));
		EXPECT_EQ(kfree_i(f->km, p[i]), 0);
	}
	EXPECT(settled(f));
	EXPECT_EQ(stats(f)->failures, 0);
	EXPECT_EQ(stats(f)->large_allocs, stats(f)->large_frees);
}

KTEST(kmalloc, zalloc_calloc_and_overflow)
{
	struct fix *f = fix_new(64, 1000, false);
	ASSERT(f);
	unsigned char *p = kmalloc_i(f->km, 200);
	ASSERT(p);
	memset(p, 0xEE, 200);
	ASSERT_EQ(kfree_i(f->km, p), 0);
	unsigned char *q = kzalloc_i(f->km, 200);   /* the same cached block, cleared */
	ASSERT(q);
	EXPECT(q == p);
	for (int i = 0; i < 200; i++)
		EXPECT_EQ(q[i], 0);
	kfree_i(f->km, q);
	EXPECT(kcalloc_i(f->km, (size_t)1 << 62, 8) == NULL);
	EXPECT(kcalloc_i(f->km, SIZE_MAX, 2) == NULL);
	uint32_t *c = kcalloc_i(f->km, 100, sizeof(uint32_t));
	ASSERT(c);
	for (int i = 0; i < 100; i++)
		EXPECT_EQ(c[i], 0);
	kfree_i(f->km, c);
	EXPECT(settled(f));
}

KTEST(kmalloc, realloc_keeps_contents)
{
	struct fix *f = fix_new(256, 1000, false);
	int local;
	ASSERT(f);
	char *p = krealloc_i(f->km, NULL, 40);
	ASSERT(p);
	fill(p, 40, 3);
	char *q = krealloc_i(f->km, p, 30);        /* fits: stays */
	EXPECT(q == p);
	q = krealloc_i(f->km, q, 3000);            /* moves */
	ASSERT(q);
	EXPECT(filled(q, 30, 3));
	fill(q, 3000, 4);
	char *r = krealloc_i(f->km, q, 50000);     /* to large pages */
	ASSERT(r);
	EXPECT(filled(r, 3000, 4));
	char *s = krealloc_i(f->km, r, 100);       /* back to small */
	ASSERT(s);
	EXPECT(filled(s, 100, 4));
	EXPECT(krealloc_i(f->km, &local, 10) == NULL);          /* refused */
	EXPECT(krealloc_i(f->km, s + 16, 10) == NULL);          /* refused */
	EXPECT(krealloc_i(f->km, s, 0) == NULL);                /* frees */
	EXPECT(settled(f));
}

KTEST(kmalloc, aligned)
{
	struct fix *f = fix_new(512, 1000, false);
	void *p[16];
	ASSERT(f);
	EXPECT(kmalloc_aligned_i(f->km, 64, 0) == NULL);
	EXPECT(kmalloc_aligned_i(f->km, 64, 48) == NULL);
	EXPECT(kmalloc_aligned_i(f->km, 64, 3) == NULL);
	for (unsigned i = 0; i < 16; i++) {
		size_t align = (size_t)1 << (i % 14), n = 24 + i * 300;
		if (i == 15) {
			align = 4 * ENV_PAGE_SIZE;
			n = 3 * ENV_PAGE_SIZE;
		}
		p[i] = kmalloc_aligned_i(f->km, n, align);
		ASSERT(p[i]);
		EXPECT_EQ((uintptr_t)p[i] % align, 0);
		EXPECT_GE(ksize_i(f->km, p[i]), n);
		fill(p[i], n, i);
	}
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	for (unsigned i = 0; i < 16; i++)
		EXPECT_EQ(kfree_i(f->km, p[i]), 0);
	EXPECT(settled(f));
}

/* ---- caches and the TTL ---------------------------------------------------------- */

KTEST(kmalloc, cache_hit_is_same_block)
{
	struct fix *f = fix_new(64, 1000, false);
	ASSERT(f);
	void *a = kmalloc_i(f->km, 100), *b = kmalloc_i(f->km, 100);
	ASSERT(a && b);
	kfree_i(f->km, a);
	kfree_i(f->km, b);
	EXPECT(kmalloc_i(f->km, 97) == b);     /* LIFO, same rounded size */
	EXPECT(kmalloc_i(f->km, 104) == a);
	struct kmalloc_stats *s = stats(f);
	unsigned c = (unsigned)((100 + KMALLOC_HDR + KMALLOC_REDZONE + 15) / 16);
	EXPECT_EQ(s->cls[c].allocs, 4);
	EXPECT_EQ(s->cls[c].misses, 2);
	EXPECT_EQ(s->cls[c].hits, 2);
	EXPECT_EQ(s->cls[c].frees, 2);
	EXPECT_EQ(s->cls[c].cached, 0);
	kfree_i(f->km, a);
	kfree_i(f->km, b);
	EXPECT_EQ(stats(f)->cls[c].cached, 2);
	EXPECT_EQ(kmalloc_check_i(f->km, 0), 0);
	EXPECT(settled(f));
}

KTEST(kmalloc, ttl_expiry_and_reap)
{
	struct fix *f = fix_new(64, 100, false);
	ASSERT(f);
	f->t = 1000;
	void *a = kmalloc_i(f->km, 64), *b = kmalloc_i(f->km, 64), *c = kmalloc_i(f->km, 500);
	ASSERT(a && b && c);
	kmalloc_reap_i(f->km);               /* the CPU reads the clock: 1000 */
	kfree_i(f->km, a);                   /* cached at 1000 */
	f->t = 1050;
	kmalloc_reap_i(f->km);
	kfree_i(f->km, b);                   /* cached at 1050 */
	EXPECT_EQ(stats(f)->pool_extents, 1);
	f->t = 1099;
	kmalloc_reap_i(f->km);
	EXPECT_EQ(stats(f)->cached_bytes, 2 * ((64 + KMALLOC_HDR + KMALLOC_REDZONE + 15) / 16 * 16));
	f->t = 1100;                         /* a is 100 ticks old: expires */
	kmalloc_reap_i(f->km);
	EXPECT_EQ(stats(f)->cached_bytes, (64 + KMALLOC_HDR + KMALLOC_REDZONE + 15) / 16 * 16);
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	f->t = 1150;
	kmalloc_reap_i(f->km);
	EXPECT_EQ(stats(f)->cached_bytes, 0);
	kfree_i(f->km, c);
	f->t = 5000;
	kmalloc_reap_i(f->km);
	struct kmalloc_stats *s = stats(f);
	EXPECT_EQ(s->cached_bytes, 0);
	EXPECT_EQ(s->live_bytes, 0);
	EXPECT_EQ(s->pool_runs, 1);
	EXPECT_EQ(s->pool_extents, 1);       /* coalesced without reap_all */
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
}

KTEST(kmalloc, reap_then_retry_before_failure)
{
	/* 40 pages: per-CPU data, then 32-page chunks. Fill with one size,
	 * cache it all, then ask for another size: only reclaiming helps. */
	struct fix *f = fix_new(40, 1u << 30, false);
	static void *p[4000];
	unsigned n = 0;
	ASSERT(f);
	kmalloc_tune_i(f->km, 32, 0);
	while (n < 4000 && (p[n] = kmalloc_i(f->km, 48)) != NULL)
		n++;
	ASSERT_GE(n, 100);
	EXPECT_EQ(stats(f)->failures, 1);
	for (unsigned i = 0; i < n; i++)
		kfree_i(f->km, p[i]);
	EXPECT_GE(stats(f)->cached_bytes, n * 64u);
	f->ar->limit = f->ar->out;           /* the page source is dry */
	void *big = kmalloc_i(f->km, 2000);  /* no pages left: reap all, retry */
	EXPECT(big != NULL);
	EXPECT_EQ(stats(f)->failures, 1);
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	/* Large request, page source exhausted: served from the pool. */
	void *lg = kmalloc_i(f->km, 3 * ENV_PAGE_SIZE);
	EXPECT(lg != NULL);
	EXPECT_GE(ksize_i(f->km, lg), 3 * ENV_PAGE_SIZE);
	EXPECT_EQ(kfree_i(f->km, lg), 0);
	/* Truly out: NULL, counted, nothing broken. */
	EXPECT(kmalloc_i(f->km, 64 * ENV_PAGE_SIZE) == NULL);
	EXPECT_EQ(stats(f)->failures, 2);
	kfree_i(f->km, big);
	EXPECT(settled(f));
}

/* ---- bad frees: refused, nothing changes ------------------------------------------ */

static bool same_state(struct fix *f, const struct kmalloc_stats *before)
{
	struct kmalloc_stats *s = stats(f);
	return s->live_bytes == before->live_bytes && s->cached_bytes == before->cached_bytes &&
	       s->pool_free_bytes == before->pool_free_bytes && s->pool_extents == before->pool_extents &&
	       kmalloc_check_i(f->km, KMALLOC_CHECK_ALL) == 0;
}

KTEST(kmalloc, bad_frees_are_refused)
{
	struct fix *f = fix_new(128, 1000, false);
	static struct kmalloc_stats before;
	long local[4];
	ASSERT(f);
	char *p = kmalloc_i(f->km, 100), *q = kmalloc_i(f->km, 200);
	char *lg = kmalloc_i(f->km, 3 * ENV_PAGE_SIZE);
	ASSERT(p && q && lg);
	ASSERT_EQ(kfree_i(f->km, q), 0);
	before = *stats(f);
	printf("kmalloc test: the next refusals are expected\n");
	EXPECT_EQ(kfree_i(f->km, q), E_EXIST);                 /* double free */
	EXPECT_EQ(kfree_i(f->km, local), E_FAULT);             /* stack */
	EXPECT_EQ(kfree_i(f->km, f->ar), E_FAULT);             /* other memory */
	EXPECT_EQ(kfree_i(f->km, p + 16), E_INVAL);            /* interior */
	EXPECT_EQ(kfree_i(f->km, p + 32), E_INVAL);
	EXPECT_EQ(kfree_i(f->km, p + 3), E_INVAL);             /* misaligned */
	EXPECT_EQ(kfree_i(f->km, lg + 64), E_INVAL);           /* inside a large block */
	EXPECT_EQ(ksize_i(f->km, p + 16), 0);
	EXPECT_EQ(ksize_i(f->km, local), 0);
	EXPECT(same_state(f, &before));
	EXPECT_EQ(stats(f)->refused, before.refused + 9);
	EXPECT_EQ(kfree_i(f->km, lg), 0);
	EXPECT_EQ(kfree_i(f->km, lg), E_FAULT);                /* large double free */
	EXPECT_EQ(kfree_i(f->km, p), 0);
	f->t += 5000;
	kmalloc_reap_i(f->km);                                 /* p, q to the pool */
	EXPECT_EQ(kfree_i(f->km, p), E_EXIST);                 /* still caught */
	EXPECT(settled(f));
}

/* The free hot path checks the first header word in one compare: damaged
 * state, owner or check bytes must still send the pointer to a refusal. */
KTEST(kmalloc, damaged_header_word_is_refused)
{
	struct fix *f = fix_new(64, 1000, false);
	static struct kmalloc_stats before;
	ASSERT(f);
	char *p = kmalloc_i(f->km, 100), *q = kmalloc_i(f->km, 100);
	ASSERT(p && q);
	ASSERT_EQ(kfree_i(f->km, q), 0);         /* the hot path knows this span now */
	unsigned char *h = (unsigned char *)p - KMALLOC_HDR, save[8];
	memcpy(save, h, 8);
	before = *stats(f);
	printf("kmalloc test: the next refusals are expected\n");
	/* (a damaged size field alone is taken at its word on the hot
	 * path: the debug build's red zones catch the overflow that does it) */
	h[7] ^= 0x40;                            /* check */
	EXPECT_EQ(kfree_i(f->km, p), E_INVAL);
	memcpy(h, save, 8);
	h[4] = 0x55;                             /* state: none of them */
	EXPECT_EQ(kfree_i(f->km, p), E_CORRUPT);
	h[4] = 0;                                /* ST_LIVE -> ST_CACHED: reads as freed */
	EXPECT_EQ(kfree_i(f->km, p), E_EXIST);
	memcpy(h, save, 8);
	EXPECT(same_state(f, &before));
	EXPECT_EQ(stats(f)->refused, before.refused + 3);
	EXPECT_EQ(kfree_i(f->km, p), 0);
	EXPECT(settled(f));
}

/* A cache miss first returns this CPU's expired blocks to the pool, so
 * they coalesce before the pool is cut. Expired by the CPU's clock, which
 * is read at kmalloc_reap_i and at one pool miss in KMALLOC_CLOCK_MISSES,
 * not on every slow path (ticks are coarse). */
KTEST(kmalloc, miss_returns_expired_blocks)
{
	struct fix *f = fix_new(64, 100, false);
	const uint64_t blk = (64 + KMALLOC_HDR + KMALLOC_REDZONE + 15) / 16 * 16;
	static void *m[KMALLOC_CLOCK_MISSES];
	ASSERT(f);
	f->t = 1000;
	void *a = kmalloc_i(f->km, 64), *b = kmalloc_i(f->km, 64);
	ASSERT(a && b);
	kmalloc_reap_i(f->km);                   /* clock 1000, miss count 0 */
	EXPECT_EQ(kfree_i(f->km, a), 0);         /* cached at 1000 */
	f->t = 1100;                             /* a has expired, by the clock */
	/* Misses of empty classes: the CPU's clock stays at 1000 until the
	 * last of them reads it, which then returns a. */
	for (unsigned i = 0; i < KMALLOC_CLOCK_MISSES; i++) {
		m[i] = kmalloc_i(f->km, 100 + 16 * i);
		ASSERT(m[i]);
		EXPECT_EQ(stats(f)->cached_bytes, i + 1 < KMALLOC_CLOCK_MISSES ? blk : 0);
	}
	EXPECT_EQ(kfree_i(f->km, b), 0);         /* cached at 1100 */
	f->t = 1150;
	kmalloc_reap_i(f->km);                   /* 50 ticks old: stays */
	EXPECT_EQ(stats(f)->cached_bytes, blk);
	f->t = 1200;
	void *c = kmalloc_i(f->km, 300);         /* a miss: clock not read, b stays */
	ASSERT(c);
	EXPECT_EQ(stats(f)->cached_bytes, blk);
	kmalloc_reap_i(f->km);                   /* 100 ticks old: goes */
	EXPECT_EQ(stats(f)->cached_bytes, 0);
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	kfree_i(f->km, c);
	for (unsigned i = 0; i < KMALLOC_CLOCK_MISSES; i++)
		kfree_i(f->km, m[i]);
	EXPECT(settled(f));
}

/* The pool picks the smallest of the extents that fit (an exact fit at
 * once), not the lowest-addressed one. */
KTEST(kmalloc, pool_prefers_the_closest_fit)
{
	struct fix *f = fix_new(64, 100, false);
	ASSERT(f);
	f->t = 1000;
	char *x1 = kmalloc_i(f->km, 1000), *s1 = kmalloc_i(f->km, 32);
	char *x2 = kmalloc_i(f->km, 200), *s2 = kmalloc_i(f->km, 32);
	ASSERT(x1 && s1 && x2 && s2);
	kfree_i(f->km, x1);
	kfree_i(f->km, x2);
	f->t = 2000;
	kmalloc_reap_i(f->km);                   /* both to the pool, split by s1, s2 */
	EXPECT_EQ(stats(f)->cached_bytes, 0);
	EXPECT_GE(stats(f)->pool_extents, 3);
	char *y2 = kmalloc_i(f->km, 200), *y1 = kmalloc_i(f->km, 1000);
	EXPECT(y2 == x2);                        /* exact fits, wherever they are */
	EXPECT(y1 == x1);
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	kfree_i(f->km, y1);
	kfree_i(f->km, y2);
	kfree_i(f->km, s1);
	kfree_i(f->km, s2);
	EXPECT(settled(f));
}

#ifdef KMALLOC_DEBUG
KTEST(kmalloc, debug_red_zone_and_poison)
{
	struct fix *f = fix_new(64, 1000, false);
	ASSERT(f);
	char *p = kmalloc_i(f->km, 40);
	ASSERT(p);
	EXPECT_EQ(ksize_i(f->km, p), 40);
	p[40] = 1;                                             /* overflow by one */
	EXPECT_EQ(kfree_i(f->km, p), E_CORRUPT);
	p[40] = (char)0xFB;
	EXPECT_EQ(kfree_i(f->km, p), 0);
	EXPECT_EQ((unsigned char)p[30], 0x6B);                 /* poisoned */
	char *lg = kmalloc_i(f->km, 5000);
	ASSERT(lg);
	lg[5000] = 0;
	EXPECT_EQ(kfree_i(f->km, lg), E_CORRUPT);
	lg[5000] = (char)0xFB;
	EXPECT_EQ(kfree_i(f->km, lg), 0);
	EXPECT(settled(f));
}
#endif

/* ---- stats, dump, the global wrappers ----------------------------------------------- */

KTEST(kmalloc, stats_and_dump)
{
	struct fix *f = fix_new(256, 1000, false);
	ASSERT(f);
	void *a = kmalloc_i(f->km, 32), *b = kmalloc_i(f->km, 8000);
	ASSERT(a && b);
	struct kmalloc_stats *s = stats(f);
	EXPECT_GE(s->live_bytes, 32 + 8000);
	EXPECT_GE(s->heap_bytes, s->live_bytes);
	EXPECT_GE(s->peak_bytes, s->live_bytes);
	EXPECT_EQ(s->large_allocs, 1);
	kmalloc_dump_i(f->km);
	kfree_i(f->km, a);
	kfree_i(f->km, b);
	s = stats(f);
	EXPECT_EQ(s->large_frees, 1);
	EXPECT_GE(s->peak_bytes, 32 + 8000);
	EXPECT(settled(f));
}

KTEST(kmalloc, global_wrappers)
{
	kmalloc_t *g = kmalloc_global();
	struct fix *f = NULL;
	bool own = g->src.get_pages == NULL; /* not initialised: use an arena */
	if (own) {
		f = fix_new(256, 1000, false);
		ASSERT(f);
		struct kmalloc_page_source src = { arena_get, arena_put, f->ar };
		ASSERT_EQ(kmalloc_global_init(&src, NULL, 1000), 0);
	}
	char *p = kmalloc(100), *z = kzalloc(64), *c = kcalloc(4, 8), *al = kmalloc_aligned(64, 256);
	ASSERT(p && z && c && al);
	EXPECT_EQ((uintptr_t)al % 256, 0);
	EXPECT_GE(ksize(p), 100);
	EXPECT_EQ(z[63], 0);
	p = krealloc(p, 1000);
	ASSERT(p);
	EXPECT(kcalloc(SIZE_MAX / 2, 4) == NULL);
	EXPECT_EQ(kmalloc_check(), 0);
	kfree(p);
	kfree(z);
	kfree(c);
	kfree(al);
	kmalloc_reap();
	static struct kmalloc_stats s;
	kmalloc_stats(&s);
	EXPECT_GE(s.heap_bytes, 4096);
	if (own) {
		kmalloc_reap_all_i(g);
		EXPECT_EQ(kmalloc_check_i(g, KMALLOC_CHECK_ALL), 0);
		kmalloc_stats(&s);
		EXPECT_EQ(s.live_bytes, 0);
		kmalloc_destroy_i(g);        /* the arena goes away with the test */
		EXPECT_EQ(f->ar->out, 0);
	}
}

/* ---- concurrency ------------------------------------------------------------------ */

#define XSLOTS 64

struct stress {
	struct fix *f;
	uint64_t duration;   /* of the stress, from when every CPU is ready */
	unsigned iters;
	void *xchg[XSLOTS];          /* blocks in flight between CPUs */
	unsigned failures;
	unsigned ready, n;
};

static size_t size_of_seed(unsigned s)
{
	static const size_t sz[] = { 16, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2000, 4096 };
	return sz[s % 12] - (s >> 8) % 8;
}

/* A block carries its own description: size seed in the first word. */
static void *stress_alloc(kmalloc_t *km, unsigned seed)
{
	size_t n = size_of_seed(seed);
	unsigned *p = kmalloc_i(km, n);
	if (p) {
		p[0] = seed;
		fill(p + 1, n - sizeof(unsigned), seed);
	}
	return p;
}

static bool stress_free(kmalloc_t *km, unsigned *p)
{
	bool ok = filled(p + 1, size_of_seed(p[0]) - sizeof(unsigned), p[0]);
	return kfree_i(km, p) == 0 && ok;
}

static void stress_worker(unsigned id, void *arg)
{
	struct stress *st = arg;
	kmalloc_t *km = st->f->km;
	void *mine[32] = { 0 };
	unsigned x = id * 2654435761u + 1, bad = 0;

	/* Per-CPU data first, all of it low in the first chunk, so the pool
	 * can end as one extent. */
	kfree_i(km, kmalloc_i(km, 16));
	__atomic_fetch_add(&st->ready, 1, __ATOMIC_ACQ_REL);
	/* Wait for every CPU's per-CPU data before any block is freed to the
	 * pool: a CPU that starts late (a busy host) must not find holes. The
	 * stress time counts from here, the wait only against a safety bound. */
	uint64_t start = env_ticks(), end;
	while (__atomic_load_n(&st->ready, __ATOMIC_ACQUIRE) < st->n &&
	       env_ticks() - start < 60 * env_ticks_per_sec())
		env_cpu_relax();
	end = env_ticks() + st->duration;
	for (unsigned it = 0; it < st->iters; it++) {
		if ((it & 255) == 0 && env_ticks() > end)
			break;
		x = x * 1103515245u + 12345u;
		unsigned slot = (x >> 8) % 32, op = (x >> 20) % 16;
		if (op < 10) {                       /* same-CPU alloc/free */
			if (mine[slot])
				bad += !stress_free(km, mine[slot]);
			mine[slot] = stress_alloc(km, x >> 4);
			bad += !mine[slot];
		} else if (op < 15) {                /* hand a block to another CPU */
			void *p = stress_alloc(km, x >> 4);
			bad += !p;
			p = __atomic_exchange_n(&st->xchg[(x >> 12) % XSLOTS], p, __ATOMIC_ACQ_REL);
			if (p)
				bad += !stress_free(km, p);
		} else {
			kmalloc_reap_i(km);
		}
	}
	for (unsigned i = 0; i < 32; i++)
		if (mine[i])
			bad += !stress_free(km, mine[i]);
	kmalloc_reap_i(km);
	__atomic_fetch_add(&st->failures, bad, __ATOMIC_RELAXED);
}

KTEST(kmalloc, parallel_cross_cpu_stress)
{
	struct stress *st = ktest_mem(sizeof(*st), 64);
	unsigned n = ktest_ncpus();
	ASSERT(st);
	/* Real clock, short TTL: blocks expire while others allocate. Each
	 * CPU holds up to 32 blocks of up to 4 KiB plus its caches, so past
	 * 16 CPUs (1000 arena pages, a 64-page first chunk) the arena grows
	 * with the CPUs, and the first chunk (which holds every CPU's per-CPU
	 * data) is made large enough to hold the whole stress: a later chunk
	 * may sit beyond map pages taken meanwhile, which is not adjacent. */
	size_t pages = n <= 16 ? 1000 : 1000 + (n - 16) * 48;
	st->f = fix_new(pages, env_ticks_per_sec() / 1000, true);
	ASSERT(st->f);
	kmalloc_tune_i(st->f->km, n <= 16 ? 64 : 16 * n, 0);
	st->iters = 200000;
	st->n = n;
	st->duration = ktest_stress_seconds() * env_ticks_per_sec();
	/* This CPU frees the blocks left in flight at the end, and a CPU that
	 * frees other CPUs' blocks gets per-CPU data: make it first, low. */
	kfree_i(st->f->km, kmalloc_i(st->f->km, 16));
	ktest_parallel(n, stress_worker, st);
	EXPECT_EQ(st->failures, 0);
	for (unsigned i = 0; i < XSLOTS; i++)
		if (st->xchg[i])
			EXPECT(stress_free(st->f->km, st->xchg[i]));
	EXPECT_EQ(stats(st->f)->failures, 0);
	EXPECT_EQ(kmalloc_check_i(st->f->km, KMALLOC_CHECK_ALL), 0);
	EXPECT(settled(st->f));
	EXPECT_EQ(stats(st->f)->pool_runs, 1);
	EXPECT_EQ(stats(st->f)->pool_extents, 1);
}

/* A CPU short of memory asks the others to flush and waits for them. */
struct flushtest {
	struct fix *f;
	unsigned phase;   /* 1: CPU 1 has its per-CPU data; 2: CPU 0 cached it all; 3: done */
	void *big;
};

static void wait_phase(struct flushtest *ft, unsigned ph, uint64_t end)
{
	while (__atomic_load_n(&ft->phase, __ATOMIC_ACQUIRE) < ph && env_ticks() < end)
		env_cpu_relax();
}

static void flush_worker(unsigned id, void *arg)
{
	struct flushtest *ft = arg;
	kmalloc_t *km = ft->f->km;
	uint64_t end = env_ticks() + 5 * env_ticks_per_sec();

	if (id == 0) {               /* fill the arena, cache everything */
		static void *p[3000];
		unsigned n = 0;
		wait_phase(ft, 1, end);
		while (n < 3000 && (p[n] = kmalloc_i(km, 100)) != NULL)
			n++;
		unsigned long fl = env_lock(&ft->f->ar->lock);
		ft->f->ar->limit = ft->f->ar->out;   /* the page source is dry */
		env_unlock(&ft->f->ar->lock, fl);
		for (unsigned i = 0; i < n; i++)
			kfree_i(km, p[i]);
		__atomic_store_n(&ft->phase, 2, __ATOMIC_RELEASE);
		while (__atomic_load_n(&ft->phase, __ATOMIC_ACQUIRE) < 3 && env_ticks() < end)
			kmalloc_reap_i(km);  /* what the timer does in the kernel */
	} else if (id == 1) {
		kfree_i(km, kmalloc_i(km, 16));
		__atomic_store_n(&ft->phase, 1, __ATOMIC_RELEASE);
		wait_phase(ft, 2, end);
		ft->big = kmalloc_i(km, 3000);
		__atomic_store_n(&ft->phase, 3, __ATOMIC_RELEASE);
	}
}

KTEST(kmalloc, failing_cpu_flushes_other_caches)
{
	struct flushtest *ft = ktest_mem(sizeof(*ft), 64);
	ASSERT(ft);
	if (ktest_ncpus() < 2) {
		printf("kmalloc: flush test needs 2 CPUs, skipped\n");
		return;
	}
	ft->f = fix_new(40, 1u << 30, true);
	ASSERT(ft->f);
	kmalloc_tune_i(ft->f->km, 32, env_ticks_per_sec() * 2);
	ktest_parallel(2, flush_worker, ft);
	EXPECT_EQ(ft->phase, 3);
	EXPECT(ft->big != NULL);
	EXPECT_EQ(kfree_i(ft->f->km, ft->big), 0);
	EXPECT(settled(ft->f));
}

/* ---- drain (a CPU that goes down) ---------------------------------------------- */

static uint64_t cached_of(struct fix *f)
{
	struct kmalloc_stats *s = stats(f);
	uint64_t n = 0;
	for (unsigned c = 0; c < KMALLOC_NCLASSES; c++)
		n += s->cls[c].cached;
	return n + s->cached_bytes;
}

KTEST(kmalloc, drain_empties_the_cache_and_allocation_goes_on)
{
	struct fix *f = fix_new(128, 1u << 30, false);
	void *p[48];
	ASSERT(f);
	for (unsigned i = 0; i < 48; i++)
		ASSERT((p[i] = kmalloc_i(f->km, 8 + i * 40)) != NULL);
	for (unsigned i = 0; i < 48; i += 2)
		EXPECT_EQ(kfree_i(f->km, p[i]), 0);
	EXPECT(cached_of(f) != 0);
	kmalloc_drain_i(f->km);
	EXPECT_EQ(cached_of(f), 0);
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	kmalloc_drain_i(f->km);              /* twice: nothing to do */
	EXPECT_EQ(cached_of(f), 0);
	for (unsigned i = 0; i < 48; i += 2) {   /* allocates again */
		ASSERT((p[i] = kmalloc_i(f->km, 8 + i * 40)) != NULL);
		fill(p[i], 8 + i * 40, i);
	}
	for (unsigned i = 0; i < 48; i++) {
		if (i % 2 == 0)
			EXPECT(filled(p[i], 8 + i * 40, i));
		EXPECT_EQ(kfree_i(f->km, p[i]), 0);
	}
	EXPECT(cached_of(f) != 0);           /* caching again */
	EXPECT_EQ(kmalloc_check_i(f->km, 0), 0);
	EXPECT(settled(f));
}

#define DRAIN_N 32
struct draintest {
	struct fix *f;
	void *blk[DRAIN_N];
	unsigned phase;
	uint64_t cached_drained, cached_late, cached_back;
	int check_drained, check_late;
	bool again;
};

static bool drain_wait(struct draintest *d, unsigned phase)
{
	uint64_t t0 = env_ticks();
	while (__atomic_load_n(&d->phase, __ATOMIC_ACQUIRE) < phase)
		if (env_ticks() - t0 > 60 * env_ticks_per_sec())
			return false;
	return true;
}

static void drain_worker(unsigned id, void *arg)
{
	struct draintest *d = arg;
	kmalloc_t *km = d->f->km;

	if (id == 0) {       /* the CPU that goes down */
		if (!drain_wait(d, 1))
			return;
		for (unsigned i = 0; i < DRAIN_N; i++)
			d->blk[i] = kmalloc_i(km, 24 + 16 * (i % 8));
		for (unsigned i = 0; i < DRAIN_N / 2; i++)
			kfree_i(km, d->blk[i]);                   /* own cache */
		__atomic_store_n(&d->phase, 2, __ATOMIC_RELEASE);
		if (!drain_wait(d, 3))
			return;
		kmalloc_drain_i(km);
		d->cached_drained = cached_of(d->f);
		d->check_drained = kmalloc_check_i(km, 0);
		__atomic_store_n(&d->phase, 4, __ATOMIC_RELEASE);
		if (!drain_wait(d, 5))
			return;
		/* frees by the other CPU after the drain went to the pool */
		d->cached_late = cached_of(d->f);
		d->check_late = kmalloc_check_i(km, 0);
		void *q = kmalloc_i(km, 100);                     /* back: re-attaches */
		d->again = q != NULL;
		kfree_i(km, q);
		kfree_i(km, kmalloc_i(km, 40));
		d->cached_back = cached_of(d->f);
		__atomic_store_n(&d->phase, 6, __ATOMIC_RELEASE);
	} else {             /* frees the first CPU's blocks: its remote list */
		/* per-CPU data first (low in the pool), its cache emptied */
		kfree_i(km, kmalloc_i(km, 16));
		kmalloc_drain_i(km);
		__atomic_store_n(&d->phase, 1, __ATOMIC_RELEASE);
		if (!drain_wait(d, 2))
			return;
		for (unsigned i = DRAIN_N / 2; i < 3 * DRAIN_N / 4; i++)
			kfree_i(km, d->blk[i]);
		__atomic_store_n(&d->phase, 3, __ATOMIC_RELEASE);
		if (!drain_wait(d, 4))
			return;
		for (unsigned i = 3 * DRAIN_N / 4; i < DRAIN_N; i++)
			kfree_i(km, d->blk[i]);
		__atomic_store_n(&d->phase, 5, __ATOMIC_RELEASE);
	}
}

KTEST(kmalloc, drain_takes_remote_frees_and_later_ones_go_to_the_pool)
{
	struct draintest *d = ktest_mem(sizeof(*d), 64);
	ASSERT(d);
	if (ktest_ncpus() < 2) {
		printf("kmalloc: drain test needs 2 CPUs, skipped\n");
		return;
	}
	d->f = fix_new(128, 1u << 30, false);
	ASSERT(d->f);
	ktest_parallel(2, drain_worker, d);
	EXPECT_EQ(d->phase, 6);
	EXPECT_EQ(d->cached_drained, 0);
	EXPECT_EQ(d->check_drained, 0);
	EXPECT_EQ(d->cached_late, 0);
	EXPECT_EQ(d->check_late, 0);
	EXPECT(d->again);
	EXPECT(d->cached_back != 0);
	EXPECT_EQ(kmalloc_check_i(d->f->km, KMALLOC_CHECK_ALL), 0);
	EXPECT(settled(d->f));
}
