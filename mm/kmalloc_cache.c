/* kmalloc_cache.c - kmalloc's per-CPU caches behind the hot paths: per-CPU
 * data, expiry (TTL) and the reaper, remote-free lists, flush requests,
 * reclaiming every cached block before an allocation fails, and carving
 * from the pool. The hot paths and the API are in kmalloc.c.
 */
#include "kmalloc_int.h"

#include <string.h>

/* Per-CPU data is a block carved from the pool (state ST_META, refused by
 * kfree), so page-source chunks stay adjacent and can coalesce. */
struct kmalloc_pcpu *kmalloc_pcpu_create(kmalloc_t *km, unsigned cpu)
{
	uint32_t g = (uint32_t)((sizeof(struct kmalloc_pcpu) + HDR + 15) / 16);
	struct kmalloc_pcpu *pc;
	uintptr_t a = 0;

	for (int tries = 0; !a && tries < 8; tries++) {
		unsigned long fl = env_lock(&km->lock);
		a = kmalloc_pool_take(km, &g, 16, true);
		if (a) {
			km->meta_bytes += (uint64_t)g * 16;
			kmalloc_peak_update(km);
		}
		env_unlock(&km->lock, fl);
		if (!a && !kmalloc_pool_grow(km, g, 16))
			return NULL;
	}
	if (!a)
		return NULL;
	SET_STATE((struct hdr *)a, ST_META);   /* g and check: pool_take */
	pc = (struct kmalloc_pcpu *)(a + HDR);
	memset(pc, 0, sizeof(*pc));
	pc->cpu = cpu;
	pc->live_tag = (uint64_t)ST_LIVE << 32 | (uint64_t)cpu << 40 | (uint64_t)CK_KEY << 48;
	pc->span_lo = 1;          /* empty span: no pointer passes the hot check */
	pc->now = pc->oldest = pc->scanned = now_of(km);   /* nothing cached: no stamp is older */
	for (uint32_t c = 0; c < NCLS; c++)
		pc->cls[c].oldest = pc->now;
	__atomic_store_n(&km->pcpu[cpu], pc, __ATOMIC_RELEASE);
	return pc;
}

/* Give a chain of cached blocks (linked by next) back to the pool. `counter`
 * (the owner's or the reclaimer's pcpu, may be NULL) counts them as out. */
static void chain_to_pool(kmalloc_t *km, struct clink *l)
{
	while (l) {
		unsigned long fl = env_lock(&km->lock);
		/* Bounded batches keep the lock hold (interrupts off) short. */
		for (int n = 0; l && n < 64; n++) {
			struct cblk *b = CB(l);
			struct clink *next = l->next;
			kmalloc_pool_put(km, (uintptr_t)b, b->h.g);
			l = next;
		}
		env_unlock(&km->lock, fl);
	}
}

/* Cut class list cl where its blocks have expired (all of it when !expired)
 * onto *tailp; returns the new tail pointer. cl->oldest becomes the stamp
 * of the last block kept (now if none). */
static struct clink **cut_expired(struct pcls *cl, uint64_t now, uint64_t ttl, bool expired,
				  struct clink **tailp)
{
	struct clink **pp = &cl->head;
	uint64_t last = now;

	if (expired)
		while (*pp && now - (*pp)->stamp < ttl) {
			last = (*pp)->stamp;
			pp = &(*pp)->next;
		}
	cl->oldest = last;
	if (!*pp)
		return tailp;
	*tailp = *pp;      /* stamps only decrease along a list: cut here */
	*pp = NULL;
	while (*tailp)
		tailp = &(*tailp)->next;
	return tailp;
}

/* Cached blocks older than the TTL (all of them when !expired_only) go back
 * to the pool. Owner only (or QUIESCENT). Lists whose oldest stamp has not
 * expired are skipped unread, and the whole cache when pc->oldest has not:
 * a miss pays a compare, not a walk of the cache. Returns whether any went. */
static bool flush_own(kmalloc_t *km, struct kmalloc_pcpu *pc, bool expired_only)
{
	struct clink *out = NULL, **tailp = &out;
	uint64_t now = pc->now, ttl = km->ttl, low = now;

	if (expired_only && now - pc->oldest < ttl)
		return false;
	for (uint32_t c = MIN_G; c < NCLS; c++) {
		struct pcls *cl = &pc->cls[c];
		if (!cl->head)
			cl->oldest = now;   /* later pushes are stamped >= now */
		else if (!expired_only || now - cl->oldest >= ttl)
			tailp = cut_expired(cl, now, ttl, expired_only, tailp);
		if (cl->oldest < low)
			low = cl->oldest;
	}
	pc->oldest = low;
	bool any = out != NULL;
	chain_to_pool(km, out);
	return any;
}

void kmalloc_scan_expired(kmalloc_t *km, struct kmalloc_pcpu *pc)
{
	pc->scanned = pc->now;
	flush_own(km, pc, true);
}

/* Owner: take the remote-free list into the cache, or into the pool. */
static void drain_remote(kmalloc_t *km, struct kmalloc_pcpu *pc, bool to_pool)
{
	struct clink *l = NULL;

	/* A plain look first: the list is usually empty, the swap is not free. */
	if (__atomic_load_n(&pc->remote, __ATOMIC_RELAXED))
		l = __atomic_exchange_n(&pc->remote, NULL, __ATOMIC_ACQUIRE);
	if (to_pool) {
		chain_to_pool(km, l);
		return;
	}
	while (l) {
		struct clink *next = l->next;
		/* the blocks were last written by other CPUs: ask for the next
		 * one's line (to write) while this one is filed */
		if (next)
			__builtin_prefetch(CB(next), 1);
		struct pcls *cl = &pc->cls[CB(l)->h.g];
		l->stamp = pc->now;
		l->next = cl->head;
		cl->head = l;
		l = next;
	}
}

/* Slow-path housekeeping of the owner (kmalloc_service found something):
 * flush requests, remote frees. */
void kmalloc_service_slow(kmalloc_t *km, struct kmalloc_pcpu *pc)
{
	if (__atomic_load_n(&pc->flush_req, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&pc->offline, __ATOMIC_RELAXED))
			__atomic_store_n(&pc->offline, 0, __ATOMIC_SEQ_CST);   /* back after a drain */
		flush_own(km, pc, false);
		drain_remote(km, pc, true);
		__atomic_store_n(&pc->flush_req, 0, __ATOMIC_RELEASE);
	} else {
		drain_remote(km, pc, false);
	}
}

/* Before failing: everything of ours and every remote list to the pool, and
 * ask the other CPUs to flush their caches (waiting up to flush_wait). */
static void reclaim_all(kmalloc_t *km, struct kmalloc_pcpu *pc, unsigned long *fl)
{
	bool asked = false;

	if (pc) {
		flush_own(km, pc, false);
		drain_remote(km, pc, true);
	}
	env_irq_restore(*fl);
	kmalloc_lcache_release(km, true, 0);   /* kept large blocks' pages: the pool may grow */
	*fl = env_irq_save();
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		struct kmalloc_pcpu *o = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
		if (!o || o == pc)
			continue;
		chain_to_pool(km, __atomic_exchange_n(&o->remote, NULL, __ATOMIC_ACQUIRE));
		__atomic_store_n(&o->flush_req, 1, __ATOMIC_RELEASE);
		asked = true;
	}
	if (!asked || !km->flush_wait)
		return;
	env_irq_restore(*fl);
	uint64_t t0 = now_of(km);
	for (uint32_t spins = 0; spins < (1u << 24) && now_of(km) - t0 < km->flush_wait; spins++) {
		bool pending = false;
		for (unsigned i = 0; i < ENV_MAX_CPUS && !pending; i++) {
			struct kmalloc_pcpu *o = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
			pending = o && o != pc && __atomic_load_n(&o->flush_req, __ATOMIC_ACQUIRE) &&
				  !__atomic_load_n(&o->offline, __ATOMIC_RELAXED);
		}
		if (!pending)
			break;
		env_cpu_relax();
	}
	*fl = env_irq_save();
	if (pc && __atomic_load_n(&pc->flush_req, __ATOMIC_ACQUIRE))
		kmalloc_service(km, pc);  /* another failing CPU asked us meanwhile */
}

/* A block from the pool: carve; else reap our expired blocks; else grow;
 * else reclaim every cached block. Interrupts off in *fl's section. */
uintptr_t kmalloc_carve(kmalloc_t *km, struct kmalloc_pcpu *pc, uint32_t *gp,
		       size_t align, unsigned long *fl)
{
	bool reaped = false, reclaimed = false;
	int grows = 0;

	for (;;) {
		unsigned long lf = env_lock(&km->lock);
		uintptr_t a = kmalloc_pool_take(km, gp, align, false);
		if (a)
			kmalloc_peak_update(km);
		env_unlock(&km->lock, lf);
		if (a)
			return a;
		if (!reaped) {
			reaped = true;
			if (pc && flush_own(km, pc, true))
				continue;
		}
		/* Each chunk fits the request; another CPU may take it first. */
		if (grows >= 0 && grows < 8) {
			bool ok;
			env_irq_restore(*fl);
			ok = kmalloc_pool_grow(km, *gp, align);
			*fl = env_irq_save();
			grows = ok ? grows + 1 : -1;
			if (ok)
				continue;
		}
		if (!reclaimed) {
			reclaimed = true;
			reclaim_all(km, pc, fl);
			continue;
		}
		return 0;
	}
}

/* ---- remote frees and drain ----------------------------------------------- */

/* Dekker-style with kmalloc_drain_i: the drainer sets offline and then
 * takes the list, a pusher pushes and then looks at offline (both
 * seq_cst), so at least one of them sees the other and no block is left
 * on the list of a CPU that has gone. Either may take the list: the
 * exchange hands each block to one taker. */
void kmalloc_remote_push(kmalloc_t *km, struct kmalloc_pcpu *o, struct clink *l)
{
	struct clink *old = __atomic_load_n(&o->remote, __ATOMIC_RELAXED);
	do {
		l->next = old;
	} while (!__atomic_compare_exchange_n(&o->remote, &old, l, true, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	if (__builtin_expect(__atomic_load_n(&o->offline, __ATOMIC_SEQ_CST), 0))
		chain_to_pool(km, __atomic_exchange_n(&o->remote, NULL, __ATOMIC_ACQUIRE));
}

void kmalloc_drain_i(kmalloc_t *km)
{
	unsigned long fl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);

	if (pc) {
		__atomic_store_n(&pc->offline, 1, __ATOMIC_SEQ_CST);
		flush_own(km, pc, false);
		chain_to_pool(km, __atomic_exchange_n(&pc->remote, NULL, __ATOMIC_SEQ_CST));
		pc->misses = 0;
		/* the CPU's next slow path (or reap) finds a flush request: it
		 * clears offline there, which keeps the hit and miss paths as
		 * they were; failing CPUs do not wait for an offline one */
		__atomic_store_n(&pc->flush_req, 1, __ATOMIC_RELEASE);
	}
	env_irq_restore(fl);
}

/* ---- the reaper ------------------------------------------------------------ */

void kmalloc_reap_i(kmalloc_t *km)
{
	unsigned long fl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);

	if (pc) {
		pc->now = now_of(km);
		pc->misses = 0;
		kmalloc_service_slow(km, pc);
		kmalloc_scan_expired(km, pc);
	}
	env_irq_restore(fl);
	kmalloc_lcache_release(km, false, pc ? pc->now : now_of(km));
}

void kmalloc_reap_all_i(kmalloc_t *km)
{
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
		if (!pc)
			continue;
		flush_own(km, pc, false);
		chain_to_pool(km, __atomic_exchange_n(&pc->remote, NULL, __ATOMIC_ACQUIRE));
		__atomic_store_n(&pc->flush_req, 0, __ATOMIC_RELEASE);
	}
	kmalloc_lcache_release(km, true, 0);
}

