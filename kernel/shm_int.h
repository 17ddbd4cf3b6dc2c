/* shm_int.h - what kernel/shm.c (registry, backing, mappings, quotas) and
 * kernel/shm_lock.c (the area lock's record) share. Not for other users. */
#ifndef KERNEL_SHM_INT_H
#define KERNEL_SHM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "part.h"
#include "shm.h"

#define SHM_PA_PER_PAGE (ENV_PAGE_SIZE / sizeof(uint64_t))
#define SHM_PA_PAGES    ((SHM_MAX_SIZE / ENV_PAGE_SIZE + SHM_PA_PER_PAGE - 1) / SHM_PA_PER_PAGE)

struct shm_area {
	struct shm_area *next;        /* the registry (shm_lock) */
	char name[SYS_MM_NAME_MAX];
	size_t npages;                /* backed pages, published with release */
	size_t max_pages;
	uint64_t *pa[SHM_PA_PAGES];   /* page-sized tables of the backing's PAs
					 (direct map), allocated at creation */
	unsigned npa;                 /* tables in pa[] */
	unsigned nattach;             /* shm_lock */
	int kslot;                    /* kernel window slot, -1: not mapped there */
	uintptr_t kva;
	struct partition *payer;      /* partition charged for it; NULL: the kernel */
	size_t charge;                /* pages charged to the payer */
	/* The area lock's authority (the word inside the area is not); lk
	 * also orders growth steps (shm.c). A test-and-set lock, not a ticket
	 * lock: waiters poll it hard, and under QEMU on a loaded host a ticket
	 * queue stalls whenever the next ticket's hart is not running. */
	spinlock_t lk;
	uint32_t writer;              /* holder key of the RW hold, 0 none */
	unsigned readers;             /* RD holds */
	unsigned nwait;               /* hold records waiting for it */
	uint32_t tickets;             /* the last waiter's ticket */
	bool died;                    /* a dead holder's hold was dropped: tell */
	struct shm_hold *holds;       /* its attachers' hold records (lk) */
	/* mm_wait's sleepers on words of this area, oldest first (wq_lk;
	 * kernel/shm_wait.c). A leaf lock: nothing is taken under it. */
	spinlock_t wq_lk;
	struct part_wait *wq_head, *wq_tail;
	unsigned nwaiters;
};

/* The hold records of an area lock (struct shm_hold, kernel/part.h): one
 * per attachment, in the partition's record or, for the kernel's own
 * handles, in shm_kholds; each is on its area's list (a->holds) while
 * attached, so the lock's scans see only the area's attachers. */
extern struct shm_hold shm_kholds[SHM_KSLOTS];

static inline struct shm_hold *shm_phold(struct partition *p, unsigned i)
{
	return &p->holds[i];
}

static inline struct shm_hold *shm_khold(unsigned k)
{
	return &shm_kholds[k];
}

/* hd (fresh) joins a's attachers for partition id (0: the kernel);
 * leaves it when its attachment goes. Take a->lk. */
void shm_hold_link(struct shm_area *a, struct shm_hold *hd, uint32_t id);
void shm_hold_unlink(struct shm_area *a, struct shm_hold *hd);

/* shm_lock.c */
void shm_lock_init(void);
/* One attempt at a's lock in mode for the hold record hd (key: see above):
 * shm_sys_lock's results. */
int shm_try_lock(struct shm_area *a, struct shm_hold *hd, uint32_t key, int mode);
/* Drop hold hd of a; died: its holder is gone, tell the next locker (and
 * forget its waiting-writer claim). E_INVAL if hd holds nothing of a. */
int shm_drop_hold(struct shm_area *a, struct shm_hold *hd, uint32_t key, bool died);
/* hd leaves a's queue of waiters (its attachment goes). */
void shm_forget(struct shm_area *a, struct shm_hold *hd);
static inline uint32_t shm_pkey(const struct partition *p, const struct part_attach *at)
{
	return (uint32_t)p->id << 8 | (uint32_t)(at - p->att + 1);
}
/* shm_wait.c: an unlock of a wakes its lock nappers (if anyone sleeps on
 * the area at all: one load on the unlock path). */
void shm_wake_lockers_slow(struct shm_area *a);
static inline void shm_wake_lockers(struct shm_area *a)
{
	if (__atomic_load_n(&a->nwaiters, __ATOMIC_ACQUIRE))
		shm_wake_lockers_slow(a);
}

/* shm.c */
struct part_attach *shm_att_of(struct partition *p, uintptr_t base);

static inline size_t shm_npages(struct shm_area *a)
{
	return __atomic_load_n(&a->npages, __ATOMIC_ACQUIRE);
}

/* The 32-bit word at offset off (4-aligned, inside the backed pages) of a,
 * through the direct map: kernel memory, never faults. */
static inline volatile uint32_t *shm_word(const struct shm_area *a, size_t off)
{
	size_t i = off / ENV_PAGE_SIZE;
	uint64_t pa = a->pa[i / SHM_PA_PER_PAGE][i % SHM_PA_PER_PAGE];

	return (volatile uint32_t *)((uint8_t *)pa_to_dmap(pa) + off % ENV_PAGE_SIZE);
}

#endif
