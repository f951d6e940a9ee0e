/* NATS backend: URL parsing, the subject a message goes to, and the
 * checks validate() makes without a connection. */
#include <stdlib.h>
#include <string.h>

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
	static const char *const bad[] = {"tls://", "tls://:4222", "tls://h:0", "tls://h:65536", "tls://h:12x",
					  "nats://h:4222/STREAM", "nats://h?x=1", "nats://a:1,b:2", "tls://h:4222/a/b",
					  "http://h:4222"};
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
	struct mqtx_msg m = {.destination = "orders", .routing_key = "eu.created", .key = "k1", .headers = &h,
			     .n_headers = 1, .payload = "{}", .payload_len = 2};
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
