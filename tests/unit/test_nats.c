/* NATS backend: URL parsing, the subject a message goes to, and the
 * checks validate() makes without a connection. */
#define _POSIX_C_SOURCE 200809L
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/nats/url.h"
#include "unit.h"

TEST(nats_url_forms)
{
	struct mqtx_nats_url u;
	struct mqtx_err e = {0};
	CHECK(mqtx_nats_url_parse("nats://127.0.0.1:4222", "w", false, &u, &e) == 0);
	CHECK_STR(u.server, "nats://127.0.0.1:4222");
	CHECK(u.port == 4222 && !u.tls && u.user == NULL && u.password == NULL && u.stream == NULL);
	mqtx_nats_url_free(&u);

	CHECK(mqtx_nats_url_parse("tls://al%40x:s3cr%3At@nats.example:7422/", "w", false, &u, &e) == 0);
	CHECK(u.tls && u.port == 7422);
	CHECK_STR(u.host, "nats.example");
	CHECK_STR(u.user, "al@x");
	CHECK_STR(u.password, "s3cr:t");
	CHECK_STR(u.server, "nats://nats.example:7422"); /* no credentials for the client library */
	mqtx_nats_url_free(&u);

	CHECK(mqtx_nats_url_parse("nats://localhost", "w", false, &u, &e) == 0);
	CHECK(u.port == 4222);
	mqtx_nats_url_free(&u);

	CHECK(mqtx_nats_url_parse("nats://[::1]:4333", "w", false, &u, &e) == 0);
	CHECK_STR(u.host, "[::1]");
	CHECK(u.port == 4333);
	mqtx_nats_url_free(&u);

	CHECK(mqtx_nats_url_parse("nats://h:1/ORDERS", "w", true, &u, &e) == 0);
	CHECK_STR(u.stream, "ORDERS");
	mqtx_nats_url_free(&u);
}

TEST(nats_url_errors)
{
	struct mqtx_nats_url u;
	struct mqtx_err e = {0};
	static const char *const bad[] = {"tls://",           "tls://:4222",          "tls://h:0",    "tls://h:65536",
					  "tls://h:12x",      "nats://h:4222/STREAM", "nats://h?x=1", "nats://a:1,b:2",
					  "tls://h:4222/a/b", "http://h:4222"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mqtx_err_clear(&e);
		CHECK(mqtx_nats_url_parse(bad[i], "<redacted>", false, &u, &e) < 0);
		CHECK(e.kind == MQTX_E_CONFIG);
		CHECK_CONTAINS(e.msg, "<redacted>");
	}
	/* a source needs a stream; its errors are usage errors */
	mqtx_err_clear(&e);
	CHECK(mqtx_nats_url_parse("nats://h:1", "src", true, &u, &e) < 0);
	CHECK(e.kind == MQTX_E_USAGE);
	CHECK_CONTAINS(e.msg, "names no valid stream");
	CHECK(mqtx_nats_url_parse("nats://h:1/a.b", "src", true, &u, &e) < 0);
}

TEST(nats_subject_mapping)
{
	char *s = mqtx_nats_subject("orders", "eu.created");
	CHECK_STR(s, "orders.eu.created");
	free(s);
	s = mqtx_nats_subject("orders", "");
	CHECK_STR(s, "orders");
	free(s);
	s = mqtx_nats_subject("orders", NULL);
	CHECK_STR(s, "orders");
	free(s);

	char why[256];
	CHECK(mqtx_nats_subject_check("destination", "a.b.c", why, sizeof(why)) == 0);
	CHECK(mqtx_nats_subject_check("destination", "", why, sizeof(why)) < 0);
	CHECK(mqtx_nats_subject_check("routing_key", "a..b", why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "routing_key 'a..b' has an empty subject token at byte 2");
	CHECK(mqtx_nats_subject_check("routing_key", ".a", why, sizeof(why)) < 0);
	CHECK(mqtx_nats_subject_check("routing_key", "a.", why, sizeof(why)) < 0);
	CHECK(mqtx_nats_subject_check("routing_key", "a.*", why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "wildcard");
	CHECK(mqtx_nats_subject_check("routing_key", ">", why, sizeof(why)) < 0);
	CHECK(mqtx_nats_subject_check("routing_key", "a*b.c>", why, sizeof(why)) == 0); /* not whole tokens */
	CHECK(mqtx_nats_subject_check("destination", "a b", why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "byte 0x20 at 1");
	CHECK(mqtx_nats_subject_check("destination", "a\tb", why, sizeof(why)) < 0);
}

TEST(nats_validate_without_connection)
{
	struct mqtx_err e = {0};
	const struct mqtx_backend_ops *ops = mqtx_backend_find("tls://h:4222", &e);
	CHECK(ops != NULL);
	CHECK_STR(mqtx_broker_dest_noun(ops), "subject");
	CHECK(mqtx_broker_can(ops, MQTX_CAP_INSPECT) && mqtx_broker_can(ops, MQTX_CAP_READ));
	CHECK(!mqtx_broker_can(ops, MQTX_CAP_TRANSACTIONS) && !mqtx_broker_can(ops, MQTX_CAP_QUEUES));
	char why[256];
	struct mqtx_header h = {"tenant", "acme", 4};
	struct mqtx_msg m = {.destination = "orders",
			     .routing_key = "eu.created",
			     .key = "k1",
			     .headers = &h,
			     .n_headers = 1,
			     .payload = "{}",
			     .payload_len = 2};
	CHECK(mqtx_backend_validate(ops, NULL, &m, why, sizeof(why)) == 0);
	m.routing_key = "eu..created";
	CHECK(mqtx_backend_validate(ops, NULL, &m, why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "routing_key (appended to the subject)");
	m.routing_key = "";
	CHECK(mqtx_backend_validate(ops, NULL, &m, why, sizeof(why)) == 0);
	m.destination = "or ders";
	CHECK(mqtx_backend_validate(ops, NULL, &m, why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "destination (the subject)");
	m.destination = "orders";
	struct mqtx_header bad = {"a:b", "v", 1};
	m.headers = &bad;
	CHECK(mqtx_backend_validate(ops, NULL, &m, why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "header 'a:b'");
	struct mqtx_header crlf = {"x", "a\r\nb", 4};
	m.headers = &crlf;
	CHECK(mqtx_backend_validate(ops, NULL, &m, why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "no CR, LF or NUL");
	struct mqtx_header mid = {"nats-msg-id", "x", 1};
	m.headers = &mid;
	CHECK(mqtx_backend_validate(ops, NULL, &m, why, sizeof(why)) < 0);
	CHECK_CONTAINS(why, "Nats-Msg-Id");
}

/* ---- against a server: MQTX_TEST_NATS_URL (tests/run.sh starts one) ---- */

struct got {
	int n;
	int64_t seqs[16];
	char keys[16][32];
};

static int collect(void *ctx, const struct mqtx_read_record *r, struct mqtx_err *err)
{
	struct got *g = ctx;
	(void)err;
	if (g->n < 16) {
		g->seqs[g->n] = r->offset;
		snprintf(g->keys[g->n], sizeof(g->keys[0]), "%.*s", (int)r->key_len, r->key != NULL ? r->key : "");
	}
	g->n++;
	return 0;
}

TEST(nats_publish_and_read_against_server)
{
	const char *url = getenv("MQTX_TEST_NATS_URL");
	if (url == NULL || url[0] == '\0') {
		fprintf(stderr, "  (skipped: MQTX_TEST_NATS_URL unset)\n");
		return;
	}
	char stream[64], subject[64], api[128], body[256];
	snprintf(stream, sizeof(stream), "unit_%ld", (long)getpid());
	snprintf(subject, sizeof(subject), "unit.%ld", (long)getpid());
	natsConnection *nc = NULL;
	natsMsg *reply = NULL;
	CHECK(natsConnection_ConnectTo(&nc, url) == NATS_OK);
	if (nc == NULL)
		return;
	/* a stream with one literal subject */
	snprintf(api, sizeof(api), "$JS.API.STREAM.CREATE.%s", stream);
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"subjects\":[\"%s\"],\"storage\":\"memory\"}", stream, subject);
	CHECK(natsConnection_RequestString(&reply, nc, api, body, 5000) == NATS_OK);
	natsMsg_Destroy(reply);

	struct mqtx_config *cfg = mqtx_config_new();
	struct mqtx_err e = {0};
	cfg->broker_url = strdup(url);
	struct mqtx_backend_opts opts = {.mode = MQTX_PUB_CONFIRM, .window = 2};
	struct mqtx_backend *b = mqtx_backend_open(cfg, &opts, &e);
	CHECK(b != NULL);
	if (b != NULL) {
		/* k2 twice: the second is a duplicate, acknowledged as such and CONFIRMED;
		 * the routing key of the third names a subject no stream captures */
		struct mqtx_msg m[4] = {
			{.id = 1, .key = "k1", .destination = subject, .payload = "a", .payload_len = 1},
			{.id = 2, .key = "k2", .destination = subject, .payload = "b", .payload_len = 1},
			{.id = 3,
			 .key = "k3",
			 .destination = subject,
			 .routing_key = "x",
			 .payload = "c",
			 .payload_len = 1},
			{.id = 4, .key = "k2", .destination = subject, .payload = "b", .payload_len = 1},
		};
		CHECK(mqtx_backend_publish(b, m, 4, &e) == 0);
		CHECK(m[0].state == MQTX_MSG_CONFIRMED && m[1].state == MQTX_MSG_CONFIRMED);
		CHECK(m[2].state == MQTX_MSG_FAILED && !m[2].permanent);
		CHECK_CONTAINS(m[2].error, "no JetStream stream captures subject");
		CHECK(m[3].state == MQTX_MSG_CONFIRMED);
		struct mqtx_dest_info info;
		CHECK(mqtx_backend_inspect(b, subject, NULL, &info, &e) == 0);
		CHECK(info.exists && info.depth == 2);
		CHECK_CONTAINS(info.detail, "2 messages");
		mqtx_backend_close(b);
	}
	/* read it back: sequences 1 and 2, and from sequence 2 only the second */
	char src[256];
	snprintf(src, sizeof(src), "%s/%s", url, stream);
	const struct mqtx_backend_ops *ops = mqtx_backend_find(src, &e);
	struct got g = {0};
	struct mqtx_read_opts ro = {.cfg = cfg, .url = src, .idle_timeout_ms = 3000, .emit = collect, .emit_ctx = &g};
	struct mqtx_read_result res;
	CHECK(ops != NULL && mqtx_broker_read(ops, &ro, &res, &e) == 0);
	CHECK(g.n == 2 && g.seqs[0] == 1 && g.seqs[1] == 2);
	CHECK_STR(g.keys[1], "k2");
	CHECK_STR(res.kind, "jetstream");
	CHECK_STR(res.default_destination, subject);
	free(res.default_destination);
	memset(&g, 0, sizeof(g));
	ro.from = (struct mqtx_read_pos){.kind = MQTX_READ_POS_OFFSET, .offset = 2};
	CHECK(mqtx_broker_read(ops, &ro, &res, &e) == 0);
	CHECK(g.n == 1 && g.seqs[0] == 2);
	free(res.default_destination);

	snprintf(api, sizeof(api), "$JS.API.STREAM.DELETE.%s", stream);
	if (natsConnection_RequestString(&reply, nc, api, "", 5000) == NATS_OK)
		natsMsg_Destroy(reply);
	natsConnection_Destroy(nc);
	mqtx_config_free(cfg);
}
