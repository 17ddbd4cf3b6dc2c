/* stress.h - the multi-hart stress engine for the memory layer (docs/STRESS.md).
 *
 * The engine is portable: it drives the managers through their public APIs
 * (the headers in mm/) and reaches its world through struct stress_plat, implemented by
 * the kernel glue (stress_kernel.c: harts, SBI HSM hot-plug, the timer tick)
 * and the host glue (stress_host.c: threads as harts). stress_run parses the
 * options, runs the workload on every hart, checks, reports and returns 0
 * for "stress: SUCCESS" or 1 for "stress: FAILURE: ...".
 */
#ifndef STRESS_H
#define STRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pmem.h"
#include "umm.h"

typedef struct kmalloc_inst kmalloc_t;

typedef void (*stress_work_fn)(unsigned i, void *arg);

struct stress_plat {
	const char *name;               /* "kernel" or "host" */
	unsigned ncpus;                 /* harts (threads) that can run workers */
	uint64_t (*now_ns)(void);       /* monotonic (virtual time under icount) */
	uint64_t (*count)(void);        /* retired instructions, or NULL */
	/* Run fn(i, arg) for i in [0, n) on n harts, i == 0 on the caller;
	 * returns when every fn returned. */
	void (*run)(unsigned n, stress_work_fn fn, void *arg);
	/* Engine memory: page-aligned, zeroed, `size` bytes; *pa its physical
	 * address (va - pa is va_offset below). NULL when none. */
	void *(*mem)(size_t size, uint64_t *pa);
	void (*mem_free)(void *va, size_t size);
	uintptr_t va_offset;
	/* Small objects for the private VM instance (kmalloc / malloc). */
	void *(*obj_alloc)(size_t size);
	void (*obj_free)(void *p);
	/* The kernel's own instances, NULL (false) on the host. */
	pmem_t *gpmem;
	umm_t *gumm;
	bool gkmalloc;
	/* irq=: call tick(i) from worker i's timer interrupt; NULL: the engine
	 * runs the same fast-path ops inline. irq_ok: may the tick that
	 * interrupted this hart call into kmalloc at all (NULL: yes; the
	 * engine still keeps it out of the instance its hart is inside)? */
	int (*irq_start)(void (*tick)(void));
	void (*irq_stop)(void);
	bool (*irq_ok)(void);
	/* onoff=: stop the calling worker's hart (caches already flushed).
	 * Kernel: SBI HSM hart_stop, never returns; the work function runs
	 * again from the start on that hart after cpu_on. Host: returns once
	 * cpu_on(i) was called. cpu_stopped: is hart i stopped for the
	 * firmware? cpu_on: start it again (0 or an error). */
	void (*cpu_off)(unsigned i);
	bool (*cpu_stopped)(unsigned i);
	int (*cpu_on)(unsigned i);
	unsigned (*cpu_index)(void);    /* env_cpu() of the caller */
	/* yield=N: let the other harts run (kernel: wfi until the next
	 * interrupt; under QEMU's fixed-rate icount the round-robin scheduler
	 * otherwise may never leave a busy hart, docs/STRESS.md). NULL: none. */
	void (*yield)(void);
	void (*print)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
	/* The kernel's heap bytes that may legitimately stay taken from gpmem
	 * (kmalloc's heap growth, the kheap segment): sampled before and after. */
	size_t (*kept_bytes)(void);
	/* The watchdog found a hart that never reaches the end of the run:
	 * the verdict is printed; end the whole run now with the failing
	 * status (kernel: shutdown, host: _exit(1)). NULL: wait for ever. */
	void (*abort_run)(void) __attribute__((noreturn));
	/* parts=: partitions beside the harts' workload (docs/STRESS.md).
	 * parts_start: create a shared area of their own and n partitions
	 * of the stress role (user/stress_role.c), partition k on hart
	 * k % harts (the harts of the run), pops operations each (dbg: STRESS_DBG_* for the last);
	 * nothing runs yet. 0, or -1 with the reason in why.
	 * parts_lend: run the calling hart's partitions for about `ticks`
	 * timer ticks (less when all left sleep); returns those left on it.
	 * parts_live(i): does hart index i have live partitions?
	 * parts_ops: operations the partitions reported so far.
	 * parts_abandon: stop the calling hart's partitions that are left,
	 * naming them in why (the end's bound passed); returns how many.
	 * parts_finish: after every hart ended, check every partition's
	 * end, the area (mm_check, every block freed), destroy it; *ops:
	 * their operations. 0, or -1 with the reason in why (naming the
	 * partition). NULL: no partitions here (host). */
	int (*parts_start)(unsigned n, unsigned pops, uint64_t seed, unsigned dbg,
			   unsigned harts, char *why, size_t whylen);
	unsigned (*parts_lend)(unsigned ticks);
	bool (*parts_live)(unsigned i);
	uint64_t (*parts_ops)(void);
	unsigned (*parts_abandon)(unsigned secs, char *why, size_t whylen);
	int (*parts_finish)(uint64_t *ops, char *why, size_t whylen);
};

/* opts: space-separated key=value options (docs/STRESS.md). */
int stress_run(const struct stress_plat *plat, const char *opts);

#endif
