/* Retention: deleting what mqtx wrote once nothing needs it any more
 * (mqtx.yaml(5), "Retention"). One place decides what may go:
 *
 *   sent rows         sent_at older than outbox.retention; with completion
 *                     tracking (outbox.retain_uncompleted) only those a
 *                     consumer completed, or whose sent_at is older than
 *                     outbox.retain_uncompleted
 *   rolled_back rows  txpub half messages rolled back (available_at)
 *                     longer ago than outbox.retention
 *   dead rows         only with outbox.dead_retention: last attempt
 *                     (available_at) longer ago than that
 *   mqtx_relays       this outbox's stopped relays: stopped longer ago than
 *                     outbox.retention, or beyond the newest
 *                     MQTX_RETENTION_KEEP_STOPPED; relays that never said
 *                     they stopped: silent for longer than outbox.retention,
 *                     check.relay_stale and check.relay_forget
 *   mqtx_completions  completed longer ago than outbox.retention and
 *                     outbox.retain_uncompleted, once this outbox holds no
 *                     row with the key
 *
 * Never: pending rows, prepared half messages, mqtx_txpub_log (in-doubt
 * txpub --sql records), dead rows without outbox.dead_retention. With
 * outbox.retention off nothing is deleted.
 *
 * Rows go in batches of MQTX_RETENTION_BATCH, each one statement of its
 * own (autocommit): candidates are locked FOR UPDATE SKIP LOCKED, so
 * pruners running at once take different rows, and a row another session
 * holds (a claim, a redeliver) is left for the next pass. */
#ifndef MQTX_DB_RETENTION_H
#define MQTX_DB_RETENTION_H

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "config/config.h"

#define MQTX_RETENTION_BATCH 2000
#define MQTX_RETENTION_KEEP_STOPPED 50

enum mqtx_retention_kind {
	MQTX_RET_SENT,
	MQTX_RET_ROLLED_BACK,
	MQTX_RET_DEAD,
	MQTX_RET_RELAYS,
	MQTX_RET_COMPLETIONS,
	MQTX_RET__COUNT
};

struct mqtx_retention_stats {
	int64_t deleted[MQTX_RET__COUNT];
	int64_t partitions_created, partitions_dropped;
	bool more; /* the deadline or a stop came with rows left to delete */
	/* A problem that turns a part of retention off for this connection
	 * (no DELETE privilege, a table missing): said once, not an error.
	 * "" when none. */
	char warning[512];
};

struct mqtx_retention;

/* Binds to the configured outbox on conn (borrowed, must outlive rt).
 * NULL with err when the outbox table cannot be looked at. */
struct mqtx_retention *mqtx_retention_new(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err);
void mqtx_retention_free(struct mqtx_retention *rt);
/* Why relayed rows are never deleted although outbox.retention is on (the
 * table has no sent_at column), or NULL; borrowed. */
const char *mqtx_retention_note(const struct mqtx_retention *rt);
/* Whether kind is pruned at all with this configuration and table. */
bool mqtx_retention_enabled(const struct mqtx_retention *rt, enum mqtx_retention_kind kind);

/* One pass: partition upkeep first (outbox.partition_by: partitions
 * ahead, expired ones dropped), then each kind in batches until none is
 * left, deadline_ms (mqtx_now_ms() clock; 0: none) has passed or *stop is
 * set (stop may be NULL). At least one batch of each kind runs, even past
 * the deadline. Adds to st. 0, or -1 with err (a database error). */
int mqtx_retention_run(struct mqtx_retention *rt, int64_t deadline_ms, volatile sig_atomic_t *stop,
		       struct mqtx_retention_stats *st, struct mqtx_err *err);

/* What the next pass would delete, for mqtx check: per kind, how many rows
 * (counted up to limit: capped says there are more) and, for the outbox
 * kinds, how long the oldest of them has been due (-1: none), so that a
 * pruning that stopped is visible. */
struct mqtx_retention_preview {
	int64_t due[MQTX_RET__COUNT];
	bool capped[MQTX_RET__COUNT];
	int64_t overdue_ms;
};
int mqtx_retention_preview(struct mqtx_retention *rt, int64_t limit, struct mqtx_retention_preview *p,
			   struct mqtx_err *err);

/* A short name of kind for messages and metrics ("sent", "relays", ...). */
const char *mqtx_retention_kind_name(enum mqtx_retention_kind kind);

#endif
