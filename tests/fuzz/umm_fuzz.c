/* umm_fuzz.c - libFuzzer target: random umm calls (both paths, aligned,
 * realloc, bad pointers, double frees of cached blocks, flushes, walks)
 * against a shadow list of live blocks, with umm_check and the counters
 * compared to the shadow after every step. */
#include "umm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL   (256 * 1024)
#define NLIVE  64

struct blk {
	unsigned char *p;
	size_t size, align;
	uint8_t tags, fill;
};

static umm_t pool;
static _Alignas(4096) unsigned char space[POOL];
static struct blk live[NLIVE];
static unsigned nlive;
static unsigned char *dead;             /* a block freed by op 7 */

struct in {
	const uint8_t *d;
	size_t n;
};

static unsigned take(struct in *in, unsigned bytes)
{
	unsigned v = 0;
	while (bytes--) {
		v <<= 8;
		if (in->n) {
			v |= *in->d++;
			in->n--;
		}
	}
	return v;
}

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

static void verify(const struct blk *b)
{
	for (size_t i = 0; i < b->size; i++)
		if (b->p[i] != (unsigned char)(b->fill + i))
			DIE("block %p lost its contents at %zu", (void *)b->p, i);
}

static void fill(struct blk *b)
{
	for (size_t i = 0; i < b->size; i++)
		b->p[i] = (unsigned char)(b->fill + i);
}

static size_t pick_size(struct in *in)
{
	unsigned v = take(in, 2);
	switch (v >> 14) {
	case 0: return v & 63;                 /* tiny, includes 0 */
	case 1: return v & 1023;
	case 2: return (v & 0x3fff) * 4;       /* up to 64 KiB */
	default: return (v & 7) == 7 ? POOL * 2 : (v & 0x3fff);
	}
}

static void add(unsigned char *p, size_t size, size_t align, uint8_t tags, struct in *in)
{
	if (!p)
		return;
	if ((uintptr_t)p % (align > 16 ? align : 16))
		DIE("misaligned block");
	if (umm_usable_size(&pool, p) < size)
		DIE("usable size too small");
	for (unsigned i = 0; i < nlive; i++)
		if (p < live[i].p + live[i].size + 8 && live[i].p < p + size + 8)
			DIE("overlapping blocks");
	if (nlive == NLIVE) {
		umm_free(&pool, p);
		return;
	}
	live[nlive] = (struct blk){ p, size, align, tags, (uint8_t)take(in, 1) };
	fill(&live[nlive++]);
}

static void drop(unsigned i)
{
	live[i] = live[--nlive];
}

struct walk {
	size_t used;
	bool bad;
};

static int walk_cb(void *p, size_t size, uint8_t tags, bool in_use, void *arg)
{
	struct walk *w = arg;
	if (!in_use)
		return 0;
	w->used += size + 8;
	for (unsigned i = 0; i < nlive; i++)
		if (live[i].p == p)
			return live[i].tags == tags ? 0 : (w->bad = true, 1);
	w->bad = true;
	return 1;
}

static void step(struct in *in)
{
	unsigned op = take(in, 1) % 11, i = nlive ? take(in, 1) % nlive : 0;
	uint64_t refused_before;
	struct umm_stats st;
	size_t size;

	umm_stats(&pool, &st);
	refused_before = st.refused;
	switch (op) {
	case 0:
	case 1: {
		size = pick_size(in);
		uint8_t tags = (uint8_t)take(in, 1);
		unsigned char *p = op ? umm_alloc_fast(&pool, size, tags) : umm_alloc(&pool, size, tags);
		if (size == 0 && p)
			DIE("size 0 allocated");
		add(p, size, 16, tags, in);
		break;
	}
	case 2: {
		unsigned k = take(in, 1) % 14;
		size_t align = k == 13 ? 48 : (size_t)1 << k;
		size = pick_size(in);
		unsigned char *p = umm_alloc_aligned(&pool, size, align, 3);
		if (k == 13 && p)
			DIE("bad alignment accepted");
		add(p, size, align, 3, in);
		break;
	}
	case 3:
	case 4:
		if (!nlive)
			break;
		verify(&live[i]);
		if (op == 3)
			umm_free(&pool, live[i].p);
		else
			umm_free_fast(&pool, live[i].p);
		if (umm_usable_size(&pool, live[i].p) != 0)
			DIE("freed block still live");
		drop(i);
		break;
	case 5: {
		if (!nlive)
			break;
		struct blk b = live[i];
		size = pick_size(in);
		verify(&b);
		unsigned char *q = umm_realloc(&pool, b.p, size);
		if (!q) {
			verify(&b);                     /* failed realloc changes nothing */
			break;
		}
		if ((uintptr_t)q % (b.align > 16 ? b.align : 16))
			DIE("realloc lost the alignment");
		live[i].p = q;
		live[i].size = size < b.size ? size : b.size;
		verify(&live[i]);
		live[i].size = size;
		fill(&live[i]);
		break;
	}
	case 6:                                         /* interior pointer */
		if (!nlive || umm_usable_size(&pool, live[i].p) < 32)
			break;
		umm_free(&pool, live[i].p + 16 * (1 + take(in, 1) % (umm_usable_size(&pool, live[i].p) / 16 - 1)));
		umm_stats(&pool, &st);
		if (st.refused != refused_before + 1)
			DIE("interior free not rejected");
		verify(&live[i]);
		break;
	case 7: {                                       /* double free of a dead block */
		if (nlive) {
			verify(&live[i]);
			dead = live[i].p;
			umm_free(&pool, dead);
			drop(i);
		}
		for (unsigned k = 0; k < nlive; k++)
			if (live[k].p == dead)
				dead = NULL;
		if (dead) {
			umm_stats(&pool, &st);
			refused_before = st.refused;
			umm_free_fast(&pool, dead);
			umm_stats(&pool, &st);
			if (st.refused != refused_before + 1)
				DIE("double free not rejected");
		}
		break;
	}
	case 10: {                                      /* this CPU's cache back to the pool */
		umm_flush(&pool);
		umm_stats(&pool, &st);
		uint64_t before = st.parked_bytes;
		umm_flush(&pool);                       /* nothing left to give back */
		umm_stats(&pool, &st);
		if (st.parked_bytes != before)
			DIE("second flush changed the cache");
		break;
	}
	default: {
		struct walk w = { 0 };
		if (umm_iterate(&pool, walk_cb, &w) != 0 || w.bad)
			DIE("walk disagrees with the shadow");
		umm_stats(&pool, &st);
		if (w.used != st.live_bytes)
			DIE("walk %zu live bytes, stats %llu", w.used, (unsigned long long)st.live_bytes);
		break;
	}
	}
	if (umm_check(&pool))
		DIE("umm_check failed after op %u", op);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };

	if (umm_init(&pool, space, POOL))
		abort();
	nlive = 0;
	dead = NULL;
	while (in.n)
		step(&in);
	for (unsigned i = 0; i < nlive; i++) {
		verify(&live[i]);
		umm_free(&pool, live[i].p);
	}
	struct umm_stats st;
	umm_stats(&pool, &st);
	if (st.live_bytes || umm_check(&pool))
		DIE("pool not empty at the end");
	void *all = umm_alloc(&pool, st.capacity, 0);
	if (!all)
		DIE("pool did not coalesce");
	umm_free(&pool, all);
	return 0;
}
