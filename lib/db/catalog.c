/* Catalogue look-ups (see catalog.h). */
#define _POSIX_C_SOURCE 200809L
#include "db/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "db/pg.h"

int mqtx_pg_table_columns(PGconn *conn, const char *schema, const char *table, const char *relkinds,
			  struct mqtx_pg_columns *out, const char *doing, struct mqtx_err *err)
{
	memset(out, 0, sizeof(*out));
	/* one query: a failed read is a database error, never taken for a missing column */
	const char *p[3] = {schema, table, relkinds};
	PGresult *res =
		PQexecParams(conn,
			     "SELECT c.oid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), "
			     "t.typcategory::text FROM pg_class c "
			     "JOIN pg_namespace n ON n.oid = c.relnamespace "
			     "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
			     "LEFT JOIN pg_type t ON t.oid = a.atttypid "
			     "WHERE n.nspname = $1 AND c.relname = $2 "
			     "AND ($3::text IS NULL OR c.relkind::text = ANY (string_to_array($3::text, NULL)))",
			     3, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, doing, err);
	int rows = PQntuples(res);
	out->exists = rows > 0;
	if (out->exists)
		out->oid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	out->v = mqtx_xcalloc((size_t)rows + 1, sizeof(*out->v));
	for (int r = 0; r < rows; r++) {
		if (PQgetisnull(res, r, 1))
			continue; /* a relation without columns */
		struct mqtx_pg_column *c = &out->v[out->n++];
		c->name = mqtx_xstrdup(PQgetvalue(res, r, 1));
		c->type = mqtx_xstrdup(PQgetvalue(res, r, 2));
		c->category = mqtx_xstrdup(PQgetvalue(res, r, 3));
	}
	PQclear(res);
	return 0;
}

void mqtx_pg_columns_free(struct mqtx_pg_columns *cols)
{
	for (size_t i = 0; i < cols->n; i++) {
		free(cols->v[i].name);
		free(cols->v[i].type);
		free(cols->v[i].category);
	}
	free(cols->v);
	memset(cols, 0, sizeof(*cols));
}

const struct mqtx_pg_column *mqtx_pg_columns_find(const struct mqtx_pg_columns *cols, const char *name)
{
	for (size_t i = 0; i < cols->n; i++)
		if (strcmp(cols->v[i].name, name) == 0)
			return &cols->v[i];
	return NULL;
}

int mqtx_pg_unique_guard(PGconn *conn, const char *schema, const char *table, const char *column, char *by,
			 size_t by_size, const char *doing, struct mqtx_err *err)
{
	const char *p[3] = {schema, table, column};
	PGresult *res =
		PQexecParams(conn,
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
		return mqtx_pg_fail(conn, res, doing, err);
	int found = PQntuples(res) == 1;
	if (by != NULL && by_size > 0)
		snprintf(by, by_size, "%s", found ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return found;
}
