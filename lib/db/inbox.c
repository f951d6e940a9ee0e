/* dedupe-audit's inbox SQL (see inbox.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "db/catalog.h"
#include "db/pg.h"

enum { C_KEY, C_ID, C_TS, C_OKEY, C__COUNT };
static const char *const col_keys[C__COUNT] = {"audit.inbox_key_column", "audit.inbox_id_column",
					       "audit.inbox_ts_column", "audit.inbox_ordering_key_column"};

struct mqtx_inbox {
	const struct mqtx_config *cfg;
	PGconn *conn;
	const char *table;          /* borrowed: the table's name, unquoted */
	const char *cols[C__COUNT]; /* borrowed: the mapped columns, NULL or "" when unmapped */
	char *q[C__COUNT];          /* quoted column names, NULL when unmapped */
	char *qualified;            /* "schema"."table" */
	char unique_by[300];
};

static bool set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

struct mqtx_inbox *mqtx_inbox_connect(const struct mqtx_config *cfg, const char *url, const char *table,
				      struct mqtx_err *err)
{
	struct mqtx_config tmp = *cfg; /* shallow: only the URL differs */
	if (url != NULL) {
		tmp.database_url = (char *)url;
		tmp.database_password_file = NULL;
	} else if (set(cfg->audit_inbox_database_url)) {
		tmp.database_url = cfg->audit_inbox_database_url;
		tmp.database_password_file = NULL;
	}
	struct mqtx_inbox *in = mqtx_xcalloc(1, sizeof(*in));
	in->cfg = cfg;
	in->table = table != NULL ? table : cfg->audit_inbox_table;
	in->cols[C_KEY] = cfg->audit_inbox_key_column;
	in->cols[C_ID] = cfg->audit_inbox_id_column;
	in->cols[C_TS] = cfg->audit_inbox_ts_column;
	in->cols[C_OKEY] = cfg->audit_inbox_ordering_key_column;
	in->conn = mqtx_pg_connect(&tmp, "mqtx dedupe-audit (inbox)", err);
	if (in->conn == NULL)
		goto fail;
	char *qs = mqtx_pg_ident_checked(in->conn, cfg->audit_inbox_schema, "audit.inbox_schema", err);
	char *qt = qs != NULL ? mqtx_pg_ident_checked(in->conn, in->table, "the inbox table", err) : NULL;
	if (qt != NULL) {
		struct mqtx_buf b = MQTX_BUF_INIT;
		mqtx_buf_printf(&b, "%s.%s", qs, qt);
		in->qualified = mqtx_buf_detach(&b);
	}
	free(qs);
	free(qt);
	if (in->qualified == NULL)
		goto fail;
	for (int i = 0; i < C__COUNT; i++)
		if (set(in->cols[i]) &&
		    (in->q[i] = mqtx_pg_ident_checked(in->conn, in->cols[i], col_keys[i], err)) == NULL)
			goto fail;
	return in;
fail:
	mqtx_inbox_free(in);
	return NULL;
}

void mqtx_inbox_free(struct mqtx_inbox *in)
{
	if (in == NULL)
		return;
	if (in->conn != NULL)
		PQfinish(in->conn);
	for (int i = 0; i < C__COUNT; i++)
		free(in->q[i]);
	free(in->qualified);
	free(in);
}

const char *mqtx_inbox_table(const struct mqtx_inbox *in)
{
	return in->qualified;
}

const char *mqtx_inbox_unique_by(const struct mqtx_inbox *in)
{
	return in->unique_by[0] != '\0' ? in->unique_by : NULL;
}

bool mqtx_inbox_ordered(const struct mqtx_inbox *in)
{
	return in->q[C_TS] != NULL;
}

/* Checks a mapped column's type category (pg_type.typcategory). */
static int check_type(const struct mqtx_inbox *in, int c, const struct mqtx_pg_column *col, struct mqtx_err *err)
{
	if (c == C_TS && strcmp(col->category, "D") != 0)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "inbox column '%s' (audit.inbox_ts_column) is of type %s; expected a date/time type",
				    in->cols[c], col->type);
	if (c == C_ID && strcmp(col->category, "N") != 0 && strcmp(col->category, "S") != 0)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "inbox column '%s' (audit.inbox_id_column) is of type %s; expected a number (the outbox id)",
				    in->cols[c], col->type);
	return 0;
}

int mqtx_inbox_check(struct mqtx_inbox *in, struct mqtx_err *err)
{
	const char *schema = in->cfg->audit_inbox_schema;
	struct mqtx_pg_columns cols;
	if (mqtx_pg_table_columns(in->conn, schema, in->table, "rpvmf", &cols, "cannot look up the inbox table", err) <
	    0)
		return -1;
	int rc = 0;
	if (!cols.exists)
		rc = mqtx_err_set(err, MQTX_E_CONFIG,
				  "inbox table %s does not exist (audit.inbox_schema, audit.inbox_table)",
				  in->qualified);
	for (int c = 0; c < C__COUNT && rc == 0; c++) {
		if (!set(in->cols[c]))
			continue;
		const struct mqtx_pg_column *col = mqtx_pg_columns_find(&cols, in->cols[c]);
		if (col == NULL)
			rc = mqtx_err_set(err, MQTX_E_CONFIG, "inbox table %s has no column '%s' (%s)", in->qualified,
					  in->cols[c], col_keys[c]);
		else
			rc = check_type(in, c, col, err);
	}
	mqtx_pg_columns_free(&cols);
	if (rc < 0)
		return -1;
	if (mqtx_pg_unique_guard(in->conn, schema, in->table, in->cols[C_KEY], in->unique_by, sizeof(in->unique_by),
				 "cannot look at the inbox table's indexes", err) < 0)
		return -1;
	return 0;
}

int mqtx_inbox_read(struct mqtx_inbox *in, int (*row)(void *ctx, char *line, size_t n, struct mqtx_err *err), void *ctx,
		    struct mqtx_err *err)
{
	char *const *q = in->q;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "COPY (SELECT i.%s::text, %s%s%s, %s%s%s, ", q[C_KEY], q[C_ID] ? "i." : "NULL",
			q[C_ID] ? q[C_ID] : "", "::text", q[C_OKEY] ? "i." : "NULL", q[C_OKEY] ? q[C_OKEY] : "",
			"::text");
	if (q[C_TS] != NULL)
		mqtx_buf_printf(&sql,
				"CASE WHEN isfinite(i.%s::timestamptz) THEN (extract(epoch FROM i.%s::timestamptz) * 1000000)::int8 END "
				"FROM %s i ORDER BY i.%s NULLS LAST",
				q[C_TS], q[C_TS], in->qualified, q[C_TS]);
	else
		mqtx_buf_printf(&sql, "NULL::int8 FROM %s i", in->qualified);
	mqtx_buf_adds(&sql, ") TO STDOUT");
	int rc = mqtx_pg_copy_out(in->conn, sql.data, "cannot read the inbox table", false, row, ctx, err);
	mqtx_buf_free(&sql);
	if (rc != 0) {
		/* a stop or a failure in the middle: closing the connection ends the COPY */
		PQfinish(in->conn);
		in->conn = NULL;
	}
	return rc < 0 ? -1 : 0;
}
