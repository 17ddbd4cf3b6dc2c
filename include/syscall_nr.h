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

struct sys_mm_attach {
	uint64_t base;      /* where the area is mapped in the caller */
	uint64_t mapped;    /* bytes mapped there */
	uint64_t created;   /* 1 if this call created the area */
};

#define SYS_MM_NAME_MAX 32

#endif
