#!/usr/bin/env bats
# Partitions (outbox.partition_by, mqtx init --partition-by): init makes the
# outbox range-partitioned by created_at, the relay creates partitions
# ahead and drops expired ones (mqtx.yaml(5), "Partitions"). The database
# side only: runs on the default backend.

load test_helper
load backend

setup() {
	mqtx_test_setup
	backend_setup
	# the relay keeps partitions up when the configuration says the outbox has them
	export MQTX_OUTBOX_PARTITION_BY=day
}

teardown() {
	mqtx_test_teardown
}

# db_only: the test looks at the database side only: it runs on the
# default backend, not again on each broker
db_only() {
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
}

# partitions: the partitions of the test's outbox, one per line, sorted
partitions() {
	psql_test "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = '${1:-mqtx_outbox}'::regclass ORDER BY 1"
}

# old_partition NAME FROM TO: a partition of mqtx_outbox for a past range
old_partition() {
	psql_test "CREATE TABLE $1 PARTITION OF mqtx_outbox FOR VALUES FROM ('$2') TO ('$3')"
}

@test "partitions: init --partition-by day creates the parent, the default partition and today's and the next 3 days' partitions" {
	db_only
	# the option overrides outbox.partition_by
	MQTX_OUTBOX_PARTITION_BY=none run_mqtx 0 init --partition-by day --print
	[[ $output == *'PARTITION BY RANGE ("created_at")'* ]] || fail "no PARTITION BY in: $output"
	[[ $output == *'PRIMARY KEY ("id", "created_at")'* ]] || fail "no primary key in: $output"
	[[ $output == *'UNIQUE ("idempotency_key", "created_at")'* ]] || fail "no unique key in: $output"
	run psql_test "SELECT count(*) FROM pg_class WHERE relnamespace = '$T_SCHEMA'::regnamespace AND relname LIKE 'mqtx_outbox%'"
	assert_output 0 # --print changes nothing
	MQTX_OUTBOX_PARTITION_BY=none run_mqtx 0 init --partition-by day
	run psql_test "SELECT relkind FROM pg_class WHERE oid = 'mqtx_outbox'::regclass"
	assert_output p
	local want d
	want=mqtx_outbox_default
	for d in 0 1 2 3; do
		want+=$'\n'mqtx_outbox_p$(psql_test "SELECT to_char((date_trunc('day', now(), 'UTC') + $d * interval '24 hours') AT TIME ZONE 'UTC', 'YYYYMMDD')")
	done
	run partitions
	assert_output "$(sort <<<"$want")"
	# idempotent, and the verify step accepts the partitioned table
	run_mqtx 0 init --partition-by day
	stderr_has "unique together with created_at only"
}

@test "partitions: init --partition-by hour names partitions by hour; outbox.partition_by from the environment works too" {
	db_only
	MQTX_OUTBOX_PARTITION_BY=hour run_mqtx 0 init
	run psql_test "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'mqtx_outbox'::regclass AND c.relname ~ '^mqtx_outbox_p[0-9]{10}$'"
	assert_output 4
	run psql_test "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.relname =
		'mqtx_outbox_p' || to_char(date_trunc('hour', now(), 'UTC') AT TIME ZONE 'UTC', 'YYYYMMDDHH24')"
	[[ $output == "FOR VALUES FROM ("*") TO ("*")" ]] || fail "bound: $output"
}

@test "partitions: a bad outbox.partition_by is a configuration error naming the key" {
	db_only
	printf 'outbox:\n  partition_by: week\n' >"$BATS_TEST_TMPDIR/bad.yaml"
	run_mqtx 3 --config "$BATS_TEST_TMPDIR/bad.yaml" config
	stderr_has "outbox.partition_by: 'week' is not one of none|hour|day"
	run_mqtx 3 --config "$BATS_TEST_TMPDIR/bad.yaml" relay
	stderr_has "outbox.partition_by"
	MQTX_OUTBOX_PARTITION_BY=week run_mqtx 3 config
	stderr_has "MQTX_OUTBOX_PARTITION_BY (outbox.partition_by): 'week'"
	run_mqtx 2 init --partition-by month
	stderr_has "option --partition-by: 'month' is not one of none|hour|day"
}

@test "partitions: a partitioned outbox relays every row once, in per-key order, while writers insert" {
	run_mqtx 0 init --partition-by day
	mqtx_bg relay --loop --poll-interval 200ms
	wait_relay_listening 10
	local round
	for round in 1 2 3 4 5; do
		psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
			SELECT '$T_DEST', 'test.rk', 'k' || (g % 3), convert_to(json_build_object('n', $round * 100 + g)::text, 'UTF8')
			FROM generate_series(1, 40) g"
	done
	wait_sent 30 == 200
	mqtx_bg_stop TERM 10
	local got
	got=$(backend_consume 200)
	[[ $(jq -r '.id' <<<"$got" | sort -n -u | wc -l) == 200 ]] || fail "not every row: $(jq -r '.id' <<<"$got" | wc -l) delivered"
	[[ $(jq -r '.id' <<<"$got" | wc -l) == 200 ]] || fail "not every row once"
	# per ordering key: delivered in id order
	local k want have
	for k in 0 1 2; do
		want=$(psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox WHERE ordering_key = 'k$k'")
		have=$(jq -r --argjson k "$k" 'select(.body | fromjson | .n % 100 % 3 == $k) | .id' <<<"$got" | tr '\n' ' ')
		[[ ${have% } == "$want" ]] || fail "key k$k: delivered $have, ids $want"
	done
}

@test "partitions: the relay creates missing partitions ahead" {
	db_only
	run_mqtx 0 init --partition-by day
	local ahead
	ahead=mqtx_outbox_p$(psql_test "SELECT to_char((date_trunc('day', now(), 'UTC') + 3 * interval '24 hours') AT TIME ZONE 'UTC', 'YYYYMMDD')")
	psql_test "DROP TABLE $ahead"
	run partitions
	[[ $output != *"$ahead"* ]] || fail "not dropped: $output"
	run_mqtx 0 relay
	stderr_has "0 partition(s) dropped, 1 created"
	run partitions
	[[ $output == *"$ahead"* ]] || fail "not created again: $output"
	run psql_test "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.relname = '$ahead'"
	[[ $output == "FOR VALUES FROM ("*") TO ("*")" ]] || fail "bound: $output"
	# a new partition gets the parent's indexes and triggers: a row in it relays
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload, created_at)
		VALUES ('$T_DEST', 'test.rk', 'x', date_trunc('day', now(), 'UTC') + 3 * interval '24 hours' + interval '1 minute')"
	run psql_test "SELECT tableoid::regclass FROM mqtx_outbox"
	assert_output "$ahead"
	run_mqtx 0 relay
	run count_status sent
	assert_output 1
}

@test "partitions: no partition is attached while the default partition is big (ATTACH would scan it under a lock): one warning" {
	db_only
	run_mqtx 0 init --partition-by day
	local ahead
	ahead=mqtx_outbox_p$(psql_test "SELECT to_char((date_trunc('day', now(), 'UTC') + 3 * interval '24 hours') AT TIME ZONE 'UTC', 'YYYYMMDD')")
	psql_test "DROP TABLE $ahead"
	# 100,001 sent rows of a far period: they land in the default partition
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, sent_at, created_at)
		SELECT '$T_DEST', 'x', 'sent', now(), '2040-01-01'::timestamptz + g * interval '1 second' FROM generate_series(0, 100000) g" \
		"ANALYZE mqtx_outbox_default"
	run_mqtx 0 relay
	stderr_has "the default partition of"
	stderr_has "no partition is attached while it holds more than 100000"
	[[ $(grep -c 'default partition of' <<<"$stderr") == 1 ]] || fail "not one warning: $stderr"
	run partitions
	[[ $output != *"$ahead"* ]] || fail "attached all the same: $output"
	# once it is small again, the next run attaches
	psql_test "DELETE FROM mqtx_outbox WHERE created_at >= '2040-01-01'" "VACUUM ANALYZE mqtx_outbox_default"
	run_mqtx 0 relay
	stderr_lacks "default partition of"
	run partitions
	[[ $output == *"$ahead"* ]] || fail "not attached: $output"
}

@test "partitions: expired partitions without rows to keep are dropped; one with a dead or pending row stays, its sent rows go; the default stays" {
	db_only
	run_mqtx 0 init --partition-by day
	old_partition mqtx_outbox_p20200101 2020-01-01 2020-01-02
	old_partition mqtx_outbox_p20200102 2020-01-02 2020-01-03
	old_partition mqtx_outbox_p20200103 2020-01-03 2020-01-04
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, created_at, sent_at)
		SELECT '$T_DEST', 'x', 'sent', d + interval '1 hour', d + interval '2 hours'
		FROM unnest(ARRAY['2020-01-01', '2020-01-02', '2020-01-03']::timestamptz[]) d, generate_series(1, 3)"
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, created_at) VALUES ('$T_DEST', 'dead', 'dead', '2020-01-02 05:00+00')"
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, created_at, available_at)
		VALUES ('$T_DEST', 'later', 'pending', '2020-01-03 05:00+00', 'infinity')"
	# old sent rows in the default partition: deleted row by row, the default stays
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, created_at, sent_at) VALUES ('$T_DEST', 'x', 'sent', '2019-06-01', '2019-06-01')"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_has "1 partition(s) dropped, 0 created"
	run partitions
	[[ $output != *mqtx_outbox_p20200101* ]] || fail "expired partition kept: $output"
	[[ $output == *mqtx_outbox_p20200102* && $output == *mqtx_outbox_p20200103* ]] || fail "partition with a row to keep dropped: $output"
	[[ $output == *mqtx_outbox_default* ]] || fail "default partition dropped: $output"
	run psql_test "SELECT tableoid::regclass || ':' || status FROM mqtx_outbox ORDER BY 1"
	assert_output "mqtx_outbox_p20200102:dead
mqtx_outbox_p20200103:pending"
	# the table's own partitions ahead are not touched
	[[ $(partitions | grep -c '^mqtx_outbox_p2') -ge 6 ]] || fail "partitions: $(partitions)"
	# once the row to keep is gone, its partition goes too
	psql_test "UPDATE mqtx_outbox SET status = 'sent', sent_at = '2020-01-02 06:00+00' WHERE status = 'dead'"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	run partitions
	[[ $output != *mqtx_outbox_p20200102* ]] || fail "partition kept: $output"
	[[ $output == *mqtx_outbox_p20200103* ]] || fail "partition with a pending row dropped: $output"
}

@test "partitions: retention off drops nothing; outbox.partition_by on an unpartitioned outbox is a warning" {
	db_only
	run_mqtx 0 init --partition-by day
	old_partition mqtx_outbox_p20200101 2020-01-01 2020-01-02
	local ahead
	ahead=mqtx_outbox_p$(psql_test "SELECT to_char((date_trunc('day', now(), 'UTC') + interval '24 hours') AT TIME ZONE 'UTC', 'YYYYMMDD')")
	psql_test "DROP TABLE $ahead"
	MQTX_OUTBOX_RETENTION=off run_mqtx 0 relay
	run partitions
	[[ $output == *mqtx_outbox_p20200101* ]] || fail "dropped with retention off: $output"
	[[ $output == *"$ahead"* ]] || fail "not created with retention off: $output"
	psql_test "CREATE TABLE plain (LIKE mqtx_outbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
	MQTX_OUTBOX_TABLE=plain MQTX_OUTBOX_PARTITION_BY=none run_mqtx 0 init
	MQTX_OUTBOX_TABLE=plain MQTX_OUTBOX_PARTITION_BY=day run_mqtx 0 init --print
	[[ $output == *"converting it is manual"* ]] || fail "no note in: $output"
	MQTX_OUTBOX_TABLE=plain MQTX_OUTBOX_PARTITION_BY=day run_mqtx 0 relay
	stderr_has "is not a partitioned table: the setting has no effect"
}

@test "partitions: two relays doing the upkeep at once do not fail" {
	db_only
	run_mqtx 0 init --partition-by day
	local i
	for i in 1 2 3 4 5; do
		old_partition mqtx_outbox_p2020010$i 2020-01-0$i 2020-01-0$((i + 1))
	done
	psql_test "DROP TABLE mqtx_outbox_p$(psql_test "SELECT to_char((date_trunc('day', now(), 'UTC') + 2 * interval '24 hours') AT TIME ZONE 'UTC', 'YYYYMMDD')")"
	insert_rows 50
	local round
	for round in 1 2 3; do
		MQTX_OUTBOX_RETENTION=1h "$MQTX" relay >"$BATS_TEST_TMPDIR/a.out" 2>"$BATS_TEST_TMPDIR/a.err" 3>&- &
		local a=$!
		MQTX_OUTBOX_RETENTION=1h "$MQTX" relay >"$BATS_TEST_TMPDIR/b.out" 2>"$BATS_TEST_TMPDIR/b.err" 3>&- &
		local b=$!
		local ra=0 rb=0
		wait "$a" || ra=$?
		wait "$b" || rb=$?
		((ra == 0 && rb == 0)) || fail "round $round: exit $ra / $rb: $(cat "$BATS_TEST_TMPDIR/a.err" "$BATS_TEST_TMPDIR/b.err")"
		! grep -i "warning\|error" "$BATS_TEST_TMPDIR/a.err" "$BATS_TEST_TMPDIR/b.err" || fail "round $round: a warning"
	done
	run partitions
	[[ $output != *mqtx_outbox_p202001* ]] || fail "expired partitions kept: $output"
	[[ $(grep -c '^mqtx_outbox_p2' <<<"$output") == 4 ]] || fail "partitions ahead: $output"
	run count_status sent
	assert_output 50
}

@test "partitions: an adopted range-partitioned table with other column names relays and prunes" {
	db_only
	psql_test "CREATE TABLE events(event_id bigserial, dest text NOT NULL, msg_key text NOT NULL, body bytea NOT NULL,
		made timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (event_id, made)) PARTITION BY RANGE (made)"
	psql_test "CREATE TABLE events_old PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2020-02-01')"
	psql_test "CREATE TABLE events_rest PARTITION OF events FOR VALUES FROM ('2020-02-01') TO (MAXVALUE)"
	cat >"$BATS_TEST_TMPDIR/mqtx.yaml" <<-YAML
	outbox:
	  table: events
	  partition_by: day
	  columns:
	    id: event_id
	    destination: dest
	    idempotency_key: msg_key
	    payload: body
	    created_at: made
	    routing_key: ""
	    ordering_key: ""
	    headers: ""
	    content_type: ""
	YAML
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" init --print
	printf 'SET search_path = "%s";\n%s\n' "$T_SCHEMA" "$output" | psql "$MQTX_TEST_DATABASE_URL" -qX -v ON_ERROR_STOP=1
	psql_test "INSERT INTO events(dest, msg_key, body, made) VALUES ('$T_DEST', 'old-1', 'x', '2020-01-05'), ('$T_DEST', 'new-1', 'y', now())"
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" relay
	run psql_test "SELECT msg_key, status FROM events ORDER BY msg_key"
	assert_output "new-1|sent
old-1|sent"
	psql_test "UPDATE events SET sent_at = '2020-01-05 01:00+00' WHERE msg_key = 'old-1'"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 --config "$BATS_TEST_TMPDIR/mqtx.yaml" relay
	run partitions events
	assert_output "events_rest" # its range covers now: nothing to create, never expired
	run psql_test "SELECT msg_key FROM events"
	assert_output new-1
}

@test "partitions: txpub --prepare twice with one key on a partitioned outbox leaves one row" {
	db_only
	run_mqtx 0 init --partition-by day
	run_mqtx 0 txpub --prepare -d "$T_DEST" -k half-1 --payload one
	run_mqtx 0 txpub --prepare -d "$T_DEST" -k half-1 --payload one
	run psql_test "SELECT idempotency_key, status FROM mqtx_outbox"
	assert_output "half-1|prepared"
	run_mqtx 0 txpub --commit half-1
	run_mqtx 0 txpub --prepare -d "$T_DEST" -k half-1 --payload one
	run psql_test "SELECT idempotency_key, status FROM mqtx_outbox"
	assert_output "half-1|pending"
	# at once: the second waits for the first and finds its row
	local i a b ra rb
	for i in 1 2 3 4 5; do
		"$MQTX" txpub --prepare -d "$T_DEST" -k "race-$i" --payload x >/dev/null 2>&1 3>&- &
		a=$!
		"$MQTX" txpub --prepare -d "$T_DEST" -k "race-$i" --payload x >/dev/null 2>&1 3>&- &
		b=$!
		ra=0 rb=0
		wait "$a" || ra=$?
		wait "$b" || rb=$?
		((ra == 0 && rb == 0)) || fail "round $i: exit $ra / $rb"
	done
	run psql_test "SELECT count(*), count(DISTINCT idempotency_key) FROM mqtx_outbox WHERE idempotency_key LIKE 'race-%'"
	assert_output "5|5"
}

# holds_lock: another session holds a lock on mqtx_outbox (granted)
holds_lock() {
	[[ $(psql_test "SELECT count(*) FROM pg_locks WHERE relation = 'mqtx_outbox'::regclass AND granted AND pid <> pg_backend_pid()") != 0 ]]
}

@test "partitions: a partition the relay cannot lock in time is left for the next pass, without a warning" {
	db_only
	run_mqtx 0 init --partition-by day
	old_partition mqtx_outbox_p20200101 2020-01-01 2020-01-02
	psql_test "BEGIN; LOCK TABLE mqtx_outbox IN ACCESS SHARE MODE; SELECT pg_sleep(20); COMMIT" >/dev/null 2>&1 3>&- &
	local holder=$!
	wait_until 10 holds_lock
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_lacks "warning"
	run partitions
	[[ $output == *mqtx_outbox_p20200101* ]] || fail "dropped under a lock: $output"
	psql_test "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()" >/dev/null
	wait "$holder" || true
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	run partitions
	[[ $output != *mqtx_outbox_p20200101* ]] || fail "not dropped: $output"
}

@test "partitions: an outbox partitioned another way than by range of created_at is a warning naming outbox.partition_by" {
	db_only
	run_mqtx 0 init
	psql_test "CREATE TABLE byid (LIKE mqtx_outbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (id)"
	psql_test "CREATE TABLE byid_all PARTITION OF byid DEFAULT"
	MQTX_OUTBOX_PARTITION_BY=none run_mqtx 0 init --table byid
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay --table byid
	stderr_has "outbox.partition_by is day, but \"$T_SCHEMA\".\"byid\" is not partitioned by range of its created_at column"
	run partitions byid
	assert_output byid_all
}

@test "partitions: a relay role that does not own the table relays, and says once that it cannot keep partitions up" {
	db_only
	skip_unless_local_pg
	run_mqtx 0 init --partition-by day
	psql_test "DROP TABLE mqtx_outbox_p$(psql_test "SELECT to_char((date_trunc('day', now(), 'UTC') + 3 * interval '24 hours') AT TIME ZONE 'UTC', 'YYYYMMDD')")"
	T_ROLE="r_${T_SCHEMA}"
	psql_test "CREATE ROLE \"$T_ROLE\" LOGIN PASSWORD 'relaypw'"
	run_mqtx 0 init --grant "$T_ROLE"
	insert_rows 3
	local url="postgresql://$T_ROLE@127.0.0.1:${MQTX_TEST_DATABASE_URL##*127.0.0.1:}"
	printf 'relaypw\n' >"$BATS_TEST_TMPDIR/pw"
	MQTX_DATABASE_URL=$url MQTX_DATABASE_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw run_mqtx 0 relay
	[[ $(count_status sent) == 3 ]]
	stderr_has "partitions: cannot create partition"
	[[ $(grep -c "partitions: cannot" <<<"$stderr") == 1 ]] || fail "more than one warning: $stderr"
	psql_test "DROP OWNED BY \"$T_ROLE\"; DROP ROLE \"$T_ROLE\""
}

@test "partitions: sent rows of a partition that has not expired are left for its DROP; an unpartitioned outbox deletes them row by row" {
	db_only
	run_mqtx 0 init --partition-by day
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, sent_at) SELECT '$T_DEST', 'x', 'sent', now() - interval '2 hours' FROM generate_series(1, 3)"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	run psql_test "SELECT count(*) FROM mqtx_outbox"
	assert_output 3
	# partition_by on a table that is not partitioned: no effect, rows go as always
	psql_test "CREATE TABLE plain (LIKE mqtx_outbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
	MQTX_OUTBOX_PARTITION_BY=none run_mqtx 0 init --table plain
	psql_test "INSERT INTO plain(destination, payload, status, sent_at) SELECT '$T_DEST', 'x', 'sent', now() - interval '2 hours' FROM generate_series(1, 3)"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay --table plain
	stderr_has "retention: deleted 3 outbox row(s)"
	run psql_test "SELECT count(*) FROM plain"
	assert_output 0
}

# partition_gone NAME: NAME is no longer a partition of mqtx_outbox
partition_gone() { ! partitions | grep -qx "$1"; }

@test "partitions: a relay in --loop drops expired partitions while writers insert, and relays every new row once" {
	db_only
	run_mqtx 0 init --partition-by day
	old_partition mqtx_outbox_p20200101 2020-01-01 2020-01-02
	old_partition mqtx_outbox_p20200102 2020-01-02 2020-01-03
	psql_test "INSERT INTO mqtx_outbox(destination, payload, status, created_at, sent_at)
		SELECT '$T_DEST', 'x', 'sent', d + interval '1 hour', d + interval '2 hours'
		FROM unnest(ARRAY['2020-01-01', '2020-01-02']::timestamptz[]) d, generate_series(1, 500)"
	# writers: 30 transactions of 10 rows, bounded in count and time
	(
		for ((i = 1; i <= 30; i++)); do
			psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload)
				SELECT '$T_DEST', 'test.rk', convert_to(json_build_object('n', $i * 100 + g)::text, 'UTF8')
				FROM generate_series(1, 10) g"
			sleep 0.05
		done
	) &
	local writers=$!
	MQTX_OUTBOX_RETENTION=1h mqtx_bg relay --loop --poll-interval 200ms
	wait_until 30 partition_gone mqtx_outbox_p20200101
	wait_until 30 partition_gone mqtx_outbox_p20200102
	wait "$writers"
	wait_sent 30 == 300
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	! grep -q 'error' "$MQTX_BG_ERR" || fail "relay errors: $(cat "$MQTX_BG_ERR")"
	run psql_test "SELECT count(*) FROM mqtx_outbox WHERE created_at < '2021-01-01'"
	assert_output 0
	local got
	got=$(backend_consume 300)
	[[ $(jq -r '.id' <<<"$got" | sort -n -u | wc -l) == 300 && $(jq -r '.id' <<<"$got" | wc -l) == 300 ]] ||
		fail "not every new row exactly once: $(jq -r '.id' <<<"$got" | wc -l) delivered"
}
