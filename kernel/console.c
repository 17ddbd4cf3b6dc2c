/* console.c - stdout for picolibc's printf, to the SBI console.
 *
 * Each hart assembles a line in its own buffer and writes it whole under the
 * console lock, so lines from different harts never interleave. The panic
 * path writes raw, without the lock, since the lock holder may be the hart
 * that is stuck.
 */
#include <stdio.h>

#include "hart.h"
#include "kernel.h"
#include "lock.h"
#include "riscv.h"
#include "sbi.h"

static spinlock_t console_lock = SPINLOCK_INIT;

void console_write_raw(const char *s, unsigned long n)
{
	sbi_console_write(s, kva_to_pa(s), n);
}

static void flush_line(struct hart *h)
{
	unsigned long flags;

	if (!h->linelen)
		return;
	if (panicking) {
		console_write_raw(h->line, h->linelen);
	} else {
		flags = spin_lock_irqsave(&console_lock);
		console_write_raw(h->line, h->linelen);
		spin_unlock_irqrestore(&console_lock, flags);
	}
	h->linelen = 0;
}

/* Interrupts are off while the hart edits its own line, so a trap handler
 * that prints cannot tear it. */
static int console_putc(char c, FILE *f)
{
	unsigned long flags = irq_save();
	struct hart *h = this_hart();

	(void)f;
	h->line[h->linelen++] = c;
	if (c == '\n' || h->linelen == sizeof(h->line))
		flush_line(h);
	irq_restore(flags);
	return (unsigned char)c;
}

static FILE kstdout = FDEV_SETUP_STREAM(console_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &kstdout;
FILE *const stderr = &kstdout;
FILE *const stdin = &kstdout;
