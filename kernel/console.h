/* console.h - the console below printf: the panic path's raw write and
 * this hart's half-assembled line. */
#ifndef CONSOLE_H
#define CONSOLE_H

void console_write_raw(const char *s, unsigned long n);   /* panic path, no lock */
/* Drop the line this hart has half assembled (a panic starts afresh). */
void console_discard_line(void);

#endif
