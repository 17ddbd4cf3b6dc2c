/* vm_fault.c - page faults: classify, and grow a segment up to the
 * faulting page.
 */
#include "vm_int.h"

/* ---- faults -------------------------------------------------------------------------- */

const char *vm_fault_str(int code)
{
	switch (code) {
	case VM_FAULT_OK:             return "resolved";
	case VM_FAULT_NOSEG:          return "outside every segment";
	case VM_FAULT_GUARD:          return "guard gap";
	case VM_FAULT_STACK_OVERFLOW: return "stack overflow";
	case VM_FAULT_PERM:           return "permission violation";
	case VM_FAULT_UNMAPPED:       return "unmapped page of a non-growable segment";
	case VM_FAULT_NOMEM:          return "out of memory growing segment";
	default:                      return "unknown fault code";
	}
}

static bool access_ok(unsigned flags, unsigned access)
{
	return !(access & ~flags & (VM_R | VM_W | VM_X | VM_U));
}

/* The segment whose guard gap holds va, and how to name the fault. */
static int classify_outside(const struct vm_descriptor *d, uintptr_t va,
			    const struct vm_segment **seg)
{
	for (const struct vm_segment *t = d->segs; t; t = t->next) {
		if (va < t->base && t->base - va <= VM_GUARD_SIZE) {
			*seg = t;
			return (t->flags & VM_GROW_DOWN) ? VM_FAULT_STACK_OVERFLOW
							 : VM_FAULT_GUARD;
		}
		if (va > seg_last(t) && va - seg_last(t) <= VM_GUARD_SIZE) {
			*seg = t;
			return VM_FAULT_GUARD;
		}
	}
	return VM_FAULT_NOSEG;
}

/* Fault inside s's reservation (lock held). */
static int fault_in(struct vm_segment *s, uintptr_t va, unsigned access,
		    struct vm_range **dead)
{
	struct vm_descriptor *d = s->d;
	uintptr_t page = va & ~(PAGE - 1);
	unsigned prot;

	if (!access_ok(s->flags, access))
		return VM_FAULT_PERM;
	if (va >= map_lo(s) && va - map_lo(s) < s->size) {
		if (pt_translate(&d->pt, va, NULL, &prot, NULL))
			return VM_FAULT_UNMAPPED;   /* vm_unmap'ed NOBACK range */
		if ((access & VM_W && !(prot & PT_W)) ||
		    (access & VM_X && !(prot & PT_X)) ||
		    (access & VM_R && !(prot & PT_R)))
			return VM_FAULT_PERM;       /* narrowed by vm_protect */
		/* Mapped and allowed: a stale TLB entry from before the map. */
		envof(d)->fence_local(envof(d)->ctx, d->kernel ? -1 : (int)d->asid,
				      page, PAGE);
		return VM_FAULT_OK;
	}
	if ((s->flags & VM_GROW_UP) && va >= s->base + s->size)
		return grow_locked(s, page + PAGE - s->base, dead) ?
		       VM_FAULT_NOMEM : VM_FAULT_OK;
	if ((s->flags & VM_GROW_DOWN) && va < map_lo(s))
		return grow_locked(s, seg_last(s) + 1 - page, dead) ?
		       VM_FAULT_NOMEM : VM_FAULT_OK;
	return VM_FAULT_UNMAPPED;
}

int vm_handle_fault(struct vm_descriptor *d, uintptr_t va, unsigned access,
		    const struct vm_segment **seg_out)
{
	const struct vm_segment *seg = NULL;
	struct vm_range *dead = NULL;
	struct vm_segment *s;
	unsigned long fl = env_lock(&d->lock);
	int code;

	for (s = d->segs; s && !(va >= s->base && va <= seg_last(s)); s = s->next)
		;
	if (s) {
		seg = s;
		code = fault_in(s, va, access, &dead);
	} else {
		code = classify_outside(d, va, &seg);
	}
	env_unlock(&d->lock, fl);
	ranges_free(envof(d), dead);
	/* Growth may have used the spare: replace it now (outside the lock).
	 * The env must serve obj_alloc in trap context here, without an
	 * allocator that may be what faulted (the kernel's is vm_objcache). */
	if (s && code == VM_FAULT_OK)
		refill_spare(s);
	if (seg_out)
		*seg_out = seg;
	return code;
}

