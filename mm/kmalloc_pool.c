/* kmalloc_pool.c - kmalloc's pool: free extents in a treap keyed by address
 * (mm/treap.h; good fit, coalescing on every insert), grown by chunks of pages that the
 * page map (kmalloc_map.c) records. Everything here runs under km->lock
 * except the growth step, which calls the page source with no lock held.
 */
#include "kmalloc_int.h"
#include "treap.h"

#include <string.h>

static void ext_set(struct fext *e, uint32_t g)
{
	e->h.g = g;
	SET_STATE(&e->h, ST_POOL);
	e->h.check = CK_KEY;
}

#define EXT_SIZE(n) ((n)->h.g)
TREAP_DEFINE(pool, struct fext, l, r, uint32_t, EXT_SIZE, ext_set, max_g, prio)

static struct fext **rootp(kmalloc_t *km)
{
	return (struct fext **)&km->root;
}

static void tree_insert(kmalloc_t *km, struct fext *n, uint32_t g)
{
	ext_set(n, g);
	pool_insert(rootp(km), n);
	km->nextents++;
}

static void tree_erase(kmalloc_t *km, struct fext *n)
{
	if (!pool_erase(rootp(km), n))
		env_panic("kmalloc_pool: extent %p not in the pool", (void *)n);
	km->nextents--;
}

/* Change the size of extent n in place (its address, hence position, stays). */
static void tree_resize(kmalloc_t *km, struct fext *n, uint32_t g)
{
	if (!pool_resize(rootp(km), n, g))
		env_panic("kmalloc_pool: extent %p not in the pool", (void *)n);
}

/* Closest extents strictly below and above address a. */
void kmalloc_pool_neighbours(kmalloc_t *km, uintptr_t a, struct fext **lo, struct fext **hi)
{
	pool_neighbours(km->root, a, lo, hi);
	if (*hi && (uintptr_t)*hi == a)
		env_panic("kmalloc_pool: block %p already in the pool", (void *)a);
}

/* Give [a, a + 16g) to the pool, coalescing with both neighbours. */
void kmalloc_pool_put(kmalloc_t *km, uintptr_t a, uint32_t g)
{
	struct fext *lo, *hi;
	uintptr_t end = a + (uintptr_t)g * 16;

	kmalloc_pool_neighbours(km, a, &lo, &hi);
	if ((lo && (uintptr_t)lo + (uintptr_t)lo->h.g * 16 > a) || (hi && (uintptr_t)hi < end))
		env_panic("kmalloc_pool: block %p overlaps a free extent", (void *)a);
	km->pool_free += (uint64_t)g * 16;
	SET_STATE((struct hdr *)a, ST_POOL);   /* a stale pointer to it reads "free" */
	if (lo && (uintptr_t)lo + (uintptr_t)lo->h.g * 16 == a) {
		g += lo->h.g;
		if (hi && (uintptr_t)hi == end) {
			g += hi->h.g;
			tree_erase(km, hi);
		}
		tree_resize(km, lo, g);
		return;
	}
	if (hi && (uintptr_t)hi == end) {
		g += hi->h.g;
		tree_erase(km, hi);
	}
	tree_insert(km, (struct fext *)a, g);
}

/* Good fit: among the first FIT_CANDIDATES extents of at least g granules
 * in address order, the smallest (an exact fit ends the search at once).
 * Plain address-ordered first fit splits big extents for small blocks and
 * left the mixed-trace heap 25% above peak live; best fit over a bounded
 * window keeps big extents for big blocks at a bounded cost per miss. */
#define FIT_CANDIDATES 32

#define FIT_DEPTH 48             /* deeper treaps (unlikely) fall back to first fit */

/* Lowest-address extent of at least g granules; t holds one. */
static struct fext *first_fit(struct fext *t, uint32_t g)
{
	struct fext *e = pool_first_fit(t, g);

	if (!e)
		env_panic("kmalloc_pool: subtree maximum is wrong");
	return e;
}

/* Is t a better fit than *best? Ends the walk (false) on an exact fit or
 * when the candidates run out. */
static inline bool fit_visit(struct fext *t, uint32_t g, struct fext **best, int *left)
{
	if (t->h.g < g)
		return true;
	if (!*best || t->h.g < (*best)->h.g)
		*best = t;
	return t->h.g != g && --*left > 0;
}

/* An in-order walk of the subtrees that hold a fit: the path to the first
 * fit costs what first_fit's descent does, plus a push per left turn. */
static struct fext *good_fit(kmalloc_t *km, uint32_t g)
{
	struct fext *stack[FIT_DEPTH], *t = km->root, *best = NULL;
	int sp = 0, left = FIT_CANDIDATES;

	if (maxg(t) < g)
		return NULL;
	for (;;) {
		while (t) {                     /* t->max_g >= g here */
			if (maxg(t->l) >= g) {
				if (sp == FIT_DEPTH)
					return best ? best : first_fit(t, g);
				stack[sp++] = t;
				t = t->l;
				continue;
			}
			if (!fit_visit(t, g, &best, &left))
				return best;
			t = maxg(t->r) >= g ? t->r : NULL;
		}
		if (!sp)
			break;
		t = stack[--sp];
		if (!fit_visit(t, g, &best, &left))
			return best;
		t = maxg(t->r) >= g ? t->r : NULL;
	}
	if (!best)
		env_panic("kmalloc_pool: subtree maximum is wrong");
	return best;
}

/* Carve a block of *gp granules whose payload is aligned to `align` (a power
 * of two >= 16), from the top of a good fit (see good_fit; from the bottom
 * of the lowest fit when `low`: per-CPU data, which then packs at the start
 * of the heap).
 * *gp may grow by a leftover too small to be an extent. Returns the block
 * address or 0. Pool lock held. */
uintptr_t kmalloc_pool_take(kmalloc_t *km, uint32_t *gp, size_t align, bool low)
{
	uint32_t g = *gp;
	uint64_t need = align > 16 ? (uint64_t)g + align / 16 + MIN_G : g;
	struct fext *e;
	uintptr_t a, end, b, tail;

	if (need > UINT32_MAX || maxg(km->root) < need)
		return 0;
	/* Per-CPU data takes the lowest fit, so it packs at the start of the
	 * heap whatever holes the blocks have left by then; blocks take the
	 * best of a few fits. */
	e = low ? first_fit(km->root, (uint32_t)need) : good_fit(km, (uint32_t)need);
	if (!e)
		return 0;
	a = (uintptr_t)e;
	end = a + (uintptr_t)e->h.g * 16;
	if (low) {
		b = ((a + HDR + align - 1) & ~(uintptr_t)(align - 1)) - HDR;
		if (b != a && b - a < MIN_EXT)
			b += align;
	} else {
		b = ((end - (uintptr_t)g * 16 + HDR) & ~(uintptr_t)(align - 1)) - HDR;
	}
	tail = end - b - (uintptr_t)g * 16;
	if (tail && tail < MIN_EXT) {
		g += (uint32_t)(tail / 16);
		tail = 0;
	}
	if (b - a < MIN_EXT) {          /* only when align == 16: take it whole */
		g += (uint32_t)((b - a) / 16);
		b = a;
	}
	if (b == a)
		tree_erase(km, e);
	else
		tree_resize(km, e, (uint32_t)((b - a) / 16));
	if (tail)
		tree_insert(km, (struct fext *)(b + (uintptr_t)g * 16), (uint32_t)(tail / 16));
	km->pool_free -= (uint64_t)g * 16;
	struct hdr *h = (struct hdr *)b;
	h->g = g;
	h->cpu = 0;
	h->check = CK_KEY;
	SET_STATE(h, ST_CARVED);
	*gp = g;
	return b;
}

void kmalloc_peak_update(kmalloc_t *km)
{
	uint64_t used = km->pool_bytes - km->pool_free + km->large_bytes;
	if (used > km->peak)
		km->peak = used;
}

/* Grow the pool by a chunk that fits g granules at `align`. Called with
 * interrupts restored and no lock. */
static bool add_chunk(kmalloc_t *km, void *base, size_t np);

/* Spare map pages: below LOW before a chunk is taken, the spares grow to
 * HIGH (the first chunk needs KMALLOC_MAP_LEVELS: three nodes down the
 * tree and a record page; two are left for later leaves). */
#define MAP_SPARE_LOW  1
#define MAP_SPARE_HIGH (KMALLOC_MAP_LEVELS + 2)

bool kmalloc_pool_grow(kmalloc_t *km, uint32_t g, size_t align)
{
	uint64_t bytes = (uint64_t)g * 16 + align + 2 * MIN_EXT;
	size_t np = (size_t)((bytes + PAGE - 1) / PAGE);
	size_t minp = km->grow_min_pages, prop;
	void *base;

	size_t fit = np;
	uint32_t idle = 0;

	/* One CPU grows at a time: CPUs that ran short together would each
	 * take a chunk (and a chunk taken later may sit below per-CPU data
	 * made earlier, splitting the pool for good). The others wait and
	 * retry the pool. */
	if (!__atomic_compare_exchange_n(&km->growing, &idle, 1, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		unsigned spins = 0;
		while (__atomic_load_n(&km->growing, __ATOMIC_ACQUIRE))
			wait_relax(&spins);
		return true;
	}
	/* Map pages before the chunk, so that the chunk's own needs (nodes,
	 * a record page) come from spares: pages the map takes sit between
	 * two chunks, which are then not adjacent (the kernel heap grows in
	 * one run). Topped up in a batch only when none is left, that
	 * happens once per few new leaves (a leaf per 2 MiB of address
	 * space) and record pages (63 ranges each), not at every chunk. */
	kmalloc_map_reserve(km, MAP_SPARE_LOW, MAP_SPARE_HIGH);
	/* pool_bytes changes only here (add_chunk), under `growing`: read
	 * after taking it (reading it before raced with the last grower) */
	prop = (size_t)(km->pool_bytes / 16 / PAGE);
	if (np < minp)
		np = minp;
	if (np < prop)
		np = prop;
	base = km->src.get_pages(km->src.ctx, np);
	if (!base && np > fit)          /* short of pages: just what fits */
		base = km->src.get_pages(km->src.ctx, np = fit);
	if (!base || !add_chunk(km, base, np)) {
		__atomic_store_n(&km->growing, 0, __ATOMIC_RELEASE);
		return false;
	}
	__atomic_store_n(&km->growing, 0, __ATOMIC_RELEASE);
	return true;
}

/* Put np pages at base into the pool as a new range. Pool lock inside. */
static bool add_chunk(kmalloc_t *km, void *base, size_t np)
{
	struct kmalloc_range t = { .base = (uintptr_t)base, .kind = R_POOL };
	struct kmalloc_range *r;
	uintptr_t lo, hi;
	unsigned long fl;

	t.end = t.base + np * PAGE;
	if (!kmalloc_map_prepare(km, t.base, t.end, &fl)) {
		km->src.put_pages(km->src.ctx, base, np);
		return false;
	}
	r = kmalloc_range_add(km, &t);
	/* Claim the pads shared with adjacent pool chunks (see the top). */
	lo = r->base + 8;
	hi = r->end - 8;
	if (r->prev && r->prev->end == r->base)
		lo = r->base - 8;
	if (r->next && r->next->base == r->end)
		hi = r->end + 8;
	km->heap_bytes += np * PAGE;
	km->pool_bytes += hi - lo;
	kmalloc_pool_put(km, lo, (uint32_t)((hi - lo) / 16));
	env_unlock(&km->lock, fl);
	return true;
}
