#!/usr/bin/env bash
# kafka.sh - the Kafka brokers of the mqtx test suite and bench: a real
# Apache Kafka broker (KRaft, one node, from Maven Central through
# tests/kafka/pom.xml) for everything, and librdkafka's mock cluster
# (tests/helpers/kafka_mock) for the faults it injects well (brokers down,
# request errors).
#
# Usage:
#   tests/helpers/kafka.sh start   STATEDIR   both brokers
#   tests/helpers/kafka.sh stop    STATEDIR   both brokers (by PID)
#   tests/helpers/kafka.sh down    STATEDIR [--kill]   stop the real broker
#                                  (SIGTERM, a clean shutdown; --kill: SIGKILL),
#                                  keeping its ports and log
#   tests/helpers/kafka.sh up      STATEDIR   start it again, same ports and log
#   tests/helpers/kafka.sh ctl     STATEDIR COMMAND...   a mock command
#   tests/helpers/kafka.sh fetch              only fetch the broker's jars
#   tests/helpers/kafka.sh cluster-start DIR   a 3-node cluster (kc1-kc3: each
#                                  broker and controller, replication factor 3,
#                                  min.insync.replicas 2); DIR/env exports
#                                  MQTX_TEST_KCLUSTER_BROKERS
#   tests/helpers/kafka.sh cluster-kill DIR N  SIGKILL node N (1-3)
#   tests/helpers/kafka.sh cluster-up DIR N    start node N again, wait for it
#   tests/helpers/kafka.sh cluster-stop DIR    SIGKILL every node (by PID)
#
# `start` runs after `servers.sh start STATEDIR` (which writes STATEDIR/env
# from scratch) and appends to STATEDIR/env:
#
#   MQTX_TEST_KAFKA_BROKERS       the real broker, 127.0.0.1:PORT
#   MQTX_TEST_KAFKA_LOCAL         1 if it was started here (down/up work),
#                                 0 if passed through
#   MQTX_TEST_KAFKA_MOCK_BROKERS  the mock, 127.0.0.1:P1,127.0.0.1:P2,...
#   MQTX_TEST_KAFKA_MOCK_CTL      STATEDIR/kafka.ctl, the mock's control FIFO
#
# When MQTX_TEST_KAFKA_BROKERS is already set, no broker is started and
# the list is passed through (LOCAL=0); the mock always runs here.
#
# The real broker: Apache Kafka $KAFKA_VERSION (tests/kafka/pom.xml), its jars
# copied by `mvn dependency:copy-dependencies` into MQTX_KAFKA_CACHE
# (default ~/.cache/mqtx/kafka-<hash of the pom>), once; nothing else is
# downloaded. One combined broker+controller node on 127.0.0.1, two free
# ports, storage formatted with kafka.tools.StorageTool in STATEDIR/kafka-data,
# auto.create.topics.enable=false (a missing topic stays missing), a
# replication factor of 1 for the internal topics, log segments on disk.
# `start` waits until the broker answers a metadata request (kafka_tool).
#
# The mock: 3 brokers on 127.0.0.1. `ctl` writes one command to its control
# FIFO and waits (up to 10 s) for the answer, printed on stderr; exit 0 for
# "ok", 1 otherwise. Commands (see kafka_mock.c): topic NAME PARTITIONS |
# down BROKERID | up BROKERID | errors APIKEY COUNT ERRCODE | rtt BROKERID MS
# | errors-rtt BROKERID APIKEY COUNT ERRCODE MS | clear APIKEY |
# topic-error NAME ERRCODE.
#
# `stop` stops each recorded process after checking that it still is the
# one started here: SIGTERM, up to 20 s (the broker) or 10 s (the mock),
# then SIGKILL. Stopping twice, or a STATEDIR where nothing runs, is fine.
#
# Files in STATEDIR: kafka.pid, kafka.ctl (FIFO), kafka.out, kafka.log (the
# mock); kafka-broker.pid, kafka-broker.ports, kafka-server.properties,
# kafka-log4j2.properties, kafka-broker.out (JVM output), kafka-server.log
# (the broker's log), kafka-data/ (the real broker).

set -euo pipefail

HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly HELPERS
ROOT=$(cd "$HELPERS/../.." && pwd -P)
readonly ROOT
readonly MOCK=$HELPERS/kafka_mock
readonly POM=$ROOT/tests/kafka/pom.xml
readonly STOP_WAIT=10        # seconds to wait after SIGTERM before SIGKILL (mock)
readonly BROKER_STOP_WAIT=20 # the same for the real broker's clean shutdown
readonly START_WAIT=10       # seconds to wait for the mock's bootstrap line
readonly BROKER_START_WAIT=60
readonly CTL_WAIT=10 # seconds to wait for a mock command's answer

PROG=kafka.sh

log() {
	printf '%s: %s\n' "$PROG" "$*" >&2
}

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	printf 'usage: %s start|stop|up STATEDIR\n       %s down STATEDIR [--kill]\n       %s ctl STATEDIR COMMAND...\n       %s fetch\n       %s cluster-start|cluster-stop DIR | cluster-kill|cluster-up DIR N\n' \
		"$0" "$0" "$0" "$0" "$0" >&2
	exit 2
}

write_env_var() {
	printf 'export %s=%q\n' "$1" "$2"
}

# read_pidfile, stop_pid
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# ---------------------------------------------------------------- the jars

# The cache directory of this pom's jars (a new pom, a new directory).
kafka_cache() {
	local h
	h=$(sha256sum "$POM" | cut -c1-12)
	printf '%s\n' "${MQTX_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mqtx/kafka-$h}"
}

# Copies the broker's jars from Maven into the cache unless they are there
# (the marker file `complete` is written last; a half-done copy is redone).
fetch_jars() {
	local cache tmp
	cache=$(kafka_cache)
	[[ -f $cache/complete ]] && return 0
	command -v mvn >/dev/null || die "mvn not found (tests/deps.sh installs maven)"
	command -v java >/dev/null || die "java not found (tests/deps.sh installs a JRE)"
	mkdir -p "$(dirname "$cache")"
	tmp=$(mktemp -d "$cache.tmp.XXXXXX")
	log "fetching the Kafka broker's jars with Maven into $cache"
	if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
		tail -n 20 "$tmp/mvn.log" >&2
		rm -rf "$tmp"
		die "mvn could not fetch the artifacts of $POM"
	fi
	touch "$tmp/complete"
	# another process may have finished first: keep theirs
	if ! mv -T "$tmp" "$cache" 2>/dev/null; then
		rm -rf "$tmp"
		[[ -f $cache/complete ]] || die "cannot install $cache"
	fi
}

# ---------------------------------------------------------------- the real broker

# A node's files are STATEDIR/$BP-*: BP is "kafka" for the one-node broker
# (kafka-server.properties, kafka-broker.{ports,pid,out}, kafka-server.log,
# kafka-data/, kafka-log4j2.properties) and "kcN" for node N of a cluster.
BP=kafka

is_our_broker() {
	local pid=$1 cmdline
	[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
	cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ $cmdline == *kafka.Kafka* && $cmdline == *"$STATEDIR/$BP-server.properties"* ]]
}

# write_broker_config NODE_ID PORT CONTROLLER_PORT VOTERS REPLICAS
write_broker_config() {
	local id=$1 port=$2 cport=$3 voters=$4 r=$5 isr=1
	((r == 1)) || isr=2
	cat >"$STATEDIR/$BP-server.properties" <<EOF
# mqtx test broker (tests/helpers/kafka.sh): a KRaft node on loopback
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$STATEDIR/$BP-data
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=$r
min.insync.replicas=$isr
offsets.topic.replication.factor=$r
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$r
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$r
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# records up to 10 MB (tests publish multi-megabyte payloads)
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
# a transactional relay killed mid-transaction is aborted after its
# transaction.timeout.ms (mqtx sets it); look for such transactions often
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
transaction.remove.expired.transaction.cleanup.interval.ms=60000
log.segment.bytes=67108864
log.retention.check.interval.ms=300000
EOF
	cat >"$STATEDIR/$BP-log4j2.properties" <<EOF
status = warn
appender.f.type = File
appender.f.name = f
appender.f.fileName = $STATEDIR/$BP-server.log
appender.f.layout.type = PatternLayout
appender.f.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.f.ref = f
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
EOF
}

# Sets JAVA_ARGV to a JVM over the cached jars (a class and its arguments follow).
java_argv() {
	JAVA_ARGV=(java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
		-Dlog4j2.configurationFile="$STATEDIR/$BP-log4j2.properties"
		-cp "$(kafka_cache)/lib/*")
}

# kafka_java CLASS ARGS...
kafka_java() {
	java_argv
	"${JAVA_ARGV[@]}" "$@"
}

# Starts node $BP on the ports in $BP-broker.ports, without waiting.
launch_broker() {
	java_argv
	setsid "${JAVA_ARGV[@]}" kafka.Kafka "$STATEDIR/$BP-server.properties" 3>&- \
		</dev/null >>"$STATEDIR/$BP-broker.out" 2>&1 &
	echo "$!" >"$STATEDIR/$BP-broker.pid"
}

# Waits until node $BP answers a metadata request.
wait_broker() {
	local port pid i
	read -r port _ <"$STATEDIR/$BP-broker.ports"
	pid=$(read_pidfile "$STATEDIR/$BP-broker.pid")
	[[ -x $HELPERS/kafka_tool ]] || die "$HELPERS/kafka_tool is not built (make helpers)"
	for ((i = 0; i < BROKER_START_WAIT * 4; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$STATEDIR/$BP-broker.out" "$STATEDIR/$BP-server.log" >&2 || true
			rm -f "$STATEDIR/$BP-broker.pid"
			die "the Kafka broker exited at startup (logs: $STATEDIR/$BP-server.log, $BP-broker.out)"
		fi
		if "$HELPERS/kafka_tool" ping "127.0.0.1:$port" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.25
	done
	stop_broker || true
	die "the Kafka broker did not answer on 127.0.0.1:$port within ${BROKER_START_WAIT}s (log: $STATEDIR/$BP-server.log)"
}

run_broker() {
	launch_broker
	wait_broker
}

stop_broker() {
	local pid sig=${1:-TERM}
	pid=$(read_pidfile "$STATEDIR/$BP-broker.pid")
	if [[ -n $pid ]] && is_our_broker "$pid"; then
		if [[ $sig == KILL ]]; then
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do is_our_broker "$pid" || break; sleep 0.1; done
		else
			stop_pid "$pid" "$BROKER_STOP_WAIT" "kafka broker" is_our_broker ||
				die "kafka broker (pid $pid) still alive after SIGKILL"
		fi
	fi
	rm -f "$STATEDIR/$BP-broker.pid"
}

# format_node CLUSTER_ID: the storage of node $BP
format_node() {
	rm -rf "$STATEDIR/$BP-data"
	: >"$STATEDIR/$BP-broker.out"
	kafka_java kafka.tools.StorageTool format -t "$1" -c "$STATEDIR/$BP-server.properties" \
		>>"$STATEDIR/$BP-broker.out" 2>&1 ||
		die "kafka-storage format failed (see $STATEDIR/$BP-broker.out)"
}

new_cluster_id() {
	local id
	id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
	[[ -n $id ]] || die "kafka-storage random-uuid printed nothing"
	printf '%s\n' "$id"
}

start_broker() {
	local pid port cport
	pid=$(read_pidfile "$STATEDIR/$BP-broker.pid")
	if [[ -n $pid ]] && is_our_broker "$pid"; then
		die "a Kafka broker already runs in $STATEDIR (pid $pid); run '$0 stop $STATEDIR' first"
	fi
	fetch_jars
	port=$(loopback_port)
	cport=$(loopback_port)
	while [[ $cport == "$port" ]]; do cport=$(loopback_port); done
	echo "$port $cport" >"$STATEDIR/$BP-broker.ports"
	write_broker_config 1 "$port" "$cport" "1@127.0.0.1:$cport" 1
	format_node "$(new_cluster_id)"
	run_broker
	log "kafka broker ready: 127.0.0.1:$port (pid $(read_pidfile "$STATEDIR/$BP-broker.pid"))"
}

# ---------------------------------------------------------------- a 3-node cluster

# cluster_start: nodes kc1-kc3, each broker and controller, replication
# factor 3 and min.insync.replicas 2; writes STATEDIR/env with
# MQTX_TEST_KCLUSTER_BROKERS.
cluster_start() {
	fetch_jars
	local n ports=" " voters="" brokers="" p c
	for n in 1 2 3; do
		p=$(loopback_port)
		c=$(loopback_port)
		while [[ $c == "$p" || $ports == *" $p "* || $ports == *" $c "* ]]; do
			p=$(loopback_port)
			c=$(loopback_port)
		done
		ports+="$p $c "
		echo "$p $c" >"$STATEDIR/kc$n-broker.ports"
		voters+="${voters:+,}$n@127.0.0.1:$c"
		brokers+="${brokers:+,}127.0.0.1:$p"
	done
	local id
	id=$(new_cluster_id)
	for n in 1 2 3; do
		BP=kc$n
		read -r p c <"$STATEDIR/kc$n-broker.ports"
		write_broker_config "$n" "$p" "$c" "$voters" 3
		format_node "$id"
	done
	for n in 1 2 3; do
		BP=kc$n
		launch_broker
	done
	for n in 1 2 3; do
		BP=kc$n
		wait_broker
	done
	printf 'export MQTX_TEST_KCLUSTER_BROKERS=%q\n' "$brokers" >"$STATEDIR/env"
	log "kafka cluster ready: $brokers"
}

# ---------------------------------------------------------------- the mock

is_our_mock() {
	local pid=$1 cmdline
	[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
	cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ -n $cmdline ]] || return 1
	[[ $cmdline == *kafka_mock* && $cmdline == *"$STATEDIR/kafka.ctl"* ]]
}

build_mock() {
	if [[ -x $MOCK && $MOCK -nt $HELPERS/kafka_mock.c ]]; then
		return 0
	fi
	log "building $MOCK"
	# shellcheck disable=SC2046 # pkg-config output is a list of flags
	${CC:-cc} -std=c11 -Wall -Wextra -Werror -O2 -o "$MOCK" "$HELPERS/kafka_mock.c" \
		$(pkg-config --cflags --libs rdkafka) || die "cannot build $MOCK (is librdkafka-dev installed?)"
}

# Starts the mock; prints its bootstrap list.
start_mock() {
	local pid
	pid=$(read_pidfile "$STATEDIR/kafka.pid")
	if [[ -n $pid ]] && is_our_mock "$pid"; then
		die "kafka mock already running in $STATEDIR (pid $pid); run '$0 stop $STATEDIR' first"
	fi
	build_mock
	rm -f "$STATEDIR/kafka.ctl" "$STATEDIR/kafka.out"
	: >"$STATEDIR/kafka.log"

	setsid "$MOCK" --brokers 3 --control "$STATEDIR/kafka.ctl" \
		</dev/null >"$STATEDIR/kafka.out" 2>>"$STATEDIR/kafka.log" 3>&- &
	pid=$!
	echo "$pid" >"$STATEDIR/kafka.pid"

	local i brokers=""
	for ((i = 0; i < START_WAIT * 10; i++)); do
		if [[ -s $STATEDIR/kafka.out ]] && read -r brokers <"$STATEDIR/kafka.out" && [[ -n $brokers ]]; then
			break
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$STATEDIR/kafka.log" >&2
			rm -f "$STATEDIR/kafka.pid"
			die "kafka_mock exited at startup (log: $STATEDIR/kafka.log)"
		fi
		brokers=""
		sleep 0.1
	done
	if [[ -z $brokers ]]; then
		stop_mock || true
		die "kafka_mock printed no bootstrap list within ${START_WAIT}s"
	fi
	log "kafka mock ready: $brokers (pid $pid)"
	printf '%s\n' "$brokers"
}

stop_mock() {
	local pid
	pid=$(read_pidfile "$STATEDIR/kafka.pid")
	if [[ -n $pid ]] && is_our_mock "$pid"; then
		log "stopping kafka mock (pid $pid)"
		stop_pid "$pid" "$STOP_WAIT" "kafka mock" is_our_mock || die "kafka mock (pid $pid) still alive after SIGKILL"
	fi
	rm -f "$STATEDIR/kafka.pid" "$STATEDIR/kafka.ctl"
}

# ---------------------------------------------------------------- commands

cmd_start() {
	mkdir -p "$STATEDIR"
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	local mock
	mock=$(start_mock)
	if [[ -n ${MQTX_TEST_KAFKA_BROKERS:-} ]]; then
		log "using external Kafka from MQTX_TEST_KAFKA_BROKERS"
		{
			write_env_var MQTX_TEST_KAFKA_BROKERS "$MQTX_TEST_KAFKA_BROKERS"
			write_env_var MQTX_TEST_KAFKA_LOCAL 0
		} >>"$STATEDIR/env"
	else
		if ! (start_broker); then
			stop_mock || true
			die "could not start the Kafka broker"
		fi
		local port
		read -r port _ <"$STATEDIR/kafka-broker.ports"
		{
			write_env_var MQTX_TEST_KAFKA_BROKERS "127.0.0.1:$port"
			write_env_var MQTX_TEST_KAFKA_LOCAL 1
		} >>"$STATEDIR/env"
	fi
	{
		write_env_var MQTX_TEST_KAFKA_MOCK_BROKERS "$mock"
		write_env_var MQTX_TEST_KAFKA_MOCK_CTL "$STATEDIR/kafka.ctl"
	} >>"$STATEDIR/env"
}

cmd_stop() {
	[[ -d $STATEDIR ]] || return 0
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	local pid
	pid=$(read_pidfile "$STATEDIR/kafka-broker.pid")
	if [[ -n $pid ]] && is_our_broker "$pid"; then
		log "stopping kafka broker (pid $pid)"
	fi
	stop_broker
	stop_mock
}

cmd_down() {
	STATEDIR=$(cd "$STATEDIR" && pwd -P) || die "no such directory: $STATEDIR"
	[[ -s $STATEDIR/kafka-broker.ports ]] || die "no Kafka broker was started in $STATEDIR"
	stop_broker "$1"
}

cmd_up() {
	STATEDIR=$(cd "$STATEDIR" && pwd -P) || die "no such directory: $STATEDIR"
	[[ -s $STATEDIR/kafka-broker.ports ]] || die "no Kafka broker was started in $STATEDIR"
	local pid
	pid=$(read_pidfile "$STATEDIR/kafka-broker.pid")
	if [[ -n $pid ]] && is_our_broker "$pid"; then
		return 0
	fi
	run_broker
}

cmd_ctl() {
	STATEDIR=$(cd "$STATEDIR" && pwd -P) || die "no such directory: $STATEDIR"
	local pid fifo=$STATEDIR/kafka.ctl line cmd=$* before i
	pid=$(read_pidfile "$STATEDIR/kafka.pid")
	if [[ -z $pid ]] || ! is_our_mock "$pid"; then
		die "no kafka mock runs in $STATEDIR"
	fi
	[[ -p $fifo ]] || die "$fifo is not a FIFO"
	before=$(wc -l <"$STATEDIR/kafka.log")
	# The mock keeps the FIFO open for reading, so this open does not block.
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner shell
	timeout "$CTL_WAIT" bash -c 'printf "%s\n" "$1" >"$2"' _ "$cmd" "$fifo" ||
		die "cannot write to $fifo"
	for ((i = 0; i < CTL_WAIT * 20; i++)); do
		while IFS= read -r line; do
			if [[ $line == "kafka_mock: ok: $cmd" ]]; then
				printf '%s\n' "$line" >&2
				return 0
			fi
			if [[ $line == "kafka_mock: error: $cmd: "* ]]; then
				printf '%s\n' "$line" >&2
				return 1
			fi
		done < <(tail -n +"$((before + 1))" "$STATEDIR/kafka.log")
		sleep 0.05
	done
	die "no answer from the kafka mock to '$cmd' within ${CTL_WAIT}s"
}

(($# >= 1)) || usage
case $1 in
cluster-start | cluster-stop | cluster-kill | cluster-up)
	(($# >= 2)) || usage
	STATEDIR=$2
	mkdir -p "$STATEDIR"
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	case $1 in
	cluster-start) cluster_start ;;
	cluster-stop)
		for n in 1 2 3; do
			BP=kc$n
			stop_broker KILL
		done
		;;
	cluster-kill)
		(($# == 3)) && [[ $3 =~ ^[123]$ ]] || usage
		BP=kc$3
		stop_broker KILL
		;;
	cluster-up)
		(($# == 3)) && [[ $3 =~ ^[123]$ ]] || usage
		BP=kc$3
		run_broker
		;;
	esac
	exit 0
	;;
esac
if [[ $1 == fetch ]]; then
	(($# == 1)) || usage
	fetch_jars
	exit 0
fi
(($# >= 2)) || usage
STATEDIR=$2
[[ -n $STATEDIR ]] || usage
case $1 in
start)
	(($# == 2)) || usage
	cmd_start
	;;
stop)
	(($# == 2)) || usage
	cmd_stop
	log "stopped"
	;;
down)
	if (($# == 2)); then
		cmd_down TERM
	elif (($# == 3)) && [[ $3 == --kill ]]; then
		cmd_down KILL
	else
		usage
	fi
	;;
up)
	(($# == 2)) || usage
	cmd_up
	;;
ctl)
	(($# >= 3)) || usage
	shift 2
	cmd_ctl "$@"
	;;
*) usage ;;
esac
