/* console.c - stdout for picolibc's printf, to the SBI console, and the
 * console lines of partitions.
 *
 * Each hart assembles a line in its own buffer and writes it whole under the
 * console lock, so lines from different harts never interleave. The panic
 * path writes raw, without the lock, since the lock holder may be the hart
 * that is stuck.
 *
 * A partition's bytes never reach the console as they are: every line it
 * writes starts with its tag ("[name#id] "), each embedded newline starts a
 * new tagged line, and every byte outside printable ASCII (and the
 * backslash) is shown as an escape ("\x1b", "\r", "\\"). So no console
 * line a partition can produce starts with anything but '[': the lines that
 * start otherwise ("shutdown: ok", "panic: ...", "N passed, N failed") are
 * the kernel's own, which is what the QEMU harness relies on. The console
 * lock is held for one line of at most CONSOLE_PART_LINE bytes at a time.
 */
#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "hart.h"
#include "lock.h"
#include "panic.h"
#include "part.h"
#include "riscv.h"
#include "sbi.h"

static spinlock_t console_lock = SPINLOCK_INIT;
void (*volatile console_tap)(const char *line, unsigned long n);

void console_write_raw(const char *s, unsigned long n)
{
	/* s is in the image, or on a secondary hart's stack (a partition's
	 * line is assembled there): both need their own va -> pa. */
	unsigned long pa = hart_stack_pa((uintptr_t)s);

	sbi_console_write(s, pa ? pa : kva_to_pa(s), n);
}

/* Write one line under the lock; returns how long it waited for the lock
 * (timebase ticks). */
static uint64_t emit(const char *s, unsigned long n)
{
	unsigned long flags;
	uint64_t t0, waited;

	if (panicking) {
		console_write_raw(s, n);
		return 0;
	}
	t0 = rdtime();
	flags = spin_lock_irqsave(&console_lock);
	waited = rdtime() - t0;
	if (console_tap)
		console_tap(s, n);
	console_write_raw(s, n);
	spin_unlock_irqrestore(&console_lock, flags);
	return waited;
}

/* c as it appears in a partition's line; returns its length (1..4). */
static unsigned escape(unsigned char c, char out[4])
{
	static const char hex[] = "0123456789abcdef";

	if (c >= 0x20 && c < 0x7f && c != '\\') {
		out[0] = (char)c;
		return 1;
	}
	out[0] = '\\';
	switch (c) {
	case '\\': out[1] = '\\'; return 2;
	case '\t':  out[1] = 't'; return 2;
	case '\r':  out[1] = 'r'; return 2;
	}
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 15];
	return 4;
}

static void max_in(uint64_t *max, uint64_t v)
{
	if (v > *max)
		*max = v;
}

uint64_t console_write_part(const char *tag, const char *s, size_t n)
{
	char line[CONSOLE_PART_LINE + 1];
	size_t tl = strnlen(tag, CONSOLE_PART_LINE / 2), len = tl;
	bool pending = false;   /* line holds bytes of s not yet written */
	uint64_t waited = 0;

	memcpy(line, tag, tl);
	for (size_t i = 0; i < n; i++) {
		char e[4];
		unsigned el;

		if (s[i] == '\n') {
			line[len++] = '\n';
			max_in(&waited, emit(line, len));
			len = tl;
			pending = false;
			continue;
		}
		el = escape((unsigned char)s[i], e);
		if (len + el > CONSOLE_PART_LINE) {   /* long line: go on in a new one */
			line[len++] = '\n';
			max_in(&waited, emit(line, len));
			len = tl;
		}
		memcpy(line + len, e, el);
		len += el;
		pending = true;
	}
	if (pending) {          /* an unterminated write still ends its line */
		line[len++] = '\n';
		max_in(&waited, emit(line, len));
	}
	return waited;
}

/* The line this hart is assembling: per hart through TLS (hart.h). */
static __thread struct {
	unsigned len;
	char buf[240];
} cline;

void console_discard_line(void)
{
	cline.len = 0;
}

static void flush_line(void)
{
	if (!cline.len)
		return;
	emit(cline.buf, cline.len);
	cline.len = 0;
}

/* Interrupts are off while the hart edits its own line, so a trap handler
 * that prints cannot tear it. */
static int console_putc(char c, FILE *f)
{
	unsigned long flags = irq_save();

	(void)f;
	cline.buf[cline.len++] = c;
	if (c == '\n' || cline.len == sizeof(cline.buf))
		flush_line();
	irq_restore(flags);
	return (unsigned char)c;
}

static FILE kstdout = FDEV_SETUP_STREAM(console_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &kstdout;
FILE *const stderr = &kstdout;
FILE *const stdin = &kstdout;
