# shellcheck shell=bash
# backend.bash - one interface over the brokers, so the same relay tests
# run on RabbitMQ, Kafka and NATS JetStream. MQTX_TEST_BACKEND=amqp
# (default), kafka or nats.
#
#   backend_setup            after mqtx_test_setup: T_DEST (exchange/topic/
#                            subject that exists and delivers to the test
#                            consumer), MQTX_BROKER_URL; NATS: T_STREAM, the
#                            stream capturing T_DEST and T_DEST.>
#   backend_test_setup       a test's whole start: mqtx_test_setup,
#                            backend_setup, then `mqtx init` of the outbox
#   backend_consume [N]      everything delivered so far, one normalized JSON
#                            object per line: {"id","key","rk","body","headers"}
#                            in delivery order (per partition for Kafka)
#   backend_stop/backend_start   take the broker away and bring it back
#                            (Kafka: only after backend_use_fault_injection)
#   backend_use_fault_injection  Kafka: the rest of the test runs on
#                            librdkafka's mock cluster, which takes brokers
#                            down and injects request errors (a new topic
#                            there, MQTX_BROKER_URL pointed at it); other
#                            brokers: nothing changes
#   backend_name             amqp | kafka | nats
#   backend_can CAP          whether the broker can CAP (transactions,
#                            fenced_transactions, queues, consume, inspect,
#                            read, properties, returns, dedupes): tests
#                            skip by capability, not by name

MQTX_TEST_BACKEND=${MQTX_TEST_BACKEND:-amqp}
KAFKA_TOOL=${KAFKA_TOOL:-$BATS_TEST_DIRNAME/helpers/kafka_tool}
NATS_TOOL=${NATS_TOOL:-$BATS_TEST_DIRNAME/helpers/nats_tool}

backend_name() { printf '%s\n' "$MQTX_TEST_BACKEND"; }

# What each broker can do, as lib/broker's capability bits say (plus
# "returns": unroutable messages come back, AMQP mandatory; "dedupes": the
# broker drops a message whose idempotency key it stored recently, NATS
# JetStream's Nats-Msg-Id within the duplicate window).
backend_can() {
	local caps
	case $MQTX_TEST_BACKEND in
	amqp) caps="transactions queues consume inspect read returns" ;;
	kafka) caps="transactions fenced_transactions consume inspect read properties" ;;
	nats) caps="inspect read dedupes" ;;
	esac
	[[ " $caps " == *" $1 "* ]]
}

# skip_unless_can CAP WHY: skips the test on a broker without CAP.
skip_unless_can() {
	backend_can "$1" || skip "$(backend_name): $2"
}

backend_test_setup() {
	mqtx_test_setup
	backend_setup
	run_mqtx 0 init
}

backend_setup() {
	case $MQTX_TEST_BACKEND in
	amqp)
		T_DEST=$T_EXCHANGE
		export MQTX_BROKER_URL=$MQTX_TEST_AMQP_URL
		;;
	kafka)
		[[ -n ${MQTX_TEST_KAFKA_BROKERS:-} ]] || skip "no Kafka cluster (MQTX_TEST_KAFKA_BROKERS unset)"
		T_DEST="mqtx.test.${T_SCHEMA}"
		"$KAFKA_TOOL" create-topic "$MQTX_TEST_KAFKA_BROKERS" "$T_DEST" 3 >/dev/null ||
			fail "cannot create topic $T_DEST" || return 1
		export MQTX_BROKER_URL="kafka://$MQTX_TEST_KAFKA_BROKERS"
		;;
	nats)
		[[ -n ${MQTX_TEST_NATS_URL:-} ]] || skip "no NATS server (MQTX_TEST_NATS_URL unset)"
		T_DEST="mqtx.test.${T_SCHEMA}"
		T_STREAM="mqtx_test_${T_SCHEMA}"
		export T_STREAM
		"$NATS_TOOL" create-stream "$MQTX_TEST_NATS_URL" "$T_STREAM" "$T_DEST" "$T_DEST.>" >/dev/null ||
			fail "cannot create stream $T_STREAM" || return 1
		export MQTX_BROKER_URL=$MQTX_TEST_NATS_URL
		;;
	*) fail "unknown MQTX_TEST_BACKEND '$MQTX_TEST_BACKEND'" ;;
	esac
	export T_DEST
}

# Normalizes either consumer's output to {"id","key","rk","body","headers"}.
backend_consume() {
	local n=${1:-}
	case $MQTX_TEST_BACKEND in
	amqp)
		drain_queue ${n:+--expect "$n"} --timeout 3 |
			jq -c '{id: (.headers["x-mqtx-outbox-id"] // null | if . then tonumber else . end),
				key: .message_id, rk: .routing_key, body: .body, b64: .body_base64, headers: .headers,
				delivery_mode: .delivery_mode, content_type: .content_type}'
		;;
	kafka)
		"$KAFKA_TOOL" consume "$MQTX_TEST_KAFKA_BROKERS" "$T_DEST" ${n:+--expect "$n"} --timeout 5 |
			jq -c '{id: (.headers["x-mqtx-outbox-id"] // null | if . then tonumber else . end),
				key: .headers["x-mqtx-idempotency-key"], rk: .key, body: .body, b64: .body_base64, headers: .headers,
				partition: .partition, content_type: .headers["content-type"]}'
		;;
	nats)
		# rk: the subject's part after T_DEST (relay publishes to destination.routing_key)
		"$NATS_TOOL" consume "$MQTX_TEST_NATS_URL" "$T_STREAM" "$T_DEST" ${n:+--expect "$n"} --timeout 5 |
			jq -c --arg d "$T_DEST" '{id: (.headers["x-mqtx-outbox-id"] // null | if . then tonumber else . end),
				key: .headers["x-mqtx-idempotency-key"],
				rk: (if .subject == $d then null else .subject[($d | length) + 1:] end), body: .body, b64: .body_base64,
				headers: .headers, seq: .seq, subject: .subject, content_type: .headers["content-type"]}'
		;;
	esac
}

# kafka_on_mock: the test runs on the Kafka mock cluster.
kafka_on_mock() {
	[[ -n ${MQTX_TEST_KAFKA_MOCK_BROKERS:-} && ${MQTX_TEST_KAFKA_BROKERS:-} == "$MQTX_TEST_KAFKA_MOCK_BROKERS" ]]
}

backend_use_fault_injection() {
	[[ $MQTX_TEST_BACKEND == kafka ]] || return 0
	[[ -n ${MQTX_TEST_KAFKA_MOCK_BROKERS:-} && -p ${MQTX_TEST_KAFKA_MOCK_CTL:-} ]] ||
		skip "no Kafka mock cluster (tests/helpers/kafka.sh start)"
	export MQTX_TEST_KAFKA_BROKERS=$MQTX_TEST_KAFKA_MOCK_BROKERS
	backend_setup
}

# kafka_topic_exists NAME: the Kafka broker lists NAME in its metadata.
kafka_topic_exists() {
	"$KAFKA_TOOL" consume "$MQTX_TEST_KAFKA_BROKERS" "$1" --timeout 0.5 >/dev/null 2>&1
}

# kafka_mock_ctl COMMAND...: a command to the mock cluster (kafka.sh ctl).
kafka_mock_ctl() {
	kafka_on_mock || fail "the Kafka mock is not in use: call backend_use_fault_injection first" || return 1
	"$BATS_TEST_DIRNAME/helpers/kafka.sh" ctl "$MQTX_TEST_STATEDIR" "$@" >/dev/null
}

backend_stop() {
	case $MQTX_TEST_BACKEND in
	amqp) "$MQTX_TEST_RABBITMQCTL" -q stop_app >/dev/null ;;
	kafka)
		kafka_on_mock || fail "backend_stop on Kafka needs backend_use_fault_injection first" || return 1
		for b in 1 2 3; do echo "down $b" >"$MQTX_TEST_KAFKA_MOCK_CTL"; done
		;;
	nats) "$BATS_TEST_DIRNAME/helpers/nats.sh" down "$MQTX_TEST_STATEDIR" ;;
	esac
}

backend_start() {
	case $MQTX_TEST_BACKEND in
	amqp) "$MQTX_TEST_RABBITMQCTL" -q start_app >/dev/null ;;
	kafka)
		kafka_on_mock || fail "backend_start on Kafka needs backend_use_fault_injection first" || return 1
		for b in 1 2 3; do echo "up $b" >"$MQTX_TEST_KAFKA_MOCK_CTL"; done
		;;
	nats) "$BATS_TEST_DIRNAME/helpers/nats.sh" up "$MQTX_TEST_STATEDIR" ;;
	esac
}

skip_unless_local_broker() {
	case $MQTX_TEST_BACKEND in
	amqp) skip_unless_local_amqp ;;
	kafka) kafka_on_mock || [[ ${MQTX_TEST_KAFKA_LOCAL:-0} == 1 ]] || skip "needs the local Kafka broker" ;;
	nats) [[ ${MQTX_TEST_NATS_LOCAL:-0} == 1 ]] || skip "needs the local nats-server" ;;
	esac
}

# backend_port: the local broker's TCP port (RabbitMQ, NATS), for a proxy in front of it.
backend_port() {
	local u
	case $MQTX_TEST_BACKEND in
	amqp) u=${MQTX_TEST_AMQP_URL##*:} ;;
	nats) u=${MQTX_TEST_NATS_URL##*:} ;;
	*) return 1 ;;
	esac
	printf '%s\n' "${u%%/*}"
}

# backend_url_via PORT: the broker URL through 127.0.0.1:PORT (a proxy).
backend_url_via() {
	case $MQTX_TEST_BACKEND in
	amqp) printf 'amqp://guest:guest@127.0.0.1:%s/%%2f\n' "$1" ;;
	nats) printf 'nats://127.0.0.1:%s\n' "$1" ;;
	*) return 1 ;;
	esac
}

# backend_url: the broker URL backend_setup exported.
backend_url() {
	case $MQTX_TEST_BACKEND in
	amqp) printf '%s\n' "$MQTX_TEST_AMQP_URL" ;;
	kafka) printf 'kafka://%s\n' "$MQTX_TEST_KAFKA_BROKERS" ;;
	nats) printf '%s\n' "$MQTX_TEST_NATS_URL" ;;
	esac
}

skip_on_backend() {
	[[ $MQTX_TEST_BACKEND != "$1" ]] || skip "$2"
}

# missing_dest: prints the name of a destination that does not exist (the
# real Kafka broker runs with auto.create.topics.enable=false; the mock
# creates every topic it is asked about, so it is told to answer
# UNKNOWN_TOPIC_OR_PART for this one).
missing_dest() {
	local name="no-such-destination-$T_SCHEMA"
	if [[ $MQTX_TEST_BACKEND == kafka ]] && kafka_on_mock; then
		kafka_mock_ctl topic-error "$name" UNKNOWN_TOPIC_OR_PART || return 1
	fi
	printf '%s\n' "$name"
}

# ---- outbox helpers shared by the relay, reliability and other suites

# insert_rows: tests/test_helper.bash

count_status() {
	psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = '$1'"
}

# Every row marked sent must have been delivered: ids(sent) ⊆ ids(consumed).
assert_sent_were_delivered() {
	local consumed=$1
	psql_test "SELECT id FROM mqtx_outbox WHERE status = 'sent' ORDER BY id" >"$BATS_TEST_TMPDIR/sent.ids"
	jq -r '.id' "$consumed" | sort -n -u >"$BATS_TEST_TMPDIR/got.ids"
	local missing
	missing=$(comm -23 <(sort "$BATS_TEST_TMPDIR/sent.ids") <(sort "$BATS_TEST_TMPDIR/got.ids") | head -5)
	[[ -z $missing ]] || fail "rows marked sent but never delivered: $missing"
}
