/* mqtx redeliver: re-send chosen outbox rows with their own idempotency
 * keys, revive dead rows, and collect consumer completions. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "redeliver/redeliver.h"
#include "base/util.h"
#include "commands.h"

static const struct mqtx_opt redeliver_opts[] = {
	{"id", 0, "LIST", NULL, "select by outbox id: 1,5,9 or 100-200 (repeatable)"},
	{"key", 'k', "KEY", NULL, "select by idempotency key (repeatable)"},
	{"ordering-key", 0, "KEY", NULL, "select by ordering key (repeatable)"},
	{"destination", 'd', "NAME", NULL, "select by destination, exchange or topic (repeatable)"},
	{"status", 's', "STATUS", NULL, "select by status: sent (the default) or dead (repeatable)"},
	{"since", 0, "TIME", NULL, "select rows created at or after TIME: a timestamp, or a duration ago (2h)"},
	{"until", 0, "TIME", NULL, "select rows created before TIME: a timestamp, or a duration ago"},
	{"time-column", 0, "COLUMN", "redeliver.time_column", "what --since/--until compare: created (default) or sent"},
	{"where", 'w', "EXPR", NULL, "select by 'column OP value [AND ...]' on whitelisted columns (repeatable)"},
	{"unacked-after", 0, "DURATION", NULL, "select sent messages not completed DURATION after they were last sent"},
	{"max-redeliveries", 0, "N", "redeliver.max_redeliveries", "--unacked-after: skip messages re-sent N times (default 10; 0: no limit)"},
	{"requeue", 0, NULL, NULL, "set the selected dead rows back to pending for the relay, instead of publishing"},
	{"collect-acks", 0, NULL, NULL, "first move consumer acks from the ack queue or topic into mqtx_completions"},
	{"ack-source", 0, "NAME", "redeliver.ack_source", "--collect-acks: the queue (RabbitMQ) or topic (Kafka) to drain"},
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
static int run(struct mqtx_cmd *c);

const struct mqtx_cmd_info cmd_redeliver_info = {
	.name = "redeliver",
	.synopsis = "[--id LIST] [--key KEY] [--ordering-key KEY] [--destination NAME] [--status STATUS] [--since TIME] "
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
				return BAD("--status %s: pending rows are the relay's to send; 'mqtx relay' sends them", value);
			if (strcmp(value, "prepared") == 0 || strcmp(value, "rolled_back") == 0)
				return BAD("--status %s: such rows were never committed for sending; see mqtx-txpub(1)", value);
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

/* Origin of a key's value, for choosing between a usage and a config error. */
static const char *origin_of(const struct mqtx_config *cfg, const char *key)
{
	for (size_t i = 0; i < mqtx_config_key_count(); i++)
		if (strcmp(mqtx_config_key_name(i), key) == 0)
			return cfg->origin[i];
	return NULL;
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
			return mqtx_usage_error("redeliver", "--requeue revives dead rows; --unacked-after selects sent ones");
		for (size_t i = 0; i < s->n_statuses; i++)
			if (strcmp(s->statuses[i], "dead") != 0)
				return mqtx_usage_error("redeliver", "--requeue works on dead rows only (--status dead)");
		if (s->n_statuses == 0)
			mqtx_list_add(&s->statuses, &s->n_statuses, "dead");
	} else if (s->unacked_after_ms >= 0) {
		for (size_t i = 0; i < s->n_statuses; i++)
			if (strcmp(s->statuses[i], "sent") != 0)
				return mqtx_usage_error("redeliver", "--unacked-after selects sent rows only (--status sent)");
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

/* ---- output ---- */

static void tsv(const char *s)
{
	if (s == NULL) {
		fputs("-", stdout);
		return;
	}
	for (; *s != '\0'; s++)
		putchar(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

static void print_row(void *ctx, const struct mqtx_redeliver_row *r)
{
	(void)ctx;
	const char *f[] = {r->id, r->key, r->status, r->destination, r->routing_key, r->ordering_key,
			   r->attempts, r->redelivery_count, r->created_at, r->sent_at};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (i)
			putchar('\t');
		tsv(i == 3 && f[i] != NULL && f[i][0] == '\0' ? "(default)" : f[i]);
	}
	putchar('\n');
}

/* A progress bar on stderr when it is a terminal. */
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
	int64_t done = st->done > b->total ? b->total : st->done;
	int width = 30, fill = (int)(done * width / b->total);
	double secs = (double)(now - b->start) / 1000.0;
	double rate = secs > 0 ? (double)done / secs : 0;
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[width] = '\0';
	fprintf(stderr, "\r[%s] %lld/%lld  %.1f rows/s", bar, (long long)done, (long long)b->total, rate);
	if (rate > 0 && done < b->total)
		fprintf(stderr, "  ETA %.0fs", (double)(b->total - done) / rate);
	fputs("\033[K", stderr);
	fflush(stderr);
	b->drawn = true;
}

static void on_progress(void *ctx, const struct mqtx_redeliver_stats *st)
{
	bar_draw(ctx, st, false);
}

static void bar_end(struct bar *b)
{
	if (b->drawn)
		fputs("\r\033[K", stderr);
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
	printf("id\tkey\tstatus\tdestination\trouting_key\tordering_key\tattempts\tredelivery_count\tcreated_at\tsent_at\n");
	if (mqtx_redeliver_sample(r, (size_t)cfg->redeliver_sample, print_row, NULL, &err) < 0)
		return mqtx_fail(&err);
	int64_t shown = n < cfg->redeliver_sample ? n : cfg->redeliver_sample;
	mqtx_log(lvl, "dry run: %lld row(s) selected (%lld shown); they would be %s. %s", (long long)n, (long long)shown,
		 a->requeue ? "set back to pending for the relay" : "re-sent", end);
	return EXIT_OK;
}

static int run(struct mqtx_cmd *cmd)
{
	struct args *a = cmd->args;
	const struct mqtx_cli cli = cmd->cli; /* borrowed */
	struct mqtx_err err;
	struct mqtx_redeliver *r = NULL;
	int rc;

	double rate = 0;
	if (mqtx_rate_parse(cli.cfg->redeliver_rate, &rate, &err) < 0) {
		const char *o = origin_of(cli.cfg, "redeliver.rate");
		if (o != NULL && strncmp(o, "option", 6) == 0) {
			rc = mqtx_usage_error("redeliver", "--rate: %s", err.msg);
		} else {
			mqtx_err_prefix(&err, "redeliver.rate (%s)", o != NULL ? o : "default");
			err.kind = MQTX_E_CONFIG;
			rc = mqtx_fail(&err);
		}
		goto out;
	}

	if (a->collect_acks && (cli.cfg->redeliver_ack_source == NULL || cli.cfg->redeliver_ack_source[0] == '\0')) {
		mqtx_err_set(&err, MQTX_E_CONFIG, "--collect-acks needs an ack queue or topic (--ack-source, redeliver.ack_source)");
		rc = mqtx_fail(&err);
		goto out;
	}
	/* Every write (re-send, requeue, collecting acks) needs --yes, wherever
	 * the output goes: without it this is a dry run. */
	bool dry = !a->yes;
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
	r = mqtx_redeliver_new(cli.cfg, &ro, &err);
	if (r == NULL) {
		rc = mqtx_fail(&err);
		goto out;
	}
	if (dry) {
		rc = dry_run(r, a, cli.cfg);
		goto out;
	}

	struct mqtx_redeliver_stats st = {0};
	int64_t start = mqtx_now_ms();
	if (a->collect_acks) {
		int c = mqtx_redeliver_collect_acks(r, &st, &err);
		if (c == 0 || st.acks > 0) /* no success-looking "0 collected" before an error */
			mqtx_log(c < 0 ? MQTX_LOG_WARN : MQTX_LOG_INFO, "%sacks: %lld collected, %lld new completion(s), %lld ignored",
				 c < 0 ? "before the error: " : "", (long long)st.acks, (long long)st.completions,
				 (long long)st.acks_ignored);
		if (c < 0) {
			rc = mqtx_fail(&err);
			goto out;
		}
		if (st.interrupted || !a->any_selector)
			goto done;
	}
	if (bar.on && mqtx_redeliver_count(r, &bar.total, &err) < 0) {
		rc = mqtx_fail(&err);
		goto out;
	}
	bar.start = mqtx_now_ms();
	int x = a->requeue ? mqtx_redeliver_requeue(r, &st, &err) : mqtx_redeliver_resend(r, &st, &err);
	bar_draw(&bar, &st, true);
	bar_end(&bar);
	double secs = (double)(mqtx_now_ms() - start) / 1000.0;
	/* The summary: a warning when rows were not re-sent (exit 1) or an
	 * error follows; none at all when an error came before any row. */
	enum mqtx_log_level lvl = x < 0 || st.failed > 0 || st.held_back > 0 ? MQTX_LOG_WARN : MQTX_LOG_INFO;
	const char *pre = x < 0 ? "before the error: " : "";
	if (x == 0 || st.done > 0) {
		if (a->requeue)
			mqtx_log(lvl, "%srequeued %lld dead row(s) to pending in %.2fs; the relay sends them", pre,
				 (long long)st.requeued, secs);
		else
			mqtx_log(lvl, "%sredelivered %lld, failed %lld, held back %lld in %.2fs (%.1f msgs/s)", pre,
				 (long long)st.redelivered, (long long)st.failed, (long long)st.held_back, secs,
				 secs > 0 ? (double)st.redelivered / secs : 0.0);
	}
	if (st.held_back > 0)
		mqtx_warn("%lld row(s) held back behind an earlier pending row of their ordering key: run again once the relay sent it",
			  (long long)st.held_back);
	if (x < 0) {
		rc = mqtx_fail(&err);
		goto out;
	}
done:
	if (st.interrupted)
		mqtx_warn("interrupted: what was confirmed is recorded; run the same command again for the rest "
			  "(a batch cut short may go out once more, with the same idempotency keys)");
	rc = st.failed > 0 || st.held_back > 0 || st.interrupted ? EXIT_ROWS_FAILED : EXIT_OK;
out:
	mqtx_redeliver_free(r);
	return rc;
}
