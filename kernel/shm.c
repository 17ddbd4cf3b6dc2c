/* shm.c - shared mm areas: the kernel's registry, page backing, quotas,
 * and the mappings in partitions and in the kernel window.
 *
 * The kernel keeps every size it relies on (pages backed, pages mapped per
 * attacher, the maximum) in its own memory; the header inside the area is
 * the mm library's and may be garbage written by a hostile partition.
 *
 * Who pays (docs/MM.md): the creator of an area is charged, at creation,
 * for all of it (max size, the tables of its pages' addresses and its
 * record); every attacher, the creator included, for the page tables its
 * mapping may need. Charges count against the partition's private quota.
 *
 * Records are kmalloc'ed; backing pages and page-address tables come from
 * pmem, so everything goes back when the last attacher leaves. Growth
 * zeroes pages with no lock held and publishes them SHM_GROW_CHUNK at a
 * time under the area's own lock: the registry lock (shm_lock, a ticket
 * lock) is never held across page work.
 *
 * Lock order: shm_lock -> area lk -> kmalloc -> VM locks -> pmem lock.
 */
#include "shm.h"

#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "kmalloc.h"
#include "mem.h"
#include "panic.h"
#include "part_roles.h"
#include "shm_int.h"
#include "timer.h"

#define PAGE ENV_PAGE_SIZE

_Static_assert(SHM_KWINDOW + SHM_KSLOTS * SHM_KWINDOW_SLOT <= KERNEL_WINDOW,
	       "the shm window ends below the kernel image");
_Static_assert(PART_VA_SLOTS * USER_SHM_ID_STRIDE + SHM_MAX_SIZE <= USER_SHM_SLOT,
	       "every partition's attach address stays inside its slot");
_Static_assert(USER_SHM_BASE + PART_MAX_ATTACH * USER_SHM_SLOT <=
	       USER_STACK_TOP - PART_VA_SLOTS * USER_STACK_STRIDE,
	       "attach slots end below the lowest partition stack");
#define SHM_GROW_CHUNK 16       /* pages published per step under the area lock */

static struct shm_area *areas;           /* the registry */
static unsigned nareas;
static ticketlock_t shm_lock = TICKETLOCK_INIT;
static bool kslot_used[SHM_KSLOTS];

static size_t pages_of(size_t bytes)
{
	return (bytes + PAGE - 1) / PAGE;
}

/* Page tables one attachment of a may need: a leaf table per 2 MiB of its
 * room, and two above (the room may straddle a 1 GiB boundary). */
static size_t tables_of(const struct shm_area *a)
{
	return (a->max_pages + 511) / 512 + 2;
}

size_t shm_charged(const struct partition *p)
{
	return __atomic_load_n(&p->shm_charged, __ATOMIC_RELAXED);
}

static bool quota_ok(const struct partition *p, size_t more)
{
	return part_pages(p) + p->shm_charged + more <= p->quota_pages;
}

static uint64_t pa_at(const struct shm_area *a, size_t i)
{
	return a->pa[i / SHM_PA_PER_PAGE][i % SHM_PA_PER_PAGE];
}

static size_t npages_of(struct shm_area *a)
{
	return __atomic_load_n(&a->npages, __ATOMIC_ACQUIRE);
}

/* ---- backing ------------------------------------------------------------------ */

static void free_pages(uint64_t *pas, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pmem_free_page(&kpmem, pas[i]);
}

/* Publish pages [start, start + n) of a, mapped in the kernel window if it
 * is there. E_BUSY if another grower published first (the caller retries
 * from the new size). Called with nothing held. */
static int publish(struct shm_area *a, size_t start, uint64_t *pas, size_t n)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	int rc = a->npages == start ? 0 : E_BUSY;
	size_t i;

	for (i = 0; !rc && i < n; i++) {
		if (a->kslot >= 0)
			rc = vm_map(vm_kernel(&vm_kernel_sys), a->kva + (start + i) * PAGE, pas[i],
				    PAGE, VM_R | VM_W);
		if (!rc)
			a->pa[(start + i) / SHM_PA_PER_PAGE][(start + i) % SHM_PA_PER_PAGE] = pas[i];
	}
	if (rc && i > 1 && a->kslot >= 0)
		vm_unmap(vm_kernel(&vm_kernel_sys), a->kva + start * PAGE, (i - 1) * PAGE);
	if (!rc)
		__atomic_store_n(&a->npages, start + n, __ATOMIC_RELEASE);
	spin_unlock_irqrestore(&a->lk, fl);
	return rc;
}

/* Back a with pages up to want (<= max_pages): zeroed with no lock held,
 * published a chunk at a time. A failed call keeps the chunks it
 * published (the area is larger, still consistent). */
static int area_grow(struct shm_area *a, size_t want)
{
	uint64_t pas[SHM_GROW_CHUNK];

	for (size_t start; (start = npages_of(a)) < want;) {
		size_t n = want - start < SHM_GROW_CHUNK ? want - start : SHM_GROW_CHUNK, k;
		int rc = 0;

		for (k = 0; k < n; k++) {
			pas[k] = pmem_alloc_page(&kpmem);
			if (!pas[k])
				break;
			memset(pa_to_dmap(pas[k]), 0, PAGE);
		}
		if (k == n)
			rc = publish(a, start, pas, n);
		if (k < n || rc) {
			free_pages(pas, k);
			if (k < n || rc != E_BUSY)
				return k < n ? E_NOMEM : rc;
		}
	}
	return 0;
}

/* Everything of a (unlinked, no attacher left) back to pmem and kmalloc. */
static void area_release(struct shm_area *a)
{
	size_t n = a->npages;

	if (a->kslot >= 0 && n)
		vm_unmap(vm_kernel(&vm_kernel_sys), a->kva, n * PAGE);
	for (size_t i = 0; i < n; i++)
		pmem_free_page(&kpmem, pa_at(a, i));
	for (unsigned t = 0; t < a->npa; t++)
		pmem_free_page(&kpmem, (uintptr_t)a->pa[t] - DIRECT_MAP_BASE);
	kfree(a);
}

/* A new record with its page-address tables, nothing backed yet. */
static struct shm_area *area_new(const char *name, size_t max)
{
	struct shm_area *a = kcalloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->max_pages = pages_of(max);
	a->kslot = -1;
	strncpy(a->name, name, sizeof(a->name) - 1);
	for (a->npa = 0; a->npa * SHM_PA_PER_PAGE < a->max_pages; a->npa++) {
		uintptr_t pa = pmem_alloc_page(&kpmem);

		if (!pa) {
			area_release(a);
			return NULL;
		}
		a->pa[a->npa] = pa_to_dmap(pa);
	}
	return a;
}

/* Pages the creator pays for: all of the area, its tables, its record. */
static size_t creation_charge(size_t max)
{
	size_t pages = pages_of(max);

	return pages + (pages + SHM_PA_PER_PAGE - 1) / SHM_PA_PER_PAGE + 1;
}

static struct shm_area *find(const char *name)
{
	for (struct shm_area *a = areas; a; a = a->next)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static void unlink_area(struct shm_area *a)
{
	struct shm_area **pp = &areas;

	while (*pp != a)
		pp = &(*pp)->next;
	*pp = a->next;
	nareas--;
	if (a->payer) {
		a->payer->shm_charged -= a->charge;
		a->payer->shm_created--;
	}
	if (a->kslot >= 0)
		kslot_used[a->kslot] = false;
}

/* One attacher less (shm_lock held); true if a must now be released. */
static bool put_locked(struct shm_area *a)
{
	if (--a->nattach)
		return false;
	unlink_area(a);
	return true;
}

static void put(struct shm_area *a)
{
	unsigned long fl = ticket_lock_irqsave(&shm_lock);
	bool last = put_locked(a);

	ticket_unlock_irqrestore(&shm_lock, fl);
	if (last)
		area_release(a);
}

/* Find `name` with one more attacher, or insert nw (a new record already
 * backed up to its initial size, so no attacher ever finds an area still
 * being made) paid by `payer` (NULL: the kernel). Not found and nw NULL:
 * E_NOENT once the limits and the quota allow a creation (the caller
 * builds nw and calls again). shm_lock held. */
static struct shm_area *get_locked(const char *name, size_t max, struct partition *payer,
				   struct shm_area *nw, bool *made, int *err)
{
	struct shm_area *a = find(name);
	size_t charge = creation_charge(max);

	*made = false;
	if (a) {
		a->nattach++;
		return a;
	}
	if (payer && payer->shm_created >= SHM_PART_AREAS)
		*err = E_BUSY;                   /* its limit of areas */
	else if (nareas >= SHM_MAX_AREAS)
		*err = E_BUSY;                   /* cannot happen: see shm.h */
	else if (payer && !quota_ok(payer, charge))
		*err = E_NOMEM;                  /* its quota */
	else if (!nw)
		*err = E_NOENT;
	else
		a = nw;
	if (!a)
		return NULL;
	a->nattach = 1;
	a->next = areas;
	areas = a;
	nareas++;
	if (payer) {
		a->payer = payer;
		a->charge = charge;
		payer->shm_charged += charge;
		payer->shm_created++;
	}
	*made = true;
	return a;
}

/* A new record for `name` backed up to `initial` bytes, or NULL (*rc). */
static struct shm_area *build(const char *name, size_t initial, size_t max, int *rc)
{
	struct shm_area *nw = area_new(name, max);

	*rc = nw ? area_grow(nw, pages_of(initial)) : E_NOMEM;
	if (nw && *rc) {
		area_release(nw);
		nw = NULL;
	}
	return nw;
}

/* ---- partitions' side ------------------------------------------------------------- */

struct part_attach *shm_att_of(struct partition *p, uintptr_t base)
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
	size_t want = pages_of(bytes), have = npages_of(a);

	if (want > have)
		want = have;
	while (at->mapped / PAGE < want) {
		size_t i = at->mapped / PAGE;
		int rc = vm_map(p->vm, at->base + i * PAGE, pa_at(a, i), PAGE, VM_R | VM_W | VM_U);
		if (rc)
			return rc;
		at->mapped += PAGE;
	}
	return 0;
}

/* Undo an attachment of p: unmap, uncharge, one attacher less. */
static void detach_att(struct partition *p, struct part_attach *at)
{
	struct shm_area *a = at->area;
	unsigned long fl;
	bool last;

	if (at->mapped)
		vm_unmap(p->vm, at->base, at->mapped);
	shm_hold_unlink(a, shm_phold(p, (unsigned)(at - p->att)));
	fl = ticket_lock_irqsave(&shm_lock);
	p->shm_charged -= tables_of(a);
	at->area = NULL;
	at->mapped = 0;
	last = put_locked(a);
	ticket_unlock_irqrestore(&shm_lock, fl);
	if (last)
		area_release(a);
}

long shm_sys_attach(struct partition *p, const char *name, size_t initial, size_t max,
		    uint64_t *base, uint64_t *mapped, uint64_t *created_out)
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
		return E_BUSY;                   /* its limit of attachments */
	for (struct shm_area *nw = NULL;;) {
		rc = 0;
		fl = ticket_lock_irqsave(&shm_lock);
		a = get_locked(name, max, p, nw, &made, &rc);
		if (a && !quota_ok(p, tables_of(a))) {
			rc = E_NOMEM;
			a = put_locked(a) ? a : NULL;   /* made: give it up */
		} else if (a) {
			p->shm_charged += tables_of(a);
			/* a different address in neighbours: offsets, not pointers */
			at->area = a;
			at->base = USER_SHM_BASE + slot * USER_SHM_SLOT +
				   (uintptr_t)part_va_slot(p) * USER_SHM_ID_STRIDE;
			at->mapped = 0;
		}
		ticket_unlock_irqrestore(&shm_lock, fl);
		if (nw && (!at->area || at->area != nw) && a != nw)
			area_release(nw);        /* another made it first, or refused */
		if (rc != E_NOENT || nw)
			break;
		if (!(nw = build(name, initial, max, &rc)))
			return rc;
	}
	if (rc) {
		if (a)
			area_release(a);         /* made and at once given up */
		return rc;
	}
	shm_hold_link(a, shm_phold(p, slot), p->id);
	rc = map_into(p, at, npages_of(a) * PAGE);
	if (rc) {
		detach_att(p, at);
		return rc;
	}
	*base = at->base;
	*mapped = at->mapped;
	*created_out = made;
	return 0;
}

/* Map the area into p up to `size` bytes, backing it with new pages first
 * when `grow` (the caller holds the area's RW lock, mm.c's contract; the
 * creator paid for the whole maximum already). */
static long map_up_to(struct partition *p, uintptr_t base, size_t size, bool grow)
{
	struct part_attach *at = shm_att_of(p, base);
	long rc = 0;

	if (!at)
		return E_NOENT;
	if (grow && pages_of(size) > at->area->max_pages)
		rc = E_RANGE;
	else if (grow)
		rc = area_grow(at->area, pages_of(size));
	if (!rc)
		rc = map_into(p, at, size);
	return rc ? rc : (long)at->mapped;
}

long shm_sys_grow(struct partition *p, uintptr_t base, size_t new_size)
{
	return map_up_to(p, base, new_size, true);
}

long shm_sys_map(struct partition *p, uintptr_t base, size_t size)
{
	return map_up_to(p, base, size, false);
}

long shm_sys_detach(struct partition *p, uintptr_t base)
{
	struct part_attach *at = shm_att_of(p, base);

	if (!at)
		return E_NOENT;
	/* detaching with the lock held: the hold goes, the next locker is told */
	shm_drop_hold(at->area, shm_phold(p, (unsigned)(at - p->att)), shm_pkey(p, at), true);
	detach_att(p, at);
	return 0;
}

void shm_detach_all(struct partition *p)
{
	unsigned long fl;

	for (unsigned i = 0; i < PART_MAX_ATTACH; i++) {
		struct part_attach *at = &p->att[i];
		struct shm_area *a = at->area;

		if (!a)
			continue;
		/* release what it held, so the next locker is told; the
		 * header's slots too (only cosmetic: nattach in mm_stats) */
		shm_drop_hold(a, shm_phold(p, i), shm_pkey(p, at), true);
		if (npages_of(a))
			mm_area_owner_died(pa_to_dmap(pa_at(a, 0)), PAGE, p->id);
		detach_att(p, at);
	}
	/* areas it created and others still use: the kernel carries them */
	fl = ticket_lock_irqsave(&shm_lock);
	for (struct shm_area *a = areas; a; a = a->next)
		if (a->payer == p)
			a->payer = NULL;
	p->shm_charged = 0;
	p->shm_created = 0;
	ticket_unlock_irqrestore(&shm_lock, fl);
}

/* Build the kernel window's page tables once, at boot, for every slot's
 * whole 16 MiB: kernel tables are never freed, so building them here
 * keeps areas from looking like leaks (issue 11.7) and keeps page-table
 * allocation off the attach and growth paths. */
void shm_init(void)
{
	uintptr_t pa = pmem_alloc_page(&kpmem);

	if (!pa)
		panic("shm_init: no page");
	shm_lock_init();
	for (unsigned i = 0; i < SHM_KSLOTS; i++)
		for (uintptr_t off = 0; off < SHM_MAX_SIZE; off += SV39_SIZE_2M)   /* one L0 table each */ {
			uintptr_t va = SHM_KWINDOW + (uintptr_t)i * SHM_MAX_SIZE + off;
			if (vm_map(vm_kernel(&vm_kernel_sys), va, pa, PAGE, VM_R) ||
			    vm_unmap(vm_kernel(&vm_kernel_sys), va, PAGE))
				panic("shm_init: kernel window at 0x%lx", va);
		}
	pmem_free_page(&kpmem, pa);
}

/* ---- the kernel as an attacher ------------------------------------------------------ */

struct khandle {
	mm_t mm;
	struct shm_area *area;
	bool used;
};
static struct khandle khandles[SHM_KSLOTS];

static int k_grow(void *ctx, void *base, size_t new_size, size_t *mapped)
{
	struct shm_area *a = ((struct khandle *)ctx)->area;
	int rc;

	(void)base;
	rc = pages_of(new_size) > a->max_pages ? E_RANGE : area_grow(a, pages_of(new_size));
	*mapped = npages_of(a) * PAGE;
	return rc;
}

static int k_ensure(void *ctx, void *base, size_t size, size_t *mapped)
{
	(void)base;
	(void)size;
	/* the kernel window maps every published page */
	*mapped = npages_of(((struct khandle *)ctx)->area) * PAGE;
	return 0;
}

static bool k_alive(void *ctx, uint32_t id)
{
	(void)ctx;
	return part_alive(id);
}

_Static_assert(MM_LOCK_WAIT_US == SHM_WAIT_US, "shm.c: the kernel and partitions wait alike");

/* One attempt on the kernel's record, with the same answers as a
 * partition's SYS_MM_LOCK; mm_lock retries E_BUSY (relax, now_us). */
static int k_lock(void *ctx, void *base, int mode)
{
	struct khandle *k = ctx;
	uint32_t key = (uint32_t)(k - khandles) + 1;

	(void)base;
	return shm_try_lock(k->area, shm_khold((unsigned)(k - khandles)), key, mode);
}

static int k_unlock(void *ctx, void *base)
{
	struct khandle *k = ctx;

	(void)base;
	return shm_drop_hold(k->area, shm_khold((unsigned)(k - khandles)), (uint32_t)(k - khandles) + 1, false);
}

static const struct mm_env kenv = {
	.grow = k_grow,
	.ensure_mapped = k_ensure,
	.is_alive = k_alive,
	.lock = k_lock,
	.unlock = k_unlock,
	.now_us = time_us,
	.self_id = 0,
};

static void window_out(struct shm_area *a);

/* Put a (attached by the kernel) in kernel window slot s and map what it
 * has: under its lock, so growth cannot publish pages in between. */
static int window_in(struct shm_area *a, unsigned s)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	int rc = 0;

	a->kslot = (int)s;
	a->kva = SHM_KWINDOW + (uintptr_t)s * SHM_MAX_SIZE;
	for (size_t i = 0; !rc && i < a->npages; i++)
		rc = vm_map(vm_kernel(&vm_kernel_sys), a->kva + i * PAGE, pa_at(a, i), PAGE,
			    VM_R | VM_W);
	spin_unlock_irqrestore(&a->lk, fl);
	return rc;
}

/* Find or make `name` (backed up to `initial`) with a kernel window slot;
 * NULL if none is free or the area has a kernel handle already. */
static struct shm_area *kernel_get(const char *name, size_t initial, size_t max, bool *made,
				   int *rc)
{
	struct shm_area *a = NULL, *nw = NULL;
	unsigned long fl;
	unsigned s;

	for (;;) {
		*rc = 0;
		fl = ticket_lock_irqsave(&shm_lock);
		a = find(name);
		for (s = 0; s < SHM_KSLOTS && kslot_used[s]; s++)
			;
		if ((a && a->kslot >= 0) || s == SHM_KSLOTS)
			a = NULL;
		else
			a = get_locked(name, max, NULL, nw, made, rc);
		if (a)
			kslot_used[s] = true;
		ticket_unlock_irqrestore(&shm_lock, fl);
		if (nw && a != nw)
			area_release(nw);
		if (a || *rc != E_NOENT || nw)
			break;
		if (!(nw = build(name, initial, max, rc)))
			return NULL;
	}
	if (a && (*rc = window_in(a, s)))
		a = NULL;                 /* leaks the attach: cannot happen, see shm_init */
	return a;
}

mm_t *shm_kernel_create(const char *name, size_t static_size, size_t initial, size_t max)
{
	struct mm_env env = kenv;
	struct khandle *k = NULL;
	struct shm_area *a;
	bool made;
	int rc = 0;

	if (!name || !name[0] || strlen(name) >= SYS_MM_NAME_MAX || max > SHM_MAX_SIZE ||
	    initial > max)
		return NULL;
	for (unsigned i = 0; i < SHM_KSLOTS && !k; i++)
		if (!khandles[i].used)
			k = &khandles[i];
	if (!k)
		return NULL;
	initial = pages_of(initial) * PAGE;
	a = kernel_get(name, initial, max, &made, &rc);
	if (!a)
		return NULL;
	if (made)
		rc = mm_init_area((void *)a->kva, initial, max, static_size);
	env.ctx = k;
	k->area = a;
	shm_hold_link(a, shm_khold((unsigned)(k - khandles)), 0);
	if (!rc)
		rc = mm_attach_base(&k->mm, (void *)a->kva, npages_of(a) * PAGE, max, &env);
	if (rc) {
		shm_hold_unlink(a, shm_khold((unsigned)(k - khandles)));
		window_out(a);
		put(a);
		return NULL;
	}
	k->used = true;
	return &k->mm;
}

/* Take a out of the kernel window (the kernel detaches). */
static void window_out(struct shm_area *a)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	int s = a->kslot;

	if (s >= 0 && a->npages)
		vm_unmap(vm_kernel(&vm_kernel_sys), a->kva, a->npages * PAGE);
	a->kslot = -1;
	spin_unlock_irqrestore(&a->lk, fl);
	if (s < 0)
		return;
	fl = ticket_lock_irqsave(&shm_lock);
	kslot_used[s] = false;
	ticket_unlock_irqrestore(&shm_lock, fl);
}

void shm_kernel_detach(mm_t *mm)
{
	for (unsigned i = 0; i < SHM_KSLOTS; i++) {
		struct khandle *k = &khandles[i];

		if (!k->used || &k->mm != mm)
			continue;
		mm_detach(mm);
		shm_forget(k->area, shm_khold(i));
		shm_hold_unlink(k->area, shm_khold(i));
		window_out(k->area);
		put(k->area);
		k->used = false;
	}
}

unsigned shm_kernel_waiters(mm_t *mm)
{
	for (unsigned i = 0; i < SHM_KSLOTS; i++)
		if (khandles[i].used && &khandles[i].mm == mm)
			return __atomic_load_n(&khandles[i].area->nwaiters, __ATOMIC_RELAXED);
	return 0;
}

unsigned shm_count(void)
{
	unsigned long fl = ticket_lock_irqsave(&shm_lock);
	unsigned n = nareas;

	ticket_unlock_irqrestore(&shm_lock, fl);
	return n;
}
