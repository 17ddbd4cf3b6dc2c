/* pt_test.c - suite pt: the Sv39 page-table engine over simulated physical
 * memory. Table pages come from a ktest_mem pool at a fake physical base and
 * are reached only through pt_ops, so the same tests run in the kernel (where
 * pa != va) and on the host; the pool counts pages to prove every table is
 * returned and injects allocation failures.
 */
#include <string.h>

#include "ktest.h"
#include "pt.h"

#define PA_BASE   0x100000000ull     /* fake "physical" base of the pool */
#define POOL_PAGES 160
#define G1 SV39_SIZE_1G
#define M2 SV39_SIZE_2M
#define K4 SV39_SIZE_4K

struct pool {
	uint8_t *mem;
	uint8_t used[POOL_PAGES];
	unsigned live, allocs, errors;
	int fail_after;                 /* < 0: never; else allocations left */
	struct pt_ops ops;
};

static uint64_t pool_alloc(void *ctx)
{
	struct pool *p = ctx;

	if (p->fail_after == 0)
		return 0;
	if (p->fail_after > 0)
		p->fail_after--;
	for (unsigned i = 0; i < POOL_PAGES; i++)
		if (!p->used[i]) {
			p->used[i] = 1;
			p->live++;
			p->allocs++;
			memset(p->mem + (size_t)i * K4, 0, K4);
			return PA_BASE + (uint64_t)i * K4;
		}
	return 0;
}

static unsigned pool_index(struct pool *p, uint64_t pa)
{
	if (pa < PA_BASE || pa >= PA_BASE + POOL_PAGES * K4 || (pa & (K4 - 1))) {
		p->errors++;
		return 0;
	}
	return (unsigned)((pa - PA_BASE) / K4);
}

static void pool_free(void *ctx, uint64_t pa)
{
	struct pool *p = ctx;
	unsigned i = pool_index(p, pa);

	if (!p->used[i]) {
		p->errors++;   /* double free */
		return;
	}
	p->used[i] = 0;
	p->live--;
	memset(p->mem + (size_t)i * K4, 0xa5, K4);   /* poison freed tables */
}

static void *pool_va(void *ctx, uint64_t pa)
{
	struct pool *p = ctx;
	return p->mem + (size_t)pool_index(p, pa & ~(K4 - 1)) * K4;
}

static struct pool *pool_new(void)
{
	struct pool *p = ktest_mem(sizeof(*p), 64);

	if (!p)
		return NULL;
	p->mem = ktest_mem(POOL_PAGES * K4, K4);
	if (!p->mem)
		return NULL;
	p->fail_after = -1;
	p->ops = (struct pt_ops){ pool_alloc, pool_free, pool_va, p };
	return p;
}

/* A pool and a tree with its root; the test returns if either fails. */
#define SETUP(p, t)                                                           \
	struct pool *p = pool_new();                                          \
	struct pt t;                                                          \
	ASSERT(p != NULL);                                                    \
	ASSERT_EQ(pt_init(&t, &p->ops), 0)

/* The end of a test on one tree: it checks clean, and once its tables are
 * freed the pool has none out and saw no bad call. */
static void expect_torn_down(struct ktest_ctx *kt__, struct pool *p, struct pt *t)
{
	EXPECT_EQ(pt_check(t, 0, SV39_ENTRIES), 0);
	pt_free_tables(t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
	EXPECT_EQ(p->errors, 0);
}

static uint64_t nleaves(const struct pt *t, int level)
{
	uint64_t n[3];
	pt_count(t, 0, SV39_ENTRIES, n);
	return n[level];
}

KTEST(pt, map_translate_unmap_4k)
{
	SETUP(p, t);
	uint64_t pa = 0;
	unsigned prot = 0, fence = 0;
	int level = -1;

	ASSERT_EQ(pt_map(&t, 0x5000, 0x80007000, K4, PT_R | PT_W | PT_U, &fence), 0);
	EXPECT_EQ(pt_translate(&t, 0x5123, &pa, &prot, &level), 0);
	EXPECT_EQ(pa, 0x80007123);
	EXPECT_EQ(prot, PT_R | PT_W | PT_U);
	EXPECT_EQ(level, 0);
	EXPECT_EQ(p->live, 3);                      /* root, L1, L0 */
	EXPECT_EQ(pt_translate(&t, 0x6000, NULL, NULL, NULL), E_NOENT);
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), 0);
	EXPECT_EQ(pt_unmap(&t, 0x5000, K4, &fence), 1);
	EXPECT(fence & PT_FENCE_VA);
	EXPECT_EQ(pt_translate(&t, 0x5000, NULL, NULL, NULL), E_NOENT);
	EXPECT_EQ(pt_unmap(&t, 0x5000, K4, &fence), 0);   /* hole: nothing */
	EXPECT_EQ(fence, 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
	EXPECT_EQ(p->errors, 0);
}

KTEST(pt, largest_page_sizes)
{
	SETUP(p, t);
	uint64_t va = 4 * G1, pa = 0x80000000ull * 2, got;
	int level;

	/* 1 GiB + 2 MiB + 4 KiB, all aligned: one leaf of each size. */
	ASSERT_EQ(pt_map(&t, va, pa, G1 + M2 + K4, PT_R | PT_X, NULL), 0);
	EXPECT_EQ(nleaves(&t, 2), 1);
	EXPECT_EQ(nleaves(&t, 1), 1);
	EXPECT_EQ(nleaves(&t, 0), 1);
	EXPECT_EQ(pt_translate(&t, va + G1 + 0x1234, &got, NULL, &level), 0);
	EXPECT_EQ(got, pa + G1 + 0x1234);
	EXPECT_EQ(level, 1);
	EXPECT_EQ(pt_translate(&t, va + G1 - 8, &got, NULL, &level), 0);
	EXPECT_EQ(got, pa + G1 - 8);
	EXPECT_EQ(level, 2);
	EXPECT_EQ(pt_mapped_pages(&t, va, 2 * G1), (G1 + M2 + K4) / K4);

	/* Same VA alignment, PA only 2 MiB aligned: 2 MiB leaves. */
	ASSERT_EQ(pt_map(&t, 8 * G1, pa + M2, G1, PT_R, NULL), 0);
	EXPECT_EQ(nleaves(&t, 1), 1 + 512);
	/* PA only 4 KiB aligned: 4 KiB leaves. */
	ASSERT_EQ(pt_map(&t, 10 * G1, pa + K4, 2 * M2, PT_R, NULL), 0);
	EXPECT_EQ(nleaves(&t, 0), 1 + 1024);
	expect_torn_down(KT_CTX, p, &t);
}

KTEST(pt, argument_errors_change_nothing)
{
	SETUP(p, t);
	const unsigned rw = PT_R | PT_W;

	ASSERT_EQ(pt_map(&t, 0x200000, 0x80000000, M2, rw, NULL), 0);
	unsigned live = p->live;

	EXPECT_EQ(pt_map(&t, 0x1001, 0x80000000, K4, rw, NULL), E_ALIGN);
	EXPECT_EQ(pt_map(&t, 0x1000, 0x80000010, K4, rw, NULL), E_ALIGN);
	EXPECT_EQ(pt_map(&t, 0x1000, 0x80000000, 100, rw, NULL), E_ALIGN);
	EXPECT_EQ(pt_map(&t, 0x1000, 0x80000000, 0, rw, NULL), E_INVAL);
	EXPECT_EQ(pt_map(&t, SV39_LOWER_END, 0x80000000, K4, rw, NULL), E_RANGE);
	EXPECT_EQ(pt_map(&t, 0x0000100000000000ull, 0, K4, rw, NULL), E_RANGE);
	EXPECT_EQ(pt_map(&t, SV39_LOWER_END - K4, 0, 2 * K4, rw, NULL), E_RANGE);
	EXPECT_EQ(pt_map(&t, ~0ull - K4 + 1, 0, 2 * K4, rw, NULL), E_RANGE);
	EXPECT_EQ(pt_map(&t, 0x1000, 1ull << SV39_PA_BITS, K4, rw, NULL), E_RANGE);
	EXPECT_EQ(pt_map(&t, 0x1000, 0, K4, PT_W, NULL), E_INVAL);       /* W without R */
	EXPECT_EQ(pt_map(&t, 0x1000, 0, K4, PT_W | PT_X, NULL), E_INVAL);
	EXPECT_EQ(pt_map(&t, 0x1000, 0, K4, PT_U, NULL), E_INVAL);       /* no R/W/X */
	EXPECT_EQ(pt_map(&t, 0x1000, 0, K4, SV39_PTE_A | PT_R, NULL), E_INVAL);
	EXPECT_EQ(pt_unmap(&t, 0x1000, 3, NULL), E_ALIGN);
	EXPECT_EQ(pt_unmap(&t, SV39_LOWER_END, K4, NULL), E_RANGE);
	EXPECT_EQ(pt_protect(&t, 0x200000, K4, PT_W, NULL), E_INVAL);
	EXPECT_EQ(pt_protect(&t, 0x200000, 0, PT_R, NULL), E_INVAL);
	EXPECT_EQ(pt_translate(&t, SV39_LOWER_END, NULL, NULL, NULL), E_RANGE);
	EXPECT_EQ(p->live, live);
	EXPECT_EQ(nleaves(&t, 1), 1);
	EXPECT_EQ(nleaves(&t, 0), 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
}

KTEST(pt, overlap_refused)
{
	SETUP(p, t);

	ASSERT_EQ(pt_map(&t, 0x40000000, 0x80000000, M2, PT_R, NULL), 0);
	ASSERT_EQ(pt_map(&t, 0x40400000, 0x90000000, K4, PT_R, NULL), 0);
	unsigned live = p->live;

	EXPECT_EQ(pt_map(&t, 0x40001000, 0, K4, PT_R, NULL), E_EXIST);
	EXPECT_EQ(pt_map(&t, 0x3ff00000, 0, 2 * M2, PT_R, NULL), E_EXIST);
	EXPECT_EQ(pt_map(&t, 0x40200000, 0, 2 * M2 + K4, PT_R, NULL), E_EXIST);
	EXPECT_EQ(pt_map(&t, 0, 0, 2 * G1, PT_R, NULL), E_EXIST);
	EXPECT_EQ(p->live, live);
	EXPECT_EQ(pt_mapped_pages(&t, 0, 4 * G1), 513);
	/* Right next to both is fine. */
	EXPECT_EQ(pt_map(&t, 0x40200000, 0, M2, PT_R, NULL), 0);
	EXPECT_EQ(pt_map(&t, 0x40401000, 0, K4, PT_R, NULL), 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
}

KTEST(pt, table_alloc_failure_leaves_no_trace)
{
	SETUP(p, t);
	/* Straddles a 1 GiB boundary with 4 KiB pages: two L1 and two L0. */
	uint64_t va = 3 * G1 - 2 * K4, size = 4 * K4;
	int k;

	for (k = 0; k < 4; k++) {
		p->fail_after = k;
		EXPECT_EQ(pt_map(&t, va, 0x80001000, size, PT_R, NULL), E_NOMEM);
		EXPECT_EQ(p->live, 1);
		EXPECT_EQ(pt_mapped_pages(&t, 0, 8 * G1), 0);
	}
	p->fail_after = 4;
	ASSERT_EQ(pt_map(&t, va, 0x80001000, size, PT_R, NULL), 0);
	EXPECT_EQ(p->live, 5);
	p->fail_after = -1;

	/* A split needs tables too: unmapping 4 KiB of a 1 GiB leaf needs two. */
	ASSERT_EQ(pt_map(&t, 8 * G1, 0, G1, PT_R | PT_W, NULL), 0);
	for (k = 0; k < 2; k++) {
		p->fail_after = k;
		EXPECT_EQ(pt_unmap(&t, 8 * G1 + 5 * M2 + 3 * K4, K4, NULL), E_NOMEM);
		EXPECT_EQ(nleaves(&t, 2), 1);
		EXPECT_EQ(p->live, 5);
		p->fail_after = 0;
		EXPECT_EQ(pt_protect(&t, 8 * G1, K4, PT_R, NULL), E_NOMEM);
		EXPECT_EQ(nleaves(&t, 2), 1);
	}
	p->fail_after = -1;
	expect_torn_down(KT_CTX, p, &t);
}

KTEST(pt, unmap_splits_large_pages)
{
	SETUP(p, t);
	uint64_t va = 2 * G1, pa = 0x200000000ull, hole = va + 7 * M2 + 9 * K4, got;
	unsigned fence;
	int level;

	ASSERT_EQ(pt_map(&t, va, pa, G1, PT_R | PT_W, NULL), 0);
	EXPECT_EQ(pt_unmap(&t, hole, K4, &fence), 1);
	EXPECT_EQ(fence & (PT_FENCE_VA | PT_FENCE_ALL), PT_FENCE_VA | PT_FENCE_ALL);
	EXPECT_EQ(nleaves(&t, 2), 0);
	EXPECT_EQ(nleaves(&t, 1), 511);
	EXPECT_EQ(nleaves(&t, 0), 511);
	EXPECT_EQ(pt_translate(&t, hole, NULL, NULL, NULL), E_NOENT);
	EXPECT_EQ(pt_translate(&t, hole + K4, &got, NULL, &level), 0);
	EXPECT_EQ(got, pa + (hole + K4 - va));
	EXPECT_EQ(level, 0);
	EXPECT_EQ(pt_translate(&t, va + 100 * M2 + 5, &got, NULL, &level), 0);
	EXPECT_EQ(got, pa + 100 * M2 + 5);
	EXPECT_EQ(level, 1);
	/* Unmapping across a 2 MiB leaf and into split 4 KiB pages. */
	EXPECT_EQ(pt_unmap(&t, va + 6 * M2, 2 * M2, NULL), 1024 - 1);
	EXPECT_EQ(pt_mapped_pages(&t, va, G1), G1 / K4 - 1024);
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
}

KTEST(pt, protect_splits_and_reports_weakening)
{
	SETUP(p, t);
	uint64_t va = 0x600000;
	unsigned prot, fence;
	int level;

	ASSERT_EQ(pt_map(&t, va, 0x80200000, M2, PT_R | PT_W, NULL), 0);
	ASSERT_EQ(pt_protect(&t, va + K4, K4, PT_R, &fence), 0);
	EXPECT(fence & PT_FENCE_VA);
	EXPECT(fence & PT_FENCE_ALL);                      /* split */
	EXPECT_EQ(nleaves(&t, 0), 512);
	EXPECT_EQ(pt_translate(&t, va + K4, NULL, &prot, &level), 0);
	EXPECT_EQ(prot, PT_R);
	EXPECT_EQ(level, 0);
	EXPECT_EQ(pt_translate(&t, va, NULL, &prot, NULL), 0);
	EXPECT_EQ(prot, PT_R | PT_W);
	/* Strengthening needs no fence; unchanged pages no fence either. */
	ASSERT_EQ(pt_protect(&t, va, 2 * K4, PT_R | PT_W, &fence), 0);
	EXPECT_EQ(fence & (PT_FENCE_VA | PT_FENCE_ALL), 0);
	/* A hole anywhere: refused, nothing changed. */
	EXPECT_EQ(pt_protect(&t, va, M2 + K4, PT_R, &fence), E_NOENT);
	EXPECT_EQ(pt_translate(&t, va, NULL, &prot, NULL), 0);
	EXPECT_EQ(prot, PT_R | PT_W);
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
}

KTEST(pt, empty_tables_reused_or_replaced)
{
	SETUP(p, t);
	unsigned fence;

	ASSERT_EQ(pt_map(&t, G1, 0x80000000, K4, PT_R, NULL), 0);
	ASSERT_EQ(pt_unmap(&t, G1, K4, NULL), 1);
	EXPECT_EQ(p->live, 3);                          /* empty tables kept */
	ASSERT_EQ(pt_map(&t, G1 + K4, 0x80000000, K4, PT_R, NULL), 0);
	EXPECT_EQ(p->live, 3);                          /* and reused */
	ASSERT_EQ(pt_unmap(&t, G1 + K4, K4, NULL), 1);
	/* A 1 GiB leaf replaces the empty subtree. */
	ASSERT_EQ(pt_map(&t, G1, 0x80000000ull * 4, G1, PT_R, &fence), 0);
	EXPECT(fence & PT_FENCE_ALL);
	EXPECT_EQ(p->live, 1);
	EXPECT_EQ(nleaves(&t, 2), 1);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
}

KTEST(pt, upper_half_and_shared_root_range)
{
	SETUP(p, t);
	const uint64_t up = SV39_UPPER_START;        /* 0xffffffc000000000 */
	uint64_t got;
	unsigned fence;

	t.keep_lo = SV39_ROOT_UPPER;
	t.keep_hi = SV39_ENTRIES;
	ASSERT_EQ(pt_map(&t, up, 0x80000000, G1, PT_R | PT_W | PT_G, &fence), 0);
	EXPECT(fence & PT_FENCE_ROOT);
	EXPECT_EQ(pt_translate(&t, up + 0x1234, &got, NULL, NULL), 0);
	EXPECT_EQ(got, 0x80001234);
	/* In the shared range an (empty) L1 table is never replaced. */
	ASSERT_EQ(pt_map(&t, up + G1, 0x80000000, K4, PT_R, NULL), 0);
	ASSERT_EQ(pt_unmap(&t, up + G1, K4, NULL), 1);
	ASSERT_EQ(pt_map(&t, up + G1, 0x80000000, G1, PT_R, &fence), 0);
	EXPECT_EQ(fence & PT_FENCE_ROOT, 0);
	EXPECT_EQ(nleaves(&t, 1), 512);
	/* Lower-half mapping, then free only the lower half. */
	ASSERT_EQ(pt_map(&t, 0x1000, 0x1000, K4, PT_R, NULL), 0);
	unsigned before = p->live;
	pt_free_tables(&t, 0, SV39_ROOT_UPPER);
	EXPECT_EQ(p->live, before - 2);
	EXPECT_EQ(pt_translate(&t, 0x1000, NULL, NULL, NULL), E_NOENT);
	EXPECT_EQ(pt_translate(&t, up + 5, NULL, NULL, NULL), 0);
	EXPECT_EQ(pt_check(&t, SV39_ROOT_UPPER, SV39_ENTRIES), 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
}

KTEST(pt, check_finds_corruption)
{
	SETUP(p, t);
	uint64_t *root, *l1, save;

	ASSERT_EQ(pt_map(&t, G1 + M2, 0x80200000, M2, PT_R | PT_W, NULL), 0);
	ASSERT_EQ(pt_map(&t, G1 + 4 * M2, 0x80000000, K4, PT_R, NULL), 0);
	ASSERT_EQ(pt_check(&t, 0, SV39_ENTRIES), 0);
	root = pool_va(p, t.root);
	l1 = pool_va(p, sv39_pte_pa(root[1]));
	save = l1[1];                                   /* the 2 MiB leaf */

	l1[1] = save & ~SV39_PTE_R;                     /* W without R */
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), E_CORRUPT);
	l1[1] = save + (1ull << SV39_PTE_PPN_SHIFT);    /* PPN not 2 MiB aligned */
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), E_CORRUPT);
	l1[1] = save | (1ull << 60);                    /* reserved bit */
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), E_CORRUPT);
	l1[1] = save;
	root[1] |= SV39_PTE_A;                          /* A on a non-leaf */
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), E_CORRUPT);
	root[1] &= ~SV39_PTE_A;
	root[5] = root[1];                              /* table reached twice */
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), E_CORRUPT);
	root[5] = 0;
	/* Marks are cleared again after every run. */
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), 0);
	for (unsigned i = 0; i < SV39_ENTRIES; i++)
		EXPECT_EQ(l1[i] & SV39_PTE_RSW, 0);
	EXPECT_EQ(root[0] & SV39_PTE_RSW, 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
	EXPECT_EQ(p->errors, 0);
}

KTEST(pt, sv39_facts)
{
	EXPECT(sv39_canonical(0));
	EXPECT(sv39_canonical(SV39_LOWER_END - 1));
	EXPECT(!sv39_canonical(SV39_LOWER_END));
	EXPECT(!sv39_canonical(SV39_UPPER_START - 1));
	EXPECT(sv39_canonical(SV39_UPPER_START));
	EXPECT(sv39_canonical(~0ull));
	EXPECT_EQ(sv39_vpn(SV39_UPPER_START, 2), SV39_ROOT_UPPER);
	EXPECT_EQ(sv39_vpn(0x40201000, 0), 1);
	EXPECT_EQ(sv39_vpn(0x40201000, 1), 1);
	EXPECT_EQ(sv39_vpn(0x40201000, 2), 1);
	EXPECT_EQ(sv39_level_size(1), M2);
	EXPECT_EQ(sv39_satp(5, 0x80201000), (8ull << 60) | (5ull << 44) | 0x80201);
	EXPECT_EQ(sv39_pte_pa(sv39_pte_make(0x123456000, SV39_PTE_V)), 0x123456000);
}

/* The single-page paths (pt_map_page/pt_unmap_page, and pt_map/pt_unmap of
 * one page, which take them too) check like the general path, with the
 * cached walk warm for the region, and change nothing on an error. */
KTEST(pt, single_page_paths_check_like_pt_map)
{
	SETUP(p, t);
	const unsigned rw = PT_R | PT_W | PT_U;
	unsigned fence = 7;

	ASSERT_EQ(pt_map_page(&t, 0x5000, 0x80005000, rw, &fence), 0);   /* warm */
	EXPECT_EQ(fence, PT_FENCE_ROOT);                  /* tables were added */
	ASSERT_EQ(pt_map_page(&t, 0x6000, 0x80006000, rw, &fence), 0);   /* cached */
	EXPECT_EQ(fence, 0);
	unsigned live = p->live;

	EXPECT_EQ(pt_map_page(&t, 0x5000, 0x90000000, rw, NULL), E_EXIST);
	EXPECT_EQ(pt_map(&t, 0x6000, 0x90000000, K4, rw, NULL), E_EXIST);
	EXPECT_EQ(pt_map_page(&t, 0x7000, 0x80007000, 0, NULL), E_INVAL);
	EXPECT_EQ(pt_map_page(&t, 0x7000, 0x80007000, PT_W, NULL), E_INVAL);
	EXPECT_EQ(pt_map_page(&t, 0x7000, 0x80007000, PT_R | (1u << 8), NULL), E_INVAL);
	EXPECT_EQ(pt_map_page(&t, 0x7000, 0x80007001, PT_R, NULL), E_ALIGN);
	EXPECT_EQ(pt_map_page(&t, 0x7008, 0x80007000, PT_R, NULL), E_ALIGN);
	EXPECT_EQ(pt_map_page(&t, 0x7000, 1ull << SV39_PA_BITS, PT_R, NULL), E_RANGE);
	EXPECT_EQ(pt_map_page(&t, SV39_LOWER_END, 0x80007000, PT_R, NULL), E_RANGE);
	EXPECT_EQ(pt_map_page(&t, 0x7000 | (1ull << 40), 0x80007000, PT_R, NULL), E_RANGE);
	EXPECT_EQ(pt_unmap_page(&t, 0x7000, &fence), 0);                  /* hole */
	EXPECT_EQ(fence, 0);
	EXPECT_EQ(pt_unmap_page(&t, 0x5008, NULL), E_ALIGN);
	EXPECT_EQ(pt_unmap_page(&t, 0x5000 | (1ull << 40), NULL), E_RANGE);
	EXPECT_EQ(pt_mapped_pages(&t, 0, M2), 2);
	EXPECT_EQ(p->live, live);

	/* Highest pa and a page next to the cached ones, then unmap both. */
	ASSERT_EQ(pt_map_page(&t, 0x7000, (1ull << SV39_PA_BITS) - K4, PT_R, NULL), 0);
	uint64_t pa;
	EXPECT_EQ(pt_translate(&t, 0x7000, &pa, NULL, NULL), 0);
	EXPECT_EQ(pa, (1ull << SV39_PA_BITS) - K4);
	EXPECT_EQ(pt_unmap_page(&t, 0x5000, &fence), 1);
	EXPECT_EQ(fence, PT_FENCE_VA);
	EXPECT_EQ(pt_unmap(&t, 0x6000, K4, &fence), 1);
	EXPECT_EQ(fence, PT_FENCE_VA);
	EXPECT_EQ(pt_translate(&t, 0x5000, NULL, NULL, NULL), E_NOENT);
	EXPECT_EQ(pt_mapped_pages(&t, 0, M2), 1);
	expect_torn_down(KT_CTX, p, &t);
}

/* The cached walk never outlives the table it points to: a table freed
 * (replaced by a large leaf, or by pt_free_tables) and handed to another
 * tree from the same pool must not be written through the first tree. */
KTEST(pt, single_page_cache_dropped_with_its_table)
{
	SETUP(p, t);
	struct pt u;
	uint64_t pa;
	unsigned fence;
	int level;

	ASSERT_EQ(pt_init(&u, &p->ops), 0);
	/* Warm t's cache on region [M2, 2*M2), empty it, replace it by a leaf. */
	ASSERT_EQ(pt_map_page(&t, M2 + 3 * K4, 0x80003000, PT_R, NULL), 0);
	ASSERT_EQ(pt_unmap_page(&t, M2 + 3 * K4, NULL), 1);
	ASSERT_EQ(pt_map(&t, M2, 0x80200000, M2, PT_R, &fence), 0);
	EXPECT(fence & PT_FENCE_ALL);
	/* u takes the freed table page (lowest free) for a table of its own. */
	ASSERT_EQ(pt_map_page(&u, 5 * M2, 0x90000000, PT_R, NULL), 0);
	/* Through t, the page is inside the 2 MiB leaf now. */
	EXPECT_EQ(pt_map_page(&t, M2 + 3 * K4, 0x80003000, PT_R, NULL), E_EXIST);
	EXPECT_EQ(pt_translate(&t, M2 + 3 * K4, &pa, NULL, &level), 0);
	EXPECT_EQ(pa, 0x80203000);
	EXPECT_EQ(level, 1);
	EXPECT_EQ(pt_mapped_pages(&u, 0, G1), 1);
	/* Unmapping one page of it splits the leaf (a new table). */
	EXPECT_EQ(pt_unmap_page(&t, M2 + 3 * K4, &fence), 1);
	EXPECT(fence & PT_FENCE_ALL);
	EXPECT_EQ(pt_mapped_pages(&t, M2, M2), 511);
	EXPECT_EQ(pt_mapped_pages(&u, 0, G1), 1);

	/* pt_free_tables drops the cache too: warm it, free t's lower half,
	 * let u reuse the pages, then map through t again. */
	ASSERT_EQ(pt_map_page(&t, 9 * M2, 0x80009000, PT_R, NULL), 0);
	ASSERT_EQ(pt_map_page(&t, 9 * M2 + K4, 0x8000a000, PT_R, NULL), 0);
	pt_free_tables(&t, 0, SV39_ROOT_UPPER);
	ASSERT_EQ(pt_map(&u, 3 * G1, 0x90000000, K4, PT_R, NULL), 0);
	ASSERT_EQ(pt_map(&u, 4 * G1, 0x90000000, K4, PT_R, NULL), 0);
	unsigned live = p->live;
	EXPECT_EQ(pt_map_page(&t, 9 * M2 + 2 * K4, 0x8000b000, PT_R, NULL), 0);
	EXPECT_EQ(p->live, live + 2);                 /* new L1 and L0 for t */
	EXPECT_EQ(pt_mapped_pages(&t, 0, SV39_LOWER_END), 1);
	EXPECT_EQ(pt_mapped_pages(&u, 0, SV39_LOWER_END), 3);
	EXPECT_EQ(pt_check(&t, 0, SV39_ENTRIES), 0);
	EXPECT_EQ(pt_check(&u, 0, SV39_ENTRIES), 0);
	pt_free_tables(&t, 0, SV39_ENTRIES);
	pt_free_tables(&u, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
	EXPECT_EQ(p->errors, 0);
}

/* Single pages and 2 MiB blocks over a few regions of both halves, against
 * a model of which page maps what: every result and translation agrees,
 * whichever path (cached, walked, general) each call took. */
#define MODEL_REGIONS 3
KTEST(pt, single_page_paths_match_a_model)
{
	SETUP(p, t);
	static const uint64_t base[MODEL_REGIONS] = {
		0x40000000, 0x40000000 + M2, SV39_UPPER_START + 4 * M2,
	};
	uint64_t *model = ktest_mem(MODEL_REGIONS * 512 * sizeof(uint64_t), 8);
	uint64_t rnd = 0x9e3779b97f4a7c15ull;

	ASSERT(model != NULL);
	for (int step = 0; step < 6000 && !KT_FAILED(); step++) {
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		unsigned r = (unsigned)(rnd % MODEL_REGIONS), i = (unsigned)(rnd >> 8) % 512;
		unsigned op = (unsigned)(rnd >> 20) % 16;
		uint64_t va = base[r] + i * K4, pa = 0x80000000ull + (rnd >> 40) * M2;
		uint64_t *m = &model[r * 512];
		unsigned n = 0;

		for (unsigned k = 0; k < 512; k++)
			n += m[k] != 0;
		if (op == 0) {                                /* 2 MiB block */
			int rc = pt_map(&t, base[r], pa, M2, PT_R, NULL);
			EXPECT_EQ(rc, n ? E_EXIST : 0);
			for (unsigned k = 0; !rc && k < 512; k++)
				m[k] = pa + k * K4;
		} else if (op == 1) {
			EXPECT_EQ(pt_unmap(&t, base[r], M2, NULL), (long)n);
			memset(m, 0, 512 * sizeof(uint64_t));
		} else if (op < 9) {
			int rc = op & 1 ? pt_map_page(&t, va, pa + i * K4, PT_R | PT_W, NULL)
					: pt_map(&t, va, pa + i * K4, K4, PT_R | PT_W, NULL);
			EXPECT_EQ(rc, m[i] ? E_EXIST : 0);
			if (!rc)
				m[i] = pa + i * K4;
		} else {
			long rc = op & 1 ? pt_unmap_page(&t, va, NULL) : pt_unmap(&t, va, K4, NULL);
			EXPECT_EQ(rc, m[i] ? 1 : 0);
			m[i] = 0;
		}
		for (unsigned k = 0; k < 512; k += 37) {
			uint64_t got = 0;
			int rc = pt_translate(&t, base[r] + k * K4, &got, NULL, NULL);
			EXPECT_EQ(rc, m[k] ? 0 : E_NOENT);
			if (m[k])
				EXPECT_EQ(got, m[k]);
		}
	}
	expect_torn_down(KT_CTX, p, &t);
}

/* Upper-half root entries may be copies of another tree's (vm shares the
 * kernel's): a walk through them is never cached, so a table the owner
 * frees is not written through the copy afterwards. */
KTEST(pt, single_page_cache_skips_shared_upper_half)
{
	SETUP(p, k);
	struct pt t, u;
	const uint64_t up = SV39_UPPER_START + 6 * M2;
	uint64_t *kr, *tr;

	ASSERT_EQ(pt_init(&t, &p->ops), 0);
	ASSERT_EQ(pt_init(&u, &p->ops), 0);
	k.keep_lo = SV39_ROOT_UPPER;
	k.keep_hi = SV39_ENTRIES;
	ASSERT_EQ(pt_map(&k, up + M2, 0x80000000, K4, PT_R, NULL), 0);   /* L1, L0 */
	kr = pool_va(p, k.root);
	tr = pool_va(p, t.root);
	for (unsigned i = SV39_ROOT_UPPER; i < SV39_ENTRIES; i++)
		tr[i] = kr[i];
	/* Through the copy: a page in a new L0 table, mapped and unmapped. */
	ASSERT_EQ(pt_map_page(&t, up + 3 * K4, 0x80003000, PT_R, NULL), 0);
	ASSERT_EQ(pt_unmap_page(&t, up + 3 * K4, NULL), 1);
	/* The owner replaces that empty table by a 2 MiB leaf; u reuses it. */
	ASSERT_EQ(pt_map(&k, up, 0x80200000, M2, PT_R, NULL), 0);
	ASSERT_EQ(pt_map_page(&u, 7 * M2, 0x90000000, PT_R, NULL), 0);
	EXPECT_EQ(pt_map_page(&t, up + 3 * K4, 0x80003000, PT_R, NULL), E_EXIST);
	EXPECT_EQ(pt_mapped_pages(&u, 0, G1), 1);
	EXPECT_EQ(pt_mapped_pages(&k, up, M2), 512);
	EXPECT_EQ(pt_check(&u, 0, SV39_ENTRIES), 0);
	for (unsigned i = SV39_ROOT_UPPER; i < SV39_ENTRIES; i++)
		tr[i] = 0;
	pt_free_tables(&t, 0, SV39_ENTRIES);
	pt_free_tables(&u, 0, SV39_ENTRIES);
	pt_free_tables(&k, 0, SV39_ENTRIES);
	EXPECT_EQ(p->live, 0);
	EXPECT_EQ(p->errors, 0);
}
