/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of the ummunotify driver.  Every TP_PROTO argument is a
 * scalar, so a raw_tp BPF program reads argument i as ctx[i] (the module
 * has no BTF).  The contract (argument order, units, when and in which
 * context each event fires) is docs/tracepoints.md, section "ummunotify";
 * change both together.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM ummunotify

#if !defined(_UMMUNOTIFY_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _UMMUNOTIFY_TRACE_H

#include <linux/tracepoint.h>
#include <linux/types.h>

/*
 * One invalidation of the watched mm, hit or not.  reason is the kernel's
 * enum mmu_notifier_event (struct mmu_notifier_range::event).  tgid_start:
 * the owner's start time, which tells a reused tgid apart.
 */
TRACE_EVENT(ummunotify_notify,
	TP_PROTO(u64 ctx_id, u32 tgid, u64 start, u64 end, u32 reason,
		 u32 hits, u32 queued, u64 generation, u64 tgid_start),
	TP_ARGS(ctx_id, tgid, start, end, reason, hits, queued, generation,
		tgid_start),
	TP_STRUCT__entry(
		__field(u64, ctx_id)
		__field(u32, tgid)
		__field(u64, start)
		__field(u64, end)
		__field(u32, reason)
		__field(u32, hits)
		__field(u32, queued)
		__field(u64, generation)
		__field(u64, tgid_start)
	),
	TP_fast_assign(
		__entry->ctx_id = ctx_id;
		__entry->tgid = tgid;
		__entry->start = start;
		__entry->end = end;
		__entry->reason = reason;
		__entry->hits = hits;
		__entry->queued = queued;
		__entry->generation = generation;
		__entry->tgid_start = tgid_start;
	),
	TP_printk("ctx=%llu tgid=%u start=0x%llx end=0x%llx reason=%u hits=%u queued=%u generation=%llu tgid_start=%llu",
		  __entry->ctx_id, __entry->tgid, __entry->start, __entry->end,
		  __entry->reason, __entry->hits, __entry->queued,
		  __entry->generation, __entry->tgid_start)
);

/*
 * One read() that returned events (INVAL and LAST both count).  tgid: the
 * context's owner; regions, queued: the context's gauges, taken under its
 * lock with the per-context number seq (a later snapshot has a higher one).
 */
TRACE_EVENT(ummunotify_read,
	TP_PROTO(u64 ctx_id, u32 events, u32 queued, u32 tgid, u32 regions,
		 u64 seq, u64 tgid_start),
	TP_ARGS(ctx_id, events, queued, tgid, regions, seq, tgid_start),
	TP_STRUCT__entry(
		__field(u64, ctx_id)
		__field(u32, events)
		__field(u32, queued)
		__field(u32, tgid)
		__field(u32, regions)
		__field(u64, seq)
		__field(u64, tgid_start)
	),
	TP_fast_assign(
		__entry->ctx_id = ctx_id;
		__entry->events = events;
		__entry->queued = queued;
		__entry->tgid = tgid;
		__entry->regions = regions;
		__entry->seq = seq;
		__entry->tgid_start = tgid_start;
	),
	TP_printk("ctx=%llu events=%u queued=%u tgid=%u regions=%u seq=%llu tgid_start=%llu",
		  __entry->ctx_id, __entry->events, __entry->queued,
		  __entry->tgid, __entry->regions, __entry->seq,
		  __entry->tgid_start)
);

/* regions, queued, seq: the gauges after the operation, as for read. */
DECLARE_EVENT_CLASS(ummunotify_region,
	TP_PROTO(u64 ctx_id, u64 cookie, u64 start, u64 end, u32 regions,
		 u32 tgid, u32 queued, u64 seq, u64 tgid_start),
	TP_ARGS(ctx_id, cookie, start, end, regions, tgid, queued, seq,
		tgid_start),
	TP_STRUCT__entry(
		__field(u64, ctx_id)
		__field(u64, cookie)
		__field(u64, start)
		__field(u64, end)
		__field(u32, regions)
		__field(u32, tgid)
		__field(u32, queued)
		__field(u64, seq)
		__field(u64, tgid_start)
	),
	TP_fast_assign(
		__entry->ctx_id = ctx_id;
		__entry->cookie = cookie;
		__entry->start = start;
		__entry->end = end;
		__entry->regions = regions;
		__entry->tgid = tgid;
		__entry->queued = queued;
		__entry->seq = seq;
		__entry->tgid_start = tgid_start;
	),
	TP_printk("ctx=%llu cookie=%llu start=0x%llx end=0x%llx regions=%u tgid=%u queued=%u seq=%llu tgid_start=%llu",
		  __entry->ctx_id, __entry->cookie, __entry->start,
		  __entry->end, __entry->regions, __entry->tgid,
		  __entry->queued, __entry->seq, __entry->tgid_start)
);

/* A successful UMMUNOTIFY_REGISTER_REGION; regions = held after it. */
DEFINE_EVENT(ummunotify_region, ummunotify_register,
	TP_PROTO(u64 ctx_id, u64 cookie, u64 start, u64 end, u32 regions,
		 u32 tgid, u32 queued, u64 seq, u64 tgid_start),
	TP_ARGS(ctx_id, cookie, start, end, regions, tgid, queued, seq,
		tgid_start)
);

/* A successful UMMUNOTIFY_UNREGISTER_REGION; regions = held after it. */
DEFINE_EVENT(ummunotify_region, ummunotify_unregister,
	TP_PROTO(u64 ctx_id, u64 cookie, u64 start, u64 end, u32 regions,
		 u32 tgid, u32 queued, u64 seq, u64 tgid_start),
	TP_ARGS(ctx_id, cookie, start, end, regions, tgid, queued, seq,
		tgid_start)
);

/*
 * The context's file is released (its last close): no event of it
 * follows.  regions: registrations it still held, freed with it.
 */
TRACE_EVENT(ummunotify_release,
	TP_PROTO(u64 ctx_id, u32 tgid, u32 regions, u64 tgid_start),
	TP_ARGS(ctx_id, tgid, regions, tgid_start),
	TP_STRUCT__entry(
		__field(u64, ctx_id)
		__field(u32, tgid)
		__field(u32, regions)
		__field(u64, tgid_start)
	),
	TP_fast_assign(
		__entry->ctx_id = ctx_id;
		__entry->tgid = tgid;
		__entry->regions = regions;
		__entry->tgid_start = tgid_start;
	),
	TP_printk("ctx=%llu tgid=%u regions=%u tgid_start=%llu",
		  __entry->ctx_id, __entry->tgid, __entry->regions,
		  __entry->tgid_start)
);

#endif /* _UMMUNOTIFY_TRACE_H */

/* This part must be outside the multi-read protection. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE ummunotify_trace
#include <trace/define_trace.h>
