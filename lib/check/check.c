/* mqtx check (see check.h): a snapshot of the outbox (lib/db/check.c),
 * txpub's in-doubt items and, with --broker, the broker's answers, then a
 * table of small rules that judge them against the check.* thresholds.
 * txpub's in-doubt listing and resolution run outside the snapshot's
 * transaction. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "check/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "broker/broker.h"

/* At most this many destinations are asked about with --broker. */
#define MAX_BROKER_DESTS 200

const char *mqtx_check_level_name(enum mqtx_check_level l)
{
	switch (l) {
	case MQTX_CHECK_OK: return "ok";
	case MQTX_CHECK_WARNING: return "warning";
	case MQTX_CHECK_CRITICAL: return "critical";
	case MQTX_CHECK_UNKNOWN: return "unknown";
	}
	return "unknown";
}

const char *mqtx_relay_state_name(enum mqtx_relay_state s)
{
	switch (s) {
	case MQTX_RELAY_LIVE: return "live";
	case MQTX_RELAY_STOPPED: return "stopped";
	case MQTX_RELAY_STALE: return "stale";
	case MQTX_RELAY_REPLACED: return "replaced";
	}
	return "stale";
}

enum mqtx_check_level mqtx_relay_state_level(enum mqtx_relay_state s)
{
	return s == MQTX_RELAY_STALE ? MQTX_CHECK_WARNING : MQTX_CHECK_OK;
}

void mqtx_check_thresholds_from_config(struct mqtx_check_thresholds *t, const struct mqtx_config *cfg)
{
	memset(t, 0, sizeof(*t));
	t->warn_age_ms = cfg->check_warn_age_ms;
	t->crit_age_ms = cfg->check_crit_age_ms;
	t->warn_attempts = cfg->check_warn_attempts;
	t->max_dead = cfg->check_max_dead;
	t->relay_stale_ms = cfg->check_relay_stale_ms;
	t->completion = cfg->check_completion;
	t->completion_after_ms = cfg->check_completion_after_ms;
	t->queue_max_depth = cfg->check_queue_max_depth;
	t->queue_min_consumers = cfg->check_queue_min_consumers;
	t->scan_limit = cfg->check_scan_limit;
	t->list_limit = cfg->check_list_limit;
	t->broker = cfg->check_broker;
	t->max_table_size = cfg->check_max_table_size;
	t->retention_lag_ms = cfg->check_retention_lag_ms;
	t->retention_ms = cfg->outbox_retention_ms;
	t->dead_retention_ms = cfg->outbox_dead_retention_ms;
}

void mqtx_check_size_text(int64_t bytes, char *out, size_t n)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	if (bytes < 0) {
		snprintf(out, n, "unknown");
		return;
	}
	if (bytes < 1024) {
		snprintf(out, n, "%lld B", (long long)bytes);
		return;
	}
	double v = (double)bytes / 1024.0;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(out, n, "%.1f %s", v, units[u]);
}

static char *dur(int64_t ms)
{
	char b[64];
	mqtx_format_duration(ms, b, sizeof(b));
	return mqtx_xstrdup(b);
}

/* A duration as an option value: 10m, 90s, 1500ms. */
static char *dur_arg(int64_t ms)
{
	if (ms > 0 && ms % 3600000 == 0)
		return mqtx_xasprintf("%lldh", (long long)(ms / 3600000));
	if (ms > 0 && ms % 60000 == 0)
		return mqtx_xasprintf("%lldm", (long long)(ms / 60000));
	if (ms % 1000 == 0)
		return mqtx_xasprintf("%llds", (long long)(ms / 1000));
	return mqtx_xasprintf("%lldms", (long long)ms);
}

static char *explain_cmd(int64_t id)
{
	return mqtx_xasprintf("mqtx check --explain %lld", (long long)id);
}

/* ------------------------------------------------------------ report */

static void relay_copy(struct mqtx_check_relay *dst, const struct mqtx_check_relay *src)
{
	*dst = *src;
	dst->relay_id = src->relay_id ? mqtx_xstrdup(src->relay_id) : NULL;
	dst->host = src->host ? mqtx_xstrdup(src->host) : NULL;
	dst->version = src->version ? mqtx_xstrdup(src->version) : NULL;
	dst->last_error = src->last_error ? mqtx_xstrdup(src->last_error) : NULL;
	dst->tail_buckets = src->tail_buckets ? mqtx_xstrdup(src->tail_buckets) : NULL;
}

static void indoubt_free(struct mqtx_check_indoubt *i)
{
	free(i->kind);
	free(i->key);
	free(i->detail);
}

static struct mqtx_check_problem *add_problem(struct mqtx_check_report *rep, const char *check,
					      enum mqtx_check_level level, char *message, char *action)
{
	rep->problems = mqtx_xrealloc(rep->problems, (rep->n_problems + 1) * sizeof(*rep->problems));
	struct mqtx_check_problem *p = &rep->problems[rep->n_problems++];
	memset(p, 0, sizeof(*p));
	p->check = check;
	p->level = level;
	p->message = message;
	p->action = action;
	p->count = -1;
	if (level > rep->level)
		rep->level = level;
	return p;
}

/* Moves rows (a snapshot's evidence) into p. */
static void take_rows(struct mqtx_check_problem *p, struct mqtx_check_row **rows, size_t *n)
{
	p->rows = *rows;
	p->n_rows = *n;
	*rows = NULL;
	*n = 0;
}

void mqtx_check_report_free(struct mqtx_check_report *rep)
{
	if (rep == NULL)
		return;
	free(rep->outbox);
	mqtx_check_snapshot_free(&rep->db);
	free(rep->in_doubt_error);
	for (size_t i = 0; i < rep->n_in_doubt; i++)
		indoubt_free(&rep->in_doubt[i]);
	free(rep->in_doubt);
	free(rep->broker_error);
	for (size_t i = 0; i < rep->n_queues; i++) {
		free(rep->queues[i].name);
		free(rep->queues[i].detail);
	}
	free(rep->queues);
	free(rep->resolve_error);
	for (size_t i = 0; i < rep->n_problems; i++) {
		struct mqtx_check_problem *p = &rep->problems[i];
		free(p->message);
		free(p->action);
		mqtx_check_rows_free(p->rows, p->n_rows);
		mqtx_check_blocked_free(p->keys, p->n_keys);
		for (size_t k = 0; k < p->n_relays; k++)
			mqtx_check_relay_free(&p->relays[k]);
		free(p->relays);
		for (size_t k = 0; k < p->n_items; k++)
			indoubt_free(&p->items[k]);
		free(p->items);
		free(p->destination);
		free(p->queue);
		mqtx_check_xacts_free(p->xacts, p->n_xacts);
	}
	free(rep->problems);
	memset(rep, 0, sizeof(*rep));
}

/* ------------------------------------------------------------ facts beyond the snapshot */

static void on_indoubt(void *ctx, const struct mqtx_indoubt *it)
{
	struct mqtx_check_report *rep = ctx;
	rep->in_doubt = mqtx_xrealloc(rep->in_doubt, (rep->n_in_doubt + 1) * sizeof(*rep->in_doubt));
	struct mqtx_check_indoubt *x = &rep->in_doubt[rep->n_in_doubt++];
	x->kind = mqtx_xstrdup(it->kind ? it->kind : "");
	x->key = mqtx_xstrdup(it->key ? it->key : "");
	x->detail = mqtx_xstrdup(it->detail ? it->detail : "");
	x->id = it->id;
	x->age_ms = it->age_ms;
}

static void broker_failed(struct mqtx_check_report *rep, enum mqtx_check_level level, char *message)
{
	rep->broker_error = message;
	rep->broker_error_level = level;
	rep->broker_checked = false;
}

/* The next queue of check.queues (from *s on) not yet in the report,
 * added to it; NULL at the end. */
static struct mqtx_check_queue *next_queue(struct mqtx_check_report *rep, const char **s)
{
	while (*s != NULL && **s != '\0') {
		size_t len = strcspn(*s, ",");
		char *name = mqtx_xstrndup(*s, len);
		*s += len + ((*s)[len] == ',');
		bool dup = false;
		for (size_t i = 0; i < rep->n_queues; i++)
			dup = dup || strcmp(rep->queues[i].name, name) == 0;
		if (dup) {
			free(name);
			continue;
		}
		rep->queues = mqtx_xrealloc(rep->queues, (rep->n_queues + 1) * sizeof(*rep->queues));
		struct mqtx_check_queue *q = &rep->queues[rep->n_queues++];
		memset(q, 0, sizeof(*q));
		q->name = name;
		q->depth = q->consumers = -1;
		return q;
	}
	return NULL;
}

/* --broker: asks about the destinations with pending rows and about the
 * queues of check.queues; the rules judge the answers. Stops at the first
 * failure (broker_error). */
static void ask_broker(struct mqtx_check_report *rep, const struct mqtx_config *cfg, const struct mqtx_check_opts *o)
{
	struct mqtx_err e;
	mqtx_err_clear(&e);
	struct mqtx_backend_opts bo = {
		.mode = MQTX_PUB_CONFIRM,
		.window = 1,
		.client_name = o->client_name ? o->client_name : "mqtx check",
		.stop = NULL,
		.stop_grace_ms = 0,
	};
	if (cfg->broker_url == NULL || cfg->broker_url[0] == '\0') {
		broker_failed(rep, MQTX_CHECK_UNKNOWN,
			      mqtx_xstrdup(
				      "--broker: no broker URL (set --broker-url, MQTX_BROKER_URL or broker.url)"));
		return;
	}
	struct mqtx_backend *be = mqtx_backend_open(cfg, &bo, &e);
	if (be == NULL) {
		broker_failed(rep, MQTX_CHECK_CRITICAL, mqtx_xstrdup(e.msg));
		return;
	}
	const struct mqtx_backend_ops *ops = mqtx_backend_ops_of(be);
	rep->broker_checked = true;
	rep->broker_has_queues = mqtx_broker_can(ops, MQTX_CAP_QUEUES);
	rep->dest_noun = mqtx_broker_dest_noun(ops);
	size_t asked = 0;
	for (size_t i = 0; i < rep->db.n_dests; i++) {
		struct mqtx_check_dest *d = &rep->db.dests[i];
		if (d->pending <= 0)
			continue;
		if (asked++ >= MAX_BROKER_DESTS)
			break;
		struct mqtx_dest_info info;
		if (mqtx_backend_inspect(be, d->name, NULL, &info, &e) < 0) {
			broker_failed(rep, MQTX_CHECK_CRITICAL,
				      mqtx_xasprintf("cannot ask the broker about '%s': %s", d->name, e.msg));
			goto out;
		}
		d->exists = info.exists ? 1 : 0;
		if (info.detail[0] != '\0')
			d->broker_detail = mqtx_xstrdup(info.detail);
	}
	const char *list = cfg->check_queues;
	struct mqtx_check_queue *q;
	while ((q = next_queue(rep, &list)) != NULL) {
		struct mqtx_dest_info info;
		if (mqtx_backend_inspect(be, NULL, q->name, &info, &e) < 0) {
			broker_failed(rep, MQTX_CHECK_CRITICAL,
				      mqtx_xasprintf("cannot ask the broker about queue '%s': %s", q->name, e.msg));
			goto out;
		}
		if (!rep->broker_has_queues) {
			q->detail =
				mqtx_xasprintf("the %s broker has no queues: consumer lag is the consumers' business",
					       mqtx_broker_name(ops));
			continue;
		}
		q->answered = true;
		q->exists = info.depth >= 0;
		q->depth = info.depth;
		q->consumers = info.consumers;
		if (info.detail[0] != '\0')
			q->detail = mqtx_xstrdup(info.detail);
	}
out:
	mqtx_backend_close(be);
}

/* ------------------------------------------------------------ rules */

/* Running relays silent longer than check.relay_stale are stale; a stale
 * relay whose host runs a live relay started after it went silent was
 * restarted (crash, OOM kill, reboot): replaced, a note, not an alarm. */
static void rule_relay_states(struct mqtx_check_report *rep)
{
	struct mqtx_check_snapshot *s = &rep->db;
	for (size_t i = 0; i < s->n_relays; i++) {
		struct mqtx_check_relay *x = &s->relays[i];
		if (x->stopped)
			x->state = MQTX_RELAY_STOPPED;
		else
			x->state = x->seen_ms <= rep->thresholds.relay_stale_ms ? MQTX_RELAY_LIVE : MQTX_RELAY_STALE;
	}
	for (size_t i = 0; i < s->n_relays; i++) {
		struct mqtx_check_relay *x = &s->relays[i];
		if (x->state != MQTX_RELAY_STALE)
			continue;
		for (size_t k = 0; k < s->n_relays; k++) {
			const struct mqtx_check_relay *y = &s->relays[k];
			if (y->state == MQTX_RELAY_LIVE && x->host != NULL && y->host != NULL &&
			    strcmp(x->host, y->host) == 0 && y->started_ms <= x->seen_ms)
				x->state = MQTX_RELAY_REPLACED;
		}
	}
	rep->relays_live = rep->relays_stale = rep->relays_stopped = rep->relays_replaced = 0;
	for (size_t i = 0; i < s->n_relays; i++) {
		switch (s->relays[i].state) {
		case MQTX_RELAY_LIVE: rep->relays_live++; break;
		case MQTX_RELAY_STOPPED: rep->relays_stopped++; break;
		case MQTX_RELAY_STALE: rep->relays_stale++; break;
		case MQTX_RELAY_REPLACED:
			rep->relays_stale++;
			rep->relays_replaced++;
			break;
		}
	}
}

static void rule_resolve_failed(struct mqtx_check_report *rep)
{
	if (!rep->resolved)
		return;
	if (rep->resolve_error != NULL)
		add_problem(rep, "resolve_failed", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("--resolve: %s", rep->resolve_error), NULL);
	else if (rep->resolve.failed > 0)
		add_problem(rep, "resolve_failed", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("--resolve: %lld item(s) could not be resolved (see the log above)",
					   (long long)rep->resolve.failed),
			    mqtx_xstrdup("mqtx check --resolve -v"))
			->count = rep->resolve.failed;
}

static void rule_in_doubt_unavailable(struct mqtx_check_report *rep)
{
	if (!rep->in_doubt_known && rep->in_doubt_error != NULL)
		add_problem(rep, "in_doubt_unavailable", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("cannot list in-doubt txpub items: %s", rep->in_doubt_error), NULL);
}

static void rule_destination_missing(struct mqtx_check_report *rep)
{
	for (size_t i = 0; i < rep->db.n_dests; i++) {
		const struct mqtx_check_dest *d = &rep->db.dests[i];
		if (d->exists != 0)
			continue;
		struct mqtx_check_problem *p =
			add_problem(rep, "destination_missing", MQTX_CHECK_CRITICAL,
				    mqtx_xasprintf("destination '%s' does not exist on the broker; %lld pending row(s) wait for it%s%s",
						   d->name, (long long)d->pending, d->broker_detail ? ": " : "",
						   d->broker_detail ? d->broker_detail : ""),
				    mqtx_xasprintf("create the %s '%s' (the relay never creates it), or fix the rows' destination",
						   rep->dest_noun ? rep->dest_noun : "destination", d->name));
		p->destination = mqtx_xstrdup(d->name);
		p->count = d->pending;
	}
}

static void rule_queues(struct mqtx_check_report *rep)
{
	const struct mqtx_check_thresholds *t = &rep->thresholds;
	for (size_t i = 0; i < rep->n_queues; i++) {
		const struct mqtx_check_queue *q = &rep->queues[i];
		if (!q->answered)
			continue;
		struct mqtx_check_problem *p = NULL;
		if (!q->exists)
			p = add_problem(rep, "queue_missing", MQTX_CHECK_CRITICAL,
					mqtx_xasprintf("queue '%s' does not exist", q->name),
					mqtx_xasprintf(
						"declare the queue and bind it, or remove it from check.queues"));
		else if (q->consumers < t->queue_min_consumers)
			p = add_problem(rep, "queue_consumers", MQTX_CHECK_WARNING,
					mqtx_xasprintf("queue '%s' has %lld consumer(s), fewer than %lld (check.queue_min_consumers)",
						       q->name, (long long)q->consumers,
						       (long long)t->queue_min_consumers),
					mqtx_xasprintf("start the consumers of '%s'", q->name));
		if (p != NULL) {
			p->queue = mqtx_xstrdup(q->name);
			p->count = q->exists ? q->consumers : -1;
		}
		if (q->exists && t->queue_max_depth > 0 && q->depth > t->queue_max_depth) {
			p = add_problem(rep, "queue_depth", MQTX_CHECK_WARNING,
					mqtx_xasprintf("queue '%s' holds %lld message(s), more than %lld (check.queue_max_depth)",
						       q->name, (long long)q->depth, (long long)t->queue_max_depth),
					mqtx_xasprintf("look at the consumers of '%s': too slow, or failing", q->name));
			p->queue = mqtx_xstrdup(q->name);
			p->count = q->depth;
		}
	}
}

/* After the answers it did give: the broker stopped answering there. */
static void rule_broker_unreachable(struct mqtx_check_report *rep)
{
	if (rep->broker_error == NULL)
		return;
	bool opened = rep->dest_noun != NULL; /* it failed while asking, not while connecting */
	bool no_url = rep->broker_error_level == MQTX_CHECK_UNKNOWN;
	add_problem(rep, "broker_unreachable", rep->broker_error_level, mqtx_xstrdup(rep->broker_error),
		    opened || no_url
			    ? NULL
			    : mqtx_xstrdup("check the broker and broker.url; the relay cannot publish either"));
}

static void rule_pending_age(struct mqtx_check_report *rep)
{
	struct mqtx_check_snapshot *s = &rep->db;
	const struct mqtx_check_thresholds *t = &rep->thresholds;
	if (s->oldest_pending_ms < 0)
		return;
	enum mqtx_check_level lvl = MQTX_CHECK_OK;
	int64_t limit = 0, n = 0;
	if (t->crit_age_ms > 0 && s->oldest_pending_ms > t->crit_age_ms) {
		lvl = MQTX_CHECK_CRITICAL;
		limit = t->crit_age_ms;
		n = s->n_crit_age;
	} else if (t->warn_age_ms > 0 && s->oldest_pending_ms > t->warn_age_ms) {
		lvl = MQTX_CHECK_WARNING;
		limit = t->warn_age_ms;
		n = s->n_warn_age;
	}
	if (lvl == MQTX_CHECK_OK)
		return;
	char *a = dur(s->oldest_pending_ms), *l = dur(limit);
	char *where = s->n_oldest > 0 ? mqtx_xasprintf(" (row %lld to '%s')", (long long)s->oldest[0].id,
						       s->oldest[0].destination)
				      : mqtx_xstrdup("");
	struct mqtx_check_problem *p =
		add_problem(rep, "pending_age", lvl,
			    mqtx_xasprintf("%s%lld pending row(s)%s older than %s (check.%s); the oldest is %s old%s",
					   s->pending_truncated ? "at least " : "", (long long)n,
					   s->tail.on ? " (not yet relayed, or parked)" : "", l,
					   lvl == MQTX_CHECK_CRITICAL ? "crit_age" : "warn_age", a, where),
			    s->n_oldest > 0 ? explain_cmd(s->oldest[0].id) : NULL);
	p->count = n;
	take_rows(p, &s->oldest, &s->n_oldest);
	free(a);
	free(l);
	free(where);
}

static void rule_dead_rows(struct mqtx_check_report *rep)
{
	struct mqtx_check_snapshot *s = &rep->db;
	const struct mqtx_check_count *dead = &s->status[MQTX_ST_DEAD];
	if (dead->n <= rep->thresholds.max_dead)
		return;
	char *newest = s->n_dead > 0
			       ? mqtx_xasprintf("; the newest is row %lld to '%s': %s", (long long)s->dead[0].id,
						s->dead[0].destination,
						s->dead[0].last_error ? s->dead[0].last_error : "no error recorded")
			       : mqtx_xstrdup("");
	struct mqtx_check_problem *p =
		add_problem(rep, "dead_rows", MQTX_CHECK_CRITICAL,
			    mqtx_xasprintf("%s%lld dead row(s), more than check.max_dead (%lld): the relay gave up on them%s",
					   dead->approximate ? "at least " : "", (long long)dead->n,
					   (long long)rep->thresholds.max_dead, newest),
			    s->n_dead > 0 ? explain_cmd(s->dead[0].id) : NULL);
	free(newest);
	p->count = dead->n;
	take_rows(p, &s->dead, &s->n_dead);
}

static void rule_blocked_ordering_keys(struct mqtx_check_report *rep)
{
	struct mqtx_check_snapshot *s = &rep->db;
	if (s->blocked_keys <= 0 || s->n_blocked == 0)
		return;
	const struct mqtx_check_blocked *b = &s->blocked[0];
	struct mqtx_check_problem *p =
		add_problem(rep, "blocked_ordering_keys", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("%lld ordering key(s) blocked behind a failing row, %lld row(s) waiting; e.g. key '%s': row %lld "
					   "(attempt %lld: %s) holds back %lld row(s)",
					   (long long)s->blocked_keys, (long long)s->blocked_rows, b->ordering_key,
					   (long long)b->head.id, (long long)b->head.attempts,
					   b->head.last_error ? b->head.last_error : "no error recorded",
					   (long long)b->behind),
			    explain_cmd(b->head.id));
	p->count = s->blocked_keys;
	p->keys = s->blocked;
	p->n_keys = s->n_blocked;
	s->blocked = NULL;
	s->n_blocked = 0;
}

static void rule_high_attempts(struct mqtx_check_report *rep)
{
	struct mqtx_check_snapshot *s = &rep->db;
	if (s->high_attempt_rows <= 0 || s->n_high == 0)
		return;
	struct mqtx_check_problem *p =
		add_problem(rep, "high_attempts", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("%lld pending row(s) failed at least %lld times (check.warn_attempts); e.g. row %lld to '%s': %s",
					   (long long)s->high_attempt_rows, (long long)rep->thresholds.warn_attempts,
					   (long long)s->high[0].id, s->high[0].destination,
					   s->high[0].last_error ? s->high[0].last_error : "no error recorded"),
			    explain_cmd(s->high[0].id));
	p->count = s->high_attempt_rows;
	take_rows(p, &s->high, &s->n_high);
}

/* Nothing moves: rows wait longer than check.relay_stale, and no relay,
 * running or cron-started, was seen that recently. */
static void rule_no_live_relay(struct mqtx_check_report *rep)
{
	const struct mqtx_check_snapshot *s = &rep->db;
	int64_t stale = rep->thresholds.relay_stale_ms;
	const struct mqtx_check_count *pend = &s->status[MQTX_ST_PENDING];
	if (!s->relays_known)
		return;
	bool recent = s->last_relay_seen_ms >= 0 && s->last_relay_seen_ms <= stale;
	bool waiting = pend->n > 0 && (s->oldest_pending_ms < 0 || s->oldest_pending_ms > stale);
	if (!waiting || recent || rep->relays_live > 0)
		return;
	char *st = dur(stale);
	char *seen = s->last_relay_seen_ms >= 0 ? dur(s->last_relay_seen_ms) : NULL;
	struct mqtx_check_problem *p =
		add_problem(rep, "no_live_relay", MQTX_CHECK_CRITICAL,
			    mqtx_xasprintf("%lld row(s) pending and no relay seen for %s (check.relay_stale); %s%s%s",
					   (long long)pend->n, st,
					   seen ? "the last one was seen " : "no relay has ever run for this outbox",
					   seen ? seen : "", seen ? " ago" : ""),
			    mqtx_xstrdup("start a relay: mqtx relay --loop (as a service), or mqtx relay from cron"));
	p->count = pend->n;
	free(st);
	free(seen);
}

static void rule_stale_relays(struct mqtx_check_report *rep)
{
	const struct mqtx_check_snapshot *s = &rep->db;
	size_t n_stale = 0;
	const struct mqtx_check_relay *first = NULL;
	for (size_t i = 0; i < s->n_relays; i++) {
		if (s->relays[i].state != MQTX_RELAY_STALE)
			continue;
		if (first == NULL)
			first = &s->relays[i];
		n_stale++;
	}
	if (!s->relays_known || first == NULL)
		return;
	char *st = dur(rep->thresholds.relay_stale_ms), *seen = dur(first->seen_ms);
	char *lit = mqtx_db_check_literal(first->relay_id ? first->relay_id : "");
	struct mqtx_check_problem *p =
		add_problem(rep, "stale_relays", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("%zu relay(s) silent for longer than %s (check.relay_stale) without stopping cleanly; "
					   "e.g. '%s' (host %s, pid %lld) last seen %s ago",
					   n_stale, st, first->relay_id, first->host ? first->host : "?",
					   (long long)first->pid, seen),
			    mqtx_xasprintf("look at the relay process on %s; if it is gone for good: DELETE FROM %s WHERE relay_id = %s",
					   first->host ? first->host : "its host",
					   s->relays_table ? s->relays_table : "mqtx_relays", lit));
	free(lit);
	p->count = (int64_t)n_stale;
	p->relays = mqtx_xcalloc(n_stale + 1, sizeof(*p->relays));
	for (size_t i = 0; i < s->n_relays && p->n_relays < (size_t)rep->thresholds.list_limit; i++)
		if (s->relays[i].state == MQTX_RELAY_STALE)
			relay_copy(&p->relays[p->n_relays++], &s->relays[i]);
	free(st);
	free(seen);
}

static void rule_in_doubt(struct mqtx_check_report *rep)
{
	if (rep->n_in_doubt == 0)
		return;
	const struct mqtx_check_indoubt *x = &rep->in_doubt[0];
	char *age = dur(x->age_ms);
	struct mqtx_check_problem *p =
		add_problem(rep, "in_doubt", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("%zu txpub item(s) in doubt; e.g. %s '%s' prepared %s ago: %s",
					   rep->n_in_doubt, x->kind, x->key, age, x->detail),
			    mqtx_xstrdup("mqtx check --resolve"));
	free(age);
	p->count = (int64_t)rep->n_in_doubt;
	size_t limit = (size_t)rep->thresholds.list_limit;
	size_t n = rep->n_in_doubt < limit ? rep->n_in_doubt : limit;
	p->items = mqtx_xcalloc(n + 1, sizeof(*p->items));
	for (size_t i = 0; i < n; i++) {
		p->items[i] = rep->in_doubt[i];
		p->items[i].kind = mqtx_xstrdup(rep->in_doubt[i].kind);
		p->items[i].key = mqtx_xstrdup(rep->in_doubt[i].key);
		p->items[i].detail = mqtx_xstrdup(rep->in_doubt[i].detail);
	}
	p->n_items = n;
}

static void rule_completion(struct mqtx_check_report *rep)
{
	struct mqtx_check_snapshot *s = &rep->db;
	const struct mqtx_check_thresholds *t = &rep->thresholds;
	if (!t->completion)
		return;
	if (s->tail.on) {
		add_problem(rep, "completion_unavailable", MQTX_CHECK_WARNING,
			    mqtx_xstrdup(
				    "check.completion is on, but a tail-mode outbox records no sent_at: the checkpoints "
				    "say what was relayed, not when"),
			    NULL);
	} else if (!s->has_sent_at) {
		add_problem(rep, "completion_unavailable", MQTX_CHECK_WARNING,
			    mqtx_xstrdup("check.completion is on, but the outbox has no sent_at column"), NULL);
	} else if (s->completion_table_missing) {
		add_problem(rep, "completion_unavailable", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("check.completion is on, but %s does not exist",
					   s->completions_table ? s->completions_table : "mqtx_completions"),
			    mqtx_xstrdup("mqtx init"));
	} else if (s->awaiting_completion > 0) {
		char *a = dur(t->completion_after_ms), *o = dur(s->oldest_awaiting_ms);
		char *arg = dur_arg(t->completion_after_ms);
		struct mqtx_check_problem *p =
			add_problem(rep, "awaiting_completion", MQTX_CHECK_WARNING,
				    mqtx_xasprintf("%lld sent message(s) not completed by a consumer after %s (check.completion_after); "
						   "the oldest was sent %s ago",
						   (long long)s->awaiting_completion, a, o),
				    mqtx_xasprintf("mqtx redeliver --unacked-after %s --dry-run", arg));
		p->count = s->awaiting_completion;
		take_rows(p, &s->awaiting, &s->n_awaiting);
		free(a);
		free(o);
		free(arg);
	}
}

/* outbox.retention off: nothing is deleted, so a table past
 * check.max_table_size only grows. */
static void rule_table_size(struct mqtx_check_report *rep)
{
	const struct mqtx_check_snapshot *s = &rep->db;
	const struct mqtx_check_thresholds *t = &rep->thresholds;
	if (t->retention_ms != 0 || t->max_table_size <= 0 || s->table_bytes < 0 || s->table_bytes <= t->max_table_size)
		return;
	char size[32], max[32];
	mqtx_check_size_text(s->table_bytes, size, sizeof(size));
	mqtx_check_size_text(t->max_table_size, max, sizeof(max));
	add_problem(rep, "table_size", MQTX_CHECK_WARNING,
		    mqtx_xasprintf("the outbox takes %s (table, indexes and TOAST), more than check.max_table_size (%s), and "
				   "outbox.retention is off: nothing is deleted, it only grows",
				   size, max),
		    mqtx_xstrdup(
			    "set outbox.retention (e.g. 7d) for the relays: they delete relayed rows older than that"));
}

/* Rows retention should have deleted long ago: no relay prunes (none
 * runs, or runs without outbox.retention), or its role cannot DELETE. */
static void rule_retention_lag(struct mqtx_check_report *rep)
{
	const struct mqtx_check_retention *r = &rep->db.retention;
	const struct mqtx_check_thresholds *t = &rep->thresholds;
	if (!r->known || t->retention_lag_ms <= 0 || r->overdue_ms <= t->retention_lag_ms)
		return;
	static const enum mqtx_retention_kind outbox_kinds[] = {MQTX_RET_SENT, MQTX_RET_ROLLED_BACK, MQTX_RET_DEAD};
	int64_t n = 0;
	bool capped = false;
	for (size_t i = 0; i < sizeof(outbox_kinds) / sizeof(outbox_kinds[0]); i++) {
		n += r->due[outbox_kinds[i]];
		capped = capped || r->capped[outbox_kinds[i]];
	}
	char *o = dur(r->overdue_ms), *lag = dur(t->retention_lag_ms);
	struct mqtx_check_problem *p =
		add_problem(rep, "retention_lag", MQTX_CHECK_WARNING,
			    mqtx_xasprintf("retention is not keeping up or has stopped: %s%lld row(s) were due for deletion up to %s ago "
					   "(check.retention_lag: %s); is a relay running with outbox.retention? can its role DELETE?",
					   capped ? "at least " : "", (long long)n, o, lag),
			    mqtx_xstrdup(
				    "run a relay with outbox.retention (every run prunes at its end; --loop prunes as it goes); "
				    "'mqtx init --grant ROLE' grants the DELETE retention needs"));
	p->count = n;
	free(o);
	free(lag);
}

static void rule_retention_unavailable(struct mqtx_check_report *rep)
{
	const struct mqtx_check_retention *r = &rep->db.retention;
	if (r->known || r->error == NULL)
		return;
	add_problem(rep, "retention_unavailable", MQTX_CHECK_WARNING,
		    mqtx_xasprintf("cannot tell what retention will delete: %s", r->error), NULL);
}

/* Tail mode: an open or prepared transaction older than check.warn_age
 * (crit_age: CRITICAL). Rows it wrote are invisible until it commits;
 * the relay sends them then, in its place in commit order. */
static char *xact_name(const struct mqtx_check_xact *x)
{
	if (x->prepared)
		return mqtx_xasprintf("prepared transaction '%s' (xid %s)", x->gid ? x->gid : "?",
				      x->xid ? x->xid : "?");
	return mqtx_xasprintf("backend pid %lld (xid %s%s%s%s%s)", (long long)x->pid, x->xid ? x->xid : "?",
			      x->application_name && x->application_name[0] ? ", " : "",
			      x->application_name && x->application_name[0] ? x->application_name : "",
			      x->state ? ", " : "", x->state ? x->state : "");
}

static void rule_old_transaction(struct mqtx_check_report *rep)
{
	struct mqtx_check_tail *tl = &rep->db.tail;
	const struct mqtx_check_thresholds *t = &rep->thresholds;
	if (!tl->on || tl->n_xacts == 0)
		return;
	int64_t warn = t->warn_age_ms > 0 ? t->warn_age_ms : t->crit_age_ms;
	if (warn <= 0)
		return;
	size_t n = 0;
	for (size_t i = 0; i < tl->n_xacts; i++)
		n += tl->xacts[i].age_ms > warn;
	if (n == 0)
		return;
	const struct mqtx_check_xact *x = &tl->xacts[0]; /* the oldest */
	bool crit = t->crit_age_ms > 0 && x->age_ms > t->crit_age_ms;
	int64_t limit = crit ? t->crit_age_ms : warn;
	const char *which = crit ? "crit_age" : t->warn_age_ms > 0 ? "warn_age" : "crit_age";
	char *a = dur(x->age_ms), *l = dur(limit), *name = xact_name(x);
	const char *what = x->wrote_outbox ? "; it wrote to the outbox: its rows wait for it"
			   : x->in_xip     ? "; a relay saw it running (in a checkpoint's snapshot)"
					   : "; it has not written to the outbox (yet)";
	char *action =
		x->prepared
			? mqtx_xasprintf("decide it: COMMIT PREPARED '%s' or ROLLBACK PREPARED '%s' (txpub's own: mqtx check --resolve)",
					 x->gid ? x->gid : "?", x->gid ? x->gid : "?")
			: mqtx_xasprintf("find out what pid %lld is waiting for (SELECT * FROM pg_stat_activity WHERE pid = %lld); "
					 "if it is stuck: SELECT pg_terminate_backend(%lld)",
					 (long long)x->pid, (long long)x->pid, (long long)x->pid);
	struct mqtx_check_problem *p =
		add_problem(rep, "old_transaction", crit ? MQTX_CHECK_CRITICAL : MQTX_CHECK_WARNING,
			    mqtx_xasprintf("%zu open or prepared transaction(s) older than %s (check.%s): rows they wrote wait "
					   "for them (invisible to the relay and to check until they commit); the oldest is %s, "
					   "open for %s%s",
					   n, l, which, name, a, what),
			    action);
	free(a);
	free(l);
	free(name);
	p->count = (int64_t)n;
	p->xacts = mqtx_xcalloc(n + 1, sizeof(*p->xacts));
	for (size_t i = 0; i < tl->n_xacts; i++) {
		const struct mqtx_check_xact *y = &tl->xacts[i];
		if (y->age_ms <= warn)
			continue;
		struct mqtx_check_xact *c = &p->xacts[p->n_xacts++];
		*c = *y;
		c->gid = y->gid ? mqtx_xstrdup(y->gid) : NULL;
		c->xid = y->xid ? mqtx_xstrdup(y->xid) : NULL;
		c->application_name = y->application_name ? mqtx_xstrdup(y->application_name) : NULL;
		c->state = y->state ? mqtx_xstrdup(y->state) : NULL;
	}
}

/* Status mode on an outbox that tail relays relay: its rows stay
 * 'pending' there, so every count above is wrong. */
static void rule_outbox_mode(struct mqtx_check_report *rep)
{
	if (!rep->db.tail_checkpoints)
		return;
	add_problem(rep, "outbox_mode", MQTX_CHECK_WARNING,
		    mqtx_xstrdup(
			    "outbox.mode is status here, but the outbox has tail-mode checkpoints: tail relays leave "
			    "relayed rows 'pending', so the pending counts and ages above are not what is waiting"),
		    mqtx_xstrdup(
			    "run mqtx check with outbox.mode: tail (MQTX_OUTBOX_MODE=tail), as the relays do; or, "
			    "to go back to status mode, stop the tail relays and run 'mqtx init' with outbox.mode: status"));
}

/* In this order: within one severity, problems are listed as found. */
const struct mqtx_check_rule mqtx_check_rules[] = {
	{"relay_states", rule_relay_states},
	{"outbox_mode", rule_outbox_mode},
	{"resolve_failed", rule_resolve_failed},
	{"in_doubt_unavailable", rule_in_doubt_unavailable},
	{"destination_missing", rule_destination_missing},
	{"queues", rule_queues},
	{"broker_unreachable", rule_broker_unreachable},
	{"pending_age", rule_pending_age},
	{"dead_rows", rule_dead_rows},
	{"blocked_ordering_keys", rule_blocked_ordering_keys},
	{"high_attempts", rule_high_attempts},
	{"no_live_relay", rule_no_live_relay},
	{"old_transaction", rule_old_transaction},
	{"stale_relays", rule_stale_relays},
	{"in_doubt", rule_in_doubt},
	{"completion", rule_completion},
	{"table_size", rule_table_size},
	{"retention_lag", rule_retention_lag},
	{"retention_unavailable", rule_retention_unavailable},
};
const size_t mqtx_check_n_rules = sizeof(mqtx_check_rules) / sizeof(mqtx_check_rules[0]);

/* Most serious first; stable, so the rules' order holds within a level. */
static void sort_problems(struct mqtx_check_report *rep)
{
	for (size_t i = 1; i < rep->n_problems; i++) {
		struct mqtx_check_problem tmp = rep->problems[i];
		size_t k = i;
		while (k > 0 && rep->problems[k - 1].level < tmp.level) {
			rep->problems[k] = rep->problems[k - 1];
			k--;
		}
		rep->problems[k] = tmp;
	}
}

void mqtx_check_judge(struct mqtx_check_report *rep)
{
	for (size_t i = 0; i < mqtx_check_n_rules; i++)
		mqtx_check_rules[i].judge(rep);
	sort_problems(rep);
}

/* ------------------------------------------------------------ run */

static int validate(const struct mqtx_config *cfg, struct mqtx_err *err)
{
	if (cfg->check_warn_age_ms > 0 && cfg->check_crit_age_ms > 0 && cfg->check_crit_age_ms < cfg->check_warn_age_ms)
		return mqtx_err_set(err, MQTX_E_CONFIG, "check.crit_age must not be shorter than check.warn_age");
	return 0;
}

int mqtx_check_run(PGconn *conn, const struct mqtx_config *cfg, const struct mqtx_check_opts *opts,
		   struct mqtx_check_report *rep, struct mqtx_err *err)
{
	static const struct mqtx_check_opts no_opts = {0};
	int64_t t0 = mqtx_now_ms();
	if (opts == NULL)
		opts = &no_opts;
	memset(rep, 0, sizeof(*rep));
	if (validate(cfg, err) < 0)
		return -1;
	struct mqtx_db_check *db = mqtx_db_check_new(conn, cfg, err);
	if (db == NULL)
		return -1;
	mqtx_check_thresholds_from_config(&rep->thresholds, cfg);
	rep->outbox = mqtx_xasprintf("%s.%s", cfg->outbox_schema, cfg->outbox_table);
	if (mqtx_db_check_set_timeout(db, err) < 0)
		goto fail;

	/* The only write: resolve what txpub left in doubt, then look. */
	if (opts->resolve) {
		struct mqtx_err e;
		mqtx_err_clear(&e);
		rep->resolved = true;
		if (mqtx_txpub_resolve(conn, cfg, &rep->resolve, &e) < 0)
			rep->resolve_error = mqtx_xstrdup(e.msg);
	}
	if (mqtx_db_check_snapshot(db, &rep->db, err) < 0)
		goto fail;

	/* txpub's view, outside the snapshot (it may use its own transactions) */
	struct mqtx_err e;
	mqtx_err_clear(&e);
	rep->in_doubt_known = true;
	if (mqtx_txpub_list_in_doubt(conn, cfg, on_indoubt, rep, &e) < 0) {
		rep->in_doubt_known = false;
		rep->in_doubt_error = mqtx_xstrdup(e.msg);
	}
	if (cfg->check_broker)
		ask_broker(rep, cfg, opts);

	mqtx_check_judge(rep);
	rep->elapsed_ms = mqtx_now_ms() - t0;
	mqtx_db_check_free(db);
	return 0;
fail:
	mqtx_db_check_free(db);
	mqtx_check_report_free(rep);
	return -1;
}

/* ------------------------------------------------------------ explain */

static void story(struct mqtx_explain *ex, char *line)
{
	ex->story = mqtx_xrealloc(ex->story, (ex->n_story + 1) * sizeof(char *));
	ex->story[ex->n_story++] = line;
}

static void action(struct mqtx_explain *ex, char *line)
{
	ex->actions = mqtx_xrealloc(ex->actions, (ex->n_actions + 1) * sizeof(char *));
	ex->actions[ex->n_actions++] = line;
}

void mqtx_explain_free(struct mqtx_explain *ex)
{
	if (ex == NULL)
		return;
	free(ex->key);
	free(ex->destination);
	free(ex->routing_key);
	free(ex->ordering_key);
	free(ex->status);
	free(ex->last_error);
	free(ex->created_at);
	free(ex->available_at);
	free(ex->sent_at);
	free(ex->redelivered_at);
	free(ex->completed_at);
	mqtx_check_row_free(&ex->head);
	free(ex->in_doubt);
	free(ex->verdict);
	for (size_t i = 0; i < ex->n_story; i++)
		free(ex->story[i]);
	free(ex->story);
	for (size_t i = 0; i < ex->n_actions; i++)
		free(ex->actions[i]);
	free(ex->actions);
	mqtx_db_check_tail_row_free(&ex->tail_row);
	mqtx_check_xacts_free(ex->writers, ex->n_writers);
	memset(ex, 0, sizeof(*ex));
}

struct indoubt_find {
	const char *key;
	int64_t id;
	char *detail;
	char *kind;
	int64_t age_ms;
};

static void find_indoubt(void *ctx, const struct mqtx_indoubt *it)
{
	struct indoubt_find *f = ctx;
	if (f->detail != NULL)
		return;
	if ((f->id > 0 && it->id == f->id) || (f->key != NULL && it->key != NULL && strcmp(it->key, f->key) == 0)) {
		f->detail = mqtx_xstrdup(it->detail ? it->detail : "");
		f->kind = mqtx_xstrdup(it->kind ? it->kind : "");
		f->age_ms = it->age_ms;
	}
}

/* What holds a pending row back, in the relay's own order of reasons:
 * an earlier row of its ordering key, parking, a retry later. */
static int explain_wait(struct mqtx_db_check *db, const struct mqtx_config *cfg, struct mqtx_explain *ex,
			enum mqtx_check_level *level, struct mqtx_err *err)
{
	enum mqtx_check_level lvl = MQTX_CHECK_OK;
	if (ex->ordering_key != NULL) {
		if (mqtx_db_check_key_neighbours(db, ex->ordering_key, ex->id, &ex->head, &ex->ahead, &ex->behind,
						 err) < 0)
			return -1;
		if (ex->ahead == 0 && ex->behind > 0)
			story(ex,
			      mqtx_xasprintf("it heads ordering key '%s': %lld later row(s) of the key wait until it is sent (or dead)",
					     ex->ordering_key, (long long)ex->behind));
	}
	if (ex->ahead > 0) {
		const struct mqtx_check_row *h = &ex->head;
		bool failing = h->attempts > 0 && h->last_error != NULL;
		lvl = MQTX_CHECK_WARNING;
		ex->verdict =
			mqtx_xasprintf("pending, held back: %lld earlier row(s) of ordering key '%s' are still pending, the first "
				       "is row %lld%s",
				       (long long)ex->ahead, ex->ordering_key, (long long)h->id,
				       failing ? ", which keeps failing" : "");
		if (failing)
			story(ex,
			      mqtx_xasprintf("row %lld (to '%s', %lld failed attempt(s)) heads the key: %s",
					     (long long)h->id, h->destination, (long long)h->attempts, h->last_error));
		else
			story(ex,
			      mqtx_xasprintf("row %lld (to '%s') heads the key and has not failed: it goes first, this one follows",
					     (long long)h->id, h->destination));
		if (h->retry_in_ms == MQTX_CHECK_PARKED) {
			story(ex, mqtx_xasprintf("row %lld is parked (available_at is infinity) by txpub --sql",
						 (long long)h->id));
		} else if (h->retry_in_ms > 0) {
			char *w = dur(h->retry_in_ms);
			story(ex, mqtx_xasprintf("row %lld is retried in %s", (long long)h->id, w));
			free(w);
		}
		action(ex, explain_cmd(h->id));
		if (failing)
			action(ex,
			       mqtx_xasprintf("fix what makes row %lld fail; this row follows once it is sent (or dead)",
					      (long long)h->id));
	} else if (ex->retry_in_ms == MQTX_CHECK_PARKED) {
		lvl = MQTX_CHECK_WARNING;
		ex->verdict = mqtx_xstrdup(
			"pending but parked (available_at is infinity): txpub --sql holds it until its "
			"transaction is decided");
		action(ex, mqtx_xstrdup("mqtx check --resolve"));
	} else if (ex->retry_in_ms > 0) {
		char *w = dur(ex->retry_in_ms);
		lvl = ex->attempts > 0 ? MQTX_CHECK_WARNING : MQTX_CHECK_OK;
		if (ex->attempts > 0) {
			ex->verdict = mqtx_xasprintf("pending, waiting for retry %lld of %lld in %s (at %s)",
						     (long long)ex->attempts + 1, (long long)cfg->relay_max_attempts, w,
						     ex->available_at ? ex->available_at : "?");
			action(ex, mqtx_xasprintf("fix the cause (%s); the relay retries by itself",
						  ex->last_error ? ex->last_error : "see last_error"));
			char *sql = mqtx_db_check_retry_sql(db, ex->id);
			action(ex, mqtx_xasprintf("to retry at once: %s", sql));
			free(sql);
		} else {
			ex->verdict = mqtx_xasprintf("pending, scheduled: not before %s (in %s)",
						     ex->available_at ? ex->available_at : "?", w);
		}
		free(w);
	}

	*level = lvl;
	return 0;
}

/* Is anyone there to take it? */
static int explain_relay(struct mqtx_db_check *db, const struct mqtx_config *cfg, struct mqtx_explain *ex,
			 bool relays_known, enum mqtx_check_level *level, struct mqtx_err *err)
{
	enum mqtx_check_level lvl = *level;
	if (relays_known) {
		int64_t seen;
		if (mqtx_db_check_relay_alive(db, cfg->check_relay_stale_ms, &ex->relay_alive, &seen, err) < 0)
			return -1;
		if (!ex->relay_alive) {
			char *s = seen >= 0 ? dur(seen) : NULL;
			story(ex, s ? mqtx_xasprintf("no relay seen for %s (check.relay_stale is %lldms)", s,
						     (long long)cfg->check_relay_stale_ms)
				    : mqtx_xstrdup("no relay has ever run for this outbox"));
			free(s);
			if (ex->verdict == NULL)
				ex->verdict = mqtx_xstrdup("pending and eligible, but no relay is running");
			lvl = MQTX_CHECK_CRITICAL;
			action(ex, mqtx_xstrdup(
					   "start a relay: mqtx relay --loop (as a service), or mqtx relay from cron"));
		}
	} else {
		ex->relay_alive = true; /* unknown: no heartbeats table */
		story(ex, mqtx_xasprintf("relay heartbeats unknown: no table %s (mqtx init creates it)",
					 mqtx_db_check_relays_table(db)));
	}
	*level = lvl;
	return 0;
}

static int explain_pending(struct mqtx_db_check *db, const struct mqtx_config *cfg, struct mqtx_explain *ex,
			   bool relays_known, struct mqtx_err *err)
{
	enum mqtx_check_level lvl = MQTX_CHECK_OK;
	char *age = ex->age_ms >= 0 ? dur(ex->age_ms) : NULL;

	story(ex, mqtx_xasprintf("%s%s%s%lld failed attempt(s) so far", age ? "written " : "", age ? age : "",
				 age ? " ago; " : "", (long long)ex->attempts));
	if (ex->last_error != NULL && ex->attempts > 0)
		story(ex, mqtx_xasprintf("last error: %s", ex->last_error));
	free(age);

	if (explain_wait(db, cfg, ex, &lvl, err) < 0 || explain_relay(db, cfg, ex, relays_known, &lvl, err) < 0)
		return -1;
	if (ex->verdict == NULL) {
		ex->verdict = mqtx_xstrdup("pending and eligible: the next relay batch takes it");
		action(ex,
		       mqtx_xstrdup(
			       "nothing: a running relay sends it shortly (mqtx relay --dry-run shows what goes next)"));
	}
	/* late: as for pending_age, a row written for later counts from when it was due */
	int64_t late = ex->age_ms;
	if (late >= 0 && ex->attempts == 0 && ex->retry_in_ms != MQTX_CHECK_PARKED && late + ex->retry_in_ms > 0)
		late = ex->retry_in_ms > 0 ? 0 : -ex->retry_in_ms;
	if (late >= 0) {
		if (cfg->check_crit_age_ms > 0 && late > cfg->check_crit_age_ms)
			lvl = MQTX_CHECK_CRITICAL;
		else if (cfg->check_warn_age_ms > 0 && late > cfg->check_warn_age_ms && lvl < MQTX_CHECK_WARNING)
			lvl = MQTX_CHECK_WARNING;
	}
	ex->level = lvl;
	return 0;
}

static int explain_sent(struct mqtx_db_check *db, const struct mqtx_config *cfg, struct mqtx_explain *ex,
			struct mqtx_err *err)
{
	char *s = ex->sent_ms >= 0 ? dur(ex->sent_ms) : NULL;
	ex->verdict = s ? mqtx_xasprintf("sent %s ago (the broker confirmed it)", s)
			: mqtx_xstrdup("sent (the broker confirmed it)");
	story(ex, mqtx_xasprintf("published after %lld attempt(s); sent at %s", (long long)ex->attempts,
				 ex->sent_at ? ex->sent_at : "?"));
	if (ex->redelivery_count > 0)
		story(ex, mqtx_xasprintf("redelivered %lld time(s), last at %s", (long long)ex->redelivery_count,
					 ex->redelivered_at ? ex->redelivered_at : "?"));
	free(s);
	ex->level = MQTX_CHECK_OK;
	bool exists;
	char *source = NULL;
	if (mqtx_db_check_completion(db, ex->key, &exists, &ex->completed_at, &source, err) < 0)
		return -1;
	if (!exists)
		return 0;
	if (ex->completed_at != NULL) {
		story(ex, mqtx_xasprintf("completed by a consumer at %s%s%s", ex->completed_at, source ? " via " : "",
					 source ? source : ""));
		char *v = mqtx_xasprintf("%s, completed", ex->verdict);
		free(ex->verdict);
		ex->verdict = v;
	} else if (cfg->check_completion) {
		bool late = ex->sent_ms >= 0 && ex->sent_ms > cfg->check_completion_after_ms;
		story(ex, mqtx_xasprintf("no consumer has completed it yet (no row in %s)%s",
					 mqtx_db_check_completions_table(db),
					 late ? ", longer than check.completion_after" : ""));
		if (late) {
			ex->level = MQTX_CHECK_WARNING;
			action(ex, mqtx_xstrdup("look at the consumer, then publish it again with its own key:"));
			action(ex, mqtx_xasprintf("mqtx redeliver --id %lld --yes", (long long)ex->id));
		}
	}
	free(source);
	if (ex->n_actions == 0)
		action(ex, mqtx_xstrdup("nothing"));
	return 0;
}

/* The verdict on a row that is neither pending nor sent. f: txpub's word. */
static void explain_other(struct mqtx_explain *ex, struct indoubt_find *f)
{
	if (strcmp(ex->status, "dead") == 0) {
		ex->verdict =
			mqtx_xasprintf("dead: the relay gave up after %lld failed attempt(s) and will not try again",
				       (long long)ex->attempts);
		story(ex, mqtx_xasprintf("last error: %s", ex->last_error ? ex->last_error : "none recorded"));
		if (ex->ordering_key != NULL)
			story(ex, mqtx_xasprintf("later rows of ordering key '%s' no longer wait for it",
						 ex->ordering_key));
		action(ex, mqtx_xasprintf("fix the cause (%s), then give it back to the relay:",
					  ex->last_error ? ex->last_error : "see last_error"));
		action(ex, mqtx_xasprintf("mqtx redeliver --status dead --id %lld --requeue --yes", (long long)ex->id));
		ex->level = MQTX_CHECK_CRITICAL;
	} else if (strcmp(ex->status, "prepared") == 0) {
		char *a = ex->age_ms >= 0 ? dur(ex->age_ms) : mqtx_xstrdup("an unknown time");
		ex->verdict =
			mqtx_xasprintf("prepared: a txpub half message written %s ago, waiting for its transaction to commit",
				       a);
		free(a);
		story(ex, mqtx_xstrdup("the relay ignores it until txpub commits it (pending) or rolls it back"));
		if (f->detail != NULL) {
			ex->in_doubt = f->detail;
			f->detail = NULL;
			story(ex, mqtx_xasprintf("in doubt: %s", ex->in_doubt));
			action(ex, mqtx_xstrdup("mqtx check --resolve"));
			ex->level = MQTX_CHECK_WARNING;
		} else {
			story(ex, mqtx_xstrdup("not in doubt yet (younger than txpub.check_after)"));
			action(ex,
			       mqtx_xstrdup(
				       "nothing yet; mqtx check --resolve decides it once it is older than txpub.check_after"));
			ex->level = MQTX_CHECK_OK;
		}
	} else if (strcmp(ex->status, "rolled_back") == 0) {
		ex->verdict = mqtx_xstrdup("rolled back: its transaction did not commit, it will never be sent");
		action(ex, mqtx_xstrdup("nothing"));
		ex->level = MQTX_CHECK_OK;
	} else {
		ex->verdict = mqtx_xasprintf("unknown status '%s'", ex->status);
		action(ex, mqtx_xstrdup("look at the row: mqtx does not know this status"));
		ex->level = MQTX_CHECK_UNKNOWN;
	}
}

/* ------------------------------------------------------------ explain, tail mode */

/* Where the checkpoint of the row's bucket is, for people. */
static char *checkpoint_text(const struct mqtx_db_check_tail_row *tr)
{
	if (tr->prev_snapshot == NULL && tr->cur_snapshot == NULL)
		return mqtx_xasprintf("bucket %lld's checkpoint is at the beginning (no relay has checkpointed it yet)",
				      (long long)tr->bucket);
	char *upd = tr->updated_ms >= 0 ? dur(tr->updated_ms) : mqtx_xstrdup("?");
	char pos[48];
	if (tr->pos_id >= 0)
		snprintf(pos, sizeof(pos), "id %lld", (long long)tr->pos_id);
	else
		snprintf(pos, sizeof(pos), "none");
	char *s =
		mqtx_xasprintf("bucket %lld's checkpoint: prev snapshot %s, cur snapshot %s, position %s, written %s ago%s%s",
			       (long long)tr->bucket, tr->prev_snapshot ? tr->prev_snapshot : "(the beginning)",
			       tr->cur_snapshot ? tr->cur_snapshot : "(none)", pos, upd,
			       tr->relay_id ? " by relay " : "", tr->relay_id ? tr->relay_id : "");
	free(upd);
	return s;
}

static char *owner_text(const struct mqtx_db_check_tail_row *tr)
{
	if (tr->owner_pid < 0)
		return mqtx_xasprintf("no relay holds bucket %lld right now", (long long)tr->bucket);
	return mqtx_xasprintf("bucket %lld is held by database backend pid %lld%s%s%s", (long long)tr->bucket,
			      (long long)tr->owner_pid, tr->owner_app ? " (" : "", tr->owner_app ? tr->owner_app : "",
			      tr->owner_app ? ")" : "");
}

static void explain_tail_sent(struct mqtx_explain *ex)
{
	const struct mqtx_db_check_tail_row *tr = &ex->tail_row;
	ex->verdict = mqtx_xasprintf("relayed: covered by bucket %lld's checkpoint (the broker confirmed it)",
				     (long long)tr->bucket);
	if (tr->in_prev)
		story(ex,
		      tr->txid
			      ? mqtx_xasprintf("its transaction (txid %s) is visible in the checkpoint's prev snapshot: "
					       "everything up to there is relayed",
					       tr->txid)
			      : mqtx_xstrdup("a row of the status era (no txid): the first interval held it, and the "
					     "bucket has moved past it"));
	else
		story(ex,
		      mqtx_xasprintf("it is in the interval the relay works on (its transaction is visible in the cur "
				     "snapshot, not in prev) at or before the position (id %lld)",
				     (long long)tr->pos_id));
	story(ex, checkpoint_text(tr));
	story(ex,
	      mqtx_xstrdup(
		      "tail mode records no sent_at: the checkpoint, written after the broker confirmed, is the record"));
}

static int explain_tail_unrelayed(struct mqtx_db_check *db, const struct mqtx_config *cfg, struct mqtx_explain *ex,
				  enum mqtx_check_level *level, struct mqtx_err *err)
{
	const struct mqtx_db_check_tail_row *tr = &ex->tail_row;
	if (tr->in_cur && !tr->in_prev && tr->cur_snapshot != NULL) {
		ex->verdict =
			mqtx_xasprintf("waiting for the relay: in the interval bucket %lld works on, after its position "
				       "(id %lld > %lld)",
				       (long long)tr->bucket, (long long)ex->id, (long long)tr->pos_id);
		story(ex,
		      mqtx_xstrdup(
			      "its transaction committed before the relay's cur snapshot: the bucket's next batch takes it"));
	} else {
		ex->verdict = mqtx_xasprintf("waiting for the relay: committed after bucket %lld's checkpoint",
					     (long long)tr->bucket);
		story(ex,
		      tr->prev_snapshot == NULL && tr->cur_snapshot == NULL
			      ? mqtx_xstrdup("no relay has checkpointed its bucket yet: the first interval takes it")
			      : mqtx_xstrdup(
					"its transaction committed after the relay's last snapshot of the bucket: the "
					"bucket's next interval takes it"));
	}
	if (tr->txid != NULL)
		story(ex, mqtx_xasprintf("txid %s", tr->txid));
	if (ex->retry_in_ms == MQTX_CHECK_PARKED) {
		story(ex, mqtx_xstrdup("available_at is infinity: a half message txpub holds until its transaction is "
				       "decided; the relay parks it until then"));
		action(ex, mqtx_xstrdup("mqtx check --resolve"));
		*level = MQTX_CHECK_WARNING;
	} else if (ex->retry_in_ms > 0) {
		char *w = dur(ex->retry_in_ms);
		story(ex, mqtx_xasprintf("scheduled: not before %s (in %s); the relay parks it until then",
					 ex->available_at ? ex->available_at : "?", w));
		free(w);
	}
	story(ex, checkpoint_text(tr));
	if (tr->ahead > 0)
		story(ex, mqtx_xasprintf("%lld unrelayed row(s) of bucket %lld go before it (id order)",
					 (long long)tr->ahead, (long long)tr->bucket));
	story(ex, owner_text(tr));
	if (ex->ordering_key != NULL) {
		int64_t ahead = 0, behind = 0;
		if (mqtx_db_check_tail_key_head(db, ex->ordering_key, INT64_MAX, &ex->head, &ahead, &behind, err) < 0)
			return -1;
		ex->ahead = ahead;
		if (ahead > 0) {
			story(ex,
			      mqtx_xasprintf("ordering key '%s' has %lld parked row(s), the first row %lld (%lld attempt(s)%s%s): "
					     "the relay parks this row 'blocked' behind it when it gets there",
					     ex->ordering_key, (long long)ahead, (long long)ex->head.id,
					     (long long)ex->head.attempts, ex->head.last_error ? ": " : "",
					     ex->head.last_error ? ex->head.last_error : ""));
			action(ex, explain_cmd(ex->head.id));
			*level = MQTX_CHECK_WARNING;
		}
	}
	(void)cfg;
	return 0;
}

static int explain_tail_parked(struct mqtx_db_check *db, const struct mqtx_config *cfg, struct mqtx_explain *ex,
			       enum mqtx_check_level *level, struct mqtx_err *err)
{
	const struct mqtx_db_check_tail_row *tr = &ex->tail_row;
	const char *st = tr->parked_state ? tr->parked_state : "";
	story(ex, mqtx_xasprintf("parked '%s' since %s (bucket %lld)", st, tr->parked_at ? tr->parked_at : "?",
				 (long long)tr->bucket));
	if (tr->parked_error != NULL && tr->parked_attempts > 0)
		story(ex, mqtx_xasprintf("last error: %s", tr->parked_error));
	int64_t ahead = 0, behind = 0;
	if (ex->ordering_key != NULL &&
	    mqtx_db_check_tail_key_head(db, ex->ordering_key, tr->seq, &ex->head, &ahead, &behind, err) < 0)
		return -1;
	ex->ahead = ahead;
	ex->behind = behind;
	if (strcmp(st, "blocked") == 0) {
		*level = MQTX_CHECK_WARNING;
		if (ahead > 0) {
			const struct mqtx_check_row *h = &ex->head;
			ex->verdict = mqtx_xasprintf("parked 'blocked': it waits behind row %lld of ordering key '%s'%s",
						     (long long)h->id, ex->ordering_key,
						     h->attempts > 0 ? ", which keeps failing" : "");
			story(ex,
			      mqtx_xasprintf("row %lld (to '%s', %lld failed attempt(s)%s%s) heads the key; %lld parked row(s) "
					     "of the key go before this one",
					     (long long)h->id, h->destination ? h->destination : "?",
					     (long long)h->attempts, h->last_error ? ": " : "",
					     h->last_error ? h->last_error : "", (long long)ahead));
			action(ex, explain_cmd(h->id));
			action(ex, mqtx_xasprintf("fix what holds row %lld; this row follows once it is sent (or dead)",
						  (long long)h->id));
		} else {
			ex->verdict = mqtx_xstrdup(
				"parked 'blocked', first of its ordering key now: the relay's next round releases it");
			*level = MQTX_CHECK_OK;
		}
	} else if (tr->next_in_ms == MQTX_CHECK_PARKED) {
		*level = MQTX_CHECK_WARNING;
		ex->verdict = mqtx_xstrdup(
			"parked: a half message (available_at is infinity) waiting for txpub to decide its "
			"transaction");
		action(ex, mqtx_xstrdup("mqtx check --resolve"));
	} else if (tr->next_in_ms > 0) {
		char *w = dur(tr->next_in_ms);
		if (tr->parked_attempts > 0) {
			*level = MQTX_CHECK_WARNING;
			ex->verdict = mqtx_xasprintf("parked for retry: attempt %lld of %lld in %s (at %s)",
						     (long long)tr->parked_attempts + 1,
						     (long long)cfg->relay_max_attempts, w,
						     tr->next_at ? tr->next_at : "?");
			action(ex, mqtx_xasprintf("fix the cause (%s); the relay retries by itself",
						  tr->parked_error ? tr->parked_error : "see last_error"));
			char *sql = mqtx_db_check_tail_retry_sql(db, ex->id);
			action(ex, mqtx_xasprintf("to retry at once: %s", sql));
			free(sql);
		} else {
			ex->verdict = mqtx_xasprintf("parked until its delivery time: not before %s (in %s)",
						     tr->next_at ? tr->next_at : "?", w);
		}
		free(w);
	} else {
		ex->verdict =
			mqtx_xasprintf("parked for retry (%lld failed attempt(s)), due now: the relay's next round "
				       "releases it",
				       (long long)tr->parked_attempts);
		*level = tr->parked_attempts > 0 ? MQTX_CHECK_WARNING : MQTX_CHECK_OK;
	}
	if (behind > 0)
		story(ex, mqtx_xasprintf("%lld later row(s) of ordering key '%s' are parked 'blocked' behind it",
					 (long long)behind, ex->ordering_key));
	return 0;
}

static void explain_tail_dead(struct mqtx_explain *ex)
{
	const struct mqtx_db_check_tail_row *tr = &ex->tail_row;
	ex->verdict = mqtx_xasprintf("dead: the relay gave up after %lld failed attempt(s) (parked 'dead') and will not "
				     "try again",
				     (long long)tr->parked_attempts);
	story(ex, mqtx_xasprintf("last error: %s", tr->parked_error ? tr->parked_error : "none recorded"));
	story(ex, mqtx_xasprintf("parked since %s (bucket %lld)", tr->parked_at ? tr->parked_at : "?",
				 (long long)tr->bucket));
	if (ex->ordering_key != NULL)
		story(ex, mqtx_xasprintf("later rows of ordering key '%s' no longer wait for it", ex->ordering_key));
	action(ex, mqtx_xasprintf("fix the cause (%s), then give it back to the relay:",
				  tr->parked_error ? tr->parked_error : "see last_error"));
	action(ex, mqtx_xasprintf("mqtx redeliver --status dead --id %lld --requeue --yes", (long long)ex->id));
	ex->level = MQTX_CHECK_CRITICAL;
}

/* A row of a tail-mode outbox; ex->status becomes its effective status. */
static int explain_tail(struct mqtx_db_check *db, const struct mqtx_config *cfg, struct mqtx_explain *ex,
			bool relays_known, struct indoubt_find *f, struct mqtx_err *err)
{
	bool found = false;
	if (mqtx_db_check_tail_find(db, ex->id, &ex->tail_row, &found, err) < 0)
		return -1;
	if (!found) { /* deleted since the look-up */
		ex->verdict = mqtx_xstrdup("gone: the row was deleted while check looked at it (retention?)");
		ex->level = MQTX_CHECK_UNKNOWN;
		return 0;
	}
	struct mqtx_db_check_tail_row *tr = &ex->tail_row;
	if (!tr->parked && strcmp(ex->status, "sent") == 0) { /* relayed in status mode, before the switch */
		if (explain_sent(db, cfg, ex, err) < 0)
			return -1;
		story(ex,
		      mqtx_xstrdup(
			      "a row of the status era: relayed in status mode, before the outbox switched to tail mode"));
		return 0;
	}
	free(ex->status);
	ex->status = mqtx_xstrdup(tr->status ? tr->status : "pending");
	if (tr->parked) {
		ex->attempts = tr->parked_attempts;
		free(ex->last_error);
		ex->last_error = tr->parked_error ? mqtx_xstrdup(tr->parked_error) : NULL;
		ex->retry_in_ms = tr->next_in_ms < 0 ? 0 : tr->next_in_ms;
	}
	if (tr->parked && tr->parked_state != NULL && strcmp(tr->parked_state, "dead") == 0) {
		explain_tail_dead(ex);
		return 0;
	}
	if (strcmp(ex->status, "sent") == 0) {
		explain_tail_sent(ex);
		ex->level = MQTX_CHECK_OK;
		return 0;
	}
	if (strcmp(ex->status, "pending") != 0) {
		explain_other(ex, f);
		return 0;
	}
	enum mqtx_check_level lvl = MQTX_CHECK_OK;
	char *age = ex->age_ms >= 0 ? dur(ex->age_ms) : NULL;
	if (age != NULL)
		story(ex, mqtx_xasprintf("written %s ago", age));
	free(age);
	if (tr->parked) {
		if (explain_tail_parked(db, cfg, ex, &lvl, err) < 0)
			return -1;
	} else if (explain_tail_unrelayed(db, cfg, ex, &lvl, err) < 0) {
		return -1;
	}
	if (explain_relay(db, cfg, ex, relays_known, &lvl, err) < 0)
		return -1;
	if (ex->n_actions == 0)
		action(ex, mqtx_xstrdup("nothing: a running tail relay sends it shortly"));
	/* late: as pending_age counts it (a row written or parked for a delivery time counts from then) */
	int64_t late = ex->age_ms, until = tr->parked ? tr->next_in_ms : ex->retry_in_ms;
	bool scheduled = tr->parked ? tr->parked_attempts == 0 && tr->next_at != NULL &&
					      tr->next_in_ms != MQTX_CHECK_PARKED
				    : ex->attempts == 0 && ex->retry_in_ms != MQTX_CHECK_PARKED;
	if (late >= 0 && scheduled && late + until > 0)
		late = until > 0 ? 0 : -until;
	if (late >= 0) {
		if (cfg->check_crit_age_ms > 0 && late > cfg->check_crit_age_ms)
			lvl = MQTX_CHECK_CRITICAL;
		else if (cfg->check_warn_age_ms > 0 && late > cfg->check_warn_age_ms && lvl < MQTX_CHECK_WARNING)
			lvl = MQTX_CHECK_WARNING;
	}
	ex->level = lvl;
	return 0;
}

/* Not found in a tail-mode outbox: check only sees committed rows. */
static int explain_tail_invisible(struct mqtx_db_check *db, struct mqtx_explain *ex, const char *ident,
				  struct mqtx_err *err)
{
	int64_t total = 0;
	if (mqtx_db_check_tail_writers(db, &ex->writers, &ex->n_writers, &total, &ex->max_id, err) < 0)
		return -1;
	ex->verdict = mqtx_xasprintf("no committed row with id or key '%s': check only sees committed rows", ident);
	story(ex,
	      mqtx_xstrdup("a row whose transaction is still open or prepared is invisible to check and to the relay; "
			   "the relay sends it after that transaction commits, in its place in commit order"));
	for (size_t i = 0; i < ex->n_writers; i++) {
		const struct mqtx_check_xact *x = &ex->writers[i];
		char *a = dur(x->age_ms), *name = xact_name(x);
		story(ex,
		      mqtx_xasprintf("%s, %s for %s, wrote to the outbox", name, x->prepared ? "prepared" : "open", a));
		free(a);
		free(name);
	}
	if (total > (int64_t)ex->n_writers)
		story(ex, mqtx_xasprintf("... and %lld more", (long long)(total - (int64_t)ex->n_writers)));
	if (total == 0)
		story(ex,
		      mqtx_xstrdup("no open or prepared transaction holds a write lock on the outbox now: if the row "
				   "existed, it was rolled back or deleted (retention)"));
	if (ex->max_id >= 0)
		story(ex, mqtx_xasprintf("the highest committed id is %lld", (long long)ex->max_id));
	for (size_t i = 0; i < ex->n_writers; i++)
		if (ex->writers[i].prepared) {
			action(ex, mqtx_xstrdup(
					   "mqtx check --resolve decides txpub's prepared transactions; others: COMMIT "
					   "PREPARED or ROLLBACK PREPARED"));
			break;
		}
	return 0;
}

/* Not in the outbox: maybe a txpub item in doubt. */
static void explain_in_doubt(struct mqtx_explain *ex, const char *ident, struct indoubt_find *f)
{
	if (f->detail == NULL)
		return;
	ex->found = true;
	ex->key = mqtx_xstrdup(ident);
	ex->status = mqtx_xstrdup(f->kind);
	ex->age_ms = f->age_ms;
	ex->in_doubt = f->detail;
	f->detail = NULL;
	char *a = dur(f->age_ms);
	ex->verdict = mqtx_xasprintf("in doubt: a txpub %s prepared %s ago and not yet decided", f->kind, a);
	free(a);
	story(ex, mqtx_xasprintf("txpub: %s", ex->in_doubt));
	action(ex, mqtx_xstrdup("mqtx check --resolve"));
	ex->level = MQTX_CHECK_WARNING;
}

static void take_message(struct mqtx_explain *ex, struct mqtx_db_check_message *m)
{
	ex->found = ex->in_outbox = true;
	ex->id = m->row.id;
	ex->key = m->row.key;
	ex->destination = m->row.destination;
	ex->ordering_key = m->row.ordering_key;
	ex->last_error = m->row.last_error;
	ex->attempts = m->row.attempts;
	ex->age_ms = m->row.age_ms;
	ex->retry_in_ms = m->row.retry_in_ms;
	ex->routing_key = m->routing_key;
	ex->status = m->status;
	ex->created_at = m->created_at;
	ex->available_at = m->available_at;
	ex->sent_at = m->sent_at;
	ex->redelivered_at = m->redelivered_at;
	ex->redelivery_count = m->redelivery_count;
	ex->sent_ms = m->sent_ms;
}

int mqtx_check_explain(PGconn *conn, const struct mqtx_config *cfg, const char *ident, struct mqtx_explain *ex,
		       struct mqtx_err *err)
{
	memset(ex, 0, sizeof(*ex));
	ex->age_ms = ex->retry_in_ms = ex->sent_ms = -1;
	struct mqtx_db_check *db = mqtx_db_check_new(conn, cfg, err);
	if (db == NULL)
		return -1;
	struct indoubt_find f = {0};
	struct mqtx_db_check_message m;
	bool found = false, relays_known = false;
	if (mqtx_db_check_set_timeout(db, err) < 0 || mqtx_db_check_find(db, ident, &m, &found, err) < 0)
		goto fail;
	if (found)
		take_message(ex, &m);

	/* txpub's word on it: a half message, or a prepared transaction */
	f.key = ex->key ? ex->key : ident;
	f.id = ex->id;
	if (!ex->found || (ex->status != NULL && strcmp(ex->status, "prepared") == 0)) {
		struct mqtx_err e;
		mqtx_err_clear(&e);
		if (mqtx_txpub_list_in_doubt(conn, cfg, find_indoubt, &f, &e) < 0)
			mqtx_warn("cannot list in-doubt txpub items: %s", e.msg);
	}
	ex->tail = mqtx_db_check_tail(db);
	ex->max_id = -1;
	if (!ex->found) {
		explain_in_doubt(ex, ident, &f);
		if (!ex->found && ex->tail && explain_tail_invisible(db, ex, ident, err) < 0)
			goto fail;
	} else if (mqtx_db_check_relays_known(db, &relays_known, err) < 0) {
		goto fail;
	} else if (ex->tail) {
		if (explain_tail(db, cfg, ex, relays_known, &f, err) < 0)
			goto fail;
	} else if (strcmp(ex->status, "pending") == 0) {
		if (explain_pending(db, cfg, ex, relays_known, err) < 0)
			goto fail;
	} else if (strcmp(ex->status, "sent") == 0) {
		if (explain_sent(db, cfg, ex, err) < 0)
			goto fail;
	} else {
		explain_other(ex, &f);
	}
	free(f.kind);
	free(f.detail);
	mqtx_db_check_free(db);
	return 0;
fail:
	free(f.kind);
	free(f.detail);
	mqtx_db_check_free(db);
	mqtx_explain_free(ex);
	return -1;
}
