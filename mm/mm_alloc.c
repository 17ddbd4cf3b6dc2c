/* mm_alloc.c - allocation in an area's dynamic part: boundary-tagged chunks
 * on a two-level segregated fit (TLSF-style: one bitmap of first levels,
 * one bitmap of lists per first level, one LIFO list per size class).
 * Allocation takes the head of the first non-empty list whose every chunk
 * fits, found with two bit scans; freeing merges with both neighbours
 * through the boundary tags. Every call is O(1), its checks included: each
 * chunk it touches and each link it follows or rewrites is checked once
 * (docs/MM.md, "Trust model").
 *
 * The helpers work on a struct view (mm_int.h): the bounds in locals, so
 * that the checks against them cost no reloads after each store.
 */
#include "mm_int.h"

/* A free chunk's links, read once and checked (safe unlink). */
struct links {
	uint64_t next, back;
};

static ALWAYS_INLINE void map_set(const struct view *v, unsigned i)
{
	unsigned f = i / SL_COUNT;
	uint8_t m = VL(v, sl_map[f]), bit = (uint8_t)(1u << (i % SL_COUNT));
	uint32_t fl = VL(v, fl_map);

	if (!(m & bit))
		VS(v, sl_map[f], (uint8_t)(m | bit));
	if (!(fl & 1u << f))
		VS(v, fl_map, fl | 1u << f);
}

static ALWAYS_INLINE void map_clear(const struct view *v, unsigned i)
{
	unsigned f = i / SL_COUNT;
	uint8_t m = (uint8_t)(VL(v, sl_map[f]) & ~(1u << (i % SL_COUNT)));

	VS(v, sl_map[f], m);
	if (!m)
		VS(v, fl_map, VL(v, fl_map) & ~(1u << f));
}

/* The links of free chunk c on list i: both neighbours must point back at
 * c (a list head has no back link and is the head of its list). */
static ALWAYS_INLINE int links_of(const struct view *v, uint64_t c, unsigned i,
				  struct links *l)
{
	uint64_t next = vld(v, c + C_NEXT), back = vld(v, c + C_BACK), s;

	if (next == c || back == c)
		return E_CORRUPT;
	if (next && (free_at(v, next, &s) || vld(v, next + C_BACK) != c))
		return E_CORRUPT;
	if (back ? free_at(v, back, &s) || vld(v, back + C_NEXT) != c
		 : VL(v, heads[i]) != c)
		return E_CORRUPT;
	l->next = next;
	l->back = back;
	return 0;
}

/* Take a chunk off list i by its checked links. */
static ALWAYS_INLINE void unlink_at(const struct view *v, unsigned i, const struct links *l)
{
	if (l->next)
		vst(v, l->next + C_BACK, l->back);
	if (l->back) {
		vst(v, l->back + C_NEXT, l->next);
		return;
	}
	VS(v, heads[i], l->next);
	if (!l->next)
		map_clear(v, i);
}

/* Write a free chunk header at c and put it at the head of its list. */
static ALWAYS_INLINE int push(const struct view *v, uint64_t c, uint64_t size)
{
	unsigned i = list_of(size);
	uint64_t head = VL(v, heads[i]), s;

	if (head && (head == c || free_at(v, head, &s) || vld(v, head + C_BACK)))
		return E_CORRUPT;
	vst(v, c + C_SIZE, size);
	vst(v, c + C_NEXT, head);
	vst(v, c + C_BACK, 0);
	if (head)
		vst(v, head + C_BACK, c);
	VS(v, heads[i], c);
	map_set(v, i);
	return 0;
}

/* Tell the chunk after c (if any) that c is now `size` bytes long, and keep
 * the header's `top` pointing at the last chunk. */
static ALWAYS_INLINE void set_boundary(const struct view *v, uint64_t c, uint64_t size)
{
	if ((uint64_t)c + size < v->lim)
		vst(v, c + size + C_PREV, size);
	else
		VS(v, top, c);
}

/* The first list whose every chunk holds `need` bytes: below SMALL a list
 * holds one size; above, round up to the next class. NLISTS: none. */
static ALWAYS_INLINE unsigned search_list(uint64_t need)
{
	unsigned f;

	if (need < SMALL)
		return need >> 4;
	f = log2_32(need);
	need += (1u << (f - SL_LOG)) - 1;
	return need >> 31 ? NLISTS : list_of(need);
}

/* The first list at or after i that the bitmaps say is in use: NLISTS if
 * none, NLISTS + 1 if the bitmaps contradict each other. */
static ALWAYS_INLINE unsigned find_list(const struct view *v, unsigned i)
{
	unsigned f = i / SL_COUNT;
	uint32_t sl = VL(v, sl_map[f]) & (0xffu << (i % SL_COUNT)) & 0xffu, fl;

	if (!sl) {
		fl = VL(v, fl_map) & (~0u << (f + 1)) & ((1u << NFL) - 1);
		if (!fl)
			return NLISTS;
		f = ctz_32(fl);
		sl = VL(v, sl_map[f]) & 0xffu;
		if (!sl)
			return NLISTS + 1;
	}
	return f * SL_COUNT + ctz_32(sl);
}

/* The head of list i if it is a free chunk of that list; E_CORRUPT if the
 * list is empty or its head lies. */
static ALWAYS_INLINE int head_of(const struct view *v, unsigned i, uint64_t *cp, uint64_t *sp)
{
	uint64_t c = VL(v, heads[i]);

	if (!c || free_at(v, c, sp) || !on_list(*sp, i))
		return E_CORRUPT;
	*cp = c;
	return 0;
}

/* A chunk with room for `need` bytes, at the head of its list: *cp, its
 * size *sp, its list *ip. First the lists whose every chunk fits (two bit
 * scans); failing that, the head of need's own list, which may fit (a
 * chunk just grown lands there). E_NOMEM if none, E_CORRUPT if the
 * bitmaps or a head lie. */
static ALWAYS_INLINE int find_fit(const struct view *v, uint64_t need, uint64_t *cp,
				  uint64_t *sp, unsigned *ip)
{
	unsigned i = search_list(need);

	if (i < NLISTS)
		i = find_list(v, i);
	if (i > NLISTS)
		return E_CORRUPT;
	if (i == NLISTS) {
		i = list_of(need);
		if (!VL(v, heads[i]))
			return E_NOMEM;
		if (head_of(v, i, cp, sp))
			return E_CORRUPT;
		if (*sp < need)
			return E_NOMEM;
	} else if (head_of(v, i, cp, sp) || *sp < need)
		return E_CORRUPT;
	*ip = i;
	return 0;
}

/* The wilderness: the last chunk when it is free. It is on no list, so
 * carving from it and freeing into it touch no list. *tp, *tsp: the last
 * chunk and its size. E_NOMEM: the last chunk is in use; E_CORRUPT: `top`
 * names no last chunk. */
static ALWAYS_INLINE int wild_of(const struct view *v, uint64_t *tp, uint64_t *tsp)
{
	uint64_t t = VL(v, top);
	bool inuse;

	if (chunk_at(v, t, tsp, &inuse) || t + *tsp != v->lim)
		return E_CORRUPT;
	*tp = t;
	return inuse ? E_NOMEM : 0;
}

/* Write the free header of the wilderness at t (size bytes, the last). */
static ALWAYS_INLINE void set_wild(const struct view *v, uint64_t t, uint64_t size)
{
	vst(v, t + C_SIZE, size);
	vst(v, t + C_NEXT, 0);
	vst(v, t + C_BACK, 0);
	VS(v, top, t);
}

/* Grow the area so that a chunk of `need` bytes fits at its end: the
 * wilderness grows, or a new one follows a last chunk in use. */
static int grow(mm_t *h, uint64_t need)
{
	struct view v = view_of(h);
	uint64_t old = v.lim, t, ts = 0, extra, delta, want;
	size_t mapped = h->mapped;
	int rc = wild_of(&v, &t, &ts);

	if (rc == E_CORRUPT)
		return rc;
	extra = rc ? need : need > ts ? need - ts : 0;
	want = old + (extra > old ? extra : old);   /* double */
	want = (want + QUANTUM - 1) & ~(uint64_t)(QUANTUM - 1);
	if (want > h->max)
		want = h->max;
	if (want < old + extra || want < old + CHUNK_MIN || !h->env.grow)
		return E_NOMEM;
	if (h->env.grow(h->env.ctx, h->base, want, &mapped) ||
	    mapped < want || mapped > h->room)
		return E_NOMEM;
	h->mapped = mapped;
	delta = want - old;
	VS(&v, size, (uint32_t)want);
	h->lim = v.lim = want;
	VS(&v, free, VL(&v, free) + delta);
	VS(&v, grows, VL(&v, grows) + 1);
	if (!rc) {
		vst(&v, t + C_SIZE, ts + delta);
		return 0;
	}
	vst(&v, old + C_PREV, ts);
	set_wild(&v, old, delta);
	return 0;
}

/* Mark chunk c (size bytes) in use for a request of req bytes. */
static ALWAYS_INLINE void mark_used(const struct view *v, uint64_t c, uint64_t size,
				    uint64_t req)
{
	vst(v, c + C_SIZE, size | INUSE);
	vst(v, c + C_NEXT, c ^ TAG);
	vst(v, c + C_BACK, req);
	VS(v, used, VL(v, used) + size);
	VS(v, free, VL(v, free) - size);
	VS(v, allocs, VL(v, allocs) + 1);
}

/* Carve `need` bytes from the free chunk c (size bytes, head of list i,
 * never the last chunk). */
static ALWAYS_INLINE int take(const struct view *v, uint64_t c, uint64_t size, unsigned i,
			      uint64_t need, uint64_t req)
{
	uint64_t rest = size - need;
	struct links l;

	if (c + size >= v->lim || links_of(v, c, i, &l) || l.back)
		return E_CORRUPT;
	unlink_at(v, i, &l);
	if (rest >= CHUNK_MIN) {
		vst(v, c + need + C_PREV, need);
		vst(v, c + size + C_PREV, rest);
		if (push(v, c + need, rest))
			return E_CORRUPT;
		size = need;
	}
	mark_used(v, c, size, req);
	return 0;
}

/* Carve `need` bytes from the front of the wilderness: *cp. */
static ALWAYS_INLINE int carve(const struct view *v, uint64_t need, uint64_t req,
			       uint64_t *cp)
{
	uint64_t t, ts;
	int rc = wild_of(v, &t, &ts);

	if (rc)
		return rc;
	if (ts < need)
		return E_NOMEM;
	if (ts - need >= CHUNK_MIN) {
		vst(v, t + need + C_PREV, need);
		set_wild(v, t + need, ts - need);
		ts = need;
	}
	mark_used(v, t, ts, req);
	*cp = t;
	return 0;
}

/* Nothing fits: grow the area, then carve. Off the fast path. */
static NOINLINE int alloc_grown(mm_t *h, uint64_t need, uint64_t req, uint64_t *cp)
{
	int rc = grow(h, need);
	struct view v = view_of(h);

	return rc ? rc : carve(&v, need, req, cp);
}

static NOINLINE mm_ptr_t alloc_failed(mm_t *h, int rc)
{
	AS(h, failures, AL(h, failures) + 1);
	fail(h, rc);
	return MM_NULL;
}

/* mm_alloc with the RW lock held: a good fit from the lists, else the
 * wilderness, else growth. */
static ALWAYS_INLINE mm_ptr_t alloc_locked(mm_t *h, size_t n)
{
	struct view v = view_of(h);
	uint64_t need, c, s;
	unsigned i;
	int rc;

	if (n > MM_MAX_SIZE - 64)
		return alloc_failed(h, E_NOMEM);
	need = align16(n ? n : 1) + CHUNK_HDR;
	rc = find_fit(&v, need, &c, &s, &i);
	if (!rc)
		rc = take(&v, c, s, i, need, n);
	else if (rc == E_NOMEM)
		rc = carve(&v, need, n, &c);
	if (rc == E_NOMEM)
		rc = alloc_grown(h, need, n, &c);
	if (rc)
		return alloc_failed(h, rc);
	return (mm_ptr_t)(c + CHUNK_HDR);
}

/* The same, one copy for the slower callers. */
static NOINLINE mm_ptr_t alloc_call(mm_t *h, size_t n)
{
	return alloc_locked(h, n);
}

static NOINLINE mm_ptr_t alloc_outer(mm_t *h, size_t size)
{
	mm_ptr_t p;

	if (mm_lock_in(h, MM_LOCK_RW))
		return MM_NULL;
	p = alloc_call(h, size);
	mm_unlock(h);
	return p;
}

/* Under the caller's RW lock (the common case: one test, no call), else
 * through mm_lock_in. */
mm_ptr_t mm_alloc(mm_t *h, size_t size)
{
	if (h && h->depth && h->mode == MM_LOCK_RW)
		return alloc_locked(h, size);
	return alloc_outer(h, size);
}

/* The in-use chunk behind user offset p. */
static ALWAYS_INLINE int used_chunk(const struct view *v, mm_ptr_t p, uint64_t *cp,
				    uint64_t *sp)
{
	uint64_t c = p - CHUNK_HDR;
	bool inuse;

	if (p < CHUNK_HDR || chunk_at(v, c, sp, &inuse) || !inuse ||
	    vld(v, c + C_NEXT) != (c ^ TAG))
		return E_INVAL;
	*cp = c;
	return 0;
}

/* The free neighbours of a chunk, with their checked links (0: none). */
struct nb {
	uint64_t pc, ps, nc, ns;
	struct links pl, nl;
};

/* Neighbours of chunk c (size s), after checking every tag and link the
 * merge will rely on. */
static ALWAYS_INLINE int neighbours(const struct view *v, uint64_t c, uint64_t s,
				    struct nb *nb)
{
	bool inuse;

	nb->pc = nb->nc = 0;
	if ((uint64_t)c + s < v->lim) {
		if (chunk_at(v, c + s, &nb->ns, &inuse) || vld(v, c + s + C_PREV) != s)
			return E_CORRUPT;
		if (!inuse) {
			if (c + s + nb->ns < v->lim &&      /* else the wilderness */
			    links_of(v, c + s, list_of(nb->ns), &nb->nl))
				return E_CORRUPT;
			nb->nc = c + s;
		}
	}
	if (c > v->dyn) {
		uint64_t p = vld(v, c + C_PREV);

		if (p < CHUNK_MIN || p % MM_ALIGN || p > c - v->dyn ||
		    chunk_at(v, c - p, &nb->ps, &inuse) || nb->ps != p)
			return E_CORRUPT;
		if (!inuse) {
			if (links_of(v, c - p, list_of(p), &nb->pl))
				return E_CORRUPT;
			nb->pc = c - p;
		}
	}
	return 0;
}

/* Return chunk c (in use, s bytes) to the free lists, merged with its free
 * neighbours. Everything is checked before the first write; when both
 * neighbours are free the second one's links are read again after the
 * first is gone (they may have pointed at each other). */
static ALWAYS_INLINE int free_chunk(const struct view *v, uint64_t c, uint64_t s)
{
	uint64_t start = c, total = s;
	struct nb nb = { 0 };
	int rc = neighbours(v, c, s, &nb);

	if (rc)
		return rc;
	if (nb.nc) {
		if (nb.nc + nb.ns < v->lim)
			unlink_at(v, list_of(nb.ns), &nb.nl);
		total += nb.ns;
	}
	if (nb.pc) {
		if (nb.nc && links_of(v, nb.pc, list_of(nb.ps), &nb.pl))
			return E_CORRUPT;
		unlink_at(v, list_of(nb.ps), &nb.pl);
		start = nb.pc;
		total += nb.ps;
	}
	vst(v, c + C_NEXT, 0);    /* kill the tag: a stale free of c fails */
	VS(v, used, VL(v, used) - s);
	VS(v, free, VL(v, free) + s);
	if (start + total == v->lim) {
		set_wild(v, start, total);
		return 0;
	}
	vst(v, start + total + C_PREV, total);
	return push(v, start, total);
}

/* The same, one copy for the slower callers. */
static NOINLINE int free_chunk_call(const struct view *v, uint64_t c, uint64_t s)
{
	return free_chunk(v, c, s);
}

/* mm_free with the RW lock held. */
static ALWAYS_INLINE int free_locked(mm_t *h, mm_ptr_t p)
{
	struct view v = view_of(h);
	uint64_t c, s;
	int rc = used_chunk(&v, p, &c, &s);

	if (!rc)
		rc = free_chunk(&v, c, s);
	if (rc)
		return fail(h, rc);
	VS(&v, frees, VL(&v, frees) + 1);
	return 0;
}

static NOINLINE int free_chunk_locked(mm_t *h, mm_ptr_t p)
{
	return free_locked(h, p);
}

static NOINLINE int free_outer(mm_t *h, mm_ptr_t p)
{
	int rc = mm_lock_in(h, MM_LOCK_RW);

	if (rc)
		return rc;
	rc = free_chunk_locked(h, p);
	mm_unlock(h);
	return rc;
}

int mm_free(mm_t *h, mm_ptr_t p)
{
	if (p == MM_NULL)
		return 0;
	if (h && h->depth && h->mode == MM_LOCK_RW)
		return free_locked(h, p);
	return free_outer(h, p);
}

/* Shrink chunk c (s bytes, in use) to need bytes if the tail is worth a
 * chunk: the tail becomes an in-use chunk that free_chunk merges. */
static int shrink(const struct view *v, uint64_t c, uint64_t s, uint64_t need)
{
	uint64_t r = c + need;
	struct nb nb;

	if (s - need < CHUNK_MIN)
		return 0;
	if (neighbours(v, c, s, &nb))
		return E_CORRUPT;
	vst(v, c + C_SIZE, need | INUSE);
	vst(v, r + C_SIZE, (s - need) | INUSE);
	vst(v, r + C_PREV, need);
	vst(v, r + C_NEXT, r ^ TAG);
	set_boundary(v, r, s - need);
	return free_chunk_call(v, r, s - need);
}

/* Grow chunk c in place into a free successor; E_NOMEM if it cannot. */
static int expand(const struct view *v, uint64_t c, uint64_t s, uint64_t need)
{
	uint64_t nc = c + s, ns;
	struct links l;

	if ((uint64_t)nc >= v->lim || free_at(v, nc, &ns) ||
	    (uint64_t)s + ns < need)
		return E_NOMEM;
	if (vld(v, nc + C_PREV) != s)
		return E_CORRUPT;
	if (nc + ns < v->lim) {                 /* else the wilderness */
		if (links_of(v, nc, list_of(ns), &l))
			return E_CORRUPT;
		unlink_at(v, list_of(ns), &l);
	}
	vst(v, c + C_SIZE, (s + ns) | INUSE);
	set_boundary(v, c, s + ns);
	VS(v, used, VL(v, used) + ns);
	VS(v, free, VL(v, free) - ns);
	return shrink(v, c, s + ns, need);
}

static mm_ptr_t realloc_locked(mm_t *h, mm_ptr_t p, size_t n)
{
	struct view v = view_of(h);
	uint64_t c, s, need, old;
	mm_ptr_t q;
	int rc;

	if (used_chunk(&v, p, &c, &s))
		return fail(h, E_INVAL), MM_NULL;
	if (n > MM_MAX_SIZE - 64)
		return fail(h, E_NOMEM), MM_NULL;
	need = align16(n ? n : 1) + CHUNK_HDR;
	rc = need <= s ? shrink(&v, c, s, need) : expand(&v, c, s, need);
	if (!rc) {
		vst(&v, c + C_BACK, (uint64_t)n);
		return p;
	}
	if (rc != E_NOMEM)
		return fail(h, rc), MM_NULL;
	old = vld(&v, c + C_BACK);
	if (old > s - CHUNK_HDR)
		old = s - CHUNK_HDR;        /* a forged request size */
	q = alloc_call(h, n);
	if (q == MM_NULL)
		return MM_NULL;
	v = view_of(h);                     /* the area may have grown */
	memcpy(h->base + q, h->base + p, old < n ? old : n);
	if (used_chunk(&v, p, &c, &s) || free_chunk_call(&v, c, s))
		fail(h, E_CORRUPT);         /* q is good; p leaks */
	else
		VS(&v, frees, VL(&v, frees) + 1);
	return q;
}

mm_ptr_t mm_realloc(mm_t *h, mm_ptr_t p, size_t size)
{
	mm_ptr_t q;

	if (p == MM_NULL)
		return mm_alloc(h, size);
	if (size == 0) {
		mm_free(h, p);
		return MM_NULL;
	}
	if (mm_lock_in(h, MM_LOCK_RW))
		return MM_NULL;
	q = realloc_locked(h, p, size);
	mm_unlock(h);
	return q;
}

void mm_fit_format(struct area *a, uint32_t dyn, uint32_t size)
{
	uint32_t *w = (uint32_t *)((char *)a + dyn);

	a->top = dyn;                  /* all of it the wilderness */
	a->free = size - dyn;
	w[0] = size - dyn;
	w[1] = w[2] = w[3] = 0;
}
