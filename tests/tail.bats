#!/usr/bin/env bats
# The tail-mode relay (outbox.mode: tail; mqtx-relay(1), TAIL MODE) end to
# end against real servers: every committed row relayed exactly once
# whatever order transactions commit in, open and prepared transactions
# holding back only their own rows, no write to an outbox row while
# relaying, per-key order and no duplicates with three relays and
# concurrent writers, kill -9 at every failpoint, failures parked without
# blocking other keys, big transactions in several checkpointed batches,
# and the run limits. "Relayed" is what the broker got (backend_consume)
# and what mqtx check says the checkpoints cover.

load test_helper
load backend
load tail_helper

BUCKETS=4

setup() {
	export MQTX_OUTBOX_MODE=tail MQTX_OUTBOX_TAIL_BUCKETS=$BUCKETS
	backend_test_setup
	XACT_APP="xact-$T_SCHEMA"
	GID="tail-$T_SCHEMA"
	RELAY_PIDS=()
}

teardown() {
	local p
	for p in "${RELAY_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	for p in ${WRITER_PIDS:-}; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	end_xacts
	psql_test "ROLLBACK PREPARED '$GID'" >/dev/null 2>&1 || true
	mqtx_test_teardown
}

# only_default_backend: for what happens on the database side alone
only_default_backend() {
	[[ $(backend_name) == amqp ]] || skip "the database side only: runs on the default backend"
}

# insert_keyed N KEY_EXPR: N rows whose payload names their ordering key,
# {"k": key, "n": g}, so the order per key can be read off the broker
insert_keyed() {
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
		SELECT '$T_DEST', 'test.rk', $2, convert_to(json_build_object('k', $2, 'n', g)::text, 'UTF8')
		FROM generate_series(1, $1) g"
}

# relayed_rows: rows the checkpoints cover and not parked (check's "sent")
relayed_rows() {
	"$MQTX" check --format json --warn-age 0 --crit-age 0 2>/dev/null | jq -r .counts.sent.rows
}
unrelayed_rows() {
	"$MQTX" check --format json --warn-age 0 --crit-age 0 2>/dev/null | jq -r .tail.unrelayed.rows
}
unrelayed_is() { [[ $(unrelayed_rows) == "$1" ]]; }
unrelayed_below() {
	local n
	n=$(unrelayed_rows) && [[ $n =~ ^[0-9]+$ ]] && ((n < $1))
}

# consumed [N]: the messages the broker got since the last call (N of
# them: waits for that many), in delivery order, to $BATS_TEST_TMPDIR/got;
# their ids sorted to .../ids. A RabbitMQ queue is drained; a Kafka topic
# or NATS stream is read again from the start, so what an earlier call
# saw ($BATS_TEST_TMPDIR/seen) is taken off (got has everything then).
consumed() {
	local n=${1:-} d=$BATS_TEST_TMPDIR prev=0
	touch "$d/seen"
	prev=$(wc -l <"$d/seen")
	if [[ $(backend_name) == amqp ]]; then
		backend_consume "$n" >"$d/got"
		jq -r .id "$d/got" | LC_ALL=C sort >"$d/new"
		LC_ALL=C sort -m "$d/seen" "$d/new" >"$d/seen.next"
	else
		backend_consume ${n:+$((prev + n))} >"$d/got"
		jq -r .id "$d/got" | LC_ALL=C sort >"$d/seen.next"
		LC_ALL=C comm -23 "$d/seen.next" "$d/seen" >"$d/new"
	fi
	mv "$d/seen.next" "$d/seen"
	sort -n "$d/new" >"$d/ids"
}

# delivered_once N: the broker got N distinct rows, none twice (after consumed)
delivered_once() {
	local got dups
	got=$(uniq "$BATS_TEST_TMPDIR/ids" | wc -l)
	dups=$(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l)
	[[ $got == "$1" ]] || fail "the broker got $got distinct rows, expected $1"
	[[ $dups == 0 ]] || fail "$dups row(s) delivered twice: $(uniq -d "$BATS_TEST_TMPDIR/ids" | head -5 | tr '\n' ' ')"
}

# all_ids_delivered: every row of the outbox reached the broker (after consumed)
all_ids_delivered() {
	local missing
	missing=$(comm -23 <(psql_test "SELECT id FROM mqtx_outbox ORDER BY id" | sort) \
		<(uniq "$BATS_TEST_TMPDIR/ids" | sort) | head -5)
	[[ -z $missing ]] || fail "rows never delivered: $missing"
}

# per_key_order_kept: for each ordering key, the first deliveries came in
# id order (writers of a key serialize, so id order is commit order)
per_key_order_kept() {
	local bad
	bad=$(jq -r 'select(.body != null) | (.body | fromjson) as $b | select($b.k != null) | "\($b.k) \(.id)"' \
		"$BATS_TEST_TMPDIR/got" | awk '
		seen[$0]++ { next }                       # a duplicate: only first deliveries count
		{ if (($1 in last) && $2 + 0 < last[$1]) { print $1 ": " $2 " after " last[$1]; exit }
		  last[$1] = $2 + 0 }')
	[[ -z $bad ]] || fail "per-key order broken: $bad"
}

# count_outbox_writes: a trigger counts every UPDATE and DELETE of an outbox
# row from now on (outbox_writes() tells how many)
count_outbox_writes() {
	local q="\"$T_SCHEMA\""
	psql_test "CREATE TABLE mqtx_test_writes (op text, id int8);
		CREATE FUNCTION mqtx_test_count_writes() RETURNS trigger LANGUAGE plpgsql AS
		\$\$BEGIN INSERT INTO $q.mqtx_test_writes VALUES (TG_OP, OLD.id); RETURN NULL; END\$\$;
		CREATE TRIGGER mqtx_test_count_writes AFTER UPDATE OR DELETE ON mqtx_outbox
		FOR EACH ROW EXECUTE FUNCTION mqtx_test_count_writes();
		CREATE TABLE mqtx_test_cp_writes (n int8);
		CREATE FUNCTION mqtx_test_count_cp() RETURNS trigger LANGUAGE plpgsql AS
		\$\$BEGIN INSERT INTO $q.mqtx_test_cp_writes VALUES (1); RETURN NULL; END\$\$;
		CREATE TRIGGER mqtx_test_count_cp AFTER UPDATE ON mqtx_tail_checkpoints
		FOR EACH STATEMENT EXECUTE FUNCTION mqtx_test_count_cp()" >/dev/null
}
outbox_writes() { psql_test "SELECT count(*) FROM mqtx_test_writes"; }
checkpoint_statements() { psql_test "SELECT count(*) FROM mqtx_test_cp_writes"; }

# start_relay NAME ARGS...: a background relay (several may run), its
# stderr in $BATS_TEST_TMPDIR/NAME.err
start_relay() {
	local name=$1
	shift
	"$MQTX" relay "$@" </dev/null >"$BATS_TEST_TMPDIR/$name.out" 2>"$BATS_TEST_TMPDIR/$name.err" 3>&- &
	RELAY_PIDS+=($!)
}

relays_live() {
	[[ $(psql_test "SELECT count(*) FROM mqtx_relays WHERE stopped_at IS NULL") == "$1" ]]
}
# lanes_own_all N: N relay connections (lanes: two per relay) hold the 8 buckets' locks between them
lanes_own_all() {
	[[ $(psql_test "SELECT count(DISTINCT l.pid) || '|' || count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND l.objid::int8 BETWEEN 3000000 AND 3000007
		AND a.datname = current_database() AND a.application_name = 'mqtx relay'") == "$1|8" ]]
}

# stop_relays: SIGTERM to every background relay; each must exit 0
stop_relays() {
	local p rc
	for p in "${RELAY_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${RELAY_PIDS[@]}"; do
		rc=0
		timeout 30 tail --pid="$p" -f /dev/null || true
		wait "$p" || rc=$?
		((rc == 0)) || fail "relay pid $p exited $rc: $(cat "$BATS_TEST_TMPDIR"/*.err | tail -5)"
	done
	RELAY_PIDS=()
}

# ---------------------------------------------------------------- basics

@test "tail: a one-shot run relays every row once, writes no outbox row, and checkpoints once per batch" {
	count_outbox_writes
	insert_keyed 300 "'k-' || (g % 7)"
	insert_rows 700
	run_mqtx 0 relay --batch 100
	stderr_has "relayed 1000, failed 0, dead 0"
	[[ $(outbox_writes) == 0 ]] || fail "the relay wrote outbox rows: $(psql_test "SELECT op, count(*) FROM mqtx_test_writes GROUP BY op")"
	# 1000 rows in batches of 100, the buckets split over two lanes: one
	# checkpoint statement per batch (10-12 of them), and at most one more
	# per lane for the empty interval that ends the run
	local cps
	cps=$(checkpoint_statements)
	((cps >= 10 && cps <= 14)) || fail "$cps checkpoint statements for 10-12 batches"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'pending'") == 1000 ]]
	[[ $(relayed_rows) == 1000 ]]
	consumed 1000
	delivered_once 1000
	per_key_order_kept
	# nothing new: a second run relays nothing, and still writes no row
	run_mqtx 0 relay
	stderr_has "relayed 0"
	[[ $(outbox_writes) == 0 ]]
}

@test "tail: a lower id committed after higher ids were relayed goes out on a later run, exactly once" {
	open_xact 2 # ids 1-2, open
	insert_rows 3
	run_mqtx 0 relay
	stderr_has "relayed 3,"
	consumed 3
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "3 4 5 " ]] || fail "first run: $(cat "$BATS_TEST_TMPDIR/ids")"
	# committed after the checkpoint passed ids 3-5: not skipped
	insert_rows 1 # id 6, commits before the open one
	commit_xact
	run_mqtx 0 relay
	stderr_has "relayed 3,"
	consumed 3
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "1 2 6 " ]] || fail "second run: $(cat "$BATS_TEST_TMPDIR/ids")"
	run_mqtx 0 relay
	stderr_has "relayed 0"
	[[ $(relayed_rows) == 6 ]]
	[[ $(unrelayed_rows) == 0 ]]
}

@test "tail: an open transaction holds back nobody else; a one-shot run does not wait for it; a rolled back one leaves nothing" {
	open_xact 1
	insert_keyed 5 "'k1'"
	insert_rows 5
	SECONDS=0
	run_mqtx 0 relay
	((SECONDS < 20)) || fail "the one-shot run waited for the open transaction (${SECONDS}s)"
	stderr_has "relayed 10,"
	consumed 10
	delivered_once 10
	[[ $(unrelayed_rows) == 0 ]] # check sees committed rows only
	rollback_xact
	insert_rows 1
	run_mqtx 0 relay
	stderr_has "relayed 1,"
	consumed 1
	[[ $(cat "$BATS_TEST_TMPDIR/ids") == 12 ]] || fail "after the rollback: $(cat "$BATS_TEST_TMPDIR/ids")"
}

@test "tail: a prepared transaction holds back only its own rows; after COMMIT PREPARED they go out once" {
	psql_test "BEGIN; SET LOCAL mqtx.skip_notify = 'on';
		INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
		SELECT '$T_DEST', 'test.rk', 'k1', convert_to(json_build_object('k', 'k1', 'n', g)::text, 'UTF8')
		FROM generate_series(1, 2) g;
		PREPARE TRANSACTION '$GID'" >/dev/null
	insert_keyed 3 "'k2'"
	insert_rows 3
	run_mqtx 0 relay
	stderr_has "relayed 6,"
	consumed 6
	delivered_once 6
	# check names the prepared transaction and counts nothing of it
	run_mqtx 0 check --format json --warn-age 1h --crit-age 2h
	jq -e ".tail.transactions | map(select(.gid == \"$GID\" and .prepared)) | length == 1" <<<"$output" >/dev/null ||
		fail "check does not show the prepared transaction: $output"
	psql_test "COMMIT PREPARED '$GID'"
	run_mqtx 0 relay
	stderr_has "relayed 2,"
	consumed 2
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "1 2 " ]] || fail "after COMMIT PREPARED: $(cat "$BATS_TEST_TMPDIR/ids")"
	[[ $(relayed_rows) == 8 ]]
}

@test "tail: --loop relays committed rows as they come (no tick), and a row committed late" {
	mqtx_bg relay --loop --poll-interval 10m
	wait_relay_listening 30
	insert_rows 1
	consumed 1 # NOTIFY wakes it: the poll interval is ten minutes
	[[ $(cat "$BATS_TEST_TMPDIR/ids") == 1 ]] || fail "got: $(cat "$BATS_TEST_TMPDIR/ids")"
	open_xact 1
	insert_rows 2
	consumed 2
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "3 4 " ]] || fail "got: $(cat "$BATS_TEST_TMPDIR/ids")"
	commit_xact
	consumed 1
	[[ $(cat "$BATS_TEST_TMPDIR/ids") == 2 ]] || fail "the late commit: $(cat "$BATS_TEST_TMPDIR/ids")"
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "relayed 4," "$MQTX_BG_ERR" || fail "summary: $(cat "$MQTX_BG_ERR")"
}

@test "tail: --max-messages and --batch bound a run; --dry-run moves no checkpoint and sends nothing" {
	only_default_backend
	insert_keyed 40 "'k-' || (g % 3)"
	insert_rows 60
	local before
	before=$(psql_test "SELECT string_agg(bucket || ':' || coalesce(prev_snapshot::text, '-'), ' ' ORDER BY bucket) FROM mqtx_tail_checkpoints")
	run_mqtx 0 relay --dry-run
	stderr_has "dry run: 100 row(s) would be sent now"
	[[ $(psql_test "SELECT string_agg(bucket || ':' || coalesce(prev_snapshot::text, '-'), ' ' ORDER BY bucket) FROM mqtx_tail_checkpoints") == "$before" ]]
	[[ $(queue_count) == 0 ]]
	run_mqtx 0 relay --max-messages 30 --batch 7
	stderr_has "relayed 30,"
	[[ $(unrelayed_rows) == 70 ]]
	run_mqtx 0 relay --max-messages 50 --batch 1000
	stderr_has "relayed 50,"
	run_mqtx 0 relay
	stderr_has "relayed 20,"
	consumed 100
	delivered_once 100
	per_key_order_kept
}

@test "tail: --max-time ends a --loop run with exit 0 and everything it took checkpointed" {
	only_default_backend
	insert_rows 50
	SECONDS=0
	run_mqtx 0 relay --loop --max-time 2s
	((SECONDS < 20)) || fail "--max-time 2s took ${SECONDS}s"
	stderr_has "relayed 50,"
	[[ $(unrelayed_rows) == 0 ]]
}

# ---------------------------------------------------------------- txpub

@test "tail: txpub half messages: a prepared one is never relayed and holds back nobody; --commit relays it once, --rollback never" {
	insert_rows 1 # 1
	run_mqtx 0 txpub --prepare -d "$T_DEST" -r test.rk --payload one --payload two # 2, 3
	local k1 k2
	k1=$(sed -n 1p <<<"$output")
	k2=$(sed -n 2p <<<"$output")
	insert_rows 1 # 4
	run_mqtx 0 relay
	stderr_has "relayed 2,"
	consumed 2
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "1 4 " ]] || fail "first run: $(cat "$BATS_TEST_TMPDIR/ids")"
	run_mqtx 0 txpub --commit "$k1"
	run_mqtx 0 txpub --rollback "$k2"
	insert_rows 1 # 5
	run_mqtx 0 relay
	stderr_has "relayed 2,"
	consumed 2
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "2 5 " ]] || fail "after the commit: $(cat "$BATS_TEST_TMPDIR/ids")"
	[[ $(jq -r 'select(.id == 2) | .key' "$BATS_TEST_TMPDIR/got") == "$k1" ]]
	run_mqtx 0 relay
	stderr_has "relayed 0"
	[[ $(psql_test "SELECT status FROM mqtx_outbox WHERE id = 3") == rolled_back ]]
	[[ $(relayed_rows) == 4 ]]
}

@test "tail: txpub --sql publishes itself; the tail relay never sends its row again" {
	psql_test "CREATE TABLE orders (id int PRIMARY KEY, k text)" >/dev/null
	printf 'INSERT INTO "%s".orders VALUES (1, %s);\n' "$T_SCHEMA" "'o-1'" >"$BATS_TEST_TMPDIR/ok.sql"
	run_mqtx 0 txpub --sql "$BATS_TEST_TMPDIR/ok.sql" -d "$T_DEST" -r test.rk --key o-1 --payload one
	insert_rows 1
	run_mqtx 0 relay
	stderr_has "relayed 1,"
	consumed 2
	[[ $(jq -r .key "$BATS_TEST_TMPDIR/got" | sort | tr '\n' ' ') == *"o-1 "* ]] || fail "got: $(cat "$BATS_TEST_TMPDIR/got")"
	(($(wc -l <"$BATS_TEST_TMPDIR/got") == 2)) || fail "expected the txpub message and the row: $(cat "$BATS_TEST_TMPDIR/got")"
	[[ $(psql_test "SELECT status FROM mqtx_outbox WHERE idempotency_key = 'o-1'") == sent ]]
}

# ---------------------------------------------------------------- big transactions

@test "tail: one transaction of 60,000 rows goes in batches of --batch; a kill -9 mid-way re-sends at most a batch per lane" {
	skip_unless_failpoints
	count_outbox_writes
	# one INSERT: one transaction; routing keys spread the rows over Kafka's
	# partitions
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload)
		SELECT '$T_DEST', 'test.rk' || (g % 30), convert_to(json_build_object('n', g)::text, 'UTF8')
		FROM generate_series(1, 60000) g"
	MQTX_FAILPOINTS="relay.tail.before_commit=crash@21" run_mqtx 137 relay --batch 1000
	stderr_has "failpoint relay.tail.before_commit: crash"
	# about twenty batches were checkpointed inside the one snapshot: every
	# bucket's checkpoint has the interval open and a position in it
	run psql_test "SELECT count(*) FILTER (WHERE cur_snapshot IS NOT NULL AND pos_id > 0) FROM mqtx_tail_checkpoints"
	[[ $output == "$BUCKETS" ]] || fail "checkpoints after the crash: $(psql_test "SELECT * FROM mqtx_tail_checkpoints")"
	local left
	left=$(unrelayed_rows)
	((left >= 38000 && left <= 41000)) || fail "$left rows unrelayed after 20 of 60 batches"
	run_mqtx 0 relay --batch 1000
	stderr_has "relayed $left,"
	[[ $(unrelayed_rows) == 0 ]]
	[[ $(outbox_writes) == 0 ]]
	local cps
	cps=$(checkpoint_statements)
	# one per batch; a lane's first chunk of a resumed interval, and one
	# cut short when the buckets are shared out at the start, add a few
	((cps >= 60 && cps <= 68)) || fail "$cps checkpoint statements for 60 batches"
	consumed
	[[ $(uniq "$BATS_TEST_TMPDIR/ids" | wc -l) == 60000 ]] || fail "not every row was delivered: $(uniq "$BATS_TEST_TMPDIR/ids" | wc -l) of 60000, $(wc -l <"$BATS_TEST_TMPDIR/ids") messages"
	local dups
	dups=$(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l)
	if backend_can dedupes; then
		((dups == 0)) || fail "$dups duplicates on a broker that dedupes by key"
	else
		# the batch that was not checkpointed, and the other lane's in flight
		((dups >= 1 && dups <= 2000)) || fail "$dups duplicates: expected a batch per lane at most"
	fi
}

# ---------------------------------------------------------------- crashes

# crash_tail FAILPOINT: 1000 rows (300 over 7 keys), batch 100; the relay
# dies (SIGKILL) at the third pass of FAILPOINT, a second run finishes.
# Then: every row delivered, per-key order of first deliveries kept, and
# duplicates only of what was in flight: a batch per lane (the relay runs
# two lanes, each with its own buckets), in DUPS.
crash_tail() {
	skip_unless_failpoints
	insert_keyed 300 "'k-' || (g % 7)"
	insert_rows 700
	MQTX_FAILPOINTS="$1=crash@3" run_mqtx 137 relay --batch 100
	stderr_has "failpoint $1: crash"
	local left
	left=$(unrelayed_rows)
	((left > 0 && left < 1000)) || fail "$left rows unrelayed after the crash"
	run_mqtx 0 relay --batch 100
	[[ $(unrelayed_rows) == 0 ]]
	consumed
	all_ids_delivered
	per_key_order_kept
	DUPS=$(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l)
	((DUPS <= 200)) || fail "$DUPS duplicates: more than a batch per lane in flight"
}

@test "tail crash: after reading a batch, before publishing: nothing lost; only the other lane's batch in flight can come twice" {
	crash_tail relay.tail.after_fetch
	# the batch read was never published; the other lane's may have been, unrecorded
	((DUPS <= 100)) || fail "$DUPS duplicates after a crash before publishing"
}

@test "tail crash: after publishing, before the confirms: nothing lost" {
	crash_tail relay.before_confirm
}

@test "tail crash: after the confirms, before the checkpoint: nothing lost, that batch comes twice" {
	crash_tail relay.tail.after_confirm
	if backend_can dedupes; then
		((DUPS == 0)) || fail "the broker dedupes by key, yet $DUPS rows arrived twice"
	else
		((DUPS >= 1 && DUPS <= 200)) || fail "expected the unrecorded batch (one per lane at most) twice, got $DUPS"
	fi
}

@test "tail crash: checkpoint written, before its commit: nothing lost, that batch comes twice" {
	crash_tail relay.tail.before_commit
	if backend_can dedupes; then
		((DUPS == 0)) || fail "the broker dedupes by key, yet $DUPS rows arrived twice"
	else
		((DUPS >= 1 && DUPS <= 200)) || fail "expected the uncommitted batch (one per lane at most) twice, got $DUPS"
	fi
}

@test "tail: a failpoint error at the checkpoint leaves its batch unrelayed (exit 4); the next run sends it" {
	skip_unless_failpoints
	insert_rows 50
	MQTX_FAILPOINTS="relay.tail.before_commit=error" run_mqtx 4 relay --batch 20
	stderr_has "failpoint relay.tail.before_commit"
	# the batch whose checkpoint failed stays unrelayed (the other lane's may have gone)
	local left
	left=$(unrelayed_rows)
	((left > 0)) || fail "nothing unrelayed after a failed checkpoint"
	run_mqtx 0 relay
	stderr_has "relayed $left,"
	[[ $(unrelayed_rows) == 0 ]]
	consumed
	all_ids_delivered
	(($(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l) <= 20)) || fail "more duplicates than the batch that failed"
}

@test "tail crash: kill -9 of a --loop relay at random moments, three times, while writers insert: nothing lost" {
	skip_on_backend nats "broker-neutral; RabbitMQ and Kafka run it"
	insert_keyed 2000 "'k-' || (g % 11)"
	local i
	for i in 1 2 3; do
		start_relay "relay$i" --loop --batch 200 --poll-interval 100ms
		insert_keyed 500 "'k-' || (g % 11)"
		sleep "0.$((RANDOM % 9 + 1))"
		kill -KILL "${RELAY_PIDS[0]}"
		wait "${RELAY_PIDS[0]}" || true
		RELAY_PIDS=()
	done
	run_mqtx 0 relay --batch 200
	[[ $(unrelayed_rows) == 0 ]]
	consumed
	all_ids_delivered
	per_key_order_kept
	local dups
	dups=$(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l)
	((dups <= 3 * 200)) || fail "$dups duplicates: more than a batch per kill"
}

@test "tail: PostgreSQL restarted under --loop: the relay reconnects, goes on from its checkpoints, loses nothing" {
	skip_unless_local_pg
	skip_on_backend nats "broker-neutral; RabbitMQ and Kafka run it"
	insert_keyed 5000 "'k-' || (g % 11)"
	insert_rows 10000
	mqtx_bg relay --loop --batch 200 --poll-interval 200ms
	wait_until 30 unrelayed_below 14000
	"$MQTX_TEST_PG_CTL" restart -m fast -w >/dev/null
	insert_rows 100 # after the restart
	wait_until 90 unrelayed_is 0
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	consumed
	all_ids_delivered
	per_key_order_kept
	local dups
	dups=$(uniq -d "$BATS_TEST_TMPDIR/ids" | wc -l)
	((dups <= 400)) || fail "$dups duplicates: more than a batch per lane"
}

@test "tail: the broker goes away and comes back under --loop: unconfirmed rows are not parked, everything goes out" {
	skip_unless_local_broker
	backend_use_fault_injection
	insert_rows 5000
	mqtx_bg relay --loop --batch 200 --poll-interval 200ms
	wait_until 30 unrelayed_below 4600
	backend_stop
	insert_rows 500 # while the broker is away
	sleep 1
	backend_start
	wait_until 90 unrelayed_is 0
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	# a lost connection is no failure of a row: nothing is left parked
	[[ $(psql_test "SELECT count(*) FROM mqtx_tail_parked") == 0 ]]
	consumed
	all_ids_delivered
}

# ---------------------------------------------------------------- failures

@test "tail: failed rows are parked, retried with backoff, then dead; later rows of their key wait, other keys go on" {
	local bad
	bad=$(missing_dest) || fail "cannot set up a missing destination"
	count_outbox_writes
	# 1: k1 to nowhere, 2-3: k1, 4-5: k2, 6: no key to nowhere, 7-8: no key
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload) VALUES
		('$bad', 'test.rk', 'k1', convert_to('{\"k\":\"k1\",\"n\":1}', 'UTF8'))"
	insert_keyed 2 "'k1'"
	insert_keyed 2 "'k2'"
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload) VALUES ('$bad', 'test.rk', convert_to('{}', 'UTF8'))"
	insert_rows 2
	MQTX_RELAY_BACKOFF_INITIAL=5m run_mqtx 1 relay
	stderr_has "relayed 4, failed 2, dead 0"
	consumed 4
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "4 5 7 8 " ]] || fail "first run: $(cat "$BATS_TEST_TMPDIR/ids")"
	run psql_test "SELECT string_agg(id || ':' || state, ' ' ORDER BY id) FROM mqtx_tail_parked"
	[[ $output == "1:retry 2:blocked 3:blocked 6:retry" ]] || fail "parked: $output"
	run_mqtx 1 check --format json --warn-age 1h --crit-age 2h
	jq -e '.tail.blocked_keys == 1 and ([.problems[] | select(.check == "blocked_ordering_keys") | .ordering_keys[].ordering_key] == ["k1"])' \
		<<<"$output" >/dev/null || fail "k1 is not the blocked key: $output"
	# not due yet: nothing moves
	MQTX_RELAY_BACKOFF_INITIAL=5m run_mqtx 0 relay
	stderr_has "relayed 0"
	# due now, and the last attempt: dead; k1's later rows go after it, in order
	psql_test "UPDATE mqtx_tail_parked SET next_at = now() WHERE state = 'retry'"
	MQTX_RELAY_MAX_ATTEMPTS=2 run_mqtx 1 relay
	stderr_has "reached relay.max_attempts (2) and are now dead"
	stderr_has "relayed 2, failed 0, dead 2"
	consumed 2
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "2 3 " ]] || fail "after the head died: $(cat "$BATS_TEST_TMPDIR/ids")"
	[[ $(psql_test "SELECT string_agg(id || ':' || state, ' ' ORDER BY id) FROM mqtx_tail_parked") == "1:dead 6:dead" ]]
	[[ $(psql_test "SELECT last_error IS NOT NULL FROM mqtx_tail_parked WHERE id = 1") == t ]]
	[[ $(outbox_writes) == 0 ]] || fail "failure state was written to outbox rows"
	run_mqtx 2 check --format json --warn-age 1h --crit-age 2h
	[[ $(jq -r .counts.dead.rows <<<"$output") == 2 ]] || fail "check: $output"
}

@test "tail: a failed row's key is held back in the next chunk too, though that one was read while its chunk was published" {
	local bad
	bad=$(missing_dest) || fail "cannot set up a missing destination"
	# one key: chunks of two rows; chunk 2 is read before chunk 1 is
	# recorded, so only the relay can know that row 1 of k1 failed
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload) VALUES
		('$bad', 'test.rk', 'k1', convert_to('{\"n\":1}', 'UTF8'))"
	insert_keyed 7 "'k1'"
	MQTX_RELAY_BACKOFF_INITIAL=5m run_mqtx 1 relay --batch 2
	stderr_has "relayed 0, failed 1, dead 0"
	run psql_test "SELECT string_agg(id || ':' || state, ' ' ORDER BY id) FROM mqtx_tail_parked"
	[[ $output == "1:retry 2:blocked 3:blocked 4:blocked 5:blocked 6:blocked 7:blocked 8:blocked" ]] || fail "parked: $output"
	consumed
	[[ ! -s $BATS_TEST_TMPDIR/ids ]] || fail "rows of k1 went out before its head: $(cat "$BATS_TEST_TMPDIR/ids")"
	# the head goes dead: the rest follows in order
	psql_test "UPDATE mqtx_tail_parked SET next_at = now() WHERE state = 'retry'"
	MQTX_RELAY_MAX_ATTEMPTS=1 run_mqtx 1 relay --batch 2
	consumed 7
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "2 3 4 5 6 7 8 " ]] || fail "after the head died: $(cat "$BATS_TEST_TMPDIR/ids")"
}

@test "tail: a row the protocol cannot carry is dead at once, its key's later rows go on after it" {
	only_default_backend
	# a routing key over AMQP's 255 bytes cannot be carried: dead without retrying
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload) VALUES
		('$T_DEST', repeat('r', 300), 'k1', convert_to('{\"k\":\"k1\",\"n\":0}', 'UTF8'))"
	insert_keyed 2 "'k1'"
	run_mqtx 1 relay
	stderr_has "can never be sent as they are and are now dead"
	consumed 2
	[[ $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/ids") == "2 3 " ]] || fail "got: $(cat "$BATS_TEST_TMPDIR/ids")"
	[[ $(psql_test "SELECT string_agg(id || ':' || state || ':' || attempts, ' ') FROM mqtx_tail_parked") == "1:dead:1" ]]
}

# ---------------------------------------------------------------- several relays

@test "tail: three relays with concurrent writers share the buckets, keep per-key order and send nothing twice" {
	skip_on_backend nats "broker-neutral; RabbitMQ and Kafka run it"
	[[ $(psql_test "SELECT count(*) FROM mqtx_tail_checkpoints") == 4 ]]
	# more buckets than relays: init again with 8 (a fresh outbox, nothing relayed yet)
	psql_test "DELETE FROM mqtx_tail_checkpoints" >/dev/null
	MQTX_OUTBOX_TAIL_BUCKETS=8 run_mqtx 0 init
	export MQTX_OUTBOX_TAIL_BUCKETS=8
	[[ $(psql_test "SELECT count(*) FROM mqtx_tail_checkpoints") == 8 ]]
	insert_keyed 500 "'w0-' || (g % 5)"
	start_relay r1 --loop --batch 50 --poll-interval 200ms
	start_relay r2 --loop --batch 50 --poll-interval 200ms
	start_relay r3 --loop --batch 50 --poll-interval 200ms
	# all three hold their share (8 buckets over six lanes, 1 or 2 each) before the writers start
	wait_until 30 relays_live 3
	wait_until 30 lanes_own_all 6
	# three writers, each the only writer of its five keys, 40 transactions
	# of 1-20 keyed rows and 2 without a key (those land in every bucket)
	local w
	WRITER_PIDS=
	for w in 1 2 3; do
		(
			for ((i = 0; i < 40; i++)); do
				psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
					SELECT '$T_DEST', 'test.rk', k, convert_to(json_build_object('k', k, 'n', g)::text, 'UTF8')
					FROM (SELECT 'w$w-' || (g % 5) AS k, g FROM generate_series(1, 1 + $i % 20) g) s;
					INSERT INTO mqtx_outbox(destination, routing_key, payload)
					SELECT '$T_DEST', 'test.rk', convert_to(json_build_object('n', g)::text, 'UTF8')
					FROM generate_series(1, 2) g" >/dev/null
				sleep 0.0$((RANDOM % 9 + 1))
			done
		) 3>&- &
		WRITER_PIDS+=" $!"
	done
	for w in $WRITER_PIDS; do wait "$w" || fail "a writer failed"; done
	WRITER_PIDS=
	local total
	total=$(psql_test "SELECT count(*) FROM mqtx_outbox")
	((total == 500 + 3 * (420 + 80))) || fail "$total rows written" # 500 + 3 x sum(1 + i % 20 + 2), i < 40
	wait_until 60 unrelayed_is 0
	stop_relays
	consumed "$total"
	delivered_once "$total"
	per_key_order_kept
	# each relay did part of the work
	local f n
	for f in r1 r2 r3; do
		n=$(sed -n 's/.*relayed \([0-9]*\),.*/\1/p' "$BATS_TEST_TMPDIR/$f.err" | tail -1)
		((n > 0)) || fail "relay $f relayed nothing: $(tail -3 "$BATS_TEST_TMPDIR/$f.err")"
	done
}
