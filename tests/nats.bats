#!/usr/bin/env bats
# NATS JetStream specifics, against the nats-server that tests/run.sh starts
# (tests/helpers/nats.sh) or MQTX_TEST_NATS_URL. The relay suites shared
# by every broker run on NATS in their own pass (MQTX_TEST_BACKEND=nats);
# this file covers what only NATS has: publish acks that report a
# duplicate, subjects from destination + routing key, streams.

load test_helper

NATS_TOOL=${NATS_TOOL:-$BATS_TEST_DIRNAME/helpers/nats_tool}

setup() {
	[[ -n ${MQTX_TEST_NATS_URL:-} ]] || skip "no NATS server (MQTX_TEST_NATS_URL unset)"
	mqtx_test_setup
	T_DEST="mqtx.test.${T_SCHEMA}"
	T_STREAM="mqtx_test_${T_SCHEMA}"
	"$NATS_TOOL" create-stream "$MQTX_TEST_NATS_URL" "$T_STREAM" "$T_DEST" "$T_DEST.>" >/dev/null ||
		fail "cannot create stream $T_STREAM"
	export MQTX_BROKER_URL=$MQTX_TEST_NATS_URL
	run_mqtx 0 init
}

teardown() {
	[[ -z ${T_STREAM:-} ]] || "$NATS_TOOL" delete-stream "$MQTX_TEST_NATS_URL" "$T_STREAM" >/dev/null 2>&1 || true
	stop_auth_server
	mqtx_test_teardown
}

# start_auth_server ARGS...: a second nats-server (loopback, JetStream, its
# own store) that wants the credentials in ARGS; AUTH_PORT is its port.
start_auth_server() {
	command -v nats-server >/dev/null || skip "nats-server not installed"
	AUTH_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
	# emptied here, not by the background job's redirection: a restart must
	# not find the earlier server's "Server is ready" before the job runs
	: >"$BATS_TEST_TMPDIR/auth.log"
	nats-server -js -a 127.0.0.1 -p "$AUTH_PORT" -sd "$BATS_TEST_TMPDIR/auth-store" "$@" \
		>>"$BATS_TEST_TMPDIR/auth.log" 2>&1 3>&- &
	AUTH_PID=$!
	wait_until 10 grep -q 'Server is ready' "$BATS_TEST_TMPDIR/auth.log"
}

stop_auth_server() {
	[[ -n ${AUTH_PID:-} ]] || return 0
	kill -TERM "$AUTH_PID" 2>/dev/null || true
	wait "$AUTH_PID" 2>/dev/null || true
	AUTH_PID=
}

consume() {
	"$NATS_TOOL" consume "$MQTX_TEST_NATS_URL" "$T_STREAM" "$@"
}

stream_messages() {
	"$NATS_TOOL" info "$MQTX_TEST_NATS_URL" "$T_STREAM" | jq .messages
}

@test "nats: a row sent again within the duplicate window is acknowledged as a duplicate: marked sent, exit 0, stored once" {
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, payload) VALUES ('dup-1', '$T_DEST', '\\x41'::bytea)"
	run_mqtx 0 relay
	stderr_has "relayed 1, failed 0, dead 0"
	# as if the first run had died before it could mark the row sent
	psql_test "UPDATE mqtx_outbox SET status = 'pending', sent_at = NULL"
	run_mqtx 0 relay -v
	stderr_has "relayed 1, failed 0, dead 0"
	stderr_has "duplicate"
	[[ $(sent_count) == 1 ]]
	[[ $(stream_messages) == 1 ]]
	run consume --expect 1
	[[ $(jq -r '.headers["Nats-Msg-Id"]' <<<"$output") == dup-1 ]]
}

@test "nats: the subject is the destination, plus '.' and the routing key when there is one" {
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload) VALUES
		('$T_DEST', NULL, '\\x31'::bytea), ('$T_DEST', '', '\\x32'::bytea), ('$T_DEST', 'eu.created', '\\x33'::bytea)"
	run_mqtx 0 relay
	run consume --expect 3
	[[ $(jq -r '.body + " " + .subject' <<<"$output" | tr '\n' ,) == "1 $T_DEST,2 $T_DEST,3 $T_DEST.eu.created," ]]
	# mqtx's headers as NATS headers
	[[ $(jq -r '.headers | has("x-mqtx-outbox-id") and has("x-mqtx-idempotency-key") and has("Nats-Msg-Id")' <<<"$output" | sort -u) == true ]]
}

@test "nats: a routing key that is not subject tokens is refused: the row is dead at once naming the field, the others go" {
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload) VALUES
		('$T_DEST', 'ok', '\\x31'::bytea), ('$T_DEST', 'a.*', '\\x32'::bytea), ('$T_DEST', 'two words', '\\x33'::bytea),
		('$T_DEST', 'ok', '\\x34'::bytea)"
	run_mqtx 1 relay
	run psql_test "SELECT status, last_error FROM mqtx_outbox ORDER BY id"
	assert_line --index 0 "sent|"
	assert_line --index 1 --partial "dead|routing_key (appended to the subject) 'a.*' has the wildcard token '*'"
	assert_line --index 2 --partial "dead|routing_key (appended to the subject) 'two words' has byte 0x20 at 3"
	assert_line --index 3 "sent|"
	[[ $(stream_messages) == 2 ]]
}

@test "nats: a subject no stream captures fails its rows only; they are retried and go once a stream exists" {
	local other="mqtx.other.${T_SCHEMA}"
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload) VALUES
		('$T_DEST', 'a', '\\x31'::bytea), ('$other', 'x', '\\x32'::bytea), ('$T_DEST', 'b', '\\x33'::bytea)"
	run_mqtx 1 relay
	run psql_test "SELECT status, last_error FROM mqtx_outbox WHERE destination = '$other'"
	assert_output "pending|no JetStream stream captures subject '$other.x' (checked before publishing)"
	[[ $(sent_count) == 2 ]]
	"$NATS_TOOL" create-stream "$MQTX_TEST_NATS_URL" "${T_STREAM}_other" "$other.>" >/dev/null
	psql_test "UPDATE mqtx_outbox SET available_at = now() WHERE status = 'pending'"
	run_mqtx 0 relay
	[[ $(sent_count) == 3 ]]
	"$NATS_TOOL" delete-stream "$MQTX_TEST_NATS_URL" "${T_STREAM}_other" >/dev/null
}

@test "nats: bad nats:// and tls:// URLs are configuration errors (exit 3) that never show the password" {
	local u
	for u in "tls://" "tls://127.0.0.1:0" "tls://127.0.0.1:99999" "nats://127.0.0.1:4222/STREAM" "nats://a:1,b:2" \
		"tls://user:s3cret@127.0.0.1:x"; do
		MQTX_BROKER_URL=$u run_mqtx 3 relay
		stderr_has "broker URL"
		[[ $stderr != *s3cret* ]] || fail "password shown: $stderr"
	done
	MQTX_BROKER_URL="tls://user:s3cret@127.0.0.1:x" run_mqtx 3 relay
	stderr_has "bad host or port"
	# unreachable: a broker error (exit 5), still redacted
	MQTX_BROKER_URL="nats://user:s3cret@127.0.0.1:1" run_mqtx 5 relay
	stderr_has "cannot connect to"
	[[ $stderr != *s3cret* ]] || fail "password shown: $stderr"
}

@test "nats: the password from broker.password_file is used and never shown" {
	printf 's3cret\n' >"$BATS_TEST_TMPDIR/pw"
	chmod 600 "$BATS_TEST_TMPDIR/pw"
	insert_one() { psql_test "INSERT INTO mqtx_outbox(destination, payload) VALUES ('$T_DEST', '\\x31'::bytea)"; }
	insert_one
	# the test server has no users: a password is accepted and ignored
	MQTX_BROKER_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw MQTX_BROKER_URL="nats://mqtx@${MQTX_TEST_NATS_URL#nats://}" run_mqtx 0 relay -v
	[[ $stderr != *s3cret* ]] || fail "password shown: $stderr"
	[[ $(sent_count) == 1 ]]
}

@test "nats: user and password (URL or broker.password_file) and a token (password file without a user) authenticate; a wrong one is exit 5, never shown" {
	start_auth_server --user mqtx --pass 's3cr3t'
	"$NATS_TOOL" create-stream "nats://mqtx:s3cr3t@127.0.0.1:$AUTH_PORT" "$T_STREAM" "$T_DEST" "$T_DEST.>" >/dev/null
	psql_test "INSERT INTO mqtx_outbox(destination, payload) VALUES ('$T_DEST', '\\x31'::bytea)"
	MQTX_BROKER_URL="nats://mqtx:wr0ng@127.0.0.1:$AUTH_PORT" run_mqtx 5 relay
	stderr_has "cannot connect to 'nats://mqtx:"
	[[ $stderr != *wr0ng* ]] || fail "password shown: $stderr"
	# percent-decoded: %33 is 3
	MQTX_BROKER_URL="nats://mqtx:s3cr%33t@127.0.0.1:$AUTH_PORT" run_mqtx 0 relay
	[[ $(sent_count) == 1 ]]
	printf 's3cr3t\n' >"$BATS_TEST_TMPDIR/pw"
	chmod 600 "$BATS_TEST_TMPDIR/pw"
	psql_test "INSERT INTO mqtx_outbox(destination, payload) VALUES ('$T_DEST', '\\x32'::bytea)"
	MQTX_BROKER_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw MQTX_BROKER_URL="nats://mqtx@127.0.0.1:$AUTH_PORT" run_mqtx 0 relay
	[[ $(sent_count) == 2 ]]
	stop_auth_server
	start_auth_server --auth 't0ken'
	"$NATS_TOOL" create-stream "nats://t0ken@127.0.0.1:$AUTH_PORT" "$T_STREAM" "$T_DEST" "$T_DEST.>" >/dev/null
	printf 't0ken\n' >"$BATS_TEST_TMPDIR/pw"
	psql_test "INSERT INTO mqtx_outbox(destination, payload) VALUES ('$T_DEST', '\\x33'::bytea)"
	MQTX_BROKER_PASSWORD_FILE=$BATS_TEST_TMPDIR/pw MQTX_BROKER_URL="nats://127.0.0.1:$AUTH_PORT" run_mqtx 0 relay -v
	[[ $stderr != *t0ken* ]] || fail "token shown: $stderr"
	[[ $(sent_count) == 3 ]]
}

@test "nats: tls:// verifies the server against broker.tls.ca_file; an untrusted CA is exit 5; verify false warns; a missing CA file is exit 3" {
	local tls=${MQTX_TEST_STATEDIR:-}/tls
	[[ -n ${MQTX_TEST_TLS_CA:-} && -s $tls/server.pem && -s $tls/server.key ]] || skip "no test CA (tests/helpers/servers.sh)"
	start_auth_server --tls --tlscert "$tls/server.pem" --tlskey "$tls/server.key"
	# connected once the rows reach the stream lookup: no stream captures this subject here
	psql_test "INSERT INTO mqtx_outbox(destination, payload) VALUES ('$T_DEST', '\\x31'::bytea)"
	MQTX_RELAY_BACKOFF_INITIAL=5m MQTX_BROKER_URL="tls://localhost:$AUTH_PORT" MQTX_BROKER_TLS_CA_FILE=$MQTX_TEST_TLS_CA run_mqtx 1 relay
	run psql_test "SELECT last_error FROM mqtx_outbox"
	assert_output --partial "no JetStream stream captures subject '$T_DEST'"
	MQTX_BROKER_URL="tls://localhost:$AUTH_PORT" MQTX_BROKER_TLS_CA_FILE=$MQTX_TEST_TLS_OTHER_CA run_mqtx 5 relay
	stderr_has "cannot connect to 'tls://localhost:$AUTH_PORT'"
	MQTX_BROKER_URL="tls://localhost:$AUTH_PORT" MQTX_BROKER_TLS_VERIFY=false run_mqtx 0 relay
	stderr_has "TLS certificate verification is OFF"
	MQTX_BROKER_URL="tls://localhost:$AUTH_PORT" MQTX_BROKER_TLS_CA_FILE=/nonexistent/ca.pem run_mqtx 3 relay
	stderr_has "cannot load CA file '/nonexistent/ca.pem'"
	# a plain nats:// client is refused by a TLS-only server
	MQTX_BROKER_URL="nats://localhost:$AUTH_PORT" run_mqtx 5 relay
}

@test "nats: check --broker names the stream that captures each destination and its message count" {
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload) SELECT '$T_DEST', 'rk', '\\x31'::bytea FROM generate_series(1, 3)"
	run_mqtx 0 relay
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload) VALUES ('$T_DEST', 'rk', '\\x31'::bytea),
		('mqtx.none.$T_SCHEMA', 'rk', '\\x31'::bytea)"
	run_mqtx 2 check --broker --format json
	[[ $(jq -r --arg d "$T_DEST" '.destinations[] | select(.destination == $d) | .broker_detail' <<<"$output") == \
		"stream '$T_STREAM': 3 messages" ]] || fail "$output"
	[[ $(jq -r --arg d "mqtx.none.$T_SCHEMA" '.destinations[] | select(.destination == $d) | .exists' <<<"$output") == false ]] ||
		fail "$output"
	# a stream capturing only the subjects below the destination (rows with a routing key)
	"$NATS_TOOL" create-stream "$MQTX_TEST_NATS_URL" "${T_STREAM}_below" "mqtx.below.$T_SCHEMA.>" >/dev/null
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, payload) VALUES ('mqtx.below.$T_SCHEMA', 'rk', '\\x31'::bytea)"
	run_mqtx 2 check --broker --format json
	[[ $(jq -r --arg d "mqtx.below.$T_SCHEMA" '.destinations[] | select(.destination == $d) | .broker_detail' <<<"$output") == \
		"stream '${T_STREAM}_below' (subjects below it: rows with a routing key): 0 messages" ]] || fail "$output"
	"$NATS_TOOL" delete-stream "$MQTX_TEST_NATS_URL" "${T_STREAM}_below" >/dev/null
}

@test "nats: --mode tx (broker transactions) is refused: NATS JetStream has none (a usage error, exit 2)" {
	run_mqtx 2 txpub --mode tx -d "$T_DEST" --payload a
	stderr_has "transactions"
	[[ $(stream_messages) == 0 ]]
}

@test "nats: txpub publishes with publish acks, and half messages go through the outbox" {
	printf 'one\ntwo\n' >"$BATS_TEST_TMPDIR/in"
	run_mqtx 0 txpub -d "$T_DEST" -r rk <"$BATS_TEST_TMPDIR/in"
	[[ $(stream_messages) == 2 ]]
	run_mqtx 0 txpub --prepare -d "$T_DEST" -r half -k half-1 --payload h
	[[ $(stream_messages) == 2 ]]
	run_mqtx 0 txpub --commit half-1
	run_mqtx 0 relay
	run consume --expect 3
	[[ $(jq -r 'select(.subject | endswith(".half")) | .headers["Nats-Msg-Id"]' <<<"$output") == half-1 ]]
}

@test "nats: dedupe-audit reads a stream from a sequence or a time, without changing it" {
	psql_test "INSERT INTO mqtx_outbox(idempotency_key, destination, routing_key, payload)
		SELECT 'p-' || g, '$T_DEST', 'rk', '\\x00'::bytea FROM generate_series(1, 10) g"
	run_mqtx 0 relay
	local src="$MQTX_TEST_NATS_URL/$T_STREAM"
	run_mqtx 0 dedupe-audit --source "$src" --format json
	[[ $(jq -c '[.kind, .deliveries, .missing.count]' <<<"$output") == '["jetstream",10,0]' ]] || fail "$output"
	# --from N is a stream sequence (inclusive), --to N stops before it
	run_mqtx 8 dedupe-audit --source "$src" --from 3 --to 7 --format json
	[[ $(jq -c '[.deliveries, .missing.count, ([.missing.details[].key] | join(","))]' <<<"$output") == '[4,6,"p-1,p-2,p-7,p-8,p-9,p-10"]' ]] ||
		fail "$output"
	run_mqtx 0 dedupe-audit --source "$src" --from 2h --format json
	[[ $(jq .deliveries <<<"$output") == 10 ]]
	run_mqtx 0 dedupe-audit --source "$src" --to 2h --format json
	[[ $(jq .deliveries <<<"$output") == 0 ]] || [[ $(jq .deliveries <<<"$output") == null ]]
	[[ $(stream_messages) == 10 ]]
	run_mqtx 5 dedupe-audit --source "$MQTX_TEST_NATS_URL/nosuch_$T_SCHEMA"
	stderr_has "stream 'nosuch_$T_SCHEMA' does not exist"
	run_mqtx 2 dedupe-audit --source "$src" --destructive
	stderr_has "never changes it"
	# a malformed source is a usage error before the database or the server is asked
	MQTX_DATABASE_URL=postgresql://127.0.0.1:1/nothing run_mqtx 2 dedupe-audit --source "$MQTX_TEST_NATS_URL/a.b"
	stderr_has "names no valid stream"
	MQTX_DATABASE_URL=postgresql://127.0.0.1:1/nothing run_mqtx 2 dedupe-audit --source "$MQTX_TEST_NATS_URL/S" --from 0
	stderr_has "stream sequences start at 1"
}
