/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * /dev/umem: memory whose page faults are served by another process.
 *
 * open("/dev/umem", O_RDWR), UMEM_INIT{size} sets up an area and returns the
 * fd of its backing memory file in shmem_fd.  The client mmap()s the umem fd
 * (MAP_PRIVATE, offset 0).  read() on the umem fd returns the page offsets
 * (__u64 page index from the start of the area) that faulted and wait for
 * the server; the server fills those pages in the memory file and write()s
 * the offsets back to resume the faulting threads.
 */
#ifndef _UAPI_LINUX_UMEM_H
#define _UAPI_LINUX_UMEM_H

#include <linux/types.h>
#include <linux/ioctl.h>

struct umem_init {
	__u64 size;		/* in: bytes; out: rounded up to pages */
	__s32 shmem_fd;		/* out: fd of the backing memory file */
	__s32 padding;
};

#define UMEMIO			0x1E
#define UMEM_INIT		_IOWR(UMEMIO, 0x0, struct umem_init)
#define UMEM_MAKE_VMA_ANONYMOUS	_IO(UMEMIO, 0x1)

#endif /* _UAPI_LINUX_UMEM_H */
