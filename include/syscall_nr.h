/* syscall_nr.h - system call numbers shared by the kernel and partitions.
 * ecall with a7 = number, arguments in a0..a3, result in a0 (negative:
 * enum err). A bad pointer or length stops the calling partition. */
#ifndef SYSCALL_NR_H
#define SYSCALL_NR_H

#define SYS_WRITE      1   /* (buf, len) -> len */
#define SYS_EXIT       2   /* (status) */
#define SYS_YIELD      3   /* () */
#define SYS_TIME_US    4   /* () -> microseconds since boot */
#define SYS_HARTID     5   /* () -> hart id */
#define SYS_PARTID     6   /* () -> partition id */
#define SYS_MM_ATTACH  10  /* (name, initial, max, struct sys_mm_attach *out) */
#define SYS_MM_GROW    11  /* (base, new_size) -> bytes mapped */
#define SYS_MM_MAP     12  /* (base, size) -> bytes mapped (ensure mapped) */
#define SYS_MM_DETACH  13  /* (base) */
#define SYS_MM_ALIVE   14  /* (partition id) -> 1 alive, 0 not */
#define SYS_MM_LOCK    15  /* (base, MM_LOCK_RD/RW) -> 0, MM_LOCK_OWNER_DIED, E_BUSY
			      (held by others: retry), E_TIMEOUT (a holder is overdue),
			      E_DENIED (this attachment holds it already), E_NOENT, E_INVAL */
#define SYS_MM_UNLOCK  16  /* (base) -> 0, E_INVAL (not held), E_NOENT */
/* Waiting without spinning (kernel/shm_wait.c, docs/MM.md#wait-and-wake):
 * off is the byte offset of a 32-bit word in the area attached at base. */
#define SYS_MM_WAIT    17  /* (base, off, expected, timeout_us) -> 0 (woken), E_BUSY (the
			      word does not hold expected), E_TIMEOUT, E_ALIGN (off not
			      4-aligned), E_RANGE (off past the area's size, timeout over
			      MM_WAIT_MAX_US), E_INVAL (timeout 0), E_DENIED (this
			      attachment holds the area's lock), E_NOENT (no attachment) */
#define SYS_MM_WAKE    18  /* (base, off, n) -> waiters woken (0..n), E_ALIGN, E_RANGE,
			      E_INVAL (n 0), E_NOENT */
#define MM_WAIT_MAX_US 10000000u   /* the longest mm_wait: 10 s of guest time */

/* The area lock (kernel/shm.c keeps it): a hold longer than this is
 * overdue (waiters get E_TIMEOUT, the kernel is told); a waiter gives up
 * with E_TIMEOUT after SHM_WAIT_US. Microseconds of guest time. */
#define SHM_HOLD_US    2000000u
#define SHM_WAIT_US    10000000u

struct sys_mm_attach {
	uint64_t base;      /* where the area is mapped in the caller */
	uint64_t mapped;    /* bytes mapped there */
	uint64_t created;   /* 1 if this call created the area */
};

#define SYS_MM_NAME_MAX 32

#endif
