/* part.h - partitions: programs in U-mode, each in its own Sv39 address
 * space, pinned to a hart, time-sliced with the others on that hart, and
 * talking to each other only through shared mm areas (kernel/shm.c).
 *
 * Lock order: parts_lock -> shm_lock -> VM locks -> pmem lock.
 */
#ifndef KERNEL_PART_H
#define KERNEL_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel.h"
#include "vm.h"

#define MAX_PARTS        32
#define PART_NAME_MAX    16
#define PART_MAX_ATTACH  4
#define PART_QUOTA_PAGES 512       /* default: 2 MiB of private memory */
#define PART_SLICE_TICKS 2         /* timer ticks per time slice */
#define USER_VA_END      0x4000000000ul   /* end of the Sv39 lower half */

enum part_state { PART_FREE, PART_READY, PART_RUNNING, PART_EXITED, PART_KILLED };

struct shm_area;

struct part_attach {
	struct shm_area *area;
	uintptr_t base;               /* where the area is mapped in the partition */
	size_t mapped;
};

struct partition {
	unsigned id;
	char name[PART_NAME_MAX];
	enum part_state state;
	unsigned hart;                /* dense hart index it runs on */
	unsigned long arg;
	struct vm_descriptor *vm;
	struct vm_segment *heap, *stack;
	struct trap_frame ctx;        /* user registers while not running */
	size_t quota_pages, peak_pages;
	int exit_status;
	char report[160];             /* why it was stopped */
	uint64_t syscalls, slices, faults_grown;
	struct part_attach att[PART_MAX_ATTACH];
};

/* Create partition `name` running the partition program with `arg` on
 * hart index `hart`, with a private-memory quota in pages (0: default).
 * Returns its id (> 0) or a negative error; nothing runs until
 * part_run_all(). */
int part_create(const char *name, unsigned long arg, unsigned hart, size_t quota_pages);
/* Run every created partition on its hart until all have exited or been
 * stopped. Called on the boot hart. */
void part_run_all(void);
/* Forget ended partitions (their memory is already returned). */
void part_reset(void);
const struct partition *part_get(unsigned id);
bool part_alive(unsigned id);
/* Private pages mapped for p now (segments; shared areas not counted). */
size_t part_pages(const struct partition *p);
/* Per-partition memory use, one line each. */
void part_print_usage(void);

/* trap.c: a trap from U-mode on this hart. */
void part_user_trap(struct trap_frame *tf);
/* syscall.c */
void part_syscall(struct partition *p, struct trap_frame *tf);
/* Stop p (running on this hart, its frame in tf) with a report. On return
 * tf holds the next partition of this hart (the caller must not touch p or
 * the old frame again), or the call does not return at all (none left). */
void part_kill(struct partition *p, struct trap_frame *tf, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void part_exit(struct partition *p, struct trap_frame *tf, int status);
void part_yield(struct partition *p, struct trap_frame *tf);

/* Checked copies between a partition's memory and the kernel: every page
 * must be mapped for U with the needed rights; bytes move through the
 * direct map, so SUM is never turned on. false: bad pointer. */
bool part_copy_in(struct partition *p, void *dst, uintptr_t uva, size_t len);
bool part_copy_out(struct partition *p, uintptr_t uva, const void *src, size_t len);

#endif
