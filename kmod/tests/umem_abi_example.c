// SPDX-License-Identifier: GPL-2.0
/*
 * umem_abi_example.c - a /dev/umem program written only against
 * docs/abi.md: it knows the header and the behaviour that page states, and
 * nothing of the driver.  Built like every test here; it passing on both
 * guest kernels is the acceptance check "a program written only against
 * abi.md passes".
 *
 * Case 1 is abi.md's worked example, word for word: an 8-page area; the
 * server pushes page 0 filled with 1 before any touch, then serves
 * requests in order with fill values 2, 3, ...; a client touching pages
 * 7,1,6,2,0,5,3,4 reads 1 from page 0 and the value the server wrote for
 * every other page, and after the server punches all served pages out of
 * the memory file the client still reads the same values.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <linux/falloc.h>
#include <linux/umem.h>

#include "ktest.h"

#define NPAGES 8

static long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

static void xread(int fd, void *buf, size_t len)
{
	ASSERT_EQ(read(fd, buf, len), (ssize_t)len);
}

static void xwrite(int fd, const void *buf, size_t len)
{
	ASSERT_EQ(write(fd, buf, len), (ssize_t)len);
}

/*
 * The server: a separate process with the umem fd and the memory file.
 * It reports each served (offset, value) to the client's checker over
 * @report, and punches everything out when told to over @cmd.
 */
static void server(int ufd, int sfd, int ready, int report, int cmd)
{
	long pg = page_size();
	unsigned char *mem;
	uint64_t off, vals[NPAGES] = { 0 };
	int served = 0, value = 2;
	char c;

	ASSERT_OK(ftruncate(sfd, NPAGES * pg));
	mem = mmap(NULL, NPAGES * pg, PROT_READ | PROT_WRITE, MAP_SHARED,
		   sfd, 0);
	ASSERT_TRUE(mem != MAP_FAILED);

	/* Push page 0, filled with 1, before any touch. */
	memset(mem, 1, pg);
	off = 0;
	xwrite(ufd, &off, sizeof(off));
	vals[0] = 1;
	xwrite(ready, "r", 1);

	/* Serve requests in order with 2, 3, ...: 7 pages are left. */
	while (served < NPAGES - 1) {
		xread(ufd, &off, sizeof(off));	/* blocking read */
		ASSERT_LT(off, NPAGES);
		ASSERT_EQ(vals[off], 0);	/* never reported twice */
		memset(mem + off * pg, value, pg);
		vals[off] = value++;
		xwrite(ufd, &off, sizeof(off));
		served++;
	}
	xwrite(report, vals, sizeof(vals));

	/* Punch every served page out of the memory file. */
	xread(cmd, &c, 1);
	ASSERT_OK(fallocate(sfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			    0, NPAGES * pg));
	ASSERT_EQ(mem[0], 0);
	ASSERT_EQ(mem[7 * pg], 0);
	xwrite(ready, "p", 1);
	_exit(0);
}

TEST(worked_example)
{
	static const int touch[NPAGES] = { 7, 1, 6, 2, 0, 5, 3, 4 };
	struct umem_init init = { .size = NPAGES * page_size() };
	int ufd, ready[2], report[2], cmd[2], status;
	uint64_t vals[NPAGES];
	long pg = page_size();
	unsigned char seen[NPAGES];
	volatile unsigned char *area;
	pid_t srv;
	char c;

	ufd = open("/dev/umem", O_RDWR);
	ASSERT_OK(ufd);
	ASSERT_OK(ioctl(ufd, UMEM_INIT, &init));
	ASSERT_EQ(init.size, (uint64_t)NPAGES * pg);
	ASSERT_OK(pipe(ready));
	ASSERT_OK(pipe(report));
	ASSERT_OK(pipe(cmd));

	srv = fork();
	ASSERT_OK(srv);
	if (srv == 0)
		server(ufd, init.shmem_fd, ready[1], report[1], cmd[0]);

	/* The client: map, close the umem fd, wait for the push. */
	area = mmap(NULL, NPAGES * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		    ufd, 0);
	ASSERT_TRUE(area != MAP_FAILED);
	ASSERT_OK(close(ufd));
	ASSERT_OK(close(init.shmem_fd));
	xread(ready[0], &c, 1);
	ASSERT_EQ(c, 'r');

	for (int i = 0; i < NPAGES; i++) {
		int p = touch[i];

		seen[p] = area[p * pg];
		/* the whole page holds the value */
		for (long b = 0; b < pg; b++)
			ASSERT_EQ(area[p * pg + b], seen[p]);
	}
	xread(report[0], vals, sizeof(vals));
	ASSERT_EQ(seen[0], 1);
	/* requests come in touch order: 7,1,6,2,5,3,4 get 2..8 */
	for (int i = 0, v = 2; i < NPAGES; i++) {
		if (touch[i] == 0)
			continue;
		ASSERT_EQ(vals[touch[i]], v);
		ASSERT_EQ(seen[touch[i]], v);
		v++;
	}

	xwrite(cmd[1], "x", 1);
	xread(ready[0], &c, 1);
	ASSERT_EQ(c, 'p');
	for (int p = 0; p < NPAGES; p++)
		for (long b = 0; b < pg; b++)
			ASSERT_EQ(area[p * pg + b], seen[p]);
	ASSERT_EQ(waitpid(srv, &status, 0), srv);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(stated_errnos)
{
	struct umem_init init = { .size = 0 };
	long pg = page_size();
	int fd = open("/dev/umem", O_RDWR);
	uint64_t off;
	void *p;

	ASSERT_OK(fd);
	/* mmap before INIT is ENXIO */
	p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_TRUE(p == MAP_FAILED);
	ASSERT_EQ(errno, ENXIO);
	ASSERT_ERRNO(ioctl(fd, UMEM_INIT, &init), EINVAL);	/* size 0 */
	init.size = 2 * pg - 1;
	ASSERT_OK(ioctl(fd, UMEM_INIT, &init));
	ASSERT_EQ(init.size, (uint64_t)2 * pg);		/* rounded up */
	ASSERT_GE(init.shmem_fd, 0);
	ASSERT_ERRNO(ioctl(fd, UMEM_INIT, &init), EBUSY);	/* second */
	/* past the end */
	p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_TRUE(p == MAP_FAILED);
	ASSERT_EQ(errno, EINVAL);
	p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	/* only one mapping */
	ASSERT_TRUE(mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0)
		    == MAP_FAILED);
	ASSERT_EQ(errno, EBUSY);
	ASSERT_ERRNO(read(fd, &off, 4), EINVAL);		/* < 8 bytes */
	ASSERT_OK(fcntl(fd, F_SETFL, O_NONBLOCK));
	ASSERT_ERRNO(read(fd, &off, 8), EAGAIN);
	off = 2;
	ASSERT_ERRNO(write(fd, &off, 8), EINVAL);		/* past end */
	/* may return ENOSYS */
	errno = 0;
	if (ioctl(fd, UMEM_MAKE_VMA_ANONYMOUS) < 0)
		ASSERT_EQ(errno, ENOSYS);
}

TEST(poll_report_once_fork_not_inherited)
{
	struct umem_init init = { .size = 4 * page_size() };
	long pg = page_size();
	int fd = open("/dev/umem", O_RDWR), status[3];
	struct pollfd pfd = { .events = POLLIN };
	unsigned char *mem;
	uint64_t off;
	pid_t kid;

	ASSERT_OK(ioctl(fd, UMEM_INIT, &init));
	ASSERT_OK(ftruncate(init.shmem_fd, 4 * pg));
	mem = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED,
		   init.shmem_fd, 0);
	ASSERT_TRUE(mem != MAP_FAILED);
	kid = fork();
	ASSERT_OK(kid);
	if (kid == 0) {
		/* The client: maps, forks (the child must not see the area). */
		volatile unsigned char *a = mmap(NULL, 4 * pg, PROT_READ,
						 MAP_PRIVATE, fd, 0);
		pid_t k1, k2;

		if (a == MAP_FAILED)
			_exit(10);
		k1 = fork();	/* not inherited: k1 gets SIGSEGV */
		if (k1 == 0)
			_exit(a[3 * pg]);
		waitpid(k1, &status[0], 0);
		if (!WIFSIGNALED(status[0]) || WTERMSIG(status[0]) != SIGSEGV)
			_exit(11);
		k2 = fork();
		if (k2 == 0)
			_exit(12);
		waitpid(k2, NULL, 0);
		_exit(a[3 * pg] == 0x33 ? 0 : 13);
	}
	pfd.fd = fd;
	ASSERT_EQ(poll(&pfd, 1, 30000), 1);
	ASSERT_TRUE(pfd.revents & POLLIN);
	ASSERT_EQ(read(fd, &off, 8), 8);
	ASSERT_EQ(off, 3);
	/* reported once: nothing else is pending */
	ASSERT_EQ(poll(&pfd, 1, 200), 0);
	memset(mem + 3 * pg, 0x33, pg);
	ASSERT_EQ(write(fd, &off, 8), 8);
	ASSERT_EQ(waitpid(kid, &status[1], 0), kid);
	ASSERT_TRUE(WIFEXITED(status[1]));
	ASSERT_EQ(WEXITSTATUS(status[1]), 0);
}

KTEST_MAIN()
