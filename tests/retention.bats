#!/usr/bin/env bats
# Retention: mqtx relay deletes what is no longer needed (mqtx.yaml(5),
# "Retention"). The database side only: runs on the default backend.

load test_helper
load backend

setup() {
	# the database side: once, on the default backend (the Kafka and NATS
	# passes would only run the same SQL again)
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
	backend_test_setup
	# short waits: some tests point the relay at a broker that is not there
	export MQTX_BROKER_CONFIRM_TIMEOUT=5s
}

teardown() {
	local gid
	for gid in $(psql_test "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'mqtx:%' AND database = current_database()" 2>/dev/null); do
		psql_test "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1 || true
	done
	[[ -n ${T_ROLE:-} ]] && _mqtx_psql_quiet "DROP OWNED BY \"$T_ROLE\"; DROP ROLE IF EXISTS \"$T_ROLE\""
	mqtx_test_teardown
}

# aged_sent N AGE: N rows already relayed, sent (and created) AGE ago.
aged_sent() {
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload, status, sent_at, created_at)
		SELECT '$T_DEST', 'test.rk', convert_to(json_build_object('n', g)::text, 'UTF8'), 'sent',
		now() - interval '$2', now() - interval '$2' FROM generate_series(1, $1) g"
}

# stopped_relays N AGE: N records of relays of this outbox that stopped AGE ago.
stopped_relays() {
	psql_test "INSERT INTO mqtx_relays(relay_id, outbox, started_at, last_seen, stopped_at)
		SELECT 'old-$T_SCHEMA-' || g, '\"$T_SCHEMA\".\"mqtx_outbox\"', now() - interval '$2', now() - interval '$2',
		now() - interval '$2' FROM generate_series(1, $1) g"
}

# The broker URL of a broker that is not there (the run fails with exit 5).
no_broker() {
	if [[ $(backend_name) == amqp ]]; then
		printf '%s\n' "amqp://guest:guest@127.0.0.1:1/%2f"
	else
		printf '%s\n' "kafka://127.0.0.1:1"
	fi
}

# rows_are N CONDITION: whether N rows of the outbox match CONDITION (for wait_until).
rows_are() {
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE $2" 2>/dev/null) == "$1" ]]
}

# deleted_in FILE: the number of outbox rows the summary line in FILE says were deleted (0: no line).
deleted_in() {
	local n
	n=$(sed -n 's/.*retention: deleted \([0-9]*\) outbox row(s).*/\1/p' "$1" | tail -1)
	printf '%s\n' "${n:-0}"
}

@test "retention: relayed rows older than outbox.retention are gone after a one-shot run; fresh ones stay" {
	insert_rows 5
	run_mqtx 0 relay
	psql_test "UPDATE mqtx_outbox SET sent_at = now() - interval '2 hours' WHERE id IN (SELECT id FROM mqtx_outbox ORDER BY id LIMIT 3)"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_has "retention: deleted 3 outbox row(s) (3 sent, 0 dead, 0 rolled back)"
	run psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox"
	assert_output "4 5"
}

@test "retention: pending (eligible and not yet), dead, prepared and young rolled-back rows survive; old rolled-back ones go" {
	export MQTX_OUTBOX_RETENTION=1h
	aged_sent 3 '2 hours'
	insert_rows 2
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '30 days' WHERE status = 'pending'"
	insert_rows 1
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '30 days', available_at = now() + interval '1 hour'
		WHERE id = (SELECT max(id) FROM mqtx_outbox)"
	insert_rows 1
	psql_test "UPDATE mqtx_outbox SET status = 'dead', attempts = 10, created_at = now() - interval '30 days',
		available_at = now() - interval '30 days' WHERE id = (SELECT max(id) FROM mqtx_outbox)"
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key half-old --payload h1
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key rb-young --payload h2
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key rb-old --payload h3
	run_mqtx 0 txpub --rollback rb-young rb-old
	# a half message is aged by its creation, a rolled-back one by its rollback (available_at)
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '30 days' WHERE idempotency_key IN ('half-old', 'rb-old', 'rb-young')" \
		"UPDATE mqtx_outbox SET available_at = now() - interval '30 days' WHERE idempotency_key IN ('half-old', 'rb-old')"
	# the broker is not there: the run fails (exit 5) with the eligible
	# pending rows still pending, and prunes all the same
	MQTX_BROKER_URL=$(no_broker) run_mqtx 5 relay
	stderr_has "retention: deleted 4 outbox row(s) (3 sent, 0 dead, 1 rolled back)"
	run psql_test "SELECT status, available_at > now(), coalesce(idempotency_key, '') LIKE 'half-old' OR coalesce(idempotency_key, '') LIKE 'rb-young'
		FROM mqtx_outbox ORDER BY id"
	assert_output $'pending|f|f\npending|f|f\npending|t|f\ndead|f|f\nprepared|f|t\nrolled_back|f|t'
	# the same with the broker back: pending rows are relayed, nothing else changes
	run_mqtx 0 relay
	run psql_test "SELECT status, count(*) FROM mqtx_outbox GROUP BY 1 ORDER BY 1"
	assert_output $'dead|1\npending|1\nprepared|1\nrolled_back|1\nsent|2'
}

@test "retention: in-doubt txpub --sql records in mqtx_txpub_log survive, however old" {
	skip_unless_failpoints
	psql_test "CREATE TABLE orders (id int PRIMARY KEY, msg_key text)"
	printf 'INSERT INTO "%s".orders VALUES (1, %s);\n' "$T_SCHEMA" "'o-1'" >"$BATS_TEST_TMPDIR/o.sql"
	MQTX_FAILPOINTS="txpub.after_log=crash" run_mqtx '*' txpub --mode confirm --sql "$BATS_TEST_TMPDIR/o.sql" \
		-d "$T_DEST" --key o-1 --payload one
	[[ $status == 137 ]] || fail "txpub: exit $status: $stderr"
	[[ $(psql_test "SELECT count(*) FROM mqtx_txpub_log") == 1 ]] || fail "no in-doubt record"
	psql_test "UPDATE mqtx_txpub_log SET confirmed_at = now() - interval '30 days'"
	aged_sent 1 '30 days'
	MQTX_OUTBOX_RETENTION=1s run_mqtx 0 relay
	stderr_has "retention: deleted 1 outbox row(s) (1 sent"
	run psql_test "SELECT idempotency_key FROM mqtx_txpub_log"
	assert_output "o-1"
	# and check --resolve still finds it and commits the transaction
	run_mqtx '*' check --resolve
	[[ $(psql_test "SELECT count(*) FROM orders") == 1 ]]
}

@test "retention: the default (7d) keeps fresh sent rows and deletes older ones" {
	unset MQTX_OUTBOX_RETENTION
	aged_sent 2 '6 days'
	aged_sent 3 '8 days'
	run_mqtx 0 relay
	stderr_has "retention: deleted 3 outbox row(s) (3 sent, 0 dead, 0 rolled back)"
	run psql_test "SELECT count(*) FROM mqtx_outbox WHERE sent_at > now() - interval '7 days'"
	assert_output 2
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 2 ]]
}

@test "retention: --dry-run and a one-shot run stopped by a signal delete nothing" {
	aged_sent 3 '2 hours'
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay --dry-run
	stderr_lacks "retention:"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 3 ]]
	skip_unless_failpoints
	insert_rows 1
	MQTX_OUTBOX_RETENTION=1h MQTX_FAILPOINTS="relay.after_confirm=sleep:2000" mqtx_bg relay
	sleep 1
	mqtx_bg_stop TERM 10
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE sent_at < now() - interval '1 hour'") == 3 ]] ||
		fail "a stopped run pruned: $(cat "$MQTX_BG_ERR")"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_has "retention: deleted 3 outbox row(s)"
}

@test "retention: a run that relays nothing still prunes" {
	aged_sent 4 '2 hours'
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_has "relayed 0,"
	stderr_has "retention: deleted 4 outbox row(s) (4 sent"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
	# nothing left to delete: no retention line
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_lacks "retention:"
}

@test "retention: outbox.retention=off deletes nothing" {
	export MQTX_OUTBOX_RETENTION=off
	aged_sent 3 '30 days'
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key rb --payload x
	run_mqtx 0 txpub --rollback rb
	psql_test "UPDATE mqtx_outbox SET created_at = now() - interval '30 days', available_at = now() - interval '30 days'"
	stopped_relays 60 '30 days'
	psql_test "INSERT INTO mqtx_completions(idempotency_key, completed_at) VALUES ('c-old', now() - interval '30 days')"
	run_mqtx 0 relay
	stderr_lacks "retention:"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 4 ]]
	[[ $(psql_test "SELECT count(*) FROM mqtx_relays") == 61 ]]
	[[ $(psql_test "SELECT count(*) FROM mqtx_completions") == 1 ]]
	# the same with outbox.retention on: everything of it goes
	MQTX_OUTBOX_RETENTION=1d run_mqtx 0 relay
	stderr_has "retention: deleted 4 outbox row(s) (3 sent, 0 dead, 1 rolled back), 61 relay and completion record(s)"
}

@test "retention: outbox.dead_retention deletes old dead rows only" {
	aged_sent 2 '30 days'
	insert_rows 3
	psql_test "UPDATE mqtx_outbox SET status = 'dead', attempts = 10, created_at = now() - interval '30 days',
			available_at = now() - interval '2 hours' WHERE id IN (3, 4)" \
		"UPDATE mqtx_outbox SET status = 'dead', attempts = 10, created_at = now() - interval '30 days',
			available_at = now() - interval '10 minutes' WHERE id = 5"
	# outbox.retention on, dead_retention off (the default): dead rows stay
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_has "retention: deleted 2 outbox row(s) (2 sent, 0 dead, 0 rolled back)"
	[[ $(count_status dead) == 3 ]]
	aged_sent 2 '30 days'
	# retention off, dead_retention 1h: the two dead rows last tried 2h ago go, nothing else
	MQTX_OUTBOX_RETENTION=off MQTX_OUTBOX_DEAD_RETENTION=1h run_mqtx 0 relay
	stderr_has "retention: deleted 2 outbox row(s) (0 sent, 2 dead, 0 rolled back)"
	run psql_test "SELECT id, status FROM mqtx_outbox ORDER BY id"
	assert_output $'5|dead\n6|sent\n7|sent'
}

@test "retention: outbox.retain_uncompleted keeps sent rows no consumer completed (redeliver --unacked-after finds them) up to its bound" {
	export MQTX_OUTBOX_RETENTION=1h MQTX_OUTBOX_RETAIN_UNCOMPLETED=1d
	insert_rows 4
	run_mqtx 0 relay
	psql_test "UPDATE mqtx_outbox SET sent_at = now() - interval '2 hours'" \
		"INSERT INTO mqtx_completions(idempotency_key, source) SELECT idempotency_key, 'test' FROM mqtx_outbox WHERE id IN (1, 3)"
	run_mqtx 0 relay
	stderr_has "retention: deleted 2 outbox row(s) (2 sent, 0 dead, 0 rolled back)"
	run psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox"
	assert_output "2 4"
	# the completions stay as long as the longer bound
	[[ $(psql_test "SELECT count(*) FROM mqtx_completions") == 2 ]]
	run_mqtx 0 redeliver --unacked-after 1h --yes
	stderr_has "redelivered 2,"
	run psql_test "SELECT string_agg(id::text, ' ' ORDER BY id) FROM mqtx_outbox WHERE redelivery_count = 1"
	assert_output "2 4"
	run_mqtx 0 relay
	# past the bound, uncompleted sent rows go too; so do old completions
	psql_test "UPDATE mqtx_outbox SET sent_at = now() - interval '2 days'" \
		"UPDATE mqtx_completions SET completed_at = now() - interval '2 days'"
	run_mqtx 0 relay
	stderr_has "retention: deleted 2 outbox row(s) (2 sent, 0 dead, 0 rolled back), 2 relay and completion record(s)"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
	[[ $(psql_test "SELECT count(*) FROM mqtx_completions") == 0 ]]
}

@test "retention: bad values are configuration errors (exit 3) naming the key and the value" {
	MQTX_OUTBOX_RETENTION=0 run_mqtx 3 relay
	stderr_has "MQTX_OUTBOX_RETENTION (outbox.retention): '0' is too short"
	MQTX_OUTBOX_RETENTION=abc run_mqtx 3 relay
	stderr_has "MQTX_OUTBOX_RETENTION (outbox.retention): expected a duration or off: invalid duration 'abc'"
	MQTX_OUTBOX_DEAD_RETENTION=0 run_mqtx 3 relay
	stderr_has "MQTX_OUTBOX_DEAD_RETENTION (outbox.dead_retention): '0' is too short"
	printf 'outbox:\n  retention: 5 days\n' >"$BATS_TEST_TMPDIR/c.yaml"
	run_mqtx 3 --config "$BATS_TEST_TMPDIR/c.yaml" relay
	stderr_has "outbox.retention: expected a duration or off: invalid duration '5 days'"
	MQTX_OUTBOX_RETENTION=1h MQTX_OUTBOX_RETAIN_UNCOMPLETED=30m run_mqtx 3 relay
	stderr_has "outbox.retain_uncompleted: 30m0s is shorter than outbox.retention (1h0m)"
	MQTX_CHECK_COMPLETION=true MQTX_CHECK_COMPLETION_WINDOW=2h MQTX_OUTBOX_RETENTION=1h run_mqtx 3 relay
	stderr_has "outbox.retention: 1h0m is shorter than check.completion_window (2h0m)"
	MQTX_CHECK_COMPLETION=true MQTX_CHECK_COMPLETION_WINDOW=2h MQTX_OUTBOX_RETENTION=1h MQTX_OUTBOX_RETAIN_UNCOMPLETED=90m run_mqtx 3 relay
	stderr_has "outbox.retain_uncompleted: 1h30m is shorter than check.completion_window (2h0m)"
	# accepted: long enough, or retention off
	MQTX_CHECK_COMPLETION=true MQTX_CHECK_COMPLETION_WINDOW=2h MQTX_OUTBOX_RETENTION=1h MQTX_OUTBOX_RETAIN_UNCOMPLETED=2h run_mqtx 0 relay
	MQTX_CHECK_COMPLETION=true MQTX_CHECK_COMPLETION_WINDOW=2h MQTX_OUTBOX_RETENTION=off run_mqtx 0 relay
	MQTX_OUTBOX_RETENTION=1s run_mqtx 0 relay
}

@test "retention: two relays pruning 60,000 rows at once both succeed and together delete each row once" {
	aged_sent 60000 '2 hours'
	local i
	for i in 1 2; do
		MQTX_OUTBOX_RETENTION=1h timeout 120 "$MQTX" relay >"$BATS_TEST_TMPDIR/out$i" 2>"$BATS_TEST_TMPDIR/err$i" 3>&- &
		eval "pid$i=$!"
	done
	local rc1=0 rc2=0
	wait "$pid1" || rc1=$?
	wait "$pid2" || rc2=$?
	[[ $rc1 == 0 && $rc2 == 0 ]] || fail "exit $rc1 and $rc2: $(cat "$BATS_TEST_TMPDIR/err1" "$BATS_TEST_TMPDIR/err2")"
	! grep -Ei "error|warn|deadlock|could not" "$BATS_TEST_TMPDIR/err1" "$BATS_TEST_TMPDIR/err2" || fail "problems in stderr"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
	local d1 d2
	d1=$(deleted_in "$BATS_TEST_TMPDIR/err1")
	d2=$(deleted_in "$BATS_TEST_TMPDIR/err2")
	((d1 + d2 == 60000)) || fail "the relays say they deleted $d1 + $d2 rows"
}

@test "retention: --loop prunes while it runs" {
	insert_rows 5
	MQTX_OUTBOX_RETENTION=2s mqtx_bg relay --loop
	wait_sent 20 '>' 0
	# relayed rows go about 2s after they were sent (a pass is due every 2s)
	wait_until 30 bash -c "[[ \$(psql -qAtX '$MQTX_TEST_DATABASE_URL' -c 'SELECT count(*) FROM \"$T_SCHEMA\".mqtx_outbox') == 0 ]]"
	insert_rows 3
	wait_until 30 bash -c "[[ \$(psql -qAtX '$MQTX_TEST_DATABASE_URL' -c 'SELECT count(*) FROM \"$T_SCHEMA\".mqtx_outbox WHERE id > 5') == 0 ]]"
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "retention: deleted 8 outbox row(s) (8 sent" "$MQTX_BG_ERR" || fail "summary: $(cat "$MQTX_BG_ERR")"
	[[ $(backend_consume 8 | wc -l) == 8 ]]
}

@test "retention: --loop goes on pruning while the broker is unreachable" {
	aged_sent 3 '2 hours'
	insert_rows 2
	MQTX_OUTBOX_RETENTION=1h MQTX_BROKER_URL=$(no_broker) mqtx_bg relay --loop
	wait_until 30 rows_are 0 "status = 'sent'"
	mqtx_bg_stop TERM 10
	[[ $(count_status pending) == 2 ]]
	grep -q "retention: deleted 3 outbox row(s) (3 sent" "$MQTX_BG_ERR" || fail "summary: $(cat "$MQTX_BG_ERR")"
}

@test "retention: --loop prunes between the batches of a steady backlog" {
	aged_sent 300 '2 hours'
	insert_rows 40000
	MQTX_RELAY_BATCH_SIZE=20 MQTX_OUTBOX_RETENTION=1h mqtx_bg relay --loop
	# the first pass comes after lane 0's first batch, long before the backlog is relayed
	local i seen=""
	for ((i = 0; i < 600; i++)); do
		seen=$(psql_test "SELECT count(*) FILTER (WHERE sent_at < now() - interval '1 hour') || ' ' ||
			count(*) FILTER (WHERE status = 'pending') FROM mqtx_outbox")
		[[ $seen == "0 "* ]] && break
		sleep 0.1
	done
	[[ $seen == "0 "* ]] || fail "old rows still there: $seen"
	[[ ${seen#0 } -gt 0 ]] || fail "pruned only once the backlog was relayed"
	mqtx_bg_stop TERM 30
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "retention: deleted 300 outbox row(s)" "$MQTX_BG_ERR" || fail "summary: $(cat "$MQTX_BG_ERR")"
}

@test "retention: mqtx_relays stays bounded after 100 cron-style runs; old completions go" {
	psql_test "INSERT INTO mqtx_completions(idempotency_key, completed_at) VALUES ('c-old', now() - interval '8 days'), ('c-new', now() - interval '6 days')"
	local i
	for ((i = 0; i < 100; i++)); do
		timeout 30 "$MQTX" relay -q 2>>"$BATS_TEST_TMPDIR/err" 3>&- || fail "run $i failed: $(tail -5 "$BATS_TEST_TMPDIR/err")"
	done
	local n
	n=$(psql_test "SELECT count(*) FROM mqtx_relays")
	((n >= 50 && n <= 52)) || fail "$n relay records after 100 runs"
	# the newest runs are the ones kept
	[[ $(psql_test "SELECT count(*) FROM mqtx_relays WHERE stopped_at IS NULL") == 0 ]]
	run psql_test "SELECT idempotency_key FROM mqtx_completions"
	assert_output "c-new"
}

@test "retention: records of relays that never said they stopped go once silent longer than retention and check.relay_forget" {
	psql_test "INSERT INTO mqtx_relays(relay_id, outbox, started_at, last_seen) VALUES
		('crashed-old', '\"$T_SCHEMA\".\"mqtx_outbox\"', now() - interval '3 days', now() - interval '2 days'),
		('crashed-young', '\"$T_SCHEMA\".\"mqtx_outbox\"', now() - interval '3 hours', now() - interval '2 hours'),
		('other-outbox', '\"$T_SCHEMA\".\"other\"', now() - interval '30 days', now() - interval '30 days')"
	# check.relay_forget (1d) is longer than outbox.retention here: it decides
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	run psql_test "SELECT relay_id FROM mqtx_relays WHERE stopped_at IS NULL ORDER BY 1"
	assert_output $'crashed-young\nother-outbox'
	MQTX_OUTBOX_RETENTION=1h MQTX_CHECK_RELAY_FORGET=1h run_mqtx 0 relay
	run psql_test "SELECT relay_id FROM mqtx_relays WHERE stopped_at IS NULL ORDER BY 1"
	assert_output "other-outbox"
}

@test "retention: --max-time bounds the pruning; the summary says more remain and the next run goes on" {
	aged_sent 100000 '2 hours'
	stopped_relays 60 '2 hours'
	psql_test "INSERT INTO mqtx_completions(idempotency_key, completed_at) VALUES ('c-old', now() - interval '30 days')"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay --max-time 50ms
	stderr_has "; more remain"
	local n
	n=$(psql_test "SELECT count(*) FROM mqtx_outbox")
	((n > 0 && n < 100000)) || fail "$n rows left"
	# the backlog of sent rows does not starve the other kinds: each gets its batch
	[[ $(psql_test "SELECT count(*) FROM mqtx_relays") == 1 ]]
	[[ $(psql_test "SELECT count(*) FROM mqtx_completions") == 0 ]]
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_lacks "more remain"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
}

@test "retention: a role without DELETE relays with one warning per run; init --grant lets it prune" {
	skip_unless_local_pg
	T_ROLE="r_${T_SCHEMA}"
	psql_test "CREATE ROLE \"$T_ROLE\" LOGIN PASSWORD 'relaypw'" \
		"GRANT USAGE ON SCHEMA \"$T_SCHEMA\" TO \"$T_ROLE\"" \
		"GRANT SELECT, INSERT, UPDATE ON mqtx_outbox, mqtx_relays, mqtx_completions, mqtx_txpub_log TO \"$T_ROLE\"" \
		"GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"$T_SCHEMA\" TO \"$T_ROLE\""
	local url="postgresql://$T_ROLE@127.0.0.1:${MQTX_TEST_DATABASE_URL##*127.0.0.1:}"
	printf 'relaypw\n' >"$BATS_TEST_TMPDIR/pw"
	export MQTX_DATABASE_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw MQTX_OUTBOX_RETENTION=1h
	aged_sent 5 '2 hours'
	stopped_relays 60 '2 hours'
	psql_test "INSERT INTO mqtx_completions(idempotency_key, completed_at) VALUES ('c-old', now() - interval '30 days')"
	insert_rows 3
	MQTX_DATABASE_URL=$url run_mqtx 0 relay
	[[ $(count_status sent) == 8 ]]
	[[ $(grep -c "retention:" <<<"$stderr") == 1 ]] || fail "not one retention warning: $stderr"
	stderr_has "retention: cannot delete from"
	stderr_has "'mqtx init --grant ROLE' grants what retention needs"
	stderr_lacks "error"
	# --loop: still one warning, however many passes
	MQTX_OUTBOX_RETENTION=1s MQTX_DATABASE_URL=$url mqtx_bg relay --loop
	wait_relay_listening 20
	sleep 3.5
	mqtx_bg_stop TERM 10
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	[[ $(grep -c "retention:" "$MQTX_BG_ERR") == 1 ]] || fail "not one retention warning: $(cat "$MQTX_BG_ERR")"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 8 ]]
	# with the grants of init --grant the role prunes
	run_mqtx 0 init --grant "$T_ROLE"
	MQTX_DATABASE_URL=$url run_mqtx 0 relay
	stderr_lacks "cannot delete"
	stderr_has "retention: deleted 5 outbox row(s) (5 sent"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 3 ]]
	[[ $(psql_test "SELECT count(*) FROM mqtx_completions") == 0 ]]
	n=$(psql_test "SELECT count(*) FROM mqtx_relays")
	((n <= 52)) || fail "$n relay records"
}
