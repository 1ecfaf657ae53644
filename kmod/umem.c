// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/umem: memory whose page faults are served by another process
 *
 * The user ABI is docs/abi.md (kmod/include/uapi/linux/umem.h); the design,
 * in more words, is docs/umem.md; the tracepoints are docs/tracepoints.md.
 *
 * Objects
 *
 *   struct umem_area: one per open of /dev/umem.  After UMEM_INIT it has
 *   npages pages, a backing memory file (shmem, handed to user space as
 *   shmem_fd) and:
 *     pages    xarray  pgoff -> the offset's state:
 *                      NULL: never asked for, not served;
 *                      struct umem_req * tagged UMEM_REQ_TAG: a fault asked
 *                        for it, not served yet (one request per offset);
 *                      struct page *: served.  The area's own copy of the
 *                        page, copied out of the memory file when the
 *                        offset is written.  The fault handler maps this
 *                        page (read-only; a private write CoWs it into an
 *                        anonymous page), so the server may punch its copy
 *                        out of the memory file at any time after write().
 *     pending  list    the requests not yet handed to the server by
 *                      read(), oldest first.
 *   An offset goes NULL -> request -> page or NULL -> page, never back, so
 *   it is reported at most once while unserved and never after it was
 *   served.
 *
 * Lifetime (struct umem_area is refcounted by ->ref)
 *
 *   - the umem file (the fd of /dev/umem) holds one reference;
 *   - mmap() does not leave the umem file in the VMA: it installs a separate
 *     anon-inode file ("[umem]", holding one reference) as vm_file.  So the
 *     umem file's ->release really means "no fd is left: nobody can serve any
 *     more".  Then the area is marked released, every thread waiting for a
 *     page wakes and gets SIGBUS, and later faults on unserved pages get
 *     SIGBUS at once; served pages stay readable as long as the mapping.
 *   - a faulting thread that drops the fault lock to wait holds the mapping
 *     file (so the area and the module) for the wait: the VMA may go
 *     meanwhile.
 *   Every caller of umem_area_put() may sleep (process context, no
 *   spinlock held).
 *   Served pages are freed with the area (last reference), never earlier.
 *
 * Locking
 *
 *   area->lock (mutex) protects the requests, pending, npending, released,
 *   nr_vmas, mapped_mm, client_tgid, shmem and the UMEM_INIT claim
 *   (initing, ready), and
 *   serialises every change of area->pages.  The fault fast path reads
 *   area->pages without it: a served page is only removed when the area
 *   is freed, so an xa_load() (RCU inside) result that is a page stays
 *   valid while the caller holds a reference.
 *   area->lock is never held across copy_{to,from}_user(), a read of the
 *   memory file or a sleep for the server.
 *
 *   Order: mmap_lock / per-VMA lock  ->  area->lock  ->  xa_lock.
 *
 *   Waits: area->read_wq (read/poll: pending became non-empty) and
 *   area->fault_wq[hash(pgoff)] (faulters: the page was served or the area
 *   released).  Waiters re-check their condition locklessly (xa_load,
 *   READ_ONCE(released)); writers change the state under area->lock and wake
 *   afterwards, so no wake-up is lost.
 *
 * Fault path (umem_vm_fault), following the rules of handle_userfault():
 *   - served: map our page (vmf->page); no lock dropped, no wait;
 *   - unserved: queue a request once, wake the server, then
 *     FAULT_FLAG_RETRY_NOWAIT: return VM_FAULT_RETRY at once (lock held);
 *     FAULT_FLAG_ALLOW_RETRY: release the fault lock (mmap_lock, or the
 *       per-VMA lock on kernels that have it: release_fault_lock()), wait
 *       (see umem_wait_interruptible(): never interruptibly on the retry
 *       of a kernel-mode fault, which would spin with a signal pending),
 *       return VM_FAULT_RETRY; the core retries the fault, which maps the
 *       page;
 *     otherwise (GUP without retry: ptrace, /proc/pid/mem): SIGBUS at
 *       once, no request, as handle_userfault() does: sleeping on the
 *       server with the mmap_lock held would block every mmap_lock user
 *       of the mm behind a queued writer, the server's threads included.
 *   A fault that finds the request cap (max_requests) reached gets SIGBUS.
 *   On 6.8+ the core calls ->fault of a VMA without ->map_pages only under
 *   mmap_lock (vmf_can_call_fault()); the handler still releases whichever
 *   lock vmf->flags says it holds.
 *
 * Memory bounds: everything is charged to the memcg of the task that causes
 * it (__GFP_ACCOUNT, XA_FLAGS_ACCOUNT, SLAB_ACCOUNT).  Per area, fixed at
 * UMEM_INIT from the module parameters: at most max_served_pages served
 * pages (write() beyond: ENOSPC) and max_requests unserved requests (a fault
 * beyond: SIGBUS).  Served pages are not on an LRU (they cannot be
 * reclaimed) and count in nobody's RSS, hence the caps.  Nothing else grows
 * with user input: read() and write() work in bounded batches.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pagemap.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/wait.h>
#include <linux/xarray.h>

#include <linux/umem.h>

#define CREATE_TRACE_POINTS
#include "umem_trace.h"

/*
 * Largest area: 64 TiB, half of x86-64's 4-level user address space.  No
 * memory is allocated in proportion to the size up front; the cap only keeps
 * page offsets, file sizes and mappings far from any overflow.  A 32-bit
 * pgoff_t holds 2^32 pages: cap at 2^31 pages there.
 */
#ifdef CONFIG_64BIT
#define UMEM_MAX_SIZE		BIT_ULL(46)
#else
#define UMEM_MAX_SIZE		((u64)BIT(31) << PAGE_SHIFT)
#endif
static_assert((UMEM_MAX_SIZE >> PAGE_SHIFT) - 1 <= (u64)(pgoff_t)-1);

static unsigned long max_served_pages;
module_param(max_served_pages, ulong, 0644);
MODULE_PARM_DESC(max_served_pages,
		 "Served pages per area, read at UMEM_INIT (default 0: as many as the machine has RAM pages); write() beyond it fails with ENOSPC");

static unsigned int max_requests = 1U << 16;
module_param(max_requests, uint, 0644);
MODULE_PARM_DESC(max_requests,
		 "Unserved requested pages per area, read at UMEM_INIT (default 65536); a fault beyond it gets SIGBUS");

#define UMEM_WQ_BITS		6	/* 64 hashed fault wait queues per area */
#define UMEM_BATCH		32	/* offsets per read()/write() batch */

struct umem_req {
	struct list_head node;		/* on area->pending until read */
	pgoff_t pgoff;
	u64 queued_ns;			/* ktime_get_ns() when queued */
	u32 tgid;			/* of the fault that queued it */
	u64 tgid_start;			/* and its start time (tracing) */
};

struct umem_area {
	struct kref ref;
	u64 id;				/* for tracepoints and fdinfo */
	pgoff_t npages;			/* 0 until UMEM_INIT */
	bool ready;			/* UMEM_INIT done; smp_load_acquire */
	bool initing;			/* UMEM_INIT in progress */

	struct mutex lock;		/* see "Locking" above */
	struct xarray pages;		/* pgoff -> request or served page */
	struct list_head pending;	/* requests not yet read, oldest first */
	unsigned long npending;
	unsigned long nserved;
	unsigned long nrequests;	/* requests in pages, read or not */
	unsigned long max_served;	/* caps, fixed at UMEM_INIT */
	unsigned long max_requests;
	bool released;			/* umem file gone: nobody serves */
	unsigned int nr_vmas;		/* VMAs using the mapping file */
	/* mm of those VMAs: compared only, to tell a fork's copy apart */
	struct mm_struct *mapped_mm;
	u32 client_tgid;		/* tgid of the last mmap() (tracing) */
	u64 client_start;		/* and its start time (tracing) */
	struct file *shmem;		/* the memory file, until released */

	wait_queue_head_t read_wq;
	wait_queue_head_t fault_wq[1 << UMEM_WQ_BITS];
};

/*
 * The current process's start time: with its tgid, the identity a tracer
 * keys its rows by, so that a reused tgid starts afresh.
 */
static inline u64 umem_tgid_start(void)
{
	return current->group_leader->start_time;
}

/* Both fire in the faulting thread: the process charged is current's. */
static inline void umem_trace_fault(struct umem_area *area, pgoff_t pgoff,
				    u32 must_wait)
{
	trace_umem_fault(area->id, pgoff, must_wait, current->tgid,
			 umem_tgid_start());
}

/*
 * @wait_start: ktime_get_ns() when the thread began to wait, 0 if it did
 * not; a tracer started during a wait tells that fault from one it saw.
 */
static inline void umem_trace_fault_done(struct umem_area *area,
					 pgoff_t pgoff, u32 outcome,
					 u64 wait_start)
{
	trace_umem_fault_done(area->id, pgoff, outcome,
			      wait_start ? max_t(u64, ktime_get_ns() - wait_start, 1) : 0,
			      current->tgid, umem_tgid_start(), wait_start);
}

/* Tag of a request in area->pages (a page pointer has tag 0). */
#define UMEM_REQ_TAG		1
/* Requests are also marked, so that release walks only them. */
#define UMEM_REQ_MARK		XA_MARK_1

static struct kmem_cache *umem_req_cache;
static atomic64_t umem_next_id = ATOMIC64_INIT(0);
/* Faulters past their last use of the mapping file: see umem_vm_fault(). */
static atomic_t umem_faulters_out = ATOMIC_INIT(0);

static wait_queue_head_t *umem_fault_wq(struct umem_area *area, pgoff_t pgoff)
{
	return &area->fault_wq[hash_long(pgoff, UMEM_WQ_BITS)];
}

static void umem_area_free(struct kref *ref)
{
	struct umem_area *area = container_of(ref, struct umem_area, ref);
	unsigned long idx;
	void *entry;

	/* ->release freed the requests and dropped shmem before this. */
	WARN_ON_ONCE(area->shmem);
	xa_for_each(&area->pages, idx, entry) {
		if (!WARN_ON_ONCE(xa_pointer_tag(entry)))
			put_page(entry);
		/* A big area has many millions of pages: no soft lockup. */
		cond_resched();
	}
	xa_destroy(&area->pages);
	kfree(area);
}

static void umem_area_put(struct umem_area *area)
{
	kref_put(&area->ref, umem_area_free);
}

/* Served page of @pgoff, or NULL.  Valid while the caller holds a ref. */
static struct page *umem_served(struct umem_area *area, pgoff_t pgoff)
{
	void *entry = xa_load(&area->pages, pgoff);

	return xa_pointer_tag(entry) ? NULL : entry;
}

/* The request of @pgoff, or NULL.  Caller holds area->lock. */
static struct umem_req *umem_req_of(struct umem_area *area, pgoff_t pgoff)
{
	void *entry = xa_load(&area->pages, pgoff);

	return xa_pointer_tag(entry) == UMEM_REQ_TAG ?
	       xa_untag_pointer(entry) : NULL;
}

static bool umem_resolved(struct umem_area *area, pgoff_t pgoff)
{
	return umem_served(area, pgoff) || READ_ONCE(area->released);
}

/* ------------------------------------------------------------------ */
/* Fault side                                                           */

enum umem_req_result {
	UMEM_REQ_SERVED,	/* served meanwhile: map it */
	UMEM_REQ_WAIT,		/* requested (now or earlier): wait */
	UMEM_REQ_DEAD,		/* no server left: SIGBUS */
	UMEM_REQ_FULL,		/* max_requests reached: SIGBUS */
	UMEM_REQ_NOMEM,
};

/*
 * Record that @pgoff is wanted; hand it to the server once.  Emits
 * umem_fault (see umem_vm_fault()) under area->lock, before the request
 * becomes visible to read(), so a trace shows the fault before the read;
 * a fault that cannot wait (dead, full, no memory) emits it too, and the
 * caller its umem_fault_done(error).
 */
static enum umem_req_result umem_request(struct umem_area *area, pgoff_t pgoff,
					 unsigned int fault_flags)
{
	bool first = !(fault_flags & FAULT_FLAG_TRIED);
	enum umem_req_result res = UMEM_REQ_WAIT;
	struct umem_req *req;
	bool queued = false;

	mutex_lock(&area->lock);
	if (umem_served(area, pgoff)) {
		res = UMEM_REQ_SERVED;
		if (first)
			umem_trace_fault(area, pgoff, 0);
		goto out;
	}
	if (area->released) {
		res = UMEM_REQ_DEAD;
		if (first)
			umem_trace_fault(area, pgoff, 1);
		goto out;
	}
	if (!umem_req_of(area, pgoff)) {
		if (area->nrequests >= area->max_requests) {
			res = UMEM_REQ_FULL;
			goto out_trace;
		}
		req = kmem_cache_alloc(umem_req_cache, GFP_KERNEL);
		if (!req) {
			res = UMEM_REQ_NOMEM;
			goto out_trace;
		}
		req->pgoff = pgoff;
		req->queued_ns = ktime_get_ns();
		req->tgid = current->tgid;
		req->tgid_start = umem_tgid_start();
		if (xa_err(xa_store(&area->pages, pgoff,
				    xa_tag_pointer(req, UMEM_REQ_TAG),
				    GFP_KERNEL_ACCOUNT))) {
			kmem_cache_free(umem_req_cache, req);
			res = UMEM_REQ_NOMEM;
			goto out_trace;
		}
		xa_set_mark(&area->pages, pgoff, UMEM_REQ_MARK);
		area->nrequests++;
		list_add_tail(&req->node, &area->pending);
		area->npending++;
		queued = true;
	}
out_trace:
	/* A fault that cannot wait ends now: traced like a first entry. */
	if (res != UMEM_REQ_WAIT) {
		if (first)
			umem_trace_fault(area, pgoff, 1);
	} else if (!(fault_flags & FAULT_FLAG_RETRY_NOWAIT)) {
		/* A RETRY_NOWAIT attempt that would wait is not a fault yet. */
		umem_trace_fault(area, pgoff, 1);
	}
out:
	mutex_unlock(&area->lock);
	if (queued)
		wake_up_interruptible_poll(&area->read_wq, EPOLLIN | EPOLLRDNORM);
	return res;
}

static void umem_release_fault_lock(struct vm_fault *vmf)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	release_fault_lock(vmf);	/* mmap_lock or per-VMA lock */
#else
	mmap_read_unlock(vmf->vma->vm_mm);
#endif
}

static u32 umem_wait_outcome(struct umem_area *area, pgoff_t pgoff)
{
	if (umem_served(area, pgoff))
		return UMEM_FAULT_SERVED;
	if (READ_ONCE(area->released))
		return UMEM_FAULT_ERROR;
	if (fatal_signal_pending(current))
		return UMEM_FAULT_KILLED;
	return UMEM_FAULT_INTERRUPTED;
}

/*
 * Interruptible when the fault allows it, except on the retry of a
 * kernel-mode fault: the arch code retries those (copy_from_user() in
 * write()) until they succeed whatever signal is pending, so every further
 * interruptible wait would end at once: a CPU spin taking mmap_lock each
 * lap.  The first attempt stays interruptible, so that GUP with
 * FOLL_INTERRUPTIBLE (KVM's vCPU faults) stops at a signal: GUP checks for
 * one before it retries.
 */
static bool umem_wait_interruptible(unsigned int flags)
{
	if (!(flags & FAULT_FLAG_INTERRUPTIBLE))
		return false;
	return (flags & FAULT_FLAG_USER) || !(flags & FAULT_FLAG_TRIED);
}

static vm_fault_t umem_map_served(struct vm_fault *vmf, struct page *page)
{
	get_page(page);
	vmf->page = page;
	return 0;
}

/*
 * Tracepoints: a fault that enters here for the first time (no
 * FAULT_FLAG_TRIED) emits umem_fault, and umem_fault_done when it is
 * resolved in this call (served, or SIGBUS/OOM) or its wait ends.  The retry
 * the core makes after our wait (FAULT_FLAG_TRIED) emits nothing if the page
 * is served or the area dead: it is the tail of a fault already counted.
 * A retried entry that still has to wait (after a non-fatal signal, or after
 * a FAULT_FLAG_RETRY_NOWAIT attempt) starts a new umem_fault/umem_fault_done
 * pair.  FAULT_FLAG_RETRY_NOWAIT attempts that would wait emit nothing.
 */
static vm_fault_t umem_vm_fault(struct vm_fault *vmf)
{
	struct umem_area *area = vmf->vma->vm_file->private_data;
	bool first = !(vmf->flags & FAULT_FLAG_TRIED);
	pgoff_t pgoff = vmf->pgoff;
	wait_queue_head_t *wq;
	struct file *fpin;
	struct page *page;
	u64 wait_start;
	u32 outcome;

	/* A fork's copy of the mapping (MADV_DOFORK): not a client. */
	if (unlikely(!vmf->vma->vm_private_data || pgoff >= area->npages))
		return VM_FAULT_SIGBUS;

	page = umem_served(area, pgoff);
	if (likely(page)) {
		if (first) {
			umem_trace_fault(area, pgoff, 0);
			umem_trace_fault_done(area, pgoff, UMEM_FAULT_SERVED, 0);
		}
		return umem_map_served(vmf, page);
	}

	/* Core dumps and exiting tasks do not wait for a server. */
	if (current->flags & (PF_EXITING | PF_DUMPCORE))
		return VM_FAULT_SIGBUS;

	/*
	 * GUP that cannot drop the lock (ptrace, /proc/PID/mem): never sleep
	 * on the server holding the mmap_lock.
	 */
	if (!(vmf->flags & FAULT_FLAG_ALLOW_RETRY)) {
		if (first) {
			umem_trace_fault(area, pgoff, 1);
			umem_trace_fault_done(area, pgoff, UMEM_FAULT_ERROR, 0);
		}
		return VM_FAULT_SIGBUS;
	}

	switch (umem_request(area, pgoff, vmf->flags)) {
	case UMEM_REQ_SERVED:
		if (first)
			umem_trace_fault_done(area, pgoff, UMEM_FAULT_SERVED, 0);
		return umem_map_served(vmf, umem_served(area, pgoff));
	case UMEM_REQ_DEAD:
	case UMEM_REQ_FULL:
		if (first)
			umem_trace_fault_done(area, pgoff, UMEM_FAULT_ERROR, 0);
		return VM_FAULT_SIGBUS;
	case UMEM_REQ_NOMEM:
		if (first)
			umem_trace_fault_done(area, pgoff, UMEM_FAULT_ERROR, 0);
		return VM_FAULT_OOM;
	case UMEM_REQ_WAIT:
		break;
	}

	if (vmf->flags & FAULT_FLAG_RETRY_NOWAIT)
		return VM_FAULT_RETRY;

	/*
	 * The VMA may go once the lock is dropped: pin its file, not just the
	 * area.  The mapping file holds the area and, through its f_op owner,
	 * this module: after munmap() and the umem fd's close (which wakes
	 * us) nothing else may.  The same pinning as filemap's "fpin".
	 */
	wq = umem_fault_wq(area, pgoff);
	fpin = get_file(vmf->vma->vm_file);
	umem_release_fault_lock(vmf);
	wait_start = ktime_get_ns();
	if (umem_wait_interruptible(vmf->flags))
		wait_event_interruptible(*wq, umem_resolved(area, pgoff));
	else
		wait_event_killable(*wq, umem_resolved(area, pgoff));
	outcome = umem_wait_outcome(area, pgoff);
	/* At least 1: 0 says that the thread did not wait. */
	if (trace_umem_fault_done_enabled())
		umem_trace_fault_done(area, pgoff, outcome, wait_start);
	/*
	 * For a user task the last fput() runs at its return to user space;
	 * for a kernel thread (delayed_fput) it may run, and release this
	 * module, before we return: umem_module_exit() waits for this count.
	 * The few instructions after it drops stay uncovered, as in any
	 * module whose ->fault sleeps.
	 */
	atomic_inc(&umem_faulters_out);
	fput(fpin);
	if (atomic_dec_and_test(&umem_faulters_out))
		wake_up_var(&umem_faulters_out);
	/* The lock is gone: the core retries (or delivers the signal). */
	return VM_FAULT_RETRY | VM_FAULT_MAJOR;
}

/*
 * A new VMA of the mapping file: a split or mremap in the client's mm, or
 * fork's copy once MADV_DOFORK cleared VM_DONTCOPY.  The ABI says the
 * mapping is not inherited, so a copy in another mm gets no
 * vm_private_data: its faults get SIGBUS and it is not counted.
 */
static void umem_vm_open(struct vm_area_struct *vma)
{
	struct umem_area *area = vma->vm_file->private_data;

	mutex_lock(&area->lock);
	if (vma->vm_private_data && vma->vm_mm == area->mapped_mm)
		area->nr_vmas++;
	else
		vma->vm_private_data = NULL;
	mutex_unlock(&area->lock);
}

static void umem_vm_close(struct vm_area_struct *vma)
{
	struct umem_area *area = vma->vm_file->private_data;

	if (!vma->vm_private_data)
		return;
	mutex_lock(&area->lock);
	/* No VMA left: no stale mm pointer for a later fork copy to match. */
	if (!--area->nr_vmas)
		area->mapped_mm = NULL;
	mutex_unlock(&area->lock);
}

static const struct vm_operations_struct umem_vm_ops = {
	.open	= umem_vm_open,
	.close	= umem_vm_close,
	.fault	= umem_vm_fault,
};

/* The file behind the client's VMA: holds the area, nothing else. */
static int umem_map_release(struct inode *inode, struct file *file)
{
	umem_area_put(file->private_data);
	return 0;
}

static const struct file_operations umem_map_fops = {
	.owner		= THIS_MODULE,
	.release	= umem_map_release,
};

/* ------------------------------------------------------------------ */
/* Server side                                                          */

static struct umem_area *umem_ready_area(struct file *file)
{
	struct umem_area *area = file->private_data;

	/* Pairs with smp_store_release() in umem_init(). */
	return smp_load_acquire(&area->ready) ? area : NULL;
}

static int umem_open(struct inode *inode, struct file *file)
{
	struct umem_area *area;
	unsigned int i;

	/*
	 * A server reads requests and writes offsets: an fd that cannot do
	 * both would make an area whose faults nobody can ever serve.
	 */
	if ((file->f_mode & (FMODE_READ | FMODE_WRITE)) !=
	    (FMODE_READ | FMODE_WRITE))
		return -EINVAL;

	area = kzalloc(sizeof(*area), GFP_KERNEL_ACCOUNT);
	if (!area)
		return -ENOMEM;
	kref_init(&area->ref);
	area->id = atomic64_inc_return(&umem_next_id);
	mutex_init(&area->lock);
	xa_init_flags(&area->pages, XA_FLAGS_ACCOUNT);
	INIT_LIST_HEAD(&area->pending);
	init_waitqueue_head(&area->read_wq);
	for (i = 0; i < ARRAY_SIZE(area->fault_wq); i++)
		init_waitqueue_head(&area->fault_wq[i]);
	file->private_data = area;
	return stream_open(inode, file);
}

static int umem_release(struct inode *inode, struct file *file)
{
	struct umem_area *area = file->private_data;
	struct umem_req *req, *tmp;
	struct file *shmem;
	unsigned long idx;
	unsigned int i;
	void *entry;

	mutex_lock(&area->lock);
	WRITE_ONCE(area->released, true);
	list_for_each_entry_safe(req, tmp, &area->pending, node)
		list_del_init(&req->node);
	area->npending = 0;
	/* Only the requests (at most max_requests), not every served page. */
	xa_for_each_marked(&area->pages, idx, entry, UMEM_REQ_MARK) {
		xa_erase(&area->pages, idx);
		kmem_cache_free(umem_req_cache, xa_untag_pointer(entry));
	}
	area->nrequests = 0;
	shmem = area->shmem;
	area->shmem = NULL;
	/* No event of the area can change its gauges (pending) after this. */
	trace_umem_release(area->id, area->client_tgid);
	mutex_unlock(&area->lock);

	for (i = 0; i < ARRAY_SIZE(area->fault_wq); i++)
		wake_up_all(&area->fault_wq[i]);
	if (shmem)
		fput(shmem);
	umem_area_put(area);
	return 0;
}

/*
 * UMEM_INIT.  area->lock is not held across the copy to user space (the
 * buffer may be in another umem area and wait for its server): the call
 * claims the area with ->initing instead; a concurrent or later INIT gets
 * EBUSY.
 */
static long umem_init(struct umem_area *area, struct umem_init __user *uarg)
{
	struct umem_init arg;
	struct file *shmem;
	pgoff_t npages;
	long ret;
	int fd;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (!arg.size || arg.size > UMEM_MAX_SIZE)
		return -EINVAL;
	npages = DIV_ROUND_UP(arg.size, PAGE_SIZE);

	mutex_lock(&area->lock);
	ret = area->ready || area->initing ? -EBUSY : 0;
	area->initing = !ret;
	mutex_unlock(&area->lock);
	if (ret)
		return ret;

	/* Like memfd: pages are charged as they are allocated. */
	shmem = shmem_file_setup("umem", (loff_t)npages << PAGE_SHIFT,
				 VM_NORESERVE);
	if (IS_ERR(shmem)) {
		ret = PTR_ERR(shmem);
		goto out_unclaim;
	}
	/* A file for read/write/lseek/pread/pwrite, as memfd_create() gives. */
	shmem->f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
	shmem->f_flags |= O_LARGEFILE;
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		ret = fd;
		goto out_fput;
	}
	arg.size = (u64)npages << PAGE_SHIFT;
	arg.shmem_fd = fd;
	arg.padding = 0;
	if (copy_to_user(uarg, &arg, sizeof(arg))) {
		ret = -EFAULT;
		goto out_put_fd;
	}

	mutex_lock(&area->lock);
	area->npages = npages;
	area->max_served = READ_ONCE(max_served_pages) ?: totalram_pages();
	area->max_requests = READ_ONCE(max_requests);
	area->shmem = get_file(shmem);
	area->initing = false;
	/* Publish npages and shmem to umem_ready_area() readers. */
	smp_store_release(&area->ready, true);
	mutex_unlock(&area->lock);
	fd_install(fd, shmem);
	return 0;

out_put_fd:
	put_unused_fd(fd);
out_fput:
	fput(shmem);
out_unclaim:
	mutex_lock(&area->lock);
	area->initing = false;
	mutex_unlock(&area->lock);
	return ret;
}

static long umem_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case UMEM_INIT:
		return umem_init(file->private_data, (void __user *)arg);
	case UMEM_MAKE_VMA_ANONYMOUS:
		/* abi.md fixes this errno for the unimplemented call. */
		return -ENOSYS;
	default:
		return -ENOTTY;
	}
}

/* Take up to @max pending offsets, oldest first. */
static unsigned int umem_take_pending(struct umem_area *area, u64 *offs,
				      unsigned int max)
{
	struct umem_req *req;
	unsigned int n = 0;

	while (n < max && !list_empty(&area->pending)) {
		req = list_first_entry(&area->pending, struct umem_req, node);
		list_del_init(&req->node);
		offs[n++] = req->pgoff;
	}
	area->npending -= n;
	return n;
}

/* copy_to_user() failed: queue what is still unserved again, in order. */
static void umem_requeue(struct umem_area *area, const u64 *offs,
			 unsigned int n)
{
	struct umem_req *req;

	while (n--) {
		req = umem_req_of(area, offs[n]);
		if (req && list_empty(&req->node)) {
			list_add(&req->node, &area->pending);
			area->npending++;
		}
	}
}

static ssize_t umem_read(struct file *file, char __user *buf, size_t count,
			 loff_t *ppos)
{
	struct umem_area *area = umem_ready_area(file);
	size_t max = count / sizeof(u64);
	u64 offs[UMEM_BATCH];
	unsigned long left;
	unsigned int n;
	size_t done = 0;
	int err;

	if (!area)
		return -ENXIO;
	if (count < sizeof(u64))
		return -EINVAL;

	for (;;) {
		mutex_lock(&area->lock);
		if (area->npending)
			break;
		mutex_unlock(&area->lock);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		err = wait_event_interruptible(area->read_wq,
					       READ_ONCE(area->npending));
		if (err)
			return err;
	}

	/* area->lock is held here and on every way out of this loop. */
	while (done < max) {
		n = umem_take_pending(area, offs,
				      min_t(size_t, max - done, UMEM_BATCH));
		if (!n)
			break;
		mutex_unlock(&area->lock);
		left = copy_to_user(buf + done * sizeof(u64), offs,
				    n * sizeof(u64));
		mutex_lock(&area->lock);
		if (left) {
			umem_requeue(area, offs, n);
			break;
		}
		done += n;
	}
	if (done)
		trace_umem_read(area->id, done, area->npending,
				area->client_tgid);
	mutex_unlock(&area->lock);
	return done ? done * sizeof(u64) : -EFAULT;
}

/*
 * Serve @pgoff: copy it out of the memory file into a page of the area's own
 * and wake whoever waits for it.  Serving a served page again is a no-op:
 * the client may have it mapped already, so its contents never change.
 */
static int umem_serve(struct umem_area *area, pgoff_t pgoff)
{
	struct address_space *mapping = area->shmem->f_mapping;
	struct page *page, *src;
	struct umem_req *req;
	struct folio *folio;
	int err;

	if (umem_served(area, pgoff))
		return 0;

	page = alloc_page(GFP_HIGHUSER | __GFP_ACCOUNT);
	if (!page)
		return -ENOMEM;
	/* Usually the server just wrote it: take it from the page cache. */
	folio = filemap_get_folio(mapping, pgoff);
	if (!IS_ERR_OR_NULL(folio)) {
		src = folio_file_page(folio, pgoff);
		if (folio_test_uptodate(folio) && !PageHWPoison(src)) {
			copy_highpage(page, src);
			folio_put(folio);
			goto insert;
		}
		folio_put(folio);
	}
	/* Swapped out, a hole, or not uptodate: let shmem sort it out. */
	src = shmem_read_mapping_page(mapping, pgoff);
	if (IS_ERR(src)) {
		/* Past the end of a truncated memory file: like a hole. */
		if (PTR_ERR(src) != -EINVAL) {
			put_page(page);
			return PTR_ERR(src);
		}
		clear_highpage(page);
	} else {
		copy_highpage(page, src);
		put_page(src);
	}

insert:
	mutex_lock(&area->lock);
	if (umem_served(area, pgoff)) {
		/* Another writer won the race. */
		mutex_unlock(&area->lock);
		put_page(page);
		return 0;
	}
	if (area->nserved >= area->max_served) {
		mutex_unlock(&area->lock);
		put_page(page);
		return -ENOSPC;
	}
	/* Reserve an empty slot, so that the store below cannot fail. */
	err = xa_reserve(&area->pages, pgoff, GFP_KERNEL_ACCOUNT);
	if (err) {
		mutex_unlock(&area->lock);
		put_page(page);
		return err;
	}
	req = umem_req_of(area, pgoff);
	if (req) {
		if (!list_empty(&req->node)) {
			list_del(&req->node);
			area->npending--;
		}
		xa_clear_mark(&area->pages, pgoff, UMEM_REQ_MARK);
		area->nrequests--;
	}
	/*
	 * Before the page is visible: a trace shows write before done.  The
	 * process charged: the one whose fault asked for the page, or for a
	 * page pushed ahead the area's client.
	 */
	if (trace_umem_write_enabled())
		trace_umem_write(area->id, pgoff, !!req,
				 req ? max_t(u64, ktime_get_ns() - req->queued_ns,
					     1) : 0,
				 req ? req->tgid : area->client_tgid,
				 req ? req->tgid_start : area->client_start);
	xa_store(&area->pages, pgoff, page, GFP_KERNEL_ACCOUNT); /* replaces req */
	area->nserved++;
	mutex_unlock(&area->lock);

	if (req) {
		kmem_cache_free(umem_req_cache, req);
		wake_up_all(umem_fault_wq(area, pgoff));
	}
	return 0;
}

static ssize_t umem_write(struct file *file, const char __user *buf,
			  size_t count, loff_t *ppos)
{
	struct umem_area *area = umem_ready_area(file);
	size_t total = count / sizeof(u64);
	u64 offs[UMEM_BATCH];
	size_t done = 0;
	unsigned int i, n;
	int err = 0;

	if (!area)
		return -ENXIO;
	if (count < sizeof(u64) || count % sizeof(u64))
		return -EINVAL;

	while (done < total && !err) {
		n = min_t(size_t, total - done, UMEM_BATCH);
		if (copy_from_user(offs, buf + done * sizeof(u64),
				   n * sizeof(u64))) {
			err = -EFAULT;
			break;
		}
		for (i = 0; i < n; i++) {
			if (offs[i] >= area->npages) {
				err = -EINVAL;
				break;
			}
			err = umem_serve(area, offs[i]);
			if (err)
				break;
			done++;
		}
		if (!err && done < total) {
			if (fatal_signal_pending(current)) {
				err = -EINTR;
				break;
			}
			cond_resched();
		}
	}
	/* Like any write(): report what was done, the error if nothing. */
	return done ? done * sizeof(u64) : err;
}

static __poll_t umem_poll(struct file *file, poll_table *wait)
{
	struct umem_area *area = umem_ready_area(file);
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;

	if (!area)
		return EPOLLERR;
	poll_wait(file, &area->read_wq, wait);
	if (READ_ONCE(area->npending))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static void umem_vm_flags_set(struct vm_area_struct *vma, unsigned long flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

static int umem_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct umem_area *area = umem_ready_area(file);
	struct file *mfile;

	if (!area)
		return -ENXIO;
	/* Private only: a shared mapping would need a shared page cache. */
	if (vma->vm_flags & VM_MAYSHARE)
		return -EINVAL;
	if (vma->vm_pgoff || vma_pages(vma) > area->npages)
		return -EINVAL;

	mutex_lock(&area->lock);
	if (area->nr_vmas) {
		mutex_unlock(&area->lock);
		return -EBUSY;
	}
	kref_get(&area->ref);
	mfile = anon_inode_getfile("[umem]", &umem_map_fops, area, O_RDWR);
	if (IS_ERR(mfile)) {
		mutex_unlock(&area->lock);
		umem_area_put(area);
		return PTR_ERR(mfile);
	}
	area->nr_vmas = 1;	/* ->close drops it, also on mmap failure */
	area->mapped_mm = vma->vm_mm;
	area->client_tgid = current->tgid;
	area->client_start = umem_tgid_start();
	mutex_unlock(&area->lock);

	/* The VMA holds the mapping file, not the umem file: see the top. */
	vma_set_file(vma, mfile);
	fput(mfile);
	umem_vm_flags_set(vma, VM_DONTCOPY | VM_DONTEXPAND);
	vma->vm_ops = &umem_vm_ops;
	vma->vm_private_data = area;	/* NULL in a fork's copy */
	return 0;
}

static void umem_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct umem_area *area = file->private_data;

	mutex_lock(&area->lock);
	seq_printf(m, "umem-area:\t%llu\numem-pages:\t%lu\n"
		   "umem-served:\t%lu\numem-pending:\t%lu\n",
		   area->id, area->npages, area->nserved, area->npending);
	mutex_unlock(&area->lock);
}

static const struct file_operations umem_fops = {
	.owner		= THIS_MODULE,
	.open		= umem_open,
	.release	= umem_release,
	.read		= umem_read,
	.write		= umem_write,
	.poll		= umem_poll,
	.unlocked_ioctl	= umem_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= umem_mmap,
	.show_fdinfo	= umem_show_fdinfo,
};

static struct miscdevice umem_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "umem",
	.fops	= &umem_fops,
	.mode	= 0600,	/* udev/60-umem.rules hands it to group kvm */
};

static int __init umem_module_init(void)
{
	int err;

	umem_req_cache = KMEM_CACHE(umem_req, SLAB_ACCOUNT);
	if (!umem_req_cache)
		return -ENOMEM;
	err = misc_register(&umem_misc);
	if (err) {
		kmem_cache_destroy(umem_req_cache);
		return err;
	}
	return 0;
}

static void __exit umem_module_exit(void)
{
	misc_deregister(&umem_misc);
	/* A faulter may still be between its last fput() and its return. */
	wait_var_event(&umem_faulters_out, !atomic_read(&umem_faulters_out));
	kmem_cache_destroy(umem_req_cache);
}

module_init(umem_module_init);
module_exit(umem_module_exit);

MODULE_DESCRIPTION("umem: memory whose page faults are served by another process");
MODULE_LICENSE("GPL");
