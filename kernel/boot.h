/* boot.h - what boot found and sets up for every module: the board, the
 * timebase, where the image was loaded, the bootargs, and shutdown. */
#ifndef BOOT_H
#define BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

extern uint64_t timebase_hz;
extern const struct board *board;

/* Kernel image addresses <-> physical: the image runs where it was loaded
 * (entry.S stores the physical address of _start before anything else). */
extern unsigned long kernel_phys_base;
static inline unsigned long kva_to_pa(const void *va)
{
	return (unsigned long)va - KERNEL_VMA + kernel_phys_base;
}

static inline void *pa_to_dmap(unsigned long pa)
{
	return (void *)(pa + DIRECT_MAP_BASE);
}

/* The value of key=... in the bootargs, copied into buf (NULL if
 * absent). */
const char *bootarg(const char *key, char *buf, size_t len);

/* Shutdown through the board's ops (test finisher) or SBI System Reset. */
_Noreturn void kernel_shutdown(bool failed);

#endif
