/* vm.h - Sv39 address spaces: descriptors, segments, ranges, growth, TLB.
 *
 * A descriptor is one address space: its own root table and ASID, a sorted
 * list of segments, and the mask of harts where it is active. A segment is a
 * reserved span [base, base+max_size) of which `size` bytes are mapped with
 * zeroed pages (from base up, or from the top down for VM_GROW_DOWN); a
 * guard gap (VM_GUARD_SIZE) separates reservations. Ranges are page-granular
 * pieces of a segment's mapped part handed out by vm_segment_alloc.
 *
 * State lives in a vm_sys_t instance reached through a struct vm_env
 * seam (tables, pages, objects, fences, satp), so the module runs on the
 * host; the kernel's instance is vm_kernel_sys and the API without a sys
 * argument uses it.
 *
 * Lock order: descriptor lock (a user one or the kernel's, never both) ->
 * sys lock -> the env's page and table allocators. Objects are allocated
 * and freed outside these locks. No vm call may be made from an env hook.
 */
#ifndef MM_VM_H
#define MM_VM_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "pt.h"

/* Segment flags and vm_map prot. */
#define VM_R 0x01u
#define VM_W 0x02u
#define VM_X 0x04u
#define VM_U 0x08u
#define VM_G 0x10u          /* vm_map: global; implied and only allowed in
			       the kernel descriptor */
#define VM_GROW_UP   0x100u /* faults above the mapped part grow it */
#define VM_GROW_DOWN 0x200u /* faults below the mapped part grow it (stacks) */
#define VM_NOBACK    0x400u /* no data pages: ranges get vm_map'ed caller PAs */

/* Unmapped gap required between two segments' reservations. */
#define VM_GUARD_SIZE ENV_PAGE_SIZE
#define VM_NAME_LEN 16

_Static_assert(ENV_MAX_CPUS <= 64, "vm hart masks are one uint64_t");
_Static_assert(ENV_PAGE_SIZE == SV39_PAGE_SIZE, "base page is the Sv39 page");

struct vm_env {
	struct pt_ops pt;  /* page-table pages */
	/* A zeroed data page: its PA, or 0 when none. */
	uint64_t (*page_alloc)(void *ctx);
	void (*page_free)(void *ctx, uint64_t pa);
	/* Small objects (descriptors, segments, ranges): in the kernel the VM's
	 * own object cache on pmem pages (vm_objcache.h), never kmalloc, which
	 * grows on a VM segment; the host tests use malloc. Called in trap
	 * context on the fault path (vm_fault.c). */
	void *(*obj_alloc)(void *ctx, size_t size);
	void (*obj_free)(void *ctx, void *p);
	/* sfence.vma on this hart. asid < 0: every address space (needed for
	 * global mappings); size 0: every address. */
	void (*fence_local)(void *ctx, int asid, uintptr_t va, size_t size);
	/* The same on the harts of `mask` (dense cpu indexes, env_cpu()), done
	 * when the hook returns (SBI RFENCE in the kernel). */
	void (*fence_remote)(void *ctx, uint64_t mask, int asid, uintptr_t va,
			     size_t size);
	void (*write_satp)(void *ctx, uint64_t satp);
	unsigned (*cpu)(void *ctx);   /* dense index of this hart; NULL: env_cpu() */
	void *ctx;
	unsigned asid_bits;           /* ASIDLEN probed by the kernel, 0..16 */
	/* CPU indexes that may load address spaces: 1..ENV_MAX_CPUS (required).
	 * vm_sys_init sizes the per-CPU current-descriptor table by it (one
	 * pointer each, from obj_alloc); vm_load_task and vm_unload_task
	 * refuse an index >= ncpus with E_RANGE. */
	unsigned ncpus;
};

struct vm_range {
	uintptr_t va;
	size_t size;
	struct vm_range *next;
};

typedef struct vm_sys vm_sys_t;

struct vm_segment {
	struct vm_descriptor *d;
	struct vm_segment *next;      /* by address */
	uintptr_t base;               /* lowest reserved address */
	size_t max_size;              /* reserved bytes, >= size */
	size_t size;                  /* mapped bytes */
	unsigned flags;
	char name[VM_NAME_LEN];
	struct vm_range *free;        /* free ranges of the mapped part, sorted */
	struct vm_range *used;        /* ranges handed out */
	struct vm_range *spare;       /* node for growth under the lock (faults) */
};

struct vm_descriptor {
	vm_sys_t *sys;
	struct pt pt;
	unsigned asid;
	env_spinlock_t lock;
	uint64_t active;              /* harts where loaded now */
	uint64_t ever;                /* harts where it was ever loaded */
	uint64_t stale;               /* harts that must flush the ASID at load */
	struct vm_segment *segs;
	struct vm_descriptor *next;   /* in sys->all */
	bool kernel;
};

#define VM_ASID_MAX (1u << SV39_SATP_ASID_BITS)

struct vm_sys {
	const struct vm_env *env;
	env_spinlock_t lock;
	struct vm_descriptor *all;    /* user descriptors */
	struct vm_descriptor kern;    /* upper half, ASID 0 */
	struct vm_segment *heap, *vmap;
	struct vm_descriptor **cur;   /* [ncpus]: loaded on each CPU index */
	unsigned ncpus;
	uint64_t asid_map[VM_ASID_MAX / 64];
	unsigned nasid;
	bool ready;
};

/* ---- setup --------------------------------------------------------------- */

/* Initialise sys over env (kept by pointer) and allocate its per-CPU
 * table (env->ncpus pointers, through env->obj_alloc). Returns 0; E_INVAL
 * for env->ncpus 0 or > ENV_MAX_CPUS, E_NOMEM when obj_alloc fails (sys is
 * then unusable; vm_sys_fini on it is harmless). The kernel descriptor is
 * not usable until vm_kernel_init. */
int vm_sys_init(vm_sys_t *sys, const struct vm_env *env);
/* Adopt root_pa (e.g. the boot table, already mapping the direct map and
 * the image) as the kernel descriptor, ASID 0, active on every hart; make
 * its upper-half root entries permanent (tables never freed, copied into
 * every vm_new descriptor and re-copied when they change); create the
 * segments "kheap" (R|W|GROW_UP, [heap_va, +heap_max), heap_size mapped)
 * and "vmap" (NOBACK, [vmap_va, +vmap_size)). E_INVAL when a segment
 * cannot be created (bad or overlapping range, no memory): nothing is kept. */
int vm_kernel_init(vm_sys_t *sys, uint64_t root_pa, uintptr_t heap_va,
		   size_t heap_size, size_t heap_max, uintptr_t vmap_va,
		   size_t vmap_size);
/* Drop the kernel segments and every user descriptor and free the per-CPU
 * table (obj_free); the root table given to vm_kernel_init stays the
 * caller's (its tables too). A second call does nothing more. */
void vm_sys_fini(vm_sys_t *sys);
/* The kernel's instance, used by the calls below without a sys argument. */
extern vm_sys_t vm_kernel_sys;
struct vm_descriptor *vm_kernel(vm_sys_t *sys);

/* ---- descriptors --------------------------------------------------------- */

/* New lower-half address space with its own ASID and root table. NULL when
 * out of memory or out of ASIDs (no roll-over: a freed descriptor returns
 * its ASID; with asid_bits 0 every descriptor shares ASID 0 and
 * vm_load_task flushes the whole TLB). */
struct vm_descriptor *vm_new_i(vm_sys_t *sys);
struct vm_descriptor *vm_new(void);
/* Every segment and data page, every lower-half table, the root and the
 * ASID (flushed on every hart where d ever ran). d must not be active on
 * another hart (panic); on this hart it is unloaded first. */
void vm_free(struct vm_descriptor *d);
/* Make d the active address space on this hart (satp write), recording it
 * in d->active; the previous one is unloaded. Returns 0, or E_RANGE when
 * this CPU's index is >= the sys's ncpus (nothing changes, satp included). */
int vm_load_task(struct vm_descriptor *d);
/* If d is active here, switch to the kernel descriptor. 0, or E_RANGE as
 * vm_load_task. */
int vm_unload_task(struct vm_descriptor *d);

/* ---- segments ------------------------------------------------------------ */

/* Reserve [va, va+max_size) and map `size` bytes of zeroed pages at its
 * bottom (top for VM_GROW_DOWN). flags: VM_R/W/X/U (a valid R/W/X combo),
 * at most one growth direction; size may be 0 for a growable segment;
 * va >= one page (page 0 stays unmapped). NULL on: size > max_size, unaligned,
 * outside d's half, overlap with another reservation or its guard gap,
 * out of memory. Nothing is changed then. */
struct vm_segment *vm_new_segment(struct vm_descriptor *d, uintptr_t va,
				  size_t size, size_t max_size, unsigned flags,
				  const char *name);
/* Map zeroed pages until size is new_size (page-rounded); beyond max_size
 * the reservation grows too (down for VM_GROW_DOWN, else up) if it keeps
 * the guard gap. E_INVAL shrink or NOBACK, E_EXIST overlap, E_RANGE leaves
 * the half, E_NOMEM (nothing mapped then). */
int vm_segment_grow(struct vm_segment *s, size_t new_size);
/* Destroy s: unmap, fence (local and the harts where d is active), free its
 * data pages, its ranges and s itself. NOBACK pages are the caller's. */
void vm_segment_clean(struct vm_segment *s);
/* Page-granular range of the mapped part (first fit); a VM_GROW_UP segment
 * grows when nothing fits. NULL if size 0 or no room. */
void *vm_segment_alloc(struct vm_segment *s, size_t size);
/* Return a range; adjacent free ranges merge. Panics on a va that is not
 * the start of a range handed out by s. */
void vm_segment_free(struct vm_segment *s, void *va);

/* ---- faults ---------------------------------------------------------------- */

enum vm_fault {
	VM_FAULT_OK = 0,         /* handled (page mapped, or stale TLB): resume */
	VM_FAULT_NOSEG,          /* outside every segment */
	VM_FAULT_GUARD,          /* in the guard gap above a segment */
	VM_FAULT_STACK_OVERFLOW, /* in the guard gap below a VM_GROW_DOWN segment */
	VM_FAULT_PERM,           /* access not allowed by the segment's flags */
	VM_FAULT_UNMAPPED,       /* reserved room of a non-growable segment */
	VM_FAULT_NOMEM,          /* growth failed: no page */
};
const char *vm_fault_str(int code);
/* Classify a fault at va for access (VM_R, VM_W or VM_X, plus VM_U when it
 * came from U-mode) and resolve it when it is growth. *seg_out (may be
 * NULL) receives the segment involved, or NULL. Does not panic: the caller
 * reports with the segment name. */
int vm_handle_fault(struct vm_descriptor *d, uintptr_t va, unsigned access,
		    const struct vm_segment **seg_out);

/* ---- mappings ---------------------------------------------------------------- */

/* Map caller-owned pa (not data pages of a segment) at va in d, largest
 * leaves alignment allows. E_EXIST overlap with a mapping or a segment
 * reservation, E_RANGE outside d's half, others as pt_map. */
int vm_map(struct vm_descriptor *d, uintptr_t va, uint64_t pa, size_t size,
	   unsigned prot);
/* Unmap (splitting large pages) and fence. E_BUSY if the range touches a
 * segment (use vm_segment_clean), E_NOENT if nothing was mapped. */
int vm_unmap(struct vm_descriptor *d, uintptr_t va, size_t size);
/* Change protection of a mapped range (vm_map'ed or segment pages). */
int vm_protect(struct vm_descriptor *d, uintptr_t va, size_t size,
	       unsigned prot);
int vm_get_phys(struct vm_descriptor *d, uintptr_t va, uint64_t *pa);

/* ---- kernel heap (the "kheap" and "vmap" segments) ----------------------------- */

/* npages of mapped, zeroed-at-first-use kernel heap (kheap grows when
 * needed); NULL if none. Pages are not zeroed again on reuse. */
void *vm_heap_pages_i(vm_sys_t *sys, size_t npages);
/* Return pages from vm_heap_pages_i; va and npages must match the call
 * exactly (panic otherwise). The pages stay mapped for the next user. */
void vm_free_heap_pages_i(vm_sys_t *sys, void *va, size_t npages);
/* Map [pa, pa+size) (any alignment; the page offset is kept) into vmap with
 * prot (VM_R/W/X); NULL on bad arguments or no room. */
void *vm_map_heap_i(vm_sys_t *sys, uint64_t pa, size_t size, unsigned prot);
/* Undo vm_map_heap_i (any address inside its first page), fencing every
 * hart; panics on an address it did not return. */
void vm_unmap_heap_i(vm_sys_t *sys, void *va);
/* The same on vm_kernel_sys. */
void *vm_get_kernel_heap_pages(size_t npages);
void vm_free_kernel_heap_pages(void *va, size_t npages);
void *vm_map_heap(uint64_t pa, size_t size, unsigned prot);
void vm_unmap_heap(void *va);

/* ---- checks ------------------------------------------------------------------- */

/* pt_check of d's half plus segment invariants (sorted, guard gaps, mapped
 * part fully mapped, room unmapped, ranges tile the mapped part, free
 * ranges merged). 0 or E_CORRUPT (first problem logged). */
int vm_check(struct vm_descriptor *d);
void vm_dump(struct vm_descriptor *d);

#endif
