/* dedupe-audit reader for a consumer's inbox (processed-messages) table:
 * every row is one message the consumer processed. The table and its
 * columns come from audit.inbox_*; the rows are streamed out with
 * COPY ... TO STDOUT (in processing order when a time column is given) on
 * a connection of their own, which may be another database.
 *
 * Also reports the table's idempotency guard: a unique constraint or
 * unique index on the key column alone. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/source.h"
#include "base/log.h"
#include "db/pg.h"
#include "base/util.h"

enum { C_KEY, C_ID, C_TS, C_OKEY, C__COUNT };
static const char *const col_keys[C__COUNT] = {"audit.inbox_key_column", "audit.inbox_id_column", "audit.inbox_ts_column",
					       "audit.inbox_ordering_key_column"};

static bool set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* Checks the table and the mapped columns; fills types[] (format_type). */
static int look_up(PGconn *conn, const char *schema, const char *table, const char *const *cols, char **types,
		   const char *qualified, struct mqtx_err *err)
{
	const char *p[2] = {schema, table};
	PGresult *res = PQexecParams(conn,
				     "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcategory::text "
				     "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
				     "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
				     "JOIN pg_type t ON t.oid = a.atttypid "
				     "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
				     2, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look up the inbox table", err);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return mqtx_err_set(err, MQTX_E_CONFIG, "inbox table %s does not exist (audit.inbox_schema, audit.inbox_table)",
				    qualified);
	}
	for (int c = 0; c < C__COUNT; c++) {
		if (!set(cols[c]))
			continue;
		int found = -1;
		for (int i = 0; i < PQntuples(res); i++)
			if (strcmp(PQgetvalue(res, i, 0), cols[c]) == 0)
				found = i;
		if (found < 0) {
			PQclear(res);
			return mqtx_err_set(err, MQTX_E_CONFIG, "inbox table %s has no column '%s' (%s)", qualified, cols[c],
					    col_keys[c]);
		}
		types[c] = mqtx_xstrdup(PQgetvalue(res, found, 1));
		const char *cat = PQgetvalue(res, found, 2);
		if (c == C_TS && strcmp(cat, "D") != 0) {
			int rc = mqtx_err_set(err, MQTX_E_CONFIG,
					      "inbox column '%s' (audit.inbox_ts_column) is of type %s; expected a date/time type",
					      cols[c], types[c]);
			PQclear(res);
			return rc;
		}
		if (c == C_ID && strcmp(cat, "N") != 0 && strcmp(cat, "S") != 0) {
			int rc = mqtx_err_set(err, MQTX_E_CONFIG,
					      "inbox column '%s' (audit.inbox_id_column) is of type %s; expected a number (the outbox id)",
					      cols[c], types[c]);
			PQclear(res);
			return rc;
		}
	}
	PQclear(res);
	return 0;
}

/* A unique constraint, primary key or unique index on the key column alone
 * (and for every row: not partial, not an expression). */
static int uniqueness(PGconn *conn, const char *schema, const char *table, const char *column,
		      struct mqtx_audit_report *rep, struct mqtx_err *err)
{
	const char *p[3] = {schema, table, column};
	PGresult *res = PQexecParams(
		conn,
		"SELECT CASE con.contype WHEN 'p' THEN 'primary key ' WHEN 'u' THEN 'unique constraint ' ELSE 'unique index ' END "
		"|| coalesce(con.conname, ic.relname)::text "
		"FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
		"JOIN pg_class ic ON ic.oid = i.indexrelid "
		"JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $3 "
		"LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u') "
		"WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL "
		"AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum "
		"ORDER BY con.contype NULLS LAST, 1 LIMIT 1",
		3, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look at the inbox table's indexes", err);
	rep->table_unique = PQntuples(res) == 1;
	if (rep->table_unique)
		snprintf(rep->table_unique_by, sizeof(rep->table_unique_by), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

int audit_read_inbox(struct audit_ctx *c, const char *url, const char *table, struct mqtx_err *err)
{
	const struct mqtx_config *cfg = c->cfg;
	struct mqtx_config tmp = *cfg; /* shallow: only the URL differs */
	const char *cols[C__COUNT] = {cfg->audit_inbox_key_column, cfg->audit_inbox_id_column, cfg->audit_inbox_ts_column,
				      cfg->audit_inbox_ordering_key_column};
	char *types[C__COUNT] = {0};
	char *q[C__COUNT] = {0};
	PGconn *conn = NULL;
	int rc = -1;
	struct mqtx_buf b = MQTX_BUF_INIT;

	c->rep->kind = "inbox";
	c->rep->position = "row";
	if (table == NULL)
		table = cfg->audit_inbox_table;
	if (!set(table))
		return mqtx_err_set(err, MQTX_E_CONFIG, "no inbox table: set audit.inbox_table (or use --source inbox:TABLE)");
	if (!set(cols[C_KEY]))
		return mqtx_err_set(err, MQTX_E_CONFIG, "audit.inbox_key_column must name the key column");
	if (url != NULL) {
		tmp.database_url = (char *)url;
		tmp.database_password_file = NULL;
	} else if (set(cfg->audit_inbox_database_url)) {
		tmp.database_url = cfg->audit_inbox_database_url;
		tmp.database_password_file = NULL;
	}
	conn = mqtx_pg_connect(&tmp, "mqtx dedupe-audit (inbox)", err);
	if (conn == NULL)
		return -1;
	char *qs = mqtx_pg_ident_checked(conn, cfg->audit_inbox_schema, "audit.inbox_schema", err);
	char *qt = qs != NULL ? mqtx_pg_ident_checked(conn, table, "the inbox table", err) : NULL;
	if (qt != NULL)
		for (int i = 0; i < C__COUNT; i++)
			if (set(cols[i]) && (q[i] = mqtx_pg_ident_checked(conn, cols[i], col_keys[i], err)) == NULL) {
				free(qt);
				qt = NULL;
				break;
			}
	if (qt == NULL) {
		free(qs);
		goto out;
	}
	mqtx_buf_printf(&b, "%s.%s", qs, qt);
	free(qs);
	free(qt);
	snprintf(c->rep->table, sizeof(c->rep->table), "%s", b.data);
	snprintf(c->rep->key_column, sizeof(c->rep->key_column), "%s", cols[C_KEY]);
	c->rep->has_table = true;
	if (look_up(conn, cfg->audit_inbox_schema, table, cols, types, c->rep->table, err) < 0 ||
	    uniqueness(conn, cfg->audit_inbox_schema, table, cols[C_KEY], c->rep, err) < 0)
		goto out;

	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "COPY (SELECT i.%s::text, %s%s%s, %s%s%s, ", q[C_KEY], q[C_ID] ? "i." : "NULL", q[C_ID] ? q[C_ID] : "",
			"::text", q[C_OKEY] ? "i." : "NULL", q[C_OKEY] ? q[C_OKEY] : "", "::text");
	if (q[C_TS] != NULL)
		mqtx_buf_printf(&sql,
				"CASE WHEN isfinite(i.%s::timestamptz) THEN (extract(epoch FROM i.%s::timestamptz) * 1000000)::int8 END "
				"FROM %s i ORDER BY i.%s NULLS LAST",
				q[C_TS], q[C_TS], b.data, q[C_TS]);
	else
		mqtx_buf_printf(&sql, "NULL::int8 FROM %s i", b.data);
	mqtx_buf_adds(&sql, ") TO STDOUT");
	c->order_meaningful = q[C_TS] != NULL;
	if (q[C_TS] == NULL)
		snprintf(c->rep->order_note, sizeof(c->rep->order_note), "no audit.inbox_ts_column says in which order rows were processed");
	PGresult *res = PQexec(conn, sql.data);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		mqtx_pg_fail(conn, res, "cannot read the inbox table", err);
		goto out;
	}
	PQclear(res);

	int64_t row = 0;
	for (;;) {
		char *line = NULL;
		int n = PQgetCopyData(conn, &line, 0);
		if (n == -1)
			break;
		if (n < 0) {
			mqtx_pg_fail(conn, NULL, "cannot read the inbox table", err);
			goto out;
		}
		row++;
		struct audit_field f[4];
		int nf = audit_copy_split(line, (size_t)n, f, 4);
		struct mqtx_read_record d = {.partition = -1, .offset = row, .redelivery_count = -1, .ts_us = MQTX_AUDIT_NO_TS};
		int r = 0;
		if (nf != 4) {
			r = mqtx_err_set(err, MQTX_E_INPUT, "inbox table %s row %lld: unexpected COPY data", c->rep->table, (long long)row);
		} else {
			if (!f[0].null) {
				d.key = f[0].s;
				d.key_len = f[0].len;
			}
			if (!f[1].null && (!mqtx_parse_i64n(f[1].s, f[1].len, &d.id) || d.id < 1))
				r = mqtx_err_set(err, MQTX_E_INPUT, "inbox table %s row %lld: %s '%.*s' is not an outbox id",
						 c->rep->table, (long long)row, cols[C_ID], (int)(f[1].len > 40 ? 40 : f[1].len), f[1].s);
			if (!f[2].null) {
				d.ordering_key = f[2].s;
				d.ordering_key_len = f[2].len;
			}
			if (!f[3].null && !mqtx_parse_i64n(f[3].s, f[3].len, &d.ts_us))
				d.ts_us = MQTX_AUDIT_NO_TS;
		}
		if (r == 0)
			r = audit_emit(c->sink, &d, err);
		PQfreemem(line);
		if (r < 0) {
			/* abandon the COPY: closing the connection ends it */
			PQfinish(conn);
			conn = NULL;
			goto out;
		}
		if (c->o->stop != NULL && *c->o->stop) {
			c->rep->stopped = true;
			PQfinish(conn);
			conn = NULL;
			break;
		}
	}
	if (conn != NULL) {
		while ((res = PQgetResult(conn)) != NULL) {
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				mqtx_pg_fail(conn, res, "cannot read the inbox table", err);
				goto out;
			}
			PQclear(res);
		}
	}
	snprintf(c->rep->detail, sizeof(c->rep->detail), "table %s, %lld row%s%s%s", c->rep->table, (long long)row,
		 row == 1 ? "" : "s", q[C_TS] ? " in order of " : "", q[C_TS] ? cols[C_TS] : "");
	rc = 0;
out:
	for (int i = 0; i < C__COUNT; i++) {
		free(types[i]);
		free(q[i]);
	}
	mqtx_buf_free(&b);
	if (conn != NULL)
		PQfinish(conn);
	return rc;
}
