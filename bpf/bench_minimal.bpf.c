// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_minimal.bpf.c - the baseline for bench/bpf_cost: one per-CPU counter
 * bumped per event, attachable to any raw tracepoint (section name is
 * overridden by the bench before load via bpf_program__set_attach_target
 * when it attaches; the bench only test-runs it).
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

SEC("raw_tp/ummunotify_notify")
int minimal(void *ctx)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&count, &zero);

	if (c)
		(*c)++;
	return 0;
}
