// SPDX-License-Identifier: GPL-2.0
/*
 * Guest tests of /dev/ummunotify: every behaviour and errno of abi.md,
 * the worked example, concurrency, mm exit before close, fork, SIGIO,
 * 100,000 ranges, the per-context cap, unload refusal and the tracepoints
 * (docs/tracepoints.md, section "ummunotify").
 *
 * Runs as root inside the guest with ummunotify.ko loaded.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>

#include <linux/umem.h>
#include <linux/ummunotify.h>
#include <linux/userfaultfd.h>

#include "ktest.h"

#define DEV "/dev/ummunotify"
#define EVSZ sizeof(struct ummunotify_event)
#define TRACEFS "/sys/kernel/tracing"
#define MAXREG_PARAM "/sys/module/ummunotify/parameters/max_regions"

/* The kernel's enum mmu_notifier_event, as the tracepoint reports it. */
enum { R_UNMAP, R_CLEAR, R_PROT_VMA, R_PROT_PAGE, R_SOFT_DIRTY };

static long pg(void)
{
	return sysconf(_SC_PAGESIZE);
}

static int un_open(void)
{
	int fd = open(DEV, O_RDONLY | O_CLOEXEC);

	ASSERT_TRUE(fd >= 0);
	return fd;
}

static int un_open_nb(void)
{
	int fd = open(DEV, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	ASSERT_TRUE(fd >= 0);
	return fd;
}

static int un_reg(int fd, uint64_t start, uint64_t end, uint64_t cookie)
{
	struct ummunotify_register_ioctl r = {
		.start = start, .end = end, .user_cookie = cookie,
	};

	return ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r);
}

static int un_unreg(int fd, uint64_t cookie)
{
	return ioctl(fd, UMMUNOTIFY_UNREGISTER_REGION, &cookie);
}

/* Anonymous private read-write pages, all populated. */
static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * pg(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 0x5a, n * pg());
	return p;
}

static volatile uint64_t *map_counter(int fd)
{
	void *p = mmap(NULL, sizeof(uint64_t), PROT_READ, MAP_SHARED, fd, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

/* Non-blocking read of up to max events; returns the count or -errno. */
static int read_evs(int fd, struct ummunotify_event *ev, int max)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t r;

	/* Never block: only read when something is there. */
	if (!(fcntl(fd, F_GETFL) & O_NONBLOCK) && poll(&pfd, 1, 0) == 0)
		return -EAGAIN;
	r = read(fd, ev, max * EVSZ);
	if (r < 0)
		return -errno;
	ASSERT_EQ(r % EVSZ, 0);
	return r / EVSZ;
}

static void expect_inval(const struct ummunotify_event *e, uint64_t cookie,
			 int hint, uint64_t hs, uint64_t he)
{
	ASSERT_EQ(e->type, UMMUNOTIFY_EVENT_TYPE_INVAL);
	ASSERT_EQ(e->user_cookie_counter, cookie);
	ASSERT_EQ(e->flags, hint ? UMMUNOTIFY_EVENT_FLAG_HINT : 0);
	ASSERT_EQ(e->hint_start, hs);
	ASSERT_EQ(e->hint_end, he);
}

static void expect_last(const struct ummunotify_event *e, uint64_t counter)
{
	ASSERT_EQ(e->type, UMMUNOTIFY_EVENT_TYPE_LAST);
	ASSERT_EQ(e->user_cookie_counter, counter);
}

static void expect_nothing(int fd)
{
	struct ummunotify_event ev[4];

	ASSERT_EQ(read_evs(fd, ev, 4), -EAGAIN);
}

/* An address that is never mapped, hidden from the compiler's checks. */
static void *volatile bad_ptr = (void *)8;

static uint64_t U(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* ---- open, node, features ---------------------------------------- */

TEST(node_is_world_readable_char_device)
{
	struct stat st;

	ASSERT_OK(stat(DEV, &st));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
	ASSERT_EQ(st.st_mode & 07777, 0444);
}

TEST(open_rdonly_ok)
{
	int fd = un_open();

	ASSERT_OK(close(fd));
}

TEST(open_wronly_einval)
{
	ASSERT_ERRNO(open(DEV, O_WRONLY), EINVAL);
}

TEST(open_rdwr_einval)
{
	ASSERT_ERRNO(open(DEV, O_RDWR), EINVAL);
}

TEST(open_as_other_user)
{
	pid_t pid = fork();
	int st;

	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		fd = open(DEV, O_RDONLY);
		if (fd < 0)
			_exit(3);
		/* and the context works for that user */
		if (un_reg(fd, 0x10000, 0x20000, 1))
			_exit(4);
		/* write access is still refused (by mode or by the driver) */
		if (open(DEV, O_RDWR) >= 0)
			_exit(5);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
}

TEST(exchange_features_first_returns_zero)
{
	int fd = un_open();
	uint32_t f = 0xffffffff;

	ASSERT_OK(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &f));
	ASSERT_EQ(f, 0);
}

TEST(exchange_features_twice_einval)
{
	int fd = un_open();
	uint32_t f = 0;

	ASSERT_OK(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &f));
	f = 1;
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &f), EINVAL);
	ASSERT_EQ(f, 1);
}

TEST(exchange_features_after_register_einval)
{
	int fd = un_open();
	uint32_t f = 0;

	ASSERT_OK(un_reg(fd, 0x10000, 0x20000, 1));
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &f), EINVAL);
}

TEST(exchange_features_after_failed_register_einval)
{
	int fd = un_open();
	uint32_t f = 0;

	ASSERT_ERRNO(un_reg(fd, 0x20000, 0x10000, 1), EINVAL);
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &f), EINVAL);
}

TEST(exchange_features_after_unregister_einval)
{
	int fd = un_open();
	uint32_t f = 0;

	ASSERT_ERRNO(un_unreg(fd, 9), EINVAL);
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &f), EINVAL);
}

TEST(exchange_features_after_read_einval)
{
	int fd = un_open_nb();
	struct ummunotify_event ev;
	uint32_t f = 0;

	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &f), EINVAL);
}

TEST(exchange_features_bad_pointer_efault)
{
	int fd = un_open();

	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, (void *)8),
		     EFAULT);
}

TEST(unknown_ioctl_enotty)
{
	int fd = un_open();
	uint64_t x = 0;

	ASSERT_ERRNO(ioctl(fd, _IOW('U', 9, uint64_t), &x), ENOTTY);
	ASSERT_ERRNO(ioctl(fd, _IOW('V', 2, struct ummunotify_register_ioctl),
			   &x), ENOTTY);
}

TEST(abi_sizes_and_numbers)
{
	ASSERT_EQ(sizeof(struct ummunotify_register_ioctl), 32);
	ASSERT_EQ(sizeof(struct ummunotify_event), 32);
	ASSERT_EQ(UMMUNOTIFY_EXCHANGE_FEATURES, _IOWR('U', 1, __u32));
	ASSERT_EQ(UMMUNOTIFY_REGISTER_REGION,
		  _IOW('U', 2, struct ummunotify_register_ioctl));
	ASSERT_EQ(UMMUNOTIFY_UNREGISTER_REGION, _IOW('U', 3, __u64));
	ASSERT_EQ(UMMUNOTIFY_EVENT_TYPE_INVAL, 0);
	ASSERT_EQ(UMMUNOTIFY_EVENT_TYPE_LAST, 1);
	ASSERT_EQ(UMMUNOTIFY_EVENT_FLAG_HINT, 1);
}

/* ---- register / unregister ---------------------------------------- */

TEST(register_rejects_empty_and_inverted)
{
	int fd = un_open();

	ASSERT_ERRNO(un_reg(fd, 0x10000, 0x10000, 1), EINVAL);
	ASSERT_ERRNO(un_reg(fd, 0x20000, 0x10000, 1), EINVAL);
	ASSERT_ERRNO(un_reg(fd, ~0ULL, 0, 1), EINVAL);
	/* nothing got registered: the cookie is still free */
	ASSERT_OK(un_reg(fd, 0x10000, 0x10001, 1));
}

TEST(register_rejects_flags_and_reserved)
{
	int fd = un_open();
	struct ummunotify_register_ioctl r = {
		.start = 0x10000, .end = 0x20000, .user_cookie = 1,
	};

	r.flags = 1;
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r), EINVAL);
	r.flags = 0x80000000;
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r), EINVAL);
	r.flags = 0;
	r.reserved = 1;
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r), EINVAL);
	r.reserved = 0;
	ASSERT_OK(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r));
}

TEST(register_bad_pointer_efault)
{
	int fd = un_open();

	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, NULL), EFAULT);
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, (void *)8), EFAULT);
}

TEST(register_duplicate_cookie_einval)
{
	int fd = un_open();

	ASSERT_OK(un_reg(fd, 0x10000, 0x20000, 42));
	ASSERT_ERRNO(un_reg(fd, 0x10000, 0x20000, 42), EINVAL);
	ASSERT_ERRNO(un_reg(fd, 0x50000, 0x60000, 42), EINVAL);
	ASSERT_OK(un_reg(fd, 0x10000, 0x20000, 43));
	/* per fd: another fd may use the same cookie */
	ASSERT_OK(un_reg(un_open(), 0x10000, 0x20000, 42));
	/* after unregistering, the cookie can be reused */
	ASSERT_OK(un_unreg(fd, 42));
	ASSERT_OK(un_reg(fd, 0x70000, 0x80000, 42));
}

TEST(register_extreme_cookies_and_addresses)
{
	int fd = un_open();

	ASSERT_OK(un_reg(fd, 0, 1, 0));
	ASSERT_OK(un_reg(fd, 0, ~0ULL, ~0ULL));
	ASSERT_OK(un_reg(fd, ~0ULL - 1, ~0ULL, 1ULL << 63));
	ASSERT_OK(un_unreg(fd, 0));
	ASSERT_OK(un_unreg(fd, ~0ULL));
	ASSERT_OK(un_unreg(fd, 1ULL << 63));
}

TEST(unregister_unknown_einval)
{
	int fd = un_open();

	ASSERT_ERRNO(un_unreg(fd, 7), EINVAL);
	ASSERT_OK(un_reg(fd, 0x10000, 0x20000, 7));
	ASSERT_OK(un_unreg(fd, 7));
	ASSERT_ERRNO(un_unreg(fd, 7), EINVAL);
}

TEST(unregister_bad_pointer_efault)
{
	int fd = un_open();

	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_UNREGISTER_REGION, NULL), EFAULT);
}

TEST(unregister_drops_queued_report)
{
	int fd = un_open_nb();
	char *p = map_pages(4);
	volatile uint64_t *cnt = map_counter(fd);
	struct ummunotify_event ev[4];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	ASSERT_OK(un_reg(fd, U(p), U(p + 2 * pg()), 1));
	ASSERT_OK(un_reg(fd, U(p + 2 * pg()), U(p + 4 * pg()), 2));
	ASSERT_OK(munmap(p, 4 * pg()));
	ASSERT_EQ(*cnt, 1);
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	ASSERT_OK(un_unreg(fd, 1));
	/* only cookie 2 is left */
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_inval(&ev[0], 2, 1, U(p + 2 * pg()), U(p + 4 * pg()));
	expect_last(&ev[1], 1);
	ASSERT_OK(un_unreg(fd, 2));
	expect_nothing(fd);
}

TEST(unregister_last_queued_report_leaves_nothing_readable)
{
	int fd = un_open_nb();
	char *p = map_pages(1);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_OK(munmap(p, pg()));
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	ASSERT_OK(un_unreg(fd, 1));
	/* no report was ever returned, so there is no LAST either */
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	expect_nothing(fd);
}

/* ---- reports ------------------------------------------------------ */

TEST(worked_example)
{
	int fd = un_open();
	volatile uint64_t *cnt = map_counter(fd);
	char *p = map_pages(3);
	struct ummunotify_event ev[8];
	ssize_t r;

	ASSERT_EQ(*cnt, 0);
	ASSERT_OK(un_reg(fd, U(p), U(p + 3 * pg()), 123));
	ASSERT_OK(munmap(p + pg(), pg()));
	ASSERT_EQ(*cnt, 1);
	r = read(fd, ev, sizeof(ev));
	ASSERT_EQ(r, 2 * EVSZ);
	expect_inval(&ev[0], 123, 1, U(p + pg()), U(p + 2 * pg()));
	expect_last(&ev[1], 1);
	ASSERT_OK(un_unreg(fd, 123));
	ASSERT_OK(munmap(p, pg()));
	ASSERT_EQ(*cnt, 1);
}

TEST(no_report_outside_range_boundaries_exclusive)
{
	int fd = un_open_nb();
	volatile uint64_t *cnt = map_counter(fd);
	char *p = map_pages(3);

	/* [p + pg, p + 2pg): the pages on both sides touch it but do not hit */
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 2 * pg()), 1));
	ASSERT_OK(munmap(p, pg()));
	ASSERT_OK(munmap(p + 2 * pg(), pg()));
	ASSERT_EQ(*cnt, 0);
	expect_nothing(fd);
}

TEST(hint_is_clipped_to_subpage_range)
{
	int fd = un_open_nb();
	char *p = map_pages(3);
	struct ummunotify_event ev[4];

	ASSERT_OK(un_reg(fd, U(p + pg() + 10), U(p + pg() + 20), 5));
	ASSERT_OK(un_reg(fd, U(p + 100), U(p + 2 * pg() + 100), 6));
	ASSERT_OK(madvise(p + pg(), pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 4), 3);
	/* one invalidation: the order among its reports is not defined */
	if (ev[0].user_cookie_counter == 6) {
		struct ummunotify_event t = ev[0];

		ev[0] = ev[1];
		ev[1] = t;
	}
	expect_inval(&ev[0], 5, 1, U(p + pg() + 10), U(p + pg() + 20));
	expect_inval(&ev[1], 6, 1, U(p + pg()), U(p + 2 * pg()));
	expect_last(&ev[2], 1);
}

TEST(merge_clears_hint_whole_range)
{
	int fd = un_open_nb();
	volatile uint64_t *cnt = map_counter(fd);
	char *p = map_pages(4);
	struct ummunotify_event ev[4];

	ASSERT_OK(un_reg(fd, U(p), U(p + 4 * pg()), 1));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_OK(madvise(p + 2 * pg(), pg(), MADV_DONTNEED));
	ASSERT_EQ(*cnt, 2);
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_inval(&ev[0], 1, 0, U(p), U(p + 4 * pg()));
	expect_last(&ev[1], 2);

	/* once read, the next invalidation queues a fresh report with HINT */
	ASSERT_OK(madvise(p + 3 * pg(), pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_inval(&ev[0], 1, 1, U(p + 3 * pg()), U(p + 4 * pg()));
	expect_last(&ev[1], 3);

	/* three invalidations merge into one report too */
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_inval(&ev[0], 1, 0, U(p), U(p + 4 * pg()));
	expect_last(&ev[1], 6);
}

TEST(one_invalidation_several_registrations)
{
	int fd = un_open_nb();
	volatile uint64_t *cnt = map_counter(fd);
	char *p = map_pages(4);
	struct ummunotify_event ev[8];
	int seen[4] = { 0 };

	/* identical, overlapping and nested ranges, different cookies */
	ASSERT_OK(un_reg(fd, U(p), U(p + 4 * pg()), 0));
	ASSERT_OK(un_reg(fd, U(p), U(p + 4 * pg()), 1));
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 3 * pg()), 2));
	ASSERT_OK(un_reg(fd, U(p + 3 * pg()), U(p + 4 * pg()), 3));
	ASSERT_OK(munmap(p + pg(), 2 * pg()));
	ASSERT_EQ(*cnt, 1);
	ASSERT_EQ(read_evs(fd, ev, 8), 4);
	for (int i = 0; i < 3; i++) {
		uint64_t c = ev[i].user_cookie_counter;

		ASSERT_LT(c, 3);
		ASSERT_EQ(seen[c]++, 0);
		expect_inval(&ev[i], c, 1, U(p + pg()), U(p + 3 * pg()));
	}
	expect_last(&ev[3], 1);
}

TEST(reports_oldest_first)
{
	int fd = un_open_nb();
	char *p = map_pages(4);
	struct ummunotify_event ev[8];
	const int order[4] = { 2, 0, 3, 1 };

	for (int i = 0; i < 4; i++)
		ASSERT_OK(un_reg(fd, U(p + i * pg()), U(p + (i + 1) * pg()),
				 100 + i));
	for (int i = 0; i < 4; i++)
		ASSERT_OK(madvise(p + order[i] * pg(), pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 8), 5);
	for (int i = 0; i < 4; i++)
		expect_inval(&ev[i], 100 + order[i], 1, U(p + order[i] * pg()),
			     U(p + (order[i] + 1) * pg()));
	expect_last(&ev[4], 4);
}

TEST(one_event_per_read_then_last)
{
	int fd = un_open_nb();
	char *p = map_pages(3);
	struct ummunotify_event ev;

	for (int i = 0; i < 3; i++)
		ASSERT_OK(un_reg(fd, U(p + i * pg()), U(p + (i + 1) * pg()),
				 i));
	ASSERT_OK(munmap(p, 3 * pg()));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(read(fd, &ev, sizeof(ev)), EVSZ);
		ASSERT_EQ(ev.type, UMMUNOTIFY_EVENT_TYPE_INVAL);
	}
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), EVSZ);
	expect_last(&ev, 1);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
}

TEST(read_returns_whole_events_as_many_as_fit)
{
	int fd = un_open_nb();
	char *p = map_pages(4);
	char buf[5 * EVSZ];
	struct ummunotify_event *ev = (void *)buf;

	for (int i = 0; i < 4; i++)
		ASSERT_OK(un_reg(fd, U(p + i * pg()), U(p + (i + 1) * pg()),
				 i));
	ASSERT_OK(munmap(p, 4 * pg()));
	/* 2.5 events of room: two whole events */
	ASSERT_EQ(read(fd, buf, 2 * EVSZ + EVSZ / 2), 2 * EVSZ);
	ASSERT_EQ(ev[0].user_cookie_counter, 0);
	ASSERT_EQ(ev[1].user_cookie_counter, 1);
	/* the rest, and LAST in the same read since it fits */
	ASSERT_EQ(read(fd, buf, sizeof(buf)), 3 * EVSZ);
	ASSERT_EQ(ev[0].user_cookie_counter, 2);
	ASSERT_EQ(ev[1].user_cookie_counter, 3);
	expect_last(&ev[2], 1);
}

TEST(read_many_reports_in_one_call)
{
	int fd = un_open_nb();
	const int n = 100;
	char *p = map_pages(n);
	struct ummunotify_event *ev = calloc(n + 10, EVSZ);

	for (int i = 0; i < n; i++)
		ASSERT_OK(un_reg(fd, U(p + i * pg()), U(p + (i + 1) * pg()),
				 i));
	ASSERT_OK(munmap(p, n * pg()));
	ASSERT_EQ(read_evs(fd, ev, n + 10), n + 1);
	for (int i = 0; i < n; i++)
		expect_inval(&ev[i], i, 1, U(p + i * pg()),
			     U(p + (i + 1) * pg()));
	expect_last(&ev[n], 1);
}

TEST(read_small_buffer_einval)
{
	int fd = un_open_nb();
	char *p = map_pages(1);
	char buf[EVSZ];

	ASSERT_ERRNO(read(fd, buf, 0), EINVAL);
	ASSERT_ERRNO(read(fd, buf, EVSZ - 1), EINVAL);
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_OK(munmap(p, pg()));
	ASSERT_ERRNO(read(fd, buf, 1), EINVAL);
	ASSERT_ERRNO(read(fd, buf, EVSZ - 1), EINVAL);
	/* and nothing was consumed */
	ASSERT_EQ(read(fd, buf, EVSZ), EVSZ);
	ASSERT_EQ(((struct ummunotify_event *)buf)->user_cookie_counter, 1);
}

TEST(read_empty_fresh_context_nonblock_eagain)
{
	int fd = un_open_nb();
	struct ummunotify_event ev;

	/* no report was ever returned: no LAST either */
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
	ASSERT_OK(un_reg(fd, 0x10000, 0x20000, 1));
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
}

TEST(read_bad_buffer_efault_keeps_reports)
{
	int fd = un_open_nb();
	char *p = map_pages(2);
	struct ummunotify_event ev[4];
	char *ro = mmap(NULL, pg(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);

	ASSERT_TRUE(ro != MAP_FAILED);
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 2 * pg()), 2));
	ASSERT_OK(munmap(p, pg()));
	ASSERT_OK(munmap(p + pg(), pg()));
	ASSERT_ERRNO(read(fd, bad_ptr, 4 * EVSZ), EFAULT);
	ASSERT_ERRNO(read(fd, ro, 4 * EVSZ), EFAULT);
	/* nothing was lost, order kept, hints kept */
	ASSERT_EQ(read_evs(fd, ev, 4), 3);
	expect_inval(&ev[0], 1, 1, U(p), U(p + pg()));
	expect_inval(&ev[1], 2, 1, U(p + pg()), U(p + 2 * pg()));
	expect_last(&ev[2], 2);
}

TEST(read_partial_fault_returns_what_was_copied)
{
	int fd = un_open_nb();
	char *p = map_pages(3);
	struct ummunotify_event ev[4];
	char *two = mmap(NULL, 2 * pg(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ummunotify_event *edge;

	ASSERT_TRUE(two != MAP_FAILED);
	ASSERT_OK(mprotect(two + pg(), pg(), PROT_READ));
	edge = (void *)(two + pg() - EVSZ);	/* room for one event */
	for (int i = 0; i < 3; i++)
		ASSERT_OK(un_reg(fd, U(p + i * pg()), U(p + (i + 1) * pg()),
				 i));
	ASSERT_OK(munmap(p, 3 * pg()));
	ASSERT_EQ(read(fd, edge, 4 * EVSZ), EVSZ);
	expect_inval(&edge[0], 0, 1, U(p), U(p + pg()));
	ASSERT_EQ(read_evs(fd, ev, 4), 3);
	expect_inval(&ev[0], 1, 1, U(p + pg()), U(p + 2 * pg()));
	expect_inval(&ev[1], 2, 1, U(p + 2 * pg()), U(p + 3 * pg()));
	expect_last(&ev[2], 1);
}

TEST(last_carries_counter_at_read_time)
{
	int fd = un_open_nb();
	volatile uint64_t *cnt = map_counter(fd);
	char *p = map_pages(2);
	struct ummunotify_event ev[4];

	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 2 * pg()), 2));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 1), 1);
	expect_inval(&ev[0], 1, 1, U(p), U(p + pg()));
	/* a second invalidation after the report was returned */
	ASSERT_OK(madvise(p + pg(), pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_inval(&ev[0], 2, 1, U(p + pg()), U(p + 2 * pg()));
	expect_last(&ev[1], 2);
	ASSERT_EQ(*cnt, 2);
	expect_nothing(fd);
}

/* ---- blocking, poll, select, epoll, SIGIO ------------------------- */

struct delayed_unmap {
	void *addr;
	size_t len;
	int delay_ms;
};

static void *delayed_unmap_fn(void *arg)
{
	struct delayed_unmap *d = arg;

	usleep(d->delay_ms * 1000);
	munmap(d->addr, d->len);
	return NULL;
}

TEST(blocking_read_waits_for_report)
{
	int fd = un_open();
	char *p = map_pages(1);
	struct ummunotify_event ev[4];
	struct delayed_unmap d = { p, pg(), 300 };
	struct timespec t0, t1;
	pthread_t th;

	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 9));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(pthread_create(&th, NULL, delayed_unmap_fn, &d), 0);
	ASSERT_EQ(read(fd, ev, sizeof(ev)), 2 * EVSZ);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(th, NULL);
	ASSERT_GE((t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000, 250);
	expect_inval(&ev[0], 9, 1, U(p), U(p + pg()));
	expect_last(&ev[1], 1);
}

static void noop_handler(int sig)
{
	(void)sig;
}

TEST(blocking_read_interrupted_by_signal)
{
	int fd = un_open();
	struct ummunotify_event ev;
	struct sigaction sa = { .sa_handler = noop_handler };

	ASSERT_OK(sigaction(SIGALRM, &sa, NULL));	/* no SA_RESTART */
	ualarm(200000, 0);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EINTR);
}

TEST(blocking_read_killed_promptly)
{
	pid_t pid = fork();
	int st;

	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		int fd = open(DEV, O_RDONLY);
		struct ummunotify_event ev;

		read(fd, &ev, sizeof(ev));
		_exit(1);
	}
	usleep(200000);
	ASSERT_OK(kill(pid, SIGKILL));
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(st));
	ASSERT_EQ(WTERMSIG(st), SIGKILL);
}

TEST(poll_select_epoll_readiness)
{
	int fd = un_open_nb();
	char *p = map_pages(1);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct ummunotify_event ev;
	struct epoll_event ee = { .events = EPOLLIN }, out;
	struct timeval tv = { 0, 0 };
	fd_set rs;
	int ep = epoll_create1(0);

	ASSERT_TRUE(ep >= 0);
	ASSERT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ee));
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));

	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	FD_ZERO(&rs);
	FD_SET(fd, &rs);
	ASSERT_EQ(select(fd + 1, &rs, NULL, NULL, &tv), 0);
	ASSERT_EQ(epoll_wait(ep, &out, 1, 0), 0);

	ASSERT_OK(munmap(p, pg()));
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	ASSERT_TRUE(pfd.revents & POLLIN);
	FD_ZERO(&rs);
	FD_SET(fd, &rs);
	ASSERT_EQ(select(fd + 1, &rs, NULL, NULL, &tv), 1);
	ASSERT_TRUE(FD_ISSET(fd, &rs));
	ASSERT_EQ(epoll_wait(ep, &out, 1, 0), 1);
	ASSERT_TRUE(out.events & EPOLLIN);

	/* the INVAL is read, LAST is still pending: still readable */
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), EVSZ);
	ASSERT_EQ(ev.type, UMMUNOTIFY_EVENT_TYPE_INVAL);
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), EVSZ);
	ASSERT_EQ(ev.type, UMMUNOTIFY_EVENT_TYPE_LAST);
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	ASSERT_EQ(epoll_wait(ep, &out, 1, 0), 0);
}

TEST(poll_wakes_up_waiter)
{
	int fd = un_open_nb();
	char *p = map_pages(1);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct delayed_unmap d = { p, pg(), 300 };
	struct epoll_event ee = { .events = EPOLLIN | EPOLLET }, out;
	int ep = epoll_create1(0);
	pthread_t th;

	ASSERT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ee));
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_EQ(pthread_create(&th, NULL, delayed_unmap_fn, &d), 0);
	ASSERT_EQ(poll(&pfd, 1, 20000), 1);
	ASSERT_TRUE(pfd.revents & POLLIN);
	ASSERT_EQ(epoll_wait(ep, &out, 1, 20000), 1);
	pthread_join(th, NULL);
}

static volatile sig_atomic_t sigio_count;
static volatile sig_atomic_t sigio_fd;

static void sigio_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	sigio_count++;
	sigio_fd = si->si_fd;
}

TEST(sigio_on_report)
{
	int fd = un_open_nb();
	char *p = map_pages(2);
	struct sigaction sa = {
		.sa_sigaction = sigio_handler, .sa_flags = SA_SIGINFO,
	};

	ASSERT_OK(sigaction(SIGIO, &sa, NULL));
	ASSERT_OK(fcntl(fd, F_SETOWN, getpid()));
	ASSERT_OK(fcntl(fd, F_SETSIG, SIGIO));
	ASSERT_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC));
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	/* a miss sends nothing */
	ASSERT_OK(madvise(p + pg(), pg(), MADV_DONTNEED));
	usleep(100000);
	ASSERT_EQ(sigio_count, 0);
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	for (int i = 0; i < 100 && !sigio_count; i++)
		usleep(10000);
	ASSERT_GE(sigio_count, 1);
	ASSERT_EQ(sigio_fd, fd);
	/* O_ASYNC off: no more signals */
	ASSERT_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_ASYNC));
	sigio_count = 0;
	{
		struct ummunotify_event ev[4];

		ASSERT_EQ(read_evs(fd, ev, 4), 2);
	}
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	usleep(100000);
	ASSERT_EQ(sigio_count, 0);
}

TEST(sigio_default_signal_via_owner)
{
	int fd = un_open_nb();
	char *p = map_pages(1);
	sigset_t set;
	int sig;
	struct timespec ts = { 5, 0 };
	siginfo_t si;

	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	ASSERT_OK(sigprocmask(SIG_BLOCK, &set, NULL));
	ASSERT_OK(fcntl(fd, F_SETOWN, getpid()));
	ASSERT_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC));
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_OK(munmap(p, pg()));
	sig = sigtimedwait(&set, &si, &ts);
	ASSERT_EQ(sig, SIGIO);
}

/* ---- generation counter mmap ---------------------------------------- */

TEST(counter_mmap_lengths)
{
	int fd = un_open();
	size_t lens[] = { 1, 8, 100, (size_t)pg() };

	for (unsigned int i = 0; i < 4; i++) {
		void *m = mmap(NULL, lens[i], PROT_READ, MAP_SHARED, fd, 0);

		ASSERT_TRUE(m != MAP_FAILED);
		ASSERT_EQ(*(volatile uint64_t *)m, 0);
		ASSERT_OK(munmap(m, lens[i]));
	}
	ASSERT_ERRNO(mmap(NULL, pg() + 1, PROT_READ, MAP_SHARED, fd, 0) ==
		     MAP_FAILED ? -1 : 0, EINVAL);
	ASSERT_ERRNO(mmap(NULL, 2 * pg(), PROT_READ, MAP_SHARED, fd, 0) ==
		     MAP_FAILED ? -1 : 0, EINVAL);
	ASSERT_ERRNO(mmap(NULL, 8, PROT_READ, MAP_SHARED, fd, pg()) ==
		     MAP_FAILED ? -1 : 0, EINVAL);
}

TEST(counter_mmap_refuses_write)
{
	int fd = un_open();
	void *m;

	errno = 0;
	m = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_TRUE(m == MAP_FAILED);
	ASSERT_TRUE(errno == EACCES || errno == EPERM);
	m = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ASSERT_TRUE(m == MAP_FAILED);
	ASSERT_TRUE(errno == EACCES || errno == EPERM);
	m = mmap(NULL, 8, PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_TRUE(m == MAP_FAILED);
}

TEST(counter_mprotect_cannot_add_write)
{
	int fd = un_open();
	void *m = mmap(NULL, 8, PROT_READ, MAP_SHARED, fd, 0);
	void *m2 = mmap(NULL, 8, PROT_READ, MAP_PRIVATE, fd, 0);

	ASSERT_TRUE(m != MAP_FAILED);
	ASSERT_ERRNO(mprotect(m, pg(), PROT_READ | PROT_WRITE), EACCES);
	if (m2 != MAP_FAILED)
		ASSERT_ERRNO(mprotect(m2, pg(), PROT_READ | PROT_WRITE),
			     EACCES);
	/* and it cannot grow */
	ASSERT_TRUE(mremap(m, pg(), 2 * pg(), MREMAP_MAYMOVE) == MAP_FAILED);
}

TEST(counter_counts_invalidations_that_hit)
{
	int fd = un_open_nb();
	volatile uint64_t *cnt = map_counter(fd);
	volatile uint64_t *cnt2 = map_counter(fd);
	char *p = map_pages(4);
	struct ummunotify_event ev[4];

	ASSERT_OK(un_reg(fd, U(p), U(p + 2 * pg()), 1));
	ASSERT_OK(madvise(p + 2 * pg(), 2 * pg(), MADV_DONTNEED)); /* miss */
	ASSERT_EQ(*cnt, 0);
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(*cnt, 1);
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));	/* merged, still +1 */
	ASSERT_EQ(*cnt, 2);
	ASSERT_OK(mprotect(p, 2 * pg(), PROT_READ));
	ASSERT_EQ(*cnt, 3);
	ASSERT_EQ(*cnt2, 3);
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_last(&ev[1], 3);
	/* a second context on the same mm has its own counter */
	{
		int fd2 = un_open();
		volatile uint64_t *c2 = map_counter(fd2);

		ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
		ASSERT_EQ(*c2, 0);
		ASSERT_EQ(*cnt, 4);
	}
}

TEST(counter_mapping_outlives_fd)
{
	int fd = un_open();
	volatile uint64_t *cnt = map_counter(fd);
	char *p = map_pages(1);

	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_OK(close(fd));
	ASSERT_EQ(*cnt, 1);
	/* the context still lives through the mapping's file reference */
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(*cnt, 2);
	ASSERT_OK(munmap((void *)cnt, 8));
}

/* ---- invalidation reasons, fork, mm exit --------------------------- */

TEST(mremap_move_reports)
{
	int fd = un_open_nb();
	char *p = map_pages(2);
	struct ummunotify_event ev[4];
	void *q;

	ASSERT_OK(un_reg(fd, U(p), U(p + 2 * pg()), 1));
	q = mremap(p, 2 * pg(), 4 * pg(), MREMAP_MAYMOVE);
	ASSERT_TRUE(q != MAP_FAILED);
	if (q == p) {
		/* grown in place: nothing moved, so nothing to report */
		expect_nothing(fd);
		return;
	}
	ASSERT_GE(read_evs(fd, ev, 4), 2);
	ASSERT_EQ(ev[0].user_cookie_counter, 1);
}

TEST(fork_write_protect_reports_in_parent_only)
{
	int fd = un_open_nb();
	volatile uint64_t *cnt = map_counter(fd);
	char *p = map_pages(3);
	char *q = map_pages(1);
	struct ummunotify_event ev[4];
	pid_t pid;
	int st;

	ASSERT_OK(un_reg(fd, U(p), U(p + 3 * pg()), 1));
	ASSERT_OK(un_reg(fd, U(q), U(q + pg()), 2));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		/* the child's mm is not watched: no report, no count */
		munmap(p, 3 * pg());
		madvise(q, pg(), MADV_DONTNEED);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/*
	 * fork() write-protected the parent's private pages: one
	 * invalidation per copied VMA (p and q may share one), each
	 * registration reported once in the parent.
	 */
	ASSERT_GE(*cnt, 1);
	ASSERT_EQ(read_evs(fd, ev, 4), 3);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(ev[i].type, UMMUNOTIFY_EVENT_TYPE_INVAL);
		ASSERT_TRUE(ev[i].user_cookie_counter == 1 ||
			    ev[i].user_cookie_counter == 2);
	}
	ASSERT_NE(ev[0].user_cookie_counter, ev[1].user_cookie_counter);
	expect_last(&ev[2], *cnt);
	/* the parent's own pages are untouched by the child's munmap */
	ASSERT_EQ(p[0], 0x5a);
	expect_nothing(fd);
}

TEST(fork_child_reads_parents_context)
{
	int fd = un_open_nb();
	char *p = map_pages(1);
	int go[2], res[2];
	pid_t pid;
	int st;

	ASSERT_OK(pipe(go));
	ASSERT_OK(pipe(res));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		struct ummunotify_event ev[4];
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;
		int n;

		if (read(go[0], &c, 1) != 1)
			_exit(2);
		if (poll(&pfd, 1, 10000) != 1)
			_exit(3);
		n = read(fd, ev, sizeof(ev));
		if (n != 2 * (int)EVSZ || ev[0].user_cookie_counter != 7 ||
		    ev[0].type != UMMUNOTIFY_EVENT_TYPE_INVAL)
			_exit(4);
		_exit(0);
	}
	/* registered after fork: fork's own write protection not involved */
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 7));
	ASSERT_OK(munmap(p, pg()));
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	expect_nothing(fd);
}

static int send_fd(int sock, int fd)
{
	char c = 'f';
	struct iovec iov = { &c, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char c;
	struct iovec iov = { &c, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/*
 * A child opens a context on its own mm, queues one report, hands the fd
 * over with SCM_RIGHTS and waits; returns the fd, the child's pid, the
 * page address it watched and the write end of the pipe that lets it go.
 */
static int child_context(pid_t *pidp, uint64_t *addr, int *release)
{
	int sv[2], go[2], fd;
	pid_t pid;

	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_OK(pipe(go));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		char *p = map_pages(3);
		uint64_t addr = U(p);
		char c;

		close(go[1]);
		close(sv[0]);

		fd = open(DEV, O_RDONLY | O_NONBLOCK);
		if (fd < 0 || un_reg(fd, U(p), U(p + 3 * pg()), 55))
			_exit(2);
		munmap(p + pg(), pg());
		if (write(sv[1], &addr, sizeof(addr)) != sizeof(addr) ||
		    send_fd(sv[1], fd))
			_exit(3);
		close(fd);
		/* wait until told, then exit: the mm goes away */
		if (read(go[0], &c, 1) < 0)
			_exit(4);
		_exit(0);
	}
	close(sv[1]);
	close(go[0]);
	ASSERT_EQ(read(sv[0], addr, sizeof(*addr)), sizeof(*addr));
	fd = recv_fd(sv[0]);
	ASSERT_TRUE(fd >= 0);
	*pidp = pid;
	*release = go[1];
	return fd;
}

TEST(mm_exit_before_close)
{
	uint64_t p;
	pid_t pid;
	int go, st, fd = child_context(&pid, &p, &go);
	struct ummunotify_event ev[4];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	volatile uint64_t *cnt;

	/* while the child lives, its report is there */
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	ASSERT_OK(close(go));
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);

	/* the exit unmapped the watched range: no report for that */
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_inval(&ev[0], 55, 1, p + pg(), p + 2 * pg());
	expect_last(&ev[1], 1);
	/* the fd stays valid: EOF, POLLHUP, ioctls and mmap still work */
	ASSERT_EQ(read(fd, ev, sizeof(ev)), 0);
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	ASSERT_TRUE(pfd.revents & POLLHUP);
	ASSERT_FALSE(pfd.revents & POLLIN);
	ASSERT_OK(un_reg(fd, p, p + pg(), 56));
	ASSERT_OK(un_unreg(fd, 55));
	ASSERT_OK(un_unreg(fd, 56));
	cnt = map_counter(fd);
	ASSERT_EQ(*cnt, 1);
	ASSERT_OK(close(fd));
	ASSERT_EQ(*cnt, 1);
}

/*
 * process_mrelease() reaps a killed process's mm the way the OOM reaper
 * does, calling the notifier non-blockable
 * (mmu_notifier_invalidate_range_start_nonblock).  The driver must never
 * make it fail (-EAGAIN) or sleep there; whether the reap runs before the
 * exiting task's own exit_mmap() (which detaches the notifier first) is a
 * race, so a reaper report is checked when it happens and counted.
 */
TEST(nonblocking_invalidation_from_process_mrelease)
{
	int reaped = 0, tries = 10;

	for (int t = 0; t < tries; t++) {
		uint64_t p;
		pid_t pid;
		int go, fd = child_context(&pid, &p, &go);
		int pidfd = syscall(SYS_pidfd_open, pid, 0);
		struct ummunotify_event ev[4];
		long ret;
		int n;

		ASSERT_TRUE(pidfd >= 0);
		ASSERT_OK(syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL,
				  0));
		ret = syscall(SYS_process_mrelease, pidfd, 0);
		if (ret)
			ASSERT_EQ(errno, ESRCH);	/* already gone */
		ASSERT_EQ(waitpid(pid, NULL, 0), pid);
		n = read_evs(fd, ev, 4);
		ASSERT_EQ(n, 2);
		ASSERT_EQ(ev[0].type, UMMUNOTIFY_EVENT_TYPE_INVAL);
		ASSERT_EQ(ev[0].user_cookie_counter, 55);
		if (ev[0].flags == 0) {
			/* the reap's UNMAP merged into the munmap report */
			ASSERT_EQ(ev[0].hint_start, p);
			ASSERT_EQ(ev[0].hint_end, p + 3 * pg());
			ASSERT_GE(ev[1].user_cookie_counter, 2);
			reaped++;
		} else {
			expect_inval(&ev[0], 55, 1, p + pg(), p + 2 * pg());
			expect_last(&ev[1], 1);
		}
		close(go);
		close(pidfd);
		close(fd);
	}
	printf("# the non-blockable reap reached the notifier in %d of %d tries\n",
	       reaped, tries);
}

static void *blocking_reader(void *arg)
{
	int fd = *(int *)arg;
	struct ummunotify_event ev[4];

	return (void *)(intptr_t)read(fd, ev, sizeof(ev));
}

TEST(mm_exit_wakes_blocked_reader)
{
	uint64_t p;
	pid_t pid;
	int go, fd = child_context(&pid, &p, &go);
	struct ummunotify_event ev[4];
	pthread_t th;
	void *ret;

	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	ASSERT_OK(fcntl(fd, F_SETFL, 0));	/* blocking */
	ASSERT_EQ(pthread_create(&th, NULL, blocking_reader, &fd), 0);
	usleep(200000);
	ASSERT_OK(close(go));
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	ASSERT_EQ(pthread_join(th, &ret), 0);
	ASSERT_EQ((intptr_t)ret, 0);
}

TEST(close_with_queued_reports_and_registrations)
{
	char *p = map_pages(8);

	for (int round = 0; round < 20; round++) {
		int fd = un_open();

		for (int i = 0; i < 8; i++)
			ASSERT_OK(un_reg(fd, U(p + i * pg()),
					 U(p + (i + 1) * pg()), i));
		ASSERT_OK(madvise(p, 4 * pg(), MADV_DONTNEED));
		ASSERT_OK(close(fd));
	}
}

TEST(exit_with_open_context)
{
	for (int i = 0; i < 20; i++) {
		pid_t pid = fork();
		int st;

		ASSERT_TRUE(pid >= 0);
		if (pid == 0) {
			int fd = open(DEV, O_RDONLY);
			char *p = map_pages(2);

			if (fd < 0 || un_reg(fd, U(p), U(p + 2 * pg()), 1))
				_exit(2);
			map_counter(fd);
			munmap(p, pg());
			_exit(0);	/* the mm and the fd go together */
		}
		ASSERT_EQ(waitpid(pid, &st, 0), pid);
		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

/* ---- scale and cap -------------------------------------------------- */

/*
 * Splitting a VMA inside a THP-capable 2 MB range makes the kernel (6.12)
 * invalidate that whole 2 MB (CLEAR, from split_huge_pmd_address), a real
 * invalidation this driver faithfully reports.  The scale test wants one
 * invalidation per step, so it only splits or unmaps at 2 MB boundaries.
 */
#define HUGE_SZ (2UL << 20)

TEST_TIMEOUT(hundred_thousand_ranges, 600)
{
	const int n = 100000;
	int fd = un_open_nb();
	volatile uint64_t *cnt = map_counter(fd);
	/* one page each: 400 MB of address space, never touched */
	size_t area = ((size_t)n * pg() + HUGE_SZ - 1) & ~(HUGE_SZ - 1);
	char *base = mmap(NULL, area + 2 * HUGE_SZ, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *p;
	struct ummunotify_event ev[16];
	const int first = 54321;

	ASSERT_TRUE(base != MAP_FAILED);
	p = (char *)(uintptr_t)((U(base) + HUGE_SZ) & ~(HUGE_SZ - 1));
	for (int i = 0; i < n; i++)
		ASSERT_OK(un_reg(fd, U(p + (size_t)i * pg()),
				 U(p + (size_t)(i + 1) * pg()), i));
	/* and one that overlaps them all */
	ASSERT_OK(un_reg(fd, U(p), U(p + (size_t)n * pg()), n));
	ASSERT_ERRNO(un_reg(fd, 0x1000, 0x2000, 77777), EINVAL);

	ASSERT_OK(madvise(p + (size_t)first * pg(), 10 * pg(), MADV_DONTNEED));
	ASSERT_EQ(*cnt, 1);
	ASSERT_EQ(read_evs(fd, ev, 16), 12);
	for (int i = 0; i < 11; i++) {
		uint64_t c = ev[i].user_cookie_counter;

		ASSERT_EQ(ev[i].type, UMMUNOTIFY_EVENT_TYPE_INVAL);
		ASSERT_EQ(ev[i].flags, UMMUNOTIFY_EVENT_FLAG_HINT);
		if (c == (uint64_t)n) {
			ASSERT_EQ(ev[i].hint_start,
				  U(p + (size_t)first * pg()));
			ASSERT_EQ(ev[i].hint_end,
				  U(p + (size_t)(first + 10) * pg()));
		} else {
			ASSERT_GE(c, first);
			ASSERT_LT(c, first + 10);
			ASSERT_EQ(ev[i].hint_start, U(p + c * pg()));
			ASSERT_EQ(ev[i].hint_end, U(p + (c + 1) * pg()));
		}
	}
	expect_last(&ev[11], 1);

	/* unregister half; unmap everything; only the rest report */
	for (int i = 0; i < n; i += 2)
		ASSERT_OK(un_unreg(fd, i));
	ASSERT_OK(un_unreg(fd, n));
	ASSERT_OK(munmap(p, area));
	ASSERT_EQ(*cnt, 2);
	{
		struct ummunotify_event *all = calloc(n, EVSZ);
		int got = read_evs(fd, all, n);

		ASSERT_EQ(got, n / 2 + 1);
		for (int i = 0; i < n / 2; i++)
			ASSERT_EQ(all[i].user_cookie_counter % 2, 1);
		expect_last(&all[n / 2], 2);
	}
}

static unsigned int read_max_regions(void)
{
	FILE *f = fopen(MAXREG_PARAM, "r");
	unsigned int v = 0;

	ASSERT_TRUE(f);
	ASSERT_EQ(fscanf(f, "%u", &v), 1);
	fclose(f);
	return v;
}

static void write_max_regions(unsigned int v)
{
	FILE *f = fopen(MAXREG_PARAM, "w");

	ASSERT_TRUE(f);
	fprintf(f, "%u\n", v);
	ASSERT_EQ(fclose(f), 0);
}

TEST(cap_max_regions_enospc)
{
	unsigned int def = read_max_regions();
	int before = un_open(), fd;

	ASSERT_GE(def, 100000);
	write_max_regions(10);
	fd = un_open();
	write_max_regions(def);

	for (int i = 0; i < 10; i++)
		ASSERT_OK(un_reg(fd, 0x10000 + i, 0x20000, i));
	ASSERT_ERRNO(un_reg(fd, 0x10000, 0x20000, 10), ENOSPC);
	/* a duplicate at the cap is still ENOSPC or EINVAL, never success */
	ASSERT_TRUE(un_reg(fd, 0x10000, 0x20000, 3) == -1);
	ASSERT_OK(un_unreg(fd, 0));
	ASSERT_OK(un_reg(fd, 0x10000, 0x20000, 10));
	ASSERT_ERRNO(un_reg(fd, 0x10000, 0x20000, 11), ENOSPC);
	/* a context opened before keeps the cap it was opened with */
	for (int i = 0; i < 20; i++)
		ASSERT_OK(un_reg(before, 0x10000, 0x20000, i));
}

static long meminfo_kb(const char *key)
{
	FILE *f;
	char line[256];
	long v = -1;
	size_t kl = strlen(key);

	/* settle first: reclaimable caches out of the way */
	sync();
	f = fopen("/proc/sys/vm/drop_caches", "w");
	if (f) {
		fputs("3\n", f);
		fclose(f);
	}
	f = fopen("/proc/meminfo", "r");
	ASSERT_TRUE(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			v = atol(line + kl + 1);
	fclose(f);
	ASSERT_GE(v, 0);
	return v;
}

/*
 * 100,000 registrations and 50 contexts (with queued, merged, read and
 * unregistered reports) come and go: unreclaimable slab must not keep
 * them.  A leak of every registration would be >= 12 MB (kmalloc-128
 * each); the guest's own noise is well under 1 MB.
 */
TEST_TIMEOUT(no_leak_context_lifecycle, 600)
{
	const int rounds = 50, n = 2000;
	char *p = map_pages(64);
	long before, after;

	for (int warm = 0; warm < 2; warm++) {
		int fd = un_open();

		for (int i = 0; i < n; i++)
			ASSERT_OK(un_reg(fd, U(p) + i, U(p) + i + 1 + 64, i));
		ASSERT_OK(close(fd));
	}
	before = meminfo_kb("SUnreclaim");
	for (int r = 0; r < rounds; r++) {
		int fd = un_open_nb();
		struct ummunotify_event ev[64];
		volatile uint64_t *cnt = map_counter(fd);

		for (int i = 0; i < n; i++)
			ASSERT_OK(un_reg(fd, U(p) + (i % 64) * pg() + i % 7,
					 U(p) + (i % 64 + 1) * pg(), i));
		ASSERT_OK(madvise(p, 32 * pg(), MADV_DONTNEED));
		ASSERT_OK(madvise(p, 8 * pg(), MADV_DONTNEED));
		ASSERT_GT(read_evs(fd, ev, 64), 0);
		for (int i = 0; i < n; i += 3)
			ASSERT_OK(un_unreg(fd, i));
		ASSERT_EQ(*cnt, 2);
		/* the mapping holds the file: the context goes with both */
		ASSERT_OK(munmap((void *)cnt, 8));
		ASSERT_OK(close(fd));
	}
	after = meminfo_kb("SUnreclaim");
	printf("# SUnreclaim %ld -> %ld kB\n", before, after);
	ASSERT_LT(after - before, 1024);
}

/* ---- module lifetime ------------------------------------------------ */

static int module_refcount(void)
{
	FILE *f = fopen("/proc/modules", "r");
	char line[512];
	int ref = -1;

	ASSERT_TRUE(f);
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		unsigned long size;

		if (sscanf(line, "%63s %lu %d", name, &size, &ref) == 3 &&
		    !strcmp(name, "ummunotify"))
			break;
		ref = -1;
	}
	fclose(f);
	return ref;
}

TEST(unload_refused_while_open)
{
	int base = module_refcount();
	int fd;

	ASSERT_GE(base, 0);
	fd = un_open();
	ASSERT_EQ(module_refcount(), base + 1);
	ASSERT_ERRNO(syscall(SYS_delete_module, "ummunotify", O_NONBLOCK),
		     EWOULDBLOCK);
	ASSERT_ERRNO(syscall(SYS_delete_module, "ummunotify", O_NONBLOCK),
		     EWOULDBLOCK);
	/* a mapping of the counter page pins it too, through its file */
	{
		volatile uint64_t *cnt = map_counter(fd);

		ASSERT_OK(close(fd));
		ASSERT_EQ(module_refcount(), base + 1);
		ASSERT_ERRNO(syscall(SYS_delete_module, "ummunotify",
				     O_NONBLOCK), EWOULDBLOCK);
		ASSERT_OK(munmap((void *)cnt, 8));
	}
	ASSERT_EQ(module_refcount(), base);
}

/* ---- concurrency ---------------------------------------------------- */

#define C_SLOTS		8	/* watched by fixed cookies 1..C_SLOTS */
#define C_CHURN_SLOTS	2	/* registered and unregistered in a loop */
#define C_SLOTPG	4
#define C_MUTATORS	4
#define C_ITERS		150
#define C_CHURN_ITERS	150
#define C_COOKIES	(1000 + 2 * C_CHURN_ITERS * C_CHURN_SLOTS + 16)

enum { K_NONE, K_WAITED, K_UNWAITED };

struct conc {
	int fd;
	int mode;	/* 0: blocking read, 1: poll + read, 2: epoll + read */
	char *base;
	atomic_int stop;
	atomic_int pending[C_COOKIES];
	atomic_int count[C_COOKIES];
	atomic_int kind[C_COOKIES];
	atomic_int bad_dup, bad_lost, bad_last, bad_other;
	atomic_long ops;
	atomic_long reads;
};

static char *slot_addr(struct conc *c, int slot)
{
	return c->base + (size_t)slot * (C_SLOTPG + 1) * pg();
}

static void conc_consume(struct conc *c, const struct ummunotify_event *ev,
			 int n, uint64_t *last_seen)
{
	for (int i = 0; i < n; i++) {
		uint64_t k = ev[i].user_cookie_counter;

		if (ev[i].type == UMMUNOTIFY_EVENT_TYPE_LAST) {
			if (k < *last_seen)
				atomic_fetch_add(&c->bad_last, 1);
			*last_seen = k;
			continue;
		}
		if (ev[i].type != UMMUNOTIFY_EVENT_TYPE_INVAL ||
		    k >= C_COOKIES || atomic_load(&c->kind[k]) == K_NONE) {
			atomic_fetch_add(&c->bad_other, 1);
			continue;
		}
		atomic_fetch_add(&c->count[k], 1);
		if (atomic_load(&c->kind[k]) == K_WAITED &&
		    atomic_exchange(&c->pending[k], 0) != 1) {
			fprintf(stderr, "#   duplicate report for cookie %" PRIu64 "\n", k);
			atomic_fetch_add(&c->bad_dup, 1);
		}
	}
}

static void *conc_reader(void *arg)
{
	struct conc *c = arg;
	struct ummunotify_event ev[16];
	uint64_t last_seen = 0;
	int ep = -1;

	if (c->mode == 2) {
		struct epoll_event ee = { .events = EPOLLIN };

		ep = epoll_create1(0);
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ee);
	}
	while (!atomic_load(&c->stop)) {
		ssize_t r;

		if (c->mode == 1) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

			if (poll(&pfd, 1, 50) <= 0)
				continue;
		} else if (c->mode == 2) {
			struct epoll_event out;

			if (epoll_wait(ep, &out, 1, 50) <= 0)
				continue;
		}
		/* vary the buffer size: 1 to 16 events */
		r = read(c->fd, ev, (1 + (atomic_fetch_add(&c->reads, 1) % 16)) * EVSZ);
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				atomic_fetch_add(&c->bad_other, 1);
			continue;
		}
		conc_consume(c, ev, r / EVSZ, &last_seen);
	}
	if (ep >= 0)
		close(ep);
	return NULL;
}

static int conc_wait_consumed(struct conc *c, uint64_t k)
{
	for (int i = 0; i < 60000; i++) {	/* up to 60 s */
		if (!atomic_load(&c->pending[k]))
			return 0;
		usleep(1000);
	}
	fprintf(stderr, "#   lost report for cookie %" PRIu64 "\n", k);
	atomic_fetch_add(&c->bad_lost, 1);
	return -1;
}

/* One invalidation of a whole populated slot, of the kind op picks. */
static void conc_op(char *a, int op)
{
	size_t len = C_SLOTPG * pg();

	switch (op % 4) {
	case 0:
		madvise(a, len, MADV_DONTNEED);
		break;
	case 1:
		mprotect(a, len, PROT_READ);
		break;
	case 2:
		mprotect(a, len, PROT_READ | PROT_WRITE);
		break;
	default:
		/* atomically replace the mapping: an unmap */
		mmap(a, len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		break;
	}
	if (op % 4 != 1)
		memset(a, op, len);	/* populate again for the next op */
}

struct mutator_arg {
	struct conc *c;
	int id;
};

static void *conc_mutator(void *arg)
{
	struct mutator_arg *m = arg;
	struct conc *c = m->c;

	for (int it = 0; it < C_ITERS; it++) {
		for (int s = m->id; s < C_SLOTS; s += C_MUTATORS) {
			uint64_t k = s + 1;

			atomic_store(&c->pending[k], 1);
			conc_op(slot_addr(c, s), it);
			atomic_fetch_add(&c->ops, 1);
			if (conc_wait_consumed(c, k))
				return NULL;
		}
	}
	return NULL;
}

static void *conc_churner(void *arg)
{
	struct conc *c = arg;
	uint64_t k = 1000;
	/* per slot, so that consecutive ops always change something */
	int opn[C_CHURN_SLOTS] = { 0 };

	for (int it = 0; it < C_CHURN_ITERS; it++) {
		for (int s = C_SLOTS; s < C_SLOTS + C_CHURN_SLOTS; s++) {
			char *a = slot_addr(c, s);

			/* waited: the report must arrive exactly once */
			atomic_store(&c->kind[k], K_WAITED);
			atomic_store(&c->pending[k], 1);
			if (un_reg(c->fd, U(a), U(a + C_SLOTPG * pg()), k))
				atomic_fetch_add(&c->bad_other, 1);
			conc_op(a, opn[s - C_SLOTS]++);
			atomic_fetch_add(&c->ops, 1);
			if (conc_wait_consumed(c, k))
				return NULL;
			if (un_unreg(c->fd, k))
				atomic_fetch_add(&c->bad_other, 1);
			k++;

			/* unwaited: at most once, maybe dropped by unregister */
			atomic_store(&c->kind[k], K_UNWAITED);
			if (un_reg(c->fd, U(a), U(a + C_SLOTPG * pg()), k))
				atomic_fetch_add(&c->bad_other, 1);
			conc_op(a, opn[s - C_SLOTS]++);
			atomic_fetch_add(&c->ops, 1);
			if (un_unreg(c->fd, k))
				atomic_fetch_add(&c->bad_other, 1);
			k++;
		}
	}
	return NULL;
}

static void conc_run(int mode)
{
	struct conc *c = calloc(1, sizeof(*c));
	int nslots = C_SLOTS + C_CHURN_SLOTS;
	pthread_t readers[3], muts[C_MUTATORS], churn;
	struct mutator_arg margs[C_MUTATORS];
	struct sigaction sa = { .sa_handler = noop_handler };
	volatile uint64_t *cnt;
	struct ummunotify_event ev[16];
	long waited = 0;
	int n;

	ASSERT_TRUE(c);
	ASSERT_OK(sigaction(SIGUSR1, &sa, NULL));	/* no SA_RESTART */
	c->mode = mode;
	c->fd = mode ? un_open_nb() : un_open();
	cnt = map_counter(c->fd);
	c->base = mmap(NULL, (size_t)nslots * (C_SLOTPG + 1) * pg(), PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(c->base != MAP_FAILED);
	for (int s = 0; s < nslots; s++) {
		char *a = slot_addr(c, s);

		ASSERT_TRUE(mmap(a, C_SLOTPG * pg(), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 -1, 0) == a);
		memset(a, 1, C_SLOTPG * pg());
		if (s < C_SLOTS) {
			atomic_store(&c->kind[s + 1], K_WAITED);
			ASSERT_OK(un_reg(c->fd, U(a), U(a + C_SLOTPG * pg()),
					 s + 1));
		}
	}

	for (int i = 0; i < 3; i++)
		ASSERT_EQ(pthread_create(&readers[i], NULL, conc_reader, c), 0);
	for (int i = 0; i < C_MUTATORS; i++) {
		margs[i] = (struct mutator_arg){ c, i };
		ASSERT_EQ(pthread_create(&muts[i], NULL, conc_mutator,
					 &margs[i]), 0);
	}
	ASSERT_EQ(pthread_create(&churn, NULL, conc_churner, c), 0);
	for (int i = 0; i < C_MUTATORS; i++)
		pthread_join(muts[i], NULL);
	pthread_join(churn, NULL);
	atomic_store(&c->stop, 1);
	for (int i = 0; i < 3; i++) {
		/* blocking readers leave read() with EINTR */
		while (pthread_tryjoin_np(readers[i], NULL)) {
			pthread_kill(readers[i], SIGUSR1);
			usleep(10000);
		}
	}

	printf("# mode %d: %ld ops, counter %" PRIu64 "\n", mode,
	       atomic_load(&c->ops), *cnt);
	ASSERT_EQ(atomic_load(&c->bad_lost), 0);
	ASSERT_EQ(atomic_load(&c->bad_dup), 0);
	ASSERT_EQ(atomic_load(&c->bad_last), 0);
	ASSERT_EQ(atomic_load(&c->bad_other), 0);
	/* every op hit exactly one registration: one count each */
	ASSERT_EQ(atomic_load(&c->ops),
		  (long)C_SLOTS * C_ITERS + 2L * C_CHURN_SLOTS * C_CHURN_ITERS);
	ASSERT_EQ(*cnt, (uint64_t)atomic_load(&c->ops));
	for (int k = 0; k < C_COOKIES; k++) {
		int kd = atomic_load(&c->kind[k]);
		int cn = atomic_load(&c->count[k]);

		if (kd == K_UNWAITED)
			ASSERT_LE(cn, 1);
		else if (kd == K_WAITED && k >= 1000)
			ASSERT_EQ(cn, 1);
		else if (kd == K_WAITED)
			waited += cn;
	}
	ASSERT_EQ(waited, (long)C_SLOTS * C_ITERS);
	/* nothing left but at most one LAST */
	ASSERT_OK(fcntl(c->fd, F_SETFL, O_NONBLOCK));
	n = read(c->fd, ev, sizeof(ev));
	if (n > 0) {
		ASSERT_EQ(n, EVSZ);
		expect_last(&ev[0], *cnt);
		n = read(c->fd, ev, sizeof(ev));
	}
	ASSERT_EQ(n, -1);
	ASSERT_EQ(errno, EAGAIN);
}

TEST_TIMEOUT(concurrency_blocking_readers, 900)
{
	conc_run(0);
}

TEST_TIMEOUT(concurrency_poll_readers, 900)
{
	conc_run(1);
}

TEST_TIMEOUT(concurrency_epoll_readers, 900)
{
	conc_run(2);
}

struct race_arg {
	int fd;
	char *p;
	atomic_int stop;
	atomic_long regs, unregs, invals, reads;
};

static void *race_register(void *arg)
{
	struct race_arg *r = arg;
	uint64_t k = 0;

	while (!atomic_load(&r->stop)) {
		for (int i = 0; i < 16; i++)
			if (!un_reg(r->fd, U(r->p), U(r->p + 16 * pg()),
				    k * 16 + i))
				atomic_fetch_add(&r->regs, 1);
		for (int i = 0; i < 16; i++)
			if (!un_unreg(r->fd, k * 16 + i))
				atomic_fetch_add(&r->unregs, 1);
		k++;
	}
	return NULL;
}

static void *race_invalidate(void *arg)
{
	struct race_arg *r = arg;

	while (!atomic_load(&r->stop)) {
		madvise(r->p, 16 * pg(), MADV_DONTNEED);
		atomic_fetch_add(&r->invals, 1);
	}
	return NULL;
}

static void *race_read(void *arg)
{
	struct race_arg *r = arg;
	struct ummunotify_event ev[8];

	while (!atomic_load(&r->stop)) {
		if (read(r->fd, ev, sizeof(ev)) > 0)
			atomic_fetch_add(&r->reads, 1);
	}
	return NULL;
}

/*
 * Unstructured stress of unregister against read and the notifier (the
 * paths that free a registration while a report may be in flight):
 * the checks are no crash, no kernel warning, no hang, sane counts.
 */
TEST_TIMEOUT(race_unregister_read_invalidate, 300)
{
	struct race_arg r = { 0 };
	pthread_t t[5];
	struct ummunotify_event ev[8];

	r.fd = un_open_nb();
	r.p = map_pages(16);
	ASSERT_EQ(pthread_create(&t[0], NULL, race_register, &r), 0);
	ASSERT_EQ(pthread_create(&t[1], NULL, race_register, &r), 0);
	ASSERT_EQ(pthread_create(&t[2], NULL, race_invalidate, &r), 0);
	ASSERT_EQ(pthread_create(&t[3], NULL, race_read, &r), 0);
	ASSERT_EQ(pthread_create(&t[4], NULL, race_read, &r), 0);
	sleep(10);
	atomic_store(&r.stop, 1);
	for (int i = 0; i < 5; i++)
		pthread_join(t[i], NULL);
	printf("# %ld registers, %ld unregisters, %ld invalidations, %ld reads\n",
	       atomic_load(&r.regs), atomic_load(&r.unregs),
	       atomic_load(&r.invals), atomic_load(&r.reads));
	ASSERT_GT(atomic_load(&r.regs), 0);
	ASSERT_GT(atomic_load(&r.invals), 0);
	/* both threads use the same cookies; each unregister matches one */
	ASSERT_EQ(atomic_load(&r.regs), atomic_load(&r.unregs));
	/* everything was unregistered: nothing may be queued any more */
	while (read(r.fd, ev, sizeof(ev)) > 0)
		;
	ASSERT_EQ(errno, EAGAIN);
	ASSERT_OK(madvise(r.p, 16 * pg(), MADV_DONTNEED));
	ASSERT_ERRNO(read(r.fd, ev, sizeof(ev)), EAGAIN);
}

/*
 * Two read()s in flight on the same registration: reader A dequeues its
 * report and blocks copying it out (its buffer is userfaultfd-armed), a new
 * invalidation queues the registration again and reader B dequeues it and
 * blocks the same way.  A finishing must not let UNREGISTER_REGION believe
 * the copy is over: it must wait for B too (abi.md: once it returns, no
 * event of the cookie is delivered), and must not free the registration
 * under B.
 */
struct uffd_reader {
	int fd;
	struct ummunotify_event *buf;
	ssize_t ret;
};

static void *uffd_reader_fn(void *arg)
{
	struct uffd_reader *r = arg;

	r->ret = read(r->fd, r->buf, EVSZ);
	return NULL;
}

struct unreg_arg {
	int fd;
	int ret;
	atomic_int done;
};

static void *unreg_fn(void *arg)
{
	struct unreg_arg *u = arg;

	u->ret = un_unreg(u->fd, 7);
	atomic_store(&u->done, 1);
	return NULL;
}

static void uffd_wait_fault(int uffd, const void *addr)
{
	struct uffd_msg msg;

	ASSERT_EQ(read(uffd, &msg, sizeof(msg)), sizeof(msg));
	ASSERT_EQ(msg.event, UFFD_EVENT_PAGEFAULT);
	ASSERT_EQ(msg.arg.pagefault.address & ~(uint64_t)(pg() - 1), U(addr));
}

static void uffd_fill(int uffd, void *dst, const char *src)
{
	struct uffdio_copy c = {
		.dst = U(dst), .src = U(src), .len = pg(),
	};

	ASSERT_OK(ioctl(uffd, UFFDIO_COPY, &c));
}

TEST(unregister_waits_for_every_reader_of_its_report)
{
	int fd = un_open_nb();
	char *p = map_pages(1);
	char *src = map_pages(1);
	char *bufs = mmap(NULL, 2 * pg(), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register ur = {
		.range = { .start = U(bufs), .len = 2 * pg() },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct uffd_reader a = { fd, (void *)bufs, 0 };
	struct uffd_reader b = { fd, (void *)(bufs + pg()), 0 };
	struct unreg_arg u = { .fd = fd };
	pthread_t ta, tb, tu;

	ASSERT_TRUE(bufs != MAP_FAILED);
	ASSERT_TRUE(uffd >= 0);
	ASSERT_OK(ioctl(uffd, UFFDIO_API, &api));
	ASSERT_OK(ioctl(uffd, UFFDIO_REGISTER, &ur));
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 7));

	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(pthread_create(&ta, NULL, uffd_reader_fn, &a), 0);
	uffd_wait_fault(uffd, a.buf);		/* A holds report 1 */
	p[0] = 1;
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(pthread_create(&tb, NULL, uffd_reader_fn, &b), 0);
	uffd_wait_fault(uffd, b.buf);		/* B holds report 2 */

	uffd_fill(uffd, a.buf, src);
	pthread_join(ta, NULL);
	ASSERT_EQ(a.ret, EVSZ);
	expect_inval(a.buf, 7, 1, U(p), U(p + pg()));

	ASSERT_EQ(pthread_create(&tu, NULL, unreg_fn, &u), 0);
	usleep(300000);
	/* B is still copying report 2 of cookie 7: unregister must wait */
	ASSERT_EQ(atomic_load(&u.done), 0);

	uffd_fill(uffd, b.buf, src);
	pthread_join(tb, NULL);
	pthread_join(tu, NULL);
	ASSERT_EQ(b.ret, EVSZ);
	expect_inval(b.buf, 7, 1, U(p), U(p + pg()));
	ASSERT_EQ(u.ret, 0);
	ASSERT_EQ(un_unreg(fd, 7), -1);
	ASSERT_EQ(errno, EINVAL);
}

/* ---- tracepoints ---------------------------------------------------- */

static void tracefs_write(const char *file, const char *val)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), TRACEFS "/%s", file);
	fd = open(path, O_WRONLY | O_TRUNC);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(write(fd, val, strlen(val)), (ssize_t)strlen(val));
	close(fd);
}

static char *trace_snapshot(void)
{
	int fd = open(TRACEFS "/trace", O_RDONLY);
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	ssize_t r;

	ASSERT_TRUE(fd >= 0 && buf);
	while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += r;
		if (cap - len < 4096)
			buf = realloc(buf, cap *= 2);
	}
	buf[len] = 0;
	close(fd);
	return buf;
}

struct tp_notify {
	unsigned long long ctx, start, end, gen, tgid_start;
	unsigned int tgid, reason, hits, queued;
};

struct tp_region {
	unsigned long long ctx, cookie, start, end, seq, tgid_start;
	unsigned int regions, tgid, queued;
};

struct tp_read {
	unsigned long long ctx, seq, tgid_start;
	unsigned int events, queued, tgid, regions;
};

struct tp_release {
	unsigned long long ctx, tgid_start;
	unsigned int tgid, regions;
};

/* Find the n-th (from 0) notify event matching start/end. */
static int find_notify(const char *t, uint64_t start, uint64_t end,
		       int nth, struct tp_notify *o)
{
	const char *s = t;

	while ((s = strstr(s, "ummunotify_notify: "))) {
		s += strlen("ummunotify_notify: ");
		if (sscanf(s, "ctx=%llu tgid=%u start=0x%llx end=0x%llx reason=%u hits=%u queued=%u generation=%llu tgid_start=%llu",
			   &o->ctx, &o->tgid, &o->start, &o->end, &o->reason,
			   &o->hits, &o->queued, &o->gen, &o->tgid_start) != 9)
			return -1;
		if (o->start == start && o->end == end && nth-- == 0)
			return 0;
	}
	return -1;
}

static int find_region(const char *t, const char *ev, uint64_t cookie,
		       struct tp_region *o)
{
	char key[64];
	const char *s = t;

	snprintf(key, sizeof(key), "%s: ", ev);
	while ((s = strstr(s, key))) {
		s += strlen(key);
		if (sscanf(s, "ctx=%llu cookie=%llu start=0x%llx end=0x%llx regions=%u tgid=%u queued=%u seq=%llu tgid_start=%llu",
			   &o->ctx, &o->cookie, &o->start, &o->end,
			   &o->regions, &o->tgid, &o->queued, &o->seq,
			   &o->tgid_start) != 9)
			return -1;
		if (o->cookie == cookie)
			return 0;
	}
	return -1;
}

static int find_read(const char *t, int nth, struct tp_read *o)
{
	const char *s = t;

	while ((s = strstr(s, "ummunotify_read: "))) {
		s += strlen("ummunotify_read: ");
		if (sscanf(s, "ctx=%llu events=%u queued=%u tgid=%u regions=%u seq=%llu tgid_start=%llu",
			   &o->ctx, &o->events, &o->queued, &o->tgid,
			   &o->regions, &o->seq, &o->tgid_start) != 7)
			return -1;
		if (nth-- == 0)
			return 0;
	}
	return -1;
}

/* The release events of @ctx: how many, the last one in *o. */
static int count_release(const char *t, unsigned long long ctx,
			 struct tp_release *o)
{
	struct tp_release r;
	const char *s = t;
	int n = 0;

	while ((s = strstr(s, "ummunotify_release: "))) {
		s += strlen("ummunotify_release: ");
		if (sscanf(s, "ctx=%llu tgid=%u regions=%u tgid_start=%llu",
			   &r.ctx, &r.tgid, &r.regions, &r.tgid_start) != 4)
			return -1;
		if (r.ctx == ctx) {
			*o = r;
			n++;
		}
	}
	return n;
}

static void trace_on(void)
{
	struct stat st;

	if (stat(TRACEFS "/events/ummunotify", &st))
		KTEST_FAIL_("no " TRACEFS "/events/ummunotify");
	tracefs_write("tracing_on", "0");
	tracefs_write("events/enable", "0");
	tracefs_write("buffer_size_kb", "4096");
	tracefs_write("trace", "");
	tracefs_write("events/ummunotify/enable", "1");
	tracefs_write("tracing_on", "1");
}

/* Stop recording our events; the buffer stays readable, tracing stays on. */
static void trace_off(void)
{
	tracefs_write("events/ummunotify/enable", "0");
}

TEST(tracepoints_have_the_documented_format)
{
	static const char *const want[][2] = {
		{ "ummunotify_notify", "u64 ctx_id;u32 tgid;u64 start;u64 end;u32 reason;u32 hits;u32 queued;u64 generation;u64 tgid_start;" },
		{ "ummunotify_read", "u64 ctx_id;u32 events;u32 queued;u32 tgid;u32 regions;u64 seq;u64 tgid_start;" },
		{ "ummunotify_register", "u64 ctx_id;u64 cookie;u64 start;u64 end;u32 regions;u32 tgid;u32 queued;u64 seq;u64 tgid_start;" },
		{ "ummunotify_unregister", "u64 ctx_id;u64 cookie;u64 start;u64 end;u32 regions;u32 tgid;u32 queued;u64 seq;u64 tgid_start;" },
		{ "ummunotify_release", "u64 ctx_id;u32 tgid;u32 regions;u64 tgid_start;" },
	};

	for (unsigned int i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char path[256], buf[4096], got[1024] = "";
		const char *s;
		int fd;
		ssize_t n;

		snprintf(path, sizeof(path), TRACEFS "/events/ummunotify/%s/format",
			 want[i][0]);
		fd = open(path, O_RDONLY);
		ASSERT_TRUE(fd >= 0);
		n = read(fd, buf, sizeof(buf) - 1);
		ASSERT_GT(n, 0);
		buf[n] = 0;
		close(fd);
		/* the fields after the common ones, in order */
		s = strstr(buf, "\n\n");
		ASSERT_TRUE(s);
		while ((s = strstr(s, "field:"))) {
			char decl[128];

			s += 6;
			if (sscanf(s, "%127[^;];", decl) == 1) {
				strcat(got, decl);
				strcat(got, ";");
			}
		}
		if (strcmp(got, want[i][1]))
			KTEST_FAIL_("%s fields: %s, want %s", want[i][0], got,
				    want[i][1]);
	}
}

TEST(tracepoints_fire_with_right_fields)
{
	int fd = un_open_nb(), fd2, fd3;
	char *p = map_pages(4);
	struct ummunotify_event ev[8];
	struct tp_notify n;
	struct tp_region r;
	struct tp_read rd;
	struct tp_release rel;
	unsigned long long ctx, ctx2, seq;
	char *t;
	pid_t pid;
	int soft_dirty;

	trace_on();
	ASSERT_OK(un_reg(fd, U(p), U(p + 3 * pg()), 501));
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 2 * pg()), 502));
	/* unmap: two hits, two new reports, generation 1 */
	ASSERT_OK(munmap(p + pg(), pg()));
	/* clear (madvise DONTNEED): one hit, merged */
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 8), 3);
	/* protection of a VMA (mprotect): one hit, new report */
	ASSERT_OK(mprotect(p + 2 * pg(), pg(), PROT_READ));
	/* a miss is traced too */
	ASSERT_OK(madvise(p + 3 * pg(), pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 1), 1);
	/* soft-dirty clearing invalidates the whole mm */
	soft_dirty = open("/proc/self/clear_refs", O_WRONLY);
	if (soft_dirty >= 0) {
		if (write(soft_dirty, "4", 1) != 1)
			soft_dirty = -1;	/* no CONFIG_MEM_SOFT_DIRTY */
		else
			close(soft_dirty);
	}
	/* fork write-protects the private pages: protection of pages */
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	ASSERT_OK(un_unreg(fd, 502));
	ASSERT_OK(un_unreg(fd, 501));
	fd2 = un_open();
	ASSERT_OK(un_reg(fd2, 1, 2, 9));
	ASSERT_OK(un_reg(fd2, 3, 4, 10));
	/* release: at the last close of the context's file, not before */
	fd3 = dup(fd);
	ASSERT_OK(fd3);
	close(fd);
	tracefs_write("trace_marker", "ummunotify-test: first close");
	close(fd3);
	close(fd2);
	trace_off();
	t = trace_snapshot();

	ASSERT_OK(find_region(t, "ummunotify_register", 501, &r));
	ctx = r.ctx;
	ASSERT_EQ(r.start, U(p));
	ASSERT_EQ(r.end, U(p + 3 * pg()));
	ASSERT_EQ(r.regions, 1);
	ASSERT_EQ(r.tgid, getpid());
	ASSERT_EQ(r.queued, 0);
	ASSERT_GT(r.seq, 0);
	/* the owner's start time: a reused tgid is another process */
	ASSERT_TRUE(ktest_is_start_of(r.tgid_start, getpid()));
	ASSERT_FALSE(ktest_is_start_of(r.tgid_start, 1));
	seq = r.seq;
	ASSERT_OK(find_region(t, "ummunotify_register", 502, &r));
	ASSERT_EQ(r.ctx, ctx);
	ASSERT_EQ(r.start, U(p + pg()));
	ASSERT_EQ(r.end, U(p + 2 * pg()));
	ASSERT_EQ(r.regions, 2);
	ASSERT_EQ(r.tgid, getpid());
	ASSERT_EQ(r.queued, 0);
	ASSERT_GT(r.seq, seq);
	seq = r.seq;

	ASSERT_OK(find_notify(t, U(p + pg()), U(p + 2 * pg()), 0, &n));
	ASSERT_EQ(n.ctx, ctx);
	ASSERT_EQ(n.tgid, getpid());
	ASSERT_EQ(n.tgid_start, r.tgid_start);
	ASSERT_EQ(n.reason, R_UNMAP);
	ASSERT_EQ(n.hits, 2);
	ASSERT_EQ(n.queued, 2);
	ASSERT_EQ(n.gen, 1);

	ASSERT_OK(find_notify(t, U(p), U(p + pg()), 0, &n));
	ASSERT_EQ(n.reason, R_CLEAR);
	ASSERT_EQ(n.hits, 1);
	ASSERT_EQ(n.queued, 0);
	ASSERT_EQ(n.gen, 2);

	ASSERT_OK(find_read(t, 0, &rd));
	ASSERT_EQ(rd.ctx, ctx);
	ASSERT_EQ(rd.events, 3);
	ASSERT_EQ(rd.queued, 0);
	ASSERT_EQ(rd.tgid, getpid());
	ASSERT_EQ(rd.tgid_start, n.tgid_start);
	ASSERT_EQ(rd.regions, 2);
	ASSERT_GT(rd.seq, seq);
	seq = rd.seq;

	ASSERT_OK(find_notify(t, U(p + 2 * pg()), U(p + 3 * pg()), 0, &n));
	ASSERT_EQ(n.reason, R_PROT_VMA);
	ASSERT_EQ(n.hits, 1);
	ASSERT_EQ(n.queued, 1);
	ASSERT_EQ(n.gen, 3);

	ASSERT_OK(find_notify(t, U(p + 3 * pg()), U(p + 4 * pg()), 0, &n));
	ASSERT_EQ(n.reason, R_CLEAR);
	ASSERT_EQ(n.hits, 0);
	ASSERT_EQ(n.queued, 0);
	ASSERT_EQ(n.gen, 3);

	/* a read of one event out of two (INVAL; LAST still pending) */
	ASSERT_OK(find_read(t, 1, &rd));
	ASSERT_EQ(rd.events, 1);
	ASSERT_EQ(rd.queued, 0);
	ASSERT_EQ(rd.regions, 2);
	ASSERT_GT(rd.seq, seq);
	seq = rd.seq;

	if (soft_dirty >= 0) {
		ASSERT_OK(find_notify(t, 0, ~0ULL, 0, &n));
		ASSERT_EQ(n.reason, R_SOFT_DIRTY);
		ASSERT_EQ(n.hits, 2);	/* both registrations */
		ASSERT_EQ(n.gen, 4);
	} else {
		printf("# no /proc/self/clear_refs: soft-dirty not checked\n");
	}

	/* fork: the read-only page p+2pg is its own VMA (mprotect split) */
	ASSERT_OK(find_notify(t, U(p + 2 * pg()), U(p + 3 * pg()), 1, &n));
	ASSERT_EQ(n.reason, R_PROT_PAGE);
	ASSERT_EQ(n.hits, 1);

	/*
	 * Unregistering 502 drops its queued report (if the soft-dirty or
	 * fork invalidations queued one); once both are gone nothing is.
	 */
	ASSERT_OK(find_region(t, "ummunotify_unregister", 502, &r));
	ASSERT_EQ(r.ctx, ctx);
	ASSERT_EQ(r.start, U(p + pg()));
	ASSERT_EQ(r.end, U(p + 2 * pg()));
	ASSERT_EQ(r.regions, 1);
	ASSERT_EQ(r.tgid, getpid());
	ASSERT_EQ(r.tgid_start, n.tgid_start);
	ASSERT_LE(r.queued, 1);
	ASSERT_GT(r.seq, seq);
	seq = r.seq;
	ASSERT_OK(find_region(t, "ummunotify_unregister", 501, &r));
	ASSERT_EQ(r.regions, 0);
	ASSERT_EQ(r.queued, 0);
	ASSERT_GT(r.seq, seq);

	/* another context gets another id and its own numbering */
	ASSERT_OK(find_region(t, "ummunotify_register", 9, &r));
	ASSERT_NE(r.ctx, ctx);
	ASSERT_EQ(r.regions, 1);
	ASSERT_EQ(r.seq, 1);
	ctx2 = r.ctx;

	/* one release per context, after its last close, with what it held */
	ASSERT_EQ(count_release(t, ctx, &rel), 1);
	ASSERT_EQ(rel.tgid, getpid());
	ASSERT_EQ(rel.regions, 0);
	ASSERT_EQ(rel.tgid_start, n.tgid_start);
	ASSERT_EQ(count_release(t, ctx2, &rel), 1);
	ASSERT_EQ(rel.regions, 2);
	{
		char key[64];

		snprintf(key, sizeof(key), "ummunotify_release: ctx=%llu ", ctx);
		ASSERT_TRUE(strstr(t, "ummunotify-test: first close"));
		ASSERT_TRUE(strstr(t, key) >
			    strstr(t, "ummunotify-test: first close"));
	}
	free(t);
}

/*
 * The gauges under concurrency: threads register and unregister on one
 * context at once.  Their events reach the trace in any order, but ordered
 * by seq they must be the context's history: seq numbers distinct, and
 * every register one more registration than the event before it, every
 * unregister one fewer, from 1 back to 0.
 */
struct gauge_thread {
	int fd, id;
};

#define GAUGE_THREADS	4
#define GAUGE_OPS	200

static void *gauge_fn(void *arg)
{
	struct gauge_thread *g = arg;
	uint64_t base = (uint64_t)g->id << 32;

	for (int i = 0; i < GAUGE_OPS; i++) {
		if (un_reg(g->fd, 0x1000, 0x2000, base + i))
			return (void *)1;
		if (i % 3 == 2) {
			for (int j = i - 2; j <= i; j++)
				if (un_unreg(g->fd, base + j))
					return (void *)1;
		}
	}
	for (int j = GAUGE_OPS - GAUGE_OPS % 3; j < GAUGE_OPS; j++)
		if (un_unreg(g->fd, base + j))
			return (void *)1;
	return NULL;
}

struct gauge_ev {
	unsigned long long seq;
	unsigned int regions, queued;
	int delta;
};

static int gauge_cmp(const void *a, const void *b)
{
	const struct gauge_ev *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

TEST(tracepoint_gauges_are_ordered_by_seq_under_concurrency)
{
	enum { N = GAUGE_THREADS * GAUGE_OPS * 2 };
	struct gauge_thread g[GAUGE_THREADS];
	pthread_t th[GAUGE_THREADS];
	struct gauge_ev *ev = calloc(N + 1, sizeof(*ev));
	unsigned long long ctx = 0;
	int fd = un_open(), n = 0, out_of_order = 0;
	const char *s;
	char *t;
	void *ret;

	ASSERT_TRUE(ev);
	trace_on();
	/* the first event names the context */
	ASSERT_OK(un_reg(fd, 0x1000, 0x2000, ~0ULL));
	ASSERT_OK(un_unreg(fd, ~0ULL));
	for (int i = 0; i < GAUGE_THREADS; i++) {
		g[i] = (struct gauge_thread){ .fd = fd, .id = i + 1 };
		ASSERT_EQ(pthread_create(&th[i], NULL, gauge_fn, &g[i]), 0);
	}
	for (int i = 0; i < GAUGE_THREADS; i++) {
		ASSERT_EQ(pthread_join(th[i], &ret), 0);
		ASSERT_TRUE(ret == NULL);
	}
	trace_off();
	t = trace_snapshot();

	for (s = t; (s = strstr(s, "ummunotify_")); ) {
		struct tp_region r;
		int reg = !strncmp(s, "ummunotify_register: ", 21);

		if (!reg && strncmp(s, "ummunotify_unregister: ", 23)) {
			s++;
			continue;
		}
		s = strchr(s, ' ') + 1;
		ASSERT_EQ(sscanf(s, "ctx=%llu cookie=%llu start=0x%llx end=0x%llx regions=%u tgid=%u queued=%u seq=%llu",
				 &r.ctx, &r.cookie, &r.start, &r.end,
				 &r.regions, &r.tgid, &r.queued, &r.seq), 8);
		if (!ctx)
			ctx = r.ctx;
		if (r.ctx != ctx)
			continue;
		ASSERT_LT(n, N + 2);
		if (n >= 2) {
			ev[n - 2] = (struct gauge_ev){ r.seq, r.regions,
						       r.queued, reg ? 1 : -1 };
			if (n > 2 && r.seq < ev[n - 3].seq)
				out_of_order++;
		}
		n++;
	}
	free(t);
	ASSERT_EQ(n, N + 2);
	n -= 2;
	printf("# %d events, %d reached the trace out of seq order\n", n,
	       out_of_order);
	qsort(ev, n, sizeof(*ev), gauge_cmp);
	for (int i = 0, held = 0; i < n; i++) {
		if (i)
			ASSERT_GT(ev[i].seq, ev[i - 1].seq);
		held += ev[i].delta;
		if ((int)ev[i].regions != held)
			KTEST_FAIL_("event %d (seq %llu): regions %u, want %d",
				    i, ev[i].seq, ev[i].regions, held);
		ASSERT_EQ(ev[i].queued, 0);
	}
	ASSERT_EQ(ev[n - 1].regions, 0);
	free(ev);
}

KTEST_MAIN()

/* ---- in-flight invalidations, LAST accounting, bounds (issue 9) ------ */

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ASSERT_OK(sched_setaffinity(0, sizeof(set), &set));
}

struct zapper {
	char *p;
	atomic_int go, started, zapped, stop;
};

static void *zap_fn(void *arg)
{
	struct zapper *z = arg;
	int it;

	pin_to_cpu(0);
	while (!atomic_load(&z->stop)) {
		it = atomic_load(&z->go);
		if (it == atomic_load(&z->zapped))
			continue;
		atomic_store(&z->started, it);
		madvise(z->p, pg(), MADV_DONTNEED);
		atomic_store(&z->zapped, it);
	}
	return NULL;
}

/*
 * abi.md 5: an invalidation overlapping a registration is reported.  A
 * REGISTER that lands between another thread's invalidate_range_start and
 * its page-table change must be reported too: the caller may already have
 * read (or pinned) the page that is about to go.  A second context with
 * many registrations over the page widens that window (its callback runs
 * after ours: the newest notifier is called first).  Whenever the page read
 * after REGISTER is still the old one, the zap came after REGISTER, so an
 * INVAL of that cookie must arrive.
 */
TEST_TIMEOUT(register_during_invalidation_is_reported, 300)
{
	enum { SLOW_REGS = 100000 };
	int slow = un_open_nb(), fd = un_open_nb();
	struct zapper z = { .p = map_pages(1) };
	int candidates = 0, missed = 0, it;
	struct ummunotify_event ev[8];
	double t0;
	pthread_t th;

	for (int i = 0; i < SLOW_REGS; i++)
		ASSERT_OK(un_reg(slow, U(z.p), U(z.p + pg()), i));
	pin_to_cpu(1);
	ASSERT_EQ(pthread_create(&th, NULL, zap_fn, &z), 0);
	t0 = (double)time(NULL);
	for (it = 1; it <= 400 && time(NULL) - t0 < 30; it++) {
		volatile char v;
		int n, seen = 0;

		z.p[0] = 1;
		atomic_store(&z.go, it);
		while (atomic_load(&z.started) != it)
			;
		ASSERT_OK(un_reg(fd, U(z.p), U(z.p + pg()), it));
		v = z.p[0];
		while (atomic_load(&z.zapped) != it)
			;
		while ((n = read_evs(fd, ev, 8)) > 0)
			for (int i = 0; i < n; i++)
				if (ev[i].type == UMMUNOTIFY_EVENT_TYPE_INVAL &&
				    ev[i].user_cookie_counter == (uint64_t)it)
					seen = 1;
		if (v == 1) {
			candidates++;
			missed += !seen;
		}
		ASSERT_OK(un_unreg(fd, it));
		while (read_evs(fd, ev, 8) > 0)
			;
	}
	atomic_store(&z.stop, 1);
	pthread_join(th, NULL);
	printf("# %d rounds, %d read the old page after REGISTER, %d of those got no INVAL\n",
	       it - 1, candidates, missed);
	ASSERT_GT(candidates, 0);
	ASSERT_EQ(missed, 0);
}

/* A one-page /dev/umem mapping nobody serves: copies into it block. */
static char *unserved_buffer(int *ufd)
{
	struct umem_init init = { .size = pg() };
	char *buf;

	*ufd = open("/dev/umem", O_RDWR | O_CLOEXEC);
	ASSERT_TRUE(*ufd >= 0);
	ASSERT_OK(ioctl(*ufd, UMEM_INIT, &init));
	close(init.shmem_fd);
	buf = mmap(NULL, pg(), PROT_READ | PROT_WRITE, MAP_PRIVATE, *ufd, 0);
	ASSERT_TRUE(buf != MAP_FAILED);
	return buf;
}

/* Wait until a thread is blocked on the unserved buffer. */
static void wait_blocked_on(int ufd)
{
	struct pollfd p = { .fd = ufd, .events = POLLIN };

	ASSERT_EQ(poll(&p, 1, 10000), 1);
}

struct evreader {
	int fd;
	void *buf;
	size_t len;
	ssize_t ret;
	int err;
};

static void *evreader_fn(void *arg)
{
	struct evreader *r = arg;

	r->ret = read(r->fd, r->buf, r->len);
	r->err = errno;
	return NULL;
}

/*
 * abi.md 6: once INVALs were returned, a LAST is owed.  Reader A dequeues
 * X and blocks copying it out (its buffer is an unserved umem page); B
 * reads Y; X is unregistered; then A's copy fails (the umem fd is closed:
 * SIGBUS).  Y was returned, so the next read must give LAST: A's failure
 * must not take back the LAST that B's INVAL made owed.
 */
TEST(last_owed_after_a_concurrent_reader_fails_its_copy)
{
	int ufd, fd = un_open_nb();
	char *p = map_pages(2);
	struct evreader a = { .fd = fd, .len = EVSZ };
	struct unreg_arg u = { .fd = fd };
	struct ummunotify_event ev[4];
	pthread_t ta, tu;

	a.buf = unserved_buffer(&ufd);
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 7));
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 2 * pg()), 8));
	ASSERT_OK(madvise(p, 2 * pg(), MADV_DONTNEED));
	ASSERT_EQ(pthread_create(&ta, NULL, evreader_fn, &a), 0);
	wait_blocked_on(ufd);			/* A holds report 7 */
	ASSERT_EQ(read_evs(fd, ev, 1), 1);	/* B: report 8 */
	expect_inval(&ev[0], 8, 1, U(p + pg()), U(p + 2 * pg()));
	ASSERT_EQ(pthread_create(&tu, NULL, unreg_fn, &u), 0);
	usleep(200000);
	ASSERT_EQ(atomic_load(&u.done), 0);	/* waits for A's copy */
	close(ufd);				/* A's copy faults */
	pthread_join(ta, NULL);
	pthread_join(tu, NULL);
	ASSERT_EQ(a.ret, -1);
	ASSERT_EQ(a.err, EFAULT);
	ASSERT_EQ(u.ret, 0);
	ASSERT_EQ(read_evs(fd, ev, 4), 1);
	expect_last(&ev[0], 1);
	expect_nothing(fd);
}

/*
 * The reverse: while A is copying both reports out (and will fail), B
 * finds the queue empty.  Nothing was returned yet, so B gets nothing (no
 * LAST without an INVAL); after A's failure the reports come again, then
 * LAST.
 */
TEST(no_last_for_reports_a_concurrent_reader_fails_to_copy)
{
	int ufd, fd = un_open_nb();
	char *p = map_pages(2);
	struct evreader a = { .fd = fd, .len = 2 * EVSZ };
	struct ummunotify_event ev[4];
	pthread_t ta;

	a.buf = unserved_buffer(&ufd);
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 7));
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 2 * pg()), 8));
	ASSERT_OK(madvise(p, 2 * pg(), MADV_DONTNEED));
	ASSERT_EQ(pthread_create(&ta, NULL, evreader_fn, &a), 0);
	wait_blocked_on(ufd);			/* A holds 7 and 8 */
	expect_nothing(fd);			/* B */
	close(ufd);
	pthread_join(ta, NULL);
	ASSERT_EQ(a.ret, -1);
	ASSERT_EQ(a.err, EFAULT);
	ASSERT_EQ(read_evs(fd, ev, 4), 3);
	expect_inval(&ev[0], 7, 1, U(p), U(p + pg()));
	expect_inval(&ev[1], 8, 1, U(p + pg()), U(p + 2 * pg()));
	expect_last(&ev[2], 1);
}

/*
 * The orphan path: UNREGISTER of a cookie whose report a reader is
 * copying waits; killed while waiting, it leaves the registration to that
 * reader, which frees it when its copy fails.
 */
TEST(unregister_killed_during_a_failing_copy_leaves_it_to_the_reader)
{
	int ufd, fd = un_open_nb();
	char *p = map_pages(1);
	struct evreader a = { .fd = fd, .len = EVSZ };
	struct ummunotify_event ev[4];
	int status;
	pthread_t ta;
	pid_t pid;

	a.buf = unserved_buffer(&ufd);
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 7));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(pthread_create(&ta, NULL, evreader_fn, &a), 0);
	wait_blocked_on(ufd);
	pid = fork();
	ASSERT_OK(pid);
	if (pid == 0)
		_exit(un_unreg(fd, 7) ? errno : 0);
	usleep(300000);
	ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0);	/* still waiting */
	ASSERT_OK(kill(pid, SIGKILL));
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	close(ufd);
	pthread_join(ta, NULL);
	ASSERT_EQ(a.err, EFAULT);
	/* Gone: unknown, never reported again. */
	ASSERT_ERRNO(un_unreg(fd, 7), EINVAL);
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	expect_nothing(fd);
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 7));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(read_evs(fd, ev, 4), 2);
	expect_inval(&ev[0], 7, 1, U(p), U(p + pg()));
}

/* The counter page faults back in after MADV_DONTNEED zapped it. */
TEST(counter_page_reads_again_after_madv_dontneed)
{
	int fd = un_open();
	char *p = map_pages(1);
	volatile uint64_t *c = map_counter(fd);

	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_OK(madvise((void *)c, pg(), MADV_DONTNEED));
	ASSERT_EQ(*c, 1);
	p[0] = 1;
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	ASSERT_EQ(*c, 2);
}

/* docs/ummunotify.md: any ioctl or read() ends the EXCHANGE window. */
TEST(exchange_features_after_unknown_ioctl_or_short_read_einval)
{
	int a = un_open(), b = un_open();
	uint32_t features = 0;
	char small[8];

	ASSERT_ERRNO(ioctl(a, _IO('U', 99)), ENOTTY);
	ASSERT_ERRNO(ioctl(a, UMMUNOTIFY_EXCHANGE_FEATURES, &features), EINVAL);
	ASSERT_ERRNO(read(b, small, sizeof(small)), EINVAL);
	ASSERT_ERRNO(ioctl(b, UMMUNOTIFY_EXCHANGE_FEATURES, &features), EINVAL);
}

#define MAXCTX_PARAM "/sys/module/ummunotify/parameters/max_contexts_per_mm"

/* Contexts per mm are capped (EMFILE); another mm has its own count. */
TEST(contexts_per_mm_capped_emfile)
{
	unsigned int max = 0;
	int fds[1024], status, n = 0;
	FILE *f = fopen(MAXCTX_PARAM, "r");
	pid_t pid;

	ASSERT_TRUE(f != NULL);
	ASSERT_EQ(fscanf(f, "%u", &max), 1);
	fclose(f);
	ASSERT_GT(max, 0);
	ASSERT_LT(max, 1024);
	for (; n < (int)max; n++) {
		fds[n] = open(DEV, O_RDONLY | O_CLOEXEC);
		ASSERT_TRUE(fds[n] >= 0);
	}
	ASSERT_ERRNO(open(DEV, O_RDONLY | O_CLOEXEC), EMFILE);
	pid = fork();
	ASSERT_OK(pid);
	if (pid == 0)
		_exit(open(DEV, O_RDONLY) >= 0 ? 0 : 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(status, 0);
	close(fds[--n]);
	fds[n] = open(DEV, O_RDONLY | O_CLOEXEC);
	ASSERT_TRUE(fds[n] >= 0);
}

struct rt_ticker {
	atomic_int stop;
	atomic_int ticks;
};

static void *rt_tick_fn(void *arg)
{
	struct rt_ticker *t = arg;
	struct sched_param sp = { .sched_priority = 10 };
	struct timespec ms = { .tv_nsec = 1000000 };

	pin_to_cpu(0);
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp))
		return NULL;
	while (!atomic_load(&t->stop)) {
		nanosleep(&ms, NULL);
		atomic_fetch_add(&t->ticks, 1);
	}
	return NULL;
}

/*
 * An invalidation over many registrations must not hold the CPU for the
 * whole walk: it reschedules every few hundred.  A real-time thread on the
 * same CPU wakes every millisecond; during a walk of 200,000 registrations
 * the invalidating thread must be switched out for it (involuntary
 * context switches) instead of running the walk with preemption off.
 */
TEST_TIMEOUT(long_invalidation_walk_reschedules, 300)
{
	enum { REGS = 200000 };
	int fd = un_open_nb();
	char *p = map_pages(1);
	struct rt_ticker t = { 0 };
	struct rusage r0, r1;
	struct timespec a, b;
	double walk_ms;
	pthread_t th;
	long nivcsw;

	for (int i = 0; i < REGS; i++)
		ASSERT_OK(un_reg(fd, U(p), U(p + pg()), i));
	pin_to_cpu(0);
	ASSERT_EQ(pthread_create(&th, NULL, rt_tick_fn, &t), 0);
	while (atomic_load(&t.ticks) < 3)
		usleep(1000);
	getrusage(RUSAGE_THREAD, &r0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ASSERT_OK(madvise(p, pg(), MADV_DONTNEED));
	clock_gettime(CLOCK_MONOTONIC, &b);
	getrusage(RUSAGE_THREAD, &r1);
	atomic_store(&t.stop, 1);
	pthread_join(th, NULL);
	walk_ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	nivcsw = r1.ru_nivcsw - r0.ru_nivcsw;
	printf("# walk of %d registrations: %.1f ms, %ld involuntary switches\n",
	       REGS, walk_ms, nivcsw);
	/* Long enough for the 1 ms ticker to want the CPU many times. */
	ASSERT_GT(walk_ms, 20);
	ASSERT_GE(nivcsw, 3);
}

/* ---- invalidations from the kernel's own page movers ---------------- */

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define HPAGE (2UL << 20)

/* Wait up to @ms for an INVAL of @cookie; returns 1 if one came. */
static int wait_inval(int fd, uint64_t cookie, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct ummunotify_event ev[16];
	int n;

	for (int waited = 0; waited <= ms; waited += 100) {
		if (poll(&p, 1, 100) != 1)
			continue;
		while ((n = read_evs(fd, ev, 16)) > 0)
			for (int i = 0; i < n; i++)
				if (ev[i].type == UMMUNOTIFY_EVENT_TYPE_INVAL &&
				    ev[i].user_cookie_counter == cookie)
					return 1;
	}
	return 0;
}

/* MADV_COLLAPSE replaces 512 small pages by one huge page: reported. */
TEST(thp_collapse_reports)
{
	int fd = un_open_nb();
	char *base = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	ASSERT_TRUE(base != MAP_FAILED);
	p = (char *)(uintptr_t)((U(base) + HPAGE - 1) & ~(HPAGE - 1));
	/* Small pages first, whatever the THP default is. */
	ASSERT_OK(madvise(p, HPAGE, MADV_NOHUGEPAGE));
	for (size_t off = 0; off < HPAGE; off += pg())
		p[off] = 1;
	ASSERT_OK(madvise(p, HPAGE, MADV_HUGEPAGE));
	ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 2 * pg()), 1));
	ASSERT_OK(madvise(p, HPAGE, MADV_COLLAPSE));
	ASSERT_TRUE(wait_inval(fd, 1, 1000));
	ASSERT_EQ(p[pg()], 1);
}

static void write_sysfs(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(write(fd, val, strlen(val)), (ssize_t)strlen(val));
	close(fd);
}

/* KSM merging two identical pages write-protects them: reported. */
TEST_TIMEOUT(ksm_merge_reports, 120)
{
	int fd = un_open_nb(), merged;
	char *p = map_pages(2);

	memset(p, 0x5a, 2 * pg());
	ASSERT_OK(madvise(p, 2 * pg(), MADV_MERGEABLE));
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1));
	write_sysfs("/sys/kernel/mm/ksm/pages_to_scan", "1000");
	write_sysfs("/sys/kernel/mm/ksm/sleep_millisecs", "10");
	write_sysfs("/sys/kernel/mm/ksm/run", "1");
	merged = wait_inval(fd, 1, 60000);
	write_sysfs("/sys/kernel/mm/ksm/run", "2");	/* unmerge, stop */
	ASSERT_TRUE(merged);
	ASSERT_EQ(p[0], 0x5a);
}

/*
 * A walk that breaks its lock (every 256 hits) resumes at the next
 * registration in tree order (start, then registration order), which need
 * not overlap the invalidation: 256 registrations over 256 pages start at
 * p, then S covers only p's first page, then 44 more start at p's second
 * page.  Invalidating page 100 hits the 300, never S, which comes right
 * after the lock break.
 */
TEST(walk_resumed_after_a_lock_break_reports_only_overlaps)
{
	int fd = un_open_nb(), n, seen_s = 0, hits = 0;
	char *p = map_pages(256);
	struct ummunotify_event ev[64];

	for (int i = 0; i < 256; i++)
		ASSERT_OK(un_reg(fd, U(p), U(p + 256 * pg()), i));
	ASSERT_OK(un_reg(fd, U(p), U(p + pg()), 1000));
	for (int i = 256; i < 300; i++)
		ASSERT_OK(un_reg(fd, U(p + pg()), U(p + 256 * pg()), i));
	ASSERT_OK(madvise(p + 100 * pg(), pg(), MADV_DONTNEED));
	while ((n = read_evs(fd, ev, 64)) > 0)
		for (int i = 0; i < n; i++) {
			if (ev[i].type != UMMUNOTIFY_EVENT_TYPE_INVAL)
				continue;
			if (ev[i].user_cookie_counter == 1000)
				seen_s = 1;
			else
				hits++;
			ASSERT_LT(ev[i].hint_start, ev[i].hint_end);
		}
	ASSERT_EQ(hits, 300);
	ASSERT_FALSE(seen_s);
}
