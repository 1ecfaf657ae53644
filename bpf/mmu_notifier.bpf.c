// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * mmu_notifier.bpf.c - the stock kernel's MMU-notifier core, for every mm
 * that has subscribers (KVM, RDMA ODP, GPU SVM, Xen, our drivers...).
 * No module needed: fentry/fexit on mm/mmu_notifier.c, CO-RE over BTF.
 *
 *   __mmu_notifier_invalidate_range_start(range)  entry + exit: count, span,
 *       reason, blockable, cause, the subscribers' start-side time, failure
 *   __mmu_notifier_invalidate_range_end(range)    entry + exit: end-side time
 *   __mmu_notifier_release(mm)                    mm teardown
 *   __mmu_notifier_clear_flush_young/clear_young/test_young   page aging
 *
 * The kernel calls these only for an mm with subscribers (mm_has_notifiers),
 * so every process we count has at least had one. Rows are keyed by the
 * mm's owner (mm->owner, CONFIG_MEMCG); the cause is the calling thread:
 * the owner itself, another process, or a kernel thread by name.
 * Subscribers are the ops of the classic subscriptions on the mm's list
 * (at most MN_MAX_WALK, more is counted) and, for interval notifiers, the
 * first interval of the mm's tree when it overlaps the range; user space
 * names them from /proc/kallsyms.
 */
#include "ummu_helpers.bpf.h"
#include "kernel_types.bpf.h"
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MN_MAX_PROCS 1024
#define MN_MAX_CAUSES 1024
#define MN_MAX_SUBS 1024

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mn_totals);
} mn_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MN_NR_HISTS);
	__type(key, __u32);
	__type(value, struct ummu_hist);
} mn_hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MN_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct mn_proc);
} mn_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MN_MAX_CAUSES);
	__type(key, struct mn_cause_key);
	__type(value, struct mn_cause_val);
} mn_causes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MN_MAX_SUBS);
	__type(key, struct mn_sub_key);
	__type(value, struct mn_sub);
} mn_subs SEC(".maps");

/* Entry time of the thread's current start/end call (they can sleep). */
struct mn_task {
	__u64 start_ts;
	__u64 end_ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mn_task);
} mn_tasks SEC(".maps");

static const struct mn_proc mn_proc_zero;
static const struct mn_cause_val mn_cause_zero;
static const struct mn_sub mn_sub_zero;

/* What a subscriber row is bumped for. */
enum mn_what { MN_WHAT_INVAL, MN_WHAT_RELEASE, MN_WHAT_YOUNG };

/*
 * a[r] += v with the bound checked next to the access: 6.1's verifier
 * forgets a bound checked earlier once the index has been spilled, and
 * clang drops a check it can prove redundant, so the empty asm hides r's
 * range from clang.
 */
static __always_inline void add_at(__u64 *a, __u32 r, __u64 v)
{
	asm volatile("" : "+r"(r));
	if (r < UMMU_NR_REASONS)
		a[r] += v;
}

static __always_inline void add_at_atomic(__u64 *a, __u32 r, __u64 v)
{
	asm volatile("" : "+r"(r));
	if (r < UMMU_NR_REASONS)
		__sync_fetch_and_add(&a[r], v);
}

static __always_inline struct mn_totals *totals(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&mn_totals, &zero);
}

static __always_inline void hist_add(__u32 idx, __u64 v)
{
	struct ummu_hist *h = bpf_map_lookup_elem(&mn_hists, &idx);

	if (h)
		ummu_hist_add(h, v);
}

/*
 * The tgid the mm belongs to. exit_mm() clears mm->owner when the last
 * user leaves, before mmput() tears the mm down: then the exiting thread
 * (its mm already NULL) is the owner.
 */
static __always_inline __u32 mn_owner(struct mm_struct *mm, struct task_struct *cur)
{
	struct task_struct *o = mm->owner;

	if (o)
		return o->tgid;
	if (!cur->mm && (cur->flags & (PF_EXITING | PF_KTHREAD)) == PF_EXITING)
		return cur->tgid;
	return 0;
}

static __always_inline __u32 mn_cause(struct mm_struct *mm, struct task_struct *cur,
				      __u32 owner)
{
	if (cur->flags & PF_KTHREAD)
		return MN_CAUSE_KTHREAD;
	if (cur->mm == mm || (__u32)cur->tgid == owner)
		return MN_CAUSE_SELF;
	return MN_CAUSE_OTHER;
}

/*
 * The owner's row.  A row of another start time is an exited process's
 * whose pid the owner took: zeroed and taken over (its last counts since
 * the previous snapshot are lost, not mixed into the new process's).
 */
static __always_inline struct mn_proc *proc_row(__u32 owner, struct mm_struct *mm,
						struct task_struct *cur, struct mn_totals *t)
{
	struct mn_proc *p = bpf_map_lookup_elem(&mn_procs, &owner);
	struct task_struct *o = mm->owner;
	__u64 start;
	long err;

	if (!o)
		o = cur;	/* the exiting owner (mn_owner) */
	start = o->group_leader->start_time;
	if (p && p->start_time == start)
		return p;
	/* New, or replaced by a zeroed row. */
	err = bpf_map_update_elem(&mn_procs, &owner, &mn_proc_zero, p ? BPF_EXIST : BPF_NOEXIST);
	if (err && err != -EEXIST) {
		t->proc_overflow++;
		return NULL;
	}
	p = bpf_map_lookup_elem(&mn_procs, &owner);
	if (!p)
		return NULL;
	p->start_time = start;
	bpf_probe_read_kernel_str(p->comm, sizeof(p->comm), o->comm);
	return p;
}

static __always_inline void sub_add(__u64 ops, __u64 callback_slot, __u32 owner,
				    __u32 kind, __u32 what, __u32 r,
				    __u64 bytes, struct mn_totals *t)
{
	struct mn_sub_key key = { .ops = ops, .owner = owner, .kind = kind };
	struct mn_sub *s = bpf_map_lookup_elem(&mn_subs, &key);
	long err;

	if (!s) {
		err = bpf_map_update_elem(&mn_subs, &key, &mn_sub_zero, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			t->sub_overflow++;
			return;
		}
		s = bpf_map_lookup_elem(&mn_subs, &key);
		if (!s)
			return;
		/* The callback's address, for user space to time it by name. */
		bpf_probe_read_kernel(&s->callback, sizeof(s->callback),
				      (void *)callback_slot);
	}
	switch (what) {
	case MN_WHAT_INVAL:
		add_at_atomic(s->inval, r, 1);
		add_at_atomic(s->bytes, r, bytes);
		break;
	case MN_WHAT_RELEASE:
		__sync_fetch_and_add(&s->release, 1);
		break;
	case MN_WHAT_YOUNG:
		__sync_fetch_and_add(&s->young, 1);
		break;
	}
}

/* Fields of the interval_tree_node holding an rb_node. */
static __always_inline __u64 itn_field(struct rb_node *rb, __u32 off)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v),
			      (void *)rb - bpf_core_field_offset(struct interval_tree_node, rb) + off);
	return v;
}

#define ITN_START bpf_core_field_offset(struct interval_tree_node, start)
#define ITN_LAST bpf_core_field_offset(struct interval_tree_node, last)
#define ITN_SUBTREE_LAST bpf_core_field_offset(struct interval_tree_node, __subtree_last)

/* A red-black tree of n nodes is at most 2*log2(n + 1) deep. */
#define MN_MAX_DESCENT 48

/*
 * The first interval of the mm's tree overlapping [start, last], by the
 * kernel's own descent (interval_tree_iter_first): each node's
 * __subtree_last bounds its subtree, so one path down the tree finds it.
 */
static __always_inline struct rb_node *itree_first(struct mmu_notifier_subscriptions *subs,
						   __u64 start, __u64 last,
						   struct mn_totals *t)
{
	struct rb_node *node = BPF_CORE_READ(subs, itree.rb_root.rb_node);
	struct rb_node *left;
	int i;

	if (!node || itn_field(node, ITN_SUBTREE_LAST) < start)
		return NULL;
#pragma clang loop unroll(disable)
	for (i = 0; i < MN_MAX_DESCENT; i++) {
		left = BPF_CORE_READ(node, rb_left);
		if (left && itn_field(left, ITN_SUBTREE_LAST) >= start) {
			node = left;
			continue;
		}
		if (itn_field(node, ITN_START) > last)
			return NULL;
		if (itn_field(node, ITN_LAST) >= start)
			return node;
		node = BPF_CORE_READ(node, rb_right);
		if (!node || itn_field(node, ITN_SUBTREE_LAST) < start)
			return NULL;
	}
	t->walk_truncated++;
	return NULL;
}

/*
 * Bumps the row of every subscriber of mm the call reaches; returns how
 * many. An invalidation reaches every classic subscriber and the first
 * interval notifier overlapping [start, end) (the kernel calls every
 * overlapping one; rows name the subscriber by the first one's ops). Release and
 * aging reach only classic subscribers whose ops have the callback at
 * `need` (an offset into the ops), as the kernel calls them.
 */
struct mn_walk {
	__u64 mm;		/* struct mm_struct * */
	__u64 start;
	__u64 end;
	__u64 bytes;
	__u32 owner;
	__u32 what;		/* enum mn_what */
	__u32 r;
	__u32 need;
};

__noinline int walk_subs(struct mn_walk *w)
{
	/*
	 * A global function: the verifier checks it once, for any arguments,
	 * not once per caller and path (which ran 6.1's verifier out of
	 * room). Hence plain data in, and the totals looked up again.
	 */
	struct mmu_notifier_subscriptions *subs;
	struct hlist_node *node;
	struct mn_totals *t;
	struct mm_struct *mm;
	struct rb_node *hit;
	__u64 start, end, bytes;
	__u32 found = 0, owner, what, r, need;
	int i;

	if (!w)
		return 0;
	start = w->start;
	end = w->end;
	bytes = w->bytes;
	owner = w->owner;
	what = w->what;
	r = w->r;
	need = w->need;
	mm = (struct mm_struct *)w->mm;
	subs = BPF_CORE_READ(mm, notifier_subscriptions);
	t = totals();
	if (!subs || !t)
		return 0;
	node = BPF_CORE_READ(subs, list.first);
	for (i = 0; i < MN_MAX_WALK && node; i++) {
		struct mmu_notifier *sub = (void *)node -
			bpf_core_field_offset(struct mmu_notifier, hlist);
		const struct mmu_notifier_ops *ops = BPF_CORE_READ(sub, ops);
		void *fn = NULL;

		node = BPF_CORE_READ(node, next);
		if (what != MN_WHAT_INVAL &&
		    (bpf_probe_read_kernel(&fn, sizeof(fn), (void *)ops + need) || !fn))
			continue;
		sub_add((__u64)ops,
			(__u64)ops + bpf_core_field_offset(struct mmu_notifier_ops,
							   invalidate_range_start),
			owner, MN_SUB_NOTIFIER, what, r, bytes, t);
		found++;
	}
	if (node)
		t->walk_truncated++;
	if (what != MN_WHAT_INVAL || !BPF_CORE_READ(subs, has_itree))
		return found;
	hit = itree_first(subs, start, end - 1, t);
	if (hit) {
		struct mmu_interval_notifier *in = (void *)hit -
			bpf_core_field_offset(struct mmu_interval_notifier, interval_tree) -
			bpf_core_field_offset(struct interval_tree_node, rb);
		const struct mmu_interval_notifier_ops *ops = BPF_CORE_READ(in, ops);

		sub_add((__u64)ops,
			(__u64)ops + bpf_core_field_offset(struct mmu_interval_notifier_ops,
							   invalidate),
			owner, MN_SUB_INTERVAL, what, r, bytes, t);
		found++;
	}
	return found;
}

SEC("fentry/__mmu_notifier_invalidate_range_start")
int BPF_PROG(mn_start_entry, struct mmu_notifier_range *range)
{
	struct mn_task *s = bpf_task_storage_get(&mn_tasks, bpf_get_current_task_btf(),
						 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (s)
		s->start_ts = bpf_ktime_get_ns();
	return 0;
}

SEC("fexit/__mmu_notifier_invalidate_range_start")
int BPF_PROG(mn_start_exit, struct mmu_notifier_range *range, int ret)
{
	__u64 now = bpf_ktime_get_ns();
	struct task_struct *cur = bpf_get_current_task_btf();
	struct mm_struct *mm = range->mm;
	struct mn_totals *t = totals();
	struct mn_cause_key ck = {};
	struct mn_walk walk = {};
	struct mn_cause_val *cv;
	struct mn_proc *p;
	struct mn_task *s;
	__u64 start = range->start, end = range->end, held = 0, bytes;
	__u32 owner, kind, event = range->event, nsubs;
	__u32 r = event < UMMU_REASON_OTHER ? event : UMMU_REASON_OTHER;
	bool blockable = range->flags & MMU_NOTIFIER_RANGE_BLOCKABLE;
	bool measured = false;

	if (!t || r >= UMMU_NR_REASONS)
		return 0;
	owner = mn_owner(mm, cur);
	if (ummu_filtered(owner)) {
		t->filtered++;
		return 0;
	}
	kind = mn_cause(mm, cur, owner);
	s = bpf_task_storage_get(&mn_tasks, cur, 0, 0);
	if (s && s->start_ts) {
		held = now - s->start_ts;
		s->start_ts = 0;
		measured = true;
	} else {
		t->start_lost++;
	}
	bytes = ummu_span_bytes(start, end);
	add_at(t->inval, r, 1);
	add_at(t->bytes, r, bytes);
	if (kind < MN_NR_CAUSES)
		t->by_cause[kind]++;
	if (!blockable)
		t->nonblock++;
	if (ret)
		t->failed++;
	hist_add(MN_HIST_SPAN, bytes);
	if (measured)
		hist_add(MN_HIST_START, held);

	if (!owner) {
		t->unowned++;
	} else {
		p = proc_row(owner, mm, cur, t);
		if (p) {
			add_at_atomic(p->inval, r, 1);
			add_at_atomic(p->bytes, r, bytes);
			if (kind < MN_NR_CAUSES)
				__sync_fetch_and_add(&p->by_cause[kind], 1);
			if (!blockable)
				__sync_fetch_and_add(&p->nonblock, 1);
			if (ret)
				__sync_fetch_and_add(&p->failed, 1);
			if (measured)
				ummu_hist_add_atomic(&p->start_ns, held);
		}
		ck.owner = owner;
		ck.kind = kind;
		ck.reason = r;
		if (kind == MN_CAUSE_OTHER) {
			ck.cause_tgid = cur->tgid;
			bpf_get_current_comm(ck.comm, sizeof(ck.comm));
		} else if (kind == MN_CAUSE_KTHREAD) {
			/* By name only: kworkers come and go, kswapd0 stays. */
			bpf_get_current_comm(ck.comm, sizeof(ck.comm));
		} else {
			ck.cause_tgid = owner;
		}
		cv = ummu_lookup_or_init(&mn_causes, &ck, &mn_cause_zero,
					 &t->cause_overflow);
		if (cv) {
			__sync_fetch_and_add(&cv->inval, 1);
			__sync_fetch_and_add(&cv->bytes, bytes);
		}
	}
	walk.mm = (__u64)mm;
	walk.start = start;
	walk.end = end;
	walk.bytes = bytes;
	walk.owner = owner;
	walk.what = MN_WHAT_INVAL;
	walk.r = r;
	nsubs = walk_subs(&walk);
	if (!nsubs)
		t->no_subscriber++;
	if (ummu_cfg.emit_events) {
		__u64 a[8] = { start, end, event, range->flags, kind, (__u32)cur->tgid,
			       nsubs, (__u64)(__s64)ret };

		ummu_emit(UMMU_EV_MN_INVALIDATE, owner, a, 8, now, held);
	}
	return 0;
}

SEC("fentry/__mmu_notifier_invalidate_range_end")
int BPF_PROG(mn_end_entry, struct mmu_notifier_range *range)
{
	struct mn_task *s = bpf_task_storage_get(&mn_tasks, bpf_get_current_task_btf(),
						 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (s)
		s->end_ts = bpf_ktime_get_ns();
	return 0;
}

SEC("fexit/__mmu_notifier_invalidate_range_end")
int BPF_PROG(mn_end_exit, struct mmu_notifier_range *range)
{
	__u64 now = bpf_ktime_get_ns();
	struct task_struct *cur = bpf_get_current_task_btf();
	struct mn_totals *t = totals();
	struct mn_task *s;
	struct mn_proc *p;
	__u32 owner;
	__u64 held;

	if (!t)
		return 0;
	owner = mn_owner(range->mm, cur);
	if (ummu_filtered(owner))
		return 0;
	s = bpf_task_storage_get(&mn_tasks, cur, 0, 0);
	if (!s || !s->end_ts) {
		t->start_lost++;
		return 0;
	}
	held = now - s->end_ts;
	s->end_ts = 0;
	hist_add(MN_HIST_END, held);
	if (!owner)
		return 0;
	p = bpf_map_lookup_elem(&mn_procs, &owner);
	if (p)
		ummu_hist_add_atomic(&p->end_ns, held);
	return 0;
}

SEC("fentry/__mmu_notifier_release")
int BPF_PROG(mn_release, struct mm_struct *mm)
{
	struct mn_walk walk = {};
	struct task_struct *cur = bpf_get_current_task_btf();
	struct mn_totals *t = totals();
	struct mn_proc *p;
	__u32 owner;

	if (!t)
		return 0;
	owner = mn_owner(mm, cur);
	if (ummu_filtered(owner)) {
		t->filtered++;
		return 0;
	}
	t->release++;
	if (owner) {
		p = proc_row(owner, mm, cur, t);
		if (p)
			__sync_fetch_and_add(&p->release, 1);
	}
	walk.mm = (__u64)mm;
	walk.end = ~0ULL;
	walk.owner = owner;
	walk.what = MN_WHAT_RELEASE;
	walk.need = bpf_core_field_offset(struct mmu_notifier_ops, release);
	walk_subs(&walk);
	return 0;
}

static __always_inline int mn_young(struct mm_struct *mm, __u32 kind, __u32 need)
{
	struct mn_walk walk = {};
	struct task_struct *cur = bpf_get_current_task_btf();
	struct mn_totals *t = totals();
	struct mn_proc *p;
	__u32 owner;

	if (!t || kind >= MN_NR_YOUNG)
		return 0;
	owner = mn_owner(mm, cur);
	if (ummu_filtered(owner)) {
		t->filtered++;
		return 0;
	}
	t->young[kind]++;
	if (owner) {
		p = proc_row(owner, mm, cur, t);
		if (p)
			__sync_fetch_and_add(&p->young, 1);
	}
	walk.mm = (__u64)mm;
	walk.end = ~0ULL;
	walk.owner = owner;
	walk.what = MN_WHAT_YOUNG;
	walk.need = need;
	walk_subs(&walk);
	return 0;
}

SEC("fentry/__mmu_notifier_clear_flush_young")
int BPF_PROG(mn_clear_flush_young, struct mm_struct *mm)
{
	return mn_young(mm, MN_YOUNG_CLEAR_FLUSH,
			bpf_core_field_offset(struct mmu_notifier_ops, clear_flush_young));
}

SEC("fentry/__mmu_notifier_clear_young")
int BPF_PROG(mn_clear_young, struct mm_struct *mm)
{
	return mn_young(mm, MN_YOUNG_CLEAR,
			bpf_core_field_offset(struct mmu_notifier_ops, clear_young));
}

SEC("fentry/__mmu_notifier_test_young")
int BPF_PROG(mn_test_young, struct mm_struct *mm)
{
	return mn_young(mm, MN_YOUNG_TEST,
			bpf_core_field_offset(struct mmu_notifier_ops, test_young));
}
