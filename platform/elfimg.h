/* elfimg.h - checking a partition's ELF64 image before anything is loaded:
 * freestanding, so the kernel (kernel/elf.c) and the host tests
 * (tests/unit/cpio_test.c) run the same checks. Nothing in the image is
 * trusted. */
#ifndef PLATFORM_ELFIMG_H
#define PLATFORM_ELFIMG_H

#include <stddef.h>
#include <stdint.h>

#define ELFIMG_MAX_LOADS 8
#define ELFIMG_PAGE      4096u

struct elfimg_load {
	uint64_t vaddr, memsz;        /* memsz rounded up to a page */
	uint64_t offset, filesz;      /* bytes in the image */
	unsigned flags;               /* ELFIMG_R/W/X */
};

#define ELFIMG_X 1
#define ELFIMG_W 2
#define ELFIMG_R 4

struct elfimg {
	uint64_t entry;
	uint64_t end;                 /* first address after the highest segment */
	unsigned nload;
	struct elfimg_load load[ELFIMG_MAX_LOADS];
};

/* Check img[0, len): an ELF64 little-endian RISC-V executable; program
 * headers inside the image; 1..ELFIMG_MAX_LOADS PT_LOAD segments, each
 * page-aligned, readable, never writable and executable, file bytes inside
 * the image and no more than its memory size, every page inside [lo, hi)
 * (no sum overflows), no two sharing a page; the entry inside an
 * executable segment. Returns 0 with *out filled, or E_CORRUPT with *why
 * (a fixed string). */
int elfimg_check(const void *img, size_t len, uint64_t lo, uint64_t hi,
		 struct elfimg *out, const char **why);

#endif
