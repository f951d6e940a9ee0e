/* See window.h. */
#include "broker/window.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/stop.h"
#include "base/util.h"

void mqtx_window_begin(struct mqtx_window *w, struct mqtx_msg *msgs, size_t n)
{
	w->call++;
	w->msgs = msgs;
	w->n = n;
	w->base = w->next;
	w->next += n;
	free(w->awaiting);
	w->awaiting = mqtx_xcalloc(n + 1, sizeof(bool));
	w->outstanding = 0;
	mqtx_keyset_free(&w->blocked);
	for (size_t i = 0; i < n; i++) {
		msgs[i].state = MQTX_MSG_PENDING;
		msgs[i].error[0] = '\0';
	}
}

void mqtx_window_end(struct mqtx_window *w, const char *why)
{
	for (size_t i = 0; i < w->n && w->msgs != NULL; i++) {
		if (!w->awaiting[i])
			continue;
		w->msgs[i].state = MQTX_MSG_UNKNOWN;
		snprintf(w->msgs[i].error, sizeof(w->msgs[i].error), "%.255s", why);
	}
	w->msgs = NULL;
	w->n = 0;
	w->outstanding = 0;
	free(w->awaiting);
	w->awaiting = NULL;
}

bool mqtx_window_index(const struct mqtx_window *w, uint64_t tok, size_t *i)
{
	if (w->msgs == NULL || tok < w->base || tok - w->base >= w->n)
		return false;
	*i = (size_t)(tok - w->base);
	return true;
}

void mqtx_window_free(struct mqtx_window *w)
{
	free(w->awaiting);
	w->awaiting = NULL;
	mqtx_keyset_free(&w->blocked);
}

bool mqtx_broker_stopping(volatile sig_atomic_t *stop)
{
	return stop != NULL && *stop != 0;
}

int64_t mqtx_broker_until(volatile sig_atomic_t *stop, int64_t grace_ms, int64_t deadline)
{
	if (mqtx_broker_stopping(stop)) {
		int64_t sd = mqtx_stop_deadline(stop, grace_ms);
		if (sd < deadline)
			return sd;
	}
	return deadline;
}
