/* Error values: every fallible lib/ function fills a caller-owned
 * struct mqtx_err instead of printing or exiting. cmd/ maps the kind to an
 * exit code and prints the message. */
#ifndef MQTX_ERROR_H
#define MQTX_ERROR_H

#include <stdbool.h>

enum mqtx_err_kind {
	MQTX_OK = 0,
	MQTX_E_USAGE,    /* bad flags or arguments */
	MQTX_E_CONFIG,   /* bad configuration file, env or value */
	MQTX_E_DB,       /* database unreachable or a query failed */
	MQTX_E_BROKER,   /* broker unreachable or refused */
	MQTX_E_INPUT,    /* bad data (stdin, database contents) */
	MQTX_E_IO,       /* local file or stream error */
	MQTX_E_INTERNAL, /* a bug or an impossible state */
};

struct mqtx_err {
	enum mqtx_err_kind kind;
	bool retriable; /* the same call may succeed later (connection lost, ...) */
	char msg[1024];
};

/* Sets err (if non-NULL) and returns -1 so callers can `return mqtx_err_set(...)`. */
int mqtx_err_set(struct mqtx_err *err, enum mqtx_err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like mqtx_err_set but marks the error retriable. */
int mqtx_err_retry(struct mqtx_err *err, enum mqtx_err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with "<prefix>: ". */
void mqtx_err_prefix(struct mqtx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mqtx_err_clear(struct mqtx_err *err);
const char *mqtx_err_kind_name(enum mqtx_err_kind kind);

#endif
