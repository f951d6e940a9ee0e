/* Unit tests for the stop deadline (lib/base/stop.c) and the rate limiter of
 * repeated messages (lib/base/ratelimit.c). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdint.h>

#include "base/ratelimit.h"
#include "base/stop.h"
#include "base/util.h"
#include "unit.h"

TEST(ratelimit_folds_repeats_into_the_next_line)
{
	struct mqtx_ratelimit rl = MQTX_RATELIMIT_INIT;
	uint64_t n = 99;
	CHECK(mqtx_ratelimit_pass(&rl, "broker down", 60000, &n) && n == 0);
	CHECK(!mqtx_ratelimit_pass(&rl, "broker down", 60000, &n));
	CHECK(!mqtx_ratelimit_pass(&rl, "broker down", 60000, &n));
	/* another text goes through at once, and starts its own count */
	CHECK(mqtx_ratelimit_pass(&rl, "database down", 60000, &n) && n == 0);
	CHECK(!mqtx_ratelimit_pass(&rl, "database down", 60000, &n));
	/* once the interval passed, the text goes through with the count */
	CHECK(mqtx_ratelimit_pass(&rl, "database down", 0, &n) && n == 1);
	CHECK(mqtx_ratelimit_pass(&rl, "database down", 0, &n) && n == 0);
}

TEST(stop_deadline_counts_from_the_first_look_and_a_second_signal_ends_it)
{
	volatile sig_atomic_t flag = 0;
	CHECK(mqtx_stop_deadline(NULL, 1000) == INT64_MAX);
	CHECK(mqtx_stop_deadline(&flag, 1000) == INT64_MAX);
	CHECK(mqtx_stop_wait_ms(mqtx_now_ms() + 5000, &flag, 1000, 200) == 200);
	flag = 1;
	int64_t now = mqtx_now_ms();
	int64_t d = mqtx_stop_deadline(&flag, 3000);
	CHECK(d >= now + 3000 && d <= now + 3100);
	mqtx_sleep_ms(20);
	CHECK(mqtx_stop_deadline(&flag, 3000) == d); /* the same for every caller, later too */
	CHECK(mqtx_stop_deadline(&flag, 1000) == d - 2000);
	int64_t w = mqtx_stop_wait_ms(INT64_MAX, &flag, 100, 1000);
	CHECK(w > 0 && w <= 100);
	flag = 2;
	int64_t at = mqtx_stop_deadline(&flag, 3000);
	CHECK(at <= mqtx_now_ms() && at >= now);
	CHECK(mqtx_stop_wait_ms(INT64_MAX, &flag, 3000, 200) == 0);
	CHECK(mqtx_stop_cut_deadline() == INT64_MAX); /* no watchdog */
}
