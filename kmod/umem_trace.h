/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of /dev/umem.  The contract (argument order, units, when each
 * event fires) is docs/tracepoints.md, section "umem".  Every argument is a
 * scalar so that a raw_tp BPF program reads it as ctx[i].
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM umem

#if !defined(_UMEM_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _UMEM_TRACE_H

#include <linux/tracepoint.h>

/* umem_fault_done outcome; numbers are part of the contract. */
#define UMEM_FAULT_SERVED	0	/* page is served, the fault completes */
#define UMEM_FAULT_KILLED	1	/* fatal signal while waiting */
#define UMEM_FAULT_ERROR	2	/* SIGBUS or OOM: the fault cannot wait */
#define UMEM_FAULT_INTERRUPTED	3	/* signal handled; thread faults again */

TRACE_EVENT(umem_fault,
	TP_PROTO(u64 area, u64 pgoff, u32 must_wait, u32 tgid, u64 tgid_start),
	TP_ARGS(area, pgoff, must_wait, tgid, tgid_start),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u64, pgoff)
		__field(u32, must_wait)
		__field(u32, tgid)
		__field(u64, tgid_start)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->pgoff = pgoff;
		__entry->must_wait = must_wait;
		__entry->tgid = tgid;
		__entry->tgid_start = tgid_start;
	),
	TP_printk("area=%llu pgoff=%llu must_wait=%u tgid=%u tgid_start=%llu",
		  __entry->area, __entry->pgoff, __entry->must_wait,
		  __entry->tgid, __entry->tgid_start)
);

TRACE_EVENT(umem_fault_done,
	TP_PROTO(u64 area, u64 pgoff, u32 outcome, u64 wait_ns, u32 tgid,
		 u64 tgid_start, u64 wait_start),
	TP_ARGS(area, pgoff, outcome, wait_ns, tgid, tgid_start, wait_start),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u64, pgoff)
		__field(u32, outcome)
		__field(u64, wait_ns)
		__field(u32, tgid)
		__field(u64, tgid_start)
		__field(u64, wait_start)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->pgoff = pgoff;
		__entry->outcome = outcome;
		__entry->wait_ns = wait_ns;
		__entry->tgid = tgid;
		__entry->tgid_start = tgid_start;
		__entry->wait_start = wait_start;
	),
	TP_printk("area=%llu pgoff=%llu outcome=%s wait_ns=%llu tgid=%u tgid_start=%llu wait_start=%llu",
		  __entry->area, __entry->pgoff,
		  __print_symbolic(__entry->outcome,
				   { UMEM_FAULT_SERVED, "served" },
				   { UMEM_FAULT_KILLED, "killed" },
				   { UMEM_FAULT_ERROR, "error" },
				   { UMEM_FAULT_INTERRUPTED, "interrupted" }),
		  __entry->wait_ns, __entry->tgid, __entry->tgid_start,
		  __entry->wait_start)
);

TRACE_EVENT(umem_read,
	TP_PROTO(u64 area, u32 handed, u32 pending, u32 tgid),
	TP_ARGS(area, handed, pending, tgid),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u32, handed)
		__field(u32, pending)
		__field(u32, tgid)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->handed = handed;
		__entry->pending = pending;
		__entry->tgid = tgid;
	),
	TP_printk("area=%llu handed=%u pending=%u tgid=%u", __entry->area,
		  __entry->handed, __entry->pending, __entry->tgid)
);

TRACE_EVENT(umem_write,
	TP_PROTO(u64 area, u64 pgoff, u32 on_demand, u64 service_ns, u32 tgid,
		 u64 tgid_start),
	TP_ARGS(area, pgoff, on_demand, service_ns, tgid, tgid_start),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u64, pgoff)
		__field(u32, on_demand)
		__field(u64, service_ns)
		__field(u32, tgid)
		__field(u64, tgid_start)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->pgoff = pgoff;
		__entry->on_demand = on_demand;
		__entry->service_ns = service_ns;
		__entry->tgid = tgid;
		__entry->tgid_start = tgid_start;
	),
	TP_printk("area=%llu pgoff=%llu on_demand=%u service_ns=%llu tgid=%u tgid_start=%llu",
		  __entry->area, __entry->pgoff, __entry->on_demand,
		  __entry->service_ns, __entry->tgid, __entry->tgid_start)
);

/* The last close of the area's umem fd: nobody can serve it any more. */
TRACE_EVENT(umem_release,
	TP_PROTO(u64 area, u32 tgid),
	TP_ARGS(area, tgid),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u32, tgid)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->tgid = tgid;
	),
	TP_printk("area=%llu tgid=%u", __entry->area, __entry->tgid)
);

#endif /* _UMEM_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE umem_trace
#include <trace/define_trace.h>
