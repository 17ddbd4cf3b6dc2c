/* vm_objcache.h - the VM manager's own objects (descriptors, segments,
 * ranges) from whole pages, without another allocator.
 *
 * Pages come from a struct pt_ops (a zeroed page by PA, its release, and
 * where the CPU reaches a PA: in the kernel pmem pages through the direct
 * map), so the kernel heap, which is a VM segment, can grow without the VM
 * calling back into kmalloc, which grows on that heap. Objects are cut in
 * size classes of 32, 64, 128, 256 and 512 bytes, one class per page; a page
 * whose last object is freed goes back unless it is the only page of its
 * class with room (so an alloc/free pair at a page boundary does not
 * allocate a page each time).
 *
 * Every call takes only c->lock (interrupts off in the kernel) and, under
 * it, the page hooks: usable in trap context (the fault path) when the
 * hooks are. Lock order: c->lock -> the hooks' locks.
 */
#ifndef MM_VM_OBJCACHE_H
#define MM_VM_OBJCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "pt.h"

#define VM_OBJ_MIN    32u    /* smallest class */
#define VM_OBJ_MAX    512u   /* largest object served (vm_sys's per-CPU
				table at ENV_MAX_CPUS 64: 512 bytes) */
#define VM_OBJ_NCLASS 5

struct vm_objpage;

struct vm_objcache {
	env_spinlock_t lock;
	struct pt_ops ops;                          /* the page source */
	struct vm_objpage *room[VM_OBJ_NCLASS];     /* pages with a free slot */
	struct vm_objpage *all;                     /* every page held */
	uint64_t live;                              /* objects handed out */
	uint64_t pages;                             /* pages held */
	uint64_t refused;                           /* frees of foreign pointers */
};

/* Start empty on the page source ops (copied). Takes no page yet. */
void vm_objcache_init(struct vm_objcache *c, const struct pt_ops *ops);
/* An object of size bytes (1..VM_OBJ_MAX), 16-aligned, not zeroed; NULL
 * on size 0, size > VM_OBJ_MAX, or no page. The signature is vm_env's
 * obj_alloc with the cache as ctx. */
void *vm_objcache_alloc(void *cache, size_t size);
/* Return p (from vm_objcache_alloc on this cache; NULL is ignored). A
 * pointer that is not a live object's start is refused: counted in
 * c->refused, logged, nothing changes (a pointer outside the cache's pages
 * is never read: the page is looked up among them, a short walk). */
void vm_objcache_free(void *cache, void *p);
/* Give back every page; objects still live are lost (tests, teardown). */
void vm_objcache_fini(struct vm_objcache *c);
/* Walk every page: class, counts, free slots inside the page. 0 or
 * E_CORRUPT (first problem logged). */
int vm_objcache_check(struct vm_objcache *c);

#endif
