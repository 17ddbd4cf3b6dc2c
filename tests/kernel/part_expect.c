/* part_expect.c - see part_expect.h. */
#include <string.h>

#include "part.h"
#include "part_expect.h"

/* The partition of `id`, or NULL after a failure naming it. */
static const struct partition *get(struct ktest_ctx *kt, const char *file, int line, int id)
{
	const struct partition *p = id >= 1 ? part_get((unsigned)id) : NULL;

	if (!p)
		ktest_fail(kt, file, line, "no partition %d", id);
	return p;
}

void part_expect_exit(struct ktest_ctx *kt, const char *file, int line, int id, int status)
{
	const struct partition *p = get(kt, file, line, id);

	if (p && (p->state != PART_EXITED || p->exit_status != status))
		ktest_fail(kt, file, line, "%s#%d: state %d status %d, want exit %d (%s)", p->name,
			   id, p->state, p->exit_status, status, p->report);
}

void part_expect_stopped(struct ktest_ctx *kt, const char *file, int line, int id,
			 const char *why)
{
	const struct partition *p = get(kt, file, line, id);

	if (p && (p->state != PART_KILLED || !strstr(p->report, why)))
		ktest_fail(kt, file, line, "%s#%d: state %d report '%s', want stopped: %s",
			   p->name, id, p->state, p->report, why);
}
