/* Tail mode: the relay's statements (lib/relay/tail.c drives them).
 *
 * A relay owns some buckets (session advisory locks on its connection)
 * and keeps them in groups at the same checkpoint. Per group, an interval
 * (prev, cur) is opened with a snapshot, bounded by the ids of its rows,
 * and read in primary-key order in chunks; after the broker answered, one
 * statement records the chunk: the parked rows it made, and the group's
 * new position. Parked rows are released by a pass of their own. */
#ifndef MQTX_DB_TAIL_RELAY_H
#define MQTX_DB_TAIL_RELAY_H

#include "db/outbox.h"
#include "db/tail.h"

struct mqtx_tail_group {
	int *buckets; /* owned, ascending */
	size_t n;
	char *prev;         /* pg_snapshot text; NULL: from the beginning */
	char *cur;          /* NULL: no interval open */
	int64_t pos;        /* with cur: the last id of the interval done */
	int64_t max;        /* with cur and bounded: the interval's last id */
	bool bounded;       /* max is known (after mqtx_tail_bounds) */
	int64_t written_ms; /* mqtx_now_ms() of the last checkpoint write, 0: none yet */
};

enum mqtx_tail_act {
	MQTX_TAIL_PUBLISH,
	MQTX_TAIL_BLOCK,   /* park 'blocked': its key waits for an earlier row */
	MQTX_TAIL_DELAY,   /* park 'retry' until its available_at */
	MQTX_TAIL_REBLOCK, /* parked already and back in the tail (its txid was bumped): 'blocked' */
};

/* A chunk of an interval, or of parked rows (then scan_end is unused). */
struct mqtx_tail_chunk {
	struct mqtx_batch *b; /* b->attempts: attempts so far */
	int64_t scan_end;     /* the position after this chunk */
	bool scan_done;       /* the scan reached the interval's end */
	bool *later;          /* available_at > now() */
	int *bucket;
	char *parked;            /* 0, or the parked state's first letter: 'r' retry, 'b' blocked, 'd' dead */
	bool *behind;            /* its ordering key has other rows parked (not dead) */
	enum mqtx_tail_act *act; /* decided by the caller before publishing */
};
void mqtx_tail_chunk_free(struct mqtx_tail_chunk *c);

/* Takes and gives back buckets so this connection holds its fair share:
 * buckets / live tail connections (each relay lane is one), one more for
 * the first buckets % connections of them by backend pid. own[] (mqtx_tail_buckets() entries)
 * says what this connection holds; *changed is set when it changed. */
int mqtx_tail_rebalance(struct mqtx_tail *tl, bool *own, bool *changed, struct mqtx_err *err);
/* Groups the checkpoints of the buckets in own[] (all when own is NULL). */
int mqtx_tail_load(struct mqtx_tail *tl, const bool *own, struct mqtx_tail_group **groups, size_t *n,
		   struct mqtx_err *err);
void mqtx_tail_groups_free(struct mqtx_tail_group *g, size_t n);
/* Merges groups at the same checkpoint with no interval open. */
void mqtx_tail_groups_merge(struct mqtx_tail_group *g, size_t *n);
/* pg_current_snapshot() as text (owned), or NULL with err. */
char *mqtx_tail_snapshot(struct mqtx_tail *tl, struct mqtx_err *err);
/* Rows of the group's buckets in the interval (prev, cur): how many, and
 * the first and last id. */
int mqtx_tail_bounds(struct mqtx_tail *tl, const struct mqtx_tail_group *g, const char *cur, int64_t *count,
		     int64_t *min, int64_t *max, struct mqtx_err *err);
/* The next chunk of g's open interval: rows after g->pos, at most limit
 * of them (scanning at most scan ids). */
struct mqtx_tail_chunk *mqtx_tail_fetch(struct mqtx_tail *tl, const struct mqtx_tail_group *g, size_t limit,
					size_t scan, struct mqtx_err *err);
/* mqtx_tail_fetch in two halves, so that the database reads a chunk while
 * the caller waits for the broker: _send asks for the rows after pos (not
 * g->pos) and returns at once; _recv (same g, limit and scan) waits for
 * them. Nothing else may run on the connection in between. */
int mqtx_tail_fetch_send(struct mqtx_tail *tl, const struct mqtx_tail_group *g, int64_t pos, size_t limit, size_t scan,
			 struct mqtx_err *err);
struct mqtx_tail_chunk *mqtx_tail_fetch_recv(struct mqtx_tail *tl, const struct mqtx_tail_group *g, size_t limit,
					     size_t scan, struct mqtx_err *err);
/* The parked rows of the owned buckets that may go now, heads of their
 * keys first, at most limit. */
struct mqtx_tail_chunk *mqtx_tail_fetch_parked(struct mqtx_tail *tl, const bool *own, size_t limit,
					       struct mqtx_err *err);

struct mqtx_tail_outcome {
	size_t sent, failed, dead, dead_permanent, parked;
};
/* Records chunk rows [0, settled) — each row's act and, for published
 * ones, its broker answer — and the group's new checkpoint (g's prev, cur,
 * pos as the caller set them), in one transaction. */
int mqtx_tail_record(struct mqtx_tail *tl, const struct mqtx_tail_group *g, const struct mqtx_tail_chunk *c,
		     size_t settled, const char *relay_id, struct mqtx_tail_outcome *out, struct mqtx_err *err);
/* Records the outcome of a parked chunk. */
int mqtx_tail_record_parked(struct mqtx_tail *tl, const struct mqtx_tail_chunk *c, struct mqtx_tail_outcome *out,
			    struct mqtx_err *err);
/* Writes g's checkpoint alone (an empty interval passed). */
int mqtx_tail_write_checkpoint(struct mqtx_tail *tl, const struct mqtx_tail_group *g, const char *relay_id,
			       struct mqtx_err *err);
/* Forgets parked rows (not dead) of the owned buckets whose outbox row is
 * gone or no longer pending (a half message rolled back). */
int mqtx_tail_forget_parked(struct mqtx_tail *tl, const bool *own, struct mqtx_err *err);

#endif
