/* syscall.c - the system calls of partitions. Every pointer and length is
 * checked against the caller's own mappings before the kernel touches it
 * (part_copy_in/out); a bad one stops the partition. */
#include <stdio.h>
#include <string.h>

#include "hart.h"
#include "part.h"
#include "riscv.h"
#include "shm.h"
#include "syscall_nr.h"
#include "timer.h"
#include "trap.h"

#define WRITE_MAX 512

static void sys_write(struct partition *p, struct trap_frame *tf)
{
	char buf[WRITE_MAX];
	char tag[PART_NAME_MAX + 16];
	size_t len = tf->regs[11];
	uint64_t wait;

	if (len > WRITE_MAX)
		len = WRITE_MAX;   /* short write: the caller sees the count */
	/* all of it is checked before any of it is shown */
	if (!part_copy_in(p, buf, tf->regs[10], len)) {
		part_stop(p, tf, "bad pointer 0x%lx (length %zu) passed to write: %s",
			  tf->regs[10], len, p->copy_fail);
		return;
	}
	snprintf(tag, sizeof(tag), "[%s#%u] ", p->name, p->id);
	wait = console_write_part(tag, buf, len);   /* tagged, escaped, line by line */
	if (wait > p->console_wait_max)
		p->console_wait_max = wait;
	tf->regs[10] = len;
}

static void sys_mm_attach(struct partition *p, struct trap_frame *tf)
{
	char name[SYS_MM_NAME_MAX];
	struct sys_mm_attach out = { 0, 0, 0 };
	uintptr_t uname = tf->regs[10];
	long rc;
	size_t i;

	/* the name: byte by byte up to its NUL, each byte checked */
	for (i = 0; i < sizeof(name); i++) {
		if (!part_copy_in(p, &name[i], uname + i, 1)) {
			part_stop(p, tf, "bad pointer 0x%lx passed to mm_attach", uname);
			return;
		}
		if (!name[i])
			break;
	}
	if (i == sizeof(name)) {
		tf->regs[10] = (unsigned long)E_INVAL;
		return;
	}
	rc = shm_sys_attach(p, name, tf->regs[11], tf->regs[12], &out.base, &out.mapped,
			    &out.created);
	if (rc == 0 && !part_copy_out(p, tf->regs[13], &out, sizeof(out))) {
		part_stop(p, tf, "bad pointer 0x%lx passed to mm_attach", tf->regs[13]);
		return;
	}
	tf->regs[10] = (unsigned long)rc;
}

void part_syscall(struct partition *p, struct trap_frame *tf)
{
	unsigned long nr = tf->regs[17], a0 = tf->regs[10], a1 = tf->regs[11];

	switch (nr) {
	case SYS_WRITE:
		sys_write(p, tf);
		return;
	case SYS_EXIT:
		part_exit(p, tf, (int)a0);
		return;
	case SYS_YIELD:
		tf->regs[10] = 0;
		part_yield(p, tf);
		return;
	case SYS_TIME_US:
		tf->regs[10] = time_us();
		return;
	case SYS_HARTID:
		tf->regs[10] = this_hart()->hartid;
		return;
	case SYS_PARTID:
		tf->regs[10] = p->id;
		return;
	case SYS_MM_ATTACH:
		sys_mm_attach(p, tf);
		return;
	case SYS_MM_GROW:
		tf->regs[10] = (unsigned long)shm_sys_grow(p, a0, a1);
		return;
	case SYS_MM_MAP:
		tf->regs[10] = (unsigned long)shm_sys_map(p, a0, a1);
		return;
	case SYS_MM_DETACH:
		tf->regs[10] = (unsigned long)shm_sys_detach(p, a0);
		return;
	case SYS_MM_ALIVE:
		tf->regs[10] = part_alive((unsigned)a0);
		return;
	case SYS_MM_LOCK: {
		long rc = shm_sys_lock_or_nap(p, a0, (int)a1);

		if (rc == SHM_WAIT_QUEUED) {
			part_sleep(p, tf);        /* E_BUSY when it wakes: try again */
			return;
		}
		tf->regs[10] = (unsigned long)rc;
		return;
	}
	case SYS_MM_UNLOCK:
		tf->regs[10] = (unsigned long)shm_sys_unlock(p, a0);
		return;
	case SYS_MM_WAIT: {
		long rc = shm_sys_wait(p, a0, a1, (uint32_t)tf->regs[12], tf->regs[13]);

		if (rc == SHM_WAIT_QUEUED) {
			part_sleep(p, tf);        /* its result comes when it wakes */
			return;
		}
		tf->regs[10] = (unsigned long)rc;
		return;
	}
	case SYS_MM_WAKE:
		tf->regs[10] = (unsigned long)shm_sys_wake(p, a0, a1, tf->regs[12]);
		return;
	default:
		tf->regs[10] = (unsigned long)E_NOTSUP;
	}
}
