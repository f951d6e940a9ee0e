/* The relay engine: claim a batch, publish it, record the outcome, repeat.
 * Used by `mqtx relay`. (redeliver's requeue does not run it: it sets dead
 * rows back to pending, and the relay sends them on its next claim.) */
#ifndef MQTX_RELAY_H
#define MQTX_RELAY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "base/error.h"
#include "db/retention.h"

struct mqtx_relay_stats {
	int64_t relayed; /* rows marked sent */
	int64_t failed;  /* failed attempts recorded (row stays pending) */
	int64_t dead;    /* rows that became dead */
	int64_t batches;
	int64_t claims; /* claims that ran (an empty one too): 0 means nothing was relayed or looked at */
	int64_t elapsed_ms;
	struct mqtx_retention_stats pruned; /* what retention deleted (see db/retention.h) */
	bool prune_ran;                     /* a retention pass ran (at the end of a one-shot run, always) */
	bool prune_failed;                  /* a pass failed on a database error (logged) */
};

struct mqtx_relay_opts {
	bool dry_run;                /* print what would be sent; change nothing */
	volatile sig_atomic_t *stop; /* set by a signal handler: finish up */
	const char *version;
	/* dry-run output goes here (stdout in cmd/); lib/ never picks a stream */
	void (*dry_run_row)(void *ctx, int64_t id, const char *key, const char *destination, const char *routing_key,
			    const char *ordering_key, size_t payload_len);
	void *ctx;
};

/* Runs until the outbox is drained (one-shot) or until *stop (relay.loop).
 * Returns 0, or -1 with err (MQTX_E_DB / MQTX_E_BROKER / MQTX_E_CONFIG). */
int mqtx_relay_run(const struct mqtx_config *cfg, const struct mqtx_relay_opts *opts, struct mqtx_relay_stats *stats,
		   struct mqtx_err *err);

#endif
