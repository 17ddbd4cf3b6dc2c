/* vm_kheap.c - the kernel descriptor: adopting the boot table, the
 * "kheap" segment (kmalloc's page source) and the "vmap" segment (MMIO and
 * caller pages). It stays in mm/ so the host suite covers it; the policy
 * (where the heap is, how big) is the caller's (kernel/mem.c).
 */
#include "vm_int.h"

/* ---- kernel descriptor and heap ------------------------------------------------------------ */

int vm_kernel_init(vm_sys_t *sys, uint64_t root_pa, uintptr_t heap_va,
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

void vm_sys_fini(vm_sys_t *sys)
{
	while (sys->all)
		vm_free(sys->all);
	while (sys->kern.segs)
		vm_segment_clean(sys->kern.segs);
	sys->ready = false;
	if (sys->cur)
		sys->env->obj_free(sys->env->ctx, sys->cur);
	sys->cur = NULL;
	sys->ncpus = 0;
}

void *vm_heap_pages_i(vm_sys_t *sys, size_t npages)
{
	if (!sys->heap || npages == 0 || npages > SIZE_MAX / PAGE)
		return NULL;
	return vm_segment_alloc(sys->heap, npages * PAGE);
}

void vm_free_heap_pages_i(vm_sys_t *sys, void *va, size_t npages)
{
	struct vm_range *dead = NULL;
	unsigned long fl = env_lock(&sys->kern.lock);

	release_range(sys->heap, (uintptr_t)va, npages * PAGE, &dead);
	env_unlock(&sys->kern.lock, fl);
	ranges_free(sys->env, dead);
}

void *vm_map_heap_i(vm_sys_t *sys, uint64_t pa, size_t size, unsigned prot)
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
	ranges_free(sys->env, dead);
	return va ? (void *)(va + off) : NULL;
}

void vm_unmap_heap_i(vm_sys_t *sys, void *p)
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
	ranges_free(sys->env, dead);
}

void *vm_get_kernel_heap_pages(size_t npages)
{
	return vm_heap_pages_i(&vm_kernel_sys, npages);
}

void vm_free_kernel_heap_pages(void *va, size_t npages)
{
	vm_free_heap_pages_i(&vm_kernel_sys, va, npages);
}

void *vm_map_heap(uint64_t pa, size_t size, unsigned prot)
{
	return vm_map_heap_i(&vm_kernel_sys, pa, size, prot);
}

void vm_unmap_heap(void *va)
{
	vm_unmap_heap_i(&vm_kernel_sys, va);
}

