/* The SQL of mqtx txpub: half messages in the outbox (status prepared),
 * the rows a --sql transaction parks (pending, available_at 'infinity'),
 * the coordinator table <schema>.mqtx_txpub_log, PREPARE TRANSACTION and
 * COMMIT/ROLLBACK PREPARED, txpub's session advisory locks, and the
 * listings `mqtx check --resolve` works through. Identifiers come from
 * configuration and are quoted; values are parameters (a transaction id
 * only as a quoted literal, where PostgreSQL takes no parameter). What to
 * do with what these return is lib/txpub. */
#ifndef MQTX_DB_TXPUB_H
#define MQTX_DB_TXPUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/msg.h"
#include "config/config.h"
#include "db/pg.h"

/* The outbox and the coordinator table seen through one connection. */
struct mqtx_txpub_db;

/* Binds to conn (borrowed: it must outlive db). */
struct mqtx_txpub_db *mqtx_txpub_db_new(PGconn *conn, const struct mqtx_config *cfg);
/* Connects (application_name "mqtx txpub"); db owns the connection. */
struct mqtx_txpub_db *mqtx_txpub_db_connect(const struct mqtx_config *cfg, struct mqtx_err *err);
/* Frees db, and closes the connection when db owns it (releasing its
 * session advisory locks). */
void mqtx_txpub_db_free(struct mqtx_txpub_db *db);
bool mqtx_txpub_db_has_col(const struct mqtx_txpub_db *db, enum mqtx_col c);
/* "schema".mqtx_txpub_log, quoted, for messages; borrowed. */
const char *mqtx_txpub_db_log_table(const struct mqtx_txpub_db *db);
/* Whether the connection is outside any transaction. */
bool mqtx_txpub_db_idle(const struct mqtx_txpub_db *db);
/* Whether the connection still works (after a failure). */
bool mqtx_txpub_db_connected(const struct mqtx_txpub_db *db);

/* Transactions. skip_notify: rows written need no relay wake-up
 * (mqtx.skip_notify, which the outbox trigger reads). */
int mqtx_txpub_db_begin(struct mqtx_txpub_db *db, bool skip_notify, struct mqtx_err *err);
int mqtx_txpub_db_commit(struct mqtx_txpub_db *db, struct mqtx_err *err);
/* Rolls back an open transaction, if any (errors ignored). */
void mqtx_txpub_db_rollback(struct mqtx_txpub_db *db);

/* ---- outbox rows by key ---- */

/* out[i] = the outbox status of keys[i], or "" when no row has it; lock
 * takes the rows' locks (FOR UPDATE) in the open transaction. */
int mqtx_txpub_db_statuses(struct mqtx_txpub_db *db, const char *const *keys, size_t n, bool lock, char (*out)[16],
			   struct mqtx_err *err);

enum mqtx_txpub_row {
	MQTX_TXPUB_ROW_PREPARED, /* a half message: status prepared, available now; existing keys are skipped */
	MQTX_TXPUB_ROW_PARKED,   /* a --sql row: pending, available_at 'infinity' (the relay never claims it) */
};
/* Inserts msgs[idx[0..n)] as rows of kind; where[idx[k]] names each in
 * errors (a field the table has no column for, a NUL the column cannot
 * hold: checked before anything is written). */
int mqtx_txpub_db_insert(struct mqtx_txpub_db *db, const struct mqtx_msg *msgs, const char *const *where,
			 const size_t *idx, size_t n, enum mqtx_txpub_row kind, struct mqtx_err *err);
/* Half messages keys[0..n) still prepared become pending (commit) or
 * rolled_back, in the open transaction. */
int mqtx_txpub_db_finish_half(struct mqtx_txpub_db *db, const char *const *keys, size_t n, bool commit,
			      struct mqtx_err *err);

/* ---- the last-resource commit ---- */

/* The lock class of txpub's session advisory locks: the coordinator
 * table's oid, so the numbers cannot meet the relay's (the outbox's oid).
 * MQTX_E_CONFIG when the table is missing. */
int mqtx_txpub_db_lock_class(struct mqtx_txpub_db *db, int32_t *cls, struct mqtx_err *err);
/* pg_try_advisory_lock (or unlock) on (cls, hashtext(gid)): 1 taken, 0 busy. */
int mqtx_txpub_db_try_lock(struct mqtx_txpub_db *db, int32_t cls, const char *gid, bool unlock, struct mqtx_err *err);
/* Whether a prepared transaction gid exists: 1, 0, or -1 with err. */
int mqtx_txpub_db_is_prepared(struct mqtx_txpub_db *db, const char *gid, struct mqtx_err *err);
/* Opens a transaction (search_path as the server's default, no relay
 * wake-up) and runs the user's SQL in it. MQTX_E_INPUT when it uses COPY
 * or ends the transaction itself; on any failure nothing stays open. */
int mqtx_txpub_db_run_user_sql(struct mqtx_txpub_db *db, const char *sql, struct mqtx_err *err);
/* In that transaction: the parked rows msgs[0..n), then PREPARE
 * TRANSACTION gid; rolled back on failure, with what a missing
 * max_prepared_transactions or a NOTIFY means said in err. */
int mqtx_txpub_db_park_and_prepare(struct mqtx_txpub_db *db, const struct mqtx_msg *msgs, const char *const *where,
				   size_t n, const char *gid, struct mqtx_err *err);
/* COMMIT PREPARED / ROLLBACK PREPARED gid. */
int mqtx_txpub_db_finish_prepared(struct mqtx_txpub_db *db, const char *gid, bool commit, struct mqtx_err *err);
/* The coordinator record: written (or refreshed) before the broker may
 * commit, read, and deleted once settled. */
int mqtx_txpub_db_write_log(struct mqtx_txpub_db *db, const char *gid, const char *key, struct mqtx_err *err);
/* 1 with confirmed_at (text) when gid has a record, 0 when not, -1. */
int mqtx_txpub_db_read_log(struct mqtx_txpub_db *db, const char *gid, char *confirmed_at, size_t size,
			   struct mqtx_err *err);
int mqtx_txpub_db_delete_log(struct mqtx_txpub_db *db, const char *gid, struct mqtx_err *err);
/* After COMMIT PREPARED: rows of sent[0..ns) parked by it become sent, the
 * parked rows of rest[0..nr) are handed to the relay (available now), the
 * record of gid goes. One statement; *marked and *handed count rows. */
int mqtx_txpub_db_settle(struct mqtx_txpub_db *db, const char *const *sent, size_t ns, const char *const *rest,
			 size_t nr, const char *gid, int64_t *marked, int64_t *handed, struct mqtx_err *err);
/* Parked rows of the transaction whose xid is given (or, with by_key, of
 * the transaction that inserted the row with that key) are handed to the
 * relay. Returns how many, or -1. */
long mqtx_txpub_db_unpark(struct mqtx_txpub_db *db, const char *xid_or_key, bool by_key, struct mqtx_err *err);
/* Wakes relays in --loop mode after rows became claimable without the
 * status change the update trigger watches for. Best effort. */
void mqtx_txpub_db_notify_relays(struct mqtx_txpub_db *db);

/* ---- what is in doubt ---- */

/* A half message prepared at least txpub.check_after ago; borrowed. */
struct mqtx_half_row {
	const char *id, *key;
	int64_t age_ms;
	const char *headers, *destination, *routing_key; /* with details; headers and routing_key may be NULL */
};
/* Calls fn for each such half message (the first 10000, in id order);
 * fn returns 0 to go on, -1 to stop with err. */
int mqtx_txpub_db_halves(struct mqtx_txpub_db *db, int64_t after_ms, bool details,
			 int (*fn)(void *ctx, const struct mqtx_half_row *row, struct mqtx_err *err), void *ctx,
			 struct mqtx_err *err);
/* Sets a prepared half message to pending (commit) or rolled_back;
 * *changed: whether it was still prepared. */
int mqtx_txpub_db_resolve_half(struct mqtx_txpub_db *db, const char *id, bool commit, bool *changed,
			       struct mqtx_err *err);
/* Runs txpub.check_sql ($1 key, $2 headers as JSON text) in a
 * transaction of its own, rolled back after, within
 * txpub.check_timeout. 0 with *answer owned (NULL when the query failed
 * or gave no value, why says so); -1 with err when the connection is lost. */
int mqtx_txpub_db_check_sql(struct mqtx_txpub_db *db, const char *key, const char *headers, char **answer, char *why,
			    size_t wl, struct mqtx_err *err);

/* A prepared transaction "mqtx:..." of this database; borrowed. */
struct mqtx_xact_row {
	const char *gid, *xid;
	int64_t age_ms;
	bool logged; /* with_log: it has a coordinator record */
	bool busy;   /* with_log: its txpub still holds the lock (class cls) */
};
/* Calls fn for each, oldest first; with_log also reads logged and busy. */
int mqtx_txpub_db_xacts(struct mqtx_txpub_db *db, bool with_log, int32_t cls,
			int (*fn)(void *ctx, const struct mqtx_xact_row *row, struct mqtx_err *err), void *ctx,
			struct mqtx_err *err);
/* Calls fn(gid, key) for each coordinator record without a prepared
 * transaction (committed by a txpub that died before settling). */
int mqtx_txpub_db_orphan_logs(struct mqtx_txpub_db *db,
			      int (*fn)(void *ctx, const char *gid, const char *key, struct mqtx_err *err), void *ctx,
			      struct mqtx_err *err);

#endif
