/* cons.c - example consumer: waits until N messages (its argument,
 * default 50) are on the board of the shared area "board", checks every
 * one (links and text reached through mm_ptr_t offsets), and prints what
 * it read. Between passes it sleeps in mm_wait on the board's `posted`
 * counter, which producers bump and mm_wake.
 *
 *   make partition SRC=examples/cons.c NAME=cons */
#include <stdlib.h>
#include <string.h>

#include "partition.h"
#include "board.h"

/* One pass over the list under the read lock: the count of good messages,
 * or -1 after printing the first bad one. */
static long read_board(mm_t *mm, uint32_t *producers, uint32_t *chars, uint32_t *posted)
{
	struct board *b;
	struct mm_list *pos;
	long good = 0;

	if (mm_lock(mm, MM_LOCK_RD) < 0)
		return -1;
	b = mm_static(mm);
	*chars = 0;
	mm_list_for_each(mm, pos, &b->messages) {
		struct message *m = mm_list_entry(pos, struct message, link);
		const char *text = mm_addr_n(mm, m->text, (size_t)m->len + 1);

		if (!text || text[m->len] || board_check(m, text) != m->check) {
			printf("bad message %u from #%u\n", m->seq, m->from);
			mm_unlock(mm);
			return -1;
		}
		*chars += m->len;
		good++;
	}
	*producers = b->producers_done;
	*posted = b->posted;
	mm_unlock(mm);
	return good;
}

int main(int argc, char **argv)
{
	long want = argc > 1 ? strtol(argv[1], NULL, 10) : 50, got = 0;
	uint64_t deadline = part_time_us() + 60ull * 1000000;   /* a bound, not a timing */
	uint32_t producers = 0, chars = 0, posted = 0;
	mm_t *mm = board_attach();
	struct board *b;

	if (!mm) {
		printf("cannot attach area '%s'\n", BOARD_AREA);
		return 20;
	}
	b = mm_static(mm);
	while (part_time_us() < deadline) {
		got = read_board(mm, &producers, &chars, &posted);
		if (got < 0)
			return 21;
		if (got >= want)
			break;
		/* Sleep until a producer posts (the counter moves from what this
		 * pass saw): at once if it already has, else until mm_wake or
		 * 100 ms, whichever comes first. */
		int rc = mm_wait(mm, &b->posted, posted, 100000);
		if (rc < 0 && rc != E_BUSY && rc != E_TIMEOUT) {
			printf("mm_wait: %s\n", err_str(rc));
			return 23;
		}
	}
	if (got < want) {
		printf("only %ld of %ld messages arrived\n", got, want);
		return 22;
	}
	printf("read %ld messages (%u bytes of text, %u producers done) through %p\n",
	       got, chars, producers, (void *)mm->base);
	return 0;
}
