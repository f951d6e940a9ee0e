#!/usr/bin/env bats
# PostgreSQL failover under a running relay: a primary and a streaming
# replica of the test's own (tests/helpers/pgpair.sh), database.url naming
# both with target_session_attrs=read-write (passed to libpq untouched).
# The primary is lost mid-run and the replica promoted; the relay goes on
# with the new primary. Asynchronous replication: the sent marks the
# replica never got are sent again (duplicates, never losses).
# Synchronous: a mark the relay saw committed is on the replica, so only the
# batch cut in flight can come twice. The failover is the database's: it
# runs in the Kafka pass only, against the real broker.

load test_helper
load backend

setup() {
	[[ $(backend_name) == kafka ]] || skip "the database's failover: runs in the Kafka pass"
	[[ -x ${MQTX_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}/pg_basebackup ]] || skip "no PostgreSQL server binaries"
	mqtx_test_setup
	backend_setup
	PAIR=$(mktemp -d /tmp/mqtx-pair.XXXXXX)
	chmod 755 "$PAIR"
	export MQTX_RELAY_BACKOFF_INITIAL=200ms MQTX_RELAY_BACKOFF_MAX=1s
}

teardown() {
	mqtx_bg_stop KILL 5
	"$BATS_TEST_DIRNAME/helpers/pgpair.sh" stop "$PAIR" >/dev/null 2>&1 || true
	rm -rf "$PAIR"
	mqtx_test_teardown
}

pair() { "$BATS_TEST_DIRNAME/helpers/pgpair.sh" "$1" "$PAIR" "${@:2}"; }

# pair_start sync|async: the pair, the outbox on its primary
pair_start() {
	pair start "$1" || fail "cannot start the PostgreSQL pair" || return 1
	# shellcheck source=/dev/null
	source "$PAIR/env"
	export MQTX_DATABASE_URL=$PAIR_URL
	pp "CREATE SCHEMA \"$T_SCHEMA\""
	run_mqtx 0 init
}

# pp SQL: on whichever server is the primary now
pp() {
	PGOPTIONS="-c search_path=$T_SCHEMA,public" PGCONNECT_TIMEOUT=3 \
		psql "$PAIR_URL" -v ON_ERROR_STOP=1 -qAtX -c "$1"
}

pair_rows() {
	pp "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
		SELECT '$T_DEST', 'test.rk', 'k' || (g % 7), convert_to(json_build_object('n', g)::text, 'UTF8')
		FROM generate_series(1, $1) g"
}

# pair_sent OP N: the current primary answers, and sent OP N
pair_sent() {
	local n
	n=$(pp "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'" 2>/dev/null) && [[ $n =~ ^[0-9]+$ ]] || return 1
	(("n $1 $2"))
}

# the replica has replayed everything the primary wrote
caught_up() {
	local lsn
	lsn=$(psql -qAtX -h 127.0.0.1 -p "$PAIR_PRIMARY_PORT" -U postgres -d postgres -c "SELECT pg_current_wal_lsn()") || return 1
	[[ $(psql -qAtX -h 127.0.0.1 -p "$PAIR_STANDBY_PORT" -U postgres -d postgres \
		-c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn") == t ]]
}

# delivered: the outbox ids that reached the topic, one per line, sorted
delivered() {
	backend_consume | jq -r .id | sort -n
}

@test "failover: asynchronous replica promoted under relay --loop: the sent marks it never got are sent again, nothing is lost; check is UNKNOWN meanwhile" {
	pair_start async
	pair_rows 2000
	wait_until 10 caught_up
	# the replica stops receiving WAL: the relay's sent marks stay on the primary
	pair pause
	mqtx_bg relay --loop --batch 100
	wait_until 30 pair_sent == 2000 || fail "relayed $(pp "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") of 2000 on the primary"
	pair stop-primary kill
	# no server takes writes: check cannot connect (UNKNOWN)
	run_mqtx 3 check
	assert_output --partial "UNKNOWN - cannot connect to database"
	assert_output --partial "session is read-only"
	pair promote
	# the new primary never saw the marks: all 2000 are pending again
	wait_until 20 pair_sent '>' 0 || fail "the relay did not go on with the new primary: $(tail -5 "$MQTX_BG_ERR")"
	pair_rows 500
	wait_until 60 pair_sent == 2500 || fail "sent $(pp "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") of 2500: $(tail -5 "$MQTX_BG_ERR")"
	mqtx_bg_stop
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(tail -5 "$MQTX_BG_ERR")"
	grep -q "cannot connect\|terminat\|connection" "$MQTX_BG_ERR" || fail "the relay never saw the database go: $(cat "$MQTX_BG_ERR")"
	delivered >"$BATS_TEST_TMPDIR/ids"
	[[ $(uniq "$BATS_TEST_TMPDIR/ids" | wc -l) == 2500 ]] || fail "lost: $((2500 - $(uniq "$BATS_TEST_TMPDIR/ids" | wc -l))) row(s)"
	# duplicates: exactly the 2000 rows marked sent only on the lost primary
	[[ $(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l) == 2000 && $(wc -l <"$BATS_TEST_TMPDIR/ids") == 4500 ]] ||
		fail "$(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l) duplicated rows, $(wc -l <"$BATS_TEST_TMPDIR/ids") deliveries"
	[[ $(uniq -d "$BATS_TEST_TMPDIR/ids" | tail -1) == 2000 ]]
	# after: the new primary is the outbox's whole truth
	run_mqtx 0 check --format json
	[[ $(jq -c '[.status, .counts.sent.rows, .counts.pending.rows]' <<<"$output") == '["ok",2500,0]' ]] || fail "check: $output"
}

@test "failover: synchronous replica promoted when the primary is killed mid-run: only the batch cut in flight can come twice, nothing is lost" {
	pair_start sync
	pair_rows 2000
	mqtx_bg relay --loop --batch 10
	wait_until 30 pair_sent '>' 300
	pair stop-primary kill
	local at_kill
	at_kill=$(psql -qAtX -h 127.0.0.1 -p "$PAIR_STANDBY_PORT" -U mqtx -d mqtx_test \
		-c "SELECT count(*) FROM \"$T_SCHEMA\".mqtx_outbox WHERE status = 'sent'")
	((at_kill < 2000)) || fail "the relay had finished before the kill: the test proves nothing"
	pair promote
	pair_rows 500
	wait_until 120 pair_sent == 2500 || fail "sent $(pp "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'") of 2500: $(tail -5 "$MQTX_BG_ERR")"
	mqtx_bg_stop
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(tail -5 "$MQTX_BG_ERR")"
	delivered >"$BATS_TEST_TMPDIR/ids"
	[[ $(uniq "$BATS_TEST_TMPDIR/ids" | wc -l) == 2500 ]] || fail "lost: $((2500 - $(uniq "$BATS_TEST_TMPDIR/ids" | wc -l))) row(s)"
	local dups
	dups=$(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l)
	((dups <= 10)) || fail "$dups rows came twice: more than the one batch (10) in flight at the kill"
}
