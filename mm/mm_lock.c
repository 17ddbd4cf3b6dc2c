/* mm_lock.c - the area lock: through the environment's hooks (the kernel's
 * record is the authority) or on the lock word and the reader bits inside
 * the area (attachers that trust each other). Every wait is bounded; forged,
 * stale and dead holds are released. docs/MM.md, "Lock".
 *
 * Lock-word protocol: a writer CASes the word from 0 to LK_W | its slot,
 * then waits for the reader bits to drain; a reader sets its bit, then
 * looks at the word and backs off if a writer is there. Both sides use
 * sequentially consistent operations, so one of them always sees the other.
 */
#include "mm_int.h"

#define WAIT_POLL 64             /* spins between liveness checks */

static void relax(const mm_t *h)
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

static inline uint64_t wword(unsigned slot)
{
	return LK_W | ((uint64_t)slot << LK_WSHIFT);
}

/* A word a writer in a real slot can have made (or 0). */
static inline bool word_ok(uint64_t w)
{
	return !w || ((w & ~LK_WMASK) == LK_W && wslot(w) < MM_MAX_ATTACH);
}

static inline void raise_died(struct area *a)
{
	__atomic_fetch_or(&a->flags, F_DIED, __ATOMIC_RELEASE);
}

/* Clear the word while it is `w` (a word nobody can hold, or one naming a
 * dead or absent writer). The died flag goes up before the release, so the
 * next locker cannot miss it. */
static bool release_word(struct area *a, uint64_t w)
{
	raise_died(a);
	return __atomic_compare_exchange_n(&a->lock, &w, 0, false,
					   __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

bool mm_release_slot(struct area *a, unsigned s)
{
	bool done = false;
	uint64_t w;

	if (s < MM_MAX_ATTACH) {
		uint64_t bit = 1ull << (s % 64);

		if (__atomic_load_n(&a->rd[s / 64], __ATOMIC_RELAXED) & bit) {
			raise_died(a);
			__atomic_fetch_and(&a->rd[s / 64], ~bit, __ATOMIC_RELEASE);
			done = true;
		}
	}
	w = __atomic_load_n(&a->lock, __ATOMIC_RELAXED);
	while ((w & LK_W) && wslot(w) == s) {
		raise_died(a);
		if (__atomic_compare_exchange_n(&a->lock, &w, 0, false,
						__ATOMIC_RELEASE, __ATOMIC_RELAXED))
			return true;
	}
	return done;
}

static bool slot_unowned(struct area *a, unsigned s)
{
	uint32_t id;

	if (s >= MM_MAX_ATTACH)
		return true;
	id = __atomic_load_n(&a->slots[s], __ATOMIC_ACQUIRE);
	return id == 0 || id == SLOT_DEAD;
}

/* Holds of slots no attacher owns (entry 0, being recovered, or a slot
 * number nobody can have) and words nobody can make: forged or stale.
 * Released, the died flag raised. Returns how many. */
static int sweep_free_slots(struct area *a)
{
	uint64_t w = __atomic_load_n(&a->lock, __ATOMIC_ACQUIRE);
	int n = 0;

	if (w && !word_ok(w))
		n += release_word(a, w);
	else if (w && slot_unowned(a, wslot(w)))
		n += mm_release_slot(a, wslot(w));
	for (unsigned k = 0; k < NRD; k++) {
		uint64_t r = __atomic_load_n(&a->rd[k], __ATOMIC_ACQUIRE);

		for (; r; r &= r - 1) {
			unsigned s = k * 64 + (unsigned)__builtin_ctzll(r);

			if (slot_unowned(a, s))
				n += mm_release_slot(a, s);
		}
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
		if (mm_release_slot(a, s)) {
			__atomic_fetch_add(&a->generation, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&a->deaths, 1, __ATOMIC_RELAXED);
		}
		__atomic_fetch_sub(&a->nattach, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&a->slots[s], 0, __ATOMIC_RELEASE);
		n++;
	}
	return n;
}

/* Recover slot s's attacher if the environment says it is dead. */
static void check_alive(mm_t *h, unsigned s)
{
	uint32_t id;

	if (s >= MM_MAX_ATTACH || s == h->slot)
		return;
	id = __atomic_load_n(&area_of(h)->slots[s], __ATOMIC_ACQUIRE);
	if (id && id != SLOT_DEAD && !h->env.is_alive(h->env.ctx, id - 1))
		recover(area_of(h), id - 1);
}

/* While waiting: holds of free slots are forged or stale; holders the
 * environment says are dead are recovered. */
static void check_holders(mm_t *h)
{
	struct area *a = area_of(h);
	uint64_t w;

	sweep_free_slots(a);
	if (!h->env.is_alive)
		return;
	w = __atomic_load_n(&a->lock, __ATOMIC_ACQUIRE);
	if (w & LK_W)
		check_alive(h, wslot(w));
	for (unsigned k = 0; k < NRD; k++) {
		uint64_t r = __atomic_load_n(&a->rd[k], __ATOMIC_ACQUIRE);

		for (; r; r &= r - 1)
			check_alive(h, k * 64 + (unsigned)__builtin_ctzll(r));
	}
}

static NOINLINE int acquire_rd(mm_t *h)
{
	struct area *a = area_of(h);
	uint64_t *rw = &a->rd[h->slot / 64], me = 1ull << (h->slot % 64);

	for (unsigned spin = 1; spin <= MM_WAIT_SPINS; spin++) {
		uint64_t w = __atomic_load_n(&a->lock, __ATOMIC_SEQ_CST);

		if (!w) {
			__atomic_fetch_or(rw, me, __ATOMIC_SEQ_CST);
			if (!__atomic_load_n(&a->lock, __ATOMIC_SEQ_CST))
				return 0;
			__atomic_fetch_and(rw, ~me, __ATOMIC_RELEASE);   /* back off */
		} else if (w == wword(h->slot) || !word_ok(w)) {
			release_word(a, w);   /* names us, who hold nothing; or forged */
			continue;
		}
		if (spin % WAIT_POLL == 0)
			check_holders(h);
		relax(h);
	}
	return E_TIMEOUT;
}

/* No reader bit set but (forged) our own, which goes. */
static bool readers_gone(mm_t *h)
{
	struct area *a = area_of(h);
	uint64_t any = 0;

	for (unsigned k = 0; k < NRD; k++) {
		uint64_t r = __atomic_load_n(&a->rd[k], __ATOMIC_SEQ_CST);

		if (k == h->slot / 64 && (r & (1ull << (h->slot % 64)))) {
			/* ours, while we hold no RD: forged; our W stays */
			raise_died(a);
			__atomic_fetch_and(&a->rd[k], ~(1ull << (h->slot % 64)),
					   __ATOMIC_RELEASE);
			r &= ~(1ull << (h->slot % 64));
		}
		any |= r;
	}
	return !any;
}

static NOINLINE int acquire_rw(mm_t *h)
{
	struct area *a = area_of(h);
	uint64_t mine = wword(h->slot);
	bool have_w = false;

	for (unsigned spin = 1; spin <= MM_WAIT_SPINS; spin++) {
		uint64_t w = __atomic_load_n(&a->lock, __ATOMIC_SEQ_CST);

		if (!have_w && !w && __atomic_compare_exchange_n(&a->lock, &w, mine, false,
								__ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
			have_w = true;
			w = mine;
		}
		if (have_w && w == mine && readers_gone(h))
			return 0;
		if (have_w && w != mine) {
			have_w = false;    /* released as if dead: start over */
		} else if (!have_w && (w == mine || !word_ok(w))) {
			release_word(a, w);    /* names us, who hold nothing; or forged */
			continue;
		}
		if (spin % WAIT_POLL == 0)
			check_holders(h);
		relax(h);
	}
	if (have_w)
		__atomic_compare_exchange_n(&a->lock, &mine, 0, false,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	return E_TIMEOUT;
}

/* The environment's lock, retried while it answers E_BUSY: the one bounded
 * wait of every attacher with lock hooks (kernel and partitions alike). */
static int acquire_hooked(mm_t *h, int mode)
{
	uint64_t end = 0;

	for (unsigned tries = 1;; tries++) {
		int rc = h->env.lock(h->env.ctx, h->base, mode);

		if (rc != E_BUSY)
			return rc;
		if (h->env.now_us) {
			uint64_t now = h->env.now_us();

			if (!end)
				end = now + MM_LOCK_WAIT_US;
			else if (now > end)
				return E_TIMEOUT;
		} else if (tries >= MM_WAIT_SPINS) {
			return E_TIMEOUT;
		}
		relax(h);
	}
}

static int acquire(mm_t *h, int mode)
{
	if (h->env.lock)
		return acquire_hooked(h, mode);
	if (h->slot >= MM_MAX_ATTACH)
		return E_BUSY;             /* attached without a slot */
	return mode == MM_LOCK_RW ? acquire_rw(h) : acquire_rd(h);
}

/* Drop our hold. A writer checks that the word still names it: if we were
 * declared dead and the lock moved on, it is not ours to release. */
static void release(mm_t *h)
{
	struct area *a = area_of(h);
	uint64_t mine = wword(h->slot);

	if (h->env.unlock) {
		h->env.unlock(h->env.ctx, h->base);
		return;
	}
	if (h->mode != MM_LOCK_RW) {
		__atomic_fetch_and(&a->rd[h->slot / 64], ~(1ull << (h->slot % 64)),
				   __ATOMIC_RELEASE);
		return;
	}
	__atomic_compare_exchange_n(&a->lock, &mine, 0, false,
				    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* The current size from the header, checked, and mapped here. */
int mm_refresh(mm_t *h)
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

int mm_lock_in(mm_t *h, int mode)
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
	rc = mm_refresh(h);
	if (rc) {
		release(h);
		h->mode = 0;
		return fail(h, rc);
	}
	h->depth = 1;
	return 0;
}

int mm_lock(mm_t *h, int mode)
{
	bool outer = h && h->depth == 0;
	int rc = mm_lock_in(h, mode);

	if (rc || !outer)
		return rc;
	if (h->died) {
		h->died = false;
		return MM_LOCK_OWNER_DIED;
	}
	if (h->env.lock)
		return 0;              /* the area's flag is not the authority */
	if ((__atomic_load_n(&area_of(h)->flags, __ATOMIC_ACQUIRE) & F_DIED) &&
	    (__atomic_fetch_and(&area_of(h)->flags, ~F_DIED, __ATOMIC_ACQ_REL) & F_DIED))
		return MM_LOCK_OWNER_DIED;
	return 0;
}

int mm_unlock(mm_t *h)
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
