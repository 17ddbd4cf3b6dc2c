/* pt.c - Sv39 page-table engine: map, split, unmap, protect, translate, check.
 *
 * Mutations run twice over the same walk: a dry pass that reads the tree,
 * finds every error and counts the table pages the change needs, then (after
 * those pages are reserved) a real pass that repeats the same decisions and
 * cannot fail. Tables the dry pass would create are "virtual": empty, or the
 * 512-way split of a large leaf, computed on the fly.
 */
#include <string.h>

#include "env.h"
#include "pt.h"

enum op { OP_MAP, OP_UNMAP, OP_PROT };

struct walk {
	struct pt *pt;
	enum op op;
	bool dry;
	uint64_t off;      /* map: pa - va (mod 2^64) */
	uint64_t flags;    /* map/protect: low PTE bits of new leaves */
	unsigned need;     /* dry pass: table pages the real pass takes */
	uint64_t stash;    /* reserved tables, linked through their word 0 */
	unsigned fence;
	uint64_t pages;    /* 4 KiB pages unmapped or re-protected */
	int err;
};

#define PT_MARK (1ull << SV39_PTE_RSW_SHIFT)   /* pt_check's visit mark */

static uint64_t *table(const struct pt *pt, uint64_t pa)
{
	return pt->ops->pa_to_va(pt->ops->ctx, pa);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static bool keep_entry(const struct pt *pt, int level, unsigned idx)
{
	return level == SV39_LEVELS - 1 && idx >= pt->keep_lo && idx < pt->keep_hi;
}

/* Entry idx of a real table t, or of the virtual table the dry pass stands
 * in for: empty (vleaf 0) or the split of leaf vleaf one level up. */
static uint64_t entry_get(struct walk *w, uint64_t t, uint64_t vleaf, int level,
			  unsigned idx)
{
	if (t)
		return __atomic_load_n(&table(w->pt, t)[idx], __ATOMIC_RELAXED);
	if (!vleaf)
		return 0;
	return sv39_pte_make(sv39_pte_pa(vleaf) + idx * sv39_level_size(level),
			     sv39_pte_flags(vleaf));
}

/* Drop the cached lower-half walk (struct pt's near_*). */
static void forget_near(struct pt *pt)
{
	pt->near_key = ~0ull;
	pt->near_l0 = NULL;
}

/* Release order: a table's contents are visible before the pointer to it. */
static void entry_set(struct walk *w, uint64_t t, int level, unsigned idx,
		      uint64_t pte)
{
	__atomic_store_n(&table(w->pt, t)[idx], pte, __ATOMIC_RELEASE);
	if (level > 0)
		forget_near(w->pt);   /* the cached walk may have changed */
	if (level == SV39_LEVELS - 1)
		w->fence |= PT_FENCE_ROOT;
}

static uint64_t take_table(struct walk *w)
{
	uint64_t pa = w->stash;
	uint64_t *p;

	if (!pa)
		env_panic("pt_take_table: real pass needs more than the dry pass counted");
	p = table(w->pt, pa);
	w->stash = p[0];
	p[0] = 0;
	return pa;
}

static void release_stash(struct walk *w)
{
	while (w->stash) {
		uint64_t pa = w->stash;
		w->stash = table(w->pt, pa)[0];
		table(w->pt, pa)[0] = 0;
		w->pt->ops->free_table(w->pt->ops->ctx, pa);
	}
}

static int reserve(struct walk *w, unsigned n)
{
	const struct pt_ops *o = w->pt->ops;

	while (n--) {
		uint64_t pa = o->alloc_table(o->ctx);
		if (!pa) {
			release_stash(w);
			return E_NOMEM;
		}
		table(w->pt, pa)[0] = w->stash;
		w->stash = pa;
	}
	return 0;
}

static bool subtree_has_leaf(const struct pt *pt, uint64_t t, int level)
{
	const uint64_t *e = table(pt, t);

	for (unsigned i = 0; i < SV39_ENTRIES; i++) {
		if (sv39_pte_leaf(e[i]))
			return true;
		if (level > 0 && sv39_pte_valid(e[i]) &&
		    subtree_has_leaf(pt, sv39_pte_pa(e[i]), level - 1))
			return true;
	}
	return false;
}

static void free_subtree(const struct pt *pt, uint64_t t, int level)
{
	const uint64_t *e = table(pt, t);

	for (unsigned i = 0; level > 0 && i < SV39_ENTRIES; i++)
		if (sv39_pte_valid(e[i]) && !sv39_pte_leaf(e[i]))
			free_subtree(pt, sv39_pte_pa(e[i]), level - 1);
	pt->ops->free_table(pt->ops->ctx, t);
}

/* ---- map ------------------------------------------------------------------ */

static void map_level(struct walk *w, uint64_t t, int level, uint64_t va,
		      uint64_t last);

/* va..sub lies in entry idx of t, whose PTE is pte and not a leaf. */
static void map_entry(struct walk *w, uint64_t t, int level, unsigned idx,
		      uint64_t pte, uint64_t va, uint64_t sub)
{
	uint64_t sz = sv39_level_size(level);
	bool fits = (va & (sz - 1)) == 0 && sub == (va | (sz - 1)) &&
		    ((va + w->off) & (sz - 1)) == 0;
	uint64_t child = 0;

	if (level == 0 && sv39_pte_valid(pte))
		env_panic("pt_map: valid non-leaf PTE at level 0");
	if (fits && !(sv39_pte_valid(pte) && keep_entry(w->pt, level, idx))) {
		if (sv39_pte_valid(pte)) {
			/* A table emptied by earlier unmaps gives way to the
			 * large leaf; one with any mapping is an overlap. */
			if (subtree_has_leaf(w->pt, sv39_pte_pa(pte), level - 1)) {
				w->err = E_EXIST;
				return;
			}
			if (!w->dry) {
				entry_set(w, t, level, idx, 0);
				free_subtree(w->pt, sv39_pte_pa(pte), level - 1);
				w->fence |= PT_FENCE_ALL;
			}
		}
		if (!w->dry)
			entry_set(w, t, level, idx,
				  sv39_pte_make(va + w->off, w->flags));
		return;
	}
	if (sv39_pte_valid(pte)) {
		child = sv39_pte_pa(pte);
	} else if (w->dry) {
		w->need++;
	} else {
		child = take_table(w);
		entry_set(w, t, level, idx, sv39_pte_make(child, SV39_PTE_V));
	}
	map_level(w, child, level - 1, va, sub);
}

static void map_level(struct walk *w, uint64_t t, int level, uint64_t va,
		      uint64_t last)
{
	uint64_t sz = sv39_level_size(level);

	for (;;) {
		unsigned idx = sv39_vpn(va, level);
		uint64_t sub = min_u64(va | (sz - 1), last);
		uint64_t pte = entry_get(w, t, 0, level, idx);

		if (sv39_pte_leaf(pte)) {
			w->err = E_EXIST;
			return;
		}
		map_entry(w, t, level, idx, pte, va, sub);
		if (w->err || sub == last)
			return;
		va = sub + 1;
	}
}

/* ---- unmap / protect -------------------------------------------------------- */

static void edit_leaf(struct walk *w, uint64_t t, int level, unsigned idx,
		      uint64_t pte)
{
	uint64_t npte;

	w->pages += sv39_level_size(level) / SV39_PAGE_SIZE;
	if (w->dry)
		return;
	if (w->op == OP_UNMAP) {
		entry_set(w, t, level, idx, 0);
		w->fence |= PT_FENCE_VA;
		return;
	}
	npte = sv39_pte_make(sv39_pte_pa(pte), w->flags);
	if (npte == pte)
		return;
	entry_set(w, t, level, idx, npte);
	if ((pte & ~npte) & PT_PROT_MASK)
		w->fence |= PT_FENCE_VA;
}

/* Replace leaf pte (entry idx of t) by a table of 512 leaves one level down
 * that map the same pages with the same bits. */
static uint64_t split_leaf(struct walk *w, uint64_t t, int level, unsigned idx,
			   uint64_t pte)
{
	uint64_t child = take_table(w);
	uint64_t *e = table(w->pt, child);

	for (unsigned i = 0; i < SV39_ENTRIES; i++)
		e[i] = entry_get(w, 0, pte, level - 1, i);
	entry_set(w, t, level, idx, sv39_pte_make(child, SV39_PTE_V));
	w->fence |= PT_FENCE_ALL;
	return child;
}

static void edit_level(struct walk *w, uint64_t t, uint64_t vleaf, int level,
		       uint64_t va, uint64_t last)
{
	uint64_t sz = sv39_level_size(level);

	for (;;) {
		unsigned idx = sv39_vpn(va, level);
		uint64_t sub = min_u64(va | (sz - 1), last);
		bool full = (va & (sz - 1)) == 0 && sub == (va | (sz - 1));
		uint64_t pte = entry_get(w, t, vleaf, level, idx);

		if (!sv39_pte_valid(pte)) {
			if (w->op == OP_PROT)
				w->err = E_NOENT;
		} else if (sv39_pte_leaf(pte) && full) {
			edit_leaf(w, t, level, idx, pte);
		} else if (level == 0) {
			env_panic("pt_edit: valid non-leaf PTE at level 0");
		} else if (!sv39_pte_leaf(pte)) {
			edit_level(w, sv39_pte_pa(pte), 0, level - 1, va, sub);
		} else if (w->dry) {
			w->need++;
			edit_level(w, 0, pte, level - 1, va, sub);
		} else {
			edit_level(w, split_leaf(w, t, level, idx, pte), 0,
				   level - 1, va, sub);
		}
		if (w->err || sub == last)
			return;
		va = sub + 1;
	}
}

/* ---- drivers ---------------------------------------------------------------- */

/* The level-0 PTE slot of va when every table above it exists, else NULL
 * (a missing table or a large leaf on the way: the general walk decides).
 * A lower-half walk is cached for pt_near_hit (see struct pt). */
static uint64_t *leaf_slot(struct pt *pt, uint64_t va)
{
	uint64_t t = pt->root;
	uint64_t *e;

	for (int l = SV39_LEVELS - 1; l > 0; l--) {
		uint64_t pte = __atomic_load_n(&table(pt, t)[sv39_vpn(va, l)],
					       __ATOMIC_RELAXED);
		if (!sv39_pte_valid(pte) || sv39_pte_leaf(pte))
			return NULL;
		t = sv39_pte_pa(pte);
	}
	e = table(pt, t);
	if (va < SV39_LOWER_END) {
		pt->near_key = va >> PT_NEAR_SHIFT;
		pt->near_l0 = e;
	}
	return &e[sv39_vpn(va, 0)];
}

static int check_range(uint64_t va, uint64_t size)
{
	uint64_t last = va + size - 1;

	if (size == 0)
		return E_INVAL;
	if ((va | size) & (SV39_PAGE_SIZE - 1))
		return E_ALIGN;
	if (last < va || !sv39_canonical(va) || !sv39_canonical(last))
		return E_RANGE;
	if ((va < SV39_LOWER_END) != (last < SV39_LOWER_END))
		return E_RANGE;
	return 0;
}

static int check_prot(unsigned prot)
{
	unsigned rwx = prot & SV39_PTE_RWX;

	if (prot & ~PT_PROT_MASK || rwx == 0)
		return E_INVAL;
	if ((rwx & PT_W) && !(rwx & PT_R))
		return E_INVAL;   /* W without R is reserved */
	return 0;
}

static int run(struct walk *w, uint64_t va, uint64_t size, unsigned *fence)
{
	const int top = SV39_LEVELS - 1;
	uint64_t last = va + size - 1;
	int rc;

	w->dry = true;
	if (w->op == OP_MAP)
		map_level(w, w->pt->root, top, va, last);
	else
		edit_level(w, w->pt->root, 0, top, va, last);
	if (w->err)
		return w->err;
	rc = reserve(w, w->need);
	if (rc)
		return rc;
	w->dry = false;
	w->pages = 0;
	if (w->op == OP_MAP)
		map_level(w, w->pt->root, top, va, last);
	else
		edit_level(w, w->pt->root, 0, top, va, last);
	if (w->err || w->stash)
		env_panic("pt_run: real pass diverged from dry pass");
	if (fence)
		*fence = w->fence;
	return 0;
}

static __attribute__((noinline)) int
map_general(struct pt *pt, uint64_t va, uint64_t pa, uint64_t size,
	    unsigned prot, unsigned *fence)
{
	struct walk w = { .pt = pt, .op = OP_MAP };
	int rc = check_prot(prot);

	if (size == SV39_PAGE_SIZE && pt_page_args_ok(va, pa, prot)) {
		/* One 4 KiB page under existing tables: a single store. */
		uint64_t *slot = leaf_slot(pt, va);
		if (slot && !*slot) {
			__atomic_store_n(slot, sv39_pte_make(pa, prot | SV39_PTE_V |
							     SV39_PTE_A | SV39_PTE_D),
					 __ATOMIC_RELEASE);
			return 0;
		}
	}
	if (!rc)
		rc = check_range(va, size);
	if (rc)
		return rc;
	if (pa & (SV39_PAGE_SIZE - 1))
		return E_ALIGN;
	if (pa + size - 1 < pa || pa + size - 1 >= (1ull << SV39_PA_BITS))
		return E_RANGE;
	w.off = pa - va;
	w.flags = prot | SV39_PTE_V | SV39_PTE_A | SV39_PTE_D;
	return run(&w, va, size, fence);
}

int pt_map(struct pt *pt, uint64_t va, uint64_t pa, uint64_t size,
	   unsigned prot, unsigned *fence)
{
	if (fence)
		*fence = 0;
	if (size == SV39_PAGE_SIZE && pt_map_page_near(pt, va, pa, prot))
		return 0;
	return map_general(pt, va, pa, size, prot, fence);
}

static __attribute__((noinline)) long
unmap_general(struct pt *pt, uint64_t va, uint64_t size, unsigned *fence)
{
	struct walk w = { .pt = pt, .op = OP_UNMAP };
	int rc = check_range(va, size);

	if (!rc && size == SV39_PAGE_SIZE) {
		/* One 4 KiB leaf: a single store. */
		uint64_t *slot = leaf_slot(pt, va);
		if (slot && sv39_pte_leaf(*slot)) {
			__atomic_store_n(slot, 0, __ATOMIC_RELEASE);
			if (fence)
				*fence = PT_FENCE_VA;
			return 1;
		}
	}
	if (!rc)
		rc = run(&w, va, size, fence);
	return rc ? rc : (long)w.pages;
}

long pt_unmap(struct pt *pt, uint64_t va, uint64_t size, unsigned *fence)
{
	if (fence)
		*fence = 0;
	if (size == SV39_PAGE_SIZE && pt_unmap_page_near(pt, va)) {
		if (fence)
			*fence = PT_FENCE_VA;
		return 1;
	}
	return unmap_general(pt, va, size, fence);
}

int pt_protect(struct pt *pt, uint64_t va, uint64_t size, unsigned prot,
	       unsigned *fence)
{
	struct walk w = { .pt = pt, .op = OP_PROT };
	int rc = check_prot(prot);

	if (fence)
		*fence = 0;
	if (!rc)
		rc = check_range(va, size);
	if (rc)
		return rc;
	w.flags = prot | SV39_PTE_V | SV39_PTE_A | SV39_PTE_D;
	return run(&w, va, size, fence);
}

/* ---- lifetime ----------------------------------------------------------------- */

int pt_init(struct pt *pt, const struct pt_ops *ops)
{
	uint64_t root = ops->alloc_table(ops->ctx);

	if (!root)
		return E_NOMEM;
	pt_attach(pt, ops, root);
	return 0;
}

void pt_attach(struct pt *pt, const struct pt_ops *ops, uint64_t root_pa)
{
	pt->ops = ops;
	pt->root = root_pa;
	pt->keep_lo = pt->keep_hi = 0;
	forget_near(pt);
}

void pt_free_tables(struct pt *pt, unsigned lo, unsigned hi)
{
	uint64_t *root = table(pt, pt->root);

	forget_near(pt);
	for (unsigned i = lo; i < hi && i < SV39_ENTRIES; i++) {
		uint64_t pte = root[i];
		root[i] = 0;
		if (sv39_pte_valid(pte) && !sv39_pte_leaf(pte))
			free_subtree(pt, sv39_pte_pa(pte), SV39_LEVELS - 2);
	}
	if (lo == 0 && hi >= SV39_ENTRIES) {
		pt->ops->free_table(pt->ops->ctx, pt->root);
		pt->root = 0;
	}
}

/* ---- queries ------------------------------------------------------------------- */

int pt_translate(const struct pt *pt, uint64_t va, uint64_t *pa,
		 unsigned *prot, int *level)
{
	uint64_t t = pt->root;

	if (!sv39_canonical(va))
		return E_RANGE;
	for (int l = SV39_LEVELS - 1; l >= 0; l--) {
		uint64_t pte = __atomic_load_n(&table(pt, t)[sv39_vpn(va, l)],
					       __ATOMIC_RELAXED);
		if (!sv39_pte_valid(pte))
			return E_NOENT;
		if (sv39_pte_leaf(pte)) {
			if (pa)
				*pa = sv39_pte_pa(pte) +
				      (va & (sv39_level_size(l) - 1));
			if (prot)
				*prot = (unsigned)(pte & PT_PROT_MASK);
			if (level)
				*level = l;
			return 0;
		}
		t = sv39_pte_pa(pte);
	}
	return E_NOENT;   /* non-leaf at level 0: pt_check reports it */
}

static void count_level(const struct pt *pt, uint64_t t, int level,
			unsigned lo, unsigned hi, uint64_t n[3])
{
	const uint64_t *e = table(pt, t);

	for (unsigned i = lo; i < hi; i++) {
		if (sv39_pte_leaf(e[i]))
			n[level]++;
		else if (sv39_pte_valid(e[i]) && level > 0)
			count_level(pt, sv39_pte_pa(e[i]), level - 1, 0,
				    SV39_ENTRIES, n);
	}
}

void pt_count(const struct pt *pt, unsigned lo, unsigned hi, uint64_t n[3])
{
	n[0] = n[1] = n[2] = 0;
	count_level(pt, pt->root, SV39_LEVELS - 1, lo,
		    hi > SV39_ENTRIES ? SV39_ENTRIES : hi, n);
}

static uint64_t mapped_level(const struct pt *pt, uint64_t t, int level,
			     uint64_t va, uint64_t last)
{
	uint64_t sz = sv39_level_size(level), n = 0;

	for (;;) {
		uint64_t sub = min_u64(va | (sz - 1), last);
		uint64_t pte = table(pt, t)[sv39_vpn(va, level)];

		if (sv39_pte_leaf(pte))
			n += (sub - va + 1) / SV39_PAGE_SIZE;
		else if (sv39_pte_valid(pte) && level > 0)
			n += mapped_level(pt, sv39_pte_pa(pte), level - 1, va, sub);
		if (sub == last)
			return n;
		va = sub + 1;
	}
}

uint64_t pt_mapped_pages(const struct pt *pt, uint64_t va, uint64_t size)
{
	if (check_range(va, size))
		return 0;
	return mapped_level(pt, pt->root, SV39_LEVELS - 1, va, va + size - 1);
}

/* ---- check ------------------------------------------------------------------------ */

static int bad(const char *what, int level, unsigned idx, uint64_t pte)
{
	env_log("pt_check: %s (level %d index %u pte 0x%llx)", what, level, idx,
		(unsigned long long)pte);
	return E_CORRUPT;
}

static int check_entry(struct pt *pt, int level, unsigned idx, uint64_t pte);

static int check_table(struct pt *pt, uint64_t t, int level, unsigned lo,
		       unsigned hi)
{
	uint64_t *e = table(pt, t);

	if (e[0] & PT_MARK)
		return bad("table reached twice", level, 0, e[0]);
	e[0] |= PT_MARK;
	for (unsigned i = lo; i < hi; i++) {
		int rc = check_entry(pt, level, i, i ? e[i] : e[i] & ~PT_MARK);
		if (rc)
			return rc;
	}
	return 0;
}

static int check_entry(struct pt *pt, int level, unsigned idx, uint64_t pte)
{
	uint64_t rwx = pte & SV39_PTE_RWX;

	if (!sv39_pte_valid(pte))
		return pte ? bad("stale bits in invalid PTE", level, idx, pte) : 0;
	if (pte & SV39_PTE_RESERVED)
		return bad("reserved bits set", level, idx, pte);
	if (pte & SV39_PTE_RSW)
		return bad("RSW bits set", level, idx, pte);
	if (rwx) {
		if ((rwx & SV39_PTE_W) && !(rwx & SV39_PTE_R))
			return bad("W without R", level, idx, pte);
		if (sv39_pte_pa(pte) & (sv39_level_size(level) - 1))
			return bad("misaligned large-page PPN", level, idx, pte);
		return 0;
	}
	if (pte & (SV39_PTE_A | SV39_PTE_D | SV39_PTE_U))
		return bad("A/D/U on non-leaf", level, idx, pte);
	if (level == 0)
		return bad("non-leaf at level 0", level, idx, pte);
	return check_table(pt, sv39_pte_pa(pte), level - 1, 0, SV39_ENTRIES);
}

/* Clear the marks check_table left; a table is descended only while marked,
 * so shared tables and cycles end. */
static void unmark(struct pt *pt, uint64_t t, int level, unsigned lo,
		   unsigned hi)
{
	uint64_t *e = table(pt, t);

	if (!(e[0] & PT_MARK))
		return;
	e[0] &= ~PT_MARK;
	for (unsigned i = lo; level > 0 && i < hi; i++)
		if (sv39_pte_valid(e[i]) && !(e[i] & SV39_PTE_RWX) &&
		    !(e[i] & SV39_PTE_RESERVED))
			unmark(pt, sv39_pte_pa(e[i]), level - 1, 0, SV39_ENTRIES);
}

int pt_check(struct pt *pt, unsigned lo, unsigned hi)
{
	int rc;

	if (hi > SV39_ENTRIES)
		hi = SV39_ENTRIES;
	if (table(pt, pt->root)[0] & PT_MARK)
		return bad("RSW bits set", SV39_LEVELS - 1, 0,
			   table(pt, pt->root)[0]);
	rc = check_table(pt, pt->root, SV39_LEVELS - 1, lo, hi);
	unmark(pt, pt->root, SV39_LEVELS - 1, lo, hi);
	return rc;
}
