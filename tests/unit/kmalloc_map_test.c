/* kmalloc_map_test.c - kmalloc's page map: far more live large blocks and
 * pool chunks than the old 256-entry range table held, on one CPU and
 * across all of them, and pointers at the edges of the map refused. Same
 * suite as kmalloc_test.c; runs on the host and in the kernel. */
#include <stdio.h>
#include <string.h>

#include "../ktest.h"
#include "kmalloc.h"
#include "kt_pages.h"

/* ---- a page source with room for thousands of large blocks -------------------- */

struct big {
	env_spinlock_t lock;
	char *base;
	size_t npages, out, rover;
	uint8_t *used;             /* one byte per page */
};

/* Next fit from the rover: pool chunks and large blocks interleave, so the
 * pool grows in many runs of chunks, not one. */
static void *big_get(void *ctx, size_t n)
{
	struct big *b = ctx;
	unsigned long fl = env_lock(&b->lock);
	void *p = NULL;

	for (size_t k = 0, i = b->rover, run = 0; n && k < b->npages + n; k++, i++) {
		if (i == b->npages)
			i = run = 0;
		run = b->used[i] ? 0 : run + 1;
		if (run == n) {
			p = kt_pages_take(b->used, b->base, i, n);
			b->out += n;
			b->rover = i + 1;
			break;
		}
	}
	env_unlock(&b->lock, fl);
	return p;
}

static void big_put(void *ctx, void *va, size_t n)
{
	struct big *b = ctx;
	struct kt_pages pg = { "big_put", &b->lock, b->base, b->used, &b->out, NULL };

	kt_pages_put(&pg, va, n);
}

struct mfix {
	kmalloc_t *km;
	struct big *b;
	struct kmalloc_stats st;
};

static struct mfix *mfix_new(size_t pages)
{
	struct mfix *f = ktest_mem(sizeof(*f), 64);
	if (!f || !(f->km = ktest_mem(sizeof(*f->km), 64)) || !(f->b = ktest_mem(sizeof(*f->b), 64)))
		return NULL;
	f->b->used = ktest_mem(pages, 64);
	f->b->base = ktest_mem(pages * ENV_PAGE_SIZE, ENV_PAGE_SIZE);
	if (!f->b->used || !f->b->base)
		return NULL;
	f->b->npages = pages;
	struct kmalloc_page_source src = { big_get, big_put, f->b };
	if (kmalloc_init_i(f->km, &src, NULL, env_ticks_per_sec() / 100))
		return NULL;
	kmalloc_tune_i(f->km, 1, 0);   /* small growth steps: many chunks */
	return f;
}

static struct kmalloc_stats *mstats(struct mfix *f)
{
	kmalloc_stats_i(f->km, &f->st);
	return &f->st;
}

/* The first and last 8 bytes of each block carry its seed. */
static void mark(void *p, size_t n, uint64_t seed)
{
	memcpy(p, &seed, 8);
	memcpy((char *)p + n - 8, &seed, 8);
}

static bool marked(const void *p, size_t n, uint64_t seed)
{
	uint64_t a, b;
	memcpy(&a, p, 8);
	memcpy(&b, (const char *)p + n - 8, 8);
	return a == seed && b == seed;
}

static size_t large_size(unsigned i)
{
	return ENV_PAGE_SIZE + 1 + (i * 2654435761u) % (3 * ENV_PAGE_SIZE);   /* 2 to 4 pages */
}

/* ---- one CPU -------------------------------------------------------------------- */

#define NLARGE 3000
#define NSMALL 6000

struct many {
	void *large[NLARGE], *small[NSMALL];
};

/* Pointers the map must refuse around the large block p of n bytes: how
 * many got another answer. */
static unsigned refuse_edges(struct mfix *f, char *p, size_t n)
{
	size_t np = (n + ENV_PAGE_SIZE - 1) / ENV_PAGE_SIZE;
	uintptr_t leaf = (uintptr_t)2 << 20;   /* a leaf of the map: 512 pages */
	unsigned wrong = 0;

	wrong += kfree_i(f->km, p + ENV_PAGE_SIZE) != E_INVAL;             /* its second page */
	wrong += kfree_i(f->km, p + np * ENV_PAGE_SIZE - 16) != E_INVAL;   /* its last bytes */
	wrong += ksize_i(f->km, p + 16) != 0;
	/* same page number below bit 48, another address: found, refused */
	wrong += kfree_i(f->km, (void *)((uintptr_t)p ^ ((uintptr_t)1 << 48))) != E_FAULT;
	uintptr_t cross = ((uintptr_t)p + np * ENV_PAGE_SIZE - 1) & ~(leaf - 1);
	if (cross > (uintptr_t)p)     /* the block spans two leaves: the second */
		wrong += kfree_i(f->km, (void *)cross) != E_INVAL;
	return wrong;
}

KTEST(kmalloc, thousands_of_large_blocks_and_chunks)
{
	struct mfix *f = mfix_new(16384 + 2048);
	struct many *m = ktest_mem(sizeof(*m), 64);
	unsigned ns = 0, crossing = 0;
	ASSERT(f && m);
	for (unsigned i = 0; i < NLARGE; i++) {
		m->large[i] = kmalloc_i(f->km, large_size(i));
		ASSERT(m->large[i]);
		mark(m->large[i], large_size(i), i);
		for (unsigned k = 0; k < 2 && ns < NSMALL; k++, ns++) {   /* the pool grows between */
			m->small[ns] = kmalloc_i(f->km, 200 + (ns * 97) % 1800);
			ASSERT(m->small[ns]);
			mark(m->small[ns], 200 + (ns * 97) % 1800, ~(uint64_t)ns);
		}
	}
	struct kmalloc_stats *s = mstats(f);
	EXPECT_EQ(s->large_allocs, NLARGE);
	EXPECT_EQ(s->ranges, NLARGE + s->pool_chunks);
	EXPECT_GE(s->pool_chunks, 32);
	EXPECT_GE(s->pool_runs, 16);          /* chunks between large blocks */
	EXPECT_GE(s->map_bytes, ENV_PAGE_SIZE);
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	printf("kmalloc map test: %u large blocks, %u chunks in %u runs, map %llu KiB\n", NLARGE,
	       s->pool_chunks, s->pool_runs, (unsigned long long)s->map_bytes / 1024);
	printf("kmalloc test: the next refusals are expected\n");
	EXPECT_EQ(kfree_i(f->km, f->b->base - 16), E_FAULT);                    /* below the source */
	EXPECT_EQ(kfree_i(f->km, f->b->base + f->b->npages * ENV_PAGE_SIZE), E_FAULT);   /* above */
	for (unsigned i = 0; i < NLARGE; i++) {
		size_t n = large_size(i);
		uintptr_t a = (uintptr_t)m->large[i];
		EXPECT_GE(ksize_i(f->km, m->large[i]), n);
		if (((a ^ (a + n - 1)) >> 21) && crossing++ < 8)
			EXPECT_EQ(refuse_edges(f, m->large[i], n), 0);
		else if (i % 500 == 0)
			EXPECT_EQ(refuse_edges(f, m->large[i], n), 0);
	}
	EXPECT_GE(crossing, 1);               /* some block spans two leaves */
	/* A block over whole leaf spans: the map holds its record above the
	 * leaves there; every page still finds it. */
	for (unsigned t = 0; t < 2; t++) {
		size_t hn = (size_t)6 << 20;
		char *h = kmalloc_i(f->km, hn);
		ASSERT(h);
		mark(h, hn, 77);
		EXPECT_EQ(ksize_i(f->km, h), hn);
		for (size_t off = ENV_PAGE_SIZE; off < hn; off += (size_t)1 << 19)
			EXPECT_EQ(kfree_i(f->km, h + off), E_INVAL);
		EXPECT_EQ(kfree_i(f->km, h + hn - 16), E_INVAL);
		EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
		EXPECT(marked(h, hn, 77));
		EXPECT_EQ(kfree_i(f->km, h), 0);
		EXPECT_EQ(kfree_i(f->km, h + ((size_t)3 << 20)), E_FAULT);   /* gone */
		EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	}
	/* Free in an order other than allocation's; everything intact. */
	for (unsigned k = 0; k < NLARGE; k++) {
		unsigned i = (k * 7919u) % NLARGE;
		EXPECT(marked(m->large[i], large_size(i), i));
		EXPECT_EQ(kfree_i(f->km, m->large[i]), 0);
	}
	EXPECT_EQ(kfree_i(f->km, m->large[0]), E_FAULT);                        /* freed: gone */
	for (unsigned i = 0; i < ns; i++) {
		EXPECT(marked(m->small[i], 200 + (i * 97) % 1800, ~(uint64_t)i));
		EXPECT_EQ(kfree_i(f->km, m->small[i]), 0);
	}
	kmalloc_reap_all_i(f->km);
	s = mstats(f);
	EXPECT_EQ(s->large_frees, NLARGE + 2);
	EXPECT_EQ(s->live_bytes, 0);
	EXPECT_EQ(s->ranges, s->pool_chunks);
	EXPECT_EQ(s->pool_extents, s->pool_runs);
	EXPECT_EQ(f->b->out * ENV_PAGE_SIZE, s->heap_bytes + s->map_bytes);
	EXPECT_EQ(kmalloc_check_i(f->km, KMALLOC_CHECK_ALL), 0);
	kmalloc_destroy_i(f->km);
	EXPECT_EQ(f->b->out, 0);              /* chunks, map nodes, records, spares */
}

/* ---- every CPU ------------------------------------------------------------------- */

#define PER_CPU 400
#define XS 32

struct mstress {
	struct mfix *f;
	void *xchg[XS];
	uint64_t duration;
	unsigned failures, n;
};

struct mslot {
	void *p;
	size_t n;
};

static void *ms_alloc(kmalloc_t *km, size_t n, unsigned *bad)
{
	void *p = kmalloc_i(km, n);
	if (!p) {
		++*bad;
		return NULL;
	}
	mark(p, n, n);
	return p;
}

static void ms_free(kmalloc_t *km, void *p, size_t n, unsigned *bad)
{
	*bad += !marked(p, n, n) + (kfree_i(km, p) != 0);
}

/* Large blocks (and some small) allocated, freed here and handed to other
 * CPUs to free, while the pool grows and the map takes new leaves. */
static void mstress_worker(unsigned id, void *arg)
{
	struct mstress *st = arg;
	kmalloc_t *km = st->f->km;
	static struct mslot slots[16][PER_CPU];
	struct mslot *mine = slots[id % 16];
	unsigned x = id * 2654435761u + 7, bad = 0;
	uint64_t end = env_ticks() + st->duration;

	for (unsigned it = 0; it < 20000; it++) {
		if ((it & 63) == 0 && it > 4 * PER_CPU && env_ticks() > end)
			break;
		x = x * 1103515245u + 12345u;
		unsigned i = (x >> 8) % PER_CPU;
		size_t n = (x >> 20) % 8 ? large_size(x >> 4) : 32 + (x >> 4) % 4000;
		if (mine[i].p)
			ms_free(km, mine[i].p, mine[i].n, &bad);
		mine[i].p = ms_alloc(km, n, &bad);
		mine[i].n = n;
		if ((x >> 16) % 8 == 0 && mine[i].p) {   /* hand it over: stored with its size */
			size_t *q = mine[i].p;
			q[1] = n;
			void *o = __atomic_exchange_n(&st->xchg[(x >> 12) % XS], q, __ATOMIC_ACQ_REL);
			mine[i].p = NULL;
			if (o)
				ms_free(km, o, ((size_t *)o)[1], &bad);
		}
		if ((it & 255) == 0)
			kmalloc_reap_i(km);
	}
	for (unsigned i = 0; i < PER_CPU; i++)
		if (mine[i].p) {
			ms_free(km, mine[i].p, mine[i].n, &bad);
			mine[i].p = NULL;
		}
	kmalloc_reap_i(km);
	__atomic_fetch_add(&st->failures, bad, __ATOMIC_RELAXED);
}

KTEST(kmalloc, parallel_large_blocks)
{
	struct mstress *st = ktest_mem(sizeof(*st), 64);
	unsigned n = ktest_ncpus() < 16 ? ktest_ncpus() : 16;
	ASSERT(st);
	st->f = mfix_new(8192 + 2048 * n);
	ASSERT(st->f);
	st->n = n;
	st->duration = ktest_stress_seconds() * env_ticks_per_sec();
	ktest_parallel(n, mstress_worker, st);
	EXPECT_EQ(st->failures, 0);
	for (unsigned i = 0; i < XS; i++)
		if (st->xchg[i]) {
			size_t sz = ((size_t *)st->xchg[i])[1];
			EXPECT(marked(st->xchg[i], sz, sz));
			EXPECT_EQ(kfree_i(st->f->km, st->xchg[i]), 0);
		}
	kmalloc_reap_all_i(st->f->km);
	struct kmalloc_stats *s = mstats(st->f);
	EXPECT_EQ(s->failures, 0);
	EXPECT_GE(s->large_allocs, (uint64_t)PER_CPU * n);
	EXPECT_EQ(s->large_frees, s->large_allocs);
	EXPECT_EQ(s->live_bytes, 0);
	EXPECT_EQ(kmalloc_check_i(st->f->km, KMALLOC_CHECK_ALL), 0);
	kmalloc_destroy_i(st->f->km);
	EXPECT_EQ(st->f->b->out, 0);
}
