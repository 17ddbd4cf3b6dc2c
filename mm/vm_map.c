/* vm_map.c - caller-owned mappings (vm_map, vm_unmap, vm_protect,
 * vm_get_phys) with the inline path for one user page.
 */
#include "vm_int.h"

/* ---- mappings ------------------------------------------------------------------------- */

int map_locked(struct vm_descriptor *d, uintptr_t va,
			     uint64_t pa, size_t size, unsigned prot)
{
	unsigned f;
	int rc = pt_map(&d->pt, va, pa, size, to_pt(d, prot), &f);

	if (!rc)
		after_change(d, f, va, size);
	return rc;
}

/* True only if map_args(d, va, pa, PAGE, prot) == 0 and d is a user
 * descriptor: the common call of vm_map and vm_unmap then takes the paths
 * below. The R/W/X and alignment checks are pt_map_page's own, which the
 * compiler can then fold there (to_pt_bits keeps R/W/X combinations). */
static inline bool user_page_args_ok(const struct vm_descriptor *d, uintptr_t va,
				     uint64_t pa, unsigned prot)
{
	/* An aligned va below SV39_LOWER_END is a whole lower-half page. */
	return d && !d->kernel && d->pt.root && va < SV39_LOWER_END &&
	       !(prot & ~(VM_R | VM_W | VM_X | VM_U)) &&
	       pt_page_args_ok(va, pa, to_pt_bits(prot, false));
}

static inline int map_user_page(struct vm_descriptor *d, uintptr_t va,
				uint64_t pa, unsigned prot)
{
	unsigned long fl = env_lock(&d->lock);
	int rc = E_EXIST;
	unsigned f;

	if (room_free(d, NULL, va, va + PAGE - 1, VM_GUARD_SIZE)) {
		rc = pt_map_page(&d->pt, va, pa, to_pt_bits(prot, false), &f);
		if (!rc)
			after_change_user(d, f, va, PAGE);
	}
	env_unlock(&d->lock, fl);
	return rc;
}

static __attribute__((noinline)) int
map_general(struct vm_descriptor *d, uintptr_t va, uint64_t pa, size_t size,
	    unsigned prot)
{
	unsigned long fl;
	int rc = map_args(d, va, pa, size, prot);

	if (rc)
		return rc;
	fl = env_lock(&d->lock);
	/* Segment reservations and their guard gaps are the segments' own. */
	if (!room_free(d, NULL, va, va + size - 1, VM_GUARD_SIZE))
		rc = E_EXIST;
	else
		rc = map_locked(d, va, pa, size, prot);
	env_unlock(&d->lock, fl);
	return rc;
}

int vm_map(struct vm_descriptor *d, uintptr_t va, uint64_t pa, size_t size,
	   unsigned prot)
{
	if (size == PAGE && user_page_args_ok(d, va, pa, prot))
		return map_user_page(d, va, pa, prot);
	return map_general(d, va, pa, size, prot);
}

int unmap_locked(struct vm_descriptor *d, uintptr_t va, size_t size)
{
	unsigned f;
	long r = pt_unmap(&d->pt, va, size, &f);

	if (r < 0)
		return (int)r;
	after_change(d, f, va, size);
	return r ? 0 : E_NOENT;
}

static inline int unmap_user_page(struct vm_descriptor *d, uintptr_t va)
{
	unsigned long fl = env_lock(&d->lock);
	int rc = E_BUSY;
	unsigned f;
	long r;

	if (room_free(d, NULL, va, va + PAGE - 1, 0)) {
		r = pt_unmap_page(&d->pt, va, &f);
		rc = r < 0 ? (int)r : r ? 0 : E_NOENT;
		if (r >= 0)
			after_change_user(d, f, va, PAGE);
	}
	env_unlock(&d->lock, fl);
	return rc;
}

static __attribute__((noinline)) int
unmap_general(struct vm_descriptor *d, uintptr_t va, size_t size)
{
	unsigned long fl;
	int rc = map_args(d, va, 0, size, VM_R);

	if (rc)
		return rc;
	fl = env_lock(&d->lock);
	if (!room_free(d, NULL, va, va + size - 1, 0))
		rc = E_BUSY;
	else
		rc = unmap_locked(d, va, size);
	env_unlock(&d->lock, fl);
	return rc;
}

int vm_unmap(struct vm_descriptor *d, uintptr_t va, size_t size)
{
	if (size == PAGE && user_page_args_ok(d, va, 0, VM_R))
		return unmap_user_page(d, va);
	return unmap_general(d, va, size);
}

int vm_protect(struct vm_descriptor *d, uintptr_t va, size_t size, unsigned prot)
{
	unsigned long fl;
	unsigned f;
	int rc = map_args(d, va, 0, size, prot);

	if (rc)
		return rc;
	fl = env_lock(&d->lock);
	rc = pt_protect(&d->pt, va, size, to_pt(d, prot), &f);
	if (!rc)
		after_change(d, f, va, size);
	env_unlock(&d->lock, fl);
	return rc;
}

int vm_get_phys(struct vm_descriptor *d, uintptr_t va, uint64_t *pa)
{
	unsigned long fl;
	int rc;

	if (!d || !d->pt.root || in_half(d, va & ~(PAGE - 1), PAGE))
		return E_RANGE;
	fl = env_lock(&d->lock);
	rc = pt_translate(&d->pt, va, pa, NULL, NULL);
	env_unlock(&d->lock, fl);
	return rc;
}

