/* The broker interface, public part. Each backend lives in its own folder
 * under lib/broker/ and fills a `const struct mqtx_backend_ops`
 * (broker/internal.h, private to lib/broker); everything outside uses only
 * the functions below and asks capabilities, never names. Backends are
 * picked by URL scheme from the registry in broker.c. */
#ifndef MQTX_BACKEND_H
#define MQTX_BACKEND_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "config/config.h"
#include "base/error.h"
#include "base/msg.h"

enum mqtx_pub_mode {
	MQTX_PUB_CONFIRM, /* per-message acknowledgements (AMQP confirms, Kafka delivery reports, NATS JetStream publish acks) */
	MQTX_PUB_TX, /* broker transactions: AMQP tx.select/commit, Kafka transactions (NATS has none: no MQTX_CAP_TRANSACTIONS) */
};

struct mqtx_backend_opts {
	enum mqtx_pub_mode mode;
	size_t window;                /* most unconfirmed messages in flight */
	const char *transactional_id; /* Kafka transactions: stable id for fencing */
	const char *client_name;      /* shown by the broker (connection name) */
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

/* Reading what a broker holds, for dedupe-audit (lib/audit): a backend
 * with MQTX_CAP_READ streams the messages of a source URL (a Kafka topic,
 * an AMQP stream or queue, a JetStream stream) to emit(). */

/* A --from/--to position: an offset, or a point in time. */
enum mqtx_read_pos_kind {
	MQTX_READ_POS_NONE = 0, /* not given: the source's start (from) or its end at start (to) */
	MQTX_READ_POS_FIRST,    /* "first": the oldest retained message */
	MQTX_READ_POS_OFFSET,
	MQTX_READ_POS_TIME,
};

struct mqtx_read_pos {
	enum mqtx_read_pos_kind kind;
	int64_t offset;  /* MQTX_READ_POS_OFFSET */
	int64_t time_us; /* MQTX_READ_POS_TIME: microseconds since the epoch */
};

#define MQTX_READ_NO_TS INT64_MIN

/* One message as the source holds it; pointers are borrowed for the emit() call. */
struct mqtx_read_record {
	const char *key; /* idempotency key header, NULL when the message had none */
	size_t key_len;
	int64_t id;               /* outbox id (x-mqtx-outbox-id), 0 unknown */
	const char *ordering_key; /* NULL unknown */
	size_t ordering_key_len;
	int64_t redelivery_count; /* x-mqtx-redelivery-count, -1 unknown */
	int32_t partition;        /* -1 none */
	int64_t offset;           /* the source's own position (see mqtx_read_result.position), -1 none */
	int64_t ts_us;            /* MQTX_READ_NO_TS unknown */
};

struct mqtx_read_opts {
	const struct mqtx_config *cfg; /* broker settings (TLS, password file, timeouts) */
	const char *url;               /* the source: broker URL plus what to read */
	struct mqtx_read_pos from, to;
	bool destructive;            /* allow consuming a queue that cannot be read without removing */
	int64_t idle_timeout_ms;     /* a source quiet for this long is drained */
	volatile sig_atomic_t *stop; /* non-zero: stop reading early (res->stopped) */
	/* Called once per message in source order; non-zero stops with err. */
	int (*emit)(void *ctx, const struct mqtx_read_record *r, struct mqtx_err *err);
	void *emit_ctx;
};

struct mqtx_read_result {
	const char *kind;          /* static: "kafka", "stream", "queue", "jetstream" */
	const char *position;      /* static: what record.offset means: "offset", "delivery", "sequence" */
	char detail[512];          /* partitions and offsets read, how reading ended */
	bool stopped;              /* opts->stop ended reading early */
	char *default_destination; /* owned (free()), or NULL: the destination the source receives, when it knows */
};

/* What a backend can do; callers ask this, never the backend's name.
 * Length limits are asked message by message: mqtx_backend_validate(ops,
 * NULL, m) before connecting (txpub), with the connection for the limits
 * it negotiated (AMQP frame_max, Kafka message.max.bytes); the answer
 * names the field and the limit. */
enum mqtx_broker_cap {
	MQTX_CAP_TRANSACTIONS = 1u << 0,        /* MQTX_PUB_TX: a batch is one broker transaction */
	MQTX_CAP_FENCED_TRANSACTIONS = 1u << 1, /* ... with a stable transactional id that fences an older producer */
	MQTX_CAP_QUEUES = 1u << 2,     /* destinations route into named queues (inspect() reports their depth) */
	MQTX_CAP_CONSUME = 1u << 3,    /* consume() and consume_ack() */
	MQTX_CAP_INSPECT = 1u << 4,    /* inspect() */
	MQTX_CAP_READ = 1u << 5,       /* read(): dedupe-audit sources */
	MQTX_CAP_PROPERTIES = 1u << 6, /* takes a pass-through client property map (broker.kafka: librdkafka settings) */
	MQTX_CAP_DESTRUCTIVE_READ =
		1u << 7, /* read(): some sources (queues) can only be read by consuming them (--destructive) */
};

/* Opaque outside lib/broker (see broker/internal.h). */
struct mqtx_backend_ops;

/* A connection; opaque outside lib/broker. */
struct mqtx_backend;

/* Finds the backend for url's scheme; NULL with err for unknown schemes. */
const struct mqtx_backend_ops *mqtx_backend_find(const char *url, struct mqtx_err *err);
/* The backend whose scheme url starts with ("scheme://"), or NULL, without
 * an error: for callers that accept other URLs too (dedupe-audit sources). */
const struct mqtx_backend_ops *mqtx_broker_of_url(const char *url);
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
/* The connection's backend name, for display and labels only (as mqtx_broker_name). */
const char *mqtx_backend_name(const struct mqtx_backend *b);

/* Capability queries on a backend (ops from mqtx_backend_find, or a
 * connection's with mqtx_backend_ops_of). */
const struct mqtx_backend_ops *mqtx_backend_ops_of(const struct mqtx_backend *b);
bool mqtx_broker_can(const struct mqtx_backend_ops *ops, enum mqtx_broker_cap cap);
/* The backend's short name for messages and reports ("amqp", "kafka", ...);
 * for display only, never to decide behaviour. */
const char *mqtx_broker_name(const struct mqtx_backend_ops *ops);
/* What a destination is called on this broker: "exchange", "topic", "subject". */
const char *mqtx_broker_dest_noun(const struct mqtx_backend_ops *ops);
/* "amqp://, amqps://, kafka:// or kafkas://": every registered scheme, for error messages. */
const char *mqtx_broker_schemes_text(void);
/* The same for the backends that can do cap ("kafka:// or kafkas://" for
 * MQTX_CAP_FENCED_TRANSACTIONS) into buf[0..len), NUL-terminated; "" when
 * none can. Returns buf. */
char *mqtx_broker_schemes_with(enum mqtx_broker_cap cap, char *buf, size_t len);
/* The registered backends, for callers that list or probe them (check,
 * dedupe-audit): returns the i-th or NULL past the end. */
const struct mqtx_backend_ops *mqtx_broker_at(size_t i);
/* Reads o->url's source (MQTX_CAP_READ); fills res (free res->default_destination). */
int mqtx_broker_read(const struct mqtx_backend_ops *ops, const struct mqtx_read_opts *o, struct mqtx_read_result *res,
		     struct mqtx_err *err);
/* Whether o's positions and flags fit the backend's sources, checked
 * before anything connects (mqtx_broker_read checks again): the rules of
 * every reader here (--to first, --destructive only with
 * MQTX_CAP_DESTRUCTIVE_READ), then the backend's own. 0, or -1 with err
 * (MQTX_E_USAGE), also for a backend without MQTX_CAP_READ. */
int mqtx_broker_read_check(const struct mqtx_backend_ops *ops, const struct mqtx_read_opts *o, struct mqtx_err *err);

/* Broker password from broker.password_file into *out (owned), or *out =
 * NULL when no file is configured (the URL's password, if any, applies). */
int mqtx_backend_password(const struct mqtx_config *cfg, char **out, struct mqtx_err *err);

#endif
