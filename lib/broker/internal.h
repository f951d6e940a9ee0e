/* The broker layer's private part, as git's refs/refs-internal.h: the
 * operations a backend fills. Included only by lib/broker/broker.c and the
 * backends under lib/broker/<name>/; code outside uses broker/broker.h. */
#ifndef MQTX_BROKER_INTERNAL_H
#define MQTX_BROKER_INTERNAL_H

#include "broker/broker.h"

struct mqtx_backend_ops {
	const char *name;
	const char *const *schemes; /* NULL-terminated: "amqp", "amqps" */
	const char *dest_noun;      /* what a destination is called: "exchange", "topic" */
	unsigned caps;              /* MQTX_CAP_* */

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
	int (*inspect)(struct mqtx_backend *b, const char *destination, const char *queue, struct mqtx_dest_info *info,
		       struct mqtx_err *err);

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

	/* Optional (MQTX_CAP_READ): reads everything o->url's source holds
	 * within o->from/o->to, in source order, calling o->emit per message;
	 * connects and disconnects by itself. Fills res. 0, or -1 with err
	 * (MQTX_E_USAGE for a source that does not fit, MQTX_E_BROKER). */
	int (*read)(const struct mqtx_read_opts *o, struct mqtx_read_result *res, struct mqtx_err *err);
	/* Optional (MQTX_CAP_READ): whether o's positions and flags fit this
	 * backend's sources, before anything connects (o->emit may be NULL).
	 * 0, or -1 with err (MQTX_E_USAGE). */
	int (*read_check)(const struct mqtx_read_opts *o, struct mqtx_err *err);
};

/* Every connection starts with this (the backend's own struct embeds it first). */
struct mqtx_backend {
	const struct mqtx_backend_ops *ops;
	enum mqtx_pub_mode mode; /* set by mqtx_backend_open */
};

extern const struct mqtx_backend_ops mqtx_backend_amqp;
extern const struct mqtx_backend_ops mqtx_backend_kafka;
extern const struct mqtx_backend_ops mqtx_backend_nats;

#endif
