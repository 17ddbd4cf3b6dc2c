/* smp.h - secondary harts: start and stop them, IPIs, and work run on them. */
#ifndef SMP_H
#define SMP_H

#include "hart.h"

void ipi_send(unsigned index);
void ipi_handle(void);
/* Start hart `hartid` at the kernel's secondary entry with dense index
 * `index`; 0 once it runs, else the SBI error as an ERR_* code. */
int smp_start_hart(unsigned long hartid, unsigned index);
/* Run fn(i, arg) on harts 0..n-1 (the caller is hart 0's slot only when it
 * is hart index 0); returns when all are done. */
void smp_run(unsigned n, hart_work_fn fn, void *arg);
void hart_idle_loop(void);
/* Stop the calling hart (not index 0) with SBI HSM hart_stop; see smp.c. */
int smp_stop_self(void);

#endif
