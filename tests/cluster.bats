#!/usr/bin/env bats
# A 3-node RabbitMQ cluster of the test's own (tests/helpers/rabbitcluster.sh)
# with a quorum queue; broker.url names the three nodes. While a writer
# inserts and two relays run, the node the relays are connected to is
# killed (SIGKILL) and later started again. make check runs this file in
# lane 2 (tests/check.sh), once, against RabbitMQ.

load test_helper

setup() {
	[[ -x ${MQTX_TEST_RABBIT_BIN:-/usr/lib/rabbitmq/bin}/rabbitmq-server ]] || skip "no rabbitmq-server"
	mqtx_test_setup
	RCL=$(mktemp -d /tmp/mqtx-rcl.XXXXXX)
	"$BATS_TEST_DIRNAME/helpers/rabbitcluster.sh" start "$RCL" || fail "cannot start the RabbitMQ cluster"
	# shellcheck source=/dev/null
	source "$RCL/env"
	NODE2_URL="amqp://guest:guest@127.0.0.1:$RCL_PORT2/%2f"
	"$AMQP_TOOL" declare-exchange "$NODE2_URL" "$T_EXCHANGE" --type topic
	"$AMQP_TOOL" declare-queue "$NODE2_URL" "$T_QUEUE" --quorum --bind "$T_EXCHANGE:#"
	export MQTX_BROKER_URL=$RCL_URL
	export MQTX_RELAY_BACKOFF_INITIAL=200ms MQTX_RELAY_BACKOFF_MAX=1s
	PIDS=()
	run_mqtx 0 init
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	"$BATS_TEST_DIRNAME/helpers/rabbitcluster.sh" stop "$RCL" >/dev/null 2>&1 || true
	rm -rf "$RCL"
	mqtx_test_teardown
}

rcl() { "$BATS_TEST_DIRNAME/helpers/rabbitcluster.sh" "$1" "$RCL" "${@:2}"; }

# connections_on N: how many client connections node N has
connections_on() {
	rcl ctl "$1" -q list_connections name 2>/dev/null | grep -c . || true
}

@test "cluster: kill -9 of the node the relays use, then its restart: every row reaches the quorum queue, none lost, per-key order of first deliveries kept, duplicates only where a confirm was lost" {
	# the writer: 30 transactions of 100 rows over 10 keys, 0.1 s apart
	(
		for ((i = 0; i < 30; i++)); do
			psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
				SELECT '$T_EXCHANGE', 'test.rk', 'k' || (g % 10), convert_to(json_build_object('n', g)::text, 'UTF8')
				FROM generate_series(1, 100) g" >/dev/null
			sleep 0.1
		done
	) 3>&- &
	PIDS+=($!)
	local r
	for r in 1 2; do
		"$MQTX" relay --loop --batch 50 >/dev/null 2>"$BATS_TEST_TMPDIR/relay$r.err" 3>&- &
		PIDS+=($!)
	done
	wait_sent 30 '>' 300
	# each connection takes the first node that lets it in: node 1
	(($(connections_on 1) >= 2)) || fail "the relays are not on node 1: $(connections_on 1) connection(s)"
	rcl kill 1
	sleep 3
	rcl start-node 1
	wait "${PIDS[0]}" || fail "the writer failed"
	wait_sent 90 '==' 3000 || fail "sent $(count_status sent) of 3000: $(tail -3 "$BATS_TEST_TMPDIR/relay1.err")"
	for r in 1 2; do
		kill -TERM "${PIDS[r]}"
		wait "${PIDS[r]}" || fail "relay $r exited $?: $(tail -3 "$BATS_TEST_TMPDIR/relay$r.err")"
	done
	PIDS=()
	grep -q "connected\|cannot\|lost\|closed" "$BATS_TEST_TMPDIR"/relay*.err || fail "no relay noticed the node going away"
	# dedupe-audit is the consumer: it empties the quorum queue
	run_mqtx '*' dedupe-audit --source "amqp:///$T_QUEUE" --destructive --max-details 3000 --format json
	[[ $status == 0 || $status == 1 ]] || fail "dedupe-audit exit $status: $stderr"
	[[ $(jq -c '[.missing.count, .strangers.keys, .order.out_of_order, .outbox_sent]' <<<"$output") == '[0,0,0,3000]' ]] ||
		fail "audit: $(jq -c '{missing, strangers: .strangers.keys, order: .order.out_of_order, outbox_sent, deliveries}' <<<"$output")"
	# every duplicate is of a row sent more than once: its first attempt was
	# not confirmed (attempts > 1), never a confirmed row sent again
	jq -r '.duplicates.details[].key' <<<"$output" >"$BATS_TEST_TMPDIR/dups"
	local k bad=0
	while read -r k; do
		[[ $(psql_test "SELECT attempts > 1 FROM mqtx_outbox WHERE idempotency_key = '$k'") == t ]] || bad=$((bad + 1))
	done <"$BATS_TEST_TMPDIR/dups"
	((bad == 0)) || fail "$bad duplicated row(s) with one attempt: a confirmed row was sent again"
	echo "# cluster: $(jq -r .deliveries <<<"$output") deliveries of 3000 rows, $(wc -l <"$BATS_TEST_TMPDIR/dups") duplicated" >&3
}
