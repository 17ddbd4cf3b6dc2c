/* workloads.c - classic allocator benchmarks, written from their published
 * descriptions (fixed work, not fixed time, so runs can be timed):
 *
 *   larson T      Larson & Krishnan (1998), a server: T threads each own
 *                 an array of blocks and replace random ones with blocks of
 *                 random size; each thread then hands its array to a new
 *                 thread and exits, so blocks die in threads that did not
 *                 allocate them (generations of threads).
 *   xmalloc T     Lever & Boreham's xmalloc-test (2000): T producers
 *                 allocate blocks and pass them in batches through a
 *                 shared queue to T consumers, which free them.
 *   cache-scratch T  Berger et al.'s Hoard benchmark: each thread frees a
 *                 small object the main thread allocated, then allocates,
 *                 writes and frees small objects (passive false sharing).
 *
 * Prints a checksum that does not depend on timing. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rnd(uint32_t *s) { *s = *s * 1103515245u + 12345u; return *s >> 8; }
static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "workloads: malloc(%zu) failed\n", n);
		abort();
	}
	return p;
}

/* ---- larson ---- */
enum { L_SLOTS = 2000, L_OPS = 150000, L_GENS = 6, L_MIN = 8, L_MAX = 1000 };
struct larson { char **slot; uint32_t seed; unsigned gen; uint64_t bytes; };

static void *larson_thread(void *arg)
{
	struct larson *l = arg;

	for (unsigned i = 0; i < L_OPS; i++) {
		unsigned k = rnd(&l->seed) % L_SLOTS;
		size_t n = L_MIN + rnd(&l->seed) % (L_MAX - L_MIN);
		free(l->slot[k]);
		l->slot[k] = xmalloc(n);
		l->slot[k][0] = (char)n;
		l->bytes += n;
	}
	if (__atomic_add_fetch(&l->gen, 1, __ATOMIC_ACQ_REL) < L_GENS) {        /* hand the array to a new thread */
		pthread_t t;
		if (pthread_create(&t, NULL, larson_thread, l))
			abort();
		pthread_detach(t);
		return NULL;
	}
	return l;   /* the last generation reports back */
}

static uint64_t larson(unsigned nt)
{
	struct larson *ls = calloc(nt, sizeof(*ls));
	uint64_t sum = 0;
	unsigned done = 0;

	for (unsigned t = 0; t < nt; t++) {
		ls[t].slot = xmalloc(L_SLOTS * sizeof(char *));
		ls[t].seed = t + 1;
		for (unsigned k = 0; k < L_SLOTS; k++)
			ls[t].slot[k] = xmalloc(L_MIN + rnd(&ls[t].seed) % (L_MAX - L_MIN));
		pthread_t th;
		if (pthread_create(&th, NULL, larson_thread, &ls[t]))
			abort();
		pthread_detach(th);
	}
	while (done < nt) {             /* wait for the last generations */
		done = 0;
		for (unsigned t = 0; t < nt; t++)
			done += __atomic_load_n(&ls[t].gen, __ATOMIC_ACQUIRE) == L_GENS;
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	for (unsigned t = 0; t < nt; t++) {
		for (unsigned k = 0; k < L_SLOTS; k++)
			free(ls[t].slot[k]);
		free(ls[t].slot);
		sum += ls[t].bytes;
	}
	free(ls);
	return sum;
}

/* ---- xmalloc-test ---- */
enum { X_BATCH = 64, X_BATCHES = 8000, X_MAX = 128 };
struct batch { struct batch *next; void *blk[X_BATCH]; };
static struct { pthread_mutex_t mu; pthread_cond_t cv; struct batch *head; unsigned left; } xq = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0 };

static void *producer(void *arg)
{
	uint32_t seed = (uint32_t)(uintptr_t)arg;
	uint64_t bytes = 0;

	for (unsigned b = 0; b < X_BATCHES; b++) {
		struct batch *q = xmalloc(sizeof(*q));
		for (unsigned i = 0; i < X_BATCH; i++) {
			size_t n = 1 + rnd(&seed) % X_MAX;
			q->blk[i] = xmalloc(n);
			memset(q->blk[i], 1, n < 16 ? n : 16);
			bytes += n;
		}
		pthread_mutex_lock(&xq.mu);
		q->next = xq.head;
		xq.head = q;
		pthread_cond_signal(&xq.cv);
		pthread_mutex_unlock(&xq.mu);
	}
	return (void *)(uintptr_t)bytes;
}

static void *consumer(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&xq.mu);
		while (!xq.head && xq.left)
			pthread_cond_wait(&xq.cv, &xq.mu);
		if (!xq.left) {
			pthread_mutex_unlock(&xq.mu);
			return arg;
		}
		struct batch *q = xq.head;
		xq.head = q->next;
		if (--xq.left == 0)
			pthread_cond_broadcast(&xq.cv);
		pthread_mutex_unlock(&xq.mu);
		for (unsigned i = 0; i < X_BATCH; i++)
			free(q->blk[i]);
		free(q);
	}
}

static uint64_t xmalloc_test(unsigned nt)
{
	pthread_t p[64], c[64];
	uint64_t sum = 0;

	xq.left = nt * X_BATCHES;
	for (unsigned t = 0; t < nt; t++) {
		pthread_create(&p[t], NULL, producer, (void *)(uintptr_t)(t + 1));
		pthread_create(&c[t], NULL, consumer, NULL);
	}
	for (unsigned t = 0; t < nt; t++) {
		void *r;
		pthread_join(p[t], &r);
		sum += (uintptr_t)r;
		pthread_join(c[t], NULL);
	}
	return sum;
}

/* ---- cache-scratch ---- */
enum { C_ITER = 3000000, C_WRITES = 10, C_SIZE = 8 };
static void *scratch_thread(void *arg)
{
	char *first = arg;
	uint64_t s = 0;

	free(first);                    /* the main thread's object, maybe on our line */
	for (unsigned i = 0; i < C_ITER; i++) {
		volatile char *p = xmalloc(C_SIZE);
		for (unsigned w = 0; w < C_WRITES; w++)
			p[w % C_SIZE] = (char)(p[w % C_SIZE] + w);
		s += C_SIZE;
		free((void *)p);
	}
	return (void *)(uintptr_t)s;
}

static uint64_t cache_scratch(unsigned nt)
{
	pthread_t th[64];
	uint64_t sum = 0;
	char *obj[64];

	for (unsigned t = 0; t < nt; t++)
		obj[t] = xmalloc(C_SIZE);
	for (unsigned t = 0; t < nt; t++)
		pthread_create(&th[t], NULL, scratch_thread, obj[t]);
	for (unsigned t = 0; t < nt; t++) {
		void *r;
		pthread_join(th[t], &r);
		sum += (uintptr_t)r;
	}
	return sum;
}

int main(int argc, char **argv)
{
	unsigned nt = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
	const char *w = argc > 1 ? argv[1] : "";
	uint64_t s;

	if (nt < 1 || nt > 64) {
		fprintf(stderr, "workloads: 1 to 64 threads\n");
		return 2;
	}
	if (!strcmp(w, "larson"))
		s = larson(nt);
	else if (!strcmp(w, "xmalloc"))
		s = xmalloc_test(nt);
	else if (!strcmp(w, "cache-scratch"))
		s = cache_scratch(nt);
	else {
		fprintf(stderr, "usage: workloads larson|xmalloc|cache-scratch [threads]\n");
		return 2;
	}
	printf("%s %u: %llu\n", w, nt, (unsigned long long)s);
	return 0;
}
