/* stress_host.c - the stress engine on the host: threads as harts (so
 * ThreadSanitizer and AddressSanitizer see the same workloads), engine
 * memory from the C library, hot-plug as a thread that flushes and waits.
 *
 *   build/host/stress [harts=N] [option=value ...]   (docs/STRESS.md)
 *
 * Exit status 0 for "stress: SUCCESS", 1 for a failure, 2 for bad usage. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "env_host.h"
#include "stress.h"

#define HOST_HARTS 4            /* default when harts= is not given */

static uint64_t h_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct job {
	stress_work_fn fn;
	void *arg;
	unsigned i;
};

static void *thread_main(void *p)
{
	struct job *j = p;

	j->fn(j->i, j->arg);
	return NULL;
}

static void h_run(unsigned n, stress_work_fn fn, void *arg)
{
	pthread_t t[ENV_MAX_CPUS];
	struct job jobs[ENV_MAX_CPUS];

	for (unsigned i = 1; i < n; i++) {
		jobs[i] = (struct job){ fn, arg, i };
		if (pthread_create(&t[i], NULL, thread_main, &jobs[i])) {
			fprintf(stderr, "stress: cannot create thread %u\n", i);
			exit(2);
		}
	}
	fn(0, arg);
	for (unsigned i = 1; i < n; i++)
		pthread_join(t[i], NULL);
}

static void *h_mem(size_t size, uint64_t *pa)
{
	void *p = NULL;

	if (posix_memalign(&p, ENV_PAGE_SIZE, size))
		return NULL;
	memset(p, 0, size);
	*pa = (uint64_t)(uintptr_t)p;
	return p;
}

static void h_mem_free(void *va, size_t size)
{
	(void)size;
	free(va);
}

/* Hot-plug: a "stopped" thread waits until it is started again. */
static unsigned stopped[ENV_MAX_CPUS], wake[ENV_MAX_CPUS];

static void h_cpu_off(unsigned i)
{
	__atomic_store_n(&stopped[i], 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&wake[i], __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	__atomic_store_n(&wake[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&stopped[i], 0, __ATOMIC_RELEASE);
}

static bool h_cpu_stopped(unsigned i)
{
	return __atomic_load_n(&stopped[i], __ATOMIC_ACQUIRE);
}

static int h_cpu_on(unsigned i)
{
	__atomic_store_n(&wake[i], 1, __ATOMIC_RELEASE);
	return 0;
}

static unsigned h_cpu_index(void)
{
	return env_cpu();
}

static void h_print(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void *h_obj(size_t size)
{
	return malloc(size);
}

static _Noreturn void h_abort(void)
{
	fflush(stdout);
	_exit(1);
}

int main(int argc, char **argv)
{
	struct stress_plat p = {
		.name = "host", .ncpus = HOST_HARTS, .now_ns = h_now_ns, .run = h_run,
		.mem = h_mem, .mem_free = h_mem_free, .obj_alloc = h_obj, .obj_free = free,
		.cpu_off = h_cpu_off, .cpu_stopped = h_cpu_stopped, .cpu_on = h_cpu_on,
		.cpu_index = h_cpu_index, .print = h_print, .abort_run = h_abort,
	};
	char opts[1024] = "";
	size_t len = 0;

	for (int i = 1; i < argc; i++) {
		size_t n = strlen(argv[i]);
		if (!strncmp(argv[i], "harts=", 6)) {
			unsigned h = (unsigned)strtoul(argv[i] + 6, NULL, 10);
			if (h < 1 || h > ENV_HOST_EXCLUSIVE) {
				fprintf(stderr, "stress: harts= must be 1..%u on the host\n",
					ENV_HOST_EXCLUSIVE);
				return 2;
			}
			p.ncpus = h;
		}
		if (len + n + 2 > sizeof(opts)) {
			fprintf(stderr, "stress: options too long\n");
			return 2;
		}
		memcpy(opts + len, argv[i], n);
		len += n;
		opts[len++] = ' ';
		opts[len] = 0;
	}
	return stress_run(&p, opts) ? 1 : 0;
}
