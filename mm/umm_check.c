/* umm_check.c - umm's walkers: umm_iterate (lock-free, any time),
 * umm_stats (summed counters) and umm_check (full consistency walk of a
 * quiescent pool: chunks, bitmap, bins, caches, deferred list, counters).
 */
#include "umm_int.h"

#include <string.h>

int umm_iterate(umm_t *m, int (*cb)(void *p, size_t size, uint8_t tags, bool in_use, void *arg),
		void *arg)
{
	bool changed = false;

	if (!cb)
		return E_INVAL;
	unsigned tries = 0;
	for (uintptr_t x = m->base, y; x < m->end; x = y) {
		uint64_t h = spec_load(x);
		size_t s = h_units(h);
		y = fits(m, x, s) ? x + s * UNIT : x;
		if (y == x || !bm_test(m, x) || !bm_test(m, y) || spec_load(x) != h) {
			/* x changed: read it again; if it vanished (or keeps
			 * changing), resume at the next boundary above it */
			changed = true;
			y = bm_test(m, x) && ++tries < 64 ? x : umm_next_boundary(m, x, 0);
			continue;
		}
		tries = 0;
		if (h & (H_LOCK | H_PENDING))
			changed = true;
		bool live = (h & H_USED) && !(h & H_PARKED);
		if (live) {
			/* a cached chunk's key word may be a user's payload by
			 * now: speculative, like the header reads */
			SPEC_BEGIN();
			live = !cached(m, x, h);
			SPEC_END();
		}
		int r = cb((void *)(x + HDR), s * UNIT - HDR, live ? h_tags(h) : 0, live, arg);
		if (r)
			return r;
	}
	return changed ? E_BUSY : 0;
}

size_t umm_cpu_cached(umm_t *m, unsigned cpu, unsigned *chunks)
{
	size_t bytes = 0;

	*chunks = 0;
	if (cpu >= m->ncpu)
		return 0;
	for (int k = 0; k < UMM_NCLASSES; k++) {
		unsigned n = __atomic_load_n(&m->cpu[cpu].top[k], __ATOMIC_RELAXED);
		*chunks += n;
		bytes += n * class_units(k) * UNIT;
	}
	return bytes;
}

void umm_stats(umm_t *m, struct umm_stats *out)
{
	memset(out, 0, sizeof(*out));
	umm_sample_peak(m);
	for (unsigned i = 0; i < m->ncpu; i++) {
		struct umm_cpu *cp = &m->cpu[i];
		out->allocs += ld(&cp->p_allocs);
		out->frees += ld(&cp->p_frees);
		for (int k = 0; k < UMM_NCLASSES; k++) {
			out->allocs += ld(&cp->c_alloc[k]);
			out->frees += ld(&cp->c_free[k]);
		}
		out->failures += ld(&cp->failures);
		out->lock_retries += ld(&cp->retries);
		out->searches += ld(&cp->searches);
		out->search_steps += ld(&cp->steps);
		out->released_bytes += ld(&cp->released);
		out->refused += ld(&cp->refused);
		for (int k = 0; k < UMM_NCLASSES; k++)
			out->parked_bytes += (uint64_t)tload(&cp->top[k]) * class_units(k) * UNIT;
	}
	for (int k = 0; k < UMM_NCLASSES; k++)
		out->parked_bytes += umm_xfer_bytes(m, k, m->ncpu);
	out->live_bytes = umm_live_bytes(m, m->ncpu);
	out->peak_bytes = __atomic_load_n(&m->peak, __ATOMIC_RELAXED);
	if (out->peak_bytes < out->live_bytes)
		out->peak_bytes = out->live_bytes;
	out->capacity = m->end - m->base - HDR;
}

/* ---- consistency walk (quiescent pool only) -------------------------------- */

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			env_log("umm_check: " __VA_ARGS__);                   \
			return E_CORRUPT;                                     \
		}                                                             \
	} while (0)

/* One cache entry c of class k. Marking: it must be a boundary, used,
 * unmarked (else it is listed twice), align 0, of class k, keyed; it gets
 * MARK. Unmarking: MARK is cleared; false where it was not set (the first
 * entry the marking pass did not reach, or a cycle). */
static bool visit(umm_t *m, uintptr_t c, int k, bool mark)
{
	if (c < m->base || c >= m->end || (c - m->base) % UNIT || !bm_test(m, c))
		return false;
	uint64_t h = hload(c);
	if (!mark) {
		if (!(h & H_MARK))
			return false;
		hstore(c, h & ~H_MARK);
		return true;
	}
	if ((h & (H_USED | H_PARKED | H_PENDING | H_LOCK | H_MARK | H_ALIGN_MASK)) != H_USED ||
	    h_units(h) != class_units(k) || w0load(c) != key_of(m, c))
		return false;
	hstore(c, h | H_MARK);
	return true;
}

/* Walk every slot and transfer-stack entry (mark, or unmark), checking the
 * lists when marking. Returns the bytes listed, or -1 (logged). */
static long long cache_lists(umm_t *m, bool mark)
{
	long long bytes = 0;
	for (unsigned i = 0; i < m->ncpu; i++)
		for (int k = 0; k < UMM_NCLASSES; k++) {
			unsigned t = m->cpu[i].top[k];
			if (mark && t > m->cap[k]) {
				env_log("umm_check: cpu %u class %d: top %u above cap %u", i, k, t, m->cap[k]);
				return -1;
			}
			for (unsigned j = 0; j < t && j < UMM_SLOTS; j++) {
				uintptr_t v = m->cpu[i].slot[k][j], c = slot_chunk(m, v);
				/* (the tags byte is checked once c is known to be a chunk) */
				if (mark && (!visit(m, c, k, true) || (uint8_t)v != h_tags(hload(c)))) {
					env_log("umm_check: bad cached chunk %p (cpu %u class %d slot %u)",
						(void *)c, i, k, j);
					return -1;
				}
				if (!mark)
					visit(m, c, k, false);
			}
			bytes += (long long)t * (long long)(class_units(k) * UNIT);
		}
	for (int k = 0; k < UMM_NCLASSES; k++) {
		long long xb = 0, cb = (long long)(class_units(k) * UNIT);
		/* a head's words are read only once it passed */
		for (uintptr_t b = (uintptr_t)m->xfer[k].head; b; b = link_of(b, W_BATCH)) {
			if (!visit(m, b, k, mark)) {
				if (!mark)
					break;
				env_log("umm_check: bad transfer batch %p (class %d)", (void *)b, k);
				return -1;
			}
			uintptr_t n = link_of(b, W_COUNT);
			if (n >= m->batch[k]) {
				if (!mark)
					continue;
				env_log("umm_check: transfer batch %p (class %d) lists %lu", (void *)b, k,
					(unsigned long)n);
				return -1;
			}
			for (unsigned j = 0; j < n; j++) {
				uintptr_t v = link_of(b, W_ENTRY + j), c = slot_chunk(m, v);
				if (!mark) {
					visit(m, c, k, false);
				} else if (!visit(m, c, k, true) || (uint8_t)v != h_tags(hload(c))) {
					env_log("umm_check: bad transfer chunk %p (class %d)", (void *)c, k);
					return -1;
				}
			}
			xb += (long long)(n + 1) * cb;
		}
		if (mark && (xb != (long long)umm_xfer_bytes(m, k, m->ncpu) || (xb && !m->batch[k]))) {
			env_log("umm_check: class %d: transfer stack holds %lld bytes, counters %llu", k, xb,
				(unsigned long long)umm_xfer_bytes(m, k, m->ncpu));
			return -1;
		}
		bytes += xb;
	}
	return bytes;
}

/* Deferred-list bytes (parked chunks, tags 0), or -1 (logged). */
static long long check_deferred(umm_t *m)
{
	long long bytes = 0;
	for (uintptr_t c = (uintptr_t)m->deferred; c; c = (uintptr_t)*(void **)(c + HDR)) {
		if (c < m->base || c >= m->end || !bm_test(m, c) || !(hload(c) & H_PARKED) ||
		    (hload(c) & H_TAG_MASK)) {
			env_log("umm_check: bad deferred chunk %p", (void *)c);
			return -1;
		}
		bytes += (long long)h_units(hload(c)) * UNIT;
	}
	return bytes;
}

/* Every list entry must be a free chunk of its bin, linked both ways, on
 * one list only (MARK, cleared again), the maps must say which bins are
 * non-empty, and the entries must number the free chunks of two units or
 * more that the walk found. 0 or -1 (logged). */
static int check_bins(umm_t *m, size_t listable)
{
	size_t listed = 0;
	int rc = 0;

	for (int i = 0; i < UMM_NBINS && !rc; i++) {
		bool set = (m->bin_map[i / 16] >> (i % 16)) & 1;
		if (set != (m->bin[i].head != 0) || (set && !((m->row_map >> (i / 16)) & 1))) {
			env_log("umm_check: bin %d: maps %d/%d, head %p", i, set,
				(int)((m->row_map >> (i / 16)) & 1), (void *)m->bin[i].head);
			rc = -1;
		}
		uintptr_t prev = 0;
		for (uintptr_t c = m->bin[i].head; c && !rc; prev = c, c = link_of(c, 0)) {
			uint64_t h = c >= m->base && c < m->end && !((c - m->base) % UNIT) && bm_test(m, c) ? hload(c) : H_USED;
			if ((h & (H_USED | H_MARK | H_LOCK)) || h_units(h) < 2 || umm_bin_of(h_units(h)) != i ||
			    link_of(c, 1) != prev || listed > listable) {
				env_log("umm_check: bin %d: bad entry %p", i, (void *)c);
				rc = -1;
				break;
			}
			hstore(c, h | H_MARK);
			listed++;
		}
	}
	for (int i = 0; i < UMM_NBINS; i++)   /* unmark, also after a failure */
		for (uintptr_t c = m->bin[i].head; c && (hload(c) & H_MARK); c = link_of(c, 0))
			hstore(c, hload(c) & ~H_MARK);
	if (!rc && listed != listable) {
		env_log("umm_check: %zu chunks on the free lists, %zu free chunks", listed, listable);
		rc = -1;
	}
	return rc;
}

int umm_check(umm_t *m)
{
	size_t chunks = 0, bits = 0;
	uint64_t live = 0, parked = 0, keyed = 0;
	size_t listable = 0;
	bool prev_free = false;
	uintptr_t x;

	CHECK(m && m->magic == UMM_MAGIC, "not an initialised pool");
	for (x = m->base; x < m->end; x += h_units(hload(x)) * UNIT) {
		uint64_t h = hload(x);
		size_t s = h_units(h);
		CHECK(bm_test(m, x), "chunk %p missing from the bitmap", (void *)x);
		CHECK(s >= 1 && x + s * UNIT <= m->end, "chunk %p: bad size %zu", (void *)x, s);
		CHECK(bidx(m, x) / 64 < m->bm_ready, "chunk %p above the initialised bitmap", (void *)x);
		CHECK(!(h & (H_LOCK | H_PENDING | H_RSVD)), "chunk %p: stray bits %#llx",
		      (void *)x, (unsigned long long)h);
		CHECK(!!(h & H_PREVFREE) == prev_free, "chunk %p: PREVFREE is %d", (void *)x,
		      !!(h & H_PREVFREE));
		if (h & H_USED) {
			if (h & H_PARKED)
				parked += s * UNIT;
			else if (cached(m, x, h))
				keyed += s * UNIT;
			else
				live += s * UNIT;
		} else {
			CHECK(!prev_free, "chunks below %p and %p both free", (void *)x, (void *)x);
			CHECK(!(h & H_PARKED) && !(h & H_TAG_MASK), "free chunk %p has user bits", (void *)x);
			CHECK(fload(x + s * UNIT) == s, "free chunk %p: footer %zu, size %zu", (void *)x,
			      fload(x + s * UNIT), s);
			listable += s >= 2;
		}
		prev_free = !(h & H_USED);
		chunks++;
	}
	CHECK(x == m->end, "walk overran the end sentinel");
	uint64_t he = hload(m->end);
	CHECK((he & H_USED) && h_units(he) == 1 && !!(he & H_PREVFREE) == prev_free,
	      "bad end sentinel %#llx", (unsigned long long)he);
	/* only the initialised words hold bits; the sentinel's counts when its
	 * word is one of them */
	size_t ready = m->bm_ready, e = bidx(m, m->end);
	CHECK(ready <= m->bm_words, "bitmap: %zu words ready of %zu", ready, m->bm_words);
	for (size_t i = 0; i < ready; i++)
		bits += (size_t)__builtin_popcountll(m->bitmap[i]);
	size_t want = chunks + (e / 64 < ready);
	CHECK(bits == want, "bitmap has %zu boundaries, walk found %zu", bits, want);
	CHECK(check_bins(m, listable) == 0, "free lists do not match the chunks");
	long long listed = cache_lists(m, true);
	cache_lists(m, false);   /* clear the marks, also after a failure */
	CHECK(listed >= 0 && (uint64_t)listed == keyed, "cached chunks: %llu keyed in the pool, %lld listed",
	      (unsigned long long)keyed, listed);
	long long deferred = check_deferred(m);
	CHECK(deferred >= 0 && (uint64_t)deferred == parked, "parked chunks: %llu in the pool, %lld listed",
	      (unsigned long long)parked, deferred);
	CHECK(live == umm_live_bytes(m, m->ncpu), "live bytes: walk %llu, counters %llu",
	      (unsigned long long)live, (unsigned long long)umm_live_bytes(m, m->ncpu));
	return 0;
}
