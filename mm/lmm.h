/* lmm.h - list-based memory manager (Flux OSKit LMM API, 64-bit) with an
 * address-ordered, size-augmented treap of free blocks per region.
 *
 * Memory is described as regions (flags, priority); free memory inside them
 * is a set of blocks whose bookkeeping lives inside the free bytes, so LMM
 * needs no memory of its own. The caller supplies lmm_t and every
 * lmm_region_t (static storage is fine) and must keep them alive.
 *
 * Granule: LMM_GRANULE (32) bytes, the size of one free-block node. Every
 * free block and every allocation starts on a granule boundary and is a
 * multiple of it; allocation sizes are rounded up, so the waste per
 * allocation is at most LMM_GRANULE - 1 bytes and zero for sizes that are
 * multiples of LMM_GRANULE. Byte 0 .. LMM_GRANULE-1 of the address space is
 * never used (a node there would be NULL).
 *
 * Not thread-safe: callers serialise (see mm/pmem.h). Errors are negative
 * enum err codes from err.h; a refused call changes nothing. Refusals of
 * caller mistakes in lmm_free/lmm_add_free also write one env_log line.
 */
#ifndef MM_LMM_H
#define MM_LMM_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef uint32_t lmm_flags_t;   /* a request's flags must be a subset of a region's */
typedef int32_t  lmm_pri_t;     /* higher priority regions are tried first */

#define LMM_GRANULE_SHIFT 5
#define LMM_GRANULE       ((size_t)1 << LMM_GRANULE_SHIFT)

struct lmm_node;                /* private; lives inside free memory */

typedef struct lmm_region {
	struct lmm_region *next;    /* by priority, highest first */
	struct lmm_node *root;      /* free blocks, ordered by address */
	uintptr_t min, max;         /* [min, max), granule-aligned */
	lmm_flags_t flags;
	lmm_pri_t pri;
	size_t free;                /* bytes in free blocks */
	size_t nblocks;             /* number of free blocks */
} lmm_region_t;

typedef struct lmm {
	lmm_region_t *regions;
} lmm_t;

/* Empty manager, no regions. */
void lmm_init(lmm_t *lmm);

/* Add [addr, addr+size) as a region, trimmed inward to granule boundaries.
 * The region starts with no free memory (use lmm_add_free). Returns 0;
 * E_INVAL for NULL arguments or size 0, E_RANGE if the range wraps the
 * address space, E_ALIGN if nothing is left after trimming, E_EXIST if it
 * overlaps a region already added or `region` is already in use. */
int lmm_add_region(lmm_t *lmm, lmm_region_t *region, void *addr, size_t size,
		   lmm_flags_t flags, lmm_pri_t pri);

/* Make [block, block+size) free, trimmed inward to granule boundaries.
 * The block may span several regions; the parts outside every region are
 * ignored. Returns 0 (also when trimming leaves nothing); E_INVAL for size 0,
 * E_RANGE if it wraps, E_NOENT if no part lies in a region, E_EXIST if any
 * part is already free. On error nothing is added. */
int lmm_add_free(lmm_t *lmm, void *block, size_t size);

/* Make [block, block+size) (widened outward to granule boundaries) not free,
 * wherever it is free: across several blocks and regions. Parts not free are
 * left alone. Size 0 or a wrapping range does nothing (the latter logs). */
void lmm_remove_free(lmm_t *lmm, void *block, size_t size);

/* Allocate size bytes from the highest-priority region whose flags contain
 * `flags`, lowest address first. NULL if none fits, size is 0, or the
 * rounded size overflows. */
void *lmm_alloc(lmm_t *lmm, size_t size, lmm_flags_t flags);

/* As lmm_alloc, with the low align_bits bits of the address equal to those
 * of align_ofs. Alignments below the granule are raised to it, so the bits
 * of align_ofs below min(align_bits, LMM_GRANULE_SHIFT) must be zero (else
 * NULL). align_bits must be in [0, 63]. */
void *lmm_alloc_aligned(lmm_t *lmm, size_t size, lmm_flags_t flags,
			int align_bits, uintptr_t align_ofs);

/* As lmm_alloc_aligned, with the caller's bytes [p, p+size) inside
 * [in_min, in_min+in_size) (a range that would wrap ends at the top of the
 * address space). in_size == size means exactly at in_min or NULL. The
 * granule padding after p+size may lie past the range end, never outside
 * the free block. NULL also if in_size < size. */
void *lmm_alloc_gen(lmm_t *lmm, size_t size, lmm_flags_t flags, int align_bits,
		    uintptr_t align_ofs, uintptr_t in_min, size_t in_size);

/* One ENV_PAGE_SIZE page, page-aligned. NULL if none. */
void *lmm_alloc_page(lmm_t *lmm, lmm_flags_t flags);

/* Return [block, block+size) (size as passed to the allocation; it is
 * rounded up to the granule). Merges with free neighbours. Returns 0;
 * E_INVAL for NULL or size 0, E_ALIGN if block is not granule-aligned,
 * E_RANGE if the size wraps or the block crosses its region's end, E_NOENT if
 * block is outside every region, E_EXIST if it overlaps free memory (double
 * free). Refusals log one line and change nothing. */
int lmm_free(lmm_t *lmm, void *block, size_t size);

/* lmm_free of one page; errors are logged and otherwise ignored. */
void lmm_free_page(lmm_t *lmm, void *page);

/* Free bytes in regions whose flags contain `flags`. */
size_t lmm_avail(lmm_t *lmm, lmm_flags_t flags);

/* The free range at or after *inout_addr with the lowest address, in any
 * region: on return *inout_addr is its start (or *inout_addr itself if that
 * lies inside a free block), *out_size its length from there, *out_flags
 * its region's flags. *out_size is 0 when there is none. Iterate with
 * addr = 0; loop { find; if (!size) break; ...; addr += size; }. */
void lmm_find_free(lmm_t *lmm, uintptr_t *inout_addr, size_t *out_size,
		   lmm_flags_t *out_flags);

/* Every region and free block through env_log. */
void lmm_dump(lmm_t *lmm);

/* Walk every region and tree: region order and disjointness, block
 * alignment, bounds, address order, no adjacent unmerged blocks, heap order
 * of the treap, subtree maxima, free totals. Returns 0, or logs the first
 * broken invariant and returns E_CORRUPT. */
int lmm_check(lmm_t *lmm);

#endif
