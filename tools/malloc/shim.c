/* shim.c - the C library's malloc family on top of one of the project's
 * managers, for LD_PRELOAD (build/host/libumm-malloc.so,
 * build/host/libkmalloc-malloc.so; see tools/malloc/README.md).
 *
 * Safe before any constructor ran: the first call of any thread (the
 * dynamic loader's, pthread_create's) sets the manager up under a spin
 * flag and uses no other library state. Across fork: every call runs in an
 * env_host bracket, which a fork handler waits for (mm/env_host.h). Threads
 * beyond the exclusive CPU indexes share one under a mutex, same bracket.
 *
 * Pointers the shim did not hand out (outside the manager's reservation)
 * are refused: free ignores them with one log line per process, realloc
 * returns NULL and malloc_usable_size 0. The shim never calls the C
 * library's own malloc, so no foreign pointer can be one of its blocks.
 */
#define _GNU_SOURCE
#include "shim.h"
#include "env_host.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))
#define PAGE ((size_t)4096)

static unsigned init_state;     /* 0 not yet, 1 in progress, 2 ready, 3 failed */

static bool ready_slow(void)
{
	unsigned s = 0;

	if (__atomic_compare_exchange_n(&init_state, &s, 1, false, __ATOMIC_ACQUIRE,
					__ATOMIC_ACQUIRE)) {
		s = be_init() ? 2 : 3;
		if (s == 3)
			env_log("%s-malloc: cannot reserve the heap", be_name);
		__atomic_store_n(&init_state, s, __ATOMIC_RELEASE);
	}
	while ((s = __atomic_load_n(&init_state, __ATOMIC_ACQUIRE)) == 1)
		sched_yield();
	return s == 2;
}

static inline bool ready(void)
{
	return __builtin_expect(__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 2, 1) ||
	       ready_slow();
}

static void foreign(const char *who, const void *p)
{
	static unsigned once;
	if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
		env_log("%s-malloc: %s(%p): not a block of this heap, ignored "
			"(reported once)", be_name, who, p);
}

static void *alloc(size_t n)
{
	if (!ready())
		return NULL;
	unsigned t = env_host_enter();
	void *p = be_alloc(n ? n : 1);
	env_host_leave(t);
	return p;
}

static void *alloc_aligned(size_t n, size_t align)
{
	if (align <= 16)
		return alloc(n);
	if (!ready())
		return NULL;
	unsigned t = env_host_enter();
	void *p = be_aligned(n ? n : 1, align);
	env_host_leave(t);
	return p;
}

API void *malloc(size_t n)
{
	void *p = alloc(n);
	if (!p)
		errno = ENOMEM;
	return p;
}

API void free(void *p)
{
	if (!p)
		return;
	if (!ready() || !be_owns(p)) {
		foreign("free", p);
		return;
	}
	unsigned t = env_host_enter();
	be_free(p);
	env_host_leave(t);
}

API void *calloc(size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = alloc(bytes);   /* not malloc: gcc turns malloc + memset into calloc */
	if (p)
		memset(p, 0, bytes);
	else
		errno = ENOMEM;
	return p;
}

API void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {           /* glibc: frees and returns NULL */
		free(p);
		return NULL;
	}
	if (!ready() || !be_owns(p)) {
		foreign("realloc", p);
		errno = ENOMEM;
		return NULL;
	}
	unsigned t = env_host_enter();
	void *q = be_realloc(p, n);
	env_host_leave(t);
	if (!q)
		errno = ENOMEM;
	return q;
}

API void *reallocarray(void *p, size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, bytes);
}

static bool pow2(size_t a) { return a && !(a & (a - 1)); }

API int posix_memalign(void **out, size_t align, size_t n)
{
	if (!pow2(align) || align % sizeof(void *))
		return EINVAL;
	void *p = alloc_aligned(n, align);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

/* glibc's memalign raises an alignment that is not a power of two to one. */
API void *memalign(size_t align, size_t n)
{
	if (align > ((size_t)1 << 31)) {
		errno = EINVAL;
		return NULL;
	}
	while (!pow2(align))
		align = (align | (align - 1)) + 1;
	void *p = alloc_aligned(n, align);
	if (!p)
		errno = ENOMEM;
	return p;
}

API void *aligned_alloc(size_t align, size_t n)
{
	if (!pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return memalign(align, n);
}

API void *valloc(size_t n) { return memalign(PAGE, n); }

API void *pvalloc(size_t n)
{
	if (n > SIZE_MAX - PAGE) {
		errno = ENOMEM;
		return NULL;
	}
	return memalign(PAGE, (n + PAGE - 1) & ~(PAGE - 1));
}

API size_t malloc_usable_size(void *p)
{
	if (!p || !ready() || !be_owns(p))
		return 0;
	unsigned t = env_host_enter();
	size_t n = be_usable(p);
	env_host_leave(t);
	return n;
}
