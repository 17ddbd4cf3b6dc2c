/* part_roles.h - roles of the partition program (user/part.c), chosen by
 * the argument the kernel starts it with: role in bits 7:0, parameter above. */
#ifndef PART_ROLES_H
#define PART_ROLES_H

#include <stdint.h>

#define ROLE_HELLO    1
#define ROLE_PRODUCER 2   /* param: nodes to add */
#define ROLE_CONSUMER 3   /* param: producers | nodes per producer << 8 */
#define ROLE_BREACH   4   /* param: BREACH_* */
#define ROLE_HAMMER   5   /* param: iterations */
#define ROLE_LOCKER   6   /* takes the lock and faults */
#define ROLE_WAITER   7   /* expects MM_LOCK_OWNER_DIED */
#define ROLE_BENCH    8   /* param: BENCH_* */

#define BENCH_SYSCALL     1   /* system call round trips */
#define BENCH_SWITCH      2   /* yield to a peer on the same hart, measuring */
#define BENCH_SWITCH_PEER 3   /* the peer: yields back */

#define BREACH_KERNEL_READ     1
#define BREACH_KERNEL_WRITE    2
#define BREACH_PEER_READ       3
#define BREACH_EXEC_DATA       4
#define BREACH_JUMP_KERNEL     5
#define BREACH_QUOTA           6
#define BREACH_BAD_SYSCALL_PTR 7
#define BREACH_ILLEGAL         8
#define BREACH_STACK_OVERFLOW  9

/* ---- hostile roles of issue 11: console, CPU budget, kill path, copy-in */
#define ROLE_FORGER    0x30  /* forged kernel lines; param: FORGE_* */
#define ROLE_SPINNER   0x31  /* spins without system calls; param: SPIN_* */
#define ROLE_FLOOD     0x32  /* param: 512-byte writes to the console */
#define ROLE_CONLAT    0x33  /* param: 2-byte writes; prints the longest one (us) */
#define ROLE_SYSLOOP   0x34  /* system calls (write, yield, time) until stopped */
#define ROLE_HEAPWRITE 0x35  /* param: HEAPW_*: write() from untouched heap pages */

#define FORGE_EXIT  0        /* exit 0 after the forgeries (write counts checked) */
#define FORGE_SPIN  1        /* spin after them, never exit */
#define SPIN_PLAIN  0
#define SPIN_LOCKED 1        /* holding the lock of ROBUST_AREA, `locked` set */
#define HEAPW_READ  0        /* write() from an untouched heap page: works, reads zeros */
#define HEAPW_OUT   1        /* mm_attach's result into an untouched heap page */
#define HEAPW_GAP   2        /* write() from the guard gap above the heap: stopped */
#define HEAPW_FAR   3        /* write() from heap + 4 MiB: over the quota, stopped */
/* Hostile partitions against the shared areas (tests/kernel/shm_hostile_test.c). */
#define ROLE_SHM_HOSTILE 40   /* param: SHMH_*: attacks the area, see user/part.c */
#define ROLE_SHM_WAITER  41   /* waits behind an overdue holder of SHMH_AREA */

#define SHMH_FORGE_WRITER    1   /* lock word: a writer in a slot nobody holds */
#define SHMH_FORGE_PENDING   2   /* lock word: a pending writer nobody is */
#define SHMH_FORGE_READER    3   /* lock word: a reader bit in a free slot */
#define SHMH_ZERO_OWN_SLOT   4   /* hold RW, zero its slot entry, exit */
#define SHMH_DEAD_OWN_SLOT   5   /* hold RW, slot entry = the dead marker, exit */
#define SHMH_FLIP_EARLY      6   /* rewrite lock word, slots, flags while peers run */
#define SHMH_HOLD_OVERDUE    7   /* hold RW past SHM_HOLD_US (in SHMH_AREA) */
#define SHMH_BAD_LOCK_CALLS  8   /* raw SYS_MM_LOCK/UNLOCK with bad arguments */
#define SHMH_EXIT_HOLDING_RD 9   /* take RD by system call, exit without unlock */
#define SHMH_BIG_AREAS      10   /* create, touch, free 16 MiB areas; param >> 8: rounds */
#define SHMH_BYSTANDER      11   /* time its shared-area calls meanwhile */
#define SHMH_QUOTA          12   /* 16 MiB areas on a small quota */
#define SHMH_HOARD          13   /* create 3 areas, hold them until told (SHMH_CALM) */
#define SHMH_LATECOMER      14   /* after the hoarders: its own area must work */
#define SHMH_AREA "hostile"
#define SHMH_CALM "calm"             /* the bystanders' small area */
#define SHMH_BIG_SIZE (16ul << 20)

/* ---- mm_wait / mm_wake (tests/kernel/part_test.c; user/part.c wait_role) */
#define ROLE_WAIT 0x50           /* param: WAITK_* | count << 8 | scale << WAIT_SCALE_SHIFT */
/* The wait roles' bounds (a 30 s wait for peers, a sleeper's 10 s waits)
 * times `scale` (0 or 1: as written): on an emulator with many more harts
 * than host cores, guest time runs ahead of every hart's progress. */
#define WAIT_SCALE_SHIFT 32
#define WAIT_ARG(kind, count, scale) \
	ROLE_ARG(ROLE_WAIT, (kind) | (unsigned long)(count) << 8 | (unsigned long)(scale) << WAIT_SCALE_SHIFT)
#define WAITK_SLEEP     1        /* sleep on `word` (expected 0, 10 s x scale): must be woken, 0 */
#define WAITK_WAKER     2        /* wake `word` 1 at a time until count woken, then: 0 more */
#define WAITK_TIMEOUT   3        /* sleep 50 ms, nobody wakes: E_TIMEOUT, not before */
#define WAITK_MISMATCH  4        /* `word` holds 7, wait for 3: E_BUSY at once */
#define WAITK_BAD       5        /* bad offsets, timeouts, n, unattached, lock held */
#define WAITK_VICTIM    6        /* sleeps on `word` 10 s; the test kills it asleep */
#define WAITK_BYSTANDER 7        /* sleeps on `word2`: must be woken, 0 */
#define WAITK_AFTER     8        /* victim gone: wake `word` wakes 0, `word2` wakes 1 */
#define WAITK_FLIPPER   9        /* count: waiters | rounds << 8: flips the area, wakes anywhere */
#define WAITK_FLIPPED  10        /* count waits on `word` while it flips: no other result */
#define WAITK_MANY     11        /* wake `word` 3 at a time until count woken */
#define WAITK_HOLDER   12        /* holds WAIT_AREA's lock RW for count ms (yielding) */
#define WAITK_LOCKER   13        /* once the holder holds it: mm_lock RW, must get it */
#define WAITK_BENCH    14        /* apps/bench.c: instructions of mm_wait / mm_wake */
#define WAITK_BENCH_PEER 15      /* ... its ping-pong peer on the same hart */
#define WAITK_SLEEPLOOP 16       /* sleeps 100 ms at a time, forever */
#define WAIT_AREA "wait"
#define WAIT_TIMEOUT_US 50000u   /* WAITK_TIMEOUT's timeout */

/* ---- the stress tool's partitions (apps/stress, user/stress_role.c) */
#define ROLE_STRESS 0x60         /* param: STRESS_PARAM(ops, index, debug, seed) */
#define STRESS_AREA "stress"
#define STRESS_PARTS_MAX 64      /* slots in the area's static header */
#define STRESS_DBG_KBLOCK 1      /* overwrite a byte of one of its blocks: verify must catch it (exit 23) */
#define STRESS_DBG_KFAULT 2      /* read kernel memory halfway: the kernel stops it */
#define STRESS_PARAM(ops, idx, dbg, seed) ((unsigned long)(ops) | (unsigned long)(idx) << 24 | \
					   (unsigned long)(dbg) << 32 | (unsigned long)((seed) & 0xffff) << 36)
/* The area's static header: each partition's op count (written as it
 * ends) and its list of live blocks (mm_ptr_t links). */
struct stress_area_hdr {
	uint64_t ops[STRESS_PARTS_MAX];
	uint64_t head[STRESS_PARTS_MAX];     /* mm_ptr_t */
	uint32_t done;
};

#define ROLE_ARG(role, param) ((unsigned long)(role) | ((unsigned long)(param) << 8))
#define ROLE_OF(arg)    ((unsigned)((arg) & 0xff))
#define ROLE_PARAM(arg) ((arg) >> 8)
#define ROLE_COUNT(p)   ((unsigned)(p))

#define DEMO_AREA   "demo"
#define HAMMER_AREA "hammer"
#define ROBUST_AREA "robust"

#endif
