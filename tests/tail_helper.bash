# Helpers for the tail-mode suites (tail.bats, check_tail.bats): sessions
# that hold a transaction open while a test looks, for the out-of-order and
# "an open transaction holds back nobody" cases. Each session is bounded
# (timeout 60 s) and named by application_name, so teardown can end it.

# open_xact [N]: a background psql session (at most 60 s) that began a
# transaction and inserted one row (N rows) without committing; the first
# id in $XACT_ID. Its statements come from a FIFO on fd 4: commit_xact or
# rollback_xact ends it. Uses $XACT_APP (set it in setup) as its
# application_name.
open_xact() {
	local n=${1:-1} out=$BATS_TEST_TMPDIR/xact.out fifo=$BATS_TEST_TMPDIR/xact.fifo
	rm -f "$fifo" "$out"
	mkfifo "$fifo"
	PGAPPNAME=$XACT_APP timeout 60 psql "$MQTX_TEST_DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -f "$fifo" \
		>"$out" 2>&1 3>&- &
	XACT_PID=$!
	exec 4>"$fifo"
	printf '%s\n' "SET search_path = \"$T_SCHEMA\";" "BEGIN;" \
		"WITH i AS (INSERT INTO mqtx_outbox(destination, routing_key, payload)
			SELECT '$T_DEST', 'test.rk', convert_to(json_build_object('open', g)::text, 'UTF8')
			FROM generate_series(1, $n) g RETURNING id) SELECT min(id) FROM i;" >&4
	wait_until 10 test -s "$out"
	XACT_ID=$(head -1 "$out")
	[[ $XACT_ID =~ ^[0-9]+$ ]] || fail "the open transaction did not insert: $(cat "$out")"
}

_end_xact() {
	printf '%s\n' "$1;" >&4
	exec 4>&-
	wait "$XACT_PID" || fail "the open transaction's psql failed: $(cat "$BATS_TEST_TMPDIR/xact.out")"
	XACT_PID=
}
commit_xact() { _end_xact COMMIT; }
rollback_xact() { _end_xact ROLLBACK; }

# end_xacts: for teardown: ends a session open_xact left open.
end_xacts() {
	exec 4>&- 2>/dev/null || true
	psql_test "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$XACT_APP'" \
		>/dev/null 2>&1 || true
	if [[ -n ${XACT_PID:-} ]]; then
		wait "$XACT_PID" 2>/dev/null || true
	fi
	XACT_PID=
}
