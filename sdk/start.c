/* start.c - the SDK's entry: the kernel starts a partition made from an
 * image (part_create_image) with a0 pointing at its argument string and,
 * right after it, its name (both NUL-terminated, at the top of its stack);
 * user/ulib.c's ulib_start passes a0 here. */
#include "partition.h"

#include <string.h>

int main(int argc, char **argv);

static const char *name_s = "", *arg_s = "";

const char *part_name(void)
{
	return name_s;
}

const char *part_arg(void)
{
	return arg_s;
}

int main_arg(unsigned long arg)
{
	char *argv[3];

	arg_s = (const char *)arg;
	name_s = arg_s + strlen(arg_s) + 1;
	argv[0] = (char *)name_s;
	argv[1] = arg_s[0] ? (char *)arg_s : NULL;
	argv[2] = NULL;
	return main(arg_s[0] ? 2 : 1, argv);
}
