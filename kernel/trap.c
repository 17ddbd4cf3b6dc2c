/* trap.c - decode scause and dispatch: timer and software interrupts, and
 * exceptions, which panic with the full register frame unless a test on
 * this hart declared that it expects one (trap_expect_fault). */
#include <stdio.h>

#include "hart.h"
#include "mem.h"
#include "panic.h"
#include "part.h"
#include "riscv.h"
#include "smp.h"
#include "timer.h"

static const char *const exc_names[] = {
	[EXC_INST_MISALIGNED] = "instruction address misaligned",
	[EXC_INST_ACCESS] = "instruction access fault",
	[EXC_ILLEGAL_INST] = "illegal instruction",
	[EXC_BREAKPOINT] = "breakpoint",
	[EXC_LOAD_MISALIGNED] = "load address misaligned",
	[EXC_LOAD_ACCESS] = "load access fault",
	[EXC_STORE_MISALIGNED] = "store address misaligned",
	[EXC_STORE_ACCESS] = "store access fault",
	[EXC_ECALL_U] = "environment call from U-mode",
	[EXC_ECALL_S] = "environment call from S-mode",
	[EXC_INST_PAGE_FAULT] = "instruction page fault",
	[EXC_LOAD_PAGE_FAULT] = "load page fault",
	[EXC_STORE_PAGE_FAULT] = "store page fault",
};

const char *trap_cause_name(unsigned long cause)
{
	if (cause < sizeof(exc_names) / sizeof(exc_names[0]) && exc_names[cause])
		return exc_names[cause];
	return "reserved exception";
}

void trap_init_hart(void)
{
	extern char trap_vector[];

	csr_write(stvec, (unsigned long)trap_vector);
	/* partitions may read cycle, time and instret (their benchmarks) */
	csr_write(scounteren, SCOUNTEREN_CY | SCOUNTEREN_TM | SCOUNTEREN_IR);
	csr_write(sie, SIE_SSIE | SIE_STIE);
}

static void interrupt(struct trap_frame *tf, unsigned long code)
{
	switch (code) {
	case IRQ_S_TIMER:
		timer_tick();
		break;
	case IRQ_S_SOFT:
		csr_clear(sip, SIE_SSIE);
		ipi_handle();
		break;
	default:
		panic_trap(tf, "trap: unexpected interrupt %lu", code);
	}
}

/* A fault this hart's running test announced (trap_expect_fault): per hart
 * through TLS. */
static __thread volatile bool expect_fault;
static __thread volatile unsigned long fault_cause;

void trap_expect_fault(void)
{
	fault_cause = ~0ul;
	expect_fault = true;
}

unsigned long trap_expected_fault_cause(void)
{
	bool none = expect_fault;

	expect_fault = false;
	return none ? ~0ul : fault_cause;
}

/* A test that provokes a fault resumes after the faulting instruction (or,
 * for a fetch fault, at the return address of the call that jumped there). */
static void resume_expected(struct trap_frame *tf, unsigned long cause)
{
	fault_cause = cause;
	expect_fault = false;
	if (cause == EXC_INST_PAGE_FAULT || cause == EXC_INST_ACCESS ||
	    cause == EXC_INST_MISALIGNED)
		tf->sepc = tf->regs[1];
	else
		tf->sepc += (*(const uint16_t *)tf->sepc & 3) == 3 ? 4 : 2;
}

/* Hart index whose kernel-stack guard page holds va, or -1: the boot
 * hart's below its stack in BSS, another's at the bottom of its slot of
 * the stack window (hart.h). */
static int stack_guard_of(uintptr_t va)
{
	uintptr_t lo = hart_stack_lo(0), i;

	if (va >= lo - KSTACK_GUARD && va < lo)
		return 0;
	if (va < KSTACK_WINDOW)
		return -1;
	i = (va - KSTACK_WINDOW) / HSTACK_SLOT;
	if (i == 0 || i >= harts_max || va >= hart_stack_lo((unsigned)i))
		return -1;
	return (int)i;
}

/* W^X of the image: which section an address is in, and what it allows. */
static const char *image_section(uintptr_t va)
{
	extern char _text_start[], _text_end[], _rodata_start[], _rodata_end[],
		_data_start[], _kernel_end[];

	if (va >= (uintptr_t)_text_start && va < (uintptr_t)_text_end)
		return "text (read-execute)";
	if (va >= (uintptr_t)_rodata_start && va < (uintptr_t)_rodata_end)
		return "rodata (read-only)";
	if (va >= (uintptr_t)_data_start && va < (uintptr_t)_kernel_end &&
	    stack_guard_of(va) < 0)
		return "data (read-write, not executable)";
	return NULL;
}

static unsigned fault_access(unsigned long cause)
{
	switch (cause) {
	case EXC_LOAD_PAGE_FAULT:  return VM_R;
	case EXC_STORE_PAGE_FAULT: return VM_W;
	default:                   return VM_X;
	}
}

static bool is_page_fault(unsigned long cause)
{
	return cause == EXC_LOAD_PAGE_FAULT || cause == EXC_STORE_PAGE_FAULT ||
	       cause == EXC_INST_PAGE_FAULT;
}

/* A kernel page fault: growth of a kernel segment resumes; anything else is
 * reported by segment name (or as a stack overflow) unless a test expects
 * it. */
static void kernel_page_fault(struct trap_frame *tf, unsigned long cause)
{
	const struct vm_segment *seg = NULL;
	int code = VM_FAULT_NOSEG, guard;

	if (vm_kernel_sys.ready && tf->stval >= DIRECT_MAP_BASE) {
		/* the VM's objects come from its own cache, not kmalloc (mem.c) */
		code = vm_handle_fault(vm_kernel(&vm_kernel_sys), tf->stval,
				       fault_access(cause), &seg);
		if (code == VM_FAULT_OK)
			return;
	}
	if (expect_fault) {
		resume_expected(tf, cause);
		return;
	}
	const char *sec = image_section(tf->stval);
	if (sec)
		panic_trap(tf, "%s at 0x%lx: kernel %s (sepc 0x%lx)", trap_cause_name(cause),
			   tf->stval, sec, tf->sepc);
	guard = stack_guard_of(tf->stval);
	if (guard >= 0)
		panic_trap(tf, "kernel stack overflow: hart %lu's stack guard page at 0x%lx (%s)",
			   harts[guard].hartid, tf->stval, trap_cause_name(cause));
	panic_trap(tf, "%s at 0x%lx: %s%s%s (sepc 0x%lx)", trap_cause_name(cause), tf->stval,
		   vm_fault_str(code), seg ? " in segment " : "", seg ? seg->name : "",
		   tf->sepc);
}

void trap_handler(struct trap_frame *tf)
{
	struct hart *h = this_hart();
	unsigned long cause = tf->scause & ~SCAUSE_INTR;

	if (!(tf->sstatus & SSTATUS_SPP)) {
		mem_safe_point();   /* no kernel code of this hart was interrupted */
		part_user_trap(tf);
		return;
	}
	if (tf->scause & SCAUSE_INTR) {
		interrupt(tf, cause);
		return;
	}
	if (is_page_fault(cause) && h->trap_depth == 0) {
		h->trap_depth++;
		kernel_page_fault(tf, cause);
		h->trap_depth--;
		return;
	}
	if (expect_fault) {
		resume_expected(tf, cause);
		return;
	}
	if (++h->trap_depth > 1)
		panic_trap(tf, "trap: %s inside a trap handler at 0x%lx",
			   trap_cause_name(cause), tf->stval);
	panic_trap(tf, "%s at 0x%lx (sepc 0x%lx)", trap_cause_name(cause),
		   tf->stval, tf->sepc);
}
