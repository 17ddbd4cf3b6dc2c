/* dtb.h - read-only flattened device tree parser (devicetree spec, format
 * version 17; blobs of version >= 16 whose last_comp_version <= 17).
 *
 * fdt_open() checks the whole blob once: the header, the block layout, the
 * memory-reservation block and every token of the structure block. Only a
 * blob that passes is used by the other calls, which still bounds-check every
 * read. Nothing is allocated and the blob is never written; it needs no
 * particular alignment. Strings and values returned point into the blob.
 *
 * Nodes are named by handles: the offset (>= 0) of the node's BEGIN_NODE
 * token inside the structure block. Negative values are error codes.
 */
#ifndef PLATFORM_DTB_H
#define PLATFORM_DTB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define FDT_MAGIC         0xd00dfeedu
#define FDT_VERSION       17u   /* the format this parser implements */
#define FDT_MIN_VERSION   16u   /* oldest version accepted */
#define FDT_MAX_DEPTH     32    /* nodes nested deeper are rejected */
#define FDT_REASON_MAX    160

/* Structure block tokens (big-endian 32-bit words, 4-byte aligned). */
#define FDT_BEGIN_NODE 0x1u
#define FDT_END_NODE   0x2u
#define FDT_PROP       0x3u
#define FDT_NOP        0x4u
#define FDT_END        0x9u

/* Header field offsets; 40 bytes in version 17, 36 in version 16 (no
 * size_dt_struct). */
#define FDT_HDR_MAGIC        0
#define FDT_HDR_TOTALSIZE    4
#define FDT_HDR_OFF_STRUCT   8
#define FDT_HDR_OFF_STRINGS  12
#define FDT_HDR_OFF_RSVMAP   16
#define FDT_HDR_VERSION      20
#define FDT_HDR_LAST_COMP    24
#define FDT_HDR_BOOT_CPUID   28
#define FDT_HDR_SIZE_STRINGS 32
#define FDT_HDR_SIZE_STRUCT  36
#define FDT_HDR_SIZE_V16     36
#define FDT_HDR_SIZE_V17     40

/* A checked blob. Filled by fdt_open; read-only afterwards. */
struct fdt {
	const uint8_t *blob;
	uint32_t totalsize;
	uint32_t version;
	uint32_t boot_cpuid;
	uint32_t off_struct, size_struct;
	uint32_t off_strings, size_strings;
	uint32_t off_rsv, n_rsv;      /* reservation entries, terminator excluded */
	char reason[FDT_REASON_MAX];  /* why fdt_open failed */
};

/* Check `len` bytes at `blob` and fill *f. Returns 0, E_NOTSUP for a version
 * this parser does not read, E_CORRUPT for any malformed blob (E_INVAL for a
 * NULL argument); on failure f->reason names the problem, e.g. "bad magic
 * 0x12345678". Bytes past the header's totalsize are ignored. The blob must
 * stay unchanged while *f is used. */
int fdt_open(struct fdt *f, const void *blob, size_t len);

/* The totalsize a header claims, for a caller that has only a pointer (the
 * kernel's a1): 0 unless the magic matches. Reads 8 bytes, checks nothing
 * else; pass the result to fdt_open as len only once it is known mapped. */
uint32_t fdt_blob_size(const void *blob);

/* Reservation entry i (< f->n_rsv) of the header's reservation block.
 * Returns 0 or E_RANGE. */
int fdt_rsv(const struct fdt *f, uint32_t i, uint64_t *addr, uint64_t *size);

/* Tree navigation. Each returns a node handle, or E_NOENT when there is no
 * such node (E_CORRUPT if the handle is not a node). */
int fdt_root(const struct fdt *f);
int fdt_first_child(const struct fdt *f, int node);
int fdt_next_sibling(const struct fdt *f, int node);
/* The child of `parent` named `name`, compared with the whole node name
 * ("cpu@0") or, when `name` has no '@', with the part before the '@'. */
int fdt_subnode(const struct fdt *f, int parent, const char *name);
/* The node at an absolute path such as "/cpus" or "/soc/test@100000". */
int fdt_path(const struct fdt *f, const char *path);
/* The node's name including any unit address ("" for the root), NULL for a
 * bad handle. */
const char *fdt_name(const struct fdt *f, int node);

/* The value of property `name` of `node` and its length in *len (may be
 * NULL); NULL when absent. */
const void *fdt_prop(const struct fdt *f, int node, const char *name, uint32_t *len);
/* The property as a string: NULL when absent or not NUL-terminated. */
const char *fdt_prop_str(const struct fdt *f, int node, const char *name);
/* A 4- or 8-byte integer property. Returns 0, E_NOENT when absent,
 * E_CORRUPT for another length. */
int fdt_prop_uint(const struct fdt *f, int node, const char *name, uint64_t *v);
/* A cell-count property (#address-cells, #size-cells): *v = dflt when
 * absent; E_CORRUPT when its length is not 4. */
int fdt_prop_cells(const struct fdt *f, int node, const char *name, uint32_t dflt,
		   uint32_t *v);

/* Value helpers: big-endian loads from any alignment. */
uint32_t fdt_u32(const void *p);
uint64_t fdt_u64(const void *p);
/* n (1 or 2) cells as one number. */
uint64_t fdt_cells(const void *p, uint32_t n);
/* Is `s` one of the NUL-terminated strings in the list val[0..len)? */
bool fdt_strlist_has(const void *val, uint32_t len, const char *s);

/* Walk every node and property in tree order. */
enum fdt_event_kind { FDT_EV_BEGIN, FDT_EV_PROP, FDT_EV_END };
struct fdt_event {
	enum fdt_event_kind kind;
	int depth;             /* root = 0 */
	int node;              /* handle of the node (BEGIN/END) or owner (PROP) */
	const char *name;      /* node or property name */
	const void *val;       /* PROP only */
	uint32_t len;          /* PROP only */
};
/* A non-zero return from fn stops the walk and is returned by fdt_walk. */
typedef int (*fdt_visit_fn)(void *arg, const struct fdt_event *ev);
int fdt_walk(const struct fdt *f, fdt_visit_fn fn, void *arg);

/* A tiny formatter for reason strings (no stdio in platform code):
 * %s %c %u %d %x (unsigned), %llu %llx (64-bit), %%. Always NUL-terminates,
 * truncating when `cap` is too small. */
void fdt_fmt(char *buf, size_t cap, const char *fmt, ...);

#endif
