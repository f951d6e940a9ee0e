/* Unit tests for what lib/db and lib/config do without a server: array
 * literals for parameters, --where bind types, and how settings of each
 * type are parsed and shown. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "db/pg.h"
#include "redeliver/redeliver.h"
#include "unit.h"

TEST(pg_array_literals_quote_every_element)
{
	const char *keys[] = {"a", "b\"c", "d\\e", "", "x,y}"};
	char *t = mqtx_pg_text_array(keys, 5);
	CHECK_STR(t, "{\"a\",\"b\\\"c\",\"d\\\\e\",\"\",\"x,y}\"}");
	free(t);
	t = mqtx_pg_text_array(keys, 0);
	CHECK_STR(t, "{}");
	free(t);
	const int64_t ids[] = {1, -5, INT64_MAX};
	char *n = mqtx_pg_int8_array(ids, 3);
	CHECK_STR(n, "{1,-5,9223372036854775807}");
	free(n);
}

TEST(where_conditions_carry_their_bind_type)
{
	struct mqtx_where w = {0};
	struct mqtx_err e;
	CHECK(mqtx_where_parse(&w, "id > 3 AND destination = 'x' AND sent_at < '2026-01-01' AND last_error IS NULL",
			       &e) == 0);
	CHECK(w.n == 4);
	if (w.n == 4) {
		CHECK(w.conds[0].type == MQTX_WHERE_INT);
		CHECK(w.conds[1].type == MQTX_WHERE_TEXT);
		CHECK(w.conds[2].type == MQTX_WHERE_TIME);
	}
	mqtx_where_free(&w);
}

static char *shown(const struct mqtx_config *c, const char *key)
{
	for (size_t i = 0; i < mqtx_config_key_count(); i++)
		if (strcmp(mqtx_config_key_name(i), key) == 0)
			return mqtx_config_value_text(c, i);
	return NULL;
}

static const char *type_of(const char *key)
{
	for (size_t i = 0; i < mqtx_config_key_count(); i++)
		if (strcmp(mqtx_config_key_name(i), key) == 0)
			return mqtx_config_key_type(i);
	return NULL;
}

TEST(config_values_parse_and_show_by_type)
{
	struct mqtx_config *c = mqtx_config_new();
	struct mqtx_err e;
	static const struct {
		const char *key, *in, *out;
	} cases[] = {
		{"relay.poll_interval", "90s", "90s"}, {"relay.poll_interval", "120000ms", "2m"},
		{"relay.max_time", "0", "0"},          {"relay.max_time", "1500ms", "1500ms"},
		{"relay.max_time", "48h", "2d"},       {"txpub.max_payload", "2048", "2KiB"},
		{"txpub.max_payload", "3MiB", "3MiB"}, {"txpub.max_payload", "1000", "1000"},
		{"relay.loop", "true", "true"},        {"check.queues", " a, b,,c ", "a,b,c"},
		{"log.format", "json", "json"},        {"relay.batch_size", "7", "7"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(mqtx_config_set(c, cases[i].key, cases[i].in, "test", &e) == 0);
		char *s = shown(c, cases[i].key);
		CHECK_STR(s, cases[i].out);
		free(s);
	}
	CHECK(mqtx_config_set(c, "log.format", "xml", "test", &e) < 0);
	CHECK_CONTAINS(e.msg, "is not one of text|json");
	CHECK(mqtx_config_set(c, "relay.loop", "maybe", "test", &e) < 0);
	CHECK_CONTAINS(e.msg, "expected true or false");
	CHECK(mqtx_config_set(c, "relay.poll_interval", "1ms", "test", &e) < 0);
	CHECK_CONTAINS(e.msg, "out of range");
	CHECK_STR(type_of("relay.poll_interval"), "duration");
	CHECK_STR(type_of("txpub.max_payload"), "size");
	CHECK_STR(type_of("log.format"), "text|json");
	CHECK_STR(type_of("broker.kafka"), "mapping");
	mqtx_config_free(c);
}
