/* mqtx dedupe-audit: how many duplicates, losses, strangers and
 * out-of-order deliveries a flow really had, and where. Parses options,
 * runs the audit in lib/audit/audit.c, prints the report, maps the findings to
 * the exit status. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "commands.h"

/* Exit statuses of findings; the other codes are the common ones. */
enum {
	AUDIT_EXIT_DUPLICATES = 1,
	AUDIT_EXIT_MISSING = 8,
	AUDIT_EXIT_BOTH = 9,
};

static const struct mqtx_opt audit_opts[] = {
	{"source", 's', "SOURCE", NULL,
	 "deliveries to check: kafka://BROKERS/TOPIC, amqp://HOST/[VHOST/]QUEUE, inbox:[TABLE], postgresql://URL, a JSONL file, or - (stdin)"},
	{"from", 0, "POS", NULL, "Kafka topic or RabbitMQ stream: start at first, an offset, a time or a duration ago (default: first)"},
	{"to", 0, "POS", NULL, "Kafka topic or RabbitMQ stream: stop before this offset (or time, Kafka); default: the end at start"},
	{"since", 0, "TIME", NULL, "expect rows sent at or after TIME (RFC 3339 or a duration ago such as 2h)"},
	{"until", 0, "TIME", NULL, "expect rows sent before TIME (default: when the audit starts)"},
	{"destination", 'd', "NAME", NULL,
	 "outbox destination the source receives, repeatable (default: the Kafka topic, else those of the delivered rows)"},
	{"destructive", 0, NULL, NULL, "allow consuming, and so emptying, a classic or quorum RabbitMQ queue"},
	{"format", 'f', "FORMAT", NULL, "report: text (default), json or csv"},
	{"max-details", 0, "N", "audit.max_details", "most detail lines per finding (default 20)"},
	{"max-duplicates", 0, "N", "audit.max_duplicates", "duplicated keys tolerated, not counting redeliveries (default 0)"},
	{"max-missing", 0, "N", "audit.max_missing", "missing messages tolerated (default 0)"},
	{"idle-timeout", 0, "DURATION", "audit.idle_timeout", "a stream or queue is at its end after this long without a message (default 2s)"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (one identifier)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (one identifier)"},
	OPT_END,
};

enum fmt { FMT_TEXT, FMT_JSON, FMT_CSV };

struct args {
	const char *source;
	const char *from, *to, *since, *until;
	const char **dests;
	size_t n_dests;
	bool destructive;
	enum fmt format;
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
	.exit_codes = "  0  within --max-duplicates and --max-missing\n"
		      "  1  more duplicated keys than --max-duplicates\n"
		      "  2  usage error\n  3  configuration error\n  4  database unreachable or failing\n"
		      "  5  broker unreachable or failing\n  6  bad input (a malformed JSONL line, an unusable inbox row)\n"
		      "  7  cannot read the source file or write standard output\n"
		      "  8  more missing messages than --max-missing\n  9  both 1 and 8",
	.secret_opt = "source",
	.secret_warning = "the --source URL holds a password, which other local users can see; prefer broker.password_file or a URL without one",
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
			a->format = FMT_TEXT;
		else if (strcmp(value, "json") == 0)
			a->format = FMT_JSON;
		else if (strcmp(value, "csv") == 0)
			a->format = FMT_CSV;
		else
			return mqtx_usage_error("dedupe-audit", "--format '%s': expected text, json or csv", value);
	}
	return 0;
}

/* ---- text ---- */

static void where_text(const struct mqtx_audit_report *rep, const struct mqtx_audit_where *w, struct mqtx_buf *b)
{
	if (w->partition >= 0)
		mqtx_buf_printf(b, "partition %d ", (int)w->partition);
	if (w->offset >= 0)
		mqtx_buf_printf(b, "%s %lld", rep->position, (long long)w->offset);
	if (w->ts_us != MQTX_AUDIT_NO_TS) {
		char t[40];
		mqtx_audit_format_time(w->ts_us, t, sizeof(t));
		mqtx_buf_printf(b, "%s%s", w->offset >= 0 ? " at " : "", t);
	}
	if (w->redelivery_count > 0)
		mqtx_buf_printf(b, " (redelivery %lld)", (long long)w->redelivery_count);
}

static const char *plural(int64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void print_text(const struct mqtx_audit_report *rep, const char *verdict)
{
	char t1[40], t2[40];
	struct mqtx_buf b = MQTX_BUF_INIT;
	printf("dedupe-audit of %s\n", rep->source);
	printf("  %-15s %lld %s (%s) in %.1fs\n", "read", (long long)rep->deliveries,
	       plural(rep->deliveries, "delivery", "deliveries"), rep->detail, (double)rep->read_ms / 1000.0);
	if (rep->stopped)
		printf("  %-15s a signal ended reading early: losses and order cover only what was read\n", "stopped");
	mqtx_audit_format_time(rep->until_us, t2, sizeof(t2));
	if (rep->has_since) {
		mqtx_audit_format_time(rep->since_us, t1, sizeof(t1));
		printf("  %-15s rows sent from %s to %s\n", "window", t1, t2);
	} else if (rep->sent_at_known) {
		printf("  %-15s rows sent before %s\n", "window", t2);
	} else {
		printf("  %-15s every sent row (the outbox has no sent_at column)\n", "window");
	}
	for (size_t i = 0; i < rep->n_destinations; i++)
		mqtx_buf_printf(&b, "%s%s", i ? ", " : "", rep->destinations[i]);
	if (rep->losses_checked)
		printf("  %-15s %s%s\n", "destinations", b.data, rep->destinations_inferred ? " (of the delivered rows)" : "");
	else
		printf("  %-15s none known: losses and gaps not checked (give --destination)\n", "destinations");
	mqtx_buf_reset(&b);
	if (rep->losses_checked)
		printf("  %-15s %lld\n", "outbox sent", (long long)rep->outbox_sent);
	printf("  %-15s %lld\n", "distinct keys", (long long)rep->distinct_keys);
	printf("  %-15s %lld %s, %lld extra %s: %lld not explained by redelivery, %lld explained\n", "duplicates",
	       (long long)rep->dup_keys, plural(rep->dup_keys, "key", "keys"), (long long)rep->dup_extra,
	       plural(rep->dup_extra, "copy", "copies"), (long long)rep->dup_unexplained_keys,
	       (long long)rep->dup_explained_keys);
	if (rep->losses_checked)
		printf("  %-15s %lld\n", "missing", (long long)rep->missing);
	else
		printf("  %-15s not checked\n", "missing");
	printf("  %-15s %lld %s, %lld %s%s\n", "strangers", (long long)rep->stranger_keys,
	       plural(rep->stranger_keys, "key", "keys"), (long long)rep->stranger_deliveries,
	       plural(rep->stranger_deliveries, "delivery", "deliveries"),
	       rep->unkeyed > 0 ? " (some without an idempotency key)" : "");
	if (rep->order_checked)
		printf("  %-15s %lld %s in %lld of %lld ordering %s\n", "out of order", (long long)rep->out_of_order,
		       plural(rep->out_of_order, "delivery", "deliveries"), (long long)rep->out_of_order_keys,
		       (long long)rep->order_keys, plural(rep->order_keys, "key", "keys"));
	else
		printf("  %-15s not checked (%s)\n", "out of order", rep->order_note[0] ? rep->order_note : "the source has no order");
	if (rep->losses_checked)
		printf("  %-15s %lld in %lld ordering %s\n", "gaps", (long long)rep->gaps, (long long)rep->gap_keys,
		       plural(rep->gap_keys, "key", "keys"));
	if (rep->delivered_unsent > 0)
		printf("  %-15s %lld delivered %s not marked sent in the outbox (yet)\n", "unmarked", (long long)rep->delivered_unsent,
		       plural(rep->delivered_unsent, "row is", "rows are"));
	if (rep->has_table)
		printf("  %-15s %s: %s\n", "consumer table", rep->table,
		       rep->table_unique ? rep->table_unique_by : "NO unique constraint or index on the key column: duplicates are not prevented");
	printf("  %-15s %s\n", "result", verdict);

	if (rep->n_dups > 0) {
		printf("\nduplicates (%s):\n", rep->dup_keys > (int64_t)rep->n_dups ? "first ones, unexplained first" : "unexplained first");
		for (size_t i = 0; i < rep->n_dups; i++) {
			const struct mqtx_audit_dup *d = &rep->dups[i];
			mqtx_buf_reset(&b);
			for (size_t j = 0; j < d->n_where; j++) {
				if (j > 0)
					mqtx_buf_adds(&b, "; ");
				where_text(rep, &d->where[j], &b);
			}
			if ((int64_t)d->n_where < d->count)
				mqtx_buf_adds(&b, "; ...");
			printf("  %s  id %lld  %lld copies%s: %s\n", d->key, (long long)d->outbox_id, (long long)d->count,
			       d->explained ? " (explained by redelivery)" : "", b.data);
		}
	}
	if (rep->missing_rows.n > 0) {
		printf("\nmissing:\n");
		for (size_t i = 0; i < rep->missing_rows.n; i++) {
			const struct mqtx_audit_row *r = &rep->missing_rows.rows[i];
			char t[40] = "?";
			if (r->sent_at_us != MQTX_AUDIT_NO_TS)
				mqtx_audit_format_time(r->sent_at_us, t, sizeof(t));
			printf("  %s  id %lld%s%s  sent %s\n", r->key, (long long)r->outbox_id, r->ordering_key ? "  ordering key " : "",
			       r->ordering_key ? r->ordering_key : "", t);
		}
	}
	if (rep->strangers.n > 0) {
		printf("\nstrangers (keys the outbox does not know):\n");
		for (size_t i = 0; i < rep->strangers.n; i++) {
			const struct mqtx_audit_row *r = &rep->strangers.rows[i];
			mqtx_buf_reset(&b);
			where_text(rep, &r->where, &b);
			printf("  %s  %lld %s, first at %s\n", r->key ? r->key : "(no idempotency key)", (long long)r->count,
			       plural(r->count, "delivery", "deliveries"), b.data);
		}
	}
	if (rep->order_rows.n > 0) {
		printf("\nout of order (came after a later row of its ordering key):\n");
		for (size_t i = 0; i < rep->order_rows.n; i++) {
			const struct mqtx_audit_row *r = &rep->order_rows.rows[i];
			mqtx_buf_reset(&b);
			where_text(rep, &r->where, &b);
			printf("  %s  id %lld  ordering key %s  after id %lld, at %s\n", r->key, (long long)r->outbox_id,
			       r->ordering_key, (long long)r->after_id, b.data);
		}
	}
	if (rep->gap_rows.n > 0) {
		printf("\ngaps (not seen, between delivered rows of its ordering key):\n");
		for (size_t i = 0; i < rep->gap_rows.n; i++) {
			const struct mqtx_audit_row *r = &rep->gap_rows.rows[i];
			printf("  %s  id %lld  ordering key %s  %s, between delivered ids %lld and %lld\n", r->key,
			       (long long)r->outbox_id, r->ordering_key, r->status, (long long)r->after_id, (long long)r->before_id);
		}
	}
	mqtx_buf_free(&b);
}

/* ---- json ---- */

static void json_where(struct mqtx_buf *b, const struct mqtx_audit_report *rep, const struct mqtx_audit_where *w)
{
	mqtx_buf_adds(b, "{");
	if (w->partition >= 0)
		mqtx_buf_printf(b, "\"partition\":%d,", (int)w->partition);
	mqtx_buf_printf(b, "\"%s\":", rep->position);
	if (w->offset >= 0)
		mqtx_buf_printf(b, "%lld", (long long)w->offset);
	else
		mqtx_buf_adds(b, "null");
	mqtx_buf_adds(b, ",\"ts\":");
	if (w->ts_us != MQTX_AUDIT_NO_TS) {
		char t[40];
		mqtx_audit_format_time(w->ts_us, t, sizeof(t));
		mqtx_json_add_cstr(b, t);
	} else {
		mqtx_buf_adds(b, "null");
	}
	mqtx_buf_printf(b, ",\"redelivery_count\":%lld}", (long long)(w->redelivery_count > 0 ? w->redelivery_count : 0));
}

static void json_time(struct mqtx_buf *b, int64_t us)
{
	if (us == MQTX_AUDIT_NO_TS) {
		mqtx_buf_adds(b, "null");
		return;
	}
	char t[40];
	mqtx_audit_format_time(us, t, sizeof(t));
	mqtx_json_add_cstr(b, t);
}

static void json_rows(struct mqtx_buf *b, const struct mqtx_audit_report *rep, const struct mqtx_audit_list *l,
		      const char *kind)
{
	mqtx_buf_adds(b, "[");
	for (size_t i = 0; i < l->n; i++) {
		const struct mqtx_audit_row *r = &l->rows[i];
		mqtx_buf_adds(b, i ? ",{\"key\":" : "{\"key\":");
		mqtx_json_add_cstr(b, r->key);
		if (strcmp(kind, "strangers") == 0) {
			mqtx_buf_printf(b, ",\"deliveries\":%lld,\"first\":", (long long)r->count);
			json_where(b, rep, &r->where);
		} else {
			mqtx_buf_printf(b, ",\"outbox_id\":%lld,\"ordering_key\":", (long long)r->outbox_id);
			mqtx_json_add_cstr(b, r->ordering_key);
		}
		if (strcmp(kind, "missing") == 0 || strcmp(kind, "gaps") == 0) {
			mqtx_buf_adds(b, ",\"status\":");
			mqtx_json_add_cstr(b, r->status);
			mqtx_buf_adds(b, ",\"sent_at\":");
			json_time(b, r->sent_at_us);
		}
		if (strcmp(kind, "order") == 0) {
			mqtx_buf_printf(b, ",\"after_id\":%lld,\"at\":", (long long)r->after_id);
			json_where(b, rep, &r->where);
		}
		if (strcmp(kind, "gaps") == 0)
			mqtx_buf_printf(b, ",\"between\":[%lld,%lld]", (long long)r->after_id, (long long)r->before_id);
		mqtx_buf_adds(b, "}");
	}
	mqtx_buf_adds(b, "]");
}

static void print_json(const struct mqtx_audit_report *rep, const struct mqtx_config *cfg, bool dup_over,
		       bool miss_over, int status)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_adds(&b, "{\"source\":");
	mqtx_json_add_cstr(&b, rep->source);
	mqtx_buf_adds(&b, ",\"kind\":");
	mqtx_json_add_cstr(&b, rep->kind);
	mqtx_buf_adds(&b, ",\"read\":");
	mqtx_json_add_cstr(&b, rep->detail);
	mqtx_buf_printf(&b, ",\"stopped\":%s,\"deliveries\":%lld,\"distinct_keys\":%lld,\"window\":{\"since\":",
			rep->stopped ? "true" : "false", (long long)rep->deliveries, (long long)rep->distinct_keys);
	json_time(&b, rep->has_since ? rep->since_us : MQTX_AUDIT_NO_TS);
	mqtx_buf_adds(&b, ",\"until\":");
	json_time(&b, rep->sent_at_known ? rep->until_us : MQTX_AUDIT_NO_TS);
	mqtx_buf_adds(&b, ",\"destinations\":[");
	for (size_t i = 0; i < rep->n_destinations; i++) {
		if (i > 0)
			mqtx_buf_addc(&b, ',');
		mqtx_json_add_cstr(&b, rep->destinations[i]);
	}
	mqtx_buf_printf(&b, "],\"destinations_inferred\":%s},", rep->destinations_inferred ? "true" : "false");
	mqtx_buf_printf(&b, "\"outbox_sent\":%lld,", (long long)rep->outbox_sent);
	mqtx_buf_printf(&b,
			"\"duplicates\":{\"keys\":%lld,\"extra_deliveries\":%lld,\"unexplained_keys\":%lld,"
			"\"unexplained_extra_deliveries\":%lld,\"explained_keys\":%lld,\"details\":[",
			(long long)rep->dup_keys, (long long)rep->dup_extra, (long long)rep->dup_unexplained_keys,
			(long long)rep->dup_unexplained_extra, (long long)rep->dup_explained_keys);
	for (size_t i = 0; i < rep->n_dups; i++) {
		const struct mqtx_audit_dup *d = &rep->dups[i];
		mqtx_buf_adds(&b, i ? ",{\"key\":" : "{\"key\":");
		mqtx_json_add_cstr(&b, d->key);
		mqtx_buf_printf(&b, ",\"outbox_id\":%lld,\"count\":%lld,\"explained\":%s,\"where\":[", (long long)d->outbox_id,
				(long long)d->count, d->explained ? "true" : "false");
		for (size_t j = 0; j < d->n_where; j++) {
			if (j > 0)
				mqtx_buf_addc(&b, ',');
			json_where(&b, rep, &d->where[j]);
		}
		mqtx_buf_adds(&b, "]}");
	}
	mqtx_buf_adds(&b, "]},\"missing\":{\"checked\":");
	mqtx_buf_printf(&b, "%s,\"count\":%lld,\"details\":", rep->losses_checked ? "true" : "false", (long long)rep->missing);
	json_rows(&b, rep, &rep->missing_rows, "missing");
	mqtx_buf_printf(&b, "},\"strangers\":{\"keys\":%lld,\"deliveries\":%lld,\"unkeyed_deliveries\":%lld,\"details\":",
			(long long)rep->stranger_keys, (long long)rep->stranger_deliveries, (long long)rep->unkeyed);
	json_rows(&b, rep, &rep->strangers, "strangers");
	mqtx_buf_printf(&b, "},\"order\":{\"checked\":%s,\"ordering_keys\":%lld,\"out_of_order\":%lld,\"out_of_order_keys\":%lld,\"details\":",
			rep->order_checked ? "true" : "false", (long long)rep->order_keys, (long long)rep->out_of_order,
			(long long)rep->out_of_order_keys);
	json_rows(&b, rep, &rep->order_rows, "order");
	mqtx_buf_printf(&b, "},\"gaps\":{\"count\":%lld,\"ordering_keys\":%lld,\"details\":", (long long)rep->gaps,
			(long long)rep->gap_keys);
	json_rows(&b, rep, &rep->gap_rows, "gaps");
	mqtx_buf_printf(&b, "},\"delivered_not_sent\":%lld,\"consumer_table\":", (long long)rep->delivered_unsent);
	if (rep->has_table) {
		mqtx_buf_adds(&b, "{\"table\":");
		mqtx_json_add_cstr(&b, rep->table);
		mqtx_buf_adds(&b, ",\"key_column\":");
		mqtx_json_add_cstr(&b, rep->key_column);
		mqtx_buf_printf(&b, ",\"unique\":%s,\"unique_by\":", rep->table_unique ? "true" : "false");
		mqtx_json_add_cstr(&b, rep->table_unique ? rep->table_unique_by : NULL);
		mqtx_buf_adds(&b, "}");
	} else {
		mqtx_buf_adds(&b, "null");
	}
	mqtx_buf_printf(&b,
			",\"tolerance\":{\"max_duplicates\":%lld,\"max_missing\":%lld,\"duplicates_over\":%s,\"missing_over\":%s},"
			"\"exit_status\":%d,\"elapsed_ms\":%lld}\n",
			(long long)cfg->audit_max_duplicates, (long long)cfg->audit_max_missing, dup_over ? "true" : "false",
			miss_over ? "true" : "false", status, (long long)rep->elapsed_ms);
	fwrite(b.data, 1, b.len, stdout);
	mqtx_buf_free(&b);
}

/* ---- csv ---- */

static void csv_field(struct mqtx_buf *b, const char *s)
{
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\r\n") == NULL) {
		mqtx_buf_adds(b, s);
		return;
	}
	mqtx_buf_addc(b, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"')
			mqtx_buf_addc(b, '"');
		mqtx_buf_addc(b, *s);
	}
	mqtx_buf_addc(b, '"');
}

static void csv_row(struct mqtx_buf *b, const char *finding, const char *key, int64_t id, const char *okey, int64_t count,
		    const char *status, const char *where)
{
	char num[32];
	mqtx_buf_adds(b, finding);
	mqtx_buf_addc(b, ',');
	csv_field(b, key);
	mqtx_buf_addc(b, ',');
	if (id > 0) {
		snprintf(num, sizeof(num), "%lld", (long long)id);
		mqtx_buf_adds(b, num);
	}
	mqtx_buf_addc(b, ',');
	csv_field(b, okey);
	mqtx_buf_printf(b, ",%lld,", (long long)count);
	csv_field(b, status);
	mqtx_buf_addc(b, ',');
	csv_field(b, where);
	mqtx_buf_addc(b, '\n');
}

static void print_csv(const struct mqtx_audit_report *rep)
{
	struct mqtx_buf b = MQTX_BUF_INIT, w = MQTX_BUF_INIT;
	mqtx_buf_adds(&b, "finding,key,outbox_id,ordering_key,count,status,where\n");
	for (size_t i = 0; i < rep->n_dups; i++) {
		const struct mqtx_audit_dup *d = &rep->dups[i];
		mqtx_buf_reset(&w);
		for (size_t j = 0; j < d->n_where; j++) {
			if (j > 0)
				mqtx_buf_adds(&w, "; ");
			where_text(rep, &d->where[j], &w);
		}
		csv_row(&b, "duplicate", d->key, d->outbox_id, NULL, d->count, d->explained ? "explained" : "unexplained", w.data);
	}
	for (size_t i = 0; i < rep->missing_rows.n; i++) {
		const struct mqtx_audit_row *r = &rep->missing_rows.rows[i];
		csv_row(&b, "missing", r->key, r->outbox_id, r->ordering_key, 0, r->status, NULL);
	}
	for (size_t i = 0; i < rep->strangers.n; i++) {
		const struct mqtx_audit_row *r = &rep->strangers.rows[i];
		mqtx_buf_reset(&w);
		where_text(rep, &r->where, &w);
		csv_row(&b, "stranger", r->key, 0, NULL, r->count, NULL, w.data);
	}
	for (size_t i = 0; i < rep->order_rows.n; i++) {
		const struct mqtx_audit_row *r = &rep->order_rows.rows[i];
		mqtx_buf_reset(&w);
		mqtx_buf_printf(&w, "after id %lld at ", (long long)r->after_id);
		where_text(rep, &r->where, &w);
		csv_row(&b, "out_of_order", r->key, r->outbox_id, r->ordering_key, 1, NULL, w.data);
	}
	for (size_t i = 0; i < rep->gap_rows.n; i++) {
		const struct mqtx_audit_row *r = &rep->gap_rows.rows[i];
		mqtx_buf_reset(&w);
		mqtx_buf_printf(&w, "between ids %lld and %lld", (long long)r->after_id, (long long)r->before_id);
		csv_row(&b, "gap", r->key, r->outbox_id, r->ordering_key, 0, r->status, w.data);
	}
	fwrite(b.data, 1, b.len, stdout);
	mqtx_buf_free(&b);
	mqtx_buf_free(&w);
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
		return mqtx_usage_error("dedupe-audit", "unexpected argument '%s' (the source goes after --source)", c->cli.args[0]);
	if (a->source == NULL)
		return mqtx_usage_error("dedupe-audit", "--source is required (a kafka:// or amqp:// URL, inbox:, a JSONL file or -)");
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
	bool dup_over = rep.dup_unexplained_keys > cli.cfg->audit_max_duplicates;
	bool miss_over = rep.losses_checked && rep.missing > cli.cfg->audit_max_missing;
	rc = dup_over && miss_over ? AUDIT_EXIT_BOTH : dup_over ? AUDIT_EXIT_DUPLICATES : miss_over ? AUDIT_EXIT_MISSING : EXIT_OK;

	struct mqtx_buf verdict = MQTX_BUF_INIT;
	if (rc == EXIT_OK)
		mqtx_buf_adds(&verdict, "OK: within --max-duplicates and --max-missing");
	else
		mqtx_buf_adds(&verdict, "FAIL:");
	if (dup_over)
		mqtx_buf_printf(&verdict, " %lld duplicated %s > --max-duplicates %lld;", (long long)rep.dup_unexplained_keys,
				plural(rep.dup_unexplained_keys, "key", "keys"), (long long)cli.cfg->audit_max_duplicates);
	if (miss_over)
		mqtx_buf_printf(&verdict, " %lld missing > --max-missing %lld;", (long long)rep.missing,
				(long long)cli.cfg->audit_max_missing);
	if (verdict.data[verdict.len - 1] == ';')
		verdict.data[--verdict.len] = '\0';
	mqtx_buf_printf(&verdict, " (exit %d)", rc);

	switch (a.format) {
	case FMT_TEXT: print_text(&rep, verdict.data); break;
	case FMT_JSON: print_json(&rep, cli.cfg, dup_over, miss_over, rc); break;
	case FMT_CSV: print_csv(&rep); break;
	}
	if (rep.has_table && !rep.table_unique)
		mqtx_warn("consumer table %s has no unique constraint or unique index on %s: nothing stops it from processing a duplicate twice",
			  rep.table, rep.key_column);
	mqtx_info("audit: %lld deliveries, %lld duplicated keys (%lld unexplained), %lld missing, %lld stranger keys, %lld out of order, %lld gaps in %.1fs",
		  (long long)rep.deliveries, (long long)rep.dup_keys, (long long)rep.dup_unexplained_keys, (long long)rep.missing,
		  (long long)rep.stranger_keys, (long long)rep.out_of_order, (long long)rep.gaps, (double)rep.elapsed_ms / 1000.0);
	mqtx_buf_free(&verdict);
	mqtx_audit_report_free(&rep);
	return rc;
}
