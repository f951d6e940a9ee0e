/* lib/render/txpub: the --report document of a synthetic message set and
 * --prepare's keys. The expected document is what lib/txpub built before
 * the rendering moved to lib/render (compared byte for byte then). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "render/txpub.h"
#include "unit.h"

/* Five messages in batches of two: confirmed, confirmed (a half message),
 * failed, in doubt, never sent. */
struct txpub_fixture {
	struct mqtx_msg msgs[5];
	const char *where[5];
	const char *status[5];
	struct mqtx_txpub_set s;
};

static void txpub_fixture(struct txpub_fixture *f)
{
	static const char *const keys[5] = {"k1", "k\n2", "k3", "k4", "k5"};
	static const char *const where[5] = {"stdin line 1", "stdin line 2", "--payload #3", "x\"y", "stdin line 5"};
	const enum mqtx_msg_state st[5] = {MQTX_MSG_CONFIRMED, MQTX_MSG_CONFIRMED, MQTX_MSG_FAILED, MQTX_MSG_UNKNOWN,
					   MQTX_MSG_PENDING};
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 5; i++) {
		f->msgs[i].key = keys[i];
		f->msgs[i].destination = i == 2 ? "" : "orders";
		f->msgs[i].routing_key = i == 4 ? NULL : "rk";
		f->msgs[i].payload_len = (size_t)i * 7;
		f->msgs[i].state = st[i];
		if (i >= 2)
			snprintf(f->msgs[i].error, sizeof(f->msgs[i].error), "error \"%d\"", i);
		f->where[i] = where[i];
	}
	snprintf(f->msgs[0].error, sizeof(f->msgs[0].error), "old"); /* confirmed: not shown */
	f->status[1] = "prepared";
	f->s.msgs = f->msgs;
	f->s.where = f->where;
	f->s.status = f->status;
	f->s.n = 5;
	f->s.batch_size = 2;
}

static char *render_txpub(const struct mqtx_txpub_report *rep)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_txpub_report(&r, rep);
	mqtx_render_finish(&r);
	return mqtx_buf_detach(&r.b);
}

TEST(render_txpub_report)
{
	struct txpub_fixture f;
	txpub_fixture(&f);
	struct mqtx_sql_result sql = {.outcome = MQTX_SQL_IN_DOUBT, .ran = true};
	snprintf(sql.gid, sizeof(sql.gid), "mqtx:k1");
	struct mqtx_txpub_report rep = {"sql", "tx", 12, "in_doubt", &f.s, &sql};
	char *out = render_txpub(&rep);
	CHECK_STR(out,
		  "{\"operation\":\"sql\",\"mode\":\"tx\",\"exit_code\":12,\"outcome\":\"in_doubt\",\"confirmed\":2,"
		  "\"not_published\":2,\"in_doubt\":1,\"batches\":["
		  "{\"batch\":1,\"first\":1,\"last\":2,\"state\":\"confirmed\"},"
		  "{\"batch\":2,\"first\":3,\"last\":4,\"state\":\"in_doubt\"},"
		  "{\"batch\":3,\"first\":5,\"last\":5,\"state\":\"not_published\"}],\"messages\":["
		  "{\"n\":1,\"input\":\"stdin line 1\",\"key\":\"k1\",\"destination\":\"orders\",\"routing_key\":\"rk\",\"bytes\":0,"
		  "\"batch\":1,\"state\":\"confirmed\"},"
		  "{\"n\":2,\"input\":\"stdin line 2\",\"key\":\"k\\n2\",\"destination\":\"orders\",\"routing_key\":\"rk\",\"bytes\":7,"
		  "\"batch\":1,\"state\":\"confirmed\",\"status\":\"prepared\"},"
		  "{\"n\":3,\"input\":\"--payload #3\",\"key\":\"k3\",\"destination\":\"\",\"routing_key\":\"rk\",\"bytes\":14,"
		  "\"batch\":2,\"state\":\"not_published\",\"error\":\"error \\\"2\\\"\"},"
		  "{\"n\":4,\"input\":\"x\\\"y\",\"key\":\"k4\",\"destination\":\"orders\",\"routing_key\":\"rk\",\"bytes\":21,"
		  "\"batch\":2,\"state\":\"in_doubt\",\"error\":\"error \\\"3\\\"\"},"
		  "{\"n\":5,\"input\":\"stdin line 5\",\"key\":\"k5\",\"destination\":\"orders\",\"routing_key\":null,\"bytes\":28,"
		  "\"batch\":3,\"state\":\"not_published\",\"error\":\"error \\\"4\\\"\"}],"
		  "\"transaction\":{\"gid\":\"mqtx:k1\",\"state\":\"in_doubt\"}}\n");
	free(out);

	/* one batch; no transaction outside --sql */
	f.s.batch_size = 0;
	rep = (struct mqtx_txpub_report){"publish", "confirm", 11, "partial", &f.s, NULL};
	out = render_txpub(&rep);
	CHECK_CONTAINS(out, "\"batches\":[{\"batch\":1,\"first\":1,\"last\":5,\"state\":\"in_doubt\"}]");
	CHECK(out != NULL && strstr(out, "transaction") == NULL);
	free(out);
}

TEST(render_txpub_report_before_messages)
{
	struct mqtx_txpub_report rep = {"publish", "", 6, "not_published", NULL, NULL};
	char *out = render_txpub(&rep);
	CHECK_STR(out, "{\"operation\":\"publish\",\"exit_code\":6,\"outcome\":\"not_published\",\"confirmed\":0,"
		       "\"not_published\":0,\"in_doubt\":0,\"batches\":[],\"messages\":[]}\n");
	free(out);
}

TEST(render_txpub_keys)
{
	struct txpub_fixture f;
	txpub_fixture(&f);
	f.s.n = 2;
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_txpub_keys(&r, &f.s);
	CHECK_STR(r.b.data, "k1\nk\n2\n");
	mqtx_render_free(&r);
}

TEST(txpub_verdict_of_a_set)
{
	struct txpub_fixture f;
	txpub_fixture(&f);
	CHECK(mqtx_txpub_verdict(&f.s) == MQTX_TXPUB_IN_DOUBT); /* one in doubt decides */
	f.msgs[3].state = MQTX_MSG_FAILED;
	CHECK(mqtx_txpub_verdict(&f.s) == MQTX_TXPUB_PARTIAL);
	f.s.n = 2;
	CHECK(mqtx_txpub_verdict(&f.s) == MQTX_TXPUB_ALL_CONFIRMED);
	f.msgs[0].state = f.msgs[1].state = MQTX_MSG_FAILED;
	CHECK(mqtx_txpub_verdict(&f.s) == MQTX_TXPUB_NONE_PUBLISHED);
}

TEST(render_write_file_whole_or_not_at_all)
{
	char dir[] = "/tmp/mqtx-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[64], bad[96];
	snprintf(path, sizeof(path), "%s/report.json", dir);
	snprintf(bad, sizeof(bad), "%s/no/such/dir/report.json", dir);
	struct mqtx_err err;
	CHECK(mqtx_render_write_file(path, "the report", "{}\n", 3, &err) == 0);
	FILE *fp = fopen(path, "r");
	char got[8] = {0};
	CHECK(fp != NULL && fread(got, 1, sizeof(got) - 1, fp) == 3);
	if (fp != NULL)
		fclose(fp);
	CHECK_STR(got, "{}\n");
	CHECK(mqtx_render_write_file(bad, "the report", "{}\n", 3, &err) == -1);
	CHECK(err.kind == MQTX_E_IO);
	CHECK_CONTAINS(err.msg, "cannot write the report '");
	CHECK_CONTAINS(err.msg, "No such file or directory");
	remove(path);
	rmdir(dir);
}
