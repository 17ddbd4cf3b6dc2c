/* elf.c - ELF64 loader for partition images: check everything first
 * (platform/elfimg.c, the same checks the host tests run), then create one
 * VM segment per PT_LOAD and copy the file bytes through the direct map
 * (the partition's pages are never mapped writable for it unless the
 * segment is). */
#include "elf.h"

#include <string.h>

#include "boot.h"
#include "elfimg.h"
#include "err.h"
#include "part.h"

int elf_copy_to(struct vm_descriptor *d, uintptr_t va, const void *from, size_t n)
{
	const uint8_t *src = from;

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

int elf_check(const void *img, size_t len, const char **why)
{
	struct elfimg m;

	return elfimg_check(img, len, ELF_USER_LO, ELF_USER_HI, &m, why);
}

int elf_load(struct vm_descriptor *d, const void *img, size_t len,
	     uintptr_t *entry, uintptr_t *end, const char **why)
{
	struct elfimg m;
	int rc = elfimg_check(img, len, ELF_USER_LO, ELF_USER_HI, &m, why);

	if (rc)
		return rc;
	for (unsigned i = 0; i < m.nload; i++) {
		const struct elfimg_load *l = &m.load[i];
		unsigned fl = VM_U | VM_R | (l->flags & ELFIMG_W ? VM_W : 0) |
			      (l->flags & ELFIMG_X ? VM_X : 0);
		const char *name = (fl & VM_X) ? "text" : (fl & VM_W) ? "data" : "rodata";

		if (!vm_new_segment(d, l->vaddr, l->memsz, l->memsz, fl, name))
			return *why = "no room for a PT_LOAD segment", E_NOMEM;
		rc = elf_copy_to(d, l->vaddr, (const uint8_t *)img + l->offset, l->filesz);
		if (rc)
			return *why = "cannot reach a loaded page", rc;
	}
	*entry = m.entry;
	*end = m.end;
	return 0;
}
