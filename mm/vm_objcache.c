/* vm_objcache.c - size-class pages for the VM manager's objects (see
 * vm_objcache.h). Each page starts with a header (its class, a free list
 * and a bitmap of live slots); objects follow at OBJ_START. Pages with a
 * free slot are on a doubly linked list per class; a full page is on none.
 */
#include "vm_objcache.h"

#include "vm.h"

#define PAGE      ((uintptr_t)ENV_PAGE_SIZE)
#define OBJ_START 128u                   /* header room, 16-aligned */
#define MAX_SLOTS ((ENV_PAGE_SIZE - OBJ_START) / VM_OBJ_MIN)
#define PG_MAGIC  0x564d4f43u            /* "VMOC" */

struct vm_objpage {
	uint32_t magic;
	uint32_t cls;
	uint32_t inuse;
	uint32_t nslots;
	struct vm_objcache *cache;
	struct vm_objpage *next, *prev;      /* in cache->room[cls] */
	struct vm_objpage *anext, *aprev;    /* in cache->all */
	void *free;                          /* free slots, linked through word 0 */
	uint64_t pa;
	uint64_t live[(MAX_SLOTS + 63) / 64];
};

_Static_assert(sizeof(struct vm_objpage) <= OBJ_START, "vm_objcache: header fits");
_Static_assert(sizeof(struct vm_descriptor) <= VM_OBJ_MAX && sizeof(struct vm_segment) <= VM_OBJ_MAX &&
	       sizeof(struct vm_range) <= VM_OBJ_MAX, "vm_objcache: the VM's objects fit a class");

static uint32_t obj_size(uint32_t cls)
{
	return VM_OBJ_MIN << cls;
}

static struct vm_objpage *page_of(const void *p)
{
	return (struct vm_objpage *)((uintptr_t)p & ~(PAGE - 1));
}

static void room_link(struct vm_objcache *c, struct vm_objpage *pg)
{
	pg->prev = NULL;
	pg->next = c->room[pg->cls];
	if (pg->next)
		pg->next->prev = pg;
	c->room[pg->cls] = pg;
}

static void room_unlink(struct vm_objcache *c, struct vm_objpage *pg)
{
	if (pg->prev)
		pg->prev->next = pg->next;
	else
		c->room[pg->cls] = pg->next;
	if (pg->next)
		pg->next->prev = pg->prev;
	pg->next = pg->prev = NULL;
}

/* Drop pg (off its room list already) and give it back (lock held). */
static void page_drop(struct vm_objcache *c, struct vm_objpage *pg)
{
	if (pg->aprev)
		pg->aprev->anext = pg->anext;
	else
		c->all = pg->anext;
	if (pg->anext)
		pg->anext->aprev = pg->aprev;
	pg->magic = 0;
	c->pages--;
	c->ops.free_table(c->ops.ctx, pg->pa);
}

/* Is pg one of c's pages? A pointer from elsewhere is never read. */
static bool holds(const struct vm_objcache *c, const struct vm_objpage *pg)
{
	for (const struct vm_objpage *q = c->all; q; q = q->anext)
		if (q == pg)
			return true;
	return false;
}

/* A new page of class cls on the room list, or NULL (lock held). */
static struct vm_objpage *page_new(struct vm_objcache *c, uint32_t cls)
{
	uint64_t pa = c->ops.alloc_table(c->ops.ctx);
	struct vm_objpage *pg;
	uint32_t size = obj_size(cls);
	char *slot;

	if (!pa)
		return NULL;
	pg = c->ops.pa_to_va(c->ops.ctx, pa);
	*pg = (struct vm_objpage){ .magic = PG_MAGIC, .cls = cls, .cache = c, .pa = pa };
	pg->nslots = (uint32_t)((ENV_PAGE_SIZE - OBJ_START) / size);
	/* free list in address order: the first objects are the lowest */
	for (uint32_t i = pg->nslots; i-- > 0;) {
		slot = (char *)pg + OBJ_START + (size_t)i * size;
		*(void **)slot = pg->free;
		pg->free = slot;
	}
	room_link(c, pg);
	pg->anext = c->all;
	if (c->all)
		c->all->aprev = pg;
	c->all = pg;
	c->pages++;
	return pg;
}

void vm_objcache_init(struct vm_objcache *c, const struct pt_ops *ops)
{
	*c = (struct vm_objcache){ .lock = ENV_SPINLOCK_INIT, .ops = *ops };
}

static int class_of(size_t size)
{
	uint32_t cls = 0;

	if (size == 0 || size > VM_OBJ_MAX)
		return -1;
	while (obj_size(cls) < size)
		cls++;
	return (int)cls;
}

void *vm_objcache_alloc(void *cache, size_t size)
{
	struct vm_objcache *c = cache;
	int cls = class_of(size);
	struct vm_objpage *pg;
	unsigned long fl;
	void *p = NULL;
	uint32_t i;

	if (cls < 0)
		return NULL;
	fl = env_lock(&c->lock);
	pg = c->room[cls] ? c->room[cls] : page_new(c, (uint32_t)cls);
	if (pg) {
		p = pg->free;
		pg->free = *(void **)p;
		i = (uint32_t)(((uintptr_t)p - (uintptr_t)pg - OBJ_START) / obj_size(pg->cls));
		pg->live[i / 64] |= 1ull << (i % 64);
		pg->inuse++;
		c->live++;
		if (!pg->free)
			room_unlink(c, pg);
	}
	env_unlock(&c->lock, fl);
	return p;
}

/* Slot index of p in pg, or -1 when p is not a live object's start. */
static long live_slot(const struct vm_objcache *c, const struct vm_objpage *pg,
		      const void *p)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)pg;
	uint32_t size, i;

	if (!holds(c, pg) || pg->magic != PG_MAGIC || pg->cache != c ||
	    pg->cls >= VM_OBJ_NCLASS || off < OBJ_START)
		return -1;
	size = obj_size(pg->cls);
	if ((off - OBJ_START) % size)
		return -1;
	i = (uint32_t)((off - OBJ_START) / size);
	if (i >= pg->nslots || !(pg->live[i / 64] & (1ull << (i % 64))))
		return -1;
	return (long)i;
}

void vm_objcache_free(void *cache, void *p)
{
	struct vm_objcache *c = cache;
	struct vm_objpage *pg = page_of(p);
	unsigned long fl;
	long i;

	if (!p)
		return;
	fl = env_lock(&c->lock);
	i = live_slot(c, pg, p);
	if (i < 0) {
		c->refused++;
		env_unlock(&c->lock, fl);
		env_log("vm_objcache_free(%p): not a live object of this cache (%s)", p,
			err_str(E_INVAL));
		return;
	}
	pg->live[i / 64] &= ~(1ull << (i % 64));
	if (!pg->free)
		room_link(c, pg);            /* was full */
	*(void **)p = pg->free;
	pg->free = p;
	pg->inuse--;
	c->live--;
	/* An empty page goes back unless it is its class's only room. */
	if (!pg->inuse && (pg->next || pg->prev)) {
		room_unlink(c, pg);
		page_drop(c, pg);
	}
	env_unlock(&c->lock, fl);
}

void vm_objcache_fini(struct vm_objcache *c)
{
	unsigned long fl = env_lock(&c->lock);

	for (uint32_t cls = 0; cls < VM_OBJ_NCLASS; cls++)
		c->room[cls] = NULL;
	while (c->all)
		page_drop(c, c->all);
	c->live = 0;
	env_unlock(&c->lock, fl);
}

static int page_bad(const struct vm_objpage *pg, const char *what)
{
	env_log("vm_objcache_check: page %p: %s", (const void *)pg, what);
	return E_CORRUPT;
}

/* One page on a room list: header, free list against the bitmap. */
static int check_page(const struct vm_objcache *c, const struct vm_objpage *pg,
		      uint32_t cls, uint64_t *inuse)
{
	uint32_t nfree = 0, nlive = 0;

	if (pg->magic != PG_MAGIC || pg->cache != c || pg->cls != cls ||
	    pg->nslots != (ENV_PAGE_SIZE - OBJ_START) / obj_size(cls))
		return page_bad(pg, "bad header");
	for (const void *f = pg->free; f; f = *(void *const *)f) {
		uintptr_t off = (uintptr_t)f - (uintptr_t)pg;
		if (page_of(f) != pg || off < OBJ_START || (off - OBJ_START) % obj_size(cls) ||
		    live_slot(c, pg, f) >= 0 || ++nfree > pg->nslots)
			return page_bad(pg, "free list broken");
	}
	for (uint32_t w = 0; w < sizeof(pg->live) / 8; w++)
		nlive += (uint32_t)__builtin_popcountll(pg->live[w]);
	if (nlive != pg->inuse || nlive + nfree != pg->nslots)
		return page_bad(pg, "counts do not add up");
	*inuse += nlive;
	return 0;
}

/* Is pg on its class's room list? */
static bool on_room(const struct vm_objcache *c, const struct vm_objpage *pg)
{
	for (const struct vm_objpage *q = c->room[pg->cls]; q; q = q->next)
		if (q == pg)
			return true;
	return false;
}

int vm_objcache_check(struct vm_objcache *c)
{
	unsigned long fl = env_lock(&c->lock);
	uint64_t inuse = 0, pages = 0;
	int rc = 0;

	for (const struct vm_objpage *pg = c->all; pg && !rc; pg = pg->anext) {
		pages++;
		rc = pg->cls < VM_OBJ_NCLASS ? check_page(c, pg, pg->cls, &inuse)
					     : page_bad(pg, "bad class");
		if (!rc && on_room(c, pg) != (pg->free != NULL))
			rc = page_bad(pg, pg->free ? "page with room not on its list"
						   : "full page on a room list");
	}
	if (!rc && (pages != c->pages || inuse != c->live))
		rc = page_bad(NULL, "totals do not match the pages");
	env_unlock(&c->lock, fl);
	return rc;
}
