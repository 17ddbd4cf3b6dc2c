/* board.c - build the board description from a checked device tree. The
 * policies are listed in board.h; board_print() is the only stdio user. */
#include "board.h"

#include <stdio.h>
#include <string.h>

#define fail(b, ...) (fdt_fmt((b)->reason, FDT_REASON_MAX, __VA_ARGS__), E_CORRUPT)

/* Copy a string property value, rejecting what does not fit. */
static int copy_str(struct board *b, char *dst, size_t cap, const char *src,
		    const char *node, const char *what)
{
	size_t n = strlen(src);

	if (n >= cap)
		return fail(b, "node '%s' %s longer than %u bytes", node, what, (unsigned)cap - 1);
	memcpy(dst, src, n + 1);
	return 0;
}

/* #address-cells / #size-cells of `node`, checked to be 1..2. */
static int get_cells(struct board *b, const struct fdt *f, int node, const char *name,
		     uint32_t dflt, uint32_t *v)
{
	const char *n = fdt_name(f, node);

	if (n && !n[0])
		n = "/";
	if (fdt_prop_cells(f, node, name, dflt, v))
		return fail(b, "node '%s' %s is not one cell", n, name);
	if (*v < 1 || *v > 2)
		return fail(b, "node '%s' %s %u not in 1..2", n, name, *v);
	return 0;
}

/* The reg property as *n entries of (ac + sc) cells. */
static int get_reg(struct board *b, const struct fdt *f, int node, uint32_t ac, uint32_t sc,
		   const uint8_t **p, uint32_t *n)
{
	uint32_t len, esz = 4 * (ac + sc);

	*p = fdt_prop(f, node, "reg", &len);
	if (!*p) {
		*n = 0;
		return 0;
	}
	if (len % esz)
		return fail(b, "node '%s' reg length %u not a multiple of %u", fdt_name(f, node), len, esz);
	*n = len / esz;
	return 0;
}

/* Inclusive end of [start, start + size), size > 0; rejects wrapping. */
static int range_end(struct board *b, const char *what, uint64_t start, uint64_t size,
		     uint64_t *end)
{
	if (size - 1 > UINT64_MAX - start)
		return fail(b, "%s range 0x%llx size 0x%llx wraps past 2^64", what,
			    (unsigned long long)start, (unsigned long long)size);
	*end = start + size - 1;
	return 0;
}

static int add_rsv(struct board *b, const char *name, uint64_t start, uint64_t size)
{
	struct board_rsv *r;
	uint64_t end;
	int rc;

	if (!size)
		return 0;
	rc = range_end(b, "reserved", start, size, &end);
	if (rc)
		return rc;
	if (b->nrsv == BOARD_MAX_RSV)
		return fail(b, "more than %u reserved ranges", BOARD_MAX_RSV);
	r = &b->rsv[b->nrsv];
	rc = copy_str(b, r->name, sizeof(r->name), name, name, "name");
	if (rc)
		return rc;
	r->start = start;
	r->end = end;
	b->nrsv++;
	return 0;
}

static int add_mem(struct board *b, uint64_t start, uint64_t size, int numa)
{
	uint64_t end;
	int rc;

	if (!size)
		return 0;
	rc = range_end(b, "memory", start, size, &end);
	if (rc)
		return rc;
	for (unsigned i = 0; i < b->nmem; i++)
		if (start <= b->mem[i].end && b->mem[i].start <= end)
			return fail(b, "memory ranges 0x%llx-0x%llx and 0x%llx-0x%llx overlap",
				    (unsigned long long)b->mem[i].start,
				    (unsigned long long)b->mem[i].end,
				    (unsigned long long)start, (unsigned long long)end);
	if (b->nmem == BOARD_MAX_MEM)
		return fail(b, "more than %u memory ranges", BOARD_MAX_MEM);
	b->mem[b->nmem++] = (struct board_mem){ start, end, numa };
	return 0;
}

static bool has_prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static bool str_is(const struct fdt *f, int node, const char *prop, const char *val)
{
	const char *s = fdt_prop_str(f, node, prop);

	return s && !strcmp(s, val);
}

static int parse_memory(struct board *b, const struct fdt *f, int root)
{
	uint32_t ac, sc, n;
	const uint8_t *p;
	int rc, node;

	if ((rc = get_cells(b, f, root, "#address-cells", 2, &ac)) ||
	    (rc = get_cells(b, f, root, "#size-cells", 1, &sc)))
		return rc;
	for (node = fdt_first_child(f, root); node >= 0; node = fdt_next_sibling(f, node)) {
		uint64_t numa = (uint64_t)-1;

		if (!has_prefix(fdt_name(f, node), "memory") || !str_is(f, node, "device_type", "memory"))
			continue;
		rc = fdt_prop_uint(f, node, "numa-node-id", &numa);
		if (rc == E_CORRUPT || (!rc && numa > 0x7fffffff))
			return fail(b, "node '%s' bad numa-node-id", fdt_name(f, node));
		if ((rc = get_reg(b, f, node, ac, sc, &p, &n)))
			return rc;
		for (uint32_t i = 0; i < n; i++, p += 4 * (ac + sc))
			if ((rc = add_mem(b, fdt_cells(p, ac), fdt_cells(p + 4 * ac, sc), (int)numa)))
				return rc;
	}
	return 0;
}

/* A /reserved-memory child with size and no reg: a dynamic reservation,
 * for the OS to place (within alloc-ranges, at alignment) and hand to the
 * device that names it in memory-region. Recorded and printed; this kernel
 * has no such device, so it does not allocate them (see board.h). */
static int add_dyn(struct board *b, const struct fdt *f, int node, uint32_t ac, uint32_t sc)
{
	const char *name = fdt_name(f, node);
	const uint8_t *p;
	struct board_dyn *d;
	uint32_t len;

	if (b->ndyn == BOARD_MAX_RSV)
		return fail(b, "more than %u dynamic reservations", BOARD_MAX_RSV);
	d = &b->dyn[b->ndyn];
	memset(d, 0, sizeof(*d));
	if (copy_str(b, d->name, sizeof(d->name), name, name, "name"))
		return E_CORRUPT;
	p = fdt_prop(f, node, "size", &len);
	if (len != 4 * sc)
		return fail(b, "node '%s' size is not %u cells", name, sc);
	d->size = fdt_cells(p, sc);
	if ((p = fdt_prop(f, node, "alignment", &len))) {
		if (len != 4 * sc)
			return fail(b, "node '%s' alignment is not %u cells", name, sc);
		d->align = fdt_cells(p, sc);
	}
	if ((p = fdt_prop(f, node, "alloc-ranges", &len))) {
		if (len % (4 * (ac + sc)))
			return fail(b, "node '%s' alloc-ranges length %u not a multiple of %u",
				    name, len, 4 * (ac + sc));
		d->nranges = len / (4 * (ac + sc));
	}
	b->ndyn++;
	return 0;
}

static int parse_reserved(struct board *b, const struct fdt *f)
{
	uint64_t addr, size;
	uint32_t ac, sc, n;
	const uint8_t *p;
	int rc, rm, node;

	for (uint32_t i = 0; fdt_rsv(f, i, &addr, &size) == 0; i++)
		if ((rc = add_rsv(b, "memreserve", addr, size)))
			return rc;
	rm = fdt_path(f, "/reserved-memory");
	if (rm < 0)
		return 0;
	if ((rc = get_cells(b, f, rm, "#address-cells", 2, &ac)) ||
	    (rc = get_cells(b, f, rm, "#size-cells", 1, &sc)))
		return rc;
	for (node = fdt_first_child(f, rm); node >= 0; node = fdt_next_sibling(f, node)) {
		if (!fdt_prop(f, node, "reg", NULL) && fdt_prop(f, node, "size", NULL)) {
			if ((rc = add_dyn(b, f, node, ac, sc)))
				return rc;
			continue;
		}
		if ((rc = get_reg(b, f, node, ac, sc, &p, &n)))
			return rc;
		for (uint32_t i = 0; i < n; i++, p += 4 * (ac + sc))
			if ((rc = add_rsv(b, fdt_name(f, node), fdt_cells(p, ac), fdt_cells(p + 4 * ac, sc))))
				return rc;
	}
	return 0;
}

/* Append `s` (n bytes) to the hart's ISA string; false when it does not fit. */
static bool isa_append(struct board_hart *h, const char *s, size_t n)
{
	size_t at = strlen(h->isa);

	if (at + n >= sizeof(h->isa))
		return false;
	memcpy(h->isa + at, s, n);
	h->isa[at + n] = '\0';
	return true;
}

/* The hart's ISA as one string whichever binding gives it (board.h):
 * riscv,isa-base + riscv,isa-extensions when both are present, else
 * riscv,isa as written, else "". */
static int hart_isa(struct board *b, const struct fdt *f, int node, struct board_hart *h)
{
	const char *name = fdt_name(f, node), *base, *ext, *e;
	uint32_t len;
	bool ok = true;

	base = fdt_prop_str(f, node, "riscv,isa-base");
	ext = fdt_prop(f, node, "riscv,isa-extensions", &len);
	if (!base || !ext) {
		e = fdt_prop_str(f, node, "riscv,isa");
		return e ? copy_str(b, h->isa, sizeof(h->isa), e, name, "riscv,isa") : 0;
	}
	if (len == 0 || ext[len - 1] != '\0')
		return fail(b, "cpu node '%s' riscv,isa-extensions is not a string list", name);
	if (copy_str(b, h->isa, sizeof(h->isa), base, name, "riscv,isa-base"))
		return E_CORRUPT;
	/* single letters first (those not in the base), then "_" + the others */
	for (e = ext; e < ext + len; e += strlen(e) + 1)
		if (strlen(e) == 1 && strlen(h->isa) >= 4 && !strchr(h->isa + 4, e[0]))
			ok = ok && isa_append(h, e, 1);
	for (e = ext; e < ext + len; e += strlen(e) + 1)
		if (strlen(e) > 1)
			ok = ok && isa_append(h, "_", 1) && isa_append(h, e, strlen(e));
	if (!ok)
		return fail(b, "cpu node '%s' ISA longer than %u bytes", name, BOARD_ISA_MAX - 1);
	return 0;
}

/* Why hart `node` cannot run this kernel, or "" when it can. */
static void hart_reason(const struct fdt *f, int node, struct board_hart *h)
{
	const char *status = fdt_prop_str(f, node, "status");
	const char *isa = h->isa;
	char *r = h->reason;

	r[0] = '\0';
	if (status && strcmp(status, "okay") && strcmp(status, "ok"))
		fdt_fmt(r, sizeof(h->reason), "status %s", status);
	else if (!isa[0])
		fdt_fmt(r, sizeof(h->reason), "no riscv,isa-base or riscv,isa");
	else if (strncmp(isa, "rv64", 4) && strncmp(isa, "RV64", 4))
		fdt_fmt(r, sizeof(h->reason), "isa %s", isa);
	else if (!h->mmu[0])
		fdt_fmt(r, sizeof(h->reason), "no mmu-type");
	else if (strcmp(h->mmu, "riscv,sv39") && strcmp(h->mmu, "riscv,sv48") &&
		 strcmp(h->mmu, "riscv,sv57"))
		fdt_fmt(r, sizeof(h->reason), "mmu-type %s", h->mmu);
	h->usable = r[0] == '\0';
}

/* Insert id into the sorted left-out list (room was checked). */
static void leave_out(struct board *b, uint64_t id, bool usable)
{
	unsigned i = b->nleft_out;

	for (; i && b->left_out[i - 1] > id; i--)
		b->left_out[i] = b->left_out[i - 1];
	b->left_out[i] = id;
	b->nleft_out++;
	b->nleft_usable += usable;
}

/* Keep h (parsed, not yet stored) or leave it out when its kind is full;
 * the boot hart takes the place of the last kept one of its kind. */
static int keep_or_leave(struct board *b, const struct board_hart *h, uint64_t boot_hart)
{
	unsigned kept = h->usable ? b->nusable : b->nharts - b->nusable;
	unsigned max = h->usable ? BOARD_MAX_HARTS : BOARD_MAX_UNUSABLE;
	int last = -1;

	if (kept == max) {
		if (b->nleft_out == BOARD_MAX_LEFT_OUT)
			return fail(b, "more than %u harts left out (%u usable and %u unusable kept)",
				    BOARD_MAX_LEFT_OUT, BOARD_MAX_HARTS, BOARD_MAX_UNUSABLE);
		if (h->id != boot_hart) {
			leave_out(b, h->id, h->usable);
			return 0;
		}
		for (unsigned i = 0; i < b->nharts; i++)
			if (b->harts[i].usable == h->usable)
				last = (int)i;
		/* Out goes the last of its kind; the rest slide down and the
		 * boot hart goes at the end, so tree order holds. */
		leave_out(b, b->harts[last].id, h->usable);
		memmove(&b->harts[last], &b->harts[last + 1],
			(b->nharts - 1 - (unsigned)last) * sizeof(b->harts[0]));
		b->nharts--;
		b->nusable -= h->usable;
	}
	b->harts[b->nharts++] = *h;
	b->nusable += h->usable;
	return 0;
}

static bool id_seen(const struct board *b, uint64_t id)
{
	unsigned lo = 0, hi = b->nleft_out;

	for (unsigned i = 0; i < b->nharts; i++)
		if (b->harts[i].id == id)
			return true;
	while (lo < hi) {               /* left_out is sorted */
		unsigned mid = lo + (hi - lo) / 2;
		if (b->left_out[mid] == id)
			return true;
		if (b->left_out[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int parse_hart(struct board *b, const struct fdt *f, int node, uint32_t ac,
		      uint64_t boot_hart)
{
	const char *name = fdt_name(f, node), *s;
	struct board_hart hart, *h = &hart;
	uint32_t len;
	const uint8_t *reg = fdt_prop(f, node, "reg", &len);
	uint64_t numa;
	int rc;

	if (!reg || len < 4 * ac)
		return fail(b, "cpu node '%s' has no reg", name);
	memset(h, 0, sizeof(*h));
	h->id = fdt_cells(reg, ac);
	if (id_seen(b, h->id))
		return fail(b, "duplicate hart id %llu", (unsigned long long)h->id);
	if ((rc = hart_isa(b, f, node, h)))
		return rc;
	s = fdt_prop_str(f, node, "mmu-type");
	if (s && (rc = copy_str(b, h->mmu, sizeof(h->mmu), s, name, "mmu-type")))
		return rc;
	s = fdt_prop_str(f, node, "status");
	if (s && strlen(s) >= BOARD_HART_REASON_MAX - 8)
		return fail(b, "cpu node '%s' status too long", name);
	hart_reason(f, node, h);
	numa = (uint64_t)-1;
	rc = fdt_prop_uint(f, node, "numa-node-id", &numa);
	if (rc == E_CORRUPT || (!rc && numa > 0x7fffffff))
		return fail(b, "cpu node '%s' bad numa-node-id", name);
	h->node = (int)numa;
	if (!b->timebase && fdt_prop_uint(f, node, "timebase-frequency", &b->timebase) == E_CORRUPT)
		return fail(b, "cpu node '%s' bad timebase-frequency", name);
	return keep_or_leave(b, h, boot_hart);
}

static int parse_cpus(struct board *b, const struct fdt *f, uint64_t boot_hart)
{
	int cpus = fdt_path(f, "/cpus"), node, rc;
	uint32_t ac;

	if (cpus < 0)
		return 0;
	if ((rc = get_cells(b, f, cpus, "#address-cells", 2, &ac)))
		return rc;
	if (fdt_prop_uint(f, cpus, "timebase-frequency", &b->timebase) == E_CORRUPT)
		return fail(b, "/cpus bad timebase-frequency");
	for (node = fdt_first_child(f, cpus); node >= 0; node = fdt_next_sibling(f, node)) {
		if (!has_prefix(fdt_name(f, node), "cpu") || !str_is(f, node, "device_type", "cpu"))
			continue;
		if ((rc = parse_hart(b, f, node, ac, boot_hart)))
			return rc;
	}
	return 0;
}

static int parse_chosen(struct board *b, const struct fdt *f)
{
	int chosen = fdt_path(f, "/chosen"), rs, re;
	const char *s;

	if (chosen < 0)
		return 0;
	if (fdt_prop(f, chosen, "bootargs", NULL)) {
		s = fdt_prop_str(f, chosen, "bootargs");
		if (!s)
			return fail(b, "/chosen bootargs not a string");
		if (copy_str(b, b->bootargs, sizeof(b->bootargs), s, "chosen", "bootargs"))
			return E_CORRUPT;
	}
	rs = fdt_prop_uint(f, chosen, "linux,initrd-start", &b->initrd_start);
	re = fdt_prop_uint(f, chosen, "linux,initrd-end", &b->initrd_end);
	if (rs == E_NOENT && re == E_NOENT)
		return 0;
	if (rs || re)
		return fail(b, "/chosen linux,initrd-start/end missing or not 32/64-bit");
	if (b->initrd_end < b->initrd_start)
		return fail(b, "initrd end 0x%llx before start 0x%llx",
			    (unsigned long long)b->initrd_end, (unsigned long long)b->initrd_start);
	b->has_initrd = b->initrd_end > b->initrd_start;
	return 0;
}

/* First node (tree order) compatible with sifive,test0; parent_ac is the
 * parent's raw #address-cells, only checked when used. */
static int find_finisher(struct board *b, const struct fdt *f, int node, uint32_t parent_ac)
{
	uint32_t len, ac;
	const void *v = fdt_prop(f, node, "compatible", &len);
	const uint8_t *reg;
	int c, rc;

	if (v && fdt_strlist_has(v, len, "sifive,test0")) {
		if (parent_ac < 1 || parent_ac > 2)
			return fail(b, "parent of '%s' #address-cells %u not in 1..2", fdt_name(f, node),
				    parent_ac);
		reg = fdt_prop(f, node, "reg", &len);
		if (!reg || len < 4 * parent_ac)
			return fail(b, "test finisher '%s' has no reg", fdt_name(f, node));
		b->finisher = fdt_cells(reg, parent_ac);
		return 1;
	}
	if (fdt_prop_cells(f, node, "#address-cells", 2, &ac))
		ac = 0;   /* malformed: rejected only if a finisher sits below */
	for (c = fdt_first_child(f, node); c >= 0; c = fdt_next_sibling(f, c))
		if ((rc = find_finisher(b, f, c, ac)) != 0)
			return rc;
	return 0;
}

static int parse_root(struct board *b, const struct fdt *f, int root)
{
	uint32_t len;
	const char *v;

	if (fdt_prop(f, root, "model", NULL)) {
		v = fdt_prop_str(f, root, "model");
		if (!v)
			return fail(b, "model not a string");
		if (copy_str(b, b->model, sizeof(b->model), v, "/", "model"))
			return E_CORRUPT;
	}
	v = fdt_prop(f, root, "compatible", &len);
	if (v) {
		if (len > sizeof(b->compatible))
			return fail(b, "root compatible longer than %u bytes", BOARD_COMPAT_MAX);
		memcpy(b->compatible, v, len);
		b->compatible_len = len;
	}
	return 0;
}

int board_parse(struct board *b, const void *blob, size_t len)
{
	struct fdt f;

	/* The header's boot_cpuid_phys, read without building a board. */
	if (!b)
		return E_INVAL;
	if (fdt_open(&f, blob, len))
		return board_parse_boot(b, blob, len, 0);   /* fails the same way */
	return board_parse_boot(b, blob, len, f.boot_cpuid);
}

int board_parse_boot(struct board *b, const void *blob, size_t len, uint64_t boot_hart)
{
	struct fdt f;
	int rc, root;

	if (!b)
		return E_INVAL;
	memset(b, 0, sizeof(*b));
	rc = fdt_open(&f, blob, len);
	if (rc) {
		memcpy(b->reason, f.reason, sizeof(b->reason));
		return rc;
	}
	b->boot_cpuid = f.boot_cpuid;
	root = fdt_root(&f);
	if (root < 0)
		return fail(b, "no root node");
	if ((rc = parse_root(b, &f, root)) || (rc = parse_memory(b, &f, root)) ||
	    (rc = parse_reserved(b, &f)) || (rc = parse_chosen(b, &f)) ||
	    (rc = parse_cpus(b, &f, boot_hart)))
		return rc;
	if (b->has_initrd &&
	    (rc = add_rsv(b, "initrd", b->initrd_start, b->initrd_end - b->initrd_start)))
		return rc;
	rc = find_finisher(b, &f, root, 2);
	return rc < 0 ? rc : 0;
}

bool board_compatible(const struct board *b, const char *compat)
{
	return fdt_strlist_has(b->compatible, b->compatible_len, compat);
}

/* One line, consecutive ids as runs: "board: harts left out: 64-69 100
 * (7 in all; maximum 64 usable, 16 unusable)"; a list too long for the
 * line ends in "...". Built in a buffer first: the kernel console
 * serialises per printf call. */
static void print_left_out(const struct board *b)
{
	char line[512];
	size_t n;

	fdt_fmt(line, sizeof(line), "board: harts left out:");
	n = strlen(line);
	for (unsigned i = 0; i < b->nleft_out;) {
		unsigned j = i;
		while (j + 1 < b->nleft_out && b->left_out[j + 1] == b->left_out[j] + 1)
			j++;
		if (sizeof(line) - n < 48) {            /* room for " a-b" and "..." */
			fdt_fmt(line + n, sizeof(line) - n, " ...");
			break;
		}
		if (j == i)
			fdt_fmt(line + n, sizeof(line) - n, " %llu", (unsigned long long)b->left_out[i]);
		else
			fdt_fmt(line + n, sizeof(line) - n, " %llu-%llu",
				(unsigned long long)b->left_out[i], (unsigned long long)b->left_out[j]);
		n += strlen(line + n);
		i = j + 1;
	}
	printf("%s (%u in all; maximum %u usable, %u unusable)\n", line, b->nleft_out,
	       BOARD_MAX_HARTS, BOARD_MAX_UNUSABLE);
}

void board_print(const struct board *b)
{
	if (b->model[0])
		printf("model %s\n", b->model);
	for (unsigned i = 0; i < b->nmem; i++) {
		const struct board_mem *m = &b->mem[i];
		char node[12] = "-";

		if (m->node >= 0)
			fdt_fmt(node, sizeof(node), "%d", m->node);
		/* one printf per line: the kernel console serialises per call */
		printf("memory 0x%016llx-0x%016llx node %s\n", (unsigned long long)m->start,
		       (unsigned long long)m->end, node);
	}
	for (unsigned i = 0; i < b->nrsv; i++)
		printf("reserved 0x%016llx-0x%016llx %s\n", (unsigned long long)b->rsv[i].start,
		       (unsigned long long)b->rsv[i].end, b->rsv[i].name);
	for (unsigned i = 0; i < b->ndyn; i++)
		printf("dynamic %s size 0x%llx alignment 0x%llx alloc-ranges %u not allocated\n",
		       b->dyn[i].name, (unsigned long long)b->dyn[i].size,
		       (unsigned long long)b->dyn[i].align, b->dyn[i].nranges);
	for (unsigned i = 0; i < b->nharts; i++) {
		const struct board_hart *h = &b->harts[i];
		if (h->usable)
			printf("hart %llu usable %s %s\n", (unsigned long long)h->id, h->mmu, h->isa);
		else
			printf("hart %llu unusable %s\n", (unsigned long long)h->id, h->reason);
	}
	if (b->nleft_out)
		print_left_out(b);
	if (b->timebase)
		printf("timebase %llu\n", (unsigned long long)b->timebase);
	if (b->bootargs[0])
		printf("bootargs %s\n", b->bootargs);
}
