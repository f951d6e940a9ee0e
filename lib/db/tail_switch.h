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

#endif
