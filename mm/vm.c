/* vm.c - Sv39 address spaces over the pt engine: descriptors, segments,
 * ranges, fault-driven growth, ASIDs and TLB shootdown via struct vm_env.
 *
 * Lock order: descriptor lock (one at a time) -> sys lock -> the env's page
 * and table allocators. Objects (descriptors, segments,
 * ranges) are allocated before and freed after the locks, because the
 * kernel's object allocator (kmalloc) itself calls into the kernel heap.
 *
 * TLB protocol for user descriptors: a change that removes or weakens a
 * mapping first marks every other hart where the descriptor ever ran as
 * "stale" (it flushes the ASID at its next vm_load_task), then fences the
 * harts where it is active now. vm_load_task sets the active bit before it
 * reads the stale bit; both sides are sequentially consistent, so one of
 * them always sees the other.
 */
#include <string.h>

#include "env.h"
#include "vm.h"

#define PAGE        ((uint64_t)ENV_PAGE_SIZE)
#define CLEAN_BATCH 128     /* pages unmapped per fence when freeing pages */
#define SEQ         __ATOMIC_SEQ_CST

struct vm_sys vm_kernel_sys;

/* ---- small helpers --------------------------------------------------------- */

static const struct vm_env *envof(const struct vm_descriptor *d)
{
	return d->sys->env;
}

static unsigned this_cpu(const struct vm_env *e)
{
	return e->cpu ? e->cpu(e->ctx) : env_cpu();
}

static uint64_t bit(unsigned cpu)
{
	return 1ull << cpu;
}

static uint64_t page_up(uint64_t x)
{
	return (x + PAGE - 1) & ~(PAGE - 1);
}

static uint64_t seg_last(const struct vm_segment *s)
{
	return s->base + s->max_size - 1;
}

/* Lowest mapped address: the mapped part sits at the bottom of the
 * reservation, or at its top for VM_GROW_DOWN. */
static uint64_t map_lo(const struct vm_segment *s)
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

static bool rwx_ok(unsigned f)
{
	unsigned rwx = f & (VM_R | VM_W | VM_X);
	return rwx && !((rwx & VM_W) && !(rwx & VM_R));
}

static unsigned to_pt_bits(unsigned f, bool kernel)
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

static unsigned to_pt(const struct vm_descriptor *d, unsigned f)
{
	return to_pt_bits(f, d->kernel);
}

static void bury(const struct vm_env *e, struct vm_range *dead)
{
	while (dead) {
		struct vm_range *n = dead->next;
		e->obj_free(e->ctx, dead);
		dead = n;
	}
}

static void kill(struct vm_range **dead, struct vm_range *r)
{
	r->next = *dead;
	*dead = r;
}

/* ---- TLB and shared root entries --------------------------------------------- */

static void propagate_root(struct vm_sys *sys)
{
	const uint64_t *k = sys->env->pt.pa_to_va(sys->env->pt.ctx, sys->kern.pt.root);
	unsigned long fl = env_lock(&sys->lock);

	for (struct vm_descriptor *d = sys->all; d; d = d->next) {
		uint64_t *r = sys->env->pt.pa_to_va(sys->env->pt.ctx, d->pt.root);
		for (unsigned i = SV39_ROOT_UPPER; i < SV39_ENTRIES; i++)
			__atomic_store_n(&r[i], k[i], __ATOMIC_RELEASE);
	}
	env_unlock(&sys->lock, fl);
}

static uint64_t online_mask(void)
{
	unsigned n = env_ncpus();
	return n >= 64 ? ~0ull : bit(n) - 1;
}

/* The rare half of after_change: the kernel descriptor (root entries to
 * re-share, every online hart to fence) or a structural change (split,
 * table freed) that needs a whole-ASID fence. */
static __attribute__((noinline)) void
after_change_slow(struct vm_descriptor *d, unsigned pflags, uintptr_t va,
		  size_t size)
{
	const struct vm_env *e = envof(d);
	uint64_t me = bit(this_cpu(e)), others;
	int asid = d->kernel ? -1 : (int)d->asid;

	if (d->kernel && (pflags & PT_FENCE_ROOT))
		propagate_root(d->sys);
	if (pflags & PT_FENCE_ALL)
		va = size = 0;
	e->fence_local(e->ctx, asid, va, size);
	if (!(pflags & (PT_FENCE_VA | PT_FENCE_ALL)))
		return;
	if (d->kernel) {
		others = online_mask() & ~me;
	} else {
		__atomic_fetch_or(&d->stale, __atomic_load_n(&d->ever, SEQ) & ~me, SEQ);
		others = __atomic_load_n(&d->active, SEQ) & ~me;
	}
	if (others)
		e->fence_remote(e->ctx, others, asid, va, size);
}

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

/* ---- ASIDs (sys lock held) ----------------------------------------------------- */

static int asid_get(struct vm_sys *sys)
{
	if (sys->nasid <= 1)
		return 0;   /* no ASIDs: all share 0, vm_load_task flushes */
	for (unsigned w = 0; w * 64 < sys->nasid; w++) {
		uint64_t m = sys->asid_map[w];
		if (m == ~0ull)
			continue;
		unsigned a = w * 64 + (unsigned)__builtin_ctzll(~m);
		if (a >= sys->nasid)
			break;
		sys->asid_map[w] |= bit(a % 64);
		return (int)a;
	}
	return E_NOMEM;
}

static void asid_put(struct vm_sys *sys, unsigned a)
{
	if (a)
		sys->asid_map[a / 64] &= ~bit(a % 64);
}

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
			kill(dead, next);
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
			kill(dead, f);
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

static int grow_locked(struct vm_segment *s, uint64_t new_size,
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

static void kill_list(struct vm_range **dead, struct vm_range **list)
{
	while (*list) {
		struct vm_range *r = *list;
		*list = r->next;
		kill(dead, r);
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
static void clean_locked(struct vm_segment *s, struct vm_range **dead)
{
	struct vm_descriptor *d = s->d;
	struct vm_sys *sys = d->sys;

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
	kill_list(dead, &s->free);
	kill_list(dead, &s->used);
	if (s->spare)
		kill(dead, s->spare);
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
static void refill_spare(struct vm_segment *s)
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
	bury(envof(s->d), dead);
	return rc;
}

void vm_segment_clean(struct vm_segment *s)
{
	const struct vm_env *e = envof(s->d);
	struct vm_range *dead = NULL;
	unsigned long fl = env_lock(&s->d->lock);

	clean_locked(s, &dead);
	env_unlock(&s->d->lock, fl);
	bury(e, dead);
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
		kill(&dead, u);
	bury(e, dead);
	if (va)
		refill_spare(s);   /* keep a growth node ready for fault growth */
	return (void *)va;
}

static void release_range(struct vm_segment *s, uintptr_t va, size_t expect,
			  struct vm_range **dead)
{
	struct vm_range *r = used_unlink(s, va);

	if (!r || (expect && r->size != expect))
		env_panic("vm_segment_free: 0x%llx is not a range of %s",
			  (unsigned long long)va, s->name);
	free_insert(s, r->va, r->size, &r, dead);
	if (r)
		kill(dead, r);
}

void vm_segment_free(struct vm_segment *s, void *va)
{
	struct vm_range *dead = NULL;
	unsigned long fl = env_lock(&s->d->lock);

	release_range(s, (uintptr_t)va, 0, &dead);
	env_unlock(&s->d->lock, fl);
	bury(envof(s->d), dead);
}

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
	bury(envof(d), dead);
	/* Growth may have used the spare: replace it now (outside the lock).
	 * The kernel's env must serve obj_alloc here without re-entering an
	 * allocator that may be what faulted (kernel/mem.c uses its umm pool
	 * on that path). */
	if (s && code == VM_FAULT_OK)
		refill_spare(s);
	if (seg_out)
		*seg_out = seg;
	return code;
}

/* ---- mappings ------------------------------------------------------------------------- */

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

static inline int map_locked(struct vm_descriptor *d, uintptr_t va,
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

static inline int unmap_locked(struct vm_descriptor *d, uintptr_t va, size_t size)
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

/* ---- descriptors ------------------------------------------------------------------------ */

void vm_sys_init(struct vm_sys *sys, const struct vm_env *env)
{
	unsigned bits = env->asid_bits > SV39_SATP_ASID_BITS ?
			SV39_SATP_ASID_BITS : env->asid_bits;

	memset(sys, 0, sizeof(*sys));
	sys->env = env;
	sys->nasid = 1u << bits;
	sys->asid_map[0] = 1;   /* ASID 0: the kernel */
	sys->kern.sys = sys;
	sys->kern.kernel = true;
}

struct vm_descriptor *vm_kernel(struct vm_sys *sys)
{
	return &sys->kern;
}

struct vm_descriptor *vm_new_in(struct vm_sys *sys)
{
	const struct vm_env *e = sys->env;
	struct vm_descriptor *d = e->obj_alloc(e->ctx, sizeof(*d));
	unsigned long kfl = 0, sfl;
	int asid;

	if (!d)
		return NULL;
	memset(d, 0, sizeof(*d));
	d->sys = sys;
	if (pt_init(&d->pt, &e->pt)) {
		e->obj_free(e->ctx, d);
		return NULL;
	}
	if (sys->ready)
		kfl = env_lock(&sys->kern.lock);
	sfl = env_lock(&sys->lock);
	asid = asid_get(sys);
	if (asid >= 0) {
		d->asid = (unsigned)asid;
		if (sys->ready)
			memcpy((uint64_t *)e->pt.pa_to_va(e->pt.ctx, d->pt.root) + SV39_ROOT_UPPER,
			       (uint64_t *)e->pt.pa_to_va(e->pt.ctx, sys->kern.pt.root) + SV39_ROOT_UPPER,
			       (SV39_ENTRIES - SV39_ROOT_UPPER) * sizeof(uint64_t));
		d->next = sys->all;
		sys->all = d;
	}
	env_unlock(&sys->lock, sfl);
	if (sys->ready)
		env_unlock(&sys->kern.lock, kfl);
	if (asid < 0) {
		pt_free_tables(&d->pt, 0, SV39_ENTRIES);
		e->obj_free(e->ctx, d);
		return NULL;
	}
	return d;
}

struct vm_descriptor *vm_new(void)
{
	return vm_new_in(&vm_kernel_sys);
}

void vm_load_task(struct vm_descriptor *d)
{
	struct vm_sys *sys = d->sys;
	const struct vm_env *e = sys->env;
	unsigned me = this_cpu(e);
	struct vm_descriptor *prev = sys->cur[me];
	bool flush;

	if (prev && prev != d && !prev->kernel)
		__atomic_fetch_and(&prev->active, ~bit(me), SEQ);
	if (!d->kernel) {
		/* ever first: active stays a subset of it (after_change_user). */
		__atomic_fetch_or(&d->ever, bit(me), SEQ);
		__atomic_fetch_or(&d->active, bit(me), SEQ);
	}
	sys->cur[me] = d;
	e->write_satp(e->ctx, sv39_satp(d->asid, d->pt.root));
	/* Read stale only after active is set: see the protocol at the top. */
	flush = !d->kernel && (__atomic_fetch_and(&d->stale, ~bit(me), SEQ) & bit(me));
	if (flush || sys->nasid <= 1)
		e->fence_local(e->ctx, (int)d->asid, 0, 0);
}

void vm_unload_task(struct vm_descriptor *d)
{
	struct vm_sys *sys = d->sys;
	const struct vm_env *e = sys->env;
	unsigned me = this_cpu(e);

	if (sys->cur[me] != d || d->kernel)
		return;
	__atomic_fetch_and(&d->active, ~bit(me), SEQ);
	sys->cur[me] = &sys->kern;
	e->write_satp(e->ctx, sv39_satp(0, sys->kern.pt.root));
}

void vm_free(struct vm_descriptor *d)
{
	struct vm_sys *sys;
	const struct vm_env *e;
	struct vm_range *dead = NULL;
	struct vm_segment *dead_segs = NULL;
	struct vm_descriptor **pp;
	uint64_t me, ever;
	unsigned long fl;

	if (!d)
		return;
	sys = d->sys;
	e = sys->env;
	me = bit(this_cpu(e));
	if (d->kernel)
		env_panic("vm_free: the kernel descriptor");
	if (__atomic_load_n(&d->active, SEQ) & ~me)
		env_panic("vm_free: descriptor (asid %u) active on other harts", d->asid);
	vm_unload_task(d);
	/* Unlink first: root propagation must not write into a freed root. */
	fl = env_lock(&sys->lock);
	for (pp = &sys->all; *pp && *pp != d; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = d->next;
	env_unlock(&sys->lock, fl);

	fl = env_lock(&d->lock);
	while (d->segs) {
		struct vm_segment *s = d->segs;
		clean_locked(s, &dead);
		s->next = dead_segs;
		dead_segs = s;
	}
	pt_free_tables(&d->pt, 0, SV39_ROOT_UPPER);
	e->pt.free_table(e->pt.ctx, d->pt.root);
	d->pt.root = 0;
	env_unlock(&d->lock, fl);

	/* The ASID may be reused at once: flush it wherever d ever ran. */
	ever = __atomic_load_n(&d->ever, SEQ) & ~me;
	if (ever)
		e->fence_remote(e->ctx, ever, (int)d->asid, 0, 0);
	e->fence_local(e->ctx, (int)d->asid, 0, 0);
	fl = env_lock(&sys->lock);
	asid_put(sys, d->asid);
	env_unlock(&sys->lock, fl);
	bury(e, dead);
	while (dead_segs) {
		struct vm_segment *n = dead_segs->next;
		e->obj_free(e->ctx, dead_segs);
		dead_segs = n;
	}
	e->obj_free(e->ctx, d);
}

/* ---- kernel descriptor and heap ------------------------------------------------------------ */

int vm_kernel_init(struct vm_sys *sys, uint64_t root_pa, uintptr_t heap_va,
		   size_t heap_size, size_t heap_max, uintptr_t vmap_va,
		   size_t vmap_size)
{
	struct vm_descriptor *k = &sys->kern;

	if (!root_pa || sys->ready)
		return E_INVAL;
	pt_attach(&k->pt, &sys->env->pt, root_pa);
	/* Upper-half L1 tables are shared by every descriptor's root copy. */
	k->pt.keep_lo = SV39_ROOT_UPPER;
	k->pt.keep_hi = SV39_ENTRIES;
	sys->ready = true;
	sys->heap = vm_new_segment(k, heap_va, heap_size, heap_max,
				   VM_R | VM_W | VM_GROW_UP, "kheap");
	sys->vmap = vm_new_segment(k, vmap_va, vmap_size, vmap_size,
				   VM_R | VM_W | VM_NOBACK, "vmap");
	if (sys->heap && sys->vmap)
		return 0;
	if (sys->heap)
		vm_segment_clean(sys->heap);
	if (sys->vmap)
		vm_segment_clean(sys->vmap);
	sys->ready = false;
	k->pt.root = 0;
	return E_INVAL;
}

void vm_sys_fini(struct vm_sys *sys)
{
	while (sys->all)
		vm_free(sys->all);
	while (sys->kern.segs)
		vm_segment_clean(sys->kern.segs);
	sys->ready = false;
}

void *vm_heap_pages_in(struct vm_sys *sys, size_t npages)
{
	if (!sys->heap || npages == 0 || npages > SIZE_MAX / PAGE)
		return NULL;
	return vm_segment_alloc(sys->heap, npages * PAGE);
}

void vm_free_heap_pages_in(struct vm_sys *sys, void *va, size_t npages)
{
	struct vm_range *dead = NULL;
	unsigned long fl = env_lock(&sys->kern.lock);

	release_range(sys->heap, (uintptr_t)va, npages * PAGE, &dead);
	env_unlock(&sys->kern.lock, fl);
	bury(sys->env, dead);
}

void *vm_map_heap_in(struct vm_sys *sys, uint64_t pa, size_t size, unsigned prot)
{
	uint64_t off = pa & (PAGE - 1);
	struct vm_range *dead = NULL;
	unsigned long fl;
	uintptr_t va;

	if (!sys->vmap || size == 0 || size > SIZE_MAX - PAGE - off ||
	    (prot & ~(VM_R | VM_W | VM_X)) || !rwx_ok(prot))
		return NULL;
	size = page_up(size + off);
	va = (uintptr_t)vm_segment_alloc(sys->vmap, size);
	if (!va)
		return NULL;
	fl = env_lock(&sys->kern.lock);
	if (map_locked(&sys->kern, va, pa - off, size, prot)) {
		release_range(sys->vmap, va, size, &dead);
		va = 0;
	}
	env_unlock(&sys->kern.lock, fl);
	bury(sys->env, dead);
	return va ? (void *)(va + off) : NULL;
}

void vm_unmap_heap_in(struct vm_sys *sys, void *p)
{
	uintptr_t va = (uintptr_t)p & ~(PAGE - 1);
	struct vm_range *dead = NULL, *r;
	unsigned long fl = env_lock(&sys->kern.lock);

	for (r = sys->vmap->used; r && r->va != va; r = r->next)
		;
	if (!r)
		env_panic("vm_unmap_heap: %p was not mapped by vm_map_heap", p);
	if (unmap_locked(&sys->kern, va, r->size))
		env_panic("vm_unmap_heap: %p lost its mapping", p);
	release_range(sys->vmap, va, r->size, &dead);
	env_unlock(&sys->kern.lock, fl);
	bury(sys->env, dead);
}

void *vm_get_kernel_heap_pages(size_t npages)
{
	return vm_heap_pages_in(&vm_kernel_sys, npages);
}

void vm_free_kernel_heap_pages(void *va, size_t npages)
{
	vm_free_heap_pages_in(&vm_kernel_sys, va, npages);
}

void *vm_map_heap(uint64_t pa, size_t size, unsigned prot)
{
	return vm_map_heap_in(&vm_kernel_sys, pa, size, prot);
}

void vm_unmap_heap(void *va)
{
	vm_unmap_heap_in(&vm_kernel_sys, va);
}

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
