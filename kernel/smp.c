/* smp.c - secondary hart bring-up through SBI HSM, IPIs, and handing work to
 * harts (what ktest_parallel and the demos use). */
#include <stdio.h>

#include "boot.h"
#include "err.h"
#include "hart.h"
#include "kmalloc.h"
#include "mem.h"
#include "panic.h"
#include "riscv.h"
#include "sbi.h"
#include "timer.h"
#include "trap.h"

/* A hart should report online within START_TIMEOUT_MS. Past it, a hart that
 * SBI HSM still calls started or start-pending is on its way (a loaded host,
 * or an emulator running many harts on few cores, can take that long): the
 * wait goes on up to START_GIVEUP_MS, since only a hart that HSM calls
 * stopped will never run and so may have its dense index given to another. */
#define START_TIMEOUT_MS 2000
#define START_GIVEUP_MS  120000

/* Instructions the boot hart spent polling for harts to come online: the
 * boot-cost figure leaves them out, since they measure QEMU's scheduling. */
uint64_t smp_wait_instret;

void ipi_send(unsigned index)
{
	/* hart_mask bit 0 with hart_mask_base = hartid names exactly one hart */
	sbi_send_ipi(1, harts[index].hartid);
}

void ipi_handle(void)
{
	struct hart *h = this_hart();

	if (panicking)
		hart_halt();
	h->ipis++;
}

void hart_idle_loop(void)
{
	struct hart *h = this_hart();

	for (;;) {
		mem_safe_point();   /* the kmalloc reap the tick asked for */
		irq_save();
		if (__atomic_load_n(&h->work_seq, __ATOMIC_ACQUIRE) != h->done_seq) {
			hart_work_fn fn = h->work;
			irq_enable();
			fn(h->work_i, h->work_arg);
			__atomic_store_n(&h->done_seq, h->work_seq, __ATOMIC_RELEASE);
			continue;
		}
		/* wfi wakes on a pending enabled interrupt even with SIE off,
		 * so work posted after the check above is never missed. */
		wfi();
		irq_enable();
	}
}

void smp_run(unsigned n, hart_work_fn fn, void *arg)
{
	struct hart *self = this_hart();

	if (self->index != 0)
		panic("smp_run: called on hart index %u, not the boot hart", self->index);
	if (n > harts_online)
		panic("smp_run: %u workers but %u harts online", n, harts_online);
	for (unsigned i = 1; i < n; i++) {
		struct hart *h = &harts[i];
		h->work = fn;
		h->work_arg = arg;
		h->work_i = i;
		__atomic_store_n(&h->work_seq, h->work_seq + 1, __ATOMIC_RELEASE);
		ipi_send(i);
	}
	if (n > 0)
		fn(0, arg);
	for (unsigned i = 1; i < n; i++)
		while (__atomic_load_n(&harts[i].done_seq, __ATOMIC_ACQUIRE) !=
		       harts[i].work_seq)
			env_cpu_relax();
}

/* Called from entry.S on a secondary hart, on its own stack, paging on. */
void secondary_boot(unsigned long hartid, unsigned long index)
{
	struct hart *h;

	mem_init_hart();
	hart_setup_tls((unsigned)index, hartid);
	h = this_hart();
	trap_init_hart();
	timer_init_hart();
	mem_init_hart_late();
	__atomic_store_n(&h->online, true, __ATOMIC_RELEASE);
	irq_enable();
	hart_idle_loop();
}

/* entry.S: a hart that lands in _start (the HSM start race) scans these
 * for its hart id; the slot is the dense index, never the id. */
struct start_slot {
	uint64_t hartid;
	uint64_t index1;        /* index + 1; 0 while the slot is being written */
};
extern struct start_slot start_mailbox[MAX_HARTS];

/* Start one hart as dense index `index`; 0 when it reports online.
 * E_FAILED: HSM says it stopped without coming online (the index may be
 * given to another hart); E_TIMEOUT: it did not come online within
 * START_GIVEUP_MS yet may still run as `index` (give that index to no one). */
int smp_start_hart(unsigned long hartid, unsigned index)
{
	extern char _secondary_start[];
	struct hart *h = &harts[index];
	uint64_t deadline, giveup, wait_start;
	int rc;

	h->hartid = hartid;
	h->online = false;
	/* For a hart that lands in _start: close the slot, name the hart,
	 * then open it (release: the id is visible before the index). */
	__atomic_store_n(&start_mailbox[index].index1, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&start_mailbox[index].hartid, (uint64_t)hartid, __ATOMIC_RELAXED);
	__atomic_store_n(&start_mailbox[index].index1, (uint64_t)index + 1, __ATOMIC_RELEASE);
	rc = sbi_hart_start(hartid, kva_to_pa(_secondary_start), index);
	if (rc)
		return rc;
	deadline = rdtime() + timebase_hz * START_TIMEOUT_MS / 1000;
	giveup = rdtime() + timebase_hz * START_GIVEUP_MS / 1000;
	wait_start = rdinstret();
	while (!__atomic_load_n(&h->online, __ATOMIC_ACQUIRE)) {
		if (rdtime() > deadline) {
			int st = sbi_hart_get_status(hartid);

			if (st == SBI_HSM_STOPPED) {
				rc = E_FAILED;    /* never ran: the index is free again */
				break;
			}
			if (rdtime() > giveup) {
				rc = E_TIMEOUT;   /* may still run as `index`: keep it */
				break;
			}
			deadline = rdtime() + timebase_hz / 10;   /* ask again in 100 ms */
		}
	}
	smp_wait_instret += rdinstret() - wait_start;
	return rc;
}

/* Hot-plug (the stress tool's onoff=): stop the calling hart through SBI
 * HSM hart_stop. The caller has given back its per-CPU memory first
 * (kmalloc's cache and remote frees: kmalloc_drain here). The
 * hart reads as offline at once; smp_start_hart(h->hartid, h->index)
 * starts it again at secondary_boot, whose idle loop then runs any work
 * still posted to it (an smp_run job it left unfinished runs again from
 * its start). Not for the boot hart (index 0). Returns only when the
 * firmware refused (the error as an E_* code). */
int smp_stop_self(void)
{
	struct hart *h = this_hart();
	int rc;

	if (h->index == 0)
		return E_INVAL;
	kmalloc_drain();   /* nothing of the heap stays stranded on a stopped hart */
	irq_save();
	__atomic_store_n(&h->online, false, __ATOMIC_RELEASE);
	rc = sbi_hart_stop();
	__atomic_store_n(&h->online, true, __ATOMIC_RELEASE);
	irq_enable();
	return rc;
}
