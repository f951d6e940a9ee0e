#!/usr/bin/env bash
# rabbitcluster.sh - a 3-node RabbitMQ cluster on loopback (Debian's
# rabbitmq-server), for the cluster tests (tests/cluster.bats): one epmd,
# one Erlang cookie, three node names and ports; nodes 2 and 3 join node 1.
#
# Usage:
#   tests/helpers/rabbitcluster.sh start DIR     writes DIR/env:
#       RCL_URL   amqp://guest:guest@127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/%2f
#       RCL_PORT1, RCL_PORT2, RCL_PORT3   each node's AMQP port
#   tests/helpers/rabbitcluster.sh kill DIR N    SIGKILL node N's VM (1-3)
#   tests/helpers/rabbitcluster.sh start-node DIR N   start node N again (it
#       rejoins the cluster on its own) and wait until it runs
#   tests/helpers/rabbitcluster.sh ctl DIR N ARGS...  rabbitmqctl against node N
#   tests/helpers/rabbitcluster.sh stop DIR      stop every node and epmd (by PID)
#
# DIR: node data in DIR/nodeN/, logs in DIR/nodeN/log/, the VM pids in
# DIR/nodeN.pid (the rabbitmq-server script) and DIR/nodeN.beam.

set -euo pipefail

readonly RABBIT_BIN=${MQTX_TEST_RABBIT_BIN:-/usr/lib/rabbitmq/bin}
readonly WAIT=90 # seconds for a node to boot
PROG=rabbitcluster.sh

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage() {
	printf 'usage: %s start|stop DIR | kill|start-node DIR N | ctl DIR N ARGS...\n' "$0" >&2
	exit 2
}

# loopback_port
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# node_env N: the environment of node N and of rabbitmqctl against it
node_env() {
	local n=$1 amqp dist
	read -r amqp dist <"$DIR/node$n.ports"
	cat <<EOF
HOME=$DIR/home
RABBITMQ_NODENAME=mqtxcl$n-$(cat "$DIR/id")@localhost
RABBITMQ_CONF_ENV_FILE=$DIR/rabbitmq-env.conf
RABBITMQ_CONFIG_FILE=$DIR/node$n
RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins
RABBITMQ_MNESIA_BASE=$DIR/node$n/mnesia
RABBITMQ_LOG_BASE=$DIR/node$n/log
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$amqp
RABBITMQ_DIST_PORT=$dist
ERL_EPMD_PORT=$(cat "$DIR/epmd.port")
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}
RABBITMQ_CTL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}
EOF
}

nodename() { node_env "$1" | sed -n 's/^RABBITMQ_NODENAME=//p'; }

ctl() {
	local n=$1
	shift
	(
		while IFS= read -r line; do export "${line%%=*}=${line#*=}"; done < <(node_env "$n")
		exec "$RABBIT_BIN/rabbitmqctl" "$@" </dev/null 3>&-
	)
}

run_node() {
	local n=$1 amqp
	read -r amqp _ <"$DIR/node$n.ports"
	(
		while IFS= read -r line; do export "${line%%=*}=${line#*=}"; done < <(node_env "$n")
		cd "$DIR"
		exec setsid "$RABBIT_BIN/rabbitmq-server" </dev/null >>"$DIR/node$n.out" 2>&1 3>&-
	) &
	echo $! >"$DIR/node$n.pid"
}

wait_node() {
	local n=$1 amqp pid deadline
	read -r amqp _ <"$DIR/node$n.ports"
	pid=$(cat "$DIR/node$n.pid")
	deadline=$((SECONDS + WAIT))
	until (exec 3<>"/dev/tcp/127.0.0.1/$amqp") 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || die "node $n exited at startup (see $DIR/node$n.out, $DIR/node$n/log)"
		((SECONDS < deadline)) || die "node $n did not open 127.0.0.1:$amqp within ${WAIT}s"
		sleep 0.2
	done
	ctl "$n" -q await_startup --timeout "$WAIT" >/dev/null 2>&1 || die "node $n: await_startup failed"
	local p
	: >"$DIR/node$n.beam"
	for p in $(node_procs "$n"); do echo "$p" >>"$DIR/node$n.beam"; done
}

# node_procs N: the pids of node N's processes (the VM and its helpers),
# found by the node name in their environment
node_procs() {
	local want p
	want="RABBITMQ_NODENAME=$(nodename "$1")"
	for p in $(pgrep -f 'beam|erl_child_setup|inet_gethost|rabbitmq-server' || true); do
		tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx -- "$want" && echo "$p"
	done
	return 0
}

cmd_start() {
	[[ -x $RABBIT_BIN/rabbitmq-server ]] || die "$RABBIT_BIN/rabbitmq-server not found (install rabbitmq-server)"
	mkdir -p "$DIR/home"
	chmod 700 "$DIR/home"
	printf '%04x%04x\n' "$RANDOM" "$RANDOM" >"$DIR/id"
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$DIR/home/.erlang.cookie")
	chmod 400 "$DIR/home/.erlang.cookie"
	: >"$DIR/rabbitmq-env.conf"
	printf '[].\n' >"$DIR/enabled_plugins"
	loopback_port >"$DIR/epmd.port"
	setsid epmd -port "$(cat "$DIR/epmd.port")" -address 127.0.0.1 </dev/null >"$DIR/epmd.out" 2>&1 3>&- &
	echo $! >"$DIR/epmd.pid"
	local n i urls=()
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$(cat "$DIR/epmd.port")") 2>/dev/null && break
		sleep 0.1
	done
	for n in 1 2 3; do
		mkdir -p "$DIR/node$n/mnesia" "$DIR/node$n/log"
		echo "$(loopback_port) $(loopback_port)" >"$DIR/node$n.ports"
		local amqp
		read -r amqp _ <"$DIR/node$n.ports"
		cat >"$DIR/node$n.conf" <<EOF
# mqtx cluster test node $n (tests/helpers/rabbitcluster.sh)
listeners.tcp.default = 127.0.0.1:$amqp
loopback_users = none
log.console = false
log.file.level = info
disk_free_limit.absolute = 10MB
cluster_partition_handling = pause_minority
EOF
		urls+=("127.0.0.1:$amqp")
		run_node "$n"
	done
	for n in 1 2 3; do wait_node "$n"; done
	for n in 2 3; do
		ctl "$n" -q stop_app >>"$DIR/ctl.log" 2>&1
		ctl "$n" -q join_cluster "$(nodename 1)" >>"$DIR/ctl.log" 2>&1 || die "node $n could not join $(nodename 1) (see $DIR/ctl.log)"
		ctl "$n" -q start_app >>"$DIR/ctl.log" 2>&1
	done
	ctl 1 -q await_online_nodes 3 --timeout 60 >/dev/null 2>&1 || true
	local joined
	joined=$(ctl 1 -q cluster_status --formatter json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))')
	[[ $joined == 3 ]] || die "the cluster runs $joined node(s), not 3"
	{
		printf 'export RCL_URL=%q\n' "amqp://guest:guest@$(
			IFS=,
			echo "${urls[*]}"
		)/%2f"
		for n in 1 2 3; do printf 'export RCL_PORT%s=%q\n' "$n" "${urls[n - 1]##*:}"; done
	} >"$DIR/env"
	log "3 nodes running: ${urls[*]}"
}

kill_node() {
	local n=$1 p
	# shellcheck disable=SC2046 # lists of pids
	for p in $(cat "$DIR/node$n.pid" 2>/dev/null) $(node_procs "$n"); do
		kill -KILL "$p" 2>/dev/null || true
	done
	local i amqp
	read -r amqp _ <"$DIR/node$n.ports"
	for ((i = 0; i < 50; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$amqp") 2>/dev/null || return 0
		sleep 0.1
	done
	die "node $n still listens after SIGKILL"
}

DIR=${2:-}
[[ -n $DIR ]] || usage
case $1 in
start)
	(($# == 2)) || usage
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd -P)
	cmd_start
	;;
kill)
	(($# == 3)) || usage
	kill_node "$3"
	;;
start-node)
	(($# == 3)) || usage
	run_node "$3"
	wait_node "$3"
	;;
ctl)
	(($# >= 4)) || usage
	n=$3
	shift 3
	ctl "$n" "$@"
	;;
stop)
	[[ -d $DIR && -s $DIR/id ]] || exit 0
	for n in 1 2 3; do
		[[ -s $DIR/node$n.ports ]] && kill_node "$n" 2>/dev/null || true
	done
	if [[ -s $DIR/epmd.pid ]]; then
		kill -TERM "$(cat "$DIR/epmd.pid")" 2>/dev/null || true
	fi
	;;
*) usage ;;
esac
