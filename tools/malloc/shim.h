/* shim.h - the seam between the malloc API (shim.c) and the manager behind
 * it (shim_umm.c or shim_kmalloc.c). Every be_* call runs inside an
 * env_host_enter() bracket and after be_init() returned true. */
#ifndef TOOLS_MALLOC_SHIM_H
#define TOOLS_MALLOC_SHIM_H

#include <stdbool.h>
#include <stddef.h>

/* Set up the manager (reserve address space). Called once, under a lock,
 * from the first call of any thread; may not call malloc. */
bool be_init(void);
/* Is p inside the memory this manager hands out? (Cheap, no lock.) */
bool be_owns(const void *p);
void *be_alloc(size_t n);                       /* n >= 1 */
void *be_aligned(size_t n, size_t align);       /* align a power of two > 16 */
void *be_realloc(void *p, size_t n);            /* p owned, n >= 1 */
void be_free(void *p);                          /* p owned */
size_t be_usable(const void *p);                /* p owned; 0 if not live */
/* Name in messages. */
extern const char be_name[];

#endif
