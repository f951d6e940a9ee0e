/* Stopping within a grace period (see stop.h). */
#define _POSIX_C_SOURCE 200809L
#include "base/stop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/util.h"

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

/* ---- the watchdog ---- */

#define MAX_WATCHED 32

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static int watched[MAX_WATCHED];
static size_t n_watched;
static atomic_bool wd_on, wd_quit;
static pthread_t wd_thread;
/* set before wd_on, read after it */
static volatile sig_atomic_t *wd_flag;
static int64_t wd_answers_ms, wd_reserve_ms;

int64_t mqtx_stop_cut_deadline(void)
{
	if (!atomic_load(&wd_on))
		return INT64_MAX;
	int64_t d = mqtx_stop_deadline(wd_flag, wd_answers_ms);
	return d == INT64_MAX ? d : d + wd_reserve_ms;
}

void mqtx_stop_watch(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&watch_lock);
	if (n_watched < MAX_WATCHED)
		watched[n_watched++] = fd;
	pthread_mutex_unlock(&watch_lock);
}

void mqtx_stop_unwatch(int fd)
{
	pthread_mutex_lock(&watch_lock);
	for (size_t i = 0; i < n_watched; i++) {
		if (watched[i] == fd) {
			watched[i] = watched[--n_watched];
			break;
		}
	}
	pthread_mutex_unlock(&watch_lock);
}

static void *watchdog_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&wd_quit)) {
		if (mqtx_now_ms() >= mqtx_stop_cut_deadline()) {
			pthread_mutex_lock(&watch_lock);
			for (size_t i = 0; i < n_watched; i++) {
				mqtx_debug("the shutdown grace ran out: closing a connection still in use (socket %d)",
					   watched[i]);
				shutdown(watched[i], SHUT_RDWR);
			}
			n_watched = 0;
			pthread_mutex_unlock(&watch_lock);
		}
		mqtx_sleep_ms(50);
	}
	return NULL;
}

bool mqtx_stop_watchdog_start(volatile sig_atomic_t *flag, int64_t answers_ms, int64_t reserve_ms)
{
	if (flag == NULL || atomic_load(&wd_on))
		return false;
	wd_flag = flag;
	wd_answers_ms = answers_ms;
	wd_reserve_ms = reserve_ms;
	atomic_store(&wd_quit, false);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* signals go to threads whose waits notice them */
	bool ok = pthread_create(&wd_thread, NULL, watchdog_main, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ok)
		atomic_store(&wd_on, true);
	return ok;
}

void mqtx_stop_watchdog_end(void)
{
	if (!atomic_load(&wd_on))
		return;
	atomic_store(&wd_quit, true);
	pthread_join(wd_thread, NULL);
	atomic_store(&wd_on, false);
	pthread_mutex_lock(&watch_lock);
	n_watched = 0;
	pthread_mutex_unlock(&watch_lock);
}
