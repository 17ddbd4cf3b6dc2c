/* fdt_oracle.c - the differential oracle for dtbinfo: the same board
 * description (policies in platform/board.h), computed with libfdt and no
 * code from platform/. tests/fdt/check.sh diffs the two outputs on valid
 * blobs; on a blob libfdt rejects it prints the error and exits 1. */
#include <libfdt.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const void *blob;

static uint64_t cells(const fdt32_t *p, int n)
{
	return n == 2 ? ((uint64_t)fdt32_to_cpu(p[0]) << 32) | fdt32_to_cpu(p[1]) : fdt32_to_cpu(p[0]);
}

/* A string property, NULL when absent or not NUL-terminated. */
static const char *str(int node, const char *name)
{
	int len;
	const char *v = fdt_getprop(blob, node, name, &len);

	return v && len > 0 && memchr(v, 0, len) ? v : NULL;
}

static int ncells(int node, const char *name, int dflt)
{
	int len;
	const fdt32_t *v = fdt_getprop(blob, node, name, &len);

	return v && len == 4 ? (int)fdt32_to_cpu(*v) : dflt;
}

/* A 4- or 8-byte number; 0 when absent. */
static uint64_t num(int node, const char *name)
{
	int len;
	const fdt32_t *v = fdt_getprop(blob, node, name, &len);

	return v && (len == 4 || len == 8) ? cells(v, len / 4) : 0;
}

static void print_memory(void)
{
	int ac = ncells(0, "#address-cells", 2), sc = ncells(0, "#size-cells", 1), node, len;

	fdt_for_each_subnode(node, blob, 0) {
		const char *dt = str(node, "device_type");
		const fdt32_t *reg;
		int numa;

		if (strncmp(fdt_get_name(blob, node, NULL), "memory", 6) || !dt || strcmp(dt, "memory"))
			continue;
		numa = fdt_getprop(blob, node, "numa-node-id", NULL) ? (int)num(node, "numa-node-id") : -1;
		reg = fdt_getprop(blob, node, "reg", &len);
		for (int i = 0; reg && i + (ac + sc) * 4 <= len; i += (ac + sc) * 4) {
			const fdt32_t *e = reg + i / 4;
			uint64_t start = cells(e, ac), size = cells(e + ac, sc);
			if (!size)
				continue;
			printf("memory 0x%016llx-0x%016llx node ", (unsigned long long)start,
			       (unsigned long long)(start + size - 1));
			if (numa >= 0)
				printf("%d\n", numa);
			else
				printf("-\n");
		}
	}
}

static void print_rsv(const char *name, uint64_t start, uint64_t size)
{
	if (size)
		printf("reserved 0x%016llx-0x%016llx %s\n", (unsigned long long)start,
		       (unsigned long long)(start + size - 1), name);
}

static void print_reserved(void)
{
	int rm = fdt_path_offset(blob, "/reserved-memory"), chosen, node, len;
	uint64_t a, s;

	for (int i = 0; i < fdt_num_mem_rsv(blob); i++)
		if (!fdt_get_mem_rsv(blob, i, &a, &s))
			print_rsv("memreserve", a, s);
	if (rm >= 0) {
		int ac = ncells(rm, "#address-cells", 2), sc = ncells(rm, "#size-cells", 1);
		fdt_for_each_subnode(node, blob, rm) {
			const fdt32_t *reg = fdt_getprop(blob, node, "reg", &len);
			if (!reg && fdt_getprop(blob, node, "size", NULL))
				continue;   /* dynamic: print_dynamic */
			for (int i = 0; reg && i + (ac + sc) * 4 <= len; i += (ac + sc) * 4)
				print_rsv(fdt_get_name(blob, node, NULL), cells(reg + i / 4, ac),
					  cells(reg + i / 4 + ac, sc));
		}
	}
	chosen = fdt_path_offset(blob, "/chosen");
	if (chosen >= 0 && fdt_getprop(blob, chosen, "linux,initrd-start", NULL)) {
		a = num(chosen, "linux,initrd-start");
		s = num(chosen, "linux,initrd-end");
		if (s > a)
			print_rsv("initrd", a, s - a);
	}
}

/* Reservations with size and no reg: listed, not allocated (board.h). */
static void print_dynamic(void)
{
	int rm = fdt_path_offset(blob, "/reserved-memory"), node, len;

	if (rm < 0)
		return;
	int ac = ncells(rm, "#address-cells", 2), sc = ncells(rm, "#size-cells", 1);
	fdt_for_each_subnode(node, blob, rm) {
		const fdt32_t *size = fdt_getprop(blob, node, "size", NULL), *al;
		if (fdt_getprop(blob, node, "reg", NULL) || !size)
			continue;
		al = fdt_getprop(blob, node, "alignment", NULL);
		len = 0;
		fdt_getprop(blob, node, "alloc-ranges", &len);
		printf("dynamic %s size 0x%llx alignment 0x%llx alloc-ranges %d not allocated\n",
		       fdt_get_name(blob, node, NULL), (unsigned long long)cells(size, sc),
		       (unsigned long long)(al ? cells(al, sc) : 0), len / (4 * (ac + sc)));
	}
}

/* The ISA whichever binding (board.h): isa-base + isa-extensions rebuilt in
 * riscv,isa form, else riscv,isa; NULL when neither. */
static const char *hart_isa(int node, char *buf, size_t cap)
{
	const char *base = str(node, "riscv,isa-base");
	int len, n = fdt_stringlist_count(blob, node, "riscv,isa-extensions");

	if (!base || n < 0)
		return str(node, "riscv,isa");
	snprintf(buf, cap, "%s", base);
	for (int i = 0; i < n; i++) {
		const char *e = fdt_stringlist_get(blob, node, "riscv,isa-extensions", i, &len);
		if (len == 1 && !strchr(buf + 4, e[0]))
			strncat(buf, e, cap - strlen(buf) - 1);
	}
	for (int i = 0; i < n; i++) {
		const char *e = fdt_stringlist_get(blob, node, "riscv,isa-extensions", i, &len);
		if (len > 1) {
			strncat(buf, "_", cap - strlen(buf) - 1);
			strncat(buf, e, cap - strlen(buf) - 1);
		}
	}
	return buf;
}

/* The board's keep policy (platform/board.h), computed over the whole list
 * rather than as the nodes come: of each kind (usable, unusable) the first
 * `max` in tree order are kept; when the boot hart (boot_cpuid_phys) is of
 * that kind and not among them, the last of them makes way for it. The
 * rest are listed, ascending, consecutive ids as runs. */
#define O_MAX_USABLE   64
#define O_MAX_UNUSABLE 16
#define O_MAX_NODES    4096

struct ohart {
	unsigned long long id;
	int usable, keep;
	char line[800];
};

static int cmp_ull(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
	return x < y ? -1 : x > y;
}

static void choose(struct ohart *h, int n, int usable, int max, unsigned long long boot)
{
	int seen = 0, last = -1, boot_at = -1;

	for (int i = 0; i < n; i++) {
		if (h[i].usable != usable)
			continue;
		if (seen < max) {
			h[i].keep = 1;
			last = i;
		} else if (h[i].id == boot) {
			boot_at = i;
		}
		seen++;
	}
	if (boot_at >= 0 && last >= 0) {
		h[last].keep = 0;
		h[boot_at].keep = 1;
	}
}

static uint64_t print_harts(void)
{
	static struct ohart hs[O_MAX_NODES];
	static unsigned long long out[O_MAX_NODES];
	int cpus = fdt_path_offset(blob, "/cpus"), node, n = 0, nout = 0;
	uint64_t tb;

	if (cpus < 0)
		return 0;
	tb = num(cpus, "timebase-frequency");
	int ac = ncells(cpus, "#address-cells", 2);
	fdt_for_each_subnode(node, blob, cpus) {
		const char *dt = str(node, "device_type"), *st = str(node, "status");
		char isabuf[512];
		const char *isa = hart_isa(node, isabuf, sizeof(isabuf)), *mmu = str(node, "mmu-type");
		unsigned long long id;
		struct ohart *h = &hs[n];

		if (strncmp(fdt_get_name(blob, node, NULL), "cpu", 3) || !dt || strcmp(dt, "cpu"))
			continue;
		if (n == O_MAX_NODES) {
			fprintf(stderr, "fdt_oracle: more than %d cpu nodes\n", O_MAX_NODES);
			exit(1);
		}
		id = cells(fdt_getprop(blob, node, "reg", NULL), ac);
		if (!tb)
			tb = num(node, "timebase-frequency");
		h->id = id;
		h->usable = 0;
		if (st && strcmp(st, "okay") && strcmp(st, "ok"))
			snprintf(h->line, sizeof(h->line), "hart %llu unusable status %s", id, st);
		else if (!isa)
			snprintf(h->line, sizeof(h->line), "hart %llu unusable no riscv,isa-base or riscv,isa", id);
		else if (strncasecmp(isa, "rv64", 4))
			snprintf(h->line, sizeof(h->line), "hart %llu unusable isa %s", id, isa);
		else if (!mmu)
			snprintf(h->line, sizeof(h->line), "hart %llu unusable no mmu-type", id);
		else if (strcmp(mmu, "riscv,sv39") && strcmp(mmu, "riscv,sv48") && strcmp(mmu, "riscv,sv57"))
			snprintf(h->line, sizeof(h->line), "hart %llu unusable mmu-type %s", id, mmu);
		else {
			snprintf(h->line, sizeof(h->line), "hart %llu usable %s %s", id, mmu, isa);
			h->usable = 1;
		}
		n++;
	}
	choose(hs, n, 1, O_MAX_USABLE, fdt_boot_cpuid_phys(blob));
	choose(hs, n, 0, O_MAX_UNUSABLE, fdt_boot_cpuid_phys(blob));
	for (int i = 0; i < n; i++) {
		if (hs[i].keep)
			printf("%s\n", hs[i].line);
		else
			out[nout++] = hs[i].id;
	}
	if (nout) {
		qsort(out, (size_t)nout, sizeof(out[0]), cmp_ull);
		printf("board: harts left out:");
		for (int i = 0; i < nout;) {
			int j = i;
			while (j + 1 < nout && out[j + 1] == out[j] + 1)
				j++;
			if (j == i)
				printf(" %llu", out[i]);
			else
				printf(" %llu-%llu", out[i], out[j]);
			i = j + 1;
		}
		printf(" (%d in all; maximum %d usable, %d unusable)\n", nout, O_MAX_USABLE,
		       O_MAX_UNUSABLE);
	}
	return tb;
}

int main(int argc, char **argv)
{
	static char buf[64 << 20];
	const char *s;
	uint64_t tb;
	size_t len;
	FILE *fp;
	int rc, chosen;

	if (argc != 2 || !(fp = fopen(argv[1], "rb"))) {
		fprintf(stderr, "usage: fdt_oracle FILE.dtb\n");
		return 2;
	}
	len = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	blob = buf;
	if (len < FDT_V1_SIZE || (rc = fdt_check_header(blob)) || fdt_totalsize(blob) > len) {
		fprintf(stderr, "fdt_oracle: %s: libfdt rejects the header\n", argv[1]);
		return 1;
	}
	if ((s = str(0, "model")) && *s)
		printf("model %s\n", s);
	print_memory();
	print_reserved();
	print_dynamic();
	tb = print_harts();
	if (tb)
		printf("timebase %llu\n", (unsigned long long)tb);
	chosen = fdt_path_offset(blob, "/chosen");
	if (chosen >= 0 && (s = str(chosen, "bootargs")) && *s)
		printf("bootargs %s\n", s);
	return 0;
}
