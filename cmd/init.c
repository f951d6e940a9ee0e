/* mqtx init: create the outbox table, its indexes and triggers, or print
 * the SQL (also what an existing table still needs). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "db/outbox.h"
#include "db/pg.h"
#include "commands.h"

static const struct mqtx_opt init_opts[] = {
	{"print", 'p', NULL, NULL, "print the SQL instead of running it"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (one identifier)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (one identifier; a dot is part of the name)"},
	{"grant", 0, "ROLE", NULL, "also grant ROLE the privileges mqtx commands need"},
	OPT_END,
};

const struct mqtx_cmd_info cmd_init_info = {
	.name = "init",
	.synopsis = "[--print] [--schema NAME] [--table NAME] [--grant ROLE]",
	.summary = "create the outbox table, indexes, triggers and heartbeat table (idempotent)",
	.opts = init_opts,
	.exit_codes = "  0  done (or printed)\n  2  usage error\n  3  configuration error, an existing table lacks columns, or a name init needs is taken\n  4  database error\n  7  cannot write standard output",
};

struct init_args {
	bool print;
	const char *grant;
};

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct init_args *a = ctx;
	if (strcmp(lng, "print") == 0)
		a->print = true;
	else if (strcmp(lng, "grant") == 0) {
		size_t bad = mqtx_utf8_invalid_at(value);
		if (bad > 0)
			return mqtx_usage_error("init", "option --grant: not valid UTF-8 (byte %zu); names must be UTF-8 text", bad);
		a->grant = value;
	}
	return 0;
}

/* An adopted table whose key column is not unique: rows can share a key,
 * and consumers that deduplicate by it drop all but one of them. */
static int warn_key_not_unique(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	int u = mqtx_outbox_key_unique(conn, cfg, err);
	if (u != 0)
		return u < 0 ? -1 : 0;
	char *sc = mqtx_pg_ident(conn, cfg->outbox_schema), *t = mqtx_pg_ident(conn, cfg->outbox_table);
	char *c = mqtx_pg_ident(conn, cfg->outbox_columns[MQTX_COL_KEY]);
	mqtx_warn("the idempotency key column %s of %s.%s (outbox.columns.idempotency_key) has no unique constraint or "
		  "unique index: two rows with one key reach consumers as one message, and those that deduplicate by key "
		  "drop the other as a duplicate; add one, e.g. CREATE UNIQUE INDEX CONCURRENTLY ON %s.%s (%s)",
		  c, cfg->outbox_schema, cfg->outbox_table, sc, t, c);
	free(sc);
	free(t);
	free(c);
	return 0;
}

int cmd_init(int argc, char **argv)
{
	struct init_args a = {0};
	struct mqtx_cli cli;
	struct mqtx_err err;
	char *grant = NULL;

	int rc = mqtx_cli_parse(&cmd_init_info, argc, argv, &cli, on_opt, &a);
	if (rc != 0)
		return rc < 0 ? EXIT_OK : rc;
	if (a.grant != NULL)
		grant = strdup(a.grant);
	if (cli.nargs > 0) {
		free(grant);
		mqtx_cli_free(&cli);
		return mqtx_usage_error("init", "unexpected argument '%s'", cli.args[0]);
	}
	PGconn *conn = mqtx_pg_connect(cli.cfg, "mqtx init", &err);
	if (conn == NULL) {
		free(grant);
		mqtx_cli_free(&cli);
		return mqtx_fail(&err);
	}
	bool exists = false, incomplete = false;
	char *sql = mqtx_outbox_init_sql(conn, cli.cfg, grant, &exists, &incomplete, &err);
	if (sql != NULL && exists && warn_key_not_unique(conn, cli.cfg, &err) < 0) {
		free(sql);
		sql = NULL;
	}
	if (sql == NULL) {
		rc = mqtx_fail(&err);
	} else if (a.print) {
		fputs(sql, stdout);
	} else if (incomplete) {
		mqtx_error("table %s.%s exists but lacks what the relay needs; review 'mqtx init --print' and apply it yourself",
			   cli.cfg->outbox_schema, cli.cfg->outbox_table);
		rc = EXIT_CONFIG;
	} else {
		if (mqtx_outbox_init_apply(conn, cli.cfg, sql, &err) < 0)
			rc = mqtx_fail(&err);
		else
			mqtx_info("outbox %s.%s is ready%s", cli.cfg->outbox_schema, cli.cfg->outbox_table,
				  exists ? " (it already existed)" : "");
	}
	free(sql);
	free(grant);
	mqtx_pg_close(conn);
	mqtx_cli_free(&cli);
	return rc;
}
