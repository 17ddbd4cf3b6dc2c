/* cpio.c - cpio newc archives in memory (see cpio.h): every field is
 * parsed, every offset checked against the archive's length before use. */
#include "cpio.h"

#include <string.h>

#include "err.h"

#define F_MODE     1
#define F_FILESIZE 6
#define F_NAMESIZE 11

static const char trailer[] = "TRAILER!!!";

/* Field i (0..12) of the header at h: 8 hex digits. */
static bool field(const char *h, unsigned i, uint32_t *v)
{
	uint32_t x = 0;

	h += 6 + 8 * i;
	for (unsigned k = 0; k < 8; k++) {
		char c = h[k];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		x = x << 4 | d;
	}
	*v = x;
	return true;
}

static size_t up4(size_t x)
{
	return (x + 3) & ~(size_t)3;
}

int cpio_next(const void *ar, size_t len, size_t *off, struct cpio_file *f,
	      const char **why)
{
	const char *a = ar, *h, *name;
	size_t o = *off, dstart, next;
	uint32_t mode, fsize, nsize;

	if (o > len || len - o < CPIO_HDR_SIZE)
		return *why = "archive truncated: no trailer (a header runs past the end)", E_CORRUPT;
	h = a + o;
	if (memcmp(h, "07070", 5) || (h[5] != '1' && h[5] != '2'))
		return *why = "bad magic: not a cpio newc header", E_CORRUPT;
	for (unsigned i = 0; i < 13; i++) {
		uint32_t v;

		if (!field(h, i, &v))
			return *why = "header field not hexadecimal", E_CORRUPT;
	}
	field(h, F_MODE, &mode);
	field(h, F_FILESIZE, &fsize);
	field(h, F_NAMESIZE, &nsize);
	if (nsize < 2 || nsize > CPIO_NAME_MAX + 1)
		return *why = "member name empty or too long", E_CORRUPT;
	if (len - o - CPIO_HDR_SIZE < nsize)
		return *why = "archive truncated: a member name runs past the end", E_CORRUPT;
	name = h + CPIO_HDR_SIZE;
	if (name[nsize - 1] != 0 || memchr(name, 0, nsize - 1))
		return *why = "member name not NUL-terminated where its size says", E_CORRUPT;
	if (nsize == sizeof(trailer) && !memcmp(name, trailer, sizeof(trailer)))
		return 0;
	dstart = up4(o + CPIO_HDR_SIZE + nsize);
	if (dstart > len || len - dstart < fsize || len - dstart - fsize < up4(fsize) - fsize)
		return *why = "archive truncated: member data runs past the end", E_CORRUPT;
	next = dstart + up4(fsize);
	f->name = name;
	f->namelen = nsize - 1;
	f->data = a + dstart;
	f->size = fsize;
	f->mode = mode;
	*off = next;
	return 1;
}

int cpio_short_name(const struct cpio_file *f, const char *suffix, char *buf, size_t bufsize)
{
	const char *s = f->name;
	size_t n = f->namelen, sl = suffix ? strlen(suffix) : 0;

	if (bufsize)
		buf[0] = 0;
	while (n >= 2 && s[0] == '.' && s[1] == '/') {
		s += 2;
		n -= 2;
	}
	if (sl && n > sl && !memcmp(s + n - sl, suffix, sl))
		n -= sl;
	if (n == 0 || n >= bufsize)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	return (int)n;
}

static void copy_bad(char *bad, size_t badsize, const char *s, size_t n)
{
	if (!badsize)
		return;
	if (n >= badsize)
		n = badsize - 1;
	memcpy(bad, s, n);
	bad[n] = 0;
}

/* Is the regular file `name` (short) among the first `count` members? */
static bool seen_before(const void *ar, size_t len, size_t upto, const char *suffix,
			const char *name)
{
	struct cpio_file f;
	const char *why;
	char buf[CPIO_NAME_MAX + 1];
	size_t off = 0;

	while (off < upto && cpio_next(ar, len, &off, &f, &why) == 1)
		if ((f.mode & CPIO_S_IFMT) == CPIO_S_IFREG &&
		    cpio_short_name(&f, suffix, buf, sizeof(buf)) > 0 && !strcmp(buf, name))
			return true;
	return false;
}

int cpio_check(const void *ar, size_t len, const char *suffix, size_t name_max,
	       const char **why, char *bad, size_t badsize)
{
	struct cpio_file f;
	char buf[CPIO_NAME_MAX + 1];
	size_t off = 0, here;
	int nfiles = 0, rc;

	copy_bad(bad, badsize, "", 0);
	for (unsigned members = 0;; members++) {
		here = off;
		rc = cpio_next(ar, len, &off, &f, why);
		if (rc < 0)
			copy_bad(bad, badsize, "", 0);   /* the archive's fault, not a member's */
		if (rc <= 0)
			return rc < 0 ? rc : nfiles;
		copy_bad(bad, badsize, f.name, f.namelen);
		if (members == CPIO_MAX_FILES)
			return *why = "more members than the archive limit", E_CORRUPT;
		if ((f.mode & CPIO_S_IFMT) == CPIO_S_IFDIR)
			continue;
		if ((f.mode & CPIO_S_IFMT) != CPIO_S_IFREG)
			return *why = "not a regular file or directory", E_CORRUPT;
		rc = cpio_short_name(&f, suffix, buf, sizeof(buf));
		if (rc <= 0 || (size_t)rc > name_max)
			return *why = "name too long for a partition (or empty)", E_CORRUPT;
		if (seen_before(ar, len, here, suffix, buf))
			return *why = "duplicate name", E_CORRUPT;
		nfiles++;
	}
}

int cpio_find(const void *ar, size_t len, const char *suffix, const char *name,
	      struct cpio_file *f, const char **why)
{
	char buf[CPIO_NAME_MAX + 1];
	size_t off = 0;
	int rc;

	while ((rc = cpio_next(ar, len, &off, f, why)) == 1)
		if ((f->mode & CPIO_S_IFMT) == CPIO_S_IFREG &&
		    cpio_short_name(f, suffix, buf, sizeof(buf)) > 0 && !strcmp(buf, name))
			return 1;
	return rc;
}
