/* ktest.c - registration, selection and reporting for ktest (host and kernel). */
#include "ktest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static struct ktest *head, **tail = &head;
static unsigned n_passed, n_failed;

void ktest_register(struct ktest *t)
{
	t->next = NULL;
	*tail = t;
	tail = &t->next;
}

void ktest_fail(struct ktest_ctx *kt, const char *file, int line, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("FAIL %s.%s: %s:%d: %s\n", kt->t->suite, kt->t->name, file, line, msg);
	kt->failures++;
}

static bool matches(const struct ktest *t, const char *pat)
{
	size_t sl = strlen(t->suite);

	if (strcmp(pat, "all") == 0)
		return !t->manual;
	if (strcmp(pat, t->suite) == 0)
		return true;
	return strncmp(pat, t->suite, sl) == 0 && pat[sl] == '.' &&
	       strcmp(pat + sl + 1, t->name) == 0;
}

#define KTEST_SLOW_US 1000000   /* tests this slow print their time */

static bool selected(const struct ktest *t, int npat, const char *const *pat)
{
	if (npat == 0)
		return !t->manual;
	for (int i = 0; i < npat; i++)
		if (matches(t, pat[i]))
			return true;
	return false;
}

int ktest_run(int npat, const char *const *pat)
{
	n_passed = n_failed = 0;
	for (const struct ktest *t = head; t; t = t->next) {
		struct ktest_ctx kt = { t, 0 };
		uint64_t t0, us;

		if (!selected(t, npat, pat))
			continue;
		t0 = ktest_now_us();
		t->fn(&kt);
		us = ktest_now_us() - t0;
		ktest_mem_reset();
		if (kt.failures) {
			n_failed++;
		} else {
			n_passed++;
			if (us >= KTEST_SLOW_US)     /* where a suite's time goes */
				printf("ok %s.%s (%llu.%01llu s)\n", t->suite, t->name,
				       (unsigned long long)(us / 1000000),
				       (unsigned long long)(us / 100000 % 10));
			else
				printf("ok %s.%s\n", t->suite, t->name);
		}
	}
	printf("%u passed, %u failed\n", n_passed, n_failed);
	return (int)n_failed;
}

void ktest_counts(unsigned *passed, unsigned *failed)
{
	*passed = n_passed;
	*failed = n_failed;
}
