/* Retention (see retention.h). Each kind is a candidate query: the rows
 * of one table that may go, oldest first. Deleting takes a batch of them
 * FOR UPDATE SKIP LOCKED; the preview counts them. The ages are numbers
 * mqtx formats itself (milliseconds), identifiers are quoted. */
#define _POSIX_C_SOURCE 200809L
#include "db/retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "db/outbox.h"
#include "db/partition.h"
#include "db/pg.h"
#include "db/tail.h"

struct kind {
	char *from;    /* "FROM <table> t WHERE <condition>" */
	char *order;   /* ORDER BY list */
	char *pk;      /* the key column of t that DELETE matches on */
	char *table;   /* the table, quoted */
	char *overdue; /* ms the row has been due, for the preview; NULL: not reported */
	char *also;    /* a statement on the deleted rows "d" run with the DELETE (a CTE); NULL: none */
	char *probe;   /* a query for a value that stands for BOUND in from, once a pass; NULL: none */
	char *bound;   /* the probe's answer as SQL (a literal, or NULL) */
	int stat;      /* the enum mqtx_retention_kind it counts as */
	bool off;      /* turned off for this connection (a warning said why) */
};

/* Kinds of tail mode beyond the public ones (they count as sent or dead):
 * relayed rows of the tail (txid set), relayed rows of the status era
 * (txid NULL) and parked dead rows. */
enum { K_TAIL_SENT = MQTX_RET__COUNT, K_TAIL_SENT_OLD, K_TAIL_DEAD, K__COUNT };

struct mqtx_retention {
	PGconn *conn;
	const struct mqtx_config *cfg;
	struct mqtx_outbox *ob;
	struct kind k[K__COUNT]; /* from == NULL: not pruned */
	struct mqtx_tail *tl;    /* outbox.mode tail; NULL in status mode */
	char *deletable;         /* the outbox kinds' conditions on t, or'ed; NULL when none */
	const char *note;
};

static const char *const kind_names[MQTX_RET__COUNT] = {"sent", "rolled_back", "dead", "relays", "completions"};

const char *mqtx_retention_kind_name(enum mqtx_retention_kind kind)
{
	return kind_names[kind];
}

/* "now() - interval 'N milliseconds'" */
static void add_cutoff(struct mqtx_buf *b, int64_t ms)
{
	mqtx_buf_printf(b, "now() - interval '%lld milliseconds'", (long long)ms);
}

static int64_t max3(int64_t a, int64_t b, int64_t c)
{
	int64_t m = a > b ? a : b;
	return m > c ? m : c;
}

static void set_kind_from(struct kind *k, const char *table, const char *pk, const char *from, const char *order,
			  const char *overdue)
{
	k->table = mqtx_xstrdup(table);
	k->from = mqtx_xstrdup(from);
	k->pk = mqtx_xstrdup(pk);
	k->order = mqtx_xstrdup(order);
	k->overdue = overdue != NULL ? mqtx_xstrdup(overdue) : NULL;
}

static void set_kind(struct kind *k, const char *table, const char *pk, const char *cond, const char *order,
		     const char *overdue)
{
	k->table = mqtx_xstrdup(table);
	k->from = mqtx_xasprintf("FROM %s t WHERE %s", table, cond);
	k->pk = mqtx_xstrdup(pk);
	k->order = mqtx_xstrdup(order);
	k->overdue = overdue != NULL ? mqtx_xstrdup(overdue) : NULL;
}

/* In a kind's from, what the probe's answer replaces. */
#define BOUND "\001BOUND\001"

/* Runs the kind's probe (once a pass): k->bound. 0, or -1 with err. */
static int probe_kind(struct mqtx_retention *rt, struct kind *k, struct mqtx_err *err)
{
	if (k->probe == NULL)
		return 0;
	PGresult *res = PQexec(rt->conn, k->probe);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(rt->conn, res, "retention: cannot find where the relayed rows end", err);
	free(k->bound);
	if (PQgetisnull(res, 0, 0)) {
		k->bound = mqtx_xstrdup("NULL");
	} else {
		const char *v = PQgetvalue(res, 0, 0);
		char *l = PQescapeLiteral(rt->conn, v, strlen(v));
		k->bound = mqtx_xasprintf("%s::xid8", l != NULL ? l : "NULL");
		PQfreemem(l);
	}
	PQclear(res);
	return 0;
}

/* k->from with BOUND replaced (owned). */
static char *kind_from(const struct kind *k)
{
	const char *at = strstr(k->from, BOUND);
	if (at == NULL)
		return mqtx_xstrdup(k->from);
	return mqtx_xasprintf("%.*s%s%s", (int)(at - k->from), k->from, k->bound != NULL ? k->bound : "NULL",
			      at + strlen(BOUND));
}

/* cond, and guard when there is one (lib/db/partition.h: rows left for a partition's DROP) */
static char *guarded(const char *cond, const char *guard)
{
	return guard != NULL ? mqtx_xasprintf("%s AND %s", cond, guard) : mqtx_xstrdup(cond);
}

/* The outbox kinds: a condition on t per kind (NULL: not pruned). */
static void build_outbox(struct mqtx_retention *rt, const char *qschema, const char *guard)
{
	const struct mqtx_config *cfg = rt->cfg;
	const char *T = mqtx_outbox_qualified(rt->ob);
	const char *st = mqtx_outbox_col(rt->ob, MQTX_COL_STATUS);
	const char *id = mqtx_outbox_col(rt->ob, MQTX_COL_ID);
	const char *sent_at = mqtx_outbox_col(rt->ob, MQTX_COL_SENT_AT);
	const char *avail = mqtx_outbox_col(rt->ob, MQTX_COL_AVAILABLE_AT);
	int64_t keep = cfg->outbox_retention_ms;
	struct mqtx_buf c = MQTX_BUF_INIT, o = MQTX_BUF_INIT, all = MQTX_BUF_INIT;
	char tid[256], ord[256];
	snprintf(tid, sizeof(tid), "t.%s", id);

	if (sent_at == NULL) {
		rt->note = "the outbox has no sent_at column (outbox.columns.sent_at): relayed rows are never deleted";
	} else {
		mqtx_buf_printf(&c, "(t.%s = 'sent' AND t.%s < ", st, sent_at);
		add_cutoff(&c, keep);
		if (cfg->outbox_retain_uncompleted_ms != 0) {
			mqtx_buf_printf(&c, " AND (t.%s < ", sent_at);
			add_cutoff(&c, cfg->outbox_retain_uncompleted_ms);
			mqtx_buf_printf(&c,
					" OR EXISTS (SELECT 1 FROM %s.mqtx_completions c WHERE c.idempotency_key = ",
					qschema);
			mqtx_outbox_key_sql(rt->ob, &c, "t");
			mqtx_buf_adds(&c, "))");
		}
		mqtx_buf_addc(&c, ')');
		mqtx_buf_printf(&o, "(extract(epoch FROM (");
		add_cutoff(&o, keep);
		mqtx_buf_printf(&o, ") - t.%s) * 1000)::int8", sent_at);
		snprintf(ord, sizeof(ord), "t.%s", sent_at);
		char *g = guarded(c.data, guard);
		set_kind(&rt->k[MQTX_RET_SENT], T, tid, g, ord, o.data);
		free(g);
		mqtx_buf_adds(&all, c.data);
	}
	{
		/* txpub --rollback sets available_at: rolled back longer ago than retention */
		mqtx_buf_reset(&c);
		mqtx_buf_reset(&o);
		mqtx_buf_printf(&c, "(t.%s = 'rolled_back' AND t.%s < ", st, avail);
		add_cutoff(&c, keep);
		mqtx_buf_addc(&c, ')');
		mqtx_buf_printf(&o, "(extract(epoch FROM (");
		add_cutoff(&o, keep);
		mqtx_buf_printf(&o, ") - t.%s) * 1000)::int8", avail);
		char *g = guarded(c.data, guard);
		set_kind(&rt->k[MQTX_RET_ROLLED_BACK], T, tid, g, tid, o.data);
		free(g);
		mqtx_buf_printf(&all, "%s%s", all.len > 0 ? " OR " : "", c.data);
	}
	if (cfg->outbox_dead_retention_ms != 0) {
		mqtx_buf_reset(&c);
		mqtx_buf_reset(&o);
		mqtx_buf_printf(&c, "(t.%s = 'dead' AND t.%s < ", st, avail);
		add_cutoff(&c, cfg->outbox_dead_retention_ms);
		mqtx_buf_addc(&c, ')');
		mqtx_buf_printf(&o, "(extract(epoch FROM (");
		add_cutoff(&o, cfg->outbox_dead_retention_ms);
		mqtx_buf_printf(&o, ") - t.%s) * 1000)::int8", avail);
		set_kind(&rt->k[MQTX_RET_DEAD], T, tid, c.data, tid, o.data);
		mqtx_buf_printf(&all, "%s%s", all.len > 0 ? " OR " : "", c.data);
	}
	rt->deletable = all.len > 0 ? mqtx_buf_detach(&all) : NULL;
	mqtx_buf_free(&all);
	mqtx_buf_free(&c);
	mqtx_buf_free(&o);
}

/* (extract(epoch FROM (<cutoff>) - <col>) * 1000)::int8 */
static void add_overdue(struct mqtx_buf *b, int64_t ms, const char *col)
{
	mqtx_buf_adds(b, "(extract(epoch FROM (");
	add_cutoff(b, ms);
	mqtx_buf_printf(b, ") - %s) * 1000)::int8", col);
}

/* appends " OR cond" (or cond) to the deletable conditions */
static void add_deletable(struct mqtx_retention *rt, const char *cond)
{
	char *d = rt->deletable != NULL ? mqtx_xasprintf("%s OR %s", rt->deletable, cond) : mqtx_xstrdup(cond);
	free(rt->deletable);
	rt->deletable = d;
}

/* Tail mode (outbox.mode tail, after build_outbox made the kinds of the
 * status column: rows of the status era, rolled back half messages): a
 * row the relay relayed is one its bucket's checkpoint covers
 * (mqtx_tail_covered_sql) and that is not parked; it goes when its
 * created_at is older than outbox.retention. Parked dead rows go with
 * outbox.dead_retention (the parked row with the outbox row); rows parked
 * for a retry or behind a row of their key, and rows not yet relayed,
 * never. The batches are found through the txid index: below the oldest
 * snapshot horizon of the checkpoints (every row there is visible in every
 * checkpoint: the exact test then only rules out parked rows and other
 * buckets' positions), and below the first txid of a row younger than the
 * cutoff (so that a pass does not walk the rows it keeps). */
static void build_outbox_tail(struct mqtx_retention *rt, const char *qschema, const char *guard, bool sent)
{
	const struct mqtx_config *cfg = rt->cfg;
	struct mqtx_tail *tl = rt->tl;
	const char *T = mqtx_outbox_qualified(rt->ob);
	const char *st = mqtx_outbox_col(rt->ob, MQTX_COL_STATUS);
	const char *id = mqtx_outbox_col(rt->ob, MQTX_COL_ID);
	const char *x = mqtx_outbox_col(rt->ob, MQTX_COL_TXID);
	const char *created = mqtx_outbox_col(rt->ob, MQTX_COL_CREATED_AT);
	const char *cp = mqtx_tail_checkpoints_table(tl), *P = mqtx_tail_parked_table(tl);
	const char *lit = mqtx_tail_outbox_literal(tl);
	int64_t keep = cfg->outbox_retention_ms;
	char tid[256], tcreated[256];
	snprintf(tid, sizeof(tid), "t.%s", id);
	rt->note = NULL; /* sent_at is the status era's: tail-mode rows age by created_at */
	if (sent && created == NULL) {
		rt->note =
			"the outbox has no created_at column (outbox.columns.created_at): in tail mode relayed rows are "
			"never deleted";
	} else if (sent) {
		snprintf(tcreated, sizeof(tcreated), "t.%s", created);
		struct mqtx_buf c = MQTX_BUF_INIT, o = MQTX_BUF_INIT, f = MQTX_BUF_INIT;
		/* the exact test: relayed, not parked, old enough */
		mqtx_buf_printf(&c, "(t.%s = 'pending' AND t.%s < ", st, created);
		add_cutoff(&c, keep);
		if (cfg->outbox_retain_uncompleted_ms != 0) {
			mqtx_buf_printf(&c, " AND (t.%s < ", created);
			add_cutoff(&c, cfg->outbox_retain_uncompleted_ms);
			mqtx_buf_printf(&c,
					" OR EXISTS (SELECT 1 FROM %s.mqtx_completions c WHERE c.idempotency_key = ",
					qschema);
			mqtx_outbox_key_sql(rt->ob, &c, "t");
			mqtx_buf_adds(&c, "))");
		}
		/* scalar subqueries, looked up per row of the txid index scan:
		 * as (anti-)joins the planner may hash them and sort every
		 * candidate row for each batch */
		mqtx_buf_printf(&c,
				" AND (SELECT 1 FROM %s mqtx_p WHERE mqtx_p.outbox = %s AND mqtx_p.id = t.%s) IS NULL",
				P, lit, id);
		mqtx_buf_adds(&c, " AND coalesce((SELECT ");
		mqtx_tail_covered_sql(tl, &c, "t", "mqtx_c");
		mqtx_buf_printf(&c, " FROM %s mqtx_c WHERE mqtx_c.outbox = %s AND mqtx_c.bucket = ", cp, lit);
		mqtx_tail_bucket_sql(tl, &c, "t");
		mqtx_buf_adds(&c, "), false))");
		add_overdue(&o, keep, tcreated);

		/* rows of the tail, by the txid index; the first txid of a row
		 * too young is looked up once a pass (the probe) */
		mqtx_buf_printf(&f,
				"(t.%s < least((SELECT min(pg_snapshot_xmin(h.prev_snapshot)) FROM %s h WHERE h.outbox = %s), "
				"%s) AND %s)",
				x, cp, lit, BOUND, c.data);
		char *g = guarded(f.data, guard);
		char ord[256];
		snprintf(ord, sizeof(ord), "t.%s", x);
		set_kind(&rt->k[K_TAIL_SENT], T, tid, g, ord, o.data);
		rt->k[K_TAIL_SENT].stat = MQTX_RET_SENT;
		free(g);
		mqtx_buf_reset(&f);
		mqtx_buf_printf(&f, "SELECT (SELECT y.%s FROM %s y WHERE y.%s IS NOT NULL AND y.%s >= ", x, T, x,
				created);
		add_cutoff(&f, keep);
		mqtx_buf_printf(&f, " ORDER BY y.%s LIMIT 1)::text", x);
		rt->k[K_TAIL_SENT].probe = mqtx_xstrdup(f.data);
		/* rows of the status era the tail relayed (txid NULL: the first interval) */
		mqtx_buf_reset(&f);
		mqtx_buf_printf(&f, "(t.%s IS NULL AND %s)", x, c.data);
		g = guarded(f.data, guard);
		set_kind(&rt->k[K_TAIL_SENT_OLD], T, tid, g, tid, o.data);
		rt->k[K_TAIL_SENT_OLD].stat = MQTX_RET_SENT;
		free(g);
		add_deletable(rt, c.data);
		mqtx_buf_free(&c);
		mqtx_buf_free(&o);
		mqtx_buf_free(&f);
	}
	if (cfg->outbox_dead_retention_ms != 0) {
		struct mqtx_buf c = MQTX_BUF_INIT, o = MQTX_BUF_INIT, f = MQTX_BUF_INIT;
		mqtx_buf_adds(&c, "p.updated_at < ");
		add_cutoff(&c, cfg->outbox_dead_retention_ms);
		mqtx_buf_printf(&f,
				"FROM %s t JOIN %s p ON p.outbox = %s AND p.id = t.%s WHERE p.state = 'dead' AND %s", T,
				P, lit, id, c.data);
		add_overdue(&o, cfg->outbox_dead_retention_ms, "p.updated_at");
		set_kind_from(&rt->k[K_TAIL_DEAD], T, tid, f.data, "p.updated_at", o.data);
		rt->k[K_TAIL_DEAD].stat = MQTX_RET_DEAD;
		rt->k[K_TAIL_DEAD].also =
			mqtx_xasprintf("DELETE FROM %s p USING d WHERE p.outbox = %s AND p.id = d.%s AND p.state = 'dead'",
				       P, lit, id);
		mqtx_buf_reset(&f);
		mqtx_buf_printf(&f,
				"EXISTS (SELECT 1 FROM %s p WHERE p.outbox = %s AND p.id = t.%s AND p.state = 'dead' AND %s)",
				P, lit, id, c.data);
		add_deletable(rt, f.data);
		mqtx_buf_free(&c);
		mqtx_buf_free(&o);
		mqtx_buf_free(&f);
	}
}

static void build_bookkeeping(struct mqtx_retention *rt, const char *qschema)
{
	const struct mqtx_config *cfg = rt->cfg;
	int64_t keep = cfg->outbox_retention_ms;
	struct mqtx_buf c = MQTX_BUF_INIT, t = MQTX_BUF_INIT;
	char *outbox = PQescapeLiteral(rt->conn, mqtx_outbox_qualified(rt->ob), strlen(mqtx_outbox_qualified(rt->ob)));
	if (outbox == NULL)
		abort(); /* out of memory: the names were checked at connect */

	/* mqtx_relays: this outbox's relays that stopped long ago or are
	 * beyond the newest few, and those silent for longer than check
	 * reports them */
	mqtx_buf_printf(&t, "%s.mqtx_relays", qschema);
	mqtx_buf_printf(&c, "t.outbox = %s AND ((t.stopped_at IS NOT NULL AND (t.stopped_at < ", outbox);
	add_cutoff(&c, keep);
	mqtx_buf_printf(&c,
			" OR t.relay_id NOT IN (SELECT n.relay_id FROM %s n WHERE n.outbox = %s AND n.stopped_at IS NOT NULL "
			"ORDER BY n.stopped_at DESC LIMIT %d))) OR (t.stopped_at IS NULL AND t.last_seen < ",
			t.data, outbox, MQTX_RETENTION_KEEP_STOPPED);
	add_cutoff(&c, max3(keep, cfg->check_relay_forget_ms, cfg->check_relay_stale_ms));
	mqtx_buf_adds(&c, "))");
	set_kind(&rt->k[MQTX_RET_RELAYS], t.data, "t.relay_id", c.data, "t.last_seen", NULL);

	/* mqtx_completions: kept as long as the longer bound of sent rows */
	mqtx_buf_reset(&t);
	mqtx_buf_reset(&c);
	mqtx_buf_printf(&t, "%s.mqtx_completions", qschema);
	mqtx_buf_adds(&c, "t.completed_at < ");
	add_cutoff(&c, keep > cfg->outbox_retain_uncompleted_ms ? keep : cfg->outbox_retain_uncompleted_ms);
	/* and never while this outbox still holds a row with the key (a row
	 * kept longer: a partition not yet dropped, a re-sent row): without
	 * its completion, redeliver --unacked-after would send it again. By
	 * the key column's index; keys only derived from the id have none. */
	const char *kc = mqtx_outbox_col(rt->ob, MQTX_COL_KEY);
	if (kc != NULL)
		mqtx_buf_printf(&c, " AND NOT EXISTS (SELECT 1 FROM %s o WHERE o.%s = t.idempotency_key)",
				mqtx_outbox_qualified(rt->ob), kc);
	set_kind(&rt->k[MQTX_RET_COMPLETIONS], t.data, "t.idempotency_key", c.data, "t.completed_at", NULL);
	PQfreemem(outbox);
	mqtx_buf_free(&c);
	mqtx_buf_free(&t);
}

struct mqtx_retention *mqtx_retention_new(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	struct mqtx_outbox *ob = mqtx_outbox_new(conn, cfg, err);
	if (ob == NULL)
		return NULL;
	char *guard = NULL;
	if (mqtx_partitions_row_guard(conn, cfg, &guard, err) < 0) {
		mqtx_outbox_free(ob);
		return NULL;
	}
	struct mqtx_retention *rt = mqtx_xcalloc(1, sizeof(*rt));
	rt->conn = conn;
	rt->cfg = cfg;
	rt->ob = ob;
	for (int k = 0; k < MQTX_RET__COUNT; k++)
		rt->k[k].stat = k;
	if (mqtx_config_tail(cfg) && (cfg->outbox_retention_ms != 0 || cfg->outbox_dead_retention_ms != 0)) {
		rt->tl = mqtx_tail_new(conn, ob, cfg, err);
		if (rt->tl == NULL) {
			free(guard);
			mqtx_retention_free(rt);
			return NULL;
		}
	}
	if (cfg->outbox_retention_ms != 0) {
		char *qschema = mqtx_pg_ident(conn, cfg->outbox_schema);
		build_outbox(rt, qschema, guard);
		if (rt->tl != NULL)
			build_outbox_tail(rt, qschema, guard, true);
		build_bookkeeping(rt, qschema);
		free(qschema);
	} else if (cfg->outbox_dead_retention_ms != 0) {
		char *qschema = mqtx_pg_ident(conn, cfg->outbox_schema);
		build_outbox(rt, qschema, NULL); /* retention off keeps sent rows: only dead ones go */
		for (int k = 0; k < MQTX_RET_DEAD; k++) {
			free(rt->k[k].from);
			rt->k[k].from = NULL;
		}
		if (rt->tl != NULL)
			build_outbox_tail(rt, qschema, NULL, false);
		free(rt->deletable);
		rt->deletable = NULL; /* partitions: only with outbox.retention */
		rt->note = NULL;
		free(qschema);
	}
	free(guard);
	return rt;
}

void mqtx_retention_free(struct mqtx_retention *rt)
{
	if (rt == NULL)
		return;
	for (int k = 0; k < K__COUNT; k++) {
		free(rt->k[k].from);
		free(rt->k[k].order);
		free(rt->k[k].pk);
		free(rt->k[k].table);
		free(rt->k[k].overdue);
		free(rt->k[k].also);
		free(rt->k[k].probe);
		free(rt->k[k].bound);
	}
	free(rt->deletable);
	mqtx_tail_free(rt->tl);
	mqtx_outbox_free(rt->ob);
	free(rt);
}

const char *mqtx_retention_note(const struct mqtx_retention *rt)
{
	return rt->note;
}

static bool kind_on(const struct mqtx_retention *rt, int k)
{
	return rt->k[k].from != NULL && !rt->k[k].off;
}

bool mqtx_retention_enabled(const struct mqtx_retention *rt, enum mqtx_retention_kind kind)
{
	for (int k = 0; k < K__COUNT; k++)
		if (rt->k[k].stat == (int)kind && kind_on(rt, k))
			return true;
	return false;
}

/* A failure that turns the kind off instead of failing the pass: no
 * privilege (42501), no such table (42P01: an adopted outbox without the
 * bookkeeping tables). 1 when it was one (warning set, res cleared). */
static int soft_failure(struct mqtx_retention *rt, int kind, PGresult *res, struct mqtx_retention_stats *st)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL || (strcmp(state, "42501") != 0 && strcmp(state, "42P01") != 0))
		return 0;
	struct kind *k = &rt->k[kind];
	k->off = true;
	if (st != NULL && st->warning[0] == '\0') {
		char *msg = mqtx_xstrdup(PQresultErrorMessage(res));
		msg[strcspn(msg, "\n")] = '\0';
		const char *m = strncmp(msg, "ERROR:  ", 8) == 0 ? msg + 8 : msg;
		if (strcmp(state, "42501") == 0)
			snprintf(st->warning, sizeof(st->warning),
				 "retention: cannot delete from %s (%s): its rows are kept; 'mqtx init --grant ROLE' grants "
				 "what retention needs",
				 k->table, m);
		else
			snprintf(st->warning, sizeof(st->warning), "retention: %s: %s is not pruned (run 'mqtx init')",
				 m, k->table);
		free(msg);
	}
	PQclear(res);
	return 1;
}

/* Tail mode: the statement runs without JIT. The planner cannot tell how
 * soon the per-row tests (covered, not parked) find a batch, estimates the
 * whole txid range and compiles the plan: half a second of JIT for a batch
 * that takes milliseconds. SET LOCAL holds for the one implicit
 * transaction of the query string. */
static void no_jit(const struct mqtx_retention *rt, struct mqtx_buf *sql)
{
	if (rt->tl != NULL)
		mqtx_buf_adds(sql, "SET LOCAL jit = off; ");
}

/* Deletes one batch of kind; the number deleted, or -1 with err. */
static int64_t delete_batch(struct mqtx_retention *rt, int kind, struct mqtx_retention_stats *st, struct mqtx_err *err)
{
	struct kind *k = &rt->k[kind];
	struct mqtx_buf sql = MQTX_BUF_INIT;
	const char *pk = strchr(k->pk, '.') + 1;
	no_jit(rt, &sql);
	if (k->also != NULL)
		mqtx_buf_adds(&sql, "WITH d AS (");
	/* = ANY (ARRAY(...)): the batch is picked once (an InitPlan) and its
	 * rows found through the key's index; with IN (...) the planner may
	 * hash-join the batch against a scan of the whole table, every batch */
	char *from = kind_from(k);
	mqtx_buf_printf(&sql,
			"DELETE FROM %s d WHERE d.%s = ANY (ARRAY(SELECT %s %s ORDER BY %s LIMIT %d FOR UPDATE OF t SKIP LOCKED))",
			k->table, pk, k->pk, from, k->order, MQTX_RETENTION_BATCH);
	free(from);
	if (k->also != NULL) /* in the same statement: the parked row goes with its outbox row */
		mqtx_buf_printf(&sql, " RETURNING d.%s), x AS (%s) SELECT count(*) FROM d", pk, k->also);
	PGresult *res = PQexec(rt->conn, sql.data);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != (k->also != NULL ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
		if (soft_failure(rt, kind, res, st))
			return 0;
		char doing[128];
		snprintf(doing, sizeof(doing), "retention: cannot delete %s rows", kind_names[k->stat]);
		return mqtx_pg_fail(rt->conn, res, doing, err);
	}
	int64_t n = strtoll(k->also != NULL ? PQgetvalue(res, 0, 0) : PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return n;
}

static bool past(int64_t deadline_ms, volatile sig_atomic_t *stop)
{
	return (stop != NULL && *stop != 0) || (deadline_ms > 0 && mqtx_now_ms() >= deadline_ms);
}

int mqtx_retention_run(struct mqtx_retention *rt, int64_t deadline_ms, volatile sig_atomic_t *stop,
		       struct mqtx_retention_stats *st, struct mqtx_err *err)
{
	mqtx_err_clear(err);
	if (strcmp(rt->cfg->outbox_partition_by, "none") != 0) {
		size_t wl = strlen(st->warning);
		if (mqtx_partitions_maintain(rt->conn, rt->cfg, rt->deletable, deadline_ms, &st->partitions_created,
					     &st->partitions_dropped, st->warning + wl, sizeof(st->warning) - wl,
					     err) < 0)
			return -1;
	}
	for (int kind = 0; kind < K__COUNT; kind++) {
		if (!kind_on(rt, kind))
			continue;
		if (probe_kind(rt, &rt->k[kind], err) < 0)
			return -1;
		for (;;) {
			int64_t n = delete_batch(rt, kind, st, err);
			if (n < 0)
				return -1;
			st->deleted[rt->k[kind].stat] += n;
			if (n < MQTX_RETENTION_BATCH)
				break;
			if (stop != NULL && *stop != 0) {
				st->more = true;
				return 0;
			}
			if (past(deadline_ms, stop)) {
				/* the next kind still gets its one batch: a big
				 * backlog of one kind must not starve the others */
				st->more = true;
				break;
			}
		}
	}
	return 0;
}

int mqtx_retention_preview(struct mqtx_retention *rt, int64_t limit, struct mqtx_retention_preview *p,
			   struct mqtx_err *err)
{
	memset(p, 0, sizeof(*p));
	p->overdue_ms = -1;
	for (int kind = 0; kind < K__COUNT; kind++) {
		struct kind *k = &rt->k[kind];
		if (k->from == NULL)
			continue;
		if (probe_kind(rt, k, err) < 0)
			return -1;
		char *from = kind_from(k);
		struct mqtx_buf sql = MQTX_BUF_INIT;
		no_jit(rt, &sql);
		mqtx_buf_printf(&sql,
				"SELECT count(*), coalesce(max(o), -1) FROM (SELECT %s AS o %s ORDER BY %s LIMIT %lld) s",
				k->overdue != NULL ? k->overdue : "-1::int8", from, k->order, (long long)limit + 1);
		free(from);
		PGresult *res = PQexec(rt->conn, sql.data);
		mqtx_buf_free(&sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			if (soft_failure(rt, kind, res, NULL))
				continue;
			return mqtx_pg_fail(rt->conn, res, "cannot count what retention will delete", err);
		}
		int64_t n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		int64_t o = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		PQclear(res);
		/* the kinds of tail mode add to the kind they count as */
		int64_t due = p->due[k->stat] + (n > limit ? limit : n);
		p->capped[k->stat] = p->capped[k->stat] || n > limit || due > limit;
		p->due[k->stat] = due > limit ? limit : due;
		if (o > p->overdue_ms)
			p->overdue_ms = o;
	}
	return 0;
}
