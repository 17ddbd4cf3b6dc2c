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

/* Per-CPU state: parked chunks per size class, the search start (rover) and
 * counters. Only its CPU (interrupts off) fills slots and writes the
 * counters; other CPUs only empty slots, by compare-and-swap (docs/UMM.md).
 * Padded so CPUs never share a cache line. */
struct umm_cpu {
	uint32_t slot[UMM_NCLASSES][UMM_SLOTS]; /* unit index + 1 of a parked chunk; 0: empty */
	uint8_t top[UMM_NCLASSES];      /* slots at and above top[k] are empty */
	uint8_t own;                    /* 1 + this CPU's index: the owner field of its parked chunks */
	uintptr_t rover;                /* chunk to start the next search at (0: unset) */
	unsigned victim;                /* CPU last stolen from */
	/* depot: overflow of the slots, lists per class under `lock` */
	env_spinlock_t lock;            /* guards head[], count[], cached; never waited on by the fast path */
	uint32_t cached;                /* bytes in the depot */
	void *head[UMM_NCLASSES];
	uint16_t count[UMM_NCLASSES];   /* entries in head[k]; read racily by stealers */
	/* counters written by this CPU only, interrupts off (cache path) */
	uint64_t c_allocs, c_frees, c_in, c_out;
	/* counters written with atomic adds (pool path) */
	uint64_t p_allocs, p_frees, p_in, p_out;
	uint64_t failures, retries, errors;
} __attribute__((aligned(64)));

typedef struct umm {
	uintptr_t base;                 /* first chunk header (base + 8 is 16-aligned) */
	uintptr_t end;                  /* end sentinel header */
	uint64_t *bitmap;               /* one bit per 16-byte unit: set at chunk starts */
	uint8_t cap[UMM_NCLASSES];      /* slots a CPU may fill per class */
	size_t depot_cap;               /* bytes a CPU depot may hold per class */
	void *deferred;                 /* Treiber stack of chunks freed by the fast path */
	uint64_t peak;                  /* sampled peak of live bytes */
	uint32_t magic;
	unsigned seen;                  /* 1 + highest CPU index that parked a chunk */
	struct umm_cpu cpu[ENV_MAX_CPUS];
} umm_t;

struct umm_stats {
	uint64_t allocs;        /* successful allocations (a moving realloc adds one alloc and one free) */
	uint64_t frees;         /* successful frees */
	uint64_t live_bytes;    /* chunk bytes handed out and not yet freed */
	uint64_t peak_bytes;    /* highest sampled live_bytes (a lower bound of the true peak) */
	uint64_t failures;      /* allocations that returned NULL for lack of memory or contention */
	uint64_t lock_retries;  /* failed micro-lock attempts, waits and walk restarts */
	uint64_t errors;        /* bad input rejected: foreign/interior pointers, double frees, bad sizes */
	uint64_t parked_bytes;  /* freed chunk bytes held in CPU caches (not the deferred list) */
	size_t capacity;        /* largest block the empty pool can return */
};

/* Build a pool in [space, space + size). Needs size >= 4 KiB; the bitmap
 * (1/128 of the space) lives at its start. Returns 0, E_INVAL (NULL) or
 * E_RANGE (too small, or more than 2^42 units). Does not zero the space. */
int umm_init(umm_t *ctx, void *space, size_t size);

/* Slow path: may wait on micro locks. First drains the deferred list. A block
 * of at least `size` bytes, 16-byte aligned, carrying `tags`; NULL if size is
 * 0 or larger than the pool (counted as errors) or nothing fits (failures).
 * Not for trap context. */
void *umm_alloc(umm_t *ctx, size_t size, uint8_t tags);
/* Fast path: never waits (try-locks only, bounded walk); safe from a trap
 * handler. NULL also under contention: the caller may retry later. */
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
/* Bytes usable at p (>= the size asked for); 0 if p is not a live block. */
size_t umm_usable_size(umm_t *ctx, const void *p);
/* Call cb for every chunk in address order (parked chunks report in_use
 * false). Safe while other CPUs allocate and free. cb returns 0 to go on,
 * > 0 to stop (returned). Returns 0 for a walk that saw no concurrent change,
 * E_BUSY when chunks changed under it (some may have been skipped or shown
 * in a stale state), E_INVAL for a NULL cb. */
int umm_iterate(umm_t *ctx, int (*cb)(void *p, size_t size, uint8_t tags, bool in_use, void *arg),
		void *arg);
/* Sum the per-CPU counters; cheap, never waits, approximate under load. */
void umm_stats(umm_t *ctx, struct umm_stats *out);
/* Full consistency walk; call only when no other CPU uses the pool. Returns
 * 0 or E_CORRUPT after logging the first broken invariant. */
int umm_check(umm_t *ctx);

#endif
