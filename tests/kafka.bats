#!/usr/bin/env bats
# What only a real Apache Kafka broker shows (tests/helpers/kafka.sh starts
# one, KRaft, from Maven Central; librdkafka's mock could not do these): a
# missing topic stays missing (auto.create.topics.enable=false), aborted
# transactions are invisible to read_committed consumers and fenced by the
# next producer with the same transactional.id, transaction markers leave
# gaps in the offsets, and the idempotent producer rides through a broker
# restart, on one node and in a 3-node cluster (kafka.sh cluster-start).
# Runs in the Kafka pass (MQTX_TEST_BACKEND=kafka) only.

load test_helper
load backend

setup() {
	[[ $(backend_name) == kafka ]] || skip "a real Kafka broker's behaviour (runs in the Kafka pass)"
	backend_test_setup
}

teardown() {
	if [[ -n ${KCL:-} ]]; then
		mqtx_bg_stop KILL 5
		"$BATS_TEST_DIRNAME/helpers/kafka.sh" cluster-stop "$KCL" >/dev/null 2>&1 || true
		rm -rf "$KCL"
	fi
	mqtx_test_teardown
}

# consume_ids [--uncommitted]: the outbox ids in the topic, one per line,
# in offset order per partition (read_committed unless --uncommitted).
consume_ids() {
	"$KAFKA_TOOL" consume "$MQTX_TEST_KAFKA_BROKERS" "$T_DEST" --timeout 3 "$@" |
		jq -r '.headers["x-mqtx-outbox-id"]'
}

# delivered_once_in_order BROKERS N: the topic holds each of N rows exactly
# once, and per partition (the ordering keys' partitions) ids increase
delivered_once_in_order() {
	"$KAFKA_TOOL" consume "$1" "$T_DEST" --expect "$2" --timeout 5 >"$BATS_TEST_TMPDIR/got"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/got") == "$2" ]] || fail "$(wc -l <"$BATS_TEST_TMPDIR/got") deliveries for $2 rows" || return 1
	[[ $(jq -r '.headers["x-mqtx-outbox-id"]' "$BATS_TEST_TMPDIR/got" | sort -u | wc -l) == "$2" ]] || fail "duplicates" || return 1
	jq -r '[.partition, .headers["x-mqtx-outbox-id"]] | @tsv' "$BATS_TEST_TMPDIR/got" |
		awk '$2 + 0 < last[$1] + 0 { bad = 1 } { last[$1] = $2 } END { exit bad }' || fail "per-partition order broken"
}

@test "kafka: a transactional relay killed before its commit: read_committed sees none of that transaction; the restart fences it and delivers each row once" {
	skip_unless_failpoints
	insert_rows 40 "$T_DEST" "'k' || (g % 4)"
	# the second batch is produced, then the relay dies before committing it
	MQTX_FAILPOINTS="backend.before_tx_commit=crash@2" run_mqtx 137 relay --transactional --batch 10
	[[ $(count_status sent) == 10 ]]
	consume_ids --uncommitted | sort -n >"$BATS_TEST_TMPDIR/all"
	(($(wc -l <"$BATS_TEST_TMPDIR/all") == 20)) ||
		fail "expected the committed batch and the open one in the log, got $(wc -l <"$BATS_TEST_TMPDIR/all") messages"
	run consume_ids
	[[ ${#lines[@]} == 10 ]] || fail "read_committed sees $((${#lines[@]} - 10)) message(s) of the open transaction"
	# the restart leases the same transactional.id: its init fences the dead
	# producer and aborts its transaction, then it relays the other 30 rows
	run_mqtx 0 relay --transactional --batch 10 -v
	stderr_has ":$T_SCHEMA.mqtx_outbox:relay-0'"
	[[ $(count_status sent) == 40 ]]
	consume_ids >"$BATS_TEST_TMPDIR/committed"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/committed") == 40 ]] ||
		fail "read_committed: $(wc -l <"$BATS_TEST_TMPDIR/committed") messages for 40 rows"
	[[ $(sort -n -u "$BATS_TEST_TMPDIR/committed" | wc -l) == 40 ]]
	# the aborted ten are still in the log, only invisible
	(($(consume_ids --uncommitted | wc -l) == 50))
	# dedupe-audit reads past the transaction markers (gaps in the offsets)
	run_mqtx 0 dedupe-audit --source "kafka:///$T_DEST" --format json
	[[ $(jq -c '[.duplicates.keys, .missing.count, .strangers.keys, .order.out_of_order, .outbox_sent]' <<<"$output") == '[0,0,0,0,40]' ]] ||
		fail "audit: $output"
}

@test "kafka: txpub --mode kafka-tx --sql: when the database side fails after the publish, the broker transaction is aborted: in the log, invisible to read_committed" {
	skip_unless_failpoints
	echo "SELECT 1" >"$BATS_TEST_TMPDIR/ok.sql"
	MQTX_FAILPOINTS="txpub.after_publish=error" run_mqtx 10 txpub --mode kafka-tx --sql "$BATS_TEST_TMPDIR/ok.sql" \
		-d "$T_DEST" --key order-1 --payload one
	run consume_ids --uncommitted
	[[ ${#lines[@]} == 1 ]] || fail "expected the aborted message in the log, got ${#lines[@]} message(s)"
	run "$KAFKA_TOOL" consume "$MQTX_TEST_KAFKA_BROKERS" "$T_DEST" --timeout 3
	assert_output ""
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
	[[ $(psql_test "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'mqtx:%'") == 0 ]]
	# the same again without the fault: committed, visible once
	run_mqtx 0 txpub --mode kafka-tx --sql "$BATS_TEST_TMPDIR/ok.sql" -d "$T_DEST" --key order-1 --payload one
	run jq -r .body < <("$KAFKA_TOOL" consume "$MQTX_TEST_KAFKA_BROKERS" "$T_DEST" --timeout 3)
	assert_output "one"
}

@test "kafka: dedupe-audit reads across transaction markers (gaps in the offsets) and --from/--to bounds around them" {
	insert_rows 12 "$T_DEST" "'one'"
	# three transactions on one partition: offsets 0-3, marker 4, 5-8, marker 9, 10-13, marker 14
	run_mqtx 0 relay --transactional --batch 4
	"$KAFKA_TOOL" consume "$MQTX_TEST_KAFKA_BROKERS" "$T_DEST" --timeout 3 | jq -r .offset | tr '\n' ' ' >"$BATS_TEST_TMPDIR/offsets"
	[[ $(cat "$BATS_TEST_TMPDIR/offsets") == "0 1 2 3 5 6 7 8 10 11 12 13 " ]] || fail "offsets: $(cat "$BATS_TEST_TMPDIR/offsets")"
	# the whole topic: its end (15) is behind a marker, not a message
	run_mqtx 0 dedupe-audit --source "kafka:///$T_DEST" --format json
	[[ $(jq -c '[.deliveries, .duplicates.keys, .missing.count, .order.out_of_order, .outbox_sent]' <<<"$output") == '[12,0,0,0,12]' ]] || fail "$output"
	stderr_lacks "nothing arrived"
	# [5,10): offsets 5-8, then the marker at 9; the reader must not wait for it
	run_mqtx 8 dedupe-audit --source "kafka:///$T_DEST" --from 5 --to 10 --format json
	[[ $(jq -c '[.deliveries, .missing.count, .order.out_of_order]' <<<"$output") == '[4,8,0]' ]] || fail "$output"
	[[ $(jq -r .read <<<"$output") == *"2[5,10)"*"to the end at start" ]] || fail "$(jq -r .read <<<"$output")"
	stderr_lacks "nothing arrived"
	# [9,10): only the marker
	run_mqtx 8 dedupe-audit --source "kafka:///$T_DEST" --from 9 --to 10 --format json
	[[ $(jq -c '[.deliveries, .missing.count]' <<<"$output") == '[0,12]' ]] || fail "$output"
	stderr_lacks "nothing arrived"
}

@test "kafka: the idempotent producer through a broker kill -9 and restart: every row once, in key order" {
	[[ ${MQTX_TEST_KAFKA_LOCAL:-0} == 1 ]] || skip "needs the Kafka broker started by tests/helpers/kafka.sh"
	# in flight at the kill, retried by librdkafka until the broker is back
	export MQTX_RELAY_BACKOFF_INITIAL=200ms MQTX_RELAY_BACKOFF_MAX=1s MQTX_BROKER_CONFIRM_TIMEOUT=60s
	# the kill comes while batches are in flight
	insert_rows 6000 "$T_DEST" "'k' || (g % 10)"
	# librdkafka's reconnect backoff grows to 10 s by default: 1 s here
	printf 'broker:\n  kafka:\n    reconnect.backoff.max.ms: "1000"\n' >"$BATS_TEST_TMPDIR/mqtx.yaml"
	mqtx_bg relay --config "$BATS_TEST_TMPDIR/mqtx.yaml" --loop --batch 100
	wait_sent 30 '>' 0
	"$BATS_TEST_DIRNAME/helpers/kafka.sh" down "$MQTX_TEST_STATEDIR" --kill
	local at_kill
	at_kill=$(count_status sent)
	insert_rows 2000 "$T_DEST" "'k' || (g % 10)"
	sleep 1
	"$BATS_TEST_DIRNAME/helpers/kafka.sh" up "$MQTX_TEST_STATEDIR"
	wait_sent 60 '==' 8000 || fail "sent: $(count_status sent) of 8000; $(tail -5 "$MQTX_BG_ERR")"
	mqtx_bg_stop
	((at_kill < 6000)) || fail "all rows were relayed before the kill ($at_kill): the test proves nothing"
	delivered_once_in_order "$MQTX_TEST_KAFKA_BROKERS" 8000
}

@test "kafka: a 3-node cluster (replication 3, min.insync.replicas 2): a broker killed under relay --loop and started again: every row once, in key order" {
	[[ ${MQTX_TEST_KAFKA_LOCAL:-0} == 1 ]] || skip "needs the local Kafka broker's jars (tests/helpers/kafka.sh)"
	KCL=$(mktemp -d /tmp/mqtx-kcl.XXXXXX)
	"$BATS_TEST_DIRNAME/helpers/kafka.sh" cluster-start "$KCL" || fail "cannot start the Kafka cluster"
	# shellcheck source=/dev/null
	source "$KCL/env"
	local brokers=$MQTX_TEST_KCLUSTER_BROKERS
	"$KAFKA_TOOL" create-topic "$brokers" "$T_DEST" 3 >/dev/null || fail "cannot create topic $T_DEST"
	export MQTX_BROKER_URL="kafka://$brokers"
	export MQTX_RELAY_BACKOFF_INITIAL=200ms MQTX_RELAY_BACKOFF_MAX=1s MQTX_BROKER_CONFIRM_TIMEOUT=60s
	printf 'broker:\n  kafka:\n    reconnect.backoff.max.ms: "1000"\n' >"$BATS_TEST_TMPDIR/mqtx.yaml"
	insert_rows 6000 "$T_DEST" "'k' || (g % 10)"
	mqtx_bg relay --config "$BATS_TEST_TMPDIR/mqtx.yaml" --loop --batch 100
	wait_sent 30 '>' 0
	# node 1 leads about a third of the partitions (and may be the active controller)
	"$BATS_TEST_DIRNAME/helpers/kafka.sh" cluster-kill "$KCL" 1
	local at_kill
	at_kill=$(count_status sent)
	insert_rows 2000 "$T_DEST" "'k' || (g % 10)"
	sleep 2
	"$BATS_TEST_DIRNAME/helpers/kafka.sh" cluster-up "$KCL" 1
	wait_sent 90 '==' 8000 || fail "sent: $(count_status sent) of 8000; $(tail -5 "$MQTX_BG_ERR")"
	mqtx_bg_stop
	((at_kill < 6000)) || fail "all rows were relayed before the kill ($at_kill): the test proves nothing"
	delivered_once_in_order "$brokers" 8000
}
