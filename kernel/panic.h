/* panic.h - report a fatal error with the registers and stop every hart. */
#ifndef PANIC_H
#define PANIC_H

#include <stdarg.h>
#include <stdbool.h>

struct trap_frame;

/* Report and stop every hart. `tf` may be NULL. */
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void vpanic(const struct trap_frame *tf, const char *fmt, va_list ap);
_Noreturn void panic_trap(const struct trap_frame *tf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
extern volatile bool panicking;
/* Stop this hart for good (interrupts off). */
_Noreturn void hart_halt(void);

#endif
