/* dedupe-audit: compares the deliveries a source actually saw (a Kafka
 * topic, a RabbitMQ stream or queue, a NATS JetStream stream, a consumer's
 * inbox table, a JSONL capture) with the outbox table, and reports duplicates, losses,
 * strangers, out-of-order deliveries and gaps.
 *
 * Deliveries are streamed, sorted by outbox id in bounded memory (runs
 * spill to temporary files) and merged with the outbox, which PostgreSQL
 * streams in id order; deliveries without a usable id are matched by key
 * in temporary tables. This process holds a bounded buffer and the capped
 * detail lists, whatever the number of deliveries. */
#ifndef MQTX_AUDIT_H
#define MQTX_AUDIT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "config/config.h"
#include "base/error.h"

#define MQTX_AUDIT_NO_TS MQTX_READ_NO_TS

/* Parses "first", a whole number (offset), an RFC 3339 time
 * (2024-05-01T12:00:00Z, fractions and +hh:mm allowed) or a duration ago
 * ("90m": 90 minutes before now_us). what names the option for errors. */
int mqtx_audit_parse_pos(const char *s, const char *what, int64_t now_us, struct mqtx_read_pos *out,
			 struct mqtx_err *err);
/* The same for --since/--until: a time or a duration ago (no offsets). */
int mqtx_audit_parse_time(const char *s, const char *what, int64_t now_us, int64_t *us, struct mqtx_err *err);
/* Formats microseconds since the epoch as RFC 3339 UTC with milliseconds. */
void mqtx_audit_format_time(int64_t us, char *out, size_t outlen);

struct mqtx_audit_opts {
	const char *source;            /* URL, path, or "-" for stdin */
	struct mqtx_read_pos from, to; /* broker sources: where to start and stop */
	bool has_since, has_until;
	int64_t since_us, until_us;      /* sent_at window; until defaults to the audit's start */
	const char *const *destinations; /* outbox destinations to expect (NULL: inferred) */
	size_t n_destinations;
	bool destructive;            /* allow consuming a classic or quorum queue */
	int64_t max_details;         /* per finding */
	int64_t max_duplicates;      /* the tolerance: unexplained duplicated keys, */
	int64_t max_missing;         /* and missing messages, within the verdict OK */
	volatile sig_atomic_t *stop; /* a signal ends reading early (the report says so) */
};

/* Where one delivery was seen. partition -1: none; offset -1: none. The
 * offset is the source's own position: a Kafka or stream offset, a
 * JetStream stream sequence, a JSONL line number, a queue delivery number,
 * an inbox row number. */
struct mqtx_audit_where {
	int32_t partition;
	int64_t offset;
	int64_t ts_us; /* MQTX_AUDIT_NO_TS when unknown */
	int64_t redelivery_count;
};

struct mqtx_audit_dup {
	char *key;
	int64_t outbox_id;             /* 0: a stranger */
	int64_t count;                 /* deliveries of the key */
	int64_t distinct_redeliveries; /* distinct x-mqtx-redelivery-count values among them */
	bool explained;                /* every copy carries its own redelivery count */
	struct mqtx_audit_where *where;
	size_t n_where; /* at most 10 shown */
};

struct mqtx_audit_row {
	char *key;
	int64_t outbox_id;
	char *ordering_key; /* may be NULL */
	char *status;       /* outbox status, may be NULL */
	int64_t sent_at_us; /* MQTX_AUDIT_NO_TS when unknown */
	int64_t count;      /* strangers: deliveries of the key */
	int64_t after_id; /* out of order: the later outbox id delivered before this one; gaps: lowest delivered id of the key */
	int64_t before_id;             /* gaps: highest delivered id of the key */
	struct mqtx_audit_where where; /* strangers, out of order: the (first) delivery */
};

struct mqtx_audit_list {
	struct mqtx_audit_row *rows;
	size_t n;
};

struct mqtx_audit_report {
	char source[512];     /* redacted */
	const char *kind;     /* "kafka", "stream", "queue", "jetstream", "inbox", "jsonl" */
	const char *position; /* what a where.offset means: "offset", "sequence", "line", "delivery", "row" */
	char detail[512];     /* partitions and offsets read, how reading ended */
	bool stopped;         /* a signal ended reading early */

	int64_t deliveries;
	int64_t distinct_keys;
	int64_t unkeyed; /* deliveries without an idempotency key (counted as strangers) */

	/* the window */
	bool has_since;
	int64_t since_us, until_us;
	char **destinations; /* those checked for losses and gaps */
	size_t n_destinations;
	bool destinations_inferred;
	bool losses_checked; /* false: no destination known (nothing matched, none given) */
	bool sent_at_known;  /* the outbox has a sent_at column */
	int64_t outbox_sent; /* rows sent within the window (for the destinations) */

	int64_t dup_keys, dup_extra; /* keys seen more than once; copies beyond the first */
	int64_t dup_explained_keys, dup_unexplained_keys;
	int64_t dup_unexplained_extra; /* copies not explained by a redelivery count */
	int64_t missing;
	int64_t stranger_keys, stranger_deliveries;
	int64_t delivered_unsent; /* delivered, but the outbox row is not 'sent' (pending, dead, ...) */
	bool order_checked;
	char order_note[160]; /* why not, or how */
	int64_t order_keys;   /* ordering keys delivered */
	int64_t out_of_order, out_of_order_keys;
	int64_t gaps, gap_keys;

	struct mqtx_audit_dup *dups;
	size_t n_dups;
	struct mqtx_audit_list missing_rows, strangers, order_rows, gap_rows;

	/* the consumer's table (inbox sources) */
	bool has_table;
	char table[300];
	char key_column[130];
	bool table_unique;
	char table_unique_by[300]; /* "constraint x" / "unique index y" */

	/* the verdict, judged with the tolerance of the options */
	int64_t max_duplicates, max_missing;
	bool duplicates_over; /* dup_unexplained_keys > max_duplicates */
	bool missing_over;    /* losses checked and missing > max_missing */
	int status;           /* enum mqtx_audit_status: dedupe-audit's exit status */

	int64_t elapsed_ms, read_ms;
};

/* The verdict as dedupe-audit's exit status (mqtx-dedupe-audit(1)). */
enum mqtx_audit_status {
	MQTX_AUDIT_OK = 0,
	MQTX_AUDIT_DUPLICATES = 1, /* more duplicated keys than tolerated */
	MQTX_AUDIT_MISSING = 8,    /* more missing messages than tolerated */
	MQTX_AUDIT_BOTH = 9,
};

/* Runs an audit. Connects to cfg's database, reads the source, compares.
 * Fills rep (free with mqtx_audit_report_free) or returns -1 with err:
 * MQTX_E_USAGE for a source or option that does not fit, MQTX_E_CONFIG,
 * MQTX_E_DB, MQTX_E_BROKER, MQTX_E_INPUT for bad input (naming the source
 * and line), MQTX_E_IO for an unreadable file. */
int mqtx_audit_run(const struct mqtx_config *cfg, const struct mqtx_audit_opts *o, struct mqtx_audit_report *rep,
		   struct mqtx_err *err);
void mqtx_audit_report_free(struct mqtx_audit_report *rep);

#endif
