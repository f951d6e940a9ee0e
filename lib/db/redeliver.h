/* The SQL of mqtx redeliver: what a selection of outbox rows is, counting
 * and showing it, locking the next rows of it for a re-send (with the
 * ordering-key bucket locks the relay takes), recording confirmed
 * re-sends, setting dead rows back to pending, and storing consumer
 * completions in <schema>.mqtx_completions. Identifiers come from
 * configuration and are quoted; every value an operator typed is a
 * parameter. The re-send logic itself is lib/redeliver. */
#ifndef MQTX_DB_REDELIVER_H
#define MQTX_DB_REDELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "config/config.h"
#include "db/outbox.h"

/* ---- a selection (parsed by lib/redeliver) ---- */

enum mqtx_where_op {
	MQTX_OP_EQ,
	MQTX_OP_NE,
	MQTX_OP_LT,
	MQTX_OP_LE,
	MQTX_OP_GT,
	MQTX_OP_GE,
	MQTX_OP_LIKE,
	MQTX_OP_IS_NULL,
	MQTX_OP_NOT_NULL,
};

/* How a --where value is bound: int8, text or timestamptz. */
enum mqtx_where_type { MQTX_WHERE_INT, MQTX_WHERE_TEXT, MQTX_WHERE_TIME };

struct mqtx_where_cond {
	enum mqtx_col col;
	enum mqtx_where_op op;
	enum mqtx_where_type type;
	char *value; /* NULL for IS [NOT] NULL; always bound as a parameter */
};

struct mqtx_where {
	struct mqtx_where_cond *conds;
	size_t n;
};

struct mqtx_id_range {
	int64_t lo, hi; /* inclusive */
};

/* --since/--until: a point in time, or a duration before now. */
struct mqtx_time_bound {
	bool set;
	int64_t ago_ms; /* >= 0: now() minus this; -1: use at */
	char *at;       /* timestamp text, parsed by PostgreSQL */
};

struct mqtx_selection {
	struct mqtx_id_range *ids;
	size_t n_ids;
	char **keys;
	size_t n_keys;
	char **ordering_keys;
	size_t n_ordering_keys;
	char **destinations;
	size_t n_destinations;
	char **statuses;
	size_t n_statuses;
	struct mqtx_time_bound since, until;
	bool time_sent; /* --since/--until compare with sent_at, else created_at */
	struct mqtx_where where;
	int64_t unacked_after_ms; /* < 0: off */
	int64_t max_redeliveries; /* with unacked_after_ms: redelivery_count below this (0: no limit) */
};

/* One selected row as text, for --dry-run. Borrowed for the callback. */
struct mqtx_redeliver_row {
	const char *id, *key, *status, *destination, *routing_key, *ordering_key;
	const char *attempts, *redelivery_count, *created_at, *sent_at; /* may be NULL */
};

/* ---- the database side of a run ---- */

struct mqtx_redeliver_db;

/* Connects (application_name client_name) and binds to the outbox. cfg
 * and sel are borrowed and must outlive db. */
struct mqtx_redeliver_db *mqtx_redeliver_db_new(const struct mqtx_config *cfg, const struct mqtx_selection *sel,
						const char *client_name, struct mqtx_err *err);
void mqtx_redeliver_db_free(struct mqtx_redeliver_db *db);
/* Whether the outbox table has column c. */
bool mqtx_redeliver_db_has_col(const struct mqtx_redeliver_db *db, enum mqtx_col c);

/* How many rows the selection holds (at most limit; 0: no limit). */
int mqtx_redeliver_db_count(struct mqtx_redeliver_db *db, int64_t limit, int64_t *n, struct mqtx_err *err);
/* Calls row for the first n selected rows in id order. */
int mqtx_redeliver_db_sample(struct mqtx_redeliver_db *db, int64_t n,
			     void (*row)(void *ctx, const struct mqtx_redeliver_row *row), void *ctx,
			     struct mqtx_err *err);

/* The rows of a re-send batch, locked in the open transaction. */
struct mqtx_resend_rows {
	struct mqtx_batch *batch; /* owned; the selected sent/dead rows after the cursor, in id order */
	size_t n_locked;          /* the leading rows whose ordering-key bucket this transaction holds */
	bool *blocked;            /* per row: an earlier row of its ordering key is still pending */
	int64_t *redeliveries;    /* per row: redelivery_count before this re-send */
	char **keys;              /* the ordering keys whose bucket locks are held */
	size_t n_keys;
};
void mqtx_resend_rows_free(struct mqtx_resend_rows *rows);

/* Opens a re-send transaction whose lock waits end after lock_timeout_ms
 * (announcing relay.ordering_buckets first, once per connection). */
int mqtx_redeliver_db_begin(struct mqtx_redeliver_db *db, int64_t lock_timeout_ms, struct mqtx_err *err);
/* In the open transaction: the ordering keys among the next limit
 * selected rows after cursor, their bucket locks, then the rows
 * themselves (FOR UPDATE SKIP LOCKED). */
int mqtx_redeliver_db_lock_rows(struct mqtx_redeliver_db *db, int64_t cursor, int64_t limit,
				struct mqtx_resend_rows *out, struct mqtx_err *err);
/* Records the re-send of rows ids[0..n) (redelivery_count + 1,
 * redelivered_at, a dead row becomes sent); *changed: rows updated. */
int mqtx_redeliver_db_record(struct mqtx_redeliver_db *db, const int64_t *ids, size_t n, int64_t *changed,
			     struct mqtx_err *err);
int mqtx_redeliver_db_commit(struct mqtx_redeliver_db *db, struct mqtx_err *err);
/* Rolls back the open transaction (connection errors ignored). */
void mqtx_redeliver_db_rollback(struct mqtx_redeliver_db *db);

/* Sets up to limit selected dead rows after *cursor back to pending
 * (attempts 0, available_at now()); *n: how many; *cursor moves past them. */
int mqtx_redeliver_db_requeue(struct mqtx_redeliver_db *db, int64_t *cursor, int64_t limit, int64_t *n,
			      struct mqtx_err *err);
/* Stores keys[0..n) in mqtx_completions with source (autocommit);
 * *added: keys new to the table. */
int mqtx_redeliver_db_add_completions(struct mqtx_redeliver_db *db, char *const *keys, size_t n, const char *source,
				      int64_t *added, struct mqtx_err *err);

#endif
