/* kmalloc_stats.c - kmalloc's statistics (a census of the pool block by
 * block, plus the per-CPU allocation counters), dump and consistency check.
 */
#include "kmalloc_int.h"

#include <string.h>

/* ---- stats, dump, check ---------------------------------------------------- */

/* Bytes of the pool by block state, from a walk of every run of pool chunks
 * block by block (blocks tile a run from its first header: add_chunk). */
struct census {
	uint64_t live, cached, pool, meta, big;
	const char *err;
	uintptr_t at;
};

/* Pool lock held: block sizes do not change under it (only the pool splits
 * and merges, and pool_take writes a carved block's header before letting
 * go), states may (hot paths, remote frees), so under load the split between
 * live and cached is a snapshot. With st, counts blocks per class: live ones
 * in st->cls[c].frees, cached ones in .cached. */
static void census(kmalloc_t *km, struct census *cs, struct kmalloc_stats *st)
{
	for (const struct kmalloc_range *r = km->chunks; r && !cs->err; r = r->next) {
		uintptr_t lo, hi, a;

		if (r->prev && r->prev->end == r->base)
			continue;   /* not the first chunk of a run */
		kmalloc_run_of(r, &lo, &hi);
		for (a = lo + 8; a < hi - 8 && !cs->err;) {
			struct hdr *h = (struct hdr *)a;
			uint32_t g = h->g;
			uint64_t bytes = (uint64_t)g * 16;
			if (g < MIN_G || bytes > hi - 8 - a) {
				cs->err = "block sizes do not tile the pool";
				break;
			}
			switch (GET_STATE(h)) {
			case ST_LIVE:
			case ST_CARVED:
				cs->live += bytes;
				if (st && g < NCLS)
					st->cls[g].frees++;
				break;
			case ST_CACHED:
				cs->cached += bytes;
				if (st && g < NCLS)
					st->cls[g].cached++;
				break;
			case ST_POOL: cs->pool += bytes; break;
			case ST_META: cs->meta += bytes; break;
			case ST_BIG: cs->big += bytes; break;
			default: cs->err = "block state unknown"; break;
			}
			if (!cs->err)
				a += bytes;
		}
		if (cs->err)
			cs->at = a;
	}
}

uint64_t kmalloc_cpu_cached_i(kmalloc_t *km, unsigned cpu, uint64_t *remote)
{
	struct kmalloc_pcpu *pc = cpu < ENV_MAX_CPUS ? __atomic_load_n(&km->pcpu[cpu], __ATOMIC_ACQUIRE) : NULL;
	uint64_t bytes = 0;

	*remote = 0;
	if (!pc)
		return 0;
	for (unsigned k = 0; k < NCLS; k++)
		for (struct clink *l = pc->cls[k].head; l; l = l->next)
			bytes += (uint64_t)k * 16;
	for (struct clink *l = __atomic_load_n(&pc->remote, __ATOMIC_ACQUIRE); l; l = l->next)
		*remote += (uint64_t)CB(l)->h.g * 16;
	return bytes + *remote;
}

void kmalloc_stats_i(kmalloc_t *km, struct kmalloc_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
		if (!pc)
			continue;
		out->cpus++;
		for (unsigned c = 0; c < NCLS; c++) {
			struct kmalloc_class_stats *s = &out->cls[c];
			uint64_t a = RD(pc->cls[c].allocs), m = RD(pc->cls[c].misses);
			s->allocs += a;
			s->misses += m;
			s->hits += a - m;
		}
		out->failures += RD(pc->failures);
		out->refused += RD(pc->refused);
	}
	struct census cs = { 0 };
	unsigned long fl = env_lock(&km->lock);
	census(km, &cs, out);   /* live blocks per class into .frees for now */
	for (unsigned c = 0; c < NCLS; c++) {
		struct kmalloc_class_stats *s = &out->cls[c];
		uint64_t live = s->frees;
		/* under load the counters and the census are not one instant */
		s->frees = s->allocs > live ? s->allocs - live : 0;
		out->live_bytes += live * c * 16;
		out->cached_bytes += s->cached * c * 16;
	}
	out->live_bytes += km->large_bytes + km->plarge_bytes;
	out->pool_free_bytes = km->pool_free;
	out->peak_bytes = km->peak;
	out->heap_bytes = km->heap_bytes;
	out->meta_bytes = km->meta_bytes;
	out->large_allocs = km->large_allocs;
	out->large_frees = km->large_frees;
	out->large_cached_bytes = km->lc_bytes;
	out->large_cached = km->lc_n;
	out->map_bytes = km->map_bytes;
	out->pool_extents = km->nextents;
	out->ranges = km->nchunks + km->nlarge;
	out->pool_chunks = km->nchunks;
	for (const struct kmalloc_range *r = km->chunks; r; r = r->next)
		out->pool_runs += !(r->prev && r->prev->end == r->base);
	env_unlock(&km->lock, fl);
}

void kmalloc_dump_i(kmalloc_t *km)
{
	static struct kmalloc_stats s;   /* too big for a kernel stack */
	static env_spinlock_t dump_lock = ENV_SPINLOCK_INIT;
	unsigned long fl = env_lock(&dump_lock);

	kmalloc_stats_i(km, &s);
	env_log("kmalloc: heap %llu B (+%llu meta, %llu map), live %llu, cached %llu, pool free %llu in %u extents, peak %llu",
		(unsigned long long)s.heap_bytes, (unsigned long long)s.meta_bytes,
		(unsigned long long)s.map_bytes, (unsigned long long)s.live_bytes, (unsigned long long)s.cached_bytes,
		(unsigned long long)s.pool_free_bytes, s.pool_extents, (unsigned long long)s.peak_bytes);
	env_log("kmalloc: large allocs %llu frees %llu, failures %llu, refused frees %llu, ranges %u (%u chunks)",
		(unsigned long long)s.large_allocs, (unsigned long long)s.large_frees,
		(unsigned long long)s.failures, (unsigned long long)s.refused, s.ranges, s.pool_chunks);
	for (unsigned c = 0; c < NCLS; c++) {
		struct kmalloc_class_stats *k = &s.cls[c];
		if (k->allocs)
			env_log("kmalloc:  %5u B: allocs %llu frees %llu hits %llu misses %llu cached %llu",
				c * 16, (unsigned long long)k->allocs, (unsigned long long)k->frees,
				(unsigned long long)k->hits, (unsigned long long)k->misses,
				(unsigned long long)k->cached);
	}
	env_unlock(&dump_lock, fl);
}

struct walk {
	kmalloc_t *km;
	uintptr_t prev_end;
	uint64_t bytes;
	uint32_t n;
	const char *err;
	uintptr_t at;
};

static uint32_t walk_tree(struct walk *w, struct fext *t, uint32_t parent_prio, int depth)
{
	if (!t || w->err)
		return 0;
	if (depth > 200 || prio(t) > parent_prio) {
		w->err = "treap shape broken";
		return 0;
	}
	uint32_t m = walk_tree(w, t->l, prio(t), depth + 1);
	uintptr_t a = (uintptr_t)t;
	const struct kmalloc_range *ri = kmalloc_map_find(w->km, a);
	uintptr_t lo, hi;
	if (!w->err) {
		w->at = a;
		if (t->h.state != ST_POOL || t->h.check != CK_KEY || t->h.g < MIN_G || (a & 15) != 8)
			w->err = "extent header bad";
		else if (a <= w->prev_end && w->prev_end)
			w->err = a == w->prev_end ? "adjacent extents not coalesced" : "extents overlap";
		else if (!ri || ri->kind != R_POOL)
			w->err = "extent outside the pool";
		else if ((kmalloc_run_of(ri, &lo, &hi), a + (uintptr_t)t->h.g * 16 > hi - 8))
			w->err = "extent runs past its chunk";
	}
	w->prev_end = a + (uintptr_t)t->h.g * 16;
	w->bytes += (uint64_t)t->h.g * 16;
	w->n++;
	uint32_t r = walk_tree(w, t->r, prio(t), depth + 1);
	if (m < t->h.g)
		m = t->h.g;
	if (m < r)
		m = r;
	if (!w->err && t->max_g != m) {
		w->at = a;
		w->err = "subtree maximum wrong";
	}
	return m;
}

/* A cached block: in the pool, right header, not overlapping a free extent. */
static const char *check_cached(kmalloc_t *km, struct cblk *b, uint32_t cpu, int cls)
{
	const struct kmalloc_range *ri = kmalloc_map_find(km, (uintptr_t)b);
	struct fext *lo, *hi;

	if (!ri || ri->kind != R_POOL || ((uintptr_t)b & 15) != 8)
		return "cached block outside the pool";
	if (b->h.state != ST_CACHED || b->h.check != CK_KEY || b->h.cpu != cpu)
		return "cached block header bad";
	if ((cls >= 0 && b->h.g != (uint32_t)cls) || b->h.g >= NCLS || b->h.g < MIN_G)
		return "cached block in the wrong class";
	for (struct fext *t = km->root; t;)    /* kmalloc_pool_neighbours() panics on equality */
		if ((uintptr_t)t == (uintptr_t)b)
			return "cached block is also free in the pool";
		else
			t = (uintptr_t)t < (uintptr_t)b ? t->r : t->l;
	kmalloc_pool_neighbours(km, (uintptr_t)b, &lo, &hi);
	if ((lo && (uintptr_t)lo + (uintptr_t)lo->h.g * 16 > (uintptr_t)b) ||
	    (hi && (uintptr_t)hi < (uintptr_t)b + (uintptr_t)b->h.g * 16))
		return "cached block overlaps a free extent";
	return NULL;
}

static const char *check_pcpu(kmalloc_t *km, struct kmalloc_pcpu *pc, uint64_t *bytes,
			      uintptr_t *at)
{
	uint64_t limit = km->pool_bytes / MIN_EXT + 1;
	const char *e;

	for (uint32_t c = 0; c < NCLS; c++) {
		uint64_t n = 0, last = UINT64_MAX;
		for (struct clink *l = pc->cls[c].head; l; l = l->next) {
			struct cblk *b = CB(l);
			*at = (uintptr_t)b;
			if ((e = check_cached(km, b, pc->cpu, (int)c)))
				return e;
			if (++n > limit)
				return "cache list loops";
			if (b->stamp > last)
				return "cache list not in free order";
			last = b->stamp;
			*bytes += (uint64_t)c * 16;
		}
	}
	uint64_t n = 0;
	for (struct clink *l = __atomic_load_n(&pc->remote, __ATOMIC_ACQUIRE); l; l = l->next) {
		struct cblk *b = CB(l);
		*at = (uintptr_t)b;
		if ((e = check_cached(km, b, pc->cpu, -1)))
			return e;
		if (++n > limit)
			return "remote list loops";
		*bytes += (uint64_t)b->h.g * 16;
	}
	return NULL;
}

int kmalloc_check_i(kmalloc_t *km, unsigned flags)
{
	struct walk w = { .km = km };
	struct census cs = { 0 };
	uint64_t cached = 0;
	unsigned long fl;

	if (km->magic != KM_MAGIC) {
		env_log("kmalloc_check: instance not initialised");
		return E_CORRUPT;
	}
	fl = env_lock(&km->lock);
	w.err = kmalloc_map_check(km, &w.at);
	if (!w.err)
		walk_tree(&w, km->root, UINT32_MAX, 0);
	if (!w.err && (w.bytes != km->pool_free || w.n != km->nextents))
		w.err = "pool totals disagree with the extents";
	struct kmalloc_pcpu *me = pcpu_self(km);
	for (unsigned i = 0; i < ENV_MAX_CPUS && !w.err; i++) {
		struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
		if (!pc || (pc != me && !(flags & KMALLOC_CHECK_ALL)))
			continue;
		w.err = check_pcpu(km, pc, &cached, &w.at);
	}
	/* Block headers tile the pool; the free ones are the tree's extents.
	 * Quiescent, also: the cached ones are exactly those on the lists, and
	 * per-CPU data and large blocks in the pool match their totals. */
	if (!w.err) {
		census(km, &cs, NULL);
		w.at = cs.at;
		if (cs.err)
			w.err = cs.err;
		else if (cs.live + cs.cached + cs.pool + cs.meta + cs.big != km->pool_bytes)
			w.err = "block sizes do not add up to the pool";
		else if (cs.pool != km->pool_free)
			w.err = "free blocks disagree with the pool total";
	}
	if (!w.err && (flags & KMALLOC_CHECK_ALL)) {
		w.at = 0;
		if (cs.cached != cached)
			w.err = "cached blocks in the pool disagree with the cache lists";
		else if (cs.meta != km->meta_bytes || cs.big != km->plarge_bytes)
			w.err = "per-CPU data or large blocks in the pool disagree with their totals";
	}
	env_unlock(&km->lock, fl);
	if (w.err) {
		env_log("kmalloc_check: %s at %p", w.err, (void *)w.at);
		return E_CORRUPT;
	}
	return 0;
}
