/* ulib.c - partition runtime: system call stubs, a per-partition TLS block
 * for picolibc, stdout through SYS_WRITE, and mm_env hooks. */
#include "ulib.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mm.h"

long usys_call(long nr, long a0, long a1, long a2, long a3)
{
	register long r0 __asm__("a0") = a0;
	register long r1 __asm__("a1") = a1;
	register long r2 __asm__("a2") = a2;
	register long r3 __asm__("a3") = a3;
	register long r7 __asm__("a7") = nr;

	__asm__ volatile("ecall" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r3), "r"(r7) : "memory");
	return r0;
}

long usys_write(const void *buf, size_t len)
{
	return usys_call(SYS_WRITE, (long)buf, (long)len, 0, 0);
}

_Noreturn void usys_exit(int status)
{
	fflush(stdout);
	usys_call(SYS_EXIT, status, 0, 0, 0);
	for (;;)
		;
}

void usys_yield(void)
{
	usys_call(SYS_YIELD, 0, 0, 0, 0);
}

uint64_t usys_time_us(void)
{
	return (uint64_t)usys_call(SYS_TIME_US, 0, 0, 0, 0);
}

long usys_hartid(void)
{
	return usys_call(SYS_HARTID, 0, 0, 0, 0);
}

long usys_partid(void)
{
	return usys_call(SYS_PARTID, 0, 0, 0, 0);
}

/* ---- stdout: a line buffer flushed through SYS_WRITE ---------------------- */

static char line[200];
static size_t linelen;

static int uflush(FILE *f)
{
	(void)f;
	if (linelen)
		usys_write(line, linelen);
	linelen = 0;
	return 0;
}

static int uputc(char c, FILE *f)
{
	line[linelen++] = c;
	if (c == '\n' || linelen == sizeof(line))
		uflush(f);
	return (unsigned char)c;
}

static FILE ustdout = FDEV_SETUP_STREAM(uputc, NULL, uflush, _FDEV_SETUP_WRITE);
FILE *const stdout = &ustdout;
FILE *const stderr = &ustdout;
FILE *const stdin = &ustdout;

/* ---- mm_env through the kernel ------------------------------------------------ */

static int k_attach(void *ctx, const char *name, size_t initial, size_t max,
		    void **base, size_t *mapped, bool *created)
{
	struct sys_mm_attach out;
	long rc = usys_call(SYS_MM_ATTACH, (long)name, (long)initial, (long)max, (long)&out);

	(void)ctx;
	if (rc < 0)
		return (int)rc;
	*base = (void *)(uintptr_t)out.base;
	*mapped = out.mapped;
	*created = out.created != 0;
	return 0;
}

/* SYS_MM_GROW and SYS_MM_MAP: the bytes now mapped, or an error. */
static int mapped_call(long nr, void *base, size_t size, size_t *mapped)
{
	long rc = usys_call(nr, (long)base, (long)size, 0, 0);

	if (rc < 0)
		return (int)rc;
	*mapped = (size_t)rc;
	return 0;
}

static int k_grow(void *ctx, void *base, size_t new_size, size_t *mapped)
{
	(void)ctx;
	return mapped_call(SYS_MM_GROW, base, new_size, mapped);
}

static int k_ensure(void *ctx, void *base, size_t size, size_t *mapped)
{
	(void)ctx;
	return mapped_call(SYS_MM_MAP, base, size, mapped);
}

static int k_detach(void *ctx, void *base, size_t mapped, bool last)
{
	(void)ctx;
	(void)mapped;
	(void)last;
	return (int)usys_call(SYS_MM_DETACH, (long)base, 0, 0, 0);
}

static bool k_alive(void *ctx, uint32_t id)
{
	(void)ctx;
	return usys_call(SYS_MM_ALIVE, (long)id, 0, 0, 0) == 1;
}

/* The kernel keeps the lock: one attempt (a busy one naps in the kernel
 * until the area's next unlock); mm_lock yields (relax: the partitions on
 * this hart run meanwhile) and tries again, for at most MM_LOCK_WAIT_US. */
static int k_lock(void *ctx, void *base, int mode)
{
	(void)ctx;
	return (int)usys_call(SYS_MM_LOCK, (long)base, mode, 0, 0);
}

static int k_unlock(void *ctx, void *base)
{
	(void)ctx;
	return (int)usys_call(SYS_MM_UNLOCK, (long)base, 0, 0, 0);
}

static struct mm_env uenv = {
	.attach = k_attach,
	.grow = k_grow,
	.ensure_mapped = k_ensure,
	.detach = k_detach,
	.relax = usys_yield,
	.is_alive = k_alive,
	.lock = k_lock,
	.unlock = k_unlock,
	.now_us = usys_time_us,
	.max_size = 1u << 20,
};

/* ---- mm_wait / mm_wake: the offset of ptr in the area goes to the kernel,
 * which checks it (a pointer below the base wraps to a huge offset) ---- */

int mm_wait(struct mm *mm, const volatile uint32_t *ptr, uint32_t expected, uint64_t timeout_us)
{
	uintptr_t off = (uintptr_t)ptr - (uintptr_t)mm->base;

	return (int)usys_call(SYS_MM_WAIT, (long)mm->base, (long)off, (long)expected,
			      (long)timeout_us);
}

long mm_wake(struct mm *mm, const volatile uint32_t *ptr, unsigned n)
{
	uintptr_t off = (uintptr_t)ptr - (uintptr_t)mm->base;

	return usys_call(SYS_MM_WAKE, (long)mm->base, (long)off, (long)n, 0);
}

void ulib_init_mm(void)
{
	uenv.self_id = (uint32_t)usys_partid();
	mm_set_default_env(&uenv);
}

/* ---- start -------------------------------------------------------------------- */

static _Alignas(16) unsigned char tls_block[512];

void ulib_start(unsigned long arg)
{
	extern char _tdata_start[], _tdata_end[], _tls_size[];

	if ((size_t)_tls_size > sizeof(tls_block))
		usys_exit(127);
	memcpy(tls_block, _tdata_start, (size_t)(_tdata_end - _tdata_start));
	__asm__ volatile("mv tp, %0" :: "r"(tls_block));
	ulib_init_mm();
	usys_exit(main_arg(arg));
}
