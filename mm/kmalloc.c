/* kmalloc.c - kernel object allocator (KeffOS model, finished): per-CPU
 * exact-size caches with a TTL, lock-free remote frees, an address-ordered
 * coalesced pool (treap of free extents), large blocks on their own pages.
 *
 * Locks: one, km->lock (the pool: treap, page map writes, range lists,
 * totals; the page map is read without it). Per-CPU data
 * is touched only by its owner, never under another lock, so there is no
 * lock order to keep; interrupts are off around it except in the hot paths
 * (HOT_ENTRY), which is why no interrupt handler may call in (kmalloc.h).
 * Other CPUs reach a CPU's cache only through its
 * remote-free list (CAS push, exchange to take all) and its flush_req flag.
 * The page source is called with no lock held.
 *
 * Layout: blocks and free extents start at 8 mod 16 and span a multiple of
 * 16 bytes, so a payload after the 8-byte header is 16-aligned. A pool chunk
 * [B, E) contributes [B+8, E-8); the 8-byte pads are claimed when a chunk
 * adjacent to it arrives, so adjacent chunks coalesce into one extent.
 */
#include "kmalloc_int.h"

#include <string.h>

#define likely(x) __builtin_expect(!!(x), 1)

static kmalloc_t g_km;   /* the global instance (kmalloc, kfree, ...) */

/* The public alloc/free entry points are leaves on their hot paths (every
 * slow path is a tail call), so the frame the kernel's -fno-omit-frame-pointer
 * would build is pure cost there: 5 of the ~45 instructions of each call.
 * A trap inside one still shows its pc (sepc) and caller (ra). */
#if defined(__GNUC__) && !defined(__clang__)
#define HOT_FRAME __attribute__((optimize("omit-frame-pointer")))
#else
#define HOT_FRAME
#endif
/* The entry points whose hot paths run with interrupts enabled (no
 * interrupt handler calls in: kmalloc.h). Nothing else inlines those paths
 * without turning interrupts off (alloc_pc and free_pc with irq true). */
#define HOT_ENTRY HOT_FRAME __attribute__((noinline))

#ifdef KMALLOC_DEBUG
#define CALLER() __builtin_return_address(0)
#else
#define CALLER() ((void *)0)
#endif

/* ---- allocation ------------------------------------------------------------ */

static __attribute__((noinline)) void *alloc_slow(kmalloc_t *km, size_t size, size_t align,
						  unsigned long fl, void *caller);

/* A block pool_take carved (size and check written there) becomes live. */
static void *set_live(struct kmalloc_pcpu *pc, uintptr_t a, size_t size, void *caller)
{
	struct hdr *h = (struct hdr *)a;

	h->cpu = (uint8_t)pc->cpu;
	SET_STATE(h, ST_LIVE);
	dbg_mark(h, size, caller);
	return (char *)h + HDR;
}

/* Cache miss (or no per-CPU data yet, or a flush request): interrupts off. */
static __attribute__((noinline)) void *alloc_slow(kmalloc_t *km, size_t size, size_t align,
						  unsigned long fl,
			void *caller)
{
	unsigned cpu = env_cpu();
	struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[cpu], __ATOMIC_RELAXED);
	uint32_t g = (uint32_t)gran_of(size);
	uintptr_t a;

	if (size - 1 >= KMALLOC_SMALL_MAX) {   /* a hot-path miss of size 0, large or wrapped */
		env_irq_restore(fl);
		return size ? kmalloc_alloc_large(km, size, align, caller) : NULL;
	}
	if (!pc) {
		env_irq_restore(fl);
		pc = kmalloc_pcpu_create(km, cpu);
		fl = env_irq_save();
		if (!pc) {
			env_irq_restore(fl);
			return NULL;
		}
	}
	if (km->in_slot)
		env_slot_set(KMALLOC_ENV_SLOT, pc);   /* first use on this CPU (thread) */
	kmalloc_service(km, pc);
	struct clink *l = pc->cls[g].head;
	if (l && align <= 16) {
		pc->cls[g].head = l->next;
		BUMP(pc->cls[g].allocs);
		dbg_check_poison(CB(l));
		void *p = set_live(pc, (uintptr_t)CB(l), size, caller);
		env_irq_restore(fl);
		return p;
	}
	/* A miss carves from the pool: return expired blocks first, so they
	 * coalesce before the pool is cut; at most once per TTL (a scan walks
	 * the fresh blocks of each class with expired ones) and only when some
	 * block has expired (a compare). A CPU that never reaps (a host
	 * thread) still reads the clock now and then, so its cache ages. */
	if (++pc->misses >= CLOCK_EVERY_MISSES) {
		pc->misses = 0;
		pc->now = now_of(km);
	}
	if (pc->now - pc->scanned >= km->ttl && pc->now - pc->oldest >= km->ttl)
		kmalloc_scan_expired(km, pc);
	a = kmalloc_carve(km, pc, &g, align, &fl);
	if (!a) {
		BUMP(pc->failures);
		env_irq_restore(fl);
		return NULL;
	}
	BUMP(pc->cls[g].allocs);
	BUMP(pc->cls[g].misses);
	void *p = set_live(pc, a, size, caller);
	env_irq_restore(fl);
	return p;
}

/* Size 0, requests too small for a class of their own (they round up to
 * MIN_G), and large ones. */
static __attribute__((noinline)) void *alloc_cold(kmalloc_t *km, size_t size,
						  void *caller)
{
	if (size - 1 >= KMALLOC_SMALL_MAX)
		return size ? kmalloc_alloc_large(km, size, 16, caller) : NULL;
	return alloc_slow(km, size, 16, env_irq_save(), caller);
}

/* Granules of the largest small block. Sizes above it go to alloc_cold; a
 * size that wraps when the header is added comes out below MIN_G, like size
 * 0 and tiny sizes, so they find an empty class and reach alloc_slow. */
#define SMALL_G ((KMALLOC_SMALL_MAX + HDR + KMALLOC_REDZONE + 15) / 16)
_Static_assert((HDR + KMALLOC_REDZONE + 15) / 16 < MIN_G, "a wrapped size is not small");

/* Hot path: pop the exact-size cache of this CPU (pc: its per-CPU data, or
 * env_zero_block before it has any). Flush requests from other CPUs are
 * served on the slow paths and by kmalloc_reap. With irq false only for
 * HOT_ENTRY functions: interrupts stay on, since no interrupt handler
 * calls into kmalloc. */
static inline __attribute__((always_inline)) void *alloc_pc(kmalloc_t *km,
							    struct kmalloc_pcpu *pc, size_t size,
							    void *caller, bool irq)
{
	size_t g = (size + HDR + KMALLOC_REDZONE + 15) >> 4;

	/* classes below MIN_G stay empty: size 0, tiny and wrapped sizes
	 * miss there and alloc_slow sends them on */
	if (likely(g <= SMALL_G)) {
		unsigned long fl = irq ? env_irq_save() : 0;
		struct clink *l = pc->cls[g].head;
		if (likely(l != NULL)) {
			pc->cls[g].head = l->next;
			BUMP(pc->cls[g].allocs);
			SET_STATE(&CB(l)->h, ST_LIVE);
#ifdef KMALLOC_DEBUG
			dbg_check_poison(CB(l));
			dbg_mark(&CB(l)->h, size, caller);
#endif
			if (irq)
				env_irq_restore(fl);
			return l;
		}
		return alloc_slow(km, size, 16, irq ? fl : env_irq_save(), caller);
	}
	return alloc_cold(km, size, caller);
}

static inline struct kmalloc_pcpu *pcpu_or_zero(kmalloc_t *km)
{
	struct kmalloc_pcpu *pc = pcpu_self(km);
	return pc ? pc : (struct kmalloc_pcpu *)(void *)env_zero_block;
}
_Static_assert(sizeof(struct kmalloc_pcpu) <= ENV_ZERO_SIZE, "env_zero_block covers a kmalloc_pcpu");

static inline void *alloc(kmalloc_t *km, size_t size, void *caller)
{
	return alloc_pc(km, pcpu_or_zero(km), size, caller, true);
}

static void *alloc_aligned(kmalloc_t *km, size_t size, size_t align, void *caller)
{
	if (!align || (align & (align - 1))) {
		env_log("kmalloc_aligned: alignment %zu is not a power of two", align);
		return NULL;
	}
	if (align <= 16)
		return alloc(km, size, caller);
	if (!size)
		return NULL;
	if (size > KMALLOC_SMALL_MAX || align > PAGE)
		return kmalloc_alloc_large(km, size, align, caller);
	return alloc_slow(km, size, align, env_irq_save(), caller);
}

/* ---- free ------------------------------------------------------------------ */

struct blkinfo {
	int kind;             /* R_POOL (small or pool-large) or R_LARGE */
	struct kmalloc_range *r;  /* R_LARGE: its range */
	struct hdr *h;
	size_t usable;
	void *caller;
};

static int refuse(kmalloc_t *km, const char *op, const void *p, int e, const char *why,
		  void *owner_caller, void *caller)
{
	struct kmalloc_pcpu *pc = pcpu_self(km);

	if (pc)
		BUMP(pc->refused);
	env_log("%s(%p): %s (%s; allocated at %p, called from %p)", op, p, why, err_str(e),
		owner_caller, caller);
	return e;
}

/* Find what p is, without changing anything. 0 or an error (logged). No
 * lock: the page map is read lock-free, and a pool block's header is read
 * as before (its size changes only in the pool, under the lock, when it is
 * not live). */
static int classify(kmalloc_t *km, const char *op, const void *p, struct blkinfo *bi,
		    void *caller)
{
	uintptr_t a = (uintptr_t)p, lo, hi;
	struct kmalloc_range *r = kmalloc_map_find(km, a);

	if (!r)
		return refuse(km, op, p, E_FAULT, "not from this heap (or a large block already freed)",
			      NULL, caller);
	uint32_t kind = __atomic_load_n(&r->kind, __ATOMIC_RELAXED);
	if (kind == R_LFREE)
		return refuse(km, op, p, E_FAULT, "large block already freed", NULL, caller);
	if (kind == R_LARGE) {
		bi->kind = R_LARGE;
		bi->r = r;
		bi->usable = r->end - r->payload;
		bi->caller = r->caller;
		if (a != r->payload)
			return refuse(km, op, p, E_INVAL, "points inside a large block", r->caller, caller);
		return 0;
	}
	kmalloc_run_of(r, &lo, &hi);
	unsigned long ifl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);
	if (pc) {   /* hint for the hot path: this run of chunks */
		pc->span_lo = lo + 16;
		pc->span_len = hi - lo - 16;
	}
	env_irq_restore(ifl);
	if ((a & 15) || a < lo + 16)
		return refuse(km, op, p, E_INVAL, "not the start of a block", NULL, caller);
	struct hdr *h = (struct hdr *)(a - HDR);
	bool hdr_ok = h->check == CK_KEY && h->g >= MIN_G && a - HDR + (uintptr_t)h->g * 16 <= hi;
	if (!hdr_ok)
		return refuse(km, op, p, E_INVAL, "not the start of a block", NULL, caller);
	if (h->state == ST_CACHED || h->state == ST_POOL)
		return refuse(km, op, p, E_EXIST, "double free", DBG_CALLER(h), caller);
	if (h->state != (h->g < NCLS ? ST_LIVE : ST_BIG) || h->cpu >= ENV_MAX_CPUS)
		return refuse(km, op, p, E_CORRUPT, "block header damaged", NULL, caller);
	bi->kind = R_POOL;
	bi->h = h;
	bi->usable = (size_t)h->g * 16 - HDR - KMALLOC_REDZONE;
	bi->caller = DBG_CALLER(h);
	return 0;
}

/* Validated small block: into our cache, the owner's remote list, or (for
 * pool-large blocks) straight back to the pool. Interrupts off. */
static void free_block(kmalloc_t *km, struct hdr *h)
{
	struct cblk *b = (struct cblk *)h;
	uint32_t g = h->g;
	unsigned cpu = env_cpu();
	struct kmalloc_pcpu *pc;

	SET_STATE(h, ST_CACHED);
	if (g >= NCLS) {
		unsigned long fl = env_lock(&km->lock);
		km->plarge_bytes -= (uint64_t)g * 16;
		km->large_frees++;
		kmalloc_pool_put(km, (uintptr_t)h, g);
		env_unlock(&km->lock, fl);
		return;
	}
	dbg_poison(b);
	if (h->cpu == cpu && (pc = pcpu_self(km)) != NULL) {
		kmalloc_service(km, pc);
		b->stamp = pc->now;
		b->next = pc->cls[g].head;
		pc->cls[g].head = CL(b);
		return;
	}
	pc = __atomic_load_n(&km->pcpu[h->cpu], __ATOMIC_ACQUIRE);
	if (!pc)
		env_panic("kmalloc_free: block %p owned by cpu %u without per-CPU data",
			  (void *)h, (unsigned)h->cpu);
	kmalloc_remote_push(km, pc, CL(b));
}

static __attribute__((noinline)) int free_slow(kmalloc_t *km, void *p, unsigned long fl,
					       void *caller)
{
	struct blkinfo bi = { 0 };   /* (GCC -flto cannot see classify set bi.r) */
	int e;

	env_irq_restore(fl);
	e = classify(km, "kfree", p, &bi, caller);
	if (e)
		return e;
	if (bi.kind == R_LARGE) {
		if (!dbg_large_redzone_ok(bi.r))
			return refuse(km, "kfree", p, E_CORRUPT, "red zone damaged", bi.caller, caller);
		return kmalloc_free_large(km, p, bi.r) ?
		       refuse(km, "kfree", p, E_FAULT, "large block already freed", NULL, caller) : 0;
	}
	if (!dbg_redzone_ok(bi.h))
		return refuse(km, "kfree", p, E_CORRUPT, "red zone damaged", bi.caller, caller);
	/* A CPU that frees other CPUs' blocks without ever allocating (a
	 * consumer thread) gets per-CPU data too: its pool-span hint then
	 * sends the next such frees through free_other, not classify. */
	if (!pcpu_self(km) && bi.h->cpu != env_cpu() && kmalloc_pcpu_create(km, env_cpu())) {
		struct kmalloc_pcpu *pc = pcpu_self(km);
		uintptr_t lo, hi;
		struct kmalloc_range *r = kmalloc_map_find(km, (uintptr_t)p);
		if (km->in_slot)
			env_slot_set(KMALLOC_ENV_SLOT, pc);
		if (r && r->kind == R_POOL) {
			kmalloc_run_of(r, &lo, &hi);
			fl = env_irq_save();
			pc->span_lo = lo + 16;
			pc->span_len = hi - lo - 16;
			env_irq_restore(fl);
		}
	}
	fl = env_irq_save();
	free_block(km, bi.h);
	env_irq_restore(fl);
	return 0;
}

/* Not ours to cache: a block of another CPU with a sound header goes onto
 * its owner's remote list without a lock; anything else to free_slow. */
static __attribute__((noinline)) int free_other(kmalloc_t *km, void *p, void *caller)
{
	uintptr_t a = (uintptr_t)p;

	if (!p)
		return 0;
	unsigned long fl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);
	if (km->in_slot && pc)
		env_slot_set(KMALLOC_ENV_SLOT, pc);   /* a thread that only frees */

	if (pc && a - pc->span_lo < pc->span_len && !(a & 15)) {
		struct cblk *b = (struct cblk *)(a - HDR);
		uint32_t g = b->h.g;
		if (b->h.state == ST_LIVE && g < NCLS && b->h.check == CK_KEY &&
		    b->h.cpu != pc->cpu && dbg_redzone_ok(&b->h)) {
			struct kmalloc_pcpu *o = __atomic_load_n(&km->pcpu[b->h.cpu], __ATOMIC_ACQUIRE);
			if (o) {
				SET_STATE(&b->h, ST_CACHED);
				dbg_poison(b);
				kmalloc_remote_push(km, o, CL(b));
				env_irq_restore(fl);
				return 0;
			}
		}
	}
	return free_slow(km, p, fl, caller);
}

/* Hot path: a 16-aligned pointer in this CPU's pool span whose header word
 * says "live, ours, g granules, check matches" (one compare) goes to our
 * cache. Anything else takes free_other, which pushes other CPUs' blocks
 * onto their remote lists, or free_slow, which finds out what the pointer
 * is and says why it is refused. */
static inline __attribute__((always_inline)) int free_pc(kmalloc_t *km,
							  struct kmalloc_pcpu *pc, void *p,
							  void *caller, bool irq)
{
	uintptr_t a = (uintptr_t)p;

	/* NULL fails the span test (span_lo >= 1; env_zero_block: length 0)
	 * and free_other returns 0 */
	if (likely(a - pc->span_lo < pc->span_len && !(a & 15))) {
		struct clink *l = p;
		/* the header word xor live_tag is g exactly when state, owner
		 * and check match: one compare checks them and g < NCLS */
		uint64_t g = hdr_word(&CB(l)->h) ^ pc->live_tag;
		if (likely(g < NCLS && dbg_redzone_ok(&CB(l)->h))) {
			unsigned long fl = irq ? env_irq_save() : 0;
			SET_STATE(&CB(l)->h, ST_CACHED);
			dbg_poison(CB(l));
			l->stamp = pc->now;
			l->next = pc->cls[g].head;
			pc->cls[g].head = l;
			if (irq)
				env_irq_restore(fl);
			return 0;
		}
	}
	return free_other(km, p, caller);
}

static inline int free_(kmalloc_t *km, void *p, void *caller)
{
	return free_pc(km, pcpu_or_zero(km), p, caller, true);
}

/* ---- instance API ---------------------------------------------------------- */

int kmalloc_init_i(kmalloc_t *km, const struct kmalloc_page_source *src,
		   const struct kmalloc_clock *clk, uint64_t ttl)
{
	if (!km || !src || !src->get_pages || !src->put_pages)
		return E_INVAL;
	memset(km, 0, sizeof(*km));
	km->src = *src;
	if (clk)
		km->clock = *clk;
	km->ttl = ttl;
	km->grow_min_pages = KMALLOC_GROW_MIN_PAGES;
	km->lock = (env_spinlock_t)ENV_SPINLOCK_INIT;
	km->magic = KM_MAGIC;
	km->in_slot = false;
	return 0;
}

void kmalloc_tune_i(kmalloc_t *km, size_t grow_min_pages, uint64_t flush_wait)
{
	km->grow_min_pages = grow_min_pages ? grow_min_pages : 1;
	km->flush_wait = flush_wait;
}

void kmalloc_destroy_i(kmalloc_t *km)
{
	kmalloc_map_destroy(km);
	memset(km->pcpu, 0, sizeof(km->pcpu));
	memset(km->lc_head, 0, sizeof(km->lc_head));
	memset(km->lc_tail, 0, sizeof(km->lc_tail));
	km->lc_n = 0;
	km->lc_bytes = 0;
	km->root = NULL;
	km->magic = 0;
	/* Only the caller's slot can be cleared: destroy the global instance
	 * from its last user (host tests), never while others use it. */
	if (km->in_slot)
		env_slot_set(KMALLOC_ENV_SLOT, env_zero_block);
	km->in_slot = false;
}

HOT_ENTRY void *kmalloc_i(kmalloc_t *km, size_t size)
{
	return alloc_pc(km, pcpu_or_zero(km), size, CALLER(), false);
}

void *kzalloc_i(kmalloc_t *km, size_t size)
{
	void *p = alloc(km, size, CALLER());
	if (p)
		memset(p, 0, size);
	return p;
}

void *kcalloc_i(kmalloc_t *km, size_t n, size_t size)
{
	size_t t;
	void *p;

	if (__builtin_mul_overflow(n, size, &t)) {
		env_log("kcalloc(%zu, %zu): size overflows (%s)", n, size, err_str(E_RANGE));
		return NULL;
	}
	p = alloc(km, t, CALLER());
	if (p)
		memset(p, 0, t);
	return p;
}

static void *realloc_(kmalloc_t *km, void *p, size_t size, void *caller)
{
	struct blkinfo bi;
	void *q;

	if (!p)
		return alloc(km, size, caller);
	if (classify(km, "krealloc", p, &bi, caller))
		return NULL;
	if (!size) {
		free_(km, p, caller);
		return NULL;
	}
	if (size <= bi.usable && size >= bi.usable / 2 && (bi.kind == R_LARGE) == (size > KMALLOC_SMALL_MAX)) {
		dbg_resize(bi.kind == R_POOL ? bi.h : NULL, bi.r, p, size, bi.usable);
		return p;
	}
	q = alloc(km, size, caller);
	if (!q)
		return NULL;
	memcpy(q, p, size < bi.usable ? size : bi.usable);
	free_(km, p, caller);
	return q;
}

void *krealloc_i(kmalloc_t *km, void *p, size_t size)
{
	return realloc_(km, p, size, CALLER());
}

void *kmalloc_aligned_i(kmalloc_t *km, size_t size, size_t align)
{
	return alloc_aligned(km, size, align, CALLER());
}

HOT_ENTRY int kfree_i(kmalloc_t *km, void *p)
{
	return free_pc(km, pcpu_or_zero(km), p, CALLER(), false);
}

size_t ksize_i(kmalloc_t *km, const void *p)
{
	struct blkinfo bi;

	if (!p || classify(km, "ksize", p, &bi, CALLER()))
		return 0;
#ifdef KMALLOC_DEBUG
	if (bi.kind == R_POOL)
		return bi.h->req;   /* the red zone starts right after */
#endif
	return bi.usable;
}

/* ---- the global instance ------------------------------------------------- */

int kmalloc_global_init(const struct kmalloc_page_source *src, const struct kmalloc_clock *clk,
			uint64_t ttl)
{
	int rc;

	env_slot_set(KMALLOC_ENV_SLOT, env_zero_block);
	rc = kmalloc_init_i(&g_km, src, clk, ttl);
	if (!rc)
		g_km.in_slot = true;   /* its hot paths read the slot */
	return rc;
}

kmalloc_t *kmalloc_global(void) { return &g_km; }
/* The global instance's per-CPU data is in an env slot: one load. */
static inline struct kmalloc_pcpu *g_pc(void)
{
	return env_slot_get(KMALLOC_ENV_SLOT);
}

HOT_ENTRY void *kmalloc(size_t size) { return alloc_pc(&g_km, g_pc(), size, CALLER(), false); }
void *kzalloc(size_t size)
{
	void *p = alloc(&g_km, size, CALLER());
	if (p)
		memset(p, 0, size);
	return p;
}
void *kcalloc(size_t n, size_t size) { return kcalloc_i(&g_km, n, size); }
void *krealloc(void *p, size_t size) { return realloc_(&g_km, p, size, CALLER()); }
void *kmalloc_aligned(size_t size, size_t align) { return alloc_aligned(&g_km, size, align, CALLER()); }
HOT_ENTRY void kfree(void *p) { (void)free_pc(&g_km, g_pc(), p, CALLER(), false); }

size_t ksize(const void *p) { return ksize_i(&g_km, p); }
void kmalloc_reap(void) { kmalloc_reap_i(&g_km); }
void kmalloc_drain(void) { kmalloc_drain_i(&g_km); }
void kmalloc_stats(struct kmalloc_stats *out) { kmalloc_stats_i(&g_km, out); }
void kmalloc_dump(void) { kmalloc_dump_i(&g_km); }
int kmalloc_check(void) { return kmalloc_check_i(&g_km, 0); }
