/* partition.h - the SDK for partition programs: everything a program of
 * one's own needs to run as a partition on this kernel. Build with
 *
 *     make partition SRC='a.c b.c' NAME=prod     -> build/parts/prod.elf
 *
 * and run it from an initrd (docs/PARTITIONS.md):
 *
 *     make run PARTS='prod.elf cons.elf' BOOTARGS='part=prod@1:x,cons@2 area=demo:64K:1M'
 *
 * A partition is a U-mode program in its own address space, pinned to one
 * hart and time-sliced with the others there. It starts in
 * `int main(int argc, char **argv)` (or `int main(void)`, sdk/start.c
 * calls it): argv[0] is its partition name (the initrd member without ".elf"),
 * argv[1] the argument of its `part=` entry when it has one (argc 2, else
 * 1). Returning from main, or part_exit(), ends it with that exit status;
 * the kernel prints "part: NAME#ID on hart H exited with status S" and the
 * `part` program's verdict counts every status but 0 as a failure.
 *
 * The C library is picolibc: printf and friends, string.h, stdlib.h
 * (malloc from a heap that grows on demand up to 64 MiB, charged to the
 * partition's quota). stdout goes to the console line by line; each line
 * the kernel shows is tagged "[NAME#ID] " and control characters are
 * escaped. No files, no stdin, no threads.
 *
 * Shared memory: the mm areas of mm.h (included below). mm_create(name,
 * static_size, dynamic_size) attaches the area `name`, creating it if no
 * one has (the `area=` bootarg makes the kernel create it first with the
 * sizes given there). Store mm_ptr_t offsets in the area, never pointers:
 * every attacher maps it at a different address. Take mm_lock around
 * every access; never trust what another partition wrote (docs/MM.md).
 *
 * Faults (a bad pointer, a write to text, memory beyond the quota, running
 * past the CPU budget) stop only this partition, with a report line.
 */
#ifndef SDK_PARTITION_H
#define SDK_PARTITION_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mm.h"      /* shared areas: mm_create, mm_lock, mm_alloc, mm_addr, ... */
#include "ulib.h"    /* the system calls below */

/* ---- system calls (user/ulib.h; a bad pointer stops the caller) --------
 *
 * usys_write(buf, len)   bytes to the console (what printf uses); returns
 *                        the count written or a negative enum err
 * usys_exit(status)      flushes stdout and ends the partition
 * usys_yield()           gives the hart to its next partition
 * usys_time_us()         microseconds since boot (the hart's timer)
 * usys_hartid()          the hart id it runs on
 * usys_partid()          its partition id (> 0)
 */

/* The same, under the SDK's names. */
static inline _Noreturn void part_exit(int status) { usys_exit(status); }
static inline void part_yield(void) { usys_yield(); }
static inline uint64_t part_time_us(void) { return usys_time_us(); }
static inline long part_hart(void) { return usys_hartid(); }
static inline long part_id(void) { return usys_partid(); }

/* Waiting on a word of a shared area without spinning: mm_wait(mm, ptr,
 * expected, timeout_us) sleeps while *ptr still holds expected (the hart
 * runs other partitions), mm_wake(mm, ptr, n) wakes up to n sleepers on any
 * hart. Declared in ulib.h with their error codes; docs/MM.md#wait-and-wake. */

/* Its partition name and the argument of its `part=` entry ("" when it has
 * none): the strings main() gets as argv[0] and argv[1]. */
const char *part_name(void);
const char *part_arg(void);

#endif
