/* umm.h - micro memory manager: a pool of chunks, each locked on its own by
 * compare-and-swap on its header word, with a never-waiting fast path that is
 * safe from trap context. Design, header layout and lock order: docs/UMM.md.
 */
#ifndef MM_UMM_H
#define MM_UMM_H

#include "env.h"

/* Size classes served by the per-CPU caches (chunks up to 4 KiB), and the
 * slots each CPU has per class. */
#define UMM_NCLASSES 32
#define UMM_SLOTS    16

/* Per-CPU state: cached chunks per size class and counters. Only its CPU (interrupts off) touches its slots and writes the
 * cache counters; others only read them racily (umm_stats). Padded so CPUs
 * never share a cache line. */
struct umm_cpu {
	uintptr_t slot[UMM_NCLASSES][UMM_SLOTS]; /* (offset << 4) | tags of cached chunks, below top[k] */
	uint8_t top[UMM_NCLASSES];      /* entries in slot[k] */
	uint32_t gen;                   /* flush generation the hot paths accept */
	uint32_t honoured;              /* flush generation whose request was carried out */
	uint32_t lean;                  /* calls left that bypass the cache after a flush */
	uint32_t missed;                /* 1 + honoured when a wait for it timed out (set by others) */
	/* counters written by this CPU only, interrupts off (cache path) */
	uint64_t c_alloc[UMM_NCLASSES], c_free[UMM_NCLASSES];   /* per class */
	uint64_t x_net[UMM_NCLASSES];   /* bytes pushed on minus taken from transfer stacks */
	/* counters written with atomic adds (pool path) */
	uint64_t p_allocs, p_frees, p_in, p_out;
	uint64_t searches, steps, released;   /* pool searches, their steps, bytes given back */
	uint64_t failures, retries, refused;
} __attribute__((aligned(64)));

/* Free-list bins: 16 exact ones below 16 units, then 16 per power of two
 * up to 2^42 units (a two-level index as in TLSF; mm/umm_fit.c). */
#define UMM_BIN_ROWS 40
#define UMM_NBINS    (16 * UMM_BIN_ROWS)
struct umm_bin {
	env_spinlock_t lock;            /* guards head and the links of the chunks listed */
	uintptr_t head;                 /* first free chunk (0: empty) */
};

/* Transfer stack of one class: batches of cached chunks on their way from
 * the CPU that freed them to one that allocates (lock-free, docs/UMM.md). */
struct umm_xfer {
	void *head;                     /* first chunk of the top batch (bytes: umm_cpu.x_net) */
} __attribute__((aligned(64)));

typedef struct umm {
	uintptr_t base;                 /* first chunk header (base + 8 is 16-aligned) */
	uintptr_t end;                  /* end sentinel header */
	uint64_t *bitmap;               /* one bit per 16-byte unit: set at chunk starts */
	size_t bm_ready;                /* bitmap words initialised (zeroed lazily, in steps) */
	uintptr_t bm_span;              /* bytes above base they cover, below end (hot-path bound) */
	size_t bm_words;                /* bitmap words in all */
	uint64_t secret;                /* cached chunk c holds secret ^ c in payload word 0 */
	uint8_t cap[UMM_NCLASSES];      /* slots a CPU may fill per class */
	uint8_t batch[UMM_NCLASSES];    /* chunks per transfer batch (0: none) */
	size_t xfer_cap;                /* bytes the transfer stack of a class may hold */
	uint32_t flush_gen;             /* raised by a failing allocation: CPUs flush their slots */
	uint32_t magic;
	/* written rarely: on the line the hot paths read anyway */
	void *deferred;                 /* Treiber stack of chunks freed by the fast path */
	uint64_t peak;                  /* sampled peak of live bytes */
	struct umm_xfer xfer[UMM_NCLASSES];
	env_spinlock_t bm_lock;         /* serialises growth of bm_ready */
	uint64_t row_map;               /* bit r: some bin of row r is non-empty */
	/* A carve takes a chunk off its bin before its remainders are listed
	 * (maybe in a bin a search already passed): a search that found
	 * nothing while a carve was under way, or after one ended, tries again. */
	uint32_t carving;               /* carves under way */
	uint32_t carved;                /* carves completed (wraps) */
	uint32_t bin_map[UMM_BIN_ROWS]; /* bit j of row r: bin 16 r + j is non-empty */
	struct umm_bin bin[UMM_NBINS];
	uint32_t ncpu;                  /* CPU indexes served: cpu[0..ncpu) */
	/* Last: a pool built by umm_init_cpus for n CPUs lives in UMM_SIZE(n)
	 * bytes, and cpu[n..] does not exist. */
	struct umm_cpu cpu[ENV_MAX_CPUS];
} umm_t;

/* Bytes a umm_t for ncpu CPU indexes needs (sizeof(umm_t) for ENV_MAX_CPUS). */
#define UMM_SIZE(ncpu) (__builtin_offsetof(umm_t, cpu) + (size_t)(ncpu) * sizeof(struct umm_cpu))

struct umm_stats {
	uint64_t allocs;        /* successful allocations (a moving realloc adds one alloc and one free) */
	uint64_t frees;         /* successful frees */
	uint64_t live_bytes;    /* chunk bytes handed out and not yet freed */
	uint64_t peak_bytes;    /* highest sampled live_bytes (a lower bound of the true peak) */
	uint64_t failures;      /* allocations that returned NULL for lack of memory or contention */
	uint64_t lock_retries;  /* failed micro-lock attempts, waits and walk restarts */
	uint64_t refused;       /* bad input rejected: foreign/interior pointers, double frees, bad sizes */
	uint64_t parked_bytes;  /* freed chunk bytes held in CPU slots and transfer stacks (not the deferred list) */
	size_t capacity;        /* largest block the empty pool can return */
	uint64_t searches;      /* free-list searches (cache misses and blocks above 4 KiB) */
	uint64_t search_steps;  /* bins and list entries those searches examined */
	uint64_t released_bytes; /* bytes handed to env_release_pages (whole inner ranges of big free chunks, touched or not) */
};

/* Build a pool in [space, space + size). Needs size >= 4 KiB; the bitmap
 * (1/128 of the space) lives at its start and is zeroed lazily, 4 KiB at a
 * time as chunks are carved, so building the pool touches one page of it.
 * Returns 0, E_INVAL (NULL) or E_RANGE (too small, or more than 2^42
 * units). Does not zero the space. Free chunks of 256 KiB or more give
 * their inner pages back through env_release_pages once 256 KiB of them
 * were written since (a released page may read as zeros afterwards). */
int umm_init(umm_t *ctx, void *space, size_t size);
/* As umm_init, for CPU indexes 0..ncpu-1 only (1 <= ncpu <= ENV_MAX_CPUS,
 * else E_INVAL): ctx needs only UMM_SIZE(ncpu) bytes (64-aligned), so a pool
 * costs the CPUs the machine has, not ENV_MAX_CPUS. Every CPU that calls
 * into the pool must have env_cpu() < ncpu. umm_init(m, s, n) is
 * umm_init_cpus(m, s, n, ENV_MAX_CPUS). */
int umm_init_cpus(umm_t *ctx, void *space, size_t size, unsigned ncpu);

/* Slow path: may wait on micro locks. First drains the deferred list. On
 * failure it reclaims cached memory (see umm_flush; it may wait up to 250 ms
 * for other CPUs to give theirs back) and tries again. A block
 * of at least `size` bytes, 16-byte aligned, carrying `tags`; NULL if size is
 * 0 or larger than the pool (counted in refused) or nothing fits (failures).
 * Not for trap context. */
void *umm_alloc(umm_t *ctx, size_t size, uint8_t tags);
/* Fast path: never waits (try-locks only, a bounded search); safe from a
 * trap handler. NULL also under contention: the caller may retry later. */
void *umm_alloc_fast(umm_t *ctx, size_t size, uint8_t tags);
/* Slow path; `align` a power of two (<= 2^31) else NULL and an error. The
 * block keeps its alignment through umm_realloc. */
void *umm_alloc_aligned(umm_t *ctx, size_t size, size_t align, uint8_t tags);
/* Slow path. NULL p: umm_alloc(size, 0). size 0: NULL, p untouched (error).
 * Shrinks in place, grows into a free successor, else moves (tags and
 * alignment kept). On failure returns NULL and p stays valid. */
void *umm_realloc(umm_t *ctx, void *p, size_t size);
/* Slow path free; merges with free neighbours. A pointer that is not a live
 * block of this pool (foreign, interior, already freed) is logged, counted
 * and ignored. NULL is a no-op. */
void umm_free(umm_t *ctx, void *p);
/* Fast path free: never waits; may park the block in a CPU cache or on the
 * deferred list, which later slow-path calls drain. Same checks as umm_free. */
void umm_free_fast(umm_t *ctx, void *p);
/*
 * Double frees are detected when the two frees are ordered (same CPU, or the
 * second after the first returned, as seen through the caller's own
 * synchronisation): the block is then free, deferred or cached, and cached
 * blocks carry a key in their first payload word. Two frees of one pointer
 * racing on two CPUs are a data race of the caller and are not detected
 * (as in glibc, jemalloc and mimalloc). A live block whose first word
 * happens to equal its key (secret ^ address, the secret a 64-bit value
 * mixed per pool) reads as freed: its free is refused as a double free.
 */
/* Slow path: return the calling CPU's cached chunks (its slots) and every
 * transfer stack to the pool and drain the deferred list. A hart going idle, or a thread about to exit,
 * should call it: a CPU's slots (at most UMM_SLOTS chunks and about
 * min(64 KiB, pool / 1024) bytes per class) are otherwise given back only
 * when that CPU calls in again after an allocation failure raised a flush
 * request; they stay stranded if it never does. A failing slow-path
 * allocation flushes its own slots and every transfer stack before it
 * retries, so only other CPUs' slots can keep memory from it. */
void umm_flush(umm_t *ctx);
/* Bytes usable at p (>= the size asked for, the chunk's payload: a caller
 * may use all of them, and umm_realloc keeps them); 0 if p is not a live
 * block. */
size_t umm_usable_size(umm_t *ctx, const void *p);
/* Call cb for every chunk in address order (cached and parked chunks report
 * in_use false, tags 0). Safe while other CPUs allocate and free. cb returns 0 to go on,
 * > 0 to stop (returned). Returns 0 for a walk that saw no concurrent change,
 * E_BUSY when chunks changed under it (some may have been skipped or shown
 * in a stale state), E_INVAL for a NULL cb. */
int umm_iterate(umm_t *ctx, int (*cb)(void *p, size_t size, uint8_t tags, bool in_use, void *arg),
		void *arg);
/* Sum the per-CPU counters; cheap, never waits, approximate under load. */
void umm_stats(umm_t *ctx, struct umm_stats *out);
/* Chunk bytes (and, in *chunks, the chunks) in the slots of CPU index cpu:
 * what that CPU keeps cached. A racy snapshot while the CPU runs, exact
 * when it is quiet (stopped, or between calls); 0 for cpu >= the pool's
 * CPUs. Never waits. */
size_t umm_cpu_cached(umm_t *ctx, unsigned cpu, unsigned *chunks);
/* Full consistency walk; call only when no other CPU uses the pool. Returns
 * 0 or E_CORRUPT after logging the first broken invariant. */
int umm_check(umm_t *ctx);

#endif
