/* smp_test.c - in-kernel suites of the foundation: every usable hart is
 * online and runs code, IPIs reach every hart, the timer fires on every
 * hart, and a deliberate illegal instruction panics (manual: the harness
 * boots `test=panic` on its own and checks the report). */
#include <stdio.h>

#include "board.h"
#include "hart.h"
#include "kernel.h"
#include "ktest.h"
#include "riscv.h"

static void record_hart(unsigned i, void *arg)
{
	unsigned long *seen = arg;
	seen[i] = this_hart()->hartid + 1;
}

KTEST(smp, every_usable_hart_online_and_runs_code)
{
	unsigned long seen[MAX_HARTS] = { 0 };
	unsigned usable = 0;

	for (unsigned i = 0; i < board->nharts; i++)
		usable += board->harts[i].usable;
	EXPECT_EQ(harts_online, usable);
	ktest_parallel(harts_online, record_hart, seen);
	for (unsigned i = 0; i < harts_online; i++) {
		EXPECT_EQ(seen[i], harts[i].hartid + 1);
		EXPECT(harts[i].online);
	}
	/* every online hart is a usable hart of the board, each once */
	for (unsigned i = 0; i < harts_online; i++) {
		bool found = false;
		for (unsigned j = 0; j < board->nharts; j++)
			if (board->harts[j].id == harts[i].hartid)
				found = board->harts[j].usable;
		EXPECT(found);
		for (unsigned k = i + 1; k < harts_online; k++)
			EXPECT_NE(harts[i].hartid, harts[k].hartid);
	}
}

/* The bound of a wait for an event that should come within `s` seconds on
 * one hart: on an emulator, each of n harts may get 1/n of a host core or
 * less, so guest time runs ahead of the harts by up to that factor. The
 * wait ends at the event; the bound only turns a lost event into a failure
 * instead of a hang. */
static uint64_t scaled_deadline(unsigned s)
{
	return rdtime() + (uint64_t)s * timebase_hz * (harts_online < 4 ? 1 : harts_online / 4);
}

KTEST(smp, ipi_reaches_every_hart)
{
	uint64_t before[MAX_HARTS];
	uint64_t deadline;

	for (unsigned i = 1; i < harts_online; i++) {
		before[i] = harts[i].ipis;
		ipi_send(i);
	}
	deadline = scaled_deadline(1);
	for (unsigned i = 1; i < harts_online; i++) {
		while (harts[i].ipis == before[i] && rdtime() < deadline)
			env_cpu_relax();
		EXPECT_GE(harts[i].ipis, before[i] + 1);
	}
}

static void wait_ticks(unsigned i, void *arg)
{
	volatile int *ok = arg;
	struct hart *h = this_hart();
	uint64_t t0 = h->timer_ticks;
	uint64_t deadline = scaled_deadline(2);   /* 3 ticks are 30 ms */

	while (h->timer_ticks < t0 + 3 && rdtime() < deadline)
		env_cpu_relax();
	ok[i] = h->timer_ticks >= t0 + 3;
}

KTEST(smp, timer_fires_on_every_hart)
{
	int ok[MAX_HARTS] = { 0 };

	ktest_parallel(harts_online, wait_ticks, ok);
	for (unsigned i = 0; i < harts_online; i++)
		EXPECT(ok[i]);
}

KTEST(smp, expected_fault_is_reported_not_panicked)
{
	trap_expect_fault();
	/* csrw cycle, zero: a 4-byte instruction that is illegal (cycle is
	 * read-only), so the resume skips exactly it */
	__asm__ volatile(".word 0xc0001073" ::: "memory");
	EXPECT_EQ(trap_expected_fault_cause(), EXC_ILLEGAL_INST);
}

KTEST_MANUAL(panic, illegal_instruction)
{
	printf("panic test: executing an illegal instruction\n");
	__asm__ volatile(".word 0xc0001073" ::: "memory");
	EXPECT(0);   /* not reached */
}
