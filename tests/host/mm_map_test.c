/* mm_map_test.c - one mm area mapped at two addresses of one process
 * (memfd + two mappings, each reserving max-size room with PROT_NONE and
 * mapping more with MAP_FIXED on growth), a producer and a consumer on the
 * two mappings, growth seen through ensure_mapped, a dead child process
 * holding the lock, and threads on both mappings under the lock. */
#define _GNU_SOURCE
#include "ktest.h"
#include "mm.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The "kernel": one named shared object. */
struct world {
	const char *name;
	int fd;
	int attached;
	pthread_mutex_t mu;
};

/* One attacher's mapping of it. */
struct mapping {
	struct world *w;
	uint8_t *base;
	size_t room, mapped;
};

static int map_upto(struct mapping *m, size_t size, size_t *mapped)
{
	struct stat sb;

	pthread_mutex_lock(&m->w->mu);
	if (fstat(m->w->fd, &sb) || (size_t)sb.st_size < size || size > m->room ||
	    m->room % 4096) {
		pthread_mutex_unlock(&m->w->mu);
		return E_RANGE;
	}
	size = (size + 4095) & ~(size_t)4095;
	if (size > m->mapped) {
		/* map only the new part: pages in use stay as they are */
		if (mmap(m->base + m->mapped, size - m->mapped,
			 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 m->w->fd, (off_t)m->mapped) == MAP_FAILED) {
			pthread_mutex_unlock(&m->w->mu);
			return E_NOMEM;
		}
		m->mapped = size;
	}
	*mapped = m->mapped;
	pthread_mutex_unlock(&m->w->mu);
	return 0;
}

static int e_attach(void *ctx, const char *name, size_t initial, size_t max,
		    void **base, size_t *mapped, bool *created)
{
	struct mapping *m = ctx;
	struct world *w = m->w;
	struct stat sb;

	if (strcmp(name, w->name))
		return E_NOENT;
	*created = w->fd < 0;
	if (*created) {
		w->fd = memfd_create(name, 0);
		if (w->fd < 0 || ftruncate(w->fd, (off_t)initial))
			return E_NOMEM;
	}
	if (fstat(w->fd, &sb))
		return E_FAULT;
	m->room = max;
	m->base = mmap(NULL, max, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->base == MAP_FAILED)
		return E_NOMEM;
	m->mapped = 0;
	if (map_upto(m, (size_t)sb.st_size, mapped))
		return E_NOMEM;
	w->attached++;
	*base = m->base;
	return 0;
}

static int e_grow(void *ctx, void *base, size_t new_size, size_t *mapped)
{
	struct mapping *m = ctx;
	struct stat sb;

	if (new_size > m->room || fstat(m->w->fd, &sb))
		return E_NOMEM;
	if ((size_t)sb.st_size < new_size && ftruncate(m->w->fd, (off_t)new_size))
		return E_NOMEM;
	return map_upto(m, new_size, mapped);
}

static int e_ensure(void *ctx, void *base, size_t size, size_t *mapped)
{
	return map_upto(ctx, size, mapped);
}

static int e_detach(void *ctx, void *base, size_t mapped, bool last)
{
	struct mapping *m = ctx;

	munmap(m->base, m->room);
	if (--m->w->attached == 0) {     /* the env's own count decides */
		close(m->w->fd);
		m->w->fd = -1;
	}
	return 0;
}

static void e_relax(void)
{
	sched_yield();
}

static struct mm_env env_for(struct mapping *m, uint32_t id)
{
	struct mm_env e = {
		.attach = e_attach, .grow = e_grow, .ensure_mapped = e_ensure,
		.detach = e_detach, .relax = e_relax, .self_id = id, .ctx = m,
	};
	return e;
}

struct shared {
	struct mm_list head;
	uint64_t counter;
	uint32_t live;
	mm_ptr_t chain;               /* a singly linked chain by offsets */
};

struct link {
	mm_ptr_t next;
	uint32_t v;
	uint8_t fill[200];
};

KTEST(mm_map, two_addresses)
{
	struct world w = { "two", -1, 0, PTHREAD_MUTEX_INITIALIZER };
	struct mapping ma = { .w = &w }, mb = { .w = &w };
	struct mm_env ea = env_for(&ma, 1), eb = env_for(&mb, 2);
	mm_t *a, *b;
	struct shared *sa, *sb;
	const unsigned N = 2000;
	unsigned k;

	a = mm_create_env(&ea, "two", sizeof(struct shared), 4096, 8 << 20);
	ASSERT(a);
	b = mm_create_env(&eb, "two", sizeof(struct shared), 4096, 8 << 20);
	ASSERT(b);
	EXPECT(ma.base != mb.base);
	sa = mm_static(a);
	sb = mm_static(b);
	EXPECT_EQ(mm_ptr(a, sa), mm_ptr(b, sb));
	/* producer on mapping A: a chain of N links, newest first */
	ASSERT_EQ(mm_lock(a, MM_LOCK_RW), 0);
	for (k = 0; k < N; k++) {
		mm_ptr_t p = mm_alloc(a, sizeof(struct link));
		struct link *l = mm_addr(a, p);

		ASSERT(l);
		l->v = k;
		memset(l->fill, (int)k, sizeof(l->fill));
		l->next = sa->chain;
		sa->chain = p;
	}
	EXPECT_EQ(mm_unlock(a), 0);
	EXPECT(ma.mapped > 4096);
	/* B has not seen the growth yet */
	EXPECT(mm_addr(b, sb->chain) == NULL);
	EXPECT_LT(mb.mapped, ma.mapped);
	/* consumer on mapping B */
	ASSERT_EQ(mm_lock(b, MM_LOCK_RD), 0);
	EXPECT_EQ(mb.mapped, ma.mapped);
	k = N;
	for (mm_ptr_t p = sb->chain; p; ) {
		struct link *l = mm_addr_n(b, p, sizeof(*l));

		ASSERT(l && k > 0);
		k--;
		EXPECT_EQ(l->v, k);
		EXPECT_EQ(l->fill[199], (uint8_t)k);
		EXPECT((uint8_t *)l != (uint8_t *)mm_addr(a, p));
		p = l->next;
	}
	EXPECT_EQ(k, 0);
	EXPECT_EQ(mm_unlock(b), 0);
	EXPECT_EQ(mm_check(b), 0);
	EXPECT_EQ(mm_detach(a), 0);
	EXPECT_EQ(w.attached, 1);
	EXPECT_EQ(mm_detach(b), 0);
	EXPECT_EQ(w.fd, -1);
}

KTEST(mm_map, dead_process_holds_lock)
{
	struct world w = { "dead", -1, 0, PTHREAD_MUTEX_INITIALIZER };
	struct mapping ma = { .w = &w };
	struct mm_env ea = env_for(&ma, 1);
	mm_t *a;
	pid_t pid;
	int status = -1;

	a = mm_create_env(&ea, "dead", 64, 4096, 1 << 20);
	ASSERT(a);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		/* the child attaches as partition 42 on a second mapping of
		 * the same memfd, takes the lock and dies with it */
		struct mapping mc = { .w = &w };
		struct mm_env ec = env_for(&mc, 42);
		mm_t *c = mm_create_env(&ec, "dead", 64, 4096, 1 << 20);

		if (!c || mm_lock(c, MM_LOCK_RW) || !mm_alloc(c, 100000))
			_exit(1);
		_exit(0);
	}
	ASSERT(waitpid(pid, &status, 0) == pid);
	EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the kernel's part: the child is gone; release what it held */
	EXPECT_EQ(mm_area_owner_died(ma.base, ma.mapped, 42), 1);
	EXPECT_EQ(mm_lock(a, MM_LOCK_RW), MM_LOCK_OWNER_DIED);
	EXPECT_EQ(mm_check(a), 0);           /* the child grew the area: seen */
	EXPECT_GE(ma.mapped, 100000);
	EXPECT_EQ(mm_unlock(a), 0);
	EXPECT_EQ(mm_detach(a), 0);
}

/* ---- threads on both mappings ------------------------------------------- */

struct tstate {
	struct mapping *m[2];
	struct mm_env env[2];
	unsigned iters;
	int errors;
};

struct node {
	struct mm_list link;
	uint32_t owner, seq;
	uint64_t pat[6];
};

static uint64_t pat(uint32_t owner, uint32_t seq, unsigned k)
{
	return ((uint64_t)owner << 40) ^ ((uint64_t)seq << 8) ^ k;
}

static int worker_step(mm_t *h, unsigned i, unsigned it)
{
	struct shared *sh = mm_static(h);
	struct mm_list *pos, *nx;
	int bad = 0;

	if (mm_lock(h, it % 3 == 2 ? MM_LOCK_RD : MM_LOCK_RW) < 0)
		return 1;
	if (it % 3 == 2) {
		unsigned n = 0;

		mm_list_for_each(h, pos, &sh->head) {
			struct node *o = (struct node *)pos;
			for (unsigned k = 0; k < 6; k++)
				bad += o->pat[k] != pat(o->owner, o->seq, k);
			n++;
		}
		bad += n != sh->live;
		mm_unlock(h);
		return bad;
	}
	sh->counter++;
	struct node *o = mm_addr(h, mm_alloc(h, sizeof(*o) + (it % 5) * 700));
	if (!o) {
		mm_unlock(h);
		return 1;
	}
	o->owner = i;
	o->seq = it;
	for (unsigned k = 0; k < 6; k++)
		o->pat[k] = pat(i, it, k);
	bad += mm_list_add_tail(h, &sh->head, &o->link) != 0;
	sh->live++;
	if (sh->live > 64) {
		mm_list_for_each_safe(h, pos, nx, &sh->head) {
			bad += mm_list_del(h, pos) != 0;
			bad += mm_free(h, mm_ptr(h, pos)) != 0;
			sh->live--;
			break;
		}
	}
	mm_unlock(h);
	return bad;
}

static void worker(unsigned i, void *arg)
{
	struct tstate *s = arg;
	struct mapping *m = s->m[i % 2];
	mm_t h;
	int bad = 0;
	size_t mapped;

	pthread_mutex_lock(&m->w->mu);
	mapped = m->mapped;
	pthread_mutex_unlock(&m->w->mu);
	if (mm_attach_base(&h, m->base, mapped, m->room, &s->env[i % 2])) {
		__atomic_fetch_add(&s->errors, 1, __ATOMIC_RELAXED);
		return;
	}
	for (unsigned it = 0; it < s->iters; it++)
		bad += worker_step(&h, i, it);
	/* mm_detach would unmap the shared mapping: release only the slot
	 * by detaching with the hooks cleared */
	h.env.detach = NULL;
	bad += mm_detach(&h) != 0;
	__atomic_fetch_add(&s->errors, bad, __ATOMIC_RELAXED);
}

KTEST(mm_map, threads_on_two_mappings)
{
	struct world w = { "thr", -1, 0, PTHREAD_MUTEX_INITIALIZER };
	struct mapping ma = { .w = &w }, mb = { .w = &w };
	struct mm_env ea = env_for(&ma, 1), eb = env_for(&mb, 2);
	static struct tstate s;
	unsigned n = ktest_ncpus() < 2 ? 2 : ktest_ncpus();
	struct mm_stats st;
	mm_t *a, *b;

	a = mm_create_env(&ea, "thr", sizeof(struct shared), 4096, 16 << 20);
	ASSERT(a);
	b = mm_create_env(&eb, "thr", sizeof(struct shared), 4096, 16 << 20);
	ASSERT(b);
	ASSERT_EQ(mm_lock(a, MM_LOCK_RW), 0);
	ASSERT_EQ(mm_list_init(a, &((struct shared *)mm_static(a))->head), 0);
	mm_unlock(a);
	memset(&s, 0, sizeof(s));
	s.m[0] = &ma;
	s.m[1] = &mb;
	s.env[0] = env_for(&ma, 10);
	s.env[1] = env_for(&mb, 20);
	s.iters = 5000 * ktest_stress_seconds();
	ktest_parallel(n, worker, &s);
	EXPECT_EQ(s.errors, 0);
	ASSERT_EQ(mm_lock(b, MM_LOCK_RD), 0);
	uint64_t per = 0;
	for (unsigned it = 0; it < s.iters; it++)
		per += it % 3 != 2;
	EXPECT_EQ(((struct shared *)mm_static(b))->counter, per * n);
	mm_unlock(b);
	EXPECT_EQ(mm_check(a), 0);
	EXPECT_EQ(mm_check(b), 0);
	EXPECT_EQ(mm_stats(b, &st), 0);
	EXPECT_GE(st.grows, 1);
	EXPECT_EQ(st.nattach, 2);
	printf("mm_map.threads: %u threads x %u iters, area %zu bytes, %llu grows\n",
	       n, s.iters, st.size, (unsigned long long)st.grows);
	EXPECT_EQ(mm_detach(a), 0);
	EXPECT_EQ(mm_detach(b), 0);
}
