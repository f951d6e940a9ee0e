/* nats:// and tls:// URLs, parsed once for the NATS backend (broker.url)
 * and the dedupe-audit JetStream reader (a source: the same URL plus
 * /STREAM); and the subject a message is published to. */
#ifndef MQTX_NATS_URL_H
#define MQTX_NATS_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

struct mqtx_nats_url {
	char *server;   /* "nats://host:port", without credentials, for the client library */
	char *host;     /* as written ("[::1]" keeps its brackets) */
	int port;       /* 4222 when the URL names none */
	char *user;     /* percent-decoded; NULL when the URL has none */
	char *password; /* percent-decoded; NULL when the URL has none; wiped by _free */
	char *stream;   /* a source's /STREAM, percent-decoded; NULL when none */
	bool tls;       /* tls:// */
};

/* Parses nats://[user[:password]@]host[:port][/] or the same with tls://
 * into u (owned by the caller: mqtx_nats_url_free). With as_source, the
 * URL is a dedupe-audit source and must end in /STREAM; its errors are
 * usage errors, otherwise configuration errors. where names the URL in
 * messages (redacted by the caller). Returns 0, or -1 with err. */
int mqtx_nats_url_parse(const char *url, const char *where, bool as_source, struct mqtx_nats_url *u,
			struct mqtx_err *err);
void mqtx_nats_url_free(struct mqtx_nats_url *u);

/* Whether s[0..n) is a valid sequence of subject tokens to publish to:
 * tokens separated by '.', none empty, no wildcard ('*', '>') token, no
 * blank or control byte. Returns 0, or -1 with why naming field. */
int mqtx_nats_subject_check(const char *field, const char *s, char *why, size_t len);

/* The subject a message goes to: destination, plus "." and the routing
 * key when routing_key is non-NULL and non-empty. Owned (free()). */
char *mqtx_nats_subject(const char *destination, const char *routing_key);

#endif
