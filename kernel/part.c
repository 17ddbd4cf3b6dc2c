/* part.c - the partition table: creation from the embedded partition
 * program or an ELF image, quotas and CPU budgets, lookups by id,
 * part_kill, part_reset and the usage report. Scheduling and the ends of
 * a partition are in part_sched.c, user page faults and checked copies
 * in part_mem.c (part_int.h is what they share).
 *
 * The table is dynamic: records are kmalloc'ed by part_create, found by
 * id through a hash of chains (inserted at the head, release-published,
 * removed only by part_reset when nothing runs: lookups take no lock),
 * and each hart keeps a ring of its live partitions (part_sched.c), so
 * scheduling looks only at its own. part_kill() from elsewhere only marks
 * the partition (under parts_lock) and kicks its hart, which acts on it.
 *
 * Lock order: parts_lock -> shm_lock -> VM locks -> pmem lock.
 */
#include "part_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "elf.h"
#include "hart.h"
#include "kmalloc.h"
#include "lock.h"
#include "hart.h"
#include "lock.h"

extern const unsigned char user_image_part[], user_image_part_end[];

#define ID_HASH 256
static struct partition *by_id[ID_HASH];        /* chains of id_next */
static struct partition *all_head, **all_tail = &all_head;   /* creation order */
static unsigned live_on[MAX_HARTS], live_all;   /* created, not yet reset (parts_lock) */
static unsigned next_id = 1;
static spinlock_t parts_lock = SPINLOCK_INIT;

#define PAGE ENV_PAGE_SIZE

static struct partition *lookup(unsigned id)
{
	struct partition *p = __atomic_load_n(&by_id[id % ID_HASH], __ATOMIC_ACQUIRE);

	while (p && p->id != id)
		p = p->id_next;
	return p && p->state != PART_FREE ? p : NULL;
}

const struct partition *part_get(unsigned id)
{
	return lookup(id);
}

static bool live(const struct partition *p)
{
	return p->state == PART_READY || p->state == PART_RUNNING || p->state == PART_WAITING;
}

bool part_alive(unsigned id)
{
	const struct partition *p = lookup(id);

	return p && live(p);
}

size_t part_pages(const struct partition *p)
{
	size_t n = 0;

	if (!p->vm)
		return 0;
	for (const struct vm_segment *s = p->vm->segs; s; s = s->next)
		n += s->size / PAGE;
	return n;
}

/* The argument string, then the name, NUL-terminated, at the top of the
 * stack (inside its first mapped page); returns the new stack top. */
static uintptr_t put_strings(struct partition *p, uintptr_t top, const char *argstr)
{
	size_t na = strlen(argstr) + 1, nn = strlen(p->name) + 1;
	uintptr_t sp = (top - na - nn) & ~(uintptr_t)15;

	if (elf_copy_to(p->vm, sp, argstr, na) || elf_copy_to(p->vm, sp + na, p->name, nn))
		return 0;
	return sp;
}

static int load(struct partition *p, const void *img, size_t len, const char *argstr)
{
	uintptr_t entry, end, stack_top = USER_STACK_TOP -
				     (uintptr_t)part_va_slot(p) * USER_STACK_STRIDE;
	const char *why = "";
	int rc;

	p->vm = vm_new();
	if (!p->vm)
		return E_NOMEM;
	rc = elf_load(p->vm, img, len, &entry, &end, &why);
	if (rc) {
		printf("part: %s: partition image: %s\n", p->name, why);
		return rc;
	}
	if (end + VM_GUARD_SIZE > USER_HEAP_BASE)
		return E_RANGE;
	p->heap = vm_new_segment(p->vm, USER_HEAP_BASE, 0, USER_HEAP_MAX,
				 VM_R | VM_W | VM_U | VM_GROW_UP, "heap");
	p->stack = vm_new_segment(p->vm, stack_top - USER_STACK_MAX, USER_STACK_SIZE,
				  USER_STACK_MAX, VM_R | VM_W | VM_U | VM_GROW_DOWN, "stack");
	if (!p->heap || !p->stack)
		return E_NOMEM;
	if (argstr && !(stack_top = put_strings(p, stack_top, argstr)))
		return E_NOMEM;
	p->arg = argstr ? stack_top : p->arg;
	memset(&p->ctx, 0, sizeof(p->ctx));
	p->ctx.sepc = entry;
	p->ctx.regs[2] = stack_top;
	p->ctx.regs[10] = p->arg;
	p->ctx.sstatus = SSTATUS_SPIE;   /* U-mode (SPP 0), interrupts on, SUM off */
	p->peak_pages = part_pages(p);
	if (p->peak_pages > p->quota_pages)
		return E_NOMEM;
	return 0;
}

static uint64_t ms_to_ticks(uint64_t ms)
{
	return ms * timebase_hz / 1000;
}

uint64_t part_cpu_ms(const struct partition *p)
{
	return p->cpu_used * 1000 / timebase_hz;
}

static unsigned budget_ms_set;       /* part_set_default_budget; 0: none */

void part_set_default_budget(unsigned ms)
{
	budget_ms_set = ms;
}

/* The bootarg part_budget=<ms> (a positive number), else the one
 * part_set_default_budget set, else PART_BUDGET_MS. */
static uint64_t default_budget_ms(void)
{
	char buf[24];
	uint64_t ms = 0;
	const char *s = bootarg("part_budget", buf, sizeof(buf));

	if (!s)
		return budget_ms_set ? budget_ms_set : PART_BUDGET_MS;
	for (; *s >= '0' && *s <= '9' && ms < (1ull << 40); s++)
		ms = ms * 10 + (uint64_t)(*s - '0');
	if (*s || ms == 0 || ms >= (1ull << 40)) {
		printf("part: bootarg part_budget=%s ignored: not a positive number of ms\n", buf);
		return budget_ms_set ? budget_ms_set : PART_BUDGET_MS;
	}
	return ms;
}

int part_set_budget(unsigned id, unsigned ms)
{
	struct partition *p = lookup(id);

	if (ms == 0)
		return E_INVAL;
	if (!p || p->state != PART_READY || p->slices)
		return E_NOENT;
	p->budget = ms_to_ticks(ms);
	return 0;
}

/* A place for one more partition on hart `hart` and its id, or why not
 * (one line each). */
static int reserve(const char *name, unsigned hart, unsigned *id)
{
	unsigned long fl = spin_lock_irqsave(&parts_lock);
	int rc = 0;

	if (live_on[hart] >= PART_MAX_PER_HART)
		rc = 1;
	else if (live_all >= PART_MAX_LIVE)
		rc = 2;
	else if (next_id > PART_ID_MAX)
		rc = 3;
	if (!rc) {
		live_on[hart]++;
		live_all++;
		*id = next_id++;
	}
	spin_unlock_irqrestore(&parts_lock, fl);
	if (rc == 1)
		printf("part: %s not created: hart index %u has %u partitions (PART_MAX_PER_HART)\n",
		       name, hart, PART_MAX_PER_HART);
	else if (rc == 2)
		printf("part: %s not created: %u partitions exist (PART_MAX_LIVE)\n", name,
		       PART_MAX_LIVE);
	else if (rc == 3)
		printf("part: %s not created: all %u partition ids were used\n", name, PART_ID_MAX);
	return rc == 3 ? E_RANGE : rc ? E_BUSY : 0;
}

unsigned part_live_count(void)
{
	return __atomic_load_n(&live_all, __ATOMIC_RELAXED);
}

static void unreserve(unsigned hart)
{
	unsigned long fl = spin_lock_irqsave(&parts_lock);

	live_on[hart]--;
	live_all--;
	spin_unlock_irqrestore(&parts_lock, fl);
}

/* p (READY) joins the table: its id chain, the creation order, its ring. */
static void publish(struct partition *p)
{
	unsigned long fl = spin_lock_irqsave(&parts_lock);

	p->id_next = by_id[p->id % ID_HASH];
	__atomic_store_n(&by_id[p->id % ID_HASH], p, __ATOMIC_RELEASE);
	*all_tail = p;
	all_tail = &p->all_next;
	part_ring_add(p);
	spin_unlock_irqrestore(&parts_lock, fl);
}

static int create(const char *name, unsigned long arg, const void *img, size_t len,
		  const char *argstr, unsigned hart, size_t quota_pages)
{
	struct partition *p;
	unsigned id;
	int rc;

	if (!name || hart >= harts_online)
		return E_INVAL;
	rc = reserve(name, hart, &id);
	if (rc)
		return rc;
	p = kcalloc(1, sizeof(*p));
	if (!p) {
		unreserve(hart);
		return E_NOMEM;
	}
	p->id = id;
	p->state = PART_EXITED;           /* not runnable yet */
	strncpy(p->name, name, PART_NAME_MAX - 1);
	p->hart = hart;
	p->arg = arg;
	p->quota_pages = quota_pages ? quota_pages : PART_QUOTA_PAGES;
	p->budget = ms_to_ticks(default_budget_ms());
	rc = load(p, img, len, argstr);
	if (rc) {
		if (p->vm)
			vm_free(p->vm);
		kfree(p);
		unreserve(hart);
		return rc;
	}
	p->state = PART_READY;
	publish(p);
	return (int)p->id;
}

/* Unlink p from its id chain (parts_lock held). */
static void unhash(struct partition *p)
{
	struct partition **pp = &by_id[p->id % ID_HASH];

	while (*pp != p)
		pp = &(*pp)->id_next;
	*pp = p->id_next;
}

int part_create(const char *name, unsigned long arg, unsigned hart, size_t quota_pages)
{
	return create(name, arg, user_image_part, (size_t)(user_image_part_end - user_image_part),
		      NULL, hart, quota_pages);
}

int part_create_image(const char *name, const void *img, size_t len, const char *argstr,
		      unsigned hart, size_t quota_pages)
{
	if (!img || !argstr || strlen(argstr) >= PART_ARG_MAX)
		return E_INVAL;
	return create(name, 0, img, len, argstr, hart, quota_pages);
}

void part_reset(void)
{
	unsigned long fl = spin_lock_irqsave(&parts_lock);
	struct partition **pp = &all_head, *dead = NULL;

	while (*pp) {
		struct partition *p = *pp;

		if (p->state != PART_EXITED && p->state != PART_KILLED) {
			pp = &p->all_next;
			continue;
		}
		*pp = p->all_next;
		unhash(p);
		live_on[p->hart]--;
		live_all--;
		p->all_next = dead;
		dead = p;
	}
	all_tail = pp;
	spin_unlock_irqrestore(&parts_lock, fl);
	while (dead) {
		struct partition *p = dead;

		dead = p->all_next;
		p->state = PART_FREE;
		kfree(p);
	}
}

/* ---- part_kill: a stop requested from anywhere --------------------------- */

int part_kill(unsigned id, const char *reason)
{
	struct partition *p;
	unsigned long fl;
	unsigned hart = 0;
	int rc = 0;

	if (!reason)
		return E_INVAL;
	fl = spin_lock_irqsave(&parts_lock);
	p = lookup(id);
	if (!p || !live(p)) {
		rc = E_NOENT;
	} else if (p->kill_pending) {
		rc = E_BUSY;
	} else {
		size_t i;
		/* the reason goes into a console line: keep it one line */
		for (i = 0; reason[i] && i < sizeof(p->kill_reason) - 1; i++)
			p->kill_reason[i] = reason[i] < 0x20 || reason[i] > 0x7e ? '?' : reason[i];
		p->kill_reason[i] = 0;
		hart = p->hart;
		__atomic_store_n(&p->kill_pending, true, __ATOMIC_RELEASE);
	}
	spin_unlock_irqrestore(&parts_lock, fl);
	if (rc)
		return rc;
	part_kick(hart);
	return 0;
}

bool part_kill_pending(const struct partition *p)
{
	return __atomic_load_n(&p->kill_pending, __ATOMIC_ACQUIRE);
}

void part_print_usage(void)
{
	for (const struct partition *p = all_head; p; p = p->all_next) {
		printf("part: %-10s#%-2u hart %-3lu %-7s status %3d  peak %zu KiB private "
		       "(quota %zu KiB)  %llu syscalls  %llu slices  %llu growth faults  "
		       "%llu ms CPU\n",
		       p->name, p->id, harts[p->hart].hartid,
		       p->state == PART_KILLED ? "stopped" : "exited", p->exit_status,
		       p->peak_pages * 4, p->quota_pages * 4,
		       (unsigned long long)p->syscalls, (unsigned long long)p->slices,
		       (unsigned long long)p->faults_grown,
		       (unsigned long long)part_cpu_ms(p));
	}
}
