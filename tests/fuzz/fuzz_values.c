/* libFuzzer harness: durations, sizes, numbers, base64, URL/conninfo
 * redaction, kafka:// URLs and JSON string escaping on arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "broker/kafka/url.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	struct mqtx_err err;
	int64_t ms;
	uint64_t u;
	(void)mqtx_parse_duration(s, &ms, &err);
	(void)mqtx_parse_size(s, &u, &err);
	(void)mqtx_parse_uint(s, UINT64_MAX, &u, &err);
	char *r = mqtx_redact(s);
	/* a redacted string never grows a password back */
	char *rr = mqtx_redact(r);
	if (strcmp(r, rr) != 0)
		abort();
	free(rr);
	free(r);
	for (int as_source = 0; as_source < 2; as_source++) {
		struct mqtx_kafka_url ku;
		if (mqtx_kafka_url_parse(s, "fuzz", as_source, &ku, &err) == 0) {
			if (ku.servers == NULL || (as_source && ku.topic == NULL))
				abort();
			mqtx_kafka_url_free(&ku);
		} else if (ku.servers != NULL || ku.user != NULL || ku.password != NULL || ku.topic != NULL) {
			abort(); /* a refused URL leaves nothing behind */
		}
	}
	struct mqtx_buf b = MQTX_BUF_INIT, e = MQTX_BUF_INIT;
	if (mqtx_base64_decode(&b, s, size) == 0) {
		mqtx_base64_encode(&e, b.data, b.len);
	}
	mqtx_buf_reset(&e);
	mqtx_json_add_str(&e, (const char *)data, size);
	struct mqtx_json *v = mqtx_json_parse(e.data, e.len, &err);
	if (v == NULL)
		abort(); /* escaping must always produce valid JSON */
	mqtx_json_free(v);
	mqtx_buf_free(&b);
	mqtx_buf_free(&e);
	char fmt[64];
	if (size >= 8) {
		int64_t x;
		memcpy(&x, data, 8);
		mqtx_format_duration(x, fmt, sizeof(fmt));
	}
	free(s);
	return 0;
}
