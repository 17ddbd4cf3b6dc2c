/* umm_int.h - what the files of umm share and nothing else includes: the
 * header word, the boundary bitmap, the size classes of the CPU caches, the
 * hot cache paths and the functions each file offers the others.
 *
 *   umm_chunk.c  micro locks, the deferred list, free and merge
 *   umm_fit.c    free-list bins, the lazy bitmap, search, carving, page release
 *   umm_cache.c  CPU slots, transfer stacks, flush requests
 *   umm.c        the public API
 *   umm_check.c  umm_iterate, umm_stats, umm_check
 *
 * Lock order (docs/UMM.md): a CPU may WAIT for a chunk lock only at a
 * higher address than every chunk lock it holds, and never while it holds
 * a bin lock; it may wait for a bin lock while holding chunk locks and bins
 * of higher index only. A bin holder waits for nothing but lower bins, so
 * no cycle of waiters exists.
 */
#ifndef MM_UMM_INT_H
#define MM_UMM_INT_H

#include "umm.h"

/* ---- header word ----------------------------------------------------------
 *  bit  0      USED      chunk belongs to a user or is parked
 *  bit  1      PREVFREE  the chunk just below is free (its footer is valid)
 *  bit  2      LOCK      micro lock
 *  bit  3      PARKED    freed, on the deferred list (or a free backing off)
 *  bit  4      PENDING   freed while someone held LOCK; the holder parks it
 *  bit  5      MARK      set only inside umm_check (entry seen)
 *  bits 6-7    reserved, zero
 *  bits 8-15   user tags (0 while PARKED)
 *  bits 16-20  log2 of the alignment asked for (0: default 16)
 *  bits 21-63  size in 16-byte units, header included
 */
#define H_USED      ((uint64_t)1 << 0)
#define H_PREVFREE  ((uint64_t)1 << 1)
#define H_LOCK      ((uint64_t)1 << 2)
#define H_PARKED    ((uint64_t)1 << 3)
#define H_PENDING   ((uint64_t)1 << 4)
#define H_RSVD      ((uint64_t)7 << 5)
#define H_MARK      ((uint64_t)1 << 5)
#define H_TAG_SHIFT   8
#define H_TAG_MASK    ((uint64_t)0xff << H_TAG_SHIFT)
#define H_ALIGN_SHIFT 16
#define H_ALIGN_MASK  ((uint64_t)0x1f << H_ALIGN_SHIFT)
#define H_SIZE_SHIFT  21
#define H_SIZE_MASK   (~(uint64_t)0 << H_SIZE_SHIFT)
#define UNIT        16u            /* chunk granule */
#define HDR         8u             /* header bytes before the payload */
#define MAX_UNITS   (((uint64_t)1 << 42))
#define UMM_MAGIC   0x756d6d32u

_Static_assert((H_USED | H_PREVFREE | H_LOCK | H_PARKED | H_PENDING | H_RSVD) == 0xff,
	       "flag bits fill the low byte");
_Static_assert((H_TAG_MASK & H_ALIGN_MASK) == 0 && (H_ALIGN_MASK & H_SIZE_MASK) == 0 &&
	       (H_TAG_MASK | H_ALIGN_MASK | H_SIZE_MASK | 0xff) == ~(uint64_t)0,
	       "header fields tile the word");
_Static_assert(((uint64_t)1 << (64 - H_SIZE_SHIFT)) * UNIT >= ((uint64_t)1 << 30),
	       "size field covers a 1 GiB pool");
_Static_assert(HDR + sizeof(void *) <= UNIT, "a one-unit chunk holds a list link");
_Static_assert(HDR + 3 * sizeof(uint64_t) <= 2 * UNIT,
	       "a two-unit chunk holds key and two links, or two bin links and a footer");

static inline size_t h_units(uint64_t h) { return (size_t)(h >> H_SIZE_SHIFT); }
static inline uint8_t h_tags(uint64_t h) { return (uint8_t)(h >> H_TAG_SHIFT); }
static inline unsigned h_alog(uint64_t h) { return (unsigned)((h & H_ALIGN_MASK) >> H_ALIGN_SHIFT); }
static inline uint64_t mkfree(size_t units, uint64_t prevfree)
{
	return ((uint64_t)units << H_SIZE_SHIFT) | prevfree;
}
static inline uint64_t mkused(size_t units, uint8_t tags, unsigned alog)
{
	return ((uint64_t)units << H_SIZE_SHIFT) | ((uint64_t)alog << H_ALIGN_SHIFT) |
	       ((uint64_t)tags << H_TAG_SHIFT) | H_USED;
}

static inline uint64_t hload(uintptr_t c) { return __atomic_load_n((uint64_t *)c, __ATOMIC_ACQUIRE); }
static inline void hstore(uintptr_t c, uint64_t v) { __atomic_store_n((uint64_t *)c, v, __ATOMIC_RELEASE); }
static inline bool hcas(uintptr_t c, uint64_t *exp, uint64_t v)
{
	return __atomic_compare_exchange_n((uint64_t *)c, exp, v, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}
/*
 * Speculative header accesses: walks and neighbour try-locks read headers
 * they have not locked; a header can vanish (merge) and its memory become a
 * user's payload between the bitmap check and the access. Such reads are
 * validated (bitmap, re-read, CAS on the exact value), so they are harmless,
 * but ThreadSanitizer cannot know: under TSan these few accesses are
 * excluded from race detection (their acquire/release still counts).
 * Everything else - locked headers, footers, lists, payloads - stays checked.
 */
#if defined(__SANITIZE_THREAD__)
#define UMM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UMM_TSAN 1
#endif
#endif
#ifdef UMM_TSAN
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define SPEC_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define SPEC_END()   AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define SPEC_BEGIN() ((void)0)
#define SPEC_END()   ((void)0)
#endif
static inline uint64_t spec_load(uintptr_t c)
{
	SPEC_BEGIN();
	uint64_t v = hload(c);
	SPEC_END();
	return v;
}
static inline bool spec_cas(uintptr_t c, uint64_t *exp, uint64_t v)
{
	SPEC_BEGIN();
	bool ok = hcas(c, exp, v);
	SPEC_END();
	return ok;
}

/* Footer: the last word of a free chunk holds its size in units. */
static inline void fstore(uintptr_t chunk_end, size_t units)
{
	__atomic_store_n((uint64_t *)(chunk_end - 8), (uint64_t)units, __ATOMIC_RELEASE);
}
static inline size_t fload(uintptr_t chunk_end)
{
	return (size_t)__atomic_load_n((uint64_t *)(chunk_end - 8), __ATOMIC_ACQUIRE);
}

/* Does a chunk of s units at x end inside the pool? Checked before adding,
 * since a speculative header read can hold any size and x + s * UNIT would
 * wrap at kernel (top-of-address-space) addresses. */
static inline bool fits(const umm_t *m, uintptr_t x, size_t s)
{
	return s && x <= m->end && s <= (m->end - x) / UNIT;
}

/* ---- boundary bitmap: bit set <=> a chunk header starts at that unit ------
 * Initialised lazily: only words below bm_ready are valid (zeroed, then
 * kept); no chunk boundary lies above them except the end sentinel, which
 * reads as a boundary wherever its word is. umm_fit.c grows the valid part
 * (bm_cover) before a boundary is created above it. */
static inline size_t bidx(const umm_t *m, uintptr_t c) { return (c - m->base) / UNIT; }
static inline bool bm_test(const umm_t *m, uintptr_t c)
{
	size_t i = bidx(m, c);
	if (i / 64 >= __atomic_load_n(&m->bm_ready, __ATOMIC_ACQUIRE))
		return c == m->end;
	return (__atomic_load_n(&m->bitmap[i / 64], __ATOMIC_ACQUIRE) >> (i % 64)) & 1;
}
/* The hot free path's whole pointer check: c is a chunk boundary of the
 * pool below the end sentinel. One compare bounds c by the part with a
 * valid bitmap (below base it wraps); no ordering: the caller's own made
 * its block's bit visible. */
static inline bool hot_boundary(const umm_t *m, uintptr_t c)
{
	uintptr_t off = c - m->base;
	size_t i = off / UNIT;
	return off < __atomic_load_n(&m->bm_span, __ATOMIC_RELAXED) && !(off % UNIT) &&
	       ((__atomic_load_n(&m->bitmap[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1);
}
static inline void bm_set(umm_t *m, uintptr_t c)
{
	size_t i = bidx(m, c);
	__atomic_fetch_or(&m->bitmap[i / 64], (uint64_t)1 << (i % 64), __ATOMIC_RELEASE);
}
static inline void bm_clear(umm_t *m, uintptr_t c)
{
	size_t i = bidx(m, c);
	__atomic_fetch_and(&m->bitmap[i / 64], ~((uint64_t)1 << (i % 64)), __ATOMIC_RELEASE);
}

/* ---- counters ----------------------------------------------------------- */
static inline struct umm_cpu *cpu_of(umm_t *m) { return &m->cpu[env_cpu() % ENV_MAX_CPUS]; }
static inline void padd(uint64_t *ctr, uint64_t v) { __atomic_fetch_add(ctr, v, __ATOMIC_RELAXED); }
/* Counters of the cache path, written by their CPU only (interrupts off):
 * plain arithmetic, atomic access so umm_stats can read them at any time. */
static inline void cadd(uint64_t *ctr, uint64_t v)
{
	__atomic_store_n(ctr, __atomic_load_n(ctr, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline uint64_t ld(const uint64_t *ctr) { return __atomic_load_n(ctr, __ATOMIC_RELAXED); }

/* ---- size classes of the CPU caches ----------------------------------------
 * Chunks of 1..16 units exactly, then four classes per doubling up to 256
 * units (4 KiB). Requests that fall in a class are rounded up to it, so a
 * cached chunk fits every later request of its class. */
static inline size_t class_units(int k)
{
	if (k < 16)
		return (size_t)k + 1;
	unsigned b = 4 + (unsigned)(k - 16) / 4;
	return (size_t)((k - 16) % 4 + 5) << (b - 2);
}
static inline __attribute__((always_inline)) int class_of(size_t units, size_t *cu)
{
	if (units <= 16) {
		*cu = units;
		return (int)units - 1;
	}
	if (units > 256)
		return -1;
	/* b = floor(log2(units - 1)), 4..7; compares, since rv64imac has no
	 * count-leading-zeros instruction (a libcall on the hot path) */
	unsigned b = 4 + (units > 32) + (units > 64) + (units > 128);
	size_t step = (size_t)1 << (b - 2);
	*cu = (units + step - 1) & ~(step - 1);
	return 16 + (int)(b - 4) * 4 + (int)(*cu >> (b - 2)) - 5;
}
static inline int exact_class(size_t units)
{
	size_t cu;
	int i = class_of(units, &cu);
	return i >= 0 && cu == units ? i : -1;
}

static inline size_t units_for(size_t size) { return (size + HDR + UNIT - 1) / UNIT; }

/* ---- payload words ---------------------------------------------------------
 * Word 0 of a cached chunk is its key (secret ^ address); of a parked chunk
 * its deferred-list link; of a listed free chunk its next link (word 1:
 * prev, word 2 of a big one: bytes dirtied since its pages were given
 * back). A transfer batch head uses words 1.. (W_*). Word 0 is read by
 * other CPUs only for ordered double-free checks and speculative walks:
 * atomic, relaxed. */
static inline uint64_t *pword(uintptr_t c, unsigned i) { return (uint64_t *)(c + HDR) + i; }
static inline uint64_t key_of(const umm_t *m, uintptr_t c) { return m->secret ^ c; }
static inline uint64_t w0load(uintptr_t c) { return __atomic_load_n(pword(c, 0), __ATOMIC_RELAXED); }
static inline void w0store(uintptr_t c, uint64_t v) { __atomic_store_n(pword(c, 0), v, __ATOMIC_RELAXED); }
static inline uintptr_t link_of(uintptr_t c, unsigned i) { return (uintptr_t)*pword(c, i); }
static inline void set_link(uintptr_t c, unsigned i, uintptr_t v) { *pword(c, i) = (uint64_t)v; }
#define W_COUNT 1   /* batch head: entries that follow from W_ENTRY */
#define W_BATCH 2   /* batch head: next batch */
#define W_ENTRY 3   /* batch head: slot entries of the batch's other chunks */

/* Is used chunk c (header h) in a cache? Only default-aligned chunks of a
 * class size are ever cached; the key decides. */
static inline bool cached(const umm_t *m, uintptr_t c, uint64_t h)
{
	return !(h & (H_PARKED | H_ALIGN_MASK)) && exact_class(h_units(h)) >= 0 &&
	       w0load(c) == key_of(m, c);
}

/* ---- shared helpers (umm.c) ---------------------------------------------- */
void umm_bad_input(umm_t *m, const char *who, const void *p, const char *why);
uint64_t umm_live_bytes(umm_t *m, unsigned ncpus);
void umm_sample_peak(umm_t *m);

/* ---- micro locks, deferred list, free (umm_chunk.c) ----------------------- */
enum { CLAIM_OK, CLAIM_BAD, CLAIM_PENDING };
uint64_t umm_lock_chunk(struct umm_cpu *me, uintptr_t c, bool fast);
void umm_unlock_chunk(umm_t *m, uintptr_t c, uint64_t clr, uint64_t set);
int umm_claim(uintptr_t c, uint64_t *out);
uint64_t umm_claim_wait(struct umm_cpu *me, uintptr_t c);
void umm_park(umm_t *m, uintptr_t c);
void umm_push_deferred(umm_t *m, uintptr_t c);
bool umm_free_claimed(umm_t *m, struct umm_cpu *me, uintptr_t x, bool fast);
void umm_drain(umm_t *m, struct umm_cpu *me);

/* ---- bins, bitmap, search, carving (umm_fit.c) ------------------------------
 * Free chunks of two units or more sit on the list of bin umm_bin_of(size)
 * (two-level index as in TLSF: 16 exact bins below 16 units, then 16 bins
 * per power of two). A free chunk that is unlocked is on its list; one-unit
 * free chunks (no room for two links) are on none and wait for a merge. */
int umm_bin_of(size_t units);
/* Lock the distinct bins of `idx` (-1: none) from the highest index down;
 * fast: try only, false with none held. flags[] receives the env_lock flags. */
bool umm_bins_lock(umm_t *m, int idx[3], unsigned long flags[3], bool fast);
void umm_bins_unlock(umm_t *m, int idx[3], unsigned long flags[3]);
void umm_bin_push(umm_t *m, int i, uintptr_t c);
void umm_bin_unlink(umm_t *m, int i, uintptr_t c);
/* Make the bitmap valid up to the word of unit address a; fast: false
 * rather than wait. */
bool umm_bm_cover(umm_t *m, uintptr_t a, bool fast);
/* First boundary above c, reading at most `words` bitmap words (0: no
 * limit); 0 if the limit was hit. The end sentinel bounds the scan. */
uintptr_t umm_next_boundary(const umm_t *m, uintptr_t c, size_t words);
/* Bytes of free chunk c (s units) written since its pages were given back
 * (an upper bound), and the same stored. */
uint64_t umm_dirty(uintptr_t c, size_t s);
void umm_set_dirty(uintptr_t c, size_t s, uint64_t d);
/* Free chunk c (s units, locked by us, on its list): give its inner pages
 * back when enough of it was written since the last time. */
void umm_maybe_release(umm_t *m, struct umm_cpu *me, uintptr_t c, size_t s);
uintptr_t umm_find(umm_t *m, struct umm_cpu *me, size_t need, size_t align, uint8_t tags,
		   unsigned alog, bool fast);
bool umm_grow_in_place(umm_t *m, struct umm_cpu *me, uintptr_t c, uint64_t hc, size_t need);

/* ---- CPU caches (umm_cache.c; the hot halves inline below) ---------------- */
void umm_release_cached(umm_t *m, struct umm_cpu *me, uintptr_t c, bool fast);
void umm_flush_slots(umm_t *m, struct umm_cpu *me, bool fast);
void umm_flush_xfer(umm_t *m, struct umm_cpu *me);
bool umm_honour_flush(umm_t *m, struct umm_cpu *me, bool fast);
uintptr_t umm_refill(umm_t *m, struct umm_cpu *me, int k, uint8_t tags, bool fast);
bool umm_cache_put(umm_t *m, struct umm_cpu *me, uintptr_t c, int k, uint8_t tags, bool fast);
uint64_t umm_xfer_bytes(const umm_t *m, int k, unsigned n);
void umm_reclaim(umm_t *m, struct umm_cpu *me);
bool umm_await_flush(umm_t *m, struct umm_cpu *me, uint64_t limit);
void umm_sample_peak_cold(umm_t *m);

/* A slot entry: the chunk's offset in the pool, shifted, with the chunk's
 * tags in the low byte, so that an allocation whose tags match needs no read
 * of the header (a dependent load on the hot path). */
_Static_assert(MAX_UNITS * UNIT < ((uint64_t)1 << 59), "a slot entry holds offset << 4");
static inline uintptr_t sload(const uintptr_t *s) { return __atomic_load_n(s, __ATOMIC_RELAXED); }
static inline void sstore(uintptr_t *s, uintptr_t v) { __atomic_store_n(s, v, __ATOMIC_RELAXED); }
static inline uintptr_t slot_val(const umm_t *m, uintptr_t c, uint8_t tags)
{
	return ((c - m->base) << 4) | tags;
}
static inline uintptr_t slot_chunk(const umm_t *m, uintptr_t v)
{
	return m->base + ((v >> 4) & ~(uintptr_t)(UNIT - 1));
}
static inline uint8_t tload(const uint8_t *t) { return __atomic_load_n(t, __ATOMIC_RELAXED); }
static inline void tstore(uint8_t *t, unsigned v) { __atomic_store_n(t, (uint8_t)v, __ATOMIC_RELAXED); }

/* A flush was requested (a failing allocation raised m->flush_gen): give
 * our slots back before anything else. One load and a branch when not. */
static inline bool flush_due(const umm_t *m, const struct umm_cpu *me)
{
	return __atomic_load_n(&m->flush_gen, __ATOMIC_RELAXED) != __atomic_load_n(&me->gen, __ATOMIC_RELAXED);
}

/* Cache-path counters are per class (one counter per operation; bytes
 * follow from the class size). */
static inline void count_cache_alloc(umm_t *m, struct umm_cpu *me, int k)
{
	uint64_t n = ld(&me->c_alloc[k]) + 1;
	__atomic_store_n(&me->c_alloc[k], n, __ATOMIC_RELAXED);
	if ((n & 1023) == 0)
		umm_sample_peak_cold(m);
}

/* Cached chunk c (tags `had`) becomes the caller's block: its tags change
 * only when they differ (a CAS: a neighbour may hold LOCK or change PREVFREE
 * meanwhile); its key goes. */
static inline __attribute__((always_inline)) void unpark_use(uintptr_t c, uint8_t had, uint8_t tags)
{
	if (__builtin_expect(had != tags, 0)) {
		uint64_t h = __atomic_load_n((uint64_t *)c, __ATOMIC_RELAXED);
		while (!hcas(c, &h, (h & ~H_TAG_MASK) | ((uint64_t)tags << H_TAG_SHIFT)))
			;
	}
	w0store(c, 0);
}

/* Cache used chunk c of class k (checked: live, align 0, not cached) in our
 * slots; false if they are full. */
static inline __attribute__((always_inline)) bool slots_put(umm_t *m, struct umm_cpu *me, uintptr_t c,
							    int k, uint8_t tags)
{
	unsigned long fl = env_irq_save();
	unsigned t = tload(&me->top[k]);

	if (t >= m->cap[k]) {
		env_irq_restore(fl);
		return false;
	}
	w0store(c, key_of(m, c));
	sstore(&me->slot[k][t], slot_val(m, c, tags));
	tstore(&me->top[k], t + 1);
	cadd(&me->c_free[k], 1);
	env_irq_restore(fl);
	return true;
}

/* Pop a cached chunk of class k from our slots for the caller; 0 if none. */
static inline __attribute__((always_inline)) uintptr_t slots_get(umm_t *m, struct umm_cpu *me, int k,
								 uint8_t tags)
{
	unsigned long fl = env_irq_save();
	unsigned t = tload(&me->top[k]);
	uintptr_t c = 0;

	if (t) {
		uintptr_t v = sload(&me->slot[k][t - 1]);
		c = slot_chunk(m, v);
		tstore(&me->top[k], t - 1);
		unpark_use(c, (uint8_t)v, tags);
		count_cache_alloc(m, me, k);
	}
	env_irq_restore(fl);
	return c;
}

#endif
