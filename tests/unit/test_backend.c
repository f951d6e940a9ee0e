/* Unit tests for the broker layer's validation (mqtx_backend_validate
 * without a connection): the limits every message must meet before
 * anything of its batch goes on the wire. */
#define _POSIX_C_SOURCE 200809L
#include <amqp.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h" /* the backends themselves, for their limits */
#include "txpub/txpub.h"
#include "unit.h"

static struct mqtx_msg msg_of(const char *dest, const char *rk, const char *key)
{
	struct mqtx_msg m;
	memset(&m, 0, sizeof(m));
	m.id = 42;
	m.destination = dest;
	m.routing_key = rk;
	m.key = key;
	m.payload = "{}";
	m.payload_len = 2;
	return m;
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static int amqp_ok(const struct mqtx_msg *m, char *why)
{
	return mqtx_backend_validate(&mqtx_backend_amqp, NULL, m, why, 256);
}

TEST(validate_amqp_short_strings)
{
	char why[256];
	char *s255 = repeat('a', 255), *s256 = repeat('a', 256), *s300 = repeat('r', 300);
	struct mqtx_msg m = msg_of("ex", "rk", "k1");
	CHECK(amqp_ok(&m, why) == 0);
	m.routing_key = s255;
	m.destination = s255;
	m.key = s255;
	m.content_type = s255;
	CHECK(amqp_ok(&m, why) == 0);

	m = msg_of("ex", s300, "k1");
	CHECK(amqp_ok(&m, why) < 0);
	CHECK_STR(why, "routing_key is 300 bytes; AMQP allows at most 255");
	m = msg_of(s256, "rk", "k1");
	CHECK(amqp_ok(&m, why) < 0);
	CHECK_STR(why, "destination (the exchange) is 256 bytes; AMQP allows at most 255");
	m = msg_of("ex", "rk", s256);
	CHECK(amqp_ok(&m, why) < 0);
	CHECK_STR(why, "idempotency key (sent as message_id) is 256 bytes; AMQP allows at most 255");
	m = msg_of("ex", "rk", "k1");
	m.content_type = s256;
	CHECK(amqp_ok(&m, why) < 0);
	CHECK_STR(why, "content_type is 256 bytes; AMQP allows at most 255");

	struct mqtx_header h = {.name = s256, .value = "v", .value_len = 1};
	m = msg_of("ex", "rk", "k1");
	m.headers = &h;
	m.n_headers = 1;
	CHECK(amqp_ok(&m, why) < 0);
	CHECK_CONTAINS(why, "a header name is 256 bytes");
	free(s255);
	free(s256);
	free(s300);
}

/* The properties must fit one frame: frame_max 131072 less 20 bytes of
 * framing. What validate counts must be what rabbitmq-c encodes: the
 * headers table is checked against amqp_encode_table. */
TEST(validate_amqp_frame)
{
	char why[256];
	const size_t room = 131072 - 20;
	struct mqtx_header h = {.name = "big", .value = NULL, .value_len = 0};
	struct mqtx_msg m = msg_of("ex", "rk", "k1");
	m.headers = &h;
	m.n_headers = 1;
	/* fixed part: flags 2, delivery_mode 1, message_id 1+2; table length 4;
	 * "big" 1+3+1+4; x-mqtx-outbox-id 1+16+1+4+2; x-mqtx-idempotency-key 1+22+1+4+2 */
	size_t fixed = 2 + 1 + 3 + 4 + 9 + 24 + 30;
	char *v = repeat('x', room - fixed + 1);
	h.value = v;
	h.value_len = room - fixed;
	CHECK(amqp_ok(&m, why) == 0);
	h.value_len = room - fixed + 1;
	CHECK(amqp_ok(&m, why) < 0);
	CHECK_CONTAINS(why, "headers and properties are 131053 bytes encoded");
	CHECK_CONTAINS(why, "frame_max 131072");

	/* the table part, as rabbitmq-c encodes it */
	amqp_table_entry_t e[3];
	e[0].key = amqp_cstring_bytes("big");
	e[0].value.kind = AMQP_FIELD_KIND_UTF8;
	e[0].value.value.bytes.bytes = v;
	e[0].value.value.bytes.len = 1000;
	e[1].key = amqp_cstring_bytes("x-mqtx-outbox-id");
	e[1].value.kind = AMQP_FIELD_KIND_UTF8;
	e[1].value.value.bytes = amqp_cstring_bytes("42");
	e[2].key = amqp_cstring_bytes("x-mqtx-redelivery-count");
	e[2].value.kind = AMQP_FIELD_KIND_I64;
	e[2].value.value.i64 = 3;
	amqp_table_t t = {.num_entries = 3, .entries = e};
	char buf[4096];
	amqp_bytes_t enc = {.len = sizeof(buf), .bytes = buf};
	size_t off = 0;
	CHECK(amqp_encode_table(enc, &t, &off) == AMQP_STATUS_OK);
	CHECK(off == 4 + (1 + 3 + 1 + 4 + 1000) + (1 + 16 + 1 + 4 + 2) + (1 + 23 + 1 + 8));

	/* a 200 KB header value never fits */
	char *big = repeat('y', 200000);
	h.value = big;
	h.value_len = 200000;
	CHECK(amqp_ok(&m, why) < 0);
	free(v);
	free(big);
}

TEST(validate_reserved_headers)
{
	char why[256];
	const char *names[] = {"x-mqtx-outbox-id", "x-mqtx-idempotency-key", "x-mqtx-redelivery-count",
			       "x-mqtx-anything"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct mqtx_header h[2] = {{.name = "ok", .value = "1", .value_len = 1},
					   {.name = names[i], .value = "999", .value_len = 3}};
		struct mqtx_msg m = msg_of("topic", "rk", "k1");
		m.headers = h;
		m.n_headers = 2;
		CHECK(mqtx_backend_validate(&mqtx_backend_amqp, NULL, &m, why, sizeof(why)) < 0);
		CHECK_CONTAINS(why, names[i]);
		CHECK_CONTAINS(why, "reserved");
		CHECK(mqtx_backend_validate(&mqtx_backend_kafka, NULL, &m, why, sizeof(why)) < 0);
		CHECK_CONTAINS(why, "reserved");
	}
	struct mqtx_header h = {.name = "x-mqtx", .value = "1", .value_len = 1};
	struct mqtx_msg m = msg_of("topic", "rk", "k1");
	m.headers = &h;
	m.n_headers = 1;
	CHECK(mqtx_backend_validate(&mqtx_backend_kafka, NULL, &m, why, sizeof(why)) == 0);
}

TEST(validate_kafka_topic_names)
{
	char why[256];
	char *t249 = repeat('t', 249), *t250 = repeat('t', 250);
	const char *good[] = {"orders", "a.b_c-D9", t249, "..."};
	const char *bad[] = {"", ".", "..", "bad topic", "caf\xc3\xa9", "a/b", t250};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct mqtx_msg m = msg_of(good[i], NULL, "k1");
		CHECK(mqtx_backend_validate(&mqtx_backend_kafka, NULL, &m, why, sizeof(why)) == 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mqtx_msg m = msg_of(bad[i], NULL, "k1");
		CHECK(mqtx_backend_validate(&mqtx_backend_kafka, NULL, &m, why, sizeof(why)) < 0);
		CHECK_CONTAINS(why, "destination (the topic)");
	}
	struct mqtx_msg m = msg_of("bad topic", NULL, "k1");
	mqtx_backend_validate(&mqtx_backend_kafka, NULL, &m, why, sizeof(why));
	CHECK_CONTAINS(why, "byte 0x20 at 3; Kafka topic names allow only [a-zA-Z0-9._-]");
	/* AMQP has no such rule: any exchange name up to 255 bytes */
	CHECK(mqtx_backend_validate(&mqtx_backend_amqp, NULL, &m, why, sizeof(why)) == 0);
	free(t249);
	free(t250);
}

/* txpub's modes follow capabilities, never names: a broker without
 * transactions refuses tx, one without fencing refuses kafka-tx. */
TEST(txpub_modes_by_capability)
{
	static const char *const none[] = {NULL};
	const struct mqtx_backend_ops plain = {.name = "plain", .schemes = none, .caps = MQTX_CAP_CONSUME};
	const struct mqtx_backend_ops txonly = {.name = "txonly", .schemes = none, .caps = MQTX_CAP_TRANSACTIONS};
	const struct mqtx_backend_ops fenced = {.name = "fenced",
						.schemes = none,
						.caps = MQTX_CAP_TRANSACTIONS | MQTX_CAP_FENCED_TRANSACTIONS};
	enum mqtx_txpub_mode m;
	struct mqtx_err e;
	CHECK(mqtx_txpub_mode_for(&plain, MQTX_TXPUB_AUTO, false, &m, &e) == 0 && m == MQTX_TXPUB_CONFIRM);
	CHECK(mqtx_txpub_mode_for(&plain, MQTX_TXPUB_AUTO, true, &m, &e) == 0 && m == MQTX_TXPUB_CONFIRM);
	CHECK(mqtx_txpub_mode_for(&plain, MQTX_TXPUB_TX, false, &m, &e) < 0 && e.kind == MQTX_E_CONFIG);
	CHECK_CONTAINS(e.msg, "the plain broker cannot do transactions");
	CHECK(mqtx_txpub_mode_for(&plain, MQTX_TXPUB_KAFKA_TX, false, &m, &e) < 0);
	CHECK_CONTAINS(e.msg, "(use --mode confirm)");
	CHECK(mqtx_txpub_mode_for(&txonly, MQTX_TXPUB_AUTO, false, &m, &e) == 0 && m == MQTX_TXPUB_CONFIRM);
	CHECK(mqtx_txpub_mode_for(&txonly, MQTX_TXPUB_AUTO, true, &m, &e) == 0 && m == MQTX_TXPUB_TX);
	CHECK(mqtx_txpub_mode_for(&txonly, MQTX_TXPUB_KAFKA_TX, false, &m, &e) < 0);
	CHECK_CONTAINS(e.msg, "the txonly broker cannot do fenced transactions (use --mode tx)");
	CHECK(mqtx_txpub_mode_for(&fenced, MQTX_TXPUB_AUTO, false, &m, &e) == 0 && m == MQTX_TXPUB_KAFKA_TX);
	CHECK(mqtx_txpub_mode_for(&fenced, MQTX_TXPUB_TX, false, &m, &e) < 0);
	CHECK_CONTAINS(e.msg, "use --mode kafka-tx");
	CHECK(mqtx_txpub_mode_for(&fenced, MQTX_TXPUB_CONFIRM, true, &m, &e) == 0 && m == MQTX_TXPUB_CONFIRM);
}

TEST(broker_schemes_by_capability)
{
	char buf[128];
	CHECK_STR(mqtx_broker_schemes_with(MQTX_CAP_FENCED_TRANSACTIONS, buf, sizeof(buf)), "kafka:// or kafkas://");
	CHECK_CONTAINS(mqtx_broker_schemes_with(MQTX_CAP_DESTRUCTIVE_READ, buf, sizeof(buf)), "amqp://");
	CHECK(strstr(buf, "kafka://") == NULL && strstr(buf, "nats://") == NULL);
	CHECK_CONTAINS(mqtx_broker_schemes_text(), "nats://");
	CHECK_CONTAINS(mqtx_broker_schemes_text(), "amqp://");
	CHECK_STR(mqtx_broker_schemes_with(MQTX_CAP_FENCED_TRANSACTIONS, buf, 4), "kaf");
}
