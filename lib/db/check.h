/* The SQL of mqtx check: what the database says about one outbox, read in
 * one REPEATABLE READ READ ONLY transaction so that the numbers agree
 * (mqtx_db_check_snapshot), and the look-ups of --explain. Every
 * identifier is quoted, every value a parameter. Nothing here judges:
 * lib/check's rules turn a snapshot into verdicts.
 *
 * Cost: the big statuses (sent, rolled_back) are estimated from
 * pg_class/pg_stats on large tables; pending and dead rows are read
 * through their partial indexes, at most check.scan_limit of each; recent
 * traffic is a range of the sent_at index. The table's size comes from
 * the catalogue (pg_total_relation_size of each partition), the oldest
 * row is the lowest id through the primary key; what retention deletes
 * next is lib/db/retention's preview (at most check.scan_limit rows of
 * each kind), read after the snapshot's transaction. */
#ifndef MQTX_DB_CHECK_H
#define MQTX_DB_CHECK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "config/config.h"
#include "db/retention.h"

enum mqtx_check_status {
	MQTX_ST_PENDING,
	MQTX_ST_SENT,
	MQTX_ST_DEAD,
	MQTX_ST_PREPARED,
	MQTX_ST_ROLLED_BACK,
	MQTX_ST__COUNT
};
extern const char *const mqtx_check_status_names[MQTX_ST__COUNT];

struct mqtx_check_count {
	int64_t n;        /* -1: unknown (never analyzed, or no such column) */
	bool approximate; /* an estimate (pg_class/pg_stats) or a lower bound (scan limit) */
};

#define MQTX_CHECK_PARKED INT64_MAX

/* A row named in a finding. Ages in ms; -1 when unknown. */
struct mqtx_check_row {
	int64_t id;
	char *key;
	char *destination;
	char *ordering_key; /* NULL when none */
	char *last_error;   /* NULL when none */
	int64_t attempts;
	int64_t age_ms;      /* since created_at */
	int64_t retry_in_ms; /* until available_at; <= 0: eligible now; MQTX_CHECK_PARKED: infinity */
};
void mqtx_check_row_free(struct mqtx_check_row *r);
void mqtx_check_rows_free(struct mqtx_check_row *rows, size_t n);

struct mqtx_check_dest {
	char *name;
	int64_t pending, dead;
	int64_t oldest_pending_ms;            /* -1: none or unknown */
	int64_t relayed_minute, relayed_hour; /* -1: unknown (no sent_at column) */
	int exists;                           /* --broker: 1 yes, 0 no, -1 not asked */
	char *broker_detail;                  /* what the broker said, or NULL */
};

enum mqtx_relay_state { MQTX_RELAY_LIVE, MQTX_RELAY_STOPPED, MQTX_RELAY_STALE, MQTX_RELAY_REPLACED };

struct mqtx_check_relay {
	char *relay_id, *host, *version, *last_error;
	int64_t pid;
	int64_t seen_ms;    /* since last_seen */
	int64_t started_ms; /* since started_at */
	int64_t relayed, failed;
	bool stopped;                /* stopped_at is set */
	enum mqtx_relay_state state; /* judged by lib/check's rules (check.relay_stale) */
};
void mqtx_check_relay_free(struct mqtx_check_relay *r);

struct mqtx_check_blocked {
	char *ordering_key;
	int64_t behind; /* pending rows of the key waiting behind the head */
	struct mqtx_check_row head;
};
void mqtx_check_blocked_free(struct mqtx_check_blocked *keys, size_t n);

/* What retention deletes next (mqtx_retention_preview), and why not. */
struct mqtx_check_retention {
	bool known;                   /* the preview ran */
	char *error;                  /* why it could not run, or NULL */
	char *note;                   /* mqtx_retention_note: why relayed rows are never deleted, or NULL */
	bool pruned[MQTX_RET__COUNT]; /* the kind is pruned (configured, its table there and readable) */
	int64_t due[MQTX_RET__COUNT]; /* rows the next pass deletes, at most check.scan_limit */
	bool capped[MQTX_RET__COUNT]; /* more than that: due is a lower bound */
	int64_t overdue_ms;           /* how long the oldest due outbox row has been due; -1 none */
};

/* One snapshot of an outbox. The lists at the end are the evidence the
 * rules name (a rule may move one into its finding). */
struct mqtx_check_snapshot {
	char *database;   /* current_database() */
	char *checked_at; /* ISO 8601 UTC */
	struct mqtx_check_count status[MQTX_ST__COUNT];
	int64_t total_estimate;               /* -1 unknown */
	int64_t table_bytes;                  /* table + indexes + TOAST, over every partition; -1 unknown */
	int64_t partitions;                   /* leaf partitions; -1: the outbox is not partitioned */
	int64_t oldest_row_ms;                /* since created_at of the lowest id; -1: empty, or no created_at */
	int64_t oldest_pending_ms;            /* -1: no pending rows, or no created_at column */
	int64_t relayed_minute, relayed_hour; /* -1: no sent_at column */
	bool relayed_approximate;             /* more than check.scan_limit in the hour: lower bounds */
	bool estimated_from_stats;            /* large table with planner statistics for the status column */
	int64_t high_attempt_rows;
	int64_t blocked_keys, blocked_rows; /* -1: no ordering_key column */

	struct mqtx_check_dest *dests; /* biggest backlog first */
	size_t n_dests;

	bool relays_known; /* the table mqtx_relays exists */
	struct mqtx_check_relay *relays;
	size_t n_relays;
	int64_t last_relay_seen_ms; /* -1: never */

	bool has_sent_at;              /* the outbox maps a sent_at column */
	bool completion_checked;       /* check.completion, sent_at and mqtx_completions exist */
	bool completion_table_missing; /* check.completion, but no mqtx_completions */
	int64_t awaiting_completion;
	int64_t oldest_awaiting_ms; /* since sent_at; -1 none */

	/* evidence */
	int64_t n_warn_age, n_crit_age; /* pending rows later than check.warn_age / crit_age (among those read) */
	bool pending_truncated;         /* more than check.scan_limit pending rows: counts are lower bounds */
	struct mqtx_check_row *oldest;  /* the latest pending row (at most one) */
	size_t n_oldest;
	struct mqtx_check_row *high; /* rows with check.warn_attempts or more, at most check.list_limit */
	size_t n_high;
	struct mqtx_check_row *dead; /* the newest dead rows, at most check.list_limit */
	size_t n_dead;
	struct mqtx_check_blocked *blocked; /* blocked ordering keys, at most check.list_limit */
	size_t n_blocked;
	struct mqtx_check_row *awaiting; /* sent, not completed, at most check.list_limit */
	size_t n_awaiting;
	struct mqtx_check_retention retention;
	char *relays_table;      /* "schema".mqtx_relays, quoted, for actions */
	char *completions_table; /* "schema".mqtx_completions */
};

/* A connection bound to the configured outbox table (which must exist
 * with every mapped column). conn is borrowed and must outlive it. */
struct mqtx_db_check;
struct mqtx_db_check *mqtx_db_check_new(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);
void mqtx_db_check_free(struct mqtx_db_check *db);
/* "schema".mqtx_relays and "schema".mqtx_completions, quoted; borrowed. */
const char *mqtx_db_check_relays_table(const struct mqtx_db_check *db);
const char *mqtx_db_check_completions_table(const struct mqtx_db_check *db);
/* Sets statement_timeout to check.timeout for the session. */
int mqtx_db_check_set_timeout(struct mqtx_db_check *db, struct mqtx_err *err);

/* Reads the snapshot (fills s; free with mqtx_check_snapshot_free, also
 * after an error). Relays come as LIVE or STOPPED: lib/check's rules
 * tell the stale ones. */
int mqtx_db_check_snapshot(struct mqtx_db_check *db, struct mqtx_check_snapshot *s, struct mqtx_err *err);
void mqtx_check_snapshot_free(struct mqtx_check_snapshot *s);

/* --explain: one outbox row. */
struct mqtx_db_check_message {
	struct mqtx_check_row row;
	char *routing_key, *status;
	char *created_at, *available_at, *sent_at, *redelivered_at; /* ISO 8601, NULL when unset */
	int64_t redelivery_count;
	int64_t sent_ms; /* since sent_at; -1 unknown */
};
/* Finds ident as an outbox id, then as an idempotency key (or a derived
 * key: prefix || id). *found says whether it exists; on found the caller
 * owns m's strings. 0, or -1 with err. */
int mqtx_db_check_find(struct mqtx_db_check *db, const char *ident, struct mqtx_db_check_message *m, bool *found,
		       struct mqtx_err *err);
/* The pending rows of ordering key okey before row id (the first in *head,
 * when *ahead > 0) and after it. */
int mqtx_db_check_key_neighbours(struct mqtx_db_check *db, const char *okey, int64_t id, struct mqtx_check_row *head,
				 int64_t *ahead, int64_t *behind, struct mqtx_err *err);
/* Does the relay heartbeats table exist? */
int mqtx_db_check_relays_known(struct mqtx_db_check *db, bool *known, struct mqtx_err *err);
/* Relays of the outbox seen within stale_ms (*alive), and the time since
 * any was last seen (*seen_ms, -1 never). */
int mqtx_db_check_relay_alive(struct mqtx_db_check *db, int64_t stale_ms, bool *alive, int64_t *seen_ms,
			      struct mqtx_err *err);
/* The consumer completion of key: *exists (the completions table exists),
 * *completed_at and *source (owned, NULL when none). */
int mqtx_db_check_completion(struct mqtx_db_check *db, const char *key, bool *exists, char **completed_at,
			     char **source, struct mqtx_err *err);
/* SQL that makes a pending row eligible at once (for people to run; no
 * mqtx command does that). Owned. */
char *mqtx_db_check_retry_sql(const struct mqtx_db_check *db, int64_t id);
/* s as an SQL string literal for a statement shown to people (quotes
 * doubled; E'' with backslashes doubled when s has one, as libpq does). Owned. */
char *mqtx_db_check_literal(const char *s);

#endif
