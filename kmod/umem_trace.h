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
	TP_PROTO(u64 area, u64 pgoff, u32 must_wait, u32 tgid),
	TP_ARGS(area, pgoff, must_wait, tgid),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u64, pgoff)
		__field(u32, must_wait)
		__field(u32, tgid)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->pgoff = pgoff;
		__entry->must_wait = must_wait;
		__entry->tgid = tgid;
	),
	TP_printk("area=%llu pgoff=%llu must_wait=%u tgid=%u",
		  __entry->area, __entry->pgoff, __entry->must_wait,
		  __entry->tgid)
);

TRACE_EVENT(umem_fault_done,
	TP_PROTO(u64 area, u64 pgoff, u32 outcome),
	TP_ARGS(area, pgoff, outcome),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u64, pgoff)
		__field(u32, outcome)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->pgoff = pgoff;
		__entry->outcome = outcome;
	),
	TP_printk("area=%llu pgoff=%llu outcome=%s", __entry->area,
		  __entry->pgoff,
		  __print_symbolic(__entry->outcome,
				   { UMEM_FAULT_SERVED, "served" },
				   { UMEM_FAULT_KILLED, "killed" },
				   { UMEM_FAULT_ERROR, "error" },
				   { UMEM_FAULT_INTERRUPTED, "interrupted" }))
);

TRACE_EVENT(umem_read,
	TP_PROTO(u64 area, u32 handed, u32 pending),
	TP_ARGS(area, handed, pending),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u32, handed)
		__field(u32, pending)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->handed = handed;
		__entry->pending = pending;
	),
	TP_printk("area=%llu handed=%u pending=%u", __entry->area,
		  __entry->handed, __entry->pending)
);

TRACE_EVENT(umem_write,
	TP_PROTO(u64 area, u64 pgoff, u32 on_demand),
	TP_ARGS(area, pgoff, on_demand),
	TP_STRUCT__entry(
		__field(u64, area)
		__field(u64, pgoff)
		__field(u32, on_demand)
	),
	TP_fast_assign(
		__entry->area = area;
		__entry->pgoff = pgoff;
		__entry->on_demand = on_demand;
	),
	TP_printk("area=%llu pgoff=%llu on_demand=%u", __entry->area,
		  __entry->pgoff, __entry->on_demand)
);

#endif /* _UMEM_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE umem_trace
#include <trace/define_trace.h>
