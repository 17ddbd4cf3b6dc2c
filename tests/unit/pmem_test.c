/* pmem_test.c - suite pmem: accounting, zones, alignment, NUMA preference,
 * refusals and an all-CPU allocate-everything run on private instances.
 *
 * Test memory stands in for RAM; its "physical" addresses are made up and
 * va_offset maps them to the buffer, which also exercises the pa/va split.
 */
#include "ktest.h"
#include "pmem.h"

#include <stdio.h>
#include <string.h>

#define PG  4096ul
#define MB  (1024ul * 1024)

/* CPU indexes of the instances below: every one the code supports, so any
 * CPU a test runs on has a cache (the small-count tests give fewer). */
#define NCPU  ENV_MAX_CPUS
/* What pmem_init carves from the test RAM for NCPU CPUs. */
#define PCPU  pmem_percpu_bytes(NCPU, false)

/* A pmem over `size` bytes of test memory posing as pa [pa_base, +size). */
static pmem_t *mkpmem(size_t size, size_t align, uint64_t pa_base,
		      const struct pmem_range *resv, unsigned nresv, int node1_half)
{
	pmem_t *pm = ktest_mem(sizeof(*pm), 64);
	char *m = ktest_mem(size, align);
	struct pmem_range ram[2] = {
		{ pa_base, size, node1_half ? 0 : -1 },
		{ pa_base + size / 2, size / 2, 1 },
	};
	struct pmem_config cfg = {
		.ram = ram, .nram = 1, .resv = resv, .nresv = nresv,
		.va_offset = (uintptr_t)m - pa_base, .ncpus = NCPU,
	};

	if (!pm || !m)
		return NULL;
	if (node1_half) {
		ram[0].size = size / 2;
		cfg.nram = 2;
	}
	return pmem_init(pm, &cfg) ? NULL : pm;
}

static uint64_t *va(pmem_t *pm, uintptr_t pa)
{
	return (uint64_t *)(pa + pm->va_offset);
}

KTEST(pmem, init_refusals)
{
	pmem_t *pm = ktest_mem(sizeof(*pm), 64);
	struct pmem_range ram[2] = { { 0x80000000, MB, 0 }, { 0x80080000, MB, 1 } };
	struct pmem_config cfg = { .ram = ram, .nram = 2, .ncpus = NCPU };

	ASSERT(pm != NULL);
	EXPECT_EQ(pmem_init(pm, &cfg), E_EXIST);        /* RAM ranges overlap */
	cfg.nram = 0;
	EXPECT_EQ(pmem_init(pm, &cfg), E_INVAL);
	cfg.nram = 1;
	ram[0].size = 0;
	EXPECT_EQ(pmem_init(pm, &cfg), E_INVAL);
	ram[0].size = MB;
	ram[0].node = PMEM_MAX_NODES;
	EXPECT_EQ(pmem_init(pm, &cfg), E_INVAL);
	ram[0].node = 0;
	ram[0].base = UINT64_MAX - 4096;
	EXPECT_EQ(pmem_init(pm, &cfg), E_RANGE);        /* wraps */
	ram[0].base = 0x80000000;
	EXPECT_EQ(pmem_init(NULL, &cfg), E_INVAL);
	cfg.ncpus = 0;                                  /* the count is required */
	EXPECT_EQ(pmem_init(pm, &cfg), E_INVAL);
	cfg.ncpus = ENV_MAX_CPUS + 1;
	EXPECT_EQ(pmem_init(pm, &cfg), E_INVAL);
	/* A real instance (test memory) for the node refusals. */
	char *m = ktest_mem(MB, PG);
	ASSERT(m != NULL);
	ram[0].base = (uintptr_t)m;
	cfg.ncpus = 3;
	ASSERT_EQ(pmem_init(pm, &cfg), 0);
	EXPECT_EQ(pmem_set_cpu_node(pm, 3, 0), E_INVAL);          /* >= ncpus */
	EXPECT_EQ(pmem_set_cpu_node(pm, ENV_MAX_CPUS, 0), E_INVAL);
	EXPECT_EQ(pmem_set_cpu_node(pm, 0, PMEM_MAX_NODES), E_INVAL);
	EXPECT_EQ(pmem_set_cpu_node(pm, 2, 0), 0);
	/* RAM too small for the per-CPU tables: refused. */
	ram[0].size = PG;
	cfg.ncpus = ENV_MAX_CPUS;
	EXPECT_EQ(pmem_init(pm, &cfg), E_NOMEM);
}

/* The per-CPU tables are carved from the RAM pmem manages and counted as
 * reserved: a smaller CPU count leaves more memory free. */
KTEST(pmem, percpu_tables_sized_by_cpu_count)
{
	const uint64_t B = 0x80000000;
	pmem_t *pm = ktest_mem(sizeof(*pm), 64);
	char *m = ktest_mem(MB, PG);
	struct pmem_range ram = { B, MB, -1 };
	struct pmem_config cfg = { .ram = &ram, .nram = 1, .va_offset = (uintptr_t)m - B };
	const unsigned counts[] = { 1, 4, 8, 64 };
	struct pmem_stats st;

	ASSERT(pm && m);
	EXPECT_EQ(pmem_percpu_bytes(1, false), PG);
	EXPECT_EQ(pmem_percpu_bytes(4, false), PG);         /* 4 x 512 + 4 */
	EXPECT_EQ(pmem_percpu_bytes(8, false), 2 * PG);     /* 8 x 512 + 8 */
	EXPECT_EQ(pmem_percpu_bytes(64, false), 9 * PG);    /* 64 x 512 + 64 */
	EXPECT_EQ(pmem_percpu_bytes(64, true), PG);         /* node table only */
	for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		cfg.ncpus = counts[i];
		ASSERT_EQ(pmem_init(pm, &cfg), 0);
		pmem_stats(pm, &st);
		EXPECT_EQ(pm->ncpus, counts[i]);
		EXPECT_EQ(st.percpu, pmem_percpu_bytes(counts[i], false));
		EXPECT_EQ(st.reserved, st.percpu);
		EXPECT_EQ(st.free, MB - st.percpu);
		EXPECT_EQ(st.total, st.free + st.reserved);
		/* The tables lie inside the RAM and are never handed out. */
		EXPECT(pm->percpu_pa >= B && pm->percpu_pa + pm->percpu_bytes <= B + MB);
		uintptr_t pa;
		size_t n = 0;
		while ((pa = pmem_alloc_pages(pm, 1, 0, 0, PMEM_NODE_ANY))) {
			EXPECT(pa + PG <= pm->percpu_pa || pa >= pm->percpu_pa + pm->percpu_bytes);
			n++;
		}
		EXPECT_EQ(n * PG, MB - st.percpu);
		EXPECT_EQ(pmem_check(pm), 0);
	}
}

/* CPU index >= ncpus: no cache and no node entry, so every call takes the
 * lock; results stay right. Run on every CPU against an instance for one
 * CPU: all but index 0 are past it (the host's threads and the guest's
 * harts alike have indexes up to ktest_ncpus() - 1 or more). */
struct few {
	pmem_t *pm;
	unsigned bad[64];
};

static void few_cpus_worker(unsigned i, void *arg)
{
	struct few *f = arg;
	uintptr_t p[PMEM_PCPU_PAGES + 4];
	unsigned me = env_cpu();

	for (unsigned k = 0; k < PMEM_PCPU_PAGES + 4; k++) {
		p[k] = pmem_alloc_page(f->pm);
		if (!p[k])
			f->bad[i]++;
	}
	for (unsigned k = 0; k < PMEM_PCPU_PAGES + 4; k++)
		if (p[k] && pmem_free_page(f->pm, p[k]))
			f->bad[i]++;
	if (me >= f->pm->ncpus && pmem_set_cpu_node(f->pm, me, 0) != E_INVAL)
		f->bad[i] += 1000;
	pmem_flush_cpu(f->pm);
}

KTEST(pmem, cpu_index_past_ncpus_is_served_uncached)
{
	const uint64_t B = 0x80000000;
	pmem_t *pm = ktest_mem(sizeof(*pm), 64);
	unsigned n = ktest_ncpus() > 64 ? 64 : ktest_ncpus();
	/* Room for every worker's pages at once, plus caches and tables. */
	size_t size = ((n * (PMEM_PCPU_PAGES + 4) * PG) + 2 * MB) & ~(MB - 1);
	char *m = ktest_mem(size, PG);
	struct pmem_range ram = { B, size, -1 };
	struct pmem_config cfg = { .ram = &ram, .nram = 1, .va_offset = (uintptr_t)m - B,
				   .ncpus = 1 };
	struct few *f = ktest_mem(sizeof(*f), 8);
	struct pmem_stats st;
	size_t start;

	ASSERT(pm && m && f);
	ASSERT_EQ(pmem_init(pm, &cfg), 0);
	/* Past ncpus a second free is caught at once, on the locked path. */
	if (env_cpu() >= 1) {
		uintptr_t p = pmem_alloc_page(pm);
		ASSERT(p != 0);
		EXPECT_EQ(pmem_free_page(pm, p), 0);
		EXPECT_EQ(pmem_free_page(pm, p), E_EXIST);
		EXPECT_EQ(pmem_set_cpu_node(pm, env_cpu(), 0), E_INVAL);
	}
	start = pmem_avail(pm);
	f->pm = pm;
	ktest_parallel(n, few_cpus_worker, f);
	for (unsigned i = 0; i < n; i++)
		EXPECT_EQ(f->bad[i], 0);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.cached, 0);                /* each worker flushed its own */
	EXPECT_EQ(st.percpu, PG);
	EXPECT_EQ(pmem_avail(pm), start);
	EXPECT_EQ(pmem_check(pm), 0);
	if (n > 1)
		EXPECT_GE(st.slow_allocs, PMEM_PCPU_PAGES + 4);    /* someone was past ncpus */
}

KTEST(pmem, reservations_clip_and_account)
{
	const uint64_t B = 0x80000000;
	struct pmem_range resv[4] = {
		{ B - 4 * PG, 6 * PG, -1 },              /* over the RAM start */
		{ B + PG, 4 * PG + 100, -1 },            /* overlaps, ends mid-page */
		{ B + 2 * PG, PG, -1 },                  /* inside the previous one */
		{ B + MB - PG, 64 * PG, -1 },            /* past the RAM end */
	};
	pmem_t *pm = mkpmem(MB, PG, B, resv, 4, 0);
	struct pmem_stats st;

	ASSERT(pm != NULL);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.total, MB);
	/* [B, B+6P), the last page and the per-CPU tables */
	EXPECT_EQ(st.reserved, 7 * PG + PCPU);
	EXPECT_EQ(st.percpu, PCPU);
	EXPECT_EQ(st.free, MB - 7 * PG - PCPU);
	EXPECT_EQ(st.total, st.free + st.reserved);
	EXPECT_EQ(pmem_avail(pm), MB - 7 * PG - PCPU);
	EXPECT_EQ(pmem_check(pm), 0);
	/* Every page handed out lies outside the reservations. */
	uintptr_t pa;
	size_t n = 0;
	while ((pa = pmem_alloc_pages(pm, 1, 0, 0, PMEM_NODE_ANY))) {
		EXPECT(pa >= B + 6 * PG && pa < B + MB - PG);
		n++;
	}
	EXPECT_EQ(n, MB / PG - 7 - PCPU / PG);
	EXPECT_EQ(pmem_avail(pm), 0);
	pmem_banner(pm);
}

KTEST(pmem, page_alloc_free_and_refusals)
{
	const uint64_t B = 0x80000000;
	pmem_t *pm = mkpmem(MB, PG, B, NULL, 0, 0);
	uintptr_t p, q;
	size_t start;

	ASSERT(pm != NULL);
	start = pmem_avail(pm);
	p = pmem_alloc_page(pm);
	ASSERT(p != 0);
	EXPECT_EQ(p % PG, 0);
	EXPECT(p >= B && p < B + MB);
	*va(pm, p) = 0x1234;                          /* the page is usable */
	EXPECT_EQ(pmem_avail(pm), start - PG);
	EXPECT_EQ(pmem_free_page(pm, p + 8), E_ALIGN);
	EXPECT_EQ(pmem_free_page(pm, B + MB), E_RANGE);     /* outside RAM */
	EXPECT_EQ(pmem_free_page(pm, B - PG), E_RANGE);
	EXPECT_EQ(pmem_free_page(pm, 0), E_RANGE);
	EXPECT_EQ(pmem_avail(pm), start - PG);
	EXPECT_EQ(pmem_free_page(pm, p), 0);
	EXPECT_EQ(pmem_avail(pm), start);
	/* Locked path: a double free is caught by LMM. */
	q = pmem_alloc_pages(pm, 3, 0, 0, PMEM_NODE_ANY);
	ASSERT(q != 0);
	EXPECT_EQ(pmem_free_pages(pm, q, 3), 0);
	EXPECT_EQ(pmem_free_pages(pm, q, 3), E_EXIST);
	EXPECT_EQ(pmem_free_pages(pm, q + PG, 1), E_EXIST);
	EXPECT_EQ(pmem_free_pages(pm, q, 0), E_INVAL);
	EXPECT_EQ(pmem_free_pages(pm, B + MB - PG, 2), E_RANGE);   /* runs past RAM */
	EXPECT(pmem_alloc_pages(pm, 0, 0, 0, PMEM_NODE_ANY) == 0);
	EXPECT(pmem_alloc_pages(pm, 1, 3 * PG, 0, PMEM_NODE_ANY) == 0);  /* not a power of 2 */
	EXPECT(pmem_alloc_pages(pm, 1, 2048, 0, PMEM_NODE_ANY) == 0);    /* below a page */
	EXPECT(pmem_alloc_pages(pm, 1, 0, 0x80, PMEM_NODE_ANY) == 0);    /* unknown flag */
	EXPECT(pmem_alloc_pages(pm, 1, 0, 0, -2) == 0);
	EXPECT(pmem_alloc_pages(pm, SIZE_MAX / 2, 0, 0, PMEM_NODE_ANY) == 0);
	EXPECT_EQ(pmem_avail(pm), start);
	EXPECT_EQ(pmem_check(pm), 0);
}

KTEST(pmem, cache_double_free_caught_at_lmm)
{
	pmem_t *pm = mkpmem(MB, PG, 0x80000000, NULL, 0, 0);
	struct pmem_stats st;
	uintptr_t p;

	ASSERT(pm != NULL);
	p = pmem_alloc_pages(pm, 1, 0, 0, PMEM_NODE_ANY);
	ASSERT(p != 0);
	EXPECT_EQ(pmem_free_pages(pm, p, 1), 0);
	/* The cache path cannot see LMM: the page is accepted into the cache, */
	EXPECT_EQ(pmem_free_page(pm, p), 0);
	/* pmem_check spots it, */
	EXPECT_EQ(pmem_check(pm), E_CORRUPT);
	/* and the flush to LMM refuses the second copy. */
	pmem_flush_cpu(pm);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.refused, 1);
	EXPECT_EQ(st.cached, 0);
	EXPECT_EQ(pmem_avail(pm), MB - PCPU);
	EXPECT_EQ(pmem_check(pm), 0);
}

KTEST(pmem, double_free_into_own_cache)
{
	pmem_t *pm = mkpmem(MB, PG, 0x80000000, NULL, 0, 0);
	uintptr_t p;
	int rc;

	ASSERT(pm != NULL);
	p = pmem_alloc_page(pm);
	ASSERT(p != 0);
	EXPECT_EQ(pmem_free_page(pm, p), 0);
	rc = pmem_free_page(pm, p);
	if (rc == 0) {
		/* Release build: accepted into the cache; pmem_check sees it. */
		EXPECT_EQ(pmem_check(pm), E_CORRUPT);
	} else {
		EXPECT_EQ(rc, E_EXIST);                 /* PMEM_DEBUG build */
	}
	/* Either way the flush leaves one copy in LMM and nothing corrupt. */
	pmem_flush_cpu(pm);
	EXPECT_EQ(pmem_avail(pm), MB - PCPU);
	EXPECT_EQ(pmem_check(pm), 0);
}

KTEST(pmem, natural_alignment_with_unaligned_offset)
{
	/* Buffer only page-aligned, pa base 2 MiB-aligned: the 2 MiB run must
	 * be aligned in pa, not va. */
	pmem_t *pm = ktest_mem(sizeof(pmem_t), 64);
	char *m = ktest_mem(6 * MB + PG, 2 * MB);
	const uint64_t B = 0x80000000;
	struct pmem_range ram = { B, 6 * MB, -1 };
	struct pmem_config cfg = { .ram = &ram, .nram = 1,
				   .va_offset = (uintptr_t)(m + PG) - B, .ncpus = NCPU };
	uintptr_t p, q;

	ASSERT(pm && m);
	ASSERT_EQ(pmem_init(pm, &cfg), 0);
	ASSERT(pmem_alloc_page(pm) != 0);               /* spoil the start */
	p = pmem_alloc_pages(pm, 512, 2 * MB, 0, PMEM_NODE_ANY);
	ASSERT(p != 0);
	EXPECT_EQ(p % (2 * MB), 0);
	q = pmem_alloc_pages(pm, 512, 2 * MB, 0, PMEM_NODE_ANY);
	EXPECT_EQ(q % (2 * MB), 0);
	EXPECT(q != p);
	EXPECT(pmem_alloc_pages(pm, 512, 2 * MB, 0, PMEM_NODE_ANY) == 0); /* none left */
	EXPECT(pmem_alloc_pages(pm, 1, 1ul << 30, 0, PMEM_NODE_ANY) == 0);
	memset(va(pm, p), 0xab, 2 * MB);                 /* inside the buffer */
	EXPECT_EQ(pmem_free_pages(pm, p, 512), 0);
	EXPECT_EQ(pmem_free_pages(pm, q, 512), 0);
	EXPECT_EQ(pmem_check(pm), 0);
}

KTEST(pmem, dma32_zone_and_priority)
{
	/* 2 MiB of RAM straddling 4 GiB: a DMA32 region below, a high one above. */
	const uint64_t B = PMEM_DMA32_LIMIT - MB;
	pmem_t *pm = mkpmem(2 * MB, PG, B, NULL, 0, 0);
	uintptr_t p;
	size_t n = 0;

	ASSERT(pm != NULL);
	EXPECT_EQ(pm->nregions, 2);
	/* The per-CPU tables come from high memory, sparing DMA32. */
	EXPECT_GE(pm->percpu_pa, PMEM_DMA32_LIMIT);
	pmem_banner(pm);
	p = pmem_alloc_page(pm);
	EXPECT(p >= PMEM_DMA32_LIMIT);                  /* high memory first */
	p = pmem_alloc_pages(pm, 1, 0, PMEM_DMA32, PMEM_NODE_ANY);
	EXPECT(p >= B && p < PMEM_DMA32_LIMIT);
	p = pmem_alloc_pages(pm, 256, 0, PMEM_DMA32, PMEM_NODE_ANY);
	EXPECT(p == 0);                                 /* one page of it is used */
	while ((p = pmem_alloc_pages(pm, 1, 0, 0, PMEM_NODE_ANY)) >= PMEM_DMA32_LIMIT)
		n++;
	/* rest of high, minus the cache and the per-CPU tables */
	EXPECT_EQ(n, 256 - PMEM_PCPU_BATCH - PCPU / PG);
	EXPECT(p >= B && p < PMEM_DMA32_LIMIT);         /* then low memory */
	EXPECT_EQ(pmem_check(pm), 0);
}

struct par {
	pmem_t *pm;
	uintptr_t *pages;       /* per CPU: max pages each */
	size_t max;
	size_t got[64];
	unsigned foreign_then_local[64];
	bool numa;
};

static void grab_all(unsigned i, void *arg)
{
	struct par *a = arg;
	uintptr_t *mine = a->pages + i * a->max, pa;
	int node = i % 2;
	bool foreign = false;

	if (a->numa)
		pmem_set_cpu_node(a->pm, env_cpu(), node);
	while ((pa = pmem_alloc_page(a->pm))) {
		if (a->got[i] == a->max)
			break;
		*va(a->pm, pa) = i + 1;                 /* stamp */
		mine[a->got[i]++] = pa;
		if (a->numa) {
			bool local = pmem_node_of(a->pm, pa) == node;
			if (local && foreign)
				a->foreign_then_local[i]++;
			foreign |= !local;
		}
	}
}

static void free_all(unsigned i, void *arg)
{
	struct par *a = arg;

	for (size_t k = 0; k < a->got[i]; k++)
		if (pmem_free_page(a->pm, a->pages[i * a->max + k]))
			a->foreign_then_local[i] += 1000;   /* reported below */
	/* Host threads do not come back with the same CPU index; leave no
	 * pages stranded in this one's cache. */
	pmem_flush_cpu(a->pm);
}

/* Every CPU takes pages until none is left; no page twice; all back. */
static void all_cpus_all_pages(struct ktest_ctx *kt__, bool numa)
{
	const uint64_t B = 0x80000000;
	pmem_t *pm = mkpmem(4 * MB, PG, B, NULL, 0, numa);
	unsigned n = ktest_ncpus() > 64 ? 64 : ktest_ncpus();
	struct par *a = ktest_mem(sizeof(*a), 8);
	uint8_t *seen = ktest_mem(4 * MB / PG, 8);
	size_t start, total;

	ASSERT(pm && a && seen);
	a->pm = pm;
	a->max = 4 * MB / PG;
	a->numa = numa;
	a->pages = ktest_mem(n * a->max * sizeof(uintptr_t), 8);
	ASSERT(a->pages != NULL);
	start = pmem_avail(pm);
	for (unsigned round = 0; round < 2 && !KT_FAILED(); round++) {
		memset(a->got, 0, sizeof(a->got));
		memset(seen, 0, 4 * MB / PG);
		ktest_parallel(n, grab_all, a);
		total = 0;
		for (unsigned i = 0; i < n; i++) {
			for (size_t k = 0; k < a->got[i]; k++) {
				uintptr_t pa = a->pages[i * a->max + k];
				size_t idx = (pa - B) / PG;
				ASSERT(pa >= B && pa < B + 4 * MB);
				EXPECT_EQ(seen[idx], 0);        /* handed out twice */
				seen[idx] = 1;
				EXPECT_EQ(*va(pm, pa), i + 1);  /* stamp intact */
			}
			total += a->got[i];
			EXPECT_EQ(a->foreign_then_local[i], 0);
		}
		EXPECT_EQ(total * PG, start);
		EXPECT_EQ(pmem_avail(pm), 0);
		ktest_parallel(n, free_all, a);
		for (unsigned i = 0; i < n; i++)
			EXPECT_EQ(a->foreign_then_local[i], 0);
		EXPECT_EQ(pmem_avail(pm), start);
		EXPECT_EQ(pmem_check(pm), 0);
	}
}

KTEST(pmem, all_cpus_allocate_every_page)
{
	all_cpus_all_pages(KT_CTX, false);
}

KTEST(pmem, all_cpus_numa_local_first)
{
	all_cpus_all_pages(KT_CTX, true);
}

KTEST(pmem, numa_preference_then_fallback)
{
	const uint64_t B = 0x80000000;
	pmem_t *pm = mkpmem(2 * MB, PG, B, NULL, 0, 1);
	size_t n1 = 0, n0 = 0, start;
	uintptr_t pa;

	ASSERT(pm != NULL);
	ASSERT_EQ(pm->nnodes, 2);
	start = pmem_avail(pm);
	ASSERT_EQ(pmem_set_cpu_node(pm, env_cpu(), 1), 0);
	while ((pa = pmem_alloc_page(pm)) && pmem_node_of(pm, pa) == 1)
		n1++;
	EXPECT_EQ(n1, MB / PG);                         /* every node-1 page first */
	EXPECT_EQ(pmem_node_of(pm, pa), 0);
	EXPECT(pmem_alloc_pages(pm, 1, 0, PMEM_STRICT_NODE, 1) == 0);
	pa = pmem_alloc_pages(pm, 1, 0, PMEM_STRICT_NODE, 0);
	EXPECT_EQ(pmem_node_of(pm, pa), 0);
	while (pmem_alloc_page(pm))
		n0++;
	/* The per-CPU tables sit on node 0 (the boot CPU's). */
	ASSERT_EQ(pmem_node_of(pm, pm->percpu_pa), 0);
	EXPECT_EQ(n0 + 2, MB / PG - PCPU / PG);
	EXPECT_EQ(pmem_avail(pm), 0);
	/* Give everything back but the tables: node-0 pages bypass this CPU's
	 * node-1 cache. */
	uintptr_t t0 = pm->percpu_pa, t1 = t0 + pm->percpu_bytes;
	for (uintptr_t p = B + PG; p < B + 2 * MB; p += PG)
		if (p < t0 || p >= t1)
			EXPECT_EQ(pmem_free_page(pm, p), 0);
	if (B < t0)
		EXPECT_EQ(pmem_free_page(pm, B), 0);
	EXPECT_EQ(pmem_avail(pm), start);
	EXPECT_EQ(pmem_check(pm), 0);
	pmem_flush_cpu(pm);
	/* Node 1 in one block; node 0 in one, or two around the tables. */
	EXPECT_EQ(pm->lmm.regions->nblocks + pm->lmm.regions->next->nblocks,
		  t0 == B || t1 == B + MB ? 2 : 3);
}

KTEST(pmem, no_cache_takes_lock_every_time)
{
	pmem_t *pm = ktest_mem(sizeof(pmem_t), 64);
	char *m = ktest_mem(MB, PG);
	struct pmem_range ram = { (uintptr_t)m, MB, -1 };
	struct pmem_config cfg = { .ram = &ram, .nram = 1, .no_cache = true,
				   .ncpus = NCPU };
	struct pmem_stats st;
	uintptr_t p;

	ASSERT(pm && m);
	ASSERT_EQ(pmem_init(pm, &cfg), 0);              /* pa == va */
	p = pmem_alloc_page(pm);
	EXPECT(p >= (uintptr_t)m && p < (uintptr_t)m + MB);
	EXPECT_EQ(pmem_free_page(pm, p), 0);
	EXPECT_EQ(pmem_free_page(pm, p), E_EXIST);      /* caught at once */
	pmem_stats(pm, &st);
	EXPECT_EQ(st.slow_allocs, 1);
	EXPECT_EQ(st.slow_frees, 2);
	EXPECT_EQ(st.cached, 0);
	EXPECT_EQ(st.percpu, pmem_percpu_bytes(NCPU, true));   /* no caches */
	EXPECT_EQ(st.free, MB - st.percpu);
	EXPECT_EQ(pmem_check(pm), 0);
}

/* The free hot path trusts a per-CPU hint (the RAM range of the last page
 * it cached): refusals must still come out right once the hint is set, a
 * page of another range must still be taken, and remote pages must still
 * go to LMM. */
KTEST(pmem, hot_path_checks_with_hint_set)
{
	const uint64_t B = 0x80000000;
	pmem_t *pm = mkpmem(2 * MB, PG, B, NULL, 0, 0);
	struct pmem_stats st;
	uintptr_t p, q, pages[PMEM_PCPU_PAGES + 8];
	size_t start;

	ASSERT(pm != NULL);
	start = pmem_avail(pm);
	p = pmem_alloc_page(pm);
	ASSERT(p != 0);
	EXPECT_EQ(pmem_free_page(pm, p), 0);            /* sets the hint */
	p = pmem_alloc_page(pm);
	EXPECT_EQ(pmem_free_page(pm, p + 8), E_ALIGN);  /* inside the hinted range */
	EXPECT_EQ(pmem_free_page(pm, p + PG - 1), E_ALIGN);
	EXPECT_EQ(pmem_free_page(pm, B + 2 * MB), E_RANGE);
	EXPECT_EQ(pmem_free_page(pm, B - PG), E_RANGE);
	EXPECT_EQ(pmem_free_page(pm, 0), E_RANGE);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.refused, 5);
	EXPECT_EQ(pmem_avail(pm), start - PG);
	EXPECT_EQ(pmem_free_page(pm, p), 0);
	/* More frees than the cache holds: flushes, nothing lost. */
	for (unsigned i = 0; i < PMEM_PCPU_PAGES + 8; i++)
		ASSERT((pages[i] = pmem_alloc_page(pm)) != 0);
	for (unsigned i = 0; i < PMEM_PCPU_PAGES + 8; i++)
		EXPECT_EQ(pmem_free_page(pm, pages[i]), 0);
	pmem_stats(pm, &st);
	EXPECT_GE(st.flushes, 1);
	EXPECT_LE(st.cached, PMEM_PCPU_PAGES * PG);
	EXPECT_EQ(pmem_avail(pm), start);
	EXPECT_EQ(pmem_check(pm), 0);
	/* A run from the locked path, freed page by page through the cache. */
	q = pmem_alloc_pages(pm, 4, 0, 0, PMEM_NODE_ANY);
	ASSERT(q != 0);
	for (unsigned i = 0; i < 4; i++)
		EXPECT_EQ(pmem_free_page(pm, q + i * PG), 0);
	EXPECT_EQ(pmem_avail(pm), start);
	EXPECT_EQ(pmem_check(pm), 0);
	pmem_flush_cpu(pm);
}

KTEST(pmem, hint_follows_ranges_and_nodes)
{
	const uint64_t B = 0x80000000;
	pmem_t *pm = ktest_mem(sizeof(*pm), 64);
	char *m = ktest_mem(2 * MB, PG);
	/* Two ranges with a hole between them, same node; then two nodes. */
	struct pmem_range ram[2] = { { B, MB / 2, 0 }, { B + MB, MB / 2, 0 } };
	struct pmem_config cfg = { .ram = ram, .nram = 2, .va_offset = (uintptr_t)m - B,
				   .ncpus = NCPU };
	struct pmem_stats st;
	uintptr_t a, b;

	ASSERT(pm && m);
	ASSERT_EQ(pmem_init(pm, &cfg), 0);
	/* Every page through the locked path, then back through the cache:
	 * the hint moves between the two ranges, nothing is refused. */
	size_t n = 0;
	uintptr_t *all = ktest_mem(MB / PG * sizeof(uintptr_t), 8);
	ASSERT(all != NULL);
	while (n < MB / PG && (all[n] = pmem_alloc_pages(pm, 1, 0, 0, PMEM_NODE_ANY)))
		n++;
	ASSERT_EQ(n, (MB - PCPU) / PG);                 /* all but the per-CPU tables */
	EXPECT(all[0] / MB != all[n - 1] / MB);       /* both ranges */
	for (size_t i = 0; i < n; i++)                  /* front, back, front... */
		EXPECT_EQ(pmem_free_page(pm, all[i % 2 ? n - 1 - i / 2 : i / 2]), 0);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.refused, 0);
	EXPECT_EQ(pmem_avail(pm), MB - PCPU);
	EXPECT_EQ(pmem_check(pm), 0);
	a = pmem_alloc_page(pm);
	ASSERT(a != 0);
	EXPECT_EQ(pmem_free_page(pm, a), 0);            /* hint: a's range */
	EXPECT_EQ(pmem_free_page(pm, B + MB / 2), E_RANGE);   /* the hole */
	EXPECT_EQ(pmem_free_page(pm, B + MB - PG), E_RANGE);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.refused, 2);
	EXPECT_EQ(pmem_check(pm), 0);
	pmem_flush_cpu(pm);
	EXPECT_EQ(pmem_avail(pm), MB - PCPU);

	/* Node 1 for the second range: its pages bypass a node-0 CPU's cache
	 * even after that cache's hint was set by a local page. */
	ram[1].node = 1;
	ASSERT_EQ(pmem_init(pm, &cfg), 0);
	ASSERT_EQ(pmem_set_cpu_node(pm, env_cpu(), 0), 0);
	a = pmem_alloc_pages(pm, 1, 0, PMEM_STRICT_NODE, 0);
	b = pmem_alloc_pages(pm, 1, 0, PMEM_STRICT_NODE, 1);
	ASSERT(a && b);
	EXPECT_EQ(pmem_free_page(pm, a), 0);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.cached, PG);
	EXPECT_EQ(pmem_free_page(pm, b), 0);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.cached, PG);                       /* b went to LMM */
	EXPECT_EQ(st.slow_frees, 1);
	/* Moving this CPU to node 1 drops the hint: a node-0 page now goes
	 * to LMM too. */
	a = pmem_alloc_page(pm);                        /* from the cache: node 0 */
	ASSERT_EQ(pmem_node_of(pm, a), 0);
	ASSERT_EQ(pmem_set_cpu_node(pm, env_cpu(), 1), 0);
	EXPECT_EQ(pmem_free_page(pm, a), 0);
	pmem_stats(pm, &st);
	EXPECT_EQ(st.cached, 0);
	EXPECT_EQ(st.slow_frees, 2);
	EXPECT_EQ(pmem_avail(pm), MB - PCPU);
	EXPECT_EQ(pmem_check(pm), 0);
}
