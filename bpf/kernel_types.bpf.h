/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kernel_types.bpf.h - the few kernel structures the stock-kernel programs
 * read, declared with only the fields they use.
 *
 * preserve_access_index makes every field access a CO-RE relocation: libbpf
 * finds each field by name in the running kernel's BTF at load time
 * (looking inside anonymous members too), so one object serves 6.1, 6.12
 * and newer kernels whatever the real layouts. A field or function a
 * kernel lacks fails the load with a message naming it, never a wrong read.
 * Checked against the BTF of Debian's 6.1 and 6.12 kernels.
 */
#ifndef UMMU_KERNEL_TYPES_BPF_H
#define UMMU_KERNEL_TYPES_BPF_H

#include <linux/types.h>

/*
 * CO-RE matches enums only with enums (not with int): fields of enum type
 * keep an enum type here. Their values are in the defines below.
 */
enum mmu_notifier_event { MMU_NOTIFY_UNMAP = 0 };
enum fault_flag { FAULT_FLAG_WRITE = 1 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct hlist_node {
	struct hlist_node *next;
};

struct hlist_head {
	struct hlist_node *first;
};

struct rb_node {
	unsigned long __rb_parent_color;
	struct rb_node *rb_right;
	struct rb_node *rb_left;
};

struct rb_root {
	struct rb_node *rb_node;
};

struct rb_root_cached {
	struct rb_root rb_root;
	struct rb_node *rb_leftmost;
};

struct mm_struct;

struct thread_info {
	unsigned long flags;	/* x86: TIF_* bits */
};

struct task_struct {
	struct thread_info thread_info;
	unsigned int flags;
	int pid;
	int tgid;
	struct mm_struct *mm;
	struct task_struct *group_leader;
	__u64 start_time;	/* CLOCK_MONOTONIC ns at fork */
	char comm[16];
};

struct mmu_notifier_subscriptions {
	struct hlist_head list;
	bool has_itree;
	struct rb_root_cached itree;
};

struct mm_struct {
	struct task_struct *owner;	/* CONFIG_MEMCG; Debian has it */
	struct mmu_notifier_subscriptions *notifier_subscriptions;
};

struct mmu_notifier_range {
	struct mm_struct *mm;
	unsigned long start;
	unsigned long end;
	unsigned int flags;
	enum mmu_notifier_event event;
};

struct mmu_notifier_ops {
	void *release;
	void *clear_flush_young;
	void *clear_young;
	void *test_young;
	void *invalidate_range_start;
	void *invalidate_range_end;
};

struct mmu_notifier {
	struct hlist_node hlist;
	const struct mmu_notifier_ops *ops;
};

struct interval_tree_node {
	struct rb_node rb;
	unsigned long start;
	unsigned long last;	/* inclusive */
	unsigned long __subtree_last;
};

struct mmu_interval_notifier_ops {
	void *invalidate;
};

struct mmu_interval_notifier {
	struct interval_tree_node interval_tree;
	const struct mmu_interval_notifier_ops *ops;
};

struct vm_area_struct {
	struct mm_struct *vm_mm;
};

struct vm_fault {
	struct vm_area_struct *vma;
	enum fault_flag flags;
	unsigned long address;
};

struct userfaultfd_ctx {
	struct mm_struct *mm;
};

struct file {
	void *private_data;
};

#pragma clang attribute pop

/* include/linux/sched.h */
#define PF_EXITING 0x00000004
#define PF_KTHREAD 0x00200000

/* include/linux/mmu_notifier.h: range->flags */
#define MMU_NOTIFIER_RANGE_BLOCKABLE (1 << 0)

/* include/linux/mm.h: handle_userfault()'s reason (VM_UFFD_MINOR moves). */
#define VM_UFFD_MISSING 0x00000200
#define VM_UFFD_WP 0x00001000

/* enum fault_flag, include/linux/mm_types.h */
#define FAULT_FLAG_RETRY_NOWAIT 0x8

/* vm_fault_t bits, include/linux/mm_types.h */
#define VM_FAULT_SIGBUS 0x2
#define VM_FAULT_RETRY 0x400

/* x86 (the only target built): TIF_SIGPENDING in thread_info.flags */
#define TIF_SIGPENDING 2

#endif /* UMMU_KERNEL_TYPES_BPF_H */
