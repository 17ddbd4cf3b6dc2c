/* mm_fuzz.c - libFuzzer target for mm areas. The first input byte picks:
 *   even: a sequence of alloc / free / realloc / write / lock operations
 *         against a shadow model of live blocks, mm_check after each step,
 *         contents verified (overlapping blocks would break a pattern);
 *   odd:  the input's bytes are written over a well-formed area (header and
 *         chunks, except the lock word), then every call runs; the area is
 *         a heap block of exactly its size, so ASan reports any access
 *         outside it, and no call may hang. With bit 1 of the first byte
 *         set the lock is the environment's (lock/unlock hooks, as in the
 *         kernel) and the lock word and slot table are smashed too: they
 *         must not matter, and every hook lock must be undone. */
#include "mm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOM   (256u << 10)
#define NLIVE  64
#define LOCK_OFF 40              /* the lock word: forging it is a DoS only */
#define RD_OFF   96              /* the reader bits (two words): the same */

/* Bytes of the lock word and the reader bits: without hooks they are the
 * authority, and a forged hold by a live-looking slot makes a waiter wait
 * (bounded, but seconds): skipped when the area's lock is its own. */
static bool lock_byte(uint32_t off)
{
	return (off >= LOCK_OFF && off < LOCK_OFF + 8) || (off >= RD_OFF && off < RD_OFF + 16);
}

struct fenv {
	size_t room, size;
	int held;               /* hook lock: 0, MM_LOCK_RD or MM_LOCK_RW */
};

static void die(const char *what, int v);

static int f_lock(void *ctx, void *base, int mode)
{
	struct fenv *e = ctx;

	(void)base;
	if (e->held)
		die("hook lock taken twice", e->held);
	e->held = mode;
	return 0;
}

static int f_unlock(void *ctx, void *base)
{
	struct fenv *e = ctx;

	(void)base;
	if (!e->held)
		die("hook unlock without a lock", 0);
	e->held = 0;
	return 0;
}

static int f_grow(void *ctx, void *base, size_t n, size_t *mapped)
{
	struct fenv *e = ctx;

	if (n > e->room)
		return E_NOMEM;
	if (n > e->size)
		e->size = n;
	*mapped = n;
	return 0;
}

static int f_ensure(void *ctx, void *base, size_t n, size_t *mapped)
{
	struct fenv *e = ctx;

	if (n > e->size)
		return E_RANGE;
	*mapped = n;
	return 0;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "mm_fuzz: %s (%d)\n", what, rc);
	abort();
}

struct blk {
	mm_ptr_t p;
	uint32_t n;
	uint8_t seed;
};

static void fill(mm_t *h, const struct blk *b)
{
	uint8_t *q = mm_addr_n(h, b->p, b->n ? b->n : 1);

	if (!q)
		die("mm_addr of a live block", 0);
	for (uint32_t i = 0; i < b->n; i++)
		q[i] = (uint8_t)(b->seed + i * 7);
}

static void verify(mm_t *h, const struct blk *b, uint32_t n)
{
	const uint8_t *q = mm_addr_n(h, b->p, n ? n : 1);

	if (!q || b->p % MM_ALIGN)
		die("live block address", (int)b->p);
	for (uint32_t i = 0; i < n; i++)
		if (q[i] != (uint8_t)(b->seed + i * 7))
			die("block contents changed", (int)i);
}

static void ops(const uint8_t *d, size_t len)
{
	static struct blk live[NLIVE];
	struct fenv fe = { ROOM, 8192, 0 };
	struct mm_env env = { .grow = f_grow, .ensure_mapped = f_ensure, .ctx = &fe };
	uint8_t *buf = aligned_alloc(4096, ROOM);
	unsigned nlive = 0;
	mm_t h;
	int rc;

	if (!buf || mm_init_area(buf, fe.size, ROOM, d[0] % 200))
		die("init", 0);
	if ((rc = mm_attach_base(&h, buf, fe.size, ROOM, &env)))
		die("attach", rc);
	for (size_t i = 1; i + 3 <= len; i += 3) {
		uint8_t op = d[i] % 4;
		uint32_t arg = d[i + 1] | (uint32_t)d[i + 2] << 8;
		uint32_t n = (arg % 4 == 0) ? arg * 4 : arg % 300;
		unsigned k = nlive ? arg % nlive : 0;

		if (op == 0 && nlive < NLIVE) {           /* alloc */
			struct blk b = { mm_alloc(&h, n), n, d[i + 1] };
			if (b.p) {
				fill(&h, &b);
				live[nlive++] = b;
			} else if (mm_last_error(&h) != E_NOMEM)
				die("alloc error", mm_last_error(&h));
		} else if (op == 1 && nlive) {            /* free */
			verify(&h, &live[k], live[k].n);
			if ((rc = mm_free(&h, live[k].p)))
				die("free", rc);
			live[k] = live[--nlive];
		} else if (op == 2 && nlive) {            /* realloc */
			mm_ptr_t q = mm_realloc(&h, live[k].p, n ? n : 1);
			uint32_t keep = live[k].n < n ? live[k].n : n;

			if (!q) {
				if (mm_last_error(&h) != E_NOMEM)
					die("realloc error", mm_last_error(&h));
				verify(&h, &live[k], live[k].n);
				continue;
			}
			live[k].p = q;
			verify(&h, &live[k], keep);
			live[k].n = n ? n : 1;
			fill(&h, &live[k]);
		} else if (op == 3) {                     /* stale/bogus free */
			if (mm_free(&h, arg * 16 + 8) == 0)
				die("free of a misaligned offset", 0);
		}
		if ((rc = mm_check(&h)))
			die("mm_check", rc);
	}
	for (unsigned k = 0; k < nlive; k++) {
		verify(&h, &live[k], live[k].n);
		mm_free(&h, live[k].p);
	}
	if (mm_check(&h) || mm_available(&h) != ROOM - MM_HDR_SIZE - mm_static_size(&h))
		die("all freed: not one chunk", 0);
	free(buf);
}

static void smash(const uint8_t *d, size_t len)
{
	size_t size = 16384;
	uint8_t *buf = aligned_alloc(16, size);
	struct fenv fe = { size, size, 0 };
	struct mm_env env = { .grow = f_grow, .ensure_mapped = f_ensure, .ctx = &fe };
	bool hooks = d[0] & 2;
	mm_ptr_t p[12];
	struct mm_list *pos;
	mm_t h;

	if (hooks) {
		env.lock = f_lock;
		env.unlock = f_unlock;
	}
	if (!buf || mm_init_area(buf, 8192, size, sizeof(struct mm_list)) ||
	    mm_attach_base(&h, buf, 8192, size, &env))
		die("setup", 0);
	fe.size = 8192;
	mm_list_init(&h, mm_static(&h));
	for (int i = 0; i < 12; i++) {
		p[i] = mm_alloc(&h, 40 + 90 * i);
		mm_list_add_tail(&h, mm_static(&h), mm_addr(&h, p[i]));
	}
	for (int i = 0; i < 12; i += 3)
		mm_free(&h, p[i]);
	/* write the input: pairs of (offset, value) bytes over the area */
	for (size_t i = 1; i + 4 <= len; i += 4) {
		uint32_t off = (d[i] | (uint32_t)d[i + 1] << 8) % 8192;
		if (!hooks && lock_byte(off))
			continue;
		buf[off] = d[i + 2];
		if (d[i + 3] & 1 && off + 1 < 8192 && (hooks || !lock_byte(off + 1)))
			buf[off + 1] = d[i + 3];
	}
	for (int i = 0; i < 12; i++) {
		mm_ptr_t q = mm_realloc(&h, p[i], d[0] * 3u + 1);
		mm_free(&h, q ? q : p[i]);
		mm_alloc(&h, 16u * i + d[0]);
	}
	if (mm_lock(&h, MM_LOCK_RD) >= 0) {
		unsigned n = 0;

		mm_list_for_each(&h, pos, (struct mm_list *)mm_static(&h))
			n++;
		mm_unlock(&h);
	}
	mm_check(&h);
	mm_available(&h);
	if (fe.held)
		die("a hook lock left held", fe.held);
	mm_detach(&h);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
	if (len < 1)
		return 0;
	if (d[0] & 1)
		smash(d, len);
	else
		ops(d, len);
	return 0;
}
