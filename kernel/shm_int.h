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
	unsigned payer;               /* partition charged for it; 0: the kernel */
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
	/* mm_wait's sleepers on words of this area, oldest first (wq_lk;
	 * kernel/shm_wait.c). A leaf lock: nothing is taken under it. */
	spinlock_t wq_lk;
	struct part_wait *wq_head, *wq_tail;
	unsigned nwaiters;
};

/* One hold of an area lock by one attachment. Keys: partition id << 8 |
 * attach slot + 1, or a kernel handle's index + 1. */
struct shm_hold {
	struct shm_area *area;        /* NULL: holds nothing */
	int mode;
	uint64_t since;               /* rdtime when taken */
	uint64_t ticks;               /* its hart's timer ticks then */
	unsigned hart;                /* the hart it was taken on */
	bool reported;                /* shm_holder_overdue was told */
	/* waiting (all under the area's lk) */
	struct shm_area *warea;       /* waits for this area's lock, NULL none */
	uint32_t wticket;             /* its place: lower goes first */
	int wmode;
	uint64_t wpoll;               /* its last attempt (rdtime) */
};

#define SHM_NHOLDS ((MAX_PARTS + 1) * PART_MAX_ATTACH + SHM_KSLOTS)
extern struct shm_hold shm_holds_flat[SHM_NHOLDS];

static inline struct shm_hold *shm_phold(unsigned id, unsigned i)
{
	return &shm_holds_flat[id * PART_MAX_ATTACH + i];
}

static inline struct shm_hold *shm_khold(unsigned k)
{
	return &shm_holds_flat[(MAX_PARTS + 1) * PART_MAX_ATTACH + k];
}

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
