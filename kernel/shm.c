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

#include <stdio.h>
#include <string.h>

#include "kmalloc.h"
#include "lock.h"
#include "mem.h"
#include "part.h"
#include "part_roles.h"
#include "riscv.h"
#include "syscall_nr.h"

#define PAGE ENV_PAGE_SIZE
#define SHM_PEND_US 20000u   /* a waiting writer's claim lapses after this */

struct shm_area {
	bool used;
	char name[SYS_MM_NAME_MAX];
	size_t npages, max_pages;
	uint64_t *pa;                 /* max_pages entries */
	unsigned nattach;
	uintptr_t kva;                /* kernel window */
	/* The area lock's authority (the word inside the area is not). */
	spinlock_t lk;                /* guards the fields below and the holds */
	uint32_t writer;              /* holder key of the RW hold, 0 none */
	unsigned readers;             /* RD holds */
	uint32_t wwait;               /* a waiting writer's key, 0 none */
	uint64_t wwait_at;            /* its last attempt (rdtime) */
	bool died;                    /* a dead holder's hold was dropped: tell */
};

/* One hold of an area lock by one attachment. Keys: partition id << 8 |
 * attach slot + 1, or a kernel handle's index + 1. */
struct shm_hold {
	struct shm_area *area;        /* NULL: holds nothing */
	int mode;
	uint64_t since;               /* rdtime when taken */
	bool reported;                /* shm_holder_overdue was told */
};

static struct shm_area areas[SHM_MAX_AREAS];
static spinlock_t shm_lock = SPINLOCK_INIT;
static struct shm_hold pholds[MAX_PARTS + 1][PART_MAX_ATTACH];
static unsigned overdue_reports;
/* SHM_HOLD_US and SHM_PEND_US in rdtime ticks (shm_init): no division on
 * the lock path. */
static uint64_t hold_ticks = UINT64_MAX, pend_ticks;

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
	a->lk = (spinlock_t)SPINLOCK_INIT;
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

/* ---- the area lock: the kernel's record of holders ------------------------------ */

/* Print the one line the lead wires to part_kill: a partition kept an area
 * lock longer than SHM_HOLD_US. */
void shm_holder_overdue(uint32_t part_id, const char *area)
{
	__atomic_fetch_add(&overdue_reports, 1, __ATOMIC_RELAXED);
	printf("shm: partition #%u held the lock of area '%s' longer than %u ms\n",
	       part_id, area, SHM_HOLD_US / 1000);
}

unsigned shm_overdue_count(void)
{
	return __atomic_load_n(&overdue_reports, __ATOMIC_RELAXED);
}

/* A hold of a that has lasted longer than SHM_HOLD_US and was not reported
 * yet: marks it reported and returns its partition id (kernel holds are
 * not reported: 0). Called with a->lk held. */
static uint32_t find_overdue(struct shm_area *a, uint64_t now, bool *any)
{
	*any = false;
	for (unsigned id = 1; id <= MAX_PARTS; id++)
		for (unsigned i = 0; i < PART_MAX_ATTACH; i++) {
			struct shm_hold *hd = &pholds[id][i];

			/* since may be a hair ahead of now: another hart's clock */
			if (hd->area != a || now <= hd->since ||
			    now - hd->since <= hold_ticks)
				continue;
			*any = true;
			if (!hd->reported) {
				hd->reported = true;
				return id;
			}
		}
	return 0;
}

static bool pending_other(const struct shm_area *a, uint32_t key, uint64_t now)
{
	return a->wwait && a->wwait != key &&
	       (now <= a->wwait_at || now - a->wwait_at < pend_ticks);
}

/* One attempt: take a's lock in mode for the attachment whose hold record
 * is hd, or say why not. A waiting writer holds new readers off while it
 * keeps trying (its claim lapses after SHM_PEND_US without an attempt). */
static int try_lock(struct shm_area *a, struct shm_hold *hd, uint32_t key, int mode)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	uint64_t now = rdtime();       /* under the lock: holds' times are ordered */
	uint32_t late = 0;
	bool any = false;
	int rc = E_BUSY;

	if (hd->area)
		rc = E_DENIED;
	else if (mode == MM_LOCK_RD && !a->writer && !pending_other(a, key, now)) {
		a->readers++;
		rc = 0;
	} else if (mode == MM_LOCK_RW && !a->writer && !a->readers) {
		a->writer = key;
		if (a->wwait == key)
			a->wwait = 0;
		rc = 0;
	} else {
		if (mode == MM_LOCK_RW && !pending_other(a, key, now)) {
			a->wwait = key;
			a->wwait_at = now;
		}
		late = find_overdue(a, now, &any);
		if (any)
			rc = E_TIMEOUT;
	}
	if (rc == 0) {
		*hd = (struct shm_hold){ .area = a, .mode = mode, .since = now };
		if (a->died) {
			a->died = false;
			rc = MM_LOCK_OWNER_DIED;
		}
	}
	spin_unlock_irqrestore(&a->lk, fl);
	if (late)
		shm_holder_overdue(late, a->name);
	return rc;
}

/* Drop the hold hd of a. `died`: its holder is gone, tell the next locker. */
static int drop_hold(struct shm_area *a, struct shm_hold *hd, uint32_t key, bool died)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	int rc = 0;

	if (hd->area != a)
		rc = E_INVAL;
	else if (hd->mode == MM_LOCK_RW)
		a->writer = 0;
	else
		a->readers--;
	if (!rc) {
		hd->area = NULL;
		hd->mode = 0;
		a->died |= died;
	}
	if (died && a->wwait == key)
		a->wwait = 0;
	spin_unlock_irqrestore(&a->lk, fl);
	return rc;
}

static uint32_t pkey(const struct partition *p, const struct part_attach *at)
{
	return (uint32_t)p->id << 8 | (uint32_t)(at - p->att + 1);
}

long shm_sys_lock(struct partition *p, uintptr_t base, int mode)
{
	struct part_attach *at = att_of(p, base);

	if (!at)
		return E_NOENT;
	if (mode != MM_LOCK_RD && mode != MM_LOCK_RW)
		return E_INVAL;
	return try_lock(at->area, &pholds[p->id][at - p->att], pkey(p, at), mode);
}

long shm_sys_unlock(struct partition *p, uintptr_t base)
{
	struct part_attach *at = att_of(p, base);

	if (!at)
		return E_NOENT;
	return drop_hold(at->area, &pholds[p->id][at - p->att], pkey(p, at), false);
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
	/* detaching with the lock held: the hold goes, the next locker is told */
	drop_hold(at->area, &pholds[p->id][at - p->att], pkey(p, at), true);
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
		/* release what it held, so the next locker is told; the
		 * header's slots too (only cosmetic: nattach in mm_stats) */
		drop_hold(at->area, &pholds[p->id][i], pkey(p, at), true);
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

	hold_ticks = (uint64_t)SHM_HOLD_US * timebase_hz / 1000000;
	pend_ticks = (uint64_t)SHM_PEND_US * timebase_hz / 1000000;

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

struct khandle {
	MM mm;
	struct shm_area *area;
	bool used;
	struct shm_hold hold;
};
static struct khandle khandles[SHM_MAX_AREAS];

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

/* The kernel waits for partitions' holds: bounded, relaxing, with the
 * same record and the same answers as a partition. */
static int k_lock(void *ctx, void *base, int mode)
{
	struct khandle *k = ctx;
	uint32_t key = (uint32_t)(k - khandles) + 1;
	uint64_t end = 0;

	(void)base;
	for (;;) {
		int rc = try_lock(k->area, &k->hold, key, mode);

		if (rc != E_BUSY)
			return rc;
		if (!end)
			end = time_us() + SHM_WAIT_US;
		else if (time_us() > end)
			return E_TIMEOUT;
		env_cpu_relax();
	}
}

static int k_unlock(void *ctx, void *base)
{
	struct khandle *k = ctx;

	(void)base;
	return drop_hold(k->area, &k->hold, (uint32_t)(k - khandles) + 1, false);
}

static const struct mm_env kenv = {
	.grow = k_grow,
	.ensure_mapped = k_ensure,
	.is_alive = k_alive,
	.lock = k_lock,
	.unlock = k_unlock,
	.self_id = 0,
};

MM *shm_kernel_create(const char *name, size_t static_size, size_t initial, size_t max)
{
	struct mm_env env = kenv;
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
	env.ctx = &khandles[k];
	khandles[k].area = a;
	memset(&khandles[k].hold, 0, sizeof(khandles[k].hold));
	if (a && !rc)
		rc = mm_attach_base(&khandles[k].mm, (void *)a->kva, a->npages * PAGE, max, &env);
	if (a && !rc) {
		a->nattach++;
		khandles[k].used = true;
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
