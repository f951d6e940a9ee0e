/* Outbox SQL (see outbox.h). Every identifier from config is quoted with
 * PQescapeIdentifier and every value travels as a parameter. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/outbox.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/failpoint.h"
#include "base/json.h"
#include "base/log.h"
#include "db/catalog.h"
#include "db/pg.h"

struct mqtx_outbox {
	PGconn *conn;
	const struct mqtx_config *cfg;
	char *qschema;
	char *qtable;
	char *qualified;
	char *qrelays;
	char *q[MQTX_COL__COUNT]; /* quoted column names, NULL when unmapped */
	int32_t lock_class;       /* advisory locks (lock_class, bucket): the table's oid */
	char *sql_buckets;
	char *sql_claim;
	char *sql_finish;
	bool prepared[3]; /* STMT_*: prepared on conn (see exec_stmt) */
	bool in_tx;
	bool heartbeat_off;
};

/* The relay's per-batch statements are prepared on the connection the
 * first time they run: planning them for every batch took about a tenth of
 * a database-bound relay's time. (Prepared statements, like the relay's
 * session advisory locks and LISTEN, need a session: no transaction-mode
 * connection pooler between relay and database.) */
enum { STMT_BUCKETS, STMT_CLAIM, STMT_FINISH };

static PGresult *exec_stmt(struct mqtx_outbox *ob, int which, const char *sql, int n, const char *const *params,
			   int binary)
{
	static const char *const names[] = {"mqtx_buckets", "mqtx_claim", "mqtx_finish"};
	/* a failed PREPARE's result: the callers report it like a failed query */
	return mqtx_pg_exec_prepared(ob->conn, &ob->prepared[which], names[which], sql, n, params, binary);
}

const char *mqtx_outbox_qualified(const struct mqtx_outbox *ob)
{
	return ob->qualified;
}

const char *mqtx_outbox_schema_name(const struct mqtx_outbox *ob)
{
	return ob->cfg->outbox_schema;
}

int32_t mqtx_outbox_lock_class(const struct mqtx_outbox *ob)
{
	return ob->lock_class;
}

/* SQL expression for the idempotency key of row alias t. */
static void key_expr(const struct mqtx_outbox *ob, struct mqtx_buf *b, const char *alias)
{
	if (ob->q[MQTX_COL_KEY] != NULL) {
		mqtx_buf_printf(b, "%s.%s::text", alias, ob->q[MQTX_COL_KEY]);
		return;
	}
	char *lit = mqtx_outbox_key_prefix_literal(ob->conn, ob->cfg);
	mqtx_buf_printf(b, "(%s || %s.%s)", lit, alias, ob->q[MQTX_COL_ID]);
	free(lit);
}

void mqtx_outbox_key_sql(const struct mqtx_outbox *ob, struct mqtx_buf *b, const char *alias)
{
	key_expr(ob, b, alias);
}

const char *mqtx_outbox_col(const struct mqtx_outbox *ob, enum mqtx_col c)
{
	return ob->q[c];
}

/* A column of row alias, or a typed NULL when the table has none. */
static void add_col(const struct mqtx_outbox *ob, struct mqtx_buf *b, const char *alias, enum mqtx_col c)
{
	if (ob->q[c] != NULL)
		mqtx_buf_printf(b, "%s.%s::text", alias, ob->q[c]);
	else
		mqtx_buf_adds(b, "NULL::text");
}

/* The 9 columns mqtx_batch_decode() reads, in its order. */
void mqtx_outbox_msg_columns(const struct mqtx_outbox *ob, struct mqtx_buf *b, const char *alias)
{
	mqtx_buf_printf(b, "%s.%s::int8, ", alias, ob->q[MQTX_COL_ID]);
	key_expr(ob, b, alias);
	mqtx_buf_printf(b, ", %s.%s::text, ", alias, ob->q[MQTX_COL_DESTINATION]);
	add_col(ob, b, alias, MQTX_COL_ROUTING_KEY);
	mqtx_buf_adds(b, ", ");
	add_col(ob, b, alias, MQTX_COL_ORDERING_KEY);
	mqtx_buf_adds(b, ", ");
	add_col(ob, b, alias, MQTX_COL_HEADERS);
	mqtx_buf_adds(b, ", ");
	const char *ptype = ob->cfg->outbox_payload_type;
	if (strcmp(ptype, "bytea") == 0)
		mqtx_buf_printf(b, "%s.%s, ", alias, ob->q[MQTX_COL_PAYLOAD]);
	else
		mqtx_buf_printf(b, "convert_to(%s.%s::text, 'UTF8'), ", alias, ob->q[MQTX_COL_PAYLOAD]);
	if (strcmp(ptype, "json") == 0 || strcmp(ptype, "jsonb") == 0)
		mqtx_buf_adds(b, "coalesce(");
	add_col(ob, b, alias, MQTX_COL_CONTENT_TYPE);
	if (strcmp(ptype, "json") == 0 || strcmp(ptype, "jsonb") == 0)
		mqtx_buf_adds(b, ", 'application/json')");
	mqtx_buf_printf(b, ", %s.%s::int8", alias, ob->q[MQTX_COL_ATTEMPTS]);
}

/* The lowest pending id, once per statement (an InitPlan). */
static void lowest_pending(const struct mqtx_outbox *ob, struct mqtx_buf *b)
{
	mqtx_buf_printf(b, "(SELECT min(x.%s) FROM %s x WHERE x.%s = 'pending')", ob->q[MQTX_COL_ID], ob->qualified,
			ob->q[MQTX_COL_STATUS]);
}

/* The keyed claim's head probe: the earliest pending row of key kx with
 * an id OP ix (< or <=), from the lowest pending id on; true if it is due
 * and this transaction holds or now takes its lock, false if not, NULL
 * when there is none. */
static void head_probe(const struct mqtx_outbox *ob, struct mqtx_buf *b, const char *kx, const char *op, const char *ix)
{
	const char *T = ob->qualified, *id = ob->q[MQTX_COL_ID], *ok = ob->q[MQTX_COL_ORDERING_KEY];
	mqtx_buf_printf(b,
			"(SELECT CASE WHEN p.%s > now() THEN false"
			" ELSE EXISTS (SELECT 1 FROM %s q WHERE q.%s = p.%s FOR NO KEY UPDATE SKIP LOCKED) END"
			" FROM %s p WHERE p.%s = 'pending' AND (p.%s, p.%s) >= (%s, ",
			ob->q[MQTX_COL_AVAILABLE_AT], T, id, id, T, ob->q[MQTX_COL_STATUS], ok, id, kx);
	lowest_pending(ob, b);
	mqtx_buf_printf(b, ") AND (p.%s, p.%s) %s (%s, %s) ORDER BY p.%s, p.%s LIMIT 1)", ok, id, op, kx, ix, ok, id);
}

static void build_sql(struct mqtx_outbox *ob)
{
	const char *T = ob->qualified;
	const char *id = ob->q[MQTX_COL_ID], *st = ob->q[MQTX_COL_STATUS], *av = ob->q[MQTX_COL_AVAILABLE_AT];
	const char *ok = ob->q[MQTX_COL_ORDERING_KEY];
	struct mqtx_buf b = MQTX_BUF_INIT;

	/* Phase 1: lease the buckets of the ordering keys at the head of the queue. */
	if (ok != NULL)
		mqtx_buf_printf(&b,
				"SELECT s.b FROM (SELECT DISTINCT (hashtext(h.k) & 2147483647) %% $2::int4 AS b FROM "
				"(SELECT t.%s AS k FROM %s t WHERE t.%s = 'pending' AND t.%s <= now() AND t.%s IS NOT NULL "
				"ORDER BY t.%s LIMIT $1::int8) h) s WHERE pg_try_advisory_xact_lock($3::int4, s.b)",
				ok, T, st, av, ok, id);
	ob->sql_buckets = mqtx_buf_detach(&b);

	/* Phase 2, a new statement and so a new snapshot taken after the
	 * bucket locks were granted: rows without a key, or whose key's
	 * bucket we hold and which no earlier pending row of the key blocks.
	 * FOR NO KEY UPDATE is the lock the outcome's UPDATE takes anyway; it
	 * does not conflict with FOR KEY SHARE, so a foreign key insert that
	 * references a row in another session does not hold the row back. */
	if (ok == NULL) {
		mqtx_buf_adds(&b, "SELECT ");
		mqtx_outbox_msg_columns(ob, &b, "t");
		mqtx_buf_printf(&b, " FROM %s t WHERE t.%s = 'pending' AND t.%s <= now()", T, st, av);
		mqtx_buf_printf(&b, " ORDER BY t.%s LIMIT $1::int8 FOR NO KEY UPDATE OF t SKIP LOCKED", id);
	} else {
		/* SKIP LOCKED passes over a row someone else has locked (FOR
		 * UPDATE, FOR SHARE, an UPDATE in progress) as if it were not
		 * there, so a later row of its key would go first. Two guards:
		 *
		 * In the scan, a keyed row of a bucket we hold passes only if
		 * its key's head (the earliest pending row of the key) is due
		 * and can be locked now: a probe, FOR NO KEY UPDATE SKIP LOCKED,
		 * which takes the head's lock that this scan takes anyway (the
		 * head comes first). So the rows behind a head that waits for
		 * its retry, or that someone else holds, do not fill the batch.
		 * The probe is made once per key, in k: for the keys (of our
		 * buckets) of the first $1 pending rows, the rows the scan mostly
		 * meets (a hashed look-up per row then); a row of any other key
		 * (met when rows of blocked keys or other buckets were passed
		 * over) probes its own key's earliest pending row before it.
		 * CASE keeps the probes to rows of buckets we hold.
		 *
		 * After the scan, g finds per key the first pending row before
		 * the key's last row in c that c lacks (a locked row in the
		 * middle of the key, or one that waits for its retry behind a
		 * due head); c's rows from that gap on are not claimed. They
		 * stay locked until COMMIT, untouched, and follow in a later
		 * batch. The rows are carried through c whole, as locked (the
		 * newest version), not read again. g alone keeps the order; the
		 * probes keep the batches full.
		 *
		 * The key lookups are (key, id) ranges of the key index from the
		 * lowest pending id on (lo, once per statement): a key's rows
		 * already sent keep their entries in the partial index, dead,
		 * until vacuum, and a look from the start of the key passed
		 * over all of them for every row, a cost growing with the sent
		 * rows of the key. (Row comparisons: only the key index serves
		 * them in that order, whatever the planner guesses of a key.) */
		mqtx_buf_adds(&b, "WITH k AS MATERIALIZED (SELECT f.k, coalesce(");
		head_probe(ob, &b, "f.k", "<=", "f.first");
		mqtx_buf_printf(&b,
				", true) AS go FROM (SELECT t.%s AS k, min(t.%s) AS first FROM (SELECT t.%s, t.%s FROM %s t"
				" WHERE t.%s = 'pending' AND t.%s <= now() ORDER BY t.%s LIMIT $1::int8) t"
				" WHERE t.%s IS NOT NULL AND (hashtext(t.%s) & 2147483647) %% $2::int4 = ANY($3::int4[])"
				" GROUP BY t.%s) f), ",
				ok, id, ok, id, T, st, av, id, ok, ok, ok);
		mqtx_buf_printf(&b,
				"c AS MATERIALIZED (SELECT t.%s AS i, t.%s AS k, t AS r FROM %s t "
				"WHERE t.%s = 'pending' AND t.%s <= now() AND CASE WHEN t.%s IS NULL THEN true"
				" WHEN NOT (hashtext(t.%s) & 2147483647) %% $2::int4 = ANY($3::int4[]) THEN false"
				" WHEN t.%s IN (SELECT k.k FROM k WHERE k.go) THEN true"
				" WHEN t.%s IN (SELECT k.k FROM k) THEN false ELSE coalesce(",
				id, ok, T, st, av, ok, ok, ok, ok);
		struct mqtx_buf tk = MQTX_BUF_INIT, ti = MQTX_BUF_INIT;
		mqtx_buf_printf(&tk, "t.%s", ok);
		mqtx_buf_printf(&ti, "t.%s", id);
		head_probe(ob, &b, tk.data, "<", ti.data);
		mqtx_buf_free(&tk);
		mqtx_buf_free(&ti);
		mqtx_buf_printf(&b,
				", true) END ORDER BY t.%s LIMIT $1::int8 FOR NO KEY UPDATE OF t SKIP LOCKED), "
				"g AS (SELECT h.k, (SELECT p.%s FROM %s p WHERE p.%s = 'pending'"
				" AND (p.%s, p.%s) >= (h.k, ",
				id, id, T, st, ok, id);
		lowest_pending(ob, &b);
		mqtx_buf_printf(&b,
				") AND (p.%s, p.%s) < (h.k, h.last)"
				" AND p.%s NOT IN (SELECT c.i FROM c) ORDER BY p.%s, p.%s LIMIT 1) AS gap"
				" FROM (SELECT c.k, max(c.i) AS last FROM c WHERE c.k IS NOT NULL GROUP BY c.k) h) "
				"SELECT ",
				ok, id, id, ok, id);
		mqtx_outbox_msg_columns(ob, &b, "(c.r)");
		mqtx_buf_adds(&b, " FROM c LEFT JOIN g ON g.k = c.k WHERE g.gap IS NULL OR c.i < g.gap ORDER BY c.i");
	}
	ob->sql_claim = mqtx_buf_detach(&b);

	/* Outcomes of a batch in one statement. */
	mqtx_buf_printf(&b, "WITH s AS (UPDATE %s t SET %s = 'sent', %s = t.%s + 1", T, st, ob->q[MQTX_COL_ATTEMPTS],
			ob->q[MQTX_COL_ATTEMPTS]);
	if (ob->q[MQTX_COL_SENT_AT] != NULL)
		mqtx_buf_printf(&b, ", %s = clock_timestamp()", ob->q[MQTX_COL_SENT_AT]);
	mqtx_buf_printf(&b, " WHERE t.%s = ANY($1::int8[]) AND t.%s = 'pending' RETURNING 1), ", id, st);
	mqtx_buf_printf(&b,
			"f AS (UPDATE %s t SET %s = t.%s + 1, %s = u.err, "
			"%s = CASE WHEN u.perm OR t.%s + 1 >= $4::int4 THEN 'dead' ELSE t.%s END, "
			"%s = now() + u.delay * interval '1 millisecond' "
			"FROM unnest($2::int8[], $3::text[], $5::int8[], $6::bool[]) AS u(id, err, delay, perm) "
			"WHERE t.%s = u.id AND t.%s = 'pending' RETURNING t.%s = 'dead' AS dead, u.perm) "
			"SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM f WHERE NOT dead), "
			"(SELECT count(*) FROM f WHERE dead), (SELECT count(*) FROM f WHERE dead AND perm)",
			T, ob->q[MQTX_COL_ATTEMPTS], ob->q[MQTX_COL_ATTEMPTS], ob->q[MQTX_COL_LAST_ERROR], st,
			ob->q[MQTX_COL_ATTEMPTS], st, av, id, st, st);
	ob->sql_finish = mqtx_buf_detach(&b);
}

struct mqtx_outbox *mqtx_outbox_new(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	struct mqtx_outbox *ob = mqtx_xcalloc(1, sizeof(*ob));
	ob->conn = conn;
	ob->cfg = cfg;
	ob->qschema = mqtx_pg_ident(conn, cfg->outbox_schema);
	ob->qtable = mqtx_pg_ident(conn, cfg->outbox_table);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "%s.%s", ob->qschema, ob->qtable);
	ob->qualified = mqtx_buf_detach(&b);
	mqtx_buf_printf(&b, "%s.mqtx_relays", ob->qschema);
	ob->qrelays = mqtx_buf_detach(&b);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		if (cfg->outbox_columns[c] != NULL && cfg->outbox_columns[c][0] != '\0')
			ob->q[c] = mqtx_pg_ident(conn, cfg->outbox_columns[c]);
	if (!mqtx_config_tail(cfg)) { /* the txid column is tail mode's */
		free(ob->q[MQTX_COL_TXID]);
		ob->q[MQTX_COL_TXID] = NULL;
	}

	/* The table must exist and have every mapped column. One query: a
	 * failed read is a database error (retried in --loop), never taken
	 * for a missing column. */
	if (MQTX_FAILPOINT("outbox.catalogue") < 0) /* as if the connection were cut during the read */
		PQclear(PQexec(conn, "SELECT pg_terminate_backend(pg_backend_pid())"));
	struct mqtx_pg_columns cols;
	if (mqtx_pg_table_columns(conn, cfg->outbox_schema, cfg->outbox_table, "rp", &cols,
				  "cannot look up the outbox table", err) < 0)
		goto fail;
	if (!cols.exists) {
		mqtx_err_set(err, MQTX_E_DB,
			     "outbox table %s does not exist (run 'mqtx init', or set outbox.schema/outbox.table)",
			     ob->qualified);
		mqtx_pg_columns_free(&cols);
		goto fail;
	}
	/* the two-int4 lock space does not overlap the bigint one most applications use */
	ob->lock_class = (int32_t)(uint32_t)(uint64_t)cols.oid;
	for (int c = 0; c < MQTX_COL__COUNT; c++) {
		if (ob->q[c] != NULL && mqtx_pg_columns_find(&cols, cfg->outbox_columns[c]) == NULL) {
			mqtx_err_set(err, MQTX_E_CONFIG,
				     "outbox table %s has no column %s (outbox.columns: map it, or see 'mqtx init --print')",
				     ob->qualified, ob->q[c]);
			mqtx_pg_columns_free(&cols);
			goto fail;
		}
	}
	mqtx_pg_columns_free(&cols);
	build_sql(ob);
	return ob;
fail:
	mqtx_outbox_free(ob);
	return NULL;
}

void mqtx_outbox_free(struct mqtx_outbox *ob)
{
	if (ob == NULL)
		return;
	free(ob->qschema);
	free(ob->qtable);
	free(ob->qualified);
	free(ob->qrelays);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		free(ob->q[c]);
	free(ob->sql_buckets);
	free(ob->sql_claim);
	free(ob->sql_finish);
	free(ob);
}

void mqtx_outbox_abort(struct mqtx_outbox *ob)
{
	if (!ob->in_tx)
		return;
	PGresult *res = PQexec(ob->conn, "ROLLBACK");
	PQclear(res);
	ob->in_tx = false;
}

/* ---- claiming ---- */

static char *get_str(struct mqtx_batch *b, const PGresult *res, int row, int col)
{
	(void)b;
	if (PQgetisnull(res, row, col))
		return NULL;
	/* binary text values are not NUL-terminated in general; libpq adds one */
	return PQgetvalue(res, row, col);
}

static char *keep(struct mqtx_batch *b, char *s)
{
	b->owned = mqtx_xrealloc(b->owned, (b->n_owned + 1) * sizeof(char *));
	b->owned[b->n_owned++] = s;
	return s;
}

/* Turns the headers JSON of one row into name/value pairs; returns the
 * number of pairs, or -1 with why set when the JSON is not an object. */
static long parse_headers(struct mqtx_batch *b, const char *text, struct mqtx_header **out, char **why)
{
	struct mqtx_err e;
	struct mqtx_json *v = mqtx_json_parse(text, strlen(text), &e);
	*out = NULL;
	if (v == NULL) {
		*why = keep(b, mqtx_xstrdup(e.msg));
		return -1;
	}
	if (v->type == MQTX_JSON_NULL) {
		mqtx_json_free(v);
		return 0;
	}
	if (v->type != MQTX_JSON_OBJECT) {
		*why = keep(b, mqtx_xstrdup("headers must be a JSON object"));
		mqtx_json_free(v);
		return -1;
	}
	struct mqtx_header *h = mqtx_xcalloc(v->count + 1, sizeof(*h));
	size_t k = 0;
	for (size_t i = 0; i < v->count; i++) {
		const struct mqtx_json *item = v->items[i];
		if (item->type == MQTX_JSON_NULL)
			continue;
		if (memchr(v->keys[i], '\0', v->key_lens[i]) != NULL || v->key_lens[i] == 0 || v->key_lens[i] > 255) {
			*why = keep(b, mqtx_xstrdup("a header name is empty, longer than 255 bytes or contains NUL"));
			free(h);
			mqtx_json_free(v);
			return -1;
		}
		h[k].name = keep(b, mqtx_xstrndup(v->keys[i], v->key_lens[i]));
		h[k].value = keep(b, mqtx_json_header_text(item, &h[k].value_len));
		k++;
	}
	mqtx_json_free(v);
	keep(b, (char *)h);
	*out = h;
	return (long)k;
}

struct mqtx_batch *mqtx_batch_decode(PGresult *res)
{
	struct mqtx_batch *b = mqtx_xcalloc(1, sizeof(*b));
	b->res = res;
	b->n = (size_t)PQntuples(res);
	b->msgs = mqtx_xcalloc(b->n + 1, sizeof(*b->msgs));
	b->attempts = mqtx_xcalloc(b->n + 1, sizeof(int64_t));
	b->bad_headers = mqtx_xcalloc(b->n + 1, sizeof(char *));
	for (size_t i = 0; i < b->n; i++) {
		int r = (int)i;
		struct mqtx_msg *m = &b->msgs[i];
		m->id = mqtx_pg_get_i64(res, r, 0);
		m->key = get_str(b, res, r, 1);
		m->destination = get_str(b, res, r, 2);
		m->routing_key = get_str(b, res, r, 3);
		m->ordering_key = get_str(b, res, r, 4);
		const char *hdr = get_str(b, res, r, 5);
		m->payload = PQgetvalue(res, r, 6);
		m->payload_len = (size_t)PQgetlength(res, r, 6);
		m->content_type = get_str(b, res, r, 7);
		b->attempts[i] = mqtx_pg_get_i64(res, r, 8);
		if (m->key == NULL || m->destination == NULL) {
			b->bad_headers[i] = keep(b, mqtx_xstrdup(m->key == NULL ? "the idempotency key is NULL"
										: "the destination is NULL"));
			if (m->key == NULL)
				m->key = "";
			if (m->destination == NULL)
				m->destination = "";
		}
		if (hdr != NULL && b->bad_headers[i] == NULL) {
			struct mqtx_header *h;
			char *why = NULL;
			long nh = parse_headers(b, hdr, &h, &why);
			if (nh < 0) {
				char msg[300];
				snprintf(msg, sizeof(msg), "malformed headers: %s", why);
				b->bad_headers[i] = keep(b, mqtx_xstrdup(msg));
			} else {
				m->headers = h;
				m->n_headers = (size_t)nh;
			}
		}
	}
	return b;
}

struct mqtx_batch *mqtx_outbox_claim(struct mqtx_outbox *ob, size_t limit, bool dry_run, struct mqtx_err *err)
{
	char slimit[32], sbuckets[32], sbase[32];
	char *locked = NULL;
	PGresult *res;

	(void)dry_run;
	snprintf(slimit, sizeof(slimit), "%zu", limit);
	snprintf(sbuckets, sizeof(sbuckets), "%lld", (long long)ob->cfg->relay_ordering_buckets);
	snprintf(sbase, sizeof(sbase), "%ld", (long)ob->lock_class);

	/* No JIT for the batch's statements: the keyed claim's plan costs
	 * about 20 per row of --batch (a probe per row), so from about 5,000
	 * rows it passed jit_above_cost, and compiling it took longer (half
	 * a second) than running it (a few milliseconds per 1,000 rows). */
	if (mqtx_pg_exec(ob->conn, "BEGIN; SET LOCAL jit = off", err) < 0)
		return NULL;
	ob->in_tx = true;
	if (ob->q[MQTX_COL_ORDERING_KEY] != NULL) {
		const char *p1[3] = {slimit, sbuckets, sbase};
		res = exec_stmt(ob, STMT_BUCKETS, ob->sql_buckets, 3, p1, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			mqtx_pg_fail(ob->conn, res, "cannot lease ordering-key buckets", err);
			goto fail;
		}
		int nb = PQntuples(res);
		int64_t *bk = mqtx_xmalloc(((size_t)nb + 1) * sizeof(int64_t));
		for (int i = 0; i < nb; i++)
			bk[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		locked = mqtx_pg_int8_array(bk, (size_t)nb);
		free(bk);
		PQclear(res);
		const char *p2[3] = {slimit, sbuckets, locked};
		res = exec_stmt(ob, STMT_CLAIM, ob->sql_claim, 3, p2, 1);
	} else {
		const char *p2[1] = {slimit};
		res = exec_stmt(ob, STMT_CLAIM, ob->sql_claim, 1, p2, 1);
	}
	free(locked);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(ob->conn, res, "cannot claim outbox rows", err);
		goto fail;
	}

	return mqtx_batch_decode(res);
fail:
	mqtx_outbox_abort(ob);
	return NULL;
}

void mqtx_batch_free(struct mqtx_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n_owned; i++)
		free(b->owned[i]);
	free(b->owned);
	free(b->msgs);
	free(b->attempts);
	free(b->bad_headers);
	PQclear(b->res);
	free(b);
}

/* ---- outcomes ---- */

int64_t mqtx_backoff_ms(const struct mqtx_config *cfg, int64_t attempts)
{
	double d = (double)cfg->relay_backoff_initial_ms;
	for (int64_t i = 0; i < attempts && d < (double)cfg->relay_backoff_max_ms; i++)
		d *= 2;
	if (d > (double)cfg->relay_backoff_max_ms)
		d = (double)cfg->relay_backoff_max_ms;
	if (cfg->relay_backoff_jitter > 0) {
		double j = (double)cfg->relay_backoff_jitter / 100.0;
		double r = (double)random() / (double)RAND_MAX; /* 0..1 */
		d *= 1.0 - j + 2.0 * j * r;
	}
	return (int64_t)d;
}

/* Appends s to a text[] literal, quoted, keeping printable ASCII only so
 * the database never sees invalid encoding from a broker message. */
static void add_text_elem(struct mqtx_buf *b, const char *s)
{
	mqtx_buf_addc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			mqtx_buf_addc(b, '\\');
			mqtx_buf_addc(b, (char)*p);
		} else if (*p < 0x20 || *p >= 0x7f) {
			mqtx_buf_addc(b, '?');
		} else {
			mqtx_buf_addc(b, (char)*p);
		}
	}
	mqtx_buf_addc(b, '"');
}

int mqtx_outbox_finish(struct mqtx_outbox *ob, struct mqtx_batch *b, struct mqtx_finish_stats *st, struct mqtx_err *err)
{
	struct mqtx_buf sent = MQTX_BUF_INIT, fid = MQTX_BUF_INIT, ferr = MQTX_BUF_INIT, fdelay = MQTX_BUF_INIT;
	struct mqtx_buf fperm = MQTX_BUF_INIT;
	size_t ns = 0, nf = 0;
	char smax[32];

	memset(st, 0, sizeof(*st));
	mqtx_buf_addc(&sent, '{');
	mqtx_buf_addc(&fid, '{');
	mqtx_buf_addc(&ferr, '{');
	mqtx_buf_addc(&fdelay, '{');
	mqtx_buf_addc(&fperm, '{');
	for (size_t i = 0; i < b->n; i++) {
		struct mqtx_msg *m = &b->msgs[i];
		switch (m->state) {
		case MQTX_MSG_CONFIRMED:
			if (ns++)
				mqtx_buf_addc(&sent, ',');
			mqtx_buf_add_i64(&sent, m->id);
			break;
		case MQTX_MSG_FAILED:
		case MQTX_MSG_UNKNOWN:
			if (nf) {
				mqtx_buf_addc(&fid, ',');
				mqtx_buf_addc(&ferr, ',');
				mqtx_buf_addc(&fdelay, ',');
				mqtx_buf_addc(&fperm, ',');
			}
			mqtx_buf_add_i64(&fid, m->id);
			add_text_elem(&ferr, m->error[0] != '\0'
						     ? m->error
						     : (m->state == MQTX_MSG_UNKNOWN ? "no confirm from the broker"
										     : "failed"));
			mqtx_buf_add_i64(&fdelay, mqtx_backoff_ms(ob->cfg, b->attempts[i]));
			mqtx_buf_addc(&fperm, m->state == MQTX_MSG_FAILED && m->permanent ? 't' : 'f');
			nf++;
			break;
		case MQTX_MSG_PENDING: st->released++; break;
		}
	}
	mqtx_buf_addc(&sent, '}');
	mqtx_buf_addc(&fid, '}');
	mqtx_buf_addc(&ferr, '}');
	mqtx_buf_addc(&fdelay, '}');
	mqtx_buf_addc(&fperm, '}');
	snprintf(smax, sizeof(smax), "%lld", (long long)ob->cfg->relay_max_attempts);

	int rc = 0;
	if (ns + nf > 0) {
		const char *p[6] = {sent.data, fid.data, ferr.data, smax, fdelay.data, fperm.data};
		PGresult *res = exec_stmt(ob, STMT_FINISH, ob->sql_finish, 6, p, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			rc = mqtx_pg_fail(ob->conn, res, "cannot record the batch outcome", err);
		} else {
			st->sent = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
			st->failed = (size_t)strtoull(PQgetvalue(res, 0, 1), NULL, 10);
			st->dead = (size_t)strtoull(PQgetvalue(res, 0, 2), NULL, 10);
			st->dead_permanent = (size_t)strtoull(PQgetvalue(res, 0, 3), NULL, 10);
			PQclear(res);
		}
	}
	mqtx_buf_free(&sent);
	mqtx_buf_free(&fid);
	mqtx_buf_free(&ferr);
	mqtx_buf_free(&fdelay);
	mqtx_buf_free(&fperm);
	if (rc == 0 && MQTX_FAILPOINT("relay.before_commit") < 0)
		rc = mqtx_err_retry(err, MQTX_E_DB, "failpoint relay.before_commit");
	if (rc < 0) {
		mqtx_outbox_abort(ob);
		return -1;
	}
	if (mqtx_pg_exec(ob->conn, "COMMIT", err) < 0) {
		ob->in_tx = false;
		return -1;
	}
	ob->in_tx = false;
	return 0;
}

/* ---- LISTEN/NOTIFY ---- */

int mqtx_outbox_listen(struct mqtx_outbox *ob, struct mqtx_err *err)
{
	char *ch = mqtx_pg_ident(ob->conn, ob->cfg->outbox_notify_channel);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "LISTEN %s", ch);
	free(ch);
	int rc = mqtx_pg_exec(ob->conn, b.data, err);
	mqtx_buf_free(&b);
	return rc;
}

int mqtx_outbox_wait(struct mqtx_outbox *ob, int64_t ms, struct mqtx_err *err)
{
	PGnotify *n;
	int got = 0;

	if (PQconsumeInput(ob->conn) == 0)
		return mqtx_pg_fail(ob->conn, NULL, "lost the database connection", err);
	while ((n = PQnotifies(ob->conn)) != NULL) {
		got = 1;
		PQfreemem(n);
	}
	if (got)
		return 1;
	struct pollfd pfd = {.fd = PQsocket(ob->conn), .events = POLLIN};
	int pr = poll(&pfd, 1, (int)(ms > 0 ? ms : 0));
	if (pr <= 0)
		return 0; /* timeout or a signal: the caller looks at its stop flag */
	if (PQconsumeInput(ob->conn) == 0)
		return mqtx_pg_fail(ob->conn, NULL, "lost the database connection", err);
	while ((n = PQnotifies(ob->conn)) != NULL) {
		got = 1;
		PQfreemem(n);
	}
	return got;
}

/* ---- ordering-key buckets for other commands ---- */

int mqtx_outbox_lock_keys(struct mqtx_outbox *ob, const char *const *keys, size_t n, struct mqtx_err *err)
{
	if (n == 0 || ob->q[MQTX_COL_ORDERING_KEY] == NULL)
		return 0;
	char sbuckets[32], sbase[32];
	snprintf(sbuckets, sizeof(sbuckets), "%lld", (long long)ob->cfg->relay_ordering_buckets);
	snprintf(sbase, sizeof(sbase), "%ld", (long)ob->lock_class);
	char *arr = mqtx_pg_text_array(keys, n);
	const char *p[3] = {sbase, sbuckets, arr};
	/* Ascending bucket order (OFFSET 0 keeps the sorted subquery apart), so
	 * two waiting takers cannot deadlock; claiming only try-locks. */
	PGresult *res =
		PQexecParams(ob->conn,
			     "SELECT count(pg_advisory_xact_lock($1::int4, s.b)) FROM (SELECT DISTINCT "
			     "(hashtext(k) & 2147483647) % $2::int4 AS b FROM unnest($3::text[]) k ORDER BY 1 OFFSET 0) s",
			     3, NULL, p, NULL, NULL, 0);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(ob->conn, res, "cannot lock ordering-key buckets", err);
	PQclear(res);
	return 0;
}

/* ---- relay slot leases ---- */

int mqtx_outbox_lease_slot(struct mqtx_outbox *ob, int max, struct mqtx_err *err)
{
	char cls[32], smax[32];
	snprintf(cls, sizeof(cls), "%ld", (long)ob->lock_class);
	snprintf(smax, sizeof(smax), "%d", max);
	const char *p[2] = {cls, smax};
	/* objids below zero: bucket locks use 0 and up */
	PGresult *res = PQexecParams(ob->conn,
				     "SELECT n FROM generate_series(0, $2::int4 - 1) n "
				     "WHERE pg_try_advisory_lock($1::int4, -1 - n) LIMIT 1", /* stops at the first */
				     2, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(ob->conn, res, "cannot lease a relay slot", err);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return mqtx_err_set(err, MQTX_E_DB, "all %d relay slots of %s are taken by running relays", max,
				    ob->qualified);
	}
	int n = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

/* ---- the bucket count, the same in every relay ---- */

/* The announcement is the shared lock (lock_class, -1000000 - buckets):
 * bucket locks use 0 and up, slot leases -1 to -256. pg_locks shows the
 * second int of a two-int advisory lock as objid, the int4 read unsigned. */
#define BUCKETS_MARK_BASE 1000000

int mqtx_outbox_agree_buckets(struct mqtx_outbox *ob, struct mqtx_err *err)
{
	if (ob->q[MQTX_COL_ORDERING_KEY] == NULL)
		return 0;
	char cls[32], mark[32];
	long long n = (long long)ob->cfg->relay_ordering_buckets;
	snprintf(cls, sizeof(cls), "%ld", (long)ob->lock_class);
	snprintf(mark, sizeof(mark), "%lld", -BUCKETS_MARK_BASE - n);
	const char *p[2] = {cls, mark};
	PGresult *res = PQexecParams(ob->conn, "SELECT pg_advisory_lock_shared($1::int4, $2::int4)", 2, NULL, p, NULL,
				     NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(ob->conn, res, "cannot announce relay.ordering_buckets", err);
	PQclear(res);
	/* taken before looking: of two starting at once, each sees the other */
	char base[32];
	snprintf(base, sizeof(base), "%d", BUCKETS_MARK_BASE);
	const char *q[3] = {cls, mark, base};
	res = PQexecParams(ob->conn,
			   "SELECT DISTINCT 4294967296 - objid::int8 - $3::int8 FROM pg_locks "
			   "WHERE locktype = 'advisory' AND objsubid = 2 AND granted "
			   "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
			   "AND classid::int8 = ($1::int8 & 4294967295) AND objid::int8 <> 4294967296 + $2::int8 "
			   "AND objid::int8 BETWEEN 4294967296 - $3::int8 - 65536 AND 4294967296 - $3::int8 - 1 "
			   "ORDER BY 1 LIMIT 1",
			   3, NULL, q, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(ob->conn, res, "cannot compare relay.ordering_buckets with the running relays",
				    err);
	if (PQntuples(res) > 0) {
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "relay.ordering_buckets is %lld here but %s in a running relay or redeliver of %s; per-key order "
			     "needs the same value in all of them",
			     n, PQgetvalue(res, 0, 0), ob->qualified);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/* ---- heartbeats ---- */

int mqtx_outbox_heartbeat(struct mqtx_outbox *ob, const struct mqtx_heartbeat *hb, struct mqtx_err *err)
{
	if (ob->heartbeat_off)
		return 0;
	char host[256] = "";
	char pid[32], relayed[32], failed[32];
	gethostname(host, sizeof(host) - 1);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(relayed, sizeof(relayed), "%lld", (long long)hb->relayed);
	snprintf(failed, sizeof(failed), "%lld", (long long)hb->failed);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"INSERT INTO %s AS r (relay_id, outbox, host, pid, version, relayed, failed, last_error) "
			"VALUES ($1, $2, $3, $4::int4, $5, $6::int8, $7::int8, $8) ON CONFLICT (relay_id) DO UPDATE SET "
			"last_seen = now(), relayed = EXCLUDED.relayed, failed = EXCLUDED.failed, "
			"last_error = coalesce(EXCLUDED.last_error, r.last_error), "
			"last_batch_at = CASE WHEN $9::bool THEN now() ELSE r.last_batch_at END, "
			"stopped_at = CASE WHEN $10::bool THEN now() ELSE NULL END",
			ob->qrelays);
	const char *p[10] = {hb->relay_id,
			     ob->qualified,
			     host,
			     pid,
			     hb->version,
			     relayed,
			     failed,
			     hb->last_error,
			     hb->batch_done ? "true" : "false",
			     hb->stopping ? "true" : "false"};
	PGresult *res = PQexecParams(ob->conn, sql.data, 10, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42P01") == 0) {
			/* no mqtx_relays table: an adopted outbox without `mqtx init` */
			mqtx_warn("no table %s: relay heartbeats are off (run 'mqtx init' to create it)", ob->qrelays);
			ob->heartbeat_off = true;
			PQclear(res);
			return 0;
		}
		return mqtx_pg_fail(ob->conn, res, "cannot record the relay heartbeat", err);
	}
	PQclear(res);
	return 0;
}
