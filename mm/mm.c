/* mm.c - LiSA-style shared areas: header, static part, dynamic part of
 * boundary-tagged chunks on segregated free lists, a robust reader/writer
 * lock word inside the area. See mm.h for the contract, docs/MM.md for the
 * layout and the trust model.
 *
 * Freestanding on purpose (no env.h): U-mode partitions compile this file.
 * Every word read from the area is read once (relaxed atomic load) into a
 * local, checked against the handle's private bound h->lim, then used; the
 * area may be rewritten by a hostile attacher at any moment.
 */
#include "mm.h"

#include <string.h>

#define MAGIC     0x314d4d41u    /* "AMM1" */
#define VERSION   1
#define NBINS     26             /* bin b: sizes [2^(b+5), 2^(b+6)) */
#define CHUNK_HDR 16
#define CHUNK_MIN 32
#define INUSE     1u
#define TAG       0x5a3cc3a5u    /* in-use chunk: word 2 = offset ^ TAG */
#define QUANTUM   4096u          /* areas are created and grown in pages */
#define POOL      32             /* handles for mm_create */
#define SLOT_DEAD UINT32_MAX     /* slot being recovered */
#define F_DIED    1u             /* flags: a holder died with the lock */
#define WAIT_POLL 64             /* spins between liveness checks */

/* Lock word: writer bit, writer-pending bit, writer's slot, reader bitmap
 * (one bit per attacher slot, so a dead reader's hold can be released). */
#define LK_W      (1ull << 63)
#define LK_PEND   (1ull << 62)
#define LK_WSHIFT 56
#define LK_WMASK  (0x3full << LK_WSHIFT)
#define LK_RMASK  ((1ull << 56) - 1)

/* Chunk words (offsets from the chunk start). Free chunks keep the free
 * list links; in-use chunks keep a tag and the requested size there. */
#define C_SIZE 0   /* chunk size | INUSE */
#define C_PREV 4   /* size of the chunk before (boundary tag), 0 for first */
#define C_NEXT 8   /* free: next free; in use: offset ^ TAG */
#define C_BACK 12  /* free: previous free (0: bin head); in use: request */

struct area {
	uint32_t magic;
	uint16_t version, hdr_size;
	uint32_t size, max_size, static_size, dyn;
	uint32_t flags, generation, deaths, nattach;
	uint64_t lock;
	uint32_t top;              /* offset of the last chunk */
	uint32_t used, free, pad;
	uint64_t nalloc, nfree, ngrow, nfail;
	uint32_t bins[NBINS];
	uint32_t slots[MM_MAX_ATTACH];   /* attacher id + 1; 0 free */
};
_Static_assert(sizeof(struct area) <= MM_HDR_SIZE, "mm header too large");
_Static_assert(MM_HDR_SIZE % MM_ALIGN == 0, "static part alignment");
_Static_assert(MM_MAX_ATTACH <= LK_WMASK >> LK_WSHIFT, "slot field width");
_Static_assert(MM_MAX_ATTACH <= 56, "reader bitmap width");
_Static_assert(CHUNK_HDR % MM_ALIGN == 0, "user data alignment");
_Static_assert(offsetof(struct area, lock) == 40, "lock word offset (docs/MM.md, mm_fuzz.c)");
_Static_assert(offsetof(struct area, lock) % 8 == 0, "64-bit atomic alignment");

static const struct mm_env *default_env;
static MM pool[POOL];
static uint32_t pool_used[POOL];   /* word CAS: no libatomic needed */

/* ---- raw access ----------------------------------------------------------- */

static inline struct area *A(const MM *h) { return (struct area *)h->base; }

#define AL(h, f)    __atomic_load_n(&A(h)->f, __ATOMIC_RELAXED)
#define AS(h, f, v) __atomic_store_n(&A(h)->f, (v), __ATOMIC_RELAXED)

static inline uint32_t ld(const MM *h, uint32_t off)
{
	return __atomic_load_n((uint32_t *)(h->base + off), __ATOMIC_RELAXED);
}

static inline void st(MM *h, uint32_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(h->base + off), v, __ATOMIC_RELAXED);
}

static inline uint32_t align16(uint64_t v) { return (uint32_t)((v + 15) & ~15ull); }

static inline int fail(MM *h, int e)
{
	h->err = e;
	return e;
}

static unsigned bin_of(uint32_t size)
{
	unsigned b = 31 - (unsigned)__builtin_clz(size) - 5;
	return b < NBINS ? b : NBINS - 1;
}

/* The chunk at c: in the dynamic part, well formed, inside h->lim. */
static int chunk_at(const MM *h, uint32_t c, uint32_t *size, bool *inuse)
{
	uint32_t w;

	if (c < h->dyn || c % MM_ALIGN || (uint64_t)c + CHUNK_MIN > h->lim)
		return E_CORRUPT;
	w = ld(h, c + C_SIZE);
	if ((w & 15) & ~INUSE)
		return E_CORRUPT;
	*size = w & ~15u;
	*inuse = w & INUSE;
	if (*size < CHUNK_MIN || (uint64_t)c + *size > h->lim)
		return E_CORRUPT;
	return 0;
}

static int free_at(const MM *h, uint32_t c, uint32_t *size)
{
	bool inuse;

	if (chunk_at(h, c, size, &inuse) || inuse)
		return E_CORRUPT;
	return 0;
}

/* ---- free lists ------------------------------------------------------------ */

/* Safe unlink: both neighbours must point back at c. Check, then do. */
static int unlink_check(const MM *h, uint32_t c, uint32_t size)
{
	uint32_t next = ld(h, c + C_NEXT), back = ld(h, c + C_BACK), s;

	if (next == c || back == c)
		return E_CORRUPT;
	if (next && (free_at(h, next, &s) || ld(h, next + C_BACK) != c))
		return E_CORRUPT;
	if (back && (free_at(h, back, &s) || ld(h, back + C_NEXT) != c))
		return E_CORRUPT;
	if (!back && AL(h, bins[bin_of(size)]) != c)
		return E_CORRUPT;
	return 0;
}

static int unlink_chunk(MM *h, uint32_t c, uint32_t size)
{
	uint32_t next = ld(h, c + C_NEXT), back = ld(h, c + C_BACK);

	if (unlink_check(h, c, size))
		return E_CORRUPT;
	if (next)
		st(h, next + C_BACK, back);
	if (back)
		st(h, back + C_NEXT, next);
	else
		AS(h, bins[bin_of(size)], next);
	return 0;
}

/* Write a free chunk header at c and push it on its bin. */
static int push_chunk(MM *h, uint32_t c, uint32_t size)
{
	unsigned b = bin_of(size);
	uint32_t head = AL(h, bins[b]), s;

	if (head && (head == c || free_at(h, head, &s) || bin_of(s) != b ||
		     ld(h, head + C_BACK) != 0))
		return E_CORRUPT;
	st(h, c + C_SIZE, size);
	st(h, c + C_NEXT, head);
	st(h, c + C_BACK, 0);
	if (head)
		st(h, head + C_BACK, c);
	AS(h, bins[b], c);
	return 0;
}

/* Tell the chunk after c (if any) that c is now `size` bytes long, and keep
 * the header's `top` pointing at the last chunk. */
static void set_boundary(MM *h, uint32_t c, uint32_t size)
{
	if ((uint64_t)c + size < h->lim)
		st(h, c + size + C_PREV, size);
	else
		AS(h, top, c);
}

/* First fit in the request's own bin, then the head of any larger bin
 * (every chunk there is big enough). Walks are bounded by the area size. */
static int find_fit(const MM *h, uint32_t need, uint32_t *cp, uint32_t *sp)
{
	unsigned b0 = bin_of(need);
	size_t steps = h->lim / CHUNK_MIN;

	for (unsigned b = b0; b < NBINS; b++) {
		uint32_t c = AL(h, bins[b]), s;

		while (c) {
			if (free_at(h, c, &s) || bin_of(s) != b || !steps--)
				return E_CORRUPT;
			if (s >= need) {
				*cp = c;
				*sp = s;
				return 0;
			}
			if (b != b0)
				return E_CORRUPT;   /* larger bins hold only fits */
			c = ld(h, c + C_NEXT);
		}
	}
	return E_NOMEM;
}

/* ---- lock ------------------------------------------------------------------ */

static void relax(const MM *h)
{
	if (h->env.relax) {
		h->env.relax();
		return;
	}
#if defined(__riscv)
	__asm__ volatile("nop");
#elif defined(__x86_64__)
	__builtin_ia32_pause();
#endif
}

static inline unsigned wslot(uint64_t w)
{
	return (unsigned)((w & LK_WMASK) >> LK_WSHIFT);
}

/* Release whatever slot s holds in the lock word. The died flag goes up
 * before the release so the next locker cannot miss it. */
static bool release_slot(struct area *a, unsigned s)
{
	uint64_t w = __atomic_load_n(&a->lock, __ATOMIC_RELAXED), nw;
	bool flagged = false;

	for (;;) {
		nw = s < 56 ? w & ~(1ull << s) : w;
		if ((w & LK_W) && wslot(w) == s)
			nw &= ~(LK_W | LK_WMASK);
		/* a dead waiting writer: drop its claim so readers go on */
		if (!(w & LK_W) && (w & LK_PEND) && wslot(w) == s)
			nw &= ~(LK_PEND | LK_WMASK);
		if (nw == w)
			return flagged;
		nw &= ~LK_PEND;            /* live waiting writers set it again */
		if (!flagged) {
			__atomic_fetch_or(&a->flags, F_DIED, __ATOMIC_RELEASE);
			flagged = true;
		}
		if (__atomic_compare_exchange_n(&a->lock, &w, nw, false,
						__ATOMIC_RELEASE, __ATOMIC_RELAXED))
			return true;
	}
}

/* Slots the word says hold or claim the lock: reader bits, the writer, the
 * waiting writer. */
static uint64_t holders_of(uint64_t w)
{
	uint64_t held = w & LK_RMASK;

	if ((w & (LK_W | LK_PEND)) && wslot(w) < MM_MAX_ATTACH)
		held |= 1ull << wslot(w);
	return held;
}

/* Holds in the word of slots no attacher owns (entry 0, or being
 * recovered): a forged or stale word. Released, the died flag raised. */
static int sweep_free_slots(struct area *a)
{
	uint64_t w = __atomic_load_n(&a->lock, __ATOMIC_ACQUIRE), held = holders_of(w);
	int n = 0;

	if ((w & (LK_W | LK_PEND)) && wslot(w) >= MM_MAX_ATTACH)
		n += release_slot(a, wslot(w));   /* a slot nobody can have */
	for (unsigned s = 0; s < MM_MAX_ATTACH; s++) {
		uint32_t id;

		if (!(held & (1ull << s)))
			continue;
		id = __atomic_load_n(&a->slots[s], __ATOMIC_ACQUIRE);
		if (id == 0 || id == SLOT_DEAD)
			n += release_slot(a, s);
	}
	return n;
}

static int recover(struct area *a, uint32_t id)
{
	int n = 0;

	for (unsigned s = 0; s < MM_MAX_ATTACH; s++) {
		uint32_t exp = id + 1;

		if (!__atomic_compare_exchange_n(&a->slots[s], &exp, SLOT_DEAD, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		if (release_slot(a, s)) {
			__atomic_fetch_add(&a->generation, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&a->deaths, 1, __ATOMIC_RELAXED);
		}
		__atomic_fetch_sub(&a->nattach, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&a->slots[s], 0, __ATOMIC_RELEASE);
		n++;
	}
	return n;
}

/* While waiting: holds of free slots are forged or stale; holders the
 * environment says are dead are recovered. */
static void check_holders(MM *h, uint64_t w)
{
	uint64_t held = holders_of(w);

	sweep_free_slots(A(h));
	if (!h->env.is_alive)
		return;
	for (unsigned s = 0; s < MM_MAX_ATTACH; s++) {
		uint32_t id;

		if (!(held & (1ull << s)))
			continue;
		id = __atomic_load_n(&A(h)->slots[s], __ATOMIC_ACQUIRE);
		if (id && id != SLOT_DEAD && !h->env.is_alive(h->env.ctx, id - 1))
			recover(A(h), id - 1);
	}
}

/* A word that names us (writer, waiting writer, a reader bit for RW)
 * while we hold nothing is forged or left over: waiting would wait for
 * ourselves. Returns true if it cleared something. */
static bool clear_self(MM *h, uint64_t w, int mode)
{
	uint64_t me = 1ull << h->slot;
	bool w_me = (w & LK_W) && wslot(w) == h->slot;
	bool p_me = !(w & LK_W) && (w & LK_PEND) && wslot(w) == h->slot;

	if (w_me || (mode == MM_LOCK_RW && (w & me)) || (mode == MM_LOCK_RD && p_me)) {
		release_slot(A(h), h->slot);
		return true;
	}
	return false;
}

/* Give up a wait: a pending claim naming us goes, so readers go on. */
static int give_up(MM *h)
{
	uint64_t *lw = &A(h)->lock, w = __atomic_load_n(lw, __ATOMIC_RELAXED);

	while (!(w & LK_W) && (w & LK_PEND) && wslot(w) == h->slot &&
	       !__atomic_compare_exchange_n(lw, &w, w & ~(LK_PEND | LK_WMASK), false,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	return E_TIMEOUT;
}

/* The lock word as the authority (no env->lock): attachers trust each
 * other, but a wait is still bounded and forged words are released. */
static int acquire_word(MM *h, int mode)
{
	uint64_t *lw = &A(h)->lock, me = 1ull << h->slot;

	if (h->slot >= MM_MAX_ATTACH)
		return E_BUSY;             /* attached without a slot */
	for (unsigned spin = 1; spin <= MM_WAIT_SPINS; spin++) {
		uint64_t w = __atomic_load_n(lw, __ATOMIC_RELAXED);

		if (mode == MM_LOCK_RD && !(w & (LK_W | LK_PEND))) {
			if (__atomic_compare_exchange_n(lw, &w, w | me, false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return 0;
			continue;
		}
		if (mode == MM_LOCK_RW && !(w & (LK_W | LK_RMASK))) {
			uint64_t nw = LK_W | ((uint64_t)h->slot << LK_WSHIFT);

			if (__atomic_compare_exchange_n(lw, &w, nw, false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return 0;
			continue;
		}
		if (clear_self(h, w, mode))
			continue;
		if ((w & (LK_W | LK_PEND)) && wslot(w) >= MM_MAX_ATTACH) {
			release_slot(A(h), wslot(w));   /* a slot nobody can have */
			continue;
		}
		/* A waiting writer holds new readers off and names itself in
		 * the slot field (free while no writer holds the lock), so
		 * readers can tell a dead waiter from a live one instead of
		 * clearing the claim and starving it. */
		if (mode == MM_LOCK_RW && !(w & LK_W) &&
		    (w & (LK_PEND | LK_WMASK)) != (LK_PEND | ((uint64_t)h->slot << LK_WSHIFT)))
			__atomic_compare_exchange_n(lw, &w, (w & ~LK_WMASK) | LK_PEND |
						    ((uint64_t)h->slot << LK_WSHIFT), false,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		if (spin % WAIT_POLL == 0)
			check_holders(h, w);   /* dead holders, free slots */
		relax(h);
	}
	return mode == MM_LOCK_RW ? give_up(h) : E_TIMEOUT;
}

static int acquire(MM *h, int mode)
{
	if (h->env.lock)
		return h->env.lock(h->env.ctx, h->base, mode);
	return acquire_word(h, mode);
}

/* Drop our hold. A writer checks that the word still names it: if we were
 * declared dead and the lock moved on, it is not ours to release. */
static void release(MM *h)
{
	uint64_t *lw = &A(h)->lock, w, mine = LK_W | ((uint64_t)h->slot << LK_WSHIFT);

	if (h->env.unlock) {
		h->env.unlock(h->env.ctx, h->base);
		return;
	}
	if (h->mode != MM_LOCK_RW) {
		__atomic_fetch_and(lw, ~(1ull << h->slot), __ATOMIC_RELEASE);
		return;
	}
	w = __atomic_load_n(lw, __ATOMIC_RELAXED);
	while ((w & (LK_W | LK_WMASK)) == mine &&
	       !__atomic_compare_exchange_n(lw, &w, w & ~(LK_W | LK_WMASK), false,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

/* The current size from the header, checked, and mapped here. */
static int refresh(MM *h)
{
	uint32_t size = AL(h, size);
	size_t mapped = h->mapped;

	if (AL(h, magic) != MAGIC || size % MM_ALIGN ||
	    (uint64_t)size < (uint64_t)h->dyn + CHUNK_MIN)
		return E_CORRUPT;
	if (size > h->max)
		return E_RANGE;
	if (size > h->mapped) {
		if (!h->env.ensure_mapped ||
		    h->env.ensure_mapped(h->env.ctx, h->base, size, &mapped))
			return E_RANGE;
		if (mapped < size || mapped > h->room)
			return E_RANGE;
		h->mapped = mapped;
	}
	h->lim = size;
	return 0;
}

static int lock_in(MM *h, int mode)
{
	int rc;

	if (!h || !h->base || (mode != MM_LOCK_RD && mode != MM_LOCK_RW))
		return E_INVAL;
	if (h->depth) {
		if (mode == MM_LOCK_RW && h->mode != MM_LOCK_RW)
			return fail(h, E_DENIED);
		h->depth++;
		return 0;
	}
	rc = acquire(h, mode);
	if (rc < 0)
		return fail(h, rc);
	if (rc == MM_LOCK_OWNER_DIED)
		h->died = true;
	h->mode = mode;
	rc = refresh(h);
	if (rc) {
		release(h);
		h->mode = 0;
		return fail(h, rc);
	}
	h->depth = 1;
	return 0;
}

int mm_lock(MM *h, int mode)
{
	bool outer = h && h->depth == 0;
	int rc = lock_in(h, mode);

	if (rc || !outer)
		return rc;
	if (h->died) {
		h->died = false;
		return MM_LOCK_OWNER_DIED;
	}
	if (h->env.lock)
		return 0;              /* the area's flag is not the authority */
	if ((__atomic_load_n(&A(h)->flags, __ATOMIC_ACQUIRE) & F_DIED) &&
	    (__atomic_fetch_and(&A(h)->flags, ~F_DIED, __ATOMIC_ACQ_REL) & F_DIED))
		return MM_LOCK_OWNER_DIED;
	return 0;
}

int mm_unlock(MM *h)
{
	if (!h || !h->depth)
		return E_INVAL;
	if (--h->depth == 0) {
		release(h);
		h->mode = 0;
	}
	return 0;
}

int mm_area_owner_died(void *base, size_t mapped, uint32_t id)
{
	struct area *a = base;
	int n;

	if (!base || (uintptr_t)base % MM_ALIGN || mapped < MM_HDR_SIZE ||
	    id >= SLOT_DEAD - 1)
		return E_INVAL;
	if (__atomic_load_n(&a->magic, __ATOMIC_ACQUIRE) != MAGIC)
		return E_CORRUPT;
	n = recover(a, id);
	sweep_free_slots(a);
	return n;
}

/* ---- creation and attachment ---------------------------------------------- */

int mm_init_area(void *base, size_t size, size_t max, size_t static_size)
{
	struct area *a = base;
	uint32_t dyn;

	if (!base || static_size > MM_MAX_SIZE || max > MM_MAX_SIZE)
		return E_INVAL;
	if ((uintptr_t)base % MM_ALIGN || size % MM_ALIGN)
		return E_ALIGN;
	dyn = MM_HDR_SIZE + align16(static_size);
	max &= ~(size_t)15;
	if (size < (size_t)dyn + CHUNK_MIN || max < size)
		return E_RANGE;
	memset(base, 0, dyn);
	a->version = VERSION;
	a->hdr_size = MM_HDR_SIZE;
	a->size = (uint32_t)size;
	a->max_size = (uint32_t)max;
	a->static_size = (uint32_t)static_size;
	a->dyn = dyn;
	a->top = dyn;
	a->free = (uint32_t)size - dyn;
	a->bins[bin_of(a->free)] = dyn;
	memset((char *)base + dyn, 0, CHUNK_HDR);
	*(uint32_t *)((char *)base + dyn + C_SIZE) = a->free;
	/* The magic last: an attacher that sees it sees a whole header. */
	__atomic_store_n(&a->magic, MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* Trusted copies of the layout from a header that passes every check. */
static int read_layout(MM *h)
{
	struct area *a = A(h);
	uint32_t st = AL(h, static_size), dyn = AL(h, dyn), max = AL(h, max_size);

	if (__atomic_load_n(&a->magic, __ATOMIC_ACQUIRE) != MAGIC ||
	    AL(h, version) != VERSION || AL(h, hdr_size) != MM_HDR_SIZE)
		return E_CORRUPT;
	if (st > MM_MAX_SIZE || dyn != MM_HDR_SIZE + align16(st) ||
	    max > MM_MAX_SIZE || max % MM_ALIGN || max < (uint64_t)dyn + CHUNK_MIN)
		return E_CORRUPT;
	h->dyn = dyn;
	h->max = max < h->room ? max : (uint32_t)(h->room & ~(size_t)15);
	return 0;
}

static int claim_slot(MM *h)
{
	for (unsigned s = 0; s < MM_MAX_ATTACH; s++) {
		uint32_t exp = 0;

		if (__atomic_compare_exchange_n(&A(h)->slots[s], &exp,
						h->env.self_id + 1, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			h->slot = s;
			__atomic_fetch_add(&A(h)->nattach, 1, __ATOMIC_RELAXED);
			return 0;
		}
	}
	h->slot = MM_MAX_ATTACH;
	return h->env.lock ? 0 : E_BUSY;
}

int mm_attach_base(MM *h, void *base, size_t mapped, size_t room,
		   const struct mm_env *env)
{
	int rc;

	if (!h || !base || mapped < MM_HDR_SIZE || room < mapped ||
	    (env && env->self_id >= SLOT_DEAD - 1))
		return E_INVAL;
	if ((uintptr_t)base % MM_ALIGN)
		return E_ALIGN;
	memset(h, 0, sizeof(*h));
	h->base = base;
	h->mapped = mapped;
	h->room = room;
	if (env)
		h->env = *env;
	rc = read_layout(h);
	if (!rc)
		rc = refresh(h);
	if (!rc)
		rc = claim_slot(h);
	if (rc) {
		memset(h, 0, sizeof(*h));
		h->err = rc;
	}
	return rc;
}

static MM *pool_get(void)
{
	for (unsigned i = 0; i < POOL; i++) {
		uint32_t exp = 0;

		if (__atomic_compare_exchange_n(&pool_used[i], &exp, 1, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return &pool[i];
	}
	return NULL;
}

static void pool_put(MM *h)
{
	__atomic_store_n(&pool_used[h - pool], 0, __ATOMIC_RELEASE);
}

void mm_set_default_env(const struct mm_env *env)
{
	__atomic_store_n(&default_env, env, __ATOMIC_RELEASE);
}

/* The creator formats the area after the environment created it; another
 * attacher may map it before that, so wait (bounded) for the magic. */
static bool wait_formatted(const struct mm_env *env, void *base)
{
	for (unsigned i = 0; i < (1u << 20); i++) {
		if (__atomic_load_n(&((struct area *)base)->magic, __ATOMIC_ACQUIRE))
			return true;
		if (env->relax)
			env->relax();
	}
	return false;
}

MM *mm_create_env(const struct mm_env *env, const char *name,
		  size_t static_size, size_t dynamic_size, size_t max_size)
{
	uint64_t initial;
	size_t max, mapped = 0;
	void *base = NULL;
	bool created = false;
	MM *h;

	if (!env || !env->attach || !name || static_size > MM_MAX_SIZE ||
	    dynamic_size > MM_MAX_SIZE)
		return NULL;
	initial = (uint64_t)MM_HDR_SIZE + align16(static_size) +
		  align16(dynamic_size) + CHUNK_HDR;
	initial = (initial + QUANTUM - 1) & ~(uint64_t)(QUANTUM - 1);
	max = max_size ? max_size : env->max_size ? env->max_size : MM_DEFAULT_MAX;
	if (max < initial)
		max = initial;
	if (initial > MM_MAX_SIZE || max > MM_MAX_SIZE || !(h = pool_get()))
		return NULL;
	if (env->attach(env->ctx, name, initial, max, &base, &mapped, &created))
		goto fail;
	if (created ? mapped < initial ||
		      mm_init_area(base, initial, max, static_size)
		    : !wait_formatted(env, base))
		goto fail_detach;
	if (mm_attach_base(h, base, mapped, max, env))
		goto fail_detach;
	h->pooled = true;
	return h;
fail_detach:
	if (env->detach)
		env->detach(env->ctx, base, mapped, created);
fail:
	pool_put(h);
	return NULL;
}

MM *mm_create(const char *name, size_t static_size, size_t dynamic_size)
{
	return mm_create_env(__atomic_load_n(&default_env, __ATOMIC_ACQUIRE),
			     name, static_size, dynamic_size, 0);
}

int mm_detach(MM *h)
{
	struct mm_env env;
	uint32_t exp;
	bool last;

	if (!h || !h->base)
		return E_INVAL;
	if (h->depth)
		return fail(h, E_BUSY);
	env = h->env;
	exp = env.self_id + 1;
	/* A slot already recovered (we were declared dead) stays as it is. */
	if (h->slot < MM_MAX_ATTACH &&
	    __atomic_compare_exchange_n(&A(h)->slots[h->slot], &exp, 0, false,
					__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		last = __atomic_sub_fetch(&A(h)->nattach, 1, __ATOMIC_ACQ_REL) == 0;
	else
		last = false;
	if (env.detach)
		env.detach(env.ctx, h->base, h->mapped, last);
	h->base = NULL;
	if (h->pooled)
		pool_put(h);
	return 0;
}

/* ---- allocation ------------------------------------------------------------ */

/* Grow the area so that a chunk of `need` bytes fits at its end. */
static int grow(MM *h, uint32_t need)
{
	uint32_t old = (uint32_t)h->lim, t = AL(h, top), ts, extra, delta;
	uint64_t want;
	size_t mapped = h->mapped;
	bool tuse;

	if (chunk_at(h, t, &ts, &tuse) || (uint64_t)t + ts != old)
		return E_CORRUPT;
	extra = tuse ? need : need > ts ? need - ts : 0;
	want = (uint64_t)old + (extra > old ? extra : old);   /* double */
	want = (want + QUANTUM - 1) & ~(uint64_t)(QUANTUM - 1);
	if (want > h->max)
		want = h->max;
	if (want < (uint64_t)old + extra || want < (uint64_t)old + CHUNK_MIN ||
	    !h->env.grow)
		return E_NOMEM;
	if (!tuse && unlink_check(h, t, ts))
		return E_CORRUPT;
	if (h->env.grow(h->env.ctx, h->base, want, &mapped) ||
	    mapped < want || mapped > h->room)
		return E_NOMEM;
	h->mapped = mapped;
	delta = (uint32_t)want - old;
	AS(h, size, (uint32_t)want);
	h->lim = want;
	if (!tuse) {
		unlink_chunk(h, t, ts);   /* checked above */
		AS(h, top, t);
		AS(h, free, AL(h, free) + delta);
		AS(h, ngrow, AL(h, ngrow) + 1);
		return push_chunk(h, t, ts + delta);
	}
	st(h, old + C_PREV, ts);
	AS(h, top, old);
	AS(h, free, AL(h, free) + delta);
	AS(h, ngrow, AL(h, ngrow) + 1);
	return push_chunk(h, old, delta);
}

/* Carve `need` bytes from the free chunk c of `size` bytes. */
static int take(MM *h, uint32_t c, uint32_t size, uint32_t need, uint32_t req)
{
	uint32_t rest = size - need;

	if (unlink_chunk(h, c, size))
		return E_CORRUPT;
	if (rest >= CHUNK_MIN) {
		st(h, c + need + C_PREV, need);
		set_boundary(h, c + need, rest);
		if (push_chunk(h, c + need, rest))
			return E_CORRUPT;
		size = need;
	}
	st(h, c + C_SIZE, size | INUSE);
	st(h, c + C_NEXT, c ^ TAG);
	st(h, c + C_BACK, req);
	AS(h, used, AL(h, used) + size);
	AS(h, free, AL(h, free) - size);
	AS(h, nalloc, AL(h, nalloc) + 1);
	return 0;
}

static mm_ptr_t alloc_locked(MM *h, size_t n)
{
	uint32_t need, c, s;
	int rc;

	if (n > MM_MAX_SIZE - 64)
		rc = E_NOMEM;
	else {
		need = align16(n ? n : 1) + CHUNK_HDR;
		rc = find_fit(h, need, &c, &s);
		if (rc == E_NOMEM) {
			rc = grow(h, need);
			if (!rc)
				rc = find_fit(h, need, &c, &s);
		}
		if (!rc)
			rc = take(h, c, s, need, (uint32_t)n);
	}
	if (rc) {
		AS(h, nfail, AL(h, nfail) + 1);
		fail(h, rc);
		return MM_NULL;
	}
	return c + CHUNK_HDR;
}

mm_ptr_t mm_alloc(MM *h, size_t size)
{
	mm_ptr_t p;

	if (lock_in(h, MM_LOCK_RW))
		return MM_NULL;
	p = alloc_locked(h, size);
	mm_unlock(h);
	return p;
}

/* The in-use chunk behind user offset p. */
static int used_chunk(const MM *h, mm_ptr_t p, uint32_t *cp, uint32_t *sp)
{
	uint32_t c = p - CHUNK_HDR;
	bool inuse;

	if (p < CHUNK_HDR || chunk_at(h, c, sp, &inuse) || !inuse ||
	    ld(h, c + C_NEXT) != (c ^ TAG))
		return E_INVAL;
	*cp = c;
	return 0;
}

/* Neighbours of chunk c (size s): free ones are returned in *pc / *nc (0
 * otherwise), after checking every tag and link the merge will rely on. */
static int neighbours(const MM *h, uint32_t c, uint32_t s, uint32_t *pc,
		      uint32_t *ps, uint32_t *nc, uint32_t *ns)
{
	bool inuse;

	*pc = *nc = 0;
	if ((uint64_t)c + s < h->lim) {
		if (chunk_at(h, c + s, ns, &inuse) || ld(h, c + s + C_PREV) != s)
			return E_CORRUPT;
		if (!inuse) {
			if (unlink_check(h, c + s, *ns))
				return E_CORRUPT;
			*nc = c + s;
		}
	}
	if (c > h->dyn) {
		uint32_t p = ld(h, c + C_PREV);

		if (p < CHUNK_MIN || p % MM_ALIGN || p > c - h->dyn ||
		    chunk_at(h, c - p, ps, &inuse) || *ps != p)
			return E_CORRUPT;
		if (!inuse) {
			if (unlink_check(h, c - p, p))
				return E_CORRUPT;
			*pc = c - p;
		}
	}
	return 0;
}

/* Return chunk c (in use, s bytes) to the free lists, merged with its free
 * neighbours. Everything is checked before the first write. */
static int free_chunk(MM *h, uint32_t c, uint32_t s)
{
	uint32_t pc, ps, nc, ns, start = c, total = s;
	int rc = neighbours(h, c, s, &pc, &ps, &nc, &ns);

	if (rc)
		return rc;
	if (pc) {
		if (unlink_chunk(h, pc, ps))
			return E_CORRUPT;
		start = pc;
		total += ps;
	}
	if (nc) {
		if (unlink_chunk(h, nc, ns))
			return E_CORRUPT;
		total += ns;
	}
	st(h, c + C_NEXT, 0);    /* kill the tag: a stale free of c fails */
	set_boundary(h, start, total);
	AS(h, used, AL(h, used) - s);
	AS(h, free, AL(h, free) + s);
	return push_chunk(h, start, total);
}

int mm_free(MM *h, mm_ptr_t p)
{
	uint32_t c, s;
	int rc;

	if (p == MM_NULL)
		return 0;
	rc = lock_in(h, MM_LOCK_RW);
	if (rc)
		return rc;
	rc = used_chunk(h, p, &c, &s);
	if (!rc)
		rc = free_chunk(h, c, s);
	if (!rc)
		AS(h, nfree, AL(h, nfree) + 1);
	mm_unlock(h);
	return rc ? fail(h, rc) : 0;
}

/* Shrink chunk c (s bytes, in use) to need bytes if the tail is worth a
 * chunk: the tail becomes an in-use chunk that free_chunk merges. */
static int shrink(MM *h, uint32_t c, uint32_t s, uint32_t need)
{
	uint32_t r = c + need, pc, ps, nc, ns;

	if (s - need < CHUNK_MIN)
		return 0;
	if (neighbours(h, c, s, &pc, &ps, &nc, &ns))
		return E_CORRUPT;
	st(h, c + C_SIZE, need | INUSE);
	st(h, r + C_SIZE, (s - need) | INUSE);
	st(h, r + C_PREV, need);
	st(h, r + C_NEXT, r ^ TAG);
	set_boundary(h, r, s - need);
	return free_chunk(h, r, s - need);
}

/* Grow chunk c in place into a free successor; E_NOMEM if it cannot. */
static int expand(MM *h, uint32_t c, uint32_t s, uint32_t need)
{
	uint32_t nc = c + s, ns;

	if ((uint64_t)nc >= h->lim || free_at(h, nc, &ns) ||
	    (uint64_t)s + ns < need)
		return E_NOMEM;
	if (ld(h, nc + C_PREV) != s || unlink_chunk(h, nc, ns))
		return E_CORRUPT;
	st(h, c + C_SIZE, (s + ns) | INUSE);
	set_boundary(h, c, s + ns);
	AS(h, used, AL(h, used) + ns);
	AS(h, free, AL(h, free) - ns);
	return shrink(h, c, s + ns, need);
}

static mm_ptr_t realloc_locked(MM *h, mm_ptr_t p, size_t n)
{
	uint32_t c, s, need, old;
	mm_ptr_t q;
	int rc;

	if (used_chunk(h, p, &c, &s))
		return fail(h, E_INVAL), MM_NULL;
	if (n > MM_MAX_SIZE - 64)
		return fail(h, E_NOMEM), MM_NULL;
	need = align16(n ? n : 1) + CHUNK_HDR;
	rc = need <= s ? shrink(h, c, s, need) : expand(h, c, s, need);
	if (!rc) {
		st(h, c + C_BACK, (uint32_t)n);
		return p;
	}
	if (rc != E_NOMEM)
		return fail(h, rc), MM_NULL;
	old = ld(h, c + C_BACK);
	if (old > s - CHUNK_HDR)
		old = s - CHUNK_HDR;        /* a forged request size */
	q = alloc_locked(h, n);
	if (q == MM_NULL)
		return MM_NULL;
	memcpy(h->base + q, h->base + p, old < n ? old : n);
	if (used_chunk(h, p, &c, &s) || free_chunk(h, c, s))
		fail(h, E_CORRUPT);         /* q is good; p leaks */
	else
		AS(h, nfree, AL(h, nfree) + 1);
	return q;
}

mm_ptr_t mm_realloc(MM *h, mm_ptr_t p, size_t size)
{
	mm_ptr_t q;

	if (p == MM_NULL)
		return mm_alloc(h, size);
	if (size == 0) {
		mm_free(h, p);
		return MM_NULL;
	}
	if (lock_in(h, MM_LOCK_RW))
		return MM_NULL;
	q = realloc_locked(h, p, size);
	mm_unlock(h);
	return q;
}

/* ---- addresses ------------------------------------------------------------- */

void *mm_addr_n(MM *h, mm_ptr_t p, size_t len)
{
	if (!h || !h->base || p < MM_HDR_SIZE || len > h->lim || p > h->lim - len)
		return NULL;
	return h->base + p;
}

void *mm_addr(MM *h, mm_ptr_t p)
{
	return mm_addr_n(h, p, 1);
}

mm_ptr_t mm_ptr(MM *h, const void *addr)
{
	uintptr_t a = (uintptr_t)addr, b;

	if (!h || !h->base)
		return MM_NULL;
	b = (uintptr_t)h->base;
	if (a < b + MM_HDR_SIZE || a - b >= h->lim)
		return MM_NULL;
	return (mm_ptr_t)(a - b);
}

void *mm_static(MM *h)
{
	return h && h->base && h->dyn > MM_HDR_SIZE ? h->base + MM_HDR_SIZE : NULL;
}

size_t mm_static_size(MM *h)
{
	return h && h->base ? h->dyn - MM_HDR_SIZE : 0;
}

int mm_last_error(MM *h)
{
	return h ? h->err : E_INVAL;
}

/* ---- inspection ------------------------------------------------------------ */

/* Walk the chunks in address order: sizes, boundary tags, tags, no two free
 * chunks side by side, top, and the byte counters. */
static int check_chunks(const MM *h, uint32_t *nfree)
{
	uint32_t c = h->dyn, prev = 0, last = 0, s;
	uint64_t used = 0, free = 0;
	bool inuse, prevfree = false;

	*nfree = 0;
	while (c < h->lim) {
		if (chunk_at(h, c, &s, &inuse) || ld(h, c + C_PREV) != prev)
			return E_CORRUPT;
		if (inuse && (ld(h, c + C_NEXT) != (c ^ TAG) ||
			      ld(h, c + C_BACK) > s - CHUNK_HDR))
			return E_CORRUPT;
		if (!inuse && prevfree)
			return E_CORRUPT;           /* missed coalescing */
		if (inuse)
			used += s;
		else {
			free += s;
			(*nfree)++;
		}
		prevfree = !inuse;
		prev = s;
		last = c;
		c += s;
	}
	if (AL(h, top) != last || AL(h, used) != used || AL(h, free) != free)
		return E_CORRUPT;
	return 0;
}

/* Every bin: free chunks of the bin's size class, consistent back links,
 * and together exactly the free chunks of the walk. */
static int check_bins(const MM *h, uint32_t nfree)
{
	uint32_t seen = 0;

	for (unsigned b = 0; b < NBINS; b++) {
		uint32_t c = AL(h, bins[b]), back = 0, s;

		while (c) {
			if (free_at(h, c, &s) || bin_of(s) != b ||
			    ld(h, c + C_BACK) != back || ++seen > nfree)
				return E_CORRUPT;
			back = c;
			c = ld(h, c + C_NEXT);
		}
	}
	return seen == nfree ? 0 : E_CORRUPT;
}

int mm_check(MM *h)
{
	uint32_t nfree;
	int rc = lock_in(h, MM_LOCK_RD);

	if (rc)
		return rc;
	if (AL(h, version) != VERSION || AL(h, hdr_size) != MM_HDR_SIZE ||
	    AL(h, dyn) != h->dyn || AL(h, max_size) < h->max ||
	    MM_HDR_SIZE + align16(AL(h, static_size)) != h->dyn)
		rc = E_CORRUPT;
	if (!rc)
		rc = check_chunks(h, &nfree);
	if (!rc)
		rc = check_bins(h, nfree);
	mm_unlock(h);
	return rc ? fail(h, rc) : 0;
}

int mm_stats(MM *h, struct mm_stats *st)
{
	int rc;

	if (!st)
		return E_INVAL;
	rc = lock_in(h, MM_LOCK_RD);
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	st->size = h->lim;
	st->max_size = h->max;
	st->static_size = h->dyn - MM_HDR_SIZE;
	st->used = AL(h, used);
	st->free = AL(h, free);
	if (st->used > h->lim)
		st->used = h->lim;
	if (st->free > h->lim)
		st->free = h->lim;
	st->nalloc = AL(h, nalloc);
	st->nfree = AL(h, nfree);
	st->ngrow = AL(h, ngrow);
	st->nfail = AL(h, nfail);
	st->nattach = AL(h, nattach);
	st->generation = AL(h, generation);
	st->deaths = AL(h, deaths);
	mm_unlock(h);
	return 0;
}

size_t mm_available(MM *h)
{
	struct mm_stats st;

	if (mm_stats(h, &st))
		return 0;
	return st.free + (st.max_size - st.size);
}

/* ---- lists ------------------------------------------------------------------- */

/* A node at offset p: in range and aligned (a forged odd offset must not
 * become a misaligned access, which may trap on RISC-V). */
static struct mm_list *node_at(MM *h, mm_ptr_t p)
{
	if (p % _Alignof(struct mm_list))
		return NULL;
	return mm_addr_n(h, p, sizeof(struct mm_list));
}

#define LD(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

size_t mm_list_bound(MM *h)
{
	return h ? h->lim / sizeof(struct mm_list) : 0;
}

int mm_list_init(MM *h, struct mm_list *head)
{
	mm_ptr_t ho = mm_ptr(h, head);

	if (!node_at(h, ho))
		return E_FAULT;
	ST(head->next, ho);
	ST(head->prev, ho);
	return 0;
}

/* Link node (offset no) between a and b, which must point at each other. */
static int insert(MM *h, mm_ptr_t no, mm_ptr_t ao, mm_ptr_t bo)
{
	struct mm_list *n = node_at(h, no), *a = node_at(h, ao), *b = node_at(h, bo);

	if (!n || !a || !b)
		return E_FAULT;
	if (LD(a->next) != bo || LD(b->prev) != ao || no == ao || no == bo)
		return E_CORRUPT;
	ST(n->next, bo);
	ST(n->prev, ao);
	ST(b->prev, no);
	ST(a->next, no);
	return 0;
}

int mm_list_add(MM *h, struct mm_list *head, struct mm_list *node)
{
	mm_ptr_t ho = mm_ptr(h, head), no = mm_ptr(h, node);

	if (!ho || !no)
		return E_FAULT;
	return insert(h, no, ho, LD(head->next));
}

int mm_list_add_tail(MM *h, struct mm_list *head, struct mm_list *node)
{
	mm_ptr_t ho = mm_ptr(h, head), no = mm_ptr(h, node);

	if (!ho || !no)
		return E_FAULT;
	return insert(h, no, LD(head->prev), ho);
}

int mm_list_del(MM *h, struct mm_list *node)
{
	mm_ptr_t no = mm_ptr(h, node), ao, bo;
	struct mm_list *a, *b;

	if (!no || !node_at(h, no))
		return E_FAULT;
	ao = LD(node->prev);
	bo = LD(node->next);
	a = node_at(h, ao);
	b = node_at(h, bo);
	if (!a || !b || ao == no || bo == no)
		return E_CORRUPT;
	if (LD(a->next) != no || LD(b->prev) != no)
		return E_CORRUPT;
	ST(a->next, bo);
	ST(b->prev, ao);
	ST(node->next, no);
	ST(node->prev, no);
	return 0;
}

bool mm_list_empty(MM *h, struct mm_list *head)
{
	mm_ptr_t ho = mm_ptr(h, head);

	return !ho || LD(head->next) == ho || !node_at(h, LD(head->next));
}

struct mm_list *mm_list_next(MM *h, struct mm_list *head, struct mm_list *pos)
{
	mm_ptr_t ho = mm_ptr(h, head), po = mm_ptr(h, pos), no;
	struct mm_list *n;

	if (!ho || !po)
		return NULL;
	no = LD(pos->next);
	if (no == ho || !(n = node_at(h, no)) || LD(n->prev) != po)
		return NULL;
	return n;
}
