/* mqtx dedupe-audit: how many duplicates, losses, strangers and
 * out-of-order deliveries a flow really had, and where. Parses options,
 * runs the audit in lib/audit/audit.c, renders its report (lib/render/audit.c)
 * and exits with its verdict. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/log.h"
#include "base/util.h"
#include "broker/broker.h"
#include "render/audit.h"
#include "commands.h"

static const struct mqtx_opt audit_opts[] = {
	{"source", 's', "SOURCE", NULL,
	 "deliveries to check: kafka://BROKERS/TOPIC, amqp://HOST/[VHOST/]QUEUE, nats://HOST:PORT/STREAM (or tls://), inbox:[TABLE], postgresql://URL, a JSONL file, or - (stdin)"},
	{"from", 0, "POS", NULL,
	 "Kafka topic, RabbitMQ or JetStream stream: start at first, an offset (JetStream: a sequence), a time or a duration ago (default: first)"},
	{"to", 0, "POS", NULL,
	 "Kafka topic, RabbitMQ or JetStream stream: stop before this offset or sequence (or time: Kafka, JetStream); default: the end at start"},
	{"since", 0, "TIME", NULL, "expect rows sent at or after TIME (RFC 3339 or a duration ago such as 2h)"},
	{"until", 0, "TIME", NULL, "expect rows sent before TIME (default: when the audit starts)"},
	{"destination", 'd', "NAME", NULL,
	 "outbox destination the source receives, repeatable (default: the Kafka topic, else those of the delivered rows)"},
	{"destructive", 0, NULL, NULL, "allow consuming, and so emptying, a classic or quorum RabbitMQ queue"},
	{"format", 'f', "FORMAT", NULL, "report: text (default), json or csv"},
	{"max-details", 0, "N", "audit.max_details", "most detail lines per finding (default 20)"},
	{"max-duplicates", 0, "N", "audit.max_duplicates",
	 "duplicated keys tolerated, not counting redeliveries (default 0)"},
	{"max-missing", 0, "N", "audit.max_missing", "missing messages tolerated (default 0)"},
	{"idle-timeout", 0, "DURATION", "audit.idle_timeout",
	 "a stream or queue is at its end after this long without a message (default 2s)"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (one identifier)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (one identifier)"},
	OPT_END,
};

struct args {
	const char *source;
	const char *from, *to, *since, *until;
	const char **dests;
	size_t n_dests;
	bool destructive;
	enum mqtx_audit_format format;
};

static void args_free(void *ctx);
static int on_opt(void *ctx, const char *lng, const char *value);
static int validate(struct mqtx_cmd *c);
static int run(struct mqtx_cmd *c);

const struct mqtx_cmd_info cmd_dedupe_audit_info = {
	.name = "dedupe-audit",
	.synopsis = "--source SOURCE [--from POS] [--to POS] [--since TIME] [--until TIME] [--destination NAME]... "
		    "[--destructive] [--format FORMAT] [--max-details N] [--max-duplicates N] [--max-missing N] "
		    "[--idle-timeout DURATION] [--schema NAME] [--table NAME]",
	.summary = "count duplicates, losses, strangers and reordering a source really saw",
	.opts = audit_opts,
	.exit_codes =
		"  0  within --max-duplicates and --max-missing\n"
		"  1  more duplicated keys than --max-duplicates\n"
		"  2  usage error\n  3  configuration error\n  4  database unreachable or failing\n"
		"  5  broker unreachable or failing\n  6  bad input (a malformed JSONL line, an unusable inbox row)\n"
		"  7  cannot read the source file or write standard output\n"
		"  8  more missing messages than --max-missing\n  9  both 1 and 8",
	.secret_opt = "source",
	.secret_warning =
		"the --source URL holds a password, which other local users can see; prefer broker.password_file or a URL without one",
	.args_size = sizeof(struct args),
	.args_free = args_free,
	.on_opt = on_opt,
	.validate = validate,
	.run = run,
};

static void args_free(void *ctx)
{
	struct args *a = ctx;
	free(a->dests);
}

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct args *a = ctx;
	if (strcmp(lng, "source") == 0) {
		a->source = value;
	} else if (strcmp(lng, "from") == 0) {
		a->from = value;
	} else if (strcmp(lng, "to") == 0) {
		a->to = value;
	} else if (strcmp(lng, "since") == 0) {
		a->since = value;
	} else if (strcmp(lng, "until") == 0) {
		a->until = value;
	} else if (strcmp(lng, "destination") == 0) {
		a->dests = mqtx_xrealloc(a->dests, (a->n_dests + 1) * sizeof(*a->dests));
		a->dests[a->n_dests++] = value;
	} else if (strcmp(lng, "destructive") == 0) {
		a->destructive = true;
	} else if (strcmp(lng, "format") == 0) {
		if (strcmp(value, "text") == 0)
			a->format = MQTX_AUDIT_FMT_TEXT;
		else if (strcmp(value, "json") == 0)
			a->format = MQTX_AUDIT_FMT_JSON;
		else if (strcmp(value, "csv") == 0)
			a->format = MQTX_AUDIT_FMT_CSV;
		else
			return mqtx_usage_error("dedupe-audit", "--format '%s': expected text, json or csv", value);
	}
	return 0;
}

/* ---- the command ---- */

static int build_opts(const struct args *a, const struct mqtx_config *cfg, struct mqtx_audit_opts *o)
{
	struct mqtx_err err;
	int64_t now_us = mqtx_wall_ms() * 1000;
	memset(o, 0, sizeof(*o));
	o->source = a->source;
	o->destinations = a->dests;
	o->n_destinations = a->n_dests;
	o->destructive = a->destructive;
	o->max_details = cfg->audit_max_details;
	o->max_duplicates = cfg->audit_max_duplicates;
	o->max_missing = cfg->audit_max_missing;
	o->stop = &mqtx_stop;
	if ((a->from != NULL && mqtx_audit_parse_pos(a->from, "--from", now_us, &o->from, &err) < 0) ||
	    (a->to != NULL && mqtx_audit_parse_pos(a->to, "--to", now_us, &o->to, &err) < 0) ||
	    (a->since != NULL && mqtx_audit_parse_time(a->since, "--since", now_us, &o->since_us, &err) < 0) ||
	    (a->until != NULL && mqtx_audit_parse_time(a->until, "--until", now_us, &o->until_us, &err) < 0))
		return mqtx_usage_error("dedupe-audit", "%s", err.msg);
	o->has_since = a->since != NULL;
	o->has_until = a->until != NULL;
	if (o->has_since && o->has_until && o->since_us >= o->until_us)
		return mqtx_usage_error("dedupe-audit", "--since must be before --until");
	return 0;
}

static int validate(struct mqtx_cmd *c)
{
	const struct args *a = c->args;
	if (c->cli.nargs > 0)
		return mqtx_usage_error("dedupe-audit", "unexpected argument '%s' (the source goes after --source)",
					c->cli.args[0]);
	if (a->source == NULL)
		return mqtx_usage_error("dedupe-audit",
					"--source is required (a broker URL: %s; inbox:, a JSONL file or -)",
					mqtx_broker_schemes_text());
	return 0;
}

static int run(struct mqtx_cmd *c)
{
	const struct args a = *(const struct args *)c->args;
	const struct mqtx_cli cli = c->cli; /* borrowed */
	struct mqtx_err err;
	int rc;

	struct mqtx_audit_opts o;
	if ((rc = build_opts(&a, cli.cfg, &o)) != 0)
		return rc;

	struct mqtx_audit_report rep;
	mqtx_err_clear(&err);
	if (mqtx_audit_run(cli.cfg, &o, &rep, &err) < 0) {
		rc = err.kind == MQTX_E_USAGE ? mqtx_usage_error("dedupe-audit", "%s", err.msg) : mqtx_fail(&err);
		mqtx_audit_report_free(&rep);
		return rc;
	}
	struct mqtx_render r;
	mqtx_render_init_file(&r, stdout, false);
	mqtx_render_audit(&r, a.format, &rep);
	mqtx_render_finish(&r); /* a failed write: main() says so, exit 7 */
	rc = rep.status;        /* the verdict: 0, 1, 8 or 9 */
	if (rep.has_table && !rep.table_unique)
		mqtx_warn("consumer table %s has no unique constraint or unique index on %s: nothing stops it from processing a duplicate twice",
			  rep.table, rep.key_column);
	mqtx_info("audit: %lld deliveries, %lld duplicated keys (%lld unexplained), %lld missing, %lld stranger keys, %lld out of order, %lld gaps in %.1fs",
		  (long long)rep.deliveries, (long long)rep.dup_keys, (long long)rep.dup_unexplained_keys,
		  (long long)rep.missing, (long long)rep.stranger_keys, (long long)rep.out_of_order,
		  (long long)rep.gaps, (double)rep.elapsed_ms / 1000.0);
	mqtx_audit_report_free(&rep);
	return rc;
}
