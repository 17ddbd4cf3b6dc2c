/* lmm_test.c - suite lmm: every LMM function, its edges and its refusals. */
#include "ktest.h"
#include "lmm.h"

#include <stdio.h>
#include <string.h>

#define G LMM_GRANULE
#define KB 1024

/* One region of `size` bytes of test memory, all free. */
static char *mkregion(lmm_t *l, lmm_region_t *r, size_t size, lmm_flags_t fl,
		      lmm_pri_t pri)
{
	char *m = ktest_mem(size, 4096);

	if (!m || lmm_add_region(l, r, m, size, fl, pri) || lmm_add_free(l, m, size))
		return NULL;
	return m;
}

/* The free list as (start, size) pairs, through lmm_find_free. */
struct snap {
	unsigned n;
	uintptr_t a[64];
	size_t s[64];
};

static void snapshot_from(lmm_t *l, struct snap *sn, uintptr_t a)
{
	size_t sz;
	lmm_flags_t fl;

	sn->n = 0;
	for (;;) {
		lmm_find_free(l, &a, &sz, &fl);
		if (!sz || sn->n == 64)
			break;
		sn->a[sn->n] = a;
		sn->s[sn->n++] = sz;
		a += sz;
	}
}

static void snapshot(lmm_t *l, struct snap *sn)
{
	snapshot_from(l, sn, 0);
}

static bool same(const struct snap *x, const struct snap *y)
{
	return x->n == y->n && !memcmp(x->a, y->a, x->n * sizeof(x->a[0])) &&
	       !memcmp(x->s, y->s, x->n * sizeof(x->s[0]));
}

KTEST(lmm, region_refusals)
{
	lmm_t l;
	lmm_region_t r[4];
	char *m = ktest_mem(8 * KB, 4096);

	ASSERT(m != NULL);
	lmm_init(&l);
	EXPECT_EQ(lmm_add_region(&l, NULL, m, 4096, 0, 0), E_INVAL);
	EXPECT_EQ(lmm_add_region(&l, &r[0], m, 0, 0, 0), E_INVAL);
	EXPECT_EQ(lmm_add_region(&l, &r[0], (void *)(UINTPTR_MAX - 100), 200, 0, 0), E_RANGE);
	EXPECT_EQ(lmm_add_region(&l, &r[0], m + 1, G, 0, 0), E_ALIGN);   /* empty after trim */
	EXPECT_EQ(lmm_add_region(&l, &r[0], m, 4096, 0, 0), 0);
	EXPECT_EQ(lmm_add_region(&l, &r[0], m + 4096, 4096, 0, 0), E_EXIST); /* in use */
	EXPECT_EQ(lmm_add_region(&l, &r[1], m + 4000, 200, 0, 0), E_EXIST);  /* overlap */
	EXPECT_EQ(lmm_add_region(&l, &r[1], m - 64, 100, 0, 0), E_EXIST);
	EXPECT_EQ(lmm_add_region(&l, &r[1], m + 4096, 4096, 0, 0), 0);       /* adjacent */
	EXPECT_EQ(r[0].free, 0);
	EXPECT_EQ(lmm_avail(&l, 0), 0);
	EXPECT(lmm_alloc(&l, 1, 0) == NULL);                                 /* no free memory */
	/* Unaligned region: trimmed inward to the granule. */
	char *u = ktest_mem(4096, 4096);
	ASSERT(u != NULL);
	EXPECT_EQ(lmm_add_region(&l, &r[2], u + 5, 200, 0, 0), 0);
	EXPECT_EQ(r[2].min, (uintptr_t)u + G);
	EXPECT_EQ(r[2].max, (uintptr_t)u + 192);
	EXPECT_EQ(lmm_check(&l), 0);
}

KTEST(lmm, alloc_rounds_to_granule)
{
	lmm_t l;
	lmm_region_t r;
	char *m;
	void *p, *q;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 16 * KB, 0, 0)) != NULL);
	EXPECT_EQ(lmm_avail(&l, 0), 16 * KB);
	p = lmm_alloc(&l, 1, 0);
	EXPECT(p == m);                              /* lowest address first */
	EXPECT_EQ(lmm_avail(&l, 0), 16 * KB - G);    /* one granule */
	q = lmm_alloc(&l, 2 * G, 0);
	EXPECT(q == m + G);                          /* no waste for granule sizes */
	EXPECT(lmm_alloc(&l, 0, 0) == NULL);
	EXPECT(lmm_alloc(&l, SIZE_MAX, 0) == NULL);
	EXPECT(lmm_alloc(&l, SIZE_MAX - 5, 0) == NULL);
	EXPECT(lmm_alloc(&l, 16 * KB, 0) == NULL);   /* more than is left */
	EXPECT_EQ(lmm_free(&l, p, 1), 0);
	EXPECT_EQ(lmm_free(&l, q, 2 * G), 0);
	EXPECT_EQ(lmm_avail(&l, 0), 16 * KB);
	EXPECT_EQ(r.nblocks, 1);
	EXPECT_EQ(lmm_check(&l), 0);
}

KTEST(lmm, flags_and_priorities)
{
	lmm_t l;
	lmm_region_t lo, hi, mid;
	char *a, *b, *c;

	lmm_init(&l);
	ASSERT((a = mkregion(&l, &lo, 8 * KB, 0x1, 0)) != NULL);
	ASSERT((b = mkregion(&l, &hi, 8 * KB, 0x3, 5)) != NULL);
	ASSERT((c = mkregion(&l, &mid, 8 * KB, 0x1, 2)) != NULL);
	EXPECT(l.regions == &hi && hi.next == &mid && mid.next == &lo);
	char *p = lmm_alloc(&l, 64, 0);
	EXPECT(p >= b && p < b + 8 * KB);             /* highest priority first */
	p = lmm_alloc(&l, 64, 0x2);
	EXPECT(p >= b && p < b + 8 * KB);             /* only hi has 0x2 */
	EXPECT(lmm_alloc(&l, 64, 0x4) == NULL);       /* no region has 0x4 */
	EXPECT(lmm_alloc(&l, 64, 0x6) == NULL);
	EXPECT(lmm_alloc(&l, 8 * KB, 0x2) == NULL);   /* hi is partly used */
	p = lmm_alloc(&l, 8 * KB, 0x1);
	EXPECT(p == c);                               /* falls to next priority */
	EXPECT_EQ(lmm_avail(&l, 0x2), 8 * KB - 128);
	EXPECT_EQ(lmm_avail(&l, 0x1), 16 * KB - 128);
	EXPECT_EQ(lmm_avail(&l, 0x8), 0);
	EXPECT_EQ(lmm_check(&l), 0);
}

KTEST(lmm, alignment_with_offset)
{
	lmm_t l;
	lmm_region_t r;
	char *m;
	uintptr_t p;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 64 * KB, 0, 0)) != NULL);
	ASSERT(lmm_alloc(&l, G, 0) == m);             /* make the start unaligned */
	p = (uintptr_t)lmm_alloc_aligned(&l, 100, 0, 12, 0x100);
	EXPECT_EQ(p & 0xfff, 0x100);
	EXPECT(p > (uintptr_t)m && p < (uintptr_t)m + 64 * KB);
	p = (uintptr_t)lmm_alloc_aligned(&l, 4096, 0, 13, 0);
	EXPECT_EQ(p & 0x1fff, 0);
	p = (uintptr_t)lmm_alloc_aligned(&l, G, 0, 3, 0);   /* below granule: raised */
	EXPECT_EQ(p & (G - 1), 0);
	EXPECT(lmm_alloc_aligned(&l, G, 0, 12, 0x108) == NULL);  /* not granule-aligned */
	EXPECT(lmm_alloc_aligned(&l, G, 0, 64, 0) == NULL);
	EXPECT(lmm_alloc_aligned(&l, G, 0, -1, 0) == NULL);
	EXPECT(lmm_alloc_aligned(&l, G, 0, 40, 0) == NULL);      /* no such address */
	p = (uintptr_t)lmm_alloc_page(&l, 0);
	EXPECT_EQ(p & 4095, 0);
	EXPECT(p != 0);
	lmm_free_page(&l, (void *)p);
	EXPECT_EQ(lmm_check(&l), 0);
}

KTEST(lmm, range_bounds_both_ends)
{
	lmm_t l;
	lmm_region_t r;
	char *m;
	uintptr_t b, e, p;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 64 * KB, 0, 0)) != NULL);
	b = (uintptr_t)m;
	e = b + 64 * KB;
	/* Bottom end: range starting before the region. */
	p = (uintptr_t)lmm_alloc_gen(&l, 256, 0, 0, 0, b - 4096, 4096 + 256);
	EXPECT_EQ(p, b);
	/* Top end: the block must end at the range end exactly. */
	p = (uintptr_t)lmm_alloc_gen(&l, 256, 0, 0, 0, e - 1024, 1024);
	EXPECT_EQ(p, e - 1024);
	p = (uintptr_t)lmm_alloc_gen(&l, 512, 0, 0, 0, e - 768, 768);
	EXPECT_EQ(p, e - 768 + 256 - 256);   /* lowest fit: e - 768 */
	EXPECT(lmm_alloc_gen(&l, 512, 0, 0, 0, e - 768, 768) == NULL); /* used */
	EXPECT(lmm_alloc_gen(&l, 256, 0, 0, 0, e, 4096) == NULL);      /* above */
	EXPECT(lmm_alloc_gen(&l, 256, 0, 0, 0, b - 8192, 4096) == NULL); /* below */
	EXPECT(lmm_alloc_gen(&l, 256, 0, 0, 0, b + 4096, 255) == NULL); /* in_size < size */
	/* Range plus alignment: only one aligned slot in the window. */
	p = (uintptr_t)lmm_alloc_gen(&l, 4096, 0, 12, 0, b + 4096 + 64, 8192);
	EXPECT_EQ(p, ((b + 4096 + 64 + 4095) & ~(uintptr_t)4095));
	/* A range that wraps is clamped to the top, not refused. */
	p = (uintptr_t)lmm_alloc_gen(&l, 64, 0, 0, 0, b + 32 * KB, SIZE_MAX);
	EXPECT_EQ(p, b + 32 * KB);
	EXPECT_EQ(lmm_check(&l), 0);
}

KTEST(lmm, exact_placement)
{
	lmm_t l;
	lmm_region_t r;
	char *m;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 64 * KB, 0, 0)) != NULL);
	EXPECT(lmm_alloc_gen(&l, 4096, 0, 0, 0, (uintptr_t)m + 8192, 4096) == m + 8192);
	EXPECT(lmm_alloc_gen(&l, 4096, 0, 0, 0, (uintptr_t)m + 8192, 4096) == NULL);
	EXPECT(lmm_alloc_gen(&l, 4096, 0, 0, 0, (uintptr_t)m + 6144, 4096) == NULL); /* half used */
	EXPECT(lmm_alloc_gen(&l, 100, 0, 0, 0, (uintptr_t)m + 100, 100) == NULL);    /* unaligned */
	EXPECT(lmm_alloc_gen(&l, 100, 0, 0, 0, (uintptr_t)m + 64, 100) == m + 64);  /* tail padded */
	EXPECT(lmm_alloc_gen(&l, 64, 0, 0, 0, (uintptr_t)m + 64 * KB - 64, 64) ==
	       m + 64 * KB - 64);                                                    /* last bytes */
	EXPECT_EQ(r.nblocks, 3);
	EXPECT_EQ(lmm_check(&l), 0);
}

KTEST(lmm, merge_both_sides)
{
	lmm_t l;
	lmm_region_t r;
	char *m, *a, *b, *c, *d;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 8 * KB, 0, 0)) != NULL);
	a = lmm_alloc(&l, 256, 0);
	b = lmm_alloc(&l, 256, 0);
	c = lmm_alloc(&l, 256, 0);
	d = lmm_alloc(&l, 256, 0);
	ASSERT(a == m && b == m + 256 && c == m + 512 && d == m + 768);
	EXPECT_EQ(r.nblocks, 1);
	EXPECT_EQ(lmm_free(&l, b, 256), 0);
	EXPECT_EQ(r.nblocks, 2);
	EXPECT_EQ(lmm_free(&l, d, 256), 0);          /* merges with the tail */
	EXPECT_EQ(r.nblocks, 2);
	EXPECT_EQ(lmm_free(&l, c, 256), 0);          /* merges with b and tail */
	EXPECT_EQ(r.nblocks, 1);
	EXPECT_EQ(lmm_free(&l, a, 256), 0);          /* merges with the successor */
	EXPECT_EQ(r.nblocks, 1);
	EXPECT_EQ(r.free, 8 * KB);
	EXPECT_EQ(lmm_check(&l), 0);
	EXPECT(lmm_alloc(&l, 8 * KB, 0) == m);
}

KTEST(lmm, remove_free_across_blocks)
{
	lmm_t l;
	lmm_region_t r, r2;
	char *m, *m2;
	struct snap s;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 16 * KB, 0, 0)) != NULL);
	ASSERT((m2 = mkregion(&l, &r2, 4 * KB, 0, 0)) != NULL);
	/* Holes at 1K, 3K, 5K of 512 bytes each make four blocks below 6K. */
	for (unsigned k = 1; k <= 5; k += 2)
		ASSERT(lmm_alloc_gen(&l, 512, 0, 0, 0, (uintptr_t)m + k * KB, 512) != NULL);
	EXPECT_EQ(r.nblocks, 4);
	lmm_remove_free(&l, m + 512 + 3, 5 * KB);    /* widened to the granule */
	EXPECT_EQ(lmm_check(&l), 0);
	snapshot_from(&l, &s, (uintptr_t)m);
	ASSERT(s.n >= 2);
	EXPECT_EQ(s.a[0], (uintptr_t)m);
	EXPECT_EQ(s.s[0], 512);
	EXPECT_EQ(s.a[1], (uintptr_t)m + 512 + 5 * KB + G);
	EXPECT_EQ(r.free, 16 * KB - (5 * KB + G));  /* [512, 5K+544) gone */
	/* Nothing free there any more: a no-op. */
	lmm_remove_free(&l, m + 1024, 1024);
	EXPECT_EQ(r.free, 16 * KB - (5 * KB + G));
	lmm_remove_free(&l, m, 0);
	lmm_remove_free(&l, (void *)(UINTPTR_MAX - 10), 100);   /* wraps: logged */
	EXPECT_EQ(r.free, 16 * KB - (5 * KB + G));
	/* Across both regions at once. */
	lmm_remove_free(&l, (void *)0, UINTPTR_MAX - 4096);
	EXPECT_EQ(lmm_avail(&l, 0), 0);
	EXPECT_EQ(lmm_check(&l), 0);
	EXPECT_EQ(lmm_add_free(&l, m2, 4 * KB), 0);
	EXPECT_EQ(lmm_avail(&l, 0), 4 * KB);
}

KTEST(lmm, find_free_iterates_in_order)
{
	lmm_t l;
	lmm_region_t r1, r2;
	char *m1, *m2, *lo, *hi;
	uintptr_t a = 0;
	size_t sz;
	lmm_flags_t fl;

	lmm_init(&l);
	ASSERT((m1 = mkregion(&l, &r1, 8 * KB, 0x10, 0)) != NULL);
	ASSERT((m2 = mkregion(&l, &r2, 8 * KB, 0x20, 9)) != NULL);
	lo = m1 < m2 ? m1 : m2;
	hi = m1 < m2 ? m2 : m1;
	ASSERT(lmm_alloc_gen(&l, 1024, 0, 0, 0, (uintptr_t)lo + 2048, 1024) != NULL);
	lmm_find_free(&l, &a, &sz, &fl);
	EXPECT_EQ(a, (uintptr_t)lo);
	EXPECT_EQ(sz, 2048);
	EXPECT_EQ(fl, lo == m1 ? 0x10 : 0x20);
	a += sz;
	lmm_find_free(&l, &a, &sz, &fl);
	EXPECT_EQ(a, (uintptr_t)lo + 3072);
	EXPECT_EQ(sz, 5 * KB);
	a = (uintptr_t)lo + 4000;                    /* inside a block */
	lmm_find_free(&l, &a, &sz, &fl);
	EXPECT_EQ(a, (uintptr_t)lo + 4000);
	EXPECT_EQ(sz, 8 * KB - 4000);
	a += sz;
	lmm_find_free(&l, &a, &sz, &fl);
	EXPECT_EQ(a, (uintptr_t)hi);
	EXPECT_EQ(sz, 8 * KB);
	EXPECT_EQ(fl, hi == m1 ? 0x10 : 0x20);
	a += sz;
	lmm_find_free(&l, &a, &sz, &fl);
	EXPECT_EQ(sz, 0);
}

KTEST(lmm, free_refusals_change_nothing)
{
	lmm_t l;
	lmm_region_t r;
	char *m, *p, *q;
	struct snap before, after;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 8 * KB, 0, 0)) != NULL);
	p = lmm_alloc(&l, 1024, 0);
	q = lmm_alloc(&l, 1024, 0);
	ASSERT(p && q);
	EXPECT_EQ(lmm_free(&l, p, 1024), 0);
	snapshot(&l, &before);
	EXPECT_EQ(lmm_free(&l, p, 1024), E_EXIST);              /* double free */
	EXPECT_EQ(lmm_free(&l, p + 512, 1024), E_EXIST);        /* partial overlap */
	EXPECT_EQ(lmm_free(&l, q + 512, 1024), E_EXIST);        /* overlaps the tail */
	EXPECT_EQ(lmm_free(&l, m - 4096, 64), E_NOENT);         /* outside every region */
	EXPECT_EQ(lmm_free(&l, q + 1, 64), E_ALIGN);
	EXPECT_EQ(lmm_free(&l, q, 0), E_INVAL);
	EXPECT_EQ(lmm_free(&l, NULL, 64), E_INVAL);
	EXPECT_EQ(lmm_free(&l, q, SIZE_MAX), E_RANGE);          /* size overflows */
	EXPECT_EQ(lmm_free(&l, q, SIZE_MAX - 64), E_RANGE);
	EXPECT_EQ(lmm_free(&l, m + 8 * KB - 64, 128), E_RANGE); /* crosses region end */
	snapshot(&l, &after);
	EXPECT(same(&before, &after));
	EXPECT_EQ(r.free, 8 * KB - 1024);
	EXPECT_EQ(lmm_check(&l), 0);
	EXPECT_EQ(lmm_free(&l, q, 1024), 0);
	EXPECT_EQ(r.nblocks, 1);
}

KTEST(lmm, add_free_refusals_and_spanning)
{
	lmm_t l;
	lmm_region_t r1, r2;
	char *m = ktest_mem(16 * KB, 4096);
	struct snap before, after;

	ASSERT(m != NULL);
	lmm_init(&l);
	ASSERT(lmm_add_region(&l, &r1, m, 4 * KB, 1, 0) == 0);
	ASSERT(lmm_add_region(&l, &r2, m + 4 * KB, 4 * KB, 2, 0) == 0);
	/* One block across both regions and past their end: clipped to each. */
	EXPECT_EQ(lmm_add_free(&l, m + 1024, 12 * KB), 0);
	EXPECT_EQ(r1.free, 3 * KB);
	EXPECT_EQ(r2.free, 4 * KB);
	snapshot(&l, &before);
	EXPECT_EQ(lmm_add_free(&l, m + 2048, 64), E_EXIST);
	EXPECT_EQ(lmm_add_free(&l, m, 1024 + G), E_EXIST);       /* overlaps by a granule */
	EXPECT_EQ(lmm_add_free(&l, m + 8 * KB, 4096), E_NOENT);  /* outside every region */
	EXPECT_EQ(lmm_add_free(&l, m, 0), E_INVAL);
	EXPECT_EQ(lmm_add_free(&l, (void *)(UINTPTR_MAX - 64), 128), E_RANGE);
	EXPECT_EQ(lmm_add_free(&l, m + 1, 30), 0);               /* nothing left after trim */
	snapshot(&l, &after);
	EXPECT(same(&before, &after));
	EXPECT_EQ(lmm_add_free(&l, m, 1024), 0);                 /* merges with the rest */
	EXPECT_EQ(r1.nblocks, 1);
	EXPECT_EQ(r1.free, 4 * KB);
	EXPECT_EQ(lmm_check(&l), 0);
	/* Blocks never merge across regions. */
	EXPECT(lmm_alloc(&l, 5 * KB, 0) == NULL);
}

KTEST(lmm, check_finds_corruption)
{
	lmm_t l;
	lmm_region_t r;
	char *m;
	size_t *sizep;
	size_t saved;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, 8 * KB, 0, 0)) != NULL);
	ASSERT(lmm_alloc_gen(&l, 1024, 0, 0, 0, (uintptr_t)m + 2048, 1024) != NULL);
	EXPECT_EQ(lmm_check(&l), 0);
	/* The node of the first block sits at m: {left, right, size, max}. */
	sizep = (size_t *)(m + 2 * sizeof(void *));
	saved = *sizep;
	*sizep = saved + 1024;                       /* now touches the next block */
	EXPECT_EQ(lmm_check(&l), E_CORRUPT);
	*sizep = saved;
	r.free += G;
	EXPECT_EQ(lmm_check(&l), E_CORRUPT);         /* totals disagree */
	r.free -= G;
	EXPECT_EQ(lmm_check(&l), 0);
	lmm_dump(&l);
}

/* A tree of many fragments: every constrained request matches a brute-force
 * first fit over lmm_find_free. */
static uintptr_t brute(lmm_t *l, size_t size, int bits, uintptr_t ofs,
		       uintptr_t lo, uintptr_t hi)
{
	uintptr_t a = 0, mask = ((uintptr_t)1 << bits) - 1;
	size_t sz, rs = (size + G - 1) & ~(size_t)(G - 1);
	lmm_flags_t fl;

	mask |= G - 1;
	for (;;) {
		lmm_find_free(l, &a, &sz, &fl);
		if (!sz)
			return 0;
		uintptr_t s = a > lo ? a : lo, b = (s & ~mask) | (ofs & mask);
		if (b < s)
			b += mask + 1;
		if (b + rs <= a + sz && b + size <= hi)
			return b;
		a += sz;
	}
}

KTEST(lmm, many_fragments_match_first_fit)
{
	lmm_t l;
	lmm_region_t r;
	char *m;
	size_t total = 4096 * KB;
	uint32_t x = 12345;

	lmm_init(&l);
	ASSERT((m = mkregion(&l, &r, total, 0, 0)) != NULL);
	/* Take a granule every 128..4096 bytes: thousands of fragments. */
	for (uintptr_t a = (uintptr_t)m + 64; a < (uintptr_t)m + total - 64;) {
		x = x * 1103515245 + 12345;
		EXPECT(lmm_alloc_gen(&l, G, 0, 0, 0, a, G) == (void *)a);
		a += 128 + ((x >> 8) % 31) * 128;
	}
	EXPECT_GE(r.nblocks, 1500);
	ASSERT_EQ(lmm_check(&l), 0);
	for (unsigned i = 0; i < 300 && !KT_FAILED(); i++) {
		x = x * 1103515245 + 12345;
		size_t size = 32 + (x >> 4) % 3000;
		int bits = (x >> 20) % 12;
		uintptr_t lo = (uintptr_t)m + (x >> 9) % total;
		uintptr_t hi = lo + size + (x >> 3) % (total / 4);
		uintptr_t want = brute(&l, size, bits, 0, lo, hi);
		uintptr_t got = (uintptr_t)lmm_alloc_gen(&l, size, 0, bits, 0, lo, hi - lo);
		EXPECT_EQ(got, want);
	}
	EXPECT_EQ(lmm_check(&l), 0);
}
