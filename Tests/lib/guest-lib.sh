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
# Wait (at most 30 s) until a process holds BPF links and their number has
# not changed for a second: its programs are attached (for tracers that
# print nothing until they end).
wait_attached() {	# pid
	last=-1
	same=0
	i=0
	while [ $i -lt 300 ]; do
		n=$(grep -l '^link_type:' /proc/$1/fdinfo/* 2>/dev/null | wc -l)
		if [ "$n" -gt 0 ] && [ "$n" = "$last" ]; then
			same=$((same + 1))
			[ $same -ge 10 ] && return 0
		else
			same=0
		fi
		last=$n
		sleep 0.1
		i=$((i + 1))
	done
	echo "wait_attached: process $1 held no stable set of BPF links after 30 s" >&2
	return 1
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
