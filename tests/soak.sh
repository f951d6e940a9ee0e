#!/usr/bin/env bash
# make soak: two relays in --loop for SOAK_MINUTES (default 10) while a
# writer inserts rows and a chaos loop restarts RabbitMQ and PostgreSQL.
# At the end every row must have been delivered: lost = 0. Duplicates are
# counted and reported. Not part of make check.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
MINUTES=${SOAK_MINUTES:-10}
CHAOS_EVERY=${SOAK_CHAOS_SECONDS:-20}
MQTX=${MQTX:-$ROOT/mqtx}
AMQP_TOOL=$ROOT/tests/helpers/amqp_tool
STATE=$(mktemp -d /tmp/mqtx-soak.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"$ROOT/tests/helpers/servers.sh" stop "$STATE" >/dev/null 2>&1 || true
	rm -rf "$STATE"
}
trap cleanup EXIT INT TERM
say() { printf 'soak: [%s] %s\n' "$(date +%T)" "$*" >&2; }

unset MQTX_TEST_DATABASE_URL MQTX_TEST_AMQP_URL
"$ROOT/tests/helpers/servers.sh" start "$STATE" 2>/dev/null
# shellcheck source=/dev/null
. "$STATE/env"
export MQTX_DATABASE_URL=$MQTX_TEST_DATABASE_URL MQTX_BROKER_URL=$MQTX_TEST_AMQP_URL
"$MQTX" -q init
"$AMQP_TOOL" declare-exchange "$MQTX_BROKER_URL" soak --type topic
"$AMQP_TOOL" declare-queue "$MQTX_BROKER_URL" soak.q --bind 'soak:#'
psql "$MQTX_DATABASE_URL" -qX -c "CREATE TABLE biz(k text PRIMARY KEY); INSERT INTO biz SELECT 'k'||g FROM generate_series(0, 19) g"

for i in 1 2; do
	"$MQTX" relay --loop --batch 200 --poll-interval 500ms 2>>"$STATE/relay$i.log" &
	pids+=($!)
done
# the writer: a row every ~2 ms in small transactions, ordered keys locked first;
# it reconnects when PostgreSQL restarts
(
	end=$((SECONDS + MINUTES * 60))
	while ((SECONDS < end)); do
		psql "$MQTX_DATABASE_URL" -qX -v ON_ERROR_STOP=1 2>>"$STATE/writer.log" <<-SQL || sleep 0.5
		DO \$\$ DECLARE kk text; BEGIN
		  FOR i IN 1..200 LOOP
		    kk := 'k' || (random() * 19)::int;
		    PERFORM 1 FROM biz WHERE biz.k = kk FOR UPDATE;
		    INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, payload)
		    VALUES ('soak', 'soak.rk', kk, convert_to(clock_timestamp()::text, 'UTF8'));
		    COMMIT;
		    PERFORM pg_sleep(0.002);
		  END LOOP;
		END \$\$;
		SQL
	done
) &
writer=$!
restarts=0
end=$((SECONDS + MINUTES * 60))
while ((SECONDS < end)); do
	sleep "$CHAOS_EVERY"
	((SECONDS < end)) || break
	if ((RANDOM % 2)); then
		say "chaos: restarting RabbitMQ"
		"$MQTX_TEST_RABBITMQCTL" -q stop_app >/dev/null 2>&1 || true
		sleep 2
		"$MQTX_TEST_RABBITMQCTL" -q start_app >/dev/null 2>&1 || true
	else
		say "chaos: restarting PostgreSQL"
		"$MQTX_TEST_PG_CTL" restart -m fast -w >/dev/null 2>&1 || true
	fi
	restarts=$((restarts + 1))
done
wait "$writer" || true
say "writer done; waiting for the relays to drain"
for _ in $(seq 1 600); do
	left=$(psql "$MQTX_DATABASE_URL" -qAtX -c "SELECT count(*) FROM mqtx_outbox WHERE status <> 'sent'" 2>/dev/null || echo x)
	[[ $left == 0 ]] && break
	sleep 1
done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
pids=()
total=$(psql "$MQTX_DATABASE_URL" -qAtX -c "SELECT count(*) FROM mqtx_outbox")
"$AMQP_TOOL" drain "$MQTX_BROKER_URL" soak.q --timeout 5 | jq -r '.headers["x-mqtx-outbox-id"]' | sort -n >"$STATE/got"
delivered=$(uniq "$STATE/got" | wc -l)
dups=$(($(wc -l <"$STATE/got") - delivered))
psql "$MQTX_DATABASE_URL" -qAtX -c "SELECT id FROM mqtx_outbox ORDER BY id" >"$STATE/all"
lost=$(comm -23 "$STATE/all" <(uniq "$STATE/got") | wc -l)
echo "soak: ${MINUTES}m, $total messages, $restarts restarts, lost = $lost, duplicates = $dups"
((total > 0)) || { echo "soak: the writer inserted nothing" >&2; exit 1; }
[[ $lost == 0 ]]
