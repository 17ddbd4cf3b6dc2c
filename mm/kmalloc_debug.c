/* kmalloc_debug.c - the debug build's aids (-DKMALLOC_DEBUG): the
 * requested size and caller in each header, red zones after the payload,
 * poison in cached blocks. Without KMALLOC_DEBUG this file is empty and
 * kmalloc_int.h gives stubs that compile away, as slub keeps its debug code
 * apart.
 */
#include "kmalloc_int.h"

#include <string.h>

#ifdef KMALLOC_DEBUG
void dbg_mark(struct hdr *h, size_t req, void *caller)
{
	h->req = (uint32_t)req;
	h->caller = caller;
	memset((char *)h + HDR + req, RZ_BYTE, (size_t)h->g * 16 - HDR - req);
}

bool dbg_redzone_ok(const struct hdr *h)
{
	const unsigned char *z = (const unsigned char *)h + HDR + h->req;
	size_t n = (size_t)h->g * 16 - HDR - h->req;
	for (size_t i = 0; i < n; i++)
		if (z[i] != RZ_BYTE)
			return false;
	return true;
}

void dbg_poison(struct cblk *b)
{
	memset((char *)b + sizeof(*b), POISON, (size_t)b->h.g * 16 - sizeof(*b));
}

void dbg_check_poison(struct cblk *b)
{
	const unsigned char *z = (const unsigned char *)b + sizeof(*b);
	size_t n = (size_t)b->h.g * 16 - sizeof(*b);
	for (size_t i = 0; i < n; i++)
		if (z[i] != POISON) {
			env_log("kmalloc: block %p written after free (offset %zu; allocated at %p)",
				(void *)((char *)b + HDR), sizeof(*b) - HDR + i, b->h.caller);
			return;
		}
}

/* A large block's red zone (from the requested size to the page end). */
bool dbg_large_redzone_ok(const struct kmalloc_range *r)
{
	const unsigned char *z = (const unsigned char *)r->payload + r->req;
	size_t n = r->end - r->payload - r->req;

	for (size_t i = 0; i < n; i++)
		if (z[i] != RZ_BYTE)
			return false;
	return true;
}

/* krealloc in place: the red zone now starts at the new size. */
void dbg_resize(struct hdr *h, struct kmalloc_range *r, void *p, size_t size, size_t usable)
{
	if (h)
		h->req = (uint32_t)size;
	else
		r->req = size;   /* only the owner of p touches it */
	memset((char *)p + size, RZ_BYTE, usable + (h ? KMALLOC_REDZONE : 0) - size);
}
#endif
