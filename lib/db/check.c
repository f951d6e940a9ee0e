/* The SQL of mqtx check (see db/check.h): one snapshot of an outbox in a
 * REPEATABLE READ READ ONLY transaction, and the look-ups of --explain.
 * Every identifier is quoted, every value a parameter. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "db/outbox.h"
#include "db/pg.h"
#include "db/tail.h"

/* A table never analyzed is counted exactly up to this many pages (1 MB). */
#define SMALL_TABLE_PAGES 128

const char *const mqtx_check_status_names[MQTX_ST__COUNT] = {"pending", "sent", "dead", "prepared", "rolled_back"};

/* ------------------------------------------------------------ context */

struct mqtx_db_check {
	PGconn *conn;
	const struct mqtx_config *cfg;
	struct mqtx_err *err;     /* of the call in progress */
	char *T;                  /* "schema"."table" */
	char *R;                  /* "schema".mqtx_relays */
	char *C;                  /* "schema".mqtx_completions */
	char *ob_name;            /* the outbox column of mqtx_relays: quoted qualified name */
	char *t[MQTX_COL__COUNT]; /* t."column", NULL when unmapped */
	char *q[MQTX_COL__COUNT]; /* "column", NULL when unmapped */
	char *key_t;              /* idempotency key of row alias t */
	char *key_prefix;         /* derived keys: the prefix (text), or NULL with a key column */
	char scap[32], slist[32];
	struct mqtx_outbox *ob; /* tail mode only: tl's */
	struct mqtx_tail *tl;   /* tail mode (outbox.mode: tail), else NULL */
	char slock[32], sbucket_lock[32];
};

static PGresult *query(struct mqtx_db_check *c, const char *sql, int n, const char *const *params, const char *doing)
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

void mqtx_db_check_free(struct mqtx_db_check *c)
{
	if (c == NULL)
		return;
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
	mqtx_tail_free(c->tl);
	mqtx_outbox_free(c->ob);
	free(c);
}

/* Binds to the configured table (which must exist with every mapped
 * column: mqtx_outbox_new checks that) and prepares the SQL pieces. */
struct mqtx_db_check *mqtx_db_check_new(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	struct mqtx_db_check *c = mqtx_xcalloc(1, sizeof(*c));
	c->conn = conn;
	c->cfg = cfg;
	c->err = err;
	struct mqtx_outbox *ob = mqtx_outbox_new(conn, cfg, err);
	if (ob == NULL) {
		free(c);
		return NULL;
	}
	c->ob_name = mqtx_xstrdup(mqtx_outbox_qualified(ob));
	snprintf(c->slock, sizeof(c->slock), "%ld", (long)mqtx_outbox_lock_class(ob));
	snprintf(c->sbucket_lock, sizeof(c->sbucket_lock), "%d", MQTX_TAIL_BUCKET_LOCK);
	if (mqtx_config_tail(cfg)) {
		c->ob = ob;
		c->tl = mqtx_tail_new(conn, ob, cfg, err);
		if (c->tl == NULL) {
			mqtx_db_check_free(c);
			return NULL;
		}
	} else {
		mqtx_outbox_free(ob);
	}
	c->T = mqtx_xstrdup(c->ob_name);
	char *qs = mqtx_pg_ident(conn, cfg->outbox_schema);
	c->R = mqtx_xasprintf("%s.mqtx_relays", qs);
	c->C = mqtx_xasprintf("%s.mqtx_completions", qs);
	free(qs);
	for (int i = 0; i < MQTX_COL__COUNT; i++) {
		if (cfg->outbox_columns[i] == NULL || cfg->outbox_columns[i][0] == '\0')
			continue;
		c->q[i] = mqtx_pg_ident(conn, cfg->outbox_columns[i]);
		c->t[i] = mqtx_xasprintf("t.%s", c->q[i]);
	}
	if (c->t[MQTX_COL_KEY] != NULL) {
		c->key_t = mqtx_xasprintf("%s::text", c->t[MQTX_COL_KEY]);
	} else {
		char *lit = mqtx_outbox_key_prefix_literal(conn, cfg);
		c->key_t = mqtx_xasprintf("(%s || %s)", lit, c->t[MQTX_COL_ID]);
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql, "SELECT %s", lit);
		free(lit);
		PGresult *r = query(c, sql.data, 0, NULL, "cannot compute the key prefix");
		mqtx_buf_free(&sql);
		if (r == NULL) {
			mqtx_db_check_free(c);
			return NULL;
		}
		c->key_prefix = get_str(r, 0, 0);
		PQclear(r);
	}
	snprintf(c->scap, sizeof(c->scap), "%lld", (long long)cfg->check_scan_limit);
	snprintf(c->slist, sizeof(c->slist), "%lld", (long long)cfg->check_list_limit);
	return c;
}

/* "x" or NULL::type when the column is unmapped. */
static const char *tcol(const struct mqtx_db_check *c, enum mqtx_col k, const char *null_expr)
{
	return c->t[k] != NULL ? c->t[k] : null_expr;
}

/* How late pending row t is, in ms: since created_at, or, for a row
 * scheduled for later that was never tried, since it became due (0 while
 * it is not due yet). Rows parked at infinity count from created_at. */
static void late_expr(const struct mqtx_db_check *c, struct mqtx_buf *b, const char *name)
{
	const char *ca = c->t[MQTX_COL_CREATED_AT], *av = c->t[MQTX_COL_AVAILABLE_AT];
	mqtx_buf_printf(b,
			"greatest((extract(epoch FROM now() - CASE WHEN %s = 0 AND isfinite(%s) AND %s > %s THEN %s ELSE %s END) "
			"* 1000)::int8, 0) AS %s",
			c->t[MQTX_COL_ATTEMPTS], av, av, ca, av, ca, name);
}

/* The columns of a struct mqtx_check_row for row alias t, named r_*. */
static void row_cols(const struct mqtx_db_check *c, struct mqtx_buf *b)
{
	mqtx_buf_printf(b,
			"%s::int8 AS r_id, %s AS r_key, %s::text AS r_dest, %s::text AS r_okey, %s::text AS r_err, "
			"%s::int8 AS r_attempts, ",
			c->t[MQTX_COL_ID], c->key_t, c->t[MQTX_COL_DESTINATION], tcol(c, MQTX_COL_ORDERING_KEY, "NULL"),
			c->t[MQTX_COL_LAST_ERROR], c->t[MQTX_COL_ATTEMPTS]);
	if (c->t[MQTX_COL_CREATED_AT] != NULL)
		mqtx_buf_printf(b, "(extract(epoch FROM now() - %s) * 1000)::int8 AS r_age, ",
				c->t[MQTX_COL_CREATED_AT]);
	else
		mqtx_buf_adds(b, "NULL::int8 AS r_age, ");
	/* txpub --sql parks rows at available_at = infinity */
	mqtx_buf_printf(b,
			"CASE WHEN isfinite(%s) THEN (extract(epoch FROM %s - now()) * 1000)::int8 ELSE %lld END AS r_retry",
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

void mqtx_check_row_free(struct mqtx_check_row *r)
{
	free(r->key);
	free(r->destination);
	free(r->ordering_key);
	free(r->last_error);
	memset(r, 0, sizeof(*r));
}

void mqtx_check_rows_free(struct mqtx_check_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mqtx_check_row_free(&rows[i]);
	free(rows);
}

void mqtx_check_blocked_free(struct mqtx_check_blocked *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(keys[i].ordering_key);
		mqtx_check_row_free(&keys[i].head);
	}
	free(keys);
}

void mqtx_check_relay_free(struct mqtx_check_relay *r)
{
	free(r->relay_id);
	free(r->host);
	free(r->version);
	free(r->last_error);
	free(r->tail_buckets);
}

/* Does a table exist (name: quoted, qualified)? */
static int table_exists(struct mqtx_db_check *c, const char *qname, bool *out)
{
	const char *p[1] = {qname};
	PGresult *r = query(c, "SELECT to_regclass($1) IS NOT NULL", 1, p, "cannot look up a table");
	if (r == NULL)
		return -1;
	*out = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

/* ------------------------------------------------------------ snapshot */

static struct mqtx_check_dest *dest_get(struct mqtx_check_snapshot *rep, const char *name)
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

/* Database name, time, the table's size on disk and its estimated rows.
 * A partitioned outbox is the sum of its leaf partitions (the parent has
 * no storage and, until analyzed, no row estimate); the catalogue only. */
static int q_meta(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep, bool *small)
{
	const char *p[1] = {c->T};
	PGresult *r =
		query(c,
		      "WITH leaf AS (SELECT pt.relid AS oid FROM pg_partition_tree($1::regclass) pt WHERE pt.isleaf "
		      "UNION SELECT cl.oid FROM pg_class cl WHERE cl.oid = $1::regclass AND cl.relkind <> 'p'), "
		      "est AS (SELECT pg_relation_size(cl.oid) / current_setting('block_size')::int8 AS pages, "
		      "pg_total_relation_size(cl.oid) AS bytes, "
		      "coalesce(CASE WHEN cl.reltuples < 0 THEN NULL WHEN cl.relpages = 0 THEN cl.reltuples "
		      "ELSE cl.reltuples / cl.relpages * (pg_relation_size(cl.oid) / current_setting('block_size')::int8) "
		      "END, (SELECT s.n_live_tup FROM pg_stat_user_tables s WHERE s.relid = cl.oid)) AS n "
		      "FROM leaf JOIN pg_class cl ON cl.oid = leaf.oid) "
		      "SELECT current_database()::text, "
		      "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
		      "coalesce(sum(est.pages), 0)::int8, "
		      "CASE WHEN count(*) = count(est.n) THEN coalesce(sum(est.n), 0) END::int8, "
		      "coalesce(sum(est.bytes), 0)::int8, "
		      "CASE WHEN (SELECT relkind FROM pg_class WHERE oid = $1::regclass) = 'p' THEN count(*) END::int8 "
		      "FROM est",
		      1, p, "cannot read the outbox table's size");
	if (r == NULL)
		return -1;
	rep->database = get_str(r, 0, 0);
	rep->checked_at = get_str(r, 0, 1);
	int64_t pages = get_i64(r, 0, 2, 0);
	rep->total_estimate = get_i64(r, 0, 3, -1);
	rep->table_bytes = get_i64(r, 0, 4, -1);
	rep->partitions = get_i64(r, 0, 5, -1);
	PQclear(r);
	/* small enough to count every row: what the scan limit allows anyway */
	*small = rep->total_estimate >= 0 ? rep->total_estimate <= c->cfg->check_scan_limit
					  : pages <= SMALL_TABLE_PAGES;
	return 0;
}

/* The age of the oldest row, cheaply: created_at of the lowest id (the
 * primary key's first entry; one per partition). */
static int q_oldest_row(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep)
{
	rep->oldest_row_ms = -1;
	if (c->t[MQTX_COL_CREATED_AT] == NULL)
		return 0;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT (extract(epoch FROM now() - %s) * 1000)::int8 FROM %s t ORDER BY %s LIMIT 1",
			c->t[MQTX_COL_CREATED_AT], c->T, c->t[MQTX_COL_ID]);
	PGresult *r = query(c, sql.data, 0, NULL, "cannot read the oldest outbox row");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0)
		rep->oldest_row_ms = get_i64(r, 0, 0, -1);
	PQclear(r);
	return 0;
}

/* Small tables (at most check.scan_limit rows): exact counts per status. */
static int q_exact_counts(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep)
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
static int q_estimates(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep)
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
static int q_pending(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep, bool small, int64_t *n_warn,
		     int64_t *n_crit, bool *truncated)
{
	char swarn[32], scrit[32];
	snprintf(swarn, sizeof(swarn), "%lld", (long long)c->cfg->check_warn_age_ms);
	snprintf(scrit, sizeof(scrit), "%lld", (long long)c->cfg->check_crit_age_ms);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql,
		      "SELECT s.d, count(*)::int8, max(s.age)::int8, count(*) FILTER (WHERE s.age > $2::int8)::int8, "
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

static int q_dead(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep, bool small)
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
static int q_prepared(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT count(*)::int8 FROM (SELECT 1 FROM %s t WHERE %s = 'prepared' LIMIT $1::int8) s",
			c->T, c->t[MQTX_COL_STATUS]);
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
static int q_traffic(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep)
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
			c->t[MQTX_COL_DESTINATION], c->t[MQTX_COL_SENT_AT], c->T, c->t[MQTX_COL_STATUS],
			c->t[MQTX_COL_SENT_AT], c->t[MQTX_COL_SENT_AT]);
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
static int q_rows(struct mqtx_db_check *c, const char *sql, int n, const char *const *params, const char *doing,
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
static void pending_subquery(const struct mqtx_db_check *c, struct mqtx_buf *b, const char *extra_cols)
{
	mqtx_buf_adds(b, "(SELECT ");
	row_cols(c, b);
	if (extra_cols != NULL)
		mqtx_buf_printf(b, ", %s", extra_cols);
	mqtx_buf_printf(b, " FROM %s t WHERE %s = 'pending' ORDER BY %s LIMIT $1::int8) x", c->T, c->t[MQTX_COL_STATUS],
			c->t[MQTX_COL_ID]);
}

static int q_oldest_pending(struct mqtx_db_check *c, struct mqtx_check_row **rows, size_t *n)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql,
		      "SELECT x.r_id, x.r_key, x.r_dest, x.r_okey, x.r_err, x.r_attempts, x.r_age, x.r_retry FROM ");
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

static int q_high_attempts(struct mqtx_db_check *c, struct mqtx_check_row **rows, size_t *n, int64_t *total)
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

static int q_dead_rows(struct mqtx_db_check *c, struct mqtx_check_row **rows, size_t *n)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	row_cols(c, &sql);
	mqtx_buf_printf(&sql, " FROM %s t WHERE %s = 'dead' ORDER BY %s DESC LIMIT $1::int8", c->T,
			c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ID]);
	const char *p[1] = {c->slist};
	int rc = q_rows(c, sql.data, 1, p, "cannot read the dead rows", rows, n, -1, NULL);
	mqtx_buf_free(&sql);
	return rc;
}

/* Ordering keys whose first pending row has failed, with rows behind it:
 * the relay publishes none of them until the head is sent or dead. */
static int q_blocked(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep, struct mqtx_check_blocked **keys,
		     size_t *n)
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
static int q_relays(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep)
{
	bool exists;
	if (table_exists(c, c->R, &exists) < 0)
		return -1;
	rep->relays_known = exists;
	rep->last_relay_seen_ms = -1;
	if (!exists)
		return 0;
	char sforget[32];
	snprintf(sforget, sizeof(sforget), "%lld", (long long)c->cfg->check_relay_forget_ms);
	static const char *cols =
		"relay_id, host, pid::int8, version, "
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
		x->state = stopped ? MQTX_RELAY_STOPPED : MQTX_RELAY_LIVE; /* lib/check judges the running ones */
		x->tail_lag_ms = -1;
	}
	PQclear(r);
	return 0;
}

/* Sent messages with no completion after check.completion_after, among
 * those sent within check.completion_window. */
static int q_completion(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep, struct mqtx_check_row **rows,
			size_t *n, bool *missing_table)
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
			c->t[MQTX_COL_SENT_AT], c->t[MQTX_COL_SENT_AT], c->T, c->t[MQTX_COL_STATUS],
			c->t[MQTX_COL_SENT_AT], c->t[MQTX_COL_SENT_AT], c->C, c->key_t, c->t[MQTX_COL_SENT_AT]);
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

int mqtx_db_check_set_timeout(struct mqtx_db_check *c, struct mqtx_err *err)
{
	c->err = err;
	char st[32];
	snprintf(st, sizeof(st), "%lld", (long long)c->cfg->check_timeout_ms);
	const char *p[1] = {st};
	PGresult *r = query(c, "SELECT set_config('statement_timeout', $1, false)", 1, p,
			    "cannot set statement_timeout");
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* ------------------------------------------------------------ explain */

static const char *ts(const struct mqtx_db_check *c, enum mqtx_col k)
{
	static char buf[MQTX_COL__COUNT][160];
	if (c->t[k] == NULL)
		return "NULL::text";
	snprintf(buf[k], sizeof(buf[k]), "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
		 c->t[k]);
	return buf[k];
}

/* Finds the row: by id when ident is a number, else (or then) by key. */
static PGresult *explain_lookup(struct mqtx_db_check *c, const char *ident)
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

char *mqtx_db_check_retry_sql(const struct mqtx_db_check *c, int64_t id)
{
	return mqtx_xasprintf("UPDATE %s SET %s = now() WHERE %s = %lld AND %s = 'pending'", c->T,
			      c->q[MQTX_COL_AVAILABLE_AT], c->q[MQTX_COL_ID], (long long)id, c->q[MQTX_COL_STATUS]);
}

int mqtx_db_check_find(struct mqtx_db_check *c, const char *ident, struct mqtx_db_check_message *m, bool *found,
		       struct mqtx_err *err)
{
	memset(m, 0, sizeof(*m));
	m->sent_ms = -1;
	*found = false;
	c->err = err;
	mqtx_err_clear(err);
	PGresult *r = explain_lookup(c, ident);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		*found = true;
		read_row(r, 0, 0, &m->row);
		m->routing_key = get_str(r, 0, ROW_NCOLS);
		m->status = get_str(r, 0, ROW_NCOLS + 1);
		m->created_at = get_str(r, 0, ROW_NCOLS + 2);
		m->available_at = get_str(r, 0, ROW_NCOLS + 3);
		m->sent_at = get_str(r, 0, ROW_NCOLS + 4);
		m->redelivered_at = get_str(r, 0, ROW_NCOLS + 5);
		m->redelivery_count = get_i64(r, 0, ROW_NCOLS + 6, 0);
		m->sent_ms = get_i64(r, 0, ROW_NCOLS + 7, -1);
	}
	PQclear(r);
	return 0;
}

int mqtx_db_check_key_neighbours(struct mqtx_db_check *c, const char *okey, int64_t id, struct mqtx_check_row *head,
				 int64_t *ahead, int64_t *behind, struct mqtx_err *err)
{
	c->err = err;
	*ahead = *behind = 0;
	if (c->t[MQTX_COL_ORDERING_KEY] == NULL)
		return 0;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			", count(*) OVER ()::int8 FROM %s t WHERE %s = 'pending' AND %s = $1 AND %s < $2::int8 "
			"ORDER BY %s LIMIT 1",
			c->T, c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ORDERING_KEY], c->t[MQTX_COL_ID], c->t[MQTX_COL_ID]);
	char sid[32];
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	const char *p[2] = {okey, sid};
	PGresult *r = query(c, sql.data, 2, p, "cannot look at the message's ordering key");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		read_row(r, 0, 0, head);
		*ahead = get_i64(r, 0, ROW_NCOLS, 0);
	}
	PQclear(r);
	mqtx_buf_printf(&sql, "SELECT count(*)::int8 FROM %s t WHERE %s = 'pending' AND %s = $1 AND %s > $2::int8",
			c->T, c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ORDERING_KEY], c->t[MQTX_COL_ID]);
	r = query(c, sql.data, 2, p, "cannot look at the message's ordering key");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	*behind = get_i64(r, 0, 0, 0);
	PQclear(r);
	return 0;
}

int mqtx_db_check_relays_known(struct mqtx_db_check *c, bool *known, struct mqtx_err *err)
{
	c->err = err;
	return table_exists(c, c->R, known);
}

int mqtx_db_check_relay_alive(struct mqtx_db_check *c, int64_t stale_ms, bool *alive, int64_t *seen_ms,
			      struct mqtx_err *err)
{
	c->err = err;
	char sstale[32];
	snprintf(sstale, sizeof(sstale), "%lld", (long long)stale_ms);
	const char *p[2] = {c->ob_name, sstale};
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT count(*) FILTER (WHERE last_seen > now() - $2::int8 * interval '1 millisecond')::int8, "
			"(extract(epoch FROM now() - max(last_seen)) * 1000)::int8 FROM %s WHERE outbox = $1",
			c->R);
	PGresult *r = query(c, sql.data, 2, p, "cannot read the relay heartbeats");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	*alive = get_i64(r, 0, 0, 0) > 0;
	*seen_ms = get_i64(r, 0, 1, -1);
	PQclear(r);
	return 0;
}

int mqtx_db_check_completion(struct mqtx_db_check *c, const char *key, bool *exists, char **completed_at, char **source,
			     struct mqtx_err *err)
{
	c->err = err;
	*completed_at = *source = NULL;
	if (table_exists(c, c->C, exists) < 0)
		return -1;
	if (!*exists)
		return 0;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), source FROM %s "
			"WHERE idempotency_key = $1",
			c->C);
	const char *p[1] = {key};
	PGresult *r = query(c, sql.data, 1, p, "cannot look up the completion");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		*completed_at = get_str(r, 0, 0);
		*source = get_str(r, 0, 1);
	}
	PQclear(r);
	return 0;
}

const char *mqtx_db_check_relays_table(const struct mqtx_db_check *c)
{
	return c->R;
}

const char *mqtx_db_check_completions_table(const struct mqtx_db_check *c)
{
	return c->C;
}

char *mqtx_db_check_literal(const char *s)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	if (strchr(s, '\\') != NULL)
		mqtx_buf_adds(&b, " E");
	mqtx_buf_addc(&b, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'' || *s == '\\')
			mqtx_buf_addc(&b, *s);
		mqtx_buf_addc(&b, *s);
	}
	mqtx_buf_addc(&b, '\'');
	return mqtx_buf_detach(&b);
}

/* ------------------------------------------------------------ the snapshot */

static void tail_free(struct mqtx_check_tail *t);

void mqtx_check_snapshot_free(struct mqtx_check_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->database);
	free(s->checked_at);
	for (size_t i = 0; i < s->n_dests; i++) {
		free(s->dests[i].name);
		free(s->dests[i].broker_detail);
	}
	free(s->dests);
	for (size_t i = 0; i < s->n_relays; i++)
		mqtx_check_relay_free(&s->relays[i]);
	free(s->relays);
	mqtx_check_rows_free(s->oldest, s->n_oldest);
	mqtx_check_rows_free(s->high, s->n_high);
	mqtx_check_rows_free(s->dead, s->n_dead);
	mqtx_check_blocked_free(s->blocked, s->n_blocked);
	mqtx_check_rows_free(s->awaiting, s->n_awaiting);
	free(s->retention.error);
	free(s->retention.note);
	free(s->relays_table);
	free(s->completions_table);
	tail_free(&s->tail);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------ tail mode */

const char *const mqtx_check_parked_names[MQTX_PARKED__COUNT] = {"retry", "blocked", "dead"};

bool mqtx_db_check_tail(const struct mqtx_db_check *c)
{
	return c->tl != NULL;
}

void mqtx_check_xacts_free(struct mqtx_check_xact *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(x[i].gid);
		free(x[i].xid);
		free(x[i].application_name);
		free(x[i].state);
	}
	free(x);
}

static void tail_free(struct mqtx_check_tail *t)
{
	for (size_t i = 0; i < t->n_groups; i++) {
		struct mqtx_check_tail_group *g = &t->groups[i];
		free(g->buckets);
		free(g->prev_snapshot);
		free(g->cur_snapshot);
		free(g->relay_id);
		free(g->owner_app);
	}
	free(t->groups);
	mqtx_check_xacts_free(t->xacts, t->n_xacts);
	free(t->checkpoints_table);
	free(t->parked_table);
	free(t->outbox_literal);
	memset(t, 0, sizeof(*t));
}

/* The backend holding bucket expression `bucket`'s advisory lock (NULL:
 * none), as an int8 scalar subquery; $1 is the outbox's lock class, $2
 * MQTX_TAIL_BUCKET_LOCK. */
static void owner_expr(struct mqtx_buf *b, const char *bucket)
{
	mqtx_buf_printf(b,
			"(SELECT l.pid::int8 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
			"AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
			"AND l.classid::int8 = ($1::int8 & 4294967295) AND l.objid::int8 = $2::int8 + %s LIMIT 1)",
			bucket);
}

/* NULL-safe equality of two optional strings. */
static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* buckets (sorted) as ranges: "0-3,7". */
static char *bucket_ranges(const int64_t *v, size_t n)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k + 1 < n && v[k + 1] == v[k] + 1)
			k++;
		if (b.len > 0)
			mqtx_buf_addc(&b, ',');
		if (k == i)
			mqtx_buf_printf(&b, "%lld", (long long)v[i]);
		else
			mqtx_buf_printf(&b, "%lld-%lld", (long long)v[i], (long long)v[k]);
		i = k + 1;
	}
	return mqtx_buf_detach(&b);
}

/* The checkpoints, grouped by identical (prev, cur, pos, writer, owner);
 * *group_of[bucket] is the bucket's group (owned by the caller). */
static int q_tail_checkpoints(struct mqtx_db_check *c, struct mqtx_check_tail *t, size_t **group_of)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT x.bucket::int8, x.prev_snapshot::text, x.cur_snapshot::text, x.pos_id, x.relay_id, "
			    "(extract(epoch FROM now() - x.updated_at) * 1000)::int8, o.pid, a.application_name::text "
			    "FROM ");
	mqtx_buf_printf(&sql, "%s x LEFT JOIN LATERAL (SELECT ", mqtx_tail_checkpoints_table(c->tl));
	owner_expr(&sql, "x.bucket");
	mqtx_buf_adds(&sql, " AS pid) o ON true LEFT JOIN pg_stat_activity a ON a.pid = o.pid "
			    "WHERE x.outbox = $3 ORDER BY x.bucket");
	const char *p[3] = {c->slock, c->sbucket_lock, c->ob_name};
	PGresult *r = query(c, sql.data, 3, p, "cannot read the tail checkpoints");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int nt = PQntuples(r);
	int64_t top = 0;
	for (int i = 0; i < nt; i++)
		if (get_i64(r, i, 0, 0) + 1 > top)
			top = get_i64(r, i, 0, 0) + 1;
	*group_of = mqtx_xcalloc((size_t)top + 1, sizeof(**group_of));
	int64_t *members = mqtx_xcalloc((size_t)nt + 1, sizeof(*members));
	size_t *member_group = mqtx_xcalloc((size_t)nt + 1, sizeof(*member_group));
	t->buckets = nt;
	t->groups = mqtx_xcalloc((size_t)nt + 1, sizeof(*t->groups));
	for (int i = 0; i < nt; i++) {
		int64_t bucket = get_i64(r, i, 0, 0);
		const char *prev = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
		const char *cur = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
		int64_t pos = get_i64(r, i, 3, -1), owner = get_i64(r, i, 6, -1), upd = get_i64(r, i, 5, -1);
		const char *rid = PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4);
		if (owner >= 0)
			t->owned_buckets++;
		size_t g = 0;
		for (; g < t->n_groups; g++) {
			const struct mqtx_check_tail_group *x = &t->groups[g];
			if (same_str(x->prev_snapshot, prev) && same_str(x->cur_snapshot, cur) && x->pos_id == pos &&
			    same_str(x->relay_id, rid) && x->owner_pid == owner)
				break;
		}
		if (g == t->n_groups) {
			struct mqtx_check_tail_group *x = &t->groups[t->n_groups++];
			x->first_bucket = bucket;
			x->prev_snapshot = prev ? mqtx_xstrdup(prev) : NULL;
			x->cur_snapshot = cur ? mqtx_xstrdup(cur) : NULL;
			x->pos_id = pos;
			x->relay_id = rid ? mqtx_xstrdup(rid) : NULL;
			x->owner_pid = owner;
			x->owner_app = get_str(r, i, 7);
			x->updated_ms = upd;
			x->oldest_unrelayed_ms = -1;
		}
		struct mqtx_check_tail_group *x = &t->groups[g];
		x->n_buckets++;
		if (upd >= 0 && (x->updated_ms < 0 || upd < x->updated_ms))
			x->updated_ms = upd;
		members[i] = bucket;
		member_group[i] = g;
		if (bucket >= 0 && bucket < top)
			(*group_of)[bucket] = g;
	}
	PQclear(r);
	for (size_t g = 0; g < t->n_groups; g++) {
		int64_t *v = mqtx_xcalloc((size_t)t->groups[g].n_buckets + 1, sizeof(*v));
		size_t n = 0;
		for (int i = 0; i < nt; i++)
			if (member_group[i] == g)
				v[n++] = members[i]; /* in bucket order already */
		t->groups[g].buckets = bucket_ranges(v, n);
		free(v);
	}
	free(members);
	free(member_group);
	return 0;
}

/* How late row t of the parked table row p is, in ms (as late_expr: a
 * row parked for a delivery time counts from then). */
static void parked_late_expr(const struct mqtx_db_check *c, struct mqtx_buf *b, const char *name)
{
	const char *ca = c->t[MQTX_COL_CREATED_AT];
	mqtx_buf_printf(b,
			"greatest((extract(epoch FROM now() - CASE WHEN p.attempts = 0 AND isfinite(p.next_at) AND p.next_at > %s "
			"THEN p.next_at ELSE %s END) * 1000)::int8, 0) AS %s",
			ca, ca, name);
}

/* Unrelayed rows (not covered by their bucket's checkpoint, not parked),
 * the first check.scan_limit by id: per bucket and destination. Through
 * the txid index when every bucket has a prev snapshot (rows older than
 * the oldest xmin are covered). */
static int q_tail_unrelayed(struct mqtx_db_check *c, struct mqtx_check_snapshot *s, const size_t *group_of,
			    int64_t *n_warn, int64_t *n_crit)
{
	struct mqtx_check_tail *t = &s->tail;
	const struct mqtx_tail *tl = c->tl;
	char *bound = NULL;
	{
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql,
				"SELECT CASE WHEN count(*) = count(prev_snapshot) THEN min(pg_snapshot_xmin(prev_snapshot)) "
				"END::text FROM %s WHERE outbox = $1",
				mqtx_tail_checkpoints_table(tl));
		const char *p[1] = {c->ob_name};
		PGresult *r = query(c, sql.data, 1, p, "cannot read the tail checkpoints");
		mqtx_buf_free(&sql);
		if (r == NULL)
			return -1;
		bound = get_str(r, 0, 0);
		PQclear(r);
	}
	char swarn[32], scrit[32];
	snprintf(swarn, sizeof(swarn), "%lld", (long long)c->cfg->check_warn_age_ms);
	snprintf(scrit, sizeof(scrit), "%lld", (long long)c->cfg->check_crit_age_ms);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "WITH u AS (SELECT %s::int8 AS id, %s::text AS d, ", c->t[MQTX_COL_ID],
			c->t[MQTX_COL_DESTINATION]);
	mqtx_tail_bucket_sql(tl, &sql, "t");
	mqtx_buf_adds(&sql, "::int8 AS b, ");
	if (c->t[MQTX_COL_CREATED_AT] != NULL)
		late_expr(c, &sql, "age");
	else
		mqtx_buf_adds(&sql, "NULL::int8 AS age");
	mqtx_buf_printf(&sql, " FROM %s t JOIN %s cp ON cp.outbox = $4 AND cp.bucket = ", c->T,
			mqtx_tail_checkpoints_table(tl));
	mqtx_tail_bucket_sql(tl, &sql, "t");
	mqtx_buf_printf(&sql, " WHERE %s = 'pending'", c->t[MQTX_COL_STATUS]);
	if (bound != NULL)
		mqtx_buf_printf(&sql, " AND %s >= $5::xid8", c->t[MQTX_COL_TXID]);
	mqtx_buf_adds(&sql, " AND NOT ");
	mqtx_tail_covered_sql(tl, &sql, "t", "cp");
	mqtx_buf_printf(&sql,
			" AND NOT EXISTS (SELECT 1 FROM %s p WHERE p.outbox = $4 AND p.id = %s) ORDER BY %s LIMIT $1::int8) "
			"SELECT u.b, u.d, count(*)::int8, max(u.age)::int8, count(*) FILTER (WHERE u.age > $2::int8)::int8, "
			"count(*) FILTER (WHERE u.age > $3::int8)::int8, (array_agg(u.id ORDER BY u.age DESC NULLS LAST, u.id))[1] "
			"FROM u GROUP BY u.b, u.d",
			mqtx_tail_parked_table(tl), c->t[MQTX_COL_ID], c->t[MQTX_COL_ID]);
	const char *p[5] = {c->scap, swarn, scrit, c->ob_name, bound};
	PGresult *r = query(c, sql.data, bound != NULL ? 5 : 4, p, "cannot read the unrelayed rows");
	mqtx_buf_free(&sql);
	free(bound);
	if (r == NULL)
		return -1;
	int64_t oldest_age = -1;
	for (int i = 0; i < PQntuples(r); i++) {
		int64_t bucket = get_i64(r, i, 0, 0), n = get_i64(r, i, 2, 0), age = get_i64(r, i, 3, -1);
		struct mqtx_check_dest *d = dest_get(s, PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1));
		d->pending += n;
		if (age > d->oldest_pending_ms)
			d->oldest_pending_ms = age;
		t->unrelayed += n;
		*n_warn += get_i64(r, i, 4, 0);
		*n_crit += get_i64(r, i, 5, 0);
		if (age > oldest_age || (age == oldest_age && t->oldest_unrelayed_id < 0)) {
			oldest_age = age;
			t->oldest_unrelayed_ms = age;
			t->oldest_unrelayed_id = get_i64(r, i, 6, -1);
		}
		if (bucket >= 0 && bucket < t->buckets) {
			struct mqtx_check_tail_group *g = &t->groups[group_of[bucket]];
			g->unrelayed += n;
			if (age > g->oldest_unrelayed_ms)
				g->oldest_unrelayed_ms = age;
		}
	}
	PQclear(r);
	t->unrelayed_truncated = t->unrelayed >= c->cfg->check_scan_limit;
	return 0;
}

/* Parked rows by state and destination (all of them: the parked table is
 * small by design), with how late the non-dead ones are. */
static int q_tail_parked(struct mqtx_db_check *c, struct mqtx_check_snapshot *s, int64_t *n_warn, int64_t *n_crit,
			 int64_t *oldest_id)
{
	struct mqtx_check_tail *t = &s->tail;
	char swarn[32], scrit[32];
	snprintf(swarn, sizeof(swarn), "%lld", (long long)c->cfg->check_warn_age_ms);
	snprintf(scrit, sizeof(scrit), "%lld", (long long)c->cfg->check_crit_age_ms);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "WITH x AS (SELECT p.state, %s::int8 AS id, %s::text AS d, ", c->t[MQTX_COL_ID],
			c->t[MQTX_COL_DESTINATION]);
	if (c->t[MQTX_COL_CREATED_AT] != NULL)
		parked_late_expr(c, &sql, "age");
	else
		mqtx_buf_adds(&sql, "NULL::int8 AS age");
	mqtx_buf_printf(&sql,
			" FROM %s p JOIN %s t ON %s = p.id WHERE p.outbox = $1) "
			"SELECT x.state, x.d, count(*)::int8, max(x.age)::int8, count(*) FILTER (WHERE x.age > $2::int8)::int8, "
			"count(*) FILTER (WHERE x.age > $3::int8)::int8, (array_agg(x.id ORDER BY x.age DESC NULLS LAST, x.id))[1] "
			"FROM x GROUP BY x.state, x.d",
			mqtx_tail_parked_table(c->tl), c->T, c->t[MQTX_COL_ID]);
	const char *p[3] = {c->ob_name, swarn, scrit};
	PGresult *r = query(c, sql.data, 3, p, "cannot read the parked rows");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int64_t oldest = -1;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *st = PQgetvalue(r, i, 0);
		int k = strcmp(st, "dead") == 0      ? MQTX_PARKED_DEAD
			: strcmp(st, "blocked") == 0 ? MQTX_PARKED_BLOCKED
						     : MQTX_PARKED_RETRY;
		int64_t n = get_i64(r, i, 2, 0), age = get_i64(r, i, 3, -1);
		t->parked[k] += n;
		struct mqtx_check_dest *d = dest_get(s, PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1));
		if (k == MQTX_PARKED_DEAD) {
			d->dead += n;
			continue;
		}
		d->pending += n;
		if (age > d->oldest_pending_ms)
			d->oldest_pending_ms = age;
		*n_warn += get_i64(r, i, 4, 0);
		*n_crit += get_i64(r, i, 5, 0);
		if (age > oldest) {
			oldest = age;
			*oldest_id = get_i64(r, i, 6, -1);
		}
	}
	PQclear(r);
	if (oldest > s->oldest_pending_ms)
		s->oldest_pending_ms = oldest;
	else
		*oldest_id = -1;
	return 0;
}

/* The columns of a struct mqtx_check_row for outbox row t and its parked
 * row p (LEFT JOINed: attempts, error and retry time are p's when parked). */
static void tail_row_cols(const struct mqtx_db_check *c, struct mqtx_buf *b)
{
	mqtx_buf_printf(b,
			"%s::int8 AS r_id, %s AS r_key, %s::text AS r_dest, %s::text AS r_okey, "
			"CASE WHEN p.id IS NOT NULL THEN p.last_error ELSE %s END::text AS r_err, "
			"coalesce(p.attempts, %s)::int8 AS r_attempts, ",
			c->t[MQTX_COL_ID], c->key_t, c->t[MQTX_COL_DESTINATION], tcol(c, MQTX_COL_ORDERING_KEY, "NULL"),
			c->t[MQTX_COL_LAST_ERROR], c->t[MQTX_COL_ATTEMPTS]);
	if (c->t[MQTX_COL_CREATED_AT] != NULL)
		mqtx_buf_printf(b, "(extract(epoch FROM now() - %s) * 1000)::int8 AS r_age, ",
				c->t[MQTX_COL_CREATED_AT]);
	else
		mqtx_buf_adds(b, "NULL::int8 AS r_age, ");
	mqtx_buf_printf(b,
			"CASE WHEN p.id IS NOT NULL AND p.next_at IS NULL THEN 0 "
			"WHEN p.id IS NOT NULL AND isfinite(p.next_at) THEN (extract(epoch FROM p.next_at - now()) * 1000)::int8 "
			"WHEN p.id IS NOT NULL THEN %lld "
			"WHEN isfinite(%s) THEN (extract(epoch FROM %s - now()) * 1000)::int8 ELSE %lld END AS r_retry",
			(long long)MQTX_CHECK_PARKED, c->t[MQTX_COL_AVAILABLE_AT], c->t[MQTX_COL_AVAILABLE_AT],
			(long long)MQTX_CHECK_PARKED);
}

/* One row as evidence (the oldest pending one). */
static int q_tail_row(struct mqtx_db_check *c, int64_t id, struct mqtx_check_row **rows, size_t *n)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	tail_row_cols(c, &sql);
	mqtx_buf_printf(&sql, " FROM %s t LEFT JOIN %s p ON p.outbox = $1 AND p.id = %s WHERE %s = $2::int8", c->T,
			mqtx_tail_parked_table(c->tl), c->t[MQTX_COL_ID], c->t[MQTX_COL_ID]);
	char sid[32];
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	const char *p[2] = {c->ob_name, sid};
	int rc = q_rows(c, sql.data, 2, p, "cannot read the oldest pending row", rows, n, -1, NULL);
	mqtx_buf_free(&sql);
	return rc;
}

/* Parked rows that failed at least check.warn_attempts times. */
static int q_tail_high_attempts(struct mqtx_db_check *c, struct mqtx_check_row **rows, size_t *n, int64_t *total)
{
	char sa[32];
	snprintf(sa, sizeof(sa), "%lld", (long long)c->cfg->check_warn_attempts);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	tail_row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			", count(*) OVER ()::int8 FROM %s p JOIN %s t ON %s = p.id WHERE p.outbox = $1 AND p.state <> 'dead' "
			"AND p.attempts >= $2::int8 ORDER BY p.attempts DESC, p.id LIMIT $3::int8",
			mqtx_tail_parked_table(c->tl), c->T, c->t[MQTX_COL_ID]);
	const char *p[3] = {c->ob_name, sa, c->slist};
	int rc = q_rows(c, sql.data, 3, p, "cannot read the rows with many attempts", rows, n, ROW_NCOLS, total);
	mqtx_buf_free(&sql);
	return rc;
}

/* The newest dead rows: parked dead, and dead rows of the status era. */
static int q_tail_dead_rows(struct mqtx_db_check *c, struct mqtx_check_row **rows, size_t *n)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT * FROM ((SELECT ");
	tail_row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			" FROM %s p JOIN %s t ON %s = p.id WHERE p.outbox = $1 AND p.state = 'dead' ORDER BY p.id DESC "
			"LIMIT $2::int8) UNION ALL (SELECT ",
			mqtx_tail_parked_table(c->tl), c->T, c->t[MQTX_COL_ID]);
	row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			" FROM %s t WHERE %s = 'dead' ORDER BY %s DESC LIMIT $2::int8)) x ORDER BY x.r_id DESC "
			"LIMIT $2::int8",
			c->T, c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ID]);
	const char *p[2] = {c->ob_name, c->slist};
	int rc = q_rows(c, sql.data, 2, p, "cannot read the dead rows", rows, n, -1, NULL);
	mqtx_buf_free(&sql);
	return rc;
}

/* Ordering keys with parked 'blocked' rows, with the first non-dead
 * parked row of the key (the one they wait for). */
static int q_tail_blocked(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep, struct mqtx_check_blocked **keys,
			  size_t *n)
{
	*keys = NULL;
	*n = 0;
	const char *P = mqtx_tail_parked_table(c->tl);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"WITH k AS (SELECT ordering_key AS k, count(*) FILTER (WHERE state = 'blocked') AS behind, "
			"min(seq) FILTER (WHERE state <> 'dead') AS head FROM %s WHERE outbox = $1 AND ordering_key IS NOT NULL "
			"GROUP BY ordering_key HAVING count(*) FILTER (WHERE state = 'blocked') > 0) SELECT ",
			P);
	tail_row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			", k.k::text, (k.behind - CASE WHEN p.state = 'blocked' THEN 1 ELSE 0 END)::int8, count(*) OVER ()::int8, "
			"(sum(k.behind) OVER ())::int8 FROM k JOIN %s p ON p.outbox = $1 AND p.seq = k.head "
			"JOIN %s t ON %s = p.id ORDER BY k.behind DESC, k.head LIMIT $2::int8",
			P, c->T, c->t[MQTX_COL_ID]);
	const char *p[2] = {c->ob_name, c->slist};
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

/* Open (pg_stat_activity.backend_xid) and prepared transactions of this
 * database: those in a checkpoint's in-progress list, those holding a
 * lock on the outbox (they wrote rows there), and (min_age_ms > 0) those
 * older than min_age_ms; only writers with only_writers. Oldest first. */
static int q_tail_xacts(struct mqtx_db_check *c, int64_t min_age_ms, bool only_writers, struct mqtx_check_xact **out,
			size_t *n, int64_t *total)
{
	static const char *locks =
		"('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')";
	char sage[32];
	snprintf(sage, sizeof(sage), "%lld", (long long)min_age_ms);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"WITH rels AS (SELECT relid AS oid FROM pg_partition_tree($1::regclass) UNION SELECT $1::regclass::oid), "
			"xip AS (SELECT DISTINCT (x.x::text::int8 & 4294967295) AS x32 FROM %s cp, "
			"LATERAL (SELECT pg_snapshot_xip(cp.prev_snapshot) UNION ALL SELECT pg_snapshot_xip(cp.cur_snapshot)) x(x) "
			"WHERE cp.outbox = $2), "
			"b AS (SELECT false AS prepared, a.pid::int8 AS pid, NULL::text AS gid, a.backend_xid::text AS xid, "
			"a.application_name::text AS app, a.state::text AS state, "
			"(extract(epoch FROM now() - a.xact_start) * 1000)::int8 AS age, "
			"EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.granted "
			"AND l.relation IN (SELECT oid FROM rels) AND l.mode IN %s) AS wrote "
			"FROM pg_stat_activity a WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL "
			"AND a.pid <> pg_backend_pid()), "
			"p AS (SELECT true, NULL::int8, x.gid::text, x.transaction::text, NULL::text, NULL::text, "
			"(extract(epoch FROM now() - x.prepared) * 1000)::int8, "
			"EXISTS (SELECT 1 FROM pg_locks l JOIN pg_locks lx ON lx.virtualtransaction = l.virtualtransaction "
			"AND lx.locktype = 'transactionid' AND lx.transactionid = x.transaction "
			"WHERE l.pid IS NULL AND l.locktype = 'relation' AND l.relation IN (SELECT oid FROM rels) AND l.mode IN %s) "
			"FROM pg_prepared_xacts x WHERE x.database = current_database()), "
			"y AS (SELECT z.*, z.xid::int8 IN (SELECT x32 FROM xip) AS in_xip FROM (SELECT * FROM b UNION ALL "
			"SELECT * FROM p) z) "
			"SELECT y.prepared, y.pid, y.gid, y.xid, y.app, y.state, y.age, y.in_xip, y.wrote, count(*) OVER ()::int8 "
			"FROM y WHERE y.wrote OR (NOT $5::bool AND (y.in_xip OR ($3::int8 > 0 AND y.age > $3::int8))) "
			"ORDER BY y.age DESC NULLS LAST LIMIT $4::int8",
			mqtx_tail_checkpoints_table(c->tl), locks, locks);
	const char *p[5] = {c->T, c->ob_name, sage, c->slist, only_writers ? "true" : "false"};
	PGresult *r = query(c, sql.data, 5, p, "cannot look for open and prepared transactions");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	int nt = PQntuples(r);
	*out = mqtx_xcalloc((size_t)nt + 1, sizeof(**out));
	*n = (size_t)nt;
	*total = nt > 0 ? get_i64(r, 0, 9, 0) : 0;
	for (int i = 0; i < nt; i++) {
		struct mqtx_check_xact *x = &(*out)[i];
		x->prepared = PQgetvalue(r, i, 0)[0] == 't';
		x->pid = get_i64(r, i, 1, -1);
		x->gid = get_str(r, i, 2);
		x->xid = get_str(r, i, 3);
		x->application_name = get_str(r, i, 4);
		x->state = get_str(r, i, 5);
		x->age_ms = get_i64(r, i, 6, -1);
		x->in_xip = PQgetvalue(r, i, 7)[0] == 't';
		x->wrote_outbox = PQgetvalue(r, i, 8)[0] == 't';
	}
	PQclear(r);
	return 0;
}

/* Small tables: exact counts by effective status (mqtx_tail_status_sql). */
static int q_tail_exact_counts(struct mqtx_db_check *c, struct mqtx_check_snapshot *rep)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	mqtx_tail_status_sql(c->tl, &sql, "t");
	mqtx_buf_printf(&sql, ", count(*)::int8 FROM %s t GROUP BY 1", c->T);
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

/* Each relay's buckets: those whose checkpoint it wrote last, and their
 * largest lag (tail mode, after q_relays and the groups). */
static void tail_relay_buckets(struct mqtx_check_snapshot *s)
{
	const struct mqtx_check_tail *t = &s->tail;
	for (size_t i = 0; i < s->n_relays; i++) {
		struct mqtx_check_relay *x = &s->relays[i];
		struct mqtx_buf b = MQTX_BUF_INIT;
		for (size_t g = 0; g < t->n_groups; g++) {
			const struct mqtx_check_tail_group *y = &t->groups[g];
			if (x->relay_id == NULL || y->relay_id == NULL || strcmp(x->relay_id, y->relay_id) != 0)
				continue;
			mqtx_buf_printf(&b, "%s%s", b.len > 0 ? "," : "", y->buckets);
			int64_t lag = y->oldest_unrelayed_ms > 0 ? y->oldest_unrelayed_ms : 0;
			if (lag > x->tail_lag_ms)
				x->tail_lag_ms = lag;
		}
		x->tail_buckets = b.len > 0 ? mqtx_buf_detach(&b) : NULL;
		mqtx_buf_free(&b);
	}
}

/* The tail-mode snapshot: checkpoints, unrelayed and parked rows, old
 * transactions; the status counts with their tail meaning. */
static int snapshot_tail(struct mqtx_db_check *c, struct mqtx_check_snapshot *s)
{
	const struct mqtx_config *cfg = c->cfg;
	struct mqtx_check_tail *t = &s->tail;
	t->on = true;
	t->oldest_unrelayed_ms = t->oldest_unrelayed_id = -1;
	t->checkpoints_table = mqtx_xstrdup(mqtx_tail_checkpoints_table(c->tl));
	t->parked_table = mqtx_xstrdup(mqtx_tail_parked_table(c->tl));
	t->outbox_literal = mqtx_xstrdup(mqtx_tail_outbox_literal(c->tl));
	bool small = false;
	if (q_meta(c, s, &small) < 0 || q_oldest_row(c, s) < 0)
		return -1;
	if (small && q_tail_exact_counts(c, s) < 0)
		return -1;
	size_t *group_of = NULL;
	int64_t n_warn = 0, n_crit = 0, parked_oldest = -1;
	s->oldest_pending_ms = -1;
	int rc = q_tail_checkpoints(c, t, &group_of);
	if (rc == 0)
		rc = q_tail_unrelayed(c, s, group_of, &n_warn, &n_crit);
	free(group_of);
	if (rc < 0)
		return -1;
	s->oldest_pending_ms = t->oldest_unrelayed_ms;
	if (q_tail_parked(c, s, &n_warn, &n_crit, &parked_oldest) < 0)
		return -1;
	s->n_warn_age = n_warn;
	s->n_crit_age = n_crit;
	s->pending_truncated = t->unrelayed_truncated;
	/* status-era dead rows (the status column), per destination */
	int64_t era_dead = 0;
	{
		struct mqtx_check_snapshot tmp = {0};
		if (q_dead(c, &tmp, true) < 0) {
			mqtx_check_snapshot_free(&tmp);
			return -1;
		}
		for (size_t i = 0; i < tmp.n_dests; i++) {
			dest_get(s, tmp.dests[i].name)->dead += tmp.dests[i].dead;
			era_dead += tmp.dests[i].dead;
		}
		mqtx_check_snapshot_free(&tmp);
	}
	if (!small) {
		int64_t pend = t->unrelayed + t->parked[MQTX_PARKED_RETRY] + t->parked[MQTX_PARKED_BLOCKED];
		set_count(&s->status[MQTX_ST_PENDING], pend, t->unrelayed_truncated);
		int64_t dead = t->parked[MQTX_PARKED_DEAD] + era_dead;
		set_count(&s->status[MQTX_ST_DEAD], dead, era_dead >= cfg->check_scan_limit);
		if (q_estimates(c, s) < 0 || q_prepared(c, s) < 0)
			return -1;
		/* relayed: what is neither pending, dead, prepared nor rolled back */
		if (s->total_estimate >= 0) {
			int64_t rb = s->status[MQTX_ST_ROLLED_BACK].n > 0 ? s->status[MQTX_ST_ROLLED_BACK].n : 0;
			int64_t rest = s->total_estimate - s->status[MQTX_ST_PENDING].n - s->status[MQTX_ST_DEAD].n -
				       s->status[MQTX_ST_PREPARED].n - rb;
			s->status[MQTX_ST_SENT] = (struct mqtx_check_count){rest > 0 ? rest : 0, true};
		}
	}
	s->relayed_minute = s->relayed_hour = -1; /* no sent_at in tail mode */
	int64_t oldest_id = parked_oldest >= 0 ? parked_oldest : t->oldest_unrelayed_id;
	if (oldest_id >= 0 && q_tail_row(c, oldest_id, &s->oldest, &s->n_oldest) < 0)
		return -1;
	if (cfg->check_warn_attempts > 0 && q_tail_high_attempts(c, &s->high, &s->n_high, &s->high_attempt_rows) < 0)
		return -1;
	if (s->status[MQTX_ST_DEAD].n > 0 && q_tail_dead_rows(c, &s->dead, &s->n_dead) < 0)
		return -1;
	if (q_tail_blocked(c, s, &s->blocked, &s->n_blocked) < 0)
		return -1;
	int64_t min_age = cfg->check_warn_age_ms;
	if (min_age <= 0 || (cfg->check_crit_age_ms > 0 && cfg->check_crit_age_ms < min_age))
		min_age = cfg->check_crit_age_ms;
	if (q_tail_xacts(c, min_age, false, &t->xacts, &t->n_xacts, &t->n_xacts_total) < 0)
		return -1;
	if (q_relays(c, s) < 0)
		return -1;
	tail_relay_buckets(s);
	if (cfg->check_completion && s->has_sent_at &&
	    q_completion(c, s, &s->awaiting, &s->n_awaiting, &s->completion_table_missing) < 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ tail explain */

void mqtx_db_check_tail_row_free(struct mqtx_db_check_tail_row *tr)
{
	if (tr == NULL)
		return;
	free(tr->status);
	free(tr->txid);
	free(tr->prev_snapshot);
	free(tr->cur_snapshot);
	free(tr->relay_id);
	free(tr->owner_app);
	free(tr->parked_state);
	free(tr->next_at);
	free(tr->parked_error);
	free(tr->parked_at);
	memset(tr, 0, sizeof(*tr));
}

/* Unrelayed rows of bucket before row id (at most check.scan_limit);
 * through the txid index from xmin (the prev snapshot's), when set. */
static int q_tail_ahead(struct mqtx_db_check *c, int64_t id, int64_t bucket, const char *xmin, int64_t *ahead)
{
	const struct mqtx_tail *tl = c->tl;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT count(*)::int8 FROM (SELECT 1 FROM %s t JOIN %s cp ON cp.outbox = $1 AND cp.bucket = $2::int4 "
			"WHERE %s = 'pending' AND %s < $3::int8 AND ",
			c->T, mqtx_tail_checkpoints_table(tl), c->t[MQTX_COL_STATUS], c->t[MQTX_COL_ID]);
	mqtx_tail_bucket_sql(tl, &sql, "t");
	mqtx_buf_adds(&sql, " = $2::int4 AND NOT ");
	mqtx_tail_covered_sql(tl, &sql, "t", "cp");
	mqtx_buf_printf(&sql, " AND NOT EXISTS (SELECT 1 FROM %s p WHERE p.outbox = $1 AND p.id = %s)",
			mqtx_tail_parked_table(tl), c->t[MQTX_COL_ID]);
	if (xmin != NULL)
		mqtx_buf_printf(&sql, " AND %s >= $5::xid8", c->t[MQTX_COL_TXID]);
	mqtx_buf_adds(&sql, " LIMIT $4::int8) z");
	char sb[32], sid[32];
	snprintf(sb, sizeof(sb), "%lld", (long long)bucket);
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	const char *p[5] = {c->ob_name, sb, sid, c->scap, xmin};
	PGresult *r = query(c, sql.data, xmin != NULL ? 5 : 4, p, "cannot count the unrelayed rows before the row");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	*ahead = get_i64(r, 0, 0, 0);
	PQclear(r);
	return 0;
}

int mqtx_db_check_tail_find(struct mqtx_db_check *c, int64_t id, struct mqtx_db_check_tail_row *tr, bool *found,
			    struct mqtx_err *err)
{
	c->err = err;
	memset(tr, 0, sizeof(*tr));
	*found = false;
	const struct mqtx_tail *tl = c->tl;
	const char *CP = mqtx_tail_checkpoints_table(tl), *P = mqtx_tail_parked_table(tl);
	const char *x = c->t[MQTX_COL_TXID];
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	mqtx_tail_status_sql(tl, &sql, "t");
	mqtx_buf_adds(&sql, ", cp.bucket::int8, ");
	mqtx_buf_printf(&sql, "%s::text, ", x);
	mqtx_tail_covered_sql(tl, &sql, "t", "cp");
	mqtx_buf_printf(&sql,
			", (cp.prev_snapshot IS NOT NULL AND (%s IS NULL OR pg_visible_in_snapshot(%s, cp.prev_snapshot))), "
			"(cp.cur_snapshot IS NOT NULL AND (%s IS NULL OR pg_visible_in_snapshot(%s, cp.cur_snapshot))), "
			"cp.prev_snapshot::text, cp.cur_snapshot::text, cp.pos_id, cp.relay_id, "
			"(extract(epoch FROM now() - cp.updated_at) * 1000)::int8, o.pid, "
			"(SELECT a.application_name::text FROM pg_stat_activity a WHERE a.pid = o.pid), "
			"p.state, p.attempts::int8, "
			"CASE WHEN isfinite(p.next_at) THEN to_char(p.next_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
			"ELSE p.next_at::text END, "
			"CASE WHEN p.next_at IS NULL THEN -1 WHEN isfinite(p.next_at) THEN "
			"(extract(epoch FROM p.next_at - now()) * 1000)::int8 ELSE %lld END, p.last_error, "
			"to_char(p.parked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), p.seq::int8, "
			"pg_snapshot_xmin(cp.prev_snapshot)::text "
			"FROM %s t JOIN %s cp ON cp.outbox = $3 AND cp.bucket = ",
			x, x, x, x, (long long)MQTX_CHECK_PARKED, c->T, CP);
	mqtx_tail_bucket_sql(tl, &sql, "t");
	mqtx_buf_adds(&sql, " LEFT JOIN LATERAL (SELECT ");
	owner_expr(&sql, "cp.bucket");
	mqtx_buf_printf(&sql, " AS pid) o ON true LEFT JOIN %s p ON p.outbox = $3 AND p.id = %s WHERE %s = $4::int8", P,
			c->t[MQTX_COL_ID], c->t[MQTX_COL_ID]);
	char sid[32];
	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	const char *p[4] = {c->slock, c->sbucket_lock, c->ob_name, sid};
	PGresult *r = query(c, sql.data, 4, p, "cannot look up the row's checkpoint");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		*found = true;
		tr->status = get_str(r, 0, 0);
		tr->bucket = get_i64(r, 0, 1, -1);
		tr->txid = get_str(r, 0, 2);
		tr->covered = PQgetvalue(r, 0, 3)[0] == 't';
		tr->in_prev = PQgetvalue(r, 0, 4)[0] == 't';
		tr->in_cur = PQgetvalue(r, 0, 5)[0] == 't';
		tr->prev_snapshot = get_str(r, 0, 6);
		tr->cur_snapshot = get_str(r, 0, 7);
		tr->pos_id = get_i64(r, 0, 8, -1);
		tr->relay_id = get_str(r, 0, 9);
		tr->updated_ms = get_i64(r, 0, 10, -1);
		tr->owner_pid = get_i64(r, 0, 11, -1);
		tr->owner_app = get_str(r, 0, 12);
		tr->parked = !PQgetisnull(r, 0, 13);
		tr->parked_state = get_str(r, 0, 13);
		tr->parked_attempts = get_i64(r, 0, 14, 0);
		tr->next_at = get_str(r, 0, 15);
		tr->next_in_ms = get_i64(r, 0, 16, -1);
		tr->parked_error = get_str(r, 0, 17);
		tr->parked_at = get_str(r, 0, 18);
		tr->seq = get_i64(r, 0, 19, -1);
	}
	char *xmin = *found ? get_str(r, 0, 20) : NULL;
	PQclear(r);
	int rc = *found ? q_tail_ahead(c, id, tr->bucket, xmin, &tr->ahead) : 0;
	free(xmin);
	return rc;
}

int mqtx_db_check_tail_key_head(struct mqtx_db_check *c, const char *okey, int64_t seq, struct mqtx_check_row *head,
				int64_t *ahead, int64_t *behind, struct mqtx_err *err)
{
	c->err = err;
	*ahead = *behind = 0;
	const char *P = mqtx_tail_parked_table(c->tl);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	tail_row_cols(c, &sql);
	mqtx_buf_printf(&sql,
			", count(*) OVER ()::int8 FROM %s p JOIN %s t ON %s = p.id WHERE p.outbox = $1 AND p.ordering_key = $2 "
			"AND p.state <> 'dead' AND p.seq < $3::int8 ORDER BY p.seq LIMIT 1",
			P, c->T, c->t[MQTX_COL_ID]);
	char sseq[32];
	snprintf(sseq, sizeof(sseq), "%lld", (long long)seq);
	const char *p[3] = {c->ob_name, okey, sseq};
	PGresult *r = query(c, sql.data, 3, p, "cannot look at the row's ordering key");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		read_row(r, 0, 0, head);
		*ahead = get_i64(r, 0, ROW_NCOLS, 0);
	}
	PQclear(r);
	mqtx_buf_printf(&sql,
			"SELECT count(*)::int8 FROM %s WHERE outbox = $1 AND ordering_key = $2 AND state = 'blocked' "
			"AND seq > $3::int8",
			P);
	r = query(c, sql.data, 3, p, "cannot look at the row's ordering key");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	*behind = get_i64(r, 0, 0, 0);
	PQclear(r);
	return 0;
}

int mqtx_db_check_tail_writers(struct mqtx_db_check *c, struct mqtx_check_xact **xacts, size_t *n, int64_t *total,
			       int64_t *max_id, struct mqtx_err *err)
{
	c->err = err;
	*xacts = NULL;
	*n = 0;
	*total = 0;
	*max_id = -1;
	if (q_tail_xacts(c, 0, true, xacts, n, total) < 0)
		return -1;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT max(%s)::int8 FROM %s t", c->t[MQTX_COL_ID], c->T);
	PGresult *r = query(c, sql.data, 0, NULL, "cannot read the highest outbox id");
	mqtx_buf_free(&sql);
	if (r == NULL)
		return -1;
	*max_id = get_i64(r, 0, 0, -1);
	PQclear(r);
	return 0;
}

char *mqtx_db_check_tail_retry_sql(const struct mqtx_db_check *c, int64_t id)
{
	return mqtx_xasprintf("UPDATE %s SET next_at = now() WHERE outbox = %s AND id = %lld AND state = 'retry'",
			      mqtx_tail_parked_table(c->tl), mqtx_tail_outbox_literal(c->tl), (long long)id);
}

/* Status mode: does the outbox have tail-mode checkpoints (it was relayed
 * in tail mode, and its 'pending' rows may be relayed already)? */
static int q_tail_checkpoints_exist(struct mqtx_db_check *c, struct mqtx_check_snapshot *s)
{
	char *qs = mqtx_pg_ident(c->conn, c->cfg->outbox_schema);
	char *cp = mqtx_xasprintf("%s.mqtx_tail_checkpoints", qs);
	free(qs);
	/* a role that may not read it (never granted: tail mode was never used
	 * through this role) cannot tell; a failed SELECT would end the snapshot */
	bool exists = false;
	const char *q[1] = {cp};
	PGresult *e =
		query(c,
		      "SELECT CASE WHEN to_regclass($1) IS NULL THEN false ELSE has_table_privilege($1, 'SELECT') END",
		      1, q, "cannot look up a table");
	int rc = e != NULL ? 0 : -1;
	if (e != NULL) {
		exists = PQgetvalue(e, 0, 0)[0] == 't';
		PQclear(e);
	}
	if (rc == 0 && exists) {
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql, "SELECT EXISTS (SELECT 1 FROM %s WHERE outbox = $1)", cp);
		const char *p[1] = {c->ob_name};
		PGresult *r = query(c, sql.data, 1, p, "cannot look for tail-mode checkpoints");
		mqtx_buf_free(&sql);
		if (r == NULL) {
			rc = -1;
		} else {
			s->tail_checkpoints = PQgetvalue(r, 0, 0)[0] == 't';
			PQclear(r);
		}
	}
	free(cp);
	return rc;
}

static int snapshot_tx(struct mqtx_db_check *c, struct mqtx_check_snapshot *s)
{
	const struct mqtx_config *cfg = c->cfg;
	bool small = false;
	if (q_meta(c, s, &small) < 0 || q_oldest_row(c, s) < 0)
		return -1;
	if (small && q_exact_counts(c, s) < 0)
		return -1;
	if (q_pending(c, s, small, &s->n_warn_age, &s->n_crit_age, &s->pending_truncated) < 0 ||
	    q_dead(c, s, small) < 0)
		return -1;
	if (!small && (q_estimates(c, s) < 0 || q_prepared(c, s) < 0))
		return -1;
	if (!small && !s->estimated_from_stats && s->total_estimate >= 0) {
		/* never analyzed: whatever is neither pending, dead nor prepared counts as sent */
		int64_t rest = s->total_estimate - s->status[MQTX_ST_PENDING].n - s->status[MQTX_ST_DEAD].n -
			       s->status[MQTX_ST_PREPARED].n;
		s->status[MQTX_ST_SENT].n = rest > 0 ? rest : 0;
	}
	if (q_traffic(c, s) < 0)
		return -1;
	if (s->status[MQTX_ST_PENDING].n > 0 && q_oldest_pending(c, &s->oldest, &s->n_oldest) < 0)
		return -1;
	if (cfg->check_warn_attempts > 0 && s->status[MQTX_ST_PENDING].n > 0 &&
	    q_high_attempts(c, &s->high, &s->n_high, &s->high_attempt_rows) < 0)
		return -1;
	if (s->status[MQTX_ST_DEAD].n > 0 && q_dead_rows(c, &s->dead, &s->n_dead) < 0)
		return -1;
	if (q_blocked(c, s, &s->blocked, &s->n_blocked) < 0)
		return -1;
	if (q_relays(c, s) < 0 || q_tail_checkpoints_exist(c, s) < 0)
		return -1;
	if (cfg->check_completion && s->has_sent_at &&
	    q_completion(c, s, &s->awaiting, &s->n_awaiting, &s->completion_table_missing) < 0)
		return -1;
	return 0;
}

/* What retention deletes next: lib/db/retention's own preview (the one
 * place that knows the conditions), each kind at most check.scan_limit
 * rows. It runs outside the snapshot's transaction: a kind whose table is
 * missing or not readable (an adopted outbox without mqtx init's
 * bookkeeping tables) fails its statement, which retention takes as "not
 * pruned", and in a transaction that would abort the rest. Any other
 * failure (check.timeout) is reported, not fatal. */
static void q_retention(struct mqtx_db_check *c, struct mqtx_check_snapshot *s)
{
	struct mqtx_check_retention *ret = &s->retention;
	ret->overdue_ms = -1;
	struct mqtx_err e;
	mqtx_err_clear(&e);
	struct mqtx_retention *rt = mqtx_retention_new(c->conn, c->cfg, &e);
	if (rt == NULL) {
		ret->error = mqtx_xstrdup(e.msg);
		return;
	}
	struct mqtx_retention_preview p;
	if (mqtx_retention_preview(rt, c->cfg->check_scan_limit, &p, &e) < 0) {
		ret->error = mqtx_xstrdup(e.msg);
	} else {
		ret->known = true;
		for (int k = 0; k < MQTX_RET__COUNT; k++) {
			ret->pruned[k] = mqtx_retention_enabled(rt, (enum mqtx_retention_kind)k);
			ret->due[k] = ret->pruned[k] ? p.due[k] : 0;
			ret->capped[k] = ret->pruned[k] && p.capped[k];
		}
		ret->overdue_ms = p.overdue_ms;
	}
	const char *note = mqtx_retention_note(rt);
	if (note != NULL)
		ret->note = mqtx_xstrdup(note);
	mqtx_retention_free(rt);
}

int mqtx_db_check_snapshot(struct mqtx_db_check *c, struct mqtx_check_snapshot *s, struct mqtx_err *err)
{
	memset(s, 0, sizeof(*s));
	c->err = err;
	s->oldest_pending_ms = s->last_relay_seen_ms = s->oldest_awaiting_ms = -1;
	s->table_bytes = s->partitions = s->oldest_row_ms = s->retention.overdue_ms = -1;
	s->has_sent_at = c->t[MQTX_COL_SENT_AT] != NULL;
	s->relays_table = mqtx_xstrdup(c->R);
	s->completions_table = mqtx_xstrdup(c->C);
	if (mqtx_pg_exec(c->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0)
		return -1;
	if ((c->tl != NULL ? snapshot_tail(c, s) : snapshot_tx(c, s)) < 0) {
		PGresult *r = PQexec(c->conn, "ROLLBACK");
		PQclear(r);
		return -1;
	}
	if (mqtx_pg_exec(c->conn, "COMMIT", err) < 0)
		return -1;
	q_retention(c, s);
	if (s->n_dests > 1)
		qsort(s->dests, s->n_dests, sizeof(*s->dests), compare_dests);
	return 0;
}
