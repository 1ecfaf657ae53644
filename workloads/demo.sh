#!/bin/sh
# The demo's workloads, run inside the guest (busybox sh is enough): a
# registration cache, three smaller caches (so a per-process view has rows)
# and a post-copy pair, all at moderate rates so a live view shows non-zero
# numbers for as long as the demo runs.  Everything started here is stopped
# on exit, on Ctrl-C and on SIGTERM.
#
#   demo.sh [-t SECONDS] [-q] [-- CMD [ARGS...]]
#
#   -t SECONDS   stop after SECONDS (default: run until CMD ends, or until
#                interrupted when there is no CMD)
#   -q           do not print the workloads' summaries at the end
#   CMD          run this while the workloads run (e.g. ummutop -b -n 5);
#                the demo's exit status is CMD's
#
# The workloads' pids are printed first, one "demo: NAME pid PID" line each.
# Rates are environment-tunable: DEMO_REG_RATE (ops/s, default 40),
# DEMO_CHURN_RATE (ops/s per small cache, default 10), DEMO_PC_RATE
# (touches/s, default 200), DEMO_PC_DELAY_US (default 500).
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

for p in regcache postcopy; do
	[ -x "$bin/$p" ] || { echo "demo: $bin/$p missing (make -C workloads)" >&2; exit 1; }
done
for d in /dev/ummunotify /dev/umem; do
	[ -e "$d" ] || { echo "demo: $d missing: are ummunotify.ko and umem.ko loaded?" >&2; exit 1; }
done

logs=${DEMO_LOGS:-/tmp/ummu-demo}
mkdir -p "$logs"
pids=

start() {
	name=$1
	shift
	"$@" >"$logs/$name.log" 2>&1 &
	pids="$pids $!"
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
	for p in $pids; do
		kill -KILL "$p" 2>/dev/null
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

# Let the processes open their devices before anyone looks.
sleep 1
for p in $pids; do
	kill -0 "$p" 2>/dev/null || { echo "demo: a workload (pid $p) exited early" >&2; exit 1; }
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
