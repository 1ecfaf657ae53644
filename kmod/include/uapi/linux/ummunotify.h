/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ummunotify: MMU invalidations of watched address ranges, relayed to user
 * space through /dev/ummunotify.
 *
 * The layout and numbers below are a fixed ABI (docs: abi.md).
 */
#ifndef _UAPI_LINUX_UMMUNOTIFY_H
#define _UAPI_LINUX_UMMUNOTIFY_H

#include <linux/types.h>
#include <linux/ioctl.h>

/*
 * Argument of UMMUNOTIFY_REGISTER_REGION: watch [start, end).  user_cookie
 * is the caller's handle for the range and must be unique per fd; flags
 * and reserved must be 0.
 */
struct ummunotify_register_ioctl {
	__u64	start;		/* inclusive */
	__u64	end;		/* exclusive */
	__u64	user_cookie;
	__u32	flags;
	__u32	reserved;
};

/*
 * What read() returns.  For UMMUNOTIFY_EVENT_TYPE_INVAL,
 * user_cookie_counter is the cookie of the invalidated registration and,
 * when UMMUNOTIFY_EVENT_FLAG_HINT is set, [hint_start, hint_end) is the
 * invalidated span; without HINT it is the whole registered range.  For
 * UMMUNOTIFY_EVENT_TYPE_LAST, user_cookie_counter is the generation
 * counter at the time of the read.
 */
struct ummunotify_event {
	__u32	type;
	__u32	flags;
	__u64	hint_start;
	__u64	hint_end;
	__u64	user_cookie_counter;
};

#define UMMUNOTIFY_MAGIC		'U'

#define UMMUNOTIFY_EXCHANGE_FEATURES	_IOWR(UMMUNOTIFY_MAGIC, 1, __u32)
#define UMMUNOTIFY_REGISTER_REGION	_IOW(UMMUNOTIFY_MAGIC, 2, \
					     struct ummunotify_register_ioctl)
#define UMMUNOTIFY_UNREGISTER_REGION	_IOW(UMMUNOTIFY_MAGIC, 3, __u64)

#define UMMUNOTIFY_EVENT_TYPE_INVAL	0
#define UMMUNOTIFY_EVENT_TYPE_LAST	1

#define UMMUNOTIFY_EVENT_FLAG_HINT	(1 << 0)

#endif /* _UAPI_LINUX_UMMUNOTIFY_H */
