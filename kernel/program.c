/* program.c - the registry of programs that run on the kernel and the
 * bootarg that selects one (program.h). */
#include <stdio.h>
#include <string.h>

#include "program.h"

#define ARG_MAX 256

static struct program *programs;

void program_register(struct program *p)
{
	struct program **pp = &programs;

	while (*pp && strcmp((*pp)->name, p->name) < 0)
		pp = &(*pp)->next;
	p->next = *pp;
	*pp = p;
}

static struct program *program_find(const char *name, size_t len)
{
	for (struct program *p = programs; p; p = p->next)
		if (strlen(p->name) == len && !strncmp(p->name, name, len))
			return p;
	return NULL;
}

static int unknown(const char *what, const char *name, size_t len)
{
	printf("kernel: %s '%.*s' names no program; programs:", what, (int)len, name);
	for (struct program *p = programs; p; p = p->next)
		printf(" %s", p->name);
	printf("\n");
	for (struct program *p = programs; p; p = p->next)
		printf("  %-8s %s\n", p->name, p->help);
	return -1;
}

/* The first token key=value whose key is `run` or a program's name. */
int program_run_selected(const char *bootargs)
{
	char arg[ARG_MAX];

	for (const char *t = bootargs; *t; t += strcspn(t, " ")) {
		size_t klen, vlen;
		struct program *p;

		t += strspn(t, " ");
		klen = strcspn(t, "= ");
		if (t[klen] != '=')
			continue;
		vlen = strcspn(t + klen + 1, " ");
		if (klen == 3 && !strncmp(t, "run", 3)) {
			p = program_find(t + 4, vlen);
			return p ? p->main("") : unknown("run=", t + 4, vlen);
		}
		p = program_find(t, klen);
		if (!p)
			continue;
		if (vlen >= sizeof(arg)) {
			printf("kernel: %s= argument longer than %zu characters\n",
			       p->name, sizeof(arg) - 1);
			return -1;
		}
		memcpy(arg, t + klen + 1, vlen);
		arg[vlen] = 0;
		return p->main(arg);
	}
	return program_find("demo", 4) ? program_find("demo", 4)->main("")
				       : unknown("default", "demo", 4);
}
