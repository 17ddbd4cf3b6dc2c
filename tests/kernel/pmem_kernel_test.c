/* pmem_kernel_test.c - the machine's own physical memory: every hart takes
 * pages until none is left, stamping each; no page is handed out twice;
 * everything comes back. On a NUMA board, pages come from the asking
 * hart's node while it has any. */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "hart.h"
#include "kernel.h"
#include "ktest.h"
#include "mem.h"

#define PG 4096ul

/* The pages taken, one bit each over [lo, lo + nbits pages), set with an
 * atomic or: a page handed out twice finds its bit set. Only one page in
 * `stride` (at most STAMP_MOST) is written (and read back), so the test costs the allocator's
 * work, not a write to every page of a large machine; the bitmap still sees
 * every page. */
#define STAMP_MIN   61       /* a prime: the sample lands on every page offset */
#define STAMP_MOST  8192     /* pages stamped at most: a guest page's first
				write cost up to 0.75 ms on the emulator's host */
#define STAMP_MAGIC 0x5a5a5a5a00000000ull

struct page_set {
	uint64_t lo, nbits;
	uint64_t *bits;
	uint64_t count[MAX_HARTS];
	unsigned dup[MAX_HARTS], out[MAX_HARTS], bad_free[MAX_HARTS];
	unsigned started;            /* harts that hold their first page */
	uint64_t stride;             /* one page in stride is stamped (a prime) */
};

/* The smallest prime >= STAMP_MIN that stamps at most STAMP_MOST of
 * `pages`. */
static uint64_t stamp_stride(uint64_t pages)
{
	uint64_t s = pages / STAMP_MOST > STAMP_MIN ? pages / STAMP_MOST : STAMP_MIN;

	for (;; s++) {
		uint64_t d = 2;

		while (d * d <= s && s % d)
			d++;
		if (d * d > s)
			return s;
	}
}

/* Until every hart holds its first page: then the race for the rest has
 * all of them in it, however the host schedules the emulated harts. */
static void wait_all_started(struct page_set *l)
{
	__atomic_fetch_add(&l->started, 1, __ATOMIC_ACQ_REL);
	for (unsigned spins = 0; __atomic_load_n(&l->started, __ATOMIC_ACQUIRE) < harts_online;
	     spins++)
		if (spins < 1000)
			env_cpu_relax();
		else
			ktest_cpu_wait();
}

static void take_all(unsigned i, void *arg)
{
	struct page_set *l = arg;
	uintptr_t pa;

	while ((pa = pmem_alloc_page(&kpmem)) != 0) {
		uint64_t b = (pa - l->lo) / PG, m = 1ull << (b % 64);

		if (l->count[i]++ == 0)
			wait_all_started(l);
		if (pa < l->lo || b >= l->nbits || pa % PG) {
			l->out[i]++;          /* not a page of RAM: lost to the test */
			continue;
		}
		if (__atomic_fetch_or(&l->bits[b / 64], m, __ATOMIC_RELAXED) & m)
			l->dup[i]++;
		if (b % l->stride == 0) {
			uint64_t *w = pa_to_dmap(pa);
			w[0] = STAMP_MAGIC ^ pa;
			w[1] = i;
		}
	}
	if (l->count[i] == 0)
		wait_all_started(l);     /* none left even for a first page: still arrive */
}

/* Mark [pa, pa + n pages), taken by hart 0 in one run, stamping the
 * sampled pages as take_all does; how many were already marked. */
static unsigned mark_run(struct page_set *l, uintptr_t pa, uint64_t n)
{
	unsigned dup = 0;

	for (uint64_t k = 0; k < n; k++, pa += PG) {
		uint64_t b = (pa - l->lo) / PG, m = 1ull << (b % 64);

		dup += (l->bits[b / 64] & m) != 0;
		l->bits[b / 64] |= m;
		if (b % l->stride == 0) {
			uint64_t *w = pa_to_dmap(pa);
			w[0] = STAMP_MAGIC ^ pa;
			w[1] = 0;
		}
	}
	return dup;
}

/* The bulk of RAM in runs (pmem_alloc_pages, halving the run when none
 * that long is left) until `tail` pages are left for the harts' race
 * (each bit checked and set as take_all does); the pages taken. */
#define BULK_RUN  32768ul     /* 128 MiB */
static uint64_t take_bulk(struct page_set *l, size_t tail, unsigned *dup)
{
	uint64_t taken = 0;

	for (uint64_t n = BULK_RUN; n;) {
		uintptr_t pa = pmem_avail(&kpmem) >= (tail + n) * PG ?
			       pmem_alloc_pages(&kpmem, n, 0, 0, PMEM_NODE_ANY) : 0;

		if (!pa) {
			n /= 2;
			continue;
		}
		*dup += mark_run(l, pa, n);
		taken += n;
	}
	return taken;
}

/* Free [pa, pa + n pages) in one call unless n is 0. */
static void free_run(struct page_set *l, unsigned i, uintptr_t pa, uint64_t n)
{
	if (n && pmem_free_pages(&kpmem, pa, n))
		l->bad_free[i]++;
}

/* A run handed to pmem_free_pages must lie in one RAM range and one zone. */
static bool starts_range(uintptr_t pa)
{
	if (pa == PMEM_DMA32_LIMIT)
		return true;
	for (unsigned i = 0; i < board->nmem; i++)
		if (pa == board->mem[i].start)
			return true;
	return false;
}

/* Hart i gives back the pages of its share of the bitmap: the stamped ones
 * one by one through its cache (pmem_free_page), the runs between them in
 * one locked call each (pmem_free_pages), so a large machine does not pay a
 * free-list insertion per page. */
static void give_back(unsigned i, void *arg)
{
	struct page_set *l = arg;
	uint64_t words = (l->nbits + 63) / 64, n = harts_online;
	uint64_t b0 = words * i / n * 64, b1 = words * (i + 1) / n * 64, run = 0;
	uintptr_t rs = 0;

	if (b1 > l->nbits)
		b1 = l->nbits;
	for (uint64_t b = b0; b < b1; b++) {
		uintptr_t pa = l->lo + b * PG;

		if (!(l->bits[b / 64] & (1ull << (b % 64)))) {
			free_run(l, i, rs, run);
			run = 0;
		} else if (b % l->stride == 0) {
			free_run(l, i, rs, run);
			run = 0;
			if (pmem_free_page(&kpmem, pa))
				l->bad_free[i]++;
		} else {
			if (run && starts_range(pa)) {
				free_run(l, i, rs, run);
				run = 0;
			}
			if (run++ == 0)
				rs = pa;
		}
	}
	free_run(l, i, rs, run);
}

/* All of RAM is taken and every page is checked, but only the last
 * TAIL_PER_HART pages per hart one at a time by every hart at once (the
 * race to exhaustion); the rest in long runs first (with 64 emulated harts
 * on a 2-core host, 521,000 contended single-page takes were 300 s). */
#define TAIL_PER_HART 512
KTEST(pmem, all_harts_take_every_page_once_and_give_all_back)
{
	static struct page_set l;
	uint64_t lo = ~0ull, hi = 0, total = 0, set = 0, stamped = 0, bulk, t[5];
	size_t before, bm_pages;
	uintptr_t bm_pa;
	unsigned dup = 0, out = 0, bad_free = 0, stamp_bad = 0;

	for (unsigned i = 0; i < board->nmem; i++) {
		if (board->mem[i].start < lo)
			lo = board->mem[i].start;
		if (board->mem[i].end > hi)
			hi = board->mem[i].end;
	}
	memset(&l, 0, sizeof(l));
	l.lo = lo & ~(PG - 1);
	l.nbits = (hi - l.lo + 1 + PG - 1) / PG;
	l.stride = stamp_stride(l.nbits);
	bm_pages = ((l.nbits + 63) / 64 * 8 + PG - 1) / PG;
	bm_pa = pmem_alloc_pages(&kpmem, bm_pages, 0, 0, PMEM_NODE_ANY);
	ASSERT(bm_pa != 0);
	l.bits = pa_to_dmap(bm_pa);
	memset(l.bits, 0, bm_pages * PG);
	before = pmem_avail(&kpmem);

	t[0] = ktest_now_us();
	bulk = take_bulk(&l, (size_t)TAIL_PER_HART * harts_online, &dup);
	t[1] = ktest_now_us();
	ktest_parallel(harts_online, take_all, &l);
	t[2] = ktest_now_us();
	EXPECT_LT(pmem_avail(&kpmem), PG);         /* nothing left */
	total = bulk;
	for (unsigned i = 0; i < harts_online; i++) {
		total += l.count[i];
		dup += l.dup[i];
		out += l.out[i];
		EXPECT_GE(l.count[i], 1);                 /* every hart got pages */
	}
	for (uint64_t b = 0; b < l.nbits; b++) {
		uintptr_t pa = l.lo + b * PG;
		const uint64_t *w;

		if (!(l.bits[b / 64] & (1ull << (b % 64))))
			continue;
		set++;
		if (b % l.stride)
			continue;
		w = pa_to_dmap(pa);
		stamped++;
		stamp_bad += w[0] != (STAMP_MAGIC ^ pa) || w[1] >= harts_online;
	}
	EXPECT_EQ(dup, 0);
	EXPECT_EQ(out, 0);
	EXPECT_EQ(stamp_bad, 0);
	EXPECT_EQ(set, total);
	EXPECT_EQ(total * PG, before);
	EXPECT_GE(stamped, total / l.stride / 2);
	printf("pmem: %u harts took %llu pages (%llu MiB; %llu in runs first), none twice; "
	       "%llu stamped\n", harts_online, (unsigned long long)total,
	       (unsigned long long)(total * PG >> 20), (unsigned long long)bulk,
	       (unsigned long long)stamped);

	t[3] = ktest_now_us();
	ktest_parallel(harts_online, give_back, &l);
	t[4] = ktest_now_us();
	printf("pmem: ms in runs %llu, race %llu, check %llu, give back %llu\n",
	       (unsigned long long)(t[1] - t[0]) / 1000, (unsigned long long)(t[2] - t[1]) / 1000,
	       (unsigned long long)(t[3] - t[2]) / 1000, (unsigned long long)(t[4] - t[3]) / 1000);
	for (unsigned i = 0; i < harts_online; i++)
		bad_free += l.bad_free[i];
	EXPECT_EQ(bad_free, 0);
	EXPECT_EQ(pmem_avail(&kpmem), before);
	EXPECT_EQ(pmem_free_pages(&kpmem, bm_pa, bm_pages), 0);
	EXPECT_EQ(pmem_check(&kpmem), 0);
}

#define NUMA_PAGES 256

static void local_pages(unsigned i, void *arg)
{
	unsigned *remote = arg;
	uintptr_t pages[NUMA_PAGES];
	int node = harts[i].numa_node < 0 ? 0 : harts[i].numa_node;

	for (unsigned k = 0; k < NUMA_PAGES; k++) {
		pages[k] = pmem_alloc_page(&kpmem);
		if (pages[k] && pmem_node_of(&kpmem, pages[k]) != node)
			remote[i]++;
	}
	for (unsigned k = 0; k < NUMA_PAGES; k++)
		if (pages[k])
			pmem_free_page(&kpmem, pages[k]);
}

KTEST(pmem, pages_come_from_the_asking_harts_node)
{
	unsigned remote[MAX_HARTS] = { 0 }, nodes = 0;
	int seen[8] = { 0 };

	for (unsigned i = 0; i < board->nmem; i++)
		if (board->mem[i].node >= 0 && board->mem[i].node < 8 && !seen[board->mem[i].node]++)
			nodes++;
	ktest_parallel(harts_online, local_pages, remote);
	for (unsigned i = 0; i < harts_online; i++)
		EXPECT_EQ(remote[i], 0);
	printf("pmem: %u NUMA node(s); every hart's pages came from its own node\n",
	       nodes ? nodes : 1);
}
