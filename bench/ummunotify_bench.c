// SPDX-License-Identifier: GPL-2.0
/*
 * ummunotify_bench: what one invalidation costs as the number of watched
 * ranges grows (1, 1,000, 100,000), printed side by side as ratios to 1,
 * and what the notifier adds at all: a worker with no context (0) times
 * madvise() alone, so "1 / 0" is the driver's share of an invalidation.
 *
 * The timed operation is madvise(MADV_DONTNEED) of one page inside a
 * registered range: the kernel calls the driver's invalidate_range_start,
 * which walks the interval tree for the ranges it hits (exactly one here)
 * and merges into the queued report.  The other ranges are registered
 * elsewhere in the address space, so the tree is as deep as N makes it.
 * A variant also reads the report after each invalidation.
 *
 * Each N lives in its own worker process (own mm, own context).  The
 * workers take turns in chunks of OPS operations, so that load drift on
 * the (emulated, shared) machine hits every N alike.  A run is ROUNDS
 * turns; its figure per N is the median chunk.  The result is the median
 * over RUNS runs of the per-run figures and ratios, and the spread
 * (min..max) of the per-run ratios.
 *
 *   gcc -static -O2 -Wall -Wextra -I kmod/include/uapi \
 *       -o ummunotify_bench bench/ummunotify_bench.c
 *   ummunotify_bench [RUNS [ROUNDS [OPS]]]   (default 5 100 2000)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/ummunotify.h>

#define NSIZES 4
/* 0: no context at all; ratios are to REF, one watched range */
static const int sizes[NSIZES] = { 0, 1, 1000, 100000 };
#define REF 1

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	double *s = malloc(n * sizeof(*s));
	double m;

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

static void minmax(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = v[0];
	for (int i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

static void reg(int fd, uint64_t start, uint64_t end, uint64_t cookie)
{
	struct ummunotify_register_ioctl r = {
		.start = start, .end = end, .user_cookie = cookie,
	};

	if (ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r))
		die("UMMUNOTIFY_REGISTER_REGION");
}

/*
 * Open a context watching the target page plus n - 1 other one-page
 * ranges in a reserved, never-touched area (keys spread on both sides of
 * the target in the tree).
 */
static int setup(int n, char *target, char *area, long pg)
{
	int fd;

	if (!n)
		return -1;
	fd = open("/dev/ummunotify", O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		die("open /dev/ummunotify");
	reg(fd, (uintptr_t)target, (uintptr_t)target + pg, 0);
	for (int i = 1; i < n; i++) {
		/* alternate below and above the target's address */
		char *a = area + (size_t)(i % 2 ? i / 2 : sizes[NSIZES - 1] -
					   i / 2) * pg;

		reg(fd, (uintptr_t)a, (uintptr_t)a + pg, i);
	}
	return fd;
}

/* ns per invalidation; with_read also reads the report back each time */
static double chunk(int fd, char *target, long pg, long ops, int with_read)
{
	struct ummunotify_event ev[4];
	double t0, t1;

	t0 = now_ns();
	for (long i = 0; i < ops; i++) {
		if (madvise(target, pg, MADV_DONTNEED))
			die("madvise");
		if (with_read && fd >= 0 && read(fd, ev, sizeof(ev)) <= 0)
			die("read");
	}
	t1 = now_ns();
	/* leave nothing queued between chunks */
	while (fd >= 0 && read(fd, ev, sizeof(ev)) > 0)
		;
	return (t1 - t0) / ops;
}

/*
 * One worker process per size: its own mm, its own context with n ranges
 * (contexts on one mm would all be called on every invalidation).  It runs
 * one chunk per request and answers with ns/op.
 */
struct worker {
	pid_t pid;
	int req, resp;
};

static struct worker spawn(int n, char *target, char *area, long pg)
{
	int rq[2], rs[2];
	struct worker w;

	if (pipe(rq) || pipe(rs))
		die("pipe");
	w.pid = fork();
	if (w.pid < 0)
		die("fork");
	if (w.pid == 0) {
		int fd = setup(n, target, area, pg);
		struct { long ops; int with_read; } q;
		double r;

		close(rq[1]);
		close(rs[0]);
		/* ready */
		r = 0;
		if (write(rs[1], &r, sizeof(r)) != sizeof(r))
			_exit(1);
		while (read(rq[0], &q, sizeof(q)) == sizeof(q)) {
			r = chunk(fd, target, pg, q.ops, q.with_read);
			if (write(rs[1], &r, sizeof(r)) != sizeof(r))
				_exit(1);
		}
		_exit(0);
	}
	close(rq[0]);
	close(rs[1]);
	w.req = rq[1];
	w.resp = rs[0];
	return w;
}

static double ask(struct worker *w, long ops, int with_read)
{
	struct { long ops; int with_read; } q = { ops, with_read };
	double r;

	if (write(w->req, &q, sizeof(q)) != sizeof(q) ||
	    read(w->resp, &r, sizeof(r)) != sizeof(r))
		die("worker");
	return r;
}

#define MAXROUNDS 1000
#define MAXRUNS 64

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 5;
	int rounds = argc > 2 ? atoi(argv[2]) : 100;
	long ops = argc > 3 ? atol(argv[3]) : 2000;
	long pg = sysconf(_SC_PAGESIZE);
	static double t[2][NSIZES][MAXROUNDS];
	static double ns[2][NSIZES][MAXRUNS], ratio[2][NSIZES][MAXRUNS];
	struct worker w[NSIZES];
	char *target, *area, *t2;
	cpu_set_t cpus;

	if (runs < 1 || runs > MAXRUNS || rounds < 1 || rounds > MAXROUNDS ||
	    ops < 1) {
		fprintf(stderr, "usage: %s [RUNS(1..%d) [ROUNDS(1..%d) [OPS]]]\n",
			argv[0], MAXRUNS, MAXROUNDS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* one CPU for everyone: the workers take turns on it */
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);

	area = mmap(NULL, (size_t)(sizes[NSIZES - 1] + 2) * pg, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED)
		die("mmap area");
	/* the target page sits in the middle of the watched address span */
	target = area + (size_t)(sizes[NSIZES - 1] / 2) * pg;
	t2 = mmap(target, pg, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (t2 != target)
		die("mmap target");

	for (int s = 0; s < NSIZES; s++) {
		double r;

		w[s] = spawn(sizes[s], target, area, pg);
		if (read(w[s].resp, &r, sizeof(r)) != sizeof(r))
			die("worker setup");
		/* warm up */
		ask(&w[s], ops, 0);
		ask(&w[s], ops, 1);
	}

	printf("# ummunotify_bench: %d runs x %d rounds x %ld ops per size, madvise(DONTNEED) of one watched page\n",
	       runs, rounds, ops);
	for (int r = 0; r < runs; r++) {
		/* the sizes take turns chunk by chunk: load drift hits all */
		for (int i = 0; i < rounds; i++)
			for (int v = 0; v < 2; v++)
				for (int s = 0; s < NSIZES; s++)
					t[v][s][i] = ask(&w[s], ops, v);
		for (int v = 0; v < 2; v++) {
			for (int s = 0; s < NSIZES; s++)
				ns[v][s][r] = median(t[v][s], rounds);
			for (int s = 0; s < NSIZES; s++)
				ratio[v][s][r] = ns[v][s][r] / ns[v][REF][r];
		}
		printf("# run %d: inval %.0f %.0f %.0f %.0f ns; inval+read %.0f %.0f %.0f %.0f ns (medians of %d chunks)\n",
		       r + 1, ns[0][0][r], ns[0][1][r], ns[0][2][r],
		       ns[0][3][r], ns[1][0][r], ns[1][1][r], ns[1][2][r],
		       ns[1][3][r], rounds);
	}
	/* later workers hold copies of earlier ones' pipes: no EOF, kill */
	for (int s = 0; s < NSIZES; s++) {
		kill(w[s].pid, SIGKILL);
		waitpid(w[s].pid, NULL, 0);
	}

	for (int v = 0; v < 2; v++) {
		printf("\n%s\n", v ? "invalidation + read of the report (0: no read)" :
		       "invalidation (report merged, not read)");
		printf("%-22s", "ranges registered");
		for (int s = 0; s < NSIZES; s++)
			printf("%18d", sizes[s]);
		printf("\n%-22s", "median ns/op");
		for (int s = 0; s < NSIZES; s++)
			printf("%18.0f", median(ns[v][s], runs));
		printf("\n%-22s", "median ratio to 1");
		for (int s = 0; s < NSIZES; s++)
			printf("%18.2f", median(ratio[v][s], runs));
		printf("\n%-22s", "ratio spread (runs)");
		for (int s = 0; s < NSIZES; s++) {
			double lo, hi;
			char buf[32];

			minmax(ratio[v][s], runs, &lo, &hi);
			snprintf(buf, sizeof(buf), "%.2f..%.2f", lo, hi);
			printf("%18s", buf);
		}
		printf("\n");
	}
	return 0;
}
