#!/usr/bin/env bash
# The body of `make check`: the whole suite under ASan+UBSan, then a
# cross-section under valgrind memcheck. Each pass starts and stops its own
# servers (tests/run.sh). MQTX_ASAN_ONLY=1 skips valgrind (`make
# check-asan`). The last line is the combined "N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

total_passed=0 total_failed=0 total_skipped=0 rc=0

# run_pass NAME ENV...: tests/run.sh with ENV, adding its summary to the totals.
run_pass() {
	local name=$1 log summary
	shift
	log=$(mktemp)
	echo "== $name =="
	# shellcheck disable=SC2046 # MQTX_RUN_FILES is a plain list of paths
	env "$@" tests/run.sh $(env "$@" printenv MQTX_RUN_FILES) 2>&1 | tee "$log"
	local prc=${PIPESTATUS[0]}
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	rm -f "$log"
	if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
		total_passed=$((total_passed + BASH_REMATCH[1]))
		total_failed=$((total_failed + BASH_REMATCH[2]))
		total_skipped=$((total_skipped + ${BASH_REMATCH[4]:-0}))
	else
		total_failed=$((total_failed + 1))
	fi
	((prc == 0)) || rc=1
}

# One full pass, with the ASan+UBSan build (which also carries the
# failpoints), so that every test also checks memory and undefined
# behaviour without running the suite twice. MQTX_CHECK_PLAIN=1 adds a
# pass with the plain test build.
if [[ ${MQTX_CHECK_PLAIN:-0} == 1 ]]; then
	run_pass "tests (test build)" MQTX="$PWD/mqtx-test"
fi
run_pass "tests under ASan+UBSan" MQTX="$PWD/mqtx-asan" MQTX_UNIT_TESTS="$PWD/tests/unit/unit_tests-asan" \
	ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99" \
	LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# valgrind memcheck over the unit tests and a cross-section of the CLI and
# relay suites (the whole suite under valgrind would take too long for CI).
if [[ ${MQTX_ASAN_ONLY:-0} != 1 && ${MQTX_SKIP_VALGRIND:-0} != 1 ]]; then
	run_pass "tests under valgrind memcheck (subset)" MQTX="$PWD/tests/helpers/valgrind-run" \
		VALGRIND_TARGET="$PWD/mqtx-test" MQTX_UNIT_TESTS="$PWD/tests/helpers/valgrind-unit" \
		BATS_ARGS="--filter (cli:.(config|malformed|precedence|no.database))|(relay:.(a.row.arrives|a.row.whose|--dry-run|--max-messages|rows.with.NULL|table.and.schema|a.failing.head))" \
		MQTX_RUN_FILES="tests/cli.bats tests/relay.bats"
fi

line="$total_passed passed, $total_failed failed"
((total_skipped == 0)) || line+=", $total_skipped skipped"
echo "$line"
exit $rc
