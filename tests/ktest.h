/* ktest.h - one small test framework for host and kernel builds.
 *
 * A test is declared with KTEST(suite, name) { ... } and registers itself
 * through a constructor, so the same source links into the host test binary
 * (with ASan/UBSan or TSan) and into the kernel. Tests run one at a time by
 * name ("suite" or "suite.name").
 *
 *   EXPECT*(...)  records a failure and continues;
 *   ASSERT*(...)  records a failure and returns from the test.
 *
 * Output, one line each: "ok suite.name", or "FAIL suite.name: file:line:
 * what" per failed check; a run ends with "N passed, N failed".
 */
#ifndef KTEST_H
#define KTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ktest_ctx;

struct ktest {
	const char *suite;
	const char *name;
	void (*fn)(struct ktest_ctx *kt__);
	struct ktest *next;
	bool manual;     /* runs only when named, never under "all" */
};

struct ktest_ctx {
	const struct ktest *t;
	unsigned failures;
};

void ktest_register(struct ktest *t);
void ktest_fail(struct ktest_ctx *kt, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Run every registered test whose "suite" or "suite.name" matches one of
 * the patterns ("all" or no pattern runs everything). Prints the summary and
 * returns the number of failed tests. */
int ktest_run(int npat, const char *const *pat);
/* The counts of the last ktest_run. */
void ktest_counts(unsigned *passed, unsigned *failed);

/* Provided by the environment (tests/host/env.c or tests/kernel/ktest_env.c). */

/* Zeroed memory aligned to `align` (a power of two, at most 1 GiB), valid
 * until the current test returns. NULL if the environment has none left. */
void *ktest_mem(size_t size, size_t align);
void ktest_mem_reset(void);       /* called by the runner after each test */
/* CPUs (harts in the kernel, threads on the host) a parallel test can use. */
unsigned ktest_ncpus(void);
/* Run fn(i, arg) for i in [0, n) concurrently, one per CPU (host: one
 * thread each; kernel: one hart each, n <= ktest_ncpus()); return when all
 * have finished. */
void ktest_parallel(unsigned n, void (*fn)(unsigned i, void *arg), void *arg);
/* Seconds to run bounded stress loops for (host: KTEST_STRESS_SECONDS). */
unsigned ktest_stress_seconds(void);
/* A CPU of a parallel test with nothing to do until another CPU's step:
 * give the CPU up for a moment (host: sched_yield; kernel: wfi, until the
 * next interrupt, the hart's tick at the latest). Call it after spinning
 * a while: on an emulator with more harts than host cores, spinning
 * waiters take whole host time slices from the one whose turn it is. */
void ktest_cpu_wait(void);
/* A clock in microseconds (host: monotonic; kernel: the guest's time) for
 * the runner's report of slow tests. */
uint64_t ktest_now_us(void);

#define KTEST_DEFINE_(suite, tname, manual)                                   \
	static void ktest_fn_##suite##_##tname(struct ktest_ctx *kt__);       \
	static struct ktest ktest_d_##suite##_##tname = {                     \
		#suite, #tname, ktest_fn_##suite##_##tname, 0, manual };       \
	__attribute__((constructor)) static void                              \
	ktest_reg_##suite##_##tname(void)                                     \
	{                                                                     \
		ktest_register(&ktest_d_##suite##_##tname);                   \
	}                                                                     \
	static void ktest_fn_##suite##_##tname(struct ktest_ctx *kt__)

#define KTEST(suite, tname) KTEST_DEFINE_(suite, tname, false)
/* A test that ends the run (a deliberate panic): only when named. */
#define KTEST_MANUAL(suite, tname) KTEST_DEFINE_(suite, tname, true)

#define KT_CTX kt__

#define EXPECT(c)                                                             \
	do { if (!(c)) ktest_fail(kt__, __FILE__, __LINE__, "%s", #c); } while (0)
#define ASSERT(c)                                                             \
	do { if (!(c)) { ktest_fail(kt__, __FILE__, __LINE__, "%s", #c); return; } } while (0)

#define KT_CMP_(a, op, b, ret)                                                \
	do {                                                                  \
		long long kta__ = (long long)(a), ktb__ = (long long)(b);     \
		if (!(kta__ op ktb__)) {                                      \
			ktest_fail(kt__, __FILE__, __LINE__,                  \
				   "%s %s %s (0x%llx vs 0x%llx)", #a, #op, #b,  \
				   (unsigned long long)kta__,                 \
				   (unsigned long long)ktb__);                \
			ret;                                                  \
		}                                                             \
	} while (0)

#define EXPECT_EQ(a, b) KT_CMP_(a, ==, b, (void)0)
#define EXPECT_NE(a, b) KT_CMP_(a, !=, b, (void)0)
#define EXPECT_LT(a, b) KT_CMP_(a, <, b, (void)0)
#define EXPECT_LE(a, b) KT_CMP_(a, <=, b, (void)0)
#define EXPECT_GE(a, b) KT_CMP_(a, >=, b, (void)0)
#define ASSERT_EQ(a, b) KT_CMP_(a, ==, b, return)
#define ASSERT_NE(a, b) KT_CMP_(a, !=, b, return)
#define ASSERT_LE(a, b) KT_CMP_(a, <=, b, return)
#define ASSERT_GE(a, b) KT_CMP_(a, >=, b, return)

/* Is the test failing so far? (For loops that should stop at the first.) */
#define KT_FAILED() (kt__->failures != 0)

#endif
