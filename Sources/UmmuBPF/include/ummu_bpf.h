/*
 * ummu_bpf.h - the embedded BPF objects and a small C shim over the parts of
 * libbpf 1.1 that are awkward from Swift (opts structs, BTF walking).
 * The byte layouts shared with the BPF programs come from bpf/ummu_shared.h.
 */
#ifndef UMMU_BPF_H
#define UMMU_BPF_H

#include <stddef.h>
#include <stdint.h>
#include "../../../bpf/ummu_shared.h"

struct bpf_object;

enum ummu_object_id {
	UMMU_OBJ_UMMUNOTIFY = 0,
	UMMU_OBJ_UMEM = 1,
	UMMU_OBJ_BENCH_MINIMAL = 2,
	UMMU_OBJ_MMU_NOTIFIER = 3,
	UMMU_OBJ_USERFAULTFD = 4,
	UMMU_OBJ_MN_CALLBACK = 5,
	UMMU_OBJ_BENCH_MINIMAL_FENTRY = 6,	/* bench only: fentry/fexit baseline */
};

/* Bytes of an embedded BPF object (ELF); NULL for an unknown id. */
const unsigned char *ummu_object_bytes(int id, size_t *len);

/*
 * Opens an embedded object (not loaded). On failure returns NULL with a
 * negative errno in *err.
 */
struct bpf_object *ummu_object_open(int id, int *err);

/*
 * Writes cfg into the object's `ummu_cfg` (.rodata), before load.
 * Returns 0 or a negative errno.
 */
int ummu_object_set_config(struct bpf_object *obj, const struct ummu_config *cfg);

/*
 * BPF_PROG_TEST_RUN of a raw_tp program with args as its u64 context, on
 * CPU cpu (BPF_F_TEST_RUN_ON_CPU) or, when cpu < 0, on the calling CPU.
 */
int ummu_test_run_raw_tp(int prog_fd, const uint64_t *args, uint32_t nargs,
			 int cpu, uint32_t *retval);

/* run_time_ns and run_cnt from bpf_prog_info; 0 or a negative errno. */
int ummu_prog_stats(int prog_fd, uint64_t *run_time_ns, uint64_t *run_cnt);

/* Map metadata from bpf_map_info. */
int ummu_map_info(int map_fd, uint32_t *type, uint32_t *key_size,
		  uint32_t *value_size, uint32_t *max_entries);

/*
 * libbpf's messages: quiet (default) keeps the last warning in a buffer that
 * ummu_libbpf_last_message() returns; verbose prints everything to stderr.
 */
void ummu_libbpf_set_verbose(int verbose);
const char *ummu_libbpf_last_message(void);

/* Probe: 1 if the kernel can load raw_tp programs, 0 if not, <0 errno. */
int ummu_probe_raw_tp(void);

/*
 * Blocks the n signals in sigs and returns a non-blocking, close-on-exec
 * signalfd for them, or -errno. (sys/signalfd.h is not in Swift's Glibc.)
 */
int ummu_signalfd(const int *sigs, int n);

/* Reads one pending signal from a signalfd: its number, 0 if none, -errno. */
int ummu_signalfd_read(int fd);

/* The calling thread's id (gettid(2)). */
int ummu_gettid(void);

/*
 * Pins the calling thread to one CPU (tests: a test run on that CPU then
 * runs in this thread, not in an IPI). 0 or -errno.
 */
int ummu_pin_thread(int cpu);

/*
 * The CPUs the calling thread may run on (its affinity, which a cpuset or
 * taskset narrows), lowest first, at most max of them: their number, or
 * -errno.
 */
int ummu_allowed_cpus(int *cpus, int max);

#endif /* UMMU_BPF_H */
