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
