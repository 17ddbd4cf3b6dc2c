/* umm_fit.c - where umm's blocks come from: segregated free lists indexed
 * by a two-level bitmap (good fit in a bounded number of steps, whatever
 * the number of chunks), carving, the lazily initialised boundary bitmap
 * and the pages of big free chunks given back to the environment.
 *
 * Bins: a free chunk of s >= 2 units is on the doubly linked list of bin
 * umm_bin_of(s): bins 0..15 hold exactly s units; above, row r >= 1 covers
 * [2^(r+3), 2^(r+4)) units in 16 equal bins. row_map says which rows have
 * a non-empty bin, bin_map[r] which bins of row r. A search looks at the
 * bin of its size (whose chunks may be smaller: it checks a few) and then
 * at the first non-empty bin above (every chunk there fits), each step a
 * bitmap lookup; among the first SCAN chunks of a bin it takes the lowest
 * address, so the pool's low end is reused before fresh memory (the big
 * untouched chunk at the top sits in the highest bin) is carved.
 *
 * Locks: a bin's lock guards its head and its chunks' links. A bin holder
 * only try-locks chunks, and waits only for bins of lower index; chunk
 * lock holders may wait for bins (highest index first). See umm_int.h.
 */
#include "umm_int.h"

#include <string.h>

#define SCAN         4             /* entries of a bin a search compares */
#define BM_STEP      512           /* bitmap words initialised at a time (4 KiB) */
#define RELEASE_MIN  (256u * 1024) /* free chunks this big give pages back... */
#define RELEASE_DIRTY RELEASE_MIN  /* ...once this many bytes were written since */

/* ---- bins ------------------------------------------------------------------ */

static inline unsigned log2u(size_t u) { return 63u - (unsigned)__builtin_clzll((unsigned long long)u); }

int umm_bin_of(size_t units)
{
	if (units < 16)
		return (int)units;
	unsigned fl = log2u(units);
	return (int)(16 * (fl - 3) + ((units >> (fl - 4)) & 15));
}

/* First non-empty bin at index >= i, or -1 (racy: confirmed under the lock). */
static int next_bin(const umm_t *m, int i)
{
	if (i >= UMM_NBINS)
		return -1;
	unsigned r = (unsigned)i / 16;
	uint32_t b = __atomic_load_n(&m->bin_map[r], __ATOMIC_RELAXED) & (~0u << (i % 16));
	if (b)
		return (int)(16 * r + (unsigned)__builtin_ctz(b));
	uint64_t rows = r + 1 < 64 ? __atomic_load_n(&m->row_map, __ATOMIC_RELAXED) & (~0ull << (r + 1)) : 0;
	while (rows) {
		r = (unsigned)__builtin_ctzll(rows);
		b = __atomic_load_n(&m->bin_map[r], __ATOMIC_RELAXED);
		if (b)
			return (int)(16 * r + (unsigned)__builtin_ctz(b));
		rows &= rows - 1;
	}
	return -1;
}

/* Bin lock held. The row bit is cleared only after the row's word read 0,
 * and set again if a push raced in (seq_cst: one of the two sees the other). */
void umm_bin_push(umm_t *m, int i, uintptr_t c)
{
	struct umm_bin *b = &m->bin[i];
	set_link(c, 0, b->head);
	set_link(c, 1, 0);
	if (b->head)
		set_link(b->head, 1, c);
	else {
		__atomic_fetch_or(&m->bin_map[i / 16], 1u << (i % 16), __ATOMIC_SEQ_CST);
		__atomic_fetch_or(&m->row_map, 1ull << (i / 16), __ATOMIC_SEQ_CST);
	}
	b->head = c;
}

void umm_bin_unlink(umm_t *m, int i, uintptr_t c)
{
	struct umm_bin *b = &m->bin[i];
	uintptr_t next = link_of(c, 0), prev = link_of(c, 1);
	if (prev)
		set_link(prev, 0, next);
	else
		b->head = next;
	if (next)
		set_link(next, 1, prev);
	if (b->head)
		return;
	unsigned r = (unsigned)i / 16;
	if (__atomic_and_fetch(&m->bin_map[r], ~(1u << (i % 16)), __ATOMIC_SEQ_CST))
		return;
	__atomic_fetch_and(&m->row_map, ~(1ull << r), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&m->bin_map[r], __ATOMIC_SEQ_CST))
		__atomic_fetch_or(&m->row_map, 1ull << r, __ATOMIC_SEQ_CST);
}

/* Sort the (up to three) indexes downwards, duplicates and -1 last as -1. */
static void bins_order(int idx[3])
{
	for (int a = 0; a < 3; a++)
		for (int b = a + 1; b < 3; b++) {
			if (idx[b] == idx[a])
				idx[b] = -1;
			else if (idx[b] > idx[a]) {
				int t = idx[a];
				idx[a] = idx[b];
				idx[b] = t;
			}
		}
	for (int a = 0; a < 2; a++)   /* a -1 may sit before a duplicate's partner */
		if (idx[a] == idx[a + 1])
			idx[a + 1] = -1;
}

bool umm_bins_lock(umm_t *m, int idx[3], unsigned long flags[3], bool fast)
{
	bins_order(idx);
	for (int a = 0; a < 3; a++) {
		if (idx[a] < 0)
			continue;
		if (!fast) {
			flags[a] = env_lock(&m->bin[idx[a]].lock);
		} else if (!env_trylock(&m->bin[idx[a]].lock, &flags[a])) {
			while (a--)
				if (idx[a] >= 0)
					env_unlock(&m->bin[idx[a]].lock, flags[a]);
			return false;
		}
	}
	return true;
}

void umm_bins_unlock(umm_t *m, int idx[3], unsigned long flags[3])
{
	for (int a = 2; a >= 0; a--)
		if (idx[a] >= 0)
			env_unlock(&m->bin[idx[a]].lock, flags[a]);
}

/* ---- lazy bitmap ------------------------------------------------------------ */

bool umm_bm_cover(umm_t *m, uintptr_t a, bool fast)
{
	size_t w = bidx(m, a) / 64;
	unsigned long fl;

	if (w < __atomic_load_n(&m->bm_ready, __ATOMIC_ACQUIRE))
		return true;
	if (fast) {
		if (!env_trylock(&m->bm_lock, &fl))
			return false;
	} else {
		fl = env_lock(&m->bm_lock);
	}
	size_t ready = m->bm_ready, to = (w / BM_STEP + 1) * BM_STEP;
	if (to > m->bm_words)
		to = m->bm_words;
	if (w >= ready) {
		memset(m->bitmap + ready, 0, (to - ready) * sizeof(uint64_t));
		size_t e = bidx(m, m->end);
		if (e / 64 < to)   /* the sentinel's word: keep its bit */
			m->bitmap[e / 64] |= (uint64_t)1 << (e % 64);
		__atomic_store_n(&m->bm_ready, to, __ATOMIC_RELEASE);
		uintptr_t span = to * 64 * UNIT;
		__atomic_store_n(&m->bm_span, span < m->end - m->base ? span : m->end - m->base,
				 __ATOMIC_RELEASE);
	}
	env_unlock(&m->bm_lock, fl);
	return true;
}

uintptr_t umm_next_boundary(const umm_t *m, uintptr_t c, size_t words)
{
	size_t i = bidx(m, c) + 1, last = bidx(m, m->end);
	size_t lim = __atomic_load_n(&m->bm_ready, __ATOMIC_ACQUIRE) * 64;
	if (lim > last + 1)
		lim = last + 1;
	for (size_t n = 0; i < lim && (!words || n < words); n++) {
		uint64_t w = __atomic_load_n(&m->bitmap[i / 64], __ATOMIC_ACQUIRE) >> (i % 64);
		if (w)
			return m->base + (i + (size_t)__builtin_ctzll(w)) * UNIT;
		i = (i / 64 + 1) * 64;
	}
	return i >= lim ? m->end : 0;
}

/* ---- pages given back -------------------------------------------------------- */

uint64_t umm_dirty(uintptr_t c, size_t s)
{
	return s * UNIT >= RELEASE_MIN ? *pword(c, 2) : (uint64_t)s * UNIT;
}

void umm_set_dirty(uintptr_t c, size_t s, uint64_t d)
{
	if (s * UNIT >= RELEASE_MIN)
		*pword(c, 2) = d < s * UNIT ? d : (uint64_t)s * UNIT;
}

void umm_maybe_release(umm_t *m, struct umm_cpu *me, uintptr_t c, size_t s)
{
	if (s * UNIT < RELEASE_MIN || *pword(c, 2) < RELEASE_DIRTY)
		return;
	/* keep the header, the links and the dirty word, and the footer */
	uintptr_t lo = (c + HDR + 3 * sizeof(uint64_t) + ENV_PAGE_SIZE - 1) & ~(uintptr_t)(ENV_PAGE_SIZE - 1);
	uintptr_t hi = (c + s * UNIT - 8) & ~(uintptr_t)(ENV_PAGE_SIZE - 1);
	*pword(c, 2) = 0;
	if (hi > lo && env_release_pages((void *)lo, hi - lo) == 0)
		padd(&me->released, hi - lo);
}

/* ---- carving ------------------------------------------------------------------- */

/* A chunk taken from bin i for a block: x (header hx, locked by us, still
 * listed), the block at unit offset off, need units. */
struct cut {
	uintptr_t x, c, r, n;
	uint64_t hx;
	size_t off, need, tail;
	int bl, bt;             /* the lead's and the tail's bins (-1: none) */
	int bins[3];            /* bins held: x's first (fast), in lock order */
	unsigned long fl[3];
};

/* Everything a carve needs, before it changes anything: the bitmap below
 * its new boundaries, the successor's lock for an exact fit (only tried:
 * we hold a bin) and the remainders' bins (fast: tried; slow: bins below
 * x's, waited for after x's is released). */
static bool cut_prepare(umm_t *m, struct umm_cpu *me, struct cut *k, bool fast)
{
	size_t s = h_units(k->hx);
	k->tail = s - k->off - k->need;
	k->n = k->x + s * UNIT;
	k->c = k->x + k->off * UNIT;
	k->r = k->c + k->need * UNIT;
	if (!umm_bm_cover(m, k->tail ? k->r : k->c, fast))
		return false;
	if (!k->tail && !umm_lock_chunk(me, k->n, true))
		return false;
	k->bl = k->off >= 2 ? umm_bin_of(k->off) : -1;
	k->bt = k->tail >= 2 ? umm_bin_of(k->tail) : -1;
	if (!fast)
		return true;
	/* x's bin is held: lock the others (try-locks, any order is safe) */
	int rest[3] = { k->bl != k->bins[0] ? k->bl : -1, k->bt != k->bins[0] ? k->bt : -1, -1 };
	unsigned long rfl[3];
	if (!umm_bins_lock(m, rest, rfl, true)) {
		if (!k->tail)
			umm_unlock_chunk(m, k->n, 0, 0);
		return false;
	}
	k->bins[1] = rest[0];
	k->bins[2] = rest[1];
	k->fl[1] = rfl[0];
	k->fl[2] = rfl[1];
	return true;
}

/* Cut the block out of x: the leading part stays free (x), a tail becomes a
 * new free chunk (written locked, listed, then unlocked), an exact fit
 * clears the successor's PREVFREE. Holds x's bin on entry (fast: also the
 * others); returns with no bin held. */
static uintptr_t cut(umm_t *m, struct cut *k, uint8_t tags, unsigned alog, bool fast)
{
	uint64_t dirty = umm_dirty(k->x, h_units(k->hx));

	__atomic_fetch_add(&m->carving, 1, __ATOMIC_ACQ_REL);
	umm_bin_unlink(m, k->bins[0], k->x);
	if (!fast) {
		/* x is ours and off its list: drop its bin, wait for the
		 * remainders' (chunk locks held, highest bin first) */
		env_unlock(&m->bin[k->bins[0]].lock, k->fl[0]);
		k->bins[0] = k->bl;
		k->bins[1] = k->bt;
		k->bins[2] = -1;
		umm_bins_lock(m, k->bins, k->fl, false);
	}
	if (k->tail) {
		hstore(k->r, mkfree(k->tail, 0) | H_LOCK);
		bm_set(m, k->r);
		fstore(k->n, k->tail);
		umm_set_dirty(k->r, k->tail, dirty);
		if (k->bt >= 0)
			umm_bin_push(m, k->bt, k->r);
	}
	if (k->off) {
		fstore(k->c, k->off);
		hstore(k->c, mkused(k->need, tags, alog) | H_PREVFREE);
		bm_set(m, k->c);
		hstore(k->x, mkfree(k->off, k->hx & H_PREVFREE) | H_LOCK);
		umm_set_dirty(k->x, k->off, dirty);
		if (k->bl >= 0)
			umm_bin_push(m, k->bl, k->x);
	} else {
		hstore(k->x, mkused(k->need, tags, alog) | (k->hx & H_PREVFREE));
	}
	umm_bins_unlock(m, k->bins, k->fl);
	__atomic_fetch_add(&m->carved, 1, __ATOMIC_RELEASE);
	__atomic_fetch_sub(&m->carving, 1, __ATOMIC_RELEASE);
	if (k->tail)
		hstore(k->r, mkfree(k->tail, 0));
	if (k->off)
		hstore(k->x, mkfree(k->off, k->hx & H_PREVFREE));
	if (!k->tail)
		umm_unlock_chunk(m, k->n, H_PREVFREE, 0);
	return k->c;
}

/* Where in free chunk x (s units) a block fits: unit offset, or -1. */
static long placement(uintptr_t x, size_t s, size_t need, size_t align)
{
	size_t off = 0;

	if (align > UNIT) {
		uintptr_t p = (x + HDR + align - 1) & ~(uintptr_t)(align - 1);
		off = (p - HDR - x) / UNIT;
	}
	return off + need <= s ? (long)off : -1;
}

/* ---- search -------------------------------------------------------------------- */

/* In locked bin i, the lowest-addressed chunk that can hold the block
 * among the first SCAN that can (looking at PICK_MAX entries at most), and
 * locked by us; 0 if none (*busy set if a candidate was locked). */
#define PICK_MAX 16
static uintptr_t pick(umm_t *m, int i, size_t need, size_t align, uint64_t *hp, long *offp,
		      unsigned *steps, bool *busy)
{
	uintptr_t best = 0, x = m->bin[i].head;
	uint64_t hb = 0;
	long ob = -1;
	unsigned fit = 0;

	for (unsigned j = 0; x && j < PICK_MAX && fit < SCAN; j++, x = link_of(x, 0)) {
		uint64_t h = hload(x);
		long off = placement(x, h_units(h), need, align);
		++*steps;
		if (off < 0)
			continue;
		fit++;
		if (h & H_LOCK)
			*busy = true;
		else if (!best || x < best) {
			best = x;
			hb = h;
			ob = off;
		}
	}
	if (best && !hcas(best, &hb, hb | H_LOCK)) {
		*busy = true;
		return 0;
	}
	*hp = hb | H_LOCK;
	*offp = ob;
	return best;
}

/* One pass over the bins that may hold `want` units; 0 if none gave a
 * chunk (*busy: some were locked, a slow caller may try again). */
static uintptr_t find_once(umm_t *m, struct umm_cpu *me, size_t need, size_t want, size_t align,
			   uint8_t tags, unsigned alog, bool fast, bool *busy)
{
	unsigned steps = 0;
	uint32_t carved = __atomic_load_n(&m->carved, __ATOMIC_ACQUIRE);
	uintptr_t c = 0;

	for (int i = next_bin(m, umm_bin_of(want)); i >= 0 && !c; i = next_bin(m, i + 1)) {
		struct cut k = { .need = need, .bl = -1, .bt = -1, .bins = { i, -1, -1 } };
		steps++;
		if (fast) {
			if (!env_trylock(&m->bin[i].lock, &k.fl[0])) {
				*busy = true;
				continue;
			}
		} else {
			k.fl[0] = env_lock(&m->bin[i].lock);
		}
		long off;
		k.x = pick(m, i, need, align, &k.hx, &off, &steps, busy);
		if (k.x) {
			k.off = (size_t)off;
			if (cut_prepare(m, me, &k, fast)) {
				c = cut(m, &k, tags, alog, fast);
				break;
			}
			hstore(k.x, k.hx & ~H_LOCK);
			*busy = true;
		}
		env_unlock(&m->bin[i].lock, k.fl[0]);
		if (steps > 128)
			break;
	}
	/* nothing found while memory may have been between bins: not a
	 * verdict (the caller's slow path passes again) */
	if (!c && (__atomic_load_n(&m->carving, __ATOMIC_ACQUIRE) ||
		   __atomic_load_n(&m->carved, __ATOMIC_ACQUIRE) != carved))
		*busy = true;
	padd(&me->steps, steps);
	return c;
}

/* Good fit: a bounded number of bins and entries per pass, whatever the
 * number of chunks. The fast path makes one pass with try-locks only; the
 * slow path passes again while chunks that might fit were busy. */
uintptr_t umm_find(umm_t *m, struct umm_cpu *me, size_t need, size_t align, uint8_t tags,
		   unsigned alog, bool fast)
{
	size_t want = need + (align > UNIT ? align / UNIT - 1 : 0);
	uintptr_t c;
	bool busy;

	padd(&me->searches, 1);
	for (unsigned pass = 0;; pass++) {
		busy = false;
		c = find_once(m, me, need, want, align, tags, alog, fast, &busy);
		if (c || fast || !busy || pass >= 4096)
			return c;
		padd(&me->retries, 1);
		for (unsigned i = 0; i < 16 * pass + 1; i++)
			env_cpu_relax();
	}
}

/* Grow c (claimed, hc) in place into its free successor; false if it is not
 * free or too small (nothing changed). */
bool umm_grow_in_place(umm_t *m, struct umm_cpu *me, uintptr_t c, uint64_t hc, size_t need)
{
	size_t s = h_units(hc);
	uintptr_t n = c + s * UNIT;
	uint64_t hn = umm_lock_chunk(me, n, false);

	if ((hn & H_USED) || s + h_units(hn) < need) {
		umm_unlock_chunk(m, n, 0, 0);
		return false;
	}
	size_t sn = h_units(hn), tail = s + sn - need;
	uintptr_t n2 = n + sn * UNIT, r = c + need * UNIT;
	uint64_t dirty = umm_dirty(n, sn);
	if (!tail)
		umm_lock_chunk(me, n2, false);
	umm_bm_cover(m, r, false);
	int bins[3] = { sn >= 2 ? umm_bin_of(sn) : -1, tail >= 2 ? umm_bin_of(tail) : -1, -1 };
	unsigned long fl[3];
	umm_bins_lock(m, bins, fl, false);
	if (sn >= 2)
		umm_bin_unlink(m, umm_bin_of(sn), n);
	if (tail) {
		hstore(r, mkfree(tail, 0) | H_LOCK);
		bm_set(m, r);
		fstore(n2, tail);
		umm_set_dirty(r, tail, dirty);
		if (tail >= 2)
			umm_bin_push(m, umm_bin_of(tail), r);
	}
	if (r != n) {
		bm_clear(m, n);
		hstore(n, 0);
	}
	umm_bins_unlock(m, bins, fl);
	uint64_t h = hc;
	while (!hcas(c, &h, (h & ~H_SIZE_MASK) | ((uint64_t)need << H_SIZE_SHIFT)))
		;
	if (tail)
		hstore(r, mkfree(tail, 0));
	else
		umm_unlock_chunk(m, n2, H_PREVFREE, 0);
	padd(&me->p_in, (need - s) * UNIT);
	return true;
}
