/* mqtx check (see check.h): queries about one outbox, and the judgement
 * of what they found against the check.* thresholds. Every identifier is
 * quoted, every value a parameter. The outbox queries run in one
 * REPEATABLE READ READ ONLY transaction, so the numbers agree with each
 * other; txpub's in-doubt listing and resolution run outside it. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "check/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "base/log.h"
#include "db/outbox.h"
#include "db/pg.h"
#include "base/util.h"

/* A table never analyzed is counted exactly up to this many pages (1 MB). */
#define SMALL_TABLE_PAGES 128
/* At most this many destinations are asked about with --broker. */
#define MAX_BROKER_DESTS 200

const char *const mqtx_check_status_names[MQTX_ST__COUNT] = {"pending", "sent", "dead", "prepared", "rolled_back"};

const char *mqtx_check_level_name(enum mqtx_check_level l)
{
	switch (l) {
	case MQTX_CHECK_OK: return "ok";
	case MQTX_CHECK_WARNING: return "warning";
	case MQTX_CHECK_CRITICAL: return "critical";
	case MQTX_CHECK_UNKNOWN: return "unknown";
	}
	return "unknown";
}

const char *mqtx_relay_state_name(enum mqtx_relay_state s)
{
	switch (s) {
	case MQTX_RELAY_LIVE: return "live";
	case MQTX_RELAY_STOPPED: return "stopped";
	case MQTX_RELAY_STALE: return "stale";
	case MQTX_RELAY_REPLACED: return "replaced";
	}
	return "stale";
}

void mqtx_check_thresholds_from_config(struct mqtx_check_thresholds *t, const struct mqtx_config *cfg)
{
	memset(t, 0, sizeof(*t));
	t->warn_age_ms = cfg->check_warn_age_ms;
	t->crit_age_ms = cfg->check_crit_age_ms;
	t->warn_attempts = cfg->check_warn_attempts;
	t->max_dead = cfg->check_max_dead;
	t->relay_stale_ms = cfg->check_relay_stale_ms;
	t->completion = cfg->check_completion;
	t->completion_after_ms = cfg->check_completion_after_ms;
	t->queue_max_depth = cfg->check_queue_max_depth;
	t->queue_min_consumers = cfg->check_queue_min_consumers;
	t->scan_limit = cfg->check_scan_limit;
	t->list_limit = cfg->check_list_limit;
	t->broker = cfg->check_broker;
}

/* ------------------------------------------------------------ context */

struct ctx {
	PGconn *conn;
	const struct mqtx_config *cfg;
	struct mqtx_err *err;
	char *T;        /* "schema"."table" */
	char *R;        /* "schema".mqtx_relays */
	char *C;        /* "schema".mqtx_completions */
	char *ob_name;  /* the outbox column of mqtx_relays: quoted qualified name */
	char *t[MQTX_COL__COUNT]; /* t."column", NULL when unmapped */
	char *q[MQTX_COL__COUNT]; /* "column", NULL when unmapped */
	char *key_t;    /* idempotency key of row alias t */
	char *key_prefix; /* derived keys: the prefix (text), or NULL with a key column */
	char scap[32], slist[32];
};

static void ctx_free(struct ctx *c)
{
	free(c->T);
	free(c->R);
	free(c->C);
	free(c->ob_name);
	for (int i = 0; i < MQTX_COL__COUNT; i++) {
		free(c->t[i]);
		free(c->q[i]);
	}
	free(c->key_t);
	free(c->key_prefix);
}

static PGresult *query(struct ctx *c, const char *sql, int n, const char *const *params, const char *doing)
{
	PGresult *res = PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		mqtx_pg_fail(c->conn, res, doing, c->err);
		return NULL;
	}
	return res;
}

static int64_t get_i64(const PGresult *r, int row, int col, int64_t dflt)
{
	if (PQgetisnull(r, row, col))
		return dflt;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static char *get_str(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return NULL;
	return mqtx_xstrdup(PQgetvalue(r, row, col));
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	int n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	s = mqtx_xmalloc((size_t)n + 1);
	va_start(ap, f);
	vsnprintf(s, (size_t)n + 1, f, ap);
	va_end(ap);
	return s;
}

/* Binds to the configured table (which must exist with every mapped
 * column: mqtx_outbox_new checks that) and prepares the SQL pieces. */
static int ctx_init(struct ctx *c, PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	memset(c, 0, sizeof(*c));
	c->conn = conn;
	c->cfg = cfg;
	c->err = err;
	struct mqtx_outbox *ob = mqtx_outbox_new(conn, cfg, err);
	if (ob == NULL)
		return -1;
	c->ob_name = mqtx_xstrdup(mqtx_outbox_qualified(ob));
	mqtx_outbox_free(ob);
	c->T = mqtx_xstrdup(c->ob_name);
	char *qs = mqtx_pg_ident(conn, cfg->outbox_schema);
	c->R = fmt("%s.mqtx_relays", qs);
	c->C = fmt("%s.mqtx_completions", qs);
	free(qs);
	for (int i = 0; i < MQTX_COL__COUNT; i++) {
		if (cfg->outbox_columns[i] == NULL || cfg->outbox_columns[i][0] == '\0')
			continue;
		c->q[i] = mqtx_pg_ident(conn, cfg->outbox_columns[i]);
		c->t[i] = fmt("t.%s", c->q[i]);
	}
	if (c->t[MQTX_COL_KEY] != NULL) {
		c->key_t = fmt("%s::text", c->t[MQTX_COL_KEY]);
	} else {
		char *lit = mqtx_outbox_key_prefix_literal(conn, cfg);
		c->key_t = fmt("(%s || %s)", lit, c->t[MQTX_COL_ID]);
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql, "SELECT %s", lit);
		free(lit);
		PGresult *r = query(c, sql.data, 0, NULL, "cannot compute the key prefix");
		mqtx_buf_free(&sql);
		if (r == NULL)
			return -1;
		c->key_prefix = get_str(r, 0, 0);
		PQclear(r);
	}
	snprintf(c->scap, sizeof(c->scap), "%lld", (long long)cfg->check_scan_limit);
	snprintf(c->slist, sizeof(c->slist), "%lld", (long long)cfg->check_list_limit);
	return 0;
}

/* "x" or NULL::type when the column is unmapped. */
static const char *tcol(const struct ctx *c, enum mqtx_col k, const char *null_expr)
{
	return c->t[k] != NULL ? c->t[k] : null_expr;
}

/* How late pending row t is, in ms: since created_at, or, for a row
 * scheduled for later that was never tried, since it became due (0 while
 * it is not due yet). Rows parked at infinity count from created_at. */
static void late_expr(const struct ctx *c, struct mqtx_buf *b, const char *name)
{
	const char *ca = c->t[MQTX_COL_CREATED_AT], *av = c->t[MQTX_COL_AVAILABLE_AT];
	mqtx_buf_printf(b,
			"greatest((extract(epoch FROM now() - CASE WHEN %s = 0 AND isfinite(%s) AND %s > %s THEN %s ELSE %s END) "
			"* 1000)::int8, 0) AS %s",
			c->t[MQTX_COL_ATTEMPTS], av, av, ca, av, ca, name);
}

/* The columns of a struct mqtx_check_row for row alias t, named r_*. */
static void row_cols(const struct ctx *c, struct mqtx_buf *b)
{
	mqtx_buf_printf(b, "%s::int8 AS r_id, %s AS r_key, %s::text AS r_dest, %s::text AS r_okey, %s::text AS r_err, "
			   "%s::int8 AS r_attempts, ",
			c->t[MQTX_COL_ID], c->key_t, c->t[MQTX_COL_DESTINATION], tcol(c, MQTX_COL_ORDERING_KEY, "NULL"),
			c->t[MQTX_COL_LAST_ERROR], c->t[MQTX_COL_ATTEMPTS]);
	if (c->t[MQTX_COL_CREATED_AT] != NULL)
		mqtx_buf_printf(b, "(extract(epoch FROM now() - %s) * 1000)::int8 AS r_age, ", c->t[MQTX_COL_CREATED_AT]);
	else
		mqtx_buf_adds(b, "NULL::int8 AS r_age, ");
	/* txpub --sql parks rows at available_at = infinity */
	mqtx_buf_printf(b, "CASE WHEN isfinite(%s) THEN (extract(epoch FROM %s - now()) * 1000)::int8 ELSE %lld END AS r_retry",
			c->t[MQTX_COL_AVAILABLE_AT], c->t[MQTX_COL_AVAILABLE_AT], (long long)MQTX_CHECK_PARKED);
}
#define ROW_NCOLS 8

static void read_row(const PGresult *r, int row, int col, struct mqtx_check_row *out)
{
	out->id = get_i64(r, row, col, 0);
	out->key = get_str(r, row, col + 1);
	out->destination = get_str(r, row, col + 2);
	out->ordering_key = get_str(r, row, col + 3);
	out->last_error = get_str(r, row, col + 4);
	out->attempts = get_i64(r, row, col + 5, 0);
	out->age_ms = get_i64(r, row, col + 6, -1);
	out->retry_in_ms = get_i64(r, row, col + 7, 0);
}

static void row_free(struct mqtx_check_row *r)
{
	free(r->key);
	free(r->destination);
	free(r->ordering_key);
	free(r->last_error);
	memset(r, 0, sizeof(*r));
}

static void relay_free(struct mqtx_check_relay *r)
{
	free(r->relay_id);
	free(r->host);
	free(r->version);
	free(r->last_error);
}

static void relay_copy(struct mqtx_check_relay *dst, const struct mqtx_check_relay *src)
{
	*dst = *src;
	dst->relay_id = src->relay_id ? mqtx_xstrdup(src->relay_id) : NULL;
	dst->host = src->host ? mqtx_xstrdup(src->host) : NULL;
	dst->version = src->version ? mqtx_xstrdup(src->version) : NULL;
	dst->last_error = src->last_error ? mqtx_xstrdup(src->last_error) : NULL;
}

static void indoubt_free(struct mqtx_check_indoubt *i)
{
	free(i->kind);
	free(i->key);
	free(i->detail);
}

/* Does a table exist (name: quoted, qualified)? */
static int table_exists(struct ctx *c, const char *qname, bool *out)
{
	const char *p[1] = {qname};
	PGresult *r = query(c, "SELECT to_regclass($1) IS NOT NULL", 1, p, "cannot look up a table");
	if (r == NULL)
		return -1;
	*out = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

/* ------------------------------------------------------------ report */

static struct mqtx_check_dest *dest_get(struct mqtx_check_report *rep, const char *name)
{
	for (size_t i = 0; i < rep->n_dests; i++)
		if (strcmp(rep->dests[i].name, name) == 0)
			return &rep->dests[i];
	rep->dests = mqtx_xrealloc(rep->dests, (rep->n_dests + 1) * sizeof(*rep->dests));
	struct mqtx_check_dest *d = &rep->dests[rep->n_dests++];
	memset(d, 0, sizeof(*d));
	d->name = mqtx_xstrdup(name);
	d->oldest_pending_ms = -1;
	d->relayed_minute = d->relayed_hour = -1;
	d->exists = -1;
	return d;
}

static struct mqtx_check_problem *add_problem(struct mqtx_check_report *rep, const char *check,
					       enum mqtx_check_level level, char *message, char *action)
{
	rep->problems = mqtx_xrealloc(rep->problems, (rep->n_problems + 1) * sizeof(*rep->problems));
	struct mqtx_check_problem *p = &rep->problems[rep->n_problems++];
	memset(p, 0, sizeof(*p));
	p->check = check;
	p->level = level;
	p->message = message;
	p->action = action;
	p->count = -1;
	if (level > rep->level)
		rep->level = level;
	return p;
}

void mqtx_check_report_free(struct mqtx_check_report *rep)
{
	if (rep == NULL)
		return;
	free(rep->outbox);
	free(rep->database);
	free(rep->checked_at);
	for (size_t i = 0; i < rep->n_dests; i++) {
		free(rep->dests[i].name);
		free(rep->dests[i].broker_detail);
	}
	free(rep->dests);
	for (size_t i = 0; i < rep->n_relays; i++)
		relay_free(&rep->relays[i]);
	free(rep->relays);
	for (size_t i = 0; i < rep->n_in_doubt; i++)
		indoubt_free(&rep->in_doubt[i]);
	free(rep->in_doubt);
	for (size_t i = 0; i < rep->n_queues; i++) {
		free(rep->queues[i].name);
		free(rep->queues[i].detail);
	}
	free(rep->queues);
	for (size_t i = 0; i < rep->n_problems; i++) {
		struct mqtx_check_problem *p = &rep->problems[i];
		free(p->message);
		free(p->action);
		for (size_t k = 0; k < p->n_rows; k++)
			row_free(&p->rows[k]);
		free(p->rows);
		for (size_t k = 0; k < p->n_keys; k++) {
			free(p->keys[k].ordering_key);
			row_free(&p->keys[k].head);
		}
		free(p->keys);
		for (size_t k = 0; k < p->n_relays; k++)
			relay_free(&p->relays[k]);
		free(p->relays);
		for (size_t k = 0; k < p->n_items; k++)
			indoubt_free(&p->items[k]);
		free(p->items);
		free(p->destination);
		free(p->queue);
	}
	free(rep->problems);
	memset(rep, 0, sizeof(*rep));
}

/* ------------------------------------------------------------ queries */

/* Database name, time, the table's size and its estimated rows. */
static int q_meta(struct ctx *c, struct mqtx_check_report *rep, bool *small)
{
	const char *p[1] = {c->T};
	PGresult *r = query(c,
			    "SELECT current_database()::text, "
			    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
			    "pg_relation_size(cl.oid) / current_setting('block_size')::int8, "
			    "coalesce(CASE WHEN cl.reltuples < 0 THEN NULL WHEN cl.relpages = 0 THEN cl.reltuples "
			    "ELSE cl.reltuples / cl.relpages * (pg_relation_size(cl.oid) / current_setting('block_size')::int8) "
			    "END, (SELECT s.n_live_tup FROM pg_stat_user_tables s WHERE s.relid = cl.oid))::int8 "
			    "FROM pg_class cl WHERE cl.oid = $1::regclass",
			    1, p, "cannot read the outbox table's size");
	if (r == NULL)
		return -1;
	rep->database = get_str(r, 0, 0);
	rep->checked_at = get_str(r, 0, 1);
	int64_t pages = get_i64(r, 0, 2, 0);
	rep->total_estimate = get_i64(r, 0, 3, -1);
	PQclear(r);
	/* small enough to count every row: what the scan limit allows anyway */
	*small = rep->total_estimate >= 0 ? rep->total_estimate <= c->cfg->check_scan_limit : pages <= SMALL_TABLE_PAGES;
	return 0;
}

/* Small tables (at most check.scan_limit rows): exact counts per status. */
static int q_exact_counts(struct ctx *c, struct mqtx_check_report *rep)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT %s::text, count(*)::int8 FROM %s t GROUP BY 1", c->t[MQTX_COL_STATUS], c->T);
	PGresult *r = query(c, sql.data, 0, NULL, "cannot count the outbox rows");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int64_t total = 0;
	for (int s = 0; s < MQTX_ST__COUNT; s++)
		rep->status[s] = (struct mqtx_check_count){0, false};
	for (int i = 0; i < PQntuples(r); i++) {
		const char *st = PQgetvalue(r, i, 0);
		int64_t n = get_i64(r, i, 1, 0);
		total += n;
		for (int s = 0; s < MQTX_ST__COUNT; s++)
			if (strcmp(st, mqtx_check_status_names[s]) == 0)
				rep->status[s].n = n;
	}
	rep->total_estimate = total;
	PQclear(r);
	return 0;
}

/* Large tables: statuses other than pending and dead from the planner's
 * statistics (most common values of the status column). */
static int q_estimates(struct ctx *c, struct mqtx_check_report *rep)
{
	const char *p[3] = {c->cfg->outbox_schema, c->cfg->outbox_table, c->cfg->outbox_columns[MQTX_COL_STATUS]};
	PGresult *r = query(c,
			    "SELECT u.v, u.f FROM pg_stats s, "
			    "unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS u(v, f) "
			    "WHERE s.schemaname = $1 AND s.tablename = $2 AND s.attname = $3",
			    3, p, "cannot read the outbox statistics");
	if (r == NULL)
		return -1;
	bool any = PQntuples(r) > 0;
	for (int s = 0; s < MQTX_ST__COUNT; s++) {
		if (s == MQTX_ST_PENDING || s == MQTX_ST_DEAD)
			continue;
		rep->status[s].approximate = true;
		rep->status[s].n = rep->total_estimate < 0 ? -1 : 0;
	}
	for (int i = 0; i < PQntuples(r) && rep->total_estimate >= 0; i++) {
		const char *v = PQgetvalue(r, i, 0);
		double f = strtod(PQgetvalue(r, i, 1), NULL);
		for (int s = 0; s < MQTX_ST__COUNT; s++)
			if (s != MQTX_ST_PENDING && s != MQTX_ST_DEAD && strcmp(v, mqtx_check_status_names[s]) == 0)
				rep->status[s].n = (int64_t)(f * (double)rep->total_estimate + 0.5);
	}
	PQclear(r);
	rep->estimated_from_stats = any;
	return 0;
}

/* A status count read up to check.scan_limit rows: with capped, there were
 * more than were read, so it is a lower bound (never below an estimate). */
static void set_count(struct mqtx_check_count *cnt, int64_t n, bool capped)
{
	if (!capped) {
		*cnt = (struct mqtx_check_count){n, false};
		return;
	}
	cnt->approximate = true;
	if (cnt->n < n)
		cnt->n = n;
}

/* Pending rows per destination (the first check.scan_limit by id, through
 * the partial index): count, oldest, and how many are past the ages. */
static int q_pending(struct ctx *c, struct mqtx_check_report *rep, bool small, int64_t *n_warn, int64_t *n_crit,
		     bool *truncated)
{
	char swarn[32], scrit[32];
	snprintf(swarn, sizeof(swarn), "%lld", (long long)c->cfg->check_warn_age_ms);
	snprintf(scrit, sizeof(scrit), "%lld", (long long)c->cfg->check_crit_age_ms);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT s.d, count(*)::int8, max(s.age)::int8, count(*) FILTER (WHERE s.age > $2::int8)::int8, "
			    "count(*) FILTER (WHERE s.age > $3::int8)::int8 FROM (SELECT ");
	mqtx_buf_printf(&sql, "%s::text AS d, ", c->t[MQTX_COL_DESTINATION]);
	if (c->t[MQTX_COL_CREATED_AT] != NULL)
		late_expr(c, &sql, "age");
	else
		mqtx_buf_adds(&sql, "NULL::int8 AS age");
	mqtx_buf_printf(&sql, " FROM %s t WHERE %s = 'pending' ORDER BY %s LIMIT $1::int8) s GROUP BY s.d", c->T,
			c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ID]);
	const char *p[3] = {c->scap, swarn, scrit};
	PGresult *r = query(c, sql.data, 3, p, "cannot read the pending rows");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int64_t total = 0;
	*n_warn = *n_crit = 0;
	rep->oldest_pending_ms = -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct mqtx_check_dest *d = dest_get(rep, PQgetisnull(r, i, 0) ? "" : PQgetvalue(r, i, 0));
		d->pending = get_i64(r, i, 1, 0);
		d->oldest_pending_ms = get_i64(r, i, 2, -1);
		total += d->pending;
		*n_warn += get_i64(r, i, 3, 0);
		*n_crit += get_i64(r, i, 4, 0);
		if (d->oldest_pending_ms > rep->oldest_pending_ms)
			rep->oldest_pending_ms = d->oldest_pending_ms;
	}
	PQclear(r);
	*truncated = total >= c->cfg->check_scan_limit;
	if (!small) /* small tables have exact counts already */
		set_count(&rep->status[MQTX_ST_PENDING], total, *truncated);
	return 0;
}

static int q_dead(struct ctx *c, struct mqtx_check_report *rep, bool small)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT s.d, count(*)::int8 FROM (SELECT %s::text AS d FROM %s t WHERE %s = 'dead' ORDER BY %s "
			"LIMIT $1::int8) s GROUP BY s.d",
			c->t[MQTX_COL_DESTINATION], c->T, c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ID]);
	const char *p[1] = {c->scap};
	PGresult *r = query(c, sql.data, 1, p, "cannot read the dead rows");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int64_t total = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		struct mqtx_check_dest *d = dest_get(rep, PQgetisnull(r, i, 0) ? "" : PQgetvalue(r, i, 0));
		d->dead = get_i64(r, i, 1, 0);
		total += d->dead;
	}
	PQclear(r);
	if (!small)
		set_count(&rep->status[MQTX_ST_DEAD], total, total >= c->cfg->check_scan_limit);
	return 0;
}

/* Large tables: txpub's half messages through their partial index. */
static int q_prepared(struct ctx *c, struct mqtx_check_report *rep)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT count(*)::int8 FROM (SELECT 1 FROM %s t WHERE %s = 'prepared' LIMIT $1::int8) s", c->T,
			c->t[MQTX_COL_STATUS]);
	const char *p[1] = {c->scap};
	PGresult *r = query(c, sql.data, 1, p, "cannot count the prepared rows");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int64_t n = get_i64(r, 0, 0, 0);
	PQclear(r);
	set_count(&rep->status[MQTX_ST_PREPARED], n, n >= c->cfg->check_scan_limit);
	return 0;
}

/* Rows sent in the last minute and hour: a range of the sent_at index. */
static int q_traffic(struct ctx *c, struct mqtx_check_report *rep)
{
	if (c->t[MQTX_COL_SENT_AT] == NULL) {
		rep->relayed_minute = rep->relayed_hour = -1;
		return 0;
	}
	/* the newest check.scan_limit rows of the hour: beyond, a lower bound */
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT s.d, count(*) FILTER (WHERE s.at >= now() - interval '1 minute')::int8, count(*)::int8 "
			"FROM (SELECT %s::text AS d, %s AS at FROM %s t WHERE %s = 'sent' AND %s >= now() - interval '1 hour' "
			"ORDER BY %s DESC LIMIT $1::int8) s GROUP BY 1",
			c->t[MQTX_COL_DESTINATION], c->t[MQTX_COL_SENT_AT], c->T, c->t[MQTX_COL_STATUS], c->t[MQTX_COL_SENT_AT],
			c->t[MQTX_COL_SENT_AT]);
	const char *p[1] = {c->scap};
	PGresult *r = query(c, sql.data, 1, p, "cannot read the recent traffic");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	rep->relayed_minute = rep->relayed_hour = 0;
	for (size_t i = 0; i < rep->n_dests; i++)
		rep->dests[i].relayed_minute = rep->dests[i].relayed_hour = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		struct mqtx_check_dest *d = dest_get(rep, PQgetisnull(r, i, 0) ? "" : PQgetvalue(r, i, 0));
		d->relayed_minute = get_i64(r, i, 1, 0);
		d->relayed_hour = get_i64(r, i, 2, 0);
		rep->relayed_minute += d->relayed_minute;
		rep->relayed_hour += d->relayed_hour;
	}
	for (size_t i = 0; i < rep->n_dests; i++)
		if (rep->dests[i].relayed_hour < 0)
			rep->dests[i].relayed_minute = rep->dests[i].relayed_hour = 0;
	PQclear(r);
	rep->relayed_approximate = rep->relayed_hour >= c->cfg->check_scan_limit;
	return 0;
}

/* Rows of a query that selects row_cols first, plus *total from column
 * total_col of the first row when total_col >= 0. */
static int q_rows(struct ctx *c, const char *sql, int n, const char *const *params, const char *doing,
		  struct mqtx_check_row **rows, size_t *nrows, int total_col, int64_t *total)
{
	PGresult *r = query(c, sql, n, params, doing);
	if (r == NULL)
		return -1;
	int nt = PQntuples(r);
	*rows = mqtx_xcalloc((size_t)nt + 1, sizeof(**rows));
	*nrows = (size_t)nt;
	for (int i = 0; i < nt; i++)
		read_row(r, i, 0, &(*rows)[i]);
	if (total != NULL)
		*total = nt > 0 && total_col >= 0 ? get_i64(r, 0, total_col, 0) : 0;
	PQclear(r);
	return 0;
}

/* The first check.scan_limit pending rows as a subquery "x" with row_cols. */
static void pending_subquery(const struct ctx *c, struct mqtx_buf *b, const char *extra_cols)
{
	mqtx_buf_adds(b, "(SELECT ");
	row_cols(c, b);
	if (extra_cols != NULL)
		mqtx_buf_printf(b, ", %s", extra_cols);
	mqtx_buf_printf(b, " FROM %s t WHERE %s = 'pending' ORDER BY %s LIMIT $1::int8) x", c->T, c->t[MQTX_COL_STATUS],
			c->t[MQTX_COL_ID]);
}

static int q_oldest_pending(struct ctx *c, struct mqtx_check_row **rows, size_t *n)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT x.r_id, x.r_key, x.r_dest, x.r_okey, x.r_err, x.r_attempts, x.r_age, x.r_retry FROM ");
	struct mqtx_buf late = MQTX_BUF_INIT;
	if (c->t[MQTX_COL_CREATED_AT] != NULL)
		late_expr(c, &late, "r_late");
	else
		mqtx_buf_adds(&late, "NULL::int8 AS r_late");
	pending_subquery(c, &sql, late.data);
	mqtx_buf_free(&late);
	mqtx_buf_adds(&sql, " ORDER BY x.r_late DESC NULLS LAST, x.r_id LIMIT 1");
	const char *p[1] = {c->scap};
	int rc = q_rows(c, sql.data, 1, p, "cannot read the oldest pending row", rows, n, -1, NULL);
	mqtx_buf_free(&sql);
	return rc;
}

static int q_high_attempts(struct ctx *c, struct mqtx_check_row **rows, size_t *n, int64_t *total)
{
	char sa[32];
	snprintf(sa, sizeof(sa), "%lld", (long long)c->cfg->check_warn_attempts);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT x.r_id, x.r_key, x.r_dest, x.r_okey, x.r_err, x.r_attempts, x.r_age, x.r_retry, "
			    "count(*) OVER ()::int8 FROM ");
	pending_subquery(c, &sql, NULL);
	mqtx_buf_adds(&sql, " WHERE x.r_attempts >= $2::int8 ORDER BY x.r_attempts DESC, x.r_id LIMIT $3::int8");
	const char *p[3] = {c->scap, sa, c->slist};
	int rc = q_rows(c, sql.data, 3, p, "cannot read the rows with many attempts", rows, n, ROW_NCOLS, total);
	mqtx_buf_free(&sql);
	return rc;
}

static int q_dead_rows(struct ctx *c, struct mqtx_check_row **rows, size_t *n)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	row_cols(c, &sql);
	mqtx_buf_printf(&sql, " FROM %s t WHERE %s = 'dead' ORDER BY %s DESC LIMIT $1::int8", c->T, c->t[MQTX_COL_STATUS],
			c->t[MQTX_COL_ID]);
	const char *p[1] = {c->slist};
	int rc = q_rows(c, sql.data, 1, p, "cannot read the dead rows", rows, n, -1, NULL);
	mqtx_buf_free(&sql);
	return rc;
}

/* Ordering keys whose first pending row has failed, with rows behind it:
 * the relay publishes none of them until the head is sent or dead. */
static int q_blocked(struct ctx *c, struct mqtx_check_report *rep, struct mqtx_check_blocked **keys, size_t *n)
{
	*keys = NULL;
	*n = 0;
	if (c->t[MQTX_COL_ORDERING_KEY] == NULL) {
		rep->blocked_keys = rep->blocked_rows = -1;
		return 0;
	}
	const char *ok = c->t[MQTX_COL_ORDERING_KEY], *id = c->t[MQTX_COL_ID];
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"WITH p AS (SELECT %s AS id, %s AS k FROM %s t WHERE %s = 'pending' AND %s IS NOT NULL "
			"ORDER BY %s LIMIT $1::int8), "
			"k AS (SELECT p.k, min(p.id) AS head, count(*) - 1 AS behind FROM p GROUP BY p.k HAVING count(*) > 1) "
			"SELECT ",
			id, ok, c->T, c->t[MQTX_COL_STATUS], ok, id);
	row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			", k.k::text, k.behind::int8, count(*) OVER ()::int8, (sum(k.behind) OVER ())::int8 "
			"FROM k JOIN %s t ON %s = k.head WHERE %s > 0 AND %s IS NOT NULL "
			"ORDER BY k.behind DESC, k.head LIMIT $2::int8",
			c->T, id, c->t[MQTX_COL_ATTEMPTS], c->t[MQTX_COL_LAST_ERROR]);
	const char *p[2] = {c->scap, c->slist};
	PGresult *r = query(c, sql.data, 2, p, "cannot look for blocked ordering keys");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int nt = PQntuples(r);
	rep->blocked_keys = nt > 0 ? get_i64(r, 0, ROW_NCOLS + 2, 0) : 0;
	rep->blocked_rows = nt > 0 ? get_i64(r, 0, ROW_NCOLS + 3, 0) : 0;
	*keys = mqtx_xcalloc((size_t)nt + 1, sizeof(**keys));
	*n = (size_t)nt;
	for (int i = 0; i < nt; i++) {
		read_row(r, i, 0, &(*keys)[i].head);
		(*keys)[i].ordering_key = get_str(r, i, ROW_NCOLS);
		(*keys)[i].behind = get_i64(r, i, ROW_NCOLS + 1, 0);
	}
	PQclear(r);
	return 0;
}

/* Relay heartbeats: running ones (unless forgotten) and the latest stopped. */
static int q_relays(struct ctx *c, struct mqtx_check_report *rep)
{
	bool exists;
	if (table_exists(c, c->R, &exists) < 0)
		return -1;
	rep->relays_known = exists;
	rep->last_relay_seen_ms = -1;
	if (!exists)
		return 0;
	char sstale[32], sforget[32];
	snprintf(sstale, sizeof(sstale), "%lld", (long long)c->cfg->check_relay_stale_ms);
	snprintf(sforget, sizeof(sforget), "%lld", (long long)c->cfg->check_relay_forget_ms);
	static const char *cols = "relay_id, host, pid::int8, version, "
				  "(extract(epoch FROM now() - last_seen) * 1000)::int8, "
				  "(extract(epoch FROM now() - started_at) * 1000)::int8, stopped_at IS NOT NULL, relayed, "
				  "failed, last_error";
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"(SELECT %s FROM %s WHERE outbox = $1 AND stopped_at IS NULL "
			"AND ($2::int8 = 0 OR last_seen > now() - $2::int8 * interval '1 millisecond') "
			"ORDER BY last_seen DESC LIMIT 1000) "
			"UNION ALL (SELECT %s FROM %s WHERE outbox = $1 AND stopped_at IS NOT NULL "
			"ORDER BY last_seen DESC LIMIT $3::int8) "
			"UNION ALL (SELECT NULL, NULL, NULL, NULL, (extract(epoch FROM now() - max(last_seen)) * 1000)::int8, "
			"NULL, NULL, NULL, NULL, NULL FROM %s WHERE outbox = $1)",
			cols, c->R, cols, c->R, c->R);
	const char *p[3] = {c->ob_name, sforget, c->slist};
	PGresult *r = query(c, sql.data, 3, p, "cannot read the relay heartbeats");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int nt = PQntuples(r);
	rep->relays = mqtx_xcalloc((size_t)nt + 1, sizeof(*rep->relays));
	for (int i = 0; i < nt; i++) {
		if (PQgetisnull(r, i, 0)) {
			rep->last_relay_seen_ms = get_i64(r, i, 4, -1);
			continue;
		}
		struct mqtx_check_relay *x = &rep->relays[rep->n_relays++];
		x->relay_id = get_str(r, i, 0);
		x->host = get_str(r, i, 1);
		x->pid = get_i64(r, i, 2, 0);
		x->version = get_str(r, i, 3);
		x->seen_ms = get_i64(r, i, 4, 0);
		x->started_ms = get_i64(r, i, 5, 0);
		bool stopped = PQgetvalue(r, i, 6)[0] == 't';
		x->stopped = stopped;
		x->relayed = get_i64(r, i, 7, 0);
		x->failed = get_i64(r, i, 8, 0);
		x->last_error = get_str(r, i, 9);
		if (stopped)
			x->state = MQTX_RELAY_STOPPED;
		else if (x->seen_ms <= c->cfg->check_relay_stale_ms)
			x->state = MQTX_RELAY_LIVE;
		else
			x->state = MQTX_RELAY_STALE;
	}
	PQclear(r);
	/* A stale relay whose host runs a live relay started after it went
	 * silent was restarted (crash, OOM kill, reboot): note, not alarm. */
	for (size_t i = 0; i < rep->n_relays; i++) {
		struct mqtx_check_relay *x = &rep->relays[i];
		if (x->state != MQTX_RELAY_STALE)
			continue;
		for (size_t k = 0; k < rep->n_relays; k++) {
			const struct mqtx_check_relay *y = &rep->relays[k];
			if (y->state == MQTX_RELAY_LIVE && x->host != NULL && y->host != NULL && strcmp(x->host, y->host) == 0 &&
			    y->started_ms <= x->seen_ms)
				x->state = MQTX_RELAY_REPLACED;
		}
	}
	for (size_t i = 0; i < rep->n_relays; i++) {
		switch (rep->relays[i].state) {
		case MQTX_RELAY_LIVE: rep->relays_live++; break;
		case MQTX_RELAY_STOPPED: rep->relays_stopped++; break;
		case MQTX_RELAY_STALE: rep->relays_stale++; break;
		case MQTX_RELAY_REPLACED:
			rep->relays_stale++;
			rep->relays_replaced++;
			break;
		}
		rep->relays[i].level = rep->relays[i].state == MQTX_RELAY_STALE ? MQTX_CHECK_WARNING : MQTX_CHECK_OK;
	}
	return 0;
}

/* Sent messages with no completion after check.completion_after, among
 * those sent within check.completion_window. */
static int q_completion(struct ctx *c, struct mqtx_check_report *rep, struct mqtx_check_row **rows, size_t *n,
			bool *missing_table)
{
	*missing_table = false;
	bool exists;
	if (table_exists(c, c->C, &exists) < 0)
		return -1;
	if (!exists) {
		*missing_table = true;
		return 0;
	}
	char safter[32], swin[32];
	snprintf(safter, sizeof(safter), "%lld", (long long)c->cfg->check_completion_after_ms);
	snprintf(swin, sizeof(swin), "%lld", (long long)c->cfg->check_completion_window_ms);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			", (extract(epoch FROM now() - %s) * 1000)::int8 AS sent_age, count(*) OVER ()::int8, "
			"(max(extract(epoch FROM now() - %s) * 1000) OVER ())::int8 "
			"FROM %s t WHERE %s = 'sent' AND %s >= now() - $1::int8 * interval '1 millisecond' "
			"AND %s < now() - $2::int8 * interval '1 millisecond' "
			"AND NOT EXISTS (SELECT 1 FROM %s c WHERE c.idempotency_key = %s) ORDER BY %s LIMIT $3::int8",
			c->t[MQTX_COL_SENT_AT], c->t[MQTX_COL_SENT_AT], c->T, c->t[MQTX_COL_STATUS], c->t[MQTX_COL_SENT_AT],
			c->t[MQTX_COL_SENT_AT], c->C, c->key_t, c->t[MQTX_COL_SENT_AT]);
	const char *p[3] = {swin, safter, c->slist};
	PGresult *r = query(c, sql.data, 3, p, "cannot look for messages awaiting completion");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int nt = PQntuples(r);
	rep->completion_checked = true;
	rep->awaiting_completion = nt > 0 ? get_i64(r, 0, ROW_NCOLS + 1, 0) : 0;
	rep->oldest_awaiting_ms = nt > 0 ? get_i64(r, 0, ROW_NCOLS + 2, -1) : -1;
	*rows = mqtx_xcalloc((size_t)nt + 1, sizeof(**rows));
	*n = (size_t)nt;
	for (int i = 0; i < nt; i++)
		read_row(r, i, 0, &(*rows)[i]);
	PQclear(r);
	return 0;
}

static void on_indoubt(void *ctx, const struct mqtx_indoubt *it)
{
	struct mqtx_check_report *rep = ctx;
	rep->in_doubt = mqtx_xrealloc(rep->in_doubt, (rep->n_in_doubt + 1) * sizeof(*rep->in_doubt));
	struct mqtx_check_indoubt *x = &rep->in_doubt[rep->n_in_doubt++];
	x->kind = mqtx_xstrdup(it->kind ? it->kind : "");
	x->key = mqtx_xstrdup(it->key ? it->key : "");
	x->detail = mqtx_xstrdup(it->detail ? it->detail : "");
	x->id = it->id;
	x->age_ms = it->age_ms;
}

/* ------------------------------------------------------------ broker */

static void check_broker(struct ctx *c, struct mqtx_check_report *rep, const struct mqtx_check_opts *o)
{
	const struct mqtx_config *cfg = c->cfg;
	struct mqtx_err e;
	mqtx_err_clear(&e);
	struct mqtx_backend_opts bo = {
		.mode = MQTX_PUB_CONFIRM,
		.window = 1,
		.client_name = o->client_name ? o->client_name : "mqtx check",
		.stop = NULL,
		.stop_grace_ms = 0,
	};
	if (cfg->broker_url == NULL || cfg->broker_url[0] == '\0') {
		add_problem(rep, "broker_unreachable", MQTX_CHECK_UNKNOWN,
			    mqtx_xstrdup("--broker: no broker URL (set --broker-url, MQTX_BROKER_URL or broker.url)"), NULL);
		return;
	}
	struct mqtx_backend *be = mqtx_backend_open(cfg, &bo, &e);
	if (be == NULL) {
		add_problem(rep, "broker_unreachable", MQTX_CHECK_CRITICAL, mqtx_xstrdup(e.msg),
			    mqtx_xstrdup("check the broker and broker.url; the relay cannot publish either"));
		return;
	}
	rep->broker_checked = true;
	size_t asked = 0;
	for (size_t i = 0; i < rep->n_dests; i++) {
		struct mqtx_check_dest *d = &rep->dests[i];
		if (d->pending <= 0)
			continue;
		if (asked++ >= MAX_BROKER_DESTS)
			break;
		struct mqtx_dest_info info;
		if (mqtx_backend_inspect(be, d->name, NULL, &info, &e) < 0) {
			add_problem(rep, "broker_unreachable", MQTX_CHECK_CRITICAL,
				    fmt("cannot ask the broker about '%s': %s", d->name, e.msg), NULL);
			rep->broker_checked = false;
			goto out;
		}
		d->exists = info.exists ? 1 : 0;
		if (info.detail[0] != '\0')
			d->broker_detail = mqtx_xstrdup(info.detail);
		if (!info.exists) {
			struct mqtx_check_problem *p = add_problem(
				rep, "destination_missing", MQTX_CHECK_CRITICAL,
				fmt("destination '%s' does not exist on the broker; %lld pending row(s) wait for it%s%s", d->name,
				    (long long)d->pending, info.detail[0] ? ": " : "", info.detail),
				fmt("create the %s '%s' (the relay never creates it), or fix the rows' destination",
				    strcmp(mqtx_backend_name(be), "kafka") == 0 ? "topic" : "exchange", d->name));
			p->destination = mqtx_xstrdup(d->name);
			p->count = d->pending;
		}
	}
	if (cfg->check_queues != NULL) {
		const char *s = cfg->check_queues;
		while (*s != '\0') {
			size_t len = strcspn(s, ",");
			char *name = mqtx_xstrndup(s, len);
			s += len + (s[len] == ',');
			bool dup = false;
			for (size_t i = 0; i < rep->n_queues; i++)
				dup = dup || strcmp(rep->queues[i].name, name) == 0;
			if (dup) {
				free(name);
				continue;
			}
			rep->queues = mqtx_xrealloc(rep->queues, (rep->n_queues + 1) * sizeof(*rep->queues));
			struct mqtx_check_queue *q = &rep->queues[rep->n_queues++];
			memset(q, 0, sizeof(*q));
			q->name = name;
			q->depth = q->consumers = -1;
			struct mqtx_dest_info info;
			if (mqtx_backend_inspect(be, NULL, name, &info, &e) < 0) {
				add_problem(rep, "broker_unreachable", MQTX_CHECK_CRITICAL,
					    fmt("cannot ask the broker about queue '%s': %s", name, e.msg), NULL);
				rep->broker_checked = false;
				goto out;
			}
			if (strcmp(mqtx_backend_name(be), "kafka") == 0) {
				q->exists = false;
				q->detail = mqtx_xstrdup("Kafka has no queues: consumer lag is the consumer group's business");
				continue;
			}
			q->exists = info.depth >= 0;
			q->depth = info.depth;
			q->consumers = info.consumers;
			if (info.detail[0] != '\0')
				q->detail = mqtx_xstrdup(info.detail);
			struct mqtx_check_problem *p = NULL;
			if (!q->exists)
				p = add_problem(rep, "queue_missing", MQTX_CHECK_CRITICAL,
						fmt("queue '%s' does not exist", name),
						fmt("declare the queue and bind it, or remove it from check.queues"));
			else if (q->consumers < cfg->check_queue_min_consumers)
				p = add_problem(rep, "queue_consumers", MQTX_CHECK_WARNING,
						fmt("queue '%s' has %lld consumer(s), fewer than %lld (check.queue_min_consumers)",
						    name, (long long)q->consumers, (long long)cfg->check_queue_min_consumers),
						fmt("start the consumers of '%s'", name));
			if (p != NULL) {
				/* before the next add_problem, which may move the array */
				p->queue = mqtx_xstrdup(name);
				p->count = q->exists ? q->consumers : -1;
			}
			if (q->exists && cfg->check_queue_max_depth > 0 && q->depth > cfg->check_queue_max_depth) {
				struct mqtx_check_problem *pd =
					add_problem(rep, "queue_depth", MQTX_CHECK_WARNING,
						    fmt("queue '%s' holds %lld message(s), more than %lld (check.queue_max_depth)",
							name, (long long)q->depth, (long long)cfg->check_queue_max_depth),
						    fmt("look at the consumers of '%s': too slow, or failing", name));
				pd->queue = mqtx_xstrdup(name);
				pd->count = q->depth;
			}
		}
	}
out:
	mqtx_backend_close(be);
}

/* ------------------------------------------------------------ judging */

static char *dur(int64_t ms)
{
	char b[64];
	mqtx_format_duration(ms, b, sizeof(b));
	return mqtx_xstrdup(b);
}

/* A duration as an option value: 10m, 90s, 1500ms. */
static char *dur_arg(int64_t ms)
{
	if (ms > 0 && ms % 3600000 == 0)
		return fmt("%lldh", (long long)(ms / 3600000));
	if (ms > 0 && ms % 60000 == 0)
		return fmt("%lldm", (long long)(ms / 60000));
	if (ms % 1000 == 0)
		return fmt("%llds", (long long)(ms / 1000));
	return fmt("%lldms", (long long)ms);
}

static char *explain_cmd(int64_t id)
{
	return fmt("mqtx check --explain %lld", (long long)id);
}

static void take_rows(struct mqtx_check_problem *p, struct mqtx_check_row **rows, size_t *n)
{
	p->rows = *rows;
	p->n_rows = *n;
	*rows = NULL;
	*n = 0;
}

static void free_rows(struct mqtx_check_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		row_free(&rows[i]);
	free(rows);
}

/* Biggest backlog first, then most dead rows, then by name. */
static int compare_dests(const void *a, const void *b)
{
	const struct mqtx_check_dest *x = a, *y = b;
	if (x->pending != y->pending)
		return x->pending > y->pending ? -1 : 1;
	if (x->dead != y->dead)
		return x->dead > y->dead ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int compare_problems(const void *a, const void *b)
{
	const struct mqtx_check_problem *x = a, *y = b;
	return (int)y->level - (int)x->level;
}

static void sort_problems(struct mqtx_check_report *rep)
{
	/* stable: insertion sort keeps the order the checks were made in */
	for (size_t i = 1; i < rep->n_problems; i++) {
		struct mqtx_check_problem tmp = rep->problems[i];
		size_t k = i;
		while (k > 0 && compare_problems(&rep->problems[k - 1], &tmp) > 0) {
			rep->problems[k] = rep->problems[k - 1];
			k--;
		}
		rep->problems[k] = tmp;
	}
}

static int validate(const struct mqtx_config *cfg, struct mqtx_err *err)
{
	if (cfg->check_warn_age_ms > 0 && cfg->check_crit_age_ms > 0 && cfg->check_crit_age_ms < cfg->check_warn_age_ms)
		return mqtx_err_set(err, MQTX_E_CONFIG, "check.crit_age must not be shorter than check.warn_age");
	return 0;
}

static int set_timeout(struct ctx *c)
{
	char st[32];
	snprintf(st, sizeof(st), "%lld", (long long)c->cfg->check_timeout_ms);
	const char *p[1] = {st};
	PGresult *r = query(c, "SELECT set_config('statement_timeout', $1, false)", 1, p, "cannot set statement_timeout");
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

int mqtx_check_run(PGconn *conn, const struct mqtx_config *cfg, const struct mqtx_check_opts *opts,
		   struct mqtx_check_report *rep, struct mqtx_err *err)
{
	struct ctx c;
	int64_t t0 = mqtx_now_ms();
	struct mqtx_check_row *oldest = NULL, *high = NULL, *dead = NULL, *awaiting = NULL;
	size_t n_oldest = 0, n_high = 0, n_dead = 0, n_awaiting = 0;
	struct mqtx_check_blocked *blocked = NULL;
	size_t n_blocked = 0;
	int64_t n_warn = 0, n_crit = 0;
	bool truncated = false, small = false, completion_table_missing = false;
	int rc = -1;

	memset(rep, 0, sizeof(*rep));
	if (validate(cfg, err) < 0)
		return -1;
	if (ctx_init(&c, conn, cfg, err) < 0) {
		ctx_free(&c);
		return -1;
	}
	mqtx_check_thresholds_from_config(&rep->thresholds, cfg);
	rep->outbox = fmt("%s.%s", cfg->outbox_schema, cfg->outbox_table);
	rep->oldest_pending_ms = rep->last_relay_seen_ms = rep->oldest_awaiting_ms = -1;
	if (set_timeout(&c) < 0)
		goto fail;

	/* The only write: resolve what txpub left in doubt, then look. */
	if (opts != NULL && opts->resolve) {
		struct mqtx_err e;
		mqtx_err_clear(&e);
		rep->resolved = true;
		if (mqtx_txpub_resolve(conn, cfg, &rep->resolve, &e) < 0)
			add_problem(rep, "resolve_failed", MQTX_CHECK_WARNING, fmt("--resolve: %s", e.msg), NULL);
		else if (rep->resolve.failed > 0)
			add_problem(rep, "resolve_failed", MQTX_CHECK_WARNING,
				    fmt("--resolve: %lld item(s) could not be resolved (see the log above)",
					(long long)rep->resolve.failed),
				    mqtx_xstrdup("mqtx check --resolve -v"))
				->count = rep->resolve.failed;
	}

	if (mqtx_pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0)
		goto fail;
	if (q_meta(&c, rep, &small) < 0)
		goto fail_tx;
	if (small && q_exact_counts(&c, rep) < 0)
		goto fail_tx;
	if (q_pending(&c, rep, small, &n_warn, &n_crit, &truncated) < 0 || q_dead(&c, rep, small) < 0)
		goto fail_tx;
	if (!small && (q_estimates(&c, rep) < 0 || q_prepared(&c, rep) < 0))
		goto fail_tx;
	if (!small && !rep->estimated_from_stats && rep->total_estimate >= 0) {
		/* never analyzed: whatever is neither pending, dead nor prepared counts as sent */
		int64_t rest = rep->total_estimate - rep->status[MQTX_ST_PENDING].n - rep->status[MQTX_ST_DEAD].n -
			       rep->status[MQTX_ST_PREPARED].n;
		rep->status[MQTX_ST_SENT].n = rest > 0 ? rest : 0;
	}
	if (q_traffic(&c, rep) < 0)
		goto fail_tx;
	if (rep->status[MQTX_ST_PENDING].n > 0 && q_oldest_pending(&c, &oldest, &n_oldest) < 0)
		goto fail_tx;
	if (cfg->check_warn_attempts > 0 && rep->status[MQTX_ST_PENDING].n > 0 &&
	    q_high_attempts(&c, &high, &n_high, &rep->high_attempt_rows) < 0)
		goto fail_tx;
	if (rep->status[MQTX_ST_DEAD].n > 0 && q_dead_rows(&c, &dead, &n_dead) < 0)
		goto fail_tx;
	if (q_blocked(&c, rep, &blocked, &n_blocked) < 0)
		goto fail_tx;
	if (q_relays(&c, rep) < 0)
		goto fail_tx;
	if (cfg->check_completion && c.t[MQTX_COL_SENT_AT] != NULL &&
	    q_completion(&c, rep, &awaiting, &n_awaiting, &completion_table_missing) < 0)
		goto fail_tx;
	if (mqtx_pg_exec(conn, "COMMIT", err) < 0)
		goto fail;
	if (rep->n_dests > 1)
		qsort(rep->dests, rep->n_dests, sizeof(*rep->dests), compare_dests);

	/* txpub's view, outside our snapshot (it may use its own transactions) */
	{
		struct mqtx_err e;
		mqtx_err_clear(&e);
		rep->in_doubt_known = true;
		if (mqtx_txpub_list_in_doubt(conn, cfg, on_indoubt, rep, &e) < 0) {
			rep->in_doubt_known = false;
			add_problem(rep, "in_doubt_unavailable", MQTX_CHECK_WARNING,
				    fmt("cannot list in-doubt txpub items: %s", e.msg), NULL);
		}
	}
	if (cfg->check_broker)
		check_broker(&c, rep, opts != NULL ? opts : &(struct mqtx_check_opts){0});

	/* ---- judgement, most serious first after sorting ---- */
	const struct mqtx_check_count *pend = &rep->status[MQTX_ST_PENDING];
	if (rep->oldest_pending_ms >= 0) {
		enum mqtx_check_level lvl = MQTX_CHECK_OK;
		int64_t limit = 0, n = 0;
		if (cfg->check_crit_age_ms > 0 && rep->oldest_pending_ms > cfg->check_crit_age_ms) {
			lvl = MQTX_CHECK_CRITICAL;
			limit = cfg->check_crit_age_ms;
			n = n_crit;
		} else if (cfg->check_warn_age_ms > 0 && rep->oldest_pending_ms > cfg->check_warn_age_ms) {
			lvl = MQTX_CHECK_WARNING;
			limit = cfg->check_warn_age_ms;
			n = n_warn;
		}
		if (lvl != MQTX_CHECK_OK) {
			char *a = dur(rep->oldest_pending_ms), *l = dur(limit);
			char *where = n_oldest > 0 ? fmt(" (row %lld to '%s')", (long long)oldest[0].id, oldest[0].destination)
						   : mqtx_xstrdup("");
			struct mqtx_check_problem *p = add_problem(
				rep, "pending_age", lvl,
				fmt("%s%lld pending row(s) older than %s (check.%s); the oldest is %s old%s", truncated ? "at least " : "",
				    (long long)n, l, lvl == MQTX_CHECK_CRITICAL ? "crit_age" : "warn_age", a, where),
				n_oldest > 0 ? explain_cmd(oldest[0].id) : NULL);
			p->count = n;
			take_rows(p, &oldest, &n_oldest);
			free(a);
			free(l);
			free(where);
		}
	}
	if (rep->status[MQTX_ST_DEAD].n > cfg->check_max_dead) {
		char *newest = n_dead > 0 ? fmt("; the newest is row %lld to '%s': %s", (long long)dead[0].id,
						 dead[0].destination, dead[0].last_error ? dead[0].last_error : "no error recorded")
					  : mqtx_xstrdup("");
		struct mqtx_check_problem *p = add_problem(
			rep, "dead_rows", MQTX_CHECK_CRITICAL,
			fmt("%s%lld dead row(s), more than check.max_dead (%lld): the relay gave up on them%s",
			    rep->status[MQTX_ST_DEAD].approximate ? "at least " : "", (long long)rep->status[MQTX_ST_DEAD].n,
			    (long long)cfg->check_max_dead, newest),
			n_dead > 0 ? explain_cmd(dead[0].id) : NULL);
		free(newest);
		p->count = rep->status[MQTX_ST_DEAD].n;
		take_rows(p, &dead, &n_dead);
	}
	if (rep->blocked_keys > 0) {
		const struct mqtx_check_blocked *b = &blocked[0];
		struct mqtx_check_problem *p = add_problem(
			rep, "blocked_ordering_keys", MQTX_CHECK_WARNING,
			fmt("%lld ordering key(s) blocked behind a failing row, %lld row(s) waiting; e.g. key '%s': row %lld "
			    "(attempt %lld: %s) holds back %lld row(s)",
			    (long long)rep->blocked_keys, (long long)rep->blocked_rows, b->ordering_key, (long long)b->head.id,
			    (long long)b->head.attempts, b->head.last_error ? b->head.last_error : "no error recorded",
			    (long long)b->behind),
			explain_cmd(b->head.id));
		p->count = rep->blocked_keys;
		p->keys = blocked;
		p->n_keys = n_blocked;
		blocked = NULL;
		n_blocked = 0;
	}
	if (rep->high_attempt_rows > 0) {
		struct mqtx_check_problem *p = add_problem(
			rep, "high_attempts", MQTX_CHECK_WARNING,
			fmt("%lld pending row(s) failed at least %lld times (check.warn_attempts); e.g. row %lld to '%s': %s",
			    (long long)rep->high_attempt_rows, (long long)cfg->check_warn_attempts, (long long)high[0].id,
			    high[0].destination, high[0].last_error ? high[0].last_error : "no error recorded"),
			explain_cmd(high[0].id));
		p->count = rep->high_attempt_rows;
		take_rows(p, &high, &n_high);
	}
	if (rep->relays_known) {
		/* Nothing moves: rows wait longer than check.relay_stale, and no
		 * relay, running or cron-started, was seen that recently. */
		bool recent = rep->last_relay_seen_ms >= 0 && rep->last_relay_seen_ms <= cfg->check_relay_stale_ms;
		bool waiting = pend->n > 0 && (rep->oldest_pending_ms < 0 || rep->oldest_pending_ms > cfg->check_relay_stale_ms);
		if (waiting && !recent && rep->relays_live == 0) {
			char *st = dur(cfg->check_relay_stale_ms);
			char *seen = rep->last_relay_seen_ms >= 0 ? dur(rep->last_relay_seen_ms) : NULL;
			struct mqtx_check_problem *p = add_problem(
				rep, "no_live_relay", MQTX_CHECK_CRITICAL,
				fmt("%lld row(s) pending and no relay seen for %s (check.relay_stale); %s%s", (long long)pend->n, st,
				    seen ? "the last one was seen " : "no relay has ever run for this outbox",
				    seen ? seen : ""),
				mqtx_xstrdup("start a relay: mqtx relay --loop (as a service), or mqtx relay from cron"));
			p->count = pend->n;
			if (seen != NULL) {
				char *m = fmt("%s ago", p->message);
				free(p->message);
				p->message = m;
			}
			free(st);
			free(seen);
		}
		size_t n_stale = 0;
		for (size_t i = 0; i < rep->n_relays; i++)
			if (rep->relays[i].state == MQTX_RELAY_STALE)
				n_stale++;
		if (n_stale > 0) {
			const struct mqtx_check_relay *first = NULL;
			for (size_t i = 0; i < rep->n_relays && first == NULL; i++)
				if (rep->relays[i].state == MQTX_RELAY_STALE)
					first = &rep->relays[i];
			char *st = dur(cfg->check_relay_stale_ms), *seen = dur(first->seen_ms);
			char *lit = PQescapeLiteral(conn, first->relay_id, strlen(first->relay_id));
			struct mqtx_check_problem *p = add_problem(
				rep, "stale_relays", MQTX_CHECK_WARNING,
				fmt("%zu relay(s) silent for longer than %s (check.relay_stale) without stopping cleanly; "
				    "e.g. '%s' (host %s, pid %lld) last seen %s ago",
				    n_stale, st, first->relay_id, first->host ? first->host : "?", (long long)first->pid, seen),
				fmt("look at the relay process on %s; if it is gone for good: DELETE FROM %s WHERE relay_id = %s",
				    first->host ? first->host : "its host", c.R, lit ? lit : "''"));
			PQfreemem(lit);
			p->count = (int64_t)n_stale;
			p->relays = mqtx_xcalloc(n_stale + 1, sizeof(*p->relays));
			for (size_t i = 0; i < rep->n_relays && p->n_relays < (size_t)cfg->check_list_limit; i++)
				if (rep->relays[i].state == MQTX_RELAY_STALE)
					relay_copy(&p->relays[p->n_relays++], &rep->relays[i]);
			free(st);
			free(seen);
		}
	}
	if (rep->n_in_doubt > 0) {
		const struct mqtx_check_indoubt *x = &rep->in_doubt[0];
		char *age = dur(x->age_ms);
		struct mqtx_check_problem *p = add_problem(
			rep, "in_doubt", MQTX_CHECK_WARNING,
			fmt("%zu txpub item(s) in doubt; e.g. %s '%s' prepared %s ago: %s", rep->n_in_doubt, x->kind, x->key, age,
			    x->detail),
			mqtx_xstrdup("mqtx check --resolve"));
		free(age);
		p->count = (int64_t)rep->n_in_doubt;
		size_t n = rep->n_in_doubt < (size_t)cfg->check_list_limit ? rep->n_in_doubt : (size_t)cfg->check_list_limit;
		p->items = mqtx_xcalloc(n + 1, sizeof(*p->items));
		for (size_t i = 0; i < n; i++) {
			p->items[i] = rep->in_doubt[i];
			p->items[i].kind = mqtx_xstrdup(rep->in_doubt[i].kind);
			p->items[i].key = mqtx_xstrdup(rep->in_doubt[i].key);
			p->items[i].detail = mqtx_xstrdup(rep->in_doubt[i].detail);
		}
		p->n_items = n;
	}
	if (cfg->check_completion) {
		if (c.t[MQTX_COL_SENT_AT] == NULL)
			add_problem(rep, "completion_unavailable", MQTX_CHECK_WARNING,
				    mqtx_xstrdup("check.completion is on, but the outbox has no sent_at column"), NULL);
		else if (completion_table_missing)
			add_problem(rep, "completion_unavailable", MQTX_CHECK_WARNING,
				    fmt("check.completion is on, but %s does not exist", c.C), mqtx_xstrdup("mqtx init"));
		else if (rep->awaiting_completion > 0) {
			char *a = dur(cfg->check_completion_after_ms), *o = dur(rep->oldest_awaiting_ms);
			char *arg = dur_arg(cfg->check_completion_after_ms);
			struct mqtx_check_problem *p = add_problem(
				rep, "awaiting_completion", MQTX_CHECK_WARNING,
				fmt("%lld sent message(s) not completed by a consumer after %s (check.completion_after); "
				    "the oldest was sent %s ago",
				    (long long)rep->awaiting_completion, a, o),
				fmt("mqtx redeliver --unacked-after %s --dry-run", arg));
			p->count = rep->awaiting_completion;
			take_rows(p, &awaiting, &n_awaiting);
			free(a);
			free(o);
			free(arg);
		}
	}
	sort_problems(rep);
	rep->elapsed_ms = mqtx_now_ms() - t0;
	rc = 0;
	goto out;

fail_tx: {
	PGresult *r = PQexec(conn, "ROLLBACK");
	PQclear(r);
}
fail:
	mqtx_check_report_free(rep);
out:
	free_rows(oldest, n_oldest);
	free_rows(high, n_high);
	free_rows(dead, n_dead);
	free_rows(awaiting, n_awaiting);
	for (size_t i = 0; i < n_blocked; i++) {
		free(blocked[i].ordering_key);
		row_free(&blocked[i].head);
	}
	free(blocked);
	ctx_free(&c);
	return rc;
}

/* ------------------------------------------------------------ explain */

static void story(struct mqtx_explain *ex, char *line)
{
	ex->story = mqtx_xrealloc(ex->story, (ex->n_story + 1) * sizeof(char *));
	ex->story[ex->n_story++] = line;
}

static void action(struct mqtx_explain *ex, char *line)
{
	ex->actions = mqtx_xrealloc(ex->actions, (ex->n_actions + 1) * sizeof(char *));
	ex->actions[ex->n_actions++] = line;
}

void mqtx_explain_free(struct mqtx_explain *ex)
{
	if (ex == NULL)
		return;
	free(ex->key);
	free(ex->destination);
	free(ex->routing_key);
	free(ex->ordering_key);
	free(ex->status);
	free(ex->last_error);
	free(ex->created_at);
	free(ex->available_at);
	free(ex->sent_at);
	free(ex->redelivered_at);
	free(ex->completed_at);
	row_free(&ex->head);
	free(ex->in_doubt);
	free(ex->verdict);
	for (size_t i = 0; i < ex->n_story; i++)
		free(ex->story[i]);
	free(ex->story);
	for (size_t i = 0; i < ex->n_actions; i++)
		free(ex->actions[i]);
	free(ex->actions);
	memset(ex, 0, sizeof(*ex));
}

struct indoubt_find {
	const char *key;
	int64_t id;
	char *detail;
	char *kind;
	int64_t age_ms;
};

static void find_indoubt(void *ctx, const struct mqtx_indoubt *it)
{
	struct indoubt_find *f = ctx;
	if (f->detail != NULL)
		return;
	if ((f->id > 0 && it->id == f->id) || (f->key != NULL && it->key != NULL && strcmp(it->key, f->key) == 0)) {
		f->detail = mqtx_xstrdup(it->detail ? it->detail : "");
		f->kind = mqtx_xstrdup(it->kind ? it->kind : "");
		f->age_ms = it->age_ms;
	}
}

static const char *ts(const struct ctx *c, enum mqtx_col k)
{
	static char buf[MQTX_COL__COUNT][160];
	if (c->t[k] == NULL)
		return "NULL::text";
	snprintf(buf[k], sizeof(buf[k]), "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')", c->t[k]);
	return buf[k];
}

/* Finds the row: by id when ident is a number, else (or then) by key. */
static PGresult *explain_lookup(struct ctx *c, const char *ident)
{
	struct mqtx_buf sel = MQTX_BUF_INIT;
	mqtx_buf_adds(&sel, "SELECT ");
	row_cols(c, &sel);
	mqtx_buf_printf(&sel, ", %s::text, %s::text, ", tcol(c, MQTX_COL_ROUTING_KEY, "NULL"), c->t[MQTX_COL_STATUS]);
	mqtx_buf_printf(&sel, "%s, ", ts(c, MQTX_COL_CREATED_AT));
	mqtx_buf_printf(&sel, "%s, ", ts(c, MQTX_COL_AVAILABLE_AT));
	mqtx_buf_printf(&sel, "%s, ", ts(c, MQTX_COL_SENT_AT));
	mqtx_buf_printf(&sel, "%s, ", ts(c, MQTX_COL_REDELIVERED_AT));
	mqtx_buf_printf(&sel, "%s::int8, ", tcol(c, MQTX_COL_REDELIVERY_COUNT, "0"));
	if (c->t[MQTX_COL_SENT_AT] != NULL)
		mqtx_buf_printf(&sel, "(extract(epoch FROM now() - %s) * 1000)::int8", c->t[MQTX_COL_SENT_AT]);
	else
		mqtx_buf_adds(&sel, "NULL::int8");
	mqtx_buf_printf(&sel, " FROM %s t WHERE ", c->T);

	const char *id_text = NULL;
	char idbuf[32];
	size_t n = strlen(ident);
	bool numeric = n > 0 && n < 19 && strspn(ident, "0123456789") == n;
	if (numeric)
		id_text = ident;
	PGresult *r = NULL;
	if (id_text != NULL) {
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql, "%s%s = $1::int8", sel.data, c->t[MQTX_COL_ID]);
		const char *p[1] = {id_text};
		r = query(c, sql.data, 1, p, "cannot look up the message");
		mqtx_buf_free(&sql);
		if (r == NULL || PQntuples(r) > 0)
			goto out;
		PQclear(r);
		r = NULL;
	}
	if (c->t[MQTX_COL_KEY] != NULL) {
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql, "%s%s = $1", sel.data, c->t[MQTX_COL_KEY]);
		const char *p[1] = {ident};
		r = query(c, sql.data, 1, p, "cannot look up the message");
		mqtx_buf_free(&sql);
	} else if (c->key_prefix != NULL && strncmp(ident, c->key_prefix, strlen(c->key_prefix)) == 0) {
		/* derived keys are prefix || id */
		const char *rest = ident + strlen(c->key_prefix);
		size_t rl = strlen(rest);
		if (rl > 0 && rl < 19 && strspn(rest, "0123456789") == rl) {
			snprintf(idbuf, sizeof(idbuf), "%s", rest);
			struct mqtx_buf sql = MQTX_BUF_INIT;
			mqtx_buf_printf(&sql, "%s%s = $1::int8", sel.data, c->t[MQTX_COL_ID]);
			const char *p[1] = {idbuf};
			r = query(c, sql.data, 1, p, "cannot look up the message");
			mqtx_buf_free(&sql);
		}
	}
out:
	mqtx_buf_free(&sel);
	if (r == NULL && c->err->kind == MQTX_OK)
		r = PQmakeEmptyPGresult(c->conn, PGRES_TUPLES_OK);
	return r;
}

/* SQL that makes a pending row eligible at once (no mqtx command does that). */
static char *retry_sql(const struct ctx *c, int64_t id)
{
	return fmt("UPDATE %s SET %s = now() WHERE %s = %lld AND %s = 'pending'", c->T, c->q[MQTX_COL_AVAILABLE_AT],
		   c->q[MQTX_COL_ID], (long long)id, c->q[MQTX_COL_STATUS]);
}

static int explain_pending(struct ctx *c, struct mqtx_explain *ex, bool relays_known)
{
	const struct mqtx_config *cfg = c->cfg;
	enum mqtx_check_level lvl = MQTX_CHECK_OK;
	char *age = ex->age_ms >= 0 ? dur(ex->age_ms) : NULL;

	story(ex, fmt("%s%s%s%lld failed attempt(s) so far", age ? "written " : "", age ? age : "", age ? " ago; " : "",
		      (long long)ex->attempts));
	if (ex->last_error != NULL && ex->attempts > 0)
		story(ex, fmt("last error: %s", ex->last_error));
	free(age);

	/* what blocks it, in the relay's own order of reasons */
	if (ex->ordering_key != NULL && c->t[MQTX_COL_ORDERING_KEY] != NULL) {
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_adds(&sql, "SELECT ");
		row_cols(c, &sql);
		mqtx_buf_printf(&sql,
				", count(*) OVER ()::int8 FROM %s t WHERE %s = 'pending' AND %s = $1 AND %s < $2::int8 "
				"ORDER BY %s LIMIT 1",
				c->T, c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ORDERING_KEY], c->t[MQTX_COL_ID], c->t[MQTX_COL_ID]);
		char sid[32];
		snprintf(sid, sizeof(sid), "%lld", (long long)ex->id);
		const char *p[2] = {ex->ordering_key, sid};
		PGresult *r = query(c, sql.data, 2, p, "cannot look at the message's ordering key");
		mqtx_buf_free(&sql);
		if (r == NULL)
			return -1;
		if (PQntuples(r) > 0) {
			read_row(r, 0, 0, &ex->head);
			ex->ahead = get_i64(r, 0, ROW_NCOLS, 0);
		}
		PQclear(r);
		mqtx_buf_printf(&sql, "SELECT count(*)::int8 FROM %s t WHERE %s = 'pending' AND %s = $1 AND %s > $2::int8", c->T,
				c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ORDERING_KEY], c->t[MQTX_COL_ID]);
		r = query(c, sql.data, 2, p, "cannot look at the message's ordering key");
		mqtx_buf_free(&sql);
		if (r == NULL)
			return -1;
		ex->behind = get_i64(r, 0, 0, 0);
		PQclear(r);
		if (ex->ahead == 0 && ex->behind > 0)
			story(ex, fmt("it heads ordering key '%s': %lld later row(s) of the key wait until it is sent (or dead)",
				      ex->ordering_key, (long long)ex->behind));
	}
	if (ex->ahead > 0) {
		const struct mqtx_check_row *h = &ex->head;
		bool failing = h->attempts > 0 && h->last_error != NULL;
		lvl = MQTX_CHECK_WARNING;
		ex->verdict = fmt("pending, held back: %lld earlier row(s) of ordering key '%s' are still pending, the first "
				  "is row %lld%s",
				  (long long)ex->ahead, ex->ordering_key, (long long)h->id, failing ? ", which keeps failing" : "");
		if (failing)
			story(ex, fmt("row %lld (to '%s', %lld failed attempt(s)) heads the key: %s", (long long)h->id,
				      h->destination, (long long)h->attempts, h->last_error));
		else
			story(ex, fmt("row %lld (to '%s') heads the key and has not failed: it goes first, this one follows",
				      (long long)h->id, h->destination));
		if (h->retry_in_ms == MQTX_CHECK_PARKED) {
			story(ex, fmt("row %lld is parked (available_at is infinity) by txpub --sql", (long long)h->id));
		} else if (h->retry_in_ms > 0) {
			char *w = dur(h->retry_in_ms);
			story(ex, fmt("row %lld is retried in %s", (long long)h->id, w));
			free(w);
		}
		action(ex, explain_cmd(h->id));
		if (failing)
			action(ex, fmt("fix what makes row %lld fail; this row follows once it is sent (or dead)", (long long)h->id));
	} else if (ex->retry_in_ms == MQTX_CHECK_PARKED) {
		lvl = MQTX_CHECK_WARNING;
		ex->verdict = mqtx_xstrdup("pending but parked (available_at is infinity): txpub --sql holds it until its "
					   "transaction is decided");
		action(ex, mqtx_xstrdup("mqtx check --resolve"));
	} else if (ex->retry_in_ms > 0) {
		char *w = dur(ex->retry_in_ms);
		lvl = ex->attempts > 0 ? MQTX_CHECK_WARNING : MQTX_CHECK_OK;
		if (ex->attempts > 0) {
			ex->verdict = fmt("pending, waiting for retry %lld of %lld in %s (at %s)", (long long)ex->attempts + 1,
					  (long long)cfg->relay_max_attempts, w, ex->available_at ? ex->available_at : "?");
			action(ex, fmt("fix the cause (%s); the relay retries by itself",
				       ex->last_error ? ex->last_error : "see last_error"));
			char *sql = retry_sql(c, ex->id);
			action(ex, fmt("to retry at once: %s", sql));
			free(sql);
		} else {
			ex->verdict = fmt("pending, scheduled: not before %s (in %s)", ex->available_at ? ex->available_at : "?", w);
		}
		free(w);
	}

	/* is anyone there to take it? */
	if (relays_known) {
		const char *p[2] = {c->ob_name, NULL};
		char sstale[32];
		snprintf(sstale, sizeof(sstale), "%lld", (long long)cfg->check_relay_stale_ms);
		p[1] = sstale;
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql,
				"SELECT count(*) FILTER (WHERE last_seen > now() - $2::int8 * interval '1 millisecond')::int8, "
				"(extract(epoch FROM now() - max(last_seen)) * 1000)::int8 FROM %s WHERE outbox = $1",
				c->R);
		PGresult *r = query(c, sql.data, 2, p, "cannot read the relay heartbeats");
		mqtx_buf_free(&sql);
		if (r == NULL)
			return -1;
		ex->relay_alive = get_i64(r, 0, 0, 0) > 0;
		int64_t seen = get_i64(r, 0, 1, -1);
		PQclear(r);
		if (!ex->relay_alive) {
			char *s = seen >= 0 ? dur(seen) : NULL;
			story(ex, s ? fmt("no relay seen for %s (check.relay_stale is %lldms)", s,
					  (long long)cfg->check_relay_stale_ms)
				    : mqtx_xstrdup("no relay has ever run for this outbox"));
			free(s);
			if (ex->verdict == NULL)
				ex->verdict = mqtx_xstrdup("pending and eligible, but no relay is running");
			lvl = MQTX_CHECK_CRITICAL;
			action(ex, mqtx_xstrdup("start a relay: mqtx relay --loop (as a service), or mqtx relay from cron"));
		}
	} else {
		ex->relay_alive = true; /* unknown: no heartbeats table */
		story(ex, fmt("relay heartbeats unknown: no table %s (mqtx init creates it)", c->R));
	}
	if (ex->verdict == NULL) {
		ex->verdict = mqtx_xstrdup("pending and eligible: the next relay batch takes it");
		action(ex, mqtx_xstrdup("nothing: a running relay sends it shortly (mqtx relay --dry-run shows what goes next)"));
	}
	/* late: as for pending_age, a row written for later counts from when it was due */
	int64_t late = ex->age_ms;
	if (late >= 0 && ex->attempts == 0 && ex->retry_in_ms != MQTX_CHECK_PARKED && late + ex->retry_in_ms > 0)
		late = ex->retry_in_ms > 0 ? 0 : -ex->retry_in_ms;
	if (late >= 0) {
		if (cfg->check_crit_age_ms > 0 && late > cfg->check_crit_age_ms)
			lvl = MQTX_CHECK_CRITICAL;
		else if (cfg->check_warn_age_ms > 0 && late > cfg->check_warn_age_ms && lvl < MQTX_CHECK_WARNING)
			lvl = MQTX_CHECK_WARNING;
	}
	ex->level = lvl;
	return 0;
}

static int explain_sent(struct ctx *c, struct mqtx_explain *ex)
{
	const struct mqtx_config *cfg = c->cfg;
	char *s = ex->sent_ms >= 0 ? dur(ex->sent_ms) : NULL;
	ex->verdict = s ? fmt("sent %s ago (the broker confirmed it)", s) : mqtx_xstrdup("sent (the broker confirmed it)");
	story(ex, fmt("published after %lld attempt(s); sent at %s", (long long)ex->attempts, ex->sent_at ? ex->sent_at : "?"));
	if (ex->redelivery_count > 0)
		story(ex, fmt("redelivered %lld time(s), last at %s", (long long)ex->redelivery_count,
			      ex->redelivered_at ? ex->redelivered_at : "?"));
	free(s);
	ex->level = MQTX_CHECK_OK;
	bool exists;
	if (table_exists(c, c->C, &exists) < 0)
		return -1;
	if (!exists)
		return 0;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), source FROM %s "
			"WHERE idempotency_key = $1",
			c->C);
	const char *p[1] = {ex->key};
	PGresult *r = query(c, sql.data, 1, p, "cannot look up the completion");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		ex->completed_at = get_str(r, 0, 0);
		story(ex, fmt("completed by a consumer at %s%s%s", ex->completed_at, PQgetisnull(r, 0, 1) ? "" : " via ",
			      PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1)));
		char *v = fmt("%s, completed", ex->verdict);
		free(ex->verdict);
		ex->verdict = v;
	} else if (cfg->check_completion) {
		bool late = ex->sent_ms >= 0 && ex->sent_ms > cfg->check_completion_after_ms;
		story(ex, fmt("no consumer has completed it yet (no row in %s)%s", c->C,
			      late ? ", longer than check.completion_after" : ""));
		if (late) {
			ex->level = MQTX_CHECK_WARNING;
			action(ex, mqtx_xstrdup("look at the consumer, then publish it again with its own key:"));
			action(ex, fmt("mqtx redeliver --id %lld --yes", (long long)ex->id));
		}
	}
	PQclear(r);
	if (ex->n_actions == 0)
		action(ex, mqtx_xstrdup("nothing"));
	return 0;
}

int mqtx_check_explain(PGconn *conn, const struct mqtx_config *cfg, const char *ident, struct mqtx_explain *ex,
		       struct mqtx_err *err)
{
	struct ctx c;
	memset(ex, 0, sizeof(*ex));
	ex->age_ms = ex->retry_in_ms = ex->sent_ms = -1;
	if (ctx_init(&c, conn, cfg, err) < 0) {
		ctx_free(&c);
		return -1;
	}
	if (set_timeout(&c) < 0)
		goto fail;
	mqtx_err_clear(err);
	PGresult *r = explain_lookup(&c, ident);
	if (r == NULL)
		goto fail;
	if (PQntuples(r) > 0) {
		struct mqtx_check_row row;
		read_row(r, 0, 0, &row);
		ex->found = ex->in_outbox = true;
		ex->id = row.id;
		ex->key = row.key;
		ex->destination = row.destination;
		ex->ordering_key = row.ordering_key;
		ex->last_error = row.last_error;
		ex->attempts = row.attempts;
		ex->age_ms = row.age_ms;
		ex->retry_in_ms = row.retry_in_ms;
		ex->routing_key = get_str(r, 0, ROW_NCOLS);
		ex->status = get_str(r, 0, ROW_NCOLS + 1);
		ex->created_at = get_str(r, 0, ROW_NCOLS + 2);
		ex->available_at = get_str(r, 0, ROW_NCOLS + 3);
		ex->sent_at = get_str(r, 0, ROW_NCOLS + 4);
		ex->redelivered_at = get_str(r, 0, ROW_NCOLS + 5);
		ex->redelivery_count = get_i64(r, 0, ROW_NCOLS + 6, 0);
		ex->sent_ms = get_i64(r, 0, ROW_NCOLS + 7, -1);
	}
	PQclear(r);

	/* txpub's word on it: a half message, or a prepared transaction */
	struct indoubt_find f = {.key = ex->key ? ex->key : ident, .id = ex->id};
	if (!ex->found || (ex->status != NULL && strcmp(ex->status, "prepared") == 0)) {
		struct mqtx_err e;
		mqtx_err_clear(&e);
		if (mqtx_txpub_list_in_doubt(conn, cfg, find_indoubt, &f, &e) < 0)
			mqtx_warn("cannot list in-doubt txpub items: %s", e.msg);
	}
	if (!ex->found) {
		if (f.detail != NULL) {
			ex->found = true;
			ex->key = mqtx_xstrdup(ident);
			ex->status = mqtx_xstrdup(f.kind);
			ex->age_ms = f.age_ms;
			ex->in_doubt = f.detail;
			f.detail = NULL;
			char *a = dur(f.age_ms);
			ex->verdict = fmt("in doubt: a txpub %s prepared %s ago and not yet decided", f.kind, a);
			free(a);
			story(ex, fmt("txpub: %s", ex->in_doubt));
			action(ex, mqtx_xstrdup("mqtx check --resolve"));
			ex->level = MQTX_CHECK_WARNING;
		}
		free(f.kind);
		free(f.detail);
		ctx_free(&c);
		return 0;
	}

	bool relays_known = false;
	if (table_exists(&c, c.R, &relays_known) < 0)
		goto fail_f;
	if (strcmp(ex->status, "pending") == 0) {
		if (explain_pending(&c, ex, relays_known) < 0)
			goto fail_f;
	} else if (strcmp(ex->status, "sent") == 0) {
		if (explain_sent(&c, ex) < 0)
			goto fail_f;
	} else if (strcmp(ex->status, "dead") == 0) {
		ex->verdict = fmt("dead: the relay gave up after %lld failed attempt(s) and will not try again",
				  (long long)ex->attempts);
		story(ex, fmt("last error: %s", ex->last_error ? ex->last_error : "none recorded"));
		if (ex->ordering_key != NULL)
			story(ex, fmt("later rows of ordering key '%s' no longer wait for it", ex->ordering_key));
		action(ex, fmt("fix the cause (%s), then give it back to the relay:",
			       ex->last_error ? ex->last_error : "see last_error"));
		action(ex, fmt("mqtx redeliver --status dead --id %lld --requeue --yes", (long long)ex->id));
		ex->level = MQTX_CHECK_CRITICAL;
	} else if (strcmp(ex->status, "prepared") == 0) {
		char *a = ex->age_ms >= 0 ? dur(ex->age_ms) : mqtx_xstrdup("an unknown time");
		ex->verdict = fmt("prepared: a txpub half message written %s ago, waiting for its transaction to commit", a);
		free(a);
		story(ex, mqtx_xstrdup("the relay ignores it until txpub commits it (pending) or rolls it back"));
		if (f.detail != NULL) {
			ex->in_doubt = f.detail;
			f.detail = NULL;
			story(ex, fmt("in doubt: %s", ex->in_doubt));
			action(ex, mqtx_xstrdup("mqtx check --resolve"));
			ex->level = MQTX_CHECK_WARNING;
		} else {
			story(ex, mqtx_xstrdup("not in doubt yet (younger than txpub.check_after)"));
			action(ex, mqtx_xstrdup("nothing yet; mqtx check --resolve decides it once it is older than txpub.check_after"));
			ex->level = MQTX_CHECK_OK;
		}
	} else if (strcmp(ex->status, "rolled_back") == 0) {
		ex->verdict = mqtx_xstrdup("rolled back: its transaction did not commit, it will never be sent");
		action(ex, mqtx_xstrdup("nothing"));
		ex->level = MQTX_CHECK_OK;
	} else {
		ex->verdict = fmt("unknown status '%s'", ex->status);
		action(ex, mqtx_xstrdup("look at the row: mqtx does not know this status"));
		ex->level = MQTX_CHECK_UNKNOWN;
	}
	free(f.kind);
	free(f.detail);
	ctx_free(&c);
	return 0;
fail_f:
	free(f.kind);
	free(f.detail);
fail:
	ctx_free(&c);
	mqtx_explain_free(ex);
	return -1;
}
