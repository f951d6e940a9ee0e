/* Switching an outbox between tail and status mode (see tail_switch.h). */
#define _POSIX_C_SOURCE 200809L
#include "db/tail_switch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pg.h"

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
