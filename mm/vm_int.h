/* vm_int.h - what the files of the VM manager share (mm/vm.c: descriptors,
 * ASIDs and TLB; vm_seg.c: segments, ranges and their pages; vm_fault.c;
 * vm_map.c: mappings; vm_kheap.c: the kernel descriptor's heap and vmap;
 * vm_check.c). Not for other modules: their interface is vm.h.
 */
#ifndef MM_VM_INT_H
#define MM_VM_INT_H

#include <string.h>

#include "env.h"
#include "vm.h"

#define PAGE        ((uint64_t)ENV_PAGE_SIZE)
#define CLEAN_BATCH 128     /* pages unmapped per fence when freeing pages */
#define SEQ         __ATOMIC_SEQ_CST

/* ---- small helpers --------------------------------------------------------- */

static inline const struct vm_env *envof(const struct vm_descriptor *d)
{
	return d->sys->env;
}

static inline unsigned this_cpu(const struct vm_env *e)
{
	return e->cpu ? e->cpu(e->ctx) : env_cpu();
}

static inline uint64_t bit(unsigned cpu)
{
	return 1ull << cpu;
}

static inline uint64_t page_up(uint64_t x)
{
	return (x + PAGE - 1) & ~(PAGE - 1);
}

static inline uint64_t seg_last(const struct vm_segment *s)
{
	return s->base + s->max_size - 1;
}

/* Lowest mapped address: the mapped part sits at the bottom of the
 * reservation, or at its top for VM_GROW_DOWN. */
static inline uint64_t map_lo(const struct vm_segment *s)
{
	return (s->flags & VM_GROW_DOWN) ? seg_last(s) + 1 - s->size : s->base;
}

static inline int in_half(const struct vm_descriptor *d, uint64_t va, uint64_t size)
{
	uint64_t last = va + size - 1;
	uint64_t lo = d->kernel ? SV39_UPPER_START : 0;
	uint64_t hi = d->kernel ? ~0ull : SV39_LOWER_END - 1;

	if (size == 0)
		return E_INVAL;
	if ((va | size) & (PAGE - 1))
		return E_ALIGN;
	if (last < va || va < lo || last > hi)
		return E_RANGE;
	return 0;
}

static inline bool rwx_ok(unsigned f)
{
	unsigned rwx = f & (VM_R | VM_W | VM_X);
	return rwx && !((rwx & VM_W) && !(rwx & VM_R));
}

static inline unsigned to_pt_bits(unsigned f, bool kernel)
{
	unsigned p = 0;

	p |= (f & VM_R) ? PT_R : 0;
	p |= (f & VM_W) ? PT_W : 0;
	p |= (f & VM_X) ? PT_X : 0;
	p |= (f & VM_U) ? PT_U : 0;
	/* Upper-half entries are shared by every ASID: global saves TLB room. */
	p |= kernel ? PT_G : 0;
	return p;
}

static inline unsigned to_pt(const struct vm_descriptor *d, unsigned f)
{
	return to_pt_bits(f, d->kernel);
}

/* Range nodes taken out under a lock are chained on a "dead" list and
 * freed after it (objects are freed outside the locks). */
static inline void ranges_free(const struct vm_env *e, struct vm_range *dead)
{
	while (dead) {
		struct vm_range *n = dead->next;
		e->obj_free(e->ctx, dead);
		dead = n;
	}
}

static inline void range_retire(struct vm_range **dead, struct vm_range *r)
{
	r->next = *dead;
	*dead = r;
}


/* ---- TLB (vm.c) ------------------------------------------------------------- */

/* The rare half of after_change: the kernel descriptor or a structural
 * change (split, table freed) that needs a whole-ASID fence. */
void after_change_slow(struct vm_descriptor *d, unsigned pflags, uintptr_t va,
		       size_t size);

/* after_change for a user descriptor. With pflags at most PT_FENCE_VA
 * (leaves removed or weakened in [va, va+size)) the steps are those of
 * after_change_slow, cut short when no other hart ever ran d (nothing to
 * mark stale; and none is active: vm_load_task sets ever before active). */
static inline void after_change_user(struct vm_descriptor *d, unsigned pflags,
				     uintptr_t va, size_t size)
{
	const struct vm_env *e = envof(d);
	uint64_t me, ever, others;

	if (pflags & ~PT_FENCE_VA) {
		after_change_slow(d, pflags, va, size);
		return;
	}
	e->fence_local(e->ctx, (int)d->asid, va, size);
	if (!pflags)
		return;
	me = bit(this_cpu(e));
	ever = __atomic_load_n(&d->ever, SEQ) & ~me;
	if (!ever)
		return;   /* active is a subset of ever (vm_load_task) */
	__atomic_fetch_or(&d->stale, ever, SEQ);
	others = __atomic_load_n(&d->active, SEQ) & ~me;
	if (others)
		e->fence_remote(e->ctx, others, (int)d->asid, va, size);
}

/* After pt reported pflags for [va, va+size) of d: re-share root entries,
 * fence this hart always, and other harts when something was removed or
 * weakened, before returning. */
static inline void after_change(struct vm_descriptor *d, unsigned pflags,
				uintptr_t va, size_t size)
{
	if (d->kernel)
		after_change_slow(d, pflags, va, size);
	else
		after_change_user(d, pflags, va, size);
}


/* ---- segments and ranges (vm_seg.c; descriptor lock held) --------------------- */

/* Does [lo, last] keep `guard` bytes from every reservation but skip's? */
static inline bool room_free(const struct vm_descriptor *d,
			     const struct vm_segment *skip, uint64_t lo,
			     uint64_t last, uint64_t guard)
{
	for (const struct vm_segment *t = d->segs; t; t = t->next) {
		if (t == skip)
			continue;
		if (t->base > last && t->base - last - 1 >= guard)
			continue;
		if (lo > seg_last(t) && lo - seg_last(t) - 1 >= guard)
			continue;
		return false;
	}
	return true;
}

/* Grow s's mapped part to new_size (vm_segment_grow's rules); merged-away
 * range nodes go to *dead. */
int grow_locked(struct vm_segment *s, uint64_t new_size, struct vm_range **dead);
/* Unmap and free everything of s and unlink it; its nodes go to *dead. */
void clean_locked(struct vm_segment *s, struct vm_range **dead);
/* Return the used range at va (of size expect, 0: any) to the free list. */
void release_range(struct vm_segment *s, uintptr_t va, size_t expect,
		   struct vm_range **dead);
/* Give s a growth spare node (allocated outside the lock). */
void refill_spare(struct vm_segment *s);

/* ---- mappings (vm_map.c; descriptor lock held for the _locked ones) ----------- */

static inline int map_args(const struct vm_descriptor *d, uintptr_t va,
			   uint64_t pa, size_t size, unsigned prot)
{
	if (!d || !d->pt.root)
		return E_INVAL;
	if ((prot & ~(VM_R | VM_W | VM_X | VM_U | VM_G)) || !rwx_ok(prot) ||
	    ((prot & VM_G) && !d->kernel))
		return E_INVAL;
	if (pa & (PAGE - 1))
		return E_ALIGN;
	return in_half(d, va, size);
}

int map_locked(struct vm_descriptor *d, uintptr_t va, uint64_t pa, size_t size,
	       unsigned prot);
int unmap_locked(struct vm_descriptor *d, uintptr_t va, size_t size);

#endif
