/* part.c - partitions: creation from the embedded partition program,
 * per-hart round-robin scheduling with time slices, user traps, quotas,
 * CPU budgets, and stopping a partition with a report while the rest go on.
 *
 * A hart runs its partitions from part_run_hart(): it enters U-mode with a
 * frame on its user-trap stack; every trap from U-mode saves the user
 * registers in that frame, and switching partitions copies frames in and
 * out of struct partition. When no partition of the hart is left, the trap
 * handler longjmps back to part_run_hart.
 *
 * The table is dynamic: records are kmalloc'ed by part_create, found by
 * id through a hash of chains (inserted at the head, release-published,
 * removed only by part_reset when nothing runs: lookups take no lock),
 * and each hart keeps a ring of its live partitions, so scheduling looks
 * only at its own. Only a partition's own hart changes its scheduling
 * state and unlinks it from its ring when it ends, so pick() and
 * install() need no lock. part_kill() from elsewhere only marks the
 * partition (under parts_lock), raises kill_req for its hart and sends an
 * IPI; the hart acts on it at the end of its next trap from U-mode
 * (reap_kills), or in run_hart before it starts.
 *
 * Lock order: parts_lock -> shm_lock -> VM locks -> pmem lock.
 */
#include "part.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "elf.h"
#include "hart.h"
#include "kmalloc.h"
#include "lock.h"
#include "mem.h"
#include "part_roles.h"
#include "riscv.h"
#include "shm.h"

extern const unsigned char user_image_part[], user_image_part_end[];
void user_enter(struct trap_frame *tf) __attribute__((noreturn));

#define ID_HASH 256
static struct partition *by_id[ID_HASH];        /* chains of id_next */
static struct partition *all_head, **all_tail = &all_head;   /* creation order */
static struct partition *ring[MAX_HARTS];       /* a live one of each hart, NULL none */
static unsigned live_on[MAX_HARTS], live_all;   /* created, not yet reset (parts_lock) */
static unsigned next_id = 1;
static spinlock_t parts_lock = SPINLOCK_INIT;
static volatile unsigned kill_req[MAX_HARTS];   /* a hart has kills to act on */
static unsigned sleeping[MAX_HARTS];   /* its partitions in PART_WAITING (own hart only) */

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

/* p joins its hart's ring (at creation, its hart not running it yet). */
static void ring_add(struct partition *p)
{
	struct partition *r = ring[p->hart];

	if (!r) {
		p->rnext = p->rprev = p;
		ring[p->hart] = p;
	} else {
		p->rnext = r;
		p->rprev = r->rprev;
		r->rprev->rnext = p;
		r->rprev = p;
	}
	p->on_ring = true;
}

/* p ended: off its hart's ring (on its own hart); the ring's entry point
 * moves to its successor, where round robin goes on. */
static void ring_del(struct partition *p)
{
	if (!p->on_ring)
		return;
	if (p->rnext == p) {
		ring[p->hart] = NULL;
	} else {
		p->rprev->rnext = p->rnext;
		p->rnext->rprev = p->rprev;
		ring[p->hart] = p->rnext;
	}
	p->on_ring = false;
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

/* The bootarg part_budget=<ms> (a positive number), else PART_BUDGET_MS. */
static uint64_t default_budget_ms(void)
{
	char buf[24];
	uint64_t ms = 0;
	const char *s = bootarg("part_budget", buf, sizeof(buf));

	if (!s)
		return PART_BUDGET_MS;
	for (; *s >= '0' && *s <= '9' && ms < (1ull << 40); s++)
		ms = ms * 10 + (uint64_t)(*s - '0');
	if (*s || ms == 0 || ms >= (1ull << 40)) {
		printf("part: bootarg part_budget=%s ignored: not a positive number of ms\n", buf);
		return PART_BUDGET_MS;
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
	ring_add(p);
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

/* ---- scheduling ------------------------------------------------------------ */

/* Time asleep counts against the budget like time running: a partition
 * that only sleeps and wakes still ends. */
static void slept(struct partition *p, uint64_t now)
{
	if (now > p->wait.since)
		p->cpu_used += now - p->wait.since;
}

static void stopped(struct partition *p, unsigned long sepc);

/* The report of a partition past its budget, `used` ticks. */
static void over_budget(struct partition *p, uint64_t used)
{
	snprintf(p->report, sizeof(p->report), "CPU budget exceeded: %llu ms used, budget %llu ms",
		 (unsigned long long)(used * 1000 / timebase_hz),
		 (unsigned long long)(p->budget * 1000 / timebase_hz));
}

/* A sleeping p whose sleep is over (a waker set woken, or the deadline
 * passed) becomes READY, its mm_wait returning 0 or E_TIMEOUT; or, past
 * its budget with the sleep, it is stopped (*gone: p left the ring). */
static bool wake_due(struct partition *p, uint64_t now, bool *gone)
{
	if (!__atomic_load_n(&p->wait.woken, __ATOMIC_ACQUIRE) && now < p->wait.deadline)
		return false;
	slept(p, now);
	p->ctx.regs[10] = (unsigned long)(long)shm_wait_finish(p);
	p->state = PART_READY;
	sleeping[p->hart]--;
	if (p->cpu_used > p->budget) {
		over_budget(p, p->cpu_used);
		stopped(p, p->ctx.sepc);
		*gone = true;
		return false;
	}
	return true;
}

/* The next READY partition of this hart after `after` (round robin over
 * its ring; after an ended `after`, from where it was); sleepers whose
 * sleep is over count as ready. */
static struct partition *pick(unsigned hart, const struct partition *after)
{
	struct partition *first = after && after->on_ring ? after->rnext : ring[hart], *p;
	uint64_t now = sleeping[hart] ? rdtime() : 0;
	bool gone = false;

	if (!first)
		return NULL;
	p = first;
	do {
		if (p->state == PART_READY ||
		    (p->state == PART_WAITING && wake_due(p, now, &gone)))
			return p;
		if (gone)
			return pick(hart, NULL);   /* the ring changed: from its entry */
		p = p->rnext;
	} while (p != first);
	return NULL;
}

static struct trap_frame *user_frame(struct hart *h)
{
	return (struct trap_frame *)(h->utrap_top - sizeof(struct trap_frame));
}

static void install(struct hart *h, struct partition *p, struct trap_frame *tf)
{
	/* Its code was written through the direct map, possibly on another
	 * hart: this hart's instruction fetches must see it (real hardware
	 * has split caches; QEMU does not care). */
	if (p->slices == 0)
		__asm__ volatile("fence.i" ::: "memory");
	p->state = PART_RUNNING;
	p->slices++;
	p->run_since = rdtime();
	h->cur_part = p;
	h->slice_left = PART_SLICE_TICKS;
	vm_load_task(p->vm);
	*tf = p->ctx;
}

static void reap_ready(struct hart *h);

/* Every partition left on hart h sleeps: wait for an interrupt with
 * interrupts off (wfi returns on a pending enabled one) and handle it
 * here: the tick (deadlines), a waker's IPI, a kill. */
static void idle(struct hart *h)
{
	unsigned long pending;

	if (h->cur_part) {
		h->cur_part = NULL;
		vm_load_task(vm_kernel(&vm_kernel_sys));
	}
	wfi();
	pending = csr_read(sip);
	if (pending & SIE_STIE)
		timer_tick();
	if (pending & SIE_SSIE) {
		csr_clear(sip, SIE_SSIE);
		ipi_handle();
	}
	if (__atomic_load_n(&kill_req[h->index], __ATOMIC_SEQ_CST))
		reap_ready(h);
}

/* Leave `prev` (already saved or ended) for the next partition of this
 * hart, idling while all that are left sleep; with none left, go back to
 * part_run_hart. */
static void switch_from(struct hart *h, struct partition *prev, struct trap_frame *tf)
{
	struct partition *next;

	while (!(next = pick(h->index, prev)) && sleeping[h->index])
		idle(h);
	if (!next) {
		h->cur_part = NULL;
		vm_load_task(vm_kernel(&vm_kernel_sys));
		longjmp(h->sched_jb, 1);
	}
	install(h, next, tf);
}

void part_yield(struct partition *p, struct trap_frame *tf)
{
	struct hart *h = this_hart();
	struct partition *next = pick(h->index, p);

	if (!next)
		return;          /* alone on this hart: keep running */
	p->cpu_used += rdtime() - p->run_since;
	p->ctx = *tf;
	p->state = PART_READY;
	install(h, next, tf);
}

void part_sleep(struct partition *p, struct trap_frame *tf)
{
	struct hart *h = this_hart();

	p->cpu_used += rdtime() - p->run_since;
	p->ctx = *tf;
	p->state = PART_WAITING;
	p->wait.since = rdtime();
	p->waits++;
	sleeping[h->index]++;
	switch_from(h, p, tf);
}

/* Free what p holds: its area holds and attachments, then its memory.
 * A running p is charged for the time it ran. */
static void release(struct partition *p)
{
	size_t pages = part_pages(p);

	if (p->state == PART_RUNNING)
		p->cpu_used += rdtime() - p->run_since;
	if (p->state == PART_WAITING) {
		slept(p, rdtime());
		shm_wait_finish(p);      /* its queue entry goes first */
		sleeping[p->hart]--;
	}
	if (pages > p->peak_pages)
		p->peak_pages = pages;
	shm_detach_all(p);
	ring_del(p);
	vm_free(p->vm);          /* unloads it from this hart first */
	p->vm = NULL;
	p->heap = p->stack = NULL;
}

void part_exit(struct partition *p, struct trap_frame *tf, int status)
{
	p->exit_status = status;
	printf("part: %s#%u on hart %lu exited with status %d\n", p->name, p->id,
	       this_hart()->hartid, status);
	release(p);
	p->state = PART_EXITED;
	switch_from(this_hart(), p, tf);
}

/* The report, then p's holds and memory go back; p is not scheduled again. */
static void stopped(struct partition *p, unsigned long sepc)
{
	printf("part: %s#%u on hart %lu stopped: %s (sepc 0x%lx)\n", p->name, p->id,
	       this_hart()->hartid, p->report, sepc);
	p->exit_status = -1;
	release(p);
	p->state = PART_KILLED;
}

void part_stop(struct partition *p, struct trap_frame *tf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->report, sizeof(p->report), fmt, ap);
	va_end(ap);
	stopped(p, tf->sepc);
	switch_from(this_hart(), p, tf);
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
	__atomic_store_n(&kill_req[hart], 1, __ATOMIC_SEQ_CST);
	ipi_send(hart);   /* a U-mode spinner traps at once; else a no-op */
	return 0;
}

bool part_kill_pending(const struct partition *p)
{
	return __atomic_load_n(&p->kill_pending, __ATOMIC_ACQUIRE);
}

/* Stop the READY partitions of hart h that have a kill requested (they
 * are not loaded anywhere: h is the only hart that would run them). */
static void reap_ready(struct hart *h)
{
	struct partition *p, *first;

	__atomic_store_n(&kill_req[h->index], 0, __ATOMIC_SEQ_CST);
again:
	p = first = ring[h->index];
	while (p) {
		if ((p->state == PART_READY || p->state == PART_WAITING) && part_kill_pending(p)) {
			snprintf(p->report, sizeof(p->report), "%s", p->kill_reason);
			stopped(p, p->ctx.sepc);   /* off the ring: walk it again */
			goto again;
		}
		p = p->rnext;
		if (p == first)
			break;
	}
}

/* At the end of a trap from U-mode: act on kills requested for this hart,
 * the running partition's last (that may switch away for good). */
static void reap_kills(struct hart *h, struct trap_frame *tf)
{
	struct partition *cur;

	reap_ready(h);
	cur = h->cur_part;
	if (cur && cur->state == PART_RUNNING && part_kill_pending(cur))
		part_stop(cur, tf, "%s", cur->kill_reason);
}

static void run_hart(unsigned i, void *arg)
{
	struct hart *h = this_hart();
	struct trap_frame *tf = user_frame(h);
	struct partition *p;

	(void)arg;
	(void)i;
	if (setjmp(h->sched_jb) == 0) {
		irq_save();
		reap_ready(h);   /* kills requested before the run */
		p = pick(h->index, NULL);
		if (!p) {
			irq_enable();   /* as after the longjmp: the boot hart's ticks go on */
			return;
		}
		install(h, p, tf);
		user_enter(tf);
	}
	/* all partitions of this hart have ended (longjmp from a trap) */
	irq_enable();
}

void part_run_all(void)
{
	smp_run(harts_online, run_hart, NULL);
}

/* ---- traps from U-mode ------------------------------------------------------------ */

static const struct vm_segment *segment_of(const struct partition *p, uintptr_t va)
{
	for (const struct vm_segment *s = p->vm->segs; s; s = s->next)
		if (va >= s->base && va - s->base < s->max_size)
			return s;
	return NULL;
}

/* Pages a fault at va would add to a growable segment (0 if none). */
static size_t growth_pages(const struct vm_segment *s, uintptr_t va)
{
	uintptr_t page = va & ~(uintptr_t)(PAGE - 1);

	if (!s)
		return 0;
	if ((s->flags & VM_GROW_UP) && page >= s->base + s->size)
		return (page + PAGE - s->base - s->size) / PAGE;
	if ((s->flags & VM_GROW_DOWN) && page < s->base + s->max_size - s->size)
		return (s->base + s->max_size - s->size - page) / PAGE;
	return 0;
}

/* What a U-mode access of `acc` at va makes the kernel do: grow a segment
 * within the quota (FAULT_QUOTA when it would go over, nothing done) or
 * map the page; FAULT_BAD with *code when the access is not allowed.
 * The one path for U-mode faults and for the kernel's copies. */
enum { FAULT_IN, FAULT_QUOTA, FAULT_BAD };

struct fault_info {
	const struct vm_segment *seg;
	size_t grow, now;
	int code;
};

static int fault_in(struct partition *p, uintptr_t va, unsigned acc, struct fault_info *fi)
{
	fi->seg = segment_of(p, va);
	fi->grow = growth_pages(fi->seg, va);
	fi->now = part_pages(p);
	fi->code = VM_FAULT_NOSEG;
	/* what its shared areas are charged counts too (kernel/shm.c) */
	if (fi->grow && fi->now + shm_charged(p) + fi->grow > p->quota_pages)
		return FAULT_QUOTA;
	fi->code = vm_handle_fault(p->vm, va, acc, &fi->seg);
	if (fi->code != VM_FAULT_OK)
		return FAULT_BAD;
	p->faults_grown += fi->grow != 0;
	if (fi->now + fi->grow > p->peak_pages)
		p->peak_pages = fi->now + fi->grow;
	return FAULT_IN;
}

static void user_page_fault(struct partition *p, struct trap_frame *tf, unsigned long cause)
{
	unsigned acc = VM_U | (cause == EXC_LOAD_PAGE_FAULT ? VM_R :
			       cause == EXC_STORE_PAGE_FAULT ? VM_W : VM_X);
	struct fault_info fi;

	switch (fault_in(p, tf->stval, acc, &fi)) {
	case FAULT_IN:
		return;
	case FAULT_QUOTA:
		part_stop(p, tf, "memory quota exceeded: %zu pages mapped, %zu more needed at 0x%lx "
			  "in segment %s, quota %zu", fi.now, fi.grow, tf->stval, fi.seg->name,
			  p->quota_pages);
		return;
	}
	if (tf->stval >= USER_VA_END)
		part_stop(p, tf, "%s at 0x%lx: kernel memory, not accessible to partitions",
			  trap_cause_name(cause), tf->stval);
	else
		part_stop(p, tf, "%s at 0x%lx: %s%s%s", trap_cause_name(cause), tf->stval,
			  vm_fault_str(fi.code), fi.seg ? " in segment " : "",
			  fi.seg ? fi.seg->name : "");
}

/* A tick while p runs: the end of its slice, or of its CPU budget. */
static void user_tick(struct hart *h, struct partition *p, struct trap_frame *tf)
{
	uint64_t used;

	timer_tick();
	used = p->cpu_used + (rdtime() - p->run_since);
	if (used > p->budget) {
		over_budget(p, used);
		stopped(p, tf->sepc);
		switch_from(h, p, tf);
		return;
	}
	if (h->slice_left && --h->slice_left == 0) {
		h->slice_left = PART_SLICE_TICKS;
		part_yield(p, tf);
	}
}

static void user_trap(struct hart *h, struct partition *p, struct trap_frame *tf)
{
	unsigned long cause = tf->scause & ~SCAUSE_INTR;

	if (tf->scause & SCAUSE_INTR) {
		if (cause == IRQ_S_TIMER) {
			user_tick(h, p, tf);
		} else if (cause == IRQ_S_SOFT) {
			csr_clear(sip, SIE_SSIE);
			ipi_handle();
			if (sleeping[h->index])
				part_yield(p, tf);   /* maybe a wake: let it run */
		}
		return;
	}
	switch (cause) {
	case EXC_ECALL_U:
		tf->sepc += 4;
		p->syscalls++;
		part_syscall(p, tf);
		return;
	case EXC_LOAD_PAGE_FAULT:
	case EXC_STORE_PAGE_FAULT:
	case EXC_INST_PAGE_FAULT:
		user_page_fault(p, tf, cause);
		return;
	default:
		part_stop(p, tf, "%s at 0x%lx", trap_cause_name(cause), tf->stval);
	}
}

void part_user_trap(struct trap_frame *tf)
{
	struct hart *h = this_hart();
	struct partition *p = h->cur_part;

	if (!p)
		panic_trap(tf, "trap from U-mode with no partition on this hart");
	user_trap(h, p, tf);
	/* whatever the trap was (a system call included), a requested kill
	 * takes effect before U-mode runs again */
	if (__atomic_load_n(&kill_req[h->index], __ATOMIC_SEQ_CST))
		reap_kills(h, tf);
}

/* ---- checked copies ------------------------------------------------------------------ */

static bool user_page(struct partition *p, uintptr_t va, bool write, uint64_t *pa)
{
	unsigned prot;

	if (pt_translate(&p->vm->pt, va, pa, &prot, NULL))
		return false;
	return (prot & PT_U) && (prot & PT_R) && (!write || (prot & PT_W));
}

/* The page at va as a U-mode access would find it: faulted in (and
 * charged) if a growable segment covers it. */
static bool user_page_in(struct partition *p, uintptr_t va, bool write, uint64_t *pa)
{
	struct fault_info fi;

	if (user_page(p, va, write, pa))
		return true;
	switch (fault_in(p, va, VM_U | (write ? VM_W : VM_R), &fi)) {
	case FAULT_QUOTA:
		p->copy_fail = "memory quota exceeded";
		return false;
	case FAULT_BAD:
		p->copy_fail = vm_fault_str(fi.code);
		return false;
	}
	if (user_page(p, va, write, pa))
		return true;
	p->copy_fail = "not accessible";
	return false;
}

static bool copy(struct partition *p, uintptr_t uva, void *kbuf, size_t len, bool out)
{
	uint8_t *k = kbuf;

	if (uva + len < uva || uva + len > USER_VA_END) {
		p->copy_fail = "beyond the partition's address space";
		return false;
	}
	while (len) {
		size_t off = uva & (PAGE - 1), chunk = PAGE - off;
		uint64_t pa;

		if (!user_page_in(p, uva, out, &pa))
			return false;
		if (chunk > len)
			chunk = len;
		if (out)
			memcpy(pa_to_dmap(pa), k, chunk);
		else
			memcpy(k, pa_to_dmap(pa), chunk);
		uva += chunk;
		k += chunk;
		len -= chunk;
	}
	return true;
}

bool part_copy_in(struct partition *p, void *dst, uintptr_t uva, size_t len)
{
	return copy(p, uva, dst, len, false);
}

bool part_copy_out(struct partition *p, uintptr_t uva, const void *src, size_t len)
{
	return copy(p, uva, (void *)src, len, true);
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
