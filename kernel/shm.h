/* shm.h - the kernel's registry of shared mm areas: named, reference
 * counted, backed by pages that grow up to each area's maximum, mapped at a
 * different address in each attaching partition and contiguously in the
 * kernel's own window. The area's contents are the mm library's business
 * (mm/mm.h); the kernel trusts none of them and keeps sizes itself. */
#ifndef KERNEL_SHM_H
#define KERNEL_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "memlayout.h"
#include "mm.h"
#include "part.h"
#include "syscall_nr.h"

#define SHM_MAX_SIZE   SHM_KWINDOW_SLOT   /* an area's maximum: one kernel window slot */
#define SHM_PART_AREAS 4     /* live areas one partition may have created */
#define SHM_KSLOTS     8     /* areas the kernel attaches at once (its window) */
/* Records are kmalloc'ed; this bound is sanity only: every partition at
 * its limit plus the kernel at its own still fit, so no partition can
 * make an area call fail for another. */
#define SHM_MAX_AREAS  (PART_MAX_LIVE * SHM_PART_AREAS + SHM_KSLOTS)
/* The kernel's window (SHM_KWINDOW) and the partitions' attach addresses
 * (USER_SHM_*): include/memlayout.h. */

/* System calls (see syscall_nr.h); negative enum err on failure.
 * attach: E_INVAL (empty name, initial 0 or > max, max > SHM_MAX_SIZE),
 * E_BUSY (PART_MAX_ATTACH attachments, or SHM_PART_AREAS areas created and
 * alive), E_NOMEM (the quota: creating charges the whole max plus its
 * page-address tables and record, attaching the page tables its mapping
 * may need; or no memory). Nothing is left attached or charged then. */
long shm_sys_attach(struct partition *p, const char *name, size_t initial, size_t max,
		    uint64_t *base, uint64_t *mapped, uint64_t *created);
long shm_sys_grow(struct partition *p, uintptr_t base, size_t new_size);
long shm_sys_map(struct partition *p, uintptr_t base, size_t size);
long shm_sys_detach(struct partition *p, uintptr_t base);
/* The area lock, kept in kernel memory (the lock word inside the area is
 * not read): one attempt, never waits. 0 or MM_LOCK_OWNER_DIED (held:
 * a holder died since the last acquisition), E_BUSY (others hold it, or a
 * writer waits: try again), E_TIMEOUT (a hold is older than SHM_HOLD_US;
 * shm_holder_overdue was told), E_DENIED (this attachment holds it
 * already), E_INVAL (mode), E_NOENT (base is no attachment of p). */
long shm_sys_lock(struct partition *p, uintptr_t base, int mode);
/* 0, E_INVAL (this attachment holds nothing), E_NOENT. */
long shm_sys_unlock(struct partition *p, uintptr_t base);
/* mm_wait: check base, off, the timeout (SYS_MM_WAIT's errors); if the
 * word at off still holds expected, queue p on it and return
 * SHM_WAIT_QUEUED: the caller puts p to sleep (part_sleep). Else E_BUSY
 * at once. Nothing is queued on any error. */
#define SHM_WAIT_QUEUED (1l << 40)   /* no result of any call: not MM_LOCK_OWNER_DIED */
long shm_sys_wait(struct partition *p, uintptr_t base, uint64_t off, uint32_t expected,
		  uint64_t timeout_us);
/* mm_wake: take up to n sleepers on the word at off off the queue, oldest
 * first, and tell their harts (IPI). Returns how many. */
long shm_sys_wake(struct partition *p, uintptr_t base, uint64_t off, uint64_t n);
/* SYS_MM_LOCK: shm_sys_lock, but when the lock is busy p is queued to nap
 * (SHM_WAIT_QUEUED: the caller puts it to sleep) until an unlock of the
 * area or SHM_LOCK_NAP_US, and its call then returns E_BUSY: the runtime's
 * retry loop no longer spins through the system call. */
#define SHM_LOCK_KEY    UINT32_MAX        /* the nappers' key: no word's offset */
#define SHM_LOCK_NAP_US 20000u
long shm_sys_lock_or_nap(struct partition *p, uintptr_t base, int mode);
/* p's sleep ends (woken, deadline, or p is going away): its queue entry
 * goes if still there. The system call's result: a nap's E_BUSY, else 0
 * if a waker had dequeued it, E_TIMEOUT if not. */
int shm_wait_finish(struct partition *p);
/* Sleepers queued on the area of kernel handle mm (tests). */
unsigned shm_kernel_waiters(mm_t *mm);
/* A partition held an area lock longer than SHM_HOLD_US: part_kill it
 * ("held the lock of area 'A' longer than N ms"). Called once per overdue
 * hold, never waits. */
void shm_holder_overdue(uint32_t part_id, const char *area);
/* Overdue reports so far (tests). */
unsigned shm_overdue_count(void);
/* p is going away: release its lock holds in the kernel's record, whatever
 * it wrote into the areas (MM_LOCK_OWNER_DIED for the next locker), and
 * detach it from every area. */
void shm_detach_all(struct partition *p);

/* Boot: prepare the kernel window (after mem_init). */
void shm_init(void);

/* The kernel as an attacher: create (or find) and format an area and
 * attach a kernel handle, which keeps the area alive until
 * shm_kernel_detach. NULL on failure. */
mm_t *shm_kernel_create(const char *name, size_t static_size, size_t initial, size_t max);
void shm_kernel_detach(mm_t *mm);
/* Areas alive now (for tests that check everything was freed). */
unsigned shm_count(void);
/* Pages charged to p for shared areas (counted with its private pages
 * against its quota, kernel/part.c). */
size_t shm_charged(const struct partition *p);

#endif
