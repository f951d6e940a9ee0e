#!/usr/bin/env bats
# Signals, stop deadlines and reconnect pacing of the relay: SIGTERM with a
# stalled link, a second SIGTERM, SIGHUP, the reconnect backoff under a
# stream of NOTIFYs, and the process being non-dumpable. See mqtx-relay(1)
# SIGNALS and SECURITY.

load test_helper
load backend

setup() {
	backend_test_setup
}

teardown() {
	stop_proxy
	mqtx_test_teardown
}

pg_port() {
	local port=${MQTX_TEST_DATABASE_URL##*:}
	printf '%s\n' "${port%%/*}"
}

# stop_timed SIGNAL SECS: mqtx_bg_stop, and ELAPSED gets the seconds from
# the signal to the exit (one decimal).
stop_timed() {
	local t0=${EPOCHREALTIME/./}
	mqtx_bg_stop "$1" "$2"
	ELAPSED=$(((${EPOCHREALTIME/./} - t0) / 100000))
	ELAPSED="$((ELAPSED / 10)).$((ELAPSED % 10))"
}

# catches PID SIGNUM / delivered PID SIGNUM: from /proc/PID/status, whether
# the process has a handler for the signal, and whether it has none pending.
catches() { (($(_sigmask "$1" SigCgt) >> ($2 - 1) & 1)); }
delivered() { ((!($(_sigmask "$1" ShdPnd) >> ($2 - 1) & 1))); }
_sigmask() { local m; m=$(awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status") && printf '%d\n' "0x${m:-0}"; }

# no_relay_sessions: the relays' database sessions are gone (a stalled
# proxy held them open; their row locks must be released before a re-run).
no_relay_sessions() {
	[[ $(psql_test "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mqtx relay'") == 0 ]]
}

# The relay's latest heartbeat row: is stopped_at set (t/f).
heartbeat_row() { psql_test "SELECT stopped_at IS NOT NULL FROM mqtx_relays ORDER BY started_at DESC LIMIT 1"; }

# insert_spread N: N rows in N/5 transactions of 5 rows (one NOTIFY each),
# 25 ms apart: about 5 s of inserts for N=1000.
insert_spread() {
	local i
	for ((i = 0; i < $1 / 5; i++)); do
		printf "INSERT INTO mqtx_outbox(destination, routing_key, payload) SELECT '%s', 'test.rk', 'x' FROM generate_series(1, 5);\nSELECT pg_sleep(0.025);\n" "$T_DEST"
	done | psql_test >/dev/null
}

@test "signals: --loop with the broker unreachable: NOTIFYs do not shorten the reconnect backoff; the rows go out once it is back" {
	skip_on_backend kafka "the proxy sits in front of RabbitMQ or NATS"
	skip_unless_local_broker
	start_proxy "$(backend_port)"
	proxy_cmd refuse
	MQTX_BROKER_URL=$(backend_url_via "$PROXY_PORT")
	export MQTX_BROKER_URL
	mqtx_bg relay --loop --poll-interval 200ms
	wait_until 20 grep -q "retrying" "$MQTX_BG_ERR"
	insert_spread 1000
	local attempts warnings
	attempts=$(grep -c "tcp_proxy: connection" "$BATS_TEST_TMPDIR/proxy.log")
	warnings=$(grep -c "retrying" "$MQTX_BG_ERR")
	# 0.5 s doubling (±20%): about 5 attempts in the 5-7 s of inserts; before
	# the fix every NOTIFY caused one (about 200)
	((attempts < 30)) || fail "$attempts connection attempts while 200 NOTIFYs came: $(head -20 "$MQTX_BG_ERR")"
	((warnings <= attempts)) || fail "$warnings warnings for $attempts attempts"
	proxy_cmd accept
	wait_sent 60 == 1000
	stop_timed TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
}

# stalled_stop LINK MODE: rows flowing through the tcp_proxy in front of
# LINK (broker|database), the proxy stalls, SIGTERM with
# relay.shutdown_grace 3s: the relay must exit within 10 s; nothing that was
# not confirmed is marked sent.
stalled_stop() {
	local link=$1 mode=$2
	local -a args=(relay --batch 200)
	[[ $mode == loop ]] && args+=(--loop --poll-interval 200ms)
	local before
	before=$(count_status sent)
	insert_rows 30000
	if [[ $link == broker ]]; then
		start_proxy "$(backend_port)"
		MQTX_BROKER_URL=$(backend_url_via "$PROXY_PORT")
		export MQTX_BROKER_URL
		mqtx_bg "${args[@]}"
	else
		start_proxy "$(pg_port)"
		MQTX_DATABASE_URL="postgresql://mqtx@127.0.0.1:$PROXY_PORT/${MQTX_TEST_DATABASE_URL##*/}" mqtx_bg "${args[@]}"
	fi
	wait_sent 30 '>' $((before + 400))
	proxy_cmd stall
	stop_timed TERM 40
	proxy_cmd resume
	stop_proxy
	wait_until 20 no_relay_sessions
	(( ${ELAPSED%.*} < 10 )) || fail "$link stalled, $mode: exit ${ELAPSED}s after SIGTERM (grace 3s): $(tail -5 "$MQTX_BG_ERR")"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
}

@test "signals: SIGTERM with a stalled broker link: one-shot exits 5 within the grace; nothing unconfirmed marked sent" {
	skip_on_backend kafka "the proxy sits in front of RabbitMQ or NATS"
	skip_unless_local_broker
	export MQTX_RELAY_SHUTDOWN_GRACE=3s
	stalled_stop broker once
	[[ $MQTX_BG_STATUS == 5 ]] || fail "one-shot exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	grep -q "still unconfirmed when the shutdown grace ran out" "$MQTX_BG_ERR"
	[[ $(heartbeat_row) == t ]] || fail "the heartbeat does not show the stop: $(tail -5 "$MQTX_BG_ERR")"
}

@test "signals: SIGTERM with a stalled broker link: --loop exits 0 within the grace; nothing unconfirmed marked sent" {
	skip_on_backend kafka "the proxy sits in front of RabbitMQ or NATS"
	skip_unless_local_broker
	export MQTX_RELAY_SHUTDOWN_GRACE=3s
	stalled_stop broker loop
	[[ $MQTX_BG_STATUS == 0 ]] || fail "--loop exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	[[ $(heartbeat_row) == t ]] || fail "the heartbeat does not show the stop: $(tail -5 "$MQTX_BG_ERR")"
}

@test "signals: SIGTERM with a stalled database link: one-shot exits 4 within the grace; nothing unconfirmed marked sent" {
	export MQTX_RELAY_SHUTDOWN_GRACE=3s
	stalled_stop database once
	[[ $MQTX_BG_STATUS == 4 ]] || fail "one-shot exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	run_mqtx 0 relay
	[[ $(count_status sent) == 30000 ]]
}

@test "signals: SIGTERM with a stalled database link: --loop exits 0 within the grace; nothing unconfirmed marked sent" {
	export MQTX_RELAY_SHUTDOWN_GRACE=3s
	stalled_stop database loop
	[[ $MQTX_BG_STATUS == 0 ]] || fail "--loop exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	run_mqtx 0 relay
	[[ $(count_status sent) == 30000 ]]
}

@test "signals: a second SIGTERM stops at once and still records the stop" {
	skip_on_backend kafka "the proxy sits in front of RabbitMQ or NATS"
	skip_unless_local_broker
	export MQTX_RELAY_SHUTDOWN_GRACE=60s
	insert_rows 30000
	start_proxy "$(backend_port)"
	MQTX_BROKER_URL=$(backend_url_via "$PROXY_PORT")
	export MQTX_BROKER_URL
	mqtx_bg relay --loop --batch 200
	wait_sent 30 '>' 400
	proxy_cmd stall
	kill -TERM "$MQTX_BG_PID"
	wait_until 5 delivered "$MQTX_BG_PID" 15 # two pending SIGTERMs would count as one
	stop_timed TERM 30
	proxy_cmd resume
	(( ${ELAPSED%.*} < 5 )) || fail "exit ${ELAPSED}s after the second SIGTERM"
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	[[ $(heartbeat_row) == t ]] || fail "the heartbeat does not show the stop: $(tail -5 "$MQTX_BG_ERR")"
	backend_consume >"$BATS_TEST_TMPDIR/got"
	assert_sent_were_delivered "$BATS_TEST_TMPDIR/got"
}

@test "signals: SIGHUP is logged and ignored: relay --loop keeps relaying; SIGTERM then records a stop that check does not call stale" {
	mqtx_bg relay --loop --poll-interval 200ms
	insert_rows 5
	wait_sent 20 == 5
	kill -HUP "$MQTX_BG_PID"
	wait_until 10 grep -q "SIGHUP ignored: reloading the configuration is not supported yet" "$MQTX_BG_ERR"
	insert_rows 5
	wait_sent 20 == 10
	kill -0 "$MQTX_BG_PID" || fail "the relay died after SIGHUP"
	stop_timed TERM 20
	[[ $MQTX_BG_STATUS == 0 ]] || fail "relay exited $MQTX_BG_STATUS: $(cat "$MQTX_BG_ERR")"
	run psql_test "SELECT stopped_at IS NOT NULL, relayed FROM mqtx_relays"
	assert_output "t|10"
	run_mqtx '*' check --format json --relay-stale 1s
	[[ $(jq -c '.relays | [.stale, .stopped]' <<<"$output") == "[0,1]" ]] || fail "check: $output"
}

@test "signals: SIGHUP is logged and ignored by txpub too (redeliver and dedupe-audit share the handler)" {
	[[ $(backend_name) == amqp ]] || skip "one broker is enough: the handler is shared"
	mkfifo "$BATS_TEST_TMPDIR/in"
	# txpub reading its input from a FIFO that stays open: it waits
	mqtx_bg --stdin "$BATS_TEST_TMPDIR/in" txpub --destination "$T_DEST"
	exec 5>"$BATS_TEST_TMPDIR/in"
	wait_until 10 catches "$MQTX_BG_PID" 1
	kill -HUP "$MQTX_BG_PID"
	wait_until 10 grep -q "SIGHUP ignored" "$MQTX_BG_ERR"
	kill -0 "$MQTX_BG_PID" || fail "txpub died after SIGHUP"
	exec 5>&-
	mqtx_bg_stop TERM 10
}

# dumpable_uid [ENV...]: runs relay --loop (as nobody when we are root, so
# that the owner of /proc/PID/environ says something) and prints the owner:
# root (0) when the process is not dumpable, its own uid otherwise.
dumpable_uid() {
	local -a run=()
	if (($(id -u) == 0)); then
		command -v setpriv >/dev/null || skip "needs setpriv (util-linux) to run mqtx as another user"
		run=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	fi
	env "$@" "${run[@]}" "$MQTX" relay --loop --poll-interval 10m </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/dump.err" 3>&- &
	local pid=$!
	wait_until 20 bash -c "[[ \$(psql -qAtX '$MQTX_TEST_DATABASE_URL' -c 'SELECT count(*) FROM \"$T_SCHEMA\".mqtx_relays WHERE stopped_at IS NULL') == 1 ]]"
	stat -c %u "/proc/$pid/environ"
	kill -TERM "$pid"
	wait "$pid" || true
	psql_test "DELETE FROM mqtx_relays"
}

@test "signals: a running relay is not dumpable (no core dump, no ptrace, /proc/PID/environ root's); MQTX_DEBUG_DUMPABLE=1 keeps it dumpable" {
	local me=$(($(id -u) == 0 ? 65534 : $(id -u)))
	run dumpable_uid
	[[ $status == 0 && $output == 0 ]] || fail "owner of /proc/PID/environ: '$output' (status $status), expected 0 (root): the process is dumpable"
	run dumpable_uid MQTX_DEBUG_DUMPABLE=1
	[[ $status == 0 && $output == "$me" ]] || fail "with MQTX_DEBUG_DUMPABLE=1: owner '$output', expected $me"
}
