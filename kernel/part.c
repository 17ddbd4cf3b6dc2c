/* part.c - partitions: creation from the embedded partition program,
 * per-hart round-robin scheduling with time slices, user traps, quotas,
 * and stopping a partition with a report while the rest go on.
 *
 * A hart runs its partitions from part_run_hart(): it enters U-mode with a
 * frame on its user-trap stack; every trap from U-mode saves the user
 * registers in that frame, and switching partitions copies frames in and
 * out of struct partition. When no partition of the hart is left, the trap
 * handler longjmps back to part_run_hart.
 *
 * Lock order: parts_lock -> shm_lock -> VM locks -> pmem lock.
 */
#include "part.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "elf.h"
#include "hart.h"
#include "lock.h"
#include "mem.h"
#include "part_roles.h"
#include "riscv.h"
#include "shm.h"

extern const unsigned char user_image_part[], user_image_part_end[];
void user_enter(struct trap_frame *tf) __attribute__((noreturn));

static struct partition parts[MAX_PARTS + 1];   /* ids 1..MAX_PARTS */
static spinlock_t parts_lock = SPINLOCK_INIT;

#define PAGE ENV_PAGE_SIZE

const struct partition *part_get(unsigned id)
{
	return id >= 1 && id <= MAX_PARTS && parts[id].state != PART_FREE ? &parts[id] : NULL;
}

bool part_alive(unsigned id)
{
	return id >= 1 && id <= MAX_PARTS &&
	       (parts[id].state == PART_READY || parts[id].state == PART_RUNNING);
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

static int load(struct partition *p)
{
	uintptr_t entry, end, stack_top = USER_STACK_TOP - (uintptr_t)p->id * (16ul << 20);
	const char *why = "";
	int rc;

	p->vm = vm_new();
	if (!p->vm)
		return E_NOMEM;
	rc = elf_load(p->vm, user_image_part, (size_t)(user_image_part_end - user_image_part),
		      &entry, &end, &why);
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

int part_create(const char *name, unsigned long arg, unsigned hart, size_t quota_pages)
{
	struct partition *p = NULL;
	unsigned long fl;
	int rc;

	if (!name || hart >= harts_online)
		return E_INVAL;
	fl = spin_lock_irqsave(&parts_lock);
	for (unsigned id = 1; id <= MAX_PARTS && !p; id++)
		if (parts[id].state == PART_FREE) {
			p = &parts[id];
			memset(p, 0, sizeof(*p));
			p->id = id;
			p->state = PART_EXITED;   /* reserved, not runnable yet */
		}
	spin_unlock_irqrestore(&parts_lock, fl);
	if (!p)
		return E_NOMEM;
	strncpy(p->name, name, PART_NAME_MAX - 1);
	p->hart = hart;
	p->arg = arg;
	p->quota_pages = quota_pages ? quota_pages : PART_QUOTA_PAGES;
	rc = load(p);
	if (rc) {
		if (p->vm)
			vm_free(p->vm);
		p->state = PART_FREE;
		return rc;
	}
	p->state = PART_READY;
	return (int)p->id;
}

void part_reset(void)
{
	for (unsigned id = 1; id <= MAX_PARTS; id++)
		if (parts[id].state == PART_EXITED || parts[id].state == PART_KILLED)
			parts[id].state = PART_FREE;
}

/* ---- scheduling ------------------------------------------------------------ */

/* The next READY partition of this hart after `after` (round robin). */
static struct partition *pick(unsigned hart, const struct partition *after)
{
	unsigned start = after ? after->id : 0;

	for (unsigned k = 1; k <= MAX_PARTS; k++) {
		unsigned id = (start + k - 1) % MAX_PARTS + 1;
		if (parts[id].state == PART_READY && parts[id].hart == hart)
			return &parts[id];
	}
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
	h->cur_part = p;
	h->slice_left = PART_SLICE_TICKS;
	vm_load_task(p->vm);
	*tf = p->ctx;
}

/* Leave `prev` (already saved or ended) for the next partition of this
 * hart; with none left, go back to part_run_hart. */
static void switch_from(struct hart *h, struct partition *prev, struct trap_frame *tf)
{
	struct partition *next = pick(h->index, prev);

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
	p->ctx = *tf;
	p->state = PART_READY;
	install(h, next, tf);
}

static void release(struct partition *p)
{
	size_t pages = part_pages(p);

	if (pages > p->peak_pages)
		p->peak_pages = pages;
	shm_detach_all(p);
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

void part_kill(struct partition *p, struct trap_frame *tf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->report, sizeof(p->report), fmt, ap);
	va_end(ap);
	printf("part: %s#%u on hart %lu stopped: %s (sepc 0x%lx)\n", p->name, p->id,
	       this_hart()->hartid, p->report, tf->sepc);
	p->exit_status = -1;
	release(p);
	p->state = PART_KILLED;
	switch_from(this_hart(), p, tf);
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
		p = pick(h->index, NULL);
		if (!p)
			return;
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

static void user_page_fault(struct partition *p, struct trap_frame *tf, unsigned long cause)
{
	unsigned acc = VM_U | (cause == EXC_LOAD_PAGE_FAULT ? VM_R :
			       cause == EXC_STORE_PAGE_FAULT ? VM_W : VM_X);
	const struct vm_segment *seg = segment_of(p, tf->stval);
	size_t grow = growth_pages(seg, tf->stval), now = part_pages(p);
	int code;

	/* what its shared areas are charged counts too (kernel/shm.c) */
	if (grow && now + shm_charged(p) + grow > p->quota_pages) {
		part_kill(p, tf, "memory quota exceeded: %zu pages mapped, %zu more needed at 0x%lx "
			  "in segment %s, quota %zu", now, grow, tf->stval, seg->name,
			  p->quota_pages);
		return;
	}
	code = vm_handle_fault(p->vm, tf->stval, acc, &seg);
	if (code == VM_FAULT_OK) {
		p->faults_grown += grow != 0;
		if (now + grow > p->peak_pages)
			p->peak_pages = now + grow;
		return;
	}
	if (tf->stval >= USER_VA_END)
		part_kill(p, tf, "%s at 0x%lx: kernel memory, not accessible to partitions",
			  trap_cause_name(cause), tf->stval);
	else
		part_kill(p, tf, "%s at 0x%lx: %s%s%s", trap_cause_name(cause), tf->stval,
			  vm_fault_str(code), seg ? " in segment " : "", seg ? seg->name : "");
}

void part_user_trap(struct trap_frame *tf)
{
	struct hart *h = this_hart();
	struct partition *p = h->cur_part;
	unsigned long cause = tf->scause & ~SCAUSE_INTR;

	if (!p)
		panic_trap(tf, "trap from U-mode with no partition on this hart");
	if (tf->scause & SCAUSE_INTR) {
		if (cause == IRQ_S_TIMER) {
			timer_tick();
			if (h->slice_left && --h->slice_left == 0) {
				h->slice_left = PART_SLICE_TICKS;
				part_yield(p, tf);
			}
		} else if (cause == IRQ_S_SOFT) {
			csr_clear(sip, SIE_SSIE);
			ipi_handle();
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
		part_kill(p, tf, "%s at 0x%lx", trap_cause_name(cause), tf->stval);
	}
}

/* ---- checked copies ------------------------------------------------------------------ */

static bool user_page(struct partition *p, uintptr_t va, bool write, uint64_t *pa)
{
	unsigned prot;

	if (pt_translate(&p->vm->pt, va, pa, &prot, NULL))
		return false;
	return (prot & PT_U) && (prot & PT_R) && (!write || (prot & PT_W));
}

static bool copy(struct partition *p, uintptr_t uva, void *kbuf, size_t len, bool out)
{
	uint8_t *k = kbuf;

	if (uva + len < uva || uva + len > USER_VA_END)
		return false;
	while (len) {
		size_t off = uva & (PAGE - 1), chunk = PAGE - off;
		uint64_t pa;

		if (!user_page(p, uva, out, &pa))
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
	for (unsigned id = 1; id <= MAX_PARTS; id++) {
		const struct partition *p = &parts[id];

		if (p->state == PART_FREE)
			continue;
		printf("part: %-10s#%-2u hart %-3lu %-7s status %3d  peak %zu KiB private "
		       "(quota %zu KiB)  %llu syscalls  %llu slices  %llu growth faults\n",
		       p->name, p->id, harts[p->hart].hartid,
		       p->state == PART_KILLED ? "stopped" : "exited", p->exit_status,
		       p->peak_pages * 4, p->quota_pages * 4,
		       (unsigned long long)p->syscalls, (unsigned long long)p->slices,
		       (unsigned long long)p->faults_grown);
	}
}
