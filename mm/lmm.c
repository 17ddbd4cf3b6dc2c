/* lmm.c - list-based memory manager: regions of free memory, each holding an
 * address-ordered treap of free blocks, nodes stored inside the blocks.
 *
 * Why a treap: the node must fit in the granule (32 bytes: two children,
 * size, subtree maximum), leaving no room for a balance field. A treap whose
 * heap priority is a bijective hash of the node's address needs none, stays
 * O(log n) deep in expectation, and is rebalanced by the same split/merge
 * code that inserts and deletes (mm/treap.h, shared with kmalloc's pool). Each node also keeps the largest block size
 * in its subtree, so the first-fit search skips subtrees that are too small
 * or lie outside the requested address range.
 */
#include "lmm.h"

#include "env.h"
#include "treap.h"

#include <string.h>

struct lmm_node {
	struct lmm_node *left, *right;
	size_t size;            /* bytes in this free block */
	size_t max;             /* largest size in this subtree */
};

_Static_assert(sizeof(struct lmm_node) <= LMM_GRANULE, "node must fit the granule");
_Static_assert((LMM_GRANULE & (LMM_GRANULE - 1)) == 0, "granule is a power of two");

#define GMASK ((uintptr_t)LMM_GRANULE - 1)

/* A request, normalised by lmm_alloc_gen. */
struct req {
	size_t size;            /* rounded to the granule */
	size_t csize;           /* caller's size, bounds the range check */
	uintptr_t lo, hi;       /* caller's bytes in [lo, hi) */
	uintptr_t mask, ofs;    /* (addr & mask) == ofs */
};

static inline uintptr_t addr_of(const struct lmm_node *n)
{
	return (uintptr_t)n;
}

static inline uintptr_t end_of(const struct lmm_node *n)
{
	return (uintptr_t)n + n->size;
}

/* Heap priority: a bijective mix of the address, so distinct nodes never tie
 * and regular address patterns still give a random-looking shape. */
static inline uint64_t prio(const struct lmm_node *n)
{
	uint64_t x = (uint64_t)(uintptr_t)n >> LMM_GRANULE_SHIFT;

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static inline size_t max3(size_t a, size_t b, size_t c)
{
	size_t m = a > b ? a : b;
	return m > c ? m : c;
}

#define NODE_SIZE(n)        ((n)->size)
#define NODE_SET_SIZE(n, v) ((n)->size = (v))
TREAP_DEFINE(tr, struct lmm_node, left, right, size_t, NODE_SIZE, NODE_SET_SIZE, max, prio)

/* Lowest block that ends after a (blocks are disjoint, so ends are ordered
 * like starts). */
static struct lmm_node *first_ending_after(struct lmm_node *t, uintptr_t a)
{
	struct lmm_node *best = NULL;

	while (t) {
		if (end_of(t) > a) {
			best = t;
			t = t->left;
		} else {
			t = t->right;
		}
	}
	return best;
}

/* ---- block operations on one region, inputs already validated ---- */

static void blk_insert(lmm_region_t *r, uintptr_t a, size_t size)
{
	struct lmm_node *n = (struct lmm_node *)a;

	n->size = size;
	tr_insert(&r->root, n);
	r->free += size;
	r->nblocks++;
}

static void blk_erase(lmm_region_t *r, struct lmm_node *n)
{
	r->free -= n->size;
	r->nblocks--;
	if (!tr_erase(&r->root, n))
		env_panic("lmm_erase: block %#lx not in tree", (unsigned long)addr_of(n));
}

static void blk_resize(lmm_region_t *r, struct lmm_node *n, size_t size)
{
	r->free = r->free - n->size + size;
	if (!tr_resize(&r->root, n, size))
		env_panic("lmm_resize: block %#lx not in tree", (unsigned long)addr_of(n));
}

/* Is any byte of [s, e) free in r? */
static bool overlaps_free(lmm_region_t *r, uintptr_t s, uintptr_t e)
{
	struct lmm_node *p, *q;

	tr_neighbours(r->root, s, &p, &q);
	return (p && end_of(p) > s) || (q && addr_of(q) < e);
}

/* Make [s, e) free, merging with both neighbours; not free before. */
static void free_range(lmm_region_t *r, uintptr_t s, uintptr_t e)
{
	struct lmm_node *p, *q;
	bool left, right;
	size_t qs;

	tr_neighbours(r->root, s, &p, &q);
	left = p && end_of(p) == s;
	right = q && addr_of(q) == e;
	if (left && right) {
		qs = q->size;
		blk_erase(r, q);
		blk_resize(r, p, p->size + (e - s) + qs);
	} else if (left) {
		blk_resize(r, p, p->size + (e - s));
	} else if (right) {
		qs = q->size;
		blk_erase(r, q);
		blk_insert(r, s, (e - s) + qs);
	} else {
		blk_insert(r, s, e - s);
	}
}

/* Take [a, a+size) out of free block n. */
static void carve(lmm_region_t *r, struct lmm_node *n, uintptr_t a, size_t size)
{
	uintptr_t bs = addr_of(n), be = end_of(n);

	if (a > bs)
		blk_resize(r, n, a - bs);
	else
		blk_erase(r, n);
	if (a + size < be)
		blk_insert(r, a + size, be - (a + size));
}

static lmm_region_t *region_of(lmm_t *lmm, uintptr_t a)
{
	for (lmm_region_t *r = lmm->regions; r; r = r->next)
		if (a >= r->min && a < r->max)
			return r;
	return NULL;
}

/* Trim [*s, *e) inward to granule boundaries; false if nothing is left. */
static bool trim_in(uintptr_t *s, uintptr_t *e)
{
	uintptr_t a = *s & ~GMASK;

	if (a != *s) {
		a += LMM_GRANULE;
		if (a == 0)
			return false;           /* wrapped at the top */
	}
	if (a < LMM_GRANULE)
		a = LMM_GRANULE;                /* a node at 0 would be NULL */
	*s = a;
	*e &= ~GMASK;
	return *s < *e;
}

/* ---- public API ---- */

void lmm_init(lmm_t *lmm)
{
	lmm->regions = NULL;
}

int lmm_add_region(lmm_t *lmm, lmm_region_t *region, void *addr, size_t size,
		   lmm_flags_t flags, lmm_pri_t pri)
{
	uintptr_t s = (uintptr_t)addr, e;
	lmm_region_t **pp;

	if (!lmm || !region || !size)
		return E_INVAL;
	if (size > UINTPTR_MAX - s)
		return E_RANGE;
	e = s + size;
	if (!trim_in(&s, &e))
		return E_ALIGN;
	for (lmm_region_t *r = lmm->regions; r; r = r->next)
		if (r == region || (s < r->max && r->min < e))
			return E_EXIST;
	memset(region, 0, sizeof(*region));
	region->min = s;
	region->max = e;
	region->flags = flags;
	region->pri = pri;
	/* Equal priorities keep the order they were added in. */
	for (pp = &lmm->regions; *pp && (*pp)->pri >= pri; pp = &(*pp)->next)
		;
	region->next = *pp;
	*pp = region;
	return 0;
}

int lmm_add_free(lmm_t *lmm, void *block, size_t size)
{
	uintptr_t s = (uintptr_t)block, e;
	bool any = false;

	if (!lmm || !size)
		return E_INVAL;
	if (size > UINTPTR_MAX - s)
		return E_RANGE;
	e = s + size;
	if (!trim_in(&s, &e))
		return 0;
	for (lmm_region_t *r = lmm->regions; r; r = r->next) {
		uintptr_t cs = s > r->min ? s : r->min, ce = e < r->max ? e : r->max;
		if (cs >= ce)
			continue;
		any = true;
		if (overlaps_free(r, cs, ce)) {
			env_log("lmm_add_free: [%#lx, %#lx) overlaps free memory",
				(unsigned long)s, (unsigned long)e);
			return E_EXIST;
		}
	}
	if (!any) {
		env_log("lmm_add_free: [%#lx, %#lx) outside every region",
			(unsigned long)s, (unsigned long)e);
		return E_NOENT;
	}
	for (lmm_region_t *r = lmm->regions; r; r = r->next) {
		uintptr_t cs = s > r->min ? s : r->min, ce = e < r->max ? e : r->max;
		if (cs < ce)
			free_range(r, cs, ce);
	}
	return 0;
}

void lmm_remove_free(lmm_t *lmm, void *block, size_t size)
{
	uintptr_t s = (uintptr_t)block, e;

	if (!size)
		return;
	if (size > UINTPTR_MAX - s || (s + size) > UINTPTR_MAX - GMASK) {
		env_log("lmm_remove_free: [%#lx, +%#lx) wraps", (unsigned long)s,
			(unsigned long)size);
		return;
	}
	e = (s + size + GMASK) & ~GMASK;
	s &= ~GMASK;
	for (lmm_region_t *r = lmm->regions; r; r = r->next) {
		struct lmm_node *n;
		if (r->max <= s || r->min >= e)
			continue;
		while ((n = first_ending_after(r->root, s)) && addr_of(n) < e) {
			uintptr_t cs = addr_of(n) > s ? addr_of(n) : s;
			uintptr_t ce = end_of(n) < e ? end_of(n) : e;
			carve(r, n, cs, ce - cs);
		}
	}
}

/* Lowest address in block n that satisfies q, if any. */
static bool place(const struct lmm_node *n, const struct req *q, uintptr_t *out)
{
	uintptr_t bs = addr_of(n), be = end_of(n);
	uintptr_t a = bs > q->lo ? bs : q->lo;
	uintptr_t b = (a & ~q->mask) | q->ofs;

	if (b < a) {
		b += q->mask + 1;
		if (b < a)
			return false;           /* wrapped */
	}
	if (b > be || be - b < q->size)
		return false;
	if (b > q->hi || q->hi - b < q->csize)
		return false;
	*out = b;
	return true;
}

/* First fit in address order. Left subtrees end below t's start, right ones
 * start above its end: skip them when that excludes every fit, or when no
 * block in them is large enough. */
static struct lmm_node *search(struct lmm_node *t, const struct req *q, uintptr_t *out)
{
	while (t && t->max >= q->size) {
		uintptr_t bs = addr_of(t), be = end_of(t);
		if (t->left && bs >= q->lo && bs - q->lo >= q->size) {
			struct lmm_node *n = search(t->left, q, out);
			if (n)
				return n;
		}
		if (t->size >= q->size && place(t, q, out))
			return t;
		if (be > q->hi || q->hi - be < q->csize)
			return NULL;
		t = t->right;
	}
	return NULL;
}

void *lmm_alloc_gen(lmm_t *lmm, size_t size, lmm_flags_t flags, int align_bits,
		    uintptr_t align_ofs, uintptr_t in_min, size_t in_size)
{
	struct req q;
	uintptr_t umask;

	if (!lmm || !size || align_bits < 0 || align_bits > 63 || in_size < size ||
	    size > SIZE_MAX - GMASK)
		return NULL;
	umask = ((uintptr_t)1 << align_bits) - 1;
	q.ofs = align_ofs & umask;
	if (q.ofs & GMASK)
		return NULL;                    /* cannot be granule-aligned */
	q.mask = umask | GMASK;
	q.size = (size + GMASK) & ~GMASK;
	q.csize = size;
	q.lo = in_min;
	q.hi = in_size > UINTPTR_MAX - in_min ? UINTPTR_MAX : in_min + in_size;
	if (q.hi - q.lo < size)
		return NULL;
	for (lmm_region_t *r = lmm->regions; r; r = r->next) {
		struct lmm_node *n;
		uintptr_t a;
		if ((flags & ~r->flags) || r->max <= q.lo || r->min >= q.hi ||
		    !r->root || r->root->max < q.size)
			continue;
		n = search(r->root, &q, &a);
		if (n) {
			carve(r, n, a, q.size);
			return (void *)a;
		}
	}
	return NULL;
}

void *lmm_alloc(lmm_t *lmm, size_t size, lmm_flags_t flags)
{
	return lmm_alloc_gen(lmm, size, flags, 0, 0, 0, SIZE_MAX);
}

void *lmm_alloc_aligned(lmm_t *lmm, size_t size, lmm_flags_t flags,
			int align_bits, uintptr_t align_ofs)
{
	return lmm_alloc_gen(lmm, size, flags, align_bits, align_ofs, 0, SIZE_MAX);
}

void *lmm_alloc_page(lmm_t *lmm, lmm_flags_t flags)
{
	return lmm_alloc_gen(lmm, ENV_PAGE_SIZE, flags, ENV_PAGE_SHIFT, 0, 0, SIZE_MAX);
}

int lmm_free(lmm_t *lmm, void *block, size_t size)
{
	uintptr_t s = (uintptr_t)block, e;
	lmm_region_t *r;
	size_t rsize;
	int rc;

	if (!lmm || !block || !size)
		rc = E_INVAL;
	else if (s & GMASK)
		rc = E_ALIGN;
	else if (size > SIZE_MAX - GMASK ||
		 (rsize = (size + GMASK) & ~GMASK) > UINTPTR_MAX - s)
		rc = E_RANGE;
	else if (!(r = region_of(lmm, s)))
		rc = E_NOENT;
	else if ((e = s + rsize) > r->max)
		rc = E_RANGE;
	else if (overlaps_free(r, s, e))
		rc = E_EXIST;
	else {
		free_range(r, s, e);
		return 0;
	}
	env_log("lmm_free: refused [%#lx, +%#lx): %s", (unsigned long)s,
		(unsigned long)size, err_str(rc));
	return rc;
}

void lmm_free_page(lmm_t *lmm, void *page)
{
	(void)lmm_free(lmm, page, ENV_PAGE_SIZE);   /* refusal already logged */
}

size_t lmm_avail(lmm_t *lmm, lmm_flags_t flags)
{
	size_t n = 0;

	for (lmm_region_t *r = lmm->regions; r; r = r->next)
		if (!(flags & ~r->flags))
			n += r->free;
	return n;
}

void lmm_find_free(lmm_t *lmm, uintptr_t *inout_addr, size_t *out_size,
		   lmm_flags_t *out_flags)
{
	uintptr_t a = *inout_addr;
	struct lmm_node *best = NULL;
	lmm_flags_t bflags = 0;

	for (lmm_region_t *r = lmm->regions; r; r = r->next) {
		struct lmm_node *n;
		if (r->max <= a)
			continue;
		n = first_ending_after(r->root, a);
		if (n && (!best || addr_of(n) < addr_of(best))) {
			best = n;
			bflags = r->flags;
		}
	}
	*out_size = 0;
	*out_flags = 0;
	if (!best)
		return;
	if (addr_of(best) > a)
		a = addr_of(best);
	*inout_addr = a;
	*out_size = end_of(best) - a;
	*out_flags = bflags;
}

static void dump_tree(const struct lmm_node *t)
{
	if (!t)
		return;
	dump_tree(t->left);
	env_log("lmm:   free [%#lx, %#lx) %lu bytes", (unsigned long)addr_of(t),
		(unsigned long)end_of(t), (unsigned long)t->size);
	dump_tree(t->right);
}

void lmm_dump(lmm_t *lmm)
{
	for (lmm_region_t *r = lmm->regions; r; r = r->next) {
		env_log("lmm: region [%#lx, %#lx) flags %#x pri %d free %lu in %lu blocks",
			(unsigned long)r->min, (unsigned long)r->max, r->flags,
			(int)r->pri, (unsigned long)r->free, (unsigned long)r->nblocks);
		dump_tree(r->root);
	}
}

/* ---- consistency walk ---- */

struct walk {
	const lmm_region_t *r;
	uintptr_t prev_end;
	bool have_prev;
	size_t total, count;
};

static int bad(const struct walk *w, uintptr_t at, const char *why)
{
	env_log("lmm_check: region [%#lx, %#lx): %s at %#lx",
		(unsigned long)w->r->min, (unsigned long)w->r->max, why,
		(unsigned long)at);
	return E_CORRUPT;
}

static int check_tree(const struct lmm_node *t, struct walk *w,
		      const struct lmm_node *parent, unsigned depth)
{
	uintptr_t a = addr_of(t);
	int rc;

	if ((a & GMASK) || a < w->r->min || a >= w->r->max)
		return bad(w, a, "node pointer outside region or misaligned");
	if (depth > 256)
		return bad(w, a, "tree too deep (cycle?)");
	if (parent && prio(t) > prio(parent))
		return bad(w, a, "treap heap order broken");
	if (t->left && (rc = check_tree(t->left, w, t, depth + 1)))
		return rc;
	if (!t->size || (t->size & GMASK) || t->size > w->r->max - a)
		return bad(w, a, "block size zero, misaligned or past region end");
	if (w->have_prev && a < w->prev_end)
		return bad(w, a, "blocks out of order or overlapping");
	if (w->have_prev && a == w->prev_end)
		return bad(w, a, "adjacent blocks not merged");
	w->have_prev = true;
	w->prev_end = end_of(t);
	w->total += t->size;
	w->count++;
	if (t->right && (rc = check_tree(t->right, w, t, depth + 1)))
		return rc;
	/* Children are validated by now, so their fields can be read. */
	if (t->max != max3(t->size, t->left ? t->left->max : 0,
			   t->right ? t->right->max : 0))
		return bad(w, a, "subtree maximum wrong");
	return 0;
}

int lmm_check(lmm_t *lmm)
{
	for (lmm_region_t *r = lmm->regions; r; r = r->next) {
		struct walk w = { .r = r };
		int rc;
		if (r->min >= r->max || (r->min & GMASK) || (r->max & GMASK))
			return bad(&w, r->min, "region bounds malformed");
		if (r->next && r->next->pri > r->pri)
			return bad(&w, r->min, "regions not in priority order");
		for (lmm_region_t *o = r->next; o; o = o->next)
			if (o->min < r->max && r->min < o->max)
				return bad(&w, o->min, "regions overlap");
		if (r->root && (rc = check_tree(r->root, &w, NULL, 0)))
			return rc;
		if (w.total != r->free || w.count != r->nblocks)
			return bad(&w, r->min, "free byte or block count mismatch");
	}
	return 0;
}
