/* bench.c - in-guest benchmarks, selected by bench=<name> (or bench=all).
 * Figures are instructions (rdinstret) per operation: exact under QEMU's
 * -icount, which `make bench` uses. With icount the counter is global
 * across harts, so multi-hart figures are total instructions / total
 * operations. */
#include <stdio.h>
#include <string.h>

#include "hart.h"
#include "kernel.h"
#include "kmalloc.h"
#include "mem.h"
#include "part.h"
#include "part_roles.h"
#include "program.h"
#include "riscv.h"
#include "shm.h"
#include "umm.h"

#define N 4000

static void report(const char *name, uint64_t instret, uint64_t ops, const char *per)
{
	printf("bench: %-28s %6llu.%02llu instructions per %s\n", name,
	       (unsigned long long)(instret / ops),
	       (unsigned long long)(instret % ops * 100 / ops), per);
}

/* The counter itself: a loop of a known length (3 instructions a turn). */
static void bench_calib(void)
{
	uint64_t t = rdinstret();
	unsigned long n = N;

	__asm__ volatile("1: addi %0, %0, -1\n nop\n bnez %0, 1b" : "+r"(n));
	report("calibration loop (expect 3)", rdinstret() - t, N, "turn");
}

static void bench_pmem(void)
{
	uint64_t t;

	for (int i = 0; i < 100; i++)   /* warm the per-hart cache */
		pmem_free_page(&kpmem, pmem_alloc_page(&kpmem));
	t = rdinstret();
	for (int i = 0; i < N; i++)
		pmem_free_page(&kpmem, pmem_alloc_page(&kpmem));
	report("pmem page alloc+free (cache)", rdinstret() - t, N, "pair");
	t = rdinstret();
	for (int i = 0; i < N; i++)
		pmem_free_pages(&kpmem, pmem_alloc_pages(&kpmem, 1, 0, 0, PMEM_NODE_ANY), 1);
	report("pmem page alloc+free (lock)", rdinstret() - t, N, "pair");
}

static void bench_vm(void)
{
	struct vm_descriptor *d = vm_new();
	uintptr_t pa = pmem_alloc_page(&kpmem);
	struct vm_segment *heap = vm_kernel_sys.heap;
	uint64_t t;

	if (!d || !pa) {
		printf("bench: vm: no memory\n");
		return;
	}
	vm_load_task(d);                          /* active here: unmap fences locally */
	vm_map(d, 0x100000, pa, 4096, VM_R | VM_U);   /* tables exist from now on */
	vm_unmap(d, 0x100000, 4096);
	t = rdinstret();
	for (int i = 0; i < N; i++) {
		vm_map(d, 0x100000, pa, 4096, VM_R | VM_W | VM_U);
		vm_unmap(d, 0x100000, 4096);
	}
	report("vm_map+vm_unmap 4 KiB", rdinstret() - t, N, "pair (with sfence.vma)");
	vm_unload_task(d);
	vm_free(d);
	pmem_free_page(&kpmem, pa);

	/* fault-driven growth of the kernel heap: trap, classify, zeroed page */
	t = rdinstret();
	for (int i = 0; i < 64; i++) {
		volatile uint64_t *p = (volatile uint64_t *)(heap->base + heap->size);
		*p = 1;
	}
	report("kheap growth by page fault", rdinstret() - t, 64, "page (incl. zeroing)");
}

static void bench_umm_one(umm_t *pool, bool fast)
{
	uint64_t t = rdinstret();

	for (int i = 0; i < N; i++) {
		void *p = fast ? umm_alloc_fast(pool, 64, 0) : umm_alloc(pool, 64, 0);
		if (fast)
			umm_free_fast(pool, p);
		else
			umm_free(pool, p);
	}
	report(fast ? "umm alloc+free fast, 1 hart" : "umm alloc+free slow, 1 hart",
	       rdinstret() - t, N, "pair");
}

/* The multi-hart umm figure counts the work of the harts and nothing else:
 * with -icount the counter is global, so a hart that spun while it waited
 * for the others (the boot hart in smp_run) added its waiting to the
 * figure, which then moved with QEMU's scheduling (365 to 1,177 between
 * two runs). Here a hart that is done sleeps in wfi, which executes
 * nothing: the boot hart until the last one wakes it with an IPI, the
 * others in their idle loop. What remains is every hart's pairs plus what
 * contention costs them (lock retries, cache lines), and a few hundred
 * instructions of IPIs. */
static umm_t *upool;
static unsigned umm_done;

static void umm_all_done(unsigned i)
{
	if (__atomic_add_fetch(&umm_done, 1, __ATOMIC_ACQ_REL) == harts_online && i != 0)
		ipi_send(0);
	if (i != 0)
		return;
	for (;;) {
		/* wfi wakes on the pending IPI even with SIE off: no lost wake-up */
		unsigned long fl = irq_save();
		if (__atomic_load_n(&umm_done, __ATOMIC_ACQUIRE) == harts_online) {
			irq_restore(fl);
			return;
		}
		wfi();
		irq_restore(fl);
	}
}

static void umm_all(unsigned i, void *arg)
{
	bool fast = arg != NULL;
	void *held[8] = { 0 };

	for (int k = 0; k < N; k++) {
		unsigned s = (unsigned)(k + i) % 8;
		if (held[s]) {
			if (fast)
				umm_free_fast(upool, held[s]);
			else
				umm_free(upool, held[s]);
		}
		held[s] = fast ? umm_alloc_fast(upool, 32 + 16 * s, 0) : umm_alloc(upool, 32 + 16 * s, 0);
	}
	for (int s = 0; s < 8; s++)
		if (held[s])
			umm_free(upool, held[s]);
	umm_all_done(i);
}

static void bench_umm(void)
{
	size_t size = 8u << 20, hdr = (UMM_SIZE(harts_online) + 4095) & ~(size_t)4095;
	uintptr_t pa = pmem_alloc_pages(&kpmem, (hdr + size) / 4096, 0, 0, PMEM_NODE_ANY);
	umm_t *pool = pa ? pa_to_dmap(pa) : NULL;   /* sized for the harts online */
	struct umm_stats a, b;
	uint64_t t;
	char name[64];

	if (!pa || umm_init_cpus(pool, pa_to_dmap(pa + hdr), size, harts_online)) {
		printf("bench: umm: no memory\n");
		return;
	}
	upool = pool;
	bench_umm_one(pool, true);
	bench_umm_one(pool, false);
	for (int fast = 1; fast >= 0; fast--) {
		umm_stats(pool, &a);
		__atomic_store_n(&umm_done, 0, __ATOMIC_RELEASE);
		t = rdinstret();
		smp_run(harts_online, umm_all, fast ? (void *)1 : NULL);
		t = rdinstret() - t;
		umm_stats(pool, &b);
		snprintf(name, sizeof(name), "umm alloc+free %s, %u harts", fast ? "fast" : "slow",
			 harts_online);
		report(name, t, (uint64_t)N * harts_online, "pair per hart, no waits");
		printf("bench: %-28s %6llu lock retries per 1000 operations\n", name,
		       (unsigned long long)((b.lock_retries - a.lock_retries) * 1000 /
					    ((uint64_t)N * harts_online * 2)));
	}
	pmem_free_pages(&kpmem, pa, (hdr + size) / 4096);
}

static void *kbench_get_pages(void *ctx, size_t n)
{
	(void)ctx;
	return vm_get_kernel_heap_pages(n);
}

static void kbench_put_pages(void *ctx, void *va, size_t n)
{
	(void)ctx;
	vm_free_kernel_heap_pages(va, n);
}

/* A long mixed trace on a private instance: heap footprint / peak live. */
static void kmalloc_efficiency(void)
{
	static kmalloc_t k;
	static struct kmalloc_stats st;
	static void *live[2048];
	static size_t sz[2048];
	static const size_t sizes[] = { 24, 32, 48, 64, 96, 128, 160, 192, 256, 384, 512, 1024, 2048 };
	const struct kmalloc_page_source ps = { kbench_get_pages, kbench_put_pages, NULL };
	uint64_t x = 88172645463325252ull, cur = 0, peak = 0;

	if (kmalloc_init_i(&k, &ps, NULL, 0))
		return;
	for (int step = 0; step < 200000; step++) {
		unsigned i;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* the live set drifts between phases of growth and shrinkage */
		i = (unsigned)(x % (step % 40000 < 20000 ? 2048 : 1024));
		if (live[i]) {
			kfree_i(&k, live[i]);
			cur -= sz[i];
			live[i] = NULL;
		} else {
			sz[i] = sizes[(x >> 32) % 13];
			live[i] = kmalloc_i(&k, sz[i]);
			if (live[i]) {
				cur += sz[i];
				if (cur > peak)
					peak = cur;
			}
		}
		if (step % 1000 == 0)
			kmalloc_reap_i(&k);
	}
	kmalloc_stats_i(&k, &st);
	printf("bench: kmalloc mixed trace: heap %llu KiB for peak %llu KiB live requested: "
	       "footprint/peak %llu.%02llu\n", (unsigned long long)(st.heap_bytes >> 10),
	       (unsigned long long)(peak >> 10), (unsigned long long)(st.heap_bytes / peak),
	       (unsigned long long)(st.heap_bytes % peak * 100 / peak));
	for (int i = 0; i < 2048; i++)
		if (live[i])
			kfree_i(&k, live[i]);
	kmalloc_destroy_i(&k);
}

/* Stand-ins for kmalloc and kfree that do nothing: the same loop around
 * them measures what the loop and the two calls cost. */
static __attribute__((noinline, optimize("omit-frame-pointer"))) void *nop_alloc(size_t n)
{
	__asm__ volatile("" : "+r"(n));
	return (void *)n;
}

static __attribute__((noinline, optimize("omit-frame-pointer"))) void nop_free(void *p)
{
	__asm__ volatile("" :: "r"(p));
}

static void bench_kmalloc(void)
{
	static void *blocks[N];
	uint64_t t, pair, loop;

	kfree(kmalloc(128));
	t = rdinstret();
	for (int i = 0; i < N; i++)
		kfree(kmalloc(128));
	pair = rdinstret() - t;
	report("kmalloc+kfree 128 B (cache hit)", pair, N, "loop turn");
	t = rdinstret();
	for (int i = 0; i < N; i++)
		nop_free(nop_alloc(128));
	loop = rdinstret() - t;
	/* the empty functions' two returns are part of what the pair costs */
	report("  the same loop, empty functions", loop, N, "loop turn");
	report("  inside kmalloc and kfree", pair - loop + 2 * N, N, "pair");
	kmalloc_reap();
	t = rdinstret();
	for (int i = 0; i < N; i++)
		blocks[i] = kmalloc(96 + 16 * (i % 7));
	report("kmalloc, cache miss", rdinstret() - t, N, "allocation");
	for (int i = 0; i < N; i++)
		kfree(blocks[i]);
	kmalloc_efficiency();
}

static void bench_mm(void)
{
	mm_t *mm = shm_kernel_create("bench", 64, 64 << 10, 1 << 20);
	uint64_t t;

	if (!mm)
		return;
	t = rdinstret();
	for (int i = 0; i < N; i++) {
		mm_lock(mm, MM_LOCK_RW);
		mm_unlock(mm);
	}
	report("mm_lock+mm_unlock, uncontended", rdinstret() - t, N, "pair");
	mm_lock(mm, MM_LOCK_RW);
	t = rdinstret();
	for (int i = 0; i < N; i++)
		mm_free(mm, mm_alloc(mm, 64));
	report("mm_alloc+mm_free 64 B (lock held)", rdinstret() - t, N, "pair");
	{	/* the same through a free list: a freed block between blocks in use */
		mm_ptr_t a = mm_alloc(mm, 64), b = mm_alloc(mm, 64);

		mm_free(mm, a);
		t = rdinstret();
		for (int i = 0; i < N; i++)
			mm_free(mm, mm_alloc(mm, 64));
		report("mm_alloc+mm_free 64 B, free list (lock held)", rdinstret() - t, N, "pair");
		mm_free(mm, b);
	}
	mm_unlock(mm);
	shm_kernel_detach(mm);
}

static void bench_part(void)
{
	int a = part_create("bench-sys", ROLE_ARG(ROLE_BENCH, BENCH_SYSCALL), 0, 0);
	int b, c;

	if (a < 0)
		return;
	part_run_all();
	part_reset();
	b = part_create("bench-sw1", ROLE_ARG(ROLE_BENCH, BENCH_SWITCH), 0, 0);
	c = part_create("bench-sw2", ROLE_ARG(ROLE_BENCH, BENCH_SWITCH_PEER), 0, 0);
	if (b < 0 || c < 0)
		return;
	part_run_all();
	part_reset();
}

/* mm_wait / mm_wake from a partition (user/part.c wait_bench): returning
 * at once, waking nobody, and a hand-off between two partitions of one
 * hart. */
static void bench_wait(void)
{
	mm_t *area = shm_kernel_create(WAIT_AREA, 64, 4096, 64 << 10);
	int a, b;

	if (!area)
		return;
	a = part_create("bench-wait", ROLE_ARG(ROLE_WAIT, WAITK_BENCH), 0, 0);
	b = part_create("bench-wait2", ROLE_ARG(ROLE_WAIT, WAITK_BENCH_PEER), 0, 0);
	if (a > 0 && b > 0)
		part_run_all();
	shm_kernel_detach(area);
	part_reset();
}

static const struct {
	const char *name;
	void (*fn)(void);
} benches[] = {
	{ "calib", bench_calib }, { "pmem", bench_pmem }, { "vm", bench_vm }, { "umm", bench_umm },
	{ "kmalloc", bench_kmalloc }, { "mm", bench_mm }, { "part", bench_part },
	{ "wait", bench_wait },
};

/* name: "all", one benchmark, or a comma-separated list. */
static int bench_main(const char *name)
{
	bool unknown = false;
	char list[128], *tok, *save;

	if (!strcmp(name, "boot"))
		return 0;   /* the banner printed the boot figures */
	strncpy(list, name, sizeof(list) - 1);
	list[sizeof(list) - 1] = 0;
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool any = false;

		for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
			if (!strcmp(tok, "all") || !strcmp(tok, benches[i].name)) {
				benches[i].fn();
				any = true;
			}
		if (!any) {
			printf("bench: unknown benchmark '%s'\n", tok);
			unknown = true;
		}
	}
	return unknown;
}

PROGRAM(bench, bench_main, "bench=all|boot|<name>[,<name>...]: instructions per operation (run under -icount)")
