/* vm_test.c - suite vm: descriptors, segments, ranges, faults and TLB fences
 * against a fake environment: table and data pages from two ktest_mem pools
 * at fake physical bases (reached through the seam, never assuming pa ==
 * va), objects from a slot pool, and fence/satp hooks that only record, so
 * the suite runs unchanged on the host and inside the kernel.
 */
#include <string.h>

#include "ktest.h"
#include "vm.h"
#include "vm_objcache.h"

#define K4 ((uint64_t)SV39_SIZE_4K)
#define M2 ((uint64_t)SV39_SIZE_2M)
#define G1 ((uint64_t)SV39_SIZE_1G)
#define TABLE_BASE 0x100000000ull
#define PAGE_BASE  0x200000000ull
#define TABLE_PAGES 96
#define DATA_PAGES  256
#define NOBJ        96
#define OBJ_SIZE    512              /* the per-CPU table at ENV_MAX_CPUS */
#define RW (VM_R | VM_W)

struct vpool {
	uint8_t *mem;
	uint64_t base;
	unsigned n, live, errors;
	int fail_after;
	uint8_t used[DATA_PAGES];
};

struct rfence {
	uint64_t mask;
	int asid;
	uintptr_t va;
	size_t size;
};

struct fx {
	uint32_t lock;                  /* pools and objects, for parallel tests */
	bool parallel;                  /* hooks only count */
	struct vpool tables, pages;
	uint8_t *objmem;
	uint8_t objused[NOBJ];
	unsigned objlive, objerrors;
	struct vm_env env;
	vm_sys_t *sys;
	unsigned cpu;
	unsigned nlocal, nremote;
	int local_asid;
	size_t local_size;
	struct rfence remote[32];
	uint64_t satp;
};

static uint64_t vp_alloc(struct vpool *p)
{
	if (p->fail_after == 0)
		return 0;
	if (p->fail_after > 0)
		p->fail_after--;
	for (unsigned i = 0; i < p->n; i++)
		if (!p->used[i]) {
			p->used[i] = 1;
			p->live++;
			memset(p->mem + i * K4, 0, K4);
			return p->base + i * K4;
		}
	return 0;
}

static unsigned vp_index(struct vpool *p, uint64_t pa)
{
	if (pa < p->base || pa >= p->base + p->n * K4) {
		p->errors++;
		return 0;
	}
	return (unsigned)((pa - p->base) / K4);
}

static void vp_free(struct vpool *p, uint64_t pa)
{
	unsigned i = vp_index(p, pa);

	if (!p->used[i] || (pa & (K4 - 1))) {
		p->errors++;
		return;
	}
	p->used[i] = 0;
	p->live--;
}

static void fx_lock(struct fx *f)
{
	while (__atomic_exchange_n(&f->lock, 1, __ATOMIC_ACQUIRE))
		;
}

static void fx_unlock(struct fx *f)
{
	__atomic_store_n(&f->lock, 0, __ATOMIC_RELEASE);
}

static uint64_t locked_alloc(struct fx *f, struct vpool *p)
{
	fx_lock(f);
	uint64_t pa = vp_alloc(p);
	fx_unlock(f);
	return pa;
}

static void locked_free(struct fx *f, struct vpool *p, uint64_t pa)
{
	fx_lock(f);
	vp_free(p, pa);
	fx_unlock(f);
}

static uint64_t t_alloc(void *ctx) { struct fx *f = ctx; return locked_alloc(f, &f->tables); }
static void t_free(void *ctx, uint64_t pa) { struct fx *f = ctx; locked_free(f, &f->tables, pa); }
static uint64_t d_alloc(void *ctx) { struct fx *f = ctx; return locked_alloc(f, &f->pages); }
static void d_free(void *ctx, uint64_t pa) { struct fx *f = ctx; locked_free(f, &f->pages, pa); }

static void *t_va(void *ctx, uint64_t pa)
{
	struct vpool *p = &((struct fx *)ctx)->tables;
	return p->mem + vp_index(p, pa & ~(K4 - 1)) * K4;
}

static void *o_alloc(void *ctx, size_t size)
{
	struct fx *f = ctx;

	void *p = NULL;

	fx_lock(f);
	if (size > OBJ_SIZE)
		f->objerrors++;
	for (unsigned i = 0; size <= OBJ_SIZE && i < NOBJ; i++)
		if (!f->objused[i]) {
			f->objused[i] = 1;
			f->objlive++;
			p = f->objmem + i * OBJ_SIZE;
			break;
		}
	fx_unlock(f);
	return p;
}

static void o_free(void *ctx, void *p)
{
	struct fx *f = ctx;
	size_t off = (size_t)((uint8_t *)p - f->objmem);

	fx_lock(f);
	if (!p || off % OBJ_SIZE || off / OBJ_SIZE >= NOBJ || !f->objused[off / OBJ_SIZE]) {
		f->objerrors++;
	} else {
		f->objused[off / OBJ_SIZE] = 0;
		f->objlive--;
		memset(p, 0x5a, OBJ_SIZE);   /* poison: use after free shows */
	}
	fx_unlock(f);
}

static void fence_local(void *ctx, int asid, uintptr_t va, size_t size)
{
	struct fx *f = ctx;
	if (f->parallel) {
		__atomic_fetch_add(&f->nlocal, 1, __ATOMIC_RELAXED);
		return;
	}
	f->nlocal++;
	f->local_asid = asid;
	f->local_size = size;
}

static void fence_remote(void *ctx, uint64_t mask, int asid, uintptr_t va, size_t size)
{
	struct fx *f = ctx;
	if (f->parallel) {
		__atomic_fetch_add(&f->nremote, 1, __ATOMIC_RELAXED);
		return;
	}
	if (f->nremote < 32)
		f->remote[f->nremote] = (struct rfence){ mask, asid, va, size };
	f->nremote++;
}

static void write_satp(void *ctx, uint64_t satp)
{
	__atomic_store_n(&((struct fx *)ctx)->satp, satp, __ATOMIC_RELAXED);
}
static unsigned cur_cpu(void *ctx) { return ((struct fx *)ctx)->cpu; }

static struct fx *fx_new(unsigned asid_bits)
{
	struct fx *f = ktest_mem(sizeof(*f), 64);

	if (!f)
		return NULL;
	f->tables = (struct vpool){ ktest_mem(TABLE_PAGES * K4, K4), TABLE_BASE, TABLE_PAGES, 0, 0, -1, {0} };
	f->pages = (struct vpool){ ktest_mem(DATA_PAGES * K4, K4), PAGE_BASE, DATA_PAGES, 0, 0, -1, {0} };
	f->objmem = ktest_mem(NOBJ * OBJ_SIZE, 64);
	f->sys = ktest_mem(sizeof(*f->sys), 64);
	if (!f->tables.mem || !f->pages.mem || !f->objmem || !f->sys)
		return NULL;
	f->env = (struct vm_env){
		.pt = { t_alloc, t_free, t_va, f },
		.page_alloc = d_alloc, .page_free = d_free,
		.obj_alloc = o_alloc, .obj_free = o_free,
		.fence_local = fence_local, .fence_remote = fence_remote,
		.write_satp = write_satp, .cpu = cur_cpu, .ctx = f,
		.asid_bits = asid_bits, .ncpus = ENV_MAX_CPUS,
	};
	if (vm_sys_init(f->sys, &f->env))
		return NULL;
	return f;
}

/* Objects the live sys itself holds in the fixture's pool: its per-CPU
 * table (none after vm_sys_fini, or when it came from another allocator). */
static unsigned sys_objs(const struct fx *f)
{
	const uint8_t *c = (const uint8_t *)f->sys->cur;

	return c && c >= f->objmem && c < f->objmem + NOBJ * OBJ_SIZE;
}

/* Everything handed out came back. */
#define EXPECT_ALL_RETURNED(f)                                                \
	do {                                                                  \
		EXPECT_EQ((f)->tables.live, 0);                               \
		EXPECT_EQ((f)->pages.live, 0);                                \
		EXPECT_EQ((f)->objlive, sys_objs(f));                         \
		EXPECT_EQ((f)->tables.errors + (f)->pages.errors + (f)->objerrors, 0); \
	} while (0)

#define SETUP(f, d)                                                           \
	struct fx *f = fx_new(16);                                            \
	ASSERT(f != NULL);                                                    \
	struct vm_descriptor *d = vm_new_i(f->sys);                          \
	ASSERT(d != NULL)

KTEST(vm, free_returns_every_page_and_asid)
{
	SETUP(f, d);
	unsigned asid = d->asid;
	struct vm_segment *s;

	EXPECT_NE(asid, 0);
	s = vm_new_segment(d, 0x10000, 4 * K4, 16 * K4, RW | VM_U | VM_GROW_UP, "heap");
	ASSERT(s != NULL);
	ASSERT(vm_new_segment(d, 0x7f000000, 2 * K4, 8 * K4, RW | VM_U | VM_GROW_DOWN, "stack") != NULL);
	ASSERT_EQ(vm_map(d, 0x40000000, 0x90000000, M2 + K4, VM_R | VM_U), 0);
	ASSERT(vm_segment_alloc(s, K4) != NULL);
	EXPECT_EQ(f->pages.live, 6);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
	d = vm_new_i(f->sys);
	ASSERT(d != NULL);
	EXPECT_EQ(d->asid, asid);                     /* the ASID came back */
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, segment_overlap_and_guard_refused)
{
	SETUP(f, d);
	const uintptr_t a = 0x100000;
	struct vm_segment *s, *t;

	s = vm_new_segment(d, a, 2 * K4, 8 * K4, RW | VM_GROW_UP, "a");
	ASSERT(s != NULL);
	unsigned pages = f->pages.live, objs = f->objlive;

	/* Inside the reserved room, across its end, in the guard gap. */
	EXPECT(vm_new_segment(d, a + 4 * K4, K4, K4, RW, "room") == NULL);
	EXPECT(vm_new_segment(d, a - K4, 2 * K4, 2 * K4, RW, "across") == NULL);
	EXPECT(vm_new_segment(d, a + 8 * K4, K4, K4, RW, "guard") == NULL);
	EXPECT(vm_new_segment(d, a - K4, K4, K4, RW, "guard-below") == NULL);
	/* Bad arguments. */
	EXPECT(vm_new_segment(d, a + 64 * K4, 2 * K4, K4, RW, "size>max") == NULL);
	EXPECT(vm_new_segment(d, a + 64 * K4 + 1, K4, K4, RW, "unaligned") == NULL);
	EXPECT(vm_new_segment(d, a + 64 * K4, K4, K4, VM_W, "W only") == NULL);
	EXPECT(vm_new_segment(d, a + 64 * K4, K4, K4, RW | VM_GROW_UP | VM_GROW_DOWN, "both") == NULL);
	EXPECT(vm_new_segment(d, SV39_LOWER_END - K4, K4, 2 * K4, RW, "top") == NULL);
	EXPECT(vm_new_segment(d, 0, K4, K4, RW, "page0") == NULL);
	EXPECT(vm_new_segment(d, a + 64 * K4, 0, K4, RW, "empty") == NULL);
	EXPECT_EQ(f->pages.live, pages);
	EXPECT_EQ(f->objlive, objs);

	/* One guard page away is fine. */
	t = vm_new_segment(d, a + 9 * K4, K4, 4 * K4, RW, "b");
	ASSERT(t != NULL);
	/* Growing a into b's guard gap is refused; within its room is not. */
	EXPECT_EQ(vm_segment_grow(s, 9 * K4), E_EXIST);
	EXPECT_EQ(vm_segment_grow(s, 8 * K4), 0);
	EXPECT_EQ(vm_segment_grow(s, 4 * K4), E_INVAL);     /* no shrinking */
	/* Plain mappings keep out of reservations and guard gaps too. */
	EXPECT_EQ(vm_map(d, a + 8 * K4, 0x80000000, K4, VM_R), E_EXIST);
	EXPECT_EQ(vm_map(d, a + 16 * K4, 0x80000000, K4, VM_R), 0);
	EXPECT(vm_new_segment(d, a + 15 * K4, K4, 4 * K4, RW, "over-map") == NULL);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, grow_up_and_down)
{
	SETUP(f, d);
	struct vm_segment *h, *st;
	uint64_t pa;

	h = vm_new_segment(d, 0x200000, K4, 4 * K4, RW | VM_GROW_UP, "heap");
	st = vm_new_segment(d, 0x400000, K4, 4 * K4, RW | VM_GROW_DOWN, "stack");
	ASSERT(h && st);
	EXPECT_EQ(vm_get_phys(d, 0x200000, &pa), 0);
	EXPECT_EQ(vm_get_phys(d, 0x201000, &pa), E_NOENT);
	EXPECT_EQ(vm_get_phys(d, 0x403000, &pa), 0);        /* stack: top page */
	EXPECT_EQ(vm_get_phys(d, 0x400000, &pa), E_NOENT);

	ASSERT_EQ(vm_segment_grow(h, 3 * K4), 0);
	EXPECT_EQ(vm_get_phys(d, 0x202000, &pa), 0);
	EXPECT_GE(pa, PAGE_BASE);
	ASSERT_EQ(vm_segment_grow(st, 3 * K4), 0);
	EXPECT_EQ(vm_get_phys(d, 0x401000, &pa), 0);
	EXPECT_EQ(vm_get_phys(d, 0x400000, &pa), E_NOENT);
	/* Beyond max_size: the reservation grows too, away from neighbours. */
	ASSERT_EQ(vm_segment_grow(st, 6 * K4), 0);
	EXPECT_EQ(st->base, 0x400000 - 2 * K4);
	EXPECT_EQ(vm_get_phys(d, 0x3fe000, &pa), 0);
	ASSERT_EQ(vm_segment_grow(h, 6 * K4), 0);
	EXPECT_EQ(h->max_size, 6 * K4);
	EXPECT_EQ(vm_get_phys(d, 0x205000, &pa), 0);
	EXPECT_EQ(f->pages.live, 12);
	/* Out of data pages: refused, nothing new mapped. */
	f->pages.fail_after = 1;
	EXPECT_EQ(vm_segment_grow(h, 8 * K4), E_NOMEM);
	EXPECT_EQ(f->pages.live, 12);
	EXPECT_EQ(h->size, 6 * K4);
	EXPECT_EQ(vm_get_phys(d, 0x206000, &pa), E_NOENT);
	f->pages.fail_after = -1;
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, faults_grow_or_are_classified)
{
	SETUP(f, d);
	const struct vm_segment *seg = NULL;
	struct vm_segment *h, *st, *ro;
	uint64_t pa;

	h = vm_new_segment(d, 0x200000, K4, 8 * K4, RW | VM_U | VM_GROW_UP, "heap");
	st = vm_new_segment(d, 0x400000, K4, 4 * K4, RW | VM_U | VM_GROW_DOWN, "stack");
	ro = vm_new_segment(d, 0x600000, K4, K4, VM_R | VM_X | VM_U, "text");
	ASSERT(h && st && ro);

	EXPECT_EQ(vm_handle_fault(d, 0x202010, VM_W | VM_U, &seg), VM_FAULT_OK);
	EXPECT(seg == h);
	EXPECT_EQ(h->size, 3 * K4);
	EXPECT_EQ(vm_get_phys(d, 0x202000, &pa), 0);
	EXPECT_EQ(vm_handle_fault(d, 0x401008, VM_R, &seg), VM_FAULT_OK);
	EXPECT_EQ(st->size, 3 * K4);
	/* Mapped already (stale TLB): resolved by a local fence. */
	unsigned nl = f->nlocal;
	EXPECT_EQ(vm_handle_fault(d, 0x200000, VM_R, &seg), VM_FAULT_OK);
	EXPECT_EQ(f->nlocal, nl + 1);

	EXPECT_EQ(vm_handle_fault(d, 0x400000 - 8, VM_W, &seg), VM_FAULT_STACK_OVERFLOW);
	EXPECT(seg == st);
	EXPECT(strcmp(seg->name, "stack") == 0);
	EXPECT_EQ(vm_handle_fault(d, 0x200000 + 8 * K4 + 4, VM_R, &seg), VM_FAULT_GUARD);
	EXPECT(seg == h);
	EXPECT_EQ(vm_handle_fault(d, 0x10000000, VM_R, &seg), VM_FAULT_NOSEG);
	EXPECT(seg == NULL);
	EXPECT_EQ(vm_handle_fault(d, 0x600010, VM_W, &seg), VM_FAULT_PERM);
	EXPECT(seg == ro);
	EXPECT_EQ(vm_handle_fault(d, 0x600010, VM_X | VM_U, &seg), VM_FAULT_OK);
	/* Protection narrowed after mapping: still a permission fault. */
	ASSERT_EQ(vm_protect(d, 0x200000, K4, VM_R | VM_U), 0);
	EXPECT_EQ(vm_handle_fault(d, 0x200000, VM_W, &seg), VM_FAULT_PERM);
	/* Growth without memory: reported, nothing mapped. */
	f->pages.fail_after = 0;
	EXPECT_EQ(vm_handle_fault(d, 0x206000, VM_W, &seg), VM_FAULT_NOMEM);
	EXPECT_EQ(h->size, 3 * K4);
	f->pages.fail_after = -1;
	EXPECT(strcmp(vm_fault_str(VM_FAULT_STACK_OVERFLOW), "stack overflow") == 0);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, faults_in_kernel_segment_without_user_bit)
{
	SETUP(f, d);
	const struct vm_segment *seg;

	ASSERT(vm_new_segment(d, 0x200000, K4, 2 * K4, RW | VM_GROW_UP, "kdata") != NULL);
	EXPECT_EQ(vm_handle_fault(d, 0x200000, VM_R | VM_U, &seg), VM_FAULT_PERM);
	EXPECT_EQ(vm_handle_fault(d, 0x200000, VM_X, &seg), VM_FAULT_PERM);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, ranges_alloc_free_merge)
{
	SETUP(f, d);
	struct vm_segment *s = vm_new_segment(d, 0x300000, 8 * K4, 8 * K4, RW, "pool");
	uintptr_t a, b, c, e;

	ASSERT(s != NULL);
	a = (uintptr_t)vm_segment_alloc(s, 2 * K4);
	b = (uintptr_t)vm_segment_alloc(s, 3 * K4 - 100);     /* rounded up */
	c = (uintptr_t)vm_segment_alloc(s, K4);
	ASSERT(a && b && c);
	EXPECT_EQ(a, 0x300000);
	EXPECT_EQ(b, a + 2 * K4);
	EXPECT_EQ(c, b + 3 * K4);
	EXPECT(vm_segment_alloc(s, 3 * K4) == NULL);         /* 2 pages left */
	EXPECT(vm_segment_alloc(s, 0) == NULL);
	vm_segment_free(s, (void *)b);
	vm_segment_free(s, (void *)a);                        /* merges with b */
	EXPECT_EQ(vm_check(d), 0);
	e = (uintptr_t)vm_segment_alloc(s, 5 * K4);
	EXPECT_EQ(e, a);
	vm_segment_free(s, (void *)c);
	vm_segment_free(s, (void *)e);                        /* all one range */
	EXPECT(s->free != NULL && s->free->next == NULL);
	EXPECT_EQ(s->free->size, 8 * K4);
	EXPECT(s->used == NULL);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, alloc_grows_up_segment)
{
	SETUP(f, d);
	struct vm_segment *s = vm_new_segment(d, 0x300000, K4, 16 * K4, RW | VM_GROW_UP, "heap");
	uintptr_t a, b;

	ASSERT(s != NULL);
	a = (uintptr_t)vm_segment_alloc(s, 3 * K4);
	EXPECT_EQ(a, 0x300000);
	EXPECT_EQ(s->size, 3 * K4);
	b = (uintptr_t)vm_segment_alloc(s, 2 * K4);
	EXPECT_EQ(b, a + 3 * K4);
	EXPECT_EQ(s->size, 5 * K4);
	EXPECT_EQ(f->pages.live, 5);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, clean_unmaps_frees_and_fences)
{
	SETUP(f, d);
	struct vm_segment *s = vm_new_segment(d, 0x300000, 4 * K4, 4 * K4, RW, "tmp");
	uint64_t pa;

	ASSERT(s != NULL);
	ASSERT(vm_segment_alloc(s, K4) != NULL);
	unsigned nl = f->nlocal;
	vm_segment_clean(s);
	EXPECT_EQ(f->pages.live, 0);
	EXPECT_GE(f->nlocal, nl + 1);
	EXPECT_EQ(f->local_asid, (int)d->asid);
	EXPECT_EQ(vm_get_phys(d, 0x300000, &pa), E_NOENT);
	EXPECT(d->segs == NULL);
	/* The room is free again. */
	EXPECT(vm_new_segment(d, 0x300000, K4, K4, RW, "again") != NULL);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, map_unmap_get_phys_and_errors)
{
	SETUP(f, d);
	uint64_t pa;
	uint64_t n[3];

	ASSERT(vm_new_segment(d, 0x10000, K4, K4, RW, "seg") != NULL);
	ASSERT_EQ(vm_map(d, G1, 0x80000000, G1 + M2, VM_R | VM_W | VM_U), 0);
	pt_count(&d->pt, 0, SV39_ROOT_UPPER, n);
	EXPECT_EQ(n[2], 1);
	EXPECT_EQ(n[1], 1);
	EXPECT_EQ(vm_get_phys(d, G1 + 0x123456, &pa), 0);
	EXPECT_EQ(pa, 0x80123456);
	EXPECT_EQ(vm_map(d, G1 + K4, 0, K4, VM_R), E_EXIST);
	EXPECT_EQ(vm_map(d, 0x10000, 0, K4, VM_R), E_EXIST);      /* segment */
	EXPECT_EQ(vm_map(d, 0x80001, 0, K4, VM_R), E_ALIGN);
	EXPECT_EQ(vm_map(d, 0x80000, 1, K4, VM_R), E_ALIGN);
	EXPECT_EQ(vm_map(d, SV39_LOWER_END, 0, K4, VM_R), E_RANGE);   /* non-canonical */
	EXPECT_EQ(vm_map(d, SV39_UPPER_START, 0, K4, VM_R), E_RANGE); /* kernel half */
	EXPECT_EQ(vm_map(d, 0x80000, 0, K4, VM_R | VM_G), E_INVAL);
	EXPECT_EQ(vm_map(d, 0x80000, 0, K4, VM_W), E_INVAL);
	EXPECT_EQ(vm_get_phys(d, SV39_UPPER_START, &pa), E_RANGE);
	/* Partial unmap splits the 1 GiB page. */
	ASSERT_EQ(vm_unmap(d, G1 + 5 * K4, K4), 0);
	EXPECT_EQ(vm_get_phys(d, G1 + 5 * K4, &pa), E_NOENT);
	EXPECT_EQ(vm_get_phys(d, G1 + 6 * K4, &pa), 0);
	EXPECT_EQ(pa, 0x80006000);
	EXPECT_EQ(vm_unmap(d, G1 + 5 * K4, K4), E_NOENT);
	EXPECT_EQ(vm_unmap(d, 0x10000, K4), E_BUSY);
	EXPECT_EQ(vm_unmap(d, G1, G1 + M2), 0);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, remote_fences_reach_active_harts)
{
	SETUP(f, d);

	f->cpu = 1;
	vm_load_task(d);
	EXPECT_EQ(f->satp, sv39_satp(d->asid, d->pt.root));
	f->cpu = 2;
	vm_load_task(d);
	f->cpu = 0;
	EXPECT_EQ(d->active, 0x6);

	/* A new mapping needs no remote fence. */
	ASSERT_EQ(vm_map(d, 0x80000, 0x80000000, K4, VM_R | VM_U), 0);
	EXPECT_EQ(f->nremote, 0);
	/* Weakening and removal do, before the call returns. */
	ASSERT_EQ(vm_protect(d, 0x80000, K4, VM_R), 0);
	ASSERT_EQ(f->nremote, 1);
	EXPECT_EQ(f->remote[0].mask, 0x6);
	ASSERT_EQ(vm_unmap(d, 0x80000, K4), 0);
	ASSERT_EQ(f->nremote, 2);
	EXPECT_EQ(f->remote[1].mask, 0x6);
	EXPECT_EQ(f->remote[1].asid, (int)d->asid);
	EXPECT_EQ(f->remote[1].va, 0x80000);
	EXPECT_EQ(f->remote[1].size, K4);

	/* Hart 2 switches away: no IPI for it, but it flushes on return. */
	f->cpu = 2;
	vm_unload_task(d);
	f->cpu = 0;
	EXPECT_EQ(d->active, 0x2);
	ASSERT_EQ(vm_map(d, 0x80000, 0x80000000, K4, VM_R), 0);
	ASSERT_EQ(vm_unmap(d, 0x80000, K4), 0);
	ASSERT_EQ(f->nremote, 3);
	EXPECT_EQ(f->remote[2].mask, 0x2);
	f->cpu = 2;
	unsigned nl = f->nlocal;
	vm_load_task(d);
	EXPECT_EQ(f->nlocal, nl + 1);
	EXPECT_EQ(f->local_asid, (int)d->asid);
	EXPECT_EQ(f->local_size, 0);
	nl = f->nlocal;
	vm_unload_task(d);
	vm_load_task(d);                                  /* nothing stale now */
	EXPECT_EQ(f->nlocal, nl);
	vm_unload_task(d);
	f->cpu = 1;
	vm_unload_task(d);
	f->cpu = 0;
	EXPECT_EQ(d->active, 0);
	/* vm_free flushes the ASID wherever d ran before it can be reused. */
	unsigned nr = f->nremote;
	vm_free(d);
	ASSERT_EQ(f->nremote, nr + 1);
	EXPECT_EQ(f->remote[nr].mask, 0x6);
	EXPECT_EQ(f->remote[nr].size, 0);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, asid_exhaustion_refused)
{
	struct fx *f = fx_new(2);                /* ASIDs 1..3 for users */
	struct vm_descriptor *d[4];

	ASSERT(f != NULL);
	for (int i = 0; i < 3; i++) {
		d[i] = vm_new_i(f->sys);
		ASSERT(d[i] != NULL);
		EXPECT_EQ(d[i]->asid, (unsigned)i + 1);
	}
	EXPECT(vm_new_i(f->sys) == NULL);
	EXPECT_EQ(f->tables.live, 3);
	vm_free(d[1]);
	d[3] = vm_new_i(f->sys);
	ASSERT(d[3] != NULL);
	EXPECT_EQ(d[3]->asid, 2);
	vm_free(d[0]);
	vm_free(d[2]);
	vm_free(d[3]);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, kernel_heap_and_shared_upper_half)
{
	struct fx *f = fx_new(16);
	const uintptr_t heap = SV39_UPPER_START + 64 * G1, vmap = heap + 8 * G1;
	const uintptr_t other = SV39_UPPER_START + 100 * G1;
	const struct vm_segment *seg;
	struct vm_descriptor *u, *k;
	struct pt root;
	uint64_t pa;
	char *p, *q, *m;

	ASSERT(f != NULL);
	/* Stand-in for the boot table: a 2 GiB direct map of 1 GiB pages. */
	ASSERT_EQ(pt_init(&root, &f->env.pt), 0);
	ASSERT_EQ(pt_map(&root, SV39_UPPER_START, 0x80000000, 2 * G1,
			 PT_R | PT_W | PT_G, NULL), 0);
	EXPECT_EQ(vm_kernel_init(f->sys, root.root, heap + 1, K4, 4 * K4, vmap, K4), E_INVAL);
	EXPECT_EQ(f->pages.live, 0);
	ASSERT_EQ(vm_kernel_init(f->sys, root.root, heap, 2 * K4, 64 * K4, vmap, 16 * K4), 0);
	k = vm_kernel(f->sys);
	u = vm_new_i(f->sys);
	ASSERT(u != NULL);
	/* The user descriptor shares the kernel's upper half. */
	EXPECT_EQ(pt_translate(&u->pt, SV39_UPPER_START + 0x1008, &pa, NULL, NULL), 0);
	EXPECT_EQ(pa, 0x80001008);
	EXPECT_EQ(pt_translate(&u->pt, heap, NULL, NULL, NULL), 0);

	p = vm_heap_pages_i(f->sys, 1);
	q = vm_heap_pages_i(f->sys, 4);          /* grows the heap */
	ASSERT(p && q);
	EXPECT_EQ((uintptr_t)p, heap);
	EXPECT_EQ((uintptr_t)q, heap + K4);
	EXPECT_EQ(vm_get_phys(k, (uintptr_t)q + 3 * K4 + 5, &pa), 0);
	EXPECT_EQ(pa & (K4 - 1), 5);

	/* A new upper-half root entry reaches every descriptor. */
	ASSERT_EQ(vm_map(k, other, 0x80000000, M2, VM_R), 0);
	EXPECT_EQ(pt_translate(&u->pt, other + 8, &pa, NULL, NULL), 0);
	EXPECT_EQ(pa, 0x80000008);
	ASSERT_EQ(vm_unmap(k, other, M2), 0);
	EXPECT_EQ(f->local_asid, -1);            /* global: every address space */

	m = vm_map_heap_i(f->sys, 0x10000010, 2 * K4, VM_R | VM_W);
	ASSERT(m != NULL);
	EXPECT_EQ((uintptr_t)m, vmap + 0x10);
	EXPECT_EQ(vm_get_phys(k, (uintptr_t)m + K4, &pa), 0);
	EXPECT_EQ(pa, 0x10001010);
	EXPECT_EQ(vm_map(k, vmap, 0, K4, VM_R), E_EXIST);   /* vmap is a segment */
	vm_unmap_heap_i(f->sys, m);
	EXPECT_EQ(vm_get_phys(k, vmap, &pa), E_NOENT);

	vm_free_heap_pages_i(f->sys, p, 1);
	vm_free_heap_pages_i(f->sys, q, 4);
	/* Touching the heap's reserved room grows it on demand. */
	EXPECT_EQ(vm_handle_fault(k, heap + 10 * K4 + 8, VM_W, &seg), VM_FAULT_OK);
	EXPECT(seg == f->sys->heap);
	EXPECT_EQ(vm_get_phys(k, heap + 10 * K4, &pa), 0);
	EXPECT_EQ(vm_handle_fault(k, heap - 8, VM_R, &seg), VM_FAULT_GUARD);
	EXPECT_EQ(vm_check(k), 0);
	EXPECT_EQ(vm_check(u), 0);
	vm_dump(k);
	vm_dump(u);

	vm_free(u);
	vm_sys_fini(f->sys);
	EXPECT_EQ(f->pages.live, 0);
	pt_free_tables(&root, 0, SV39_ENTRIES);
	EXPECT_ALL_RETURNED(f);
}

KTEST(vm, check_finds_broken_segments)
{
	SETUP(f, d);
	struct vm_segment *s = vm_new_segment(d, 0x300000, 4 * K4, 8 * K4, RW | VM_GROW_UP, "s");
	void *a;

	ASSERT(s != NULL);
	a = vm_segment_alloc(s, K4);
	ASSERT(a != NULL);
	ASSERT_EQ(vm_check(d), 0);
	s->size += K4;                          /* claims an unmapped page */
	EXPECT_EQ(vm_check(d), E_CORRUPT);
	s->size -= K4;
	s->used->size += K4;                    /* ranges overlap */
	EXPECT_EQ(vm_check(d), E_CORRUPT);
	s->used->size -= K4;
	ASSERT_EQ(vm_map(d, 0x300000 + 6 * K4, 0x80000000, K4, VM_R), E_EXIST);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

/* Harts (host: threads) work on one descriptor at once: each loads it,
 * grows its own segment by faults, maps and unmaps its own pages and takes
 * ranges. Locks keep the shared tree and segment list consistent. */
struct par {
	struct fx *f;
	struct vm_descriptor *d;
	unsigned errors;
};

static void par_worker(unsigned i, void *arg)
{
	struct par *p = arg;
	struct vm_descriptor *d = p->d;
	uintptr_t base = 0x200000 + (uintptr_t)i * 0x100000;
	uintptr_t map = 0x40000000 + (uintptr_t)i * M2;
	unsigned bad = 0;
	struct vm_segment *s;
	uint64_t pa;

	vm_load_task(d);
	s = vm_new_segment(d, base, K4, 16 * K4, RW | VM_GROW_UP, "par");
	if (!s) {
		__atomic_fetch_add(&p->errors, 1, __ATOMIC_RELAXED);
		vm_unload_task(d);
		return;
	}
	for (unsigned it = 0; it < 300; it++) {
		const struct vm_segment *seg;
		void *a;

		bad += vm_handle_fault(d, base + (it % 16) * K4 + 8, VM_W, &seg) != VM_FAULT_OK;
		bad += seg != s;
		bad += vm_map(d, map, 0x80000000 + it * K4, K4, VM_R) != 0;
		bad += vm_get_phys(d, map + 4, &pa) != 0 || pa != 0x80000004 + it * K4;
		bad += vm_unmap(d, map, K4) != 0;
		a = vm_segment_alloc(s, 2 * K4);
		bad += a == NULL;
		if (a)
			vm_segment_free(s, a);
	}
	vm_segment_clean(s);
	vm_unload_task(d);
	__atomic_fetch_add(&p->errors, bad, __ATOMIC_RELAXED);
}

KTEST(vm, parallel_descriptor_use)
{
	struct fx *f = fx_new(16);
	struct par p = { 0 };
	unsigned n = ktest_ncpus();

	ASSERT(f != NULL);
	if (n > 8)
		n = 8;
	f->env.cpu = NULL;                /* the real hart / thread index */
	f->parallel = true;
	p.f = f;
	p.d = vm_new_i(f->sys);
	ASSERT(p.d != NULL);
	ktest_parallel(n, par_worker, &p);
	EXPECT_EQ(p.errors, 0);
	EXPECT_EQ(p.d->active, 0);
	EXPECT(p.d->segs == NULL);
	EXPECT_EQ(vm_check(p.d), 0);
	EXPECT_EQ(f->pages.live, 0);
	if (n > 1)
		EXPECT_GE(f->nlocal, 1);
	vm_free(p.d);
	EXPECT_ALL_RETURNED(f);
}

/* One 4 KiB page of a user descriptor (vm_map/vm_unmap's fast path, with
 * the page's tables cached after the first call): the same errors, the
 * same reservation checks, and fences: local always, remote only to harts
 * where d is active, stale marks for harts where it ran before. */
KTEST(vm, single_page_fast_path_fences_and_errors)
{
	SETUP(f, d);
	const uintptr_t va = 0x100000;
	const uint64_t pa = 0x80040000;
	uint64_t got;
	unsigned nl;

	vm_load_task(d);                                  /* on cpu 0 */
	ASSERT_EQ(vm_map(d, va, pa, K4, RW | VM_U), 0);   /* tables made */
	nl = f->nlocal;
	ASSERT_EQ(vm_unmap(d, va, K4), 0);
	EXPECT_EQ(f->nlocal, nl + 1);
	EXPECT_EQ(f->local_asid, (int)d->asid);
	EXPECT_EQ(f->local_size, K4);
	EXPECT_EQ(f->nremote, 0);
	EXPECT_EQ(d->stale, 0);
	ASSERT_EQ(vm_map(d, va, pa, K4, RW | VM_U), 0);
	EXPECT_EQ(f->nlocal, nl + 2);
	EXPECT_EQ(f->local_size, K4);
	EXPECT_EQ(vm_map(d, va, pa + K4, K4, VM_R), E_EXIST);
	EXPECT_EQ(f->nlocal, nl + 2);                     /* nothing changed */
	EXPECT_EQ(vm_get_phys(d, va + 8, &got), 0);
	EXPECT_EQ(got, pa + 8);

	/* Argument errors, each before anything is touched. */
	EXPECT_EQ(vm_map(NULL, va + K4, pa, K4, VM_R), E_INVAL);
	EXPECT_EQ(vm_map(d, va + K4, pa, K4, VM_R | VM_G), E_INVAL);
	EXPECT_EQ(vm_map(d, va + K4, pa, K4, VM_W), E_INVAL);
	EXPECT_EQ(vm_map(d, va + K4, pa, K4, 0), E_INVAL);
	EXPECT_EQ(vm_map(d, va + K4, pa, K4, VM_R | 0x40), E_INVAL);
	EXPECT_EQ(vm_map(d, va + K4, pa + 8, K4, VM_R), E_ALIGN);
	EXPECT_EQ(vm_map(d, va + K4 + 8, pa, K4, VM_R), E_ALIGN);
	EXPECT_EQ(vm_map(d, SV39_LOWER_END, pa, K4, VM_R), E_RANGE);
	EXPECT_EQ(vm_map(d, va + K4, 1ull << SV39_PA_BITS, K4, VM_R), E_RANGE);
	EXPECT_EQ(vm_unmap(d, va + 8, K4), E_ALIGN);
	EXPECT_EQ(vm_unmap(d, SV39_LOWER_END, K4), E_RANGE);
	EXPECT_EQ(vm_unmap(d, va + K4, K4), E_NOENT);     /* hole, same table */
	EXPECT_EQ(pt_mapped_pages(&d->pt, 0, SV39_LOWER_END), 1);
	/* The top page of the lower half is fine. */
	ASSERT_EQ(vm_map(d, SV39_LOWER_END - K4, pa, K4, VM_R), 0);
	ASSERT_EQ(vm_unmap(d, SV39_LOWER_END - K4, K4), 0);

	/* Reservations: room, guard gaps above and below. */
	ASSERT(vm_new_segment(d, 0x110000, K4, 2 * K4, RW | VM_GROW_UP, "s") != NULL);
	EXPECT_EQ(vm_map(d, 0x111000, pa, K4, VM_R), E_EXIST);
	EXPECT_EQ(vm_map(d, 0x112000, pa, K4, VM_R), E_EXIST);
	EXPECT_EQ(vm_map(d, 0x10f000, pa, K4, VM_R), E_EXIST);
	EXPECT_EQ(vm_unmap(d, 0x110000, K4), E_BUSY);
	EXPECT_EQ(vm_unmap(d, 0x112000, K4), E_NOENT);
	ASSERT_EQ(vm_map(d, 0x113000, pa, K4, VM_R), 0);
	ASSERT_EQ(vm_unmap(d, 0x113000, K4), 0);

	/* Ran on cpu 1 before, not active there now: marked stale, no IPI. */
	f->cpu = 1;
	vm_load_task(d);
	vm_unload_task(d);
	f->cpu = 0;
	ASSERT_EQ(vm_unmap(d, va, K4), 0);
	EXPECT_EQ(f->nremote, 0);
	EXPECT_EQ(d->stale, 0x2);
	/* Active on cpu 3: fenced there before the call returns. */
	f->cpu = 3;
	vm_load_task(d);
	f->cpu = 0;
	ASSERT_EQ(vm_map(d, va, pa, K4, VM_R), 0);
	EXPECT_EQ(f->nremote, 0);
	ASSERT_EQ(vm_unmap(d, va, K4), 0);
	ASSERT_EQ(f->nremote, 1);
	EXPECT_EQ(f->remote[0].mask, 0x8);
	EXPECT_EQ(f->remote[0].va, va);
	EXPECT_EQ(f->remote[0].size, K4);
	/* One page out of a 2 MiB leaf: a split, fenced as a whole. */
	ASSERT_EQ(vm_map(d, 4 * M2, 0x80000000, M2, VM_R), 0);
	ASSERT_EQ(vm_unmap(d, 4 * M2 + K4, K4), 0);
	EXPECT_EQ(f->local_size, 0);
	ASSERT_EQ(f->nremote, 2);
	EXPECT_EQ(f->remote[1].mask, 0x8);
	EXPECT_EQ(f->remote[1].size, 0);
	EXPECT_EQ(pt_mapped_pages(&d->pt, 4 * M2, M2), 511);

	f->cpu = 3;
	vm_unload_task(d);
	f->cpu = 0;
	vm_unload_task(d);
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
	EXPECT_ALL_RETURNED(f);
}

/* ---- the VM's object cache (vm_objcache: kernel/mem.c's obj hooks) ---- */

/* Sizes map to their classes, objects are 16-aligned and distinct, pages
 * come and go with their objects, bad sizes and foreign or repeated frees
 * are refused without a change, and fini returns every page. */
KTEST(vm, objcache_classes_pages_and_refusals)
{
	struct fx *f = fx_new(16);
	static struct vm_objcache c;
	static void *p[400];
	const size_t sizes[] = { 1, 24, 32, 33, 64, 88, 128, 129, 256, 512 };

	ASSERT(f != NULL);
	vm_objcache_init(&c, &f->env.pt);
	EXPECT(vm_objcache_alloc(&c, 0) == NULL);
	EXPECT(vm_objcache_alloc(&c, VM_OBJ_MAX + 1) == NULL);
	EXPECT_EQ(f->tables.live, 0);
	for (unsigned i = 0; i < 10; i++) {
		p[i] = vm_objcache_alloc(&c, sizes[i]);
		ASSERT(p[i] != NULL);
		EXPECT_EQ((uintptr_t)p[i] & 15, 0);
		memset(p[i], 0xa0 + (int)i, sizes[i]);
	}
	EXPECT_EQ(c.live, 10);
	EXPECT_EQ(c.pages, 5);                 /* one page per class */
	EXPECT_EQ(f->tables.live, 5);
	for (unsigned i = 0; i < 10; i++)
		EXPECT_EQ(((uint8_t *)p[i])[sizes[i] - 1], 0xa0 + i);
	EXPECT_EQ(vm_objcache_check(&c), 0);
	for (unsigned i = 0; i < 10; i++)
		vm_objcache_free(&c, p[i]);
	EXPECT_EQ(c.live, 0);
	EXPECT_EQ(c.pages, 5);                 /* each class keeps its only page */
	/* 400 ranges of 24 bytes: 124 a page, so 4 pages of class 32 */
	for (unsigned i = 0; i < 400; i++) {
		p[i] = vm_objcache_alloc(&c, sizeof(struct vm_range));
		ASSERT(p[i] != NULL);
	}
	EXPECT_EQ(c.pages, 8);
	EXPECT_EQ(vm_objcache_check(&c), 0);
	/* refused: interior, double, a page the cache does not hold */
	vm_objcache_free(&c, (char *)p[5] + 16);
	vm_objcache_free(&c, p[7]);
	vm_objcache_free(&c, p[7]);
	vm_objcache_free(&c, f->objmem);
	EXPECT_EQ(c.refused, 3);
	EXPECT_EQ(c.live, 399);
	EXPECT_EQ(vm_objcache_check(&c), 0);
	for (unsigned i = 0; i < 400; i++)
		if (i != 7)
			vm_objcache_free(&c, p[i]);
	EXPECT_EQ(c.live, 0);
	EXPECT_EQ(c.pages, 5);                 /* empty pages went back */
	EXPECT_EQ(f->tables.live, 5);
	vm_objcache_fini(&c);
	EXPECT_EQ(c.pages, 0);
	EXPECT_ALL_RETURNED(f);
}

/* No page: NULL, and the cache is as it was; the next page makes it work. */
KTEST(vm, objcache_out_of_pages_changes_nothing)
{
	struct fx *f = fx_new(16);
	static struct vm_objcache c;
	void *a, *b;

	ASSERT(f != NULL);
	vm_objcache_init(&c, &f->env.pt);
	f->tables.fail_after = 0;
	EXPECT(vm_objcache_alloc(&c, 64) == NULL);
	EXPECT_EQ(c.pages, 0);
	EXPECT_EQ(c.live, 0);
	f->tables.fail_after = 1;
	a = vm_objcache_alloc(&c, 64);
	b = vm_objcache_alloc(&c, 64);        /* same page: no new one needed */
	ASSERT(a != NULL && b != NULL);
	EXPECT(vm_objcache_alloc(&c, 200) == NULL);
	EXPECT_EQ(c.pages, 1);
	EXPECT_EQ(vm_objcache_check(&c), 0);
	vm_objcache_free(&c, a);
	vm_objcache_free(&c, b);
	f->tables.fail_after = -1;
	vm_objcache_fini(&c);
	EXPECT_ALL_RETURNED(f);
}

/* The fixture's hooks share one ctx (the fx); these reach the cache. */
static struct vm_objcache *fx_objcache;
static void *oc_alloc(void *ctx, size_t size) { (void)ctx; return vm_objcache_alloc(fx_objcache, size); }
static void oc_free(void *ctx, void *p) { (void)ctx; vm_objcache_free(fx_objcache, p); }

/* A whole address-space life with the VM's objects from the cache (as in
 * the kernel, where its pages are also table pages): every object back at
 * vm_free and vm_sys_fini, the cache consistent throughout. */
KTEST(vm, descriptors_segments_ranges_from_objcache)
{
	struct fx *f = fx_new(16);
	static struct vm_objcache c;
	const struct vm_segment *seg;
	struct vm_descriptor *d[3];
	struct vm_segment *s;
	void *r[20];

	ASSERT(f != NULL);
	vm_objcache_init(&c, &f->env.pt);
	fx_objcache = &c;
	vm_sys_fini(f->sys);                  /* its table back to the fixture */
	f->env.obj_alloc = oc_alloc;
	f->env.obj_free = oc_free;
	ASSERT_EQ(vm_sys_init(f->sys, &f->env), 0);
	EXPECT_EQ(c.live, 1);                 /* the per-CPU table: 512 bytes */
	for (unsigned i = 0; i < 3; i++) {
		d[i] = vm_new_i(f->sys);
		ASSERT(d[i] != NULL);
	}
	s = vm_new_segment(d[1], 0x100000, 0, 64 * K4, RW | VM_U | VM_GROW_UP, "heap");
	ASSERT(s != NULL);
	ASSERT(vm_new_segment(d[1], 0x7f000000, K4, 8 * K4, RW | VM_U | VM_GROW_DOWN, "stack") != NULL);
	for (unsigned i = 0; i < 20; i++) {
		r[i] = vm_segment_alloc(s, K4);
		ASSERT(r[i] != NULL);
	}
	for (unsigned i = 0; i < 20; i += 2)
		vm_segment_free(s, r[i]);         /* ten holes: ten free ranges */
	EXPECT_EQ(vm_handle_fault(d[1], 0x7f000000 + 6 * K4 - 8, VM_W | VM_U, &seg), VM_FAULT_OK);
	EXPECT_EQ(vm_check(d[1]), 0);
	EXPECT_EQ(vm_objcache_check(&c), 0);
	EXPECT_GE(c.live, 3 + 2 + 20);
	for (unsigned i = 1; i < 20; i += 2)
		vm_segment_free(s, r[i]);
	vm_free(d[0]);
	vm_free(d[1]);
	EXPECT_EQ(vm_objcache_check(&c), 0);
	vm_free(d[2]);
	EXPECT_EQ(c.live, 1);
	vm_sys_fini(f->sys);
	EXPECT_EQ(c.live, 0);
	EXPECT_EQ(c.refused, 0);
	vm_objcache_fini(&c);
	EXPECT_ALL_RETURNED(f);
}

/* The per-CPU table is sized by env.ncpus: bad counts refused, a failing
 * allocator reported, and a CPU index past the count cannot load or
 * unload (E_RANGE, nothing changed: no satp write, no active bit). */
KTEST(vm, sys_sized_by_cpu_count_refuses_past_it)
{
	struct fx *f = fx_new(16);
	struct vm_descriptor *d;
	uint64_t satp;

	ASSERT(f != NULL);
	vm_sys_fini(f->sys);
	EXPECT_EQ(f->objlive, 0);
	vm_sys_fini(f->sys);                            /* twice: harmless */
	f->env.ncpus = 0;
	EXPECT_EQ(vm_sys_init(f->sys, &f->env), E_INVAL);
	f->env.ncpus = ENV_MAX_CPUS + 1;
	EXPECT_EQ(vm_sys_init(f->sys, &f->env), E_INVAL);
	EXPECT_EQ(f->objlive, 0);
	/* No object: E_NOMEM, nothing held. */
	for (unsigned i = 0; i < NOBJ; i++)
		f->objused[i] = 1;
	f->env.ncpus = 2;
	EXPECT_EQ(vm_sys_init(f->sys, &f->env), E_NOMEM);
	for (unsigned i = 0; i < NOBJ; i++)
		f->objused[i] = 0;
	vm_sys_fini(f->sys);
	/* Two CPU indexes. */
	ASSERT_EQ(vm_sys_init(f->sys, &f->env), 0);
	EXPECT_EQ(f->sys->ncpus, 2);
	EXPECT_EQ(f->objlive, 1);
	d = vm_new_i(f->sys);
	ASSERT(d != NULL);
	f->cpu = 1;
	EXPECT_EQ(vm_load_task(d), 0);
	EXPECT_EQ(d->active, 2);
	satp = f->satp;
	f->cpu = 2;                                     /* past ncpus */
	EXPECT_EQ(vm_load_task(d), E_RANGE);
	EXPECT_EQ(vm_unload_task(d), E_RANGE);
	EXPECT_EQ(d->active, 2);
	EXPECT_EQ(d->ever, 2);
	EXPECT_EQ(f->satp, satp);
	f->cpu = 63;
	EXPECT_EQ(vm_load_task(d), E_RANGE);
	EXPECT_EQ(d->active, 2);
	f->cpu = 1;
	EXPECT_EQ(vm_unload_task(d), 0);
	EXPECT_EQ(d->active, 0);
	f->cpu = 0;
	vm_free(d);
	vm_sys_fini(f->sys);
	EXPECT_ALL_RETURNED(f);
}
