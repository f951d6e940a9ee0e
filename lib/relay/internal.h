/* Inside lib/relay/ only: the relay's state, shared by the status-mode
 * lanes (relay.c) and the tail-mode engine (tail.c). */
#ifndef MQTX_RELAY_INTERNAL_H
#define MQTX_RELAY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/ratelimit.h"
#include "broker/broker.h"
#include "db/outbox.h"
#include "db/retention.h"
#include "db/tail.h"
#include "relay/relay.h"

struct relay;
struct tail_state; /* tail.c */

/* One lane's connections and the verdict of its last drain. */
struct slot {
	PGconn *pg;
	struct mqtx_outbox *ob;
	struct mqtx_backend *be;
	struct relay *r;
	int index;
	pthread_t thread;
	struct mqtx_batch *first; /* claimed before the lane started, or NULL */
	int prc, frc;             /* -1: broker broken (perr) / database error (ferr) */
	struct mqtx_err perr, ferr;
	/* tail mode: each lane is a tail relay of its own (its buckets,
	 * locked on its connection) */
	struct mqtx_tail *tl;
	struct tail_state *ts;
	int trc; /* -1: the lane failed (terr; tbroker: on the broker) */
	bool tbroker;
	bool tstarved;     /* found nothing because the other lane held relay.max_messages' rest */
	int64_t treserved; /* of relay.reserved, this lane's */
	bool tprogress;    /* relayed or parked something */
	struct mqtx_err terr;
};

struct relay {
	const struct mqtx_config *cfg;
	const struct mqtx_relay_opts *opts;
	struct mqtx_relay_stats *stats;
	struct slot slots[2];
	char relay_id[300];
	int64_t last_heartbeat;
	char last_error[1024];
	int64_t reconnect_delay; /* the current reconnect step before jitter, 0 when connected */
	struct mqtx_ratelimit retry_log;
	int64_t claimed;           /* rows taken so far, for relay.max_messages */
	int64_t reserved;          /* tail mode: of those, reserved by a lane and not yet settled */
	pthread_mutex_t lock;      /* claimed, stats, last_heartbeat, halt */
	pthread_cond_t given_back; /* tail mode: a lane gave rows of relay.max_messages back */
	bool halt;                 /* a lane failed: the other one stops after its batch */
	/* retention, on lane 0's connection (see prune()) */
	struct mqtx_retention *rt;
	int64_t next_prune; /* mqtx_now_ms() when the next --loop pass is due */
	bool prune_warned, note_warned;
	/* tail mode (outbox.mode: tail), on lane 0's connection */
	int64_t started_ms; /* mqtx_now_ms() at the start of the run */
	bool tail;
};

/* relay.c */
bool mqtx_relay_stopping(const struct relay *r);
int mqtx_relay_publish(struct mqtx_backend *be, struct mqtx_batch *b, struct mqtx_err *err);
void mqtx_relay_log_failures(const struct mqtx_batch *b);
void mqtx_relay_log_dead(const struct relay *r, size_t dead, size_t dead_permanent);
void mqtx_relay_heartbeat(struct relay *r, struct mqtx_outbox *ob, bool batch_done, bool stopping);
void mqtx_relay_prune_if_due(struct relay *r);
/* a thread that leaves SIGINT, SIGTERM and SIGHUP to the main thread */
bool mqtx_relay_start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
/* closes the broker connections (after a broker failure) */
void mqtx_relay_drop_broker(struct relay *r);

/* tail.c: relays until nothing is left for this relay's buckets (or a
 * stop, or relay.max_messages); 0, or -1 with err. */
int mqtx_relay_tail_drain(struct relay *r, struct mqtx_err *err);
/* what a tail-mode run would relay now, through opts->dry_run_row */
int mqtx_relay_tail_dry_run(struct relay *r, struct mqtx_err *err);
/* forgets a lane's tail state (the connection that held its locks is gone) */
void mqtx_relay_tail_reset(struct slot *sl);

#endif
