/* shim_kmalloc.c - the malloc shim's kmalloc backend: the global kmalloc
 * instance on a page source that LMM carves from one reservation
 * (MAP_NORESERVE: only touched pages are backed). Pages given back lose
 * their contents (madvise) except the first, where LMM keeps its node. */
#define _GNU_SOURCE
#include "shim.h"
#include "kmalloc.h"
#include "lmm.h"

#include <pthread.h>
#include <sys/mman.h>

#ifndef SHIM_KMALLOC_HEAP_GB
#define SHIM_KMALLOC_HEAP_GB 64
#endif
#define HEAP ((size_t)SHIM_KMALLOC_HEAP_GB << 30)
#define PAGE ENV_PAGE_SIZE
#define TTL_NS 100000000u       /* cached blocks older than 0.1 s go back */

const char be_name[] = "kmalloc";
static lmm_t lmm;
static lmm_region_t region;
static pthread_mutex_t lmm_mu = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t lo, hi;

static void *get_pages(void *ctx, size_t np)
{
	pthread_mutex_lock(&lmm_mu);
	void *p = lmm_alloc_aligned(&lmm, np * PAGE, 0, ENV_PAGE_SHIFT, 0);
	pthread_mutex_unlock(&lmm_mu);
	return p;
}

static void put_pages(void *ctx, void *va, size_t np)
{
	if (np > 1)
		madvise((char *)va + PAGE, (np - 1) * PAGE, MADV_DONTNEED);
	pthread_mutex_lock(&lmm_mu);
	lmm_free(&lmm, va, np * PAGE);
	pthread_mutex_unlock(&lmm_mu);
}

bool be_init(void)
{
	void *p = mmap(NULL, HEAP, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return false;
	lmm_init(&lmm);
	if (lmm_add_region(&lmm, &region, p, HEAP, 0, 0) || lmm_add_free(&lmm, p, HEAP))
		return false;
	lo = (uintptr_t)p;
	hi = lo + HEAP;
	struct kmalloc_page_source src = { get_pages, put_pages, NULL };
	return kmalloc_global_init(&src, NULL, TTL_NS) == 0;
}

bool be_owns(const void *p) { return (uintptr_t)p - lo < hi - lo; }
/* 1-8 bytes: the same smallest block, through the cache-hit path. */
void *be_alloc(size_t n) { return kmalloc(n < KMALLOC_FAST_MIN ? KMALLOC_FAST_MIN : n); }
void *be_aligned(size_t n, size_t align) { return kmalloc_aligned(n, align); }
void *be_realloc(void *p, size_t n) { return krealloc(p, n); }
void be_free(void *p) { kfree(p); }
size_t be_usable(const void *p) { return ksize(p); }
