#!/usr/bin/env bash
# End-to-end test of ummutrace in the guest, on each kernel series given
# (default: 6.1 and 6.12): builds the static ummutrace and the workloads,
# boots the guest with both drivers, runs Tests/e2e/ummutrace-guest.sh and
# checks its output with Tests/e2e/check_ummutrace.py. Also checks the
# one-line failures without the drivers. Ends with "N passed, N failed".
#   Tests/e2e/run-ummutrace-e2e.sh [6.1] [6.12]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
series=("$@")
[ ${#series[@]} -eq 0 ] && series=(6.1 6.12)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! bindir=$(scripts/build-static ummutrace 2> "$work/build.log"); then
	tail -30 "$work/build.log"; echo "static build failed"; echo "0 passed, 1 failed"; exit 1
fi
make -s -C workloads >/dev/null || { echo "workloads build failed"; echo "0 passed, 1 failed"; exit 1; }
cp "$bindir/ummutrace" "$work/ummutrace"
strip "$work/ummutrace" 2>/dev/null || true

pass=0 fail=0
for k in "${series[@]}"; do
	echo "# kernel $k: workloads under ummutrace"
	scripts/guest-run -k "$k" -t 600 -a "$work/ummutrace" -a workloads/bin \
		-a Tests/e2e/ummutrace-guest.sh -- sh ummutrace-guest.sh > "$work/out-$k.txt" 2>&1
	grc=$?
	if [ $grc -ne 0 ]; then
		echo "not ok guest run on $k exited $grc"; tail -20 "$work/out-$k.txt"; fail=$((fail + 1))
	fi
	python3 Tests/e2e/check_ummutrace.py "$work/out-$k.txt" > "$work/check-$k.txt"
	sed 's/^/  /' "$work/check-$k.txt"
	p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$work/check-$k.txt")
	f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$work/check-$k.txt")
	pass=$((pass + ${p:-0})) fail=$((fail + ${f:-1}))

	echo "# kernel $k: no drivers loaded"
	scripts/guest-run -k "$k" -m "" -t 300 -a "$work/ummutrace" -- sh -c \
		'ummutrace 1 1; echo "rc=$?"; ummutrace --umem 1 1; echo "rc=$?"' > "$work/none-$k.txt" 2>&1
	if grep -q '^ummutrace: no ummu tracepoints found: are ummunotify.ko and umem.ko loaded' "$work/none-$k.txt" &&
		grep -q '^ummutrace: tracepoint umem:umem_fault not found: is umem.ko loaded' "$work/none-$k.txt" &&
		[ "$(grep -c '^rc=4$' "$work/none-$k.txt")" = 2 ]; then
		echo "ok without drivers: one line each, exit 4"; pass=$((pass + 1))
	else
		echo "not ok without drivers:"; cat "$work/none-$k.txt"; fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
