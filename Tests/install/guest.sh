#!/bin/sh
# The packages on a booted Debian 12 system, as an operator installs them
# (README, "Install on a host"). Run by scripts/test-install through
# scripts/guest-debian as `guest.sh PHASE`, as root, from /opt/ummu, where
# debs/ holds the .debs and bin/ the workloads:
#   phase 1: apt install ./debs/*.deb (DKMS builds the drivers for the
#            running kernel), then the guest powers off;
#   phase 2: after the reboot: the drivers loaded at boot, the device nodes'
#            modes and group, the exporter active, node_exporter serving
#            the ummu_* families of a running workload, the unit's handling
#            of its directory, rmmod refused while the exporter runs, then
#            apt remove: the unit stopped, the modules gone.
# Prints "ok N ..." / "not ok N ..." and "N passed, N failed"; exits 1 if
# anything failed.
set -u
phase=${1:?phase}
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1${2:+  # $2}"; }
check() { # check NAME CMD...
	name=$1
	shift
	if out=$("$@" 2>&1); then ok "$name"; else notok "$name" "$(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"; fi
}
finish() {
	echo "$((n - failed)) passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}
release=$(uname -r)
textdir=/var/lib/prometheus/node-exporter
echo "# phase $phase on $release"

if [ "$phase" = 1 ]; then
	check "systemd is PID 1" sh -c '[ "$(cat /proc/1/comm)" = systemd ]'
	start=$(date +%s)
	# No network: everything the packages depend on is in the image (apt
	# would fail to fetch anything else).  Not --no-download: with local
	# .debs, apt 2.6 stops with "Pathname to install is not absolute".
	check "apt install ./debs/ummu-*.deb" sh -c \
		'DEBIAN_FRONTEND=noninteractive apt-get install -y "$PWD"/debs/*.deb'
	echo "# apt install took $(($(date +%s) - start)) s (DKMS build included)"
	check "dkms built and installed ummu for $release" sh -c \
		"dkms status ummu -k '$release' 2>&1 | grep ': installed' >/dev/null"
	for m in ummunotify umem; do
		check "modinfo $m: a module of $release" sh -c \
			"modinfo -k '$release' -F filename $m | grep -q '^/lib/modules/$release/'"
	done
	check "the unit is enabled" systemctl is-enabled ummu-exporter
	check "ummutrace --version" sh -c 'ummutrace --version | grep -Eq "^[0-9]+\.[0-9]+"'
	# (The image leaves man pages out, as dpkg's path-exclude says:
	# scripts/test-debs checks that they are in the package and render.)
	check "bash completion installed" test -s /usr/share/bash-completion/completions/ummutrace
	finish
fi

# ---- phase 2: after the reboot ----------------------------------------------
systemctl is-system-running --wait >/dev/null 2>&1
check "systemd is PID 1, the system is up" sh -c \
	'[ "$(cat /proc/1/comm)" = systemd ] && systemctl is-system-running | grep -Eq "running|degraded"'
for m in ummunotify umem; do
	check "the driver $m is loaded at boot" sh -c "grep -q '^$m ' /proc/modules"
done
check "/dev/ummunotify is 0444 root" sh -c '[ "$(stat -c "%a %U" /dev/ummunotify)" = "444 root" ]'
check "/dev/umem is 0660 group kvm (the udev rule)" sh -c '[ "$(stat -c "%a %G" /dev/umem)" = "660 kvm" ]'
check "systemctl is-active ummu-exporter" systemctl is-active ummu-exporter
check "node_exporter is active" systemctl is-active prometheus-node-exporter

# A workload on both devices while the exporter writes every 10 s.
bin/regcache --duration 90 --rate 200 >/dev/null 2>&1 &
rc=$!
bin/postcopy --rounds 0 --duration 90 --pages 64 --delay-us 200 >/dev/null 2>&1 &
pc=$!
metrics=/tmp/metrics.txt
got=0
for _ in $(seq 60); do
	sleep 1
	curl -fsS http://127.0.0.1:9100/metrics >"$metrics" 2>/dev/null || continue
	if grep -q "^ummu_ummunotify_invalidations_total{.*comm=\"regcache\"" "$metrics" &&
		grep -q "^ummu_umem_faults_total{.*comm=\"postcopy\"" "$metrics"; then
		got=1
		break
	fi
done
if [ "$got" = 1 ]; then ok "node_exporter serves the workload's ummu_* series (regcache, postcopy)"; else
	notok "node_exporter serves the workload's ummu_* series" "$(grep -c '^ummu_' "$metrics" 2>/dev/null) ummu lines"
fi
check "node_textfile_scrape_error 0" grep -qx 'node_textfile_scrape_error 0' "$metrics"
check "the exporter traces the drivers and the stock sources" sh -c \
	"grep -q '^ummu_mmu_notifier_invalidations_total' '$metrics' && grep -q '^ummu_umem_pending_requests' '$metrics'"
# Subscribers are named from /proc/kallsyms, which the unit's sandbox must
# leave readable (ProtectKernelTunables= would hide it).
# (node_exporter sorts the labels: reason comes first.  A new subscriber's
# name is looked up at the next rewrites: give it 30 s.)
for _ in $(seq 30); do
	grep -q '^ummu_mmu_notifier_subscriber_invalidations_total{.*subscriber="ummunotify"' "$metrics" && break
	sleep 1
	curl -fsS http://127.0.0.1:9100/metrics >"$metrics" 2>/dev/null
done
check "the unit names MMU-notifier subscribers (ummunotify, from /proc/kallsyms)" \
	grep -q '^ummu_mmu_notifier_subscriber_invalidations_total{.*subscriber="ummunotify"' "$metrics"
kill "$rc" "$pc" 2>/dev/null
wait "$rc" "$pc" 2>/dev/null
# A running exporter pins the traced modules (the unit's comment says so):
# with the workloads gone, rmmod fails while it runs and works once it stops.
check "rmmod umem is refused while the exporter runs" sh -c '! rmmod umem 2>/dev/null && grep -q "^umem " /proc/modules'
systemctl stop ummu-exporter
check "rmmod umem works once the exporter stopped (control)" rmmod umem
modprobe umem
systemctl start ummu-exporter

# The unit and its directory: a missing one is made (no 226/NAMESPACE), an
# existing one keeps its mode.
systemctl stop ummu-exporter
rm -rf "$textdir"
systemctl start ummu-exporter
sleep 2
check "started with its directory missing: active, directory made" sh -c \
	"systemctl is-active ummu-exporter && [ -d '$textdir' ]"
chmod 0750 "$textdir"
systemctl restart ummu-exporter
sleep 2
check "restarted: the directory keeps its mode 0750" sh -c \
	"systemctl is-active ummu-exporter && [ \"\$(stat -c %a '$textdir')\" = 750 ]"
chmod 0755 "$textdir"

# Removal.
check "apt remove ummu-tools ummu-dkms ummu-dev" sh -c \
	'DEBIAN_FRONTEND=noninteractive apt-get remove -y ummu-tools ummu-dkms ummu-dev'
check "the unit is stopped" sh -c '! systemctl is-active ummu-exporter'
check "no ummu in dkms" sh -c '[ -z "$(dkms status ummu 2>/dev/null)" ]'
for m in ummunotify umem; do
	check "the module $m is gone from /lib/modules/$release" sh -c "! modinfo -k '$release' $m >/dev/null 2>&1"
done
finish
