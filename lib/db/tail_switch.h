/* Switching an outbox between outbox.mode tail and status (see
 * mqtx-init(1), "TAIL MODE"). status -> tail is mqtx init with outbox.mode
 * tail (schema.c adds the txid column, the trigger and the checkpoint and
 * parked tables). tail -> status is the handback here: what tail relays
 * relayed is written into the rows (status 'sent'), what they parked too
 * ('dead', attempts and retry times), then the outbox's checkpoint and
 * parked rows go, and status relays may run again. */
#ifndef MQTX_DB_TAIL_SWITCH_H
#define MQTX_DB_TAIL_SWITCH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "config/config.h"

/* Number of checkpoint rows (tail buckets) the outbox of cfg has: 0 when
 * none or when there is no checkpoint table, -1 with err. */
int64_t mqtx_tail_checkpoint_count(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);

struct mqtx_tail_handback_stats {
	int64_t sent;    /* relayed rows marked 'sent' */
	int64_t dead;    /* parked dead rows marked 'dead' */
	int64_t retry;   /* parked rows waiting for a retry: attempts and available_at kept */
	int64_t blocked; /* parked behind another row of their key: left 'pending' */
};

/* Hands a tail-mode outbox back to status mode: refuses (MQTX_E_CONFIG)
 * while a tail relay runs; marks the rows the tail relays relayed 'sent'
 * in batches of 10,000 (one transaction each), writes the parked rows'
 * state into their rows, then deletes the outbox's parked and checkpoint
 * rows (last: a run cut short is simply run again). dry_run only counts.
 * 0, or -1 with err. */
int mqtx_tail_handback(PGconn *conn, const struct mqtx_config *cfg, bool dry_run, struct mqtx_tail_handback_stats *st,
		       struct mqtx_err *err);

#endif
