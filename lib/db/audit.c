/* dedupe-audit's SQL (see audit.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "db/outbox.h"
#include "db/pg.h"
#include "db/tail.h"

/* microseconds since the epoch <-> timestamptz */
#define TS_SQL(p) "('epoch'::timestamptz + (" p ")::int8 * interval '1 microsecond')"
#define US_SQL(e) "(CASE WHEN isfinite(" e ") THEN (extract(epoch FROM (" e ")) * 1000000)::int8 END)"

struct mqtx_audit_db {
	PGconn *conn;
	const struct mqtx_config *cfg;
	struct mqtx_outbox *ob;
	struct mqtx_tail *tl; /* outbox.mode tail; NULL in status mode */
	char *select;         /* (SELECT ...) the outbox as "o" */
	bool has_okey, has_sent_at;
	char window[200]; /* " AND o.sent_at >= ... AND o.sent_at < ..." with integer literals */
};

static void outbox_select(struct mqtx_audit_db *db)
{
	PGconn *conn = db->conn;
	const struct mqtx_config *cfg = db->cfg;
	char *qc[MQTX_COL__COUNT] = {0};
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		if (cfg->outbox_columns[c] != NULL && cfg->outbox_columns[c][0] != '\0')
			qc[c] = mqtx_pg_ident(conn, cfg->outbox_columns[c]);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "(SELECT t.%s::int8 AS id, ", qc[MQTX_COL_ID]);
	if (qc[MQTX_COL_KEY] != NULL) {
		mqtx_buf_printf(&b, "t.%s::text AS key, ", qc[MQTX_COL_KEY]);
	} else {
		char *prefix = mqtx_outbox_key_prefix_literal(conn, cfg);
		mqtx_buf_printf(&b, "(%s || t.%s) AS key, ", prefix, qc[MQTX_COL_ID]);
		free(prefix);
	}
	db->has_okey = qc[MQTX_COL_ORDERING_KEY] != NULL;
	/* tail mode: "sent" is relayed (the effective status), and a row's
	 * time is its created_at (tail-mode rows have no sent_at) */
	enum mqtx_col when = db->tl != NULL ? MQTX_COL_CREATED_AT : MQTX_COL_SENT_AT;
	db->has_sent_at = qc[when] != NULL;
	if (db->has_okey)
		mqtx_buf_printf(&b, "t.%s::text AS okey, ", qc[MQTX_COL_ORDERING_KEY]);
	else
		mqtx_buf_adds(&b, "NULL::text AS okey, ");
	if (db->tl != NULL)
		mqtx_tail_status_sql(db->tl, &b, "t");
	else
		mqtx_buf_printf(&b, "t.%s::text", qc[MQTX_COL_STATUS]);
	mqtx_buf_adds(&b, " AS status, ");
	if (db->has_sent_at)
		mqtx_buf_printf(&b, "t.%s::timestamptz AS sent_at, ", qc[when]);
	else
		mqtx_buf_adds(&b, "NULL::timestamptz AS sent_at, ");
	mqtx_buf_printf(&b, "t.%s::text AS dest FROM %s t)", qc[MQTX_COL_DESTINATION], mqtx_outbox_qualified(db->ob));
	db->select = mqtx_buf_detach(&b);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		free(qc[c]);
}

struct mqtx_audit_db *mqtx_audit_db_connect(const struct mqtx_config *cfg, struct mqtx_err *err)
{
	struct mqtx_audit_db *db = mqtx_xcalloc(1, sizeof(*db));
	db->cfg = cfg;
	db->conn = mqtx_pg_connect(cfg, "mqtx dedupe-audit", err);
	if (db->conn == NULL || (db->ob = mqtx_outbox_new(db->conn, cfg, err)) == NULL ||
	    (mqtx_config_tail(cfg) && (db->tl = mqtx_tail_new(db->conn, db->ob, cfg, err)) == NULL)) {
		mqtx_audit_db_free(db);
		return NULL;
	}
	outbox_select(db);
	return db;
}

void mqtx_audit_db_free(struct mqtx_audit_db *db)
{
	if (db == NULL)
		return;
	mqtx_tail_free(db->tl);
	mqtx_outbox_free(db->ob);
	mqtx_pg_close(db->conn);
	free(db->select);
	free(db);
}

bool mqtx_audit_db_has_sent_at(const struct mqtx_audit_db *db)
{
	return db->has_sent_at;
}

/* How long a step took, for --verbose. */
static void took(const char *doing, int64_t t0)
{
	mqtx_debug("audit: %.1fs for: %s", (double)(mqtx_now_ms() - t0) / 1000.0,
		   doing + (strncmp(doing, "cannot ", 7) == 0 ? 7 : 0));
}

static int copy_out(struct mqtx_audit_db *db, const char *sql, const char *doing, mqtx_audit_db_line_fn fn, void *ctx,
		    struct mqtx_err *err)
{
	int64_t t0 = mqtx_now_ms();
	int rc = mqtx_pg_copy_out(db->conn, sql, doing, true, fn, ctx, err);
	took(doing, t0);
	return rc;
}

static PGresult *query(struct mqtx_audit_db *db, const char *sql, int n, const char *const *params, const char *doing,
		       struct mqtx_err *err)
{
	int64_t t0 = mqtx_now_ms();
	PGresult *res = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	took(doing, t0);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		mqtx_pg_fail(db->conn, res, doing, err);
		return NULL;
	}
	return res;
}

static int command(struct mqtx_audit_db *db, const char *sql, int n, const char *const *params, const char *doing,
		   struct mqtx_err *err)
{
	PGresult *res = query(db, sql, n, params, doing, err);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

static int64_t v64(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static const char *vstr(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int mqtx_audit_db_clock(struct mqtx_audit_db *db, int64_t *now_us, char **prefix, struct mqtx_err *err)
{
	char *lit = mqtx_outbox_key_prefix_literal(db->conn, db->cfg);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT " US_SQL("now()") ", %s", lit);
	free(lit);
	PGresult *res = query(db, sql.data, 0, NULL, "cannot read the database clock", err);
	mqtx_buf_free(&sql);
	if (res == NULL)
		return -1;
	*now_us = v64(res, 0, 0);
	*prefix = vstr(res, 0, 1) != NULL ? mqtx_xstrdup(vstr(res, 0, 1)) : NULL;
	PQclear(res);
	return 0;
}

void mqtx_audit_db_set_window(struct mqtx_audit_db *db, bool has_since, int64_t since_us, int64_t until_us)
{
	db->window[0] = '\0';
	if (!db->has_sent_at)
		return;
	int n = 0;
	if (has_since)
		n = snprintf(db->window, sizeof(db->window), " AND o.sent_at >= " TS_SQL("%lld"), (long long)since_us);
	snprintf(db->window + n, sizeof(db->window) - (size_t)n, " AND o.sent_at < " TS_SQL("%lld"),
		 (long long)until_us);
}

/* ---- work tables ---- */

int mqtx_audit_db_start(struct mqtx_audit_db *db, struct mqtx_err *err)
{
	const char *p[1] = {db->cfg->audit_work_mem};
	if (command(db, "SELECT set_config('work_mem', $1, false), set_config('jit', 'off', false)", 1, p,
		    "cannot set audit.work_mem", err) < 0) {
		err->kind = MQTX_E_CONFIG;
		return -1;
	}
	if (command(db, "CREATE TEMP TABLE mqtx_audit_k (seq int8, key text, rc int4)", 0, NULL,
		    "cannot create a work table (the role needs the TEMP privilege)", err) < 0 ||
	    command(db, "CREATE TEMP TABLE mqtx_audit_km (seq int8, key text, rc int4)", 0, NULL,
		    "cannot create a work table", err) < 0)
		return -1;
	return mqtx_pg_copy_in_begin(db->conn, "COPY pg_temp.mqtx_audit_k FROM STDIN", "cannot start COPY", err);
}

int mqtx_audit_db_put(struct mqtx_audit_db *db, const char *data, size_t n, struct mqtx_err *err)
{
	return mqtx_pg_copy_put(db->conn, data, n, "cannot send deliveries to the database", err);
}

int mqtx_audit_db_end(struct mqtx_audit_db *db, const char *abort_msg, struct mqtx_err *err)
{
	return mqtx_pg_copy_in_end(db->conn, abort_msg, "cannot store the deliveries", err);
}

int mqtx_audit_db_store_begin(struct mqtx_audit_db *db, const char *table, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "COPY pg_temp.%s FROM STDIN", table);
	int rc = mqtx_pg_copy_in_begin(db->conn, sql.data, "cannot store deliveries", err);
	mqtx_buf_free(&sql);
	return rc;
}

int mqtx_audit_db_store_end(struct mqtx_audit_db *db, bool failed, struct mqtx_err *err)
{
	return mqtx_pg_copy_in_end(db->conn, failed ? "failed" : NULL, "cannot store deliveries", err);
}

int mqtx_audit_db_strangers_table(struct mqtx_audit_db *db, struct mqtx_err *err)
{
	return command(db, "CREATE TEMP TABLE mqtx_audit_s (seq int8)", 0, NULL, "cannot create a work table", err);
}

/* ---- reading ---- */

int mqtx_audit_db_resolve(struct mqtx_audit_db *db, const char *table, mqtx_audit_db_line_fn fn, void *ctx,
			  struct mqtx_err *err)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "ANALYZE pg_temp.%s", table);
	int rc = command(db, b.data, 0, NULL, "cannot analyze the deliveries without an id", err);
	mqtx_buf_reset(&b);
	mqtx_buf_printf(&b,
			"COPY (SELECT k.seq, o.id, k.rc FROM pg_temp.%s k LEFT JOIN %s o ON o.key = k.key) TO STDOUT",
			table, db->select);
	if (rc == 0)
		rc = copy_out(db, b.data, "cannot find deliveries by key", fn, ctx, err);
	mqtx_buf_free(&b);
	return rc;
}

int mqtx_audit_db_read_outbox(struct mqtx_audit_db *db, int64_t lo, int64_t hi, mqtx_audit_db_line_fn fn, void *ctx,
			      struct mqtx_err *err)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b,
			"COPY (SELECT o.id, o.key, o.okey, o.status, o.dest, " US_SQL(
				"o.sent_at") ", (o.status = 'sent'%s) "
					     "FROM %s o WHERE o.id BETWEEN %lld AND %lld ORDER BY o.id) TO STDOUT",
			db->window, db->select, (long long)lo, (long long)hi);
	/* the outbox in id order: walk the primary key, never sort the table */
	int rc = command(db, "SET enable_sort = off", 0, NULL, "cannot set up the outbox scan", err);
	if (rc == 0)
		rc = copy_out(db, b.data, "cannot read the outbox", fn, ctx, err);
	mqtx_buf_free(&b);
	if (rc < 0 || command(db, "RESET enable_sort", 0, NULL, "cannot set up the outbox scan", err) < 0)
		return -1;
	return rc;
}

int mqtx_audit_db_read_sent(struct mqtx_audit_db *db, bool have_range, int64_t lo, int64_t hi, mqtx_audit_db_line_fn fn,
			    void *ctx, struct mqtx_err *err)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "COPY (SELECT o.id, o.dest, " US_SQL("o.sent_at") " FROM %s o WHERE o.status = 'sent'%s",
			db->select, db->window);
	if (have_range)
		mqtx_buf_printf(&b, " AND (o.id < %lld OR o.id > %lld)", (long long)lo, (long long)hi);
	mqtx_buf_adds(&b, ") TO STDOUT");
	int rc = copy_out(db, b.data, "cannot read the sent rows", fn, ctx, err);
	mqtx_buf_free(&b);
	return rc;
}

#define STRANGER_GROUPS                                                                                       \
	"(SELECT k.key, count(*)::int8 AS n, min(k.seq) AS first FROM "                                       \
	"(SELECT seq, key FROM pg_temp.mqtx_audit_k UNION ALL SELECT seq, key FROM pg_temp.mqtx_audit_km) k " \
	"JOIN pg_temp.mqtx_audit_s s ON s.seq = k.seq GROUP BY k.key)"

int mqtx_audit_db_count_strangers(struct mqtx_audit_db *db, int64_t *keys, int64_t *deliveries, struct mqtx_err *err)
{
	PGresult *res = query(db, "SELECT count(key), coalesce(sum(n), 0) FROM " STRANGER_GROUPS " g", 0, NULL,
			      "cannot count strangers", err);
	if (res == NULL)
		return -1;
	*keys = v64(res, 0, 0);
	*deliveries = v64(res, 0, 1);
	PQclear(res);
	return 0;
}

int mqtx_audit_db_list_strangers(struct mqtx_audit_db *db, int64_t limit,
				 int (*fn)(void *ctx, const char *key, int64_t n, int64_t first, struct mqtx_err *err),
				 void *ctx, struct mqtx_err *err)
{
	char lim[32];
	snprintf(lim, sizeof(lim), "%lld", (long long)limit);
	const char *p[1] = {lim};
	PGresult *res = query(db, "SELECT key, n, first FROM " STRANGER_GROUPS " g ORDER BY first LIMIT $1::int8", 1, p,
			      "cannot list strangers", err);
	if (res == NULL)
		return -1;
	int rc = 0;
	for (int i = 0; i < PQntuples(res) && rc == 0; i++)
		rc = fn(ctx, vstr(res, i, 0), v64(res, i, 1), v64(res, i, 2), err);
	PQclear(res);
	return rc;
}

int mqtx_audit_db_rows(struct mqtx_audit_db *db, const int64_t *ids, size_t n,
		       void (*fn)(void *ctx, int64_t id, const char *key, const char *okey, const char *status,
				  int64_t sent_at_us),
		       void *ctx, struct mqtx_err *err)
{
	if (n == 0)
		return 0;
	char *arr = mqtx_pg_int8_array(ids, n);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT o.id, o.key, o.okey, o.status, " US_SQL(
				"o.sent_at") " FROM %s o WHERE o.id = ANY($1::int8[])",
			db->select);
	const char *p[1] = {arr};
	PGresult *res = query(db, sql.data, 1, p, "cannot read the rows to show", err);
	free(arr);
	mqtx_buf_free(&sql);
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		fn(ctx, v64(res, i, 0), vstr(res, i, 1), vstr(res, i, 2), vstr(res, i, 3),
		   PQgetisnull(res, i, 4) ? INT64_MIN : v64(res, i, 4));
	PQclear(res);
	return 0;
}
