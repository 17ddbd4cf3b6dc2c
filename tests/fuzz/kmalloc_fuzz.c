/* kmalloc_fuzz.c - libFuzzer target: a byte string drives one kmalloc
 * instance (static page arena, hand-moved clock) against a shadow list of
 * live blocks; kmalloc_check after every step, bad frees must change nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmalloc.h"

#define PAGES 256
#define MAXLIVE 256

static char arena[PAGES * ENV_PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t used[PAGES];
static size_t out, limit;

static void *get_pages(void *ctx, size_t n)
{
	if (!n || out + n > limit)
		return NULL;
	for (size_t i = 0, run = 0; i < PAGES; i++) {
		run = used[i] ? 0 : run + 1;
		if (run == n) {
			memset(&used[i + 1 - n], 1, n);
			out += n;
			return arena + (i + 1 - n) * ENV_PAGE_SIZE;
		}
	}
	return NULL;
}

static void put_pages(void *ctx, void *va, size_t n)
{
	size_t i = (size_t)((char *)va - arena) / ENV_PAGE_SIZE;
	for (size_t k = 0; k < n; k++) {
		if (!used[i + k])
			abort();              /* put twice, or never got */
		used[i + k] = 0;
	}
	out -= n;
}

static uint64_t clock_now;
static uint64_t now(void *ctx) { return clock_now; }

struct live {
	unsigned char *p;
	size_t n;
	unsigned char seed;
};
static struct live lv[MAXLIVE];
static unsigned nlive;
static kmalloc_t km;
static struct kmalloc_stats st;

/* Pattern bytes stay below 0x80, so payload bytes never read as a header
 * state (all >= 0xA1): a stale or interior pointer can't pass for a block. */
static void fill(unsigned char *p, size_t n, unsigned char seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((seed + i * 7) & 0x7f);
}

static void verify(const struct live *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->p[i] != (unsigned char)((l->seed + i * 7) & 0x7f))
			abort();
}

static void add(void *p, size_t n, unsigned char seed)
{
	if (!p)
		return;
	if ((uintptr_t)p % 16 || ksize_i(&km, p) < n)
		abort();
	for (unsigned i = 0; i < nlive; i++)    /* no overlap with live blocks */
		if ((unsigned char *)p < lv[i].p + (lv[i].n ? lv[i].n : 1) &&
		    lv[i].p < (unsigned char *)p + (n ? n : 1))
			abort();
	if (nlive == MAXLIVE) {
		if (kfree_i(&km, p))
			abort();
		return;
	}
	lv[nlive] = (struct live){ p, n, seed };
	fill(p, n, seed);
	nlive++;
}

static void drop(unsigned i)
{
	verify(&lv[i]);
	if (kfree_i(&km, lv[i].p))
		abort();
	lv[i] = lv[--nlive];
}

static bool live_at(const void *p)
{
	for (unsigned i = 0; i < nlive; i++)
		if (lv[i].p == p)
			return true;
	return false;
}

/* A refused free: an error, and the counters as before. */
static void bad_free(void *p)
{
	uint64_t live, cached, pool;

	kmalloc_stats_i(&km, &st);
	live = st.live_bytes;
	cached = st.cached_bytes;
	pool = st.pool_free_bytes;
	if (kfree_i(&km, p) == 0)
		abort();
	kmalloc_stats_i(&km, &st);
	if (st.live_bytes != live || st.cached_bytes != cached || st.pool_free_bytes != pool)
		abort();
}

static size_t size_of(const uint8_t *d)
{
	size_t s = (size_t)d[0] | (size_t)d[1] << 8;
	switch (d[0] % 8) {
	case 0:  return s % 64;
	case 1:  return s % 24000;         /* some large */
	default: return s % 1100;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct kmalloc_page_source src = { get_pages, put_pages, NULL };
	struct kmalloc_clock clk = { now, NULL };
	unsigned char *last_freed = NULL;
	long stack_var;

	if (n < 2)
		return 0;
	memset(used, 0, sizeof(used));
	out = 0;
	limit = 24 + d[0] % (PAGES - 24);
	clock_now = 0;
	nlive = 0;
	if (kmalloc_init_i(&km, &src, &clk, 1 + d[1] % 50))
		abort();
	kmalloc_tune_i(&km, 1 + d[1] % 16, 0);
	for (size_t i = 2; i + 3 <= n; i += 3) {
		const uint8_t *a = d + i + 1;
		unsigned k = nlive ? a[0] % nlive : 0;
		switch (d[i] % 14) {
		case 0: case 1: case 2:
			add(kmalloc_i(&km, size_of(a)), size_of(a), a[1]);
			break;
		case 3: {
			size_t s = size_of(a);
			unsigned char *p = kzalloc_i(&km, s);
			for (size_t j = 0; p && j < s; j++)
				if (p[j])
					abort();
			add(p, s, a[1]);
			break;
		}
		case 4: {
			size_t cn = a[0] & 0x80 ? (SIZE_MAX >> (a[0] & 7)) : a[0] % 40;
			size_t cs = a[1] % 64;
			size_t tot;
			void *p = kcalloc_i(&km, cn, cs);
			if (__builtin_mul_overflow(cn, cs, &tot)) {
				if (p)
					abort();
			} else {
				add(p, tot, a[1]);
			}
			break;
		}
		case 5:
			if (nlive) {
				size_t s = size_of(a);
				verify(&lv[k]);
				unsigned char *p = krealloc_i(&km, lv[k].p, s);
				if (!s) {
					lv[k] = lv[--nlive];
				} else if (p) {
					size_t keep = s < lv[k].n ? s : lv[k].n;
					lv[k].p = p;
					lv[k].n = keep;
					verify(&lv[k]);
					struct live l = lv[k];
					lv[k] = lv[--nlive];
					add(l.p, s, l.seed);
				}
			}
			break;
		case 6: {
			size_t al = (size_t)1 << (a[1] % 15);
			bool bad = a[1] % 16 == 15;
			if (bad)
				al = 48;
			void *p = kmalloc_aligned_i(&km, size_of(a), al);
			if (p && (bad || (uintptr_t)p % al))
				abort();
			add(p, size_of(a), a[1]);
			break;
		}
		case 7: case 8: case 9:
			if (nlive) {
				last_freed = lv[k].p;
				drop(k);
			}
			break;
		case 10:
			if (last_freed && !live_at(last_freed))
				bad_free(last_freed);                       /* double free */
			else if (nlive && ksize_i(&km, lv[k].p) >= 32)
				bad_free(lv[k].p + 16 * (1 + a[1] % (ksize_i(&km, lv[k].p) / 16 - 1)));
			else
				bad_free(a[1] & 1 ? (void *)&stack_var : (void *)(arena + 5));
			break;
		case 11:
			clock_now += a[0];
			kmalloc_reap_i(&km);
			break;
		case 12:
			if (a[0] % 4 == 0)
				kmalloc_reap_all_i(&km);
			else if (nlive && ksize_i(&km, lv[k].p) < lv[k].n)
				abort();
			break;
		case 13:
			if (nlive && a[1] & 0x80)   /* the page map's key drops bits 48+ */
				bad_free((void *)((uintptr_t)lv[k].p ^ ((uintptr_t)1 << (48 + a[1] % 8))));
			else if (nlive)
				bad_free(lv[k].p + 1 + a[1] % 15);             /* misaligned */
			break;
		}
		if (kmalloc_check_i(&km, KMALLOC_CHECK_ALL))
			abort();
	}
	while (nlive)
		drop(nlive - 1);
	kmalloc_reap_all_i(&km);
	kmalloc_stats_i(&km, &st);
	if (kmalloc_check_i(&km, KMALLOC_CHECK_ALL) || st.live_bytes || st.cached_bytes ||
	    st.pool_extents > st.pool_runs + st.cpus)
		abort();
	kmalloc_destroy_i(&km);
	if (out)
		abort();
	return 0;
}
