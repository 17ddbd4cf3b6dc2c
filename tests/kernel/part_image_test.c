/* part_image_test.c - suite `part_image`: part_create_image's refusals
 * (kernel/part.h) leave no partition and no memory behind. Running images
 * of the user's own is covered by boots (ci/part-matrix.sh). */
#include <string.h>

#include "hart.h"
#include "kernel.h"
#include "kmalloc.h"
#include "ktest.h"
#include "mem.h"
#include "part.h"

extern const unsigned char user_image_part[], user_image_part_end[];

KTEST(part_image, refusals_leave_nothing)
{
	static char longarg[PART_ARG_MAX + 1];
	static unsigned char junk[256];
	size_t len = (size_t)(user_image_part_end - user_image_part), before, heap_before;
	unsigned char *bad;
	unsigned live_before;

	memset(longarg, 'x', PART_ARG_MAX);
	bad = ktest_mem(len, 16);   /* before the count: the test's own pages */
	ASSERT(bad != NULL);
	heap_before = mem_kept_bytes();
	before = pmem_avail(&kpmem);
	live_before = part_live_count();
	EXPECT_EQ(part_create_image("p", NULL, len, "", 0, 0), E_INVAL);
	EXPECT_EQ(part_create_image("p", user_image_part, len, NULL, 0, 0), E_INVAL);
	EXPECT_EQ(part_create_image("p", user_image_part, len, longarg, 0, 0), E_INVAL);
	EXPECT_EQ(part_create_image("p", user_image_part, len, "", harts_online, 0), E_INVAL);
	EXPECT_EQ(part_create_image("p", junk, sizeof(junk), "", 0, 0), E_CORRUPT);
	/* the built-in image cut short: its segments' bytes run past the end */
	EXPECT_EQ(part_create_image("p", user_image_part, len / 2, "", 0, 0), E_CORRUPT);
	/* one byte of the class changed */
	memcpy(bad, user_image_part, len);
	bad[4] = 1;
	EXPECT_EQ(part_create_image("p", bad, len, "", 0, 0), E_CORRUPT);
	EXPECT_EQ(part_live_count(), live_before);
	EXPECT_EQ(before - pmem_avail(&kpmem), mem_kept_bytes() - heap_before);
}

/* An argument of PART_ARG_MAX - 1 characters is taken: the partition is
 * created (with its strings on its stack) and, stopped before it runs,
 * gives everything back. */
KTEST(part_image, longest_argument_fits)
{
	static char arg[PART_ARG_MAX];
	size_t len = (size_t)(user_image_part_end - user_image_part), before, heap_before;
	int id;

	memset(arg, 'a', PART_ARG_MAX - 1);
	heap_before = mem_kept_bytes();
	before = pmem_avail(&kpmem);
	id = part_create_image("longarg", user_image_part, len, arg, 0, 0);
	ASSERT(id > 0);
	EXPECT(part_alive((unsigned)id));
	EXPECT_EQ(part_kill((unsigned)id, "test: never runs"), 0);
	part_run_all();
	EXPECT_EQ(part_get((unsigned)id)->state, PART_KILLED);
	EXPECT_EQ(part_get((unsigned)id)->slices, 0u);
	part_reset();
	EXPECT_EQ(before - pmem_avail(&kpmem), mem_kept_bytes() - heap_before);
}
