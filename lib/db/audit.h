/* The SQL of dedupe-audit: the outbox as a subquery "o" (id, key, okey,
 * status, sent_at, dest) limited to a sent_at window, and the session's
 * work tables pg_temp.mqtx_audit_k (deliveries without an outbox id, by
 * key), mqtx_audit_km (deliveries whose id did not fit their key) and
 * mqtx_audit_s (keys the outbox does not know), filled with COPY FROM
 * STDIN and read back with COPY TO STDOUT or small queries. The
 * comparison itself is lib/audit. Times are microseconds since the epoch. */
#ifndef MQTX_DB_AUDIT_H
#define MQTX_DB_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "config/config.h"

struct mqtx_audit_db;

/* A COPY TO STDOUT row handler: see mqtx_pg_copy_out. */
typedef int (*mqtx_audit_db_line_fn)(void *ctx, char *line, size_t n, struct mqtx_err *err);

/* Connects and binds to the outbox. cfg is borrowed. */
struct mqtx_audit_db *mqtx_audit_db_connect(const struct mqtx_config *cfg, struct mqtx_err *err);
void mqtx_audit_db_free(struct mqtx_audit_db *db);
bool mqtx_audit_db_has_sent_at(const struct mqtx_audit_db *db);
/* The database clock and the prefix of derived keys
 * ("mqtx:<db>:<schema>.<table>:"; *prefix owned). */
int mqtx_audit_db_clock(struct mqtx_audit_db *db, int64_t *now_us, char **prefix, struct mqtx_err *err);
/* Limits the rows read as sent to sent_at in [since_us, until_us)
 * (has_since false: no lower bound); a no-op without a sent_at column. */
void mqtx_audit_db_set_window(struct mqtx_audit_db *db, bool has_since, int64_t since_us, int64_t until_us);

/* Sets audit.work_mem, creates the work tables and opens the COPY into
 * mqtx_audit_k; mqtx_audit_db_put sends rows of it (COPY text), and
 * mqtx_audit_db_end closes it (abort_msg not NULL: aborted). */
int mqtx_audit_db_start(struct mqtx_audit_db *db, struct mqtx_err *err);
int mqtx_audit_db_put(struct mqtx_audit_db *db, const char *data, size_t n, struct mqtx_err *err);
int mqtx_audit_db_end(struct mqtx_audit_db *db, const char *abort_msg, struct mqtx_err *err);
/* Opens a COPY into the work table table ("mqtx_audit_km", "mqtx_audit_s");
 * rows go with mqtx_audit_db_put, and mqtx_audit_db_store_end closes it. */
int mqtx_audit_db_store_begin(struct mqtx_audit_db *db, const char *table, struct mqtx_err *err);
int mqtx_audit_db_store_end(struct mqtx_audit_db *db, bool failed, struct mqtx_err *err);
/* Creates mqtx_audit_s (seq int8). */
int mqtx_audit_db_strangers_table(struct mqtx_audit_db *db, struct mqtx_err *err);

/* Rows (seq, outbox id or \N, rc) of work table table, matched by key. */
int mqtx_audit_db_resolve(struct mqtx_audit_db *db, const char *table, mqtx_audit_db_line_fn fn, void *ctx,
			  struct mqtx_err *err);
/* The outbox rows lo..hi in id order: id, key, okey, status, dest,
 * sent_at, within the window (t/f). */
int mqtx_audit_db_read_outbox(struct mqtx_audit_db *db, int64_t lo, int64_t hi, mqtx_audit_db_line_fn fn, void *ctx,
			      struct mqtx_err *err);
/* Rows sent within the window (outside lo..hi when have_range): id, dest, sent_at. */
int mqtx_audit_db_read_sent(struct mqtx_audit_db *db, bool have_range, int64_t lo, int64_t hi, mqtx_audit_db_line_fn fn,
			    void *ctx, struct mqtx_err *err);
/* Keys of mqtx_audit_s's deliveries: how many, and how many deliveries. */
int mqtx_audit_db_count_strangers(struct mqtx_audit_db *db, int64_t *keys, int64_t *deliveries, struct mqtx_err *err);
/* The first limit of them by first delivery: fn(key, deliveries, first seq). */
int mqtx_audit_db_list_strangers(struct mqtx_audit_db *db, int64_t limit,
				 int (*fn)(void *ctx, const char *key, int64_t n, int64_t first, struct mqtx_err *err),
				 void *ctx, struct mqtx_err *err);
/* Outbox rows ids[0..n): fn(id, key, okey, status, sent_at_us); strings
 * may be NULL, sent_at_us is INT64_MIN when unknown. */
int mqtx_audit_db_rows(struct mqtx_audit_db *db, const int64_t *ids, size_t n,
		       void (*fn)(void *ctx, int64_t id, const char *key, const char *okey, const char *status,
				  int64_t sent_at_us),
		       void *ctx, struct mqtx_err *err);

#endif
