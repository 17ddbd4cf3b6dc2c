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
		.yield = k_yield, .abort_run = k_abort,
	};
	const char *opts = strstr(board->bootargs, "stress=");

	(void)arg;
	opts = opts ? opts + strlen("stress=") : "";
	return stress_run(&p, opts);
}

PROGRAM(stress, stress_main, "multi-hart stress of the managers (stress=<options>, docs/STRESS.md)")
