/* trap.h - traps: the frame entry.S saves, the per-hart trap setup, the names
 * of causes, and expected faults for tests. */
#ifndef TRAP_H
#define TRAP_H

#include <stdint.h>

struct trap_frame {
	unsigned long regs[32];   /* x0..x31; regs[2] is sp before the trap */
	unsigned long sstatus, sepc, scause, stval;
};
_Static_assert(sizeof(struct trap_frame) == 36 * 8, "trap.h: entry.S FRAME_SIZE");

void trap_init_hart(void);
const char *trap_cause_name(unsigned long cause);
/* For tests: the next synchronous exception on this hart resumes after the
 * faulting instruction instead of panicking (a fetch fault: at the return
 * address). trap_expected_fault_cause() ends the expectation and returns
 * that exception's scause, ~0 if none came. */
void trap_expect_fault(void);
unsigned long trap_expected_fault_cause(void);

#endif
