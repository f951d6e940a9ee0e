/* Unit tests for the pure parts of redeliver: the --where parser, --id
 * lists and --rate. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>

#include "redeliver/redeliver.h"
#include "unit.h"

TEST(where_parses_conditions_joined_by_and)
{
	struct mqtx_where w = {0};
	struct mqtx_err e;
	CHECK(mqtx_where_parse(&w,
			       "status = 'sent' and attempts>=3 AND routing_key LIKE 'a.%' AND last_error IS NOT NULL",
			       &e) == 0);
	CHECK(w.n == 4);
	if (w.n == 4) {
		CHECK(w.conds[0].col == MQTX_COL_STATUS && w.conds[0].op == MQTX_OP_EQ);
		CHECK_STR(w.conds[0].value, "sent");
		CHECK(w.conds[1].col == MQTX_COL_ATTEMPTS && w.conds[1].op == MQTX_OP_GE);
		CHECK_STR(w.conds[1].value, "3");
		CHECK(w.conds[2].op == MQTX_OP_LIKE);
		CHECK_STR(w.conds[2].value, "a.%");
		CHECK(w.conds[3].op == MQTX_OP_NOT_NULL && w.conds[3].value == NULL);
	}
	/* a second text appends; quotes double inside quoted values */
	CHECK(mqtx_where_parse(&w, "ordering_key <> 'it''s; DROP TABLE x; --' AND ID < -5", &e) == 0);
	CHECK(w.n == 6);
	if (w.n == 6) {
		CHECK(w.conds[4].op == MQTX_OP_NE);
		CHECK_STR(w.conds[4].value, "it's; DROP TABLE x; --");
		CHECK(w.conds[5].col == MQTX_COL_ID && w.conds[5].op == MQTX_OP_LT);
		CHECK_STR(w.conds[5].value, "-5");
	}
	mqtx_where_free(&w);
	CHECK(w.n == 0 && w.conds == NULL);
}

TEST(where_rejects_everything_else)
{
	static const char *const bad[] = {
		"",
		"payload = 'x'",
		"headers IS NULL",
		"id = 1; DELETE FROM t",
		"id = 1 OR 1 = 1",
		"id = 1 --",
		"id = '1 OR 1=1'",
		"(id = 1)",
		"\"id\" = 1",
		"id == 1",
		"id = 1 AND",
		"status = 'open",
		"status = $$x$$",
		"status IN ('sent')",
		"attempts LIKE '1%'",
		"created_at LIKE 'x'",
		"id = 99999999999999999999",
		"status IS",
		"status IS NOT 'x'",
		"id=1 ANDstatus='sent'",
		"id = 1\x01",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mqtx_where w = {0};
		struct mqtx_err e = {0};
		int rc = mqtx_where_parse(&w, bad[i], &e);
		if (rc == 0)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(rc < 0);
		CHECK(w.n == 0); /* all or nothing */
		CHECK(e.kind == MQTX_E_USAGE);
		CHECK_CONTAINS(e.msg, "--where: ");
		mqtx_where_free(&w);
	}
	struct mqtx_where w = {0};
	struct mqtx_err e;
	CHECK(mqtx_where_parse(&w, "payload = 'x'", &e) < 0);
	CHECK_CONTAINS(e.msg, "column 'payload' at offset 0 cannot be used (allowed: id, ");
	CHECK(mqtx_where_parse(&w, "id = 1 OR 1 = 1", &e) < 0);
	CHECK_CONTAINS(e.msg, "expected AND or the end");
	CHECK_CONTAINS(e.msg, "at offset 7");
	mqtx_where_free(&w);
}

TEST(id_lists_and_ranges)
{
	struct mqtx_selection s = {0};
	struct mqtx_err e;
	CHECK(mqtx_id_list_parse(&s, "1,5,100-200", &e) == 0);
	CHECK(mqtx_id_list_parse(&s, "7", &e) == 0);
	CHECK(s.n_ids == 4);
	if (s.n_ids == 4) {
		CHECK(s.ids[0].lo == 1 && s.ids[0].hi == 1);
		CHECK(s.ids[2].lo == 100 && s.ids[2].hi == 200);
		CHECK(s.ids[3].lo == 7 && s.ids[3].hi == 7);
	}
	static const char *const bad[] = {"",   ",",  "1,",    "1,,2", "a",    "5-1",
					  "1-", "-3", "1-2-3", "1 ",   "0x10", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(mqtx_id_list_parse(&s, bad[i], &e) < 0);
		CHECK(s.n_ids == 4);
	}
	mqtx_selection_free(&s);
}

TEST(rates)
{
	double r;
	struct mqtx_err e;
	CHECK(mqtx_rate_parse("10", &r, &e) == 0 && r == 10);
	CHECK(mqtx_rate_parse("10/s", &r, &e) == 0 && r == 10);
	CHECK(mqtx_rate_parse("120/m", &r, &e) == 0 && r == 2);
	CHECK(mqtx_rate_parse("3600/h", &r, &e) == 0 && r == 1);
	CHECK(mqtx_rate_parse("0", &r, &e) == 0 && r == 0);
	CHECK(mqtx_rate_parse("0.5/s", &r, &e) == 0 && r == 0.5);
	CHECK(mqtx_rate_parse("fast", &r, &e) < 0);
	CHECK(mqtx_rate_parse("-1", &r, &e) < 0);
	CHECK(mqtx_rate_parse("10/d", &r, &e) < 0);
	CHECK(mqtx_rate_parse(" 10", &r, &e) < 0);
	CHECK(mqtx_rate_parse("nan", &r, &e) < 0);
	CHECK(mqtx_rate_parse("", &r, &e) < 0);
}
