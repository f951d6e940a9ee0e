/* Switching an outbox between tail and status mode (see tail_switch.h). */
#define _POSIX_C_SOURCE 200809L
#include "db/tail_switch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/outbox.h"
#include "db/pg.h"
#include "db/tail.h"
#include "db/tail_internal.h"

int64_t mqtx_tail_checkpoint_count(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	char *qs = mqtx_pg_ident(conn, cfg->outbox_schema), *qt = mqtx_pg_ident(conn, cfg->outbox_table);
	char *cp = mqtx_xasprintf("%s.mqtx_tail_checkpoints", qs);
	char *name = mqtx_xasprintf("%s.%s", qs, qt);
	free(qs);
	free(qt);
	int64_t n = -1;
	const char *p[1] = {cp};
	PGresult *res = PQexecParams(conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(conn, res, "cannot look for the tail checkpoint table", err);
		goto out;
	}
	bool exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!exists) {
		n = 0;
		goto out;
	}
	char *sql = mqtx_xasprintf("SELECT count(*) FROM %s WHERE outbox = $1", cp);
	p[0] = name;
	res = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	free(sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(conn, res, "cannot count the outbox's tail checkpoints", err);
		goto out;
	}
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
out:
	free(cp);
	free(name);
	return n;
}

/* ---- the handback, tail -> status ---- */

#define HANDBACK_BATCH 10000

static char tail_mode[] = "tail";

/* The outbox bound in tail mode whatever cfg's outbox.mode: c2 is a
 * shallow copy of cfg that must outlive *ob and *tl. */
static int open_tail(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_config *c2, struct mqtx_outbox **ob,
		     struct mqtx_tail **tl, struct mqtx_err *err)
{
	*c2 = *cfg;
	c2->outbox_mode = tail_mode;
	*tl = NULL;
	*ob = mqtx_outbox_new(conn, c2, err);
	if (*ob == NULL)
		return -1;
	*tl = mqtx_tail_new(conn, *ob, c2, err);
	if (*tl == NULL) {
		mqtx_outbox_free(*ob);
		*ob = NULL;
		return -1;
	}
	return 0;
}

/* FROM ... WHERE of the rows the tail relays relayed (covered by their
 * bucket's checkpoint), still 'pending', not parked; alias t. */
static void covered_rows_sql(const struct mqtx_tail *tl, struct mqtx_buf *b)
{
	const char *T = mqtx_outbox_qualified(tl->ob), *id = tl->q[MQTX_COL_ID], *st = tl->q[MQTX_COL_STATUS];
	mqtx_buf_printf(b, "FROM %s t JOIN %s mqtx_c ON mqtx_c.outbox = %s AND mqtx_c.bucket = ", T, tl->cp, tl->lit);
	mqtx_tail_bucket_sql(tl, b, "t");
	mqtx_buf_printf(b, " WHERE t.%s = 'pending' AND ", st);
	mqtx_tail_covered_sql(tl, b, "t", "mqtx_c");
	mqtx_buf_printf(b, " AND NOT EXISTS (SELECT 1 FROM %s mqtx_p WHERE mqtx_p.outbox = %s AND mqtx_p.id = t.%s)",
			tl->parked, tl->lit, id);
}

/* st's parked counts and checkpoint rows, and (with_sent) the covered rows. */
static int count_state(PGconn *conn, const struct mqtx_tail *tl, bool with_sent, struct mqtx_tail_handback_stats *st,
		       struct mqtx_err *err)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b,
			"SELECT (SELECT count(*) FROM %s WHERE outbox = %s), count(*) FILTER (WHERE state = 'dead'), "
			"count(*) FILTER (WHERE state = 'retry'), count(*) FILTER (WHERE state = 'blocked'), count(*), ",
			tl->cp, tl->lit);
	if (with_sent) {
		mqtx_buf_adds(&b, "(SELECT count(*) ");
		covered_rows_sql(tl, &b);
		mqtx_buf_adds(&b, ")");
	} else {
		mqtx_buf_adds(&b, "0");
	}
	mqtx_buf_printf(&b, " FROM %s WHERE outbox = %s", tl->parked, tl->lit);
	PGresult *res = PQexec(conn, b.data);
	mqtx_buf_free(&b);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot count what the tail relays relayed and parked", err);
	st->checkpoints = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	st->dead = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	st->retry = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	st->blocked = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	st->parked = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	st->sent = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	PQclear(res);
	return 0;
}

int mqtx_tail_handback_count(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_tail_handback_stats *st,
			     struct mqtx_err *err)
{
	memset(st, 0, sizeof(*st));
	int64_t n = mqtx_tail_checkpoint_count(conn, cfg, err);
	if (n <= 0)
		return n < 0 ? -1 : 0;
	struct mqtx_config c2;
	struct mqtx_outbox *ob;
	struct mqtx_tail *tl;
	if (open_tail(conn, cfg, &c2, &ob, &tl, err) < 0)
		return -1;
	int rc = count_state(conn, tl, true, st, err) < 0 ? -1 : 1;
	mqtx_tail_free(tl);
	mqtx_outbox_free(ob);
	return rc;
}

/* Runs a batch statement whose one row is (changed, looked at, last id,
 * [changed of a second kind]); *last moves on. 1 when a full batch was
 * looked at (more may follow), 0 when done, -1 with err. */
static int run_batch(PGconn *conn, const char *sql, int64_t *last, int64_t *changed, int64_t *changed2,
		     const char *doing, struct mqtx_err *err)
{
	char from[32];
	snprintf(from, sizeof(from), "%lld", (long long)*last);
	const char *p[1] = {from};
	PGresult *res = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, doing, err);
	*changed += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	int64_t seen = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	if (!PQgetisnull(res, 0, 2))
		*last = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	if (changed2 != NULL && PQnfields(res) > 3)
		*changed2 += strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	PQclear(res);
	return seen >= HANDBACK_BATCH ? 1 : 0;
}

static int handback_locked(PGconn *conn, struct mqtx_tail *tl, struct mqtx_tail_handback_stats *st,
			   struct mqtx_err *err)
{
	const char *T = mqtx_outbox_qualified(tl->ob);
	const char *id = tl->q[MQTX_COL_ID], *stc = tl->q[MQTX_COL_STATUS], *sent_at = tl->q[MQTX_COL_SENT_AT];
	const char *att = tl->q[MQTX_COL_ATTEMPTS], *avail = tl->q[MQTX_COL_AVAILABLE_AT];
	const char *lerr = tl->q[MQTX_COL_LAST_ERROR];
	struct mqtx_tail_handback_stats before = {0};
	if (count_state(conn, tl, false, &before, err) < 0)
		return -1;

	/* 1. relayed rows: 'sent', in id order, a transaction per batch; the
	 * checkpoints and parked rows stay until the end, so a run again after
	 * a crash finds the same rows covered */
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "WITH c AS (SELECT t.%s AS id ", id);
	covered_rows_sql(tl, &b);
	mqtx_buf_printf(&b, " AND t.%s > $1::int8 ORDER BY t.%s LIMIT %d), u AS (UPDATE %s u SET %s = 'sent'", id, id,
			HANDBACK_BATCH, T, stc);
	if (sent_at != NULL)
		mqtx_buf_printf(&b, ", %s = now()", sent_at);
	mqtx_buf_printf(&b,
			" WHERE u.%s = ANY (ARRAY(SELECT id FROM c)) AND u.%s = 'pending' RETURNING 1) "
			"SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM c), (SELECT max(id) FROM c)",
			id, stc);
	int64_t last = INT64_MIN;
	int r;
	while ((r = run_batch(conn, b.data, &last, &st->sent, NULL, "cannot mark the rows tail relays relayed 'sent'",
			      err)) > 0)
		;
	if (r < 0) {
		mqtx_buf_free(&b);
		return -1;
	}

	/* 2. parked dead rows: 'dead'; parked retry rows: their attempts and
	 * retry time (a half message's infinity is its own available_at) */
	mqtx_buf_reset(&b);
	mqtx_buf_printf(&b,
			"WITH b AS (SELECT id, state FROM %s WHERE outbox = %s AND state IN ('dead', 'retry') AND id > $1::int8 "
			"ORDER BY id LIMIT %d), u AS (UPDATE %s t SET %s = CASE WHEN b.state = 'dead' THEN 'dead' ELSE t.%s END",
			tl->parked, tl->lit, HANDBACK_BATCH, T, stc, stc);
	if (att != NULL)
		mqtx_buf_printf(&b, ", %s = p.attempts", att);
	if (lerr != NULL)
		mqtx_buf_printf(&b, ", %s = coalesce(p.last_error, t.%s)", lerr, lerr);
	if (avail != NULL)
		mqtx_buf_printf(&b,
				", %s = CASE WHEN b.state = 'dead' OR p.next_at IS NULL OR p.next_at = 'infinity' THEN t.%s "
				"ELSE greatest(t.%s, p.next_at) END",
				avail, avail, avail);
	mqtx_buf_printf(&b,
			" FROM b JOIN %s p ON p.outbox = %s AND p.id = b.id WHERE t.%s = b.id AND t.%s = 'pending' "
			"RETURNING b.state) SELECT (SELECT count(*) FROM u WHERE state = 'dead'), (SELECT count(*) FROM b), "
			"(SELECT max(id) FROM b), (SELECT count(*) FROM u WHERE state = 'retry')",
			tl->parked, tl->lit, id, stc);
	last = INT64_MIN;
	while ((r = run_batch(conn, b.data, &last, &st->dead, &st->retry,
			      "cannot write the parked rows' state into the outbox", err)) > 0)
		;
	mqtx_buf_free(&b);
	if (r < 0)
		return -1;
	st->blocked = before.blocked;

	/* 3. the outbox's parked and checkpoint rows, together */
	char *sql = mqtx_xasprintf("BEGIN; DELETE FROM %s WHERE outbox = %s; DELETE FROM %s WHERE outbox = %s; COMMIT",
				   tl->parked, tl->lit, tl->cp, tl->lit);
	r = mqtx_pg_exec(conn, sql, err);
	free(sql);
	if (r < 0) {
		if (PQtransactionStatus(conn) != PQTRANS_IDLE)
			PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	st->parked = before.parked;
	st->checkpoints = before.checkpoints;
	return 1;
}

int mqtx_tail_handback(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_tail_handback_stats *st,
		       struct mqtx_err *err)
{
	memset(st, 0, sizeof(*st));
	int64_t n = mqtx_tail_checkpoint_count(conn, cfg, err);
	if (n <= 0)
		return n < 0 ? -1 : 0;
	struct mqtx_config c2;
	struct mqtx_outbox *ob;
	struct mqtx_tail *tl;
	if (open_tail(conn, cfg, &c2, &ob, &tl, err) < 0)
		return -1;
	char cls[32], mark[32];
	snprintf(cls, sizeof(cls), "%ld", (long)tl->lock_class);
	snprintf(mark, sizeof(mark), "%d", MQTX_TAIL_MARK_TAIL);
	const char *p[2] = {cls, mark};
	/* tail relays hold this shared while they run: exclusive here keeps
	 * them out until the handback is done */
	PGresult *res = PQexecParams(conn, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", 2, NULL, p, NULL, NULL,
				     0);
	int rc;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = mqtx_pg_fail(conn, res, "cannot take the tail relays' lock", err);
	} else if (PQgetvalue(res, 0, 0)[0] != 't') {
		PQclear(res);
		rc = mqtx_err_set(err, MQTX_E_CONFIG,
				  "a tail relay of %s runs: stop the tail relays before handing the outbox back to "
				  "status mode (outbox.mode: status); nothing was changed",
				  mqtx_outbox_qualified(ob));
	} else {
		PQclear(res);
		rc = handback_locked(conn, tl, st, err);
		PQclear(PQexecParams(conn, "SELECT pg_advisory_unlock($1::int4, $2::int4)", 2, NULL, p, NULL, NULL, 0));
	}
	mqtx_tail_free(tl);
	mqtx_outbox_free(ob);
	return rc;
}

char *mqtx_tail_handback_comment(const char *qualified, const struct mqtx_tail_handback_stats *st)
{
	return mqtx_xasprintf("-- outbox.mode is status but %s is in tail mode (it has %lld tail checkpoint rows): mqtx init\n"
			      "-- hands it back first (see mqtx-init(1), \"Back to status mode\"): %lld rows tail relays relayed\n"
			      "-- become 'sent', %lld parked dead rows 'dead', %lld rows parked for a retry stay 'pending' with\n"
			      "-- their attempts and retry time, %lld rows blocked behind them stay 'pending'; then its %lld\n"
			      "-- checkpoint rows and %lld parked rows are deleted. Stop its tail relays first.\n",
			      qualified, (long long)st->checkpoints, (long long)st->sent, (long long)st->dead,
			      (long long)st->retry, (long long)st->blocked, (long long)st->checkpoints,
			      (long long)st->parked);
}
