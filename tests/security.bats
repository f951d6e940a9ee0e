#!/usr/bin/env bats
# Secrets and access: TLS to RabbitMQ with verification, least-privilege
# PostgreSQL grants and RabbitMQ permissions, passwords kept out of sight.

load test_helper
load backend

setup() {
	backend_test_setup
}

teardown() {
	[[ -n ${T_ROLE:-} ]] && _mqtx_psql_quiet "DROP OWNED BY \"$T_ROLE\"; DROP ROLE IF EXISTS \"$T_ROLE\""
	[[ -n ${T_RUSER:-} && -n ${MQTX_TEST_RABBITMQCTL:-} ]] && "$MQTX_TEST_RABBITMQCTL" -q delete_user "$T_RUSER" >/dev/null 2>&1
	mqtx_test_teardown
}

skip_unless_tls() {
	[[ $(backend_name) == amqp ]] || skip "TLS tests run against RabbitMQ"
	[[ -n ${MQTX_TEST_AMQPS_URL:-} && -n ${MQTX_TEST_TLS_CA:-} ]] || skip "no amqps:// test listener (MQTX_TEST_AMQPS_URL)"
}

@test "security: amqps:// verifies the broker certificate against broker.tls.ca_file and relays" {
	skip_unless_tls
	insert_rows 3
	MQTX_BROKER_URL=$MQTX_TEST_AMQPS_URL MQTX_BROKER_TLS_CA_FILE=$MQTX_TEST_TLS_CA run_mqtx 0 relay
	[[ $(count_status sent) == 3 ]]
	[[ $(backend_consume 3 | wc -l) == 3 ]]
}

@test "security: amqps:// refuses a certificate from an untrusted CA: exit 5, rows untouched" {
	skip_unless_tls
	insert_rows 3
	MQTX_BROKER_URL=$MQTX_TEST_AMQPS_URL MQTX_BROKER_TLS_CA_FILE=$MQTX_TEST_TLS_OTHER_CA run_mqtx 5 relay
	stderr_has "cannot connect to 'amqps://guest:***@localhost:"
	[[ $(count_status pending) == 3 ]]
	MQTX_BROKER_URL=$MQTX_TEST_AMQPS_URL run_mqtx 5 relay
	[[ $(count_status pending) == 3 ]]
}

@test "security: broker.tls.verify false works only with a loud warning" {
	skip_unless_tls
	insert_rows 2
	MQTX_BROKER_URL=$MQTX_TEST_AMQPS_URL MQTX_BROKER_TLS_VERIFY=false run_mqtx 0 relay
	stderr_has "TLS certificate verification is OFF"
	[[ $(count_status sent) == 2 ]]
}

@test "security: a missing CA file is a configuration error naming the file" {
	skip_unless_tls
	MQTX_BROKER_URL=$MQTX_TEST_AMQPS_URL MQTX_BROKER_TLS_CA_FILE=/nonexistent/ca.pem run_mqtx 3 relay
	stderr_has "cannot load CA file '/nonexistent/ca.pem'"
}

@test "security: init --grant gives a role exactly what relay needs; without it the relay is refused" {
	skip_unless_local_pg
	T_ROLE="r_${T_SCHEMA}"
	psql_test "CREATE ROLE \"$T_ROLE\" LOGIN PASSWORD 'relaypw'"
	insert_rows 3
	local url="postgresql://$T_ROLE@127.0.0.1:${MQTX_TEST_DATABASE_URL##*127.0.0.1:}"
	printf 'relaypw\n' >"$BATS_TEST_TMPDIR/pw"
	MQTX_DATABASE_URL=$url MQTX_DATABASE_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw run_mqtx 4 relay
	stderr_has "permission denied"
	stderr_lacks relaypw
	[[ $(count_status pending) == 3 ]]
	run_mqtx 0 init --print --grant "$T_ROLE"
	assert_output --partial "GRANT SELECT, INSERT, UPDATE, DELETE ON \"$T_SCHEMA\".\"mqtx_outbox\" TO \"$T_ROLE\""
	run_mqtx 0 init --grant "$T_ROLE"
	MQTX_DATABASE_URL=$url MQTX_DATABASE_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw run_mqtx 0 relay
	[[ $(count_status sent) == 3 ]]
	# the relay role cannot do more than it needs
	run psql "postgresql://$T_ROLE:relaypw@127.0.0.1:${MQTX_TEST_DATABASE_URL##*127.0.0.1:}" -qAtX -c "DROP TABLE \"$T_SCHEMA\".mqtx_outbox"
	assert_failure
}

@test "security: a RabbitMQ user with write permission on the exchange only can relay" {
	[[ $(backend_name) == amqp ]] || skip "RabbitMQ permissions"
	skip_unless_local_amqp
	T_RUSER="u_${T_SCHEMA}"
	"$MQTX_TEST_RABBITMQCTL" -q add_user "$T_RUSER" "s3cret-pw" >/dev/null
	"$MQTX_TEST_RABBITMQCTL" -q set_permissions -p / "$T_RUSER" '^$' "^${T_EXCHANGE//./\\.}\$" '^$' >/dev/null
	insert_rows 4
	local port=${MQTX_TEST_AMQP_URL##*:}
	printf 's3cret-pw\n' >"$BATS_TEST_TMPDIR/bpw"
	MQTX_BROKER_URL="amqp://$T_RUSER@127.0.0.1:$port" MQTX_BROKER_PASSWORD_FILE=$BATS_TEST_TMPDIR/bpw run_mqtx 0 relay -v
	[[ $(count_status sent) == 4 ]]
	stderr_lacks s3cret-pw
	# an exchange the user may not write to: that row fails alone, with the reason
	"$AMQP_TOOL" declare-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.other" --type topic
	insert_rows 1 "$T_EXCHANGE.other"
	insert_rows 1
	MQTX_BROKER_URL="amqp://$T_RUSER@127.0.0.1:$port" MQTX_BROKER_PASSWORD_FILE=$BATS_TEST_TMPDIR/bpw run_mqtx 1 relay
	run psql_test "SELECT status, last_error LIKE '%ACCESS_REFUSED%' FROM mqtx_outbox WHERE destination = '$T_EXCHANGE.other'"
	assert_output "pending|t"
	[[ $(count_status sent) == 5 ]]
	"$AMQP_TOOL" delete-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.other"
}

@test "security: debug logs and config output never contain a password" {
	insert_rows 1
	printf 'pg-secret-1\n' >"$BATS_TEST_TMPDIR/pw"
	MQTX_DATABASE_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw run_mqtx 0 relay -v
	stderr_lacks pg-secret-1
	stderr_lacks "guest:guest"
	run_mqtx 0 config
	refute_output --partial "guest:guest"
}
