/* One message on its way to a broker. All pointers are borrowed from
 * whoever built the message (an outbox batch, txpub's input); the backend
 * only fills in the outcome fields. */
#ifndef MQTX_MSG_H
#define MQTX_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mqtx_header {
	const char *name;
	const char *value;
	size_t value_len;
};

enum mqtx_msg_state {
	MQTX_MSG_PENDING = 0, /* not handed to the broker yet */
	MQTX_MSG_CONFIRMED,   /* the broker acked it: safe to mark sent */
	MQTX_MSG_FAILED,      /* the broker refused it (nack, unroutable, no such destination) */
	MQTX_MSG_UNKNOWN,     /* handed over but no answer (connection lost, timeout) */
};

struct mqtx_msg {
	int64_t id;               /* outbox id, 0 when not from the outbox */
	const char *key;          /* idempotency key */
	const char *destination;  /* AMQP exchange or Kafka topic */
	const char *routing_key;  /* may be NULL */
	const char *ordering_key; /* may be NULL */
	const char *content_type; /* may be NULL */
	const struct mqtx_header *headers;
	size_t n_headers;
	const void *payload;
	size_t payload_len;
	int64_t redelivery_count; /* > 0: sent as x-mqtx-redelivery-count */

	/* outcome, filled by the backend */
	enum mqtx_msg_state state;
	char error[256];
	/* FAILED for good: the message can never be carried as it is (over a
	 * protocol limit, a reserved header). The relay marks such a row dead
	 * at once instead of retrying it. */
	bool permanent;
};

/* Ordering keys that failed earlier in one publish call: later messages
 * with the same key are not handed over (they would overtake the failed
 * one) and stay MQTX_MSG_PENDING. */
struct mqtx_keyset {
	char **keys;
	size_t n;
};
void mqtx_keyset_add(struct mqtx_keyset *s, const char *key); /* NULL is ignored */
bool mqtx_keyset_has(const struct mqtx_keyset *s, const char *key);
void mqtx_keyset_free(struct mqtx_keyset *s);
#endif
