/* mqtx check: the health of an outbox for people (a table), programs
 * (JSON) and Prometheus (textfile collector), with Nagios exit codes; or
 * the story of one message (--explain). Read-only unless --resolve. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "check/check.h"
#include "commands.h"
#include "db/pg.h"
#include "render/check.h"

static const struct mqtx_opt check_opts[] = {
	{"format", 'f', "FORMAT", NULL, "output: text (default), json or prometheus"},
	{"explain", 'e', "ID|KEY", NULL, "tell the story of one message: status, errors, what blocks it, what to do"},
	{"warn-age", 0, "DURATION", "check.warn_age", "pending rows older than this: WARNING (default 5m, 0: off)"},
	{"crit-age", 0, "DURATION", "check.crit_age", "pending rows older than this: CRITICAL (default 30m, 0: off)"},
	{"warn-attempts", 0, "N", "check.warn_attempts", "pending rows that failed N times: WARNING (default 3, 0: off)"},
	{"max-dead", 0, "N", "check.max_dead", "more than N dead rows: CRITICAL (default 0)"},
	{"relay-stale", 0, "DURATION", "check.relay_stale", "a running relay silent this long is stale (default 2m)"},
	{"broker", 'b', NULL, "check.broker", "also ask the broker: destinations exist, queue depth and consumers"},
	{"queues", 0, "LIST", "check.queues", "--broker: comma-separated queues to report"},
	{"completion", 0, NULL, "check.completion", "report sent messages no consumer has completed"},
	{"resolve", 0, NULL, NULL, "first resolve in-doubt txpub items (the only write)"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (one identifier)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (one identifier; a dot is part of the name)"},
	OPT_END,
};

const struct mqtx_cmd_info cmd_check_info = {
	.name = "check",
	.synopsis = "[--format FORMAT] [--broker] [--queues LIST] [--completion] [--resolve] [--warn-age DURATION] "
		    "[--crit-age DURATION] [--warn-attempts N] [--max-dead N] [--relay-stale DURATION] [--schema NAME] "
		    "[--table NAME] | --explain ID|KEY",
	.summary = "report the health of the outbox, relays and broker (Nagios exit codes), or explain one message",
	.opts = check_opts,
	.exit_codes = "  0  OK\n  1  WARNING: something needs a look (old pending rows, blocked keys, stale relays, ...)\n"
		      "  2  CRITICAL: messages are not moving or were given up (dead rows, no relay, missing destination)\n"
		      "  3  UNKNOWN: usage, configuration or database error; the check could not run\n"
		      "     (check uses the Nagios codes, not the exit codes of the other commands)",
};

struct check_args {
	enum mqtx_check_format format;
	const char *explain;
	bool resolve;
};

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct check_args *a = ctx;
	if (strcmp(lng, "format") == 0) {
		if (strcmp(value, "text") == 0)
			a->format = MQTX_CHECK_FMT_TEXT;
		else if (strcmp(value, "json") == 0)
			a->format = MQTX_CHECK_FMT_JSON;
		else if (strcmp(value, "prometheus") == 0)
			a->format = MQTX_CHECK_FMT_PROMETHEUS;
		else
			return mqtx_usage_error("check", "--format: '%s' is not one of text, json, prometheus", value);
	} else if (strcmp(lng, "explain") == 0) {
		if (value[0] == '\0')
			return mqtx_usage_error("check", "--explain needs an outbox id or idempotency key");
		a->explain = value;
	} else if (strcmp(lng, "resolve") == 0) {
		a->resolve = true;
	}
	return 0;
}

/* The check could not run: say so in the requested format (on a terminal,
 * the error line on stderr is enough for text). */
static int unknown(struct mqtx_render *r, enum mqtx_check_format format, const struct mqtx_config *cfg,
		   const struct mqtx_err *err, bool tty)
{
	mqtx_error("%s", err->msg);
	char *outbox = NULL;
	if (cfg != NULL) {
		struct mqtx_buf b = MQTX_BUF_INIT;
		mqtx_buf_printf(&b, "%s.%s", cfg->outbox_schema, cfg->outbox_table);
		outbox = mqtx_buf_detach(&b);
	}
	if (format != MQTX_CHECK_FMT_TEXT || !tty)
		mqtx_render_check_unknown(r, format, outbox, err->msg);
	free(outbox);
	return MQTX_CHECK_UNKNOWN;
}

static int run_explain(struct mqtx_render *r, PGconn *conn, const struct mqtx_config *cfg, const struct check_args *a,
		       bool tty)
{
	struct mqtx_explain ex;
	struct mqtx_err err;
	mqtx_err_clear(&err);
	if (mqtx_check_explain(conn, cfg, a->explain, &ex, &err) < 0)
		return unknown(r, a->format, cfg, &err, tty);
	if (a->format == MQTX_CHECK_FMT_JSON)
		mqtx_render_explain_json(r, &ex, a->explain);
	else
		mqtx_render_explain_text(r, &ex, a->explain);
	if (!ex.found)
		mqtx_error("no outbox row and no in-doubt txpub item with id or key '%s'", a->explain);
	int rc = ex.found ? (int)ex.level : MQTX_CHECK_UNKNOWN;
	mqtx_explain_free(&ex);
	return rc;
}

static int run_check(struct mqtx_render *r, PGconn *conn, const struct mqtx_config *cfg, const struct check_args *a,
		     bool tty)
{
	struct mqtx_check_report rep;
	struct mqtx_err err;
	mqtx_err_clear(&err);
	struct mqtx_check_opts o = {.resolve = a->resolve, .client_name = "mqtx check"};
	if (mqtx_check_run(conn, cfg, &o, &rep, &err) < 0)
		return unknown(r, a->format, cfg, &err, tty);
	mqtx_render_check(r, a->format, &rep);
	int rc = (int)rep.level;
	mqtx_check_report_free(&rep);
	return rc;
}

/* usage, configuration and output errors are UNKNOWN (main() names an output error) */
int cmd_check(int argc, char **argv)
{
	struct check_args a = {.format = MQTX_CHECK_FMT_TEXT};
	struct mqtx_cli cli;
	struct mqtx_err err;
	bool tty = isatty(STDOUT_FILENO) == 1;
	const char *nc = getenv("NO_COLOR");

	int rc = mqtx_cli_parse(&cmd_check_info, argc, argv, &cli, on_opt, &a);
	if (rc != 0)
		return rc < 0 ? EXIT_OK : MQTX_CHECK_UNKNOWN;
	if (cli.nargs > 0) {
		mqtx_usage_error("check", "unexpected argument '%s'", cli.args[0]);
		mqtx_cli_free(&cli);
		return MQTX_CHECK_UNKNOWN;
	}
	if (a.explain != NULL && (a.format == MQTX_CHECK_FMT_PROMETHEUS || a.resolve)) {
		mqtx_usage_error("check", "--explain cannot be combined with %s",
				 a.resolve ? "--resolve" : "--format prometheus");
		mqtx_cli_free(&cli);
		return MQTX_CHECK_UNKNOWN;
	}
	char *explain = a.explain ? mqtx_xstrdup(a.explain) : NULL; /* outlives cli's arguments */
	a.explain = explain;

	struct mqtx_render r;
	mqtx_render_init_file(&r, stdout, tty && (nc == NULL || nc[0] == '\0'));
	PGconn *conn = mqtx_pg_connect(cli.cfg, "mqtx check", &err);
	if (conn == NULL)
		rc = unknown(&r, a.format, cli.cfg, &err, tty);
	else if (explain != NULL)
		rc = run_explain(&r, conn, cli.cfg, &a, tty);
	else
		rc = run_check(&r, conn, cli.cfg, &a, tty);
	if (conn != NULL)
		mqtx_pg_close(conn);
	if (mqtx_render_finish(&r) < 0)
		rc = MQTX_CHECK_UNKNOWN;
	free(explain);
	mqtx_cli_free(&cli);
	return rc;
}
