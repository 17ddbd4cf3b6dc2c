/* sv39.h - hardware facts of the RISC-V Sv39 virtual-memory scheme, named.
 *
 * Privileged spec, "Sv39: Page-Based 39-bit Virtual-Memory System". Every
 * PTE field, page size and satp field used by mm/pt.c and mm/vm.c is here;
 * logic elsewhere calls these inlines instead of shifting by hand.
 *
 *   PTE:  63..54 reserved (Svpbmt/Svnapot, clear here) | 53..10 PPN |
 *         9..8 RSW | 7 D | 6 A | 5 G | 4 U | 3 X | 2 W | 1 R | 0 V
 *   VA:   63..39 copies of bit 38 | 38..30 VPN[2] | 29..21 VPN[1] |
 *         20..12 VPN[0] | 11..0 offset
 *   satp: 63..60 MODE (8 = Sv39) | 59..44 ASID | 43..0 root PPN
 */
#ifndef MM_SV39_H
#define MM_SV39_H

/* Constants are usable from assembly (kernel/entry.S): SV39_U64(x) and
 * SV39_U32(x) are x there, unsigned long long and unsigned in C. */
#ifdef __ASSEMBLER__
#define SV39_U64(x) x
#define SV39_U32(x) x
#else
#define SV39_U64(x) x##ull
#define SV39_U32(x) x##u
#endif

#define SV39_PTE_V   (SV39_U64(1) << 0)
#define SV39_PTE_R   (SV39_U64(1) << 1)
#define SV39_PTE_W   (SV39_U64(1) << 2)
#define SV39_PTE_X   (SV39_U64(1) << 3)
#define SV39_PTE_U   (SV39_U64(1) << 4)
#define SV39_PTE_G   (SV39_U64(1) << 5)
#define SV39_PTE_A   (SV39_U64(1) << 6)
#define SV39_PTE_D   (SV39_U64(1) << 7)
#define SV39_PTE_RSW_SHIFT 8
#define SV39_PTE_RSW (SV39_U64(3) << SV39_PTE_RSW_SHIFT)   /* ignored by hardware */
#define SV39_PTE_PPN_SHIFT 10
#define SV39_PTE_PPN_BITS  44
#define SV39_PTE_RESERVED  (~SV39_U64(0) << 54)             /* bits 63..54 */
#define SV39_PTE_RWX (SV39_PTE_R | SV39_PTE_W | SV39_PTE_X)

#define SV39_PAGE_SHIFT 12
#define SV39_PAGE_SIZE  (SV39_U64(1) << SV39_PAGE_SHIFT)
#define SV39_LEVELS     3           /* level 2 = root, level 0 = 4 KiB leaves */
#define SV39_VPN_BITS   9
#define SV39_ENTRIES    (SV39_U32(1) << SV39_VPN_BITS)      /* PTEs per table */
#define SV39_VA_BITS    39
#define SV39_PA_BITS    56

/* Shift of the bytes one leaf at `level` maps (0: 4 KiB, 1: 2 MiB, 2: 1 GiB),
 * and va's index in the table at `level`, for constant addresses (C code
 * calls sv39_vpn()). */
#define SV39_LEVEL_SHIFT(level) (SV39_PAGE_SHIFT + SV39_VPN_BITS * (level))
#define SV39_VPN(va, level) (((va) >> SV39_LEVEL_SHIFT(level)) & (SV39_ENTRIES - 1))

#define SV39_SIZE_4K (SV39_U64(1) << 12)
#define SV39_SIZE_2M (SV39_U64(1) << 21)
#define SV39_SIZE_1G (SV39_U64(1) << 30)

/* Lower half [0, 2^38) and upper half [2^64 - 2^38, 2^64); the root entries
 * 0..255 map the lower half, 256..511 the upper half. */
#define SV39_LOWER_END   (SV39_U64(1) << (SV39_VA_BITS - 1))
#define SV39_UPPER_START (~SV39_U64(0) << (SV39_VA_BITS - 1))
#define SV39_ROOT_UPPER  (SV39_ENTRIES / 2)

#define SV39_SATP_MODE_SHIFT 60
#define SV39_SATP_MODE_SV39  SV39_U64(8)
#define SV39_SATP_ASID_SHIFT 44
#define SV39_SATP_ASID_BITS  16    /* ASIDLEN <= 16, probed by the kernel */
#define SV39_SATP_ASID_MASK  ((SV39_U64(1) << SV39_SATP_ASID_BITS) - 1)
#define SV39_SATP_PPN_MASK   ((SV39_U64(1) << SV39_SATP_ASID_SHIFT) - 1)

#ifndef __ASSEMBLER__
#include <stdbool.h>
#include <stdint.h>

_Static_assert(SV39_ENTRIES * 8 == SV39_PAGE_SIZE, "a table fills one page");
_Static_assert(SV39_PAGE_SHIFT + SV39_LEVELS * SV39_VPN_BITS == SV39_VA_BITS,
	       "three 9-bit VPN fields over a 12-bit offset");

/* Bytes mapped by one leaf at `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB). */
static inline uint64_t sv39_level_size(int level)
{
	return 1ull << (SV39_PAGE_SHIFT + SV39_VPN_BITS * level);
}

/* Index of va's entry in the table at `level`. */
static inline unsigned sv39_vpn(uint64_t va, int level)
{
	return (unsigned)(va >> (SV39_PAGE_SHIFT + SV39_VPN_BITS * level)) &
	       (SV39_ENTRIES - 1);
}

/* Bits 63..39 all equal bit 38. */
static inline bool sv39_canonical(uint64_t va)
{
	uint64_t top = va >> (SV39_VA_BITS - 1);     /* bits 63..38 */
	return top == 0 || top == (~0ull >> (SV39_VA_BITS - 1));
}

static inline bool sv39_pte_valid(uint64_t pte)
{
	return pte & SV39_PTE_V;
}

/* A valid PTE with any of R, W, X is a leaf; with none it points to a table. */
static inline bool sv39_pte_leaf(uint64_t pte)
{
	return (pte & SV39_PTE_V) && (pte & SV39_PTE_RWX);
}

static inline uint64_t sv39_pte_pa(uint64_t pte)
{
	uint64_t ppn = (pte >> SV39_PTE_PPN_SHIFT) &
		       ((1ull << SV39_PTE_PPN_BITS) - 1);
	return ppn << SV39_PAGE_SHIFT;
}

/* PTE for a page-aligned pa with the given low flag bits. */
static inline uint64_t sv39_pte_make(uint64_t pa, uint64_t flags)
{
	return ((pa >> SV39_PAGE_SHIFT) << SV39_PTE_PPN_SHIFT) | flags;
}

static inline uint64_t sv39_pte_flags(uint64_t pte)
{
	return pte & ((1ull << SV39_PTE_PPN_SHIFT) - 1);
}

/* satp value selecting Sv39 with this ASID and root table. */
static inline uint64_t sv39_satp(unsigned asid, uint64_t root_pa)
{
	return (SV39_SATP_MODE_SV39 << SV39_SATP_MODE_SHIFT) |
	       ((uint64_t)asid << SV39_SATP_ASID_SHIFT) |
	       ((root_pa >> SV39_PAGE_SHIFT) & SV39_SATP_PPN_MASK);
}

#endif /* !__ASSEMBLER__ */

#endif
