/* umm.c - micro memory manager: the public API (mm/umm.h) over the pool of
 * chunks with per-chunk micro locks (umm_chunk.c), the free-list bins and
 * carving (umm_fit.c) and the CPU caches in front of them (umm_cache.c).
 * Design, header layout and lock order: docs/UMM.md and umm_int.h.
 */
#include "umm_int.h"

#include <string.h>

/* Sum over the CPU indexes below n (m->ncpu or more for exact figures). */
uint64_t umm_live_bytes(umm_t *m, unsigned n)
{
	uint64_t in = 0, out = 0;
	for (unsigned i = 0; i < n && i < m->ncpu; i++) {
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


/* The peak is sampled (every 64th pool allocation of a CPU and 1024th
 * cache allocation of a CPU and class, summing the CPU indexes in use; and
 * in umm_stats) so that no allocation touches a pool-wide counter. */
void umm_sample_peak(umm_t *m)
{
	uint64_t live = umm_live_bytes(m, env_ncpus()), old = __atomic_load_n(&m->peak, __ATOMIC_RELAXED);
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
		umm_sample_peak(m);
}

/* Bad input is counted always and logged for the first few and then every
 * power of two per CPU, so a buggy caller cannot flood the console. */
void umm_bad_input(umm_t *m, const char *who, const void *p, const char *why)
{
	uint64_t n = __atomic_fetch_add(&cpu_of(m)->refused, 1, __ATOMIC_RELAXED);
	if (n < 8 || !(n & (n - 1)))
		env_log("%s: %p: %s", who, p, why);
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
	return umm_init_cpus(m, space, size, ENV_MAX_CPUS);
}

int umm_init_cpus(umm_t *m, void *space, size_t size, unsigned ncpu)
{
	if (!m || !space || !ncpu || ncpu > ENV_MAX_CPUS)
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

	memset(m, 0, UMM_SIZE(ncpu));
	m->ncpu = ncpu;
	m->bitmap = (uint64_t *)lo;
	m->bm_words = (units + 1 + 63) / 64;   /* the chunks' units and the sentinel's */
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
	/* the bitmap is zeroed lazily, from its first words (umm_bm_cover):
	 * memory use follows the chunks carved, not the pool's size */
	umm_bm_cover(m, base, false);
	hstore(base, mkfree(units, 0));
	fstore(m->end, units);
	umm_set_dirty(base, units, 0);   /* fresh memory: nothing to give back */
	bm_set(m, base);
	hstore(m->end, mkused(1, 0, 0) | H_PREVFREE);   /* end sentinel, never freed */
	umm_bin_push(m, umm_bin_of(units), base);
	m->magic = UMM_MAGIC;
	return 0;
}

static bool size_ok(umm_t *m, size_t size, const char *who)
{
	if (size == 0) {
		umm_bad_input(m, who, NULL, "size 0");
		return false;
	}
	if (size > m->end - m->base - HDR) {
		umm_bad_input(m, who, (void *)size, "size beyond the pool");
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
		umm_bad_input(m, who, p, "not a block of this pool");
		return 0;
	}
	if (!bm_test(m, c)) {
		umm_bad_input(m, who, p, "interior pointer");
		return 0;
	}
	return c;
}

/* A live block: used, not parked or being freed, not cached. */
static bool live_block(const umm_t *m, uintptr_t c, uint64_t h)
{
	return (h & H_USED) && !(h & (H_PARKED | H_PENDING)) && !cached(m, c, h);
}

static void *alloc_common(umm_t *m, size_t size, size_t align, uint8_t tags, bool fast)
{
	struct umm_cpu *me = cpu_of(m);
	size_t need = units_for(size), cu;
	unsigned alog = align > UNIT ? (unsigned)__builtin_ctzll(align) : 0;
	uintptr_t c;

	bool lean = umm_honour_flush(m, me, fast);
	if (!fast)
		umm_drain(m, me);
	if (!alog && !lean) {
		int k = class_of(need, &cu);
		if (k >= 0) {
			need = cu;
			if ((c = slots_get(m, me, k, tags)) || (c = umm_refill(m, me, k, tags, fast)))
				return (void *)(c + HDR);
		}
	}
	c = umm_find(m, me, need, align, tags, alog, fast);
	if (!c && !fast) {
		/* other CPUs keep caching while they honour the request, so a
		 * few rounds, within 250 ms in all */
		uint64_t limit = env_ticks() + env_ticks_per_sec() / 4 + 1;
		bool more = true;
		for (unsigned round = 0; !c && more && round < 4; round++) {
			if (round)   /* after a time-out: one last try */
				more = umm_await_flush(m, me, limit);
			umm_reclaim(m, me);
			c = umm_find(m, me, need, align, tags, alog, false);
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
		umm_bad_input(m, "umm_alloc_aligned", (void *)align, "alignment not a power of two <= 2^31");
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
	int k, r;

	if (!p)
		return;
	if (!(c = chunk_of(m, p, who)))
		return;
	me = cpu_of(m);
	bool lean = umm_honour_flush(m, me, fast);
	if (!fast)
		umm_drain(m, me);   /* before claiming: draining may wait for our chunk */
	h = hload(c);
	if (!live_block(m, c, h)) {
		umm_bad_input(m, who, p, "double free");
		return;
	}
	if (!lean && !(h & H_ALIGN_MASK) && (k = exact_class(h_units(h))) >= 0 && umm_cache_put(m, me, c, k, h_tags(h), fast))
		return;
	r = umm_claim(c, &h);
	if (r == CLAIM_BAD) {
		umm_bad_input(m, who, p, "double free");
		return;
	}
	padd(&me->p_out, h_units(h) * UNIT);
	padd(&me->p_frees, 1);
	if (r == CLAIM_PENDING)
		return;
	if (!umm_free_claimed(m, me, c, fast)) {
		umm_park(m, c);
		umm_push_deferred(m, c);
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
	if (!hot_boundary(m, c))
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
	umm_flush_slots(m, me, false);
	umm_flush_xfer(m, me);
	umm_drain(m, me);
}

size_t umm_usable_size(umm_t *m, const void *p)
{
	uintptr_t c = chunk_of(m, p, "umm_usable_size");
	if (!c)
		return 0;
	uint64_t h = hload(c);
	if (!live_block(m, c, h)) {
		umm_bad_input(m, "umm_usable_size", p, "not a live block");
		return 0;
	}
	return h_units(h) * UNIT - HDR;
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
	umm_honour_flush(m, me, false);
	umm_drain(m, me);   /* before claiming: draining may wait for our chunk */
	if (cached(m, c, hload(c)) || !(h = umm_claim_wait(me, c))) {
		umm_bad_input(m, "umm_realloc", p, "not a live block");
		return NULL;
	}
	size_t s = h_units(h), need = units_for(size);
	if (need < s) {
		uintptr_t r = c + need * UNIT;
		umm_bm_cover(m, r, false);
		hstore(r, mkused(s - need, 0, 0) | H_LOCK);
		bm_set(m, r);
		while (!hcas(c, &h, (h & ~H_SIZE_MASK) | ((uint64_t)need << H_SIZE_SHIFT)))
			;
		umm_unlock_chunk(m, c, 0, 0);
		padd(&me->p_out, (s - need) * UNIT);
		umm_free_claimed(m, me, r, false);
		return p;
	}
	if (need == s || umm_grow_in_place(m, me, c, h, need)) {
		umm_unlock_chunk(m, c, 0, 0);
		return p;
	}
	umm_unlock_chunk(m, c, 0, 0);
	unsigned alog = h_alog(h);
	void *q = alloc_common(m, size, alog ? (size_t)1 << alog : 0, h_tags(h), false);
	if (!q)
		return NULL;
	memcpy(q, p, s * UNIT - HDR);
	umm_free(m, p);
	return q;
}

