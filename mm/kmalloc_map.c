/* kmalloc_map.c - kmalloc's page ranges (pool chunks and large blocks) and
 * the page map that finds them by address: a radix tree over page numbers
 * whose leaf slots point to the range record of their page.
 *
 * Memory: tree nodes, range records and spare pages are pages of their own
 * from the page source (one get_pages call per page, so each goes back
 * alone), never freed before kmalloc_destroy_i: a reader without the lock
 * may follow a stale pointer into them and still reads mapped memory.
 * Writers hold the pool lock and publish with release stores; readers
 * (kmalloc_map_find) load with acquire and take no lock.
 *
 * A slot above the leaves whose whole span (512 pages, 512^2, ...) lies in
 * one range and that has no node below holds that range's record directly,
 * tagged with bit 0 (records are 64-byte aligned, nodes page-aligned): a
 * large block costs a slot per 2 MiB of its aligned middle, not per page.
 *
 * The tree covers 36 bits of page number (48-bit addresses: the host's user
 * space, Sv39/Sv48 kernel addresses once the sign bits are dropped). An
 * address that differs from a mapped one only above bit 47 finds that
 * range's record and is refused by its bounds, which are full addresses.
 */
#include "kmalloc_int.h"

#include <string.h>

#define FAN       (1u << KMALLOC_MAP_BITS)
#define LEVELS    KMALLOC_MAP_LEVELS
#define KEY_BITS  (KMALLOC_MAP_BITS * KMALLOC_MAP_LEVELS)
#define REC       sizeof(struct kmalloc_range)
/* A record page: its first slot links the record pages, the rest are records. */
#define RECS_PER_PAGE (PAGE / REC - 1)

_Static_assert(FAN * sizeof(void *) == PAGE, "a map node is one page");
_Static_assert(REC * 2 <= PAGE, "records fit a page");

static inline uint64_t key_of(uintptr_t a)
{
	return ((uint64_t)a >> ENV_PAGE_SHIFT) & ((1ull << KEY_BITS) - 1);
}

static inline int shift_of(int level)
{
	return KMALLOC_MAP_BITS * (LEVELS - 1 - level);
}

#define TAG ((uintptr_t)1)

static inline bool tagged(const void *v)
{
	return (uintptr_t)v & TAG;
}

static inline struct kmalloc_range *untag(void *v)
{
	return (struct kmalloc_range *)((uintptr_t)v & ~TAG);
}

struct kmalloc_range *kmalloc_map_find(kmalloc_t *km, uintptr_t a)
{
	uint64_t k = key_of(a);
	void **s = km->map, *v = NULL;

	for (int l = 0; l < LEVELS; l++) {
		v = __atomic_load_n(&s[(k >> shift_of(l)) & (FAN - 1)], __ATOMIC_ACQUIRE);
		if (!v || tagged(v))
			break;
		s = v;
	}
	struct kmalloc_range *r = untag(v);
	return r && a - r->base < r->end - r->base ? r : NULL;
}

/* ---- map pages ------------------------------------------------------------- */

/* n more spare pages, one get_pages call each. No lock held. */
static bool spare_add(kmalloc_t *km, uint64_t n)
{
	while (n--) {
		void *pg = km->src.get_pages(km->src.ctx, 1);
		if (!pg)
			return false;
		unsigned long fl = env_lock(&km->lock);
		*(void **)pg = km->spare;
		km->spare = pg;
		km->nspare++;
		km->map_bytes += PAGE;
		env_unlock(&km->lock, fl);
	}
	return true;
}

/* Lock held; kmalloc_map_prepare made sure there is one. */
static void *spare_pop(kmalloc_t *km)
{
	void *pg = km->spare;

	if (!pg)
		env_panic("kmalloc_map: no spare page (prepare not called)");
	km->spare = *(void **)pg;
	km->nspare--;
	memset(pg, 0, PAGE);
	return pg;
}

bool kmalloc_map_reserve(kmalloc_t *km, uint32_t low, uint32_t high)
{
	unsigned long fl = env_lock(&km->lock);
	uint32_t have = km->nspare;

	env_unlock(&km->lock, fl);
	return have >= low || spare_add(km, high - have);
}

/* Does the slot for keys [k, chi] at a level with shift sh cover its whole
 * span (so it may hold a record itself)? */
static inline bool whole(uint64_t k, uint64_t chi, int sh)
{
	return sh && (k & ((1ull << sh) - 1)) == 0 && chi - k == (1ull << sh) - 1;
}

/* Nodes missing below `slots` (a node of `level`, NULL if missing itself)
 * for keys [lo, hi]. Lock held. */
static uint64_t need(void **slots, int level, uint64_t lo, uint64_t hi)
{
	int sh = shift_of(level);
	uint64_t n = 0;

	if (level == LEVELS - 1)
		return 0;
	for (uint64_t k = lo;;) {
		uint64_t last = k | ((1ull << sh) - 1), chi = last < hi ? last : hi;
		void **child = slots ? slots[(k >> sh) & (FAN - 1)] : NULL;
		if (tagged(child))
			env_panic("kmalloc_map: mapping over a mapped range");
		if (child || !whole(k, chi, sh))
			n += !child + need(child, level + 1, k, chi);
		if (chi == hi)
			return n;
		k = chi + 1;
	}
}

/* Point keys [lo, hi] at v (NULL: clear), making missing nodes from the
 * spare pages (never when clearing). Lock held. */
static void set(kmalloc_t *km, void **slots, int level, uint64_t lo, uint64_t hi, void *v)
{
	int sh = shift_of(level);

	for (uint64_t k = lo;;) {
		uint64_t last = k | ((1ull << sh) - 1), chi = last < hi ? last : hi;
		void **slot = &slots[(k >> sh) & (FAN - 1)];
		void **child = *slot;
		if (level == LEVELS - 1) {
			__atomic_store_n(slot, v, __ATOMIC_RELEASE);
		} else if (tagged(child) || (!child && v && whole(k, chi, sh))) {
			/* a whole span of one range: the record itself */
			__atomic_store_n(slot, v ? (void *)((uintptr_t)v | TAG) : NULL, __ATOMIC_RELEASE);
		} else {
			if (!child) {
				if (!v)
					env_panic("kmalloc_map: clearing an unmapped page");
				child = spare_pop(km);   /* zeroed before it is published */
				__atomic_store_n(slot, child, __ATOMIC_RELEASE);
			}
			set(km, child, level + 1, k, chi, v);
		}
		if (chi == hi)
			return;
		k = chi + 1;
	}
}

bool kmalloc_map_prepare(kmalloc_t *km, uintptr_t base, uintptr_t end, unsigned long *fl)
{
	uint64_t lo = key_of(base), hi = key_of(end - 1);

	if (end <= base || hi < lo)      /* wraps at 2^48: not one run of keys */
		return false;
	/* Another CPU may use up the spares between our tries; bounded. */
	for (int tries = 0; tries < 16; tries++) {
		*fl = env_lock(&km->lock);
		uint64_t n = need(km->map, 0, lo, hi) + (km->rfree ? 0 : 1);
		if (n <= km->nspare)
			return true;
		n -= km->nspare;
		env_unlock(&km->lock, *fl);
		if (!spare_add(km, n))
			return false;
	}
	return false;
}

/* ---- range records ----------------------------------------------------------- */

static struct kmalloc_range *rec_alloc(kmalloc_t *km)
{
	struct kmalloc_range *r;

	if (!km->rfree) {
		char *pg = spare_pop(km);
		*(void **)pg = km->rpages;
		km->rpages = pg;
		for (size_t i = RECS_PER_PAGE; i >= 1; i--) {
			r = (struct kmalloc_range *)(pg + i * REC);
			r->next = km->rfree;
			km->rfree = r;
		}
	}
	r = km->rfree;
	km->rfree = r->next;
	memset(r, 0, sizeof(*r));
	return r;
}

/* A new chunk r in address order; the run it joins gets its new bounds. */
static void chunk_insert(kmalloc_t *km, struct kmalloc_range *r)
{
	struct kmalloc_range *p = NULL, *q = km->chunks;

	while (q && q->base < r->base) {
		p = q;
		q = q->next;
	}
	r->prev = p;
	r->next = q;
	if (p)
		p->next = r;
	else
		km->chunks = r;
	if (q)
		q->prev = r;
	km->nchunks++;
	uintptr_t lo = p && p->end == r->base ? p->run_lo : r->base;
	uintptr_t hi = q && q->base == r->end ? q->run_hi : r->end;
	/* Runs only widen: a reader that sees old and new bounds mixed still
	 * sees a part of the run that holds its chunk. */
	for (q = r; q->prev && q->prev->end == q->base;)
		q = q->prev;
	for (; q && q->base < hi; q = q->next) {
		__atomic_store_n(&q->run_lo, lo, __ATOMIC_RELAXED);
		__atomic_store_n(&q->run_hi, hi, __ATOMIC_RELAXED);
	}
}

struct kmalloc_range *kmalloc_range_add(kmalloc_t *km, const struct kmalloc_range *t)
{
	struct kmalloc_range *r = rec_alloc(km);

	r->base = t->base;
	r->end = t->end;
	r->kind = t->kind;
	r->cpu = t->cpu;
	if (t->kind == R_POOL) {
		chunk_insert(km, r);
	} else {
		r->payload = t->payload;
		r->req = t->req;
		r->caller = t->caller;
		r->next = km->large;
		if (km->large)
			km->large->prev = r;
		km->large = r;
		km->nlarge++;
	}
	set(km, km->map, 0, key_of(r->base), key_of(r->end - 1), r);   /* publishes r */
	return r;
}

void kmalloc_range_del(kmalloc_t *km, struct kmalloc_range *r)
{
	struct kmalloc_range **head = r->kind == R_POOL ? &km->chunks : &km->large;

	set(km, km->map, 0, key_of(r->base), key_of(r->end - 1), NULL);
	if (r->prev)
		r->prev->next = r->next;
	else
		*head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->kind == R_POOL)
		km->nchunks--;
	else
		km->nlarge--;
	r->kind = 0;
	r->next = km->rfree;
	km->rfree = r;
}

/* ---- check and destroy --------------------------------------------------------- */

static uint64_t mapped(void **slots, int level)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < FAN; i++)
		if (tagged(slots[i]))
			n += 1ull << shift_of(level);
		else if (slots[i])
			n += level == LEVELS - 1 ? 1 : mapped(slots[i], level + 1);
	return n;
}

/* Every page of r maps to r (pages of a record held above the leaves are
 * looked at one per leaf span: they share the slot). */
static bool maps_to(kmalloc_t *km, const struct kmalloc_range *r)
{
	const uintptr_t span = PAGE << KMALLOC_MAP_BITS;

	for (uintptr_t a = r->base; a < r->end;) {
		if (kmalloc_map_find(km, a) != r)
			return false;
		bool mid = (a & (span - 1)) == 0 && r->end - a >= span;
		a += mid ? span : PAGE;
	}
	return true;
}

static const char *check_list(kmalloc_t *km, const struct kmalloc_range *head,
			      uint32_t kind, uint32_t count, uint64_t *pages, uintptr_t *at)
{
	const struct kmalloc_range *prev = NULL;
	uint32_t n = 0;

	for (const struct kmalloc_range *r = head; r; prev = r, r = r->next) {
		*at = r->base;
		if (++n > count)
			return "range list longer than its count";
		if ((r->kind != kind && !(kind == R_LARGE && r->kind == R_LFREE)) || r->prev != prev || ((r->base | r->end) & (PAGE - 1)) ||
		    r->end <= r->base)
			return "range malformed";
		if (kind == R_LARGE && (r->payload - r->base >= r->end - r->base || (r->payload & (PAGE - 1))))
			return "large block payload outside its pages";
		if (kind == R_POOL && prev && prev->end > r->base)
			return "ranges overlap";
		if (kind == R_POOL) {
			uintptr_t lo, hi;
			kmalloc_run_of(r, &lo, &hi);
			bool first = !prev || prev->end != r->base;
			bool last = !r->next || r->next->base != r->end;
			if ((first ? lo != r->base : lo != prev->run_lo || hi != prev->run_hi) ||
			    (last ? hi != r->end : hi <= r->end))
				return "run bounds wrong";
		}
		if (!maps_to(km, r))
			return "page map does not lead to the range";
		*pages += (r->end - r->base) / PAGE;
	}
	return n == count ? NULL : "range list shorter than its count";
}

const char *kmalloc_map_check(kmalloc_t *km, uintptr_t *at)
{
	uint64_t pages = 0;
	const char *e = check_list(km, km->chunks, R_POOL, km->nchunks, &pages, at);

	if (!e)
		e = check_list(km, km->large, R_LARGE, km->nlarge, &pages, at);
	/* the large cache: its bins hold exactly the R_LFREE ranges */
	uint32_t nfree = 0, nbin = 0;
	uint64_t bytes = 0;
	for (const struct kmalloc_range *r = km->large; r && !e; r = r->next)
		nfree += r->kind == R_LFREE;
	for (unsigned b = 0; b < KMALLOC_LCACHE_PAGES && !e; b++) {
		const struct kmalloc_range *prev = NULL;
		for (const struct kmalloc_range *r = km->lc_head[b]; r && !e; prev = r, r = r->lnext) {
			*at = r->base;
			if (++nbin > nfree || r->kind != R_LFREE || r->lprev != prev ||
			    (r->end - r->base) / PAGE != b + 1 || (prev && prev->stamp < r->stamp))
				e = "large cache bin malformed";
			bytes += r->end - r->base;
		}
		if (!e && km->lc_tail[b] != prev)
			e = "large cache bin tail wrong";
	}
	if (!e && (nbin != nfree || nbin != km->lc_n || bytes != km->lc_bytes))
		e = "large cache disagrees with its totals";
	if (!e && mapped(km->map, 0) != pages) {
		*at = 0;
		e = "page map has pages of no range";   /* or ranges overlap */
	}
	return e;
}

static void put_nodes(kmalloc_t *km, void **slots, int level)
{
	if (level == LEVELS - 1)
		return;
	for (unsigned i = 0; i < FAN; i++)
		if (slots[i] && !tagged(slots[i])) {
			put_nodes(km, slots[i], level + 1);
			km->src.put_pages(km->src.ctx, slots[i], 1);
		}
}

static void put_chain(kmalloc_t *km, void *pg)
{
	while (pg) {
		void *next = *(void **)pg;
		km->src.put_pages(km->src.ctx, pg, 1);
		pg = next;
	}
}

void kmalloc_map_destroy(kmalloc_t *km)
{
	struct kmalloc_range *lists[2] = { km->large, km->chunks }, *next;

	for (int i = 0; i < 2; i++)
		for (struct kmalloc_range *r = lists[i]; r; r = next) {
			next = r->next;
			km->src.put_pages(km->src.ctx, (void *)r->base, (r->end - r->base) / PAGE);
		}
	put_nodes(km, km->map, 0);
	put_chain(km, km->rpages);
	put_chain(km, km->spare);
	memset(km->map, 0, sizeof(km->map));
	km->chunks = km->large = km->rfree = NULL;
	km->rpages = km->spare = NULL;
	km->nchunks = km->nlarge = km->nspare = 0;
	km->map_bytes = 0;
}
