/* mqtx relay: move pending outbox rows to the broker, once (cron) or in a
 * loop (systemd). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "relay/relay.h"
#include "render/rows.h"
#include "commands.h"

static const struct mqtx_opt relay_opts[] = {
	{"loop", 'l', NULL, "relay.loop", "keep running: wake on NOTIFY, poll every --poll-interval"},
	{"batch", 'b', "N", "relay.batch_size", "rows per batch (default 500)"},
	{"max-messages", 'n', "N", "relay.max_messages", "stop after handling N rows, retries included (0: no limit)"},
	{"max-time", 0, "DURATION", "relay.max_time", "stop claiming after DURATION, e.g. 50s (0: no limit)"},
	{"poll-interval", 0, "DURATION", "relay.poll_interval",
	 "--loop: look for work this often without NOTIFY (default 1s)"},
	{"dry-run", 0, NULL, NULL, "show the rows that would be sent now; change nothing"},
	{"transactional", 0, NULL, "relay.kafka_transactions",
	 "Kafka: each batch is one producer transaction (fencing transactional.id)"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (one identifier)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (one identifier; a dot is part of the name)"},
	OPT_END,
};

struct relay_args {
	bool dry_run;
};

static int on_opt(void *ctx, const char *lng, const char *value);
static bool needs_broker(const struct mqtx_cmd *c);
static int run(struct mqtx_cmd *c);

const struct mqtx_cmd_info cmd_relay_info = {
	.name = "relay",
	.synopsis =
		"[--loop] [--batch N] [--max-messages N] [--max-time DURATION] [--poll-interval DURATION] [--dry-run] [--transactional] [--schema NAME] [--table NAME]",
	.summary = "move pending outbox rows to the broker (one-shot for cron, or --loop)",
	.opts = relay_opts,
	.exit_codes = "  0  every eligible row was relayed (or a signal stopped the loop cleanly)\n"
		      "  1  some rows failed: they are retried later, or became dead\n"
		      "  2  usage error\n  3  configuration error\n  4  database unreachable or failing\n"
		      "  5  broker unreachable or failing\n  7  cannot write standard output",
	.args_size = sizeof(struct relay_args),
	.on_opt = on_opt,
	.needs_broker = needs_broker,
	.run = run,
};

/* --dry-run only reads the outbox */
static bool needs_broker(const struct mqtx_cmd *c)
{
	return !((const struct relay_args *)c->args)->dry_run;
}

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct relay_args *a = ctx;
	(void)value;
	if (strcmp(lng, "dry-run") == 0)
		a->dry_run = true;
	return 0;
}

static void print_row(void *ctx, int64_t id, const char *key, const char *destination, const char *routing_key,
		      const char *ordering_key, size_t payload_len)
{
	mqtx_render_relay_dry_run_row(ctx, id, key, destination, routing_key, ordering_key, payload_len);
}

/* The run's summary on stderr, before the error that ended it (if any).
 * Only a run that claimed says what it relayed: a run that stopped before
 * (no broker URL, a server down at start) says nothing ran, or leaves it
 * to its error. A run with failed rows ends with a warning, which --quiet
 * keeps. */
static void summary(const struct mqtx_relay_stats *st, bool dry_run, bool failed)
{
	double secs = (double)st->elapsed_ms / 1000.0;
	if (st->claims == 0) {
		if (!failed)
			mqtx_info("nothing was relayed: stopped before the first claim (%.2fs)", secs);
		return;
	}
	if (dry_run) {
		mqtx_info("dry run: %lld row(s) would be sent now; nothing was changed", (long long)st->relayed);
		return;
	}
	bool rows_failed = st->failed > 0 || st->dead > 0;
	mqtx_log(failed || rows_failed ? MQTX_LOG_WARN : MQTX_LOG_INFO,
		 "%srelayed %lld, failed %lld, dead %lld in %.2fs (%.0f msgs/s)", failed ? "before the error: " : "",
		 (long long)st->relayed, (long long)st->failed, (long long)st->dead, secs,
		 secs > 0 ? (double)st->relayed / secs : 0.0);
}

/* What retention deleted, when a pass ran and did something or was cut short. */
static void prune_summary(const struct mqtx_relay_stats *st, bool loop)
{
	const struct mqtx_retention_stats *p = &st->pruned;
	if (!st->prune_ran)
		return;
	int64_t rows = p->deleted[MQTX_RET_SENT] + p->deleted[MQTX_RET_DEAD] + p->deleted[MQTX_RET_ROLLED_BACK];
	int64_t book = p->deleted[MQTX_RET_RELAYS] + p->deleted[MQTX_RET_COMPLETIONS];
	if (rows == 0 && book == 0 && p->partitions_dropped == 0 && p->partitions_created == 0 && !p->more)
		return;
	char parts[128] = "";
	if (p->partitions_dropped > 0 || p->partitions_created > 0)
		snprintf(parts, sizeof(parts), ", %lld partition(s) dropped, %lld created",
			 (long long)p->partitions_dropped, (long long)p->partitions_created);
	mqtx_info("retention: deleted %lld outbox row(s) (%lld sent, %lld dead, %lld rolled back), %lld relay and "
		  "completion record(s)%s%s",
		  (long long)rows, (long long)p->deleted[MQTX_RET_SENT], (long long)p->deleted[MQTX_RET_DEAD],
		  (long long)p->deleted[MQTX_RET_ROLLED_BACK], (long long)book, parts,
		  p->more && !loop ? "; more remain (stopped by --max-time; the next run goes on)" : "");
}

static int run(struct mqtx_cmd *c)
{
	const struct relay_args a = *(const struct relay_args *)c->args;
	const struct mqtx_cli cli = c->cli; /* borrowed */
	struct mqtx_err err;
	int rc = EXIT_OK;

	struct mqtx_render out;
	mqtx_render_init_file(&out, stdout, false);
	if (a.dry_run)
		mqtx_render_relay_dry_run_header(&out);
	struct mqtx_relay_opts ro = {
		.dry_run = a.dry_run,
		.stop = &mqtx_stop,
		.version = MQTX_VERSION,
		.dry_run_row = print_row,
		.ctx = &out,
	};
	struct mqtx_relay_stats st;
	mqtx_err_clear(&err);
	int r = mqtx_relay_run(cli.cfg, &ro, &st, &err);
	mqtx_render_finish(&out); /* a failed write: main() says so, exit 7 */
	summary(&st, a.dry_run, r < 0);
	prune_summary(&st, cli.cfg->relay_loop);
	if (r < 0)
		rc = mqtx_fail(&err);
	else if ((st.failed > 0 || st.dead > 0) && !cli.cfg->relay_loop)
		rc = EXIT_ROWS_FAILED; /* a loop retries by itself: a clean stop is success */
	return rc;
}
