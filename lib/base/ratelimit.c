/* Rate limiting of a repeated message (see ratelimit.h). */
#define _POSIX_C_SOURCE 200809L
#include "base/ratelimit.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

bool mqtx_ratelimit_pass(struct mqtx_ratelimit *rl, const char *msg, int64_t interval_ms, uint64_t *repeats)
{
	int64_t now = mqtx_now_ms();
	/* compared as stored: a text longer than the buffer counts by its start */
	bool same = rl->last_ms != 0 && strncmp(rl->last, msg, sizeof(rl->last) - 1) == 0;
	if (same && now - rl->last_ms < interval_ms) {
		rl->suppressed++;
		return false;
	}
	*repeats = same ? rl->suppressed : 0;
	snprintf(rl->last, sizeof(rl->last), "%s", msg);
	rl->last_ms = now;
	rl->suppressed = 0;
	return true;
}
