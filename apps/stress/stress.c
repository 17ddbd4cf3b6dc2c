/* stress.c - the stress engine's control: options, the per-hart loop, the
 * check barrier, hand-over queues, hot-plug, the statistics line, the
 * end-of-run accounting, the table and the verdict (docs/STRESS.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress_int.h"

#define MS 1000000ull

static const char *const mgr_names[NMGR] = { "umm", "kmalloc", "pmem", "lmm", "vm", "mm" };

const char *s_mgr_name(unsigned m)
{
	return m < NMGR ? mgr_names[m] : "?";
}

static const char *const what_names[NWHAT] = {
	"nothing", "alloc", "free", "realloc", "aligned alloc", "vm grow", "hand-over receive",
	"cpu flush", "going offline", "check", "check barrier", "end of run",
	"its partitions", "its partitions at the end of the run",
};

/* The word the watchdog reads: what hart h does from now on. */
void s_doing(struct shart *h, unsigned mgr, unsigned what)
{
	ST(h->cur, (uint32_t)(mgr & 0xff) << 8 | what);
}

static void doing_str(char *buf, size_t n, uint32_t cur)
{
	unsigned m = cur >> 8, w = cur & 0xff;

	snprintf(buf, n, "%s%s%s", m == W_NOMGR ? "" : s_mgr_name(m), m == W_NOMGR ? "" : " ",
		 w < NWHAT ? what_names[w] : "?");
}

uint64_t s_rand(struct shart *h)
{
	uint64_t x = h->rng;   /* xorshift64* */

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	h->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t s_ns(struct stress *s)
{
	return s->p->now_ns() - s->t0;
}

/* The first violation wins and stops the run; later ones are dropped. */
void s_failure(struct stress *s, const char *fmt, ...)
{
	va_list ap;
	int expect = 0;

	if (!__atomic_compare_exchange_n(&s->failed, &expect, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	__atomic_store_n(&s->failed, 2, __ATOMIC_RELEASE);
	__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
}

/* fail=P: P percent of the calls to the engine's page sources (and vm's
 * objects, mm's growth) fail. The decision uses a per-CPU generator, so
 * under icount it is part of the deterministic run. */
static uint64_t fail_rng[S_MAX_HARTS];

bool s_fail_now(struct stress *s, unsigned mgr)
{
	unsigned c;
	uint64_t x;

	if (!s->o.fail || LD(s->quiet))
		return false;
	c = s->p->cpu_index() % S_MAX_HARTS;
	x = fail_rng[c] ? fail_rng[c] : (s->o.seed ^ (c + 1) * 0x9e3779b97f4a7c15ull) | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	fail_rng[c] = x;
	if ((x * 0x2545f4914f6cdd1dull) % 100 >= s->o.fail)
		return false;
	__atomic_fetch_add(&s->injected, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->minjected[mgr], 1, __ATOMIC_RELAXED);
	return true;
}

/* ---- options --------------------------------------------------------------- */

static int parse_list(const char *v, unsigned *out, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		char *end;
		out[i] = (unsigned)strtoul(v, &end, 10);
		if (end == v)
			return -1;
		v = end;
		if (i + 1 < n && *v++ != '/')
			return -1;
	}
	return *v ? -1 : 0;
}

static int parse_mgrs(const char *v, unsigned *mask)
{
	*mask = 0;
	while (*v) {
		size_t len = strcspn(v, ",");
		unsigned m;

		if (len == 3 && !strncmp(v, "all", 3))
			*mask |= (1u << NMGR) - 1;
		else {
			for (m = 0; m < NMGR; m++)
				if (strlen(mgr_names[m]) == len && !strncmp(v, mgr_names[m], len))
					break;
			if (m == NMGR)
				return -1;
			*mask |= 1u << m;
		}
		v += len;
		if (*v == ',')
			v++;
	}
	return *mask ? 0 : -1;
}

static size_t parse_size(const char *v, char **end)
{
	size_t n = strtoul(v, end, 0);

	if (**end == 'k' || **end == 'K')
		n <<= 10, (*end)++;
	else if (**end == 'm' || **end == 'M')
		n <<= 20, (*end)++;
	return n;
}

/* sizes=MIN-MAX[:uniform|log|pow] */
static int parse_sizes(const char *v, struct sopts *o)
{
	char *e;

	o->size_min = parse_size(v, &e);
	if (*e++ != '-')
		return -1;
	o->size_max = parse_size(e, &e);
	if (*e == ':') {
		e++;
		if (!strcmp(e, "uniform"))
			o->dist = DIST_UNIFORM;
		else if (!strcmp(e, "log"))
			o->dist = DIST_LOG;
		else if (!strcmp(e, "pow"))
			o->dist = DIST_POW;
		else
			return -1;
	} else if (*e)
		return -1;
	if (o->size_min < S_MIN_SIZE || o->size_max < o->size_min || o->size_max > (1u << 20))
		return -1;
	return 0;
}

static int parse_opt(struct sopts *o, const char *k, size_t klen, const char *v)
{
	struct { const char *name; void *p; int wide; uint64_t max; } nums[] = {
		{ "secs", &o->secs, 1, 86400 }, { "ops", &o->ops, 1, ~0ull },
		{ "seed", &o->seed, 1, ~0ull }, { "harts", &o->harts, 0, S_MAX_HARTS },
		{ "live", &o->live, 0, S_MAX_LIVE }, { "xfer", &o->xfer, 0, 100 },
		{ "irq", &o->irq, 0, 64 }, { "fail", &o->fail, 0, 50 },
		{ "onoff", &o->onoff, 0, 60000 }, { "check", &o->check, 0, 3600 },
		{ "stat", &o->stat, 0, 3600 }, { "corrupt", &o->corrupt, 0, 1 },
		{ "leaks", &o->leaks, 2, 1 }, { "kmirq", &o->kmirq, 2, 1 },
		{ "yield", &o->yield, 0, 1u << 20 }, { "icount", &o->icount, 2, 1 },
		{ "watchdog", &o->watchdog, 0, 86400 }, { "parts", &o->parts, 0, 64 },
		{ "pops", &o->pops, 0, 0xffffff },
	};
	char *end;

	if (klen == 3 && !strncmp(k, "mgr", 3))
		return parse_mgrs(v, &o->mgrs);
	if (klen == 5 && !strncmp(k, "sizes", 5))
		return parse_sizes(v, o);
	if (klen == 3 && !strncmp(k, "mix", 3))
		return parse_list(v, o->mix, NOPS);
	if (klen == 4 && !strncmp(k, "vmix", 4))
		return parse_list(v, o->vmix, NVOPS);
	if (klen == 5 && !strncmp(k, "debug", 5)) {
		static const char *const dbg[] = { "none", "stall", "stallwait", "kblock", "kfault",
						    "wedge" };
		for (unsigned i = 0; i < sizeof(dbg) / sizeof(dbg[0]); i++)
			if (!strcmp(v, dbg[i]))
				return o->debug = i, 0;
		return -1;
	}
	if (klen == 8 && !strncmp(k, "watchdog", 8))
		o->watchdog_set = true;     /* and the number below */
	for (unsigned i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		uint64_t n;
		if (strlen(nums[i].name) != klen || strncmp(k, nums[i].name, klen))
			continue;
		n = strtoull(v, &end, 0);
		if (end == v || *end || n > nums[i].max)
			return -1;
		if (nums[i].wide == 1)
			*(uint64_t *)nums[i].p = n;
		else if (nums[i].wide == 2)
			*(bool *)nums[i].p = n != 0;
		else
			*(unsigned *)nums[i].p = (unsigned)n;
		return 0;
	}
	return -1;
}

static int parse(struct sopts *o, const char *opts)
{
	*o = (struct sopts){
		.mgrs = (1u << NMGR) - 1, .secs = 30, .seed = 1, .size_min = 32,
		.size_max = 4096, .dist = DIST_LOG, .mix = { 50, 40, 5, 5 },
		.vmix = { 40, 40, 10, 10 }, .live = 64, .xfer = 10, .check = 5, .stat = 5,
		.pops = 2000,
	};
	for (const char *t = opts; *t;) {
		char v[160];
		size_t len, klen;

		t += strspn(t, " ");
		len = strcspn(t, " ");
		if (!len)
			break;
		klen = strcspn(t, "=");
		if (klen >= len || len - klen - 1 >= sizeof(v)) {
			printf("stress: option '%.*s' is not key=value\n", (int)len, t);
			return -1;
		}
		memcpy(v, t + klen + 1, len - klen - 1);
		v[len - klen - 1] = 0;
		if (parse_opt(o, t, klen, v)) {
			printf("stress: bad option '%.*s' (docs/STRESS.md lists them)\n", (int)len, t);
			return -1;
		}
		t += len;
	}
	if (o->ops)
		o->secs = 0;
	if (o->onoff == 1)
		o->onoff = 100;         /* onoff=1: a hot-plug event every 100 ms */
	if (!o->live)
		o->live = 1;
	if (!o->watchdog_set)
		o->watchdog = o->stat * 3 > 10 ? o->stat * 3 : 10;   /* x scale: stress_run */
	if (!o->mix[OP_ALLOC] && !o->mix[OP_ALIGNED]) {
		printf("stress: mix= allocates nothing\n");
		return -1;
	}
	return 0;
}

/* ---- sizes -------------------------------------------------------------------- */

static unsigned log2u(size_t v)
{
	unsigned b = 0;

	while (v >>= 1)
		b++;
	return b;
}

static size_t pick_size(struct stress *s, struct shart *h)
{
	size_t lo = s->o.size_min, hi = s->o.size_max, n;
	unsigned blo = log2u(lo), bhi = log2u(hi), b;

	switch (s->o.dist) {
	case DIST_UNIFORM:
		n = lo + s_rand(h) % (hi - lo + 1);
		break;
	case DIST_POW:   /* each power of two half as likely as the one below */
		b = blo + (unsigned)__builtin_ctzll(s_rand(h) | (1ull << 63));
		if (b > bhi)
			b = bhi;
		goto within;
	default:
		b = blo + (unsigned)(s_rand(h) % (bhi - blo + 1));
	within:
		n = ((size_t)1 << b) + s_rand(h) % ((size_t)1 << b);
		break;
	}
	if (n < lo)
		n = lo;
	if (n > hi)
		n = hi;
	return (n + 7) & ~(size_t)7;
}

static unsigned pick(struct shart *h, const unsigned *w, unsigned n)
{
	unsigned sum = 0, r;

	for (unsigned i = 0; i < n; i++)
		sum += w[i];
	if (!sum)
		return 0;
	r = (unsigned)(s_rand(h) % sum);
	for (unsigned i = 0; i < n; i++) {
		if (r < w[i])
			return i;
		r -= w[i];
	}
	return 0;
}

static unsigned pick_mgr(struct stress *s, struct shart *h)
{
	unsigned n = (unsigned)__builtin_popcount(s->o.mgrs), k = (unsigned)(s_rand(h) % n);

	for (unsigned m = 0; m < NMGR; m++)
		if ((s->o.mgrs & (1u << m)) && !k--)
			return m;
	return 0;
}

/* ---- counting ------------------------------------------------------------------- */

static uint64_t count(struct stress *s)
{
	return s->p->count ? s->p->count() : s->p->now_ns();
}

/* Histogram bucket of a count: 4 per power of two (the two bits below the
 * top one), so a percentile is known within 19%. */
static unsigned hbucket(uint64_t v)
{
	unsigned b, k;

	if (v < 4)
		return (unsigned)v;
	b = 63 - (unsigned)__builtin_clzll(v);
	k = 4 * (b - 1) + (unsigned)((v >> (b - 2)) & 3);
	return k < S_HBUCKETS ? k : S_HBUCKETS - 1;
}

/* The lower edge of bucket k (inverse of hbucket). */
static uint64_t hbucket_lo(unsigned k)
{
	unsigned b = k / 4 + 1;

	if (k < 4)
		return k;
	return (1ull << b) | (uint64_t)(k & 3) << (b - 2);
}

/* Percentile pc (0..100) of manager m's per-op counts over every hart. */
static uint64_t percentile(struct stress *s, unsigned m, unsigned pc)
{
	uint64_t total = 0, want, seen = 0;

	for (unsigned i = 0; i < s->n; i++)
		total += s->h[i]->mops[m];
	if (!total)
		return 0;
	want = (total * pc + 99) / 100;
	for (unsigned k = 0; k < S_HBUCKETS; k++) {
		for (unsigned i = 0; i < s->n; i++)
			seen += s->h[i]->mhist[m][k];
		if (seen >= want)
			return hbucket_lo(k);
	}
	return hbucket_lo(S_HBUCKETS - 1);
}

static void account(struct shart *h, unsigned m, int64_t bytes)
{
	ST(h->mlive[m], h->mlive[m] + bytes);
}

/* ---- hand-over ------------------------------------------------------------------ */

static void xpush(struct shart *to, struct sblk *b)
{
	struct xnode *x = (struct xnode *)b->va;
	void *head = __atomic_load_n(&to->xq, __ATOMIC_RELAXED);

	do
		x->w[2] = (uint64_t)(uintptr_t)head;
	while (!__atomic_compare_exchange_n(&to->xq, &head, x, true, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED));
}

/* Rebuild a block's record from its stamp (words 0 and 3), then verify and
 * free it here. */
static void xdrain(struct stress *s, struct shart *h)
{
	struct xnode *x = __atomic_exchange_n(&h->xq, NULL, __ATOMIC_ACQUIRE);

	while (x) {
		struct xnode *next = (struct xnode *)(uintptr_t)x->w[2];
		struct sblk b = { 0 };

		s_doing(h, (uint8_t)(x->w[3] >> 48), W_XRECV);
		b.va = x->w;
		b.key = (uintptr_t)x;
		b.seq = (uint32_t)(x->w[0] >> 32);
		b.owner = (uint16_t)(x->w[0] >> 16);
		b.mgr = (uint8_t)(x->w[3] >> 48);
		b.size = (uint32_t)x->w[3];
		b.api = (uint8_t)(x->w[3] >> 32);
		b.inst = (uint8_t)(x->w[3] >> 40);
		b.h = (uintptr_t)x;
		if (b.mgr == M_PMEM)
			b.h = (uintptr_t)x - (b.inst ? s->p->gpmem : s->pm)->va_offset;
		if (b.mgr >= NMGR || s_verify(s, h, &b, true, 0, "after a hand-over")) {
			if (b.mgr >= NMGR)
				s_failure(s, "stress: a block handed to hart %u has a broken stamp",
					  h->idx);
			return;
		}
		x->w[2] = x->w[1] ^ 0x5555aaaa5555aaaaull;   /* the link word back */
		s_free(s, h, &b);
		account(h, b.mgr, -(int64_t)b.size);
		h->xrecv++;
		x = next;
	}
}

/* ---- the check barrier and membership -------------------------------------------- */

/* A wait for other harts: with yield= also let them run (see stress.h). */
static void spin(struct stress *s)
{
	env_cpu_relax();
	if (s->o.yield && s->p->yield)
		s->p->yield();
}

/* ---- the watchdog ---------------------------------------------------------------- */

/* Hart 0 watches every other hart, hart 1 watches hart 0: a running hart
 * whose beat did not move for wd_ns (and that is not legitimately waiting
 * at a barrier, done with its ops, or down for hot-plug) stops the run. */
static void wd_poll(struct stress *s, unsigned self)
{
	unsigned lo = self == 0 ? 1 : 0, hi = self == 0 ? s->n : 1;
	uint64_t now;

	if (!s->wd_ns || self > 1 || LD(s->stop))
		return;
	now = s_ns(s);
	for (unsigned i = lo; i < hi; i++) {
		struct shart *h = s->h[i];
		uint64_t b = LD(h->beat);
		char what[48];

		if (b != s->wd_beat[i] || LD(h->state) != H_RUN || !LD(h->started) ||
		    LD(h->waiting)) {
			s->wd_beat[i] = b;
			s->wd_t[i] = now;
			continue;
		}
		if (now - s->wd_t[i] < s->wd_ns)
			continue;
		doing_str(what, sizeof(what), LD(h->cur));
		s_failure(s, "watchdog: hart %u made no progress for %llu s in %s%s", i,
			  (unsigned long long)((now - s->wd_t[i]) / 1000000000ull), what,
			  LD(s->check_req) ? " (the check barrier waits for it)" : "");
	}
}

/* A hart never reached the end of the run (stuck in a manager for good):
 * no end checks are possible; print the verdict and end the run. */
static void wedged(struct stress *s, unsigned self)
{
	int expect = 0;

	if (!__atomic_compare_exchange_n(&s->wedged, &expect, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		for (;;)
			spin(s);
	for (unsigned i = 0; i < s->n; i++)
		if (i != self && !LD(s->h[i]->waiting) && LD(s->h[i]->state) != H_DEAD) {
			char what[48];
			doing_str(what, sizeof(what), LD(s->h[i]->cur));
			if (!LD(s->failed))
				s_failure(s, "watchdog: hart %u made no progress for %llu s in %s "
					  "(at the end of the run)", i,
					  (unsigned long long)(s->wd_ns / 1000000000ull), what);
			s->p->print("stress: watchdog: hart %u never reached the end of the run "
				    "(last in %s): no end checks\n", i, what);
		}
	s->p->print("stress: FAILURE: %s (seed %llu)\n", s->why, (unsigned long long)s->o.seed);
	if (s->p->abort_run)
		s->p->abort_run();
	for (;;)
		spin(s);
}

/* ---- the check barrier ----------------------------------------------------------- */

/* A hart arrives for the check of generation gen and waits until that
 * check is over. The generation (not check_req) ends the wait: a hart that
 * sees the flag late, when hart 0 already started the next check, must
 * not stay counted for the old one and miss the new one. */
static void barrier_wait(struct stress *s, struct shart *h)
{
	unsigned long fl = env_lock(&s->ctl);
	unsigned gen = s->check_gen;
	bool was = LD(h->waiting);

	if (!LD(s->check_req)) {        /* over before we got here */
		env_unlock(&s->ctl, fl);
		return;
	}
	s->arrived++;
	env_unlock(&s->ctl, fl);
	s_doing(h, W_NOMGR, W_BARRIER);
	ST(h->waiting, true);
	while (LD(s->check_gen) == gen && !LD(s->stop)) {
		if (h->idx == 1)
			wd_poll(s, 1);      /* hart 0 may be stuck in a check */
		spin(s);
	}
	ST(h->waiting, was);
}

static bool run_check(struct stress *s)
{
	struct shart *h0 = s->h[0];
	unsigned long fl;
	bool ok;

	fl = env_lock(&s->ctl);
	s->arrived = 0;
	ST(s->quiet, true);
	__atomic_store_n(&s->check_req, true, __ATOMIC_RELEASE);
	env_unlock(&s->ctl, fl);
	s_doing(h0, W_NOMGR, W_BARRIER);
	for (;;) {
		fl = env_lock(&s->ctl);
		ok = s->arrived + 1 >= s->active;
		env_unlock(&s->ctl, fl);
		if (ok || LD(s->stop))
			break;
		INC(h0->beat);              /* hart 0 waits, but is alive */
		wd_poll(s, 0);
		spin(s);
	}
	s_doing(h0, W_NOMGR, W_CHECK);
	ok = !LD(s->stop) && s_check_all(s) == 0;
	if (!LD(s->stop))
		s->checks++;
	fl = env_lock(&s->ctl);
	ST(s->quiet, false);
	__atomic_store_n(&s->check_req, false, __ATOMIC_RELEASE);
	ST(s->check_gen, s->check_gen + 1);
	env_unlock(&s->ctl, fl);
	return ok;
}

/* ---- the tick ------------------------------------------------------------------ */

static struct stress *tick_s;

static void stress_tick(void)
{
	struct stress *s = tick_s;
	unsigned c;
	struct shart *h;

	if (!s || LD(s->quiet) || LD(s->stop))
		return;
	c = s->p->cpu_index();
	for (unsigned i = 0; i < s->n; i++) {
		h = s->h[i];
		if (h->cpu != c || !LD(h->started) || LD(h->state) != H_RUN)
			continue;
		bool km_ok = (!s->p->irq_ok || s->p->irq_ok()) && (s->o.kmirq || !h->in_km);
		for (unsigned k = 0; k < s->o.irq; k++)
			s_irq_op(s, h, km_ok);
		return;
	}
}

/* Thread context, interrupts off: the tick uses the same slots. */
static void irq_drain(struct stress *s, struct shart *h)
{
	unsigned long fl = env_irq_save();

	for (unsigned k = 0; k < S_IRQ_SLOTS; k++) {
		struct sblk *b = &h->irq[k];
		if (!b->used)
			continue;
		if (s_verify(s, h, b, false, 0, "at the end of the tick's blocks"))
			break;
		s_irq_free(s, b, false);
	}
	env_irq_restore(fl);
}

/* ---- one operation --------------------------------------------------------------- */

static struct sblk *find_slot(struct shart *h, bool used)
{
	for (unsigned t = 0; t < 8; t++) {
		struct sblk *b = &h->slot[s_rand(h) % h->nslot];
		if (!!b->used == used)
			return b;
	}
	for (unsigned k = 0; k < h->nslot; k++)
		if (!!h->slot[k].used == used)
			return &h->slot[k];
	return NULL;
}

static bool global_inst(struct stress *s, struct shart *h, unsigned m, size_t size)
{
	if (s_rand(h) % 8)
		return false;
	switch (m) {
	case M_UMM: return s->p->gumm && size <= 1024;
	case M_KMALLOC: return s->p->gkmalloc;
	case M_PMEM: return s->p->gpmem != NULL;
	default: return false;
	}
}

/* corrupt=1: write one byte through a stale pointer into a block that was
 * freed and handed out again; the verification must catch it. */
static void corrupt_after_free(struct stress *s, struct shart *h, struct sblk *b)
{
	struct sblk nb = *b;
	size_t size = b->size;

	if (b->mgr == M_VM || b->mgr == M_PMEM || b->inst || size < 64)
		return;
	h->stale = (uintptr_t)b->va;
	nb.used = 0;
	if (s_alloc(s, h, &nb, size, false))
		return;
	if ((uintptr_t)nb.va == h->stale) {
		((volatile uint8_t *)h->stale)[40] ^= 0x20;
		s->o.corrupt = 0;
		s->p->print("stress: corrupt=1: hart %u wrote one byte into %s block %p after "
			    "freeing it (now handed out again)\n", h->idx, s_mgr_name(b->mgr),
			    (void *)h->stale);
	}
	*b = nb;
	account(h, b->mgr, (int64_t)b->size);
}

static void do_free(struct stress *s, struct shart *h, struct sblk *b)
{
	unsigned m = b->mgr;
	int64_t size = b->size;

	if (s->o.fail && m != M_VM && s_rand(h) % 100 < s->o.fail)
		s_bad_input(s, h, b);
	if (s->o.xfer && s_can_xfer(m) && s->n > 1 && s_rand(h) % 100 < s->o.xfer) {
		struct shart *to = s->h[(h->idx + 1 + s_rand(h) % (s->n - 1)) % s->n];
		if (LD(to->state) == H_RUN && !s_verify(s, h, b, false, 0, "before a hand-over")) {
			xpush(to, b);
			b->used = 0;
			h->xsent++;
			/* still live: the receiver's account takes the bytes
			 * off when it frees the block */
			return;
		}
	}
	if (s_free(s, h, b) == 0) {
		account(h, m, -size);
		if (s->o.corrupt && h->idx == 0 && h->ops > 200)
			corrupt_after_free(s, h, b);
	}
}

static void one_op(struct stress *s, struct shart *h)
{
	unsigned m = pick_mgr(s, h), op;
	uint64_t c0 = count(s);
	struct sblk *b;
	size_t size = pick_size(s, h);

	if (m == M_VM) {
		static const unsigned vm_to_op[NVOPS] = { OP_ALLOC, OP_FREE, OP_REALLOC, NOPS };
		op = vm_to_op[pick(h, s->o.vmix, NVOPS)];
	} else
		op = pick(h, s->o.mix, NOPS);
	if ((op == OP_ALLOC || op == OP_ALIGNED) && h->nlive >= s->o.live)
		op = OP_FREE;
	if ((op == OP_FREE || op == OP_REALLOC) && h->nlive == 0)
		op = OP_ALLOC;
	s_doing(h, m, op == NOPS ? W_GROW : op == OP_ALLOC ? W_ALLOC : op == OP_FREE ? W_FREE :
		    op == OP_REALLOC ? W_REALLOC : W_ALIGNED);
	if ((s->o.debug == DBG_STALL || s->o.debug == DBG_WEDGE) && h->idx == s->n - 1 &&
	    h->ops >= 500) {
		/* debug=stall: this hart stops making progress in the middle
		 * of an operation (until the run is stopped); debug=wedge: for
		 * good, so the run must end without it */
		while (!LD(s->stop) || s->o.debug == DBG_WEDGE)
			spin(s);
		return;
	}
	if (op == NOPS) {
		s_vm_grow_op(s, h);
	} else if (op == OP_ALLOC || op == OP_ALIGNED) {
		b = find_slot(h, false);
		if (b) {
			b->mgr = (uint8_t)m;
			b->inst = global_inst(s, h, m, size);
			if (s_alloc(s, h, b, size, op == OP_ALIGNED) == 0) {
				h->nlive++;
				account(h, m, (int64_t)b->size);
			} else {
				b->used = 0;
				INC(h->mfail[m]);
			}
		}
	} else {
		b = find_slot(h, true);
		m = b ? b->mgr : m;
		if (b && op == OP_FREE) {
			do_free(s, h, b);
			h->nlive--;
		} else if (b) {
			int64_t old = b->size;
			int rc = s_realloc(s, h, b, size);
			if (rc == 0)
				account(h, m, (int64_t)b->size - old);
			else if (rc == E_NOMEM)
				INC(h->mfail[m]);
		}
	}
	h->mops[m]++;
	c0 = count(s) - c0;
	h->mcount[m] += c0;
	h->mhist[m][hbucket(c0)]++;
	INC(h->ops);
	INC(h->beat);
}

/* ---- hot-plug ------------------------------------------------------------------- */

static void go_offline(struct stress *s, struct shart *h)
{
	unsigned long fl;

	/* give everything back while still a member (a check barrier
	 * starting now waits for this hart), with interrupts off from here
	 * to the stop: a tick must not fill the caches again */
	unsigned long irq = env_irq_save();

	s_doing(h, W_NOMGR, W_OFFLINE);
	xdrain(s, h);
	irq_drain(s, h);
	s_flush_cpu(s, h);
	fl = env_lock(&s->ctl);
	if (LD(s->check_req) || LD(s->stop)) {
		env_unlock(&s->ctl, fl);
		env_irq_restore(irq);
		return;
	}
	ST(h->off_req, false);
	ST(h->state, H_OFF);
	ST(s->active, s->active - 1);
	env_unlock(&s->ctl, fl);
	h->offs++;
	__atomic_store_n(&h->flushed, true, __ATOMIC_RELEASE);
	s->p->cpu_off(h->idx);          /* the kernel's never returns */
	env_irq_restore(irq);
}

static void come_online(struct stress *s, struct shart *h)
{
	unsigned long fl = env_lock(&s->ctl);

	ST(h->flushed, false);
	ST(h->state, H_RUN);
	ST(s->active, s->active + 1);
	env_unlock(&s->ctl, fl);
}

/* Hart 0: now and then ask a running hart to go down; start stopped ones
 * again after half an interval, once their caches were seen empty. */
static void onoff_step(struct stress *s, uint64_t now)
{
	uint64_t every = (uint64_t)s->o.onoff * MS;

	for (unsigned i = 1; i < s->n; i++) {
		struct shart *h = s->h[i];
		if (LD(h->state) != H_OFF || !__atomic_load_n(&h->flushed, __ATOMIC_ACQUIRE))
			continue;
		if (s->p->cpu_stopped && !s->p->cpu_stopped(i))
			continue;
		if (now - s->last_onoff < every / 2 && !LD(s->stop))
			continue;
		s_stranded(s, h);           /* reports; the hart starts anyway */
		ST(h->flushed, false);
		ST(h->state, H_GONE);          /* restarting */
		if (s->p->cpu_on(i)) {
			s_failure(s, "stress: hart %u did not start again", i);
			ST(h->state, H_DEAD);
			__atomic_fetch_add(&s->dead, 1, __ATOMIC_ACQ_REL);
		}
	}
	if (LD(s->stop) || now - s->last_onoff < every || s->n < 2)
		return;
	s->last_onoff = now;
	{
		struct shart *v = s->h[1 + s_rand(s->h[0]) % (s->n - 1)];
		if (LD(v->state) != H_RUN)
			return;
		if (s->o.parts && s->p->parts_live(v->idx)) {
			/* its partitions are on its ring: it must not stop */
			s->onoff_skips++;
			if (!s->skip_said[v->idx]) {
				s->skip_said[v->idx] = true;
				s->p->print("stress: onoff: hart %u has live partitions: not stopped "
					    "while they live\n", v->idx);
			}
			return;
		}
		ST(v->off_req, true);
	}
}

/* ---- statistics ----------------------------------------------------------------- */

static void fmt_num(char *buf, size_t n, uint64_t v)
{
	if (v >= 10000000000ull)
		snprintf(buf, n, "%lluG", (unsigned long long)(v / 1000000000ull));
	else if (v >= 1000000000ull)
		snprintf(buf, n, "%llu.%lluG", (unsigned long long)(v / 1000000000ull),
			 (unsigned long long)(v / 100000000ull % 10));
	else if (v >= 1000000)
		snprintf(buf, n, "%llu.%lluM", (unsigned long long)(v / 1000000),
			 (unsigned long long)(v / 100000 % 10));
	else if (v >= 10000)
		snprintf(buf, n, "%lluk", (unsigned long long)(v / 1000));
	else
		snprintf(buf, n, "%llu", (unsigned long long)v);
}

static uint64_t total_ops(struct stress *s, uint64_t *mn, uint64_t *mx)
{
	uint64_t t = 0;

	*mn = ~0ull;
	*mx = 0;
	for (unsigned i = 0; i < s->n; i++) {
		uint64_t o = LD(s->h[i]->ops);
		t += o;
		if (o < *mn)
			*mn = o;
		if (o > *mx)
			*mx = o;
	}
	return t;
}

static int64_t live_bytes(struct stress *s, unsigned m)
{
	int64_t t = 0;

	for (unsigned i = 0; i < s->n; i++)
		t += LD(s->h[i]->mlive[m]);
	return t;
}

/* Hart 0: the peak of the shadow account, sampled. */
static int64_t sample_peaks(struct stress *s)
{
	int64_t live = 0;

	for (unsigned m = 0; m < NMGR; m++) {
		int64_t l = live_bytes(s, m);
		live += l;
		if (l > 0 && (uint64_t)l > s->mpeak[m])
			s->mpeak[m] = (uint64_t)l;
	}
	return live;
}

static void stat_line(struct stress *s, uint64_t now)
{
	char a[16], b[16], c[16], d[16];
	uint64_t mn, mx, ops = total_ops(s, &mn, &mx), handled = 0;
	int64_t live = sample_peaks(s);
	unsigned secs = (unsigned)(now / 1000000000ull);

	for (unsigned i = 0; i < s->n; i++)
		for (unsigned m = 0; m < NMGR; m++)
			handled += LD(s->h[i]->mfail[m]);
	fmt_num(a, sizeof(a), ops);
	fmt_num(b, sizeof(b), now ? ops * 1000000000ull / now : 0);
	fmt_num(c, sizeof(c), mn);
	fmt_num(d, sizeof(d), mx);
	char e[96] = "";

	if (s->o.onoff && (s->o.mgrs & (1u << M_KMALLOC)))
		snprintf(e, sizeof(e), " kmalloc-stranded %llu B",
			 (unsigned long long)LD(s->km_strand_last));
	if (s->o.parts && s->p->parts_ops) {
		char f[16];
		unsigned lending = 0;
		size_t l = strlen(e);

		for (unsigned i = 0; i < s->n; i++)
			lending += !LD(s->h[i]->parts_done) && i < s->o.parts;
		fmt_num(f, sizeof(f), s->part_ops ? s->part_ops : s->p->parts_ops());
		snprintf(e + l, sizeof(e) - l, " part-ops %s (%u harts lending)", f, lending);
	}
	s->p->print("stress: %us ops %s (%s/s) live %lld.%lld MiB fail-injected %llu handled %llu "
		    "err %d harts %u/%u (min %s max %s ops)%s\n", secs, a, b,
		    (long long)(live >> 20), (long long)((live & 0xfffff) * 10 >> 20),
		    (unsigned long long)(LD(s->injected) + LD(s->bad_in)),
		    (unsigned long long)(handled + LD(s->bad_in)),
		    LD(s->failed) ? 1 : 0, LD(s->active), s->n, c, d, e);
}

static void table(struct stress *s, uint64_t ns)
{
	if (s->p->count && !s->o.icount)
		s->p->print("stress: (instret/op counts instructions only under -icount: "
			    "make stress DETERMINISTIC=1)\n");
	s->p->print("stress: %-8s %10s %10s %9s %9s %9s %7s %10s %9s %9s\n", "manager", "ops", "ops/s",
		    !s->p->count ? "ns/op" : s->o.icount ? "insn/op" : "instret/op", "injected",
		    "failed", "checks", "peak-live", "p50", "p99");
	for (unsigned m = 0; m < NMGR; m++) {
		uint64_t ops = 0, cnt = 0, fl = 0;
		char a[16], b[16], c[16];

		if (!(s->o.mgrs & (1u << m)) && !(m == M_MM && s->part_ops))
			continue;
		for (unsigned i = 0; i < s->n; i++) {
			ops += s->h[i]->mops[m];
			cnt += s->h[i]->mcount[m];
			fl += s->h[i]->mfail[m];
		}
		/* the count per op is the harts' (a partition does not count) */
		cnt = ops ? cnt : 0;
		uint64_t hops = ops;
		if (m == M_MM && s->part_ops) {
			cnt = ops ? cnt * (ops + s->part_ops) / ops : 0;
			ops += s->part_ops;
		}
		fmt_num(a, sizeof(a), ops);
		fmt_num(b, sizeof(b), ns ? ops * 1000000000ull / ns : 0);
		fmt_num(c, sizeof(c), s->mpeak[m]);
		s->p->print("stress: %-8s %10s %10s %9llu %9llu %9llu %7llu %10s %9llu %9llu\n",
			    mgr_names[m], a, b, (unsigned long long)(ops ? cnt / ops : 0),
			    (unsigned long long)(s->minjected[m] + (s->mbad[m] < S_BAD_MAX ? s->mbad[m] : S_BAD_MAX)),
			    (unsigned long long)fl, (unsigned long long)s->checks, c,
			    (unsigned long long)percentile(s, m, 50),
			    (unsigned long long)percentile(s, m, 99));
		if (m == M_MM && s->part_ops) {
			/* both sources of the row; the columns after ops/s are the harts' */
			char d[16], e[16], f[16], g[16];
			fmt_num(d, sizeof(d), hops);
			fmt_num(e, sizeof(e), ns ? hops * 1000000000ull / ns : 0);
			fmt_num(f, sizeof(f), s->part_ops);
			fmt_num(g, sizeof(g), ns ? s->part_ops * 1000000000ull / ns : 0);
			s->p->print("stress:  mm: %s ops by the harts (%s/s), %s by %u partitions "
				    "(%s/s) beside them\n", d, e, f, s->o.parts, g);
		}
	}
}

/* ---- partitions beside the workload ------------------------------------------------- */

/* parts=: every S_LEND_NS a hart lends itself to its partitions for a
 * timer tick (part_run_lend: until the next tick, or sooner when all of
 * them sleep), between two of its operations, holding nothing. */
#define S_LEND_NS (20 * MS)
/* The end waits this long (x scale) for a hart's partitions to end. */
#define S_PARTS_END_S 30

static void lend(struct stress *s, struct shart *h)
{
	uint64_t now;

	if (!s->o.parts || h->parts_done || (now = s_ns(s)) < h->part_next)
		return;
	s_doing(h, W_NOMGR, W_PARTS);
	if (!s->p->parts_lend(1))
		h->parts_done = true;
	h->part_lends++;
	h->part_next = now + S_LEND_NS;
	INC(h->beat);               /* its partitions ran, or all of them sleep */
}

/* The end: the harts' workload is over; each hart runs its partitions
 * until they end, for at most S_PARTS_END_S x scale seconds; those left
 * then are stopped and fail the run, named. */
static void parts_end(struct stress *s, struct shart *h)
{
	unsigned secs = S_PARTS_END_S * s->scale;
	uint64_t t = s->p->now_ns();
	char why[200];

	s_doing(h, W_NOMGR, W_PARTS_END);
	while (!h->parts_done) {
		if (!s->p->parts_lend(2)) {
			h->parts_done = true;
			break;
		}
		INC(h->beat);       /* (not counted as a lend: the workload's only) */
		if (s->p->now_ns() - t > secs * 1000 * MS) {
			why[0] = 0;
			if (s->p->parts_abandon(secs, why, sizeof(why)))
				s_failure(s, "%s", why);
			h->parts_done = true;
			break;
		}
		spin(s);            /* all may sleep: let their wakers run */
	}
}

/* ---- the worker ------------------------------------------------------------------ */

static void end_phase(struct stress *s, struct shart *h);

static void worker(unsigned i, void *arg)
{
	struct stress *s = arg;
	struct shart *h = s->h[i];

	h->cpu = s->p->cpu_index();
	if (LD(h->state) == H_GONE)
		come_online(s, h);          /* started again after hot-plug */
	else if (s_hart_init(s, h))
		return;
	ST(h->started, true);
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&s->check_req, __ATOMIC_ACQUIRE) && i) {
			if (s->o.debug == DBG_STALLWAIT && i == s->n - 1) {
				/* debug=stallwait: this hart never arrives at
				 * the barrier (nor does anything else) */
				while (!LD(s->stop))
					spin(s);
				break;
			}
			barrier_wait(s, h);
			continue;
		}
		if (LD(h->off_req) && i) {
			go_offline(s, h);
			if (LD(h->state) == H_GONE)     /* host: started again */
				come_online(s, h);
			continue;
		}
		if (LD(h->xq))
			xdrain(s, h);
		one_op(s, h);
		if (s->o.parts && (h->ops & 15) == 0)
			lend(s, h);
		if (s->o.yield && s->p->yield && h->ops % s->o.yield == 0)
			s->p->yield();
		if (s->o.irq && !s->p->irq_start && h->ops % 64 == 0)
			for (unsigned k = 0; k < s->o.irq; k++)
				s_irq_op(s, h, true);
		if (h->target && h->ops >= h->target && i) {
			/* ops= reached: this hart waits for the others */
			ST(h->waiting, true);
			s_doing(h, W_NOMGR, W_IDLE);
			while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
				if (__atomic_load_n(&s->check_req, __ATOMIC_ACQUIRE))
					barrier_wait(s, h);
				if (i == 1)
					wd_poll(s, 1);
				if (s->o.parts && !h->parts_done) {
					lend(s, h);
					s_doing(h, W_NOMGR, W_IDLE);
				}
				spin(s);
			}
			break;
		}
		if (i == 1 && (h->ops & 15) == 0)
			wd_poll(s, 1);
		if (i == 0 && (h->ops & 15) == 0) {
			uint64_t now = s_ns(s);
			if ((h->ops & 1023) == 0)
				sample_peaks(s);
			if (s->o.stat && now - s->last_stat >= s->o.stat * 1000 * MS) {
				s->last_stat = now;
				stat_line(s, now);
			}
			if (s->o.check && now - s->last_check >= s->o.check * 1000 * MS) {
				s->last_check = now;
				run_check(s);
			}
			if (s->o.onoff)
				onoff_step(s, now);
			wd_poll(s, 0);
			if (s->deadline && now >= s->deadline)
				__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
			if (h->target && h->ops >= h->target) {
				bool all = true;
				for (unsigned k = 1; k < s->n; k++)
					all &= LD(s->h[k]->ops) >= s->h[k]->target ||
					       LD(s->h[k]->state) != H_RUN;
				if (all)
					__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
			}
		}
	}
	end_phase(s, h);
}

/* Everyone: free what it holds; barrier; drain what was handed to it;
 * barrier; flush the per-CPU caches. A two-counter barrier. */
static volatile unsigned end_a, end_b, end_c, end_p;

/* With the watchdog on, a hart that does not arrive within its bound
 * (hart 0: the watchdog's; the others: long enough for hart 0's hot-plug
 * round-up first) ends the run through wedged(). */
static void end_barrier(struct stress *s, struct shart *h, volatile unsigned *ctr, uint64_t extra)
{
	uint64_t t = s->p->now_ns(), bound = s->wd_ns + extra;

	if (h->idx)
		bound = 2 * s->wd_ns + extra + (s->o.onoff ? 20000 * MS * s->scale : 0);
	ST(h->waiting, true);
	__atomic_fetch_add(ctr, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(ctr, __ATOMIC_ACQUIRE) < s->n - LD(s->dead)) {
		spin(s);
		if (s->wd_ns && s->p->now_ns() - t > bound)
			wedged(s, h->idx);
	}
	ST(h->waiting, false);
}

static void end_phase(struct stress *s, struct shart *h)
{
	if (h->idx == 0 && s->o.onoff) {
		/* bring every stopped hart back so it can free its blocks */
		uint64_t t = s->p->now_ns();
		for (;;) {
			bool all = true;
			onoff_step(s, s_ns(s));
			for (unsigned k = 1; k < s->n; k++)
				all &= LD(s->h[k]->state) == H_RUN || !LD(s->h[k]->started);
			if (all)
				break;
			spin(s);
			if (s->p->now_ns() - t > 20000 * MS * s->scale) {
				/* a hart that never came back is left out */
				for (unsigned k = 1; k < s->n; k++)
					if (LD(s->h[k]->state) != H_RUN && LD(s->h[k]->started)) {
						s_failure(s, "stress: hart %u did not come back "
							  "from hot-plug", k);
						ST(s->h[k]->state, H_DEAD);
						__atomic_fetch_add(&s->dead, 1, __ATOMIC_ACQ_REL);
					}
				break;
			}
			env_cpu_relax();
		}
	}
	if (s->o.parts) {
		/* every hart is up again: each runs its partitions to their
		 * end (bounded), then they all meet; the others wait the
		 * longest a hart's partitions may take on top of their bound */
		parts_end(s, h);
		end_barrier(s, h, &end_p, (S_PARTS_END_S * s->scale + 5) * 1000 * MS);
	}
	if (h->idx == 0 && s->p->irq_stop && s->o.irq)
		s->p->irq_stop();
	ST(s->quiet, true);
	ST(h->waiting, false);
	s_doing(h, W_NOMGR, W_END);
	for (unsigned k = 0; k < h->nslot; k++) {
		struct sblk *b = &h->slot[k];
		if (b->used && s_free(s, h, b) == 0)
			account(h, b->mgr, -(int64_t)b->size);
		b->used = 0;
	}
	h->nlive = 0;
	irq_drain(s, h);
	end_barrier(s, h, &end_a, 0);
	xdrain(s, h);
	end_barrier(s, h, &end_b, 0);
	s_doing(h, W_NOMGR, W_FLUSH);
	s_flush_cpu(s, h);
	end_barrier(s, h, &end_c, 0);
}

/* ---- the run ---------------------------------------------------------------------- */

int stress_run(const struct stress_plat *plat, const char *opts)
{
	static struct stress st;
	struct stress *s = &st;
	uint64_t pa, ns, mn, mx, ops;
	int fin = 0;

	memset(s, 0, sizeof(*s));
	memset(fail_rng, 0, sizeof(fail_rng));
	end_a = end_b = end_c = end_p = 0;
	s->p = plat;
	if (parse(&s->o, opts))
		return 1;
	s->n = s->o.harts && s->o.harts < plat->ncpus ? s->o.harts : plat->ncpus;
	/* bounds of the run (watchdog, hot-plug return) grow with the harts:
	 * on an emulator with many more harts than host cores a hart may not
	 * run for a long time */
	s->scale = s->n < 8 ? 1 : s->n / 4;
	if (!s->o.watchdog_set)
		s->o.watchdog *= s->scale;
	s->wd_ns = (uint64_t)s->o.watchdog * 1000 * MS;
	if (s->o.parts && !plat->parts_start) {
		plat->print("stress: parts=: no partitions on %s\n", plat->name);
		s->o.parts = 0;
	}
	if ((s->o.debug == DBG_KBLOCK || s->o.debug == DBG_KFAULT) && !s->o.parts) {
		plat->print("stress: debug=kblock/kfault need parts=\n");
		return 1;
	}
	if ((s->o.debug == DBG_STALL || s->o.debug == DBG_STALLWAIT || s->o.debug == DBG_WEDGE) &&
	    (s->n < 2 || !s->o.watchdog || (s->o.debug == DBG_STALLWAIT && !s->o.check))) {
		plat->print("stress: debug=stall/stallwait need 2 harts, the watchdog "
			    "(and check= for stallwait)\n");
		return 1;
	}
	if (!plat->irq_start && s->o.irq)
		plat->print("stress: irq=: no timer interrupt on %s; the tick's fast-path ops "
			    "run inline every 64 ops\n", plat->name);
	if (s->o.onoff && (!plat->cpu_off || s->n < 2)) {
		plat->print("stress: onoff=: needs hot-plug and at least 2 harts\n");
		s->o.onoff = 0;
	}
	plat->print("stress: %s, %u harts, mgr=", plat->name, s->n);
	for (unsigned m = 0, first = 1; m < NMGR; m++)
		if (s->o.mgrs & (1u << m)) {
			plat->print("%s%s", first ? "" : ",", mgr_names[m]);
			first = 0;
		}
	plat->print(" %s%llu seed=%llu sizes=%zu-%zu:%s live=%u xfer=%u irq=%u fail=%u onoff=%u "
		    "check=%u stat=%u watchdog=%u%s\n", s->o.ops ? "ops=" : "secs=",
		    (unsigned long long)(s->o.ops ? s->o.ops : s->o.secs),
		    (unsigned long long)s->o.seed, s->o.size_min, s->o.size_max,
		    s->o.dist == DIST_UNIFORM ? "uniform" : s->o.dist == DIST_POW ? "pow" : "log",
		    s->o.live, s->o.xfer, s->o.irq, s->o.fail, s->o.onoff, s->o.check, s->o.stat,
		    s->o.watchdog, s->o.corrupt ? " corrupt=1" : "");
	if (s->o.debug)
		plat->print("stress: debug=%s: %s\n",
			    s->o.debug == DBG_STALL ? "stall" : s->o.debug == DBG_STALLWAIT ?
			    "stallwait" : s->o.debug == DBG_KBLOCK ? "kblock" :
			    s->o.debug == DBG_WEDGE ? "wedge" : "kfault",
			    s->o.debug == DBG_STALL ? "the last hart stops making progress after 500 ops" :
			    s->o.debug == DBG_WEDGE ? "the last hart hangs for good after 500 ops" :
			    s->o.debug == DBG_STALLWAIT ? "the last hart never arrives at the check barrier" :
			    "one stress partition fails on purpose");
	for (unsigned i = 0; i < s->n; i++) {
		struct shart *h = plat->mem(sizeof(*h), &pa);
		if (!h || !(h->slot = plat->mem(((2 * s->o.live * sizeof(struct sblk)) + 4095) & ~4095ul, &pa))) {
			plat->print("stress: FAILURE: no memory for hart state (seed %llu)\n",
				    (unsigned long long)s->o.seed);
			return 1;
		}
		h->idx = i;
		h->nslot = 2 * s->o.live;
		h->rng = (s->o.seed + 1) * 0x9e3779b97f4a7c15ull ^ (i + 1) * 0xbf58476d1ce4e5b9ull;
		h->rng |= 1;
		h->target = s->o.ops ? (s->o.ops + s->n - 1) / s->n : 0;
		s->h[i] = h;
	}
	s->active = s->n;
	ST(s->quiet, true);
	if (s_setup(s) == 0) {
		ST(s->quiet, false);
		tick_s = s;
		if (s->o.irq && plat->irq_start && plat->irq_start(stress_tick))
			plat->print("stress: irq=: no timer hook free\n");
		s->t0 = plat->now_ns();
		s->deadline = s->o.secs * 1000 * MS;
		if (s->o.parts) {
			char why[200];
			plat->print("stress: parts=%u: %u partitions, %u ops each, on a shared area of "
				    "their own, beside the harts' workload (partition k on hart k mod %u; "
				    "a hart lends itself to its partitions for a tick every %llu ms, "
				    "harts with live partitions are not hot-plugged)\n", s->o.parts,
				    s->o.parts, s->o.pops, s->n, (unsigned long long)(S_LEND_NS / MS));
			if (plat->parts_start(s->o.parts, s->o.pops, s->o.seed,
					      s->o.debug == DBG_KBLOCK ? 1 : s->o.debug == DBG_KFAULT ? 2 : 0,
					      s->n, why, sizeof(why)))
				s_failure(s, "%s", why);
		}
		plat->run(s->n, worker, s);
		tick_s = NULL;
		if (s->o.parts) {
			char why[200];
			uint64_t pops = 0;
			if (plat->parts_finish(&pops, why, sizeof(why)))
				s_failure(s, "%s", why);
			s->part_ops = pops;
			plat->print("stress: parts=%u: %llu partition ops beside %llu of the harts "
				    "(%llu lends during the workload", s->o.parts, (unsigned long long)pops,
				    (unsigned long long)({ uint64_t x = 0; for (unsigned i = 0; i < s->n; i++) x += s->h[i]->ops; x; }),
				    (unsigned long long)({ uint64_t x = 0; for (unsigned i = 0; i < s->n; i++) x += s->h[i]->part_lends; x; }));
			if (s->o.onoff)
				plat->print(", %llu hot-plug requests skipped: live partitions",
					    (unsigned long long)s->onoff_skips);
			plat->print(")\n");
		}
		ns = s_ns(s);
		ST(s->quiet, true);
		stat_line(s, ns);
		if (!s->failed) {
			for (unsigned m = 0; m < NMGR; m++)
				if (live_bytes(s, m))
					s_failure(s, "%s: shadow account of %lld live bytes after every "
						  "block was freed", mgr_names[m],
						  (long long)live_bytes(s, m));
		}
		if (!s->failed) {
			fin = s_finish(s);
			if (!fin)
				s->checks++;
		}
		if (s->o.leaks || s->failed)
			s_leaks(s);
		ops = total_ops(s, &mn, &mx);
		table(s, ns);
		plat->print("stress: %llu ops, %llu handed over, %llu from the tick (%llu NULL), "
			    "%u hot-plug cycles, %llu checks\n", (unsigned long long)ops,
			    (unsigned long long)({ uint64_t x = 0; for (unsigned i = 0; i < s->n; i++) x += s->h[i]->xsent; x; }),
			    (unsigned long long)({ uint64_t x = 0; for (unsigned i = 0; i < s->n; i++) x += s->h[i]->irq_ops; x; }),
			    (unsigned long long)({ uint64_t x = 0; for (unsigned i = 0; i < s->n; i++) x += s->h[i]->irq_null; x; }),
			    ({ unsigned x = 0; for (unsigned i = 0; i < s->n; i++) x += (unsigned)s->h[i]->offs; x; }),
			    (unsigned long long)s->checks);
		if (s->o.onoff && (s->o.mgrs & (1u << M_KMALLOC)))
			plat->print("stress: kmalloc left with stopped harts after kmalloc_drain "
				    "(any fails the run): %llu of %u stops, peak %llu B, private %llu B "
				    "(%llu B freed to them remotely), global %llu B (%llu B)\n",
				    (unsigned long long)s->km_strand_events,
				    ({ unsigned x = 0; for (unsigned i = 0; i < s->n; i++) x += (unsigned)s->h[i]->offs; x; }),
				    (unsigned long long)s->km_strand_peak,
				    (unsigned long long)s->km_strand_priv,
				    (unsigned long long)s->km_strand_priv_remote,
				    (unsigned long long)s->km_strand_glob,
				    (unsigned long long)(s->km_strand_remote - s->km_strand_priv_remote));
	}
	s_teardown(s);
	if (s->failed) {
		plat->print("stress: FAILURE: %s (seed %llu)\n", s->why, (unsigned long long)s->o.seed);
		return 1;
	}
	plat->print("stress: SUCCESS\n");
	return 0;
}
