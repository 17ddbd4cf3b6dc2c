/* kmalloc_int.h - what the kmalloc sources share (kmalloc.c: hot paths and
 * entry points; kmalloc_cache.c: per-CPU caches and the reaper;
 * kmalloc_debug.c: the debug build's aids; kmalloc_pool.c: the pool; kmalloc_map.c: page ranges and the
 * page map that finds them by address; kmalloc_stats.c: statistics and
 * checks). Not for other modules: the contract is kmalloc.h.
 */
#ifndef MM_KMALLOC_INT_H
#define MM_KMALLOC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "env.h"
#include "err.h"
#include "kmalloc.h"

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
/* R_LFREE: a freed large block whose pages are kept (large cache): still
 * mapped, on the large list, refused by kfree as already freed. */
enum { R_POOL = 1, R_LARGE = 2, R_LFREE = 3 };
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
/* The check field of every header. A constant, so that the free hot path
 * compares a whole header word with one xor (live_tag); stray bytes pass it
 * with odds of 1 in 65536, and the state, owner and size must match too.
 * (Headers left inside larger blocks by coalescing are never ST_LIVE.) */
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
#define gran_raw_(size) (((size) + HDR + KMALLOC_REDZONE + 15) / 16)
#define MIN_G    ((uint32_t)(MIN_EXT / 16))
_Static_assert(sizeof(struct cblk) <= MIN_EXT, "cached block fits the smallest block");
_Static_assert(ENV_MAX_CPUS <= 256, "owner cpu is a byte");
_Static_assert(KMALLOC_FAST_MIN >= 1 && gran_raw_(KMALLOC_FAST_MIN) == MIN_G &&
	       gran_raw_(KMALLOC_FAST_MIN - 1) < MIN_G, "KMALLOC_FAST_MIN: the first size of class MIN_G");
/* A small block may absorb a leftover of up to MIN_G - 1 granules. */
_Static_assert((KMALLOC_SMALL_MAX + HDR + KMALLOC_REDZONE + 15) / 16 + MIN_G - 1 < NCLS,
	       "classes cover every small block");

/* 32 bytes, so the hot path indexes with one shift. Frees are not counted:
 * kmalloc_stats derives them (allocs - live, from a census of the pool).
 * oldest: no block on the list is older (a lower bound of the stamps: the
 * hot path pushes stamps >= it without touching it; a scan makes it the
 * last block's stamp), so an expiry scan skips lists with nothing expired. */
struct pcls {
	struct clink *head;
	uint64_t allocs, misses;
	uint64_t oldest;
};
_Static_assert(sizeof(struct pcls) == 32, "class entry is a power of two");

struct kmalloc_pcpu {
	uintptr_t span_lo, span_len;   /* payloads in [lo, lo+len) are in the pool */
	uint64_t now;                  /* clock at the last reap (or clock read below) */
	uint64_t live_tag;             /* header word of our live blocks, minus g and check */
	uint64_t oldest;               /* lower bound of every cls[].oldest */
	uint32_t cpu;
	uint32_t flush_req;            /* set by other CPUs: flush everything */
	uint32_t misses;               /* pool misses since the clock was read */
	uint32_t pad;
	uint64_t scanned;              /* clock at the last expiry scan */
	struct pcls cls[NCLS];         /* at offset 64, as the hot paths were tuned */
	uint64_t failures, refused;
	/* Written by other CPUs: keep it off the owner's lines. */
	char pad0[64];
	struct clink *remote;
	/* Set by kmalloc_drain_i (with flush_req), cleared by the owner's
	 * next kmalloc_service_slow (its next slow path or reap):
	 * remote frees then go to the pool, not onto `remote` (see
	 * kmalloc_remote_push). Beside remote: the pushers' line. */
	uint32_t offline;
	char pad1[52];
};

_Static_assert(__builtin_offsetof(struct kmalloc_pcpu, cls) == 64, "class table at offset 64");

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

#define CLOCK_EVERY_MISSES KMALLOC_CLOCK_MISSES

/* A wait for another CPU (the pool grower). Host threads may outnumber
 * cores, and the one waited for may not be running: give the core up now
 * and then, as env_lock does there. A hart in the kernel just spins. */
#ifndef KERNEL_BUILD
#include <sched.h>
#endif
static inline void wait_relax(unsigned *spins)
{
#ifndef KERNEL_BUILD
	if (++*spins % 16 == 0) {
		sched_yield();
		return;
	}
#else
	(void)spins;
#endif
	env_cpu_relax();
}

static inline uint64_t now_of(kmalloc_t *km)
{
	return km->clock.now ? km->clock.now(km->clock.ctx) : env_ticks();
}

/* env_cpu() < ENV_MAX_CPUS <= 256: the int cast only saves a zero extension. */
static inline struct kmalloc_pcpu *pcpu_self(kmalloc_t *km)
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

static inline uint32_t prio(const struct fext *n)
{
	uint64_t x = (uintptr_t)n * 0x9E3779B97F4A7C15ull;
	return (uint32_t)(x >> 32);
}

static inline uint32_t maxg(const struct fext *n)
{
	return n ? n->max_g : 0;
}

/* A page range from one get_pages call: a pool chunk or a large block.
 * Records live in pages of the page map (kmalloc_map.c) and are found by
 * address through it; lists chain them for walks (check, census, destroy).
 * Readers without the lock (classify) use base, end, kind and the large
 * block fields, set before the map publishes the record (release), and the
 * run bounds, which only widen (atomic). A record is reused only after the
 * map no longer points to it. */
struct kmalloc_range {
	uintptr_t base, end;
	uint32_t kind, cpu;
	struct kmalloc_range *prev, *next;
	union {
		struct {                /* R_LARGE */
			uintptr_t payload;  /* the address handed out */
			size_t req;         /* the requested size */
			void *caller;
			uint64_t stamp;     /* R_LFREE: when it was freed */
			struct kmalloc_range *lprev, *lnext;   /* R_LFREE: its bin */
		};
		struct {                /* R_POOL: the run of adjacent chunks */
			uintptr_t run_lo, run_hi;
		};
	};
};

/* ---- kmalloc_cache.c: per-CPU caches ----
 * Per-CPU data is touched by its owner only, interrupts off. */

/* Per-CPU data of cpu, a META block carved from the pool; NULL if none. */
struct kmalloc_pcpu *kmalloc_pcpu_create(kmalloc_t *km, unsigned cpu);
/* Return the owner's expired cached blocks to the pool (scan). */
void kmalloc_scan_expired(kmalloc_t *km, struct kmalloc_pcpu *pc);
/* A block of *gp granules from the pool: carve; else reap our expired
 * blocks; else grow; else reclaim every cached block. 0 if none. May turn
 * interrupts on and off again around waits (*fl is their saved state). */
uintptr_t kmalloc_carve(kmalloc_t *km, struct kmalloc_pcpu *pc, uint32_t *gp,
			size_t align, unsigned long *fl);
void kmalloc_service_slow(kmalloc_t *km, struct kmalloc_pcpu *pc);
/* Push cached-state block l onto owner o's remote-free list (any CPU,
 * interrupts off); if o was drained (offline), its remote list goes
 * straight to the pool instead of waiting for o to come back. */
void kmalloc_remote_push(kmalloc_t *km, struct kmalloc_pcpu *o, struct clink *l);
/* Slow-path housekeeping of the owner: a flush request, remote frees. The
 * clock is not read here (ticks are coarse): kmalloc_reap_i reads it, and
 * one pool miss in CLOCK_EVERY_MISSES. Two loads when there is nothing. */
static inline void kmalloc_service(kmalloc_t *km, struct kmalloc_pcpu *pc)
{
	if (__atomic_load_n(&pc->flush_req, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&pc->remote, __ATOMIC_RELAXED))
		kmalloc_service_slow(km, pc);
}

/* ---- kmalloc_debug.c: debug aids (stubs without KMALLOC_DEBUG) ---- */

#ifdef KMALLOC_DEBUG
void dbg_mark(struct hdr *h, size_t req, void *caller);
bool dbg_redzone_ok(const struct hdr *h);
void dbg_poison(struct cblk *b);
void dbg_check_poison(struct cblk *b);
bool dbg_large_redzone_ok(const struct kmalloc_range *r);
void dbg_resize(struct hdr *h, struct kmalloc_range *r, void *p, size_t size, size_t usable);
#define DBG_CALLER(h) ((h)->caller)
#else
static inline void dbg_mark(struct hdr *h, size_t req, void *caller) { }
static inline bool dbg_redzone_ok(const struct hdr *h) { return true; }
static inline void dbg_poison(struct cblk *b) { }
static inline void dbg_check_poison(struct cblk *b) { }
static inline bool dbg_large_redzone_ok(const struct kmalloc_range *r) { return true; }
static inline void dbg_resize(struct hdr *h, struct kmalloc_range *r, void *p, size_t size,
			      size_t usable) { }
#define DBG_CALLER(h) ((void *)0)
#endif

/* ---- kmalloc_pool.c: the pool (treap of free extents) ----
 * All of them with km->lock held, except kmalloc_pool_grow (none held). */

/* Free extents just below and above address a (NULL if none). */
void kmalloc_pool_neighbours(kmalloc_t *km, uintptr_t a, struct fext **lo,
			     struct fext **hi);
/* Give [a, a + 16g) to the pool, coalescing with both neighbours. */
void kmalloc_pool_put(kmalloc_t *km, uintptr_t a, uint32_t g);
/* A block of *gp granules (aligned payload; lowest fit if low, else a good
 * fit), its header written (size, check, ST_CARVED); *gp may grow by a
 * leftover too small to keep. 0 if nothing fits. */
uintptr_t kmalloc_pool_take(kmalloc_t *km, uint32_t *gp, size_t align, bool low);
/* Raise km->peak to the bytes now outside the pool. */
void kmalloc_peak_update(kmalloc_t *km);
/* Add a chunk of pages from the page source that can hold g granules at
 * alignment align; one CPU at a time. Called with no lock held. */
bool kmalloc_pool_grow(kmalloc_t *km, uint32_t g, size_t align);

/* ---- kmalloc_large.c: large blocks and the large cache ---- */

/* Hand freed large blocks back to the page source: all of them, or those
 * older than the TTL at `now`. No lock held. */
void kmalloc_lcache_release(kmalloc_t *km, bool all, uint64_t now);

/* A block of size bytes aligned to align on pages of its own (from the
 * large cache or the page source), or carved from the pool when the page
 * source says no; NULL (logged for absurd sizes) when neither has it. No
 * lock held; interrupts as the caller has them. */
void *kmalloc_alloc_large(kmalloc_t *km, size_t size, size_t align, void *caller);

/* Free p, classified without the lock as the large block r: 0, or E_FAULT
 * when a racing free got there first (nothing changed; the caller refuses
 * it). The block goes to the large cache or its pages to the page source. */
int kmalloc_free_large(kmalloc_t *km, void *p, struct kmalloc_range *r);

/* ---- kmalloc_map.c: page ranges and the page map ---- */

/* The range holding address a, or NULL. No lock needed: entries are
 * published with release stores and records are never unmapped. */
struct kmalloc_range *kmalloc_map_find(kmalloc_t *km, uintptr_t a);
/* Take the pool lock (*fl) with a free record and every map node that
 * [base, end) needs at hand, getting pages from the page source (no lock
 * held) as needed. false, with no lock held and nothing changed, if the
 * page source gives none. */
bool kmalloc_map_prepare(kmalloc_t *km, uintptr_t base, uintptr_t end, unsigned long *fl);
/* With fewer than low spare pages for the map, get pages up to high (no
 * lock held; false if the page source says no). */
bool kmalloc_map_reserve(kmalloc_t *km, uint32_t low, uint32_t high);
/* Lock held, after kmalloc_map_prepare for [t->base, t->end): a record
 * like t (base, end, kind, cpu; large blocks: payload, req, caller) in its
 * list (pool chunks: address order, run bounds set), and then every page of
 * it mapped to it. */
struct kmalloc_range *kmalloc_range_add(kmalloc_t *km, const struct kmalloc_range *t);
/* Lock held: unmap r's pages, unlist it, keep the record for reuse. */
void kmalloc_range_del(kmalloc_t *km, struct kmalloc_range *r);
/* Bounds of r's run of adjacent pool chunks (r: a pool chunk). */
static inline void kmalloc_run_of(const struct kmalloc_range *r, uintptr_t *lo, uintptr_t *hi)
{
	*lo = __atomic_load_n(&r->run_lo, __ATOMIC_RELAXED);
	*hi = __atomic_load_n(&r->run_hi, __ATOMIC_RELAXED);
}
/* Lock held: the lists, the records and the map agree (every page of every
 * range maps to it, nothing else is mapped). NULL or the first problem. */
const char *kmalloc_map_check(kmalloc_t *km, uintptr_t *at);
/* QUIESCENT: every page to the page source (large blocks, chunks, the map). */
void kmalloc_map_destroy(kmalloc_t *km);

#endif
