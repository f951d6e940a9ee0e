/* mqtx redeliver's SQL (see redeliver.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/redeliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "db/pg.h"
#include "db/tail.h"

/* ---- statements ---- */

/* A statement and its parameters (owned text). */
struct stmt {
	struct mqtx_buf sql;
	char **params;
	int n;
};

static int param(struct stmt *s, const char *v)
{
	s->params = mqtx_xrealloc(s->params, (size_t)(s->n + 1) * sizeof(char *));
	s->params[s->n++] = v != NULL ? mqtx_xstrdup(v) : NULL;
	return s->n;
}

static int param_i64(struct stmt *s, int64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return param(s, buf);
}

static int param_array(struct stmt *s, char *const *v, size_t n)
{
	char *a = mqtx_pg_text_array((const char *const *)v, n);
	int k = param(s, a);
	free(a);
	return k;
}

static void stmt_free(struct stmt *s)
{
	mqtx_buf_free(&s->sql);
	for (int i = 0; i < s->n; i++)
		free(s->params[i]);
	free(s->params);
	memset(s, 0, sizeof(*s));
}

static PGresult *stmt_exec(PGconn *conn, const struct stmt *s, int format)
{
	return PQexecParams(conn, s->sql.data, s->n, NULL, (const char *const *)s->params, NULL, NULL, format);
}

struct mqtx_redeliver_db {
	const struct mqtx_config *cfg;
	const struct mqtx_selection *sel;
	PGconn *pg;
	struct mqtx_outbox *ob;
	char *T;           /* "schema"."table" */
	char *completions; /* "schema".mqtx_completions */
	const char *c[MQTX_COL__COUNT];
	bool buckets_agreed; /* relay.ordering_buckets announced (mqtx_outbox_agree_buckets) */
	/* outbox.mode tail: the effective status (mqtx_tail_status_sql) stands
	 * for the status column, created_at for sent_at; NULL in status mode */
	struct mqtx_tail *tl;
};

/* The row's status as redeliver means it: the status column, or in tail
 * mode the effective status ('sent' = relayed, 'dead' = parked dead or a
 * dead row of the status era, 'pending'). */
static void status_sql(const struct mqtx_redeliver_db *r, struct mqtx_buf *b, const char *t)
{
	if (r->tl != NULL)
		mqtx_tail_status_sql(r->tl, b, t);
	else
		mqtx_buf_printf(b, "%s.%s::text", t, r->c[MQTX_COL_STATUS]);
}

/* The column that says when a row was sent: sent_at, or in tail mode
 * (which has no sent_at) created_at. */
static enum mqtx_col sent_col(const struct mqtx_redeliver_db *r)
{
	return r->tl != NULL ? MQTX_COL_CREATED_AT : MQTX_COL_SENT_AT;
}

/* The logical name of column c ("sent_at"), for messages. */
static const char *col_name(enum mqtx_col c)
{
	const char *k = mqtx_config_column_key(c);
	const char *dot = strrchr(k, '.');
	return dot != NULL ? dot + 1 : k;
}

/* ---- the selection ---- */

/* t.<column>, or an error naming the unmapped column. */
static int col(struct mqtx_redeliver_db *r, struct mqtx_buf *b, enum mqtx_col c, const char *why, struct mqtx_err *err)
{
	if (c == MQTX_COL_KEY) {
		mqtx_outbox_key_sql(r->ob, b, "t");
		return 0;
	}
	if (r->c[c] == NULL)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "%s needs the column '%s', which this outbox table lacks (outbox.columns.%s is empty)",
				    why, col_name(c), col_name(c));
	mqtx_buf_printf(b, "t.%s", r->c[c]);
	return 0;
}

static const char *op_sql(enum mqtx_where_op op)
{
	switch (op) {
	case MQTX_OP_EQ: return "=";
	case MQTX_OP_NE: return "<>";
	case MQTX_OP_LT: return "<";
	case MQTX_OP_LE: return "<=";
	case MQTX_OP_GT: return ">";
	case MQTX_OP_GE: return ">=";
	case MQTX_OP_LIKE: return "LIKE";
	case MQTX_OP_IS_NULL: return "IS NULL";
	case MQTX_OP_NOT_NULL: return "IS NOT NULL";
	}
	return "=";
}

static int add_time_bound(struct mqtx_redeliver_db *r, struct stmt *s, const struct mqtx_time_bound *t, const char *cmp,
			  struct mqtx_err *err)
{
	if (!t->set)
		return 0;
	enum mqtx_col c = r->sel->time_sent ? sent_col(r) : MQTX_COL_CREATED_AT;
	mqtx_buf_adds(&s->sql, " AND ");
	if (col(r, &s->sql, c, "--since/--until", err) < 0)
		return -1;
	if (t->ago_ms >= 0)
		mqtx_buf_printf(&s->sql, " %s now() - $%d::int8 * interval '1 millisecond'", cmp,
				param_i64(s, t->ago_ms));
	else
		mqtx_buf_printf(&s->sql, " %s $%d::timestamptz", cmp, param(s, t->at));
	return 0;
}

static void add_ids(struct mqtx_redeliver_db *r, struct stmt *s)
{
	const struct mqtx_selection *sel = r->sel;
	struct mqtx_buf *b = &s->sql;
	mqtx_buf_adds(b, " AND (");
	for (size_t i = 0; i < sel->n_ids; i++) {
		int lo = param_i64(s, sel->ids[i].lo);
		if (sel->ids[i].lo == sel->ids[i].hi)
			mqtx_buf_printf(b, "%st.%s = $%d::int8", i ? " OR " : "", r->c[MQTX_COL_ID], lo);
		else
			mqtx_buf_printf(b, "%st.%s BETWEEN $%d::int8 AND $%d::int8", i ? " OR " : "", r->c[MQTX_COL_ID],
					lo, param_i64(s, sel->ids[i].hi));
	}
	mqtx_buf_addc(b, ')');
}

static int add_where(struct mqtx_redeliver_db *r, struct stmt *s, const struct mqtx_where_cond *c, struct mqtx_err *err)
{
	struct mqtx_buf *b = &s->sql;
	char why[64];
	snprintf(why, sizeof(why), "--where on %s", col_name(c->col));
	mqtx_buf_adds(b, " AND ");
	if (col(r, b, c->col, why, err) < 0)
		return -1;
	if (c->op == MQTX_OP_IS_NULL || c->op == MQTX_OP_NOT_NULL) {
		mqtx_buf_printf(b, " %s", op_sql(c->op));
		return 0;
	}
	if (c->type == MQTX_WHERE_TEXT)
		mqtx_buf_adds(b, "::text");
	mqtx_buf_printf(b, " %s $%d::%s", op_sql(c->op), param(s, c->value),
			c->type == MQTX_WHERE_INT    ? "int8"
			: c->type == MQTX_WHERE_TIME ? "timestamptz"
						     : "text");
	return 0;
}

static int add_unacked(struct mqtx_redeliver_db *r, struct stmt *s, struct mqtx_err *err)
{
	const struct mqtx_selection *sel = r->sel;
	struct mqtx_buf *b = &s->sql;
	int p = param_i64(s, sel->unacked_after_ms);
	/* redelivered_at >= sent_at: both older than the cutoff, written so the sent_at index can help */
	mqtx_buf_adds(b, " AND ");
	status_sql(r, b, "t");
	mqtx_buf_adds(b, " = 'sent' AND ");
	if (col(r, b, sent_col(r), "--unacked-after", err) < 0)
		return -1;
	mqtx_buf_printf(b, " < now() - $%d::int8 * interval '1 millisecond'", p);
	mqtx_buf_printf(b, " AND (t.%s IS NULL OR t.%s < now() - $%d::int8 * interval '1 millisecond')",
			r->c[MQTX_COL_REDELIVERED_AT], r->c[MQTX_COL_REDELIVERED_AT], p);
	mqtx_buf_printf(b, " AND NOT EXISTS (SELECT 1 FROM %s c WHERE c.idempotency_key = ", r->completions);
	mqtx_outbox_key_sql(r->ob, b, "t");
	mqtx_buf_addc(b, ')');
	if (sel->max_redeliveries > 0)
		mqtx_buf_printf(b, " AND t.%s < $%d::int8", r->c[MQTX_COL_REDELIVERY_COUNT],
				param_i64(s, sel->max_redeliveries));
	return 0;
}

/* Appends the selection's conditions (" AND ..."), for row alias t. */
static int add_selection(struct mqtx_redeliver_db *r, struct stmt *s, struct mqtx_err *err)
{
	const struct mqtx_selection *sel = r->sel;
	struct mqtx_buf *b = &s->sql;

	if (sel->n_ids > 0)
		add_ids(r, s);
	if (sel->n_keys > 0) {
		mqtx_buf_adds(b, " AND ");
		mqtx_outbox_key_sql(r->ob, b, "t");
		mqtx_buf_printf(b, " = ANY($%d::text[])", param_array(s, sel->keys, sel->n_keys));
	}
	if (sel->n_ordering_keys > 0) {
		mqtx_buf_adds(b, " AND ");
		if (col(r, b, MQTX_COL_ORDERING_KEY, "--ordering-key", err) < 0)
			return -1;
		mqtx_buf_printf(b, "::text = ANY($%d::text[])",
				param_array(s, sel->ordering_keys, sel->n_ordering_keys));
	}
	if (sel->n_destinations > 0)
		mqtx_buf_printf(b, " AND t.%s::text = ANY($%d::text[])", r->c[MQTX_COL_DESTINATION],
				param_array(s, sel->destinations, sel->n_destinations));
	if (sel->n_statuses > 0) {
		mqtx_buf_adds(b, " AND ");
		status_sql(r, b, "t");
		mqtx_buf_printf(b, " = ANY($%d::text[])", param_array(s, sel->statuses, sel->n_statuses));
	}
	if (add_time_bound(r, s, &sel->since, ">=", err) < 0 || add_time_bound(r, s, &sel->until, "<", err) < 0)
		return -1;
	for (size_t i = 0; i < sel->where.n; i++)
		if (add_where(r, s, &sel->where.conds[i], err) < 0)
			return -1;
	if (sel->unacked_after_ms >= 0 && add_unacked(r, s, err) < 0)
		return -1;
	return 0;
}

/* A failed selection query: bad operator input (a timestamp PostgreSQL
 * cannot read, a key that is not valid UTF-8) is a usage error. */
static int select_fail(struct mqtx_redeliver_db *r, PGresult *res, const char *doing, struct mqtx_err *err)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	bool input = state != NULL && strncmp(state, "22", 2) == 0;
	mqtx_pg_fail(r->pg, res, doing, err);
	if (input) {
		err->kind = MQTX_E_USAGE;
		err->retriable = false;
		mqtx_err_prefix(err, "a selection value was not accepted");
	}
	return -1;
}

/* ---- setting up ---- */

struct mqtx_redeliver_db *mqtx_redeliver_db_new(const struct mqtx_config *cfg, const struct mqtx_selection *sel,
						const char *client_name, struct mqtx_err *err)
{
	struct mqtx_redeliver_db *r = mqtx_xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->sel = sel;
	r->pg = mqtx_pg_connect(cfg, client_name, err);
	if (r->pg == NULL)
		goto fail;
	r->ob = mqtx_outbox_new(r->pg, cfg, err);
	if (r->ob == NULL)
		goto fail;
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		r->c[c] = mqtx_outbox_col(r->ob, (enum mqtx_col)c);
	r->T = mqtx_xstrdup(mqtx_outbox_qualified(r->ob));
	if (mqtx_config_tail(cfg)) {
		if ((r->tl = mqtx_tail_new(r->pg, r->ob, cfg, err)) == NULL)
			goto fail;
		/* the effective status is a per-row test the planner cannot
		 * estimate: it would JIT-compile every statement for longer than
		 * the statement runs */
		if (mqtx_pg_exec(r->pg, "SET jit = off", err) < 0)
			goto fail;
	}
	char *qs = mqtx_pg_ident(r->pg, cfg->outbox_schema);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "%s.mqtx_completions", qs);
	r->completions = mqtx_buf_detach(&b);
	free(qs);
	return r;
fail:
	mqtx_redeliver_db_free(r);
	return NULL;
}

void mqtx_redeliver_db_free(struct mqtx_redeliver_db *r)
{
	if (r == NULL)
		return;
	mqtx_tail_free(r->tl);
	mqtx_outbox_free(r->ob);
	if (r->pg != NULL)
		PQfinish(r->pg);
	free(r->T);
	free(r->completions);
	free(r);
}

bool mqtx_redeliver_db_has_col(const struct mqtx_redeliver_db *db, enum mqtx_col c)
{
	return db->c[c] != NULL;
}

/* ---- looking ---- */

int mqtx_redeliver_db_count(struct mqtx_redeliver_db *r, int64_t limit, int64_t *n, struct mqtx_err *err)
{
	struct stmt s = {0};
	mqtx_buf_printf(&s.sql, "SELECT count(*) FROM (SELECT 1 FROM %s t WHERE true", r->T);
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return -1;
	}
	if (limit > 0)
		mqtx_buf_printf(&s.sql, " LIMIT $%d::int8", param_i64(&s, limit));
	mqtx_buf_adds(&s.sql, ") s");
	PGresult *res = stmt_exec(r->pg, &s, 0);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return select_fail(r, res, "cannot count the selected rows", err);
	*n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static void add_text_col(struct mqtx_redeliver_db *r, struct mqtx_buf *b, enum mqtx_col c, bool time)
{
	if (r->c[c] == NULL)
		mqtx_buf_adds(b, ", NULL::text");
	else if (time)
		mqtx_buf_printf(b, ", to_char(t.%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", r->c[c]);
	else
		mqtx_buf_printf(b, ", t.%s::text", r->c[c]);
}

int mqtx_redeliver_db_sample(struct mqtx_redeliver_db *r, int64_t n,
			     void (*row)(void *ctx, const struct mqtx_redeliver_row *row), void *ctx,
			     struct mqtx_err *err)
{
	struct stmt s = {0};
	mqtx_buf_printf(&s.sql, "SELECT t.%s::text, ", r->c[MQTX_COL_ID]);
	mqtx_outbox_key_sql(r->ob, &s.sql, "t");
	mqtx_buf_adds(&s.sql, ", ");
	status_sql(r, &s.sql, "t");
	mqtx_buf_printf(&s.sql, ", t.%s::text", r->c[MQTX_COL_DESTINATION]);
	add_text_col(r, &s.sql, MQTX_COL_ROUTING_KEY, false);
	add_text_col(r, &s.sql, MQTX_COL_ORDERING_KEY, false);
	add_text_col(r, &s.sql, MQTX_COL_ATTEMPTS, false);
	add_text_col(r, &s.sql, MQTX_COL_REDELIVERY_COUNT, false);
	add_text_col(r, &s.sql, MQTX_COL_CREATED_AT, true);
	add_text_col(r, &s.sql, MQTX_COL_SENT_AT, true);
	mqtx_buf_printf(&s.sql, " FROM %s t WHERE true", r->T);
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return -1;
	}
	mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8", r->c[MQTX_COL_ID], param_i64(&s, n));
	PGresult *res = stmt_exec(r->pg, &s, 0);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return select_fail(r, res, "cannot read the selected rows", err);
	for (int i = 0; i < PQntuples(res); i++) {
#define V(k) (PQgetisnull(res, i, k) ? NULL : PQgetvalue(res, i, k))
		struct mqtx_redeliver_row rw = {
			.id = V(0),
			.key = V(1),
			.status = V(2),
			.destination = V(3),
			.routing_key = V(4),
			.ordering_key = V(5),
			.attempts = V(6),
			.redelivery_count = V(7),
			.created_at = V(8),
			.sent_at = V(9),
		};
#undef V
		row(ctx, &rw);
	}
	PQclear(res);
	return 0;
}

/* ---- a re-send batch ---- */

int mqtx_redeliver_db_begin(struct mqtx_redeliver_db *r, int64_t lock_timeout_ms, struct mqtx_err *err)
{
	/* tail mode has no ordering-key bucket locks: the relay owning a
	 * bucket is the only sender of its new rows */
	if (r->tl == NULL && !r->buckets_agreed && mqtx_outbox_agree_buckets(r->ob, err) < 0)
		return -1;
	r->buckets_agreed = true;
	char lt[64];
	snprintf(lt, sizeof(lt), "SET LOCAL lock_timeout = %lld", (long long)lock_timeout_ms);
	if (mqtx_pg_exec(r->pg, "BEGIN", err) < 0)
		return -1;
	if (mqtx_pg_exec(r->pg, lt, err) < 0) {
		mqtx_redeliver_db_rollback(r);
		return -1;
	}
	return 0;
}

/* Phase 1: the ordering keys among the next rows, owned, in *keys. */
static int next_keys(struct mqtx_redeliver_db *r, int64_t cursor, int64_t limit, char ***keys, size_t *n,
		     struct mqtx_err *err)
{
	*keys = NULL;
	*n = 0;
	if (r->c[MQTX_COL_ORDERING_KEY] == NULL || r->tl != NULL)
		return 0;
	struct stmt s = {0};
	mqtx_buf_printf(&s.sql, "SELECT DISTINCT h.k FROM (SELECT t.%s::text AS k FROM %s t WHERE t.%s > $%d::int8",
			r->c[MQTX_COL_ORDERING_KEY], r->T, r->c[MQTX_COL_ID], param_i64(&s, cursor));
	mqtx_buf_printf(&s.sql, " AND t.%s IN ('sent', 'dead')", r->c[MQTX_COL_STATUS]);
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return -1;
	}
	mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8) h WHERE h.k IS NOT NULL", r->c[MQTX_COL_ID],
			param_i64(&s, limit));
	PGresult *res = stmt_exec(r->pg, &s, 0);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return select_fail(r, res, "cannot select rows to re-send", err);
	for (int i = 0; i < PQntuples(res); i++) {
		*keys = mqtx_xrealloc(*keys, (*n + 1) * sizeof(char *));
		(*keys)[(*n)++] = mqtx_xstrdup(PQgetvalue(res, i, 0));
	}
	PQclear(res);
	return 0;
}

/* Column indexes after the message columns in the phase-2 result. */
enum { C_RCOUNT = 9, C_STATUS, C_LOCKED, C_BLOCKED };

static bool get_bool(const PGresult *res, int row, int c)
{
	return !PQgetisnull(res, row, c) && PQgetvalue(res, row, c)[0] != 0;
}

/* Phase 2: locks and reads the next rows. */
static struct mqtx_batch *next_rows(struct mqtx_redeliver_db *r, int64_t cursor, int64_t limit, char **keys,
				    size_t nkeys, struct mqtx_err *err)
{
	struct stmt s = {0};
	const char *ok = r->c[MQTX_COL_ORDERING_KEY];
	mqtx_buf_adds(&s.sql, "SELECT ");
	mqtx_outbox_msg_columns(r->ob, &s.sql, "t");
	mqtx_buf_printf(&s.sql, ", t.%s::int8, ", r->c[MQTX_COL_REDELIVERY_COUNT]);
	status_sql(r, &s.sql, "t");
	if (ok != NULL && r->tl != NULL) {
		/* tail mode: no bucket locks; a row waits behind an earlier row
		 * of its key that is parked for a retry (or blocked) */
		mqtx_buf_printf(&s.sql,
				", true, (t.%s IS NOT NULL AND EXISTS (SELECT 1 FROM %s p WHERE p.outbox = %s AND "
				"p.ordering_key = t.%s::text AND p.state <> 'dead' AND p.id < t.%s))",
				ok, mqtx_tail_parked_table(r->tl), mqtx_tail_outbox_literal(r->tl), ok,
				r->c[MQTX_COL_ID]);
	} else if (ok != NULL) {
		int k = param_array(&s, keys, nkeys);
		/* whether we hold the key's bucket; whether an earlier row of the key is still pending */
		mqtx_buf_printf(&s.sql, ", (t.%s IS NULL OR t.%s::text = ANY($%d::text[]))", ok, ok, k);
		mqtx_buf_printf(&s.sql,
				", (t.%s IS NOT NULL AND EXISTS (SELECT 1 FROM %s p WHERE p.%s = t.%s AND p.%s = 'pending'"
				" AND p.%s < t.%s))",
				ok, r->T, ok, ok, r->c[MQTX_COL_STATUS], r->c[MQTX_COL_ID], r->c[MQTX_COL_ID]);
	} else {
		mqtx_buf_adds(&s.sql, ", true, false");
	}
	mqtx_buf_printf(&s.sql, " FROM %s t WHERE t.%s > $%d::int8 AND ", r->T, r->c[MQTX_COL_ID],
			param_i64(&s, cursor));
	status_sql(r, &s.sql, "t");
	mqtx_buf_adds(&s.sql, " IN ('sent', 'dead')");
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return NULL;
	}
	/* rows locked by someone else are being re-sent or requeued by them */
	mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8 FOR UPDATE OF t SKIP LOCKED", r->c[MQTX_COL_ID],
			param_i64(&s, limit));
	PGresult *res = stmt_exec(r->pg, &s, 1);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		select_fail(r, res, "cannot lock rows to re-send", err);
		return NULL;
	}
	return mqtx_batch_decode(res);
}

void mqtx_resend_rows_free(struct mqtx_resend_rows *rows)
{
	mqtx_batch_free(rows->batch);
	free(rows->blocked);
	free(rows->redeliveries);
	mqtx_strv_free(rows->keys, rows->n_keys);
	memset(rows, 0, sizeof(*rows));
}

int mqtx_redeliver_db_lock_rows(struct mqtx_redeliver_db *r, int64_t cursor, int64_t limit,
				struct mqtx_resend_rows *out, struct mqtx_err *err)
{
	memset(out, 0, sizeof(*out));
	if (next_keys(r, cursor, limit, &out->keys, &out->n_keys, err) < 0 ||
	    mqtx_outbox_lock_keys(r->ob, (const char *const *)out->keys, out->n_keys, err) < 0)
		goto fail;
	out->batch = next_rows(r, cursor, limit, out->keys, out->n_keys, err);
	if (out->batch == NULL)
		goto fail;
	const struct mqtx_batch *b = out->batch;
	out->blocked = mqtx_xcalloc(b->n + 1, sizeof(bool));
	out->redeliveries = mqtx_xcalloc(b->n + 1, sizeof(int64_t));
	/* rows past the first whose key's bucket we do not hold wait for the next batch */
	while (out->n_locked < b->n && get_bool(b->res, (int)out->n_locked, C_LOCKED))
		out->n_locked++;
	for (size_t i = 0; i < b->n; i++) {
		out->blocked[i] = get_bool(b->res, (int)i, C_BLOCKED);
		out->redeliveries[i] = mqtx_pg_get_i64(b->res, (int)i, C_RCOUNT);
	}
	return 0;
fail:
	mqtx_resend_rows_free(out);
	return -1;
}

/* Tail mode: redelivery_count and redelivered_at of the re-sent rows; a
 * parked dead row the broker now took is no longer parked (relayed: its
 * checkpoint covers it), a dead row of the status era becomes sent. The
 * status column of tail-mode rows stays 'pending'. */
static int record_tail(struct mqtx_redeliver_db *r, const char *arr, int64_t *changed, struct mqtx_err *err)
{
	const char *st = r->c[MQTX_COL_STATUS], *rc = r->c[MQTX_COL_REDELIVERY_COUNT];
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"WITH u AS (UPDATE %s t SET %s = t.%s + 1, %s = clock_timestamp(), %s = CASE WHEN t.%s = 'dead' "
			"THEN 'sent' ELSE t.%s END",
			r->T, rc, rc, r->c[MQTX_COL_REDELIVERED_AT], st, st, st);
	if (r->c[MQTX_COL_SENT_AT] != NULL)
		mqtx_buf_printf(&sql,
				", %s = CASE WHEN t.%s = 'dead' THEN coalesce(t.%s, clock_timestamp()) ELSE t.%s END",
				r->c[MQTX_COL_SENT_AT], st, r->c[MQTX_COL_SENT_AT], r->c[MQTX_COL_SENT_AT]);
	mqtx_buf_printf(&sql, " WHERE t.%s = ANY($1::int8[]) AND ", r->c[MQTX_COL_ID]);
	status_sql(r, &sql, "t");
	mqtx_buf_printf(&sql, " IN ('sent', 'dead') RETURNING t.%s AS id), ", r->c[MQTX_COL_ID]);
	mqtx_buf_printf(&sql,
			"p AS (DELETE FROM %s p USING u WHERE p.outbox = %s AND p.id = u.id AND p.state = 'dead') "
			"SELECT count(*) FROM u",
			mqtx_tail_parked_table(r->tl), mqtx_tail_outbox_literal(r->tl));
	const char *p[1] = {arr};
	PGresult *res = PQexecParams(r->pg, sql.data, 1, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(r->pg, res, "cannot record the redeliveries", err);
	*changed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int mqtx_redeliver_db_record(struct mqtx_redeliver_db *r, const int64_t *ids, size_t n, int64_t *changed,
			     struct mqtx_err *err)
{
	*changed = 0;
	if (n == 0)
		return 0;
	char *arr = mqtx_pg_int8_array(ids, n);
	if (r->tl != NULL) {
		int rc = record_tail(r, arr, changed, err);
		free(arr);
		return rc;
	}
	const char *st = r->c[MQTX_COL_STATUS], *rc = r->c[MQTX_COL_REDELIVERY_COUNT];
	struct mqtx_buf sql = MQTX_BUF_INIT;
	/* a dead row the broker now took is sent */
	mqtx_buf_printf(&sql, "UPDATE %s t SET %s = t.%s + 1, %s = clock_timestamp(), %s = 'sent'", r->T, rc, rc,
			r->c[MQTX_COL_REDELIVERED_AT], st);
	if (r->c[MQTX_COL_SENT_AT] != NULL)
		mqtx_buf_printf(&sql, ", %s = coalesce(t.%s, clock_timestamp())", r->c[MQTX_COL_SENT_AT],
				r->c[MQTX_COL_SENT_AT]);
	mqtx_buf_printf(&sql, " WHERE t.%s = ANY($1::int8[]) AND t.%s IN ('sent', 'dead')", r->c[MQTX_COL_ID], st);
	const char *p[1] = {arr};
	PGresult *res = PQexecParams(r->pg, sql.data, 1, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	free(arr);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return mqtx_pg_fail(r->pg, res, "cannot record the redeliveries", err);
	*changed = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

int mqtx_redeliver_db_commit(struct mqtx_redeliver_db *r, struct mqtx_err *err)
{
	return mqtx_pg_exec(r->pg, "COMMIT", err);
}

void mqtx_redeliver_db_rollback(struct mqtx_redeliver_db *r)
{
	PQclear(PQexec(r->pg, "ROLLBACK"));
}

/* ---- reviving dead rows ---- */

/* Wakes relays in --loop (what the outbox's update trigger does for a
 * requeue in status mode); a failure only delays the relay's next look. */
static void wake_relays(struct mqtx_redeliver_db *r)
{
	const char *p[2] = {r->cfg->outbox_notify_channel, r->cfg->outbox_table};
	PQclear(PQexecParams(r->pg, "SELECT pg_notify($1, $2)", 2, NULL, p, NULL, NULL, 0));
}

int mqtx_redeliver_db_requeue(struct mqtx_redeliver_db *r, int64_t *cursor, int64_t limit, int64_t *n,
			      struct mqtx_err *err)
{
	const char *id = r->c[MQTX_COL_ID], *stc = r->c[MQTX_COL_STATUS];
	struct stmt s = {0};
	*n = 0;
	/* the outbox row's lock keeps a re-send and a requeue of the same
	 * row apart, as in status mode */
	mqtx_buf_printf(&s.sql, "WITH s AS (SELECT t.%s AS id FROM %s t WHERE t.%s > $%d::int8 AND ", id, r->T, id,
			param_i64(&s, *cursor));
	status_sql(r, &s.sql, "t");
	mqtx_buf_adds(&s.sql, " = 'dead'");
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return -1;
	}
	mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8 FOR UPDATE OF t SKIP LOCKED) ", id,
			param_i64(&s, limit));
	if (r->tl != NULL) {
		/* tail mode: a parked dead row goes back to 'retry' due now (the
		 * outbox row is not written): the relay sends it on its next
		 * round, in its key's place (seq); a dead row of the status era
		 * is set back to pending like in status mode, and the txid
		 * trigger puts it at the end of the tail */
		const char *P = mqtx_tail_parked_table(r->tl), *lit = mqtx_tail_outbox_literal(r->tl);
		mqtx_buf_printf(&s.sql,
				", p AS (UPDATE %s p SET state = 'retry', attempts = 0, next_at = now(), updated_at = now() "
				"FROM s WHERE p.outbox = %s AND p.id = s.id AND p.state = 'dead' RETURNING p.id), ",
				P, lit);
		mqtx_buf_printf(&s.sql,
				"u AS (UPDATE %s u SET %s = 'pending', %s = 0, %s = now() FROM s WHERE u.%s = s.id AND "
				"u.%s = 'dead' AND NOT EXISTS (SELECT 1 FROM %s x WHERE x.outbox = %s AND x.id = u.%s) "
				"RETURNING u.%s::int8 AS id) ",
				r->T, stc, r->c[MQTX_COL_ATTEMPTS], r->c[MQTX_COL_AVAILABLE_AT], id, stc, P, lit, id,
				id);
		mqtx_buf_adds(&s.sql, "SELECT id::int8 FROM p UNION ALL SELECT id FROM u");
	} else {
		/* the update trigger installed by mqtx init wakes relays in --loop */
		mqtx_buf_printf(&s.sql,
				"UPDATE %s u SET %s = 'pending', %s = 0, %s = now() FROM s WHERE u.%s = s.id AND u.%s = 'dead' "
				"RETURNING u.%s::int8",
				r->T, stc, r->c[MQTX_COL_ATTEMPTS], r->c[MQTX_COL_AVAILABLE_AT], id, stc, id);
	}
	PGresult *res = stmt_exec(r->pg, &s, 0);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return select_fail(r, res, "cannot set dead rows back to pending", err);
	*n = PQntuples(res);
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t v = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		if (v > *cursor)
			*cursor = v;
	}
	PQclear(res);
	if (r->tl != NULL && *n > 0)
		wake_relays(r);
	return 0;
}

/* ---- completions ---- */

int mqtx_redeliver_db_add_completions(struct mqtx_redeliver_db *r, char *const *keys, size_t n, const char *source,
				      int64_t *added, struct mqtx_err *err)
{
	*added = 0;
	if (n == 0)
		return 0;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"INSERT INTO %s (idempotency_key, source) SELECT DISTINCT k, $2 FROM unnest($1::text[]) k "
			"ON CONFLICT (idempotency_key) DO NOTHING",
			r->completions);
	char *arr = mqtx_pg_text_array((const char *const *)keys, n);
	const char *p[2] = {arr, source};
	PGresult *res = PQexecParams(r->pg, sql.data, 2, NULL, p, NULL, NULL, 0);
	free(arr);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42P01") == 0) {
			PQclear(res);
			return mqtx_err_set(err, MQTX_E_DB, "no table %s: run 'mqtx init' to create it",
					    r->completions);
		}
		return mqtx_pg_fail(r->pg, res, "cannot record completions", err);
	}
	*added = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}
