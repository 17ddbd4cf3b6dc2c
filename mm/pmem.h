/* pmem.h - the kernel's physical page layer: LMM regions per (RAM range x
 * zone) with DMA32 and NUMA-node flags, a global lock, and per-CPU caches of
 * free 4 KiB pages so the common page alloc/free never takes the lock.
 *
 * Addresses: the API speaks physical addresses (pa). LMM keeps its nodes in
 * free memory, so it works on virtual addresses va = pa + va_offset (the
 * kernel's direct map offset; 0 on the host, where test buffers are their
 * own "physical" memory). A constant offset keeps the hot path to one add;
 * natural alignment in pa is asked of LMM as an align_ofs, so va_offset
 * need not be aligned. Physical page 0 is never handed out (0 means failure).
 *
 * Locking: one env spinlock (irq-saving) around LMM. A CPU's cache is used
 * only by that CPU with interrupts off, so the page hot path takes no lock
 * and no atomic read-modify-write; this needs that no two callers running
 * at the same time share an env_cpu() index (the kernel: one per hart; the
 * host: one per live thread, up to ENV_MAX_CPUS threads). Other CPUs only
 * read a cache's fill level (pmem_avail, pmem_stats), or all of it when
 * quiet (pmem_check). A pmem_t must not move after pmem_init (LMM's region
 * list points into it).
 *
 * CPU count: pmem_config.ncpus (1..ENV_MAX_CPUS, required) sizes the
 * per-CPU caches and the CPU -> node table. pmem_init carves them out of
 * the RAM it manages (pmem_percpu_bytes(ncpus), whole pages; node 0 first,
 * high memory before DMA32) and counts them as reserved, so a 4-hart board pays for 4 caches. A call
 * from a CPU index >= ncpus is served uncached, under the lock (the slow
 * path: correct, just slower), and its node is 0; pmem_set_cpu_node refuses
 * such an index (E_INVAL). Nothing is ever indexed past ncpus.
 *
 * Double frees: refused (E_EXIST, logged) when the second copy reaches LMM:
 * at once on the locked path (pmem_free_pages, no_cache), at the next flush
 * on the cache path. Until then a page freed twice into caches can be handed
 * out twice; pmem_check reports a cached page that is also free in LMM or
 * cached twice. Builds with PMEM_DEBUG also refuse a page already in the
 * freeing CPU's cache, and stamp cached free pages to log writes after
 * free. Freeing a reserved page inside RAM is not detected.
 */
#ifndef MM_PMEM_H
#define MM_PMEM_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "lmm.h"

#define PMEM_MAX_RANGES   16    /* RAM ranges */
#define PMEM_MAX_RESV     64    /* reserved ranges */
#define PMEM_MAX_NODES    16
#define PMEM_MAX_REGIONS  (2 * PMEM_MAX_RANGES)
#define PMEM_PCPU_PAGES   60    /* per-CPU cache capacity (struct is 512 B) */
#define PMEM_PCPU_BATCH   32    /* pages moved per refill or flush */

#define PMEM_DMA32_LIMIT  ((uint64_t)1 << 32)

/* Request and region flags. */
#define PMEM_DMA32        (1u << 0)       /* below 4 GiB physical */
#define PMEM_STRICT_NODE  (1u << 1)       /* request only: no fallback node */
#define PMEM_NODE(n)      (1u << (8 + (n)))
#define PMEM_NODE_ANY     (-1)

#define PMEM_PRI_HIGH     1     /* ordinary requests take high memory first */
#define PMEM_PRI_DMA32    0

struct pmem_range {
	uint64_t base, size;
	int node;                   /* NUMA node, -1 = none (counts as 0) */
};

struct pmem_config {
	const struct pmem_range *ram;
	unsigned nram;
	const struct pmem_range *resv;  /* node ignored; may overlap anything */
	unsigned nresv;
	uintptr_t va_offset;            /* va = pa + va_offset */
	bool no_cache;                  /* every page call takes the lock (no
					   caches are carved then) */
	unsigned ncpus;                 /* CPU indexes with a cache and a node:
					   1..ENV_MAX_CPUS (0 is refused) */
};

struct pmem_stats {
	uint64_t total;             /* bytes of RAM described */
	uint64_t reserved;          /* RAM never given to LMM (incl. page slack
				       and the per-CPU tables) */
	uint64_t percpu;            /* of reserved: the per-CPU caches and the
				       node table pmem_init carved */
	uint64_t free;              /* free now: LMM plus caches */
	uint64_t cached;            /* free pages held in per-CPU caches, bytes */
	uint64_t refills, flushes;  /* cache batch moves */
	uint64_t slow_allocs, slow_frees;   /* calls that took the lock */
	uint64_t refused;           /* bad frees refused */
};

/* One CPU's cache: a stack of free pages. Owner-only, except that other
 * CPUs read `top` (fill level). `lo`/`len` cache the RAM range of the last
 * page freed on the slow path, when every page in it may be cached here
 * (local node): a free inside it skips the range search. */
struct pmem_pcpu {
	uintptr_t *top;             /* pages[0..top) are cached free pages (pa) */
	uintptr_t *limit;           /* pages + capacity; == pages when no_cache */
	uintptr_t lo, len;          /* pa - lo < len: page-aligned, in RAM, local */
	uintptr_t pages[PMEM_PCPU_PAGES];
} __attribute__((aligned(64)));

typedef struct pmem {
	/* Per-CPU caches first, so the hot path reaches them with a load, a
	 * compare, one shift and an add. pcpu[0..ncache) live in pmem's own
	 * RAM (carved at init); ncache is ncpus, or 0 with no_cache (every
	 * call then fails the bounds check and takes the slow path). */
	struct pmem_pcpu *pcpu;
	unsigned ncache;
	unsigned ncpus;
	int8_t *cpu_node;           /* [ncpus], in the same carved pages */
	uintptr_t percpu_pa;        /* the carved pages: pa and bytes */
	size_t percpu_bytes;
	uintptr_t va_offset;
	bool no_cache;
	env_spinlock_t lock;        /* guards lmm, regions, counters below */
	lmm_t lmm;
	lmm_region_t regions[PMEM_MAX_REGIONS];
	unsigned nregions;
	struct pmem_range ram[PMEM_MAX_RANGES];     /* sorted by base */
	unsigned nram, nnodes;
	uint64_t total, reserved;
	uint64_t refills, flushes, slow_allocs, slow_frees, refused;
} pmem_t;

/* Bytes (whole pages) pmem_init carves for ncpus CPUs: ncpus caches of
 * sizeof(struct pmem_pcpu) (none with no_cache) and ncpus node bytes. */
size_t pmem_percpu_bytes(unsigned ncpus, bool no_cache);

/* Build pm from cfg: one LMM region per (RAM range x zone), free RAM minus
 * the union of reservations (widened to pages) added to it, then the
 * per-CPU tables (pmem_percpu_bytes) taken from that free RAM. Returns 0;
 * E_INVAL for no RAM or too many ranges, a node >= PMEM_MAX_NODES, a
 * zero-sized RAM range or ncpus 0 or > ENV_MAX_CPUS; E_EXIST for
 * overlapping RAM ranges; E_RANGE if a range wraps (in pa or va); E_NOMEM
 * when no free run of RAM holds the per-CPU tables. pm is fully
 * overwritten; on error it is unusable. */
int pmem_init(pmem_t *pm, const struct pmem_config *cfg);

/* NUMA node of a CPU index (default 0). Set before that CPU allocates;
 * pages already in its cache stay there. E_INVAL for a node >= PMEM_MAX_NODES
 * or cpu >= ncpus (such a CPU runs uncached on node 0). */
int pmem_set_cpu_node(pmem_t *pm, unsigned cpu, int node);

/* One 4 KiB page from the calling CPU's cache (refilled from its node
 * first), or 0 if memory is exhausted. */
uintptr_t pmem_alloc_page(pmem_t *pm);

/* Return a page from pmem_alloc_page or pmem_alloc_pages(1, ...). Returns
 * 0; E_ALIGN if pa is not page-aligned, E_RANGE if outside RAM, E_EXIST for
 * a detected double free. Refusals log and change nothing. */
int pmem_free_page(pmem_t *pm, uintptr_t pa);

/* npages contiguous pages, pa aligned to align (a power of two >= 4 KiB, 0
 * means 4 KiB), under the global lock. flags: PMEM_DMA32 and/or
 * PMEM_STRICT_NODE. node: PMEM_NODE_ANY for the calling CPU's node, else
 * that node; it is tried first, then the others unless PMEM_STRICT_NODE.
 * Returns 0 if nothing fits or arguments are bad. Never uses the caches. */
uintptr_t pmem_alloc_pages(pmem_t *pm, size_t npages, size_t align,
			   unsigned flags, int node);

/* Return npages at pa under the global lock. Errors as pmem_free_page,
 * plus E_INVAL for npages 0 and whatever lmm_free refuses. */
int pmem_free_pages(pmem_t *pm, uintptr_t pa, size_t npages);

/* Give the calling CPU's cached pages back to LMM (nothing for a CPU
 * index >= ncpus: it has no cache). */
void pmem_flush_cpu(pmem_t *pm);

/* Free bytes: LMM plus every cache (a snapshot). */
size_t pmem_avail(pmem_t *pm);

/* Node of a physical address, or -1 outside RAM. */
int pmem_node_of(const pmem_t *pm, uintptr_t pa);

void pmem_stats(pmem_t *pm, struct pmem_stats *st);

/* lmm_check plus the caches: every cached page aligned, in RAM, not free in
 * LMM, cached once. Reads other CPUs' caches: call when they are quiet.
 * Returns 0 or E_CORRUPT after logging the first problem. */
int pmem_check(pmem_t *pm);

/* Regions (pa range, flags, priority, free bytes) and totals via env_log. */
void pmem_banner(pmem_t *pm);

#endif
