/* trap.c - decode scause and dispatch: timer and software interrupts, and
 * exceptions, which panic with the full register frame unless a test on
 * this hart declared that it expects one (hart.expect_fault). */
#include <stdio.h>

#include "hart.h"
#include "kernel.h"
#include "riscv.h"

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

/* A test that provokes a fault resumes after the faulting instruction (or,
 * for a fetch fault, at the return address of the call that jumped there). */
static void resume_expected(struct trap_frame *tf, unsigned long cause)
{
	struct hart *h = this_hart();

	h->fault_cause = cause;
	h->expect_fault = false;
	if (cause == EXC_INST_PAGE_FAULT || cause == EXC_INST_ACCESS ||
	    cause == EXC_INST_MISALIGNED)
		tf->sepc = tf->regs[1];
	else
		tf->sepc += (*(const uint16_t *)tf->sepc & 3) == 3 ? 4 : 2;
}

void trap_handler(struct trap_frame *tf)
{
	struct hart *h = this_hart();
	unsigned long cause = tf->scause & ~SCAUSE_INTR;

	if (tf->scause & SCAUSE_INTR) {
		interrupt(tf, cause);
		return;
	}
	if (h->expect_fault) {
		resume_expected(tf, cause);
		return;
	}
	if (++h->trap_depth > 1)
		panic_trap(tf, "trap: %s inside a trap handler at 0x%lx",
			   trap_cause_name(cause), tf->stval);
	panic_trap(tf, "%s at 0x%lx (sepc 0x%lx)", trap_cause_name(cause),
		   tf->stval, tf->sepc);
}
