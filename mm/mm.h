/* mm.h - LiSA-style shared memory areas: offset pointers, a static part and a
 * dynamic part of chunks, a reader/writer lock inside the area, growth.
 *
 * One area is mapped at different addresses by different attachers
 * (partitions, the kernel), so only offsets (mm_ptr_t) are stored in it.
 * Everything read from the area is untrusted: a hostile attacher may write
 * anything into it at any time. Every offset and size is checked against the
 * size this attacher has mapped before use; garbage yields an error code,
 * MM_NULL or NULL, never an access outside the mapping or an endless loop.
 *
 * Layout (docs/MM.md): [header MM_HDR_SIZE][static part][dynamic part].
 *
 * Handles (mm_t) live in the attacher's private memory and are used by one
 * thread or hart at a time: each thread attaches its own handle. Lock
 * recursion is counted per handle.
 *
 * This file and mm.c are freestanding (string.h and __atomic builtins only)
 * so that both the kernel and U-mode partitions compile them; the
 * environment is reached only through struct mm_env's hooks.
 */
#ifndef MM_MM_H
#define MM_MM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef uint32_t mm_ptr_t;          /* offset from the start of the area */
#define MM_NULL ((mm_ptr_t)0)       /* offset 0 is the header: never valid */

#define MM_ALIGN      16            /* user data alignment */
#define MM_HDR_SIZE   2048          /* area header; the static part follows */
/* Attachers (handles) per area at once, each with a slot and a reader bit:
 * one per CPU (ENV_MAX_CPUS, mm/env.h: 64) and as many again for the
 * kernel's and the creators' own handles. mm_test.c checks the relation at
 * compile time, where both headers are seen (mm.c does not include env.h). */
#define MM_MAX_ATTACH 128
#define MM_MAX_SIZE   ((size_t)1 << 31)  /* largest area (offsets stay < 2^31) */
#define MM_DEFAULT_MAX ((size_t)16 << 20) /* max size when the env gives none */

/* mm_lock modes and its positive result. */
#define MM_LOCK_RD 1
#define MM_LOCK_RW 2
/* mm_lock succeeded (the lock is held) but a previous holder died with the
 * lock held: the area may be inconsistent; run mm_check. Reported once, to
 * the first explicit mm_lock after the death. */
#define MM_LOCK_OWNER_DIED 1
/* Without env->lock: polls of the lock word before mm_lock gives up with
 * E_TIMEOUT (between relax calls; about a second of pause on a host CPU). */
#define MM_WAIT_SPINS (1u << 25)
/* How long mm_lock retries a lock hook that answers E_BUSY (env->now_us's
 * microseconds), before it gives up with E_TIMEOUT. */
#define MM_LOCK_WAIT_US 10000000u

/*
 * The environment: how areas are found, mapped and grown, and how a waiter
 * waits. Hooks receive ctx. Each attacher reserves virtual room of `max`
 * bytes at attach time so that growth never moves its base.
 *
 * attach: find or create the area `name`; on creation its size is `initial`
 *   (zero-filled). Reserve `max` bytes of address room at *base, map at least
 *   `initial` (or the existing area's current size) and report it in *mapped;
 *   *created tells whether this call created it. 0 or a negative error.
 * grow: make the area at least new_size bytes (called with the RW lock held)
 *   and map it here; *mapped = bytes now mapped. NULL: the area never grows.
 * ensure_mapped: another attacher grew the area; map at least `size` bytes
 *   here, *mapped as for grow. NULL: fail when the area outgrew the mapping.
 * detach: unmap this attacher; `last` is a hint only (read from the shared
 *   header): the environment keeps its own attach count and frees the area
 *   when the last attacher leaves. May be NULL.
 * relax: called while waiting for the lock (yield, pause); NULL: cpu relax.
 * is_alive: is attacher `id` still running? Lets a waiter recover a lock held
 *   by a dead attacher without the kernel's help. NULL: never asked.
 * lock, unlock: a lock whose authority lives outside the area (the kernel's
 *   record, kernel/shm.c); both or neither. lock(ctx, base, mode) makes one
 *   attempt to take the lock of the area at base for this attacher: 0 or
 *   MM_LOCK_OWNER_DIED (held), E_BUSY (others hold it: mm_lock relaxes and
 *   tries again, for at most MM_LOCK_WAIT_US by now_us, or MM_WAIT_SPINS
 *   attempts without it, then E_TIMEOUT) or another negative error (not
 *   held: E_TIMEOUT, E_CORRUPT, E_NOENT, ...). unlock(ctx, base) drops it.
 * now_us: the clock of that bound (microseconds); NULL: count attempts. With
 *   them the lock word and the slots in the area are never trusted: a
 *   hostile attacher's writes there change nothing. Without them the lock
 *   word is the authority, which is only sound between attachers that trust
 *   each other (host threads, tests); even then every wait is bounded
 *   (MM_WAIT_SPINS, E_TIMEOUT) and forged words are detected and released.
 * self_id: this attacher's id (partition id), < UINT32_MAX - 1.
 * max_size: max size for mm_create(), which has no such argument; 0 means
 *   MM_DEFAULT_MAX.
 */
struct mm_env {
	int (*attach)(void *ctx, const char *name, size_t initial, size_t max,
		      void **base, size_t *mapped, bool *created);
	int (*grow)(void *ctx, void *base, size_t new_size, size_t *mapped);
	int (*ensure_mapped)(void *ctx, void *base, size_t size, size_t *mapped);
	int (*detach)(void *ctx, void *base, size_t mapped, bool last);
	void (*relax)(void);
	bool (*is_alive)(void *ctx, uint32_t id);
	int (*lock)(void *ctx, void *base, int mode);
	int (*unlock)(void *ctx, void *base);
	uint64_t (*now_us)(void);
	uint32_t self_id;
	size_t max_size;
	void *ctx;
};

/* A handle: private to one attacher and one thread. Fields are internal;
 * the type is public so callers can keep handles in their own memory
 * (mm_attach_base). */
typedef struct mm {
	uint8_t *base;
	size_t mapped;       /* bytes mapped here (ensure_mapped/grow update it) */
	size_t room;         /* reserved address room: the most we may map */
	size_t lim;          /* validated area size snapshot: the access bound */
	uint32_t max;        /* max size, trusted copy (min of header and room) */
	uint32_t dyn;        /* offset of the dynamic part, trusted copy */
	uint32_t slot;       /* attacher slot in the area, MM_MAX_ATTACH: none */
	int mode;            /* lock mode held, 0 if none */
	unsigned depth;      /* lock recursion */
	int err;             /* last error (mm_last_error) */
	bool pooled;         /* from mm.c's handle pool */
	bool died;           /* env->lock said MM_LOCK_OWNER_DIED, not told yet */
	struct mm_env env;
} mm_t;

/* Area statistics (copies of untrusted counters, clamped). */
struct mm_stats {
	size_t size, max_size, static_size;
	size_t used;         /* bytes in allocated chunks, headers included */
	size_t free;         /* bytes in free chunks, headers included */
	uint64_t allocs, frees, grows, failures;
	uint32_t nattach, generation, deaths;
};

/* ---- creation and attachment ------------------------------------------- */

/* Default environment for mm_create (set once by the kernel or the
 * partition runtime before use; the pointer is kept, not copied). */
void mm_set_default_env(const struct mm_env *env);

/* Create the area `name` (header + static_size + dynamic_size bytes, growing
 * up to max_size) or attach to it if it exists. Returns a handle from a
 * small static pool, or NULL: bad arguments, no handle, attach failed, the
 * existing area is malformed, or it has MM_MAX_ATTACH attachers. */
mm_t *mm_create_env(const struct mm_env *env, const char *name,
		  size_t static_size, size_t dynamic_size, size_t max_size);
/* mm_create_env with the default environment and its max_size. */
mm_t *mm_create(const char *name, size_t static_size, size_t dynamic_size);

/* Format an area in caller memory: `size` bytes now (16-aligned, room for a
 * header, the static part and one chunk), up to `max` later. Zeroes the
 * static part. 0, E_INVAL, E_RANGE or E_ALIGN (base not 16-aligned). */
int mm_init_area(void *base, size_t size, size_t max, size_t static_size);
/* Attach handle `h` (caller memory) to a formatted area at base, of which
 * `mapped` bytes are mapped and `room` reserved. env may be NULL (no growth,
 * no name, no hooks; self_id 0). 0, E_INVAL, E_CORRUPT (bad header),
 * E_RANGE (area larger than the mapping or room), E_BUSY (no free slot;
 * with env->lock an attacher needs no slot, so a full table is no error). */
int mm_attach_base(mm_t *h, void *base, size_t mapped, size_t room,
		   const struct mm_env *env);
/* Leave the area: releases the slot, calls env->detach and returns a pooled
 * handle to the pool. E_BUSY if the handle holds the lock (nothing changes).
 * The last detach frees the area (the environment's job). */
int mm_detach(mm_t *mm);

/* ---- locking -------------------------------------------------------------- */

/* Take the area lock in `mode`: through env->lock when the environment has
 * one, else on the lock word, waiting (env->relax) at most MM_WAIT_SPINS
 * polls. Recursive per handle: a nested RD inside RW is allowed, RW inside
 * RD is refused (E_DENIED, no upgrade). The outermost lock checks the header
 * and maps the whole current area (ensure_mapped). Returns 0,
 * MM_LOCK_OWNER_DIED (held; see above), E_INVAL, E_DENIED, E_TIMEOUT (the
 * holders did not let go in time: not held), E_CORRUPT (header garbage or
 * a lock word no attacher can have made: not held), E_RANGE/E_NOMEM (could
 * not map the area: not held), or env->lock's error. */
int mm_lock(mm_t *mm, int mode);
/* Undo one mm_lock. E_INVAL if not held. The outermost unlock releases
 * the lock (env->unlock's error, if any, is not reported: the hold is
 * gone from this handle either way). */
int mm_unlock(mm_t *mm);

/* Kernel side: attacher `id` died. Releases every lock hold of its slots in
 * the area at base (`mapped` bytes mapped), frees the slots, and if it held
 * the lock marks the area so the next mm_lock returns MM_LOCK_OWNER_DIED.
 * Holds of slots no attacher owns (entry 0 or being recovered: a forged
 * or stale word) are released too. Only the header (the first MM_HDR_SIZE
 * bytes) is touched. Returns the number of slots released, or E_CORRUPT /
 * E_INVAL. */
int mm_area_owner_died(void *base, size_t mapped, uint32_t id);

/* ---- allocation (each takes the RW lock itself, recursively) ----------- */

/* A 16-byte aligned block of `size` bytes in the dynamic part, growing the
 * area when nothing fits. MM_NULL on failure (mm_last_error tells why:
 * E_INVAL, E_NOMEM, E_CORRUPT, E_DENIED when holding only RD). */
mm_ptr_t mm_alloc(mm_t *mm, size_t size);
/* Resize p: in place when possible, else allocate, copy the old requested
 * bytes (not the whole chunk) and free p. p == MM_NULL: mm_alloc; size 0:
 * mm_free and MM_NULL. MM_NULL on failure, p unchanged. */
mm_ptr_t mm_realloc(mm_t *mm, mm_ptr_t p, size_t size);
/* Free p (coalescing with free neighbours). MM_NULL: no-op, 0. E_INVAL for
 * an offset that is not an allocated block (double free), E_CORRUPT when
 * the neighbours' metadata is broken; nothing changes then. */
int mm_free(mm_t *mm, mm_ptr_t p);

/* ---- addresses (no locking: bounds are this handle's last view) -------- */

/* The address of offset p, or NULL unless p lies in the static or dynamic
 * part (header excluded) of the area as last validated. */
void *mm_addr(mm_t *mm, mm_ptr_t p);
/* The same for the range [p, p + len). Neither checks alignment: an offset
 * read from the area may be forged, so check p % alignof(T) before using the
 * result as a T * (the mm_list calls do). */
void *mm_addr_n(mm_t *mm, mm_ptr_t p, size_t len);
/* The offset of an address in the static or dynamic part, or MM_NULL. */
mm_ptr_t mm_ptr(mm_t *mm, const void *addr);
/* The static part (16-aligned), or NULL for an area without one. */
void *mm_static(mm_t *mm);
size_t mm_static_size(mm_t *mm);

/* ---- inspection ------------------------------------------------------------ */

/* Free bytes now plus the room growth can still add (an upper bound on what
 * can be allocated, headers included). 0 on error. Takes RD itself. */
size_t mm_available(mm_t *mm);
/* Walk every chunk and free list; 0 or E_CORRUPT at the first broken
 * invariant (mm_last_error keeps it too). Takes RD itself. */
int mm_check(mm_t *mm);
int mm_stats(mm_t *mm, struct mm_stats *st);
/* The error of the last failed call on this handle (0 if none yet). */
int mm_last_error(mm_t *mm);

/* ---- offset-based intrusive lists -----------------------------------------
 * A head and its nodes live in the area (static or dynamic part) and link by
 * offsets; an empty list points to itself. Links read from the area are
 * checked (in range, next->prev == node); a broken link ends a walk early and
 * makes add/del fail with E_CORRUPT without changing anything. Walks stop
 * after at most area-size / 8 steps, so a cycle cannot hang them.
 * Modifying calls need the RW lock held by the caller; walks need RD. */
struct mm_list {
	mm_ptr_t next, prev;
};

int mm_list_init(mm_t *mm, struct mm_list *head);
int mm_list_add(mm_t *mm, struct mm_list *head, struct mm_list *node);
int mm_list_add_tail(mm_t *mm, struct mm_list *head, struct mm_list *node);
int mm_list_del(mm_t *mm, struct mm_list *node);
bool mm_list_empty(mm_t *mm, struct mm_list *head);
/* The node after pos in the list at head, NULL at the end or a broken link. */
struct mm_list *mm_list_next(mm_t *mm, struct mm_list *head, struct mm_list *pos);
size_t mm_list_bound(mm_t *mm);

#define mm_list_entry(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define mm_list_for_each(mm, pos, head)                                      \
	for (size_t mm_b__ = ((pos) = mm_list_next(mm, head, head),          \
			      mm_list_bound(mm));                             \
	     (pos) && mm_b__; (pos) = mm_list_next(mm, head, pos), mm_b__--)

/* Safe against deleting pos inside the loop body. */
#define mm_list_for_each_safe(mm, pos, n, head)                              \
	for (size_t mm_b__ = ((pos) = mm_list_next(mm, head, head),          \
			      (n) = (pos) ? mm_list_next(mm, head, pos) : NULL, \
			      mm_list_bound(mm));                             \
	     (pos) && mm_b__;                                                 \
	     (pos) = (n), (n) = (pos) ? mm_list_next(mm, head, pos) : NULL,  \
	     mm_b__--)

#endif
