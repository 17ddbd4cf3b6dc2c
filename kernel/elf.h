/* elf.h - loading a partition's ELF64 image into its address space. */
#ifndef KERNEL_ELF_H
#define KERNEL_ELF_H

#include <stddef.h>
#include <stdint.h>

#include "memlayout.h"
#include "vm.h"

/* Where a partition's PT_LOAD segments may lie: above page 0, below the
 * heap's guard gap. */
#define ELF_USER_LO ENV_PAGE_SIZE
#define ELF_USER_HI (USER_HEAP_BASE - VM_GUARD_SIZE)

/* The checks of elf_load without loading anything (platform/elfimg.h):
 * 0, or E_CORRUPT with *why. */
int elf_check(const void *img, size_t len, const char **why);

/* Validate the image (elfimg_check: ELF64, little-endian, RISC-V,
 * executable, program headers inside the image, PT_LOAD segments
 * page-aligned, inside [ELF_USER_LO, ELF_USER_HI), not overlapping,
 * filesz <= memsz, never W and X, the entry in an executable one) and
 * load each PT_LOAD as a VM segment named "text", "rodata" or "data" with
 * its rights plus VM_U. Returns 0 with *entry and *end (first address
 * after the highest segment); E_CORRUPT with *why set, or the VM's error.
 * On failure segments already created stay in d (vm_free cleans them). */
int elf_load(struct vm_descriptor *d, const void *img, size_t len,
	     uintptr_t *entry, uintptr_t *end, const char **why);

/* Copy n bytes to va in d through the direct map (every page mapped).
 * 0, or the VM's error. */
int elf_copy_to(struct vm_descriptor *d, uintptr_t va, const void *src, size_t n);

#endif
