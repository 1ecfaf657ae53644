// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ummunotify.bpf.c - aggregates the ummunotify driver's tracepoints.
 *
 * Raw tracepoints (scalar u64 args, see docs/tracepoints.md):
 *   ummunotify_notify(ctx_id, tgid, start, end, reason, hits, queued, generation)
 *   ummunotify_read(ctx_id, events, still_queued)
 *   ummunotify_register(ctx_id, cookie, start, end, held_after)
 *   ummunotify_unregister(ctx_id, cookie, start, end, held_after)
 *
 * Totals live in per-CPU arrays that never lose a count; per-process and
 * per-context rows live in bounded per-CPU hash maps whose overflow is
 * counted in the totals. User space removes rows of exited processes.
 */
#include "ummu_helpers.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define UN_MAX_PROCS 2048
#define UN_MAX_CTXS 1024

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct un_totals);
} un_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UN_NR_HISTS);
	__type(key, __u32);
	__type(value, struct ummu_hist);
} un_hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, UN_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct un_proc);
} un_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, UN_MAX_CTXS);
	__type(key, __u64);
	__type(value, struct un_ctx);
} un_ctxs SEC(".maps");

static const struct un_proc un_proc_zero;

static const struct un_ctx un_ctx_zero;

static __always_inline struct un_totals *totals(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&un_totals, &zero);
}

static __always_inline struct un_proc *proc_row(__u32 tgid, struct un_totals *t)
{
	struct un_proc *p = bpf_map_lookup_elem(&un_procs, &tgid);
	long err;

	if (p)
		return p;
	err = bpf_map_update_elem(&un_procs, &tgid, &un_proc_zero, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		t->proc_overflow++;
		return NULL;
	}
	p = bpf_map_lookup_elem(&un_procs, &tgid);
	if (p && ummu_current_tgid() == tgid)
		bpf_get_current_comm(p->comm, sizeof(p->comm));
	return p;
}

static __always_inline struct un_ctx *ctx_row(__u64 ctx_id, __u32 tgid,
					      struct un_totals *t)
{
	struct un_ctx *c = ummu_lookup_or_init(&un_ctxs, &ctx_id, &un_ctx_zero,
					       &t->ctx_overflow);

	if (c && tgid)
		c->tgid = tgid;
	return c;
}

SEC("raw_tp/ummunotify_notify")
int BPF_PROG(un_notify, __u64 ctx_id, __u64 tgid64, __u64 start, __u64 end,
	     __u64 reason, __u64 hits, __u64 queued, __u64 generation)
{
	__u32 tgid = (__u32)tgid64;
	__u64 bytes = ummu_span_bytes(start, end);
	__u64 merged = hits > queued ? hits - queued : 0;
	struct un_totals *t = totals();
	struct ummu_hist *h;
	struct un_proc *p;
	struct un_ctx *c;
	__u32 r = reason < UMMU_REASON_OTHER ? (__u32)reason : UMMU_REASON_OTHER;
	__u32 idx = UN_HIST_SPAN;

	if (!t)
		return 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	if (!hits) {
		t->notify_nohit++;
		return 0;
	}
	if (r >= UMMU_NR_REASONS)
		return 0;
	t->inval[r]++;
	t->bytes[r] += bytes;
	t->queued += queued;
	t->merged += merged;

	h = bpf_map_lookup_elem(&un_hists, &idx);
	if (h)
		ummu_hist_add(h, bytes);

	p = proc_row(tgid, t);
	if (p) {
		p->inval[r]++;
		p->bytes[r] += bytes;
		p->queued += queued;
		p->merged += merged;
	}
	c = ctx_row(ctx_id, tgid, t);
	if (c) {
		c->inval++;
		c->bytes += bytes;
		c->queued += queued;
		c->merged += merged;
		/* Monotonic per context: user space takes the max over CPUs. */
		if (generation > c->generation)
			c->generation = generation;
	}
	if (ummu_cfg.emit_events) {
		__u64 a[8] = { ctx_id, tgid64, start, end, reason, hits, queued,
			       generation };

		ummu_emit(UMMU_EV_UN_NOTIFY, tgid, a, 8, bpf_ktime_get_ns(), 0);
	}
	return 0;
}

SEC("raw_tp/ummunotify_read")
int BPF_PROG(un_read, __u64 ctx_id, __u64 nevents, __u64 still_queued)
{
	__u32 tgid = ummu_current_tgid();
	__u64 ts = bpf_ktime_get_ns();
	struct un_totals *t = totals();
	struct ummu_hist *h;
	struct un_proc *p;
	struct un_ctx *c;
	__u32 idx = UN_HIST_READ_BATCH;

	if (!t)
		return 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	t->reads++;
	t->events_read += nevents;
	h = bpf_map_lookup_elem(&un_hists, &idx);
	if (h)
		ummu_hist_add(h, nevents);
	p = proc_row(tgid, t);
	if (p) {
		p->reads++;
		p->events_read += nevents;
	}
	c = ctx_row(ctx_id, tgid, t);
	if (c) {
		c->reads++;
		c->events_read += nevents;
		c->backlog = still_queued;
		c->backlog_ts = ts;
	}
	{
		__u64 a[3] = { ctx_id, nevents, still_queued };

		ummu_emit(UMMU_EV_UN_READ, tgid, a, 3, ts, 0);
	}
	return 0;
}

static __always_inline int un_reg(__u32 type, __u64 ctx_id, __u64 cookie,
				  __u64 start, __u64 end, __u64 held_after)
{
	__u32 tgid = ummu_current_tgid();
	__u64 ts = bpf_ktime_get_ns();
	struct un_totals *t = totals();
	struct un_ctx *c;

	if (!t)
		return 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	if (type == UMMU_EV_UN_REGISTER)
		t->registers++;
	else
		t->unregisters++;
	c = ctx_row(ctx_id, tgid, t);
	if (c) {
		c->held = held_after;
		c->held_ts = ts;
	}
	{
		__u64 a[5] = { ctx_id, cookie, start, end, held_after };

		ummu_emit(type, tgid, a, 5, ts, 0);
	}
	return 0;
}

SEC("raw_tp/ummunotify_register")
int BPF_PROG(un_register, __u64 ctx_id, __u64 cookie, __u64 start, __u64 end,
	     __u64 held_after)
{
	return un_reg(UMMU_EV_UN_REGISTER, ctx_id, cookie, start, end, held_after);
}

SEC("raw_tp/ummunotify_unregister")
int BPF_PROG(un_unregister, __u64 ctx_id, __u64 cookie, __u64 start, __u64 end,
	     __u64 held_after)
{
	return un_reg(UMMU_EV_UN_UNREGISTER, ctx_id, cookie, start, end,
		      held_after);
}
