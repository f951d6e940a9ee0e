/* lib/check's rules on synthetic reports (no database, no broker). */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check/check.h"
#include "db/check.h"
#include "unit.h"

/* An OK outbox: empty, a relays table, no relay, defaults as mqtx_config. */
static void synthetic(struct mqtx_check_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	struct mqtx_check_thresholds *t = &rep->thresholds;
	t->warn_age_ms = 5 * 60000;
	t->crit_age_ms = 30 * 60000;
	t->warn_attempts = 3;
	t->max_dead = 0;
	t->relay_stale_ms = 2 * 60000;
	t->completion_after_ms = 10 * 60000;
	t->queue_min_consumers = 1;
	t->scan_limit = 100000;
	t->list_limit = 10;
	t->max_table_size = 1073741824;
	t->retention_lag_ms = 3600000;
	t->retention_ms = 7 * 86400000LL;
	rep->outbox = mqtx_xstrdup("public.mqtx_outbox");
	struct mqtx_check_snapshot *s = &rep->db;
	s->database = mqtx_xstrdup("app");
	s->checked_at = mqtx_xstrdup("2026-01-02T03:04:05Z");
	s->total_estimate = 0;
	s->table_bytes = 65536;
	s->partitions = s->oldest_row_ms = -1;
	s->retention.known = true;
	s->retention.overdue_ms = -1;
	for (int k = 0; k < MQTX_RET__COUNT; k++)
		s->retention.pruned[k] = k != MQTX_RET_DEAD;
	s->oldest_pending_ms = s->last_relay_seen_ms = s->oldest_awaiting_ms = -1;
	s->relays_known = true;
	s->has_sent_at = true;
	s->relays_table = mqtx_xstrdup("\"public\".mqtx_relays");
	s->completions_table = mqtx_xstrdup("\"public\".mqtx_completions");
	rep->in_doubt_known = true;
}

static struct mqtx_check_row row(int64_t id, const char *dest, const char *err, int64_t attempts)
{
	struct mqtx_check_row r = {0};
	r.id = id;
	r.key = mqtx_xstrdup("k");
	r.destination = mqtx_xstrdup(dest);
	r.last_error = err ? mqtx_xstrdup(err) : NULL;
	r.attempts = attempts;
	r.age_ms = 1000;
	return r;
}

static void add_dest(struct mqtx_check_report *rep, const char *name, int64_t pending, int exists, const char *detail)
{
	struct mqtx_check_snapshot *s = &rep->db;
	s->dests = mqtx_xrealloc(s->dests, (s->n_dests + 1) * sizeof(*s->dests));
	struct mqtx_check_dest *d = &s->dests[s->n_dests++];
	memset(d, 0, sizeof(*d));
	d->name = mqtx_xstrdup(name);
	d->pending = pending;
	d->oldest_pending_ms = -1;
	d->relayed_minute = d->relayed_hour = -1;
	d->exists = exists;
	d->broker_detail = detail ? mqtx_xstrdup(detail) : NULL;
}

static void add_relay(struct mqtx_check_report *rep, const char *id, const char *host, int64_t seen_ms,
		      int64_t started_ms, bool stopped)
{
	struct mqtx_check_snapshot *s = &rep->db;
	s->relays = mqtx_xrealloc(s->relays, (s->n_relays + 1) * sizeof(*s->relays));
	struct mqtx_check_relay *x = &s->relays[s->n_relays++];
	memset(x, 0, sizeof(*x));
	x->relay_id = mqtx_xstrdup(id);
	x->host = mqtx_xstrdup(host);
	x->pid = 42;
	x->seen_ms = seen_ms;
	x->started_ms = started_ms;
	x->stopped = stopped;
}

static const struct mqtx_check_problem *find(const struct mqtx_check_report *rep, const char *check)
{
	for (size_t i = 0; i < rep->n_problems; i++)
		if (strcmp(rep->problems[i].check, check) == 0)
			return &rep->problems[i];
	return NULL;
}

TEST(check_rules_empty_outbox_is_ok)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 0);
	CHECK(rep.level == MQTX_CHECK_OK);
	mqtx_check_report_free(&rep);
	CHECK(mqtx_check_n_rules > 10);
	for (size_t i = 0; i < mqtx_check_n_rules; i++)
		CHECK(mqtx_check_rules[i].name != NULL && mqtx_check_rules[i].judge != NULL);
}

TEST(check_rule_pending_age)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.db.status[MQTX_ST_PENDING].n = 3;
	rep.db.oldest_pending_ms = 6 * 60000;
	rep.db.n_warn_age = 2;
	rep.db.n_crit_age = 0;
	rep.db.last_relay_seen_ms = 1000; /* a relay ran recently: no no_live_relay */
	rep.db.oldest = mqtx_xcalloc(1, sizeof(*rep.db.oldest));
	rep.db.oldest[0] = row(7, "orders", NULL, 0);
	rep.db.n_oldest = 1;
	mqtx_check_judge(&rep);
	CHECK(rep.level == MQTX_CHECK_WARNING);
	const struct mqtx_check_problem *p = find(&rep, "pending_age");
	CHECK(p != NULL);
	if (p != NULL) {
		CHECK(p->level == MQTX_CHECK_WARNING);
		CHECK(p->count == 2);
		CHECK_STR(p->message,
			  "2 pending row(s) older than 5m0s (check.warn_age); the oldest is 6m0s old (row 7 to 'orders')");
		CHECK_STR(p->action, "mqtx check --explain 7");
		CHECK(p->n_rows == 1 && p->rows[0].id == 7);
	}
	CHECK(rep.db.oldest == NULL && rep.db.n_oldest == 0); /* moved into the finding */
	mqtx_check_report_free(&rep);

	/* past crit_age, more than the scan limit: CRITICAL and a lower bound */
	synthetic(&rep);
	rep.db.status[MQTX_ST_PENDING].n = 3;
	rep.db.oldest_pending_ms = 31 * 60000;
	rep.db.n_crit_age = 1;
	rep.db.pending_truncated = true;
	rep.db.last_relay_seen_ms = 1000;
	mqtx_check_judge(&rep);
	p = find(&rep, "pending_age");
	CHECK(p != NULL && p->level == MQTX_CHECK_CRITICAL && rep.level == MQTX_CHECK_CRITICAL);
	if (p != NULL) {
		CHECK_STR(p->message,
			  "at least 1 pending row(s) older than 30m0s (check.crit_age); the oldest is 31m0s old");
		CHECK(p->action == NULL);
	}
	mqtx_check_report_free(&rep);

	/* both ages off: nothing */
	synthetic(&rep);
	rep.thresholds.warn_age_ms = rep.thresholds.crit_age_ms = 0;
	rep.db.status[MQTX_ST_PENDING].n = 1;
	rep.db.oldest_pending_ms = 99 * 60000;
	rep.db.last_relay_seen_ms = 1000;
	mqtx_check_judge(&rep);
	CHECK(find(&rep, "pending_age") == NULL);
	mqtx_check_report_free(&rep);
}

TEST(check_rule_dead_rows)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.thresholds.max_dead = 1;
	rep.db.status[MQTX_ST_DEAD].n = 1;
	mqtx_check_judge(&rep);
	CHECK(find(&rep, "dead_rows") == NULL); /* not more than max_dead */
	mqtx_check_report_free(&rep);

	synthetic(&rep);
	rep.db.status[MQTX_ST_DEAD] = (struct mqtx_check_count){5, true};
	rep.db.dead = mqtx_xcalloc(1, sizeof(*rep.db.dead));
	rep.db.dead[0] = row(9, "orders", "boom", 10);
	rep.db.n_dead = 1;
	mqtx_check_judge(&rep);
	const struct mqtx_check_problem *p = find(&rep, "dead_rows");
	CHECK(p != NULL && p->level == MQTX_CHECK_CRITICAL && p->count == 5);
	if (p != NULL)
		CHECK_STR(p->message,
			  "at least 5 dead row(s), more than check.max_dead (0): the relay gave up on them; the "
			  "newest is row 9 to 'orders': boom");
	mqtx_check_report_free(&rep);
}

TEST(check_rule_relay_states)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	add_relay(&rep, "a", "h1", 1000, 5000, false);     /* live */
	add_relay(&rep, "b", "h1", 600000, 900000, false); /* stale, but h1 runs a relay started since: replaced */
	add_relay(&rep, "c", "h2", 600000, 900000, false); /* stale */
	add_relay(&rep, "d", "h2", 600000, 900000, true);  /* stopped */
	mqtx_check_judge(&rep);
	CHECK(rep.db.relays[0].state == MQTX_RELAY_LIVE);
	CHECK(rep.db.relays[1].state == MQTX_RELAY_REPLACED);
	CHECK(rep.db.relays[2].state == MQTX_RELAY_STALE);
	CHECK(rep.db.relays[3].state == MQTX_RELAY_STOPPED);
	CHECK(rep.relays_live == 1 && rep.relays_stale == 2 && rep.relays_replaced == 1 && rep.relays_stopped == 1);
	CHECK(mqtx_relay_state_level(MQTX_RELAY_STALE) == MQTX_CHECK_WARNING);
	CHECK(mqtx_relay_state_level(MQTX_RELAY_REPLACED) == MQTX_CHECK_OK);
	const struct mqtx_check_problem *p = find(&rep, "stale_relays");
	CHECK(p != NULL && p->count == 1 && p->n_relays == 1);
	if (p != NULL) {
		CHECK_STR(p->relays[0].relay_id, "c");
		CHECK_STR(p->action, "look at the relay process on h2; if it is gone for good: DELETE FROM "
				     "\"public\".mqtx_relays WHERE relay_id = 'c'");
	}
	CHECK(find(&rep, "no_live_relay") == NULL);
	mqtx_check_report_free(&rep);
}

TEST(check_rule_no_live_relay)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.db.status[MQTX_ST_PENDING].n = 4;
	rep.db.oldest_pending_ms = 3 * 60000; /* waiting longer than relay_stale */
	mqtx_check_judge(&rep);
	const struct mqtx_check_problem *p = find(&rep, "no_live_relay");
	CHECK(p != NULL && p->level == MQTX_CHECK_CRITICAL && p->count == 4);
	if (p != NULL)
		CHECK_STR(p->message,
			  "4 row(s) pending and no relay seen for 2m0s (check.relay_stale); no relay has ever run "
			  "for this outbox");
	mqtx_check_report_free(&rep);

	synthetic(&rep);
	rep.db.status[MQTX_ST_PENDING].n = 4;
	rep.db.oldest_pending_ms = 3 * 60000;
	rep.db.last_relay_seen_ms = 3600000;
	mqtx_check_judge(&rep);
	p = find(&rep, "no_live_relay");
	CHECK(p != NULL);
	if (p != NULL)
		CHECK_STR(p->message,
			  "4 row(s) pending and no relay seen for 2m0s (check.relay_stale); the last one was seen "
			  "1h0m ago");
	mqtx_check_report_free(&rep);

	/* no relays table: not judged */
	synthetic(&rep);
	rep.db.relays_known = false;
	rep.db.status[MQTX_ST_PENDING].n = 4;
	rep.db.oldest_pending_ms = 3 * 60000;
	mqtx_check_judge(&rep);
	CHECK(find(&rep, "no_live_relay") == NULL);
	mqtx_check_report_free(&rep);
}

TEST(check_rules_broker_by_capability)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.thresholds.broker = true;
	rep.broker_checked = true;
	rep.broker_has_queues = false;
	rep.dest_noun = "topic";
	add_dest(&rep, "orders", 2, 0, "unknown topic");
	add_dest(&rep, "billing", 1, 1, NULL);
	add_dest(&rep, "idle", 0, -1, NULL);
	rep.queues = mqtx_xcalloc(1, sizeof(*rep.queues));
	rep.queues[0] = (struct mqtx_check_queue){mqtx_xstrdup("q"), false, false, -1, -1, mqtx_xstrdup("no queues")};
	rep.n_queues = 1;
	rep.db.last_relay_seen_ms = 0;
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 1);
	const struct mqtx_check_problem *p = find(&rep, "destination_missing");
	CHECK(p != NULL && p->count == 2);
	if (p != NULL) {
		CHECK_STR(p->message,
			  "destination 'orders' does not exist on the broker; 2 pending row(s) wait for it: unknown "
			  "topic");
		CHECK_STR(p->action,
			  "create the topic 'orders' (the relay never creates it), or fix the rows' destination");
		CHECK_STR(p->destination, "orders");
	}
	mqtx_check_report_free(&rep);

	/* queues answered; then the broker stopped answering: that comes after */
	synthetic(&rep);
	rep.thresholds.broker = true;
	rep.thresholds.queue_max_depth = 10;
	rep.broker_has_queues = true;
	rep.dest_noun = "exchange";
	rep.queues = mqtx_xcalloc(3, sizeof(*rep.queues));
	rep.queues[0] = (struct mqtx_check_queue){mqtx_xstrdup("gone"), true, false, -1, -1, NULL};
	rep.queues[1] = (struct mqtx_check_queue){mqtx_xstrdup("deep"), true, true, 50, 0, NULL};
	rep.queues[2] = (struct mqtx_check_queue){mqtx_xstrdup("unasked"), false, false, -1, -1, NULL};
	rep.n_queues = 3;
	rep.broker_error = mqtx_xstrdup("cannot ask the broker about queue 'unasked': timeout");
	rep.broker_error_level = MQTX_CHECK_CRITICAL;
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 4);
	if (rep.n_problems == 4) {
		CHECK_STR(rep.problems[0].check, "queue_missing");
		CHECK_STR(rep.problems[1].check, "broker_unreachable");
		CHECK(rep.problems[1].action == NULL);
		CHECK_STR(rep.problems[2].check, "queue_consumers");
		CHECK_STR(rep.problems[3].check, "queue_depth");
		CHECK(rep.problems[3].count == 50);
		CHECK_STR(rep.problems[2].message,
			  "queue 'deep' has 0 consumer(s), fewer than 1 (check.queue_min_consumers)");
	}
	mqtx_check_report_free(&rep);

	/* could not connect: the action says what to look at; no URL: UNKNOWN */
	synthetic(&rep);
	rep.thresholds.broker = true;
	rep.broker_error = mqtx_xstrdup("connection refused");
	rep.broker_error_level = MQTX_CHECK_CRITICAL;
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 1 && rep.level == MQTX_CHECK_CRITICAL);
	if (rep.n_problems == 1)
		CHECK_STR(rep.problems[0].action, "check the broker and broker.url; the relay cannot publish either");
	mqtx_check_report_free(&rep);
	synthetic(&rep);
	rep.broker_error = mqtx_xstrdup("--broker: no broker URL");
	rep.broker_error_level = MQTX_CHECK_UNKNOWN;
	mqtx_check_judge(&rep);
	CHECK(rep.level == MQTX_CHECK_UNKNOWN && rep.n_problems == 1 && rep.problems[0].action == NULL);
	mqtx_check_report_free(&rep);
}

TEST(check_rules_sorted_by_severity_stably)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.resolved = true;
	rep.resolve.failed = 2;     /* WARNING, first rule */
	rep.in_doubt_known = false; /* WARNING */
	rep.in_doubt_error = mqtx_xstrdup("permission denied");
	rep.db.status[MQTX_ST_DEAD].n = 1; /* CRITICAL */
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 3 && rep.level == MQTX_CHECK_CRITICAL);
	if (rep.n_problems == 3) {
		CHECK_STR(rep.problems[0].check, "dead_rows");
		CHECK_STR(rep.problems[1].check, "resolve_failed");
		CHECK_STR(rep.problems[2].check, "in_doubt_unavailable");
		CHECK_STR(rep.problems[1].message, "--resolve: 2 item(s) could not be resolved (see the log above)");
		CHECK_STR(rep.problems[2].message, "cannot list in-doubt txpub items: permission denied");
	}
	mqtx_check_report_free(&rep);
}

TEST(check_rule_completion)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.thresholds.completion = true;
	rep.db.has_sent_at = false;
	mqtx_check_judge(&rep);
	const struct mqtx_check_problem *p = find(&rep, "completion_unavailable");
	CHECK(p != NULL && p->action == NULL);
	mqtx_check_report_free(&rep);

	synthetic(&rep);
	rep.thresholds.completion = true;
	rep.db.completion_table_missing = true;
	mqtx_check_judge(&rep);
	p = find(&rep, "completion_unavailable");
	CHECK(p != NULL);
	if (p != NULL) {
		CHECK_STR(p->message, "check.completion is on, but \"public\".mqtx_completions does not exist");
		CHECK_STR(p->action, "mqtx init");
	}
	mqtx_check_report_free(&rep);

	synthetic(&rep);
	rep.thresholds.completion = true;
	rep.thresholds.completion_after_ms = 90000;
	rep.db.completion_checked = true;
	rep.db.awaiting_completion = 3;
	rep.db.oldest_awaiting_ms = 3600000;
	mqtx_check_judge(&rep);
	p = find(&rep, "awaiting_completion");
	CHECK(p != NULL && p->count == 3);
	if (p != NULL)
		CHECK_STR(p->action, "mqtx redeliver --unacked-after 90s --dry-run");
	mqtx_check_report_free(&rep);
}

TEST(check_rule_in_doubt_lists_at_most_list_limit)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.thresholds.list_limit = 2;
	rep.n_in_doubt = 3;
	rep.in_doubt = mqtx_xcalloc(3, sizeof(*rep.in_doubt));
	for (size_t i = 0; i < 3; i++)
		rep.in_doubt[i] = (struct mqtx_check_indoubt){mqtx_xstrdup("half message"), mqtx_xstrdup("k"),
							      mqtx_xstrdup("no decision"), (int64_t)i + 1, 120000};
	mqtx_check_judge(&rep);
	const struct mqtx_check_problem *p = find(&rep, "in_doubt");
	CHECK(p != NULL && p->count == 3 && p->n_items == 2);
	if (p != NULL)
		CHECK_STR(p->message, "3 txpub item(s) in doubt; e.g. half message 'k' prepared 2m0s ago: no decision");
	mqtx_check_report_free(&rep);
}

TEST(check_rule_table_size)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.db.table_bytes = 3 * 1073741824LL;
	mqtx_check_judge(&rep);
	CHECK(find(&rep, "table_size") == NULL); /* retention is on: it prunes */
	mqtx_check_report_free(&rep);

	synthetic(&rep);
	rep.thresholds.retention_ms = 0;
	rep.db.table_bytes = 1536 * 1048576LL;
	mqtx_check_judge(&rep);
	const struct mqtx_check_problem *p = find(&rep, "table_size");
	CHECK(p != NULL && p->level == MQTX_CHECK_WARNING && rep.level == MQTX_CHECK_WARNING);
	if (p != NULL) {
		CHECK_STR(p->message,
			  "the outbox takes 1.5 GiB (table, indexes and TOAST), more than check.max_table_size "
			  "(1.0 GiB), and outbox.retention is off: nothing is deleted, it only grows");
		CHECK_STR(p->action,
			  "set outbox.retention (e.g. 7d) for the relays: they delete relayed rows older than that");
		CHECK(p->count == -1);
	}
	mqtx_check_report_free(&rep);

	/* at the limit, off (0), or size unknown: nothing */
	int64_t sizes[] = {1073741824, 5 * 1073741824LL, -1};
	int64_t limits[] = {1073741824, 0, 1024};
	for (size_t i = 0; i < 3; i++) {
		synthetic(&rep);
		rep.thresholds.retention_ms = 0;
		rep.db.table_bytes = sizes[i];
		rep.thresholds.max_table_size = limits[i];
		mqtx_check_judge(&rep);
		CHECK(find(&rep, "table_size") == NULL);
		CHECK(rep.level == MQTX_CHECK_OK);
		mqtx_check_report_free(&rep);
	}
}

TEST(check_rule_retention_lag)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.db.retention.due[MQTX_RET_SENT] = 5;
	rep.db.retention.due[MQTX_RET_ROLLED_BACK] = 2;
	rep.db.retention.due[MQTX_RET_RELAYS] = 40; /* bookkeeping rows have no due time: not counted */
	rep.db.retention.overdue_ms = 2 * 3600000;
	mqtx_check_judge(&rep);
	const struct mqtx_check_problem *p = find(&rep, "retention_lag");
	CHECK(p != NULL && p->level == MQTX_CHECK_WARNING && p->count == 7);
	if (p != NULL) {
		CHECK_STR(p->message,
			  "retention is not keeping up or has stopped: 7 row(s) were due for deletion up to 2h0m ago "
			  "(check.retention_lag: 1h0m); is a relay running with outbox.retention? can its role DELETE?");
		CHECK_CONTAINS(p->action, "'mqtx init --grant ROLE'");
	}
	mqtx_check_report_free(&rep);

	/* a capped count is a lower bound */
	synthetic(&rep);
	rep.db.retention.due[MQTX_RET_SENT] = 100000;
	rep.db.retention.capped[MQTX_RET_SENT] = true;
	rep.db.retention.overdue_ms = 3600001;
	mqtx_check_judge(&rep);
	p = find(&rep, "retention_lag");
	CHECK(p != NULL);
	if (p != NULL)
		CHECK(strncmp(p->message, "retention is not keeping up or has stopped: at least 100000 row(s)", 65) ==
		      0);
	mqtx_check_report_free(&rep);

	/* due for less than check.retention_lag, or exactly that, lag off, preview unknown: nothing */
	int64_t overdue[] = {30 * 60000, 3600000, 5 * 3600000, 5 * 3600000};
	int64_t lag[] = {3600000, 3600000, 0, 3600000};
	bool known[] = {true, true, true, false};
	for (size_t i = 0; i < 4; i++) {
		synthetic(&rep);
		rep.db.retention.due[MQTX_RET_SENT] = 3;
		rep.db.retention.overdue_ms = overdue[i];
		rep.thresholds.retention_lag_ms = lag[i];
		rep.db.retention.known = known[i];
		mqtx_check_judge(&rep);
		CHECK(find(&rep, "retention_lag") == NULL);
		CHECK(rep.level == MQTX_CHECK_OK);
		mqtx_check_report_free(&rep);
	}
}

TEST(check_rule_retention_unavailable)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.db.retention.known = false;
	rep.db.retention.error = mqtx_xstrdup("canceling statement due to statement timeout");
	mqtx_check_judge(&rep);
	const struct mqtx_check_problem *p = find(&rep, "retention_unavailable");
	CHECK(p != NULL && p->level == MQTX_CHECK_WARNING && p->action == NULL);
	if (p != NULL)
		CHECK_STR(p->message,
			  "cannot tell what retention will delete: canceling statement due to statement timeout");
	mqtx_check_report_free(&rep);

	/* a note (no sent_at column) is shown, not judged */
	synthetic(&rep);
	rep.db.retention.note = mqtx_xstrdup("the outbox has no sent_at column");
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 0);
	mqtx_check_report_free(&rep);
}

TEST(check_size_text)
{
	static const struct {
		int64_t bytes;
		const char *text;
	} cases[] = {
		{-1, "unknown"},
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{8192, "8.0 KiB"},
		{1536, "1.5 KiB"},
		{1048576, "1.0 MiB"},
		{1073741824, "1.0 GiB"},
		{5 * 1099511627776LL, "5.0 TiB"},
		{2048 * 1099511627776LL, "2048.0 TiB"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[32];
		mqtx_check_size_text(cases[i].bytes, out, sizeof(out));
		CHECK_STR(out, cases[i].text);
	}
}

TEST(check_sql_literal_for_people)
{
	char *s = mqtx_db_check_literal("plain");
	CHECK_STR(s, "'plain'");
	free(s);
	s = mqtx_db_check_literal("it's");
	CHECK_STR(s, "'it''s'");
	free(s);
	s = mqtx_db_check_literal("a\\b'c");
	CHECK_STR(s, " E'a\\\\b''c'");
	free(s);
}

/* Tail mode: open or prepared transactions older than check.warn_age. */
static void add_xact(struct mqtx_check_report *rep, bool prepared, int64_t age_ms, bool wrote)
{
	struct mqtx_check_tail *t = &rep->db.tail;
	t->xacts = mqtx_xrealloc(t->xacts, (t->n_xacts + 1) * sizeof(*t->xacts));
	struct mqtx_check_xact *x = &t->xacts[t->n_xacts++];
	memset(x, 0, sizeof(*x));
	x->prepared = prepared;
	x->pid = prepared ? -1 : 4242;
	x->gid = prepared ? mqtx_xstrdup("g-1") : NULL;
	x->xid = mqtx_xstrdup("777");
	x->application_name = prepared ? NULL : mqtx_xstrdup("app");
	x->state = prepared ? NULL : mqtx_xstrdup("idle in transaction");
	x->age_ms = age_ms;
	x->wrote_outbox = wrote;
	t->n_xacts_total = (int64_t)t->n_xacts;
}

TEST(check_rule_old_transaction)
{
	struct mqtx_check_report rep;
	/* status mode: never */
	synthetic(&rep);
	add_xact(&rep, true, 3600000, true);
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 0);
	mqtx_check_report_free(&rep);

	/* tail mode: a prepared one older than warn_age (10m > 5m), a young backend */
	synthetic(&rep);
	rep.db.tail.on = true;
	add_xact(&rep, true, 600000, true);
	add_xact(&rep, false, 1000, true);
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 1);
	CHECK_STR(rep.problems[0].check, "old_transaction");
	CHECK(rep.problems[0].level == MQTX_CHECK_WARNING);
	CHECK(rep.problems[0].count == 1);
	CHECK(rep.problems[0].n_xacts == 1);
	CHECK_STR(rep.problems[0].xacts[0].gid, "g-1");
	CHECK_CONTAINS(rep.problems[0].message, "prepared transaction 'g-1' (xid 777)");
	CHECK_CONTAINS(rep.problems[0].message, "(check.warn_age)");
	CHECK_CONTAINS(rep.problems[0].message, "it wrote to the outbox");
	CHECK_CONTAINS(rep.problems[0].action, "ROLLBACK PREPARED 'g-1'");
	CHECK(rep.db.tail.n_xacts == 2); /* the snapshot keeps its list */
	mqtx_check_report_free(&rep);

	/* older than crit_age: CRITICAL; a backend names its pid */
	synthetic(&rep);
	rep.db.tail.on = true;
	add_xact(&rep, false, 2 * 3600000, false);
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 1);
	CHECK(rep.problems[0].level == MQTX_CHECK_CRITICAL);
	CHECK_CONTAINS(rep.problems[0].message, "backend pid 4242 (xid 777, app, idle in transaction)");
	CHECK_CONTAINS(rep.problems[0].message, "(check.crit_age)");
	CHECK_CONTAINS(rep.problems[0].message, "not written to the outbox");
	CHECK_CONTAINS(rep.problems[0].action, "pg_terminate_backend(4242)");
	mqtx_check_report_free(&rep);

	/* both ages off: no alarm */
	synthetic(&rep);
	rep.db.tail.on = true;
	rep.thresholds.warn_age_ms = rep.thresholds.crit_age_ms = 0;
	add_xact(&rep, false, 2 * 3600000, true);
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 0);
	mqtx_check_report_free(&rep);
}

TEST(check_rule_completion_in_tail_mode)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.db.tail.on = true;
	rep.thresholds.completion = true;
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 1);
	CHECK_STR(rep.problems[0].check, "completion_unavailable");
	CHECK_CONTAINS(rep.problems[0].message, "tail-mode outbox records no sent_at");
	mqtx_check_report_free(&rep);
}

TEST(check_rule_outbox_mode)
{
	struct mqtx_check_report rep;
	synthetic(&rep);
	rep.db.tail_checkpoints = true;
	mqtx_check_judge(&rep);
	CHECK(rep.n_problems == 1);
	CHECK_STR(rep.problems[0].check, "outbox_mode");
	CHECK(rep.level == MQTX_CHECK_WARNING);
	CHECK_CONTAINS(rep.problems[0].action, "outbox.mode: tail");
	mqtx_check_report_free(&rep);
}
