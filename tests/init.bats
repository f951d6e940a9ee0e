#!/usr/bin/env bats
# mqtx init: object names per table, checks of adopted tables, and names
# that are not valid text.

load test_helper

setup() {
	mqtx_test_setup
}

teardown() {
	stop_locker
	mqtx_test_teardown
}

# start_locker SQL: runs SQL in a psql session of its own that then stays
# open (pg_sleep, ended by stop_locker); waits until it sleeps.
start_locker() {
	LOCKER_APP="mqtx_locker_$T_SCHEMA"
	PGAPPNAME=$LOCKER_APP PGOPTIONS="-c search_path=$T_SCHEMA,public" \
		psql "$MQTX_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -qAtX \
		-c "$1" -c "SELECT pg_sleep(120)" >/dev/null 2>&1 3>&- &
	LOCKER_PID=$!
	wait_until 10 locker_sleeps
}
locker_sleeps() {
	[[ $(psql_test "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$LOCKER_APP'
		AND state = 'active' AND query LIKE '%pg_sleep%'") == 1 ]]
}
stop_locker() {
	[[ -n ${LOCKER_PID:-} ]] || return 0
	psql_test "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$LOCKER_APP'" >/dev/null || true
	wait "$LOCKER_PID" 2>/dev/null || true
	LOCKER_PID=
}

@test "names: a table name with invalid UTF-8 is a usage error for init (2) and UNKNOWN for check (3), no abort" {
	run_mqtx 2 init --print --table $'bad\xffname'
	stderr_has "outbox.table: not valid UTF-8 (byte 4)"
	run_mqtx 3 check --table $'bad\xffname'
	stderr_has "outbox.table: not valid UTF-8 (byte 4)"
	[[ $(grep -c . <<<"$stderr") -le 2 ]] || fail "more than an error and a hint: $stderr"
	run_mqtx 2 init --print --grant $'role\xfe'
	stderr_has "option --grant: not valid UTF-8 (byte 5)"
	MQTX_OUTBOX_COLUMNS_PAYLOAD=$'p\xc3' run_mqtx 3 relay --dry-run
	stderr_has "outbox.columns.payload: not valid UTF-8 (byte 2)"
}

@test "names: a name libpq will not quote in the connection's encoding is a configuration error, no abort" {
	# valid UTF-8 (the euro sign), but not valid EUC_JP
	PGCLIENTENCODING=EUC_JP run_mqtx 3 check --table $'t\xe2\x82\xac'
	[[ $output == "UNKNOWN - outbox.table: cannot use it as an SQL identifier in the connection's encoding EUC_JP"* ]] ||
		fail "stdout: $output"
	PGCLIENTENCODING=EUC_JP run_mqtx 3 init --print --table $'t\xe2\x82\xac'
	stderr_has "outbox.table: cannot use it as an SQL identifier"
	PGCLIENTENCODING=EUC_JP run_mqtx 3 relay --dry-run --table $'t\xe2\x82\xac'
}

# two table names of 59 bytes that share their first 53
long_a() { printf 'p%.0s' {1..52}; printf '_orders'; }
long_b() { printf 'p%.0s' {1..52}; printf '_refund'; }
key_of_insert() { psql_test "INSERT INTO \"$1\" (destination, payload) VALUES ('x', 'y') RETURNING idempotency_key"; }
indexes_of() {
	psql_test "SELECT count(*) FROM pg_index i WHERE i.indrelid = '\"$T_SCHEMA\".\"$1\"'::regclass AND NOT i.indisunique"
}

@test "init: two tables whose names share their first 50+ bytes get their own key functions, triggers and indexes" {
	local a b
	a=$(long_a) b=$(long_b)
	run_mqtx 0 init --table "$a"
	run_mqtx 0 init --table "$b"
	run_mqtx 0 init --table "$a" # again: nothing of b's is touched
	local ka kb
	ka=$(key_of_insert "$a") kb=$(key_of_insert "$b")
	[[ $ka == *":$T_SCHEMA.$a:1" ]] || fail "key of a row of $a: $ka"
	[[ $kb == *":$T_SCHEMA.$b:1" ]] || fail "key of a row of $b: $kb"
	[[ $(indexes_of "$a") == 6 ]] || fail "$a has $(indexes_of "$a") mqtx indexes"
	[[ $(indexes_of "$b") == 6 ]] || fail "$b has $(indexes_of "$b") mqtx indexes"
	run psql_test "SELECT count(*) FROM pg_trigger WHERE tgrelid = '\"$T_SCHEMA\".\"$b\"'::regclass AND NOT tgisinternal"
	[[ $output == 3 ]] || fail "$b has $output triggers"
	# a short name keeps the names mqtx always gave
	run_mqtx 0 init
	psql_test "SELECT 'mqtx_outbox_pending_idx'::regclass, 'mqtx_outbox_mqtx_default_key()'::regprocedure" >/dev/null
}

@test "init: objects of the old shortened names that belong to the table are replaced and dropped" {
	local a b p50
	a=$(long_a) b=$(long_b)
	p50=$(printf 'p%.0s' {1..50})
	run_mqtx 0 init --table "$a"
	run_mqtx 0 init --table "$b"
	# what mqtx before unique names left: one key function for both, deriving b's keys
	psql_test "CREATE FUNCTION \"${p50}_mqtx_default\"() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN IF NEW.idempotency_key IS NULL THEN NEW.idempotency_key := 'mqtx:' || current_database() || ':$T_SCHEMA.$b:' || NEW.id; END IF; RETURN NEW; END \$\$;
		CREATE TRIGGER \"${p50}_mqtx_key\" BEFORE INSERT ON \"$a\" FOR EACH ROW EXECUTE FUNCTION \"${p50}_mqtx_default\"();
		CREATE TRIGGER \"${p50}_mqtx_key\" BEFORE INSERT ON \"$b\" FOR EACH ROW EXECUTE FUNCTION \"${p50}_mqtx_default\"();
		CREATE INDEX \"${p50}_pending_idx\" ON \"$a\" (id) WHERE status = 'pending'"
	run_mqtx 0 init --print --table "$a"
	[[ $output == *"DROP TRIGGER IF EXISTS \"${p50}_mqtx_key\""* && $output == *"DROP INDEX IF EXISTS"*"\"${p50}_pending_idx\""* ]] ||
		fail "no drops printed: $output"
	[[ $output != *"DROP FUNCTION"* ]] || fail "the function is still used by $b's trigger: $output"
	run_mqtx 0 init --table "$a"
	run_mqtx 0 init --table "$b"
	[[ $(key_of_insert "$a") == *":$T_SCHEMA.$a:"* ]] || fail "key of $a: $(key_of_insert "$a")"
	run psql_test "SELECT count(*) FROM pg_trigger WHERE tgname = '${p50}_mqtx_key'" \
		"SELECT count(*) FROM pg_proc WHERE proname = '${p50}_mqtx_default'" \
		"SELECT count(*) FROM pg_class WHERE relname = '${p50}_pending_idx'"
	[[ ${lines[*]} == "0 0 0" ]] || fail "old objects left: ${lines[*]}"
}

@test "init: an adopted table whose key column has no unique constraint gets a warning" {
	psql_test "CREATE TABLE adopted (id bigserial PRIMARY KEY, idempotency_key text, destination text NOT NULL,
		routing_key text, ordering_key text, headers jsonb, payload bytea NOT NULL, content_type text)"
	run_mqtx 3 init --table adopted # lacks the bookkeeping columns
	stderr_has "has no unique constraint or unique index"
	stderr_has "drop the other as a duplicate"
	run_mqtx 0 init --print --table adopted
	stderr_has "CREATE UNIQUE INDEX CONCURRENTLY ON \"$T_SCHEMA\".\"adopted\" (\"idempotency_key\")"
	psql_test "CREATE UNIQUE INDEX ON adopted (idempotency_key)"
	run_mqtx 0 init --print --table adopted
	stderr_lacks "unique"
	run_mqtx 0 init
	stderr_lacks "unique"
}

@test "init: checks what it created: an index name taken by another table's index is an error, nothing changed" {
	local b ix
	b=$(long_b)
	run_mqtx 0 init --print --table "$b"
	ix=$(grep -o 'CREATE INDEX IF NOT EXISTS "[^"]*_dead_idx"' <<<"$output" | cut -d'"' -f2)
	[[ -n $ix ]] || fail "no dead_idx in: $output"
	psql_test "CREATE TABLE other (id int, status text); CREATE INDEX \"$ix\" ON other (id)"
	run_mqtx 3 init --table "$b"
	stderr_has "index $ix is not an index of the table"
	stderr_has "nothing was changed"
	run psql_test "SELECT to_regclass('\"$b\"') IS NULL"
	[[ $output == t ]] || fail "the table was created anyway"
}

@test "init: indexes for retention: rolled back half messages by the time of rollback, completions by completed_at" {
	run_mqtx 0 init
	run psql_test "SELECT pg_get_indexdef('mqtx_outbox_rolled_back_idx'::regclass)"
	[[ $output == *"(available_at) WHERE (status = 'rolled_back'::text)" ]] || fail "index: $output"
	run psql_test "SELECT pg_get_indexdef('mqtx_completions_completed_at_idx'::regclass)"
	[[ $output == *"(completed_at)" ]] || fail "index: $output"
	# no created_at column: the rolled-back index is there all the same, and init's check finds it
	printf 'outbox:\n  columns:\n    created_at: ""\n' >"$BATS_TEST_TMPDIR/nocreated.yaml"
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/nocreated.yaml" init --table nocreated
	run psql_test "SELECT count(*) FROM pg_class WHERE relname = 'nocreated_rolled_back_idx'"
	assert_output 1
}

@test "init: --partition-by with long table names: partition names fit in 63 bytes and differ between tables" {
	local a b
	a=$(long_a) b=$(long_b)
	run_mqtx 0 init --table "$a" --partition-by hour
	run_mqtx 0 init --table "$b" --partition-by hour
	run psql_test "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = '\"$T_SCHEMA\".\"$a\"'::regclass ORDER BY 1"
	local pa=$output
	run psql_test "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = '\"$T_SCHEMA\".\"$b\"'::regclass ORDER BY 1"
	local pb=$output
	[[ $(wc -l <<<"$pa") == 5 && $(wc -l <<<"$pb") == 5 ]] || fail "partitions: $pa / $pb"
	[[ -z $(comm -12 <(sort <<<"$pa") <(sort <<<"$pb")) ]] || fail "shared names: $pa / $pb"
	local n
	while read -r n; do
		((${#n} <= 63)) || fail "name too long: $n"
		[[ $n == ppp*_default || $n =~ _p[0-9]{10}$ ]] || fail "name: $n"
	done <<<"$pa"
}

@test "init: --partition-by on an existing unpartitioned outbox converts nothing and says converting is manual" {
	run_mqtx 0 init
	run_mqtx 0 init --partition-by day --print
	[[ $output == *"converting it is manual"* ]] || fail "no note in: $output"
	[[ $output != *"PARTITION BY"* ]] || fail "converts: $output"
	run_mqtx 0 init --partition-by day
	run psql_test "SELECT relkind FROM pg_class WHERE oid = 'mqtx_outbox'::regclass"
	assert_output r
}

@test "init: outbox.partition_by without a created_at column is a configuration error" {
	printf 'outbox:\n  columns:\n    created_at: ""\n' >"$BATS_TEST_TMPDIR/nocreated.yaml"
	run_mqtx 3 --config "$BATS_TEST_TMPDIR/nocreated.yaml" init --partition-by day --print
	stderr_has "outbox.columns.created_at is empty"
}

# ---------------------------------------------------------------- tail mode

# tail_objects TABLE [TXID]: "type default | index | triggers calling the txid function"
tail_objects() {
	local t=$1 x=${2:-txid}
	psql_test "SELECT format_type(a.atttypid, a.atttypmod) || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = '\"$T_SCHEMA\".\"$t\"'::regclass AND a.attname = '$x'" \
		"SELECT pg_get_indexdef('\"$T_SCHEMA\".\"${t}_txid_idx\"'::regclass)" \
		"SELECT count(*) FROM pg_trigger WHERE tgrelid = '\"$T_SCHEMA\".\"$t\"'::regclass AND tgname = '${t}_mqtx_txid'
		AND tgfoid = '\"$T_SCHEMA\".\"${t}_mqtx_txid_fn\"()'::regprocedure AND NOT tgisinternal"
}
# checkpoints TABLE: "rows buckets-min..max prev-nulls" of the outbox TABLE
checkpoints() {
	psql_test "SELECT count(*) || ' ' || min(bucket) || '..' || max(bucket) || ' ' || count(*) FILTER (WHERE prev_snapshot IS NULL)
		FROM mqtx_tail_checkpoints WHERE outbox = '\"$T_SCHEMA\".\"$1\"'"
}

@test "init tail: a new outbox gets the txid column, its index and trigger, the checkpoint and parked tables; a re-run changes nothing" {
	run_mqtx 0 init --mode tail
	stderr_has "outbox $T_SCHEMA.mqtx_outbox is ready"
	run tail_objects mqtx_outbox
	[[ ${lines[0]} == "xid8 pg_current_xact_id()" ]] || fail "column: ${lines[0]}"
	[[ ${lines[1]} == *"USING btree (txid)" ]] || fail "index: ${lines[1]}"
	[[ ${lines[2]} == 1 ]] || fail "trigger: ${lines[2]}"
	[[ $(checkpoints mqtx_outbox) == "16 0..15 16" ]] || fail "checkpoints: $(checkpoints mqtx_outbox)"
	run psql_test "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
		WHERE i.indrelid = '\"$T_SCHEMA\".mqtx_tail_parked'::regclass ORDER BY 1"
	[[ ${lines[*]} == *"(outbox, ordering_key, seq)"*"(outbox, state, next_at)"*"UNIQUE"*"(outbox, id)" ]] ||
		fail "parked indexes: ${lines[*]}"
	# a row gets its writing transaction; becoming eligible by an UPDATE moves it to the updater's
	local x0 x1 x2 x3
	x0=$(psql_test "INSERT INTO mqtx_outbox (destination, payload, available_at) VALUES ('x', 'y', 'infinity') RETURNING txid")
	[[ $x0 =~ ^[0-9]+$ ]] || fail "txid of an insert: $x0"
	x1=$(psql_test "UPDATE mqtx_outbox SET payload = 'z' RETURNING txid")
	[[ $x1 == "$x0" ]] || fail "an UPDATE of the payload moved the row: $x0 -> $x1"
	x2=$(psql_test "UPDATE mqtx_outbox SET available_at = now() RETURNING txid")
	((x2 > x1)) || fail "txpub --commit's UPDATE did not move the row: $x1 -> $x2"
	psql_test "UPDATE mqtx_outbox SET status = 'dead'" >/dev/null
	x3=$(psql_test "UPDATE mqtx_outbox SET status = 'pending' RETURNING txid")
	((x3 > x2)) || fail "a requeue did not move the row: $x2 -> $x3"
	# again, and with another bucket count: nothing changes, and init says so
	run_mqtx 0 init --mode tail
	MQTX_OUTBOX_TAIL_BUCKETS=4 run_mqtx 0 init --mode tail
	stderr_has "has 16 tail checkpoint rows (buckets), not outbox.tail_buckets 4: init leaves them"
	[[ $(checkpoints mqtx_outbox) == "16 0..15 16" ]] || fail "checkpoints: $(checkpoints mqtx_outbox)"
	[[ $(psql_test "SELECT txid FROM mqtx_outbox") == "$x3" ]] || fail "init touched the row"
	MQTX_OUTBOX_TAIL_BUCKETS=4 run_mqtx 0 init --mode tail --print
	assert_output --partial "-- the outbox has 16 checkpoint rows (buckets), not outbox.tail_buckets 4: init leaves them;"
	[[ $output != *"INSERT INTO"* ]] || fail "prints an insert of checkpoint rows: $output"
}

@test "init tail: --print shows every tail object and creates nothing; status mode's --print has none of them" {
	MQTX_OUTBOX_MODE=tail MQTX_OUTBOX_TAIL_BUCKETS=3 run_mqtx 0 init --print
	local s="\"$T_SCHEMA\"" t="\"$T_SCHEMA\".\"mqtx_outbox\""
	assert_output --partial '  "txid" xid8 DEFAULT pg_current_xact_id(),'
	assert_output --partial "CREATE INDEX IF NOT EXISTS \"mqtx_outbox_txid_idx\" ON $t (\"txid\");"
	assert_output --partial "CREATE OR REPLACE FUNCTION $s.\"mqtx_outbox_mqtx_txid_fn\"() RETURNS trigger"
	assert_output --partial "  NEW.\"txid\" := pg_current_xact_id();"
	assert_output --partial "CREATE OR REPLACE TRIGGER \"mqtx_outbox_mqtx_txid\" BEFORE UPDATE ON $t FOR EACH ROW WHEN (NEW.\"status\" = 'pending' AND (OLD.\"status\" IS DISTINCT FROM NEW.\"status\" OR OLD.\"available_at\" IS DISTINCT FROM NEW.\"available_at\")) EXECUTE FUNCTION $s.\"mqtx_outbox_mqtx_txid_fn\"();"
	assert_output --partial "CREATE TABLE IF NOT EXISTS $s.mqtx_tail_checkpoints ("
	assert_output --partial "CREATE TABLE IF NOT EXISTS $s.mqtx_tail_parked ("
	assert_output --partial "INSERT INTO $s.mqtx_tail_checkpoints (outbox, bucket) SELECT '$t', b FROM generate_series(0, 2) b ON CONFLICT DO NOTHING;"
	run psql_test "SELECT count(*) FROM pg_class WHERE relnamespace = '$s'::regnamespace"
	assert_output 0
	run_mqtx 0 init --print
	[[ $output != *txid* && $output != *mqtx_tail* ]] || fail "status mode prints tail objects: $output"
	run_mqtx 2 init --print --mode head
	stderr_has "option --mode: 'head' is not one of status|tail"
}

@test "init tail: an adopted table through outbox.columns: a txid column of its own name, old rows keep NULL, new rows get theirs" {
	psql_test "CREATE TABLE legacy (oid bigserial PRIMARY KEY, k text UNIQUE, dest text NOT NULL, body bytea NOT NULL,
		state text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0, available_at timestamptz NOT NULL DEFAULT now(),
		created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz, last_error text,
		redelivery_count integer NOT NULL DEFAULT 0, redelivered_at timestamptz);
		INSERT INTO legacy (k, dest, body) VALUES ('a', 'd', 'p'); INSERT INTO legacy (k, dest, body, state) VALUES ('b', 'd', 'p', 'sent')"
	cat >"$BATS_TEST_TMPDIR/legacy.yaml" <<-EOF
		outbox:
		  table: legacy
		  mode: tail
		  tail_buckets: 5
		  columns: {id: oid, idempotency_key: k, destination: dest, payload: body, status: state, txid: writer_xid,
		            routing_key: "", ordering_key: "", headers: "", content_type: ""}
	EOF
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/legacy.yaml" init --print
	assert_output --partial "ALTER TABLE \"$T_SCHEMA\".\"legacy\" ADD COLUMN IF NOT EXISTS \"writer_xid\" xid8;"
	assert_output --partial "ALTER TABLE \"$T_SCHEMA\".\"legacy\" ALTER COLUMN \"writer_xid\" SET DEFAULT pg_current_xact_id();"
	assert_output --partial "WHEN (NEW.\"state\" = 'pending' AND (OLD.\"state\" IS DISTINCT FROM NEW.\"state\""
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/legacy.yaml" init
	run tail_objects legacy writer_xid
	[[ ${lines[0]} == "xid8 pg_current_xact_id()" && ${lines[1]} == *"(writer_xid)" && ${lines[2]} == 1 ]] ||
		fail "objects: ${lines[*]}"
	[[ $(checkpoints legacy) == "5 0..4 5" ]] || fail "checkpoints: $(checkpoints legacy)"
	run psql_test "SELECT count(*) FILTER (WHERE writer_xid IS NULL) FROM legacy"
	assert_output 2
	run psql_test "INSERT INTO legacy (k, dest, body) VALUES ('c', 'd', 'p') RETURNING writer_xid IS NOT NULL"
	assert_output t
	# the column is there with its default: a re-run has nothing to add
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/legacy.yaml" init --print
	[[ $output != *"ALTER TABLE"* ]] || fail "alters again: $output"
	run_mqtx 0 --config "$BATS_TEST_TMPDIR/legacy.yaml" init
	# a txid column of another type is the user's to fix
	psql_test "ALTER TABLE legacy ADD COLUMN tx bigint"
	MQTX_OUTBOX_COLUMNS_TXID=tx run_mqtx 3 --config "$BATS_TEST_TMPDIR/legacy.yaml" init
	stderr_has "lacks what the relay needs"
	MQTX_OUTBOX_COLUMNS_TXID=tx run_mqtx 0 --config "$BATS_TEST_TMPDIR/legacy.yaml" init --print
	assert_output --partial "-- column \"tx\" is bigint, but tail mode needs the writing transaction's xid8 there:"
}

@test "init tail: --grant gives the role the checkpoint and parked tables" {
	local role="r_${T_SCHEMA}"
	psql_test "CREATE ROLE \"$role\""
	run_mqtx 0 init --mode tail --grant "$role"
	run psql_test "SELECT has_table_privilege('$role', '\"$T_SCHEMA\".mqtx_tail_checkpoints', 'SELECT, INSERT, UPDATE, DELETE')
		AND has_table_privilege('$role', '\"$T_SCHEMA\".mqtx_tail_parked', 'SELECT') AND has_table_privilege('$role', '\"$T_SCHEMA\".mqtx_tail_parked', 'INSERT')
		AND has_table_privilege('$role', '\"$T_SCHEMA\".mqtx_tail_parked', 'UPDATE') AND has_table_privilege('$role', '\"$T_SCHEMA\".mqtx_tail_parked', 'DELETE')
		AND NOT has_table_privilege('$role', '\"$T_SCHEMA\".mqtx_tail_parked', 'TRUNCATE')"
	local granted=$output
	run_mqtx 0 init --grant "$role" --print
	[[ $output != *mqtx_tail* ]] || fail "status mode grants on tail tables: $output"
	psql_test "DROP OWNED BY \"$role\"; DROP ROLE \"$role\""
	[[ $granted == t ]] || fail "privileges: $granted"
}

@test "init tail: a partitioned outbox has the column, index and trigger on the parent, its partitions too" {
	run_mqtx 0 init --mode tail --partition-by day
	run_mqtx 0 init --mode tail --partition-by day
	run tail_objects mqtx_outbox
	[[ ${lines[0]} == "xid8 pg_current_xact_id()" && ${lines[1]} == *"USING btree (txid)" && ${lines[2]} == 1 ]] ||
		fail "objects: ${lines[*]}"
	run psql_test "SELECT relkind FROM pg_class WHERE oid = 'mqtx_outbox'::regclass"
	assert_output p
	local x0 x1
	x0=$(psql_test "INSERT INTO mqtx_outbox (destination, payload, status) VALUES ('x', 'y', 'dead') RETURNING txid")
	x1=$(psql_test "UPDATE mqtx_outbox SET status = 'pending' RETURNING txid")
	[[ $x0 =~ ^[0-9]+$ ]] && ((x1 > x0)) || fail "txid: $x0 -> $x1"
	[[ $(checkpoints mqtx_outbox) == "16 0..15 16" ]] || fail "checkpoints: $(checkpoints mqtx_outbox)"
}

# a tail-mode outbox with rows 1..6 and 8 (4 with an ordering key): 1, 2 and 4 relayed, 3 parked dead, 5 parked
# for a retry in an hour, 6 parked blocked behind it, 8 a half message parked until its --commit (infinity),
# committed since; then 7 inserted after the relaying (not relayed)
tail_outbox_relayed() {
	run_mqtx 0 init --mode tail
	local ob="'\"$T_SCHEMA\".\"mqtx_outbox\"'"
	psql_test "INSERT INTO mqtx_outbox (id, destination, payload, ordering_key)
		SELECT g, 'x', 'y'::bytea, CASE WHEN g = 4 THEN 'k' END FROM generate_series(1, 6) g UNION ALL SELECT 8, 'x', 'y', NULL" \
		"INSERT INTO mqtx_tail_parked (outbox, id, bucket, state, attempts, next_at, last_error) VALUES
		($ob, 3, 3, 'dead', 5, NULL, 'boom'), ($ob, 5, 5, 'retry', 2, now() + interval '1 hour', 'nack'),
		($ob, 6, 6, 'blocked', 0, NULL, NULL), ($ob, 8, 8, 'retry', 0, 'infinity', NULL)" \
		"UPDATE mqtx_tail_checkpoints SET prev_snapshot = pg_current_snapshot() WHERE outbox = $ob" \
		"INSERT INTO mqtx_outbox (id, destination, payload) VALUES (7, 'x', 'y')" >/dev/null
}
rows_state() {
	psql_test "SELECT string_agg(id || ':' || status || ':' || attempts || ':' || coalesce(last_error, '-') || ':'
		|| (available_at > now() + interval '50 minutes') || ':' || (sent_at IS NOT NULL), ' ' ORDER BY id) FROM mqtx_outbox"
}

@test "init handback: status mode on a tail-mode outbox marks relayed rows sent, parked dead ones dead, keeps the rest pending" {
	tail_outbox_relayed
	local before
	before=$(rows_state)
	run_mqtx 0 init --print
	assert_output --partial "-- $T_SCHEMA.mqtx_outbox was relayed in tail mode: 'mqtx init' (without --print) hands it back to status mode:"
	assert_output --partial "-- 3 relayed row(s) become 'sent', 1 parked dead row(s) 'dead', 2 waiting for a retry keep"
	assert_output --partial "-- their attempts and retry time, 1 blocked stay 'pending'; then the tail checkpoints go"
	[[ $(rows_state) == "$before" ]] || fail "--print changed rows: $(rows_state)"
	MQTX_OUTBOX_MODE=tail run_mqtx 0 init --print
	[[ $output != *"hands it back"* ]] || fail "tail mode prints the hand-back: $output"
	run_mqtx 0 init
	stderr_has "outbox $T_SCHEMA.mqtx_outbox handed back from tail mode: 3 row(s) marked sent, 1 dead, 2 to retry, 1 pending behind them; tail checkpoints removed"
	run rows_state
	assert_output "1:sent:0:-:false:true 2:sent:0:-:false:true 3:dead:5:boom:false:false 4:sent:0:-:false:true 5:pending:2:nack:true:false 6:pending:0:-:false:false 7:pending:0:-:false:false 8:pending:0:-:false:false"
	run psql_test "SELECT (SELECT count(*) FROM mqtx_tail_checkpoints) + (SELECT count(*) FROM mqtx_tail_parked)"
	assert_output 0
	# done: again is init as usual, and a status relay may run
	run_mqtx 0 init
	stderr_lacks "handed back"
	run_mqtx 0 init --print
	[[ $output != *"hands it back"* ]] || fail "prints the handback again: $output"
}

@test "init handback: refused while a tail relay runs, nothing changed; a run again after a crash mid-way finishes it" {
	tail_outbox_relayed
	local before cls
	before=$(rows_state)
	cls=$(psql_test "SELECT 'mqtx_outbox'::regclass::oid::int8::bit(32)::int4")
	start_locker "SELECT pg_advisory_lock_shared($cls, -3000002)"
	run_mqtx 3 init
	stderr_has "tail relays of \"$T_SCHEMA\".\"mqtx_outbox\" are running: stop them before handing the outbox back to status mode"
	[[ $(grep -c 'error' <<<"$stderr") == 1 ]] || fail "not one error line: $stderr"
	[[ $(rows_state) == "$before" ]] || fail "rows changed: $(rows_state)"
	[[ $(psql_test "SELECT count(*) FROM mqtx_tail_checkpoints") == 16 ]] || fail "checkpoints changed"
	stop_locker
	# as after a crash between the batches and the end: some rows already sent, the checkpoints still there
	psql_test "UPDATE mqtx_outbox SET status = 'sent', sent_at = now() WHERE id = 1" >/dev/null
	run_mqtx 0 init
	stderr_has "handed back from tail mode: 2 row(s) marked sent, 1 dead"
	run rows_state
	assert_output "1:sent:0:-:false:true 2:sent:0:-:false:true 3:dead:5:boom:false:false 4:sent:0:-:false:true 5:pending:2:nack:true:false 6:pending:0:-:false:false 7:pending:0:-:false:false 8:pending:0:-:false:false"
}

@test "init: status -> tail -> status on an outbox in use: every row sent once, none lost at either switch" {
	run_mqtx 0 init
	insert_rows 3
	run_mqtx 0 relay
	insert_rows 2 # pending at the switch: the tail relay's first interval
	run_mqtx 0 init --mode tail
	MQTX_OUTBOX_MODE=tail run_mqtx 0 relay
	[[ $(queue_count) == 5 ]] || fail "queue after the tail relay: $(queue_count)"
	run psql_test "SELECT string_agg(status, ' ' ORDER BY id) FROM mqtx_outbox"
	assert_output "sent sent sent pending pending" # tail relays write no rows
	insert_rows 1 # not relayed by the tail relay
	run_mqtx 3 relay
	stderr_has "was relayed in tail mode"
	run_mqtx 0 init
	stderr_has "handed back from tail mode: 2 row(s) marked sent, 0 dead, 0 to retry, 0 pending behind them"
	run_mqtx 0 relay
	[[ $(queue_count) == 6 ]] || fail "queue after the status relay: $(queue_count)"
	run psql_test "SELECT string_agg(status, ' ' ORDER BY id) FROM mqtx_outbox"
	assert_output "sent sent sent sent sent sent"
}
