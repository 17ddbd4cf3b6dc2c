/* vm_seg.c - segments of a descriptor: the zeroed pages behind them,
 * their ranges (first fit, merged on free) and growth.
 */
#include "vm_int.h"

/* ---- pages behind segments ------------------------------------------------------ */

/* Unmap [va, va+size) of 4 KiB data pages, fence, then free the pages:
 * a page is never free while a TLB may still reach it. */
static void unback(struct vm_descriptor *d, uintptr_t va, size_t size)
{
	const struct vm_env *e = envof(d);
	uint64_t pas[CLEAN_BATCH];

	while (size) {
		size_t n = size / PAGE < CLEAN_BATCH ? size / PAGE : CLEAN_BATCH;
		unsigned got = 0, f;
		long r;

		for (size_t i = 0; i < n; i++)
			if (!pt_translate(&d->pt, va + i * PAGE, &pas[got], NULL, NULL))
				got++;
		r = pt_unmap(&d->pt, va, n * PAGE, &f);
		if (r < 0)
			env_panic("vm_unback: unmap of data pages failed (%d)", (int)r);
		after_change(d, f, va, n * PAGE);
		for (unsigned i = 0; i < got; i++)
			e->page_free(e->ctx, pas[i]);
		va += n * PAGE;
		size -= n * PAGE;
	}
}

/* Map zeroed pages over [va, va+size); on failure nothing stays mapped. */
static int back(struct vm_descriptor *d, uintptr_t va, size_t size, unsigned prot)
{
	const struct vm_env *e = envof(d);
	unsigned pf = 0, f;

	for (size_t off = 0; off < size; off += PAGE) {
		uint64_t pa = e->page_alloc(e->ctx);
		int rc = pa ? pt_map_page(&d->pt, va + off, pa, prot, &f) : E_NOMEM;

		if (rc) {
			if (pa)
				e->page_free(e->ctx, pa);
			after_change(d, pf, va, off);
			unback(d, va, off);
			return rc;
		}
		pf |= f;
	}
	after_change(d, pf, va, size);
	return 0;
}

/* ---- ranges (descriptor lock held) ------------------------------------------------ */

/* Add [va, va+size) to the free list, merging with neighbours; a new node
 * comes from *spare (E_NOMEM if none), merged-away nodes go to *dead. */
static int free_insert(struct vm_segment *s, uintptr_t va, size_t size,
		       struct vm_range **spare, struct vm_range **dead)
{
	struct vm_range **pp = &s->free, *prev = NULL, *next, *r;

	while (*pp && (*pp)->va < va) {
		prev = *pp;
		pp = &prev->next;
	}
	next = *pp;
	if (prev && prev->va + prev->size == va) {
		prev->size += size;
		if (next && prev->va + prev->size == next->va) {
			prev->size += next->size;
			prev->next = next->next;
			range_retire(dead, next);
		}
		return 0;
	}
	if (next && va + size == next->va) {
		next->va = va;
		next->size += size;
		return 0;
	}
	if (!*spare)
		return E_NOMEM;
	r = *spare;
	*spare = NULL;
	*r = (struct vm_range){ va, size, next };
	*pp = r;
	return 0;
}

/* Would free_insert of [va, va+size) need a node? */
static bool insert_needs_node(const struct vm_segment *s, uintptr_t va, size_t size)
{
	for (const struct vm_range *r = s->free; r; r = r->next)
		if (r->va + r->size == va || va + size == r->va)
			return false;
	return true;
}

static uintptr_t take_range(struct vm_segment *s, size_t size,
			    struct vm_range **node, struct vm_range **dead)
{
	for (struct vm_range **pp = &s->free; *pp; pp = &(*pp)->next) {
		struct vm_range *f = *pp, *u = *node;

		if (f->size < size)
			continue;
		*node = NULL;
		*u = (struct vm_range){ f->va, size, s->used };
		s->used = u;
		f->va += size;
		f->size -= size;
		if (!f->size) {
			*pp = f->next;
			range_retire(dead, f);
		}
		return u->va;
	}
	return 0;
}

/* Unlink the used range starting at va; NULL if none. */
static struct vm_range *used_unlink(struct vm_segment *s, uintptr_t va)
{
	for (struct vm_range **pp = &s->used; *pp; pp = &(*pp)->next)
		if ((*pp)->va == va) {
			struct vm_range *r = *pp;
			*pp = r->next;
			return r;
		}
	return NULL;
}

/* ---- segments (descriptor lock held) ----------------------------------------------- */

int grow_locked(struct vm_segment *s, uint64_t new_size,
		       struct vm_range **dead)
{
	struct vm_descriptor *d = s->d;
	uint64_t lo = s->base, last = seg_last(s), add_lo, add;
	bool down = s->flags & VM_GROW_DOWN;
	int rc;

	if (new_size > ~0ull - PAGE || (s->flags & VM_NOBACK))
		return E_INVAL;
	new_size = page_up(new_size);
	if (new_size < s->size)
		return E_INVAL;
	if (new_size == s->size)
		return 0;
	if (new_size > s->max_size) {
		uint64_t ext_lo, ext_size;

		if (down) {
			if (new_size - 1 > last)
				return E_RANGE;
			lo = last - (new_size - 1);
			ext_lo = lo;
			ext_size = s->base - lo;
		} else {
			last = s->base + new_size - 1;
			if (last < s->base)
				return E_RANGE;
			ext_lo = seg_last(s) + 1;
			ext_size = last - seg_last(s);
		}
		if (in_half(d, lo, last - lo + 1))
			return E_RANGE;
		if (!room_free(d, s, lo, last, VM_GUARD_SIZE) ||
		    pt_mapped_pages(&d->pt, ext_lo, ext_size))
			return E_EXIST;
	}
	add = new_size - s->size;
	add_lo = down ? last + 1 - new_size : s->base + s->size;
	if (insert_needs_node(s, add_lo, add) && !s->spare)
		return E_NOMEM;
	rc = back(d, add_lo, add, to_pt(d, s->flags));
	if (rc)
		return rc;
	s->base = lo;
	s->max_size = last - lo + 1;
	s->size = new_size;
	if (free_insert(s, add_lo, add, &s->spare, dead))
		env_panic("vm_segment_grow: no range node after the check");
	return 0;
}

static void ranges_retire(struct vm_range **dead, struct vm_range **list)
{
	while (*list) {
		struct vm_range *r = *list;
		*list = r->next;
		range_retire(dead, r);
	}
}

static void seg_unlink(struct vm_descriptor *d, struct vm_segment *s)
{
	struct vm_segment **pp = &d->segs;

	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
}

/* Unmap and free everything of s, unlink it; nodes and s go to *dead
 * (s itself through the returned pointer). */
void clean_locked(struct vm_segment *s, struct vm_range **dead)
{
	struct vm_descriptor *d = s->d;
	vm_sys_t *sys = d->sys;

	seg_unlink(d, s);
	if (s->flags & VM_NOBACK) {
		unsigned f;
		long r = pt_unmap(&d->pt, s->base, s->max_size, &f);
		if (r < 0)
			env_panic("vm_segment_clean: unmap of %s failed (%d)", s->name, (int)r);
		after_change(d, f, s->base, s->max_size);
	} else if (s->size) {
		unback(d, map_lo(s), s->size);
	}
	ranges_retire(dead, &s->free);
	ranges_retire(dead, &s->used);
	if (s->spare)
		range_retire(dead, s->spare);
	s->spare = NULL;
	if (sys->heap == s)
		sys->heap = NULL;
	if (sys->vmap == s)
		sys->vmap = NULL;
}

static int seg_check_args(struct vm_descriptor *d, uintptr_t va, size_t size,
			  size_t max_size, unsigned flags)
{
	const unsigned known = VM_R | VM_W | VM_X | VM_U | VM_GROW_UP |
			       VM_GROW_DOWN | VM_NOBACK;
	unsigned grow = flags & (VM_GROW_UP | VM_GROW_DOWN);

	if ((flags & ~known) || !rwx_ok(flags) || grow == (VM_GROW_UP | VM_GROW_DOWN))
		return E_INVAL;
	if ((flags & VM_NOBACK) && grow)
		return E_INVAL;
	if (size > max_size || (size == 0 && !grow && !(flags & VM_NOBACK)))
		return E_INVAL;
	if (size & (PAGE - 1))
		return E_ALIGN;
	if (va < PAGE)
		return E_RANGE;   /* page 0 stays unmapped: a range is never NULL */
	return in_half(d, va, max_size);
}

/* Create the segment in the preallocated s with free-list node r. */
static int seg_create(struct vm_descriptor *d, struct vm_segment *s,
		      struct vm_range *r, uintptr_t va, size_t size,
		      size_t max_size, unsigned flags, const char *name)
{
	struct vm_segment **pp;
	struct vm_range *none = NULL;   /* an empty list merges nothing away */
	int rc = seg_check_args(d, va, size, max_size, flags);

	if (rc)
		return rc;
	if (!room_free(d, NULL, va, va + max_size - 1, VM_GUARD_SIZE) ||
	    pt_mapped_pages(&d->pt, va, max_size))
		return E_EXIST;
	memset(s, 0, sizeof(*s));
	s->d = d;
	s->base = va;
	s->max_size = max_size;
	s->flags = flags;
	s->size = (flags & VM_NOBACK) ? max_size : size;
	for (size_t i = 0; name && name[i] && i < VM_NAME_LEN - 1; i++)
		s->name[i] = name[i];
	if (!(flags & VM_NOBACK) && s->size) {
		rc = back(d, map_lo(s), s->size, to_pt(d, flags));
		if (rc)
			return rc;
	}
	s->spare = r;   /* either the first free range or the growth spare */
	if (s->size)
		free_insert(s, map_lo(s), s->size, &s->spare, &none);
	for (pp = &d->segs; *pp && (*pp)->base < va; pp = &(*pp)->next)
		;
	s->next = *pp;
	*pp = s;
	return 0;
}

/* ---- public: segments ---------------------------------------------------------------- */

struct vm_segment *vm_new_segment(struct vm_descriptor *d, uintptr_t va,
				  size_t size, size_t max_size, unsigned flags,
				  const char *name)
{
	const struct vm_env *e;
	struct vm_segment *s;
	struct vm_range *r;
	unsigned long fl;
	int rc;

	if (!d || !d->pt.root)
		return NULL;
	e = envof(d);
	s = e->obj_alloc(e->ctx, sizeof(*s));
	r = e->obj_alloc(e->ctx, sizeof(*r));
	if (!s || !r) {
		rc = E_NOMEM;
	} else {
		fl = env_lock(&d->lock);
		rc = seg_create(d, s, r, va, size, max_size, flags, name);
		env_unlock(&d->lock, fl);
	}
	if (!rc)
		return s;
	if (s)
		e->obj_free(e->ctx, s);
	if (r)
		e->obj_free(e->ctx, r);
	return NULL;
}

/* Give s a growth spare node (allocated outside the lock). */
void refill_spare(struct vm_segment *s)
{
	const struct vm_env *e = envof(s->d);
	struct vm_range *n;
	unsigned long fl;

	if (__atomic_load_n(&s->spare, __ATOMIC_RELAXED))
		return;
	n = e->obj_alloc(e->ctx, sizeof(*n));
	fl = env_lock(&s->d->lock);
	if (!s->spare) {
		s->spare = n;
		n = NULL;
	}
	env_unlock(&s->d->lock, fl);
	if (n)
		e->obj_free(e->ctx, n);
}

int vm_segment_grow(struct vm_segment *s, size_t new_size)
{
	struct vm_range *dead = NULL;
	unsigned long fl;
	int rc;

	refill_spare(s);
	fl = env_lock(&s->d->lock);
	rc = grow_locked(s, new_size, &dead);
	env_unlock(&s->d->lock, fl);
	ranges_free(envof(s->d), dead);
	return rc;
}

void vm_segment_clean(struct vm_segment *s)
{
	const struct vm_env *e = envof(s->d);
	struct vm_range *dead = NULL;
	unsigned long fl = env_lock(&s->d->lock);

	clean_locked(s, &dead);
	env_unlock(&s->d->lock, fl);
	ranges_free(e, dead);
	e->obj_free(e->ctx, s);
}

void *vm_segment_alloc(struct vm_segment *s, size_t size)
{
	const struct vm_env *e = envof(s->d);
	struct vm_range *u, *dead = NULL;
	uintptr_t va = 0;
	unsigned long fl;

	if (size == 0 || size > s->max_size)
		return NULL;
	size = page_up(size);
	refill_spare(s);
	u = e->obj_alloc(e->ctx, sizeof(*u));
	if (!u)
		return NULL;
	fl = env_lock(&s->d->lock);
	va = take_range(s, size, &u, &dead);
	if (!va && (s->flags & VM_GROW_UP) && !(s->flags & VM_NOBACK)) {
		size_t tail = 0;
		for (struct vm_range *r = s->free; r; r = r->next)
			if (r->va + r->size == s->base + s->size)
				tail = r->size;
		if (!grow_locked(s, s->size + size - tail, &dead))
			va = take_range(s, size, &u, &dead);
	}
	env_unlock(&s->d->lock, fl);
	if (u)
		range_retire(&dead, u);
	ranges_free(e, dead);
	if (va)
		refill_spare(s);   /* keep a growth node ready for fault growth */
	return (void *)va;
}

void release_range(struct vm_segment *s, uintptr_t va, size_t expect,
			  struct vm_range **dead)
{
	struct vm_range *r = used_unlink(s, va);

	if (!r || (expect && r->size != expect))
		env_panic("vm_segment_free: 0x%llx is not a range of %s",
			  (unsigned long long)va, s->name);
	free_insert(s, r->va, r->size, &r, dead);
	if (r)
		range_retire(dead, r);
}

void vm_segment_free(struct vm_segment *s, void *va)
{
	struct vm_range *dead = NULL;
	unsigned long fl = env_lock(&s->d->lock);

	release_range(s, (uintptr_t)va, 0, &dead);
	env_unlock(&s->d->lock, fl);
	ranges_free(envof(s->d), dead);
}

