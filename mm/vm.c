/* vm.c - Sv39 address spaces over the pt engine: descriptors, ASIDs and
 * TLB shootdown via struct vm_env. Segments and ranges: vm_seg.c; faults:
 * vm_fault.c; mappings: vm_map.c; the kernel heap: vm_kheap.c; checks:
 * vm_check.c; what they share: vm_int.h.
 *
 * Lock order: descriptor lock (one at a time) -> sys lock -> the env's page
 * and table allocators. Objects (descriptors, segments, ranges) are
 * allocated before and freed after the locks (the kernel's come from
 * vm_objcache, never from kmalloc, which grows on the kernel heap).
 *
 * TLB protocol for user descriptors: a change that removes or weakens a
 * mapping first marks every other hart where the descriptor ever ran as
 * "stale" (it flushes the ASID at its next vm_load_task), then fences the
 * harts where it is active now. vm_load_task sets the active bit before it
 * reads the stale bit; both sides are sequentially consistent, so one of
 * them always sees the other.
 */
#include "vm_int.h"

vm_sys_t vm_kernel_sys;

/* ---- TLB and shared root entries --------------------------------------------- */

/* Copy the kernel's upper-half root entries into every user root. */
static void propagate_root(vm_sys_t *sys)
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
__attribute__((noinline)) void
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

/* ---- ASIDs (sys lock held) ----------------------------------------------------- */

static int asid_get(vm_sys_t *sys)
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

static void asid_put(vm_sys_t *sys, unsigned a)
{
	if (a)
		sys->asid_map[a / 64] &= ~bit(a % 64);
}

/* ---- descriptors ------------------------------------------------------------------------ */

int vm_sys_init(vm_sys_t *sys, const struct vm_env *env)
{
	unsigned bits = env->asid_bits > SV39_SATP_ASID_BITS ?
			SV39_SATP_ASID_BITS : env->asid_bits;

	memset(sys, 0, sizeof(*sys));
	sys->env = env;
	if (!env->ncpus || env->ncpus > ENV_MAX_CPUS)
		return E_INVAL;
	sys->cur = env->obj_alloc(env->ctx, env->ncpus * sizeof(sys->cur[0]));
	if (!sys->cur)
		return E_NOMEM;
	memset(sys->cur, 0, env->ncpus * sizeof(sys->cur[0]));
	sys->ncpus = env->ncpus;
	sys->nasid = 1u << bits;
	sys->asid_map[0] = 1;   /* ASID 0: the kernel */
	sys->kern.sys = sys;
	sys->kern.kernel = true;
	return 0;
}

struct vm_descriptor *vm_kernel(vm_sys_t *sys)
{
	return &sys->kern;
}

struct vm_descriptor *vm_new_i(vm_sys_t *sys)
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
	return vm_new_i(&vm_kernel_sys);
}

int vm_load_task(struct vm_descriptor *d)
{
	vm_sys_t *sys = d->sys;
	const struct vm_env *e = sys->env;
	unsigned me = this_cpu(e);
	struct vm_descriptor *prev;
	bool flush;

	if (me >= sys->ncpus)
		return E_RANGE;
	prev = sys->cur[me];
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
	return 0;
}

int vm_unload_task(struct vm_descriptor *d)
{
	vm_sys_t *sys = d->sys;
	const struct vm_env *e = sys->env;
	unsigned me = this_cpu(e);

	if (me >= sys->ncpus)
		return E_RANGE;
	if (sys->cur[me] != d || d->kernel)
		return 0;
	__atomic_fetch_and(&d->active, ~bit(me), SEQ);
	sys->cur[me] = &sys->kern;
	e->write_satp(e->ctx, sv39_satp(0, sys->kern.pt.root));
	return 0;
}

void vm_free(struct vm_descriptor *d)
{
	vm_sys_t *sys;
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
	ranges_free(e, dead);
	while (dead_segs) {
		struct vm_segment *n = dead_segs->next;
		e->obj_free(e->ctx, dead_segs);
		dead_segs = n;
	}
	e->obj_free(e->ctx, d);
}

