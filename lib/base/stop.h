/* Stopping within a grace period. cmd/'s signal handler sets a flag: 1
 * asks for a stop within the command's grace, 2 (a second signal) for a
 * stop at once. Every wait that can last longer than the grace asks
 * mqtx_stop_deadline() when to give up, so all waits of the process end
 * by the same moment, counted from when the stop was first noticed. */
#ifndef MQTX_STOP_H
#define MQTX_STOP_H

#include <signal.h>
#include <stdbool.h>
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

/* ---- the watchdog ----
 * Some waits happen inside libraries that cannot be told to give up (a
 * libpq query on a stalled link, a rabbitmq-c handshake). While the
 * watchdog runs, sockets registered with mqtx_stop_watch() are shut down
 * (shutdown(2); their owner still closes them) when the grace has run
 * out, so that such a wait fails at once. Only one watchdog per process. */

/* Starts the watchdog for the stop in *flag: the grace runs out at
 * mqtx_stop_deadline(flag, answers_ms) + reserve_ms. False when no thread
 * could be started (then nothing is cut). */
bool mqtx_stop_watchdog_start(volatile sig_atomic_t *flag, int64_t answers_ms, int64_t reserve_ms);
void mqtx_stop_watchdog_end(void);
/* When the watchdog cuts the sockets; INT64_MAX without a stop or watchdog. */
int64_t mqtx_stop_cut_deadline(void);
/* Registers fd (ignored when negative); unregister it before closing it. */
void mqtx_stop_watch(int fd);
void mqtx_stop_unwatch(int fd);

#endif
