/* fdt_fuzz.c - libFuzzer target: arbitrary bytes through the FDT parser,
 * the generic walker, navigation helpers and the board description. Must
 * never crash or read outside the input (ASan). */
#include "board.h"

#include <stdlib.h>
#include <string.h>

static int visit(void *arg, const struct fdt_event *ev)
{
	unsigned *n = arg;

	/* Touch every byte the walker hands out. */
	*n += (unsigned)strlen(ev->name);
	for (uint32_t i = 0; i < ev->len; i++)
		*n += ((const uint8_t *)ev->val)[i];
	return 0;
}

static void navigate(const struct fdt *f, int node, int depth)
{
	uint64_t v;
	uint32_t len;

	if (depth > FDT_MAX_DEPTH + 1)
		abort();   /* fdt_open bounds nesting */
	(void)fdt_prop_str(f, node, "compatible");
	(void)fdt_prop_uint(f, node, "reg", &v);
	if (fdt_prop(f, node, "compatible", &len))
		(void)fdt_strlist_has(fdt_prop(f, node, "compatible", NULL), len, "x");
	for (int c = fdt_first_child(f, node); c >= 0; c = fdt_next_sibling(f, c))
		navigate(f, c, depth + 1);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Without seeds the fuzzer would spend its time finding the magic and a
 * consistent header. So inputs whose first byte is even are wrapped: a
 * valid v17 header and an empty reservation block, then the input split
 * into struct and strings blocks at data[1] * 4. Odd first byte: raw. */
static uint8_t *wrap(const uint8_t *data, size_t size, size_t *len)
{
	size_t st, rest;
	uint8_t *b;

	if (size < 2 || (data[0] & 1) || size > (1u << 20))
		return NULL;
	data += 2;
	size -= 2;
	st = (size_t)data[-1] * 4;
	if (st > size)
		st = size & ~(size_t)3;
	rest = size - st;
	*len = 56 + size;
	b = malloc(*len);   /* exact size: ASan catches any overread */
	if (!b)
		return NULL;
	memset(b, 0, 56);
	put32(b + FDT_HDR_MAGIC, FDT_MAGIC);
	put32(b + FDT_HDR_TOTALSIZE, (uint32_t)*len);
	put32(b + FDT_HDR_OFF_STRUCT, 56);
	put32(b + FDT_HDR_OFF_STRINGS, (uint32_t)(56 + st));
	put32(b + FDT_HDR_OFF_RSVMAP, 40);
	put32(b + FDT_HDR_VERSION, 17);
	put32(b + FDT_HDR_LAST_COMP, 16);
	put32(b + FDT_HDR_SIZE_STRINGS, (uint32_t)rest);
	put32(b + FDT_HDR_SIZE_STRUCT, (uint32_t)st);
	memcpy(b + 56, data, size);
	return b;
}

static void one(const uint8_t *data, size_t size)
{
	static struct board b;
	struct fdt f;
	unsigned n = 0;
	uint64_t a, s;

	if (fdt_open(&f, data, size) == 0) {
		if (fdt_walk(&f, visit, &n))
			abort();   /* a checked blob always walks */
		for (uint32_t i = 0; i < f.n_rsv; i++)
			if (fdt_rsv(&f, i, &a, &s))
				abort();
		navigate(&f, fdt_root(&f), 0);
		(void)fdt_path(&f, "/cpus/cpu@0");
	}
	if (board_parse(&b, data, size) == 0) {
		for (unsigned i = 0; i + 1 < b.nmem; i++)
			for (unsigned j = i + 1; j < b.nmem; j++)
				if (b.mem[i].start <= b.mem[j].end && b.mem[j].start <= b.mem[i].end)
					abort();   /* overlapping RAM must have been rejected */
	} else if (!b.reason[0]) {
		abort();   /* every rejection names its reason */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	uint8_t *w = wrap(data, size, &len);

	one(data, size);
	if (w) {
		one(w, len);
		free(w);
	}
	return 0;
}
