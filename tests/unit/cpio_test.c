/* cpio_test.c - suite `cpio`: the initrd's archive parser (platform/cpio.c)
 * and the partition image checks (platform/elfimg.c), on archives and ELF
 * images built in memory by a small test-only writer (no file I/O: this
 * suite also runs inside the kernel). Each refusal asserts the error code
 * and the reason text. */
#include "ktest.h"
#include "cpio.h"
#include "elfimg.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

/* ---- a tiny cpio newc writer ------------------------------------------------ */

#define AR_MAX 40960

struct ar {
	uint8_t *b;
	size_t n;
};

static void ar_init(struct ar *a)
{
	a->b = ktest_mem(AR_MAX, 16);
	a->n = 0;
}

static void ar_pad(struct ar *a)
{
	while (a->n & 3)
		a->b[a->n++] = 0;
}

/* A member with explicit header values (namesize, filesize as written). */
static void ar_raw(struct ar *a, const char *name, uint32_t mode, const void *data,
		   size_t len, uint32_t namesize, uint32_t filesize)
{
	char h[CPIO_HDR_SIZE + 1];
	size_t nl = strlen(name) + 1;

	snprintf(h, sizeof(h), "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		 1u, mode, 0u, 0u, 1u, 0u, filesize, 0u, 0u, 0u, 0u, namesize, 0u);
	if (a->n + CPIO_HDR_SIZE + nl + len + 8 > AR_MAX)
		return;
	memcpy(a->b + a->n, h, CPIO_HDR_SIZE);
	a->n += CPIO_HDR_SIZE;
	memcpy(a->b + a->n, name, nl);
	a->n += nl;
	ar_pad(a);
	memcpy(a->b + a->n, data, len);
	a->n += len;
	ar_pad(a);
}

static void ar_file(struct ar *a, const char *name, const void *data, size_t len)
{
	ar_raw(a, name, CPIO_S_IFREG | 0644, data, len, (uint32_t)strlen(name) + 1,
	       (uint32_t)len);
}

static void ar_end(struct ar *a)
{
	ar_raw(a, "TRAILER!!!", 0, "", 0, 11, 0);
}

static int check(struct ar *a, const char **why, char *bad)
{
	return cpio_check(a->b, a->n, ".elf", 15, why, bad, 64);
}

#define EXPECT_REFUSED(a, what, member)                                       \
	do {                                                                  \
		const char *why_ = "";                                        \
		char bad_[64];                                                \
		EXPECT_EQ(check(a, &why_, bad_), E_CORRUPT);                  \
		EXPECT(strstr(why_, what) != NULL);                           \
		EXPECT(strcmp(bad_, member) == 0);                            \
	} while (0)

KTEST(cpio, two_files_and_a_directory)
{
	struct ar a;
	struct cpio_file f;
	const char *why = "";
	char bad[64];

	ar_init(&a);
	ar_raw(&a, "parts", CPIO_S_IFDIR | 0755, "", 0, 6, 0);
	ar_file(&a, "./prod.elf", "PRODUCER", 8);
	ar_file(&a, "cons.elf", "cons", 5);
	ar_end(&a);
	ASSERT_EQ(check(&a, &why, bad), 2);
	ASSERT_EQ(cpio_find(a.b, a.n, ".elf", "prod", &f, &why), 1);
	EXPECT_EQ(f.size, 8u);
	EXPECT(memcmp(f.data, "PRODUCER", 8) == 0);
	EXPECT_EQ(((uintptr_t)f.data - (uintptr_t)a.b) % 4, 0u);
	ASSERT_EQ(cpio_find(a.b, a.n, ".elf", "cons", &f, &why), 1);
	EXPECT_EQ(f.size, 5u);
	EXPECT(strcmp(f.name, "cons.elf") == 0);
	EXPECT_EQ(cpio_find(a.b, a.n, ".elf", "parts", &f, &why), 0);   /* a directory */
	EXPECT_EQ(cpio_find(a.b, a.n, ".elf", "nosuch", &f, &why), 0);
}

KTEST(cpio, empty_archive_is_only_a_trailer)
{
	struct ar a;
	const char *why = "";
	char bad[64];

	ar_init(&a);
	ar_end(&a);
	EXPECT_EQ(check(&a, &why, bad), 0);
	a.n = 0;
	EXPECT_REFUSED(&a, "truncated", "");
}

KTEST(cpio, bytes_after_the_trailer_are_ignored)
{
	struct ar a;
	const char *why = "";
	char bad[64];

	ar_init(&a);
	ar_file(&a, "p.elf", "x", 1);
	ar_end(&a);
	memset(a.b + a.n, 0xff, 300);
	a.n += 300;
	EXPECT_EQ(check(&a, &why, bad), 1);
}

/* Every prefix that ends before the trailer's name is refused. */
KTEST(cpio, every_truncation_refused)
{
	struct ar a;
	size_t full, last;
	unsigned wrong = 0;

	ar_init(&a);
	ar_file(&a, "prod.elf", "0123456789abcdef0", 17);
	ar_file(&a, "cons.elf", "c", 1);
	last = a.n;
	ar_end(&a);
	full = a.n;
	for (size_t n = 0; n < last + CPIO_HDR_SIZE + 11; n++) {
		const char *why = "";
		char bad[64];

		a.n = n;
		if (check(&a, &why, bad) != E_CORRUPT || !strstr(why, "truncated") || bad[0])
			wrong++;
	}
	EXPECT_EQ(wrong, 0u);
	a.n = full;
	EXPECT_EQ(cpio_check(a.b, a.n, ".elf", 15, &(const char *){ "" }, NULL, 0), 2);
}

KTEST(cpio, bad_magic)
{
	struct ar a;

	ar_init(&a);
	ar_file(&a, "prod.elf", "x", 1);
	ar_end(&a);
	a.b[5] = '7';   /* "070707": the old binary-compatible format */
	EXPECT_REFUSED(&a, "bad magic", "");
	a.b[5] = '1';
	a.b[0] = 0x7f;  /* an ELF where an archive should be */
	EXPECT_REFUSED(&a, "bad magic", "");
}

KTEST(cpio, field_not_hex)
{
	struct ar a;

	ar_init(&a);
	ar_file(&a, "prod.elf", "x", 1);
	ar_end(&a);
	a.b[6 + 8 * 6 + 3] = 'g';   /* filesize */
	EXPECT_REFUSED(&a, "not hexadecimal", "");
}

KTEST(cpio, data_size_overflows)
{
	struct ar a;

	ar_init(&a);
	ar_raw(&a, "prod.elf", CPIO_S_IFREG | 0644, "abcd", 4, 9, 0xffffffffu);
	ar_end(&a);
	EXPECT_REFUSED(&a, "data runs past the end", "");
	ar_init(&a);
	ar_raw(&a, "prod.elf", CPIO_S_IFREG | 0644, "abcd", 4, 9, 0xfffffffdu);
	EXPECT_REFUSED(&a, "data runs past the end", "");
}

KTEST(cpio, name_sizes_refused)
{
	struct ar a;
	char longname[CPIO_NAME_MAX + 8];

	ar_init(&a);
	ar_raw(&a, "prod.elf", CPIO_S_IFREG | 0644, "x", 1, 1, 1);   /* empty */
	EXPECT_REFUSED(&a, "name empty or too long", "");
	ar_init(&a);
	ar_raw(&a, "prod.elf", CPIO_S_IFREG | 0644, "x", 1, 5, 1);   /* NUL not at 5 */
	EXPECT_REFUSED(&a, "not NUL-terminated", "");
	ar_init(&a);
	ar_raw(&a, "prod.elf", CPIO_S_IFREG | 0644, "x", 1, 0xfffffff0u, 1);
	EXPECT_REFUSED(&a, "name empty or too long", "");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ar_init(&a);
	ar_file(&a, longname, "x", 1);
	ar_end(&a);
	EXPECT_REFUSED(&a, "name empty or too long", "");
}

KTEST(cpio, partition_name_too_long)
{
	struct ar a;

	ar_init(&a);
	ar_file(&a, "exactly15chars_.elf", "x", 1);   /* 15: fits */
	ar_file(&a, "sixteen_chars_xx.elf", "x", 1);  /* 16: does not */
	ar_end(&a);
	EXPECT_REFUSED(&a, "name too long for a partition", "sixteen_chars_xx.elf");
}

KTEST(cpio, duplicate_names)
{
	struct ar a;

	ar_init(&a);
	ar_file(&a, "prod.elf", "x", 1);
	ar_file(&a, "cons.elf", "y", 1);
	ar_file(&a, "./prod.elf", "z", 1);
	ar_end(&a);
	EXPECT_REFUSED(&a, "duplicate name", "./prod.elf");
	ar_init(&a);
	ar_file(&a, "prod.elf", "x", 1);
	ar_file(&a, "prod", "y", 1);   /* the same partition name */
	ar_end(&a);
	EXPECT_REFUSED(&a, "duplicate name", "prod");
}

KTEST(cpio, special_files_refused)
{
	struct ar a;

	ar_init(&a);
	ar_raw(&a, "link.elf", 0120777, "prod.elf", 8, 9, 8);   /* a symlink */
	ar_end(&a);
	EXPECT_REFUSED(&a, "not a regular file", "link.elf");
}

KTEST(cpio, too_many_members)
{
	struct ar a;
	char name[16];

	ar_init(&a);
	for (unsigned i = 0; i <= CPIO_MAX_FILES; i++) {
		snprintf(name, sizeof(name), "d%u", i);
		ar_raw(&a, name, CPIO_S_IFDIR | 0755, "", 0, (uint32_t)strlen(name) + 1, 0);
	}
	ar_end(&a);
	ASSERT_GE(a.n, (CPIO_MAX_FILES + 1) * (CPIO_HDR_SIZE + 2u));   /* all written */
	EXPECT_REFUSED(&a, "more members", "d256");
}

KTEST(cpio, short_names)
{
	struct cpio_file f = { .name = "././a.elf", .namelen = 9 };
	char buf[8];

	EXPECT_EQ(cpio_short_name(&f, ".elf", buf, sizeof(buf)), 1);
	EXPECT(strcmp(buf, "a") == 0);
	f = (struct cpio_file){ .name = ".elf", .namelen = 4 };   /* only the suffix */
	EXPECT_EQ(cpio_short_name(&f, ".elf", buf, sizeof(buf)), 4);
	f = (struct cpio_file){ .name = "./", .namelen = 2 };
	EXPECT_EQ(cpio_short_name(&f, ".elf", buf, sizeof(buf)), -1);
	f = (struct cpio_file){ .name = "12345678", .namelen = 8 };
	EXPECT_EQ(cpio_short_name(&f, NULL, buf, sizeof(buf)), -1);
	EXPECT_EQ(buf[0], 0);
}

/* ---- ELF images -------------------------------------------------------------- */

struct img {
	uint8_t b[0x3000];
	struct {
		unsigned char ident[16];
		uint16_t type, machine;
		uint32_t version;
		uint64_t entry, phoff, shoff;
		uint32_t flags;
		uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
	} *e;
	struct {
		uint32_t type, flags;
		uint64_t offset, vaddr, paddr, filesz, memsz, align;
	} *ph;
};

#define LO 0x1000u
#define HI 0x0ffff000u

/* Text R-X at 0x10000 (file 0x1000..0x1800), data RW at 0x12000 (0x2000
 * bytes in memory, 0x100 in the file), a PT_NOTE that is ignored. */
static struct img *img_new(void)
{
	struct img *m = ktest_mem(sizeof(*m), 16);

	m->e = (void *)m->b;
	m->ph = (void *)(m->b + 64);
	memcpy(m->e->ident, "\177ELF\2\1\1", 7);
	m->e->type = 2;
	m->e->machine = 243;
	m->e->version = 1;
	m->e->entry = 0x10000;
	m->e->phoff = 64;
	m->e->ehsize = 64;
	m->e->phentsize = 56;
	m->e->phnum = 3;
	m->ph[0].type = 1;
	m->ph[0].flags = 5;
	m->ph[0].offset = 0x1000;
	m->ph[0].vaddr = 0x10000;
	m->ph[0].filesz = m->ph[0].memsz = 0x800;
	m->ph[1].type = 1;
	m->ph[1].flags = 6;
	m->ph[1].offset = 0x2000;
	m->ph[1].vaddr = 0x12000;
	m->ph[1].filesz = 0x100;
	m->ph[1].memsz = 0x2000;
	m->ph[2].type = 4;
	m->ph[2].offset = 0xffffffffffff;
	return m;
}

static int img_check(struct img *m, const char **why)
{
	struct elfimg out;

	return elfimg_check(m->b, sizeof(m->b), LO, HI, &out, why);
}

#define EXPECT_ELF_REFUSED(m, what)                                           \
	do {                                                                  \
		const char *why_ = "";                                        \
		EXPECT_EQ(img_check(m, &why_), E_CORRUPT);                    \
		EXPECT(strstr(why_, what) != NULL);                           \
	} while (0)

KTEST(cpio, elf_good_image)
{
	struct img *m = img_new();
	struct elfimg out;
	const char *why = "";

	ASSERT_EQ(elfimg_check(m->b, sizeof(m->b), LO, HI, &out, &why), 0);
	EXPECT_EQ(out.nload, 2u);
	EXPECT_EQ(out.entry, 0x10000u);
	EXPECT_EQ(out.end, 0x14000u);
	EXPECT_EQ(out.load[0].memsz, 0x1000u);
	EXPECT_EQ(out.load[1].flags, (unsigned)(ELFIMG_R | ELFIMG_W));
	/* unaligned, as an initrd member may be */
	memmove(m->b + 1, m->b, sizeof(m->b) - 1);
	EXPECT_EQ(elfimg_check(m->b + 1, sizeof(m->b) - 1, LO, HI, &out, &why), 0);
}

KTEST(cpio, elf_not_elf)
{
	struct img *m = img_new();
	struct elfimg out;
	const char *why = "";

	memcpy(m->b, "#!/bin/sh\n", 10);
	EXPECT_ELF_REFUSED(m, "not an ELF image");
	EXPECT_EQ(elfimg_check(m->b, 20, LO, HI, &out, &why), E_CORRUPT);
	EXPECT(strstr(why, "shorter than") != NULL);
}

KTEST(cpio, elf_wrong_class_machine_type)
{
	struct img *m = img_new();

	m->e->ident[4] = 1;
	EXPECT_ELF_REFUSED(m, "wrong class");
	m = img_new();
	m->e->ident[5] = 2;
	EXPECT_ELF_REFUSED(m, "little-endian");
	m = img_new();
	m->e->machine = 62;   /* x86-64 */
	EXPECT_ELF_REFUSED(m, "wrong machine");
	m = img_new();
	m->e->type = 3;       /* ET_DYN */
	EXPECT_ELF_REFUSED(m, "not an executable");
}

KTEST(cpio, elf_program_headers_outside)
{
	struct img *m = img_new();

	m->e->phoff = sizeof(m->b) - 100;
	EXPECT_ELF_REFUSED(m, "program headers outside");
	m = img_new();
	m->e->phoff = ~0ull;
	EXPECT_ELF_REFUSED(m, "program headers outside");
	m = img_new();
	m->e->phnum = 0xffff;
	EXPECT_ELF_REFUSED(m, "program headers outside");
	m = img_new();
	m->e->phentsize = 32;
	EXPECT_ELF_REFUSED(m, "program headers outside");
}

KTEST(cpio, elf_segment_bytes_outside)
{
	struct img *m = img_new();

	m->ph[1].filesz = 0x3000;   /* more than memsz */
	EXPECT_ELF_REFUSED(m, "segment bytes outside");
	m = img_new();
	m->ph[1].offset = 0x2f80;   /* 0x100 bytes from there run past the end */
	EXPECT_ELF_REFUSED(m, "segment bytes outside");
	m = img_new();
	m->ph[1].offset = ~0ull - 0x10;
	EXPECT_ELF_REFUSED(m, "segment bytes outside");
}

KTEST(cpio, elf_segments_outside_the_range)
{
	struct img *m = img_new();

	m->ph[0].vaddr = 0;                   /* page 0 */
	EXPECT_ELF_REFUSED(m, "outside the partition's program range");
	m = img_new();
	m->ph[1].vaddr = HI;                  /* at the heap's guard */
	EXPECT_ELF_REFUSED(m, "outside the partition's program range");
	m = img_new();
	m->ph[1].vaddr = HI - 0x1000;         /* its second page crosses */
	EXPECT_ELF_REFUSED(m, "outside the partition's program range");
	m = img_new();
	m->ph[1].vaddr = 0xffffffc000000000ull;   /* the kernel half */
	EXPECT_ELF_REFUSED(m, "outside the partition's program range");
	m = img_new();
	m->ph[1].memsz = ~0ull;               /* the size overflows */
	EXPECT_ELF_REFUSED(m, "outside the partition's program range");
	m = img_new();
	m->ph[1].memsz = 0;
	m->ph[1].filesz = 0;
	EXPECT_ELF_REFUSED(m, "outside the partition's program range");
	m = img_new();
	m->ph[1].vaddr = 0x12008;
	EXPECT_ELF_REFUSED(m, "not page-aligned");
}

KTEST(cpio, elf_segments_overlap)
{
	struct img *m = img_new();

	m->ph[1].vaddr = 0x10000;             /* on the text */
	EXPECT_ELF_REFUSED(m, "overlap");
	m = img_new();
	m->ph[0].memsz = 0x2001;              /* text's third page is data's first */
	EXPECT_ELF_REFUSED(m, "overlap");
	m = img_new();
	m->ph[0].memsz = 0x2000;              /* ends where data starts: fine */
	EXPECT_EQ(img_check(m, &(const char *){ "" }), 0);
}

KTEST(cpio, elf_rights_and_entry)
{
	struct img *m = img_new();

	m->ph[1].flags = 7;
	EXPECT_ELF_REFUSED(m, "writable and executable");
	m = img_new();
	m->ph[0].flags = 1;
	EXPECT_ELF_REFUSED(m, "not readable");
	m = img_new();
	m->e->entry = 0x12000;                /* in data */
	EXPECT_ELF_REFUSED(m, "entry point outside");
	m = img_new();
	m->ph[0].type = 4;
	m->ph[1].type = 4;
	EXPECT_ELF_REFUSED(m, "no PT_LOAD");
}

KTEST(cpio, elf_too_many_loads)
{
	struct img *m = img_new();

	m->e->phnum = ELFIMG_MAX_LOADS + 1;
	for (unsigned i = 0; i < m->e->phnum; i++) {
		m->ph[i] = m->ph[0];
		m->ph[i].vaddr = 0x10000 + 0x1000 * i;
	}
	EXPECT_ELF_REFUSED(m, "too many PT_LOAD");
}
