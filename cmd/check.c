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
	{"warn-attempts", 0, "N", "check.warn_attempts",
	 "pending rows that failed N times: WARNING (default 3, 0: off)"},
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

struct check_args {
	enum mqtx_check_format format;
	const char *explain;
	bool resolve;
};

static int on_opt(void *ctx, const char *lng, const char *value);
static int validate(struct mqtx_cmd *c);
static int run(struct mqtx_cmd *c);
static int setup_failed(struct mqtx_cmd *c, int rc, const struct mqtx_err *err);

const struct mqtx_cmd_info cmd_check_info = {
	.name = "check",
	.synopsis = "[--format FORMAT] [--broker] [--queues LIST] [--completion] [--resolve] [--warn-age DURATION] "
		    "[--crit-age DURATION] [--warn-attempts N] [--max-dead N] [--relay-stale DURATION] [--schema NAME] "
		    "[--table NAME] | --explain ID|KEY",
	.summary = "report the health of the outbox, relays and broker (Nagios exit codes), or explain one message",
	.opts = check_opts,
	.exit_codes =
		"  0  OK\n  1  WARNING: something needs a look (old pending rows, blocked keys, stale relays, ...)\n"
		"  2  CRITICAL: messages are not moving or were given up (dead rows, no relay, missing destination)\n"
		"  3  UNKNOWN: usage, configuration or database error; the check could not run\n"
		"     (check uses the Nagios codes, not the exit codes of the other commands)",
	.args_size = sizeof(struct check_args),
	.on_opt = on_opt,
	.validate = validate,
	.run = run, /* CMD_NEEDS_DB */
	.setup_failed = setup_failed,
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

/* Colours on a terminal, unless NO_COLOR is set (to anything). */
static bool colour_on(bool tty)
{
	const char *nc = getenv("NO_COLOR");
	return tty && (nc == NULL || nc[0] == '\0');
}

/* Usage and configuration errors are UNKNOWN too; so is a database that
 * cannot be reached, said in the chosen format. */
static int setup_failed(struct mqtx_cmd *c, int rc, const struct mqtx_err *err)
{
	const struct check_args *a = c->args;
	(void)rc;
	if (err == NULL)
		return MQTX_CHECK_UNKNOWN;
	bool tty = isatty(STDOUT_FILENO) == 1;
	struct mqtx_render r;
	mqtx_render_init_file(&r, stdout, colour_on(tty));
	unknown(&r, a->format, c->cli.cfg, err, tty);
	mqtx_render_finish(&r); /* a failed write: main() says so */
	return MQTX_CHECK_UNKNOWN;
}

static int validate(struct mqtx_cmd *c)
{
	const struct check_args *a = c->args;
	if (a->explain != NULL && (a->format == MQTX_CHECK_FMT_PROMETHEUS || a->resolve))
		return mqtx_usage_error("check", "--explain cannot be combined with %s",
					a->resolve ? "--resolve" : "--format prometheus");
	return 0;
}

/* Output errors are UNKNOWN (main() names them). */
static int run(struct mqtx_cmd *c)
{
	const struct check_args *a = c->args;
	const struct mqtx_config *cfg = c->cli.cfg;
	bool tty = isatty(STDOUT_FILENO) == 1;
	struct mqtx_render r;
	int rc;

	mqtx_render_init_file(&r, stdout, colour_on(tty));
	if (a->explain != NULL)
		rc = run_explain(&r, c->db, cfg, a, tty);
	else
		rc = run_check(&r, c->db, cfg, a, tty);
	if (mqtx_render_finish(&r) < 0)
		rc = MQTX_CHECK_UNKNOWN;
	return rc;
}
