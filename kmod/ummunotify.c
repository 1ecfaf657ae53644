// SPDX-License-Identifier: GPL-2.0
/*
 * ummunotify: relay MMU invalidations of watched address ranges of a
 * process to user space through /dev/ummunotify.
 *
 * A library that caches per-range state (an RDMA memory registration, a
 * GPU mapping) registers the range with a cookie; when the kernel
 * invalidates any part of it (munmap, mremap, madvise(DONTNEED), fork's
 * write protection, migration, swap-out, mprotect, ...) the library reads
 * one report per affected registration.  The user ABI (uapi header
 * <linux/ummunotify.h>) is fixed; see docs/ummunotify.md for the design.
 *
 * Data structures (one struct ummunotify_ctx per open file):
 *  - tree:    interval tree of registrations by [start, last]; an
 *             invalidation walks only the registrations it overlaps, so it
 *             costs O(log n + hits).
 *  - cookies: rbtree of the same registrations by user cookie; register,
 *             unregister and the duplicate check cost O(log n).
 *  - queue:   FIFO of registrations with an unread report.  The report is
 *             embedded in the registration, so the notifier never
 *             allocates and one registration has at most one report.
 *  - inflight: the invalidations between their invalidate_range_start and
 *             _end, each in a slot keyed by its range (the core passes the
 *             same struct to both); past UMMUNOTIFY_INFLIGHT_SLOTS at once
 *             they share one overflow slot covering their union.
 *  - deferred: registrations made while an overlapping invalidation was
 *             in flight, with the slots they owe (->owed).  That start
 *             callback did not see them, yet its page-table change comes
 *             after they were made: each is reported when such a slot's
 *             invalidation ends (the overflow slot: when all of its have
 *             ended, as mmu_interval_notifier defers inserts to
 *             mn_itree_inv_end()).  Without this a registration cache can
 *             pin a page that is being unmapped and never hear of it.
 *
 * Locking:
 *  - ctx->lock (spinlock) protects everything in the context that changes
 *    after open: both trees, the queue, the deferred list, the in-flight
 *    invalidation state, every registration's report state (queue link,
 *    hint, hits, reading/dead/orphan), nregs, nqueued, gauge_seq,
 *    generation (and its copy in the counter page), need_last, used and
 *    mm_dead.  It is a
 *    spinlock because the invalidate callbacks may run in non-blockable
 *    context (OOM reaper: !mmu_notifier_range_blockable()); nothing
 *    sleeps, allocates, faults or calls into other subsystems while it is
 *    held, and it nests inside whatever locks the mm core holds around
 *    the invalidate callbacks (mmap_lock, i_mmap_rwsem, page table locks
 *    are never taken under it).  It is never taken from interrupt
 *    context, so plain spin_lock() is enough.
 *  - Wake-ups (ctx->read_wq, ctx->unreg_wq) and SIGIO (ctx->fasync) are
 *    issued after dropping ctx->lock.
 *  - read() copies reports to user space without ctx->lock (the copy may
 *    fault, and a fault may invalidate this very mm).  Registrations whose
 *    report is being copied are marked ->reading; UNREGISTER_REGION waits
 *    (killable) until that copy is done, so once it returns no report of
 *    that cookie can still be delivered, and the registration is never
 *    freed under a reader.  If the copy faults the reports not copied are
 *    put back at the head of the queue, merged with any newer report.
 *  - Walk length: an invalidation that may block drops the lock and
 *    reschedules every UMMUNOTIFY_WALK_BATCH hits, resuming after the last
 *    registration it visited (the interval tree is ordered by start, then
 *    by registration serial); a registration made during the break is
 *    covered by the deferred list.  A non-blockable one (OOM reaper) walks
 *    without a break: max_regions bounds it.
 *  - The mm: mmu_notifier_register() holds its own mmgrab() reference
 *    until mmu_notifier_unregister(); ->release (mm exit, or our own
 *    unregister) sets mm_dead, after which no report is produced.  The
 *    file's release unregisters the notifier (which waits for running
 *    callbacks via SRCU) before freeing anything.
 *  - Contexts per mm are capped (max_contexts_per_mm): each is one more
 *    callback on every invalidation of the mm and one mm_take_all_locks()
 *    at open.
 *
 * Module lifetime: the file operations' owner pins the module while any
 * file is open, and nothing outlives the last file (no deferred callbacks).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/interval_tree_generic.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/rbtree.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/wait.h>

#include <linux/ummunotify.h>

#define CREATE_TRACE_POINTS
#include "ummunotify_trace.h"

static unsigned int max_regions = 1U << 20;
module_param(max_regions, uint, 0644);
MODULE_PARM_DESC(max_regions,
		 "Maximum registered regions per open file, read at open (default 1048576); REGISTER_REGION beyond it fails with ENOSPC");

static unsigned int max_contexts_per_mm = 64;
module_param(max_contexts_per_mm, uint, 0644);
MODULE_PARM_DESC(max_contexts_per_mm,
		 "Maximum open contexts per address space (default 64); open beyond it fails with EMFILE");

/* Reports copied per batch of read(); bounded to keep the stack small. */
#define UMMUNOTIFY_READ_BATCH	8
/* Registrations an invalidation visits between two lock breaks. */
#define UMMUNOTIFY_WALK_BATCH	256
/* Invalidations tracked one by one while in flight; then one union. */
#define UMMUNOTIFY_INFLIGHT_SLOTS	15
#define UMMUNOTIFY_OVERFLOW_SLOT	UMMUNOTIFY_INFLIGHT_SLOTS
/* A bit per slot, overflow included, in u16 inflight_used and owed. */
static_assert(UMMUNOTIFY_OVERFLOW_SLOT < 16);

struct ummunotify_reg {
	/* ctx->tree: the interval [start, last], last = end - 1 */
	struct rb_node		it_node;
	u64			start;
	u64			last;
	u64			subtree_last;
	/* ctx->cookies */
	struct rb_node		cookie_node;
	u64			user_cookie;
	/* orders equal starts in ctx->tree: a walk resumes after it */
	u64			serial;
	/* ctx->deferred, while in-flight invalidations owe it a report */
	struct list_head	deferred;
	u16			owed;	/* bit per ctx->inflight slot */
	/* ctx->queue while a report is unread; empty otherwise */
	struct list_head	queue;
	u64			hint_start;
	u64			hint_end;
	/* invalidations in the queued report: 1, or 2 for "more than one" */
	u32			hits;
	/*
	 * read() calls copying a report of this registration to user space.
	 * A count, not a flag: once one reader dequeued it, a new
	 * invalidation can queue it again and a concurrent reader (another
	 * thread, or a fork child sharing the fd) dequeue it again while the
	 * first is still copying.
	 */
	u32			reading;
	/* unregistered while reading: the readers must not requeue it */
	bool			dead;
	/* unregister gave up waiting (fatal signal): the last reader frees it */
	bool			orphan;
};

struct ummunotify_ctx {
	struct mmu_notifier	mn;
	struct mm_struct	*mm;
	u64			id;
	u32			tgid;
	u32			max_regions;
	/* the owner's start time: with tgid, its identity (tracing) */
	u64			tgid_start;

	spinlock_t		lock;	/* see "Locking" at the top */
	struct rb_root_cached	tree;
	struct rb_root		cookies;
	struct list_head	queue;
	u32			nregs;
	u32			nqueued;
	/* gauge snapshots (nregs, nqueued) handed to tracepoints */
	u64			gauge_seq;
	u64			generation;
	u64			next_serial;
	/* invalidations in flight (start called, end not yet) */
	struct ummunotify_inflight {
		const struct mmu_notifier_range *range;
		u64		start;
		u64		end;
	} inflight[UMMUNOTIFY_INFLIGHT_SLOTS + 1];
	u16			inflight_used;	/* bit per busy slot */
	/* the overflow slot: how many share it, how many started in it */
	u32			overflow_active;
	u32			overflow_starts;
	struct list_head	deferred;
	/* reports were returned since the last LAST event */
	bool			need_last;
	/* some operation ran: EXCHANGE_FEATURES is no longer allowed */
	bool			used;
	/* the mm is gone (->release ran): no more reports */
	bool			mm_dead;

	/* the generation counter page that user space may map read-only */
	u64			*counter;

	wait_queue_head_t	read_wq;
	wait_queue_head_t	unreg_wq;
	struct fasync_struct	*fasync;
};

#define REG_START(reg)	((reg)->start)
#define REG_LAST(reg)	((reg)->last)

INTERVAL_TREE_DEFINE(struct ummunotify_reg, it_node, u64, subtree_last,
		     REG_START, REG_LAST, static, ummunotify_it)

static atomic64_t ummunotify_next_id = ATOMIC64_INIT(0);

/*
 * The context's gauges for a tracepoint, numbered: tracepoints fire after
 * the lock is dropped, so two of them may reach a tracer in the other
 * order; the one with the higher @seq was taken later.
 */
struct ummunotify_gauges {
	u32 regions;
	u32 queued;
	u64 seq;
};

static void ummunotify_take_gauges(struct ummunotify_ctx *ctx,
				   struct ummunotify_gauges *g)
{
	lockdep_assert_held(&ctx->lock);
	g->regions = ctx->nregs;
	g->queued = ctx->nqueued;
	g->seq = ++ctx->gauge_seq;
}

/* Open contexts per mm, for max_contexts_per_mm. */
struct ummunotify_mm_count {
	struct hlist_node	node;
	struct mm_struct	*mm;
	unsigned int		contexts;
};

static DEFINE_HASHTABLE(ummunotify_mm_counts, 6);
static DEFINE_MUTEX(ummunotify_mm_counts_lock);

static struct ummunotify_mm_count *ummunotify_mm_count_find(struct mm_struct *mm)
{
	struct ummunotify_mm_count *c;

	lockdep_assert_held(&ummunotify_mm_counts_lock);
	hash_for_each_possible(ummunotify_mm_counts, c, node, (unsigned long)mm)
		if (c->mm == mm)
			return c;
	return NULL;
}

/* Count one more context of @mm, or -EMFILE at the cap. */
static int ummunotify_mm_count_get(struct mm_struct *mm)
{
	struct ummunotify_mm_count *c;
	int ret = 0;

	mutex_lock(&ummunotify_mm_counts_lock);
	c = ummunotify_mm_count_find(mm);
	if (c && c->contexts >= READ_ONCE(max_contexts_per_mm)) {
		ret = -EMFILE;
	} else if (c) {
		c->contexts++;
	} else if (!READ_ONCE(max_contexts_per_mm)) {
		ret = -EMFILE;
	} else {
		c = kzalloc(sizeof(*c), GFP_KERNEL_ACCOUNT);
		if (c) {
			c->mm = mm;
			c->contexts = 1;
			hash_add(ummunotify_mm_counts, &c->node, (unsigned long)mm);
		} else {
			ret = -ENOMEM;
		}
	}
	mutex_unlock(&ummunotify_mm_counts_lock);
	return ret;
}

static void ummunotify_mm_count_put(struct mm_struct *mm)
{
	struct ummunotify_mm_count *c;

	mutex_lock(&ummunotify_mm_counts_lock);
	c = ummunotify_mm_count_find(mm);
	if (!WARN_ON_ONCE(!c) && !--c->contexts) {
		hash_del(&c->node);
		kfree(c);
	}
	mutex_unlock(&ummunotify_mm_counts_lock);
}

static void ummunotify_set_vm_flags(struct vm_area_struct *vma,
				    vm_flags_t set, vm_flags_t clear)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_mod(vma, set, clear);
#else
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
#endif
}

static struct ummunotify_reg *ummunotify_find_cookie(struct ummunotify_ctx *ctx,
						     u64 cookie)
{
	struct rb_node *node = ctx->cookies.rb_node;

	lockdep_assert_held(&ctx->lock);
	while (node) {
		struct ummunotify_reg *reg =
			rb_entry(node, struct ummunotify_reg, cookie_node);

		if (cookie < reg->user_cookie)
			node = node->rb_left;
		else if (cookie > reg->user_cookie)
			node = node->rb_right;
		else
			return reg;
	}
	return NULL;
}

/* False if the cookie is already in use. */
static bool ummunotify_insert_cookie(struct ummunotify_ctx *ctx,
				     struct ummunotify_reg *new)
{
	struct rb_node **link = &ctx->cookies.rb_node, *parent = NULL;

	lockdep_assert_held(&ctx->lock);
	while (*link) {
		struct ummunotify_reg *reg =
			rb_entry(*link, struct ummunotify_reg, cookie_node);

		parent = *link;
		if (new->user_cookie < reg->user_cookie)
			link = &parent->rb_left;
		else if (new->user_cookie > reg->user_cookie)
			link = &parent->rb_right;
		else
			return false;
	}
	rb_link_node(&new->cookie_node, parent, link);
	rb_insert_color(&new->cookie_node, &ctx->cookies);
	return true;
}

static bool ummunotify_readable(struct ummunotify_ctx *ctx)
{
	return !list_empty(&ctx->queue) || ctx->need_last;
}

/* Lockless check for read()'s wait; re-checked under ctx->lock. */
static bool ummunotify_wake_cond(struct ummunotify_ctx *ctx)
{
	return READ_ONCE(ctx->need_last) || READ_ONCE(ctx->mm_dead) ||
	       !list_empty_careful(&ctx->queue);
}

static void ummunotify_wake(struct ummunotify_ctx *ctx)
{
	wake_up_interruptible(&ctx->read_wq);
	kill_fasync(&ctx->fasync, SIGIO, POLL_IN);
}

/*
 * The mm is being torn down (exit_mmap), or our own unregister runs.
 * Stop producing reports; what is queued stays readable.
 */
static void ummunotify_mn_release(struct mmu_notifier *mn,
				  struct mm_struct *mm)
{
	struct ummunotify_ctx *ctx = container_of(mn, struct ummunotify_ctx, mn);

	spin_lock(&ctx->lock);
	ctx->mm_dead = true;
	spin_unlock(&ctx->lock);
	/* Readers waiting for reports that can no longer come get EOF. */
	ummunotify_wake(ctx);
}

/*
 * First registration after (@start, @serial) in the tree's order (start,
 * then serial), or NULL: where a walk resumes after a lock break.
 */
static struct ummunotify_reg *ummunotify_it_after(struct ummunotify_ctx *ctx,
						  u64 start, u64 serial)
{
	struct rb_node *node = ctx->tree.rb_root.rb_node;
	struct ummunotify_reg *reg, *next = NULL;

	lockdep_assert_held(&ctx->lock);
	while (node) {
		reg = rb_entry(node, struct ummunotify_reg, it_node);
		if (reg->start > start ||
		    (reg->start == start && reg->serial > serial)) {
			next = reg;
			node = node->rb_left;
		} else {
			node = node->rb_right;
		}
	}
	return next;
}

/*
 * One invalidation of [start, end) hits @reg: queue its report, or merge
 * into the unread one.  Returns true if it was queued.
 */
static bool ummunotify_hit(struct ummunotify_ctx *ctx,
			   struct ummunotify_reg *reg, u64 start, u64 end,
			   u32 hits)
{
	lockdep_assert_held(&ctx->lock);
	if (!list_empty(&reg->queue)) {
		reg->hits = 2;	/* merged: the hint is lost */
		return false;
	}
	reg->hint_start = max(start, reg->start);
	reg->hint_end = min(end - 1, reg->last) + 1;
	reg->hits = hits;
	list_add_tail(&reg->queue, &ctx->queue);
	ctx->nqueued++;
	return true;
}

static void ummunotify_bump_generation(struct ummunotify_ctx *ctx)
{
	lockdep_assert_held(&ctx->lock);
	ctx->generation++;
	WRITE_ONCE(*ctx->counter, ctx->generation);
}

/* Track @range as in flight: its own slot, or the shared overflow one. */
static void ummunotify_inflight_start(struct ummunotify_ctx *ctx,
				      const struct mmu_notifier_range *range)
{
	u16 free = ~ctx->inflight_used & (BIT(UMMUNOTIFY_INFLIGHT_SLOTS) - 1);
	struct ummunotify_inflight *inf;

	lockdep_assert_held(&ctx->lock);
	if (free) {
		unsigned int slot = __ffs(free);

		ctx->inflight_used |= BIT(slot);
		inf = &ctx->inflight[slot];
		inf->range = range;
		inf->start = range->start;
		inf->end = range->end;
		return;
	}
	inf = &ctx->inflight[UMMUNOTIFY_OVERFLOW_SLOT];
	if (!ctx->overflow_active++) {
		inf->start = range->start;
		inf->end = range->end;
		ctx->overflow_starts = 0;
	} else {
		inf->start = min(inf->start, range->start);
		inf->end = max(inf->end, range->end);
	}
	ctx->overflow_starts++;
}

/*
 * @range is no longer in flight.  Returns the slot whose deferred
 * registrations are now owed their report, or -1 (none yet: other
 * invalidations of the overflow slot are still in flight).
 */
static int ummunotify_inflight_end(struct ummunotify_ctx *ctx,
				   const struct mmu_notifier_range *range)
{
	unsigned long used = ctx->inflight_used;
	unsigned int slot;

	lockdep_assert_held(&ctx->lock);
	for_each_set_bit(slot, &used, UMMUNOTIFY_INFLIGHT_SLOTS) {
		if (ctx->inflight[slot].range == range) {
			ctx->inflight_used &= ~BIT(slot);
			return slot;
		}
	}
	/*
	 * Not in a slot: one of the overflow slot's.  The core pairs every
	 * end with a start (mm_take_all_locks() at register excludes one in
	 * flight), so an end with nothing in flight is a bug.
	 */
	if (WARN_ON_ONCE(!ctx->overflow_active))
		return -1;
	return --ctx->overflow_active ? -1 : UMMUNOTIFY_OVERFLOW_SLOT;
}

/* The in-flight slots whose invalidations overlap [start, end). */
static u16 ummunotify_inflight_overlaps(struct ummunotify_ctx *ctx,
					u64 start, u64 end)
{
	unsigned long used = ctx->inflight_used;
	struct ummunotify_inflight *inf;
	unsigned int slot;
	u16 owed = 0;

	lockdep_assert_held(&ctx->lock);
	if (ctx->overflow_active)
		used |= BIT(UMMUNOTIFY_OVERFLOW_SLOT);
	for_each_set_bit(slot, &used, UMMUNOTIFY_INFLIGHT_SLOTS + 1) {
		inf = &ctx->inflight[slot];
		if (start < inf->end && inf->start < end)
			owed |= BIT(slot);
	}
	return owed;
}

/*
 * May run in non-blockable context (mmu_notifier_range_blockable() false,
 * e.g. the OOM reaper): takes only ctx->lock, never sleeps or allocates,
 * and therefore never needs to return -EAGAIN.  A blockable one breaks the
 * lock every UMMUNOTIFY_WALK_BATCH hits (see "Walk length" at the top).
 */
static int
ummunotify_mn_invalidate_range_start(struct mmu_notifier *mn,
				     const struct mmu_notifier_range *range)
{
	struct ummunotify_ctx *ctx = container_of(mn, struct ummunotify_ctx, mn);
	bool blockable = mmu_notifier_range_blockable(range);
	u64 start = range->start, end = range->end, generation, at, serial;
	u32 hits = 0, queued = 0, woken = 0, batch = 0;
	struct ummunotify_reg *reg;

	if (unlikely(end <= start))
		return 0;

	spin_lock(&ctx->lock);
	ummunotify_inflight_start(ctx, range);
	if (ctx->mm_dead) {
		spin_unlock(&ctx->lock);
		return 0;
	}

	reg = ummunotify_it_iter_first(&ctx->tree, start, end - 1);
	while (reg) {
		if (!hits++)
			ummunotify_bump_generation(ctx);
		queued += ummunotify_hit(ctx, reg, start, end, 1);
		if (++batch < UMMUNOTIFY_WALK_BATCH || !blockable) {
			reg = ummunotify_it_iter_next(reg, start, end - 1);
			continue;
		}
		batch = 0;
		at = reg->start;
		serial = reg->serial;
		spin_unlock(&ctx->lock);
		if (queued > woken) {
			ummunotify_wake(ctx);
			woken = queued;
		}
		cond_resched();
		spin_lock(&ctx->lock);
		if (ctx->mm_dead)
			break;
		/*
		 * Resume strictly after the last one visited: every overlap
		 * not yet visited starts in [at, end).  One registered
		 * meanwhile is on the deferred list as well.
		 */
		reg = ummunotify_it_after(ctx, at, serial);
		if (reg && reg->start > end - 1)
			reg = NULL;
		/* The successor in order need not overlap: on to one that does. */
		if (reg && reg->last < start)
			reg = ummunotify_it_iter_next(reg, start, end - 1);
	}
	generation = ctx->generation;
	spin_unlock(&ctx->lock);

	if (queued > woken)
		ummunotify_wake(ctx);
	trace_ummunotify_notify(ctx->id, ctx->tgid, start, end, range->event,
				hits, queued, generation, ctx->tgid_start);
	return 0;
}

/*
 * The page-table change of an invalidation is done: report the
 * registrations made while it was in flight over it.  Those of the
 * overflow slot wait until every invalidation sharing it has ended.
 */
static void
ummunotify_mn_invalidate_range_end(struct mmu_notifier *mn,
				   const struct mmu_notifier_range *range)
{
	struct ummunotify_ctx *ctx = container_of(mn, struct ummunotify_ctx, mn);
	struct ummunotify_inflight *inf;
	struct ummunotify_reg *reg, *next;
	u32 queued = 0, hits = 1;
	int slot;

	if (unlikely(range->end <= range->start))
		return;

	spin_lock(&ctx->lock);
	slot = ummunotify_inflight_end(ctx, range);
	if (slot < 0 || list_empty(&ctx->deferred)) {
		spin_unlock(&ctx->lock);
		return;
	}
	inf = &ctx->inflight[slot];
	/* Several invalidations over the union: the hint is not exact. */
	if (slot == UMMUNOTIFY_OVERFLOW_SLOT && ctx->overflow_starts > 1)
		hits = 2;
	list_for_each_entry_safe(reg, next, &ctx->deferred, deferred) {
		if (!(reg->owed & BIT(slot)))
			continue;
		reg->owed &= ~BIT(slot);
		if (!reg->owed)
			list_del_init(&reg->deferred);
		if (!ctx->mm_dead)
			queued += ummunotify_hit(ctx, reg, inf->start, inf->end,
						 hits);
	}
	if (queued)
		ummunotify_bump_generation(ctx);
	spin_unlock(&ctx->lock);

	if (queued)
		ummunotify_wake(ctx);
}

static const struct mmu_notifier_ops ummunotify_mn_ops = {
	.release		= ummunotify_mn_release,
	.invalidate_range_start	= ummunotify_mn_invalidate_range_start,
	.invalidate_range_end	= ummunotify_mn_invalidate_range_end,
};

static int ummunotify_open(struct inode *inode, struct file *file)
{
	struct ummunotify_ctx *ctx;
	int ret;

	/* The context only reports; it has nothing to write. */
	if (file->f_mode & FMODE_WRITE)
		return -EINVAL;
	if (!current->mm)
		return -EINVAL;

	ret = ummunotify_mm_count_get(current->mm);
	if (ret)
		return ret;
	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);
	if (!ctx) {
		ret = -ENOMEM;
		goto err_uncount;
	}
	ctx->counter = (u64 *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	if (!ctx->counter) {
		ret = -ENOMEM;
		goto err_free_ctx;
	}

	spin_lock_init(&ctx->lock);
	ctx->tree = RB_ROOT_CACHED;
	ctx->cookies = RB_ROOT;
	INIT_LIST_HEAD(&ctx->queue);
	INIT_LIST_HEAD(&ctx->deferred);
	init_waitqueue_head(&ctx->read_wq);
	init_waitqueue_head(&ctx->unreg_wq);
	ctx->id = atomic64_inc_return(&ummunotify_next_id);
	ctx->tgid = task_tgid_nr(current);
	ctx->tgid_start = current->group_leader->start_time;
	ctx->max_regions = READ_ONCE(max_regions);

	/* The notifier holds the mm (mmgrab) until it is unregistered. */
	ctx->mm = current->mm;
	ctx->mn.ops = &ummunotify_mn_ops;
	ret = mmu_notifier_register(&ctx->mn, ctx->mm);
	if (ret)	/* -EINTR: mm_take_all_locks() saw a signal */
		goto err_free_page;

	file->private_data = ctx;
	return stream_open(inode, file);

err_free_page:
	free_page((unsigned long)ctx->counter);
err_free_ctx:
	kfree(ctx);
err_uncount:
	ummunotify_mm_count_put(current->mm);
	return ret;
}

static int ummunotify_release(struct inode *inode, struct file *file)
{
	struct ummunotify_ctx *ctx = file->private_data;
	struct ummunotify_reg *reg, *next;
	unsigned int n = 0;

	ummunotify_mm_count_put(ctx->mm);
	/* Calls ->release if the mm is still alive and waits for callbacks. */
	mmu_notifier_unregister(&ctx->mn, ctx->mm);

	/* No reader, no notifier: nothing else can see the registrations. */
	trace_ummunotify_release(ctx->id, ctx->tgid, ctx->nregs,
				 ctx->tgid_start);
	rbtree_postorder_for_each_entry_safe(reg, next, &ctx->cookies,
					     cookie_node) {
		kfree(reg);
		if (!(++n % 4096))
			cond_resched();
	}
	free_page((unsigned long)ctx->counter);
	kfree(ctx);
	return 0;
}

/* Fill one report and take it off the queue. */
static void ummunotify_dequeue(struct ummunotify_ctx *ctx,
			       struct ummunotify_reg *reg,
			       struct ummunotify_event *ev)
{
	lockdep_assert_held(&ctx->lock);
	ev->type = UMMUNOTIFY_EVENT_TYPE_INVAL;
	ev->user_cookie_counter = reg->user_cookie;
	if (reg->hits == 1) {
		ev->flags = UMMUNOTIFY_EVENT_FLAG_HINT;
		ev->hint_start = reg->hint_start;
		ev->hint_end = reg->hint_end;
	} else {
		ev->flags = 0;
		ev->hint_start = reg->start;
		ev->hint_end = reg->last + 1;
	}
	list_del_init(&reg->queue);
	ctx->nqueued--;
	WRITE_ONCE(reg->reading, reg->reading + 1);
}

/*
 * For a report read() dequeued and could not copy: put it back at the
 * head of the queue, merged with any report queued since.  Returns true
 * when the caller must free @reg (it was orphaned by unregister and this
 * was its last reader).
 */
static bool ummunotify_requeue(struct ummunotify_ctx *ctx,
			       struct ummunotify_reg *reg,
			       const struct ummunotify_event *ev, u32 hits)
{
	lockdep_assert_held(&ctx->lock);
	WRITE_ONCE(reg->reading, reg->reading - 1);
	if (reg->dead)
		return reg->orphan && !reg->reading;

	if (list_empty(&reg->queue)) {
		reg->hits = hits;
		reg->hint_start = ev->hint_start;
		reg->hint_end = ev->hint_end;
		ctx->nqueued++;
	} else {
		reg->hits = 2;
	}
	list_move(&reg->queue, &ctx->queue);
	return false;
}

static ssize_t ummunotify_read(struct file *file, char __user *buf,
			       size_t count, loff_t *pos)
{
	struct ummunotify_ctx *ctx = file->private_data;
	struct ummunotify_event ev[UMMUNOTIFY_READ_BATCH];
	struct ummunotify_reg *regs[UMMUNOTIFY_READ_BATCH];
	u32 hits[UMMUNOTIFY_READ_BATCH];
	size_t max_events = count / sizeof(ev[0]);
	struct ummunotify_gauges g = {};
	size_t done = 0;
	int ret;

	spin_lock(&ctx->lock);
	ctx->used = true;
	spin_unlock(&ctx->lock);
	if (!max_events)
		return -EINVAL;

	while (done < max_events) {
		struct ummunotify_reg *reg;
		LIST_HEAD(to_free);
		unsigned int n = 0, ninval, ok, i;
		bool freed = false, took_last = false, owed = false;
		unsigned long left;

		spin_lock(&ctx->lock);
		while (!ummunotify_readable(ctx)) {
			bool dead = ctx->mm_dead;

			spin_unlock(&ctx->lock);
			/* Return what we have rather than block for more. */
			if (done)
				goto out;
			if (dead)
				return 0;
			if (file->f_flags & O_NONBLOCK)
				return -EAGAIN;
			ret = wait_event_interruptible(ctx->read_wq,
						       ummunotify_wake_cond(ctx));
			if (ret)
				return ret;
			spin_lock(&ctx->lock);
		}

		/*
		 * need_last is set only once INVALs really reached user
		 * space, so a concurrent reader never returns a LAST for
		 * reports this one fails to copy; a LAST taken here and not
		 * copied gives back what it took (@owed).
		 */
		while (n < UMMUNOTIFY_READ_BATCH && done + n < max_events &&
		       !list_empty(&ctx->queue)) {
			reg = list_first_entry(&ctx->queue,
					       struct ummunotify_reg, queue);
			hits[n] = reg->hits;
			regs[n] = reg;
			ummunotify_dequeue(ctx, reg, &ev[n]);
			n++;
		}
		ninval = n;
		if (n < UMMUNOTIFY_READ_BATCH && done + n < max_events &&
		    list_empty(&ctx->queue) && (ctx->need_last || ninval)) {
			ev[n].type = UMMUNOTIFY_EVENT_TYPE_LAST;
			ev[n].flags = 0;
			ev[n].hint_start = 0;
			ev[n].hint_end = 0;
			ev[n].user_cookie_counter = ctx->generation;
			regs[n] = NULL;
			n++;
			took_last = true;
			owed = ctx->need_last;
			ctx->need_last = false;
		}
		spin_unlock(&ctx->lock);

		left = copy_to_user(buf + done * sizeof(ev[0]), ev,
				    n * sizeof(ev[0]));
		ok = n - DIV_ROUND_UP(left, sizeof(ev[0]));

		spin_lock(&ctx->lock);
		for (i = 0; i < ok; i++) {
			reg = regs[i];
			if (!reg)
				continue;
			WRITE_ONCE(reg->reading, reg->reading - 1);
			if (reg->dead) {
				freed = true;
				if (reg->orphan && !reg->reading)
					list_add(&reg->queue, &to_free);
			}
		}
		/* Put back what was not copied, last first, to keep order. */
		for (i = n; i-- > ok; ) {
			reg = regs[i];
			if (!reg)
				continue;
			if (reg->dead)
				freed = true;
			if (ummunotify_requeue(ctx, reg, &ev[i], hits[i]))
				list_add(&reg->queue, &to_free);
		}
		/* A LAST is owed once some report really was returned. */
		if (ok < n) {
			if (min(ok, ninval) || (took_last && owed))
				ctx->need_last = true;
		} else if (ninval && !took_last) {
			ctx->need_last = true;
		}
		ummunotify_take_gauges(ctx, &g);
		spin_unlock(&ctx->lock);

		if (freed)
			wake_up_all(&ctx->unreg_wq);
		while (!list_empty(&to_free)) {
			reg = list_first_entry(&to_free, struct ummunotify_reg,
					       queue);
			list_del(&reg->queue);
			kfree(reg);
		}
		done += ok;
		if (left) {
			/* Requeued reports, or a LAST owed to the next read. */
			ummunotify_wake(ctx);
			if (!done)
				return -EFAULT;
			break;
		}
		/* A LAST event ends the read. */
		if (!regs[n - 1])
			break;
	}
out:
	trace_ummunotify_read(ctx->id, done, g.queued, ctx->tgid, g.regions,
			      g.seq, ctx->tgid_start);
	return done * sizeof(ev[0]);
}

static __poll_t ummunotify_poll(struct file *file, poll_table *wait)
{
	struct ummunotify_ctx *ctx = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &ctx->read_wq, wait);
	spin_lock(&ctx->lock);
	if (ummunotify_readable(ctx))
		mask = EPOLLIN | EPOLLRDNORM;
	else if (ctx->mm_dead)
		mask = EPOLLHUP;
	spin_unlock(&ctx->lock);
	return mask;
}

static int ummunotify_fasync(int fd, struct file *file, int on)
{
	struct ummunotify_ctx *ctx = file->private_data;

	return fasync_helper(fd, file, on, &ctx->fasync);
}

static long ummunotify_exchange_features(struct ummunotify_ctx *ctx,
					 __u32 __user *arg)
{
	u32 features;
	bool used;

	spin_lock(&ctx->lock);
	used = ctx->used;
	ctx->used = true;
	spin_unlock(&ctx->lock);
	if (used)
		return -EINVAL;

	if (get_user(features, arg))
		return -EFAULT;
	/* No optional features are defined yet. */
	features = 0;
	if (put_user(features, arg))
		return -EFAULT;
	return 0;
}

static long ummunotify_register_region(struct ummunotify_ctx *ctx,
				       void __user *arg)
{
	struct ummunotify_register_ioctl r;
	struct ummunotify_gauges g;
	struct ummunotify_reg *reg;
	int ret;

	if (copy_from_user(&r, arg, sizeof(r)))
		return -EFAULT;
	if (r.flags || r.reserved || r.start >= r.end)
		return -EINVAL;

	reg = kzalloc(sizeof(*reg), GFP_KERNEL_ACCOUNT);
	if (!reg)
		return -ENOMEM;
	reg->start = r.start;
	reg->last = r.end - 1;
	reg->user_cookie = r.user_cookie;
	INIT_LIST_HEAD(&reg->queue);
	INIT_LIST_HEAD(&reg->deferred);

	spin_lock(&ctx->lock);
	if (ctx->nregs >= ctx->max_regions) {
		ret = -ENOSPC;
		goto err_unlock;
	}
	if (!ummunotify_insert_cookie(ctx, reg)) {
		ret = -EINVAL;
		goto err_unlock;
	}
	reg->serial = ctx->next_serial++;
	ummunotify_it_insert(reg, &ctx->tree);
	/* Invalidations in flight over it started before it existed. */
	reg->owed = ummunotify_inflight_overlaps(ctx, r.start, r.end);
	if (reg->owed)
		list_add_tail(&reg->deferred, &ctx->deferred);
	ctx->nregs++;
	ummunotify_take_gauges(ctx, &g);
	spin_unlock(&ctx->lock);

	trace_ummunotify_register(ctx->id, r.user_cookie, r.start, r.end,
				  g.regions, ctx->tgid, g.queued, g.seq,
				  ctx->tgid_start);
	return 0;

err_unlock:
	spin_unlock(&ctx->lock);
	kfree(reg);
	return ret;
}

static long ummunotify_unregister_region(struct ummunotify_ctx *ctx,
					 __u64 __user *arg)
{
	struct ummunotify_gauges g;
	struct ummunotify_reg *reg;
	u64 cookie, start, end;
	bool reading;

	if (get_user(cookie, arg))
		return -EFAULT;

	spin_lock(&ctx->lock);
	reg = ummunotify_find_cookie(ctx, cookie);
	if (!reg) {
		spin_unlock(&ctx->lock);
		return -EINVAL;
	}
	rb_erase(&reg->cookie_node, &ctx->cookies);
	ummunotify_it_remove(reg, &ctx->tree);
	list_del_init(&reg->deferred);
	if (!list_empty(&reg->queue)) {
		list_del_init(&reg->queue);
		ctx->nqueued--;
	}
	ctx->nregs--;
	ummunotify_take_gauges(ctx, &g);
	reading = reg->reading != 0;
	if (reading)
		reg->dead = true;
	spin_unlock(&ctx->lock);
	start = reg->start;
	end = reg->last + 1;

	/*
	 * A read() is copying this registration's report right now: let it
	 * finish, so that no report of the cookie is delivered after we
	 * return and no reader touches freed memory.  Each reader drops
	 * ->reading under ctx->lock; taking the lock after seeing it reach 0
	 * orders the free after the last reader's last access.  On a fatal
	 * signal the last reader still copying is left to free it.
	 */
	if (reading) {
		wait_event_killable(ctx->unreg_wq, !READ_ONCE(reg->reading));
		spin_lock(&ctx->lock);
		reading = reg->reading != 0;
		if (reading)
			reg->orphan = true;
		spin_unlock(&ctx->lock);
	}
	if (!reading)
		kfree(reg);

	trace_ummunotify_unregister(ctx->id, cookie, start, end, g.regions,
				    ctx->tgid, g.queued, g.seq, ctx->tgid_start);
	return reading ? -EINTR : 0;
}

static long ummunotify_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	struct ummunotify_ctx *ctx = file->private_data;
	void __user *uarg = (void __user *)arg;

	/* Any ioctl, even a failing one, ends the EXCHANGE_FEATURES window. */
	if (cmd != UMMUNOTIFY_EXCHANGE_FEATURES) {
		spin_lock(&ctx->lock);
		ctx->used = true;
		spin_unlock(&ctx->lock);
	}
	switch (cmd) {
	case UMMUNOTIFY_EXCHANGE_FEATURES:
		return ummunotify_exchange_features(ctx, uarg);
	case UMMUNOTIFY_REGISTER_REGION:
		return ummunotify_register_region(ctx, uarg);
	case UMMUNOTIFY_UNREGISTER_REGION:
		return ummunotify_unregister_region(ctx, uarg);
	default:
		return -ENOTTY;
	}
}

/* The counter page again after MADV_DONTNEED (or any zap) of it. */
static vm_fault_t ummunotify_counter_fault(struct vm_fault *vmf)
{
	struct ummunotify_ctx *ctx = vmf->vma->vm_file->private_data;

	if (vmf->pgoff)
		return VM_FAULT_SIGBUS;
	vmf->page = virt_to_page(ctx->counter);
	get_page(vmf->page);
	return 0;
}

static const struct vm_operations_struct ummunotify_counter_vm_ops = {
	.fault	= ummunotify_counter_fault,
};

/*
 * The generation counter: one read-only page, offset 0, any length from 1
 * to PAGE_SIZE.  VM_MAYWRITE is cleared so mprotect() cannot make it
 * writable later; VM_DONTEXPAND stops mremap() from growing it.
 */
static int ummunotify_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct ummunotify_ctx *ctx = file->private_data;

	if (vma->vm_pgoff || vma->vm_end - vma->vm_start != PAGE_SIZE)
		return -EINVAL;
	if (vma->vm_flags & VM_WRITE)
		return -EPERM;

	ummunotify_set_vm_flags(vma, VM_DONTEXPAND | VM_DONTDUMP, VM_MAYWRITE);
	vma->vm_ops = &ummunotify_counter_vm_ops;
	return vm_insert_page(vma, vma->vm_start, virt_to_page(ctx->counter));
}

static const struct file_operations ummunotify_fops = {
	.owner		= THIS_MODULE,
	.open		= ummunotify_open,
	.release	= ummunotify_release,
	.read		= ummunotify_read,
	.poll		= ummunotify_poll,
	.fasync		= ummunotify_fasync,
	.unlocked_ioctl	= ummunotify_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= ummunotify_mmap,
};

static struct miscdevice ummunotify_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "ummunotify",
	.fops	= &ummunotify_fops,
	.mode	= 0444,
};

static int __init ummunotify_init(void)
{
	return misc_register(&ummunotify_misc);
}

static void __exit ummunotify_exit(void)
{
	misc_deregister(&ummunotify_misc);
}

module_init(ummunotify_init);
module_exit(ummunotify_exit);

MODULE_AUTHOR("ummu project");
MODULE_DESCRIPTION("Relay MMU invalidations of watched ranges to user space");
MODULE_LICENSE("GPL");
