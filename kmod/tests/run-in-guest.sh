#!/bin/sh
# Runs inside the guest (scripts/test-kmod puts it there): every test program
# in ./bin and every *_test.sh script beside it, each in turn, then one line
# summing their "N passed, N failed" lines.  A suite that dies without its
# closing line counts as one failure.
#   run-in-guest.sh [SUITE...]   (default: all; a suite is a file name)
cd "$(dirname "$0")" || exit 1
passed=0
failed=0
suites=$*
[ -n "$suites" ] || suites=$(ls bin 2>/dev/null; ls *_test.sh 2>/dev/null)
for s in $suites; do
	if [ -x "bin/$s" ]; then
		set -- "bin/$s"
	elif [ -f "$s" ]; then
		set -- sh "$s"
	else
		echo "run-in-guest: no suite $s"
		failed=$((failed + 1))
		continue
	fi
	echo "# suite $s"
	"$@" >/tmp/suite.out 2>&1
	rc=$?
	cat /tmp/suite.out
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' /tmp/suite.out | tail -n 1)
	if [ -z "$line" ]; then
		echo "# suite $s: no result line (exit $rc)"
		failed=$((failed + 1))
		continue
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	[ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "guest: $passed passed, $failed failed"
[ "$failed" = 0 ]
