/* dtbinfo.c - host tool: print the board description of a .dtb file with
 * the kernel's own parser and printer (platform/fdt.c, platform/board.c).
 * On a malformed blob: one line "dtbinfo: FILE: reason" on stderr, exit 1. */
#include "board.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOB (64u << 20)

int main(int argc, char **argv)
{
	static struct board b;
	unsigned char *buf;
	size_t len;
	FILE *fp;

	if (argc != 2) {
		fprintf(stderr, "usage: dtbinfo FILE.dtb\n");
		return 2;
	}
	fp = fopen(argv[1], "rb");
	if (!fp) {
		fprintf(stderr, "dtbinfo: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* Exactly as many bytes as the file holds, so ASan sees any overread. */
	buf = malloc(MAX_BLOB);
	len = buf ? fread(buf, 1, MAX_BLOB, fp) : 0;
	fclose(fp);
	if (!buf || len == MAX_BLOB) {
		fprintf(stderr, "dtbinfo: %s: %s\n", argv[1], buf ? "file too large" : "out of memory");
		return 1;
	}
	buf = realloc(buf, len ? len : 1);
	if (board_parse(&b, buf, len)) {
		fprintf(stderr, "dtbinfo: %s: %s\n", argv[1], b.reason);
		free(buf);
		return 1;
	}
	setvbuf(stdout, NULL, _IOFBF, 0);
	board_print(&b);
	free(buf);
	return fflush(stdout) ? 1 : 0;
}
