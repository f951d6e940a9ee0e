#!/usr/bin/env bats
# Per-key order and start-up under locks and faults that others cause: rows
# row-locked by other sessions, connections cut during the catalogue reads.
# Runs on RabbitMQ and Kafka.

load test_helper
load backend

setup() {
	backend_test_setup
}

teardown() {
	stop_locker
	stop_proxy
	mqtx_test_teardown
}

# start_locker SQL: runs SQL in a psql session of its own that then stays
# open (pg_sleep, ended by stop_locker) with its transaction and locks held.
# Waits until the session sleeps, so its locks are taken.
start_locker() {
	LOCKER_APP="mqtx_locker_$T_SCHEMA"
	PGAPPNAME=$LOCKER_APP PGOPTIONS="-c search_path=$T_SCHEMA,public" \
		psql "$MQTX_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -qAtX \
		-c "BEGIN; $1; SELECT pg_sleep(120); COMMIT" >/dev/null 2>&1 3>&- &
	LOCKER_PID=$!
	wait_until 10 locker_sleeps
}
locker_sleeps() {
	[[ $(psql_test "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$LOCKER_APP'
		AND state = 'active' AND query LIKE '%pg_sleep%'") == 1 ]]
}
# Ends the locker's transaction (rolled back) and waits for its psql.
stop_locker() {
	[[ -n ${LOCKER_PID:-} ]] || return 0
	psql_test "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$LOCKER_APP'" >/dev/null || true
	wait "$LOCKER_PID" 2>/dev/null || true
	LOCKER_PID=
}

# a txpub session sits in its open transaction (row 1 locked, failpoint sleeping)
txpub_waits() {
	[[ $(psql_test "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'mqtx txpub%'
		AND state = 'idle in transaction'") -ge 1 ]]
}

# ids of key $1 in the order the consumer got them, one line
delivered_ids() { jq -r "select(.id != null) | .id" <<<"$1" | tr '\n' ' '; }
ids_of_key() {
	psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox WHERE ordering_key = '$1'"
}
# keeps the consumer's ids that belong to key $2, in delivery order
delivered_of_key() {
	local want id out=""
	want=" $(ids_of_key "$2") "
	for id in $(delivered_ids "$1"); do
		[[ $want == *" $id "* ]] && out+="$id "
	done
	printf '%s\n' "${out% }"
}

# rows: 1 and 2 of key K, 3 of key L, 4 without a key
insert_k_rows() {
	psql_test "INSERT INTO mqtx_outbox (destination, routing_key, ordering_key, payload) VALUES
		('$T_DEST', 'k.1', 'K', 'k1'), ('$T_DEST', 'k.2', 'K', 'k2'),
		('$T_DEST', 'l.3', 'L', 'l3'), ('$T_DEST', 'n.4', NULL, 'n4')"
}

@test "ordering: a row locked FOR SHARE by another session holds back the later rows of its key only, then all go out in order" {
	insert_k_rows
	start_locker "SELECT 1 FROM mqtx_outbox WHERE id = 1 FOR SHARE"
	run_mqtx 0 relay
	run psql_test "SELECT id || ':' || status FROM mqtx_outbox ORDER BY id"
	[[ ${lines[*]} == "1:pending 2:pending 3:sent 4:sent" ]] || fail "while row 1 is locked: ${lines[*]}"
	stop_locker
	run_mqtx 0 relay
	[[ $(sent_count) == 4 ]]
	local got
	got=$(backend_consume 4)
	[[ $(delivered_of_key "$got" K) == "1 2" ]] || fail "key K delivered as '$(delivered_of_key "$got" K)': $got"
	[[ $(delivered_ids "$got" | wc -w) == 4 ]] || fail "expected 4 messages: $got"
}

@test "ordering: a locked row in the middle of a key: the rows before it go, the rows after it wait" {
	psql_test "INSERT INTO mqtx_outbox (destination, routing_key, ordering_key, payload)
		SELECT '$T_DEST', 'k', 'K', convert_to('k' || i, 'UTF8') FROM generate_series(1, 6) i"
	start_locker "SELECT 1 FROM mqtx_outbox WHERE id = 3 FOR UPDATE"
	run_mqtx 0 relay
	run psql_test "SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM mqtx_outbox"
	[[ $output == "1:sent 2:sent 3:pending 4:pending 5:pending 6:pending" ]] || fail "while row 3 is locked: $output"
	stop_locker
	run_mqtx 0 relay
	local got
	got=$(backend_consume 6)
	[[ $(delivered_of_key "$got" K) == "1 2 3 4 5 6" ]] || fail "key K delivered as '$(delivered_of_key "$got" K)'"
}

@test "ordering: a locked earliest row of a key with a backlog longer than a batch does not fill the batches: rows without a key still go" {
	psql_test "INSERT INTO mqtx_outbox (destination, routing_key, ordering_key, payload)
		SELECT '$T_DEST', 'k', 'K', convert_to('k' || i, 'UTF8') FROM generate_series(1, 30) i;
		INSERT INTO mqtx_outbox (destination, routing_key, ordering_key, payload) VALUES
		('$T_DEST', 'l', 'L', 'l31'), ('$T_DEST', 'n', NULL, 'n32')"
	start_locker "SELECT 1 FROM mqtx_outbox WHERE id = 1 FOR UPDATE"
	run_mqtx 0 relay --batch 10
	# row 31 (key L) may wait too: the first batch's worth of keyed rows are K's (see ORDERING in mqtx-relay(1))
	run psql_test "SELECT count(*) FILTER (WHERE status = 'sent' AND id = 32), count(*) FILTER (WHERE status = 'sent' AND id <= 30)
		FROM mqtx_outbox"
	[[ $output == "1|0" ]] || fail "sent (row without a key | key K) while row 1 is locked: $output"
	stop_locker
	run_mqtx 0 relay --batch 10
	local got
	got=$(backend_consume 32)
	[[ $(delivered_of_key "$got" K) == "$(seq -s ' ' 1 30)" ]] || fail "key K delivered as '$(delivered_of_key "$got" K)'"
}

@test "ordering: a foreign key insert referencing the earliest row of a key (FOR KEY SHARE) holds nothing back, order kept" {
	psql_test "CREATE TABLE refs (outbox_id bigint REFERENCES mqtx_outbox (id))"
	insert_k_rows
	start_locker "INSERT INTO refs VALUES (1)"
	run_mqtx 0 relay
	[[ $(sent_count) == 4 ]] || fail "sent: $(sent_count)"
	local got
	got=$(backend_consume 4)
	[[ $(delivered_of_key "$got" K) == "1 2" ]] || fail "key K delivered as '$(delivered_of_key "$got" K)': $got"
}

@test "ordering: txpub --commit run again on a committed half message does not let a later row of the key overtake it" {
	skip_unless_failpoints
	psql_test "INSERT INTO mqtx_outbox (idempotency_key, destination, routing_key, ordering_key, payload, status)
		VALUES ('half-1', '$T_DEST', 'k.1', 'K', 'k1', 'pending'),
		       ('k-2', '$T_DEST', 'k.2', 'K', 'k2', 'pending')"
	# the re-run locks row 1 (FOR UPDATE) and holds the lock while it sleeps before its COMMIT
	MQTX_FAILPOINTS=txpub.commit_before_db_commit=sleep:5000 mqtx_bg txpub --commit half-1
	wait_until 10 txpub_waits || fail "txpub did not take its lock"
	run_mqtx 0 relay
	local during
	during=$(psql_test "SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM mqtx_outbox")
	mqtx_bg_wait 30
	[[ $MQTX_BG_STATUS == 0 ]] || fail "txpub --commit failed: $(cat "$MQTX_BG_ERR")"
	[[ $during == "1:pending 2:pending" ]] || fail "while txpub held row 1: $during"
	run_mqtx 0 relay
	local got
	got=$(backend_consume 2)
	[[ $(delivered_of_key "$got" K) == "1 2" ]] || fail "key K delivered as '$(delivered_of_key "$got" K)': $got"
}

# The database through a tcp_proxy: sets MQTX_DATABASE_URL to it.
db_through_proxy() {
	local port=${MQTX_TEST_DATABASE_URL##*:}
	port=${port%%/*}
	start_proxy "$port"
	export MQTX_DATABASE_URL=${MQTX_TEST_DATABASE_URL/:$port\//:$PROXY_PORT\/}
}

@test "start: a connection cut right after the catalogue read is a database error (exit 4), not a missing column (exit 3)" {
	insert_k_rows
	db_through_proxy
	for cmd in relay check redeliver; do
		proxy_cmd "cut-after pg_attribute"
		case $cmd in
		relay) run_mqtx 4 relay ;;
		check) run_mqtx 3 check ;; # UNKNOWN
		redeliver) run_mqtx 4 redeliver --status dead --requeue --yes ;;
		esac
		stderr_lacks "has no column"
		[[ $stderr$output == *"database"* || $stderr$output == *"connection"* || $stderr$output == *"server closed"* ]] ||
			fail "$cmd: no database error: $stderr $output"
	done
	run_mqtx 0 relay
	[[ $(sent_count) == 4 ]]
}

@test "start: a relay --loop whose connection is cut during start keeps going and relays" {
	insert_k_rows
	db_through_proxy
	proxy_cmd "cut-after pg_attribute"
	mqtx_bg relay --loop --poll-interval 200ms
	wait_sent 20 '==' 4 || fail "not relayed: $(cat "$MQTX_BG_ERR")"
	kill -0 "$MQTX_BG_PID" || fail "the relay exited: $(cat "$MQTX_BG_ERR")"
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]] || fail "exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "retrying" "$MQTX_BG_ERR" || fail "no retry logged: $(cat "$MQTX_BG_ERR")"
	! grep -q "has no column" "$MQTX_BG_ERR"
}

@test "start: the outbox catalogue read failing (backend terminated) is exit 4 one-shot, retried in --loop" {
	skip_unless_failpoints
	insert_k_rows
	MQTX_FAILPOINTS=outbox.catalogue=error run_mqtx 4 relay
	stderr_lacks "has no column"
	stderr_has "cannot look up the outbox table"
	MQTX_FAILPOINTS=outbox.catalogue=error mqtx_bg relay --loop --poll-interval 200ms
	wait_sent 20 '==' 4 || fail "not relayed: $(cat "$MQTX_BG_ERR")"
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]] || fail "exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
}
