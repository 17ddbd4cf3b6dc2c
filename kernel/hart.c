/* hart.c - per-hart data: the array of harts and their TLS blocks. */
#include "hart.h"

#include <string.h>

#include "env.h"

_Static_assert(MAX_HARTS == ENV_MAX_CPUS, "hart.c: MAX_HARTS must equal ENV_MAX_CPUS");

extern char _tdata_start[], _tdata_end[], _tbss_offset[], _tls_size[];

struct hart harts[MAX_HARTS];
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

int hart_index_of(unsigned long hartid)
{
	for (unsigned i = 0; i < harts_online; i++)
		if (harts[i].hartid == hartid)
			return (int)i;
	return -1;
}
