/* stress_verify.c - block stamps: every byte of a block is a function of its
 * owner, sequence number, manager, address and the seed, written at
 * allocation and checked in full when the block is freed, reallocated or
 * handed to another hart.
 *
 * Words: 0 header (seq << 32 | owner << 16 | mgr << 8 | 0x5a), 1 cookie,
 * 2 cookie ^ LINK_KEY (the link while the block is in flight), 3 size |
 * api << 32 | inst << 40 | mgr << 48, then cookie + k * GOLD. Sizes are
 * multiples of 8 (the engine rounds them). */
#include "stress_int.h"

#define GOLD     0x9e3779b97f4a7c15ull
#define LINK_KEY 0x5555aaaa5555aaaaull

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t cookie(struct stress *s, const struct sblk *b)
{
	return mix64(b->key ^ s->o.seed ^ ((uint64_t)b->seq << 20));
}

static uint64_t expect(struct stress *s, const struct sblk *b, uint64_t c, size_t k)
{
	switch (k) {
	case 0: return (uint64_t)b->seq << 32 | (uint64_t)b->owner << 16 | (uint64_t)b->mgr << 8 | 0x5a;
	case 1: return c;
	case 2: return c ^ LINK_KEY;
	case 3: return b->size | (uint64_t)b->api << 32 | (uint64_t)b->inst << 40 |
		       (uint64_t)b->mgr << 48;
	default: return c + k * GOLD;
	}
}

void s_stamp(struct stress *s, struct sblk *b)
{
	uint64_t c;
	size_t n;

	b->key = (uintptr_t)b->va;
	c = cookie(s, b);
	n = b->size / 8;
	for (size_t k = 0; k < n; k++)
		b->va[k] = expect(s, b, c, k);
}

int s_verify(struct stress *s, struct shart *h, const struct sblk *b, bool link,
	     size_t prefix, const char *when)
{
	uint64_t c = cookie(s, b);
	size_t n = (prefix ? prefix : b->size) / 8;

	for (size_t k = 0; k < n; k++) {
		uint64_t want = expect(s, b, c, k), got = b->va[k];
		if (got == want || (link && k == 2))
			continue;
		for (unsigned byte = 0; byte < 8; byte++)
			if ((uint8_t)(got >> (8 * byte)) != (uint8_t)(want >> (8 * byte))) {
				s_failure(s, "%s: block %p (%u bytes, seq %u, owner hart %u, %s) "
					  "byte %zu is 0x%02x, expected 0x%02x, seen by hart %u %s",
					  s_mgr_name(b->mgr), (void *)b->va, b->size, b->seq,
					  b->owner, b->inst ? "global instance" : "private instance",
					  k * 8 + byte, (unsigned)(uint8_t)(got >> (8 * byte)),
					  (unsigned)(uint8_t)(want >> (8 * byte)), h->idx, when);
				return -1;
			}
	}
	return 0;
}
