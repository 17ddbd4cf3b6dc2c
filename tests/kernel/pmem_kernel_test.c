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

struct page_list {
	uintptr_t head[MAX_HARTS];     /* pa of the first page, 0 = none */
	uint64_t count[MAX_HARTS];
};

/* A taken page records the next pa and who took it in its first words. */
static void take_all(unsigned i, void *arg)
{
	struct page_list *l = arg;
	uintptr_t pa;

	while ((pa = pmem_alloc_page(&kpmem)) != 0) {
		uint64_t *w = pa_to_dmap(pa);
		w[0] = l->head[i];
		w[1] = 0x5a5a000000000000ull | i;
		l->head[i] = pa;
		l->count[i]++;
	}
}

static void give_back(unsigned i, void *arg)
{
	struct page_list *l = arg;
	uintptr_t pa = l->head[i];

	while (pa) {
		uintptr_t next = ((uint64_t *)pa_to_dmap(pa))[0];
		pmem_free_page(&kpmem, pa);
		pa = next;
	}
	l->head[i] = 0;
}

KTEST(pmem, all_harts_take_every_page_once_and_give_all_back)
{
	static struct page_list l;
	uint64_t lo = ~0ull, hi = 0, total = 0, bits;
	size_t before, bm_pages;
	uintptr_t bm_pa;
	uint8_t *bm;
	unsigned dup = 0, stamp_bad = 0;

	for (unsigned i = 0; i < board->nmem; i++) {
		if (board->mem[i].start < lo)
			lo = board->mem[i].start;
		if (board->mem[i].end > hi)
			hi = board->mem[i].end;
	}
	bits = (hi - lo + 1) / PG;
	bm_pages = (bits / 8 + PG - 1) / PG;
	bm_pa = pmem_alloc_pages(&kpmem, bm_pages, 0, 0, PMEM_NODE_ANY);
	ASSERT(bm_pa != 0);
	bm = pa_to_dmap(bm_pa);
	memset(bm, 0, bm_pages * PG);
	before = pmem_avail(&kpmem);
	memset(&l, 0, sizeof(l));

	ktest_parallel(harts_online, take_all, &l);
	EXPECT_LT(pmem_avail(&kpmem), PG);         /* nothing left */
	for (unsigned i = 0; i < harts_online; i++) {
		for (uintptr_t pa = l.head[i]; pa; pa = ((uint64_t *)pa_to_dmap(pa))[0]) {
			uint64_t b = (pa - lo) / PG;
			if (((uint64_t *)pa_to_dmap(pa))[1] != (0x5a5a000000000000ull | i))
				stamp_bad++;
			if (bm[b / 8] & (1u << (b % 8)))
				dup++;
			bm[b / 8] |= (uint8_t)(1u << (b % 8));
		}
		total += l.count[i];
		EXPECT_GE(l.count[i], 1);                 /* every hart got pages */
	}
	EXPECT_EQ(dup, 0);
	EXPECT_EQ(stamp_bad, 0);
	EXPECT_EQ(total * PG, before);
	printf("pmem: %u harts took %llu pages (%llu MiB), none twice\n", harts_online,
	       (unsigned long long)total, (unsigned long long)(total * PG >> 20));

	ktest_parallel(harts_online, give_back, &l);
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
