/* umm_cache.c - umm's CPU caches in front of the pool: slots that only
 * their CPU touches (interrupts off, no atomic read-modify-write: a cached
 * chunk keeps its USED header and is marked by a key in its first payload
 * word), per-class transfer stacks of batches shared by all CPUs (one CAS
 * or exchange per batch), and the flush requests of failing allocations.
 *
 * Slots: slot[k][0 .. top[k]) of a CPU list its cached chunks of class k
 * (slot_val: offset and tags). Only that CPU reads or writes them, with
 * interrupts off; relaxed atomic accesses let umm_stats read them racily.
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
 */
#include "umm_int.h"

/* Slots are guarded by turning interrupts off on the kernel's harts (on
 * the host env_irq_save is an inline no-op). */

__attribute__((noinline)) void umm_sample_peak_cold(umm_t *m)
{
	umm_sample_peak(m);
}

/* Cached chunk c (no longer listed anywhere) goes back to the pool, through
 * the claim and merge of a user's free; no counter changes (its bytes were
 * counted free when the user freed it). Fast: never waits, a busy
 * neighbourhood defers it. */
void umm_release_cached(umm_t *m, struct umm_cpu *me, uintptr_t c, bool fast)
{
	uint64_t h;

	w0store(c, 0);   /* its key must not outlive its cache entry */
	int r = umm_claim(c, &h);
	if (r == CLAIM_BAD)
		env_panic("umm_free: cached chunk %p is not a used chunk", (void *)c);
	if (r == CLAIM_OK && !umm_free_claimed(m, me, c, fast)) {
		umm_park(m, c);
		umm_push_deferred(m, c);
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
void umm_flush_slots(umm_t *m, struct umm_cpu *me, bool fast)
{
	uintptr_t v[UMM_SLOTS];

	for (int k = 0; k < UMM_NCLASSES; k++) {
		if (!tload(&me->top[k]))
			continue;
		unsigned n = slots_take(me, k, v, UMM_SLOTS);
		for (unsigned j = 0; j < n; j++)
			umm_release_cached(m, me, slot_chunk(m, v[j]), fast);
	}
}

/* Cold paths: honour a flush request, then bypass the cache for the next
 * LEAN_OPS calls (our gen stays behind until then, so the hot paths keep
 * coming here): the failing allocation retries while every CPU frees into
 * the pool, instead of scattering freshly cached chunks through it. True
 * while the cache is to be bypassed. */
#define LEAN_OPS 1024
bool umm_honour_flush(umm_t *m, struct umm_cpu *me, bool fast)
{
	uint32_t g = __atomic_load_n(&m->flush_gen, __ATOMIC_RELAXED);

	if (g == __atomic_load_n(&me->gen, __ATOMIC_RELAXED))
		return false;
	if (__atomic_load_n(&me->honoured, __ATOMIC_RELAXED) != g) {
		__atomic_store_n(&me->honoured, g, __ATOMIC_RELAXED);
		__atomic_store_n(&me->lean, LEAN_OPS, __ATOMIC_RELAXED);
		umm_flush_slots(m, me, fast);
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

uint64_t umm_xfer_bytes(const umm_t *m, int k, unsigned n)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < n && i < m->ncpu; i++)
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
	if (umm_xfer_bytes(m, k, env_ncpus()) + bytes > m->xfer_cap) {
		for (unsigned j = 0; j < n; j++)
			umm_release_cached(m, me, slot_chunk(m, v[j]), fast);
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
uintptr_t umm_refill(umm_t *m, struct umm_cpu *me, int k, uint8_t tags, bool fast)
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
		umm_release_cached(m, me, slot_chunk(m, link_of(c, W_ENTRY + j)), fast);
	return c;
}

/* Slow path, on allocation failure: every transfer stack to the pool. */
void umm_flush_xfer(umm_t *m, struct umm_cpu *me)
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
				umm_release_cached(m, me, slot_chunk(m, link_of(b, W_ENTRY + j)), false);
			umm_release_cached(m, me, b, false);   /* its entries are read: now it */
			n += cnt + 1;
		}
		unsigned long fl = env_irq_save();
		xnet_add(me, k, -(int64_t)(n * class_units(k) * UNIT));
		env_irq_restore(fl);
	}
}

/* Cache live chunk c of class k: our slots, else (full) after moving their
 * oldest half to the transfer stack. False: c must go to the pool. */
bool umm_cache_put(umm_t *m, struct umm_cpu *me, uintptr_t c, int k, uint8_t tags, bool fast)
{

	if (slots_put(m, me, c, k, tags))
		return true;
	if (!m->batch[k])
		return false;
	spill(m, me, k, fast);
	return slots_put(m, me, c, k, tags);
}

/* Slow path on allocation failure: ask every CPU to flush its slots at its
 * next call, flush ours and every transfer stack, drain the deferred list. */
void umm_reclaim(umm_t *m, struct umm_cpu *me)
{
	uint32_t g = __atomic_add_fetch(&m->flush_gen, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&me->honoured, g, __ATOMIC_RELAXED);
	__atomic_store_n(&me->gen, g, __ATOMIC_RELAXED);
	umm_flush_slots(m, me, false);
	umm_flush_xfer(m, me);
	umm_drain(m, me);
}

/* Slow path, still failing after reclaim: other CPUs give their slots back
 * at their next call. Wait for those holding cached chunks to do so, until
 * `limit` (host threads and QEMU harts may wait long for a core). A CPU
 * that let a wait time out is marked and not waited for again until it
 * honours a request (it may be idle for good), so an idle CPU costs one
 * wait, not one per failing allocation. True if every one awaited did. */
bool umm_await_flush(umm_t *m, struct umm_cpu *me, uint64_t limit)
{
	uint32_t g = __atomic_load_n(&m->flush_gen, __ATOMIC_RELAXED);

	for (;;) {
		bool pending = false, late = env_ticks() > limit;
		for (unsigned i = 0; i < m->ncpu && (!pending || late); i++) {
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

