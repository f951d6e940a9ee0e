#!/usr/bin/env bats
# mqtx txpub, end to end against real servers: direct publishing in every
# mode, half messages with check-back, PREPARE TRANSACTION as a
# last-resource commit, and crashes (failpoints) at every step, after which
# `mqtx check --resolve` and the relay leave database and broker agreeing.
# The same file runs once per backend: MQTX_TEST_BACKEND=amqp (default), nats or
# kafka (see backend.bash).

load test_helper
load backend

setup() {
	backend_test_setup
	psql_test "CREATE TABLE orders (id int PRIMARY KEY, msg_key text)"
	# short waits: tests stop brokers on purpose
	export MQTX_BROKER_CONFIRM_TIMEOUT=5s
}

teardown() {
	# a prepared transaction left by a failed test holds locks on the schema
	local gid
	for gid in $(psql_test "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'mqtx:$T_SCHEMA%'" 2>/dev/null); do
		psql_test "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1 || true
	done
	mqtx_test_teardown
}

# derived_key DEST RK PAYLOAD [N]: the key txpub derives (see mqtx-keys(7)).
derived_key() {
	local h
	h=$(printf '%s\0%s\0%s' "$1" "$2" "$3" | sha256sum | cut -d' ' -f1)
	printf 'txpub:%s%s\n' "$h" "${4:+:$4}"
}

# Keys of everything delivered so far, sorted, one per line.
delivered_keys() {
	backend_consume "$@" | jq -r .key | sort
}

# The keys the database says were committed (orders written by the scripts).
committed_keys() {
	psql_test "SELECT msg_key FROM orders ORDER BY msg_key"
}

report() {
	jq -c "$1" "$BATS_TEST_TMPDIR/report.json"
}

# Notes a check the Kafka mock cannot make (visible in the TAP output).
note() {
	echo "# note: $*" >&3
}

# The librdkafka mock cluster shows messages of aborted (or never
# committed) transactions to read_committed consumers; a real broker does
# not. Absence after an abort is checked everywhere but on the mock.
mock_shows_aborted() {
	[[ $(backend_name) == kafka ]] && kafka_on_mock
}

# ------------------------------------------------------------ direct publishing

@test "txpub: lines from stdin are published with derived keys; exit 0 and the report says confirmed" {
	printf 'alpha\nbeta\ngamma\n' >"$BATS_TEST_TMPDIR/in"
	run_mqtx 0 txpub -d "$T_DEST" -r order.created --header tenant=acme --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/in"
	backend_consume 3 >"$BATS_TEST_TMPDIR/got"
	run jq -r '[.key, .rk, .body, .headers.tenant, .headers["x-mqtx-idempotency-key"] == .key] | join("|")' "$BATS_TEST_TMPDIR/got"
	assert_output "$(derived_key "$T_DEST" order.created alpha)|order.created|alpha|acme|true
$(derived_key "$T_DEST" order.created beta)|order.created|beta|acme|true
$(derived_key "$T_DEST" order.created gamma)|order.created|gamma|acme|true"
	run report '[.operation, .outcome, .exit_code, .confirmed, .not_published, .in_doubt, (.messages | map(.state) | unique)]'
	assert_output '["publish","published",0,3,0,0,["confirmed"]]'
	run report '[.messages[] | .input]'
	assert_output '["stdin line 1","stdin line 2","stdin line 3"]'
	# nothing was written to the outbox by direct publishing
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
}

@test "txpub: binary, empty and multi-megabyte payloads round-trip exactly" {
	head -c 3000000 /dev/urandom >"$BATS_TEST_TMPDIR/big"
	printf 'a\0b\377\n\r' >"$BATS_TEST_TMPDIR/bin"
	local cfg=$BATS_TEST_TMPDIR/mqtx.yaml
	# Kafka's producer limit is 1MB by default
	printf 'broker:\n  kafka:\n    message.max.bytes: "10000000"\n' >"$cfg"
	run_mqtx 0 txpub --config "$cfg" -d "$T_DEST" -r bin --payload-file "$BATS_TEST_TMPDIR/big" \
		--payload-file "$BATS_TEST_TMPDIR/bin" --payload ""
	# NUL-separated records and raw stdin
	printf 'x\0\0y\ny\0' >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 0 txpub --config "$cfg" -d "$T_DEST" -r nul -0 <"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 0 txpub --config "$cfg" -d "$T_DEST" -r raw --format raw <"$BATS_TEST_TMPDIR/bin"
	backend_consume 7 >"$BATS_TEST_TMPDIR/got"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/got") == 7 ]]
	run jq -r 'select(.rk == "bin") | .b64' "$BATS_TEST_TMPDIR/got"
	assert_line --index 0 "$(base64 -w0 <"$BATS_TEST_TMPDIR/big")"
	assert_line --index 1 "$(base64 -w0 <"$BATS_TEST_TMPDIR/bin")"
	assert_line --index 2 ""
	run jq -r 'select(.rk == "nul") | .b64' "$BATS_TEST_TMPDIR/got"
	assert_output "$(printf 'x' | base64)

$(printf 'y\ny' | base64)"
	run jq -r 'select(.rk == "raw") | .b64' "$BATS_TEST_TMPDIR/got"
	assert_output "$(base64 -w0 <"$BATS_TEST_TMPDIR/bin")"
	# the key of the empty payload is derived from the empty string
	run jq -r 'select(.rk == "bin" and .b64 == "") | .key' "$BATS_TEST_TMPDIR/got"
	assert_output "$(derived_key "$T_DEST" bin "")"
}

@test "txpub: jsonl fields override the options, headers merge, identical messages get numbered keys" {
	cat >"$BATS_TEST_TMPDIR/in" <<-EOF
		{"payload":"one","key":"order-1","headers":{"n":5,"drop":null}}
		{"payload_base64":"AP8=","routing_key":"other.rk","content_type":"application/octet-stream"}
		{"payload":"same"}
		{"payload":"same","headers":null}
	EOF
	run_mqtx 0 txpub -d "$T_DEST" -r default.rk -f jsonl --header drop=me --header keep=yes <"$BATS_TEST_TMPDIR/in"
	backend_consume 4 >"$BATS_TEST_TMPDIR/got"
	run jq -r '[.key, .rk, .b64, (.headers.n // "-"), (.headers.keep // "-"), (.headers.drop // "-"), (.content_type // "-")] | join("|")' \
		"$BATS_TEST_TMPDIR/got"
	assert_line "order-1|default.rk|$(printf one | base64)|5|yes|-|-"
	local h
	h=$(printf '%s\0other.rk\0\0\377' "$T_DEST" | sha256sum | cut -d' ' -f1)
	assert_line "txpub:$h|other.rk|AP8=|-|yes|me|application/octet-stream"
	assert_line "$(derived_key "$T_DEST" default.rk same)|default.rk|$(printf same | base64)|-|yes|me|-"
	assert_line "$(derived_key "$T_DEST" default.rk same 2)|default.rk|$(printf same | base64)|-|-|-|-"
}

@test "txpub: bad jsonl names the line and byte; nothing is published (exit 6)" {
	printf '{"payload":"ok"}\n{"payload": x}\n' >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 6 txpub -d "$T_DEST" -f jsonl --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/stdin"
	stderr_has "stdin line 2: invalid JSON at byte 13"
	run report '[.exit_code, .outcome, .confirmed]'
	assert_output '[6,"not_published",0]'
	printf '{"payload":"ok"}\n{"paylod":"x"}\n' >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
	stderr_has "stdin line 2: unknown field 'paylod' (did you mean 'payload'?)"
	printf '{"payload":"a","key":"k"}\n{"payload":"b","key":"k"}\n' >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
	stderr_has "stdin line 2: key 'k' is also the key of stdin line 1"
	printf '{"payload":"a"}\n' >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 6 txpub -f jsonl <"$BATS_TEST_TMPDIR/stdin"
	stderr_has "stdin line 1: no destination (give --destination or a 'destination' field)"
	printf '{"payload_base64":"***"}\n' >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
	stderr_has "stdin line 1: 'payload_base64' is not valid base64"
	run_mqtx 2 txpub -d "$T_DEST" -f xml --payload a
	[[ -z $(backend_consume) ]] || fail "something was published"
}

@test "txpub: a payload over txpub.max_payload is refused before anything is sent (exit 6)" {
	{
		echo small
		head -c 2000 /dev/zero | tr '\0' x
		echo
		echo after
	} >"$BATS_TEST_TMPDIR/in"
	MQTX_TXPUB_MAX_PAYLOAD=1KiB run_mqtx 6 txpub -d "$T_DEST" <"$BATS_TEST_TMPDIR/in"
	stderr_has "stdin line 2: payload is 2000 bytes, more than txpub.max_payload (1024 bytes)"
	head -c 5000 /dev/zero >"$BATS_TEST_TMPDIR/raw"
	MQTX_TXPUB_MAX_PAYLOAD=4KiB run_mqtx 6 txpub -d "$T_DEST" -f raw <"$BATS_TEST_TMPDIR/raw"
	stderr_has "stdin: payload is more than txpub.max_payload (4096 bytes)"
	MQTX_TXPUB_MAX_PAYLOAD=4KiB run_mqtx 6 txpub -d "$T_DEST" --payload-file "$BATS_TEST_TMPDIR/raw"
	MQTX_TXPUB_MAX_PAYLOAD=4KiB run_mqtx 6 txpub --prepare -d "$T_DEST" --payload-file "$BATS_TEST_TMPDIR/raw"
	MQTX_TXPUB_MAX_PAYLOAD=lots run_mqtx 3 txpub -d "$T_DEST" --payload a
	stderr_has "invalid size 'lots'"
	[[ -z $(backend_consume) ]] || fail "something was published"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
}

@test "txpub: a message over a broker limit is refused before anything is sent (exit 6), by the relay's rules" {
	local big
	big=$(head -c 200000 /dev/zero | tr '\0' x)
	printf '{"payload":"ok"}\n{"payload":"b","headers":{"big":"%s"}}\n' "$big" >"$BATS_TEST_TMPDIR/stdin"
	printf 'broker:\n  kafka:\n    message.max.bytes: "100000"\n' >"$BATS_TEST_TMPDIR/mqtx.yaml"
	if [[ $(backend_name) == amqp ]]; then
		run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
		stderr_has "stdin line 2: headers and properties are 200"
		stderr_has "AMQP carries them in one frame, at most 131052 bytes here (frame_max 131072)"
		printf '{"payload":"ok"}\n{"payload":"b","routing_key":"%s"}\n' "$(printf 'r%.0s' {1..300})" >"$BATS_TEST_TMPDIR/stdin"
		run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
		stderr_has "stdin line 2: routing_key is 300 bytes; AMQP allows at most 255"
	elif [[ $(backend_name) == nats ]]; then
		run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
		stderr_has "stdin line 2: the headers are at least 200"
		stderr_has "JetStream stores at most 65535 bytes of headers"
		printf '{"payload":"ok"}\n{"payload":"b","routing_key":"a.>"}\n' >"$BATS_TEST_TMPDIR/stdin"
		run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
		stderr_has "stdin line 2: routing_key (appended to the subject) 'a.>' has the wildcard token '>'"
	else
		# the size against message.max.bytes needs the producer: refused at publish, nothing committed
		run_mqtx 10 --config "$BATS_TEST_TMPDIR/mqtx.yaml" txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
		stderr_has "message.max.bytes is 100000"
		printf '{"payload":"ok"}\n{"payload":"b","destination":"bad topic"}\n' >"$BATS_TEST_TMPDIR/stdin"
		run_mqtx 6 txpub -d "$T_DEST" -f jsonl <"$BATS_TEST_TMPDIR/stdin"
		stderr_has "stdin line 2: destination (the topic) 'bad topic' has byte 0x20 at 3; Kafka topic names allow only [a-zA-Z0-9._-]"
	fi
	[[ -z $(backend_consume) ]] || fail "something was published"
}

@test "txpub: --mode tx commits each batch; an unroutable message is not published, the rest of its batch is (exit 11)" {
	skip_unless_can transactions "no broker transactions"
	skip_on_backend kafka "RabbitMQ transactions (tx mode) only; Kafka has kafka-tx"
	"$AMQP_TOOL" declare-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.noq" --type direct
	cat >"$BATS_TEST_TMPDIR/in" <<-EOF
		{"payload":"1"}
		{"payload":"2"}
		{"payload":"3","destination":"$T_EXCHANGE.noq"}
		{"payload":"4"}
		{"payload":"5"}
	EOF
	run_mqtx 11 txpub --mode tx --batch 2 -d "$T_DEST" -r rk -f jsonl --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/in"
	run report '[.batches[].state]'
	assert_output '["confirmed","partial","not_published"]'
	run report '[.messages[] | .state]'
	assert_output '["confirmed","confirmed","not_published","confirmed","not_published"]'
	run report '.messages[2].error'
	assert_output --partial "unroutable"
	run report '.messages[4].error'
	assert_output '"not sent: an earlier batch was not published"'
	run jq -r .body < <(backend_consume 3)
	assert_output $'1\n2\n4'
	"$AMQP_TOOL" delete-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE.noq"
}

@test "txpub: --mode tx with a missing exchange rolls the whole batch back; nothing published (exit 10)" {
	skip_unless_can transactions "no broker transactions"
	skip_on_backend kafka "RabbitMQ transactions (tx mode) only"
	printf '{"payload":"a"}\n{"payload":"b","destination":"nope-%s"}\n' "$T_SCHEMA" >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 10 txpub --mode tx -d "$T_DEST" -f jsonl --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/stdin"
	stderr_has "NOT_FOUND"
	stderr_has "(transaction discarded)"
	run report '[.outcome, .not_published]'
	assert_output '["not_published",2]'
	[[ -z $(backend_consume) ]] || fail "the rolled-back transaction was delivered"
}

@test "txpub: --mode kafka-tx publishes each batch in one producer transaction; a missing topic aborts its batch" {
	if ! backend_can fenced_transactions; then
		run_mqtx 2 txpub --mode kafka-tx -d "$T_DEST" --payload a
		stderr_has "txpub mode 'kafka-tx': the $(backend_name) broker cannot do fenced transactions (use --mode $(backend_can transactions && echo tx || echo confirm))"
		return
	fi
	local missing
	missing=$(missing_dest)
	printf '{"payload":"1"}\n{"payload":"2"}\n{"payload":"3","destination":"%s"}\n{"payload":"4"}\n' "$missing" >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 11 txpub --mode kafka-tx --batch 2 -d "$T_DEST" -r k -f jsonl --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/stdin"
	run report '[.mode, (.batches[].state)]'
	assert_output '["kafka-tx","confirmed","not_published"]'
	run report '.messages[3].error'
	assert_output --partial "transaction not started"
	run jq -r .body < <(backend_consume 2)
	assert_output $'1\n2'
	# the default mode for Kafka is kafka-tx
	run_mqtx 0 txpub -d "$T_DEST" --payload x --report "$BATS_TEST_TMPDIR/report.json"
	run report .mode
	assert_output '"kafka-tx"'
	run_mqtx 2 txpub --mode tx -d "$T_DEST" --payload a
	stderr_has "txpub mode 'tx': the kafka broker's transactions need a fencing transactional id (use --mode kafka-tx)"
}

@test "txpub: a mode the broker cannot do is a usage error (exit 2; from the environment exit 3, saying where) naming the capability, before any input is read; half messages need none" {
	local bad want
	if [[ $(backend_name) == kafka ]]; then
		bad=tx want="the kafka broker's transactions need a fencing transactional id (use --mode kafka-tx)"
	else
		bad=kafka-tx want="the $(backend_name) broker cannot do fenced transactions (use --mode $(backend_can transactions && echo tx || echo confirm))"
	fi
	# the input is not read: a mode error comes first
	run_mqtx 2 txpub --mode "$bad" -d "$T_DEST" --payload-file "$BATS_TEST_TMPDIR/no-such-file"
	stderr_has "txpub mode '$bad': $want"
	printf 'SELECT 1;\n' >"$BATS_TEST_TMPDIR/ok.sql"
	run_mqtx 2 txpub --mode "$bad" --sql "$BATS_TEST_TMPDIR/ok.sql" -d "$T_DEST" --payload a
	stderr_has "txpub mode '$bad': $want"
	MQTX_TXPUB_MODE=$bad run_mqtx 3 txpub -d "$T_DEST" --payload a
	stderr_has "txpub mode '$bad': $want (txpub.mode from env MQTX_TXPUB_MODE)"
	[[ -z $(backend_consume) ]] || fail "a message was published"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]] || fail "a row was written"
	# --prepare writes half messages to the outbox only: any mode will do
	run_mqtx 0 txpub --prepare --mode "$bad" -d "$T_DEST" --payload half
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'prepared'") == 1 ]] || fail "no half message"
}

@test "txpub: --confirm sync stops at the first message not confirmed (exit 11)" {
	local missing
	missing=$(missing_dest)
	printf '{"payload":"1"}\n{"payload":"2","destination":"%s"}\n{"payload":"3"}\n' "$missing" >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 11 txpub --mode confirm --confirm sync -d "$T_DEST" -f jsonl --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/stdin"
	run report '[.messages[] | .state]'
	assert_output '["confirmed","not_published","not_published"]'
	run report '.messages[2].error'
	assert_output '"not sent: an earlier message was not published"'
	run jq -r .body < <(backend_consume 1)
	assert_output 1
}

@test "txpub: --confirm batch and async publish everything and report per batch" {
	seq 1 250 >"$BATS_TEST_TMPDIR/in"
	run_mqtx 0 txpub --mode confirm --confirm batch --batch 100 -d "$T_DEST" --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/in"
	run report '[.batches[] | [.first, .last, .state]]'
	assert_output '[[1,100,"confirmed"],[101,200,"confirmed"],[201,250,"confirmed"]]'
	seq 251 1250 >"$BATS_TEST_TMPDIR/stdin"
	MQTX_TXPUB_CONFIRM_WINDOW=50 run_mqtx 0 txpub --mode confirm -d "$T_DEST" <"$BATS_TEST_TMPDIR/stdin"
	[[ $(backend_consume 1250 | jq -r .body | sort -n | uniq | wc -l) == 1250 ]]
	# a message that fails in async mode does not stop the others of its batch
	printf '{"payload":"a"}\n{"payload":"b","destination":"%s"}\n{"payload":"c"}\n' "$(missing_dest)" >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 11 txpub --mode confirm --confirm async -d "$T_DEST" -f jsonl --report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/stdin"
	run report '[.messages[] | .state]'
	assert_output '["confirmed","not_published","confirmed"]'
}

@test "txpub: broker unreachable: nothing published (exit 10), every message not_published in the report" {
	MQTX_BROKER_URL=amqp://guest:guest@127.0.0.1:1/%2f run_mqtx 10 txpub -d x --payload a --report "$BATS_TEST_TMPDIR/report.json"
	stderr_has "cannot connect to 'amqp://guest:***@127.0.0.1:1/%2f'"
	run report '[.exit_code, .outcome, .not_published, .messages[0].state]'
	assert_output '[10,"not_published",1,"not_published"]'
	MQTX_BROKER_URL=kafka://127.0.0.1:1 MQTX_BROKER_CONNECT_TIMEOUT=1s run_mqtx 10 txpub -d x --payload a
}

@test "txpub: -q still says on stderr why nothing was published (exit 10); a clean -q run prints nothing" {
	local dest
	dest=$(missing_dest)
	run_mqtx 10 txpub -q -d "$dest" --payload a
	stderr_has "not published"
	run_mqtx 0 txpub -q -d "$T_DEST" --payload b
	[[ -z $stderr ]] || fail "a clean -q run printed: $stderr"
}

@test "txpub: database unreachable is exit 4 with nothing changed; a report that cannot be written is exit 7" {
	MQTX_DATABASE_URL=postgresql://mqtx:topsecret@127.0.0.1:1/x run_mqtx 4 txpub --prepare -d "$T_DEST" --payload a
	stderr_has "cannot connect to database 'postgresql://mqtx:***@127.0.0.1:1/x'"
	stderr_lacks topsecret
	MQTX_DATABASE_URL=postgresql://mqtx@127.0.0.1:1/x run_mqtx 4 txpub --commit some-key
	sql_for 1 >"$BATS_TEST_TMPDIR/one.sql"
	MQTX_DATABASE_URL=postgresql://mqtx@127.0.0.1:1/x run_mqtx 4 txpub --sql "$BATS_TEST_TMPDIR/one.sql" -d "$T_DEST" --payload a
	run_mqtx 7 txpub -d "$T_DEST" --payload a --report "$BATS_TEST_TMPDIR/no/such/dir/report.json"
	stderr_has "cannot write the report '$BATS_TEST_TMPDIR/no/such/dir/report.json'"
	[[ $(delivered_keys 1) == "$(derived_key "$T_DEST" "" a)" ]]
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 0 ]]
}

@test "txpub: broker stopped between publish and commit: nothing published, or in doubt and sorted out by a re-run" {
	skip_unless_can transactions "no broker transactions (the confirm mode is covered by --sql --mode confirm)"
	skip_unless_failpoints
	skip_unless_local_broker
	backend_use_fault_injection
	local mode=tx
	[[ $(backend_name) == kafka ]] && mode=kafka-tx
	printf 'one\ntwo\n' >"$BATS_TEST_TMPDIR/in"
	MQTX_FAILPOINTS="backend.before_tx_commit=sleep:6000" mqtx_bg --stdin "$BATS_TEST_TMPDIR/in" txpub --mode "$mode" -d "$T_DEST" \
		--report "$BATS_TEST_TMPDIR/report.json"
	wait_until 10 grep -q "failpoint backend.before_tx_commit" "$MQTX_BG_ERR"
	backend_stop
	mqtx_bg_wait 30
	backend_start
	if [[ $(backend_name) == amqp ]]; then
		# the broker said goodbye before tx.commit was sent: certainly not published
		[[ $MQTX_BG_STATUS == 10 ]] || fail "exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
		run report '[.outcome, .not_published]'
		assert_output '["not_published",2]'
		wait_until 30 "$AMQP_TOOL" count "$MQTX_TEST_AMQP_URL" "$T_QUEUE"
		[[ -z $(backend_consume) ]] || fail "a message of the rolled-back transaction arrived"
	else
		# the commit could not reach the cluster: txpub cannot tell
		[[ $MQTX_BG_STATUS == 12 ]] || fail "exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
		run report '[.outcome, .in_doubt]'
		assert_output '["in_doubt",2]'
		grep -q "in doubt: $(derived_key "$T_DEST" "" one)" "$MQTX_BG_ERR"
	fi
	# running it again publishes with the same keys
	run_mqtx 0 txpub --mode "$mode" -d "$T_DEST" --report "$BATS_TEST_TMPDIR/report2.json" <"$BATS_TEST_TMPDIR/in"
	[[ $(jq -c '[.messages[].key]' "$BATS_TEST_TMPDIR/report.json") == "$(jq -c '[.messages[].key]' "$BATS_TEST_TMPDIR/report2.json")" ]]
	run delivered_keys
	assert_line "$(derived_key "$T_DEST" "" one)"
	assert_line "$(derived_key "$T_DEST" "" two)"
}

@test "txpub: the answer to the commit lost: outcome unknown (exit 12), keys on stderr; a re-run sends the same keys again" {
	skip_unless_can transactions "no broker transactions"
	skip_unless_failpoints
	local mode=tx
	[[ $(backend_name) == kafka ]] && mode=kafka-tx
	printf 'p\nq\n' >"$BATS_TEST_TMPDIR/in"
	MQTX_FAILPOINTS="backend.after_tx_commit=error" run_mqtx 12 txpub --mode "$mode" -d "$T_DEST" -q \
		--report "$BATS_TEST_TMPDIR/report.json" <"$BATS_TEST_TMPDIR/in"
	local kp kq
	kp=$(derived_key "$T_DEST" "" p)
	kq=$(derived_key "$T_DEST" "" q)
	stderr_has "mqtx: error: in doubt: $kp"
	stderr_has "mqtx: error: in doubt: $kq"
	run report '[.outcome, .in_doubt, (.messages | map(.state) | unique)]'
	assert_output '["in_doubt",2,["in_doubt"]]'
	run_mqtx 0 txpub --mode "$mode" -d "$T_DEST" <"$BATS_TEST_TMPDIR/in"
	# the first commit did go through: two copies of each, with one key each
	run delivered_keys 4
	assert_output "$(printf '%s\n' "$kp" "$kp" "$kq" "$kq" | sort)"
}

@test "txpub: no confirm (connection lost before the confirms): in doubt (exit 12)" {
	skip_unless_failpoints
	skip_on_backend kafka "the relay.before_confirm failpoint simulates a lost AMQP connection; Kafka's is covered by kafka-tx above"
	MQTX_FAILPOINTS="relay.before_confirm=error" run_mqtx 12 txpub --mode confirm -d "$T_DEST" --payload a --payload b
	stderr_has "in doubt: $(derived_key "$T_DEST" "" a)"
}

# ---------------------------------------------------------------- half messages

@test "txpub: --prepare stores half messages the relay does not send; --commit hands them over, --rollback drops them" {
	run_mqtx 0 txpub --prepare -d "$T_DEST" -r half --header tenant=acme --payload one --payload two
	local k1 k2
	k1=$(derived_key "$T_DEST" half one)
	k2=$(derived_key "$T_DEST" half two)
	assert_output "$k1
$k2"
	run psql_test "SELECT idempotency_key, status, headers->>'tenant' FROM mqtx_outbox ORDER BY id"
	assert_output "$k1|prepared|acme
$k2|prepared|acme"
	run_mqtx 0 relay
	stderr_has "relayed 0"
	run_mqtx 0 txpub --commit "$k1"
	stderr_has "half message '$k1': committed (pending: the relay publishes it)"
	run_mqtx 0 txpub --commit "$k1"
	stderr_has "already committed"
	run_mqtx 0 txpub --rollback "$k2"
	run_mqtx 0 txpub --rollback "$k2"
	stderr_has "already rolled back"
	run_mqtx 0 relay
	run psql_test "SELECT status FROM mqtx_outbox ORDER BY id"
	assert_output $'sent\nrolled_back'
	backend_consume >"$BATS_TEST_TMPDIR/got"
	run jq -r '[.key, .headers.tenant] | join("|")' "$BATS_TEST_TMPDIR/got"
	assert_output "$k1|acme"
	# preparing the same message again changes nothing and prints its key
	run_mqtx 0 txpub --prepare -d "$T_DEST" -r half --payload one
	assert_output "$k1"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox") == 2 ]]
}

@test "txpub: committing a rolled-back half message is exit 13, as is rolling back a committed one; unknown keys exit 6" {
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key a --payload x
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key b --payload y
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key c --payload z
	run_mqtx 0 txpub --rollback a
	run_mqtx 0 txpub --commit b
	run_mqtx 13 txpub --commit a c
	stderr_has "cannot commit half message 'a': it was rolled back"
	stderr_has "nothing was changed"
	run_mqtx 13 txpub --rollback b
	stderr_has "cannot roll back half message 'b': it was committed (status pending)"
	run_mqtx 6 txpub --commit c no-such-key
	stderr_has "no half message with key 'no-such-key' in the outbox"
	run_mqtx 13 txpub --prepare -d "$T_DEST" --key a --payload x
	stderr_has "was rolled back earlier; give it a new key"
	run psql_test "SELECT idempotency_key, status FROM mqtx_outbox ORDER BY id"
	assert_output $'a|rolled_back\nb|pending\nc|prepared'
	run_mqtx 0 txpub --rollback no-such-key
	run_mqtx 2 txpub --commit
	run_mqtx 2 txpub --commit a --payload x
}

@test "txpub: mqtx check --resolve resolves forgotten half messages with txpub.check_sql; unknown waits; past check_max_age the default applies" {
	export MQTX_TXPUB_CHECK_AFTER=0
	export MQTX_TXPUB_CHECK_SQL="SELECT CASE WHEN EXISTS (SELECT 1 FROM \"$T_SCHEMA\".orders WHERE msg_key = \$1) THEN 'commit'
		WHEN \$2::jsonb ->> 'wait' = 'yes' THEN 'unknown' ELSE 'rollback' END"
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key done --payload 1
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key never --payload 2
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key later --header wait=yes --payload 3
	psql_test "INSERT INTO orders VALUES (1, 'done')"
	run_mqtx '*' check
	assert_output --partial "txpub item(s) in doubt"
	run_mqtx '*' check --resolve
	run psql_test "SELECT idempotency_key, status FROM mqtx_outbox ORDER BY id"
	assert_output $'done|pending\nnever|rolled_back\nlater|prepared'
	[[ $stderr == *"half message 'done'"*"committed (the relay publishes it): txpub.check_sql said commit"* ]]
	[[ $stderr == *"half message 'later'"*"left for a later check: txpub.check_sql said unknown"* ]]
	# past txpub.check_max_age the default applies, without asking
	MQTX_TXPUB_CHECK_MAX_AGE=0 MQTX_TXPUB_CHECK_DEFAULT=commit run_mqtx '*' check --resolve
	stderr_has "older than txpub.check_max_age (0ms): txpub.check_default is commit"
	run_mqtx 0 relay
	run delivered_keys
	assert_output $'done\nlater'
}

@test "txpub: check-back through txpub.check_command gets the key as its last argument, never interpolated, and the headers in its environment" {
	cat >"$BATS_TEST_TMPDIR/check" <<-'EOF'
		#!/bin/sh
		for key; do :; done # the key is the last argument
		printf '%s|%s|%s\n' "$key" "$MQTX_KEY" "$MQTX_HEADERS" >>"$(dirname "$0")/calls"
		case $key in
		*commit*) exit 0 ;;
		*unknown*) exit 2 ;;
		*crash*) exit 9 ;;
		*) exit 1 ;;
		esac
	EOF
	chmod +x "$BATS_TEST_TMPDIR/check"
	export MQTX_TXPUB_CHECK_AFTER=0 MQTX_TXPUB_CHECK_COMMAND="$BATS_TEST_TMPDIR/check --verbose"
	local evil="commit \$(touch $BATS_TEST_TMPDIR/pwned); \`touch $BATS_TEST_TMPDIR/pwned2\` \"q'"
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key "$evil" --header h=1 --payload a
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key rollback-me --payload b
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key unknown-1 --payload c
	run_mqtx 0 txpub --prepare -d "$T_DEST" --key crash-1 --payload d
	run_mqtx '*' check --resolve
	[[ ! -e $BATS_TEST_TMPDIR/pwned && ! -e $BATS_TEST_TMPDIR/pwned2 ]] || fail "the key was run by the shell"
	run grep -F "$evil|$evil|{\"h\": \"1\"}" "$BATS_TEST_TMPDIR/calls"
	assert_success
	stderr_has "txpub.check_command exited 9 (expected 0 commit, 1 rollback, 2 unknown)"
	run psql_test "SELECT status FROM mqtx_outbox ORDER BY id"
	assert_output $'pending\nrolled_back\nprepared\nprepared'
	MQTX_TXPUB_CHECK_TIMEOUT=200ms MQTX_TXPUB_CHECK_COMMAND="sleep 5; exit 0" run_mqtx '*' check --resolve
	stderr_has "did not finish within txpub.check_timeout (200ms)"
}

@test "txpub: kill -9 at each step of --prepare and --commit, then check --resolve and the relay: database and broker agree" {
	skip_unless_failpoints
	export MQTX_TXPUB_CHECK_AFTER=0
	export MQTX_TXPUB_CHECK_SQL="SELECT CASE WHEN EXISTS (SELECT 1 FROM \"$T_SCHEMA\".orders WHERE msg_key = \$1) THEN 'commit' ELSE 'rollback' END"
	local fp step=0
	for fp in txpub.prepare_before_commit txpub.prepare_after_commit txpub.commit_before_db_commit txpub.commit_after_db_commit \
		txpub.rollback_before_db_commit txpub.rollback_after_db_commit; do
		step=$((step + 1))
		# the script: prepare, its own transaction, then commit (or roll back)
		MQTX_FAILPOINTS="$fp=crash" run_mqtx '*' txpub --prepare -d "$T_DEST" --key "order-$step" --payload "order $step"
		if ((status != 0)); then
			[[ $status == 137 && $stderr == *"failpoint $fp: crash"* ]] || fail "$fp: exit $status: $stderr"
			continue # the script stops: no order
		fi
		if [[ $fp == txpub.rollback* ]]; then
			MQTX_FAILPOINTS="$fp=crash" run_mqtx '*' txpub --rollback "order-$step"
		else
			psql_test "INSERT INTO orders VALUES ($step, 'order-$step')"
			MQTX_FAILPOINTS="$fp=crash" run_mqtx '*' txpub --commit "order-$step"
		fi
		[[ $status == 137 && $stderr == *"failpoint $fp: crash"* ]] || fail "$fp: exit $status: $stderr"
	done
	run_mqtx '*' check --resolve
	run_mqtx 0 relay
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'prepared'") == 0 ]]
	run delivered_keys
	assert_output "$(committed_keys)"
	[[ $(committed_keys) == $'order-3\norder-4' ]]
}

# ---------------------------------------------------------- last-resource commit

# okey N: the key of order N. Prepared transactions are named after keys
# and are global to the database, so the keys carry the test's schema.
okey() {
	printf '%s-order-%s\n' "$T_SCHEMA" "$1"
}

# okeys N...: the keys of orders N..., sorted like committed_keys.
okeys() {
	local n
	for n in "$@"; do okey "$n"; done | sort
}

# sql_for N: SQL that writes order N with the key it is published under.
sql_for() {
	printf 'INSERT INTO "%s".orders VALUES (%s, %s);\n' "$T_SCHEMA" "$1" "'$(okey "$1")'"
}

@test "txpub: --sql commits the SQL and publishes; a failing SQL or a refused message rolls back and publishes nothing (exit 10)" {
	sql_for 1 >"$BATS_TEST_TMPDIR/ok.sql"
	run_mqtx 0 txpub --sql "$BATS_TEST_TMPDIR/ok.sql" -d "$T_DEST" -r order.created --key "$(okey 1)" --payload one \
		--report "$BATS_TEST_TMPDIR/report.json"
	run report '[.operation, .outcome, .transaction.state, .transaction.gid]'
	assert_output '["sql","published","committed","mqtx:'"$(okey 1)"'"]'
	run psql_test "SELECT idempotency_key, status, available_at < 'infinity' FROM mqtx_outbox"
	assert_output "$(okey 1)|sent|t"
	[[ $(psql_test "SELECT count(*) FROM mqtx_txpub_log") == 0 ]]
	# the SQL fails: nothing happens
	echo "INSERT INTO \"$T_SCHEMA\".orders VALUES (1, 'dup')" >"$BATS_TEST_TMPDIR/bad.sql"
	run_mqtx 10 txpub --sql "$BATS_TEST_TMPDIR/bad.sql" -d "$T_DEST" --key "$(okey x)" --payload x
	stderr_has "the SQL failed: duplicate key value"
	# the broker refuses: the SQL is rolled back
	sql_for 2 >"$BATS_TEST_TMPDIR/two.sql"
	run_mqtx 10 txpub --sql "$BATS_TEST_TMPDIR/two.sql" -d "$(missing_dest)" --key "$(okey 2)" --payload two \
		--report "$BATS_TEST_TMPDIR/report.json"
	run report '.transaction.state'
	assert_output '"rolled_back"'
	[[ $(committed_keys) == "$(okey 1)" ]]
	[[ $(psql_test "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'mqtx:%'") == 0 ]]
	run_mqtx 0 relay
	if mock_shows_aborted; then
		note "Kafka mock: the aborted transaction of order-2 is visible; checking only that order-1 arrived"
		run delivered_keys
		assert_line "$(okey 1)"
	else
		run delivered_keys
		assert_output "$(okey 1)"
	fi
	# SQL from stdin
	sql_for 3 >"$BATS_TEST_TMPDIR/stdin"
	run_mqtx 0 txpub --sql - -d "$T_DEST" --key "$(okey 3)" --payload three <"$BATS_TEST_TMPDIR/stdin"
	[[ $(committed_keys) == "$(okeys 1 3)" ]]
}

@test "txpub: --sql run again after success runs nothing (exit 0); SQL that ends the transaction is exit 6" {
	sql_for 1 >"$BATS_TEST_TMPDIR/one.sql"
	run_mqtx 0 txpub --sql "$BATS_TEST_TMPDIR/one.sql" -d "$T_DEST" --key "$(okey 1)" --payload one
	run_mqtx 0 txpub --sql "$BATS_TEST_TMPDIR/one.sql" -d "$T_DEST" --key "$(okey 1)" --payload one
	stderr_has "was committed by an earlier run; nothing was run again"
	printf 'INSERT INTO "%s".orders VALUES (2, %s); COMMIT;\n' "$T_SCHEMA" "'$(okey 2)'" >"$BATS_TEST_TMPDIR/commit.sql"
	run_mqtx 6 txpub --sql "$BATS_TEST_TMPDIR/commit.sql" -d "$T_DEST" --key "$(okey 2)" --payload two
	stderr_has "the SQL ended the transaction itself"
	run_mqtx 2 txpub --sql - -d "$T_DEST"
	stderr_has "--sql - reads the SQL from stdin"
	[[ $(delivered_keys) == "$(okey 1)" ]]
}

# crash_sql_steps MODE FAILPOINT...: for each failpoint, a --sql run that is
# killed there; then check --resolve and the relay must leave every
# committed order with its message and no message without its order
# (copies with the same key are fine).
crash_sql_steps() {
	local mode=$1 fp step=0
	shift
	export MQTX_TXPUB_PREPARED_TIMEOUT=0
	for fp in "$@"; do
		step=$((step + 1))
		sql_for "$step" >"$BATS_TEST_TMPDIR/$step.sql"
		MQTX_FAILPOINTS="$fp=crash" run_mqtx '*' txpub --mode "$mode" --sql "$BATS_TEST_TMPDIR/$step.sql" \
			-d "$T_DEST" --key "$(okey "$step")" --payload "order $step"
		[[ $status == 137 && $stderr == *"failpoint $fp: crash"* ]] || fail "$fp: exit $status: $stderr"
	done
	run_mqtx '*' check
	assert_output --partial "prepared-xact"
	run_mqtx '*' check --resolve
	[[ $(psql_test "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'mqtx:%'") == 0 ]]
	[[ $(psql_test "SELECT count(*) FROM mqtx_txpub_log") == 0 ]]
	run_mqtx 0 relay
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status <> 'sent'") == 0 ]]
	delivered_keys >"$BATS_TEST_TMPDIR/keys"
	if [[ $mode != confirm ]] && mock_shows_aborted; then
		note "Kafka mock: transactions never committed are visible; checking only that every committed order arrived"
		local k
		for k in $(committed_keys); do
			grep -qx "$k" "$BATS_TEST_TMPDIR/keys" || fail "order $k was committed but its message never arrived"
		done
	else
		run uniq "$BATS_TEST_TMPDIR/keys"
		assert_output "$(committed_keys)"
	fi
}

@test "txpub: kill -9 at each step of --sql (broker transaction), then check --resolve: database and broker agree" {
	skip_unless_can transactions "no broker transactions"
	skip_unless_failpoints
	local mode=tx
	[[ $(backend_name) == kafka ]] && mode=kafka-tx
	crash_sql_steps "$mode" txpub.after_prepare_sql txpub.after_publish txpub.after_log txpub.after_confirm \
		txpub.after_commit_prepared
	# crashes before the coordinator record roll back; from it on, commit
	[[ $(committed_keys) == "$(okeys 3 4 5)" ]]
}

@test "txpub: kill -9 at each step of --sql --mode confirm, then check --resolve: database and broker agree" {
	skip_unless_failpoints
	crash_sql_steps confirm txpub.after_prepare_sql txpub.after_log txpub.after_confirm txpub.after_commit_prepared
	[[ $(committed_keys) == "$(okeys 2 3 4)" ]]
}

@test "txpub: --sql with the broker stopped before its commit: rolled back, or committed and delivered by the relay" {
	skip_unless_can transactions "no broker transactions"
	skip_unless_failpoints
	skip_unless_local_broker
	backend_use_fault_injection
	sql_for 1 >"$BATS_TEST_TMPDIR/one.sql"
	MQTX_FAILPOINTS="backend.before_tx_commit=sleep:6000" mqtx_bg txpub --sql "$BATS_TEST_TMPDIR/one.sql" \
		-d "$T_DEST" --key "$(okey 1)" --payload one --report "$BATS_TEST_TMPDIR/report.json"
	wait_until 10 grep -q "failpoint backend.before_tx_commit" "$MQTX_BG_ERR"
	backend_stop
	mqtx_bg_wait 40
	backend_start
	if [[ $(backend_name) == amqp ]]; then
		[[ $MQTX_BG_STATUS == 10 ]] || fail "exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
		[[ -z $(committed_keys) ]]
		run report .transaction.state
		assert_output '"rolled_back"'
	else
		# the commit did not get through and its outcome is unknown: the
		# database side commits and the relay sends the message
		[[ $MQTX_BG_STATUS == 12 ]] || fail "exit $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
		[[ $(committed_keys) == "$(okey 1)" ]]
	fi
	run_mqtx '*' check --resolve
	wait_until 30 bash -c "'$MQTX' relay -q"
	[[ $(psql_test "SELECT count(*) FROM mqtx_outbox WHERE status <> 'sent'") == 0 ]]
	delivered_keys >"$BATS_TEST_TMPDIR/keys"
	run uniq "$BATS_TEST_TMPDIR/keys"
	assert_output "$(committed_keys)"
}
