/* kmalloc_large.c - kmalloc's large blocks: blocks above KMALLOC_SMALL_MAX
 * (or aligned beyond a page) on pages of their own, found by address through
 * the page map (kmalloc_map.c), and the large cache that keeps freed ones of
 * up to KMALLOC_LCACHE_PAGES pages for reuse and gives their pages back
 * lazily (past the TTL, before an allocation fails, at kmalloc_reap_all).
 * When the page source says no, a large request is carved from the pool.
 *
 * Locks: km->lock (the pool lock) around the range records, the page map
 * writes and the large cache; the page source is called without it.
 */
#include "kmalloc_int.h"

#include <string.h>

/* ---- the large cache (KMALLOC_LCACHE_PAGES) ---------------------------------
 * Pool lock held for all of these but kmalloc_lcache_release. */

#define LC_BINS KMALLOC_LCACHE_PAGES
#define LC_EVICT_MAX 8    /* records a call unmaps at most (pages put after the lock) */

struct lc_out {
	unsigned n;
	struct { uintptr_t base; size_t np; } e[LC_EVICT_MAX];
};

static size_t np_of(const struct kmalloc_range *r) { return (r->end - r->base) / PAGE; }

static void lc_unlink(kmalloc_t *km, struct kmalloc_range *r)
{
	unsigned b = (unsigned)np_of(r) - 1;

	if (r->lprev)
		r->lprev->lnext = r->lnext;
	else
		km->lc_head[b] = r->lnext;
	if (r->lnext)
		r->lnext->lprev = r->lprev;
	else
		km->lc_tail[b] = r->lprev;
	km->lc_bytes -= np_of(r) * PAGE;
	__atomic_store_n(&km->lc_n, km->lc_n - 1, __ATOMIC_RELAXED);
}

/* r (a large block, just freed) into its bin, newest first. */
static void lc_push(kmalloc_t *km, struct kmalloc_range *r, uint64_t now)
{
	unsigned b = (unsigned)np_of(r) - 1;

	__atomic_store_n(&r->kind, R_LFREE, __ATOMIC_RELAXED);
	r->lprev = NULL;
	r->lnext = km->lc_head[b];
	/* stamps never rise along a bin (clocks read before the lock) */
	r->stamp = r->lnext && r->lnext->stamp > now ? r->lnext->stamp : now;
	if (r->lnext)
		r->lnext->lprev = r;
	else
		km->lc_tail[b] = r;
	km->lc_head[b] = r;
	km->lc_bytes += np_of(r) * PAGE;
	__atomic_store_n(&km->lc_n, km->lc_n + 1, __ATOMIC_RELAXED);
}

/* The oldest cached block (the bins' tails), or NULL. */
static struct kmalloc_range *lc_oldest(kmalloc_t *km)
{
	struct kmalloc_range *o = NULL;

	for (unsigned b = 0; b < LC_BINS; b++) {
		struct kmalloc_range *t = km->lc_tail[b];
		if (t && (!o || t->stamp < o->stamp))
			o = t;
	}
	return o;
}

static void large_peak_update(kmalloc_t *km)
{
	if (km->large_bytes > km->large_peak)
		km->large_peak = km->large_bytes;
}

static bool lc_over(kmalloc_t *km)
{
	return km->lc_bytes > KMALLOC_LCACHE_MIN + km->large_peak;
}

/* Unmap up to LC_EVICT_MAX cached blocks: the oldest while over the bound,
 * then those older than the TTL (all when `all`); out gets their pages. */
static void lc_evict(kmalloc_t *km, uint64_t now, bool all, struct lc_out *out)
{
	while (out->n < LC_EVICT_MAX) {
		struct kmalloc_range *r = lc_oldest(km);
		if (!r || !(all || lc_over(km) || now - r->stamp >= km->ttl))
			return;
		lc_unlink(km, r);
		out->e[out->n].base = r->base;
		out->e[out->n].np = np_of(r);
		out->n++;
		km->heap_bytes -= np_of(r) * PAGE;
		kmalloc_range_del(km, r);
	}
}

static void lc_put(kmalloc_t *km, const struct lc_out *out)
{
	for (unsigned i = 0; i < out->n; i++)
		km->src.put_pages(km->src.ctx, (void *)out->e[i].base, out->e[i].np);
}

void kmalloc_lcache_release(kmalloc_t *km, bool all, uint64_t now)
{
	struct lc_out out;

	do {
		if (!__atomic_load_n(&km->lc_n, __ATOMIC_RELAXED))
			return;
		out.n = 0;
		unsigned long fl = env_lock(&km->lock);
		lc_evict(km, now, all, &out);
		env_unlock(&km->lock, fl);
		lc_put(km, &out);
	} while (out.n == LC_EVICT_MAX);
}

/* A cached block of np pages or a little more (at most a quarter), made
 * live for a request of `size`; NULL if none. Its payload is its base:
 * only blocks of page alignment are cached and asked for. */
static void *lc_take(kmalloc_t *km, size_t np, size_t size, void *caller)
{
	struct kmalloc_range *r = NULL;
	size_t top = np + np / 4;

	if (!__atomic_load_n(&km->lc_n, __ATOMIC_RELAXED))
		return NULL;
	if (top > LC_BINS)
		top = LC_BINS;
	unsigned long fl = env_lock(&km->lock);
	for (size_t n = np; n <= top && !r; n++)
		r = km->lc_head[n - 1];
	if (!r) {
		env_unlock(&km->lock, fl);
		return NULL;
	}
	lc_unlink(km, r);
	r->req = size;
	r->caller = caller;
	r->cpu = env_cpu();
	__atomic_store_n(&r->kind, R_LARGE, __ATOMIC_RELAXED);
	km->large_bytes += np_of(r) * PAGE;
	km->large_allocs++;
	kmalloc_peak_update(km);
	large_peak_update(km);
	env_unlock(&km->lock, fl);
#ifdef KMALLOC_DEBUG
	memset((char *)r->payload + size, RZ_BYTE, r->end - r->payload - size);
#endif
	return (void *)r->payload;
}

/* Own pages for a large block; if the page source says no, a block carved
 * from the pool (after reclaiming every cached block). */
void *kmalloc_alloc_large(kmalloc_t *km, size_t size, size_t align, void *caller)
{
	size_t extra = align > PAGE ? align - PAGE : 0;
	struct kmalloc_range r = { .kind = R_LARGE };
	unsigned long fl;
	size_t np;
	void *base;

	if (size > ((size_t)1 << 40) || align > ((size_t)1 << 30)) {
		env_log("kmalloc: request of %zu bytes (align %zu) is too large", size, align);
		return NULL;
	}
	np = (size + extra + PAGE - 1) / PAGE;
	if (align <= PAGE && np <= LC_BINS) {
		void *p = lc_take(km, np, size, caller);
		if (p)
			return p;
	}
	base = km->src.get_pages(km->src.ctx, np);
	if (!base && __atomic_load_n(&km->lc_n, __ATOMIC_RELAXED)) {
		kmalloc_lcache_release(km, true, 0);   /* the kept pages first */
		base = km->src.get_pages(km->src.ctx, np);
	}
	if (base) {
		r.base = (uintptr_t)base;
		r.end = r.base + np * PAGE;
		r.payload = (r.base + align - 1) & ~(uintptr_t)(align - 1);
		r.req = size;
		r.cpu = env_cpu();
		r.caller = caller;
#ifdef KMALLOC_DEBUG
		memset((char *)r.payload + size, RZ_BYTE, r.end - r.payload - size);
#endif
		if (kmalloc_map_prepare(km, r.base, r.end, &fl)) {
			kmalloc_range_add(km, &r);
			km->heap_bytes += np * PAGE;
			km->large_bytes += np * PAGE;
			km->large_allocs++;
			kmalloc_peak_update(km);
			large_peak_update(km);
			env_unlock(&km->lock, fl);
			return (void *)r.payload;
		}
		km->src.put_pages(km->src.ctx, base, np);
	}
	/* Fallback: a pool block whose class is beyond the caches. */
	uint64_t g64 = ((uint64_t)size + HDR + KMALLOC_REDZONE + 15) >> 4;
	if (g64 >= UINT32_MAX || align > PAGE)
		return NULL;
	uint32_t g = g64 < NCLS ? NCLS : (uint32_t)g64;
	fl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);
	uintptr_t a = kmalloc_carve(km, pc, &g, align < 16 ? 16 : align, &fl);
	if (!a) {
		if (pc)
			BUMP(pc->failures);
		env_irq_restore(fl);
		return NULL;
	}
	struct hdr *h = (struct hdr *)a;   /* g and check: pool_take */
	h->cpu = (uint8_t)env_cpu();
	SET_STATE(h, ST_BIG);
	dbg_mark(h, size, caller);
	unsigned long lf = env_lock(&km->lock);
	km->large_allocs++;
	km->plarge_bytes += (uint64_t)g * 16;
	env_unlock(&km->lock, lf);
	env_irq_restore(fl);
	return (char *)h + HDR;
}

/* p was classified as the large block r without the lock: only the first of
 * two racing frees finds it still mapped there. */
int kmalloc_free_large(kmalloc_t *km, void *p, struct kmalloc_range *r)
{
	uint64_t now = now_of(km);
	unsigned long fl = env_lock(&km->lock);
	uintptr_t base = r->base;
	size_t np = (r->end - r->base) / PAGE;
	struct lc_out out = { 0 };

	if (kmalloc_map_find(km, (uintptr_t)p) != r || r->kind != R_LARGE || r->payload != (uintptr_t)p) {
		env_unlock(&km->lock, fl);
		return E_FAULT;          /* the caller refuses it (kmalloc.c) */
	}
	km->large_bytes -= np * PAGE;
	km->large_frees++;
	if (np <= LC_BINS && r->payload == r->base) {
		lc_push(km, r, now);     /* kept: the oldest or expired ones go */
		lc_evict(km, now, false, &out);
	} else {
		kmalloc_range_del(km, r);
		km->heap_bytes -= np * PAGE;
		out.e[0].base = base;
		out.e[0].np = np;
		out.n = 1;
	}
	env_unlock(&km->lock, fl);
	lc_put(km, &out);
	return 0;
}
