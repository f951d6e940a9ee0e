# bench/tail.sh: the tail-mode scenarios (issue 17), sourced by bench/run.sh
# after its helpers (scenario, psql_b, purge, want, say) and servers are up.
# The tail relays read bench_tail.mqtx_outbox, set up by `mqtx init` in tail
# mode; fill_tail (fill_rows) puts every bucket's checkpoint at the snapshot
# before its INSERT, so a run relays exactly the rows of the fill.
# Writes $STATE/extra.json: WAL per relayed message in either mode and the
# tail relay's --loop latency, for the table.

TAIL_ENV=(env MQTX_OUTBOX_SCHEMA=bench_tail MQTX_OUTBOX_MODE=tail)
psql_b -c "CREATE SCHEMA bench_tail"
"${TAIL_ENV[@]}" "$MQTX" -q init

# fill_tail N DEST [KEYS]: see fill_rows in bench/run.sh
fill_tail() { fill_rows bench_tail "$1" "$2" "${3:-0}"; }

prep_tail_classic() { purge bench.classic.q; fill_tail "$N" bench.classic; }
scenario tail_classic "$N" prep_tail_classic "${TAIL_ENV[@]}" "$MQTX" -q relay --batch 1000
prep_tail_kafka() { fill_tail "$N" bench.k; }
scenario tail_kafka "$N" prep_tail_kafka "${TAIL_ENV[@]}" MQTX_BROKER_URL="kafka://$KAFKA" "$MQTX" -q relay --batch 1000
prep_tail_keyed() { purge bench.classic.q; fill_tail "$KEYED_N" bench.classic 30; }
prep_tail_unkeyed() { purge bench.classic.q; fill_tail "$KEYED_N" bench.classic 0; }
scenario tail_keyed "$KEYED_N" prep_tail_keyed "${TAIL_ENV[@]}" "$MQTX" -q relay --batch 1000
scenario tail_unkeyed "$KEYED_N" prep_tail_unkeyed "${TAIL_ENV[@]}" "$MQTX" -q relay --batch 1000
if [[ ${BENCH_SKIP_BIG:-0} != 1 ]]; then
	prep_tail_backlog() { purge bench.backlog.q; fill_tail "$N" bench.backlog; }
	prep_tail_big() { purge bench.backlog.q; fill_tail 1000000 bench.backlog; }
	scenario tail_backlog_100k "$N" prep_tail_backlog "${TAIL_ENV[@]}" "$MQTX" -q relay --batch 1000
	SCENARIO_RUNS=${BENCH_BIG_RUNS:-$RUNS} scenario tail_backlog_1m 1000000 prep_tail_big "${TAIL_ENV[@]}" "$MQTX" -q relay --batch 1000
fi

# WAL per relayed message: pg_current_wal_lsn() before and after one relay
# run of N rows (the fill, its VACUUM and a CHECKPOINT are before), in each
# mode; nothing else writes meanwhile. The median of RUNS runs.
wal_per_msg() { # wal_per_msg status|tail: prints bytes per message
	local mode=$1 i a b out=()
	for ((i = 1; i <= RUNS; i++)); do
		purge bench.classic.q
		if [[ $mode == tail ]]; then fill_tail "$N" bench.classic; else fill_outbox "$N" bench.classic; fi
		psql_b -c "CHECKPOINT" >/dev/null
		a=$(psql_b -c "SELECT pg_current_wal_lsn()")
		if [[ $mode == tail ]]; then
			"${TAIL_ENV[@]}" "$MQTX" -q relay --batch 1000
		else
			env MQTX_OUTBOX_MODE=status "$MQTX" -q relay --batch 1000
		fi
		b=$(psql_b -c "SELECT pg_current_wal_lsn()")
		out+=("$(psql_b -c "SELECT round(pg_wal_lsn_diff('$b', '$a') / $N, 1)")")
	done
	printf '%s\n' "${out[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}
WAL_STATUS=null WAL_TAIL=null
if want wal; then
	WAL_STATUS=$(wal_per_msg status)
	WAL_TAIL=$(wal_per_msg tail)
	say "WAL per relayed message: status $WAL_STATUS B, tail $WAL_TAIL B"
fi

# --loop latency of the tail relay: 1,000 single-row transactions 5 ms
# apart; per row, from its commit (created_at = clock_timestamp() just before
# COMMIT) to the checkpoint that first covers it (a trigger logs each
# checkpoint write with clock_timestamp(); the relay writes it after the
# broker's ack): commit -> ack, recorded.
LAT_TAIL=null
if want loop_latency_tail; then
	fill_tail 0 bench.classic
	psql_b -c "CREATE TABLE bench_tail.cp_log (t timestamptz, bucket int, prev pg_snapshot, cur pg_snapshot, pos int8)" \
		-c "CREATE FUNCTION bench_tail.cp_log_fn() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN INSERT INTO bench_tail.cp_log VALUES (clock_timestamp(), NEW.bucket, NEW.prev_snapshot, NEW.cur_snapshot, NEW.pos_id); RETURN NULL; END \$\$" \
		-c "CREATE TRIGGER cp_log AFTER UPDATE ON bench_tail.mqtx_tail_checkpoints FOR EACH ROW EXECUTE FUNCTION bench_tail.cp_log_fn()" \
		-c "CREATE OR REPLACE PROCEDURE bench_tail.trickle(n int) LANGUAGE plpgsql AS \$\$
		BEGIN
			FOR i IN 1..n LOOP
				INSERT INTO bench_tail.mqtx_outbox(destination, routing_key, payload, created_at)
				VALUES ('bench.classic', 'rk', convert_to(repeat('x', $SIZE), 'UTF8'), clock_timestamp());
				COMMIT;
				PERFORM pg_sleep(0.005);
			END LOOP;
		END \$\$"
	purge bench.classic.q
	"${TAIL_ENV[@]}" "$MQTX" -q relay --loop --poll-interval 1s &
	LOOP_PID=$!
	sleep 1
	psql_b -c "CALL bench_tail.trickle(1000)"
	for _ in $(seq 1 100); do
		[[ $("$AMQP_TOOL" count "$AMQP" bench.classic.q) == 1000 ]] && break
		sleep 0.1
	done
	sleep 0.5
	kill -TERM "$LOOP_PID"
	wait "$LOOP_PID" || true
	LOOP_PID=
	# the bucket of a row without a key is id % buckets (lib/db/tail.c)
	LAT_TAIL=$(psql_b -c "SELECT json_build_object('p50', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1),
		'p99', round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1), 'rows', count(ms), 'rows_total', count(*))
		FROM (SELECT extract(epoch FROM (SELECT min(c.t) FROM bench_tail.cp_log c
			WHERE c.bucket = o.id % (SELECT count(*) FROM bench_tail.mqtx_tail_checkpoints)
			AND (pg_visible_in_snapshot(o.txid, c.prev)
			     OR (c.cur IS NOT NULL AND pg_visible_in_snapshot(o.txid, c.cur) AND o.id <= c.pos))) - o.created_at) * 1000 AS ms
		FROM bench_tail.mqtx_outbox o) s")
	say "tail loop latency (ms): $LAT_TAIL"
	psql_b -c "DROP TRIGGER cp_log ON bench_tail.mqtx_tail_checkpoints"
fi
printf '{"wal_per_msg": {"status": %s, "tail": %s}, "loop_latency_tail_ms": %s}\n' \
	"$WAL_STATUS" "$WAL_TAIL" "$LAT_TAIL" >"$STATE/extra.json"
