#!/bin/sh
# Stock-kernel scenarios, run inside a guest by scripts/test-stock with NO
# ummu driver loaded and the kernel's own KVM modules (guest-run --kvm): the
# static ummutrace, the workloads and the kernel's userfaultfd selftests are
# in the cwd.  Every scenario prints its raw output between "=== BEGIN name"
# and "=== END name rc=N"; Tests/stock/check.py on the host asserts on them.
set -u
PATH=$PWD:$PWD/bin:$PATH
. ./guest-lib.sh

begin setup
uname -r
lsmod 2>/dev/null || cat /proc/modules
ls -l /dev/kvm
end setup 0

# 1. KVM: a VM whose memslot is churned by its own process, then
#    invalidated from outside: another process clearing its soft-dirty bits
#    (/proc/PID/clear_refs, one MMU_NOTIFY_SOFT_DIRTY each) and khugepaged
#    collapsing its pages (a kernel thread).
start_tracer /tmp/kvm.json --json 1
run kvm_churn kvmchurn --pages 1024 --dontneed 300 --mprotect 40 --munmap 25
# The tracer's next snapshot sees KVM and starts timing its own callback
# (kvm_mmu_notifier_invalidate_range_start) for every later VM: small VMs
# churn until an interval shows a timed call (loading takes seconds here).
i=0
while ! grep -q '"function":"kvm_mmu_notifier_invalidate_range_start"' /tmp/kvm.json && [ $i -lt 60 ]; do
	kvmchurn --pages 64 --dontneed 1 >/dev/null 2>&1
	sleep 1
	i=$((i + 1))
done
rm -f /tmp/kvm.ready
# THP on request only, khugepaged scanning often: --thp maps 4 KiB pages,
# then marks the slot MADV_HUGEPAGE, which hands the mm to khugepaged.
echo madvise >/sys/kernel/mm/transparent_hugepage/enabled
echo 100 >/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs
# After a failed huge page allocation khugepaged sleeps 60 s by default:
# retry soon, and compact free memory first (before the VM exists, so
# the compaction invalidates none of its pages).
echo 100 >/sys/kernel/mm/transparent_hugepage/khugepaged/alloc_sleep_millisecs
echo 1 >/proc/sys/vm/compact_memory
collapsed0=$(awk '/^thp_collapse_alloc /{print $2}' /proc/vmstat)
kvmchurn --pages 2048 --thp --hold 60 --ready-file /tmp/kvm.ready >/tmp/kvm_hold.out 2>&1 &
holder=$!
wait_nonempty /tmp/kvm.ready
hold_pid=$(cat /tmp/kvm.ready)
i=0
while [ $i -lt 400 ]; do	# at most 40 s for khugepaged
	c=$(awk '/^thp_collapse_alloc /{print $2}' /proc/vmstat)
	[ "$c" -gt "$collapsed0" ] && break
	sleep 0.1
	i=$((i + 1))
done
# Soft-dirty clearing write-protects the PTEs, and khugepaged does not
# collapse read-only ones: the clear_refs writes come after the collapse.
i=0
while [ $i -lt 7 ]; do
	sh -c "echo 4 >/proc/$hold_pid/clear_refs"
	i=$((i + 1))
done
begin kvm_external
echo "{\"pid\":$hold_pid,\"clear_refs_writes\":7,\"thp_collapsed\":$((c - collapsed0))}"
end kvm_external 0
kill -TERM $holder
wait $holder
begin kvm_hold
cat /tmp/kvm_hold.out
end kvm_hold $?
sleep 1.2
stop_tracer kvm

# 2. userfaultfd: a post-copy pair with an injected delay, then
#    write-protect and minor (shmem, UFFDIO_CONTINUE) faults.
start_tracer /tmp/uffd.json --json 1
run uffd_pair uffdpair --missing 64 --wp 32 --minor 32 --delay-ms 20
sleep 1.2
stop_tracer uffd

# 2b. PID reuse: a uffdpair client exits and another program takes its pid
#     at once (ns_last_pid), within the same interval: the new process's
#     row must start from zero, under its own name, not add to the old one.
cp "$(command -v uffdpair)" /tmp/uffdreuse
start_tracer /tmp/reuse.json --userfaultfd --json 1
pid=$(($(cat /proc/sys/kernel/ns_last_pid) + 100))
echo $((pid - 1)) >/proc/sys/kernel/ns_last_pid
run reuse_old uffdpair --missing 24
echo $((pid - 1)) >/proc/sys/kernel/ns_last_pid
run reuse_new /tmp/uffdreuse --missing 8
sleep 1.2
stop_tracer reuse

# 3. The per-event stream of both stock sources.
start_tracer /tmp/events.json --events --json 1
run ev_kvm kvmchurn --pages 256 --dontneed 20
run ev_uffd uffdpair --missing 8 --delay-ms 5
sleep 1.2
stop_tracer events

# 4. The kernel's own userfaultfd selftests, under the tracer: they must
#    still pass, with nothing lost, and the tracer's counts must cover what
#    they report.
start_tracer /tmp/selftests.json --userfaultfd --json 1
begin selftests_run
sh uffd-selftests-run
end selftests_run $?
sleep 1.2
stop_tracer selftests

# 5. Text output and the exporter's file with the stock families.
start_tracer /tmp/text.txt 1
run tx_uffd uffdpair --missing 16 --delay-ms 2
run tx_kvm kvmchurn --pages 256 --dontneed 10
sleep 1.2
stop_tracer text
mkdir -p /tmp/prom
ummutrace --metrics-file /tmp/prom/ummu.prom 1 2>/tmp/prom.err &
tracer=$!
wait_nonempty /tmp/prom/ummu.prom
run mx_kvm kvmchurn --pages 256 --dontneed 50
run mx_uffd uffdpair --missing 16 --delay-ms 2
sleep 2.5
kill -INT $tracer
wait $tracer
rc=$?
begin metrics
cat /tmp/prom/ummu.prom
end metrics $rc
begin metrics.stderr
cat /tmp/prom.err
end metrics.stderr 0

# 6. No driver: each is named in one line; asking for one fails.
begin nodriver_lines
ummutrace --json 0.5 1 2>&1 >/dev/null
end nodriver_lines $?
begin nodriver_selected
ummutrace --umem --json 0.5 1 2>&1
end nodriver_selected $?

# The serial console may lose the last line when the guest powers off.
echo "=== guest.sh done"
sleep 1
