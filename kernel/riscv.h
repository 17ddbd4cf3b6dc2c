/* riscv.h - named CSRs, status and interrupt bits, cause codes (privileged
 * spec v1.12), and the inline accessors the kernel uses. The constants are
 * usable from assembly; satp's fields are Sv39's, in mm/sv39.h. */
#ifndef RISCV_H
#define RISCV_H

#ifndef UL
#ifdef __ASSEMBLER__
#define UL(x) x
#else
#define UL(x) x##ul
#endif
#endif

#include "sv39.h"   /* satp: SV39_SATP_*, sv39_satp() */

/* sstatus */
#define SSTATUS_SIE   (UL(1) << 1)
#define SSTATUS_SPIE  (UL(1) << 5)
#define SSTATUS_SPP   (UL(1) << 8)
#define SSTATUS_SUM   (UL(1) << 18)
#define SSTATUS_MXR   (UL(1) << 19)

/* sie / sip */
#define IRQ_S_SOFT    1
#define IRQ_S_TIMER   5
#define IRQ_S_EXT     9
#define SIE_SSIE      (UL(1) << IRQ_S_SOFT)
#define SIE_STIE      (UL(1) << IRQ_S_TIMER)
#define SIE_SEIE      (UL(1) << IRQ_S_EXT)

/* scause */
#define SCAUSE_INTR   (UL(1) << 63)
#define EXC_INST_MISALIGNED   0
#define EXC_INST_ACCESS       1
#define EXC_ILLEGAL_INST      2
#define EXC_BREAKPOINT        3
#define EXC_LOAD_MISALIGNED   4
#define EXC_LOAD_ACCESS       5
#define EXC_STORE_MISALIGNED  6
#define EXC_STORE_ACCESS      7
#define EXC_ECALL_U           8
#define EXC_ECALL_S           9
#define EXC_INST_PAGE_FAULT   12
#define EXC_LOAD_PAGE_FAULT   13
#define EXC_STORE_PAGE_FAULT  15

/* scounteren: the counters U-mode may read */
#define SCOUNTEREN_CY (UL(1) << 0)   /* cycle */
#define SCOUNTEREN_TM (UL(1) << 1)   /* time */
#define SCOUNTEREN_IR (UL(1) << 2)   /* instret */

/* Sstc supervisor timer compare (CSR 0x14d; named by number so that
 * assemblers without Sstc accept it). */
#define CSR_STIMECMP 0x14d

#ifndef __ASSEMBLER__
#include <stdint.h>

#define csr_read(csr) ({ unsigned long v__; \
	__asm__ volatile("csrr %0, " #csr : "=r"(v__)); v__; })
#define csr_write(csr, val) \
	__asm__ volatile("csrw " #csr ", %0" :: "rK"((unsigned long)(val)) : "memory")
#define csr_set(csr, bits) \
	__asm__ volatile("csrs " #csr ", %0" :: "rK"((unsigned long)(bits)) : "memory")
#define csr_clear(csr, bits) \
	__asm__ volatile("csrc " #csr ", %0" :: "rK"((unsigned long)(bits)) : "memory")
#define csr_read_clear(csr, bits) ({ unsigned long v__; \
	__asm__ volatile("csrrc %0, " #csr ", %1" : "=r"(v__) : "rK"((unsigned long)(bits)) : "memory"); v__; })

static inline uint64_t rdtime(void)
{
	uint64_t t;
	__asm__ volatile("rdtime %0" : "=r"(t));
	return t;
}

static inline uint64_t rdinstret(void)
{
	uint64_t t;
	__asm__ volatile("rdinstret %0" : "=r"(t));
	return t;
}

static inline uint64_t rdcycle(void)
{
	uint64_t t;
	__asm__ volatile("rdcycle %0" : "=r"(t));
	return t;
}

static inline void wfi(void)
{
	__asm__ volatile("wfi");
}

static inline void sfence_vma_all(void)
{
	__asm__ volatile("sfence.vma" ::: "memory");
}

static inline void irq_enable(void)
{
	csr_set(sstatus, SSTATUS_SIE);
}

static inline unsigned long irq_save(void)
{
	return csr_read_clear(sstatus, SSTATUS_SIE) & SSTATUS_SIE;
}

static inline void irq_restore(unsigned long flags)
{
	if (flags & SSTATUS_SIE)
		csr_set(sstatus, SSTATUS_SIE);
}

#endif /* !__ASSEMBLER__ */

#endif
