/* demo.c - what `make run` shows: partitions on different harts attach one
 * shared area at different addresses; producers build a linked structure
 * with mm_ptr_t links while consumers walk and verify it, the area grows
 * meanwhile; one partition tries to read kernel memory and another a peer's
 * memory, and both are stopped while the rest finish; then per-partition
 * memory use and the area's statistics. */
#include <stdio.h>
#include <stdlib.h>

#include "hart.h"
#include "kmalloc.h"
#include "kernel.h"
#include "mem.h"
#include "part.h"
#include "part_roles.h"
#include "program.h"
#include "shm.h"

#define NODES 200          /* per producer: the area grows several times */

#define NPARTS 6

/* The built-in placement: partition k on hart index k % harts (the first
 * producer on hart 1, ...). `demo_harts=i,j,...` in the bootargs overrides
 * it, one hart index per partition in the order below. */
static unsigned placement[NPARTS] = { 1, 2, 3, 0, 1, 2 };

static void read_placement(void)
{
	char buf[64], *s;

	if (!bootarg("demo_harts", buf, sizeof(buf)))
		return;
	s = buf;
	for (unsigned k = 0; k < NPARTS && *s; k++) {
		placement[k] = (unsigned)strtoul(s, &s, 10);
		if (*s == ',')
			s++;
	}
}

static unsigned on(unsigned k)
{
	return placement[k] % harts_online;
}

static int demo_main(const char *arg)
{
	struct mm_stats st;
	size_t before = pmem_avail(&kpmem), heap_before, heap_grew, used;
	mm_t *area;

	heap_before = mem_kept_bytes();
	area = shm_kernel_create(DEMO_AREA, 64, 4096, 1u << 20);
	int ids[NPARTS], failed = 0;

	if (!area) {
		printf("demo: cannot create the shared area\n");
		return 1;
	}
	printf("demo: %u harts; area '%s' starts at %zu bytes\n", harts_online, DEMO_AREA,
	       (size_t)4096);
	read_placement();
	ids[0] = part_create("producer", ROLE_ARG(ROLE_PRODUCER, NODES), on(0), 0);
	ids[1] = part_create("producer", ROLE_ARG(ROLE_PRODUCER, NODES), on(1), 0);
	ids[2] = part_create("consumer", ROLE_ARG(ROLE_CONSUMER, 2 | (NODES << 8)), on(2), 0);
	ids[3] = part_create("consumer", ROLE_ARG(ROLE_CONSUMER, 2 | (NODES << 8)), on(3), 0);
	ids[4] = part_create("snoop-kern", ROLE_ARG(ROLE_BREACH, BREACH_KERNEL_READ), on(4), 0);
	ids[5] = part_create("snoop-peer", ROLE_ARG(ROLE_BREACH, BREACH_PEER_READ), on(5), 0);
	for (int i = 0; i < NPARTS; i++)
		if (ids[i] < 0) {
			printf("demo: partition %d not created: %s\n", i, err_str(ids[i]));
			return 1;
		}
	part_run_all();

	part_print_usage();
	for (int i = 0; i < 4; i++)
		failed |= part_get((unsigned)ids[i])->exit_status != 0;
	failed |= part_get((unsigned)ids[4])->state != PART_KILLED;
	failed |= part_get((unsigned)ids[5])->state != PART_KILLED;
	if (mm_lock(area, MM_LOCK_RD) >= 0) {
		mm_stats(area, &st);
		mm_unlock(area);
		printf("demo: area '%s': %zu KiB of %zu KiB max, %zu bytes in use, %zu free, "
		       "%llu allocs, %llu frees, grown %llu times, %u attached\n",
		       DEMO_AREA, st.size >> 10, st.max_size >> 10, st.used, st.free,
		       (unsigned long long)st.allocs, (unsigned long long)st.frees,
		       (unsigned long long)st.grows, st.nattach);
	}
	shm_kernel_detach(area);
	part_reset();
	/* Pages kmalloc and the VM took for kernel objects stay for reuse;
	 * everything else the partitions and the area used must be back. */
	heap_grew = mem_kept_bytes() - heap_before;
	used = before - pmem_avail(&kpmem);
	failed |= used != heap_grew;
	printf("demo: %s; physical memory %s (%zu KiB free before, %zu KiB after, of which "
	       "%zu KiB kept for kernel objects: kmalloc's heap, the VM's object pages)\n",
	       failed ? "FAILED" : "done", used == heap_grew ? "all returned" : "LEAKED",
	       before >> 10, pmem_avail(&kpmem) >> 10, heap_grew >> 10);
	return failed;
}

PROGRAM(demo, demo_main, "partitions share an area; two breaches are stopped (the default)")
