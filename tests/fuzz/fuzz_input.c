/* libFuzzer harness: txpub's stdin parser (lines, jsonl, raw; newline or
 * NUL delimited) on any bytes: messages or a clean error naming the
 * record, never a crash; payload lengths never exceed the limit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "txpub/input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* first byte picks the format and delimiter */
	struct mqtx_input_opts o = {
		.format = (enum mqtx_input_format)(data[0] % 3),
		.delim = (data[0] & 4) ? '\0' : '\n',
		.max_payload = 4096,
		.name = "stdin",
	};
	struct mqtx_input in = {0};
	struct mqtx_err err;
	if (mqtx_input_parse(&in, (const char *)data + 1, size - 1, &o, &err) == 0) {
		for (size_t i = 0; i < in.n; i++)
			if (in.msgs[i].payload_len > o.max_payload)
				abort();
	}
	mqtx_input_free(&in);
	return 0;
}
