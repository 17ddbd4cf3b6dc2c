/* lmm_fuzz.c - libFuzzer target: random region/add/alloc/free/remove
 * sequences against a granule-level shadow of regions and free memory.
 *
 * The shadow predicts every result exactly: error codes of refusals, and the
 * address of each allocation (priority order, then lowest address first fit).
 * After each step lmm_check must pass and lmm_avail must equal the shadow.
 */
#include "lmm.h"

#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define G      LMM_GRANULE
#define ARENA  (64 * 1024)
#define NG     (ARENA / G)
#define NREG   4
#define NALLOC 256

static _Alignas(4096) char arena[ARENA];
static lmm_t lmm;
static lmm_region_t regs[NREG];

static struct {
	unsigned nreg;
	uintptr_t min[NREG], max[NREG];
	lmm_flags_t flags[NREG];
	lmm_pri_t pri[NREG];
	int order[NREG];            /* region indexes by priority, stable */
	signed char reg[NG];        /* region of each granule, -1 none */
	unsigned char free[NG];
	size_t nfree;
	unsigned nalloc;
	uintptr_t aaddr[NALLOC];
	size_t asize[NALLOC];
} S;

static const uint8_t *in;
static size_t left;

static unsigned get(unsigned bytes)
{
	unsigned v = 0;
	while (bytes--) {
		v = v << 8 | (left ? *in : 0);
		if (left) {
			in++;
			left--;
		}
	}
	return v;
}

/* Refusals the model predicts log a line each; at 100,000 runs a second
 * that is noise, so fd 2 points at /dev/null around them. Sanitizer
 * reports keep a saved copy of the real stderr. */
static int real_stderr = -1, devnull = -1;

static void quiet(bool on)
{
	if (real_stderr >= 0)
		dup2(on ? devnull : real_stderr, 2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	real_stderr = dup(2);
	devnull = open("/dev/null", O_WRONLY);
	if (real_stderr < 0 || devnull < 0)
		real_stderr = -1;
	else
		__sanitizer_set_report_fd((void *)(intptr_t)real_stderr);
	return 0;
}

#define BASE ((uintptr_t)arena)
#define GI(a) (((a) - BASE) / G)

static void die(const char *what, long got, long want)
{
	quiet(false);
	fprintf(stderr, "lmm_fuzz: %s: got %ld want %ld\n", what, got, want);
	lmm_dump(&lmm);
	abort();
}

/* An address near the arena: a little below, inside, a little above. */
static uintptr_t addr_in(unsigned v)
{
	return BASE - 2 * G + v % (ARENA + 4 * G);
}

static int region_at(uintptr_t a)
{
	if (a < BASE || a >= BASE + ARENA)
		return -1;
	return S.reg[GI(a)];
}

static void op_add_region(void)
{
	uintptr_t s = addr_in(get(2)), size = get(2) % (ARENA / 2) + 1, e = s + size;
	lmm_flags_t fl = get(1) & 7;
	lmm_pri_t pri = (int)(get(1) % 5) - 2;
	int rc, want = 0;

	if (S.nreg == NREG)
		return;
	uintptr_t ts = (s + G - 1) & ~(uintptr_t)(G - 1), te = e & ~(uintptr_t)(G - 1);
	if (ts < BASE || te > BASE + ARENA)
		return;                 /* keep the shadow inside the arena */
	if (ts >= te)
		want = E_ALIGN;         /* nothing left after trimming */
	for (uintptr_t a = ts; a < te; a += G)
		if (S.reg[GI(a)] >= 0)
			want = E_EXIST;
	rc = lmm_add_region(&lmm, &regs[S.nreg], (void *)s, e - s, fl, pri);
	if (rc != want)
		die("add_region", rc, want);
	if (rc)
		return;
	unsigned k = S.nreg++, j;
	s = ts;
	e = te;
	S.min[k] = s;
	S.max[k] = e;
	S.flags[k] = fl;
	S.pri[k] = pri;
	for (uintptr_t a = s; a < e; a += G)
		S.reg[GI(a)] = (signed char)k;
	for (j = k; j > 0 && S.pri[S.order[j - 1]] < pri; j--)
		S.order[j] = S.order[j - 1];
	S.order[j] = (int)k;
}

static void set_free(uintptr_t s, uintptr_t e, unsigned char v)
{
	for (uintptr_t a = s; a < e; a += G)
		if (S.free[GI(a)] != v) {
			S.free[GI(a)] = v;
			S.nfree += v ? G : -G;
		}
}

static void op_add_free(void)
{
	uintptr_t s = addr_in(get(2)), size = get(2) % ARENA, e = s + size;
	uintptr_t ts = (s + G - 1) & ~(uintptr_t)(G - 1), te = e & ~(uintptr_t)(G - 1);
	int want = 0, rc;
	bool any = false;

	if (!size)
		want = E_INVAL;
	else if (ts < te) {
		for (uintptr_t a = ts; a < te; a += G)
			if (region_at(a) >= 0) {
				any = true;
				if (S.free[GI(a)])
					want = E_EXIST;
			}
		if (!any)
			want = E_NOENT;
	}
	quiet(want != 0);
	rc = lmm_add_free(&lmm, (void *)s, size);
	quiet(false);
	if (rc != want)
		die("add_free", rc, want);
	if (!rc && ts < te)
		for (uintptr_t a = ts; a < te; a += G)
			if (region_at(a) >= 0)
				set_free(a, a + G, 1);
}

/* The shadow's first fit, as lmm_alloc_gen specifies it. */
static uintptr_t model_alloc(size_t size, lmm_flags_t fl, int bits, uintptr_t aofs,
			     uintptr_t lo, uintptr_t hi)
{
	uintptr_t umask = ((uintptr_t)1 << bits) - 1, ofs = aofs & umask;
	uintptr_t mask = umask | (G - 1);
	size_t rs = (size + G - 1) & ~(size_t)(G - 1);

	if (ofs & (G - 1))
		return 0;
	for (unsigned i = 0; i < S.nreg; i++) {
		int k = S.order[i];
		if (fl & ~S.flags[k])
			continue;
		for (uintptr_t a = S.min[k]; a < S.max[k];) {
			uintptr_t rs0, re;
			if (!S.free[GI(a)]) {
				a += G;
				continue;
			}
			for (rs0 = a; a < S.max[k] && S.free[GI(a)]; a += G)
				;
			re = a;
			uintptr_t c = rs0 > lo ? rs0 : lo, b = (c & ~mask) | ofs;
			if (b < c)
				b += mask + 1;
			if (b >= c && b <= re && re - b >= rs && b <= hi && hi - b >= size)
				return b;
		}
	}
	return 0;
}

static void op_alloc(void)
{
	size_t size = get(2) % 4096;
	lmm_flags_t fl = get(1) & 7;
	int bits = get(1) % 14;
	uintptr_t aofs = (uintptr_t)get(2) << (get(1) & 1 ? 0 : 5);
	uintptr_t lo = get(1) & 1 ? 0 : addr_in(get(2));
	size_t isz = get(1) & 1 ? SIZE_MAX : get(2);
	uintptr_t hi = isz > UINTPTR_MAX - lo ? UINTPTR_MAX : lo + isz;
	uintptr_t want = 0, got;

	if (size && isz >= size && hi - lo >= size)
		want = model_alloc(size, fl, bits, aofs, lo, hi);
	got = (uintptr_t)lmm_alloc_gen(&lmm, size, fl, bits, aofs, lo, isz);
	if (got != want)
		die("alloc_gen", (long)(got - BASE), (long)(want - BASE));
	if (!got)
		return;
	size_t rs = (size + G - 1) & ~(size_t)(G - 1);
	for (uintptr_t a = got; a < got + rs; a += G)
		if (!S.free[GI(a)] || (fl & ~S.flags[S.reg[GI(a)]]))
			die("alloc_gen gave non-free memory", (long)(a - BASE), 0);
	set_free(got, got + rs, 0);
	memset((void *)got, 0xa5, size);            /* the caller owns it now */
	if (S.nalloc < NALLOC) {
		S.aaddr[S.nalloc] = got;
		S.asize[S.nalloc++] = size;
	}
}

/* Free either a recorded allocation or an arbitrary block; predict the code. */
static void op_free(void)
{
	unsigned pick = get(1);
	uintptr_t s, e;
	size_t size;
	int want, rc, k;

	if (pick < 160 && S.nalloc) {
		unsigned i = pick % S.nalloc;
		s = S.aaddr[i];
		size = S.asize[i];
		if (!(get(1) & 3))          /* sometimes keep it: a later double free */
			S.aaddr[i] = S.aaddr[--S.nalloc], S.asize[i] = S.asize[S.nalloc];
	} else {
		s = addr_in(get(2));
		size = get(2) % 8192;
	}
	size_t rs = (size + G - 1) & ~(size_t)(G - 1);
	e = s + rs;
	if (!size)
		want = E_INVAL;
	else if (s & (G - 1))
		want = E_ALIGN;
	else if ((k = region_at(s)) < 0)
		want = E_NOENT;
	else if (e > S.max[k])
		want = E_RANGE;
	else {
		want = 0;
		for (uintptr_t a = s; a < e; a += G)
			if (S.free[GI(a)])
				want = E_EXIST;
	}
	quiet(want != 0);
	rc = lmm_free(&lmm, (void *)s, size);
	quiet(false);
	if (rc != want)
		die("free", rc, want);
	if (!rc)
		set_free(s, e, 1);
}

/* Cut a region into many small blocks with exact placements, so searches
 * run over trees several levels deep. */
static void op_shatter(void)
{
	unsigned k = get(1), stride = (get(1) % 6 + 2) * G;
	uintptr_t a, got, want;

	if (!S.nreg)
		return;
	k %= S.nreg;
	for (a = S.min[k] + (get(1) % 4) * G; a + G <= S.max[k]; a += stride) {
		want = S.free[GI(a)] ? a : 0;
		got = (uintptr_t)lmm_alloc_gen(&lmm, G, 0, 0, 0, a, G);
		if (got != want)
			die("exact alloc_gen", (long)(got - BASE), (long)(want - BASE));
		if (got)
			set_free(a, a + G, 0);
	}
}

static void op_remove(void)
{
	uintptr_t s = addr_in(get(2)), size = get(2) % 8192;
	uintptr_t ws = s & ~(uintptr_t)(G - 1), we = (s + size + G - 1) & ~(uintptr_t)(G - 1);

	lmm_remove_free(&lmm, (void *)s, size);
	if (!size)
		return;
	for (uintptr_t a = ws; a < we; a += G)
		if (region_at(a) >= 0)
			set_free(a, a + G, 0);
}

static void op_find(void)
{
	uintptr_t a = addr_in(get(2)), start = a;
	size_t sz;
	lmm_flags_t fl;
	uintptr_t w = start;

	lmm_find_free(&lmm, &a, &sz, &fl);
	/* Shadow: first free granule at or after start (partial granule counts). */
	if (w < BASE)
		w = BASE;
	while (w < BASE + ARENA && !(region_at(w) >= 0 && S.free[GI(w)]))
		w = (w + G) & ~(uintptr_t)(G - 1);
	if (w >= BASE + ARENA) {
		if (sz)
			die("find_free found a block", (long)(a - BASE), -1);
		return;
	}
	if (!sz || a != w)
		die("find_free start", (long)(a - BASE), (long)(w - BASE));
	int k = region_at(w);
	uintptr_t e = (w + G) & ~(uintptr_t)(G - 1);
	while (e < S.max[k] && S.free[GI(e)])
		e += G;
	if (sz != e - w || fl != S.flags[k])
		die("find_free size", (long)sz, (long)(e - w));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	in = data;
	left = size;
	memset(&S, 0, sizeof(S));
	memset(S.reg, -1, sizeof(S.reg));
	lmm_init(&lmm);
	while (left) {
		switch (get(1) % 9) {
		case 0: op_add_region(); break;
		case 1: op_add_free(); break;
		case 2: case 3: op_alloc(); break;
		case 4: case 5: op_free(); break;
		case 6: op_remove(); break;
		case 7: op_find(); break;
		case 8: op_shatter(); break;
		}
		int rc = lmm_check(&lmm);
		if (rc)
			die("lmm_check", rc, 0);
		if (lmm_avail(&lmm, 0) != S.nfree)
			die("lmm_avail", (long)lmm_avail(&lmm, 0), (long)S.nfree);
	}
	return 0;
}
