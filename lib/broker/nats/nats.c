/* NATS JetStream backend through libnats (the C client). Every libnats
 * status and every JetStream API answer is translated into struct
 * mqtx_err or a message's outcome here and nowhere else.
 *
 * Confirm mode: JetStream publish acknowledgements, asynchronous with a
 * window. Each message is published (core NATS PUB) to its subject with a
 * reply subject of its own under a private inbox; the stream that
 * captures the subject answers there with a pub ack ({"stream","seq"},
 * "duplicate": true when the Nats-Msg-Id was seen within the stream's
 * duplicate window) or an error. At most opts->window messages wait for
 * their ack. The acks are read from a synchronous subscription in the
 * caller's thread, so no callback runs on libnats's threads.
 *
 * Subject: destination, plus "." and the routing key when the row has a
 * non-empty routing key. Subjects are looked up before anything is
 * published ($JS.API.STREAM.NAMES with a subject filter), so a subject no
 * stream captures fails only its own messages; a stream deleted in
 * between answers "no responders", which fails the message too.
 * A dropped connection is not reconnected: publish() returns -1 and the
 * caller opens a new one. No transactions. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <nats/nats.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/internal.h"
#include "broker/window.h"
#include "broker/nats/nats.h"
#include "broker/nats/url.h"
#include "base/failpoint.h"
#include "base/json.h"
#include "base/log.h"
#include "base/stop.h"
#include "base/util.h"

/* How long a subject's stream is trusted. */
#define STREAM_TTL_MS 10000
/* nats-server refuses a JetStream message with more header bytes than this. */
#define JS_MAX_HEADER_BYTES 65535

struct subject_entry {
	char *subject;
	char *stream; /* owned; NULL: no stream captures the subject, see why */
	char why[200];
	int64_t fetched_at;
	uint64_t call;
};

struct nats_backend {
	struct mqtx_backend base; /* must be first */
	natsConnection *nc;
	natsSubscription *acks; /* sync, on inbox.* */
	char *inbox;            /* owned: the reply prefix of this connection */
	struct mqtx_backend_opts opts;
	int64_t confirm_timeout_ms;
	int64_t connect_timeout_ms;
	char *where; /* redacted URL for messages */
	int64_t max_payload;
	bool broken;

	struct subject_entry *subjects;
	size_t n_subjects;
	/* The publish call in progress: message i has its window token as
	 * reply token; acks for an earlier call's tokens are dropped. */
	struct mqtx_window win;
	size_t duplicates;
};

static const char *const nats_schemes[] = {"nats", "tls", NULL};

/* ---- connecting (shared with the reader) ---- */

int mqtx_nats_connect(const struct mqtx_config *cfg, const struct mqtx_nats_url *u, const char *where, const char *name,
		      int64_t write_deadline_ms, natsConnection **out, struct mqtx_err *err)
{
	natsOptions *o = NULL;
	char *file_password = NULL;
	int rc = -1;
	*out = NULL;
	if (mqtx_backend_password(cfg, &file_password, err) < 0)
		return -1;
	const char *password = file_password != NULL ? file_password : u->password;
	if (natsOptions_Create(&o) != NATS_OK) {
		mqtx_err_set(err, MQTX_E_INTERNAL, "cannot create NATS connection options");
		goto out;
	}
	natsOptions_SetURL(o, u->server);
	natsOptions_SetName(o, name != NULL ? name : "mqtx");
	natsOptions_SetAllowReconnect(o, false);
	natsOptions_SetTimeout(o, cfg->broker_connect_timeout_ms > 0 ? cfg->broker_connect_timeout_ms : 5000);
	if (write_deadline_ms > 0)
		natsOptions_SetWriteDeadline(o, write_deadline_ms);
	if (cfg->broker_heartbeat_ms > 0)
		natsOptions_SetPingInterval(o, cfg->broker_heartbeat_ms);
	/* a user: user and password authentication; a password without a user
	 * (broker.password_file, nats://:PASSWORD@...): an authentication token */
	if (u->user != NULL && u->user[0] != '\0')
		natsOptions_SetUserInfo(o, u->user, password != NULL ? password : "");
	else if (password != NULL && password[0] != '\0')
		natsOptions_SetToken(o, password);
	if (u->tls) {
		natsOptions_SetSecure(o, true);
		if (cfg->broker_tls_ca_file != NULL &&
		    natsOptions_LoadCATrustedCertificates(o, cfg->broker_tls_ca_file) != NATS_OK) {
			mqtx_err_set(err, MQTX_E_CONFIG, "cannot load CA file '%s' (broker.tls.ca_file)",
				     cfg->broker_tls_ca_file);
			goto out;
		}
		if (cfg->broker_tls_cert_file != NULL && cfg->broker_tls_key_file != NULL &&
		    natsOptions_LoadCertificatesChain(o, cfg->broker_tls_cert_file, cfg->broker_tls_key_file) !=
			    NATS_OK) {
			mqtx_err_set(err, MQTX_E_CONFIG,
				     "cannot load client certificate '%s' or key '%s' (broker.tls.cert_file, broker.tls.key_file)",
				     cfg->broker_tls_cert_file, cfg->broker_tls_key_file);
			goto out;
		}
		if (!cfg->broker_tls_verify) {
			natsOptions_SkipServerVerification(o, true);
			mqtx_warn("TLS certificate verification is OFF for '%s' (broker.tls.verify: false): anyone on the path can read and change messages",
				  where);
		}
	} else if (cfg->broker_tls_ca_file != NULL || cfg->broker_tls_cert_file != NULL) {
		mqtx_warn("broker.tls.* is set but '%s' is a nats:// URL: the connection is not encrypted (use tls://)",
			  where);
	}
	natsStatus s = natsConnection_Connect(out, o);
	if (s != NATS_OK) {
		*out = NULL;
		/* libnats's text names the status; it holds no credential (the URL it got has none) */
		mqtx_err_retry(err, MQTX_E_BROKER, "cannot connect to '%s': %s", where, natsStatus_GetText(s));
		goto out;
	}
	rc = 0;
out:
	natsOptions_Destroy(o);
	if (file_password != NULL) {
		explicit_bzero(file_password, strlen(file_password));
		free(file_password);
	}
	return rc;
}

/* A JetStream API request: subj with body, answer parsed into *out (owned).
 * Returns 0; 1 when nothing answers (no JetStream); -1 with err. */
int mqtx_nats_api(natsConnection *nc, const char *subj, const char *body, int64_t timeout_ms, const char *where,
		  struct mqtx_json **out, struct mqtx_err *err)
{
	natsMsg *reply = NULL;
	*out = NULL;
	natsStatus s = natsConnection_RequestString(&reply, nc, subj, body != NULL ? body : "", timeout_ms);
	if (s == NATS_NO_RESPONDERS)
		return 1;
	if (s != NATS_OK)
		return mqtx_err_retry(err, MQTX_E_BROKER, "JetStream request '%s' to '%s' failed: %s", subj, where,
				      natsStatus_GetText(s));
	struct mqtx_err je = {0};
	*out = mqtx_json_parse(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), &je);
	natsMsg_Destroy(reply);
	if (*out == NULL || (*out)->type != MQTX_JSON_OBJECT) {
		mqtx_json_free(*out);
		*out = NULL;
		return mqtx_err_set(err, MQTX_E_BROKER, "JetStream answer to '%s' from '%s' is not a JSON object", subj,
				    where);
	}
	return 0;
}

int mqtx_nats_stream_info(natsConnection *nc, const char *stream, int64_t timeout_ms, const char *where,
			  struct mqtx_json **out, struct mqtx_err *err)
{
	size_t sl = strlen(stream) + 32;
	char *subj = mqtx_xmalloc(sl);
	snprintf(subj, sl, "$JS.API.STREAM.INFO.%s", stream);
	int r = mqtx_nats_api(nc, subj, "", timeout_ms, where, out, err);
	free(subj);
	return r;
}

/* The JetStream API error in an answer, or NULL. */
const char *mqtx_nats_api_error(const struct mqtx_json *ans, int *code)
{
	const struct mqtx_json *e = mqtx_json_get(ans, "error");
	if (e == NULL || e->type != MQTX_JSON_OBJECT)
		return NULL;
	const struct mqtx_json *c = mqtx_json_get(e, "code");
	*code = c != NULL && c->type == MQTX_JSON_NUMBER ? (int)c->number : 0;
	const struct mqtx_json *d = mqtx_json_get(e, "description");
	return d != NULL && d->type == MQTX_JSON_STRING ? d->str : "unknown JetStream error";
}

/* The name of the stream capturing subject into *stream (owned, NULL for
 * none; then why says so). Returns 0, or -1 with err. */
int mqtx_nats_stream_for(natsConnection *nc, const char *subject, int64_t timeout_ms, const char *where, char **stream,
			 char *why, size_t len, struct mqtx_err *err)
{
	struct mqtx_buf body = {0};
	struct mqtx_json *ans = NULL;
	*stream = NULL;
	mqtx_buf_adds(&body, "{\"subject\":");
	mqtx_json_add_cstr(&body, subject);
	mqtx_buf_addc(&body, '}');
	int r = mqtx_nats_api(nc, "$JS.API.STREAM.NAMES", body.data, timeout_ms, where, &ans, err);
	mqtx_buf_free(&body);
	if (r < 0)
		return -1;
	if (r == 1) {
		snprintf(why, len, "'%s' has no JetStream (start nats-server with -js)", where);
		return 0;
	}
	int code = 0;
	const char *je = mqtx_nats_api_error(ans, &code);
	const struct mqtx_json *names = mqtx_json_get(ans, "streams");
	if (je != NULL) {
		snprintf(why, len, "cannot look up the stream of subject '%.100s': %.80s (%d)", subject, je, code);
	} else if (names != NULL && names->type == MQTX_JSON_ARRAY && names->count > 0 &&
		   names->items[0]->type == MQTX_JSON_STRING) {
		*stream = mqtx_xstrdup(names->items[0]->str);
		why[0] = '\0';
	} else {
		snprintf(why, len, "no JetStream stream captures subject '%.150s'", subject);
	}
	mqtx_json_free(ans);
	return 0;
}

/* ---- open/close ---- */

static void free_subjects(struct nats_backend *nb)
{
	for (size_t i = 0; i < nb->n_subjects; i++) {
		free(nb->subjects[i].subject);
		free(nb->subjects[i].stream);
	}
	free(nb->subjects);
	nb->subjects = NULL;
	nb->n_subjects = 0;
}

/* Closes the connection now. libnats takes about 500 ms to close one whose
 * link stalled, so a publish() that gives up does it at once, in the
 * caller's thread (the relay's lanes close theirs side by side), instead
 * of leaving it to close() after the stop grace. */
static void drop_connection(struct nats_backend *nb)
{
	if (nb->acks != NULL)
		natsSubscription_Destroy(nb->acks);
	nb->acks = NULL;
	if (nb->nc != NULL) {
		int64_t t0 = mqtx_now_ms();
		natsConnection_Close(nb->nc);
		natsConnection_Destroy(nb->nc);
		mqtx_debug("nats: closed '%s' in %lldms", nb->where, (long long)(mqtx_now_ms() - t0));
	}
	nb->nc = NULL;
	nb->broken = true;
}

static void nats_close(struct mqtx_backend *b)
{
	struct nats_backend *nb = (struct nats_backend *)b;
	if (nb == NULL)
		return;
	drop_connection(nb);
	free_subjects(nb);
	mqtx_window_free(&nb->win);
	free(nb->inbox);
	free(nb->where);
	free(nb);
}

static struct mqtx_backend *nats_open(const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
				      struct mqtx_err *err)
{
	struct nats_backend *nb = mqtx_xcalloc(1, sizeof(*nb));
	struct mqtx_nats_url u;
	nb->base.ops = &mqtx_backend_nats;
	nb->opts = *opts;
	if (nb->opts.window == 0)
		nb->opts.window = 1024;
	nb->confirm_timeout_ms = cfg->broker_confirm_timeout_ms > 0 ? cfg->broker_confirm_timeout_ms : 30000;
	nb->connect_timeout_ms = cfg->broker_connect_timeout_ms > 0 ? cfg->broker_connect_timeout_ms : 5000;
	nb->where = mqtx_redact(cfg->broker_url);
	nb->win.next = 1;
	if (opts->mode == MQTX_PUB_TX) {
		mqtx_err_set(err, MQTX_E_USAGE,
			     "NATS JetStream ('%s') has no transactions: use the confirm mode (publish acknowledgements)",
			     nb->where);
		goto fail;
	}
	if (mqtx_nats_url_parse(cfg->broker_url, nb->where, false, &u, err) < 0)
		goto fail;
	/* A write that cannot finish (a stalled link) fails instead of blocking
	 * past the confirm timeout or a stop's grace. */
	int64_t wd = nb->confirm_timeout_ms;
	if (opts->stop_grace_ms > 0 && opts->stop_grace_ms < wd)
		wd = opts->stop_grace_ms;
	int r = mqtx_nats_connect(cfg, &u, nb->where, opts->client_name, wd < 100 ? 100 : wd, &nb->nc, err);
	mqtx_nats_url_free(&u);
	if (r < 0)
		goto fail;
	nb->max_payload = natsConnection_GetMaxPayload(nb->nc);
	natsInbox *inbox = NULL;
	if (natsInbox_Create(&inbox) != NATS_OK) {
		mqtx_err_set(err, MQTX_E_INTERNAL, "cannot create a NATS inbox");
		goto fail;
	}
	size_t il = strlen(inbox) + 3;
	nb->inbox = mqtx_xmalloc(il);
	snprintf(nb->inbox, il, "%s", inbox);
	char *wild = mqtx_xmalloc(il);
	snprintf(wild, il, "%s.*", inbox);
	natsInbox_Destroy(inbox);
	natsStatus s = natsConnection_SubscribeSync(&nb->acks, nb->nc, wild);
	free(wild);
	if (s == NATS_OK) {
		/* no limit of libnats's own on pending acks: the window bounds them */
		natsSubscription_SetPendingLimits(nb->acks, -1, -1);
		s = natsConnection_FlushTimeout(nb->nc, nb->connect_timeout_ms);
	}
	if (s != NATS_OK) {
		mqtx_err_retry(err, MQTX_E_BROKER, "cannot subscribe to publish acknowledgements on '%s': %s",
			       nb->where, natsStatus_GetText(s));
		goto fail;
	}
	mqtx_debug("connected to '%s' (max_payload %lld)", nb->where, (long long)nb->max_payload);
	return &nb->base;
fail:
	nats_close(&nb->base);
	return NULL;
}

/* ---- subjects ---- */

/* The entry for subject, fresh enough for this call. An unusable subject
 * is looked up again in every call, a usable one every STREAM_TTL_MS. */
static struct subject_entry *subject_get(struct nats_backend *nb, const char *subject, struct mqtx_err *err)
{
	struct subject_entry *t = NULL;
	for (size_t i = 0; i < nb->n_subjects; i++)
		if (strcmp(nb->subjects[i].subject, subject) == 0)
			t = &nb->subjects[i];
	if (t == NULL) {
		nb->subjects = mqtx_xrealloc(nb->subjects, (nb->n_subjects + 1) * sizeof(*nb->subjects));
		t = &nb->subjects[nb->n_subjects++];
		memset(t, 0, sizeof(*t));
		t->subject = mqtx_xstrdup(subject);
	} else if (t->call == nb->win.call || (t->stream != NULL && mqtx_now_ms() - t->fetched_at < STREAM_TTL_MS)) {
		return t;
	}
	free(t->stream);
	t->stream = NULL;
	if (mqtx_nats_stream_for(nb->nc, subject, nb->connect_timeout_ms, nb->where, &t->stream, t->why, sizeof(t->why),
				 err) < 0)
		return NULL;
	t->fetched_at = mqtx_now_ms();
	t->call = nb->win.call;
	return t;
}

/* ---- publishing ---- */

static void fail_msg(struct nats_backend *nb, struct mqtx_msg *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_msg(struct nats_backend *nb, struct mqtx_msg *m, const char *fmt, ...)
{
	va_list ap;
	m->state = MQTX_MSG_FAILED;
	va_start(ap, fmt);
	vsnprintf(m->error, sizeof(m->error), fmt, ap);
	va_end(ap);
	mqtx_keyset_add(&nb->win.blocked, m->ordering_key);
}

/* One ack: its message's outcome. */
static void on_ack(struct nats_backend *nb, natsMsg *a)
{
	const char *subj = natsMsg_GetSubject(a);
	size_t il = strlen(nb->inbox);
	if (strncmp(subj, nb->inbox, il) != 0 || subj[il] != '.')
		return;
	uint64_t tok = strtoull(subj + il + 1, NULL, 10);
	size_t i;
	if (!mqtx_window_index(&nb->win, tok, &i))
		return; /* not one of this call's messages */
	if (!nb->win.awaiting[i])
		return;
	nb->win.awaiting[i] = false;
	nb->win.outstanding--;
	struct mqtx_msg *m = &nb->win.msgs[i];
	char sub[160];
	snprintf(sub, sizeof(sub), "%.100s%s%.50s", m->destination, m->routing_key && m->routing_key[0] ? "." : "",
		 m->routing_key && m->routing_key[0] ? m->routing_key : "");
	if (natsMsg_IsNoResponders(a)) {
		fail_msg(nb, m, "no JetStream stream captures subject '%s'", sub);
		return;
	}
	struct mqtx_err je = {0};
	struct mqtx_json *ans = mqtx_json_parse(natsMsg_GetData(a), (size_t)natsMsg_GetDataLength(a), &je);
	if (ans == NULL || ans->type != MQTX_JSON_OBJECT) {
		m->state = MQTX_MSG_UNKNOWN;
		snprintf(m->error, sizeof(m->error),
			 "the publish acknowledgement for subject '%s' is not JSON: outcome unknown", sub);
		mqtx_json_free(ans);
		return;
	}
	int code = 0;
	const char *e = mqtx_nats_api_error(ans, &code);
	if (e != NULL) {
		char text[160];
		snprintf(text, sizeof(text), "%.120s (%d)", e, code);
		fail_msg(nb, m, "JetStream refused the message to subject '%s': %s", sub, text);
	} else {
		const struct mqtx_json *d = mqtx_json_get(ans, "duplicate");
		if (d != NULL && d->type == MQTX_JSON_BOOL && d->boolean) {
			/* the stream holds it already (same Nats-Msg-Id within its duplicate window) */
			nb->duplicates++;
			mqtx_debug("nats: message %lld to '%s' was a duplicate within the stream's window",
				   (long long)m->id, sub);
		}
		m->state = MQTX_MSG_CONFIRMED;
		m->error[0] = '\0';
	}
	mqtx_json_free(ans);
}

struct call {
	int64_t deadline;
};

static int64_t until(const struct nats_backend *nb, const struct call *c)
{
	return mqtx_broker_until(nb->opts.stop, nb->opts.stop_grace_ms, c->deadline);
}

/* Reads acks for up to 100 ms. Returns 1 while time is left, 0 once until
 * passed, -1 when the connection is gone. */
static int serve(struct nats_backend *nb, int64_t until_ms)
{
	int64_t left = until_ms - mqtx_now_ms();
	if (left <= 0)
		return 0;
	natsMsg *a = NULL;
	natsStatus s = natsSubscription_NextMsg(&a, nb->acks, left < 100 ? left : 100);
	if (s == NATS_OK) {
		on_ack(nb, a);
		natsMsg_Destroy(a);
		/* take whatever else is there without waiting */
		while (nb->win.outstanding > 0 && natsSubscription_NextMsg(&a, nb->acks, 0) == NATS_OK) {
			on_ack(nb, a);
			natsMsg_Destroy(a);
		}
	} else if (s != NATS_TIMEOUT) {
		return -1;
	}
	return natsConnection_Status(nb->nc) == NATS_CONN_STATUS_CONNECTED ? 1 : -1;
}

static void set_header(natsMsg *nm, const char *name, const char *value)
{
	natsMsgHeader_Set(nm, name, value);
}

/* The NATS message for m (owned), or NULL (out of memory in libnats). */
static natsMsg *build_msg(struct nats_backend *nb, const struct mqtx_msg *m, const char *subject, uint64_t tok)
{
	char reply[128], num[MQTX_I64_DIGITS];
	natsMsg *nm = NULL;
	snprintf(reply, sizeof(reply), "%s.%llu", nb->inbox, (unsigned long long)tok);
	if (natsMsg_Create(&nm, subject, reply, m->payload != NULL ? m->payload : "", (int)m->payload_len) != NATS_OK)
		return NULL;
	for (size_t i = 0; i < m->n_headers; i++)
		natsMsgHeader_Add(nm, m->headers[i].name, m->headers[i].value != NULL ? m->headers[i].value : "");
	if (m->id > 0) {
		mqtx_fmt_i64(num, m->id);
		set_header(nm, "x-mqtx-outbox-id", num);
	}
	if (m->key != NULL) {
		set_header(nm, "x-mqtx-idempotency-key", m->key);
		/* The server drops a message whose Nats-Msg-Id it stored within the
		 * stream's duplicate window. A redelivery is meant to arrive again:
		 * it gets an id of its own per redelivery count (a retried
		 * redelivery is still dropped). See mqtx-keys(7). */
		if (m->redelivery_count > 0) {
			size_t kl = strlen(m->key) + 16 + MQTX_I64_DIGITS;
			char *id = mqtx_xmalloc(kl);
			mqtx_fmt_i64(num, m->redelivery_count);
			snprintf(id, kl, "%s:redelivery:%s", m->key, num);
			set_header(nm, "Nats-Msg-Id", id);
			free(id);
		} else {
			set_header(nm, "Nats-Msg-Id", m->key);
		}
	}
	if (m->ordering_key != NULL)
		set_header(nm, "x-mqtx-ordering-key", m->ordering_key);
	if (m->redelivery_count > 0) {
		mqtx_fmt_i64(num, m->redelivery_count);
		set_header(nm, "x-mqtx-redelivery-count", num);
	}
	if (m->content_type != NULL && m->content_type[0] != '\0')
		set_header(nm, "content-type", m->content_type);
	return nm;
}

/* Publishes the call's messages in order, at most window awaiting acks.
 * Returns 0, or -1 when the connection is gone. */
static int publish_all(struct nats_backend *nb, struct call *c, const size_t *subs)
{
	for (size_t i = 0; i < nb->win.n; i++) {
		struct mqtx_msg *m = &nb->win.msgs[i];
		const struct subject_entry *t = &nb->subjects[subs[i]];
		if (mqtx_broker_stopping(nb->opts.stop))
			return 0;
		if (mqtx_keyset_has(&nb->win.blocked, m->ordering_key))
			continue; /* stays PENDING: it must not overtake the failed one */
		if (t->stream == NULL) {
			fail_msg(nb, m, "%.200s (checked before publishing)", t->why);
			continue;
		}
		while (nb->win.outstanding >= nb->opts.window && !mqtx_broker_stopping(nb->opts.stop)) {
			int r = serve(nb, until(nb, c));
			if (r < 0)
				return -1;
			if (r == 0)
				return 0;
		}
		if (mqtx_broker_stopping(nb->opts.stop) || mqtx_keyset_has(&nb->win.blocked, m->ordering_key))
			continue;
		natsMsg *nm = build_msg(nb, m, t->subject, nb->win.base + i);
		if (nm == NULL) {
			fail_msg(nb, m, "cannot build the NATS message to subject '%.200s'", t->subject);
			continue;
		}
		natsStatus s = natsConnection_PublishMsg(nb->nc, nm);
		natsMsg_Destroy(nm);
		if (s == NATS_MAX_PAYLOAD) {
			m->permanent = true;
			fail_msg(nb, m,
				 "cannot publish to subject '%.150s': more than the server's max_payload (%lld bytes)",
				 t->subject, (long long)nb->max_payload);
			continue;
		}
		if (s != NATS_OK)
			return -1;
		nb->win.awaiting[i] = true;
		nb->win.outstanding++;
		m->state = MQTX_MSG_UNKNOWN;
		if ((i & 63) == 63 && serve(nb, mqtx_now_ms() + 0) < 0)
			return -1;
	}
	return 0;
}

static int nats_publish(struct mqtx_backend *b, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	struct nats_backend *nb = (struct nats_backend *)b;
	if (nb->broken || natsConnection_Status(nb->nc) != NATS_CONN_STATUS_CONNECTED) {
		drop_connection(nb);
		return mqtx_err_retry(err, MQTX_E_BROKER, "connection to '%s' is broken", nb->where);
	}
	if (n == 0)
		return 0;
	mqtx_window_begin(&nb->win, msgs, n);
	nb->duplicates = 0;
	size_t *subs = mqtx_xcalloc(n + 1, sizeof(size_t));
	char *last = NULL;
	size_t last_i = 0;
	for (size_t i = 0; i < n; i++) {
		char *s = mqtx_nats_subject(msgs[i].destination, msgs[i].routing_key);
		if (last != NULL && strcmp(last, s) == 0) {
			subs[i] = last_i;
			free(s);
			continue;
		}
		struct subject_entry *t = subject_get(nb, s, err);
		free(last);
		last = s;
		if (t == NULL) {
			free(last);
			free(subs);
			mqtx_window_end(&nb->win, "");
			drop_connection(nb);
			return -1;
		}
		subs[i] = last_i = (size_t)(t - nb->subjects);
	}
	free(last);
	struct call c = {.deadline = mqtx_now_ms() + nb->confirm_timeout_ms};
	int rc = 0;
	if (publish_all(nb, &c, subs) < 0) {
		rc = mqtx_err_retry(err, MQTX_E_BROKER, "connection to '%s' lost while publishing", nb->where);
		mqtx_window_end(&nb->win, "connection lost before the publish acknowledgement: outcome unknown");
		drop_connection(nb);
		free(subs);
		return rc;
	}
	free(subs);
	int r = 1;
	if (nb->win.outstanding > 0 && MQTX_FAILPOINT("relay.before_confirm") < 0)
		r = -1; /* as if the connection broke before the acks came */
	while (r > 0 && nb->win.outstanding > 0 && (r = serve(nb, until(nb, &c))) > 0)
		;
	if (nb->win.outstanding == 0) {
		if (nb->duplicates > 0)
			mqtx_debug("nats: %zu of %zu message(s) were duplicates the streams already held",
				   nb->duplicates, n);
		mqtx_window_end(&nb->win, "");
	} else if (r < 0) {
		rc = mqtx_err_retry(err, MQTX_E_BROKER, "connection to '%s' lost with %zu message(s) unacknowledged",
				    nb->where, nb->win.outstanding);
		mqtx_window_end(&nb->win, "connection lost before the publish acknowledgement: outcome unknown");
		drop_connection(nb);
	} else if (mqtx_broker_stopping(nb->opts.stop)) {
		rc = mqtx_err_retry(err, MQTX_E_BROKER,
				    "stopped: %zu message(s) to '%s' still unconfirmed when the shutdown grace ran out (no publish acknowledgement)",
				    nb->win.outstanding, nb->where);
		mqtx_window_end(&nb->win, "stopped before the publish acknowledgement came: outcome unknown");
		drop_connection(nb);
	} else {
		char why[128];
		snprintf(why, sizeof(why), "no publish acknowledgement within %lldms: outcome unknown",
			 (long long)nb->confirm_timeout_ms);
		rc = mqtx_err_retry(err, MQTX_E_BROKER,
				    "no publish acknowledgement from '%s' within %lldms for %zu message(s)", nb->where,
				    (long long)nb->confirm_timeout_ms, nb->win.outstanding);
		mqtx_window_end(&nb->win, why);
		drop_connection(nb);
	}
	return rc;
}

/* ---- limits ---- */

/* NATS header names: printable ASCII without ':'; values: no CR, LF or NUL. */
static int header_check(const char *name, const char *value, size_t vlen, char *why, size_t len)
{
	size_t nl = strlen(name);
	if (nl == 0) {
		snprintf(why, len, "a header has an empty name; NATS headers need one");
		return -1;
	}
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c >= 0x7f || c == ':') {
			snprintf(why, len,
				 "header '%.100s' has byte 0x%02x at %zu; NATS header names are printable ASCII without ':'",
				 name, c, i);
			return -1;
		}
	}
	for (size_t i = 0; value != NULL && i < vlen; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '\r' || c == '\n' || c == '\0') {
			snprintf(why, len,
				 "header '%.100s' has byte 0x%02x in its value at %zu; NATS header values hold no CR, LF or NUL",
				 name, c, i);
			return -1;
		}
	}
	return 0;
}

/* The subject: destination and routing key as subject tokens. The size:
 * payload and headers (ours included, as "NATS/1.0\r\n" + "name: value\r\n"
 * each + "\r\n") within the server's max_payload. */
static int nats_validate(struct mqtx_backend *b, const struct mqtx_msg *m, char *why, size_t len)
{
	struct nats_backend *nb = (struct nats_backend *)b;
	if (mqtx_nats_subject_check("destination (the subject)", m->destination, why, len) < 0)
		return -1;
	if (m->routing_key != NULL && m->routing_key[0] != '\0' &&
	    mqtx_nats_subject_check("routing_key (appended to the subject)", m->routing_key, why, len) < 0)
		return -1;
	size_t hs = 12;
	for (size_t i = 0; i < m->n_headers; i++) {
		if (strcasecmp(m->headers[i].name, "Nats-Msg-Id") == 0) {
			snprintf(why, len, "header '%.100s': mqtx sets Nats-Msg-Id itself, to the idempotency key",
				 m->headers[i].name);
			return -1;
		}
		if (header_check(m->headers[i].name, m->headers[i].value, m->headers[i].value_len, why, len) < 0)
			return -1;
		hs += strlen(m->headers[i].name) + m->headers[i].value_len + 4;
	}
	const char *mine[] = {m->key, m->ordering_key, m->content_type};
	const char *mine_names[] = {"idempotency key", "ordering_key", "content_type"};
	for (size_t i = 0; i < 3; i++) {
		if (mine[i] == NULL)
			continue;
		if (header_check("x", mine[i], strlen(mine[i]), why, len) < 0) {
			snprintf(why, len, "%s holds CR, LF or NUL, which a NATS header value cannot", mine_names[i]);
			return -1;
		}
	}
	hs += 16 + MQTX_I64_DIGITS + 4 + 23 + 4 + MQTX_I64_DIGITS; /* x-mqtx-outbox-id, x-mqtx-redelivery-count */
	if (m->key != NULL)
		hs += 2 * strlen(m->key) + 22 + 11 + 8 + 12 + MQTX_I64_DIGITS;
	if (m->ordering_key != NULL)
		hs += strlen(m->ordering_key) + 19 + 4;
	if (m->content_type != NULL)
		hs += strlen(m->content_type) + 12 + 4;
	if (hs > JS_MAX_HEADER_BYTES) {
		snprintf(why, len, "the headers are at least %zu bytes; JetStream stores at most %d bytes of headers",
			 hs, JS_MAX_HEADER_BYTES);
		return -1;
	}
	if (nb == NULL || nb->max_payload <= 0)
		return 0;
	if (m->payload_len + hs > (size_t)nb->max_payload) {
		snprintf(why, len,
			 "the message is at least %zu bytes (payload %zu, headers); the server's max_payload is %lld",
			 m->payload_len + hs, m->payload_len, (long long)nb->max_payload);
		return -1;
	}
	return 0;
}

/* ---- inspect ---- */

static int nats_inspect(struct mqtx_backend *b, const char *destination, const char *queue, struct mqtx_dest_info *info,
			struct mqtx_err *err)
{
	struct nats_backend *nb = (struct nats_backend *)b;
	(void)queue; /* NATS JetStream has no queues */
	memset(info, 0, sizeof(*info));
	info->depth = info->consumers = -1;
	if (nb->nc == NULL)
		return mqtx_err_retry(err, MQTX_E_BROKER, "connection to '%s' is broken", nb->where);
	if (destination == NULL)
		return 0;
	char *stream = NULL, why[200];
	if (mqtx_nats_stream_for(nb->nc, destination, nb->connect_timeout_ms, nb->where, &stream, why, sizeof(why),
				 err) < 0)
		return -1;
	const char *how = "";
	if (stream == NULL) {
		/* rows with a routing key publish to destination.KEY */
		size_t wl = strlen(destination) + 3;
		char *wild = mqtx_xmalloc(wl);
		snprintf(wild, wl, "%s.>", destination);
		char why2[200];
		int r = mqtx_nats_stream_for(nb->nc, wild, nb->connect_timeout_ms, nb->where, &stream, why2,
					     sizeof(why2), err);
		free(wild);
		if (r < 0)
			return -1;
		how = " (subjects below it: rows with a routing key)";
	}
	if (stream == NULL) {
		snprintf(info->detail, sizeof(info->detail), "%s", why);
		return 0;
	}
	info->exists = true;
	struct mqtx_json *ans = NULL;
	if (mqtx_nats_stream_info(nb->nc, stream, nb->connect_timeout_ms, nb->where, &ans, err) < 0) {
		free(stream);
		return -1;
	}
	const struct mqtx_json *state = ans != NULL ? mqtx_json_get(ans, "state") : NULL;
	const struct mqtx_json *msgs = state != NULL ? mqtx_json_get(state, "messages") : NULL;
	if (msgs != NULL && msgs->type == MQTX_JSON_NUMBER) {
		info->depth = (long long)msgs->number;
		const struct mqtx_json *cons = mqtx_json_get(state, "consumer_count");
		if (cons != NULL && cons->type == MQTX_JSON_NUMBER)
			info->consumers = (long long)cons->number;
		snprintf(info->detail, sizeof(info->detail), "stream '%.100s'%s: %lld messages", stream, how,
			 info->depth);
	} else {
		snprintf(info->detail, sizeof(info->detail), "stream '%.100s'%s", stream, how);
	}
	mqtx_json_free(ans);
	free(stream);
	return 0;
}

const struct mqtx_backend_ops mqtx_backend_nats = {
	.name = "nats",
	.dest_noun = "subject",
	.caps = MQTX_CAP_INSPECT | MQTX_CAP_READ,
	.schemes = nats_schemes,
	.open = nats_open,
	.close = nats_close,
	.publish = nats_publish,
	.validate = nats_validate,
	.inspect = nats_inspect,
	.read = mqtx_nats_read,
	.read_check = mqtx_nats_read_check,
};
