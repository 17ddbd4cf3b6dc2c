/* pt.h - Sv39 page-table engine over a "physical memory" seam.
 *
 * The engine walks, maps (1 GiB, 2 MiB and 4 KiB leaves), splits, unmaps and
 * re-protects mappings in one page-table tree. It reaches memory only through
 * struct pt_ops, so it runs on the host against simulated physical memory
 * and in the kernel against the direct map. It takes no locks (the caller
 * serialises calls on one tree) and never fences the TLB: it reports in
 * *fence what the caller must flush.
 *
 * Every mutating call validates and reserves first (table pages are
 * allocated up front), then mutates in a pass that cannot fail: a failed
 * call leaves the tree exactly as it was.
 */
#ifndef MM_PT_H
#define MM_PT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sv39.h"

struct pt_ops {
	/* A zeroed 4 KiB page for a table; returns its PA, or 0 when none. */
	uint64_t (*alloc_table)(void *ctx);
	void (*free_table)(void *ctx, uint64_t pa);
	/* Where the CPU running this code reaches physical address pa. */
	void *(*pa_to_va)(void *ctx, uint64_t pa);
	void *ctx;
};

struct pt {
	const struct pt_ops *ops;
	uint64_t root;          /* PA of the root table */
	/* Root indexes [keep_lo, keep_hi) hold tables shared with other trees
	 * (the kernel's upper half): their next-level tables are never freed
	 * or replaced by a 1 GiB leaf. Empty range by default. */
	unsigned keep_lo, keep_hi;
};

/* Protection bits accepted by pt_map/pt_protect (equal to the PTE bits).
 * Valid R/W/X combinations: R, RW, X, RX, RWX (W needs R). A and D are
 * always set by the engine, since hardware may not update them. */
#define PT_R SV39_PTE_R
#define PT_W SV39_PTE_W
#define PT_X SV39_PTE_X
#define PT_U SV39_PTE_U
#define PT_G SV39_PTE_G
#define PT_PROT_MASK (PT_R | PT_W | PT_X | PT_U | PT_G)

/* *fence bits: what a caller must flush after the call. */
#define PT_FENCE_VA   0x1u  /* a leaf in [va, va+size) was removed or weakened:
			       sfence.vma per page of the range (or all) */
#define PT_FENCE_ALL  0x2u  /* a non-leaf entry changed (split, table freed):
			       sfence.vma with rs1 = x0 for the address space */
#define PT_FENCE_ROOT 0x4u  /* a root entry changed: trees sharing root
			       entries (the upper half) must copy them again */

/* Allocate a zeroed root table. E_NOMEM if none; pt is unchanged then. */
int pt_init(struct pt *pt, const struct pt_ops *ops);
/* Use an existing root table (e.g. the boot page table). */
void pt_attach(struct pt *pt, const struct pt_ops *ops, uint64_t root_pa);
/* Free tables below root entries [lo, hi) and clear those entries; with
 * lo = 0, hi = SV39_ENTRIES also the root, after which pt is unusable.
 * Does not free the pages the leaves point to, does not fence. */
void pt_free_tables(struct pt *pt, unsigned lo, unsigned hi);

/* Map [va, va+size) to [pa, pa+size) with prot, using the largest leaf that
 * the alignment of va and pa allows at each step.
 * Errors: E_INVAL bad prot or size 0; E_ALIGN va, pa or size not 4 KiB
 * aligned; E_RANGE non-canonical, crossing halves, wrapping, or pa beyond
 * 56 bits; E_EXIST any page of the range already mapped; E_NOMEM no table
 * page. Sets PT_FENCE_ALL when it replaced an empty table by a leaf. */
int pt_map(struct pt *pt, uint64_t va, uint64_t pa, uint64_t size,
	   unsigned prot, unsigned *fence);

/* Remove every mapping inside [va, va+size), splitting a large leaf that
 * is only partly inside. Holes are allowed. Returns the number of 4 KiB
 * pages unmapped (>= 0) or E_ALIGN/E_RANGE/E_INVAL (as pt_map) or E_NOMEM
 * (a split needs a table page). Tables left empty are kept (reused by the
 * next map, freed by pt_free_tables or replaced by a large leaf). */
long pt_unmap(struct pt *pt, uint64_t va, uint64_t size, unsigned *fence);

/* Set the protection of every page in [va, va+size) to prot, splitting
 * large leaves partly inside. E_NOENT if any page of the range is not
 * mapped; other errors as pt_map. */
int pt_protect(struct pt *pt, uint64_t va, uint64_t size, unsigned prot,
	       unsigned *fence);

/* Translate va: physical address (with va's offset), prot bits and leaf
 * level (0, 1, 2). E_RANGE non-canonical, E_NOENT not mapped. Any output
 * pointer may be NULL. */
int pt_translate(const struct pt *pt, uint64_t va, uint64_t *pa,
		 unsigned *prot, int *level);

/* Leaves per level (n[0]: 4 KiB, n[1]: 2 MiB, n[2]: 1 GiB) below root
 * entries [lo, hi). */
void pt_count(const struct pt *pt, unsigned lo, unsigned hi, uint64_t n[3]);
/* Mapped 4 KiB-equivalents inside [va, va+size); 0 for a bad range. */
uint64_t pt_mapped_pages(const struct pt *pt, uint64_t va, uint64_t size);

/* Walk root entries [lo, hi) and check: reserved bits clear, RSW clear,
 * leaf R/W/X combination valid, non-leaf without A/D/U, large-leaf PPN
 * aligned, every table reached once. Returns 0 or E_CORRUPT (and logs the
 * first problem through env_log). Uses RSW bits as temporary marks: the
 * caller holds off concurrent writers. */
int pt_check(struct pt *pt, unsigned lo, unsigned hi);

#endif
