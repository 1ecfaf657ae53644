// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * umem.bpf.c - aggregates the umem driver's tracepoints.
 *
 * Raw tracepoints (scalar u64 args, see docs/tracepoints.md):
 *   umem_fault(area_id, pgoff, must_wait, tgid, tgid_start)  faulting thread
 *   umem_fault_done(area_id, pgoff, outcome, wait_ns, tgid, tgid_start,
 *                   wait_start)
 *                                                            same thread
 *   umem_read(area_id, handed, pending, client_tgid)         server
 *   umem_write(area_id, pgoff, on_demand, service_ns, tgid, tgid_start)
 *                                                            server, per page
 *   umem_release(area_id, client_tgid)                       last close
 *
 * The driver measures the durations (wait_ns, service_ns) and names the
 * process to charge, so nothing here pairs events or reads a clock (except
 * the event timestamp with --events): each program makes at most one keyed
 * map access. Rows that several CPUs write are per-CPU (plain adds); the
 * area row is written only under the driver's area mutex (plain stores).
 */
#include "ummu_helpers.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Defaults; user space sizes the per-CPU maps for the machine at load. */
#define UM_MAX_PROCS 1024
#define UM_MAX_AREAS 1024

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
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
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

static __always_inline struct um_proc *proc_row(__u32 tgid, __u64 start,
						struct um_totals *t)
{
	return ummu_proc_row(&um_procs, tgid, start, &um_proc_zero,
			     &t->proc_overflow,
			     __builtin_offsetof(struct um_proc, comm));
}

SEC("raw_tp/umem_fault")
int BPF_PROG(um_fault, __u64 area_id, __u64 pgoff, __u64 must_wait,
	     __u64 tgid64, __u64 tgid_start)
{
	__u32 tgid = (__u32)tgid64;
	struct um_totals *t = totals();
	struct um_proc *p;

	if (!t)
		return 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	t->faults++;
	if (must_wait)
		t->faults_waited++;
	p = proc_row(tgid, tgid_start, t);
	if (p) {
		p->faults++;
		if (must_wait)
			p->faults_waited++;
	}
	if (ummu_cfg.emit_events) {
		__u64 args[4] = { area_id, pgoff, must_wait, tgid64 };

		ummu_emit(UMMU_EV_UM_FAULT, tgid, args, 4, bpf_ktime_get_ns(), 0);
	}
	return 0;
}

SEC("raw_tp/umem_fault_done")
int BPF_PROG(um_fault_done, __u64 area_id, __u64 pgoff, __u64 outcome,
	     __u64 wait_ns, __u64 tgid64, __u64 tgid_start, __u64 wait_start)
{
	__u32 tgid = (__u32)tgid64;
	struct um_totals *t = totals();
	struct ummu_hist *h;
	struct um_proc *p;
	__u32 o = outcome < UMMU_UMEM_OUTCOMES - 1 ? (__u32)outcome
						   : UMMU_UMEM_OUTCOMES - 1;

	if (!t)
		return 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	if (o < UMMU_UMEM_OUTCOMES)
		t->done[o]++;
	/*
	 * A must_wait fault ends in a wait or at once in an error; one that
	 * did not have to wait ends served at once (docs/tracepoints.md).  A
	 * wait that began before the programs were loaded ends a fault they
	 * never counted: left out, or it would hide a later waiting fault.
	 */
	if (wait_ns ? wait_start >= ummu_cfg.loaded_ns
		    : outcome == UMMU_UMEM_ERROR)
		t->waits_ended++;
	/* A stall is a wait: 0 says the thread did not wait. */
	if (wait_ns) {
		h = hist(UM_HIST_STALL);
		if (h)
			ummu_hist_add(h, wait_ns);
		p = proc_row(tgid, tgid_start, t);
		if (p)
			ummu_hist_add(&p->stall, wait_ns);
	}
	if (ummu_cfg.emit_events) {
		__u64 args[3] = { area_id, pgoff, outcome };

		ummu_emit(UMMU_EV_UM_FAULT_DONE, tgid, args, 3, bpf_ktime_get_ns(),
			  wait_ns);
	}
	return 0;
}

SEC("raw_tp/umem_read")
int BPF_PROG(um_read, __u64 area_id, __u64 handed, __u64 pending,
	     __u64 client64)
{
	__u32 tgid = ummu_current_tgid_if_used();	/* the server */
	__u32 client = (__u32)client64;
	struct um_totals *t = totals();
	struct ummu_hist *h;
	struct um_area *a;

	if (!t)
		return 0;
	/* The filter matches the server itself or the area's client. */
	if (ummu_filtered(tgid) && ummu_filtered(client)) {
		t->filtered++;
		return 0;
	}
	t->reads++;
	t->handed += handed;
	h = hist(UM_HIST_READ_BATCH);
	if (h)
		ummu_hist_add(h, handed);
	a = ummu_lookup_or_init(&um_areas, &area_id, &um_area_zero,
				&t->area_overflow);
	if (a) {
		/* Under the driver's area mutex: the last store is the newest. */
		a->client_tgid = client;
		a->pending = pending;
	}
	if (ummu_cfg.emit_events) {
		__u64 args[3] = { area_id, handed, pending };

		ummu_emit(UMMU_EV_UM_READ, tgid, args, 3, bpf_ktime_get_ns(), 0);
	}
	return 0;
}

SEC("raw_tp/umem_write")
int BPF_PROG(um_write, __u64 area_id, __u64 pgoff, __u64 on_demand,
	     __u64 service_ns, __u64 tgid64, __u64 tgid_start)
{
	__u32 tgid = ummu_current_tgid_if_used();	/* the server */
	__u32 client = (__u32)tgid64;
	struct um_totals *t = totals();
	struct ummu_hist *h;
	struct um_proc *p;

	if (!t)
		return 0;
	if (ummu_filtered(tgid) && ummu_filtered(client)) {
		t->filtered++;
		return 0;
	}
	t->writes++;
	if (on_demand) {
		t->on_demand++;
		h = hist(UM_HIST_SERVICE);
		if (h)
			ummu_hist_add(h, service_ns);
		p = proc_row(client, tgid_start, t);
		if (p) {
			ummu_hist_add(&p->service, service_ns);
			p->on_demand++;
		}
	} else {
		t->pushed++;
	}
	if (ummu_cfg.emit_events) {
		__u64 args[3] = { area_id, pgoff, on_demand };

		ummu_emit(UMMU_EV_UM_WRITE, client ? client : tgid, args, 3,
			  bpf_ktime_get_ns(), service_ns);
	}
	return 0;
}

/* Nobody can serve the area any more: its gauge goes at once. */
SEC("raw_tp/umem_release")
int BPF_PROG(um_release, __u64 area_id)
{
	bpf_map_delete_elem(&um_areas, &area_id);
	return 0;
}
