/* board.h - what the example producer and consumer agree on: the layout
 * of the shared area "board". Its static part holds a list head and two
 * counters; every message is a node in the dynamic part, linked by mm_ptr_t
 * offsets, whose text is a second allocation the node points to by
 * offset. Offsets, not pointers: each partition maps the area elsewhere. */
#ifndef EXAMPLES_BOARD_H
#define EXAMPLES_BOARD_H

#include <stdint.h>

#include "mm.h"

#define BOARD_AREA "board"

struct board {                  /* the area's static part */
	struct mm_list messages;    /* of struct message */
	uint32_t posted;            /* messages on the list */
	uint32_t producers_done;
};

struct message {
	struct mm_list link;
	uint32_t from;              /* the producer's partition id */
	uint32_t seq;
	mm_ptr_t text;              /* a NUL-terminated string in the area */
	uint32_t len;               /* its length, NUL excluded */
	uint32_t check;             /* board_check() of the fields above */
};

static inline uint32_t board_check(const struct message *m, const char *text)
{
	uint32_t h = 2166136261u ^ m->from ^ (m->seq << 16);

	for (uint32_t i = 0; i < m->len; i++)
		h = (h ^ (uint8_t)text[i]) * 16777619u;
	return h;
}

/* Attach the area (creating it if the kernel did not) and set up the list
 * the first time. NULL on failure. */
static inline mm_t *board_attach(void)
{
	mm_t *mm = mm_create(BOARD_AREA, sizeof(struct board), 4096);
	struct board *b;

	if (!mm || mm_static_size(mm) < sizeof(struct board))
		return NULL;
	if (mm_lock(mm, MM_LOCK_RW) < 0)
		return NULL;
	b = mm_static(mm);
	if (b->messages.next == MM_NULL)
		mm_list_init(mm, &b->messages);
	mm_unlock(mm);
	return mm;
}

#endif
