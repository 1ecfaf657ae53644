/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umem_util.h - helpers shared by the /dev/umem guest tests.
 */
#ifndef UMEM_UTIL_H
#define UMEM_UTIL_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include <linux/umem.h>

#include "ktest.h"

#define PG 4096UL

static inline double umem_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* open + UMEM_INIT; returns the umem fd, *shmem_fd the memory file. */
static inline int umem_create(uint64_t size, int *shmem_fd)
{
	struct umem_init init = { .size = size, .shmem_fd = -1 };
	int fd = open("/dev/umem", O_RDWR);

	ASSERT_OK(fd);
	ASSERT_OK(ioctl(fd, UMEM_INIT, &init));
	ASSERT_EQ(init.size, (size + PG - 1) / PG * PG);
	ASSERT_GE(init.shmem_fd, 0);
	*shmem_fd = init.shmem_fd;
	return fd;
}

static inline void *umem_map(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

/* The server's view of the memory file, sized and mapped shared. */
static inline unsigned char *umem_shmem_map(int shmem_fd, size_t len)
{
	void *p;

	ASSERT_OK(ftruncate(shmem_fd, len));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, shmem_fd, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

static inline void umem_fill(unsigned char *page, uint64_t pgoff, uint64_t tag)
{
	uint64_t *w = (uint64_t *)page;

	for (size_t i = 0; i < PG / 8; i++)
		w[i] = (pgoff << 40) ^ (tag << 20) ^ i;
}

/* 1 when every byte of @page is what umem_fill(pgoff, tag) wrote. */
static inline int umem_check(const volatile unsigned char *page,
			     uint64_t pgoff, uint64_t tag)
{
	const volatile uint64_t *w = (const volatile uint64_t *)page;

	for (size_t i = 0; i < PG / 8; i++)
		if (w[i] != ((pgoff << 40) ^ (tag << 20) ^ i))
			return 0;
	return 1;
}

/* An address that faults in the kernel's copy routines (EFAULT). */
static inline void *umem_bad_ptr(void)
{
	void *p = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

static inline void umem_serve1(int fd, uint64_t pgoff)
{
	ASSERT_EQ(write(fd, &pgoff, sizeof(pgoff)), (ssize_t)sizeof(pgoff));
}

/* Wait until @fd is readable, at most @ms milliseconds; 1 when it is. */
static inline int umem_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Read exactly one pending offset (blocking up to 30 s). */
static inline uint64_t umem_read1(int fd)
{
	uint64_t off;

	ASSERT_TRUE(umem_readable(fd, 30000));
	ASSERT_EQ(read(fd, &off, sizeof(off)), (ssize_t)sizeof(off));
	return off;
}

/* Nothing pending right now (non-blocking read says EAGAIN). */
static inline void umem_assert_nothing_pending(int fd)
{
	uint64_t off;
	int fl = fcntl(fd, F_GETFL);

	ASSERT_OK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
	ASSERT_ERRNO(read(fd, &off, sizeof(off)), EAGAIN);
	ASSERT_OK(fcntl(fd, F_SETFL, fl));
}

/* Thread state as /proc/<pid>/task/<tid>/stat shows it ('S', 'D', ...). */
static inline char umem_task_state(pid_t tid)
{
	char path[64], buf[512], *p;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		snprintf(path, sizeof(path), "/proc/%d/stat", tid),
		fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

/* A number the driver shows in /proc/self/fdinfo/<fd> ("umem-area:" ...). */
static inline uint64_t umem_fdinfo(int fd, const char *key)
{
	char path[64], buf[512], *p;
	int f, n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	ASSERT_OK(f);
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	ASSERT_GT(n, 0);
	buf[n] = 0;
	p = strstr(buf, key);
	ASSERT_TRUE(p != NULL);
	return strtoull(p + strlen(key), NULL, 10);
}

/* The area id the tracepoints carry. */
static inline uint64_t umem_area_id(int fd)
{
	return umem_fdinfo(fd, "umem-area:");
}

#endif /* UMEM_UTIL_H */
