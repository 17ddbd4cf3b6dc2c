/* kmalloc.c - kernel object allocator (KeffOS model, finished): per-CPU
 * exact-size caches with a TTL, lock-free remote frees, an address-ordered
 * coalesced pool (treap of free extents), large blocks on their own pages.
 *
 * Locks: one, km->lock (the pool: treap, range table, totals). Per-CPU data
 * is touched only by its owner, never under another lock, so there is no
 * lock order to keep; interrupts are off around it except in the hot paths
 * of section kmalloc_hot, where an interrupt must not call in (see
 * kmalloc_hot_pc). Other CPUs reach a CPU's cache only through its
 * remote-free list (CAS push, exchange to take all) and its flush_req flag.
 * The page source is called with no lock held.
 *
 * Layout: blocks and free extents start at 8 mod 16 and span a multiple of
 * 16 bytes, so a payload after the 8-byte header is 16-aligned. A pool chunk
 * [B, E) contributes [B+8, E-8); the 8-byte pads are claimed when a chunk
 * adjacent to it arrives, so adjacent chunks coalesce into one extent.
 */
#include "kmalloc.h"

#include <string.h>

#include "env.h"
#include "err.h"

#define HDR      KMALLOC_HDR
#define NCLS     KMALLOC_NCLASSES
#define PAGE     ENV_PAGE_SIZE

/* ST_BIG: a live block too large for the caches (pool fallback of a large
 * request); a state of its own keeps it off the free hot path. */
/* ST_CACHED is 0: the free hot path stores it without loading a constant.
 * ST_CARVED: taken from the pool, its owner not yet set (pool_take writes
 * the header under the pool lock, so a census never reads a stale one). */
enum { ST_LIVE = 0xA1, ST_BIG = 0xB4, ST_CACHED = 0x00, ST_POOL = 0xF3, ST_META = 0x4D,
       ST_CARVED = 0x3C };
enum { R_POOL = 1, R_LARGE = 2, R_META = 3 };
#define KM_MAGIC 0x6B6D6131u
#define POISON   0x6B
#define RZ_BYTE  0xFB

struct hdr {
	uint32_t g;          /* size in 16-byte granules, header included */
	uint8_t state;
	uint8_t cpu;         /* owner: the CPU whose cache the block returns to */
	uint16_t check;      /* CK_KEY: tells a header from other bytes */
#ifdef KMALLOC_DEBUG
	uint32_t req;        /* requested size: the red zone starts there */
	uint32_t pad;
	void *caller;
#endif
};
_Static_assert(sizeof(struct hdr) == HDR, "header size");
/* The free hot path reads the first 8 header bytes as one word: g in bits
 * 0-31, state 32-39, cpu 40-47, check 48-63. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "header word layout");
#define CK_KEY 0x5A6Bu
_Static_assert(HDR % 16 == 8, "payload must be 16-aligned when blocks start at 8 mod 16");

/* A block in a cache or remote list: link and the time it was cached.
 * Lists link payload addresses (struct clink), which is what the hot paths
 * hand out and take back; struct cblk is the same block seen from its
 * header. CB and CL convert. */
struct clink {
	struct clink *next;
	uint64_t stamp;
};
struct cblk {
	struct hdr h;
	struct clink *next;
	uint64_t stamp;
};
_Static_assert(__builtin_offsetof(struct cblk, next) == HDR, "clink is the payload of a cblk");
#define CB(l) ((struct cblk *)((char *)(l) - HDR))
#define CL(b) ((struct clink *)((char *)(b) + HDR))

/* A free extent of the pool: a treap node by address, with the largest
 * extent size of its subtree for first-fit descent. */
struct fext {
	struct hdr h;
	struct fext *l, *r;
	uint32_t max_g;
	uint32_t pad;
};
#define MIN_EXT  ((sizeof(struct fext) + 15) & ~(size_t)15)
#define MIN_G    ((uint32_t)(MIN_EXT / 16))
_Static_assert(sizeof(struct cblk) <= MIN_EXT, "cached block fits the smallest block");
_Static_assert(ENV_MAX_CPUS <= 256, "owner cpu is a byte");
/* A small block may absorb a leftover of up to MIN_G - 1 granules. */
_Static_assert((KMALLOC_SMALL_MAX + HDR + KMALLOC_REDZONE + 15) / 16 + MIN_G - 1 < NCLS,
	       "classes cover every small block");

/* 32 bytes, so the hot path indexes with one shift. Frees are not counted:
 * kmalloc_stats derives them (allocs - live, from a census of the pool). */
struct pcls {
	struct clink *head;
	uint64_t allocs, misses;
	uint64_t pad;
};
_Static_assert(sizeof(struct pcls) == 32, "class entry is a power of two");

struct kmalloc_pcpu {
	uintptr_t span_lo, span_len;   /* payloads in [lo, lo+len) are in the pool */
	uint64_t now;                  /* clock at the last slow path or reap */
	uint64_t live_tag;             /* header word of our live blocks, minus g and check */
	uint64_t scanned;              /* clock at the last expiry scan of the cache */
	uint32_t cpu;
	uint32_t flush_req;            /* set by other CPUs: flush everything */
	uint64_t fails, bad_frees;
	struct pcls cls[NCLS];
	/* Written by other CPUs: keep it off the owner's lines. */
	char pad0[64];
	struct clink *remote;
	char pad1[56];
};

/* Counters have one writer (the owner); others read them while it runs.
 * GCC 12 turns a relaxed 64-bit atomic store into amoswap on RISC-V; an
 * aligned sd is single-copy atomic there, so the kernel uses a volatile
 * store (the host keeps the atomic, which is what TSan understands). */
#define RD(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)
#if defined(__riscv)
#define BUMP(x)  (*(volatile uint64_t *)&(x) = (x) + 1)
#else
#define BUMP(x)  __atomic_store_n(&(x), (x) + 1, __ATOMIC_RELAXED)
#endif
/* A block's state byte changes outside the pool lock (hot paths, remote
 * frees) while kmalloc_stats may read it (census): single-byte relaxed
 * accesses, a plain sb/lbu on RISC-V. */
#define SET_STATE(h, v) __atomic_store_n(&(h)->state, (uint8_t)(v), __ATOMIC_RELAXED)
#define GET_STATE(h)    __atomic_load_n(&(h)->state, __ATOMIC_RELAXED)

#define likely(x) __builtin_expect(!!(x), 1)

static struct kmalloc_inst g_km;   /* the global instance (kmalloc, kfree, ...) */

/* The public alloc/free entry points are leaves on their hot paths (every
 * slow path is a tail call), so the frame the kernel's -fno-omit-frame-pointer
 * would build is pure cost there: 5 of the ~45 instructions of each call.
 * A trap inside one still shows its pc (sepc) and caller (ra). */
#if defined(__GNUC__) && !defined(__clang__)
#define HOT_FRAME __attribute__((optimize("omit-frame-pointer")))
#else
#define HOT_FRAME
#endif
/* The entry points whose hot paths run with interrupts enabled live in
 * their own section: an interrupt that stopped a CPU there must not touch
 * that CPU's caches (kmalloc_hot_pc). Nothing else inlines those paths
 * without turning interrupts off (alloc_pc and free_pc with irq true). */
#define HOT_ENTRY HOT_FRAME __attribute__((noinline, section("kmalloc_hot")))

#ifdef KMALLOC_DEBUG
#define CALLER() __builtin_return_address(0)
#else
#define CALLER() ((void *)0)
#endif

/* The check field of every header. A constant, so that the free hot path
 * compares a whole header word with one xor (live_tag); stray bytes pass it
 * with odds of 1 in 65536, and the state, owner and size must match too.
 * (Headers left inside larger blocks by coalescing are never ST_LIVE.) */
static inline uint16_t ck(const void *h, uint32_t g)
{
	(void)h, (void)g;
	return CK_KEY;
}

static inline uint64_t now_of(struct kmalloc_inst *km)
{
	return km->clock.now ? km->clock.now(km->clock.ctx) : env_ticks();
}

/* env_cpu() < ENV_MAX_CPUS <= 256: the int cast only saves a zero extension. */
static inline struct kmalloc_pcpu *pcpu_self(struct kmalloc_inst *km)
{
	return __atomic_load_n(&km->pcpu[(int)env_cpu()], __ATOMIC_RELAXED);
}

typedef uint64_t __attribute__((may_alias)) word_alias_t;

static inline uint64_t hdr_word(const struct hdr *h)
{
	return *(const word_alias_t *)h;
}

static inline size_t gran_of(size_t size)
{
	size_t g = (size + HDR + KMALLOC_REDZONE + 15) >> 4;
	return g < MIN_G ? MIN_G : g;
}

/* ---- debug aids ------------------------------------------------------------ */

#ifdef KMALLOC_DEBUG
static void dbg_mark(struct hdr *h, size_t req, void *caller)
{
	h->req = (uint32_t)req;
	h->caller = caller;
	memset((char *)h + HDR + req, RZ_BYTE, (size_t)h->g * 16 - HDR - req);
}

static bool dbg_redzone_ok(const struct hdr *h)
{
	const unsigned char *z = (const unsigned char *)h + HDR + h->req;
	size_t n = (size_t)h->g * 16 - HDR - h->req;
	for (size_t i = 0; i < n; i++)
		if (z[i] != RZ_BYTE)
			return false;
	return true;
}

static void dbg_poison(struct cblk *b)
{
	memset((char *)b + sizeof(*b), POISON, (size_t)b->h.g * 16 - sizeof(*b));
}

static void dbg_check_poison(struct cblk *b)
{
	const unsigned char *z = (const unsigned char *)b + sizeof(*b);
	size_t n = (size_t)b->h.g * 16 - sizeof(*b);
	for (size_t i = 0; i < n; i++)
		if (z[i] != POISON) {
			env_log("kmalloc: block %p written after free (offset %zu; allocated at %p)",
				(void *)((char *)b + HDR), sizeof(*b) - HDR + i, b->h.caller);
			return;
		}
}
#define DBG_CALLER(h) ((h)->caller)
#else
static inline void dbg_mark(struct hdr *h, size_t req, void *caller) { }
static inline bool dbg_redzone_ok(const struct hdr *h) { return true; }
static inline void dbg_poison(struct cblk *b) { }
static inline void dbg_check_poison(struct cblk *b) { }
#define DBG_CALLER(h) ((void *)0)
#endif

/* ---- the pool: treap of free extents by address ---------------------------- */

static inline uint32_t prio(const struct fext *n)
{
	uint64_t x = (uintptr_t)n * 0x9E3779B97F4A7C15ull;
	return (uint32_t)(x >> 32);
}

static inline uint32_t maxg(const struct fext *n)
{
	return n ? n->max_g : 0;
}

static void upd(struct fext *n)
{
	uint32_t m = n->h.g, a = maxg(n->l), b = maxg(n->r);
	n->max_g = m > a ? (m > b ? m : b) : (a > b ? a : b);
}

static struct fext *merge(struct fext *a, struct fext *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (prio(a) > prio(b)) {
		a->r = merge(a->r, b);
		upd(a);
		return a;
	}
	b->l = merge(a, b->l);
	upd(b);
	return b;
}

/* Nodes below `key` go to *lo, the others to *hi. */
static void split(struct fext *t, uintptr_t key, struct fext **lo, struct fext **hi)
{
	if (!t) {
		*lo = *hi = NULL;
	} else if ((uintptr_t)t < key) {
		split(t->r, key, &t->r, hi);
		upd(t);
		*lo = t;
	} else {
		split(t->l, key, lo, &t->l);
		upd(t);
		*hi = t;
	}
}

static void ext_set(struct fext *e, uint32_t g)
{
	e->h.g = g;
	SET_STATE(&e->h, ST_POOL);
	e->h.check = ck(e, g);
}

static void tree_insert(struct kmalloc_inst *km, struct fext *n, uint32_t g)
{
	struct fext *a, *b;

	ext_set(n, g);
	n->l = n->r = NULL;
	n->max_g = g;
	split(km->root, (uintptr_t)n, &a, &b);
	km->root = merge(merge(a, n), b);
	km->nextents++;
}

static void tree_erase(struct kmalloc_inst *km, struct fext *n)
{
	struct fext *a, *m, *c;

	split(km->root, (uintptr_t)n, &a, &m);
	split(m, (uintptr_t)n + 1, &m, &c);
	if (m != n)
		env_panic("kmalloc_pool: extent %p not in the pool", (void *)n);
	km->root = merge(a, c);
	km->nextents--;
}

static void resize_rec(struct fext *t, struct fext *n, uint32_t g)
{
	if (!t)
		env_panic("kmalloc_pool: extent %p not in the pool", (void *)n);
	if (t == n)
		ext_set(n, g);
	else
		resize_rec((uintptr_t)n < (uintptr_t)t ? t->l : t->r, n, g);
	upd(t);
}

#define PATH_MAX_DEPTH 48      /* deeper treaps (unlikely) take the recursion */

/* Change the size of extent n in place (its address, hence position, stays).
 * Subtree maxima are fixed bottom-up and only as far as they change. */
static void tree_resize(struct kmalloc_inst *km, struct fext *n, uint32_t g)
{
	struct fext *path[PATH_MAX_DEPTH], *t = km->root;
	int d = 0;

	for (; t != n; t = (uintptr_t)n < (uintptr_t)t ? t->l : t->r) {
		if (!t || d == PATH_MAX_DEPTH) {
			resize_rec(km->root, n, g);
			return;
		}
		path[d++] = t;
	}
	uint32_t old = n->max_g;
	ext_set(n, g);
	upd(n);
	while (d > 0 && n->max_g != old) {
		n = path[--d];
		old = n->max_g;
		upd(n);
	}
}

/* Closest extents strictly below and above address a. */
static void neighbours(struct kmalloc_inst *km, uintptr_t a, struct fext **lo, struct fext **hi)
{
	*lo = *hi = NULL;
	for (struct fext *t = km->root; t;) {
		if ((uintptr_t)t < a) {
			*lo = t;
			t = t->r;
		} else if ((uintptr_t)t > a) {
			*hi = t;
			t = t->l;
		} else {
			env_panic("kmalloc_pool: block %p already in the pool", (void *)a);
		}
	}
}

/* Give [a, a + 16g) to the pool, coalescing with both neighbours. */
static void pool_put(struct kmalloc_inst *km, uintptr_t a, uint32_t g)
{
	struct fext *lo, *hi;
	uintptr_t end = a + (uintptr_t)g * 16;

	neighbours(km, a, &lo, &hi);
	if ((lo && (uintptr_t)lo + (uintptr_t)lo->h.g * 16 > a) || (hi && (uintptr_t)hi < end))
		env_panic("kmalloc_pool: block %p overlaps a free extent", (void *)a);
	km->pool_free += (uint64_t)g * 16;
	SET_STATE((struct hdr *)a, ST_POOL);   /* a stale pointer to it reads "free" */
	if (lo && (uintptr_t)lo + (uintptr_t)lo->h.g * 16 == a) {
		g += lo->h.g;
		if (hi && (uintptr_t)hi == end) {
			g += hi->h.g;
			tree_erase(km, hi);
		}
		tree_resize(km, lo, g);
		return;
	}
	if (hi && (uintptr_t)hi == end) {
		g += hi->h.g;
		tree_erase(km, hi);
	}
	tree_insert(km, (struct fext *)a, g);
}

/* Good fit: among the first FIT_CANDIDATES extents of at least g granules
 * in address order, the smallest (an exact fit ends the search at once).
 * Plain address-ordered first fit splits big extents for small blocks and
 * left the mixed-trace heap 25% above peak live; best fit over a bounded
 * window keeps big extents for big blocks at a bounded cost per miss. */
#define FIT_CANDIDATES 32

#define FIT_DEPTH 48             /* deeper treaps (unlikely) fall back to first fit */

/* Lowest-address extent of at least g granules. */
static struct fext *first_fit(struct fext *t, uint32_t g)
{
	while (t) {
		if (maxg(t->l) >= g)
			t = t->l;
		else if (t->h.g >= g)
			return t;
		else
			t = t->r;
	}
	env_panic("kmalloc_pool: subtree maximum is wrong");
}

/* Is t a better fit than *best? Ends the walk (false) on an exact fit or
 * when the candidates run out. */
static inline bool fit_visit(struct fext *t, uint32_t g, struct fext **best, int *left)
{
	if (t->h.g < g)
		return true;
	if (!*best || t->h.g < (*best)->h.g)
		*best = t;
	return t->h.g != g && --*left > 0;
}

/* An in-order walk of the subtrees that hold a fit: the path to the first
 * fit costs what first_fit's descent does, plus a push per left turn. */
static struct fext *good_fit(struct kmalloc_inst *km, uint32_t g)
{
	struct fext *stack[FIT_DEPTH], *t = km->root, *best = NULL;
	int sp = 0, left = FIT_CANDIDATES;

	if (maxg(t) < g)
		return NULL;
	for (;;) {
		while (t) {                     /* t->max_g >= g here */
			if (maxg(t->l) >= g) {
				if (sp == FIT_DEPTH)
					return best ? best : first_fit(t, g);
				stack[sp++] = t;
				t = t->l;
				continue;
			}
			if (!fit_visit(t, g, &best, &left))
				return best;
			t = maxg(t->r) >= g ? t->r : NULL;
		}
		if (!sp)
			break;
		t = stack[--sp];
		if (!fit_visit(t, g, &best, &left))
			return best;
		t = maxg(t->r) >= g ? t->r : NULL;
	}
	if (!best)
		env_panic("kmalloc_pool: subtree maximum is wrong");
	return best;
}

/* Carve a block of *gp granules whose payload is aligned to `align` (a power
 * of two >= 16), from the top of a good fit (see good_fit; from the bottom
 * of the lowest fit when `low`: per-CPU data, which then packs at the start
 * of the heap).
 * *gp may grow by a leftover too small to be an extent. Returns the block
 * address or 0. Pool lock held. */
static uintptr_t pool_take(struct kmalloc_inst *km, uint32_t *gp, size_t align, bool low)
{
	uint32_t g = *gp;
	uint64_t need = align > 16 ? (uint64_t)g + align / 16 + MIN_G : g;
	struct fext *e;
	uintptr_t a, end, b, tail;

	if (need > UINT32_MAX || maxg(km->root) < need)
		return 0;
	/* Per-CPU data takes the lowest fit, so it packs at the start of the
	 * heap whatever holes the blocks have left by then; blocks take the
	 * best of a few fits. */
	e = low ? first_fit(km->root, (uint32_t)need) : good_fit(km, (uint32_t)need);
	if (!e)
		return 0;
	a = (uintptr_t)e;
	end = a + (uintptr_t)e->h.g * 16;
	if (low) {
		b = ((a + HDR + align - 1) & ~(uintptr_t)(align - 1)) - HDR;
		if (b != a && b - a < MIN_EXT)
			b += align;
	} else {
		b = ((end - (uintptr_t)g * 16 + HDR) & ~(uintptr_t)(align - 1)) - HDR;
	}
	tail = end - b - (uintptr_t)g * 16;
	if (tail && tail < MIN_EXT) {
		g += (uint32_t)(tail / 16);
		tail = 0;
	}
	if (b - a < MIN_EXT) {          /* only when align == 16: take it whole */
		g += (uint32_t)((b - a) / 16);
		b = a;
	}
	if (b == a)
		tree_erase(km, e);
	else
		tree_resize(km, e, (uint32_t)((b - a) / 16));
	if (tail)
		tree_insert(km, (struct fext *)(b + (uintptr_t)g * 16), (uint32_t)(tail / 16));
	km->pool_free -= (uint64_t)g * 16;
	struct hdr *h = (struct hdr *)b;
	h->g = g;
	h->cpu = 0;
	h->check = ck(h, g);
	SET_STATE(h, ST_CARVED);
	*gp = g;
	return b;
}

/* ---- page ranges ----------------------------------------------------------- */

/* Index of the range holding a, or -1. Pool lock held. */
static int range_find(struct kmalloc_inst *km, uintptr_t a)
{
	int lo = 0, hi = (int)km->nranges - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		if (a < km->ranges[mid].base)
			hi = mid - 1;
		else if (a >= km->ranges[mid].end)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

static int range_add(struct kmalloc_inst *km, const struct kmalloc_range *r)
{
	uint32_t i = km->nranges;

	if (i == KMALLOC_MAX_RANGES)
		return E_NOMEM;
	while (i > 0 && km->ranges[i - 1].base > r->base) {
		km->ranges[i] = km->ranges[i - 1];
		i--;
	}
	km->ranges[i] = *r;
	km->nranges++;
	return (int)i;
}

static void range_del(struct kmalloc_inst *km, int i)
{
	memmove(&km->ranges[i], &km->ranges[i + 1],
		(km->nranges - (uint32_t)i - 1) * sizeof(km->ranges[0]));
	km->nranges--;
}

/* Run of adjacent pool ranges around range i: [*lo, *hi). */
static void pool_span(struct kmalloc_inst *km, int i, uintptr_t *lo, uintptr_t *hi)
{
	int a = i, b = i;

	while (a > 0 && km->ranges[a - 1].kind == R_POOL && km->ranges[a - 1].end == km->ranges[a].base)
		a--;
	while (b + 1 < (int)km->nranges && km->ranges[b + 1].kind == R_POOL &&
	       km->ranges[b + 1].base == km->ranges[b].end)
		b++;
	*lo = km->ranges[a].base;
	*hi = km->ranges[b].end;
}

static inline void peak_update(struct kmalloc_inst *km)
{
	uint64_t used = km->pool_bytes - km->pool_free + km->large_bytes;
	if (used > km->peak)
		km->peak = used;
}

/* Grow the pool by a chunk that fits g granules at `align`. Called with
 * interrupts restored and no lock. */
static bool add_chunk(struct kmalloc_inst *km, void *base, size_t np);

static bool grow(struct kmalloc_inst *km, uint32_t g, size_t align)
{
	uint64_t bytes = (uint64_t)g * 16 + align + 2 * MIN_EXT;
	size_t np = (size_t)((bytes + PAGE - 1) / PAGE);
	size_t minp = km->grow_min_pages, prop = (size_t)(km->pool_bytes / 16 / PAGE);
	void *base;

	size_t fit = np;
	uint32_t idle = 0;

	/* One CPU grows at a time: CPUs that ran short together would each
	 * take a chunk (and a chunk taken later may sit below per-CPU data
	 * made earlier, splitting the pool for good). The others wait and
	 * retry the pool. */
	if (!__atomic_compare_exchange_n(&km->growing, &idle, 1, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		while (__atomic_load_n(&km->growing, __ATOMIC_ACQUIRE))
			env_cpu_relax();
		return true;
	}
	if (np < minp)
		np = minp;
	if (np < prop)
		np = prop;
	base = km->src.get_pages(km->src.ctx, np);
	if (!base && np > fit)          /* short of pages: just what fits */
		base = km->src.get_pages(km->src.ctx, np = fit);
	if (!base || !add_chunk(km, base, np)) {
		__atomic_store_n(&km->growing, 0, __ATOMIC_RELEASE);
		return false;
	}
	__atomic_store_n(&km->growing, 0, __ATOMIC_RELEASE);
	return true;
}

/* Put np pages at base into the pool as a new range. Pool lock inside. */
static bool add_chunk(struct kmalloc_inst *km, void *base, size_t np)
{
	struct kmalloc_range r = { 0 };
	uintptr_t lo, hi;
	unsigned long fl;
	int i;

	r.base = (uintptr_t)base;
	r.end = r.base + np * PAGE;
	r.kind = R_POOL;
	fl = env_lock(&km->lock);
	i = range_add(km, &r);
	if (i < 0) {
		env_unlock(&km->lock, fl);
		km->src.put_pages(km->src.ctx, base, np);
		return false;
	}
	/* Claim the pads shared with adjacent pool chunks (see the top). */
	lo = r.base + 8;
	hi = r.end - 8;
	if (i > 0 && km->ranges[i - 1].kind == R_POOL && km->ranges[i - 1].end == r.base)
		lo = r.base - 8;
	if (i + 1 < (int)km->nranges && km->ranges[i + 1].kind == R_POOL && km->ranges[i + 1].base == r.end)
		hi = r.end + 8;
	km->heap_bytes += np * PAGE;
	km->pool_bytes += hi - lo;
	pool_put(km, lo, (uint32_t)((hi - lo) / 16));
	env_unlock(&km->lock, fl);
	return true;
}

/* ---- per-CPU caches -------------------------------------------------------- */

/* Per-CPU data is a block carved from the pool (state ST_META, refused by
 * kfree), so page-source chunks stay adjacent and can coalesce. */
static struct kmalloc_pcpu *pcpu_create(struct kmalloc_inst *km, unsigned cpu)
{
	uint32_t g = (uint32_t)((sizeof(struct kmalloc_pcpu) + HDR + 15) / 16);
	struct kmalloc_pcpu *pc;
	uintptr_t a = 0;

	for (int tries = 0; !a && tries < 8; tries++) {
		unsigned long fl = env_lock(&km->lock);
		a = pool_take(km, &g, 16, true);
		if (a) {
			km->meta_bytes += (uint64_t)g * 16;
			peak_update(km);
		}
		env_unlock(&km->lock, fl);
		if (!a && !grow(km, g, 16))
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
	pc->now = now_of(km);
	__atomic_store_n(&km->pcpu[cpu], pc, __ATOMIC_RELEASE);
	return pc;
}

/* Give a chain of cached blocks (linked by next) back to the pool. `counter`
 * (the owner's or the reclaimer's pcpu, may be NULL) counts them as out. */
static void chain_to_pool(struct kmalloc_inst *km, struct clink *l)
{
	while (l) {
		unsigned long fl = env_lock(&km->lock);
		/* Bounded batches keep the lock hold (interrupts off) short. */
		for (int n = 0; l && n < 64; n++) {
			struct cblk *b = CB(l);
			struct clink *next = l->next;
			pool_put(km, (uintptr_t)b, b->h.g);
			l = next;
		}
		env_unlock(&km->lock, fl);
	}
}

/* Cached blocks older than the TTL (all of them when !expired_only) go back
 * to the pool. Owner only (or QUIESCENT). Returns whether any went. */
static bool flush_own(struct kmalloc_inst *km, struct kmalloc_pcpu *pc, bool expired_only)
{
	struct clink *out = NULL, **tailp = &out;
	bool any = false;

	for (uint32_t c = MIN_G; c < NCLS; c++) {
		struct clink **pp = &pc->cls[c].head;
		if (!*pp)
			continue;
		if (expired_only)
			while (*pp && pc->now - (*pp)->stamp < km->ttl)
				pp = &(*pp)->next;
		if (!*pp)
			continue;
		*tailp = *pp;      /* stamps only decrease along a list: cut here */
		*pp = NULL;
		while (*tailp)
			tailp = &(*tailp)->next;
		any = true;
	}
	chain_to_pool(km, out);
	return any;
}

static void scan_expired(struct kmalloc_inst *km, struct kmalloc_pcpu *pc)
{
	pc->scanned = pc->now;
	flush_own(km, pc, true);
}

/* Owner: take the remote-free list into the cache, or into the pool. */
static void drain_remote(struct kmalloc_inst *km, struct kmalloc_pcpu *pc, bool to_pool)
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
		struct pcls *cl = &pc->cls[CB(l)->h.g];
		l->stamp = pc->now;
		l->next = cl->head;
		cl->head = l;
		l = next;
	}
}

/* Slow-path housekeeping of the owner: clock, flush requests, remote frees. */
static void service(struct kmalloc_inst *km, struct kmalloc_pcpu *pc)
{
	pc->now = now_of(km);
	if (__atomic_load_n(&pc->flush_req, __ATOMIC_ACQUIRE)) {
		flush_own(km, pc, false);
		drain_remote(km, pc, true);
		__atomic_store_n(&pc->flush_req, 0, __ATOMIC_RELEASE);
	} else {
		drain_remote(km, pc, false);
	}
}

/* Before failing: everything of ours and every remote list to the pool, and
 * ask the other CPUs to flush their caches (waiting up to flush_wait). */
static void reclaim_all(struct kmalloc_inst *km, struct kmalloc_pcpu *pc, unsigned long *fl)
{
	bool asked = false;

	if (pc) {
		flush_own(km, pc, false);
		drain_remote(km, pc, true);
	}
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
			pending = o && o != pc && __atomic_load_n(&o->flush_req, __ATOMIC_ACQUIRE);
		}
		if (!pending)
			break;
		env_cpu_relax();
	}
	*fl = env_irq_save();
	if (pc && __atomic_load_n(&pc->flush_req, __ATOMIC_ACQUIRE))
		service(km, pc);  /* another failing CPU asked us meanwhile */
}

/* A block from the pool: carve; else reap our expired blocks; else grow;
 * else reclaim every cached block. Interrupts off in *fl's section. */
static uintptr_t carve(struct kmalloc_inst *km, struct kmalloc_pcpu *pc, uint32_t *gp,
		       size_t align, unsigned long *fl)
{
	bool reaped = false, reclaimed = false;
	int grows = 0;

	for (;;) {
		unsigned long lf = env_lock(&km->lock);
		uintptr_t a = pool_take(km, gp, align, false);
		if (a)
			peak_update(km);
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
			ok = grow(km, *gp, align);
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

/* ---- allocation ------------------------------------------------------------ */

static void *alloc_large(struct kmalloc_inst *km, size_t size, size_t align, void *caller);
static __attribute__((noinline)) void *alloc_slow(struct kmalloc_inst *km, size_t size, size_t align,
						  unsigned long fl, void *caller);

static void *set_live(struct kmalloc_pcpu *pc, uintptr_t a, uint32_t g, size_t size, void *caller)
{
	struct hdr *h = (struct hdr *)a;

	(void)g;                 /* g and check: pool_take */
	h->cpu = (uint8_t)pc->cpu;
	SET_STATE(h, ST_LIVE);
	dbg_mark(h, size, caller);
	return (char *)h + HDR;
}

/* Cache miss (or no per-CPU data yet, or a flush request): interrupts off. */
static __attribute__((noinline)) void *alloc_slow(struct kmalloc_inst *km, size_t size, size_t align,
						  unsigned long fl,
			void *caller)
{
	unsigned cpu = env_cpu();
	struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[cpu], __ATOMIC_RELAXED);
	uint32_t g = (uint32_t)gran_of(size);
	uintptr_t a;

	if (size - 1 >= KMALLOC_SMALL_MAX) {   /* a hot-path miss of size 0, large or wrapped */
		env_irq_restore(fl);
		return size ? alloc_large(km, size, align, caller) : NULL;
	}
	if (!pc) {
		env_irq_restore(fl);
		pc = pcpu_create(km, cpu);
		fl = env_irq_save();
		if (!pc) {
			env_irq_restore(fl);
			return NULL;
		}
	}
	if (km == &g_km)
		env_slot_set(ENV_SLOT_KMALLOC, pc);   /* first use on this CPU (thread) */
	service(km, pc);
	struct clink *l = pc->cls[g].head;
	if (l && align <= 16) {
		pc->cls[g].head = l->next;
		BUMP(pc->cls[g].allocs);
		dbg_check_poison(CB(l));
		void *p = set_live(pc, (uintptr_t)CB(l), g, size, caller);
		env_irq_restore(fl);
		return p;
	}
	/* A miss carves from the pool: return expired blocks first, so they
	 * coalesce before the pool is cut (once per TTL: the scan reads every
	 * class). */
	if (pc->now - pc->scanned >= km->ttl)
		scan_expired(km, pc);
	a = carve(km, pc, &g, align, &fl);
	if (!a) {
		BUMP(pc->fails);
		env_irq_restore(fl);
		return NULL;
	}
	BUMP(pc->cls[g].allocs);
	BUMP(pc->cls[g].misses);
	void *p = set_live(pc, a, g, size, caller);
	env_irq_restore(fl);
	return p;
}

/* Size 0, requests too small for a class of their own (they round up to
 * MIN_G), and large ones. */
static __attribute__((noinline)) void *alloc_cold(struct kmalloc_inst *km, size_t size,
						  void *caller)
{
	if (size - 1 >= KMALLOC_SMALL_MAX)
		return size ? alloc_large(km, size, 16, caller) : NULL;
	return alloc_slow(km, size, 16, env_irq_save(), caller);
}

/* Granules of the largest small block. Sizes above it go to alloc_cold; a
 * size that wraps when the header is added comes out below MIN_G, like size
 * 0 and tiny sizes, so they find an empty class and reach alloc_slow. */
#define SMALL_G ((KMALLOC_SMALL_MAX + HDR + KMALLOC_REDZONE + 15) / 16)
_Static_assert((HDR + KMALLOC_REDZONE + 15) / 16 < MIN_G, "a wrapped size is not small");

/* Hot path: pop the exact-size cache of this CPU (pc: its per-CPU data, or
 * env_zero_block before it has any). Flush requests from other CPUs are
 * served on the slow paths and by kmalloc_reap (the timer). With irq false
 * only for HOT_ENTRY functions: interrupts stay on, and an interrupt that
 * stops us here knows it from the pc. */
static inline __attribute__((always_inline)) void *alloc_pc(struct kmalloc_inst *km,
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

static inline struct kmalloc_pcpu *pcpu_or_zero(struct kmalloc_inst *km)
{
	struct kmalloc_pcpu *pc = pcpu_self(km);
	return pc ? pc : (struct kmalloc_pcpu *)(void *)env_zero_block;
}
_Static_assert(sizeof(struct kmalloc_pcpu) <= ENV_ZERO_SIZE, "env_zero_block covers a kmalloc_pcpu");

static inline void *alloc(struct kmalloc_inst *km, size_t size, void *caller)
{
	return alloc_pc(km, pcpu_or_zero(km), size, caller, true);
}

/* Own pages for a large block; if the page source says no, a block carved
 * from the pool (after reclaiming every cached block). */
static void *alloc_large(struct kmalloc_inst *km, size_t size, size_t align, void *caller)
{
	size_t extra = align > PAGE ? align - PAGE : 0;
	struct kmalloc_range r = { 0 };
	unsigned long fl;
	size_t np;
	void *base;

	if (size > ((size_t)1 << 40) || align > ((size_t)1 << 30)) {
		env_log("kmalloc: request of %zu bytes (align %zu) is too large", size, align);
		return NULL;
	}
	np = (size + extra + PAGE - 1) / PAGE;
	base = km->src.get_pages(km->src.ctx, np);
	if (base) {
		r.base = (uintptr_t)base;
		r.end = r.base + np * PAGE;
		r.payload = (r.base + align - 1) & ~(uintptr_t)(align - 1);
		r.req = size;
		r.kind = R_LARGE;
		r.cpu = env_cpu();
		r.caller = caller;
		fl = env_lock(&km->lock);
		if (range_add(km, &r) >= 0) {
			km->heap_bytes += np * PAGE;
			km->large_bytes += np * PAGE;
			km->large_allocs++;
			peak_update(km);
			env_unlock(&km->lock, fl);
#ifdef KMALLOC_DEBUG
			memset((char *)r.payload + size, RZ_BYTE, r.end - r.payload - size);
#endif
			return (void *)r.payload;
		}
		env_unlock(&km->lock, fl);
		km->src.put_pages(km->src.ctx, base, np);
	}
	/* Fallback: a pool block whose class is beyond the caches. */
	uint64_t g64 = ((uint64_t)size + HDR + KMALLOC_REDZONE + 15) >> 4;
	if (g64 >= UINT32_MAX || align > PAGE)
		return NULL;
	uint32_t g = g64 < NCLS ? NCLS : (uint32_t)g64;
	fl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);
	uintptr_t a = carve(km, pc, &g, align < 16 ? 16 : align, &fl);
	if (!a) {
		if (pc)
			BUMP(pc->fails);
		env_irq_restore(fl);
		return NULL;
	}
	struct hdr *h = (struct hdr *)a;   /* g and check: pool_take */
	h->cpu = (uint8_t)env_cpu();
	SET_STATE(h, ST_BIG);
	dbg_mark(h, size, caller);
	unsigned long lf = env_lock(&km->lock);
	km->large_allocs++;
	km->plarge_bytes += (uint64_t)g * 16;
	env_unlock(&km->lock, lf);
	env_irq_restore(fl);
	return (char *)h + HDR;
}

static void *alloc_aligned(struct kmalloc_inst *km, size_t size, size_t align, void *caller)
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
		return alloc_large(km, size, align, caller);
	return alloc_slow(km, size, align, env_irq_save(), caller);
}

/* ---- free ------------------------------------------------------------------ */

struct blkinfo {
	int kind;             /* R_POOL (small or pool-large) or R_LARGE */
	int ri;               /* range index for R_LARGE (valid under the lock only) */
	struct hdr *h;
	size_t usable;
	void *caller;
};

static int refuse(struct kmalloc_inst *km, const char *op, const void *p, int e, const char *why,
		  void *owner_caller, void *caller)
{
	struct kmalloc_pcpu *pc = pcpu_self(km);

	if (pc)
		BUMP(pc->bad_frees);
	env_log("%s(%p): %s (%s; allocated at %p, called from %p)", op, p, why, err_str(e),
		owner_caller, caller);
	return e;
}

/* Find what p is, without changing anything. 0 or an error (logged). */
static int classify(struct kmalloc_inst *km, const char *op, const void *p, struct blkinfo *bi,
		    void *caller)
{
	uintptr_t a = (uintptr_t)p, lo, hi;
	unsigned long fl = env_lock(&km->lock);
	int i = range_find(km, a);
	struct kmalloc_range *r = i >= 0 ? &km->ranges[i] : NULL;

	if (!r || r->kind == R_META) {
		env_unlock(&km->lock, fl);
		return refuse(km, op, p, E_FAULT, "not from this heap (or a large block already freed)",
			      NULL, caller);
	}
	if (r->kind == R_LARGE) {
		bi->kind = R_LARGE;
		bi->ri = i;
		bi->usable = r->end - r->payload;
		bi->caller = r->caller;
		env_unlock(&km->lock, fl);
		if (a != r->payload)
			return refuse(km, op, p, E_INVAL, "points inside a large block", r->caller, caller);
		return 0;
	}
	pool_span(km, i, &lo, &hi);
	env_unlock(&km->lock, fl);
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
	bool hdr_ok = h->check == ck(h, h->g) && h->g >= MIN_G && a - HDR + (uintptr_t)h->g * 16 <= hi;
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

static void free_large(struct kmalloc_inst *km, void *p)
{
	unsigned long fl = env_lock(&km->lock);
	int i = range_find(km, (uintptr_t)p);
	struct kmalloc_range r = km->ranges[i];
	size_t np = (r.end - r.base) / PAGE;

	range_del(km, i);
	km->heap_bytes -= np * PAGE;
	km->large_bytes -= np * PAGE;
	km->large_frees++;
	env_unlock(&km->lock, fl);
	km->src.put_pages(km->src.ctx, (void *)r.base, np);
}

/* Validated small block: into our cache, the owner's remote list, or (for
 * pool-large blocks) straight back to the pool. Interrupts off. */
static void free_block(struct kmalloc_inst *km, struct hdr *h)
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
		pool_put(km, (uintptr_t)h, g);
		env_unlock(&km->lock, fl);
		return;
	}
	dbg_poison(b);
	if (h->cpu == cpu && (pc = pcpu_self(km)) != NULL) {
		service(km, pc);
		b->stamp = pc->now;
		b->next = pc->cls[g].head;
		pc->cls[g].head = CL(b);
		return;
	}
	pc = __atomic_load_n(&km->pcpu[h->cpu], __ATOMIC_ACQUIRE);
	if (!pc)
		env_panic("kmalloc_free: block %p owned by cpu %u without per-CPU data",
			  (void *)h, (unsigned)h->cpu);
	struct clink *old = __atomic_load_n(&pc->remote, __ATOMIC_RELAXED);
	do {
		b->next = old;
	} while (!__atomic_compare_exchange_n(&pc->remote, &old, CL(b), true, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
}

static __attribute__((noinline)) int free_slow(struct kmalloc_inst *km, void *p, unsigned long fl,
					       void *caller)
{
	struct blkinfo bi;
	int e;

	env_irq_restore(fl);
	e = classify(km, "kfree", p, &bi, caller);
	if (e)
		return e;
	if (bi.kind == R_LARGE) {
#ifdef KMALLOC_DEBUG
		unsigned long lf = env_lock(&km->lock);
		struct kmalloc_range *r = &km->ranges[range_find(km, (uintptr_t)p)];
		const unsigned char *z = (const unsigned char *)p + r->req;
		size_t n = r->end - r->payload - r->req;
		env_unlock(&km->lock, lf);
		for (size_t i = 0; i < n; i++)
			if (z[i] != RZ_BYTE)
				return refuse(km, "kfree", p, E_CORRUPT, "red zone damaged", bi.caller, caller);
#endif
		free_large(km, p);
		return 0;
	}
	if (!dbg_redzone_ok(bi.h))
		return refuse(km, "kfree", p, E_CORRUPT, "red zone damaged", bi.caller, caller);
	fl = env_irq_save();
	free_block(km, bi.h);
	env_irq_restore(fl);
	return 0;
}

/* Not ours to cache: a block of another CPU with a sound header goes onto
 * its owner's remote list without a lock; anything else to free_slow. */
static __attribute__((noinline)) int free_other(struct kmalloc_inst *km, void *p, void *caller)
{
	uintptr_t a = (uintptr_t)p;

	if (!p)
		return 0;
	unsigned long fl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);
	if (km == &g_km && pc)
		env_slot_set(ENV_SLOT_KMALLOC, pc);   /* a thread that only frees */

	if (pc && a - pc->span_lo < pc->span_len && !(a & 15)) {
		struct cblk *b = (struct cblk *)(a - HDR);
		uint32_t g = b->h.g;
		if (b->h.state == ST_LIVE && g < NCLS && b->h.check == ck(b, g) &&
		    b->h.cpu != pc->cpu && dbg_redzone_ok(&b->h)) {
			struct kmalloc_pcpu *o = __atomic_load_n(&km->pcpu[b->h.cpu], __ATOMIC_ACQUIRE);
			if (o) {
				SET_STATE(&b->h, ST_CACHED);
				dbg_poison(b);
				struct clink *old = __atomic_load_n(&o->remote, __ATOMIC_RELAXED);
				do {
					b->next = old;
				} while (!__atomic_compare_exchange_n(&o->remote, &old, CL(b), true,
								      __ATOMIC_RELEASE, __ATOMIC_RELAXED));
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
static inline __attribute__((always_inline)) int free_pc(struct kmalloc_inst *km,
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

static inline int free_(struct kmalloc_inst *km, void *p, void *caller)
{
	return free_pc(km, pcpu_or_zero(km), p, caller, true);
}

/* ---- instance API ---------------------------------------------------------- */

int kmalloc_init_i(struct kmalloc_inst *km, const struct kmalloc_page_source *src,
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
	return 0;
}

void kmalloc_tune_i(struct kmalloc_inst *km, size_t grow_min_pages, uint64_t flush_wait)
{
	km->grow_min_pages = grow_min_pages ? grow_min_pages : 1;
	km->flush_wait = flush_wait;
}

void kmalloc_destroy_i(struct kmalloc_inst *km)
{
	while (km->nranges) {
		struct kmalloc_range r = km->ranges[--km->nranges];
		km->src.put_pages(km->src.ctx, (void *)r.base, (r.end - r.base) / PAGE);
	}
	memset(km->pcpu, 0, sizeof(km->pcpu));
	km->root = NULL;
	km->magic = 0;
	/* Only the caller's slot can be cleared: destroy the global instance
	 * from its last user (host tests), never while others use it. */
	if (km == &g_km)
		env_slot_set(ENV_SLOT_KMALLOC, env_zero_block);
}

HOT_ENTRY void *kmalloc_i(struct kmalloc_inst *km, size_t size)
{
	return alloc_pc(km, pcpu_or_zero(km), size, CALLER(), false);
}

void *kzalloc_i(struct kmalloc_inst *km, size_t size)
{
	void *p = alloc(km, size, CALLER());
	if (p)
		memset(p, 0, size);
	return p;
}

void *kcalloc_i(struct kmalloc_inst *km, size_t n, size_t size)
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

static void *realloc_(struct kmalloc_inst *km, void *p, size_t size, void *caller)
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
#ifdef KMALLOC_DEBUG
		/* The red zone now starts at the new size. */
		if (bi.kind == R_POOL) {
			bi.h->req = (uint32_t)size;
		} else {
			unsigned long fl = env_lock(&km->lock);
			km->ranges[range_find(km, (uintptr_t)p)].req = size;
			env_unlock(&km->lock, fl);
		}
		memset((char *)p + size, RZ_BYTE, bi.usable + (bi.kind == R_POOL ? KMALLOC_REDZONE : 0) - size);
#endif
		return p;
	}
	q = alloc(km, size, caller);
	if (!q)
		return NULL;
	memcpy(q, p, size < bi.usable ? size : bi.usable);
	free_(km, p, caller);
	return q;
}

void *krealloc_i(struct kmalloc_inst *km, void *p, size_t size)
{
	return realloc_(km, p, size, CALLER());
}

void *kmalloc_aligned_i(struct kmalloc_inst *km, size_t size, size_t align)
{
	return alloc_aligned(km, size, align, CALLER());
}

HOT_ENTRY int kfree_i(struct kmalloc_inst *km, void *p)
{
	return free_pc(km, pcpu_or_zero(km), p, CALLER(), false);
}

size_t ksize_i(struct kmalloc_inst *km, const void *p)
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

void kmalloc_reap_i(struct kmalloc_inst *km)
{
	unsigned long fl = env_irq_save();
	struct kmalloc_pcpu *pc = pcpu_self(km);

	if (pc) {
		service(km, pc);
		scan_expired(km, pc);
	}
	env_irq_restore(fl);
}

void kmalloc_reap_all_i(struct kmalloc_inst *km)
{
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
		if (!pc)
			continue;
		flush_own(km, pc, false);
		chain_to_pool(km, __atomic_exchange_n(&pc->remote, NULL, __ATOMIC_ACQUIRE));
		__atomic_store_n(&pc->flush_req, 0, __ATOMIC_RELEASE);
	}
}

/* ---- stats, dump, check ---------------------------------------------------- */

/* Bytes of the pool by block state, from a walk of every run of pool chunks
 * block by block (blocks tile a run from its first header: add_chunk). */
struct census {
	uint64_t live, cached, pool, meta, big;
	const char *err;
	uintptr_t at;
};

/* Pool lock held: block sizes do not change under it (only the pool splits
 * and merges, and pool_take writes a carved block's header before letting
 * go), states may (hot paths, remote frees), so under load the split between
 * live and cached is a snapshot. With st, counts blocks per class: live ones
 * in st->cls[c].frees, cached ones in .cached. */
static void census(struct kmalloc_inst *km, struct census *cs, struct kmalloc_stats *st)
{
	for (uint32_t i = 0; i < km->nranges && !cs->err; i++) {
		uintptr_t lo, hi, a;

		if (km->ranges[i].kind != R_POOL ||
		    (i && km->ranges[i - 1].kind == R_POOL && km->ranges[i - 1].end == km->ranges[i].base))
			continue;   /* not the first chunk of a run */
		pool_span(km, (int)i, &lo, &hi);
		for (a = lo + 8; a < hi - 8 && !cs->err;) {
			struct hdr *h = (struct hdr *)a;
			uint32_t g = h->g;
			uint64_t bytes = (uint64_t)g * 16;
			if (g < MIN_G || bytes > hi - 8 - a) {
				cs->err = "block sizes do not tile the pool";
				break;
			}
			switch (GET_STATE(h)) {
			case ST_LIVE:
			case ST_CARVED:
				cs->live += bytes;
				if (st && g < NCLS)
					st->cls[g].frees++;
				break;
			case ST_CACHED:
				cs->cached += bytes;
				if (st && g < NCLS)
					st->cls[g].cached++;
				break;
			case ST_POOL: cs->pool += bytes; break;
			case ST_META: cs->meta += bytes; break;
			case ST_BIG: cs->big += bytes; break;
			default: cs->err = "block state unknown"; break;
			}
			if (!cs->err)
				a += bytes;
		}
		if (cs->err)
			cs->at = a;
	}
}

void kmalloc_stats_i(struct kmalloc_inst *km, struct kmalloc_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < ENV_MAX_CPUS; i++) {
		struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
		if (!pc)
			continue;
		out->cpus++;
		for (unsigned c = 0; c < NCLS; c++) {
			struct kmalloc_class_stats *s = &out->cls[c];
			uint64_t a = RD(pc->cls[c].allocs), m = RD(pc->cls[c].misses);
			s->allocs += a;
			s->misses += m;
			s->hits += a - m;
		}
		out->failures += RD(pc->fails);
		out->bad_frees += RD(pc->bad_frees);
	}
	struct census cs = { 0 };
	unsigned long fl = env_lock(&km->lock);
	census(km, &cs, out);   /* live blocks per class into .frees for now */
	for (unsigned c = 0; c < NCLS; c++) {
		struct kmalloc_class_stats *s = &out->cls[c];
		uint64_t live = s->frees;
		/* under load the counters and the census are not one instant */
		s->frees = s->allocs > live ? s->allocs - live : 0;
		out->live_bytes += live * c * 16;
		out->cached_bytes += s->cached * c * 16;
	}
	out->live_bytes += km->large_bytes + km->plarge_bytes;
	out->pool_free_bytes = km->pool_free;
	out->peak_bytes = km->peak;
	out->heap_bytes = km->heap_bytes;
	out->meta_bytes = km->meta_bytes;
	out->large_allocs = km->large_allocs;
	out->large_frees = km->large_frees;
	out->pool_extents = km->nextents;
	out->ranges = km->nranges;
	for (uint32_t i = 0; i < km->nranges; i++)
		out->pool_runs += km->ranges[i].kind == R_POOL &&
			!(i && km->ranges[i - 1].kind == R_POOL && km->ranges[i - 1].end == km->ranges[i].base);
	env_unlock(&km->lock, fl);
}

void kmalloc_dump_i(struct kmalloc_inst *km)
{
	static struct kmalloc_stats s;   /* too big for a kernel stack */
	static env_spinlock_t dump_lock = ENV_SPINLOCK_INIT;
	unsigned long fl = env_lock(&dump_lock);

	kmalloc_stats_i(km, &s);
	env_log("kmalloc: heap %llu B (+%llu meta), live %llu, cached %llu, pool free %llu in %u extents, peak %llu",
		(unsigned long long)s.heap_bytes, (unsigned long long)s.meta_bytes,
		(unsigned long long)s.live_bytes, (unsigned long long)s.cached_bytes,
		(unsigned long long)s.pool_free_bytes, s.pool_extents, (unsigned long long)s.peak_bytes);
	env_log("kmalloc: large allocs %llu frees %llu, failures %llu, refused frees %llu, ranges %u",
		(unsigned long long)s.large_allocs, (unsigned long long)s.large_frees,
		(unsigned long long)s.failures, (unsigned long long)s.bad_frees, s.ranges);
	for (unsigned c = 0; c < NCLS; c++) {
		struct kmalloc_class_stats *k = &s.cls[c];
		if (k->allocs)
			env_log("kmalloc:  %5u B: allocs %llu frees %llu hits %llu misses %llu cached %llu",
				c * 16, (unsigned long long)k->allocs, (unsigned long long)k->frees,
				(unsigned long long)k->hits, (unsigned long long)k->misses,
				(unsigned long long)k->cached);
	}
	env_unlock(&dump_lock, fl);
}

struct walk {
	struct kmalloc_inst *km;
	uintptr_t prev_end;
	uint64_t bytes;
	uint32_t n;
	const char *err;
	uintptr_t at;
};

static uint32_t walk_tree(struct walk *w, struct fext *t, uint32_t parent_prio, int depth)
{
	if (!t || w->err)
		return 0;
	if (depth > 200 || prio(t) > parent_prio) {
		w->err = "treap shape broken";
		return 0;
	}
	uint32_t m = walk_tree(w, t->l, prio(t), depth + 1);
	uintptr_t a = (uintptr_t)t;
	int ri = range_find(w->km, a);
	uintptr_t lo, hi;
	if (!w->err) {
		w->at = a;
		if (t->h.state != ST_POOL || t->h.check != ck(t, t->h.g) || t->h.g < MIN_G || (a & 15) != 8)
			w->err = "extent header bad";
		else if (a <= w->prev_end && w->prev_end)
			w->err = a == w->prev_end ? "adjacent extents not coalesced" : "extents overlap";
		else if (ri < 0 || w->km->ranges[ri].kind != R_POOL)
			w->err = "extent outside the pool";
		else if ((pool_span(w->km, ri, &lo, &hi), a + (uintptr_t)t->h.g * 16 > hi - 8))
			w->err = "extent runs past its chunk";
	}
	w->prev_end = a + (uintptr_t)t->h.g * 16;
	w->bytes += (uint64_t)t->h.g * 16;
	w->n++;
	uint32_t r = walk_tree(w, t->r, prio(t), depth + 1);
	if (m < t->h.g)
		m = t->h.g;
	if (m < r)
		m = r;
	if (!w->err && t->max_g != m) {
		w->at = a;
		w->err = "subtree maximum wrong";
	}
	return m;
}

/* A cached block: in the pool, right header, not overlapping a free extent. */
static const char *check_cached(struct kmalloc_inst *km, struct cblk *b, uint32_t cpu, int cls)
{
	int ri = range_find(km, (uintptr_t)b);
	struct fext *lo, *hi;

	if (ri < 0 || km->ranges[ri].kind != R_POOL || ((uintptr_t)b & 15) != 8)
		return "cached block outside the pool";
	if (b->h.state != ST_CACHED || b->h.check != ck(b, b->h.g) || b->h.cpu != cpu)
		return "cached block header bad";
	if ((cls >= 0 && b->h.g != (uint32_t)cls) || b->h.g >= NCLS || b->h.g < MIN_G)
		return "cached block in the wrong class";
	for (struct fext *t = km->root; t;)    /* neighbours() panics on equality */
		if ((uintptr_t)t == (uintptr_t)b)
			return "cached block is also free in the pool";
		else
			t = (uintptr_t)t < (uintptr_t)b ? t->r : t->l;
	neighbours(km, (uintptr_t)b, &lo, &hi);
	if ((lo && (uintptr_t)lo + (uintptr_t)lo->h.g * 16 > (uintptr_t)b) ||
	    (hi && (uintptr_t)hi < (uintptr_t)b + (uintptr_t)b->h.g * 16))
		return "cached block overlaps a free extent";
	return NULL;
}

static const char *check_pcpu(struct kmalloc_inst *km, struct kmalloc_pcpu *pc, uint64_t *bytes,
			      uintptr_t *at)
{
	uint64_t limit = km->pool_bytes / MIN_EXT + 1;
	const char *e;

	for (uint32_t c = 0; c < NCLS; c++) {
		uint64_t n = 0, last = UINT64_MAX;
		for (struct clink *l = pc->cls[c].head; l; l = l->next) {
			struct cblk *b = CB(l);
			*at = (uintptr_t)b;
			if ((e = check_cached(km, b, pc->cpu, (int)c)))
				return e;
			if (++n > limit)
				return "cache list loops";
			if (b->stamp > last)
				return "cache list not in free order";
			last = b->stamp;
			*bytes += (uint64_t)c * 16;
		}
	}
	uint64_t n = 0;
	for (struct clink *l = __atomic_load_n(&pc->remote, __ATOMIC_ACQUIRE); l; l = l->next) {
		struct cblk *b = CB(l);
		*at = (uintptr_t)b;
		if ((e = check_cached(km, b, pc->cpu, -1)))
			return e;
		if (++n > limit)
			return "remote list loops";
		*bytes += (uint64_t)b->h.g * 16;
	}
	return NULL;
}

int kmalloc_check_i(struct kmalloc_inst *km, unsigned flags)
{
	struct walk w = { .km = km };
	struct census cs = { 0 };
	uint64_t cached = 0;
	unsigned long fl;

	if (km->magic != KM_MAGIC) {
		env_log("kmalloc_check: instance not initialised");
		return E_CORRUPT;
	}
	fl = env_lock(&km->lock);
	for (uint32_t i = 0; i < km->nranges && !w.err; i++) {
		struct kmalloc_range *r = &km->ranges[i];
		w.at = r->base;
		if ((r->base | r->end) & (PAGE - 1) || r->end <= r->base || r->kind < R_POOL || r->kind > R_META)
			w.err = "range malformed";
		else if (i && km->ranges[i - 1].end > r->base)
			w.err = "ranges overlap";
	}
	if (!w.err)
		walk_tree(&w, km->root, UINT32_MAX, 0);
	if (!w.err && (w.bytes != km->pool_free || w.n != km->nextents))
		w.err = "pool totals disagree with the extents";
	struct kmalloc_pcpu *me = pcpu_self(km);
	for (unsigned i = 0; i < ENV_MAX_CPUS && !w.err; i++) {
		struct kmalloc_pcpu *pc = __atomic_load_n(&km->pcpu[i], __ATOMIC_ACQUIRE);
		if (!pc || (pc != me && !(flags & KMALLOC_CHECK_ALL)))
			continue;
		w.err = check_pcpu(km, pc, &cached, &w.at);
	}
	/* Block headers tile the pool; the free ones are the tree's extents.
	 * Quiescent, also: the cached ones are exactly those on the lists, and
	 * per-CPU data and large blocks in the pool match their totals. */
	if (!w.err) {
		census(km, &cs, NULL);
		w.at = cs.at;
		if (cs.err)
			w.err = cs.err;
		else if (cs.live + cs.cached + cs.pool + cs.meta + cs.big != km->pool_bytes)
			w.err = "block sizes do not add up to the pool";
		else if (cs.pool != km->pool_free)
			w.err = "free blocks disagree with the pool total";
	}
	if (!w.err && (flags & KMALLOC_CHECK_ALL)) {
		w.at = 0;
		if (cs.cached != cached)
			w.err = "cached blocks in the pool disagree with the cache lists";
		else if (cs.meta != km->meta_bytes || cs.big != km->plarge_bytes)
			w.err = "per-CPU data or large blocks in the pool disagree with their totals";
	}
	env_unlock(&km->lock, fl);
	if (w.err) {
		env_log("kmalloc_check: %s at %p", w.err, (void *)w.at);
		return E_CORRUPT;
	}
	return 0;
}

/* ---- the global instance ------------------------------------------------- */

int kmalloc_global_init(const struct kmalloc_page_source *src, const struct kmalloc_clock *clk,
			uint64_t ttl)
{
	env_slot_set(ENV_SLOT_KMALLOC, env_zero_block);
	return kmalloc_init_i(&g_km, src, clk, ttl);
}

struct kmalloc_inst *kmalloc_global(void) { return &g_km; }
/* The global instance's per-CPU data is in an env slot: one load. */
static inline struct kmalloc_pcpu *g_pc(void)
{
	return env_slot_get(ENV_SLOT_KMALLOC);
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

bool kmalloc_hot_pc(uintptr_t pc)
{
	extern const char __start_kmalloc_hot[], __stop_kmalloc_hot[];
	return pc >= (uintptr_t)__start_kmalloc_hot && pc < (uintptr_t)__stop_kmalloc_hot;
}
size_t ksize(const void *p) { return ksize_i(&g_km, p); }
void kmalloc_reap(void) { kmalloc_reap_i(&g_km); }
void kmalloc_stats(struct kmalloc_stats *out) { kmalloc_stats_i(&g_km, out); }
void kmalloc_dump(void) { kmalloc_dump_i(&g_km); }
int kmalloc_check(void) { return kmalloc_check_i(&g_km, 0); }
