/* What the NATS backend's files share (lib/broker/nats only): connecting,
 * JetStream API requests, and the dedupe-audit reader. */
#ifndef MQTX_NATS_H
#define MQTX_NATS_H

#include <nats/nats.h>

#include "broker/internal.h"
#include "broker/nats/url.h"
#include "base/json.h"

/* Connects to u's server with the broker.* settings of cfg (password
 * file, TLS files and verification, timeouts); no reconnects. A user
 * authenticates with the password (the file's, else the URL's); a
 * password without a user is a token. where names the server in messages
 * (redacted). A socket write that cannot finish within write_deadline_ms
 * fails (0: no deadline). *out is owned (natsConnection_Close and
 * _Destroy). Returns 0, or -1 with err. */
int mqtx_nats_connect(const struct mqtx_config *cfg, const struct mqtx_nats_url *u, const char *where, const char *name,
		      int64_t write_deadline_ms, natsConnection **out, struct mqtx_err *err);

/* A JetStream API request: subj with body, the answer parsed into *out
 * (owned). Returns 0; 1 when nothing answers (no JetStream); -1 with err. */
int mqtx_nats_api(natsConnection *nc, const char *subj, const char *body, int64_t timeout_ms, const char *where,
		  struct mqtx_json **out, struct mqtx_err *err);

/* $JS.API.STREAM.INFO for stream: the answer into *out (owned), which may
 * carry an API error (mqtx_nats_api_error; 404: no such stream). Returns
 * as mqtx_nats_api. */
int mqtx_nats_stream_info(natsConnection *nc, const char *stream, int64_t timeout_ms, const char *where,
			  struct mqtx_json **out, struct mqtx_err *err);

/* The JetStream API error an answer carries (borrowed text; *code its
 * HTTP-like code), or NULL. */
const char *mqtx_nats_api_error(const struct mqtx_json *ans, int *code);

/* The stream capturing subject into *stream (owned; NULL when none, and
 * then why says so). Returns 0, or -1 with err. */
int mqtx_nats_stream_for(natsConnection *nc, const char *subject, int64_t timeout_ms, const char *where, char **stream,
			 char *why, size_t len, struct mqtx_err *err);

/* ops->read: a dedupe-audit source nats://host:port/STREAM (read.c). */
int mqtx_nats_read(const struct mqtx_read_opts *o, struct mqtx_read_result *res, struct mqtx_err *err);
/* ops->read_check: the source URL and --from sequences (the generic rules: mqtx_broker_read_check). */
int mqtx_nats_read_check(const struct mqtx_read_opts *o, struct mqtx_err *err);

#endif
