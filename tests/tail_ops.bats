#!/usr/bin/env bats
# redeliver, retention and dedupe-audit on a tail-mode outbox
# (outbox.mode: tail): "sent" is what the relay relayed (rows its bucket's
# checkpoint covers, not parked), "dead" a parked dead row. Checkpoints are
# set by hand where a test needs rows relayed without a relay: prev =
# pg_current_snapshot() after the inserts covers every committed row.

load test_helper
load backend

setup() {
	# mqtx init makes the tail-mode outbox: the txid column, its trigger,
	# the checkpoints (4 buckets) and the parked table
	export MQTX_OUTBOX_MODE=tail MQTX_OUTBOX_TAIL_BUCKETS=4
	backend_test_setup
	OB="\"$T_SCHEMA\".\"mqtx_outbox\""
}

teardown() {
	local gid
	for gid in $(psql_test "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tailops:%' AND database = current_database()" 2>/dev/null); do
		psql_test "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1 || true
	done
	mqtx_test_teardown
}

# relayed: every committed row is relayed, as far as the checkpoints say
relayed() {
	psql_test "UPDATE mqtx_tail_checkpoints SET prev_snapshot = pg_current_snapshot(), cur_snapshot = NULL, pos_id = NULL" >/dev/null
}

# park ID STATE [AGE]: parks row ID (its bucket as the design computes it), last changed AGE ago
park() {
	psql_test "INSERT INTO mqtx_tail_parked (outbox, id, bucket, ordering_key, state, attempts, next_at, last_error, updated_at)
		SELECT '$OB', id, CASE WHEN ordering_key IS NULL THEN id % 4 ELSE (hashtext(ordering_key) & 2147483647) % 4 END,
		ordering_key, '$2', 5, now() + interval '1 hour', 'test', now() - interval '${3:-0 seconds}'
		FROM mqtx_outbox WHERE id = $1" >/dev/null
}

key_of() {
	psql_test "SELECT idempotency_key FROM mqtx_outbox WHERE id = $1"
}

# selected N ARGS...: a dry run of redeliver ARGS selects N rows
selected() {
	local n=$1
	shift
	run_mqtx 0 redeliver --dry-run "$@"
	[[ $stderr == *"dry run: $n row(s) selected"* ]] || fail "redeliver $* selected: $stderr (expected $n)"
}

# the ids the broker got, sorted, space separated (N: how many to wait for)
got_ids() {
	backend_consume "$1" | jq -r '.id' | sort -n | tr '\n' ' ' | sed 's/ $//'
}

# rows 1-3 key k1, 4-6 no key: relayed; 7-8 committed after the checkpoint
six_relayed_two_not() {
	insert_rows 3 "$T_DEST" "'k1'"
	insert_rows 3
	relayed
	insert_rows 2
}

@test "tail redeliver: every selector sees the tail meaning of sent and dead" {
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
	six_relayed_two_not
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '2 hours' WHERE id = 1;
		UPDATE mqtx_outbox SET redelivery_count = 10 WHERE id = 3;
		INSERT INTO mqtx_completions (idempotency_key) SELECT idempotency_key FROM mqtx_outbox WHERE id = 4" >/dev/null
	park 2 dead
	# the status column says pending for all: the checkpoint and the parked table decide
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'pending'") == 8 ]]
	selected 5 --status sent
	selected 1 --status dead
	selected 6 --status sent --status dead
	selected 1 --id 1,2,7
	selected 1 --id 2 --status dead
	selected 1 --key "$(key_of 5)"
	selected 0 --key "$(key_of 7)"
	selected 2 --ordering-key k1
	selected 5 --destination "$T_DEST"
	selected 0 --destination nowhere
	selected 4 --since 1h
	selected 1 --until 1h
	# no sent_at in tail mode: --time-column sent compares created_at
	selected 4 --since 1h --time-column sent
	selected 1 --until 1h --time-column sent
	selected 2 --where "ordering_key = 'k1' AND id <= 3"
	selected 1 --where "id >= 6"
	# relayed, not completed, created long enough ago, not re-sent 10 times
	selected 1 --unacked-after 1h
	selected 3 --unacked-after 1ms
	selected 4 --unacked-after 1ms --max-redeliveries 0
	# the dry run shows the effective status
	run_mqtx 0 redeliver --dry-run --id 1-8 --status sent --status dead
	[[ $output == *dead* && $output == *sent* ]] || fail "dry run rows: $output"
}

@test "tail redeliver: re-sends relayed rows with their keys; without --yes nothing changes" {
	six_relayed_two_not
	local before
	before=$(psql_test "SELECT string_agg(id || ':' || xmin || ':' || txid, ' ' ORDER BY id) FROM mqtx_outbox")
	run_mqtx 0 redeliver --status sent
	stderr_has "Nothing was changed"
	[[ $(psql_test "SELECT string_agg(id || ':' || xmin || ':' || txid, ' ' ORDER BY id) FROM mqtx_outbox") == "$before" ]]

	run_mqtx 0 redeliver --id 2 --yes
	run_mqtx 0 redeliver --ordering-key k1 --id 3 --yes
	run_mqtx 0 redeliver --id 7 --yes # not relayed: the relay's to send
	backend_consume 2 >"$BATS_TEST_TMPDIR/got"
	[[ $(jq -r '.id' "$BATS_TEST_TMPDIR/got" | sort -n | tr '\n' ' ') == "2 3 " ]] || fail "got: $(cat "$BATS_TEST_TMPDIR/got")"
	[[ $(jq -r 'select(.id == 2) | .key' "$BATS_TEST_TMPDIR/got") == "$(key_of 2)" ]]
	[[ $(jq -r 'select(.id == 3) | .key' "$BATS_TEST_TMPDIR/got") == "$(key_of 3)" ]]
	# bookkeeping columns only: status and txid as they were
	run psql_test "SELECT string_agg(id || ':' || status || ':' || redelivery_count || ':' || (redelivered_at IS NOT NULL), ' ' ORDER BY id) FROM mqtx_outbox"
	[[ $output == "1:pending:0:false 2:pending:1:true 3:pending:1:true 4:pending:0:false 5:pending:0:false 6:pending:0:false 7:pending:0:false 8:pending:0:false" ]] || fail "rows: $output"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE txid IS NULL") == 0 ]]
}

@test "tail redeliver: --status dead --requeue sets parked dead rows to retry, due now; a re-sent dead row is relayed" {
	six_relayed_two_not
	park 2 dead
	park 5 dead
	park 6 retry
	# a dead row of the status era
	psql_test "UPDATE mqtx_outbox SET status = 'dead', txid = NULL WHERE id = 4" >/dev/null
	local before
	before=$(psql_test "SELECT string_agg(id || ':' || xmin, ' ' ORDER BY id) FROM mqtx_outbox WHERE id IN (2, 5)")
	selected 3 --status dead
	run_mqtx 0 redeliver --status dead --requeue
	stderr_has "Nothing was changed"
	[[ $(psql_test "SELECT string_agg(id || ':' || state, ' ' ORDER BY id) FROM mqtx_tail_parked") == "2:dead 5:dead 6:retry" ]]

	run_mqtx 0 redeliver --status dead --requeue --id 2,4 --yes
	stderr_has "requeued 2 dead row(s)"
	run psql_test "SELECT string_agg(id || ':' || state || ':' || attempts || ':' || (next_at <= now()), ' ' ORDER BY id) FROM mqtx_tail_parked"
	[[ $output == "2:retry:0:true 5:dead:5:false 6:retry:5:false" ]] || fail "parked: $output"
	# the parked row changed, never the outbox row
	[[ $(psql_test "SELECT string_agg(id || ':' || xmin, ' ' ORDER BY id) FROM mqtx_outbox WHERE id IN (2, 5)") == "$before" ]]
	# the status-era dead row is pending again, at the end of the tail (its txid bumped)
	[[ $(psql_test "SELECT status || ':' || attempts || ':' || (txid IS NOT NULL) FROM mqtx_outbox WHERE id = 4") == "pending:0:true" ]]
	selected 1 --status dead

	# re-sending the parked dead row: delivered, no longer parked, so relayed
	run_mqtx 0 redeliver --status dead --yes
	[[ $(got_ids 1) == 5 ]]
	[[ $(psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_tail_parked") == "2 6" ]]
	[[ $(psql_test "SELECT status || ':' || redelivery_count FROM mqtx_outbox WHERE id = 5") == "pending:1" ]]
	selected 0 --status dead
	selected 1 --status sent --id 5
}

@test "tail redeliver: a row waits behind a parked row of its key" {
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
	insert_rows 3 "$T_DEST" "'k1'"
	relayed
	park 1 retry
	run_mqtx 1 redeliver --id 2,3 --yes
	stderr_has "held back 2"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE redelivery_count > 0") == 0 ]]
}

@test "tail retention: only relayed rows go; unrelayed, parked and half messages stay" {
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
	# 1-2: relayed, old; 3: relayed, young; 4: parked retry, old; 5: parked dead, old;
	# 6: parked dead, young; 7: a half message (parked until --commit), old
	# (the rows of one transaction share their created_at: 3 is a transaction of its own)
	insert_rows 2
	insert_rows 1
	insert_rows 3
	psql_test "INSERT INTO mqtx_outbox (destination, routing_key, payload, available_at)
		VALUES ('$T_DEST', 'test.rk', '\\x00', 'infinity')" >/dev/null
	# 8: a dead row and 9: a sent row of the status era, old
	psql_test "INSERT INTO mqtx_outbox (destination, routing_key, payload, status, sent_at, txid)
		VALUES ('$T_DEST', 'test.rk', '\\x00', 'dead', NULL, NULL), ('$T_DEST', 'test.rk', '\\x00', 'sent', now() - interval '3 hours', NULL)" >/dev/null
	relayed
	park 4 retry '3 hours'
	park 5 dead '3 hours'
	park 6 dead
	park 7 retry '3 hours'
	# 10: committed after the checkpoint, old
	insert_rows 1
	# 11: a prepared transaction's row, old
	psql_test "BEGIN; SET LOCAL mqtx.skip_notify = 'on'; INSERT INTO mqtx_outbox (destination, routing_key, payload, created_at)
		VALUES ('$T_DEST', 'test.rk', '\\x00', now() - interval '3 hours'); PREPARE TRANSACTION 'tailops:$T_SCHEMA'" >/dev/null
	# (not available_at of pending rows: the txid trigger would put them back in the tail)
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '3 hours' WHERE id <> 3;
		UPDATE mqtx_outbox SET available_at = now() - interval '3 hours' WHERE id = 8" >/dev/null
	# mqtx check's preview counts them
	MQTX_OUTBOX_RETENTION=1h MQTX_OUTBOX_DEAD_RETENTION=1h run_mqtx '*' check --format json
	[[ $(jq -c "[.retention.due.sent.rows, .retention.due.dead.rows]" <<<"$output") == "[3,2]" ]] ||
		fail "check's preview: $(jq -c .retention <<<"$output")"
	# a relay run prunes (the broker is not there: nothing is relayed, row 10 stays unrelayed)
	local nb
	if [[ $(backend_name) == amqp ]]; then nb="amqp://guest:guest@127.0.0.1:1/%2f"; else nb="kafka://127.0.0.1:1"; fi
	MQTX_OUTBOX_RETENTION=1h MQTX_OUTBOX_DEAD_RETENTION=1h MQTX_BROKER_URL=$nb MQTX_BROKER_CONFIRM_TIMEOUT=2s run_mqtx '*' relay
	[[ $stderr == *"retention: deleted 5 outbox row(s) (3 sent, 2 dead"* ]] || fail "summary: $stderr"
	[[ $(psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox") == "3 4 6 7 10" ]] || fail "left: $(psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox")"
	[[ $(psql_test "SELECT string_agg(id || ':' || state, ' ' ORDER BY id) FROM mqtx_tail_parked") == "4:retry 6:dead 7:retry" ]]
	psql_test "COMMIT PREPARED 'tailops:$T_SCHEMA'" >/dev/null
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE id = 11") == 1 ]]
}

@test "tail dedupe-audit: relayed rows are the sent rows; unrelayed and parked dead rows are not" {
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
	six_relayed_two_not
	park 6 dead
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '1 minute'" >/dev/null
	local k
	: >"$BATS_TEST_TMPDIR/clean"
	for k in 1 2 3 4 5; do printf '{"key":"%s"}\n' "$(key_of $k)" >>"$BATS_TEST_TMPDIR/clean"; done
	# rows 1-5 relayed and delivered: nothing lost (7 and 8 are not relayed, 6 is dead)
	run_mqtx 0 dedupe-audit --source - <"$BATS_TEST_TMPDIR/clean"
	assert_line --regexp '^  result +OK'
	# one relayed row missing: lost
	head -4 "$BATS_TEST_TMPDIR/clean" >"$BATS_TEST_TMPDIR/lost"
	run_mqtx 8 dedupe-audit --source - --format json <"$BATS_TEST_TMPDIR/lost"
	# a duplicate of a relayed row
	{ cat "$BATS_TEST_TMPDIR/clean"; head -1 "$BATS_TEST_TMPDIR/clean"; } >"$BATS_TEST_TMPDIR/dup"
	run_mqtx 1 dedupe-audit --source - <"$BATS_TEST_TMPDIR/dup"
	# the window is on created_at (tail mode has no sent_at): rows created in the last 10 s are none
	run_mqtx 0 dedupe-audit --source - --since 10s <"$BATS_TEST_TMPDIR/lost"
}

@test "tail end to end: redeliver --status sent re-sends what the relay relayed, with the same keys; retention after a relay run" {
	insert_rows 3 "$T_DEST" "'k1'"
	insert_rows 2
	run_mqtx 0 relay
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'pending'") == 5 ]]
	selected 5 --status sent
	run_mqtx 0 redeliver --status sent --yes
	stderr_has "redelivered 5, failed 0, held back 0"
	backend_consume 10 >"$BATS_TEST_TMPDIR/got"
	# every row twice, both copies with the row's key
	[[ $(jq -r '.id' "$BATS_TEST_TMPDIR/got" | sort -n | uniq -c | awk '{print $2 ":" $1}' | tr '\n' ' ') == "1:2 2:2 3:2 4:2 5:2 " ]] ||
		fail "got: $(cat "$BATS_TEST_TMPDIR/got")"
	local id
	for id in 1 2 3 4 5; do
		[[ $(jq -r "select(.id == $id) | .key" "$BATS_TEST_TMPDIR/got" | sort -u) == "$(key_of $id)" ]]
	done
	# the relay's next run sends nothing again; its retention deletes the relayed rows that are old
	# (rows 1-3 are one transaction, 4-5 another: a transaction's rows share their created_at)
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '2 hours' WHERE id <= 3" >/dev/null
	insert_rows 1
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_has "relayed 1, failed 0"
	stderr_has "retention: deleted 3 outbox row(s) (3 sent"
	[[ $(psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox") == "4 5 6" ]]
}

@test "tail end to end: a row the relay parked dead goes out on the next run after --status dead --requeue" {
	local gone
	gone=$(missing_dest)
	insert_rows 1 "$gone"
	insert_rows 1
	MQTX_RELAY_MAX_ATTEMPTS=1 run_mqtx '*' relay
	[[ $(psql_test "SELECT string_agg(id || ':' || state, ' ') FROM mqtx_tail_parked") == "1:dead" ]]
	selected 1 --status dead
	psql_test "UPDATE mqtx_outbox SET destination = '$T_DEST' WHERE id = 1" >/dev/null
	run_mqtx 0 redeliver --status dead --requeue --yes
	stderr_has "requeued 1 dead row(s)"
	run_mqtx 0 relay
	stderr_has "relayed 1, failed 0"
	[[ $(psql_test "SELECT count(*) FROM mqtx_tail_parked") == 0 ]]
	selected 2 --status sent
	[[ $(got_ids 2) == "1 2" ]]
}

@test "tail retention on a partitioned outbox: a partition goes when all its rows are relayed; kept rows keep theirs" {
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
	export MQTX_OUTBOX_PARTITION_BY=day
	psql_test "DROP TABLE mqtx_outbox" >/dev/null
	run_mqtx 0 init --partition-by day
	local d
	for d in 01 02 03; do
		psql_test "CREATE TABLE mqtx_outbox_p202001$d PARTITION OF mqtx_outbox FOR VALUES FROM ('2020-01-$d') TO ('2020-01-$d'::date + 1)" >/dev/null
		psql_test "INSERT INTO mqtx_outbox (destination, routing_key, payload, created_at)
			SELECT '$T_DEST', 'test.rk', '\\x00', '2020-01-$d 05:00+00' FROM generate_series(1, 3)" >/dev/null
	done
	relayed
	# 2020-01-02 holds a row parked for a retry, 2020-01-03 one not yet relayed
	park "$(psql_test "SELECT min(id) FROM mqtx_outbox_p20200102")" retry
	psql_test "INSERT INTO mqtx_outbox (destination, routing_key, payload, created_at) VALUES ('$T_DEST', 'test.rk', '\\x00', '2020-01-03 06:00+00')" >/dev/null
	MQTX_OUTBOX_RETENTION=1h MQTX_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2f" MQTX_BROKER_CONFIRM_TIMEOUT=2s run_mqtx '*' relay
	stderr_has "1 partition(s) dropped"
	run psql_test "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'mqtx_outbox'::regclass AND c.relname LIKE 'mqtx_outbox_p2020%' ORDER BY 1"
	[[ $output == $'mqtx_outbox_p20200102\nmqtx_outbox_p20200103' ]] || fail "partitions: $output"
	# the relayed rows of the kept partitions went row by row
	run psql_test "SELECT tableoid::regclass || ':' || (id IN (SELECT id FROM mqtx_tail_parked)) FROM mqtx_outbox ORDER BY id"
	[[ $output == $'mqtx_outbox_p20200102:true\nmqtx_outbox_p20200103:false' ]] || fail "rows: $output"
}
