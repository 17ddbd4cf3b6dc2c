/* fdt_test.c - suite `fdt`: the device tree parser and the board
 * description, on blobs built in memory by a tiny test-only writer (no file
 * I/O: this suite also runs inside the kernel). Each malformed-blob check has
 * its own test asserting the error code and the reason text. */
#include "ktest.h"
#include "board.h"

#include <stdarg.h>
#include <string.h>

/* ---- a tiny FDT writer ----------------------------------------------------- */

#define W_ST  (96 * 1024)    /* BOARD_MAX_CPU_NODES + 1 hart nodes fit */
#define W_STR 2048
#define W_HDR 40

struct w {
	uint8_t st[W_ST];
	uint32_t nst;
	char str[W_STR];
	uint32_t nstr;
	uint64_t rsv[8][2];
	unsigned nrsv;
	bool overflow;
	uint8_t *blob;    /* after w_blob() */
	uint32_t size;
};

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, v >> 32);
	be32(p + 4, (uint32_t)v);
}

static struct w *w_new(void)
{
	return ktest_mem(sizeof(struct w), 8);
}

static void w_u32(struct w *w, uint32_t v)
{
	if (w->nst + 4 > W_ST) {
		w->overflow = true;
		return;
	}
	be32(w->st + w->nst, v);
	w->nst += 4;
}

/* n bytes, zero-padded to a multiple of 4. */
static void w_bytes(struct w *w, const void *p, uint32_t n)
{
	uint32_t padded = (n + 3) & ~3u;

	if (w->nst + padded > W_ST) {
		w->overflow = true;
		return;
	}
	memcpy(w->st + w->nst, p, n);
	memset(w->st + w->nst + n, 0, padded - n);
	w->nst += padded;
}

static uint32_t w_name(struct w *w, const char *name)
{
	uint32_t off, n = (uint32_t)strlen(name) + 1;

	for (off = 0; off < w->nstr; off += (uint32_t)strlen(w->str + off) + 1)
		if (!strcmp(w->str + off, name))
			return off;   /* shared, as dtc does */
	if (off + n > W_STR) {
		w->overflow = true;
		return 0;
	}
	memcpy(w->str + off, name, n);
	w->nstr += n;
	return off;
}

static void w_begin(struct w *w, const char *name)
{
	w_u32(w, FDT_BEGIN_NODE);
	w_bytes(w, name, (uint32_t)strlen(name) + 1);
}

static void w_end(struct w *w)
{
	w_u32(w, FDT_END_NODE);
}

static void w_prop(struct w *w, const char *name, const void *val, uint32_t len)
{
	w_u32(w, FDT_PROP);
	w_u32(w, len);
	w_u32(w, w_name(w, name));
	w_bytes(w, val, len);
}

static void w_str(struct w *w, const char *name, const char *s)
{
	w_prop(w, name, s, (uint32_t)strlen(s) + 1);
}

/* A property of n 32-bit cells. */
static void w_cells(struct w *w, const char *name, unsigned n, ...)
{
	uint8_t buf[64];
	va_list ap;

	va_start(ap, n);
	for (unsigned i = 0; i < n && i < 16; i++)
		be32(buf + 4 * i, va_arg(ap, uint32_t));
	va_end(ap);
	w_prop(w, name, buf, 4 * (n < 16 ? n : 16));
}

static void w_u64(struct w *w, const char *name, uint64_t v)
{
	uint8_t buf[8];

	be64(buf, v);
	w_prop(w, name, buf, 8);
}

static void w_rsv(struct w *w, uint64_t addr, uint64_t size)
{
	w->rsv[w->nrsv][0] = addr;
	w->rsv[w->nrsv][1] = size;
	w->nrsv++;
}

/* Lay out header, reservation block, struct block, strings block (the
 * caller adds FDT_END itself so that tests can leave it out). */
static uint8_t *w_blob(struct w *w)
{
	uint32_t orsv = W_HDR, ost = orsv + 16 * (w->nrsv + 1), ostr = ost + w->nst;
	uint8_t *b;

	if (w->overflow)
		return NULL;
	w->size = ostr + w->nstr;
	b = ktest_mem(w->size, 8);
	if (!b)
		return NULL;
	be32(b + FDT_HDR_MAGIC, FDT_MAGIC);
	be32(b + FDT_HDR_TOTALSIZE, w->size);
	be32(b + FDT_HDR_OFF_STRUCT, ost);
	be32(b + FDT_HDR_OFF_STRINGS, ostr);
	be32(b + FDT_HDR_OFF_RSVMAP, orsv);
	be32(b + FDT_HDR_VERSION, 17);
	be32(b + FDT_HDR_LAST_COMP, 16);
	be32(b + FDT_HDR_SIZE_STRINGS, w->nstr);
	be32(b + FDT_HDR_SIZE_STRUCT, w->nst);
	for (unsigned i = 0; i < w->nrsv; i++) {
		be64(b + orsv + 16 * i, w->rsv[i][0]);
		be64(b + orsv + 16 * i + 8, w->rsv[i][1]);
	}
	memcpy(b + ost, w->st, w->nst);
	memcpy(b + ostr, w->str, w->nstr);
	w->blob = b;
	return b;
}

static uint32_t hdr(const struct w *w, unsigned off)
{
	return fdt_u32(w->blob + off);
}

static void set_hdr(struct w *w, unsigned off, uint32_t v)
{
	be32(w->blob + off, v);
}

/* A minimal valid tree: root with one property and one child. */
static struct w *tiny(void)
{
	struct w *w = w_new();

	if (!w)
		return NULL;
	w_begin(w, "");
	w_cells(w, "#address-cells", 1, 2);
	w_begin(w, "chosen");
	w_end(w);
	w_end(w);
	w_u32(w, FDT_END);
	return w_blob(w) ? w : NULL;
}

static int open_w(struct fdt *f, struct w *w)
{
	return fdt_open(f, w->blob, w->size);
}

#define HAS(s, sub) (strstr((s), (sub)) != NULL)
#define EXPECT_REASON(f, sub)                                                 \
	do { if (!HAS((f)->reason, sub))                                      \
		ktest_fail(kt__, __FILE__, __LINE__, "reason '%s' lacks '%s'", \
			   (f)->reason, sub); } while (0)

/* Set header word `off` of `w` to `v`: fdt_open must then fail with `err`
 * and a reason that says `why`. */
static void expect_hdr_refused(struct ktest_ctx *kt__, struct w *w, unsigned off, uint32_t v,
			       int err, const char *why)
{
	struct fdt f;

	set_hdr(w, off, v);
	EXPECT_EQ(open_w(&f, w), err);
	EXPECT_REASON(&f, why);
}

/* ---- header ----------------------------------------------------------------- */

KTEST(fdt, tiny_blob_opens)
{
	struct w *w = tiny();
	struct fdt f;

	ASSERT(w);
	ASSERT_EQ(open_w(&f, w), 0);
	EXPECT_EQ(f.version, 17);
	EXPECT_EQ(f.n_rsv, 0);
	EXPECT_EQ(fdt_root(&f), 0);
	EXPECT(fdt_path(&f, "/chosen") > 0);
	EXPECT_EQ(fdt_path(&f, "/nope"), E_NOENT);
	EXPECT_EQ(fdt_blob_size(w->blob), w->size);
	w->blob[0] ^= 1;
	EXPECT_EQ(fdt_blob_size(w->blob), 0);
}

KTEST(fdt, reject_short_buffer)
{
	struct w *w = tiny();
	struct fdt f;

	ASSERT(w);
	EXPECT_EQ(fdt_open(&f, w->blob, 3), E_CORRUPT);
	EXPECT_REASON(&f, "too short");
	EXPECT_EQ(fdt_open(&f, w->blob, 20), E_CORRUPT);
	EXPECT_REASON(&f, "too short");
}

KTEST(fdt, reject_bad_magic)
{
	struct w *w = tiny();

	ASSERT(w);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_MAGIC, 0x12345678, E_CORRUPT, "bad magic 0x12345678");
}

KTEST(fdt, reject_old_version)
{
	struct w *w = tiny();

	ASSERT(w);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_VERSION, 15, E_NOTSUP, "unsupported version 15");
}

KTEST(fdt, reject_last_comp_version)
{
	struct w *w = tiny();

	ASSERT(w);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_LAST_COMP, 18, E_NOTSUP, "last_comp_version 18");
}

KTEST(fdt, accept_version_16_without_struct_size)
{
	struct w *w = tiny();
	struct fdt f;

	ASSERT(w);
	set_hdr(w, FDT_HDR_VERSION, 16);
	set_hdr(w, FDT_HDR_SIZE_STRUCT, 0xdeadbeef);   /* not a v16 field */
	ASSERT_EQ(open_w(&f, w), 0);
	EXPECT_EQ(f.size_struct, w->nst);
	EXPECT(fdt_path(&f, "/chosen") > 0);
	/* a newer version that stays compatible with 17 is read too */
	set_hdr(w, FDT_HDR_VERSION, 18);
	set_hdr(w, FDT_HDR_SIZE_STRUCT, w->nst);
	EXPECT_EQ(open_w(&f, w), 0);
}

KTEST(fdt, reject_totalsize_past_buffer)
{
	struct w *w = tiny();
	struct fdt f;

	ASSERT(w);
	EXPECT_EQ(fdt_open(&f, w->blob, w->size - 1), E_CORRUPT);
	EXPECT_REASON(&f, "larger than");
	expect_hdr_refused(KT_CTX, w, FDT_HDR_TOTALSIZE, 24, E_CORRUPT, "smaller than");
	/* bytes past totalsize are ignored */
	set_hdr(w, FDT_HDR_TOTALSIZE, w->size);
	EXPECT_EQ(fdt_open(&f, w->blob, w->size), 0);
}

KTEST(fdt, reject_struct_outside_blob)
{
	struct w *w = tiny();
	struct fdt f;

	ASSERT(w);
	set_hdr(w, FDT_HDR_OFF_STRUCT, 0xfffffff0);
	EXPECT_EQ(open_w(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "struct block");
	EXPECT_REASON(&f, "outside blob");
	set_hdr(w, FDT_HDR_OFF_STRUCT, hdr(w, FDT_HDR_OFF_STRINGS) - w->nst);
	set_hdr(w, FDT_HDR_SIZE_STRUCT, 0xfffffffc);   /* offset + size overflows 32 bits */
	EXPECT_EQ(open_w(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "outside blob");
}

KTEST(fdt, reject_struct_misaligned)
{
	struct w *w = tiny();

	ASSERT(w);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_OFF_STRUCT, hdr(w, FDT_HDR_OFF_STRUCT) + 2,
			   E_CORRUPT, "not 4-byte aligned");
	set_hdr(w, FDT_HDR_OFF_STRUCT, hdr(w, FDT_HDR_OFF_STRUCT) - 2);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_SIZE_STRUCT, w->nst - 2,
			   E_CORRUPT, "not a multiple of 4");
}

KTEST(fdt, reject_strings_outside_blob)
{
	struct w *w = tiny();

	ASSERT(w);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_SIZE_STRINGS, w->nstr + 1,
			   E_CORRUPT, "strings block");
}

KTEST(fdt, reject_rsvmap_outside_or_misaligned)
{
	struct w *w = tiny();

	ASSERT(w);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_OFF_RSVMAP, w->size,
			   E_CORRUPT, "reservation block offset");
	expect_hdr_refused(KT_CTX, w, FDT_HDR_OFF_RSVMAP, 44, E_CORRUPT, "not 8-byte aligned");
	expect_hdr_refused(KT_CTX, w, FDT_HDR_OFF_RSVMAP, (w->size - 8) & ~7u,
			   E_CORRUPT, "without terminator");
}

KTEST(fdt, reject_overlapping_blocks)
{
	struct w *w = tiny();
	struct fdt f;

	ASSERT(w);
	expect_hdr_refused(KT_CTX, w, FDT_HDR_OFF_STRINGS, hdr(w, FDT_HDR_OFF_STRUCT),
			   E_CORRUPT, "overlaps");
	set_hdr(w, FDT_HDR_OFF_STRINGS, w->size - w->nstr);
	set_hdr(w, FDT_HDR_OFF_RSVMAP, 8);   /* reservation entries inside the header */
	EXPECT_EQ(open_w(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "header block");
}

/* ---- structure block ------------------------------------------------------------- */

static int open_struct(struct fdt *f, struct w *w)
{
	if (!w_blob(w))
		return E_NOMEM;
	return open_w(f, w);
}

KTEST(fdt, reject_unterminated_node_name)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_u32(w, FDT_BEGIN_NODE);
	w_bytes(w, "abcd", 4);   /* no NUL before the block ends */
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "unterminated node name");
}

KTEST(fdt, reject_unterminated_property_name)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_cells(w, "abc", 1, 1);
	w_end(w);
	w_u32(w, FDT_END);
	ASSERT(w_blob(w));
	set_hdr(w, FDT_HDR_SIZE_STRINGS, w->nstr - 1);   /* cut the NUL off "abc" */
	EXPECT_EQ(open_w(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "unterminated property name");
}

KTEST(fdt, reject_unknown_token)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_u32(w, 0x42);
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "unknown token 0x42");
}

static void nest(struct w *w, unsigned levels)
{
	w_begin(w, "");
	for (unsigned i = 1; i < levels; i++)
		w_begin(w, "n");
	for (unsigned i = 0; i < levels; i++)
		w_end(w);
	w_u32(w, FDT_END);
}

KTEST(fdt, nesting_limit)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	nest(w, FDT_MAX_DEPTH);          /* root + 31 levels: the deepest allowed */
	EXPECT_EQ(open_struct(&f, w), 0);
	w = w_new();
	ASSERT(w);
	nest(w, FDT_MAX_DEPTH + 1);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "nested deeper than 32");
}

KTEST(fdt, reject_property_length_past_end)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_u32(w, FDT_PROP);
	w_u32(w, 4000);
	w_u32(w, w_name(w, "reg"));
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "property 'reg' length 4000 runs past struct block");
}

KTEST(fdt, reject_property_length_huge)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_u32(w, FDT_PROP);
	w_u32(w, 0xfffffffd);   /* would wrap a 32-bit offset */
	w_u32(w, w_name(w, "x"));
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "runs past struct block");
}

KTEST(fdt, reject_property_header_cut)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_u32(w, FDT_PROP);
	w_u32(w, 0);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "property header");
}

KTEST(fdt, reject_nameoff_outside_strings)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_name(w, "x");
	w_begin(w, "");
	w_u32(w, FDT_PROP);
	w_u32(w, 0);
	w_u32(w, 0x1000);
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "nameoff 0x1000 outside strings block");
}

KTEST(fdt, reject_missing_end)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_end(w);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "without FDT_END");
}

KTEST(fdt, reject_unbalanced_end_node)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_end(w);
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "unbalanced FDT_END_NODE");
}

KTEST(fdt, reject_unclosed_node)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_begin(w, "");
	w_begin(w, "child");
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "FDT_END inside node");
}

KTEST(fdt, reject_no_root_second_root_stray_property)
{
	struct w *w = w_new();
	struct fdt f;

	ASSERT(w);
	w_u32(w, FDT_NOP);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "no root node");

	w = w_new();
	ASSERT(w);
	w_begin(w, "");
	w_end(w);
	w_begin(w, "");
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "second root node");

	w = w_new();
	ASSERT(w);
	w_cells(w, "stray", 1, 1);
	w_begin(w, "");
	w_end(w);
	w_u32(w, FDT_END);
	EXPECT_EQ(open_struct(&f, w), E_CORRUPT);
	EXPECT_REASON(&f, "property 'stray' outside any node");
}

/* ---- navigation and values --------------------------------------------------------- */

static int count_events(void *arg, const struct fdt_event *ev)
{
	unsigned *n = arg;

	n[ev->kind]++;
	if (ev->depth > (int)n[3])
		n[3] = (unsigned)ev->depth;
	return 0;
}

KTEST(fdt, navigation_walk_and_values)
{
	struct w *w = w_new();
	struct fdt f;
	unsigned n[4] = { 0 };
	uint64_t v;
	uint32_t len, c;
	const void *p;
	int node;

	ASSERT(w);
	w_begin(w, "");
	w_u32(w, FDT_NOP);
	w_prop(w, "compatible", "a\0bb\0ccc", 9);
	w_begin(w, "soc");
	w_begin(w, "uart@1000");
	w_u64(w, "big", 0x123456789abcdefull);
	w_cells(w, "small", 1, 7);
	w_cells(w, "three", 3, 1, 2, 3);
	w_prop(w, "nonstr", "ab", 2);
	w_end(w);
	w_begin(w, "uart@2000");
	w_end(w);
	w_end(w);
	w_end(w);
	w_u32(w, FDT_END);
	ASSERT_EQ(open_struct(&f, w), 0);

	ASSERT_EQ(fdt_walk(&f, count_events, n), 0);
	EXPECT_EQ(n[FDT_EV_BEGIN], 4);
	EXPECT_EQ(n[FDT_EV_END], 4);
	EXPECT_EQ(n[FDT_EV_PROP], 5);
	EXPECT_EQ(n[3], 2);

	node = fdt_path(&f, "/soc/uart");   /* no unit address: first match */
	ASSERT(node > 0);
	EXPECT(!strcmp(fdt_name(&f, node), "uart@1000"));
	EXPECT_EQ(fdt_path(&f, "/soc/uart@2000"), fdt_next_sibling(&f, node));
	EXPECT_EQ(fdt_next_sibling(&f, fdt_path(&f, "/soc/uart@2000")), E_NOENT);
	EXPECT_EQ(fdt_first_child(&f, fdt_path(&f, "/soc/uart@2000")), E_NOENT);
	EXPECT_EQ(fdt_subnode(&f, fdt_path(&f, "/soc"), "uart@3000"), E_NOENT);
	EXPECT_EQ(fdt_path(&f, "/soc/ua"), E_NOENT);
	EXPECT_EQ(fdt_first_child(&f, 3), E_CORRUPT);   /* not a node handle */

	EXPECT_EQ(fdt_prop_uint(&f, node, "big", &v), 0);
	EXPECT_EQ(v, 0x123456789abcdefull);
	EXPECT_EQ(fdt_prop_uint(&f, node, "small", &v), 0);
	EXPECT_EQ(v, 7);
	EXPECT_EQ(fdt_prop_uint(&f, node, "three", &v), E_CORRUPT);
	EXPECT_EQ(fdt_prop_uint(&f, node, "none", &v), E_NOENT);
	EXPECT(fdt_prop_str(&f, node, "nonstr") == NULL);
	EXPECT_EQ(fdt_prop_cells(&f, node, "none", 2, &c), 0);
	EXPECT_EQ(c, 2);
	EXPECT_EQ(fdt_prop_cells(&f, node, "big", 2, &c), E_CORRUPT);

	p = fdt_prop(&f, fdt_root(&f), "compatible", &len);
	ASSERT(p != NULL);
	EXPECT(fdt_strlist_has(p, len, "bb"));
	EXPECT(fdt_strlist_has(p, len, "ccc"));
	EXPECT(!fdt_strlist_has(p, len, "b"));
	EXPECT(!fdt_strlist_has(p, len - 1, "ccc"));   /* unterminated last string */
}

KTEST(fdt, memreserve_entries)
{
	struct w *w = w_new();
	struct fdt f;
	uint64_t a, s;

	ASSERT(w);
	w_rsv(w, 0x80000000, 0x1000);
	w_rsv(w, 0xffffffff00000000ull, 0x2000);
	nest(w, 1);
	ASSERT_EQ(open_struct(&f, w), 0);
	ASSERT_EQ(f.n_rsv, 2);
	EXPECT_EQ(fdt_rsv(&f, 1, &a, &s), 0);
	EXPECT_EQ(a, 0xffffffff00000000ull);
	EXPECT_EQ(s, 0x2000);
	EXPECT_EQ(fdt_rsv(&f, 2, &a, &s), E_RANGE);
}

KTEST(fdt, formatter)
{
	char buf[64];

	fdt_fmt(buf, sizeof(buf), "%s %u %d %x %llx %llu %c%%", "a", 42u, -7, 0xbeefu,
		0x123456789ull, 18446744073709551615ull, 'z');
	EXPECT(!strcmp(buf, "a 42 -7 beef 123456789 18446744073709551615 z%"));
	fdt_fmt(buf, 4, "%s", "truncated");
	EXPECT(!strcmp(buf, "tru"));
}

/* ---- board description ------------------------------------------------------------- */

static void w_root(struct w *w, uint32_t ac, uint32_t sc)
{
	w_begin(w, "");
	if (ac)
		w_cells(w, "#address-cells", 1, ac);
	if (sc)
		w_cells(w, "#size-cells", 1, sc);
}

/* A new tree with its root open (w_root); NULL when out of memory. */
static struct w *w_board(uint32_t ac, uint32_t sc)
{
	struct w *w = w_new();

	if (w)
		w_root(w, ac, sc);
	return w;
}

/* Open /cpus with `ac` address cells (hart ids); the caller ends it. */
static void w_cpus(struct w *w, uint32_t ac)
{
	w_begin(w, "cpus");
	w_cells(w, "#address-cells", 1, ac);
}

/* A /memory node with one 2/2-cell entry. */
static void w_mem(struct w *w, const char *name, uint64_t start, uint64_t size, int numa)
{
	w_begin(w, name);
	w_str(w, "device_type", "memory");
	w_cells(w, "reg", 4, (uint32_t)(start >> 32), (uint32_t)start, (uint32_t)(size >> 32),
		(uint32_t)size);
	if (numa >= 0)
		w_cells(w, "numa-node-id", 1, (uint32_t)numa);
	w_end(w);
}

static void w_cpu(struct w *w, uint32_t id, const char *status, const char *isa, const char *mmu)
{
	char name[16] = "cpu@";

	fdt_fmt(name + 4, sizeof(name) - 4, "%x", id);
	w_begin(w, name);
	w_str(w, "device_type", "cpu");
	w_cells(w, "reg", 1, id);
	if (status)
		w_str(w, "status", status);
	if (isa)
		w_str(w, "riscv,isa", isa);
	if (mmu)
		w_str(w, "mmu-type", mmu);
	w_end(w);
}

static struct board *parse(struct w *w, int *rc)
{
	struct board *b = ktest_mem(sizeof(*b), 8);

	w_u32(w, FDT_END);
	if (!b || !w_blob(w)) {
		*rc = E_NOMEM;
		return NULL;
	}
	*rc = board_parse(b, w->blob, w->size);
	return b;
}

/* parse() that must succeed: the board, or NULL with the test failed. */
static struct board *parse_ok(struct ktest_ctx *kt__, struct w *w)
{
	int rc;
	struct board *b = parse(w, &rc);

	if (rc) {
		ktest_fail(kt__, __FILE__, __LINE__, "board_parse: %d (%s)", rc,
			   b ? b->reason : "no memory");
		return NULL;
	}
	return b;
}

KTEST(fdt, board_full_description)
{
	struct w *w = w_new();
	struct board *b;

	ASSERT(w);
	w_rsv(w, 0x80000000, 0x10000);
	w_rsv(w, 0x90000000, 0);            /* zero size: skipped */
	w_root(w, 2, 2);
	w_str(w, "model", "test,board");
	w_prop(w, "compatible", "test,a\0riscv-virtio", 20);
	w_begin(w, "chosen");
	w_str(w, "bootargs", "test=fdt");
	w_cells(w, "linux,initrd-start", 1, 0x88000000);
	w_cells(w, "linux,initrd-end", 1, 0x88100000);
	w_end(w);
	w_mem(w, "memory@80000000", 0x80000000, 0x40000000, 0);
	w_mem(w, "memory@100000000", 0x100000000ull, 0x40000000, 1);
	w_mem(w, "memory@200000000", 0x200000000ull, 0x1000, -1);
	w_begin(w, "memory@300000000");     /* no device_type: not RAM */
	w_cells(w, "reg", 4, 3, 0, 0, 0x1000);
	w_end(w);
	w_begin(w, "reserved-memory");
	w_cells(w, "#address-cells", 1, 1);
	w_cells(w, "#size-cells", 1, 1);
	w_begin(w, "sbi@80000000");
	w_cells(w, "reg", 4, 0x80000000, 0x40000, 0x80100000, 0x1000);
	w_end(w);
	w_begin(w, "pool");
	w_cells(w, "size", 1, 0x1000);
	w_end(w);
	w_end(w);
	w_cpus(w, 1);
	w_cells(w, "#size-cells", 1, 0);
	w_cells(w, "timebase-frequency", 1, 10000000);
	w_cpu(w, 3, "okay", "rv64imafdc_zicsr", "riscv,sv48");
	w_cpu(w, 0, "disabled", "rv64imac", "riscv,sv39");
	w_cpu(w, 1, NULL, "rv32imac", "riscv,sv32");
	w_cpu(w, 2, "ok", "rv64imac", NULL);
	w_cpu(w, 4, NULL, "rv64imac", "riscv,none");
	w_cpu(w, 5, NULL, "rv64imac", "riscv,sv32");
	w_cpu(w, 6, NULL, NULL, "riscv,sv39");
	w_cpu(w, 7, NULL, "rv64gc", "riscv,sv57");
	w_begin(w, "cpu-map");
	w_end(w);
	w_end(w);
	w_begin(w, "soc");
	w_cells(w, "#address-cells", 1, 2);
	w_begin(w, "test@100000");
	w_prop(w, "compatible", "sifive,test1\0sifive,test0", 26);
	w_cells(w, "reg", 4, 0, 0x100000, 0, 0x1000);
	w_end(w);
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);

	EXPECT(!strcmp(b->model, "test,board"));
	EXPECT(board_compatible(b, "riscv-virtio"));
	EXPECT(!board_compatible(b, "riscv"));
	EXPECT(!strcmp(b->bootargs, "test=fdt"));
	EXPECT_EQ(b->timebase, 10000000);
	EXPECT_EQ(b->finisher, 0x100000);

	ASSERT_EQ(b->nmem, 3);
	EXPECT_EQ(b->mem[0].start, 0x80000000);
	EXPECT_EQ(b->mem[0].end, 0xbfffffff);
	EXPECT_EQ(b->mem[0].node, 0);
	EXPECT_EQ(b->mem[1].start, 0x100000000ull);
	EXPECT_EQ(b->mem[1].node, 1);
	EXPECT_EQ(b->mem[2].end, 0x200000fffull);
	EXPECT_EQ(b->mem[2].node, -1);

	ASSERT_EQ(b->nrsv, 4);
	EXPECT(!strcmp(b->rsv[0].name, "memreserve"));
	EXPECT_EQ(b->rsv[0].end, 0x8000ffff);
	EXPECT(!strcmp(b->rsv[1].name, "sbi@80000000"));
	EXPECT_EQ(b->rsv[1].end, 0x8003ffff);
	EXPECT_EQ(b->rsv[2].start, 0x80100000);
	EXPECT(!strcmp(b->rsv[3].name, "initrd"));
	EXPECT_EQ(b->rsv[3].start, 0x88000000);
	EXPECT_EQ(b->rsv[3].end, 0x880fffff);
	EXPECT(b->has_initrd);
	EXPECT_EQ(b->initrd_end, 0x88100000);

	ASSERT_EQ(b->nharts, 8);
	EXPECT_EQ(b->harts[0].id, 3);
	EXPECT(b->harts[0].usable);
	EXPECT(!strcmp(b->harts[0].mmu, "riscv,sv48"));
	EXPECT(!strcmp(b->harts[0].isa, "rv64imafdc_zicsr"));
	EXPECT(!b->harts[1].usable);
	EXPECT(!strcmp(b->harts[1].reason, "status disabled"));
	EXPECT(!strcmp(b->harts[2].reason, "isa rv32imac"));
	EXPECT(b->harts[3].usable == false);
	EXPECT(!strcmp(b->harts[3].reason, "no mmu-type"));
	EXPECT(!strcmp(b->harts[4].reason, "mmu-type riscv,none"));
	EXPECT(!strcmp(b->harts[5].reason, "mmu-type riscv,sv32"));
	EXPECT(!strcmp(b->harts[6].reason, "no riscv,isa-base or riscv,isa"));
	EXPECT(b->harts[7].usable);
	EXPECT(!strcmp(b->harts[7].reason, ""));
}

KTEST(fdt, board_one_cell_64bit_initrd_per_cpu_timebase)
{
	struct w *w = w_board(1, 1);
	struct board *b;

	ASSERT(w);
	w_begin(w, "chosen");
	w_u64(w, "linux,initrd-start", 0x141000000ull);
	w_u64(w, "linux,initrd-end", 0x141000000ull);   /* empty: no reservation */
	w_end(w);
	w_begin(w, "memory");
	w_str(w, "device_type", "memory");
	w_cells(w, "reg", 6, 0x40000000, 0x1000000, 0x50000000, 0, 0xffff0000, 0x10000);
	w_end(w);
	w_cpus(w, 2);
	w_begin(w, "cpu@100000000");
	w_str(w, "device_type", "cpu");
	w_cells(w, "reg", 2, 1, 0);
	w_str(w, "riscv,isa", "RV64GC");
	w_str(w, "mmu-type", "riscv,sv39");
	w_u64(w, "timebase-frequency", 25000000);
	w_end(w);
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	ASSERT_EQ(b->nmem, 2);                      /* the zero-size entry is skipped */
	EXPECT_EQ(b->mem[0].end, 0x40ffffff);
	EXPECT_EQ(b->mem[1].start, 0xffff0000);
	EXPECT_EQ(b->mem[1].end, 0xffffffff);
	EXPECT_EQ(b->nrsv, 0);
	EXPECT(!b->has_initrd);
	ASSERT_EQ(b->nharts, 1);
	EXPECT_EQ(b->harts[0].id, 0x100000000ull);
	EXPECT(b->harts[0].usable);
	EXPECT_EQ(b->timebase, 25000000);
	EXPECT_EQ(b->finisher, 0);
	EXPECT_EQ(b->model[0], '\0');
}

KTEST(fdt, board_range_ending_at_top_is_fine)
{
	struct w *w = w_board(0, 0);
	struct board *b;
	int rc;

	ASSERT(w);   /* defaults: 2 address cells, 1 size cell */
	w_begin(w, "memory@ffffffff00000000");
	w_str(w, "device_type", "memory");
	w_cells(w, "reg", 3, 0xffffffff, 0, 0);
	w_end(w);
	w_mem(w, "memory@x", 0, 0, -1);   /* 2/2 cells under 2/1: 16 % 12 != 0 */
	w_end(w);
	b = parse(w, &rc);
	ASSERT(b);
	EXPECT_EQ(rc, E_CORRUPT);
	EXPECT_REASON(b, "reg length 16 not a multiple of 12");

	w = w_board(2, 2);
	ASSERT(w);
	w_mem(w, "memory@ffffffff00000000", 0xffffffff00000000ull, 0x100000000ull, -1);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	EXPECT_EQ(b->mem[0].end, UINT64_MAX);
}

/* A one-node board tree that must be rejected with `why`. */
#define EXPECT_BOARD_REJECT(w, why)                                           \
	do {                                                                  \
		int rc__;                                                     \
		struct board *b__ = parse(w, &rc__);                          \
		ASSERT(b__);                                                  \
		EXPECT_EQ(rc__, E_CORRUPT);                                   \
		EXPECT_REASON(b__, why);                                      \
	} while (0)

KTEST(fdt, board_reject_overlapping_memory)
{
	struct w *w = w_board(2, 2);

	ASSERT(w);
	w_mem(w, "memory@80000000", 0x80000000, 0x20000000, -1);
	w_mem(w, "memory@9fffffff", 0x9fffffff, 0x1000, -1);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "memory ranges 0x80000000-0x9fffffff and 0x9fffffff-0xa0000ffe overlap");
}

KTEST(fdt, board_reject_wrapping_ranges)
{
	struct w *w = w_board(2, 2);

	ASSERT(w);
	w_mem(w, "memory@ffffffff00000000", 0xffffffff00000000ull, 0x100000001ull, -1);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "wraps past 2^64");

	w = w_new();
	ASSERT(w);
	w_rsv(w, 0xfffffffffffff000ull, 0x2000);
	w_root(w, 2, 2);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "reserved range 0xfffffffffffff000 size 0x2000 wraps");
}

KTEST(fdt, board_reject_cells_outside_1_2)
{
	struct w *w = w_board(3, 1);

	ASSERT(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "#address-cells 3 not in 1..2");

	w = w_board(2, 1);
	ASSERT(w);
	w_begin(w, "reserved-memory");
	w_cells(w, "#address-cells", 1, 2);
	w_cells(w, "#size-cells", 1, 0);
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "'reserved-memory' #size-cells 0 not in 1..2");

	w = w_board(2, 2);   /* #address-cells 3 under an unrelated node (PCI) is fine */
	ASSERT(w);
	w_begin(w, "pci");
	w_cells(w, "#address-cells", 1, 3);
	w_end(w);
	w_end(w);
	{
		int rc;
		struct board *b = parse(w, &rc);
		ASSERT(b);
		EXPECT_EQ(rc, 0);
	}
}

KTEST(fdt, board_reject_limits)
{
	struct w *w = w_board(2, 2);

	ASSERT(w);
	for (unsigned i = 0; i <= BOARD_MAX_MEM; i++)
		w_mem(w, "memory", 0x100000000ull * (i + 1), 0x1000, -1);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "more than 32 memory ranges");

	/* Past every hart the board keeps or lists: refused, not truncated. */
	w = w_board(2, 2);
	ASSERT(w);
	w_cpus(w, 1);
	for (unsigned i = 0; i <= BOARD_MAX_HARTS + BOARD_MAX_LEFT_OUT; i++)
		w_cpu(w, i, NULL, "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	ASSERT(!w->overflow);
	EXPECT_BOARD_REJECT(w, "more than 512 harts left out (64 usable and 16 unusable kept)");
	/* One fewer is fine: 64 kept, 512 listed. */
	w = w_board(2, 2);
	ASSERT(w);
	w_cpus(w, 1);
	for (unsigned i = 0; i < BOARD_MAX_HARTS + BOARD_MAX_LEFT_OUT; i++)
		w_cpu(w, i, NULL, "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	struct board *b = parse_ok(KT_CTX, w);
	ASSERT(b);
	EXPECT_EQ(b->nleft_out, BOARD_MAX_LEFT_OUT);
	EXPECT_EQ(b->left_out[BOARD_MAX_LEFT_OUT - 1], BOARD_MAX_HARTS + BOARD_MAX_LEFT_OUT - 1);
}

/* ---- hart ids as they come: more harts than kept, sparse and large ids ---- */

/* A cpu node with a 2-cell id. */
static void w_cpu64(struct w *w, uint64_t id, const char *status)
{
	char name[24] = "cpu@";

	fdt_fmt(name + 4, sizeof(name) - 4, "%llx", (unsigned long long)id);
	w_begin(w, name);
	w_str(w, "device_type", "cpu");
	w_cells(w, "reg", 2, (uint32_t)(id >> 32), (uint32_t)id);
	if (status)
		w_str(w, "status", status);
	w_str(w, "riscv,isa", "rv64imac");
	w_str(w, "mmu-type", "riscv,sv39");
	w_end(w);
}

/* Is id among the board's kept harts (and usable as said)? */
static bool kept(const struct board *b, uint64_t id, bool usable)
{
	for (unsigned i = 0; i < b->nharts; i++)
		if (b->harts[i].id == id)
			return b->harts[i].usable == usable;
	return false;
}

static bool left(const struct board *b, uint64_t id)
{
	for (unsigned i = 0; i < b->nleft_out; i++)
		if (b->left_out[i] == id)
			return true;
	return false;
}

KTEST(fdt, board_70_harts_keeps_64_reports_6)
{
	struct w *w = w_board(2, 2);
	struct board *b;

	ASSERT(w);
	w_cpus(w, 1);
	for (unsigned i = 0; i < 70; i++)
		w_cpu(w, i, NULL, "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	EXPECT_EQ(b->nharts, 64);
	EXPECT_EQ(b->nusable, 64);
	EXPECT_EQ(b->nleft_out, 6);
	EXPECT_EQ(b->nleft_usable, 6);
	for (unsigned i = 0; i < 64; i++)
		EXPECT_EQ(b->harts[i].id, i);           /* tree order */
	for (unsigned i = 0; i < 6; i++)
		EXPECT_EQ(b->left_out[i], 64 + i);
	board_print(b);                             /* board: harts left out: 64-69 ... */
}

KTEST(fdt, board_sparse_ids_up_to_2_to_the_32)
{
	static const uint64_t ids[] = { 0xffffffffu, 7, 0x1000, 0x7fffffff, 0, 0xfffffffeu,
					0x80000000u, 0x12345678 };
	const unsigned n = sizeof(ids) / sizeof(ids[0]);
	struct w *w = w_board(2, 2);
	struct board *b;

	ASSERT(w);
	w_cpus(w, 1);
	for (unsigned i = 0; i < n; i++)
		w_cpu(w, (uint32_t)ids[i], NULL, "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	ASSERT_EQ(b->nharts, n);
	EXPECT_EQ(b->nleft_out, 0);
	for (unsigned i = 0; i < n; i++)
		EXPECT_EQ(b->harts[i].id, ids[i]);      /* as they come, unsorted */

	/* 70 sparse ids in two cells, the largest 2^64-1; the boot hart
	 * (largest 32-bit id) comes last and is kept in place of the 64th. */
	w = w_board(2, 2);
	ASSERT(w);
	w_cpus(w, 2);
	for (unsigned i = 0; i < 69; i++)
		w_cpu64(w, i == 0 ? UINT64_MAX : (uint64_t)i * 0x10000001ull, NULL);
	w_cpu64(w, 0xffffffffu, NULL);
	w_end(w);
	w_end(w);
	ASSERT(!w->overflow);
	w_u32(w, FDT_END);
	ASSERT(w_blob(w));
	b = ktest_mem(sizeof(*b), 8);
	ASSERT(b);
	ASSERT_EQ(board_parse_boot(b, w->blob, w->size, 0xffffffffu), 0);
	EXPECT_EQ(b->nharts, 64);
	EXPECT_EQ(b->nleft_out, 6);
	EXPECT(kept(b, UINT64_MAX, true));
	EXPECT(kept(b, 0xffffffffu, true));
	EXPECT_EQ(b->harts[63].id, 0xffffffffu);   /* at the end: tree order */
	EXPECT(left(b, 63ull * 0x10000001ull));   /* the last kept before it */
	for (unsigned i = 64; i < 69; i++)
		EXPECT(left(b, (uint64_t)i * 0x10000001ull));
	for (unsigned i = 1; i < b->nleft_out; i++)
		EXPECT(b->left_out[i - 1] < b->left_out[i]);
	board_print(b);

	/* A duplicate of a left-out id is still found. */
	w = w_board(2, 2);
	ASSERT(w);
	w_cpus(w, 1);
	for (unsigned i = 0; i < 66; i++)
		w_cpu(w, i, NULL, "rv64imac", "riscv,sv39");
	w_cpu(w, 65, NULL, "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "duplicate hart id 65");
}

KTEST(fdt, board_66_usable_and_23_unusable)
{
	struct w *w = w_board(2, 2);
	struct board *b;
	unsigned u = 0, x = 0;

	ASSERT(w);
	w_cpus(w, 1);
	/* Interleaved: every fourth node is disabled, 89 in all. */
	for (unsigned i = 0; i < 89; i++) {
		bool off = i % 4 == 3 && x < 23;
		if (!off && u == 66)
			off = true;
		w_cpu(w, 1000 + i, off ? "disabled" : NULL, "rv64imac", "riscv,sv39");
		if (off)
			x++;
		else
			u++;
	}
	w_end(w);
	w_end(w);
	ASSERT_EQ(u, 66);
	ASSERT_EQ(x, 23);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	EXPECT_EQ(b->nusable, 64);
	EXPECT_EQ(b->nharts, 64 + BOARD_MAX_UNUSABLE);
	EXPECT_EQ(b->nleft_out, 2 + 23 - BOARD_MAX_UNUSABLE);
	EXPECT_EQ(b->nleft_usable, 2);
	for (unsigned i = 0; i < b->nharts; i++)
		if (!b->harts[i].usable)
			EXPECT(!strcmp(b->harts[i].reason, "status disabled"));
	for (unsigned i = 1; i < b->nharts; i++)
		EXPECT(b->harts[i - 1].id < b->harts[i].id);   /* tree order */
	board_print(b);
}

KTEST(fdt, board_keeps_a_large_boot_hart)
{
	struct w *w = w_board(2, 2);
	struct board *b;

	ASSERT(w);
	/* Header boot_cpuid_phys names the last of 70 harts. */
	w_cpus(w, 1);
	for (unsigned i = 0; i < 69; i++)
		w_cpu(w, i, NULL, "rv64imac", "riscv,sv39");
	w_cpu(w, 0xfffffff0u, NULL, "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	w_u32(w, FDT_END);
	ASSERT(w_blob(w));
	be32(w->blob + 28, 0xfffffff0u);            /* boot_cpuid_phys */
	b = ktest_mem(sizeof(*b), 8);
	ASSERT(b);
	ASSERT_EQ(board_parse(b, w->blob, w->size), 0);
	EXPECT_EQ(b->boot_cpuid, 0xfffffff0u);
	EXPECT(kept(b, 0xfffffff0u, true));
	EXPECT(left(b, 63));
	EXPECT_EQ(b->nharts, 64);
	EXPECT_EQ(b->nleft_out, 6);
	/* Without it named, the first 64 are kept and it is left out. */
	ASSERT_EQ(board_parse_boot(b, w->blob, w->size, 0), 0);
	EXPECT(kept(b, 63, true));
	EXPECT(left(b, 0xfffffff0u));
	/* An unusable boot hart past the unusable ones kept is kept too (the
	 * kernel then refuses it by its reason, not as missing). */
	w = w_board(2, 2);
	ASSERT(w);
	w_cpus(w, 1);
	for (unsigned i = 0; i < BOARD_MAX_UNUSABLE + 2; i++)
		w_cpu(w, i, "disabled", "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	w_u32(w, FDT_END);
	ASSERT(w_blob(w));
	ASSERT_EQ(board_parse_boot(b, w->blob, w->size, BOARD_MAX_UNUSABLE + 1), 0);
	EXPECT(kept(b, BOARD_MAX_UNUSABLE + 1, false));
	EXPECT(left(b, BOARD_MAX_UNUSABLE - 1));
	EXPECT(left(b, BOARD_MAX_UNUSABLE));
	EXPECT_EQ(b->nleft_usable, 0);
}

KTEST(fdt, board_reject_bad_harts_and_chosen)
{
	struct w *w = w_board(2, 2);

	ASSERT(w);
	w_cpus(w, 1);
	w_cpu(w, 1, NULL, "rv64imac", "riscv,sv39");
	w_cpu(w, 1, NULL, "rv64imac", "riscv,sv39");
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "duplicate hart id 1");

	w = w_board(2, 2);
	ASSERT(w);
	w_begin(w, "cpus");
	w_begin(w, "cpu@0");
	w_str(w, "device_type", "cpu");
	w_end(w);
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "cpu node 'cpu@0' has no reg");

	w = w_board(2, 2);
	ASSERT(w);
	w_begin(w, "chosen");
	w_cells(w, "linux,initrd-start", 1, 0x2000);
	w_cells(w, "linux,initrd-end", 1, 0x1000);
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "initrd end 0x1000 before start 0x2000");

	w = w_board(2, 2);
	ASSERT(w);
	w_begin(w, "chosen");
	w_cells(w, "linux,initrd-start", 1, 0x2000);
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "linux,initrd-start/end missing");

	w = w_board(2, 2);
	ASSERT(w);
	w_begin(w, "chosen");
	w_prop(w, "bootargs", "abc", 3);
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "bootargs not a string");
}

KTEST(fdt, board_passes_parser_errors_through)
{
	struct board *b = ktest_mem(sizeof(*b), 8);
	struct w *w = tiny();

	ASSERT(b && w);
	set_hdr(w, FDT_HDR_MAGIC, 0xd00dfeee);
	EXPECT_EQ(board_parse(b, w->blob, w->size), E_CORRUPT);
	EXPECT_REASON(b, "bad magic 0xd00dfeee");
	EXPECT_EQ(board_parse(b, NULL, 100), E_INVAL);
	EXPECT_EQ(board_parse(NULL, w->blob, w->size), E_INVAL);
}

/* A cpu node in the current ISA binding: base + a string list. */
static void w_cpu_ext(struct w *w, uint32_t id, const char *base, const char *ext,
		      uint32_t extlen, const char *mmu)
{
	char name[16] = "cpu@";

	fdt_fmt(name + 4, sizeof(name) - 4, "%x", id);
	w_begin(w, name);
	w_str(w, "device_type", "cpu");
	w_cells(w, "reg", 1, id);
	if (base)
		w_str(w, "riscv,isa-base", base);
	if (ext)
		w_prop(w, "riscv,isa-extensions", ext, extlen);
	if (mmu)
		w_str(w, "mmu-type", mmu);
	w_end(w);
}

#define EXTS "i\0m\0a\0f\0d\0c\0zicsr\0zifencei\0sstc"

KTEST(fdt, board_isa_extensions_binding)
{
	struct w *w = w_board(2, 2);
	struct board *b;

	ASSERT(w);
	w_cpus(w, 1);
	w_cpu(w, 0, NULL, "rv64imafdc_zicsr_zifencei_sstc", "riscv,sv39");
	w_cpu_ext(w, 1, "rv64i", EXTS, sizeof(EXTS), "riscv,sv39");
	w_cpu_ext(w, 2, "rv64i", EXTS, sizeof(EXTS), NULL);              /* no MMU */
	w_cpu_ext(w, 3, NULL, EXTS, sizeof(EXTS), "riscv,sv39");         /* no base */
	w_cpu_ext(w, 4, "rv32i", "i\0m", 4, "riscv,sv32");
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	ASSERT_EQ(b->nharts, 5u);
	/* both bindings give the same string */
	EXPECT(!strcmp(b->harts[0].isa, "rv64imafdc_zicsr_zifencei_sstc"));
	EXPECT(!strcmp(b->harts[1].isa, b->harts[0].isa));
	EXPECT(b->harts[1].usable);
	EXPECT(!b->harts[2].usable);
	EXPECT(!strcmp(b->harts[2].reason, "no mmu-type"));
	EXPECT(!strcmp(b->harts[3].reason, "no riscv,isa-base or riscv,isa"));
	EXPECT(!strcmp(b->harts[4].reason, "isa rv32im"));
}

KTEST(fdt, board_isa_extensions_reject)
{
	static char many[BOARD_ISA_MAX * 2];
	struct w *w = w_board(2, 2);

	ASSERT(w);
	w_cpus(w, 1);
	w_cpu_ext(w, 0, "rv64i", "i\0m", 3, "riscv,sv39");              /* no final NUL */
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "cpu node 'cpu@0' riscv,isa-extensions is not a string list");

	/* 100 x "zabc\0": 500 bytes of extensions, the string would be longer */
	for (unsigned i = 0; i < 100; i++)
		memcpy(many + 5 * i, "zabc", 5);
	w = w_board(2, 2);
	ASSERT(w);
	w_cpus(w, 1);
	w_cpu_ext(w, 0, "rv64i", many, 500, "riscv,sv39");
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "cpu node 'cpu@0' ISA longer than 255 bytes");
}

KTEST(fdt, board_two_cell_hart_ids_and_fail_status)
{
	struct w *w = w_board(2, 2);
	struct board *b;

	ASSERT(w);
	w_cpus(w, 2);
	w_begin(w, "cpu@100000002");
	w_str(w, "device_type", "cpu");
	w_cells(w, "reg", 2, 1, 2);
	w_str(w, "riscv,isa", "rv64imac");
	w_str(w, "mmu-type", "riscv,sv48");
	w_end(w);
	w_begin(w, "cpu@3");
	w_str(w, "device_type", "cpu");
	w_cells(w, "reg", 2, 0, 3);
	w_str(w, "status", "fail-sss");
	w_str(w, "riscv,isa", "rv64imac");
	w_str(w, "mmu-type", "riscv,sv39");
	w_end(w);
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	ASSERT_EQ(b->nharts, 2u);
	EXPECT_EQ(b->harts[0].id, 0x100000002ull);
	EXPECT(b->harts[0].usable);
	EXPECT_EQ(b->harts[1].id, 3u);
	EXPECT(!strcmp(b->harts[1].reason, "status fail-sss"));
}

KTEST(fdt, board_dynamic_reservations)
{
	struct w *w = w_board(2, 2);
	struct board *b;

	ASSERT(w);
	w_begin(w, "reserved-memory");
	w_cells(w, "#address-cells", 1, 2);
	w_cells(w, "#size-cells", 1, 2);
	w_begin(w, "cma");
	w_cells(w, "size", 2, 0, 0x2000000);
	w_cells(w, "alignment", 2, 0, 0x400000);
	w_cells(w, "alloc-ranges", 8, 0, 0x80000000, 0, 0x20000000, 0, 0xa0000000, 0, 0x1000);
	w_end(w);
	w_begin(w, "plain");
	w_cells(w, "size", 2, 0, 0x1000);
	w_end(w);
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	EXPECT_EQ(b->nrsv, 0u);                 /* nothing is reserved for them */
	ASSERT_EQ(b->ndyn, 2u);
	EXPECT(!strcmp(b->dyn[0].name, "cma"));
	EXPECT_EQ(b->dyn[0].size, 0x2000000u);
	EXPECT_EQ(b->dyn[0].align, 0x400000u);
	EXPECT_EQ(b->dyn[0].nranges, 2u);
	EXPECT_EQ(b->dyn[1].align, 0u);
	EXPECT_EQ(b->dyn[1].nranges, 0u);

	w = w_board(2, 2);
	ASSERT(w);
	w_begin(w, "reserved-memory");
	w_begin(w, "bad");
	w_cells(w, "size", 2, 0, 0x1000);     /* #size-cells defaults to 1 */
	w_end(w);
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "node 'bad' size is not 1 cells");

	w = w_board(2, 2);
	ASSERT(w);
	w_begin(w, "reserved-memory");
	w_begin(w, "bad");
	w_cells(w, "size", 1, 0x1000);
	w_cells(w, "alloc-ranges", 2, 0, 0x1000);
	w_end(w);
	w_end(w);
	w_end(w);
	EXPECT_BOARD_REJECT(w, "node 'bad' alloc-ranges length 8 not a multiple of 12");
}

/* The HiFive Unmatched (FU740) as its tree describes it, hart 0 in the
 * riscv,isa binding and harts 1-4 in the current one (tests/fdt has the
 * full trees for the host corpus). */
KTEST(fdt, board_hifive_unmatched_shape)
{
	struct w *w = w_board(2, 2);
	struct board *b;

	ASSERT(w);
	w_str(w, "model", "SiFive HiFive Unmatched A00");
	w_begin(w, "reserved-memory");
	w_cells(w, "#address-cells", 1, 2);
	w_cells(w, "#size-cells", 1, 2);
	w_begin(w, "mmode_resv0@80000000");
	w_cells(w, "reg", 4, 0, 0x80000000, 0, 0x80000);
	w_end(w);
	w_end(w);
	w_mem(w, "memory@80000000", 0x80000000, 16ull << 30, -1);
	w_cpus(w, 1);
	w_cells(w, "timebase-frequency", 1, 1000000);
	w_cpu(w, 0, "disabled", "rv64imac", NULL);                        /* S7 */
	for (uint32_t id = 1; id <= 4; id++)                              /* U74 */
		w_cpu_ext(w, id, "rv64i", "i\0m\0a\0f\0d\0c\0zicsr\0zifencei",
			  sizeof("i\0m\0a\0f\0d\0c\0zicsr\0zifencei"), "riscv,sv39");
	w_end(w);
	w_end(w);
	b = parse_ok(KT_CTX, w);
	ASSERT(b);
	EXPECT_EQ(b->timebase, 1000000);
	ASSERT_EQ(b->nmem, 1u);
	EXPECT_EQ(b->mem[0].end, 0x47fffffffull);
	ASSERT_EQ(b->nrsv, 1u);
	EXPECT_EQ(b->rsv[0].end, 0x8007ffffull);
	ASSERT_EQ(b->nharts, 5u);
	EXPECT(!strcmp(b->harts[0].reason, "status disabled"));
	for (unsigned i = 1; i <= 4; i++) {
		EXPECT(b->harts[i].usable);
		EXPECT(!strcmp(b->harts[i].isa, "rv64imafdc_zicsr_zifencei"));
	}
}
