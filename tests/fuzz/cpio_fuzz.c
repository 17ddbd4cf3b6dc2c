/* cpio_fuzz.c - libFuzzer target: arbitrary bytes as an initrd through the
 * cpio parser and, for every member, the partition image checks. Must
 * never crash or read outside the input (ASan), and what the parser hands
 * out must lie inside the input. */
#include "cpio.h"
#include "elfimg.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cpio_file f;
	struct elfimg m;
	const char *why;
	char bad[32];
	size_t off = 0;

	(void)cpio_check(data, size, ".elf", 15, &why, bad, sizeof(bad));
	while (cpio_next(data, size, &off, &f, &why) == 1) {
		const uint8_t *d = f.data;

		if (d < data || d + f.size > data + size || strlen(f.name) != f.namelen)
			abort();
		(void)elfimg_check(d, f.size, 0x1000, 0x0ffff000, &m, &why);
	}
	/* the whole input as an image, too */
	if (elfimg_check(data, size, 0x1000, 0x0ffff000, &m, &why) == 0 &&
	    (m.nload == 0 || m.nload > ELFIMG_MAX_LOADS))
		abort();
	return 0;
}
