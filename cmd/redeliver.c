/* mqtx redeliver: re-send chosen outbox rows with their own idempotency
 * keys, revive dead rows, and collect consumer completions. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "redeliver/redeliver.h"
#include "render/rows.h"
#include "base/util.h"
#include "commands.h"

static const struct mqtx_opt redeliver_opts[] = {
	{"id", 0, "LIST", NULL, "select by outbox id: 1,5,9 or 100-200 (repeatable)"},
	{"key", 'k', "KEY", NULL, "select by idempotency key (repeatable)"},
	{"ordering-key", 0, "KEY", NULL, "select by ordering key (repeatable)"},
	{"destination", 'd', "NAME", NULL, "select by destination, exchange or topic (repeatable)"},
	{"status", 's', "STATUS", NULL,
	 "select by status: sent (the default; in tail mode: relayed) or dead (repeatable)"},
	{"since", 0, "TIME", NULL, "select rows created at or after TIME: a timestamp, or a duration ago (2h)"},
	{"until", 0, "TIME", NULL, "select rows created before TIME: a timestamp, or a duration ago"},
	{"time-column", 0, "COLUMN", "redeliver.time_column",
	 "what --since/--until compare: created (default) or sent (created_at in tail mode)"},
	{"where", 'w', "EXPR", NULL, "select by 'column OP value [AND ...]' on whitelisted columns (repeatable)"},
	{"unacked-after", 0, "DURATION", NULL, "select sent messages not completed DURATION after they were last sent"},
	{"max-redeliveries", 0, "N", "redeliver.max_redeliveries",
	 "--unacked-after: skip messages re-sent N times (default 10; 0: no limit)"},
	{"requeue", 0, NULL, NULL, "set the selected dead rows back to pending for the relay, instead of publishing"},
	{"collect-acks", 0, NULL, NULL, "first move consumer acks from the ack queue or topic into mqtx_completions"},
	{"ack-source", 0, "NAME", "redeliver.ack_source",
	 "--collect-acks: the queue (RabbitMQ) or topic (Kafka) to drain"},
	{"ack-group", 0, "NAME", "redeliver.ack_group", "--collect-acks: Kafka consumer group (default mqtx-acks)"},
	{"rate", 'r', "RATE", "redeliver.rate", "send at most RATE messages: N/s or N/m (default: no limit)"},
	{"limit", 'n', "N", NULL, "handle at most N of the selected rows"},
	{"batch", 'b', "N", "redeliver.batch_size", "rows per transaction (default 100)"},
	{"dry-run", 0, NULL, NULL, "show how many rows are selected and the first ones; change nothing"},
	{"yes", 'y', NULL, NULL, "act: re-send, requeue, collect acks (without it every run is a dry run)"},
	{"sample", 0, "N", "redeliver.sample", "--dry-run: how many rows to show (default 10)"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (one identifier)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (one identifier; a dot is part of the name)"},
	OPT_END,
};

struct args {
	struct mqtx_selection sel;
	int64_t limit;
	bool dry_run, yes, requeue, collect_acks;
	bool any_selector;
};

static void args_init(void *ctx);
static void args_free(void *ctx);
static int on_opt(void *ctx, const char *lng, const char *value);
static int validate(struct mqtx_cmd *c);
static bool needs_broker(const struct mqtx_cmd *c);
static int run(struct mqtx_cmd *c);

const struct mqtx_cmd_info cmd_redeliver_info = {
	.name = "redeliver",
	.synopsis =
		"[--id LIST] [--key KEY] [--ordering-key KEY] [--destination NAME] [--status STATUS] [--since TIME] "
		"[--until TIME] [--time-column COLUMN] [--where EXPR] [--unacked-after DURATION] [--max-redeliveries N] "
		"[--requeue] [--collect-acks] [--ack-source NAME] [--ack-group NAME] [--rate RATE] [--limit N] "
		"[--batch N] [--dry-run | --yes] [--sample N] [--schema NAME] [--table NAME]",
	.summary = "re-send chosen outbox rows with their own keys, revive dead rows, collect consumer acks",
	.opts = redeliver_opts,
	.exit_codes = "  0  every selected row was re-sent (or requeued; acks collected); without --yes: a dry run\n"
		      "  1  some selected rows were not re-sent: refused by the broker, held back behind a pending\n"
		      "     row of their ordering key, or left by an interrupted run (run it again)\n"
		      "  2  usage error, or a selection value the database rejected\n  3  configuration error\n"
		      "  4  database unreachable or failing\n  5  broker unreachable or failing\n"
		      "  7  cannot write standard output",
	.args_size = sizeof(struct args),
	.args_init = args_init,
	.args_free = args_free,
	.on_opt = on_opt,
	.validate = validate,
	.needs_broker = needs_broker,
	.run = run,
};

static void args_init(void *ctx)
{
	struct args *a = ctx;
	a->sel.unacked_after_ms = -1;
}

static void args_free(void *ctx)
{
	struct args *a = ctx;
	mqtx_selection_free(&a->sel);
}

/* on_opt fails with non-zero after printing the usage error. */
#define BAD(...) (mqtx_usage_error("redeliver", __VA_ARGS__) != 0)

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct args *a = ctx;
	struct mqtx_err err;
	if (strcmp(lng, "id") == 0) {
		if (mqtx_id_list_parse(&a->sel, value, &err) < 0)
			return BAD("%s", err.msg);
	} else if (strcmp(lng, "key") == 0) {
		mqtx_list_add(&a->sel.keys, &a->sel.n_keys, value);
	} else if (strcmp(lng, "ordering-key") == 0) {
		mqtx_list_add(&a->sel.ordering_keys, &a->sel.n_ordering_keys, value);
	} else if (strcmp(lng, "destination") == 0) {
		mqtx_list_add(&a->sel.destinations, &a->sel.n_destinations, value);
	} else if (strcmp(lng, "status") == 0) {
		if (strcmp(value, "sent") != 0 && strcmp(value, "dead") != 0) {
			if (strcmp(value, "pending") == 0)
				return BAD("--status %s: pending rows are the relay's to send; 'mqtx relay' sends them",
					   value);
			if (strcmp(value, "prepared") == 0 || strcmp(value, "rolled_back") == 0)
				return BAD("--status %s: such rows were never committed for sending; see mqtx-txpub(1)",
					   value);
			return BAD("--status: unknown status '%s' (expected sent or dead)", value);
		}
		mqtx_list_add(&a->sel.statuses, &a->sel.n_statuses, value);
	} else if (strcmp(lng, "since") == 0) {
		mqtx_time_bound_set(&a->sel.since, value);
	} else if (strcmp(lng, "until") == 0) {
		mqtx_time_bound_set(&a->sel.until, value);
	} else if (strcmp(lng, "where") == 0) {
		if (mqtx_where_parse(&a->sel.where, value, &err) < 0)
			return BAD("%s", err.msg);
	} else if (strcmp(lng, "unacked-after") == 0) {
		if (mqtx_parse_duration(value, &a->sel.unacked_after_ms, &err) < 0)
			return BAD("--unacked-after: %s", err.msg);
	} else if (strcmp(lng, "limit") == 0) {
		uint64_t v;
		if (mqtx_parse_uint(value, INT64_MAX, &v, &err) < 0)
			return BAD("--limit: %s", err.msg);
		a->limit = (int64_t)v;
	} else if (strcmp(lng, "requeue") == 0) {
		a->requeue = true;
	} else if (strcmp(lng, "collect-acks") == 0) {
		a->collect_acks = true;
	} else if (strcmp(lng, "dry-run") == 0) {
		a->dry_run = true;
	} else if (strcmp(lng, "yes") == 0) {
		a->yes = true;
	}
	if (strcmp(lng, "limit") != 0 && strcmp(lng, "requeue") != 0 && strcmp(lng, "collect-acks") != 0 &&
	    strcmp(lng, "dry-run") != 0 && strcmp(lng, "yes") != 0)
		a->any_selector = true;
	return 0;
}

/* Checks what the flags ask for, as a whole. Returns 0 or an exit code. */
static int check_args(struct args *a, const struct mqtx_config *cfg)
{
	struct mqtx_selection *s = &a->sel;
	if (a->dry_run && a->yes)
		return mqtx_usage_error("redeliver", "--dry-run and --yes contradict each other");
	if (!a->any_selector && !a->collect_acks)
		return mqtx_usage_error("redeliver",
					"nothing selected: give --id, --key, --ordering-key, --destination, --status, --since, "
					"--until, --where or --unacked-after (--status sent selects every sent row)");
	if (a->requeue) {
		if (s->unacked_after_ms >= 0)
			return mqtx_usage_error("redeliver",
						"--requeue revives dead rows; --unacked-after selects sent ones");
		for (size_t i = 0; i < s->n_statuses; i++)
			if (strcmp(s->statuses[i], "dead") != 0)
				return mqtx_usage_error("redeliver",
							"--requeue works on dead rows only (--status dead)");
		if (s->n_statuses == 0)
			mqtx_list_add(&s->statuses, &s->n_statuses, "dead");
	} else if (s->unacked_after_ms >= 0) {
		for (size_t i = 0; i < s->n_statuses; i++)
			if (strcmp(s->statuses[i], "sent") != 0)
				return mqtx_usage_error("redeliver",
							"--unacked-after selects sent rows only (--status sent)");
	}
	if (s->n_statuses == 0 && a->any_selector)
		mqtx_list_add(&s->statuses, &s->n_statuses, "sent");
	s->time_sent = strcmp(cfg->redeliver_time_column, "sent") == 0;
	s->max_redeliveries = cfg->redeliver_max_redeliveries;
	return 0;
}

static int validate(struct mqtx_cmd *c)
{
	return check_args(c->args, c->cli.cfg);
}

/* A dry run and --requeue (without --collect-acks) only touch the outbox. */
static bool needs_broker(const struct mqtx_cmd *c)
{
	const struct args *a = c->args;
	return a->yes && !a->dry_run && (!a->requeue || a->collect_acks);
}

/* ---- output ---- */

static void print_row(void *ctx, const struct mqtx_redeliver_row *r)
{
	mqtx_render_redeliver_row(ctx, r);
}

/* A progress bar on stderr when it is a terminal, redrawn at most every
 * 100ms. */
struct bar {
	bool on;
	int64_t total;
	int64_t start, last;
	bool drawn;
};

static void bar_draw(struct bar *b, const struct mqtx_redeliver_stats *st, bool force)
{
	int64_t now = mqtx_now_ms();
	if (!b->on || b->total <= 0 || (!force && now - b->last < 100))
		return;
	b->last = now;
	struct mqtx_render r;
	mqtx_render_init_file(&r, stderr, false);
	mqtx_render_progress(&r, st->done, b->total, now - b->start);
	mqtx_render_finish(&r);
	b->drawn = true;
}

static void on_progress(void *ctx, const struct mqtx_redeliver_stats *st)
{
	bar_draw(ctx, st, false);
}

static void bar_end(struct bar *b)
{
	if (b->drawn) {
		struct mqtx_render r;
		mqtx_render_init_file(&r, stderr, false);
		mqtx_render_progress_clear(&r);
		mqtx_render_finish(&r);
	}
	b->drawn = false;
}

/* ---- the story ---- */

/* Shows what the run would do and changes nothing. Without --dry-run
 * (no --yes either) its last line is a warning, so that a cron line that
 * lacks --yes is not silently idle under --quiet. */
static int dry_run(struct mqtx_redeliver *r, const struct args *a, const struct mqtx_config *cfg)
{
	struct mqtx_err err;
	int64_t n;
	enum mqtx_log_level lvl = a->dry_run ? MQTX_LOG_INFO : MQTX_LOG_WARN;
	const char *end = a->dry_run ? "Nothing was changed; add --yes to act"
				     : "Nothing was changed: without --yes, redeliver only shows what it would do";
	if (a->collect_acks)
		mqtx_log(a->any_selector ? MQTX_LOG_INFO : lvl,
			 "dry run: --collect-acks would move the acks waiting in '%s' into mqtx_completions%s%s",
			 cfg->redeliver_ack_source, a->any_selector ? "" : ". ", a->any_selector ? "" : end);
	if (!a->any_selector)
		return EXIT_OK;
	if (mqtx_redeliver_count(r, &n, &err) < 0)
		return mqtx_fail(&err);
	struct mqtx_render out;
	mqtx_render_init_file(&out, stdout, false);
	mqtx_render_redeliver_header(&out);
	int s = mqtx_redeliver_sample(r, (size_t)cfg->redeliver_sample, print_row, &out, &err);
	mqtx_render_finish(&out); /* a failed write: main() says so, exit 7 */
	if (s < 0)
		return mqtx_fail(&err);
	int64_t shown = n < cfg->redeliver_sample ? n : cfg->redeliver_sample;
	mqtx_log(lvl, "dry run: %lld row(s) selected (%lld shown); they would be %s. %s", (long long)n,
		 (long long)shown, a->requeue ? "set back to pending for the relay" : "re-sent", end);
	return EXIT_OK;
}

/* --collect-acks with --yes: drains the ack source and says how many.
 * Returns 0, or an exit code after reporting the error. */
static int collect_acks(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st)
{
	struct mqtx_err err;
	int c = mqtx_redeliver_collect_acks(r, st, &err);
	if (c == 0 || st->acks > 0) /* no success-looking "0 collected" before an error */
		mqtx_log(c < 0 ? MQTX_LOG_WARN : MQTX_LOG_INFO,
			 "%sacks: %lld collected, %lld new completion(s), %lld ignored",
			 c < 0 ? "before the error: " : "", (long long)st->acks, (long long)st->completions,
			 (long long)st->acks_ignored);
	return c < 0 ? mqtx_fail(&err) : 0;
}

/* Re-sends (or requeues) the selected rows with --yes, drawing the bar,
 * and logs the summary: a warning when rows were not re-sent (exit 1) or
 * an error follows; none at all when an error came before any row.
 * Returns 0, or an exit code after reporting the error. */
static int act(struct mqtx_redeliver *r, const struct args *a, struct bar *bar, struct mqtx_redeliver_stats *st)
{
	struct mqtx_err err;
	int64_t start = mqtx_now_ms();
	if (bar->on && mqtx_redeliver_count(r, &bar->total, &err) < 0)
		return mqtx_fail(&err);
	bar->start = mqtx_now_ms();
	int x = a->requeue ? mqtx_redeliver_requeue(r, st, &err) : mqtx_redeliver_resend(r, st, &err);
	bar_draw(bar, st, true);
	bar_end(bar);
	double secs = (double)(mqtx_now_ms() - start) / 1000.0;
	enum mqtx_log_level lvl = x < 0 || st->failed > 0 || st->held_back > 0 ? MQTX_LOG_WARN : MQTX_LOG_INFO;
	const char *pre = x < 0 ? "before the error: " : "";
	if (x == 0 || st->done > 0) {
		if (a->requeue)
			mqtx_log(lvl, "%srequeued %lld dead row(s) to pending in %.2fs; the relay sends them", pre,
				 (long long)st->requeued, secs);
		else
			mqtx_log(lvl, "%sredelivered %lld, failed %lld, held back %lld in %.2fs (%.1f msgs/s)", pre,
				 (long long)st->redelivered, (long long)st->failed, (long long)st->held_back, secs,
				 secs > 0 ? (double)st->redelivered / secs : 0.0);
	}
	if (st->held_back > 0)
		mqtx_warn("%lld row(s) held back behind an earlier pending row of their ordering key: run again once the relay sent it",
			  (long long)st->held_back);
	return x < 0 ? mqtx_fail(&err) : 0;
}

/* What the configuration says before anything connects: the rate, and an
 * ack source for --collect-acks. Returns 0, or an exit code. */
static int check_config(const struct args *a, const struct mqtx_config *cfg, double *rate)
{
	struct mqtx_err err;
	if (mqtx_redeliver_rate(cfg, rate, &err) < 0)
		return err.kind == MQTX_E_USAGE ? mqtx_usage_error("redeliver", "%s", err.msg) : mqtx_fail(&err);
	if (a->collect_acks && mqtx_redeliver_check_ack_source(cfg, &err) < 0)
		return mqtx_fail(&err);
	return 0;
}

static int run(struct mqtx_cmd *cmd)
{
	struct args *a = cmd->args;
	const struct mqtx_cli cli = cmd->cli; /* borrowed */
	struct mqtx_err err;
	double rate = 0;
	int rc = check_config(a, cli.cfg, &rate);
	if (rc != 0)
		return rc;

	struct bar bar = {.on = isatty(STDERR_FILENO) && cli.verbosity >= 0 && mqtx_log_get_level() >= MQTX_LOG_INFO &&
				strcmp(cli.cfg->log_format, "text") == 0};
	struct mqtx_redeliver_opts ro = {
		.sel = &a->sel,
		.limit = a->limit,
		.rate = rate,
		.stop = &mqtx_stop,
		.progress = on_progress,
		.ctx = &bar,
		.client_name = "mqtx redeliver",
	};
	mqtx_err_clear(&err);
	struct mqtx_redeliver *r = mqtx_redeliver_new(cli.cfg, &ro, &err);
	if (r == NULL)
		return mqtx_fail(&err);
	/* Every write (re-send, requeue, collecting acks) needs --yes, wherever
	 * the output goes: without it this is a dry run. */
	if (!a->yes) {
		rc = dry_run(r, a, cli.cfg);
		goto out;
	}
	struct mqtx_redeliver_stats st = {0};
	if (a->collect_acks && (rc = collect_acks(r, &st)) != 0)
		goto out;
	if (!(a->collect_acks && (st.interrupted || !a->any_selector)) && (rc = act(r, a, &bar, &st)) != 0)
		goto out;
	if (st.interrupted)
		mqtx_warn("interrupted: what was confirmed is recorded; run the same command again for the rest "
			  "(a batch cut short may go out once more, with the same idempotency keys)");
	rc = st.failed > 0 || st.held_back > 0 || st.interrupted ? EXIT_ROWS_FAILED : EXIT_OK;
out:
	mqtx_redeliver_free(r);
	return rc;
}
