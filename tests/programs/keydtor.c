/* keydtor.c - threads that free memory in thread-key destructors while
 * other threads start: each wave's threads leave blocks in two keys (one
 * made before the first malloc of the process, one after) and in a
 * destructor that sets its key again, so frees run in several destructor
 * rounds. Prints a checksum of what the destructors saw. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WAVES = 60, WIDTH = 12, BLOCKS = 16 };
static pthread_key_t early, late;
static uint64_t sum;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct bag {
	unsigned id, round;
	unsigned char *blk[BLOCKS];
	size_t len[BLOCKS];
};

static struct bag *bag_new(unsigned id, unsigned round)
{
	struct bag *b = malloc(sizeof(*b));
	if (!b)
		abort();
	b->id = id;
	b->round = round;
	for (unsigned i = 0; i < BLOCKS; i++) {
		b->len[i] = 8 + (id * 31 + i * 97 + round) % 3000;
		b->blk[i] = malloc(b->len[i]);
		if (!b->blk[i])
			abort();
		memset(b->blk[i], (int)(id + i), b->len[i]);
	}
	return b;
}

/* Check every byte, free everything; the first round leaves a new bag. */
static void bag_free(void *v, pthread_key_t key)
{
	struct bag *b = v;
	uint64_t s = 0;

	for (unsigned i = 0; i < BLOCKS; i++) {
		for (size_t j = 0; j < b->len[i]; j++)
			if (b->blk[i][j] != (unsigned char)(b->id + i)) {
				fprintf(stderr, "keydtor: block of thread %u damaged\n", b->id);
				abort();
			}
		s += b->len[i];
		free(b->blk[i]);
	}
	if (b->round == 0)
		pthread_setspecific(key, bag_new(b->id, 1));
	free(b);
	pthread_mutex_lock(&mu);
	sum += s;
	pthread_mutex_unlock(&mu);
}

static void free_early(void *v) { bag_free(v, early); }
static void free_late(void *v) { bag_free(v, late); }

static void *thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	char *scratch = strdup("scratch");   /* the thread's first malloc */

	free(scratch);
	pthread_setspecific(early, bag_new(id, 0));
	pthread_setspecific(late, bag_new(id + 1000, 0));
	return NULL;
}

int main(void)
{
	pthread_t th[WAVES][WIDTH];

	pthread_key_create(&early, free_early);
	free(malloc(1));
	pthread_key_create(&late, free_late);
	for (unsigned w = 0; w < WAVES; w++) {
		for (unsigned i = 0; i < WIDTH; i++)
			if (pthread_create(&th[w][i], NULL, thread, (void *)(uintptr_t)(w * WIDTH + i)))
				abort();
		if (w >= 2)
			for (unsigned i = 0; i < WIDTH; i++)
				pthread_join(th[w - 2][i], NULL);
	}
	for (unsigned w = WAVES - 2; w < WAVES; w++)
		for (unsigned i = 0; i < WIDTH; i++)
			pthread_join(th[w][i], NULL);
	printf("keydtor: %u threads, %llu bytes checked in destructors\n", WAVES * WIDTH,
	       (unsigned long long)sum);
	return 0;
}
