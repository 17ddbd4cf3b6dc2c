/* mm_test.c - shared mm areas on ktest_mem buffers: every call, growth,
 * hostile corruption (canaries around the area), lock modes and recursion,
 * owner-died recovery, lists, alignment, coalescing, a multi-CPU stress. */
#include "ktest.h"
#include "mm.h"

#include <stdio.h>
#include <string.h>

#include "env.h"

/* One attacher per CPU, and the test's own handle besides (stress_parallel). */
_Static_assert(MM_MAX_ATTACH >= ENV_MAX_CPUS + 1, "an area admits one attacher per CPU");

/* Header words, docs/MM.md: the lock word (writer bit and slot), the
 * reader bits, the slot table. */
#define LKW(s) ((1ull << 63) | ((uint64_t)(s) << 48))
#define LW(buf) (*(volatile uint64_t *)((buf) + 40))
#define RDW(buf, k) (*(volatile uint64_t *)((buf) + 96 + 8 * (k)))
#define SLOT(buf, s) (*(volatile uint32_t *)((buf) + 200 + 4 * (s)))

/* A test environment: one area in a reserved buffer; growth and mapping
 * only move the "mapped" mark, the memory is already there. */
struct tenv {
	uint8_t *buf;
	size_t room;
	size_t size;          /* the area's size as the "kernel" knows it */
	int attaches, detaches, last_seen, created;
	uint32_t dead_id;     /* is_alive says no for this id (if not 0) */
};

static int t_attach(void *ctx, const char *name, size_t initial, size_t max,
		    void **base, size_t *mapped, bool *created)
{
	struct tenv *e = ctx;

	if (max > e->room)
		return E_NOMEM;
	*created = e->created == 0;
	if (*created) {
		e->created = 1;
		e->size = initial;
	}
	*base = e->buf;
	*mapped = e->size;
	e->attaches++;
	return 0;
}

static int t_grow(void *ctx, void *base, size_t new_size, size_t *mapped)
{
	struct tenv *e = ctx;

	if (new_size > e->room)
		return E_NOMEM;
	if (new_size > __atomic_load_n(&e->size, __ATOMIC_RELAXED))
		__atomic_store_n(&e->size, new_size, __ATOMIC_RELAXED);
	*mapped = new_size;
	return 0;
}

static int t_ensure(void *ctx, void *base, size_t size, size_t *mapped)
{
	struct tenv *e = ctx;

	if (size > __atomic_load_n(&e->size, __ATOMIC_RELAXED))
		return E_RANGE;     /* the area is not that large */
	*mapped = size;
	return 0;
}

static int t_detach(void *ctx, void *base, size_t mapped, bool last)
{
	struct tenv *e = ctx;

	__atomic_fetch_add(&e->detaches, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&e->last_seen, last, __ATOMIC_RELAXED);
	return 0;
}

static bool t_alive(void *ctx, uint32_t id)
{
	struct tenv *e = ctx;
	return !e->dead_id || id != e->dead_id;
}

static struct mm_env tenv_make(struct tenv *e, uint32_t id)
{
	struct mm_env env = {
		.attach = t_attach, .grow = t_grow, .ensure_mapped = t_ensure,
		.detach = t_detach, .is_alive = t_alive, .self_id = id, .ctx = e,
	};
	return env;
}

/* A plain area of `size` bytes with guard canaries on both sides. */
#define GUARD 4096
static uint8_t *guarded(size_t size)
{
	uint8_t *b = ktest_mem(size + 2 * GUARD, 64);

	if (!b)
		return NULL;
	memset(b, 0xc5, GUARD);
	memset(b + GUARD + size, 0xc5, GUARD);
	return b + GUARD;
}

static bool guards_ok(const uint8_t *area, size_t size)
{
	for (size_t i = 0; i < GUARD; i++)
		if (area[-1 - (long)i] != 0xc5 || area[size + i] != 0xc5)
			return false;
	return true;
}

KTEST(mm, basic_calls)
{
	size_t size = 16384;
	uint8_t *buf = ktest_mem(size, 16);
	mm_t h;
	mm_ptr_t p, q;
	struct mm_stats st;

	ASSERT(buf);
	EXPECT_EQ(mm_init_area(buf + 8, size, size, 0), E_ALIGN);
	EXPECT_EQ(mm_init_area(buf, 608, 608, 100), E_RANGE);
	ASSERT_EQ(mm_init_area(buf, size, size, 100), 0);
	ASSERT_EQ(mm_attach_base(&h, buf, size, size, NULL), 0);
	EXPECT(mm_static(&h) == buf + MM_HDR_SIZE);
	EXPECT_EQ(mm_static_size(&h), 112);
	EXPECT_EQ(mm_check(&h), 0);
	size_t avail = mm_available(&h);
	EXPECT_EQ(avail, size - MM_HDR_SIZE - 112);
	p = mm_alloc(&h, 100);
	ASSERT_NE(p, MM_NULL);
	EXPECT_EQ(p % 16, 0);
	memset(mm_addr(&h, p), 0xab, 100);
	EXPECT_EQ(mm_ptr(&h, mm_addr(&h, p)), p);
	EXPECT_EQ(mm_ptr(&h, (uint8_t *)mm_addr(&h, p) + 7), p + 7);
	EXPECT(mm_addr(&h, MM_NULL) == NULL);
	EXPECT(mm_addr(&h, 4) == NULL);           /* header */
	EXPECT(mm_addr(&h, (mm_ptr_t)size) == NULL);
	EXPECT(mm_addr_n(&h, (mm_ptr_t)size - 8, 16) == NULL);
	EXPECT(mm_addr_n(&h, (mm_ptr_t)size - 16, 16) != NULL);
	EXPECT_EQ(mm_ptr(&h, buf), MM_NULL);
	EXPECT_EQ(mm_ptr(&h, buf + size), MM_NULL);
	EXPECT_LT(mm_available(&h), avail);
	q = mm_realloc(&h, p, 300);
	ASSERT_NE(q, MM_NULL);
	EXPECT_EQ(((uint8_t *)mm_addr(&h, q))[99], 0xab);
	EXPECT_EQ(mm_stats(&h, &st), 0);
	EXPECT_EQ(st.size, size);
	EXPECT_GE(st.allocs, 1);
	EXPECT_EQ(mm_free(&h, q), 0);
	EXPECT_EQ(mm_free(&h, MM_NULL), 0);
	EXPECT_EQ(mm_available(&h), avail);
	EXPECT_EQ(mm_check(&h), 0);
	EXPECT_EQ(mm_detach(&h), 0);
}

KTEST(mm, alignment)
{
	size_t size = 1 << 20;
	uint8_t *buf = ktest_mem(size, 16);
	mm_t h;

	ASSERT(buf && mm_init_area(buf, size, size, 13) == 0);
	ASSERT_EQ(mm_attach_base(&h, buf, size, size, NULL), 0);
	EXPECT_EQ((uintptr_t)mm_static(&h) % 16, 0);
	for (size_t n = 0; n < 400 && !KT_FAILED(); n++) {
		mm_ptr_t p = mm_alloc(&h, n);

		ASSERT_NE(p, MM_NULL);
		EXPECT_EQ((uintptr_t)mm_addr(&h, p) % MM_ALIGN, 0);
		memset(mm_addr(&h, p), (int)n, n);
		if (n % 3)
			EXPECT_EQ(mm_free(&h, p), 0);
	}
	EXPECT_EQ(mm_check(&h), 0);
}

KTEST(mm, coalesce)
{
	size_t size = 8192;
	uint8_t *buf = ktest_mem(size, 16);
	mm_t h;
	mm_ptr_t a, b, c, d, all;
	size_t avail;

	ASSERT(buf && mm_init_area(buf, size, size, 0) == 0);
	ASSERT_EQ(mm_attach_base(&h, buf, size, size, NULL), 0);
	avail = mm_available(&h);
	a = mm_alloc(&h, 100);
	b = mm_alloc(&h, 100);
	c = mm_alloc(&h, 100);
	d = mm_alloc(&h, 100);   /* keeps c from merging with the tail */
	ASSERT(a && b && c && d);
	EXPECT_EQ(mm_free(&h, a), 0);
	EXPECT_EQ(mm_free(&h, c), 0);
	EXPECT_EQ(mm_check(&h), 0);
	EXPECT_EQ(mm_free(&h, b), 0);
	EXPECT_EQ(mm_check(&h), 0);
	/* a+b+c is one chunk now: an allocation of 3 * 100 + 2 headers fits
	 * exactly where a was. */
	all = mm_alloc(&h, 3 * 112 + 2 * 16);
	EXPECT_EQ(all, a);
	EXPECT_EQ(mm_free(&h, all), 0);
	EXPECT_EQ(mm_free(&h, d), 0);
	EXPECT_EQ(mm_available(&h), avail);
	all = mm_alloc(&h, avail - 16);  /* the whole dynamic part: one chunk */
	EXPECT_NE(all, MM_NULL);
	EXPECT_EQ(mm_alloc(&h, 1), MM_NULL);
	EXPECT_EQ(mm_last_error(&h), E_NOMEM);
	EXPECT_EQ(mm_free(&h, all), 0);
	EXPECT_EQ(mm_free(&h, all), E_INVAL);    /* double free */
	EXPECT_EQ(mm_free(&h, all + 16), E_INVAL);
	EXPECT_EQ(mm_check(&h), 0);
}

KTEST(mm, realloc_copies_user_bytes)
{
	size_t size = 65536;
	uint8_t *buf = ktest_mem(size, 16);
	mm_t h;
	mm_ptr_t p, q, guard, r;

	ASSERT(buf && mm_init_area(buf, size, size, 0) == 0);
	ASSERT_EQ(mm_attach_base(&h, buf, size, size, NULL), 0);
	p = mm_alloc(&h, 40);
	ASSERT_NE(p, MM_NULL);
	for (int i = 0; i < 40; i++)
		((uint8_t *)mm_addr(&h, p))[i] = (uint8_t)i;
	/* grows in place into the free tail */
	q = mm_realloc(&h, p, 1000);
	EXPECT_EQ(q, p);
	EXPECT_EQ(mm_check(&h), 0);
	/* shrinks in place */
	q = mm_realloc(&h, q, 20);
	EXPECT_EQ(q, p);
	EXPECT_EQ(mm_check(&h), 0);
	guard = mm_alloc(&h, 64);
	ASSERT_NE(guard, MM_NULL);
	memset(mm_addr(&h, guard), 0x77, 64);
	/* must move: only the 20 requested bytes are copied */
	r = mm_realloc(&h, q, 5000);
	ASSERT_NE(r, MM_NULL);
	EXPECT_NE(r, p);
	for (int i = 0; i < 20; i++)
		EXPECT_EQ(((uint8_t *)mm_addr(&h, r))[i], i);
	for (int i = 0; i < 64; i++)
		EXPECT_EQ(((uint8_t *)mm_addr(&h, guard))[i], 0x77);
	EXPECT_EQ(mm_realloc(&h, r, 0), MM_NULL);
	EXPECT_EQ(mm_realloc(&h, r, 10), MM_NULL);      /* r was freed */
	EXPECT_EQ(mm_last_error(&h), E_INVAL);
	EXPECT_EQ(mm_realloc(&h, guard, (size_t)1 << 40), MM_NULL);
	EXPECT_NE(mm_realloc(&h, MM_NULL, 10), MM_NULL);
	EXPECT_EQ(mm_check(&h), 0);
}

KTEST(mm, growth_and_second_mapping)
{
	struct tenv e = { 0 };
	struct mm_env env;
	struct mm_stats st;
	mm_t *a, *b;
	mm_ptr_t p[64];
	unsigned n = 0;

	e.room = 1 << 20;
	e.buf = ktest_mem(e.room, 4096);
	ASSERT(e.buf);
	env = tenv_make(&e, 1);
	a = mm_create_env(&env, "g", 64, 1024, e.room);
	ASSERT(a);
	EXPECT_EQ(e.size, 4096);
	env.self_id = 2;
	b = mm_create_env(&env, "g", 64, 1024, e.room);
	ASSERT(b);
	EXPECT_EQ(e.attaches, 2);
	EXPECT(mm_static(a) == mm_static(b));
	/* allocate 64 x 8 KiB: the area must grow several times */
	for (; n < 64; n++) {
		p[n] = mm_alloc(a, 8000);
		ASSERT_NE(p[n], MM_NULL);
		memset(mm_addr(a, p[n]), (int)n, 8000);
	}
	EXPECT_EQ(mm_stats(a, &st), 0);
	EXPECT_GE(st.grows, 3);
	EXPECT_GE(st.size, 64 * 8000);
	EXPECT_EQ(st.nattach, 2);
	/* b's view is stale until it locks */
	EXPECT(mm_addr(b, p[63]) == NULL);
	EXPECT_EQ(mm_lock(b, MM_LOCK_RD), 0);
	EXPECT(mm_addr(b, p[63]) != NULL);
	EXPECT_EQ(((uint8_t *)mm_addr(b, p[63]))[7999], 63);
	EXPECT_EQ(mm_unlock(b), 0);
	EXPECT_EQ(mm_check(b), 0);
	/* beyond max: fails cleanly */
	EXPECT_EQ(mm_alloc(a, 2 << 20), MM_NULL);
	EXPECT_EQ(mm_last_error(a), E_NOMEM);
	for (unsigned i = 0; i < n; i += 2)
		EXPECT_EQ(mm_free(b, p[i]), 0);
	EXPECT_EQ(mm_check(a), 0);
	EXPECT_GE(mm_available(a), e.room - st.size);
	EXPECT_EQ(mm_detach(a), 0);
	EXPECT_EQ(e.last_seen, 0);
	EXPECT_EQ(mm_detach(b), 0);
	EXPECT_EQ(e.last_seen, 1);
	EXPECT_EQ(e.detaches, 2);
}

KTEST(mm, default_env_create)
{
	struct tenv e = { 0 };
	struct mm_env env;
	mm_t *a;

	e.room = 64 << 10;
	e.buf = ktest_mem(e.room, 4096);
	ASSERT(e.buf);
	env = tenv_make(&e, 3);
	env.max_size = e.room;
	mm_set_default_env(&env);
	a = mm_create("x", 32, 100);
	mm_set_default_env(NULL);
	ASSERT(a);
	EXPECT(mm_create("y", 0, 10) == NULL);      /* no default env */
	EXPECT(mm_create_env(&env, NULL, 0, 10, 0) == NULL);
	EXPECT_NE(mm_alloc(a, 30000), MM_NULL);    /* grows to room */
	EXPECT_EQ(mm_alloc(a, 40000), MM_NULL);
	EXPECT_EQ(mm_detach(a), 0);
}

KTEST(mm, lock_modes)
{
	size_t size = 8192;
	uint8_t *buf = ktest_mem(size, 16);
	mm_t h, g;

	ASSERT(buf && mm_init_area(buf, size, size, 16) == 0);
	ASSERT_EQ(mm_attach_base(&h, buf, size, size, NULL), 0);
	ASSERT_EQ(mm_attach_base(&g, buf, size, size, NULL), 0);
	EXPECT_EQ(mm_unlock(&h), E_INVAL);
	EXPECT_EQ(mm_lock(&h, 3), E_INVAL);
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), 0);
	EXPECT_EQ(mm_lock(&g, MM_LOCK_RD), 0);       /* readers share */
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), 0);       /* recursion */
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RW), E_DENIED);  /* no upgrade */
	EXPECT_EQ(mm_alloc(&h, 10), MM_NULL);
	EXPECT_EQ(mm_last_error(&h), E_DENIED);
	EXPECT_EQ(mm_check(&h), 0);                  /* RD inside RD */
	EXPECT_EQ(mm_detach(&h), E_BUSY);
	EXPECT_EQ(mm_unlock(&h), 0);
	EXPECT_EQ(mm_unlock(&h), 0);
	EXPECT_EQ(mm_unlock(&g), 0);
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RW), 0);
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RW), 0);
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), 0);       /* RD inside RW */
	mm_ptr_t p = mm_alloc(&h, 10);               /* RW taken recursively */
	EXPECT_NE(p, MM_NULL);
	EXPECT_EQ(mm_free(&h, p), 0);
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(mm_unlock(&h), 0);
	EXPECT_EQ(mm_unlock(&h), E_INVAL);
	EXPECT_EQ(mm_lock(&g, MM_LOCK_RW), 0);       /* free again */
	EXPECT_EQ(mm_unlock(&g), 0);
	EXPECT_EQ(mm_detach(&h), 0);
	EXPECT_EQ(mm_detach(&g), 0);
}

/* An 8 KiB area attached by partition 5 (h5) and then 6 (h6), and h5
 * holding RW: the holder that dies or stalls and the one that sees it.
 * `env` is left naming 6 for more attaches. False if a step failed. */
#define PAIR_SIZE 8192
struct pair {
	struct tenv e;
	struct mm_env env;
	mm_t h5, h6;
	uint8_t *buf;
};

static bool pair_5_holds_rw(struct pair *p)
{
	p->buf = ktest_mem(PAIR_SIZE, 16);
	p->env = tenv_make(&p->e, 5);
	if (!p->buf || mm_init_area(p->buf, PAIR_SIZE, PAIR_SIZE, 0) ||
	    mm_attach_base(&p->h5, p->buf, PAIR_SIZE, PAIR_SIZE, &p->env))
		return false;
	p->env.self_id = 6;
	return !mm_attach_base(&p->h6, p->buf, PAIR_SIZE, PAIR_SIZE, &p->env) &&
	       !mm_lock(&p->h5, MM_LOCK_RW);
}

KTEST(mm, owner_died)
{
	struct pair p = { 0 };
	mm_t rd;
	struct mm_stats st;

	ASSERT(pair_5_holds_rw(&p));
	/* the kernel path: partition 5 dies holding RW */
	EXPECT_NE(mm_alloc(&p.h5, 64), MM_NULL);
	EXPECT_EQ(mm_area_owner_died(p.buf, PAIR_SIZE, 5), 1);
	EXPECT_EQ(mm_area_owner_died(p.buf, PAIR_SIZE, 5), 0);   /* idempotent */
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_check(&p.h6), 0);
	/* the "dead" one wakes up and unlocks: live's hold must survive */
	EXPECT_EQ(mm_unlock(&p.h5), 0);
	EXPECT_EQ(LW(p.buf), LKW(p.h6.slot));
	EXPECT_EQ(mm_unlock(&p.h6), 0);
	EXPECT_EQ(LW(p.buf), 0);
	/* a forged word naming live as the writer: no self-deadlock */
	LW(p.buf) = LKW(p.h6.slot);
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&p.h6), 0);
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RD), 0);         /* told once */
	EXPECT_EQ(mm_unlock(&p.h6), 0);
	/* a writer slot no attacher can have */
	LW(p.buf) = LKW(255);
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RD), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&p.h6), 0);
	EXPECT_EQ(LW(p.buf), 0);
	/* the waiter path: partition 7 dies holding RD; is_alive says so */
	p.env.self_id = 7;
	ASSERT_EQ(mm_attach_base(&rd, p.buf, PAIR_SIZE, PAIR_SIZE, &p.env), 0);
	EXPECT_EQ(mm_lock(&rd, MM_LOCK_RD), 0);
	p.e.dead_id = 7;
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&p.h6), 0);
	EXPECT_EQ(mm_stats(&p.h6, &st), 0);
	EXPECT_EQ(st.deaths, 2);
	EXPECT_EQ(st.nattach, 1);
	EXPECT_EQ(mm_area_owner_died(p.buf + 16, PAIR_SIZE, 1), E_CORRUPT);
	EXPECT_EQ(mm_area_owner_died(NULL, PAIR_SIZE, 1), E_INVAL);
	EXPECT_EQ(mm_detach(&p.h6), 0);
}

/* ---- the lock word without hooks: every wait bounded, forgeries caught -- */


KTEST(mm, forged_words_of_every_kind_are_released)
{
	size_t size = 8192;
	uint8_t *buf = ktest_mem(size, 16);
	struct tenv e = { 0 };
	struct mm_env env;
	mm_t live;

	ASSERT(buf && mm_init_area(buf, size, size, 0) == 0);
	env = tenv_make(&e, 6);
	ASSERT_EQ(mm_attach_base(&live, buf, size, size, &env), 0);
	ASSERT_EQ(live.slot, 0);
	/* issue 11.1: a writer in a slot nobody holds (slot 55, entry 0) */
	LW(buf) = LKW(55);
	EXPECT_EQ(mm_lock(&live, MM_LOCK_RD), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&live), 0);
	EXPECT_EQ(LW(buf), 0);
	/* words no writer can make: no writer bit, stray bits, slot >= 128 */
	static const uint64_t junk[] = { 0x7700000000000000ull, LKW(3) | 1,
					 LKW(3) | (1ull << 62), LKW(MM_MAX_ATTACH) };
	for (unsigned k = 0; k < sizeof(junk) / sizeof(junk[0]); k++) {
		LW(buf) = junk[k];
		EXPECT_EQ(mm_lock(&live, k % 2 ? MM_LOCK_RW : MM_LOCK_RD), MM_LOCK_OWNER_DIED);
		EXPECT_EQ(mm_unlock(&live), 0);
		EXPECT_EQ(LW(buf), 0);
	}
	/* reader bits in free slots (both words), against a writer */
	RDW(buf, 0) = 1ull << 40;
	RDW(buf, 1) = 1ull << 63;
	EXPECT_EQ(mm_lock(&live, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&live), 0);
	EXPECT_EQ(LW(buf), 0);
	EXPECT_EQ(RDW(buf, 0), 0);
	EXPECT_EQ(RDW(buf, 1), 0);
	/* our own reader bit while we hold nothing, against our RW */
	RDW(buf, 0) = 1ull << live.slot;
	EXPECT_EQ(mm_lock(&live, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&live), 0);
	EXPECT_EQ(RDW(buf, 0), 0);
	/* a writer in a slot whose entry was set to the dead marker or 0 */
	SLOT(buf, 3) = 0xffffffffu;
	LW(buf) = LKW(3);
	EXPECT_EQ(mm_lock(&live, MM_LOCK_RD), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&live), 0);
	SLOT(buf, 3) = 0;
	LW(buf) = LKW(3);
	RDW(buf, 0) = 1ull << 9;
	EXPECT_EQ(mm_lock(&live, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&live), 0);
	EXPECT_EQ(LW(buf), 0);
	EXPECT_EQ(RDW(buf, 0), 0);
	EXPECT_EQ(mm_check(&live), 0);
	EXPECT_EQ(mm_detach(&live), 0);
}

KTEST(mm, owner_died_releases_holds_whatever_the_slots_say)
{
	struct pair p = { 0 };

	ASSERT(pair_5_holds_rw(&p));
	/* 5 holds RW, then zeroes its own slot entry and dies */
	SLOT(p.buf, p.h5.slot) = 0;
	EXPECT_EQ(mm_area_owner_died(p.buf, PAIR_SIZE, 5), 0); /* no slot of 5 left */
	EXPECT_EQ(LW(p.buf), 0);                            /* but the hold went */
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&p.h6), 0);
	EXPECT_EQ(mm_detach(&p.h6), 0);
}

KTEST(mm, a_live_holder_times_waiters_out)
{
	struct pair p = { 0 };

	ASSERT(pair_5_holds_rw(&p));
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RD), E_TIMEOUT);
	EXPECT_EQ(mm_last_error(&p.h6), E_TIMEOUT);
	EXPECT_EQ(mm_unlock(&p.h5), 0);
	EXPECT_EQ(mm_lock(&p.h5, MM_LOCK_RD), 0);
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RW), E_TIMEOUT);
	/* the waiter's writer claim went with it: readers go on */
	EXPECT_EQ(LW(p.buf), 0);
	EXPECT_EQ(mm_unlock(&p.h5), 0);
	EXPECT_EQ(mm_lock(&p.h6, MM_LOCK_RW), 0);
	EXPECT_EQ(mm_unlock(&p.h6), 0);
	EXPECT_EQ(mm_detach(&p.h5), 0);
	EXPECT_EQ(mm_detach(&p.h6), 0);
}

/* ---- hooks: the lock's authority outside the area ------------------------ */

struct hlock {
	int mode, holds, locks, unlocks;
	int answer;           /* what the next lock returns */
	int busy;             /* answer E_BUSY this many times first */
};

struct hctx {             /* ctx of both the tenv hooks and the lock hooks */
	struct tenv e;
	struct hlock l;
};

/* A clock that moves FAKE_STEP_US each time it is read. */
#define FAKE_STEP_US 1000u
static uint64_t fake_us;
static uint64_t fake_now_us(void)
{
	return fake_us += FAKE_STEP_US;
}

static int h_lock(void *ctx, void *base, int mode)
{
	struct hctx *c = ctx;
	struct hlock *l = &c->l;

	if (c->e.buf != base)
		return E_NOENT;
	l->locks++;
	if (l->busy > 0) {
		l->busy--;
		return E_BUSY;
	}
	if (l->answer < 0)
		return l->answer;
	l->mode = mode;
	l->holds++;
	return l->answer;
}

static int h_unlock(void *ctx, void *base)
{
	struct hlock *l = &((struct hctx *)ctx)->l;

	(void)base;
	l->unlocks++;
	l->holds--;
	return 0;
}

KTEST(mm, hooks_replace_the_lock_word)
{
	size_t size = 8192;
	uint8_t *buf = ktest_mem(size, 16);
	struct hctx c = { { 0 }, { 0 } };
	struct mm_env env;
	mm_t h;

	ASSERT(buf && mm_init_area(buf, size, size, 0) == 0);
	c.e.buf = buf;
	env = tenv_make(&c.e, 3);
	env.ctx = &c;
	env.lock = h_lock;
	env.unlock = h_unlock;
	/* every slot taken by forged ids: with hooks, attaching still works */
	for (unsigned s = 0; s < MM_MAX_ATTACH; s++)
		SLOT(buf, s) = 1000 + s;
	ASSERT_EQ(mm_attach_base(&h, buf, size, size, &env), 0);
	EXPECT_EQ(h.slot, MM_MAX_ATTACH);
	/* a forged word and died flag are not read */
	LW(buf) = LKW(55);
	RDW(buf, 1) = ~0ull;
	*(volatile uint32_t *)(buf + 24) = 1;
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RW), 0);
	EXPECT_EQ(c.l.mode, MM_LOCK_RW);
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), 0);          /* nested: no hook call */
	EXPECT_EQ(c.l.locks, 1);
	EXPECT_NE(mm_alloc(&h, 100), MM_NULL);
	EXPECT_EQ(mm_unlock(&h), 0);
	EXPECT_EQ(mm_unlock(&h), 0);
	EXPECT_EQ(c.l.unlocks, 1);
	EXPECT_EQ(c.l.holds, 0);
	EXPECT_EQ(LW(buf), LKW(55));                     /* untouched */
	EXPECT_EQ(RDW(buf, 1), ~0ull);
	/* the environment says a holder died: told once, at mm_lock */
	c.l.answer = MM_LOCK_OWNER_DIED;
	EXPECT_NE(mm_alloc(&h, 100), MM_NULL);          /* implicit lock: kept */
	c.l.answer = 0;
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_unlock(&h), 0);
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), 0);
	EXPECT_EQ(mm_unlock(&h), 0);
	/* its errors come back, nothing held */
	c.l.answer = E_TIMEOUT;
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RW), E_TIMEOUT);
	EXPECT_EQ(mm_alloc(&h, 10), MM_NULL);
	EXPECT_EQ(mm_last_error(&h), E_TIMEOUT);
	EXPECT_EQ(mm_unlock(&h), E_INVAL);
	EXPECT_EQ(c.l.holds, 0);
	c.l.answer = 0;
	/* a busy answer is retried by mm_lock, the one wait of every hooked
	 * attacher: taken at the fourth attempt ... */
	c.l.locks = 0;
	c.l.busy = 3;
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RW), 0);
	EXPECT_EQ(c.l.locks, 4);
	EXPECT_EQ(mm_unlock(&h), 0);
	/* ... and given up after MM_LOCK_WAIT_US by the environment's clock */
	h.env.now_us = fake_now_us;
	fake_us = 0;
	c.l.busy = 1 << 30;
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RW), E_TIMEOUT);
	EXPECT_GE(fake_us, MM_LOCK_WAIT_US);
	EXPECT_LE(fake_us, MM_LOCK_WAIT_US + 2 * FAKE_STEP_US);
	EXPECT_EQ(c.l.holds, 0);
	c.l.busy = 0;
	h.env.now_us = NULL;
	EXPECT_EQ(mm_check(&h), 0);
	EXPECT_EQ(mm_detach(&h), 0);
	EXPECT_EQ(SLOT(buf, 0), 1000);                  /* not ours: left alone */
}

struct item {
	struct mm_list link;
	uint32_t v;
};

KTEST(mm, lists)
{
	size_t size = 65536;
	uint8_t *buf = ktest_mem(size, 16);
	struct mm_list *head, *pos, *n;
	struct item *it;
	mm_t h;
	unsigned k;

	ASSERT(buf && mm_init_area(buf, size, size, sizeof(*head)) == 0);
	ASSERT_EQ(mm_attach_base(&h, buf, size, size, NULL), 0);
	head = mm_static(&h);
	ASSERT_EQ(mm_list_init(&h, head), 0);
	EXPECT(mm_list_empty(&h, head));
	EXPECT_EQ(mm_list_init(&h, (struct mm_list *)buf), E_FAULT);
	for (k = 0; k < 10; k++) {
		mm_ptr_t p = mm_alloc(&h, sizeof(*it));

		ASSERT_NE(p, MM_NULL);
		it = mm_addr(&h, p);
		it->v = k;
		if (k % 2)
			EXPECT_EQ(mm_list_add_tail(&h, head, &it->link), 0);
		else
			EXPECT_EQ(mm_list_add(&h, head, &it->link), 0);
	}
	EXPECT(!mm_list_empty(&h, head));
	/* order: 8 6 4 2 0 1 3 5 7 9 */
	static const uint32_t order[10] = { 8, 6, 4, 2, 0, 1, 3, 5, 7, 9 };
	k = 0;
	mm_list_for_each(&h, pos, head) {
		it = mm_list_entry(pos, struct item, link);
		if (k < 10)
			EXPECT_EQ(it->v, order[k]);
		k++;
	}
	EXPECT_EQ(k, 10);
	/* delete the odd ones while walking */
	mm_list_for_each_safe(&h, pos, n, head) {
		it = mm_list_entry(pos, struct item, link);
		if (it->v % 2) {
			EXPECT_EQ(mm_list_del(&h, pos), 0);
			EXPECT_EQ(mm_free(&h, mm_ptr(&h, it)), 0);
		}
	}
	k = 0;
	mm_list_for_each(&h, pos, head)
		k++;
	EXPECT_EQ(k, 5);
	/* a hostile cycle that skips the head: the walk still ends */
	struct mm_list *first = mm_list_next(&h, head, head);
	struct mm_list *second = mm_list_next(&h, head, first);
	ASSERT(first && second);
	second->next = mm_ptr(&h, first);
	first->prev = mm_ptr(&h, second);
	k = 0;
	mm_list_for_each(&h, pos, head)      /* first's back link is wrong */
		k++;
	EXPECT_EQ(k, 0);
	first->prev = mm_ptr(&h, head);
	k = 0;
	mm_list_for_each(&h, pos, head)      /* second -> first: stops */
		k++;
	EXPECT_EQ(k, 2);
	EXPECT_LE(k, mm_list_bound(&h));
	/* a link out of the area: walks stop, del refuses */
	second->next = 0xfffffff0u;
	EXPECT(mm_list_next(&h, head, second) == NULL);
	EXPECT_EQ(mm_list_del(&h, second), E_CORRUPT);
	EXPECT_EQ(mm_list_add(&h, second, first), E_FAULT);
	EXPECT_EQ(mm_check(&h), 0);     /* allocator untouched by list abuse */
}

/* ---- hostile data ------------------------------------------------------------ */

static uint32_t rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/* Run every call against a (possibly corrupt) area; none may touch memory
 * outside it. Returns the mm_check result. */
static int hammer(mm_t *h, uint32_t seed)
{
	mm_ptr_t p[8];

	for (int i = 0; i < 8; i++)
		p[i] = mm_alloc(h, rnd(&seed) % 600);
	for (int i = 0; i < 8; i += 2)
		p[i] = mm_realloc(h, p[i], rnd(&seed) % 2000);
	for (int i = 0; i < 8; i++)
		mm_free(h, p[i] ? p[i] : rnd(&seed) % 20000);
	mm_available(h);
	return mm_check(h);
}

KTEST(mm, corrupt_offsets)
{
	size_t size = 16384;
	uint8_t *area = guarded(size);
	uint32_t *w;
	mm_t h;
	mm_ptr_t a, b, c;

	ASSERT(area && mm_init_area(area, size, size, 0) == 0);
	ASSERT_EQ(mm_attach_base(&h, area, size, size, NULL), 0);
	a = mm_alloc(&h, 100);
	b = mm_alloc(&h, 100);
	c = mm_alloc(&h, 100);
	ASSERT(a && b && c);
	ASSERT_EQ(mm_free(&h, b), 0);
	/* chunk b's free-list next points outside the area */
	w = (uint32_t *)(area + b - 16);
	uint32_t save = w[2];
	w[2] = 0xfffffff0u;
	EXPECT_EQ(mm_check(&h), E_CORRUPT);
	EXPECT_EQ(mm_alloc(&h, 100), MM_NULL);     /* b is the only fit in its bin */
	EXPECT_EQ(mm_last_error(&h), E_CORRUPT);
	EXPECT_EQ(mm_free(&h, a), E_CORRUPT);      /* merging with b needs b's links */
	w[2] = save;
	EXPECT_EQ(mm_check(&h), 0);
	/* b's free list points at itself */
	w[2] = b - 16;
	EXPECT_EQ(mm_check(&h), E_CORRUPT);
	w[2] = save;
	/* a's size grows over b and c */
	w = (uint32_t *)(area + a - 16);
	save = w[0];
	w[0] = 0x7ffffff1u;
	EXPECT_EQ(mm_free(&h, a), E_INVAL);
	EXPECT_EQ(mm_check(&h), E_CORRUPT);
	EXPECT_EQ(mm_realloc(&h, a, 10), MM_NULL);
	w[0] = save;
	/* c's boundary tag lies */
	w = (uint32_t *)(area + c - 16);
	save = w[1];
	w[1] = 64;
	EXPECT_EQ(mm_free(&h, c), E_CORRUPT);
	w[1] = 0xfff0;
	EXPECT_EQ(mm_free(&h, c), E_CORRUPT);
	w[1] = save;
	EXPECT_EQ(mm_check(&h), 0);
	/* header: a bin head outside, then the size beyond the mapping */
	w = (uint32_t *)area;
	uint8_t *copy = ktest_mem(size, 16);
	ASSERT(copy);
	memcpy(copy, area, size);
	for (unsigned i = 0; i < MM_HDR_SIZE / 4; i++) {
		if (i == 10 || i == 11 || (i >= 24 && i < 28))
			continue;              /* lock word, reader bits: a DoS, not a fault */
		for (unsigned v = 0; v < 3; v++) {
			w[i] = v == 0 ? 0x7ffffff0u : v == 1 ? 0xffffffffu : 0x3010;
			hammer(&h, i);
			if (mm_lock(&h, MM_LOCK_RD) >= 0)
				mm_unlock(&h);
			memcpy(area, copy, size);
		}
	}
	EXPECT(guards_ok(area, size));
	EXPECT_EQ(mm_check(&h), 0);
	w[2] = 0x10000;                    /* size > mapping */
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), E_RANGE);
	w[2] = 1000;                       /* size < layout */
	EXPECT_EQ(mm_lock(&h, MM_LOCK_RD), E_CORRUPT);
	w[0] = 0;                          /* magic */
	EXPECT_EQ(mm_alloc(&h, 10), MM_NULL);
	EXPECT_EQ(mm_last_error(&h), E_CORRUPT);
	memcpy(area, copy, size);
	EXPECT_EQ(mm_check(&h), 0);
	EXPECT(guards_ok(area, size));
}

KTEST(mm, corrupt_random)
{
	size_t size = 32768;
	uint8_t *area = guarded(size);
	uint8_t *copy = ktest_mem(size, 16);
	uint32_t seed = 12345;
	unsigned bad = 0;
	mm_t h;

	ASSERT(area && copy && mm_init_area(area, size, size, 64) == 0);
	ASSERT_EQ(mm_attach_base(&h, area, size, size, NULL), 0);
	for (int i = 0; i < 40; i++)
		mm_alloc(&h, rnd(&seed) % 500);
	for (int i = 0; i < 20; i++)
		mm_free(&h, MM_HDR_SIZE + 64 + 16 + 16 * (rnd(&seed) % 1000));
	ASSERT_EQ(mm_check(&h), 0);
	memcpy(copy, area, size);
	for (int round = 0; round < 300; round++) {
		memcpy(area, copy, size);
		/* smash a few words of the dynamic part (and sometimes the
		 * header, not the lock words), with values that look like
		 * offsets and sizes */
		for (int k = 0; k < 1 + round % 6; k++) {
			uint32_t off = (rnd(&seed) % (size / 4)) * 4;
			uint32_t v = rnd(&seed);

			if (off == 40 || off == 44 || (off >= 96 && off < 112))
				continue;      /* lock word, reader bits */
			v = round % 3 == 0 ? v : round % 3 == 1 ? v % size : v % size & ~15u;
			memcpy(area + off, &v, 4);
		}
		if (hammer(&h, seed))
			bad++;
	}
	EXPECT(guards_ok(area, size));
	EXPECT_GE(bad, 1);
	memcpy(area, copy, size);
	EXPECT_EQ(mm_check(&h), 0);
}

/* ---- the segregated fit's own structures ------------------------------------ */

#define FL_MAP(buf)   (*(volatile uint32_t *)((buf) + 112))
#define SL_MAP(buf, f) (*(volatile uint8_t *)((buf) + 116 + (f)))
#define HEAD(buf, i)  (*(volatile uint32_t *)((buf) + 712 + 4 * (i)))
#define TOP(buf)      (*(volatile uint32_t *)((buf) + 48))

/* An area with blocks in use and free blocks on lists between them. */
static void fit_setup(uint8_t *area, size_t size, mm_t *h, mm_ptr_t p[8])
{
	for (int i = 0; i < 8; i++)
		p[i] = mm_alloc(h, 100 + 300 * i);
	for (int i = 0; i < 8; i += 2)
		mm_free(h, p[i]);
	(void)area;
	(void)size;
}

KTEST(mm, corrupt_bitmaps_heads_cycles_sizes)
{
	size_t size = 32768;
	uint8_t *area = guarded(size);
	uint8_t *copy = ktest_mem(size, 16);
	mm_ptr_t p[8];
	mm_t h;

	ASSERT(area && copy && mm_init_area(area, size, size, 0) == 0);
	ASSERT_EQ(mm_attach_base(&h, area, size, size, NULL), 0);
	fit_setup(area, size, &h, p);
	ASSERT_EQ(mm_check(&h), 0);
	ASSERT_NE(FL_MAP(area), 0);
	memcpy(copy, area, size);
	/* a bitmap bit for an empty list: refused, nothing handed out */
	for (unsigned f = 0; f < 25; f++) {
		memcpy(area, copy, size);
		SL_MAP(area, f) = 0xff;
		FL_MAP(area) = 0x1ffffff;
		mm_ptr_t q = mm_alloc(&h, 1 << (f < 20 ? f + 3 : 22));
		EXPECT(q == MM_NULL || mm_addr_n(&h, q, 1) != NULL);
		EXPECT_EQ(mm_check(&h), E_CORRUPT);
	}
	/* a first-level bit without second-level bits; bits beyond the levels */
	memcpy(area, copy, size);
	SL_MAP(area, 10) = 0;
	FL_MAP(area) = 1u << 10;
	EXPECT_EQ(mm_alloc(&h, 3000), MM_NULL);
	EXPECT_EQ(mm_last_error(&h), E_CORRUPT);
	memcpy(area, copy, size);
	FL_MAP(area) |= 0xfe000000u;
	EXPECT_EQ(mm_check(&h), E_CORRUPT);
	/* every list head pointing outside, into the header, misaligned, at
	 * a block in use, at a chunk of another list, at the wilderness */
	const uint32_t bad_heads[] = { 0xfffffff0u, 0x7ffffff0u, 16, 2040, 2049,
				       (uint32_t)size - 16, (uint32_t)size };
	for (unsigned i = 0; i < 200; i++) {
		for (unsigned k = 0; k < 9; k++) {
			memcpy(area, copy, size);
			HEAD(area, i) = k < 7 ? bad_heads[k] : k == 7 ? p[1] - 16 : TOP(area);
			SL_MAP(area, i / 8) |= (uint8_t)(1u << (i % 8));
			FL_MAP(area) |= 1u << (i / 8);
			mm_ptr_t q = mm_alloc(&h, 16 * (i % 8) + (i / 8 ? 64u << (i / 8) : 0));
			EXPECT(q == MM_NULL || mm_addr_n(&h, q, 1) != NULL);
			mm_free(&h, p[1]);
			EXPECT_EQ(mm_check(&h), E_CORRUPT);
		}
	}
	/* a list that cycles: a free chunk's next link pointing back at itself
	 * through a second one */
	memcpy(area, copy, size);
	uint32_t a = p[0] - 16, b = p[2] - 16;
	((volatile uint32_t *)(area + a))[2] = b;
	((volatile uint32_t *)(area + b))[2] = a;
	((volatile uint32_t *)(area + b))[3] = a;
	EXPECT_EQ(mm_check(&h), E_CORRUPT);
	for (int i = 0; i < 20; i++)
		mm_free(&h, mm_alloc(&h, 100 + 300 * (i % 8)));
	/* sizes that overflow: a chunk size near 2^32, a size that runs past
	 * the end, a wilderness that claims the whole address space */
	const uint32_t bad_sizes[] = { 0xfffffff0u, 0x80000000u, 0x7ffffff0u,
				       (uint32_t)size, 16 };
	for (unsigned k = 0; k < 5; k++) {
		uint32_t targets[] = { p[0] - 16, p[1] - 16, TOP(copy) };

		for (unsigned t = 0; t < 3; t++) {
			memcpy(area, copy, size);
			((volatile uint32_t *)(area + targets[t]))[0] = bad_sizes[k] | (t == 1);
			EXPECT_EQ(mm_check(&h), E_CORRUPT);
			mm_ptr_t q = mm_alloc(&h, 5000);
			EXPECT(q == MM_NULL || mm_addr_n(&h, q, 5000) != NULL);
			if (t < 2)           /* p[1] itself, or a neighbour it merges with */
				EXPECT_NE(mm_free(&h, p[1]), 0);
			q = mm_realloc(&h, p[3], 9000);
			EXPECT(q == MM_NULL || mm_addr_n(&h, q, 9000) != NULL);
		}
	}
	/* top naming a chunk that does not end the area */
	memcpy(area, copy, size);
	TOP(area) = p[1] - 16;
	EXPECT_EQ(mm_check(&h), E_CORRUPT);
	EXPECT_EQ(mm_alloc(&h, 20000), MM_NULL);
	EXPECT_EQ(mm_last_error(&h), E_CORRUPT);
	EXPECT(guards_ok(area, size));
	memcpy(area, copy, size);
	EXPECT_EQ(mm_check(&h), 0);
}

/* A hostile attacher scribbles over the chunks, lists and bitmaps (never
 * the lock words: without hooks they are the authority) while another
 * allocates and frees under the lock: every call ends, and never touches
 * memory outside the area (guards, ASan). */
struct scribble {
	uint8_t *area;
	size_t size;
	int stop;
	unsigned rounds;
};

static void scribble_fn(unsigned i, void *arg)
{
	struct scribble *sc = arg;
	uint32_t seed = 777 + i;
	mm_t h;

	if (i == 0) {
		unsigned r;

		for (r = 0; r < 300000; r++) {
			uint32_t off = (rnd(&seed) % (uint32_t)(sc->size / 4)) * 4, v = rnd(&seed);

			if (off == 40 || off == 44 || (off >= 96 && off < 112) ||
			    (off >= 200 && off < 712))
				continue;      /* lock words, slots */
			v = r % 3 == 0 ? v : r % 3 == 1 ? v % sc->size : (v % sc->size) & ~15u;
			__atomic_store_n((uint32_t *)(sc->area + off), v, __ATOMIC_RELAXED);
		}
		__atomic_store_n(&sc->rounds, r, __ATOMIC_RELEASE);
		__atomic_store_n(&sc->stop, 1, __ATOMIC_RELEASE);
		return;
	}
	if (mm_attach_base(&h, sc->area, sc->size, sc->size, NULL))
		return;
	for (unsigned it = 0; it < 3000 || (!__atomic_load_n(&sc->stop, __ATOMIC_ACQUIRE) &&
					     it < 1000000); it++) {
		mm_ptr_t q[4];

		if (mm_lock(&h, MM_LOCK_RW) < 0)
			continue;
		for (int k = 0; k < 4; k++) {
			q[k] = mm_alloc(&h, rnd(&seed) % 700);
			if (q[k] && !mm_addr_n(&h, q[k], 1))
				q[k] = MM_NULL;
		}
		for (int k = 0; k < 4; k++)
			mm_free(&h, q[k] ? q[k] : rnd(&seed) % (uint32_t)sc->size);
		mm_unlock(&h);
		if (it % 100 == 0)
			mm_check(&h);
	}
	mm_detach(&h);
}

KTEST(mm, hostile_scribbler_while_another_allocates)
{
	static struct scribble sc;

	memset(&sc, 0, sizeof(sc));
	sc.size = 32768;
	sc.area = guarded(sc.size);
	ASSERT(sc.area && mm_init_area(sc.area, sc.size, sc.size, 64) == 0);
	if (ktest_ncpus() < 2) {
		printf("mm.hostile_scribbler: one CPU, the scribbler runs first\n");
		scribble_fn(0, &sc);
		scribble_fn(1, &sc);
	} else
		ktest_parallel(2, scribble_fn, &sc);
	EXPECT(guards_ok(sc.area, sc.size));
	EXPECT_EQ(sc.rounds, 300000);
}

/* ---- concurrency --------------------------------------------------------------- */

struct stress {
	uint8_t *buf;
	size_t size;
	struct tenv e;
	unsigned iters;
	int errors;
	unsigned timeouts;            /* lock waits that ran out and were retried */
};

struct shared {                   /* the static part */
	struct mm_list head;
	uint64_t counter;
	uint32_t live;
};

struct node {
	struct mm_list link;
	uint32_t owner, seq;
	uint8_t pat[40];
};

static bool node_ok(const struct node *n)
{
	for (unsigned i = 0; i < sizeof(n->pat); i++)
		if (n->pat[i] != (uint8_t)(n->owner * 31 + n->seq + i))
			return false;
	return true;
}

/* mm_lock, retried while its bounded wait runs out (E_TIMEOUT: with one
 * attacher per CPU on an emulator, a holder's hart may be descheduled for
 * longer than the wait); the retries are counted, not failures. Anything
 * else, or a lock that never comes, is. */
#define STRESS_LOCK_TRIES 1000
static int stress_lock(mm_t *h, int mode, struct stress *s)
{
	int rc = E_TIMEOUT;

	for (unsigned t = 0; t < STRESS_LOCK_TRIES && rc == E_TIMEOUT; t++) {
		rc = mm_lock(h, mode);
		if (rc == E_TIMEOUT)
			__atomic_fetch_add(&s->timeouts, 1, __ATOMIC_RELAXED);
	}
	return rc;
}

static void stress_fn(unsigned i, void *arg)
{
	struct stress *s = arg;
	struct mm_env env = tenv_make(&s->e, 100 + i);
	struct mm_list *pos, *nx;
	struct shared *sh;
	mm_t h;
	int bad = 0;

	if (mm_attach_base(&h, s->buf, 8192, s->size, &env)) {
		__atomic_fetch_add(&s->errors, 1, __ATOMIC_RELAXED);
		return;
	}
	sh = mm_static(&h);
	for (unsigned it = 0; it < s->iters; it++) {
		if (it % 4 == 3) {      /* reader: every node intact */
			if (stress_lock(&h, MM_LOCK_RD, s) < 0) {
				bad++;
				continue;
			}
			unsigned n = 0;
			mm_list_for_each(&h, pos, &sh->head) {
				bad += !node_ok((struct node *)pos);
				n++;
			}
			bad += n != sh->live;
			mm_unlock(&h);
			continue;
		}
		if (stress_lock(&h, MM_LOCK_RW, s) < 0) {
			bad++;
			continue;
		}
		sh->counter++;
		mm_ptr_t p = mm_alloc(&h, sizeof(struct node) + (it % 7) * 50);
		struct node *n = mm_addr(&h, p);
		if (n) {
			n->owner = i;
			n->seq = it;
			for (unsigned k = 0; k < sizeof(n->pat); k++)
				n->pat[k] = (uint8_t)(i * 31 + it + k);
			bad += mm_list_add_tail(&h, &sh->head, &n->link) != 0;
			sh->live++;
		} else
			bad++;
		/* free my oldest node when the list is long */
		if (sh->live > 40) {
			mm_list_for_each_safe(&h, pos, nx, &sh->head) {
				struct node *o = (struct node *)pos;
				if (o->owner != i)
					continue;
				bad += !node_ok(o);
				bad += mm_list_del(&h, pos) != 0;
				bad += mm_free(&h, mm_ptr(&h, o)) != 0;
				sh->live--;
				break;
			}
		}
		mm_unlock(&h);
	}
	if (mm_detach(&h))
		bad++;
	__atomic_fetch_add(&s->errors, bad, __ATOMIC_RELAXED);
}

KTEST(mm, stress_parallel)
{
	static struct stress s;
	unsigned n = ktest_ncpus();
	struct mm_stats st;
	mm_t h;

	memset(&s, 0, sizeof(s));
	s.size = 1 << 20;
	s.buf = ktest_mem(s.size, 4096);
	ASSERT(s.buf);
	s.e.buf = s.buf;
	s.e.room = s.size;
	s.e.size = 8192;
	/* 10,000 lock rounds per CPU up to 8 CPUs, then the same 80,000 in
	 * all: every round is serialised by the one lock, so the work per CPU
	 * shrinks as CPUs are added (64 harts on a 2-core emulator host took
	 * 270 s at 10,000 each). */
	s.iters = 10000 * ktest_stress_seconds() * (n <= 8 ? 1 : 8) / (n <= 8 ? 1 : n);
	ASSERT_EQ(mm_init_area(s.buf, s.e.size, s.size, sizeof(struct shared)), 0);
	struct mm_env env = tenv_make(&s.e, 99);
	ASSERT_EQ(mm_attach_base(&h, s.buf, s.e.size, s.size, &env), 0);
	ASSERT_EQ(mm_list_init(&h, &((struct shared *)mm_static(&h))->head), 0);
	/* one attacher per CPU, as many as an area admits at most: this
	 * handle steps out while they run */
	ASSERT_EQ(mm_detach(&h), 0);
	ktest_parallel(n, stress_fn, &s);
	EXPECT_EQ(s.errors, 0);
	ASSERT_EQ(mm_attach_base(&h, s.buf, s.e.size, s.size, &env), 0);
	ASSERT_EQ(mm_lock(&h, MM_LOCK_RD), 0);
	struct shared *sh = mm_static(&h);
	uint64_t expect = 0;
	for (unsigned it = 0; it < s.iters; it++)
		expect += it % 4 != 3;
	EXPECT_EQ(sh->counter, expect * n);
	mm_unlock(&h);
	EXPECT_EQ(mm_check(&h), 0);
	EXPECT_EQ(mm_stats(&h, &st), 0);
	EXPECT_EQ(st.nattach, 1);
	EXPECT_GE(st.grows, 1);
	printf("mm.stress_parallel: %u cpus x %u iters, area %zu bytes, %llu allocs, "
	       "%u lock waits timed out and retried\n",
	       n, s.iters, st.size, (unsigned long long)st.allocs, s.timeouts);
}
