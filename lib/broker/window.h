/* The in-flight window of one publish call and the stop-aware deadline,
 * shared by the backends whose answers come back later, each tagged with a
 * token (Kafka delivery reports, JetStream publish acks). Private to
 * lib/broker: included only by the backends. */
#ifndef MQTX_BROKER_WINDOW_H
#define MQTX_BROKER_WINDOW_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/msg.h"

/* Zero-initialised it is empty; set next to 1 before the first call. */
struct mqtx_window {
	uint64_t call; /* publish calls so far */
	/* The call in progress: msgs[i] (borrowed) carries token base + i;
	 * answers with tokens outside [base, base + n) belong to an earlier
	 * call and are dropped. */
	struct mqtx_msg *msgs;
	bool *awaiting; /* owned: awaiting[i]: msgs[i] was handed over, no answer yet */
	uint64_t base;
	size_t n;
	size_t outstanding;
	uint64_t next;              /* the next call's base */
	struct mqtx_keyset blocked; /* ordering keys with a failed message in this call */
};

/* Starts a call over msgs[0..n): every message PENDING, nothing awaited. */
void mqtx_window_begin(struct mqtx_window *w, struct mqtx_msg *msgs, size_t n);
/* Ends the call: messages still awaiting an answer become UNKNOWN with why;
 * later answers for this call are dropped. */
void mqtx_window_end(struct mqtx_window *w, const char *why);
/* True with *i when tok names a message of the call in progress. */
bool mqtx_window_index(const struct mqtx_window *w, uint64_t tok, size_t *i);
/* Frees what the window owns (at close). */
void mqtx_window_free(struct mqtx_window *w);

/* Whether a stop was asked for (stop may be NULL: never). */
bool mqtx_broker_stopping(volatile sig_atomic_t *stop);
/* The time to wait until: deadline, or the end of the stop grace (counted
 * from when the process first saw the stop) when that comes first. */
int64_t mqtx_broker_until(volatile sig_atomic_t *stop, int64_t grace_ms, int64_t deadline);

#endif
