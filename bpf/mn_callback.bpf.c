// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * mn_callback.bpf.c - the time one MMU-notifier subscriber's own
 * invalidate_range_start callback takes, and its failures.
 *
 * The programs have no target in their section: user space loads one copy
 * of this object per subscriber, retargeted (bpf_program__set_attach_target)
 * at the function its ops point to, e.g. kvm_mmu_notifier_invalidate_range_start,
 * once mmu_notifier.bpf.c has seen the subscriber. Every classic
 * subscriber's callback has the same prototype:
 *   int (*invalidate_range_start)(struct mmu_notifier *,
 *                                 const struct mmu_notifier_range *);
 * The kernel needs BTF for the function: in-tree modules have it
 * (CONFIG_DEBUG_INFO_BTF_MODULES), out-of-tree ones do not.
 */
#include "ummu_helpers.bpf.h"
#include "kernel_types.bpf.h"
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One row: this copy of the object times one function. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mn_cb);
} cb_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} cb_tasks SEC(".maps");

static __always_inline bool cb_filtered(const struct mmu_notifier_range *range)
{
	struct task_struct *o;

	if (!ummu_cfg.filter_tgid)
		return false;
	o = BPF_CORE_READ(range, mm, owner);
	return !o || ummu_filtered(BPF_CORE_READ(o, tgid));
}

SEC("fentry")
int BPF_PROG(cb_entry, struct mmu_notifier *sub, const struct mmu_notifier_range *range)
{
	__u64 *ts = bpf_task_storage_get(&cb_tasks, bpf_get_current_task_btf(), 0,
					 BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (ts)
		*ts = bpf_ktime_get_ns();
	return 0;
}

SEC("fexit")
int BPF_PROG(cb_exit, struct mmu_notifier *sub, const struct mmu_notifier_range *range,
	     int ret)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 *ts = bpf_task_storage_get(&cb_tasks, bpf_get_current_task_btf(), 0, 0);
	__u32 zero = 0;
	struct mn_cb *c;

	if (!ts || !*ts)
		return 0;
	if (cb_filtered(range)) {
		*ts = 0;
		return 0;
	}
	c = bpf_map_lookup_elem(&cb_stats, &zero);
	if (c) {
		ummu_hist_add(&c->start_ns, now - *ts);
		if (ret)
			c->failed++;
	}
	*ts = 0;
	return 0;
}
