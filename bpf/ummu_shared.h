/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ummu_shared.h - the one place where the BPF programs and user space agree
 * on bytes: map key/value layouts, enums, the load-time configuration and
 * the ring-buffer event record.
 *
 * Included by every BPF program in bpf/ (clang -target bpf) and,
 * through Sources/UmmuBPF/include/ummu_bpf.h, by the Swift library. Keep every
 * struct free of implicit padding (explicit __u32 pads) so both compilers
 * lay it out the same way; the Swift tests check the sizes below.
 *
 * Units: nanoseconds (bpf_ktime_get_ns, CLOCK_MONOTONIC) and bytes.
 */
#ifndef UMMU_SHARED_H
#define UMMU_SHARED_H

#include <linux/types.h>

/* Bumped whenever a layout below changes. */
#define UMMU_ABI_VERSION 4

/* ---- log2 histograms ------------------------------------------------ */

/*
 * Slot i (1 <= i <= 62) counts values v with 2^(i-1) <= v < 2^i, i.e. v has
 * bit length i; slot 0 counts v == 0; slot 63 counts every v >= 2^62.
 * Upper bound of slot i (exclusive) is 2^i; lower bound is 2^(i-1) (0 for 0).
 */
#define UMMU_HIST_SLOTS 64

struct ummu_hist {
	__u64 slots[UMMU_HIST_SLOTS];
	__u64 count;
	__u64 sum;
};

/* ---- load-time configuration (.rodata, set before load) -------------- */

struct ummu_config {
	__u32 filter_tgid;	/* 0: every process */
	__u32 emit_events;	/* 1: push struct ummu_event to the ring buffer */
	__u64 loaded_ns;	/* CLOCK_MONOTONIC just before load */
};

/* ---- ummunotify ------------------------------------------------------ */

/* Spans are clipped here (above any user address, 5-level paging included). */
#define UMMU_USER_ADDR_END (1ULL << 57)

/* enum mmu_notifier_event numbers as reported by the driver. */
enum ummu_reason {
	UMMU_REASON_UNMAP = 0,
	UMMU_REASON_CLEAR = 1,
	UMMU_REASON_PROTECTION_VMA = 2,
	UMMU_REASON_PROTECTION_PAGE = 3,
	UMMU_REASON_SOFT_DIRTY = 4,
	UMMU_REASON_RELEASE = 5,
	UMMU_REASON_MIGRATE = 6,
	UMMU_REASON_EXCLUSIVE = 7,
	UMMU_REASON_OTHER = 8,	/* any number the driver reports beyond 7 */
	UMMU_NR_REASONS = 9,
};

/* un_totals: PERCPU_ARRAY[1]; summed over CPUs by user space. */
struct un_totals {
	__u64 inval[UMMU_NR_REASONS];	/* invalidations that hit >= 1 range */
	__u64 bytes[UMMU_NR_REASONS];	/* end - start of those */
	__u64 notify_nohit;		/* notify firings with hits == 0 */
	__u64 queued;			/* reports queued */
	__u64 merged;			/* hits that merged into a queued report */
	__u64 reads;			/* read() calls */
	__u64 events_read;		/* events returned by those */
	__u64 registers;
	__u64 unregisters;
	__u64 proc_overflow;		/* un_procs full: per-process row lost */
	__u64 ctx_overflow;		/* un_ctxs full: per-context row lost */
	__u64 filtered;			/* dropped by the PID filter */
};

/* un_hists: PERCPU_ARRAY[UN_NR_HISTS] of struct ummu_hist. */
enum un_hist_index {
	UN_HIST_SPAN = 0,	/* bytes per invalidation (end - start) */
	UN_HIST_READ_BATCH = 1,	/* events returned per read() */
	UN_NR_HISTS = 2,
};

/*
 * un_procs: PERCPU_HASH, key __u32 tgid (the contexts' owner). notify
 * counts here; reads and events_read are those of the process's released
 * contexts (folded in from un_ctxs at ummunotify_release): a process's
 * reads are these plus its live contexts' in un_ctxs.
 *
 * start_time, first in every per-process row of the drivers: the start
 * time of the process this CPU's copy counts (the driver's tgid_start),
 * with the pid its identity. A copy of another start time is an exited
 * process's whose pid was reused: zeroed and taken over on that CPU's
 * next event, and left out by user space until then (it takes the copies
 * of the newest start time), so old and new counts never mix.
 */
struct un_proc {
	__u64 start_time;
	__u64 inval[UMMU_NR_REASONS];
	__u64 bytes[UMMU_NR_REASONS];
	__u64 queued;
	__u64 merged;
	__u64 reads;
	__u64 events_read;
	char comm[16];		/* set on insert when current->tgid == key */
};

/*
 * un_ctxs: PERCPU_HASH, key __u64 ctx_id, deleted at ummunotify_release.
 * The gauges (held, backlog) come from the driver with its per-context
 * number seq (docs/tracepoints.md); each CPU's slot keeps those of the
 * highest seq it saw, and user space takes the slot with the highest seq.
 * reads and events_read are summed over CPUs.
 */
struct un_ctx {
	__u32 tgid;		/* the context's owner */
	__u32 pad;
	__u64 tgid_start;	/* and its start time (as in struct un_proc) */
	__u64 seq;		/* of the gauges below; 0: none seen here */
	__u64 held;		/* registrations held */
	__u64 backlog;		/* reports queued */
	__u64 reads;
	__u64 events_read;
};

/* ---- umem ------------------------------------------------------------ */

/* umem_fault_done outcome: 0 served, 1 killed, 2 error, 3 interrupted
 * (kmod/umem_trace.h); 4 counts any other number. */
#define UMMU_UMEM_OUTCOMES 5
#define UMMU_UMEM_ERROR 2

/* um_totals: PERCPU_ARRAY[1]. */
struct um_totals {
	__u64 faults;
	__u64 faults_waited;		/* must_wait != 0 */
	__u64 done[UMMU_UMEM_OUTCOMES];	/* fault_done by outcome */
	__u64 reads;			/* server read() calls */
	__u64 handed;			/* offsets handed to the server */
	__u64 writes;			/* pages written (served) by the server */
	__u64 on_demand;		/* written pages that had been requested */
	__u64 pushed;			/* written pages pushed ahead */
	__u64 proc_overflow;		/* um_procs full */
	__u64 area_overflow;		/* um_areas full */
	__u64 filtered;
	/*
	 * fault_done of a must_wait fault: it waited (wait_ns > 0) or failed
	 * at once (error); faults_waited - waits_ended are waiting now.
	 */
	__u64 waits_ended;
};

/* um_hists: PERCPU_ARRAY[UM_NR_HISTS]. */
enum um_hist_index {
	UM_HIST_SERVICE = 0,	/* ns: request queued -> server's write (driver's service_ns) */
	UM_HIST_STALL = 1,	/* ns: a faulting thread's wait (driver's wait_ns, faults that waited) */
	UM_HIST_READ_BATCH = 2,	/* offsets handed per server read() */
	UM_NR_HISTS = 3,
};

/* um_procs: PERCPU_HASH, key __u32 tgid of the faulting process. */
struct um_proc {
	__u64 start_time;	/* as in struct un_proc */
	__u64 faults;
	__u64 faults_waited;
	__u64 on_demand;	/* its pages served on demand */
	struct ummu_hist service;
	struct ummu_hist stall;
	char comm[16];
};

/*
 * um_areas: HASH, key __u64 area_id, written only by umem_read (which the
 * driver fires under the area's mutex, so plain stores land in order),
 * deleted at umem_release.
 */
struct um_area {
	__u32 client_tgid;	/* the area's client (the driver's tgid) */
	__u32 pad;
	__u64 pending;		/* pending requests after the last read */
};

/* ---- mmu_notifier core (stock kernels, fentry/fexit) ------------------ */

/* Who made the invalidation happen, relative to the mm's owner. */
enum mn_cause_kind {
	MN_CAUSE_SELF = 0,	/* a thread of the owning process */
	MN_CAUSE_OTHER = 1,	/* another user process (e.g. compact_memory) */
	MN_CAUSE_KTHREAD = 2,	/* a kernel thread (kswapd, khugepaged, ...) */
	MN_NR_CAUSES = 3,
};

/* Page-aging calls into the subscribers. */
enum mn_young_kind {
	MN_YOUNG_CLEAR_FLUSH = 0,
	MN_YOUNG_CLEAR = 1,
	MN_YOUNG_TEST = 2,
	MN_NR_YOUNG = 3,
};

/* At most this many classic subscriptions are walked per call. */
#define MN_MAX_WALK 8

/* mn_totals: PERCPU_ARRAY[1]. */
struct mn_totals {
	__u64 inval[UMMU_NR_REASONS];	/* __mmu_notifier_invalidate_range_start calls */
	__u64 bytes[UMMU_NR_REASONS];
	__u64 by_cause[MN_NR_CAUSES];
	__u64 nonblock;		/* ranges without MMU_NOTIFIER_RANGE_BLOCKABLE */
	__u64 failed;		/* range_start returned non-zero (-EAGAIN) */
	__u64 release;		/* __mmu_notifier_release (mm teardown) */
	__u64 young[MN_NR_YOUNG];
	__u64 no_subscriber;	/* invalidations that found no subscription */
	__u64 walk_truncated;	/* more than MN_MAX_WALK subscriptions */
	__u64 unowned;		/* no owner task: not attributed to a process */
	__u64 proc_overflow;	/* mn_procs full */
	__u64 cause_overflow;	/* mn_causes full */
	__u64 sub_overflow;	/* mn_subs full */
	__u64 start_lost;	/* no task storage: start/end time not measured */
	__u64 filtered;
};

/* mn_hists: PERCPU_ARRAY[MN_NR_HISTS]. */
enum mn_hist_index {
	MN_HIST_START = 0,	/* ns in the range_start callbacks */
	MN_HIST_END = 1,	/* ns in the range_end callbacks */
	MN_HIST_SPAN = 2,	/* bytes per invalidation */
	MN_NR_HISTS = 3,
};

/* mn_procs: HASH (atomic adds), key __u32 tgid of the mm's owner. */
struct mn_proc {
	/*
	 * The process's start time (its leader's task->start_time): with the
	 * pid, its identity.  A row whose start time differs from the owner's
	 * belongs to an exited process whose pid was reused: it is zeroed and
	 * taken over, so old and new counts never mix.
	 */
	__u64 start_time;
	__u64 inval[UMMU_NR_REASONS];
	__u64 bytes[UMMU_NR_REASONS];
	__u64 by_cause[MN_NR_CAUSES];
	__u64 nonblock;
	__u64 failed;
	__u64 release;
	__u64 young;
	struct ummu_hist start_ns;
	struct ummu_hist end_ns;
	char comm[16];
};

/* mn_causes: HASH. For MN_CAUSE_SELF, cause_tgid is the owner and comm is empty. */
struct mn_cause_key {
	__u32 owner;
	__u32 cause_tgid;
	__u32 kind;		/* enum mn_cause_kind */
	__u32 reason;		/* enum ummu_reason */
	char comm[16];		/* the causing thread's comm */
};

struct mn_cause_val {
	__u64 inval;
	__u64 bytes;
};

/* A subscriber: a classic mmu_notifier (ops) or an interval notifier. */
enum mn_sub_kind {
	MN_SUB_NOTIFIER = 0,
	MN_SUB_INTERVAL = 1,	/* named by the first interval of the mm's tree */
};

/* mn_subs: HASH (atomic adds), one row per subscriber and process. */
struct mn_sub_key {
	__u64 ops;		/* kernel address of its ops (resolved via kallsyms) */
	__u32 owner;
	__u32 kind;		/* enum mn_sub_kind */
};

struct mn_sub {
	__u64 inval[UMMU_NR_REASONS];
	__u64 bytes[UMMU_NR_REASONS];
	__u64 release;
	__u64 young;
	__u64 callback;		/* address of ops->invalidate_range_start / ->invalidate */
	__u64 pad;
};

/* mn_cb: HASH, key __u64 ops: callback times measured by mn_callback programs. */
struct mn_cb {
	struct ummu_hist start_ns;
	__u64 failed;		/* the callback returned non-zero */
	__u64 pad;
};

/* ---- userfaultfd (stock kernels, fentry/fexit) ------------------------ */

enum uf_kind {
	UF_MISSING = 0,
	UF_WP = 1,
	UF_MINOR = 2,
	UF_NR_KINDS = 3,
};

enum uf_outcome {
	UF_RESOLVED = 0,	/* any other return: woke, nothing to wait for, released */
	UF_RETRIED = 1,		/* FAULT_FLAG_RETRY_NOWAIT: returned without waiting */
	UF_SIGBUS = 2,		/* VM_FAULT_SIGBUS (no handler for a kernel fault, SIGBUS mode) */
	UF_SIGNAL = 3,		/* woke with a signal pending */
	UF_NR_OUTCOMES = 4,
};

/* Resolving ioctls, by _IOC_NR of the UFFDIO_* command. */
enum uf_op {
	UF_OP_COPY = 0,
	UF_OP_ZEROPAGE = 1,
	UF_OP_CONTINUE = 2,
	UF_OP_WRITEPROTECT = 3,
	UF_OP_MOVE = 4,
	UF_OP_POISON = 5,
	UF_NR_OPS = 6,
};

/* uf_totals: PERCPU_ARRAY[1]. */
struct uf_totals {
	__u64 faults[UF_NR_KINDS];	/* handle_userfault entries */
	__u64 outcomes[UF_NR_OUTCOMES];	/* its returns */
	__u64 ops[UF_NR_OPS];		/* resolving ioctls */
	__u64 op_bytes[UF_NR_OPS];	/* bytes they resolved */
	__u64 op_failed;		/* ioctls that resolved nothing */
	__u64 proc_overflow;
	__u64 start_lost;		/* no task storage: fault not counted */
	__u64 filtered;
};

/* uf_hists: PERCPU_ARRAY[UF_NR_KINDS]: stall (ns) per fault kind. */

/* uf_procs: HASH (atomic adds), key __u32 tgid of the faulting process. */
struct uf_proc {
	__u64 faults[UF_NR_KINDS];
	__u64 outcomes[UF_NR_OUTCOMES];
	__u64 ops[UF_NR_OPS];
	__u64 op_bytes[UF_NR_OPS];
	__u64 op_failed;
	__u64 start_time;	/* as in struct mn_proc */
	struct ummu_hist stall;
	char comm[16];
};

/* ---- per-event stream (ring buffer "events", drops in "drops") ------- */

enum ummu_event_type {
	UMMU_EV_UN_NOTIFY = 1,	/* args: ctx, tgid, start, end, reason, hits, queued, gen */
	UMMU_EV_UN_READ = 2,	/* args: ctx, events, still_queued */
	UMMU_EV_UN_REGISTER = 3,	/* args: ctx, cookie, start, end, held_after */
	UMMU_EV_UN_UNREGISTER = 4,	/* same */
	UMMU_EV_UM_FAULT = 5,	/* args: area, pgoff, must_wait, tgid */
	UMMU_EV_UM_FAULT_DONE = 6,	/* args: area, pgoff, outcome; latency = stall */
	UMMU_EV_UM_READ = 7,	/* args: area, handed, pending */
	UMMU_EV_UM_WRITE = 8,	/* args: area, pgoff, on_demand; latency = service */
	UMMU_EV_MN_INVALIDATE = 9,	/* args: start, end, reason, flags, cause kind, cause tgid, subscribers, ret; latency = start callbacks */
	UMMU_EV_UF_FAULT = 10,	/* args: address, kind, outcome, fault flags; latency = stall */
	UMMU_EV_UF_OP = 11,	/* args: op, start, len, bytes, ret */
	UMMU_EV_MAX = 11,
};

#define UMMU_EVENT_ARGS 8

struct ummu_event {
	__u64 ts_ns;
	__u32 type;
	__u32 cpu;
	__u32 tgid;		/* process the event is about */
	__u32 tid;		/* current thread */
	__u64 args[UMMU_EVENT_ARGS];	/* the tracepoint's args, in order */
	__u64 latency_ns;	/* 0 when not applicable or unmatched */
};

#endif /* UMMU_SHARED_H */
