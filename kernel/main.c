/* main.c - the boot sequence of the boot hart, the banner, and what the
 * bootargs select through the program registry (program.h): the demo by
 * default, test=<suite>[,<suite>...], bench=<name>, run=<program>. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "boot.h"
#include "err.h"
#include "hart.h"
#include "mem.h"
#include "panic.h"
#include "plat.h"
#include "program.h"
#include "riscv.h"
#include "sbi.h"
#include "shm.h"
#include "smp.h"
#include "timer.h"
#include "trap.h"

#define FDT_MAX_SIZE (2u << 20)

static struct board the_board;
const struct board *board = &the_board;
static uint64_t boot_instret_start;

static void run_constructors(void)
{
	extern void (*__init_array_start[])(void), (*__init_array_end[])(void);

	for (void (**f)(void) = __init_array_start; f < __init_array_end; f++)
		(*f)();
}

static uint32_t be32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint32_t fdt_size;

unsigned long boot_probe_u32(unsigned long va);   /* entry.S */

/* A boot that cannot go on: one console line saying why, then System Reset
 * (shutdown, failure); a firmware without SRST leaves the hart halted. */
static _Noreturn void boot_refuse(const char *fmt, ...)
{
	va_list ap;

	printf("kernel: refusing to boot: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	plat_shutdown(true);
	hart_halt();
}

/* The FDT pointer the firmware passed, checked before the parser reads it:
 * 8-byte aligned (the devicetree spec), inside the direct map, readable
 * from its first to its last word (nothing faults), magic right. Returns
 * the header's totalsize. */
static uint32_t check_fdt_pointer(unsigned long pa)
{
	unsigned long magic, size;

	if (pa & 7)
		boot_refuse("device tree pointer 0x%lx not 8-byte aligned", pa);
	if (pa == 0 || pa >= DIRECT_MAP_SIZE - 40)
		boot_refuse("device tree pointer 0x%lx not in RAM", pa);
	if (boot_probe_u32((unsigned long)pa_to_dmap(pa)) == ~0ul ||
	    boot_probe_u32((unsigned long)pa_to_dmap(pa + 4)) == ~0ul)
		boot_refuse("device tree pointer 0x%lx not in RAM (nothing readable there)", pa);
	magic = be32(pa_to_dmap(pa));
	size = be32((const char *)pa_to_dmap(pa) + 4);
	if (magic != 0xd00dfeedu)
		boot_refuse("device tree at 0x%lx: bad header: magic 0x%08lx, want 0xd00dfeed",
			    pa, magic);
	if (size < 40 || size > FDT_MAX_SIZE || pa + size > DIRECT_MAP_SIZE)
		boot_refuse("device tree at 0x%lx: bad header: totalsize %lu", pa, size);
	if (boot_probe_u32((unsigned long)pa_to_dmap((pa + size - 4) & ~3ul)) == ~0ul)
		boot_refuse("device tree at 0x%lx: totalsize %lu runs out of RAM", pa, size);
	return (uint32_t)size;
}

static const struct board_hart *board_hart(unsigned long hartid);

static void parse_board(unsigned long fdt_pa, unsigned long hartid)
{
	const struct board_hart *bh;
	uint32_t size = check_fdt_pointer(fdt_pa);
	bool in_ram = false;
	int rc;

	fdt_size = size;
	rc = board_parse_boot(&the_board, pa_to_dmap(fdt_pa), size, hartid);
	if (rc)
		boot_refuse("device tree at 0x%lx: %s", fdt_pa, the_board.reason);
	for (unsigned i = 0; i < the_board.nmem; i++)
		in_ram |= fdt_pa >= the_board.mem[i].start &&
			  fdt_pa + size - 1 <= the_board.mem[i].end;
	if (!in_ram)
		boot_refuse("device tree at 0x%lx is not in the RAM it describes", fdt_pa);
	bh = board_hart(hartid);
	if (!bh)
		boot_refuse("no description of boot hart %lu in the device tree", hartid);
	if (!bh->usable)
		boot_refuse("boot hart %lu unusable: %s", hartid, bh->reason);
	if (the_board.timebase)
		timebase_hz = the_board.timebase;
}

static bool isa_has(const char *isa, const char *ext)
{
	size_t n = strlen(ext);

	for (const char *p = strchr(isa, '_'); p; p = strchr(p + 1, '_'))
		if (strncmp(p + 1, ext, n) == 0 && (p[1 + n] == '_' || p[1 + n] == 0))
			return true;
	return false;
}

static const struct board_hart *board_hart(unsigned long hartid)
{
	for (unsigned i = 0; i < board->nharts; i++)
		if (board->harts[i].id == hartid)
			return &board->harts[i];
	return NULL;
}

static void setup_hart_facts(struct hart *h)
{
	const struct board_hart *bh = board_hart(h->hartid);

	h->sstc = bh && isa_has(bh->isa, "sstc");
	h->numa_node = bh ? bh->node : -1;
	if (h->numa_node >= 0 && pmem_set_cpu_node(&kpmem, h->index, h->numa_node))
		printf("mem: hart %lu: NUMA node %d unknown to pmem\n", h->hartid, h->numa_node);
}

/* Start every usable hart except this one, up to `want` in all (0 = all).
 * Each gets its stacks mapped first (mem_map_hart_stacks); a hart whose
 * stacks cannot be had is not started. The bootarg nostacks=<n> makes that
 * allocation fail for the n-th hart tried (1: the first after the boot
 * hart; how the tests see that path whichever hart boots). */
static void start_secondaries(unsigned want)
{
	char arg[32];
	unsigned long nostacks = bootarg("nostacks", arg, sizeof(arg)) ?
				 strtoul(arg, NULL, 0) : 0;
	unsigned long tried = 0;

	for (unsigned i = 0; i < board->nharts; i++) {
		const struct board_hart *bh = &board->harts[i];
		unsigned idx = harts_online;
		int rc;

		if (!bh->usable || bh->id == this_hart()->hartid)
			continue;
		if (want && harts_online >= want)
			break;
		if (idx == harts_max) {
			printf("smp: hart %llu not started: the hart table is full (%u; MAX_HARTS %d)\n",
			       (unsigned long long)bh->id, harts_max, MAX_HARTS);
			continue;
		}
		harts[idx].hartid = bh->id;
		harts[idx].index = idx;
		setup_hart_facts(&harts[idx]);
		rc = ++tried == nostacks ? E_NOMEM :
		     mem_map_hart_stacks(idx, harts[idx].numa_node);
		if (rc) {
			printf("smp: hart %llu not started: no memory for its stacks (%u KiB): %s\n",
			       (unsigned long long)bh->id,
			       (KSTACK_SIZE + EMERG_STACK_SIZE + UTRAP_STACK_SIZE) >> 10,
			       err_str(rc));
			continue;
		}
		rc = smp_start_hart(bh->id, idx);
		if (rc == E_TIMEOUT) {
			/* it may still come up as idx: no other hart may have it */
			printf("smp: hart %llu did not come online (%s); starting no more harts\n",
			       (unsigned long long)bh->id, err_str(rc));
			break;
		}
		if (rc) {
			printf("smp: hart %llu did not start: %s\n",
			       (unsigned long long)bh->id, err_str(rc));
			continue;
		}
		harts_online++;
	}
}

static void banner(void)
{
	const struct sbi_info *si = sbi_get_info();

	printf("unikernel memory layer: %s (%s board ops)\n",
	       board->model[0] ? board->model : "unknown board", plat_get()->name);
	printf("sbi: spec %u.%u, %s version 0x%lx\n", si->spec_major, si->spec_minor,
	       sbi_impl_name(si->impl_id), si->impl_version);
	printf("harts online: %u:", harts_online);
	for (unsigned i = 0; i < harts_online; i++)
		printf(" %lu", harts[i].hartid);
	printf(" (boot hart %lu)\n", harts[0].hartid);
	board_print(board);
	mem_banner();
	/* Printing goes through M-mode (SBI console) and is counted too. Under
	 * QEMU the figure is an instruction count only with -icount (make
	 * bench); otherwise QEMU's instret reads host ticks. */
	extern uint64_t smp_wait_instret;
	printf("boot: instret %llu from kernel entry to banner end "
	       "(+%llu polling for harts to start)\n",
	       (unsigned long long)(rdinstret() - boot_instret_start - smp_wait_instret),
	       (unsigned long long)smp_wait_instret);
}

/* The value of key=... in the bootargs, copied into buf; NULL if absent. */
const char *bootarg(const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);

	for (const char *p = board->bootargs; *p;) {
		while (*p == ' ')
			p++;
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " ");
			if (n >= len)
				n = len - 1;
			memcpy(buf, p + kl + 1, n);
			buf[n] = 0;
			return buf;
		}
		p += strcspn(p, " ");
	}
	return NULL;
}

_Noreturn void kernel_shutdown(bool failed)
{
	printf("shutdown: %s\n", failed ? "failure" : "ok");
	plat_shutdown(failed);
	hart_halt();
}

void kernel_boot(unsigned long hartid, unsigned long fdt_pa)
{
	char arg[256];

	boot_instret_start = rdinstret();
	hart_setup_tls(0, hartid);
	harts_online = 1;
	run_constructors();
	sbi_probe(NULL);
	printf("kernel: entered on hart %lu, device tree at 0x%lx, image at 0x%lx\n",
	       hartid, fdt_pa, kernel_phys_base);
	parse_board(fdt_pa, hartid);
	mem_init(board, fdt_pa, fdt_size);
	hart_table_init(mem_cpus);
	shm_init();
	plat_init(board, board->finisher ? mem_map_mmio(board->finisher, 4096) : NULL);
	setup_hart_facts(this_hart());
	trap_init_hart();
	timer_init_hart();
	harts[0].online = true;
	irq_enable();
	start_secondaries(bootarg("harts", arg, sizeof(arg)) ?
			  (unsigned)strtoul(arg, NULL, 10) : 0);
	banner();

	kernel_shutdown(program_run_selected(board->bootargs) != 0);
}
