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

#include "memlayout.h"   /* the partitions' address layout */
#include "trap.h"
#include "vm.h"

/* Partition records are kmalloc'ed: as many as memory allows, within
 * these limits (part_create: E_BUSY past them). Ids count up from 1 and
 * are never reused in a boot (E_RANGE once PART_ID_MAX were issued): an
 * id a peer remembers never names another partition. */
#define PART_MAX_PER_HART 512      /* live (created, not yet reset) on one hart */
#define PART_MAX_LIVE     1024     /* live in all */
#define PART_ID_MAX       0xffffffu /* ids fit the area lock's keys (id << 8) */
/* Partitions' stacks and attach addresses differ by (id - 1) %
 * PART_VA_SLOTS + 1 (include/memlayout.h): different addresses for
 * neighbours, so areas must hold offsets, not pointers. */
#define PART_VA_SLOTS     64
#define PART_NAME_MAX    16
#define PART_MAX_ATTACH  4
#define PART_QUOTA_PAGES 512       /* default: 2 MiB of private memory */
#define PART_SLICE_TICKS 2         /* timer ticks per time slice */
#define PART_BUDGET_MS   30000     /* default CPU budget (bootarg part_budget=<ms>) */
#define PART_REASON_MAX  96        /* a part_kill reason, truncated to this */

enum part_state { PART_FREE, PART_READY, PART_RUNNING, PART_EXITED, PART_KILLED,
		  PART_WAITING };   /* asleep in mm_wait or a lock nap (kernel/shm_wait.c) */

struct shm_area;

struct part_attach {
	struct shm_area *area;
	uintptr_t base;               /* where the area is mapped in the partition */
	size_t mapped;
};

/* A partition asleep in mm_wait: its entry in one area's queue of waiters
 * (kernel memory, keyed by area and offset, kernel/shm_wait.c). */
struct part_wait {
	struct part_wait *next, *prev;   /* the area's queue (its wq_lk) */
	struct shm_area *area;           /* queued on; NULL: not queued */
	uint32_t off;                    /* the word's offset in the area */
	uint64_t deadline;               /* rdtime: wake with E_TIMEOUT */
	bool nap;                        /* a lock nap: the call returns E_BUSY */
	uint64_t since;                  /* rdtime when it fell asleep */
	volatile bool woken;             /* a waker took it off the queue */
};

/* One hold of an area lock by one attachment (kernel/shm_lock.c keeps
 * them). Keys: partition id << 8 | attach slot + 1, or a kernel handle's
 * index + 1. */
struct shm_hold {
	struct shm_hold *anext;       /* the area's attachers (its lk) */
	uint32_t part_id;             /* 0: a kernel handle */
	struct shm_area *area;        /* NULL: holds nothing */
	int mode;
	uint64_t since;               /* rdtime when taken */
	uint64_t ticks;               /* its hart's timer ticks then */
	unsigned hart;                /* the hart it was taken on */
	bool reported;                /* shm_holder_overdue was told */
	/* waiting (all under the area's lk) */
	struct shm_area *warea;       /* waits for this area's lock, NULL none */
	uint32_t wticket;             /* its place: lower goes first */
	int wmode;
	uint64_t wpoll;               /* its last attempt (rdtime) */
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
	struct shm_hold holds[PART_MAX_ATTACH];   /* the area lock, per attachment */
	size_t shm_charged;           /* pages charged for shared areas (shm_lock) */
	unsigned shm_created;         /* live areas it pays for (shm_lock) */
	/* the table (kernel/part.c): by id, in creation order, and its
	 * hart's ring of live partitions */
	struct partition *id_next, *all_next, *rnext, *rprev;
	bool on_ring;

	/* CPU budget, in timebase ticks of rdtime: time it ran (kernel work
	 * on its behalf included) or slept in mm_wait or a lock nap, against
	 * the budget, checked on every tick while it runs */
	uint64_t cpu_used, run_since, budget;
	/* part_kill: set once (under parts_lock), acted on by its own hart */
	volatile bool kill_pending;
	char kill_reason[PART_REASON_MAX];
	const char *copy_fail;        /* why the last part_copy_in/out failed */
	uint64_t console_wait_max;    /* longest wait of its write()s for the console lock (ticks) */
	struct part_wait wait;        /* PART_WAITING: where it sleeps */
	uint64_t waits, wakes;        /* sleeps (mm_wait, lock naps); mm_wake calls */
};

static inline unsigned part_va_slot(const struct partition *p)
{
	return (p->id - 1) % PART_VA_SLOTS + 1;
}

/* Create partition `name` running the partition program with `arg` on
 * hart index `hart`, with a private-memory quota in pages (0: default).
 * Returns its id (> 0) or a negative error: E_INVAL (no name, no such
 * hart), E_BUSY (PART_MAX_PER_HART live on that hart, or PART_MAX_LIVE in
 * all: a line says which), E_RANGE (ids exhausted), E_NOMEM, or the
 * image's error; nothing is left of a refused one. Nothing runs until
 * part_run_all(); not while it runs. */
int part_create(const char *name, unsigned long arg, unsigned hart, size_t quota_pages);
/* Create partition `name` from the ELF image img[0, len) (elf_load's
 * checks; the bytes are copied, they need not outlive the call) on hart
 * index `hart` with a private-memory quota in pages (0: default). The
 * argument string `argstr` (shorter than PART_ARG_MAX) and then the name
 * are copied, NUL-terminated, to the top of its stack; it starts with a0
 * pointing at the argument string (sdk/partition.h). Returns its id (> 0)
 * or a negative error: E_INVAL (NULL image or argument, argument too long,
 * bad hart), E_CORRUPT (the image, with a "part: NAME: partition image:
 * WHY" line), E_NOMEM; nothing runs until part_run_all(). */
#define PART_ARG_MAX 128
int part_create_image(const char *name, const void *img, size_t len, const char *argstr,
		      unsigned hart, size_t quota_pages);
/* Run every created partition on its hart until all have exited or been
 * stopped. Called on the boot hart. */
void part_run_all(void);
/* Lend the calling hart to its partitions from a kernel loop (a program
 * that runs its own work on the hart, the stress tool): they run, round
 * robin as under part_run_all, until `ticks` timer ticks (>= 1; the first
 * may come at once) have passed while one of them ran, until every one
 * left sleeps, or until none is left; then the caller goes on where it
 * was, interrupts as they were. Not while part_run_all runs, and from no
 * interrupt handler. Returns the partitions left on the hart. */
unsigned part_run_lend(unsigned ticks);
/* Live partitions of hart index `hart`: for the calling hart's own, how
 * many; for another's, 1 if any (read without its cooperation), else 0. */
unsigned part_hart_live(unsigned hart);
/* Forget ended partitions (their memory is already returned): their
 * records are freed, part_get no longer finds them. Not while
 * part_run_all runs. */
void part_reset(void);
/* Set the CPU budget of partition `id` (created, not yet run) to `ms`
 * milliseconds of running time (> 0). The default comes from the bootarg
 * part_budget=<ms>, else PART_BUDGET_MS. E_INVAL: bad ms; E_NOENT: no such
 * partition ready to run. */
int part_set_budget(unsigned id, unsigned ms);
/* The budget of partitions created from now on when the bootarg
 * part_budget names none (the bootarg wins): `ms`, or PART_BUDGET_MS
 * again for 0. For a program that knows its partitions' time runs slower
 * than the guest's clock (the tests on many emulated harts). */
void part_set_default_budget(unsigned ms);
/* Running time of p so far, in milliseconds. */
uint64_t part_cpu_ms(const struct partition *p);
/* Stop partition `id` with `reason` (copied, control characters replaced),
 * from any hart, in any context, at any time, the partition's own hart and
 * its own system calls included. The partition's own hart does the stop:
 * at once (an IPI) if it is running in U-mode, when the system call it is
 * in returns, or when it would next be scheduled. The stop prints the
 * usual "part: NAME#ID on hart H stopped: REASON" report, releases its
 * holds on shared areas (shm_detach_all: mm_area_owner_died) and frees its
 * memory; part_run_all does not return before. A partition that exits by
 * itself before its hart acts stays exited.
 * Returns 0 when the stop is requested; E_NOENT when `id` names no live
 * (ready, running or asleep) partition; E_BUSY when a stop is already requested
 * (the first reason is kept); E_INVAL for a NULL reason. Takes parts_lock
 * with interrupts off, never waits for the target: safe with shm_lock held
 * and from a tick hook. */
int part_kill(unsigned id, const char *reason);
/* True once part_kill(p->id) was requested: kernel waits on p's behalf
 * (e.g. for an area lock) should give up so the stop can happen. */
bool part_kill_pending(const struct partition *p);
const struct partition *part_get(unsigned id);
bool part_alive(unsigned id);
/* Partitions created and not yet reset (part_reset), on every hart. */
unsigned part_live_count(void);
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
void part_stop(struct partition *p, struct trap_frame *tf, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void part_exit(struct partition *p, struct trap_frame *tf, int status);
void part_yield(struct partition *p, struct trap_frame *tf);
/* p (running on this hart, frame tf) goes to sleep: shm_sys_wait or
 * shm_sys_lock_or_nap queued p->wait. Its hart runs its other partitions,
 * or idles (wfi) while all of them sleep. p runs again, its system call
 * returning 0 (woken) or E_TIMEOUT (E_BUSY for a lock nap), once a waker
 * set p->wait.woken or its deadline passed; a kill stops it asleep, and
 * so does its CPU budget running out (time asleep counts). On return tf
 * holds the next partition to run. */
void part_sleep(struct partition *p, struct trap_frame *tf);

/* Checked copies between a partition's memory and the kernel: every page
 * must be accessible to a U-mode access with the needed rights; a page of
 * a growable segment that is not mapped yet is faulted in and charged to
 * the quota exactly as a U-mode access would. Bytes move through the
 * direct map, so SUM is never turned on. false: bad pointer (p->copy_fail
 * says why); pages faulted in before the bad one stay mapped, as they
 * would for U-mode. */
bool part_copy_in(struct partition *p, void *dst, uintptr_t uva, size_t len);
bool part_copy_out(struct partition *p, uintptr_t uva, const void *src, size_t len);

/* console.c: bytes a partition writes, as console lines that each start
 * with `tag` ("[name#id] "); control characters, non-ASCII bytes and the
 * backslash are escaped; a line longer than CONSOLE_PART_LINE goes on in
 * a new tagged line; the console lock is held for one line at a time.
 * Returns the longest wait for the console lock (timebase ticks). */
#define CONSOLE_PART_LINE 160
uint64_t console_write_part(const char *tag, const char *s, size_t n);
/* Tests: sees every console write (kernel lines and partition lines), one
 * whole line each, under the console lock, before it goes out. */
extern void (*volatile console_tap)(const char *line, unsigned long n);

#endif
