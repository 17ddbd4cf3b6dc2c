/* part_expect.h - checks of how a test's partitions ended, whose failure
 * names the partition, its state and its stop report (a bare status
 * comparison would say only "-1 vs 0"). */
#ifndef PART_EXPECT_H
#define PART_EXPECT_H

#include "ktest.h"

/* Partition id exited by itself with `status`. */
#define EXPECT_EXIT(id, status) part_expect_exit(KT_CTX, __FILE__, __LINE__, (int)(id), status)
/* Partition id was stopped, its report containing `why`. */
#define EXPECT_STOPPED(id, why) part_expect_stopped(KT_CTX, __FILE__, __LINE__, (int)(id), why)

void part_expect_exit(struct ktest_ctx *kt, const char *file, int line, int id, int status);
void part_expect_stopped(struct ktest_ctx *kt, const char *file, int line, int id,
			 const char *why);

#endif
