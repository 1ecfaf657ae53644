// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ummunotify.bpf.c - aggregates the ummunotify driver's tracepoints.
 *
 * Raw tracepoints (scalar u64 args, see docs/tracepoints.md):
 *   ummunotify_notify(ctx_id, tgid, start, end, reason, hits, queued, generation,
 *                     tgid_start)
 *   ummunotify_read(ctx_id, events, queued, tgid, regions, seq, tgid_start)
 *   ummunotify_register(ctx_id, cookie, start, end, regions, tgid, queued, seq,
 *                       tgid_start)
 *   ummunotify_unregister(same as register)
 *   ummunotify_release(ctx_id, tgid, regions, tgid_start)
 *
 * Totals live in per-CPU arrays that never lose a count. notify counts per
 * process (un_procs, keyed by the owner's tgid); read and (un)register
 * touch only their context's row (un_ctxs): the driver's gauges and the
 * context's reads. Both are bounded per-CPU hash maps whose overflow is
 * counted in the totals: one keyed access per event, plain adds, no clock
 * read (except the event timestamp with --events). A context's row goes at
 * its release, its reads folded into its process's row first.
 */
#include "ummu_helpers.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Defaults; user space sizes the per-CPU maps for the machine at load. */
#define UN_MAX_PROCS 2048
#define UN_MAX_CTXS 1024
/* Bound of the per-CPU walk at release (bpf_loop stops at the last CPU). */
#define UN_MAX_CPUS 8192

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

static __always_inline struct un_proc *proc_row(__u32 tgid, __u64 start,
						struct un_totals *t)
{
	return ummu_proc_row(&un_procs, tgid, start, &un_proc_zero,
			     &t->proc_overflow,
			     __builtin_offsetof(struct un_proc, comm));
}

/*
 * The context's row with the driver's gauges applied: this CPU's slot keeps
 * those of the highest seq it saw (events fire after the driver's lock is
 * dropped, so an older snapshot can come later, even on this CPU).
 */
static __always_inline struct un_ctx *ctx_gauges(__u64 ctx_id, __u32 tgid,
						 __u64 tgid_start, __u64 held,
						 __u64 backlog, __u64 seq,
						 struct un_totals *t)
{
	struct un_ctx *c = ummu_lookup_or_init(&un_ctxs, &ctx_id, &un_ctx_zero,
					       &t->ctx_overflow);

	if (!c)
		return NULL;
	c->tgid = tgid;
	c->tgid_start = tgid_start;
	if (seq > c->seq) {
		c->seq = seq;
		c->held = held;
		c->backlog = backlog;
	}
	return c;
}

SEC("raw_tp/ummunotify_notify")
int BPF_PROG(un_notify, __u64 ctx_id, __u64 tgid64, __u64 start, __u64 end,
	     __u64 reason, __u64 hits, __u64 queued, __u64 generation,
	     __u64 tgid_start)
{
	__u32 tgid = (__u32)tgid64;
	__u64 bytes = ummu_span_bytes(start, end);
	__u64 merged = hits > queued ? hits - queued : 0;
	struct un_totals *t = totals();
	struct ummu_hist *h;
	struct un_proc *p;
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

	p = proc_row(tgid, tgid_start, t);
	if (p) {
		p->inval[r]++;
		p->bytes[r] += bytes;
		p->queued += queued;
		p->merged += merged;
	}
	if (ummu_cfg.emit_events) {
		__u64 a[8] = { ctx_id, tgid64, start, end, reason, hits, queued,
			       generation };

		ummu_emit(UMMU_EV_UN_NOTIFY, tgid, a, 8, bpf_ktime_get_ns(), 0);
	}
	return 0;
}

SEC("raw_tp/ummunotify_read")
int BPF_PROG(un_read, __u64 ctx_id, __u64 nevents, __u64 still_queued,
	     __u64 tgid64, __u64 regions, __u64 seq, __u64 tgid_start)
{
	__u32 tgid = (__u32)tgid64;
	struct un_totals *t = totals();
	struct ummu_hist *h;
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
	c = ctx_gauges(ctx_id, tgid, tgid_start, regions, still_queued, seq, t);
	if (c) {
		c->reads++;
		c->events_read += nevents;
	}
	if (ummu_cfg.emit_events) {
		__u64 a[3] = { ctx_id, nevents, still_queued };

		ummu_emit(UMMU_EV_UN_READ, tgid, a, 3, bpf_ktime_get_ns(), 0);
	}
	return 0;
}

static __always_inline int un_reg(__u32 type, __u64 ctx_id, __u64 cookie,
				  __u64 start, __u64 end, __u64 held_after,
				  __u32 tgid, __u64 queued, __u64 seq,
				  __u64 tgid_start)
{
	struct un_totals *t = totals();

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
	ctx_gauges(ctx_id, tgid, tgid_start, held_after, queued, seq, t);
	if (ummu_cfg.emit_events) {
		__u64 a[5] = { ctx_id, cookie, start, end, held_after };

		ummu_emit(type, tgid, a, 5, bpf_ktime_get_ns(), 0);
	}
	return 0;
}

SEC("raw_tp/ummunotify_register")
int BPF_PROG(un_register, __u64 ctx_id, __u64 cookie, __u64 start, __u64 end,
	     __u64 held_after, __u64 tgid, __u64 queued, __u64 seq,
	     __u64 tgid_start)
{
	return un_reg(UMMU_EV_UN_REGISTER, ctx_id, cookie, start, end, held_after,
		      (__u32)tgid, queued, seq, tgid_start);
}

SEC("raw_tp/ummunotify_unregister")
int BPF_PROG(un_unregister, __u64 ctx_id, __u64 cookie, __u64 start, __u64 end,
	     __u64 held_after, __u64 tgid, __u64 queued, __u64 seq,
	     __u64 tgid_start)
{
	return un_reg(UMMU_EV_UN_UNREGISTER, ctx_id, cookie, start, end,
		      held_after, (__u32)tgid, queued, seq, tgid_start);
}

struct un_fold {
	__u64 ctx_id;
	__u64 reads;
	__u64 events_read;
};

static long un_fold_cpu(__u32 cpu, void *data)
{
	struct un_fold *f = data;
	struct un_ctx *c = bpf_map_lookup_percpu_elem(&un_ctxs, &f->ctx_id, cpu);

	if (!c)
		return 1;	/* past the last possible CPU */
	f->reads += c->reads;
	f->events_read += c->events_read;
	return 0;
}

/*
 * The context is gone (once per context, after its last event): its reads
 * move to its process's row, then its row goes. Rare, so the walk over
 * every CPU's slot is affordable here.
 */
SEC("raw_tp/ummunotify_release")
int BPF_PROG(un_release, __u64 ctx_id, __u64 tgid64, __u64 regions,
	     __u64 tgid_start)
{
	struct un_fold f = { .ctx_id = ctx_id };
	struct un_totals *t = totals();
	struct un_proc *p;

	if (!t || !bpf_map_lookup_elem(&un_ctxs, &ctx_id))
		return 0;
	bpf_loop(UN_MAX_CPUS, un_fold_cpu, &f, 0);
	if (f.reads) {
		p = proc_row((__u32)tgid64, tgid_start, t);
		if (p) {
			p->reads += f.reads;
			p->events_read += f.events_read;
		}
	}
	bpf_map_delete_elem(&un_ctxs, &ctx_id);
	return 0;
}
