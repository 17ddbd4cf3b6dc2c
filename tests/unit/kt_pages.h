/* kt_pages.h - the byte-per-page map the kmalloc suite's page sources share
 * (kmalloc_test.c defines these, kmalloc_map_test.c uses them too): each
 * source picks its run its own way; marking it out and taking it back is
 * the same. */
#ifndef KT_PAGES_H
#define KT_PAGES_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"

/* Mark the `n` pages ending at index `last` out; their address in `base`.
 * The caller holds its source's lock. */
void *kt_pages_take(uint8_t *used, char *base, size_t last, size_t n);

/* One source's map as kt_pages_put sees it. */
struct kt_pages {
	const char *who;         /* names the source in console messages */
	env_spinlock_t *lock;
	char *base;
	uint8_t *used;           /* one byte per page */
	size_t *out;             /* pages out, less `n` after a put */
	size_t *puts;            /* counted puts, or NULL */
};

/* Under pg->lock, take back the `n` pages at `va`; a page that was not out
 * is named on the console as "who: page I not out". */
void kt_pages_put(const struct kt_pages *pg, void *va, size_t n);

#endif
