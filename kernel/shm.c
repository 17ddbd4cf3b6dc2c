/* shm.c - shared mm areas: the kernel's registry, page backing, and the
 * mappings in partitions and in the kernel window.
 *
 * The kernel keeps every size it relies on (pages backed, pages mapped per
 * attacher, the maximum) in its own memory; the header inside the area is
 * the mm library's and may be garbage written by a hostile partition.
 *
 * Lock order: shm_lock -> kmalloc -> VM locks -> pmem lock.
 */
#include "shm.h"

#include <string.h>

#include "kmalloc.h"
#include "lock.h"
#include "mem.h"
#include "part.h"
#include "part_roles.h"
#include "syscall_nr.h"

#define PAGE ENV_PAGE_SIZE

struct shm_area {
	bool used;
	char name[SYS_MM_NAME_MAX];
	size_t npages, max_pages;
	uint64_t *pa;                 /* max_pages entries */
	unsigned nattach;
	uintptr_t kva;                /* kernel window */
};

static struct shm_area areas[SHM_MAX_AREAS];
static spinlock_t shm_lock = SPINLOCK_INIT;

static size_t pages_of(size_t bytes)
{
	return (bytes + PAGE - 1) / PAGE;
}

/* Back the area with pages up to npages, mapped in the kernel window. */
static int area_grow(struct shm_area *a, size_t npages)
{
	while (a->npages < npages) {
		uintptr_t pa = pmem_alloc_page(&kpmem);
		int rc;

		if (!pa)
			return E_NOMEM;
		memset(pa_to_dmap(pa), 0, PAGE);
		rc = vm_map(vm_kernel(&vm_kernel_sys), a->kva + a->npages * PAGE, pa, PAGE,
			    VM_R | VM_W);
		if (rc) {
			pmem_free_page(&kpmem, pa);
			return rc;
		}
		a->pa[a->npages++] = pa;
	}
	return 0;
}

static void area_free(struct shm_area *a)
{
	if (a->npages)
		vm_unmap(vm_kernel(&vm_kernel_sys), a->kva, a->npages * PAGE);
	for (size_t i = 0; i < a->npages; i++)
		pmem_free_page(&kpmem, a->pa[i]);
	kfree(a->pa);
	memset(a, 0, sizeof(*a));
}

static struct shm_area *find(const char *name)
{
	for (unsigned i = 0; i < SHM_MAX_AREAS; i++)
		if (areas[i].used && strcmp(areas[i].name, name) == 0)
			return &areas[i];
	return NULL;
}

/* Find `name` or make it with `initial` bytes backed; *created says which. */
static struct shm_area *find_or_create(const char *name, size_t initial, size_t max,
				       bool *created, int *err)
{
	struct shm_area *a = find(name);

	*created = false;
	if (a)
		return a;
	for (unsigned i = 0; i < SHM_MAX_AREAS && !a; i++)
		if (!areas[i].used)
			a = &areas[i];
	if (!a) {
		*err = E_NOMEM;
		return NULL;
	}
	memset(a, 0, sizeof(*a));
	a->max_pages = pages_of(max);
	a->pa = kcalloc(a->max_pages, sizeof(uint64_t));
	if (!a->pa) {
		*err = E_NOMEM;
		return NULL;
	}
	a->used = true;
	a->kva = SHM_KWINDOW + (uintptr_t)(a - areas) * SHM_MAX_SIZE;
	strncpy(a->name, name, sizeof(a->name) - 1);
	if ((*err = area_grow(a, pages_of(initial)))) {
		area_free(a);
		return NULL;
	}
	*created = true;
	return a;
}

/* ---- partitions' side ------------------------------------------------------------- */

static struct part_attach *att_of(struct partition *p, uintptr_t base)
{
	for (unsigned i = 0; i < PART_MAX_ATTACH; i++)
		if (p->att[i].area && p->att[i].base == base)
			return &p->att[i];
	return NULL;
}

/* Map the area's backed pages beyond what p has mapped, up to `bytes`. */
static int map_into(struct partition *p, struct part_attach *at, size_t bytes)
{
	struct shm_area *a = at->area;
	size_t want = pages_of(bytes);

	if (want > a->npages)
		want = a->npages;
	while (at->mapped / PAGE < want) {
		size_t i = at->mapped / PAGE;
		int rc = vm_map(p->vm, at->base + i * PAGE, a->pa[i], PAGE, VM_R | VM_W | VM_U);
		if (rc)
			return rc;
		at->mapped += PAGE;
	}
	return 0;
}

long shm_sys_attach(struct partition *p, const char *name, size_t initial, size_t max,
		    uint64_t *base, uint64_t *mapped, uint64_t *created)
{
	struct part_attach *at = NULL;
	struct shm_area *a;
	unsigned long fl;
	unsigned slot = 0;
	bool made;
	int rc = 0;

	if (!name[0] || initial == 0 || initial > max || max > SHM_MAX_SIZE)
		return E_INVAL;
	for (unsigned i = 0; i < PART_MAX_ATTACH && !at; i++)
		if (!p->att[i].area) {
			at = &p->att[i];
			slot = i;
		}
	if (!at)
		return E_BUSY;
	fl = spin_lock_irqsave(&shm_lock);
	a = find_or_create(name, initial, max, &made, &rc);
	if (a) {
		/* a different address in every partition: offsets, not pointers */
		at->area = a;
		at->base = USER_SHM_BASE + slot * USER_SHM_SLOT + (uintptr_t)p->id * (2ul << 20);
		at->mapped = 0;
		rc = map_into(p, at, a->npages * PAGE);
		if (rc) {
			if (at->mapped)
				vm_unmap(p->vm, at->base, at->mapped);
			at->area = NULL;
			if (made)
				area_free(a);
		} else {
			a->nattach++;
			*base = at->base;
			*mapped = at->mapped;
			*created = made;
		}
	}
	spin_unlock_irqrestore(&shm_lock, fl);
	return rc;
}

/* Map the area into p up to `size` bytes, backing it with new pages first
 * when `grow` (the caller holds the area's RW lock, mm.c's contract). */
static long map_up_to(struct partition *p, uintptr_t base, size_t size, bool grow)
{
	struct part_attach *at = att_of(p, base);
	unsigned long fl;
	long rc = 0;

	if (!at)
		return E_NOENT;
	fl = spin_lock_irqsave(&shm_lock);
	if (grow && pages_of(size) > at->area->max_pages)
		rc = E_RANGE;
	else if (grow)
		rc = area_grow(at->area, pages_of(size));
	if (!rc)
		rc = map_into(p, at, size);
	if (!rc)
		rc = (long)at->mapped;
	spin_unlock_irqrestore(&shm_lock, fl);
	return rc;
}

long shm_sys_grow(struct partition *p, uintptr_t base, size_t new_size)
{
	return map_up_to(p, base, new_size, true);
}

long shm_sys_map(struct partition *p, uintptr_t base, size_t size)
{
	return map_up_to(p, base, size, false);
}

static void detach_locked(struct partition *p, struct part_attach *at)
{
	struct shm_area *a = at->area;

	if (at->mapped)
		vm_unmap(p->vm, at->base, at->mapped);
	at->area = NULL;
	at->mapped = 0;
	if (--a->nattach == 0)
		area_free(a);
}

long shm_sys_detach(struct partition *p, uintptr_t base)
{
	struct part_attach *at = att_of(p, base);
	unsigned long fl;

	if (!at)
		return E_NOENT;
	fl = spin_lock_irqsave(&shm_lock);
	detach_locked(p, at);
	spin_unlock_irqrestore(&shm_lock, fl);
	return 0;
}

void shm_detach_all(struct partition *p)
{
	unsigned long fl = spin_lock_irqsave(&shm_lock);

	for (unsigned i = 0; i < PART_MAX_ATTACH; i++) {
		struct part_attach *at = &p->att[i];
		if (!at->area)
			continue;
		/* release what it held, so the next locker is told */
		mm_area_owner_died((void *)at->area->kva, at->area->npages * PAGE, p->id);
		detach_locked(p, at);
	}
	spin_unlock_irqrestore(&shm_lock, fl);
}

/* Build the kernel window's page tables once, at boot: kernel tables are
 * never freed, so building them here keeps later areas from looking like
 * leaks, and keeps page-table allocation off the attach path. */
void shm_init(void)
{
	uintptr_t pa = pmem_alloc_page(&kpmem);

	if (!pa)
		panic("shm_init: no page");
	for (unsigned i = 0; i < SHM_MAX_AREAS; i++) {
		uintptr_t va = SHM_KWINDOW + (uintptr_t)i * SHM_MAX_SIZE;
		if (vm_map(vm_kernel(&vm_kernel_sys), va, pa, PAGE, VM_R) ||
		    vm_unmap(vm_kernel(&vm_kernel_sys), va, PAGE))
			panic("shm_init: kernel window at 0x%lx", va);
	}
	pmem_free_page(&kpmem, pa);
}

/* ---- the kernel as an attacher ------------------------------------------------------ */

static struct {
	MM mm;
	struct shm_area *area;
	bool used;
} khandles[SHM_MAX_AREAS];

static struct shm_area *area_at(void *base)
{
	for (unsigned i = 0; i < SHM_MAX_AREAS; i++)
		if (areas[i].used && areas[i].kva == (uintptr_t)base)
			return &areas[i];
	return NULL;
}

static int k_grow(void *ctx, void *base, size_t new_size, size_t *mapped)
{
	struct shm_area *a = area_at(base);
	unsigned long fl;
	int rc;

	(void)ctx;
	if (!a)
		return E_NOENT;
	fl = spin_lock_irqsave(&shm_lock);
	rc = pages_of(new_size) > a->max_pages ? E_RANGE : area_grow(a, pages_of(new_size));
	*mapped = a->npages * PAGE;
	spin_unlock_irqrestore(&shm_lock, fl);
	return rc;
}

static int k_ensure(void *ctx, void *base, size_t size, size_t *mapped)
{
	struct shm_area *a = area_at(base);

	(void)ctx;
	(void)size;
	if (!a)
		return E_NOENT;
	*mapped = a->npages * PAGE;   /* the kernel window maps every page */
	return 0;
}

static bool k_alive(void *ctx, uint32_t id)
{
	(void)ctx;
	return part_alive(id);
}

static const struct mm_env kenv = {
	.grow = k_grow,
	.ensure_mapped = k_ensure,
	.is_alive = k_alive,
	.self_id = 0,
};

MM *shm_kernel_create(const char *name, size_t static_size, size_t initial, size_t max)
{
	struct shm_area *a;
	unsigned long fl;
	unsigned k;
	bool made;
	int rc = 0;

	for (k = 0; k < SHM_MAX_AREAS && khandles[k].used; k++)
		;
	if (k == SHM_MAX_AREAS || max > SHM_MAX_SIZE || initial > max)
		return NULL;
	initial = pages_of(initial) * PAGE;
	fl = spin_lock_irqsave(&shm_lock);
	a = find_or_create(name, initial, max, &made, &rc);
	if (a && made)
		rc = mm_init_area((void *)a->kva, initial, max, static_size);
	if (a && !rc)
		rc = mm_attach_base(&khandles[k].mm, (void *)a->kva, a->npages * PAGE, max, &kenv);
	if (a && !rc) {
		a->nattach++;
		khandles[k].used = true;
		khandles[k].area = a;
	} else if (a && made) {
		area_free(a);
	}
	spin_unlock_irqrestore(&shm_lock, fl);
	return rc ? NULL : &khandles[k].mm;
}

void shm_kernel_detach(MM *mm)
{
	for (unsigned k = 0; k < SHM_MAX_AREAS; k++) {
		unsigned long fl;

		if (!khandles[k].used || &khandles[k].mm != mm)
			continue;
		mm_detach(mm);
		fl = spin_lock_irqsave(&shm_lock);
		if (--khandles[k].area->nattach == 0)
			area_free(khandles[k].area);
		spin_unlock_irqrestore(&shm_lock, fl);
		khandles[k].used = false;
	}
}

unsigned shm_count(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SHM_MAX_AREAS; i++)
		n += areas[i].used;
	return n;
}
