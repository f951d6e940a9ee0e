#!/usr/bin/env bats
# mqtx check on a tail-mode outbox (outbox.mode: tail), end to end against
# real servers: unrelayed rows by bucket checkpoint, parked rows, blocked
# keys, open and prepared transactions, --explain's story, JSON and
# Prometheus. Progress is faked by setting checkpoints (prev_snapshot =
# pg_current_snapshot()) and parked rows by INSERT into mqtx_tail_parked;
# the last test runs a real tail relay. Runs once per backend (the relay
# test is the only one that needs the broker).

load test_helper
load backend
load tail_helper

BUCKETS=4

setup() {
	mqtx_test_setup
	backend_setup
	export MQTX_OUTBOX_MODE=tail MQTX_OUTBOX_TAIL_BUCKETS=$BUCKETS
	run_mqtx 0 init
	[[ $(psql_test "SELECT count(*) FROM mqtx_tail_checkpoints") == "$BUCKETS" ]] || fail "init made no $BUCKETS checkpoints"
	OUTBOX="\"$T_SCHEMA\".\"mqtx_outbox\""
	XACT_APP="xact-$T_SCHEMA"
	GID="check-tail-$T_SCHEMA"
}

teardown() {
	end_xacts
	psql_test "ROLLBACK PREPARED '$GID'" >/dev/null 2>&1 || true
	mqtx_test_teardown
}

# add N [AGE] [OKEY]: N rows without an ordering key (bucket = id % 4),
# created AGE ago and due since then.
add() {
	local n=$1 age=${2:-0} okey=${3:-}
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload, created_at, available_at)
		SELECT '$T_DEST', 'test.rk', NULLIF('$okey', ''), convert_to('{}', 'UTF8'),
			now() - interval '$age', now() - interval '$age'
		FROM generate_series(1, $n)"
}

# checkpoint BUCKETS [RELAY_ID]: buckets (a SQL list, e.g. 0,1) relayed up to now.
checkpoint() {
	psql_test "UPDATE mqtx_tail_checkpoints SET prev_snapshot = pg_current_snapshot(), cur_snapshot = NULL,
		pos_id = NULL, relay_id = '${2:-relay-a}', updated_at = now() WHERE bucket IN ($1)"
}

# park ID STATE [ATTEMPTS] [NEXT_AT_SQL] [ERROR]
park() {
	psql_test "INSERT INTO mqtx_tail_parked(outbox, id, bucket, ordering_key, state, attempts, next_at, last_error)
		SELECT '$OUTBOX', id, CASE WHEN ordering_key IS NULL THEN id % $BUCKETS
			ELSE (hashtext(ordering_key) & 2147483647) % $BUCKETS END, ordering_key, '$2', ${3:-0},
			${4:-NULL}, NULLIF('${5:-}', '') FROM mqtx_outbox WHERE id = $1"
}

fake_relay() {
	psql_test "INSERT INTO mqtx_relays(relay_id, outbox, host, pid, version, started_at, last_seen)
		VALUES ('$1', '$OUTBOX', 'host-a', 4242, 'test', now() - interval '1 hour', now() - interval '${2:-1 second}')"
}

check_json() {
	local rc=$1
	shift
	run_mqtx "$rc" check --format json "$@"
	jq -e '.version == 1' <<<"$output" >/dev/null || fail "not a version 1 JSON document: $output"
}

jq_is() {
	local got
	got=$(jq -r "$1" <<<"$output") || fail "jq '$1' failed on: $output"
	[[ $got == "$2" ]] || fail "jq '$1': expected '$2', got '$got' in: $output"
}

jq_true() { jq -e "$1" <<<"$output" >/dev/null || fail "jq '$1' is not true on: $output"; }

# older SECS SQL_AGE_EXPR: wait until the transaction (by SQL) is older than SECS.
xact_older() {
	[[ $(psql_test "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$XACT_APP'
		AND xact_start < now() - interval '$1 seconds'") == 1 ]]
}
prepared_older() {
	[[ $(psql_test "SELECT count(*) FROM pg_prepared_xacts WHERE gid = '$GID'
		AND prepared < now() - interval '$1 seconds'") == 1 ]]
}

@test "check tail: a fresh tail-mode outbox is OK, with the tail facts in JSON and no relayed traffic counted" {
	check_json 0
	jq_is '.tail.buckets' $BUCKETS
	jq_is '.tail.unrelayed.rows' 0
	jq_is '.tail.bucket_groups | length' 1
	jq_is '.tail.bucket_groups[0].buckets' "0-$((BUCKETS - 1))"
	jq_is '.tail.bucket_groups[0].prev_snapshot' null
	jq_is '.tail.bucket_groups[0].owner_pid' null
	jq_is '.relayed_last_hour' null
	jq_is '[.tail.parked.retry, .tail.parked.blocked, .tail.parked.dead] | join(",")' 0,0,0
	# status mode: no tail section, and a warning that the mode is not the relays'
	MQTX_OUTBOX_MODE=status check_json 1
	jq_is '.tail' null
	jq_is '[.problems[].check] | join(",")' outbox_mode
	jq_true '.problems[0].action | test("MQTX_OUTBOX_MODE=tail")'
}

@test "check tail: rows stay 'pending' but only those not covered by their bucket's checkpoint are unrelayed" {
	fake_relay live-1
	add 8 '10 minutes' # ids 1..8: two per bucket
	checkpoint 0,1 relay-a
	add 2 '1 minute' # ids 9, 10: buckets 1 and 2, after the checkpoint
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'pending'") == 10 ]]
	check_json 2 --warn-age 5m --crit-age 8m
	jq_is '.tail.unrelayed.rows' 6
	jq_is '.counts.pending.rows' 6
	jq_is '.counts.sent.rows' 4
	jq_is '.tail.oldest_unrelayed_id' 2
	jq_true '.tail.oldest_unrelayed_age_seconds >= 600'
	jq_is '.problems[0].check' pending_age
	jq_is '.problems[0].count' 4
	jq_is '.tail.bucket_groups | length' 2
	jq_is '.tail.bucket_groups[0].buckets' 0-1
	jq_is '.tail.bucket_groups[0].relay_id' relay-a
	jq_is '.tail.bucket_groups[0].unrelayed' 1
	jq_true '.tail.bucket_groups[0].checkpoint_lag_seconds >= 60 and .tail.bucket_groups[0].checkpoint_lag_seconds < 600'
	jq_is '.tail.bucket_groups[1].buckets' 2-3
	jq_is '.tail.bucket_groups[1].relay_id' null
	jq_is '.tail.bucket_groups[1].unrelayed' 5
	jq_true '.tail.bucket_groups[1].checkpoint_lag_seconds >= 600'
	# the rest of the buckets catch up
	checkpoint 0,1,2,3 relay-a
	check_json 0 --warn-age 5m --crit-age 8m
	jq_is '.tail.unrelayed.rows' 0
	jq_is '.counts.sent.rows' 10
	jq_is '.tail.bucket_groups | length' 1
	jq_is '.tail.bucket_groups[0].checkpoint_lag_seconds' 0
	run_mqtx 0 check
	assert_line --index 0 --regexp "^OK - outbox $T_SCHEMA\.mqtx_outbox: 0 pending, 0 dead, tail mode: 0 unrelayed"
	assert_output --partial "tail mode: $BUCKETS buckets (0 held by a relay now), 0 unrelayed row(s)"
}

@test "check tail: inside an interval, rows up to the checkpoint's position are relayed and --explain says where a row is" {
	fake_relay live-1
	psql_test "UPDATE mqtx_tail_checkpoints SET prev_snapshot = pg_current_snapshot()"
	add 8
	# the relay took snapshot cur and is at id 4 inside (prev, cur]
	psql_test "UPDATE mqtx_tail_checkpoints SET cur_snapshot = pg_current_snapshot(), pos_id = 4, relay_id = 'relay-b'"
	add 4 # ids 9..12: after cur
	check_json 0
	jq_is '.tail.unrelayed.rows' 8
	jq_is '.counts.sent.rows' 4
	check_json 0 --explain 3
	jq_is .status sent
	jq_is '.tail.covered' true
	jq_is '.tail.bucket' 3
	jq_is '.tail.checkpoint.position_id' 4
	jq_true '.verdict | test("^relayed: covered by bucket 3.s checkpoint")'
	check_json 0 --explain 6
	jq_is .status pending
	jq_is '.tail.in_cur_snapshot' true
	jq_is '.tail.in_prev_snapshot' false
	jq_true '.verdict | test("in the interval bucket 2 works on, after its position \\(id 6 > 4\\)")'
	check_json 0 --explain 10
	jq_true '.verdict | test("committed after bucket 2.s checkpoint")'
	key=$(jq -r .key <<<"$output")
	jq_is '.tail.unrelayed_ahead' 1
	jq_true '.story | map(test("1 unrelayed row\\(s\\) of bucket 2 go before it")) | any'
	jq_true '.story | map(test("no relay holds bucket 2 right now")) | any'
	run_mqtx 0 check --explain 10
	assert_line --index 0 --partial "OK - row 10: waiting for the relay: committed after bucket 2's checkpoint"
	assert_output --regexp "bucket +2"
	# by its (derived) idempotency key
	check_json 0 --explain "$key"
	jq_is .id 10
	jq_is '.tail.bucket' 2
	# written for later: not late until then, and the relay will park it
	psql_test "INSERT INTO mqtx_outbox(destination, payload, created_at, available_at)
		VALUES ('$T_DEST', '\\x00', now() - interval '2 hours', now() + interval '1 hour')"
	check_json 0 --explain 13
	jq_true '.story | map(test("^scheduled: not before .* the relay parks it until then")) | any'
}

@test "check tail: parked rows: retry and blocked count as pending, dead ones as dead; blocked keys and --explain name them" {
	fake_relay live-1
	add 1 '2 minutes' cust-7 # 1: fails
	add 2 '2 minutes' cust-7 # 2, 3: behind it
	add 1 '2 minutes'        # 4: dead
	add 1 '2 minutes' cust-8 # 5: a delayed delivery
	checkpoint 0,1,2,3
	park 1 retry 2 "now() + interval '10 minutes'" 'nack: 406 PRECONDITION_FAILED'
	park 2 blocked
	park 3 blocked
	park 4 dead 10 NULL 'unroutable: no queue'
	park 5 retry 0 "now() + interval '1 hour'"
	check_json 2 --warn-attempts 2
	jq_is '.tail.unrelayed.rows' 0
	jq_is '[.tail.parked.retry, .tail.parked.blocked, .tail.parked.dead] | join(",")' 2,2,1
	jq_is '.tail.blocked_keys' 1
	jq_is '.counts.pending.rows' 4
	jq_is '.counts.dead.rows' 1
	jq_is '.counts.sent.rows' 0
	jq_is '[.problems[].check] | join(",")' dead_rows,blocked_ordering_keys,high_attempts
	jq_is '.problems[0].rows[0].id' 4
	jq_is '.problems[0].rows[0].last_error' 'unroutable: no queue'
	jq_is '.problems[0].rows[0].attempts' 10
	jq_is '.problems[1].ordering_keys[0].ordering_key' cust-7
	jq_is '.problems[1].ordering_keys[0].head.id' 1
	jq_is '.problems[1].ordering_keys[0].behind' 2
	jq_is '.problems[2].rows[0].id' 1
	check_json 1 --max-dead 1 --warn-attempts 3
	jq_is '[.problems[].check] | join(",")' blocked_ordering_keys

	check_json 1 --explain 1
	jq_is .attempts 2
	jq_is '.tail.parked.state' retry
	jq_is .behind 2
	jq_true '.verdict | test("^parked for retry: attempt 3 of [0-9]+ in ")'
	jq_true '.actions | map(test("UPDATE .*mqtx_tail_parked SET next_at = now\\(\\) WHERE .* AND id = 1")) | any'
	jq_true '.story | map(test("2 later row\\(s\\) of ordering key .cust-7. are parked .blocked. behind it")) | any'
	check_json 1 --explain 3
	jq_is '.tail.parked.state' blocked
	jq_true ".verdict | test(\"parked 'blocked': it waits behind row 1 of ordering key 'cust-7', which keeps failing\")"
	jq_is '.actions[0]' 'mqtx check --explain 1'
	check_json 2 --explain 4
	jq_is .status dead
	jq_is .last_error 'unroutable: no queue'
	jq_is '.actions[1]' 'mqtx redeliver --status dead --id 4 --requeue --yes'
	check_json 0 --explain 5
	jq_true '.verdict | test("parked until its delivery time")'
	# a row relayed in status mode, before the switch
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, sent_at, txid)
		VALUES ('$T_DEST', '\\x00', 'sent', now() - interval '1 day', NULL)"
	check_json 0 --explain 6
	jq_is .status sent
	jq_true '.verdict | test("^sent 1d")'
	jq_true '.story | map(test("a row of the status era")) | any'
	run_mqtx 2 check
	assert_output --partial "parked: 2 retry, 2 blocked, 1 dead; 1 blocked key(s)"
}

@test "check tail: an open transaction is invisible, holds back nobody else, and is an old_transaction alarm past check.warn_age" {
	fake_relay live-1
	add 2
	checkpoint 0,1,2,3
	open_xact
	add 1 # committed after the open one started: unrelayed, counted
	check_json 0 --warn-age 1h --crit-age 2h
	jq_is '.tail.unrelayed.rows' 1
	jq_is '.tail.transactions | map(select(.application_name == "'"$XACT_APP"'")) | length' 1
	jq_is '.tail.transactions[0].wrote_outbox' true
	jq_is '.tail.transactions[0].prepared' false

	wait_until 10 xact_older 1
	check_json 1 --warn-age 1s --crit-age 1h
	jq_is '.problems | map(select(.check == "old_transaction")) | length' 1
	jq_is '.problems | map(select(.check == "old_transaction"))[0].severity' warning
	jq_true '.problems | map(select(.check == "old_transaction"))[0].message | test("wrote to the outbox")'
	jq_true '.problems | map(select(.check == "old_transaction"))[0].transactions[0].pid > 0'
	jq_true '.tail.old_transaction_age_seconds >= 1'
	check_json 2 --warn-age 1s --crit-age 1s
	jq_is '.problems | map(select(.check == "old_transaction"))[0].severity' critical
	check_json 0 --warn-age 0 --crit-age 0

	# the row it wrote: check only sees committed rows
	check_json 3 --explain "$XACT_ID"
	jq_is .found false
	jq_true '.verdict | test("check only sees committed rows")'
	jq_true '.writers | map(select(.application_name == "'"$XACT_APP"'" and .wrote_outbox)) | length == 1'
	run_mqtx 3 check --explain "$XACT_ID"
	assert_output --partial "check only sees committed rows"
	assert_output --regexp "backend pid [0-9]+ \\(xid [0-9]+, $XACT_APP, [a-z ]+\\), open for [^,]+, wrote to the outbox"

	# once it commits, its row is unrelayed like any other
	commit_xact
	check_json 0 --warn-age 1h --crit-age 2h
	jq_is '.tail.unrelayed.rows' 2
	jq_is '.tail.transactions | length' 0
	check_json 0 --explain "$XACT_ID" --warn-age 1h --crit-age 2h
	jq_true '.verdict | test("waiting for the relay")'
}

@test "check tail: a prepared transaction that wrote to the outbox is named by its gid and alarms past its age" {
	fake_relay live-1
	psql_test "BEGIN; SET LOCAL mqtx.skip_notify = 'on';
		INSERT INTO mqtx_outbox(destination, payload) VALUES ('$T_DEST', '\\x00'); PREPARE TRANSACTION '$GID'"
	add 1
	check_json 0 --warn-age 1h --crit-age 2h
	jq_is '.tail.unrelayed.rows' 1
	jq_is ".tail.transactions | map(select(.gid == \"$GID\")) | length" 1
	jq_is ".tail.transactions | map(select(.gid == \"$GID\"))[0].prepared" true
	jq_is ".tail.transactions | map(select(.gid == \"$GID\"))[0].wrote_outbox" true
	wait_until 10 prepared_older 1
	check_json 2 --warn-age 1s --crit-age 1s
	jq_true '.problems | map(select(.check == "old_transaction"))[0].message | test("prepared transaction .'"$GID"'.")'
	jq_true '.problems | map(select(.check == "old_transaction"))[0].action | test("ROLLBACK PREPARED .'"$GID"'.")'
	run_mqtx 2 check --warn-age 1s --crit-age 1s
	assert_output --partial "prepared transaction '$GID'"
	run_mqtx 3 check --explain 1
	assert_output --partial "prepared transaction '$GID'"
	psql_test "COMMIT PREPARED '$GID'"
	check_json 0 --warn-age 1h --crit-age 2h
	jq_is '.tail.unrelayed.rows' 2
	jq_is '.tail.transactions | length' 0
}

@test "check tail: Prometheus lines for the tail facts; status mode has none" {
	fake_relay live-1
	add 8 '10 minutes'
	checkpoint 0,1
	add 1
	park 1 dead 10 NULL boom
	run_mqtx 2 check --format prometheus
	local o="outbox=\"$T_SCHEMA.mqtx_outbox\""
	assert_line "mqtx_tail_buckets{$o} 4"
	assert_line "mqtx_tail_unrelayed_rows{$o} 5"
	assert_line --regexp "^mqtx_tail_oldest_unrelayed_age_seconds\{$o\} [0-9]{3}\.[0-9]{3}$"
	assert_line --regexp "^mqtx_tail_checkpoint_lag_seconds\{$o,buckets=\"0-1\"\} [0-9.]+$"
	assert_line --regexp "^mqtx_tail_checkpoint_lag_seconds\{$o,buckets=\"2-3\"\} [0-9]{3}\.[0-9]{3}$"
	assert_line "mqtx_tail_bucket_unrelayed_rows{$o,buckets=\"2-3\"} 4"
	assert_line "mqtx_tail_parked_rows{$o,state=\"dead\"} 1"
	assert_line "mqtx_tail_parked_rows{$o,state=\"retry\"} 0"
	assert_line "mqtx_tail_blocked_keys{$o} 0"
	assert_line "mqtx_tail_old_transaction_age_seconds{$o} 0.000"
	assert_line "mqtx_outbox_rows{$o,status=\"dead\"} 1"
	MQTX_OUTBOX_MODE=status run_mqtx '*' check --format prometheus
	refute_output --partial mqtx_tail_
}

@test "check tail: a table larger than check.scan_limit: relayed rows are estimated, unrelayed ones counted up to the limit" {
	fake_relay live-1
	add 300
	checkpoint 0,1,2,3
	add 20
	park 1 dead 10 NULL boom
	psql_test "ANALYZE mqtx_outbox"
	MQTX_CHECK_SCAN_LIMIT=100 check_json 2
	jq_is '.tail.unrelayed.rows' 20
	jq_is '.tail.unrelayed.approximate' false
	jq_is '.counts.pending.rows' 20
	jq_is '.counts.dead.rows' 1
	jq_is '.counts.sent.approximate' true
	jq_true '.counts.sent.rows > 250 and .counts.sent.rows < 350'
	# more unrelayed rows than the scan limit: a lower bound
	add 150
	MQTX_CHECK_SCAN_LIMIT=100 check_json 2
	jq_is '.tail.unrelayed.rows' 100
	jq_is '.tail.unrelayed.approximate' true
}

@test "check tail: an outbox not set up for tail mode is UNKNOWN with a hint" {
	psql_test "DELETE FROM mqtx_tail_checkpoints"
	run_mqtx 3 check
	stderr_has "not set up for tail mode"
}

@test "check tail: after a tail relay run, nothing is unrelayed and the checkpoint names the relay" {
	add 5
	insert_rows 3 "$T_DEST" "'k-' || (g % 2)"
	run_mqtx 0 relay
	check_json 0
	jq_is '.tail.unrelayed.rows' 0
	jq_is '.counts.pending.rows' 0
	jq_is '.counts.sent.rows' 8
	jq_is '.relays.stopped' 1
	jq_true '.tail.bucket_groups | map(.relay_id != null) | all'
	jq_true '[.relays.list[].tail_buckets | select(. != null) | split(",")[]] | length >= 1'
	jq_true '.relays.list | map(select(.tail_buckets != null) | .tail_checkpoint_lag_seconds) | all(. == 0)'
	jq_true '.tail.bucket_groups | map(.checkpoint_lag_seconds) | all(. == 0)'
	id=$(psql_test "SELECT min(id) FROM mqtx_outbox")
	check_json 0 --explain "$id"
	jq_is .status sent
	jq_true '.verdict | test("^relayed: covered by bucket")'
}

all_checkpointed() {
	[[ $(psql_test "SELECT count(*) FROM mqtx_tail_checkpoints WHERE prev_snapshot IS NULL") == 0 ]]
}

owned_buckets_are() {
	local n
	n=$("$MQTX" check --format json 2>/dev/null | jq -r .tail.owned_buckets) && [[ $n == "$1" ]]
}

@test "check tail: a running tail relay owns the buckets: check shows the owner's backend per bucket group" {
	add 4
	mqtx_bg relay --loop
	wait_relay_listening 30
	wait_until 30 owned_buckets_are $BUCKETS
	wait_until 30 all_checkpointed
	check_json 0
	jq_is '.tail.owned_buckets' $BUCKETS
	jq_true '.tail.bucket_groups | map(.owner_pid != null) | all'
	jq_true '.tail.bucket_groups | map(.owner_application_name) | all(. != null)'
	jq_is '.tail.unrelayed.rows' 0
	jq_is '.relays.live' 1
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "the relay exited with $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	check_json 0
	jq_is '.tail.owned_buckets' 0
}
