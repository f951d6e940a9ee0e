/* Tail mode (outbox.mode: tail): the outbox read like PgQ reads its event
 * tables, by transaction snapshots, with a checkpoint per ordering bucket
 * instead of a sent flag per row. See mqtx-relay(1), TAIL MODE.
 *
 * A bucket's checkpoint is (prev, cur, pos): the rows of transactions
 * visible in snapshot prev are relayed; those visible in cur and not in
 * prev (the interval) are relayed up to id pos. prev NULL is "from the
 * beginning" (the first interval also holds the rows of the status era,
 * whose txid is NULL). Rows that failed, wait for a retry or a delivery
 * time, or wait behind such a row of their ordering key, are parked in
 * mqtx_tail_parked; healthy rows are never written.
 *
 * This is the one place that says which rows a tail-mode outbox has
 * relayed: the relay, mqtx check, redeliver, retention and dedupe-audit
 * use the SQL pieces below. */
#ifndef MQTX_DB_TAIL_H
#define MQTX_DB_TAIL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "config/config.h"
#include "db/outbox.h"

struct mqtx_tail;

/* Advisory lock ids, second int of (lock_class, id) with lock_class =
 * mqtx_outbox_lock_class(): status mode's bucket locks use 0..65535, slot
 * leases -1..-256, bucket-count marks around -1000000. */
#define MQTX_TAIL_MARK_STATUS (-3000001) /* shared: a status relay runs */
#define MQTX_TAIL_MARK_TAIL (-3000002)   /* shared: a tail relay runs */
#define MQTX_TAIL_BUCKET_LOCK 3000000    /* + bucket: session lock of its owner */

/* Binds to ob's table on conn (both borrowed, must outlive tl): reads the
 * bucket count from the checkpoint table. Fails with MQTX_E_CONFIG when
 * the outbox is not set up for tail mode (no txid column, no checkpoint
 * rows: run mqtx init with outbox.mode tail). Turns JIT off on conn
 * (SET jit = off): it cost more than the tail statements it compiled. */
struct mqtx_tail *mqtx_tail_new(PGconn *conn, struct mqtx_outbox *ob, const struct mqtx_config *cfg,
				struct mqtx_err *err);
void mqtx_tail_free(struct mqtx_tail *tl);

/* Number of buckets (checkpoint rows). */
int mqtx_tail_buckets(const struct mqtx_tail *tl);
/* "schema".mqtx_tail_checkpoints and "schema".mqtx_tail_parked; borrowed. */
const char *mqtx_tail_checkpoints_table(const struct mqtx_tail *tl);
const char *mqtx_tail_parked_table(const struct mqtx_tail *tl);
/* The outbox's name as the tables' outbox column holds it, as an SQL
 * string literal ('"public"."mqtx_outbox"'); borrowed. */
const char *mqtx_tail_outbox_literal(const struct mqtx_tail *tl);

/* SQL pieces over a row of the outbox with alias `t` (a table alias or a
 * parenthesised whole-row expression such as "(c.r)"). */
/* int4: the bucket of the row. */
void mqtx_tail_bucket_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t);
/* boolean: the row is relayed according to checkpoint row `cp` (a row of
 * the checkpoint table: its bucket's). */
void mqtx_tail_covered_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t, const char *cp);
/* boolean: the row is in the interval (prev, cur), given as SQL
 * expressions of type pg_snapshot (prev may be NULL: from the beginning). */
void mqtx_tail_interval_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t, const char *prev,
			    const char *cur);
/* text: the row's effective status: 'dead' (parked dead), 'pending'
 * (parked, or committed and not yet relayed), 'sent' (relayed), or the
 * status column when it is not 'pending' (status-era rows, half messages
 * rolled back). Uses scalar subqueries on the parked and checkpoint tables. */
void mqtx_tail_status_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t);

/* Mode announcements, for as long as conn lives (shared session advisory
 * locks). A tail relay refuses while a status relay runs, and the other
 * way round; a status relay also refuses while the outbox has tail-mode
 * checkpoints (its 'pending' rows may have been relayed already).
 * Returns 0, or -1 with err (MQTX_E_CONFIG for a refusal). */
int mqtx_tail_announce(PGconn *conn, struct mqtx_outbox *ob, bool tail, struct mqtx_err *err);

#endif
