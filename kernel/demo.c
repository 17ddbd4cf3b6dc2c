/* demo.c - what `make run` shows: every hart says where it is running. */
#include <stdio.h>

#include "hart.h"
#include "kernel.h"
#include "riscv.h"

static void hello(unsigned i, void *arg)
{
	struct hart *h = this_hart();

	(void)arg;
	printf("demo: hart %lu (index %u) running, %llu timer ticks so far\n",
	       h->hartid, i, (unsigned long long)h->timer_ticks);
}

int kdemo_run(void)
{
	smp_run(harts_online, hello, NULL);
	printf("demo: done\n");
	return 0;
}
