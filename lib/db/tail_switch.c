/* Switching an outbox between tail and status mode (see tail_switch.h). */
#define _POSIX_C_SOURCE 200809L
#include "db/tail_switch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/outbox.h"
#include "db/pg.h"
#include "db/tail.h"

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

/* One statement whose first column is a count; -1 with err. */
static int64_t count_of(PGconn *conn, const char *sql, const char *doing, struct mqtx_err *err)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, doing, err);
	int64_t n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

static int64_t changed(PGconn *conn, const char *sql, const char *doing, struct mqtx_err *err)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return mqtx_pg_fail(conn, res, doing, err);
	int64_t n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return n;
}

#define HANDBACK_BATCH 10000

static int handback(PGconn *conn, struct mqtx_outbox *ob, struct mqtx_tail *tl, bool dry_run,
		    struct mqtx_tail_handback_stats *st, struct mqtx_err *err)
{
	const char *T = mqtx_outbox_qualified(ob), *P = mqtx_tail_parked_table(tl),
		   *C = mqtx_tail_checkpoints_table(tl);
	const char *lit = mqtx_tail_outbox_literal(tl);
	const char *id = mqtx_outbox_col(ob, MQTX_COL_ID), *stc = mqtx_outbox_col(ob, MQTX_COL_STATUS);
	const char *att = mqtx_outbox_col(ob, MQTX_COL_ATTEMPTS), *le = mqtx_outbox_col(ob, MQTX_COL_LAST_ERROR);
	const char *av = mqtx_outbox_col(ob, MQTX_COL_AVAILABLE_AT), *sa = mqtx_outbox_col(ob, MQTX_COL_SENT_AT);
	struct mqtx_buf rel = MQTX_BUF_INIT, sql = MQTX_BUF_INIT;
	/* the relayed rows: pending, covered by their bucket's checkpoint, not parked */
	mqtx_buf_printf(&rel, "SELECT t.%s FROM %s t JOIN %s c ON c.outbox = %s AND c.bucket = ", id, T, C, lit);
	mqtx_tail_bucket_sql(tl, &rel, "t");
	mqtx_buf_printf(&rel, " WHERE t.%s = 'pending' AND ", stc);
	mqtx_tail_covered_sql(tl, &rel, "t", "c");
	mqtx_buf_printf(&rel, " AND NOT EXISTS (SELECT 1 FROM %s p WHERE p.outbox = %s AND p.id = t.%s)", P, lit, id);
	int rc = -1;

	mqtx_buf_printf(&sql, "SELECT count(*) FROM (%s) r", rel.data);
	if ((st->sent = count_of(conn, sql.data, "cannot count the relayed rows", err)) < 0)
		goto out;
	const char *states[3] = {"dead", "retry", "blocked"};
	int64_t *counts[3] = {&st->dead, &st->retry, &st->blocked};
	for (int i = 0; i < 3; i++) {
		mqtx_buf_reset(&sql);
		mqtx_buf_printf(&sql,
				"SELECT count(*) FROM %s p JOIN %s t ON t.%s = p.id WHERE p.outbox = %s AND p.state = '%s'",
				P, T, id, lit, states[i]);
		if ((*counts[i] = count_of(conn, sql.data, "cannot count the parked rows", err)) < 0)
			goto out;
	}
	if (dry_run) {
		rc = 0;
		goto out;
	}
	/* relayed rows: 'sent', a batch per transaction, on by id */
	for (int64_t last = INT64_MIN;;) {
		mqtx_buf_reset(&sql);
		mqtx_buf_printf(&sql,
				"WITH ids AS MATERIALIZED (%s AND t.%s > %lld ORDER BY t.%s LIMIT %d), u AS (UPDATE %s t SET %s = 'sent'",
				rel.data, id, (long long)last, id, HANDBACK_BATCH, T, stc);
		if (sa != NULL)
			mqtx_buf_printf(&sql, ", %s = now()", sa);
		mqtx_buf_printf(&sql,
				" WHERE t.%s IN (SELECT i.%s FROM ids i) AND t.%s = 'pending' RETURNING 1) "
				"SELECT (SELECT count(*) FROM ids), (SELECT coalesce(max(i.%s), 0) FROM ids i), (SELECT count(*) FROM u)",
				id, id, stc, id);
		PGresult *res = PQexec(conn, sql.data);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			mqtx_pg_fail(conn, res, "cannot mark relayed rows sent", err);
			goto out;
		}
		int64_t found = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		last = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		PQclear(res);
		if (found == 0)
			break;
	}
	/* then the parked rows' state, and the tail state goes, in one transaction */
	if (mqtx_pg_exec(conn, "BEGIN", err) < 0)
		goto out;
	mqtx_buf_reset(&sql);
	mqtx_buf_printf(&sql,
			"UPDATE %s t SET %s = 'dead', %s = p.attempts, %s = coalesce(p.last_error, t.%s) FROM %s p "
			"WHERE p.outbox = %s AND p.id = t.%s AND p.state = 'dead' AND t.%s = 'pending'",
			T, stc, att, le, le, P, lit, id, stc);
	if (changed(conn, sql.data, "cannot mark dead rows dead", err) < 0)
		goto rollback;
	/* a half message parked until txpub --commit (next_at infinity) keeps
	 * its own available_at: now() when it was committed since */
	mqtx_buf_reset(&sql);
	mqtx_buf_printf(&sql,
			"UPDATE %s t SET %s = p.attempts, %s = coalesce(p.last_error, t.%s), %s = CASE WHEN p.next_at = 'infinity' "
			"THEN t.%s ELSE greatest(t.%s, p.next_at) END FROM %s p WHERE p.outbox = %s AND p.id = t.%s AND p.state = 'retry' "
			"AND p.next_at IS NOT NULL AND t.%s = 'pending'",
			T, att, le, le, av, av, av, P, lit, id, stc);
	if (changed(conn, sql.data, "cannot keep the retry times of parked rows", err) < 0)
		goto rollback;
	mqtx_buf_reset(&sql);
	mqtx_buf_printf(&sql, "DELETE FROM %s WHERE outbox = %s", P, lit);
	if (changed(conn, sql.data, "cannot delete the parked rows", err) < 0)
		goto rollback;
	mqtx_buf_reset(&sql);
	mqtx_buf_printf(&sql, "DELETE FROM %s WHERE outbox = %s", C, lit);
	if (changed(conn, sql.data, "cannot delete the tail checkpoints", err) < 0)
		goto rollback;
	if (mqtx_pg_exec(conn, "COMMIT", err) < 0)
		goto out;
	rc = 0;
	goto out;
rollback:
	PQclear(PQexec(conn, "ROLLBACK"));
out:
	mqtx_buf_free(&rel);
	mqtx_buf_free(&sql);
	return rc;
}

int mqtx_tail_handback(PGconn *conn, const struct mqtx_config *cfg, bool dry_run, struct mqtx_tail_handback_stats *st,
		       struct mqtx_err *err)
{
	memset(st, 0, sizeof(*st));
	/* the tail relays' view of the table: its txid column is read */
	struct mqtx_config tcfg = *cfg;
	tcfg.outbox_mode = "tail";
	struct mqtx_outbox *ob = mqtx_outbox_new(conn, &tcfg, err);
	if (ob == NULL)
		return -1;
	struct mqtx_tail *tl = mqtx_tail_new(conn, ob, &tcfg, err);
	if (tl == NULL) {
		mqtx_outbox_free(ob);
		return -1;
	}
	int rc = -1;
	char cls[32], mark[32];
	snprintf(cls, sizeof(cls), "%ld", (long)mqtx_outbox_lock_class(ob));
	snprintf(mark, sizeof(mark), "%d", MQTX_TAIL_MARK_TAIL);
	const char *p[2] = {cls, mark};
	/* tail relays hold this lock shared while they run */
	PGresult *res = PQexecParams(conn, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", 2, NULL, p, NULL, NULL,
				     0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(conn, res, "cannot look for running tail relays", err);
		goto out;
	}
	bool locked = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!locked) {
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "tail relays of %s are running: stop them before handing the outbox back to status mode",
			     mqtx_outbox_qualified(ob));
		goto out;
	}
	rc = handback(conn, ob, tl, dry_run, st, err);
	PQclear(PQexecParams(conn, "SELECT pg_advisory_unlock($1::int4, $2::int4)", 2, NULL, p, NULL, NULL, 0));
out:
	mqtx_tail_free(tl);
	mqtx_outbox_free(ob);
	return rc;
}
