/* Stopping within a grace period. cmd/'s signal handler sets a flag: 1
 * asks for a stop within the command's grace, 2 (a second signal) for a
 * stop at once. Every wait that can last longer than the grace asks
 * mqtx_stop_deadline() when to give up, so all waits of the process end
 * by the same moment, counted from when the stop was first noticed. */
#ifndef MQTX_STOP_H
#define MQTX_STOP_H

#include <signal.h>
#include <stdint.h>

/* The mqtx_now_ms() time by which a wait must end: INT64_MAX while flag is
 * NULL or *flag is 0; once it is set, the moment any caller in the process
 * first saw it plus grace_ms; once *flag >= 2, at most the moment that was
 * first seen (the grace is over). Thread-safe. */
int64_t mqtx_stop_deadline(volatile sig_atomic_t *flag, int64_t grace_ms);

/* The longest a single wait may block now when it would otherwise wait
 * until `until`: at most slice_ms (so that a stop is noticed in time),
 * never past the stop deadline; 0 when either has passed. */
int64_t mqtx_stop_wait_ms(int64_t until, volatile sig_atomic_t *flag, int64_t grace_ms, int64_t slice_ms);

#endif
