/* plat.h - per-board quirks behind an ops table, chosen from the device
 * tree's root compatible strings. A missing hook counts as "use the generic
 * way" (SBI). Core code calls plat_*() and never tests for a board. */
#ifndef PLATFORM_PLAT_H
#define PLATFORM_PLAT_H

#include <stdbool.h>

#include "board.h"

struct plat_ops {
	const char *name;
	const char *compatible;          /* root compatible string to match */
	/* End the machine: 0 means it does not return. Optional. */
	int (*shutdown)(const struct board *b, void *finisher_va, bool failed);
};

/* Choose the ops for board `b`; `finisher_va` is where the kernel mapped
 * the board's test finisher (NULL if none). Never fails: unknown boards get
 * the generic ops. */
const struct plat_ops *plat_init(const struct board *b, void *finisher_va);
const struct plat_ops *plat_get(void);
/* Shut down through the board's hook, falling back to SBI System Reset. */
void plat_shutdown(bool failed);

#endif
