#!/usr/bin/env bash
# bench/audit.sh - mqtx dedupe-audit at scale: N deliveries (default
# 10,000,000) from bench/bin/audit_gen on stdin, against an outbox of N sent
# rows in schema bench_audit of $MQTX_DATABASE_URL (filled once; refilled
# when its row count differs). Prints "seconds peak_rss_kib" of the audit and
# checks the report against the faults audit_gen planted.
#
#   MQTX_DATABASE_URL=postgresql://... bench/audit.sh [N]
#   MQTX (default ./mqtx), AUDIT_GEN (default bench/bin/audit_gen)
#
# Called by bench/run.sh (make bench) unless BENCH_SKIP_BIG=1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
N=${1:-10000000}
MQTX=${MQTX:-$ROOT/mqtx}
GEN=${AUDIT_GEN:-$ROOT/bench/bin/audit_gen}
DB=${MQTX_DATABASE_URL:?set MQTX_DATABASE_URL}
SCHEMA=bench_audit
say() { printf 'bench/audit: %s\n' "$*" >&2; }
psql_b() { PGOPTIONS="-c client_min_messages=warning" psql "$DB" -qAtX -v ON_ERROR_STOP=1 "$@"; }

have=$(psql_b -c "SELECT count(*) FROM $SCHEMA.mqtx_outbox" 2>/dev/null || echo none)
if [[ $have != "$N" ]]; then
	say "filling $SCHEMA.mqtx_outbox with $N sent rows (once; a few minutes for 10M)"
	psql_b -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "CREATE SCHEMA $SCHEMA"
	MQTX_OUTBOX_SCHEMA=$SCHEMA "$MQTX" -q init
	psql_b -c "INSERT INTO $SCHEMA.mqtx_outbox(idempotency_key, destination, routing_key, ordering_key, payload, status, attempts, sent_at)
		SELECT 'bench-' || g, 'bench.audit', 'rk', 'k' || (g % 1000), '\\x00', 'sent', 1, now() - interval '1 hour'
		FROM generate_series(1, $N) g" \
		-c "VACUUM ANALYZE $SCHEMA.mqtx_outbox"
fi

out=$(mktemp)
tm=$(mktemp)
trap 'rm -f "$out" "$tm"' EXIT
set +e
"$GEN" "$N" 2>/dev/null | MQTX_OUTBOX_SCHEMA=$SCHEMA /usr/bin/time -f '%e %M' -o "$tm" \
	"$MQTX" -q dedupe-audit --source - --format json --max-details 3 >"$out"
rc=$?
set -e
[[ $rc == 9 ]] || { say "unexpected exit status $rc (expected 9: duplicates and losses were planted)"; exit 1; }
# what audit_gen planted (see bench/audit_gen.c)
want_missing=$((N / 100000))
got=$(jq -r '"\(.deliveries) \(.duplicates.keys) \(.missing.count) \(.order.out_of_order) \(.strangers.keys)"' "$out")
say "deliveries, duplicated keys, missing, out of order, strangers: $got"
read -r _ dups missing late strangers <<<"$got"
if ((dups != want_missing || missing != want_missing || late != want_missing || strangers != (N + 499999) / 1000000)); then
	say "the report does not match what audit_gen planted"
	exit 1
fi
tail -n 1 "$tm" # GNU time writes "Command exited with non-zero status 9" first
