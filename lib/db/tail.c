/* Tail mode: shared SQL pieces and mode announcements (see tail.h); the
 * relay's statements are in tail_relay.c. */
#define _POSIX_C_SOURCE 200809L
#include "db/tail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pg.h"
#include "db/tail_internal.h"

struct mqtx_tail *mqtx_tail_new(PGconn *conn, struct mqtx_outbox *ob, const struct mqtx_config *cfg,
				struct mqtx_err *err)
{
	struct mqtx_tail *tl = mqtx_xcalloc(1, sizeof(*tl));
	tl->conn = conn;
	tl->ob = ob;
	tl->cfg = cfg;
	char *qs = mqtx_pg_ident(conn, cfg->outbox_schema);
	tl->cp = mqtx_xasprintf("%s.mqtx_tail_checkpoints", qs);
	tl->parked = mqtx_xasprintf("%s.mqtx_tail_parked", qs);
	free(qs);
	const char *name = mqtx_outbox_qualified(ob);
	char *lit = PQescapeLiteral(conn, name, strlen(name));
	tl->lit = mqtx_xstrdup(lit != NULL ? lit : "''");
	PQfreemem(lit);
	tl->lock_class = mqtx_outbox_lock_class(ob);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		tl->q[c] = mqtx_outbox_col(ob, (enum mqtx_col)c);
	if (tl->q[MQTX_COL_TXID] == NULL) {
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "outbox.mode is tail but outbox.columns.txid is empty: tail mode needs the xid8 column "
			     "(run 'mqtx init' with outbox.mode: tail)");
		goto fail;
	}
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT count(*), coalesce(max(bucket) + 1, 0) FROM %s WHERE outbox = %s", tl->cp,
		 tl->lit);
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (st != NULL && strcmp(st, "42P01") == 0) {
			PQclear(res);
			mqtx_err_set(err, MQTX_E_CONFIG,
				     "no table %s: %s is not set up for tail mode (run 'mqtx init' with outbox.mode: tail)",
				     tl->cp, name);
			goto fail;
		}
		mqtx_pg_fail(conn, res, "cannot read the tail checkpoints", err);
		goto fail;
	}
	long n = atol(PQgetvalue(res, 0, 0)), top = atol(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (n == 0) {
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "%s has no checkpoint rows for %s: it is not set up for tail mode (run 'mqtx init' with outbox.mode: tail)",
			     tl->cp, name);
		goto fail;
	}
	if (n != top) {
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "%s holds %ld checkpoint rows for %s but their buckets are not 0..%ld (were rows deleted by hand?)",
			     tl->cp, n, name, n - 1);
		goto fail;
	}
	tl->nbuckets = (int)n;
	/* The tail statements' per-row looks at the checkpoint and parked
	 * tables are misestimated: JIT compiling them took longer (about half
	 * a second) than running them. The connection's JIT goes off. */
	if (mqtx_pg_exec(conn, "SET jit = off", err) < 0)
		goto fail;
	return tl;
fail:
	mqtx_tail_free(tl);
	return NULL;
}

void mqtx_tail_free(struct mqtx_tail *tl)
{
	if (tl == NULL)
		return;
	mqtx_tail_relay_free_state(tl);
	free(tl->cp);
	free(tl->parked);
	free(tl->lit);
	free(tl);
}

int mqtx_tail_buckets(const struct mqtx_tail *tl)
{
	return tl->nbuckets;
}

const char *mqtx_tail_checkpoints_table(const struct mqtx_tail *tl)
{
	return tl->cp;
}

const char *mqtx_tail_parked_table(const struct mqtx_tail *tl)
{
	return tl->parked;
}

const char *mqtx_tail_outbox_literal(const struct mqtx_tail *tl)
{
	return tl->lit;
}

void mqtx_tail_bucket_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t)
{
	const char *id = tl->q[MQTX_COL_ID], *ok = tl->q[MQTX_COL_ORDERING_KEY];
	if (ok == NULL)
		mqtx_buf_printf(b, "(%s.%s %% %d)::int4", t, id, tl->nbuckets);
	else
		mqtx_buf_printf(b,
				"(CASE WHEN %s.%s IS NULL THEN %s.%s %% %d ELSE (hashtext(%s.%s) & 2147483647) %% %d END)::int4",
				t, ok, t, id, tl->nbuckets, t, ok, tl->nbuckets);
}

/* boolean: row t is in the interval (prev, cur) of checkpoint-like
 * expressions (SQL text for two pg_snapshot values). */
void mqtx_tail_interval_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t, const char *prev,
			    const char *cur)
{
	const char *x = tl->q[MQTX_COL_TXID], *st = tl->q[MQTX_COL_STATUS];
	mqtx_buf_printf(b,
			"(%s.%s = 'pending' AND CASE WHEN %s IS NULL THEN %s.%s IS NULL OR pg_visible_in_snapshot(%s.%s, %s) "
			"ELSE %s.%s IS NOT NULL AND pg_visible_in_snapshot(%s.%s, %s) AND NOT pg_visible_in_snapshot(%s.%s, %s) END)",
			t, st, prev, t, x, t, x, cur, t, x, t, x, cur, t, x, prev);
}

void mqtx_tail_covered_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t, const char *cp)
{
	const char *x = tl->q[MQTX_COL_TXID], *id = tl->q[MQTX_COL_ID];
	char prev[128], cur[128];
	snprintf(prev, sizeof(prev), "%s.prev_snapshot", cp);
	snprintf(cur, sizeof(cur), "%s.cur_snapshot", cp);
	mqtx_buf_printf(b,
			"((%s IS NOT NULL AND (%s.%s IS NULL OR pg_visible_in_snapshot(%s.%s, %s))) OR (%s IS NOT NULL "
			"AND %s.pos_id IS NOT NULL AND %s.%s <= %s.pos_id AND ",
			prev, t, x, t, x, prev, cur, cp, t, id, cp);
	mqtx_tail_interval_sql(tl, b, t, prev, cur);
	mqtx_buf_adds(b, "))");
}

void mqtx_tail_status_sql(const struct mqtx_tail *tl, struct mqtx_buf *b, const char *t)
{
	const char *id = tl->q[MQTX_COL_ID], *st = tl->q[MQTX_COL_STATUS];
	mqtx_buf_printf(b,
			"coalesce((SELECT CASE WHEN mqtx_p.state = 'dead' THEN 'dead' ELSE 'pending' END FROM %s mqtx_p "
			"WHERE mqtx_p.outbox = %s AND mqtx_p.id = %s.%s), CASE WHEN %s.%s <> 'pending' THEN %s.%s::text "
			"WHEN coalesce((SELECT ",
			tl->parked, tl->lit, t, id, t, st, t, st);
	mqtx_tail_covered_sql(tl, b, t, "mqtx_c");
	mqtx_buf_printf(b, " FROM %s mqtx_c WHERE mqtx_c.outbox = %s AND mqtx_c.bucket = ", tl->cp, tl->lit);
	mqtx_tail_bucket_sql(tl, b, t);
	mqtx_buf_adds(b, "), false) THEN 'sent' ELSE 'pending' END)");
}

/* ---- mode announcements ---- */

int mqtx_tail_announce(PGconn *conn, struct mqtx_outbox *ob, bool tail, struct mqtx_err *err)
{
	char cls[32], mine[32], other[32];
	snprintf(cls, sizeof(cls), "%ld", (long)mqtx_outbox_lock_class(ob));
	snprintf(mine, sizeof(mine), "%d", tail ? MQTX_TAIL_MARK_TAIL : MQTX_TAIL_MARK_STATUS);
	snprintf(other, sizeof(other), "%d", tail ? MQTX_TAIL_MARK_STATUS : MQTX_TAIL_MARK_TAIL);
	const char *p[2] = {cls, mine};
	const char *q2[2] = {cls, other};
	/* taken before looking: of two starting at once, each sees the other */
	PGresult *res = PQexecParams(conn, "SELECT pg_advisory_lock_shared($1::int4, $2::int4)", 2, NULL, p, NULL, NULL,
				     0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot announce the relay's outbox.mode", err);
	PQclear(res);
	res = PQexecParams(conn,
			   "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted "
			   "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
			   "AND classid::int8 = ($1::int8 & 4294967295) AND objid::int8 = ($2::int8 & 4294967295)",
			   2, NULL, q2, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look for relays of the other outbox.mode", err);
	long others = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (others > 0)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "outbox.mode is %s here but %ld relay(s) of %s run in %s mode; stop them first (see "
				    "\"Switching modes\" in mqtx-relay(1))",
				    tail ? "tail" : "status", others, mqtx_outbox_qualified(ob),
				    tail ? "status" : "tail");
	if (tail)
		return 0;
	/* a status relay on an outbox that tail relays have relayed */
	char *qs = mqtx_pg_ident(conn, mqtx_outbox_schema_name(ob));
	const char *name = mqtx_outbox_qualified(ob);
	const char *q[1] = {name};
	char table[300], sql[512];
	snprintf(table, sizeof(table), "%s.mqtx_tail_checkpoints", qs);
	free(qs);
	/* look before reading: a failed SELECT would leave an ERROR in the server log at every start */
	const char *t[1] = {table};
	res = PQexecParams(conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, t, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look for tail-mode checkpoints", err);
	bool exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!exists) /* never in tail mode */
		return 0;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE outbox = $1", table);
	res = PQexecParams(conn, sql, 1, NULL, q, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look for tail-mode checkpoints", err);
	long n = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (n > 0)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "outbox.mode is status but %s was relayed in tail mode (it has tail checkpoints): its "
				    "'pending' rows may be relayed already; run 'mqtx init' with outbox.mode: status to hand "
				    "it back first, or set outbox.mode: tail",
				    name);
	return 0;
}
