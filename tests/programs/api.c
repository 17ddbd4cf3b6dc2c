/* api.c - the malloc family's contracts that every allocator keeps
 * (overflow, alignment, errno, contents kept by realloc, zeroed calloc);
 * prints one line per failed check, then the count, so the output under a
 * shim matches glibc's only if the shim keeps them too. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int checks, failed;
#define CHECK(c) do { checks++; if (!(c)) { failed++; printf("api: failed: %s (line %d)\n", #c, __LINE__); } } while (0)

static int aligned(void *p, size_t a) { return p && ((uintptr_t)p & (a - 1)) == 0; }

int main(void)
{
	void *p = NULL, *q;
	volatile size_t big = SIZE_MAX / 2 + 2;

	errno = 0;
	CHECK(calloc(big, 2) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(reallocarray(NULL, big, 4) == NULL && errno == ENOMEM);
	CHECK(posix_memalign(&p, 3, 10) == EINVAL);
	CHECK(posix_memalign(&p, 4, 10) == EINVAL);   /* not a multiple of sizeof(void *) */
	for (size_t a = 8; a <= 65536; a *= 2) {
		CHECK(posix_memalign(&p, a, 100) == 0 && aligned(p, a));
		free(p);
		p = memalign(a, 3000);
		CHECK(aligned(p, a) && malloc_usable_size(p) >= 3000);
		free(p);
		p = aligned_alloc(a, 5 * a);
		CHECK(aligned(p, a));
		free(p);
	}
	p = valloc(100);
	CHECK(aligned(p, 4096));
	free(p);
	p = pvalloc(5000);
	CHECK(aligned(p, 4096) && malloc_usable_size(p) >= 8192);
	free(p);
	p = malloc(0);
	CHECK(p != NULL);
	free(p);
	free(NULL);
	/* realloc keeps the contents through growth, shrinking and moves */
	p = malloc(100);
	memset(p, 0x5a, 100);
	for (size_t n = 200; n < 2000000; n *= 3) {
		q = realloc(p, n);
		CHECK(q && ((unsigned char *)q)[0] == 0x5a && ((unsigned char *)q)[99] == 0x5a);
		p = q;
	}
	q = realloc(p, 50);
	CHECK(q && ((unsigned char *)q)[49] == 0x5a);
	CHECK(realloc(q, 0) == NULL);   /* glibc: frees */
	/* calloc zeroes recycled memory */
	for (int r = 0; r < 100; r++) {
		unsigned char *d = malloc(512);
		memset(d, 0xff, 512);
		free(d);
		unsigned char *z = calloc(1, 512);
		int zero = 1;
		for (int i = 0; i < 512; i++)
			zero &= z[i] == 0;
		CHECK(zero);
		free(z);
	}
	/* usable size is usable */
	p = malloc(77);
	size_t u = malloc_usable_size(p);
	CHECK(u >= 77);
	memset(p, 1, u);
	free(p);
	printf("api: %d checks, %d failed\n", checks, failed);
	return failed != 0;
}
