/* The read op (MQTX_CAP_READ): a RabbitMQ queue as a dedupe-audit source,
 * through rabbitmq-c.
 *
 * A stream queue is read without changing it: basic.consume with
 * x-stream-offset (first, an offset or a time), a prefetch and acks, which
 * for a stream only grant credit. A stream has no end over AMQP 0-9-1, so
 * reading stops at --to or after audit.idle_timeout without a message.
 *
 * Any other queue (classic, quorum) loses what is consumed, so it is read
 * only with --destructive: exactly the messages it held when the audit
 * started, each acknowledged (removed). Messages beyond those are left
 * unacknowledged and go back to the queue.
 *
 * Every rabbitmq-c status is translated into struct mqtx_err here. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "broker/internal.h"
#include "broker/amqp/amqp.h"
#include "broker/amqp/conn.h"
#include "broker/url.h"
#include "base/log.h"
#include "base/util.h"

#define PREFETCH 1000
#define ACK_EVERY 200

struct aurl {
	char *conn_url; /* amqp[s]://authority/ for amqp_parse_url; owned, holds the password */
	char *vhost;    /* NULL: from the URL parsed */
	char *queue;
};

static void aurl_free(struct aurl *u)
{
	if (u->conn_url != NULL) {
		explicit_bzero(u->conn_url, strlen(u->conn_url));
		free(u->conn_url);
	}
	free(u->vhost);
	free(u->queue);
	memset(u, 0, sizeof(*u));
}

/* amqp[s]://[user[:password]@]host[:port]/[VHOST/]QUEUE; an empty
 * authority (amqp:///QUEUE) borrows broker.url's host, credentials and
 * vhost. */
static int parse_aurl(const char *url, const struct mqtx_config *cfg, const char *where, struct aurl *u,
		      struct mqtx_err *err)
{
	memset(u, 0, sizeof(*u));
	const char *rest = url + (strncmp(url, "amqps://", 8) == 0 ? 8 : 7);
	struct mqtx_url_parts up;
	if (mqtx_url_split(rest, &up) < 0)
		return mqtx_err_set(err, MQTX_E_USAGE, "source '%s': query strings are not supported", where);
	/* amqp_parse_url takes the credentials from the URL itself */
	const char *path = up.path, *authority_end = up.authority + up.authority_len;
	size_t alen = (size_t)(authority_end - rest); /* with the credentials */
	mqtx_url_parts_free(&up);
	const char *slash = strchr(path, '/');
	if (slash != NULL && strchr(slash + 1, '/') != NULL)
		return mqtx_err_set(err, MQTX_E_USAGE, "source '%s': expected amqp://HOST/[VHOST/]QUEUE", where);
	if (slash != NULL) {
		u->vhost = mqtx_pct_decode(path, (size_t)(slash - path));
		u->queue = mqtx_pct_decode(slash + 1, strlen(slash + 1));
	} else {
		u->queue = mqtx_pct_decode(path, strlen(path));
	}
	if (u->queue[0] == '\0') {
		aurl_free(u);
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "source '%s' names no queue (expected amqp://HOST/[VHOST/]QUEUE)", where);
	}
	if (alen > 0) {
		struct mqtx_buf b = MQTX_BUF_INIT;
		mqtx_buf_add(&b, url, (size_t)(authority_end - url));
		u->conn_url = mqtx_buf_detach(&b);
		if (u->vhost == NULL)
			u->vhost = mqtx_xstrdup("/");
		return 0;
	}
	const char *b = cfg->broker_url;
	if (b == NULL || mqtx_broker_of_url(b) != &mqtx_backend_amqp) {
		aurl_free(u);
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "source '%s' names no host, and broker.url is not an amqp:// URL", where);
	}
	u->conn_url = mqtx_xstrdup(b);
	return 0;
}

static int connect_to(struct mqtx_amqp_conn *k, const struct mqtx_config *cfg, const struct aurl *u,
		      struct mqtx_err *err)
{
	const struct mqtx_amqp_login l = {
		.url = u->conn_url,
		.vhost = u->vhost,
		.client_name = "mqtx dedupe-audit",
		.what = "source",
		.bad_url_kind = MQTX_E_USAGE,
		.bad_url_hint = "amqp://user@host:port/[VHOST/]QUEUE",
	};
	if (mqtx_amqp_connect(k, cfg, &l, err) < 0)
		return -1;
	return mqtx_amqp_channel_open(k, 1, err);
}

enum qtype { Q_STREAM, Q_OTHER, Q_UNKNOWN };

/* Does the queue exist (message count at start), and is it a stream?
 * Redeclaring with x-queue-type=stream succeeds only for a stream; the
 * refusal names the argument. Another refused argument (a stream with
 * retention settings) leaves it unknown: the first delivery tells. */
static int inspect(struct mqtx_amqp_conn *k, const char *queue, uint32_t *count, enum qtype *type, struct mqtx_err *err)
{
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(k->c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0,
							 amqp_empty_table);
	if (ok == NULL) {
		amqp_rpc_reply_t r = amqp_get_rpc_reply(k->c);
		if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
		    ((amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
			amqp_channel_close_ok_t cok = {0};
			amqp_send_method(k->c, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
			return mqtx_err_set(err, MQTX_E_BROKER, "queue '%s' does not exist on '%s'", queue, k->where);
		}
		return mqtx_amqp_reply_err(k, r, 1, "cannot look at the queue on", err);
	}
	*count = ok->message_count;
	if (mqtx_amqp_channel_open(k, 2, err) < 0)
		return -1;
	amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-queue-type"),
				.value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("stream")}};
	amqp_table_t args = {.num_entries = 1, .entries = &e};
	ok = amqp_queue_declare(k->c, 2, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
	if (ok != NULL) {
		*type = Q_STREAM;
		amqp_channel_close(k->c, 2, AMQP_REPLY_SUCCESS);
		return 0;
	}
	amqp_rpc_reply_t r = amqp_get_rpc_reply(k->c);
	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
		return mqtx_amqp_reply_err(k, r, 2, "cannot look at the queue on", err);
	amqp_channel_close_t *m = r.reply.decoded;
	char text[300];
	snprintf(text, sizeof(text), "%.*s", (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	amqp_channel_close_ok_t cok = {0};
	amqp_send_method(k->c, 2, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
	mqtx_debug("audit: queue type probe: %s", text);
	if (strstr(text, "'x-queue-type'") != NULL || strstr(text, "'durable'") != NULL ||
	    strstr(text, "'exclusive'") != NULL)
		*type = Q_OTHER;
	else
		*type = Q_UNKNOWN;
	return 0;
}

static bool field_int(const amqp_field_value_t *v, int64_t *out)
{
	switch (v->kind) {
	case AMQP_FIELD_KIND_I8: *out = v->value.i8; return true;
	case AMQP_FIELD_KIND_U8: *out = v->value.u8; return true;
	case AMQP_FIELD_KIND_I16: *out = v->value.i16; return true;
	case AMQP_FIELD_KIND_U16: *out = v->value.u16; return true;
	case AMQP_FIELD_KIND_I32: *out = v->value.i32; return true;
	case AMQP_FIELD_KIND_U32: *out = v->value.u32; return true;
	case AMQP_FIELD_KIND_I64: *out = v->value.i64; return true;
	case AMQP_FIELD_KIND_U64: *out = (int64_t)v->value.u64; return true;
	case AMQP_FIELD_KIND_TIMESTAMP: *out = (int64_t)v->value.u64; return true;
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES: return mqtx_parse_i64n(v->value.bytes.bytes, v->value.bytes.len, out);
	default: return false;
	}
}

static const amqp_field_value_t *header(const amqp_basic_properties_t *p, const char *name)
{
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	size_t n = strlen(name);
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];
		if (e->key.len == n && memcmp(e->key.bytes, name, n) == 0)
			return &e->value;
	}
	return NULL;
}

struct reading {
	const struct mqtx_read_opts *o;
	struct mqtx_read_result *res;
	struct mqtx_amqp_conn *k;
	bool stream;
	bool unknown;         /* the probe could not tell: the first delivery does */
	uint64_t unacked_tag; /* last delivery tag not yet acknowledged */
	int unacked;
	int64_t n;
};

static int ack(struct reading *rd, struct mqtx_err *err)
{
	if (rd->unacked == 0)
		return 0;
	int st = amqp_basic_ack(rd->k->c, 1, rd->unacked_tag, 1);
	if (st != AMQP_STATUS_OK) {
		rd->k->broken = true;
		return mqtx_err_retry(err, MQTX_E_BROKER, "cannot acknowledge on '%s': %s", rd->k->where,
				      amqp_error_string2(st));
	}
	rd->unacked = 0;
	return 0;
}

/* Reads a frame that is not a delivery: a cancel or close ends reading. */
static int other_frame(struct reading *rd, struct mqtx_err *err)
{
	amqp_frame_t f;
	struct timeval tv = {1, 0};
	int st = amqp_simple_wait_frame_noblock(rd->k->c, &f, &tv);
	if (st == AMQP_STATUS_TIMEOUT)
		return 0;
	if (st != AMQP_STATUS_OK) {
		rd->k->broken = true;
		return mqtx_err_retry(err, MQTX_E_BROKER, "lost the connection to '%s': %s", rd->k->where,
				      amqp_error_string2(st));
	}
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_BASIC_CANCEL_METHOD:
		return mqtx_err_set(err, MQTX_E_BROKER, "the broker cancelled reading '%s' (queue deleted?)",
				    rd->k->where);
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *m = f.payload.method.decoded;
		mqtx_err_set(err, MQTX_E_BROKER, "cannot read '%s': %.*s", rd->k->where, (int)m->reply_text.len,
			     (const char *)m->reply_text.bytes);
		amqp_channel_close_ok_t ok = {0};
		amqp_send_method(rd->k->c, f.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		return -1;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *m = f.payload.method.decoded;
		rd->k->broken = true;
		return mqtx_err_set(err, MQTX_E_BROKER, "the broker closed the connection to '%s': %.*s", rd->k->where,
				    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	}
	default: return 0;
	}
}

/* One delivery: 1 taken, 0 skipped (before --from), 2 at --to (not
 * taken), -1 error, -3 not a stream after all. */
static int on_delivery(struct reading *rd, amqp_envelope_t *env, struct mqtx_err *err)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	const struct mqtx_read_opts *o = rd->o;
	struct mqtx_read_record d = {.partition = -1, .redelivery_count = -1, .ts_us = MQTX_READ_NO_TS};
	const amqp_field_value_t *v;
	if (rd->stream && rd->unknown) {
		rd->unknown = false;
		if (header(p, "x-stream-offset") == NULL) {
			bool positions = o->from.kind != MQTX_READ_POS_NONE || o->to.kind != MQTX_READ_POS_NONE;
			if (!o->destructive || positions)
				return -3;
			rd->stream = false; /* a classic or quorum queue, and we may consume it */
			rd->res->kind = "queue";
			rd->res->position = "delivery";
		}
	}
	if (rd->stream) {
		if ((v = header(p, "x-stream-offset")) == NULL || !field_int(v, &d.offset))
			return -3;
		if (o->from.kind == MQTX_READ_POS_OFFSET && d.offset < o->from.offset)
			return 0;
		if (o->to.kind == MQTX_READ_POS_OFFSET && d.offset >= o->to.offset)
			return 2;
	} else {
		d.offset = rd->n + 1;
	}
	if ((p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && p->message_id.len > 0) {
		d.key = p->message_id.bytes;
		d.key_len = p->message_id.len;
	} else if ((v = header(p, "x-mqtx-idempotency-key")) != NULL &&
		   (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES)) {
		d.key = v->value.bytes.bytes;
		d.key_len = v->value.bytes.len;
	}
	if ((v = header(p, "x-mqtx-outbox-id")) != NULL && (!field_int(v, &d.id) || d.id < 0))
		d.id = 0;
	if ((v = header(p, "x-mqtx-redelivery-count")) != NULL && !field_int(v, &d.redelivery_count))
		d.redelivery_count = -1;
	if ((p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) && p->timestamp <= 253402300799u) /* seconds, up to year 9999 */
		d.ts_us = (int64_t)p->timestamp * 1000000;
	if (o->emit(o->emit_ctx, &d, err) < 0)
		return -1;
	rd->n++;
	return 1;
}

static int consume(struct reading *rd, const char *queue, uint32_t count, struct mqtx_err *err)
{
	struct mqtx_amqp_conn *k = rd->k;
	const struct mqtx_read_opts *o = rd->o;
	uint16_t prefetch = PREFETCH;
	if (!rd->stream && count < prefetch)
		prefetch = count > 0 ? (uint16_t)count : 1;
	amqp_basic_qos(k->c, 1, 0, prefetch, 0);
	if (mqtx_amqp_reply_err(k, amqp_get_rpc_reply(k->c), 1, "cannot set the prefetch on", err) < 0)
		return -1;
	amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-stream-offset")};
	amqp_table_t args = amqp_empty_table;
	if (rd->stream) {
		switch (o->from.kind) {
		case MQTX_READ_POS_NONE:
		case MQTX_READ_POS_FIRST:
			e.value.kind = AMQP_FIELD_KIND_UTF8;
			e.value.value.bytes = amqp_cstring_bytes("first");
			break;
		case MQTX_READ_POS_OFFSET:
			e.value.kind = AMQP_FIELD_KIND_I64;
			e.value.value.i64 = o->from.offset;
			break;
		case MQTX_READ_POS_TIME:
			e.value.kind = AMQP_FIELD_KIND_TIMESTAMP;
			e.value.value.u64 = (uint64_t)(o->from.time_us / 1000000);
			break;
		}
		args.num_entries = 1;
		args.entries = &e;
	}
	amqp_basic_consume(k->c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, args);
	if (mqtx_amqp_reply_err(k, amqp_get_rpc_reply(k->c), 1, "cannot read the queue on", err) < 0)
		return -1;

	int64_t last = mqtx_now_ms();
	for (;;) {
		if (!rd->stream && rd->n >= (int64_t)count)
			break; /* what the queue held at the start */
		if (o->stop != NULL && *o->stop) {
			rd->res->stopped = true;
			break;
		}
		if (mqtx_now_ms() - last >= o->idle_timeout_ms)
			break;
		amqp_envelope_t env;
		struct timeval tv = {0, 100000};
		amqp_maybe_release_buffers(k->c);
		amqp_rpc_reply_t r = amqp_consume_message(k->c, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
			continue;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			if (other_frame(rd, err) < 0)
				return -1;
			continue;
		}
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			return mqtx_amqp_reply_err(k, r, 1, "cannot read from", err);
		last = mqtx_now_ms();
		int taken = on_delivery(rd, &env, err);
		uint64_t tag = env.delivery_tag;
		amqp_destroy_envelope(&env);
		if (taken == -3)
			return -3;
		if (taken < 0)
			return -1;
		if (taken == 2)
			break; /* --to reached; the rest stays */
		rd->unacked_tag = tag;
		if (++rd->unacked >= ACK_EVERY && ack(rd, err) < 0)
			return -1;
	}
	return ack(rd, err);
}

int mqtx_amqp_read_check(const struct mqtx_read_opts *o, struct mqtx_err *err)
{
	if (o->to.kind == MQTX_READ_POS_TIME)
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "--to with a time: RabbitMQ streams do not tell message times over AMQP 0-9-1 (use --to OFFSET)");
	/* the source's shape too, before anything connects */
	struct aurl u;
	char *where = mqtx_redact(o->url);
	int rc = parse_aurl(o->url, o->cfg, where, &u, err);
	if (rc == 0)
		aurl_free(&u);
	free(where);
	return rc;
}

static void describe(const struct reading *rd, const char *queue, uint32_t count)
{
	const struct mqtx_read_opts *o = rd->o;
	struct mqtx_read_result *res = rd->res;
	if (rd->stream)
		snprintf(res->detail, sizeof(res->detail), "stream %s from %s; %s", queue,
			 o->from.kind == MQTX_READ_POS_NONE ? "its first offset" : "--from",
			 res->stopped                         ? "stopped by a signal"
			 : o->to.kind == MQTX_READ_POS_OFFSET ? "up to --to or audit.idle_timeout without a message"
							      : "until audit.idle_timeout without a message");
	else
		snprintf(res->detail, sizeof(res->detail),
			 "queue %s, consumed %lld of the %u message%s it held at start%s", queue, (long long)rd->n,
			 count, count == 1 ? "" : "s", res->stopped ? ", stopped by a signal" : "");
}

#define NOT_A_STREAM \
	"reading it removes its messages; bind a queue of its own for the audit to the exchange and give --destructive"

int mqtx_amqp_read(const struct mqtx_read_opts *o, struct mqtx_read_result *res, struct mqtx_err *err)
{
	struct mqtx_amqp_conn k = {.where = mqtx_redact(o->url), .fd = -1};
	struct aurl u;
	int rc = -1;

	if (parse_aurl(o->url, o->cfg, k.where, &u, err) < 0) {
		free(k.where);
		return -1;
	}
	if (connect_to(&k, o->cfg, &u, err) < 0)
		goto out;
	uint32_t count = 0;
	enum qtype type = Q_UNKNOWN;
	if (inspect(&k, u.queue, &count, &type, err) < 0)
		goto out;
	bool positions = o->from.kind != MQTX_READ_POS_NONE || o->to.kind != MQTX_READ_POS_NONE;
	if (type == Q_OTHER && !o->destructive) {
		mqtx_err_set(err, MQTX_E_USAGE, "queue '%s' is not a stream queue: " NOT_A_STREAM, u.queue);
		goto out;
	}
	if (type == Q_OTHER && positions) {
		mqtx_err_set(err, MQTX_E_USAGE, "--from and --to need a stream queue; queue '%s' is not one", u.queue);
		goto out;
	}
	struct reading rd = {.o = o, .res = res, .k = &k, .stream = type != Q_OTHER, .unknown = type == Q_UNKNOWN};
	res->kind = rd.stream ? "stream" : "queue";
	res->position = rd.stream ? "offset" : "delivery";
	if (rd.stream && o->destructive)
		mqtx_info("queue '%s' is a stream: reading it removes nothing (--destructive not needed)", u.queue);
	int r = consume(&rd, u.queue, count, err);
	if (r == -3) {
		/* not a stream after all; the unacknowledged delivery goes back when the connection closes */
		mqtx_err_set(err, MQTX_E_USAGE, "queue '%s' is not a stream queue: %s", u.queue,
			     positions ? "--from and --to need one" : NOT_A_STREAM);
		goto out;
	}
	if (r < 0)
		goto out;
	describe(&rd, u.queue, count);
	rc = 0;
out:
	mqtx_amqp_conn_close(&k, 1);
	aurl_free(&u);
	return rc;
}
