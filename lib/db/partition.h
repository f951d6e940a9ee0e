/* Range partitions of an outbox created with outbox.partition_by (hour or
 * day) by created_at: the names, the DDL `mqtx init` prints, and the
 * upkeep the relay does (partitions ahead, expired ones dropped whole).
 * See mqtx.yaml(5), "Partitions". */
#ifndef MQTX_DB_PARTITION_H
#define MQTX_DB_PARTITION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "config/config.h"

/* Partitions kept ahead of now: the current period and this many after it. */
#define MQTX_PARTITIONS_AHEAD 3

/* Partition upkeep, on conn (autocommit, no transaction open):
 * - creates the partitions of the current period and the next
 *   MQTX_PARTITIONS_AHEAD that are missing;
 * - when deletable_sql is not NULL (retention is on): drops partitions
 *   whose whole range is older than now and that hold no row for which
 *   deletable_sql (a condition on alias t) is false.
 * Counts what it did in *created / *dropped. A missing privilege or a lock
 * it could not get in time is not an error: warning (size wsize) says so
 * and the next pass tries again. Stops early past deadline_ms
 * (mqtx_now_ms() clock; 0: none). 0, or -1 with err. */
int mqtx_partitions_maintain(PGconn *conn, const struct mqtx_config *cfg, const char *deletable_sql,
			     int64_t deadline_ms, int64_t *created, int64_t *dropped, char *warning, size_t wsize,
			     struct mqtx_err *err);

#endif
