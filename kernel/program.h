/* program.h - programs that run on the kernel (the demo, the benchmarks,
 * the test runner, the stress tool) register themselves here; main.c runs
 * the one the bootargs select and knows none of them by name.
 *
 * A program is chosen by a bootarg whose key is its name (`test=umm,vm`,
 * `bench=all`, `stress=...`: the value is its argument) or by
 * `run=<name>` (no argument); without either, `demo` runs. The first such
 * bootarg from the left wins. A program returns 0 for success; anything
 * else shuts QEMU down with a failing status. */
#ifndef PROGRAM_H
#define PROGRAM_H

struct program {
	const char *name;
	int (*main)(const char *arg);   /* arg: the bootarg's value, "" for run= */
	const char *help;               /* one line for the list of programs */
	struct program *next;
};

void program_register(struct program *p);

/* Defines and registers (at constructor time, as KTEST does) a program. */
#define PROGRAM(pname, fn, helptext)                                          \
	static struct program program_d_##pname = { #pname, fn, helptext, 0 };  \
	__attribute__((constructor)) static void program_reg_##pname(void)    \
	{                                                                     \
		program_register(&program_d_##pname);                         \
	}

/* Runs the program the bootargs select; returns its status, or -1 after
 * printing the registered names when the selection names none. */
int program_run_selected(const char *bootargs);

#endif
