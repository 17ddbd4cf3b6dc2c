/* ktest_env.c - ktest's environment in the kernel: a memory arena, the
 * harts as parallel workers, and the bootargs' stress duration. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "ktest.h"

/* Tests take at most a few MiB each; the arena is reset after every test. */
#define ARENA_SIZE (24u << 20)

static _Alignas(4096) unsigned char arena[ARENA_SIZE];
static size_t arena_used;

void *ktest_mem(size_t size, size_t align)
{
	uintptr_t base = (uintptr_t)arena, p;

	if (align == 0 || (align & (align - 1)) || size == 0 || size > ARENA_SIZE)
		return NULL;
	p = (base + arena_used + align - 1) & ~(uintptr_t)(align - 1);
	if (p < base || p - base > ARENA_SIZE - size)
		return NULL;
	arena_used = p - base + size;
	memset((void *)p, 0, size);
	return (void *)p;
}

void ktest_mem_reset(void)
{
	arena_used = 0;
}

unsigned ktest_ncpus(void)
{
	return harts_online;
}

void ktest_parallel(unsigned n, void (*fn)(unsigned i, void *arg), void *arg)
{
	smp_run(n, fn, arg);
}

unsigned ktest_stress_seconds(void)
{
	return 1;
}
