/* Tail mode: the relay's statements (see tail_relay.h). Every value
 * travels as a parameter; identifiers come quoted from mqtx_outbox. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/tail_relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/failpoint.h"
#include "db/pg.h"
#include "db/tail_internal.h"

void mqtx_tail_relay_free_state(struct mqtx_tail *tl)
{
	(void)tl; /* the relay keeps its state itself */
}

/* ---- small helpers ---- */

/* int4[] literal of the buckets in own[], or NULL when own is NULL or
 * holds every bucket (the statements then skip the bucket test). */
static char *own_array(const struct mqtx_tail *tl, const bool *own)
{
	if (own == NULL)
		return NULL;
	struct mqtx_buf b = MQTX_BUF_INIT;
	int n = 0;
	mqtx_buf_addc(&b, '{');
	for (int i = 0; i < tl->nbuckets; i++) {
		if (!own[i])
			continue;
		if (n++)
			mqtx_buf_addc(&b, ',');
		mqtx_buf_printf(&b, "%d", i);
	}
	mqtx_buf_addc(&b, '}');
	if (n == tl->nbuckets) {
		mqtx_buf_free(&b);
		return NULL;
	}
	return mqtx_buf_detach(&b);
}

static char *int_array(const int *v, size_t n)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++)
		mqtx_buf_printf(&b, "%s%d", i ? "," : "", v[i]);
	mqtx_buf_addc(&b, '}');
	return mqtx_buf_detach(&b);
}

/* Appends s (NULL: an SQL NULL) to a text[] literal being built. Control
 * characters and non-ASCII bytes of error texts become '?' when ascii. */
static void arr_text(struct mqtx_buf *b, const char *s, bool ascii)
{
	if (b->len > 1)
		mqtx_buf_addc(b, ',');
	if (s == NULL) {
		mqtx_buf_adds(b, "NULL");
		return;
	}
	mqtx_buf_addc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			mqtx_buf_addc(b, '\\');
			mqtx_buf_addc(b, (char)*p);
		} else if (ascii && (*p < 0x20 || *p >= 0x7f)) {
			mqtx_buf_addc(b, '?');
		} else {
			mqtx_buf_addc(b, (char)*p);
		}
	}
	mqtx_buf_addc(b, '"');
}

static void arr_i64(struct mqtx_buf *b, int64_t v, bool null)
{
	if (b->len > 1)
		mqtx_buf_addc(b, ',');
	if (null)
		mqtx_buf_adds(b, "NULL");
	else
		mqtx_buf_add_i64(b, v);
}

static void arr_open(struct mqtx_buf *b)
{
	mqtx_buf_reset(b);
	mqtx_buf_addc(b, '{');
}

/* ---- buckets ---- */

int mqtx_tail_rebalance(struct mqtx_tail *tl, bool *own, bool *changed, struct mqtx_err *err)
{
	char cls[32], mark[32], base[32], nb[32];
	snprintf(cls, sizeof(cls), "%ld", (long)tl->lock_class);
	snprintf(mark, sizeof(mark), "%d", MQTX_TAIL_MARK_TAIL);
	snprintf(base, sizeof(base), "%d", MQTX_TAIL_BUCKET_LOCK);
	snprintf(nb, sizeof(nb), "%d", tl->nbuckets);
	*changed = false;
	const char *p[2] = {cls, mark};
	PGresult *res =
		PQexecParams(tl->conn,
			     "SELECT count(*), count(*) FILTER (WHERE pid < pg_backend_pid()) FROM (SELECT DISTINCT pid "
			     "FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted "
			     "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
			     "AND classid::int8 = ($1::int8 & 4294967295) AND objid::int8 = ($2::int8 & 4294967295)) l",
			     2, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(tl->conn, res, "cannot count the running tail relay lanes", err);
	long lanes = atol(PQgetvalue(res, 0, 0)), rank = atol(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (lanes < 1)
		lanes = 1;
	/* every lane (a connection: each relay runs two) gets n / lanes
	 * buckets, and the first n % lanes of them by backend pid one more:
	 * each lane works out the same split from pg_locks, so a late starter
	 * is not left with nothing while the first ones keep a rounded-up share */
	int share = (int)(tl->nbuckets / lanes) + (rank < tl->nbuckets % lanes ? 1 : 0), have = 0;
	for (int i = 0; i < tl->nbuckets; i++)
		have += own[i];
	if (have > share) { /* give back the highest ones */
		int give[1024] = {0}, ng = 0;
		for (int i = tl->nbuckets - 1; i >= 0 && have - ng > share; i--)
			if (own[i])
				give[ng++] = i;
		char *arr = int_array(give, (size_t)ng);
		const char *q[3] = {cls, base, arr};
		res = PQexecParams(tl->conn,
				   "SELECT count(pg_advisory_unlock($1::int4, $2::int4 + b)) FROM unnest($3::int4[]) b",
				   3, NULL, q, NULL, NULL, 0);
		free(arr);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			return mqtx_pg_fail(tl->conn, res, "cannot hand over tail buckets", err);
		PQclear(res);
		for (int k = 0; k < ng; k++)
			own[give[k]] = false;
		*changed = true;
	} else if (have < share) {
		char *mine = own_array(tl, own);
		char need[32];
		snprintf(need, sizeof(need), "%d", share - have);
		const char *q[5] = {cls, base, nb, mine != NULL ? mine : "{}", need};
		/* LIMIT stops the scan, and with it the try-locks, once enough are taken */
		res = PQexecParams(tl->conn,
				   "SELECT b FROM generate_series(0, $3::int4 - 1) b WHERE NOT (b = ANY($4::int4[])) "
				   "AND pg_try_advisory_lock($1::int4, $2::int4 + b) LIMIT $5::int8",
				   5, NULL, q, NULL, NULL, 0);
		free(mine);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			return mqtx_pg_fail(tl->conn, res, "cannot take tail buckets", err);
		for (int i = 0; i < PQntuples(res); i++) {
			int b = atoi(PQgetvalue(res, i, 0));
			if (b >= 0 && b < tl->nbuckets) {
				own[b] = true;
				*changed = true;
			}
		}
		PQclear(res);
	}
	return 0;
}

/* ---- groups ---- */

static char *dup_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : mqtx_xstrdup(PQgetvalue(res, row, col));
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int mqtx_tail_load(struct mqtx_tail *tl, const bool *own, struct mqtx_tail_group **groups, size_t *n,
		   struct mqtx_err *err)
{
	*groups = NULL;
	*n = 0;
	bool none = own != NULL;
	for (int i = 0; own != NULL && i < tl->nbuckets; i++)
		none = none && !own[i];
	if (none)
		return 0;
	char *arr = own_array(tl, own);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT bucket, prev_snapshot::text, cur_snapshot::text, pos_id FROM %s "
			"WHERE outbox = %s AND ($1::int4[] IS NULL OR bucket = ANY($1::int4[])) ORDER BY bucket",
			tl->cp, tl->lit);
	const char *p[1] = {arr};
	PGresult *res = PQexecParams(tl->conn, sql.data, 1, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(tl->conn, res, "cannot read the tail checkpoints", err);
	int rows = PQntuples(res);
	struct mqtx_tail_group *g = mqtx_xcalloc((size_t)rows + 1, sizeof(*g));
	size_t ng = 0;
	for (int r = 0; r < rows; r++) {
		char *prev = dup_or_null(res, r, 1), *cur = dup_or_null(res, r, 2);
		int64_t pos = PQgetisnull(res, r, 3) ? 0 : strtoll(PQgetvalue(res, r, 3), NULL, 10);
		if (cur != NULL && PQgetisnull(res, r, 3)) { /* an interval opened but not started: start over */
			free(cur);
			cur = NULL;
		}
		size_t k = 0;
		while (k < ng && !(same_str(g[k].prev, prev) && same_str(g[k].cur, cur) && g[k].pos == pos))
			k++;
		if (k == ng) {
			g[ng].prev = prev;
			g[ng].cur = cur;
			g[ng].pos = pos;
			g[ng].buckets = mqtx_xcalloc((size_t)tl->nbuckets, sizeof(int));
			ng++;
		} else {
			free(prev);
			free(cur);
		}
		g[k].buckets[g[k].n++] = atoi(PQgetvalue(res, r, 0));
	}
	PQclear(res);
	*groups = g;
	*n = ng;
	return 0;
}

void mqtx_tail_groups_free(struct mqtx_tail_group *g, size_t n)
{
	for (size_t i = 0; g != NULL && i < n; i++) {
		free(g[i].buckets);
		free(g[i].prev);
		free(g[i].cur);
	}
	free(g);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void mqtx_tail_groups_merge(struct mqtx_tail_group *g, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		if (g[i].cur != NULL)
			continue;
		for (size_t j = i + 1; j < *n;) {
			if (g[j].cur == NULL && same_str(g[i].prev, g[j].prev)) {
				memcpy(g[i].buckets + g[i].n, g[j].buckets, g[j].n * sizeof(int));
				g[i].n += g[j].n;
				qsort(g[i].buckets, g[i].n, sizeof(int), cmp_int);
				if (g[j].written_ms < g[i].written_ms)
					g[i].written_ms =
						g[j].written_ms; /* the older write decides when to write again */
				free(g[j].buckets);
				free(g[j].prev);
				free(g[j].cur);
				g[j] = g[*n - 1];
				(*n)--;
			} else {
				j++;
			}
		}
	}
}

char *mqtx_tail_snapshot(struct mqtx_tail *tl, struct mqtx_err *err)
{
	PGresult *res = PQexec(tl->conn, "SELECT pg_current_snapshot()::text");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(tl->conn, res, "cannot take a snapshot", err);
		return NULL;
	}
	char *s = mqtx_xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

/* ---- reading the interval ---- */

int mqtx_tail_bounds(struct mqtx_tail *tl, const struct mqtx_tail_group *g, const char *cur, int64_t *count,
		     int64_t *min, int64_t *max, struct mqtx_err *err)
{
	const char *x = tl->q[MQTX_COL_TXID], *id = tl->q[MQTX_COL_ID];
	const char *T = mqtx_outbox_qualified(tl->ob);
	char *arr = int_array(g->buckets, g->n);
	bool all = g->n == (size_t)tl->nbuckets;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "WITH r AS MATERIALIZED (SELECT t.%s AS i FROM %s t WHERE ", id, T);
	if (g->prev != NULL)
		/* the index finds the new transactions by range, and the ones
		 * in progress at prev (its xip list) that are done now, by value */
		mqtx_buf_printf(&sql,
				"((t.%s >= pg_snapshot_xmax($1::pg_snapshot) AND t.%s < pg_snapshot_xmax($2::pg_snapshot)) "
				"OR t.%s = ANY(ARRAY(SELECT v FROM pg_snapshot_xip($1::pg_snapshot) v "
				"WHERE pg_visible_in_snapshot(v, $2::pg_snapshot)))) AND ",
				x, x, x);
	mqtx_tail_interval_sql(tl, &sql, "t", "$1::pg_snapshot", "$2::pg_snapshot");
	mqtx_buf_adds(&sql, " AND ($3::int4[] IS NULL OR ");
	mqtx_tail_bucket_sql(tl, &sql, "t");
	mqtx_buf_adds(&sql, " = ANY($3::int4[]))");
	mqtx_buf_adds(&sql, ") SELECT count(*), coalesce(min(i), 0), coalesce(max(i), 0) FROM r");
	const char *p[3] = {g->prev, cur, all ? NULL : arr};
	PGresult *res = PQexecParams(tl->conn, sql.data, 3, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(tl->conn, res, "cannot find the rows of a snapshot interval", err);
	*count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*min = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	*max = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	return 0;
}

void mqtx_tail_chunk_free(struct mqtx_tail_chunk *c)
{
	if (c == NULL)
		return;
	mqtx_batch_free(c->b);
	free(c->later);
	free(c->bucket);
	free(c->parked);
	free(c->behind);
	free(c->act);
	free(c);
}

static struct mqtx_tail_chunk *chunk_new(PGresult *res, bool empty)
{
	struct mqtx_tail_chunk *c = mqtx_xcalloc(1, sizeof(*c));
	if (empty) {
		c->b = mqtx_xcalloc(1, sizeof(*c->b));
		c->b->msgs = mqtx_xcalloc(1, sizeof(*c->b->msgs));
		c->b->attempts = mqtx_xcalloc(1, sizeof(int64_t));
		c->b->bad_headers = mqtx_xcalloc(1, sizeof(char *));
		PQclear(res);
	} else {
		c->b = mqtx_batch_decode(res);
	}
	size_t n = c->b->n + 1;
	c->later = mqtx_xcalloc(n, sizeof(bool));
	c->bucket = mqtx_xcalloc(n, sizeof(int));
	c->parked = mqtx_xcalloc(n, 1);
	c->behind = mqtx_xcalloc(n, sizeof(bool));
	c->act = mqtx_xcalloc(n, sizeof(enum mqtx_tail_act));
	return c;
}

/* The per-batch statements are prepared on the connection the first time
 * they run (their text depends on the outbox alone): parsing and planning
 * them took as long as running them. As in status mode, this needs a
 * session (no transaction-mode pooler between relay and database). */
enum { STMT_FETCH, STMT_RECORD, STMT_RECORD_PARKED };

/* The fetch: $1 position, $2 the interval's last id, $3 ids to scan, $4
 * prev and $5 cur snapshot, $6 the group's buckets (NULL: all), $7 rows. */
static void fetch_sql(const struct mqtx_tail *tl, struct mqtx_buf *sql)
{
	const char *id = tl->q[MQTX_COL_ID], *av = tl->q[MQTX_COL_AVAILABLE_AT], *ok = tl->q[MQTX_COL_ORDERING_KEY];
	const char *T = mqtx_outbox_qualified(tl->ob);
	/* m: the next ids of the table in order, at most scan of them (an
	 * index-only scan): where the scan ends; h: the rows of the interval
	 * and of the group's buckets among them, read once from the heap in
	 * id order, columns as they are (no whole-row value: taking columns
	 * out of one costs a deform each) */
	mqtx_buf_printf(sql,
			"WITH m AS (SELECT max(x.i) AS e, count(*) AS n FROM (SELECT t.%s AS i FROM %s t WHERE t.%s > $1::int8 "
			"AND t.%s <= $2::int8 ORDER BY t.%s LIMIT $3::int8) x), "
			"h AS (SELECT t.* FROM %s t, m WHERE t.%s > $1::int8 AND t.%s <= m.e AND ",
			id, T, id, id, id, T, id, id);
	mqtx_tail_interval_sql(tl, sql, "t", "$4::pg_snapshot", "$5::pg_snapshot");
	mqtx_buf_adds(sql, " AND ($6::int4[] IS NULL OR ");
	mqtx_tail_bucket_sql(tl, sql, "t");
	mqtx_buf_adds(sql, " = ANY($6::int4[]))");
	mqtx_buf_printf(sql, " ORDER BY t.%s LIMIT $7::int8) SELECT ", id);
	mqtx_outbox_msg_columns(tl->ob, sql, "h");
	mqtx_buf_printf(sql, ", m.e::int8, m.n::int8, (CASE WHEN h.%s > now() THEN 1 ELSE 0 END)::int8, ", av);
	mqtx_tail_bucket_sql(tl, sql, "h");
	/* the parked table is looked at per row only when it holds rows of
	 * the outbox (one look per chunk, usually the only one) */
	char any[512];
	snprintf(any, sizeof(any), "(SELECT EXISTS (SELECT 1 FROM %s p WHERE p.outbox = %s))", tl->parked, tl->lit);
	mqtx_buf_printf(sql,
			"::int8, (CASE WHEN %s THEN (SELECT p.state FROM %s p WHERE p.outbox = %s AND p.id = h.%s) END)::text, ",
			any, tl->parked, tl->lit, id);
	if (ok != NULL)
		mqtx_buf_printf(sql,
				"(CASE WHEN %s AND h.%s IS NOT NULL AND EXISTS (SELECT 1 FROM %s p WHERE p.outbox = %s "
				"AND p.ordering_key = h.%s AND p.state <> 'dead' AND p.id <> h.%s) THEN 1 ELSE 0 END)::int8",
				any, ok, tl->parked, tl->lit, ok, id);
	else
		mqtx_buf_adds(sql, "0::int8");
	mqtx_buf_printf(sql, " FROM m LEFT JOIN h ON true ORDER BY h.%s", id);
}

/* The record of an interval chunk: $1-$8 the parked rows (id, bucket,
 * key, state, attempts, delay ms, due at available_at, error), $9 the ids
 * no longer parked, $10-$13 the checkpoint, $14 the group's buckets. */
static void record_sql(const struct mqtx_tail *tl, struct mqtx_buf *sql)
{
	const char *id = tl->q[MQTX_COL_ID], *av = tl->q[MQTX_COL_AVAILABLE_AT];
	const char *T = mqtx_outbox_qualified(tl->ob);
	mqtx_buf_printf(sql,
			"WITH a AS (INSERT INTO %s AS p (outbox, id, bucket, ordering_key, state, attempts, next_at, last_error) "
			"SELECT %s, u.id, u.b, u.k, u.st, u.att, CASE WHEN u.av THEN (SELECT t.%s FROM %s t WHERE t.%s = u.id LIMIT 1) "
			"WHEN u.d IS NULL THEN NULL ELSE now() + u.d * interval '1 millisecond' END, u.e "
			"FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::int4[], $6::int8[], $7::bool[], $8::text[]) "
			"AS u(id, b, k, st, att, d, av, e) "
			"ON CONFLICT (outbox, id) DO UPDATE SET state = EXCLUDED.state, "
			"attempts = CASE WHEN EXCLUDED.state = 'blocked' THEN p.attempts ELSE EXCLUDED.attempts END, "
			"next_at = EXCLUDED.next_at, last_error = coalesce(EXCLUDED.last_error, p.last_error), updated_at = now() "
			"RETURNING 1), "
			"d AS (DELETE FROM %s p WHERE p.outbox = %s AND p.id = ANY($9::int8[]) RETURNING 1), "
			"c AS (UPDATE %s c SET prev_snapshot = $10::pg_snapshot, cur_snapshot = $11::pg_snapshot, pos_id = $12::int8, "
			"relay_id = $13, updated_at = now() WHERE c.outbox = %s AND c.bucket = ANY($14::int4[]) RETURNING 1) "
			"SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM a), (SELECT count(*) FROM d)",
			tl->parked, tl->lit, av, T, id, tl->parked, tl->lit, tl->cp, tl->lit);
}

/* The record of parked rows: $1 the ids sent, $2-$4 and $6 the failed
 * ones (id, error, delay ms, permanent), $5 relay.max_attempts. */
static void record_parked_sql(const struct mqtx_tail *tl, struct mqtx_buf *sql)
{
	mqtx_buf_printf(sql,
			"WITH d AS (DELETE FROM %s p WHERE p.outbox = %s AND p.id = ANY($1::int8[]) RETURNING 1), "
			"f AS (UPDATE %s p SET attempts = p.attempts + 1, last_error = u.e, "
			"state = CASE WHEN u.perm OR p.attempts + 1 >= $5::int4 THEN 'dead' ELSE 'retry' END, "
			"next_at = now() + u.d * interval '1 millisecond', updated_at = now() "
			"FROM unnest($2::int8[], $3::text[], $4::int8[], $6::bool[]) AS u(id, e, d, perm) "
			"WHERE p.outbox = %s AND p.id = u.id RETURNING p.state = 'dead' AS dead, u.perm) "
			"SELECT (SELECT count(*) FROM f WHERE NOT dead), (SELECT count(*) FROM f WHERE dead), "
			"(SELECT count(*) FROM f WHERE dead AND perm)",
			tl->parked, tl->lit, tl->parked, tl->lit);
}

static const char *const stmt_names[] = {"mqtx_tail_fetch", "mqtx_tail_record", "mqtx_tail_record_parked"};

/* The text of statement which, built only when it is still to be prepared. */
static void stmt_text(const struct mqtx_tail *tl, int which, struct mqtx_buf *sql)
{
	static void (*const build[])(const struct mqtx_tail *, struct mqtx_buf *) = {fetch_sql, record_sql,
										     record_parked_sql};
	if (!tl->prepared[which])
		build[which](tl, sql);
}

/* Runs statement which (prepared on its first run). */
static PGresult *exec_stmt(struct mqtx_tail *tl, int which, int n, const char *const *p, int binary)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	stmt_text(tl, which, &sql);
	PGresult *res = mqtx_pg_exec_prepared(tl->conn, &tl->prepared[which], stmt_names[which], sql.data, n, p,
					      binary);
	mqtx_buf_free(&sql);
	return res;
}

/* Sends statement which without waiting for its result. */
static int send_stmt(struct mqtx_tail *tl, int which, int n, const char *const *p, int binary, const char *doing,
		     struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	stmt_text(tl, which, &sql);
	int rc = mqtx_pg_send_prepared(tl->conn, &tl->prepared[which], stmt_names[which], sql.data, n, p, binary, doing,
				       err);
	mqtx_buf_free(&sql);
	return rc;
}

int mqtx_tail_fetch_send(struct mqtx_tail *tl, const struct mqtx_tail_group *g, int64_t pos, size_t limit, size_t scan,
			 struct mqtx_err *err)
{
	bool all = g->n == (size_t)tl->nbuckets;
	if (scan < limit)
		scan = limit;
	char spos[32], smax[32], sscan[32], slimit[32];
	snprintf(spos, sizeof(spos), "%lld", (long long)pos);
	snprintf(smax, sizeof(smax), "%lld", (long long)g->max);
	snprintf(sscan, sizeof(sscan), "%zu", scan);
	snprintf(slimit, sizeof(slimit), "%zu", limit);
	char *arr = all ? NULL : int_array(g->buckets, g->n);
	const char *p[7] = {spos, smax, sscan, g->prev, g->cur, arr, slimit};
	int rc = send_stmt(tl, STMT_FETCH, 7, p, 1, "cannot read outbox rows", err);
	free(arr);
	return rc;
}

struct mqtx_tail_chunk *mqtx_tail_fetch_recv(struct mqtx_tail *tl, const struct mqtx_tail_group *g, size_t limit,
					     size_t scan, struct mqtx_err *err)
{
	if (scan < limit)
		scan = limit;
	/* one result, then NULL: the query is over */
	PGresult *res = PQgetResult(tl->conn), *more;
	while ((more = PQgetResult(tl->conn)) != NULL)
		PQclear(more);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(tl->conn, res, "cannot read outbox rows", err);
		return NULL;
	}
	if (MQTX_FAILPOINT("relay.tail.after_fetch") < 0) {
		PQclear(res);
		mqtx_err_retry(err, MQTX_E_DB, "failpoint relay.tail.after_fetch");
		return NULL;
	}
	/* col 9: the last id scanned (NULL: none), 10: how many */
	int64_t end = PQgetisnull(res, 0, 9) ? g->max : mqtx_pg_get_i64(res, 0, 9);
	int64_t scanned = mqtx_pg_get_i64(res, 0, 10);
	bool empty = PQgetisnull(res, 0, 0);
	/* h's LIMIT may stop before the scan's end: the position is then
	 * the last row taken */
	int rows = empty ? 0 : PQntuples(res);
	bool full = rows > 0 && (size_t)rows >= limit;
	struct mqtx_tail_chunk *c = chunk_new(res, empty);
	c->scan_done = (!full && (scanned < (int64_t)scan || end >= g->max)) ||
		       (rows > 0 && c->b->msgs[rows - 1].id >= g->max);
	c->scan_end = c->scan_done ? g->max : (full ? c->b->msgs[rows - 1].id : end);
	for (size_t i = 0; i < c->b->n; i++) {
		const PGresult *r = c->b->res;
		c->later[i] = mqtx_pg_get_i64(r, (int)i, 11) != 0;
		c->bucket[i] = (int)mqtx_pg_get_i64(r, (int)i, 12);
		c->parked[i] = PQgetisnull(r, (int)i, 13) ? 0 : PQgetvalue(r, (int)i, 13)[0];
		c->behind[i] = mqtx_pg_get_i64(r, (int)i, 14) != 0;
	}
	return c;
}

struct mqtx_tail_chunk *mqtx_tail_fetch(struct mqtx_tail *tl, const struct mqtx_tail_group *g, size_t limit,
					size_t scan, struct mqtx_err *err)
{
	if (mqtx_tail_fetch_send(tl, g, g->pos, limit, scan, err) < 0)
		return NULL;
	return mqtx_tail_fetch_recv(tl, g, limit, scan, err);
}

struct mqtx_tail_chunk *mqtx_tail_fetch_parked(struct mqtx_tail *tl, const bool *own, size_t limit,
					       struct mqtx_err *err)
{
	const char *id = tl->q[MQTX_COL_ID], *st = tl->q[MQTX_COL_STATUS], *av = tl->q[MQTX_COL_AVAILABLE_AT];
	const char *T = mqtx_outbox_qualified(tl->ob);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_adds(&sql, "SELECT ");
	mqtx_outbox_msg_columns(tl->ob, &sql, "t");
	/* A parked row may go when it is due, and when no earlier parked row
	 * of its key waits for a retry or its time: a row that failed before
	 * goes alone, the rows blocked behind it as one run after it. */
	mqtx_buf_printf(&sql,
			", p.attempts::int8, p.bucket::int8 FROM %s p JOIN %s t ON t.%s = p.id "
			"WHERE p.outbox = %s AND p.state <> 'dead' AND ($2::int4[] IS NULL OR p.bucket = ANY($2::int4[])) "
			"AND t.%s = 'pending' AND t.%s <= now() AND (p.state = 'blocked' OR p.next_at <= now()) "
			"AND (p.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM %s q JOIN %s u ON u.%s = q.id "
			"WHERE q.outbox = p.outbox AND q.ordering_key = p.ordering_key AND q.seq < p.seq AND q.state <> 'dead' "
			"AND u.%s = 'pending' AND (q.state = 'retry' OR p.state = 'retry' OR u.%s > now()))) "
			"ORDER BY p.seq LIMIT $1::int8",
			tl->parked, T, id, tl->lit, st, av, tl->parked, T, id, st, av);
	char slimit[32];
	snprintf(slimit, sizeof(slimit), "%zu", limit);
	char *arr = own_array(tl, own);
	const char *p[2] = {slimit, arr};
	PGresult *res = PQexecParams(tl->conn, sql.data, 2, NULL, p, NULL, NULL, 1);
	mqtx_buf_free(&sql);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(tl->conn, res, "cannot read parked outbox rows", err);
		return NULL;
	}
	struct mqtx_tail_chunk *c = chunk_new(res, false);
	for (size_t i = 0; i < c->b->n; i++) {
		c->b->attempts[i] = mqtx_pg_get_i64(c->b->res, (int)i, 9);
		c->bucket[i] = (int)mqtx_pg_get_i64(c->b->res, (int)i, 10);
		c->act[i] = MQTX_TAIL_PUBLISH;
	}
	return c;
}

/* ---- recording ---- */

static int in_tx(struct mqtx_tail *tl, int which, int n, const char *const *p, PGresult **out, const char *doing,
		 struct mqtx_err *err)
{
	if (mqtx_pg_exec(tl->conn, "BEGIN", err) < 0)
		return -1;
	PGresult *res = exec_stmt(tl, which, n, p, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(tl->conn, res, doing, err);
		goto fail;
	}
	if (MQTX_FAILPOINT("relay.tail.before_commit") < 0) {
		PQclear(res);
		mqtx_err_retry(err, MQTX_E_DB, "failpoint relay.tail.before_commit");
		goto fail;
	}
	if (mqtx_pg_exec(tl->conn, "COMMIT", err) < 0) {
		PQclear(res);
		return -1;
	}
	*out = res;
	return 0;
fail:
	if (PQtransactionStatus(tl->conn) != PQTRANS_IDLE)
		PQclear(PQexec(tl->conn, "ROLLBACK"));
	return -1;
}

static const char *msg_error(const struct mqtx_msg *m)
{
	if (m->error[0] != '\0')
		return m->error;
	return m->state == MQTX_MSG_UNKNOWN ? "no confirm from the broker" : "failed";
}

int mqtx_tail_record(struct mqtx_tail *tl, const struct mqtx_tail_group *g, const struct mqtx_tail_chunk *c,
		     size_t settled, const char *relay_id, struct mqtx_tail_outcome *out, struct mqtx_err *err)
{
	struct mqtx_buf a_id = MQTX_BUF_INIT, a_b = MQTX_BUF_INIT, a_k = MQTX_BUF_INIT, a_st = MQTX_BUF_INIT;
	struct mqtx_buf a_att = MQTX_BUF_INIT, a_d = MQTX_BUF_INIT, a_av = MQTX_BUF_INIT, a_e = MQTX_BUF_INIT;
	struct mqtx_buf del = MQTX_BUF_INIT;
	struct mqtx_buf *arrs[9] = {&a_id, &a_b, &a_k, &a_st, &a_att, &a_d, &a_av, &a_e, &del};
	for (int i = 0; i < 9; i++)
		arr_open(arrs[i]);
	memset(out, 0, sizeof(*out));
	int64_t max_att = tl->cfg->relay_max_attempts;
	for (size_t i = 0; i < settled && i < c->b->n; i++) {
		const struct mqtx_msg *m = &c->b->msgs[i];
		const char *state = NULL, *e = NULL;
		int64_t att = c->b->attempts[i], delay = 0;
		bool has_delay = false, avail = false;
		switch (c->act[i]) {
		case MQTX_TAIL_BLOCK:
		case MQTX_TAIL_REBLOCK: state = "blocked"; break;
		case MQTX_TAIL_DELAY:
			state = "retry";
			avail = true;
			break;
		case MQTX_TAIL_PUBLISH:
			if (m->state == MQTX_MSG_CONFIRMED) {
				out->sent++;
				if (c->parked[i] != 0)
					arr_i64(&del, m->id, false);
				continue;
			}
			if (m->state == MQTX_MSG_PENDING) { /* held behind a row of its key that failed */
				state = "blocked";
				break;
			}
			att++;
			e = msg_error(m);
			if ((m->state == MQTX_MSG_FAILED && m->permanent) || att >= max_att) {
				state = "dead";
				out->dead++;
				if (m->state == MQTX_MSG_FAILED && m->permanent)
					out->dead_permanent++;
			} else {
				state = "retry";
				out->failed++;
				delay = mqtx_backoff_ms(tl->cfg, att - 1);
				has_delay = true;
			}
			break;
		}
		out->parked++;
		arr_i64(&a_id, m->id, false);
		arr_i64(&a_b, c->bucket[i], false);
		arr_text(&a_k, m->ordering_key, false);
		arr_text(&a_st, state, true);
		arr_i64(&a_att, att, false);
		arr_i64(&a_d, delay, !has_delay);
		if (a_av.len > 1)
			mqtx_buf_addc(&a_av, ',');
		mqtx_buf_addc(&a_av, avail ? 't' : 'f');
		arr_text(&a_e, e, true);
	}
	for (int i = 0; i < 9; i++)
		mqtx_buf_addc(arrs[i], '}');

	char spos[32];
	snprintf(spos, sizeof(spos), "%lld", (long long)g->pos);
	char *buckets = int_array(g->buckets, g->n);
	const char *p[14] = {a_id.data, a_b.data, a_k.data, a_st.data, a_att.data, a_d.data,
			     a_av.data, a_e.data, del.data, g->prev,   g->cur,     g->cur != NULL ? spos : NULL,
			     relay_id,  buckets};
	PGresult *res = NULL;
	int rc = in_tx(tl, STMT_RECORD, 14, p, &res, "cannot record the batch and its checkpoint", err);
	free(buckets);
	for (int i = 0; i < 9; i++)
		mqtx_buf_free(arrs[i]);
	if (rc < 0)
		return -1;
	long nc = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (nc != (long)g->n)
		return mqtx_err_set(err, MQTX_E_DB,
				    "the checkpoint rows of %zu bucket(s) of %s changed under the relay (%ld updated)",
				    g->n, mqtx_outbox_qualified(tl->ob), nc);
	return 0;
}

int mqtx_tail_record_parked(struct mqtx_tail *tl, const struct mqtx_tail_chunk *c, struct mqtx_tail_outcome *out,
			    struct mqtx_err *err)
{
	struct mqtx_buf del = MQTX_BUF_INIT, fid = MQTX_BUF_INIT, ferr = MQTX_BUF_INIT, fd = MQTX_BUF_INIT;
	struct mqtx_buf fperm = MQTX_BUF_INIT;
	struct mqtx_buf *arrs[5] = {&del, &fid, &ferr, &fd, &fperm};
	for (int i = 0; i < 5; i++)
		arr_open(arrs[i]);
	memset(out, 0, sizeof(*out));
	size_t nf = 0;
	for (size_t i = 0; i < c->b->n; i++) {
		const struct mqtx_msg *m = &c->b->msgs[i];
		if (m->state == MQTX_MSG_CONFIRMED) {
			arr_i64(&del, m->id, false);
			out->sent++;
		} else if (m->state == MQTX_MSG_FAILED || m->state == MQTX_MSG_UNKNOWN) {
			arr_i64(&fid, m->id, false);
			arr_text(&ferr, msg_error(m), true);
			arr_i64(&fd, mqtx_backoff_ms(tl->cfg, c->b->attempts[i]), false);
			if (fperm.len > 1)
				mqtx_buf_addc(&fperm, ',');
			mqtx_buf_addc(&fperm, m->state == MQTX_MSG_FAILED && m->permanent ? 't' : 'f');
			nf++;
		}
	}
	for (int i = 0; i < 5; i++)
		mqtx_buf_addc(arrs[i], '}');
	int rc = 0;
	if (out->sent + nf > 0) {
		char smax[32];
		snprintf(smax, sizeof(smax), "%lld", (long long)tl->cfg->relay_max_attempts);
		const char *p[6] = {del.data, fid.data, ferr.data, fd.data, smax, fperm.data};
		PGresult *res = NULL;
		rc = in_tx(tl, STMT_RECORD_PARKED, 6, p, &res, "cannot record the outcome of parked rows", err);
		if (rc == 0) {
			out->failed = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
			out->dead = (size_t)strtoull(PQgetvalue(res, 0, 1), NULL, 10);
			out->dead_permanent = (size_t)strtoull(PQgetvalue(res, 0, 2), NULL, 10);
			PQclear(res);
		}
	}
	for (int i = 0; i < 5; i++)
		mqtx_buf_free(arrs[i]);
	return rc;
}

int mqtx_tail_write_checkpoint(struct mqtx_tail *tl, const struct mqtx_tail_group *g, const char *relay_id,
			       struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"UPDATE %s c SET prev_snapshot = $1::pg_snapshot, cur_snapshot = $2::pg_snapshot, pos_id = $3::int8, "
			"relay_id = $4, updated_at = now() WHERE c.outbox = %s AND c.bucket = ANY($5::int4[])",
			tl->cp, tl->lit);
	char spos[32];
	snprintf(spos, sizeof(spos), "%lld", (long long)g->pos);
	char *buckets = int_array(g->buckets, g->n);
	const char *p[5] = {g->prev, g->cur, g->cur != NULL ? spos : NULL, relay_id, buckets};
	PGresult *res = PQexecParams(tl->conn, sql.data, 5, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	free(buckets);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return mqtx_pg_fail(tl->conn, res, "cannot write the tail checkpoint", err);
	PQclear(res);
	return 0;
}

int mqtx_tail_forget_parked(struct mqtx_tail *tl, const bool *own, struct mqtx_err *err)
{
	const char *id = tl->q[MQTX_COL_ID], *st = tl->q[MQTX_COL_STATUS];
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"DELETE FROM %s p WHERE p.outbox = %s AND p.state <> 'dead' AND ($1::int4[] IS NULL OR p.bucket = ANY($1::int4[])) "
			"AND NOT EXISTS (SELECT 1 FROM %s t WHERE t.%s = p.id AND t.%s = 'pending')",
			tl->parked, tl->lit, mqtx_outbox_qualified(tl->ob), id, st);
	char *arr = own_array(tl, own);
	const char *p[1] = {arr};
	PGresult *res = PQexecParams(tl->conn, sql.data, 1, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	free(arr);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return mqtx_pg_fail(tl->conn, res, "cannot forget parked rows", err);
	PQclear(res);
	return 0;
}
