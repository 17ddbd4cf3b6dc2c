/* hart.c - per-hart data: the array of harts and their TLS blocks. */
#include "hart.h"

#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "env.h"
#include "mem.h"

_Static_assert(MAX_HARTS == ENV_MAX_CPUS, "hart.c: MAX_HARTS must equal ENV_MAX_CPUS");

extern char _tdata_start[], _tdata_end[], _tbss_offset[], _tls_size[];

static struct hart hart0;                 /* until hart_table_init */
struct hart *harts = &hart0;
unsigned harts_max = 1;
unsigned harts_online;

void hart_setup_tls(unsigned index, unsigned long hartid)
{
	struct hart *h = &harts[index];
	size_t tdata = (size_t)(_tdata_end - _tdata_start);
	size_t tls = (size_t)_tls_size;

	/* No TLS variable may be touched before tp is set. */
	memset(h->tls, 0, tls);
	memcpy(h->tls, _tdata_start, tdata);
	h->index = index;
	h->cpu = index;
	h->hartid = hartid;
	h->stack_lo = hart_stack_lo(index);
	h->emerg_sp = hart_emerg_lo(index) + EMERG_STACK_SIZE;
	for (unsigned i = 0; i < ENV_NSLOTS; i++)
		h->env_slots[i] = env_zero_block;
	/* entry.S finds the kernel tp in the top word of the user-trap stack */
	h->utrap_top = hart_utrap_lo(index) + UTRAP_STACK_SIZE - 16;
	*(unsigned long *)h->utrap_top = (unsigned long)h->tls;
	__asm__ volatile("mv tp, %0" :: "r"(h->tls) : "memory");
}

void hart_table_init(unsigned n)
{
	size_t bytes = (size_t)n * sizeof(struct hart);
	size_t npages = (bytes + ENV_PAGE_SIZE - 1) / ENV_PAGE_SIZE;
	uintptr_t pa = n > 1 ? pmem_alloc_pages(&kpmem, npages, 0, 0, PMEM_NODE_ANY) : 0;
	struct hart *t;

	if (n <= 1)
		return;
	if (!pa) {
		printf("smp: no memory for the table of %u harts (%zu KiB): "
		       "running on the boot hart alone\n", n, (npages * ENV_PAGE_SIZE) >> 10);
		return;
	}
	t = pa_to_dmap(pa);
	memset(t, 0, npages * ENV_PAGE_SIZE);
	t[0] = *harts;
	/* entry.S finds the kernel tp in the top word of the user-trap stack */
	*(unsigned long *)t[0].utrap_top = (unsigned long)t[0].tls;
	harts = t;
	harts_max = n;
	__asm__ volatile("mv tp, %0" :: "r"(t[0].tls) : "memory");
}

int hart_index_of(unsigned long hartid)
{
	for (unsigned i = 0; i < harts_online; i++)
		if (harts[i].hartid == hartid)
			return (int)i;
	return -1;
}
