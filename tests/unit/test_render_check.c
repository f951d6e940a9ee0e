/* lib/render/check: text, JSON and Prometheus of a synthetic report. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"
#include "check/check.h"
#include "render/check.h"
#include "unit.h"

static int starts_with(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* One destination with a dead row (CRITICAL), a live relay and a stale one. */
static void report(struct mqtx_check_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	struct mqtx_check_thresholds *t = &rep->thresholds;
	t->warn_age_ms = 300000;
	t->crit_age_ms = 1800000;
	t->warn_attempts = 3;
	t->relay_stale_ms = 120000;
	t->completion_after_ms = 600000;
	t->queue_min_consumers = 1;
	t->scan_limit = 100000;
	t->list_limit = 10;
	t->max_table_size = 1073741824;
	t->retention_lag_ms = 3600000;
	t->retention_ms = 7 * 86400000LL;
	rep->outbox = mqtx_xstrdup("public.ob\"x");
	rep->elapsed_ms = 12;
	struct mqtx_check_snapshot *s = &rep->db;
	s->database = mqtx_xstrdup("app");
	s->checked_at = mqtx_xstrdup("2026-01-02T03:04:05Z");
	s->status[MQTX_ST_SENT] = (struct mqtx_check_count){1500, true};
	s->status[MQTX_ST_DEAD].n = 1;
	s->total_estimate = 1501;
	s->table_bytes = 1572864;
	s->partitions = -1;
	s->oldest_row_ms = 7200000;
	s->retention.known = true;
	for (int k = 0; k < MQTX_RET__COUNT; k++)
		s->retention.pruned[k] = k != MQTX_RET_DEAD;
	s->retention.due[MQTX_RET_SENT] = 12;
	s->retention.due[MQTX_RET_RELAYS] = 3;
	s->retention.overdue_ms = 600000;
	s->oldest_pending_ms = -1;
	s->relayed_minute = 2;
	s->relayed_hour = 40;
	s->blocked_keys = s->blocked_rows = 0;
	s->dests = mqtx_xcalloc(1, sizeof(*s->dests));
	s->dests[0] = (struct mqtx_check_dest){mqtx_xstrdup("orders"), 0, 1, -1, 2, 40, -1, NULL};
	s->n_dests = 1;
	s->relays_known = true;
	s->relays = mqtx_xcalloc(2, sizeof(*s->relays));
	s->relays[0] = (struct mqtx_check_relay){mqtx_xstrdup("r1"),
						 mqtx_xstrdup("h1"),
						 mqtx_xstrdup("1.0"),
						 NULL,
						 10,
						 1000,
						 60000,
						 40,
						 0,
						 false,
						 MQTX_RELAY_LIVE,
						 NULL,
						 -1};
	s->relays[1] = (struct mqtx_check_relay){mqtx_xstrdup("r2"),
						 mqtx_xstrdup("h2"),
						 mqtx_xstrdup("1.0"),
						 mqtx_xstrdup("gone"),
						 11,
						 600000,
						 900000,
						 5,
						 1,
						 false,
						 MQTX_RELAY_LIVE,
						 NULL,
						 -1};
	s->n_relays = 2;
	s->last_relay_seen_ms = 1000;
	s->has_sent_at = true;
	s->oldest_awaiting_ms = -1;
	s->dead = mqtx_xcalloc(1, sizeof(*s->dead));
	s->dead[0] = (struct mqtx_check_row){9,
					     mqtx_xstrdup("k9"),
					     mqtx_xstrdup("orders"),
					     NULL,
					     mqtx_xstrdup("boom"),
					     10,
					     3600000,
					     0};
	s->n_dead = 1;
	s->relays_table = mqtx_xstrdup("\"public\".mqtx_relays");
	s->completions_table = mqtx_xstrdup("\"public\".mqtx_completions");
	rep->in_doubt_known = true;
	mqtx_check_judge(rep);
}

static const char expected_text[] =
	"CRITICAL - outbox public.ob\"x: 1 dead row(s), more than check.max_dead (0): the relay gave up on them; the newest "
	"is row 9 to 'orders': boom (and 1 more problem)\n"
	"\n"
	"database app, checked 2026-01-02T03:04:05Z in 12ms\n"
	"\n"
	"status                 rows\n"
	"pending                   0\n"
	"sent                  ~1500\n"
	"dead                      1\n"
	"prepared                  0\n"
	"rolled_back               0\n"
	"(~ approximately: estimated from table statistics, or more rows than check.scan_limit)\n"
	"relayed: 2 in the last minute, 40 in the last hour\n"
	"\n"
	"table: 1.5 MiB (table, indexes and TOAST), oldest row written 2h0m ago\n"
	"retention: 7d0h; the next pass deletes 12 sent, 0 rolled_back, 3 relays, 0 completions; the oldest has been "
	"due for 10m0s\n"
	"\n"
	"destination                      pending    oldest    dead  last min last hour\n"
	"orders                                 0         -       1         2        40\n"
	"\n"
	"relay                                    state           seen    relayed   failed\n"
	"r1                                       live        1.0s ago         40        0\n"
	"r2                                       stale      10m0s ago          5        1\n"
	"\n"
	"problems\n"
	"CRITICAL dead_rows: 1 dead row(s), more than check.max_dead (0): the relay gave up on them; the newest is row 9 "
	"to 'orders': boom\n"
	"         row 9 to 'orders', 10 attempt(s), written 1h0m ago: boom\n"
	"         -> mqtx check --explain 9\n"
	"WARNING  stale_relays: 1 relay(s) silent for longer than 2m0s (check.relay_stale) without stopping cleanly; e.g. "
	"'r2' (host h2, pid 11) last seen 10m0s ago\n"
	"         relay r2 (pid 11) last seen 10m0s ago\n"
	"         -> look at the relay process on h2; if it is gone for good: DELETE FROM \"public\".mqtx_relays WHERE "
	"relay_id = 'r2'\n";

TEST(render_check_text)
{
	struct mqtx_check_report rep;
	report(&rep);
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_check(&r, MQTX_CHECK_FMT_TEXT, &rep);
	CHECK_STR(r.b.data, expected_text);
	mqtx_render_free(&r);

	/* colours: the level, bold titles, reset after each */
	mqtx_render_init_file(&r, NULL, true);
	mqtx_render_check_text(&r, &rep);
	CHECK(starts_with(r.b.data, "\033[1;31mCRITICAL\033[0m - outbox"));
	CHECK_CONTAINS(r.b.data, "\n\033[1mstatus                 rows\033[0m\n");
	CHECK_CONTAINS(r.b.data, "\033[33mstale    \033[0m");
	mqtx_render_free(&r);
	mqtx_check_report_free(&rep);
}

static const struct mqtx_json *path(const struct mqtx_json *v, const char *a, const char *b)
{
	v = mqtx_json_get(v, a);
	return b != NULL ? mqtx_json_get(v, b) : v;
}

TEST(render_check_json)
{
	struct mqtx_check_report rep;
	report(&rep);
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_check_json(&r, &rep);
	CHECK(r.b.len > 0 && r.b.data[r.b.len - 1] == '\n');
	CHECK(starts_with(r.b.data,
			  "{\"version\":1,\"status\":\"critical\",\"exit_code\":2,\"outbox\":\"public.ob\\\"x\","));
	struct mqtx_err err;
	mqtx_err_clear(&err);
	struct mqtx_json *v = mqtx_json_parse(r.b.data, r.b.len, &err);
	CHECK(v != NULL);
	if (v != NULL) {
		const struct mqtx_json *x = path(v, "thresholds", "warn_age_seconds");
		CHECK(x != NULL && x->type == MQTX_JSON_NUMBER);
		if (x != NULL)
			CHECK_STR(x->str, "300.000");
		x = path(v, "thresholds", "queue_max_depth");
		CHECK(x != NULL && x->type == MQTX_JSON_NULL); /* 0: off */
		x = path(v, "counts", "sent");
		CHECK(x != NULL && mqtx_json_get(x, "approximate")->boolean);
		x = path(v, "total", "approximate");
		CHECK(x != NULL && x->type == MQTX_JSON_BOOL && x->boolean);
		x = path(v, "relays", "stale");
		CHECK(x != NULL && x->number == 1);
		x = mqtx_json_get(v, "broker");
		CHECK(x != NULL && x->type == MQTX_JSON_NULL); /* --broker not asked */
		x = mqtx_json_get(v, "table_bytes");
		CHECK(x != NULL && x->type == MQTX_JSON_NUMBER && x->number == 1572864);
		x = mqtx_json_get(v, "partitions");
		CHECK(x != NULL && x->type == MQTX_JSON_NULL); /* not partitioned */
		x = mqtx_json_get(v, "oldest_row_age_seconds");
		CHECK(x != NULL && x->type == MQTX_JSON_NUMBER && x->number == 7200);
		x = path(v, "thresholds", "max_table_size_bytes");
		CHECK(x != NULL && x->type == MQTX_JSON_NUMBER && x->number == 1073741824);
		x = path(v, "thresholds", "retention_lag_seconds");
		CHECK(x != NULL && x->type == MQTX_JSON_NUMBER && x->number == 3600);
		const struct mqtx_json *ret = mqtx_json_get(v, "retention");
		CHECK(ret != NULL && ret->type == MQTX_JSON_OBJECT);
		if (ret != NULL) {
			CHECK(mqtx_json_get(ret, "enabled")->boolean);
			CHECK(mqtx_json_get(ret, "retention_seconds")->number == 604800);
			CHECK(mqtx_json_get(ret, "dead_retention_seconds")->type == MQTX_JSON_NULL);
			x = path(ret, "due", "sent");
			CHECK(x != NULL && mqtx_json_get(x, "rows")->number == 12 &&
			      !mqtx_json_get(x, "approximate")->boolean);
			x = path(ret, "due", "relays");
			CHECK(x != NULL && mqtx_json_get(x, "rows")->number == 3);
			x = path(ret, "due", "dead");
			CHECK(x != NULL && x->type == MQTX_JSON_NULL); /* not pruned */
			x = mqtx_json_get(ret, "overdue_seconds");
			CHECK(x != NULL && x->type == MQTX_JSON_NUMBER);
			if (x != NULL)
				CHECK_STR(x->str, "600.000");
			CHECK(mqtx_json_get(ret, "note")->type == MQTX_JSON_NULL);
			CHECK(mqtx_json_get(ret, "error")->type == MQTX_JSON_NULL);
		}
		x = mqtx_json_get(v, "problems");
		CHECK(x != NULL && x->type == MQTX_JSON_ARRAY && x->count == 2);
		if (x != NULL && x->count == 2) {
			CHECK_STR(mqtx_json_get(x->items[0], "check")->str, "dead_rows");
			CHECK_STR(mqtx_json_get(x->items[0], "severity")->str, "critical");
			const struct mqtx_json *rows = mqtx_json_get(x->items[0], "rows");
			CHECK(rows != NULL && rows->count == 1);
			if (rows != NULL && rows->count == 1) {
				CHECK(mqtx_json_get(rows->items[0], "ordering_key")->type == MQTX_JSON_NULL);
				CHECK_STR(mqtx_json_get(rows->items[0], "retry_in_seconds")->str, "0.000");
			}
			CHECK(mqtx_json_get(x->items[0], "destination") == NULL); /* only for destination_missing */
			CHECK(mqtx_json_get(x->items[1], "relays")->count == 1);
		}
		mqtx_json_free(v);
	}
	mqtx_render_free(&r);
	mqtx_check_report_free(&rep);
}

TEST(render_check_prometheus)
{
	struct mqtx_check_report rep;
	report(&rep);
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_check_prometheus(&r, &rep);
	const char *o = r.b.data;
	CHECK(starts_with(o, "# HELP mqtx_check_status Result of mqtx check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n"
			     "# TYPE mqtx_check_status gauge\n"
			     "mqtx_check_status{outbox=\"public.ob\\\"x\"} 2\n"));
	CHECK_CONTAINS(o, "mqtx_check_problems{outbox=\"public.ob\\\"x\",severity=\"critical\"} 1\n");
	CHECK_CONTAINS(o, "mqtx_check_problems{outbox=\"public.ob\\\"x\",severity=\"warning\"} 1\n");
	CHECK_CONTAINS(o, "mqtx_check_duration_seconds{outbox=\"public.ob\\\"x\"} 0.012\n");
	CHECK_CONTAINS(o, "mqtx_outbox_rows{outbox=\"public.ob\\\"x\",status=\"sent\"} 1500\n");
	CHECK_CONTAINS(o, "mqtx_outbox_rows_approximate{outbox=\"public.ob\\\"x\",status=\"sent\"} 1\n");
	CHECK_CONTAINS(o, "mqtx_outbox_oldest_pending_age_seconds{outbox=\"public.ob\\\"x\"} 0.000\n");
	CHECK_CONTAINS(o, "mqtx_destination_dead_rows{outbox=\"public.ob\\\"x\",destination=\"orders\"} 1\n");
	CHECK_CONTAINS(o, "mqtx_relays{outbox=\"public.ob\\\"x\",state=\"stale\"} 1\n");
	CHECK_CONTAINS(o, "mqtx_relays{outbox=\"public.ob\\\"x\",state=\"replaced\"} 0\n");
	CHECK_CONTAINS(o,
		       "# TYPE mqtx_outbox_table_bytes gauge\nmqtx_outbox_table_bytes{outbox=\"public.ob\\\"x\"} 1572864\n");
	CHECK_CONTAINS(o, "mqtx_outbox_oldest_row_age_seconds{outbox=\"public.ob\\\"x\"} 7200.000\n");
	CHECK_CONTAINS(o, "mqtx_retention_enabled{outbox=\"public.ob\\\"x\"} 1\n");
	CHECK_CONTAINS(o, "# TYPE mqtx_retention_due_rows gauge\n"
			  "mqtx_retention_due_rows{outbox=\"public.ob\\\"x\",kind=\"sent\"} 12\n"
			  "mqtx_retention_due_rows{outbox=\"public.ob\\\"x\",kind=\"rolled_back\"} 0\n"
			  "mqtx_retention_due_rows{outbox=\"public.ob\\\"x\",kind=\"relays\"} 3\n"
			  "mqtx_retention_due_rows{outbox=\"public.ob\\\"x\",kind=\"completions\"} 0\n");
	CHECK_CONTAINS(o, "mqtx_retention_overdue_seconds{outbox=\"public.ob\\\"x\"} 600.000\n");
	CHECK(strstr(o, "kind=\"dead\"") == NULL);           /* not pruned */
	CHECK(strstr(o, "mqtx_outbox_partitions") == NULL);  /* not partitioned */
	CHECK(strstr(o, "mqtx_destination_exists") == NULL); /* the broker was not asked */
	CHECK(strstr(o, "mqtx_queue_") == NULL);
	/* every line is a comment or "name{labels} value" */
	for (const char *line = o; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		CHECK(nl != NULL);
		if (nl == NULL)
			break;
		if (line[0] != '#')
			CHECK(memchr(line, '{', (size_t)(nl - line)) != NULL &&
			      memchr(line, ' ', (size_t)(nl - line)) != NULL);
		line = nl + 1;
	}
	mqtx_render_free(&r);
	mqtx_check_report_free(&rep);
}

/* The retention line in its other states, the same facts in every format. */
TEST(render_check_storage_and_retention)
{
	struct mqtx_check_report rep;
	report(&rep);
	/* OK: the table's size on the Nagios line; a partitioned outbox; retention off */
	mqtx_check_rows_free(rep.db.dead, rep.db.n_dead);
	rep.db.dead = NULL;
	rep.db.n_dead = 0;
	for (size_t i = 0; i < rep.n_problems; i++) {
		free(rep.problems[i].message);
		free(rep.problems[i].action);
		mqtx_check_rows_free(rep.problems[i].rows, rep.problems[i].n_rows);
		for (size_t k = 0; k < rep.problems[i].n_relays; k++)
			mqtx_check_relay_free(&rep.problems[i].relays[k]);
		free(rep.problems[i].relays);
	}
	free(rep.problems);
	rep.problems = NULL;
	rep.n_problems = 0;
	rep.level = MQTX_CHECK_OK;
	rep.db.status[MQTX_ST_DEAD].n = 0;
	rep.db.relays[1].state = MQTX_RELAY_STOPPED;
	rep.db.partitions = 4;
	rep.thresholds.retention_ms = 0;
	for (int k = 0; k < MQTX_RET__COUNT; k++) {
		rep.db.retention.pruned[k] = false;
		rep.db.retention.due[k] = 0;
	}
	rep.db.retention.overdue_ms = -1;
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_check_text(&r, &rep);
	CHECK(starts_with(r.b.data,
			  "OK - outbox public.ob\"x: 0 pending, 0 dead, 40 relayed in the last hour, 1 relay live, "
			  "table 1.5 MiB\n"));
	CHECK_CONTAINS(r.b.data, "\ntable: 1.5 MiB (table, indexes and TOAST, 4 partitions), oldest row written 2h0m "
				 "ago\nretention off: nothing is deleted\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_prometheus(&r, &rep);
	CHECK_CONTAINS(r.b.data, "mqtx_outbox_partitions{outbox=\"public.ob\\\"x\"} 4\n");
	CHECK_CONTAINS(r.b.data, "mqtx_retention_enabled{outbox=\"public.ob\\\"x\"} 0\n");
	CHECK(strstr(r.b.data, "mqtx_retention_due_rows") == NULL); /* nothing is pruned */
	CHECK_CONTAINS(r.b.data, "mqtx_retention_overdue_seconds{outbox=\"public.ob\\\"x\"} 0.000\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_json(&r, &rep);
	CHECK_CONTAINS(r.b.data, "\"table_bytes\":1572864,\"partitions\":4,\"oldest_row_age_seconds\":7200.000,");
	CHECK_CONTAINS(r.b.data,
		       "\"retention\":{\"enabled\":false,\"retention_seconds\":null,\"dead_retention_seconds\":"
		       "null,\"due\":{\"sent\":null,\"rolled_back\":null,\"dead\":null,\"relays\":null,\"completions\":"
		       "null},\"overdue_seconds\":null,\"note\":null,\"error\":null}");
	mqtx_render_free(&r);

	/* only dead rows go; a count past check.scan_limit; a note */
	rep.thresholds.dead_retention_ms = 2 * 86400000LL;
	rep.db.retention.pruned[MQTX_RET_DEAD] = true;
	rep.db.retention.due[MQTX_RET_DEAD] = 100000;
	rep.db.retention.capped[MQTX_RET_DEAD] = true;
	rep.db.retention.overdue_ms = 90000;
	rep.db.retention.note = mqtx_xstrdup("the outbox has no sent_at column");
	mqtx_render_init_buf(&r);
	mqtx_render_check_text(&r, &rep);
	CHECK_CONTAINS(r.b.data,
		       "\nretention off: nothing is deleted but dead rows (outbox.dead_retention: 2d0h); the next "
		       "pass deletes at least 100000 dead; the oldest has been due for 1m30s\n"
		       "retention: the outbox has no sent_at column\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_json(&r, &rep);
	CHECK_CONTAINS(r.b.data, "\"dead\":{\"rows\":100000,\"approximate\":true}");
	CHECK_CONTAINS(r.b.data, "\"note\":\"the outbox has no sent_at column\"");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_prometheus(&r, &rep);
	CHECK_CONTAINS(r.b.data, "mqtx_retention_due_rows{outbox=\"public.ob\\\"x\",kind=\"dead\"} 100000\n");
	CHECK_CONTAINS(r.b.data, "mqtx_retention_overdue_seconds{outbox=\"public.ob\\\"x\"} 90.000\n");
	mqtx_render_free(&r);

	/* the preview failed: unknown everywhere, no stale numbers */
	rep.thresholds.retention_ms = 86400000;
	rep.db.retention.known = false;
	rep.db.retention.error = mqtx_xstrdup("timeout");
	mqtx_render_init_buf(&r);
	mqtx_render_check_text(&r, &rep);
	CHECK_CONTAINS(r.b.data, "\nretention: 1d0h; what it deletes next is unknown (see problems)\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_json(&r, &rep);
	CHECK_CONTAINS(r.b.data, "\"due\":null,\"overdue_seconds\":null,");
	CHECK_CONTAINS(r.b.data, "\"error\":\"timeout\"}");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_prometheus(&r, &rep);
	CHECK(strstr(r.b.data, "mqtx_retention_due_rows") == NULL);
	CHECK(strstr(r.b.data, "mqtx_retention_overdue_seconds") == NULL);
	CHECK_CONTAINS(r.b.data, "mqtx_retention_enabled{outbox=\"public.ob\\\"x\"} 1\n");
	mqtx_render_free(&r);
	mqtx_check_report_free(&rep);
}

TEST(render_check_unknown)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_check_unknown(&r, MQTX_CHECK_FMT_JSON, NULL, "no \"db\"");
	CHECK_STR(r.b.data,
		  "{\"version\":1,\"status\":\"unknown\",\"exit_code\":3,\"outbox\":null,\"error\":\"no \\\"db\\\"\"}\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_unknown(&r, MQTX_CHECK_FMT_PROMETHEUS, "a.b", "x");
	CHECK_STR(r.b.data, "# HELP mqtx_check_status Result of mqtx check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n"
			    "# TYPE mqtx_check_status gauge\nmqtx_check_status{outbox=\"a.b\"} 3\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_unknown(&r, MQTX_CHECK_FMT_TEXT, "a.b", "cannot connect");
	CHECK_STR(r.b.data, "UNKNOWN - cannot connect\n");
	mqtx_render_free(&r);
}

TEST(render_explain)
{
	struct mqtx_explain ex;
	memset(&ex, 0, sizeof(ex));
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_explain_text(&r, &ex, "nope");
	CHECK_STR(r.b.data, "UNKNOWN - no outbox row and no in-doubt txpub item with id or key 'nope'\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_explain_json(&r, &ex, "nope");
	CHECK_STR(r.b.data,
		  "{\"version\":1,\"query\":\"nope\",\"found\":false,\"severity\":\"unknown\",\"exit_code\":3}\n");
	mqtx_render_free(&r);

	ex.found = ex.in_outbox = true;
	ex.id = 5;
	ex.key = mqtx_xstrdup("k5");
	ex.status = mqtx_xstrdup("dead");
	ex.destination = mqtx_xstrdup("");
	ex.attempts = 10;
	ex.age_ms = -1;
	ex.retry_in_ms = MQTX_CHECK_PARKED;
	ex.level = MQTX_CHECK_CRITICAL;
	ex.verdict = mqtx_xstrdup("dead: gave up");
	ex.story = mqtx_xcalloc(1, sizeof(char *));
	ex.story[0] = mqtx_xstrdup("last error: boom");
	ex.n_story = 1;
	mqtx_render_init_buf(&r);
	mqtx_render_explain_text(&r, &ex, "5");
	CHECK(starts_with(r.b.data, "CRITICAL - row 5: dead: gave up\n\nid               5\nkey              k5\n"));
	CHECK_CONTAINS(r.b.data, "\ndestination      (default exchange)\n");
	CHECK_CONTAINS(r.b.data, "\ncreated          -\n");
	CHECK_CONTAINS(r.b.data, "\nwhy\n  - last error: boom\n");
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_explain_json(&r, &ex, "5");
	CHECK_CONTAINS(r.b.data, "\"retry_in_seconds\":null,\"blocked_by\":null,");
	CHECK_CONTAINS(r.b.data, "\"story\":[\"last error: boom\"],\"actions\":[],\"tail\":null}\n");
	mqtx_render_free(&r);
	mqtx_explain_free(&ex);
}

/* Tail mode: the tail section in text, JSON and Prometheus. */
TEST(render_check_tail)
{
	struct mqtx_check_report rep;
	report(&rep);
	struct mqtx_check_tail *t = &rep.db.tail;
	t->on = true;
	t->buckets = 4;
	t->owned_buckets = 2;
	t->unrelayed = 3;
	t->oldest_unrelayed_ms = 60000;
	t->oldest_unrelayed_id = 7;
	t->parked[MQTX_PARKED_RETRY] = 1;
	t->parked[MQTX_PARKED_DEAD] = 1;
	t->groups = mqtx_xcalloc(2, sizeof(*t->groups));
	t->groups[0] = (struct mqtx_check_tail_group){mqtx_xstrdup("0-1"),        2,    0,
						      mqtx_xstrdup("10:12:10"),   NULL, -1,
						      mqtx_xstrdup("relay-a"),    2000, 555,
						      mqtx_xstrdup("mqtx relay"), 0,    -1};
	t->groups[1] = (struct mqtx_check_tail_group){mqtx_xstrdup("2-3"),
						      2,
						      2,
						      NULL,
						      NULL,
						      -1,
						      NULL,
						      9000,
						      -1,
						      NULL,
						      3,
						      60000};
	t->n_groups = 2;
	t->xacts = mqtx_xcalloc(1, sizeof(*t->xacts));
	t->xacts[0] = (struct mqtx_check_xact){true, -1,  mqtx_xstrdup("g-1"), mqtx_xstrdup("777"), NULL, NULL, 120000,
					       true, true};
	t->n_xacts = 1;
	t->n_xacts_total = 1;
	rep.db.relayed_minute = rep.db.relayed_hour = -1;
	rep.db.relays[0].tail_buckets = mqtx_xstrdup("0-1");
	rep.db.relays[0].tail_lag_ms = 0;

	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_check_text(&r, &rep);
	CHECK_CONTAINS(r.b.data,
		       "\ntail mode: 4 buckets (2 held by a relay now), 3 unrelayed row(s) (oldest 1m0s, row 7); "
		       "parked: 1 retry, 0 blocked, 1 dead; 0 blocked key(s)\n");
	CHECK_CONTAINS(r.b.data,
		       "\n0-1              relay-a                  pid 555                      2.0s          0         0\n");
	CHECK_CONTAINS(r.b.data,
		       "\n2-3              -                        none                        never          3      1m0s\n");
	CHECK_CONTAINS(r.b.data,
		       "\n  prepared transaction 'g-1' (xid 777), prepared 2m0s ago, wrote to the outbox, seen "
		       "running by a relay\n");
	CHECK(strstr(r.b.data, "relayed: ") == NULL);
	mqtx_render_free(&r);

	mqtx_render_init_buf(&r);
	mqtx_render_check_json(&r, &rep);
	CHECK_CONTAINS(r.b.data,
		       "\"tail\":{\"buckets\":4,\"owned_buckets\":2,\"unrelayed\":{\"rows\":3,\"approximate\":false},"
		       "\"oldest_unrelayed_age_seconds\":60.000,\"oldest_unrelayed_id\":7,"
		       "\"parked\":{\"retry\":1,\"blocked\":0,\"dead\":1},\"blocked_keys\":0,");
	CHECK_CONTAINS(r.b.data,
		       "{\"buckets\":\"0-1\",\"bucket_count\":2,\"prev_snapshot\":\"10:12:10\",\"cur_snapshot\":null,"
		       "\"position_id\":null,\"relay_id\":\"relay-a\",\"checkpoint_age_seconds\":2.000,\"owner_pid\":555,"
		       "\"owner_application_name\":\"mqtx relay\",\"unrelayed\":0,\"oldest_unrelayed_age_seconds\":null,"
		       "\"checkpoint_lag_seconds\":0.000}");
	CHECK_CONTAINS(r.b.data, "\"transactions\":[{\"prepared\":true,\"pid\":null,\"gid\":\"g-1\",\"xid\":\"777\","
				 "\"application_name\":null,\"state\":null,\"age_seconds\":120.000,"
				 "\"in_checkpoint_snapshot\":true,\"wrote_outbox\":true}],\"transactions_total\":1,"
				 "\"old_transaction_age_seconds\":120.000}");
	CHECK_CONTAINS(r.b.data, "\"relayed_last_minute\":null,\"relayed_last_hour\":null,");
	CHECK_CONTAINS(r.b.data, "\"last_error\":null,\"tail_buckets\":\"0-1\",\"tail_checkpoint_lag_seconds\":0.000}");
	CHECK_CONTAINS(r.b.data, "\"last_error\":\"gone\",\"tail_buckets\":null,\"tail_checkpoint_lag_seconds\":null}");
	mqtx_render_free(&r);

	mqtx_render_init_buf(&r);
	mqtx_render_check_prometheus(&r, &rep);
	CHECK_CONTAINS(r.b.data, "\nmqtx_tail_unrelayed_rows{outbox=\"public.ob\\\"x\"} 3\n");
	CHECK_CONTAINS(r.b.data,
		       "\nmqtx_tail_checkpoint_lag_seconds{outbox=\"public.ob\\\"x\",buckets=\"2-3\"} 60.000\n");
	CHECK_CONTAINS(r.b.data,
		       "\nmqtx_tail_checkpoint_lag_seconds{outbox=\"public.ob\\\"x\",buckets=\"0-1\"} 0.000\n");
	CHECK_CONTAINS(r.b.data, "\nmqtx_tail_parked_rows{outbox=\"public.ob\\\"x\",state=\"dead\"} 1\n");
	CHECK_CONTAINS(r.b.data, "\nmqtx_tail_old_transaction_age_seconds{outbox=\"public.ob\\\"x\"} 120.000\n");
	CHECK_CONTAINS(r.b.data, "\nmqtx_tail_buckets_owned{outbox=\"public.ob\\\"x\"} 2\n");
	CHECK(strstr(r.b.data, "mqtx_outbox_relayed_last_hour") == NULL);
	mqtx_render_free(&r);

	/* status mode: none of it */
	t->on = false;
	mqtx_render_init_buf(&r);
	mqtx_render_check_prometheus(&r, &rep);
	CHECK(strstr(r.b.data, "mqtx_tail_") == NULL);
	mqtx_render_free(&r);
	mqtx_render_init_buf(&r);
	mqtx_render_check_json(&r, &rep);
	CHECK_CONTAINS(r.b.data, "\"tail\":null,");
	mqtx_render_free(&r);
	mqtx_check_report_free(&rep);
}
