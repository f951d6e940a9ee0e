/* Unit tests for txpub's pure parts: SHA-256, stdin parsing (lines, JSON
 * lines, raw, NUL records) and message sets with derived keys. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>

#include "txpub/input.h"
#include "base/sha256.h"
#include "txpub/txpub.h"
#include "unit.h"

static void hex_of(const void *data, size_t n, char out[65])
{
	struct mqtx_sha256 s;
	mqtx_sha256_init(&s);
	mqtx_sha256_update(&s, data, n);
	mqtx_sha256_hex(&s, out);
}

TEST(sha256_vectors)
{
	char h[65];
	hex_of("", 0, h);
	CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of("abc", 3, h);
	CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	hex_of(two, strlen(two), h);
	CHECK_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* a million 'a', fed in uneven pieces across block boundaries */
	char *a = malloc(1000000);
	memset(a, 'a', 1000000);
	struct mqtx_sha256 s;
	mqtx_sha256_init(&s);
	size_t pos = 0, step = 1;
	while (pos < 1000000) {
		size_t n = 1000000 - pos < step ? 1000000 - pos : step;
		mqtx_sha256_update(&s, a + pos, n);
		pos += n;
		step = step * 3 % 200 + 1;
	}
	mqtx_sha256_hex(&s, h);
	CHECK_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

static struct mqtx_input_opts opts(enum mqtx_input_format f, char delim, uint64_t max)
{
	struct mqtx_input_opts o = {.format = f, .delim = delim, .max_payload = max, .name = "stdin"};
	return o;
}

TEST(input_lines_keep_bytes)
{
	struct mqtx_input in = {0};
	struct mqtx_err e;
	struct mqtx_input_opts o = opts(MQTX_INPUT_LINES, '\n', 100);
	CHECK(mqtx_input_parse(&in, "a\r\n\nb\0c\nlast", 13, &o, &e) == 0);
	CHECK(in.n == 4);
	if (in.n == 4) {
		CHECK(in.msgs[0].payload_len == 2 && memcmp(in.msgs[0].payload, "a\r", 2) == 0);
		CHECK(in.msgs[1].payload_len == 0);
		CHECK(in.msgs[2].payload_len == 3 && memcmp(in.msgs[2].payload, "b\0c", 3) == 0);
		CHECK_STR(in.msgs[3].payload, "last");
		CHECK_STR(in.msgs[2].where, "stdin line 3");
	}
	mqtx_input_free(&in);
	/* NUL records; the last delimiter ends the input, it does not start an empty record */
	o = opts(MQTX_INPUT_LINES, '\0', 100);
	CHECK(mqtx_input_parse(&in, "x\ny\0z\0", 6, &o, &e) == 0);
	CHECK(in.n == 2);
	if (in.n == 2) {
		CHECK(in.msgs[0].payload_len == 3);
		CHECK_STR(in.msgs[1].where, "stdin record 2");
	}
	mqtx_input_free(&in);
}

TEST(input_size_limit_names_the_record)
{
	struct mqtx_input in = {0};
	struct mqtx_err e;
	struct mqtx_input_opts o = opts(MQTX_INPUT_LINES, '\n', 3);
	CHECK(mqtx_input_parse(&in, "abc\nabcd\n", 9, &o, &e) < 0);
	CHECK_CONTAINS(e.msg, "stdin line 2: payload is 4 bytes, more than txpub.max_payload (3 bytes)");
	mqtx_input_free(&in);
	o = opts(MQTX_INPUT_JSONL, '\n', 3);
	CHECK(mqtx_input_parse(&in, "{\"payload_base64\":\"YWJjZA==\"}", 29, &o, &e) < 0);
	CHECK_CONTAINS(e.msg, "stdin line 1: payload is 4 bytes");
	mqtx_input_free(&in);
}

TEST(input_jsonl_fields)
{
	struct mqtx_input in = {0};
	struct mqtx_err e;
	struct mqtx_input_opts o = opts(MQTX_INPUT_JSONL, '\n', 100);
	const char *text =
		"{\"payload\":\"a\\u0000b\",\"key\":\"k1\",\"routing_key\":null,\"headers\":{\"n\":5,\"s\":\"x\",\"z\":null}}\n"
		"{\"payload_base64\":\"/wA=\",\"destination\":\"d\",\"ordering_key\":\"o\"}\n";
	CHECK(mqtx_input_parse(&in, text, strlen(text), &o, &e) == 0);
	CHECK(in.n == 2);
	if (in.n == 2) {
		struct mqtx_input_msg *m = &in.msgs[0];
		CHECK(m->payload_len == 3 && memcmp(m->payload, "a\0b", 3) == 0);
		CHECK_STR(m->key, "k1");
		CHECK(m->has_routing_key && m->routing_key == NULL);
		CHECK(!m->has_destination);
		CHECK(m->n_headers == 3);
		CHECK_STR(m->headers[0].value, "5");
		CHECK(m->headers[2].value == NULL);
		m = &in.msgs[1];
		CHECK(m->payload_len == 2 && (unsigned char)m->payload[0] == 0xff && m->payload[1] == 0);
		CHECK_STR(m->destination, "d");
		CHECK_STR(m->ordering_key, "o");
	}
	mqtx_input_free(&in);
}

TEST(input_jsonl_errors)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"{\"payload\":\"a\"}\n{\"payload\": x}\n", "stdin line 2: invalid JSON at byte 13"},
		{"{\"paylod\":\"a\"}", "stdin line 1: unknown field 'paylod' (did you mean 'payload'?)"},
		{"{\"payload\":\"a\",\"payload_base64\":\"YQ==\"}", "not both"},
		{"{\"key\":\"a\"}", "no 'payload' or 'payload_base64'"},
		{"{\"payload\":1}", "'payload' must be a string"},
		{"{\"payload_base64\":\"!!\"}", "not valid base64"},
		{"{\"payload\":\"a\",\"key\":\"\"}", "'key' is empty"},
		{"{\"payload\":\"a\",\"key\":\"a\\u0000\"}", "'key' contains a NUL byte"},
		{"{\"payload\":\"a\",\"headers\":[]}", "'headers' must be a JSON object"},
		{"{\"payload\":\"a\",\"headers\":{\"x-mqtx-outbox-id\":\"1\"}}", "reserved"},
		{"{\"payload\":\"a\",\"key\":\"k\",\"key\":\"l\"}", "field 'key' appears twice"},
		{"[1]", "stdin line 1: expected a JSON object"},
		{"{\"payload\":\"a\"}\n\n", "stdin line 2: empty line"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mqtx_input in = {0};
		struct mqtx_err e = {0};
		struct mqtx_input_opts o = opts(MQTX_INPUT_JSONL, '\n', 100);
		CHECK(mqtx_input_parse(&in, cases[i].text, strlen(cases[i].text), &o, &e) < 0);
		CHECK_CONTAINS(e.msg, cases[i].want);
		CHECK(e.kind == MQTX_E_INPUT);
		mqtx_input_free(&in);
	}
}

static struct mqtx_txpub_set *set_of(const char *text, const char *dest, size_t batch, struct mqtx_err *e)
{
	struct mqtx_input in = {0};
	struct mqtx_input_opts o = opts(MQTX_INPUT_JSONL, '\n', 1000);
	if (mqtx_input_parse(&in, text, strlen(text), &o, e) < 0) {
		mqtx_input_free(&in);
		return NULL;
	}
	struct mqtx_txpub_defaults d = {.destination = dest,
					.routing_key = "rk",
					.batch_size = batch,
					.max_key_len = 255};
	struct mqtx_txpub_set *s = mqtx_txpub_set_new(&in, &d, e);
	mqtx_input_free(&in);
	return s;
}

TEST(txpub_derived_keys)
{
	struct mqtx_err e;
	/* the same message twice gets the same hash, then ":2"; the key is
	 * sha256(destination NUL routing key NUL payload) */
	struct mqtx_txpub_set *s = set_of("{\"payload\":\"a\"}\n{\"payload\":\"b\"}\n{\"payload\":\"a\"}\n", "ex", 2,
					  &e);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	char h[65];
	hex_of("ex\0rk\0a", 7, h);
	char want[100];
	snprintf(want, sizeof(want), "txpub:%s", h);
	CHECK_STR(s->msgs[0].key, want);
	snprintf(want, sizeof(want), "txpub:%s:2", h);
	CHECK_STR(s->msgs[2].key, want);
	CHECK(strcmp(s->msgs[0].key, s->msgs[1].key) != 0);
	CHECK(mqtx_txpub_batches(s) == 2);
	CHECK(mqtx_txpub_batch_of(s, 2) == 1);
	mqtx_txpub_set_free(s);
}

TEST(txpub_set_rejects)
{
	struct mqtx_err e;
	CHECK(set_of("{\"payload\":\"a\",\"key\":\"k\"}\n{\"payload\":\"b\",\"key\":\"k\"}\n", "ex", 0, &e) == NULL);
	CHECK_CONTAINS(e.msg, "stdin line 2: key 'k' is also the key of stdin line 1");
	CHECK(set_of("{\"payload\":\"a\"}\n", NULL, 0, &e) == NULL);
	CHECK_CONTAINS(e.msg, "stdin line 1: no destination");
	CHECK(set_of("", "ex", 0, &e) == NULL);
	CHECK_CONTAINS(e.msg, "no message in the input");
}
