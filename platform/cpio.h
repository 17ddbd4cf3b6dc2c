/* cpio.h - reading a cpio "newc" archive (the initrd format Linux uses)
 * in memory, without trusting a byte of it. Freestanding: built for the
 * kernel and for the host tests (tests/unit/cpio_test.c, tests/fuzz/).
 *
 * A member is a 110-byte header ("070701" or "070702", then 13 fields of 8
 * hex digits), its NUL-terminated name padded so the data starts 4-byte
 * aligned, and its data padded to 4 bytes. The member "TRAILER!!!" ends
 * the archive; bytes after it (the padding of a block-sized archive) are
 * ignored.
 */
#ifndef PLATFORM_CPIO_H
#define PLATFORM_CPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPIO_HDR_SIZE  110
#define CPIO_NAME_MAX  256      /* longest member name read (NUL excluded) */
#define CPIO_MAX_FILES 256      /* members cpio_check accepts */

#define CPIO_S_IFMT  0170000u
#define CPIO_S_IFREG 0100000u
#define CPIO_S_IFDIR 0040000u

struct cpio_file {
	const char *name;           /* inside the archive, NUL-terminated */
	size_t namelen;             /* strlen(name) */
	const void *data;           /* inside the archive */
	size_t size;
	uint32_t mode;
};

/* The member at *off (0 for the first). Returns 1 with *f filled and *off
 * moved past the member; 0 at the trailer (*off unchanged); E_CORRUPT with
 * *why when the header is truncated, has a bad magic or non-hex field, a
 * name that is empty, longer than CPIO_NAME_MAX, not NUL-terminated where
 * its size says, or runs past the end, or data that runs past the end
 * (sizes that overflow included). *off, *f are unchanged on failure. */
int cpio_next(const void *ar, size_t len, size_t *off, struct cpio_file *f,
	      const char **why);

/* A member's short name: the name with a leading "./" removed and
 * `suffix` (e.g. ".elf"; NULL: none) removed when it ends so. Copied into
 * buf (size bufsize, NUL-terminated). Returns its length, or -1 when it
 * does not fit (buf left holding "") or is empty. */
int cpio_short_name(const struct cpio_file *f, const char *suffix, char *buf, size_t bufsize);

/* Walks the whole archive: every header well-formed up to a trailer,
 * at most CPIO_MAX_FILES members; every regular file's short name (with
 * `suffix`) non-empty, at most name_max bytes and unique; only regular
 * files and directories. Returns the number of regular files, or
 * E_CORRUPT with *why and the offending member's name (or "" for the
 * archive itself) copied into bad[badsize]. */
int cpio_check(const void *ar, size_t len, const char *suffix, size_t name_max,
	       const char **why, char *bad, size_t badsize);

/* The regular file whose short name (with `suffix`) is `name`. Returns 1
 * and *f, 0 when absent, or E_CORRUPT (*why) when the walk fails first. */
int cpio_find(const void *ar, size_t len, const char *suffix, const char *name,
	      struct cpio_file *f, const char **why);

#endif
