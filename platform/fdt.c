/* fdt.c - read-only flattened device tree parser, bounds-checked on every
 * read. fdt_open() validates the whole blob with the same token stepper that
 * the navigation calls use afterwards, so a check exists in one place only.
 */
#include "dtb.h"

#include <stdarg.h>
#include <string.h>

/* ---- reason formatting ------------------------------------------------- */

struct out {
	char *buf;
	size_t cap, n;
};

static void put(struct out *o, char c)
{
	if (o->n + 1 < o->cap)
		o->buf[o->n++] = c;
}

static void put_num(struct out *o, unsigned long long v, unsigned base)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (i)
		put(o, tmp[--i]);
}

static void vfmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
	struct out o = { buf, cap, 0 };

	if (!cap)
		return;
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == 's') {
			const char *s = va_arg(ap, const char *);
			for (s = s ? s : "(null)"; *s; s++)
				put(&o, *s);
		} else if (*fmt == 'c') {
			put(&o, (char)va_arg(ap, int));
		} else if (*fmt == 'u' || *fmt == 'x') {
			put_num(&o, va_arg(ap, unsigned), *fmt == 'u' ? 10 : 16);
		} else if (*fmt == 'd') {
			int v = va_arg(ap, int);
			if (v < 0)
				put(&o, '-');
			put_num(&o, v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10);
		} else if (fmt[0] == 'l' && fmt[1] == 'l' && (fmt[2] == 'u' || fmt[2] == 'x')) {
			put_num(&o, va_arg(ap, unsigned long long), fmt[2] == 'u' ? 10 : 16);
			fmt += 2;
		} else if (*fmt == '%') {
			put(&o, '%');
		} else {
			break;   /* unknown conversion: stop rather than misread args */
		}
	}
	buf[o.n] = '\0';
}

void fdt_fmt(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfmt(buf, cap, fmt, ap);
	va_end(ap);
}

/* Record a reason (when there is a buffer for it) and return rc. */
static int bad(char *why, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why) {
		va_start(ap, fmt);
		vfmt(why, FDT_REASON_MAX, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- values -------------------------------------------------------------- */

uint32_t fdt_u32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t fdt_u64(const void *p)
{
	return (uint64_t)fdt_u32(p) << 32 | fdt_u32((const uint8_t *)p + 4);
}

uint64_t fdt_cells(const void *p, uint32_t n)
{
	return n == 2 ? fdt_u64(p) : fdt_u32(p);
}

bool fdt_strlist_has(const void *val, uint32_t len, const char *s)
{
	const char *p = val, *end = p + len;
	size_t n = strlen(s);

	while (p < end) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		if (!z)
			return false;
		if ((size_t)(z - p) == n && !memcmp(p, s, n))
			return true;
		p = z + 1;
	}
	return false;
}

static uint32_t align4(uint32_t x)
{
	return (x + 3u) & ~3u;
}

/* ---- the token stepper ----------------------------------------------------- */

struct tok {
	uint32_t type;
	uint32_t next;         /* offset of the following token */
	const char *name;      /* BEGIN_NODE: node name; PROP: property name */
	const uint8_t *val;    /* PROP */
	uint32_t len;          /* PROP */
};

static int step_prop(const struct fdt *f, uint32_t off, struct tok *t, char *why)
{
	const uint8_t *s = f->blob + f->off_struct;
	const char *strs = (const char *)f->blob + f->off_strings;
	uint32_t nameoff, room;

	if (f->size_struct - off < 12)
		return bad(why, E_CORRUPT, "property header at struct offset 0x%x runs past struct block", off);
	t->len = fdt_u32(s + off + 4);
	nameoff = fdt_u32(s + off + 8);
	if (nameoff >= f->size_strings)
		return bad(why, E_CORRUPT, "property nameoff 0x%x outside strings block (size 0x%x)",
			   nameoff, f->size_strings);
	if (!memchr(strs + nameoff, '\0', f->size_strings - nameoff))
		return bad(why, E_CORRUPT, "unterminated property name at strings offset 0x%x", nameoff);
	t->name = strs + nameoff;
	room = f->size_struct - off - 12;
	if (t->len > room)
		return bad(why, E_CORRUPT, "property '%s' length %u runs past struct block", t->name, t->len);
	t->val = s + off + 12;
	t->next = off + 12 + align4(t->len);   /* size_struct % 4 == 0: no overflow */
	return 0;
}

/* Decode the token at struct offset `off` (checked to be inside the block). */
static int step(const struct fdt *f, uint32_t off, struct tok *t, char *why)
{
	const uint8_t *s = f->blob + f->off_struct;
	const uint8_t *z;

	if (off & 3)
		return bad(why, E_CORRUPT, "token at struct offset 0x%x not 4-byte aligned", off);
	if (off >= f->size_struct || f->size_struct - off < 4)
		return bad(why, E_CORRUPT, "struct block ends without FDT_END");
	t->type = fdt_u32(s + off);
	t->name = NULL;
	t->val = NULL;
	t->len = 0;
	switch (t->type) {
	case FDT_BEGIN_NODE:
		z = memchr(s + off + 4, '\0', f->size_struct - off - 4);
		if (!z)
			return bad(why, E_CORRUPT, "unterminated node name at struct offset 0x%x", off);
		t->name = (const char *)s + off + 4;
		t->next = align4((uint32_t)(z - s) + 1);
		return 0;
	case FDT_PROP:
		return step_prop(f, off, t, why);
	case FDT_END_NODE:
	case FDT_NOP:
	case FDT_END:
		t->next = off + 4;
		return 0;
	default:
		return bad(why, E_CORRUPT, "unknown token 0x%x at struct offset 0x%x", t->type, off);
	}
}

/* The one full walk: structure checks (nesting, balance, FDT_END) plus the
 * optional visitor. `why` is non-NULL only from fdt_open. */
static int walk(const struct fdt *f, fdt_visit_fn fn, void *arg, char *why)
{
	int stack[FDT_MAX_DEPTH];
	const char *names[FDT_MAX_DEPTH];
	struct fdt_event ev;
	struct tok t;
	uint32_t off = 0;
	int depth = -1, rc;
	bool root_done = false;

	for (;; off = t.next) {
		rc = step(f, off, &t, why);
		if (rc)
			return rc;
		ev.val = NULL;
		ev.len = 0;
		switch (t.type) {
		case FDT_BEGIN_NODE:
			if (root_done)
				return bad(why, E_CORRUPT, "second root node '%s' at struct offset 0x%x",
					   t.name, off);
			if (depth + 1 >= FDT_MAX_DEPTH)
				return bad(why, E_CORRUPT, "node '%s' nested deeper than %d levels",
					   t.name, FDT_MAX_DEPTH);
			depth++;
			stack[depth] = (int)off;
			names[depth] = t.name;
			ev = (struct fdt_event){ FDT_EV_BEGIN, depth, (int)off, t.name, NULL, 0 };
			break;
		case FDT_END_NODE:
			if (depth < 0)
				return bad(why, E_CORRUPT, "unbalanced FDT_END_NODE at struct offset 0x%x", off);
			ev = (struct fdt_event){ FDT_EV_END, depth, stack[depth], names[depth], NULL, 0 };
			if (--depth < 0)
				root_done = true;
			break;
		case FDT_PROP:
			if (depth < 0)
				return bad(why, E_CORRUPT, "property '%s' outside any node", t.name);
			ev = (struct fdt_event){ FDT_EV_PROP, depth, stack[depth], t.name, t.val, t.len };
			break;
		case FDT_NOP:
			continue;
		default: /* FDT_END; bytes after it inside the block are ignored */
			if (depth >= 0)
				return bad(why, E_CORRUPT, "FDT_END inside node '%s' (unbalanced)", names[depth]);
			if (!root_done)
				return bad(why, E_CORRUPT, "no root node");
			return 0;
		}
		if (fn && (rc = fn(arg, &ev)) != 0)
			return rc;
	}
}

int fdt_walk(const struct fdt *f, fdt_visit_fn fn, void *arg)
{
	if (!f || !f->blob)
		return E_INVAL;
	return walk(f, fn, arg, NULL);
}

/* ---- header and block layout ------------------------------------------------ */

struct block {
	const char *name;
	uint64_t start, size;
};

static int check_overlap(const struct block *b, int n, char *why)
{
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			if (!b[i].size || !b[j].size)
				continue;
			if (b[i].start < b[j].start + b[j].size && b[j].start < b[i].start + b[i].size)
				return bad(why, E_CORRUPT, "%s block [0x%llx,0x%llx) overlaps %s block [0x%llx,0x%llx)",
					   b[i].name, (unsigned long long)b[i].start,
					   (unsigned long long)(b[i].start + b[i].size), b[j].name,
					   (unsigned long long)b[j].start,
					   (unsigned long long)(b[j].start + b[j].size));
		}
	return 0;
}

/* Count reservation entries up to the (0, 0) terminator, inside the blob. */
static int scan_rsvmap(struct fdt *f)
{
	uint64_t off = f->off_rsv;

	if (f->off_rsv & 7)
		return bad(f->reason, E_CORRUPT, "memory reservation block offset 0x%x not 8-byte aligned",
			   f->off_rsv);
	for (f->n_rsv = 0;; f->n_rsv++, off += 16) {
		if (off + 16 > f->totalsize)
			return bad(f->reason, E_CORRUPT,
				   "memory reservation block at 0x%x runs past totalsize %u without terminator",
				   f->off_rsv, f->totalsize);
		if (!fdt_u64(f->blob + off) && !fdt_u64(f->blob + off + 8))
			return 0;
	}
}

/* Version 16 has no size_dt_struct: the block runs to the next block or the
 * end of the blob. */
static uint32_t v16_struct_size(const struct fdt *f)
{
	uint32_t lim = f->totalsize;

	if (f->off_strings > f->off_struct && f->off_strings < lim)
		lim = f->off_strings;
	if (f->off_rsv > f->off_struct && f->off_rsv < lim)
		lim = f->off_rsv;
	return lim > f->off_struct ? (lim - f->off_struct) & ~3u : 0;
}

static int check_blocks(struct fdt *f, uint32_t hdr)
{
	struct block b[4];
	int rc;

	if (f->off_struct & 3)
		return bad(f->reason, E_CORRUPT, "struct block offset 0x%x not 4-byte aligned", f->off_struct);
	if (f->size_struct & 3)
		return bad(f->reason, E_CORRUPT, "struct block size 0x%x not a multiple of 4", f->size_struct);
	if ((uint64_t)f->off_struct + f->size_struct > f->totalsize)
		return bad(f->reason, E_CORRUPT, "struct block 0x%x+0x%x outside blob (totalsize 0x%x)",
			   f->off_struct, f->size_struct, f->totalsize);
	if ((uint64_t)f->off_strings + f->size_strings > f->totalsize)
		return bad(f->reason, E_CORRUPT, "strings block 0x%x+0x%x outside blob (totalsize 0x%x)",
			   f->off_strings, f->size_strings, f->totalsize);
	if (f->off_rsv >= f->totalsize)
		return bad(f->reason, E_CORRUPT, "memory reservation block offset 0x%x outside blob (totalsize 0x%x)",
			   f->off_rsv, f->totalsize);
	rc = scan_rsvmap(f);
	if (rc)
		return rc;
	b[0] = (struct block){ "header", 0, hdr };
	b[1] = (struct block){ "memory reservation", f->off_rsv, 16ull * (f->n_rsv + 1) };
	b[2] = (struct block){ "struct", f->off_struct, f->size_struct };
	b[3] = (struct block){ "strings", f->off_strings, f->size_strings };
	return check_overlap(b, 4, f->reason);
}

static int check_header(struct fdt *f, size_t len)
{
	const uint8_t *h = f->blob;
	uint32_t magic, last_comp, hdr;

	if (len < 4)
		return bad(f->reason, E_CORRUPT, "blob of %u bytes too short for a header", (unsigned)len);
	magic = fdt_u32(h + FDT_HDR_MAGIC);
	if (magic != FDT_MAGIC)
		return bad(f->reason, E_CORRUPT, "bad magic 0x%x", magic);
	if (len < FDT_HDR_SIZE_V16)
		return bad(f->reason, E_CORRUPT, "blob of %u bytes too short for a header", (unsigned)len);
	f->version = fdt_u32(h + FDT_HDR_VERSION);
	last_comp = fdt_u32(h + FDT_HDR_LAST_COMP);
	if (f->version < FDT_MIN_VERSION)
		return bad(f->reason, E_NOTSUP, "unsupported version %u (need >= %u)", f->version,
			   FDT_MIN_VERSION);
	if (last_comp > FDT_VERSION)
		return bad(f->reason, E_NOTSUP, "unsupported last_comp_version %u (need <= %u)",
			   last_comp, FDT_VERSION);
	hdr = f->version >= 17 ? FDT_HDR_SIZE_V17 : FDT_HDR_SIZE_V16;
	f->totalsize = fdt_u32(h + FDT_HDR_TOTALSIZE);
	if (f->totalsize > len)
		return bad(f->reason, E_CORRUPT, "totalsize %u larger than the %llu bytes given",
			   f->totalsize, (unsigned long long)len);
	if (f->totalsize > 0x7fffffffu)   /* node handles are ints */
		return bad(f->reason, E_CORRUPT, "totalsize %u too large", f->totalsize);
	if (f->totalsize < hdr)
		return bad(f->reason, E_CORRUPT, "totalsize %u smaller than the %u-byte header",
			   f->totalsize, hdr);
	f->off_struct = fdt_u32(h + FDT_HDR_OFF_STRUCT);
	f->off_strings = fdt_u32(h + FDT_HDR_OFF_STRINGS);
	f->off_rsv = fdt_u32(h + FDT_HDR_OFF_RSVMAP);
	f->boot_cpuid = fdt_u32(h + FDT_HDR_BOOT_CPUID);
	f->size_strings = fdt_u32(h + FDT_HDR_SIZE_STRINGS);
	f->size_struct = hdr == FDT_HDR_SIZE_V17 ? fdt_u32(h + FDT_HDR_SIZE_STRUCT) : v16_struct_size(f);
	return check_blocks(f, hdr);
}

int fdt_open(struct fdt *f, const void *blob, size_t len)
{
	int rc;

	if (!f)
		return E_INVAL;
	memset(f, 0, sizeof(*f));
	if (!blob)
		return bad(f->reason, E_INVAL, "no blob");
	f->blob = blob;
	rc = check_header(f, len);
	if (!rc)
		rc = walk(f, NULL, NULL, f->reason);
	if (rc) {
		f->blob = NULL;   /* an unchecked blob is never navigated */
		return rc;
	}
	return 0;
}

uint32_t fdt_blob_size(const void *blob)
{
	const uint8_t *h = blob;

	if (!h || fdt_u32(h + FDT_HDR_MAGIC) != FDT_MAGIC)
		return 0;
	return fdt_u32(h + FDT_HDR_TOTALSIZE);
}

int fdt_rsv(const struct fdt *f, uint32_t i, uint64_t *addr, uint64_t *size)
{
	const uint8_t *e;

	if (!f || !f->blob || i >= f->n_rsv)
		return E_RANGE;
	e = f->blob + f->off_rsv + 16 * (uint64_t)i;
	*addr = fdt_u64(e);
	*size = fdt_u64(e + 8);
	return 0;
}

/* ---- navigation ------------------------------------------------------------------ */

/* Offset of the first token after the BEGIN_NODE at `node`. */
static int node_body(const struct fdt *f, int node, struct tok *t)
{
	if (!f || !f->blob || node < 0)
		return E_CORRUPT;
	if (step(f, (uint32_t)node, t, NULL) || t->type != FDT_BEGIN_NODE)
		return E_CORRUPT;
	return (int)t->next;
}

int fdt_root(const struct fdt *f)
{
	struct tok t;
	uint32_t off = 0;

	if (!f || !f->blob)
		return E_CORRUPT;
	for (;; off = t.next) {
		if (step(f, off, &t, NULL))
			return E_CORRUPT;
		if (t.type == FDT_BEGIN_NODE)
			return (int)off;
		if (t.type != FDT_NOP)
			return E_NOENT;
	}
}

const char *fdt_name(const struct fdt *f, int node)
{
	struct tok t;

	return node_body(f, node, &t) < 0 ? NULL : t.name;
}

int fdt_first_child(const struct fdt *f, int node)
{
	struct tok t;
	int off = node_body(f, node, &t);

	for (; off >= 0; off = (int)t.next) {
		if (step(f, (uint32_t)off, &t, NULL))
			return E_CORRUPT;
		if (t.type == FDT_BEGIN_NODE)
			return off;
		if (t.type != FDT_PROP && t.type != FDT_NOP)
			return E_NOENT;
	}
	return off;
}

int fdt_next_sibling(const struct fdt *f, int node)
{
	struct tok t;
	int off = node_body(f, node, &t), depth = 1;

	if (off < 0)
		return off;
	/* Skip the rest of this node's subtree. */
	for (; depth > 0; off = (int)t.next) {
		if (step(f, (uint32_t)off, &t, NULL) || t.type == FDT_END)
			return E_CORRUPT;
		if (t.type == FDT_BEGIN_NODE)
			depth++;
		else if (t.type == FDT_END_NODE)
			depth--;
	}
	for (;; off = (int)t.next) {
		if (step(f, (uint32_t)off, &t, NULL))
			return E_CORRUPT;
		if (t.type == FDT_BEGIN_NODE)
			return off;
		if (t.type != FDT_NOP)
			return E_NOENT;
	}
}

static bool name_matches(const char *node, const char *name, size_t n)
{
	if (strncmp(node, name, n))
		return false;
	if (node[n] == '\0')
		return true;
	return node[n] == '@' && !memchr(name, '@', n);
}

static int subnode_n(const struct fdt *f, int parent, const char *name, size_t n)
{
	int c;

	for (c = fdt_first_child(f, parent); c >= 0; c = fdt_next_sibling(f, c))
		if (name_matches(fdt_name(f, c), name, n))
			return c;
	return c;
}

int fdt_subnode(const struct fdt *f, int parent, const char *name)
{
	if (!name)
		return E_INVAL;
	return subnode_n(f, parent, name, strlen(name));
}

int fdt_path(const struct fdt *f, const char *path)
{
	int node = fdt_root(f);

	if (!path || path[0] != '/')
		return E_INVAL;
	while (node >= 0 && *path) {
		const char *slash;
		size_t n;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		slash = strchr(path, '/');
		n = slash ? (size_t)(slash - path) : strlen(path);
		node = subnode_n(f, node, path, n);
		path += n;
	}
	return node;
}

const void *fdt_prop(const struct fdt *f, int node, const char *name, uint32_t *len)
{
	struct tok t;
	int off = node_body(f, node, &t);

	for (; off >= 0 && name; off = (int)t.next) {
		if (step(f, (uint32_t)off, &t, NULL))
			return NULL;
		if (t.type == FDT_PROP && !strcmp(t.name, name)) {
			if (len)
				*len = t.len;
			return t.val;
		}
		if (t.type != FDT_PROP && t.type != FDT_NOP)
			return NULL;
	}
	return NULL;
}

const char *fdt_prop_str(const struct fdt *f, int node, const char *name)
{
	uint32_t len;
	const char *v = fdt_prop(f, node, name, &len);

	if (!v || !len || !memchr(v, '\0', len))
		return NULL;
	return v;
}

int fdt_prop_uint(const struct fdt *f, int node, const char *name, uint64_t *v)
{
	uint32_t len;
	const void *p = fdt_prop(f, node, name, &len);

	if (!p)
		return E_NOENT;
	if (len != 4 && len != 8)
		return E_CORRUPT;
	*v = fdt_cells(p, len / 4);
	return 0;
}

int fdt_prop_cells(const struct fdt *f, int node, const char *name, uint32_t dflt,
		   uint32_t *v)
{
	uint32_t len;
	const void *p = fdt_prop(f, node, name, &len);

	if (!p) {
		*v = dflt;
		return 0;
	}
	if (len != 4)
		return E_CORRUPT;
	*v = fdt_u32(p);
	return 0;
}
