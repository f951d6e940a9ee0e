/* Configuration: YAML file + MQTX_* environment + command-line flags ->
 * struct mqtx_config. Precedence: flag > env > file > default. One table in
 * config.c describes every key (type, default, help); the loader, the env
 * names, `mqtx config --keys`, the man page test and config.example.yaml
 * test all read it. */
#ifndef MQTX_CONFIG_H
#define MQTX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Logical outbox columns; config can map each to a column of an existing table. */
enum mqtx_col {
	MQTX_COL_ID,
	MQTX_COL_KEY,
	MQTX_COL_DESTINATION,
	MQTX_COL_ROUTING_KEY,
	MQTX_COL_ORDERING_KEY,
	MQTX_COL_HEADERS,
	MQTX_COL_PAYLOAD,
	MQTX_COL_CONTENT_TYPE,
	MQTX_COL_STATUS,
	MQTX_COL_ATTEMPTS,
	MQTX_COL_AVAILABLE_AT,
	MQTX_COL_CREATED_AT,
	MQTX_COL_SENT_AT,
	MQTX_COL_LAST_ERROR,
	MQTX_COL_REDELIVERY_COUNT,
	MQTX_COL_REDELIVERED_AT,
	MQTX_COL_TXID, /* tail mode: xid8 of the writing transaction */
	MQTX_COL__COUNT
};

struct mqtx_kv {
	char *key;
	char *value;
};

struct mqtx_config {
	char *database_url;
	char *database_password_file;
	int64_t database_connect_timeout_ms;

	char *broker_url;
	char *broker_password_file;
	int64_t broker_connect_timeout_ms;
	int64_t broker_heartbeat_ms;
	int64_t broker_confirm_timeout_ms;
	char *broker_tls_ca_file;
	char *broker_tls_cert_file;
	char *broker_tls_key_file;
	bool broker_tls_verify;
	struct mqtx_kv *kafka_props; /* broker.kafka pass-through */
	size_t n_kafka_props;

	char *outbox_schema;
	char *outbox_table;
	char *outbox_columns[MQTX_COL__COUNT];
	char *outbox_payload_type; /* bytea | text | json | jsonb */
	char *outbox_notify_channel;
	int64_t outbox_retention_ms;          /* 0: off */
	int64_t outbox_dead_retention_ms;     /* 0: off */
	int64_t outbox_retain_uncompleted_ms; /* 0: off (completion tracking for retention is off) */
	char *outbox_partition_by;            /* none | hour | day */
	char *outbox_mode;                    /* status | tail */
	int64_t outbox_tail_buckets;          /* init: checkpoint buckets of a tail-mode outbox */

	int64_t relay_batch_size;
	int64_t relay_max_attempts;
	int64_t relay_backoff_initial_ms;
	int64_t relay_backoff_max_ms;
	int64_t relay_backoff_jitter;
	int64_t relay_poll_interval_ms;
	int64_t relay_max_messages;
	int64_t relay_max_time_ms;
	int64_t relay_shutdown_grace_ms;
	int64_t relay_confirm_window;
	int64_t relay_ordering_buckets;
	int64_t relay_heartbeat_interval_ms;
	bool relay_loop;
	bool relay_kafka_transactions;

	/* mqtx check: thresholds and what to look at */
	int64_t check_warn_age_ms;
	int64_t check_crit_age_ms;
	int64_t check_warn_attempts;
	int64_t check_max_dead;
	int64_t check_relay_stale_ms;
	int64_t check_relay_forget_ms;
	bool check_broker;
	char *check_queues; /* list: comma-separated names */
	int64_t check_queue_max_depth;
	int64_t check_queue_min_consumers;
	bool check_completion;
	int64_t check_completion_after_ms;
	int64_t check_completion_window_ms;
	int64_t check_scan_limit;
	int64_t check_list_limit;
	int64_t check_timeout_ms;
	int64_t check_max_table_size;   /* bytes; 0: off */
	int64_t check_retention_lag_ms; /* 0: off */

	/* mqtx redeliver */
	int64_t redeliver_batch_size;
	char *redeliver_rate;        /* "N", "N/s" or "N/m"; "0": no limit */
	char *redeliver_time_column; /* created | sent */
	int64_t redeliver_max_redeliveries;
	int64_t redeliver_sample;
	char *redeliver_ack_source;
	char *redeliver_ack_group;
	int64_t redeliver_ack_wait_ms;

	/* mqtx dedupe-audit */
	char *audit_inbox_database_url; /* the consumer's database; NULL: database.url */
	char *audit_inbox_schema;
	char *audit_inbox_table;
	char *audit_inbox_key_column;
	char *audit_inbox_id_column;           /* optional: outbox id */
	char *audit_inbox_ts_column;           /* optional: when processed (delivery order) */
	char *audit_inbox_ordering_key_column; /* optional */
	int64_t audit_max_details;
	int64_t audit_max_duplicates;
	int64_t audit_max_missing;
	int64_t audit_idle_timeout_ms;
	char *audit_work_mem;

	/* mqtx txpub */
	char *txpub_mode;    /* auto | tx | confirm | kafka-tx */
	char *txpub_confirm; /* sync | batch | async */
	int64_t txpub_confirm_window;
	int64_t txpub_batch_size;  /* 0: the whole input is one batch */
	int64_t txpub_max_payload; /* bytes */
	int64_t txpub_check_after_ms;
	int64_t txpub_check_max_age_ms;
	char *txpub_check_sql;
	char *txpub_check_command;
	int64_t txpub_check_timeout_ms;
	char *txpub_check_default; /* rollback | commit */
	int64_t txpub_prepared_timeout_ms;

	char *log_format; /* text | json */
	char *log_level;  /* error | warning | info | debug */

	char *path;    /* the file that was loaded, or NULL */
	char **origin; /* per key: "file:line:col", "env NAME", "flag --x" or NULL (default) */
};

/* Where to look for a file when --config is not given: $MQTX_CONFIG,
 * ./mqtx.yaml, $XDG_CONFIG_HOME/mqtx/config.yaml (or ~/.config/...),
 * /etc/mqtx/config.yaml. explicit_path (from --config) wins and must exist. */
struct mqtx_config *mqtx_config_new(void);
void mqtx_config_free(struct mqtx_config *cfg);

/* Loads defaults, then the file (if any), then MQTX_* env. */
int mqtx_config_load(struct mqtx_config *cfg, const char *explicit_path, struct mqtx_err *err);
/* Loads only YAML text (used by tests and the fuzzer); name is used in messages. */
int mqtx_config_load_string(struct mqtx_config *cfg, const char *name, const char *text, size_t len,
			    struct mqtx_err *err);
/* Sets one key ("relay.batch_size") from a string; origin names where it
 * came from ("flag --batch"). Same validation as the file. */
int mqtx_config_set(struct mqtx_config *cfg, const char *key, const char *value, const char *origin,
		    struct mqtx_err *err);
/* Checks cross-key rules after everything is applied. */
int mqtx_config_validate(const struct mqtx_config *cfg, struct mqtx_err *err);

/* Reads a secret file (first line, trailing newline stripped). Owned result. */
char *mqtx_read_secret_file(const char *path, struct mqtx_err *err);

/* Introspection for `mqtx config` and the docs sync test. */
/* "outbox.columns.<name>", the setting that maps column c. */
const char *mqtx_config_column_key(enum mqtx_col c);
size_t mqtx_config_key_count(void);
const char *mqtx_config_key_name(size_t i);
/* Where cfg's value of key came from: "file:line:col", "env NAME",
 * "option --flag", or NULL for the default (and for an unknown key). */
const char *mqtx_config_origin(const struct mqtx_config *cfg, const char *key);
const char *mqtx_config_key_type(size_t i);
const char *mqtx_config_key_default(size_t i);
const char *mqtx_config_key_help(size_t i);
bool mqtx_config_key_secret(size_t i);
/* False for keys that cannot be set from the environment (mappings). */
bool mqtx_config_key_env(size_t i);
/* Current value as text (secrets redacted); owned string. */
char *mqtx_config_value_text(const struct mqtx_config *cfg, size_t i);
/* Env var name for key i ("MQTX_RELAY_BATCH_SIZE"); owned string. */
char *mqtx_config_env_name(size_t i);

/* outbox.mode is tail: relays track transaction snapshots, rows are never updated. */
static inline bool mqtx_config_tail(const struct mqtx_config *cfg)
{
	return cfg->outbox_mode != NULL && cfg->outbox_mode[0] == 't';
}

#endif
