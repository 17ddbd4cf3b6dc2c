/* stress_int.h - what the engine's files share: options, per-hart state,
 * blocks, the manager adapters (stress_mgr.c) and the verification
 * (stress_verify.c). Not a public API. */
#ifndef STRESS_INT_H
#define STRESS_INT_H

#include "kmalloc.h"
#include "lmm.h"
#include "mm.h"
#include "stress.h"
#include "vm.h"

#define S_MAX_HARTS   ENV_MAX_CPUS
#define S_MAX_LIVE    4096          /* live= upper bound per hart */
#define S_IRQ_SLOTS   16            /* blocks a hart's timer tick keeps */
#define S_MIN_SIZE    32            /* a block holds its 4-word stamp */
#define S_VM_DESCS    2             /* address spaces the harts share */
#define S_BAD_MAX     16            /* bad-input injections per manager */
#define S_HBUCKETS    160           /* per-op count histogram: 2^0 .. 2^40 */

/* Fields other harts read while their owner writes them. */
#define LD(x)    __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define INC(x)   ST(x, (x) + 1)

enum { M_UMM, M_KMALLOC, M_PMEM, M_LMM, M_VM, M_MM, NMGR };
enum { DIST_UNIFORM, DIST_LOG, DIST_POW };
enum { OP_ALLOC, OP_FREE, OP_REALLOC, OP_ALIGNED, NOPS };
enum { VOP_MAP, VOP_UNMAP, VOP_PROTECT, VOP_GROW, NVOPS };

struct sopts {
	unsigned mgrs;                  /* bit per M_* */
	uint64_t secs, ops, seed;
	unsigned harts;
	size_t size_min, size_max;
	int dist;
	unsigned mix[NOPS], vmix[NVOPS];
	unsigned live, xfer, irq, fail, onoff, check, stat, yield;
	bool leaks, kmirq, icount;
	unsigned corrupt;
	unsigned watchdog;              /* seconds without progress (0: off) */
	bool watchdog_set;              /* given as an option (else the default) */
	unsigned debug;                 /* DBG_*: provoke a failure on purpose */
	unsigned parts, pops;           /* partitions as stressors of shared areas */
};

/* debug=: failures provoked on purpose, to test the tool's own checks. */
enum { DBG_NONE, DBG_STALL, DBG_STALLWAIT, DBG_KBLOCK, DBG_KFAULT, DBG_WEDGE };

/* What a hart is doing (shart.cur: mgr << 8 | W_*), for the watchdog. */
enum { W_IDLE, W_ALLOC, W_FREE, W_REALLOC, W_ALIGNED, W_GROW, W_XRECV, W_FLUSH,
       W_OFFLINE, W_CHECK, W_BARRIER, W_END, W_PARTS, W_PARTS_END, NWHAT };
#define W_NOMGR 0xff

/* A live block. inst: 0 private instance, 1 the kernel's global one. */
struct sblk {
	uintptr_t h;                    /* manager handle: pa, offset, va */
	uint64_t *va;                   /* where the stamp is (NULL: vm) */
	uintptr_t key;                  /* address the cookie derives from */
	uint32_t size, seq;
	uint8_t mgr, inst, api, used;
	uint16_t owner;
	uint16_t prot;                  /* vm mappings */
};

/* Blocks in flight between harts: the stamp's word 2 links them. */
struct xnode {
	uint64_t w[4];
};

enum { H_RUN, H_OFF, H_GONE, H_DEAD };

struct shart {
	unsigned idx, cpu;
	uint64_t rng;
	struct sblk *slot;
	unsigned nslot, nlive;
	uint32_t seq;
	uint64_t ops, target;
	uint64_t mops[NMGR], mcount[NMGR], mfail[NMGR];
	int64_t mlive[NMGR];            /* shadow: bytes this hart added minus removed */
	uint64_t xsent, xrecv;
	void *xq;                       /* incoming blocks (Treiber stack) */
	struct sblk irq[S_IRQ_SLOTS];
	uint64_t irq_ops, irq_null;
	volatile unsigned in_km;        /* inside the private kmalloc (thread context) */
	volatile int state;
	volatile bool off_req, flushed, started;
	uint64_t offs;
	/* parts=: next lend of this hart to its partitions (s_ns), lends
	 * so far, none of its partitions left */
	uint64_t part_next, part_lends;
	bool parts_done;
	mm_t mmh;                         /* this hart's handle on the shared area */
	bool mm_attached;
	struct vm_segment *seg;         /* this hart's heap segment */
	uint64_t stale;                 /* corrupt=: the va just freed */
	/* watchdog: beat moves on every op (and wait round of hart 0);
	 * cur names what the hart does; waiting: at a barrier or done, so
	 * not moving is not a stall */
	uint32_t mhist[NMGR][S_HBUCKETS];   /* count per op: 4 buckets per power of two */
	volatile uint64_t beat;
	volatile uint32_t cur;
	volatile bool waiting;
} __attribute__((aligned(64)));

/* A page pool whose calls can fail on purpose: kmalloc's and vm's source. */
struct spool {
	env_spinlock_t lock;
	uint8_t *base;
	uint64_t pa;                    /* "physical" address of base for vm */
	size_t npages, live, hint, peak;
	uint8_t *used;                  /* 1 per page: start of a run, 2 inside */
	uint16_t *runlen;
};

struct stress {
	const struct stress_plat *p;
	struct sopts o;
	unsigned n;                     /* harts in the run */
	struct shart *h[S_MAX_HARTS];
	volatile bool stop, quiet;
	volatile int failed;
	char why[200];
	env_spinlock_t ctl;             /* barrier and hart membership */
	volatile unsigned active, arrived, dead;
	volatile bool check_req;
	volatile unsigned check_gen;    /* bumped as each check ends */
	uint64_t wd_ns, wd_beat[S_MAX_HARTS], wd_t[S_MAX_HARTS];
	volatile int wedged;            /* a hart never reached the end: verdict printed */
	unsigned scale;                 /* run bounds x scale (many harts) */
	/* kmalloc bytes found with stopped CPUs (s_kmalloc_stranded) */
	uint64_t km_strand_last, km_strand_peak, km_strand_priv, km_strand_glob;
	uint64_t km_strand_remote, km_strand_priv_remote, km_strand_events;
	uint64_t part_ops;              /* parts=: the partitions' ops (the mm row) */
	uint64_t onoff_skips;           /* hot-plug requests not made: live partitions */
	bool skip_said[S_MAX_HARTS];    /* ... said once per hart */
	uint64_t t0, deadline, checks, last_check, last_stat, last_onoff;
	uint64_t injected, handled, bad_in;
	uint64_t minjected[NMGR], mbad[NMGR], mpeak[NMGR];
	uint64_t c0;
	/* instances */
	umm_t *umm;
	void *umm_mem; size_t umm_size;
	kmalloc_t *km;
	struct spool kpool, vpool;
	pmem_t *pm;
	void *pm_mem; uint64_t pm_pa; size_t pm_size, pm_free0;
	lmm_t lmm;
	lmm_region_t lreg;
	env_spinlock_t llock;
	void *lmm_mem; size_t lmm_size, lmm_free0;
	void *mm_mem; size_t mm_room;
	size_t mm_used0;
	struct mm_env mm_env;
	vm_sys_t *vsys;
	struct vm_env venv;
	struct vm_descriptor *vd[S_VM_DESCS];
	volatile int64_t vobjs;
	size_t g_avail0, g_kept0;
	struct umm_stats gumm0;
	uint64_t gkm_live0;
	size_t need_mem;
};

/* ---- stress.c ---- */
uint64_t s_rand(struct shart *h);
bool s_fail_now(struct stress *s, unsigned mgr);     /* injected failure? */
void s_failure(struct stress *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t s_ns(struct stress *s);
const char *s_mgr_name(unsigned m);
void s_doing(struct shart *h, unsigned mgr, unsigned what);   /* the watchdog's word */

/* ---- stress_verify.c ---- */
void s_stamp(struct stress *s, struct sblk *b);
/* 0 if intact; else reports the first violation (s_failure). link: skip
 * word 2 (a block in flight). prefix: bytes to check (0: all). */
int s_verify(struct stress *s, struct shart *h, const struct sblk *b, bool link,
	     size_t prefix, const char *when);

/* ---- stress_mgr.c ---- */
int s_setup(struct stress *s);                  /* hart 0, before the run */
void s_teardown(struct stress *s);
int s_hart_init(struct stress *s, struct shart *h);
int s_alloc(struct stress *s, struct shart *h, struct sblk *b, size_t size, bool aligned);
int s_free(struct stress *s, struct shart *h, struct sblk *b);
int s_realloc(struct stress *s, struct shart *h, struct sblk *b, size_t size);
void s_vm_grow_op(struct stress *s, struct shart *h);
void s_bad_input(struct stress *s, struct shart *h, const struct sblk *b);
int s_check_all(struct stress *s);              /* quiescent: every *_check */
void s_flush_cpu(struct stress *s, struct shart *h);
int s_stranded(struct stress *s, struct shart *h);
int s_kmalloc_stranded(struct stress *s, struct shart *h);   /* reports only, for now */
int s_finish(struct stress *s);                 /* everything freed: balanced? */
void s_leaks(struct stress *s);
bool s_can_xfer(unsigned mgr);
/* irq path: fast alloc/free on the private umm (and kmalloc when allowed) */
void s_irq_op(struct stress *s, struct shart *h, bool km_ok);
void s_irq_free(struct stress *s, struct sblk *b, bool from_tick);   /* one of the tick's blocks */

#endif
