#!/usr/bin/env bats
# mqtx relay, end to end against real servers. The same file runs once per
# backend: MQTX_TEST_BACKEND=amqp (default), kafka or nats (see backend.bash).

load test_helper
load backend

setup() {
	backend_test_setup
}

teardown() {
	mqtx_test_teardown
}

# bats test_tags=valgrind
@test "relay: a row arrives with its key, headers, content type and exact bytes, then is marked sent" {
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, routing_key, headers, content_type, payload)
		VALUES ('order-1-created', '$T_DEST', 'order.created', '{\"tenant\":\"acme\",\"n\":5}', 'application/octet-stream',
		        '\\x00ff0a41'::bytea)"
	run_mqtx 0 relay
	stderr_has "relayed 1, failed 0, dead 0"
	backend_consume 1 >"$BATS_TEST_TMPDIR/got"
	run jq -r '[.key, .rk, .b64, .headers.tenant, .headers.n, .headers["x-mqtx-idempotency-key"], .content_type] | join("|")' "$BATS_TEST_TMPDIR/got"
	assert_output "order-1-created|order.created|AP8KQQ==|acme|5|order-1-created|application/octet-stream"
	[[ $(jq -r '.id' "$BATS_TEST_TMPDIR/got") == "$(psql_test "SELECT id FROM mqtx_outbox")" ]]
	if [[ $(backend_name) == amqp ]]; then
		[[ $(jq -r '.delivery_mode' "$BATS_TEST_TMPDIR/got") == 2 ]]
	fi
	run psql_test "SELECT status, attempts, sent_at IS NOT NULL FROM mqtx_outbox"
	assert_output "sent|1|t"
}

@test "relay: a row without a key gets one derived from its id" {
	insert_rows 1
	run_mqtx 0 relay
	id=$(psql_test "SELECT id FROM mqtx_outbox")
	backend_consume 1 >"$BATS_TEST_TMPDIR/got"
	run jq -r .key "$BATS_TEST_TMPDIR/got"
	assert_output "mqtx:$(psql_test 'SELECT current_database()'):$T_SCHEMA.mqtx_outbox:$id"
	run psql_test "SELECT idempotency_key FROM mqtx_outbox"
	assert_output "mqtx:$(psql_test 'SELECT current_database()'):$T_SCHEMA.mqtx_outbox:$id"
}

@test "relay: 10,000 rows from concurrent writers over 50 ordering keys and 3 relays at once: all delivered, per-key order kept" {
	# Writers follow the documented rule: lock the business row, then insert.
	psql_test "CREATE TABLE biz(k text PRIMARY KEY); INSERT INTO biz SELECT 'k' || g FROM generate_series(0, 49) g" \
		"CREATE PROCEDURE writer(txs int, per int) LANGUAGE plpgsql AS \$\$
		DECLARE ks text[];
		BEGIN
			FOR t IN 1..txs LOOP
				SELECT array_agg(k ORDER BY k) INTO ks FROM (SELECT k FROM biz ORDER BY random() LIMIT 5) s;
				PERFORM 1 FROM biz WHERE k = ANY(ks) ORDER BY k FOR UPDATE;
				INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
				SELECT '$T_DEST', 'rk.' || (g % 7), ks[1 + g % 5], convert_to(json_build_object('k', ks[1 + g % 5], 'g', g)::text, 'UTF8')
				FROM generate_series(1, per) g;
				COMMIT;
			END LOOP;
		END \$\$"
	local pids=() i
	for i in 1 2 3; do
		"$MQTX" relay --loop --batch 300 --poll-interval 200ms -q 3>&- &
		pids+=($!)
	done
	local writers=()
	for i in 1 2 3 4; do
		psql "$MQTX_TEST_DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -c "SET search_path = \"$T_SCHEMA\"" -c "CALL writer(50, 50)" 3>&- &
		writers+=($!)
	done
	for i in "${writers[@]}"; do wait "$i"; done
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 10000 ]]
	wait_sent 90 == 10000
	for i in "${pids[@]}"; do kill -TERM "$i"; done
	for i in "${pids[@]}"; do wait "$i" || fail "a relay exited with status $?"; done

	backend_consume 10000 >"$BATS_TEST_TMPDIR/got"
	[[ $(jq -r .id "$BATS_TEST_TMPDIR/got" | sort -u | wc -l) == 10000 ]]
	# per ordering key, ids must arrive in increasing order (duplicates allowed)
	psql_test "SELECT id, ordering_key FROM mqtx_outbox" | tr '|' ' ' >"$BATS_TEST_TMPDIR/keys"
	jq -r '.id' "$BATS_TEST_TMPDIR/got" >"$BATS_TEST_TMPDIR/order"
	run awk 'NR == FNR { key[$1] = $2; next }
		{ k = key[$1]; if ($1 < last[k]) { print "key " k ": id " $1 " after " last[k]; bad = 1 } if ($1 > last[k]) last[k] = $1 }
		END { exit bad }' "$BATS_TEST_TMPDIR/keys" "$BATS_TEST_TMPDIR/order"
	assert_success
	# all three ran (each records a heartbeat when it connects); how the work
	# was shared depends on timing, so only the total is checked
	run psql_test "SELECT count(DISTINCT relay_id), sum(relayed) >= 10000 FROM mqtx_relays"
	assert_output "3|t"
}

@test "relay: an unroutable row is retried, then dead; the other rows are relayed" {
	skip_unless_can returns "no unroutable messages (a subject no stream captures is a missing destination)"
	"$AMQP_TOOL" declare-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.noq" --type direct
	insert_rows 3
	insert_rows 1 "$T_EXCHANGE.noq"
	insert_rows 3
	MQTX_RELAY_MAX_ATTEMPTS=3 MQTX_RELAY_BACKOFF_INITIAL=0 MQTX_RELAY_BACKOFF_MAX=0 run_mqtx 1 relay
	stderr_has "relayed 6, failed 2, dead 1"
	run psql_test "SELECT status, attempts, last_error LIKE 'unroutable%' FROM mqtx_outbox WHERE destination = '$T_EXCHANGE.noq'"
	assert_output "dead|3|t"
	[[ $(count_status sent) == 6 ]]
	[[ $(backend_consume 6 | wc -l) == 6 ]]
	"$AMQP_TOOL" delete-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.noq"
}

# bats test_tags=valgrind
@test "relay: a row whose destination does not exist fails alone; every other row is relayed" {
	insert_rows 5
	insert_rows 1 "$(missing_dest)"
	insert_rows 5
	MQTX_RELAY_BACKOFF_INITIAL=5m run_mqtx 1 relay
	run psql_test "SELECT status, attempts, available_at > now() + interval '3 minutes' FROM mqtx_outbox WHERE destination LIKE 'no-such%'"
	assert_output "pending|1|t"
	run psql_test "SELECT last_error FROM mqtx_outbox WHERE destination LIKE 'no-such%'"
	assert_output --regexp "no exchange|does not exist|no JetStream stream captures"
	[[ $(count_status sent) == 10 ]]
	backend_consume 10 >"$BATS_TEST_TMPDIR/got"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/got") == 10 ]]
	# a real Kafka broker (auto.create.topics.enable=false) did not create it
	if [[ $(backend_name) == kafka ]] && ! kafka_on_mock; then
		! kafka_topic_exists "no-such-destination-$T_SCHEMA" || fail "the relay created the missing topic"
	fi
}

# bats test_tags=valgrind
@test "relay: a failing head row holds back later rows of its ordering key, not other keys" {
	insert_rows 1 "$(missing_dest)" "'K'"
	insert_rows 2 "$T_DEST" "'K'"
	insert_rows 2 "$T_DEST" "'L'"
	export MQTX_RELAY_BACKOFF_INITIAL=5m # the head must stay held back while we look
	run_mqtx 1 relay
	run psql_test "SELECT ordering_key, status, attempts FROM mqtx_outbox ORDER BY id"
	assert_output "K|pending|1
K|pending|0
K|pending|0
L|sent|1
L|sent|1"
	run_mqtx 0 relay --dry-run
	refute_output --partial $'\tK\t'
}

@test "relay: broker unreachable at start: clear error, exit 5, rows untouched" {
	insert_rows 3
	if [[ $(backend_name) == amqp ]]; then
		export MQTX_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2f"
	else
		export MQTX_BROKER_URL="kafka://127.0.0.1:1"
		export MQTX_BROKER_CONNECT_TIMEOUT=2s
	fi
	run_mqtx 5 relay
	stderr_has "cannot connect to"
	stderr_lacks "guest:guest"
	run psql_test "SELECT status, attempts FROM mqtx_outbox"
	assert_output "pending|0
pending|0
pending|0"
}

@test "relay: --quiet prints nothing for a clean run, but every failed row and a failure summary (exit 1)" {
	insert_rows 2
	run_mqtx 0 relay --quiet
	[[ -z $stderr ]] || fail "a clean --quiet run printed: $stderr"
	insert_rows 2
	insert_rows 1 "$(missing_dest)"
	MQTX_RELAY_BACKOFF_INITIAL=5m run_mqtx 1 relay --quiet
	local bad
	bad=$(psql_test "SELECT id FROM mqtx_outbox WHERE destination LIKE 'no-such%'")
	stderr_has "mqtx: warning: row $bad (key '"
	stderr_has "mqtx: warning: relayed 2, failed 1, dead 0 in "
	stderr_lacks "mqtx: relayed" # no info line
}

@test "relay: no summary before a fatal error at start (no broker URL, broker or database down)" {
	insert_rows 1
	MQTX_BROKER_URL= run_mqtx 3 relay
	stderr_has "no broker URL"
	stderr_lacks "relayed"
	MQTX_DATABASE_URL="postgresql://mqtx@127.0.0.1:1/x" run_mqtx 4 relay
	stderr_lacks "relayed"
	local down="amqp://guest:guest@127.0.0.1:1/%2f"
	[[ $(backend_name) == amqp ]] || down="kafka://127.0.0.1:1"
	MQTX_BROKER_URL=$down MQTX_BROKER_CONNECT_TIMEOUT=2s run_mqtx 5 relay
	stderr_has "cannot connect to"
	stderr_lacks "relayed"
	MQTX_DATABASE_URL="postgresql://mqtx@127.0.0.1:1/x" run_mqtx 4 relay --dry-run
	stderr_lacks "would be sent"
	# --loop stopped while the broker was never reachable: says so
	MQTX_BROKER_URL=$down MQTX_BROKER_CONNECT_TIMEOUT=2s mqtx_bg relay --loop
	wait_until 30 grep -q "retrying" "$MQTX_BG_ERR"
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "nothing was relayed: stopped before the first claim" "$MQTX_BG_ERR" || fail "$(cat "$MQTX_BG_ERR")"
	! grep -q "relayed 0" "$MQTX_BG_ERR" || fail "$(cat "$MQTX_BG_ERR")"
	# a run that did relay still says what it did
	run_mqtx 0 relay
	stderr_has "relayed 1, failed 0, dead 0"
}

@test "relay: database unreachable: clear error, exit 4" {
	MQTX_DATABASE_URL="postgresql://mqtx:topsecret@127.0.0.1:1/x" run_mqtx 4 relay
	stderr_has "cannot connect to database 'postgresql://mqtx:***@127.0.0.1:1/x'"
	stderr_lacks topsecret
}

@test "relay: broker stopped mid-run: nothing is marked sent that the broker did not confirm; --loop recovers" {
	skip_unless_local_broker
	backend_use_fault_injection
	insert_rows 20000
	mqtx_bg relay --loop --batch 200 --poll-interval 200ms
	wait_sent 30 '>' 500
	backend_stop
	sleep 2
	backend_start
	wait_sent 90 == 20000
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	backend_consume >"$BATS_TEST_TMPDIR/got" # all of it: rows in flight at the stop may come twice
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
	[[ $(jq -r .id "$BATS_TEST_TMPDIR/got" | sort -u | wc -l) == 20000 ]]
}

@test "relay: SIGTERM mid-run: exit 0, confirmed rows recorded, the rest relayed by the next run" {
	insert_rows 20000
	mqtx_bg relay --batch 100
	wait_sent 30 '>' 300
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "relayed" "$MQTX_BG_ERR"
	sent=$(count_status sent)
	((sent < 20000)) || skip "the relay finished before the signal"
	run psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'pending' AND attempts > 0"
	assert_output 0
	run_mqtx 0 relay
	[[ $(count_status sent) == 20000 ]]
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
}

# bats test_tags=valgrind
@test "relay: --dry-run lists what would be sent and changes nothing" {
	insert_rows 3 "$T_DEST" "'K'"
	run_mqtx 0 relay --dry-run
	assert_line --index 0 $'id\tkey\tdestination\trouting_key\tordering_key\tbytes'
	[[ ${#lines[@]} == 4 ]]
	stderr_has "would be sent"
	[[ $(count_status pending) == 3 ]]
	run psql_test "SELECT count(*) FROM mqtx_relays"
	assert_output 0
}

@test "relay: --dry-run keeps a row on one line when a field holds a tab or a newline" {
	insert_rows 1 "" "E'o\\tk\\nx'"
	run_mqtx 0 relay --dry-run
	[[ ${#lines[@]} == 2 ]]
	IFS=$'\t' read -r -a f <<<"${lines[1]}"
	[[ ${#f[@]} == 6 && ${f[4]} == "o k x" ]]
}

@test "relay: --loop relays rows inserted later, woken by NOTIFY" {
	mqtx_bg relay --loop --poll-interval 10m
	wait_relay_listening 30
	insert_rows 5
	wait_sent 10 == 5
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]]
	run psql_test "SELECT stopped_at IS NOT NULL, relayed FROM mqtx_relays"
	assert_output "t|5"
}

@test "relay: relays and redeliver with another relay.ordering_buckets than a running relay refuse (exit 3)" {
	MQTX_RELAY_ORDERING_BUCKETS=64 mqtx_bg relay --loop --poll-interval 10m
	wait_until 10 bash -c "[[ \$(psql -qAtX '$MQTX_TEST_DATABASE_URL' -c 'SELECT count(*) FROM \"$T_SCHEMA\".mqtx_relays') == 1 ]]"
	insert_rows 3 "$T_DEST" "'k'"
	MQTX_RELAY_ORDERING_BUCKETS=128 run_mqtx 3 relay
	stderr_has "relay.ordering_buckets is 128 here but 64 in a running relay or redeliver"
	wait_sent 10 == 3
	MQTX_RELAY_ORDERING_BUCKETS=128 run_mqtx 3 redeliver --status sent --yes
	stderr_has "relay.ordering_buckets is 128 here but 64"
	# the same number is fine, and a stopped relay no longer counts
	MQTX_RELAY_ORDERING_BUCKETS=64 run_mqtx 0 relay
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]]
	MQTX_RELAY_ORDERING_BUCKETS=128 run_mqtx 0 relay
}

# bats test_tags=valgrind
@test "relay: --max-messages and --batch bound a run" {
	insert_rows 25
	run_mqtx 0 relay --max-messages 10 --batch 4
	[[ $(count_status sent) == 10 ]]
	run_mqtx 0 relay
	[[ $(count_status sent) == 25 ]]
}

# bats test_tags=valgrind
@test "relay: rows with NULL headers are relayed without extra headers" {
	psql_test "INSERT INTO mqtx_outbox(destination, payload, headers) VALUES ('$T_DEST', '', NULL)"
	run_mqtx 0 relay
	backend_consume 1 >"$BATS_TEST_TMPDIR/got"
	[[ $(jq -r '.b64' "$BATS_TEST_TMPDIR/got") == "" ]]
	[[ $(jq -r '.headers | keys | map(select(startswith("x-mqtx") or . == "Nats-Msg-Id" | not)) | length' "$BATS_TEST_TMPDIR/got") == 0 ]] ||
		[[ $(backend_name) == kafka ]]
}

@test "relay: a client property map (broker.kafka) on a broker that takes none is a warning, and relaying goes on" {
	backend_can properties && skip "this broker takes a client property map"
	insert_rows 1
	printf 'broker:\n  kafka:\n    linger.ms: "5"\n' >"$BATS_TEST_TMPDIR/mqtx.yaml"
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" relay
	stderr_has "broker.kafka is set, but the $(backend_name) broker takes no client property map: its 1 setting(s) are ignored"
	[[ $(count_status sent) == 1 ]]
}

@test "relay: an existing table adopted through a column mapping (Debezium layout, jsonb payload, no key column)" {
	psql_test "CREATE TABLE events(event_id bigserial PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text, type text, payload jsonb NOT NULL)"
	cat >"$BATS_TEST_TMPDIR/mqtx.yaml" <<-YAML
	outbox:
	  table: events
	  payload_type: jsonb
	  columns:
	    id: event_id
	    destination: aggregatetype
	    ordering_key: aggregateid
	    routing_key: type
	    idempotency_key: ""
	    headers: ""
	    content_type: ""
	YAML
	run_mqtx 3 --config "$BATS_TEST_TMPDIR/mqtx.yaml" init
	stderr_has "lacks what the relay needs"
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" init --print
	assert_output --partial 'ADD COLUMN IF NOT EXISTS "status"'
	printf 'SET search_path = "%s";\n%s\n' "$T_SCHEMA" "$output" | psql "$MQTX_TEST_DATABASE_URL" -qX -v ON_ERROR_STOP=1
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" init
	psql_test "INSERT INTO events(aggregatetype, aggregateid, type, payload) VALUES ('$T_DEST', 'order-7', 'OrderCreated', '{\"total\": 12}')"
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" relay
	backend_consume 1 >"$BATS_TEST_TMPDIR/got"
	run jq -r '[.rk, .body, .content_type, .key] | join("|")' "$BATS_TEST_TMPDIR/got"
	assert_output --regexp '^OrderCreated\|\{"total": 12\}\|application/json\|mqtx:[a-z_]+:t_[a-z0-9_]+\.events:1$'
}

# bats test_tags=valgrind
@test "relay: table and schema names with quotes, dots, spaces and SQL are quoted safely" {
	export MQTX_OUTBOX_TABLE='we"ird.ta ble; DROP TABLE x; --'
	run_mqtx 0 init
	psql_test "INSERT INTO \"we\"\"ird.ta ble; DROP TABLE x; --\"(destination, payload) VALUES ('$T_DEST', 'x')"
	run_mqtx 0 relay
	run psql_test "SELECT status FROM \"we\"\"ird.ta ble; DROP TABLE x; --\""
	assert_output sent
	[[ $(backend_consume 1 | wc -l) == 1 ]]
}

@test "relay: a missing outbox table is a clear error naming it" {
	MQTX_OUTBOX_TABLE=nope run_mqtx 4 relay
	stderr_has "outbox table \"$T_SCHEMA\".\"nope\" does not exist (run 'mqtx init'"
}

@test "relay: --transactional publishes each batch in one Kafka transaction with a leased transactional.id" {
	insert_rows 30 "$T_DEST" "'k' || (g % 3)"
	if ! backend_can fenced_transactions; then
		run_mqtx 3 relay --transactional
		stderr_has "(--transactional) needs"
		[[ $(count_status pending) == 30 ]]
		return
	fi
	run_mqtx 0 relay --transactional --batch 7 -v
	stderr_has "transactional.id 'mqtx:"
	stderr_has ":$T_SCHEMA.mqtx_outbox:relay-0'"
	[[ $(count_status sent) == 30 ]]
	backend_consume 30 >"$BATS_TEST_TMPDIR/got"
	[[ $(jq -r .id "$BATS_TEST_TMPDIR/got" | sort -u | wc -l) == 30 ]]
}

relay_sessions_at_least() {
	(($(psql_test "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mqtx relay'") >= $1))
}

terminated_and_logged() {
	psql_test "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'mqtx relay'" >/dev/null
	sleep 0.5
	grep -q '"msg":"database: FATAL: *terminating connection due to administrator command' "$MQTX_BG_ERR"
}

# every line of FILE is one JSON object with a level and a message
assert_json_lines() {
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		jq -e 'type == "object" and (.level | type) == "string" and (.msg | type) == "string"' <<<"$line" >/dev/null 2>&1 ||
			fail "line $n of stderr is not a JSON log object: $line" || return 1
	done <"$1"
}

@test "relay: --log-format json: every stderr line is JSON, libpq's notices too, when the database ends the relay's connections" {
	insert_rows 3
	mqtx_bg relay --loop --poll-interval 200ms --log-format json
	wait_sent 30 == 3
	wait_until 20 relay_sessions_at_least 2
	# ended again until libpq's notice of it is logged: a session counted
	# above may not be this relay's yet (relay_sessions_at_least counts the
	# server's), and one ended during a query is an error, not a notice
	wait_until 30 terminated_and_logged
	insert_rows 2
	wait_sent 60 == 5
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	assert_json_lines "$MQTX_BG_ERR"
	grep -q '"msg":"database: FATAL: *terminating connection due to administrator command' "$MQTX_BG_ERR" ||
		fail "no notice line: $(cat "$MQTX_BG_ERR")"
}

@test "relay: --log-format json: every stderr line is JSON while the broker is down and back (with -v: librdkafka's log too)" {
	skip_unless_local_broker
	backend_use_fault_injection
	insert_rows 3
	mqtx_bg relay --loop --poll-interval 200ms --log-format json -v
	wait_sent 30 == 3
	backend_stop
	insert_rows 2
	wait_until 30 grep -q '"level":"warning"' "$MQTX_BG_ERR"
	backend_start
	wait_sent 90 == 5
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	assert_json_lines "$MQTX_BG_ERR"
	if [[ $(backend_name) == kafka ]]; then
		grep -q '"msg":"kafka: ' "$MQTX_BG_ERR" || fail "no librdkafka log line: $(cat "$MQTX_BG_ERR")"
	fi
}

# ---- issue 13: rows the broker can never carry, returns, channel errors

# insert_row DEST RK OKEY_EXPR HEADERS_EXPR: one row, prints its id
insert_row() {
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, headers, payload)
		VALUES ('$1', '$2', $3, $4, convert_to('{\"n\": 1}', 'UTF8')) RETURNING id"
}

@test "relay: a row over a protocol limit fails alone before publishing and is dead at once; the others go out once, in key order" {
	local bad_dest=$T_DEST bad_rk=test.rk want
	if [[ $(backend_name) == amqp ]]; then
		bad_rk=$(printf 'r%.0s' {1..300})
		want='routing_key is 300 bytes; AMQP allows at most 255'
	elif [[ $(backend_name) == nats ]]; then
		bad_rk='two..dots'
		want="routing_key (appended to the subject) 'two..dots' has an empty subject token at byte 4 (a NATS subject is tokens separated by '.')"
	else
		bad_dest='bad topic!'
		want="destination (the topic) 'bad topic!' has byte 0x20 at 3; Kafka topic names allow only [a-zA-Z0-9._-]"
	fi
	printf 'broker:\n  kafka:\n    message.max.bytes: "100000"\n' >"$BATS_TEST_TMPDIR/mqtx.yaml"
	local a1 bad a2 big g1 g2
	a1=$(insert_row "$T_DEST" test.rk "'A'" NULL)
	bad=$(insert_row "$bad_dest" "$bad_rk" "'A'" NULL)
	a2=$(insert_row "$T_DEST" test.rk "'A'" NULL)
	big=$(insert_row "$T_DEST" test.rk NULL "json_build_object('big', repeat('x', 200000))")
	g1=$(insert_row "$T_DEST" test.rk NULL NULL)
	g2=$(insert_row "$T_DEST" test.rk NULL NULL)
	run_mqtx 1 --config "$BATS_TEST_TMPDIR/mqtx.yaml" relay
	stderr_has "can never be sent as they are and are now dead"
	run psql_test "SELECT id, status, attempts FROM mqtx_outbox ORDER BY id"
	assert_output "$a1|sent|1
$bad|dead|1
$a2|sent|1
$big|dead|1
$g1|sent|1
$g2|sent|1"
	run psql_test "SELECT last_error FROM mqtx_outbox WHERE id = $bad"
	assert_output "$want"
	run psql_test "SELECT last_error FROM mqtx_outbox WHERE id = $big"
	assert_output --regexp 'one frame, at most 131052 bytes here|message.max.bytes is 100000|JetStream stores at most 65535 bytes of headers'
	backend_consume >"$BATS_TEST_TMPDIR/got"
	run jq -r .id "$BATS_TEST_TMPDIR/got"
	[[ $(sort -n <<<"$output" | tr '\n' ' ') == "$a1 $a2 $g1 $g2 " ]] || fail "delivered: $output"
	[[ $(grep -n -x -e "$a1" -e "$a2" <<<"$output" | cut -d: -f2 | tr '\n' ' ') == "$a1 $a2 " ]] || fail "key A out of order: $output"
	run_mqtx 2 check --explain "$bad"
	assert_output --partial "$want"
	assert_output --partial "mqtx redeliver --status dead --id $bad --requeue --yes"
}

@test "relay: --loop does not spin on a row over a protocol limit and goes on with later rows" {
	mqtx_bg relay --loop --poll-interval 10m
	insert_row "$T_DEST" test.rk "'A'" "json_build_object('big', repeat('x', 2000000))" >/dev/null
	insert_rows 3 "$T_DEST" "'A'"
	wait_sent 20 == 3
	insert_rows 2
	wait_sent 20 == 5
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]]
	run psql_test "SELECT status, attempts FROM mqtx_outbox WHERE status <> 'sent'"
	assert_output "dead|1"
	[[ $(backend_consume | wc -l) == 5 ]]
}

@test "relay: outbox headers cannot spoof mqtx's own headers: such a row is dead at once, the others go out" {
	local ok1 ok2 id1 id2 id3
	ok1=$(insert_row "$T_DEST" test.rk NULL "'{\"a\": \"1\"}'")
	id1=$(insert_row "$T_DEST" test.rk NULL "'{\"x-mqtx-outbox-id\": \"999\"}'")
	id2=$(insert_row "$T_DEST" test.rk NULL "'{\"x-mqtx-idempotency-key\": \"forged\"}'")
	id3=$(insert_row "$T_DEST" test.rk NULL "'{\"x-mqtx-redelivery-count\": \"7\"}'")
	ok2=$(insert_row "$T_DEST" test.rk NULL NULL)
	run_mqtx 1 relay
	run psql_test "SELECT id, status, attempts, last_error FROM mqtx_outbox WHERE status = 'dead' ORDER BY id"
	assert_output "$id1|dead|1|header 'x-mqtx-outbox-id': names starting with 'x-mqtx-' are reserved for mqtx's own headers
$id2|dead|1|header 'x-mqtx-idempotency-key': names starting with 'x-mqtx-' are reserved for mqtx's own headers
$id3|dead|1|header 'x-mqtx-redelivery-count': names starting with 'x-mqtx-' are reserved for mqtx's own headers"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	run jq -r '[.id, .headers["x-mqtx-outbox-id"], .headers["x-mqtx-redelivery-count"] // "-"] | join(" ")' "$BATS_TEST_TMPDIR/got"
	[[ $(sort -n <<<"$output" | tr '\n' ',') == "$ok1 $ok1 -,$ok2 $ok2 -," ]] || fail "delivered: $output"
}

@test "relay: a return is matched to its row, not to another row with the same key (adopted table, key not unique)" {
	skip_unless_can returns "no returns (acknowledgements carry a per-message reply subject)"
	"$AMQP_TOOL" declare-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.noq" --type direct
	psql_test "CREATE TABLE events(event_id bigserial PRIMARY KEY, dest text NOT NULL, rk text, msg_key text NOT NULL, payload jsonb NOT NULL)"
	cat >"$BATS_TEST_TMPDIR/mqtx.yaml" <<-YAML
	outbox:
	  table: events
	  payload_type: jsonb
	  columns:
	    id: event_id
	    destination: dest
	    routing_key: rk
	    idempotency_key: msg_key
	    ordering_key: ""
	    headers: ""
	    content_type: ""
	YAML
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" init --print
	printf 'SET search_path = "%s";\n%s\n' "$T_SCHEMA" "$output" | psql "$MQTX_TEST_DATABASE_URL" -qX -v ON_ERROR_STOP=1
	psql_test "ALTER SEQUENCE events_event_id_seq RESTART WITH 1000000000000000001" # 19 digits, like snowflake ids
	local round a b
	for round in 1 2 3 4 5; do
		a=$(psql_test "INSERT INTO events(dest, rk, msg_key, payload) VALUES ('$T_DEST', 'test.rk', 'dup-$round', '{}') RETURNING event_id")
		b=$(psql_test "INSERT INTO events(dest, rk, msg_key, payload) VALUES ('$T_EXCHANGE.noq', 'x', 'dup-$round', '{}') RETURNING event_id")
		MQTX_RELAY_BACKOFF_INITIAL=5m run_mqtx 1 --config "$BATS_TEST_TMPDIR/mqtx.yaml" relay
		run psql_test "SELECT event_id, status, attempts, coalesce(last_error, '') LIKE 'unroutable%' FROM events WHERE msg_key = 'dup-$round' ORDER BY event_id"
		assert_output "$a|sent|1|f
$b|pending|1|t"
	done
	run drain_queue --timeout 3
	[[ $(jq -r '.headers["x-mqtx-outbox-id"]' <<<"$output" | tr '\n' ' ') == "$(psql_test "SELECT event_id FROM events WHERE status = 'sent' ORDER BY event_id" | tr '\n' ' ')" ]] ||
		fail "delivered: $output"
	"$AMQP_TOOL" delete-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.noq"
}

@test "relay: a row to a missing exchange closes no channel: every routable row of the batch arrives exactly once" {
	skip_on_backend kafka "AMQP channels"
	insert_rows 200
	insert_rows 1 "$(missing_dest)"
	insert_rows 200
	MQTX_RELAY_BACKOFF_INITIAL=5m run_mqtx 1 relay --batch 1000
	if [[ $(backend_name) == amqp ]]; then run drain_queue --timeout 3; else run backend_consume; fi
	[[ $(wc -l <<<"$output") == 400 ]] || fail "$(wc -l <<<"$output") messages arrived for 400 rows"
	[[ $(jq -r '.headers["x-mqtx-outbox-id"]' <<<"$output" | sort -u | wc -l) == 400 ]]
	[[ $(count_status sent) == 400 ]]
	run psql_test "SELECT status, attempts FROM mqtx_outbox WHERE destination LIKE 'no-such%'"
	assert_output "pending|1"
	run psql_test "SELECT last_error FROM mqtx_outbox WHERE destination LIKE 'no-such%'"
	assert_output --partial "checked before publishing"
}

@test "relay: when a channel closes anyway, its unconfirmed messages are not published again in the batch (maybe delivered, retried later)" {
	[[ $(backend_name) == amqp ]] || skip "AMQP channels"
	local gone=$T_EXCHANGE.gone
	"$AMQP_TOOL" declare-exchange "$MQTX_TEST_AMQP_URL" "$gone" --type topic
	"$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$T_QUEUE" --bind "$gone:#"
	MQTX_RELAY_BACKOFF_INITIAL=5m mqtx_bg relay --loop --poll-interval 10m --batch 1000
	insert_rows 1 "$gone"
	wait_sent 20 == 1 # the relay's connection now knows the exchange
	"$AMQP_TOOL" delete-exchange "$MQTX_TEST_AMQP_URL" "$gone"
	psql_test "BEGIN;
		INSERT INTO mqtx_outbox(destination, routing_key, payload) SELECT '$T_DEST', 'test.rk', '\\x7b7d' FROM generate_series(1, 300);
		INSERT INTO mqtx_outbox(destination, routing_key, payload) VALUES ('$gone', 'test.rk', '\\x7b7d');
		INSERT INTO mqtx_outbox(destination, routing_key, payload) SELECT '$T_DEST', 'test.rk', '\\x7b7d' FROM generate_series(1, 300);
		COMMIT"
	wait_until 20 eval '[[ $(psql_test "SELECT attempts FROM mqtx_outbox WHERE destination = '"'$gone'"' AND status = '"'pending'"'") == 1 ]]'
	wait_until 20 eval '[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = '"'pending'"' AND attempts = 0") == 0 ]]'
	mqtx_bg_stop TERM 10
	run drain_queue --timeout 3
	local ids
	ids=$(jq -r '.headers["x-mqtx-outbox-id"]' <<<"$output" | sort -n)
	[[ -z $(uniq -d <<<"$ids") ]] || fail "delivered twice: $(uniq -d <<<"$ids" | head -5 | tr '\n' ' ')"
	run psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'pending' AND destination <> '$gone' AND last_error NOT LIKE 'maybe delivered: the channel closed%'"
	assert_output 0
	run psql_test "SELECT last_error FROM mqtx_outbox WHERE destination = '$gone' AND status = 'pending'"
	assert_output --regexp "^channel error 404: NOT_FOUND"
}
