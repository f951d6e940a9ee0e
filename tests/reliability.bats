#!/usr/bin/env bats
# Proof that nothing is lost: crashes at every relay failpoint, broker and
# database faults, connection cuts and stalls, hostile rows. Runs on
# RabbitMQ and (where it applies) Kafka. See RELIABILITY.md.

load test_helper
load backend

setup() {
	backend_test_setup
}

teardown() {
	stop_proxy
	mqtx_test_teardown
}

sent_ids() { psql_test "SELECT id FROM mqtx_outbox WHERE status = 'sent' ORDER BY id"; }

# crash_then_recover FAILPOINT ROWS BATCH: the relay dies (SIGKILL) at the
# third pass of FAILPOINT; a second run finishes. Then: every row delivered
# at least once, and every duplicate is a row that was not yet marked sent
# when the relay died (in flight: at most two batches).
crash_then_recover() {
	local fp=$1 rows=$2 batch=$3
	skip_unless_failpoints
	insert_rows "$rows"
	MQTX_FAILPOINTS="$fp=crash@3" run_mqtx 137 relay --batch "$batch" # dies at $fp
	[[ $stderr == *"failpoint $fp: crash"* ]]
	sent_ids >"$BATS_TEST_TMPDIR/sent_at_crash"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/sent_at_crash") -lt $rows ]]
	run_mqtx 0 relay --batch "$batch"
	[[ $(count_status sent) == "$rows" ]]
	backend_consume >"$BATS_TEST_TMPDIR/got"
	jq -r .id "$BATS_TEST_TMPDIR/got" | sort -n >"$BATS_TEST_TMPDIR/ids"
	[[ $(uniq "$BATS_TEST_TMPDIR/ids" | wc -l) == "$rows" ]] || fail "not every row was delivered"
	uniq -d "$BATS_TEST_TMPDIR/ids" >"$BATS_TEST_TMPDIR/dups"
	local bad
	bad=$(comm -12 <(sort "$BATS_TEST_TMPDIR/dups") <(sort "$BATS_TEST_TMPDIR/sent_at_crash") | head -3)
	[[ -z $bad ]] || fail "rows marked sent before the crash were delivered twice: $bad"
	(($(wc -l <"$BATS_TEST_TMPDIR/dups") <= 2 * batch)) || fail "more duplicates than rows in flight"
	DUPS=$(wc -l <"$BATS_TEST_TMPDIR/dups")
}

@test "reliability: crash after claiming: nothing lost; only the other batch in flight can come twice" {
	crash_then_recover relay.after_claim 1000 100
	# the claimed batch was never published; the batch before it may have been
	((DUPS <= 100)) || fail "$DUPS duplicates after a crash before publishing"
}

@test "reliability: crash after publishing, before the confirms: nothing lost" {
	crash_then_recover relay.before_confirm 1000 100
}

@test "reliability: crash after the confirms, before marking: nothing lost, the batch comes twice" {
	crash_then_recover relay.after_confirm 1000 100
	if backend_can dedupes; then
		# sent again with the same keys within the duplicate window: the stream dropped the copies
		((DUPS == 0)) || fail "the broker dedupes by key, yet $DUPS rows arrived twice"
	else
		((DUPS >= 100)) || fail "expected the confirmed batch to be sent again, got $DUPS duplicates"
	fi
}

@test "reliability: crash between marking and commit: nothing lost, the batch comes twice" {
	crash_then_recover relay.before_commit 1000 100
	if backend_can dedupes; then
		# sent again with the same keys within the duplicate window: the stream dropped the copies
		((DUPS == 0)) || fail "the broker dedupes by key, yet $DUPS rows arrived twice"
	else
		((DUPS >= 100)) || fail "expected the confirmed batch to be sent again, got $DUPS duplicates"
	fi
}

@test "reliability: a failpoint error after the confirms leaves the rows pending, then they go" {
	skip_unless_failpoints
	insert_rows 50
	MQTX_FAILPOINTS="relay.before_commit=error" run_mqtx 4 relay --batch 20
	stderr_has "failpoint relay.before_commit"
	run_mqtx 0 relay
	[[ $(count_status sent) == 50 ]]
}

@test "reliability: connection cut mid-publish: one-shot exits 5 and marks nothing it did not see confirmed" {
	skip_on_backend kafka "the proxy sits in front of RabbitMQ or NATS (Kafka faults: broker down, request errors)"
	skip_unless_local_broker
	start_proxy "$(backend_port)"
	insert_rows 20000
	MQTX_BROKER_URL=$(backend_url_via "$PROXY_PORT")
	# rows left unconfirmed by the cut are retried at once: the one-shot run
	# below must find them eligible, not waiting out a backoff
	MQTX_RELAY_BACKOFF_INITIAL=0 MQTX_RELAY_BACKOFF_MAX=0
	export MQTX_BROKER_URL MQTX_RELAY_BACKOFF_INITIAL MQTX_RELAY_BACKOFF_MAX
	mqtx_bg relay --batch 200
	wait_sent 30 '>' 400
	proxy_cmd cut
	mqtx_bg_stop TERM 30 || true
	[[ $MQTX_BG_STATUS == 5 ]] || [[ $MQTX_BG_STATUS == 0 && $(count_status sent) == 20000 ]] ||
		fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
	MQTX_BROKER_URL=$(backend_url)
	run_mqtx 0 relay
	[[ $(count_status sent) == 20000 ]]
}

@test "reliability: --loop survives connection cuts and a refusing broker, then relays everything" {
	skip_on_backend kafka "the proxy sits in front of RabbitMQ or NATS"
	skip_unless_local_broker
	start_proxy "$(backend_port)"
	insert_rows 15000
	MQTX_BROKER_URL=$(backend_url_via "$PROXY_PORT")
	export MQTX_BROKER_URL
	mqtx_bg relay --loop --batch 200 --poll-interval 200ms
	wait_sent 30 '>' 400
	proxy_cmd refuse
	proxy_cmd cut
	sleep 2
	proxy_cmd accept
	wait_sent 30 '>' 6000
	proxy_cmd cut
	wait_sent 90 == 15000
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS"
	grep -q "retrying" "$MQTX_BG_ERR"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
	[[ $(jq -r .id "$BATS_TEST_TMPDIR/got" | sort -u | wc -l) == 15000 ]]
}

@test "reliability: broker.url with several AMQP hosts: relay, txpub and redeliver take the first that answers; --loop fails over when its node goes away" {
	[[ $(backend_name) == amqp ]] || skip "several hosts in an AMQP URL (Kafka's bootstrap list and NATS's server list are their own)"
	skip_unless_local_broker
	export MQTX_RELAY_BACKOFF_INITIAL=100ms MQTX_RELAY_BACKOFF_MAX=500ms
	# two ways to the node, as if two nodes of a cluster; a dead address first
	start_proxy "$(backend_port)"
	coproc PROXYB { exec "$BATS_TEST_DIRNAME/helpers/tcp_proxy" "$(backend_port)" --control "$BATS_TEST_TMPDIR/proxyb.ctl" 2>>"$BATS_TEST_TMPDIR/proxyb.log" 3>&-; }
	local b_pid=$PROXYB_PID b_port
	read -r -t 5 b_port <&"${PROXYB[0]}" || fail "the second tcp_proxy did not start"
	export MQTX_BROKER_URL="amqp://guest:guest@127.0.0.1:1,127.0.0.1:$PROXY_PORT,127.0.0.1:$b_port/%2f"
	insert_rows 10
	run_mqtx 0 relay -v
	stderr_has "broker: connected to 'amqp://guest:***@127.0.0.1:$PROXY_PORT/%2f' (of 'amqp://guest:***@127.0.0.1:1,127.0.0.1:$PROXY_PORT,127.0.0.1:$b_port/%2f')"
	[[ $(count_status sent) == 10 ]]
	# every host down: one line naming each host and why
	MQTX_BROKER_URL="amqp://guest:guest@127.0.0.1:1,127.0.0.1:2/%2f" run_mqtx 5 relay
	stderr_has "no broker host of 'amqp://guest:***@127.0.0.1:1,127.0.0.1:2/%2f' let us in: cannot connect to 'amqp://guest:***@127.0.0.1:1/%2f': "
	stderr_has "; cannot connect to 'amqp://guest:***@127.0.0.1:2/%2f': "
	stderr_lacks "guest:guest"
	MQTX_BROKER_URL="amqp://guest:guest@127.0.0.1:1,,127.0.0.1:2/%2f" run_mqtx 3 relay
	stderr_has "several hosts: host1:port1,host2:port2"
	# --loop: the node in use goes away (cut, then refusing): the relay goes on through the other
	mqtx_bg relay --loop --batch 50
	wait_relay_listening 10
	insert_rows 300
	wait_sent 20 '==' 310
	proxy_cmd refuse
	proxy_cmd cut
	insert_rows 300
	wait_sent 30 '==' 610 || fail "sent $(count_status sent) of 610: $(tail -5 "$MQTX_BG_ERR")"
	mqtx_bg_stop
	(($(grep -c "tcp_proxy: connection" "$BATS_TEST_TMPDIR/proxyb.log") >= 1)) || fail "the relay never used the second host"
	drain_queue --timeout 3 | jq -r '.headers["x-mqtx-outbox-id"]' | sort -n -u >"$BATS_TEST_TMPDIR/ids"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/ids") == 610 ]] || fail "$(wc -l <"$BATS_TEST_TMPDIR/ids") of 610 rows delivered"
	# txpub and redeliver with the first proxy still refusing
	run_mqtx 0 txpub -d "$T_DEST" -r test.rk --payload via-b
	run_mqtx 0 redeliver --id 1 --yes
	[[ $(drain_queue --timeout 3 | wc -l) == 2 ]]
	kill "$b_pid" 2>/dev/null || true
	wait "$b_pid" 2>/dev/null || true
}

@test "reliability: a stalled network: the relay gives up after broker.confirm_timeout and marks nothing" {
	skip_on_backend kafka "the proxy sits in front of RabbitMQ or NATS"
	skip_unless_local_broker
	start_proxy "$(backend_port)"
	insert_rows 3000
	MQTX_BROKER_URL=$(backend_url_via "$PROXY_PORT")
	export MQTX_BROKER_URL MQTX_BROKER_CONFIRM_TIMEOUT=2s
	mqtx_bg relay --batch 100
	wait_sent 30 '>' 200
	proxy_cmd stall
	sent=$(count_status sent)
	wait_until 20 bash -c "! kill -0 $MQTX_BG_PID 2>/dev/null"
	mqtx_bg_stop TERM 5 || true
	[[ $MQTX_BG_STATUS == 5 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -qE "no confirm from|no publish acknowledgement from" "$MQTX_BG_ERR"
	proxy_cmd resume
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
	(($(count_status sent) <= sent + 200))
}

@test "reliability: PostgreSQL restarted mid-run: --loop recovers; nothing unconfirmed is marked sent" {
	skip_unless_local_pg
	insert_rows 15000
	mqtx_bg relay --loop --batch 200 --poll-interval 200ms
	wait_sent 30 '>' 400
	"$MQTX_TEST_PG_CTL" restart -m fast -w >/dev/null
	wait_sent 90 == 15000
	mqtx_bg_stop TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
	[[ $(jq -r .id "$BATS_TEST_TMPDIR/got" | sort -u | wc -l) == 15000 ]]
}

@test "reliability: PostgreSQL restarted under a one-shot relay: exit 4, then the next run finishes" {
	skip_unless_local_pg
	insert_rows 20000
	mqtx_bg relay --batch 100
	wait_sent 30 '>' 300
	"$MQTX_TEST_PG_CTL" restart -m fast -w >/dev/null
	mqtx_bg_stop TERM 30 || true
	[[ $MQTX_BG_STATUS == 4 || $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	run_mqtx 0 relay
	[[ $(count_status sent) == 20000 ]]
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
}

@test "reliability: malformed headers in a text column fail that row alone with a clear last_error" {
	psql_test "ALTER TABLE mqtx_outbox ALTER COLUMN headers TYPE text"
	insert_rows 3
	psql_test "INSERT INTO mqtx_outbox(destination, payload, headers) VALUES
		('$T_DEST', 'a', '{\"unterminated'), ('$T_DEST', 'b', '[1,2]'), ('$T_DEST', 'c', '{\"ok\":\"yes\"}')"
	run_mqtx 1 relay
	run psql_test "SELECT payload, status, last_error FROM mqtx_outbox WHERE headers IS NOT NULL ORDER BY id"
	assert_line --index 0 --regexp '^\\x61\|pending\|malformed headers: invalid JSON at byte [0-9]+: unterminated string$'
	assert_line --index 1 '\x62|pending|malformed headers: headers must be a JSON object'
	assert_line --index 2 '\x63|sent|'
	[[ $(count_status sent) == 4 ]]
}

@test "reliability: a 64 MiB payload is delivered byte for byte or refused with a clear error, never a crash" {
	psql_test "INSERT INTO mqtx_outbox(destination, payload) SELECT '$T_DEST', decode(repeat('00ff', 33554432), 'hex')"
	run_mqtx '*' relay
	[[ $status == 0 || $status == 1 ]] || fail "relay exited $status: $stderr"
	if [[ $status == 0 ]]; then
		backend_consume 1 | jq -r .b64 | base64 -d | cmp - <(psql_test "SELECT encode(payload, 'hex') FROM mqtx_outbox" | xxd -r -p)
	else
		run psql_test "SELECT status, last_error FROM mqtx_outbox"
		assert_output --regexp '^dead\|.*(too large|size|message.max.bytes|max_payload)' # over a broker limit: dead at once (mqtx-relay(1) FAILURES)
	fi
}

@test "reliability: binary payloads with NUL bytes and invalid UTF-8 round-trip exactly" {
	psql_test "INSERT INTO mqtx_outbox(destination, payload, headers) VALUES
		('$T_DEST', '\\x00c328fffe00'::bytea, '{\"h\":\"ünïcødé\"}')"
	run_mqtx 0 relay
	backend_consume 1 >"$BATS_TEST_TMPDIR/got"
	[[ $(jq -r .b64 "$BATS_TEST_TMPDIR/got") == "AMMo//4A" ]]
	[[ $(jq -r .headers.h "$BATS_TEST_TMPDIR/got") == "ünïcødé" ]]
}

@test "reliability: Kafka produce errors (NOT_ENOUGH_REPLICAS, NOT_LEADER_FOR_PARTITION) are retried: every row once, in key order" {
	[[ $(backend_name) == kafka ]] || skip "fault injection of the Kafka mock cluster"
	backend_use_fault_injection
	insert_rows 300 "$T_DEST" "'k' || (g % 5)"
	kafka_mock_ctl errors Produce 4 NOT_ENOUGH_REPLICAS
	kafka_mock_ctl errors Produce 3 NOT_LEADER_FOR_PARTITION
	run_mqtx 0 relay --batch 50
	[[ $(count_status sent) == 300 ]]
	backend_consume 300 >"$BATS_TEST_TMPDIR/got"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/got") == 300 ]] || fail "duplicates or losses: $(wc -l <"$BATS_TEST_TMPDIR/got") deliveries"
	[[ $(jq -r .id "$BATS_TEST_TMPDIR/got" | sort -u | wc -l) == 300 ]]
	# per partition (one per ordering key), ids arrive in increasing order
	run bash -c "jq -r '[.partition, .id] | @tsv' '$BATS_TEST_TMPDIR/got' | awk '\$2 < last[\$1] { bad = 1 } { last[\$1] = \$2 } END { exit bad }'"
	assert_success
}
