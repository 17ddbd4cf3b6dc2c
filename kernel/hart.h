/* hart.h - per-hart data, reached through tp.
 *
 * tp points at the hart's TLS block, which lives inside its struct hart, so
 * this_hart() is one subtraction and C `__thread` variables (picolibc's
 * errno among them) are per hart too. Hart ids come from the device tree and
 * are sparse; `index` is the dense number used for per-CPU arrays.
 */
#ifndef HART_H
#define HART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "env.h"

struct trap_frame;

typedef void (*hart_work_fn)(unsigned i, void *arg);

struct hart {
	unsigned long hartid;
	unsigned index;
	volatile bool online;
	bool sstc;                      /* timer through stimecmp */
	int numa_node;                  /* -1 when the board has none */

	/* counters read by tests and the banner */
	volatile uint64_t timer_ticks;
	volatile uint64_t ipis;
	uint64_t next_tick;

	/* work handed to this hart (ktest_parallel, demos) */
	hart_work_fn volatile work;
	void *work_arg;
	unsigned work_i;
	volatile unsigned work_seq, done_seq;

	unsigned long utrap_top;        /* user-trap stack; *utrap_top = kernel tp */
	/* Physical address of this hart's stack-window slot (hart_stack_pa),
	 * set by mem_map_hart_stacks; 0 for the boot hart (stacks in BSS). */
	unsigned long stacks_pa;

	unsigned trap_depth;

	/* Read by entry.S below tp: see HART_TP_* in config.h. */
	_Alignas(64) unsigned long stack_lo;
	unsigned long emerg_sp;
	unsigned long cpu;              /* == index; read by env_cpu() in mm/env.h */
	void *env_slots[ENV_NSLOTS];    /* env_slot_get() in mm/env.h */
	unsigned long tp_pad[5 - ENV_NSLOTS];

	_Alignas(64) unsigned char tls[HART_TLS_MAX];
};

_Static_assert(__builtin_offsetof(struct hart, stack_lo) - __builtin_offsetof(struct hart, tls) ==
	       (unsigned long)HART_TP_STACK_LO, "hart.h: HART_TP_STACK_LO");
_Static_assert(__builtin_offsetof(struct hart, emerg_sp) - __builtin_offsetof(struct hart, tls) ==
	       (unsigned long)HART_TP_EMERG_SP, "hart.h: HART_TP_EMERG_SP");
_Static_assert(__builtin_offsetof(struct hart, cpu) - __builtin_offsetof(struct hart, tls) ==
	       (unsigned long)ENV_KERNEL_TP_CPU, "hart.h: ENV_KERNEL_TP_CPU");
_Static_assert(__builtin_offsetof(struct hart, env_slots) - __builtin_offsetof(struct hart, tls) ==
	       (unsigned long)ENV_KERNEL_TP_SLOTS, "hart.h: ENV_KERNEL_TP_SLOTS");

/* Stacks of hart index i. The boot hart's (index 0) are in the image's BSS
 * (entry.S); every other index has a slot of the stack window (memlayout.h
 * KSTACK_WINDOW, config.h HSTACK_*), mapped by mem_map_hart_stacks before
 * the hart is started. The addresses are fixed per index; the memory
 * behind them exists only for the harts started. */
extern char hart0_stack[], hart0_emerg[], hart0_utrap[];
static inline uintptr_t hart_slot(unsigned i)
{
	return KSTACK_WINDOW + (uintptr_t)i * HSTACK_SLOT;
}
/* Kernel stack: [hart_stack_lo(i), +KSTACK_SIZE), its guard page just below. */
static inline uintptr_t hart_stack_lo(unsigned i)
{
	return i == 0 ? (uintptr_t)hart0_stack + KSTACK_GUARD : hart_slot(i) + HSTACK_KSTACK;
}
/* Emergency stack: [hart_emerg_lo(i), +EMERG_STACK_SIZE). */
static inline uintptr_t hart_emerg_lo(unsigned i)
{
	return i == 0 ? (uintptr_t)hart0_emerg : hart_slot(i) + HSTACK_EMERG;
}
/* U-trap stack: [hart_utrap_lo(i), +UTRAP_STACK_SIZE). */
static inline uintptr_t hart_utrap_lo(unsigned i)
{
	return i == 0 ? (uintptr_t)hart0_utrap : hart_slot(i) + HSTACK_UTRAP;
}

/* The harts' table, [harts_max]: the boot hart's struct alone (in BSS)
 * until hart_table_init makes one for the harts the board has. */
extern struct hart *harts;
extern unsigned harts_max;

/* Physical address of va in a stack-window slot (for SBI calls given a
 * buffer on a secondary hart's stack), or 0 when va is not in a mapped one. */
static inline unsigned long hart_stack_pa(uintptr_t va)
{
	uintptr_t i = (va - KSTACK_WINDOW) / HSTACK_SLOT;

	if (va < KSTACK_WINDOW || i >= harts_max || i == 0 || !harts[i].stacks_pa)
		return 0;
	return harts[i].stacks_pa + (va - hart_slot((unsigned)i));
}
extern unsigned harts_online;

static inline struct hart *this_hart(void)
{
	unsigned long tp;
	__asm__("mv %0, tp" : "=r"(tp));
	return (struct hart *)(tp - offsetof(struct hart, tls));
}

/* Set up the TLS block of harts[index] and point tp at it. */
void hart_setup_tls(unsigned index, unsigned long hartid);
/* On the boot hart, interrupts off, after mem_init: move harts[] to pmem
 * pages holding n structs (the boot hart's copied, tp moved onto the
 * copy; a caller must not keep a this_hart() or TLS address across the
 * call). Without the memory the table stays the boot hart's alone
 * (harts_max 1: no other hart is started), with a console line. */
void hart_table_init(unsigned n);
/* Dense index of a hart id, or -1. */
int hart_index_of(unsigned long hartid);

#endif
