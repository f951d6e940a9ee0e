/* Configuration loading (see config.h). The key table below is the single
 * source of truth for every configuration key. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <yaml.h>

#include "base/log.h"
#include "base/util.h"

enum key_type {
	T_STR,
	T_INT,
	T_DUR,
	T_BOOL,
	T_ENUM,
	T_MAP,
	T_LIST /* comma-separated text; YAML: a list too */,
	T_SIZE /* bytes, written with a unit (16MiB); stored as int64 */,
	T_DUR_OFF /* a duration from min up, or "off" (stored as 0) */
};

struct key_def {
	const char *name; /* dotted path */
	enum key_type type;
	size_t off;
	const char *def;     /* default as text; NULL = unset */
	const char *choices; /* T_ENUM: '|' separated */
	int64_t min, max;    /* T_INT / T_DUR bounds */
	bool secret;         /* value may hold a password: redact when shown */
	const char *help;
};

#define OFF(f) offsetof(struct mqtx_config, f)
#define COL(c, n)                                                                                             \
	{                                                                                                     \
		"outbox.columns." n, T_STR, OFF(outbox_columns) + (c) * sizeof(char *), n, NULL, 0, 0, false, \
			"column name for the '" n "' field (empty: the table has none)"                       \
	}

static const struct key_def keys[] = {
	{"database.url", T_STR, OFF(database_url), NULL, NULL, 0, 0, true,
	 "libpq URL or conninfo of the database holding the outbox"},
	{"database.password_file", T_STR, OFF(database_password_file), NULL, NULL, 0, 0, false,
	 "file whose first line is the database password"},
	{"database.connect_timeout", T_DUR, OFF(database_connect_timeout_ms), "10s", NULL, 1000, 3600000, false,
	 "how long to wait for the database connection"},
	{"broker.url", T_STR, OFF(broker_url), NULL, NULL, 0, 0, true,
	 "broker URL: amqp://, amqps://, kafka://, kafkas://, nats:// or tls:// (NATS)"},
	{"broker.password_file", T_STR, OFF(broker_password_file), NULL, NULL, 0, 0, false,
	 "file whose first line is the broker password"},
	{"broker.connect_timeout", T_DUR, OFF(broker_connect_timeout_ms), "10s", NULL, 100, 3600000, false,
	 "how long to wait for the broker connection"},
	{"broker.heartbeat", T_DUR, OFF(broker_heartbeat_ms), "30s", NULL, 0, 3600000, false,
	 "AMQP heartbeat interval (0 disables)"},
	{"broker.confirm_timeout", T_DUR, OFF(broker_confirm_timeout_ms), "30s", NULL, 100, 3600000, false,
	 "how long to wait for publisher confirms or delivery reports"},
	{"broker.tls.ca_file", T_STR, OFF(broker_tls_ca_file), NULL, NULL, 0, 0, false,
	 "CA certificates for amqps:// (PEM)"},
	{"broker.tls.cert_file", T_STR, OFF(broker_tls_cert_file), NULL, NULL, 0, 0, false,
	 "client certificate for amqps:// (PEM)"},
	{"broker.tls.key_file", T_STR, OFF(broker_tls_key_file), NULL, NULL, 0, 0, false,
	 "client private key for amqps:// (PEM)"},
	{"broker.tls.verify", T_BOOL, OFF(broker_tls_verify), "true", NULL, 0, 0, false,
	 "verify the broker's certificate and host name"},
	{"broker.kafka", T_MAP, OFF(kafka_props), NULL, NULL, 0, 0, true,
	 "librdkafka properties passed through as they are"},
	{"outbox.schema", T_STR, OFF(outbox_schema), "public", NULL, 0, 0, false,
	 "schema of the outbox table (one identifier)"},
	{"outbox.table", T_STR, OFF(outbox_table), "mqtx_outbox", NULL, 0, 0, false,
	 "outbox table name (one identifier)"},
	COL(MQTX_COL_ID, "id"),
	COL(MQTX_COL_KEY, "idempotency_key"),
	COL(MQTX_COL_DESTINATION, "destination"),
	COL(MQTX_COL_ROUTING_KEY, "routing_key"),
	COL(MQTX_COL_ORDERING_KEY, "ordering_key"),
	COL(MQTX_COL_HEADERS, "headers"),
	COL(MQTX_COL_PAYLOAD, "payload"),
	COL(MQTX_COL_CONTENT_TYPE, "content_type"),
	COL(MQTX_COL_STATUS, "status"),
	COL(MQTX_COL_ATTEMPTS, "attempts"),
	COL(MQTX_COL_AVAILABLE_AT, "available_at"),
	COL(MQTX_COL_CREATED_AT, "created_at"),
	COL(MQTX_COL_SENT_AT, "sent_at"),
	COL(MQTX_COL_LAST_ERROR, "last_error"),
	COL(MQTX_COL_REDELIVERY_COUNT, "redelivery_count"),
	COL(MQTX_COL_REDELIVERED_AT, "redelivered_at"),
	COL(MQTX_COL_TXID, "txid"),
	{"outbox.payload_type", T_ENUM, OFF(outbox_payload_type), "bytea", "bytea|text|json|jsonb", 0, 0, false,
	 "SQL type of the payload column"},
	{"outbox.notify_channel", T_STR, OFF(outbox_notify_channel), "mqtx_outbox", NULL, 0, 0, false,
	 "LISTEN/NOTIFY channel the insert trigger signals"},
	{"outbox.retention", T_DUR_OFF, OFF(outbox_retention_ms), "7d", NULL, 1000, INT64_MAX / 2, false,
	 "relay: delete rows relayed longer ago than this (off: keep everything)"},
	{"outbox.dead_retention", T_DUR_OFF, OFF(outbox_dead_retention_ms), "off", NULL, 1000, INT64_MAX / 2, false,
	 "relay: delete dead rows whose last attempt was longer ago than this (off: they wait for ops)"},
	{"outbox.retain_uncompleted", T_DUR_OFF, OFF(outbox_retain_uncompleted_ms), "off", NULL, 1000, INT64_MAX / 2,
	 false,
	 "completion tracking: keep sent rows no consumer completed for up to this long (off: outbox.retention for all)"},
	{"outbox.partition_by", T_ENUM, OFF(outbox_partition_by), "none", "none|hour|day", 0, 0, false,
	 "init: range-partition the outbox by creation time; relay: create partitions ahead, drop expired ones"},
	{"outbox.mode", T_ENUM, OFF(outbox_mode), "status", "status|tail", 0, 0, false,
	 "how relays record progress: status (a sent flag per row) or tail (transaction snapshots and checkpoints)"},
	{"outbox.tail_buckets", T_INT, OFF(outbox_tail_buckets), "16", NULL, 1, 1024, false,
	 "init: checkpoint buckets of a tail-mode outbox (the most relay lanes, two per relay, that share its work)"},
	{"relay.batch_size", T_INT, OFF(relay_batch_size), "500", NULL, 1, 100000, false,
	 "rows claimed and published per batch"},
	{"relay.max_attempts", T_INT, OFF(relay_max_attempts), "10", NULL, 1, 1000000, false,
	 "failed attempts before a row becomes dead"},
	{"relay.backoff_initial", T_DUR, OFF(relay_backoff_initial_ms), "1s", NULL, 0, 86400000, false,
	 "delay before the first retry of a failed row"},
	{"relay.backoff_max", T_DUR, OFF(relay_backoff_max_ms), "5m", NULL, 0, 604800000, false,
	 "upper bound of the exponential retry delay"},
	{"relay.backoff_jitter", T_INT, OFF(relay_backoff_jitter), "20", NULL, 0, 100, false,
	 "random spread of retry delays, in percent"},
	{"relay.poll_interval", T_DUR, OFF(relay_poll_interval_ms), "1s", NULL, 10, 3600000, false,
	 "--loop: how often to look for work when no NOTIFY arrives"},
	{"relay.max_messages", T_INT, OFF(relay_max_messages), "0", NULL, 0, INT64_MAX, false,
	 "stop after handling this many rows, retries included (0: no limit)"},
	{"relay.max_time", T_DUR, OFF(relay_max_time_ms), "0", NULL, 0, INT64_MAX, false,
	 "stop claiming after this long (0: no limit)"},
	{"relay.shutdown_grace", T_DUR, OFF(relay_shutdown_grace_ms), "10s", NULL, 0, 3600000, false,
	 "on SIGTERM, how long stopping may take (confirms, then recording them)"},
	{"relay.confirm_window", T_INT, OFF(relay_confirm_window), "1024", NULL, 1, 1000000, false,
	 "most unconfirmed messages in flight"},
	{"relay.ordering_buckets", T_INT, OFF(relay_ordering_buckets), "256", NULL, 1, 65536, false,
	 "ordering keys are leased to relays in this many hash buckets"},
	{"relay.heartbeat_interval", T_DUR, OFF(relay_heartbeat_interval_ms), "10s", NULL, 100, 3600000, false,
	 "how often a relay records that it is alive"},
	{"relay.loop", T_BOOL, OFF(relay_loop), "false", NULL, 0, 0, false,
	 "keep running instead of exiting when the outbox is drained"},
	{"relay.kafka_transactions", T_BOOL, OFF(relay_kafka_transactions), "false", NULL, 0, 0, false,
	 "Kafka: publish each batch in one producer transaction"},
	{"check.warn_age", T_DUR, OFF(check_warn_age_ms), "5m", NULL, 0, INT64_MAX, false,
	 "check: a pending row older than this is a warning (0: off)"},
	{"check.crit_age", T_DUR, OFF(check_crit_age_ms), "30m", NULL, 0, INT64_MAX, false,
	 "check: a pending row older than this is critical (0: off)"},
	{"check.warn_attempts", T_INT, OFF(check_warn_attempts), "3", NULL, 0, 1000000, false,
	 "check: pending rows with this many failed attempts are a warning (0: off)"},
	{"check.max_dead", T_INT, OFF(check_max_dead), "0", NULL, 0, INT64_MAX, false,
	 "check: more dead rows than this is critical"},
	{"check.relay_stale", T_DUR, OFF(check_relay_stale_ms), "2m", NULL, 1000, INT64_MAX, false,
	 "check: a running relay silent for longer is stale"},
	{"check.relay_forget", T_DUR, OFF(check_relay_forget_ms), "1d", NULL, 0, INT64_MAX, false,
	 "check: stale relays silent for longer are no longer reported (0: never forget)"},
	{"check.broker", T_BOOL, OFF(check_broker), "false", NULL, 0, 0, false,
	 "check: also ask the broker about destinations and check.queues"},
	{"check.queues", T_LIST, OFF(check_queues), NULL, NULL, 0, 0, false,
	 "check --broker: queues whose depth and consumers to report (list or comma-separated)"},
	{"check.queue_max_depth", T_INT, OFF(check_queue_max_depth), "0", NULL, 0, INT64_MAX, false,
	 "check: a queue holding more messages is a warning (0: off)"},
	{"check.queue_min_consumers", T_INT, OFF(check_queue_min_consumers), "1", NULL, 0, 1000000, false,
	 "check: a queue with fewer consumers is a warning"},
	{"check.completion", T_BOOL, OFF(check_completion), "false", NULL, 0, 0, false,
	 "check: report sent messages without a row in mqtx_completions"},
	{"check.completion_after", T_DUR, OFF(check_completion_after_ms), "10m", NULL, 0, INT64_MAX, false,
	 "check: a sent message not completed after this long is a warning"},
	{"check.completion_window", T_DUR, OFF(check_completion_window_ms), "1d", NULL, 1000, INT64_MAX, false,
	 "check: only messages sent within this window are looked at for completion"},
	{"check.scan_limit", T_INT, OFF(check_scan_limit), "100000", NULL, 100, 100000000, false,
	 "check: most pending, dead or prepared rows read, and largest table counted exactly"},
	{"check.list_limit", T_INT, OFF(check_list_limit), "10", NULL, 1, 10000, false,
	 "check: most rows, keys or relays listed per problem"},
	{"check.timeout", T_DUR, OFF(check_timeout_ms), "10s", NULL, 100, 3600000, false,
	 "check: longest any one query may run"},
	{"check.max_table_size", T_SIZE, OFF(check_max_table_size), "1GiB", NULL, 0, INT64_MAX, false,
	 "check: with outbox.retention off, an outbox larger than this (table, indexes, TOAST) is a warning (0: off)"},
	{"check.retention_lag", T_DUR, OFF(check_retention_lag_ms), "1h", NULL, 0, INT64_MAX, false,
	 "check: rows due for deletion by retention for longer than this are a warning (0: off)"},
	{"redeliver.batch_size", T_INT, OFF(redeliver_batch_size), "100", NULL, 1, 100000, false,
	 "redeliver: rows selected, re-sent and recorded per transaction"},
	{"redeliver.rate", T_STR, OFF(redeliver_rate), "0", NULL, 0, 0, false,
	 "redeliver: most messages re-sent per second, as N, N/s or N/m (0: no limit)"},
	{"redeliver.time_column", T_ENUM, OFF(redeliver_time_column), "created", "created|sent", 0, 0, false,
	 "redeliver: the time --since and --until compare with"},
	{"redeliver.max_redeliveries", T_INT, OFF(redeliver_max_redeliveries), "10", NULL, 0, 1000000, false,
	 "redeliver --unacked-after: re-send a message at most this many times (0: no limit)"},
	{"redeliver.sample", T_INT, OFF(redeliver_sample), "10", NULL, 0, 100000, false,
	 "redeliver --dry-run: how many of the selected rows to show"},
	{"redeliver.ack_source", T_STR, OFF(redeliver_ack_source), NULL, NULL, 0, 0, false,
	 "redeliver --collect-acks: queue (RabbitMQ) or topic (Kafka) consumers publish completed keys to"},
	{"redeliver.ack_group", T_STR, OFF(redeliver_ack_group), "mqtx-acks", NULL, 0, 0, false,
	 "redeliver --collect-acks: Kafka consumer group that reads the ack topic"},
	{"redeliver.ack_wait", T_DUR, OFF(redeliver_ack_wait_ms), "1s", NULL, 0, 3600000, false,
	 "redeliver --collect-acks: stop once the ack source stayed empty this long"},
	{"audit.inbox_database_url", T_STR, OFF(audit_inbox_database_url), NULL, NULL, 0, 0, true,
	 "dedupe-audit: database of the consumer's inbox table (default: database.url)"},
	{"audit.inbox_schema", T_STR, OFF(audit_inbox_schema), "public", NULL, 0, 0, false,
	 "dedupe-audit: schema of the inbox table (one identifier)"},
	{"audit.inbox_table", T_STR, OFF(audit_inbox_table), NULL, NULL, 0, 0, false,
	 "dedupe-audit: the consumer's inbox/processed table (one identifier)"},
	{"audit.inbox_key_column", T_STR, OFF(audit_inbox_key_column), "idempotency_key", NULL, 0, 0, false,
	 "dedupe-audit: inbox column holding the idempotency key"},
	{"audit.inbox_id_column", T_STR, OFF(audit_inbox_id_column), NULL, NULL, 0, 0, false,
	 "dedupe-audit: inbox column holding the outbox id (optional)"},
	{"audit.inbox_ts_column", T_STR, OFF(audit_inbox_ts_column), NULL, NULL, 0, 0, false,
	 "dedupe-audit: inbox column saying when a message was processed (optional; gives the order)"},
	{"audit.inbox_ordering_key_column", T_STR, OFF(audit_inbox_ordering_key_column), NULL, NULL, 0, 0, false,
	 "dedupe-audit: inbox column holding the ordering key (optional)"},
	{"audit.max_details", T_INT, OFF(audit_max_details), "20", NULL, 0, 1000000, false,
	 "dedupe-audit: most detail lines shown per finding"},
	{"audit.max_duplicates", T_INT, OFF(audit_max_duplicates), "0", NULL, 0, INT64_MAX, false,
	 "dedupe-audit: duplicated keys (not explained by redelivery) tolerated before exit status 1"},
	{"audit.max_missing", T_INT, OFF(audit_max_missing), "0", NULL, 0, INT64_MAX, false,
	 "dedupe-audit: missing messages tolerated before exit status 8"},
	{"audit.idle_timeout", T_DUR, OFF(audit_idle_timeout_ms), "2s", NULL, 100, 3600000, false,
	 "dedupe-audit: a stream or queue whose end is unknown is done after this long without a message"},
	{"audit.work_mem", T_STR, OFF(audit_work_mem), "256MB", NULL, 0, 0, false,
	 "dedupe-audit: PostgreSQL work_mem for the comparison queries"},
	{"txpub.mode", T_ENUM, OFF(txpub_mode), "auto", "auto|tx|confirm|kafka-tx", 0, 0, false,
	 "txpub: how to publish (auto: kafka-tx where the broker has fenced transactions, else confirm; with --sql tx where it has transactions)"},
	{"txpub.confirm", T_ENUM, OFF(txpub_confirm), "async", "sync|batch|async", 0, 0, false,
	 "txpub --mode confirm: one message at a time, per batch, or a window of outstanding confirms"},
	{"txpub.confirm_window", T_INT, OFF(txpub_confirm_window), "1024", NULL, 1, 1000000, false,
	 "txpub --confirm async: most unconfirmed messages in flight"},
	{"txpub.batch_size", T_INT, OFF(txpub_batch_size), "0", NULL, 0, 1000000, false,
	 "txpub: messages per transaction or confirm batch (0: the whole input is one batch)"},
	{"txpub.max_payload", T_SIZE, OFF(txpub_max_payload), "16MiB", NULL, 1, 1073741824, false,
	 "txpub: largest payload accepted, checked before anything is sent"},
	{"txpub.check_after", T_DUR, OFF(txpub_check_after_ms), "1m", NULL, 0, 604800000, false,
	 "half messages prepared longer ago than this are checked back by 'mqtx check --resolve'"},
	{"txpub.check_max_age", T_DUR, OFF(txpub_check_max_age_ms), "12h", NULL, 0, 31536000000, false,
	 "half messages older than this get txpub.check_default instead of another check-back"},
	{"txpub.check_sql", T_STR, OFF(txpub_check_sql), NULL, NULL, 0, 0, false,
	 "check-back query: $1 = key, $2 = headers (JSON text); returns commit, rollback or unknown"},
	{"txpub.check_command", T_STR, OFF(txpub_check_command), NULL, NULL, 0, 0, false,
	 "check-back command, run with the key as its last argument; exit 0 commit, 1 rollback, 2 unknown"},
	{"txpub.check_timeout", T_DUR, OFF(txpub_check_timeout_ms), "30s", NULL, 100, 3600000, false,
	 "how long one check-back query or command may take (then: unknown)"},
	{"txpub.check_default", T_ENUM, OFF(txpub_check_default), "rollback", "rollback|commit", 0, 0, false,
	 "what happens to a half message past txpub.check_max_age"},
	{"txpub.prepared_timeout", T_DUR, OFF(txpub_prepared_timeout_ms), "10m", NULL, 0, 604800000, false,
	 "txpub --sql: a prepared transaction without a coordinator record is rolled back after this long"},
	{"log.format", T_ENUM, OFF(log_format), "text", "text|json", 0, 0, false, "diagnostics format on stderr"},
	{"log.level", T_ENUM, OFF(log_level), "info", "error|warning|info|debug", 0, 0, false,
	 "least severe diagnostics shown"},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {"database", "broker", "outbox",    "relay", "log",
				       "txpub",    "check",  "redeliver", "audit"};

static ssize_t find_key(const char *name);

const char *mqtx_config_column_key(enum mqtx_col c)
{
	return keys[find_key("outbox.columns.id") + (ssize_t)c].name;
}

size_t mqtx_config_key_count(void)
{
	return NKEYS;
}
const char *mqtx_config_key_name(size_t i)
{
	return keys[i].name;
}
const char *mqtx_config_key_default(size_t i)
{
	return keys[i].def;
}
const char *mqtx_config_key_help(size_t i)
{
	return keys[i].help;
}
bool mqtx_config_key_secret(size_t i)
{
	return keys[i].secret;
}
bool mqtx_config_key_env(size_t i)
{
	return keys[i].type != T_MAP;
}

static void *field(struct mqtx_config *cfg, size_t i)
{
	return (char *)cfg + keys[i].off;
}

static const void *cfield(const struct mqtx_config *cfg, size_t i)
{
	return (const char *)cfg + keys[i].off;
}

static ssize_t find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* Is `path` a prefix of some key (a mapping level such as "broker.tls")? */
static bool is_section(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strcmp(sections[i], path) == 0)
			return true;
	for (size_t i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].name, path, n) == 0 && keys[i].name[n] == '.')
			return true;
	return false;
}

/* "did you mean" among the siblings of path. */
static void suggest(const char *path, char *out, size_t outlen)
{
	const char *dot = strrchr(path, '.');
	size_t plen = dot ? (size_t)(dot - path) + 1 : 0;
	const char *leaf = path + plen;
	size_t best = 3;
	const char *best_name = NULL;
	char cand[128];

	out[0] = '\0';
	for (size_t i = 0; i < NKEYS + sizeof(sections) / sizeof(sections[0]); i++) {
		const char *full = i < NKEYS ? keys[i].name : sections[i - NKEYS];
		if (strncmp(full, path, plen) != 0)
			continue;
		const char *rest = full + plen;
		size_t rl = strcspn(rest, ".");
		if (rl >= sizeof(cand))
			continue;
		memcpy(cand, rest, rl);
		cand[rl] = '\0';
		size_t d = mqtx_edit_distance(leaf, cand);
		if (d < best || (d <= 3 && best_name == NULL && strlen(leaf) > 4 && d < strlen(leaf) / 2)) {
			best = d;
			best_name = rest;
			snprintf(out, outlen, " (did you mean '%.*s'?)", (int)rl, rest);
		}
	}
}

static void set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = v ? mqtx_xstrdup(v) : NULL;
}

static void free_map(struct mqtx_config *cfg)
{
	for (size_t i = 0; i < cfg->n_kafka_props; i++) {
		free(cfg->kafka_props[i].key);
		if (cfg->kafka_props[i].value != NULL) {
			explicit_bzero(cfg->kafka_props[i].value, strlen(cfg->kafka_props[i].value));
			free(cfg->kafka_props[i].value);
		}
	}
	free(cfg->kafka_props);
	cfg->kafka_props = NULL;
	cfg->n_kafka_props = 0;
}

static void map_put(struct mqtx_config *cfg, const char *k, const char *v)
{
	for (size_t i = 0; i < cfg->n_kafka_props; i++) {
		if (strcmp(cfg->kafka_props[i].key, k) == 0) {
			free(cfg->kafka_props[i].value);
			cfg->kafka_props[i].value = mqtx_xstrdup(v);
			return;
		}
	}
	cfg->kafka_props = mqtx_xrealloc(cfg->kafka_props, (cfg->n_kafka_props + 1) * sizeof(*cfg->kafka_props));
	cfg->kafka_props[cfg->n_kafka_props].key = mqtx_xstrdup(k);
	cfg->kafka_props[cfg->n_kafka_props].value = mqtx_xstrdup(v);
	cfg->n_kafka_props++;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Stores a scalar value into key i. Error text: "<what is wrong>". */
/* Settings that name a database object or channel: quoted with libpq's
 * identifier escaping (mqtx_pg_ident), which refuses invalidly encoded text. */
static bool is_identifier(const char *name)
{
	static const char *const idents[] = {"outbox.schema", "outbox.table", "outbox.notify_channel",
					     "audit.inbox_schema", "audit.inbox_table"};
	for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++)
		if (strcmp(name, idents[i]) == 0)
			return true;
	return strncmp(name, "outbox.columns.", 15) == 0 ||
	       (strncmp(name, "audit.inbox_", 12) == 0 && strlen(name) > 7 &&
		strcmp(name + strlen(name) - 7, "_column") == 0);
}

/* ---- one parser and one printer per value type (the table below) ---- */

static int store_str(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	if (v != NULL && is_identifier(k->name)) {
		size_t bad = mqtx_utf8_invalid_at(v);
		if (bad > 0)
			return mqtx_err_set(err, MQTX_E_CONFIG,
					    "%s: not valid UTF-8 (byte %zu); names must be UTF-8 text", k->name, bad);
		if (strlen(v) > 63)
			return mqtx_err_set(err, MQTX_E_CONFIG,
					    "%s: '%s' is %zu bytes long; PostgreSQL names have at most 63 (it would cut it)",
					    k->name, v, strlen(v));
	}
	set_str(slot, v);
	return 0;
}

/* "a, b,,c" -> "a,b,c"; an empty list is unset */
static int store_list(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	(void)k;
	(void)err;
	struct mqtx_buf b = MQTX_BUF_INIT;
	for (const char *p = v; *p != '\0';) {
		size_t n = strcspn(p, ",");
		const char *e = p + n;
		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		if (e > p) {
			if (b.len > 0)
				mqtx_buf_addc(&b, ',');
			mqtx_buf_add(&b, p, (size_t)(e - p));
		}
		p += n + (p[n] == ',');
	}
	char **sp = slot;
	free(*sp);
	*sp = b.len > 0 ? mqtx_buf_detach(&b) : NULL;
	mqtx_buf_free(&b);
	return 0;
}

static int store_enum(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	size_t vl = strlen(v);
	for (const char *c = k->choices; *c != '\0';) {
		size_t cl = strcspn(c, "|");
		if (cl == vl && strncmp(c, v, vl) == 0) {
			set_str(slot, v);
			return 0;
		}
		c += cl + (c[cl] == '|');
	}
	return mqtx_err_set(err, MQTX_E_CONFIG, "'%s' is not one of %s", v, k->choices);
}

static int store_int(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0)
		return mqtx_err_set(err, MQTX_E_CONFIG, "expected a whole number, got '%s'", v);
	if (n < k->min || n > k->max)
		return mqtx_err_set(err, MQTX_E_CONFIG, "%lld is out of range (%lld to %lld)", n, (long long)k->min,
				    (long long)k->max);
	*(int64_t *)slot = n;
	return 0;
}

static int store_dur(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	int64_t ms;
	if (mqtx_parse_duration(v, &ms, err) < 0) {
		err->kind = MQTX_E_CONFIG;
		return -1;
	}
	if ((ms < k->min || ms > k->max) && (ms != 0 || k->min > 0)) {
		char lo[32], hi[32];
		mqtx_format_duration(k->min, lo, sizeof(lo));
		mqtx_format_duration(k->max, hi, sizeof(hi));
		return mqtx_err_set(err, MQTX_E_CONFIG, "'%s' is out of range (%s to %s)", v, lo, hi);
	}
	*(int64_t *)slot = ms;
	return 0;
}

static int store_dur_off(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	if (strcmp(v, "off") == 0) {
		*(int64_t *)slot = 0;
		return 0;
	}
	int64_t ms;
	if (mqtx_parse_duration(v, &ms, err) < 0) {
		mqtx_err_prefix(err, "expected a duration or off");
		err->kind = MQTX_E_CONFIG;
		return -1;
	}
	if (ms < k->min || ms > k->max) {
		char lo[32];
		mqtx_format_duration(k->min, lo, sizeof(lo));
		return mqtx_err_set(err, MQTX_E_CONFIG, "'%s' is too %s (from %s up, or off)", v,
				    ms < k->min ? "short" : "long", lo);
	}
	*(int64_t *)slot = ms;
	return 0;
}

static int store_bool(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	(void)k;
	if (parse_bool(v, slot) < 0)
		return mqtx_err_set(err, MQTX_E_CONFIG, "expected true or false, got '%s'", v);
	return 0;
}

static int store_map(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	(void)k, (void)slot, (void)v;
	return mqtx_err_set(err, MQTX_E_CONFIG, "expected a mapping of properties, got a single value");
}

static int store_size(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err)
{
	uint64_t bytes;
	if (mqtx_parse_size(v, &bytes, err) < 0) {
		err->kind = MQTX_E_CONFIG;
		return -1;
	}
	if (bytes < (uint64_t)k->min || bytes > (uint64_t)k->max)
		return mqtx_err_set(err, MQTX_E_CONFIG, "'%s' is out of range (%lld to %lld bytes)", v,
				    (long long)k->min, (long long)k->max);
	*(int64_t *)slot = (int64_t)bytes;
	return 0;
}

static char *show_str(const struct mqtx_config *cfg, const struct key_def *k, const void *slot)
{
	(void)cfg;
	const char *v = *(char *const *)slot;
	if (v == NULL)
		return mqtx_xstrdup("");
	return k->secret ? mqtx_redact(v) : mqtx_xstrdup(v);
}

static char *show_int(const struct mqtx_config *cfg, const struct key_def *k, const void *slot)
{
	(void)cfg, (void)k;
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%lld", (long long)*(const int64_t *)slot);
	return mqtx_xstrdup(tmp);
}

/* v in the largest of units[] (largest first, NULL-terminated) that
 * divides it; "0" and values no unit divides as plain numbers + last. */
struct unit {
	int64_t size;
	const char *suffix;
};

static char *show_in_units(int64_t v, const struct unit *units, const char *plain)
{
	char tmp[64];
	size_t u = 0;
	while (units[u].suffix != NULL && (v == 0 || v % units[u].size != 0))
		u++;
	if (v == 0)
		return mqtx_xstrdup("0");
	if (units[u].suffix != NULL)
		snprintf(tmp, sizeof(tmp), "%lld%s", (long long)(v / units[u].size), units[u].suffix);
	else
		snprintf(tmp, sizeof(tmp), "%lld%s", (long long)v, plain);
	return mqtx_xstrdup(tmp);
}

static char *show_dur(const struct mqtx_config *cfg, const struct key_def *k, const void *slot)
{
	(void)cfg, (void)k;
	static const struct unit units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {0, NULL}};
	return show_in_units(*(const int64_t *)slot, units, "ms");
}

static char *show_dur_off(const struct mqtx_config *cfg, const struct key_def *k, const void *slot)
{
	return *(const int64_t *)slot == 0 ? mqtx_xstrdup("off") : show_dur(cfg, k, slot);
}

static char *show_size(const struct mqtx_config *cfg, const struct key_def *k, const void *slot)
{
	(void)cfg, (void)k;
	static const struct unit units[] = {{1073741824, "GiB"}, {1048576, "MiB"}, {1024, "KiB"}, {0, NULL}};
	return show_in_units(*(const int64_t *)slot, units, "");
}

static char *show_bool(const struct mqtx_config *cfg, const struct key_def *k, const void *slot)
{
	(void)cfg, (void)k;
	return mqtx_xstrdup(*(const bool *)slot ? "true" : "false");
}

static char *show_map(const struct mqtx_config *cfg, const struct key_def *k, const void *slot)
{
	(void)k, (void)slot;
	struct mqtx_buf b = MQTX_BUF_INIT;
	for (size_t i = 0; i < cfg->n_kafka_props; i++) {
		const char *key = cfg->kafka_props[i].key;
		bool sensitive = strstr(key, "password") || strstr(key, "secret") || strstr(key, "key") ||
				 strstr(key, "token") || strstr(key, "jaas");
		mqtx_buf_printf(&b, "%s%s=%s", i ? "," : "", key, sensitive ? "***" : cfg->kafka_props[i].value);
	}
	return b.data != NULL ? mqtx_buf_detach(&b) : mqtx_xstrdup("");
}

static const struct type_def {
	const char *name; /* for `mqtx config --keys`; T_ENUM shows its choices */
	int (*store)(const struct key_def *k, void *slot, const char *v, struct mqtx_err *err);
	char *(*show)(const struct mqtx_config *cfg, const struct key_def *k, const void *slot);
} types[] = {
	[T_STR] = {"string", store_str, show_str},
	[T_INT] = {"integer", store_int, show_int},
	[T_DUR] = {"duration", store_dur, show_dur},
	[T_BOOL] = {"boolean", store_bool, show_bool},
	[T_ENUM] = {NULL, store_enum, show_str},
	[T_MAP] = {"mapping", store_map, show_map},
	[T_LIST] = {"list", store_list, show_str},
	[T_SIZE] = {"size", store_size, show_size},
	[T_DUR_OFF] = {"duration|off", store_dur_off, show_dur_off},
};

static int store(struct mqtx_config *cfg, size_t i, const char *v, struct mqtx_err *err)
{
	return types[keys[i].type].store(&keys[i], field(cfg, i), v, err);
}

static void set_origin(struct mqtx_config *cfg, size_t i, const char *origin)
{
	set_str(&cfg->origin[i], origin);
}

struct mqtx_config *mqtx_config_new(void)
{
	struct mqtx_config *cfg = mqtx_xcalloc(1, sizeof(*cfg));
	cfg->origin = mqtx_xcalloc(NKEYS, sizeof(char *));
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].def != NULL) {
			struct mqtx_err e;
			if (store(cfg, i, keys[i].def, &e) < 0)
				abort(); /* a broken default is a bug in the table above */
		}
	}
	return cfg;
}

void mqtx_config_free(struct mqtx_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].type == T_STR || keys[i].type == T_ENUM || keys[i].type == T_LIST) {
			char **s = field(cfg, i);
			if (*s != NULL && keys[i].secret)
				explicit_bzero(*s, strlen(*s));
			free(*s);
		}
		free(cfg->origin[i]);
	}
	free_map(cfg);
	free(cfg->origin);
	free(cfg->path);
	free(cfg);
}

/* ---- ${VAR} and ${VAR:-default} expansion ---- */

static int expand_env(const char *in, char **out, struct mqtx_err *err)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	const char *p = in;
	while (*p != '\0') {
		if (p[0] == '$' && p[1] == '$') { /* $$ -> literal $ */
			mqtx_buf_addc(&b, '$');
			p += 2;
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			mqtx_buf_addc(&b, *p++);
			continue;
		}
		const char *close = strchr(p, '}');
		if (close == NULL) {
			mqtx_buf_free(&b);
			return mqtx_err_set(err, MQTX_E_CONFIG, "unterminated '${' in value");
		}
		const char *name = p + 2;
		const char *dflt = NULL;
		size_t nlen = (size_t)(close - name);
		const char *sep = strstr(name, ":-");
		if (sep != NULL && sep < close) {
			nlen = (size_t)(sep - name);
			dflt = sep + 2;
		}
		if (nlen == 0 || nlen > 200) {
			mqtx_buf_free(&b);
			return mqtx_err_set(err, MQTX_E_CONFIG, "bad variable reference in value");
		}
		for (size_t i = 0; i < nlen; i++) {
			if (!isalnum((unsigned char)name[i]) && name[i] != '_') {
				mqtx_buf_free(&b);
				return mqtx_err_set(err, MQTX_E_CONFIG, "bad variable name '%.*s'", (int)nlen, name);
			}
		}
		char vname[256];
		memcpy(vname, name, nlen);
		vname[nlen] = '\0';
		const char *val = getenv(vname);
		if (val != NULL && (val[0] != '\0' || dflt == NULL))
			mqtx_buf_adds(&b, val);
		else if (dflt != NULL)
			mqtx_buf_add(&b, dflt, (size_t)(close - dflt));
		else {
			mqtx_buf_free(&b);
			return mqtx_err_set(err, MQTX_E_CONFIG,
					    "environment variable '%s' is not set (write ${%s:-default} to allow that)",
					    vname, vname);
		}
		p = close + 1;
	}
	*out = mqtx_buf_detach(&b);
	return 0;
}

/* ---- YAML ---- */

struct yctx {
	yaml_parser_t parser;
	const char *name;
	struct mqtx_config *cfg;
	struct mqtx_err *err;
	bool *seen; /* per key: already set by this file (duplicate detection) */
	const char *text;
	size_t len;
};

static int yerr_at(struct yctx *y, yaml_mark_t m, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int yerr_at(struct yctx *y, yaml_mark_t m, const char *path, const char *fmt, ...)
{
	char what[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (path != NULL && path[0] != '\0')
		return mqtx_err_set(y->err, MQTX_E_CONFIG, "%s:%zu:%zu: %s: %s", y->name, m.line + 1, m.column + 1,
				    path, what);
	return mqtx_err_set(y->err, MQTX_E_CONFIG, "%s:%zu:%zu: %s", y->name, m.line + 1, m.column + 1, what);
}

static int next_event(struct yctx *y, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&y->parser, ev)) {
		const char *problem = y->parser.problem ? y->parser.problem : "malformed YAML";
		if (y->parser.error == YAML_READER_ERROR) {
			/* encoding errors carry a byte offset, not a mark */
			yaml_mark_t m = {0, 0, 0};
			for (size_t i = 0; i < y->parser.problem_offset && i < y->len; i++) {
				if (y->text[i] == '\n') {
					m.line++;
					m.column = 0;
				} else {
					m.column++;
				}
			}
			return yerr_at(y, m, NULL, "%s (is this a UTF-8 text file?)", problem);
		}
		return yerr_at(y, y->parser.problem_mark, NULL, "%s%s%s", problem, y->parser.context ? " " : "",
			       y->parser.context ? y->parser.context : "");
	}
	if (ev->type == YAML_ALIAS_EVENT) {
		yaml_mark_t m = ev->start_mark;
		yaml_event_delete(ev);
		return yerr_at(y, m, NULL, "YAML aliases (*name) are not supported here");
	}
	return 0;
}

static const char *event_kind(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SEQUENCE_START_EVENT: return "a list";
	case YAML_MAPPING_START_EVENT: return "a mapping";
	case YAML_SCALAR_EVENT: return "a single value";
	default: return "something else";
	}
}

/* Skips the rest of a node whose start event was already read. */
static int skip_node(struct yctx *y, yaml_event_t *start)
{
	int depth = (start->type == YAML_SEQUENCE_START_EVENT || start->type == YAML_MAPPING_START_EVENT) ? 1 : 0;
	while (depth > 0) {
		yaml_event_t ev;
		if (next_event(y, &ev) < 0)
			return -1;
		if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
			depth++;
		else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
			depth--;
		yaml_event_delete(&ev);
	}
	return 0;
}

static bool scalar_is_null(const yaml_event_t *ev)
{
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)ev->data.scalar.value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	       strcmp(v, "NULL") == 0;
}

static int parse_mapping(struct yctx *y, const char *prefix);

static int parse_kafka_map(struct yctx *y, size_t ki, const char *path)
{
	for (;;) {
		yaml_event_t kev, vev;
		if (next_event(y, &kev) < 0)
			return -1;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return 0;
		}
		if (kev.type != YAML_SCALAR_EVENT) {
			int rc = yerr_at(y, kev.start_mark, path, "property names must be plain strings");
			yaml_event_delete(&kev);
			return rc;
		}
		char prop[512];
		snprintf(prop, sizeof(prop), "%s", (const char *)kev.data.scalar.value);
		yaml_mark_t km = kev.start_mark;
		yaml_event_delete(&kev);
		if (next_event(y, &vev) < 0)
			return -1;
		char full[700];
		snprintf(full, sizeof(full), "%.190s.%.500s", path, prop);
		if (vev.type != YAML_SCALAR_EVENT) {
			int rc = yerr_at(y, vev.start_mark, full, "expected a single value, got %s", event_kind(&vev));
			yaml_event_delete(&vev);
			return rc;
		}
		char *expanded;
		if (expand_env((const char *)vev.data.scalar.value, &expanded, y->err) < 0) {
			char msg[sizeof(y->err->msg)];
			memcpy(msg, y->err->msg, sizeof(msg));
			yaml_event_delete(&vev);
			return yerr_at(y, km, full, "%s", msg);
		}
		map_put(y->cfg, prop, expanded);
		explicit_bzero(expanded, strlen(expanded));
		free(expanded);
		yaml_event_delete(&vev);
		char origin[600];
		snprintf(origin, sizeof(origin), "%.500s:%zu:%zu", y->name, km.line + 1, km.column + 1);
		set_origin(y->cfg, ki, origin);
	}
}

/* A YAML list of names for a T_LIST key (start event already read). */
static int parse_list(struct yctx *y, size_t ki, const char *path)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	yaml_mark_t first = {0, 0, 0};
	bool have_first = false;
	for (;;) {
		yaml_event_t ev;
		if (next_event(y, &ev) < 0) {
			mqtx_buf_free(&b);
			return -1;
		}
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (!have_first) {
			first = ev.start_mark;
			have_first = true;
		}
		if (ev.type != YAML_SCALAR_EVENT || scalar_is_null(&ev)) {
			int rc = yerr_at(y, ev.start_mark, path, "list items must be single names, got %s",
					 ev.type == YAML_SCALAR_EVENT ? "an empty item" : event_kind(&ev));
			skip_node(y, &ev);
			yaml_event_delete(&ev);
			mqtx_buf_free(&b);
			return rc;
		}
		char *expanded;
		struct mqtx_err e;
		if (expand_env((const char *)ev.data.scalar.value, &expanded, &e) < 0) {
			int rc = yerr_at(y, ev.start_mark, path, "%s", e.msg);
			yaml_event_delete(&ev);
			mqtx_buf_free(&b);
			return rc;
		}
		if (strchr(expanded, ',') != NULL) {
			int rc = yerr_at(y, ev.start_mark, path, "list items must not contain a comma");
			free(expanded);
			yaml_event_delete(&ev);
			mqtx_buf_free(&b);
			return rc;
		}
		if (b.len > 0)
			mqtx_buf_addc(&b, ',');
		mqtx_buf_adds(&b, expanded);
		free(expanded);
		yaml_event_delete(&ev);
	}
	struct mqtx_err e;
	int rc = store(y->cfg, ki, b.data != NULL ? b.data : "", &e);
	mqtx_buf_free(&b);
	if (rc < 0)
		return yerr_at(y, first, path, "%s", e.msg);
	if (have_first) {
		char origin[600];
		snprintf(origin, sizeof(origin), "%.500s:%zu:%zu", y->name, first.line + 1, first.column + 1);
		set_origin(y->cfg, ki, origin);
	}
	return 0;
}

static int parse_value_for(struct yctx *y, const char *path, yaml_mark_t keymark)
{
	yaml_event_t ev;
	if (next_event(y, &ev) < 0)
		return -1;
	ssize_t ki = find_key(path);
	int rc = 0;

	if (ki < 0 && is_section(path)) {
		if (ev.type == YAML_MAPPING_START_EVENT) {
			yaml_event_delete(&ev);
			return parse_mapping(y, path);
		}
		if (ev.type == YAML_SCALAR_EVENT && scalar_is_null(&ev)) {
			yaml_event_delete(&ev);
			return 0; /* "relay:" with nothing under it */
		}
		rc = yerr_at(y, ev.start_mark, path, "expected a mapping of keys, got %s", event_kind(&ev));
		yaml_event_delete(&ev);
		return rc;
	}
	if (ki < 0) {
		char hint[200];
		suggest(path, hint, sizeof(hint));
		rc = yerr_at(y, keymark, path, "unknown key%s", hint);
		yaml_event_delete(&ev);
		return rc;
	}
	if (y->seen[ki]) {
		rc = yerr_at(y, keymark, path, "key given twice");
		yaml_event_delete(&ev);
		return rc;
	}
	y->seen[ki] = true;
	if (keys[ki].type == T_MAP) {
		if (ev.type == YAML_MAPPING_START_EVENT) {
			yaml_event_delete(&ev);
			free_map(y->cfg);
			return parse_kafka_map(y, (size_t)ki, path);
		}
		if (ev.type == YAML_SCALAR_EVENT && scalar_is_null(&ev)) {
			yaml_event_delete(&ev);
			return 0;
		}
		rc = yerr_at(y, ev.start_mark, path, "expected a mapping of properties, got %s", event_kind(&ev));
		yaml_event_delete(&ev);
		return rc;
	}
	if (keys[ki].type == T_LIST && ev.type == YAML_SEQUENCE_START_EVENT) {
		yaml_event_delete(&ev);
		return parse_list(y, (size_t)ki, path);
	}
	if (ev.type != YAML_SCALAR_EVENT) {
		rc = yerr_at(y, ev.start_mark, path, "expected %s, got %s",
			     keys[ki].type == T_STR ? "a string" : mqtx_config_key_type((size_t)ki), event_kind(&ev));
		skip_node(y, &ev);
		yaml_event_delete(&ev);
		return rc;
	}
	if (scalar_is_null(&ev)) {
		yaml_event_delete(&ev);
		return 0; /* "key:" with no value keeps the default */
	}
	const char *raw = (const char *)ev.data.scalar.value;
	if (strlen(raw) != ev.data.scalar.length) {
		rc = yerr_at(y, ev.start_mark, path, "value contains a NUL byte");
		yaml_event_delete(&ev);
		return rc;
	}
	char *expanded;
	struct mqtx_err e;
	if (expand_env(raw, &expanded, &e) < 0) {
		rc = yerr_at(y, ev.start_mark, path, "%s", e.msg);
		yaml_event_delete(&ev);
		return rc;
	}
	if (store(y->cfg, (size_t)ki, expanded, &e) < 0)
		rc = yerr_at(y, ev.start_mark, path, "%s", e.msg);
	else {
		char origin[600];
		snprintf(origin, sizeof(origin), "%.500s:%zu:%zu", y->name, ev.start_mark.line + 1,
			 ev.start_mark.column + 1);
		set_origin(y->cfg, (size_t)ki, origin);
	}
	explicit_bzero(expanded, strlen(expanded));
	free(expanded);
	yaml_event_delete(&ev);
	return rc;
}

static int parse_mapping(struct yctx *y, const char *prefix)
{
	for (;;) {
		yaml_event_t kev;
		if (next_event(y, &kev) < 0)
			return -1;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return 0;
		}
		if (kev.type != YAML_SCALAR_EVENT) {
			int rc = yerr_at(y, kev.start_mark, prefix, "keys must be plain names");
			yaml_event_delete(&kev);
			return rc;
		}
		char path[512];
		const char *k = (const char *)kev.data.scalar.value;
		if (prefix[0] != '\0')
			snprintf(path, sizeof(path), "%.200s.%.200s", prefix, k);
		else
			snprintf(path, sizeof(path), "%.200s", k);
		yaml_mark_t km = kev.start_mark;
		yaml_event_delete(&kev);
		if (parse_value_for(y, path, km) < 0)
			return -1;
	}
}

int mqtx_config_load_string(struct mqtx_config *cfg, const char *name, const char *text, size_t len,
			    struct mqtx_err *err)
{
	struct yctx y = {.name = name, .cfg = cfg, .err = err, .text = text, .len = len};
	int rc = -1;
	bool done = false;

	if (!yaml_parser_initialize(&y.parser))
		return mqtx_err_set(err, MQTX_E_INTERNAL, "cannot initialise the YAML parser");
	y.seen = mqtx_xcalloc(NKEYS, sizeof(bool));
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);

	while (!done) {
		yaml_event_t ev;
		if (next_event(&y, &ev) < 0)
			goto out;
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT: break;
		case YAML_DOCUMENT_START_EVENT: break;
		case YAML_STREAM_END_EVENT: done = true; break;
		case YAML_MAPPING_START_EVENT:
			yaml_event_delete(&ev);
			if (parse_mapping(&y, "") < 0)
				goto out;
			{
				/* only one document is allowed */
				yaml_event_t nx;
				if (next_event(&y, &nx) < 0)
					goto out;
				if (nx.type == YAML_DOCUMENT_END_EVENT) {
					yaml_event_delete(&nx);
					if (next_event(&y, &nx) < 0)
						goto out;
				}
				if (nx.type != YAML_STREAM_END_EVENT) {
					yerr_at(&y, nx.start_mark, NULL, "only one YAML document is allowed");
					yaml_event_delete(&nx);
					goto out;
				}
				yaml_event_delete(&nx);
				done = true;
			}
			continue;
		case YAML_SCALAR_EVENT:
			if (scalar_is_null(&ev))
				break; /* empty document */
				       /* fall through */
		default:
			yerr_at(&y, ev.start_mark, NULL,
				"the file must be a mapping of sections (database:, broker:, ...), got %s",
				event_kind(&ev));
			yaml_event_delete(&ev);
			goto out;
		}
		yaml_event_delete(&ev);
	}
	rc = 0;
out:
	free(y.seen);
	yaml_parser_delete(&y.parser);
	return rc;
}

#define MAX_CONFIG_BYTES (1024 * 1024)

static int load_file(struct mqtx_config *cfg, const char *path, struct mqtx_err *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return mqtx_err_set(err, MQTX_E_CONFIG, "cannot open config file '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			fclose(f);
			return mqtx_err_set(err, MQTX_E_CONFIG, "config file '%s' is a directory", path);
		}
	}
	struct mqtx_buf b = MQTX_BUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		mqtx_buf_add(&b, chunk, n);
		if (b.len > MAX_CONFIG_BYTES) {
			fclose(f);
			mqtx_buf_free(&b);
			return mqtx_err_set(err, MQTX_E_CONFIG, "config file '%s' is larger than 1 MiB", path);
		}
	}
	if (ferror(f)) {
		fclose(f);
		mqtx_buf_free(&b);
		return mqtx_err_set(err, MQTX_E_CONFIG, "cannot read config file '%s': %s", path, strerror(errno));
	}
	fclose(f);
	if (b.len > 0 && memchr(b.data, '\0', b.len) != NULL) {
		size_t off = (size_t)((char *)memchr(b.data, '\0', b.len) - b.data);
		size_t line = 1, col = 1;
		for (size_t i = 0; i < off; i++) {
			if (b.data[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		mqtx_buf_free(&b);
		return mqtx_err_set(err, MQTX_E_CONFIG, "%s:%zu:%zu: the file contains a NUL byte (not a text file?)",
				    path, line, col);
	}
	int rc = mqtx_config_load_string(cfg, path, b.data ? b.data : "", b.len, err);
	if (rc == 0) {
		set_str(&cfg->path, path);
		/* A secret in a file others can read is worth a warning. */
		bool has_secret = cfg->n_kafka_props > 0 && strstr(b.data, "password") != NULL;
		for (size_t i = 0; i < NKEYS && !has_secret; i++) {
			if (keys[i].secret && keys[i].type == T_STR && cfg->origin[i] != NULL &&
			    strncmp(cfg->origin[i], path, strlen(path)) == 0) {
				const char *v = *(char *const *)cfield(cfg, i);
				has_secret = v != NULL && mqtx_has_password(v);
			}
		}
		if (has_secret && fstat(fileno(stdin), &st) == 0 && stat(path, &st) == 0 &&
		    (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
			mqtx_warn("config file '%s' contains a password and is readable by others (chmod 600 it, or use password_file)",
				  path);
	}
	explicit_bzero(b.data ? b.data : chunk, b.data ? b.len : 0);
	mqtx_buf_free(&b);
	return rc;
}

static bool file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static int load_env(struct mqtx_config *cfg, struct mqtx_err *err)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].type == T_MAP)
			continue;
		char *name = mqtx_config_env_name(i);
		const char *v = getenv(name);
		if (v != NULL && v[0] != '\0') {
			char origin[300];
			snprintf(origin, sizeof(origin), "env %s", name);
			if (store(cfg, i, v, err) < 0) {
				mqtx_err_prefix(err, "environment variable %s (%s)", name, keys[i].name);
				err->kind = MQTX_E_CONFIG;
				free(name);
				return -1;
			}
			set_origin(cfg, i, origin);
		}
		free(name);
	}
	return 0;
}

int mqtx_config_load(struct mqtx_config *cfg, const char *explicit_path, struct mqtx_err *err)
{
	const char *path = explicit_path;
	char buf[4096];

	if (path == NULL) {
		const char *envp = getenv("MQTX_CONFIG");
		if (envp != NULL && envp[0] != '\0') {
			path = envp;
		} else if (file_exists("mqtx.yaml")) {
			path = "mqtx.yaml";
		} else {
			const char *xdg = getenv("XDG_CONFIG_HOME");
			const char *home = getenv("HOME");
			buf[0] = '\0';
			if (xdg != NULL && xdg[0] != '\0')
				snprintf(buf, sizeof(buf), "%s/mqtx/config.yaml", xdg);
			else if (home != NULL && home[0] != '\0')
				snprintf(buf, sizeof(buf), "%s/.config/mqtx/config.yaml", home);
			if (buf[0] != '\0' && file_exists(buf))
				path = buf;
			else if (file_exists("/etc/mqtx/config.yaml"))
				path = "/etc/mqtx/config.yaml";
		}
	}
	if (path != NULL && load_file(cfg, path, err) < 0)
		return -1;
	return load_env(cfg, err);
}

int mqtx_config_set(struct mqtx_config *cfg, const char *key, const char *value, const char *origin,
		    struct mqtx_err *err)
{
	ssize_t ki = find_key(key);
	if (ki < 0)
		return mqtx_err_set(err, MQTX_E_INTERNAL, "no configuration key '%s'", key);
	if (store(cfg, (size_t)ki, value, err) < 0) {
		mqtx_err_prefix(err, "%s", origin);
		err->kind = MQTX_E_USAGE;
		return -1;
	}
	set_origin(cfg, (size_t)ki, origin);
	return 0;
}

static const char *origin_or_default(const struct mqtx_config *cfg, const char *key)
{
	ssize_t ki = find_key(key);
	if (ki < 0 || cfg->origin[ki] == NULL)
		return "default";
	return cfg->origin[ki];
}

/* Retention against completion tracking: a sent row nobody completed must
 * outlive what looks for it. */
static int validate_retention(const struct mqtx_config *cfg, struct mqtx_err *err)
{
	char a[32], b[32];
	int64_t keep = cfg->outbox_retention_ms, unc = cfg->outbox_retain_uncompleted_ms;
	if (keep != 0 && unc != 0 && unc < keep) {
		mqtx_format_duration(unc, a, sizeof(a));
		mqtx_format_duration(keep, b, sizeof(b));
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "%s: outbox.retain_uncompleted: %s is shorter than outbox.retention (%s): sent rows "
				    "that no consumer completed would go before completed ones; make it at least %s, or off",
				    origin_or_default(cfg, "outbox.retain_uncompleted"), a, b, b);
	}
	/* how long an uncompleted sent row stays: 0 = for ever */
	int64_t uncompleted = keep == 0 ? 0 : unc != 0 ? unc : keep;
	if (cfg->check_completion && uncompleted != 0 && uncompleted < cfg->check_completion_window_ms) {
		const char *key = unc != 0 ? "outbox.retain_uncompleted" : "outbox.retention";
		mqtx_format_duration(uncompleted, a, sizeof(a));
		mqtx_format_duration(cfg->check_completion_window_ms, b, sizeof(b));
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "%s: %s: %s is shorter than check.completion_window (%s), which check.completion "
				    "switches on: sent rows no consumer completed would be deleted before mqtx check "
				    "reports them; set outbox.retain_uncompleted to at least %s",
				    origin_or_default(cfg, key), key, a, b, b);
	}
	return 0;
}

int mqtx_config_validate(const struct mqtx_config *cfg, struct mqtx_err *err)
{
	if (cfg->outbox_table == NULL || cfg->outbox_table[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG, "%s: outbox.table: must not be empty",
				    origin_or_default(cfg, "outbox.table"));
	if (cfg->outbox_schema == NULL || cfg->outbox_schema[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG, "%s: outbox.schema: must not be empty",
				    origin_or_default(cfg, "outbox.schema"));
	static const enum mqtx_col required[] = {MQTX_COL_ID,        MQTX_COL_DESTINATION, MQTX_COL_PAYLOAD,
						 MQTX_COL_STATUS,    MQTX_COL_ATTEMPTS,    MQTX_COL_AVAILABLE_AT,
						 MQTX_COL_LAST_ERROR};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		const char *c = cfg->outbox_columns[required[i]];
		if (c == NULL || c[0] == '\0') {
			const char *key = keys[find_key("outbox.columns.id") + (ssize_t)required[i]].name;
			return mqtx_err_set(err, MQTX_E_CONFIG,
					    "%s: %s: this column is required (mqtx init --print shows how to add it)",
					    origin_or_default(cfg, key), key);
		}
	}
	if (cfg->relay_backoff_max_ms < cfg->relay_backoff_initial_ms)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "%s: relay.backoff_max: must not be smaller than relay.backoff_initial",
				    origin_or_default(cfg, "relay.backoff_max"));
	return validate_retention(cfg, err);
}

char *mqtx_read_secret_file(const char *path, struct mqtx_err *err)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		mqtx_err_set(err, MQTX_E_CONFIG, "cannot open password file '%s': %s", path, strerror(errno));
		return NULL;
	}
	char line[4096];
	if (fgets(line, sizeof(line), f) == NULL) {
		fclose(f);
		mqtx_err_set(err, MQTX_E_CONFIG, "password file '%s' is empty", path);
		return NULL;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	char *s = mqtx_xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return s;
}

char *mqtx_config_env_name(size_t i)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_adds(&b, "MQTX_");
	for (const char *p = keys[i].name; *p != '\0'; p++)
		mqtx_buf_addc(&b, *p == '.' ? '_' : (char)toupper((unsigned char)*p));
	return mqtx_buf_detach(&b);
}

const char *mqtx_config_key_type(size_t i)
{
	return keys[i].type == T_ENUM ? keys[i].choices : types[keys[i].type].name;
}

char *mqtx_config_value_text(const struct mqtx_config *cfg, size_t i)
{
	return types[keys[i].type].show(cfg, &keys[i], cfield(cfg, i));
}

const char *mqtx_config_origin(const struct mqtx_config *cfg, const char *key)
{
	for (size_t i = 0; i < mqtx_config_key_count(); i++)
		if (strcmp(mqtx_config_key_name(i), key) == 0)
			return cfg->origin != NULL ? cfg->origin[i] : NULL;
	return NULL;
}
