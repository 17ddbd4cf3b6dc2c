/* kmalloc.h - kernel object allocator: per-CPU exact-size caches with a TTL,
 * an address-ordered always-coalesced pool, large blocks on their own pages
 * (small ones kept a while after a free for reuse: the large cache).
 *
 * The allocator is an instance (kmalloc_t) drawing pages from a
 * caller-supplied page source; kmalloc()/kfree()/... are thin wrappers over
 * one global instance set up by kmalloc_global_init(). See docs/KMALLOC.md.
 *
 * Concurrency contract: any CPU may call any function at any time, except the
 * functions marked QUIESCENT, which need that no other CPU uses the instance
 * meanwhile. A CPU answers another CPU's flush request (made before an
 * allocation fails) at its next slow path or kmalloc_reap, not on a cache
 * hit. Two threads that run at the same time must have different env_cpu()
 * indexes (true in the kernel: one index per hart). Alignment of every block
 * is at least 16 bytes.
 *
 * Interrupts: the cache-hit paths of kmalloc, kfree, kmalloc_i and kfree_i
 * leave interrupts on (saving and restoring them is a fifth of their cost);
 * every other path turns them off around per-CPU data. So no interrupt
 * handler may call into an instance: an interrupt that stopped a CPU in a
 * hot path would find that CPU's cache mid-update. The kernel's reaper runs
 * at a safe point the tick asks for, not in the tick (kernel/mem.c).
 */
#ifndef MM_KMALLOC_H
#define MM_KMALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"

/* Where pages come from. get_pages returns `npages` contiguous, page-aligned,
 * writable pages or NULL; put_pages takes back exactly what one get_pages
 * call returned (same va, same npages). Both are called without any kmalloc
 * lock held and with interrupts as the caller of kmalloc left them; they may
 * call kmalloc themselves. Besides pool chunks and large blocks, kmalloc
 * takes single pages for its page map (nodes, range records), kept until
 * kmalloc_destroy_i. */
struct kmalloc_page_source {
	void *(*get_pages)(void *ctx, size_t npages);
	void (*put_pages)(void *ctx, void *va, size_t npages);
	void *ctx;
};

/* Time for the TTL of cached blocks; NULL `now` means env_ticks(). */
struct kmalloc_clock {
	uint64_t (*now)(void *ctx);
	void *ctx;
};

#ifdef KMALLOC_DEBUG
#define KMALLOC_HDR 24          /* size/state/cpu/check + requested size + caller */
#define KMALLOC_REDZONE 8       /* at least this many guard bytes after a block */
#else
#define KMALLOC_HDR 8
#define KMALLOC_REDZONE 0
#endif
#define KMALLOC_GRANULE 16
/* Requests up to this size are small: exact-size cache, carved from the pool.
 * Larger ones get their own pages. */
#define KMALLOC_SMALL_MAX ENV_PAGE_SIZE
/* The smallest request the cache-hit path serves: smaller ones (1-8 bytes
 * in the normal build) get the smallest block too but through the slow
 * path, which keeps the hit path at its instruction count (they compute a
 * class below the smallest block). A caller that asks for many tiny
 * blocks (the host malloc shim) asks for this size instead: same block. */
#define KMALLOC_FAST_MIN \
	(16 * ((KMALLOC_HDR + 24 + 15) / 16) - KMALLOC_HDR - KMALLOC_REDZONE - 15)
/* Size classes: block size in granules (header + payload [+ red zone]). */
#define KMALLOC_NCLASSES \
	((KMALLOC_SMALL_MAX + KMALLOC_HDR + KMALLOC_REDZONE + 15) / 16 + 4)
/* A CPU reads the clock at kmalloc_reap and at one pool miss in this many
 * (so a CPU that never reaps still ages its cache), not on every call. */
#define KMALLOC_CLOCK_MISSES 64
/* Page map: a radix tree over page numbers, KMALLOC_MAP_LEVELS levels of
 * 512 slots; 36 bits of page number (48-bit addresses), the bits above are
 * checked against the range found. */
/* Freed large blocks of up to KMALLOC_LCACHE_PAGES pages keep their pages
 * for reuse by a later large request of about their size (binned by pages),
 * up to KMALLOC_LCACHE_MIN bytes plus the high-water of live large blocks
 * (so pages that were in use at once, not more); the oldest go back
 * to the page source when over that bound, once older than the TTL (at a
 * large free or kmalloc_reap_i), and all of them before an allocation
 * fails and at kmalloc_reap_all_i. Each handing back to the page source
 * of a host (madvise, TLB shootdown, page faults on reuse) costs more than
 * the block's use. */
#define KMALLOC_LCACHE_PAGES 16
#define KMALLOC_LCACHE_MIN   ((uint64_t)1 << 20)
#define KMALLOC_MAP_BITS   9
#define KMALLOC_MAP_LEVELS 4

struct kmalloc_class_stats {
	uint64_t allocs;     /* blocks handed out */
	uint64_t frees;      /* blocks given back: allocs minus the live blocks a
			      * census of the pool finds (not counted on kfree) */
	uint64_t hits;       /* allocations served from a per-CPU cache */
	uint64_t misses;     /* allocations carved from the pool */
	uint64_t cached;     /* blocks now in caches or remote-free lists */
};

/* About 10 KiB: keep it off small stacks. Sizes in bytes. Class c holds
 * blocks of c * 16 bytes including the header. kmalloc_stats walks every
 * block of the pool (census): for monitoring and tests, not hot loops. */
struct kmalloc_stats {
	struct kmalloc_class_stats cls[KMALLOC_NCLASSES];
	uint64_t live_bytes;    /* live blocks (small: block size; large: pages) */
	uint64_t cached_bytes;  /* blocks in caches and remote lists */
	uint64_t pool_free_bytes; /* free extents in the pool */
	uint64_t peak_bytes;    /* high-water of live + cached (bytes outside the pool) */
	uint64_t heap_bytes;    /* pages held from the page source (pool + large) */
	uint64_t meta_bytes;    /* per-CPU data (carved from the pool) */
	uint64_t map_bytes;     /* page map: tree nodes, range records, spare
				 * pages (pages of their own from the page source) */
	uint64_t large_allocs, large_frees;
	uint64_t large_cached_bytes;  /* freed large blocks kept for reuse (in heap_bytes) */
	uint32_t large_cached;        /* ... how many */
	uint64_t failures;      /* allocations that returned NULL for lack of memory */
	uint64_t refused;      /* kfree/krealloc/ksize calls refused */
	uint32_t pool_extents;  /* free extents in the pool */
	uint32_t pool_runs;     /* runs of adjacent pool chunks: once everything
				 * is freed and reaped, pool_extents == pool_runs,
				 * plus at most one per CPU whose per-CPU data
				 * (carved from the pool) splits a run */
	uint32_t cpus;          /* CPUs with per-CPU data */
	uint32_t ranges;        /* page ranges tracked (pool chunks + large blocks) */
	uint32_t pool_chunks;   /* of them pool chunks */
};

/* The env slot (mm/env.h) that holds the global instance's per-CPU
 * pointer for the calling CPU: kmalloc's own slot number. */
#define KMALLOC_ENV_SLOT 0
_Static_assert(KMALLOC_ENV_SLOT < ENV_NSLOTS, "the env provides kmalloc's slot");

/* Private state; fields are internal. */
struct kmalloc_pcpu;
struct kmalloc_range;
typedef struct kmalloc_inst kmalloc_t;
struct kmalloc_inst {
	struct kmalloc_pcpu *pcpu[ENV_MAX_CPUS];   /* first: the hot path indexes it */
	struct kmalloc_page_source src;
	struct kmalloc_clock clock;
	uint64_t ttl;
	size_t grow_min_pages;
	uint64_t flush_wait;
	env_spinlock_t lock;            /* the pool lock: tree, map writes, lists, totals */
	uint32_t growing;               /* one CPU at a time takes pages (grow) */
	void *root;                     /* pool: treap of free extents by address */
	uint32_t nchunks, nlarge, nextents;
	struct kmalloc_range *chunks;   /* pool chunks in address order */
	struct kmalloc_range *large;    /* large blocks, any order */
	struct kmalloc_range *rfree;    /* unused range records */
	void *rpages, *spare;           /* record pages; spare pages for the map */
	uint32_t nspare;
	uint64_t map_bytes;
	uint64_t heap_bytes, meta_bytes, pool_bytes, pool_free, large_bytes, plarge_bytes, peak;
	uint64_t large_allocs, large_frees;
	/* Freed large blocks kept (KMALLOC_LCACHE_PAGES): bin b holds blocks
	 * of b + 1 pages, newest at the head; under the pool lock, lc_n also
	 * read without it. */
	struct kmalloc_range *lc_head[KMALLOC_LCACHE_PAGES], *lc_tail[KMALLOC_LCACHE_PAGES];
	uint32_t lc_n;
	uint64_t lc_bytes, large_peak;   /* kept bytes; high-water of large_bytes */
	uint32_t magic;
	bool in_slot;                   /* env slot KMALLOC_ENV_SLOT caches pcpu[env_cpu()] */
	/* Page map root: written under the pool lock with release stores, read
	 * without a lock (kfree's classification). */
	void *map[1u << KMALLOC_MAP_BITS];
};

/* ---- instance API ---------------------------------------------------------- */

/* Set up `km` (caller memory, any content) on a page source. `clk` may be NULL
 * (env_ticks). A cached block returns to the pool once it has been cached for
 * `ttl` ticks (0: at the next kmalloc_reap_i). Takes no pages yet.
 * Returns 0, or E_INVAL (NULL km/src/get_pages/put_pages). */
int kmalloc_init_i(kmalloc_t *km, const struct kmalloc_page_source *src,
		   const struct kmalloc_clock *clk, uint64_t ttl);
/* Default of the smallest pool growth step, in pages. */
#define KMALLOC_GROW_MIN_PAGES 4
/* Tuning: the pool grows by at least `grow_min_pages` (default above) and by at
 * least 1/16 of the heap; a failing allocation waits up to `flush_wait` ticks
 * (default 0) for other CPUs to flush their caches on request. */
void kmalloc_tune_i(kmalloc_t *km, size_t grow_min_pages, uint64_t flush_wait);
/* QUIESCENT. Return every page to the page source; `km` is unusable after. */
void kmalloc_destroy_i(kmalloc_t *km);

/* NULL for size 0 (no log) or when no memory is left even after reclaiming
 * every cached block (counted in failures). */
void *kmalloc_i(kmalloc_t *km, size_t size);
void *kzalloc_i(kmalloc_t *km, size_t size);
/* NULL (and a log line) when n * size overflows. */
void *kcalloc_i(kmalloc_t *km, size_t n, size_t size);
/* p NULL: kmalloc; size 0: kfree, returns NULL. On failure returns NULL and
 * leaves p untouched. A refused p (see kfree_i) gives NULL. */
void *krealloc_i(kmalloc_t *km, void *p, size_t size);
/* align: a power of two (E_ALIGN otherwise: NULL and a log line). */
void *kmalloc_aligned_i(kmalloc_t *km, size_t size, size_t align);
/* Free p (NULL: nothing). Returns 0, or refuses with a log line and no
 * change: E_FAULT (not from this heap, or a freed large block), E_EXIST
 * (double free), E_INVAL (pointer into a block), E_CORRUPT (header or, in
 * debug builds, red zone or poison damaged). */
int kfree_i(kmalloc_t *km, void *p);
/* Usable bytes of a live block; 0 for NULL or a refused pointer. */
size_t ksize_i(kmalloc_t *km, const void *p);
/* The calling CPU: take its remote frees, act on flush requests, and return
 * cached blocks older than the TTL to the pool (and kept large blocks older
 * than the TTL to the page source). Call it periodically on every
 * CPU, never from an interrupt handler (the kernel: at each hart's safe
 * point after every tenth tick, kernel/mem.c). */
void kmalloc_reap_i(kmalloc_t *km);
/* The calling CPU, before it goes down (a hart that stops itself, CPU
 * hot-plug): every block of its cache and of its remote-free list goes back
 * to the pool, and until the CPU's next slow-path allocation or
 * kmalloc_reap_i, other CPUs' frees of its blocks go to the pool too (not
 * onto its remote list), so nothing stays stranded on a CPU that is off.
 * Any context but an interrupt handler; takes the pool lock, interrupts
 * off meanwhile; other CPUs may run on. The CPU keeps its per-CPU data
 * (small, in the pool; blocks it allocated still name it as owner) and
 * may allocate again at any time: its caches refill from the pool. Not
 * done: blocks it allocated and that are still live stay live; large
 * blocks and the pool are not per-CPU and are not touched; no pages go
 * back to the page source (the pool keeps them). */
void kmalloc_drain_i(kmalloc_t *km);
/* QUIESCENT. Return every cached block of every CPU to the pool, and every
 * kept large block to the page source. */
void kmalloc_reap_all_i(kmalloc_t *km);
/* Snapshot: the per-CPU allocation counters and a census of the pool under
 * the pool lock (under load the two are not one instant; quiescent, exact). */
void kmalloc_stats_i(kmalloc_t *km, struct kmalloc_stats *out);
/* Bytes (headers included) of the blocks CPU index cpu holds: its cache
 * lists and its remote list (its own blocks other CPUs freed to it), the
 * latter also in *remote. Only for a CPU that does not run (stopped, or
 * drained and idle): nobody else takes from its lists, others only push on
 * the remote list, so the walk from a snapshot of its head is safe. */
uint64_t kmalloc_cpu_cached_i(kmalloc_t *km, unsigned cpu, uint64_t *remote);
void kmalloc_dump_i(kmalloc_t *km);
/* Walk the ranges and the page map (every page of a range leads to it, no
 * other page is mapped), the free-extent tree, every block of the pool
 * (headers must tile it) and the calling CPU's cache and remote list (all CPUs' with
 * KMALLOC_CHECK_ALL, which is QUIESCENT and also checks that the cached
 * blocks are exactly those on the lists and that per-CPU data and large
 * blocks in the pool match their totals). Returns 0 or E_CORRUPT after
 * logging the first problem. */
#define KMALLOC_CHECK_ALL 1u
int kmalloc_check_i(kmalloc_t *km, unsigned flags);

/* ---- the global instance ------------------------------------------------- */

/* Once, before any kmalloc; same contract as kmalloc_init_i. */
int kmalloc_global_init(const struct kmalloc_page_source *src,
			const struct kmalloc_clock *clk, uint64_t ttl);
kmalloc_t *kmalloc_global(void);

void  *kmalloc(size_t size);
void  *kzalloc(size_t size);
void  *kcalloc(size_t n, size_t size);
void  *krealloc(void *p, size_t size);
void  *kmalloc_aligned(size_t size, size_t align);
void   kfree(void *p);
size_t ksize(const void *p);
void   kmalloc_reap(void);
void   kmalloc_drain(void);    /* kmalloc_drain_i on the global instance */
void   kmalloc_stats(struct kmalloc_stats *out);
void   kmalloc_dump(void);
int    kmalloc_check(void);

#endif
