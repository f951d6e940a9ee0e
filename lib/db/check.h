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
	char *tail_buckets;          /* tail mode: the buckets whose checkpoint it wrote last ("0-7"), or NULL */
	int64_t tail_lag_ms;         /* tail mode: the largest checkpoint lag of those buckets; -1: none */
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

/* Tail mode (outbox.mode: tail, see db/tail.h): the checkpoints of the
 * outbox's ordering buckets, grouped by identical checkpoint. */
struct mqtx_check_tail_group {
	char *buckets; /* "0-3,7" */
	int64_t n_buckets;
	int64_t first_bucket;               /* the lowest */
	char *prev_snapshot, *cur_snapshot; /* pg_snapshot text; NULL: unset (prev NULL: from the beginning) */
	int64_t pos_id;                     /* the position inside (prev, cur]; -1: none */
	char *relay_id;                     /* the relay that wrote the checkpoint last; NULL: none yet */
	int64_t updated_ms;                 /* since updated_at (the group's most recent) */
	int64_t owner_pid;                  /* backend holding the buckets' advisory lock; -1: no owner */
	char *owner_app;                    /* its application_name, or NULL */
	int64_t unrelayed;                  /* unrelayed rows of the group (among those read) */
	int64_t oldest_unrelayed_ms;        /* since created_at (or since due); -1: none */
};

/* An open or prepared transaction that holds an xid (it has written):
 * rows it wrote are invisible (to check too) until it commits. */
struct mqtx_check_xact {
	bool prepared;          /* PREPARE TRANSACTION'd (pg_prepared_xacts) */
	int64_t pid;            /* backend pid; -1 when prepared */
	char *gid;              /* prepared: its gid; NULL otherwise */
	char *xid;              /* its transaction id (xid) */
	char *application_name; /* backend's; NULL when prepared or unset */
	char *state;            /* pg_stat_activity.state; NULL when prepared */
	int64_t age_ms;         /* since xact_start, or since prepared */
	bool in_xip;            /* in a checkpoint's in-progress list: a relay saw it running */
	bool wrote_outbox;      /* it holds a lock on the outbox (or a partition): it wrote rows there */
};
void mqtx_check_xacts_free(struct mqtx_check_xact *x, size_t n);

enum mqtx_check_parked { MQTX_PARKED_RETRY, MQTX_PARKED_BLOCKED, MQTX_PARKED_DEAD, MQTX_PARKED__COUNT };
extern const char *const mqtx_check_parked_names[MQTX_PARKED__COUNT];

struct mqtx_check_tail {
	bool on;                     /* outbox.mode is tail: everything below is filled */
	int64_t buckets;             /* checkpoint rows */
	int64_t owned_buckets;       /* held by a relay (advisory lock) right now */
	int64_t unrelayed;           /* committed rows not covered by their checkpoint and not parked */
	bool unrelayed_truncated;    /* more than check.scan_limit: a lower bound */
	int64_t oldest_unrelayed_ms; /* -1: none */
	int64_t oldest_unrelayed_id; /* -1: none */
	int64_t parked[MQTX_PARKED__COUNT];
	struct mqtx_check_tail_group *groups; /* by lowest bucket */
	size_t n_groups;
	int64_t n_xacts_total;         /* transactions found (xacts holds at most check.list_limit) */
	struct mqtx_check_xact *xacts; /* oldest first */
	size_t n_xacts;
	char *checkpoints_table, *parked_table; /* quoted, for actions */
	char *outbox_literal;                   /* the parked table's outbox value, as an SQL literal */
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
	char *relays_table;          /* "schema".mqtx_relays, quoted, for actions */
	char *completions_table;     /* "schema".mqtx_completions */
	struct mqtx_check_tail tail; /* outbox.mode: tail */
	bool tail_checkpoints;       /* status mode, but the outbox has tail-mode checkpoints */
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
/* Tail mode (outbox.mode: tail): is it on for db? */
bool mqtx_db_check_tail(const struct mqtx_db_check *db);

/* --explain on a tail-mode outbox: where one row stands, as the
 * checkpoint of its bucket and the parked table say. */
struct mqtx_db_check_tail_row {
	char *status; /* effective (mqtx_tail_status_sql): sent, pending, dead, or the status column */
	int64_t bucket;
	char *txid;                         /* xid8 text; NULL: a row of the status era */
	bool covered;                       /* relayed according to the bucket's checkpoint */
	bool in_prev;                       /* its transaction is visible in the checkpoint's prev snapshot */
	bool in_cur;                        /* ... in its cur snapshot (the interval the relay works on) */
	char *prev_snapshot, *cur_snapshot; /* NULL: unset */
	int64_t pos_id;                     /* -1: none */
	char *relay_id;                     /* the checkpoint's writer, or NULL */
	int64_t updated_ms;                 /* since the checkpoint's updated_at */
	int64_t owner_pid;                  /* the bucket's owner (advisory lock); -1: none */
	char *owner_app;
	int64_t ahead;      /* unrelayed rows of the bucket before it (up to check.scan_limit) */
	bool parked;        /* a row in the parked table */
	char *parked_state; /* retry, blocked, dead */
	int64_t parked_attempts;
	char *next_at;      /* ISO 8601; NULL: unset; "infinity" */
	int64_t next_in_ms; /* until next_at; <= 0: due; MQTX_CHECK_PARKED: infinity; -1 unset */
	char *parked_error;
	char *parked_at;
	int64_t seq; /* its place in the parked table (per-key order) */
};
void mqtx_db_check_tail_row_free(struct mqtx_db_check_tail_row *tr);
/* The tail facts of outbox row id (*found false when it is gone). */
int mqtx_db_check_tail_find(struct mqtx_db_check *db, int64_t id, struct mqtx_db_check_tail_row *tr, bool *found,
			    struct mqtx_err *err);
/* The first non-dead parked row of ordering key okey before seq (seq
 * INT64_MAX: any) in *head when *ahead > 0 (how many), and the blocked
 * rows of the key after seq in *behind. */
int mqtx_db_check_tail_key_head(struct mqtx_db_check *db, const char *okey, int64_t seq, struct mqtx_check_row *head,
				int64_t *ahead, int64_t *behind, struct mqtx_err *err);
/* Open or prepared transactions that wrote to the outbox (rows check
 * cannot see yet), oldest first, at most check.list_limit; *total all of
 * them; and the highest committed id (*max_id, -1: empty). */
int mqtx_db_check_tail_writers(struct mqtx_db_check *db, struct mqtx_check_xact **xacts, size_t *n, int64_t *total,
			       int64_t *max_id, struct mqtx_err *err);
/* SQL that makes a parked row due at once (for people to run). Owned. */
char *mqtx_db_check_tail_retry_sql(const struct mqtx_db_check *db, int64_t id);

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
