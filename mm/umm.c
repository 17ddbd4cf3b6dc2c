/* umm.c - micro memory manager: chunks with per-chunk micro locks taken by
 * compare-and-swap on the header word, a boundary bitmap that validates
 * pointers and lets walkers resynchronise, per-CPU caches of parked chunks in
 * front of the pool and a lock-free deferred list for the fast path.
 *
 * CPU caches have two tiers: slots that only their CPU fills (no lock: one
 * header CAS per free and one per allocation, which is also the double-free
 * guard) and, behind them, a depot of lists under a per-CPU lock that other
 * CPUs steal whole (producer/consumer).
 *
 * Lock order (see docs/UMM.md): a CPU may WAIT for a chunk lock only at a
 * higher address than every chunk lock it holds; a lower chunk is only ever
 * try-locked, and on failure everything is released (back-off). Depot locks
 * are leaves: no chunk lock is waited for while one is held.
 */
#include "umm.h"

#include <string.h>

/* ---- header word ----------------------------------------------------------
 *  bit  0      USED      chunk belongs to a user or is parked
 *  bit  1      PREVFREE  the chunk just below is free (its footer is valid)
 *  bit  2      LOCK      micro lock
 *  bit  3      PARKED    freed, held in a CPU cache or the deferred list
 *  bit  4      PENDING   freed while someone held LOCK; the holder parks it
 *  bits 5-7    reserved, zero
 *  bits 8-15   user tags; while PARKED: 1 + index of the CPU whose slots
 *              list the chunk, DEPOT in a depot list, 0 elsewhere
 *              (deferred list, backing off)
 *  bits 16-20  log2 of the alignment asked for (0: default 16)
 *  bits 21-63  size in 16-byte units, header included
 */
#define H_USED      ((uint64_t)1 << 0)
#define H_PREVFREE  ((uint64_t)1 << 1)
#define H_LOCK      ((uint64_t)1 << 2)
#define H_PARKED    ((uint64_t)1 << 3)
#define H_PENDING   ((uint64_t)1 << 4)
#define H_RSVD      ((uint64_t)7 << 5)
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
_Static_assert(ENV_MAX_CPUS < 255, "a parked chunk's tag field holds 1 + its CPU index");
#define H_OWNER(o)  ((uint64_t)(o) << H_TAG_SHIFT)
#define DEPOT       255u           /* owner field of chunks in a depot list */

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
/* Counters owned by a CPU cache lock: plain arithmetic, atomic access so
 * umm_stats can read them at any time. */
static inline void cadd(uint64_t *ctr, uint64_t v)
{
	__atomic_store_n(ctr, __atomic_load_n(ctr, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline uint64_t ld(const uint64_t *ctr) { return __atomic_load_n(ctr, __ATOMIC_RELAXED); }

static inline void set_count(struct umm_cpu *cp, int k, unsigned n)
{
	__atomic_store_n(&cp->count[k], (uint16_t)n, __ATOMIC_RELAXED);
}

static uint64_t live_bytes(umm_t *m)
{
	uint64_t in = 0, out = 0;
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		in += ld(&m->cpu[i].c_in) + ld(&m->cpu[i].p_in);
		out += ld(&m->cpu[i].c_out) + ld(&m->cpu[i].p_out);
	}
	return in - out;
}

/* The peak is sampled (every 64th allocation of a CPU and in umm_stats)
 * so that no allocation touches a pool-wide counter. */
static void sample_peak(umm_t *m)
{
	uint64_t live = live_bytes(m), old = __atomic_load_n(&m->peak, __ATOMIC_RELAXED);
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
	return cu == units ? i : -1;
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
		if (defer)   /* parked, in no CPU's slots: owner field 0 */
			n = (n & ~(H_PENDING | H_TAG_MASK)) | H_PARKED;
	} while (!hcas(c, &h, n));
	if (defer)
		push_deferred(m, c);
}

enum { CLAIM_OK, CLAIM_BAD, CLAIM_PENDING };

/* Take a live block from its owner: sets `bits` (LOCK or PARKED) on a used,
 * unparked, unlocked header. If a neighbour holds the lock, mark the block
 * PENDING so the holder parks it (never waits). */
static int claim(uintptr_t c, uint64_t bits, uint64_t *out)
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
		/* parking replaces the tags by the slot owner (bits) */
		uint64_t n = (bits & H_PARKED) ? (h & ~H_TAG_MASK) | bits : h | bits;
		if (hcas(c, &h, n)) {
			*out = n;
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
 * Slots (docs/UMM.md): slot[k][j] of CPU X holds 1 + the unit index of a
 * chunk parked there, 0 if empty. Rules:
 *  - only X writes a non-zero value, into an empty slot, and with interrupts
 *    off; X lists a chunk BEFORE its header says PARKED with owner X;
 *  - a chunk leaves X's slots only through a CAS on its header that requires
 *    PARKED and owner X: X's pop (which clears its slot first), or another
 *    CPU's take, which clears every slot of X listing the chunk afterwards;
 *  - whoever's header CAS fails drops its copy of the entry.
 * So a parked chunk is listed exactly where its owner field says, a chunk
 * that is not parked is listed nowhere (between the transitions above, only
 * by the CPU doing them), and a thief that read a slot long ago can only win
 * a chunk that is really parked there now. */

static inline uint32_t sload(const uint32_t *s) { return __atomic_load_n(s, __ATOMIC_RELAXED); }
static inline void sstore(uint32_t *s, uint32_t v) { __atomic_store_n(s, v, __ATOMIC_RELAXED); }
static inline uintptr_t slot_chunk(const umm_t *m, uint32_t v) { return m->base + (uintptr_t)(v - 1) * UNIT; }
static inline uint32_t slot_val(const umm_t *m, uintptr_t c) { return (uint32_t)((c - m->base) / UNIT + 1); }

static size_t class_units(int k)
{
	if (k < 16)
		return (size_t)k + 1;
	unsigned b = 4 + (unsigned)(k - 16) / 4;
	return (size_t)((k - 16) % 4 + 5) << (b - 2);
}

/* Is h (read at c, possibly stale: the chunk may have been taken and its
 * memory reused since a slot named it) a chunk of `units` parked with owner
 * field `own`? Checked against the bitmap; the caller's CAS is on the exact
 * value read, as in find(). */
static inline bool parked_as(const umm_t *m, uintptr_t c, uint64_t h, size_t units, unsigned own)
{
	return (h & (H_USED | H_PARKED | H_PENDING | H_TAG_MASK)) == (H_USED | H_PARKED | H_OWNER(own)) &&
	       h_units(h) == units && bm_test_rlx(m, c);
}

enum { TAKE_USE, TAKE_MOVE, TAKE_FREE };

/* Header transition of a parked chunk (owner `own`) to the caller's block
 * (TAKE_USE, `arg` the tags), to owner `arg` (TAKE_MOVE) or to a locked,
 * unparked chunk to be freed (TAKE_FREE, waits for a neighbour's LOCK: slow
 * path only). A neighbour's LOCK and PREVFREE are kept. False if it is not
 * parked there (any more). */
static inline __attribute__((always_inline)) bool take_hdr(const umm_t *m, struct umm_cpu *me,
							   uintptr_t c, size_t units, unsigned own,
							   int mode, unsigned arg)
{
	uint64_t h, n;

	SPEC_BEGIN();
	h = __atomic_load_n((uint64_t *)c, __ATOMIC_RELAXED);   /* the CAS validates it */
	SPEC_END();
	for (;;) {
		if (!parked_as(m, c, h, units, own))
			return false;
		if (mode == TAKE_USE) {
			n = (h & (H_LOCK | H_PREVFREE)) | mkused(units, (uint8_t)arg, 0);
		} else if (mode == TAKE_MOVE) {
			n = (h & ~H_TAG_MASK) | H_OWNER(arg);
		} else if (h & H_LOCK) {
			padd(&me->retries, 1);
			env_cpu_relax();
			h = spec_load(c);
			continue;
		} else {
			n = (h | H_LOCK) & ~(H_PARKED | H_TAG_MASK);
		}
		if (spec_cas(c, &h, n))
			return true;
	}
}

/* After taking v's chunk from CPU cp's class k by its header: clear the
 * slots of cp that still list it. */
static void unlist(struct umm_cpu *cp, int k, uint32_t v)
{
	for (unsigned j = 0; j < UMM_SLOTS; j++) {
		uint32_t e = v;
		if (sload(&cp->slot[k][j]) == v)
			__atomic_compare_exchange_n(&cp->slot[k][j], &e, 0, false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
	}
}

/* Slow path: free every chunk of a depot list we took. */
static void free_list(umm_t *m, struct umm_cpu *me, uintptr_t c, size_t units)
{
	for (uintptr_t next; c; c = next) {
		next = (uintptr_t)*(void **)(c + HDR);
		if (!take_hdr(m, me, c, units, DEPOT, TAKE_FREE, 0))
			env_panic("umm_flush: depot chunk %p not parked", (void *)c);
		free_claimed(m, me, c, false);
	}
}

/* Slow path: empty every CPU cache into the pool (on allocation failure). */
static void flush_caches(umm_t *m, struct umm_cpu *me)
{
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		struct umm_cpu *cp = &m->cpu[i];
		void *heads[UMM_NCLASSES];

		if (__atomic_load_n(&cp->cached, __ATOMIC_RELAXED)) {
			unsigned long fl = env_lock(&cp->lock);
			memcpy(heads, cp->head, sizeof(heads));
			memset(cp->head, 0, sizeof(cp->head));
			for (int k = 0; k < UMM_NCLASSES; k++)
				set_count(cp, k, 0);
			__atomic_store_n(&cp->cached, 0, __ATOMIC_RELAXED);
			env_unlock(&cp->lock, fl);
			for (int k = 0; k < UMM_NCLASSES; k++)
				free_list(m, me, (uintptr_t)heads[k], class_units(k));
		}
		for (int k = 0; k < UMM_NCLASSES; k++) {
			if (!__atomic_load_n(&cp->top[k], __ATOMIC_RELAXED))
				continue;
			for (unsigned j = 0; j < UMM_SLOTS; j++) {
				uint32_t v = sload(&cp->slot[k][j]);
				uintptr_t c = slot_chunk(m, v);
				if (v && take_hdr(m, me, c, class_units(k), cp->own, TAKE_FREE, 0)) {
					unlist(cp, k, v);
					free_claimed(m, me, c, false);
				}
			}
		}
	}
}

static __attribute__((noinline)) void sample_peak_cold(umm_t *m)
{
	sample_peak(m);
}

static inline void count_cache_alloc(umm_t *m, struct umm_cpu *me, size_t bytes)
{
	uint64_t n = ld(&me->c_allocs) + 1;
	cadd(&me->c_in, bytes);
	__atomic_store_n(&me->c_allocs, n, __ATOMIC_RELAXED);
	if ((n & 255) == 0)
		sample_peak_cold(m);
}

/* Thieves look at CPUs below m->seen only: raise it before our first park. */
static inline void note_seen(umm_t *m, const struct umm_cpu *me)
{
	unsigned s = __atomic_load_n(&m->seen, __ATOMIC_RELAXED);
	while (s < me->own && !__atomic_compare_exchange_n(&m->seen, &s, me->own, true,
							   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Pop a parked chunk of class k from our own slots, top down (interrupts
 * off, so no other code of this CPU runs in between). */
static __attribute__((noinline)) uintptr_t cache_pop_full(umm_t *m, struct umm_cpu *me, int k,
							     size_t units, uint8_t tags)
{
	unsigned long fl = env_irq_save();
	unsigned t = me->top[k];
	uintptr_t c = 0;

	while (t) {
		uint32_t *sl = &me->slot[k][--t];
		uint32_t v = sload(sl);
		if (!v)
			continue;   /* taken by another CPU */
		sstore(sl, 0);
		if (take_hdr(m, me, slot_chunk(m, v), units, me->own, TAKE_USE, tags)) {
			c = slot_chunk(m, v);
			count_cache_alloc(m, me, units * UNIT);
			break;
		}
	}
	__atomic_store_n(&me->top[k], (uint8_t)t, __ATOMIC_RELAXED);
	env_irq_restore(fl);
	return c;
}

/* The common case of cache_pop_full, straight-line: the top slot holds a
 * chunk that is still ours. */
static inline uintptr_t cache_pop(umm_t *m, struct umm_cpu *me, int k, size_t units, uint8_t tags)
{
	unsigned long fl = env_irq_save();
	unsigned t = me->top[k];
	uint32_t v = t ? sload(&me->slot[k][t - 1]) : 0;

	if (v) {
		uintptr_t c = slot_chunk(m, v);
		sstore(&me->slot[k][t - 1], 0);
		__atomic_store_n(&me->top[k], (uint8_t)(t - 1), __ATOMIC_RELAXED);
		if (take_hdr(m, me, c, units, me->own, TAKE_USE, tags)) {
			count_cache_alloc(m, me, units * UNIT);
			env_irq_restore(fl);
			return c;
		}
		/* another CPU won it: the slot stays empty, try the others */
	}
	env_irq_restore(fl);
	return t > 1 || (t && !v) ? cache_pop_full(m, me, k, units, tags) : 0;
}

/* Our class k is empty: take another CPU's parked chunks of class k (probably
 * freed there after we allocated them: producer and consumer), one for the
 * caller and up to our cap moved into our slots. Never waits: the header CAS
 * decides who gets a chunk. */
static uintptr_t cache_steal(umm_t *m, struct umm_cpu *me, int k, uint8_t tags)
{
	unsigned n = __atomic_load_n(&m->seen, __ATOMIC_RELAXED), i = me->victim;
	size_t units = class_units(k);
	uintptr_t got = 0;

	if (n > ENV_MAX_CPUS)
		n = ENV_MAX_CPUS;
	note_seen(m, me);   /* chunks we move into our slots must be visible */
	for (unsigned d = 0; d < n && !got; d++, i++) {
		struct umm_cpu *cp = &m->cpu[i % n];
		unsigned t = __atomic_load_n(&cp->top[k], __ATOMIC_RELAXED);
		if (cp == me || !t)
			continue;
		unsigned long fl = env_irq_save();   /* we fill our own slots */
		unsigned mt = me->top[k];
		for (unsigned j = 0; j < t && j < UMM_SLOTS && (!got || mt < m->cap[k]); j++) {
			uint32_t v = sload(&cp->slot[k][j]);
			uintptr_t c = slot_chunk(m, v);
			if (!v)
				continue;
			if (!got) {
				if (take_hdr(m, me, c, units, cp->own, TAKE_USE, tags)) {
					unlist(cp, k, v);
					got = c;
				}
				continue;
			}
			sstore(&me->slot[k][mt], v);   /* listed before it is ours */
			if (take_hdr(m, me, c, units, cp->own, TAKE_MOVE, me->own)) {
				unlist(cp, k, v);
				mt++;
			} else {
				sstore(&me->slot[k][mt], 0);
			}
		}
		__atomic_store_n(&me->top[k], (uint8_t)mt, __ATOMIC_RELAXED);
		env_irq_restore(fl);
		if (got)
			me->victim = i % n;
	}
	if (got) {
		padd(&me->p_in, units * UNIT);
		padd(&me->p_allocs, 1);
	}
	return got;
}

enum { PUSH_NO, PUSH_DONE, PUSH_BAD };

/* ---- depots: the slots' overflow, linked lists under the CPU's lock ------
 * Chunks in a depot are parked with owner field DEPOT, so no slot pop or
 * slot steal can take them; only the depot lock holder does. */

static uintptr_t depot_pop(umm_t *m, struct umm_cpu *me, int k, uint8_t tags)
{
	unsigned long fl;
	uintptr_t c;
	size_t units = class_units(k);

	if (!__atomic_load_n(&me->count[k], __ATOMIC_RELAXED) || !env_trylock(&me->lock, &fl))
		return 0;
	c = (uintptr_t)me->head[k];
	if (c) {
		me->head[k] = *(void **)(c + HDR);
		set_count(me, k, me->count[k] - 1u);
		__atomic_store_n(&me->cached, me->cached - (uint32_t)(units * UNIT), __ATOMIC_RELAXED);
		if (!take_hdr(m, me, c, units, DEPOT, TAKE_USE, tags))
			env_panic("umm_alloc: depot chunk %p not parked", (void *)c);
		count_cache_alloc(m, me, units * UNIT);
	}
	env_unlock(&me->lock, fl);
	return c;
}

/* Take another CPU's whole depot list of class k: one chunk for the caller,
 * the rest into our depot (producer and consumer). Try-locks only. */
static uintptr_t depot_steal(umm_t *m, struct umm_cpu *me, int k, uint8_t tags)
{
	unsigned n = __atomic_load_n(&m->seen, __ATOMIC_RELAXED);
	size_t units = class_units(k), bytes = units * UNIT;
	unsigned long fl;

	if (n > ENV_MAX_CPUS)
		n = ENV_MAX_CPUS;
	for (unsigned i = 0; i < n; i++) {
		struct umm_cpu *cp = &m->cpu[i];
		if (cp == me || !__atomic_load_n(&cp->count[k], __ATOMIC_RELAXED) ||
		    !env_trylock(&cp->lock, &fl))
			continue;
		uintptr_t c = (uintptr_t)cp->head[k];
		unsigned got = cp->count[k];
		cp->head[k] = NULL;
		set_count(cp, k, 0);
		__atomic_store_n(&cp->cached, cp->cached - (uint32_t)(got * bytes), __ATOMIC_RELAXED);
		env_unlock(&cp->lock, fl);
		if (!c)
			continue;
		uintptr_t rest = (uintptr_t)*(void **)(c + HDR);
		if (rest && env_trylock(&me->lock, &fl)) {
			/* our list is almost always empty here (we steal when
			 * it is): append to it rather than walk the stolen
			 * list, a chain of cache misses on another CPU's lines */
			void **tail = &me->head[k];
			while (*tail)
				tail = (void **)((uintptr_t)*tail + HDR);
			*tail = (void *)rest;
			set_count(me, k, me->count[k] + got - 1);
			__atomic_store_n(&me->cached, me->cached + (uint32_t)((got - 1) * bytes),
					 __ATOMIC_RELAXED);
			env_unlock(&me->lock, fl);
			rest = 0;
		}
		/* our depot is busy (a trap on this CPU): the rest goes to
		 * the deferred list, as plain parked chunks */
		while (rest) {
			uintptr_t nx = (uintptr_t)*(void **)(rest + HDR);
			if (!take_hdr(m, me, rest, units, DEPOT, TAKE_MOVE, 0))
				env_panic("umm_alloc: depot chunk %p not parked", (void *)rest);
			push_deferred(m, rest);
			rest = nx;
		}
		if (!take_hdr(m, me, c, units, DEPOT, TAKE_USE, tags))
			env_panic("umm_alloc: depot chunk %p not parked", (void *)c);
		padd(&me->p_in, bytes);
		padd(&me->p_allocs, 1);
		return c;
	}
	return 0;
}

/* Park live chunk c of class k in our depot (our slots are full). */
static int depot_push(umm_t *m, struct umm_cpu *me, uintptr_t c, size_t units, int k)
{
	unsigned long fl;
	uint64_t h;
	size_t bytes = units * UNIT;
	int r = PUSH_NO;

	note_seen(m, me);
	if ((size_t)(__atomic_load_n(&me->count[k], __ATOMIC_RELAXED) + 1) * bytes > m->depot_cap ||
	    !env_trylock(&me->lock, &fl))
		return PUSH_NO;
	if ((size_t)(me->count[k] + 1) * bytes <= m->depot_cap) {
		int cl = claim(c, H_PARKED | H_OWNER(DEPOT), &h);
		if (cl == CLAIM_BAD) {
			r = PUSH_BAD;
		} else {
			if (cl == CLAIM_OK) {
				*(void **)(c + HDR) = me->head[k];
				me->head[k] = (void *)c;
				set_count(me, k, me->count[k] + 1u);
				__atomic_store_n(&me->cached, me->cached + (uint32_t)bytes, __ATOMIC_RELAXED);
			}
			cadd(&me->c_out, bytes);
			cadd(&me->c_frees, 1);
			r = PUSH_DONE;
		}
	}
	env_unlock(&me->lock, fl);
	return r;
}


/* Park live chunk c of class k in our slots: listed first, then claimed by
 * its header CAS (the double-free guard); unlisted again if that fails. */
static __attribute__((noinline)) int cache_push_full(umm_t *m, struct umm_cpu *me, uintptr_t c,
						      size_t units, int k)
{
	unsigned long fl;
	unsigned t, j;
	uint64_t h;
	int r = PUSH_NO;

	note_seen(m, me);
	fl = env_irq_save();
	t = me->top[k];
	while (t && !sload(&me->slot[k][t - 1]))
		t--;   /* slots emptied by other CPUs */
	j = t;
	if (t >= m->cap[k])   /* full to the cap: reuse a slot emptied below */
		for (j = 0; j < t && sload(&me->slot[k][j]); j++)
			;
	if (j < m->cap[k] && (c - m->base) / UNIT < UINT32_MAX) {
		sstore(&me->slot[k][j], slot_val(m, c));
		int cl = claim(c, H_PARKED | H_OWNER(me->own), &h);
		if (cl != CLAIM_OK)
			sstore(&me->slot[k][j], 0);
		else if (j == t)
			t++;
		if (cl == CLAIM_BAD) {
			r = PUSH_BAD;
		} else {
			/* CLAIM_PENDING: the lock holder parks it on the
			 * deferred list; it is freed all the same. */
			cadd(&me->c_out, units * UNIT);
			cadd(&me->c_frees, 1);
			r = PUSH_DONE;
		}
	}
	__atomic_store_n(&me->top[k], (uint8_t)t, __ATOMIC_RELAXED);
	env_irq_restore(fl);
	return r;
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
	/* a CPU parks at most min(64 KiB, pool / 256) per class */
	size_t cap = (units * UNIT) / 256 < 64 * 1024 ? (units * UNIT) / 256 : 64 * 1024;
	for (int k = 0; k < UMM_NCLASSES; k++) {
		size_t n = cap / (class_units(k) * UNIT);
		m->cap[k] = (uint8_t)(n < UMM_SLOTS ? n : UMM_SLOTS);
	}
	m->depot_cap = cap;
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++)
		m->cpu[i].own = (uint8_t)(i + 1);
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

static void *alloc_common(umm_t *m, size_t size, size_t align, uint8_t tags, bool fast)
{
	struct umm_cpu *me = cpu_of(m);
	size_t need = units_for(size), cu;
	unsigned alog = align > UNIT ? (unsigned)__builtin_ctzll(align) : 0;
	uintptr_t c;

	if (!fast)
		drain(m, me);
	if (!alog) {
		int k = class_of(need, &cu);
		if (k >= 0) {
			need = cu;
			if ((c = cache_pop_full(m, me, k, cu, tags)) || (c = depot_pop(m, me, k, tags)) ||
			    (c = depot_steal(m, me, k, tags)) || (c = cache_steal(m, me, k, tags)))
				return (void *)(c + HDR);
		}
	}
	c = find(m, me, need, align, tags, alog, fast);
	if (!c && !fast) {
		drain(m, me);
		flush_caches(m, me);
		c = find(m, me, need, align, tags, alog, false);
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
	size_t units = units_for(size), cu = units;
	int k = units <= 16 ? (int)units - 1 : class_of(units, &cu);
	return cache_pop(m, &m->cpu[env_cpu() % ENV_MAX_CPUS], k, cu, tags);
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

static void free_common(umm_t *m, void *p, bool fast, const char *who)
{
	struct umm_cpu *me;
	uintptr_t c;
	uint64_t h;

	if (!p)
		return;
	if (!(c = chunk_of(m, p, who)))
		return;
	me = cpu_of(m);
	if (!fast)
		drain(m, me);   /* before claiming: draining may wait for our chunk */
	h = hload(c);
	size_t units = h_units(h);
	int k = exact_class(units), r;
	if (k >= 0 && (h & H_USED) && !(h & (H_PARKED | H_PENDING))) {
		r = cache_push_full(m, me, c, units, k);
		if (r == PUSH_NO)
			r = depot_push(m, me, c, units, k);
		if (r == PUSH_DONE)
			return;
		if (r == PUSH_BAD) {
			bad_input(m, who, p, "double free");
			return;
		}
	}
	r = claim(c, H_LOCK, &h);
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

/* Hot path of both frees: a live block of a class size parked in this CPU's
 * slots, straight-line. False (nothing done) whenever anything else must
 * look at it: the full path (free_common) repeats every check. */
static inline __attribute__((always_inline)) bool free_hot(umm_t *m, void *p)
{
	uintptr_t c = (uintptr_t)p - HDR;
	if (c < m->base || c >= m->end || ((c - m->base) % UNIT) || !bm_test_rlx(m, c))
		return false;
	/* relaxed: the claim CAS below is on this exact value */
	uint64_t h = __atomic_load_n((uint64_t *)c, __ATOMIC_RELAXED);
	size_t units = h_units(h);
	int k = units <= 16 ? (int)units - 1 : exact_class(units);
	if (k < 0 || !(h & H_USED) || (h & (H_PARKED | H_PENDING)))
		return false;
	struct umm_cpu *me = &m->cpu[env_cpu() % ENV_MAX_CPUS];
	unsigned long fl = env_irq_save();
	unsigned t = me->top[k];

	if (t < m->cap[k] && !(h & H_LOCK) && (c - m->base) / UNIT < UINT32_MAX &&
	    __atomic_load_n(&m->seen, __ATOMIC_RELAXED) >= me->own) {
		/* listed first, then claimed by the header CAS (the double
		 * free guard); unlisted again if the CAS fails */
		sstore(&me->slot[k][t], slot_val(m, c));
		if (hcas(c, &h, (h & ~H_TAG_MASK) | H_PARKED | H_OWNER(me->own))) {
			__atomic_store_n(&me->top[k], (uint8_t)(t + 1), __ATOMIC_RELAXED);
			cadd(&me->c_out, units * UNIT);
			cadd(&me->c_frees, 1);
			env_irq_restore(fl);
			return true;
		}
		sstore(&me->slot[k][t], 0);
	}
	env_irq_restore(fl);
	return false;
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

size_t umm_usable_size(umm_t *m, const void *p)
{
	uintptr_t c = chunk_of(m, p, "umm_usable_size");
	if (!c)
		return 0;
	uint64_t h = hload(c);
	if (!(h & H_USED) || (h & (H_PARKED | H_PENDING))) {
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
	drain(m, me);   /* before claiming: draining may wait for our chunk */
	if (!(h = claim_wait(me, c))) {
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
		if (y == x || !bm_test(m, y) || !bm_test(m, x) || spec_load(x) != h) {
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
		out->allocs += ld(&cp->c_allocs) + ld(&cp->p_allocs);
		out->frees += ld(&cp->c_frees) + ld(&cp->p_frees);
		out->failures += ld(&cp->failures);
		out->lock_retries += ld(&cp->retries);
		out->errors += ld(&cp->errors);
		out->parked_bytes += __atomic_load_n(&cp->cached, __ATOMIC_RELAXED);
		for (int k = 0; k < UMM_NCLASSES; k++) {
			unsigned t = __atomic_load_n(&cp->top[k], __ATOMIC_RELAXED);
			for (unsigned j = 0; j < t && j < UMM_SLOTS; j++)
				if (sload(&cp->slot[k][j]))
					out->parked_bytes += class_units(k) * UNIT;
		}
	}
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

/* Parked chunks listed in caches and on the deferred list: each must be a
 * parked boundary of its class. Returns their bytes, or -1 (logged). */
static long long check_depot(umm_t *m, unsigned i)
{
	long long bytes = 0;
	for (int k = 0; k < UMM_NCLASSES; k++) {
		unsigned entries = 0;
		for (uintptr_t c = (uintptr_t)m->cpu[i].head[k]; c; c = (uintptr_t)*(void **)(c + HDR)) {
			entries++;
			if (c < m->base || c >= m->end || !parked_as(m, c, hload(c), class_units(k), DEPOT)) {
				env_log("umm_check: bad depot chunk %p (cpu %u class %d)", (void *)c, i, k);
				return -1;
			}
			bytes += (long long)class_units(k) * UNIT;
		}
		if (entries != m->cpu[i].count[k]) {
			env_log("umm_check: cpu %u class %d: %u entries, count %u", i, k, entries,
				m->cpu[i].count[k]);
			return -1;
		}
	}
	if (bytes != m->cpu[i].cached) {
		env_log("umm_check: cpu %u depot holds %lld bytes, counter says %u", i, bytes, m->cpu[i].cached);
		return -1;
	}
	return bytes;
}

static long long check_parked(umm_t *m)
{
	long long bytes = 0;
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		for (int k = 0; k < UMM_NCLASSES; k++) {
			unsigned t = m->cpu[i].top[k];
			if (t > m->cap[k]) {
				env_log("umm_check: cpu %u class %d: top %u above cap %u", i, k, t, m->cap[k]);
				return -1;
			}
			for (unsigned j = 0; j < UMM_SLOTS; j++) {
				uint32_t v = m->cpu[i].slot[k][j];
				uintptr_t c = slot_chunk(m, v);
				if (!v)
					continue;
				if (j >= t || c >= m->end || !bm_test(m, c) ||
				    !parked_as(m, c, hload(c), class_units(k), i + 1)) {
					env_log("umm_check: bad cached chunk %p (cpu %u class %d slot %u)",
						(void *)c, i, k, j);
					return -1;
				}
				bytes += (long long)class_units(k) * UNIT;
			}
		}
		long long depot = check_depot(m, i);
		if (depot < 0)
			return -1;
		bytes += depot;
	}
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
	uint64_t live = 0, parked = 0;
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
	long long listed = check_parked(m);
	CHECK(listed >= 0 && (uint64_t)listed == parked, "parked chunks: %llu in the pool, %lld listed",
	      (unsigned long long)parked, listed);
	CHECK(live == live_bytes(m), "live bytes: walk %llu, counters %llu",
	      (unsigned long long)live, (unsigned long long)live_bytes(m));
	return 0;
}
