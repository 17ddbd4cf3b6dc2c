/* umm.c - micro memory manager: chunks with per-chunk micro locks taken by
 * compare-and-swap on the header word, a boundary bitmap that validates
 * pointers and lets walkers resynchronise, per-CPU caches of freed chunks in
 * front of the pool and a lock-free deferred list for the fast path.
 *
 * CPU caches have two tiers: slots that only their CPU touches (interrupts
 * off, no atomic read-modify-write: a cached chunk keeps its USED header and
 * is marked by a key in its first payload word) and, behind them, per-class
 * transfer stacks of batches shared by all CPUs (one CAS or exchange per
 * batch), which carry chunks from the CPU that frees them to the one that
 * allocates (producer/consumer).
 *
 * Lock order (see docs/UMM.md): a CPU may WAIT for a chunk lock only at a
 * higher address than every chunk lock it holds; a lower chunk is only ever
 * try-locked, and on failure everything is released (back-off). No other
 * lock exists: slots are per CPU with interrupts off, transfer stacks and
 * the deferred list are lock-free.
 */
#include "umm.h"

#include <string.h>

/* ---- header word ----------------------------------------------------------
 *  bit  0      USED      chunk belongs to a user or is parked
 *  bit  1      PREVFREE  the chunk just below is free (its footer is valid)
 *  bit  2      LOCK      micro lock
 *  bit  3      PARKED    freed, on the deferred list (or a free backing off)
 *  bit  4      PENDING   freed while someone held LOCK; the holder parks it
 *  bit  5      MARK      set only inside umm_check (cache entry seen)
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
#define FAST_STEPS  256            /* chunks a fast-path search may visit */
#define FAST_SCAN   64             /* bitmap words a fast-path resync may read */
#define UMM_MAGIC   0x756d6d31u

_Static_assert((H_USED | H_PREVFREE | H_LOCK | H_PARKED | H_PENDING | H_RSVD) == 0xff,
	       "flag bits fill the low byte");
_Static_assert((H_TAG_MASK & H_ALIGN_MASK) == 0 && (H_ALIGN_MASK & H_SIZE_MASK) == 0 &&
	       (H_TAG_MASK | H_ALIGN_MASK | H_SIZE_MASK | 0xff) == ~(uint64_t)0,
	       "header fields tile the word");
_Static_assert(((uint64_t)1 << (64 - H_SIZE_SHIFT)) * UNIT >= ((uint64_t)1 << 30),
	       "size field covers a 1 GiB pool");
_Static_assert(HDR + sizeof(void *) <= UNIT, "a one-unit chunk holds a list link");
_Static_assert(HDR + 3 * sizeof(uint64_t) <= 2 * UNIT, "a two-unit chunk holds key and two links");

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
 * Speculative header accesses: searches and walks read headers they have not
 * locked; a header can vanish (merge) and its memory become a user's payload
 * between the bitmap check and the access. Such reads are validated (bitmap,
 * re-read, CAS on the exact value), so they are harmless, but ThreadSanitizer
 * cannot know: under TSan these few accesses are excluded from race
 * detection (their acquire/release still counts). Everything else - locked
 * headers, footers, lists, payloads - stays checked.
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

/* ---- boundary bitmap: bit set <=> a chunk header starts at that unit ---- */
static inline size_t bidx(const umm_t *m, uintptr_t c) { return (c - m->base) / UNIT; }
static inline bool bm_test(const umm_t *m, uintptr_t c)
{
	size_t i = bidx(m, c);
	return (__atomic_load_n(&m->bitmap[i / 64], __ATOMIC_ACQUIRE) >> (i % 64)) & 1;
}
/* The same for a check whose result a CAS then validates: no ordering. */
static inline bool bm_test_rlx(const umm_t *m, uintptr_t c)
{
	size_t i = bidx(m, c);
	return (__atomic_load_n(&m->bitmap[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
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
/* First boundary above c, reading at most `words` bitmap words (0: no
 * limit); 0 if the limit was hit. The end sentinel bounds the scan. */
static uintptr_t next_boundary(const umm_t *m, uintptr_t c, size_t words)
{
	size_t i = bidx(m, c) + 1, last = bidx(m, m->end);
	for (size_t n = 0; i <= last && (!words || n < words); n++) {
		uint64_t w = __atomic_load_n(&m->bitmap[i / 64], __ATOMIC_ACQUIRE) >> (i % 64);
		if (w)
			return m->base + (i + (size_t)__builtin_ctzll(w)) * UNIT;
		i = (i / 64 + 1) * 64;
	}
	return i > last ? m->end : 0;
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

/* Chunk units of size class k (the classes: see class_of below). */
static size_t class_units(int k)
{
	if (k < 16)
		return (size_t)k + 1;
	unsigned b = 4 + (unsigned)(k - 16) / 4;
	return (size_t)((k - 16) % 4 + 5) << (b - 2);
}

/* Sum over the CPU indexes below n (ENV_MAX_CPUS for exact figures). */
static uint64_t live_bytes_n(umm_t *m, unsigned n)
{
	uint64_t in = 0, out = 0;
	for (unsigned i = 0; i < n && i < ENV_MAX_CPUS; i++) {
		const struct umm_cpu *cp = &m->cpu[i];
		in += ld(&cp->p_in);
		out += ld(&cp->p_out);
		for (int k = 0; k < UMM_NCLASSES; k++) {
			uint64_t b = class_units(k) * UNIT;
			in += ld(&cp->c_alloc[k]) * b;
			out += ld(&cp->c_free[k]) * b;
		}
	}
	return in - out;
}

static uint64_t live_bytes(umm_t *m) { return live_bytes_n(m, ENV_MAX_CPUS); }

/* The peak is sampled (every 64th pool allocation of a CPU and 1024th
 * cache allocation of a CPU and class, summing the CPU indexes in use; and
 * in umm_stats) so that no allocation touches a pool-wide counter. */
static void sample_peak(umm_t *m)
{
	uint64_t live = live_bytes_n(m, env_ncpus()), old = __atomic_load_n(&m->peak, __ATOMIC_RELAXED);
	if ((int64_t)live < 0)
		return;
	while (live > old && !__atomic_compare_exchange_n(&m->peak, &old, live, true,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void count_pool_alloc(umm_t *m, struct umm_cpu *me, size_t units)
{
	padd(&me->p_in, (uint64_t)units * UNIT);
	if ((__atomic_fetch_add(&me->p_allocs, 1, __ATOMIC_RELAXED) & 63) == 0)
		sample_peak(m);
}

/* Bad input is counted always and logged for the first few and then every
 * power of two per CPU, so a buggy caller cannot flood the console. */
static void bad_input(umm_t *m, const char *who, const void *p, const char *why)
{
	uint64_t n = __atomic_fetch_add(&cpu_of(m)->errors, 1, __ATOMIC_RELAXED);
	if (n < 8 || !(n & (n - 1)))
		env_log("%s: %p: %s", who, p, why);
}

/* ---- size classes of the CPU caches ----------------------------------------
 * Chunks of 1..16 units exactly, then four classes per doubling up to 256
 * units (4 KiB). Requests that fall in a class are rounded up to it, so a
 * parked chunk fits every later request of its class. */
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

/* ---- micro locks -------------------------------------------------------- */

/* Set LOCK on chunk c whatever its state. Fast: give up at once if it is
 * held. Slow: wait (callers hold only lower chunks). Returns the locked
 * header, 0 on failure. */
static uint64_t lock_chunk(struct umm_cpu *me, uintptr_t c, bool fast)
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

static void push_deferred(umm_t *m, uintptr_t c)
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
static void unlock_chunk(umm_t *m, uintptr_t c, uint64_t clr, uint64_t set)
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
		push_deferred(m, c);
}

enum { CLAIM_OK, CLAIM_BAD, CLAIM_PENDING };

/* Take a live block from its owner: sets LOCK on a used, unparked,
 * unlocked header. If a neighbour holds the lock, mark the block PENDING so
 * the holder parks it (never waits). */
static int claim(uintptr_t c, uint64_t *out)
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
static void park(umm_t *m, uintptr_t c)
{
	uint64_t h = hload(c), n;
	do {
		n = (h & ~(H_LOCK | H_PENDING | H_TAG_MASK)) | H_PARKED;
	} while (!hcas(c, &h, n));
	if (h & H_PENDING)
		bad_input(m, "umm_free", (void *)(c + HDR), "double free");
}

/* ---- free and merge ------------------------------------------------------- */

/* Lock the free chunk below x (x is locked by us, PREVFREE set, so its
 * footer is stable). Try-lock only: it is at a lower address. */
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

/* x (claimed), n (its successor, locked) and w (free predecessor, locked,
 * or 0) become one free chunk. Removed boundaries leave the bitmap before
 * their headers are cleared, and both before the merged header appears. */
static void merge(umm_t *m, uintptr_t x, uint64_t hx, uintptr_t n, uint64_t hn,
		  uintptr_t w, uint64_t hw)
{
	bool nfree = !(hn & H_USED);
	uintptr_t start = w ? w : x;
	uintptr_t stop = nfree ? n + h_units(hn) * UNIT : n;
	size_t units = (stop - start) / UNIT;

	fstore(stop, units);
	if (nfree) {
		bm_clear(m, n);
		hstore(n, 0);
	}
	if (w) {
		bm_clear(m, x);
		hstore(x, 0);
		hstore(w, mkfree(units, hw & H_PREVFREE));
	} else {
		uint64_t h = hx;
		while (!hcas(x, &h, mkfree(units, hx & H_PREVFREE)))
			;
		if (h & H_PENDING)
			bad_input(m, "umm_free", (void *)(x + HDR), "double free");
	}
	if (!nfree)
		unlock_chunk(m, n, 0, H_PREVFREE);
}

/* Return claimed chunk x to the pool. Fast: false if any lock is busy (x is
 * still claimed). Slow: backs off (parks x, releasing its lock, so whoever
 * holds the lower chunk and waits for x can finish) and retries. */
static bool free_claimed(umm_t *m, struct umm_cpu *me, uintptr_t x, bool fast)
{
	for (;;) {
		uint64_t hx = hload(x), hn, hw = 0;
		uintptr_t n = x + h_units(hx) * UNIT, w = 0;

		hn = lock_chunk(me, n, fast);
		if (!hn)
			return false;
		if (hx & H_PREVFREE) {
			w = lock_prev(m, me, x, &hw);
			if (!w) {
				unlock_chunk(m, n, 0, 0);
				if (fast)
					return false;
				park(m, x);
				for (unsigned i = 0; i < 32; i++)
					env_cpu_relax();
				claim_parked(me, x);
				continue;
			}
		}
		merge(m, x, hload(x), n, hn, w, hw);
		return true;
	}
}

/* Slow path: free every chunk parked on the deferred list. Consumers take the
 * whole list with one exchange, so pops never race and ABA cannot arise. */
static void drain(umm_t *m, struct umm_cpu *me)
{
	if (!__atomic_load_n(&m->deferred, __ATOMIC_RELAXED))
		return;
	uintptr_t c = (uintptr_t)__atomic_exchange_n(&m->deferred, NULL, __ATOMIC_ACQUIRE);
	while (c) {
		uintptr_t next = (uintptr_t)*(void **)(c + HDR);
		claim_parked(me, c);
		free_claimed(m, me, c, false);
		c = next;
	}
}

/* ---- CPU caches ------------------------------------------------------------
 * A cached chunk keeps the header of a live block (USED, its tags, align 0):
 * to the pool it is allocated, so neighbours may still LOCK it and change
 * its PREVFREE, exactly as for a user's block. What marks it cached is its
 * key, secret ^ address, in payload word 0; it is stored on the way in and
 * cleared on every way out (to a user, or to the pool), so a key never
 * outlives its cache entry and a fresh block never carries one.
 *
 * Slots: slot[k][0 .. top[k]) of a CPU list its cached chunks of class k
 * (slot_val: offset and tags). Only that CPU reads or writes them, with
 * interrupts off; relaxed atomic accesses let umm_stats read them racily.
 * No atomic read-modify-write on either hot path.
 *
 * Transfer stacks: when a CPU's slots of class k are full, the oldest half
 * moves to xfer[k] as one batch: its first chunk (the head) lists the
 * others' slot entries from payload word W_ENTRY on, their number in
 * W_COUNT and the next batch in W_BATCH (so a batch is as large as its
 * head can list; one-unit chunks have no room and never leave the slots
 * this way). A batch is pushed with one CAS; a CPU whose slots are empty
 * takes the whole stack with one exchange (so no pop ever reads a stale
 * link: no ABA), keeps one batch and pushes the rest back with one CAS.
 * The taker copies the entries into its slots without touching those
 * chunks. Bytes in the stacks are counted per CPU (xnet_add) and bounded
 * by m->xfer_cap per class.
 *
 * Flush requests: see honour_flush and alloc_common.
 */

/* Slots are guarded by turning interrupts off on the kernel's harts (on
 * the host env_irq_save is an inline no-op). */

static inline uintptr_t sload(const uintptr_t *s) { return __atomic_load_n(s, __ATOMIC_RELAXED); }
static inline void sstore(uintptr_t *s, uintptr_t v) { __atomic_store_n(s, v, __ATOMIC_RELAXED); }
/* A slot entry: the chunk's offset in the pool, shifted, with the chunk's
 * tags in the low byte, so that an allocation whose tags match needs no read
 * of the header (a dependent load on the hot path). */
_Static_assert(MAX_UNITS * UNIT < ((uint64_t)1 << 59), "a slot entry holds offset << 4");
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

/* Payload word i of chunk c. Word 0 (the key) is read by other CPUs only for
 * ordered double-free checks and speculative walks: atomic, relaxed. */
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

static __attribute__((noinline)) void sample_peak_cold(umm_t *m)
{
	sample_peak(m);
}

/* Cache-path counters are per class (one counter per operation; bytes
 * follow from the class size). */
static inline void count_cache_alloc(umm_t *m, struct umm_cpu *me, int k)
{
	uint64_t n = ld(&me->c_alloc[k]) + 1;
	__atomic_store_n(&me->c_alloc[k], n, __ATOMIC_RELAXED);
	if ((n & 1023) == 0)
		sample_peak_cold(m);
}

static inline void count_cache_free(struct umm_cpu *me, int k)
{
	cadd(&me->c_free[k], 1);
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

/* Cached chunk c (no longer listed anywhere) goes back to the pool, through
 * the claim and merge of a user's free; no counter changes (its bytes were
 * counted free when the user freed it). Fast: never waits, a busy
 * neighbourhood defers it. */
static void release_cached(umm_t *m, struct umm_cpu *me, uintptr_t c, bool fast)
{
	uint64_t h;

	w0store(c, 0);   /* its key must not outlive its cache entry */
	int r = claim(c, &h);
	if (r == CLAIM_BAD)
		env_panic("umm_free: cached chunk %p is not a used chunk", (void *)c);
	if (r == CLAIM_OK && !free_claimed(m, me, c, fast)) {
		park(m, c);
		push_deferred(m, c);
	}
	/* CLAIM_PENDING: the neighbour holding its lock parks it */
}

/* Take up to `n` entries of our class k out of the slots, the oldest
 * (bottom) ones first. Returns how many. */
static unsigned slots_take(struct umm_cpu *me, int k, uintptr_t *out, unsigned n)
{
	unsigned long fl = env_irq_save();
	unsigned t = tload(&me->top[k]);

	if (n > t)
		n = t;
	for (unsigned j = 0; j < n; j++)
		out[j] = sload(&me->slot[k][j]);
	for (unsigned j = n; j < t; j++)
		sstore(&me->slot[k][j - n], sload(&me->slot[k][j]));
	tstore(&me->top[k], t - n);
	env_irq_restore(fl);
	return n;
}

/* Return all our cached chunks to the pool (slots only). */
static void flush_slots(umm_t *m, struct umm_cpu *me, bool fast)
{
	uintptr_t v[UMM_SLOTS];

	for (int k = 0; k < UMM_NCLASSES; k++) {
		if (!tload(&me->top[k]))
			continue;
		unsigned n = slots_take(me, k, v, UMM_SLOTS);
		for (unsigned j = 0; j < n; j++)
			release_cached(m, me, slot_chunk(m, v[j]), fast);
	}
}

/* A flush was requested (a failing allocation raised m->flush_gen): give
 * our slots back before anything else. One load and a branch when not. */
static inline bool flush_due(const umm_t *m, const struct umm_cpu *me)
{
	return __atomic_load_n(&m->flush_gen, __ATOMIC_RELAXED) != __atomic_load_n(&me->gen, __ATOMIC_RELAXED);
}

/* Cold paths: honour a flush request, then bypass the cache for the next
 * LEAN_OPS calls (our gen stays behind until then, so the hot paths keep
 * coming here): the failing allocation retries while every CPU frees into
 * the pool, instead of scattering freshly cached chunks through it. True
 * while the cache is to be bypassed. */
#define LEAN_OPS 1024
static bool honour_flush(umm_t *m, struct umm_cpu *me, bool fast)
{
	uint32_t g = __atomic_load_n(&m->flush_gen, __ATOMIC_RELAXED);

	if (g == __atomic_load_n(&me->gen, __ATOMIC_RELAXED))
		return false;
	if (__atomic_load_n(&me->honoured, __ATOMIC_RELAXED) != g) {
		__atomic_store_n(&me->honoured, g, __ATOMIC_RELAXED);
		__atomic_store_n(&me->lean, LEAN_OPS, __ATOMIC_RELAXED);
		flush_slots(m, me, fast);
	}
	unsigned n = __atomic_load_n(&me->lean, __ATOMIC_RELAXED);
	if (n) {
		__atomic_store_n(&me->lean, n - 1, __ATOMIC_RELAXED);
		return true;
	}
	__atomic_store_n(&me->gen, g, __ATOMIC_RELAXED);
	return false;
}

/* Bytes in the transfer stacks are counted per CPU (pushed minus taken,
 * plain arithmetic with interrupts off, so no atomic read-modify-write);
 * their sum over the CPUs below n is the stack's content. Read racily for
 * the bound, exact when quiescent. */
static inline void xnet_add(struct umm_cpu *me, int k, int64_t d)
{
	cadd(&me->x_net[k], (uint64_t)d);
}

static uint64_t xfer_bytes(const umm_t *m, int k, unsigned n)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < n && i < ENV_MAX_CPUS; i++)
		sum += ld(&m->cpu[i].x_net[k]);
	return sum;
}

/* Push one batch b on x. */
static void xfer_push(struct umm_xfer *x, uintptr_t b)
{
	void *old = __atomic_load_n(&x->head, __ATOMIC_RELAXED);
	do {
		set_link(b, W_BATCH, (uintptr_t)old);
	} while (!__atomic_compare_exchange_n(&x->head, &old, (void *)b, true, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
}

/* Push back a chain of batches (linked through W_BATCH, last link 0) that
 * we took: one CAS if the stack is still empty, as it mostly is; else its
 * tail is linked to what others pushed meanwhile. */
static void xfer_push_chain(struct umm_xfer *x, uintptr_t first)
{
	void *old = NULL;
	uintptr_t tail = 0;

	while (!__atomic_compare_exchange_n(&x->head, &old, (void *)first, false, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED)) {
		if (!tail)
			for (tail = first; link_of(tail, W_BATCH);)
				tail = link_of(tail, W_BATCH);
		set_link(tail, W_BATCH, (uintptr_t)old);
	}
}

/* Our class k slots are full: move their oldest half to the transfer stack
 * as one batch, or to the pool if the stacks of the class hold their bound
 * already (the bound keeps idle memory finite; it is read racily). */
static void spill(umm_t *m, struct umm_cpu *me, int k, bool fast)
{
	uintptr_t v[UMM_SLOTS], b;
	unsigned n = slots_take(me, k, v, m->batch[k]);
	size_t bytes = n * class_units(k) * UNIT;

	if (!n)
		return;
	b = slot_chunk(m, v[0]);
	if (xfer_bytes(m, k, env_ncpus()) + bytes > m->xfer_cap) {
		for (unsigned j = 0; j < n; j++)
			release_cached(m, me, slot_chunk(m, v[j]), fast);
		return;
	}
	/* the head lists the others' slot entries (offset and tags): the
	 * taker copies them into its slots without touching those chunks */
	set_link(b, W_COUNT, n - 1);
	for (unsigned j = 1; j < n; j++)
		set_link(b, W_ENTRY + j - 1, v[j]);
	unsigned long fl = env_irq_save();
	xnet_add(me, k, (int64_t)bytes);   /* before the push: a taker subtracts after */
	env_irq_restore(fl);
	xfer_push(&m->xfer[k], b);
}

/* Take the whole stack of class k, keep its first batch, push the rest back.
 * Returns the batch's head, 0 if there was none. */
static uintptr_t xfer_take(umm_t *m, int k)
{
	struct umm_xfer *x = &m->xfer[k];

	if (!__atomic_load_n(&x->head, __ATOMIC_RELAXED))
		return 0;
	uintptr_t b = (uintptr_t)__atomic_exchange_n(&x->head, NULL, __ATOMIC_ACQUIRE);
	if (b && link_of(b, W_BATCH))
		xfer_push_chain(x, link_of(b, W_BATCH));
	return b;
}

/* Our class k slots are empty: refill them from a batch of the transfer
 * stack, the first chunk for the caller. Returns it, or 0. */
static uintptr_t refill(umm_t *m, struct umm_cpu *me, int k, uint8_t tags, bool fast)
{
	uintptr_t c = xfer_take(m, k);
	size_t bytes = class_units(k) * UNIT;
	unsigned n, j;

	if (!c)
		return 0;
	n = (unsigned)link_of(c, W_COUNT);
	unsigned long fl = env_irq_save();
	unsigned t = tload(&me->top[k]);
	for (j = 0; j < n && t < m->cap[k]; j++)   /* full: an interrupt filled them */
		sstore(&me->slot[k][t++], link_of(c, W_ENTRY + j));
	tstore(&me->top[k], t);
	unpark_use(c, h_tags(hload(c)), tags);
	count_cache_alloc(m, me, k);
	xnet_add(me, k, -(int64_t)((n + 1) * bytes));
	env_irq_restore(fl);
	for (; j < n; j++)
		release_cached(m, me, slot_chunk(m, link_of(c, W_ENTRY + j)), fast);
	return c;
}

/* Slow path, on allocation failure: every transfer stack to the pool. */
static void flush_xfer(umm_t *m, struct umm_cpu *me)
{
	for (int k = 0; k < UMM_NCLASSES; k++) {
		struct umm_xfer *x = &m->xfer[k];
		if (!__atomic_load_n(&x->head, __ATOMIC_RELAXED))
			continue;
		uintptr_t b = (uintptr_t)__atomic_exchange_n(&x->head, NULL, __ATOMIC_ACQUIRE), nb;
		uint64_t n = 0;
		for (; b; b = nb) {
			unsigned cnt = (unsigned)link_of(b, W_COUNT);
			nb = link_of(b, W_BATCH);
			for (unsigned j = 0; j < cnt; j++)
				release_cached(m, me, slot_chunk(m, link_of(b, W_ENTRY + j)), false);
			release_cached(m, me, b, false);   /* its entries are read: now it */
			n += cnt + 1;
		}
		unsigned long fl = env_irq_save();
		xnet_add(me, k, -(int64_t)(n * class_units(k) * UNIT));
		env_irq_restore(fl);
	}
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
	count_cache_free(me, k);
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

/* ---- search and carve ------------------------------------------------------ */

/* Cut a used chunk of `need` units at unit offset `off` out of free chunk x
 * (locked by us, header hx). The leading part stays free; a tail becomes a
 * new free chunk. An exact fit must clear PREVFREE of the successor, which
 * needs its lock (higher address, so we may wait on the slow path). Returns
 * the new chunk, or 0 with x unlocked (fast path only). */
static uintptr_t carve(umm_t *m, struct umm_cpu *me, uintptr_t x, uint64_t hx, size_t off,
		       size_t need, uint8_t tags, unsigned alog, bool fast)
{
	size_t s = h_units(hx), tail = s - off - need;
	uintptr_t n = x + s * UNIT, c = x + off * UNIT;

	if (!tail && !lock_chunk(me, n, fast)) {
		hstore(x, hx & ~H_LOCK);
		return 0;
	}
	if (tail) {
		uintptr_t r = c + need * UNIT;
		hstore(r, mkfree(tail, 0));
		bm_set(m, r);
		fstore(n, tail);
	}
	if (off) {
		fstore(c, off);
		hstore(c, mkused(need, tags, alog) | H_PREVFREE);
		bm_set(m, c);
		hstore(x, mkfree(off, hx & H_PREVFREE));
	} else {
		hstore(x, mkused(need, tags, alog) | (hx & H_PREVFREE));
	}
	if (!tail)
		unlock_chunk(m, n, H_PREVFREE, 0);
	return c;
}

/* Where in free chunk x (s units) a block fits: unit offset, or -1. */
static long placement(uintptr_t x, size_t s, size_t need, size_t align, uintptr_t home)
{
	size_t off = 0;

	if (align > UNIT) {
		uintptr_t p = (x + HDR + align - 1) & ~(uintptr_t)(align - 1);
		off = (p - HDR - x) / UNIT;
	} else if (home > x && home < x + s * UNIT && (home - x) / UNIT + need <= s) {
		off = (home - x) / UNIT;
	}
	return off + need <= s ? (long)off : -1;
}

/* A CPU's first search aims at its own spot of the pool (golden-ratio
 * spread of the CPU index), so CPUs carve from different chunks. */
static uintptr_t home_of(const umm_t *m, unsigned cpu)
{
	uint64_t units = (m->end - m->base) / UNIT;
	uint64_t frac = (uint32_t)((cpu * 0x9E3779B97F4A7C15ull) >> 32);
	return m->base + (uintptr_t)((units * frac) >> 32) * UNIT;
}

/* Next-fit search from this CPU's rover: one lap of the pool at most (the
 * fast path visits FAST_STEPS chunks and only try-locks). Every step checks
 * that the next header is a boundary in the bitmap and that the current one
 * did not change, else resynchronises from the bitmap. */
static uintptr_t find(umm_t *m, struct umm_cpu *me, size_t need, size_t align, uint8_t tags,
		      unsigned alog, bool fast)
{
	uintptr_t start = __atomic_load_n(&me->rover, __ATOMIC_RELAXED), home = 0, x;
	bool wrapped = false;
	unsigned steps = 0, restarts = 0;

	if (!start)
		home = home_of(m, env_cpu());
	if (start < m->base || start > m->end || !bm_test(m, start))
		start = m->base;
	for (x = start;;) {
		if (x >= m->end) {
			if (wrapped)
				return 0;
			wrapped = true;
			x = m->base;
		}
		if ((wrapped && x >= start) || (fast && ++steps > FAST_STEPS))
			return 0;
		/* Read, then check that x and the end the header claims are
		 * both boundaries: only then is h a real header, not the
		 * payload of a block that took x's place. */
		uint64_t h = spec_load(x);
		size_t s = h_units(h);
		bool real = fits(m, x, s);
		uintptr_t y = real ? x + s * UNIT : x;
		real = real && bm_test(m, x) && bm_test(m, y);
		long off;
		if (real && !fast && (h & (H_USED | H_LOCK)) == H_LOCK && s >= need) {
			/* a big enough free chunk is busy: wait rather than fail a lap */
			padd(&me->retries, 1);
			env_cpu_relax();
			continue;
		}
		if (real && !(h & (H_USED | H_LOCK)) && s >= need &&
		    (off = placement(x, s, need, align, home)) >= 0) {
			uint64_t exp = h;
			if (spec_cas(x, &exp, h | H_LOCK)) {
				uintptr_t c = carve(m, me, x, h | H_LOCK, (size_t)off, need, tags, alog, fast);
				if (c) {
					__atomic_store_n(&me->rover, c + need * UNIT, __ATOMIC_RELAXED);
					return c;
				}
			} else {
				padd(&me->retries, 1);
				if (!fast)
					continue;
			}
		}
		if (!real || spec_load(x) != h) {
			/* stale view: re-read x if it is still a chunk, else go
			 * to the next boundary close above, else start over */
			padd(&me->retries, 1);
			y = bm_test(m, x) ? x : next_boundary(m, x, FAST_SCAN);
			if (!y) {
				if (fast || ++restarts > 16)
					return 0;
				y = m->base;
				wrapped = true;
			}
		}
		x = y;
	}
}

/* ---- public API ------------------------------------------------------------ */

/* The key secret: mixed from the pool address and the clock, never zero in
 * its low bits' combination with a chunk address (chunks sit at 8 mod 16,
 * the secret's low nibble is 5), so a zeroed payload is never a key. */
static uint64_t make_secret(const void *space)
{
	uint64_t z = (uint64_t)(uintptr_t)space ^ (env_ticks() * 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return (z & ~(uint64_t)0xf) | 0x5;
}

int umm_init(umm_t *m, void *space, size_t size)
{
	if (!m || !space)
		return E_INVAL;
	uintptr_t lo = ((uintptr_t)space + 7) & ~(uintptr_t)7;
	uintptr_t hi = (uintptr_t)space + size;
	if (size < 4096 || hi < (uintptr_t)space)
		return E_RANGE;
	size_t nbits = (hi - lo) / UNIT + 1;
	size_t bmbytes = (nbits + 63) / 64 * 8;
	uintptr_t base = ((lo + bmbytes + UNIT - 1) & ~(uintptr_t)(UNIT - 1)) + HDR;
	if (base + 2 * UNIT > hi)
		return E_RANGE;
	size_t units = (hi - base - HDR) / UNIT;   /* leave room for the sentinel */
	if (units > MAX_UNITS)
		return E_RANGE;

	memset(m, 0, sizeof(*m));
	m->bitmap = (uint64_t *)lo;
	memset(m->bitmap, 0, bmbytes);
	m->base = base;
	m->end = base + units * UNIT;
	m->secret = make_secret(space);
	/* a CPU's slots hold at most min(64 KiB, pool / 1024) per class, the
	 * transfer stacks of a class four times that */
	size_t cap = (units * UNIT) / 1024 < 64 * 1024 ? (units * UNIT) / 1024 : 64 * 1024;
	for (int k = 0; k < UMM_NCLASSES; k++) {
		size_t n = cap / (class_units(k) * UNIT);
		m->cap[k] = (uint8_t)(n < UMM_SLOTS ? n : UMM_SLOTS);
		/* half the slots, as many as the head's payload can list
		 * after key, count and link (one-unit chunks: none) */
		size_t fit = 2 * class_units(k) - 1 >= W_ENTRY ? 2 * class_units(k) - 1 - W_ENTRY + 1 : 0;
		size_t half = ((size_t)m->cap[k] + 1) / 2;
		m->batch[k] = (uint8_t)(half < fit ? half : fit);
	}
	m->xfer_cap = 4 * cap;
	hstore(base, mkfree(units, 0));
	fstore(m->end, units);
	bm_set(m, base);
	hstore(m->end, mkused(1, 0, 0) | H_PREVFREE);   /* end sentinel, never freed */
	bm_set(m, m->end);
	m->magic = UMM_MAGIC;
	return 0;
}

static bool size_ok(umm_t *m, size_t size, const char *who)
{
	if (size == 0) {
		bad_input(m, who, NULL, "size 0");
		return false;
	}
	if (size > m->end - m->base - HDR) {
		bad_input(m, who, (void *)size, "size beyond the pool");
		return false;
	}
	return true;
}

/* A live-looking block pointer of this pool: inside, on the payload grid and
 * at a boundary of the bitmap (which rejects interior pointers exactly). */
static uintptr_t chunk_of(umm_t *m, const void *p, const char *who)
{
	uintptr_t a = (uintptr_t)p, c = a - HDR;
	if (a < m->base + HDR || c >= m->end || (c - m->base) % UNIT) {
		bad_input(m, who, p, "not a block of this pool");
		return 0;
	}
	if (!bm_test(m, c)) {
		bad_input(m, who, p, "interior pointer");
		return 0;
	}
	return c;
}

/* A live block: used, not parked or being freed, not cached. */
static bool live_block(const umm_t *m, uintptr_t c, uint64_t h)
{
	return (h & H_USED) && !(h & (H_PARKED | H_PENDING)) && !cached(m, c, h);
}

/* Slow path on allocation failure: ask every CPU to flush its slots at its
 * next call, flush ours and every transfer stack, drain the deferred list. */
static void reclaim(umm_t *m, struct umm_cpu *me)
{
	uint32_t g = __atomic_add_fetch(&m->flush_gen, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&me->honoured, g, __ATOMIC_RELAXED);
	__atomic_store_n(&me->gen, g, __ATOMIC_RELAXED);
	flush_slots(m, me, false);
	flush_xfer(m, me);
	drain(m, me);
}

/* Slow path, still failing after reclaim: other CPUs give their slots back
 * at their next call. Wait for those holding cached chunks to do so, until
 * `limit` (host threads and QEMU harts may wait long for a core). A CPU
 * that let a wait time out is marked and not waited for again until it
 * honours a request (it may be idle for good), so an idle CPU costs one
 * wait, not one per failing allocation. True if every one awaited did. */
static bool await_flush(umm_t *m, struct umm_cpu *me, uint64_t limit)
{
	uint32_t g = __atomic_load_n(&m->flush_gen, __ATOMIC_RELAXED);

	for (;;) {
		bool pending = false, late = env_ticks() > limit;
		for (unsigned i = 0; i < ENV_MAX_CPUS && (!pending || late); i++) {
			struct umm_cpu *cp = &m->cpu[i];
			uint32_t h = __atomic_load_n(&cp->honoured, __ATOMIC_RELAXED);
			if (cp == me || h == g || __atomic_load_n(&cp->missed, __ATOMIC_RELAXED) == h + 1)
				continue;
			bool holds = false;
			for (int k = 0; k < UMM_NCLASSES && !holds; k++)
				holds = tload(&cp->top[k]) != 0;
			if (holds && late)   /* a waiter marks it; several may, alike */
				__atomic_store_n(&cp->missed, h + 1, __ATOMIC_RELAXED);
			pending |= holds;
		}
		if (!pending)
			return true;
		if (late)
			return false;
		for (unsigned i = 0; i < 64; i++)
			env_cpu_relax();
	}
}

static void *alloc_common(umm_t *m, size_t size, size_t align, uint8_t tags, bool fast)
{
	struct umm_cpu *me = cpu_of(m);
	size_t need = units_for(size), cu;
	unsigned alog = align > UNIT ? (unsigned)__builtin_ctzll(align) : 0;
	uintptr_t c;

	bool lean = honour_flush(m, me, fast);
	if (!fast)
		drain(m, me);
	if (!alog && !lean) {
		int k = class_of(need, &cu);
		if (k >= 0) {
			need = cu;
			if ((c = slots_get(m, me, k, tags)) || (c = refill(m, me, k, tags, fast)))
				return (void *)(c + HDR);
		}
	}
	c = find(m, me, need, align, tags, alog, fast);
	if (!c && !fast) {
		/* other CPUs keep caching while they honour the request, so a
		 * few rounds, within 250 ms in all */
		uint64_t limit = env_ticks() + env_ticks_per_sec() / 4 + 1;
		bool more = true;
		for (unsigned round = 0; !c && more && round < 4; round++) {
			if (round)   /* after a time-out: one last try */
				more = await_flush(m, me, limit);
			reclaim(m, me);
			c = find(m, me, need, align, tags, alog, false);
		}
	}
	if (!c) {
		padd(&me->failures, 1);
		return NULL;
	}
	count_pool_alloc(m, me, need);
	return (void *)(c + HDR);
}

/* Hot path of both allocators: a request of a class size served from this
 * CPU's own slots (no size check needed: a hit is a chunk of the pool). */
#define SMALL_MAX (256 * UNIT - HDR)   /* largest size of a class */
_Static_assert((SMALL_MAX + HDR + UNIT - 1) / UNIT == 256, "SMALL_MAX is the top class");

static inline __attribute__((always_inline)) uintptr_t alloc_hot(umm_t *m, size_t size, uint8_t tags)
{
	/* the CPU first: on the host it is a call, and fewer values live
	 * across it means fewer registers saved */
	struct umm_cpu *me = &m->cpu[env_cpu() % ENV_MAX_CPUS];
	size_t units = units_for(size), cu = units;
	int k = units <= 16 ? (int)units - 1 : class_of(units, &cu);

	if (flush_due(m, me))
		return 0;
	return slots_get(m, me, k, tags);
}

static __attribute__((noinline)) void *alloc_cold(umm_t *m, size_t size, uint8_t tags, bool fast)
{
	if (!size_ok(m, size, fast ? "umm_alloc_fast" : "umm_alloc"))
		return NULL;
	return alloc_common(m, size, 0, tags, fast);
}

void *umm_alloc(umm_t *m, size_t size, uint8_t tags)
{
	uintptr_t c;
	if (size - 1 < SMALL_MAX && !__atomic_load_n(&m->deferred, __ATOMIC_RELAXED) &&
	    (c = alloc_hot(m, size, tags)))
		return (void *)(c + HDR);
	return alloc_cold(m, size, tags, false);
}

void *umm_alloc_fast(umm_t *m, size_t size, uint8_t tags)
{
	uintptr_t c;
	if (size - 1 < SMALL_MAX && (c = alloc_hot(m, size, tags)))
		return (void *)(c + HDR);
	return alloc_cold(m, size, tags, true);
}

void *umm_alloc_aligned(umm_t *m, size_t size, size_t align, uint8_t tags)
{
	if (align == 0 || (align & (align - 1)) || align > ((size_t)1 << 31)) {
		bad_input(m, "umm_alloc_aligned", (void *)align, "alignment not a power of two <= 2^31");
		return NULL;
	}
	if (!size_ok(m, size, "umm_alloc_aligned"))
		return NULL;
	return alloc_common(m, size, align, tags, false);
}

/* Cache live chunk c of class k: our slots, else (full) after moving their
 * oldest half to the transfer stack. False: c must go to the pool. */
static bool cache_put(umm_t *m, struct umm_cpu *me, uintptr_t c, int k, uint8_t tags, bool fast)
{

	if (slots_put(m, me, c, k, tags))
		return true;
	if (!m->batch[k])
		return false;
	spill(m, me, k, fast);
	return slots_put(m, me, c, k, tags);
}

static void free_common(umm_t *m, void *p, bool fast, const char *who)
{
	struct umm_cpu *me;
	uintptr_t c;
	uint64_t h;
	int k, r;

	if (!p)
		return;
	if (!(c = chunk_of(m, p, who)))
		return;
	me = cpu_of(m);
	bool lean = honour_flush(m, me, fast);
	if (!fast)
		drain(m, me);   /* before claiming: draining may wait for our chunk */
	h = hload(c);
	if (!live_block(m, c, h)) {
		bad_input(m, who, p, "double free");
		return;
	}
	if (!lean && !(h & H_ALIGN_MASK) && (k = exact_class(h_units(h))) >= 0 && cache_put(m, me, c, k, h_tags(h), fast))
		return;
	r = claim(c, &h);
	if (r == CLAIM_BAD) {
		bad_input(m, who, p, "double free");
		return;
	}
	padd(&me->p_out, h_units(h) * UNIT);
	padd(&me->p_frees, 1);
	if (r == CLAIM_PENDING)
		return;
	if (!free_claimed(m, me, c, fast)) {
		park(m, c);
		push_deferred(m, c);
	}
}

/* Hot path of both frees: a live block of a class size cached in this CPU's
 * slots, straight-line, no atomic read-modify-write. False (nothing done)
 * whenever anything else must look at it: free_common repeats every check
 * and reports errors. */
static inline __attribute__((always_inline)) bool free_hot(umm_t *m, void *p)
{
	struct umm_cpu *me = &m->cpu[env_cpu() % ENV_MAX_CPUS];   /* first: see alloc_hot */
	uintptr_t c = (uintptr_t)p - HDR;
	if (c < m->base || c >= m->end || ((c - m->base) % UNIT) || !bm_test_rlx(m, c))
		return false;
	/* relaxed: the caller's own ordering makes its block's header visible */
	uint64_t h = __atomic_load_n((uint64_t *)c, __ATOMIC_RELAXED);
	size_t units = h_units(h);
	int k = units <= 16 ? (int)units - 1 : exact_class(units);
	if (k < 0 || (h & (H_USED | H_PARKED | H_PENDING | H_ALIGN_MASK)) != H_USED ||
	    w0load(c) == key_of(m, c))
		return false;
	if (flush_due(m, me))
		return false;
	return slots_put(m, me, c, k, h_tags(h));
}

void umm_free(umm_t *m, void *p)
{
	if (__atomic_load_n(&m->deferred, __ATOMIC_RELAXED) || !free_hot(m, p))
		free_common(m, p, false, "umm_free");
}

void umm_free_fast(umm_t *m, void *p)
{
	if (!free_hot(m, p))
		free_common(m, p, true, "umm_free_fast");
}

void umm_flush(umm_t *m)
{
	struct umm_cpu *me = cpu_of(m);

	uint32_t g = __atomic_load_n(&m->flush_gen, __ATOMIC_RELAXED);

	__atomic_store_n(&me->honoured, g, __ATOMIC_RELAXED);
	__atomic_store_n(&me->gen, g, __ATOMIC_RELAXED);
	__atomic_store_n(&me->lean, 0, __ATOMIC_RELAXED);
	flush_slots(m, me, false);
	drain(m, me);
}

size_t umm_usable_size(umm_t *m, const void *p)
{
	uintptr_t c = chunk_of(m, p, "umm_usable_size");
	if (!c)
		return 0;
	uint64_t h = hload(c);
	if (!live_block(m, c, h)) {
		bad_input(m, "umm_usable_size", p, "not a live block");
		return 0;
	}
	return h_units(h) * UNIT - HDR;
}

/* Grow c (claimed, hc) in place into its free successor; false if it is not
 * free or too small (nothing changed). */
static bool grow_in_place(umm_t *m, struct umm_cpu *me, uintptr_t c, uint64_t hc, size_t need)
{
	size_t s = h_units(hc);
	uintptr_t n = c + s * UNIT;
	uint64_t hn = lock_chunk(me, n, false);

	if ((hn & H_USED) || s + h_units(hn) < need) {
		unlock_chunk(m, n, 0, 0);
		return false;
	}
	size_t tail = s + h_units(hn) - need;
	uintptr_t n2 = n + h_units(hn) * UNIT;
	if (!tail)
		lock_chunk(me, n2, false);
	else {
		uintptr_t r = c + need * UNIT;
		hstore(r, mkfree(tail, 0));
		bm_set(m, r);
		fstore(n2, tail);
	}
	bm_clear(m, n);
	hstore(n, 0);
	uint64_t h = hc;
	while (!hcas(c, &h, (h & ~H_SIZE_MASK) | ((uint64_t)need << H_SIZE_SHIFT)))
		;
	if (!tail)
		unlock_chunk(m, n2, H_PREVFREE, 0);
	padd(&me->p_in, (need - s) * UNIT);
	return true;
}

/* Claim p for realloc, waiting while a neighbour holds its lock. */
static uint64_t claim_wait(struct umm_cpu *me, uintptr_t c)
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

void *umm_realloc(umm_t *m, void *p, size_t size)
{
	struct umm_cpu *me = cpu_of(m);
	uintptr_t c;
	uint64_t h;

	if (!p)
		return umm_alloc(m, size, 0);
	if (!(c = chunk_of(m, p, "umm_realloc")) || !size_ok(m, size, "umm_realloc"))
		return NULL;
	honour_flush(m, me, false);
	drain(m, me);   /* before claiming: draining may wait for our chunk */
	if (cached(m, c, hload(c)) || !(h = claim_wait(me, c))) {
		bad_input(m, "umm_realloc", p, "not a live block");
		return NULL;
	}
	size_t s = h_units(h), need = units_for(size);
	if (need < s) {
		uintptr_t r = c + need * UNIT;
		hstore(r, mkused(s - need, 0, 0) | H_LOCK);
		bm_set(m, r);
		while (!hcas(c, &h, (h & ~H_SIZE_MASK) | ((uint64_t)need << H_SIZE_SHIFT)))
			;
		unlock_chunk(m, c, 0, 0);
		padd(&me->p_out, (s - need) * UNIT);
		free_claimed(m, me, r, false);
		return p;
	}
	if (need == s || grow_in_place(m, me, c, h, need)) {
		unlock_chunk(m, c, 0, 0);
		return p;
	}
	unlock_chunk(m, c, 0, 0);
	unsigned alog = h_alog(h);
	void *q = alloc_common(m, size, alog ? (size_t)1 << alog : 0, h_tags(h), false);
	if (!q)
		return NULL;
	memcpy(q, p, s * UNIT - HDR);
	umm_free(m, p);
	return q;
}


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
			y = bm_test(m, x) && ++tries < 64 ? x : next_boundary(m, x, 0);
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

void umm_stats(umm_t *m, struct umm_stats *out)
{
	memset(out, 0, sizeof(*out));
	sample_peak(m);
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		struct umm_cpu *cp = &m->cpu[i];
		out->allocs += ld(&cp->p_allocs);
		out->frees += ld(&cp->p_frees);
		for (int k = 0; k < UMM_NCLASSES; k++) {
			out->allocs += ld(&cp->c_alloc[k]);
			out->frees += ld(&cp->c_free[k]);
		}
		out->failures += ld(&cp->failures);
		out->lock_retries += ld(&cp->retries);
		out->errors += ld(&cp->errors);
		for (int k = 0; k < UMM_NCLASSES; k++)
			out->parked_bytes += (uint64_t)tload(&cp->top[k]) * class_units(k) * UNIT;
	}
	for (int k = 0; k < UMM_NCLASSES; k++)
		out->parked_bytes += xfer_bytes(m, k, ENV_MAX_CPUS);
	out->live_bytes = live_bytes(m);
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
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++)
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
		if (mark && (xb != (long long)xfer_bytes(m, k, ENV_MAX_CPUS) || (xb && !m->batch[k]))) {
			env_log("umm_check: class %d: transfer stack holds %lld bytes, counters %llu", k, xb,
				(unsigned long long)xfer_bytes(m, k, ENV_MAX_CPUS));
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

int umm_check(umm_t *m)
{
	size_t chunks = 0, bits = 0;
	uint64_t live = 0, parked = 0, keyed = 0;
	bool prev_free = false;
	uintptr_t x;

	CHECK(m && m->magic == UMM_MAGIC, "not an initialised pool");
	for (x = m->base; x < m->end; x += h_units(hload(x)) * UNIT) {
		uint64_t h = hload(x);
		size_t s = h_units(h);
		CHECK(bm_test(m, x), "chunk %p missing from the bitmap", (void *)x);
		CHECK(s >= 1 && x + s * UNIT <= m->end, "chunk %p: bad size %zu", (void *)x, s);
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
		}
		prev_free = !(h & H_USED);
		chunks++;
	}
	CHECK(x == m->end, "walk overran the end sentinel");
	uint64_t he = hload(m->end);
	CHECK((he & H_USED) && h_units(he) == 1 && !!(he & H_PREVFREE) == prev_free,
	      "bad end sentinel %#llx", (unsigned long long)he);
	for (size_t i = 0; i <= bidx(m, m->end) / 64; i++)
		bits += (size_t)__builtin_popcountll(m->bitmap[i]);
	CHECK(bits == chunks + 1, "bitmap has %zu boundaries, walk found %zu", bits, chunks + 1);
	long long listed = cache_lists(m, true);
	cache_lists(m, false);   /* clear the marks, also after a failure */
	CHECK(listed >= 0 && (uint64_t)listed == keyed, "cached chunks: %llu keyed in the pool, %lld listed",
	      (unsigned long long)keyed, listed);
	long long deferred = check_deferred(m);
	CHECK(deferred >= 0 && (uint64_t)deferred == parked, "parked chunks: %llu in the pool, %lld listed",
	      (unsigned long long)parked, deferred);
	CHECK(live == live_bytes(m), "live bytes: walk %llu, counters %llu",
	      (unsigned long long)live, (unsigned long long)live_bytes(m));
	return 0;
}
