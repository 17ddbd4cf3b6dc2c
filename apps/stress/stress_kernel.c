/* stress_kernel.c - the stress engine on the kernel: harts through smp_run,
 * engine memory from kpmem through the direct map, the kernel's global
 * instances, the timer tick for irq= and SBI HSM hot-plug for onoff=.
 *
 * `stress=<first option> <option> ...` in the bootargs: the options are
 * everything from the stress= token to the end of the line, so
 * `make stress STRESS='mgr=umm,kmalloc fail=1'` reaches the engine whole. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "boot.h"
#include "hart.h"
#include "kernel.h"
#include "kmalloc.h"
#include "mem.h"
#include "part.h"
#include "part_roles.h"
#include "shm.h"
#include "program.h"
#include "riscv.h"
#include "sbi.h"
#include "stress.h"

static uint64_t k_now_ns(void)
{
	uint64_t t = rdtime();

	return t / timebase_hz * 1000000000ull + t % timebase_hz * 1000000000ull / timebase_hz;
}

static uint64_t k_count(void)
{
	return rdinstret();
}

static void *k_mem(size_t size, uint64_t *pa)
{
	size_t n = (size + ENV_PAGE_SIZE - 1) / ENV_PAGE_SIZE;
	uintptr_t p = pmem_alloc_pages(&kpmem, n, 0, 0, PMEM_NODE_ANY);

	if (!p)
		return NULL;
	memset(pa_to_dmap(p), 0, n * ENV_PAGE_SIZE);
	*pa = p;
	return pa_to_dmap(p);
}

static void k_mem_free(void *va, size_t size)
{
	pmem_free_pages(&kpmem, (uintptr_t)va - DIRECT_MAP_BASE,
			(size + ENV_PAGE_SIZE - 1) / ENV_PAGE_SIZE);
}

static void (*k_tick)(void);

static int k_irq_start(void (*tick)(void))
{
	k_tick = tick;
	return timer_add_hook(tick);
}

static void k_irq_stop(void)
{
	timer_remove_hook(k_tick);
	/* a tick already inside the hook on another hart finishes first */
	for (uint64_t t = rdtime() + timebase_hz / 50; rdtime() < t;)
		env_cpu_relax();
}

static void k_cpu_off(unsigned i)
{
	int rc = smp_stop_self();

	panic("stress: hart index %u could not stop: %s", i, err_str(rc));
}

static bool k_cpu_stopped(unsigned i)
{
	return sbi_hart_get_status(harts[i].hartid) == SBI_HSM_STOPPED;
}

static int k_cpu_on(unsigned i)
{
	return smp_start_hart(harts[i].hartid, i);
}

static unsigned k_cpu_index(void)
{
	return env_cpu();
}

static void k_print(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static void k_yield(void)
{
	__asm__ volatile("wfi");
}

static size_t k_kept(void)
{
	return vm_kernel_sys.heap ? vm_kernel_sys.heap->size : 0;
}

/* parts=: partitions beside the harts' workload (docs/STRESS.md): an
 * area of their own and n partitions of ROLE_STRESS on harts k % harts of the run,
 * created before the workers start; each worker lends its hart to its
 * partitions now and then (part_run_lend); at the end every ending is
 * checked, the area checked (mm_check, every block freed) and destroyed. */
static struct {
	mm_t *area;
	unsigned n, areas0;
	size_t used0;
	int ids[STRESS_PARTS_MAX];
} kp;

static int k_parts_start(unsigned n, unsigned pops, uint64_t seed, unsigned dbg, unsigned harts,
			 char *why, size_t wl)
{
	size_t max = (4u << 20) + (size_t)n * (256u << 10);
	struct mm_stats st;

	memset(&kp, 0, sizeof(kp));
	why[0] = 0;
	kp.areas0 = shm_count();
	kp.area = shm_kernel_create(STRESS_AREA, sizeof(struct stress_area_hdr), 4096, max);
	if (!kp.area) {
		snprintf(why, wl, "mm: cannot create the partitions' area '%s'", STRESS_AREA);
		return -1;
	}
	if (mm_lock(kp.area, MM_LOCK_RW) < 0) {
		snprintf(why, wl, "mm: cannot lock the partitions' area");
		shm_kernel_detach(kp.area);
		kp.area = NULL;
		return -1;
	}
	memset(mm_static(kp.area), 0, sizeof(struct stress_area_hdr));
	mm_stats(kp.area, &st);
	kp.used0 = st.used;
	mm_unlock(kp.area);
	kp.n = n;
	for (unsigned k = 0; k < n; k++) {
		char name[PART_NAME_MAX];

		snprintf(name, sizeof(name), "stress%u", k);
		kp.ids[k] = part_create(name, ROLE_ARG(ROLE_STRESS,
					STRESS_PARAM(pops, k, k == n - 1 ? dbg : 0, seed)),
					k % harts, 0);
		if (kp.ids[k] < 0 && !why[0])
			snprintf(why, wl, "partition stress%u not created: %s", k,
				 err_str(kp.ids[k]));
	}
	return why[0] ? -1 : 0;
}

static unsigned k_parts_lend(unsigned ticks)
{
	return part_run_lend(ticks);
}

static bool k_parts_live(unsigned i)
{
	return part_hart_live(i) != 0;
}

static uint64_t k_parts_ops(void)
{
	const struct stress_area_hdr *h = kp.area ? mm_static(kp.area) : NULL;
	uint64_t ops = 0;

	/* read without the lock: a figure for the stat line */
	for (unsigned k = 0; h && k < kp.n; k++)
		ops += __atomic_load_n(&h->ops[k], __ATOMIC_RELAXED);
	return ops;
}

/* The end's bound passed: stop this hart's partitions that are left (the
 * hart acts on the kill when it lends itself once more). */
static unsigned k_parts_abandon(unsigned secs, char *why, size_t wl)
{
	unsigned me = this_hart()->index, n = 0;
	char reason[PART_REASON_MAX];

	snprintf(reason, sizeof(reason), "did not end within %u s of the end of the workload",
		 secs);
	for (unsigned k = 0; k < kp.n; k++) {
		const struct partition *p = kp.ids[k] > 0 ? part_get((unsigned)kp.ids[k]) : NULL;

		if (!p || p->hart != me || p->state == PART_EXITED || p->state == PART_KILLED)
			continue;
		if (!n++)
			snprintf(why, wl, "partition %s#%u on hart %u did not end within %u s of "
				 "the end of the workload (%u slices, %llu system calls)", p->name,
				 p->id, p->hart, secs, (unsigned)p->slices,
				 (unsigned long long)p->syscalls);
		part_kill((unsigned)kp.ids[k], reason);
	}
	while (part_run_lend(1))
		;
	return n;
}

static int k_parts_finish(uint64_t *ops, char *why, size_t wl)
{
	struct stress_area_hdr *h;
	struct mm_stats st;
	int rc, ok = 0;

	*ops = 0;
	why[0] = 0;
	if (!kp.area)
		return 0;
	for (unsigned k = 0; k < kp.n; k++) {
		const struct partition *p = kp.ids[k] > 0 ? part_get((unsigned)kp.ids[k]) : NULL;

		if (!p)
			continue;
		if (p->state == PART_KILLED && !why[0])
			snprintf(why, wl, "partition %s#%u on hart %u was stopped: %s", p->name, p->id,
				 p->hart, p->report[0] ? p->report : p->kill_reason);
		else if (p->state == PART_EXITED && p->exit_status && !why[0])
			snprintf(why, wl, "partition %s#%u on hart %u exited with status %d "
				 "(user/stress_role.c)", p->name, p->id, p->hart, p->exit_status);
		else if (p->state == PART_EXITED && !p->exit_status)
			ok++;
		else if (p->state != PART_EXITED && p->state != PART_KILLED && !why[0])
			snprintf(why, wl, "partition %s#%u on hart %u never ended", p->name, p->id,
				 p->hart);
	}
	if (mm_lock(kp.area, MM_LOCK_RD) >= 0) {
		h = mm_static(kp.area);
		for (unsigned k = 0; k < kp.n; k++)
			*ops += h->ops[k];
		if ((rc = mm_check(kp.area)) && !why[0])
			snprintf(why, wl, "mm: mm_check of the partitions' area: %s", err_str(rc));
		mm_stats(kp.area, &st);
		if (!why[0] && st.used != kp.used0)
			snprintf(why, wl, "mm: %zu bytes in use in the partitions' area after every "
				 "partition ended (%zu at the start)", st.used, kp.used0);
		if (!why[0] && h->done != (uint32_t)ok)
			snprintf(why, wl, "mm: %u partitions reported their end in the area, %d ended "
				 "cleanly", h->done, ok);
		mm_unlock(kp.area);
	} else if (!why[0])
		snprintf(why, wl, "mm: cannot lock the partitions' area after the run");
	shm_kernel_detach(kp.area);
	kp.area = NULL;
	part_reset();
	if (!why[0] && shm_count() != kp.areas0)
		snprintf(why, wl, "mm: the partitions' area was not destroyed (%u areas, %u before)",
			 shm_count(), kp.areas0);
	return why[0] ? -1 : 0;
}

static _Noreturn void k_abort(void)
{
	kernel_shutdown(true);
}

static int stress_main(const char *arg)
{
	struct stress_plat p = {
		.name = "kernel", .ncpus = harts_online, .now_ns = k_now_ns, .count = k_count,
		.run = smp_run, .mem = k_mem, .mem_free = k_mem_free,
		.va_offset = DIRECT_MAP_BASE, .obj_alloc = kmalloc, .obj_free = kfree,
		.gpmem = &kpmem, .gumm = kumm, .gkmalloc = true,
		.irq_start = k_irq_start, .irq_stop = k_irq_stop, .irq_ok = NULL,
		.cpu_off = k_cpu_off, .cpu_stopped = k_cpu_stopped, .cpu_on = k_cpu_on,
		.cpu_index = k_cpu_index, .print = k_print, .kept_bytes = k_kept,
		.yield = k_yield, .abort_run = k_abort, .parts_start = k_parts_start,
		.parts_lend = k_parts_lend, .parts_live = k_parts_live, .parts_ops = k_parts_ops,
		.parts_abandon = k_parts_abandon, .parts_finish = k_parts_finish,
	};
	const char *opts = strstr(board->bootargs, "stress=");

	(void)arg;
	opts = opts ? opts + strlen("stress=") : "";
	return stress_run(&p, opts);
}

PROGRAM(stress, stress_main, "multi-hart stress of the managers (stress=<options>, docs/STRESS.md)")
