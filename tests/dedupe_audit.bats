#!/usr/bin/env bats
# mqtx dedupe-audit against real servers: every source kind (JSONL file and
# stdin, Kafka topic, RabbitMQ stream, RabbitMQ queue consumed with
# --destructive, a consumer's inbox table) with planted duplicates, losses,
# strangers and reorderings, checked against the exact report; and a relay
# crash between the broker's confirm and the commit, audited.

load test_helper

setup() {
	mqtx_test_setup
	run_mqtx 0 init
	T_STREAM="$T_QUEUE.stream"
	T_OTHER="${T_SCHEMA}_other"
	export T_STREAM T_OTHER
	KAFKA_TOOL=${KAFKA_TOOL:-$BATS_TEST_DIRNAME/helpers/kafka_tool}
}

teardown() {
	"$AMQP_TOOL" delete-queue "$MQTX_TEST_AMQP_URL" "$T_STREAM" 2>/dev/null || true
	psql_test "DROP SCHEMA IF EXISTS \"$T_OTHER\" CASCADE" >/dev/null 2>&1 || true
	mqtx_test_teardown
}

# ---------------------------------------------------------------- helpers

# rows DEST N [OKEY_SQL]: N pending rows with keys p-1..p-N
rows() {
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, routing_key, ordering_key, payload)
		SELECT 'p-' || g, '$1', 'rk', ${3:-NULL}, '\\x00'::bytea FROM generate_series(1, $2) g"
}

id_of() { psql_test "SELECT id FROM mqtx_outbox WHERE idempotency_key = '$1'"; }

# A flow with one fault of each kind, made by the relay itself on DEST:
#   p-1..p-6, ordering key acct-1 for p-1..p-3
#   dup-1     published twice (set back to pending and relayed again)
#   lost-1    marked sent, never published
#   late-1    the first row of ordering key acct-9, published after its successor late-2
plant_faults() {
	local dest=$1
	rows "$dest" 6 "CASE WHEN g <= 3 THEN 'acct-1' END"
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, routing_key, ordering_key, payload, status) VALUES
		('late-1', '$dest', 'rk', 'acct-9', '\\x01', 'dead'),
		('late-2', '$dest', 'rk', 'acct-9', '\\x02', 'pending'),
		('dup-1', '$dest', 'rk', NULL, '\\x03', 'pending'),
		('late-3', '$dest', 'rk', 'acct-9', '\\x04', 'pending')"
	run_mqtx 0 relay
	psql_test "UPDATE mqtx_outbox SET status = 'pending' WHERE idempotency_key IN ('late-1', 'dup-1')"
	run_mqtx 0 relay
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, routing_key, payload, status, attempts, sent_at)
		VALUES ('lost-1', '$dest', 'rk', '\\x05', 'sent', 1, now() - interval '1 second')"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") == 11 ]]
}

# The report of a planted flow, as "field=value" lines to compare.
summary() {
	jq -r '"deliveries=\(.deliveries)", "dup_keys=\(.duplicates.keys)", "dup=\([.duplicates.details[].key] | join(","))",
		"dup_unexplained=\(.duplicates.unexplained_keys)",
		"missing=\(.missing.count)", "missing_keys=\([.missing.details[].key] | join(","))",
		"strangers=\(.strangers.keys)/\(.strangers.deliveries)", "stranger_keys=\([.strangers.details[].key] | join(","))",
		"late=\(.order.out_of_order)", "late_keys=\([.order.details[] | "\(.key)>\(.after_id)"] | join(","))",
		"gaps=\(.gaps.count)", "exit=\(.exit_status)"' <<<"$1"
}

expected_planted() {
	local late2
	late2=$(id_of late-2)
	cat <<EOF
deliveries=$1
dup_keys=1
dup=dup-1
dup_unexplained=1
missing=1
missing_keys=lost-1
strangers=$2
stranger_keys=$3
late=1
late_keys=late-1>$late2
gaps=0
exit=9
EOF
}

kafka_setup() {
	[[ -n ${MQTX_TEST_KAFKA_BROKERS:-} ]] || skip "no Kafka cluster (MQTX_TEST_KAFKA_BROKERS unset)"
	T_TOPIC="mqtx.test.${T_SCHEMA}"
	"$KAFKA_TOOL" create-topic "$MQTX_TEST_KAFKA_BROKERS" "$T_TOPIC" 3 >/dev/null || fail "cannot create topic $T_TOPIC"
	export MQTX_BROKER_URL="kafka://$MQTX_TEST_KAFKA_BROKERS" T_TOPIC
}

# A second outbox (another schema) relaying ROWS rows to DEST: its keys and
# ids mean nothing to ours, the ids even overlap.
other_outbox() {
	psql_test "CREATE SCHEMA \"$T_OTHER\""
	MQTX_OUTBOX_SCHEMA=$T_OTHER run_mqtx 0 init
	psql_test "INSERT INTO \"$T_OTHER\".mqtx_outbox(destination, routing_key, payload)
		SELECT '$1', 'rk', '\\x00'::bytea FROM generate_series(1, $2)"
	MQTX_OUTBOX_SCHEMA=$T_OTHER run_mqtx 0 relay
}

# JSONL lines for the sent rows of our outbox, in id order (optionally without ids).
jsonl_of_outbox() {
	psql_test "SELECT json_build_object('key', idempotency_key, 'id', id)::text FROM mqtx_outbox WHERE status = 'sent' ORDER BY id"
}

# ------------------------------------------------------------------ JSONL

@test "dedupe-audit: JSONL file: a planted duplicate, loss, stranger, reordering and gap are reported exactly" {
	rows orders 6 "'acct-' || (g % 2)"
	psql_test "UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '1 minute'"
	local f=$BATS_TEST_TMPDIR/seen.jsonl
	# p-1..p-6 are ids 1..6; acct-1: 1,3,5  acct-0: 2,4,6
	cat >"$f" <<'EOF'
{"key":"p-1","id":1,"ts":"2024-05-01T12:00:00Z"}
{"key":"p-2","ts":1714564801000}

{"key":"p-2","ordering_key":"acct-0","redelivery_count":0}
{"key":"p-5"}
{"key":"p-3","extra":{"nested":[1,2,{"x":null}]}}
{"key":"not-ours","id":3}
{"key":"p-6"}
EOF
	run_mqtx 9 dedupe-audit --source "$f" --format json
	local json=$output
	run summary "$json"
	assert_output "$(
		cat <<EOF
deliveries=7
dup_keys=1
dup=p-2
dup_unexplained=1
missing=1
missing_keys=p-4
strangers=1/1
stranger_keys=not-ours
late=1
late_keys=p-3>5
gaps=1
exit=9
EOF
	)"
	# where each copy was seen: the file's line numbers and times
	[[ $(jq -c '.duplicates.details[0].where | map([.line, .ts])' <<<"$json") == '[[2,"2024-05-01T12:00:01.000Z"],[4,null]]' ]]
	[[ $(jq -c '.strangers.details[0].first.line' <<<"$json") == 7 ]]
	[[ $(jq -r '.gaps.details[0] | "\(.key) \(.between | join("-"))"' <<<"$json") == "p-4 2-6" ]]
	[[ $(jq -r '.order.details[0].at.line' <<<"$json") == 6 ]]
}

@test "dedupe-audit: stdin JSONL: exit 0 within tolerances, 1 for duplicates, 8 for losses, 9 for both" {
	rows orders 4
	psql_test "UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '1 minute'"
	printf '{"key":"p-1"}\n{"key":"p-2"}\n{"key":"p-3"}\n{"key":"p-4"}\n' >"$BATS_TEST_TMPDIR/clean"
	printf '{"key":"p-1"}\n{"key":"p-1"}\n{"key":"p-2"}\n{"key":"p-3"}\n{"key":"p-4"}\n' >"$BATS_TEST_TMPDIR/dup"
	printf '{"key":"p-1"}\n{"key":"p-2"}\n{"key":"p-3"}\n' >"$BATS_TEST_TMPDIR/lost"
	printf '{"key":"p-1"}\n{"key":"p-1"}\n{"key":"p-2"}\n' >"$BATS_TEST_TMPDIR/both"
	run_mqtx 0 dedupe-audit --source - <"$BATS_TEST_TMPDIR/clean"
	assert_line --regexp '^  result +OK'
	run_mqtx 1 dedupe-audit --source - <"$BATS_TEST_TMPDIR/dup"
	assert_line --regexp '^  result +FAIL: 1 duplicated key > --max-duplicates 0 \(exit 1\)$'
	run_mqtx 0 dedupe-audit --source - --max-duplicates 1 <"$BATS_TEST_TMPDIR/dup"
	run_mqtx 8 dedupe-audit --source - <"$BATS_TEST_TMPDIR/lost"
	run_mqtx 0 dedupe-audit --source - --max-missing 1 <"$BATS_TEST_TMPDIR/lost"
	run_mqtx 9 dedupe-audit --source - <"$BATS_TEST_TMPDIR/both"
	MQTX_AUDIT_MAX_MISSING=2 run_mqtx 1 dedupe-audit --source - <"$BATS_TEST_TMPDIR/both"
}

@test "dedupe-audit: copies with their own redelivery counts are explained and within --max-duplicates" {
	rows orders 2
	psql_test "UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '1 minute'"
	printf '%s\n' '{"key":"p-1"}' '{"key":"p-1","redelivery_count":1}' '{"key":"p-1","redelivery_count":2}' \
		'{"key":"p-2","redelivery_count":1}' '{"key":"p-2","redelivery_count":1}' >"$BATS_TEST_TMPDIR/f"
	run_mqtx 1 dedupe-audit --source "$BATS_TEST_TMPDIR/f" --format json
	[[ $(jq -c '[.duplicates.keys, .duplicates.explained_keys, .duplicates.unexplained_keys, .duplicates.extra_deliveries, .duplicates.unexplained_extra_deliveries]' <<<"$output") == '[2,1,1,3,1]' ]]
	[[ $(jq -r '.duplicates.details | map("\(.key):\(.explained)") | join(" ")' <<<"$output") == "p-2:false p-1:true" ]]
	printf '%s\n' '{"key":"p-1"}' '{"key":"p-1","redelivery_count":1}' '{"key":"p-2"}' >"$BATS_TEST_TMPDIR/g"
	run_mqtx 0 dedupe-audit --source "$BATS_TEST_TMPDIR/g"
	assert_line --regexp '^  duplicates +1 key, 1 extra copy: 0 not explained by redelivery, 1 explained$'
}

@test "dedupe-audit: a malformed JSONL line is exit 6, naming the file and the line" {
	rows orders 1
	local f=$BATS_TEST_TMPDIR/bad.jsonl
	printf '{"key":"p-1"}\n\n{"key": "p-1", "id": }\n' >"$f"
	run_mqtx 6 dedupe-audit --source "$f"
	stderr_has "$f:3: invalid JSON at byte 22: unexpected character"
	printf '{"key":"p-1"}\n{"id":1}\n' >"$f"
	run_mqtx 6 dedupe-audit --source "$f"
	stderr_has "$f:2: no \"key\" member"
	printf '{"key":7}\n' >"$f"
	run_mqtx 6 dedupe-audit --source - <"$f"
	stderr_has "stdin:1: \"key\" must be a non-empty string"
	printf '{"key":"a","id":"x1"}\n' >"$f"
	run_mqtx 6 dedupe-audit --source "$f"
	stderr_has "$f:1: \"id\" must be a positive whole number"
	printf '{"key":"a","ts":"yesterday"}\n' >"$f"
	run_mqtx 6 dedupe-audit --source "$f"
	stderr_has "$f:1: \"ts\" is not an RFC 3339 time"
	printf '["key","a"]\n' >"$f"
	run_mqtx 6 dedupe-audit --source "$f"
	stderr_has "$f:1: expected a JSON object per line, got an array"
	printf '{"key":"a","key":"b"}\n' >"$f"
	run_mqtx 6 dedupe-audit --source "$f"
	stderr_has "$f:1: member \"key\" given twice"
	run_mqtx 7 dedupe-audit --source "$BATS_TEST_TMPDIR/no-such-file"
	stderr_has "cannot open '$BATS_TEST_TMPDIR/no-such-file'"
}

@test "dedupe-audit: usage errors are exit 2 before anything is read" {
	run_mqtx 2 dedupe-audit
	stderr_has "--source is required"
	run_mqtx 2 dedupe-audit --source x.jsonl --from 5
	stderr_has "--from and --to are for broker sources that keep their messages"
	run_mqtx 2 dedupe-audit --source "ftp://host/x"
	stderr_has "unknown scheme"
	run_mqtx 2 dedupe-audit --source x.jsonl --format xml
	run_mqtx 2 dedupe-audit --source x.jsonl --since 1h --until 2h
	stderr_has "--since must be before --until"
	run_mqtx 2 dedupe-audit --source x.jsonl --since tomorrow
	run_mqtx 2 dedupe-audit --source "kafka://$MQTX_TEST_KAFKA_BROKERS/t" --destructive
	stderr_has "--destructive is for queues, which are read by consuming them"
	run_mqtx 2 dedupe-audit --source x.jsonl --destructive
	stderr_has "--destructive is for broker queues"
	run_mqtx 2 dedupe-audit --source "amqp:///q" --to 2024-05-01T00:00:00Z
	run_mqtx 2 dedupe-audit --source "kafka://host:9092"
	stderr_has "names no topic"
	# a broker source's shape is judged before anything connects (the database here is unreachable)
	MQTX_DATABASE_URL=postgresql://127.0.0.1:1/x run_mqtx 2 dedupe-audit --source "amqp://127.0.0.1:1/q?x=1"
	stderr_has "query strings are not supported"
	MQTX_DATABASE_URL=postgresql://127.0.0.1:1/x run_mqtx 2 dedupe-audit --source "kafka://127.0.0.1:1"
	stderr_has "names no topic"
	run_mqtx 2 dedupe-audit --source x.jsonl extra
}

@test "dedupe-audit: the window and destinations decide what counts as missing" {
	rows orders 3
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, routing_key, payload) VALUES
			('i-4', 'invoices', 'rk', '\\x00'), ('i-5', 'invoices', 'rk', '\\x00')" \
		"UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '2 hours' WHERE idempotency_key = 'p-1'" \
		"UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '1 minute' WHERE status = 'pending'"
	printf '{"key":"p-2"}\n' >"$BATS_TEST_TMPDIR/f"
	# destinations of the delivered rows: orders only; p-1 and p-3 missing
	run_mqtx 8 dedupe-audit --source "$BATS_TEST_TMPDIR/f" --format json
	[[ $(jq -c '[.window.destinations, .window.destinations_inferred, .missing.count, .outbox_sent]' <<<"$output") == '[["orders"],true,2,3]' ]]
	# p-1 was sent before the window
	run_mqtx 8 dedupe-audit --source "$BATS_TEST_TMPDIR/f" --since 1h --format json
	[[ $(jq -r '[.missing.details[].key] | join(",")' <<<"$output") == "p-3" ]]
	run_mqtx 0 dedupe-audit --source "$BATS_TEST_TMPDIR/f" --since 1h --until 30m
	run_mqtx 8 dedupe-audit --source "$BATS_TEST_TMPDIR/f" -d orders -d invoices --format json
	[[ $(jq -c '[.missing.count, .outbox_sent]' <<<"$output") == '[4,5]' ]]
	# nothing matched and no destination: losses cannot be judged
	printf '{"key":"unknown"}\n' >"$BATS_TEST_TMPDIR/g"
	run_mqtx 0 dedupe-audit --source "$BATS_TEST_TMPDIR/g"
	assert_line --regexp '^  missing +not checked$'
}

@test "dedupe-audit: csv and text reports list the same findings" {
	rows orders 3
	psql_test "UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '1 minute'"
	printf '%s\n' '{"key":"p-1"}' '{"key":"p-1"}' '{"key":"x,\"y"}' '{"key":"p-3"}' >"$BATS_TEST_TMPDIR/f"
	run_mqtx 9 dedupe-audit --source "$BATS_TEST_TMPDIR/f" --format csv
	assert_output "finding,key,outbox_id,ordering_key,count,status,where
duplicate,p-1,1,,2,unexplained,line 1; line 2
missing,p-2,2,,0,sent,
stranger,\"x,\"\"y\",,,1,,line 3"
	run_mqtx 9 dedupe-audit --source "$BATS_TEST_TMPDIR/f"
	assert_line '  p-1  id 1  2 copies: line 1; line 2'
	assert_line --regexp '^  p-2  id 2  sent '
	assert_line '  x,"y  1 delivery, first at line 3'
	run_mqtx 9 dedupe-audit --source "$BATS_TEST_TMPDIR/f" --max-details 0 --format json
	[[ $(jq -c '[.duplicates.keys, (.duplicates.details | length), .missing.count, (.missing.details | length)]' <<<"$output") == '[1,0,1,0]' ]]
}

# ------------------------------------------------------------------ Kafka

@test "dedupe-audit: Kafka topic: duplicates, loss, strangers and reordering made by relays are reported exactly" {
	kafka_setup
	plant_faults "$T_TOPIC"
	other_outbox "$T_TOPIC" 2
	run_mqtx 9 dedupe-audit --source "kafka://$MQTX_TEST_KAFKA_BROKERS/$T_TOPIC" --format json
	run summary "$output"
	assert_output "$(expected_planted 13 2/2 "mqtx:$(psql_test 'SELECT current_database()'):$T_OTHER.mqtx_outbox:1,mqtx:$(psql_test 'SELECT current_database()'):$T_OTHER.mqtx_outbox:2")"
	# positions are partitions and offsets; the destination is the topic
	run_mqtx 9 dedupe-audit --source "kafka://$MQTX_TEST_KAFKA_BROKERS/$T_TOPIC" --format json
	[[ $(jq -c '.duplicates.details[0].where | map(has("partition") and has("offset")) | all' <<<"$output") == true ]]
	[[ $(jq -c '.window.destinations' <<<"$output") == "[\"$T_TOPIC\"]" ]]
	[[ $(jq -c '.kind' <<<"$output") == '"kafka"' ]]
	# reading changed nothing: the same report again
	run_mqtx 9 dedupe-audit --source "kafka:///$T_TOPIC" --format json
	[[ $(jq .deliveries <<<"$output") == 13 ]]
}

@test "dedupe-audit: Kafka --from/--to offsets bound what is read" {
	kafka_setup
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, routing_key, ordering_key, payload)
		SELECT 'p-' || g, '$T_TOPIC', 'rk', 'one-partition', '\\x00'::bytea FROM generate_series(1, 10) g"
	run_mqtx 0 relay
	run_mqtx 8 dedupe-audit --source "kafka://$MQTX_TEST_KAFKA_BROKERS/$T_TOPIC" --from 3 --to 7 --format json
	[[ $(jq -c '[.deliveries, .missing.count, ([.missing.details[].key] | join(","))]' <<<"$output") == '[4,6,"p-1,p-2,p-3,p-8,p-9,p-10"]' ]]
	[[ $(jq -r .read <<<"$output") == *"[3,7)"* ]]
	run_mqtx 0 dedupe-audit --source "kafka://$MQTX_TEST_KAFKA_BROKERS/$T_TOPIC" --from first --from 2h
	run_mqtx 5 dedupe-audit --source "kafka://$MQTX_TEST_KAFKA_BROKERS/no-such-topic-$T_SCHEMA"
	stderr_has "topic 'no-such-topic-$T_SCHEMA' does not exist"
}

# ------------------------------------------------------------------ RabbitMQ

@test "dedupe-audit: RabbitMQ stream: duplicates, loss, strangers and reordering are reported exactly, nothing is consumed" {
	"$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$T_STREAM" --stream --bind "$T_EXCHANGE:#"
	plant_faults "$T_EXCHANGE"
	# a stranger whose outbox id belongs to one of our rows, and one without a key
	publish_test rk x --message-id not-ours --header x-mqtx-outbox-id="$(id_of p-2)"
	publish_test rk y
	run_mqtx 9 dedupe-audit --source "$MQTX_TEST_AMQP_URL/$T_STREAM" --idle-timeout 1s --format json
	run summary "$output"
	assert_output "$(expected_planted 13 2/2 "not-ours,")"
	# dup-1 went out in the first relay run (offset 7) and again in the second (offset 10)
	run_mqtx 9 dedupe-audit --source "$MQTX_TEST_AMQP_URL/$T_STREAM" --idle-timeout 1s --format json
	[[ $(jq -c '[.kind, .strangers.unkeyed_deliveries, (.duplicates.details[0].where | map(.offset))]' <<<"$output") == '["stream",1,[7,10]]' ]]
	# offsets: from the 10th message on, only the second relay run and the strangers
	run_mqtx '*' dedupe-audit --source "$MQTX_TEST_AMQP_URL/$T_STREAM" --from 9 --idle-timeout 1s --format json
	[[ $(jq .deliveries <<<"$output") == 4 ]]
	run_mqtx '*' dedupe-audit --source "$MQTX_TEST_AMQP_URL/$T_STREAM" --from 2 --to 4 --idle-timeout 1s --format json
	[[ $(jq .deliveries <<<"$output") == 2 ]]
	# the classic queue bound beside it still holds everything: reading the stream took nothing
	[[ $(queue_count) == 13 ]]
}

@test "dedupe-audit: a classic queue is consumed only with --destructive, then exactly what it held" {
	plant_faults "$T_EXCHANGE"
	publish_test rk x --message-id not-ours
	run_mqtx 2 dedupe-audit --source "$MQTX_TEST_AMQP_URL/$T_QUEUE"
	stderr_has "is not a stream queue: reading it removes its messages"
	[[ $(queue_count) == 12 ]]
	run_mqtx 9 dedupe-audit --source "amqp:///$T_QUEUE" --destructive --format json
	run summary "$output"
	assert_output "$(expected_planted 12 1/1 not-ours)"
	[[ $(queue_count) == 0 ]]
	run_mqtx 5 dedupe-audit --source "amqp:///no-such-queue-$T_SCHEMA" --destructive
	stderr_has "queue 'no-such-queue-$T_SCHEMA' does not exist"
}

@test "dedupe-audit: a quorum queue also needs --destructive" {
	"$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$T_STREAM" --quorum --bind "$T_EXCHANGE:#"
	rows "$T_EXCHANGE" 3
	run_mqtx 0 relay
	run_mqtx 2 dedupe-audit --source "amqp:///$T_STREAM"
	[[ $(queue_count "$T_STREAM") == 3 ]]
	run_mqtx 0 dedupe-audit --source "amqp:///$T_STREAM" --destructive --format json
	[[ $(jq -c '[.kind, .deliveries, .missing.count]' <<<"$output") == '["queue",3,0]' ]]
}

# ------------------------------------------------------------------ inbox table

@test "dedupe-audit: inbox table: findings, and a warning when the key column has no unique constraint" {
	rows orders 5 "'acct-1'"
	psql_test "UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '1 minute'" \
		"CREATE TABLE inbox (msg_key text, outbox_id bigint, processed_at timestamptz, okey text)" \
		"INSERT INTO inbox VALUES ('p-1', 1, '2024-05-01 10:00:01+00', 'acct-1'), ('p-3', 3, '2024-05-01 10:00:02+00', NULL),
			('p-2', 2, '2024-05-01 10:00:03+00', NULL), ('p-3', 3, '2024-05-01 10:00:04+00', NULL),
			('foreign', NULL, '2024-05-01 10:00:05+00', NULL), ('p-5', 5, '2024-05-01 10:00:06+00', NULL)"
	export MQTX_AUDIT_INBOX_SCHEMA=$T_SCHEMA MQTX_AUDIT_INBOX_KEY_COLUMN=msg_key MQTX_AUDIT_INBOX_ID_COLUMN=outbox_id \
		MQTX_AUDIT_INBOX_TS_COLUMN=processed_at MQTX_AUDIT_INBOX_ORDERING_KEY_COLUMN=okey
	run_mqtx 9 dedupe-audit --source inbox:inbox --format json
	[[ $(jq -c '[.kind, .deliveries, .duplicates.keys, .missing.count, .strangers.keys, .order.out_of_order, .gaps.count]' <<<"$output") == '["inbox",6,1,1,1,1,1]' ]]
	[[ $(jq -r '.consumer_table | "\(.table) \(.key_column) \(.unique) \(.unique_by)"' <<<"$output") == "\"$T_SCHEMA\".\"inbox\" msg_key false null" ]]
	[[ $(jq -r '[.order.details[0].key, .order.details[0].after_id, .gaps.details[0].key, .missing.details[0].key] | join(" ")' <<<"$output") == "p-2 3 p-4 p-4" ]]
	[[ $(jq -r '.duplicates.details[0].where | map(.row) | join(",")' <<<"$output") == "2,4" ]]
	stderr_has "has no unique constraint or unique index on msg_key"
	# the same table with the guard in place (and no duplicate left)
	psql_test "DELETE FROM inbox WHERE processed_at = '2024-05-01 10:00:04+00'" "ALTER TABLE inbox ADD CONSTRAINT inbox_once UNIQUE (msg_key)"
	MQTX_AUDIT_INBOX_TABLE=inbox run_mqtx 8 dedupe-audit --source inbox: --format json
	[[ $(jq -c '[.consumer_table.unique, .consumer_table.unique_by, .duplicates.keys]' <<<"$output") == '[true,"unique constraint inbox_once",0]' ]]
	stderr_lacks "no unique constraint"
	# a database URL as the source: the inbox table there
	MQTX_AUDIT_INBOX_TABLE=inbox run_mqtx 8 dedupe-audit --source "$MQTX_TEST_DATABASE_URL" --format json
	[[ $(jq -c '[.kind, .deliveries]' <<<"$output") == '["inbox",5]' ]]
}

@test "dedupe-audit: inbox table: without a time column the order is not judged; a wrong mapping is exit 3" {
	rows orders 2 "'acct-1'"
	psql_test "UPDATE mqtx_outbox SET status = 'sent', attempts = 1, sent_at = now() - interval '1 minute'" \
		"CREATE TABLE done (k text PRIMARY KEY)" "INSERT INTO done VALUES ('p-2'), ('p-1')"
	export MQTX_AUDIT_INBOX_SCHEMA=$T_SCHEMA MQTX_AUDIT_INBOX_KEY_COLUMN=k
	run_mqtx 0 dedupe-audit --source inbox:done
	assert_line --regexp '^  out of order +not checked \(no audit.inbox_ts_column'
	assert_line --regexp '^  consumer table +"[^"]+"."done": primary key done_pkey$'
	MQTX_AUDIT_INBOX_KEY_COLUMN=key run_mqtx 3 dedupe-audit --source inbox:done
	stderr_has "inbox table \"$T_SCHEMA\".\"done\" has no column 'key' (audit.inbox_key_column)"
	MQTX_AUDIT_INBOX_TS_COLUMN=k run_mqtx 3 dedupe-audit --source inbox:done
	stderr_has "audit.inbox_ts_column) is of type text; expected a date/time type"
	run_mqtx 3 dedupe-audit --source inbox:nope
	stderr_has "inbox table \"$T_SCHEMA\".\"nope\" does not exist"
	run_mqtx 3 dedupe-audit --source inbox:
	stderr_has "no inbox table: set audit.inbox_table"
}

# ------------------------------------------------------------------ a real fault

@test "dedupe-audit: after a relay crash between the broker's confirm and the commit, the audit finds exactly the re-sent rows and no loss" {
	skip_unless_failpoints
	"$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$T_STREAM" --stream --bind "$T_EXCHANGE:#"
	rows "$T_EXCHANGE" 300
	MQTX_FAILPOINTS="relay.after_confirm=crash@2" run_mqtx 137 relay --batch 50 # dies at relay.after_confirm
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") -lt 300 ]]
	run_mqtx 0 relay --batch 50
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") == 300 ]]

	# what the broker holds, counted independently from the classic queue beside the stream
	drain_queue --timeout 2 | jq -r .message_id | sort | uniq -d >"$BATS_TEST_TMPDIR/expected"
	[[ -s $BATS_TEST_TMPDIR/expected ]] || fail "the crash left no duplicate: the test proves nothing"

	run_mqtx 1 dedupe-audit --source "$MQTX_TEST_AMQP_URL/$T_STREAM" --idle-timeout 1s --max-details 1000 --format json
	jq -r '.duplicates.details[].key' <<<"$output" | sort >"$BATS_TEST_TMPDIR/found"
	diff "$BATS_TEST_TMPDIR/expected" "$BATS_TEST_TMPDIR/found" || fail "the audit's duplicates differ from the broker's"
	[[ $(jq -c '[.missing.count, .strangers.keys, .duplicates.keys == .duplicates.unexplained_keys, .outbox_sent]' <<<"$output") == '[0,0,true,300]' ]]
	[[ $(jq .duplicates.keys <<<"$output") == $(wc -l <"$BATS_TEST_TMPDIR/expected") ]]
}

@test "dedupe-audit: the same crash on Kafka: the audit of the topic finds exactly the re-sent rows and no loss" {
	skip_unless_failpoints
	kafka_setup
	rows "$T_TOPIC" 300 "'acct-' || (g % 7)"
	MQTX_FAILPOINTS="relay.after_confirm=crash@2" run_mqtx 137 relay --batch 50 # dies at relay.after_confirm
	run_mqtx 0 relay --batch 50
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") == 300 ]]
	"$KAFKA_TOOL" consume "$MQTX_TEST_KAFKA_BROKERS" "$T_TOPIC" --timeout 3 |
		jq -r '.headers["x-mqtx-idempotency-key"]' | sort | uniq -d >"$BATS_TEST_TMPDIR/expected"
	[[ -s $BATS_TEST_TMPDIR/expected ]] || fail "the crash left no duplicate: the test proves nothing"
	run_mqtx 1 dedupe-audit --source "kafka:///$T_TOPIC" --max-details 1000 --format json
	jq -r '.duplicates.details[].key' <<<"$output" | sort >"$BATS_TEST_TMPDIR/found"
	diff "$BATS_TEST_TMPDIR/expected" "$BATS_TEST_TMPDIR/found" || fail "the audit's duplicates differ from the topic's"
	[[ $(jq -c '[.missing.count, .strangers.keys, .order.out_of_order, .gaps.count, .outbox_sent]' <<<"$output") == '[0,0,0,0,300]' ]]
}
