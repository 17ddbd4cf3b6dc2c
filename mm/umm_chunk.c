/* umm_chunk.c - umm's micro locks (compare-and-swap on a chunk's header
 * word), the lock-free deferred list, and free with merging.
 *
 * Lock order (docs/UMM.md): a CPU may WAIT for a chunk lock only at a
 * higher address than every chunk lock it holds, and never while holding a
 * bin lock; a lower chunk is only try-locked, and on failure everything is
 * released (back-off). Bins are taken after chunks, highest index first.
 */
#include "umm_int.h"

/* Set LOCK on chunk c whatever its state. Fast: give up at once if it is
 * held. Slow: wait (callers hold only lower chunks and no bin). Returns the
 * locked header, 0 on failure. */
uint64_t umm_lock_chunk(struct umm_cpu *me, uintptr_t c, bool fast)
{
	uint64_t h = hload(c);
	for (;;) {
		if (h & H_LOCK) {
			padd(&me->retries, 1);
			if (fast)
				return 0;
			env_cpu_relax();
			h = hload(c);
			continue;
		}
		if (hcas(c, &h, h | H_LOCK))
			return h | H_LOCK;
	}
}

void umm_push_deferred(umm_t *m, uintptr_t c)
{
	void **link = (void **)(c + HDR);
	void *old = __atomic_load_n(&m->deferred, __ATOMIC_RELAXED);
	do {
		*link = old;
	} while (!__atomic_compare_exchange_n(&m->deferred, &old, (void *)c, true,
					      __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* Release LOCK on c, clearing `clr` and setting `set`. A free that arrived
 * while we held the lock (PENDING) is carried out by parking the chunk on
 * the deferred list. */
void umm_unlock_chunk(umm_t *m, uintptr_t c, uint64_t clr, uint64_t set)
{
	uint64_t h = hload(c), n;
	bool defer;
	do {
		n = (h & ~(H_LOCK | clr)) | set;
		defer = (n & H_PENDING) != 0;
		if (defer)   /* parked, tags 0 */
			n = (n & ~(H_PENDING | H_TAG_MASK)) | H_PARKED;
	} while (!hcas(c, &h, n));
	if (defer)
		umm_push_deferred(m, c);
}

/* Take a live block from its owner: sets LOCK on a used, unparked,
 * unlocked header. If a neighbour holds the lock, mark the block PENDING so
 * the holder parks it (never waits). */
int umm_claim(uintptr_t c, uint64_t *out)
{
	uint64_t h = hload(c);
	for (;;) {
		if (!(h & H_USED) || (h & (H_PARKED | H_PENDING)))
			return CLAIM_BAD;
		if (h & H_LOCK) {
			if (hcas(c, &h, h | H_PENDING)) {
				*out = h;
				return CLAIM_PENDING;
			}
			continue;
		}
		if (hcas(c, &h, h | H_LOCK)) {
			*out = h | H_LOCK;
			return CLAIM_OK;
		}
	}
}

/* Claim a live block, waiting while a neighbour holds its lock (realloc). */
uint64_t umm_claim_wait(struct umm_cpu *me, uintptr_t c)
{
	uint64_t h;
	for (;;) {
		h = hload(c);
		if (!(h & H_USED) || (h & (H_PARKED | H_PENDING)))
			return 0;
		if (h & H_LOCK) {
			padd(&me->retries, 1);
			env_cpu_relax();
			continue;
		}
		if (hcas(c, &h, h | H_LOCK))
			return h | H_LOCK;
	}
}

/* Turn a parked chunk we own into a locked, unparked one (slow path). */
static void claim_parked(struct umm_cpu *me, uintptr_t c)
{
	uint64_t h = hload(c);
	for (;;) {
		if (h & H_LOCK) {
			padd(&me->retries, 1);
			env_cpu_relax();
			h = hload(c);
			continue;
		}
		if (hcas(c, &h, (h | H_LOCK) & ~H_PARKED))
			return;
	}
}

/* Our claimed chunk c (LOCK) becomes parked (unlocked); a concurrent second
 * free (PENDING) is a double free and is dropped. */
void umm_park(umm_t *m, uintptr_t c)
{
	uint64_t h = hload(c), n;
	do {
		n = (h & ~(H_LOCK | H_PENDING | H_TAG_MASK)) | H_PARKED;
	} while (!hcas(c, &h, n));
	if (h & H_PENDING)
		umm_bad_input(m, "umm_free", (void *)(c + HDR), "double free");
}

/* ---- free and merge ------------------------------------------------------- */

/* Lock the free chunk below x (x is locked by us, PREVFREE set). Try-lock
 * only: it is at a lower address. Its footer may be rewritten meanwhile by
 * a carve of that chunk (which holds it locked), hence the checks. */
static uintptr_t lock_prev(umm_t *m, struct umm_cpu *me, uintptr_t x, uint64_t *hw)
{
	size_t f = fload(x);
	if (f == 0 || f > (x - m->base) / UNIT)
		env_panic("umm_free: bad footer below %p", (void *)x);
	uintptr_t w = x - f * UNIT;
	uint64_t h = spec_load(w);
	if (!bm_test(m, w) || (h & (H_USED | H_LOCK)) || h_units(h) != f ||
	    !spec_cas(w, &h, h | H_LOCK)) {
		padd(&me->retries, 1);
		return 0;
	}
	*hw = h | H_LOCK;
	return w;
}

/* The parts of a free: x (claimed), its successor n (locked) and the free
 * chunk w below it (locked, or 0), and the bins they leave and join. */
struct merge {
	uintptr_t x, n, w, start;
	uint64_t hn, hw;
	size_t units;
	int br, bn, bw;         /* bins of the result, n and w (-1: none) */
	int bins[3];            /* the same, in lock order (umm_bins_lock) */
	unsigned long fl[3];
};

static void plan(struct merge *g)
{
	bool nfree = !(g->hn & H_USED);
	size_t sx = h_units(hload(g->x)), sn = nfree ? h_units(g->hn) : 0, sw = g->w ? h_units(g->hw) : 0;

	g->start = g->w ? g->w : g->x;
	g->units = sx + sn + sw;
	g->bins[0] = g->br = g->units >= 2 ? umm_bin_of(g->units) : -1;
	g->bins[1] = g->bn = sn >= 2 ? umm_bin_of(sn) : -1;
	g->bins[2] = g->bw = sw >= 2 ? umm_bin_of(sw) : -1;
}

/* With every lock held: n and w leave their lists, the three become one free
 * chunk (still locked) on its list. Removed boundaries leave the bitmap
 * before their headers are cleared, and both before the merged header
 * appears. */
static void merge(umm_t *m, struct merge *g)
{
	bool nfree = !(g->hn & H_USED);
	uintptr_t stop = g->start + g->units * UNIT;
	size_t sx = h_units(hload(g->x));
	uint64_t dirty = sx * UNIT;

	if (g->bn >= 0)
		umm_bin_unlink(m, g->bn, g->n);
	if (g->bw >= 0)
		umm_bin_unlink(m, g->bw, g->w);
	if (nfree)
		dirty += umm_dirty(g->n, h_units(g->hn));
	if (g->w)
		dirty += umm_dirty(g->w, h_units(g->hw));
	fstore(stop, g->units);
	if (nfree) {
		bm_clear(m, g->n);
		hstore(g->n, 0);
	}
	if (g->w) {
		bm_clear(m, g->x);
		hstore(g->x, 0);
		hstore(g->w, mkfree(g->units, g->hw & H_PREVFREE) | H_LOCK);
	} else {
		uint64_t h = hload(g->x);
		while (!hcas(g->x, &h, mkfree(g->units, h & H_PREVFREE) | H_LOCK))
			;
		if (h & H_PENDING)
			umm_bad_input(m, "umm_free", (void *)(g->x + HDR), "double free");
	}
	umm_set_dirty(g->start, g->units, dirty);
	if (g->br >= 0)
		umm_bin_push(m, g->br, g->start);
}

/* Undo the neighbour locks of a free that could not get its bins. */
static void unlock_neighbours(umm_t *m, struct merge *g)
{
	if (g->w)
		hstore(g->w, g->hw & ~H_LOCK);   /* free chunks never get PENDING */
	umm_unlock_chunk(m, g->n, 0, 0);
}

/* Return claimed chunk x to the pool. Fast: false if any lock is busy (x is
 * still claimed). Slow: backs off (parks x, releasing its lock, so whoever
 * holds the lower chunk and waits for x can finish) and retries. */
bool umm_free_claimed(umm_t *m, struct umm_cpu *me, uintptr_t x, bool fast)
{
	for (;;) {
		struct merge g = { .x = x };
		uint64_t hx = hload(x);

		g.n = x + h_units(hx) * UNIT;
		if (!(g.hn = umm_lock_chunk(me, g.n, fast)))
			return false;
		if ((hx & H_PREVFREE) && !(g.w = lock_prev(m, me, x, &g.hw))) {
			umm_unlock_chunk(m, g.n, 0, 0);
			if (fast)
				return false;
			umm_park(m, x);
			for (unsigned i = 0; i < 32; i++)
				env_cpu_relax();
			claim_parked(me, x);
			continue;
		}
		plan(&g);
		if (!umm_bins_lock(m, g.bins, g.fl, fast)) {
			unlock_neighbours(m, &g);
			return false;
		}
		merge(m, &g);
		umm_bins_unlock(m, g.bins, g.fl);
		if (g.hn & H_USED)
			umm_unlock_chunk(m, g.n, 0, H_PREVFREE);
		umm_maybe_release(m, me, g.start, g.units);
		hstore(g.start, hload(g.start) & ~H_LOCK);
		return true;
	}
}

/* Slow path: free every chunk parked on the deferred list. Consumers take the
 * whole list with one exchange, so pops never race and ABA cannot arise. */
void umm_drain(umm_t *m, struct umm_cpu *me)
{
	if (!__atomic_load_n(&m->deferred, __ATOMIC_RELAXED))
		return;
	uintptr_t c = (uintptr_t)__atomic_exchange_n(&m->deferred, NULL, __ATOMIC_ACQUIRE);
	while (c) {
		uintptr_t next = (uintptr_t)*(void **)(c + HDR);
		claim_parked(me, c);
		umm_free_claimed(m, me, c, false);
		c = next;
	}
}
