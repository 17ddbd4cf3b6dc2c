/* main.c - host test runner: `unit [suite | suite.name]...`. */
#include "../ktest.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return ktest_run(argc - 1, (const char *const *)argv + 1) ? 1 : 0;
}
