#!/usr/bin/env bats
# Retention: mqtx relay deletes what is no longer needed (mqtx.yaml(5),
# "Retention"). The database side only: runs on the default backend.

load test_helper
load backend

setup() {
	backend_test_setup
}

teardown() {
	mqtx_test_teardown
}

@test "retention: relayed rows older than outbox.retention are gone after a one-shot run; fresh ones stay" {
	insert_rows 5
	run_mqtx 0 relay
	psql_test "UPDATE mqtx_outbox SET sent_at = now() - interval '2 hours' WHERE id IN (SELECT id FROM mqtx_outbox ORDER BY id LIMIT 3)"
	MQTX_OUTBOX_RETENTION=1h run_mqtx 0 relay
	stderr_has "retention: deleted 3 outbox row(s) (3 sent"
	run psql_test "SELECT count(*) FROM mqtx_outbox"
	assert_output 2
}
