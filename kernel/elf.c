/* elf.c - ELF64 loader for partition images: check everything first, then
 * create one VM segment per PT_LOAD and copy the file bytes through the
 * direct map (the partition's pages are never mapped writable for it
 * unless the segment is). */
#include "elf.h"

#include <string.h>

#include "err.h"
#include "kernel.h"
#include "part.h"

#define EI_NIDENT   16
#define ELFCLASS64  2
#define ELFDATA2LSB 1
#define ET_EXEC     2
#define EM_RISCV    243
#define PT_LOAD     1
#define PF_X 1
#define PF_W 2
#define PF_R 4
#define MAX_LOADS 8

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

	if (len < sizeof(*e) || memcmp(e->ident, magic, 4))
		return *why = "not an ELF image", E_CORRUPT;
	if (e->ident[4] != ELFCLASS64 || e->ident[5] != ELFDATA2LSB)
		return *why = "not ELF64 little-endian", E_CORRUPT;
	if (e->type != ET_EXEC || e->machine != EM_RISCV)
		return *why = "not a RISC-V executable", E_CORRUPT;
	if (e->phentsize != sizeof(struct phdr) || e->phnum == 0 || e->phnum > 16 ||
	    e->phoff > len || len - e->phoff < (size_t)e->phnum * sizeof(struct phdr))
		return *why = "program headers outside the image", E_CORRUPT;
	return 0;
}

static int check_load(const struct phdr *p, size_t len, const char **why)
{
	if (p->filesz > p->memsz || p->offset > len || len - p->offset < p->filesz)
		return *why = "segment bytes outside the image", E_CORRUPT;
	if ((p->vaddr & (ENV_PAGE_SIZE - 1)) || p->vaddr < ENV_PAGE_SIZE ||
	    p->memsz == 0 || p->vaddr >= USER_VA_END || USER_VA_END - p->vaddr < p->memsz)
		return *why = "segment address unaligned or outside the partition half", E_CORRUPT;
	if ((p->flags & PF_W) && (p->flags & PF_X))
		return *why = "segment both writable and executable", E_CORRUPT;
	if (!(p->flags & PF_R))
		return *why = "segment not readable", E_CORRUPT;
	return 0;
}

static int copy_in(struct vm_descriptor *d, uintptr_t va, const uint8_t *src, size_t n)
{
	while (n) {
		uint64_t pa;
		size_t off = va & (ENV_PAGE_SIZE - 1), chunk = ENV_PAGE_SIZE - off;
		int rc = vm_get_phys(d, va, &pa);

		if (rc)
			return rc;
		if (chunk > n)
			chunk = n;
		memcpy(pa_to_dmap(pa), src, chunk);
		va += chunk;
		src += chunk;
		n -= chunk;
	}
	return 0;
}

int elf_load(struct vm_descriptor *d, const void *img, size_t len,
	     uintptr_t *entry, uintptr_t *end, const char **why)
{
	const struct ehdr *e = img;
	const struct phdr *ph;
	uintptr_t top = 0;
	unsigned nload = 0;
	int rc = check_header(e, len, why);

	if (rc)
		return rc;
	ph = (const struct phdr *)((const uint8_t *)img + e->phoff);
	for (unsigned i = 0; i < e->phnum; i++)
		if (ph[i].type == PT_LOAD && (rc = check_load(&ph[i], len, why)))
			return rc;
	for (unsigned i = 0; i < e->phnum; i++) {
		const struct phdr *p = &ph[i];
		size_t size = (p->memsz + ENV_PAGE_SIZE - 1) & ~(ENV_PAGE_SIZE - 1);
		unsigned fl = VM_U | VM_R | (p->flags & PF_W ? VM_W : 0) | (p->flags & PF_X ? VM_X : 0);
		const char *name = (fl & VM_X) ? "text" : (fl & VM_W) ? "data" : "rodata";

		if (p->type != PT_LOAD)
			continue;
		if (++nload > MAX_LOADS)
			return *why = "too many PT_LOAD segments", E_CORRUPT;
		if (!vm_new_segment(d, p->vaddr, size, size, fl, name))
			return *why = "PT_LOAD segments overlap", E_EXIST;
		rc = copy_in(d, p->vaddr, (const uint8_t *)img + p->offset, p->filesz);
		if (rc)
			return *why = "cannot reach a loaded page", rc;
		if (p->vaddr + size > top)
			top = p->vaddr + size;
	}
	if (!nload)
		return *why = "no PT_LOAD segment", E_CORRUPT;
	*entry = e->entry;
	*end = top;
	return 0;
}
