#!/usr/bin/env bash
# The body of `make check`: the whole suite under ASan+UBSan, then a
# cross-section under valgrind memcheck, in two lanes that run at the same
# time, each with its own servers (tests/run.sh starts and stops them):
#
#   lane 1: every bats file but tests/cluster.bats against RabbitMQ,
#           ASan+UBSan build; then the valgrind cross-section (the three brokers)
#   lane 2: the unit tests and the backend files against Kafka, then against
#           NATS JetStream, then tests/cluster.bats (a 3-node RabbitMQ
#           cluster), ASan+UBSan build
#
# Most test time is spent waiting for servers, so two lanes on two cores
# halve the wall time. With external servers (MQTX_TEST_DATABASE_URL,
# MQTX_TEST_AMQP_URL, MQTX_TEST_KAFKA_BROKERS or MQTX_TEST_NATS_URL set) or MQTX_CHECK_JOBS=1
# the lanes run one after the other, because the tests of both would share
# one database.
#
# MQTX_ASAN_ONLY=1 skips valgrind (`make check-asan`); MQTX_CHECK_PLAIN=1
# adds a pass with the plain test build; MQTX_CHECK_VALGRIND=all runs the
# whole suite under valgrind instead of the cross-section (`make
# check-valgrind`, about 40 minutes in all). The last line is the combined
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

total_passed=0 total_failed=0 total_skipped=0 rc=0
logdir=$(mktemp -d "${TMPDIR:-/tmp}/mqtx-check.XXXXXX")
lane_pid=""

# shellcheck disable=SC2317 # invoked from the traps below
on_signal() {
	if [[ -n $lane_pid ]]; then
		kill -TERM "$lane_pid" 2>/dev/null
		wait "$lane_pid" 2>/dev/null
	fi
	rm -rf "$logdir"
	exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# add_summary LOG: adds the last "N passed, N failed[, N skipped]" of LOG to
# the totals (a pass that printed none counts as one failure).
add_summary() {
	local summary
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
	if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
		total_passed=$((total_passed + BASH_REMATCH[1]))
		total_failed=$((total_failed + BASH_REMATCH[2]))
		total_skipped=$((total_skipped + ${BASH_REMATCH[4]:-0}))
	else
		total_failed=$((total_failed + 1))
	fi
}

# pass NAME ENV...: tests/run.sh with ENV (MQTX_RUN_FILES: the files, else
# all), output to stdout and $logdir/NAME.log; status of run.sh.
pass() {
	local name=$1 t0=$SECONDS rc
	shift
	echo "== $name =="
	# shellcheck disable=SC2046 # MQTX_RUN_FILES is a plain list of paths
	env "$@" tests/run.sh $(env "$@" printenv MQTX_RUN_FILES) 2>&1 | tee "$logdir/$name.log"
	rc=${PIPESTATUS[0]}
	echo "== $name: $((SECONDS - t0))s =="
	return "$rc"
}

ASAN_ENV=(MQTX="$PWD/mqtx-asan"
	ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
	LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
VALGRIND_ENV=(MQTX="$PWD/tests/helpers/valgrind-run" VALGRIND_TARGET="$PWD/mqtx-test"
	MQTX_UNIT_TESTS="$PWD/tests/helpers/valgrind-unit")
if [[ ${MQTX_CHECK_VALGRIND:-subset} != all ]]; then
	# The cross-section (about 95 s): the unit tests, configuration loading
	# and errors, and the relay's main paths on both brokers: the tests
	# tagged `# bats test_tags=valgrind` (bats >= 1.8). The whole suite
	# under valgrind (make check-valgrind) takes about 35 minutes.
	VALGRIND_ENV+=(MQTX_TEST_CMD_TIMEOUT=120
		BATS_ARGS="--filter-tags valgrind"
		MQTX_RUN_FILES="tests/cli.bats tests/relay.bats")
else
	VALGRIND_ENV+=(MQTX_TEST_CMD_TIMEOUT=300)
fi

# The lanes take about as long each on 2 cores (lane 1 about 650 s + 100 s,
# lane 2 about 700 s + 45 s).
# tests/cluster.bats (three RabbitMQ nodes of its own, about 45 s) runs in
# lane 2, which has the time; lane 1 runs every other file.
LANE1_FILES=""
for f in tests/*.bats; do
	[[ $f == tests/cluster.bats ]] || LANE1_FILES+="$f "
done

lane1() {
	local r=0
	pass "lane 1: every file but the cluster's against RabbitMQ, ASan+UBSan" "${ASAN_ENV[@]}" MQTX_UNIT_TESTS= \
		MQTX_TEST_BACKENDS=amqp MQTX_RUN_FILES="$LANE1_FILES" || r=1
	if [[ ${MQTX_ASAN_ONLY:-0} != 1 && ${MQTX_SKIP_VALGRIND:-0} != 1 ]]; then
		pass "lane 1: valgrind memcheck (${MQTX_CHECK_VALGRIND:-subset})" "${VALGRIND_ENV[@]}" || r=1
	fi
	return $r
}

lane2() {
	local r=0
	pass "lane 2: unit tests and the backend files against Kafka and NATS, ASan+UBSan" "${ASAN_ENV[@]}" \
		MQTX_UNIT_TESTS="$PWD/tests/unit/unit_tests-asan" MQTX_TEST_BACKENDS="kafka nats" || r=1
	pass "lane 2: the RabbitMQ cluster, ASan+UBSan" "${ASAN_ENV[@]}" MQTX_UNIT_TESTS= MQTX_TEST_BACKENDS=amqp \
		MQTX_RUN_FILES=tests/cluster.bats || r=1
	return $r
}

if [[ ${MQTX_CHECK_PLAIN:-0} == 1 ]]; then
	pass "plain test build" MQTX="$PWD/mqtx-test" || rc=1
	add_summary "$logdir/plain test build.log"
fi

if [[ ${MQTX_CHECK_JOBS:-2} == 1 || -n ${MQTX_TEST_DATABASE_URL:-} || -n ${MQTX_TEST_AMQP_URL:-} ||
	-n ${MQTX_TEST_KAFKA_BROKERS:-} || -n ${MQTX_TEST_NATS_URL:-} ]]; then
	lane1 || rc=1
	lane2 || rc=1
else
	# lane 2 runs in the background; its output follows lane 1's.
	lane2 >"$logdir/lane2.out" 2>&1 &
	lane_pid=$!
	lane1 || rc=1
	wait "$lane_pid" || rc=1
	lane_pid=""
	echo "== lane 2 (ran at the same time as lane 1) =="
	cat "$logdir/lane2.out"
fi
for log in "$logdir"/*.log; do
	[[ $log == */plain\ test\ build.log ]] || add_summary "$log"
done
rm -rf "$logdir"

line="$total_passed passed, $total_failed failed"
((total_skipped == 0)) || line+=", $total_skipped skipped"
echo "$line"
exit $rc
