/* panic.c - the report of a broken invariant or fatal trap, then every hart
 * stops and the machine shuts down as failed. */
#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "console.h"
#include "hart.h"
#include "riscv.h"
#include "smp.h"
#include "trap.h"

volatile bool panicking;
static uint32_t panic_owner;   /* word-sized: rv64 has no byte AMOs */

static const char *const reg_names[32] = {
	"zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0",
	"a1", "a2", "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5",
	"s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
};

_Noreturn void hart_halt(void)
{
	irq_save();
	csr_write(sie, 0);
	for (;;)
		wfi();
}

static void dump_frame(const struct trap_frame *tf)
{
	printf("sepc 0x%016lx stval 0x%016lx scause 0x%016lx sstatus 0x%016lx\n",
	       tf->sepc, tf->stval, tf->scause, tf->sstatus);
	for (int i = 0; i < 32; i += 4)
		printf("%4s 0x%016lx %4s 0x%016lx %4s 0x%016lx %4s 0x%016lx\n",
		       reg_names[i], tf->regs[i], reg_names[i + 1], tf->regs[i + 1],
		       reg_names[i + 2], tf->regs[i + 2], reg_names[i + 3],
		       tf->regs[i + 3]);
}

_Noreturn void vpanic(const struct trap_frame *tf, const char *fmt, va_list ap)
{
	struct hart *h = this_hart();

	irq_save();
	/* A second panic (on this or another hart) only stops its hart. */
	if (__atomic_exchange_n(&panic_owner, 1, __ATOMIC_ACQ_REL))
		hart_halt();
	panicking = true;
	/* Stop the other harts: they halt in their IPI handler. */
	for (unsigned i = 0; i < harts_online; i++)
		if (i != h->index && harts[i].online)
			ipi_send(i);
	console_discard_line();
	printf("panic: hart %lu: ", h->hartid);
	vprintf(fmt, ap);
	printf("\n");
	if (tf)
		dump_frame(tf);
	printf("panic: stopping all harts\n");
	kernel_shutdown(true);
}

_Noreturn void panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vpanic(NULL, fmt, ap);
}

_Noreturn void panic_trap(const struct trap_frame *tf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vpanic(tf, fmt, ap);
}
