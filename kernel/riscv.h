/* riscv.h - named CSRs, status and interrupt bits, cause codes (privileged
 * spec v1.12), and the inline accessors the kernel uses. */
#ifndef RISCV_H
#define RISCV_H

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

/* sstatus */
#define SSTATUS_SIE   (1ul << 1)
#define SSTATUS_SPIE  (1ul << 5)
#define SSTATUS_SPP   (1ul << 8)
#define SSTATUS_SUM   (1ul << 18)
#define SSTATUS_MXR   (1ul << 19)

/* sie / sip */
#define IRQ_S_SOFT    1
#define IRQ_S_TIMER   5
#define IRQ_S_EXT     9
#define SIE_SSIE      (1ul << IRQ_S_SOFT)
#define SIE_STIE      (1ul << IRQ_S_TIMER)
#define SIE_SEIE      (1ul << IRQ_S_EXT)

/* scause */
#define SCAUSE_INTR   (1ul << 63)
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

/* satp */
#define SATP_MODE_SV39  (8ul << 60)
#define SATP_ASID_SHIFT 44
#define SATP_ASID_MASK  0xfffful

/* Sstc supervisor timer compare (CSR 0x14d; named by number so that
 * assemblers without Sstc accept it). */
#define CSR_STIMECMP 0x14d

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

#endif
