#!/usr/bin/env bash
# pgpair.sh - a PostgreSQL primary and a streaming replica on loopback, for
# the failover tests (tests/failover.bats). Each test makes its own pair:
# the shared test server (servers.sh) is never stopped.
#
# Usage:
#   tests/helpers/pgpair.sh start DIR sync|async   initdb the primary,
#       pg_basebackup -R the replica, start both; writes DIR/env:
#         PAIR_PRIMARY_PORT, PAIR_STANDBY_PORT
#         PAIR_URL  postgresql://mqtx@127.0.0.1:P1,127.0.0.1:P2/mqtx_test?target_session_attrs=read-write
#       sync: synchronous_standby_names = '*' (a commit returns once the
#       replica has flushed it); async: no synchronous standby
#   tests/helpers/pgpair.sh stop-primary DIR [fast|immediate|kill]
#       pg_ctl stop -m fast or immediate (default), or SIGKILL to the primary's
#       postmaster and every child of it (a machine lost at once)
#   tests/helpers/pgpair.sh promote DIR      promote the replica, wait until it takes writes
#   tests/helpers/pgpair.sh pause DIR        SIGSTOP the primary's WAL senders: commits
#                                            go on (async), the replica lags behind
#   tests/helpers/pgpair.sh resume DIR       SIGCONT them
#   tests/helpers/pgpair.sh stop DIR         stop both (by PID; twice is fine)
#
# DIR must be reachable by the postgres user when run as root (the caller
# makes it, e.g. mktemp -d under /tmp, mode 755). Logs: DIR/primary.log,
# DIR/standby.log.

set -euo pipefail

readonly PG_BIN=${MQTX_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
readonly PG_OS_USER=postgres
PROG=pgpair.sh

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage() {
	printf 'usage: %s start DIR sync|async | stop-primary DIR [fast|immediate|kill] | promote|pause|resume|stop DIR\n' "$0" >&2
	exit 2
}

# read_pidfile, stop_pid
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

as_pg() {
	if ((EUID == 0)); then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		"$@"
	fi
}

# pg_ctl NODE ARGS...: pg_ctl of DIR/NODE (primary or standby)
node_ctl() {
	local node=$1
	shift
	as_pg "$PG_BIN/pg_ctl" -D "$DIR/$node" -l "$DIR/$node.log" -t 60 "$@" </dev/null >>"$DIR/pg_ctl.out" 2>&1 3>&-
}

psql_node() {
	local port=$1
	shift
	PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

cmd_start() {
	local mode=$1 p1 p2 sync_names=""
	[[ $mode == sync || $mode == async ]] || usage
	[[ -x $PG_BIN/initdb ]] || die "PostgreSQL binaries not found in $PG_BIN"
	[[ $mode == async ]] || sync_names="'*'"
	p1=$(loopback_port)
	p2=$(loopback_port)
	while [[ $p2 == "$p1" ]]; do p2=$(loopback_port); done
	mkdir -p "$DIR/primary" "$DIR/standby" "$DIR/sock"
	: >"$DIR/primary.log"
	: >"$DIR/standby.log"
	: >"$DIR/pg_ctl.out"
	if ((EUID == 0)); then
		chown "$PG_OS_USER:" "$DIR/primary" "$DIR/standby" "$DIR/sock" "$DIR/primary.log" "$DIR/standby.log" "$DIR/pg_ctl.out"
		runuser -u "$PG_OS_USER" -- test -x "$DIR" || die "user $PG_OS_USER cannot reach $DIR"
	fi
	chmod 700 "$DIR/primary" "$DIR/standby"
	as_pg "$PG_BIN/initdb" -D "$DIR/primary" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$DIR/initdb.log" 2>&1 || die "initdb failed (see $DIR/initdb.log)"
	cat >>"$DIR/primary/postgresql.conf" <<EOF
# ---- tests/helpers/pgpair.sh ----
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$DIR/sock'
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
wal_keep_size = 256MB
hot_standby = on
synchronous_commit = on
max_prepared_transactions = 20
log_min_messages = warning
EOF
	cat >"$DIR/primary/pg_hba.conf" <<EOF
local   all          all                    trust
host    all          all    127.0.0.1/32    trust
local   replication  all                    trust
host    replication  all    127.0.0.1/32    trust
EOF
	node_ctl primary start -w || die "the primary did not start (see $DIR/primary.log)"
	psql_node "$p1" -c "CREATE ROLE mqtx SUPERUSER LOGIN" -c "CREATE DATABASE mqtx_test OWNER mqtx" >/dev/null
	as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$DIR/standby" -R -X stream -c fast \
		>"$DIR/basebackup.log" 2>&1 || die "pg_basebackup failed (see $DIR/basebackup.log)"
	cat >>"$DIR/standby/postgresql.conf" <<EOF
port = $p2
application_name = standby
EOF
	# the replica names itself in primary_conninfo, as synchronous_standby_names sees it
	sed -i "s/^primary_conninfo = '/primary_conninfo = 'application_name=standby /" "$DIR/standby/postgresql.auto.conf"
	node_ctl standby start -w || die "the replica did not start (see $DIR/standby.log)"
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(psql_node "$p1" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1 ]] && break
		sleep 0.1
	done
	((i < 100)) || die "the replica does not stream from the primary"
	# synchronous only now: until the replica streams, a commit would wait for it
	if [[ -n $sync_names ]]; then
		psql_node "$p1" -c "ALTER SYSTEM SET synchronous_standby_names = $sync_names" -c "SELECT pg_reload_conf()" >/dev/null
		for ((i = 0; i < 100; i++)); do
			[[ $(psql_node "$p1" -c "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1 ]] && break
			sleep 0.1
		done
		((i < 100)) || die "the replica did not become synchronous"
	fi
	{
		printf 'export PAIR_PRIMARY_PORT=%q\n' "$p1"
		printf 'export PAIR_STANDBY_PORT=%q\n' "$p2"
		printf 'export PAIR_URL=%q\n' "postgresql://mqtx@127.0.0.1:$p1,127.0.0.1:$p2/mqtx_test?target_session_attrs=read-write"
	} >"$DIR/env"
	log "primary 127.0.0.1:$p1, $mode replica 127.0.0.1:$p2"
}

ports() {
	[[ -s $DIR/env ]] || die "no pair was started in $DIR"
	# shellcheck source=/dev/null
	source "$DIR/env"
}

# The primary's WAL sender pids, one per line.
walsenders() {
	local pids
	pids=$(psql_node "$PAIR_PRIMARY_PORT" -c "SELECT pid FROM pg_stat_replication")
	[[ -n $pids ]] || die "the primary has no WAL sender"
	printf '%s\n' "$pids"
}

cmd_promote() {
	ports
	node_ctl standby promote -w || die "promote failed (see $DIR/standby.log)"
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(psql_node "$PAIR_STANDBY_PORT" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && return 0
		sleep 0.1
	done
	die "the replica is still in recovery 10 s after promote"
}

# Stops NODE's postmaster if it runs (by the PID in its postmaster.pid):
# pg_ctl stop -m MODE, or MODE kill: SIGKILL to it and its children.
stop_node() {
	local node=$1 mode=$2 pid kids i
	pid=$(read_pidfile "$DIR/$node/postmaster.pid")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	if [[ $mode == kill ]]; then
		kids=$(pgrep -P "$pid" || true)
		# shellcheck disable=SC2086 # a list of pids
		kill -KILL "$pid" $kids 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.1
		done
		return 0
	fi
	node_ctl "$node" stop -m "$mode" -w || kill -KILL "$pid" 2>/dev/null || true
}

DIR=${2:-}
[[ -n $DIR ]] || usage
case $1 in
start)
	(($# == 3)) || usage
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd -P)
	cmd_start "$3"
	;;
stop-primary)
	(($# <= 3)) || usage
	case ${3:-immediate} in fast | immediate | kill) ;; *) usage ;; esac
	stop_node primary "${3:-immediate}"
	;;
promote) cmd_promote ;;
pause)
	ports
	# shellcheck disable=SC2046 # a list of pids
	kill -STOP $(walsenders)
	;;
resume)
	ports
	# shellcheck disable=SC2046 # a list of pids
	kill -CONT $(walsenders)
	;;
stop)
	[[ -d $DIR ]] || exit 0
	stop_node standby immediate
	stop_node primary immediate
	;;
*) usage ;;
esac
