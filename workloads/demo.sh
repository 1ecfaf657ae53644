#!/bin/sh
# The demo's workloads, run inside the guest (busybox sh is enough): on the
# drivers, a registration cache, three smaller caches (so a per-process view
# has rows) and a post-copy pair on /dev/umem; on the stock kernel, a KVM VM
# whose memslot a balloon churns (kvmchurn --balloon: one MMU_NOTIFY_CLEAR
# per step, seen by KVM's MMU notifier) and a userfaultfd post-copy pair
# (uffdpair --loop: missing faults resolved by UFFDIO_COPY).  All run at
# moderate rates, so a live view shows non-zero numbers for as long as the
# demo runs and stays responsive under TCG.  Everything started here is
# stopped on exit, on Ctrl-C and on SIGTERM.
#
#   demo.sh [-t SECONDS] [-q] [-- CMD [ARGS...]]
#
#   -t SECONDS   stop after SECONDS (default: run until CMD ends, or until
#                interrupted when there is no CMD)
#   -q           do not print the workloads' summaries at the end
#   CMD          run this while the workloads run (e.g. ummutop -b -n 5);
#                the demo's exit status is CMD's
#
# The drivers (/dev/ummunotify, /dev/umem) must be loaded; without /dev/kvm
# (guest-run without --kvm) the KVM VM is left out with a note.  The
# workloads' pids are printed first, one "demo: NAME pid PID" line each; at
# the end one "demo: NAME stopped, status S" line each (SIGTERM, then
# SIGKILL after 5 s: "killed"), then their summaries.
# Rates are environment-tunable: DEMO_REG_RATE (ops/s, default 40),
# DEMO_CHURN_RATE (ops/s per small cache, default 10), DEMO_PC_RATE
# (touches/s, default 200), DEMO_PC_DELAY_US (default 500), DEMO_KVM_RATE
# (balloon steps/s, default 50), DEMO_UFFD_RATE (userfaultfd faults/s,
# default 50), DEMO_UFFD_DELAY_MS (the uffd server's delay, default 1).
here=$(cd "$(dirname "$0")" && pwd)
bin=${WL_BIN:-$here/bin}
[ -x "$bin/regcache" ] || bin=$(dirname "$(command -v regcache 2>/dev/null || echo ./regcache)")

secs=
quiet=
while [ $# -gt 0 ]; do
	case "$1" in
	-t) secs=$2; shift 2 ;;
	-q) quiet=1; shift ;;
	--) shift; break ;;
	-h|--help) sed -n '2,/^here=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done

for p in regcache postcopy kvmchurn uffdpair; do
	[ -x "$bin/$p" ] || { echo "demo: $bin/$p missing (make -C workloads)" >&2; exit 1; }
done
for d in /dev/ummunotify /dev/umem; do
	[ -e "$d" ] || { echo "demo: $d missing: are ummunotify.ko and umem.ko loaded?" >&2; exit 1; }
done
kvm=1
if [ ! -e /dev/kvm ]; then
	echo "demo: /dev/kvm missing (guest-run --kvm loads KVM): no KVM VM in this demo" >&2
	kvm=
fi

logs=${DEMO_LOGS:-/tmp/ummu-demo}
mkdir -p "$logs"
rm -f "$logs"/*.log
pids=
names=

start() {
	name=$1
	shift
	"$@" >"$logs/$name.log" 2>&1 &
	pids="$pids $!"
	names="$names $name:$!"
	echo "demo: $name pid $!"
}

stopping=
stop_all() {
	[ -n "$stopping" ] && return
	stopping=1
	for p in $pids; do
		kill -TERM "$p" 2>/dev/null
	done
	# Give them a few seconds to print their summaries, then insist.
	i=0
	while [ $i -lt 50 ]; do
		alive=
		for p in $pids; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ -z "$alive" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	killed=
	for p in $pids; do
		kill -0 "$p" 2>/dev/null && killed="$killed $p"
		kill -KILL "$p" 2>/dev/null
	done
	for np in $names; do
		name=${np%%:*}
		p=${np#*:}
		wait "$p" 2>/dev/null
		st=$?
		case " $killed " in
		*" $p "*) st="$st (killed: still running 5 s after SIGTERM)" ;;
		esac
		[ -n "$quiet" ] || echo "demo: $name stopped, status $st"
	done
	wait 2>/dev/null
	if [ -z "$quiet" ]; then
		for f in "$logs"/*.log; do
			[ -s "$f" ] && sed "s/^/demo: /" "$f"
		done
	fi
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

start regcache "$bin/regcache" --buffers 32 --pages-per-buffer 4 \
	--rate "${DEMO_REG_RATE:-40}" --mix unmap=4,dontneed=4,mprotect=2,fork=1,mremap=1
start churn "$bin/regcache" --procs 3 --buffers 8 --pages-per-buffer 2 \
	--rate "${DEMO_CHURN_RATE:-10}" --seed 7
start postcopy "$bin/postcopy" --pages 2048 --threads 2 --rounds 0 \
	--delay-us "${DEMO_PC_DELAY_US:-500}" --push-ahead 20 --push-mode background \
	--push-rate 20 --rate "${DEMO_PC_RATE:-200}" --punch
# A VM whose memory a balloon churns: KVM's MMU notifier is told of every
# page given back (one MMU_NOTIFY_CLEAR per step).
[ -z "$kvm" ] || start kvmchurn "$bin/kvmchurn" --pages 1024 --balloon \
	--rate "${DEMO_KVM_RATE:-50}"
# A userfaultfd post-copy pair: the client faults on missing pages of a
# 64-page area, the server resolves each with UFFDIO_COPY after its delay.
start uffdpair "$bin/uffdpair" --loop --missing 64 --rate "${DEMO_UFFD_RATE:-50}" \
	--delay-ms "${DEMO_UFFD_DELAY_MS:-1}"

# Let the processes open their devices (and KVM create its VM) before
# anyone looks.
sleep 1
for np in $names; do
	kill -0 "${np#*:}" 2>/dev/null ||
		{ echo "demo: ${np%%:*} (pid ${np#*:}) exited early: $logs/${np%%:*}.log" >&2; exit 1; }
done

rc=0
if [ $# -gt 0 ]; then
	if [ -n "$secs" ]; then
		timeout "$secs" "$@"
	else
		"$@"
	fi
	rc=$?
elif [ -n "$secs" ]; then
	sleep "$secs"
else
	echo "demo: running; Ctrl-C or SIGTERM stops it"
	while :; do
		sleep 1
	done
fi
exit $rc
