// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_minimal_fentry.bpf.c - the fentry/fexit baseline of the stock-kernel
 * bench (ummu-bpf-bench stock, bench/bpf_bench/Stock.swift): one per-CPU
 * counter bumped per call, the same body as bench_minimal.bpf.c.
 *
 * The sections name no function: the bench opens one copy of the object per
 * hook, keeps one program (bpf_program__set_autoload), points it at the
 * kernel function with bpf_program__set_attach_target before load, and
 * attaches it there. So it can sit on every function bpf/mmu_notifier.bpf.c
 * and bpf/userfaultfd.bpf.c hook, as fentry or fexit alike, and the ratio
 * "our program / this one" is taken on the same function and the same calls.
 * Loading it without a target fails (libbpf: no BTF-based attach target).
 *
 * The op_* programs are the same counter plus one operation our programs do
 * per event, to price those operations on the live path (the bench attaches
 * them all to one function in a round of their own and subtracts the
 * baseline): a clock read, a task-storage lookup, a hash-map lookup of a
 * u32 key (mn_procs/uf_procs), of a 32-byte key (mn_causes), an 8-byte
 * bpf_probe_read_kernel (each step of a BPF_CORE_READ chain), and three
 * atomic adds on a map value (what each per-process or per-cause counter
 * update is).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} count SEC(".maps");

static __always_inline void bump(void)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&count, &zero);

	if (c)
		(*c)++;
}

SEC("fentry")
int base_entry(unsigned long long *ctx)
{
	bump();
	return 0;
}

SEC("fexit")
int base_exit(unsigned long long *ctx)
{
	bump();
	return 0;
}

/* ---- one operation each, on top of the counter -------------------------- */

struct op_task {
	__u64 ts;
	__u64 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct op_task);
} op_tasks SEC(".maps");

struct op_val {
	__u64 a, b, c, d;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct op_val);
} op_hash4 SEC(".maps");

struct op_key32 {
	__u32 owner, cause_tgid, kind, reason;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct op_key32);
	__type(value, struct op_val);
} op_hash32 SEC(".maps");

static const struct op_val op_zero;

/* A clock read, stored (as mn_start_entry does). */
SEC("fentry")
int op_ktime(unsigned long long *ctx)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&count, &zero);

	if (c)
		*c = bpf_ktime_get_ns();
	return 0;
}

/* The task-storage lookup of the current task (created once, then found). */
SEC("fentry")
int op_task_storage(unsigned long long *ctx)
{
	struct op_task *s;

	bump();
	s = bpf_task_storage_get(&op_tasks, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s)
		s->pad++;
	return 0;
}

/* A hash lookup by tgid (inserted once, then found), plain add. */
SEC("fentry")
int op_hash_u32(unsigned long long *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct op_val *v;

	bump();
	v = bpf_map_lookup_elem(&op_hash4, &tgid);
	if (!v) {
		bpf_map_update_elem(&op_hash4, &tgid, &op_zero, BPF_NOEXIST);
		return 0;
	}
	v->a++;
	return 0;
}

/* A hash lookup by a 32-byte key (struct mn_cause_key's shape), plain add. */
SEC("fentry")
int op_hash_key32(unsigned long long *ctx)
{
	struct op_key32 k = {};
	struct op_val *v;

	bump();
	k.owner = bpf_get_current_pid_tgid() >> 32;
	k.cause_tgid = k.owner;
	v = bpf_map_lookup_elem(&op_hash32, &k);
	if (!v) {
		bpf_map_update_elem(&op_hash32, &k, &op_zero, BPF_NOEXIST);
		return 0;
	}
	v->a++;
	return 0;
}

/* One bpf_probe_read_kernel of 8 bytes (what each BPF_CORE_READ step is). */
SEC("fentry")
int op_probe_read(unsigned long long *ctx)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&count, &zero);
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (void *)bpf_get_current_task_btf());
	if (c)
		*c += v & 1;
	return 0;
}

/* Three atomic adds on one map value (a histogram slot, count and sum). */
SEC("fentry")
int op_atomic3(unsigned long long *ctx)
{
	__u32 zero = 0;
	struct op_val *v;

	bump();
	v = bpf_map_lookup_elem(&op_hash4, &zero);
	if (!v) {
		bpf_map_update_elem(&op_hash4, &zero, &op_zero, BPF_NOEXIST);
		return 0;
	}
	__sync_fetch_and_add(&v->a, 1);
	__sync_fetch_and_add(&v->b, 1);
	__sync_fetch_and_add(&v->c, 1);
	return 0;
}
