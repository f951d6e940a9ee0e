#!/usr/bin/env bash
# run.sh - run the mqtx test suite against private servers.
#
# Usage: tests/run.sh [BATS_FILES...]      (default: tests/*.bats)
#
# Starts PostgreSQL, RabbitMQ, an Apache Kafka broker and librdkafka's mock
# cluster, and nats-server in a temporary STATEDIR (see tests/helpers/servers.sh,
# kafka.sh, nats.sh; servers given by MQTX_TEST_DATABASE_URL,
# MQTX_TEST_AMQP_URL, MQTX_TEST_KAFKA_BROKERS, MQTX_TEST_NATS_URL are used instead), runs tests/unit/unit_tests if it
# exists, then bats, and always stops the servers again.
#
# Environment:
#   MQTX                   binary under test (default: ./mqtx at the repo
#                          root), e.g. MQTX=./mqtx-asan tests/run.sh
#   AMQP_TOOL              default: tests/helpers/amqp_tool
#   MQTX_TEST_KEEP_STATE=1 keep STATEDIR (logs, data dirs) after the run
#   BATS_ARGS              extra arguments for bats (e.g. "--filter relay")
#   MQTX_UNIT_TESTS        unit test binary (default: tests/unit/unit_tests;
#                          empty: no unit tests)
#   MQTX_TEST_BACKENDS     the bats passes to run (default: "amqp kafka nats"):
#                          "amqp" runs every file against RabbitMQ, "kafka"
#                          the files that `load backend` against Kafka,
#                          "nats" the same files against NATS JetStream
#                          (nats-server from tests/helpers/nats.sh, or
#                          MQTX_TEST_NATS_URL)
#
# The last line printed is the summary, "N passed, N failed" with a
# ", N skipped" suffix when tests were skipped (skipped tests count as
# passed). Exit status: 0 if everything passed, 1 otherwise.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SERVERS=$ROOT/tests/helpers/servers.sh
UNIT=${MQTX_UNIT_TESTS-$ROOT/tests/unit/unit_tests}
BACKENDS=${MQTX_TEST_BACKENDS:-amqp kafka nats}

say() { printf 'run.sh: %s\n' "$*" >&2; }

passed=0 failed=0 skipped=0
STATEDIR=""
cleaned=0

cleanup() {
	((cleaned)) && return 0
	cleaned=1
	[[ -n $STATEDIR ]] || return 0
	"$ROOT/tests/helpers/nats.sh" stop "$STATEDIR" || say "warning: stopping nats-server failed (state in $STATEDIR)"
	"$ROOT/tests/helpers/kafka.sh" stop "$STATEDIR" || say "warning: stopping the Kafka broker or mock failed (state in $STATEDIR)"
	"$SERVERS" stop "$STATEDIR" || say "warning: stopping the test servers failed (state in $STATEDIR)"
	if [[ ${MQTX_TEST_KEEP_STATE:-0} == 1 ]]; then
		say "kept test state in $STATEDIR"
	else
		rm -rf "$STATEDIR"
	fi
}

summary() {
	local line="$passed passed, $failed failed"
	((skipped == 0)) || line+=", $skipped skipped"
	printf '%s\n' "$line"
}

# Long-running steps run as their own process group so that a signal to
# this script can stop them at once (bash would otherwise wait for a
# foreground command to finish before running a trap).
child_pgid=""

# run_logged LOGFILE CMD...: run CMD, its output both to stdout and LOGFILE.
run_logged() {
	local log=$1 rc=0
	shift
	set -m
	(
		set -o pipefail
		"$@" | tee "$log"
	) &
	child_pgid=$!
	set +m
	wait "$child_pgid" || rc=$?
	child_pgid=""
	return "$rc"
}

# shellcheck disable=SC2317 # invoked from the traps below
on_signal() {
	say "$1; stopping"
	if [[ -n $child_pgid ]]; then
		kill -TERM -- "-$child_pgid" 2>/dev/null || true
		wait "$child_pgid" 2>/dev/null || true
	fi
	exit "$2"
}

trap cleanup EXIT
trap 'on_signal interrupted 130' INT
trap 'on_signal terminated 143' TERM

# The binary under test, made absolute (bats runs tests from other dirs).
MQTX=${MQTX:-$ROOT/mqtx}
[[ $MQTX == /* ]] || MQTX=$PWD/$MQTX
export MQTX
if [[ ! -x $MQTX ]]; then
	say "warning: $MQTX does not exist or is not executable (build it first)"
fi

export AMQP_TOOL=${AMQP_TOOL:-$ROOT/tests/helpers/amqp_tool}
if [[ ! -x $AMQP_TOOL ]]; then
	say "warning: $AMQP_TOOL is not built (make builds it)"
fi

# Test files.
files=()
if (($#)); then
	for f in "$@"; do
		[[ -e $f ]] || {
			say "no such test file: $f"
			exit 2
		}
		files+=("$f")
	done
else
	shopt -s nullglob
	files=("$ROOT"/tests/*.bats)
	shopt -u nullglob
fi

command -v bats >/dev/null || {
	say "bats not found (install the Debian package bats)"
	exit 2
}

STATEDIR=$(mktemp -d "${TMPDIR:-/tmp}/mqtx-test.XXXXXX")
if ! "$SERVERS" start "$STATEDIR"; then
	say "could not start the test servers (logs in $STATEDIR)"
	MQTX_TEST_KEEP_STATE=1
	cleanup
	failed=1
	summary
	exit 1
fi
if ! "$ROOT/tests/helpers/kafka.sh" start "$STATEDIR"; then
	say "could not start the Kafka broker or mock cluster (logs in $STATEDIR)"
	MQTX_TEST_KEEP_STATE=1
	cleanup
	failed=1
	summary
	exit 1
fi
if ! "$ROOT/tests/helpers/nats.sh" start "$STATEDIR"; then
	say "could not start nats-server (logs in $STATEDIR)"
	MQTX_TEST_KEEP_STATE=1
	cleanup
	failed=1
	summary
	exit 1
fi
# shellcheck source=/dev/null
source "$STATEDIR/env"
export KAFKA_TOOL=${KAFKA_TOOL:-$ROOT/tests/helpers/kafka_tool}
export NATS_TOOL=${NATS_TOOL:-$ROOT/tests/helpers/nats_tool}

rc=0

# ---- C unit tests: they print their own "N passed, N failed" line.
if [[ -n $UNIT && -x $UNIT ]]; then
	say "running $UNIT"
	unit_log=$STATEDIR/unit.out
	unit_rc=0
	run_logged "$unit_log" "$UNIT" || unit_rc=$?
	unit_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$unit_log" | tail -n 1 || true)
	if [[ -n $unit_line ]]; then
		u_pass=${unit_line%% passed*}
		u_fail=${unit_line#*passed, }
		u_fail=${u_fail%% failed*}
		passed=$((passed + u_pass))
		failed=$((failed + u_fail))
		if ((unit_rc != 0 && u_fail == 0)); then
			say "unit tests exited with status $unit_rc"
			failed=$((failed + 1))
		fi
	else
		say "unit tests printed no 'N passed, N failed' line (exit status $unit_rc)"
		((unit_rc == 0)) || failed=$((failed + 1))
	fi
	((unit_rc == 0)) || rc=1
fi

# ---- bats: every file once (RabbitMQ); files that `load backend` run a
# second time against Kafka (MQTX_TEST_BACKEND=kafka) and a third time
# against NATS JetStream (MQTX_TEST_BACKEND=nats), same tests.
run_bats_pass() {
	local label=$1
	shift
	local tap=$STATEDIR/bats-$label.tap bats_rc=0
	read -r -a extra <<<"${BATS_ARGS:-}"
	say "bats pass: $label"
	run_logged "$tap" bats --tap --timing "${extra[@]}" "$@" || bats_rc=$?
	b_ok=$(grep -cE '^ok [0-9]+' "$tap" || true)
	b_fail=$(grep -cE '^not ok [0-9]+' "$tap" || true)
	b_skip=$(grep -cE '^ok [0-9]+ .*# skip' "$tap" || true)
	b_plan=$(sed -nE 's/^1\.\.([0-9]+)$/\1/p' "$tap" | head -n 1)
	passed=$((passed + b_ok))
	failed=$((failed + b_fail))
	skipped=$((skipped + b_skip))
	if [[ -n $b_plan ]] && ((b_ok + b_fail < b_plan)); then
		say "bats ran $((b_ok + b_fail)) of $b_plan planned tests"
		failed=$((failed + b_plan - b_ok - b_fail))
	fi
	if ((bats_rc != 0)); then
		rc=1
		if ((b_fail == 0)) && { [[ -z $b_plan ]] || ((b_ok + b_fail >= b_plan)); }; then
			say "bats exited with status $bats_rc"
			failed=$((failed + 1))
		fi
	fi
}

if ((${#files[@]})); then
	if [[ " $BACKENDS " == *" amqp "* ]]; then
		MQTX_TEST_BACKEND=amqp run_bats_pass amqp "${files[@]}"
	fi
	kafka_files=()
	for f in "${files[@]}"; do
		grep -q '^load backend' "$f" && kafka_files+=("$f")
	done
	if ((${#kafka_files[@]})) && [[ " $BACKENDS " == *" kafka "* ]]; then
		MQTX_TEST_BACKEND=kafka run_bats_pass kafka "${kafka_files[@]}"
	fi
	if ((${#kafka_files[@]})) && [[ " $BACKENDS " == *" nats "* ]]; then
		MQTX_TEST_BACKEND=nats run_bats_pass nats "${kafka_files[@]}"
	fi
else
	say "no bats files found in $ROOT/tests"
fi

((failed == 0)) || rc=1
trap - EXIT
cleanup
summary
exit "$rc"
