/* Stopping within a grace period (see stop.h). */
#define _POSIX_C_SOURCE 200809L
#include "stop.h"

#include <stdatomic.h>

#include "util.h"

/* When a stop (index 0) and a stop at once (1) were first seen; 0: not yet. */
static _Atomic int64_t first_seen[2];

static int64_t seen(int which)
{
	int64_t t = atomic_load(&first_seen[which]);
	if (t == 0) {
		int64_t now = mqtx_now_ms();
		if (atomic_compare_exchange_strong(&first_seen[which], &t, now))
			t = now;
	}
	return t;
}

int64_t mqtx_stop_deadline(volatile sig_atomic_t *flag, int64_t grace_ms)
{
	int level = flag != NULL ? (int)*flag : 0;
	if (level <= 0)
		return INT64_MAX;
	int64_t d = seen(0) + (grace_ms > 0 ? grace_ms : 0);
	if (level >= 2) {
		int64_t now = seen(1);
		if (now < d)
			d = now;
	}
	return d;
}

int64_t mqtx_stop_wait_ms(int64_t until, volatile sig_atomic_t *flag, int64_t grace_ms, int64_t slice_ms)
{
	int64_t stop = mqtx_stop_deadline(flag, grace_ms);
	if (stop < until)
		until = stop;
	int64_t left = until - mqtx_now_ms();
	if (left <= 0)
		return 0;
	return left < slice_ms ? left : slice_ms;
}
