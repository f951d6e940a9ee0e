#!/usr/bin/env bash
# make bench: every scenario against a reference measured in the same run,
# on private servers with durable settings (fsync on). Prints one table and
# writes bench/results.json. Not part of make check.
#   BENCH_RUNS (default 3): runs per scenario; the median is reported
#   BENCH_N (default 100000): rows per relay/publisher scenario
#   BENCH_NAIVE_RUNS (default 1): runs of the slow psql+amqp-publish loop
#     (2,000 rows, about 7 minutes a run; its ratio is 3 times the goal)
#   BENCH_SKIP_BIG=1: skip the 1,000,000-row backlog, check and audit scenarios
#   BENCH_BIG_RUNS (default BENCH_RUNS): runs of the 1,000,000-row backlog
#     and of the 10,000,000-delivery audit
#   BENCH_RELAY_BATCH (default 1000): --batch of the relay_classic scenario
#   BENCH_KEYED_N (default 50000): rows of status_keyed/status_unkeyed and
#     tail_keyed/tail_unkeyed
#   tail mode (bench/tail.sh): tail_classic, tail_kafka, tail_keyed,
#     tail_unkeyed, tail_backlog_100k, tail_backlog_1m; "wal" (WAL per
#     relayed message, both modes) and "loop_latency_tail" for BENCH_ONLY
#   BENCH_ONLY="name ...": run only these scenarios (names as in the table,
#     e.g. "broker_limit_classic relay_classic"; loop_latency for --loop;
#     steady_delete and steady_partition for the steady state)
#   BENCH_SKIP_STEADY=1: skip the steady-state scenarios (about 11 minutes);
#   BENCH_STEADY_SECS (default 300), BENCH_STEADY_RATE (500 rows/s),
#     BENCH_STEADY_RETENTION, BENCH_STEADY_FIRST: see bench/steady.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
RUNS=${BENCH_RUNS:-3}
N=${BENCH_N:-100000}
SIZE=200
MQTX=$ROOT/mqtx
AMQP_TOOL=$ROOT/tests/helpers/amqp_tool
PUB=$ROOT/bench/bin/amqp_publisher
CLAIM=$ROOT/bench/bin/pg_claim
STATE=$(mktemp -d /tmp/mqtx-bench.XXXXXX)
RESULTS=$ROOT/bench/results.json
[[ -z ${BENCH_ONLY:-} ]] || RESULTS=$ROOT/bench/results.partial.json # a subset never replaces the full table
ROWS_FILE=$STATE/rows.tsv

cleanup() {
	[[ -n ${LOOP_PID:-} ]] && kill "$LOOP_PID" 2>/dev/null
	"$ROOT/tests/helpers/kafka.sh" stop "$STATE" >/dev/null 2>&1 || true
	"$ROOT/tests/helpers/servers.sh" stop "$STATE" >/dev/null 2>&1 || true
	rm -rf "$STATE"
}
trap cleanup EXIT INT TERM
say() { printf 'bench: %s\n' "$*" >&2; }

say "starting private PostgreSQL and RabbitMQ (durable settings) in $STATE"
unset MQTX_TEST_DATABASE_URL MQTX_TEST_AMQP_URL MQTX_TEST_KAFKA_BROKERS
MQTX_BENCH_DURABLE=1 "$ROOT/tests/helpers/servers.sh" start "$STATE" 2>/dev/null
"$ROOT/tests/helpers/kafka.sh" start "$STATE" 2>/dev/null
# shellcheck source=/dev/null
. "$STATE/env"
DB=$MQTX_TEST_DATABASE_URL
AMQP=$MQTX_TEST_AMQP_URL
export DB AMQP
export MQTX_DATABASE_URL=$DB MQTX_BROKER_URL=$AMQP MQTX_OUTBOX_SCHEMA=bench
psql_b() { psql "$DB" -qAtX -v ON_ERROR_STOP=1 "$@"; }
psql_b -c "CREATE SCHEMA bench"
"$MQTX" -q init
"$AMQP_TOOL" declare-exchange "$AMQP" bench.classic --type direct
"$AMQP_TOOL" declare-queue "$AMQP" bench.classic.q --bind bench.classic:rk
# The backlog scenarios go to a queue that keeps at most 10,000 messages
# (dropping the oldest): the broker then holds the same few messages, and
# does the same work per message (store, then drop), whether the outbox
# had 100,000 or 1,000,000 rows. So relay_backlog_1m against
# relay_backlog_100k measures what a large outbox costs mqtx, not a classic
# queue paging a million messages to disk or the price of dropping.
"$AMQP_TOOL" declare-exchange "$AMQP" bench.backlog --type direct
"$AMQP_TOOL" declare-queue "$AMQP" bench.backlog.q --max-length 10000 --bind bench.backlog:rk
"$AMQP_TOOL" declare-exchange "$AMQP" bench.quorum --type direct
"$AMQP_TOOL" declare-queue "$AMQP" bench.quorum.q --quorum --bind bench.quorum:rk

# fill_rows SCHEMA N DEST KEYS: SCHEMA's outbox holds exactly N pending rows
# to DEST with SIZE-byte payloads, over KEYS ordering keys ('k0', 'k1', ...;
# none if 0). A tail-mode outbox (bench_tail, bench/tail.sh) also gets every
# bucket's checkpoint at the snapshot before the INSERT and no parked rows:
# a run then relays exactly these rows, as one interval.
fill_rows() {
	local k=NULL tail=()
	(($4 == 0)) || k="'k' || (g % $4)"
	[[ $1 != bench_tail ]] || tail=(-c "DELETE FROM $1.mqtx_tail_parked"
		-c "UPDATE $1.mqtx_tail_checkpoints SET prev_snapshot = pg_current_snapshot(), cur_snapshot = NULL, pos_id = NULL")
	psql_b -c "TRUNCATE $1.mqtx_outbox RESTART IDENTITY" "${tail[@]}" \
		-c "INSERT INTO $1.mqtx_outbox(destination, routing_key, ordering_key, payload)
		    SELECT '$3', 'rk', $k, convert_to(repeat('x', $SIZE), 'UTF8') FROM generate_series(1, $2) g" \
		-c "VACUUM ANALYZE $1.mqtx_outbox"
}
# fill_outbox N EXCHANGE: exactly N pending rows with SIZE-byte payloads
fill_outbox() { fill_rows bench "$1" "$2" 0; }

purge() { "$AMQP_TOOL" purge "$AMQP" "$1" >/dev/null; }

# timed CMD...: runs CMD, appends "seconds peak_rss_kib" to $ROWS_FILE.last
timed() {
	/usr/bin/time -f '%e %M' -o "$STATE/time" "$@" >"$STATE/out" 2>"$STATE/err" || {
		say "failed: $*"
		cat "$STATE/err" >&2
		return 1
	}
	cat "$STATE/time"
}

# scenario NAME MESSAGES PREP_FN CMD...: RUNS runs, records every run
# want NAME: is scenario NAME selected (BENCH_ONLY)?
want() { [[ -z ${BENCH_ONLY:-} || " $BENCH_ONLY " == *" $1 "* ]]; }

scenario() {
	local name=$1 msgs=$2 prep=$3 runs=${SCENARIO_RUNS:-$RUNS}
	shift 3
	want "$name" || return 0
	local i
	for ((i = 1; i <= runs; i++)); do
		$prep
		local t
		if ! t=$(timed "$@"); then
			say "$name run $i failed; scenario skipped"
			return 0
		fi
		printf '%s\t%s\t%s\n' "$name" "$msgs" "$t" >>"$ROWS_FILE"
		say "$name run $i: $t (seconds, peak RSS KiB)"
	done
}

prep_none() { :; }
prep_classic_pub() { purge bench.classic.q; }
prep_quorum_pub() { purge bench.quorum.q; }
prep_classic_relay() { purge bench.classic.q; fill_outbox "$N" bench.classic; }
prep_quorum_relay() { purge bench.quorum.q; fill_outbox "$N" bench.quorum; }
prep_db() { fill_outbox "$N" bench.classic; }

: >"$ROWS_FILE"
scenario broker_limit_classic "$N" prep_classic_pub "$PUB" "$AMQP" bench.classic rk "$N" "$SIZE" confirm 1024
# The same publisher sending the messages mqtx sends (mandatory, so that an
# unroutable message is not confirmed and lost; the idempotency key as
# message_id and header; the outbox id header): the broker's limit for
# these messages. The targets are judged against these; the bare
# reference is shown next to them.
scenario broker_limit_classic_relaymsg "$N" prep_classic_pub "$PUB" "$AMQP" bench.classic rk "$N" "$SIZE" confirm 1024 mqtx
scenario broker_limit_classic_txpubmsg "$N" prep_classic_pub "$PUB" "$AMQP" bench.classic rk "$N" "$SIZE" confirm 1024 txpub
scenario db_limit "$N" prep_db "$CLAIM" "$DB" bench 1000
scenario relay_classic "$N" prep_classic_relay "$MQTX" -q relay --batch "${BENCH_RELAY_BATCH:-1000}"
# Ordering keys in status mode (issue 17): 50,000 rows over 30 ordering keys
# (a few hot keys, e.g. one per tenant) against the same rows without keys,
# one relay each; the per-key "no earlier pending row" look is the difference.
KEYED_N=${BENCH_KEYED_N:-50000}
fill_keyed() { fill_rows bench "$KEYED_N" bench.classic "$1"; } # fill_keyed KEYS: over KEYS ordering keys, none if 0
prep_status_keyed() { purge bench.classic.q; fill_keyed 30; }
prep_status_unkeyed() { purge bench.classic.q; fill_keyed 0; }
scenario status_keyed "$KEYED_N" prep_status_keyed env MQTX_OUTBOX_MODE=status "$MQTX" -q relay --batch 1000
scenario status_unkeyed "$KEYED_N" prep_status_unkeyed env MQTX_OUTBOX_MODE=status "$MQTX" -q relay --batch 1000
scenario broker_limit_quorum "$N" prep_quorum_pub "$PUB" "$AMQP" bench.quorum rk "$N" "$SIZE" confirm 1024
scenario broker_limit_quorum_relaymsg "$N" prep_quorum_pub "$PUB" "$AMQP" bench.quorum rk "$N" "$SIZE" confirm 1024 mqtx
scenario relay_quorum "$N" prep_quorum_relay "$MQTX" -q relay --batch 1000

# txpub from stdin: async confirms vs the broker limit; tx every 1,000 vs
# the raw publisher committing every 1,000; amqp-publish per message.
yes "$(head -c "$SIZE" /dev/zero | tr '\0' x)" | head -n "$N" >"$STATE/lines.in" || true
txpub_confirm() { "$MQTX" -q txpub -d bench.classic -r rk --mode confirm --confirm async <"$STATE/lines.in" >/dev/null; }
txpub_tx() { "$MQTX" -q txpub -d bench.classic -r rk --mode tx --batch 1000 <"$STATE/lines.in" >/dev/null; }
export -f txpub_confirm txpub_tx
export MQTX STATE
scenario txpub_confirm_async "$N" prep_classic_pub bash -c txpub_confirm
scenario broker_limit_tx_1000 "$N" prep_classic_pub "$PUB" "$AMQP" bench.classic rk "$N" "$SIZE" tx 1000
scenario broker_limit_tx_1000_txpubmsg "$N" prep_classic_pub "$PUB" "$AMQP" bench.classic rk "$N" "$SIZE" tx 1000 txpub
scenario txpub_tx_1000 "$N" prep_classic_pub bash -c txpub_tx
AP_N=${BENCH_AMQP_PUBLISH_N:-500}
amqp_publish_loop() {
	local host port
	host=$(sed -E 's|amqp://[^@]*@([^:/]+):([0-9]+).*|\1|' <<<"$AMQP")
	port=$(sed -E 's|amqp://[^@]*@([^:/]+):([0-9]+).*|\2|' <<<"$AMQP")
	head -n "$AP_N" "$STATE/lines.in" | while IFS= read -r line; do
		amqp-publish --server="$host" --port="$port" --username=guest --password=guest -e bench.classic -r rk -p -b "$line"
	done
}
export -f amqp_publish_loop
export AP_N
scenario amqp_publish_per_message "$AP_N" prep_classic_pub bash -c amqp_publish_loop

# Kafka (a real Apache Kafka broker, one KRaft node, its log on disk:
# tests/helpers/kafka.sh): kcat -P vs mqtx relay and txpub, same messages.
KAFKA=$MQTX_TEST_KAFKA_BROKERS
"$ROOT/tests/helpers/kafka_tool" create-topic "$KAFKA" bench.k 3 >/dev/null
head -c "$SIZE" /dev/zero | tr '\0' x >"$STATE/line"
yes "$(cat "$STATE/line")" | head -n "$N" >"$STATE/kcat.in" || true
# A fresh JVM runs its first 100,000 messages several times slower (the JIT
# warms up): one untimed kcat run before anything is measured
if want kcat_produce || want relay_kafka || want txpub_kafka_tx || want tail_kafka; then
	kcat -P -b "$KAFKA" -t bench.k -X enable.idempotence=true -X acks=all -X linger.ms=5 -l "$STATE/kcat.in"
fi
scenario kcat_produce "$N" prep_none kcat -P -b "$KAFKA" -t bench.k -X enable.idempotence=true -X acks=all \
	-X linger.ms=5 -l "$STATE/kcat.in"
prep_kafka_relay() { fill_outbox "$N" bench.k; }
scenario relay_kafka "$N" prep_kafka_relay env MQTX_BROKER_URL="kafka://$KAFKA" "$MQTX" -q relay --batch 1000
# txpub from stdin in Kafka transactions of 1,000 messages (kafka-tx)
txpub_kafka_tx() { MQTX_BROKER_URL="kafka://$KAFKA" "$MQTX" -q txpub -d bench.k -r rk --mode kafka-tx --batch 1000 <"$STATE/lines.in" >/dev/null; }
export -f txpub_kafka_tx
export KAFKA
scenario txpub_kafka_tx "$N" prep_none bash -c txpub_kafka_tx

# Tail mode (outbox.mode tail): the same relays without a write per row.
# shellcheck source=bench/tail.sh
. "$ROOT/bench/tail.sh"

# What a user would otherwise write: psql + amqp-publish + psql per row.
naive_loop() {
	local host port
	host=$(sed -E 's|amqp://[^@]*@([^:/]+):([0-9]+).*|\1|' <<<"$AMQP")
	port=$(sed -E 's|amqp://[^@]*@([^:/]+):([0-9]+).*|\2|' <<<"$AMQP")
	local id payload
	while read -r id; do
		payload=$(psql "$DB" -qAtX -c "SELECT convert_from(payload, 'UTF8') FROM bench.mqtx_outbox WHERE id = $id")
		amqp-publish --server="$host" --port="$port" --username=guest --password=guest -e bench.classic -r rk -p -b "$payload"
		psql "$DB" -qAtX -c "UPDATE bench.mqtx_outbox SET status = 'sent', sent_at = now() WHERE id = $id"
	done < <(psql "$DB" -qAtX -c "SELECT id FROM bench.mqtx_outbox WHERE status = 'pending' ORDER BY id")
}
export -f naive_loop
export DB AMQP
NAIVE_ROWS=${BENCH_NAIVE_ROWS:-2000}
prep_naive() { purge bench.classic.q; fill_outbox "$NAIVE_ROWS" bench.classic; }
SCENARIO_RUNS=${BENCH_NAIVE_RUNS:-1} scenario naive_shell_loop "$NAIVE_ROWS" prep_naive bash -c naive_loop

if [[ ${BENCH_SKIP_BIG:-0} != 1 ]]; then
	prep_backlog() { purge bench.backlog.q; fill_outbox "$N" bench.backlog; }
	prep_big() { purge bench.backlog.q; fill_outbox 1000000 bench.backlog; }
	scenario relay_backlog_100k "$N" prep_backlog "$MQTX" -q relay --batch 1000
	SCENARIO_RUNS=${BENCH_BIG_RUNS:-$RUNS} scenario relay_backlog_1m 1000000 prep_big "$MQTX" -q relay --batch 1000
	# the database side alone at that size: the reference claim+mark loop on 1,000,000 rows
	prep_db_big() { fill_outbox 1000000 bench.backlog; }
	SCENARIO_RUNS=${BENCH_BIG_RUNS:-$RUNS} scenario db_limit_1m 1000000 prep_db_big "$CLAIM" "$DB" bench 1000
fi

# mqtx check on a large outbox: 10,000,000 rows, of which 1,000 pending.
if [[ ${BENCH_SKIP_BIG:-0} != 1 ]] && want check_10m; then
	CHECK_ROWS=${BENCH_CHECK_ROWS:-10000000}
	say "filling bench_check.mqtx_outbox with $CHECK_ROWS rows (once)"
	psql_b -c "CREATE SCHEMA bench_check"
	MQTX_OUTBOX_SCHEMA=bench_check "$MQTX" -q init
	psql_b -c "INSERT INTO bench_check.mqtx_outbox(destination, routing_key, ordering_key, payload, status, attempts, sent_at, created_at)
		SELECT 'bench.classic', 'rk', 'k' || (g % 1000), '\x00', 'sent', 1, now() - (g || ' ms')::interval, now() - (g || ' ms')::interval
		FROM generate_series(1, $CHECK_ROWS - 1000) g" \
		-c "INSERT INTO bench_check.mqtx_outbox(destination, routing_key, ordering_key, payload)
		SELECT 'bench.classic', 'rk', 'k' || (g % 100), '\x00' FROM generate_series(1, 1000) g" \
		-c "VACUUM ANALYZE bench_check.mqtx_outbox"
	check_cmd() { MQTX_OUTBOX_SCHEMA=bench_check "$MQTX" check --format json >/dev/null || true; }
	export -f check_cmd
	export MQTX
	scenario check_10m 1 prep_none bash -c check_cmd
fi

# mqtx dedupe-audit of 10,000,000 deliveries (JSONL on stdin) against 10,000,000 sent rows.
if [[ ${BENCH_SKIP_BIG:-0} != 1 ]] && want audit_10m; then
	AUDIT_N=${BENCH_AUDIT_ROWS:-10000000}
	for ((i = 1; i <= ${BENCH_BIG_RUNS:-$RUNS}; i++)); do
		if MQTX=$MQTX "$ROOT/bench/audit.sh" "$AUDIT_N" >"$STATE/audit.time"; then
			printf 'audit_10m\t%s\t%s\n' "$AUDIT_N" "$(cat "$STATE/audit.time")" >>"$ROWS_FILE"
			say "audit_10m run $i: $(cat "$STATE/audit.time") (seconds, peak RSS KiB)"
		else
			say "audit_10m run $i failed (see above)"
			break
		fi
	done
fi

# --loop latency: 1,000 single-row transactions 5 ms apart; commit -> recorded ack.
LAT="- - 0"
if want loop_latency; then
psql_b -c "TRUNCATE bench.mqtx_outbox RESTART IDENTITY" -c "CREATE OR REPLACE PROCEDURE bench.trickle(n int) LANGUAGE plpgsql AS \$\$
BEGIN
	FOR i IN 1..n LOOP
		INSERT INTO bench.mqtx_outbox(destination, routing_key, payload) VALUES ('bench.classic', 'rk', convert_to(repeat('x', $SIZE), 'UTF8'));
		COMMIT;
		PERFORM pg_sleep(0.005);
	END LOOP;
END \$\$"
purge bench.classic.q
"$MQTX" -q relay --loop --poll-interval 1s &
LOOP_PID=$!
sleep 1
psql_b -c "CALL bench.trickle(1000)"
for _ in $(seq 1 100); do
	[[ $(psql_b -c "SELECT count(*) FROM bench.mqtx_outbox WHERE status = 'sent'") == 1000 ]] && break
	sleep 0.1
done
kill -TERM "$LOOP_PID"
wait "$LOOP_PID" || true
LOOP_PID=
LAT=$(psql_b -F ' ' -c "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1),
	round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1), count(*)
	FROM (SELECT extract(epoch FROM sent_at - created_at) * 1000 AS ms FROM bench.mqtx_outbox WHERE status = 'sent') s")
say "loop latency p50/p99 ms, rows: $LAT"
fi

# Steady state (issue 16): writers at a fixed rate, one relay --loop, a short
# retention; does the outbox stay small? See bench/steady.sh (durations, rate,
# retention, and why 5 minutes). BENCH_SKIP_STEADY=1 skips both.
STEADY_FILE=$STATE/steady.jsonl
: >"$STEADY_FILE"
if [[ ${BENCH_SKIP_STEADY:-0} != 1 ]] && { want steady_delete || want steady_partition; }; then
	# on a quiet server: the big tables of the scenarios above are done with,
	# and autovacuum on them would compete with the outbox's
	PGOPTIONS="-c client_min_messages=warning" psql_b -c "DROP SCHEMA IF EXISTS bench_check, bench_audit CASCADE" -c "TRUNCATE bench.mqtx_outbox" \
		-c "CHECKPOINT"
	for s in steady_delete steady_partition; do
		want "$s" || continue
		rc=0
		MQTX=$MQTX "$ROOT/bench/steady.sh" "$s" "$STATE/$s" >"$STATE/$s.json" || rc=$?
		case $rc in
		0)
			cat "$STATE/$s.json" >>"$STEADY_FILE"
			# the scenario table's row: relayed messages over the writers' seconds, the relay's peak RSS
			python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print("%s\t%d\t%d %d" % (d["scenario"], d["relayed"], d["seconds"], d["relay_peak_rss_kib"]))' \
				"$STATE/$s.json" >>"$ROWS_FILE"
			;;
		3) printf '{"scenario": "%s", "skipped": "mqtx init has no --partition-by yet"}\n' "$s" >>"$STEADY_FILE" ;;
		*) say "$s failed (status $rc, see above); scenario skipped" ;;
		esac
	done
fi

# ---- the table ----
python3 - "$ROWS_FILE" "$RESULTS" "$LAT" "$(nproc)" "$(uname -srm)" "$STEADY_FILE" "$STATE/extra.json" <<'PY'
import json, statistics, sys
rows_file, out, lat, cores, machine, steady_file, extra_file = sys.argv[1:8]
extra = json.load(open(extra_file))
steady = [json.loads(l) for l in open(steady_file) if l.strip()]
runs = {}
for line in open(rows_file):
    name, msgs, t = line.rstrip("\n").split("\t")
    secs, rss = t.split()
    runs.setdefault(name, []).append((int(msgs), float(secs), int(rss)))

def stat(name):
    r = runs.get(name)
    if not r:
        return None
    msgs = r[0][0]
    secs = sorted(x[1] for x in r)
    rates = sorted(msgs / max(s, 1e-9) for s in secs)
    return {"messages": msgs, "runs": len(r), "seconds": statistics.median(secs),
            "msgs_per_s": statistics.median(rates), "msgs_per_s_min": rates[0], "msgs_per_s_max": rates[-1],
            "peak_rss_kib": max(x[2] for x in r)}

res = {name: stat(name) for name in runs}
def ratio(a, b):
    return None if not res.get(a) or not res.get(b) else res[a]["msgs_per_s"] / res[b]["msgs_per_s"]

checks = []
partial = out.endswith("results.partial.json")
def add(scn, ref_desc, r, target, ok):
    if partial and r is None:
        return  # BENCH_ONLY: a row whose scenarios did not run says nothing
    # a "(reported)" row has no goal: it is shown for comparison, met is null
    checks.append({"scenario": scn, "reference": ref_desc, "ratio": r, "target": target,
                   "met": None if target == "(reported)" else ok})

def min_ref(a, b):
    ra, rb = res.get(a), res.get(b)
    if not ra or not rb:
        return None
    return min(ra["msgs_per_s"], rb["msgs_per_s"])

for q in ("classic", "quorum"):
    ref = min_ref(f"broker_limit_{q}_relaymsg", "db_limit")
    r = res[f"relay_{q}"]["msgs_per_s"] / ref if ref and res.get(f"relay_{q}") else None
    if res.get(f"relay_{q}"):
        add(f"relay_{q}", f"min(broker_limit_{q}_relaymsg, db_limit)", r, ">= 0.8", r is not None and r >= 0.8)
    ref = min_ref(f"broker_limit_{q}", "db_limit")
    r = res[f"relay_{q}"]["msgs_per_s"] / ref if ref and res.get(f"relay_{q}") else None
    if r is None and not res.get(f"relay_{q}"):
        continue
    add(f"relay_{q}", f"min(broker_limit_{q} (bare), db_limit)", r, "(reported)", r is not None)
r = ratio("txpub_confirm_async", "broker_limit_classic_txpubmsg")
add("txpub_confirm_async", "broker_limit_classic_txpubmsg", r, ">= 0.9", r is not None and r >= 0.9)
r = ratio("txpub_confirm_async", "broker_limit_classic")
add("txpub_confirm_async", "broker_limit_classic (bare)", r, "(reported)", r is not None)
r = ratio("txpub_tx_1000", "broker_limit_tx_1000_txpubmsg")
add("txpub_tx_1000", "broker_limit_tx_1000_txpubmsg", r, ">= 0.9", r is not None and r >= 0.9)
r = ratio("txpub_tx_1000", "broker_limit_tx_1000")
add("txpub_tx_1000", "broker_limit_tx_1000 (bare)", r, "(reported)", r is not None)
r = ratio("txpub_confirm_async", "amqp_publish_per_message")
add("txpub_confirm_async", "amqp-publish, one process per message", r, "(reported)", r is not None)
ref = min_ref("kcat_produce", "db_limit")
r = res["relay_kafka"]["msgs_per_s"] / ref if ref and res.get("relay_kafka") else None
if res.get("relay_kafka"):
    add("relay_kafka", "min(kcat_produce, db_limit)", r, ">= 0.8", r is not None and r >= 0.8)
r = ratio("txpub_kafka_tx", "kcat_produce")
add("txpub_kafka_tx", "kcat_produce (same broker)", r, "(reported)", r is not None)
r = ratio("status_keyed", "status_unkeyed")
add("status_keyed", "status_unkeyed (no keys, same rows)", r, ">= 0.8", r is not None and r >= 0.8)
# tail mode (issue 17)
r = ratio("tail_classic", "broker_limit_classic_relaymsg")
add("tail_classic", "broker_limit_classic_relaymsg", r, ">= 0.9", r is not None and r >= 0.9)
r = ratio("tail_classic", "relay_classic")
add("tail_classic", "relay_classic (status mode)", r, "> 1", r is not None and r > 1)
r = ratio("tail_classic", "broker_limit_classic")
add("tail_classic", "broker_limit_classic (bare)", r, "(reported)", r is not None)
r = ratio("tail_kafka", "relay_kafka")
add("tail_kafka", "relay_kafka (status mode)", r, ">= 3", r is not None and r >= 3)
r = ratio("tail_kafka", "kcat_produce")
add("tail_kafka", "kcat_produce", r, ">= 0.5", r is not None and r >= 0.5)
r = ratio("tail_keyed", "tail_unkeyed")
add("tail_keyed", "tail_unkeyed (no keys, same rows)", r, ">= 0.8", r is not None and r >= 0.8)
w = extra.get("wal_per_msg") or {}
if w.get("status") and w.get("tail") is not None:
    add("wal_tail", "WAL B/msg tail %.1f vs status %.1f" % (w["tail"], w["status"]), w["tail"] / w["status"],
        "<= 0.1", w["tail"] / w["status"] <= 0.1)
if res.get("tail_backlog_1m"):
    r = ratio("tail_backlog_1m", "tail_backlog_100k")
    add("tail_backlog_1m", "tail_backlog_100k (msgs/s)", r, "within 10%", r is not None and r >= 0.9)
    rss = res["tail_backlog_1m"]["peak_rss_kib"]
    add("tail_backlog_1m", "peak RSS", rss / 1024, "< 32 MiB", rss < 32 * 1024)
lt = extra.get("loop_latency_tail_ms")
if lt and lt.get("p99") is not None:
    add("loop_latency_tail", "p99 ms (p50 %s ms, %d of %d rows)" % (lt["p50"], lt["rows"], lt["rows_total"]),
        float(lt["p99"]), "< 50 ms", float(lt["p99"]) < 50 and lt["rows"] == lt["rows_total"])
r = ratio("relay_classic", "naive_shell_loop")
add("relay_classic", "naive_shell_loop", r, ">= 500", r is not None and r >= 500)
if res.get("relay_backlog_1m"):
    r = ratio("relay_backlog_1m", "relay_backlog_100k")
    rss = res["relay_backlog_1m"]["peak_rss_kib"]
    add("relay_backlog_1m", "relay_backlog_100k (msgs/s)", r, "within 10%", r is not None and r >= 0.9)
    r = ratio("relay_backlog_1m", "relay_classic")
    add("relay_backlog_1m", "relay_classic (other queue)", r, "(reported)", r is not None)
if res.get("db_limit_1m"):
    r = ratio("db_limit_1m", "db_limit")
    add("db_limit_1m", "db_limit (100,000 rows)", r, "(reported)", r is not None)
    add("relay_backlog_1m", "peak RSS", rss / 1024, "< 32 MiB", rss < 32 * 1024)
if res.get("check_10m"):
    secs = res["check_10m"]["seconds"]
    add("check_10m", "seconds (10M rows, 1,000 pending)", secs, "< 0.5 s", secs < 0.5)
if res.get("audit_10m"):
    secs = res["audit_10m"]["seconds"]
    rss = res["audit_10m"]["peak_rss_kib"]
    add("audit_10m", "seconds (10M deliveries)", secs, "< 60 s", secs < 60)
    add("audit_10m", "peak RSS", rss / 1024, "< 512 MiB", rss < 512 * 1024)
p50, p99, n = lat.split()
if p99 != "-":
    add("loop_latency", "p99 ms (p50 %s ms, %s rows)" % (p50, n), float(p99), "< 50 ms", float(p99) < 50)
# steady state: size at the end against the size once retention has kicked
# in (the goal; the first sample after the first minute at which retention
# had deleted and autovacuum had run twice since: see bench/steady.sh), the
# size at exactly the first minute and at half time (shown), dead tuples
# (shown: autovacuum makes them a saw tooth, an instant's count says
# little), and the backlog at the end (met only if the relay also relayed
# every row without a failure and stopped cleanly)
for d in steady:
    if "skipped" in d:
        continue
    f, e, m = d["first"], d["end"], d["minute"]
    r = e["size_bytes"] / f["size_bytes"] if f["size_bytes"] else None
    if d["scenario"] == "steady_partition" and not d["partitions_dropped"]:
        # rows of an unexpired partition wait for its DROP (an hour + retention):
        # the goal is on the bytes per row held, i.e. no bloat (see bench/steady.sh)
        add(d["scenario"], "size end/%ds (%.1f->%.1f MiB, kept to DROP)" % (
            round(f["t"]), f["size_bytes"] / 2**20, e["size_bytes"] / 2**20), r, "(reported)", r is not None)
        bf = f["size_bytes"] / max(f["rows"], 1)
        be = e["size_bytes"] / max(e["rows"], 1)
        add(d["scenario"], "bytes per row end/%ds (%.0f -> %.0f B; %d rows)" % (round(f["t"]), bf, be, e["rows"]),
            be / bf, "<= 1.5", be / bf <= 1.5)
    else:
        add(d["scenario"], "size end/%ds (%.1f -> %.1f MiB)" % (round(f["t"]), f["size_bytes"] / 2**20,
            e["size_bytes"] / 2**20), r, "<= 1.5", r is not None and r <= 1.5 and d["deleted"] > 0)
    r = e["size_bytes"] / m["size_bytes"] if m["size_bytes"] else None
    add(d["scenario"], "size end/%ds (first minute: %.1f MiB)" % (round(m["t"]), m["size_bytes"] / 2**20),
        r, "(reported)", r is not None)
    r = e["index_bytes"] / f["index_bytes"] if f["index_bytes"] else None
    add(d["scenario"], "of which indexes (%.1f -> %.1f MiB)" % (f["index_bytes"] / 2**20, e["index_bytes"] / 2**20),
        r, "(reported)", r is not None)
    h = d["half"]
    r = e["size_bytes"] / h["size_bytes"] if h["size_bytes"] else None
    add(d["scenario"], "size end/%ds (still growing? 1.0: no)" % round(h["t"]), r, "(reported)", r is not None)
    r = e["dead_tuples"] / f["dead_tuples"] if f["dead_tuples"] else None
    add(d["scenario"], "dead tuples end/%ds (%d -> %d)" % (round(f["t"]), f["dead_tuples"], e["dead_tuples"]), r,
        "(reported)", r is not None)
    add(d["scenario"], "pending rows at end (oldest %d ms)" % e["oldest_pending_ms"],
        e["pending"], "< %d" % d["rate"],
        e["pending"] < d["rate"] and d["failed"] == 0 and d["relay_exit"] == 0 and d["relayed"] >= d["written"])
    add(d["scenario"], "retention deleted (rows; of %d written)" % d["written"], d["deleted"], "(reported)", True)
    if d["partitions_created"] or d["partitions_dropped"] or d["scenario"] == "steady_partition":
        add(d["scenario"], "partitions dropped (%d created)" % d["partitions_created"], d["partitions_dropped"],
            "(reported)", True)

print()
print("%-30s %9s %8s %22s %10s" % ("scenario", "messages", "seconds", "msgs/s median (min-max)", "peak RSS"))
for name, s in res.items():
    print("%-30s %9d %8.2f %10.0f (%.0f-%.0f) %7.1f MiB" % (name, s["messages"], s["seconds"], s["msgs_per_s"],
          s["msgs_per_s_min"], s["msgs_per_s_max"], s["peak_rss_kib"] / 1024))
print()
print("%-20s %-45s %10s %-11s %s" % ("target", "reference", "value", "goal", "met"))
for c in checks:
    v = "-" if c["ratio"] is None else ("%d" % c["ratio"] if isinstance(c["ratio"], int) else "%.2f" % c["ratio"])
    met = "-" if c["met"] is None else ("yes" if c["met"] else "NO")
    print("%-20s %-45s %10s %-11s %s" % (c["scenario"], c["reference"], v, c["target"], met))
for d in steady:
    if "skipped" in d:
        print("%-20s skipped: %s" % (d["scenario"], d["skipped"]))
json.dump({"machine": {"cores": int(cores), "kernel": machine}, "scenarios": res, "targets": checks,
           "steady_state": {d["scenario"]: d for d in steady},
           "loop_latency_ms": None if p99 == "-" else {"p50": float(p50), "p99": float(p99), "rows": int(n)},
           "loop_latency_tail_ms": extra.get("loop_latency_tail_ms"), "wal_per_msg": extra.get("wal_per_msg")},
          open(out, "w"), indent=2)
print("\nwritten: " + out)
PY
