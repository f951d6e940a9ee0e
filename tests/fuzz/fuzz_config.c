/* libFuzzer harness: the YAML configuration loader must return 0 or a
 * clean error for any input, never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqtx_err err;
	mqtx_log_setup(MQTX_LOG_ERROR, MQTX_LOG_TEXT);
	struct mqtx_config *cfg = mqtx_config_new();
	if (mqtx_config_load_string(cfg, "fuzz.yaml", (const char *)data, size, &err) == 0)
		(void)mqtx_config_validate(cfg, &err);
	for (size_t i = 0; i < mqtx_config_key_count(); i++) {
		char *v = mqtx_config_value_text(cfg, i);
		free(v);
	}
	mqtx_config_free(cfg);
	return 0;
}
