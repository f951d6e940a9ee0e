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

/* PostgreSQL's longest name, in bytes. */
#define MQTX_PG_NAME_MAX 63

/* The name of an object mqtx derives from the outbox table's:
 * "<table>_<suffix>" when that fits in MQTX_PG_NAME_MAX bytes, else a
 * readable prefix of the table name, a hash of schema and table and the
 * suffix (unique per (schema, table); as lib/db/schema.c names indexes). */
void mqtx_partition_name(const char *schema, const char *table, const char *suffix, char out[MQTX_PG_NAME_MAX + 1]);

/* The partitions of the current period and the MQTX_PARTITIONS_AHEAD
 * after it (UTC; by is "hour" or "day"), as the server's clock says:
 * names ("<table>_pYYYYMMDD[HH]", see mqtx_partition_name) and bounds
 * (timestamptz literals, without quotes). */
struct mqtx_partition_period {
	char name[MQTX_PG_NAME_MAX + 1];
	char from[40], to[40];
};
int mqtx_partitions_periods(PGconn *conn, const struct mqtx_config *cfg, const char *by,
			    struct mqtx_partition_period out[MQTX_PARTITIONS_AHEAD + 1], struct mqtx_err *err);

/* Whether the outbox is a partitioned table whose idempotency key is
 * unique together with its created_at column only (the unique key
 * `mqtx init --partition-by` makes): 1, 0, or -1 with err. */
int mqtx_partitions_key_unique_per_period(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);

/* Row retention on a partitioned outbox: a condition on alias t (in
 * *guard, malloc'd) that retention ANDs to the sent and rolled_back
 * kinds, so that rows of a partition whose range has not ended
 * outbox.retention ago are left for the DROP of their partition (no dead
 * tuples), while those of an expired partition kept for a row in it, and
 * of the default partition, still go row by row (at most one period later
 * than without partitions). *guard NULL: no guard (outbox.partition_by
 * none, retention off, or the table is not partitioned by range of
 * created_at). 0, or -1 with err. */
int mqtx_partitions_row_guard(PGconn *conn, const struct mqtx_config *cfg, char **guard, struct mqtx_err *err);

/* Partition upkeep, on conn (autocommit, no transaction open):
 * - creates the partitions of the current period and the next
 *   MQTX_PARTITIONS_AHEAD that are missing;
 * - when deletable_sql is not NULL (retention is on): drops partitions
 *   whose whole range is older than now and that hold no row for which
 *   deletable_sql (a condition on alias t) is false.
 * Partitions are only those of a table partitioned by range of its
 * created_at column (timestamptz); bounds are read from the catalogue, so
 * an adopted table with partitions of its own works too: a period that
 * overlaps an existing partition is not created, a period whose rows are
 * in the default partition already is left to the default. The default
 * partition is never dropped. Only one session at a time does the upkeep
 * of an outbox (a session advisory lock; the others skip it).
 * A partition is dropped when its range ended longer ago than
 * outbox.retention and it holds no row to keep: looked at without locks
 * first, then DETACH, a cheap second look (indexed) and DROP in one
 * transaction under lock_timeout 100ms.
 * Counts what it did in *created / *dropped. A lock it could not get in
 * time is not an error and says nothing (the next pass tries again); a
 * missing privilege, an outbox not partitioned (although
 * outbox.partition_by is set) or partitioned another way: warning (size
 * wsize, set only when empty) says so. Stops early past deadline_ms
 * (mqtx_now_ms() clock; 0: none). 0, or -1 with err. */
int mqtx_partitions_maintain(PGconn *conn, const struct mqtx_config *cfg, const char *deletable_sql,
			     int64_t deadline_ms, int64_t *created, int64_t *dropped, char *warning, size_t wsize,
			     struct mqtx_err *err);

#endif
