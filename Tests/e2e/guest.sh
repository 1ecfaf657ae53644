#!/bin/sh
# End-to-end scenarios, run inside the guest by scripts/test-e2e with both
# drivers loaded, the static ummutrace and the workloads on PATH.  Every
# scenario prints its raw output between "=== BEGIN name" and "=== END name
# rc=N"; check.py on the host asserts on them.  Nothing here judges.
set -u
. ./guest-lib.sh

# 1. Deterministic ummunotify workloads (workloads/README.md gives the exact
#    counts per operation) and a umem post-copy pair with a known delay.
start_tracer /tmp/intervals.json --json 1
run wl_unmap regcache --buffers 4 --ops 20 --mix unmap=1 --json
run wl_dontneed regcache --buffers 4 --ops 15 --mix dontneed=1 --json
run wl_mprotect regcache --buffers 4 --ops 10 --mix mprotect=1 --json
run wl_mremap regcache --buffers 3 --ops 6 --mix mremap=1 --json
run wl_postcopy postcopy --pages 48 --threads 2 --push-ahead 25 --delay-us 20000 --json
sleep 1.2
stop_tracer intervals

# 2. The per-event stream.
start_tracer /tmp/events.json --events --json 1
run ev_unmap regcache --buffers 2 --ops 12 --mix unmap=1 --json
run ev_postcopy postcopy --pages 16 --threads 1 --push-ahead 0 --delay-us 1000 --json
sleep 1.2
stop_tracer events

# 3. Text output like biolatency, milliseconds and timestamps.
start_tracer /tmp/text.txt -T 1
run tx_postcopy postcopy --pages 32 --threads 2 --push-ahead 0 --delay-us 5000 --json
run tx_unmap regcache --buffers 2 --ops 8 --mix unmap=1 --json
sleep 1.2
stop_tracer text
start_tracer /tmp/textms.txt -m 1
run txm_postcopy postcopy --pages 16 --threads 1 --push-ahead 0 --delay-us 5000 --json
sleep 1.2
stop_tracer textms

# 3b. The exporter: a Prometheus text file rewritten every second while the
#     workloads run; its last version is checked on the host.
mkdir -p /tmp/prom
ummutrace --metrics-file /tmp/prom/ummu.prom 1 2>/tmp/prom.err &
tracer=$!
wait_nonempty /tmp/prom/ummu.prom
run mx_unmap regcache --buffers 2 --ops 7 --mix unmap=1 --json
run mx_postcopy postcopy --pages 16 --threads 1 --push-ahead 25 --delay-us 2000 --json
sleep 2.5
kill -INT $tracer
wait $tracer
rc=$?
begin metrics
cat /tmp/prom/ummu.prom /tmp/prom.err
end metrics $rc

# 3c. A live series for the Prometheus pipeline on the host
#     (scripts/test-metrics --replay): the exporter's file, copied once a
#     second while the demo's kind of workloads run for 16 s; with
#     --bpf-stats, so the dashboard's BPF cost panels have data.
mkdir -p /tmp/live
ummutrace --metrics-file /tmp/live/ummu.prom --bpf-stats 1 2>/tmp/live.err &
tracer=$!
wait_nonempty /tmp/live/ummu.prom
regcache --buffers 8 --rate 30 --duration 60 >/dev/null 2>&1 &
rc_pid=$!
postcopy --pages 256 --threads 2 --rate 40 --delay-us 2000 --push-ahead 10 --rounds 0 --duration 60 >/dev/null 2>&1 &
pc_pid=$!
# The stock-kernel sources' families too: a ballooning VM and a userfaultfd
# post-copy pair whose handler's delay keeps faults waiting.
kvmchurn --pages 1024 --balloon --rate 50 >/dev/null 2>&1 &
kvm_pid=$!
uffdpair --missing 64 --loop --rate 40 --delay-ms 5 >/dev/null 2>&1 &
uf_pid=$!
# Each snapshot is a new version of the file (under emulation, on a busy
# host, one rewrite can take seconds: a copy a second held the same file
# up to 17 times), from the first that has both the drivers' and the stock
# sources' per-process series: up to 18 of them, for at most 40 s.  The
# workloads run on (60 s, stopped after the last snapshot), so that every
# rate of the series moves.
begin live_series
n=0
t=0
: >/tmp/live/last.prom
while [ $n -lt 18 ] && [ $t -lt 80 ]; do
	sleep 0.5
	t=$((t + 1))
	cp /tmp/live/ummu.prom /tmp/live/now.prom
	cmp -s /tmp/live/now.prom /tmp/live/last.prom && continue
	if [ $n = 0 ] && ! { grep -q '^ummu_ummunotify_invalidations_total{' /tmp/live/now.prom &&
		grep -q '^ummu_mmu_notifier_invalidations_total{' /tmp/live/now.prom; }; then
		continue
	fi
	mv /tmp/live/now.prom /tmp/live/last.prom
	n=$((n + 1))
	echo "# ---- snapshot $n"
	cat /tmp/live/last.prom
done
end live_series 0
kill -TERM $rc_pid $pc_pid $kvm_pid $uf_pid
wait $rc_pid $pc_pid $kvm_pid $uf_pid
kill -INT $tracer
wait $tracer

# 3d. The default mode (no interval) over a run longer than two of its 10 s
#     maintenance periods: the first processes exit early and their rows
#     are pruned on the way, yet the one summary at Ctrl-C lists each.
ummutrace --ummunotify --json >/tmp/summary.json 2>/tmp/summary.err &
tracer=$!
wait_attached $tracer
for i in 1 2 3 4; do
	run sm_unmap_$i regcache --buffers 2 --ops 5 --mix unmap=1 --json
	sleep 3
done
sleep 10
kill -INT $tracer
wait $tracer
rc=$?
begin summary
cat /tmp/summary.json
end summary $rc
begin summary.stderr
cat /tmp/summary.err
end summary.stderr 0

# 4. The PID filter: trace only init (pid 1), which never uses the devices.
start_tracer /tmp/filtered.json --json -p 1 1
run pf_unmap regcache --buffers 2 --ops 9 --mix unmap=1 --json
sleep 1.2
stop_tracer filtered

# 5. interval and count: exactly 3 objects, then exit 0 by itself.
begin count
ummutrace --json 0.5 3
end count $?

# 6. Clear one-line failures: unprivileged, then without the drivers.
mkdir -p /etc
echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>/etc/passwd
begin unprivileged
su -s /bin/sh nobody -c 'ummutrace --json 1 1' 2>&1
end unprivileged $?
rmmod ummunotify umem
begin nodrivers
ummutrace --json 1 1 2>&1
end nodrivers $?
begin nodrivers_selected
ummutrace --ummunotify --json 1 1 2>&1
end nodrivers_selected $?
insmod /lib/ummu/umem.ko
begin umem_only
ummutrace --json 0.5 1 2>&1
end umem_only $?

# The serial console may lose the last line when the guest powers off.
echo "=== guest.sh done"
sleep 1
