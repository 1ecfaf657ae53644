// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * userfaultfd.bpf.c - the stock kernel's userfaultfd (QEMU post-copy,
 * CRIU lazy restore, Firecracker snapshots). No module needed:
 * fentry/fexit on fs/userfaultfd.c, CO-RE over BTF.
 *
 *   handle_userfault(vmf, reason)        entry: a fault by kind (missing,
 *       write-protect, minor); exit: its stall and outcome. Entries minus
 *       exits are the faults still waiting. Charged to the owner of the
 *       faulting mm (vmf->vma->vm_mm), which is also the process a remote
 *       fault (KVM's async page faults, process_vm_readv) is for.
 *   userfaultfd_ioctl(file, cmd, arg)    exit: the handler's resolving
 *       ioctls (COPY, ZEROPAGE, CONTINUE, WRITEPROTECT, MOVE, POISON) and
 *       the bytes each resolved, read back from the user's struct the
 *       kernel has just written; charged to the process whose memory the
 *       userfaultfd serves (ctx->mm's owner), the one that faulted.
 */
#include "ummu_helpers.bpf.h"
#include "kernel_types.bpf.h"
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define UF_MAX_PROCS 1024

/* include/uapi/linux/userfaultfd.h */
#define UFFDIO_TYPE 0xAA
#define UFFDIO_NR_COPY 0x03
#define UFFDIO_NR_ZEROPAGE 0x04
#define UFFDIO_NR_MOVE 0x05
#define UFFDIO_NR_WRITEPROTECT 0x06
#define UFFDIO_NR_CONTINUE 0x07
#define UFFDIO_NR_POISON 0x08
#define UFFDIO_WRITEPROTECT_MODE_WP (1ULL << 0)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct uf_totals);
} uf_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UF_NR_KINDS);
	__type(key, __u32);
	__type(value, struct ummu_hist);
} uf_hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UF_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct uf_proc);
} uf_procs SEC(".maps");

/*
 * The thread's current fault (it sleeps): entry time, kind and the process
 * charged. The exit must not read vmf->vma again: handle_userfault() has
 * dropped the lock that kept the VMA alive before it slept.
 */
struct uf_task {
	__u64 ts;
	__u32 kind;
	__u32 tgid;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct uf_task);
} uf_tasks SEC(".maps");

static const struct uf_proc uf_proc_zero;

static __always_inline struct uf_totals *totals(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&uf_totals, &zero);
}

/*
 * The row of tgid, a process started at `start` (its leader's start_time),
 * comm from `comm_of` when the row is new.  A row of another start time is
 * an exited process's whose pid was reused: zeroed and taken over, so the
 * two never mix (as in mmu_notifier.bpf.c).
 */
static __always_inline struct uf_proc *proc_row(__u32 tgid, __u64 start, struct task_struct *comm_of,
						struct uf_totals *t)
{
	struct uf_proc *p = bpf_map_lookup_elem(&uf_procs, &tgid);
	long err;

	if (p && p->start_time == start)
		return p;
	/* New, or replaced by a zeroed row. */
	err = bpf_map_update_elem(&uf_procs, &tgid, &uf_proc_zero, p ? BPF_EXIST : BPF_NOEXIST);
	if (err && err != -EEXIST) {
		t->proc_overflow++;
		return NULL;
	}
	p = bpf_map_lookup_elem(&uf_procs, &tgid);
	if (!p)
		return NULL;
	p->start_time = start;
	if (comm_of)
		bpf_probe_read_kernel_str(p->comm, sizeof(p->comm), comm_of->comm);
	return p;
}

/*
 * The process whose memory faulted, and its task for the comm. vmf is a
 * BTF-typed argument: the chain is plain loads, not probe reads.
 */
static __always_inline __u32 uf_owner(struct vm_fault *vmf, struct task_struct *cur,
				      struct task_struct **who)
{
	struct task_struct *o = vmf->vma->vm_mm->owner;

	*who = o ? o : cur;
	return o ? (__u32)o->tgid : (__u32)cur->tgid;
}

static __always_inline __u32 uf_kind(unsigned long reason)
{
	if (reason & VM_UFFD_MISSING)
		return UF_MISSING;
	if (reason & VM_UFFD_WP)
		return UF_WP;
	return UF_MINOR;	/* VM_UFFD_MINOR: its bit differs between kernels */
}

SEC("fentry/handle_userfault")
int BPF_PROG(uf_fault_entry, struct vm_fault *vmf, unsigned long reason)
{
	struct task_struct *cur = bpf_get_current_task_btf(), *who;
	__u32 tgid = uf_owner(vmf, cur, &who), kind = uf_kind(reason);
	struct uf_totals *t = totals();
	struct uf_task *s;
	struct uf_proc *p;

	if (!t || kind >= UF_NR_KINDS)
		return 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	/*
	 * A fault counts only with its start kept: the exit counts only what
	 * had a start, so entries - returns is exactly the faults waiting
	 * (a fault already waiting when tracing began is never counted).
	 */
	s = bpf_task_storage_get(&uf_tasks, cur, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		t->start_lost++;
		return 0;
	}
	s->kind = kind;
	s->tgid = tgid;
	s->ts = bpf_ktime_get_ns();
	/* Atomic: fentry runs preemptible, and waiting = faults - outcomes. */
	__sync_fetch_and_add(&t->faults[kind], 1);
	p = proc_row(tgid, who->group_leader->start_time, who, t);
	if (p)
		__sync_fetch_and_add(&p->faults[kind], 1);
	return 0;
}

SEC("fexit/handle_userfault")
int BPF_PROG(uf_fault_exit, struct vm_fault *vmf, unsigned long reason,
	     unsigned int ret)
{
	__u64 now = bpf_ktime_get_ns(), stall = 0;
	struct task_struct *cur = bpf_get_current_task_btf();
	__u32 tgid, kind, outcome, idx;
	struct uf_totals *t = totals();
	struct ummu_hist *h;
	struct uf_task *s;
	struct uf_proc *p;

	if (!t)
		return 0;
	s = bpf_task_storage_get(&uf_tasks, cur, 0, 0);
	if (!s || !s->ts)
		return 0;	/* entered before tracing began, filtered, or lost */
	stall = now - s->ts;
	s->ts = 0;
	tgid = s->tgid;
	kind = s->kind;
	if (kind >= UF_NR_KINDS)
		return 0;
	if (ret & VM_FAULT_SIGBUS)
		outcome = UF_SIGBUS;
	else if (vmf->flags & FAULT_FLAG_RETRY_NOWAIT)
		outcome = UF_RETRIED;
	else if (cur->thread_info.flags & (1UL << TIF_SIGPENDING))
		outcome = UF_SIGNAL;
	else
		outcome = UF_RESOLVED;
	__sync_fetch_and_add(&t->outcomes[outcome], 1);
	idx = kind;
	h = bpf_map_lookup_elem(&uf_hists, &idx);
	if (h)
		ummu_hist_add(h, stall);
	p = bpf_map_lookup_elem(&uf_procs, &tgid);
	if (p) {
		__sync_fetch_and_add(&p->outcomes[outcome], 1);
		ummu_hist_add_atomic(&p->stall, stall);
	}
	if (ummu_cfg.emit_events) {
		__u64 a[4] = { vmf->address, kind, outcome, vmf->flags };

		ummu_emit(UMMU_EV_UF_FAULT, tgid, a, 4, now, stall);
	}
	return 0;
}

/* Where a UFFDIO_* struct keeps its range and its result. */
struct uf_op_layout {
	__u32 op;
	__u32 len_off;		/* __u64 len */
	__s32 result_off;	/* __s64 bytes done; -1: none (0 on success) */
};

static __always_inline bool uf_op_of(unsigned int cmd, struct uf_op_layout *l)
{
	if (((cmd >> 8) & 0xff) != UFFDIO_TYPE)
		return false;
	switch (cmd & 0xff) {
	case UFFDIO_NR_COPY:	/* dst, src, len, mode, copy */
		*l = (struct uf_op_layout){ UF_OP_COPY, 16, 32 };
		return true;
	case UFFDIO_NR_ZEROPAGE:	/* range{start, len}, mode, zeropage */
		*l = (struct uf_op_layout){ UF_OP_ZEROPAGE, 8, 24 };
		return true;
	case UFFDIO_NR_CONTINUE:	/* range, mode, mapped */
		*l = (struct uf_op_layout){ UF_OP_CONTINUE, 8, 24 };
		return true;
	case UFFDIO_NR_WRITEPROTECT:	/* range, mode */
		*l = (struct uf_op_layout){ UF_OP_WRITEPROTECT, 8, -1 };
		return true;
	case UFFDIO_NR_MOVE:	/* dst, src, len, mode, move */
		*l = (struct uf_op_layout){ UF_OP_MOVE, 16, 32 };
		return true;
	case UFFDIO_NR_POISON:	/* range, mode, updated */
		*l = (struct uf_op_layout){ UF_OP_POISON, 8, 24 };
		return true;
	}
	return false;
}

SEC("fexit/userfaultfd_ioctl")
int BPF_PROG(uf_ioctl_exit, struct file *file, unsigned int cmd, unsigned long arg,
	     long ret)
{
	struct userfaultfd_ctx *uctx;
	struct task_struct *owner;
	struct uf_op_layout l;
	struct uf_totals *t;
	struct uf_proc *p;
	__u64 len = 0, start = 0, mode = 0;
	bool protecting = false;
	__s64 done = 0;
	__u32 tgid;

	if (!uf_op_of(cmd, &l) || l.op >= UF_NR_OPS)
		return 0;
	t = totals();
	if (!t)
		return 0;
	uctx = file->private_data;
	owner = BPF_CORE_READ(uctx, mm, owner);
	tgid = owner ? BPF_CORE_READ(owner, tgid) : 0;
	if (ummu_filtered(tgid)) {
		t->filtered++;
		return 0;
	}
	/*
	 * What was resolved follows from the return value: 0 is all of len;
	 * -EAGAIN is partial, the count in the struct's result field; any
	 * other error resolved nothing (early errors leave the user's result
	 * field as it was, possibly a previous call's count).
	 */
	if (bpf_probe_read_user(&start, sizeof(start), (void *)arg) ||
	    bpf_probe_read_user(&len, sizeof(len), (void *)(arg + l.len_off)))
		len = 0;
	if (l.op == UF_OP_WRITEPROTECT && !bpf_probe_read_user(&mode, sizeof(mode), (void *)(arg + 16)) &&
	    (mode & UFFDIO_WRITEPROTECT_MODE_WP))
		protecting = true;	/* arms protection: resolves nothing */
	if (protecting)
		done = 0;
	else if (ret == 0)
		done = (__s64)len;
	else if (ret == -EAGAIN && l.result_off >= 0 &&
		 !bpf_probe_read_user(&done, sizeof(done), (void *)(arg + l.result_off)))
		done = done < 0 ? 0 : (__u64)done > len ? (__s64)len : done;
	else
		done = 0;
	__sync_fetch_and_add(&t->ops[l.op], 1);
	__sync_fetch_and_add(&t->op_bytes[l.op], done);
	if (!done && !protecting)
		__sync_fetch_and_add(&t->op_failed, 1);
	if (tgid) {
		p = proc_row(tgid, BPF_CORE_READ(owner, group_leader, start_time), owner, t);
		if (p) {
			__sync_fetch_and_add(&p->ops[l.op], 1);
			__sync_fetch_and_add(&p->op_bytes[l.op], done);
			if (!done && !protecting)
				__sync_fetch_and_add(&p->op_failed, 1);
		}
	}
	if (ummu_cfg.emit_events) {
		__u64 a[5] = { l.op, start, len, done, (__u64)ret };

		ummu_emit(UMMU_EV_UF_OP, tgid, a, 5, bpf_ktime_get_ns(), 0);
	}
	return 0;
}
