// SPDX-License-Identifier: GPL-2.0
/*
 * umem_bench: the post-copy fault round trip
 *	touch -> server read -> fill -> write -> resume
 * with /dev/umem against the same round trip with userfaultfd
 * (UFFDIO_API, UFFDIO_REGISTER MODE_MISSING, UFFDIO_COPY) on the same kernel,
 * printed side by side with the ratio umem / userfaultfd (< 1: umem faster).
 *
 * Both sides do the same work: a server thread blocks in read() on the
 * request fd, "receives" each requested page into a 4 KiB buffer (memset of
 * a byte), hands it to the kernel and resumes the faulter: pwrite() into the
 * memory file and one write() of all the offsets read for umem, one
 * UFFDIO_COPY per page for userfaultfd.  The "populated file" rows give the
 * umem server a MAP_SHARED|MAP_POPULATE mapping of the memory file that
 * pages are received straight into (as a server that allocated the
 * file up front, e.g. during pre-copy, would): then both sides allocate one
 * page and copy it once per fault; in the other rows umem also allocates
 * the memory file's page in the round trip (pwrite), which userfaultfd has
 * no equivalent of.  The userfaultfd side is the same in every row.  Faulting threads touch every page of their slice
 * of a fresh area once, in order, and check the byte; nothing is pushed
 * ahead, so every touch is a full round trip.  Result: wall time from the
 * start barrier to the last thread's end, divided by the number of pages
 * (with several threads, faults overlap: that is throughput, not latency).
 *
 * A "run" measures every configuration once for each mechanism, interleaved
 * (umem, uffd, umem, uffd, ...).  Printed: the median over RUNS runs of the
 * microseconds per fault, and of the per-run ratio, with its spread
 * (min..max): the guest is emulated (TCG) and noisy.
 *
 *   gcc -static -O2 -Wall -Wextra -pthread -I kmod/include/uapi \
 *       -o bench/out/umem_bench bench/umem_bench.c
 *   umem_bench [RUNS [PAGES]]      (default 7 runs, 2048 pages per area)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/umem.h>

#define PG		4096UL
#define MAX_THREADS	8
#define BATCH		64

enum mech { UMEM, UFFD };

struct cfg {
	const char *name;
	int threads;
	int write;		/* touch = store instead of load */
	int prefilled;		/* umem server writes into a populated file */
};

static const struct cfg cfgs[] = {
	{ "1 thread, read touch", 1, 0, 0 },
	{ "4 threads, read touch", 4, 0, 0 },
	{ "1 thread, write touch", 1, 1, 0 },
	{ "4 threads, write touch", 4, 1, 0 },
	{ "1 thread, read, populated file", 1, 0, 1 },
	{ "4 threads, read, populated file", 4, 0, 1 },
	{ "1 thread, write, populated file", 1, 1, 1 },
};
#define NCFG (int)(sizeof(cfgs) / sizeof(cfgs[0]))

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static unsigned char fill_of(uint64_t pgoff)
{
	return (unsigned char)(pgoff * 7 + 1);
}

struct ctx {
	enum mech mech;
	size_t pages;
	int threads, write, prefilled;
	unsigned char *area;
	unsigned char *shm;	/* umem: populated mapping of the file */
	unsigned char *src;	/* the server's receive buffer */
	/* umem */
	int ufd, sfd;
	/* userfaultfd */
	int uffd;
	pthread_barrier_t go;
	int bad;
};

static void *umem_server(void *arg)
{
	struct ctx *c = arg;
	uint64_t offs[BATCH];
	size_t served = 0;

	while (served < c->pages) {
		ssize_t n = read(c->ufd, offs, sizeof(offs));

		if (n <= 0)
			die("umem read");
		n /= 8;
		for (ssize_t i = 0; i < n; i++) {
			if (c->shm) {
				/* the page arrives right in the file */
				memset(c->shm + offs[i] * PG, fill_of(offs[i]),
				       PG);
				continue;
			}
			/* the page arrives in a buffer, goes to the file */
			memset(c->src, fill_of(offs[i]), PG);
			if (pwrite(c->sfd, c->src, PG, offs[i] * PG) != PG)
				die("pwrite");
		}
		if (write(c->ufd, offs, n * 8) != n * 8)
			die("umem write");
		served += n;
	}
	return NULL;
}

static void *uffd_server(void *arg)
{
	struct ctx *c = arg;
	struct uffd_msg msgs[BATCH];
	size_t served = 0;

	while (served < c->pages) {
		ssize_t n = read(c->uffd, msgs, sizeof(msgs));

		if (n <= 0)
			die("uffd read");
		n /= sizeof(msgs[0]);
		for (ssize_t i = 0; i < n; i++) {
			uint64_t addr = msgs[i].arg.pagefault.address & ~(PG - 1);
			uint64_t pgoff = (addr - (uintptr_t)c->area) / PG;
			struct uffdio_copy cp = {
				.dst = addr, .src = (uintptr_t)c->src,
				.len = PG, .mode = 0,
			};

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			memset(c->src, fill_of(pgoff), PG);
			if (ioctl(c->uffd, UFFDIO_COPY, &cp) && errno != EEXIST)
				die("UFFDIO_COPY");
			served++;
		}
	}
	return NULL;
}

struct faulter {
	struct ctx *c;
	size_t from, to;
};

static void *faulter(void *arg)
{
	struct faulter *f = arg;
	struct ctx *c = f->c;

	pthread_barrier_wait(&c->go);
	for (size_t p = f->from; p < f->to; p++) {
		volatile unsigned char *b = c->area + p * PG;

		if (c->write) {
			b[8] = 0;
			if (b[0] != fill_of(p))
				c->bad = 1;
		} else if (b[0] != fill_of(p)) {
			c->bad = 1;
		}
	}
	return NULL;
}

static void setup_umem(struct ctx *c)
{
	struct umem_init init = { .size = c->pages * PG };

	c->ufd = open("/dev/umem", O_RDWR);
	if (c->ufd < 0)
		die("/dev/umem");
	if (ioctl(c->ufd, UMEM_INIT, &init))
		die("UMEM_INIT");
	c->sfd = init.shmem_fd;
	if (ftruncate(c->sfd, c->pages * PG))
		die("ftruncate");
	c->area = mmap(NULL, c->pages * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE, c->ufd, 0);
	c->src = mmap(NULL, PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (c->area == MAP_FAILED || c->src == MAP_FAILED)
		die("mmap umem");
	if (c->prefilled) {
		c->shm = mmap(NULL, c->pages * PG, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_POPULATE, c->sfd, 0);
		if (c->shm == MAP_FAILED)
			die("mmap memory file");
	}
}

static void teardown_umem(struct ctx *c)
{
	munmap(c->area, c->pages * PG);
	munmap(c->src, PG);
	if (c->shm)
		munmap(c->shm, c->pages * PG);
	close(c->sfd);
	close(c->ufd);
}

static void setup_uffd(struct ctx *c)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };

	c->uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (c->uffd < 0)
		die("userfaultfd");
	if (ioctl(c->uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	c->area = mmap(NULL, c->pages * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c->src = mmap(NULL, PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (c->area == MAP_FAILED || c->src == MAP_FAILED)
		die("mmap uffd");
	reg.range.start = (uintptr_t)c->area;
	reg.range.len = c->pages * PG;
	if (ioctl(c->uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
}

static void teardown_uffd(struct ctx *c)
{
	munmap(c->area, c->pages * PG);
	munmap(c->src, PG);
	close(c->uffd);
}

/* One measurement: microseconds per fault. */
static double measure(enum mech mech, const struct cfg *cfg, size_t pages)
{
	struct faulter f[MAX_THREADS];
	pthread_t th[MAX_THREADS], srv;
	struct ctx c = {
		.mech = mech, .pages = pages, .threads = cfg->threads,
		.write = cfg->write, .prefilled = cfg->prefilled,
	};
	double t0, t1;

	if (mech == UMEM)
		setup_umem(&c);
	else
		setup_uffd(&c);
	pthread_barrier_init(&c.go, NULL, c.threads + 1);
	pthread_create(&srv, NULL, mech == UMEM ? umem_server : uffd_server,
		       &c);
	for (int i = 0; i < c.threads; i++) {
		f[i] = (struct faulter){ &c, pages * i / c.threads,
					 pages * (i + 1) / c.threads };
		pthread_create(&th[i], NULL, faulter, &f[i]);
	}
	pthread_barrier_wait(&c.go);
	t0 = now_us();
	for (int i = 0; i < c.threads; i++)
		pthread_join(th[i], NULL);
	t1 = now_us();
	pthread_join(srv, NULL);
	pthread_barrier_destroy(&c.go);
	if (c.bad) {
		fprintf(stderr, "%s: wrong page contents\n",
			mech == UMEM ? "umem" : "userfaultfd");
		exit(1);
	}
	if (mech == UMEM)
		teardown_umem(&c);
	else
		teardown_uffd(&c);
	return (t1 - t0) / pages;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 7;
	size_t pages = argc > 2 ? strtoul(argv[2], NULL, 0) : 2048;
	static double um[NCFG][64], uf[NCFG][64], ratio[NCFG][64];

	if (runs < 1 || runs > 64 || pages < MAX_THREADS)
		die("usage: umem_bench [RUNS (1..64) [PAGES (>= 8)]]");
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* warm-up: first faults of the binary, page tables, slabs */
	for (int k = 0; k < NCFG; k++) {
		measure(UMEM, &cfgs[k], pages / 4);
		measure(UFFD, &cfgs[k], pages / 4);
	}
	for (int r = 0; r < runs; r++) {
		for (int k = 0; k < NCFG; k++) {
			/* alternate which goes first, against drift */
			if (r & 1) {
				uf[k][r] = measure(UFFD, &cfgs[k], pages);
				um[k][r] = measure(UMEM, &cfgs[k], pages);
			} else {
				um[k][r] = measure(UMEM, &cfgs[k], pages);
				uf[k][r] = measure(UFFD, &cfgs[k], pages);
			}
			ratio[k][r] = um[k][r] / uf[k][r];
		}
	}

	printf("umem vs userfaultfd: fault round trip (touch -> read -> fill -> write -> resume)\n");
	printf("%d runs x %zu pages per area; us per fault, median (min..max); ratio = umem / userfaultfd\n\n",
	       runs, pages);
	printf("| configuration | umem us/fault | userfaultfd us/fault | ratio (spread) |\n");
	printf("| --- | ---: | ---: | ---: |\n");
	for (int k = 0; k < NCFG; k++) {
		double umd, ufd, rd;

		umd = median(um[k], runs);
		ufd = median(uf[k], runs);
		rd = median(ratio[k], runs);
		printf("| %s | %.1f (%.1f..%.1f) | %.1f (%.1f..%.1f) | %.2f (%.2f..%.2f) |\n",
		       cfgs[k].name, umd, um[k][0], um[k][runs - 1],
		       ufd, uf[k][0], uf[k][runs - 1],
		       rd, ratio[k][0], ratio[k][runs - 1]);
	}
	return 0;
}
