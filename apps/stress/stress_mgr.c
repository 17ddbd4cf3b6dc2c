/* stress_mgr.c - the engine's adapters to the managers: private instances
 * whose memory (and page sources) the engine owns, so that failures can be
 * injected and every byte accounted for, plus the kernel's global instances
 * where the platform has them.
 *
 *   umm      a private pool (umm_alloc, _aligned, realloc, the fast paths
 *            from the tick) and the kernel's kumm (small blocks)
 *   kmalloc  a private kmalloc_inst on an engine page pool that fails on
 *            request, and the global kmalloc()
 *   pmem     a private pmem_t over engine memory (pages, runs, aligned
 *            runs) and the kernel's kpmem (single pages)
 *   lmm      a private lmm_t over engine memory, under an engine lock
 *   vm       a private vm_sys whose tables, data pages and objects come from
 *            the engine (failing on request): segments, ranges, vm_map,
 *            vm_protect, growth, in S_VM_DESCS address spaces the harts share
 *   mm       one shared area in engine memory, one handle per hart, growth
 *            through an env hook that fails on request
 *
 * Lock order: an instance's own locks -> spool.lock (page sources are
 * called with no manager lock held, as kmalloc.h and vm.h promise). */
#include <string.h>

#include "stress_int.h"

#define PAGE ENV_PAGE_SIZE
#define VM_WIN(i)      (0x1000000000ull + (uint64_t)(i) * 0x40000000ull)
#define VM_TMP_OFF     0x10000000ull
#define VM_MAP_OFF     0x20000000ull
#define VM_SLOT_SPAN   0x10000ull           /* 16 pages per slot */
#define VM_FAKE_PA     0x100000000ull       /* the vm pool's "physical" base */
#define VM_MAP_PA(i, k) (0x800000000ull + ((uint64_t)(i) << 29) + (uint64_t)(k) * VM_SLOT_SPAN)
#define VM_SEG_MAX     (1024 * PAGE)

enum { API_PLAIN, API_ALIGNED, API_RANGE, API_MAP };

static bool on(struct stress *s, unsigned m)
{
	return s->o.mgrs & (1u << m);
}

/* ---- the engine's page pool ---------------------------------------------- */

static int pool_init(struct stress *s, struct spool *sp, size_t npages, uint64_t fake_pa)
{
	uint64_t pa;

	sp->base = s->p->mem(npages * PAGE, &pa);
	sp->used = s->p->mem((npages + PAGE - 1) & ~(PAGE - 1), &pa);
	sp->runlen = s->p->mem((npages * 2 + PAGE - 1) & ~(PAGE - 1), &pa);
	if (!sp->base || !sp->used || !sp->runlen)
		return E_NOMEM;
	sp->npages = npages;
	sp->pa = fake_pa;
	return 0;
}

static void pool_fini(struct stress *s, struct spool *sp)
{
	if (sp->base)
		s->p->mem_free(sp->base, sp->npages * PAGE);
	if (sp->used)
		s->p->mem_free(sp->used, (sp->npages + PAGE - 1) & ~(PAGE - 1));
	if (sp->runlen)
		s->p->mem_free(sp->runlen, (sp->npages * 2 + PAGE - 1) & ~(PAGE - 1));
	memset(sp, 0, sizeof(*sp));
}

static bool run_free(struct spool *sp, size_t i, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (sp->used[i + j])
			return false;
	return true;
}

static void *pool_get(struct stress *s, struct spool *sp, size_t n, unsigned mgr)
{
	unsigned long fl;
	void *va = NULL;

	if (!n || s_fail_now(s, mgr))
		return NULL;
	fl = env_lock(&sp->lock);
	for (size_t pass = 0, i = sp->hint; pass < 2 && !va; pass++, i = 0)
		for (; i + n <= sp->npages; i++)
			if (run_free(sp, i, n)) {
				memset(sp->used + i, 2, n);
				sp->used[i] = 1;
				sp->runlen[i] = (uint16_t)n;
				sp->live += n;
				if (sp->live > sp->peak)
					sp->peak = sp->live;
				sp->hint = i + n;
				va = sp->base + i * PAGE;
				break;
			}
	env_unlock(&sp->lock, fl);
	return va;
}

static void pool_put(struct stress *s, struct spool *sp, void *va, size_t n, unsigned mgr)
{
	size_t i = (size_t)((uint8_t *)va - sp->base) / PAGE;
	unsigned long fl;

	if ((uint8_t *)va < sp->base || i >= sp->npages || ((uintptr_t)va & (PAGE - 1))) {
		s_failure(s, "%s: page source got back %p, which it never gave", s_mgr_name(mgr), va);
		return;
	}
	fl = env_lock(&sp->lock);
	if (sp->used[i] != 1 || sp->runlen[i] != n) {
		env_unlock(&sp->lock, fl);
		s_failure(s, "%s: page source got back %zu pages at %p; it gave %u there",
			  s_mgr_name(mgr), n, va, sp->used[i] == 1 ? sp->runlen[i] : 0);
		return;
	}
	memset(sp->used + i, 0, n);
	sp->live -= n;
	if (i < sp->hint)
		sp->hint = i;
	env_unlock(&sp->lock, fl);
}

/* ---- kmalloc's page source ----------------------------------------------- */

static void *km_get(void *ctx, size_t n)
{
	struct stress *s = ctx;
	return pool_get(s, &s->kpool, n, M_KMALLOC);
}

static void km_put(void *ctx, void *va, size_t n)
{
	struct stress *s = ctx;
	pool_put(s, &s->kpool, va, n, M_KMALLOC);
}

/* ---- vm's environment ------------------------------------------------------ */

static uint64_t v_page(void *ctx)
{
	struct stress *s = ctx;
	uint8_t *va = pool_get(s, &s->vpool, 1, M_VM);

	if (!va)
		return 0;
	memset(va, 0, PAGE);
	return s->vpool.pa + (uint64_t)(va - s->vpool.base);
}

static void v_page_free(void *ctx, uint64_t pa)
{
	struct stress *s = ctx;
	pool_put(s, &s->vpool, s->vpool.base + (pa - s->vpool.pa), 1, M_VM);
}

static void *v_va(void *ctx, uint64_t pa)
{
	struct stress *s = ctx;
	return s->vpool.base + (pa - s->vpool.pa);
}

static void *v_obj(void *ctx, size_t size)
{
	struct stress *s = ctx;
	void *p;

	if (s_fail_now(s, M_VM))
		return NULL;
	p = s->p->obj_alloc(size);
	if (p)
		__atomic_fetch_add(&s->vobjs, 1, __ATOMIC_RELAXED);
	return p;
}

static void v_obj_free(void *ctx, void *p)
{
	struct stress *s = ctx;

	if (!p)
		return;
	__atomic_fetch_sub(&s->vobjs, 1, __ATOMIC_RELAXED);
	s->p->obj_free(p);
}

/* The private address spaces are never loaded: no TLB to flush. */
static void v_fence(void *ctx, int asid, uintptr_t va, size_t size) { }
static void v_rfence(void *ctx, uint64_t mask, int asid, uintptr_t va, size_t size) { }
static void v_satp(void *ctx, uint64_t satp) { }

/* ---- mm's environment ---------------------------------------------------- */

static int mm_grow_hook(void *ctx, void *base, size_t new_size, size_t *mapped)
{
	struct stress *s = ctx;

	if (new_size > s->mm_room || s_fail_now(s, M_MM))
		return E_NOMEM;
	*mapped = s->mm_room;
	return 0;
}

static int mm_ensure_hook(void *ctx, void *base, size_t size, size_t *mapped)
{
	struct stress *s = ctx;

	if (size > s->mm_room)
		return E_RANGE;
	*mapped = s->mm_room;
	return 0;
}

/* ---- setup ---------------------------------------------------------------- */

static void *mem(struct stress *s, size_t size, uint64_t *pa)
{
	uint64_t dummy;
	return s->p->mem((size + PAGE - 1) & ~(PAGE - 1), pa ? pa : &dummy);
}

static int setup_umm(struct stress *s, size_t scale)
{
	s->umm = mem(s, sizeof(umm_t), NULL);
	s->umm_size = (4u << 20) + scale * (256u << 10);
	s->umm_mem = mem(s, s->umm_size, NULL);
	if (!s->umm || !s->umm_mem)
		return E_NOMEM;
	return umm_init(s->umm, s->umm_mem, s->umm_size);
}

static int setup_kmalloc(struct stress *s, size_t scale)
{
	struct kmalloc_page_source src = { km_get, km_put, s };
	int rc = pool_init(s, &s->kpool, (4096 + scale * 128), 0);

	if (rc)
		return rc;
	s->km = mem(s, sizeof(*s->km), NULL);
	if (!s->km)
		return E_NOMEM;
	/* TTL 0: kmalloc_reap_i returns every cached block (hot-plug) */
	return kmalloc_init_i(s->km, &src, NULL, 0);
}

static int setup_pmem(struct stress *s, size_t scale)
{
	struct pmem_range r;
	struct pmem_config cfg = { 0 };
	int rc;

	s->pm_size = (4u << 20) + scale * (256u << 10);
	s->pm_mem = mem(s, s->pm_size, &s->pm_pa);
	s->pm = mem(s, sizeof(pmem_t), NULL);
	if (!s->pm_mem || !s->pm)
		return E_NOMEM;
	r = (struct pmem_range){ s->pm_pa, s->pm_size, -1 };
	cfg.ram = &r;
	cfg.nram = 1;
	cfg.va_offset = s->p->va_offset;
	/* Every index: harts (threads) come and go under onoff, and each must
	 * be able to hold a cache so the cached paths are what is stressed. */
	cfg.ncpus = ENV_MAX_CPUS;
	rc = pmem_init(s->pm, &cfg);
	s->pm_free0 = pmem_avail(s->pm);
	return rc;
}

static int setup_lmm(struct stress *s, size_t scale)
{
	int rc;

	s->lmm_size = (2u << 20) + scale * (128u << 10);
	s->lmm_mem = mem(s, s->lmm_size, NULL);
	if (!s->lmm_mem)
		return E_NOMEM;
	lmm_init(&s->lmm);
	rc = lmm_add_region(&s->lmm, &s->lreg, s->lmm_mem, s->lmm_size, 0, 0);
	if (!rc)
		rc = lmm_add_free(&s->lmm, s->lmm_mem, s->lmm_size);
	s->lmm_free0 = lmm_avail(&s->lmm, 0);
	return rc;
}

static int setup_mm(struct stress *s, size_t scale)
{
	struct mm_stats st;
	mm_t h;
	int rc;

	s->mm_room = (2u << 20) + scale * (64u << 10);
	s->mm_mem = mem(s, s->mm_room, NULL);
	if (!s->mm_mem)
		return E_NOMEM;
	s->mm_env = (struct mm_env){ .grow = mm_grow_hook, .ensure_mapped = mm_ensure_hook,
				     .ctx = s, .max_size = s->mm_room };
	rc = mm_init_area(s->mm_mem, 64u << 10, s->mm_room, 0);
	if (rc)
		return rc;
	rc = mm_attach_base(&h, s->mm_mem, s->mm_room, s->mm_room, &s->mm_env);
	if (rc)
		return rc;
	mm_stats(&h, &st);
	s->mm_used0 = st.used;
	return mm_detach(&h);
}

static int setup_vm(struct stress *s, size_t scale)
{
	int rc = pool_init(s, &s->vpool, 2048 + scale * 256, VM_FAKE_PA);

	if (rc)
		return rc;
	s->vsys = mem(s, sizeof(*s->vsys), NULL);
	if (!s->vsys)
		return E_NOMEM;
	s->venv = (struct vm_env){
		.pt = { v_page, v_page_free, v_va, s },
		.page_alloc = v_page, .page_free = v_page_free,
		.obj_alloc = v_obj, .obj_free = v_obj_free,
		.fence_local = v_fence, .fence_remote = v_rfence, .write_satp = v_satp,
		.ctx = s, .asid_bits = 16, .ncpus = ENV_MAX_CPUS,
	};
	rc = vm_sys_init(s->vsys, &s->venv);
	if (rc)
		return rc;
	for (unsigned i = 0; i < S_VM_DESCS; i++)
		if (!(s->vd[i] = vm_new_i(s->vsys)))
			return E_NOMEM;
	return 0;
}

int s_setup(struct stress *s)
{
	static int (*const fn[NMGR])(struct stress *, size_t) = {
		setup_umm, setup_kmalloc, setup_pmem, setup_lmm, setup_vm, setup_mm,
	};
	int rc;

	for (unsigned m = 0; m < NMGR; m++)
		if (on(s, m) && (rc = fn[m](s, s->n)) != 0) {
			s_failure(s, "%s: setup of the private instance failed: %s",
				  s_mgr_name(m), err_str(rc));
			return rc;
		}
	if (s->p->gpmem)
		s->g_avail0 = pmem_avail(s->p->gpmem);
	if (s->p->kept_bytes)
		s->g_kept0 = s->p->kept_bytes();
	if (s->p->gumm)
		umm_stats(s->p->gumm, &s->gumm0);
	return 0;
}

void s_teardown(struct stress *s)
{
	/* engine memory is left to the platform: the kernel exits, the host
	 * frees its arena; only the pools are released explicitly */
	pool_fini(s, &s->kpool);
	pool_fini(s, &s->vpool);
}

int s_hart_init(struct stress *s, struct shart *h)
{
	if (on(s, M_MM) && !h->mm_attached) {
		struct mm_env env = s->mm_env;
		int rc;

		env.self_id = h->idx + 1;
		rc = mm_attach_base(&h->mmh, s->mm_mem, s->mm_room, s->mm_room, &env);
		if (rc) {
			s_failure(s, "mm: hart %u cannot attach the area: %s", h->idx, err_str(rc));
			return rc;
		}
		h->mm_attached = true;
	}
	return 0;
}

/* ---- vm blocks --------------------------------------------------------------- */

static uint64_t *vm_page_va(struct stress *s, struct vm_descriptor *d, uintptr_t va)
{
	uint64_t pa;

	if (vm_get_phys(d, va, &pa))
		return NULL;
	return (uint64_t *)v_va(s, pa & ~(uint64_t)(PAGE - 1));
}

/* A range's pages carry their own va in word 0 and the seed in word 1. */
static int vm_range_stamp(struct stress *s, struct shart *h, struct sblk *b, bool check)
{
	struct vm_descriptor *d = s->vd[h->idx % S_VM_DESCS];

	for (uintptr_t va = b->h; va < b->h + b->size; va += PAGE) {
		uint64_t *w = vm_page_va(s, d, va);
		if (!w) {
			s_failure(s, "vm: range %#lx (%u bytes, hart %u) page %#lx is not mapped",
				  (unsigned long)b->h, b->size, b->owner, (unsigned long)va);
			return -1;
		}
		if (!check) {
			w[0] = va;
			w[1] = s->o.seed ^ b->seq;
		} else if (w[0] != va || w[1] != (s->o.seed ^ b->seq)) {
			s_failure(s, "vm: range %#lx (%u bytes, seq %u, hart %u) page %#lx holds "
				  "%#llx %#llx, expected its own stamp", (unsigned long)b->h, b->size,
				  b->seq, b->owner, (unsigned long)va, (unsigned long long)w[0],
				  (unsigned long long)w[1]);
			return -1;
		}
	}
	return 0;
}

static int vm_map_verify(struct stress *s, struct shart *h, struct sblk *b)
{
	struct vm_descriptor *d = s->vd[h->idx % S_VM_DESCS];
	uint64_t want = VM_MAP_PA(h->idx, (b->h - VM_WIN(h->idx) - VM_MAP_OFF) / VM_SLOT_SPAN);

	for (size_t off = 0; off < b->size; off += PAGE) {
		uint64_t pa = 0;
		int rc = vm_get_phys(d, b->h + off, &pa);
		if (rc || pa != want + off) {
			s_failure(s, "vm: mapping %#lx (%u bytes, hart %u) page +%zu translates to "
				  "%#llx (%s), expected %#llx", (unsigned long)b->h, b->size, b->owner,
				  off, (unsigned long long)pa, err_str(rc),
				  (unsigned long long)(want + off));
			return -1;
		}
	}
	return 0;
}

static int vm_alloc(struct stress *s, struct shart *h, struct sblk *b, size_t size)
{
	struct vm_descriptor *d = s->vd[h->idx % S_VM_DESCS];
	size_t pages = (size + PAGE - 1) / PAGE;
	unsigned k = (unsigned)(b - h->slot);

	if (pages > VM_SLOT_SPAN / PAGE)
		pages = VM_SLOT_SPAN / PAGE;
	b->size = (uint32_t)(pages * PAGE);
	b->va = NULL;
	if (s_rand(h) & 1) {
		if (!h->seg)
			h->seg = vm_new_segment(d, VM_WIN(h->idx), 0, VM_SEG_MAX,
						VM_R | VM_W | VM_GROW_UP, "stress");
		void *va = h->seg ? vm_segment_alloc(h->seg, b->size) : NULL;
		if (!va)
			return E_NOMEM;
		b->h = (uintptr_t)va;
		b->api = API_RANGE;
		return vm_range_stamp(s, h, b, false);
	}
	uintptr_t va = VM_WIN(h->idx) + VM_MAP_OFF + (uint64_t)k * VM_SLOT_SPAN;
	int rc = vm_map(d, va, VM_MAP_PA(h->idx, k), b->size, VM_R | VM_W);
	if (rc == E_NOMEM)
		return rc;
	if (rc) {
		s_failure(s, "vm: vm_map(%#lx, %u bytes) by hart %u: %s", (unsigned long)va,
			  b->size, h->idx, err_str(rc));
		return rc;
	}
	b->h = va;
	b->api = API_MAP;
	b->prot = VM_R | VM_W;
	return vm_map_verify(s, h, b);
}

static int vm_release(struct stress *s, struct shart *h, struct sblk *b)
{
	struct vm_descriptor *d = s->vd[h->idx % S_VM_DESCS];
	int rc;

	if (b->api == API_RANGE) {
		if (vm_range_stamp(s, h, b, true))
			return -1;
		vm_segment_free(h->seg, (void *)b->h);
		return 0;
	}
	if (vm_map_verify(s, h, b))
		return -1;
	/* unmapping may need to split a large leaf: E_NOMEM is an honest
	 * refusal that changes nothing, so retry */
	for (unsigned t = 0; (rc = vm_unmap(d, b->h, b->size)) == E_NOMEM && t < 1000; t++)
		;
	if (rc)
		s_failure(s, "vm: vm_unmap(%#lx, %u bytes) by hart %u: %s", (unsigned long)b->h,
			  b->size, h->idx, err_str(rc));
	return rc;
}

static int vm_protect_op(struct stress *s, struct shart *h, struct sblk *b)
{
	struct vm_descriptor *d = s->vd[h->idx % S_VM_DESCS];
	unsigned prot = b->prot == (VM_R | VM_W) ? VM_R : VM_R | VM_W;
	int rc;

	if (b->api == API_RANGE)
		return vm_range_stamp(s, h, b, true);
	rc = vm_protect(d, b->h, b->size, prot);
	if (rc == E_NOMEM)
		return rc;
	if (rc) {
		s_failure(s, "vm: vm_protect(%#lx, %u bytes) by hart %u: %s", (unsigned long)b->h,
			  b->size, h->idx, err_str(rc));
		return rc;
	}
	b->prot = (uint16_t)prot;
	return vm_map_verify(s, h, b);
}

/* Growth: a fresh growable segment grown past its reservation, checked page
 * by page, destroyed. */
void s_vm_grow_op(struct stress *s, struct shart *h)
{
	struct vm_descriptor *d = s->vd[h->idx % S_VM_DESCS];
	uintptr_t base = VM_WIN(h->idx) + VM_TMP_OFF;
	struct vm_segment *g = vm_new_segment(d, base, PAGE, 4 * PAGE,
					      VM_R | VM_W | VM_GROW_UP, "grow");
	size_t want = PAGE * (2 + s_rand(h) % 7);
	int rc;

	if (!g) {
		INC(h->mfail[M_VM]);
		return;
	}
	rc = vm_segment_grow(g, want);
	if (rc == 0) {
		for (size_t off = 0; off < want; off += PAGE)
			if (!vm_page_va(s, d, base + off)) {
				s_failure(s, "vm: segment grown to %zu bytes by hart %u has no page "
					  "at +%zu", want, h->idx, off);
				break;
			}
	} else if (rc == E_NOMEM) {
		INC(h->mfail[M_VM]);
		if (g->size != PAGE)
			s_failure(s, "vm: vm_segment_grow failed with E_NOMEM but left %zu "
				  "bytes mapped (was %zu)", g->size, (size_t)PAGE);
	} else {
		s_failure(s, "vm: vm_segment_grow(%zu) by hart %u: %s", want, h->idx, err_str(rc));
	}
	vm_segment_clean(g);
}

/* Free one of the tick's blocks (verified by the caller): through umm's
 * fast path from the tick itself, its locked path from thread context. */
void s_irq_free(struct stress *s, struct sblk *b, bool from_tick)
{
	if (b->mgr == M_UMM) {
		if (from_tick)
			umm_free_fast(s->umm, b->va);
		else
			umm_free(s->umm, b->va);
	} else if (kfree_i(s->km, b->va)) {
		s_failure(s, "kmalloc: kfree_i refused a live block from the tick");
	}
	b->used = 0;
}

/* ---- alloc / free / realloc ---------------------------------------------- */

/* The tick calls the private kmalloc only while its hart is outside it
 * (h->in_km), unless kmirq=1: kmalloc's paths leave interrupts on, so no
 * interrupt handler may call into an instance its hart is inside
 * (docs/KMALLOC.md, "Interrupts"; docs/STRESS.md, Findings). */
#define KM(h, expr) ({ __atomic_signal_fence(__ATOMIC_SEQ_CST); (h)->in_km++;        \
		       __atomic_signal_fence(__ATOMIC_SEQ_CST); __typeof__(expr) r_ = (expr); \
		       __atomic_signal_fence(__ATOMIC_SEQ_CST); (h)->in_km--;           \
		       __atomic_signal_fence(__ATOMIC_SEQ_CST); r_; })

static size_t align_of(struct shart *h, size_t lo, size_t hi_shift)
{
	return lo << (s_rand(h) % hi_shift);
}

static void *byte_alloc(struct stress *s, struct shart *h, struct sblk *b, size_t size,
			bool aligned)
{
	void *p = NULL;
	uint8_t tag = (uint8_t)(((aligned ? 1 : 0) << 6) | (h->idx & 63));

	b->api = aligned ? API_ALIGNED : API_PLAIN;
	switch (b->mgr) {
	case M_UMM:
		if (b->inst)
			return umm_alloc(s->p->gumm, size, tag);
		return aligned ? umm_alloc_aligned(s->umm, size, align_of(h, 32, 8), tag)
			       : umm_alloc(s->umm, size, tag);
	case M_KMALLOC:
		if (b->inst)
			return aligned ? kmalloc_aligned(size, align_of(h, 32, 6)) : kmalloc(size);
		return aligned ? KM(h, kmalloc_aligned_i(s->km, size, align_of(h, 32, 8)))
			       : KM(h, kmalloc_i(s->km, size));
	case M_PMEM: {
		pmem_t *pm = b->inst ? s->p->gpmem : s->pm;
		size_t n = size / PAGE;
		uintptr_t pa;
		if (n <= 1 && !aligned) {
			pa = pmem_alloc_page(pm);
			b->api = API_PLAIN;
		} else {
			pa = pmem_alloc_pages(pm, n, aligned ? align_of(h, PAGE, 5) : 0, 0,
					      PMEM_NODE_ANY);
			b->api = API_ALIGNED;   /* freed with pmem_free_pages */
		}
		b->h = pa;
		return pa ? (void *)(pa + pm->va_offset) : NULL;
	}
	case M_LMM: {
		unsigned long fl = env_lock(&s->llock);
		if (!aligned)
			p = lmm_alloc(&s->lmm, size, 0);
		else if (s_rand(h) & 1)
			p = lmm_alloc_aligned(&s->lmm, size, 0, (int)(6 + s_rand(h) % 7), 0);
		else {
			uintptr_t lo = (uintptr_t)s->lmm_mem +
				       (s_rand(h) % 4) * (s->lmm_size / 4);
			p = lmm_alloc_gen(&s->lmm, size, 0, 5, 0, lo, s->lmm_size / 4);
		}
		env_unlock(&s->llock, fl);
		return p;
	}
	case M_MM: {
		mm_ptr_t off = mm_alloc(&h->mmh, size);
		b->h = off;
		return off ? mm_addr(&h->mmh, off) : NULL;
	}
	}
	return NULL;
}

int s_alloc(struct stress *s, struct shart *h, struct sblk *b, size_t size, bool aligned)
{
	void *p;

	b->owner = (uint16_t)h->idx;
	b->seq = ++h->seq;
	if (b->mgr == M_PMEM)
		size = (size + PAGE - 1) & ~(PAGE - 1);
	if (b->mgr == M_PMEM && size > 8 * PAGE)
		size = 8 * PAGE;
	/* one private kmalloc block in 16 is large: its own pages, so the
	 * page source (and fail=) is in play on every such call */
	if (b->mgr == M_KMALLOC && !b->inst && !aligned && s_rand(h) % 16 == 0)
		size = 2 * PAGE + (s_rand(h) % 7) * PAGE;
	if (b->mgr == M_VM) {
		int rc = vm_alloc(s, h, b, size);
		if (!rc)
			b->used = 1;
		return rc == E_NOMEM ? rc : rc ? -1 : 0;
	}
	p = byte_alloc(s, h, b, size, aligned);
	if (!p)
		return E_NOMEM;
	if (b->mgr == M_UMM || b->mgr == M_KMALLOC || b->mgr == M_LMM)
		b->h = (uintptr_t)p;
	b->va = p;
	b->size = (uint32_t)size;
	b->used = 1;
	s_stamp(s, b);
	return 0;
}

/* The manager's free call; a refusal of a valid free is a failure. */
static int byte_free(struct stress *s, struct shart *h, struct sblk *b)
{
	int rc = 0;

	switch (b->mgr) {
	case M_UMM:
		umm_free(b->inst ? s->p->gumm : s->umm, (void *)b->h);
		break;
	case M_KMALLOC:
		if (b->inst)
			kfree((void *)b->h);
		else
			rc = KM(h, kfree_i(s->km, (void *)b->h));
		break;
	case M_PMEM: {
		pmem_t *pm = b->inst ? s->p->gpmem : s->pm;
		rc = b->api == API_PLAIN ? pmem_free_page(pm, b->h)
					 : pmem_free_pages(pm, b->h, b->size / PAGE);
		break;
	}
	case M_LMM: {
		unsigned long fl = env_lock(&s->llock);
		rc = lmm_free(&s->lmm, (void *)b->h, b->size);
		env_unlock(&s->llock, fl);
		break;
	}
	case M_MM:
		for (unsigned t = 0; t < 100; t++)
			if ((rc = mm_free(&h->mmh, (mm_ptr_t)b->h)) != E_TIMEOUT && rc != E_BUSY)
				break;
		break;
	}
	if (rc)
		s_failure(s, "%s: free of live block %#lx (%u bytes, seq %u, from hart %u) by hart "
			  "%u refused: %s", s_mgr_name(b->mgr), (unsigned long)b->h, b->size,
			  b->seq, b->owner, h->idx, err_str(rc));
	return rc;
}

int s_free(struct stress *s, struct shart *h, struct sblk *b)
{
	int rc;

	if (b->mgr == M_VM)
		rc = vm_release(s, h, b);
	else if (s_verify(s, h, b, false, 0, "at free"))
		return -1;
	else {
		/* a block handed over was allocated through another handle,
		 * whose view of the area may be larger than ours (mm_ptr
		 * answers from this handle's last view): every handle maps
		 * the area at the same base here, so the offset is plain */
		if (b->mgr == M_MM)
			b->h = (uintptr_t)((uint8_t *)b->va - (uint8_t *)s->mm_mem);
		rc = byte_free(s, h, b);
	}
	b->used = 0;
	return rc;
}

/* Realloc (umm, kmalloc, mm); vm protect; pmem and lmm: none (0, unchanged).
 * E_NOMEM: refused, b unchanged and still valid. */
int s_realloc(struct stress *s, struct shart *h, struct sblk *b, size_t size)
{
	struct sblk nb = *b;
	void *p = NULL;

	if (b->mgr == M_VM)
		return vm_protect_op(s, h, b);
	if (b->mgr == M_PMEM || b->mgr == M_LMM || b->inst)
		return 0;
	if (s_verify(s, h, b, false, 0, "before realloc"))
		return -1;
	switch (b->mgr) {
	case M_UMM:
		p = umm_realloc(s->umm, b->va, size);
		break;
	case M_KMALLOC:
		p = KM(h, krealloc_i(s->km, b->va, size));
		break;
	case M_MM: {
		mm_ptr_t off = mm_realloc(&h->mmh, (mm_ptr_t)b->h, size);
		nb.h = off;
		p = off ? mm_addr(&h->mmh, off) : NULL;
		break;
	}
	}
	if (!p) {
		if (s_verify(s, h, b, false, 0, "after a failed realloc"))
			return -1;
		return E_NOMEM;
	}
	if (b->mgr != M_MM)
		nb.h = (uintptr_t)p;
	nb.va = p;
	/* the old contents moved with it: check them there against the old
	 * stamp (its cookie came from the old address) */
	{
		struct sblk moved = *b;
		size_t keep = size < b->size ? size : b->size;

		moved.va = p;
		if (s_verify(s, h, &moved, false, keep & ~(size_t)7, "after realloc moved it"))
			return -1;
	}
	nb.seq = ++h->seq;
	nb.owner = (uint16_t)h->idx;
	nb.size = (uint32_t)size;
	*b = nb;
	s_stamp(s, b);
	return 0;
}

/* ---- injected bad input --------------------------------------------------- */

/* A refused call changes nothing: call it with something wrong and expect
 * the documented error. Bounded (S_BAD_MAX per manager): each logs a line. */
void s_bad_input(struct stress *s, struct shart *h, const struct sblk *b)
{
	int rc = 0, want = 0;

	if (LD(s->mbad[b->mgr]) >= S_BAD_MAX)
		return;
	switch (b->mgr) {
	case M_UMM:
		if (b->inst)
			return;
		/* an interior pointer: logged, counted, ignored */
		umm_free(s->umm, (uint8_t *)b->va + 16);
		rc = umm_usable_size(s->umm, b->va) >= b->size ? 0 : E_CORRUPT;
		break;
	case M_PMEM:
		rc = pmem_free_page(b->inst ? s->p->gpmem : s->pm, b->h + 8);
		want = E_ALIGN;
		break;
	case M_LMM: {
		unsigned long fl = env_lock(&s->llock);
		/* free a block, then the same again: the second must be refused */
		void *p = lmm_alloc(&s->lmm, 64, 0);
		if (p && !lmm_free(&s->lmm, p, 64))
			rc = lmm_free(&s->lmm, p, 64);
		else
			rc = want = E_EXIST;
		env_unlock(&s->llock, fl);
		want = E_EXIST;
		break;
	}
	case M_KMALLOC:
		if (b->inst || b->size < 64)
			return;
		rc = KM(h, kfree_i(s->km, (uint8_t *)b->va + 16));
		want = E_INVAL;
		break;
	case M_MM:
		rc = mm_free(&h->mmh, (mm_ptr_t)(b->h + 16));
		want = E_INVAL;
		break;
	default:
		return;
	}
	__atomic_fetch_add(&s->mbad[b->mgr], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->bad_in, 1, __ATOMIC_RELAXED);
	if (rc != want)
		s_failure(s, "%s: bad input (injected) returned %d (%s), expected %s",
			  s_mgr_name(b->mgr), rc, err_str(rc), err_str(want));
	else if (b->mgr != M_VM && s_verify(s, h, b, false, 0, "after a refused bad free"))
		return;
}

/* ---- the tick -------------------------------------------------------------- */

void s_irq_op(struct stress *s, struct shart *h, bool km_ok)
{
	struct sblk *b = &h->irq[s_rand(h) % S_IRQ_SLOTS];
	bool km = km_ok && on(s, M_KMALLOC) && (!on(s, M_UMM) || (s_rand(h) & 1));

	h->irq_ops++;
	if (b->used) {
		if (b->mgr == M_KMALLOC && !km_ok)
			return;
		if (s_verify(s, h, b, false, 0, "at free in the timer tick"))
			return;
		s_irq_free(s, b, true);
		return;
	}
	if (!km && !on(s, M_UMM))
		return;
	b->mgr = km ? M_KMALLOC : M_UMM;
	b->inst = 0;
	b->api = 3;
	b->owner = (uint16_t)h->idx;
	b->seq = ++h->seq;
	b->size = (uint32_t)(S_MIN_SIZE + 8 * (s_rand(h) % 60));
	b->va = km ? kmalloc_i(s->km, b->size) : umm_alloc_fast(s->umm, b->size, 0);
	if (!b->va) {
		h->irq_null++;
		return;
	}
	b->h = (uintptr_t)b->va;
	b->used = 1;
	s_stamp(s, b);
}

/* ---- checks, hot-plug, the end ------------------------------------------ */

int s_check_all(struct stress *s)
{
	int rc = 0;
	unsigned long fl;

	if (on(s, M_UMM) && (rc = umm_check(s->umm)))
		return s_failure(s, "umm: umm_check: %s", err_str(rc)), rc;
	if (on(s, M_KMALLOC) && (rc = kmalloc_check_i(s->km, KMALLOC_CHECK_ALL)))
		return s_failure(s, "kmalloc: kmalloc_check_i: %s", err_str(rc)), rc;
	if (on(s, M_KMALLOC) && s->p->gkmalloc && (rc = kmalloc_check()))
		return s_failure(s, "kmalloc: kmalloc_check (global): %s", err_str(rc)), rc;
	if (on(s, M_PMEM) && (rc = pmem_check(s->pm)))
		return s_failure(s, "pmem: pmem_check: %s", err_str(rc)), rc;
	if (on(s, M_LMM)) {
		fl = env_lock(&s->llock);
		rc = lmm_check(&s->lmm);
		env_unlock(&s->llock, fl);
		if (rc)
			return s_failure(s, "lmm: lmm_check: %s", err_str(rc)), rc;
	}
	for (unsigned i = 0; on(s, M_VM) && i < S_VM_DESCS; i++)
		if ((rc = vm_check(s->vd[i])))
			return s_failure(s, "vm: vm_check of address space %u: %s", i,
					 err_str(rc)), rc;
	if (on(s, M_MM) && (rc = mm_check(&s->h[0]->mmh)))
		return s_failure(s, "mm: mm_check: %s", err_str(rc)), rc;
	return 0;
}

/* The calling hart is about to stop (or the run ends): give per-CPU memory
 * back through the managers' public calls. */
void s_flush_cpu(struct stress *s, struct shart *h)
{
	if (on(s, M_UMM)) {
		umm_flush(s->umm);
		if (s->p->gumm)
			umm_flush(s->p->gumm);
	}
	if (on(s, M_KMALLOC)) {
		/* the CPU's cache and remote list back to the pool; frees to it
		 * after this go to the pool (kmalloc_drain_i). The kernel's
		 * smp_stop_self drains the global instance itself. */
		KM(h, (kmalloc_drain_i(s->km), 0));
		if (s->p->gkmalloc)
			kmalloc_reap();
	}
	if (on(s, M_PMEM)) {
		pmem_flush_cpu(s->pm);
		if (s->p->gpmem)
			pmem_flush_cpu(s->p->gpmem);
	}
}

/* kmalloc after hart h stopped: nothing may be left with its CPU, in the
 * private instance (drained in s_flush_cpu) or the global one (drained by
 * the kernel's smp_stop_self). A block another hart frees to the stopped
 * CPU is on its remote list for a moment, until that hart sees the CPU
 * offline and hands the list to the pool itself (kmalloc_drain_i): so a
 * non-empty list is looked at again for a while before it is a failure.
 * The bytes seen are kept for the stat and end lines. */
#define KM_STRAND_LOOKS 200
int s_kmalloc_stranded(struct stress *s, struct shart *h)
{
	uint64_t rp = 0, rg = 0, p = 0, g = 0;

	if (!on(s, M_KMALLOC))
		return 0;
	for (unsigned look = 0; look < KM_STRAND_LOOKS; look++) {
		p = kmalloc_cpu_cached_i(s->km, h->cpu, &rp);
		g = s->p->gkmalloc ? kmalloc_cpu_cached_i(kmalloc_global(), h->cpu, &rg) : 0;
		if (!(p + g))
			break;
		for (unsigned i = 0; i < 1000; i++)
			env_cpu_relax();
	}
	ST(s->km_strand_last, p + g);
	if (p + g > s->km_strand_peak)
		s->km_strand_peak = p + g;
	s->km_strand_priv += p;
	s->km_strand_glob += g;
	s->km_strand_remote += rp + rg;
	s->km_strand_priv_remote += rp;
	if (!(p + g))
		return 0;
	s->km_strand_events++;
	return s_failure(s, "kmalloc: %llu bytes (%llu on the remote list) stranded with stopped "
			 "cpu %u after kmalloc_drain (private instance %llu, global %llu)",
			 (unsigned long long)(p + g), (unsigned long long)(rp + rg), h->cpu,
			 (unsigned long long)p, (unsigned long long)g), -1;
}

/* After hart h stopped: nothing of the private instances, nor of the
 * kernel's kpmem and kumm, may be left in its per-CPU caches (they were
 * flushed before hart_stop), nor of kmalloc's (drained). */
int s_stranded(struct stress *s, struct shart *h)
{
	unsigned c = h->cpu, chunks;
	size_t bytes;

	if (s_kmalloc_stranded(s, h))
		return -1;
	if (on(s, M_UMM) && s->p->gumm &&
	    (bytes = umm_cpu_cached(s->p->gumm, c, &chunks)))
		return s_failure(s, "umm: %zu bytes (%u chunks) of the kernel's umm stranded in "
				 "the cache of stopped cpu %u after umm_flush", bytes, chunks, c), -1;

	if (on(s, M_PMEM)) {
		size_t n = (size_t)(s->pm->pcpu[c].top - s->pm->pcpu[c].pages);
		if (n)
			return s_failure(s, "pmem: %zu pages stranded in the cache of cpu %u after "
					 "pmem_flush_cpu and hart_stop", n, c), -1;
		if (s->p->gpmem) {
			n = (size_t)(s->p->gpmem->pcpu[c].top - s->p->gpmem->pcpu[c].pages);
			if (n)
				return s_failure(s, "pmem: %zu pages of kpmem stranded in the "
						 "cache of stopped cpu %u", n, c), -1;
		}
	}
	if (on(s, M_UMM) && (bytes = umm_cpu_cached(s->umm, c, &chunks)))
		return s_failure(s, "umm: %zu bytes (%u chunks) stranded in the slots of stopped "
				 "cpu %u after umm_flush", bytes, chunks, c), -1;
	return 0;
}

static int finish_umm(struct stress *s)
{
	struct umm_stats st;
	void *all;
	int rc;

	umm_stats(s->umm, &st);
	if (st.live_bytes)
		return s_failure(s, "umm: %llu bytes still live after every block was freed",
				 (unsigned long long)st.live_bytes), -1;
	if ((rc = umm_check(s->umm)))
		return s_failure(s, "umm: umm_check at the end: %s", err_str(rc)), -1;
	/* everything merged back: the whole capacity in one block */
	all = umm_alloc(s->umm, st.capacity, 0);
	if (!all)
		return s_failure(s, "umm: the empty pool cannot return its capacity of %zu "
				 "bytes in one block (a merge was missed)", st.capacity), -1;
	umm_free(s->umm, all);
	return 0;
}

static int finish_kmalloc(struct stress *s)
{
	static struct kmalloc_stats st;   /* about 10 KiB */
	int rc;

	kmalloc_reap_all_i(s->km);
	kmalloc_stats_i(s->km, &st);
	if (st.live_bytes || st.cached_bytes)
		return s_failure(s, "kmalloc: %llu bytes live and %llu cached after every block "
				 "was freed and reaped", (unsigned long long)st.live_bytes,
				 (unsigned long long)st.cached_bytes), -1;
	if (st.pool_extents > st.pool_runs + st.cpus)
		return s_failure(s, "kmalloc: the empty pool has %u free extents in %u runs "
				 "(%u cpus): a merge was missed", st.pool_extents, st.pool_runs,
				 st.cpus), -1;
	if ((rc = kmalloc_check_i(s->km, KMALLOC_CHECK_ALL)))
		return s_failure(s, "kmalloc: kmalloc_check_i at the end: %s", err_str(rc)), -1;
	kmalloc_destroy_i(s->km);
	if (s->kpool.live)
		return s_failure(s, "kmalloc: %zu pages not returned to the page source by "
				 "kmalloc_destroy_i", s->kpool.live), -1;
	if (s->p->gkmalloc && (rc = kmalloc_check()))
		return s_failure(s, "kmalloc: kmalloc_check (global) at the end: %s",
				 err_str(rc)), -1;
	return 0;
}

static int finish_pmem(struct stress *s)
{
	size_t now = pmem_avail(s->pm);
	uintptr_t all;
	int rc;

	if (now != s->pm_free0)
		return s_failure(s, "pmem: %zu bytes free at the end, %zu at the start",
				 now, s->pm_free0), -1;
	if ((rc = pmem_check(s->pm)))
		return s_failure(s, "pmem: pmem_check at the end: %s", err_str(rc)), -1;
	all = pmem_alloc_pages(s->pm, s->pm_free0 / PAGE, 0, 0, PMEM_NODE_ANY);
	if (!all)
		return s_failure(s, "pmem: the free pages (%zu KiB) are not one run at the end",
				 s->pm_free0 >> 10), -1;
	pmem_free_pages(s->pm, all, s->pm_free0 / PAGE);
	return 0;
}

static int finish_lmm(struct stress *s)
{
	size_t now = lmm_avail(&s->lmm, 0);
	void *all;
	int rc;

	if (now != s->lmm_free0)
		return s_failure(s, "lmm: %zu bytes free at the end, %zu at the start",
				 now, s->lmm_free0), -1;
	if ((rc = lmm_check(&s->lmm)))
		return s_failure(s, "lmm: lmm_check at the end: %s", err_str(rc)), -1;
	if (s->lreg.nblocks != 1 || !(all = lmm_alloc(&s->lmm, s->lmm_free0, 0)))
		return s_failure(s, "lmm: the free memory is %zu blocks at the end, not one",
				 s->lreg.nblocks), -1;
	lmm_free(&s->lmm, all, s->lmm_free0);
	return 0;
}

static int finish_mm(struct stress *s)
{
	struct mm_stats st;
	int rc;

	if ((rc = mm_stats(&s->h[0]->mmh, &st)))
		return s_failure(s, "mm: mm_stats at the end: %s", err_str(rc)), -1;
	if (st.used != s->mm_used0)
		return s_failure(s, "mm: %zu bytes in use at the end, %zu at the start (%llu "
				 "allocations, %llu frees, %llu failed, grown %llu times)",
				 st.used, s->mm_used0, (unsigned long long)st.allocs,
				 (unsigned long long)st.frees, (unsigned long long)st.failures,
				 (unsigned long long)st.grows), -1;
	if ((rc = mm_check(&s->h[0]->mmh)))
		return s_failure(s, "mm: mm_check at the end: %s", err_str(rc)), -1;
	for (unsigned i = 0; i < s->n; i++)
		if (s->h[i]->mm_attached && (rc = mm_detach(&s->h[i]->mmh)))
			return s_failure(s, "mm: detach of hart %u: %s", i, err_str(rc)), -1;
	return 0;
}

static int finish_vm(struct stress *s)
{
	int rc;

	for (unsigned i = 0; i < S_VM_DESCS; i++) {
		if ((rc = vm_check(s->vd[i])))
			return s_failure(s, "vm: vm_check at the end: %s", err_str(rc)), -1;
		vm_free(s->vd[i]);
		s->vd[i] = NULL;
	}
	/* The sys's own object (its per-CPU table) goes with vm_sys_fini. */
	vm_sys_fini(s->vsys);
	if (s->vpool.live || s->vobjs)
		return s_failure(s, "vm: %zu pages and %lld objects not returned after vm_free "
				 "of every address space and vm_sys_fini", s->vpool.live,
				 (long long)s->vobjs), -1;
	return 0;
}

static int finish_global(struct stress *s)
{
	size_t now, kept, used, grew;

	if (!s->p->gpmem)
		return 0;
	now = pmem_avail(s->p->gpmem);
	kept = s->p->kept_bytes ? s->p->kept_bytes() : s->g_kept0;
	used = s->g_avail0 > now ? s->g_avail0 - now : 0;
	grew = kept > s->g_kept0 ? kept - s->g_kept0 : 0;
	/* the kernel heap may have grown (its pages stay mapped for reuse),
	 * with one page-table page per 2 MiB of growth */
	if (used > grew + (grew / (2u << 20) + 2) * PAGE)
		return s_failure(s, "pmem: kpmem has %zu KiB less free at the end and the kernel "
				 "heap grew by only %zu KiB", used >> 10, grew >> 10), -1;
	return 0;
}

int s_finish(struct stress *s)
{
	static int (*const fn[NMGR])(struct stress *) = {
		finish_umm, finish_kmalloc, finish_pmem, finish_lmm, finish_vm, finish_mm,
	};

	for (unsigned m = 0; m < NMGR; m++)
		if (on(s, m) && fn[m](s))
			return -1;
	return finish_global(s);
}

/* leaks=1: outstanding blocks of the private instances, grouped by where
 * they were made (umm's tags: hart and call), largest group first. */
struct leak_acc {
	uint64_t bytes[128];
	unsigned n[128];
};

static int leak_cb(void *p, size_t size, uint8_t tags, bool in_use, void *arg)
{
	struct leak_acc *a = arg;

	if (in_use && tags < 128) {
		a->bytes[tags] += size;
		a->n[tags]++;
	}
	return 0;
}

void s_leaks(struct stress *s)
{
	static struct leak_acc a;
	unsigned shown = 0;

	if (!on(s, M_UMM))
		return;
	memset(&a, 0, sizeof(a));
	umm_iterate(s->umm, leak_cb, &a);
	for (;;) {
		unsigned best = 128;
		for (unsigned t = 0; t < 128; t++)
			if (a.n[t] && (best == 128 || a.bytes[t] > a.bytes[best]))
				best = t;
		if (best == 128)
			break;
		s->p->print("stress: leak: umm %u blocks, %llu bytes, made by hart %u in %s\n",
			    a.n[best], (unsigned long long)a.bytes[best], best & 63,
			    best >> 6 ? "umm_alloc_aligned" : "umm_alloc/umm_realloc");
		a.n[best] = 0;
		shown++;
	}
	if (!shown)
		s->p->print("stress: leak: umm none outstanding\n");
	if (on(s, M_KMALLOC))
		s->p->print("stress: leak: kmalloc %zu pages out from its page source\n",
			    s->kpool.live);
	if (on(s, M_PMEM))
		s->p->print("stress: leak: pmem %zu KiB missing from the private instance\n",
			    (s->pm_free0 - pmem_avail(s->pm)) >> 10);
	if (on(s, M_LMM))
		s->p->print("stress: leak: lmm %zu bytes missing\n",
			    s->lmm_free0 - lmm_avail(&s->lmm, 0));
}

bool s_can_xfer(unsigned mgr)
{
	return mgr != M_VM;
}
