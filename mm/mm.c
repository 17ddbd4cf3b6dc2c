/* mm.c - LiSA-style shared areas: creation, attachment and the handle
 * pool, addresses, statistics and offset-linked lists. The lock is in
 * mm_lock.c, allocation in mm_alloc.c, the walk in mm_check.c; mm_int.h
 * holds what they share. See mm.h for the contract, docs/MM.md for the
 * layout and the trust model.
 *
 * Freestanding on purpose (no env.h): U-mode partitions compile these
 * files. Every word read from the area is read once (relaxed atomic load)
 * into a local, checked against the handle's private bound h->lim, then
 * used; the area may be rewritten by a hostile attacher at any moment.
 */
#include "mm_int.h"

#define POOL 32                  /* handles for mm_create */

static const struct mm_env *default_env;
static mm_t pool[POOL];
static uint32_t pool_used[POOL];   /* word CAS: no libatomic needed */

/* ---- creation and attachment ---------------------------------------------- */

int mm_init_area(void *base, size_t size, size_t max, size_t static_size)
{
	struct area *a = base;
	uint32_t dyn;

	if (!base || static_size > MM_MAX_SIZE || max > MM_MAX_SIZE)
		return E_INVAL;
	if ((uintptr_t)base % MM_ALIGN || size % MM_ALIGN)
		return E_ALIGN;
	dyn = MM_HDR_SIZE + align16(static_size);
	max &= ~(size_t)15;
	if (size < (size_t)dyn + CHUNK_MIN || max < size)
		return E_RANGE;
	memset(base, 0, dyn);
	a->version = VERSION;
	a->hdr_size = MM_HDR_SIZE;
	a->size = (uint32_t)size;
	a->max_size = (uint32_t)max;
	a->static_size = (uint32_t)static_size;
	a->dyn = dyn;
	mm_fit_format(a, dyn, (uint32_t)size);
	/* The magic last: an attacher that sees it sees a whole header. */
	__atomic_store_n(&a->magic, MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* Trusted copies of the layout from a header that passes every check. */
static int read_layout(mm_t *h)
{
	struct area *a = area_of(h);
	uint32_t st = AL(h, static_size), dyn = AL(h, dyn), max = AL(h, max_size);

	if (__atomic_load_n(&a->magic, __ATOMIC_ACQUIRE) != MAGIC ||
	    AL(h, version) != VERSION || AL(h, hdr_size) != MM_HDR_SIZE)
		return E_CORRUPT;
	if (st > MM_MAX_SIZE || dyn != MM_HDR_SIZE + align16(st) ||
	    max > MM_MAX_SIZE || max % MM_ALIGN || max < (uint64_t)dyn + CHUNK_MIN)
		return E_CORRUPT;
	h->dyn = dyn;
	h->max = max < h->room ? max : (uint32_t)(h->room & ~(size_t)15);
	return 0;
}

static int claim_slot(mm_t *h)
{
	for (unsigned s = 0; s < MM_MAX_ATTACH; s++) {
		uint32_t exp = 0;

		if (__atomic_compare_exchange_n(&area_of(h)->slots[s], &exp,
						h->env.self_id + 1, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			h->slot = s;
			__atomic_fetch_add(&area_of(h)->nattach, 1, __ATOMIC_RELAXED);
			return 0;
		}
	}
	h->slot = MM_MAX_ATTACH;
	return h->env.lock ? 0 : E_BUSY;
}

int mm_attach_base(mm_t *h, void *base, size_t mapped, size_t room,
		   const struct mm_env *env)
{
	int rc;

	if (!h || !base || mapped < MM_HDR_SIZE || room < mapped ||
	    (env && env->self_id >= SLOT_DEAD - 1))
		return E_INVAL;
	if ((uintptr_t)base % MM_ALIGN)
		return E_ALIGN;
	memset(h, 0, sizeof(*h));
	h->base = base;
	h->mapped = mapped;
	h->room = room;
	if (env)
		h->env = *env;
	rc = read_layout(h);
	if (!rc)
		rc = mm_refresh(h);
	if (!rc)
		rc = claim_slot(h);
	if (rc) {
		memset(h, 0, sizeof(*h));
		h->err = rc;
	}
	return rc;
}

static mm_t *pool_get(void)
{
	for (unsigned i = 0; i < POOL; i++) {
		uint32_t exp = 0;

		if (__atomic_compare_exchange_n(&pool_used[i], &exp, 1, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return &pool[i];
	}
	return NULL;
}

static void pool_put(mm_t *h)
{
	__atomic_store_n(&pool_used[h - pool], 0, __ATOMIC_RELEASE);
}

void mm_set_default_env(const struct mm_env *env)
{
	__atomic_store_n(&default_env, env, __ATOMIC_RELEASE);
}

/* The creator formats the area after the environment created it; another
 * attacher may map it before that, so wait (bounded) for the magic. */
static bool wait_formatted(const struct mm_env *env, void *base)
{
	for (unsigned i = 0; i < (1u << 20); i++) {
		if (__atomic_load_n(&((struct area *)base)->magic, __ATOMIC_ACQUIRE))
			return true;
		if (env->relax)
			env->relax();
	}
	return false;
}

mm_t *mm_create_env(const struct mm_env *env, const char *name,
		  size_t static_size, size_t dynamic_size, size_t max_size)
{
	uint64_t initial;
	size_t max, mapped = 0;
	void *base = NULL;
	bool created = false;
	mm_t *h;

	if (!env || !env->attach || !name || static_size > MM_MAX_SIZE ||
	    dynamic_size > MM_MAX_SIZE)
		return NULL;
	initial = (uint64_t)MM_HDR_SIZE + align16(static_size) +
		  align16(dynamic_size) + CHUNK_HDR;
	initial = (initial + QUANTUM - 1) & ~(uint64_t)(QUANTUM - 1);
	max = max_size ? max_size : env->max_size ? env->max_size : MM_DEFAULT_MAX;
	if (max < initial)
		max = initial;
	if (initial > MM_MAX_SIZE || max > MM_MAX_SIZE || !(h = pool_get()))
		return NULL;
	if (env->attach(env->ctx, name, initial, max, &base, &mapped, &created))
		goto fail;
	if (created ? mapped < initial ||
		      mm_init_area(base, initial, max, static_size)
		    : !wait_formatted(env, base))
		goto fail_detach;
	if (mm_attach_base(h, base, mapped, max, env))
		goto fail_detach;
	h->pooled = true;
	return h;
fail_detach:
	if (env->detach)
		env->detach(env->ctx, base, mapped, created);
fail:
	pool_put(h);
	return NULL;
}

mm_t *mm_create(const char *name, size_t static_size, size_t dynamic_size)
{
	return mm_create_env(__atomic_load_n(&default_env, __ATOMIC_ACQUIRE),
			     name, static_size, dynamic_size, 0);
}

int mm_detach(mm_t *h)
{
	struct mm_env env;
	uint32_t exp;
	bool last;

	if (!h || !h->base)
		return E_INVAL;
	if (h->depth)
		return fail(h, E_BUSY);
	env = h->env;
	exp = env.self_id + 1;
	/* A slot already recovered (we were declared dead) stays as it is. */
	if (h->slot < MM_MAX_ATTACH &&
	    __atomic_compare_exchange_n(&area_of(h)->slots[h->slot], &exp, 0, false,
					__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		last = __atomic_sub_fetch(&area_of(h)->nattach, 1, __ATOMIC_ACQ_REL) == 0;
	else
		last = false;
	if (env.detach)
		env.detach(env.ctx, h->base, h->mapped, last);
	h->base = NULL;
	if (h->pooled)
		pool_put(h);
	return 0;
}

/* ---- addresses ------------------------------------------------------------- */

void *mm_addr_n(mm_t *h, mm_ptr_t p, size_t len)
{
	if (!h || !h->base || p < MM_HDR_SIZE || len > h->lim || p > h->lim - len)
		return NULL;
	return h->base + p;
}

void *mm_addr(mm_t *h, mm_ptr_t p)
{
	return mm_addr_n(h, p, 1);
}

mm_ptr_t mm_ptr(mm_t *h, const void *addr)
{
	uintptr_t a = (uintptr_t)addr, b;

	if (!h || !h->base)
		return MM_NULL;
	b = (uintptr_t)h->base;
	if (a < b + MM_HDR_SIZE || a - b >= h->lim)
		return MM_NULL;
	return (mm_ptr_t)(a - b);
}

void *mm_static(mm_t *h)
{
	return h && h->base && h->dyn > MM_HDR_SIZE ? h->base + MM_HDR_SIZE : NULL;
}

size_t mm_static_size(mm_t *h)
{
	return h && h->base ? h->dyn - MM_HDR_SIZE : 0;
}

int mm_last_error(mm_t *h)
{
	return h ? h->err : E_INVAL;
}

/* ---- inspection ------------------------------------------------------------ */

int mm_stats(mm_t *h, struct mm_stats *st)
{
	int rc;

	if (!st)
		return E_INVAL;
	rc = mm_lock_in(h, MM_LOCK_RD);
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	st->size = h->lim;
	st->max_size = h->max;
	st->static_size = h->dyn - MM_HDR_SIZE;
	st->used = AL(h, used);
	st->free = AL(h, free);
	if (st->used > h->lim)
		st->used = h->lim;
	if (st->free > h->lim)
		st->free = h->lim;
	st->allocs = AL(h, allocs);
	st->frees = AL(h, frees);
	st->grows = AL(h, grows);
	st->failures = AL(h, failures);
	st->nattach = AL(h, nattach);
	st->generation = AL(h, generation);
	st->deaths = AL(h, deaths);
	mm_unlock(h);
	return 0;
}

size_t mm_available(mm_t *h)
{
	struct mm_stats st;

	if (mm_stats(h, &st))
		return 0;
	return st.free + (st.max_size - st.size);
}

/* ---- lists ------------------------------------------------------------------- */

/* A node at offset p: in range and aligned (a forged odd offset must not
 * become a misaligned access, which may trap on RISC-V). */
static struct mm_list *node_at(mm_t *h, mm_ptr_t p)
{
	if (p % _Alignof(struct mm_list))
		return NULL;
	return mm_addr_n(h, p, sizeof(struct mm_list));
}

#define LD(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

size_t mm_list_bound(mm_t *h)
{
	return h ? h->lim / sizeof(struct mm_list) : 0;
}

int mm_list_init(mm_t *h, struct mm_list *head)
{
	mm_ptr_t ho = mm_ptr(h, head);

	if (!node_at(h, ho))
		return E_FAULT;
	ST(head->next, ho);
	ST(head->prev, ho);
	return 0;
}

/* Link node (offset no) between a and b, which must point at each other. */
static int insert(mm_t *h, mm_ptr_t no, mm_ptr_t ao, mm_ptr_t bo)
{
	struct mm_list *n = node_at(h, no), *a = node_at(h, ao), *b = node_at(h, bo);

	if (!n || !a || !b)
		return E_FAULT;
	if (LD(a->next) != bo || LD(b->prev) != ao || no == ao || no == bo)
		return E_CORRUPT;
	ST(n->next, bo);
	ST(n->prev, ao);
	ST(b->prev, no);
	ST(a->next, no);
	return 0;
}

int mm_list_add(mm_t *h, struct mm_list *head, struct mm_list *node)
{
	mm_ptr_t ho = mm_ptr(h, head), no = mm_ptr(h, node);

	if (!ho || !no)
		return E_FAULT;
	return insert(h, no, ho, LD(head->next));
}

int mm_list_add_tail(mm_t *h, struct mm_list *head, struct mm_list *node)
{
	mm_ptr_t ho = mm_ptr(h, head), no = mm_ptr(h, node);

	if (!ho || !no)
		return E_FAULT;
	return insert(h, no, LD(head->prev), ho);
}

int mm_list_del(mm_t *h, struct mm_list *node)
{
	mm_ptr_t no = mm_ptr(h, node), ao, bo;
	struct mm_list *a, *b;

	if (!no || !node_at(h, no))
		return E_FAULT;
	ao = LD(node->prev);
	bo = LD(node->next);
	a = node_at(h, ao);
	b = node_at(h, bo);
	if (!a || !b || ao == no || bo == no)
		return E_CORRUPT;
	if (LD(a->next) != no || LD(b->prev) != no)
		return E_CORRUPT;
	ST(a->next, bo);
	ST(b->prev, ao);
	ST(node->next, no);
	ST(node->prev, no);
	return 0;
}

bool mm_list_empty(mm_t *h, struct mm_list *head)
{
	mm_ptr_t ho = mm_ptr(h, head);

	return !ho || LD(head->next) == ho || !node_at(h, LD(head->next));
}

struct mm_list *mm_list_next(mm_t *h, struct mm_list *head, struct mm_list *pos)
{
	mm_ptr_t ho = mm_ptr(h, head), po = mm_ptr(h, pos), no;
	struct mm_list *n;

	if (!ho || !po)
		return NULL;
	no = LD(pos->next);
	if (no == ho || !(n = node_at(h, no)) || LD(n->prev) != po)
		return NULL;
	return n;
}
