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

	/* console line being assembled */
	unsigned linelen;
	char line[240];

	unsigned trap_depth;
	bool expect_fault;              /* a test wants the next fault reported, not panicked */
	volatile unsigned long fault_cause;

	_Alignas(64) unsigned char tls[HART_TLS_MAX];
};

extern struct hart harts[MAX_HARTS];
extern unsigned harts_online;

static inline struct hart *this_hart(void)
{
	unsigned long tp;
	__asm__("mv %0, tp" : "=r"(tp));
	return (struct hart *)(tp - offsetof(struct hart, tls));
}

/* Set up the TLS block of harts[index] and point tp at it. */
void hart_setup_tls(unsigned index, unsigned long hartid);
/* Dense index of a hart id, or -1. */
int hart_index_of(unsigned long hartid);

#endif
