/* vm_check.c - vm_check (segment invariants over pt_check) and vm_dump.
 */
#include "vm_int.h"

/* ---- check and dump ---------------------------------------------------------------------------- */

static int seg_bad(const struct vm_segment *s, const char *what)
{
	env_log("vm_check: segment %s [0x%llx +0x%llx]: %s", s->name,
		(unsigned long long)s->base, (unsigned long long)s->max_size, what);
	return E_CORRUPT;
}

static int check_ranges(const struct vm_segment *s)
{
	uint64_t lo = map_lo(s), end = lo + s->size, sum = 0;
	const struct vm_range *prev = NULL;

	for (const struct vm_range *r = s->free; r; prev = r, r = r->next) {
		if (!r->size || r->va < lo || r->va + r->size > end)
			return seg_bad(s, "free range outside the mapped part");
		if (prev && prev->va + prev->size >= r->va)
			return seg_bad(s, prev->va + prev->size == r->va ?
				       "adjacent free ranges not merged" :
				       "free ranges unsorted or overlapping");
		sum += r->size;
	}
	for (const struct vm_range *r = s->used; r; r = r->next) {
		if (!r->size || r->va < lo || r->va + r->size > end)
			return seg_bad(s, "used range outside the mapped part");
		sum += r->size;
	}
	return sum == s->size ? 0 : seg_bad(s, "ranges do not tile the mapped part");
}

static int check_segment(const struct vm_descriptor *d, const struct vm_segment *s,
			 const struct vm_segment *prev)
{
	uint64_t lo = map_lo(s);

	if (s->d != d || s->size > s->max_size ||
	    ((s->base | s->size | s->max_size) & (PAGE - 1)) ||
	    in_half(d, s->base, s->max_size))
		return seg_bad(s, "bad bounds");
	if (prev && !(s->base > seg_last(prev) &&
		      s->base - seg_last(prev) - 1 >= VM_GUARD_SIZE))
		return seg_bad(s, "overlaps the previous segment or its guard gap");
	if (!(s->flags & VM_NOBACK)) {
		if (s->size && pt_mapped_pages(&d->pt, lo, s->size) != s->size / PAGE)
			return seg_bad(s, "hole in the mapped part");
		if (lo > s->base && pt_mapped_pages(&d->pt, s->base, lo - s->base))
			return seg_bad(s, "mapping below the mapped part");
		if (s->size < s->max_size && lo + s->size <= seg_last(s) &&
		    pt_mapped_pages(&d->pt, lo + s->size, seg_last(s) - lo - s->size + 1))
			return seg_bad(s, "mapping above the mapped part");
	}
	return check_ranges(s);
}

int vm_check(struct vm_descriptor *d)
{
	const struct vm_segment *prev = NULL;
	unsigned long fl = env_lock(&d->lock);
	int rc = 0;

	if (!d->kernel && d->sys->nasid > 1) {
		unsigned long sfl = env_lock(&d->sys->lock);
		if (!d->asid || !(d->sys->asid_map[d->asid / 64] & bit(d->asid % 64)))
			rc = E_CORRUPT;
		env_unlock(&d->sys->lock, sfl);
		if (rc)
			env_log("vm_check: descriptor holds unallocated asid %u", d->asid);
	}
	if (!rc)
		rc = d->kernel ? pt_check(&d->pt, SV39_ROOT_UPPER, SV39_ENTRIES)
			       : pt_check(&d->pt, 0, SV39_ROOT_UPPER);
	for (const struct vm_segment *s = d->segs; s && !rc; prev = s, s = s->next)
		rc = check_segment(d, s, prev);
	env_unlock(&d->lock, fl);
	return rc;
}

void vm_dump(struct vm_descriptor *d)
{
	unsigned long fl = env_lock(&d->lock);
	uint64_t n[3];

	pt_count(&d->pt, d->kernel ? SV39_ROOT_UPPER : 0,
		 d->kernel ? SV39_ENTRIES : SV39_ROOT_UPPER, n);
	env_log("vm %s asid %u root 0x%llx active 0x%llx: %llu x 4K, %llu x 2M, %llu x 1G",
		d->kernel ? "kernel" : "user", d->asid,
		(unsigned long long)d->pt.root, (unsigned long long)d->active,
		(unsigned long long)n[0], (unsigned long long)n[1],
		(unsigned long long)n[2]);
	for (const struct vm_segment *s = d->segs; s; s = s->next) {
		unsigned nfree = 0, nused = 0;
		for (const struct vm_range *r = s->free; r; r = r->next)
			nfree++;
		for (const struct vm_range *r = s->used; r; r = r->next)
			nused++;
		env_log("  %-15s [0x%llx..0x%llx] mapped 0x%llx at 0x%llx flags 0x%x ranges %u used %u free",
			s->name, (unsigned long long)s->base,
			(unsigned long long)seg_last(s), (unsigned long long)s->size,
			(unsigned long long)map_lo(s), s->flags, nused, nfree);
	}
	env_unlock(&d->lock, fl);
}
