/* stress_role.c - the stress tool's partition role (apps/stress, parts=):
 * a partition that stresses the shared area STRESS_AREA through the
 * shared-area library: under the area's lock it allocates blocks, stamps
 * them, links them into its own list (mm_ptr_t links, head in the area's
 * static header), frees random ones after verifying them, and walks the
 * whole list every 16 operations. Exit status: 0, or what failed (below);
 * the kernel side (apps/stress/stress_kernel.c) names the partition. */
#include <stdio.h>
#include <string.h>

#include "memlayout.h"
#include "mm.h"
#include "part_roles.h"
#include "ulib.h"

#define SR_LIVE 32                  /* blocks a partition holds at most */

enum { SR_OK, SR_ATTACH = 20, SR_LOCK, SR_ALLOC, SR_VERIFY, SR_LIST, SR_CHECK, SR_LEFT };

struct sr_blk {
	mm_ptr_t next;                  /* the partition's list */
	uint32_t owner, seq, size;      /* size: bytes of data[] */
	uint8_t data[];
};

static uint64_t sr_rng;

static uint64_t sr_rand(void)
{
	sr_rng ^= sr_rng >> 12;
	sr_rng ^= sr_rng << 25;
	sr_rng ^= sr_rng >> 27;
	return sr_rng * 0x2545f4914f6cdd1dull;
}

static uint8_t sr_byte(uint32_t owner, uint32_t seq, uint32_t i)
{
	return (uint8_t)((owner * 131u) ^ (seq * 17u) ^ (i * 7u) ^ (i >> 8));
}

/* 0 when b's stamp is intact, else a line naming the block. */
static int sr_verify(mm_t *mm, mm_ptr_t p, uint32_t owner, const char *when)
{
	struct sr_blk *b = mm_addr_n(mm, p, sizeof(*b));

	if (!b || b->owner != owner || !mm_addr_n(mm, p, sizeof(*b) + b->size)) {
		printf("stress-part %u: block at offset 0x%x: bad header %s\n", owner, p, when);
		return SR_VERIFY;
	}
	for (uint32_t i = 0; i < b->size; i++)
		if (b->data[i] != sr_byte(owner, b->seq, i)) {
			printf("stress-part %u: block at offset 0x%x (%u bytes, seq %u) byte %u is "
			       "0x%02x, expected 0x%02x, %s\n", owner, p, b->size, b->seq, i,
			       b->data[i], sr_byte(owner, b->seq, i), when);
			return SR_VERIFY;
		}
	return 0;
}

/* Walk the list: every block intact, `live` of them. */
static int sr_walk(mm_t *mm, struct stress_area_hdr *h, uint32_t idx, uint32_t me, uint32_t live,
		   const char *when)
{
	mm_ptr_t p = (mm_ptr_t)h->head[idx];
	uint32_t n = 0;
	int rc;

	for (; p && n <= live; n++) {
		struct sr_blk *b = mm_addr_n(mm, p, sizeof(*b));
		if ((rc = sr_verify(mm, p, me, when)))
			return rc;
		p = b->next;
	}
	if (n != live || p) {
		printf("stress-part %u: list holds %u blocks, expected %u, %s\n", me, n, live, when);
		return SR_LIST;
	}
	return 0;
}

/* Unlink the k-th block of the list, verify it and free it. */
static int sr_free_kth(mm_t *mm, struct stress_area_hdr *h, uint32_t idx, uint32_t me, uint32_t k)
{
	mm_ptr_t prev = 0, cur = (mm_ptr_t)h->head[idx];
	struct sr_blk *b;
	int rc;

	for (uint32_t j = 0; j < k; j++) {
		if (!(b = mm_addr_n(mm, cur, sizeof(*b))))
			break;
		prev = cur;
		cur = b->next;
	}
	if (!(b = mm_addr_n(mm, cur, sizeof(*b)))) {
		printf("stress-part %u: list broken before block %u\n", me, k);
		return SR_LIST;
	}
	if ((rc = sr_verify(mm, cur, me, "at free")))
		return rc;
	if (prev)
		((struct sr_blk *)mm_addr_n(mm, prev, sizeof(*b)))->next = b->next;
	else
		h->head[idx] = b->next;
	if (mm_free(mm, cur)) {
		printf("stress-part %u: mm_free of offset 0x%x refused\n", me, cur);
		return SR_VERIFY;
	}
	return 0;
}

int stress_role(unsigned long param)
{
	uint32_t ops = (uint32_t)(param & 0xffffff), idx = (uint32_t)(param >> 24) & 0xff;
	unsigned dbg = (unsigned)(param >> 32) & 0xf;
	uint32_t me = idx + 1, seq = 0, live = 0, op;
	mm_t *mm = mm_create(STRESS_AREA, sizeof(struct stress_area_hdr), 4096);
	struct stress_area_hdr *h;
	int rc = 0;

	sr_rng = ((param >> 36) + 1) * 0x9e3779b97f4a7c15ull ^ (idx + 1) * 0xbf58476d1ce4e5b9ull;
	sr_rng |= 1;
	if (!mm || idx >= STRESS_PARTS_MAX)
		return SR_ATTACH;
	for (op = 0; op < ops && !rc; op++) {
		if (dbg == STRESS_DBG_KFAULT && op == ops / 2)
			(void)*(volatile uint64_t *)KERNEL_VMA;   /* the kernel stops us here */
		if (mm_lock(mm, MM_LOCK_RW) < 0)
			return SR_LOCK;
		h = mm_static(mm);
		if (live < SR_LIVE && (live == 0 || sr_rand() % 100 < 55)) {
			uint32_t size = 16 + (uint32_t)(sr_rand() % 1024);
			mm_ptr_t p = mm_alloc(mm, sizeof(struct sr_blk) + size);
			struct sr_blk *b = mm_addr_n(mm, p, sizeof(*b) + size);

			h = mm_static(mm);      /* the area may have moved as it grew */
			if (!b) {
				printf("stress-part %u: mm_alloc(%u) failed at op %u\n", me, size, op);
				rc = SR_ALLOC;
			} else {
				b->owner = me;
				b->seq = ++seq;
				b->size = size;
				for (uint32_t i = 0; i < size; i++)
					b->data[i] = sr_byte(me, b->seq, i);
				b->next = (mm_ptr_t)h->head[idx];
				h->head[idx] = p;
				live++;
			}
		} else if ((rc = sr_free_kth(mm, h, idx, me, (uint32_t)(sr_rand() % live))) == 0) {
			live--;
		}
		if (!rc && dbg == STRESS_DBG_KBLOCK && op == ops / 2 && h->head[idx]) {
			/* debug=kblock: a stray write into our own first block */
			struct sr_blk *b = mm_addr_n(mm, (mm_ptr_t)h->head[idx], sizeof(*b) + 1);
			if (b)
				b->data[0] ^= 0x40;
		}
		if (!rc && op % 16 == 15)
			rc = sr_walk(mm, h, idx, me, live, "in a walk of the list");
		h->ops[idx] = op + 1;   /* so far: the kernel's stat line reads it */
		mm_unlock(mm);
		if (op % 4 == 3)
			usys_yield();
	}
	if (mm_lock(mm, MM_LOCK_RW) < 0)
		return SR_LOCK;
	h = mm_static(mm);
	while (!rc && live)
		if (!(rc = sr_free_kth(mm, h, idx, me, 0)))
			live--;
	h->ops[idx] = op;
	h->done++;
	if (!rc && mm_check(mm)) {
		printf("stress-part %u: mm_check failed\n", me);
		rc = SR_CHECK;
	}
	mm_unlock(mm);
	return rc;
}
