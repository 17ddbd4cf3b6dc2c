/* alloc_bench.c - host allocator benchmark shared by the memory managers.
 *
 *   alloc_bench --alloc=NAME --workload=W [--pairs=N]
 *
 * prints one line "alloc=NAME workload=W ns_per_pair=X" (best of 3 runs).
 * "malloc" is whatever malloc the process has (bench/alloc_bench.sh runs it
 * plainly for glibc and with LD_PRELOAD for jemalloc, tcmalloc, mimalloc).
 * To add an allocator or a workload, add one row to allocs[] or works[].
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "umm.h"

/* ---- allocators ------------------------------------------------------------ */

static umm_t *umm_pool;

static void umm_setup(void)
{
	size_t size = (size_t)512 << 20;
	void *space = malloc(size);
	umm_pool = malloc(sizeof(*umm_pool));
	if (!space || !umm_pool || umm_init(umm_pool, space, size)) {
		fprintf(stderr, "alloc_bench: umm_init failed\n");
		exit(1);
	}
}
static void *umm_a(size_t n) { return umm_alloc(umm_pool, n, 0); }
static void umm_f(void *p) { umm_free(umm_pool, p); }
/* The fast path may decline (NULL under contention or after a bounded
 * search); a trap-context caller would retry later, the bench falls back. */
static void *umm_fa(size_t n)
{
	void *p = umm_alloc_fast(umm_pool, n, 0);
	return p ? p : umm_alloc(umm_pool, n, 0);
}
static void umm_ff(void *p) { umm_free_fast(umm_pool, p); }

struct allocator {
	const char *name;
	void (*setup)(void);            /* may be NULL */
	void *(*alloc)(size_t);
	void (*free)(void *);
};

static const struct allocator allocs[] = {
	{ "malloc",   NULL,      malloc, free },
	{ "umm",      umm_setup, umm_a,  umm_f },
	{ "umm_fast", umm_setup, umm_fa, umm_ff },
};

static const struct allocator *A;

/* ---- workloads: each returns the number of alloc+free pairs done ---------- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *xalloc(size_t n)
{
	void *p = A->alloc(n);
	if (!p) {
		fprintf(stderr, "alloc_bench: %s: allocation of %zu failed\n", A->name, n);
		exit(1);
	}
	*(volatile char *)p = 1;           /* touch, as a user would */
	return p;
}

/* Small objects, LIFO: batches of 100 objects of 16..256 bytes, freed in
 * reverse order. */
static uint64_t w_lifo(uint64_t pairs)
{
	void *p[100];
	uint64_t done = 0;
	while (done < pairs) {
		for (unsigned i = 0; i < 100; i++)
			p[i] = xalloc(16 + (i * 24) % 241);
		for (unsigned i = 100; i-- > 0;)
			A->free(p[i]);
		done += 100;
	}
	return done;
}

/* Random sizes 16 B - 4 KiB over 1024 slots, random slot order. */
static uint64_t w_random(uint64_t pairs)
{
	static void *slot[1024];
	uint64_t s = 88172645463325252ull;
	for (uint64_t i = 0; i < pairs; i++) {
		uint64_t r = rnd(&s);
		unsigned k = (unsigned)(r >> 20) % 1024;
		if (slot[k])
			A->free(slot[k]);
		slot[k] = xalloc(16 + (size_t)(r % 4081));
	}
	for (unsigned k = 0; k < 1024; k++)
		if (slot[k]) {
			A->free(slot[k]);
			slot[k] = NULL;
		}
	return pairs;
}

/* Two threads: the producer allocates 16..512 bytes and passes each block
 * through a single-producer single-consumer ring; the consumer frees it. */
#define RING 4096

/* Spin a little, then let the other side run (the host may have fewer
 * free cores than threads). */
static void wait_a_bit(unsigned *spins)
{
	if (++*spins % 128 == 0)
		sched_yield();
	else
		__builtin_ia32_pause();
}
struct ring {
	void *slot[RING];
	uint64_t head __attribute__((aligned(64)));   /* written by the producer */
	uint64_t tail __attribute__((aligned(64)));   /* written by the consumer */
	uint64_t n;
};

static void *consumer(void *arg)
{
	struct ring *r = arg;
	for (uint64_t t = 0; t < r->n; t++) {
		unsigned spins = 0;
		while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == t)
			wait_a_bit(&spins);
		A->free(r->slot[t % RING]);
		__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static uint64_t w_prodcons(uint64_t pairs)
{
	static struct ring r;
	pthread_t th;
	uint64_t s = 0x2545F4914F6CDD1Dull;

	memset(&r, 0, sizeof(r));
	r.n = pairs;
	if (pthread_create(&th, NULL, consumer, &r))
		exit(1);
	for (uint64_t h = 0; h < pairs; h++) {
		void *p = xalloc(16 + (size_t)(rnd(&s) % 497));
		unsigned spins = 0;
		while (h - __atomic_load_n(&r.tail, __ATOMIC_ACQUIRE) >= RING)
			wait_a_bit(&spins);
		r.slot[h % RING] = p;
		__atomic_store_n(&r.head, h + 1, __ATOMIC_RELEASE);
	}
	pthread_join(th, NULL);
	return pairs;
}

struct workload {
	const char *name;
	uint64_t (*run)(uint64_t pairs);
};

static const struct workload works[] = {
	{ "lifo",     w_lifo },
	{ "random",   w_random },
	{ "prodcons", w_prodcons },
};

/* ---- driver ------------------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static const char *opt(int argc, char **argv, const char *key)
{
	size_t n = strlen(key);
	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

int main(int argc, char **argv)
{
	const char *an = opt(argc, argv, "--alloc"), *wn = opt(argc, argv, "--workload");
	const char *pn = opt(argc, argv, "--pairs");
	uint64_t pairs = pn ? strtoull(pn, NULL, 0) : 2000000;
	const struct workload *W = NULL;

	for (size_t i = 0; an && i < sizeof(allocs) / sizeof(allocs[0]); i++)
		if (!strcmp(an, allocs[i].name))
			A = &allocs[i];
	for (size_t i = 0; wn && i < sizeof(works) / sizeof(works[0]); i++)
		if (!strcmp(wn, works[i].name))
			W = &works[i];
	if (!A || !W) {
		fprintf(stderr, "usage: alloc_bench --alloc=NAME --workload=W [--pairs=N]\n  NAME:");
		for (size_t i = 0; i < sizeof(allocs) / sizeof(allocs[0]); i++)
			fprintf(stderr, " %s", allocs[i].name);
		fprintf(stderr, "\n  W:");
		for (size_t i = 0; i < sizeof(works) / sizeof(works[0]); i++)
			fprintf(stderr, " %s", works[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	if (A->setup)
		A->setup();
	W->run(pairs / 10);                 /* warm up caches and pools */
	double best = 0;
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now();
		uint64_t done = W->run(pairs);
		double ns = (now() - t0) / (double)done;
		if (rep == 0 || ns < best)
			best = ns;
	}
	printf("alloc=%s workload=%s ns_per_pair=%.2f\n", A->name, W->name, best);
	return 0;
}
