// SPDX-License-Identifier: GPL-2.0
/*
 * A client of /dev/ummunotify written only from the ABI page (abi.md),
 * the way a communication library would use it: nothing here shares code
 * with ummunotify_test.c.  It checks the page's worked example and the
 * usage pattern it implies (features, counter, reads to LAST).
 *
 *   cc -static -I kmod/include/uapi ummunotify_abi_example.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <linux/ummunotify.h>

#include "ktest.h"

TEST(abi_worked_example)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/ummunotify", O_RDONLY);
	struct ummunotify_register_ioctl r;
	struct ummunotify_event ev[8];
	volatile __u64 *counter;
	__u64 cookie = 123;
	char *pages;
	ssize_t n;

	ASSERT_TRUE(fd >= 0);
	counter = mmap(NULL, 8, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_TRUE(counter != MAP_FAILED);

	/* map 3 populated pages, register them with cookie 123 */
	pages = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_TRUE(pages != MAP_FAILED);
	memset(pages, 1, 3 * page);
	memset(&r, 0, sizeof(r));
	r.start = (uintptr_t)pages;
	r.end = (uintptr_t)pages + 3 * page;
	r.user_cookie = 123;
	ASSERT_EQ(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r), 0);

	/* munmap the middle page */
	ASSERT_EQ(munmap(pages + page, page), 0);

	/* the counter reads 1 */
	ASSERT_EQ(*counter, 1);

	/* a read returns INVAL{123, HINT, [middle)} followed by LAST{1} */
	n = read(fd, ev, sizeof(ev));
	ASSERT_EQ(n, 2 * (ssize_t)sizeof(struct ummunotify_event));
	ASSERT_EQ(ev[0].type, UMMUNOTIFY_EVENT_TYPE_INVAL);
	ASSERT_EQ(ev[0].flags & UMMUNOTIFY_EVENT_FLAG_HINT,
		  UMMUNOTIFY_EVENT_FLAG_HINT);
	ASSERT_EQ(ev[0].user_cookie_counter, 123);
	ASSERT_EQ(ev[0].hint_start, (uintptr_t)pages + page);
	ASSERT_EQ(ev[0].hint_end, (uintptr_t)pages + 2 * page);
	ASSERT_EQ(ev[1].type, UMMUNOTIFY_EVENT_TYPE_LAST);
	ASSERT_EQ(ev[1].user_cookie_counter, 1);

	/* unregister 123 and munmap the first page: the counter still 1 */
	ASSERT_EQ(ioctl(fd, UMMUNOTIFY_UNREGISTER_REGION, &cookie), 0);
	ASSERT_EQ(munmap(pages, page), 0);
	ASSERT_EQ(*counter, 1);
	ASSERT_EQ(close(fd), 0);
}

/*
 * The pattern of a registration cache: exchange features first, keep
 * ranges registered, and when the counter moved, read one event at a time
 * until LAST, dropping the cached entries named by INVAL events.
 */
TEST(abi_registration_cache_pattern)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/ummunotify", O_RDONLY | O_NONBLOCK);
	__u32 features = ~0U;
	volatile __u64 *counter;
	__u64 seen = 0;
	char *buf[4];
	int cached[4], ninval = 0;
	struct ummunotify_event ev;

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &features), 0);
	ASSERT_EQ(features, 0);
	/* only as the first operation */
	ASSERT_ERRNO(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &features),
		     EINVAL);
	counter = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_TRUE(counter != MAP_FAILED);
	ASSERT_EQ(*counter, 0);

	for (int i = 0; i < 4; i++) {
		struct ummunotify_register_ioctl r = { 0 };

		buf[i] = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
			      -1, 0);
		ASSERT_TRUE(buf[i] != MAP_FAILED);
		r.start = (uintptr_t)buf[i];
		r.end = (uintptr_t)buf[i] + 2 * page;
		r.user_cookie = 1000 + i;
		ASSERT_EQ(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r), 0);
		cached[i] = 1;
	}
	/* nothing happened yet: nothing to read, not even LAST */
	ASSERT_EQ(*counter, seen);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);

	/* the application frees two buffers, one of them in two steps */
	ASSERT_EQ(madvise(buf[1], page, MADV_DONTNEED), 0);
	ASSERT_EQ(munmap(buf[1], 2 * page), 0);
	ASSERT_EQ(munmap(buf[3], page), 0);
	ASSERT_EQ(*counter, 3);

	for (;;) {
		ASSERT_EQ(read(fd, &ev, sizeof(ev)),
			  (ssize_t)sizeof(ev));
		if (ev.type == UMMUNOTIFY_EVENT_TYPE_LAST) {
			seen = ev.user_cookie_counter;
			break;
		}
		ASSERT_EQ(ev.type, UMMUNOTIFY_EVENT_TYPE_INVAL);
		ASSERT_TRUE(ev.user_cookie_counter >= 1000 &&
			    ev.user_cookie_counter < 1004);
		cached[ev.user_cookie_counter - 1000] = 0;
		ninval++;
		if (ev.user_cookie_counter == 1001) {
			/* two invalidations merged: the whole range */
			ASSERT_EQ(ev.flags & UMMUNOTIFY_EVENT_FLAG_HINT, 0);
			ASSERT_EQ(ev.hint_start, (uintptr_t)buf[1]);
			ASSERT_EQ(ev.hint_end, (uintptr_t)buf[1] + 2 * page);
		} else {
			ASSERT_EQ(ev.flags & UMMUNOTIFY_EVENT_FLAG_HINT,
				  UMMUNOTIFY_EVENT_FLAG_HINT);
			ASSERT_EQ(ev.hint_start, (uintptr_t)buf[3]);
			ASSERT_EQ(ev.hint_end, (uintptr_t)buf[3] + page);
		}
	}
	ASSERT_EQ(ninval, 2);
	ASSERT_EQ(seen, 3);
	ASSERT_TRUE(cached[0] && !cached[1] && cached[2] && !cached[3]);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
	ASSERT_EQ(close(fd), 0);
}

KTEST_MAIN()
