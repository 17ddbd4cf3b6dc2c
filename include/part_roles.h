/* part_roles.h - roles of the partition program (user/part.c), chosen by
 * the argument the kernel starts it with: role in bits 7:0, parameter above. */
#ifndef PART_ROLES_H
#define PART_ROLES_H

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

#define ROLE_ARG(role, param) ((unsigned long)(role) | ((unsigned long)(param) << 8))
#define ROLE_OF(arg)    ((unsigned)((arg) & 0xff))
#define ROLE_PARAM(arg) ((arg) >> 8)
#define ROLE_COUNT(p)   ((unsigned)(p))

#define DEMO_AREA   "demo"
#define HAMMER_AREA "hammer"
#define ROBUST_AREA "robust"

/* Partition address layout (kernel/part.c maps it). */
#define USER_HEAP_BASE   0x10000000ul
#define USER_HEAP_MAX    (64ul << 20)
#define USER_STACK_TOP   0x3000000000ul   /* minus 16 MiB per partition id */
#define USER_STACK_SIZE  (16ul << 10)
#define USER_STACK_MAX   (256ul << 10)
#define USER_SHM_BASE    0x2000000000ul   /* plus 256 MiB per attach slot */
#define USER_SHM_SLOT    (256ul << 20)

#endif
