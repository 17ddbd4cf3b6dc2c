/* part.c - the partition program. One image, many roles: the argument's
 * low byte picks the role, the rest is its parameter. The demo and the
 * in-kernel partition tests start instances of it. */
#include <stdio.h>
#include <string.h>

#include "memlayout.h"
#include "mm.h"
#include "part_roles.h"
#include "ulib.h"

/* ---- the demo: producers build a list, consumers verify it --------------- */

struct demo_hdr {                 /* the area's static part */
	struct mm_list head;
	uint32_t nodes;
	uint32_t producers_done;
	uint64_t peer_addr;           /* a producer's private address (breach test) */
	uint32_t changes;             /* bumped with every batch: consumers mm_wait on it */
};

struct node {
	struct mm_list link;
	uint32_t producer, seq;
	uint64_t sum;
	uint8_t payload[48];
};

static uint64_t fill(struct node *n, uint32_t producer, uint32_t seq)
{
	uint64_t sum = 0;

	n->producer = producer;
	n->seq = seq;
	for (unsigned i = 0; i < sizeof(n->payload); i++) {
		n->payload[i] = (uint8_t)(producer * 31 + seq * 7 + i);
		sum = sum * 131 + n->payload[i];
	}
	return sum;
}

static mm_t *attach_demo(void)
{
	mm_t *mm = mm_create(DEMO_AREA, sizeof(struct demo_hdr), 2048);
	struct demo_hdr *h;

	if (!mm)
		return NULL;
	if (mm_lock(mm, MM_LOCK_RW) < 0)
		return NULL;
	h = mm_static(mm);
	if (h->head.next == MM_NULL)
		mm_list_init(mm, &h->head);
	mm_unlock(mm);
	return mm;
}

static int producer(unsigned long param)
{
	unsigned nodes = ROLE_COUNT(param), me = (unsigned)usys_partid();
	volatile uint64_t secret = 0x5ec7e7 + me;   /* on this partition's stack */
	mm_t *mm = attach_demo();
	struct demo_hdr *h;

	if (!mm)
		return 10;
	for (unsigned i = 0; i < nodes; i++) {
		mm_ptr_t p;
		struct node *n;

		if (mm_lock(mm, MM_LOCK_RW) < 0)
			return 11;
		p = mm_alloc(mm, sizeof(struct node));
		n = mm_addr_n(mm, p, sizeof(*n));
		h = mm_static(mm);
		if (!n) {
			mm_unlock(mm);
			return 12;
		}
		n->sum = fill(n, me, i);
		if (mm_list_add_tail(mm, &h->head, &n->link)) {
			mm_unlock(mm);
			return 13;
		}
		h->nodes++;
		h->peer_addr = (uint64_t)(uintptr_t)&secret;
		if (i % 8 == 7)
			__atomic_fetch_add(&h->changes, 1, __ATOMIC_RELEASE);
		mm_unlock(mm);
		if (i % 8 == 7)
			mm_wake(mm, &h->changes, 64);   /* a batch is in: consumers look */
		if (i % 8 == 0)
			usys_yield();
	}
	mm_lock(mm, MM_LOCK_RW);
	h = mm_static(mm);
	h->producers_done++;
	__atomic_fetch_add(&h->changes, 1, __ATOMIC_RELEASE);
	mm_wake(mm, &h->changes, 64);
	printf("producer %u: added %u nodes; area mapped at %p, %lu KiB, %lu KiB available\n",
	       me, nodes, (void *)mm->base, (unsigned long)(mm->mapped >> 10),
	       (unsigned long)(mm_available(mm) >> 10));
	mm_unlock(mm);
	return secret == 0x5ec7e7 + me ? 0 : 14;
}

static int consumer(unsigned long param)
{
	unsigned want_prod = ROLE_COUNT(param) & 0xff, per = ROLE_COUNT(param) >> 8;
	mm_t *mm = attach_demo();
	unsigned me = (unsigned)usys_partid();

	if (!mm)
		return 20;
	uint64_t deadline = usys_time_us() + 60ull * 1000000;   /* a bound, not a timing */

	while (usys_time_us() < deadline) {
		struct demo_hdr *h;
		struct mm_list *pos;
		unsigned count = 0, bad = 0, done;
		uint32_t seen;

		if (mm_lock(mm, MM_LOCK_RD) < 0)
			return 21;
		h = mm_static(mm);
		seen = __atomic_load_n(&h->changes, __ATOMIC_ACQUIRE);
		mm_list_for_each(mm, pos, &h->head) {
			struct node *n = mm_list_entry(pos, struct node, link);
			struct node copy = *n;
			count++;
			if (fill(&copy, n->producer, n->seq) != n->sum ||
			    memcmp(copy.payload, n->payload, sizeof(n->payload)))
				bad++;
		}
		done = h->producers_done;
		if (bad) {
			mm_unlock(mm);
			printf("consumer %u: %u corrupt nodes\n", me, bad);
			return 22;
		}
		if (done == want_prod && count == want_prod * per && count == h->nodes) {
			printf("consumer %u: verified %u nodes from %u producers through %p\n",
			       me, count, done, (void *)mm->base);
			mm_unlock(mm);
			return 0;
		}
		mm_unlock(mm);
		/* sleep until a producer says a batch is in (no polling); a
		 * change since `seen` returns at once; the timeout is a bound */
		if (mm_wait(mm, &h->changes, seen, 1000000) == E_DENIED)
			return 24;
	}
	printf("consumer %u: gave up waiting for the producers\n", me);
	return 23;
}

/* ---- isolation breaches: each must get this partition stopped ------------ */

static volatile int deep_limit = 1 << 30;

static int deep(int depth)
{
	volatile char frame[512];

	frame[0] = (char)depth;
	if (depth > deep_limit)
		return 0;
	return deep(depth + 1) + frame[0];
}

static int breach(unsigned long kind)
{
	static volatile uint32_t data_insn[2] = { 0x00008067, 0 };   /* ret */
	volatile uint64_t *kernel = (volatile uint64_t *)KERNEL_VMA;

	switch (kind) {
	case BREACH_KERNEL_READ:
		printf("breach: reading kernel memory at %p\n", (void *)kernel);
		return (int)*kernel;
	case BREACH_KERNEL_WRITE:
		printf("breach: writing kernel memory at %p\n", (void *)kernel);
		*kernel = 0;
		return 0;
	case BREACH_PEER_READ: {
		mm_t *mm = attach_demo();
		volatile uint64_t *peer = NULL;
		for (int i = 0; i < 100000 && !peer; i++) {
			if (mm_lock(mm, MM_LOCK_RD) < 0)
				return 31;
			peer = (volatile uint64_t *)(uintptr_t)((struct demo_hdr *)mm_static(mm))->peer_addr;
			mm_unlock(mm);
			if (!peer)
				usys_yield();
		}
		printf("breach: reading a peer partition's stack at %p\n", (void *)peer);
		return peer ? (int)*peer : 32;
	}
	case BREACH_EXEC_DATA:
		printf("breach: executing data at %p\n", (void *)data_insn);
		((void (*)(void))(uintptr_t)data_insn)();
		return 0;
	case BREACH_JUMP_KERNEL:
		printf("breach: jumping into kernel text at %p\n", (void *)kernel);
		((void (*)(void))(uintptr_t)kernel)();
		return 0;
	case BREACH_QUOTA: {
		volatile uint8_t *heap = (volatile uint8_t *)USER_HEAP_BASE;
		printf("breach: touching heap pages until the quota\n");
		for (unsigned long off = 0;; off += 4096)
			heap[off] = 1;
	}
	case BREACH_BAD_SYSCALL_PTR:
		printf("breach: passing a kernel pointer to write()\n");
		return (int)usys_write((const void *)kernel, 16);
	case BREACH_ILLEGAL:
		printf("breach: executing an illegal instruction\n");
		__asm__ volatile(".word 0xc0001073");
		return 0;
	case BREACH_STACK_OVERFLOW:
		printf("breach: recursing past the stack's reserved room\n");
		return deep(0);
	}
	return 99;
}

/* ---- lock stress and robustness ------------------------------------------- */

struct hammer_hdr {
	uint64_t counter;
	uint32_t owner;
	uint8_t buf[64];
};

static int hammer(unsigned long iters)
{
	mm_t *mm = mm_create(HAMMER_AREA, sizeof(struct hammer_hdr), 1024);
	unsigned me = (unsigned)usys_partid();
	mm_ptr_t mine[16] = { 0 };

	if (!mm)
		return 40;
	for (unsigned long i = 0; i < iters; i++) {
		struct hammer_hdr *h;
		int rc = mm_lock(mm, MM_LOCK_RW);

		if (rc < 0) {
			printf("hammer: mm_lock at iteration %lu: %s\n", i, err_str(rc));
			return 41;
		}
		h = mm_static(mm);
		h->owner = me;
		memset(h->buf, (int)me, sizeof(h->buf));
		h->counter++;
		/* grow the area while the others use it */
		if (i % 4 == 0) {
			unsigned k = (unsigned)(i / 4) % 16;
			if (mine[k])
				mm_free(mm, mine[k]);
			mine[k] = mm_alloc(mm, 512 + 64 * k);
			if (!mine[k]) {
				mm_unlock(mm);
				return 42;
			}
			memset(mm_addr(mm, mine[k]), (int)me, 512);
		}
		for (unsigned j = 0; j < sizeof(h->buf); j++)
			if (h->buf[j] != (uint8_t)me || h->owner != me) {
				mm_unlock(mm);
				return 43;
			}
		for (unsigned k = 0; k < 16; k++) {
			const uint8_t *b = mine[k] ? mm_addr(mm, mine[k]) : NULL;
			if (b && (b[0] != (uint8_t)me || b[511] != (uint8_t)me)) {
				mm_unlock(mm);
				return 44;
			}
		}
		mm_unlock(mm);
		if (i % 3 == 0)
			usys_yield();
	}
	return mm_check(mm) ? 45 : 0;
}

struct robust_hdr {
	volatile uint32_t locked;
};

static int locker_dies(void)
{
	mm_t *mm = mm_create(ROBUST_AREA, sizeof(struct robust_hdr), 256);
	volatile uint64_t *kernel = (volatile uint64_t *)KERNEL_VMA;

	if (!mm || mm_lock(mm, MM_LOCK_RW) < 0)
		return 50;
	((struct robust_hdr *)mm_static(mm))->locked = 1;
	printf("locker: holding the lock, now faulting\n");
	return (int)*kernel;   /* stopped here with the lock held */
}

/* Open the area `name` and yield until its lock holder says so in the first
 * word of the static part (`locked`, `holding`), at most `spins` times: then
 * the caller's mm_lock meets a held lock. NULL if the area cannot be had. */
static mm_t *open_behind_holder(const char *name, size_t static_size, int spins)
{
	mm_t *mm = mm_create(name, static_size, 256);
	volatile uint32_t *held = mm ? mm_static(mm) : NULL;

	for (int i = 0; held && i < spins && !*held; i++)
		usys_yield();
	return mm;
}

static int waiter(void)
{
	mm_t *mm = open_behind_holder(ROBUST_AREA, sizeof(struct robust_hdr), 200000);
	int rc;

	if (!mm)
		return 60;
	rc = mm_lock(mm, MM_LOCK_RW);
	printf("waiter: mm_lock returned %d (%s)\n", rc,
	       rc == MM_LOCK_OWNER_DIED ? "owner died" : "?");
	if (rc != MM_LOCK_OWNER_DIED)
		return 61;
	rc = mm_check(mm);
	mm_unlock(mm);
	return rc ? 62 : 0;
}

/* ---- hostile partitions against the area lock (shm_hostile_test.c) ------- */

#define H_LOCK  40               /* docs/MM.md: the lock word */
#define H_FLAGS 24
#define H_SLOTS 200              /* uint32_t slots[56] */

static void poke64(mm_t *mm, uint32_t off, uint64_t v)
{
	*(volatile uint64_t *)(mm->base + off) = v;
}

static void poke32(mm_t *mm, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(mm->base + off) = v;
}

struct shmh_hdr {                /* SHMH_AREA's static part, written raw */
	volatile uint32_t holding, waiter_timed_out;
};

/* SYS_MM_LOCK until the peers let it have the lock (E_BUSY: try again). */
static long raw_lock(long base, int mode)
{
	long rc;

	for (int i = 0; i < 1000000; i++) {
		rc = usys_call(SYS_MM_LOCK, base, mode, 0, 0);
		if (rc != E_BUSY)
			return rc;
		usys_yield();
	}
	return rc;
}

/* Every bad lock call gets its error; each mismatch is its own status. */
static int bad_lock_calls(mm_t *mm)
{
	long b = (long)(uintptr_t)mm->base;

	if (usys_call(SYS_MM_LOCK, b, 3, 0, 0) != E_INVAL)
		return 71;
	if (usys_call(SYS_MM_LOCK, b + 4096, MM_LOCK_RD, 0, 0) != E_NOENT)
		return 72;
	if (usys_call(SYS_MM_LOCK, -1, MM_LOCK_RW, 0, 0) != E_NOENT)
		return 73;
	if (usys_call(SYS_MM_UNLOCK, b, 0, 0, 0) != E_INVAL)
		return 74;
	if (raw_lock(b, MM_LOCK_RD) < 0)
		return 75;
	if (usys_call(SYS_MM_LOCK, b, MM_LOCK_RD, 0, 0) != E_DENIED)
		return 76;
	if (usys_call(SYS_MM_LOCK, b, MM_LOCK_RW, 0, 0) != E_DENIED)
		return 77;
	if (usys_call(SYS_MM_UNLOCK, b, 0, 0, 0) != 0)
		return 78;
	if (usys_call(SYS_MM_UNLOCK, b, 0, 0, 0) != E_INVAL)
		return 79;
	return 0;
}

/* Hold RW in SHMH_AREA until the waiter reports its E_TIMEOUT, then exit
 * with the lock held (the kernel releases it). */
static int hold_overdue(void)
{
	mm_t *mm = mm_create(SHMH_AREA, sizeof(struct shmh_hdr), 256);
	struct shmh_hdr *h;
	uint64_t end;

	if (!mm || mm_lock(mm, MM_LOCK_RW) < 0)
		return 80;
	h = mm_static(mm);
	h->holding = 1;
	end = usys_time_us() + 60ull * 1000000;      /* a bound, not a timing */
	while (!h->waiter_timed_out && usys_time_us() < end)
		usys_yield();
	printf("hostile: held the lock; the waiter %s\n",
	       h->waiter_timed_out ? "timed out" : "never timed out");
	return h->waiter_timed_out ? 0 : 81;
}

static int shm_waiter(void)
{
	mm_t *mm = open_behind_holder(SHMH_AREA, sizeof(struct shmh_hdr), 2000000);
	struct shmh_hdr *h;
	int rc;

	if (!mm)
		return 90;
	h = mm_static(mm);
	rc = mm_lock(mm, MM_LOCK_RW);
	printf("waiter: mm_lock behind the overdue holder: %d (%s)\n", rc, err_str(rc));
	if (rc != E_TIMEOUT)
		return 91;
	h->waiter_timed_out = 1;
	/* until the holder has seen it and left (a bound, not a timing) */
	for (uint64_t end = usys_time_us() + 60ull * 1000000; usys_time_us() < end;) {
		rc = mm_lock(mm, MM_LOCK_RW);
		if (rc != E_TIMEOUT)
			break;
		usys_yield();
	}
	printf("waiter: after the holder left: %d\n", rc);
	if (rc != MM_LOCK_OWNER_DIED)
		return 92;
	rc = mm_check(mm);
	mm_unlock(mm);
	return rc ? 93 : 0;
}

struct calm_hdr {                /* SHMH_CALM's first bytes, written raw */
	volatile uint32_t big_done;
	uint32_t hoarders_ready;
};

static long raw_attach(const char *name, size_t initial, size_t max, struct sys_mm_attach *o)
{
	return usys_call(SYS_MM_ATTACH, (long)name, (long)initial, (long)max, (long)o);
}

/* Create, touch and free 16 MiB areas `rounds` times, then tell the
 * bystanders through SHMH_CALM. */
static int big_areas(unsigned rounds)
{
	struct sys_mm_attach calm, big;
	char name[8] = "big0";

	if (raw_attach(SHMH_CALM, 4096, 4096, &calm))
		return 100;
	for (unsigned r = 0; r < rounds; r++) {
		volatile uint8_t *b;

		name[3] = (char)('0' + r % 4);
		if (raw_attach(name, SHMH_BIG_SIZE, SHMH_BIG_SIZE, &big))
			return 101;
		if (big.mapped != SHMH_BIG_SIZE || !big.created)
			return 102;
		b = (volatile uint8_t *)(uintptr_t)big.base;
		if (b[0] || b[SHMH_BIG_SIZE - 1])
			return 103;                 /* zero-filled */
		b[0] = b[SHMH_BIG_SIZE - 1] = 1;
		if (usys_call(SYS_MM_DETACH, (long)big.base, 0, 0, 0))
			return 104;
	}
	((struct calm_hdr *)(uintptr_t)calm.base)->big_done = 1;
	return 0;
}

/* Until the big one is done: SYS_MM_MAP on SHMH_CALM, timing each call;
 * prints the longest. */
static int bystander(void)
{
	struct sys_mm_attach calm;
	uint64_t worst = 0, n = 0;

	if (raw_attach(SHMH_CALM, 4096, 4096, &calm))
		return 110;
	for (uint64_t end = usys_time_us() + 120ull * 1000000; usys_time_us() < end; n++) {
		uint64_t t = usys_time_us();

		if (usys_call(SYS_MM_MAP, (long)calm.base, 4096, 0, 0) != 4096)
			return 111;
		t = usys_time_us() - t;
		if (t > worst)
			worst = t;
		if (((struct calm_hdr *)(uintptr_t)calm.base)->big_done)
			break;
	}
	printf("bystander: %lu shared-area calls, longest %lu us\n", (unsigned long)n,
	       (unsigned long)worst);
	return ((struct calm_hdr *)(uintptr_t)calm.base)->big_done ? 0 : 112;
}

/* A 256 KiB quota against 16 MiB areas: refused, each; a small one fits;
 * attachments beyond PART_MAX_ATTACH are refused too. */
static int quota_areas(void)
{
	struct sys_mm_attach o[4];
	char name[8] = "quota0";

	for (int i = 0; i < 4; i++) {
		name[5] = (char)('0' + i);
		if (raw_attach(name, SHMH_BIG_SIZE, SHMH_BIG_SIZE, &o[0]) != E_NOMEM)
			return 120 + i;
	}
	if (raw_attach("quota-small", 4096, 16384, &o[0]))
		return 125;
	for (int i = 1; i < 4; i++) {
		name[5] = (char)('a' + i);
		if (raw_attach(name, 4096, 4096, &o[i]))
			return 126;
	}
	if (raw_attach("quota-more", 4096, 4096, &o[0]) != E_BUSY)
		return 127;                          /* PART_MAX_ATTACH */
	return 0;
}

/* Three areas of its own plus SHMH_CALM, kept until the latecomer is done. */
static int hoard(void)
{
	struct sys_mm_attach calm, o;
	char name[12] = "hoard-00";
	unsigned me = (unsigned)usys_partid();
	struct calm_hdr *c;

	if (raw_attach(SHMH_CALM, 4096, 4096, &calm))
		return 130;
	c = (struct calm_hdr *)(uintptr_t)calm.base;
	for (unsigned i = 0; i < 3; i++) {
		name[6] = (char)('0' + me % 10);
		name[7] = (char)('0' + i);
		if (raw_attach(name, 4096, 16384, &o) || !o.created)
			return 131;
	}
	__atomic_fetch_add(&c->hoarders_ready, 1, __ATOMIC_RELEASE);
	for (uint64_t end = usys_time_us() + 60ull * 1000000; usys_time_us() < end;)
		if (c->big_done)
			return 0;
		else
			usys_yield();
	return 132;
}

static int latecomer(unsigned hoarders)
{
	struct sys_mm_attach calm;
	struct calm_hdr *c;
	mm_t *mm;
	mm_ptr_t p;
	int rc = 0;

	if (raw_attach(SHMH_CALM, 4096, 4096, &calm))
		return 140;
	c = (struct calm_hdr *)(uintptr_t)calm.base;
	for (uint64_t end = usys_time_us() + 60ull * 1000000;
	     __atomic_load_n(&c->hoarders_ready, __ATOMIC_ACQUIRE) < hoarders;)
		if (usys_time_us() > end)
			return 141;
		else
			usys_yield();
	mm = mm_create("latecomer", 16, 8192);
	if (!mm)
		rc = 142;
	else if ((p = mm_alloc(mm, 4000)) == MM_NULL || mm_check(mm))
		rc = 143;
	else
		memset(mm_addr(mm, p), 0x5a, 4000);
	printf("latecomer: own area after %u hoarders: %s\n", hoarders, rc ? "refused" : "works");
	c->big_done = 1;
	return rc;
}

static int shm_hostile(unsigned long kind)
{
	mm_t *mm;
	uint64_t end;

	if (kind == SHMH_QUOTA)
		return quota_areas();
	if (kind == SHMH_HOARD)
		return hoard();
	if ((kind & 0xff) == SHMH_LATECOMER)
		return latecomer((unsigned)(kind >> 8));

	if ((kind & 0xff) == SHMH_BIG_AREAS)
		return big_areas((unsigned)(kind >> 8));
	if (kind == SHMH_BYSTANDER)
		return bystander();
	if (kind == SHMH_HOLD_OVERDUE)
		return hold_overdue();
	mm = attach_demo();
	if (!mm)
		return 70;
	switch (kind) {
	case SHMH_FORGE_WRITER:
		poke64(mm, H_LOCK, 0xb700000000000000ull);
		return 0;
	case SHMH_FORGE_PENDING:
		poke64(mm, H_LOCK, 0x7700000000000000ull);
		return 0;
	case SHMH_FORGE_READER:
		poke64(mm, H_LOCK, 1ull << 55);
		return 0;
	case SHMH_ZERO_OWN_SLOT:
	case SHMH_DEAD_OWN_SLOT:
		if (mm_lock(mm, MM_LOCK_RW) < 0)
			return 71;
		if (mm->slot < MM_MAX_ATTACH)
			poke32(mm, H_SLOTS + 4 * mm->slot,
			       kind == SHMH_ZERO_OWN_SLOT ? 0 : 0xffffffffu);
		poke64(mm, H_LOCK, (1ull << 63) | ((uint64_t)mm->slot << 56));
		return 0;                  /* exit holding RW */
	case SHMH_FLIP_EARLY:
		end = usys_time_us() + 20ull * 1000000;   /* a bound */
		for (uint64_t i = 0; usys_time_us() < end; i++) {
			struct demo_hdr *h = mm_static(mm);

			poke64(mm, H_LOCK, i * 0x9e3779b97f4a7c15ull);
			poke32(mm, H_SLOTS + 4 * (unsigned)(i % MM_MAX_ATTACH),
			       (uint32_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 0xffffffffu : i));
			poke32(mm, H_FLAGS, (uint32_t)i);
			if (h->producers_done >= 2)
				break;
			usys_yield();
		}
		return 0;
	case SHMH_BAD_LOCK_CALLS:
		return bad_lock_calls(mm);
	case SHMH_EXIT_HOLDING_RD:
		return raw_lock((long)(uintptr_t)mm->base, MM_LOCK_RD) >= 0 ? 0 : 72;
	}
	return 79;
}

/* ---- hostile roles of issue 11 ------------------------------------------- */

static int must_write(const char *s, size_t n)
{
	return usys_write(s, n) == (long)n ? 0 : 1;
}

/* Every way to make a console line look like the kernel's: each must come
 * out tagged and escaped (kernel/console.c). */
static int forger(unsigned long how)
{
	static const char *const forged[] = {
		"x\nshutdown: ok\n",
		"shutdown: ok",                       /* no newline at the end */
		"\rshutdown: ok\n",
		"\x1b[2K\x1b[1Gshutdown: ok\n",
		"\x1b[1A\x1b[999Dshutdown: ok",
		"1 passed, 0 failed\nshutdown: ok\n\nshutdown: ok",
		"panic: hart 0: forged\npanic: stopping all harts\n",
		"shutdown: ok\r\n",
		"\\x1b\\nshutdown: ok\n",              /* escapes spelled out */
	};
	char buf[512];
	int bad = 0;

	for (unsigned i = 0; i < sizeof(forged) / sizeof(forged[0]); i++)
		bad += must_write(forged[i], strlen(forged[i]));
	bad += must_write("a\0shutdown: ok\n", 16);   /* an embedded NUL */
	/* the long-line split lands right before a forged line */
	memset(buf, 'y', sizeof(buf));
	memcpy(buf + 150, "shutdown: ok", 12);
	memcpy(buf + sizeof(buf) - 12, "shutdown: ok", 12);
	bad += must_write(buf, sizeof(buf));
	if (how == FORGE_SPIN)
		for (;;)
			;
	return bad;
}

static int spinner(unsigned long how)
{
	volatile unsigned long n = 0;

	if (how == SPIN_LOCKED) {
		mm_t *mm = mm_create(ROBUST_AREA, sizeof(struct robust_hdr), 256);
		if (!mm || mm_lock(mm, MM_LOCK_RW) < 0)
			return 70;
		((struct robust_hdr *)mm_static(mm))->locked = 1;
	}
	for (;;)
		n++;
}

static int flood(unsigned long writes)
{
	char buf[512];

	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (char)('a' + i % 26);
	buf[sizeof(buf) - 1] = '\n';
	for (unsigned long i = 0; i < writes; i++)
		if (usys_write(buf, sizeof(buf)) != (long)sizeof(buf))
			return 80;
	return 0;
}

/* A bystander's short writes while others flood: the longest one, in
 * microseconds, for the report (printed, never asserted: timing). */
static int console_latency(unsigned long writes)
{
	uint64_t worst = 0, sum = 0;

	for (unsigned long i = 0; i < writes; i++) {
		uint64_t t = usys_time_us();
		if (usys_write("!\n", 2) != 2)
			return 81;
		t = usys_time_us() - t;
		sum += t;
		if (t > worst)
			worst = t;
	}
	printf("conlat: longest 2-byte write %lu us, mean %lu us, over %lu writes\n",
	       (unsigned long)worst, (unsigned long)(sum / (writes ? writes : 1)), writes);
	return 0;
}

static int sysloop(void)
{
	for (unsigned long i = 0;; i++) {
		if (i % 64 == 0 && usys_write("sysloop\n", 8) != 8)
			return 82;
		usys_yield();
		usys_time_us();
	}
}

static int heap_write(unsigned long how)
{
	volatile uint8_t *page = (volatile uint8_t *)(USER_HEAP_BASE + (64ul << 10));
	struct sys_mm_attach *out = (struct sys_mm_attach *)(USER_HEAP_BASE + (128ul << 10));

	switch (how) {
	case HEAPW_READ:
		/* untouched: the kernel's copy faults it in, as a load would */
		if (usys_write((const void *)page, 16) != 16)
			return 90;
		return page[0] == 0 && page[15] == 0 ? 0 : 91;
	case HEAPW_OUT:
		if (usys_call(SYS_MM_ATTACH, (long)HAMMER_AREA, 64, 4096, (long)out) != 0)
			return 92;
		return out->base && out->mapped ? 0 : 93;
	case HEAPW_FAR:
		/* in the heap, but growing to it takes more than the quota */
		return (int)usys_write((const void *)(USER_HEAP_BASE + (4ul << 20)), 16);
	case HEAPW_GAP:
		/* the guard gap just above the heap's 64 MiB of room */
		return (int)usys_write((const void *)(USER_HEAP_BASE + USER_HEAP_MAX + 4096), 16);
	}
	return 94;
}

/* ---- guest benchmarks (instructions from rdinstret, U-mode) ------------- */

static inline uint64_t instret(void)
{
	uint64_t v;
	__asm__ volatile("rdinstret %0" : "=r"(v));
	return v;
}

#define BENCH_N 2000

static int bench(unsigned long what)
{
	uint64_t t;

	switch (what) {
	case BENCH_SYSCALL:
		t = instret();
		for (int i = 0; i < BENCH_N; i++)
			usys_partid();
		t = instret() - t;
		printf("bench: system call round trip          %6lu.%02lu instructions per call\n",
		       (unsigned long)(t / BENCH_N), (unsigned long)(t % BENCH_N * 100 / BENCH_N));
		return 0;
	case BENCH_SWITCH:
		usys_yield();   /* let the peer start */
		t = instret();
		for (int i = 0; i < BENCH_N; i++)
			usys_yield();
		t = instret() - t;
		/* each round: our yield + switch, the peer's yield + switch back */
		printf("bench: partition switch (yield)        %6lu.%02lu instructions per switch\n",
		       (unsigned long)(t / (2 * BENCH_N)),
		       (unsigned long)(t % (2 * BENCH_N) * 100 / (2 * BENCH_N)));
		return 0;
	case BENCH_SWITCH_PEER:
		for (int i = 0; i < BENCH_N + 2; i++)
			usys_yield();
		return 0;
	}
	return 1;
}

/* ---- mm_wait / mm_wake (tests/kernel/part_test.c) ------------------------ */

struct wait_hdr {                /* WAIT_AREA's static part */
	volatile uint32_t word, word2;
	volatile uint32_t arrived;    /* sleepers about to sleep */
	volatile uint32_t flipping;   /* 1 while the flipper runs */
};

/* A negative rc as an exit status of its own: base + -rc. */
static int status_of(int base, long rc)
{
	return rc == 0 ? 0 : base + (int)(rc < 0 ? -rc : 99);
}

/* Wake `w` n at a time until `count` were woken (sleepers arrive when
 * their harts run them: a bound, not a timing), then once more: nobody
 * is left to wake. Each answer is checked against n. */
static unsigned wait_scale = 1;   /* wait_role's scale (part_roles.h) */

/* The bound of a wait for peers: 30 s of guest time, times the scale. */
static uint64_t peers_deadline(void)
{
	return usys_time_us() + 30ull * 1000000 * wait_scale;
}

static int wake_until(mm_t *mm, volatile uint32_t *w, unsigned count, unsigned n)
{
	uint64_t end = peers_deadline();
	unsigned total = 0;

	while (total < count) {
		long k = mm_wake(mm, w, n);

		if (k < 0 || (unsigned long)k > n)
			return 150;
		total += (unsigned)k;
		if (usys_time_us() > end)
			return 151;
		if (!k)
			usys_yield();
	}
	if (total != count)
		return 152;
	return mm_wake(mm, w, 64) == 0 ? 0 : 153;
}

/* Every bad call gets its own error and sleeps nowhere. */
static int wait_bad(mm_t *mm, struct wait_hdr *h)
{
	static const struct { uint64_t off, timeout; long want; } waits[] = {
		{ 2, 1000, E_ALIGN }, { 4094, 1000, E_ALIGN }, { 4096, 1000, E_RANGE },
		{ 1ull << 40, 1000, E_RANGE }, { (uint64_t)-4, 1000, E_RANGE },
		{ 0, 0, E_INVAL }, { 0, MM_WAIT_MAX_US + 1, E_RANGE },
	};
	long b = (long)(uintptr_t)mm->base;
	unsigned i;

	h->word2 = 1;
	for (i = 0; i < sizeof(waits) / sizeof(waits[0]); i++)
		if (usys_call(SYS_MM_WAIT, b, (long)waits[i].off, 0, (long)waits[i].timeout) !=
		    waits[i].want)
			return 180 + (int)i;
	if (usys_call(SYS_MM_WAIT, b + 4096, 0, 0, 1000) != E_NOENT)
		return 190;
	if (usys_call(SYS_MM_WAKE, b, 2, 1, 0) != E_ALIGN ||
	    usys_call(SYS_MM_WAKE, b, 4096, 1, 0) != E_RANGE ||
	    usys_call(SYS_MM_WAKE, b, 0, 0, 0) != E_INVAL ||
	    usys_call(SYS_MM_WAKE, -1, 0, 1, 0) != E_NOENT)
		return 191;
	/* the last valid word: nobody sleeps on it, value 0 but expected 1 */
	if (usys_call(SYS_MM_WAIT, b, 4092, 1, 1000) != E_BUSY ||
	    usys_call(SYS_MM_WAKE, b, 4092, 1, 0) != 0)
		return 192;
	if (mm_lock(mm, MM_LOCK_RW) < 0)
		return 193;
	i = (unsigned)mm_wait(mm, &h->word2, 1, 1000);
	mm_unlock(mm);
	if ((int)i != E_DENIED)
		return 194;
	return 0;
}

/* Wait on `word` `count` times while the flipper rewrites it: every
 * answer is one of three, and none takes longer than its timeout. */
static int wait_flipped(mm_t *mm, struct wait_hdr *h, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		uint32_t v = h->word;
		int rc = mm_wait(mm, &h->word, v, 20000);

		if (rc != 0 && rc != E_BUSY && rc != E_TIMEOUT)
			return status_of(200, rc);
	}
	return 0;
}

/* Once its `waiters` have attached, rewrites words all over the area's
 * first page (the mm header included) and wakes at random offsets, valid
 * and not, for `rounds` rounds. */
static int flipper(mm_t *mm, struct wait_hdr *h, unsigned waiters, unsigned rounds)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)usys_partid();
	volatile uint32_t *all = (volatile uint32_t *)(void *)mm->base;
	uintptr_t base = (uintptr_t)mm->base;

	for (uint64_t end = peers_deadline(); h->arrived < waiters;)
		if (usys_time_us() > end)
			return 212;
		else
			usys_yield();
	for (unsigned i = 0; i < rounds; i++) {
		long k;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		h->word = (uint32_t)x;
		all[(x >> 32) % 1024] = (uint32_t)(x >> 16);
		k = mm_wake(mm, (volatile uint32_t *)(base + (x >> 40) % 8192), 1 + (unsigned)(x % 4));
		if (k != E_ALIGN && k != E_RANGE && (k < 0 || k > 4))
			return 210;
		if (mm_wake(mm, &h->word, 1 + (unsigned)(x % 3)) < 0)
			return 211;
		if (i % 4 == 0)
			usys_yield();
	}
	return 0;
}

/* Instructions (rdinstret, -icount) of mm_wait returning at once, of
 * mm_wake with nobody asleep, and of a hand-off between two partitions
 * on one hart (a wake, a wait, a switch), the peer being WAITK_BENCH_PEER. */
#define WBENCH_N 2000
static void wbench_report(const char *what, uint64_t t, unsigned n)
{
	printf("bench: %-36s %6lu.%02lu instructions per call\n", what,
	       (unsigned long)(t / n), (unsigned long)(t % n * 100 / n));
}

static int wait_bench(mm_t *mm, struct wait_hdr *h, bool peer)
{
	volatile uint32_t *seq = &h->word;
	uint64_t t;
	uint32_t v;

	if (peer) {
		for (unsigned i = 0; i < WBENCH_N; i++) {
			while (!((v = *seq) & 1))
				if (mm_wait(mm, seq, v, 1000000) == E_TIMEOUT)
					return 241;
			*seq = v + 1;
			mm_wake(mm, seq, 1);
		}
		return 0;
	}
	h->word2 = 1;
	t = instret();
	for (unsigned i = 0; i < WBENCH_N; i++)
		mm_wait(mm, &h->word2, 0, 1000);
	wbench_report("mm_wait, word changed (no sleep)", instret() - t, WBENCH_N);
	t = instret();
	for (unsigned i = 0; i < WBENCH_N; i++)
		mm_wake(mm, &h->word2, 1);
	wbench_report("mm_wake, nobody asleep", instret() - t, WBENCH_N);
	t = instret();
	for (unsigned i = 0; i < WBENCH_N; i++) {
		*seq = *seq + 1;                 /* odd: the peer's turn */
		mm_wake(mm, seq, 1);
		while ((v = *seq) & 1)
			if (mm_wait(mm, seq, v, 1000000) == E_TIMEOUT)
				return 240;
	}
	t = instret() - t;
	printf("bench: %-36s %6lu.%02lu instructions per hand-off\n",
	       "mm_wake+mm_wait hand-off, one hart", (unsigned long)(t / (2 * WBENCH_N)),
	       (unsigned long)(t % (2 * WBENCH_N) * 100 / (2 * WBENCH_N)));
	return 0;
}

/* Sleep on *w while it holds 0: up to `wait_scale` waits of the longest
 * timeout (a wait that timed out is asked again, the word unchanged). */
static long sleep_on(mm_t *mm, volatile uint32_t *w)
{
	long rc = E_TIMEOUT;

	for (unsigned i = 0; i < wait_scale && rc == E_TIMEOUT; i++)
		rc = mm_wait(mm, w, 0, MM_WAIT_MAX_US);
	return rc;
}

static int wait_role(unsigned long param)
{
	unsigned kind = (unsigned)(param & 0xff);
	unsigned count = (unsigned)(param >> 8) & 0xffffff;
	mm_t *mm = mm_create(WAIT_AREA, sizeof(struct wait_hdr), 256);
	struct wait_hdr *h;
	uint64_t t;
	int rc;

	wait_scale = (unsigned)(param >> WAIT_SCALE_SHIFT) ? (unsigned)(param >> WAIT_SCALE_SHIFT) : 1;
	if (!mm)
		return 140;
	h = mm_static(mm);
	switch (kind) {
	case WAITK_SLEEP:
	case WAITK_VICTIM:
		__atomic_fetch_add(&h->arrived, 1, __ATOMIC_RELAXED);
		return status_of(160, sleep_on(mm, &h->word));
	case WAITK_BYSTANDER:
		return status_of(160, sleep_on(mm, &h->word2));
	case WAITK_WAKER:
		return wake_until(mm, &h->word, count, 1);
	case WAITK_MANY:
		return wake_until(mm, &h->word, count, 3);
	case WAITK_AFTER:
		/* count: the victim's id; once it is gone its entry must be too */
		for (t = peers_deadline(); usys_call(SYS_MM_ALIVE, count, 0, 0, 0);)
			if (usys_time_us() > t)
				return 220;
			else
				usys_yield();
		if (mm_wake(mm, &h->word, 64) != 0)
			return 221;
		return wake_until(mm, &h->word2, 1, 64);
	case WAITK_TIMEOUT:
		t = usys_time_us();
		rc = mm_wait(mm, &h->word, 0, WAIT_TIMEOUT_US);
		t = usys_time_us() - t;
		if (rc != E_TIMEOUT)
			return status_of(160, rc);
		return t >= WAIT_TIMEOUT_US ? 0 : 170;
	case WAITK_MISMATCH:
		h->word2 = 7;
		return mm_wait(mm, &h->word2, 3, MM_WAIT_MAX_US) == E_BUSY ? 0 : 171;
	case WAITK_BAD:
		return wait_bad(mm, h);
	case WAITK_HOLDER:
		if (mm_lock(mm, MM_LOCK_RW) < 0)
			return 230;
		h->flipping = 1;
		mm_wake(mm, &h->flipping, 1);
		for (t = usys_time_us() + count * 1000ull; usys_time_us() < t;)
			usys_yield();
		mm_unlock(mm);
		return 0;
	case WAITK_LOCKER:
		/* asleep until the holder has it (a bound: 10 waits of 1 s) */
		for (int i = 0; !h->flipping; i++)
			if (i == 10 || mm_wait(mm, &h->flipping, 0, 1000000) == E_DENIED)
				return 231;
		rc = mm_lock(mm, MM_LOCK_RW);
		if (rc < 0)
			return status_of(160, rc);
		mm_unlock(mm);
		return 0;
	case WAITK_BENCH:
	case WAITK_BENCH_PEER:
		return wait_bench(mm, h, kind == WAITK_BENCH_PEER);
	case WAITK_SLEEPLOOP:
		for (;;)
			if (mm_wait(mm, &h->word, h->word, 100000) == E_DENIED)
				return 250;
	case WAITK_FLIPPER:
		return flipper(mm, h, count & 0xff, count >> 8);
	case WAITK_FLIPPED:
		__atomic_fetch_add(&h->arrived, 1, __ATOMIC_RELAXED);
		return wait_flipped(mm, h, count);
	}
	return 141;
}

int stress_role(unsigned long param);   /* user/stress_role.c */

int main_arg(unsigned long arg)
{
	switch (ROLE_OF(arg)) {
	case ROLE_PRODUCER: return producer(ROLE_PARAM(arg));
	case ROLE_CONSUMER: return consumer(ROLE_PARAM(arg));
	case ROLE_BREACH:   return breach(ROLE_PARAM(arg));
	case ROLE_HAMMER:   return hammer(ROLE_PARAM(arg));
	case ROLE_LOCKER:   return locker_dies();
	case ROLE_WAITER:   return waiter();
	case ROLE_BENCH:    return bench(ROLE_PARAM(arg));
	case ROLE_SHM_HOSTILE: return shm_hostile(ROLE_PARAM(arg));
	case ROLE_SHM_WAITER:  return shm_waiter();
	case ROLE_FORGER:   return forger(ROLE_PARAM(arg));
	case ROLE_SPINNER:  return spinner(ROLE_PARAM(arg));
	case ROLE_FLOOD:    return flood(ROLE_PARAM(arg));
	case ROLE_CONLAT:   return console_latency(ROLE_PARAM(arg));
	case ROLE_SYSLOOP:  return sysloop();
	case ROLE_HEAPWRITE: return heap_write(ROLE_PARAM(arg));
	case ROLE_WAIT:     return wait_role(ROLE_PARAM(arg));
	case ROLE_STRESS:   return stress_role(ROLE_PARAM(arg));
	case ROLE_HELLO:
		printf("hello from partition %ld on hart %ld\n", usys_partid(), usys_hartid());
		return (int)ROLE_PARAM(arg);
	}
	return 98;
}
