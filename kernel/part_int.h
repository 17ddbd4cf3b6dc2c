/* part_int.h - what the partition files share: part.c (the table,
 * creation, budgets, part_kill), part_sched.c (each hart's ring and
 * scheduling, the ends of a partition, traps from U-mode) and part_mem.c
 * (user page faults, checked copies). */
#ifndef PART_INT_H
#define PART_INT_H

#include "part.h"

/* Put p (published, READY) on its hart's ring. */
void part_ring_add(struct partition *p);
/* Make hart `hart` act on the kills requested for it (an IPI). */
void part_kick(unsigned hart);
/* A page fault from U-mode of p: grown, mapped, or p stopped. */
void part_user_page_fault(struct partition *p, struct trap_frame *tf, unsigned long cause);

#endif
