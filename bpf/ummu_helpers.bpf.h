/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Small helpers shared by the BPF programs: log2 slots, histogram updates,
 * the PID filter and the event ring buffer. BPF side only.
 */
#ifndef UMMU_HELPERS_BPF_H
#define UMMU_HELPERS_BPF_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "ummu_shared.h"

#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef EEXIST
#define EEXIST 17
#endif
#ifndef EAGAIN
#define EAGAIN 11
#endif

/* Set by user space before load; folds to constants in the verifier. */
const volatile struct ummu_config ummu_cfg = {};

/* Per-object event stream; its size is set by user space before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Events the ring buffer had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Bit length of v: 0 for 0, 1 for 1, 2 for 2..3, ... 64 for >= 2^63. */
static __always_inline __u32 ummu_bitlen(__u64 v)
{
	__u32 n = 0;

	if (v >> 32) { v >>= 32; n += 32; }
	if (v >> 16) { v >>= 16; n += 16; }
	if (v >> 8) { v >>= 8; n += 8; }
	if (v >> 4) { v >>= 4; n += 4; }
	if (v >> 2) { v >>= 2; n += 2; }
	if (v >> 1) { v >>= 1; n += 1; }
	return n + (__u32)v;
}

static __always_inline __u32 ummu_slot(__u64 v)
{
	__u32 s = ummu_bitlen(v);

	return s > UMMU_HIST_SLOTS - 1 ? UMMU_HIST_SLOTS - 1 : s;
}

/* Per-CPU histogram: plain adds. */
static __always_inline void ummu_hist_add(struct ummu_hist *h, __u64 v)
{
	__u32 s = ummu_slot(v);

	if (s < UMMU_HIST_SLOTS)
		h->slots[s]++;
	h->count++;
	h->sum += v;
}

/* Shared histogram (map value seen by every CPU): atomic adds. */
static __always_inline void ummu_hist_add_atomic(struct ummu_hist *h, __u64 v)
{
	__u32 s = ummu_slot(v);

	if (s < UMMU_HIST_SLOTS)
		__sync_fetch_and_add(&h->slots[s], 1);
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum, v);
}

/*
 * Bytes of an invalidated span. The whole-mm soft-dirty clear reports
 * [0, 2^64-1): not a span of memory, it counts 0 bytes (its invalidation
 * still counts). Other spans are clipped at 2^57, above any user address.
 */
static __always_inline __u64 ummu_span_bytes(__u64 start, __u64 end)
{
	if (end == ~0ULL || end <= start)
		return 0;
	if (end > UMMU_USER_ADDR_END)
		end = UMMU_USER_ADDR_END;
	return end > start ? end - start : 0;
}

static __always_inline bool ummu_filtered(__u32 tgid)
{
	return ummu_cfg.filter_tgid && ummu_cfg.filter_tgid != tgid;
}

static __always_inline __u32 ummu_current_tgid(void)
{
	return (__u32)(bpf_get_current_pid_tgid() >> 32);
}

/*
 * The current tgid where only the PID filter or an event record needs it,
 * else 0: the helper call is most of what such a program costs.
 */
static __always_inline __u32 ummu_current_tgid_if_used(void)
{
	return ummu_cfg.filter_tgid || ummu_cfg.emit_events ?
	       ummu_current_tgid() : 0;
}

/* Push one event; counts a drop when the ring buffer is full. */
static __always_inline void ummu_emit(__u32 type, __u32 tgid, const __u64 *args,
				      __u32 nargs, __u64 ts, __u64 latency)
{
	struct ummu_event *e;
	__u32 zero = 0;
	__u64 *d;
	__u32 i;

	if (!ummu_cfg.emit_events)
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		d = bpf_map_lookup_elem(&drops, &zero);
		if (d)
			(*d)++;
		return;
	}
	e->ts_ns = ts;
	e->type = type;
	e->cpu = bpf_get_smp_processor_id();
	e->tgid = tgid;
	e->tid = (__u32)bpf_get_current_pid_tgid();
#pragma unroll
	for (i = 0; i < UMMU_EVENT_ARGS; i++)
		e->args[i] = i < nargs ? args[i] : 0;
	e->latency_ns = latency;
	bpf_ringbuf_submit(e, 0);
}

/*
 * Look up key in a bounded hash map, inserting a zeroed value when absent.
 * Returns NULL (and bumps *overflow) when the map is full.
 */
static __always_inline void *ummu_lookup_or_init(void *map, const void *key,
						 const void *zero_val,
						 __u64 *overflow)
{
	void *v = bpf_map_lookup_elem(map, key);
	long err;

	if (v)
		return v;
	err = bpf_map_update_elem(map, key, zero_val, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		if (overflow)
			(*overflow)++;
		return NULL;
	}
	return bpf_map_lookup_elem(map, key);
}

/*
 * This CPU's copy of the per-process row of process (tgid, start) in a
 * bounded per-CPU hash map keyed by tgid whose rows begin with a __u64
 * start_time (struct un_proc): inserted zeroed when absent; a copy of
 * an older start time (an exited process's whose pid was reused) is zeroed
 * and taken over; an event of an older process than the copy's is not
 * charged to a process (the totals have it).  When the current task belongs to the process, the copy
 * of the CPU that inserts or takes over the row gets its comm at @comm_off
 * (char[16]).  NULL (and *overflow bumped) when the map is full.
 */
static __always_inline void *ummu_proc_row(void *map, __u32 tgid, __u64 start,
					   const void *zero_val,
					   __u64 *overflow, __u32 comm_off)
{
	char *row = bpf_map_lookup_elem(map, &tgid);
	long err;

	if (row && *(__u64 *)row == start)
		return row;
	/*
	 * An exited process's late event (a context's release, a page served
	 * for a request it queued) after another took its pid: the row is the
	 * newer one's now, and start times of one pid only grow.
	 */
	if (row && start < *(__u64 *)row)
		return NULL;
	if (row && !*(__u64 *)row) {
		/* Zero: this CPU's copy of a row another CPU inserted. */
		*(__u64 *)row = start;
		return row;
	}
	/*
	 * New, or another process's copy, zeroed on this CPU only (an update
	 * from BPF writes this CPU's copy of a per-CPU row).
	 */
	err = bpf_map_update_elem(map, &tgid, zero_val,
				  row ? BPF_EXIST : BPF_NOEXIST);
	if (err && err != -EEXIST) {
		(*overflow)++;
		return NULL;
	}
	row = bpf_map_lookup_elem(map, &tgid);
	if (!row)
		return NULL;
	*(__u64 *)row = start;
	if (ummu_current_tgid() == tgid)
		bpf_get_current_comm(row + comm_off, 16);
	return row;
}

#endif /* UMMU_HELPERS_BPF_H */
