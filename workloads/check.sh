#!/bin/sh
# Self-checks of the workload programs, run inside the guest with both
# drivers loaded (busybox sh is enough; no jq).  Each check runs a program
# briefly and asserts its --json summary is self-consistent and matches the
# counts documented in workloads/README.md.  Prints "ok N name" /
# "not ok N name" lines and ends with "N passed, N failed".
#
#   sh check.sh            programs from $WL_BIN, else ./bin beside this
#                          script, else $PATH
here=$(cd "$(dirname "$0")" && pwd)
bin=${WL_BIN:-$here/bin}
[ -x "$bin/regcache" ] || bin=$(dirname "$(command -v regcache 2>/dev/null || echo ./regcache)")

passed=0
failed=0
n=0
why=

# j JSON KEY: the first top-level-or-nested "KEY":value (numbers, booleans).
j() { printf '%s\n' "$1" | tr ',{}[' '\n\n\n\n' | grep "^\"$2\":" | head -n 1 | cut -d: -f2 | tr -d '"'; }
# sub JSON KEY: the body of the object member KEY (one level, no nesting).
sub() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":{\([^}]*\)}.*/\1/p"; }

# expect DESCRIPTION ACTUAL OP WANTED  (OP: -eq -ge -le -gt)
expect() {
	if [ -z "$2" ] || ! [ "$2" "$3" "$4" ] 2>/dev/null; then
		why="$why; $1: got '$2', want $3 $4"
	fi
}

result() {
	n=$((n + 1))
	if [ -z "$why" ]; then
		echo "ok $n $1"
		passed=$((passed + 1))
	else
		echo "not ok $n $1${why}"
		[ -n "$out" ] && echo "#   $out"
		failed=$((failed + 1))
	fi
	why=
	out=
}

# run_stopped SECONDS CMD...: run CMD --json in the background, SIGTERM it
# after SECONDS; sets pid, rc and out.
run_stopped() {
	secs=$1
	shift
	"$@" --json >/tmp/wl-check.out &
	pid=$!
	sleep "$secs"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	out=$(cat /tmp/wl-check.out)
}

# regcache with one operation kind: exact counts (README.md, "regcache").
#   check_kind KIND BUFFERS OPS INVAL_PER_OP GEN_PER_OP HINTS_PER_OP
check_kind() {
	k=$1 b=$2 ops=$3
	out=$("$bin/regcache" --buffers "$b" --ops "$ops" --mix "$k=1" --json)
	rc=$?
	expect "exit status" "$rc" -eq 0
	expect "ops.$k" "$(j "$(sub "$out" ops)" "$k")" -eq "$ops"
	expect "inval" "$(j "$out" inval)" -eq $((ops * $4))
	expect "generation" "$(j "$out" generation)" -eq $((ops * $5))
	expect "inval_hint" "$(j "$out" inval_hint)" -eq $((ops * $6))
	expect "expected.inval" "$(j "$(sub "$out" expected)" inval)" -eq $((ops * $4))
	expect "last" "$(j "$out" last)" -ge 1
	expect "last <= reads" "$(j "$out" last)" -le "$(j "$out" reads)"
	expect "registrations" "$(j "$out" registrations)" -eq "$b"
	expect "registers - unregisters" \
		$(($(j "$out" registers) - $(j "$out" unregisters))) -eq "$b"
	for e in stale_cookie bad_hint bad_last other; do
		expect "errors.$e" "$(j "$(sub "$out" errors)" "$e")" -eq 0
	done
	result "regcache --mix $k=1: exact counts"
}

check_kind unmap 8 50 1 1 1
check_kind dontneed 8 50 1 1 1
check_kind mprotect 8 50 1 1 1
check_kind mremap 8 50 1 2 0
# fork write-protects every buffer: one invalidation and report per buffer.
check_kind fork 4 10 4 4 4

# A timed, rate-limited mixed run: the model still holds, and the rate caps.
out=$("$bin/regcache" --buffers 16 --rate 100 --duration 2 --json)
rc=$?
expect "exit status" "$rc" -eq 0
expect "exact" "$(j "$out" exact)" = true
expect "ops_total" "$(j "$out" ops_total)" -le 202
expect "ops_total" "$(j "$out" ops_total)" -ge 20
expect "inval" "$(j "$out" inval)" -ge "$(j "$out" ops_total)"
result "regcache --rate 100 --duration 2: rate bound, model exact"

# Several cache processes: the sums and one pid each.
out=$("$bin/regcache" --procs 3 --buffers 4 --ops 20 --mix unmap=1 --json)
rc=$?
expect "exit status" "$rc" -eq 0
expect "inval" "$(j "$out" inval)" -eq 60
expect "registrations" "$(j "$out" registrations)" -eq 12
expect "pids" "$(printf '%s' "$out" | sed 's/.*"pids":\[\([^]]*\)\].*/\1/' | tr ',' '\n' | grep -c .)" -eq 3
result "regcache --procs 3: per-process sums"

# SIGTERM ends an unbounded run with a summary and status 0.
run_stopped 2 "$bin/regcache" --rate 50
expect "exit status" "$rc" -eq 0
expect "pid" "$(j "$out" pid)" -eq "$pid"
expect "ops_total" "$(j "$out" ops_total)" -ge 1
expect "exact" "$(j "$out" exact)" = true
result "regcache: SIGTERM stops with a summary"

# Bad options fail with status 1 and one line.
err=$("$bin/regcache" --mix bogus=1 2>&1 >/dev/null)
rc=$?
expect "exit status" "$rc" -eq 1
expect "lines" "$(printf '%s\n' "$err" | grep -c .)" -eq 1
result "regcache: bad --mix is one line, status 1"

# postcopy: every page served once on demand, after at least the delay.
out=$("$bin/postcopy" --pages 128 --threads 2 --delay-us 2000 --json)
rc=$?
expect "exit status" "$rc" -eq 0
expect "faults_served" "$(j "$out" faults_served)" -eq 128
expect "requests" "$(j "$out" requests)" -eq 128
expect "pages_pushed" "$(j "$out" pages_pushed)" -eq 0
expect "touches" "$(j "$out" touches)" -eq 128
s=$(sub "$out" stall_us)
expect "stall_us.min (>= delay)" "$(j "$s" min | cut -d. -f1)" -ge 2000
s=$(sub "$out" service_us)
expect "service_us.min (>= delay)" "$(j "$s" min | cut -d. -f1)" -ge 2000
expect "errors_total" "$(j "$out" errors_total)" -eq 0
result "postcopy: 128 faults served on demand after the delay"

# Push-ahead before the client, shared pages, punch and re-check.
out=$("$bin/postcopy" --pages 64 --threads 4 --overlap --push-ahead 25 --punch --delay-us 100 --json)
rc=$?
expect "exit status" "$rc" -eq 0
expect "faults_served" "$(j "$out" faults_served)" -eq 48
expect "pages_pushed" "$(j "$out" pages_pushed)" -eq 16
expect "requests (each page once)" "$(j "$out" requests)" -eq 48
expect "touches" "$(j "$out" touches)" -eq 256
expect "pages_rechecked" "$(j "$out" pages_rechecked)" -eq 64
expect "exact" "$(j "$out" exact)" = true
e=$(sub "$out" errors)
for k in mismatches mismatches_after_punch duplicate_requests bad_offsets requests_for_pushed_pages; do
	expect "errors.$k" "$(j "$e" "$k")" -eq 0
done
result "postcopy: push-ahead, overlapping threads, punch keeps the client's data"

# Background pushing over several rounds: every page served exactly once.
out=$("$bin/postcopy" --pages 96 --threads 2 --push-ahead 40 --push-mode background --rounds 3 --delay-us 300 --punch --json)
rc=$?
expect "exit status" "$rc" -eq 0
expect "rounds" "$(j "$out" rounds)" -eq 3
expect "faults_served + pages_pushed" \
	$(($(j "$out" faults_served) + $(j "$out" pages_pushed))) -eq 288
expect "touches" "$(j "$out" touches)" -eq 288
expect "errors_total" "$(j "$out" errors_total)" -eq 0
result "postcopy: background push over 3 rounds serves each page once"

# SIGTERM to the server stops an unbounded, rate-limited run cleanly.
run_stopped 3 "$bin/postcopy" --pages 4096 --rounds 0 --rate 200
expect "exit status" "$rc" -eq 0
expect "pid_server" "$(j "$out" pid_server)" -eq "$pid"
expect "touches" "$(j "$out" touches)" -ge 1
expect "touches (rate bound)" "$(j "$out" touches)" -le 700
expect "errors_total" "$(j "$out" errors_total)" -eq 0
result "postcopy: SIGTERM stops with a summary"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
