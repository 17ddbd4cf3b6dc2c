/* lmm_bench.c - host figures for LMM and pmem, as ratios against peers
 * measured in the same run (no pass/fail):
 *  (a) lmm_alloc_gen with alignment and range constraints on a region cut
 *      into 100,000 free fragments, against a first-fit walk of an
 *      address-ordered singly linked list (nodes in the free blocks, as in
 *      the original LMM);
 *  (b) pmem page alloc+free through the per-CPU cache against the locked
 *      global path, on 1 and 4 threads;
 *  (c) pmem_init over 512 MiB (host time, for reference).
 */
#include "lmm.h"
#include "pmem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NFRAG   100000
#define ARENA   ((size_t)64 << 20)
#define NREQ    2000

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t rnd_state = 2463534242u;
static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

/* ---- baseline: address-ordered singly linked list ---- */

struct lnode {
	struct lnode *next;
	size_t size;
};

static uintptr_t list_first_fit(struct lnode *head, size_t size, int bits,
				uintptr_t lo, uintptr_t hi)
{
	uintptr_t mask = ((uintptr_t)1 << bits) - 1;

	for (struct lnode *n = head; n; n = n->next) {
		uintptr_t bs = (uintptr_t)n, be = bs + n->size;
		uintptr_t a = bs > lo ? bs : lo;
		a = (a + mask) & ~mask;
		if (a + size <= be && a + size <= hi)
			return a;
	}
	return 0;
}

/* Fragment layout shared by both structures, as offsets from the base:
 * mostly small blocks, every 997th one big enough for any request. */
static size_t frag_off[NFRAG], frag_len[NFRAG];

static size_t make_layout(void)
{
	size_t off = 64;

	for (unsigned i = 0; i < NFRAG; i++) {
		size_t len = (i % 997 == 0) ? 32768 : 64 + (rnd() % 8) * 64;
		frag_off[i] = off;
		frag_len[i] = len;
		off += len + 64;        /* a 64-byte allocated gap between */
	}
	return off;
}

static void bench_search(void)
{
	char *ta = aligned_alloc(1 << 20, ARENA), *la = aligned_alloc(1 << 20, ARENA);
	static lmm_t lmm;
	static lmm_region_t reg;
	struct lnode *head = NULL, **tail = &head;
	size_t end = make_layout();
	size_t sz[NREQ];
	uintptr_t lo[NREQ];
	double t0, t_tree, t_list;
	unsigned mismatch = 0, found = 0;

	if (!ta || !la || end > ARENA) {
		printf("lmm_bench: no memory\n");
		exit(1);
	}
	lmm_init(&lmm);
	lmm_add_region(&lmm, &reg, ta, ARENA, 0, 0);
	for (unsigned i = 0; i < NFRAG; i++) {
		lmm_add_free(&lmm, ta + frag_off[i], frag_len[i]);
		struct lnode *n = (struct lnode *)(la + frag_off[i]);
		n->size = frag_len[i];
		n->next = NULL;
		*tail = n;
		tail = &n->next;
	}
	if (lmm_check(&lmm) || reg.nblocks != NFRAG) {
		printf("lmm_bench: setup failed (%zu blocks)\n", reg.nblocks);
		exit(1);
	}
	for (unsigned i = 0; i < NREQ; i++) {
		sz[i] = 4096 + (rnd() % 4) * 4096;              /* 4..16 KiB */
		lo[i] = rnd() % (end - 65536);                   /* range offset */
	}
	t0 = now();
	uintptr_t tres[NREQ];
	for (unsigned i = 0; i < NREQ; i++) {
		void *p = lmm_alloc_gen(&lmm, sz[i], 0, 12, 0, (uintptr_t)ta + lo[i],
					ARENA - lo[i]);
		tres[i] = p ? (uintptr_t)p - (uintptr_t)ta : 0;
		if (p)
			lmm_free(&lmm, p, sz[i]);
	}
	t_tree = now() - t0;
	t0 = now();
	for (unsigned i = 0; i < NREQ; i++) {
		uintptr_t a = list_first_fit(head, sz[i], 12, (uintptr_t)la + lo[i],
					     (uintptr_t)la + ARENA);
		uintptr_t r = a ? a - (uintptr_t)la : 0;
		found += a != 0;
		mismatch += r != tres[i];
	}
	t_list = now() - t0;
	printf("lmm search: %u fragments, %u requests (4-16 KiB, 4 KiB aligned, range-bound), %u found\n",
	       NFRAG, NREQ, found);
	printf("  lmm_alloc_gen+lmm_free (treap)  %10.0f ns/op\n", t_tree / NREQ * 1e9);
	printf("  first-fit list walk (search)   %10.0f ns/op\n", t_list / NREQ * 1e9);
	printf("  ratio list/treap               %10.1fx  (target >= 20x)%s\n",
	       t_list / t_tree, mismatch ? "  RESULTS DIFFER" : "");
	free(ta);
	free(la);
}

/* ---- pmem: cache against the global path ---- */

struct pargs {
	pmem_t *pm;
	bool cached;
	unsigned iters;
};

static void *page_loop(void *arg)
{
	struct pargs *a = arg;
	uintptr_t p[8];

	for (unsigned i = 0; i < a->iters; i++) {
		unsigned k = i % 8 + 1;             /* short bursts, like real use */
		for (unsigned j = 0; j < k; j++)
			p[j] = a->cached ? pmem_alloc_page(a->pm)
					 : pmem_alloc_pages(a->pm, 1, 0, 0, PMEM_NODE_ANY);
		for (unsigned j = 0; j < k; j++)
			if (a->cached)
				pmem_free_page(a->pm, p[j]);
			else
				pmem_free_pages(a->pm, p[j], 1);
	}
	return NULL;
}

static double run_pages(pmem_t *pm, bool cached, unsigned nthreads, unsigned iters)
{
	pthread_t th[16];
	struct pargs a = { pm, cached, iters };
	double t0 = now();

	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, page_loop, &a);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	/* ns per alloc+free pair, per thread */
	return (now() - t0) / ((double)iters * 4.5) * 1e9;
}

static void bench_pages(void)
{
	static pmem_t pm;
	char *m = aligned_alloc(1 << 20, ARENA);
	struct pmem_range ram = { (uintptr_t)m, ARENA, -1 };
	struct pmem_config cfg = { .ram = &ram, .nram = 1, .ncpus = ENV_MAX_CPUS };
	unsigned iters = 400000;

	if (!m || pmem_init(&pm, &cfg)) {
		printf("lmm_bench: pmem_init failed\n");
		exit(1);
	}
	printf("pmem page alloc+free (bursts of 1..8 pages):\n");
	for (unsigned n = 1; n <= 4; n *= 4) {
		double c = run_pages(&pm, true, n, iters);
		double g = run_pages(&pm, false, n, iters);
		printf("  %u thread%s: per-CPU cache %7.1f ns, global lock %7.1f ns, ratio %.1fx\n",
		       n, n > 1 ? "s" : " ", c, g, g / c);
	}
	if (pmem_check(&pm))
		printf("  pmem_check FAILED\n");
	free(m);
}

static void bench_boot(void)
{
	static pmem_t pm;
	size_t size = (size_t)512 << 20;
	char *m = aligned_alloc(1 << 21, size);
	struct pmem_range ram = { 0x80000000, size, -1 };
	struct pmem_range resv[3] = {
		{ 0x80000000, 0x80000, -1 },        /* firmware */
		{ 0x80200000, 0x200000, -1 },       /* kernel image */
		{ 0x9fe00000, 0x10000, -1 },        /* FDT */
	};
	struct pmem_config cfg = { .ram = &ram, .nram = 1, .resv = resv, .nresv = 3,
				   .va_offset = (uintptr_t)m - 0x80000000, .ncpus = 4 };
	double t0;

	if (!m)
		return;
	t0 = now();
	int rc = pmem_init(&pm, &cfg);
	printf("pmem_init of 512 MiB with 3 reservations: %.1f us (rc %d, %zu KiB free)\n",
	       (now() - t0) * 1e6, rc, pmem_avail(&pm) >> 10);
	free(m);
}

int main(void)
{
	bench_search();
	bench_pages();
	bench_boot();
	return 0;
}
