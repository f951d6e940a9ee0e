/* Catalogue questions several tables ask (the outbox, an adopted outbox,
 * a consumer's inbox): which columns a table has, of which types, and
 * whether a column has a unique guard of its own. Values are parameters. */
#ifndef MQTX_DB_CATALOG_H
#define MQTX_DB_CATALOG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct mqtx_pg_column {
	char *name;
	char *type;     /* format_type(): "bigint", "timestamp with time zone", ... */
	char *category; /* pg_type.typcategory: "N" numeric, "S" string, "D" date/time, ... */
};

/* A table's columns (owned; free with mqtx_pg_columns_free). */
struct mqtx_pg_columns {
	bool exists; /* a relation of one of the asked kinds has the name */
	int64_t oid; /* its pg_class oid */
	struct mqtx_pg_column *v;
	size_t n;
};

/* Looks up schema.table among the relation kinds relkinds (pg_class.relkind
 * letters, "rp" for tables; NULL: any kind) and reads its live columns.
 * doing names the step in an error. 0, or -1 with err. */
int mqtx_pg_table_columns(PGconn *conn, const char *schema, const char *table, const char *relkinds,
			  struct mqtx_pg_columns *out, const char *doing, struct mqtx_err *err);
void mqtx_pg_columns_free(struct mqtx_pg_columns *cols);
/* The column called name, or NULL; borrowed from cols. */
const struct mqtx_pg_column *mqtx_pg_columns_find(const struct mqtx_pg_columns *cols, const char *name);

/* Whether column of schema.table has a unique constraint, primary key or
 * unique index of its own (valid, not partial, not an expression): 1 (by,
 * when not NULL, names it: "unique constraint x"), 0, or -1 with err. */
int mqtx_pg_unique_guard(PGconn *conn, const char *schema, const char *table, const char *column, char *by,
			 size_t by_size, const char *doing, struct mqtx_err *err);

#endif
