#!/usr/bin/env bash
# servers.sh - private PostgreSQL 15 + RabbitMQ node for the mqtx test suite.
#
# Usage:
#   tests/helpers/servers.sh start STATEDIR
#   tests/helpers/servers.sh stop  STATEDIR
#
# `start` runs everything on 127.0.0.1 only, with all state, sockets and logs
# inside STATEDIR, and writes STATEDIR/env (a file to `source`) exporting:
#
#   MQTX_TEST_DATABASE_URL   postgresql://mqtx@127.0.0.1:PORT/mqtx_test
#   MQTX_TEST_AMQP_URL       amqp://guest:guest@127.0.0.1:PORT/%2f
#   MQTX_TEST_PG_LOCAL       1 if started here, 0 if passed through
#   MQTX_TEST_AMQP_LOCAL     1 if started here, 0 if passed through
#   MQTX_TEST_PG_CTL         STATEDIR/pg_ctl wrapper ("" when PG_LOCAL=0)
#   MQTX_TEST_RABBITMQCTL    STATEDIR/rabbitmqctl wrapper ("" when AMQP_LOCAL=0)
#   MQTX_TEST_STATEDIR, MQTX_TEST_PG_LOG, MQTX_TEST_RABBIT_LOG
#   MQTX_TEST_KAFKA_BROKERS  only if it was set in the environment
#
# A server whose URL is already set in the environment (MQTX_TEST_DATABASE_URL,
# MQTX_TEST_AMQP_URL) is not started; the URL is passed through.
#
# MQTX_BENCH_DURABLE=1 keeps fsync/synchronous_commit/full_page_writes on.
#
# `stop` stops only the processes recorded in STATEDIR (pg/postmaster.pid or
# pg.pid, rabbit.pid, rabbit-beam.pid, epmd.pid) and their descendants, after
# checking that each recorded PID still is the process started here (command
# line and start time): SIGTERM (pg_ctl stop -m fast for PostgreSQL), up to
# 15 s, then SIGKILL. Stopping twice, or a STATEDIR where nothing runs, is fine.
#
# Files in STATEDIR: env, pg/ (data dir), pg.log, pg.pid, pgsock/, pg_ctl,
# rabbit-home/ (HOME, Erlang cookie), rabbit-mnesia/, rabbit-log/, rabbit.out,
# rabbit.pid (Debian's rabbitmq-server script), rabbit-beam.pid (beam.smp),
# rabbitmq.conf, enabled_plugins, rabbitmqctl, epmd.pid, epmd.out.

set -euo pipefail

readonly PG_BIN=${MQTX_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
readonly RABBIT_BIN=/usr/lib/rabbitmq/bin
readonly PG_OS_USER=postgres
readonly STOP_WAIT=15       # seconds to wait after SIGTERM before SIGKILL
readonly RABBIT_WAIT=60     # seconds to wait for RabbitMQ to boot

PROG=servers.sh
START_US=${EPOCHREALTIME/./}

log() {
	local ms=$(((${EPOCHREALTIME/./} - START_US) / 1000))
	printf '%s: [%d.%03ds] %s\n' "$PROG" $((ms / 1000)) $((ms % 1000)) "$*" >&2
}

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# read_pidfile
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

usage() {
	printf 'usage: %s start|stop STATEDIR\n' "$0" >&2
	exit 2
}

# ---------------------------------------------------------------- utilities

USED_PORTS=" "

port_in_use() {
	local port=$1 hex
	hex=$(printf ':%04X ' "$port")
	# Any socket (any state) on that port, local or remote side.
	if grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
		return 0
	fi
	# Something accepting connections?
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		return 0
	fi
	return 1
}

# Pick a free loopback TCP port below the ephemeral range; store it in the
# variable named $1 (not a subshell, so USED_PORTS is kept up to date).
free_port() {
	local -n _port_out=$1
	local lo=20000 hi=32000 _fp_eph _fp_tries _fp_port
	if read -r _fp_eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
		((_fp_eph > 12000 && _fp_eph <= hi)); then
		hi=$((_fp_eph - 1))
		((lo < hi - 2000)) || lo=$((hi - 2000))
	fi
	for ((_fp_tries = 0; _fp_tries < 200; _fp_tries++)); do
		_fp_port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
		[[ $USED_PORTS == *" $_fp_port "* ]] && continue
		port_in_use "$_fp_port" && continue
		USED_PORTS+="$_fp_port "
		_port_out=$_fp_port
		return 0
	done
	die "could not find a free TCP port on 127.0.0.1 in $lo-$hi"
}

# True if PID is alive and its command line contains at least one of the
# given strings.
pid_matches() {
	local pid=$1 cmdline s
	shift
	[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ -n $cmdline ]] || return 1 # zombie or kernel thread
	for s in "$@"; do
		[[ $cmdline == *"$s"* ]] && return 0
	done
	return 1
}

# Prints "PID:STARTTIME" for each live process among ROOT... and all their
# descendants. The start time makes the identity robust against PID reuse.
proc_tree() {
	local f stat rest pid root
	local -a fields queue
	local -A kids=() self=() seen=()
	for f in /proc/[0-9]*/stat; do
		read -r stat 2>/dev/null <"$f" || continue
		pid=${stat%% *}
		rest=${stat##*) } # fields after "pid (comm) ": state ppid pgrp ...
		read -r -a fields <<<"$rest"
		[[ ${fields[0]} == Z ]] && continue
		kids[${fields[1]}]+=" $pid"
		self[$pid]="$pid:${fields[19]}"
	done
	queue=()
	for root in "$@"; do
		[[ -n ${self[$root]:-} ]] && queue+=("$root")
	done
	while ((${#queue[@]})); do
		pid=${queue[0]}
		queue=("${queue[@]:1}")
		[[ -n ${seen[$pid]:-} ]] && continue
		seen[$pid]=1
		printf '%s\n' "${self[$pid]}"
		# shellcheck disable=SC2206 # the list is space-separated PIDs
		[[ -n ${kids[$pid]:-} ]] && queue+=(${kids[$pid]})
	done
	return 0
}

# True if the process identified by "PID:STARTTIME" still runs (not a zombie).
proc_alive() {
	local pid=${1%%:*} start=${1#*:} stat rest
	local -a fields
	read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
	rest=${stat##*) }
	read -r -a fields <<<"$rest"
	[[ ${fields[0]} != Z && ${fields[19]} == "$start" ]]
}

# Prints the entries of the given "PID:STARTTIME" list that are still alive.
procs_alive() {
	local p
	for p in "$@"; do
		proc_alive "$p" && printf '%s\n' "$p"
	done
	return 0
}

# Wait up to SECS seconds for every process in the list to be gone.
wait_procs_gone() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		[[ -z $(procs_alive "$@") ]] && return 0
		sleep 0.1
	done
	return 1
}

# kill_leftovers WHAT "PID:START"...: SIGKILL whatever of the list is still alive
# (after the caller asked nicely and waited), then verify that all are gone.
kill_leftovers() {
	local what=$1 p left
	shift
	local -a pids=()
	left=$(procs_alive "$@")
	[[ -n $left ]] || return 0
	for p in $left; do
		pids+=("${p%%:*}")
	done
	log "$what: sending SIGKILL to ${pids[*]}"
	kill -KILL "${pids[@]}" 2>/dev/null || true
	if ! wait_procs_gone 5 "$@"; then
		log "$what: still alive after SIGKILL: $(procs_alive "$@" | tr '\n' ' ')"
		return 1
	fi
	return 0
}

# Run a command as the PostgreSQL OS user when we are root.
as_pg() {
	if ((EUID == 0)); then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		"$@"
	fi
}

write_env_var() {
	printf 'export %s=%q\n' "$1" "$2"
}

# ---------------------------------------------------------------- PostgreSQL

start_pg() {
	local port pgdata=$STATEDIR/pg sockdir=$STATEDIR/pgsock
	free_port port

	if ((${#sockdir} > 90)); then
		die "STATEDIR path is too long for a Unix socket directory ($sockdir); use a shorter one"
	fi
	[[ -x $PG_BIN/initdb ]] || die "PostgreSQL binaries not found in $PG_BIN (install postgresql-15)"

	if ((EUID == 0)); then
		id "$PG_OS_USER" >/dev/null 2>&1 ||
			die "running as root but there is no '$PG_OS_USER' user to run PostgreSQL as"
		mkdir -p "$pgdata" "$sockdir"
		touch "$STATEDIR/pg.log"
		chown "$PG_OS_USER:" "$pgdata" "$sockdir" "$STATEDIR/pg.log"
		runuser -u "$PG_OS_USER" -- test -x "$STATEDIR" ||
			die "user $PG_OS_USER cannot reach $STATEDIR (a parent directory is not traversable); use a STATEDIR under /tmp"
	else
		mkdir -p "$pgdata" "$sockdir"
		touch "$STATEDIR/pg.log"
	fi
	chmod 700 "$pgdata"

	log "initdb in $pgdata"
	if ! as_pg "$PG_BIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >"$STATEDIR/initdb.log" 2>&1; then
		tail -n 20 "$STATEDIR/initdb.log" >&2
		die "initdb failed (full log: $STATEDIR/initdb.log)"
	fi

	local durable_settings
	if [[ ${MQTX_BENCH_DURABLE:-0} == 1 ]]; then
		durable_settings="fsync = on
synchronous_commit = on
full_page_writes = on"
	else
		durable_settings="fsync = off
synchronous_commit = off
full_page_writes = off"
	fi
	cat >>"$pgdata/postgresql.conf" <<EOF

# ---- mqtx test settings (tests/helpers/servers.sh) ----
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
max_connections = 100
max_prepared_transactions = 20
$durable_settings
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
	cat >"$pgdata/pg_hba.conf" <<EOF
# mqtx test cluster: loopback only, no passwords.
local   all          all                    trust
host    all          all    127.0.0.1/32    trust
local   replication  all                    trust
host    replication  all    127.0.0.1/32    trust
EOF

	local q_bin q_data q_log q_state
	q_bin=$(printf '%q' "$PG_BIN/pg_ctl")
	q_data=$(printf '%q' "$pgdata")
	q_log=$(printf '%q' "$STATEDIR/pg.log")
	q_state=$(printf '%q' "$STATEDIR")
	cat >"$STATEDIR/pg_ctl" <<EOF
#!/bin/bash
# Generated by tests/helpers/servers.sh: pg_ctl for the private test cluster.
# Usage: $STATEDIR/pg_ctl restart -m fast | stop -m fast | start | status
# Runs as $PG_OS_USER when invoked as root; keeps STATEDIR/pg.pid current.
exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- </dev/null
cd $q_state || exit 1
if [ "\$(id -u)" = 0 ]; then
	runuser -u $PG_OS_USER -- $q_bin -D $q_data -l $q_log -t 60 "\$@"
else
	$q_bin -D $q_data -l $q_log -t 60 "\$@"
fi
rc=\$?
if [ -s $q_data/postmaster.pid ]; then
	head -n 1 $q_data/postmaster.pid >$q_state/pg.pid
fi
exit \$rc
EOF
	chmod 755 "$STATEDIR/pg_ctl"

	log "starting PostgreSQL on 127.0.0.1:$port"
	if ! "$STATEDIR/pg_ctl" start -w >"$STATEDIR/pg_ctl.out" 2>&1; then
		cat "$STATEDIR/pg_ctl.out" >&2
		tail -n 20 "$STATEDIR/pg.log" >&2
		die "PostgreSQL failed to start (log: $STATEDIR/pg.log)"
	fi
	head -n 1 "$pgdata/postmaster.pid" >"$STATEDIR/pg.pid"

	local admin=(env PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1
		-h 127.0.0.1 -p "$port" -U postgres -d postgres)
	if ! "${admin[@]}" -c "CREATE ROLE mqtx SUPERUSER LOGIN" \
		-c "CREATE DATABASE mqtx_test OWNER mqtx" >"$STATEDIR/pg_setup.out" 2>&1; then
		cat "$STATEDIR/pg_setup.out" >&2
		die "could not create role/database in the test cluster"
	fi
	PG_URL="postgresql://mqtx@127.0.0.1:$port/mqtx_test"
	log "PostgreSQL ready: $PG_URL (pid $(cat "$STATEDIR/pg.pid"))"
}

stop_pg() {
	local pgdata=$STATEDIR/pg pid tree
	pid=$(read_pidfile "$pgdata/postmaster.pid")
	[[ -n $pid ]] || pid=$(read_pidfile "$STATEDIR/pg.pid")
	# Only a live postgres whose command line names our data dir is ours.
	if [[ -z $pid ]] || ! pid_matches "$pid" "$pgdata"; then
		rm -f "$STATEDIR/pg.pid"
		return 0
	fi
	mapfile -t tree < <(proc_tree "$pid")
	log "stopping PostgreSQL (pid $pid)"
	if ! "$STATEDIR/pg_ctl" stop -m fast -w -t "$STOP_WAIT" >"$STATEDIR/pg_ctl.out" 2>&1; then
		log "pg_ctl stop failed: $(tail -n 1 "$STATEDIR/pg_ctl.out")"
		kill -TERM "$pid" 2>/dev/null || true
		wait_procs_gone 5 "${tree[@]}" || true
	fi
	kill_leftovers PostgreSQL "${tree[@]}" || return 1
	rm -f "$STATEDIR/pg.pid"
}

# ---------------------------------------------------------------- RabbitMQ

rabbit_env() {
	# The environment shared by the node and the rabbitmqctl wrapper.
	cat <<EOF
HOME=$STATEDIR/rabbit-home
RABBITMQ_NODENAME=$RABBIT_NODENAME
RABBITMQ_CONF_ENV_FILE=$STATEDIR/rabbitmq-env.conf
RABBITMQ_CONFIG_FILE=$STATEDIR/rabbitmq
RABBITMQ_ADVANCED_CONFIG_FILE=$STATEDIR/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$STATEDIR/enabled_plugins
RABBITMQ_MNESIA_BASE=$STATEDIR/rabbit-mnesia
RABBITMQ_LOG_BASE=$STATEDIR/rabbit-log
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$AMQP_PORT
RABBITMQ_DIST_PORT=$DIST_PORT
ERL_EPMD_PORT=$EPMD_PORT
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}
RABBITMQ_CTL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}
EOF
}

# A private CA and a server certificate for localhost/127.0.0.1, so that
# the amqps:// tests verify a real chain; plus a second CA nobody trusts.
make_tls_certs() {
	command -v openssl >/dev/null || die "openssl not found (install openssl)"
	local d=$STATEDIR/tls
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mqtx test CA" \
			-keyout ca.key -out ca.pem 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
		printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile san.ext -out server.pem 2>/dev/null
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" \
			-keyout other-ca.key -out other-ca.pem 2>/dev/null
		chmod 644 ./*.pem ./*.key
	) || die "cannot create test certificates in $d"
}

start_rabbit() {
	[[ -x $RABBIT_BIN/rabbitmq-server ]] || die "$RABBIT_BIN/rabbitmq-server not found (install rabbitmq-server)"
	command -v epmd >/dev/null || die "epmd not found (install erlang-base)"

	free_port AMQP_PORT
	free_port DIST_PORT
	free_port EPMD_PORT
	free_port AMQPS_PORT
	RABBIT_NODENAME="mqtxtest$AMQP_PORT@localhost"
	make_tls_certs

	mkdir -p "$STATEDIR/rabbit-home" "$STATEDIR/rabbit-mnesia" "$STATEDIR/rabbit-log"
	chmod 700 "$STATEDIR/rabbit-home"
	# Private Erlang cookie, shared by the node and the CLI through HOME.
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' |
		tr 'a-f' 'A-F' >"$STATEDIR/rabbit-home/.erlang.cookie")
	chmod 400 "$STATEDIR/rabbit-home/.erlang.cookie"
	: >"$STATEDIR/rabbitmq-env.conf"
	printf '[].\n' >"$STATEDIR/enabled_plugins"
	cat >"$STATEDIR/rabbitmq.conf" <<EOF
# mqtx test node (tests/helpers/servers.sh)
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
loopback_users = none
log.console = false
log.file.level = info
disk_free_limit.absolute = 10MB
listeners.ssl.default = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $STATEDIR/tls/ca.pem
ssl_options.certfile = $STATEDIR/tls/server.pem
ssl_options.keyfile = $STATEDIR/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
	rabbit_env >"$STATEDIR/rabbit.env"

	{
		printf '#!/bin/bash\n'
		printf '# Generated by tests/helpers/servers.sh: rabbitmqctl for the private test node.\n'
		printf 'exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- </dev/null\n'
		local line
		while IFS= read -r line; do
			printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"
		done <"$STATEDIR/rabbit.env"
		printf 'exec %q "$@"\n' "$RABBIT_BIN/rabbitmqctl"
	} >"$STATEDIR/rabbitmqctl"
	chmod 755 "$STATEDIR/rabbitmqctl"

	log "starting epmd on 127.0.0.1:$EPMD_PORT"
	setsid epmd -port "$EPMD_PORT" -address 127.0.0.1 \
		</dev/null >"$STATEDIR/epmd.out" 2>&1 3>&- &
	echo $! >"$STATEDIR/epmd.pid"
	local i
	for ((i = 0; ; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$EPMD_PORT") 2>/dev/null && break
		kill -0 "$(cat "$STATEDIR/epmd.pid")" 2>/dev/null || {
			cat "$STATEDIR/epmd.out" >&2
			die "epmd exited at startup"
		}
		((i < 100)) || die "epmd did not listen on 127.0.0.1:$EPMD_PORT within 10s"
		sleep 0.1
	done

	log "starting RabbitMQ node $RABBIT_NODENAME on 127.0.0.1:$AMQP_PORT"
	(
		while IFS= read -r line; do
			export "${line%%=*}=${line#*=}"
		done <"$STATEDIR/rabbit.env"
		cd "$STATEDIR"
		# $! is Debian's rabbitmq-server script: it runs the VM (erl ->
		# beam.smp) as its child and forwards SIGTERM to it.
		exec setsid "$RABBIT_BIN/rabbitmq-server" \
			</dev/null >"$STATEDIR/rabbit.out" 2>&1 3>&-
	) &
	echo $! >"$STATEDIR/rabbit.pid"
	AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
}

rabbit_fail() {
	{
		echo "---- $STATEDIR/rabbit.out (tail) ----"
		tail -n 20 "$STATEDIR/rabbit.out" 2>/dev/null || true
		local f
		for f in "$STATEDIR"/rabbit-log/*.log; do
			[[ -f $f ]] || continue
			echo "---- $f (tail) ----"
			tail -n 30 "$f"
		done
	} >&2
	die "$*"
}

wait_rabbit() {
	local pid deadline now
	pid=$(cat "$STATEDIR/rabbit.pid")
	deadline=$(($(date +%s) + RABBIT_WAIT))
	# Phase 1: the AMQP listener is opened near the end of the boot.
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rabbit_fail "RabbitMQ exited during startup"
		fi
		(exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null && break
		now=$(date +%s)
		((now < deadline)) || rabbit_fail "RabbitMQ did not open 127.0.0.1:$AMQP_PORT within ${RABBIT_WAIT}s"
		sleep 0.2
	done
	# Phase 2: confirm the boot has completed.
	now=$(date +%s)
	if ! timeout $((deadline - now + 5)) "$STATEDIR/rabbitmqctl" -q await_startup \
		--timeout $((deadline - now + 1)) >"$STATEDIR/await_startup.out" 2>&1; then
		cat "$STATEDIR/await_startup.out" >&2
		rabbit_fail "rabbitmqctl await_startup failed"
	fi
	# Record the VM itself too, in case the wrapper script dies first.
	local p
	for p in $(proc_tree "$pid"); do
		if pid_matches "${p%%:*}" "-home $STATEDIR/rabbit-home"; then
			echo "${p%%:*}" >"$STATEDIR/rabbit-beam.pid"
			break
		fi
	done
	log "RabbitMQ ready: $AMQP_URL (pid $pid)"
}

stop_rabbit() {
	local script beam epmd roots=() tree p
	script=$(read_pidfile "$STATEDIR/rabbit.pid")
	beam=$(read_pidfile "$STATEDIR/rabbit-beam.pid")
	epmd=$(read_pidfile "$STATEDIR/epmd.pid")
	# Verify each recorded PID still is what we started.
	if [[ -n $script ]] && pid_matches "$script" "$RABBIT_BIN/rabbitmq-server" /usr/lib/erlang/; then
		roots+=("$script")
	fi
	if [[ -n $beam ]] && pid_matches "$beam" "-home $STATEDIR/rabbit-home"; then
		roots+=("$beam")
	fi
	if ((${#roots[@]})); then
		mapfile -t tree < <(proc_tree "${roots[@]}")
		log "stopping RabbitMQ (pids ${roots[*]})"
		# SIGTERM makes the VM shut down cleanly; the wrapper script
		# forwards it too. Port helpers (erl_child_setup, inet_gethost,
		# the disk monitor shell) exit when the VM goes away.
		for p in "${roots[@]}"; do
			kill -TERM "$p" 2>/dev/null || true
		done
		if ! wait_procs_gone "$STOP_WAIT" "${tree[@]}"; then
			log "RabbitMQ did not stop within ${STOP_WAIT}s"
		fi
		kill_leftovers RabbitMQ "${tree[@]}" || return 1
	fi
	rm -f "$STATEDIR/rabbit.pid" "$STATEDIR/rabbit-beam.pid"

	if [[ -n $epmd ]] && pid_matches "$epmd" "epmd -port"; then
		mapfile -t tree < <(proc_tree "$epmd")
		log "stopping epmd (pid $epmd)"
		kill -TERM "$epmd" 2>/dev/null || true
		wait_procs_gone "$STOP_WAIT" "${tree[@]}" || true
		kill_leftovers epmd "${tree[@]}" || return 1
	fi
	rm -f "$STATEDIR/epmd.pid"
}

# ---------------------------------------------------------------- commands

cmd_start() {
	mkdir -p "$STATEDIR"
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	if [[ -s $STATEDIR/pg.pid || -s $STATEDIR/rabbit.pid || -s $STATEDIR/epmd.pid ]]; then
		die "servers already started in $STATEDIR (run '$0 stop $STATEDIR' first)"
	fi
	if [[ -e $STATEDIR/pg || -e $STATEDIR/rabbit-mnesia ]]; then
		die "$STATEDIR is not empty (left over from an earlier run?); use a fresh directory"
	fi
	# The postgres user needs to traverse STATEDIR (mktemp -d makes it 0700).
	chmod 755 "$STATEDIR"

	# On any failure, undo whatever was started.
	trap 'rc=$?; if ((rc != 0)); then log "start failed; cleaning up"; cmd_stop || true; fi' EXIT

	local pg_local=0 amqp_local=0
	PG_URL=${MQTX_TEST_DATABASE_URL:-}
	AMQP_URL=${MQTX_TEST_AMQP_URL:-}

	# RabbitMQ boots slowly: start it first, set PostgreSQL up meanwhile.
	if [[ -z $AMQP_URL ]]; then
		amqp_local=1
		start_rabbit
	else
		log "using external RabbitMQ from MQTX_TEST_AMQP_URL"
	fi
	if [[ -z $PG_URL ]]; then
		pg_local=1
		start_pg
	else
		log "using external PostgreSQL from MQTX_TEST_DATABASE_URL"
	fi
	if ((amqp_local)); then
		wait_rabbit
	fi

	{
		echo "# Generated by tests/helpers/servers.sh start; source this file."
		write_env_var MQTX_TEST_STATEDIR "$STATEDIR"
		write_env_var MQTX_TEST_DATABASE_URL "$PG_URL"
		write_env_var MQTX_TEST_AMQP_URL "$AMQP_URL"
		write_env_var MQTX_TEST_PG_LOCAL "$pg_local"
		write_env_var MQTX_TEST_AMQP_LOCAL "$amqp_local"
		if ((pg_local)); then
			write_env_var MQTX_TEST_PG_CTL "$STATEDIR/pg_ctl"
			write_env_var MQTX_TEST_PG_LOG "$STATEDIR/pg.log"
		else
			write_env_var MQTX_TEST_PG_CTL ""
			write_env_var MQTX_TEST_PG_LOG ""
		fi
		if ((amqp_local)); then
			write_env_var MQTX_TEST_AMQPS_URL "amqps://guest:guest@localhost:$AMQPS_PORT/%2f"
			write_env_var MQTX_TEST_TLS_CA "$STATEDIR/tls/ca.pem"
			write_env_var MQTX_TEST_TLS_OTHER_CA "$STATEDIR/tls/other-ca.pem"
			write_env_var MQTX_TEST_RABBITMQCTL "$STATEDIR/rabbitmqctl"
			write_env_var MQTX_TEST_RABBIT_LOG "$STATEDIR/rabbit-log/$RABBIT_NODENAME.log"
		else
			write_env_var MQTX_TEST_AMQPS_URL "${MQTX_TEST_AMQPS_URL:-}"
			write_env_var MQTX_TEST_TLS_CA "${MQTX_TEST_TLS_CA:-}"
			write_env_var MQTX_TEST_TLS_OTHER_CA ""
			write_env_var MQTX_TEST_RABBITMQCTL ""
			write_env_var MQTX_TEST_RABBIT_LOG ""
		fi
		if [[ -n ${MQTX_TEST_KAFKA_BROKERS:-} ]]; then
			write_env_var MQTX_TEST_KAFKA_BROKERS "$MQTX_TEST_KAFKA_BROKERS"
		fi
	} >"$STATEDIR/env.tmp"
	mv "$STATEDIR/env.tmp" "$STATEDIR/env"
	trap - EXIT
	log "servers ready; environment in $STATEDIR/env"
}

cmd_stop() {
	if [[ ! -d $STATEDIR ]]; then
		return 0
	fi
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	local rc=0
	stop_pg || rc=1
	stop_rabbit || rc=1
	return "$rc"
}

(($# == 2)) || usage
STATEDIR=$2
[[ -n $STATEDIR ]] || usage
case $1 in
start) cmd_start ;;
stop)
	cmd_stop
	log "stopped"
	;;
*) usage ;;
esac
