/* txpub: transactional publishing for shell scripts, RocketMQ-style half
 * messages through the outbox, and PostgreSQL PREPARE TRANSACTION as a
 * last-resource commit. The in-doubt listing and resolution below are
 * also what `mqtx check` and `mqtx check --resolve` call.
 *
 * Every operation works on a message set built from the input; each
 * message ends in one of three states, which is what a script asks about:
 * CONFIRMED (the broker confirmed it; for --prepare: the outbox holds it),
 * not published (PENDING or FAILED: refused, rolled back, never sent) or
 * in doubt (UNKNOWN: handed over, no answer). */
#ifndef MQTX_TXPUB_H
#define MQTX_TXPUB_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "config/config.h"
#include "base/error.h"
#include "db/pg.h"
#include "txpub/input.h"
#include "base/msg.h"

/* One in-doubt item, for `mqtx check`. Strings are borrowed for the
 * duration of the callback. */
struct mqtx_indoubt {
	const char *kind;   /* "half-message" (outbox row in status prepared) or "prepared-xact" (gid mqtx:<key>) */
	const char *key;    /* idempotency key */
	int64_t id;         /* outbox id, 0 for prepared transactions */
	int64_t age_ms;     /* since prepared */
	const char *detail; /* human-readable: what is known, what --resolve would do */
};

/* Lists prepared half messages older than txpub.check_after and every
 * prepared transaction whose gid starts with "mqtx:". Calls cb per item. */
int mqtx_txpub_list_in_doubt(PGconn *conn, const struct mqtx_config *cfg,
			     void (*cb)(void *ctx, const struct mqtx_indoubt *item), void *ctx, struct mqtx_err *err);

struct mqtx_resolve_stats {
	int64_t committed;   /* half messages made pending / prepared xacts committed */
	int64_t rolled_back; /* half messages rolled back / prepared xacts rolled back */
	int64_t unknown;     /* left for a later check */
	int64_t failed;      /* a check-back or a statement failed */
};

/* Resolves what is in doubt: half messages through the configured
 * check-back (txpub.check_sql or txpub.check_command; past
 * txpub.check_max_age the default action applies), prepared transactions
 * through the coordinator record (confirmed -> COMMIT PREPARED, else older
 * than the timeout -> ROLLBACK PREPARED). Every decision is logged with
 * its reason. */
int mqtx_txpub_resolve(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_resolve_stats *st,
		       struct mqtx_err *err);

/* ---- messages ---- */

enum mqtx_txpub_mode {
	MQTX_TXPUB_AUTO, /* by capability: kafka-tx with fenced transactions, else --sql: tx with transactions, else confirm */
	MQTX_TXPUB_TX, /* MQTX_CAP_TRANSACTIONS without fencing: a broker transaction per batch (AMQP tx.select/commit) */
	MQTX_TXPUB_CONFIRM,  /* publisher confirms / delivery reports: every broker */
	MQTX_TXPUB_KAFKA_TX, /* MQTX_CAP_FENCED_TRANSACTIONS: one producer transaction per batch (Kafka) */
};

enum mqtx_txpub_confirm {
	MQTX_TXPUB_SYNC,  /* one message at a time */
	MQTX_TXPUB_BATCH, /* a batch, then wait for all its confirms */
	MQTX_TXPUB_ASYNC, /* a window of outstanding confirms */
};

/* Values that apply to every message unless its JSON line says otherwise.
 * Borrowed. */
struct mqtx_txpub_defaults {
	const char *destination;
	const char *routing_key;
	const char *ordering_key;
	const char *content_type;
	const char *key; /* an explicit key: only for a single message */
	const struct mqtx_input_header *headers;
	size_t n_headers;
	size_t batch_size;  /* messages per batch; 0: the whole input */
	size_t max_key_len; /* 255; --sql: 194 (the gid "mqtx:<key>" must fit 199 bytes) */
	/* The broker's backend, whose limits every message must meet
	 * (mqtx_backend_validate without a connection); NULL: none checked. */
	const struct mqtx_backend_ops *ops;
};

/* The messages of one run. msgs[] is contiguous, so batch b is the slice
 * [first(b), first(b) + len(b)). All strings are owned by the set. */
struct mqtx_txpub_set {
	struct mqtx_msg *msgs;
	const char **where;  /* per message: "stdin line 7" */
	const char **status; /* per message, outbox operations: status found or set ("prepared", ...) */
	size_t n;
	size_t batch_size;    /* 0: one batch */
	struct mqtx_input in; /* owns the strings msgs[] point at */
	char **owned;
	size_t n_owned;
};

/* Builds the set from in (whose contents it takes over; in is left
 * empty): applies the defaults, checks every message (destination given,
 * key lengths, no NUL in names) and gives every message without a key a
 * derived one (see mqtx-keys(7)):
 *   txpub:<sha256 hex of destination, NUL, routing key, NUL, payload>
 * with ":<n>" appended for the n-th (n >= 2) identical message of the
 * input. Two messages with the same key are an error. Returns NULL with
 * err (kind MQTX_E_INPUT) naming the message. */
struct mqtx_txpub_set *mqtx_txpub_set_new(struct mqtx_input *in, const struct mqtx_txpub_defaults *d,
					  struct mqtx_err *err);
void mqtx_txpub_set_free(struct mqtx_txpub_set *s);
size_t mqtx_txpub_batches(const struct mqtx_txpub_set *s);
/* The batch (0-based) message i belongs to. */
size_t mqtx_txpub_batch_of(const struct mqtx_txpub_set *s, size_t i);

struct mqtx_txpub_counts {
	size_t confirmed, not_published, in_doubt;
};
void mqtx_txpub_count(const struct mqtx_txpub_set *s, struct mqtx_txpub_counts *c);

/* What happened to a set's messages as a whole. */
enum mqtx_txpub_verdict {
	MQTX_TXPUB_ALL_CONFIRMED,
	MQTX_TXPUB_IN_DOUBT,       /* some outcome unknown: run the same command again */
	MQTX_TXPUB_NONE_PUBLISHED, /* nothing confirmed, nothing in doubt */
	MQTX_TXPUB_PARTIAL,        /* some confirmed, the rest not published */
};
enum mqtx_txpub_verdict mqtx_txpub_verdict(const struct mqtx_txpub_set *s);

struct mqtx_txpub_opts {
	enum mqtx_txpub_mode mode;
	enum mqtx_txpub_confirm confirm;
	size_t window;               /* async confirms: most outstanding */
	volatile sig_atomic_t *stop; /* a signal: stop handing over, settle what is out */
	int64_t stop_grace_ms;
};

/* The mode that applies: auto resolved for the broker URL's backend by
 * its capabilities. Fails (MQTX_E_CONFIG, exit 3) for a mode the broker
 * cannot do, saying so. Half messages (--prepare) need none of this. */
int mqtx_txpub_effective_mode(const struct mqtx_config *cfg, enum mqtx_txpub_mode mode, bool for_sql,
			      enum mqtx_txpub_mode *out, struct mqtx_err *err);
/* The same for a backend already found (ops from mqtx_backend_find). */
int mqtx_txpub_mode_for(const struct mqtx_backend_ops *ops, enum mqtx_txpub_mode mode, bool for_sql,
			enum mqtx_txpub_mode *out, struct mqtx_err *err);
const char *mqtx_txpub_mode_name(enum mqtx_txpub_mode m);

/* Direct publishing. Messages end CONFIRMED, FAILED/PENDING (not
 * published, with msgs[i].error saying why) or UNKNOWN (in doubt).
 * Publishing stops at the first batch (or, confirming one at a time, the
 * first message) that is not entirely confirmed; later ones stay PENDING.
 * Returns 0, or -1 with err when the broker could not be used at all
 * (nothing was sent) or the connection broke (see the states). */
int mqtx_txpub_publish(const struct mqtx_config *cfg, const struct mqtx_txpub_opts *o, struct mqtx_txpub_set *s,
		       struct mqtx_err *err);

/* ---- half messages ---- */

/* Inserts every message into the outbox as 'prepared' (the relay does not
 * see it) in one transaction. A key that exists already is left as it is;
 * s->status[i] says "prepared" (new or found), or the status found
 * ("pending", "sent", "dead", "rolled_back"). Messages stored or found are
 * CONFIRMED. Returns 0, or -1 with err (nothing was stored). */
int mqtx_txpub_prepare(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_txpub_set *s, struct mqtx_err *err);

/* One key of --commit / --rollback. */
struct mqtx_half_key {
	const char *key; /* borrowed */
	char before[16]; /* status found: "prepared", "pending", ..., or "" when there is no such row */
	bool changed;    /* this call resolved it */
};

enum mqtx_half_result {
	MQTX_HALF_DONE,     /* every key is now committed (or rolled back), some perhaps already were */
	MQTX_HALF_CONFLICT, /* a key was already resolved the other way: nothing was changed */
	MQTX_HALF_MISSING,  /* --commit: a key has no row: nothing was changed */
};

/* --commit (commit = true): prepared -> pending (the relay sends it);
 * --rollback: prepared -> rolled_back. All keys or none, in one
 * transaction. Returns an enum mqtx_half_result, or -1 with err. */
int mqtx_txpub_finish_half(PGconn *conn, const struct mqtx_config *cfg, bool commit, struct mqtx_half_key *keys,
			   size_t n, struct mqtx_err *err);

/* ---- PostgreSQL last-resource commit ---- */

enum mqtx_sql_outcome {
	MQTX_SQL_COMMITTED,   /* COMMIT PREPARED done */
	MQTX_SQL_ROLLED_BACK, /* the SQL failed, or nothing was published: ROLLBACK (PREPARED) done */
	MQTX_SQL_IN_DOUBT,    /* still prepared: mqtx check --resolve decides (see the log) */
	MQTX_SQL_DONE_BEFORE, /* an earlier run committed these keys; nothing was run */
};

struct mqtx_sql_result {
	enum mqtx_sql_outcome outcome;
	bool ran; /* the SQL was sent to the database */
	char gid[200];
};

/* Runs sql in a transaction together with inserting the messages into the
 * outbox (parked: pending, available_at = infinity), PREPARE TRANSACTION
 * 'mqtx:<first key>', publishes them, and COMMIT PREPARED once the broker
 * took them (or ROLLBACK PREPARED when it took none). The coordinator
 * record in mqtx_txpub_log is written before the broker can make a
 * message visible: in tx and kafka-tx modes after every message was
 * handed over and before the broker commit, in confirm mode before
 * publishing. Returns 0 (see r and the message states), or -1 with err
 * when nothing was done (r->outcome ROLLED_BACK) or the outcome is in
 * doubt (IN_DOUBT). */
int mqtx_txpub_sql(const struct mqtx_config *cfg, const struct mqtx_txpub_opts *o, const char *sql,
		   struct mqtx_txpub_set *s, struct mqtx_sql_result *r, struct mqtx_err *err);

/* ---- report (rendered by lib/render/txpub.c) ---- */

/* A message's state as the report names it: confirmed, not_published or in_doubt. */
const char *mqtx_txpub_state_name(enum mqtx_msg_state st);
/* Batch bi (0-based): its messages [*first, *last) and their state as a
 * whole: confirmed, not_published, partial or in_doubt. */
const char *mqtx_txpub_batch_state(const struct mqtx_txpub_set *s, size_t bi, size_t *first, size_t *last);

#endif
