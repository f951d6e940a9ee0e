#!/usr/bin/env bash
# kafka.sh - a mock Kafka cluster (librdkafka's, in tests/helpers/kafka_mock)
# for the mqtx test suite.
#
# Usage:
#   tests/helpers/kafka.sh start STATEDIR
#   tests/helpers/kafka.sh stop  STATEDIR
#   tests/helpers/kafka.sh ctl   STATEDIR COMMAND...
#
# `start` runs after `servers.sh start STATEDIR` (which writes STATEDIR/env
# from scratch) and appends to STATEDIR/env:
#
#   MQTX_TEST_KAFKA_BROKERS  bootstrap list, 127.0.0.1:P1,127.0.0.1:P2,...
#   MQTX_TEST_KAFKA_LOCAL    1 if the mock was started here, 0 if passed through
#   MQTX_TEST_KAFKA_CTL      STATEDIR/kafka.ctl, the mock's control FIFO
#                            (only when LOCAL=1)
#
# When MQTX_TEST_KAFKA_BROKERS is already set, nothing is started and the
# list is passed through (LOCAL=0). Otherwise kafka_mock runs with 3
# brokers on 127.0.0.1 (built from kafka_mock.c first if the binary is
# missing or older than its source).
#
# `ctl` writes one command to the control FIFO and waits (up to 10 s) for
# the mock's answer, printed on stderr; exit 0 for "ok", 1 otherwise.
# Commands (see kafka_mock.c): topic NAME PARTITIONS | down BROKERID |
# up BROKERID | errors APIKEY COUNT ERRCODE | rtt BROKERID MS |
# errors-rtt BROKERID APIKEY COUNT ERRCODE MS |
# clear APIKEY | topic-error NAME ERRCODE.
#
# `stop` stops the recorded process (STATEDIR/kafka.pid) after checking that
# it still is the mock started here: SIGTERM, up to 10 s, then SIGKILL.
# Stopping twice, or a STATEDIR where nothing runs, is fine.
#
# Files in STATEDIR: kafka.pid, kafka.ctl (FIFO), kafka.out (bootstrap
# line), kafka.log (the mock's stderr: command results, librdkafka logs).

set -euo pipefail

HELPERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly HELPERS
readonly MOCK=$HELPERS/kafka_mock
readonly STOP_WAIT=10  # seconds to wait after SIGTERM before SIGKILL
readonly START_WAIT=10 # seconds to wait for the bootstrap line
readonly CTL_WAIT=10   # seconds to wait for a command's answer

PROG=kafka.sh

log() {
	printf '%s: %s\n' "$PROG" "$*" >&2
}

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	printf 'usage: %s start|stop STATEDIR\n       %s ctl STATEDIR COMMAND...\n' "$0" "$0" >&2
	exit 2
}

write_env_var() {
	printf 'export %s=%q\n' "$1" "$2"
}

# read_pidfile, stop_pid
source "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# True if PID is alive (not a zombie) and is the mock of this STATEDIR.
is_our_mock() {
	local pid=$1 cmdline
	[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
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

cmd_start() {
	mkdir -p "$STATEDIR"
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	if [[ -n ${MQTX_TEST_KAFKA_BROKERS:-} ]]; then
		log "using external Kafka from MQTX_TEST_KAFKA_BROKERS"
		{
			write_env_var MQTX_TEST_KAFKA_BROKERS "$MQTX_TEST_KAFKA_BROKERS"
			write_env_var MQTX_TEST_KAFKA_LOCAL 0
		} >>"$STATEDIR/env"
		return 0
	fi
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
		cmd_stop || true
		die "kafka_mock printed no bootstrap list within ${START_WAIT}s"
	fi
	{
		write_env_var MQTX_TEST_KAFKA_BROKERS "$brokers"
		write_env_var MQTX_TEST_KAFKA_LOCAL 1
		write_env_var MQTX_TEST_KAFKA_CTL "$STATEDIR/kafka.ctl"
	} >>"$STATEDIR/env"
	log "kafka mock ready: $brokers (pid $pid)"
}

cmd_stop() {
	[[ -d $STATEDIR ]] || return 0
	STATEDIR=$(cd "$STATEDIR" && pwd -P)
	local pid
	pid=$(read_pidfile "$STATEDIR/kafka.pid")
	if [[ -n $pid ]] && is_our_mock "$pid"; then
		log "stopping kafka mock (pid $pid)"
		stop_pid "$pid" "$STOP_WAIT" "kafka mock" is_our_mock || die "kafka mock (pid $pid) still alive after SIGKILL"
	fi
	rm -f "$STATEDIR/kafka.pid" "$STATEDIR/kafka.ctl"
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
ctl)
	(($# >= 3)) || usage
	shift 2
	cmd_ctl "$@"
	;;
*) usage ;;
esac
