/* prod.c - example producer: posts N messages (its argument, default 50)
 * to the shared area "board", each a list node with a separately
 * allocated text, then counts itself done.
 *
 *   make partition SRC=examples/prod.c NAME=prod */
#include <stdlib.h>
#include <string.h>

#include "partition.h"
#include "board.h"

static int post(mm_t *mm, uint32_t me, uint32_t seq)
{
	char text[48];
	struct board *b;
	struct message *m;
	mm_ptr_t mp, tp;
	int len = snprintf(text, sizeof(text), "message %u from %s", seq, part_name());

	if (mm_lock(mm, MM_LOCK_RW) < 0)
		return 1;
	mp = mm_alloc(mm, sizeof(*m));
	tp = mm_alloc(mm, (size_t)len + 1);
	m = mm_addr_n(mm, mp, sizeof(*m));
	if (!m || tp == MM_NULL) {
		mm_unlock(mm);
		return 2;
	}
	memcpy(mm_addr_n(mm, tp, (size_t)len + 1), text, (size_t)len + 1);
	*m = (struct message){ .from = me, .seq = seq, .text = tp, .len = (uint32_t)len };
	m->check = board_check(m, text);
	b = mm_static(mm);
	if (mm_list_add_tail(mm, &b->messages, &m->link)) {
		mm_unlock(mm);
		return 3;
	}
	b->posted++;
	mm_unlock(mm);
	mm_wake(mm, &b->posted, 64);   /* consumers asleep on the counter look again */
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 50, me = (uint32_t)part_id();
	mm_t *mm = board_attach();
	struct board *b;

	if (!mm) {
		printf("cannot attach area '%s'\n", BOARD_AREA);
		return 10;
	}
	for (uint32_t i = 0; i < n; i++) {
		int rc = post(mm, me, i);

		if (rc) {
			printf("message %u not posted (%d): %s\n", i, rc,
			       err_str(mm_last_error(mm)));
			return 10 + rc;
		}
		/* Let the hart's other partitions in now and then: consumers on
		 * this hart attach while the producer is still attached (an area
		 * that no bootarg created ends with its last attacher). */
		if (i % 8 == 7)
			part_yield();
	}
	mm_lock(mm, MM_LOCK_RW);
	b = mm_static(mm);
	b->producers_done++;
	mm_unlock(mm);
	printf("posted %u messages on hart %ld; area mapped at %p\n", n, part_hart(),
	       (void *)mm->base);
	return 0;
}
