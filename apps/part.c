/* part.c - the `part` program: partitions of the user's own, from the
 * initrd, placed by the bootargs (docs/PARTITIONS.md):
 *
 *   part=<name>@<hart>[/<quota>][:<arg>],...   which images run where
 *   area=<name>:<initial>:<max>[:<static>],... areas the kernel creates first
 *
 * <name> is an initrd member without ".elf"; <hart> a hart index below
 * harts_online; <quota> the private-memory quota (default 2M); <arg> the
 * string its main() gets as argv[1] (no commas or spaces). Sizes are
 * decimal bytes with an optional K, M or G. Every entry is checked, the
 * archive and every image named included, before anything is created:
 * each problem gets one "part: ..." line and the boot is refused with none
 * of the partitions started. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "cpio.h"
#include "elf.h"
#include "hart.h"
#include "kernel.h"
#include "kmalloc.h"
#include "mem.h"
#include "part.h"
#include "program.h"
#include "shm.h"

#define BOOT_PARTS_MAX      64
#define BOOT_AREAS_MAX      4
#define AREA_STATIC_DEFAULT 1024
#define QUOTA_MIN           (64u << 10)

struct spec {
	char name[PART_NAME_MAX];
	unsigned hart;
	size_t quota_pages;               /* 0: the default */
	char arg[PART_ARG_MAX];
	struct cpio_file img;
	int id;
};

struct area_spec {
	char name[SYS_MM_NAME_MAX];
	uint64_t initial, max, st;
	mm_t *mm;
};

static struct spec specs[BOOT_PARTS_MAX];
static struct area_spec areas[BOOT_AREAS_MAX];
static unsigned nspecs, nareas, problems;
static const void *initrd;
static size_t initrd_len;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	va_list ap;

	printf("part: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	problems++;
}

/* Decimal bytes with an optional K, M or G; false when not that or above
 * 2^40. */
static bool parse_size(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	unsigned shift = 0;

	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v >> 40)
			return false;
	}
	if (i == 0)
		return false;
	if (i + 1 == n && (s[i] == 'K' || s[i] == 'k'))
		shift = 10;
	else if (i + 1 == n && (s[i] == 'M' || s[i] == 'm'))
		shift = 20;
	else if (i + 1 == n && (s[i] == 'G' || s[i] == 'g'))
		shift = 30;
	else if (i != n)
		return false;
	if ((v << shift) >> 40)
		return false;
	*out = v << shift;
	return true;
}

static bool parse_uint(const char *s, size_t n, unsigned *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = (unsigned)v;
	return true;
}

/* ---- the initrd ---------------------------------------------------------- */

static bool in_ram(uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < board->nmem; i++)
		if (start >= board->mem[i].start && end - 1 <= board->mem[i].end)
			return true;
	return false;
}

/* The archive, checked whole; false (with its problem line) when unusable. */
static bool open_initrd(void)
{
	const char *why = "";
	char bad[CPIO_NAME_MAX + 1];
	int n;

	if (!board->has_initrd) {
		problem("no initrd: boot with QEMU's -initrd FILE (make run PARTS='a.elf b.elf') "
			"or an extlinux 'initrd' line");
		return false;
	}
	if (board->initrd_end > DIRECT_MAP_SIZE ||
	    !in_ram(board->initrd_start, board->initrd_end)) {
		problem("initrd [0x%llx, 0x%llx) is not in RAM",
			(unsigned long long)board->initrd_start,
			(unsigned long long)board->initrd_end);
		return false;
	}
	initrd = pa_to_dmap(board->initrd_start);
	initrd_len = (size_t)(board->initrd_end - board->initrd_start);
	n = cpio_check(initrd, initrd_len, ".elf", PART_NAME_MAX - 1, &why, bad, sizeof(bad));
	if (n < 0) {
		if (bad[0])
			problem("initrd: member '%s': %s", bad, why);
		else
			problem("initrd (%zu bytes at 0x%llx): %s", initrd_len,
				(unsigned long long)board->initrd_start, why);
		return false;
	}
	printf("part: initrd: %zu bytes at 0x%llx, %d images\n", initrd_len,
	       (unsigned long long)board->initrd_start, n);
	return true;
}

/* ---- part= ----------------------------------------------------------------- */

/* One entry e[0, n): name@hart[/quota][:arg]. */
static void parse_part(const char *e, size_t n)
{
	struct spec *sp = &specs[nspecs];
	const char *at = memchr(e, '@', n), *colon, *slash, *hend;
	size_t nl;
	uint64_t quota;

	memset(sp, 0, sizeof(*sp));
	if (!at) {
		problem("part=: entry '%.*s': no '@<hart>'", (int)n, e);
		return;
	}
	nl = (size_t)(at - e);
	colon = memchr(at, ':', n - nl);
	hend = colon ? colon : e + n;
	slash = memchr(at, '/', (size_t)(hend - at));
	if (nl == 0 || nl >= PART_NAME_MAX) {
		problem("part=: entry '%.*s': name empty or longer than %d characters", (int)n, e,
			PART_NAME_MAX - 1);
		return;
	}
	memcpy(sp->name, e, nl);
	if (!parse_uint(at + 1, (size_t)((slash ? slash : hend) - at - 1), &sp->hart)) {
		problem("part=: entry '%.*s': hart '%.*s' is not a number", (int)n, e,
			(int)((slash ? slash : hend) - at - 1), at + 1);
		return;
	}
	if (sp->hart >= harts_online) {
		problem("part=: entry '%.*s': hart %u does not exist (%u harts online: 0..%u)",
			(int)n, e, sp->hart, harts_online, harts_online - 1);
		return;
	}
	if (slash) {
		size_t ql = (size_t)(hend - slash - 1);

		if (!parse_size(slash + 1, ql, &quota)) {
			problem("part=: entry '%.*s': quota '%.*s' is not a size (bytes, K, M, G)",
				(int)n, e, (int)ql, slash + 1);
			return;
		}
		if (quota < QUOTA_MIN || quota > pmem_avail(&kpmem)) {
			problem("part=: entry '%.*s': quota %llu bytes out of range (%u KiB to the "
				"%zu KiB free)", (int)n, e, (unsigned long long)quota,
				QUOTA_MIN >> 10, pmem_avail(&kpmem) >> 10);
			return;
		}
		sp->quota_pages = (size_t)((quota + ENV_PAGE_SIZE - 1) / ENV_PAGE_SIZE);
	}
	if (colon) {
		size_t al = (size_t)(e + n - colon - 1);

		if (al >= PART_ARG_MAX) {
			problem("part=: entry '%.*s': argument longer than %d characters", (int)n, e,
				PART_ARG_MAX - 1);
			return;
		}
		memcpy(sp->arg, colon + 1, al);
	}
	nspecs++;
}

/* The image of every entry: in the initrd, and an image the loader takes. */
static void find_images(void)
{
	for (unsigned i = 0; i < nspecs; i++) {
		struct spec *sp = &specs[i];
		const char *why = "";
		int rc = cpio_find(initrd, initrd_len, ".elf", sp->name, &sp->img, &why);

		if (rc != 1) {
			problem("part=: no image '%s' in the initrd (no member %s.elf)", sp->name,
				sp->name);
			continue;
		}
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(specs[j].name, sp->name))
				goto checked;   /* the same image: one line is enough */
		if (elf_check(sp->img.data, sp->img.size, &why))
			problem("initrd: member '%s': %s", sp->img.name, why);
checked:;
	}
}

/* ---- area= ----------------------------------------------------------------- */

static void parse_area(const char *e, size_t n)
{
	struct area_spec *a = &areas[nareas];
	const char *f[4];
	size_t fl[4], nf = 0;
	uint64_t least;

	memset(a, 0, sizeof(*a));
	for (const char *s = e, *end = e + n;;) {
		const char *c = memchr(s, ':', (size_t)(end - s));

		if (nf == 4) {
			nf++;     /* a fifth field */
			break;
		}
		f[nf] = s;
		fl[nf++] = (size_t)((c ? c : end) - s);
		if (!c)
			break;
		s = c + 1;
	}
	if (nf < 3 || nf > 4) {
		problem("area=: entry '%.*s': want <name>:<initial>:<max>[:<static>]", (int)n, e);
		return;
	}
	if (fl[0] == 0 || fl[0] >= SYS_MM_NAME_MAX) {
		problem("area=: entry '%.*s': name empty or longer than %d characters", (int)n, e,
			SYS_MM_NAME_MAX - 1);
		return;
	}
	memcpy(a->name, f[0], fl[0]);
	for (unsigned i = 0; i < nareas; i++)
		if (!strcmp(areas[i].name, a->name)) {
			problem("area=: entry '%.*s': area '%s' given twice", (int)n, e, a->name);
			return;
		}
	a->st = AREA_STATIC_DEFAULT;
	if (!parse_size(f[1], fl[1], &a->initial) || !parse_size(f[2], fl[2], &a->max) ||
	    (nf == 4 && !parse_size(f[3], fl[3], &a->st))) {
		problem("area=: entry '%.*s': a size is not a number of bytes (with K, M or G)",
			(int)n, e);
		return;
	}
	least = MM_HDR_SIZE + ((a->st + 15) & ~15ull) + 256;
	if (a->max > SHM_MAX_SIZE) {
		problem("area=: entry '%.*s': max %llu bytes above the largest area (%lu)",
			(int)n, e, (unsigned long long)a->max, (unsigned long)SHM_MAX_SIZE);
		return;
	}
	if (a->initial > a->max) {
		problem("area=: entry '%.*s': initial %llu bytes above max %llu", (int)n, e,
			(unsigned long long)a->initial, (unsigned long long)a->max);
		return;
	}
	if (a->initial < least) {
		problem("area=: entry '%.*s': initial %llu bytes below %llu (the header, the "
			"%llu-byte static part and 256 bytes)", (int)n, e,
			(unsigned long long)a->initial, (unsigned long long)least,
			(unsigned long long)a->st);
		return;
	}
	nareas++;
}

/* Calls fn on each comma-separated entry of `what` (at most max of them). */
static void each_entry(const char *key, const char *v, unsigned max,
		       void (*fn)(const char *, size_t))
{
	unsigned seen = 0;

	if (!*v)
		problem("%s=: empty", key);
	for (const char *s = v; *s;) {
		size_t n = strcspn(s, ",");

		if (++seen > max) {
			problem("%s=: more than %u entries", key, max);
			return;
		}
		if (n == 0)
			problem("%s=: an empty entry", key);
		else
			fn(s, n);
		s += n;
		if (*s == ',')
			s++;
	}
}

/* ---- running them ------------------------------------------------------------ */

static void drop_areas(void)
{
	for (unsigned i = 0; i < nareas; i++)
		if (areas[i].mm) {
			shm_kernel_detach(areas[i].mm);
			areas[i].mm = NULL;
		}
}

static int create_all(void)
{
	for (unsigned i = 0; i < nareas; i++) {
		struct area_spec *a = &areas[i];

		a->mm = shm_kernel_create(a->name, (size_t)a->st, (size_t)a->initial, (size_t)a->max);
		if (!a->mm) {
			problem("area=: area '%s' not created (out of memory or kernel slots)",
				a->name);
			return -1;
		}
	}
	for (unsigned i = 0; i < nspecs; i++) {
		struct spec *sp = &specs[i];

		sp->id = part_create_image(sp->name, sp->img.data, sp->img.size, sp->arg,
					   sp->hart, sp->quota_pages);
		if (sp->id < 0) {
			problem("part=: partition %u ('%s') not created: %s", i + 1, sp->name,
				err_str(sp->id));
			/* the ones created never start: stopped before their first slice */
			for (unsigned j = 0; j < i; j++)
				part_kill((unsigned)specs[j].id, "boot refused");
			part_run_all();
			part_reset();
			return -1;
		}
	}
	return 0;
}

static void print_area(const struct area_spec *a)
{
	struct mm_stats st;

	if (mm_lock(a->mm, MM_LOCK_RD) < 0)
		return;
	mm_stats(a->mm, &st);
	mm_unlock(a->mm);
	printf("part: area '%s': %zu KiB of %zu KiB max, %zu bytes in use, %llu allocs, "
	       "%llu frees, grown %llu times\n", a->name, st.size >> 10, st.max_size >> 10,
	       st.used, (unsigned long long)st.allocs, (unsigned long long)st.frees,
	       (unsigned long long)st.grows);
}

static int part_main(const char *arg)
{
	static char buf[BOARD_BOOTARGS_MAX];
	size_t before = pmem_avail(&kpmem), heap_before, used;
	unsigned ok = 0, bad = 0;

	nspecs = nareas = problems = 0;
	heap_before = mem_kept_bytes();
	each_entry("part", arg, BOOT_PARTS_MAX, parse_part);
	if (bootarg("area", buf, sizeof(buf)))
		each_entry("area", buf, BOOT_AREAS_MAX, parse_area);
	if (open_initrd() && nspecs)
		find_images();
	if (problems || create_all()) {
		drop_areas();
		printf("part: boot refused: %u problem%s in the bootargs or the initrd; no partition "
		       "started\n", problems, problems == 1 ? "" : "s");
		return 1;
	}
	printf("part: %u partitions on %u harts, %u areas\n", nspecs, harts_online, nareas);
	part_run_all();
	part_print_usage();
	for (unsigned i = 0; i < nspecs; i++) {
		const struct partition *p = part_get((unsigned)specs[i].id);

		if (p && p->state == PART_EXITED && p->exit_status == 0)
			ok++;
		else
			bad++;
	}
	for (unsigned i = 0; i < nareas; i++)
		print_area(&areas[i]);
	drop_areas();
	part_reset();
	used = before - pmem_avail(&kpmem);
	if (used != mem_kept_bytes() - heap_before)
		bad++;
	printf("part: %s: %u exited with status 0, %u failed or stopped; physical memory %s\n",
	       bad ? "FAILED" : "done", ok, nspecs - ok,
	       used == mem_kept_bytes() - heap_before ? "all returned" : "LEAKED");
	return bad != 0;
}

PROGRAM(part, part_main, "partitions from the initrd: part=<name>@<hart>[/<quota>][:<arg>],... "
	"area=<name>:<initial>:<max>[:<static>],...")
