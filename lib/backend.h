/* The broker interface. A backend is one file in lib/ that fills a
 * `const struct mqtx_backend_ops`; commands only call the wrappers below and
 * never look inside. Backends are picked by URL scheme. */
#ifndef MQTX_BACKEND_H
#define MQTX_BACKEND_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "msg.h"

enum mqtx_pub_mode {
	MQTX_PUB_CONFIRM, /* per-message acknowledgements (AMQP confirms, Kafka delivery reports) */
	MQTX_PUB_TX,      /* broker transactions: AMQP tx.select/commit, Kafka transactions */
};

struct mqtx_backend_opts {
	enum mqtx_pub_mode mode;
	size_t window;               /* most unconfirmed messages in flight */
	const char *transactional_id; /* Kafka transactions: stable id for fencing */
	const char *client_name;     /* shown by the broker (connection name) */
	/* When *stop becomes non-zero (a signal), publish() hands over no more
	 * messages and waits at most stop_grace_ms for outstanding answers. */
	volatile sig_atomic_t *stop;
	int64_t stop_grace_ms;
	/* Optional, TX mode: called in every publish() once each message was
	 * handed over (AMQP: and accepted, no channel error; Kafka: and
	 * acknowledged by a delivery report), just before the broker commit.
	 * Non-zero rolls the transaction back instead: every message FAILED
	 * with err's message, and publish() returns 0. txpub --sql writes its
	 * coordinator record here, before any message can become visible. */
	int (*before_commit)(void *ctx, struct mqtx_err *err);
	void *before_commit_ctx;
};

/* Facts about a destination, for `mqtx check --broker`. */
struct mqtx_dest_info {
	bool exists;
	long long depth;     /* queue depth, -1 when not applicable */
	long long consumers; /* consumer count, -1 when not applicable */
	char detail[256];
};

/* One message taken from an ack source by consume(). Borrowed from the
 * backend until the next consume(), consume_ack() or close(). */
struct mqtx_delivery {
	const void *body;
	size_t body_len;
	const char *key_header; /* header x-mqtx-idempotency-key (NUL-terminated), or NULL */
	size_t key_header_len;
};

/* What consume() reads: an AMQP queue, or a Kafka topic read by a consumer group. */
struct mqtx_consume_opts {
	const char *source; /* queue (AMQP) or topic (Kafka) */
	const char *group;  /* Kafka consumer group; unused by AMQP */
	size_t max;         /* most messages per call */
	int64_t wait_ms;    /* how long to wait for a message before calling the source drained */
};

struct mqtx_backend;

struct mqtx_backend_ops {
	const char *name;
	const char *const *schemes; /* NULL-terminated: "amqp", "amqps" */
	/* TX mode with a stable transactional id that fences an older producer
	 * with the same id (Kafka). */
	bool fenced_transactions;

	/* Connects. Returns an owned backend or NULL with err (kind MQTX_E_BROKER).
	 * cfg must outlive the backend (consume() reads its settings later). */
	struct mqtx_backend *(*open)(const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
				     struct mqtx_err *err);
	void (*close)(struct mqtx_backend *b);

	/* Publishes msgs[0..n) in order, waiting until every message has an
	 * outcome (CONFIRMED, FAILED or UNKNOWN) or confirm_timeout passes.
	 * Returns 0 while the connection stays usable, -1 with err when it
	 * broke (the caller reconnects; messages left UNKNOWN may or may not
	 * have arrived). In TX mode, the batch is one transaction: all
	 * CONFIRMED after commit, or none. */
	int (*publish)(struct mqtx_backend *b, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err);

	/* Optional: whether this backend can ever carry m as it is. Returns 0,
	 * or -1 with why (naming the field and the limit, NUL-terminated in
	 * why[0..len)). b NULL: only the limits known without a connection;
	 * with b, also the connection's (AMQP frame_max, Kafka
	 * message.max.bytes). Called through mqtx_backend_validate(). */
	int (*validate)(struct mqtx_backend *b, const struct mqtx_msg *m, char *why, size_t len);

	/* Optional: looks at a destination (exchange/topic) and, for AMQP, a queue. */
	int (*inspect)(struct mqtx_backend *b, const char *destination, const char *queue,
		       struct mqtx_dest_info *info, struct mqtx_err *err);

	/* Optional: takes up to o->max messages from o->source without
	 * acknowledging them; *out points at them (see struct mqtx_delivery).
	 * Returns how many (0: the source stayed empty for o->wait_ms, or is
	 * at its end), or -1 with err. Messages not acknowledged by
	 * consume_ack() come again later: AMQP requeues them when the channel
	 * or connection closes, Kafka re-reads from the group's committed
	 * offsets. */
	int (*consume)(struct mqtx_backend *b, const struct mqtx_consume_opts *o, const struct mqtx_delivery **out,
		       struct mqtx_err *err);
	/* Acknowledges every message consume() returned so far (AMQP
	 * basic.ack, Kafka a synchronous offset commit). Call it only after
	 * what they say is stored. */
	int (*consume_ack)(struct mqtx_backend *b, struct mqtx_err *err);
};

struct mqtx_backend {
	const struct mqtx_backend_ops *ops;
	enum mqtx_pub_mode mode; /* set by mqtx_backend_open */
};

/* Finds the backend for url's scheme; NULL with err for unknown schemes. */
const struct mqtx_backend_ops *mqtx_backend_find(const char *url, struct mqtx_err *err);
/* Finds and opens the backend for cfg->broker_url. */
struct mqtx_backend *mqtx_backend_open(const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
				       struct mqtx_err *err);
void mqtx_backend_close(struct mqtx_backend *b);
/* Publishes msgs[0..n) (see ops->publish). First every message is
 * validated (mqtx_backend_validate): one that cannot be carried is FAILED
 * and permanent and is not handed over, and later messages of its
 * ordering key stay PENDING. In TX mode (the batch is one transaction)
 * nothing is handed over then: the others stay PENDING too. */
int mqtx_backend_publish(struct mqtx_backend *b, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err);
/* Whether the backend ops (connection b, or NULL for the limits known
 * without one) can carry m: the rules every backend shares (no header
 * named x-mqtx-..., which mqtx sets itself), then the backend's own.
 * Returns 0, or -1 with why. The one place for these rules: relay,
 * redeliver and txpub all go through it. */
int mqtx_backend_validate(const struct mqtx_backend_ops *ops, struct mqtx_backend *b, const struct mqtx_msg *m,
			  char *why, size_t len);
int mqtx_backend_inspect(struct mqtx_backend *b, const char *destination, const char *queue,
			 struct mqtx_dest_info *info, struct mqtx_err *err);
/* Optional operations: fail with MQTX_E_BROKER when the backend lacks them. */
int mqtx_backend_consume(struct mqtx_backend *b, const struct mqtx_consume_opts *o, const struct mqtx_delivery **out,
			 struct mqtx_err *err);
int mqtx_backend_consume_ack(struct mqtx_backend *b, struct mqtx_err *err);
const char *mqtx_backend_name(const struct mqtx_backend *b);
bool mqtx_backend_has_fenced_transactions(const struct mqtx_backend_ops *ops);

/* Broker password from broker.password_file into *out (owned), or *out =
 * NULL when no file is configured (the URL's password, if any, applies). */
int mqtx_backend_password(const struct mqtx_config *cfg, char **out, struct mqtx_err *err);

extern const struct mqtx_backend_ops mqtx_backend_amqp;
extern const struct mqtx_backend_ops mqtx_backend_kafka;

#endif
