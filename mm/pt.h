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
 *
 * Tables are written only through these calls, except that a caller may
 * copy root entries of the upper half in (vm shares the kernel's there):
 * the cached lower-half walk of the single-page paths relies on it.
 */
#ifndef MM_PT_H
#define MM_PT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sv39.h"

struct pt_ops {
	/* A zeroed 4 KiB page for a table; returns its PA, or 0 when none. */
	uint64_t (*alloc_table)(void *ctx);
	void (*free_table)(void *ctx, uint64_t pa);
	/* Where the CPU running this code reaches physical address pa; the
	 * same answer for a pa for the life of the tree (it is cached). */
	void *(*pa_to_va)(void *ctx, uint64_t pa);
	void *ctx;
};

/* near_key is va >> PT_NEAR_SHIFT: the 2 MiB region one level-0 table maps. */
#define PT_NEAR_SHIFT (SV39_PAGE_SHIFT + SV39_VPN_BITS)

struct pt {
	const struct pt_ops *ops;
	uint64_t root;          /* PA of the root table */
	/* Root indexes [keep_lo, keep_hi) hold tables shared with other trees
	 * (the kernel's upper half): their next-level tables are never freed
	 * or replaced by a 1 GiB leaf. Empty range by default. */
	unsigned keep_lo, keep_hi;
	/* Engine-private cache of the single-page paths: the level-0 table
	 * (as pa_to_va gave it) of the lower-half 2 MiB region va >> 21 ==
	 * near_key (~0: none). Dropped whenever the engine writes an entry
	 * above level 0 or frees tables. Read and written by the mutating
	 * calls only, which the caller serialises. */
	uint64_t near_key;
	uint64_t *near_l0;
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

/* ---- single-page inline paths ------------------------------------------------
 * pt_map_page(pt, va, pa, prot, fence) is pt_map(pt, va, pa, 4 KiB, prot,
 * fence) and pt_unmap_page(pt, va, fence) is pt_unmap(pt, va, 4 KiB, fence)
 * in every result and effect. They are inline so that a caller's own
 * argument checks fold into the engine's, and the common case (a lower-half
 * page in the 2 MiB region walked last) costs one store and no call;
 * anything else, errors included, goes to pt_map/pt_unmap. */

/* pt_map's checks for one 4 KiB page at va -> pa, all passing. */
static inline bool pt_page_args_ok(uint64_t va, uint64_t pa, unsigned prot)
{
	unsigned rwx = prot & SV39_PTE_RWX;

	return !(prot & ~PT_PROT_MASK) && rwx && !((rwx & PT_W) && !(rwx & PT_R)) &&
	       !((va | pa) & (SV39_PAGE_SIZE - 1)) && sv39_canonical(va) &&
	       !(pa >> SV39_PA_BITS);
}

/* Is va's level-0 table the cached one (pt_near_slot then gives its slot)?
 * Never calls pa_to_va. */
static inline bool pt_near_hit(const struct pt *pt, uint64_t va)
{
	return (va >> PT_NEAR_SHIFT) == pt->near_key;
}

static inline uint64_t *pt_near_slot(const struct pt *pt, uint64_t va)
{
	return pt->near_l0 + sv39_vpn(va, 0);
}

/* The single-page map when the cached walk finds an empty slot and every
 * check passes: true when done (no fence needed), false to take pt_map. */
static inline bool pt_map_page_near(struct pt *pt, uint64_t va, uint64_t pa,
				    unsigned prot)
{
	if (!pt_page_args_ok(va, pa, prot) || !pt_near_hit(pt, va) ||
	    *pt_near_slot(pt, va))
		return false;
	__atomic_store_n(pt_near_slot(pt, va),
			 sv39_pte_make(pa, prot | SV39_PTE_V | SV39_PTE_A | SV39_PTE_D),
			 __ATOMIC_RELEASE);
	return true;
}

/* The single-page unmap when the cached walk finds a leaf: true when done
 * (PT_FENCE_VA), false to take pt_unmap. */
static inline bool pt_unmap_page_near(struct pt *pt, uint64_t va)
{
	if ((va & (SV39_PAGE_SIZE - 1)) || !sv39_canonical(va) ||
	    !pt_near_hit(pt, va) || !sv39_pte_leaf(*pt_near_slot(pt, va)))
		return false;
	__atomic_store_n(pt_near_slot(pt, va), 0, __ATOMIC_RELEASE);
	return true;
}

static inline int pt_map_page(struct pt *pt, uint64_t va, uint64_t pa,
			      unsigned prot, unsigned *fence)
{
	if (!pt_map_page_near(pt, va, pa, prot))
		return pt_map(pt, va, pa, SV39_PAGE_SIZE, prot, fence);
	if (fence)
		*fence = 0;
	return 0;
}

static inline long pt_unmap_page(struct pt *pt, uint64_t va, unsigned *fence)
{
	if (!pt_unmap_page_near(pt, va))
		return pt_unmap(pt, va, SV39_PAGE_SIZE, fence);
	if (fence)
		*fence = PT_FENCE_VA;
	return 1;
}

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
