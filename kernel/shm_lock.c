/* shm_lock.c - the area lock's authority: per area the writer, the
 * readers and a waiting writer, per attachment its hold and since when,
 * all in kernel memory. Partitions reach it through SYS_MM_LOCK /
 * SYS_MM_UNLOCK (shm_sys_lock), the kernel's own handles through the
 * mm_env hooks in shm.c. Nothing here reads the area's contents. */
#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "config.h"
#include "hart.h"
#include "part.h"
#include "riscv.h"
#include "shm_int.h"
#include "syscall_nr.h"

#define SHM_PEND_US 200000u  /* a waiter that stops polling loses its place */
#define SHM_RUN_US  2000u    /* ... and is passed after this without a poll */

/* The kernel handles' hold records; partitions' are in their records. */
struct shm_hold shm_kholds[SHM_KSLOTS];
static unsigned overdue_reports;
/* SHM_HOLD_US and SHM_PEND_US in rdtime ticks (shm_lock_init): no division
 * on the lock path. */
static uint64_t hold_ticks = UINT64_MAX, pend_ticks, run_ticks;

void shm_lock_init(void)
{
	hold_ticks = (uint64_t)SHM_HOLD_US * timebase_hz / 1000000;
	pend_ticks = (uint64_t)SHM_PEND_US * timebase_hz / 1000000;
	run_ticks = (uint64_t)SHM_RUN_US * timebase_hz / 1000000;
}

/* A partition kept an area lock longer than SHM_HOLD_US: stop it. The
 * stop releases its holds (shm_detach_all), so the waiters that timed out
 * get MM_LOCK_OWNER_DIED on their next try. part_kill never waits, so this
 * is safe from the lock path; E_NOENT (it ended meanwhile) and E_BUSY (a
 * stop was already requested) leave nothing to do. */
void shm_holder_overdue(uint32_t part_id, const char *area)
{
	char why[PART_REASON_MAX];

	__atomic_fetch_add(&overdue_reports, 1, __ATOMIC_RELAXED);
	snprintf(why, sizeof(why), "held the lock of area '%s' longer than %u ms",
		 area, SHM_HOLD_US / 1000);
	(void)part_kill(part_id, why);
}

unsigned shm_overdue_count(void)
{
	return __atomic_load_n(&overdue_reports, __ATOMIC_RELAXED);
}

/* The holder's hart has handled SHM_HOLD_US worth of timer ticks since the
 * hold began: it ran that long. Guest time alone is not enough under QEMU,
 * where a loaded host may not run a hart's thread for seconds (a skipped
 * stretch costs that hart one tick, timer.c). */
static bool ran_long(const struct shm_hold *hd)
{
	uint64_t t = __atomic_load_n(&harts[hd->hart].timer_ticks, __ATOMIC_RELAXED);

	return t - hd->ticks >= (uint64_t)SHM_HOLD_US * TIMER_HZ / 1000000;
}

/* A hold of a that has lasted longer than SHM_HOLD_US and was not reported
 * yet: marks it reported and returns its partition id (kernel holds are
 * not reported: 0). Called with a->lk held. */
static uint32_t find_overdue(struct shm_area *a, uint64_t now, bool *any)
{
	*any = false;
	for (struct shm_hold *hd = a->holds; hd; hd = hd->anext) {
		/* since may be a hair ahead of now: another hart's clock */
		if (!hd->part_id || hd->area != a || now <= hd->since ||
		    now - hd->since <= hold_ticks || !ran_long(hd))
			continue;
		*any = true;
		if (!hd->reported) {
			hd->reported = true;
			return hd->part_id;
		}
	}
	return 0;
}

void shm_hold_link(struct shm_area *a, struct shm_hold *hd, uint32_t id)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);

	memset(hd, 0, sizeof(*hd));
	hd->part_id = id;
	hd->anext = a->holds;
	a->holds = hd;
	spin_unlock_irqrestore(&a->lk, fl);
}

void shm_hold_unlink(struct shm_area *a, struct shm_hold *hd)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	struct shm_hold **pp = &a->holds;

	while (*pp && *pp != hd)
		pp = &(*pp)->anext;
	if (*pp)
		*pp = hd->anext;
	hd->anext = NULL;
	spin_unlock_irqrestore(&a->lk, fl);
}

/* A waiter stamped at t is fresh: it polled within SHM_PEND_US. */
static bool fresh(uint64_t t, uint64_t now)
{
	return now <= t || now - t < pend_ticks;
}

static void unwait(struct shm_area *a, struct shm_hold *w)
{
	w->warea = NULL;
	w->wticket = 0;
	a->nwait--;
}

/* Is some fresh waiter of a ahead of ticket t (any mode, or only writers
 * when !all)? Stale waiters (gave up, stopped polling) are dropped on the
 * way. Called with a->lk held; the scan runs only while there are
 * waiters. */
static bool waiter_ahead(struct shm_area *a, uint32_t t, bool all, uint64_t now)
{
	bool ahead = false;

	for (struct shm_hold *w = a->holds; w && a->nwait; w = w->anext) {
		if (w->warea != a)
			continue;
		if (!fresh(w->wpoll, now))
			unwait(a, w);
		else if (w->wticket < t && (all || w->wmode == MM_LOCK_RW) &&
			 (now <= w->wpoll || now - w->wpoll < run_ticks))
			ahead = true;   /* polling now: its turn; one that is not
					   running (its hart's host thread is
					   not) keeps its place but is passed */
	}
	return ahead;
}

/* One attempt: take a's lock in mode for the attachment whose hold record
 * is hd, or say why not. Waiters are served in the order they first
 * asked (a ticket each, kept while they poll): readers go together
 * unless a writer asked before them, a writer waits for everyone ahead. */
int shm_try_lock(struct shm_area *a, struct shm_hold *hd, uint32_t key, int mode)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	uint64_t now = rdtime();       /* under the lock: holds' times are ordered */
	uint32_t late = 0, t;
	bool any = false, free;
	int rc = E_BUSY;

	(void)key;
	if (hd->area) {
		spin_unlock_irqrestore(&a->lk, fl);
		return E_DENIED;
	}
	if (hd->warea != a) {
		hd->warea = NULL;            /* forgotten (shm_forget): no place */
		hd->wticket = 0;
	}
	t = hd->wticket ? hd->wticket : UINT32_MAX;
	free = mode == MM_LOCK_RD ? !a->writer : !a->writer && !a->readers;
	if (free && !(a->nwait && waiter_ahead(a, t, mode == MM_LOCK_RW, now))) {
		if (hd->wticket)
			unwait(a, hd);
		if (mode == MM_LOCK_RD)
			a->readers++;
		else
			a->writer = key;
		rc = 0;
	} else {
		if (!hd->wticket) {
			hd->warea = a;
			hd->wticket = ++a->tickets;
			hd->wmode = mode;
			a->nwait++;
		}
		hd->wpoll = now;
		late = find_overdue(a, now, &any);
		if (any)
			rc = E_TIMEOUT;
	}
	if (rc == 0) {
		struct hart *h = this_hart();

		hd->area = a;
		hd->mode = mode;
		hd->since = now;
		hd->ticks = h->timer_ticks;
		hd->hart = h->index;
		hd->reported = false;
		if (a->died) {
			a->died = false;
			rc = MM_LOCK_OWNER_DIED;
		}
	}
	spin_unlock_irqrestore(&a->lk, fl);
	if (late)
		shm_holder_overdue(late, a->name);
	return rc;
}

/* Drop the hold hd of a. `died`: its holder is gone, tell the next locker. */
int shm_drop_hold(struct shm_area *a, struct shm_hold *hd, uint32_t key, bool died)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);
	int rc = 0;

	if (hd->area != a)
		rc = E_INVAL;
	else if (hd->mode == MM_LOCK_RW)
		a->writer = 0;
	else
		a->readers--;
	if (!rc) {
		hd->area = NULL;
		hd->mode = 0;
		a->died |= died;
	}
	if (died && hd->warea == a)
		unwait(a, hd);               /* a dead waiter keeps no place */
	spin_unlock_irqrestore(&a->lk, fl);
	if (!rc)
		shm_wake_lockers(a);         /* nappers of SYS_MM_LOCK try again */
	return rc;
}

void shm_forget(struct shm_area *a, struct shm_hold *hd)
{
	unsigned long fl = spin_lock_irqsave(&a->lk);

	if (hd->warea == a)
		unwait(a, hd);
	spin_unlock_irqrestore(&a->lk, fl);
}

long shm_sys_lock(struct partition *p, uintptr_t base, int mode)
{
	struct part_attach *at = shm_att_of(p, base);

	if (!at)
		return E_NOENT;
	if (mode != MM_LOCK_RD && mode != MM_LOCK_RW)
		return E_INVAL;
	return shm_try_lock(at->area, shm_phold(p, (unsigned)(at - p->att)), shm_pkey(p, at), mode);
}

long shm_sys_unlock(struct partition *p, uintptr_t base)
{
	struct part_attach *at = shm_att_of(p, base);

	if (!at)
		return E_NOENT;
	return shm_drop_hold(at->area, shm_phold(p, (unsigned)(at - p->att)), shm_pkey(p, at), false);
}
