/* part_mem.c - a partition's memory seen from the kernel: page faults
 * from U-mode (growing a segment within the quota, or a stop with the
 * reason) and the checked copies of system-call arguments, which take
 * the same path. */
#include <string.h>

#include "boot.h"
#include "part_int.h"
#include "shm.h"
#include "trap.h"
#include "vm.h"

#define PAGE ENV_PAGE_SIZE

/* What a U-mode access of `acc` at va makes the kernel do: grow a segment
 * within the quota (FAULT_QUOTA when it would go over, nothing done) or
 * map the page; FAULT_BAD with *code when the access is not allowed.
 * The one path for U-mode faults and for the kernel's copies. */
enum { FAULT_IN, FAULT_QUOTA, FAULT_BAD };

struct fault_info {
	const struct vm_segment *seg;
	size_t grow, now;
	int code;
};

static const struct vm_segment *segment_of(const struct partition *p, uintptr_t va)
{
	for (const struct vm_segment *s = p->vm->segs; s; s = s->next)
		if (va >= s->base && va - s->base < s->max_size)
			return s;
	return NULL;
}

/* Pages a fault at va would add to a growable segment (0 if none). */
static size_t growth_pages(const struct vm_segment *s, uintptr_t va)
{
	uintptr_t page = va & ~(uintptr_t)(PAGE - 1);

	if (!s)
		return 0;
	if ((s->flags & VM_GROW_UP) && page >= s->base + s->size)
		return (page + PAGE - s->base - s->size) / PAGE;
	if ((s->flags & VM_GROW_DOWN) && page < s->base + s->max_size - s->size)
		return (s->base + s->max_size - s->size - page) / PAGE;
	return 0;
}

static int fault_in(struct partition *p, uintptr_t va, unsigned acc, struct fault_info *fi)
{
	fi->seg = segment_of(p, va);
	fi->grow = growth_pages(fi->seg, va);
	fi->now = part_pages(p);
	fi->code = VM_FAULT_NOSEG;
	/* what its shared areas are charged counts too (kernel/shm.c) */
	if (fi->grow && fi->now + shm_charged(p) + fi->grow > p->quota_pages)
		return FAULT_QUOTA;
	fi->code = vm_handle_fault(p->vm, va, acc, &fi->seg);
	if (fi->code != VM_FAULT_OK)
		return FAULT_BAD;
	p->faults_grown += fi->grow != 0;
	if (fi->now + fi->grow > p->peak_pages)
		p->peak_pages = fi->now + fi->grow;
	return FAULT_IN;
}

void part_user_page_fault(struct partition *p, struct trap_frame *tf, unsigned long cause)
{
	unsigned acc = VM_U | (cause == EXC_LOAD_PAGE_FAULT ? VM_R :
			       cause == EXC_STORE_PAGE_FAULT ? VM_W : VM_X);
	struct fault_info fi;

	switch (fault_in(p, tf->stval, acc, &fi)) {
	case FAULT_IN:
		return;
	case FAULT_QUOTA:
		part_stop(p, tf, "memory quota exceeded: %zu pages mapped, %zu more needed at 0x%lx "
			  "in segment %s, quota %zu", fi.now, fi.grow, tf->stval, fi.seg->name,
			  p->quota_pages);
		return;
	}
	if (tf->stval >= USER_VA_END)
		part_stop(p, tf, "%s at 0x%lx: kernel memory, not accessible to partitions",
			  trap_cause_name(cause), tf->stval);
	else
		part_stop(p, tf, "%s at 0x%lx: %s%s%s", trap_cause_name(cause), tf->stval,
			  vm_fault_str(fi.code), fi.seg ? " in segment " : "",
			  fi.seg ? fi.seg->name : "");
}

static bool user_page(struct partition *p, uintptr_t va, bool write, uint64_t *pa)
{
	unsigned prot;

	if (pt_translate(&p->vm->pt, va, pa, &prot, NULL))
		return false;
	return (prot & PT_U) && (prot & PT_R) && (!write || (prot & PT_W));
}

/* The page at va as a U-mode access would find it: faulted in (and
 * charged) if a growable segment covers it. */
static bool user_page_in(struct partition *p, uintptr_t va, bool write, uint64_t *pa)
{
	struct fault_info fi;

	if (user_page(p, va, write, pa))
		return true;
	switch (fault_in(p, va, VM_U | (write ? VM_W : VM_R), &fi)) {
	case FAULT_QUOTA:
		p->copy_fail = "memory quota exceeded";
		return false;
	case FAULT_BAD:
		p->copy_fail = vm_fault_str(fi.code);
		return false;
	}
	if (user_page(p, va, write, pa))
		return true;
	p->copy_fail = "not accessible";
	return false;
}

static bool copy(struct partition *p, uintptr_t uva, void *kbuf, size_t len, bool out)
{
	uint8_t *k = kbuf;

	if (uva + len < uva || uva + len > USER_VA_END) {
		p->copy_fail = "beyond the partition's address space";
		return false;
	}
	while (len) {
		size_t off = uva & (PAGE - 1), chunk = PAGE - off;
		uint64_t pa;

		if (!user_page_in(p, uva, out, &pa))
			return false;
		if (chunk > len)
			chunk = len;
		if (out)
			memcpy(pa_to_dmap(pa), k, chunk);
		else
			memcpy(k, pa_to_dmap(pa), chunk);
		uva += chunk;
		k += chunk;
		len -= chunk;
	}
	return true;
}

bool part_copy_in(struct partition *p, void *dst, uintptr_t uva, size_t len)
{
	return copy(p, uva, dst, len, false);
}

bool part_copy_out(struct partition *p, uintptr_t uva, const void *src, size_t len)
{
	return copy(p, uva, (void *)src, len, true);
}
