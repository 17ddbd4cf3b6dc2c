/* bench.c - in-kernel benchmarks selected by bench=<name>; figures in
 * instructions (rdinstret) and cycles per operation. */
#include <stdio.h>
#include <string.h>

#include "kernel.h"

int kbench_run(const char *name)
{
	if (strcmp(name, "boot") == 0)
		return 0;   /* the banner already printed the boot cost */
	printf("bench: unknown benchmark '%s'\n", name);
	return 1;
}
