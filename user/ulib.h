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

/* ---- waiting on a word of a shared area (docs/MM.md#wait-and-wake) ---- */
struct mm;
/* Sleep while the 32-bit word at ptr, inside area mm, holds expected, for
 * at most timeout_us (1..MM_WAIT_MAX_US): the hart runs other partitions
 * meanwhile. 0: woken by mm_wake (look at the word again: a wake says
 * nothing about its value); E_BUSY: the word did not hold expected;
 * E_TIMEOUT; E_ALIGN / E_RANGE: ptr not 4-aligned or outside the area's
 * size (or a timeout over the maximum); E_INVAL: timeout 0; E_DENIED: mm's
 * lock is held through this attachment; E_NOENT: mm is not attached. */
int mm_wait(struct mm *mm, const volatile uint32_t *ptr, uint32_t expected, uint64_t timeout_us);
/* Wake up to n (>= 1) partitions asleep on the word at ptr, oldest first,
 * on any hart. Returns how many, or E_ALIGN / E_RANGE / E_INVAL / E_NOENT. */
long mm_wake(struct mm *mm, const volatile uint32_t *ptr, unsigned n);

/* Make mm_create() attach through the kernel (called by ulib_start). */
void ulib_init_mm(void);

/* The program's entry, with the argument of its configuration. */
int main_arg(unsigned long arg);

#endif
