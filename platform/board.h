/* board.h - the board description read from the device tree: RAM, reserved
 * ranges, harts, timebase, bootargs, initrd, model, test finisher.
 *
 * Everything is copied out of the blob into fixed-size arrays, so the blob
 * may be unmapped or moved after board_parse(). A blob that does not fit the
 * limits below is rejected with a reason, never truncated.
 *
 * Policies (dtbinfo and the libfdt oracle in tests/host/fdt_oracle.c follow
 * the same ones):
 * - RAM: every child of the root whose name starts with "memory" and whose
 *   device_type is "memory"; every reg entry, with numa-node-id or -1.
 *   Ranges are inclusive [start, end]. Zero-size reg entries describe
 *   nothing and are skipped (memory and reserved alike). A range that wraps
 *   past 2^64 is rejected; RAM ranges that overlap each other are rejected.
 *   Reserved ranges may overlap (firmware often reserves a region twice).
 * - Reserved, in this order: the header's reservation block ("memreserve"),
 *   each reg entry of each /reserved-memory child (named by its node name,
 *   unit address included), then the initrd ("initrd") when /chosen has
 *   linux,initrd-start < linux,initrd-end.
 * - Dynamic reservations: a /reserved-memory child with `size` and no `reg`
 *   (optional `alignment`, `alloc-ranges`). The OS is to place it and give it
 *   to the device that names it in `memory-region`; this kernel drives no
 *   such device, so it records and prints them ("dynamic ... not
 *   allocated") and leaves the memory free. size and alignment must be
 *   #size-cells long, alloc-ranges a multiple of (address + size) cells.
 *   Children with neither reg nor size are skipped.
 * - #address-cells/#size-cells are read (default 2/1) and must be 1..2 for
 *   the nodes whose reg this module decodes: the root (for /memory), and
 *   /reserved-memory; /cpus needs #address-cells 1..2 (its #size-cells is
 *   0 by the spec and not used); the finisher's parent needs
 *   #address-cells 1..2. Other nodes (PCI has 3) are not looked at.
 *   Addresses are not translated through `ranges` (QEMU's are identity).
 * - Harts: children of /cpus named "cpu..." with device_type "cpu", id from
 *   reg (#address-cells of /cpus: 1 or 2). The ISA string: when both
 *   riscv,isa-base and riscv,isa-extensions are present (the binding Linux
 *   reads since 6.5), the base, then each single-letter extension not in
 *   the base, then "_" and each multi-letter one, in list order ("rv64i" +
 *   {i,m,a,c,zicsr,sstc} -> "rv64imac_zicsr_sstc", the form riscv,isa
 *   uses); else riscv,isa as written. Usable only when status is absent,
 *   "okay" or "ok" ("disabled", "fail", "fail-..." are not); the ISA starts
 *   with "rv64" (any case); mmu-type is present (treated as S-mode support:
 *   an absent mmu-type means no MMU) and is riscv,sv39, riscv,sv48 or
 *   riscv,sv57 (all can run Sv39; riscv,none is refused). The first failing
 *   check gives the reason: "status <value>", "no riscv,isa-base or
 *   riscv,isa", "isa <isa>", "no mmu-type", "mmu-type <value>".
 *   Duplicate hart ids are rejected.
 * - Hart ids are taken as they come: any value reg can hold (sparse, up to
 *   2^64-1). The board keeps the first BOARD_MAX_HARTS usable harts and the
 *   first BOARD_MAX_UNUSABLE unusable ones, in tree order; the rest are
 *   "left out" (their ids kept, up to BOARD_MAX_LEFT_OUT, ascending) and
 *   printed on one line. The boot hart (board_parse_boot's boot_hart; the
 *   header's boot_cpuid_phys for board_parse) is always kept: when it comes
 *   after its kind is full, the last kept hart of its kind is left out in
 *   its place. A hart that would be left out past BOARD_MAX_LEFT_OUT is
 *   rejected ("more than 512 harts left out ..."), so every hart is either
 *   kept or listed (at most BOARD_MAX_CPU_NODES) and duplicates are found
 *   among all of them. Whatever indexes per-hart
 *   arrays downstream is the dense position, never the id.
 * - timebase: /cpus timebase-frequency, else the first hart that has one;
 *   0 when none.
 * - model / bootargs: printed only when non-empty.
 */
#ifndef PLATFORM_BOARD_H
#define PLATFORM_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtb.h"

#define BOARD_MAX_MEM      32
#define BOARD_MAX_RSV      32
#define BOARD_MAX_HARTS    64    /* usable harts kept (== MAX_HARTS) */
#define BOARD_MAX_UNUSABLE 16    /* unusable harts kept, with their reasons */
#define BOARD_MAX_LEFT_OUT 512   /* ids of the harts left out beyond those */
#define BOARD_MAX_CPU_NODES (BOARD_MAX_HARTS + BOARD_MAX_UNUSABLE + BOARD_MAX_LEFT_OUT)
#define BOARD_MODEL_MAX    128   /* string sizes include the NUL */
#define BOARD_COMPAT_MAX   256
#define BOARD_BOOTARGS_MAX 1024
#define BOARD_ISA_MAX      256
#define BOARD_MMU_MAX      32
#define BOARD_NAME_MAX     64
#define BOARD_HART_REASON_MAX (BOARD_ISA_MAX + 16)

struct board_mem {
	uint64_t start, end;     /* inclusive */
	int node;                /* numa-node-id, -1 when absent */
};

struct board_rsv {
	uint64_t start, end;     /* inclusive */
	char name[BOARD_NAME_MAX];
};

struct board_dyn {                        /* a reservation without reg */
	char name[BOARD_NAME_MAX];
	uint64_t size, align;                 /* align 0 when absent */
	unsigned nranges;                     /* alloc-ranges entries */
};

struct board_hart {
	uint64_t id;                          /* reg: the hart id SBI uses */
	bool usable;
	int node;                             /* numa-node-id, -1 when absent */
	char isa[BOARD_ISA_MAX];              /* "" when absent */
	char mmu[BOARD_MMU_MAX];              /* "" when absent */
	char reason[BOARD_HART_REASON_MAX];   /* why not usable; "" if usable */
};

struct board {
	char model[BOARD_MODEL_MAX];
	char compatible[BOARD_COMPAT_MAX];    /* root compatible, NUL-separated list */
	uint32_t compatible_len;
	uint32_t boot_cpuid;                  /* header's boot_cpuid_phys */
	unsigned nmem, nrsv, nharts, ndyn;
	unsigned nusable;                     /* of nharts; <= BOARD_MAX_HARTS */
	struct board_mem mem[BOARD_MAX_MEM];
	struct board_rsv rsv[BOARD_MAX_RSV];
	struct board_dyn dyn[BOARD_MAX_RSV];
	struct board_hart harts[BOARD_MAX_HARTS + BOARD_MAX_UNUSABLE];   /* tree order */
	unsigned nleft_out;                   /* harts not kept (usable or not) */
	unsigned nleft_usable;                /* of them, usable ones */
	uint64_t left_out[BOARD_MAX_LEFT_OUT];   /* their ids, ascending */
	uint64_t timebase;                    /* Hz, 0 when unknown */
	char bootargs[BOARD_BOOTARGS_MAX];    /* "" when absent */
	bool has_initrd;
	uint64_t initrd_start, initrd_end;    /* [start, end) as in /chosen */
	uint64_t finisher;                    /* sifive,test0 reg address, 0 if none */
	char reason[FDT_REASON_MAX];          /* why board_parse failed */
};

/* Fill *b from the `len`-byte blob. Returns 0; E_CORRUPT or E_NOTSUP (from
 * the parser) with b->reason naming the problem; E_INVAL for NULL
 * arguments. On failure only b->reason is meaningful. The header's
 * boot_cpuid_phys is the hart always kept. */
int board_parse(struct board *b, const void *blob, size_t len);
/* The same, keeping hart boot_hart (the id the firmware booted on, a0). */
int board_parse_boot(struct board *b, const void *blob, size_t len, uint64_t boot_hart);

/* Print the description with printf, one fact per line:
 *   model <string>
 *   memory 0x<start>-0x<end> node <n|->
 *   reserved 0x<start>-0x<end> <name>
 *   dynamic <name> size 0x<n> alignment 0x<n> alloc-ranges <n> not allocated
 *   hart <id> usable <mmu-type> <isa>
 *   hart <id> unusable <reason>
 *   board: harts left out: <id|first-last> ... (<k> in all; maximum <n> usable, <m> unusable)
 *   timebase <hz>
 *   bootargs <string>
 * model, timebase and bootargs lines only when known and non-empty. */
void board_print(const struct board *b);

/* Is `compat` one of the root node's compatible strings? */
bool board_compatible(const struct board *b, const char *compat);

#endif
