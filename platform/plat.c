/* plat.c - the board ops table: QEMU virt ends through its sifive,test0
 * finisher (so a failure becomes QEMU's exit status); everything else
 * through SBI System Reset. */
#include "plat.h"

#include <stddef.h>
#include <stdint.h>

#include "sbi.h"

/* sifive,test0 finisher commands (QEMU hw/misc/sifive_test.c semantics). */
#define FINISHER_PASS  0x5555
#define FINISHER_FAIL  0x3333   /* exit code in bits 31:16 */

static const struct board *cur_board;
static void *finisher;

static int finisher_shutdown(const struct board *b, void *va, bool failed)
{
	volatile uint32_t *reg = va;

	(void)b;
	if (!reg)
		return -1;
	*reg = failed ? (1u << 16) | FINISHER_FAIL : FINISHER_PASS;
	return -1;   /* only reached if the device ignored the write */
}

static const struct plat_ops boards[] = {
	{ "qemu-virt", "riscv-virtio", finisher_shutdown },
	{ "sifive-u", "sifive,hifive-unleashed-a00", NULL },
};
static const struct plat_ops generic = { "generic", "", NULL };
static const struct plat_ops *cur = &generic;

const struct plat_ops *plat_init(const struct board *b, void *finisher_va)
{
	cur_board = b;
	finisher = finisher_va;
	cur = &generic;
	for (size_t i = 0; i < sizeof(boards) / sizeof(boards[0]); i++)
		if (board_compatible(b, boards[i].compatible))
			cur = &boards[i];
	return cur;
}

const struct plat_ops *plat_get(void)
{
	return cur;
}

void plat_shutdown(bool failed)
{
	if (cur->shutdown)
		cur->shutdown(cur_board, finisher, failed);
	sbi_system_reset(SBI_SRST_SHUTDOWN,
			 failed ? SBI_SRST_FAILURE : SBI_SRST_NO_REASON);
}
