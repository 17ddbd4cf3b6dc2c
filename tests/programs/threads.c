/* threads.c - 150 live threads at once (a barrier holds them), each
 * allocating, filling, checking and freeing blocks, half of them freed by
 * a neighbour thread. Prints a checksum that does not depend on timing. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NT = 150, NB = 400, ROUNDS = 8 };
static pthread_barrier_t bar;
static unsigned char *handoff[NT][NB];
static uint64_t sums[NT];

static uint32_t rnd(uint32_t *s) { *s = *s * 1103515245u + 12345u; return *s >> 8; }

static void *thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint32_t seed = id * 7919u + 1;
	uint64_t s = 0;

	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0; i < NB; i++) {
			size_t n = 8 + rnd(&seed) % (i % 16 == 0 ? 20000 : 300);
			unsigned char *p = malloc(n);
			if (!p) {
				fprintf(stderr, "threads: malloc(%zu) failed\n", n);
				abort();
			}
			memset(p, (int)(id ^ i), n);
			memcpy(p, &n, sizeof(uint32_t));
			s += n;
			handoff[id][i] = p;
		}
		pthread_barrier_wait(&bar);   /* all NT threads live here */
		unsigned from = (id + 1) % NT;   /* free the neighbour's blocks */
		for (unsigned i = 0; i < NB; i++) {
			unsigned char *p = handoff[from][i];
			uint32_t n;
			memcpy(&n, p, sizeof(n));
			for (size_t j = sizeof(n); j < n; j++)
				if (p[j] != (unsigned char)(from ^ i)) {
					fprintf(stderr, "threads: block of thread %u damaged\n", from);
					abort();
				}
			free(p);
		}
		pthread_barrier_wait(&bar);
	}
	sums[id] = s;
	return NULL;
}

int main(void)
{
	pthread_t th[NT];
	uint64_t total = 0;

	pthread_barrier_init(&bar, NULL, NT);
	for (unsigned i = 0; i < NT; i++)
		if (pthread_create(&th[i], NULL, thread, (void *)(uintptr_t)i))
			abort();
	for (unsigned i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		total += sums[i];
	}
	printf("threads: %d live threads, %llu bytes\n", NT, (unsigned long long)total);
	return 0;
}
