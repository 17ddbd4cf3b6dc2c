/* elf.h - loading a partition's ELF64 image into its address space. */
#ifndef KERNEL_ELF_H
#define KERNEL_ELF_H

#include <stddef.h>
#include <stdint.h>

#include "vm.h"

/* Validate the image (ELF64, little-endian, RISC-V, executable, program
 * headers inside the image, PT_LOAD segments page-aligned, inside the lower
 * half, above page 0, not overlapping, filesz <= memsz, never W and X) and
 * load each PT_LOAD as a VM segment named "text", "rodata" or "data" with
 * its rights plus VM_U. Returns 0 with *entry and *end (first address after
 * the highest segment); E_CORRUPT with *why set, or the VM's error. On
 * failure segments already created stay in d (vm_free cleans them). */
int elf_load(struct vm_descriptor *d, const void *img, size_t len,
	     uintptr_t *entry, uintptr_t *end, const char **why);

#endif
