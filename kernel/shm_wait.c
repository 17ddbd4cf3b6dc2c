/* shm_wait.c - mm_wait / mm_wake: a partition sleeps while a 32-bit word
 * of a shared area still holds the value it expects, until a peer wakes
 * it or its deadline passes.
 *
 * The queues are the kernel's: each area keeps its sleepers (struct
 * part_wait, inside each struct partition) in one list under its wq_lk,
 * oldest first, keyed by the word's offset. The word itself is read once,
 * through the direct map, under wq_lk, after the offset was checked
 * against the kernel's own size of the area: whatever a partition writes
 * into the word or the area, nothing here loops on it or follows it.
 *
 * No lost wake: the waiter compares the word and queues itself under
 * wq_lk; a waker changes the word first, then takes wq_lk to dequeue. So
 * either the waiter sees the new value (E_BUSY at once) or the waker sees
 * the waiter.
 *
 * The same queues let SYS_MM_LOCK nap instead of making the partition
 * poll: a busy lock queues the caller under SHM_LOCK_KEY (no word has that
 * offset) for at most SHM_LOCK_NAP_US, every unlock of the area wakes its
 * nappers, and the call returns E_BUSY as before (the runtime tries again).
 *
 * Lock order: area lk -> wq_lk; wq_lk is a leaf (ipi_send happens after
 * it is dropped).
 */
#include <string.h>

#include "boot.h"
#include "hart.h"
#include "part.h"
#include "riscv.h"
#include "shm_int.h"
#include "smp.h"
#include "syscall_nr.h"

/* Check an offset of a word in a: 4-aligned and inside the pages the
 * kernel has backed (the area's current size, not the header's). */
static long word_ok(struct shm_area *a, uint64_t off)
{
	size_t size = shm_npages(a) * ENV_PAGE_SIZE;

	if (off & 3)
		return E_ALIGN;
	if (off >= size || size - off < sizeof(uint32_t))
		return E_RANGE;
	return 0;
}

static void enqueue(struct shm_area *a, struct part_wait *w)
{
	w->next = NULL;
	w->prev = a->wq_tail;
	if (a->wq_tail)
		a->wq_tail->next = w;
	else
		a->wq_head = w;
	a->wq_tail = w;
	a->nwaiters++;
}

static void dequeue(struct shm_area *a, struct part_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		a->wq_head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		a->wq_tail = w->prev;
	w->next = w->prev = NULL;
	a->nwaiters--;
}

/* Queue p on key `off` of a until `us` from now; wq_lk held. */
static void queue_locked(struct shm_area *a, struct partition *p, uint32_t off, uint64_t us,
			 bool nap)
{
	p->wait.area = a;
	p->wait.off = off;
	p->wait.nap = nap;
	p->wait.deadline = rdtime() + us * timebase_hz / 1000000;
	__atomic_store_n(&p->wait.woken, false, __ATOMIC_RELAXED);
	enqueue(a, &p->wait);
}

long shm_sys_wait(struct partition *p, uintptr_t base, uint64_t off, uint32_t expected,
		  uint64_t timeout_us)
{
	struct part_attach *at = shm_att_of(p, base);
	struct shm_area *a;
	unsigned long fl;
	long rc;

	if (!at)
		return E_NOENT;
	a = at->area;
	if ((rc = word_ok(a, off)))
		return rc;
	if (timeout_us == 0)
		return E_INVAL;
	if (timeout_us > MM_WAIT_MAX_US)
		return E_RANGE;
	/* asleep with the area's lock held, it would stall every peer */
	if (shm_phold(p, (unsigned)(at - p->att))->area == a)
		return E_DENIED;
	fl = spin_lock_irqsave(&a->wq_lk);
	if (*shm_word(a, off) != expected) {
		rc = E_BUSY;
	} else {
		queue_locked(a, p, (uint32_t)off, timeout_us, false);
		rc = SHM_WAIT_QUEUED;
	}
	spin_unlock_irqrestore(&a->wq_lk, fl);
	return rc;
}

/* Take up to n sleepers on key off of a off its queue, oldest first, and
 * tell their harts; how many. */
static long wake_key(struct shm_area *a, uint64_t off, uint64_t n)
{
	uint64_t harts_to_tell = 0;
	unsigned long fl;
	long woken = 0;

	fl = spin_lock_irqsave(&a->wq_lk);
	for (struct part_wait *w = a->wq_head, *next; w && (uint64_t)woken < n; w = next) {
		struct partition *q = (struct partition *)((uint8_t *)w -
							   offsetof(struct partition, wait));

		next = w->next;
		if (w->off != off)
			continue;
		dequeue(a, w);
		/* read before the flag: once woken, q may run and end */
		harts_to_tell |= 1ull << q->hart;
		__atomic_store_n(&w->woken, true, __ATOMIC_RELEASE);
		woken++;
	}
	spin_unlock_irqrestore(&a->wq_lk, fl);
	harts_to_tell &= ~(1ull << this_hart()->index);   /* ours looks at its next switch */
	for (unsigned h = 0; harts_to_tell; h++, harts_to_tell >>= 1)
		if (harts_to_tell & 1)
			ipi_send(h);
	return woken;
}

long shm_sys_wake(struct partition *p, uintptr_t base, uint64_t off, uint64_t n)
{
	struct part_attach *at = shm_att_of(p, base);
	long rc;

	if (!at)
		return E_NOENT;
	if ((rc = word_ok(at->area, off)))
		return rc;
	if (n == 0)
		return E_INVAL;
	p->wakes++;
	return wake_key(at->area, off, n);
}

long shm_sys_lock_or_nap(struct partition *p, uintptr_t base, int mode)
{
	long rc = shm_sys_lock(p, base, mode);
	struct shm_area *a;
	unsigned long fl;

	if (rc != E_BUSY)
		return rc;
	a = shm_att_of(p, base)->area;
	fl = spin_lock_irqsave(&a->wq_lk);
	queue_locked(a, p, SHM_LOCK_KEY, SHM_LOCK_NAP_US, true);
	spin_unlock_irqrestore(&a->wq_lk, fl);
	/* an unlock between the first attempt and the queueing woke nobody:
	 * try once more, now that an unlock would wake us */
	rc = shm_sys_lock(p, base, mode);
	if (rc != E_BUSY) {
		shm_wait_finish(p);
		return rc;
	}
	return SHM_WAIT_QUEUED;
}

void shm_wake_lockers_slow(struct shm_area *a)
{
	wake_key(a, SHM_LOCK_KEY, UINT64_MAX);
}

int shm_wait_finish(struct partition *p)
{
	struct shm_area *a = p->wait.area;
	unsigned long fl;
	int rc = 0;

	if (!a)
		return 0;
	fl = spin_lock_irqsave(&a->wq_lk);
	if (!__atomic_load_n(&p->wait.woken, __ATOMIC_ACQUIRE)) {
		dequeue(a, &p->wait);      /* still queued: the deadline won */
		rc = E_TIMEOUT;
	}
	spin_unlock_irqrestore(&a->wq_lk, fl);
	p->wait.area = NULL;
	return p->wait.nap ? E_BUSY : rc;   /* a lock nap: try the lock again */
}
