/* Everything SQL about the outbox table: schema creation, claiming a
 * batch, recording outcomes, relay heartbeats (outbox.c, schema.c).
 * libpq and SQL live only in lib/db/: each command's own SQL beside this
 * (redeliver.c, txpub.c, audit.c, inbox.c, check.c), connections and COPY
 * in pg.c, catalogue look-ups in catalog.c.
 *
 * A batch lives in one database transaction: claiming takes row locks
 * (FOR UPDATE SKIP LOCKED) and transaction-scoped advisory locks on the
 * hash buckets of the ordering keys it holds; the outcome is written and
 * committed after the broker answered. A relay that dies mid-batch loses
 * its transaction, so its rows simply stay pending (at-least-once). */
#ifndef MQTX_OUTBOX_H
#define MQTX_OUTBOX_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "base/error.h"
#include "base/msg.h"
#include "base/util.h"

struct mqtx_outbox;

/* A claimed batch. msgs[i] borrow from the batch; free with mqtx_batch_free. */
struct mqtx_batch {
	struct mqtx_msg *msgs;
	int64_t *attempts; /* attempts before this try, per message */
	size_t n;
	PGresult *res;
	struct mqtx_header *headers; /* storage for all msgs' headers */
	char **owned;                /* strings decoded for this batch */
	size_t n_owned;
	char **bad_headers; /* per message: why its headers were ignored, or NULL */
};

/* Binds to the configured table. conn is borrowed and must outlive ob. */
struct mqtx_outbox *mqtx_outbox_new(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);
void mqtx_outbox_free(struct mqtx_outbox *ob);
/* "schema"."table", quoted; borrowed. */
const char *mqtx_outbox_qualified(const struct mqtx_outbox *ob);
/* outbox.schema, unquoted; borrowed. */
const char *mqtx_outbox_schema_name(const struct mqtx_outbox *ob);
/* The first int of the outbox's two-int advisory locks (the table's oid). */
int32_t mqtx_outbox_lock_class(const struct mqtx_outbox *ob);

/* SQL for `mqtx init`: creates the default table (or, for an existing
 * table with a different layout, what it still needs). Owned string.
 * grant_role (may be NULL) adds the GRANTs each command needs. */
char *mqtx_outbox_init_sql(PGconn *conn, const struct mqtx_config *cfg, const char *grant_role, bool *table_exists,
			   bool *table_incomplete, struct mqtx_err *err);
/* After the SQL of mqtx_outbox_init_sql ran (in the same transaction):
 * checks that the indexes, triggers and key function it names exist and
 * belong to the table. 0, or -1 with err (MQTX_E_CONFIG when an object is
 * missing or another's). */
int mqtx_outbox_init_verify(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);
/* Runs sql (from mqtx_outbox_init_sql) in one transaction, checks what it
 * made with mqtx_outbox_init_verify, then commits; rolls back on any
 * failure. 0, or -1 with err. */
int mqtx_outbox_init_apply(PGconn *conn, const struct mqtx_config *cfg, const char *sql, struct mqtx_err *err);
/* 1 when the idempotency key column has a unique constraint or unique
 * index of its own (or keys derive from the id), 0 when not, -1 with err. */
int mqtx_outbox_key_unique(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);

/* Opens a transaction and claims up to limit eligible rows. dry_run only
 * looks (no locks kept: call mqtx_outbox_abort after). */
struct mqtx_batch *mqtx_outbox_claim(struct mqtx_outbox *ob, size_t limit, bool dry_run, struct mqtx_err *err);
void mqtx_batch_free(struct mqtx_batch *b);

struct mqtx_finish_stats {
	size_t sent, failed, dead, released;
	size_t dead_permanent; /* of dead: FAILED and permanent */
};
/* Records each message's outcome (CONFIRMED -> sent; FAILED/UNKNOWN ->
 * attempt + backoff or, after relay.max_attempts, dead; FAILED and
 * permanent -> attempt + dead at once; PENDING -> untouched) and commits. */
int mqtx_outbox_finish(struct mqtx_outbox *ob, struct mqtx_batch *b, struct mqtx_finish_stats *st,
		       struct mqtx_err *err);
/* Rolls back the open transaction, if any (connection errors ignored). */
void mqtx_outbox_abort(struct mqtx_outbox *ob);

/* For commands that select rows themselves (redeliver). */
/* The quoted name of column c, or NULL when the table has none; borrowed. */
const char *mqtx_outbox_col(const struct mqtx_outbox *ob, enum mqtx_col c);
/* Appends the SQL expression for the idempotency key of row alias. */
void mqtx_outbox_key_sql(const struct mqtx_outbox *ob, struct mqtx_buf *b, const char *alias);
/* Appends the 9 columns of a message of row alias, in the order
 * mqtx_batch_decode() reads them; the result must be binary. */
void mqtx_outbox_msg_columns(const struct mqtx_outbox *ob, struct mqtx_buf *b, const char *alias);
/* A batch from a binary result whose first columns are
 * mqtx_outbox_msg_columns(); takes ownership of res. */
struct mqtx_batch *mqtx_batch_decode(PGresult *res);
/* In the caller's open transaction, takes the ordering-key bucket locks
 * that claiming try-takes, for keys[0..n), waiting for them (bounded by
 * lock_timeout), in bucket order. Held until the transaction ends: no
 * relay claims rows of these keys meanwhile. */
int mqtx_outbox_lock_keys(struct mqtx_outbox *ob, const char *const *keys, size_t n, struct mqtx_err *err);

/* LISTEN on the insert-notification channel. */
int mqtx_outbox_listen(struct mqtx_outbox *ob, struct mqtx_err *err);
/* Waits up to ms for a notification; returns 1 if one came, 0 on timeout. */
int mqtx_outbox_wait(struct mqtx_outbox *ob, int64_t ms, struct mqtx_err *err);

/* Leases the lowest free relay slot number in [0, max) for as long as
 * this connection lives (a session advisory lock), so that a restarted
 * relay gets the number its dead predecessor had. Returns it, or -1 with
 * err (all taken, or a database error). */
int mqtx_outbox_lease_slot(struct mqtx_outbox *ob, int max, struct mqtx_err *err);

/* Ordering-key buckets only keep per-key order when every relay and
 * redeliver of the outbox hashes keys into the same number of buckets.
 * Announces this process's relay.ordering_buckets for as long as this
 * connection lives (a shared session advisory lock) and fails with a
 * configuration error when a running relay or redeliver announced another
 * number. A no-op without an ordering-key column. Returns 0, or -1 with err. */
int mqtx_outbox_agree_buckets(struct mqtx_outbox *ob, struct mqtx_err *err);

/* Relay heartbeats (table mqtx_relays beside the outbox). */
struct mqtx_heartbeat {
	const char *relay_id;
	const char *version;
	int64_t relayed;
	int64_t failed;
	const char *last_error; /* may be NULL */
	bool batch_done;        /* update last_batch_at */
	bool stopping;          /* set stopped_at */
};
int mqtx_outbox_heartbeat(struct mqtx_outbox *ob, const struct mqtx_heartbeat *hb, struct mqtx_err *err);

/* SQL expression (owned) for the prefix of derived idempotency keys,
 * "'mqtx:' || current_database() || ':<schema>.<table>:'"; the id follows. */
char *mqtx_outbox_key_prefix_literal(PGconn *conn, const struct mqtx_config *cfg);

/* Retry delay after `attempts` failed tries, with jitter. */
int64_t mqtx_backoff_ms(const struct mqtx_config *cfg, int64_t attempts);

#endif
