#!/usr/bin/env bash
# nats.sh - a private nats-server with JetStream for the mqtx test suite.
#
# Usage:
#   tests/helpers/nats.sh start STATEDIR
#   tests/helpers/nats.sh stop  STATEDIR
#   tests/helpers/nats.sh down  STATEDIR   (stop the server, keep its port and store)
#   tests/helpers/nats.sh up    STATEDIR   (start it again on the same port and store)
#
# `start` runs after `servers.sh start STATEDIR` (which writes STATEDIR/env
# from scratch) and appends to STATEDIR/env:
#
#   MQTX_TEST_NATS_URL    nats://127.0.0.1:PORT
#   MQTX_TEST_NATS_LOCAL  1 if the server was started here, 0 if passed through
#
# When MQTX_TEST_NATS_URL is already set, nothing is started and the URL is
# passed through (LOCAL=0). Without nats-server (Debian package
# nats-server) nothing is started either and MQTX_TEST_NATS_URL stays
# empty: the NATS tests then skip.
#
# The server listens on 127.0.0.1 only, on a port free at start, with its
# JetStream store in STATEDIR/nats-store. `stop` and `down` stop the
# recorded process (STATEDIR/nats.pid) after checking that it still is the
# server started here: SIGTERM, up to 10 s, then SIGKILL. Stopping twice,
# or a STATEDIR where nothing runs, is fine.
#
# Files in STATEDIR: nats.pid, nats.port, nats.conf, nats.log, nats-store/.

set -euo pipefail

readonly STOP_WAIT=10  # seconds to wait after SIGTERM before SIGKILL
readonly START_WAIT=10 # seconds to wait for the server to listen
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}

PROG=nats.sh

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage() {
	printf 'usage: %s start|stop|down|up STATEDIR\n' "$0" >&2
	exit 2
}
write_env_var() { printf 'export %s=%q\n' "$1" "$2"; }

# read_pidfile, stop_pid
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# True if PID is alive and is the nats-server of this STATEDIR.
is_our_server() {
	local pid=$1 cmdline
	[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *nats-server* && $cmdline == *"$STATEDIR/nats-store"* ]]
}

# Starts the server on the port in STATEDIR/nats.port and waits until it listens.
run_server() {
	local port pid i ready
	read -r port <"$STATEDIR/nats.port"
	ready=$(grep -c 'Server is ready' "$STATEDIR/nats.log" 2>/dev/null || true)
	# max_payload as large as nats-server recommends (8 MiB, default 1 MiB):
	# the suites send multi-megabyte payloads
	printf 'max_payload: 8388608\n' >"$STATEDIR/nats.conf"
	setsid "$NATS_SERVER" -c "$STATEDIR/nats.conf" -js -a 127.0.0.1 -p "$port" -sd "$STATEDIR/nats-store" -l "$STATEDIR/nats.log" \
		</dev/null >/dev/null 2>>"$STATEDIR/nats.log" 3>&- &
	pid=$!
	echo "$pid" >"$STATEDIR/nats.pid"
	for ((i = 0; i < START_WAIT * 10; i++)); do
		if (($(grep -c 'Server is ready' "$STATEDIR/nats.log" 2>/dev/null || true) > ${ready:-0})); then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$STATEDIR/nats.log" >&2
			rm -f "$STATEDIR/nats.pid"
			die "nats-server exited at startup (log: $STATEDIR/nats.log)"
		fi
		sleep 0.1
	done
	stop_server || true
	die "nats-server did not listen on 127.0.0.1:$port within ${START_WAIT}s"
}

stop_server() {
	local pid
	pid=$(read_pidfile "$STATEDIR/nats.pid")
	if [[ -n $pid ]] && is_our_server "$pid"; then
		stop_pid "$pid" "$STOP_WAIT" nats-server is_our_server || die "nats-server (pid $pid) still alive after SIGKILL"
	fi
	rm -f "$STATEDIR/nats.pid"
}

cmd_start() {
	mkdir -p "$STATEDIR"
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	if [[ -n ${MQTX_TEST_NATS_URL:-} ]]; then
		log "using external NATS from MQTX_TEST_NATS_URL"
		{
			write_env_var MQTX_TEST_NATS_URL "$MQTX_TEST_NATS_URL"
			write_env_var MQTX_TEST_NATS_LOCAL 0
		} >>"$STATEDIR/env"
		return 0
	fi
	if [[ ! -x $NATS_SERVER ]]; then
		log "nats-server not found (apt-get install nats-server): NATS tests will skip"
		write_env_var MQTX_TEST_NATS_LOCAL 0 >>"$STATEDIR/env"
		return 0
	fi
	local pid
	pid=$(read_pidfile "$STATEDIR/nats.pid")
	if [[ -n $pid ]] && is_our_server "$pid"; then
		die "nats-server already running in $STATEDIR (pid $pid); run '$0 stop $STATEDIR' first"
	fi
	mkdir -p "$STATEDIR/nats-store"
	loopback_port >"$STATEDIR/nats.port"
	: >"$STATEDIR/nats.log"
	run_server
	local port
	read -r port <"$STATEDIR/nats.port"
	{
		write_env_var MQTX_TEST_NATS_URL "nats://127.0.0.1:$port"
		write_env_var MQTX_TEST_NATS_LOCAL 1
	} >>"$STATEDIR/env"
	log "nats-server ready: nats://127.0.0.1:$port (pid $(read_pidfile "$STATEDIR/nats.pid"))"
}

(($# == 2)) || usage
STATEDIR=$2
[[ -n $STATEDIR ]] || usage
case $1 in
start) cmd_start ;;
stop)
	[[ -d $STATEDIR ]] || exit 0
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	stop_server
	;;
down)
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	stop_server
	;;
up)
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	[[ -s $STATEDIR/nats.port ]] || die "no nats-server was started in $STATEDIR"
	run_server
	;;
*) usage ;;
esac
