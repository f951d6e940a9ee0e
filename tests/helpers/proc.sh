# Process helpers sourced by servers.sh, kafka.sh, nats.sh, pgpair.sh and
# rabbitcluster.sh (not run on its own). They use the sourcing script's log().

# A TCP port free on 127.0.0.1 now (the kernel's pick), printed.
loopback_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Read a PID file; prints the PID or nothing.
read_pidfile() {
	local pid=""
	[[ -s $1 ]] && read -r pid <"$1"
	[[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
	return 0
}

# stop_pid PID WAIT NAME ALIVE: SIGTERM to PID, then up to WAIT seconds
# while `ALIVE PID` is true, then SIGKILL and up to 5 s more. Returns 1 when
# it is still alive after that (the caller says so).
stop_pid() {
	local pid=$1 wait=$2 name=$3 alive=$4 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < wait * 10; i++)); do
		"$alive" "$pid" || return 0
		sleep 0.1
	done
	log "$name did not stop within ${wait}s: sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		"$alive" "$pid" || return 0
		sleep 0.1
	done
	return 1
}
