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
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "config/config.h"

/* Number of checkpoint rows (tail buckets) the outbox of cfg has: 0 when
 * none or when there is no checkpoint table, -1 with err. */
int64_t mqtx_tail_checkpoint_count(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);

struct mqtx_tail_handback_stats {
	int64_t checkpoints; /* checkpoint rows (buckets) of the outbox */
	int64_t sent;        /* rows relayed in tail mode: 'pending' -> 'sent' */
	int64_t dead;        /* parked dead: 'pending' -> 'dead' (attempts, last_error) */
	int64_t retry;       /* parked for a retry or a delivery time: stay 'pending' (attempts, available_at) */
	int64_t blocked;     /* parked behind an earlier row of their key: stay 'pending' */
	int64_t parked;      /* parked rows of the outbox (deleted at the end) */
};

/* The handback, tail -> status, for the outbox of cfg (outbox.mode is not
 * looked at): refuses with MQTX_E_CONFIG while a tail relay of the outbox
 * runs (and keeps new ones out while it works); covered, not parked
 * 'pending' rows become 'sent' (sent_at now()), in transactions of 10,000
 * rows; parked dead rows become 'dead', parked retry rows keep 'pending'
 * with their attempts and retry time; then the outbox's parked and
 * checkpoint rows are deleted, in one transaction. Safe to run again after
 * a crash at any point. Needs no open transaction on conn. st gets what
 * was changed. Returns 1 when the outbox was handed back, 0 when it has
 * no checkpoint rows (nothing to do), -1 with err. */
int mqtx_tail_handback(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_tail_handback_stats *st,
		       struct mqtx_err *err);

/* What the handback would change, without changing anything (st as for
 * mqtx_tail_handback). 1, 0 (no checkpoint rows), or -1 with err. */
int mqtx_tail_handback_count(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_tail_handback_stats *st,
			     struct mqtx_err *err);

/* SQL comment lines (owned) for mqtx init --print: that init hands the
 * outbox `qualified` back to status mode, with the counts of st. */
char *mqtx_tail_handback_comment(const char *qualified, const struct mqtx_tail_handback_stats *st);

#endif
