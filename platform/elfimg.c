/* elfimg.c - the ELF64 checks of a partition image (see elfimg.h). The
 * headers are copied out with memcpy: the image may sit at any alignment
 * (an initrd member is only 4-byte aligned). */
#include "elfimg.h"

#include <stdbool.h>
#include <string.h>

#include "err.h"

#define EI_NIDENT   16
#define ELFCLASS64  2
#define ELFDATA2LSB 1
#define ET_EXEC     2
#define EM_RISCV    243
#define PT_LOAD     1
#define MAX_PHNUM   64

struct ehdr {
	unsigned char ident[EI_NIDENT];
	uint16_t type, machine;
	uint32_t version;
	uint64_t entry, phoff, shoff;
	uint32_t flags;
	uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct phdr {
	uint32_t type, flags;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

static int check_header(const struct ehdr *e, size_t len, const char **why)
{
	static const unsigned char magic[4] = { 0x7f, 'E', 'L', 'F' };

	if (memcmp(e->ident, magic, 4))
		return *why = "not an ELF image (bad magic)", E_CORRUPT;
	if (e->ident[4] != ELFCLASS64)
		return *why = "not ELF64 (wrong class)", E_CORRUPT;
	if (e->ident[5] != ELFDATA2LSB)
		return *why = "not little-endian", E_CORRUPT;
	if (e->machine != EM_RISCV)
		return *why = "not a RISC-V image (wrong machine)", E_CORRUPT;
	if (e->type != ET_EXEC)
		return *why = "not an executable (ET_EXEC)", E_CORRUPT;
	if (e->phentsize != sizeof(struct phdr) || e->phnum == 0 || e->phnum > MAX_PHNUM ||
	    e->phoff > len || len - e->phoff < (size_t)e->phnum * sizeof(struct phdr))
		return *why = "program headers outside the image", E_CORRUPT;
	return 0;
}

static int check_load(const struct phdr *p, size_t len, uint64_t lo, uint64_t hi,
		      const char **why)
{
	if (p->filesz > p->memsz || p->offset > len || len - p->offset < p->filesz)
		return *why = "segment bytes outside the image", E_CORRUPT;
	if (p->vaddr & (ELFIMG_PAGE - 1))
		return *why = "segment address not page-aligned", E_CORRUPT;
	if (p->memsz == 0 || p->vaddr < lo || p->vaddr >= hi ||
	    (hi - p->vaddr) / ELFIMG_PAGE <
	    p->memsz / ELFIMG_PAGE + (p->memsz % ELFIMG_PAGE != 0))
		return *why = "segment outside the partition's program range", E_CORRUPT;
	if ((p->flags & ELFIMG_W) && (p->flags & ELFIMG_X))
		return *why = "segment both writable and executable", E_CORRUPT;
	if (!(p->flags & ELFIMG_R))
		return *why = "segment not readable", E_CORRUPT;
	return 0;
}

static int check_overlaps(const struct elfimg *m, const char **why)
{
	for (unsigned i = 0; i < m->nload; i++)
		for (unsigned j = i + 1; j < m->nload; j++) {
			const struct elfimg_load *a = &m->load[i], *b = &m->load[j];

			if (a->vaddr < b->vaddr + b->memsz && b->vaddr < a->vaddr + a->memsz)
				return *why = "PT_LOAD segments overlap", E_CORRUPT;
		}
	return 0;
}

int elfimg_check(const void *img, size_t len, uint64_t lo, uint64_t hi,
		 struct elfimg *out, const char **why)
{
	const uint8_t *b = img;
	struct ehdr e;
	struct elfimg m;
	bool entry_ok = false;
	int rc;

	if (len < sizeof(e))
		return *why = "not an ELF image (shorter than an ELF header)", E_CORRUPT;
	memcpy(&e, b, sizeof(e));
	if ((rc = check_header(&e, len, why)))
		return rc;
	memset(&m, 0, sizeof(m));
	for (unsigned i = 0; i < e.phnum; i++) {
		struct phdr p;

		memcpy(&p, b + e.phoff + (size_t)i * sizeof(p), sizeof(p));
		if (p.type != PT_LOAD)
			continue;
		if ((rc = check_load(&p, len, lo, hi, why)))
			return rc;
		if (m.nload == ELFIMG_MAX_LOADS)
			return *why = "too many PT_LOAD segments", E_CORRUPT;
		m.load[m.nload++] = (struct elfimg_load){
			.vaddr = p.vaddr,
			.memsz = (p.memsz + ELFIMG_PAGE - 1) & ~(uint64_t)(ELFIMG_PAGE - 1),
			.offset = p.offset, .filesz = p.filesz,
			.flags = p.flags & (ELFIMG_R | ELFIMG_W | ELFIMG_X),
		};
	}
	if (!m.nload)
		return *why = "no PT_LOAD segment", E_CORRUPT;
	if ((rc = check_overlaps(&m, why)))
		return rc;
	for (unsigned i = 0; i < m.nload; i++) {
		const struct elfimg_load *l = &m.load[i];

		if (l->vaddr + l->memsz > m.end)
			m.end = l->vaddr + l->memsz;
		entry_ok |= (l->flags & ELFIMG_X) && e.entry >= l->vaddr &&
			    e.entry < l->vaddr + l->memsz;
	}
	if (!entry_ok)
		return *why = "entry point outside every executable segment", E_CORRUPT;
	m.entry = e.entry;
	*out = m;
	return 0;
}
