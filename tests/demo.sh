#!/usr/bin/env bash
# make demo: the main job on a throwaway setup. Private PostgreSQL and
# RabbitMQ on loopback in a temp dir; an order and its outbox row written
# in one transaction; mqtx relay; the messages as they arrived; mqtx check;
# everything stopped again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
MQTX=$ROOT/mqtx
AMQP_TOOL=$ROOT/tests/helpers/amqp_tool
STATE=$(mktemp -d /tmp/mqtx-demo.XXXXXX)
cleanup() {
	"$ROOT/tests/helpers/servers.sh" stop "$STATE" >/dev/null 2>&1 || true
	rm -rf "$STATE"
}
trap cleanup EXIT INT TERM

step() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "starting a private PostgreSQL and RabbitMQ in $STATE"
unset MQTX_TEST_DATABASE_URL MQTX_TEST_AMQP_URL
"$ROOT/tests/helpers/servers.sh" start "$STATE" 2>&1 | grep -E 'ready' || true
# shellcheck source=/dev/null
. "$STATE/env"
export MQTX_DATABASE_URL=$MQTX_TEST_DATABASE_URL MQTX_BROKER_URL=$MQTX_TEST_AMQP_URL
psql() { command psql "$MQTX_DATABASE_URL" -X -v ON_ERROR_STOP=1 "$@"; }

step "mqtx init: the outbox table, its indexes and triggers"
show "$MQTX" init

step "the broker side: an exchange 'orders' and a queue bound to it"
"$AMQP_TOOL" declare-exchange "$MQTX_BROKER_URL" orders --type topic
"$AMQP_TOOL" declare-queue "$MQTX_BROKER_URL" order-events --bind 'orders:order.#'
echo "exchange orders (topic) -> queue order-events (order.#)"

step "the application: each order and its outbox row in ONE transaction"
psql -q <<'SQL'
CREATE TABLE orders(id serial PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL);
BEGIN;
WITH o AS (INSERT INTO orders(customer, total) VALUES ('ada', 42.00), ('grace', 17.50), ('linus', 99.90)
           RETURNING id, customer, total)
INSERT INTO mqtx_outbox(destination, routing_key, ordering_key, headers, content_type, payload)
SELECT 'orders', 'order.created', 'customer-' || customer, jsonb_build_object('source', 'demo'),
       'application/json', convert_to(json_build_object('order_id', id, 'customer', customer, 'total', total)::text, 'UTF8')
FROM o;
COMMIT;
SQL
show psql -c "SELECT id, idempotency_key, destination, routing_key, ordering_key, status FROM mqtx_outbox ORDER BY id"

step "mqtx relay: publish with confirms, mark sent"
show "$MQTX" relay

step "the messages as they arrived in queue order-events"
"$AMQP_TOOL" drain "$MQTX_BROKER_URL" order-events --expect 3 |
	jq -c '{message_id, routing_key, headers: (.headers | {source, "x-mqtx-outbox-id"}), body: (.body | fromjson)}'

step "the outbox afterwards"
show psql -c "SELECT id, status, attempts, sent_at IS NOT NULL AS sent FROM mqtx_outbox ORDER BY id"

if "$MQTX" check --help >/dev/null 2>&1; then
	step "mqtx check: what ops sees"
	show "$MQTX" check || true
fi

step "done: stopping the servers"
