/* mqtx check: the health of an outbox for people (a table), programs
 * (JSON) and Prometheus (textfile collector), with Nagios exit codes; or
 * the story of one message (--explain). Read-only unless --resolve. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check/check.h"
#include "base/json.h"
#include "base/log.h"
#include "db/pg.h"
#include "base/util.h"
#include "commands.h"

#define JSON_VERSION 1

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

enum format { FMT_TEXT, FMT_JSON, FMT_PROM };

struct check_args {
	enum format format;
	const char *explain;
	bool resolve;
};

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct check_args *a = ctx;
	if (strcmp(lng, "format") == 0) {
		if (strcmp(value, "text") == 0)
			a->format = FMT_TEXT;
		else if (strcmp(value, "json") == 0)
			a->format = FMT_JSON;
		else if (strcmp(value, "prometheus") == 0)
			a->format = FMT_PROM;
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

/* ------------------------------------------------------------ text */

struct style {
	bool on;
};

static const char *sgr(const struct style *st, const char *code)
{
	return st->on ? code : "";
}

static const char *level_colour(const struct style *st, enum mqtx_check_level l)
{
	if (!st->on)
		return "";
	switch (l) {
	case MQTX_CHECK_OK: return "\033[32m";
	case MQTX_CHECK_WARNING: return "\033[33m";
	case MQTX_CHECK_CRITICAL: return "\033[1;31m";
	case MQTX_CHECK_UNKNOWN: return "\033[35m";
	}
	return "";
}

static const char *upper_level(enum mqtx_check_level l)
{
	switch (l) {
	case MQTX_CHECK_OK: return "OK";
	case MQTX_CHECK_WARNING: return "WARNING";
	case MQTX_CHECK_CRITICAL: return "CRITICAL";
	case MQTX_CHECK_UNKNOWN: return "UNKNOWN";
	}
	return "UNKNOWN";
}

static void age_text(int64_t ms, char *out, size_t n)
{
	if (ms < 0)
		snprintf(out, n, "-");
	else
		mqtx_format_duration(ms, out, n);
}

static void count_text(const struct mqtx_check_count *c, char *out, size_t n)
{
	if (c->n < 0)
		snprintf(out, n, "unknown");
	else
		snprintf(out, n, "%s%lld", c->approximate ? "~" : "", (long long)c->n);
}

/* Shortens s for a table cell (UTF-8 safe enough: cuts at a lead byte). */
static void cell(const char *s, size_t max, char *out, size_t n)
{
	if (s == NULL)
		s = "-";
	size_t len = strlen(s);
	if (len <= max) {
		snprintf(out, n, "%s", s);
		return;
	}
	size_t cut = max > 3 ? max - 3 : max;
	while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
		cut--;
	snprintf(out, n, "%.*s...", (int)cut, s);
}

static void print_row_line(const char *indent, const struct mqtx_check_row *r)
{
	char age[32], err[200];
	age_text(r->age_ms, age, sizeof(age));
	cell(r->last_error, 120, err, sizeof(err));
	printf("%srow %lld to '%s'%s%s%s, %lld attempt(s)%s%s%s%s%s\n", indent, (long long)r->id, r->destination,
	       r->ordering_key ? " (ordering key '" : "", r->ordering_key ? r->ordering_key : "", r->ordering_key ? "')" : "",
	       (long long)r->attempts, r->age_ms >= 0 ? ", written " : "", r->age_ms >= 0 ? age : "",
	       r->age_ms >= 0 ? " ago" : "", r->last_error ? ": " : "", r->last_error ? err : "");
}

static void text_summary_line(const struct mqtx_check_report *rep, const struct style *st)
{
	printf("%s%s%s - outbox %s: ", level_colour(st, rep->level), upper_level(rep->level), sgr(st, "\033[0m"),
	       rep->outbox);
	if (rep->n_problems > 0) {
		printf("%s", rep->problems[0].message);
		if (rep->n_problems > 1)
			printf(" (and %zu more problem%s)", rep->n_problems - 1, rep->n_problems > 2 ? "s" : "");
		printf("\n");
		return;
	}
	char pend[48], age[32];
	count_text(&rep->status[MQTX_ST_PENDING], pend, sizeof(pend));
	age_text(rep->oldest_pending_ms, age, sizeof(age));
	printf("%s pending", pend);
	if (rep->oldest_pending_ms >= 0)
		printf(" (oldest %s)", age);
	printf(", %lld dead", (long long)rep->status[MQTX_ST_DEAD].n);
	if (rep->relayed_hour >= 0)
		printf(", %lld relayed in the last hour", (long long)rep->relayed_hour);
	if (rep->relays_live > 0) {
		printf(", %lld relay%s live", (long long)rep->relays_live, rep->relays_live == 1 ? "" : "s");
	} else if (rep->last_relay_seen_ms >= 0) {
		char seen[32];
		age_text(rep->last_relay_seen_ms, seen, sizeof(seen));
		printf(", last relay seen %s ago", seen);
	}
	printf("\n");
}

static void print_text(const struct mqtx_check_report *rep, const struct style *st)
{
	const char *B = sgr(st, "\033[1m"), *R = sgr(st, "\033[0m");
	text_summary_line(rep, st);
	printf("\n%sdatabase%s %s, checked %s in %lldms\n", B, R, rep->database ? rep->database : "?",
	       rep->checked_at ? rep->checked_at : "?", (long long)rep->elapsed_ms);

	printf("\n%s%-14s %12s%s\n", B, "status", "rows", R);
	bool approx = false;
	for (int s = 0; s < MQTX_ST__COUNT; s++) {
		char n[48];
		count_text(&rep->status[s], n, sizeof(n));
		approx = approx || rep->status[s].approximate;
		printf("%-14s %12s", mqtx_check_status_names[s], n);
		if (s == MQTX_ST_PENDING && rep->oldest_pending_ms >= 0) {
			char age[32];
			age_text(rep->oldest_pending_ms, age, sizeof(age));
			printf("   oldest %s", age);
		}
		printf("\n");
	}
	if (approx)
		printf("(~ approximately: estimated from table statistics, or more rows than check.scan_limit)\n");
	if (rep->relayed_hour >= 0)
		printf("relayed: %s%lld in the last minute, %s%lld in the last hour\n", rep->relayed_approximate ? "~" : "",
		       (long long)rep->relayed_minute, rep->relayed_approximate ? "at least " : "", (long long)rep->relayed_hour);

	if (rep->n_dests > 0) {
		bool broker = false;
		for (size_t i = 0; i < rep->n_dests; i++)
			broker = broker || rep->dests[i].exists >= 0;
		printf("\n%s%-30s %9s %9s %7s %9s %9s%s%s\n", B, "destination", "pending", "oldest", "dead", "last min",
		       "last hour", broker ? "  broker" : "", R);
		size_t shown = 0;
		for (size_t i = 0; i < rep->n_dests; i++) {
			const struct mqtx_check_dest *d = &rep->dests[i];
			if (shown++ >= 100) {
				printf("... and %zu more destinations (see --format json)\n", rep->n_dests - 100);
				break;
			}
			char name[64], age[32], m[32], h[32];
			cell(d->name[0] ? d->name : "(default exchange)", 30, name, sizeof(name));
			age_text(d->oldest_pending_ms, age, sizeof(age));
			snprintf(m, sizeof(m), "%lld", (long long)d->relayed_minute);
			snprintf(h, sizeof(h), "%lld", (long long)d->relayed_hour);
			printf("%-30s %9lld %9s %7lld %9s %9s", name, (long long)d->pending, age, (long long)d->dead,
			       d->relayed_minute >= 0 ? m : "-", d->relayed_hour >= 0 ? h : "-");
			if (d->exists == 1)
				printf("  exists");
			else if (d->exists == 0)
				printf("  %sMISSING%s", level_colour(st, MQTX_CHECK_CRITICAL), R);
			printf("\n");
		}
	}

	if (!rep->relays_known) {
		printf("\nrelays: unknown (no mqtx_relays table: run 'mqtx init')\n");
	} else if (rep->n_relays == 0) {
		printf("\nrelays: none has run for this outbox\n");
	} else {
		printf("\n%s%-40s %-9s %10s %10s %8s%s\n", B, "relay", "state", "seen", "relayed", "failed", R);
		for (size_t i = 0; i < rep->n_relays; i++) {
			const struct mqtx_check_relay *x = &rep->relays[i];
			char id[64], seen[40], a[32];
			cell(x->relay_id, 40, id, sizeof(id));
			age_text(x->seen_ms, a, sizeof(a));
			snprintf(seen, sizeof(seen), "%s ago", a);
			enum mqtx_check_level l = x->state == MQTX_RELAY_STALE ? MQTX_CHECK_WARNING : MQTX_CHECK_OK;
			printf("%-40s %s%-9s%s %10s %10lld %8lld\n", id, x->state == MQTX_RELAY_STOPPED ? "" : level_colour(st, l),
			       mqtx_relay_state_name(x->state), R, seen, (long long)x->relayed, (long long)x->failed);
		}
	}
	if (rep->completion_checked)
		printf("\ncompletion: %lld sent message(s) awaiting a consumer's completion\n",
		       (long long)rep->awaiting_completion);
	if (rep->n_queues > 0) {
		printf("\n%s%-30s %10s %10s%s\n", B, "queue", "messages", "consumers", R);
		for (size_t i = 0; i < rep->n_queues; i++) {
			const struct mqtx_check_queue *q = &rep->queues[i];
			char name[64];
			cell(q->name, 30, name, sizeof(name));
			if (q->depth < 0)
				printf("%-30s %10s %10s  %s\n", name, "-", "-", q->detail ? q->detail : "does not exist");
			else
				printf("%-30s %10lld %10lld\n", name, (long long)q->depth, (long long)q->consumers);
		}
	}
	if (rep->resolved)
		printf("\nresolve: %lld committed, %lld rolled back, %lld still unknown, %lld failed\n",
		       (long long)rep->resolve.committed, (long long)rep->resolve.rolled_back, (long long)rep->resolve.unknown,
		       (long long)rep->resolve.failed);

	if (rep->n_problems == 0) {
		printf("\nno problems\n");
		return;
	}
	printf("\n%sproblems%s\n", B, R);
	for (size_t i = 0; i < rep->n_problems; i++) {
		const struct mqtx_check_problem *p = &rep->problems[i];
		printf("%s%-8s%s %s: %s\n", level_colour(st, p->level), upper_level(p->level), R, p->check, p->message);
		for (size_t k = 0; k < p->n_rows; k++)
			print_row_line("         ", &p->rows[k]);
		for (size_t k = 0; k < p->n_keys; k++) {
			const struct mqtx_check_blocked *b = &p->keys[k];
			char err[160];
			cell(b->head.last_error, 100, err, sizeof(err));
			printf("         key '%s': %lld row(s) wait behind row %lld (to '%s', %lld attempt(s): %s)\n",
			       b->ordering_key, (long long)b->behind, (long long)b->head.id, b->head.destination,
			       (long long)b->head.attempts, err);
		}
		for (size_t k = 0; k < p->n_relays; k++) {
			char a[32];
			age_text(p->relays[k].seen_ms, a, sizeof(a));
			printf("         relay %s (pid %lld) last seen %s ago\n", p->relays[k].relay_id, (long long)p->relays[k].pid, a);
		}
		for (size_t k = 0; k < p->n_items; k++) {
			char a[32];
			age_text(p->items[k].age_ms, a, sizeof(a));
			printf("         %s '%s', %s old: %s\n", p->items[k].kind, p->items[k].key, a, p->items[k].detail);
		}
		if (p->action != NULL)
			printf("         %s-> %s%s\n", B, p->action, R);
	}
}

/* ------------------------------------------------------------ JSON */

static void jkey(struct mqtx_buf *b, bool *first, const char *k)
{
	if (!*first)
		mqtx_buf_addc(b, ',');
	*first = false;
	mqtx_json_add_cstr(b, k);
	mqtx_buf_addc(b, ':');
}

static void jstr(struct mqtx_buf *b, bool *first, const char *k, const char *v)
{
	jkey(b, first, k);
	mqtx_json_add_cstr(b, v);
}

static void jint(struct mqtx_buf *b, bool *first, const char *k, int64_t v)
{
	jkey(b, first, k);
	mqtx_buf_printf(b, "%lld", (long long)v);
}

/* An integer, or null when negative (unknown / not applicable). */
static void jint_or_null(struct mqtx_buf *b, bool *first, const char *k, int64_t v)
{
	jkey(b, first, k);
	if (v < 0)
		mqtx_buf_adds(b, "null");
	else
		mqtx_buf_printf(b, "%lld", (long long)v);
}

static void jbool(struct mqtx_buf *b, bool *first, const char *k, bool v)
{
	jkey(b, first, k);
	mqtx_buf_adds(b, v ? "true" : "false");
}

static void jsecs(struct mqtx_buf *b, bool *first, const char *k, int64_t ms, bool null_if_negative)
{
	jkey(b, first, k);
	if (ms < 0 && null_if_negative)
		mqtx_buf_adds(b, "null");
	else
		mqtx_buf_printf(b, "%.3f", (double)ms / 1000.0);
}

static void json_row(struct mqtx_buf *b, const struct mqtx_check_row *r)
{
	bool f = true;
	mqtx_buf_addc(b, '{');
	jint(b, &f, "id", r->id);
	jstr(b, &f, "key", r->key);
	jstr(b, &f, "destination", r->destination);
	jstr(b, &f, "ordering_key", r->ordering_key);
	jint(b, &f, "attempts", r->attempts);
	jstr(b, &f, "last_error", r->last_error);
	jsecs(b, &f, "age_seconds", r->age_ms, true);
	jkey(b, &f, "retry_in_seconds");
	if (r->retry_in_ms == MQTX_CHECK_PARKED)
		mqtx_buf_adds(b, "null"); /* parked: available_at is infinity */
	else
		mqtx_buf_printf(b, "%.3f", (double)(r->retry_in_ms > 0 ? r->retry_in_ms : 0) / 1000.0);
	mqtx_buf_addc(b, '}');
}

static void json_relay(struct mqtx_buf *b, const struct mqtx_check_relay *x)
{
	bool f = true;
	mqtx_buf_addc(b, '{');
	jstr(b, &f, "relay_id", x->relay_id);
	jstr(b, &f, "host", x->host);
	jint(b, &f, "pid", x->pid);
	jstr(b, &f, "version", x->version);
	jstr(b, &f, "state", mqtx_relay_state_name(x->state));
	jsecs(b, &f, "last_seen_age_seconds", x->seen_ms, false);
	jsecs(b, &f, "started_age_seconds", x->started_ms, false);
	jint(b, &f, "relayed", x->relayed);
	jint(b, &f, "failed", x->failed);
	jstr(b, &f, "last_error", x->last_error);
	mqtx_buf_addc(b, '}');
}

static void json_indoubt(struct mqtx_buf *b, const struct mqtx_check_indoubt *x)
{
	bool f = true;
	mqtx_buf_addc(b, '{');
	jstr(b, &f, "kind", x->kind);
	jstr(b, &f, "key", x->key);
	jint_or_null(b, &f, "id", x->id > 0 ? x->id : -1);
	jsecs(b, &f, "age_seconds", x->age_ms, true);
	jstr(b, &f, "detail", x->detail);
	mqtx_buf_addc(b, '}');
}

static void json_count(struct mqtx_buf *b, bool *first, const char *k, const struct mqtx_check_count *c)
{
	jkey(b, first, k);
	bool f = true;
	mqtx_buf_addc(b, '{');
	jint_or_null(b, &f, "rows", c->n);
	jbool(b, &f, "approximate", c->approximate);
	mqtx_buf_addc(b, '}');
}

static void json_thresholds(struct mqtx_buf *b, bool *first, const struct mqtx_config *cfg)
{
	jkey(b, first, "thresholds");
	bool f = true;
	mqtx_buf_addc(b, '{');
	jsecs(b, &f, "warn_age_seconds", cfg->check_warn_age_ms > 0 ? cfg->check_warn_age_ms : -1, true);
	jsecs(b, &f, "crit_age_seconds", cfg->check_crit_age_ms > 0 ? cfg->check_crit_age_ms : -1, true);
	jint_or_null(b, &f, "warn_attempts", cfg->check_warn_attempts > 0 ? cfg->check_warn_attempts : -1);
	jint(b, &f, "max_dead", cfg->check_max_dead);
	jsecs(b, &f, "relay_stale_seconds", cfg->check_relay_stale_ms, false);
	jsecs(b, &f, "completion_after_seconds", cfg->check_completion ? cfg->check_completion_after_ms : -1, true);
	jint_or_null(b, &f, "queue_max_depth", cfg->check_queue_max_depth > 0 ? cfg->check_queue_max_depth : -1);
	jint(b, &f, "queue_min_consumers", cfg->check_queue_min_consumers);
	jint(b, &f, "scan_limit", cfg->check_scan_limit);
	mqtx_buf_addc(b, '}');
}

static void print_json(const struct mqtx_check_report *rep, const struct mqtx_config *cfg)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	bool f = true;
	mqtx_buf_addc(&b, '{');
	jint(&b, &f, "version", JSON_VERSION);
	jstr(&b, &f, "status", mqtx_check_level_name(rep->level));
	jint(&b, &f, "exit_code", (int64_t)rep->level);
	jstr(&b, &f, "outbox", rep->outbox);
	jstr(&b, &f, "database", rep->database);
	jstr(&b, &f, "checked_at", rep->checked_at);
	jsecs(&b, &f, "elapsed_seconds", rep->elapsed_ms, false);
	json_thresholds(&b, &f, cfg);

	jkey(&b, &f, "counts");
	bool g = true;
	mqtx_buf_addc(&b, '{');
	for (int s = 0; s < MQTX_ST__COUNT; s++)
		json_count(&b, &g, mqtx_check_status_names[s], &rep->status[s]);
	mqtx_buf_addc(&b, '}');
	struct mqtx_check_count total = {rep->total_estimate, false};
	bool any_approx = false;
	for (int s = 0; s < MQTX_ST__COUNT; s++)
		any_approx = any_approx || rep->status[s].approximate;
	total.approximate = any_approx;
	json_count(&b, &f, "total", &total);
	jsecs(&b, &f, "oldest_pending_age_seconds", rep->oldest_pending_ms, true);
	jint_or_null(&b, &f, "relayed_last_minute", rep->relayed_minute);
	jint_or_null(&b, &f, "relayed_last_hour", rep->relayed_hour);
	jbool(&b, &f, "relayed_approximate", rep->relayed_approximate);
	jint(&b, &f, "high_attempt_rows", rep->high_attempt_rows);
	jint_or_null(&b, &f, "blocked_ordering_keys", rep->blocked_keys);
	jint_or_null(&b, &f, "blocked_rows", rep->blocked_rows);

	jkey(&b, &f, "destinations");
	mqtx_buf_addc(&b, '[');
	for (size_t i = 0; i < rep->n_dests; i++) {
		const struct mqtx_check_dest *d = &rep->dests[i];
		bool h = true;
		mqtx_buf_adds(&b, i ? ",{" : "{");
		jstr(&b, &h, "destination", d->name);
		jint(&b, &h, "pending", d->pending);
		jint(&b, &h, "dead", d->dead);
		jsecs(&b, &h, "oldest_pending_age_seconds", d->oldest_pending_ms, true);
		jint_or_null(&b, &h, "relayed_last_minute", d->relayed_minute);
		jint_or_null(&b, &h, "relayed_last_hour", d->relayed_hour);
		jkey(&b, &h, "exists");
		mqtx_buf_adds(&b, d->exists < 0 ? "null" : d->exists ? "true" : "false");
		jstr(&b, &h, "broker_detail", d->broker_detail);
		mqtx_buf_addc(&b, '}');
	}
	mqtx_buf_addc(&b, ']');

	jkey(&b, &f, "relays");
	if (!rep->relays_known) {
		mqtx_buf_adds(&b, "null");
	} else {
		bool h = true;
		mqtx_buf_addc(&b, '{');
		jint(&b, &h, "live", rep->relays_live);
		jint(&b, &h, "stale", rep->relays_stale);
		jint(&b, &h, "stopped", rep->relays_stopped);
		jsecs(&b, &h, "last_seen_age_seconds", rep->last_relay_seen_ms, true);
		jkey(&b, &h, "list");
		mqtx_buf_addc(&b, '[');
		for (size_t i = 0; i < rep->n_relays; i++) {
			if (i)
				mqtx_buf_addc(&b, ',');
			json_relay(&b, &rep->relays[i]);
		}
		mqtx_buf_adds(&b, "]}");
	}

	jkey(&b, &f, "in_doubt");
	if (!rep->in_doubt_known) {
		mqtx_buf_adds(&b, "null");
	} else {
		mqtx_buf_addc(&b, '[');
		for (size_t i = 0; i < rep->n_in_doubt; i++) {
			if (i)
				mqtx_buf_addc(&b, ',');
			json_indoubt(&b, &rep->in_doubt[i]);
		}
		mqtx_buf_addc(&b, ']');
	}

	jkey(&b, &f, "completion");
	if (!rep->completion_checked) {
		mqtx_buf_adds(&b, "null");
	} else {
		bool h = true;
		mqtx_buf_addc(&b, '{');
		jint(&b, &h, "awaiting", rep->awaiting_completion);
		jsecs(&b, &h, "oldest_sent_age_seconds", rep->oldest_awaiting_ms, true);
		mqtx_buf_addc(&b, '}');
	}

	jkey(&b, &f, "broker");
	if (!cfg->check_broker) {
		mqtx_buf_adds(&b, "null");
	} else {
		bool h = true;
		mqtx_buf_addc(&b, '{');
		jbool(&b, &h, "checked", rep->broker_checked);
		jkey(&b, &h, "queues");
		mqtx_buf_addc(&b, '[');
		for (size_t i = 0; i < rep->n_queues; i++) {
			const struct mqtx_check_queue *q = &rep->queues[i];
			bool k = true;
			mqtx_buf_adds(&b, i ? ",{" : "{");
			jstr(&b, &k, "queue", q->name);
			jbool(&b, &k, "exists", q->exists);
			jint_or_null(&b, &k, "messages", q->depth);
			jint_or_null(&b, &k, "consumers", q->consumers);
			jstr(&b, &k, "detail", q->detail);
			mqtx_buf_addc(&b, '}');
		}
		mqtx_buf_adds(&b, "]}");
	}

	jkey(&b, &f, "resolve");
	if (!rep->resolved) {
		mqtx_buf_adds(&b, "null");
	} else {
		bool h = true;
		mqtx_buf_addc(&b, '{');
		jint(&b, &h, "committed", rep->resolve.committed);
		jint(&b, &h, "rolled_back", rep->resolve.rolled_back);
		jint(&b, &h, "unknown", rep->resolve.unknown);
		jint(&b, &h, "failed", rep->resolve.failed);
		mqtx_buf_addc(&b, '}');
	}

	jkey(&b, &f, "problems");
	mqtx_buf_addc(&b, '[');
	for (size_t i = 0; i < rep->n_problems; i++) {
		const struct mqtx_check_problem *p = &rep->problems[i];
		bool h = true;
		mqtx_buf_adds(&b, i ? ",{" : "{");
		jstr(&b, &h, "check", p->check);
		jstr(&b, &h, "severity", mqtx_check_level_name(p->level));
		jstr(&b, &h, "message", p->message);
		jstr(&b, &h, "action", p->action);
		jint_or_null(&b, &h, "count", p->count);
		if (p->destination != NULL)
			jstr(&b, &h, "destination", p->destination);
		if (p->queue != NULL)
			jstr(&b, &h, "queue", p->queue);
		if (p->n_rows > 0) {
			jkey(&b, &h, "rows");
			mqtx_buf_addc(&b, '[');
			for (size_t k = 0; k < p->n_rows; k++) {
				if (k)
					mqtx_buf_addc(&b, ',');
				json_row(&b, &p->rows[k]);
			}
			mqtx_buf_addc(&b, ']');
		}
		if (p->n_keys > 0) {
			jkey(&b, &h, "ordering_keys");
			mqtx_buf_addc(&b, '[');
			for (size_t k = 0; k < p->n_keys; k++) {
				bool m = true;
				mqtx_buf_adds(&b, k ? ",{" : "{");
				jstr(&b, &m, "ordering_key", p->keys[k].ordering_key);
				jint(&b, &m, "behind", p->keys[k].behind);
				jkey(&b, &m, "head");
				json_row(&b, &p->keys[k].head);
				mqtx_buf_addc(&b, '}');
			}
			mqtx_buf_addc(&b, ']');
		}
		if (p->n_relays > 0) {
			jkey(&b, &h, "relays");
			mqtx_buf_addc(&b, '[');
			for (size_t k = 0; k < p->n_relays; k++) {
				if (k)
					mqtx_buf_addc(&b, ',');
				json_relay(&b, &p->relays[k]);
			}
			mqtx_buf_addc(&b, ']');
		}
		if (p->n_items > 0) {
			jkey(&b, &h, "items");
			mqtx_buf_addc(&b, '[');
			for (size_t k = 0; k < p->n_items; k++) {
				if (k)
					mqtx_buf_addc(&b, ',');
				json_indoubt(&b, &p->items[k]);
			}
			mqtx_buf_addc(&b, ']');
		}
		mqtx_buf_addc(&b, '}');
	}
	mqtx_buf_adds(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	mqtx_buf_free(&b);
}

/* ------------------------------------------------------------ Prometheus */

struct prom {
	struct mqtx_buf b;
	char *outbox; /* escaped label value */
};

static char *prom_escape(const char *s)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			mqtx_buf_addc(&b, '\\');
		if (*s == '\n') {
			mqtx_buf_adds(&b, "\\n");
			continue;
		}
		mqtx_buf_addc(&b, *s);
	}
	if (b.data == NULL)
		return mqtx_xstrdup("");
	return mqtx_buf_detach(&b);
}

static void prom_family(struct prom *p, const char *name, const char *help)
{
	mqtx_buf_printf(&p->b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* One sample; label is "name" and value its value, or NULL for none. */
static void prom_sample(struct prom *p, const char *name, const char *label, const char *value, const char *num)
{
	mqtx_buf_printf(&p->b, "%s{outbox=\"%s\"", name, p->outbox);
	if (label != NULL) {
		char *v = prom_escape(value);
		mqtx_buf_printf(&p->b, ",%s=\"%s\"", label, v);
		free(v);
	}
	mqtx_buf_printf(&p->b, "} %s\n", num);
}

static void prom_int(struct prom *p, const char *name, const char *label, const char *value, int64_t n)
{
	char num[32];
	snprintf(num, sizeof(num), "%lld", (long long)n);
	prom_sample(p, name, label, value, num);
}

static void prom_secs(struct prom *p, const char *name, const char *label, const char *value, int64_t ms)
{
	char num[48];
	snprintf(num, sizeof(num), "%.3f", (double)(ms < 0 ? 0 : ms) / 1000.0);
	prom_sample(p, name, label, value, num);
}

static void print_prometheus(const struct mqtx_check_report *rep, const struct mqtx_config *cfg)
{
	struct prom p = {MQTX_BUF_INIT, prom_escape(rep->outbox)};
	prom_family(&p, "mqtx_check_status", "Result of mqtx check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN");
	prom_int(&p, "mqtx_check_status", NULL, NULL, (int64_t)rep->level);
	prom_family(&p, "mqtx_check_problems", "Problems found, by severity");
	static const enum mqtx_check_level sev[] = {MQTX_CHECK_WARNING, MQTX_CHECK_CRITICAL, MQTX_CHECK_UNKNOWN};
	for (size_t i = 0; i < 3; i++) {
		int64_t n = 0;
		for (size_t k = 0; k < rep->n_problems; k++)
			n += rep->problems[k].level == sev[i];
		prom_int(&p, "mqtx_check_problems", "severity", mqtx_check_level_name(sev[i]), n);
	}
	prom_family(&p, "mqtx_check_duration_seconds", "How long the check took");
	prom_secs(&p, "mqtx_check_duration_seconds", NULL, NULL, rep->elapsed_ms);

	prom_family(&p, "mqtx_outbox_rows", "Outbox rows by status (see mqtx_outbox_rows_approximate)");
	for (int s = 0; s < MQTX_ST__COUNT; s++)
		if (rep->status[s].n >= 0)
			prom_int(&p, "mqtx_outbox_rows", "status", mqtx_check_status_names[s], rep->status[s].n);
	prom_family(&p, "mqtx_outbox_rows_approximate", "1 when mqtx_outbox_rows of the status is an estimate or a lower bound");
	for (int s = 0; s < MQTX_ST__COUNT; s++)
		if (rep->status[s].n >= 0)
			prom_int(&p, "mqtx_outbox_rows_approximate", "status", mqtx_check_status_names[s],
				 rep->status[s].approximate ? 1 : 0);
	prom_family(&p, "mqtx_outbox_oldest_pending_age_seconds", "Age of the oldest pending row (0: none)");
	prom_secs(&p, "mqtx_outbox_oldest_pending_age_seconds", NULL, NULL, rep->oldest_pending_ms);
	if (rep->relayed_hour >= 0) {
		prom_family(&p, "mqtx_outbox_relayed_last_minute", "Rows sent in the last minute");
		prom_int(&p, "mqtx_outbox_relayed_last_minute", NULL, NULL, rep->relayed_minute);
		prom_family(&p, "mqtx_outbox_relayed_last_hour", "Rows sent in the last hour");
		prom_int(&p, "mqtx_outbox_relayed_last_hour", NULL, NULL, rep->relayed_hour);
	}
	prom_family(&p, "mqtx_outbox_high_attempt_rows", "Pending rows that failed at least check.warn_attempts times");
	prom_int(&p, "mqtx_outbox_high_attempt_rows", NULL, NULL, rep->high_attempt_rows);
	if (rep->blocked_keys >= 0) {
		prom_family(&p, "mqtx_outbox_blocked_ordering_keys", "Ordering keys held back by a failing first row");
		prom_int(&p, "mqtx_outbox_blocked_ordering_keys", NULL, NULL, rep->blocked_keys);
		prom_family(&p, "mqtx_outbox_blocked_rows", "Pending rows waiting behind a failing row of their ordering key");
		prom_int(&p, "mqtx_outbox_blocked_rows", NULL, NULL, rep->blocked_rows);
	}

	if (rep->n_dests > 0) {
		prom_family(&p, "mqtx_destination_pending_rows", "Pending rows per destination");
		for (size_t i = 0; i < rep->n_dests; i++)
			prom_int(&p, "mqtx_destination_pending_rows", "destination", rep->dests[i].name, rep->dests[i].pending);
		prom_family(&p, "mqtx_destination_dead_rows", "Dead rows per destination");
		for (size_t i = 0; i < rep->n_dests; i++)
			prom_int(&p, "mqtx_destination_dead_rows", "destination", rep->dests[i].name, rep->dests[i].dead);
		prom_family(&p, "mqtx_destination_oldest_pending_age_seconds", "Age of the oldest pending row per destination");
		for (size_t i = 0; i < rep->n_dests; i++)
			prom_secs(&p, "mqtx_destination_oldest_pending_age_seconds", "destination", rep->dests[i].name,
				  rep->dests[i].oldest_pending_ms);
		if (rep->relayed_hour >= 0) {
			prom_family(&p, "mqtx_destination_relayed_last_hour", "Rows sent in the last hour per destination");
			for (size_t i = 0; i < rep->n_dests; i++)
				prom_int(&p, "mqtx_destination_relayed_last_hour", "destination", rep->dests[i].name,
					 rep->dests[i].relayed_hour < 0 ? 0 : rep->dests[i].relayed_hour);
		}
		bool asked = false;
		for (size_t i = 0; i < rep->n_dests; i++)
			asked = asked || rep->dests[i].exists >= 0;
		if (asked) {
			prom_family(&p, "mqtx_destination_exists", "--broker: 1 when the destination exists on the broker");
			for (size_t i = 0; i < rep->n_dests; i++)
				if (rep->dests[i].exists >= 0)
					prom_int(&p, "mqtx_destination_exists", "destination", rep->dests[i].name, rep->dests[i].exists);
		}
	}
	if (rep->relays_known) {
		prom_family(&p, "mqtx_relays", "Relays by state (stopped: the most recent ones only)");
		prom_int(&p, "mqtx_relays", "state", "live", rep->relays_live);
		int64_t stale = 0, replaced = 0;
		for (size_t i = 0; i < rep->n_relays; i++) {
			stale += rep->relays[i].state == MQTX_RELAY_STALE;
			replaced += rep->relays[i].state == MQTX_RELAY_REPLACED;
		}
		prom_int(&p, "mqtx_relays", "state", "stale", stale);
		prom_int(&p, "mqtx_relays", "state", "replaced", replaced);
		prom_int(&p, "mqtx_relays", "state", "stopped", rep->relays_stopped);
		if (rep->last_relay_seen_ms >= 0) {
			prom_family(&p, "mqtx_relay_last_seen_age_seconds", "Time since any relay of the outbox was last seen");
			prom_secs(&p, "mqtx_relay_last_seen_age_seconds", NULL, NULL, rep->last_relay_seen_ms);
		}
	}
	if (rep->in_doubt_known) {
		prom_family(&p, "mqtx_in_doubt_items", "txpub items in doubt (half messages, prepared transactions)");
		prom_int(&p, "mqtx_in_doubt_items", NULL, NULL, (int64_t)rep->n_in_doubt);
	}
	if (rep->completion_checked) {
		prom_family(&p, "mqtx_completion_awaiting_rows", "Sent messages not completed after check.completion_after");
		prom_int(&p, "mqtx_completion_awaiting_rows", NULL, NULL, rep->awaiting_completion);
		prom_family(&p, "mqtx_completion_oldest_age_seconds", "Time since the oldest of them was sent (0: none)");
		prom_secs(&p, "mqtx_completion_oldest_age_seconds", NULL, NULL, rep->oldest_awaiting_ms);
	}
	if (rep->n_queues > 0) {
		prom_family(&p, "mqtx_queue_exists", "--broker: 1 when the queue exists");
		for (size_t i = 0; i < rep->n_queues; i++)
			prom_int(&p, "mqtx_queue_exists", "queue", rep->queues[i].name, rep->queues[i].exists ? 1 : 0);
		prom_family(&p, "mqtx_queue_messages", "--broker: messages ready in the queue");
		for (size_t i = 0; i < rep->n_queues; i++)
			if (rep->queues[i].depth >= 0)
				prom_int(&p, "mqtx_queue_messages", "queue", rep->queues[i].name, rep->queues[i].depth);
		prom_family(&p, "mqtx_queue_consumers", "--broker: consumers of the queue");
		for (size_t i = 0; i < rep->n_queues; i++)
			if (rep->queues[i].consumers >= 0)
				prom_int(&p, "mqtx_queue_consumers", "queue", rep->queues[i].name, rep->queues[i].consumers);
	}
	if (rep->resolved) {
		prom_family(&p, "mqtx_resolve_items", "--resolve: in-doubt items by outcome");
		prom_int(&p, "mqtx_resolve_items", "result", "committed", rep->resolve.committed);
		prom_int(&p, "mqtx_resolve_items", "result", "rolled_back", rep->resolve.rolled_back);
		prom_int(&p, "mqtx_resolve_items", "result", "unknown", rep->resolve.unknown);
		prom_int(&p, "mqtx_resolve_items", "result", "failed", rep->resolve.failed);
	}
	(void)cfg;
	fwrite(p.b.data, 1, p.b.len, stdout);
	mqtx_buf_free(&p.b);
	free(p.outbox);
}

/* The check could not run: say so in the requested format, so that a
 * monitoring pipeline records UNKNOWN instead of keeping stale numbers. */
static int unknown(enum format format, const struct mqtx_config *cfg, const struct mqtx_err *err, bool tty)
{
	mqtx_error("%s", err->msg);
	char *outbox = NULL;
	if (cfg != NULL) {
		struct mqtx_buf b = MQTX_BUF_INIT;
		mqtx_buf_printf(&b, "%s.%s", cfg->outbox_schema, cfg->outbox_table);
		outbox = mqtx_buf_detach(&b);
	}
	if (format == FMT_JSON) {
		struct mqtx_buf b = MQTX_BUF_INIT;
		mqtx_buf_printf(&b, "{\"version\":%d,\"status\":\"unknown\",\"exit_code\":3,\"outbox\":", JSON_VERSION);
		mqtx_json_add_cstr(&b, outbox);
		mqtx_buf_adds(&b, ",\"error\":");
		mqtx_json_add_cstr(&b, err->msg);
		mqtx_buf_adds(&b, "}\n");
		fwrite(b.data, 1, b.len, stdout);
		mqtx_buf_free(&b);
	} else if (format == FMT_PROM) {
		struct prom p = {MQTX_BUF_INIT, prom_escape(outbox ? outbox : "")};
		prom_family(&p, "mqtx_check_status", "Result of mqtx check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN");
		prom_int(&p, "mqtx_check_status", NULL, NULL, MQTX_CHECK_UNKNOWN);
		fwrite(p.b.data, 1, p.b.len, stdout);
		mqtx_buf_free(&p.b);
		free(p.outbox);
	} else if (!tty) {
		/* Nagios reads the first line of standard output */
		printf("UNKNOWN - %s\n", err->msg);
	}
	free(outbox);
	return MQTX_CHECK_UNKNOWN;
}

/* ------------------------------------------------------------ explain */

static void print_explain_text(const struct mqtx_explain *ex, const char *ident, const struct style *st)
{
	const char *B = sgr(st, "\033[1m"), *R = sgr(st, "\033[0m");
	if (!ex->found) {
		printf("%s%s%s - no outbox row and no in-doubt txpub item with id or key '%s'\n",
		       level_colour(st, MQTX_CHECK_UNKNOWN), upper_level(MQTX_CHECK_UNKNOWN), R, ident);
		return;
	}
	printf("%s%s%s - ", level_colour(st, ex->level), upper_level(ex->level), R);
	if (ex->in_outbox)
		printf("row %lld: %s\n\n", (long long)ex->id, ex->verdict);
	else
		printf("'%s': %s\n\n", ex->key, ex->verdict);
	char a[32];
	if (ex->in_outbox) {
		printf("%s%-16s%s %lld\n", B, "id", R, (long long)ex->id);
		printf("%s%-16s%s %s\n", B, "key", R, ex->key ? ex->key : "-");
		printf("%s%-16s%s %s\n", B, "status", R, ex->status);
		printf("%s%-16s%s %s\n", B, "destination", R, ex->destination ? (ex->destination[0] ? ex->destination : "(default exchange)") : "-");
		printf("%s%-16s%s %s\n", B, "routing key", R, ex->routing_key ? ex->routing_key : "-");
		printf("%s%-16s%s %s\n", B, "ordering key", R, ex->ordering_key ? ex->ordering_key : "-");
		printf("%s%-16s%s %lld\n", B, "attempts", R, (long long)ex->attempts);
		printf("%s%-16s%s %s\n", B, "last error", R, ex->last_error ? ex->last_error : "-");
		age_text(ex->age_ms, a, sizeof(a));
		printf("%s%-16s%s %s%s%s%s\n", B, "created", R, ex->created_at ? ex->created_at : "-",
		       ex->age_ms >= 0 ? " (" : "", ex->age_ms >= 0 ? a : "", ex->age_ms >= 0 ? " ago)" : "");
		printf("%s%-16s%s %s\n", B, "available", R, ex->available_at ? ex->available_at : "-");
		printf("%s%-16s%s %s\n", B, "sent", R, ex->sent_at ? ex->sent_at : "-");
		if (ex->redelivery_count > 0)
			printf("%s%-16s%s %lld (last %s)\n", B, "redelivered", R, (long long)ex->redelivery_count,
			       ex->redelivered_at ? ex->redelivered_at : "-");
		if (ex->completed_at != NULL)
			printf("%s%-16s%s %s\n", B, "completed", R, ex->completed_at);
	}
	if (ex->n_story > 0) {
		printf("\n%swhy%s\n", B, R);
		for (size_t i = 0; i < ex->n_story; i++)
			printf("  - %s\n", ex->story[i]);
	}
	if (ex->n_actions > 0) {
		printf("\n%swhat to do%s\n", B, R);
		for (size_t i = 0; i < ex->n_actions; i++)
			printf("  %s\n", ex->actions[i]);
	}
}

static void print_explain_json(const struct mqtx_explain *ex, const char *ident)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	bool f = true;
	mqtx_buf_addc(&b, '{');
	jint(&b, &f, "version", JSON_VERSION);
	jstr(&b, &f, "query", ident);
	jbool(&b, &f, "found", ex->found);
	enum mqtx_check_level lvl = ex->found ? ex->level : MQTX_CHECK_UNKNOWN;
	jstr(&b, &f, "severity", mqtx_check_level_name(lvl));
	jint(&b, &f, "exit_code", (int64_t)lvl);
	if (ex->found) {
		jbool(&b, &f, "in_outbox", ex->in_outbox);
		jint_or_null(&b, &f, "id", ex->in_outbox ? ex->id : -1);
		jstr(&b, &f, "key", ex->key);
		jstr(&b, &f, "status", ex->status);
		jstr(&b, &f, "destination", ex->destination);
		jstr(&b, &f, "routing_key", ex->routing_key);
		jstr(&b, &f, "ordering_key", ex->ordering_key);
		jint(&b, &f, "attempts", ex->attempts);
		jint(&b, &f, "redelivery_count", ex->redelivery_count);
		jstr(&b, &f, "last_error", ex->last_error);
		jstr(&b, &f, "created_at", ex->created_at);
		jstr(&b, &f, "available_at", ex->available_at);
		jstr(&b, &f, "sent_at", ex->sent_at);
		jstr(&b, &f, "redelivered_at", ex->redelivered_at);
		jstr(&b, &f, "completed_at", ex->completed_at);
		jsecs(&b, &f, "age_seconds", ex->age_ms, true);
		jkey(&b, &f, "retry_in_seconds");
		if (ex->retry_in_ms == MQTX_CHECK_PARKED)
			mqtx_buf_adds(&b, "null");
		else
			mqtx_buf_printf(&b, "%.3f", (double)(ex->retry_in_ms > 0 ? ex->retry_in_ms : 0) / 1000.0);
		jkey(&b, &f, "blocked_by");
		if (ex->ahead > 0) {
			bool h = true;
			mqtx_buf_addc(&b, '{');
			jint(&b, &h, "ahead", ex->ahead);
			jkey(&b, &h, "head");
			json_row(&b, &ex->head);
			mqtx_buf_addc(&b, '}');
		} else {
			mqtx_buf_adds(&b, "null");
		}
		jint(&b, &f, "behind", ex->behind);
		jbool(&b, &f, "relay_alive", ex->relay_alive);
		jstr(&b, &f, "in_doubt", ex->in_doubt);
		jstr(&b, &f, "verdict", ex->verdict);
		jkey(&b, &f, "story");
		mqtx_buf_addc(&b, '[');
		for (size_t i = 0; i < ex->n_story; i++) {
			if (i)
				mqtx_buf_addc(&b, ',');
			mqtx_json_add_cstr(&b, ex->story[i]);
		}
		mqtx_buf_addc(&b, ']');
		jkey(&b, &f, "actions");
		mqtx_buf_addc(&b, '[');
		for (size_t i = 0; i < ex->n_actions; i++) {
			if (i)
				mqtx_buf_addc(&b, ',');
			mqtx_json_add_cstr(&b, ex->actions[i]);
		}
		mqtx_buf_addc(&b, ']');
	}
	mqtx_buf_adds(&b, "}\n");
	fwrite(b.data, 1, b.len, stdout);
	mqtx_buf_free(&b);
}

/* ------------------------------------------------------------ main */

static int finish_output(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return MQTX_CHECK_UNKNOWN; /* main() says so */
	return rc;
}

/* Usage and configuration errors are UNKNOWN too; so is a database that
 * cannot be reached, said in the chosen format. */
static int setup_failed(struct mqtx_cmd *c, int rc, const struct mqtx_err *err)
{
	const struct check_args *a = c->args;
	(void)rc;
	if (err == NULL)
		return MQTX_CHECK_UNKNOWN;
	return finish_output(unknown(a->format, c->cli.cfg, err, isatty(STDOUT_FILENO) == 1));
}

static int validate(struct mqtx_cmd *c)
{
	const struct check_args *a = c->args;
	if (a->explain != NULL && (a->format == FMT_PROM || a->resolve))
		return mqtx_usage_error("check", "--explain cannot be combined with %s",
					a->resolve ? "--resolve" : "--format prometheus");
	return 0;
}

static int run(struct mqtx_cmd *c)
{
	const struct check_args a = *(const struct check_args *)c->args;
	const struct mqtx_cli cli = c->cli; /* borrowed */
	PGconn *conn = c->db;
	struct mqtx_err err;
	int rc;
	bool tty = isatty(STDOUT_FILENO) == 1;
	const char *nc = getenv("NO_COLOR");
	struct style st = {.on = tty && (nc == NULL || nc[0] == '\0')};
	const char *explain = a.explain;

	mqtx_err_clear(&err);
	if (explain != NULL) {
		struct mqtx_explain ex;
		if (mqtx_check_explain(conn, cli.cfg, explain, &ex, &err) < 0) {
			rc = unknown(a.format, cli.cfg, &err, tty);
		} else {
			if (a.format == FMT_JSON)
				print_explain_json(&ex, explain);
			else
				print_explain_text(&ex, explain, &st);
			if (!ex.found)
				mqtx_error("no outbox row and no in-doubt txpub item with id or key '%s'", explain);
			rc = ex.found ? (int)ex.level : MQTX_CHECK_UNKNOWN;
			mqtx_explain_free(&ex);
		}
	} else {
		struct mqtx_check_report rep;
		struct mqtx_check_opts o = {.resolve = a.resolve, .client_name = "mqtx check"};
		if (mqtx_check_run(conn, cli.cfg, &o, &rep, &err) < 0) {
			rc = unknown(a.format, cli.cfg, &err, tty);
		} else {
			switch (a.format) {
			case FMT_TEXT: print_text(&rep, &st); break;
			case FMT_JSON: print_json(&rep, cli.cfg); break;
			case FMT_PROM: print_prometheus(&rep, cli.cfg); break;
			}
			rc = (int)rep.level;
			mqtx_check_report_free(&rep);
		}
	}
	return finish_output(rc);
}

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
	.args_size = sizeof(struct check_args),
	.on_opt = on_opt,
	.validate = validate,
	.run = run, /* CMD_NEEDS_DB */
	.setup_failed = setup_failed,
};
