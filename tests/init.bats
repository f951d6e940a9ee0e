#!/usr/bin/env bats
# mqtx init: object names per table, checks of adopted tables, and names
# that are not valid text.

load test_helper

setup() {
	mqtx_test_setup
}

teardown() {
	mqtx_test_teardown
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
