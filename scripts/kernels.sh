#!/usr/bin/env bash
# Guest kernels: resolve Debian's current 6.1 / 6.12 cloud releases through
# their metapackages (the archive drops old releases every few weeks, so we
# never hard-code one), fetch the unsigned image and install the headers.
#
#   scripts/kernels.sh resolve 6.1     -> prints e.g. 6.1.0-56-cloud-amd64
#   scripts/kernels.sh fetch 6.12      -> prints the release; leaves
#        $UMMU_CACHE/kernels/<release>/vmlinuz, the image's KVM modules
#        (irqbypass.ko, kvm.ko, kvm-amd.ko, decompressed, for guest-run
#        --kvm) in .../<release>/kvm/, and installs the headers
#   scripts/kernels.sh headers 6.1     -> prints the headers build dir
#
# Series "debug" is the 6.12 release rebuilt here with the kernel's checkers
# on (scripts/build-debug-kernel): resolve prints its name (e.g.
# 6.12.117+deb12-ummu-debug), fetch prints it once built, headers its KDIR.
# It is built without KVM: it has no kvm/ directory.
#
# Sourcing this file defines the same as functions (kernel_resolve, ...).
set -euo pipefail

UMMU_ROOT=${UMMU_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
UMMU_CACHE=${UMMU_CACHE:-$UMMU_ROOT/.cache}

kernel_metapackage() {
	case "$1" in
	6.1) echo linux-image-cloud-amd64 ;;
	6.12) echo linux-image-6.12-cloud-amd64 ;;
	*) echo "kernels.sh: unknown kernel series '$1' (use 6.1, 6.12 or debug)" >&2
	   return 2 ;;
	esac
}

# Prints the image package the metapackage points at, or nothing.
kernel_depends() {
	apt-cache depends "$1" 2>/dev/null |
		sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | head -n 1
}

# The debug kernel is named after the 6.12 release it is rebuilt from, so a
# new Debian release means a new debug kernel, not a stale one.
kernel_debug_name() {
	local rel
	rel=$(kernel_resolve 6.12)
	echo "${rel%-cloud-amd64}-ummu-debug"
}

kernel_resolve() {
	local meta dep
	if [ "$1" = debug ]; then
		kernel_debug_name
		return
	fi
	meta=$(kernel_metapackage "$1")
	dep=$(kernel_depends "$meta")
	if [ -z "$dep" ]; then
		# A fresh machine (or an old list) does not know it yet.
		apt-get update -qq >&2
		dep=$(kernel_depends "$meta")
	fi
	[ -n "$dep" ] || { echo "kernels.sh: cannot resolve $meta" >&2; return 1; }
	echo "${dep%-unsigned}"
}

kernel_headers() {
	if [ "$1" = debug ]; then
		kernel_kdir "$(kernel_debug_name)"
		return
	fi
	echo "/usr/src/linux-headers-$(kernel_resolve "$1")"
}

# The build directory (KDIR) for out-of-tree modules of a fetched release:
# a kernel built here keeps its own beside its image; Debian's come from the
# headers package.
kernel_kdir() {
	if [ -e "$UMMU_CACHE/kernels/$1/build/Makefile" ]; then
		echo "$UMMU_CACHE/kernels/$1/build"
	else
		echo "/usr/src/linux-headers-$1"
	fi
}

# The KVM modules guest-run --kvm loads, in load order, by their path in the
# image package's /lib/modules/<release>/kernel.
KERNEL_KVM_MODULES="virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd"

kernel_has_kvm() {
	local m
	for m in $KERNEL_KVM_MODULES; do
		[ -s "$1/kvm/${m##*/}.ko" ] || return 1
	done
}

# unxz IN OUT: 6.12's modules are .ko.xz, and busybox insmod cannot read
# them.  xz-utils is not always installed; python3 (guest-run needs it) is.
kernel_unxz() {
	if command -v xz >/dev/null; then
		xz -dc "$1" >"$2"
	else
		python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as i, open(sys.argv[2], "wb") as o:
    shutil.copyfileobj(i, o)' "$1" "$2"
	fi
}

kernel_fetch() {
	local rel dir tmp m mods
	if [ "$1" = debug ]; then
		# Never built implicitly: the build takes about an hour.
		rel=$(kernel_debug_name)
		[ -s "$UMMU_CACHE/kernels/$rel/vmlinuz" ] &&
			[ -e "$UMMU_CACHE/kernels/$rel/build/Module.symvers" ] || {
			echo "kernels.sh: debug kernel $rel is not built; run scripts/build-debug-kernel" >&2
			return 1
		}
		echo "$rel"
		return
	fi
	rel=$(kernel_resolve "$1")
	dir=$UMMU_CACHE/kernels/$rel
	# A cache from before the KVM modules were kept gets the package again.
	if [ ! -s "$dir/vmlinuz" ] || ! kernel_has_kvm "$dir"; then
		tmp=$(mktemp -d)
		# We are root: skip apt's sandbox user, who cannot write here.
		(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root \
			"linux-image-$rel-unsigned" >&2)
		dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/x"
		mkdir -p "$dir"
		if [ ! -s "$dir/vmlinuz" ]; then
			cp "$tmp/x/boot/vmlinuz-$rel" "$dir/vmlinuz.part"
			cp "$tmp/x/boot/config-$rel" "$dir/config"
			mv "$dir/vmlinuz.part" "$dir/vmlinuz"
		fi
		# Filled aside and renamed whole: a concurrent fetch sees all
		# three modules or none.
		mods=$dir/kvm.part.$$
		rm -rf "$mods"
		mkdir -p "$mods"
		for m in $KERNEL_KVM_MODULES; do
			m=$tmp/x/lib/modules/$rel/kernel/$m.ko
			if [ -e "$m.xz" ]; then
				kernel_unxz "$m.xz" "$mods/${m##*/}"
			else
				cp "$m" "$mods/"
			fi
		done
		if ! kernel_has_kvm "$dir"; then
			rm -rf "$dir/kvm"
			mv -T "$mods" "$dir/kvm" 2>/dev/null || true
		fi
		rm -rf "$mods" "$tmp"
	fi
	if [ ! -e "/usr/src/linux-headers-$rel/Makefile" ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "linux-headers-$rel" >&2
	fi
	echo "$rel"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	cmd=${1:-}; series=${2:-}
	case "$cmd" in
	resolve) kernel_resolve "$series" ;;
	fetch) kernel_fetch "$series" ;;
	headers) kernel_headers "$series" ;;
	*) echo "usage: $0 resolve|fetch|headers 6.1|6.12|debug" >&2; exit 2 ;;
	esac
fi
