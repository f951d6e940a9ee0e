/* RabbitMQ backend through rabbitmq-c. Every rabbitmq-c status (negative
 * ints and amqp_rpc_reply_t) is translated into struct mqtx_err here and
 * nowhere else.
 *
 * Confirm mode: publisher confirms with a window of unconfirmed messages.
 * A message is CONFIRMED only by basic.ack; basic.nack or basic.return
 * (mandatory, unroutable) make it FAILED. A return is matched to its
 * publish by the x-mqtx-outbox-id header it carries back (unique per row;
 * messages without an outbox id, txpub's, have keys unique in their
 * input), never by the key of a row alone. Before the first publish to an
 * exchange on a connection, a passive declare on a scratch channel checks
 * that it exists (remembered per connection), so a missing exchange fails
 * only its messages and closes no publishing channel. Should a channel
 * close anyway, messages to the guilty exchange fail; those published
 * after them were discarded by the broker and go again on a fresh
 * channel; the other unconfirmed ones may or may not have arrived: they
 * stay UNKNOWN (the relay retries them later, same key) and are not
 * published again in this call (see after_channel_close).
 * TX mode: tx.select, publish, tx.commit (see publish_tx for what a return
 * means there). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "broker/internal.h"
#include "broker/window.h"
#include "broker/amqp/amqp.h"
#include "broker/amqp/conn.h"
#include "base/failpoint.h"
#include "base/log.h"
#include "base/stop.h"
#include "base/util.h"

/* A scratch channel for exchange checks, apart from publishing (1..2000),
 * consume's (4000); inspect's (1001..3000) are opened and closed
 * around their use like this one. */
#define CHECK_CHANNEL 2001

struct amqp_backend {
	struct mqtx_backend base; /* must be first */
	char **exchanges;         /* exchanges known to exist on this connection */
	size_t n_exchanges;
	struct mqtx_amqp_conn k; /* the connection, its redacted URL, whether it broke, its socket */
	amqp_channel_t ch;
	struct mqtx_backend_opts opts;
	int64_t confirm_timeout_ms;
	uint64_t published;         /* messages published on the current channel: the last delivery tag */
	struct amqp_consumer *cons; /* consume(): NULL until first used */
};

static const char *const amqp_schemes[] = {"amqp", "amqps", NULL};

static int open_channel(struct amqp_backend *ab, struct mqtx_err *err)
{
	ab->ch++;
	if (ab->ch == 0 || ab->ch > 2000)
		ab->ch = 1;
	ab->published = 0; /* delivery tags restart on a new channel */
	if (mqtx_amqp_channel_open(&ab->k, ab->ch, err) < 0)
		return -1;
	if (ab->opts.mode == MQTX_PUB_TX) {
		amqp_tx_select(ab->k.c, ab->ch);
		return mqtx_amqp_reply_err(&ab->k, amqp_get_rpc_reply(ab->k.c), 0, "cannot select tx mode on", err);
	}
	amqp_confirm_select(ab->k.c, ab->ch);
	return mqtx_amqp_reply_err(&ab->k, amqp_get_rpc_reply(ab->k.c), 0, "cannot select confirm mode on", err);
}

static void consumer_free(struct amqp_backend *ab);

static void amqp_close(struct mqtx_backend *b)
{
	struct amqp_backend *ab = (struct amqp_backend *)b;
	if (ab == NULL)
		return;
	consumer_free(ab); /* unacknowledged messages go back to the queue when the connection closes */
	if (ab->k.c != NULL) {
		int64_t stop = mqtx_stop_deadline(ab->opts.stop, ab->opts.stop_grace_ms);
		if (!ab->k.broken && stop != INT64_MAX) {
			/* stopping: the closing handshake gets what is left of the grace */
			int64_t left = stop - mqtx_now_ms();
			struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
			if (left <= 0)
				ab->k.broken = true;
			else
				amqp_set_rpc_timeout(ab->k.c, &tv);
		}
	}
	mqtx_amqp_conn_close(&ab->k, ab->ch);
	for (size_t i = 0; i < ab->n_exchanges; i++)
		free(ab->exchanges[i]);
	free(ab->exchanges);
	free(ab);
}

static struct mqtx_backend *amqp_open(const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
				      struct mqtx_err *err)
{
	struct amqp_backend *ab = mqtx_xcalloc(1, sizeof(*ab));
	ab->base.ops = &mqtx_backend_amqp;
	ab->opts = *opts;
	if (ab->opts.window == 0)
		ab->opts.window = 1024;
	ab->confirm_timeout_ms = cfg->broker_confirm_timeout_ms;
	const struct mqtx_amqp_login l = {
		.url = cfg->broker_url,
		.client_name = opts->client_name,
		.heartbeat_s = (int)((cfg->broker_heartbeat_ms + 999) / 1000), /* AMQP counts whole seconds */
		.what = "broker URL",
		.bad_url_kind = MQTX_E_CONFIG,
		.bad_url_hint = "amqp://user:pass@host:port/vhost",
	};
	if (mqtx_amqp_connect(&ab->k, cfg, &l, err) < 0 || open_channel(ab, err) < 0) {
		ab->k.broken = true;
		amqp_close(&ab->base);
		return NULL;
	}
	return &ab->base;
}

/* ---- publishing ---- */

struct pubstate {
	struct mqtx_msg *msgs;
	size_t n;
	size_t *chan_idx; /* delivery tag t on this channel -> chan_idx[t-1] */
	size_t chan_count;
	size_t chan_low; /* lowest tag index that may still be unresolved */
	size_t inflight;
	char **missing;     /* destinations the broker said do not exist */
	char **missing_why; /* per missing destination: what the broker said */
	size_t n_missing;
	bool channel_closed;
	char close_text[256];
	int close_code;
	int64_t stop_deadline;      /* set once a stop was requested */
	uint64_t tag_base;          /* delivery tag of chan_idx[0] is tag_base + 1 */
	struct mqtx_keyset blocked; /* ordering keys with a failed message */
};

/* Why dest cannot be published to in this call, or NULL. */
static const char *missing_why(struct pubstate *ps, const char *dest)
{
	for (size_t i = 0; i < ps->n_missing; i++)
		if (strcmp(ps->missing[i], dest) == 0)
			return ps->missing_why[i];
	return NULL;
}

static void add_missing(struct pubstate *ps, const char *dest, const char *why)
{
	ps->missing = mqtx_xrealloc(ps->missing, (ps->n_missing + 1) * sizeof(char *));
	ps->missing_why = mqtx_xrealloc(ps->missing_why, (ps->n_missing + 1) * sizeof(char *));
	ps->missing[ps->n_missing] = mqtx_xstrdup(dest);
	ps->missing_why[ps->n_missing++] = mqtx_xstrdup(why);
}

/* An ack or nack for one tag. A message already FAILED by basic.return
 * stays failed: its ack only says the broker is done with it. */
static void resolve(struct pubstate *ps, size_t tagidx, enum mqtx_msg_state st, const char *why)
{
	struct mqtx_msg *m = &ps->msgs[ps->chan_idx[tagidx]];
	if (m->state != MQTX_MSG_UNKNOWN)
		return;
	m->state = st;
	if (why != NULL)
		snprintf(m->error, sizeof(m->error), "%s", why);
	if (st == MQTX_MSG_FAILED)
		mqtx_keyset_add(&ps->blocked, m->ordering_key);
	ps->inflight--;
}

static void on_ack(struct pubstate *ps, uint64_t tag, bool multiple, enum mqtx_msg_state st, const char *why)
{
	if (tag <= ps->tag_base || tag > ps->tag_base + ps->chan_count)
		return; /* not one of ours (an earlier call's late answer) */
	size_t t = (size_t)(tag - ps->tag_base) - 1;
	if (multiple) {
		for (size_t i = ps->chan_low; i <= t; i++)
			resolve(ps, i, st, why);
		if (t + 1 > ps->chan_low)
			ps->chan_low = t + 1;
	} else {
		resolve(ps, t, st, why);
		while (ps->chan_low < ps->chan_count && ps->msgs[ps->chan_idx[ps->chan_low]].state != MQTX_MSG_UNKNOWN)
			ps->chan_low++;
	}
}

/* What identifies a returned message: the outbox id it carries in
 * x-mqtx-outbox-id (mqtx's own header: outbox headers cannot set it), or
 * for a message without one (txpub), its message_id. */
struct returned {
	int64_t id; /* 0: none */
	amqp_bytes_t message_id;
	bool has_message_id;
};

static void returned_of(const amqp_basic_properties_t *p, struct returned *rt)
{
	memset(rt, 0, sizeof(*rt));
	if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
		rt->message_id = p->message_id;
		rt->has_message_id = true;
	}
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return;
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];
		if (e->key.len != 16 || memcmp(e->key.bytes, "x-mqtx-outbox-id", 16) != 0 ||
		    e->value.kind != AMQP_FIELD_KIND_UTF8)
			continue;
		const amqp_bytes_t *v = &e->value.value.bytes;
		if (v->len == 0 || v->len > 19)
			return; /* not one of ours: a positive int8 has 1 to 19 digits */
		uint64_t id = 0;
		for (size_t k = 0; k < v->len; k++) {
			char c = ((const char *)v->bytes)[k];
			if (c < '0' || c > '9')
				return;
			id = id * 10 + (uint64_t)(c - '0');
		}
		if (id <= (uint64_t)INT64_MAX)
			rt->id = (int64_t)id;
		return;
	}
}

/* Whether the unresolved message m is the one the broker returned. */
static bool is_returned(const struct mqtx_msg *m, const struct returned *rt)
{
	if (m->state != MQTX_MSG_UNKNOWN)
		return false;
	if (m->id > 0)
		return m->id == rt->id;
	return rt->id == 0 && rt->has_message_id && strlen(m->key) == rt->message_id.len &&
	       memcmp(m->key, rt->message_id.bytes, rt->message_id.len) == 0;
}

static void return_why(const amqp_basic_return_t *ret, char *why, size_t len)
{
	snprintf(why, len, "unroutable: exchange '%.*s' has no queue for routing key '%.*s' (%.*s)",
		 (int)ret->exchange.len, (const char *)ret->exchange.bytes, (int)ret->routing_key.len,
		 (const char *)ret->routing_key.bytes, (int)ret->reply_text.len, (const char *)ret->reply_text.bytes);
}

/* A basic.return: find the in-flight message it names and fail it. The
 * broker returns messages in publish order, so the earliest match. */
static void on_return(struct amqp_backend *ab, struct pubstate *ps, amqp_basic_return_t *ret)
{
	amqp_message_t m;
	amqp_rpc_reply_t r = amqp_read_message(ab->k.c, ab->ch, &m, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return;
	char why[256];
	return_why(ret, why, sizeof(why));
	struct returned rt;
	returned_of(&m.properties, &rt);
	for (size_t i = ps->chan_low; i < ps->chan_count; i++) {
		struct mqtx_msg *msg = &ps->msgs[ps->chan_idx[i]];
		if (is_returned(msg, &rt)) {
			/* resolved now; its ack arrives later and changes nothing */
			msg->state = MQTX_MSG_FAILED;
			snprintf(msg->error, sizeof(msg->error), "%s", why);
			mqtx_keyset_add(&ps->blocked, msg->ordering_key);
			ps->inflight--;
			break;
		}
	}
	amqp_destroy_message(&m);
}

/* Reads one frame (waiting until deadline) and applies it. Returns 0, or
 * 1 on timeout, or -1 when the connection is gone. */
static int pump(struct amqp_backend *ab, struct pubstate *ps, int64_t deadline, struct mqtx_err *err)
{
	amqp_frame_t f;
	int st;
	/* in slices: rabbitmq-c restarts its poll on EINTR, so a stop is seen between them */
	for (;;) {
		int64_t stop = mqtx_stop_deadline(ab->opts.stop, ab->opts.stop_grace_ms);
		if (stop != INT64_MAX)
			ps->stop_deadline = stop;
		int64_t left = mqtx_stop_wait_ms(deadline, ab->opts.stop, ab->opts.stop_grace_ms, 200);
		struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
		if (!amqp_frames_enqueued(ab->k.c) && !amqp_data_in_buffer(ab->k.c))
			amqp_maybe_release_buffers(ab->k.c);
		st = amqp_simple_wait_frame_noblock(ab->k.c, &f, &tv);
		if (st != AMQP_STATUS_TIMEOUT)
			break;
		int64_t now = mqtx_now_ms();
		if (now >= deadline || now >= mqtx_stop_deadline(ab->opts.stop, ab->opts.stop_grace_ms))
			return 1;
	}
	if (st != AMQP_STATUS_OK)
		return mqtx_amqp_status_err(&ab->k, st, "lost connection to", err);
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *a = f.payload.method.decoded;
		if (f.channel == ab->ch)
			on_ack(ps, a->delivery_tag, a->multiple, MQTX_MSG_CONFIRMED, NULL);
		return 0;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *a = f.payload.method.decoded;
		if (f.channel == ab->ch)
			on_ack(ps, a->delivery_tag, a->multiple, MQTX_MSG_FAILED,
			       "the broker refused the message (basic.nack)");
		return 0;
	}
	case AMQP_BASIC_RETURN_METHOD:
		if (f.channel == ab->ch)
			on_return(ab, ps, f.payload.method.decoded);
		return 0;
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *c = f.payload.method.decoded;
		amqp_channel_close_ok_t ok;
		ps->channel_closed = true;
		ps->close_code = c->reply_code;
		snprintf(ps->close_text, sizeof(ps->close_text), "%.*s", (int)c->reply_text.len,
			 (const char *)c->reply_text.bytes);
		amqp_send_method(ab->k.c, f.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		return 0;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *c = f.payload.method.decoded;
		amqp_connection_close_ok_t ok;
		amqp_send_method(ab->k.c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		ab->k.broken = true;
		return mqtx_err_retry(err, MQTX_E_BROKER, "broker '%s' closed the connection: %.*s", ab->k.where,
				      (int)c->reply_text.len, (const char *)c->reply_text.bytes);
	}
	default: return 0;
	}
}

static void build_props(const struct mqtx_msg *m, amqp_basic_properties_t *p, amqp_table_entry_t *e,
			char idbuf[MQTX_I64_DIGITS])
{
	size_t k = 0;
	memset(p, 0, sizeof(*p));
	p->_flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
	p->delivery_mode = 2;
	p->message_id = amqp_cstring_bytes(m->key);
	if (m->content_type != NULL && m->content_type[0] != '\0') {
		p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
		p->content_type = amqp_cstring_bytes(m->content_type);
	}
	for (size_t i = 0; i < m->n_headers; i++) {
		e[k].key = amqp_cstring_bytes(m->headers[i].name);
		e[k].value.kind = AMQP_FIELD_KIND_UTF8;
		e[k].value.value.bytes.len = m->headers[i].value_len;
		e[k].value.value.bytes.bytes = (void *)m->headers[i].value;
		k++;
	}
	if (m->id > 0) {
		mqtx_fmt_i64(idbuf, m->id);
		e[k].key = amqp_cstring_bytes("x-mqtx-outbox-id");
		e[k].value.kind = AMQP_FIELD_KIND_UTF8;
		e[k].value.value.bytes = amqp_cstring_bytes(idbuf);
		k++;
	}
	e[k].key = amqp_cstring_bytes("x-mqtx-idempotency-key");
	e[k].value.kind = AMQP_FIELD_KIND_UTF8;
	e[k].value.value.bytes = amqp_cstring_bytes(m->key);
	k++;
	if (m->redelivery_count > 0) {
		e[k].key = amqp_cstring_bytes("x-mqtx-redelivery-count");
		e[k].value.kind = AMQP_FIELD_KIND_I64;
		e[k].value.value.i64 = m->redelivery_count;
		k++;
	}
	p->headers.num_entries = (int)k;
	p->headers.entries = e;
}

/* The encoded size of the properties build_props() makes for m (AMQP
 * 0-9-1 basic properties: 2 flag bytes, then each field present). */
static size_t props_size(const struct mqtx_msg *m)
{
	char idbuf[MQTX_I64_DIGITS];
	size_t sz = 2 + 1 + (1 + strlen(m->key)); /* flags, delivery_mode, message_id */
	if (m->content_type != NULL && m->content_type[0] != '\0')
		sz += 1 + strlen(m->content_type);
	sz += 4; /* the headers table's length */
	for (size_t i = 0; i < m->n_headers; i++)
		sz += 1 + strlen(m->headers[i].name) + 1 + 4 + m->headers[i].value_len;
	if (m->id > 0)
		sz += 1 + 16 + 1 + 4 + mqtx_fmt_i64(idbuf, m->id);
	sz += 1 + 22 + 1 + 4 + strlen(m->key);
	if (m->redelivery_count > 0)
		sz += 1 + 23 + 1 + 8;
	return sz;
}

/* AMQP short strings (names, keys, content type) hold at most 255 bytes. */
static int short_str(const char *what, const char *v, char *why, size_t len)
{
	if (v == NULL || strlen(v) <= 255)
		return 0;
	snprintf(why, len, "%s is %zu bytes; AMQP allows at most 255", what, strlen(v));
	return -1;
}

static int amqp_validate(struct mqtx_backend *b, const struct mqtx_msg *m, char *why, size_t len)
{
	struct amqp_backend *ab = (struct amqp_backend *)b;
	if (short_str("destination (the exchange)", m->destination, why, len) < 0 ||
	    short_str("routing_key", m->routing_key, why, len) < 0 ||
	    short_str("idempotency key (sent as message_id)", m->key, why, len) < 0 ||
	    short_str("content_type", m->content_type, why, len) < 0)
		return -1;
	for (size_t i = 0; i < m->n_headers; i++) {
		if (strlen(m->headers[i].name) > 255) {
			snprintf(why, len, "a header name is %zu bytes (%.40s...); AMQP allows at most 255",
				 strlen(m->headers[i].name), m->headers[i].name);
			return -1;
		}
	}
	/* The properties travel in one content header frame: 7 bytes of frame
	 * header, 12 of class, weight and body size, the properties, 1 end byte. */
	size_t frame_max = ab != NULL ? (size_t)amqp_get_frame_max(ab->k.c) : MQTX_AMQP_FRAME_MAX;
	if (frame_max == 0)
		frame_max = MQTX_AMQP_FRAME_MAX;
	size_t room = frame_max > 20 ? frame_max - 20 : 0;
	size_t sz = props_size(m);
	if (sz > room) {
		snprintf(why, len,
			 "headers and properties are %zu bytes encoded; AMQP carries them in one frame, at most %zu bytes here (frame_max %zu)",
			 sz, room, frame_max);
		return -1;
	}
	return 0;
}

static int send_one(struct amqp_backend *ab, struct mqtx_msg *m, struct mqtx_err *err)
{
	amqp_basic_properties_t props;
	char idbuf[MQTX_I64_DIGITS];
	amqp_table_entry_t stack_e[16];
	amqp_table_entry_t *e = stack_e;
	if (m->n_headers + 3 > 16)
		e = mqtx_xmalloc((m->n_headers + 3) * sizeof(*e));
	build_props(m, &props, e, idbuf);
	amqp_bytes_t body = {.len = m->payload_len, .bytes = (void *)m->payload};
	int st = amqp_basic_publish(ab->k.c, ab->ch, amqp_cstring_bytes(m->destination),
				    amqp_cstring_bytes(m->routing_key ? m->routing_key : ""), 1, 0, &props, body);
	if (e != stack_e)
		free(e);
	if (st != AMQP_STATUS_OK)
		return mqtx_amqp_status_err(&ab->k, st, "cannot publish to", err);
	return 0;
}

static void forget_exchange(struct amqp_backend *ab, const char *name)
{
	for (size_t i = 0; i < ab->n_exchanges; i++) {
		if (strcmp(ab->exchanges[i], name) == 0) {
			free(ab->exchanges[i]);
			ab->exchanges[i] = ab->exchanges[--ab->n_exchanges];
			return;
		}
	}
}

/* After a channel error: fail what the error names. The broker closes the
 * channel at the publish it refuses and discards every frame after it, so
 * messages published after the last unconfirmed one to the named exchange
 * never arrived: they go again on the next channel, in order. The other
 * unconfirmed messages (published before it, or all of them when the error
 * names no exchange) may have arrived: they become UNKNOWN and are not
 * published again in this call (the caller retries them later with the
 * same key), and they hold back the later messages of their ordering keys.
 * What was not handed over yet goes on the next channel too. */
static void after_channel_close(struct amqp_backend *ab, struct pubstate *ps, size_t **todo, size_t *todo_n,
				size_t *pos)
{
	char guilty[256] = "";
	const char *q = strstr(ps->close_text, "exchange '");
	if (q != NULL) {
		q += 10;
		size_t l = strcspn(q, "'");
		if (l < sizeof(guilty)) {
			memcpy(guilty, q, l);
			guilty[l] = '\0';
		}
	}
	char why[256];
	snprintf(why, sizeof(why), "channel error %d: %.200s", ps->close_code, ps->close_text);
	if (q != NULL) { /* the broker named an exchange: later messages to it fail at once */
		forget_exchange(ab, guilty);
		add_missing(ps, guilty, why);
	}
	/* First blame: the messages the error names (or the oldest unconfirmed one). */
	bool blamed = false;
	size_t last_guilty = 0; /* 1 + the tag index of the last one blamed */
	for (size_t i = ps->chan_low; i < ps->chan_count; i++) {
		struct mqtx_msg *m = &ps->msgs[ps->chan_idx[i]];
		if (m->state != MQTX_MSG_UNKNOWN)
			continue;
		if ((q != NULL && strcmp(m->destination, guilty) == 0) || (q == NULL && !blamed)) {
			m->state = MQTX_MSG_FAILED;
			snprintf(m->error, sizeof(m->error), "%s", why);
			mqtx_keyset_add(&ps->blocked, m->ordering_key);
			blamed = true;
			if (q != NULL)
				last_guilty = i + 1;
		}
	}
	size_t rest = *todo_n - *pos;
	size_t *nt = mqtx_xmalloc((ps->chan_count + rest + 1) * sizeof(size_t));
	size_t k = 0;
	for (size_t i = ps->chan_low; i < ps->chan_count; i++) {
		struct mqtx_msg *m = &ps->msgs[ps->chan_idx[i]];
		if (m->state != MQTX_MSG_UNKNOWN)
			continue;
		if (last_guilty > 0 && i >= last_guilty) { /* discarded by the broker: never arrived */
			m->state = MQTX_MSG_PENDING;
			nt[k++] = ps->chan_idx[i];
			continue;
		}
		snprintf(m->error, sizeof(m->error),
			 "maybe delivered: the channel closed before the broker confirmed it (%.120s); sent again later, same key",
			 why);
		mqtx_keyset_add(&ps->blocked, m->ordering_key);
	}
	for (size_t i = *pos; i < *todo_n; i++)
		nt[k++] = (*todo)[i];
	free(*todo);
	*todo = nt;
	*todo_n = k;
	*pos = 0;
	ps->chan_count = ps->chan_low = 0;
	ps->inflight = 0;
	ps->channel_closed = false;
	ps->tag_base = 0;
}

static bool exchange_known(const struct amqp_backend *ab, const char *name)
{
	for (size_t i = 0; i < ab->n_exchanges; i++)
		if (strcmp(ab->exchanges[i], name) == 0)
			return true;
	return false;
}

/* Whether exchange name exists: a passive declare on a scratch channel
 * (a missing exchange closes that channel, not the publishing one).
 * Returns 0 with *why NULL (it exists: remembered for this connection) or
 * set (the broker's refusal), or -1 with err when the connection failed. */
static int check_exchange(struct amqp_backend *ab, const char *name, char *why, size_t len, bool *ok,
			  struct mqtx_err *err)
{
	*ok = false;
	if (mqtx_amqp_channel_open(&ab->k, CHECK_CHANNEL, err) < 0)
		return -1;
	amqp_exchange_declare(ab->k.c, CHECK_CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes("direct"), 1, 0, 0,
			      0, amqp_empty_table);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(ab->k.c);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		*ok = true;
		ab->exchanges = mqtx_xrealloc(ab->exchanges, (ab->n_exchanges + 1) * sizeof(char *));
		ab->exchanges[ab->n_exchanges++] = mqtx_xstrdup(name);
		amqp_channel_close(ab->k.c, CHECK_CHANNEL, AMQP_REPLY_SUCCESS);
		return mqtx_amqp_reply_err(&ab->k, amqp_get_rpc_reply(ab->k.c), 0, "cannot close a channel on", err);
	}
	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
		return mqtx_amqp_reply_err(&ab->k, r, 0, "cannot check an exchange on", err);
	amqp_channel_close_t *c = r.reply.decoded;
	snprintf(why, len, "channel error %d: %.*s (exchange '%.100s' checked before publishing)", c->reply_code,
		 (int)(c->reply_text.len > 150 ? 150 : c->reply_text.len), (const char *)c->reply_text.bytes, name);
	amqp_channel_close_ok_t cok;
	amqp_send_method(ab->k.c, CHECK_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
	return 0;
}

/* Before anything of the call is published: every exchange it names that
 * this connection has not seen yet is checked; the missing ones go into
 * ps->missing, so their messages fail without a channel error. */
static int check_exchanges(struct amqp_backend *ab, struct pubstate *ps, struct mqtx_err *err)
{
	const char *last = NULL;
	for (size_t i = 0; i < ps->n; i++) {
		const char *d = ps->msgs[i].destination;
		if (d[0] == '\0' || (last != NULL && strcmp(last, d) == 0))
			continue; /* the default exchange always exists */
		last = d;
		if (exchange_known(ab, d) || missing_why(ps, d) != NULL)
			continue;
		char why[256];
		bool ok;
		if (check_exchange(ab, d, why, sizeof(why), &ok, err) < 0)
			return -1;
		if (!ok)
			add_missing(ps, d, why);
	}
	return 0;
}

static int publish_confirm(struct amqp_backend *ab, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	struct pubstate ps = {.msgs = msgs, .n = n, .tag_base = ab->published};
	size_t todo_n = n, pos = 0;
	size_t *todo = mqtx_xmalloc((n + 1) * sizeof(size_t));
	int64_t deadline = mqtx_now_ms() + ab->confirm_timeout_ms;
	int rc = 0;
	int reopen = 0;

	for (size_t i = 0; i < n; i++)
		todo[i] = i;
	ps.chan_idx = mqtx_xmalloc((n + 1) * sizeof(size_t));
	if (check_exchanges(ab, &ps, err) < 0)
		goto broken;

	for (;;) {
		while (pos < todo_n && !ps.channel_closed && !mqtx_broker_stopping(ab->opts.stop)) {
			struct mqtx_msg *m = &msgs[todo[pos]];
			const char *gone = missing_why(&ps, m->destination);
			if (gone != NULL) {
				m->state = MQTX_MSG_FAILED;
				snprintf(m->error, sizeof(m->error), "%s", gone);
				mqtx_keyset_add(&ps.blocked, m->ordering_key);
				pos++;
				continue;
			}
			while (ps.inflight >= ab->opts.window && !ps.channel_closed) {
				int p = pump(ab, &ps, deadline, err);
				if (p < 0)
					goto broken;
				if (p == 1)
					goto timeout;
			}
			if (ps.channel_closed)
				break;
			/* take what already arrived without blocking */
			while (amqp_frames_enqueued(ab->k.c) || amqp_data_in_buffer(ab->k.c)) {
				if (pump(ab, &ps, 0, err) < 0)
					goto broken;
			}
			if (ps.channel_closed)
				break;
			/* checked last: a refusal may have arrived while we waited */
			if (mqtx_keyset_has(&ps.blocked, m->ordering_key)) {
				pos++; /* stays PENDING: it must not overtake the failed one */
				continue;
			}
			m->state = MQTX_MSG_UNKNOWN;
			m->error[0] = '\0';
			if (send_one(ab, m, err) < 0) {
				m->state = MQTX_MSG_PENDING; /* never left us as far as we know */
				goto broken;
			}
			ps.chan_idx[ps.chan_count++] = todo[pos];
			ab->published++;
			ps.inflight++;
			pos++;
		}
		if (ps.inflight > 0 && MQTX_FAILPOINT("relay.before_confirm") < 0) {
			mqtx_err_retry(err, MQTX_E_BROKER, "failpoint relay.before_confirm");
			goto broken;
		}
		while (ps.inflight > 0 && !ps.channel_closed) {
			int p = pump(ab, &ps, deadline, err);
			if (p < 0)
				goto broken;
			if (p == 1)
				goto timeout;
		}
		if (!ps.channel_closed)
			break;
		if (++reopen > 50) {
			mqtx_err_set(err, MQTX_E_BROKER, "broker '%s' keeps closing the channel: %s", ab->k.where,
				     ps.close_text);
			ab->k.broken = true;
			rc = -1;
			break;
		}
		mqtx_debug("channel closed by broker (%d %s); reopening", ps.close_code, ps.close_text);
		after_channel_close(ab, &ps, &todo, &todo_n, &pos);
		/* a fresh channel restarts the delivery tags */
		if (open_channel(ab, err) < 0)
			goto broken;
	}
	goto out;
timeout:
	ab->k.broken = true;
	if (ps.stop_deadline != 0 && mqtx_now_ms() < deadline)
		rc = mqtx_err_retry(err, MQTX_E_BROKER,
				    "stopped: %zu message(s) to '%s' still unconfirmed when the shutdown grace ran out",
				    ps.inflight, ab->k.where);
	else
		rc = mqtx_err_retry(err, MQTX_E_BROKER, "no confirm from '%s' within %lldms for %zu message(s)",
				    ab->k.where, (long long)ab->confirm_timeout_ms, ps.inflight);
	goto out;
broken:
	ab->k.broken = true;
	rc = -1;
out:
	for (size_t i = 0; i < ps.n_missing; i++) {
		free(ps.missing[i]);
		free(ps.missing_why[i]);
	}
	free(ps.missing);
	free(ps.missing_why);
	mqtx_keyset_free(&ps.blocked);
	free(ps.chan_idx);
	free(todo);
	return rc;
}

/* ---- TX mode ----
 *
 * RabbitMQ routes the publishes of a transaction only at tx.commit. A
 * mandatory message that no queue takes comes back as basic.return before
 * tx.commit-ok, when the other messages of the transaction have already
 * been routed: the return cannot be rolled back. Such a message is FAILED
 * (matched like a return in confirm mode: by outbox id) and the others
 * CONFIRMED. A channel error before tx.commit-ok (a missing exchange)
 * discards the whole transaction: every message FAILED. */

struct txwait {
	struct mqtx_msg *msgs;
	size_t n;
	char close_text[256]; /* the broker closed the channel: why */
};

static void tx_on_return(struct amqp_backend *ab, struct txwait *tw, const amqp_basic_return_t *ret)
{
	char why[256];
	return_why(ret, why, sizeof(why));
	amqp_message_t m;
	if (amqp_read_message(ab->k.c, ab->ch, &m, 0).reply_type != AMQP_RESPONSE_NORMAL)
		return; /* the next read reports the broken connection */
	struct returned rt;
	returned_of(&m.properties, &rt);
	for (size_t i = 0; i < tw->n; i++) {
		struct mqtx_msg *msg = &tw->msgs[i];
		if (is_returned(msg, &rt)) {
			msg->state = MQTX_MSG_FAILED;
			snprintf(msg->error, sizeof(msg->error), "%s", why);
			break;
		}
	}
	amqp_destroy_message(&m);
}

/* Waits for method `want` on the publishing channel, taking returns on the
 * way. Returns 0 when it came, 1 when the broker closed the channel
 * instead (tw->close_text says why; the transaction is gone), -1 with err
 * when the connection failed or nothing came before deadline. With want
 * 0 it only takes what has arrived already and returns 2 when that is
 * all. */
static int tx_wait(struct amqp_backend *ab, struct txwait *tw, amqp_method_number_t want, const char *what,
		   int64_t deadline, struct mqtx_err *err)
{
	for (;;) {
		amqp_frame_t f;
		int64_t left = want == 0 ? 0 : deadline - mqtx_now_ms();
		if (left < 0)
			left = 0;
		struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
		int st = amqp_simple_wait_frame_noblock(ab->k.c, &f, &tv);
		if (st == AMQP_STATUS_TIMEOUT && want == 0)
			return 2;
		if (st == AMQP_STATUS_TIMEOUT) {
			ab->k.broken = true;
			return mqtx_err_retry(err, MQTX_E_BROKER, "no answer to %s from '%s' within %lldms", what,
					      ab->k.where, (long long)ab->confirm_timeout_ms);
		}
		if (st != AMQP_STATUS_OK) {
			ab->k.broken = true;
			return mqtx_err_retry(err, MQTX_E_BROKER,
					      "lost connection to '%s' waiting for the answer to %s: %s", ab->k.where,
					      what, amqp_error_string2(st));
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.channel == 0 && f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *c = f.payload.method.decoded;
			amqp_connection_close_ok_t ok;
			amqp_send_method(ab->k.c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
			ab->k.broken = true;
			return mqtx_err_retry(err, MQTX_E_BROKER, "broker '%s' closed the connection during %s: %.*s",
					      ab->k.where, what, (int)c->reply_text.len,
					      (const char *)c->reply_text.bytes);
		}
		if (f.channel != ab->ch)
			continue;
		if (want != 0 && f.payload.method.id == want)
			return 0;
		if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
			tx_on_return(ab, tw, f.payload.method.decoded);
		} else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *c = f.payload.method.decoded;
			amqp_channel_close_ok_t ok;
			snprintf(tw->close_text, sizeof(tw->close_text), "channel error %d: %.*s", c->reply_code,
				 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
			amqp_send_method(ab->k.c, ab->ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
			return 1;
		}
	}
}

static void tx_set_all(struct mqtx_msg *msgs, size_t n, enum mqtx_msg_state st, const char *why)
{
	for (size_t i = 0; i < n; i++) {
		msgs[i].state = st;
		snprintf(msgs[i].error, sizeof(msgs[i].error), "%s", why);
	}
}

/* The channel closed under a transaction: every message failed. */
static int tx_discarded(struct amqp_backend *ab, struct txwait *tw, struct mqtx_err *err)
{
	char why[256];
	snprintf(why, sizeof(why), "%.200s (transaction discarded)", tw->close_text);
	tx_set_all(tw->msgs, tw->n, MQTX_MSG_FAILED, why);
	return open_channel(ab, err) < 0 ? -1 : 0;
}

static int send_method(struct amqp_backend *ab, amqp_method_number_t id, void *m, const char *what,
		       struct mqtx_err *err)
{
	int st = amqp_send_method(ab->k.c, ab->ch, id, m);
	if (st != AMQP_STATUS_OK) {
		ab->k.broken = true;
		return mqtx_err_retry(err, MQTX_E_BROKER, "cannot send %s to '%s': %s", what, ab->k.where,
				      amqp_error_string2(st));
	}
	return 0;
}

static int publish_tx(struct amqp_backend *ab, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	struct txwait tw = {.msgs = msgs, .n = n};
	int64_t deadline = mqtx_now_ms() + ab->confirm_timeout_ms;

	/* Until tx.commit is sent nothing can be routed: PENDING (or FAILED)
	 * messages were not published, whatever happens to the connection. */
	tx_set_all(msgs, n, MQTX_MSG_PENDING, "");
	for (size_t i = 0; i < n; i++)
		if (send_one(ab, &msgs[i], err) < 0)
			return -1;

	const char *rollback_why = NULL;
	struct mqtx_err herr;
	mqtx_err_clear(&herr);
	if (ab->opts.before_commit != NULL) {
		/* basic.qos is synchronous and changes nothing for a publisher: its
		 * -ok comes after the broker has taken every publish before it, so
		 * a channel error shows now, before the callback acts. */
		amqp_basic_qos_t q = {0};
		if (send_method(ab, AMQP_BASIC_QOS_METHOD, &q, "basic.qos", err) < 0)
			return -1;
		int r = tx_wait(ab, &tw, AMQP_BASIC_QOS_OK_METHOD, "basic.qos", deadline, err);
		if (r < 0)
			return -1;
		if (r == 1)
			return tx_discarded(ab, &tw, err);
		if (!mqtx_broker_stopping(ab->opts.stop) &&
		    ab->opts.before_commit(ab->opts.before_commit_ctx, &herr) != 0)
			rollback_why = herr.msg[0] != '\0' ? herr.msg : "refused before commit";
	}
	if (mqtx_broker_stopping(ab->opts.stop) || rollback_why != NULL) {
		char why[256];
		snprintf(why, sizeof(why), "transaction rolled back: %.200s",
			 rollback_why != NULL ? rollback_why : "stopped");
		tx_set_all(msgs, n, rollback_why != NULL ? MQTX_MSG_FAILED : MQTX_MSG_PENDING,
			   rollback_why != NULL ? why : "");
		amqp_tx_rollback_t rb = {0};
		if (send_method(ab, AMQP_TX_ROLLBACK_METHOD, &rb, "tx.rollback", err) < 0)
			return -1;
		int r = tx_wait(ab, &tw, AMQP_TX_ROLLBACK_OK_METHOD, "tx.rollback", deadline, err);
		if (r < 0)
			return -1;
		if (r == 1 && open_channel(ab, err) < 0)
			return -1;
		return 0;
	}

	/* A broker that went away meanwhile has said so already: then the
	 * commit was never sent and nothing was published. */
	if (MQTX_FAILPOINT("backend.before_tx_commit") < 0) {
		ab->k.broken = true;
		return mqtx_err_retry(err, MQTX_E_BROKER,
				      "failpoint backend.before_tx_commit: connection to '%s' given up", ab->k.where);
	}
	int d = tx_wait(ab, &tw, 0, "publishing", deadline, err);
	if (d < 0)
		return -1;
	if (d == 1)
		return tx_discarded(ab, &tw, err);

	tx_set_all(msgs, n, MQTX_MSG_UNKNOWN, "");
	amqp_tx_commit_t commit = {0};
	if (send_method(ab, AMQP_TX_COMMIT_METHOD, &commit, "tx.commit", err) < 0) {
		tx_set_all(msgs, n, MQTX_MSG_UNKNOWN,
			   "tx.commit may or may not have reached the broker: outcome unknown");
		return -1;
	}
	int r = tx_wait(ab, &tw, AMQP_TX_COMMIT_OK_METHOD, "tx.commit", deadline, err);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			if (msgs[i].state == MQTX_MSG_UNKNOWN)
				snprintf(msgs[i].error, sizeof(msgs[i].error),
					 "no answer to tx.commit: outcome unknown");
		return -1;
	}
	if (r == 1)
		return tx_discarded(ab, &tw, err);
	if (MQTX_FAILPOINT("backend.after_tx_commit") < 0) {
		/* as if the connection broke just before tx.commit-ok arrived */
		ab->k.broken = true;
		for (size_t i = 0; i < n; i++)
			if (msgs[i].state == MQTX_MSG_UNKNOWN)
				snprintf(msgs[i].error, sizeof(msgs[i].error),
					 "no answer to tx.commit: outcome unknown");
		return mqtx_err_retry(err, MQTX_E_BROKER,
				      "failpoint backend.after_tx_commit: lost the answer to tx.commit from '%s'",
				      ab->k.where);
	}
	for (size_t i = 0; i < n; i++)
		if (msgs[i].state == MQTX_MSG_UNKNOWN)
			msgs[i].state = MQTX_MSG_CONFIRMED;
	return 0;
}

static int amqp_publish(struct mqtx_backend *b, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	struct amqp_backend *ab = (struct amqp_backend *)b;
	if (ab->k.broken)
		return mqtx_err_retry(err, MQTX_E_BROKER, "connection to '%s' is broken", ab->k.where);
	if (n == 0)
		return 0;
	if (ab->opts.mode == MQTX_PUB_TX)
		return publish_tx(ab, msgs, n, err);
	return publish_confirm(ab, msgs, n, err);
}

static int amqp_inspect(struct mqtx_backend *b, const char *destination, const char *queue, struct mqtx_dest_info *info,
			struct mqtx_err *err)
{
	struct amqp_backend *ab = (struct amqp_backend *)b;
	memset(info, 0, sizeof(*info));
	info->depth = info->consumers = -1;
	/* Passive declares close the channel when the object is missing: use a scratch channel. */
	amqp_channel_t ch = (amqp_channel_t)(ab->ch + 1000);
	if (mqtx_amqp_channel_open(&ab->k, ch, err) < 0)
		return -1;
	if (destination != NULL) {
		if (destination[0] == '\0') {
			info->exists = true; /* the default exchange always exists */
		} else {
			amqp_exchange_declare(ab->k.c, ch, amqp_cstring_bytes(destination),
					      amqp_cstring_bytes("direct"), 1, 0, 0, 0, amqp_empty_table);
			amqp_rpc_reply_t r = amqp_get_rpc_reply(ab->k.c);
			info->exists = r.reply_type == AMQP_RESPONSE_NORMAL;
			if (!info->exists) {
				snprintf(info->detail, sizeof(info->detail), "exchange '%s' does not exist",
					 destination);
				if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
				    r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
					return mqtx_amqp_reply_err(&ab->k, r, 0, "cannot inspect exchange on", err);
				/* the broker closed the scratch channel: confirm, so that it can be opened again */
				amqp_channel_close_ok_t cok;
				amqp_send_method(ab->k.c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
				if (mqtx_amqp_channel_open(&ab->k, ch, err) < 0)
					return -1;
			}
		}
	}
	if (queue != NULL) {
		amqp_queue_declare_ok_t *ok = amqp_queue_declare(ab->k.c, ch, amqp_cstring_bytes(queue), 1, 0, 0, 0,
								 amqp_empty_table);
		amqp_rpc_reply_t r = amqp_get_rpc_reply(ab->k.c);
		if (r.reply_type == AMQP_RESPONSE_NORMAL && ok != NULL) {
			info->depth = ok->message_count;
			info->consumers = ok->consumer_count;
		} else {
			if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
				return mqtx_amqp_reply_err(&ab->k, r, 0, "cannot inspect queue on", err);
			amqp_channel_close_ok_t cok;
			amqp_send_method(ab->k.c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &cok);
			info->exists = false;
			snprintf(info->detail, sizeof(info->detail), "queue '%s' does not exist", queue);
			return 0;
		}
	}
	amqp_channel_close(ab->k.c, ch, AMQP_REPLY_SUCCESS);
	return 0;
}

/* ---- consuming (ack queues) ----
 *
 * basic.get on a channel of its own, so nothing arrives unasked and the
 * publishing channel's frames never mix in. Messages stay unacknowledged
 * until consume_ack(); a broken connection returns them to the queue. */

#define CONSUME_CHANNEL 4000 /* apart from publishing (1..2000) and inspect's scratch channels */

struct amqp_consumer {
	bool open;         /* the channel is open */
	uint64_t last_tag; /* last delivery tag taken and not acknowledged, 0: none */
	amqp_message_t *msgs;
	struct mqtx_delivery *dels;
	size_t n, cap;
};

static void consumer_clear(struct amqp_consumer *c)
{
	for (size_t i = 0; i < c->n; i++)
		amqp_destroy_message(&c->msgs[i]);
	c->n = 0;
}

static void consumer_free(struct amqp_backend *ab)
{
	if (ab->cons == NULL)
		return;
	consumer_clear(ab->cons);
	free(ab->cons->msgs);
	free(ab->cons->dels);
	free(ab->cons);
	ab->cons = NULL;
}

static const amqp_bytes_t *key_header(const amqp_basic_properties_t *p)
{
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];
		if (e->key.len == 22 && memcmp(e->key.bytes, "x-mqtx-idempotency-key", 22) == 0 &&
		    (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES))
			return &e->value.value.bytes;
	}
	return NULL;
}

static int amqp_consume(struct mqtx_backend *b, const struct mqtx_consume_opts *o, const struct mqtx_delivery **out,
			struct mqtx_err *err)
{
	struct amqp_backend *ab = (struct amqp_backend *)b;
	if (ab->k.broken)
		return mqtx_err_retry(err, MQTX_E_BROKER, "connection to '%s' is broken", ab->k.where);
	if (ab->cons == NULL)
		ab->cons = mqtx_xcalloc(1, sizeof(*ab->cons));
	struct amqp_consumer *c = ab->cons;
	if (c->n > 0 && c->last_tag == 0)
		consumer_clear(c); /* acknowledged already: let go of the bodies */
	if (!c->open) {
		if (mqtx_amqp_channel_open(&ab->k, CONSUME_CHANNEL, err) < 0)
			return -1;
		c->open = true;
	}
	int64_t deadline = mqtx_now_ms() + o->wait_ms;
	size_t start = c->n;
	while (c->n - start < o->max) {
		amqp_rpc_reply_t r = amqp_basic_get(ab->k.c, CONSUME_CHANNEL, amqp_cstring_bytes(o->source), 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			c->open = false;
			/* a channel error (say, no such queue) also drops what this channel held unacknowledged */
			c->last_tag = 0;
			consumer_clear(c);
			*out = NULL;
			if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
				amqp_channel_close_ok_t ok;
				amqp_send_method(ab->k.c, CONSUME_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
			}
			mqtx_amqp_reply_err(&ab->k, r, 0, "cannot take a message from", err);
			mqtx_err_prefix(err, "ack queue '%s'", o->source);
			return -1;
		}
		if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
			if (c->n > start || mqtx_now_ms() >= deadline || mqtx_broker_stopping(ab->opts.stop))
				break;
			mqtx_sleep_ms(100);
			continue;
		}
		uint64_t tag = ((amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 64;
			c->msgs = mqtx_xrealloc(c->msgs, c->cap * sizeof(*c->msgs));
			c->dels = mqtx_xrealloc(c->dels, c->cap * sizeof(*c->dels));
		}
		amqp_message_t *m = &c->msgs[c->n];
		r = amqp_read_message(ab->k.c, CONSUME_CHANNEL, m, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			mqtx_amqp_reply_err(&ab->k, r, 0, "cannot read a message from", err);
			ab->k.broken = true;
			return -1;
		}
		c->last_tag = tag;
		struct mqtx_delivery *d = &c->dels[c->n];
		memset(d, 0, sizeof(*d));
		d->body = m->body.bytes;
		d->body_len = m->body.len;
		const amqp_bytes_t *h = key_header(&m->properties);
		if (h != NULL) {
			/* NUL-terminated copy in the message's own pool */
			char *k = amqp_pool_alloc(&m->pool, h->len + 1);
			if (k == NULL)
				abort();
			memcpy(k, h->bytes, h->len);
			k[h->len] = '\0';
			d->key_header = k;
			d->key_header_len = h->len;
		}
		c->n++;
	}
	*out = c->dels + start;
	return (int)(c->n - start);
}

static int amqp_consume_ack(struct mqtx_backend *b, struct mqtx_err *err)
{
	struct amqp_backend *ab = (struct amqp_backend *)b;
	struct amqp_consumer *c = ab->cons;
	if (c == NULL || c->last_tag == 0)
		return 0;
	int st = amqp_basic_ack(ab->k.c, CONSUME_CHANNEL, c->last_tag, 1);
	if (st != AMQP_STATUS_OK)
		return mqtx_amqp_status_err(&ab->k, st, "cannot acknowledge messages on", err);
	c->last_tag = 0;
	consumer_clear(c);
	return 0;
}

const struct mqtx_backend_ops mqtx_backend_amqp = {
	.name = "amqp",
	.dest_noun = "exchange",
	.caps = MQTX_CAP_TRANSACTIONS | MQTX_CAP_QUEUES | MQTX_CAP_CONSUME | MQTX_CAP_INSPECT | MQTX_CAP_READ |
		MQTX_CAP_DESTRUCTIVE_READ,
	.schemes = amqp_schemes,
	.open = amqp_open,
	.close = amqp_close,
	.publish = amqp_publish,
	.validate = amqp_validate,
	.inspect = amqp_inspect,
	.consume = amqp_consume,
	.consume_ack = amqp_consume_ack,
	.read = mqtx_amqp_read,
	.read_check = mqtx_amqp_read_check,
};
