/* ktest_test.c - the test framework checks itself: memory and parallel runs. */
#include "ktest.h"

#include <string.h>

KTEST(ktest, mem_is_zeroed_and_aligned)
{
	unsigned char *p = ktest_mem(3 * 4096, 4096);

	ASSERT(p != NULL);
	EXPECT_EQ((uintptr_t)p & 4095, 0);
	for (unsigned i = 0; i < 3 * 4096; i++)
		if (p[i]) {
			EXPECT_EQ(p[i], 0);
			break;
		}
	EXPECT(ktest_mem(16, 3) == NULL);   /* alignment not a power of two */
}

static void count_cb(unsigned i, void *arg)
{
	unsigned *hits = arg;
	__atomic_fetch_add(&hits[i], 1, __ATOMIC_RELAXED);
}

KTEST(ktest, parallel_runs_each_index_once)
{
	unsigned hits[64];
	unsigned n = ktest_ncpus();

	if (n > 64)
		n = 64;
	memset(hits, 0, sizeof(hits));
	ktest_parallel(n, count_cb, hits);
	for (unsigned i = 0; i < n; i++)
		EXPECT_EQ(hits[i], 1);
}
