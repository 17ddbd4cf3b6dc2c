/* timer.c - a periodic tick on every hart: Sstc's stimecmp when the hart's
 * ISA string lists it, else the SBI timer call. */
#include "boot.h"
#include "hart.h"
#include "riscv.h"
#include "sbi.h"

uint64_t timebase_hz = 10000000;   /* replaced from the device tree */

/* Hooks run on every tick (reapers, stress tests); fixed slots. */
#define MAX_TICK_HOOKS 4
static void (*volatile tick_hooks[MAX_TICK_HOOKS])(void);

int timer_add_hook(void (*fn)(void))
{
	for (int i = 0; i < MAX_TICK_HOOKS; i++) {
		void (*expect)(void) = 0;
		if (__atomic_compare_exchange_n(&tick_hooks[i], &expect, fn, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return 0;
	}
	return -1;
}

void timer_remove_hook(void (*fn)(void))
{
	for (int i = 0; i < MAX_TICK_HOOKS; i++)
		if (tick_hooks[i] == fn)
			tick_hooks[i] = 0;
}

static void arm(struct hart *h, uint64_t when)
{
	if (h->sstc)
		__asm__ volatile("csrw %0, %1" :: "i"(CSR_STIMECMP), "r"(when));
	else
		sbi_set_timer(when);
}

void timer_init_hart(void)
{
	struct hart *h = this_hart();

	h->next_tick = rdtime() + timebase_hz / TIMER_HZ;
	arm(h, h->next_tick);
}

void timer_tick(void)
{
	struct hart *h = this_hart();
	uint64_t now = rdtime();

	h->timer_ticks++;
	do
		h->next_tick += timebase_hz / TIMER_HZ;
	while (h->next_tick <= now);
	arm(h, h->next_tick);
	for (int i = 0; i < MAX_TICK_HOOKS; i++) {
		void (*fn)(void) = tick_hooks[i];
		if (fn)
			fn();
	}
}

uint64_t time_us(void)
{
	return rdtime() * 1000000 / timebase_hz;
}
