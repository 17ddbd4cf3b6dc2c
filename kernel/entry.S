/* entry.S - the boot image header, first instructions of the boot hart and
 * of secondary harts, and the trap vector.
 *
 * The firmware (OpenSBI directly, or U-Boot's booti) enters in S-mode with
 * the MMU off at the load address, a0 = hartid, a1 = FDT physical address.
 * The load address is any 2 MiB-aligned physical address below the end of
 * the direct map: booti moves an Image found in RAM to RAM base +
 * text_offset, and boards put RAM at different bases. The image is linked at
 * KERNEL_VMA, so until paging is on only pc-relative addressing (lla) is
 * used, which yields physical addresses. The early page table maps: the
 * gigabyte holding _start at its physical address with one 1 GiB page (so
 * the instruction after `csrw satp` can still be fetched), the image at the
 * kernel window with 2 MiB pages from the load address, and physical
 * [0, 128 GiB) at the direct map with 1 GiB pages.
 */
#include "config.h"
#include "memlayout.h"
#include "riscv.h"
#include "sv39.h"

/* The early page table's entries, from the memory map and Sv39's fields. */
#define PTE_LEAF_RWX (SV39_PTE_V | SV39_PTE_RWX | SV39_PTE_G | SV39_PTE_A | SV39_PTE_D)
#define PTE_PPN_SHIFT SV39_PTE_PPN_SHIFT
#define GIGA_SHIFT    SV39_LEVEL_SHIFT(2)
#define MEGA2_SHIFT   SV39_LEVEL_SHIFT(1)
#define KWIN_INDEX    SV39_VPN(KERNEL_WINDOW, 2)    /* root entry of the image's gigabyte */
#define KWIN_L1_FIRST SV39_VPN(KERNEL_VMA, 1)       /* its L1 entry of _start */
#define DMAP_INDEX    SV39_VPN(DIRECT_MAP_BASE, 2)  /* first root entry of the direct map */
#define DMAP_GIGS     (DIRECT_MAP_SIZE >> GIGA_SHIFT)
/* The code below maps L1[KWIN_L1_FIRST + i] with 2 MiB pages and root
 * entries [DMAP_INDEX, DMAP_INDEX + DMAP_GIGS) with 1 GiB pages. */
#if KERNEL_VMA % KERNEL_LOAD_ALIGN || KERNEL_VMA - KERNEL_WINDOW != KWIN_L1_FIRST * SV39_SIZE_2M
#error "entry.S: KERNEL_VMA must start an L1 entry of the kernel window"
#endif
#if DMAP_INDEX + DMAP_GIGS > KWIN_INDEX
#error "entry.S: the direct map reaches the kernel window's root entry"
#endif

	.section .text.entry, "ax"
	.globl _start
/* The RISC-V boot image header (Linux Documentation/arch/riscv/
 * boot-image-header.rst), 64 bytes at offset 0 of the Image. U-Boot's booti
 * checks magic2 and needs image_size; code0 jumps over the header, so the
 * ELF entry and the Image entry are the same instruction. */
_start:
	.option push
	.option norvc
	j	real_start		/* code0: 4 bytes, uncompressed */
	.option pop
	.word	0			/* code1 */
	.dword	KERNEL_TEXT_OFFSET	/* text_offset */
	.dword	_image_size		/* image_size: the image with its BSS */
	.dword	0			/* flags: bit 0 = 0, little endian */
	.word	0x2			/* version 0.2: major << 16 | minor */
	.word	0			/* res1 */
	.dword	0			/* res2 */
	.ascii	"RISCV\0\0\0"		/* magic (deprecated) */
	.ascii	"RSC\x05"		/* magic2 */
	.word	0			/* res3: no PE/COFF header */

real_start:
	csrw	sie, zero
	csrw	sscratch, zero
	/* Only one hart boots. A hart the kernel starts through HSM can arrive
	 * here (the firmware's default next address, with the boot FDT in a1)
	 * instead of at _secondary_start: OpenSBI up to 1.2 sets the hart's
	 * HSM state to START_PENDING before it stores the start address, so a
	 * hart woken in between runs the default address (fixed in OpenSBI 1.3
	 * by commit e8e9ed3790fe, "lib: sbi: Set the state of a hart to
	 * START_PENDING after the hart is ready"). Boards ship old firmware, so
	 * the defence stays: such a hart waits for the index the boot hart
	 * posts in start_mailbox (one slot per dense index, holding the hart
	 * id it is for: any id, however large, can find its slot). */
	lla	t0, boot_claimed
	li	t1, 1
	amoswap.w.aq t1, t1, (t0)
	bnez	t1, raced_secondary
	mv	s0, a0			/* hartid */
	mv	s1, a1			/* FDT physical address */

	/* The load address must be 2 MiB-aligned (the kernel window uses
	 * 2 MiB pages) and the image must lie inside the direct map. */
	lla	s3, _start
	li	t1, KERNEL_LOAD_ALIGN - 1
	and	t1, s3, t1
	lla	s2, misaligned_msg
	bnez	t1, refuse
	li	t1, DIRECT_MAP_SIZE
	lla	t2, _kernel_end
	lla	s2, too_high_msg
	bgeu	t2, t1, refuse
	lla	t0, kernel_phys_base
	sd	s3, 0(t0)

	/* Clear BSS through physical addresses. */
	lla	t0, _bss_start
	lla	t1, _bss_end
1:	bgeu	t0, t1, 2f
	sd	zero, 0(t0)
	addi	t0, t0, 8
	j	1b
2:
	lla	a0, early_pt
	srli	t4, s3, GIGA_SHIFT		/* VPN[2] of the image's PA */
	slli	t5, t4, GIGA_SHIFT - SV39_PAGE_SHIFT + PTE_PPN_SHIFT
	ori	t5, t5, PTE_LEAF_RWX
	slli	t6, t4, 3
	add	t6, a0, t6
	sd	t5, 0(t6)			/* identity gigabyte */
	lla	a2, early_pt_kwin		/* kernel window: root -> L1 */
	srli	t5, a2, SV39_PAGE_SHIFT
	slli	t5, t5, PTE_PPN_SHIFT
	ori	t5, t5, SV39_PTE_V
	li	t6, KWIN_INDEX * 8
	add	t6, a0, t6
	sd	t5, 0(t6)
	/* L1[KWIN_L1_FIRST + i] = 2 MiB page at load address + i * 2 MiB, for
	 * every 2 MiB of [_start, _kernel_end). */
	addi	t6, a2, KWIN_L1_FIRST * 8
	mv	t0, s3
	lla	t2, _kernel_end
3:	srli	t5, t0, SV39_PAGE_SHIFT
	slli	t5, t5, PTE_PPN_SHIFT
	ori	t5, t5, PTE_LEAF_RWX
	sd	t5, 0(t6)
	addi	t6, t6, 8
	li	t1, SV39_SIZE_2M
	add	t0, t0, t1
	bltu	t0, t2, 3b
	li	t0, 0				/* direct map */
4:	slli	t5, t0, GIGA_SHIFT - SV39_PAGE_SHIFT + PTE_PPN_SHIFT
	ori	t5, t5, PTE_LEAF_RWX
	addi	t6, t0, DMAP_INDEX
	slli	t6, t6, 3
	add	t6, a0, t6
	sd	t5, 0(t6)
	addi	t0, t0, 1
	li	t1, DMAP_GIGS
	bltu	t0, t1, 4b

	srli	t0, a0, SV39_PAGE_SHIFT
	li	t1, SV39_SATP_MODE_SV39
	slli	t1, t1, SV39_SATP_MODE_SHIFT	/* satp.MODE = Sv39, ASID 0 */
	or	t0, t0, t1
	lla	t1, early_satp
	sd	t0, 0(t1)
	sfence.vma
	csrw	satp, t0
	sfence.vma
	ld	t0, boot_high_addr
	jr	t0

/* Refuse to boot: print the line at s2 through the legacy console, then
 * SBI System Reset (shutdown, system failure); a firmware without SRST
 * leaves the hart parked in wfi. */
refuse:
5:	lbu	a0, 0(s2)
	beqz	a0, 6f
	li	a7, 1
	ecall
	addi	s2, s2, 1
	j	5b
6:	li	a7, 0x53525354			/* SRST */
	li	a6, 0
	li	a0, 0				/* shutdown */
	li	a1, 1				/* system failure */
	ecall
park:
	wfi
	j	park

raced_secondary:
	/* Scan the slots until one posted (index + 1 != 0, read first) names
	 * this hart id (read after, ordered by the fence); spin until then. */
6:	lla	t0, start_mailbox
	li	t2, MAX_HARTS
7:	ld	t1, 8(t0)		/* index + 1, stored last (release) */
	fence	r, r
	beqz	t1, 8f
	ld	t3, 0(t0)		/* the hart id it is for */
	beq	t3, a0, 9f
8:	addi	t0, t0, 16
	addi	t2, t2, -1
	bnez	t2, 7b
	j	6b
9:	addi	a1, t1, -1		/* the dense index, as HSM's opaque */
	j	_secondary_start

	.balign 8
boot_high_addr:
	.dword	boot_high
secondary_high_addr:
	.dword	secondary_high

/* unsigned long boot_probe_u32(unsigned long va): the 32-bit word at va, or
 * -1 (all ones) when the load faults because nothing answers there. For the
 * boot hart before trap_init_hart, interrupts off: stvec points at the
 * fixup below for the one load, then is put back. */
	.globl boot_probe_u32
	.balign 4
boot_probe_u32:
	csrr	t1, stvec
	lla	t0, probe_fault
	csrw	stvec, t0
	lwu	a0, 0(a0)
	csrw	stvec, t1
	ret
	.balign 4
probe_fault:
	csrw	stvec, t1
	li	a0, -1
	ret

/* Secondary harts: started by SBI HSM at this physical address with
 * a0 = hartid, a1 = dense hart index (the opaque argument). */
	.globl _secondary_start
_secondary_start:
	csrw	sie, zero
	csrw	sscratch, zero
	lla	t0, early_satp
	ld	t0, 0(t0)
	sfence.vma
	csrw	satp, t0
	sfence.vma
	ld	t0, secondary_high_addr
	jr	t0

	.text
boot_high:
	mv	tp, zero			/* no hart data until hart_setup_tls */
	la	sp, hart0_stack
	li	t0, KSTACK_GUARD + KSTACK_SIZE
	add	sp, sp, t0
	la	t0, trap_vector
	csrw	stvec, t0
	mv	a0, s0
	mv	a1, s1
	call	kernel_boot
6:	wfi
	j	6b

/* A secondary hart's stacks are in its slot of the stack window, which
 * only the kernel table maps (start_secondaries mapped them before starting
 * it): switch to that table before the first use of sp. */
secondary_high:
	mv	tp, zero
	ld	t0, kernel_satp
	csrw	satp, t0
	sfence.vma
	li	sp, KSTACK_WINDOW + HSTACK_KSTACK + KSTACK_SIZE
	li	t1, HSTACK_SLOT
	mul	t0, a1, t1
	add	sp, sp, t0
	la	t0, trap_vector
	csrw	stvec, t0
	call	secondary_boot
7:	wfi
	j	7b

/* Trap vector. Kernel traps (sscratch == 0) save a struct trap_frame on the
 * current stack. Traps from U-mode find the hart's user-trap stack in
 * sscratch, whose top word holds the kernel tp; the user's sp and tp go
 * into the frame. trap_return restores a frame and, when it returns to
 * U-mode, points sscratch at that stack again. */
#define FRAME_SIZE (36 * 8)

	.macro SAVE_GPRS
	sd	x0, 0*8(sp)
	sd	x1, 1*8(sp)
	sd	x3, 3*8(sp)
	sd	x4, 4*8(sp)
	sd	x5, 5*8(sp)
	sd	x6, 6*8(sp)
	sd	x7, 7*8(sp)
	sd	x8, 8*8(sp)
	sd	x9, 9*8(sp)
	sd	x10, 10*8(sp)
	sd	x11, 11*8(sp)
	sd	x12, 12*8(sp)
	sd	x13, 13*8(sp)
	sd	x14, 14*8(sp)
	sd	x15, 15*8(sp)
	sd	x16, 16*8(sp)
	sd	x17, 17*8(sp)
	sd	x18, 18*8(sp)
	sd	x19, 19*8(sp)
	sd	x20, 20*8(sp)
	sd	x21, 21*8(sp)
	sd	x22, 22*8(sp)
	sd	x23, 23*8(sp)
	sd	x24, 24*8(sp)
	sd	x25, 25*8(sp)
	sd	x26, 26*8(sp)
	sd	x27, 27*8(sp)
	sd	x28, 28*8(sp)
	sd	x29, 29*8(sp)
	sd	x30, 30*8(sp)
	sd	x31, 31*8(sp)
	.endm

	.balign 4
	.globl trap_vector
trap_vector:
	csrrw	sp, sscratch, sp
	bnez	sp, from_user
	csrrw	sp, sscratch, sp		/* kernel trap: sp back, sscratch 0 */

	/* A kernel stack that ran into its guard page cannot take the frame:
	 * continue on the hart's emergency stack (the report then shows that
	 * stack's sp; stval has the faulting address). t0 waits in sscratch. */
	beqz	tp, 1f
	csrw	sscratch, t0
	ld	t0, HART_TP_STACK_LO(tp)
	addi	t0, t0, FRAME_SIZE
	bgeu	sp, t0, 2f
	ld	sp, HART_TP_EMERG_SP(tp)
2:	csrrw	t0, sscratch, zero
1:	addi	sp, sp, -FRAME_SIZE
	SAVE_GPRS
	addi	t0, sp, FRAME_SIZE
	sd	t0, 2*8(sp)			/* sp before the trap */
	j	save_csrs

from_user:
	addi	sp, sp, -FRAME_SIZE
	SAVE_GPRS
	csrr	t0, sscratch
	sd	t0, 2*8(sp)			/* the user's sp */
	csrw	sscratch, zero
	ld	tp, FRAME_SIZE(sp)		/* the kernel's tp for this hart */

save_csrs:
	csrr	t0, sstatus
	sd	t0, 32*8(sp)
	csrr	t0, sepc
	sd	t0, 33*8(sp)
	csrr	t0, scause
	sd	t0, 34*8(sp)
	csrr	t0, stval
	sd	t0, 35*8(sp)
	mv	a0, sp
	call	trap_handler

	.globl trap_return
trap_return:
	ld	t0, 32*8(sp)
	csrw	sstatus, t0
	ld	t1, 33*8(sp)
	csrw	sepc, t1
	andi	t0, t0, SSTATUS_SPP
	bnez	t0, 3f
	addi	t1, sp, FRAME_SIZE		/* back to U: next trap's stack */
	csrw	sscratch, t1
3:	ld	x1, 1*8(sp)
	ld	x3, 3*8(sp)
	ld	x4, 4*8(sp)
	ld	x5, 5*8(sp)
	ld	x6, 6*8(sp)
	ld	x7, 7*8(sp)
	ld	x8, 8*8(sp)
	ld	x9, 9*8(sp)
	ld	x10, 10*8(sp)
	ld	x11, 11*8(sp)
	ld	x12, 12*8(sp)
	ld	x13, 13*8(sp)
	ld	x14, 14*8(sp)
	ld	x15, 15*8(sp)
	ld	x16, 16*8(sp)
	ld	x17, 17*8(sp)
	ld	x18, 18*8(sp)
	ld	x19, 19*8(sp)
	ld	x20, 20*8(sp)
	ld	x21, 21*8(sp)
	ld	x22, 22*8(sp)
	ld	x23, 23*8(sp)
	ld	x24, 24*8(sp)
	ld	x25, 25*8(sp)
	ld	x26, 26*8(sp)
	ld	x27, 27*8(sp)
	ld	x28, 28*8(sp)
	ld	x29, 29*8(sp)
	ld	x30, 30*8(sp)
	ld	x31, 31*8(sp)
	ld	x2, 2*8(sp)
	sret

/* user_enter(frame): run the user context in frame, which must sit just
 * below the hart's user-trap stack top. Does not return. */
	.globl user_enter
user_enter:
	mv	sp, a0
	j	trap_return

	.section .rodata
misaligned_msg:
	.asciz	"kernel: load address not 2 MiB-aligned; stopping\n"
too_high_msg:
	.asciz	"kernel: image not below 128 GiB (the direct map); stopping\n"

	.section .bss.pagetables, "aw", @nobits
	.balign 4096
	.globl early_pt
early_pt:
	.zero	4096
early_pt_kwin:					/* L1 of the kernel window */
	.zero	4096
	/* The boot hart's stacks (index 0), needed before any allocator;
	 * the other harts' are mapped in the stack window at boot. */
	.globl hart0_stack
	.balign 4096
hart0_stack:					/* guard page, then the stack */
	.zero	KSTACK_GUARD + KSTACK_SIZE
	/* Above the kernel stack, so the check in trap_vector never sends a
	 * trap already on the emergency stack back to its top. */
	.globl hart0_emerg
hart0_emerg:
	.zero	EMERG_STACK_SIZE
	.globl hart0_utrap
hart0_utrap:					/* traps from U-mode */
	.zero	UTRAP_STACK_SIZE

	.section .data
	.balign 8
	.globl early_satp
early_satp:
	.dword	0
	.globl kernel_phys_base
kernel_phys_base:			/* physical address of _start */
	.dword	0
boot_claimed:				/* in .data: BSS is cleared after the claim */
	.word	0

	.section .bss
	.balign 8
	.globl start_mailbox
start_mailbox:				/* per dense index: { hart id, index + 1 } */
	.zero	16 * MAX_HARTS
