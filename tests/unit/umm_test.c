/* umm_test.c - suite umm: every API function and its edges, then a
 * cross-CPU stress in the style of mimalloc's test-stress (host threads or
 * kernel harts). */
#include "ktest.h"
#include "umm.h"

#include <stdio.h>
#include <string.h>

#define POOL (1u << 20)

static umm_t *mkpool(size_t size)
{
	umm_t *m = ktest_mem(sizeof(umm_t), 64);
	void *space = ktest_mem(size, 4096);
	if (!m || !space || umm_init(m, space, size))
		return NULL;
	return m;
}

struct walk {
	size_t used, free, nused, nfree, tagged;
	uint8_t tag;
	unsigned calls, stop_at;
};

static int walk_cb(void *p, size_t size, uint8_t tags, bool in_use, void *arg)
{
	struct walk *w = arg;
	if (in_use) {
		w->used += size;
		w->nused++;
		if (tags == w->tag)
			w->tagged++;
	} else {
		w->free += size;
		w->nfree++;
	}
	return ++w->calls == w->stop_at ? 7 : 0;
}

/* The pool is back to one free chunk: a capacity-sized block fits. */
static bool all_free(umm_t *m)
{
	struct umm_stats st;
	umm_stats(m, &st);
	void *p = umm_alloc(m, st.capacity, 0);
	if (!p)
		return false;
	umm_free(m, p);
	umm_stats(m, &st);
	return st.live_bytes == 0 && umm_check(m) == 0;
}

/* The end of a test: the pool is consistent and every byte is free again. */
static void expect_all_free(struct ktest_ctx *kt__, umm_t *m)
{
	EXPECT_EQ(umm_check(m), 0);
	EXPECT(all_free(m));
}

/* After a stress: nothing live, no refusals, every allocation freed, the
 * pool consistent and back to one free chunk. Leaves the stats in *s. */
static void expect_drained(struct ktest_ctx *kt__, umm_t *m, struct umm_stats *s)
{
	umm_stats(m, s);
	EXPECT_EQ(s->live_bytes, 0);
	EXPECT_EQ(s->refused, 0);
	EXPECT_EQ(s->allocs, s->frees);
	expect_all_free(KT_CTX, m);
}

/* The end of a stress: no bad pattern or refused allocation seen, enough
 * work done to mean something, the pool drained (stats left in *s). */
static void expect_stress_clean(struct ktest_ctx *kt__, umm_t *m, unsigned bad_pattern,
				unsigned bad_alloc, unsigned ops, struct umm_stats *s)
{
	EXPECT_EQ(bad_pattern, 0);
	EXPECT_EQ(bad_alloc, 0);
	EXPECT_GE(ops, 1000);
	expect_drained(kt__, m, s);
}

KTEST(umm, init)
{
	umm_t *m = ktest_mem(sizeof(umm_t), 64);
	char *space = ktest_mem(POOL, 4096);
	struct umm_stats st;
	struct walk w = { 0 };
	ASSERT(m && space);
	EXPECT_EQ(umm_init(NULL, space, POOL), E_INVAL);
	EXPECT_EQ(umm_init(m, NULL, POOL), E_INVAL);
	EXPECT_EQ(umm_init(m, space, 100), E_RANGE);
	ASSERT_EQ(umm_init(m, space + 3, POOL - 3), 0);   /* unaligned space is fine */
	EXPECT_EQ(umm_check(m), 0);
	umm_stats(m, &st);
	EXPECT_GE(st.capacity, POOL - POOL / 64);
	EXPECT_LT(st.capacity, POOL);
	EXPECT_EQ(st.live_bytes, 0);
	EXPECT_EQ(umm_iterate(m, walk_cb, &w), 0);
	EXPECT_EQ(w.nfree, 1);
	EXPECT_EQ(w.nused, 0);
	EXPECT_EQ(w.free, st.capacity);
}

KTEST(umm, alloc_free_basic)
{
	umm_t *m = mkpool(POOL);
	static const size_t sizes[] = { 1, 8, 9, 16, 24, 100, 255, 256, 1000, 4000, 4096, 5000, 70000 };
	void *p[13];
	ASSERT(m);
	for (unsigned i = 0; i < 13; i++) {
		p[i] = umm_alloc(m, sizes[i], (uint8_t)i);
		ASSERT(p[i]);
		EXPECT_EQ((uintptr_t)p[i] % 16, 0);
		EXPECT_GE(umm_usable_size(m, p[i]), sizes[i]);
		memset(p[i], 0xa0 + i, sizes[i]);
	}
	for (unsigned i = 0; i < 13; i++) {
		const unsigned char *b = p[i];
		for (size_t j = 0; j < sizes[i]; j++)
			if (b[j] != (unsigned char)(0xa0 + i)) {
				EXPECT(!"block overlap");
				break;
			}
	}
	EXPECT_EQ(umm_check(m), 0);
	struct walk w = { .tag = 5 };
	umm_iterate(m, walk_cb, &w);
	EXPECT_EQ(w.nused, 13);
	EXPECT_EQ(w.tagged, 1);
	for (unsigned i = 0; i < 13; i += 2)
		umm_free(m, p[i]);
	EXPECT_EQ(umm_check(m), 0);
	for (unsigned i = 1; i < 13; i += 2)
		umm_free(m, p[i]);
	expect_all_free(KT_CTX, m);
}

KTEST(umm, bad_input)
{
	umm_t *m = mkpool(POOL);
	struct umm_stats st0, st;
	uint64_t local = 0;
	ASSERT(m);
	char *p = umm_alloc(m, 200, 3);
	ASSERT(p);
	umm_stats(m, &st0);
	EXPECT(umm_alloc(m, 0, 0) == NULL);
	EXPECT(umm_alloc_fast(m, 0, 0) == NULL);
	EXPECT(umm_alloc(m, POOL, 0) == NULL);
	EXPECT(umm_alloc(m, (size_t)-1, 0) == NULL);
	EXPECT(umm_alloc_aligned(m, 64, 48, 0) == NULL);
	EXPECT(umm_alloc_aligned(m, 64, 0, 0) == NULL);
	umm_free(m, &local);              /* not from the pool */
	umm_free(m, p + 16);              /* interior, on the payload grid */
	umm_free(m, p + 1);               /* interior, off the grid */
	umm_free_fast(m, p + 32);
	EXPECT_EQ(umm_usable_size(m, p + 16), 0);
	EXPECT(umm_realloc(m, p + 16, 10) == NULL);
	EXPECT(umm_realloc(m, p, 0) == NULL);
	umm_stats(m, &st);
	EXPECT_EQ(st.refused - st0.refused, 13);
	EXPECT_EQ(st.live_bytes, st0.live_bytes);
	EXPECT_EQ(st.frees, st0.frees);
	EXPECT_GE(umm_usable_size(m, p), 200);    /* still live */
	EXPECT_EQ(umm_check(m), 0);
	umm_free(m, p);
	umm_free(m, p);                   /* double free (block is parked) */
	umm_free_fast(m, p);
	EXPECT_EQ(umm_usable_size(m, p), 0);
	char *big = umm_alloc(m, 10000, 0);   /* pool path, not cached */
	ASSERT(big);
	umm_free(m, big);
	umm_free(m, big);                 /* double free of a free chunk */
	umm_stats(m, &st);
	EXPECT_EQ(st.refused - st0.refused, 17);
	EXPECT_EQ(st.frees - st0.frees, 2);
	expect_all_free(KT_CTX, m);
	umm_free(m, NULL);                /* no-op, no error */
	umm_stats(m, &st);
	EXPECT_EQ(st.refused - st0.refused, 17);
}

KTEST(umm, aligned)
{
	umm_t *m = mkpool(POOL);
	void *p[12];
	ASSERT(m);
	for (unsigned i = 0; i < 12; i++) {
		size_t a = (size_t)1 << (i + 1);
		p[i] = umm_alloc_aligned(m, 40 + i * 100, a, 9);
		ASSERT(p[i]);
		EXPECT_EQ((uintptr_t)p[i] % a, 0);
		memset(p[i], i, 40 + i * 100);
	}
	EXPECT_EQ(umm_check(m), 0);
	/* growing past a used neighbour moves the block: alignment and tags stay */
	void *blocker = umm_alloc(m, 64, 0);
	void *q = umm_alloc_aligned(m, 100, 4096, 0x5a);
	void *after = umm_alloc(m, 64, 0);
	ASSERT(q && blocker && after);
	memset(q, 0x77, 100);
	void *r = umm_realloc(m, q, 300000);
	ASSERT(r);
	EXPECT_EQ((uintptr_t)r % 4096, 0);
	EXPECT_EQ(((unsigned char *)r)[99], 0x77);
	struct walk w = { .tag = 0x5a };
	umm_iterate(m, walk_cb, &w);
	EXPECT_EQ(w.tagged, 1);
	EXPECT(umm_alloc_aligned(m, 64, (size_t)1 << 32, 0) == NULL);   /* beyond 2^31 */
	EXPECT(umm_alloc_aligned(m, POOL - 4096, 4096, 0) == NULL);     /* cannot fit */
	for (unsigned i = 0; i < 12; i++)
		umm_free(m, p[i]);
	umm_free(m, r);
	umm_free(m, blocker);
	umm_free(m, after);
	expect_all_free(KT_CTX, m);
}

KTEST(umm, realloc)
{
	umm_t *m = mkpool(POOL);
	ASSERT(m);
	char *a = umm_realloc(m, NULL, 10000);   /* NULL: plain allocation */
	ASSERT(a);
	char *b = umm_alloc(m, 10000, 0);
	char *c = umm_alloc(m, 10000, 0);
	ASSERT(b && c);
	for (int i = 0; i < 10000; i++)
		a[i] = (char)i;
	/* shrink in place */
	EXPECT(umm_realloc(m, a, 5000) == a);
	EXPECT_GE(umm_usable_size(m, a), 5000);
	EXPECT_LT(umm_usable_size(m, a), 5100);
	EXPECT_EQ(umm_check(m), 0);
	/* grow back into the freed tail, then into the freed neighbour b */
	EXPECT(umm_realloc(m, a, 9000) == a);
	umm_free(m, b);
	EXPECT(umm_realloc(m, a, 19000) == a);
	EXPECT_GE(umm_usable_size(m, a), 19000);
	EXPECT_EQ(umm_check(m), 0);
	/* exact-fit growth swallows the whole free successor up to c */
	size_t room = (size_t)(c - a) - 8;
	EXPECT(umm_realloc(m, a, room) == a);
	EXPECT_EQ(umm_usable_size(m, a), room);
	EXPECT_EQ(umm_check(m), 0);
	/* blocked by c: moves, keeps the data */
	char *a2 = umm_realloc(m, a, 200000);
	ASSERT(a2);
	for (int i = 0; i < 5000; i++)
		if (a2[i] != (char)i) {
			EXPECT(!"realloc lost data");
			break;
		}
	/* a failed realloc leaves the block alone */
	struct umm_stats st;
	umm_stats(m, &st);
	EXPECT(umm_realloc(m, a2, st.capacity - 16) == NULL);
	EXPECT_GE(umm_usable_size(m, a2), 200000);
	umm_free(m, a2);
	umm_free(m, c);
	expect_all_free(KT_CTX, m);
}

KTEST(umm, fast_path)
{
	umm_t *m = mkpool(POOL);
	void *p[64];
	ASSERT(m);
	for (unsigned i = 0; i < 64; i++) {
		p[i] = umm_alloc_fast(m, 16 + i * 80, (uint8_t)i);
		ASSERT(p[i]);
		memset(p[i], 1, 16 + i * 80);
	}
	EXPECT_EQ(umm_check(m), 0);
	for (unsigned i = 0; i < 64; i++)
		umm_free_fast(m, p[i]);
	EXPECT_EQ(umm_check(m), 0);
	/* the fast path reuses what it freed */
	void *q = umm_alloc_fast(m, 100, 0);
	EXPECT(q != NULL);
	umm_free_fast(m, q);
	EXPECT(all_free(m));
}

KTEST(umm, iterate)
{
	umm_t *m = mkpool(POOL);
	ASSERT(m);
	EXPECT_EQ(umm_iterate(m, NULL, NULL), E_INVAL);
	void *p[10];
	for (unsigned i = 0; i < 10; i++) {
		p[i] = umm_alloc(m, 5000, i < 4 ? 0xee : 0);
		ASSERT(p[i]);
	}
	umm_free(m, p[3]);
	umm_free(m, p[5]);
	struct walk w = { .tag = 0xee };
	EXPECT_EQ(umm_iterate(m, walk_cb, &w), 0);
	EXPECT_EQ(w.nused, 8);
	EXPECT_EQ(w.tagged, 3);
	EXPECT_GE(w.nfree, 3);        /* two holes, the rest, maybe a lead-in */
	EXPECT_LE(w.nfree, 4);
	struct umm_stats st;
	umm_stats(m, &st);
	EXPECT_EQ(w.used + w.free + 8 * (w.nused + w.nfree), st.capacity + 8);
	struct walk w2 = { .stop_at = 2 };
	EXPECT_EQ(umm_iterate(m, walk_cb, &w2), 7);
	EXPECT_EQ(w2.calls, 2);
	for (unsigned i = 0; i < 10; i++)
		if (i != 3 && i != 5)
			umm_free(m, p[i]);
	EXPECT(all_free(m));
}

KTEST(umm, stats_and_exhaustion)
{
	umm_t *m = mkpool(64 * 1024);
	struct umm_stats st;
	void **p = ktest_mem(2048 * sizeof(void *), 8);   /* kernel stacks are small */
	unsigned n = 0;
	ASSERT(m && p);
	while (n < 2048 && (p[n] = umm_alloc(m, 100, 0)))
		n++;
	ASSERT_LE(n, 2047);
	EXPECT_GE(n, 400);
	umm_stats(m, &st);
	EXPECT_EQ(st.allocs, n);
	EXPECT_EQ(st.failures, 1);
	EXPECT_EQ(st.live_bytes, n * 112);
	EXPECT_GE(st.peak_bytes, st.live_bytes);
	EXPECT_EQ(umm_check(m), 0);
	EXPECT(umm_alloc_fast(m, 100, 0) == NULL);
	for (unsigned i = 0; i < n; i++)
		umm_free(m, p[i]);
	umm_stats(m, &st);
	EXPECT_EQ(st.frees, n);
	EXPECT_EQ(st.live_bytes, 0);
	EXPECT_GE(st.peak_bytes, n * 112);
	EXPECT_EQ(umm_check(m), 0);
	/* parked chunks go back to the pool when a large request needs them */
	EXPECT(all_free(m));
}

/* ---- cross-CPU stress ------------------------------------------------------ */

#define NSLOTS    256
#define NLOCAL    64
#define MAX_ITERS 200000u

struct stress {
	umm_t *m;
	unsigned contended;     /* big blocks, small pool, mostly fast path */
	uintptr_t slots[NSLOTS];
	uint64_t deadline;
	unsigned bad_pattern, bad_alloc, ops, walks, bad_walks;
};

static int count_cb(void *p, size_t size, uint8_t tags, bool in_use, void *arg)
{
	(*(size_t *)arg) += size + 8;
	return 0;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Block layout: word 0 = size, word 1 = cookie, then bytes (cookie + i). */
static void fill(void *p, size_t size, uint64_t cookie)
{
	uint64_t *w = p;
	unsigned char *b = p;
	w[0] = size;
	w[1] = cookie;
	for (size_t i = 16; i < size; i++)
		b[i] = (unsigned char)(cookie + i);
}

static bool pattern_ok(const void *p)
{
	const uint64_t *w = p;
	const unsigned char *b = p;
	for (size_t i = 16; i < w[0]; i++)
		if (b[i] != (unsigned char)(w[1] + i))
			return false;
	return true;
}

static size_t stress_size(uint64_t *s, unsigned contended)
{
	uint64_t r = rnd(s);
	if (contended)
		return r % 4 ? 4100 + r % 6000 : 16 + r % 500;
	if (r % 100 == 0)
		return 4096 + r % 30000;          /* large: pool path */
	if (r % 8 == 0)
		return 256 + r % 3800;
	return 16 + r % 240;
}

/* Count a block whose pattern was damaged in *bad (any thread). */
static void check_pattern(unsigned *bad, const void *p)
{
	if (!pattern_ok(p))
		__atomic_fetch_add(bad, 1, __ATOMIC_RELAXED);
}

/* Check p's pattern, then free it through the fast or the slow path. */
static void checked_free(umm_t *m, unsigned *bad, void *p, bool fast)
{
	check_pattern(bad, p);
	if (fast)
		umm_free_fast(m, p);
	else
		umm_free(m, p);
}


static void stress_thread(unsigned id, void *arg)
{
	struct stress *st = arg;
	void *local[NLOCAL] = { 0 };
	uint64_t s = 0x9e3779b97f4a7c15ull * (id + 1), ops = 0;

	for (unsigned it = 0; it < MAX_ITERS; it++) {
		/* the time bounds the run, a share of 1,024 operations per CPU
		 * is always done (a loaded host may give a thread little time) */
		if ((it & 255) == 0 && env_ticks() > st->deadline && ops * ktest_ncpus() >= 1024)
			break;
		if (id == 0 && (it & 4095) == 0) {
			/* a concurrent walk: complete (0) or flagged (E_BUSY), never past the pool */
			size_t seen = 0;
			int rc = umm_iterate(st->m, count_cb, &seen);
			struct umm_stats us;
			umm_stats(st->m, &us);
			if ((rc != 0 && rc != E_BUSY) || seen > us.capacity + 8 || (rc == 0 && seen != us.capacity + 8))
				__atomic_fetch_add(&st->bad_walks, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&st->walks, 1, __ATOMIC_RELAXED);
		}
		uint64_t r = rnd(&s);
		unsigned i = (unsigned)(r >> 8) % NLOCAL;
		bool fast = st->contended ? (r & 1) : (r & 7) == 0;
		if (local[i] && (r & 15) == 3) {
			/* realloc keeps the prefix: check it, then refill */
			check_pattern(&st->bad_pattern, local[i]);
			size_t ns = stress_size(&s, st->contended);
			void *q = umm_realloc(st->m, local[i], ns);
			if (q) {
				local[i] = q;
				fill(q, ns, rnd(&s));
			}
			continue;
		}
		if (local[i])
			checked_free(st->m, &st->bad_pattern, local[i], fast);
		size_t size = stress_size(&s, st->contended);
		local[i] = fast ? umm_alloc_fast(st->m, size, (uint8_t)id) : umm_alloc(st->m, size, (uint8_t)id);
		if (local[i])
			fill(local[i], size, rnd(&s));
		else if (!fast && !st->contended)
			__atomic_fetch_add(&st->bad_alloc, 1, __ATOMIC_RELAXED);
		/* hand a block to whoever visits this slot next */
		if ((r & 3) == 1 && local[i]) {
			unsigned k = (unsigned)(r >> 32) % NSLOTS;
			local[i] = (void *)__atomic_exchange_n(&st->slots[k], (uintptr_t)local[i],
								 __ATOMIC_ACQ_REL);
		}
		ops++;
	}
	for (unsigned i = 0; i < NLOCAL; i++)
		if (local[i])
			checked_free(st->m, &st->bad_pattern, local[i], i & 1);
	umm_flush(st->m);   /* our cached chunks back to the pool before we go */
	__atomic_fetch_add(&st->ops, (unsigned)ops, __ATOMIC_RELAXED);
}

static void stress(struct ktest_ctx *kt__, size_t pool, unsigned contended)
{
	struct stress *st = ktest_mem(sizeof(*st), 64);
	umm_t *m = mkpool(pool);
	struct umm_stats s;
	ASSERT(st && m);
	st->m = m;
	st->contended = contended;
	st->deadline = env_ticks() + env_ticks_per_sec() * ktest_stress_seconds();
	ktest_parallel(ktest_ncpus(), stress_thread, st);
	for (unsigned k = 0; k < NSLOTS; k++)
		if (st->slots[k])
			checked_free(st->m, &st->bad_pattern, (void *)st->slots[k], false);
	EXPECT_EQ(st->bad_walks, 0);
	EXPECT_GE(st->walks, 1);
	expect_stress_clean(KT_CTX, m, st->bad_pattern, st->bad_alloc, st->ops, &s);
	printf("umm stress%s: %u cpus, %u ops, %llu lock retries, %llu failures\n",
	       contended ? " (contended)" : "", ktest_ncpus(), st->ops,
	       (unsigned long long)s.lock_retries, (unsigned long long)s.failures);
}

/* 7 MiB: about 1 MiB is live at any time; CPUs' caches hold a few MiB
 * more between flush requests, which they honour only when they run. */
KTEST(umm, stress_cross_cpu)
{
	stress(KT_CTX, 7u << 20, 0);
}

/* Big blocks in a small pool: the pool path, fast-path refusals, deferred
 * frees, concurrent realloc and neighbour locks all get exercised. */
KTEST(umm, stress_contended)
{
	stress(KT_CTX, 3u << 20, 1);
}

/* ---- producer/consumer hand-off ---------------------------------------------
 * Producers allocate a few small classes (their slots stay empty, so they
 * refill from batches of the transfer stacks), hand each block through
 * shared cells to CPU 0, which checks its pattern and frees it into its own
 * slots, spilling batches to the transfer stacks; CPU 0 also allocates and
 * frees the same classes itself, so its spills race the producers' takes. */
#define NCELLS 64

struct steal {
	umm_t *m;
	uintptr_t cell[NCELLS];
	uint64_t deadline;
	unsigned bad_pattern, bad_alloc, handed, ops;
};


static void steal_thread(unsigned id, void *arg)
{
	struct steal *st = arg;
	uint64_t s = 0x2545f4914f6cdd1dull * (id + 1);
	unsigned ops = 0, handed = 0;

	for (unsigned it = 0; it < 400000u; it++) {
		if ((it & 255) == 0 && env_ticks() > st->deadline)
			break;
		uint64_t r = rnd(&s);
		size_t size = 24 + 40 * (r % 3);   /* three classes */
		unsigned c = (unsigned)(r >> 16) % NCELLS;
		if (id == 0) {
			/* consumer: free what producers handed over, and race
			 * them with our own pops and pushes */
			void *p = (void *)__atomic_exchange_n(&st->cell[c], 0, __ATOMIC_ACQ_REL);
			if (p)
				checked_free(st->m, &st->bad_pattern, p, r & 1);
			void *q = (r & 2) ? umm_alloc_fast(st->m, size, 1) : umm_alloc(st->m, size, 1);
			if (q) {
				fill(q, size, r);
				checked_free(st->m, &st->bad_pattern, q, r & 4);
			}
			ops++;
			continue;
		}
		void *p = (r & 8) ? umm_alloc_fast(st->m, size, (uint8_t)id) : NULL;
		if (!p)
			p = umm_alloc(st->m, size, (uint8_t)id);
		if (!p) {
			__atomic_fetch_add(&st->bad_alloc, 1, __ATOMIC_RELAXED);
			continue;
		}
		fill(p, size, r);
		uintptr_t zero = 0;
		if (__atomic_compare_exchange_n(&st->cell[c], &zero, (uintptr_t)p, false, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			handed++;
		else
			checked_free(st->m, &st->bad_pattern, p, r & 16);
		ops++;
	}
	umm_flush(st->m);
	__atomic_fetch_add(&st->ops, ops, __ATOMIC_RELAXED);
	__atomic_fetch_add(&st->handed, handed, __ATOMIC_RELAXED);
}

KTEST(umm, stress_handoff)
{
	struct steal *st = ktest_mem(sizeof(*st), 64);
	umm_t *m = mkpool(2u << 20);
	struct umm_stats s;
	ASSERT(st && m);
	st->m = m;
	st->deadline = env_ticks() + env_ticks_per_sec() * ktest_stress_seconds() / 2;
	ktest_parallel(ktest_ncpus(), steal_thread, st);
	for (unsigned c = 0; c < NCELLS; c++)
		if (st->cell[c])
			checked_free(st->m, &st->bad_pattern, (void *)st->cell[c], false);
	expect_stress_clean(KT_CTX, m, st->bad_pattern, st->bad_alloc, st->ops, &s);
	printf("umm handoff: %u cpus, %u ops, %u handed over, %llu parked bytes before the flush\n",
	       ktest_ncpus(), st->ops, st->handed, (unsigned long long)s.parked_bytes);
}

/* ---- double frees ----------------------------------------------------------
 * Same CPU: blocks cached in the slots, in a transfer batch and in the pool
 * are freed twice; every second free is refused and changes nothing. */
KTEST(umm, double_free_same_cpu)
{
	umm_t *m = mkpool(POOL);
	struct umm_stats s0, s;
	void *p[48];
	ASSERT(m);
	for (unsigned i = 0; i < 48; i++) {
		p[i] = umm_alloc(m, 40, (uint8_t)i);   /* one class: its slots overflow */
		ASSERT(p[i]);
	}
	umm_stats(m, &s0);
	for (unsigned i = 0; i < 48; i++)
		(i & 1 ? umm_free_fast : umm_free)(m, p[i]);
	umm_stats(m, &s);
	EXPECT_EQ(s.frees - s0.frees, 48);
	EXPECT_EQ(s.refused, s0.refused);
	EXPECT(s.parked_bytes > (uint64_t)UMM_SLOTS * 48);   /* slots and a transfer batch */
	for (unsigned i = 0; i < 48; i++) {
		(i & 1 ? umm_free : umm_free_fast)(m, p[i]);
		EXPECT_EQ(umm_usable_size(m, p[i]), 0);
		EXPECT(umm_realloc(m, p[i], 100) == NULL);
	}
	umm_stats(m, &s);
	EXPECT_EQ(s.frees - s0.frees, 48);
	EXPECT_EQ(s.refused - s0.refused, 3 * 48);
	EXPECT_EQ(s.live_bytes, 0);
	EXPECT_EQ(umm_check(m), 0);
	/* cached blocks are reused whole, and each only once */
	void *q[48];
	for (unsigned i = 0; i < 48; i++) {
		q[i] = umm_alloc_fast(m, 40, 7);
		ASSERT(q[i]);
		for (unsigned j = 0; j < i; j++)
			EXPECT(q[j] != q[i]);
	}
	for (unsigned i = 0; i < 48; i++)
		umm_free(m, q[i]);
	EXPECT(all_free(m));
}

/* Ordered across CPUs: round r, one CPU allocates and frees a block (it
 * stays cached there), then every CPU in turn frees it again, each after
 * the previous one returned; all those frees are refused. */
struct dfree {
	umm_t *m;
	void *blk;
	unsigned turn, rounds, n;
};

/* Until *turn is t: spin a while, then give the CPU up between looks
 * (with 64 harts on a 2-core host, spinning made this test 320 s long). */
static void dfree_wait(const unsigned *turn, unsigned t)
{
	for (unsigned spins = 0; __atomic_load_n(turn, __ATOMIC_ACQUIRE) != t; spins++)
		if (spins < 1000)
			env_cpu_relax();
		else
			ktest_cpu_wait();
}

static void dfree_thread(unsigned id, void *arg)
{
	struct dfree *d = arg;
	unsigned n = d->n, steps = n + 1;

	for (unsigned r = 0; r < d->rounds; r++) {
		unsigned owner = r % n;
		/* turn r * steps: the owner's alloc and free; then one step
		 * per CPU (the owner last, a same-CPU repeat) */
		for (unsigned st = 0; st < steps; st++) {
			unsigned who = st == 0 ? owner : (owner + st) % n;
			if (who != id)
				continue;
			dfree_wait(&d->turn, r * steps + st);
			if (st == 0) {
				void *p = umm_alloc(d->m, 16 + 24 * (r % 8), 0);
				if (p)
					umm_free(d->m, p);
				d->blk = p;
			} else if ((r + st) & 1) {
				umm_free_fast(d->m, d->blk);
			} else {
				umm_free(d->m, d->blk);
			}
			__atomic_store_n(&d->turn, r * steps + st + 1, __ATOMIC_RELEASE);
		}
	}
	dfree_wait(&d->turn, d->rounds * steps);
	umm_flush(d->m);
}

KTEST(umm, double_free_ordered_cross_cpu)
{
	struct dfree *d = ktest_mem(sizeof(*d), 64);
	umm_t *m = mkpool(256 * 1024);
	struct umm_stats s;
	ASSERT(d && m);
	d->m = m;
	d->n = ktest_ncpus();
	/* spin hand-offs: few rounds when CPUs may outnumber cores (host) */
	d->rounds = 160 / d->n < 16 ? 16 : 160 / d->n;
	ktest_parallel(d->n, dfree_thread, d);
	umm_stats(m, &s);
	EXPECT_EQ(s.allocs, d->rounds);
	EXPECT_EQ(s.frees, d->rounds);
	EXPECT_EQ(s.refused, (uint64_t)d->rounds * d->n);
	EXPECT_EQ(s.live_bytes, 0);
	expect_all_free(KT_CTX, m);
}

/* ---- flushing ------------------------------------------------------------------
 * umm_flush gives this CPU's cached chunks back: nothing parked, one free
 * chunk. Cached chunks are reported free, with tags 0, by umm_iterate. */
KTEST(umm, flush)
{
	umm_t *m = mkpool(POOL);
	struct umm_stats s;
	void *p[8];
	ASSERT(m);
	for (unsigned i = 0; i < 8; i++) {
		p[i] = umm_alloc(m, 24 + 16 * i, 0x33);   /* eight classes: all stay in the slots */
		ASSERT(p[i]);
	}
	for (unsigned i = 0; i < 8; i++)
		umm_free(m, p[i]);
	umm_stats(m, &s);
	EXPECT(s.parked_bytes > 0);
	EXPECT_EQ(s.live_bytes, 0);
	struct walk w = { .tag = 0x33 };
	EXPECT_EQ(umm_iterate(m, walk_cb, &w), 0);
	EXPECT_EQ(w.nused, 0);
	EXPECT_EQ(w.tagged, 0);
	EXPECT_GE(w.nfree, 9);   /* the eight cached, the rest */
	EXPECT_EQ(umm_check(m), 0);
	umm_flush(m);
	umm_stats(m, &s);
	EXPECT_EQ(s.parked_bytes, 0);
	struct walk w2 = { 0 };
	EXPECT_EQ(umm_iterate(m, walk_cb, &w2), 0);
	EXPECT_EQ(w2.nfree, 1);
	EXPECT_EQ(w2.free, s.capacity);
	EXPECT_EQ(umm_check(m), 0);
}

/* A failing allocation raises a flush request that a CPU idle in umm honours
 * at its next call: CPU 1 caches blocks and waits; CPU 0's large allocation
 * fails while they are cached, CPU 1 makes one call, CPU 0 then succeeds. */
struct freq {
	umm_t *m;
	unsigned phase;
	void *big;
};

static void freq_thread(unsigned id, void *arg)
{
	struct freq *f = arg;
	if (id == 1) {
		void *p[UMM_SLOTS];
		for (unsigned i = 0; i < UMM_SLOTS; i++)
			p[i] = umm_alloc(f->m, 200, 0);
		for (unsigned i = 0; i < UMM_SLOTS; i++)
			umm_free(f->m, p[i]);
		__atomic_store_n(&f->phase, 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&f->phase, __ATOMIC_ACQUIRE) != 2)
			env_cpu_relax();
		umm_free(f->m, NULL);            /* no-op, not a umm call that honours */
		umm_free_fast(f->m, umm_alloc_fast(f->m, 100000, 0));   /* honours */
		__atomic_store_n(&f->phase, 3, __ATOMIC_RELEASE);
	} else if (id == 0) {
		struct umm_stats s;
		while (__atomic_load_n(&f->phase, __ATOMIC_ACQUIRE) != 1)
			env_cpu_relax();
		umm_stats(f->m, &s);
		f->big = umm_alloc(f->m, s.capacity, 0);   /* fails: CPU 1 holds cached chunks */
		__atomic_store_n(&f->phase, 2, __ATOMIC_RELEASE);
		while (__atomic_load_n(&f->phase, __ATOMIC_ACQUIRE) != 3)
			env_cpu_relax();
		if (!f->big)
			f->big = umm_alloc(f->m, s.capacity, 0);
		else
			f->big = NULL;   /* should not have fit */
	}
}

KTEST(umm, flush_request)
{
	struct freq *f = ktest_mem(sizeof(*f), 64);
	umm_t *m = mkpool(POOL);
	ASSERT(f && m);
	if (ktest_ncpus() < 2) {
		printf("umm flush_request: needs 2 cpus, skipped\n");
		return;
	}
	f->m = m;
	ktest_parallel(2, freq_thread, f);
	EXPECT(f->big != NULL);
	umm_free(m, f->big);
	EXPECT(all_free(m));
}

/* ---- search cost and memory use (issue 12, findings 2 and 5) -------------- */

/* Steps of one search: the allocation of `size` (aligned 32, so never from
 * a cache: every one searches the pool). */
static void *searched(struct ktest_ctx *kt__, umm_t *m, size_t size, uint64_t *steps, uint64_t *max)
{
	struct umm_stats a, b;

	umm_stats(m, &a);
	void *p = umm_alloc_aligned(m, size, 32, 0);
	umm_stats(m, &b);
	EXPECT_EQ(b.searches - a.searches, 1);
	*steps += b.search_steps - a.search_steps;
	if (b.search_steps - a.search_steps > *max)
		*max = b.search_steps - a.search_steps;
	return p;
}

/* Average and largest search steps per pool search over a fragmenting
 * workload of n objects of random sizes (16..416 bytes), every other one
 * freed (holes that a 1,000-byte block does not fit), then 2n rounds of a
 * block of 1,000..2,000 bytes allocated and freed at once, and 2n rounds
 * of one random object freed and another allocated. The first rounds are
 * what made the old next-fit search quadratic: freeing the block merges
 * away the chunk its rover pointed at, so the next search started at the
 * pool's base and walked every chunk (0.8 n steps per search: 400 for
 * n = 500, 3,200 for 4,000, 16,000 for 20,000, measured on the old code
 * with a step counter added). */
static void search_cost(struct ktest_ctx *kt__, unsigned n, uint64_t *avg, uint64_t *max)
{
	umm_t *m = mkpool(n * 512 + (1u << 20));
	void **p = ktest_mem(n * sizeof(void *), 8);
	uint64_t s = 0x1234567 + n, steps = 0;

	ASSERT(m && p);
	for (unsigned i = 0; i < n; i++)
		ASSERT((p[i] = umm_alloc_aligned(m, 16 + rnd(&s) % 400, 32, 0)) != NULL);
	for (unsigned i = 0; i < n; i += 2) {
		umm_free(m, p[i]);
		p[i] = NULL;
	}
	*max = 0;
	for (unsigned r = 0; r < 2 * n; r++) {
		void *q = searched(kt__, m, 1000 + rnd(&s) % 1000, &steps, max);
		ASSERT(q != NULL);
		umm_free(m, q);
	}
	for (unsigned r = 0; r < 2 * n; r++) {
		unsigned i = (unsigned)(rnd(&s) % n);
		umm_free(m, p[i]);
		ASSERT((p[i] = searched(kt__, m, 16 + rnd(&s) % 600, &steps, max)) != NULL);
	}
	*avg = steps / (4 * n);
	EXPECT_EQ(umm_check(m), 0);
	for (unsigned i = 0; i < n; i++)
		umm_free(m, p[i]);
	EXPECT(all_free(m));
}

KTEST(umm, search_steps_bounded)
{
	uint64_t avg1, max1, avg8, max8;

	search_cost(kt__, 500, &avg1, &max1);
	search_cost(kt__, 4000, &avg8, &max8);
	/* a few bins and list entries per search, whatever the chunk count */
	EXPECT_LE(avg1, 16);
	EXPECT_LE(avg8, 16);
	EXPECT_LE(avg8, 2 * avg1 + 2);
	EXPECT_LE(max8, 160);
}

#ifndef KERNEL_BUILD
#include <stdlib.h>
#include <sys/mman.h>

/* Resident bytes of [p, p + len), by mincore. */
static size_t resident(void *p, size_t len)
{
	size_t pages = len / 4096, n = 0;
	unsigned char *v = malloc(pages);
	if (!v || mincore(p, len, v)) {
		free(v);
		return (size_t)-1;
	}
	for (size_t i = 0; i < pages; i++)
		n += v[i] & 1;
	free(v);
	return n * 4096;
}

/* A 4 GiB pool reserved: building it touches a few pages, not 1/128 of it
 * (32 MiB of bitmap, which the old umm_init zeroed); a 256 MiB block
 * written and freed and 18,750 small blocks freed leave resident memory
 * near the 1 MiB of live data (the old pool kept all 280 MiB). */
KTEST(umm, memory_follows_live_data)
{
	size_t size = (size_t)4 << 30;
	void *space = mmap(NULL, size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	umm_t *m = ktest_mem(sizeof(umm_t), 64);
	static void *small[20000];
	struct umm_stats st;

	ASSERT(space != MAP_FAILED && m);
	ASSERT_EQ(umm_init(m, space, size), 0);
	EXPECT_LE(resident(space, size), 64 * 1024);
	char *big = umm_alloc(m, 256u << 20, 0);
	ASSERT(big != NULL);
	memset(big, 0x5a, 256u << 20);
	EXPECT_GE(resident(space, size), 256u << 20);
	for (unsigned i = 0; i < 20000; i++)
		ASSERT((small[i] = umm_alloc(m, 200 + i % 2000, 0)) != NULL);
	umm_free(m, big);
	for (unsigned i = 0; i < 20000; i++)
		if (i >= 1250) {
			umm_free(m, small[i]);
			small[i] = NULL;
		}
	umm_flush(m);
	umm_stats(m, &st);
	EXPECT_GE(st.released_bytes, 250u << 20);
	/* live: 1,250 blocks of ~0.8 KiB (1 MiB; umm_flush emptied the
	 * caches); besides them the bitmap of the part carved so far (1/128
	 * of 280 MiB) and one free chunk below the give-back size */
	size_t bound = st.live_bytes + (280u << 20) / 128 + (1u << 20);
	EXPECT_EQ(st.parked_bytes, 0);
	EXPECT_LE(st.live_bytes, 2u << 20);
	EXPECT_LE(resident(space, size), bound);
	EXPECT_EQ(umm_check(m), 0);
	/* given-back pages serve new blocks */
	char *again = umm_alloc(m, 64u << 20, 0);
	ASSERT(again != NULL);
	memset(again, 1, 64u << 20);
	EXPECT_EQ(again[(64u << 20) - 1], 1);
	umm_free(m, again);
	for (unsigned i = 0; i < 20000; i++)
		umm_free(m, small[i]);
	expect_all_free(KT_CTX, m);
	munmap(space, size);
}
#endif

/* A pool for only the CPU indexes up to the caller's lives in UMM_SIZE(n)
 * bytes: nothing reads or writes past them (on the host the block ends
 * where AddressSanitizer's red zone starts), and bad counts are refused. */
KTEST(umm, init_cpus_uses_only_its_cpus)
{
	unsigned n = env_cpu() + 1;
	umm_t *m = ktest_mem(UMM_SIZE(n), 64);
	char *space = ktest_mem(POOL, 4096);
	struct umm_stats st;
	void *p[64];

	ASSERT(m && space);
	EXPECT_EQ(umm_init_cpus(m, space, POOL, 0), E_INVAL);
	EXPECT_EQ(umm_init_cpus(m, space, POOL, ENV_MAX_CPUS + 1), E_INVAL);
	ASSERT_EQ(umm_init_cpus(m, space, POOL, n), 0);
	EXPECT_EQ(m->ncpu, n);
	for (unsigned i = 0; i < 64; i++) {
		p[i] = i % 2 ? umm_alloc_fast(m, 16 + 40 * i, 0) : umm_alloc(m, 16 + 40 * i, 0);
		EXPECT(p[i] != NULL);
	}
	for (unsigned i = 0; i < 64; i++)
		i % 2 ? umm_free_fast(m, p[i]) : umm_free(m, p[i]);
	umm_flush(m);
	EXPECT_EQ(umm_check(m), 0);
	umm_stats(m, &st);
	EXPECT_EQ(st.live_bytes, 0);
	EXPECT_EQ(st.allocs, 64);
	EXPECT_EQ(st.frees, 64);
	expect_all_free(kt__, m);
}
