/* Rate limiting of a repeated message: the same text is let through once
 * per interval, and the next one that goes through says how many
 * identical ones were held back meanwhile. A different text always goes
 * through. Not thread-safe: one limiter per caller. */
#ifndef MQTX_RATELIMIT_H
#define MQTX_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct mqtx_ratelimit {
	char last[512];      /* the text last let through */
	int64_t last_ms;     /* when (mqtx_now_ms) */
	uint64_t suppressed; /* identical texts held back since */
};

#define MQTX_RATELIMIT_INIT \
	{                   \
		"", 0, 0    \
	}

/* True when msg should be logged now (it differs from the last text let
 * through, or interval_ms passed since); *repeats then gets the number of
 * identical texts held back since the last one (0 for a new text). False:
 * held back and counted. */
bool mqtx_ratelimit_pass(struct mqtx_ratelimit *rl, const char *msg, int64_t interval_ms, uint64_t *repeats);

#endif
