/* lib/render/audit: text, JSON and CSV of a synthetic dedupe-audit report.
 * The expected texts are what cmd/dedupe-audit.c printed before its
 * output moved to lib/render (compared byte for byte then). */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/json.h"
#include "base/util.h"
#include "render/audit.h"
#include "unit.h"

/* 2024-05-01T12:00:00Z */
#define T0 1714564800000000LL

/* Everything a report can hold: a duplicate (with more copies than
 * places shown), a loss, a stranger, an unkeyed delivery, a reordering, a
 * gap, and a consumer table without a unique key; over both tolerances. */
struct fixture {
	struct mqtx_audit_report rep;
	char *dests[2];
	struct mqtx_audit_where dw[2];
	struct mqtx_audit_dup dups[2];
	struct mqtx_audit_row missing[1], strangers[2], order[1], gaps[1];
};

static void fixture(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	struct mqtx_audit_report *r = &f->rep;
	snprintf(r->source, sizeof(r->source), "kafka://h:9092/orders");
	r->kind = "kafka";
	r->position = "offset";
	snprintf(r->detail, sizeof(r->detail), "topic orders, 2 partitions: 0[0,4) 1[0,3)");
	r->deliveries = 7;
	r->distinct_keys = 5;
	r->unkeyed = 1;
	r->has_since = true;
	r->since_us = T0;
	r->until_us = T0 + 3600000000LL;
	f->dests[0] = "orders";
	f->dests[1] = "in,\"voices\"";
	r->destinations = f->dests;
	r->n_destinations = 2;
	r->losses_checked = true;
	r->sent_at_known = true;
	r->outbox_sent = 6;
	r->dup_keys = 2;
	r->dup_extra = 3;
	r->dup_explained_keys = 1;
	r->dup_unexplained_keys = 1;
	r->dup_unexplained_extra = 2;
	r->missing = 1;
	r->stranger_keys = 2;
	r->stranger_deliveries = 2;
	r->delivered_unsent = 1;
	r->order_checked = true;
	r->order_keys = 2;
	r->out_of_order = 1;
	r->out_of_order_keys = 1;
	r->gaps = 1;
	r->gap_keys = 1;

	f->dw[0] = (struct mqtx_audit_where){0, 3, T0 + 1000000, 0};
	f->dw[1] = (struct mqtx_audit_where){1, 2, MQTX_AUDIT_NO_TS, 1};
	f->dups[0] = (struct mqtx_audit_dup){"p-2", 2, 3, 1, false, f->dw, 2};
	f->dups[1] = (struct mqtx_audit_dup){"p-1", 1, 2, 2, true, f->dw, 1};
	r->dups = f->dups;
	r->n_dups = 2;
	f->missing[0] = (struct mqtx_audit_row){.key = "p-4",
						.outbox_id = 4,
						.ordering_key = "acct,0",
						.status = "sent",
						.sent_at_us = T0 + 60000000};
	r->missing_rows = (struct mqtx_audit_list){f->missing, 1};
	f->strangers[0] = (struct mqtx_audit_row){.key = "not-ours", .count = 1, .where = {1, 0, MQTX_AUDIT_NO_TS, 0}};
	f->strangers[1] = (struct mqtx_audit_row){.key = NULL, .count = 1, .where = {-1, -1, T0, 2}};
	r->strangers = (struct mqtx_audit_list){f->strangers, 2};
	f->order[0] = (struct mqtx_audit_row){.key = "p-3",
					      .outbox_id = 3,
					      .ordering_key = "acct-1",
					      .after_id = 5,
					      .where = {0, 1, MQTX_AUDIT_NO_TS, 0}};
	r->order_rows = (struct mqtx_audit_list){f->order, 1};
	f->gaps[0] = (struct mqtx_audit_row){.key = "p-4",
					     .outbox_id = 4,
					     .ordering_key = "acct,0",
					     .status = "sent",
					     .sent_at_us = MQTX_AUDIT_NO_TS,
					     .after_id = 2,
					     .before_id = 6};
	r->gap_rows = (struct mqtx_audit_list){f->gaps, 1};
	r->has_table = true;
	snprintf(r->table, sizeof(r->table), "\"public\".\"inbox\"");
	snprintf(r->key_column, sizeof(r->key_column), "msg_key");
	r->max_duplicates = 0;
	r->max_missing = 0;
	r->duplicates_over = true;
	r->missing_over = true;
	r->status = MQTX_AUDIT_BOTH;
	r->elapsed_ms = 1234;
	r->read_ms = 1000;
}

static char *render(enum mqtx_audit_format format, const struct mqtx_audit_report *rep)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_audit(&r, format, rep);
	mqtx_render_finish(&r);
	return mqtx_buf_detach(&r.b);
}

TEST(render_audit_text)
{
	struct fixture f;
	fixture(&f);
	char *out = render(MQTX_AUDIT_FMT_TEXT, &f.rep);
	CHECK_STR(out,
		  "dedupe-audit of kafka://h:9092/orders\n"
		  "  read            7 deliveries (topic orders, 2 partitions: 0[0,4) 1[0,3)) in 1.0s\n"
		  "  window          rows sent from 2024-05-01T12:00:00.000Z to 2024-05-01T13:00:00.000Z\n"
		  "  destinations    orders, in,\"voices\"\n"
		  "  outbox sent     6\n"
		  "  distinct keys   5\n"
		  "  duplicates      2 keys, 3 extra copies: 1 not explained by redelivery, 1 explained\n"
		  "  missing         1\n"
		  "  strangers       2 keys, 2 deliveries (some without an idempotency key)\n"
		  "  out of order    1 delivery in 1 of 2 ordering keys\n"
		  "  gaps            1 in 1 ordering key\n"
		  "  unmarked        1 delivered row is not marked sent in the outbox (yet)\n"
		  "  consumer table  \"public\".\"inbox\": NO unique constraint or index on the key column: duplicates are not prevented\n"
		  "  result          FAIL: 1 duplicated key > --max-duplicates 0; 1 missing > --max-missing 0 (exit 9)\n"
		  "\nduplicates (unexplained first):\n"
		  "  p-2  id 2  3 copies: partition 0 offset 3 at 2024-05-01T12:00:01.000Z; partition 1 offset 2 (redelivery 1); ...\n"
		  "  p-1  id 1  2 copies (explained by redelivery): partition 0 offset 3 at 2024-05-01T12:00:01.000Z; ...\n"
		  "\nmissing:\n"
		  "  p-4  id 4  ordering key acct,0  sent 2024-05-01T12:01:00.000Z\n"
		  "\nstrangers (keys the outbox does not know):\n"
		  "  not-ours  1 delivery, first at partition 1 offset 0\n"
		  "  (no idempotency key)  1 delivery, first at 2024-05-01T12:00:00.000Z (redelivery 2)\n"
		  "\nout of order (came after a later row of its ordering key):\n"
		  "  p-3  id 3  ordering key acct-1  after id 5, at partition 0 offset 1\n"
		  "\ngaps (not seen, between delivered rows of its ordering key):\n"
		  "  p-4  id 4  ordering key acct,0  sent, between delivered ids 2 and 6\n");
	free(out);
}

TEST(render_audit_verdict)
{
	struct fixture f;
	fixture(&f);
	struct mqtx_audit_report *r = &f.rep;
	struct mqtx_buf b = MQTX_BUF_INIT;
	r->duplicates_over = r->missing_over = false;
	r->status = MQTX_AUDIT_OK;
	mqtx_render_audit_verdict(&b, r);
	CHECK_STR(b.data, "OK: within --max-duplicates and --max-missing (exit 0)");
	mqtx_buf_reset(&b);
	r->dup_unexplained_keys = 4;
	r->max_duplicates = 3;
	r->duplicates_over = true;
	r->status = MQTX_AUDIT_DUPLICATES;
	mqtx_render_audit_verdict(&b, r);
	CHECK_STR(b.data, "FAIL: 4 duplicated keys > --max-duplicates 3 (exit 1)");
	mqtx_buf_reset(&b);
	r->duplicates_over = false;
	r->missing_over = true;
	r->missing = 2;
	r->max_missing = 1;
	r->status = MQTX_AUDIT_MISSING;
	mqtx_render_audit_verdict(&b, r);
	CHECK_STR(b.data, "FAIL: 2 missing > --max-missing 1 (exit 8)");
	mqtx_buf_free(&b);
}

/* No destination known, no sent_at column, unordered source, stopped early. */
TEST(render_audit_text_not_checked)
{
	struct fixture f;
	fixture(&f);
	struct mqtx_audit_report *r = &f.rep;
	r->stopped = true;
	r->has_since = false;
	r->sent_at_known = false;
	r->losses_checked = false;
	r->n_destinations = 0;
	r->order_checked = false;
	r->has_table = false;
	r->delivered_unsent = 0;
	r->n_dups = 0;
	r->missing_rows.n = r->strangers.n = r->order_rows.n = r->gap_rows.n = 0;
	r->missing_over = false;
	r->status = MQTX_AUDIT_DUPLICATES;
	char *out = render(MQTX_AUDIT_FMT_TEXT, r);
	CHECK_STR(out, "dedupe-audit of kafka://h:9092/orders\n"
		       "  read            7 deliveries (topic orders, 2 partitions: 0[0,4) 1[0,3)) in 1.0s\n"
		       "  stopped         a signal ended reading early: losses and order cover only what was read\n"
		       "  window          every sent row (the outbox has no sent_at column)\n"
		       "  destinations    none known: losses and gaps not checked (give --destination)\n"
		       "  distinct keys   5\n"
		       "  duplicates      2 keys, 3 extra copies: 1 not explained by redelivery, 1 explained\n"
		       "  missing         not checked\n"
		       "  strangers       2 keys, 2 deliveries (some without an idempotency key)\n"
		       "  out of order    not checked (the source has no order)\n"
		       "  result          FAIL: 1 duplicated key > --max-duplicates 0 (exit 1)\n");
	free(out);
}

TEST(render_audit_json)
{
	struct fixture f;
	fixture(&f);
	char *out = render(MQTX_AUDIT_FMT_JSON, &f.rep);
	CHECK_STR(out,
		  "{\"source\":\"kafka://h:9092/orders\",\"kind\":\"kafka\",\"read\":\"topic orders, 2 partitions: 0[0,4) 1[0,3)\","
		  "\"stopped\":false,\"deliveries\":7,\"distinct_keys\":5,"
		  "\"window\":{\"since\":\"2024-05-01T12:00:00.000Z\",\"until\":\"2024-05-01T13:00:00.000Z\","
		  "\"destinations\":[\"orders\",\"in,\\\"voices\\\"\"],\"destinations_inferred\":false},\"outbox_sent\":6,"
		  "\"duplicates\":{\"keys\":2,\"extra_deliveries\":3,\"unexplained_keys\":1,\"unexplained_extra_deliveries\":2,"
		  "\"explained_keys\":1,\"details\":["
		  "{\"key\":\"p-2\",\"outbox_id\":2,\"count\":3,\"explained\":false,\"where\":["
		  "{\"partition\":0,\"offset\":3,\"ts\":\"2024-05-01T12:00:01.000Z\",\"redelivery_count\":0},"
		  "{\"partition\":1,\"offset\":2,\"ts\":null,\"redelivery_count\":1}]},"
		  "{\"key\":\"p-1\",\"outbox_id\":1,\"count\":2,\"explained\":true,\"where\":["
		  "{\"partition\":0,\"offset\":3,\"ts\":\"2024-05-01T12:00:01.000Z\",\"redelivery_count\":0}]}]},"
		  "\"missing\":{\"checked\":true,\"count\":1,\"details\":[{\"key\":\"p-4\",\"outbox_id\":4,\"ordering_key\":\"acct,0\","
		  "\"status\":\"sent\",\"sent_at\":\"2024-05-01T12:01:00.000Z\"}]},"
		  "\"strangers\":{\"keys\":2,\"deliveries\":2,\"unkeyed_deliveries\":1,\"details\":["
		  "{\"key\":\"not-ours\",\"deliveries\":1,\"first\":{\"partition\":1,\"offset\":0,\"ts\":null,\"redelivery_count\":0}},"
		  "{\"key\":null,\"deliveries\":1,\"first\":{\"offset\":null,\"ts\":\"2024-05-01T12:00:00.000Z\",\"redelivery_count\":2}}]},"
		  "\"order\":{\"checked\":true,\"ordering_keys\":2,\"out_of_order\":1,\"out_of_order_keys\":1,\"details\":["
		  "{\"key\":\"p-3\",\"outbox_id\":3,\"ordering_key\":\"acct-1\",\"after_id\":5,"
		  "\"at\":{\"partition\":0,\"offset\":1,\"ts\":null,\"redelivery_count\":0}}]},"
		  "\"gaps\":{\"count\":1,\"ordering_keys\":1,\"details\":[{\"key\":\"p-4\",\"outbox_id\":4,\"ordering_key\":\"acct,0\","
		  "\"status\":\"sent\",\"sent_at\":null,\"between\":[2,6]}]},"
		  "\"delivered_not_sent\":1,"
		  "\"consumer_table\":{\"table\":\"\\\"public\\\".\\\"inbox\\\"\",\"key_column\":\"msg_key\",\"unique\":false,\"unique_by\":null},"
		  "\"tolerance\":{\"max_duplicates\":0,\"max_missing\":0,\"duplicates_over\":true,\"missing_over\":true},"
		  "\"exit_status\":9,\"elapsed_ms\":1234}\n");
	/* and it parses back */
	struct mqtx_err err;
	struct mqtx_json *v = out != NULL ? mqtx_json_parse(out, strlen(out), &err) : NULL;
	CHECK(v != NULL);
	mqtx_json_free(v);
	free(out);
}

TEST(render_audit_csv)
{
	struct fixture f;
	fixture(&f);
	char *out = render(MQTX_AUDIT_FMT_CSV, &f.rep);
	CHECK_STR(out,
		  "finding,key,outbox_id,ordering_key,count,status,where\n"
		  "duplicate,p-2,2,,3,unexplained,partition 0 offset 3 at 2024-05-01T12:00:01.000Z; partition 1 offset 2 (redelivery 1)\n"
		  "duplicate,p-1,1,,2,explained,partition 0 offset 3 at 2024-05-01T12:00:01.000Z\n"
		  "missing,p-4,4,\"acct,0\",0,sent,\n"
		  "stranger,not-ours,,,1,,partition 1 offset 0\n"
		  "stranger,,,,1,,2024-05-01T12:00:00.000Z (redelivery 2)\n"
		  "out_of_order,p-3,3,acct-1,1,,after id 5 at partition 0 offset 1\n"
		  "gap,p-4,4,\"acct,0\",0,sent,between ids 2 and 6\n");
	free(out);
}
