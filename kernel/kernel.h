/* kernel.h - what kernel files share: boot state, panic, console, timer,
 * IPIs, SMP work dispatch and shutdown. */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "hart.h"

struct trap_frame {
	unsigned long regs[32];   /* x0..x31; regs[2] is sp before the trap */
	unsigned long sstatus, sepc, scause, stval;
};
_Static_assert(sizeof(struct trap_frame) == 36 * 8, "kernel.h: entry.S FRAME_SIZE");

extern uint64_t timebase_hz;
extern const struct board *board;

/* Kernel image addresses <-> physical: the image runs where it was loaded
 * (entry.S stores the physical address of _start before anything else). */
extern unsigned long kernel_phys_base;
static inline unsigned long kva_to_pa(const void *va)
{
	return (unsigned long)va - KERNEL_VMA + kernel_phys_base;
}

static inline void *pa_to_dmap(unsigned long pa)
{
	return (void *)(pa + DIRECT_MAP_BASE);
}

/* panic.c: report and stop every hart. `tf` may be NULL. */
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void vpanic(const struct trap_frame *tf, const char *fmt, va_list ap);
_Noreturn void panic_trap(const struct trap_frame *tf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
extern volatile bool panicking;
/* Stop this hart for good (interrupts off). */
_Noreturn void hart_halt(void);

/* console.c */
void console_write_raw(const char *s, unsigned long n);   /* panic path, no lock */
/* Drop the line this hart has half assembled (a panic starts afresh). */
void console_discard_line(void);

/* trap.c */
void trap_init_hart(void);
const char *trap_cause_name(unsigned long cause);
/* For tests: the next synchronous exception on this hart resumes after the
 * faulting instruction instead of panicking (a fetch fault: at the return
 * address). trap_expected_fault_cause() ends the expectation and returns
 * that exception's scause, ~0 if none came. */
void trap_expect_fault(void);
unsigned long trap_expected_fault_cause(void);

/* timer.c: hooks run in interrupt context on every hart's tick. */
int timer_add_hook(void (*fn)(void));
void timer_remove_hook(void (*fn)(void));
void timer_init_hart(void);
void timer_tick(void);
uint64_t time_us(void);

/* smp.c */
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

/* main.c: the value of key=... in the bootargs, copied into buf (NULL if
 * absent). */
const char *bootarg(const char *key, char *buf, size_t len);

/* Shutdown through the board's ops (test finisher) or SBI System Reset. */
_Noreturn void kernel_shutdown(bool failed);

#endif
