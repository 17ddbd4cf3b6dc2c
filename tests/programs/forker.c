/* forker.c - fork while other threads allocate: each child allocates,
 * checks and frees (it would hang or crash on a lock held at the fork) and
 * exits 0; the parent counts the children that did. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { NT = 6, FORKS = 40 };
static volatile int stop;

static void *busy(void *arg)
{
	void *keep[64] = { 0 };
	unsigned i = 0;

	while (!stop) {
		unsigned k = i++ % 64;
		free(keep[k]);
		keep[k] = malloc(16 + (i * 37) % 5000);
	}
	for (unsigned k = 0; k < 64; k++)
		free(keep[k]);
	return arg;
}

static int child(void)
{
	for (unsigned i = 0; i < 2000; i++) {
		char *p = malloc(1 + i % 700);
		if (!p)
			return 1;
		memset(p, 'x', 1 + i % 700);
		free(p);
	}
	return 0;
}

int main(void)
{
	pthread_t th[NT];
	int ok = 0;

	for (unsigned i = 0; i < NT; i++)
		pthread_create(&th[i], NULL, busy, NULL);
	for (unsigned f = 0; f < FORKS; f++) {
		int st;
		pid_t pid = fork();
		if (pid == 0)
			_exit(child());
		if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
	}
	stop = 1;
	for (unsigned i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	printf("forker: %d of %d children ran\n", ok, FORKS);
	return 0;
}
