/* mem.c - boot-time wiring of the memory managers: LMM/pmem fed from the
 * board, the kernel's Sv39 page table, the VM instance and its TLB hooks,
 * kmalloc on the kernel heap segment, and the umm pool.
 *
 * Lock order: vm locks -> pmem lock (through the page hooks); kmalloc's
 * locks -> vm (through its page source). Nothing here takes two locks.
 */
#include "mem.h"

#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "hart.h"
#include "kmalloc.h"
#include "panic.h"
#include "riscv.h"
#include "sbi.h"
#include "sv39.h"
#include "timer.h"
#include "vm_objcache.h"

pmem_t kpmem;
umm_t *kumm;
unsigned mem_cpus;
uint64_t kernel_satp;
static uint64_t boot_cost_pmem, boot_cost_map;   /* instret, printed in the banner */
static unsigned asid_bits;


/* ---- hooks for pt and vm ------------------------------------------------- */

static uint64_t page_alloc_zeroed(void *ctx)
{
	uintptr_t pa = pmem_alloc_page(&kpmem);

	(void)ctx;
	if (pa)
		memset(pa_to_dmap(pa), 0, ENV_PAGE_SIZE);
	return pa;
}

static void page_free(void *ctx, uint64_t pa)
{
	(void)ctx;
	if (pmem_free_page(&kpmem, pa))
		panic("mem: page_free: pmem refused 0x%llx", (unsigned long long)pa);
}

static void *p2v(void *ctx, uint64_t pa)
{
	(void)ctx;
	return pa_to_dmap(pa);
}

/* Objects of the VM manager (descriptors, segments, ranges) come from its
 * own object cache on pmem pages through the direct map, never from
 * kmalloc: kmalloc grows on the kernel heap, which is a VM segment, so the
 * VM below it must not depend on it. The cache is trap-safe (the fault
 * path refills a segment's spare range node from it). */
static struct vm_objcache kvm_objs;

static void sfence(int asid, uintptr_t va)
{
	if (asid < 0)
		__asm__ volatile("sfence.vma %0, zero" :: "r"(va) : "memory");
	else
		__asm__ volatile("sfence.vma %0, %1" :: "r"(va), "r"((unsigned long)asid) : "memory");
}

#define FENCE_PAGES_MAX 64   /* beyond this a whole flush is cheaper */

static void fence_local(void *ctx, int asid, uintptr_t va, size_t size)
{
	(void)ctx;
	if (size == ENV_PAGE_SIZE) {          /* the common case: one page */
		sfence(asid, va);
		return;
	}
	if (size == 0 || size / ENV_PAGE_SIZE > FENCE_PAGES_MAX) {
		if (asid < 0)
			sfence_vma_all();
		else
			__asm__ volatile("sfence.vma zero, %0" :: "r"((unsigned long)asid) : "memory");
		return;
	}
	for (size_t off = 0; off < size; off += ENV_PAGE_SIZE)
		sfence(asid, va + off);
}

static void fence_remote(void *ctx, uint64_t mask, int asid, uintptr_t va, size_t size)
{
	unsigned long len = size ? size : (unsigned long)-1;   /* -1: everything */

	(void)ctx;
	for (unsigned i = 0; i < harts_online; i++) {
		int rc;

		if (!(mask & (1ull << i)))
			continue;
		if (asid < 0)
			rc = sbi_remote_sfence_vma(1, harts[i].hartid, size ? va : 0, len);
		else
			rc = sbi_remote_sfence_vma_asid(1, harts[i].hartid, size ? va : 0,
							len, (unsigned long)asid);
		if (rc)
			panic("mem: fence_remote: SBI RFENCE to hart %lu: %s",
			      harts[i].hartid, err_str(rc));
	}
}

static void write_satp(void *ctx, uint64_t satp)
{
	(void)ctx;
	csr_write(satp, satp);
}

static struct vm_env kvm_env = {
	.pt = { page_alloc_zeroed, page_free, p2v, NULL },
	.page_alloc = page_alloc_zeroed,
	.page_free = page_free,
	.obj_alloc = vm_objcache_alloc,
	.obj_free = vm_objcache_free,
	.fence_local = fence_local,
	.fence_remote = fence_remote,
	.write_satp = write_satp,
	.cpu = NULL,
	.ctx = &kvm_objs,
};

/* ---- pmem from the board --------------------------------------------------- */

static void feed_pmem(const struct board *b, unsigned long fdt_pa, unsigned long fdt_size)
{
	extern char _kernel_start[], _kernel_end[];
	static struct pmem_range ram[PMEM_MAX_RANGES], resv[PMEM_MAX_RESV];
	struct pmem_config cfg = { .ram = ram, .resv = resv, .va_offset = DIRECT_MAP_BASE,
				   .ncpus = mem_cpus };
	int rc;

	for (unsigned i = 0; i < b->nmem; i++) {
		if (cfg.nram == PMEM_MAX_RANGES)
			panic("mem: more than %d RAM ranges", PMEM_MAX_RANGES);
		if (b->mem[i].end >= DIRECT_MAP_SIZE)
			panic("mem: RAM 0x%llx-0x%llx beyond the 128 GiB direct map",
			      (unsigned long long)b->mem[i].start,
			      (unsigned long long)b->mem[i].end);
		ram[cfg.nram++] = (struct pmem_range){ b->mem[i].start,
			b->mem[i].end - b->mem[i].start + 1, b->mem[i].node };
	}
	for (unsigned i = 0; i < b->nrsv && cfg.nresv < PMEM_MAX_RESV - 2; i++)
		resv[cfg.nresv++] = (struct pmem_range){ b->rsv[i].start,
			b->rsv[i].end - b->rsv[i].start + 1, -1 };
	if (b->nrsv > PMEM_MAX_RESV - 2)
		panic("mem: more than %d reserved ranges", PMEM_MAX_RESV - 2);
	resv[cfg.nresv++] = (struct pmem_range){ kva_to_pa(_kernel_start),
		(uint64_t)(_kernel_end - _kernel_start), -1 };
	resv[cfg.nresv++] = (struct pmem_range){ fdt_pa, fdt_size, -1 };
	rc = pmem_init(&kpmem, &cfg);
	if (rc)
		panic("mem: pmem_init: %s", err_str(rc));
}

/* ---- the kernel page table --------------------------------------------------- */

static void map_or_panic(struct pt *pt, uint64_t va, uint64_t pa, uint64_t size,
			 unsigned prot, const char *what)
{
	unsigned fence = 0;
	int rc = pt_map(pt, va, pa, size, prot, &fence);

	if (rc)
		panic("mem: mapping %s at 0x%llx: %s", what, (unsigned long long)va, err_str(rc));
}

static uint64_t build_kernel_table(const struct board *b)
{
	extern char _text_start[], _text_end[], _rodata_start[], _rodata_end[],
		_data_start[], _kernel_end[];
	struct pt pt;
	int rc = pt_init(&pt, &kvm_env.pt);

	if (rc)
		panic("mem: kernel root table: %s", err_str(rc));
	for (unsigned i = 0; i < b->nmem; i++) {
		uint64_t s = b->mem[i].start & ~(uint64_t)(ENV_PAGE_SIZE - 1);
		uint64_t e = (b->mem[i].end + 1 + ENV_PAGE_SIZE - 1) & ~(uint64_t)(ENV_PAGE_SIZE - 1);
		map_or_panic(&pt, DIRECT_MAP_BASE + s, s, e - s, PT_R | PT_W | PT_G, "direct map");
	}
	/* The image, W^X per section: nothing is both writable and executable. */
	map_or_panic(&pt, (uintptr_t)_text_start, kva_to_pa(_text_start),
		     (uint64_t)(_text_end - _text_start), PT_R | PT_X | PT_G, "kernel text");
	map_or_panic(&pt, (uintptr_t)_rodata_start, kva_to_pa(_rodata_start),
		     (uint64_t)(_rodata_end - _rodata_start), PT_R | PT_G, "kernel rodata");
	/* Data and BSS, leaving the boot hart's stack guard page unmapped
	 * (the other harts' stacks are in the stack window: mem_map_hart_stacks). */
	uintptr_t guard = hart_stack_lo(0) - KSTACK_GUARD;
	map_or_panic(&pt, (uintptr_t)_data_start, kva_to_pa(_data_start),
		     guard - (uintptr_t)_data_start, PT_R | PT_W | PT_G, "kernel data");
	map_or_panic(&pt, guard + KSTACK_GUARD, kva_to_pa((void *)(guard + KSTACK_GUARD)),
		     (uintptr_t)_kernel_end - (guard + KSTACK_GUARD), PT_R | PT_W | PT_G,
		     "kernel data");
	return pt.root;
}

/* ASIDLEN: write all ones to satp.ASID and read back which bits stick. */
static unsigned probe_asid_bits(uint64_t satp)
{
	uint64_t v;
	unsigned n = 0;

	csr_write(satp, satp | (SV39_SATP_ASID_MASK << SV39_SATP_ASID_SHIFT));
	v = (csr_read(satp) >> SV39_SATP_ASID_SHIFT) & SV39_SATP_ASID_MASK;
	csr_write(satp, satp);
	while (v & 1) {
		n++;
		v >>= 1;
	}
	return n;
}

/* The TTL reaper: every REAP_TICKS ticks each hart returns its expired
 * cached blocks to the pool (a hart reaps only its own cache). kmalloc is
 * never called from an interrupt (its hot paths run with interrupts on),
 * so the tick only notes that a reap is due; the reap runs at the hart's
 * next safe point (mem_safe_point), where no kernel code of this hart was
 * interrupted. */
#define REAP_TICKS 10

static __thread unsigned reap_ticks;
static __thread bool reap_due;

static void reap_tick(void)
{
	if (++reap_ticks >= REAP_TICKS) {
		reap_ticks = 0;
		reap_due = true;
	}
}

void mem_safe_point(void)
{
	if (reap_due) {
		reap_due = false;
		kmalloc_reap();
	}
}

/* Every hart once kmalloc runs: make its per-CPU data now, so it sits low
 * in the heap instead of splitting the pool later. */
void mem_init_hart_late(void)
{
	kfree(kmalloc(16));
}

void mem_init_hart(void)
{
	csr_write(satp, kernel_satp);
	sfence_vma_all();
}

static void *heap_get_pages(void *ctx, size_t n)
{
	(void)ctx;
	return vm_get_kernel_heap_pages(n);
}

static void heap_put_pages(void *ctx, void *va, size_t n)
{
	(void)ctx;
	vm_free_kernel_heap_pages(va, n);
}

/* CPU indexes the managers serve: the board's usable harts, at most
 * MAX_HARTS (start_secondaries starts no more; harts= only starts fewer). */
static unsigned board_cpus(const struct board *b)
{
	unsigned n = 0;

	for (unsigned i = 0; i < b->nharts; i++)
		n += b->harts[i].usable;
	return n < 1 ? 1 : n > MAX_HARTS ? MAX_HARTS : n;
}

/* The umm pool: contiguous pages through the direct map (for allocations
 * in trap context and by partitions' kernel services). Its descriptor,
 * sized for mem_cpus harts, sits in the pages just below it. */
static void init_umm_pool(void)
{
	size_t hdr = (UMM_SIZE(mem_cpus) + ENV_PAGE_SIZE - 1) & ~(size_t)(ENV_PAGE_SIZE - 1);
	uintptr_t pa = pmem_alloc_pages(&kpmem, (hdr + KUMM_POOL) / ENV_PAGE_SIZE, 0, 0,
					PMEM_NODE_ANY);
	int rc;

	if (!pa)
		panic("mem: no %lu KiB for the umm pool", (hdr + KUMM_POOL) >> 10);
	kumm = pa_to_dmap(pa);
	rc = umm_init_cpus(kumm, pa_to_dmap(pa + hdr), KUMM_POOL, mem_cpus);
	if (rc)
		panic("mem: umm_init: %s", err_str(rc));
}

void mem_init(const struct board *b, unsigned long fdt_pa, unsigned long fdt_size)
{
	static const struct kmalloc_page_source heap_src = { heap_get_pages, heap_put_pages, NULL };
	uint64_t root, t0, t1, t2;
	int rc;

	mem_cpus = board_cpus(b);
	t0 = rdinstret();
	feed_pmem(b, fdt_pa, fdt_size);
	t1 = rdinstret();
	root = build_kernel_table(b);
	t2 = rdinstret();
	boot_cost_pmem = t1 - t0;
	boot_cost_map = t2 - t1;
	kernel_satp = sv39_satp(0, root);
	mem_init_hart();
	asid_bits = probe_asid_bits(kernel_satp);
	kvm_env.asid_bits = asid_bits;
	init_umm_pool();
	vm_objcache_init(&kvm_objs, &kvm_env.pt);
	kvm_env.ncpus = mem_cpus;
	rc = vm_sys_init(&vm_kernel_sys, &kvm_env);
	if (rc)
		panic("mem: vm_sys_init: %s", err_str(rc));
	rc = vm_kernel_init(&vm_kernel_sys, root, KHEAP_BASE, 0, KHEAP_MAX, KVMAP_BASE, KVMAP_SIZE);
	if (rc)
		panic("mem: vm_kernel_init: %s", err_str(rc));
	rc = kmalloc_global_init(&heap_src, NULL, timebase_hz);   /* TTL 1 s */
	if (rc)
		panic("mem: kmalloc_global_init: %s", err_str(rc));
	/* grow by 4 pages at least (footprint), wait <= 1 ms for flushes */
	kmalloc_tune_i(kmalloc_global(), 4, timebase_hz / 1000);
	mem_init_hart_late();
	timer_add_hook(reap_tick);
}

/* The stacks of hart index i (not the boot hart's): one contiguous block
 * of pmem pages for [HSTACK_PHYS_OFF, HSTACK_PHYS_END) of its slot, the
 * two inner guard pages given back, the three stacks mapped into the
 * kernel half (vm_map on the kernel descriptor, so every address space
 * sees them), the guard page below the kernel stack never mapped. Pages
 * from the hart's NUMA node when it has one. Kept when the hart stops
 * (hot-plug starts it again on the same slot): a second call for a mapped
 * slot does nothing. 0, or E_NOMEM / vm_map's error with nothing kept. */
int mem_map_hart_stacks(unsigned i, int node)
{
	static const struct { unsigned off, size; } area[3] = {
		{ HSTACK_KSTACK, KSTACK_SIZE },
		{ HSTACK_EMERG, EMERG_STACK_SIZE },
		{ HSTACK_UTRAP, UTRAP_STACK_SIZE },
	};
	struct vm_descriptor *kd = vm_kernel(&vm_kernel_sys);
	size_t npages = (HSTACK_PHYS_END - HSTACK_PHYS_OFF) / ENV_PAGE_SIZE;
	uintptr_t slot = hart_slot(i), pa;
	unsigned k;
	int rc = 0;

	if (i == 0 || i >= harts_max)
		return E_INVAL;
	if (harts[i].stacks_pa)
		return 0;
	pa = pmem_alloc_pages(&kpmem, npages, 0, 0, node >= 0 ? node : PMEM_NODE_ANY);
	if (!pa)
		return E_NOMEM;
	pa -= HSTACK_PHYS_OFF;            /* the slot's base, as if all of it were backed */
	for (k = 0; k < 3; k++) {
		memset(pa_to_dmap(pa + area[k].off), 0, area[k].size);
		rc = vm_map(kd, slot + area[k].off, pa + area[k].off, area[k].size,
			    VM_R | VM_W);
		if (rc)
			break;
	}
	if (rc) {
		while (k-- > 0)
			vm_unmap(kd, slot + area[k].off, area[k].size);
		pmem_free_pages(&kpmem, pa + HSTACK_PHYS_OFF, npages);
		return rc;
	}
	/* the guard pages between the stacks need no memory behind them */
	if (pmem_free_pages(&kpmem, pa + HSTACK_EMERG - KSTACK_GUARD, 1) ||
	    pmem_free_pages(&kpmem, pa + HSTACK_UTRAP - KSTACK_GUARD, 1))
		panic("mem: hart %u stacks: pmem refused an inner guard page", i);
	harts[i].stacks_pa = pa;
	return 0;
}

size_t mem_kept_bytes(void)
{
	static struct kmalloc_stats ks;   /* about 10 KiB: not on the stack */
	static env_spinlock_t lock = ENV_SPINLOCK_INIT;
	unsigned long fl = env_lock(&lock);
	size_t n;

	kmalloc_stats(&ks);
	n = (size_t)ks.heap_bytes;
	env_unlock(&lock, fl);
	return n + (size_t)__atomic_load_n(&kvm_objs.pages, __ATOMIC_RELAXED) * ENV_PAGE_SIZE;
}

void *mem_map_mmio(uint64_t pa, size_t size)
{
	return vm_map_heap(pa, size, VM_R | VM_W);
}

void mem_banner(void)
{
	struct pmem_stats st;
	uint64_t n[3];

	extern char _kernel_start[], _kernel_end[];
	uint64_t image = (uint64_t)(_kernel_end - _kernel_start);

	pmem_banner(&kpmem);
	pmem_stats(&kpmem, &st);
	/* The image is one of pmem's reservations: show it on its own. */
	printf("memory: total %llu KiB = free %llu + kernel image %llu + pmem per-CPU "
	       "tables %llu + firmware, FDT and other reservations %llu + in use %llu KiB\n",
	       (unsigned long long)(st.total >> 10), (unsigned long long)(st.free >> 10),
	       (unsigned long long)(image >> 10), (unsigned long long)(st.percpu >> 10),
	       (unsigned long long)((st.reserved - image - st.percpu) >> 10),
	       (unsigned long long)((st.total - st.free - st.reserved) >> 10));
	pt_count(&vm_kernel(&vm_kernel_sys)->pt, SV39_ROOT_UPPER, SV39_ENTRIES, n);
	printf("vm: kernel map: %llu x 1 GiB, %llu x 2 MiB, %llu x 4 KiB pages; ASID bits %u\n",
	       (unsigned long long)n[2], (unsigned long long)n[1],
	       (unsigned long long)n[0], asid_bits);
	printf("boot: instret %llu feeding LMM from the board, %llu building the kernel map\n",
	       (unsigned long long)boot_cost_pmem, (unsigned long long)boot_cost_map);
}
