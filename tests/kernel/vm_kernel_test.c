/* vm_kernel_test.c - the VM manager on the real machine: the kernel map's
 * page sizes, map/translate/unmap with every page size, heap growth through
 * faults, stack guard pages, segment overlap, a cross-hart unmap, and
 * vm_free returning every page. Manual tests (harness-checked panics): W^X
 * of kernel text and data, kernel stack overflow (boot hart, last hart). */
#include <stdio.h>
#include <string.h>

#include "hart.h"
#include "kernel.h"
#include "kmalloc.h"
#include "ktest.h"
#include "mem.h"
#include "riscv.h"
#include "sv39.h"

#define GIB (1ul << 30)
#define MIB2 (2ul << 20)
#define PG 4096ul

/* What the direct map must use for [s, e): the largest aligned pages. */
static void expected_leaves(uint64_t s, uint64_t e, uint64_t n[3])
{
	while (s < e) {
		if ((s & (GIB - 1)) == 0 && e - s >= GIB) {
			n[2]++;
			s += GIB;
		} else if ((s & (MIB2 - 1)) == 0 && e - s >= MIB2) {
			n[1]++;
			s += MIB2;
		} else {
			n[0]++;
			s += PG;
		}
	}
}

KTEST(vm, kernel_direct_map_uses_largest_pages)
{
	uint64_t want[3] = { 0, 0, 0 }, got[3];
	unsigned lo = (DIRECT_MAP_BASE >> 30) & 511, hi = lo + (DIRECT_MAP_SIZE >> 30);

	for (unsigned i = 0; i < board->nmem; i++)
		expected_leaves(board->mem[i].start & ~(PG - 1),
				(board->mem[i].end + PG) & ~(PG - 1), want);
	pt_count(&vm_kernel(&vm_kernel_sys)->pt, lo, hi, got);
	EXPECT_EQ(got[2], want[2]);
	EXPECT_EQ(got[1], want[1]);
	EXPECT_EQ(got[0], want[0]);
	EXPECT(got[2] + got[1] > 0);
	printf("vm: direct map %llu x 1 GiB, %llu x 2 MiB, %llu x 4 KiB\n",
	       (unsigned long long)got[2], (unsigned long long)got[1],
	       (unsigned long long)got[0]);
}

KTEST(vm, map_translate_unmap_each_page_size)
{
	static const struct { uintptr_t va; uint64_t pa; size_t size; int level; } c[] = {
		{ 0x40000000ul, 0x40000000ul, GIB, 2 },   /* device space: never touched */
		{ 0x00200000ul, 0x80200000ul, MIB2, 1 },
		{ 0x00003000ul, 0x80001000ul, PG, 0 },
	};
	struct vm_descriptor *d = vm_new();

	ASSERT(d != NULL);
	for (unsigned i = 0; i < 3; i++) {
		uint64_t pa = 0;
		int level = -1;

		ASSERT_EQ(vm_map(d, c[i].va, c[i].pa, c[i].size, VM_R | VM_W | VM_U), 0);
		EXPECT_EQ(vm_map(d, c[i].va, c[i].pa, c[i].size, VM_R), E_EXIST);
		EXPECT_EQ(vm_get_phys(d, c[i].va + c[i].size - 8, &pa), 0);
		EXPECT_EQ(pa, c[i].pa + c[i].size - 8);
		EXPECT_EQ(pt_translate(&d->pt, c[i].va, NULL, NULL, &level), 0);
		EXPECT_EQ(level, c[i].level);
	}
	EXPECT_EQ(vm_check(d), 0);
	/* unmapping a part of the 1 GiB page splits it */
	EXPECT_EQ(vm_unmap(d, 0x40000000ul + MIB2, PG), 0);
	EXPECT_NE(vm_get_phys(d, 0x40000000ul + MIB2, NULL), 0);
	EXPECT_EQ(vm_get_phys(d, 0x40000000ul + MIB2 + PG, NULL), 0);
	for (unsigned i = 0; i < 3; i++) {
		EXPECT_EQ(vm_unmap(d, c[i].va, c[i].size), 0);
		EXPECT_NE(vm_get_phys(d, c[i].va, NULL), 0);
	}
	EXPECT_EQ(vm_map(d, 0x1001, 0x80000000ul, PG, VM_R), E_ALIGN);
	EXPECT_NE(vm_map(d, 0x4000000000ul, 0x80000000ul, PG, VM_R), 0);   /* upper half */
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
}

KTEST(vm, kernel_heap_grows_through_faults)
{
	struct vm_segment *heap = vm_kernel_sys.heap;
	size_t before = heap->size;
	volatile uint64_t *p = (volatile uint64_t *)(heap->base + heap->size + 3 * PG);

	*p = 0x1234;           /* inside the reserved room: the fault maps pages */
	EXPECT_EQ(*p, 0x1234);
	EXPECT_GE(heap->size, before + 4 * PG);
	EXPECT_EQ(vm_check(vm_kernel(&vm_kernel_sys)), 0);
}

KTEST(vm, kernel_stack_guard_page_faults)
{
	struct hart *h = this_hart();
	volatile uint64_t *guard = (volatile uint64_t *)(h->stack_lo - 8);

	trap_expect_fault();
	(void)*guard;
	EXPECT_EQ(trap_expected_fault_cause(), EXC_LOAD_PAGE_FAULT);
}

/* Every secondary hart's stacks are in its slot of the stack window: mapped
 * where hart_stack_pa says, the page below the kernel stack unmapped, and
 * a load from it faults on that hart. */
static void touch_own_guard(unsigned i, void *arg)
{
	volatile unsigned long *cause = arg;
	volatile uint64_t *guard = (volatile uint64_t *)(this_hart()->stack_lo - 8);

	trap_expect_fault();
	(void)*guard;
	cause[i] = trap_expected_fault_cause();
}

KTEST(vm, secondary_stacks_in_window_with_guard)
{
	struct vm_descriptor *kd = vm_kernel(&vm_kernel_sys);
	volatile unsigned long guard_cause[MAX_HARTS];
	uint64_t pa;

	for (unsigned i = 1; i < harts_online; i++) {
		uintptr_t lo = hart_stack_lo(i);

		EXPECT_EQ(harts[i].stack_lo, lo);
		EXPECT(lo >= KSTACK_WINDOW && lo < KSTACK_WINDOW + KSTACK_WINDOW_SIZE);
		EXPECT(harts[i].emerg_sp > lo && harts[i].utrap_top > lo);
		ASSERT(vm_get_phys(kd, lo, &pa) == 0);
		EXPECT_EQ(pa, hart_stack_pa(lo));
		ASSERT(vm_get_phys(kd, hart_utrap_lo(i) + UTRAP_STACK_SIZE - 8, &pa) == 0);
		EXPECT_EQ(pa, hart_stack_pa(hart_utrap_lo(i) + UTRAP_STACK_SIZE - 8));
		EXPECT(vm_get_phys(kd, lo - PG, &pa) != 0);
		EXPECT(vm_get_phys(kd, hart_emerg_lo(i) - PG, &pa) != 0);
	}
	for (unsigned i = 0; i < harts_online; i++)
		guard_cause[i] = 0;
	smp_run(harts_online, touch_own_guard, (void *)guard_cause);
	for (unsigned i = 0; i < harts_online; i++)
		EXPECT_EQ(guard_cause[i], EXC_LOAD_PAGE_FAULT);
}

KTEST(vm, overlapping_segments_refused)
{
	struct vm_descriptor *d = vm_new();
	struct vm_segment *a, *b;

	ASSERT(d != NULL);
	a = vm_new_segment(d, 0x100000, 4 * PG, 16 * PG, VM_R | VM_W | VM_U | VM_GROW_UP, "a");
	ASSERT(a != NULL);
	EXPECT(vm_new_segment(d, 0x100000 + 8 * PG, PG, PG, VM_R | VM_U, "in-room") == NULL);
	EXPECT(vm_new_segment(d, 0x100000 + 16 * PG, PG, PG, VM_R | VM_U, "in-guard") == NULL);
	b = vm_new_segment(d, 0x100000 + 17 * PG, PG, PG, VM_R | VM_U, "after-guard");
	EXPECT(b != NULL);
	EXPECT_NE(vm_segment_grow(a, 17 * PG), 0);   /* would eat the guard gap */
	EXPECT_EQ(vm_check(d), 0);
	vm_free(d);
}

struct xhart {
	volatile uint64_t *va;
	volatile int phase;
	volatile unsigned long cause;
	volatile uint64_t seen;
};

static void xhart_worker(unsigned i, void *arg)
{
	struct xhart *x = arg;

	if (i == 0) {
		while (x->phase != 1)
			env_cpu_relax();
		vm_unmap_heap((void *)x->va);   /* fences every hart before returning */
		x->phase = 2;
	} else if (i == 1) {
		x->seen = *x->va;               /* the mapping is now in this hart's TLB */
		x->phase = 1;
		while (x->phase != 2)
			env_cpu_relax();
		trap_expect_fault();
		(void)*x->va;
		x->cause = trap_expected_fault_cause();
	}
}

KTEST(vm, unmap_on_one_hart_faults_on_another)
{
	uintptr_t pa = pmem_alloc_page(&kpmem);
	struct xhart x = { 0 };

	if (ktest_ncpus() < 2) {
		printf("vm: cross-hart unmap needs 2 harts; checked on this hart only\n");
	}
	ASSERT(pa != 0);
	*(uint64_t *)pa_to_dmap(pa) = 0xfeedf00d;
	x.va = vm_map_heap(pa, PG, VM_R | VM_W);
	ASSERT(x.va != NULL);
	if (ktest_ncpus() >= 2) {
		ktest_parallel(2, xhart_worker, &x);
		EXPECT_EQ(x.seen, 0xfeedf00d);
		EXPECT_EQ(x.cause, EXC_LOAD_PAGE_FAULT);
	} else {
		EXPECT_EQ(*x.va, 0xfeedf00d);
		vm_unmap_heap((void *)x.va);
		trap_expect_fault();
		(void)*x.va;
		EXPECT_EQ(trap_expected_fault_cause(), EXC_LOAD_PAGE_FAULT);
	}
	pmem_free_page(&kpmem, pa);
}

static void build_and_free_space(void)
{
	struct vm_descriptor *d = vm_new();
	struct vm_segment *s;

	if (!d)
		return;
	s = vm_new_segment(d, 0x10000, 8 * PG, 64 * PG, VM_R | VM_W | VM_U | VM_GROW_UP, "heap");
	if (s)
		vm_segment_grow(s, 40 * PG);
	vm_new_segment(d, 0x3f00000000ul - 64 * PG, 4 * PG, 64 * PG,
		       VM_R | VM_W | VM_U | VM_GROW_DOWN, "stack");
	vm_map(d, 0x20000000, 0x80000000ul, MIB2, VM_R | VM_U);
	vm_free(d);
}

KTEST(vm, vm_free_returns_every_page)
{
	size_t before;

	build_and_free_space();        /* warm kmalloc's caches for the objects */
	before = pmem_avail(&kpmem) + mem_kept_bytes();   /* kept: reused, not leaked */
	for (int i = 0; i < 5; i++)
		build_and_free_space();
	EXPECT_EQ(pmem_avail(&kpmem) + mem_kept_bytes(), before);
}

/* Harness-checked: each of these must panic with its report. */
KTEST_MANUAL(wx, write_kernel_text)
{
	extern char _text_start[];
	volatile char *p = _text_start + 64;

	printf("wx test: writing kernel text at %p\n", (void *)p);
	*p = 0;
	EXPECT(0);
}

static volatile uint32_t data_insn = 0x00008067;   /* ret */

KTEST_MANUAL(wx, execute_kernel_data)
{
	void (*fn)(void) = (void (*)(void))(uintptr_t)&data_insn;

	printf("wx test: executing kernel data at %p\n", (void *)fn);
	fn();
	EXPECT(0);
}

static volatile int recurse_limit = 1 << 30;

static int recurse(int depth)
{
	volatile char pad[256];

	pad[0] = (char)depth;
	if (depth > recurse_limit)
		return 0;
	return recurse(depth + 1) + pad[0];
}

KTEST_MANUAL(kstack, overflow)
{
	printf("kstack test: recursing until the guard page\n");
	recurse(0);
	EXPECT(0);
}

static void recurse_on_last(unsigned i, void *arg)
{
	(void)arg;
	if (i == harts_online - 1) {
		printf("kstack test: recursing on hart %lu until the guard page\n",
		       this_hart()->hartid);
		recurse(0);
	}
}

/* The same on the last secondary hart (its stack in the stack window);
 * on one hart, on the boot hart. */
KTEST_MANUAL(kstack, overflow_secondary)
{
	smp_run(harts_online, recurse_on_last, NULL);
	EXPECT(0);
}
