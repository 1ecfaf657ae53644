#!/bin/sh
# Runs in the guest (busybox sh) with both drivers loaded, ummutrace and the
# workloads in /opt/ummu (bin/regcache, bin/postcopy). Drives each device a
# known number of times under `ummutrace --json` and `ummutrace --events
# --json`, then prints every output between markers for the host-side
# checker (Tests/e2e/check_ummutrace.py).
set -u
PATH=/opt/ummu:/opt/ummu/bin:$PATH

wait_nonempty() {  # file, seconds
	i=0
	while [ ! -s "$1" ] && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$1" ]
}

ummutrace --json 1 > /tmp/agg.json 2> /tmp/agg.err &
AGG=$!
ummutrace --events --json 1 > /tmp/ev.json 2> /tmp/ev.err &
EV=$!
# Both are attached once they printed their first interval.
wait_nonempty /tmp/agg.json 60 || echo "agg: no output" >&2
wait_nonempty /tmp/ev.json 60 || echo "ev: no output" >&2

regcache --ops 40 --json > /tmp/rc.json
echo "regcache rc=$?"
postcopy --pages 32 --delay-us 3000 --push-ahead 25 --json > /tmp/pc.json
echo "postcopy rc=$?"
sleep 2.5

kill -INT $AGG $EV
wait $AGG; echo "ummutrace-json rc=$?"
wait $EV; echo "ummutrace-events rc=$?"

ummutrace 1 1 > /tmp/text.txt 2>&1; echo "ummutrace-text rc=$?"
ummutrace -p 1 --umem --json 1 1 > /tmp/filtered.json 2>&1; echo "ummutrace-filtered rc=$?"

for f in agg.err ev.err agg.json ev.json rc.json pc.json text.txt filtered.json; do
	echo "==== $f"
	cat /tmp/$f
done
echo "==== end"
