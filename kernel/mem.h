/* mem.h - the kernel's memory: physical pages (pmem over LMM), the kernel
 * address space (VM), kmalloc and the umm pool, wired to the board. */
#ifndef KERNEL_MEM_H
#define KERNEL_MEM_H

#include <stdint.h>

#include "board.h"
#include "memlayout.h"
#include "pmem.h"
#include "umm.h"
#include "vm.h"

/* The kernel's virtual layout (heap, vmap, direct map): include/memlayout.h. */
#define KUMM_POOL    (4ul << 20)      /* umm pool: trap context */

extern pmem_t kpmem;
extern umm_t *kumm;                  /* sized for the board's harts (mem_cpus) */
extern unsigned mem_cpus;             /* CPU indexes the managers serve */
extern uint64_t kernel_satp;          /* satp of the kernel address space */

/* Boot hart, after the board is known: pmem from the board, the kernel
 * page table (direct map of RAM with the largest pages, image W^X), the VM
 * instance with its heap, kmalloc and the umm pool. Panics on failure. */
void mem_init(const struct board *b, unsigned long fdt_pa, unsigned long fdt_size);
/* Every hart: switch to the kernel page table. */
void mem_init_hart(void);
/* Map the stacks of hart index i (> 0) in its slot of the stack window
 * (hart.h), pages from NUMA node `node` (-1: any), before the hart is
 * started. 0 (also when already mapped), or an E_* code with nothing kept. */
int mem_map_hart_stacks(unsigned i, int node);
/* Every hart, once online: per-hart allocator state. */
void mem_init_hart_late(void);
/* A safe point of this hart: kernel context that interrupted no kernel
 * code (the idle loop, the entry of a trap from U-mode). Runs the kmalloc
 * reap the timer tick asked for, if any. Not from an S-mode interrupt. */
void mem_safe_point(void);
/* Bytes of pmem the kernel keeps for its own objects and reuses: kmalloc's
 * heap and the VM's object pages (vm_objcache). What a leak check
 * compares pmem_avail against. */
size_t mem_kept_bytes(void);
/* Banner lines: regions and totals, direct-map page sizes. */
void mem_banner(void);
/* Map a device's registers (uncached is the board's business: QEMU has no
 * PMAs to worry about); NULL on failure. */
void *mem_map_mmio(uint64_t pa, size_t size);

#endif
