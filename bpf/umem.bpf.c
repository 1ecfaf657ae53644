// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * umem.bpf.c - aggregates the umem driver's tracepoints.
 *
 * Raw tracepoints (scalar u64 args, see docs/tracepoints.md):
 *   umem_fault(area_id, pgoff, must_wait, tgid)     in the faulting thread
 *   umem_fault_done(area_id, pgoff, outcome)        in the same thread
 *   umem_read(area_id, handed, pending)             in the server
 *   umem_write(area_id, pgoff, on_demand)           in the server, per page
 *
 * Service latency: first fault on a page -> the server's write of it, keyed
 * by (area, pgoff) in a bounded hash map; a start that does not fit is
 * counted (page_overflow), never silent, and user space expires starts
 * older than its --max-age. Stall latency: fault -> fault_done of one
 * thread, kept in the thread's task storage (stall_overflow counts a
 * failed allocation).
 */
#include "ummu_helpers.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define UM_MAX_PROCS 1024
#define UM_MAX_AREAS 1024
#define UM_MAX_PAGES 16384

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct um_totals);
} um_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UM_NR_HISTS);
	__type(key, __u32);
	__type(value, struct ummu_hist);
} um_hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UM_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct um_proc);
} um_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UM_MAX_AREAS);
	__type(key, __u64);
	__type(value, struct um_area);
} um_areas SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UM_MAX_PAGES);
	__type(key, struct um_page_key);
	__type(value, struct um_page_val);
} um_pages SEC(".maps");

/*
 * Stall start of the current thread's fault: a thread waits on at most one
 * page at a time, and every umem_fault is followed by its umem_fault_done
 * in the same thread (docs/tracepoints.md), so per-task storage holds it:
 * no hash insert/delete on the fault path, and it is freed with the task.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct um_stall);
} um_stalls SEC(".maps");

static const struct um_proc um_proc_zero;
static const struct um_area um_area_zero;

static __always_inline struct um_totals *totals(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&um_totals, &zero);
}

static __always_inline struct ummu_hist *hist(__u32 idx)
{
	return bpf_map_lookup_elem(&um_hists, &idx);
}

static __always_inline struct um_proc *proc_row(__u32 tgid, struct um_totals *t)
{
	struct um_proc *p = bpf_map_lookup_elem(&um_procs, &tgid);
	long err;

	if (p)
		return p;
	err = bpf_map_update_elem(&um_procs, &tgid, &um_proc_zero, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		t->proc_overflow++;
		return NULL;
	}
	p = bpf_map_lookup_elem(&um_procs, &tgid);
	if (p && ummu_current_tgid() == tgid)
		bpf_get_current_comm(p->comm, sizeof(p->comm));
	return p;
}

static __always_inline struct um_area *area_row(__u64 area_id,
						struct um_totals *t)
{
	return ummu_lookup_or_init(&um_areas, &area_id, &um_area_zero,
				   &t->area_overflow);
}

SEC("raw_tp/umem_fault")
int BPF_PROG(um_fault, __u64 area_id, __u64 pgoff, __u64 must_wait,
	     __u64 tgid64)
{
	__u32 tgid = (__u32)tgid64;
	struct um_totals *t = totals();
	struct um_proc *p;
	struct um_area *a;
	__u64 ts = 0;

	if (!t)
		return 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	t->faults++;
	if (must_wait)
		t->faults_waited++;

	p = proc_row(tgid, t);
	if (p) {
		__sync_fetch_and_add(&p->faults, 1);
		if (must_wait)
			__sync_fetch_and_add(&p->faults_waited, 1);
	}
	a = area_row(area_id, t);
	if (a && !a->client_tgid)
		a->client_tgid = tgid;

	if (must_wait || ummu_cfg.emit_events)
		ts = bpf_ktime_get_ns();
	if (must_wait) {
		struct um_page_key pk = { .area_id = area_id, .pgoff = pgoff };
		struct um_page_val pv = { .ts = ts, .tgid = tgid };
		struct um_stall *st;
		long err;

		/* The first fault on a page starts its service clock. */
		err = bpf_map_update_elem(&um_pages, &pk, &pv, BPF_NOEXIST);
		if (err && err != -EEXIST)
			t->page_overflow++;
		st = bpf_task_storage_get(&um_stalls, bpf_get_current_task_btf(),
					  0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (st) {
			st->area_id = area_id;
			st->pgoff = pgoff;
			st->ts = ts;
			st->tgid = tgid;
		} else {
			t->stall_overflow++;
		}
	}
	{
		__u64 args[4] = { area_id, pgoff, must_wait, tgid64 };

		ummu_emit(UMMU_EV_UM_FAULT, tgid, args, 4, ts, 0);
	}
	return 0;
}

SEC("raw_tp/umem_fault_done")
int BPF_PROG(um_fault_done, __u64 area_id, __u64 pgoff, __u64 outcome)
{
	__u32 tgid = ummu_current_tgid();
	__u64 ts = bpf_ktime_get_ns();
	struct um_totals *t = totals();
	struct um_stall *start;
	struct ummu_hist *h;
	struct um_proc *p;
	__u64 lat = 0;
	__u32 o = outcome < UMMU_UMEM_OUTCOMES - 1 ? (__u32)outcome
						   : UMMU_UMEM_OUTCOMES - 1;

	if (!t)
		return 0;
	start = bpf_task_storage_get(&um_stalls, bpf_get_current_task_btf(), 0, 0);
	if (start && (!start->ts || start->area_id != area_id ||
		      start->pgoff != pgoff))
		start = NULL;
	if (start)
		tgid = start->tgid;	/* the fault's process, as umem_fault saw it */
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	if (o < UMMU_UMEM_OUTCOMES)
		t->done[o]++;
	if (!start) {
		/*
		 * A fault that did not wait (must_wait = 0 is followed at once
		 * by done(served)) is not a stall; anything else without a
		 * start (map full: counted as stall_overflow; expired) is.
		 */
		if (outcome != 0)
			t->stall_unmatched++;
	} else {
		lat = ts > start->ts ? ts - start->ts : 0;
		start->ts = 0;
		h = hist(UM_HIST_STALL);
		if (h)
			ummu_hist_add(h, lat);
		p = bpf_map_lookup_elem(&um_procs, &tgid);
		if (p)
			ummu_hist_add_atomic(&p->stall, lat);
	}
	{
		__u64 args[3] = { area_id, pgoff, outcome };

		ummu_emit(UMMU_EV_UM_FAULT_DONE, tgid, args, 3, ts, lat);
	}
	return 0;
}

SEC("raw_tp/umem_read")
int BPF_PROG(um_read, __u64 area_id, __u64 handed, __u64 pending)
{
	__u32 tgid = ummu_current_tgid();
	struct um_totals *t = totals();
	struct ummu_hist *h;
	struct um_area *a;

	if (!t)
		return 0;
	a = bpf_map_lookup_elem(&um_areas, &area_id);
	/* The filter matches the server itself or the area's client. */
	if (ummu_filtered(tgid) && !(a && !ummu_filtered(a->client_tgid))) {
		t->filtered++;
		return 0;
	}
	t->reads++;
	t->handed += handed;
	h = hist(UM_HIST_READ_BATCH);
	if (h)
		ummu_hist_add(h, handed);
	if (!a)
		a = area_row(area_id, t);
	if (a)
		a->pending = pending;	/* one shared value: the last read wins */
	if (ummu_cfg.emit_events) {
		__u64 args[3] = { area_id, handed, pending };

		ummu_emit(UMMU_EV_UM_READ, tgid, args, 3, bpf_ktime_get_ns(), 0);
	}
	return 0;
}

SEC("raw_tp/umem_write")
int BPF_PROG(um_write, __u64 area_id, __u64 pgoff, __u64 on_demand)
{
	__u32 tgid = ummu_current_tgid();
	__u64 ts = bpf_ktime_get_ns();
	struct um_page_key pk = { .area_id = area_id, .pgoff = pgoff };
	struct um_totals *t = totals();
	struct um_page_val *pv;
	struct ummu_hist *h;
	struct um_proc *p;
	struct um_area *a;
	__u32 client = 0;
	__u64 lat = 0;

	if (!t)
		return 0;
	/* Only a requested page can have a service start. */
	pv = on_demand ? bpf_map_lookup_elem(&um_pages, &pk) : NULL;
	if (pv)
		client = pv->tgid;
	if (ummu_cfg.filter_tgid && !pv) {
		/* A pushed page: the filter asks whose area it is. */
		a = bpf_map_lookup_elem(&um_areas, &area_id);
		if (a)
			client = a->client_tgid;
	}
	if (ummu_filtered(tgid) && ummu_filtered(client)) {
		t->filtered++;
		return 0;
	}
	t->writes++;
	if (on_demand)
		t->on_demand++;
	else
		t->pushed++;
	if (pv) {
		lat = ts > pv->ts ? ts - pv->ts : 0;
		bpf_map_delete_elem(&um_pages, &pk);
		h = hist(UM_HIST_SERVICE);
		if (h)
			ummu_hist_add(h, lat);
		p = bpf_map_lookup_elem(&um_procs, &client);
		if (p) {
			ummu_hist_add_atomic(&p->service, lat);
			__sync_fetch_and_add(&p->on_demand, 1);
		}
	} else if (on_demand) {
		t->service_unmatched++;
	}
	{
		__u64 args[3] = { area_id, pgoff, on_demand };

		ummu_emit(UMMU_EV_UM_WRITE, client ? client : tgid, args, 3, ts,
			  lat);
	}
	return 0;
}
