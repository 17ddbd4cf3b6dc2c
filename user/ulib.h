/* ulib.h - the partition runtime: system calls, console through printf,
 * and the environment of the shared-area library (mm/mm.h). */
#ifndef USER_ULIB_H
#define USER_ULIB_H

#include <stddef.h>
#include <stdint.h>

#include "syscall_nr.h"

long usys_write(const void *buf, size_t len);
_Noreturn void usys_exit(int status);
void usys_yield(void);
uint64_t usys_time_us(void);
long usys_hartid(void);
long usys_partid(void);
/* Raw system call, for tests that pass hostile arguments. */
long usys_call(long nr, long a0, long a1, long a2, long a3);

/* Make mm_create() attach through the kernel (called by ulib_start). */
void ulib_init_mm(void);

/* The program's entry, with the argument of its configuration. */
int main_arg(unsigned long arg);

#endif
