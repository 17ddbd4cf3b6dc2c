/* env.c - ktest's environment on the host: heap memory, pthreads. */
#include "../ktest.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BLOCKS 256
static void *blocks[MAX_BLOCKS];
static unsigned nblocks;

void *ktest_mem(size_t size, size_t align)
{
	void *p;

	if (nblocks == MAX_BLOCKS || align == 0 || (align & (align - 1)))
		return NULL;
	if (align < sizeof(void *))
		align = sizeof(void *);
	size = (size + align - 1) & ~(align - 1);
	if (posix_memalign(&p, align, size))
		return NULL;
	memset(p, 0, size);
	blocks[nblocks++] = p;
	return p;
}

void ktest_mem_reset(void)
{
	while (nblocks)
		free(blocks[--nblocks]);
}

unsigned ktest_ncpus(void)
{
	const char *s = getenv("KTEST_CPUS");
	long n = s ? atol(s) : 4;
	return n < 1 ? 1 : (unsigned)n;
}

unsigned ktest_stress_seconds(void)
{
	const char *s = getenv("KTEST_STRESS_SECONDS");
	long n = s ? atol(s) : 1;
	return n < 1 ? 1 : (unsigned)n;
}

void ktest_cpu_wait(void)
{
	sched_yield();
}

uint64_t ktest_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

struct par {
	void (*fn)(unsigned, void *);
	void *arg;
	unsigned i;
};

static void *trampoline(void *p)
{
	struct par *q = p;
	q->fn(q->i, q->arg);
	return NULL;
}

void ktest_parallel(unsigned n, void (*fn)(unsigned i, void *arg), void *arg)
{
	pthread_t th[256];
	struct par pa[256];

	if (n > 256)
		n = 256;
	for (unsigned i = 0; i < n; i++) {
		pa[i] = (struct par){ fn, arg, i };
		if (pthread_create(&th[i], NULL, trampoline, &pa[i])) {
			perror("ktest_parallel: pthread_create");
			abort();
		}
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}
