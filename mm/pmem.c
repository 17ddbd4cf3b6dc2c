/* pmem.c - physical page layer on LMM: zones, NUMA nodes, per-CPU caches.
 *
 * Locks: pm->lock only (LMM and counters). A CPU's cache is touched only by
 * that CPU with interrupts off (refill and flush take pm->lock inside that).
 */
#include "pmem.h"

#include "env.h"

#include <string.h>

#define PAGE      ((uintptr_t)ENV_PAGE_SIZE)
#define PAGE_MASK (PAGE - 1)

static inline uintptr_t va_of(const pmem_t *pm, uintptr_t pa)
{
	return pa + pm->va_offset;
}

static int node_norm(int node)
{
	return node < 0 ? 0 : node;
}

/* The RAM range holding [pa, pa+len), or NULL. */
static const struct pmem_range *range_of(const pmem_t *pm, uintptr_t pa, size_t len)
{
	for (unsigned i = 0; i < pm->nram; i++) {
		const struct pmem_range *r = &pm->ram[i];
		if (pa >= r->base && pa - r->base < r->size && len <= r->size - (pa - r->base))
			return r;
	}
	return NULL;
}

int pmem_node_of(const pmem_t *pm, uintptr_t pa)
{
	const struct pmem_range *r = range_of(pm, pa, 1);
	return r ? node_norm(r->node) : -1;
}

/* ---- init ---- */

static void init_caches(pmem_t *pm);

static int check_ram(const struct pmem_config *cfg)
{
	if (!cfg || !cfg->ram || !cfg->nram || cfg->nram > PMEM_MAX_RANGES ||
	    cfg->nresv > PMEM_MAX_RESV || (cfg->nresv && !cfg->resv) ||
	    !cfg->ncpus || cfg->ncpus > ENV_MAX_CPUS)
		return E_INVAL;
	for (unsigned i = 0; i < cfg->nram; i++) {
		const struct pmem_range *r = &cfg->ram[i];
		if (!r->size || r->node < -1 || r->node >= PMEM_MAX_NODES)
			return E_INVAL;
		if (r->size - 1 > UINT64_MAX - r->base ||
		    r->base + (r->size - 1) > UINTPTR_MAX - cfg->va_offset)
			return E_RANGE;
	}
	return 0;
}

struct span {
	uint64_t s, e;
};

/* Insertion sort: at most PMEM_MAX_RESV entries, once at boot. */
static void sort_spans(struct span *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		struct span x = v[i];
		unsigned j = i;
		for (; j && v[j - 1].s > x.s; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

static void sort_ram(struct pmem_range *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		struct pmem_range x = v[i];
		unsigned j = i;
		for (; j && v[j - 1].base > x.base; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

static int add_region(pmem_t *pm, uint64_t s, uint64_t e, int node)
{
	bool dma = s < PMEM_DMA32_LIMIT;
	lmm_flags_t fl = PMEM_NODE(node) | (dma ? PMEM_DMA32 : 0);
	lmm_region_t *r = &pm->regions[pm->nregions];
	int rc;

	rc = lmm_add_region(&pm->lmm, r, (void *)va_of(pm, s), e - s, fl,
			    dma ? PMEM_PRI_DMA32 : PMEM_PRI_HIGH);
	if (rc == E_ALIGN)
		return 0;       /* a sliver too small to hold anything */
	if (!rc)
		pm->nregions++;
	return rc;
}

static int add_free(pmem_t *pm, uint64_t s, uint64_t e)
{
	if (s >= e)
		return 0;
	return lmm_add_free(&pm->lmm, (void *)va_of(pm, s), e - s);
}

/* Free RAM = each range (pages wholly inside) minus the union of the
 * reservations widened to pages; overlaps are clipped, never subtracted
 * twice, because the cursor only moves forward. */
static int feed_free(pmem_t *pm, const struct pmem_config *cfg)
{
	struct span rs[PMEM_MAX_RESV];
	unsigned n = cfg->nresv;
	int rc;

	for (unsigned i = 0; i < n; i++) {
		uint64_t b = cfg->resv[i].base, z = cfg->resv[i].size;
		uint64_t e = z > UINT64_MAX - b ? UINT64_MAX : b + z;
		rs[i].s = b & ~(uint64_t)PAGE_MASK;
		rs[i].e = e > UINT64_MAX - PAGE_MASK ? UINT64_MAX & ~(uint64_t)PAGE_MASK
						     : (e + PAGE_MASK) & ~(uint64_t)PAGE_MASK;
	}
	sort_spans(rs, n);
	for (unsigned i = 0; i < pm->nram; i++) {
		const struct pmem_range *r = &pm->ram[i];
		uint64_t cur = (r->base + PAGE_MASK) & ~(uint64_t)PAGE_MASK;
		uint64_t e = (r->base + r->size) & ~(uint64_t)PAGE_MASK;
		if (cur == 0)
			cur = PAGE;         /* pa 0 means failure */
		for (unsigned j = 0; j < n && cur < e; j++) {
			if (rs[j].e <= cur || rs[j].s >= rs[j].e)
				continue;
			if (rs[j].s >= e)
				break;
			if (rs[j].s > cur && (rc = add_free(pm, cur, rs[j].s)))
				return rc;
			cur = rs[j].e;
		}
		if (cur < e && (rc = add_free(pm, cur, e)))
			return rc;
	}
	return 0;
}

static uintptr_t take(pmem_t *pm, size_t size, size_t align, lmm_flags_t fl,
		      int node, bool strict);

size_t pmem_percpu_bytes(unsigned ncpus, bool no_cache)
{
	size_t n = (no_cache ? 0 : (size_t)ncpus * sizeof(struct pmem_pcpu)) + ncpus;

	return (n + PAGE_MASK) & ~(size_t)PAGE_MASK;
}

/* The caches, then the node table, in whole pages of pm's own free RAM
 * (node 0 first: the boot CPU's). Counted as reserved by pmem_init. */
static int carve_percpu(pmem_t *pm, unsigned ncpus)
{
	size_t bytes = pmem_percpu_bytes(ncpus, pm->no_cache);
	uintptr_t pa = take(pm, bytes, PAGE, 0, 0, false), va;

	if (!pa)
		return E_NOMEM;
	va = va_of(pm, pa);
	memset((void *)va, 0, bytes);
	pm->percpu_pa = pa;
	pm->percpu_bytes = bytes;
	pm->ncpus = ncpus;
	pm->ncache = pm->no_cache ? 0 : ncpus;
	pm->pcpu = (struct pmem_pcpu *)va;
	pm->cpu_node = (int8_t *)(va + pm->ncache * sizeof(struct pmem_pcpu));
	init_caches(pm);
	return 0;
}

int pmem_init(pmem_t *pm, const struct pmem_config *cfg)
{
	int rc = check_ram(cfg);

	if (rc || !pm)
		return rc ? rc : E_INVAL;
	memset(pm, 0, sizeof(*pm));
	pm->va_offset = cfg->va_offset;
	pm->no_cache = cfg->no_cache;
	pm->nram = cfg->nram;
	memcpy(pm->ram, cfg->ram, cfg->nram * sizeof(cfg->ram[0]));
	sort_ram(pm->ram, pm->nram);
	for (unsigned i = 0; i < pm->nram; i++) {
		struct pmem_range *r = &pm->ram[i];
		if (i && r->base - pm->ram[i - 1].base < pm->ram[i - 1].size)
			return E_EXIST;
		r->node = node_norm(r->node);
		if ((unsigned)r->node + 1 > pm->nnodes)
			pm->nnodes = r->node + 1;
		pm->total += r->size;
	}
	lmm_init(&pm->lmm);
	for (unsigned i = 0; i < pm->nram; i++) {
		const struct pmem_range *r = &pm->ram[i];
		uint64_t s = r->base, e = r->base + r->size;
		if (s < PMEM_DMA32_LIMIT && e > PMEM_DMA32_LIMIT) {
			if ((rc = add_region(pm, s, PMEM_DMA32_LIMIT, r->node)))
				return rc;
			s = PMEM_DMA32_LIMIT;
		}
		if ((rc = add_region(pm, s, e, r->node)))
			return rc;
	}
	if ((rc = feed_free(pm, cfg)))
		return rc;
	if ((rc = carve_percpu(pm, cfg->ncpus)))
		return rc;
	pm->reserved = pm->total - lmm_avail(&pm->lmm, 0);
	return 0;
}

int pmem_set_cpu_node(pmem_t *pm, unsigned cpu, int node)
{
	if (cpu >= pm->ncpus || node < 0 || node >= PMEM_MAX_NODES)
		return E_INVAL;
	__atomic_store_n(&pm->cpu_node[cpu], (int8_t)node, __ATOMIC_RELAXED);
	/* Its free hint may name a range of the old node: drop it. */
	if (cpu < pm->ncache)
		__atomic_store_n(&pm->pcpu[cpu].len, 0, __ATOMIC_RELAXED);
	return 0;
}

/* A CPU index past ncpus has no entry: node 0. */
static int my_node(pmem_t *pm)
{
	unsigned c = env_cpu();

	return c < pm->ncpus ? __atomic_load_n(&pm->cpu_node[c], __ATOMIC_RELAXED) : 0;
}

/* ---- locked path ---- */

/* LMM allocation in va; node first, then any node unless strict. Locked. */
static uintptr_t take(pmem_t *pm, size_t size, size_t align, lmm_flags_t fl,
		      int node, bool strict)
{
	int bits = __builtin_ctzl(align);
	uintptr_t ofs = pm->va_offset & (align - 1);   /* so that pa is aligned */
	void *p;

	p = lmm_alloc_gen(&pm->lmm, size, fl | PMEM_NODE(node), bits, ofs, 0, SIZE_MAX);
	if (!p && !strict)
		p = lmm_alloc_gen(&pm->lmm, size, fl, bits, ofs, 0, SIZE_MAX);
	return p ? (uintptr_t)p - pm->va_offset : 0;
}

uintptr_t pmem_alloc_pages(pmem_t *pm, size_t npages, size_t align,
			   unsigned flags, int node)
{
	unsigned long irq;
	uintptr_t pa;

	if (!align)
		align = PAGE;
	if (!npages || npages > SIZE_MAX / PAGE || align < PAGE ||
	    (align & (align - 1)) || (flags & ~(PMEM_DMA32 | PMEM_STRICT_NODE)) ||
	    node < PMEM_NODE_ANY || node >= PMEM_MAX_NODES)
		return 0;
	if (node == PMEM_NODE_ANY)
		node = my_node(pm);
	irq = env_lock(&pm->lock);
	pa = take(pm, npages * PAGE, align, flags & PMEM_DMA32, node,
		  flags & PMEM_STRICT_NODE);
	pm->slow_allocs++;
	env_unlock(&pm->lock, irq);
	return pa;
}

static int refuse(pmem_t *pm, const char *fn, uintptr_t pa, int rc)
{
	env_log("%s: refused %#lx: %s", fn, (unsigned long)pa, err_str(rc));
	__atomic_fetch_add(&pm->refused, 1, __ATOMIC_RELAXED);
	return rc;
}

int pmem_free_pages(pmem_t *pm, uintptr_t pa, size_t npages)
{
	unsigned long irq;
	int rc;

	if (!npages || npages > SIZE_MAX / PAGE)
		return refuse(pm, "pmem_free_pages", pa, E_INVAL);
	if (pa & PAGE_MASK)
		return refuse(pm, "pmem_free_pages", pa, E_ALIGN);
	if (!pa || !range_of(pm, pa, npages * PAGE))
		return refuse(pm, "pmem_free_pages", pa, E_RANGE);
	irq = env_lock(&pm->lock);
	rc = lmm_free(&pm->lmm, (void *)va_of(pm, pa), npages * PAGE);
	pm->slow_frees++;
	env_unlock(&pm->lock, irq);
	if (rc)
		__atomic_fetch_add(&pm->refused, 1, __ATOMIC_RELAXED);
	return rc;
}

/* ---- per-CPU caches ---- */

_Static_assert(sizeof(struct pmem_pcpu) == 512, "a cache is indexed with one shift");
_Static_assert(PMEM_PCPU_BATCH <= PMEM_PCPU_PAGES, "a refill fits the cache");

/* `top` has one writer (the owner) and readers elsewhere (cached_bytes).
 * GCC 12 turns a relaxed atomic store into an amoswap on RISC-V; an aligned
 * sd is single-copy atomic there, so the kernel uses a volatile store (the
 * host keeps the atomic, which is what TSan understands). */
static inline void set_top(struct pmem_pcpu *pc, uintptr_t *top)
{
#if defined(__riscv)
	*(uintptr_t *volatile *)&pc->top = top;
#else
	__atomic_store_n(&pc->top, top, __ATOMIC_RELAXED);
#endif
}

static inline unsigned cached_of(const struct pmem_pcpu *pc)
{
	return (unsigned)(__atomic_load_n(&pc->top, __ATOMIC_RELAXED) - pc->pages);
}

/* The calling CPU's cache, or NULL for an index without one (>= ncache:
 * past ncpus, or every index with no_cache). env_cpu() < ENV_MAX_CPUS <=
 * 256: the int cast only saves the zero extension of the index. The hot
 * paths test the index themselves (HOT_PCPU) so that GCC need not test
 * the pointer again. */
#define HOT_PCPU(pm, pc, slow) do {                                        \
		int c_ = (int)env_cpu();                                   \
		if (__builtin_expect((unsigned)c_ >= (pm)->ncache, 0))     \
			goto slow;                                         \
		(pc) = &(pm)->pcpu[c_];                                    \
		/* Keep pc in a register instead of re-deriving each field \
		 * address from pm and the index (two adds per field). */  \
		__asm__("" : "+r"(pc));                                    \
	} while (0)

static inline struct pmem_pcpu *my_pcpu(pmem_t *pm)
{
	int c = (int)env_cpu();

	return (unsigned)c < pm->ncache ? &pm->pcpu[c] : NULL;
}

#ifdef PMEM_DEBUG
/* Debug builds stamp the last word of every cached free page and check it
 * when the page is handed out: a write after free shows up in the log. The
 * last word, because a page freed twice may also be free in LMM, whose node
 * sits in the first bytes of a free block. */
#define FREE_STAMP 0x9e3779b97f4a7c15ull

static void stamp(pmem_t *pm, uintptr_t pa)
{
	*(uint64_t *)(va_of(pm, pa) + PAGE - 8) = FREE_STAMP ^ pa;
}

static void unstamp(pmem_t *pm, uintptr_t pa)
{
	uint64_t *w = (uint64_t *)(va_of(pm, pa) + PAGE - 8);

	if (*w != (FREE_STAMP ^ pa))
		env_log("pmem: free page %#lx was written while free", (unsigned long)pa);
	*w = 0;
}

static bool in_cache(const struct pmem_pcpu *pc, uintptr_t pa)
{
	for (const uintptr_t *p = pc->pages; p < pc->top; p++)
		if (*p == pa)
			return true;
	return false;
}
#else
static inline void stamp(pmem_t *pm, uintptr_t pa) {}
static inline void unstamp(pmem_t *pm, uintptr_t pa) {}
static inline bool in_cache(const struct pmem_pcpu *pc, uintptr_t pa)
{
	return false;
}
#endif

static void init_caches(pmem_t *pm)
{
	for (unsigned c = 0; c < pm->ncache; c++) {
		struct pmem_pcpu *pc = &pm->pcpu[c];
		pc->top = pc->pages;
		pc->limit = pc->pages + PMEM_PCPU_PAGES;
		pc->lo = pc->len = 0;
	}
}

/* Fill an empty cache with up to a batch, all from one node: the CPU's own
 * while it has any, so local pages are always handed out first. */
static void refill(pmem_t *pm, struct pmem_pcpu *pc, int node)
{
	unsigned long irq = env_lock(&pm->lock);
	uintptr_t pa;
	unsigned n = 0;

	pa = take(pm, PMEM_PCPU_BATCH * PAGE, PAGE, 0, node, true);
	if (pa) {
		for (n = 0; n < PMEM_PCPU_BATCH; n++)
			pc->pages[n] = pa + (PMEM_PCPU_BATCH - 1 - n) * PAGE;
	} else {
		while (n < PMEM_PCPU_BATCH && (pa = take(pm, PAGE, PAGE, 0, node, true)))
			pc->pages[n++] = pa;
		/* Own node empty: fall back to the others. */
		while (!n || (n < PMEM_PCPU_BATCH && pmem_node_of(pm, pc->pages[0]) != node)) {
			if (!(pa = take(pm, PAGE, PAGE, 0, node, false)))
				break;
			pc->pages[n++] = pa;
		}
	}
	pm->refills++;
	env_unlock(&pm->lock, irq);
	for (unsigned i = 0; i < n; i++)
		stamp(pm, pc->pages[i]);
	set_top(pc, pc->pages + n);
}

/* Give the n oldest cached pages back to LMM. */
static void flush(pmem_t *pm, struct pmem_pcpu *pc, unsigned n)
{
	unsigned long irq = env_lock(&pm->lock);
	unsigned left = (unsigned)(pc->top - pc->pages) - n;

	for (unsigned i = 0; i < n; i++)
		if (lmm_free(&pm->lmm, (void *)va_of(pm, pc->pages[i]), PAGE))
			/* a double free caught here; lmm_free logged it */
			__atomic_fetch_add(&pm->refused, 1, __ATOMIC_RELAXED);
	pm->flushes++;
	env_unlock(&pm->lock, irq);
	memmove(pc->pages, pc->pages + n, left * sizeof(pc->pages[0]));
	set_top(pc, pc->pages + left);
}

/* Empty cache (or cache off): refill, or the locked path. */
static __attribute__((noinline, cold)) uintptr_t alloc_page_slow(pmem_t *pm)
{
	struct pmem_pcpu *pc;
	unsigned long irq;
	uintptr_t pa = 0;

	irq = env_irq_save();
	pc = my_pcpu(pm);
	if (!pc) {                  /* no cache for this CPU (or cache off) */
		env_irq_restore(irq);
		return pmem_alloc_pages(pm, 1, PAGE, 0, PMEM_NODE_ANY);
	}
	if (pc->top == pc->pages)   /* an interrupt may have freed one meanwhile */
		refill(pm, pc, my_node(pm));
	if (pc->top != pc->pages) {
		pa = pc->top[-1];
		set_top(pc, pc->top - 1);
		unstamp(pm, pa);
	}
	env_irq_restore(irq);
	return pa;
}

uintptr_t pmem_alloc_page(pmem_t *pm)
{
	unsigned long irq = env_irq_save();
	struct pmem_pcpu *pc;
	uintptr_t *top;

	HOT_PCPU(pm, pc, slow);
	top = pc->top;
	if (__builtin_expect(top != pc->pages, 1)) {
		uintptr_t pa = top[-1];
		set_top(pc, top - 1);
		unstamp(pm, pa);
		env_irq_restore(irq);
		return pa;
	}
slow:
	env_irq_restore(irq);
	return alloc_page_slow(pm);
}

/* The whole pages of r without page 0 (never valid): [*lo, *lo + result).
 * r does not wrap (checked at init), so last + 1 - first cannot overflow. */
static uintptr_t whole_pages(const struct pmem_range *r, uintptr_t *lo)
{
	uint64_t last = r->base + (r->size - 1), first;

	*lo = 0;
	if (r->base > UINT64_MAX - PAGE_MASK)
		return 0;
	first = (r->base + PAGE_MASK) & ~(uint64_t)PAGE_MASK;
	if (!first)
		first = PAGE;
	if (last < first || last - first + 1 < PAGE)
		return 0;
	*lo = first;
	return (last - first + 1) & ~(uint64_t)PAGE_MASK;
}

/* Every check, then the cache (remembering the page's range as a hint for
 * the hot path) or, for remote pages or with the cache off, the lock. */
static __attribute__((noinline, cold)) int free_page_slow(pmem_t *pm, uintptr_t pa)
{
	const struct pmem_range *r;
	struct pmem_pcpu *pc;
	unsigned long irq;
	int rc = 0;

	if (pa & PAGE_MASK)
		return refuse(pm, "pmem_free_page", pa, E_ALIGN);
	if (!pa || !(r = range_of(pm, pa, PAGE)))
		return refuse(pm, "pmem_free_page", pa, E_RANGE);
	/* Remote pages go home through LMM, so caches hold local pages only;
	 * so do all pages of a CPU without a cache (or with the cache off). */
	if (pm->nnodes > 1 && r->node != my_node(pm))
		return pmem_free_pages(pm, pa, 1);
	irq = env_irq_save();
	pc = my_pcpu(pm);
	if (!pc) {
		env_irq_restore(irq);
		return pmem_free_pages(pm, pa, 1);
	}
	if (in_cache(pc, pa)) {             /* always false unless PMEM_DEBUG */
		rc = E_EXIST;
	} else {
		uintptr_t lo, len = whole_pages(r, &lo);
		pc->lo = lo;
		__atomic_store_n(&pc->len, len, __ATOMIC_RELAXED);
		if (pc->top == pc->limit)
			flush(pm, pc, PMEM_PCPU_BATCH);
		stamp(pm, pa);
		*pc->top = pa;
		set_top(pc, pc->top + 1);
	}
	env_irq_restore(irq);
	return rc ? refuse(pm, "pmem_free_page", pa, rc) : 0;
}

int pmem_free_page(pmem_t *pm, uintptr_t pa)
{
	unsigned long irq = env_irq_save();
	struct pmem_pcpu *pc;
	uintptr_t *top;

	HOT_PCPU(pm, pc, slow);
	top = pc->top;
	/* In the hinted range (so in RAM, local, not page 0), aligned, and
	 * room in the cache: push. Anything else is checked in full. */
	if (__builtin_expect(pa - pc->lo < __atomic_load_n(&pc->len, __ATOMIC_RELAXED) &&
			     !(pa & PAGE_MASK) && top != pc->limit &&
			     !in_cache(pc, pa), 1)) {
		stamp(pm, pa);
		*top = pa;
		set_top(pc, top + 1);
		env_irq_restore(irq);
		return 0;
	}
slow:
	env_irq_restore(irq);
	return free_page_slow(pm, pa);
}

void pmem_flush_cpu(pmem_t *pm)
{
	unsigned long irq = env_irq_save();
	struct pmem_pcpu *pc = my_pcpu(pm);

	if (pc && pc->top != pc->pages)
		flush(pm, pc, (unsigned)(pc->top - pc->pages));
	env_irq_restore(irq);
}

/* ---- reporting ---- */

static uint64_t cached_bytes(pmem_t *pm)
{
	uint64_t n = 0;

	for (unsigned c = 0; c < pm->ncache; c++)
		n += cached_of(&pm->pcpu[c]);
	return n * PAGE;
}

size_t pmem_avail(pmem_t *pm)
{
	unsigned long irq = env_lock(&pm->lock);
	size_t n = lmm_avail(&pm->lmm, 0);

	env_unlock(&pm->lock, irq);
	return n + cached_bytes(pm);
}

void pmem_stats(pmem_t *pm, struct pmem_stats *st)
{
	unsigned long irq = env_lock(&pm->lock);

	st->total = pm->total;
	st->reserved = pm->reserved;
	st->percpu = pm->percpu_bytes;
	st->free = lmm_avail(&pm->lmm, 0);
	st->refills = pm->refills;
	st->flushes = pm->flushes;
	st->slow_allocs = pm->slow_allocs;
	st->slow_frees = pm->slow_frees;
	st->refused = __atomic_load_n(&pm->refused, __ATOMIC_RELAXED);
	env_unlock(&pm->lock, irq);
	st->cached = cached_bytes(pm);
	st->free += st->cached;
}

static int check_page(pmem_t *pm, unsigned cpu, uintptr_t pa)
{
	uintptr_t va = va_of(pm, pa);
	lmm_flags_t fl;
	size_t sz;

	if ((pa & PAGE_MASK) || !pa || !range_of(pm, pa, PAGE)) {
		env_log("pmem_check: cpu %u caches bad page %#lx", cpu, (unsigned long)pa);
		return E_CORRUPT;
	}
	lmm_find_free(&pm->lmm, &va, &sz, &fl);
	if (sz && va == va_of(pm, pa)) {
		env_log("pmem_check: cached page %#lx is also free in LMM", (unsigned long)pa);
		return E_CORRUPT;
	}
	return 0;
}

/* Each cached page: valid, not free in LMM, and in no other cache slot. */
static int check_caches(pmem_t *pm)
{
	if (pm->ncache != (pm->no_cache ? 0 : pm->ncpus) || pm->ncpus > ENV_MAX_CPUS) {
		env_log("pmem_check: per-CPU table sizes broken");
		return E_CORRUPT;
	}
	for (unsigned c = 0; c < pm->ncache; c++) {
		const struct pmem_pcpu *pc = &pm->pcpu[c];
		unsigned n = (unsigned)(pc->top - pc->pages);
		if (pc->top < pc->pages || n > PMEM_PCPU_PAGES ||
		    pc->limit != pc->pages + PMEM_PCPU_PAGES) {
			env_log("pmem_check: cpu %u cache bounds broken", c);
			return E_CORRUPT;
		}
		for (unsigned i = 0; i < n; i++) {
			uintptr_t pa = pc->pages[i];
			if (check_page(pm, c, pa))
				return E_CORRUPT;
			for (unsigned d = c; d < pm->ncache; d++)
				for (unsigned j = d == c ? i + 1 : 0; j < cached_of(&pm->pcpu[d]); j++)
					if (pm->pcpu[d].pages[j] == pa) {
						env_log("pmem_check: page %#lx cached twice (cpu %u, %u)",
							(unsigned long)pa, c, d);
						return E_CORRUPT;
					}
		}
	}
	return 0;
}

int pmem_check(pmem_t *pm)
{
	unsigned long irq = env_lock(&pm->lock);
	int rc = lmm_check(&pm->lmm);

	if (!rc)
		rc = check_caches(pm);
	env_unlock(&pm->lock, irq);
	return rc;
}

void pmem_banner(pmem_t *pm)
{
	unsigned long irq = env_lock(&pm->lock);
	uint64_t avail;

	for (lmm_region_t *r = pm->lmm.regions; r; r = r->next)
		env_log("pmem: [%#lx, %#lx) node %d%s flags %#x pri %d free %lu KiB",
			(unsigned long)(r->min - pm->va_offset),
			(unsigned long)(r->max - pm->va_offset),
			__builtin_ctz(r->flags >> 8),
			(r->flags & PMEM_DMA32) ? " dma32" : "", r->flags, (int)r->pri,
			(unsigned long)(r->free >> 10));
	env_unlock(&pm->lock, irq);
	avail = pmem_avail(pm);
	env_log("pmem: total %lu KiB = free %lu + reserved %lu + in use %lu KiB (cached %lu KiB; "
		"reserved includes %lu KiB of per-CPU tables for %u CPUs)",
		(unsigned long)(pm->total >> 10), (unsigned long)(avail >> 10),
		(unsigned long)(pm->reserved >> 10),
		(unsigned long)((pm->total - pm->reserved - avail) >> 10),
		(unsigned long)(cached_bytes(pm) >> 10),
		(unsigned long)(pm->percpu_bytes >> 10), pm->ncpus);
}
