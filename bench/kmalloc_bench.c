/* kmalloc_bench.c - kernel-object workload on kmalloc or on the process's
 * malloc (glibc, or jemalloc/tcmalloc/mimalloc through LD_PRELOAD; see
 * kmalloc_bench.sh, which runs them all and prints ratios).
 *
 *   kmalloc_bench kmalloc|malloc kobj|xthread [threads] [ops per thread]
 *
 * kobj: bursts of 1..64 allocations of kernel-object sizes (32 ... 4096,
 * small ones most common), a ring of longer-lived objects, frees mostly on
 * the allocating thread (1 in 16 objects is handed to the next thread).
 * xthread: every object is freed by the next thread (producer/consumer ring).
 * Output: one line "RESULT <alloc> <workload> <ns per alloc+free>".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kmalloc.h"

static kmalloc_t km;
static int use_kmalloc;

/* Page source: one reserved range handed out upward, like the kernel heap
 * segment; pages given back are dropped with madvise. */
static char *heap_base;
static size_t heap_next, heap_size = (size_t)8 << 30;
static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;

static void *get_pages(void *ctx, size_t n)
{
	void *p = NULL;
	pthread_mutex_lock(&heap_lock);
	if (heap_next + n * ENV_PAGE_SIZE <= heap_size) {
		p = heap_base + heap_next;
		heap_next += n * ENV_PAGE_SIZE;
	}
	pthread_mutex_unlock(&heap_lock);
	return p;
}

static void put_pages(void *ctx, void *va, size_t n)
{
	madvise(va, n * ENV_PAGE_SIZE, MADV_DONTNEED);
}

static inline void *xalloc(size_t n) { return use_kmalloc ? kmalloc_i(&km, n) : malloc(n); }
static inline void xfree(void *p) { if (use_kmalloc) kfree_i(&km, p); else free(p); }

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Handoff ring between thread i and i+1: single producer, single consumer. */
#define RING 1024
struct ring {
	void *slot[RING];
	unsigned head __attribute__((aligned(64)));
	unsigned tail __attribute__((aligned(64)));
} __attribute__((aligned(64)));

static struct ring *rings;
static unsigned nthreads;
static long ops_per_thread;
static int xthread;
static unsigned finished;      /* workers done allocating */

static bool ring_put(struct ring *r, void *p)
{
	unsigned h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
	if (h - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) == RING)
		return false;
	r->slot[h % RING] = p;
	__atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
	return true;
}

static void *ring_get(struct ring *r)
{
	unsigned t = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
	if (t == __atomic_load_n(&r->head, __ATOMIC_ACQUIRE))
		return NULL;
	void *p = r->slot[t % RING];
	__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
	return p;
}

static size_t pick_size(unsigned x)
{
	/* Small objects dominate, as in kernels: 32..128 about 60%. */
	static const size_t sz[16] = { 32, 32, 64, 64, 64, 96, 128, 128, 192, 192, 256, 256,
				       512, 512, 1024, 4096 };
	return sz[x % 16];
}

static void drain(struct ring *in, long *frees)
{
	void *p;
	while ((p = ring_get(in)) != NULL) {
		xfree(p);
		(*frees)++;
	}
}

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, x = id * 2654435761u + 7;
	struct ring *out = &rings[(id + 1) % nthreads], *in = &rings[id];
	void *burst[64], *ring_keep[256] = { 0 };
	long done = 0, frees = 0;

	while (done < ops_per_thread) {
		x = x * 1103515245u + 12345u;
		unsigned nb = 1 + (x >> 16) % 64;
		for (unsigned i = 0; i < nb; i++) {
			x = x * 1103515245u + 12345u;
			burst[i] = xalloc(pick_size(x >> 8));
			*(volatile char *)burst[i] = (char)i;
		}
		for (unsigned i = 0; i < nb; i++) {
			void *p = burst[nb - 1 - i];
			x = x * 1103515245u + 12345u;
			if (nthreads > 1 && (xthread || (x >> 12) % 16 == 0)) {
				/* Never wait for the consumer (it may be descheduled
				 * on a busy machine): a full ring means a local free. */
				if (!ring_put(out, p))
					xfree(p);
			} else if ((x >> 20) % 8 == 0) {   /* longer-lived */
				unsigned k = (x >> 4) % 256;
				if (ring_keep[k])
					xfree(ring_keep[k]);
				ring_keep[k] = p;
			} else {
				xfree(p);
			}
		}
		done += nb;
		drain(in, &frees);
		if (use_kmalloc && (done & 4095) < nb)
			kmalloc_reap_i(&km);   /* the timer's job in the kernel */
	}
	for (unsigned k = 0; k < 256; k++)
		if (ring_keep[k])
			xfree(ring_keep[k]);
	/* Keep freeing what the previous thread hands over until all are done,
	 * or a producer would wait on a full ring forever. */
	__atomic_fetch_add(&finished, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) < nthreads)
		drain(in, &frees);
	drain(in, &frees);
	return (void *)(uintptr_t)frees;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s kmalloc|malloc kobj|xthread [threads] [ops]\n", argv[0]);
		return 2;
	}
	use_kmalloc = !strcmp(argv[1], "kmalloc");
	xthread = !strcmp(argv[2], "xthread");
	nthreads = argc > 3 ? (unsigned)atoi(argv[3]) : 2;
	ops_per_thread = argc > 4 ? atol(argv[4]) : 4000000;
	if (nthreads < 1 || nthreads > 64)
		return 2;
	if (use_kmalloc) {
		heap_base = mmap(NULL, heap_size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (heap_base == MAP_FAILED)
			return 1;
		struct kmalloc_page_source src = { get_pages, put_pages, NULL };
		/* TTL 10 ms of env_ticks (ns on the host). */
		if (kmalloc_init_i(&km, &src, NULL, 10 * 1000 * 1000))
			return 1;
	}
	if (posix_memalign((void **)&rings, 64, nthreads * sizeof(*rings)))
		return 1;
	memset(rings, 0, nthreads * sizeof(*rings));

	pthread_t th[64];
	double t0 = now_ns();
	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	double dt = now_ns() - t0;
	for (unsigned i = 0; i < nthreads; i++) {   /* leftovers in the rings */
		void *p;
		while ((p = ring_get(&rings[i])) != NULL)
			xfree(p);
	}
	/* Threads run in parallel: ns per pair is wall time over all pairs
	 * divided by the threads that shared the work. */
	double ns = dt * nthreads / ((double)ops_per_thread * nthreads);
	printf("RESULT %s %s %.2f\n", use_kmalloc ? "kmalloc" : "malloc", argv[2], ns);
	if (use_kmalloc) {
		static struct kmalloc_stats s;
		kmalloc_reap_all_i(&km);
		kmalloc_stats_i(&km, &s);
		if (kmalloc_check_i(&km, KMALLOC_CHECK_ALL) || s.live_bytes) {
			fprintf(stderr, "kmalloc_bench: heap inconsistent after the run\n");
			return 1;
		}
		printf("INFO kmalloc heap %.1f KiB, peak outside pool %.1f KiB\n",
		       s.heap_bytes / 1024.0, s.peak_bytes / 1024.0);
	}
	return 0;
}
