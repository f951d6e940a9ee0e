# shellcheck shell=bash
# shellcheck disable=SC2154 # $status, $output, $stderr are set by bats `run`
# test_helper.bash - shared helpers for the mqtx bats tests.
#
# Every bats file does `load test_helper`, and usually:
#
#   setup()    { mqtx_test_setup; }
#   teardown() { mqtx_test_teardown; }
#
# Environment (normally provided by tests/run.sh via tests/helpers/servers.sh):
#   MQTX_TEST_DATABASE_URL, MQTX_TEST_AMQP_URL   servers to test against
#   MQTX_TEST_PG_LOCAL, MQTX_TEST_AMQP_LOCAL     1 if private to this run
#   MQTX_TEST_PG_CTL, MQTX_TEST_RABBITMQCTL      wrappers (local servers only)
#   MQTX        binary under test (default: $BATS_TEST_DIRNAME/../mqtx)
#   AMQP_TOOL   default: $BATS_TEST_DIRNAME/helpers/amqp_tool
#   MQTX_TEST_CMD_TIMEOUT  seconds before run_mqtx kills a hung mqtx
#                          (default 120; 0 disables)
#
# Functions:
#   run_mqtx RC ARGS...      run "$MQTX" ARGS... (bats `run --separate-stderr`)
#                            and fail with a full report unless the exit code
#                            is RC ('*' = any, '!' = any non-zero). $status,
#                            $output, $stderr, $lines, $stderr_lines stay set.
#   psql_test [SQL...]       psql -qAtX -v ON_ERROR_STOP=1 against the test DB,
#                            one -c per argument (stdin if none). search_path
#                            is "$T_SCHEMA",public once mqtx_test_setup ran.
#   mqtx_test_setup          per-test schema/exchange/queue; exports T_SCHEMA,
#                            T_EXCHANGE, T_QUEUE, MQTX_DATABASE_URL,
#                            MQTX_BROKER_URL, MQTX_OUTBOX_SCHEMA
#   mqtx_test_teardown       drops/deletes what mqtx_test_setup created
#   drain_queue [ARGS...]    amqp_tool drain of $T_QUEUE (--expect N, ...)
#   queue_count [QUEUE]      number of ready messages in $T_QUEUE (or QUEUE)
#   publish_test RK BODY [OPTS...]  amqp_tool publish to $T_EXCHANGE
#   wait_until SECS CMD...   poll CMD every 0.1 s until it succeeds; fails
#                            after SECS seconds
#   insert_rows N [DEST] [OKEY_EXPR]  N pending outbox rows, payload {"n": i}
#   wait_relay_listening SECS  until a relay --loop is connected and LISTENs
#   mqtx_bg ARGS...          start "$MQTX" ARGS... in the background; sets
#                            MQTX_BG_PID, output in $MQTX_BG_OUT/$MQTX_BG_ERR
#   mqtx_bg_stop [SIGNAL [SECS]]  signal it (TERM), wait up to SECS (10),
#                            SIGKILL if needed; sets MQTX_BG_STATUS
#   skip_unless_local_pg / skip_unless_local_amqp

_mqtx_load_lib() {
	local name=$1 dir
	local -a dirs=()
	IFS=: read -r -a dirs <<<"${BATS_LIB_PATH:-}"
	for dir in "${dirs[@]}" /usr/lib/bats /usr/local/lib/bats \
		"$BATS_TEST_DIRNAME/libs"; do
		[[ -n $dir && -f $dir/$name/load.bash ]] || continue
		load "$dir/$name/load"
		return 0
	done
	printf 'test_helper: %s not found (looked in /usr/lib/bats, /usr/local/lib/bats, %s/libs); install the Debian package bats-%s\n' \
		"$name" "$BATS_TEST_DIRNAME" "${name#bats-}" >&2
	return 1
}

_mqtx_load_lib bats-support
_mqtx_load_lib bats-assert

# `run --separate-stderr` needs bats >= 1.5; declaring it silences BW02.
if declare -F bats_require_minimum_version >/dev/null; then
	bats_require_minimum_version 1.5.0
fi

: "${MQTX:=$BATS_TEST_DIRNAME/../mqtx}"
: "${AMQP_TOOL:=$BATS_TEST_DIRNAME/helpers/amqp_tool}"
: "${MQTX_TEST_CMD_TIMEOUT:=120}"
export MQTX AMQP_TOOL

# Fail (with a hint) unless the servers' environment is present.
require_test_env() {
	local v missing=()
	for v in MQTX_TEST_DATABASE_URL MQTX_TEST_AMQP_URL; do
		[[ -n ${!v:-} ]] || missing+=("$v")
	done
	if ((${#missing[@]})); then
		fail "${missing[*]} not set: run the suite with tests/run.sh (or source STATEDIR/env from tests/helpers/servers.sh start)" || return 1
	fi
	if [[ ! -x $AMQP_TOOL ]]; then
		fail "amqp_tool not built at $AMQP_TOOL (build it with: make, or cc -std=c11 -o tests/helpers/amqp_tool tests/helpers/amqp_tool.c \$(pkg-config --cflags --libs librabbitmq))" || return 1
	fi
}

# ------------------------------------------------------------------ mqtx runs

run_mqtx() {
	if (($# < 1)); then
		fail "usage: run_mqtx EXPECTED_RC ARGS..." || return 1
	fi
	local expected=$1
	shift
	if [[ ! -x $MQTX ]]; then
		fail "mqtx binary not found or not executable: $MQTX (build it first, or set MQTX)" || return 1
	fi
	local -a cmd=("$MQTX" "$@")
	if [[ $MQTX_TEST_CMD_TIMEOUT != 0 ]]; then
		cmd=(timeout --kill-after=5 "$MQTX_TEST_CMD_TIMEOUT" "${cmd[@]}")
	fi
	run --separate-stderr "${cmd[@]}"

	local ok=0
	case $expected in
	'*') ok=1 ;;
	'!') ((status != 0)) && ok=1 ;;
	*) [[ $status == "$expected" ]] && ok=1 ;;
	esac
	if ((ok)); then
		return 0
	fi

	local why="exit status $status, expected $expected"
	if [[ $MQTX_TEST_CMD_TIMEOUT != 0 ]] && ((status == 124 || status == 137)); then
		why+=" (probably killed after MQTX_TEST_CMD_TIMEOUT=${MQTX_TEST_CMD_TIMEOUT}s)"
	fi
	{
		echo "-- mqtx exited with an unexpected status --"
		printf 'command : %s\n' "$(_mqtx_quote "$MQTX" "$@")"
		printf 'status  : %s\n' "$why"
		echo "stdout  :"
		[[ -n $output ]] && printf '%s\n' "$output" | sed 's/^/  | /'
		echo "stderr  :"
		[[ -n ${stderr:-} ]] && printf '%s\n' "$stderr" | sed 's/^/  | /'
		echo "--"
	} >&2
	return 1
}

_mqtx_quote() {
	local out="" a
	for a in "$@"; do
		out+=" $(printf '%q' "$a")"
	done
	printf '%s' "${out# }"
}

# ------------------------------------------------------------------- database

psql_test() {
	[[ -n ${MQTX_TEST_DATABASE_URL:-} ]] ||
		fail "MQTX_TEST_DATABASE_URL not set: run the suite with tests/run.sh" || return 1
	local -a args=()
	local sql
	for sql in "$@"; do
		args+=(-c "$sql")
	done
	((${#args[@]})) || args=(-f -)
	local pgoptions=${PGOPTIONS:-}
	if [[ -n ${T_SCHEMA:-} ]]; then
		pgoptions+=" -c search_path=$T_SCHEMA,public"
	fi
	PGOPTIONS=$pgoptions PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} \
		psql "$MQTX_TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -qAtX "${args[@]}"
}

# ------------------------------------------------------------------ isolation

mqtx_test_setup() {
	require_test_env
	local suffix
	suffix=$(printf '%04x%04x' "$RANDOM" "$RANDOM")
	T_SCHEMA="t_${BATS_TEST_NUMBER:-0}_$$_${suffix}"
	T_SCHEMA=${T_SCHEMA,,}
	T_EXCHANGE="mqtx.test.${T_SCHEMA}"
	T_QUEUE="mqtx.test.${T_SCHEMA}.q"
	export T_SCHEMA T_EXCHANGE T_QUEUE

	psql_test "CREATE SCHEMA \"$T_SCHEMA\"" ||
		fail "mqtx_test_setup: cannot create schema $T_SCHEMA in $MQTX_TEST_DATABASE_URL" || return 1
	"$AMQP_TOOL" declare-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE" --type topic ||
		fail "mqtx_test_setup: cannot declare exchange $T_EXCHANGE" || return 1
	"$AMQP_TOOL" declare-queue "$MQTX_TEST_AMQP_URL" "$T_QUEUE" --bind "$T_EXCHANGE:#" ||
		fail "mqtx_test_setup: cannot declare queue $T_QUEUE" || return 1

	export MQTX_DATABASE_URL=$MQTX_TEST_DATABASE_URL
	export MQTX_BROKER_URL=$MQTX_TEST_AMQP_URL
	export MQTX_OUTBOX_SCHEMA=$T_SCHEMA
}

# Best effort: never fails the test, but says what it could not clean up.
# If a test left RabbitMQ's app or PostgreSQL stopped, local servers are
# brought back so that the next test starts from a working state.
mqtx_test_teardown() {
	if [[ -n ${MQTX_BG_PID:-} ]]; then
		mqtx_bg_stop KILL 5 || true
	fi
	[[ -n ${T_SCHEMA:-} ]] || return 0

	if ! _mqtx_psql_quiet "DROP SCHEMA IF EXISTS \"$T_SCHEMA\" CASCADE"; then
		if [[ ${MQTX_TEST_PG_LOCAL:-0} == 1 && -n ${MQTX_TEST_PG_CTL:-} ]] &&
			! "$MQTX_TEST_PG_CTL" status >/dev/null 2>&1; then
			echo "# teardown: restarting PostgreSQL left stopped by the test" >&3
			"$MQTX_TEST_PG_CTL" start -w >/dev/null 2>&1 || true
		fi
		_mqtx_psql_quiet "DROP SCHEMA IF EXISTS \"$T_SCHEMA\" CASCADE" ||
			echo "# teardown: could not drop schema $T_SCHEMA" >&3
	fi

	if ! "$AMQP_TOOL" delete-queue "$MQTX_TEST_AMQP_URL" "$T_QUEUE" 2>/dev/null; then
		if [[ ${MQTX_TEST_AMQP_LOCAL:-0} == 1 && -n ${MQTX_TEST_RABBITMQCTL:-} ]]; then
			echo "# teardown: starting the RabbitMQ app left stopped by the test" >&3
			"$MQTX_TEST_RABBITMQCTL" -q start_app >/dev/null 2>&1 || true
		fi
		"$AMQP_TOOL" delete-queue "$MQTX_TEST_AMQP_URL" "$T_QUEUE" ||
			echo "# teardown: could not delete queue $T_QUEUE" >&3
	fi
	"$AMQP_TOOL" delete-exchange "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE" ||
		echo "# teardown: could not delete exchange $T_EXCHANGE" >&3
	return 0
}

_mqtx_psql_quiet() {
	psql_test "$@" >/dev/null 2>&1
}

# ----------------------------------------------------------------- broker I/O

drain_queue() {
	"$AMQP_TOOL" drain "$MQTX_TEST_AMQP_URL" "$T_QUEUE" "$@"
}

queue_count() {
	"$AMQP_TOOL" count "$MQTX_TEST_AMQP_URL" "${1:-$T_QUEUE}"
}

publish_test() {
	(($# >= 2)) || { fail "usage: publish_test ROUTINGKEY BODY [amqp_tool publish options]" || return 1; }
	"$AMQP_TOOL" publish "$MQTX_TEST_AMQP_URL" "$T_EXCHANGE" "$@"
}

# ---------------------------------------------------------------- utilities

wait_until() {
	(($# >= 2)) || { fail "usage: wait_until SECONDS COMMAND..." || return 1; }
	local secs=$1 deadline int frac
	shift
	[[ $secs =~ ^([0-9]+)(\.([0-9]{1,6}))?[0-9]*$ ]] ||
		{ fail "wait_until: bad number of seconds '$secs'" || return 1; }
	int=${BASH_REMATCH[1]}
	frac=${BASH_REMATCH[3]}000000
	deadline=$((${EPOCHREALTIME/./} + 10#$int * 1000000 + 10#${frac:0:6}))
	until "$@"; do
		if ((${EPOCHREALTIME/./} >= deadline)); then
			echo "wait_until: '$*' still failing after ${secs}s" >&2
			return 1
		fi
		sleep 0.1
	done
}

# insert_rows N [DEST] [ORDERING_KEY_EXPR]: N pending rows in the test's
# outbox, routing key test.rk, JSON payloads {"n": 1..N}; DEST defaults to
# $T_DEST (tests/backend.bash), else $T_EXCHANGE.
insert_rows() {
	[[ ${1:-} =~ ^[0-9]+$ ]] || { fail "usage: insert_rows N [DEST] [ORDERING_KEY_EXPR]" || return 1; }
	local n=$1 dest=${2:-${T_DEST:-$T_EXCHANGE}} okey=${3:-NULL}
	psql_test "INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
		SELECT '$dest', 'test.rk', $okey, convert_to(json_build_object('n', g)::text, 'UTF8')
		FROM generate_series(1, $n) g"
}

# wait_relay_listening SECS: waits until a relay of the test's outbox is
# running and LISTENs for inserts: it writes its first heartbeat (a row in
# mqtx_relays without stopped_at) right after its LISTEN.
wait_relay_listening() {
	wait_until "$1" _relay_listening
}
_relay_listening() {
	[[ $(psql_test "SELECT count(*) FROM mqtx_relays WHERE stopped_at IS NULL" 2>/dev/null) =~ ^[1-9] ]]
}

# sent_count: how many rows of the test's outbox are marked sent.
sent_count() { psql_test "SELECT count(*) FROM mqtx_outbox WHERE status = 'sent'"; }

# wait_sent SECONDS OP N: waits until sent_count OP N, OP '==' or '>'
# (a database that is down meanwhile, e.g. restarting, counts as not yet).
wait_sent() {
	[[ $2 == '==' || $2 == '>' ]] || { fail "wait_sent: OP must be == or >, not '$2'" || return 1; }
	wait_until "$1" _sent_is "$2" "$3"
}
_sent_is() {
	local n
	n=$(sent_count 2>/dev/null) && [[ $n =~ ^[0-9]+$ ]] || return 1
	if [[ $1 == '==' ]]; then ((n == $2)); else ((n > $2)); fi
}

# Start mqtx in the background. fd 3 is closed so that bats does not wait
# for it; output goes to files in BATS_TEST_TMPDIR.
mqtx_bg() {
	[[ -x $MQTX ]] || { fail "mqtx binary not found or not executable: $MQTX" || return 1; }
	[[ -z ${MQTX_BG_PID:-} ]] || { fail "mqtx_bg: already running (pid $MQTX_BG_PID)" || return 1; }
	MQTX_BG_OUT=$BATS_TEST_TMPDIR/mqtx_bg.out
	MQTX_BG_ERR=$BATS_TEST_TMPDIR/mqtx_bg.err
	"$MQTX" "$@" </dev/null >"$MQTX_BG_OUT" 2>"$MQTX_BG_ERR" 3>&- &
	MQTX_BG_PID=$!
	MQTX_BG_STATUS=
	export MQTX_BG_OUT MQTX_BG_ERR MQTX_BG_STATUS
}

mqtx_bg_stop() {
	local sig=${1:-TERM} secs=${2:-10} i
	[[ -n ${MQTX_BG_PID:-} ]] || return 0
	kill -s "$sig" "$MQTX_BG_PID" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$MQTX_BG_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$MQTX_BG_PID" 2>/dev/null; then
		echo "mqtx_bg_stop: mqtx (pid $MQTX_BG_PID) ignored SIG$sig for ${secs}s; killing it" >&2
		kill -KILL "$MQTX_BG_PID" 2>/dev/null || true
	fi
	MQTX_BG_STATUS=0
	wait "$MQTX_BG_PID" || MQTX_BG_STATUS=$?
	MQTX_BG_PID=
	return 0
}

skip_unless_local_pg() {
	if [[ ${MQTX_TEST_PG_LOCAL:-0} != 1 || -z ${MQTX_TEST_PG_CTL:-} ]]; then
		skip "needs the private PostgreSQL started by tests/run.sh (MQTX_TEST_DATABASE_URL points at an external server)"
	fi
}

skip_unless_local_amqp() {
	if [[ ${MQTX_TEST_AMQP_LOCAL:-0} != 1 || -z ${MQTX_TEST_RABBITMQCTL:-} ]]; then
		skip "needs the private RabbitMQ started by tests/run.sh (MQTX_TEST_AMQP_URL points at an external broker)"
	fi
}

# stderr_has TEXT / stderr_lacks TEXT: substring checks on $stderr from run_mqtx.
stderr_has() {
	[[ ${stderr:-} == *"$1"* ]] && return 0
	printf -- '-- stderr does not contain: %s\nstderr:\n%s\n--\n' "$1" "${stderr:-}" >&2
	return 1
}

stderr_lacks() {
	[[ ${stderr:-} != *"$1"* ]] && return 0
	printf -- '-- stderr contains (and must not): %s\nstderr:\n%s\n--\n' "$1" "${stderr:-}" >&2
	return 1
}

# skip_unless_failpoints: the binary under test must be a test build.
skip_unless_failpoints() {
	[[ $("$MQTX" --version) == *"failpoints enabled"* ]] ||
		skip "needs a test build with failpoints (make mqtx-test; MQTX=./mqtx-test)"
}

# start_proxy TARGET_PORT: a fault-injecting TCP proxy in front of a server.
# Sets PROXY_PORT and PROXY_PID; proxy_cmd cut|stall|resume|refuse|accept.
start_proxy() {
	PROXY_CTL=$BATS_TEST_TMPDIR/proxy.ctl
	# exec: the coproc shell becomes the proxy, so stop_proxy kills the proxy itself
	coproc PROXY { exec "$BATS_TEST_DIRNAME/helpers/tcp_proxy" "$1" --control "$PROXY_CTL" 2>>"$BATS_TEST_TMPDIR/proxy.log" 3>&-; }
	PROXY_PID=$PROXY_PID
	read -r -t 5 PROXY_PORT <&"${PROXY[0]}" || { fail "tcp_proxy did not start" || return 1; }
	export PROXY_PORT PROXY_PID PROXY_CTL
}

proxy_cmd() {
	echo "$1" >"$PROXY_CTL"
	sleep 0.2
}

stop_proxy() {
	[[ -n ${PROXY_PID:-} ]] || return 0
	kill "$PROXY_PID" 2>/dev/null || true
	wait "$PROXY_PID" 2>/dev/null || true
	PROXY_PID=
}
