/* libFuzzer harness: the JSON reader (outbox headers from the database,
 * txpub's jsonl) accepts or rejects any bytes cleanly; what it accepts
 * writes back as JSON that parses to the same text again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqtx_err err;
	struct mqtx_json *v = mqtx_json_parse((const char *)data, size, &err);
	if (v == NULL)
		return 0;
	struct mqtx_buf a = MQTX_BUF_INIT, b = MQTX_BUF_INIT;
	mqtx_json_write(&a, v);
	struct mqtx_json *w = mqtx_json_parse(a.data, a.len, &err);
	if (w == NULL)
		abort(); /* we wrote something we cannot read back */
	mqtx_json_write(&b, w);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort(); /* not a fixed point */
	(void)mqtx_json_get(v, "x-mqtx-idempotency-key");
	mqtx_buf_free(&a);
	mqtx_buf_free(&b);
	mqtx_json_free(w);
	mqtx_json_free(v);
	return 0;
}
