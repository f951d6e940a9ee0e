#!/usr/bin/env bats
# mqtx check, end to end against real servers. Runs once per backend
# (MQTX_TEST_BACKEND=amqp or kafka, see backend.bash); parts that only
# RabbitMQ has (queues) are skipped on Kafka with a reason.

load test_helper
load backend

setup() {
	backend_test_setup
	OUTBOX="\"$T_SCHEMA\".\"mqtx_outbox\""
}

teardown() {
	if [[ -n ${LOCKER:-} ]]; then
		unlock_tables
	fi
	if [[ -n ${GID:-} ]]; then
		psql_test "ROLLBACK PREPARED '$GID'" >/dev/null 2>&1 || true
	fi
	if [[ $(backend_name) == amqp && -n ${T_QUEUE:-} ]]; then
		"$AMQP_TOOL" delete-queue "$MQTX_TEST_AMQP_URL" "$T_QUEUE.c" 2>/dev/null || true
	fi
	mqtx_test_teardown
}

# add_rows N [STATUS] [AGE] [DEST] [ORDERING_KEY] [ATTEMPTS] [LAST_ERROR]: N rows
# created AGE ago (a PostgreSQL interval, default 0).
add_rows() {
	local n=$1 status=${2:-pending} age=${3:-0} dest=${4:-$T_DEST} okey=${5:-} attempts=${6:-0} err=${7:-}
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload, status, attempts, last_error,
			created_at, available_at, sent_at)
		SELECT '$dest', 'test.rk', NULLIF('$okey', ''), convert_to('{}', 'UTF8'), '$status', $attempts,
			NULLIF('$err', ''), now() - interval '$age', now() - interval '$age',
			CASE WHEN '$status' = 'sent' THEN now() - interval '$age' END
		FROM generate_series(1, $n)"
}

# fake_relay ID LAST_SEEN_AGO [STOPPED(true|false)] [HOST] [STARTED_AGO]: a heartbeat row.
fake_relay() {
	local id=$1 seen=$2 stopped=${3:-false} host=${4:-host-a} started=${5:-1 hour}
	psql_test "INSERT INTO mqtx_relays(relay_id, outbox, host, pid, version, started_at, last_seen, stopped_at)
		VALUES ('$id', '$OUTBOX', '$host', 4242, 'test', now() - interval '$started', now() - interval '$seen',
			CASE WHEN $stopped THEN now() - interval '$seen' END)"
}

# check_json RC ARGS...: mqtx check --format json; the document is in $output.
check_json() {
	local rc=$1
	shift
	run_mqtx "$rc" check --format json "$@"
	jq -e '.version == 1' <<<"$output" >/dev/null || fail "not a version 1 JSON document: $output"
}

# jq_is FILTER EXPECTED: jq -r FILTER on $output must print EXPECTED.
jq_is() {
	local got
	got=$(jq -r "$1" <<<"$output") || fail "jq '$1' failed on: $output"
	[[ $got == "$2" ]] || fail "jq '$1': expected '$2', got '$got' in: $output"
}

id_of() { psql_test "SELECT min(id) FROM mqtx_outbox WHERE $1"; }

# lock_table TABLE: another session holds an ACCESS EXCLUSIVE lock on TABLE
# (of the test's schema) until unlock_tables.
lock_table() {
	PGAPPNAME="lock-$T_SCHEMA" psql_test "BEGIN; LOCK TABLE $1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)" >/dev/null 2>&1 3>&- &
	LOCKER=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(psql_test "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE c.oid = '$1'::regclass AND l.mode = 'AccessExclusiveLock' AND l.granted") == 1 ]] && return 0
		sleep 0.1
	done
	fail "the lock on $1 was not taken within 10s"
}

unlock_tables() {
	psql_test "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lock-$T_SCHEMA'" >/dev/null || true
	wait "$LOCKER" 2>/dev/null || true
	LOCKER=
}

@test "check: an empty outbox is OK (exit 0), with a version 1 JSON document and a Nagios status line" {
	check_json 0
	jq_is .status ok
	jq_is .exit_code 0
	jq_is '.counts.pending.rows' 0
	jq_is '.counts.sent.approximate' false
	jq_is '.problems | length' 0
	jq_is .outbox "$T_SCHEMA.mqtx_outbox"
	run_mqtx 0 check
	assert_line --index 0 --regexp "^OK - outbox $T_SCHEMA\.mqtx_outbox: 0 pending"
	[[ $output != *$'\033'* ]] || fail "colour codes although stdout is not a terminal"
}

@test "check: colours only on a terminal, and never with NO_COLOR" {
	command -v script >/dev/null || skip "script(1) (util-linux) is needed for a pseudo-terminal"
	add_rows 1 dead '1 hour' "$T_DEST" '' 10 boom
	run script -qec "$(printf '%q ' "$MQTX") check" /dev/null
	[[ $output == *$'\033['*CRITICAL* ]] || fail "no colour on a terminal: $output"
	run script -qec "NO_COLOR=1 $(printf '%q ' "$MQTX") check" /dev/null
	[[ $output == *CRITICAL* && $output != *$'\033'* ]] || fail "colour despite NO_COLOR: $output"
}

@test "check: after a relay run the outbox is OK and the relayed rows show as recent traffic per destination" {
	add_rows 5
	run_mqtx 0 relay
	check_json 0
	jq_is '.counts.sent.rows' 5
	jq_is .relayed_last_minute 5
	jq_is .relayed_last_hour 5
	jq_is ".destinations[] | select(.destination == \"$T_DEST\") | .relayed_last_minute" 5
	jq_is '.relays.stopped' 1
	jq_is '.relays.list[0].state' stopped
	jq_is '.relays.list[0].relayed' 5
}

@test "check: pending rows older than --warn-age are WARNING, older than --crit-age CRITICAL" {
	fake_relay live-1 '5 seconds'
	add_rows 2 pending '10 minutes'
	add_rows 1
	check_json 1 --warn-age 5m --crit-age 1h
	jq_is '.problems[0].check' pending_age
	jq_is '.problems[0].severity' warning
	jq_is '.problems[0].count' 2
	jq_is '.oldest_pending_age_seconds | floor >= 600' true
	jq_is ".problems[0].action" "mqtx check --explain $(id_of "status = 'pending'")"
	check_json 2 --warn-age 5m --crit-age 8m
	jq_is '.problems[0].severity' critical
	check_json 0 --warn-age 0 --crit-age 0
	run_mqtx 3 check --warn-age 10m --crit-age 5m
	stderr_has "check.crit_age must not be shorter than check.warn_age"
}

@test "check: a row written for later delivery is not late until it is due" {
	fake_relay live-1 '5 seconds'
	psql_test "INSERT INTO mqtx_outbox(destination, payload, created_at, available_at)
		VALUES ('$T_DEST', '\\x00', now() - interval '2 hours', now() + interval '1 hour'),
		       ('$T_DEST', '\\x00', now() - interval '2 hours', now() - interval '7 minutes')"
	check_json 1
	jq_is '.problems[0].check' pending_age
	jq_is '.problems[0].count' 1
	jq_is '.oldest_pending_age_seconds | floor >= 420 and . < 600' true
	jq_is '.problems[0].rows[0].id' "$(id_of "available_at < now()")"
	check_json 1 --explain "$(id_of "available_at < now()")"
	check_json 0 --explain "$(id_of "available_at > now()")"
	jq -e '.verdict | test("scheduled")' <<<"$output" >/dev/null || fail "verdict: $output"
}

@test "check: thresholds come from the configuration file and the environment; flags win" {
	fake_relay live-1 '5 seconds'
	add_rows 1 pending '10 minutes'
	printf 'check:\n  warn_age: 20m\n  crit_age: 1h\n' >"$BATS_TEST_TMPDIR/mqtx.yaml"
	check_json 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml"
	jq_is '.thresholds.warn_age_seconds' 1200
	MQTX_CHECK_WARN_AGE=5m check_json 1 --config "$BATS_TEST_TMPDIR/mqtx.yaml"
	jq_is '.thresholds.warn_age_seconds' 300
	MQTX_CHECK_WARN_AGE=5m check_json 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" --warn-age 30m
	printf 'check:\n  warn_age: soon\n' >"$BATS_TEST_TMPDIR/bad.yaml"
	run_mqtx 3 check --config "$BATS_TEST_TMPDIR/bad.yaml"
	stderr_has "bad.yaml:2:13: check.warn_age"
}

@test "check: dead rows are CRITICAL above --max-dead and listed with their last error" {
	add_rows 3 dead '1 hour' "$T_DEST" '' 10 'unroutable: no queue for test.rk'
	check_json 2
	jq_is '.counts.dead.rows' 3
	jq_is '.problems[0].check' dead_rows
	jq_is '.problems[0].count' 3
	jq_is '.problems[0].rows | length' 3
	jq_is '.problems[0].rows[0].last_error' 'unroutable: no queue for test.rk'
	jq_is '.problems[0].rows[0].attempts' 10
	jq_is ".destinations[] | select(.destination == \"$T_DEST\") | .dead" 3
	check_json 0 --max-dead 3
	MQTX_CHECK_MAX_DEAD=2 check_json 2
}

@test "check: rows that keep failing are a WARNING with their last error; --warn-attempts sets how many failures" {
	fake_relay live-1 '5 seconds'
	add_rows 2 pending '1 minute' "$T_DEST" '' 4 'the broker refused the message'
	add_rows 1 pending '1 minute' "$T_DEST" '' 1 'the broker refused the message'
	check_json 1
	jq_is '.problems[0].check' high_attempts
	jq_is '.high_attempt_rows' 2
	jq_is '.problems[0].rows[0].last_error' 'the broker refused the message'
	check_json 1 --warn-attempts 1
	jq_is '.high_attempt_rows' 3
	check_json 0 --warn-attempts 5
	check_json 0 --warn-attempts 0
}

# A head row to a destination that does not exist, rows of its key behind it,
# and another key that flows.
blocked_setup() {
	MISSING=$(missing_dest)
	add_rows 1 pending 0 "$MISSING" cust-7
	add_rows 3 pending 0 "$T_DEST" cust-7
	add_rows 2 pending 0 "$T_DEST" cust-8
	MQTX_RELAY_BACKOFF_INITIAL=1m run_mqtx 1 relay
	HEAD=$(id_of "destination = '$MISSING'")
	BEHIND=$(id_of "destination = '$T_DEST' AND ordering_key = 'cust-7'")
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") == 2 ]]
}

@test "check: an ordering key blocked by a failing head row names the key, the row, its error and the rows behind it" {
	blocked_setup
	check_json 1
	jq_is '.problems[0].check' blocked_ordering_keys
	jq_is '.blocked_ordering_keys' 1
	jq_is '.blocked_rows' 3
	jq_is '.problems[0].ordering_keys[0].ordering_key' cust-7
	jq_is '.problems[0].ordering_keys[0].behind' 3
	jq_is '.problems[0].ordering_keys[0].head.id' "$HEAD"
	jq_is '.problems[0].ordering_keys[0].head.destination' "$MISSING"
	jq_is '.problems[0].ordering_keys[0].head.attempts' 1
	jq -e '.problems[0].ordering_keys[0].head.last_error | test("no exchange|does not exist|unknown topic|no JetStream stream captures"; "i")' <<<"$output" >/dev/null ||
		fail "the head row's error is not reported: $output"
	jq_is '.problems[0].action' "mqtx check --explain $HEAD"
	run_mqtx 1 check
	assert_output --partial "key 'cust-7': 3 row(s) wait behind row $HEAD"
}

@test "check: --explain says a row waits behind the failing head of its key, and what the head's story is" {
	blocked_setup
	check_json 1 --explain "$BEHIND"
	jq_is .status pending
	jq_is '.blocked_by.ahead' 1
	jq_is '.blocked_by.head.id' "$HEAD"
	jq_is '.actions[0]' "mqtx check --explain $HEAD"
	jq -e '.verdict | test("held back")' <<<"$output" >/dev/null || fail "verdict: $output"

	check_json 1 --explain "$HEAD"
	jq_is '.blocked_by' null
	jq_is '.behind' 3
	jq_is '.attempts' 1
	jq -e '.verdict | test("waiting for retry 2 of")' <<<"$output" >/dev/null || fail "verdict: $output"
	jq -e '.story | map(test("heads ordering key .cust-7.: 3 later row")) | any' <<<"$output" >/dev/null ||
		fail "the head's story does not say what it holds back: $output"

	run_mqtx 1 check --explain "$HEAD"
	assert_line --index 0 --partial "WARNING - row $HEAD: pending, waiting for retry"
	assert_output --partial "what to do"
}

@test "check: --explain of a dead row, a sent row, a row found by its key, and an unknown id" {
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, payload, status, attempts, last_error)
		VALUES ('order-1-created', '$T_DEST', '\\x00', 'dead', 10, 'boom'),
		       ('order-2-created', '$T_DEST', '\\x00', 'pending', 0, NULL)"
	dead=$(id_of "idempotency_key = 'order-1-created'")
	check_json 2 --explain "$dead"
	jq_is .status dead
	jq_is .last_error boom
	jq_is '.actions[1]' "mqtx redeliver --status dead --id $dead --requeue --yes"

	run_mqtx 0 relay
	check_json 0 --explain order-2-created
	jq_is .status sent
	jq_is .key order-2-created
	jq -e '.verdict | startswith("sent")' <<<"$output" >/dev/null || fail "verdict: $output"
	jq -e '.sent_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")' <<<"$output" >/dev/null || fail "sent_at: $output"

	check_json 3 --explain 999999
	jq_is .found false
	stderr_has "no outbox row and no in-doubt txpub item with id or key '999999'"
	run_mqtx 3 check --explain 1 --format prometheus
}

@test "check: --explain of a pending row with no relay around is CRITICAL and says to start one" {
	add_rows 1
	id=$(id_of true)
	check_json 2 --explain "$id"
	jq_is .relay_alive false
	jq -e '.actions | map(test("mqtx relay")) | any' <<<"$output" >/dev/null || fail "no relay command: $output"
	fake_relay live-1 '1 second'
	check_json 0 --explain "$id"
	jq -e '.verdict | test("eligible")' <<<"$output" >/dev/null || fail "verdict: $output"
}

@test "check: a silent relay is a WARNING, a cleanly stopped one is not, a restarted one is only noted" {
	fake_relay gone-1 '10 minutes' false host-a '2 hours'
	fake_relay done-1 '3 hours' true host-b '4 hours'
	check_json 1
	jq_is '[.problems[].check] | join(",")' stale_relays
	jq_is '.problems[0].relays | map(.relay_id) | join(",")' gone-1
	jq_is '.relays.stopped' 1
	jq -e '.problems[0].action | test("DELETE FROM .* WHERE relay_id = .gone-1.")' <<<"$output" >/dev/null ||
		fail "action: $output"
	# the same host runs a relay started after gone-1 went silent: a restart
	fake_relay live-1 '2 seconds' false host-a '5 minutes'
	check_json 0
	jq_is '.relays.list | map(select(.relay_id == "gone-1"))[0].state' replaced
	jq_is '.relays.live' 1
	# silent for longer than check.relay_forget: no longer reported
	psql_test "DELETE FROM mqtx_relays WHERE relay_id = 'live-1'"
	MQTX_CHECK_RELAY_FORGET=5m check_json 0
	jq_is '.relays.list | map(.relay_id) | join(",")' done-1
}

@test "check: rows waiting longer than --relay-stale with no relay seen are CRITICAL; a recent cron run is enough" {
	add_rows 2 pending '5 minutes'
	check_json 2 --warn-age 0
	jq_is '.problems[0].check' no_live_relay
	jq_is '.problems[0].count' 2
	fake_relay cron-1 '30 seconds' true
	check_json 0 --warn-age 0
	check_json 2 --warn-age 0 --relay-stale 10s
	jq_is '.problems[0].check' no_live_relay
	# fresh rows do not alarm yet: a relay may simply not have come by
	psql_test "DELETE FROM mqtx_relays" "UPDATE mqtx_outbox SET created_at = now(), available_at = now()"
	check_json 0
}

@test "check: --format prometheus is text exposition with HELP and TYPE for every metric" {
	fake_relay live-1 '5 seconds'
	add_rows 3 pending '10 minutes'
	add_rows 2 dead '1 hour' "$T_DEST" '' 10 'boom'
	run_mqtx 2 check --format prometheus
	[[ -n $output ]] || fail "no output"
	local line bad=0 name
	declare -A help type
	while IFS= read -r line; do
		case $line in
		'# HELP '*) name=${line#\# HELP }; help[${name%% *}]=1 ;;
		'# TYPE '*) name=${line#\# TYPE }; [[ ${name#* } == gauge ]] || bad=1; type[${name%% *}]=1 ;;
		'#'*) ;;
		*)
			[[ $line =~ ^mqtx_[a-z_]+(\{[^}]*\})?\ [0-9.e+-]+$ ]] || { echo "bad line: $line" >&2; bad=1; }
			name=${line%%[\{ ]*}
			[[ -n ${help[$name]:-} && -n ${type[$name]:-} ]] || { echo "no HELP/TYPE before: $line" >&2; bad=1; }
			;;
		esac
	done <<<"$output"
	((bad == 0)) || fail "invalid exposition:"$'\n'"$output"
	assert_line "mqtx_check_status{outbox=\"$T_SCHEMA.mqtx_outbox\"} 2"
	assert_line "mqtx_outbox_rows{outbox=\"$T_SCHEMA.mqtx_outbox\",status=\"pending\"} 3"
	assert_line "mqtx_destination_dead_rows{outbox=\"$T_SCHEMA.mqtx_outbox\",destination=\"$T_DEST\"} 2"
	assert_line "mqtx_check_problems{outbox=\"$T_SCHEMA.mqtx_outbox\",severity=\"critical\"} 1"
	assert_line --regexp "^mqtx_outbox_oldest_pending_age_seconds\{outbox=\"$T_SCHEMA\.mqtx_outbox\"\} 6[0-9][0-9]\.[0-9]{3}$"
}

@test "check: --broker reports whether the destinations of pending rows exist" {
	fake_relay live-1 '5 seconds'
	MISSING=$(missing_dest)
	add_rows 1 pending 0 "$MISSING"
	add_rows 2
	check_json 2 --broker
	jq_is '.broker.checked' true
	jq_is ".destinations[] | select(.destination == \"$T_DEST\") | .exists" true
	jq_is ".destinations[] | select(.destination == \"$MISSING\") | .exists" false
	jq_is '.problems[0].check' destination_missing
	jq_is '.problems[0].destination' "$MISSING"
	jq_is '.problems[0].count' 1
	# without --broker nothing is asked
	check_json 0
	jq_is '.broker' null
	jq_is ".destinations[] | select(.destination == \"$MISSING\") | .exists" null
}

@test "check: --broker reports queue depth and consumers of check.queues, and missing queues (RabbitMQ)" {
	skip_unless_can queues "no queues (check.queues is for brokers with queues)"
	publish_test test.rk one
	publish_test test.rk two
	"$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$T_QUEUE.c"
	printf 'check:\n  queues:\n    - %s\n    - %s\n    - %s\n' "$T_QUEUE" "$T_QUEUE.c" "$T_QUEUE.none" >"$BATS_TEST_TMPDIR/q.yaml"
	check_json 2 --broker --config "$BATS_TEST_TMPDIR/q.yaml"
	jq_is ".broker.queues | map(.queue) | join(\",\")" "$T_QUEUE,$T_QUEUE.c,$T_QUEUE.none"
	jq_is ".broker.queues[0].messages" 2
	jq_is ".broker.queues[0].consumers" 0
	jq_is ".broker.queues[2].exists" false
	jq_is '[.problems[] | .check + ":" + .queue] | join(",")' "queue_missing:$T_QUEUE.none,queue_consumers:$T_QUEUE,queue_consumers:$T_QUEUE.c"
	# a consumer on the second queue, and a depth limit on the first; --queues overrides the file
	"$AMQP_TOOL" drain "$MQTX_TEST_AMQP_URL" "$T_QUEUE.c" --timeout 15 3>&- &
	local drainer=$!
	wait_until 10 bash -c "'$MQTX' check --broker --queues '$T_QUEUE.c' --format json | jq -e '.broker.queues[0].consumers == 1' >/dev/null"
	MQTX_CHECK_QUEUE_MAX_DEPTH=1 check_json 1 --broker --queues "$T_QUEUE,$T_QUEUE.c"
	jq_is '[.problems[] | .check + ":" + .queue] | join(",")' "queue_consumers:$T_QUEUE,queue_depth:$T_QUEUE"
	jq_is '.broker.queues[1].consumers' 1
	kill "$drainer" 2>/dev/null || true
	wait "$drainer" 2>/dev/null || true
}

@test "check: --broker with an unreachable broker is CRITICAL" {
	add_rows 1
	fake_relay live-1 '5 seconds'
	local url=amqp://guest@127.0.0.1:1/%2f
	[[ $(backend_name) == kafka ]] && url=kafka://127.0.0.1:1
	[[ $(backend_name) == nats ]] && url=nats://127.0.0.1:1
	MQTX_BROKER_URL=$url MQTX_BROKER_CONNECT_TIMEOUT=1s check_json 2 --broker
	jq_is '.problems[0].check' broker_unreachable
	jq_is '.broker.checked' false
}

@test "check: --completion counts sent messages no consumer completed after check.completion_after" {
	fake_relay live-1 '5 seconds'
	add_rows 3 sent '20 minutes'
	add_rows 1 sent '1 minute'
	psql_test "INSERT INTO mqtx_completions(idempotency_key, source) SELECT idempotency_key, 'test' FROM mqtx_outbox
		WHERE id = (SELECT min(id) FROM mqtx_outbox)"
	check_json 0
	jq_is .completion null
	check_json 1 --completion
	jq_is '.completion.awaiting' 2
	jq_is '.completion.oldest_sent_age_seconds | floor >= 1200' true
	jq_is '.problems[0].check' awaiting_completion
	jq_is '.problems[0].action' 'mqtx redeliver --unacked-after 10m --dry-run'
	MQTX_CHECK_COMPLETION_AFTER=30m check_json 0 --completion
	jq_is '.completion.awaiting' 0
	MQTX_CHECK_COMPLETION_WINDOW=5m check_json 0 --completion
	# the story of one message says whether it was completed
	done_id=$(id_of true)
	check_json 0 --explain "$done_id" --completion
	jq -e '.completed_at != null and (.verdict | test("completed"))' <<<"$output" >/dev/null || fail "$output"
	check_json 1 --explain "$(id_of "id > $done_id")" --completion
	jq_is '.actions[1]' "mqtx redeliver --id $(id_of "id > $done_id") --yes"
}

@test "check: a prepared half message is in doubt; --resolve commits it when the check-back says so" {
	psql_test "CREATE TABLE orders(key text PRIMARY KEY)" "INSERT INTO orders VALUES ('order-9')"
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, payload, status, created_at, available_at)
		VALUES ('order-9', '$T_DEST', '\\x00', 'prepared', now() - interval '5 minutes', now() - interval '5 minutes'),
		       ('order-10', '$T_DEST', '\\x00', 'prepared', now() - interval '5 minutes', now() - interval '5 minutes')"
	fake_relay live-1 '5 seconds'
	check_json 1
	jq_is '.counts.prepared.rows' 2
	jq_is '.problems[0].check' in_doubt
	jq_is '.in_doubt | map(.key) | sort | join(",")' order-10,order-9
	jq_is '.problems[0].action' 'mqtx check --resolve'
	check_json 1 --explain order-9
	jq_is .status prepared
	jq_is '.actions[0]' 'mqtx check --resolve'

	cat >"$BATS_TEST_TMPDIR/txpub.yaml" <<EOF
txpub:
  check_sql: SELECT CASE WHEN EXISTS (SELECT 1 FROM "$T_SCHEMA".orders WHERE key = \$1) THEN 'commit' ELSE 'rollback' END
EOF
	check_json '*' --resolve --config "$BATS_TEST_TMPDIR/txpub.yaml"
	jq_is '.resolve.committed' 1
	jq_is '.resolve.rolled_back' 1
	jq_is '.in_doubt | length' 0
	run psql_test "SELECT idempotency_key || ':' || status FROM mqtx_outbox ORDER BY id"
	assert_output $'order-9:pending\norder-10:rolled_back'
}

@test "check: a prepared transaction left by txpub --sql is in doubt, explained by its key, and --resolve decides it" {
	GID="mqtx:order-77-$T_SCHEMA"
	# as txpub --sql leaves it when it dies between PREPARE and COMMIT PREPARED
	psql_test "BEGIN; SET LOCAL mqtx.skip_notify = 'on';
		INSERT INTO mqtx_outbox(idempotency_key, destination, payload) VALUES ('order-77-$T_SCHEMA', '$T_DEST', '\\x00');
		PREPARE TRANSACTION '$GID'"
	check_json 1
	jq_is '.problems[0].check' in_doubt
	jq_is ".in_doubt | map(select(.kind == \"prepared-xact\")) | map(.key) | join(\",\")" "order-77-$T_SCHEMA"
	check_json 1 --explain "order-77-$T_SCHEMA"
	jq_is .found true
	jq_is .in_outbox false
	jq_is '.actions[0]' 'mqtx check --resolve'
	# no coordinator record: rolled back once older than txpub.prepared_timeout
	check_json 1 --resolve
	jq_is '.resolve.unknown' 1
	MQTX_TXPUB_PREPARED_TIMEOUT=0 check_json 0 --resolve
	jq_is '.resolve.rolled_back' 1
	jq_is '.in_doubt | length' 0
	GID=
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
}

@test "check: large tables are estimated from statistics and say so" {
	fake_relay live-1 '5 seconds'
	add_rows 400 sent '2 hours'
	add_rows 150 pending
	psql_test "ANALYZE mqtx_outbox"
	MQTX_CHECK_SCAN_LIMIT=100 check_json 0 --warn-attempts 0
	jq_is '.counts.sent.approximate' true
	jq_is '.counts.sent.rows > 300 and .counts.sent.rows < 500' true
	jq_is '.counts.pending.approximate' true
	jq_is '.counts.pending.rows >= 100' true
	jq_is '.total.approximate' true
	MQTX_CHECK_SCAN_LIMIT=100 run_mqtx 0 check
	assert_output --partial "approximately"
	assert_line --regexp '^sent +~[0-9]+$'
}

@test "check: UNKNOWN (3) when the database is unreachable, the table is missing or the usage is wrong" {
	MQTX_DATABASE_CONNECT_TIMEOUT=1s check_json 3 --database-url "postgresql://nobody@127.0.0.1:1/none"
	jq_is .status unknown
	jq -e '.error | test("cannot connect")' <<<"$output" >/dev/null || fail "$output"
	run_mqtx 3 check --format prometheus --table no_such_table
	assert_output --partial "mqtx_check_status{outbox=\"$T_SCHEMA.no_such_table\"} 3"
	stderr_has "does not exist"
	run_mqtx 3 check --table no_such_table
	assert_line --index 0 --partial "UNKNOWN - outbox table"
	run_mqtx 3 check --format yaml
	stderr_has "--format: 'yaml' is not one of text, json, prometheus"
	run_mqtx 3 check --no-such-option
	run_mqtx 3 check extra-argument
	run_mqtx 3 check --explain 1 --resolve
	run_mqtx 0 check --help
	assert_output --partial "3  UNKNOWN"
}

@test "check retention: the table's size, the oldest row and what retention deletes next, in every format" {
	add_rows 3 sent '2 hours'
	add_rows 2 sent '10 minutes'
	export MQTX_OUTBOX_RETENTION=1h30m
	check_json 0
	jq_is .table_bytes "$(psql_test "SELECT pg_total_relation_size('mqtx_outbox')")"
	jq_is '.table_bytes > 0' true
	jq_is .partitions null
	jq_is '.oldest_row_age_seconds | floor >= 7200 and . < 7500' true
	jq_is .retention.enabled true
	jq_is .retention.retention_seconds 5400
	jq_is .retention.due.sent.rows 3
	jq_is .retention.due.sent.approximate false
	jq_is .retention.due.rolled_back.rows 0
	jq_is .retention.due.dead null
	jq_is .retention.due.relays.rows 0
	jq_is '.retention.overdue_seconds | floor >= 1800 and . < 2100' true
	jq_is .retention.note null
	jq_is .thresholds.max_table_size_bytes 1073741824
	jq_is .thresholds.retention_lag_seconds 3600
	run_mqtx 0 check
	assert_line --index 0 --regexp "^OK - outbox $T_SCHEMA\.mqtx_outbox: .*, table [0-9.]+ KiB$"
	assert_line --regexp '^table: [0-9.]+ KiB \(table, indexes and TOAST\), oldest row written 2h[0-9]+m ago$'
	assert_line --regexp '^retention: 1h30m; the next pass deletes 3 sent, 0 rolled_back, 0 relays, 0 completions; the oldest has been due for 3[0-9]m[0-9]+s$'
	run_mqtx 0 check --format prometheus
	assert_line --regexp "^mqtx_outbox_table_bytes\{outbox=\"$T_SCHEMA\.mqtx_outbox\"\} [1-9][0-9]*$"
	assert_line --regexp "^mqtx_outbox_oldest_row_age_seconds\{outbox=\"$T_SCHEMA\.mqtx_outbox\"\} 7[0-9]{3}\.[0-9]{3}$"
	assert_line "mqtx_retention_enabled{outbox=\"$T_SCHEMA.mqtx_outbox\"} 1"
	assert_line "mqtx_retention_due_rows{outbox=\"$T_SCHEMA.mqtx_outbox\",kind=\"sent\"} 3"
	assert_line --regexp "^mqtx_retention_overdue_seconds\{outbox=\"$T_SCHEMA\.mqtx_outbox\"\} 1[89][0-9]{2}\.[0-9]{3}$"
}

@test "check retention: the due count is the rows aged past retention, per kind, never pending, prepared or young rows" {
	add_rows 4 sent '3 hours'
	add_rows 2 sent '20 minutes'
	add_rows 3 rolled_back '2 hours'
	add_rows 1 rolled_back '5 minutes'
	add_rows 2 dead '5 hours'
	add_rows 2 pending '4 hours'
	add_rows 1 prepared '4 hours'
	fake_relay live-1 '5 seconds'
	export MQTX_OUTBOX_RETENTION=1h MQTX_CHECK_RETENTION_LAG=0 MQTX_CHECK_WARN_AGE=0 MQTX_CHECK_CRIT_AGE=0 MQTX_CHECK_MAX_DEAD=10
	check_json '*'
	jq_is .retention.due.sent.rows "$(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent' AND sent_at < now() - interval '1 hour'")"
	jq_is .retention.due.sent.rows 4
	jq_is .retention.due.rolled_back.rows 3
	jq_is .retention.due.dead null
	# dead rows only with outbox.dead_retention (their last attempt: available_at)
	MQTX_OUTBOX_DEAD_RETENTION=4h check_json '*'
	jq_is .retention.due.dead.rows 2
	jq_is .retention.dead_retention_seconds 14400
	# more than check.scan_limit: a lower bound, and it says so
	add_rows 150 sent '2 hours'
	MQTX_CHECK_SCAN_LIMIT=100 check_json '*'
	jq_is .retention.due.sent.rows 100
	jq_is .retention.due.sent.approximate true
	# the relay deletes what check said (the 2 pending rows it sends are young)
	run_mqtx 0 relay
	run psql_test "SELECT status || ':' || count(*) FROM mqtx_outbox GROUP BY status ORDER BY status"
	assert_output $'dead:2\nprepared:1\nrolled_back:1\nsent:4'
	check_json '*'
	jq_is .retention.due.sent.rows 0
	jq_is .retention.due.rolled_back.rows 0
	jq_is .retention.overdue_seconds null
}

@test "check retention: outbox.retention off on a table above check.max_table_size is a WARNING; on, or below, it is not" {
	add_rows 50 sent '1 minute'
	MQTX_OUTBOX_RETENTION=off MQTX_CHECK_MAX_TABLE_SIZE=8KiB check_json 1
	jq_is '[.problems[].check] | join(",")' table_size
	jq_is .problems[0].severity warning
	jq -e '.problems[0].message | test("more than check.max_table_size \\(8.0 KiB\\), and outbox.retention is off: nothing is deleted")' <<<"$output" >/dev/null ||
		fail "message: $output"
	jq_is .retention.enabled false
	jq_is .retention.retention_seconds null
	jq_is '.retention.due | [.[]] | map(select(. != null)) | length' 0
	jq_is .thresholds.max_table_size_bytes 8192
	MQTX_OUTBOX_RETENTION=off MQTX_CHECK_MAX_TABLE_SIZE=8KiB run_mqtx 1 check
	assert_line --index 0 --partial "WARNING - outbox $T_SCHEMA.mqtx_outbox: the outbox takes"
	assert_line 'retention off: nothing is deleted'
	MQTX_OUTBOX_RETENTION=off MQTX_CHECK_MAX_TABLE_SIZE=8KiB run_mqtx 1 check --format prometheus
	assert_line "mqtx_retention_enabled{outbox=\"$T_SCHEMA.mqtx_outbox\"} 0"
	assert_line "mqtx_check_problems{outbox=\"$T_SCHEMA.mqtx_outbox\",severity=\"warning\"} 1"
	# retention on: it prunes, whatever the size; off but below the limit, or the limit off (0)
	MQTX_CHECK_MAX_TABLE_SIZE=8KiB check_json 0
	MQTX_OUTBOX_RETENTION=off check_json 0
	MQTX_OUTBOX_RETENTION=off MQTX_CHECK_MAX_TABLE_SIZE=0 check_json 0
	printf 'check:\n  max_table_size: 8KB\noutbox:\n  retention: "off"\n' >"$BATS_TEST_TMPDIR/size.yaml"
	check_json 1 --config "$BATS_TEST_TMPDIR/size.yaml"
	jq_is .thresholds.max_table_size_bytes 8000
	printf 'check:\n  max_table_size: big\n' >"$BATS_TEST_TMPDIR/bad.yaml"
	run_mqtx 3 check --config "$BATS_TEST_TMPDIR/bad.yaml"
	stderr_has "check.max_table_size"
}

@test "check retention: rows due longer than check.retention_lag are a WARNING until a relay run prunes them" {
	add_rows 4 sent '3 days'
	add_rows 1 sent '1 minute'
	fake_relay live-1 '5 seconds'
	export MQTX_OUTBOX_RETENTION=1h
	MQTX_CHECK_RETENTION_LAG=1m check_json 1
	jq_is '[.problems[].check] | join(",")' retention_lag
	jq_is .problems[0].count 4
	jq -e '.problems[0].message | test("^retention is not keeping up or has stopped: 4 row\\(s\\) were due for deletion up to 2d2[0-9]h ago \\(check.retention_lag: 1m0s\\); is a relay running with outbox.retention\\? can its role DELETE\\?$")' <<<"$output" >/dev/null ||
		fail "message: $output"
	jq -e '.problems[0].action | test("mqtx init --grant ROLE")' <<<"$output" >/dev/null || fail "action: $output"
	jq_is '.retention.overdue_seconds | floor >= 255600' true
	# the default lag (1h) is shorter than 2 days too; a longer one is not
	check_json 1
	jq_is .problems[0].check retention_lag
	MQTX_CHECK_RETENTION_LAG=3d check_json 0
	MQTX_CHECK_RETENTION_LAG=0 check_json 0
	MQTX_CHECK_RETENTION_LAG=1m run_mqtx 1 check
	assert_line --index 0 --partial "WARNING - outbox $T_SCHEMA.mqtx_outbox: retention is not keeping up or has stopped: 4 row(s)"
	# a relay run prunes at its end (also when there is nothing to relay): the warning is gone
	run_mqtx 0 relay
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 1 ]] || fail "rows left: $(psql_test "SELECT count(*) FROM mqtx_outbox")"
	MQTX_CHECK_RETENTION_LAG=1m check_json 0
	jq_is .retention.due.sent.rows 0
	jq_is .retention.overdue_seconds null
	MQTX_CHECK_RETENTION_LAG=1m run_mqtx 0 check --format prometheus
	assert_line "mqtx_retention_due_rows{outbox=\"$T_SCHEMA.mqtx_outbox\",kind=\"sent\"} 0"
	assert_line "mqtx_retention_overdue_seconds{outbox=\"$T_SCHEMA.mqtx_outbox\"} 0.000"
}

@test "check retention: an adopted outbox without the bookkeeping tables, or without sent_at, is checked and says what is not pruned" {
	add_rows 2 sent '10 days'
	psql_test "DROP TABLE mqtx_relays, mqtx_completions"
	MQTX_CHECK_RETENTION_LAG=0 check_json 0
	jq_is .retention.error null
	jq_is .retention.due.sent.rows 2
	jq_is .retention.due.relays null
	jq_is .retention.due.completions null
	jq_is '[.problems[].check] | join(",")' ''
	check_json 1
	jq_is '[.problems[].check] | join(",")' retention_lag
	# no sent_at column: relayed rows are never deleted, and check says why
	psql_test "ALTER TABLE mqtx_outbox DROP COLUMN sent_at"
	printf 'outbox:\n  columns:\n    sent_at: ""\n' >"$BATS_TEST_TMPDIR/nosent.yaml"
	check_json 0 --config "$BATS_TEST_TMPDIR/nosent.yaml"
	jq_is .retention.due.sent null
	jq -e '.retention.note | test("no sent_at column.*relayed rows are never deleted")' <<<"$output" >/dev/null || fail "note: $output"
	run_mqtx 0 check --config "$BATS_TEST_TMPDIR/nosent.yaml"
	assert_line --regexp '^retention: the outbox has no sent_at column .*relayed rows are never deleted$'
}

@test "check retention: a partitioned outbox is sized over its partitions and its rows estimated over them" {
	psql_test "CREATE TABLE part_outbox (LIKE mqtx_outbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at)" \
		"CREATE TABLE part_outbox_old PARTITION OF part_outbox FOR VALUES FROM ('2000-01-01') TO ('2020-01-01')" \
		"CREATE TABLE part_outbox_default PARTITION OF part_outbox DEFAULT" \
		"INSERT INTO part_outbox(idempotency_key, destination, payload, status, created_at, sent_at)
			SELECT 'o-' || g, '$T_DEST', '\\x00', 'sent', '2010-01-01', '2010-01-01' FROM generate_series(1, 50) g" \
		"INSERT INTO part_outbox(idempotency_key, destination, payload) SELECT 'n-' || g, '$T_DEST', '\\x00' FROM generate_series(1, 3) g"
	fake_relay live-1 '5 seconds'
	MQTX_CHECK_RETENTION_LAG=0 check_json 0 --table part_outbox
	jq_is .partitions 2
	jq_is .table_bytes "$(psql_test "SELECT pg_total_relation_size('part_outbox_old') + pg_total_relation_size('part_outbox_default')")"
	jq_is '.table_bytes > 0' true
	jq_is .total.rows 53
	jq_is .retention.due.sent.rows 50
	jq_is '.oldest_row_age_seconds > 86400 * 365' true
	MQTX_CHECK_RETENTION_LAG=0 run_mqtx 0 check --table part_outbox
	assert_line --regexp '^table: [0-9.]+ KiB \(table, indexes and TOAST, 2 partitions\), oldest row written [0-9]+d[0-9]+h ago$'
	MQTX_CHECK_RETENTION_LAG=0 run_mqtx 0 check --table part_outbox --format prometheus
	assert_line "mqtx_outbox_partitions{outbox=\"$T_SCHEMA.part_outbox\"} 2"
}

@test "check retention: a preview that does not finish within check.timeout is a WARNING; the rest of the check runs" {
	add_rows 2 sent '1 minute'
	fake_relay live-1 '5 seconds'
	lock_table mqtx_completions
	MQTX_CHECK_TIMEOUT=300ms check_json 1
	jq_is '[.problems[].check] | join(",")' retention_unavailable
	jq -e '.problems[0].message | test("^cannot tell what retention will delete: .*statement timeout")' <<<"$output" >/dev/null ||
		fail "message: $output"
	jq_is .retention.due null
	jq_is .retention.overdue_seconds null
	jq -e '.retention.error | test("statement timeout")' <<<"$output" >/dev/null || fail "error: $output"
	jq_is .counts.sent.rows 2
	jq_is '.table_bytes > 0' true
	MQTX_CHECK_TIMEOUT=300ms run_mqtx 1 check --format prometheus
	assert_line "mqtx_check_problems{outbox=\"$T_SCHEMA.mqtx_outbox\",severity=\"warning\"} 1"
	refute_line --partial mqtx_retention_due_rows
	refute_line --partial mqtx_retention_overdue_seconds
	MQTX_CHECK_TIMEOUT=300ms run_mqtx 1 check
	assert_line --regexp '^retention: 7d0h; what it deletes next is unknown \(see problems\)$'
	unlock_tables
	check_json 0
	jq_is .retention.due.completions.rows 0
}
