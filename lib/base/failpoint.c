/* Failpoints for test builds (see failpoint.h). */
#define _POSIX_C_SOURCE 200809L
#include "base/failpoint.h"

#ifdef MQTX_FAILPOINTS
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[96];
	long hits;
} counters[64];
static int n_counters;

static long hit(const char *name)
{
	pthread_mutex_lock(&fp_lock);
	long h = 0;
	int i;
	for (i = 0; i < n_counters; i++)
		if (strcmp(counters[i].name, name) == 0)
			break;
	if (i == n_counters && n_counters < 64) {
		snprintf(counters[i].name, sizeof(counters[i].name), "%s", name);
		counters[i].hits = 0;
		n_counters++;
	}
	if (i < 64)
		h = ++counters[i].hits;
	pthread_mutex_unlock(&fp_lock);
	return h;
}

int mqtx_failpoint(const char *name)
{
	const char *spec = getenv("MQTX_FAILPOINTS");
	if (spec == NULL || spec[0] == '\0')
		return 0;
	size_t nl = strlen(name);
	for (const char *p = spec; *p != '\0';) {
		size_t len = strcspn(p, ",");
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			char action[64];
			size_t al = len - nl - 1;
			if (al >= sizeof(action))
				al = sizeof(action) - 1;
			memcpy(action, p + nl + 1, al);
			action[al] = '\0';
			long when = 1;
			char *at = strchr(action, '@');
			if (at != NULL) {
				*at = '\0';
				when = atol(at + 1);
			}
			if (hit(name) != when)
				return 0;
			mqtx_warn("failpoint %s: %s", name, action); /* flushed before a crash */
			if (strcmp(action, "crash") == 0)
				kill(getpid(), SIGKILL);
			if (strcmp(action, "abort") == 0)
				abort();
			if (strcmp(action, "error") == 0)
				return -1;
			if (strncmp(action, "sleep:", 6) == 0)
				mqtx_sleep_ms(atol(action + 6));
			return 0;
		}
		p += len + (p[len] == ',');
	}
	return 0;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int mqtx_failpoints_disabled;
#endif
