/* mqtx txpub's SQL (see txpub.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/txpub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"

/* Rows per INSERT statement (7 parameters each, below the 65535 limit). */
#define INSERT_CHUNK 1000
/* Rows looked at per resolve pass. */
#define RESOLVE_LIMIT 10000

struct mqtx_txpub_db {
	PGconn *conn;
	bool owned;
	const struct mqtx_config *cfg;
	char *T; /* "schema"."table" */
	char *L; /* "schema".mqtx_txpub_log */
	char *q[MQTX_COL__COUNT];
};

struct mqtx_txpub_db *mqtx_txpub_db_new(PGconn *conn, const struct mqtx_config *cfg)
{
	struct mqtx_txpub_db *o = mqtx_xcalloc(1, sizeof(*o));
	o->conn = conn;
	o->cfg = cfg;
	char *qs = mqtx_pg_ident(conn, cfg->outbox_schema);
	char *qt = mqtx_pg_ident(conn, cfg->outbox_table);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "%s.%s", qs, qt);
	o->T = mqtx_buf_detach(&b);
	mqtx_buf_printf(&b, "%s.mqtx_txpub_log", qs);
	o->L = mqtx_buf_detach(&b);
	free(qs);
	free(qt);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		if (cfg->outbox_columns[c] != NULL && cfg->outbox_columns[c][0] != '\0')
			o->q[c] = mqtx_pg_ident(conn, cfg->outbox_columns[c]);
	return o;
}

struct mqtx_txpub_db *mqtx_txpub_db_connect(const struct mqtx_config *cfg, struct mqtx_err *err)
{
	PGconn *conn = mqtx_pg_connect(cfg, "mqtx txpub", err);
	if (conn == NULL)
		return NULL;
	struct mqtx_txpub_db *o = mqtx_txpub_db_new(conn, cfg);
	o->owned = true;
	return o;
}

void mqtx_txpub_db_free(struct mqtx_txpub_db *o)
{
	if (o == NULL)
		return;
	if (o->owned)
		PQfinish(o->conn);
	free(o->T);
	free(o->L);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		free(o->q[c]);
	free(o);
}

bool mqtx_txpub_db_has_col(const struct mqtx_txpub_db *o, enum mqtx_col c)
{
	return o->q[c] != NULL;
}

const char *mqtx_txpub_db_log_table(const struct mqtx_txpub_db *o)
{
	return o->L;
}

bool mqtx_txpub_db_idle(const struct mqtx_txpub_db *o)
{
	return PQtransactionStatus(o->conn) == PQTRANS_IDLE;
}

bool mqtx_txpub_db_connected(const struct mqtx_txpub_db *o)
{
	return PQstatus(o->conn) == CONNECTION_OK;
}

int mqtx_txpub_db_begin(struct mqtx_txpub_db *o, bool skip_notify, struct mqtx_err *err)
{
	return mqtx_pg_exec(o->conn, skip_notify ? "BEGIN; SET LOCAL mqtx.skip_notify = on" : "BEGIN", err);
}

int mqtx_txpub_db_commit(struct mqtx_txpub_db *o, struct mqtx_err *err)
{
	return mqtx_pg_exec(o->conn, "COMMIT", err);
}

void mqtx_txpub_db_rollback(struct mqtx_txpub_db *o)
{
	if (PQtransactionStatus(o->conn) != PQTRANS_IDLE)
		PQclear(PQexec(o->conn, "ROLLBACK"));
}

static int exec_params(struct mqtx_txpub_db *o, const char *sql, int n, const char *const *v, ExecStatusType want,
		       const char *doing, PGresult **out, struct mqtx_err *err)
{
	PGresult *res = PQexecParams(o->conn, sql, n, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != want)
		return mqtx_pg_fail(o->conn, res, doing, err);
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

/* JSON array of the given keys, for "key IN (SELECT jsonb_array_elements_text($1))". */
static char *keys_json(const char *const *keys, size_t n)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_addc(&b, '[');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			mqtx_buf_addc(&b, ',');
		mqtx_json_add_cstr(&b, keys[i]);
	}
	mqtx_buf_addc(&b, ']');
	return mqtx_buf_detach(&b);
}

/* ---- outbox rows by key ---- */

int mqtx_txpub_db_statuses(struct mqtx_txpub_db *o, const char *const *keys, size_t n, bool lock, char (*out)[16],
			   struct mqtx_err *err)
{
	char *json = keys_json(keys, n);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT t.%s::text, t.%s::text FROM %s t WHERE t.%s IN (SELECT jsonb_array_elements_text($1::jsonb))%s",
			o->q[MQTX_COL_KEY], o->q[MQTX_COL_STATUS], o->T, o->q[MQTX_COL_KEY],
			lock ? " FOR UPDATE OF t" : "");
	const char *p[1] = {json};
	PGresult *res = NULL;
	int rc = exec_params(o, sql.data, 1, p, PGRES_TUPLES_OK, "cannot look up keys in the outbox", &res, err);
	mqtx_buf_free(&sql);
	free(json);
	if (rc < 0)
		return -1;
	struct mqtx_keyidx *ki = mqtx_xcalloc(n + 1, sizeof(*ki));
	for (size_t i = 0; i < n; i++) {
		out[i][0] = '\0';
		ki[i].key = keys[i];
		ki[i].i = i;
	}
	qsort(ki, n, sizeof(*ki), mqtx_keyidx_cmp);
	for (int r = 0; r < PQntuples(res); r++) {
		const char *want = PQgetvalue(res, r, 0);
		/* first entry with this key, then all equal ones */
		size_t lo = 0, hi = n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (strcmp(ki[mid].key, want) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t j = lo; j < n && strcmp(ki[j].key, want) == 0; j++)
			snprintf(out[ki[j].i], 16, "%s", PQgetvalue(res, r, 1));
	}
	free(ki);
	PQclear(res);
	return 0;
}

/* Headers as the JSON object the outbox column holds. */
static int headers_json(const struct mqtx_msg *m, const char *where, struct mqtx_buf *b, struct mqtx_err *err)
{
	mqtx_buf_addc(b, '{');
	for (size_t i = 0; i < m->n_headers; i++) {
		if (memchr(m->headers[i].value, '\0', m->headers[i].value_len) != NULL)
			return mqtx_err_set(err, MQTX_E_INPUT,
					    "%s: header '%s' contains a NUL byte, which the outbox cannot store", where,
					    m->headers[i].name);
		if (i > 0)
			mqtx_buf_addc(b, ',');
		mqtx_json_add_cstr(b, m->headers[i].name);
		mqtx_buf_addc(b, ':');
		mqtx_json_add_str(b, m->headers[i].value, m->headers[i].value_len);
	}
	mqtx_buf_addc(b, '}');
	return 0;
}

static const enum mqtx_col opt_cols[] = {MQTX_COL_ROUTING_KEY, MQTX_COL_ORDERING_KEY, MQTX_COL_HEADERS,
					 MQTX_COL_CONTENT_TYPE};

/* What the table cannot hold is an error before anything is written. */
static int check_rows(struct mqtx_txpub_db *o, const struct mqtx_msg *msgs, const char *const *where, const size_t *idx,
		      size_t cnt, struct mqtx_err *err)
{
	static const char *const names[] = {"routing_key", "ordering_key", "headers", "content_type"};
	bool bytea = strcmp(o->cfg->outbox_payload_type, "bytea") == 0;
	for (size_t k = 0; k < cnt; k++) {
		const struct mqtx_msg *m = &msgs[idx[k]];
		const void *vals[] = {m->routing_key, m->ordering_key, m->n_headers > 0 ? "" : NULL, m->content_type};
		for (size_t c = 0; c < 4; c++)
			if (vals[c] != NULL && o->q[opt_cols[c]] == NULL)
				return mqtx_err_set(err, MQTX_E_CONFIG,
						    "%s: the message has a %s, but the outbox has no column for it (outbox.columns.%s is empty)",
						    where[idx[k]], names[c], names[c]);
		if (!bytea && memchr(m->payload, '\0', m->payload_len) != NULL)
			return mqtx_err_set(err, MQTX_E_INPUT,
					    "%s: the payload contains a NUL byte, which outbox.payload_type %s cannot store",
					    where[idx[k]], o->cfg->outbox_payload_type);
	}
	return 0;
}

/* Half messages leave a key that is in the outbox as it is. ON CONFLICT
 * DO NOTHING does that where the key alone is unique; a partitioned
 * outbox has its key unique with created_at only, so the keys are locked
 * (transaction advisory locks, in key order: a concurrent --prepare of
 * the same key waits until this one commits) and looked up again. Leaves
 * in keep[0..*nkeep) the entries of idx to insert. */
static int skip_existing(struct mqtx_txpub_db *o, const struct mqtx_msg *msgs, const size_t *idx, size_t rows,
			 size_t *keep, size_t *nkeep, struct mqtx_err *err)
{
	const char **keys = mqtx_xcalloc(rows + 1, sizeof(char *));
	size_t nk = 0;
	for (size_t r = 0; r < rows; r++)
		if (msgs[idx[r]].key != NULL)
			keys[nk++] = msgs[idx[r]].key;
	char *json = keys_json(keys, nk);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT count(pg_advisory_xact_lock(hashtextextended($2::text || s.k, 0))) FROM (SELECT DISTINCT k "
			"FROM jsonb_array_elements_text($1::jsonb) k ORDER BY 1 OFFSET 0) s");
	const char *p[2] = {json, o->T};
	int rc = exec_params(o, sql.data, 2, p, PGRES_TUPLES_OK, "cannot lock the half messages' keys", NULL, err);
	mqtx_buf_free(&sql);
	free(json);
	char(*found)[16] = mqtx_xcalloc(nk + 1, 16);
	if (rc == 0)
		rc = mqtx_txpub_db_statuses(o, keys, nk, false, found, err);
	*nkeep = 0;
	for (size_t r = 0, k = 0; rc == 0 && r < rows; r++) {
		bool exists = msgs[idx[r]].key != NULL && found[k++][0] != '\0';
		if (!exists)
			keep[(*nkeep)++] = idx[r];
	}
	free(found);
	free(keys);
	return rc;
}

/* One INSERT of msgs[idx[0..rows)]. */
static int insert_chunk(struct mqtx_txpub_db *o, const struct mqtx_msg *msgs, const char *const *where,
			const size_t *idx, size_t rows, enum mqtx_txpub_row kind, struct mqtx_err *err)
{
	size_t *keep = NULL;
	if (kind == MQTX_TXPUB_ROW_PREPARED) {
		size_t n = 0;
		keep = mqtx_xcalloc(rows + 1, sizeof(size_t));
		int skipped = skip_existing(o, msgs, idx, rows, keep, &n, err);
		if (skipped < 0 || n == 0) {
			free(keep);
			return skipped;
		}
		idx = keep;
		rows = n;
	}
	bool bytea = strcmp(o->cfg->outbox_payload_type, "bytea") == 0;
	const char *status_sql = kind == MQTX_TXPUB_ROW_PREPARED ? "'prepared'" : "'pending'";
	const char *avail_sql = kind == MQTX_TXPUB_ROW_PREPARED ? "now()" : "'infinity'";
	int per = 3, rc = 0;
	for (size_t c = 0; c < 4; c++)
		per += o->q[opt_cols[c]] != NULL;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "INSERT INTO %s (%s, %s", o->T, o->q[MQTX_COL_KEY], o->q[MQTX_COL_DESTINATION]);
	for (size_t c = 0; c < 4; c++)
		if (o->q[opt_cols[c]] != NULL)
			mqtx_buf_printf(&sql, ", %s", o->q[opt_cols[c]]);
	mqtx_buf_printf(&sql, ", %s, %s, %s) VALUES ", o->q[MQTX_COL_PAYLOAD], o->q[MQTX_COL_STATUS],
			o->q[MQTX_COL_AVAILABLE_AT]);
	size_t np = rows * (size_t)per;
	const char **v = mqtx_xcalloc(np + 1, sizeof(char *));
	int *lens = mqtx_xcalloc(np + 1, sizeof(int));
	int *fmts = mqtx_xcalloc(np + 1, sizeof(int));
	char **hj = mqtx_xcalloc(rows + 1, sizeof(char *));
	size_t p = 0;
	for (size_t r = 0; r < rows && rc == 0; r++) {
		const struct mqtx_msg *m = &msgs[idx[r]];
		mqtx_buf_printf(&sql, "%s(", r > 0 ? ", " : "");
		v[p++] = m->key;
		v[p++] = m->destination;
		const char *ov[] = {m->routing_key, m->ordering_key, NULL, m->content_type};
		if (m->n_headers > 0) {
			struct mqtx_buf h = MQTX_BUF_INIT;
			rc = headers_json(m, where[idx[r]], &h, err);
			hj[r] = mqtx_buf_detach(&h);
			ov[2] = hj[r];
		}
		for (size_t c = 0; c < 4; c++)
			if (o->q[opt_cols[c]] != NULL)
				v[p++] = ov[c];
		lens[p] = (int)m->payload_len;
		fmts[p] = bytea ? 1 : 0;
		v[p++] = m->payload;
		size_t first = p - (size_t)per + 1;
		mqtx_buf_printf(&sql, "$%zu", first);
		for (size_t j = first + 1; j <= p; j++)
			mqtx_buf_printf(&sql, ", $%zu", j);
		mqtx_buf_printf(&sql, ", %s, %s)", status_sql, avail_sql);
	}
	if (kind == MQTX_TXPUB_ROW_PREPARED)
		mqtx_buf_adds(&sql, " ON CONFLICT DO NOTHING");
	if (rc == 0) {
		PGresult *res = PQexecParams(o->conn, sql.data, (int)p, NULL, v, lens, fmts, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = mqtx_pg_fail(o->conn, res, "cannot insert into the outbox", err);
		else
			PQclear(res);
	}
	for (size_t r = 0; r < rows; r++)
		free(hj[r]);
	free(hj);
	free(v);
	free(lens);
	free(fmts);
	free(keep);
	mqtx_buf_free(&sql);
	return rc;
}

int mqtx_txpub_db_insert(struct mqtx_txpub_db *o, const struct mqtx_msg *msgs, const char *const *where,
			 const size_t *idx, size_t n, enum mqtx_txpub_row kind, struct mqtx_err *err)
{
	if (check_rows(o, msgs, where, idx, n, err) < 0)
		return -1;
	for (size_t base = 0; base < n; base += INSERT_CHUNK) {
		size_t rows = n - base < INSERT_CHUNK ? n - base : INSERT_CHUNK;
		if (insert_chunk(o, msgs, where, idx + base, rows, kind, err) < 0)
			return -1;
	}
	return 0;
}

int mqtx_txpub_db_finish_half(struct mqtx_txpub_db *o, const char *const *keys, size_t n, bool commit,
			      struct mqtx_err *err)
{
	char *json = keys_json(keys, n);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"UPDATE %s t SET %s = '%s', %s = now() "
			"WHERE t.%s IN (SELECT jsonb_array_elements_text($1::jsonb)) AND t.%s = 'prepared'",
			o->T, o->q[MQTX_COL_STATUS], commit ? "pending" : "rolled_back", o->q[MQTX_COL_AVAILABLE_AT],
			o->q[MQTX_COL_KEY], o->q[MQTX_COL_STATUS]);
	const char *p[1] = {json};
	int r = exec_params(o, sql.data, 1, p, PGRES_COMMAND_OK,
			    commit ? "cannot commit half messages" : "cannot roll back half messages", NULL, err);
	mqtx_buf_free(&sql);
	free(json);
	return r;
}

/* ---- the last-resource commit ---- */

int mqtx_txpub_db_lock_class(struct mqtx_txpub_db *o, int32_t *out, struct mqtx_err *err)
{
	const char *p[1] = {o->L};
	PGresult *res = NULL;
	if (exec_params(o, "SELECT to_regclass($1)::oid::int8", 1, p, PGRES_TUPLES_OK,
			"cannot look up the coordinator table", &res, err) < 0)
		return -1;
	bool missing = PQgetisnull(res, 0, 0);
	if (!missing)
		*out = (int32_t)(uint32_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (missing)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "table %s does not exist: run 'mqtx init' (it creates the coordinator table)",
				    o->L);
	return 0;
}

int mqtx_txpub_db_try_lock(struct mqtx_txpub_db *o, int32_t cls, const char *gid, bool unlock, struct mqtx_err *err)
{
	char c[16];
	snprintf(c, sizeof(c), "%ld", (long)cls);
	const char *p[2] = {c, gid};
	PGresult *res = NULL;
	const char *sql = unlock ? "SELECT pg_advisory_unlock($1::int4, hashtext($2))"
				 : "SELECT pg_try_advisory_lock($1::int4, hashtext($2))";
	if (exec_params(o, sql, 2, p, PGRES_TUPLES_OK, "cannot take an advisory lock", &res, err) < 0)
		return -1;
	int got = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return got;
}

int mqtx_txpub_db_is_prepared(struct mqtx_txpub_db *o, const char *gid, struct mqtx_err *err)
{
	const char *p[1] = {gid};
	PGresult *res = NULL;
	if (exec_params(o, "SELECT count(*) FROM pg_catalog.pg_prepared_xacts WHERE gid = $1", 1, p, PGRES_TUPLES_OK,
			"cannot look at prepared transactions", &res, err) < 0)
		return -1;
	int prepared = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	return prepared;
}

int mqtx_txpub_db_run_user_sql(struct mqtx_txpub_db *o, const char *sql, struct mqtx_err *err)
{
	PGconn *A = o->conn;
	/* parked rows need no wake-up, and a transaction that NOTIFYs cannot be prepared */
	if (mqtx_pg_exec(A, "BEGIN; SET LOCAL mqtx.skip_notify = on; SET LOCAL search_path TO DEFAULT", err) < 0)
		return -1;
	PGresult *res = PQexec(A, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
		PQclear(res);
		PQputCopyEnd(A, "COPY is not supported by txpub --sql");
		while ((res = PQgetResult(A)) != NULL)
			PQclear(res);
		mqtx_txpub_db_rollback(o);
		return mqtx_err_set(err, MQTX_E_INPUT,
				    "the SQL uses COPY FROM STDIN or TO STDOUT, which txpub --sql cannot serve");
	}
	if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
		int rc = mqtx_pg_fail(A, res, "the SQL failed", err);
		mqtx_txpub_db_rollback(o);
		return rc;
	}
	PQclear(res);
	PGTransactionStatusType ts = PQtransactionStatus(A);
	if (ts == PQTRANS_IDLE)
		return mqtx_err_set(err, MQTX_E_INPUT,
				    "the SQL ended the transaction itself (COMMIT, ROLLBACK or END in it?): what it did before that "
				    "may be committed; nothing was published");
	if (ts != PQTRANS_INTRANS) {
		mqtx_txpub_db_rollback(o);
		return mqtx_err_set(err, MQTX_E_DB, "the SQL left the transaction in a failed state");
	}
	return 0;
}

int mqtx_txpub_db_park_and_prepare(struct mqtx_txpub_db *o, const struct mqtx_msg *msgs, const char *const *where,
				   size_t n, const char *gid, struct mqtx_err *err)
{
	PGconn *A = o->conn;
	size_t *idx = mqtx_xcalloc(n + 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	int rc = mqtx_pg_exec(A, "SET LOCAL search_path = pg_catalog", err);
	if (rc == 0)
		rc = mqtx_txpub_db_insert(o, msgs, where, idx, n, MQTX_TXPUB_ROW_PARKED, err);
	free(idx);
	if (rc < 0) {
		mqtx_txpub_db_rollback(o);
		return -1;
	}
	char *lit = PQescapeLiteral(A, gid, strlen(gid));
	struct mqtx_buf q = MQTX_BUF_INIT;
	mqtx_buf_printf(&q, "PREPARE TRANSACTION %s", lit != NULL ? lit : "''");
	PQfreemem(lit);
	rc = mqtx_pg_exec(A, q.data, err);
	mqtx_buf_free(&q);
	if (rc < 0) {
		mqtx_txpub_db_rollback(o);
		if (strstr(err->msg, "max_prepared_transactions") != NULL)
			mqtx_err_prefix(err,
					"txpub --sql needs PREPARE TRANSACTION (set max_prepared_transactions > 0 in postgresql.conf)");
		else if (strstr(err->msg, "NOTIFY") != NULL)
			mqtx_err_prefix(err,
					"the SQL (or an outbox trigger older than this mqtx: run 'mqtx init' again) sent a NOTIFY, "
					"which a prepared transaction cannot");
		return -1;
	}
	return 0;
}

/* COMMIT PREPARED / ROLLBACK PREPARED: the gid can only be a literal. */
int mqtx_txpub_db_finish_prepared(struct mqtx_txpub_db *o, const char *gid, bool commit, struct mqtx_err *err)
{
	PGconn *conn = o->conn;
	char *lit = PQescapeLiteral(conn, gid, strlen(gid));
	if (lit == NULL)
		return mqtx_pg_fail(conn, NULL, "cannot quote the transaction id", err);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "%s PREPARED %s", commit ? "COMMIT" : "ROLLBACK", lit);
	PQfreemem(lit);
	PGresult *res = PQexec(conn, sql.data);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		char doing[300];
		snprintf(doing, sizeof(doing), "cannot %s prepared transaction '%s'", commit ? "commit" : "roll back",
			 gid);
		return mqtx_pg_fail(conn, res, doing, err);
	}
	PQclear(res);
	return 0;
}

int mqtx_txpub_db_write_log(struct mqtx_txpub_db *o, const char *gid, const char *key, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"INSERT INTO %s (gid, idempotency_key) VALUES ($1, $2) ON CONFLICT (gid) DO UPDATE "
			"SET idempotency_key = EXCLUDED.idempotency_key, confirmed_at = now()",
			o->L);
	const char *p[2] = {gid, key};
	int rc = exec_params(o, sql.data, 2, p, PGRES_COMMAND_OK, "cannot write the coordinator record", NULL, err);
	mqtx_buf_free(&sql);
	return rc;
}

int mqtx_txpub_db_read_log(struct mqtx_txpub_db *o, const char *gid, char *confirmed_at, size_t size,
			   struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT confirmed_at::text FROM %s WHERE gid = $1", o->L);
	const char *p[1] = {gid};
	PGresult *res = NULL;
	int rc = exec_params(o, sql.data, 1, p, PGRES_TUPLES_OK, "cannot read the coordinator record", &res, err);
	mqtx_buf_free(&sql);
	if (rc < 0)
		return -1;
	int found = PQntuples(res) > 0;
	snprintf(confirmed_at, size, "%s", found ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return found;
}

int mqtx_txpub_db_delete_log(struct mqtx_txpub_db *o, const char *gid, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "DELETE FROM %s WHERE gid = $1", o->L);
	const char *p[1] = {gid};
	int rc = exec_params(o, sql.data, 1, p, PGRES_COMMAND_OK, "cannot delete the coordinator record", NULL, err);
	mqtx_buf_free(&sql);
	return rc;
}

int mqtx_txpub_db_settle(struct mqtx_txpub_db *o, const char *const *sent, size_t ns, const char *const *rest,
			 size_t nr, const char *gid, int64_t *marked, int64_t *handed, struct mqtx_err *err)
{
	const char *T = o->T, *st = o->q[MQTX_COL_STATUS], *av = o->q[MQTX_COL_AVAILABLE_AT], *k = o->q[MQTX_COL_KEY];
	const char *att = o->q[MQTX_COL_ATTEMPTS], *sa = o->q[MQTX_COL_SENT_AT];
	char *sj = keys_json(sent, ns), *rj = keys_json(rest, nr);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "WITH s AS (UPDATE %s t SET %s = 'sent', %s = now(), %s = t.%s + 1", T, st, av, att, att);
	if (sa != NULL)
		mqtx_buf_printf(&sql, ", %s = now()", sa);
	mqtx_buf_printf(&sql,
			" WHERE t.%s IN (SELECT jsonb_array_elements_text($1::jsonb)) AND t.%s = 'pending' AND t.%s = 'infinity' RETURNING 1), "
			"u AS (UPDATE %s t SET %s = now() WHERE t.%s IN (SELECT jsonb_array_elements_text($2::jsonb)) "
			"AND t.%s = 'pending' AND t.%s = 'infinity' RETURNING 1), "
			"d AS (DELETE FROM %s WHERE gid = $3 RETURNING 1) "
			"SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM u), (SELECT count(*) FROM d)",
			k, st, av, T, av, k, st, av, o->L);
	const char *p[3] = {sj, rj, gid};
	PGresult *res = NULL;
	int rc = exec_params(o, sql.data, 3, p, PGRES_TUPLES_OK, "cannot settle the outbox rows", &res, err);
	mqtx_buf_free(&sql);
	free(sj);
	free(rj);
	if (rc < 0)
		return -1;
	*marked = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*handed = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return 0;
}

long mqtx_txpub_db_unpark(struct mqtx_txpub_db *o, const char *xid_or_key, bool by_key, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"UPDATE %s t SET %s = now() WHERE t.%s = 'pending' AND t.%s = 'infinity' AND t.xmin = ", o->T,
			o->q[MQTX_COL_AVAILABLE_AT], o->q[MQTX_COL_STATUS], o->q[MQTX_COL_AVAILABLE_AT]);
	if (by_key)
		mqtx_buf_printf(&sql, "(SELECT k.xmin FROM %s k WHERE k.%s = $1 LIMIT 1)", o->T, o->q[MQTX_COL_KEY]);
	else
		mqtx_buf_adds(&sql, "$1::text::xid");
	const char *p[1] = {xid_or_key};
	PGresult *res = NULL;
	int rc = exec_params(o, sql.data, 1, p, PGRES_COMMAND_OK, "cannot hand parked messages to the relay", &res,
			     err);
	mqtx_buf_free(&sql);
	if (rc < 0)
		return -1;
	long n = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return n;
}

void mqtx_txpub_db_notify_relays(struct mqtx_txpub_db *o)
{
	const char *p[2] = {o->cfg->outbox_notify_channel, o->cfg->outbox_table};
	PQclear(PQexecParams(o->conn, "SELECT pg_catalog.pg_notify($1, $2)", 2, NULL, p, NULL, NULL, 0));
}

/* ---- what is in doubt ---- */

int mqtx_txpub_db_halves(struct mqtx_txpub_db *o, int64_t after_ms, bool details,
			 int (*fn)(void *ctx, const struct mqtx_half_row *row, struct mqtx_err *err), void *ctx,
			 struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT t.%s::int8, t.%s::text, (extract(epoch FROM now() - t.%s) * 1000)::int8",
			o->q[MQTX_COL_ID], o->q[MQTX_COL_KEY], o->q[MQTX_COL_AVAILABLE_AT]);
	if (details) {
		if (o->q[MQTX_COL_HEADERS] != NULL)
			mqtx_buf_printf(&sql, ", t.%s::text", o->q[MQTX_COL_HEADERS]);
		else
			mqtx_buf_adds(&sql, ", NULL::text");
		mqtx_buf_printf(&sql, ", t.%s::text", o->q[MQTX_COL_DESTINATION]);
		if (o->q[MQTX_COL_ROUTING_KEY] != NULL)
			mqtx_buf_printf(&sql, ", t.%s::text", o->q[MQTX_COL_ROUTING_KEY]);
		else
			mqtx_buf_adds(&sql, ", NULL::text");
	}
	mqtx_buf_printf(&sql,
			" FROM %s t WHERE t.%s = 'prepared' AND t.%s <= now() - $1::int8 * interval '1 millisecond' "
			"ORDER BY t.%s LIMIT %d",
			o->T, o->q[MQTX_COL_STATUS], o->q[MQTX_COL_AVAILABLE_AT], o->q[MQTX_COL_ID], RESOLVE_LIMIT);
	char after[32];
	snprintf(after, sizeof(after), "%lld", (long long)after_ms);
	const char *p[1] = {after};
	PGresult *rows = NULL;
	int rc = exec_params(o, sql.data, 1, p, PGRES_TUPLES_OK, "cannot look for prepared half messages", &rows, err);
	mqtx_buf_free(&sql);
	if (rc < 0)
		return -1;
	for (int r = 0; r < PQntuples(rows) && rc == 0; r++) {
#define V(k) (PQgetisnull(rows, r, k) ? NULL : PQgetvalue(rows, r, k))
		struct mqtx_half_row h = {
			.id = V(0),
			.key = V(1),
			.age_ms = strtoll(PQgetvalue(rows, r, 2), NULL, 10),
			.headers = details ? V(3) : NULL,
			.destination = details ? V(4) : NULL,
			.routing_key = details ? V(5) : NULL,
		};
#undef V
		rc = fn(ctx, &h, err);
	}
	PQclear(rows);
	return rc;
}

int mqtx_txpub_db_resolve_half(struct mqtx_txpub_db *o, const char *id, bool commit, bool *changed,
			       struct mqtx_err *err)
{
	struct mqtx_buf upd = MQTX_BUF_INIT;
	mqtx_buf_printf(&upd, "UPDATE %s t SET %s = $2, %s = now() WHERE t.%s = $1::int8 AND t.%s = 'prepared'", o->T,
			o->q[MQTX_COL_STATUS], o->q[MQTX_COL_AVAILABLE_AT], o->q[MQTX_COL_ID], o->q[MQTX_COL_STATUS]);
	const char *v[2] = {id, commit ? "pending" : "rolled_back"};
	PGresult *res = NULL;
	int rc = exec_params(o, upd.data, 2, v, PGRES_COMMAND_OK, "cannot resolve a half message", &res, err);
	mqtx_buf_free(&upd);
	if (rc < 0)
		return -1;
	*changed = strcmp(PQcmdTuples(res), "1") == 0;
	PQclear(res);
	return 0;
}

int mqtx_txpub_db_check_sql(struct mqtx_txpub_db *o, const char *key, const char *headers, char **answer, char *why,
			    size_t wl, struct mqtx_err *err)
{
	PGconn *conn = o->conn;
	char tmo[32];
	snprintf(tmo, sizeof(tmo), "%lld", (long long)o->cfg->txpub_check_timeout_ms);
	*answer = NULL;
	if (mqtx_pg_exec(conn, "BEGIN; SET LOCAL search_path TO DEFAULT", err) < 0)
		return -1;
	PGresult *res = PQexecParams(conn, "SELECT pg_catalog.set_config('statement_timeout', $1, true)", 1, NULL,
				     (const char *[]){tmo}, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(conn, res, "cannot set statement_timeout", err);
		mqtx_txpub_db_rollback(o);
		return -1;
	}
	PQclear(res);
	static const Oid types[2] = {25, 25}; /* text: an unused $2 is fine */
	const char *p[2] = {key, headers};
	res = PQexecParams(conn, o->cfg->txpub_check_sql, 2, types, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		struct mqtx_err e;
		mqtx_pg_fail(conn, PQresultStatus(res) == PGRES_COMMAND_OK ? NULL : res, "txpub.check_sql failed", &e);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			PQclear(res);
			snprintf(e.msg, sizeof(e.msg), "txpub.check_sql returned no rows (it must be a SELECT)");
		}
		snprintf(why, wl, "%.500s", e.msg);
		mqtx_txpub_db_rollback(o);
		if (PQstatus(conn) != CONNECTION_OK)
			return mqtx_err_retry(err, MQTX_E_DB, "%s", e.msg);
		return 0;
	}
	if (PQntuples(res) < 1 || PQnfields(res) < 1 || PQgetisnull(res, 0, 0))
		snprintf(why, wl, "txpub.check_sql returned no value");
	else
		*answer = mqtx_xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	mqtx_txpub_db_rollback(o);
	return 0;
}

int mqtx_txpub_db_xacts(struct mqtx_txpub_db *o, bool with_log, int32_t cls,
			int (*fn)(void *ctx, const struct mqtx_xact_row *row, struct mqtx_err *err), void *ctx,
			struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	char clsbuf[16];
	snprintf(clsbuf, sizeof(clsbuf), "%lu", (unsigned long)(uint32_t)cls);
	if (with_log)
		mqtx_buf_printf(&sql,
				"SELECT p.gid, p.transaction::text, (extract(epoch FROM now() - p.prepared) * 1000)::int8, "
				"l.confirmed_at IS NOT NULL, "
				"EXISTS (SELECT 1 FROM pg_catalog.pg_locks k WHERE k.locktype = 'advisory' AND k.classid = $1::oid "
				"AND k.objid = hashtext(p.gid)::oid AND k.objsubid = 2 AND k.granted) "
				"FROM pg_catalog.pg_prepared_xacts p LEFT JOIN %s l ON l.gid = p.gid "
				"WHERE p.gid LIKE 'mqtx:%%' AND p.database = current_database() ORDER BY p.prepared",
				o->L);
	else
		mqtx_buf_adds(&sql,
			      "SELECT p.gid, p.transaction::text, (extract(epoch FROM now() - p.prepared) * 1000)::int8, "
			      "false, false FROM pg_catalog.pg_prepared_xacts p WHERE p.gid LIKE 'mqtx:%' AND $1::text IS NOT NULL "
			      "AND p.database = current_database() ORDER BY p.prepared");
	const char *p[1] = {clsbuf};
	PGresult *rows = NULL;
	int rc = exec_params(o, sql.data, 1, p, PGRES_TUPLES_OK, "cannot list prepared transactions", &rows, err);
	mqtx_buf_free(&sql);
	if (rc < 0)
		return -1;
	for (int r = 0; r < PQntuples(rows) && rc == 0; r++) {
		struct mqtx_xact_row x = {
			.gid = PQgetvalue(rows, r, 0),
			.xid = PQgetvalue(rows, r, 1),
			.age_ms = strtoll(PQgetvalue(rows, r, 2), NULL, 10),
			.logged = PQgetvalue(rows, r, 3)[0] == 't',
			.busy = PQgetvalue(rows, r, 4)[0] == 't',
		};
		rc = fn(ctx, &x, err);
	}
	PQclear(rows);
	return rc;
}

int mqtx_txpub_db_orphan_logs(struct mqtx_txpub_db *o,
			      int (*fn)(void *ctx, const char *gid, const char *key, struct mqtx_err *err), void *ctx,
			      struct mqtx_err *err)
{
	struct mqtx_buf q = MQTX_BUF_INIT;
	mqtx_buf_printf(&q,
			"SELECT l.gid, l.idempotency_key FROM %s l WHERE NOT EXISTS "
			"(SELECT 1 FROM pg_catalog.pg_prepared_xacts p WHERE p.gid = l.gid)",
			o->L);
	PGresult *rows = NULL;
	int rc = exec_params(o, q.data, 0, NULL, PGRES_TUPLES_OK, "cannot read the coordinator records", &rows, err);
	mqtx_buf_free(&q);
	if (rc < 0)
		return -1;
	for (int r = 0; r < PQntuples(rows) && rc == 0; r++)
		rc = fn(ctx, PQgetvalue(rows, r, 0), PQgetvalue(rows, r, 1), err);
	PQclear(rows);
	return rc;
}
