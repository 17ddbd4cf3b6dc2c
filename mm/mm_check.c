/* mm_check.c - mm_check: a walk of every chunk in address order and of
 * every free list and bitmap of the segregated fit, reporting the first
 * broken invariant. O(area size); bounded by it whatever the area says. */
#include "mm_int.h"

/* Chunks in address order: sizes, boundary tags, tags, no two free chunks
 * side by side, top, and the byte counters. *nfree: the free chunks that
 * belong on a list (all but a free last chunk, the wilderness). */
static int check_chunks(const struct view *v, uint32_t *nfree)
{
	uint64_t c = v->dyn, prev = 0, last = 0, s;
	uint64_t used = 0, free = 0;
	bool inuse, prevfree = false;

	*nfree = 0;
	while (c < v->lim) {
		if (chunk_at(v, c, &s, &inuse) || vld(v, c + C_PREV) != prev)
			return E_CORRUPT;
		if (inuse && (vld(v, c + C_NEXT) != (c ^ TAG) ||
			      vld(v, c + C_BACK) > s - CHUNK_HDR))
			return E_CORRUPT;
		if (!inuse && prevfree)
			return E_CORRUPT;           /* missed coalescing */
		if (inuse)
			used += s;
		else {
			free += s;
			*nfree += c + s < v->lim;   /* the last one: on no list */
		}
		prevfree = !inuse;
		prev = s;
		last = c;
		c += s;
	}
	if (VL(v, top) != last || VL(v, used) != used || VL(v, free) != free)
		return E_CORRUPT;
	return 0;
}

/* List i: free chunks of its class (never the last chunk), consistent back
 * links; *seen counts
 * them, never past nfree (so a cycle ends the walk). */
static int check_list(const struct view *v, unsigned i, uint32_t nfree, uint32_t *seen)
{
	uint64_t c = VL(v, heads[i]), back = 0, s;

	while (c) {
		if (free_at(v, c, &s) || list_of(s) != i || c + s >= v->lim ||
		    vld(v, c + C_BACK) != back || ++*seen > nfree)
			return E_CORRUPT;
		back = c;
		c = vld(v, c + C_NEXT);
	}
	return 0;
}

/* Every list, each bitmap bit set exactly for the lists in use, and the
 * lists together exactly the free chunks of the walk. */
static int check_lists(const struct view *v, uint32_t nfree)
{
	uint32_t seen = 0, fl = VL(v, fl_map);

	if (fl >> NFL)
		return E_CORRUPT;
	for (unsigned f = 0; f < NFL; f++) {
		uint8_t sl = VL(v, sl_map[f]), want = 0;

		for (unsigned s = 0; s < SL_COUNT; s++) {
			unsigned i = f * SL_COUNT + s;

			if (check_list(v, i, nfree, &seen))
				return E_CORRUPT;
			if (VL(v, heads[i]))
				want |= (uint8_t)(1u << s);
		}
		if (sl != want || !!(fl & (1u << f)) != !!want)
			return E_CORRUPT;
	}
	return seen == nfree ? 0 : E_CORRUPT;
}

int mm_check(mm_t *h)
{
	struct view v;
	uint32_t nfree;
	int rc = mm_lock_in(h, MM_LOCK_RD);

	if (rc)
		return rc;
	v = view_of(h);
	if (AL(h, version) != VERSION || AL(h, hdr_size) != MM_HDR_SIZE ||
	    AL(h, dyn) != h->dyn || AL(h, max_size) < h->max ||
	    MM_HDR_SIZE + align16(AL(h, static_size)) != h->dyn)
		rc = E_CORRUPT;
	if (!rc)
		rc = check_chunks(&v, &nfree);
	if (!rc)
		rc = check_lists(&v, nfree);
	mm_unlock(h);
	return rc ? fail(h, rc) : 0;
}
