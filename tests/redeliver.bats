#!/usr/bin/env bats
# mqtx redeliver, end to end against real servers. The same file runs once
# per backend: MQTX_TEST_BACKEND=amqp (default), kafka or nats (see backend.bash).
# Each test reads what the broker delivered once, at its end: Kafka topics
# are read from the beginning every time.

load test_helper
load backend

setup() {
	backend_test_setup
	# one consumer group per test: the mock cluster makes a new member of a
	# group wait for the members it still remembers
	export MQTX_REDELIVER_ACK_GROUP="mqtx-acks-$T_SCHEMA"
	EXTRA_EXCHANGE=
	ACK_SOURCE=
	CONSUMER_SCHEMA=
}

teardown() {
	if [[ $(backend_name) == amqp ]]; then
		[[ -z $ACK_SOURCE ]] || "$AMQP_TOOL" delete-queue "$MQTX_TEST_AMQP_URL" "$ACK_SOURCE" >/dev/null 2>&1 || true
		[[ -z $EXTRA_EXCHANGE ]] || "$AMQP_TOOL" delete-exchange "$MQTX_TEST_AMQP_URL" "$EXTRA_EXCHANGE" >/dev/null 2>&1 || true
	fi
	[[ -z $CONSUMER_SCHEMA ]] || psql_test "DROP SCHEMA IF EXISTS \"$CONSUMER_SCHEMA\" CASCADE" >/dev/null 2>&1 || true
	mqtx_test_teardown
}

# sent_rows N [ORDERING_KEY_EXPR]: N rows (insert_rows), relayed (status sent)
sent_rows() {
	insert_rows "$1" "$T_DEST" "${2:-NULL}"
	run_mqtx 0 relay
}

# "id:redelivery_count" of every row, in id order
rcounts() {
	psql_test "SELECT string_agg(id || ':' || redelivery_count, ' ' ORDER BY id) FROM mqtx_outbox"
}

key_of() {
	psql_test "SELECT idempotency_key FROM mqtx_outbox WHERE id = $1"
}

# "id:count" per delivered message ("-" without the header), in delivery order
delivered() {
	jq -r '"\(.id):\(.headers["x-mqtx-redelivery-count"] // "-" | tostring)"' "$1"
}

# a second destination that delivers to the test consumer
extra_dest() {
	case $(backend_name) in
	amqp)
		EXTRA_EXCHANGE="$T_EXCHANGE.b"
		"$AMQP_TOOL" declare-exchange "$MQTX_TEST_AMQP_URL" "$EXTRA_EXCHANGE" --type topic >/dev/null
		"$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$T_QUEUE" --bind "$EXTRA_EXCHANGE:#" >/dev/null
		printf '%s\n' "$EXTRA_EXCHANGE"
		;;
	kafka)
		"$KAFKA_TOOL" create-topic "$MQTX_TEST_KAFKA_BROKERS" "$T_DEST.b" 1 >/dev/null
		printf '%s\n' "$T_DEST.b"
		;;
	nats) printf '%s\n' "$T_DEST.b" ;; # the test stream captures T_DEST.>
	esac
}

# the ack queue (RabbitMQ) or topic (Kafka) consumers publish keys to
make_ack_source() {
	skip_unless_can consume "no ack source (redeliver --collect-acks needs a broker that can consume)"
	ACK_SOURCE="$T_QUEUE.acks"
	case $(backend_name) in
	amqp) "$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$ACK_SOURCE" >/dev/null ;;
	kafka) "$KAFKA_TOOL" create-topic "$MQTX_TEST_KAFKA_BROKERS" "$ACK_SOURCE" 2 >/dev/null ;;
	esac
	export MQTX_REDELIVER_ACK_SOURCE=$ACK_SOURCE
}

# publish_ack BODY: what a consumer does after processing a message
publish_ack() {
	case $(backend_name) in
	amqp) "$AMQP_TOOL" publish "$MQTX_TEST_AMQP_URL" "" "$ACK_SOURCE" -- "$1" ;;
	kafka) "$KAFKA_TOOL" produce "$MQTX_TEST_KAFKA_BROKERS" "$ACK_SOURCE" "" -- "$1" ;;
	esac
}

# ------------------------------------------------------------------ selectors

@test "redeliver: --id lists and ranges re-send exactly those rows, each with its own key, body and x-mqtx-redelivery-count 1" {
	sent_rows 10
	run_mqtx 0 redeliver --id 2,4 --id 7-9 --yes
	stderr_has "redelivered 5, failed 0, held back 0"
	run rcounts
	assert_output "1:0 2:1 3:0 4:1 5:0 6:0 7:1 8:1 9:1 10:0"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE redelivered_at >= sent_at") == 5 ]]
	backend_consume 15 >"$BATS_TEST_TMPDIR/got"
	run bash -c "jq -r 'select(.headers[\"x-mqtx-redelivery-count\"] != null) | \"\(.id) \(.key)\"' '$BATS_TEST_TMPDIR/got' | sort -n"
	assert_output "$(psql_test "SELECT id || ' ' || idempotency_key FROM mqtx_outbox WHERE id IN (2, 4, 7, 8, 9) ORDER BY id")"
	# a copy carries the bytes of the original
	run jq -s 'group_by(.id) | map(map(.b64) | unique | length) | max' "$BATS_TEST_TMPDIR/got"
	assert_output 1
}

@test "redeliver: a row the broker cannot carry (over a limit, a reserved header) fails alone; the others are re-sent" {
	sent_rows 4
	psql_test "UPDATE mqtx_outbox SET headers = '{\"x-mqtx-redelivery-count\": \"99\"}' WHERE id = 2"
	if [[ $(backend_name) == amqp ]]; then
		psql_test "UPDATE mqtx_outbox SET routing_key = repeat('r', 300) WHERE id = 3"
	else
		psql_test "UPDATE mqtx_outbox SET destination = 'bad topic' WHERE id = 3"
	fi
	run_mqtx 1 redeliver --status sent --yes
	stderr_has "redelivered 2, failed 2, held back 0"
	stderr_has "header 'x-mqtx-redelivery-count': names starting with 'x-mqtx-' are reserved"
	case $(backend_name) in
	amqp) stderr_has "routing_key is 300 bytes; AMQP allows at most 255" ;;
	kafka) stderr_has "Kafka topic names allow only" ;;
	nats) stderr_has "NATS subjects allow no blank or control byte" ;;
	esac
	run rcounts
	assert_output "1:1 2:0 3:0 4:1"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	run delivered "$BATS_TEST_TMPDIR/got"
	[[ $(sort <<<"$output" | tr '\n' ' ') == "1:- 1:1 2:- 3:- 4:- 4:1 " ]] || fail "delivered: $output"
}

@test "redeliver: the same key goes out again with x-mqtx-redelivery-count 1, then 2" {
	sent_rows 1
	run_mqtx 0 redeliver --status sent --yes
	run_mqtx 0 redeliver --status sent --yes
	backend_consume 3 >"$BATS_TEST_TMPDIR/got"
	run delivered "$BATS_TEST_TMPDIR/got"
	assert_output $'1:-\n1:1\n1:2'
	run jq -r .key "$BATS_TEST_TMPDIR/got"
	assert_output "$(key_of 1)"$'\n'"$(key_of 1)"$'\n'"$(key_of 1)"
	run rcounts
	assert_output "1:2"
}

@test "redeliver: --key, --ordering-key and --destination select by value (keys with quotes, commas and backslashes too)" {
	local other
	other=$(extra_dest)
	insert_rows 3 "$T_DEST" "'k1'"
	insert_rows 3 "$T_DEST" "'k2'"
	insert_rows 1 "$other"
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, payload)
		VALUES ('we''ird,\"key\"\\x', '$T_DEST', '\\x01'::bytea)"
	run_mqtx 0 relay
	run_mqtx 0 redeliver --ordering-key k2 --yes
	stderr_has "redelivered 3,"
	run_mqtx 0 redeliver --destination "$other" --yes
	stderr_has "redelivered 1,"
	run_mqtx 0 redeliver --key "$(key_of 2)" --key 'we'\''ird,"key"\x' --key no-such-key --yes
	stderr_has "redelivered 2,"
	run rcounts
	assert_output "1:0 2:1 3:0 4:1 5:1 6:1 7:1 8:1"
}

@test "redeliver: --status dead re-sends dead rows directly and marks them sent; the default --status sent leaves them alone" {
	insert_rows 3
	psql_test "UPDATE mqtx_outbox SET status = 'dead', attempts = 10, last_error = 'boom' WHERE id = 2"
	run_mqtx 0 relay
	run_mqtx 0 redeliver --id 1-3 --yes
	stderr_has "redelivered 2,"
	run_mqtx 0 redeliver --status dead --yes
	stderr_has "redelivered 1,"
	run psql_test "SELECT status, redelivery_count, sent_at IS NOT NULL FROM mqtx_outbox WHERE id = 2"
	assert_output "sent|1|t"
	backend_consume 5 >"$BATS_TEST_TMPDIR/got"
	run bash -c "delivered() { jq -r '\"\(.id):\(.headers[\"x-mqtx-redelivery-count\"] // \"-\" | tostring)\"' \"\$1\"; }; delivered '$BATS_TEST_TMPDIR/got' | sort"
	assert_output $'1:-\n1:1\n2:1\n3:-\n3:1'
}

@test "redeliver: --since and --until select by creation time, or by sending time with --time-column sent" {
	sent_rows 4
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '3 hours', sent_at = now() - interval '10 minutes' WHERE id = 1" \
		"UPDATE mqtx_outbox SET created_at = now() - interval '90 minutes' WHERE id = 2" \
		"UPDATE mqtx_outbox SET created_at = now() - interval '20 minutes' WHERE id = 3"
	run_mqtx 0 redeliver --since 2h --until 30m --yes
	stderr_has "redelivered 1,"
	run_mqtx 0 redeliver --since "$(date -u -d '-4 hours' +%Y-%m-%dT%H:%M:%SZ)" --until "$(date -u -d '-150 minutes' '+%Y-%m-%d %H:%M:%S+00')" --yes
	stderr_has "redelivered 1,"
	run_mqtx 0 redeliver --time-column sent --until 5m --yes
	stderr_has "redelivered 1,"
	run rcounts
	assert_output "1:2 2:1 3:0 4:0"
}

@test "redeliver: --where combines whitelisted columns with AND; values are bound, quotes included" {
	insert_rows 4
	psql_test "UPDATE mqtx_outbox SET routing_key = 'a.' || id WHERE id <= 2" \
		"UPDATE mqtx_outbox SET ordering_key = 'o''k' WHERE id = 4"
	run_mqtx 0 relay
	run_mqtx 0 redeliver --where "routing_key LIKE 'a.%' AND id >= 2" --yes
	stderr_has "redelivered 1,"
	run_mqtx 0 redeliver --where "ordering_key = 'o''k'" --where "last_error IS NULL and attempts = 1" --yes
	stderr_has "redelivered 1,"
	run_mqtx 0 redeliver --where "redelivery_count < 1 AND created_at <= 'now' AND sent_at IS NOT NULL AND status <> 'dead'" --yes
	stderr_has "redelivered 2,"
	run rcounts
	assert_output "1:1 2:1 3:1 4:1"
}

@test "redeliver: --where refuses other columns, raw SQL and injection attempts, and SQL inside a quoted value is only a value" {
	sent_rows 3
	local bad
	local -a attempts=(
		"payload = 'x'"
		"id = 1; DROP TABLE mqtx_outbox"
		"id = 1 OR 1=1"
		"id = 1 -- comment"
		"id = '1 OR 1=1'"
		"status = 'sent' AND (id > 0)"
		"\"status\" = 'sent'"
		"pg_sleep(5) IS NULL"
		"id = 1 AND"
		"status = 'unterminated"
		"idempotency_key = \$\$x\$\$"
		"id = 99999999999999999999"
		"status IN ('sent')"
		"routing_key::text = 'x'"
		"id LIKE '1%'"
		""
	)
	for bad in "${attempts[@]}"; do
		run_mqtx 2 redeliver --where "$bad" --yes
		stderr_has "--where: "
	done
	run_mqtx 0 redeliver --where "idempotency_key = 'x'' OR ''1''=''1'" --yes
	stderr_has "redelivered 0,"
	run_mqtx 0 redeliver --where "routing_key = 'x''; DROP TABLE mqtx_outbox; --'" --yes
	stderr_has "redelivered 0,"
	run_mqtx 0 redeliver --key "x' OR '1'='1" --ordering-key "'); DELETE FROM mqtx_outbox; --" --yes
	stderr_has "redelivered 0,"
	run rcounts
	assert_output "1:0 2:0 3:0"
}

# ------------------------------------------------------------- dry run, yes

@test "redeliver: on a terminal it only shows what it would do; --yes acts" {
	sent_rows 3
	local cmd
	cmd="$(printf '%q' "$MQTX") redeliver --status sent"
	run script -qec "$cmd" /dev/null
	assert_success
	assert_output --partial $'id\tkey\tstatus\tdestination'
	assert_output --partial "dry run: 3 row(s) selected"
	run rcounts
	assert_output "1:0 2:0 3:0"
	run script -qec "$cmd --yes" /dev/null
	assert_success
	assert_output --partial "redelivered 3,"
	run rcounts
	assert_output "1:1 2:1 3:1"
}

@test "redeliver: --dry-run prints the count and the first rows as TSV and changes nothing" {
	sent_rows 5 "'k'"
	run_mqtx 0 redeliver --status sent --dry-run --sample 2
	stderr_has "dry run: 5 row(s) selected (2 shown)"
	[[ ${#lines[@]} == 3 ]] || fail "expected a header and 2 rows, got: $output"
	assert_line --index 0 $'id\tkey\tstatus\tdestination\trouting_key\tordering_key\tattempts\tredelivery_count\tcreated_at\tsent_at'
	[[ ${lines[1]} == "1	$(key_of 1)	sent	$T_DEST	test.rk	k	1	0	"* ]] || fail "unexpected row: ${lines[1]}"
	run_mqtx 0 redeliver --status sent --dry-run --limit 4
	stderr_has "dry run: 4 row(s) selected (4 shown)"
	run rcounts
	assert_output "1:0 2:0 3:0 4:0 5:0"
	run_mqtx 0 redeliver --id 5 --yes
	stderr_has "redelivered 1,"
}

@test "redeliver: without --yes nothing is changed, also when stdout is not a terminal (| cat); with --yes it acts" {
	insert_rows 2
	psql_test "UPDATE mqtx_outbox SET status = 'dead', attempts = 10, last_error = 'boom' WHERE id = 2"
	run_mqtx 0 relay
	# stdout a pipe, stdin not a terminal: still a dry run
	run bash -c "$(printf '%q' "$MQTX") redeliver --status dead --requeue </dev/null 2>'$BATS_TEST_TMPDIR/err' | cat"
	assert_success
	assert_output --partial $'id\tkey\tstatus'
	grep -q "warning: dry run: 1 row(s) selected (1 shown); they would be set back to pending" "$BATS_TEST_TMPDIR/err" ||
		fail "no dry-run warning: $(cat "$BATS_TEST_TMPDIR/err")"
	run psql_test "SELECT id, status FROM mqtx_outbox ORDER BY id"
	assert_output "1|sent
2|dead"
	# --quiet keeps the warning that nothing happened
	run_mqtx 0 redeliver --status sent --quiet
	stderr_has "without --yes, redeliver only shows what it would do"
	run rcounts
	assert_output "1:0 2:0"
	# with --yes it acts
	run bash -c "$(printf '%q' "$MQTX") redeliver --status dead --requeue --yes </dev/null | cat"
	assert_success
	run psql_test "SELECT id, status FROM mqtx_outbox ORDER BY id"
	assert_output "1|sent
2|pending"
	run_mqtx 0 redeliver --id 1 --yes >/dev/null
	run rcounts
	assert_output "1:1 2:0"
}

# -------------------------------------------------------------------- revive

@test "redeliver: --status dead --requeue sets dead rows back to pending with attempts reset; the relay then sends them" {
	insert_rows 3
	psql_test "UPDATE mqtx_outbox SET status = 'dead', attempts = 10, last_error = 'boom', available_at = now() + interval '1 day' WHERE id IN (2, 3)"
	run_mqtx 0 relay
	run_mqtx 0 redeliver --status dead --requeue --limit 1 --yes
	stderr_has "requeued 1 dead row(s)"
	run_mqtx 0 redeliver --id 1-3 --requeue --yes
	stderr_has "requeued 1 dead row(s)"
	run psql_test "SELECT id, status, attempts, available_at <= now(), redelivery_count FROM mqtx_outbox ORDER BY id"
	assert_output $'1|sent|1|t|0\n2|pending|0|t|0\n3|pending|0|t|0'
	run_mqtx 0 relay
	stderr_has "relayed 2, failed 0"
	backend_consume 3 >"$BATS_TEST_TMPDIR/got"
	run delivered "$BATS_TEST_TMPDIR/got"
	assert_output $'1:-\n2:-\n3:-'
	run psql_test "SELECT string_agg(status, ',' ORDER BY id) FROM mqtx_outbox"
	assert_output "sent,sent,sent"
}

# ------------------------------------------------------------------ ordering

@test "redeliver: rows behind an earlier pending row of their ordering key are held back, and go once it was sent" {
	sent_rows 3 "'K'"
	psql_test "UPDATE mqtx_outbox SET status = 'pending', available_at = now() + interval '1 hour' WHERE id = 1"
	run_mqtx 1 redeliver --id 2-3 --yes
	stderr_has "redelivered 0, failed 0, held back 2"
	run rcounts
	assert_output "1:0 2:0 3:0"
	psql_test "UPDATE mqtx_outbox SET available_at = now() WHERE id = 1"
	run_mqtx 0 relay
	run_mqtx 0 redeliver --id 2-3 --yes
	stderr_has "redelivered 2, failed 0, held back 0"
	if backend_can dedupes; then
		# row 1 went again with its key within the duplicate window: the stream dropped it
		backend_consume 5 >"$BATS_TEST_TMPDIR/got"
		run delivered "$BATS_TEST_TMPDIR/got"
		assert_output $'1:-\n2:-\n3:-\n2:1\n3:1'
		return
	fi
	backend_consume 6 >"$BATS_TEST_TMPDIR/got"
	run delivered "$BATS_TEST_TMPDIR/got"
	assert_output $'1:-\n2:-\n3:-\n1:-\n2:1\n3:1'
}

@test "redeliver: while it re-sends a key's rows, a relay does not send that key's pending rows (same bucket locks)" {
	sent_rows 2 "'K'"
	insert_rows 1 "$T_DEST" "'K'"
	insert_rows 1 "$T_DEST" "'other'"
	MQTX_FAILPOINTS=redeliver.after_select=sleep:4000 mqtx_bg redeliver --id 1-2 --yes
	wait_until 10 bash -c "[[ \$(psql -qAtX '$MQTX_TEST_DATABASE_URL' -c \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted\") -gt 0 ]]"
	run_mqtx 0 relay
	stderr_has "relayed 1, failed 0"
	[[ $(psql_test "SELECT status FROM mqtx_outbox WHERE id = 3") == pending ]]
	wait "$MQTX_BG_PID" || fail "redeliver exited with $?: $(cat "$MQTX_BG_ERR")"
	MQTX_BG_PID=
	run_mqtx 0 relay
	stderr_has "relayed 1, failed 0"
	backend_consume 6 >"$BATS_TEST_TMPDIR/got"
	run bash -c "jq -r 'select(.id != 4) | \"\(.id):\(.headers[\"x-mqtx-redelivery-count\"] // \"-\" | tostring)\"' '$BATS_TEST_TMPDIR/got'"
	assert_output $'1:-\n2:-\n1:1\n2:1\n3:-'
}

# --------------------------------------------------------------- rate, limit

@test "redeliver: --rate bounds the rate (20 messages at 10/s take at least 1.5 s)" {
	sent_rows 20
	local t0=${EPOCHREALTIME/./}
	run_mqtx 0 redeliver --status sent --rate 10/s --yes
	local ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	stderr_has "redelivered 20,"
	((ms >= 1500)) || fail "20 messages at 10/s took only ${ms}ms"
	((ms < 15000)) || fail "20 messages at 10/s took ${ms}ms"
}

@test "redeliver: --limit handles at most N of the selected rows, in id order" {
	sent_rows 10
	run_mqtx 0 redeliver --status sent --limit 4 --batch 3 --yes
	stderr_has "redelivered 4,"
	run rcounts
	assert_output "1:1 2:1 3:1 4:1 5:0 6:0 7:0 8:0 9:0 10:0"
}

# --------------------------------------------------------- interrupt, crash

@test "redeliver: SIGTERM finishes and records the batch in flight, exits 1; a re-run sends only what is still selected" {
	sent_rows 30
	mqtx_bg redeliver --where "redelivery_count = 0" --rate 10/s --yes
	wait_until 15 bash -c "[[ \$(psql -qAtX '$MQTX_TEST_DATABASE_URL' -c 'SELECT count(*) FROM \"$T_SCHEMA\".mqtx_outbox WHERE redelivery_count > 0') -gt 0 ]]"
	mqtx_bg_stop TERM 15
	[[ $MQTX_BG_STATUS == 1 ]] || fail "exit status $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "interrupted" "$MQTX_BG_ERR"
	local done
	done=$(psql_test "SELECT count(*) FROM mqtx_outbox WHERE redelivery_count = 1")
	((done > 0 && done < 30)) || fail "$done rows redelivered before the stop"
	[[ $(psql_test "SELECT max(redelivery_count) FROM mqtx_outbox") == 1 ]]
	run_mqtx 0 redeliver --where "redelivery_count = 0" --yes
	stderr_has "redelivered $((30 - done)),"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE redelivery_count = 1") == 30 ]]
	backend_consume 60 >"$BATS_TEST_TMPDIR/got"
	run jq -s 'group_by(.id) | map(length) | unique' "$BATS_TEST_TMPDIR/got"
	assert_output "$(jq -n '[2]')"
}

@test "redeliver: a crash after the broker confirmed but before recording sends the batch again with the same keys and count" {
	sent_rows 3
	MQTX_FAILPOINTS=redeliver.after_publish=crash run_mqtx 137 redeliver --status sent --yes
	run rcounts
	assert_output "1:0 2:0 3:0"
	run_mqtx 0 redeliver --where "redelivery_count = 0" --yes
	stderr_has "redelivered 3,"
	# the second copy of each redelivery: a broker that dedupes by key (NATS
	# JetStream's Nats-Msg-Id) dropped it
	local copies=2 n=9
	backend_can dedupes && copies=1 n=6
	backend_consume $n >"$BATS_TEST_TMPDIR/got"
	run bash -c "jq -r '\"\(.id):\(.headers[\"x-mqtx-redelivery-count\"] // \"-\" | tostring):\(.key)\"' '$BATS_TEST_TMPDIR/got' | sort | uniq -c | awk '{print \$1, \$2}'"
	assert_output "$(for i in 1 2 3; do echo "1 $i:-:$(key_of $i)"; echo "$copies $i:1:$(key_of $i)"; done)"
	run rcounts
	assert_output "1:1 2:1 3:1"
}

@test "redeliver: a failing database write after the confirms records nothing and exits 4" {
	sent_rows 2
	MQTX_FAILPOINTS=redeliver.before_commit=error run_mqtx 4 redeliver --status sent --yes
	stderr_has "failpoint redeliver.before_commit"
	run rcounts
	assert_output "1:0 2:0"
}

# ---------------------------------------------------------- completion, acks

@test "redeliver: --unacked-after re-sends only sent messages without a completion, and stops at --max-redeliveries" {
	sent_rows 5
	psql_test "UPDATE mqtx_outbox SET sent_at = now() - interval '1 hour' WHERE id <= 4" \
		"INSERT INTO mqtx_completions(idempotency_key, source) SELECT idempotency_key, 'test' FROM mqtx_outbox WHERE id IN (1, 3)"
	run_mqtx 0 redeliver --unacked-after 10m --yes
	stderr_has "redelivered 2,"
	run_mqtx 0 redeliver --unacked-after 10m --yes
	stderr_has "redelivered 0,"
	psql_test "UPDATE mqtx_outbox SET redelivered_at = now() - interval '1 hour' WHERE redelivered_at IS NOT NULL"
	run_mqtx 0 redeliver --unacked-after 10m --max-redeliveries 2 --yes
	stderr_has "redelivered 2,"
	psql_test "UPDATE mqtx_outbox SET redelivered_at = now() - interval '1 hour' WHERE redelivered_at IS NOT NULL"
	run_mqtx 0 redeliver --unacked-after 10m --max-redeliveries 2 --yes
	stderr_has "redelivered 0,"
	run rcounts
	assert_output "1:0 2:2 3:0 4:2 5:0"
	backend_consume 9 >"$BATS_TEST_TMPDIR/got"
	run bash -c "jq -r 'select(.id == 2) | .headers[\"x-mqtx-redelivery-count\"] // \"-\" | tostring' '$BATS_TEST_TMPDIR/got'"
	assert_output $'-\n1\n2'
}

@test "redeliver: end to end: consumers ack through the table and the ack queue/topic; --collect-acks drains the acks, --unacked-after re-sends the rest" {
	make_ack_source
	sent_rows 5
	psql_test "UPDATE mqtx_outbox SET sent_at = now() - interval '1 hour'"
	# the consumer processes every message, then acknowledges four of them
	backend_consume 5 >"$BATS_TEST_TMPDIR/first"
	psql_test "INSERT INTO mqtx_completions(idempotency_key, source) VALUES ('$(key_of 1)', 'consumer')"
	publish_ack "$(key_of 2)"
	publish_ack "  $(key_of 3)"$'\n'
	# key 4: the consumer publishes its ack through an outbox of its own,
	# relayed by mqtx: the key travels in the header x-mqtx-idempotency-key,
	# the body is something else
	local dest=$ACK_SOURCE rk=NULL
	if [[ $(backend_name) == amqp ]]; then
		dest="" rk="'$ACK_SOURCE'"
	fi
	psql_test "CREATE SCHEMA \"${T_SCHEMA}_c\""
	CONSUMER_SCHEMA="${T_SCHEMA}_c"
	MQTX_OUTBOX_SCHEMA=$CONSUMER_SCHEMA run_mqtx 0 init
	psql_test "INSERT INTO \"$CONSUMER_SCHEMA\".mqtx_outbox(idempotency_key, destination, routing_key, payload)
		VALUES ('$(key_of 4)', '$dest', $rk, convert_to('{\"done\": true}', 'UTF8'))"
	MQTX_OUTBOX_SCHEMA=$CONSUMER_SCHEMA run_mqtx 0 relay
	stderr_has "relayed 1, failed 0"
	publish_ack " "
	run_mqtx 0 redeliver --collect-acks --unacked-after 10m --yes
	stderr_has "acks: 4 collected, 3 new completion(s), 1 ignored"
	stderr_has "redelivered 1,"
	run psql_test "SELECT idempotency_key, source FROM mqtx_completions ORDER BY 1"
	assert_output "$(for i in 1 2 3 4; do printf '%s|%s\n' "$(key_of $i)" "$([[ $i == 1 ]] && echo consumer || echo "$(backend_name):$ACK_SOURCE")"; done)"
	run rcounts
	assert_output "1:0 2:0 3:0 4:0 5:1"
	# drained: a second run finds no acks
	run_mqtx 0 redeliver --collect-acks --yes
	stderr_has "acks: 0 collected"
	# the re-sent message is acked too: nothing is left to re-send
	publish_ack "$(key_of 5)"
	psql_test "UPDATE mqtx_outbox SET redelivered_at = now() - interval '1 hour' WHERE id = 5"
	run_mqtx 0 redeliver --collect-acks --unacked-after 10m --yes
	stderr_has "acks: 1 collected, 1 new completion(s)"
	stderr_has "redelivered 0,"
}

@test "redeliver: --collect-acks acknowledges ack messages only after their keys are stored: a crash in between collects them again" {
	make_ack_source
	sent_rows 2
	publish_ack "$(key_of 1)"
	publish_ack "$(key_of 2)"
	# without --yes: nothing is taken from the ack source
	run_mqtx 0 redeliver --collect-acks
	stderr_has "dry run: --collect-acks would move the acks waiting in '$ACK_SOURCE' into mqtx_completions"
	[[ $(psql_test "SELECT count(*) FROM mqtx_completions") == 0 ]]
	MQTX_FAILPOINTS=redeliver.before_ack=crash run_mqtx 137 redeliver --collect-acks --yes
	[[ $(psql_test "SELECT count(*) FROM mqtx_completions") == 2 ]]
	run_mqtx 0 redeliver --collect-acks --yes
	stderr_has "acks: 2 collected, 0 new completion(s)"
	run_mqtx 0 redeliver --collect-acks --yes
	stderr_has "acks: 0 collected"
}

@test "redeliver: broker down at start: the error, and no summary that looks like success (exit 5)" {
	sent_rows 1
	make_ack_source
	if [[ $(backend_name) == amqp ]]; then
		export MQTX_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2f"
	else
		export MQTX_BROKER_URL="kafka://127.0.0.1:1" MQTX_BROKER_CONNECT_TIMEOUT=2s
	fi
	run_mqtx 5 redeliver --status sent --yes
	stderr_has "cannot connect to"
	stderr_lacks "redelivered"
	run_mqtx 5 redeliver --collect-acks --yes
	stderr_has "cannot connect to"
	stderr_lacks "acks:"
	run rcounts
	assert_output "1:0"
}

# ---------------------------------------------------------------- usage

@test "redeliver: contradictory or missing selections are usage errors (exit 2); a missing ack source is a configuration error" {
	run_mqtx 2 redeliver --yes
	stderr_has "nothing selected"
	run_mqtx 2 redeliver --status pending
	stderr_has "mqtx relay"
	run_mqtx 2 redeliver --status prepared
	run_mqtx 2 redeliver --status sent --dry-run --yes
	run_mqtx 2 redeliver --requeue --status sent
	run_mqtx 2 redeliver --unacked-after 10m --status dead
	run_mqtx 2 redeliver --unacked-after 10
	run_mqtx 2 redeliver --id 5-1
	run_mqtx 2 redeliver --id 1,,2
	run_mqtx 2 redeliver --id abc
	run_mqtx 2 redeliver --status sent --rate fast
	stderr_has "invalid rate 'fast'"
	run_mqtx 2 redeliver --status sent --time-column updated
	run_mqtx 2 redeliver --status sent --since 'not a time' --yes
	stderr_has "a selection value was not accepted"
	MQTX_REDELIVER_ACK_SOURCE= run_mqtx 3 redeliver --collect-acks
	stderr_has "--ack-source"
	MQTX_REDELIVER_RATE=lots run_mqtx 3 redeliver --status sent
	stderr_has "redeliver.rate"
}
