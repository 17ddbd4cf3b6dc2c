/* mm_int.h - internals of the shared-area library, shared by mm.c (areas,
 * attach, addresses, lists), mm_lock.c (the lock), mm_alloc.c (the
 * segregated fit) and mm_check.c (the walk). Not for users: mm.h is the
 * contract.
 *
 * Every word of the area may be rewritten by a hostile attacher at any
 * moment: read it once (ld/AL) into a local, check it against the handle's
 * private bound h->lim, then use the local. Never read a word twice and
 * trust the second read.
 */
#ifndef MM_MM_INT_H
#define MM_MM_INT_H

#include "mm.h"

#include <string.h>

/* Hot helpers of one call: inlined so that their locals stay in registers. */
#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Slow paths kept out of line, so their register use stays out of the
 * callers' prologues. */
#define NOINLINE __attribute__((noinline))

#define MAGIC     0x314d4d41u    /* "AMM1" */
#define VERSION   2              /* 2: 128 slots, two-level bins */
#define CHUNK_HDR 16
#define CHUNK_MIN 32
#define INUSE     1u
#define TAG       0x5a3cc3a5u    /* in-use chunk: word 2 = offset ^ TAG */
#define QUANTUM   4096u          /* areas are created and grown in pages */
#define SLOT_DEAD UINT32_MAX     /* slot being recovered */
#define F_DIED    1u             /* flags: a holder died with the lock */

/* Two-level segregated fit (TLSF-style). Sizes below SMALL (128) have one
 * list per 16 bytes (first level 0); above, first level f holds sizes
 * [2^(f+6), 2^(f+7)), split into SL_COUNT lists of equal width. Sizes stay
 * below 2^31, so first level 24 is the last. */
#define SL_LOG    3
#define SL_COUNT  (1u << SL_LOG)
#define SMALL     (1u << (SL_LOG + 4))
#define NFL       25
#define NLISTS    (NFL * SL_COUNT)

/* Lock word (offset 40): LK_W and the writer's slot. The readers are one
 * bit per slot in rd[] (offset 96), so a dead reader's hold can be found. */
#define LK_W      (1ull << 63)
#define LK_WSHIFT 48
#define LK_WMASK  (0xffull << LK_WSHIFT)
#define NRD       (MM_MAX_ATTACH / 64)

/* Chunk words (offsets from the chunk start). Free chunks keep the free
 * list links; in-use chunks keep a tag and the requested size there. */
#define C_SIZE 0   /* chunk size | INUSE */
#define C_PREV 4   /* size of the chunk before (boundary tag), 0 for first */
#define C_NEXT 8   /* free: next free; in use: offset ^ TAG */
#define C_BACK 12  /* free: previous free (0: list head); in use: request */

struct area {
	uint32_t magic;
	uint16_t version, hdr_size;
	uint32_t size, max_size, static_size, dyn;
	uint32_t flags, generation, deaths, nattach;
	uint64_t lock;
	uint32_t top;              /* offset of the last chunk */
	uint32_t used, free, pad;
	uint64_t allocs, frees, grows, failures;
	uint64_t rd[NRD];          /* reader bit per slot */
	uint32_t fl_map;           /* bit f: some list of first level f in use */
	uint8_t sl_map[NFL];       /* bit s: list (f, s) in use */
	uint8_t pad2[200 - 116 - NFL];
	uint32_t slots[MM_MAX_ATTACH];   /* attacher id + 1; 0 free */
	uint32_t heads[NLISTS];    /* free-list heads, 0 empty */
};
_Static_assert(sizeof(struct area) <= MM_HDR_SIZE, "mm header too large");
_Static_assert(MM_HDR_SIZE % MM_ALIGN == 0, "static part alignment");
_Static_assert(MM_MAX_ATTACH % 64 == 0, "reader bitmap words");
_Static_assert(MM_MAX_ATTACH <= LK_WMASK >> LK_WSHIFT, "writer slot field width");
_Static_assert(CHUNK_HDR % MM_ALIGN == 0, "user data alignment");
_Static_assert(NFL <= 32 && SL_COUNT <= 8, "bitmap widths");
_Static_assert(offsetof(struct area, flags) == 24, "flags offset (docs/MM.md, user/part.c)");
_Static_assert(offsetof(struct area, lock) == 40, "lock word offset (docs/MM.md, mm_fuzz.c)");
_Static_assert(offsetof(struct area, rd) == 96, "reader words offset (docs/MM.md)");
_Static_assert(offsetof(struct area, fl_map) == 112, "bitmap offset (docs/MM.md)");
_Static_assert(offsetof(struct area, slots) == 200, "slot table offset (docs/MM.md, user/part.c)");

/* ---- raw access ----------------------------------------------------------- */

static inline struct area *area_of(const mm_t *h) { return (struct area *)h->base; }

#define AL(h, f)    __atomic_load_n(&area_of(h)->f, __ATOMIC_RELAXED)
#define AS(h, f, v) __atomic_store_n(&area_of(h)->f, (v), __ATOMIC_RELAXED)

static inline uint32_t ld(const mm_t *h, uint32_t off)
{
	return __atomic_load_n((uint32_t *)(h->base + off), __ATOMIC_RELAXED);
}

static inline void st(mm_t *h, uint32_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(h->base + off), v, __ATOMIC_RELAXED);
}

static inline uint32_t align16(uint64_t v) { return (uint32_t)((v + 15) & ~15ull); }

static inline int fail(mm_t *h, int e)
{
	h->err = e;
	return e;
}

/* Bit scans. Without Zbb, gcc calls libgcc for __builtin_clz/ctz (a call,
 * spills around it, a table); a byte table and two tests are cheaper. */
#if defined(__riscv) && !defined(__riscv_zbb)
#define L2_2(n)   n, n
#define L2_4(n)   L2_2(n), L2_2(n)
#define L2_8(n)   L2_4(n), L2_4(n)
#define L2_16(n)  L2_8(n), L2_8(n)
#define L2_32(n)  L2_16(n), L2_16(n)
#define L2_64(n)  L2_32(n), L2_32(n)
#define L2_128(n) L2_64(n), L2_64(n)
static const uint8_t log2_tab[256] = {
	0, 0, L2_2(1), L2_4(2), L2_8(3), L2_16(4), L2_32(5), L2_64(6), L2_128(7),
};

static ALWAYS_INLINE unsigned log2_32(uint32_t x)     /* x != 0 */
{
	if (x >> 16)
		return x >> 24 ? 24 + log2_tab[x >> 24] : 16 + log2_tab[x >> 16];
	return x >> 8 ? 8 + log2_tab[x >> 8] : log2_tab[x];
}

static ALWAYS_INLINE unsigned ctz_32(uint32_t x)      /* x != 0 */
{
	return log2_32(x & -x);
}
#else
static ALWAYS_INLINE unsigned log2_32(uint32_t x) { return 31 - (unsigned)__builtin_clz(x); }
static ALWAYS_INLINE unsigned ctz_32(uint32_t x) { return (unsigned)__builtin_ctz(x); }
#endif

/* The list of a free chunk of `size` bytes (32 <= size < 2^31). */
static ALWAYS_INLINE unsigned list_of(uint64_t size)
{
	unsigned f, s;

	if (size < SMALL)
		return (unsigned)size >> 4;
	f = log2_32((uint32_t)size);
	s = (unsigned)(size >> (f - SL_LOG)) & (SL_COUNT - 1);
	return (f - SL_LOG - 3) * SL_COUNT + s;
}

/* list_of(size) == i, without the bit scan: list i's size range. */
static ALWAYS_INLINE bool on_list(uint64_t size, unsigned i)
{
	unsigned f = i / SL_COUNT, s = i % SL_COUNT;

	if (!f)
		return size - 16 * s < 16;
	return size - ((uint64_t)(SL_COUNT + s) << (f + 3)) < (1ull << (f + 3));
}

/* The handle's bounds copied into locals for one call: stores into the area
 * cannot alias them, so the checks cost no reloads. `lim` is the validated
 * size (h->lim), `dyn` the start of the dynamic part. Offsets and sizes are
 * 64-bit in the helpers (zero-extended once, when loaded). */
struct view {
	uint8_t *base;
	uint64_t lim, dyn;
};

static ALWAYS_INLINE struct view view_of(const mm_t *h)
{
	return (struct view){ h->base, h->lim, h->dyn };
}

#define VA(v)       ((struct area *)(v)->base)
#define VL(v, f)    __atomic_load_n(&VA(v)->f, __ATOMIC_RELAXED)
#define VS(v, f, x) __atomic_store_n(&VA(v)->f, (x), __ATOMIC_RELAXED)

static ALWAYS_INLINE uint64_t vld(const struct view *v, uint64_t off)
{
	return __atomic_load_n((uint32_t *)(v->base + off), __ATOMIC_RELAXED);
}

static ALWAYS_INLINE void vst(const struct view *v, uint64_t off, uint64_t x)
{
	__atomic_store_n((uint32_t *)(v->base + off), (uint32_t)x, __ATOMIC_RELAXED);
}

/* The chunk at c: in the dynamic part, well formed, inside v->lim. */
static ALWAYS_INLINE int chunk_at(const struct view *v, uint64_t c, uint64_t *size,
				  bool *inuse)
{
	uint64_t w;

	if (c < v->dyn || c % MM_ALIGN || c > v->lim - CHUNK_MIN)
		return E_CORRUPT;
	w = vld(v, c + C_SIZE);
	if ((w & 15) & ~INUSE)
		return E_CORRUPT;
	*size = w & ~15ull;
	*inuse = w & INUSE;
	if (*size < CHUNK_MIN || *size > v->lim - c)
		return E_CORRUPT;
	return 0;
}

static ALWAYS_INLINE int free_at(const struct view *v, uint64_t c, uint64_t *size)
{
	bool inuse;

	if (chunk_at(v, c, size, &inuse) || inuse)
		return E_CORRUPT;
	return 0;
}

/* ---- across files --------------------------------------------------------- */

/* mm_lock.c: take (recursively) and check the header; 0 or an error, with
 * h->err set. The outermost call maps the area's current size. */
int mm_lock_in(mm_t *h, int mode);
/* mm_lock.c: read the area's size from the header, check it against the
 * layout and the room, map it here (ensure_mapped) and set h->lim. */
int mm_refresh(mm_t *h);
/* mm_lock.c: drop every hold of slot s in the area (died flag first). */
bool mm_release_slot(struct area *a, unsigned s);

/* mm_alloc.c: format the dynamic part [dyn, size) as one free chunk. */
void mm_fit_format(struct area *a, uint32_t dyn, uint32_t size);

#endif
