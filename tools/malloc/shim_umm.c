/* shim_umm.c - the malloc shim's umm backend: one pool in a reservation
 * that the kernel backs only where it is touched (MAP_NORESERVE). The pool
 * size is fixed at build time (SHIM_UMM_POOL_MB): umm's bitmap, 1/128 of
 * the pool, is zeroed by umm_init, so it is resident from the start. */
#include "shim.h"
#include "umm.h"

#include <sys/mman.h>

#ifndef SHIM_UMM_POOL_MB
#define SHIM_UMM_POOL_MB 2048
#endif
#define POOL ((size_t)SHIM_UMM_POOL_MB << 20)

const char be_name[] = "umm";
static umm_t pool;
static uintptr_t lo, hi;

bool be_init(void)
{
	void *p = mmap(NULL, POOL, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED || umm_init(&pool, p, POOL))
		return false;
	lo = (uintptr_t)p;
	hi = lo + POOL;
	return true;
}

bool be_owns(const void *p) { return (uintptr_t)p - lo < hi - lo; }
void *be_alloc(size_t n) { return umm_alloc(&pool, n, 0); }
void *be_aligned(size_t n, size_t align) { return umm_alloc_aligned(&pool, n, align, 0); }
void *be_realloc(void *p, size_t n) { return umm_realloc(&pool, p, n); }
void be_free(void *p) { umm_free(&pool, p); }
size_t be_usable(const void *p) { return umm_usable_size(&pool, p); }
