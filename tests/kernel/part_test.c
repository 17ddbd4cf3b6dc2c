/* part_test.c - partitions on real harts: a lock stress on one shared area
 * with growth, a partition killed while holding the lock, every isolation
 * breach stopping only the guilty partition, and all memory coming back. */
#include <stdio.h>
#include <string.h>

#include "hart.h"
#include "kernel.h"
#include "ktest.h"
#include "mem.h"
#include "part.h"
#include "part_roles.h"
#include "shm.h"

static unsigned on(unsigned i)
{
	return i % harts_online;
}

struct hammer_hdr {          /* user/part.c's layout of the static part */
	uint64_t counter;
	uint32_t owner;
	uint8_t buf[64];
};

#define ITERS 300

KTEST(part, hammer_one_area_under_the_lock_while_it_grows)
{
	MM *area = shm_kernel_create(HAMMER_AREA, sizeof(struct hammer_hdr), 4096, 1u << 20);
	unsigned n = harts_online < 2 ? 2 : harts_online;
	struct mm_stats st;
	int ids[16];

	ASSERT(area != NULL);
	for (unsigned i = 0; i < n && i < 16; i++)
		ids[i] = part_create("hammer", ROLE_ARG(ROLE_HAMMER, ITERS), on(i), 0);
	part_run_all();
	for (unsigned i = 0; i < n && i < 16; i++) {
		ASSERT_GE(ids[i], 1);
		EXPECT_EQ(part_get((unsigned)ids[i])->state, PART_EXITED);
		EXPECT_EQ(part_get((unsigned)ids[i])->exit_status, 0);
	}
	ASSERT_GE(mm_lock(area, MM_LOCK_RD), 0);
	EXPECT_EQ(((struct hammer_hdr *)mm_static(area))->counter, (uint64_t)n * ITERS);
	mm_stats(area, &st);
	mm_unlock(area);
	EXPECT_GE(st.ngrow, 1);                 /* grew while the others used it */
	EXPECT_EQ(mm_check(area), 0);
	shm_kernel_detach(area);
	part_reset();
	EXPECT_EQ(shm_count(), 0);
}

KTEST(part, killed_while_holding_the_lock)
{
	MM *area = shm_kernel_create(ROBUST_AREA, 64, 4096, 64 << 10);
	int locker, waiter;

	ASSERT(area != NULL);
	locker = part_create("locker", ROLE_ARG(ROLE_LOCKER, 0), on(1), 0);
	waiter = part_create("waiter", ROLE_ARG(ROLE_WAITER, 0), on(2), 0);
	ASSERT_GE(locker, 1);
	ASSERT_GE(waiter, 1);
	part_run_all();
	EXPECT_EQ(part_get((unsigned)locker)->state, PART_KILLED);
	EXPECT_EQ(part_get((unsigned)waiter)->state, PART_EXITED);
	EXPECT_EQ(part_get((unsigned)waiter)->exit_status, 0);   /* saw OWNER_DIED */
	shm_kernel_detach(area);
	part_reset();
}

static const struct {
	unsigned kind;
	const char *report;          /* must appear in the stop report */
} breaches[] = {
	{ BREACH_KERNEL_READ, "load page fault at 0xffffffff80200000: kernel memory" },
	{ BREACH_KERNEL_WRITE, "store page fault at 0xffffffff80200000: kernel memory" },
	{ BREACH_PEER_READ, "outside every segment" },
	{ BREACH_EXEC_DATA, "permission violation in segment data" },
	{ BREACH_JUMP_KERNEL, "instruction page fault at 0xffffffff80200000: kernel memory" },
	{ BREACH_QUOTA, "memory quota exceeded" },
	{ BREACH_BAD_SYSCALL_PTR, "bad pointer 0xffffffff80200000" },
	{ BREACH_ILLEGAL, "illegal instruction" },
	{ BREACH_STACK_OVERFLOW, "stack overflow in segment stack" },
};

KTEST(part, each_isolation_breach_stops_only_the_guilty)
{
	MM *area = shm_kernel_create(DEMO_AREA, 64, 4096, 1u << 20);
	unsigned nb = sizeof(breaches) / sizeof(breaches[0]);
	int bad[16], good[16], prod;

	ASSERT(area != NULL);
	prod = part_create("producer", ROLE_ARG(ROLE_PRODUCER, 20), on(1), 0);
	for (unsigned i = 0; i < nb; i++) {
		/* quota 64 pages, except the stack overflow, which must reach the
		 * guard below its 256 KiB of reserved room first */
		bad[i] = part_create("breach", ROLE_ARG(ROLE_BREACH, breaches[i].kind), on(i),
				     breaches[i].kind == BREACH_STACK_OVERFLOW ? 0 : 64);
		good[i] = part_create("bystander", ROLE_ARG(ROLE_HELLO, 7), on(i), 0);
		ASSERT_GE(bad[i], 1);
		ASSERT_GE(good[i], 1);
	}
	part_run_all();
	EXPECT_EQ(part_get((unsigned)prod)->exit_status, 0);
	for (unsigned i = 0; i < nb; i++) {
		const struct partition *b = part_get((unsigned)bad[i]);
		const struct partition *g = part_get((unsigned)good[i]);

		EXPECT_EQ(b->state, PART_KILLED);
		if (!strstr(b->report, breaches[i].report))
			ktest_fail(KT_CTX, __FILE__, __LINE__, "breach %u report '%s' lacks '%s'",
				   breaches[i].kind, b->report, breaches[i].report);
		EXPECT_EQ(g->state, PART_EXITED);
		EXPECT_EQ(g->exit_status, 7);
	}
	shm_kernel_detach(area);
	part_reset();
}

static void run_mixed(void)
{
	MM *area = shm_kernel_create(HAMMER_AREA, sizeof(struct hammer_hdr), 4096, 1u << 20);

	part_create("hammer", ROLE_ARG(ROLE_HAMMER, 50), on(0), 0);
	part_create("hammer", ROLE_ARG(ROLE_HAMMER, 50), on(1), 0);
	part_create("quota", ROLE_ARG(ROLE_BREACH, BREACH_QUOTA), on(1), 32);
	part_create("hello", ROLE_ARG(ROLE_HELLO, 0), on(2), 0);
	part_run_all();
	if (area)
		shm_kernel_detach(area);
	part_reset();
}

KTEST(part, all_memory_returns_when_partitions_end)
{
	size_t before;

	run_mixed();              /* warm kmalloc's caches for kernel objects */
	before = pmem_avail(&kpmem);
	run_mixed();
	run_mixed();
	EXPECT_EQ(pmem_avail(&kpmem), before);
	EXPECT_EQ(shm_count(), 0);
}
