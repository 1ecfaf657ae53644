# Shell helpers of the guest scenario scripts (Tests/e2e/guest.sh,
# Tests/stock/guest.sh), sourced in the guest.  Every scenario prints its raw
# output between "=== BEGIN name" and "=== END name rc=N"; the host's
# checkers (Tests/lib/verdict.py) assert on them.  Nothing here judges.
begin() { echo "=== BEGIN $1"; }
end() { echo "=== END $1 rc=$2"; }

# Wait (at most 30 s) until a tracer's first output exists: it proves the
# programs are attached.
wait_nonempty() {	# file
	i=0
	while [ ! -s "$1" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
# Start a tracer in the background and wait until it has attached.
start_tracer() {	# out-file args...
	out=$1
	shift
	ummutrace "$@" >"$out" 2>"$out.err" &
	tracer=$!
	wait_nonempty "$out"
}
stop_tracer() {	# name: Ctrl-C, wait, dump
	kill -INT "$tracer"
	wait "$tracer"
	rc=$?
	begin "$1"
	cat "$out"
	end "$1" $rc
	begin "$1.stderr"
	cat "$out.err"
	end "$1.stderr" 0
}
run() {	# name cmd...: a workload, its JSON summary (and errors) kept
	name=$1
	shift
	"$@" >/tmp/$name.out 2>/tmp/$name.err
	rc=$?
	begin "$name"
	cat /tmp/$name.out /tmp/$name.err
	end "$name" $rc
}
