#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Load/unload cycles of ummunotify.ko with no leak.  Runs inside the guest
# (busybox sh, as root):
#
#   sh ummunotify_reload_test.sh [KO] [CYCLES] [ABI_CLIENT]
#
#   KO          the module (default /lib/ummu/ummunotify.ko)
#   CYCLES      default 1000
#   ABI_CLIENT  optional static test binary run against the device every
#               100th cycle (default: bin/ummunotify_abi_example or
#               ./ummunotify_abi_example if present)
#
# Each cycle: rmmod, insmod, open and close /dev/ummunotify (which
# registers and unregisters an MMU notifier on the shell's mm).  Before
# and after (after dropping caches, with the module loaded both times) it
# compares /proc/meminfo SUnreclaim, Percpu and VmallocUsed and the
# module's line in /proc/modules.
#
# Tolerances: 128 kB for SUnreclaim and VmallocUsed, 32 kB for Percpu.
# Measured on 6.12 with three rounds of 500 cycles, SUnreclaim moved by
# -12..+24 kB between rounds with no trend (kernfs nodes and task structs
# of the shell come and go), VmallocUsed by 0..16 kB, Percpu by 0.  Every
# cycle allocates at least a context (kmalloc-256) and its counter page
# (4 kB) and loads the module (~36 kB of vmalloc), so a leak of any of
# them in every cycle grows by >= 256 kB over 1000 cycles: twice the
# tolerance, which is 4x the observed noise.  Registration leaks are
# caught by ummunotify_test's no_leak_* case (100,000 registrations).
# The script ends in "N passed, N failed" like the C tests and leaves the
# module loaded.

KO=${1:-/lib/ummu/ummunotify.ko}
CYCLES=${2:-1000}
CLIENT=${3:-}
if [ -z "$CLIENT" ]; then
	for c in bin/ummunotify_abi_example ./ummunotify_abi_example; do
		[ -x "$c" ] && CLIENT=$c && break
	done
fi
TOL_SLAB=128
TOL_VMALLOC=128
TOL_PERCPU=32

passed=0
failed=0
n=0
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1"; }
finish() {
	lsmod | grep -q '^ummunotify ' || insmod "$KO" 2>/dev/null
	echo "$passed passed, $failed failed, 0 skipped"
	[ "$failed" = 0 ]
	exit
}

echo "TAP version 13"
[ -f "$KO" ] || { echo "# no module at $KO"; notok module_present; finish; }

meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
modline() { awk '$1 == "ummunotify" { print $1, $2, $3 }' /proc/modules; }
settle() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 1
}
slabsnap() {
	# name bytes (active objects x object size)
	awk 'NR > 2 { print $1, $2 * $4 }' /proc/slabinfo 2>/dev/null
}

# Start loaded, so both measurements see the same state.
lsmod | grep -q '^ummunotify ' || insmod "$KO"

# Unload is refused while a file is open, and works after.
sleep 600 </dev/ummunotify &
holder=$!
sleep 1
if rmmod ummunotify 2>/dev/null; then
	notok rmmod_refused_while_open
	insmod "$KO"
else
	ok rmmod_refused_while_open
fi
kill $holder
wait $holder 2>/dev/null
if rmmod ummunotify && insmod "$KO"; then
	ok rmmod_after_close
else
	notok rmmod_after_close
fi

# Warm up: the first cycles allocate caches that stay (kmem caches of
# sysfs, module loader buffers), which are not leaks.
for i in 1 2 3 4 5 6 7 8 9 10; do
	rmmod ummunotify && insmod "$KO" && : </dev/ummunotify
done
settle
slab0=$(meminfo SUnreclaim)
pcpu0=$(meminfo Percpu)
vmal0=$(meminfo VmallocUsed)
mod0=$(modline)
slabsnap >/tmp/slab0

bad=0
used=0
i=0
while [ $i -lt "$CYCLES" ]; do
	i=$((i + 1))
	if ! rmmod ummunotify; then
		echo "# cycle $i: rmmod failed"
		bad=$((bad + 1))
		break
	fi
	if [ -e /dev/ummunotify ]; then
		echo "# cycle $i: /dev/ummunotify still there after rmmod"
		bad=$((bad + 1))
	fi
	if ! insmod "$KO"; then
		echo "# cycle $i: insmod failed"
		bad=$((bad + 1))
		break
	fi
	if ! : </dev/ummunotify; then
		echo "# cycle $i: open failed"
		bad=$((bad + 1))
	fi
	if [ -n "$CLIENT" ] && [ $((i % 100)) = 0 ]; then
		if "$CLIENT" >/tmp/client.out 2>&1; then
			used=$((used + 1))
		else
			cat /tmp/client.out
			bad=$((bad + 1))
		fi
	fi
done
if [ $bad = 0 ] && [ $i = "$CYCLES" ]; then
	ok "load_unload_${CYCLES}_cycles"
else
	notok "load_unload_${CYCLES}_cycles"
fi
if [ -n "$CLIENT" ]; then
	echo "# device used by $CLIENT in $used cycles"
else
	echo "# no ABI client binary: cycles only opened and closed the device"
fi

settle
slab1=$(meminfo SUnreclaim)
pcpu1=$(meminfo Percpu)
vmal1=$(meminfo VmallocUsed)
mod1=$(modline)
slabsnap >/tmp/slab1

echo "# SUnreclaim ${slab0} -> ${slab1} kB, Percpu ${pcpu0} -> ${pcpu1} kB, VmallocUsed ${vmal0} -> ${vmal1} kB"
echo "# largest slab growth (bytes):"
awk 'NR == FNR { a[$1] = $2; next }
	{ d = $2 - a[$1]; if (d > 0) print d, $1 }' /tmp/slab0 /tmp/slab1 |
	sort -rn | head -n 5 | sed 's/^/#   /'

check() { # name before after tolerance_kB
	if [ -z "$2" ] || [ -z "$3" ]; then
		echo "# $1: not in /proc/meminfo"
		notok "$1_no_leak"
	elif [ $(($3 - $2)) -le "$4" ]; then
		ok "$1_no_leak"
	else
		echo "# $1 grew by $(($3 - $2)) kB (tolerance $4 kB)"
		notok "$1_no_leak"
	fi
}
check slab_unreclaimable "$slab0" "$slab1" $TOL_SLAB
check percpu "$pcpu0" "$pcpu1" $TOL_PERCPU
check vmalloc "$vmal0" "$vmal1" $TOL_VMALLOC

echo "# /proc/modules: '$mod0' -> '$mod1'"
if [ -n "$mod0" ] && [ "$mod0" = "$mod1" ]; then
	ok module_size_and_refcount_unchanged
else
	notok module_size_and_refcount_unchanged
fi

finish
