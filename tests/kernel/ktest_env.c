/* ktest_env.c - ktest's environment in the kernel: memory from the
 * physical page layer (through the direct map), the harts as parallel
 * workers, and the stress duration; and the `test` program that runs the
 * suites the bootargs name (test=<suite>[,<suite>...], or test=all). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hart.h"
#include "kernel.h"
#include "ktest.h"
#include "mem.h"
#include "part.h"
#include "program.h"
#include "riscv.h"

#define MAX_BLOCKS 64

static struct {
	uintptr_t pa;
	size_t npages;
} blocks[MAX_BLOCKS];
static unsigned nblocks;

void *ktest_mem(size_t size, size_t align)
{
	size_t npages;
	uintptr_t pa;

	if (align == 0 || (align & (align - 1)) || size == 0 || nblocks == MAX_BLOCKS ||
	    size > ((size_t)1 << 34))
		return NULL;
	npages = (size + ENV_PAGE_SIZE - 1) / ENV_PAGE_SIZE;
	pa = pmem_alloc_pages(&kpmem, npages, align < ENV_PAGE_SIZE ? ENV_PAGE_SIZE : align,
			      0, PMEM_NODE_ANY);
	if (!pa)
		return NULL;
	blocks[nblocks].pa = pa;
	blocks[nblocks++].npages = npages;
	memset(pa_to_dmap(pa), 0, npages * ENV_PAGE_SIZE);
	return pa_to_dmap(pa);
}

void ktest_mem_reset(void)
{
	while (nblocks) {
		nblocks--;
		if (pmem_free_pages(&kpmem, blocks[nblocks].pa, blocks[nblocks].npages))
			panic("ktest_mem_reset: pmem refused a test block");
	}
}

unsigned ktest_ncpus(void)
{
	return harts_online;
}

void ktest_parallel(unsigned n, void (*fn)(unsigned i, void *arg), void *arg)
{
	smp_run(n, fn, arg);
}

void ktest_cpu_wait(void)
{
	wfi();       /* interrupts are on in a ktest_parallel worker: the tick wakes it */
}

uint64_t ktest_now_us(void)
{
	return time_us();
}

unsigned ktest_stress_seconds(void)
{
	return 1;
}

#define MAX_PATTERNS 32

static int test_main(const char *arg)
{
	static char list[256];
	const char *pat[MAX_PATTERNS];
	char *save;
	int n = 0;

	if (strlen(arg) >= sizeof(list)) {
		printf("test: list of suites longer than %zu characters\n", sizeof(list) - 1);
		return -1;
	}
	strcpy(list, arg);
	for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		if (n == MAX_PATTERNS) {
			printf("test: more than %d suites named\n", MAX_PATTERNS);
			return -1;
		}
		pat[n++] = s;
	}
	/* On an emulator each of n harts may get 1/n of a host core or less,
	 * while the guest's clock keeps the host's pace: a partition's CPU
	 * budget (its time asleep and in the kernel included) then runs out
	 * in far less of its own work. Partitions whose test is not about
	 * budgets get the default budget scaled as smp_test's deadlines are. */
	if (harts_online >= 8)
		part_set_default_budget(PART_BUDGET_MS * (harts_online / 4));
	return ktest_run(n, pat);
}

PROGRAM(test, test_main, "test=all|<suite>[.<name>][,...]: the in-kernel test suites")
