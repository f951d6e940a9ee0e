/* mqtx init: create the outbox table, its indexes and triggers, or print
 * the SQL (also what an existing table still needs). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "db/outbox.h"
#include "db/partition.h"
#include "db/pg.h"
#include "db/tail_switch.h"
#include "commands.h"

static const struct mqtx_opt init_opts[] = {
	{"print", 'p', NULL, NULL, "print the SQL instead of running it"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (one identifier)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (one identifier; a dot is part of the name)"},
	{"grant", 0, "ROLE", NULL, "also grant ROLE the privileges mqtx commands need"},
	{"partition-by", 0, "hour|day", "outbox.partition_by",
	 "a new outbox is range-partitioned by created_at, a partition per hour or day (UTC)"},
	{"mode", 0, "status|tail", "outbox.mode",
	 "tail: also the txid column, trigger and checkpoint tables of tail mode; status: hand a tail-mode outbox back"},
	OPT_END,
};

struct init_args {
	bool print;
	const char *grant;
};

static int on_opt(void *ctx, const char *lng, const char *value);
static int run(struct mqtx_cmd *c);

const struct mqtx_cmd_info cmd_init_info = {
	.name = "init",
	.synopsis =
		"[--print] [--schema NAME] [--table NAME] [--grant ROLE] [--partition-by hour|day] [--mode status|tail]",
	.summary = "create the outbox table, indexes, triggers and heartbeat table (idempotent)",
	.opts = init_opts,
	.exit_codes =
		"  0  done (or printed)\n  2  usage error\n  3  configuration error, an existing table lacks columns, or a name init needs is taken\n  4  database error\n  7  cannot write standard output",
	.args_size = sizeof(struct init_args),
	.on_opt = on_opt,
	.run = run, /* CMD_NEEDS_DB */
};

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct init_args *a = ctx;
	if (strcmp(lng, "print") == 0)
		a->print = true;
	else if (strcmp(lng, "grant") == 0) {
		size_t bad = mqtx_utf8_invalid_at(value);
		if (bad > 0)
			return mqtx_usage_error("init",
						"option --grant: not valid UTF-8 (byte %zu); names must be UTF-8 text",
						bad);
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
	char *c = mqtx_pg_ident(conn, cfg->outbox_columns[MQTX_COL_KEY]);
	/* a partitioned table can only have unique keys per partition key */
	u = mqtx_partitions_key_unique_per_period(conn, cfg, err);
	if (u != 0) {
		if (u > 0)
			mqtx_info("the idempotency key column %s of the partitioned table %s.%s is unique together with %s "
				  "only (PostgreSQL cannot enforce a unique key across partitions): keys mqtx derives from "
				  "the id are unique; writers that give their own keys must make them unique",
				  c, cfg->outbox_schema, cfg->outbox_table, cfg->outbox_columns[MQTX_COL_CREATED_AT]);
		free(c);
		return u < 0 ? -1 : 0;
	}
	char *sc = mqtx_pg_ident(conn, cfg->outbox_schema), *t = mqtx_pg_ident(conn, cfg->outbox_table);
	mqtx_warn("the idempotency key column %s of %s.%s (outbox.columns.idempotency_key) has no unique constraint or "
		  "unique index: two rows with one key reach consumers as one message, and those that deduplicate by key "
		  "drop the other as a duplicate; add one, e.g. CREATE UNIQUE INDEX CONCURRENTLY ON %s.%s (%s)",
		  c, cfg->outbox_schema, cfg->outbox_table, sc, t, c);
	free(sc);
	free(t);
	free(c);
	return 0;
}

/* Tail mode on an outbox whose checkpoint rows are there already, in
 * another number than outbox.tail_buckets: init keeps them. */
static int warn_tail_buckets(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	int64_t n = mqtx_tail_checkpoint_count(conn, cfg, err);
	if (n < 0)
		return -1;
	if (n > 0 && n != cfg->outbox_tail_buckets)
		mqtx_warn("outbox %s.%s has %lld tail checkpoint rows (buckets), not outbox.tail_buckets %lld: init leaves "
			  "them as they are, and relays use %lld buckets (see mqtx-init(1))",
			  cfg->outbox_schema, cfg->outbox_table, (long long)n, (long long)cfg->outbox_tail_buckets,
			  (long long)n);
	return 0;
}

/* Status mode on an outbox that tail relays relayed: hand it back (or,
 * with --print, say what that would change). */
static int hand_back(PGconn *conn, const struct mqtx_config *cfg, bool print)
{
	struct mqtx_err err;
	int64_t n = mqtx_tail_checkpoint_count(conn, cfg, &err);
	if (n < 0)
		return mqtx_fail(&err);
	if (n == 0)
		return EXIT_OK;
	struct mqtx_tail_handback_stats st;
	if (mqtx_tail_handback(conn, cfg, print, &st, &err) < 0)
		return mqtx_fail(&err);
	if (print) {
		printf("-- %s.%s was relayed in tail mode: 'mqtx init' (without --print) hands it back to status mode:\n"
		       "-- %lld relayed row(s) become 'sent', %lld parked dead row(s) 'dead', %lld waiting for a retry keep\n"
		       "-- their attempts and retry time, %lld blocked stay 'pending'; then the tail checkpoints go\n",
		       cfg->outbox_schema, cfg->outbox_table, (long long)st.sent, (long long)st.dead,
		       (long long)st.retry, (long long)st.blocked);
		return EXIT_OK;
	}
	mqtx_info("outbox %s.%s handed back from tail mode: %lld row(s) marked sent, %lld dead, %lld to retry, %lld "
		  "pending behind them; tail checkpoints removed",
		  cfg->outbox_schema, cfg->outbox_table, (long long)st.sent, (long long)st.dead, (long long)st.retry,
		  (long long)st.blocked);
	return EXIT_OK;
}

static int run(struct mqtx_cmd *c)
{
	const struct init_args *a = c->args;
	const struct mqtx_config *cfg = c->cli.cfg;
	PGconn *conn = c->db;
	struct mqtx_err err;
	int rc = EXIT_OK;

	bool exists = false, incomplete = false;
	char *sql = mqtx_outbox_init_sql(conn, cfg, a->grant, &exists, &incomplete, &err);
	if (sql != NULL && exists && warn_key_not_unique(conn, cfg, &err) < 0) {
		free(sql);
		sql = NULL;
	}
	if (sql != NULL && mqtx_config_tail(cfg) && warn_tail_buckets(conn, cfg, &err) < 0) {
		free(sql);
		sql = NULL;
	}
	if (sql == NULL) {
		rc = mqtx_fail(&err);
	} else if (a->print) {
		fputs(sql, stdout);
	} else if (incomplete) {
		mqtx_error("table %s.%s exists but lacks what the relay needs; review 'mqtx init --print' and apply it yourself",
			   cfg->outbox_schema, cfg->outbox_table);
		rc = EXIT_CONFIG;
	} else {
		if (mqtx_outbox_init_apply(conn, cfg, sql, &err) < 0)
			rc = mqtx_fail(&err);
		else
			mqtx_info("outbox %s.%s is ready%s", cfg->outbox_schema, cfg->outbox_table,
				  exists ? " (it already existed)" : "");
	}
	free(sql);
	if (rc == EXIT_OK && exists && !mqtx_config_tail(cfg))
		rc = hand_back(conn, cfg, a->print);
	return rc;
}
