/* part_sched.c - the partitions of each hart: its ring, round-robin
 * scheduling with time slices, sleeping and waking, the ends of a
 * partition (exit, stop, kill), and traps from U-mode.
 *
 * Only a partition's own hart changes its scheduling state and unlinks it
 * from its ring when it ends, so pick() and install() need no lock. A
 * kill from elsewhere (part_kill) raises kill_req for the hart and sends
 * an IPI; the hart acts on it at the end of its next trap from U-mode
 * (reap_kills), or in run_hart before it starts. When no partition of
 * the hart is left, the trap handler longjmps back to run_hart.
 *
 * A kernel loop may lend its hart to its partitions instead
 * (part_run_lend, the stress tool's parts=): the same scheduling, but the
 * trap handler longjmps back to the lender at the end of the lend's ticks
 * or when every partition left sleeps, instead of idling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>

#include "boot.h"
#include "hart.h"
#include "panic.h"
#include "part_int.h"
#include "riscv.h"
#include "shm.h"
#include "smp.h"
#include "timer.h"
#include "trap.h"

void user_enter(struct trap_frame *tf) __attribute__((noreturn));

static struct partition *ring[MAX_HARTS];       /* a live one of each hart, NULL none */
static volatile unsigned kill_req[MAX_HARTS];   /* a hart has kills to act on */
static unsigned sleeping[MAX_HARTS];   /* its partitions in PART_WAITING (own hart only) */

/* This hart's scheduler (per hart: __thread lives in the hart's TLS block). */
static __thread struct {
	struct partition *cur;          /* running in U-mode on this hart */
	unsigned slice_left;            /* timer ticks left in the current slice */
	unsigned lend_left;             /* part_run_lend: ticks left, 0 not lent */
	jmp_buf jb;                     /* back to run_hart (or part_run_lend) */
} sched;

static void stopped(struct partition *p, unsigned long sepc);
static void reap_ready(struct hart *h);

/* p joins its hart's ring (at creation, its hart not running it yet). */
void part_ring_add(struct partition *p)
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

void part_kick(unsigned hart)
{
	__atomic_store_n(&kill_req[hart], 1, __ATOMIC_SEQ_CST);
	ipi_send(hart);   /* a U-mode spinner traps at once; else a no-op */
}

/* Time asleep counts against the budget like time running: a partition
 * that only sleeps and wakes still ends. */
static void slept(struct partition *p, uint64_t now)
{
	if (now > p->wait.since)
		p->cpu_used += now - p->wait.since;
}

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

/* Load an address space on this hart; the VM refuses only a hart index
 * past its table, which start_secondaries never starts. */
static void load_vm(struct vm_descriptor *d)
{
	int rc = vm_load_task(d);

	if (rc)
		panic("part: vm_load_task on hart index %u: %s", this_hart()->index, err_str(rc));
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
	sched.cur = p;
	sched.slice_left = PART_SLICE_TICKS;
	load_vm(p->vm);
	*tf = p->ctx;
}

/* Every partition left on hart h sleeps: wait for an interrupt with
 * interrupts off (wfi returns on a pending enabled one) and handle it
 * here: the tick (deadlines), a waker's IPI, a kill. */
static void idle(struct hart *h)
{
	unsigned long pending;

	if (sched.cur) {
		sched.cur = NULL;
		load_vm(vm_kernel(&vm_kernel_sys));
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

	/* lent by a kernel loop (part_run_lend): when all sleep, back to it */
	while (!(next = pick(h->index, prev)) && sleeping[h->index] && !sched.lend_left)
		idle(h);
	if (!next) {
		sched.cur = NULL;
		load_vm(vm_kernel(&vm_kernel_sys));
		longjmp(sched.jb, 1);
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
	cur = sched.cur;
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
	if (setjmp(sched.jb) == 0) {
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

unsigned part_hart_live(unsigned hart)
{
	const struct partition *r = __atomic_load_n(&ring[hart], __ATOMIC_ACQUIRE), *p = r;
	unsigned n = 0;

	if (!r || hart != this_hart()->index)
		return r ? 1 : 0;      /* another hart's ring: only whether any */
	do {
		n++;
		p = p->rnext;
	} while (p != r);
	return n;
}

unsigned part_run_lend(unsigned ticks)
{
	struct hart *h = this_hart();
	struct trap_frame *tf = user_frame(h);
	struct partition *p;
	unsigned long fl;

	if (!ring[h->index])
		return 0;
	fl = irq_save();
	if (setjmp(sched.jb) == 0) {
		reap_ready(h);   /* kills requested since the last lend */
		p = pick(h->index, NULL);
		if (p) {
			sched.lend_left = ticks ? ticks : 1;
			install(h, p, tf);
			user_enter(tf);
		}
	}
	/* the ticks are over, all left sleep, or none is left (longjmp) */
	sched.lend_left = 0;
	irq_restore(fl);
	return part_hart_live(h->index);
}

/* A lent hart's ticks are over: p goes back to READY and the hart to the
 * kernel loop that lent it. The next lend starts after p (the ring's entry
 * point moves on): round robin goes on across lends, a spinner first on
 * the ring does not starve the others. */
static void lend_over(struct partition *p, struct trap_frame *tf)
{
	p->cpu_used += rdtime() - p->run_since;
	p->ctx = *tf;
	p->state = PART_READY;
	ring[p->hart] = p->rnext;
	sched.cur = NULL;
	vm_load_task(vm_kernel(&vm_kernel_sys));
	longjmp(sched.jb, 1);
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
	if (sched.lend_left && --sched.lend_left == 0)
		lend_over(p, tf);
	if (sched.slice_left && --sched.slice_left == 0) {
		sched.slice_left = PART_SLICE_TICKS;
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
		part_user_page_fault(p, tf, cause);
		return;
	default:
		part_stop(p, tf, "%s at 0x%lx", trap_cause_name(cause), tf->stval);
	}
}

void part_user_trap(struct trap_frame *tf)
{
	struct hart *h = this_hart();
	struct partition *p = sched.cur;

	if (!p)
		panic_trap(tf, "trap from U-mode with no partition on this hart");
	user_trap(h, p, tf);
	/* whatever the trap was (a system call included), a requested kill
	 * takes effect before U-mode runs again */
	if (__atomic_load_n(&kill_req[h->index], __ATOMIC_SEQ_CST))
		reap_kills(h, tf);
}
