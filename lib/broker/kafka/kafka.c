/* Kafka backend through librdkafka. Every librdkafka status (resp_err
 * codes, rd_kafka_error_t, delivery reports) is translated into struct
 * mqtx_err or a message's outcome here and nowhere else.
 *
 * Confirm mode: an idempotent producer (acks=all); a message is CONFIRMED
 * only by a delivery report without error. Topics are looked up before
 * anything is produced, so a missing topic fails only its own messages.
 * The partition of a message with an ordering key is murmur2(ordering key)
 * -- the Java client's default -- so one key's rows share a partition
 * whatever their routing keys. TX mode: one producer transaction per
 * publish() call.
 *
 * Property values can be secrets (sasl.password, ssl.key.password, ...):
 * no message or log line built here ever contains one. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "broker/window.h"
#include "base/failpoint.h"
#include "broker/kafka/conf.h"
#include "broker/kafka/kafka.h"
#include "broker/kafka/url.h"
#include "base/log.h"
#include "base/stop.h"
#include "base/util.h"

/* How long a topic's partition count is trusted. */
#define TOPIC_TTL_MS 10000
/* Extra wait past message.timeout.ms, so librdkafka's own timeout reports
 * (which say whether a message may have been persisted) come first. */
#define DEADLINE_SLACK_MS 1500
/* Commit or abort attempts on retriable errors. */
#define TXN_TRIES 3
#define CLOSE_FLUSH_MS 10000

struct topic_entry {
	char *name;
	rd_kafka_topic_t *rkt; /* owned; NULL while the topic is unusable */
	int32_t partitions;    /* 0: the topic cannot be used, see why */
	char why[200];
	int64_t fetched_at;
	uint64_t call; /* publish call that fetched it */
};

struct kafka_backend {
	struct mqtx_backend base; /* must be first */
	rd_kafka_t *rk;
	struct mqtx_backend_opts opts;
	int64_t confirm_timeout_ms;
	int64_t connect_timeout_ms;
	bool tx;
	bool broken;
	char *where;          /* redacted URL for messages */
	size_t max_msg_bytes; /* the producer's effective message.max.bytes */

	struct topic_entry *topics;
	size_t n_topics;
	/* The publish call in progress. Every produced message carries its
	 * window token as its opaque, so a late report never touches a
	 * message we gave back. */
	struct mqtx_window win;
	size_t timed_out; /* reports saying message.timeout.ms passed */

	bool fatal;
	char fatal_text[256];
	char last_error[256]; /* the latest client error, for "cannot connect" */

	struct kafka_consumer *cons;   /* consume(): NULL until first used */
	const struct mqtx_config *cfg; /* borrowed from open()'s caller, for the consumer's settings */
};

static const char *const kafka_schemes[] = {"kafka", "kafkas", NULL};

/* ---- callbacks (served by rd_kafka_poll in the caller's thread, except logs) ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_backend *kb = opaque;
	size_t i;
	(void)rk;
	if (!mqtx_window_index(&kb->win, (uintptr_t)m->_private, &i))
		return; /* not one of this call's messages */
	if (!kb->win.awaiting[i])
		return;
	kb->win.awaiting[i] = false;
	kb->win.outstanding--;
	struct mqtx_msg *msg = &kb->win.msgs[i];
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		msg->state = MQTX_MSG_CONFIRMED;
		msg->error[0] = '\0';
		return;
	}
	if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
		kb->timed_out++;
		msg->state = MQTX_MSG_UNKNOWN;
		snprintf(msg->error, sizeof(msg->error), "no delivery report within %lldms (%s): outcome unknown",
			 (long long)kb->confirm_timeout_ms, rd_kafka_err2str(m->err));
		return;
	}
	if (rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED) {
		msg->state = MQTX_MSG_UNKNOWN;
		snprintf(msg->error, sizeof(msg->error), "delivery to topic '%s' may have happened: %s",
			 msg->destination, rd_kafka_err2str(m->err));
		return;
	}
	msg->state = MQTX_MSG_FAILED;
	snprintf(msg->error, sizeof(msg->error), "cannot deliver to topic '%s': %s", msg->destination,
		 rd_kafka_err2str(m->err));
	mqtx_keyset_add(&kb->win.blocked, msg->ordering_key);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
	struct kafka_backend *kb = opaque;
	rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)code;
	if (e == RD_KAFKA_RESP_ERR__FATAL) {
		char text[sizeof(kb->fatal_text)];
		rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, text, sizeof(text));
		kb->fatal = true;
		snprintf(kb->fatal_text, sizeof(kb->fatal_text), "%s: %.200s", rd_kafka_err2name(orig), text);
		mqtx_error("fatal Kafka producer error on '%s': %s", kb->where, kb->fatal_text);
		return;
	}
	if (e != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		snprintf(kb->last_error, sizeof(kb->last_error), "%.250s", reason);
	switch (e) {
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		mqtx_warn("all Kafka brokers of '%s' are down: %s", kb->where, reason);
		break;
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR__SSL:
	case RD_KAFKA_RESP_ERR__RESOLVE:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
		/* will not go away by itself: say so */
		mqtx_warn("Kafka '%s': %s", kb->where, reason);
		break;
	default: mqtx_debug("kafka: %s: %s", rd_kafka_err2name(e), reason); break;
	}
}

/* ---- configuration ---- */

/* Fills conf: our defaults, then the connection settings (URL, broker.*
 * keys, broker.kafka verbatim, so users can override any of it).
 * consumer: for the ack-topic consumer, without the producer settings. */
static int build_conf(struct kafka_backend *kb, const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
		      rd_kafka_conf_t *conf, bool consumer, struct mqtx_err *err)
{
	struct mqtx_kafka_url u;
	struct mqtx_kafka_conf kc = {0};
	char num[32];
	int rc = -1;

	if (mqtx_kafka_url_parse(cfg->broker_url, kb->where, false, &u, err) < 0)
		return -1;
	if (mqtx_kafka_conf_begin(&kc, conf, cfg, &u, err) < 0)
		goto out;

	const char *def = "default";
	if (mqtx_kafka_conf_set(&kc, "client.id", opts->client_name != NULL ? opts->client_name : "mqtx", def, err) < 0)
		goto out;
	if (!consumer && (mqtx_kafka_conf_set(&kc, "enable.idempotence", "true", def, err) < 0 ||
			  mqtx_kafka_conf_set(&kc, "acks", "all", def, err) < 0 ||
			  mqtx_kafka_conf_set(&kc, "linger.ms", "5", def, err) < 0 ||
			  mqtx_kafka_conf_set(&kc, "partitioner", "murmur2_random", def, err) < 0 ||
			  /* a typo in a destination must not create a topic */
			  mqtx_kafka_conf_set(&kc, "allow.auto.create.topics", "false", def, err) < 0))
		goto out;
	snprintf(num, sizeof(num), "%lld", (long long)kb->confirm_timeout_ms);
	if (!consumer && mqtx_kafka_conf_set(&kc, "message.timeout.ms", num, "broker.confirm_timeout", err) < 0)
		goto out;
	if (kb->connect_timeout_ms >= 1000) {
		snprintf(num, sizeof(num), "%lld", (long long)kb->connect_timeout_ms);
		if (mqtx_kafka_conf_set(&kc, "socket.connection.setup.timeout.ms", num, "broker.connect_timeout", err) <
		    0)
			goto out;
	}
	if (kb->tx && !consumer) {
		/* message.timeout.ms may not exceed transaction.timeout.ms */
		snprintf(num, sizeof(num), "%lld",
			 (long long)(kb->confirm_timeout_ms > 60000 ? kb->confirm_timeout_ms : 60000));
		if (mqtx_kafka_conf_set(&kc, "transactional.id", opts->transactional_id, "transactional id", err) < 0 ||
		    mqtx_kafka_conf_set(&kc, "transaction.timeout.ms", num, def, err) < 0)
			goto out;
	}
	rc = mqtx_kafka_conf_connection(&kc, &u, "broker.url", kb->where, err);
out:
	mqtx_kafka_conf_end(&kc);
	mqtx_kafka_url_free(&u);
	return rc;
}

/* ---- open/close ---- */

static void free_topics(struct kafka_backend *kb)
{
	for (size_t i = 0; i < kb->n_topics; i++) {
		if (kb->topics[i].rkt != NULL)
			rd_kafka_topic_destroy(kb->topics[i].rkt);
		free(kb->topics[i].name);
	}
	free(kb->topics);
	kb->topics = NULL;
	kb->n_topics = 0;
}

static void consumer_free(struct kafka_backend *kb);

static void kafka_close(struct mqtx_backend *b)
{
	struct kafka_backend *kb = (struct kafka_backend *)b;
	if (kb == NULL)
		return;
	consumer_free(kb);   /* leaves the group without committing: unacknowledged messages are read again */
	kb->win.msgs = NULL; /* reports served from here on belong to nobody */
	if (kb->rk != NULL) {
		/* Broken: what is still queued has been given up on (the caller
		 * holds those rows as not sent); do not let destroy wait for it. */
		int64_t flush_ms = kb->confirm_timeout_ms < CLOSE_FLUSH_MS ? kb->confirm_timeout_ms : CLOSE_FLUSH_MS;
		int64_t stop_left = mqtx_stop_deadline(kb->opts.stop, kb->opts.stop_grace_ms) - mqtx_now_ms();
		if (stop_left < flush_ms) /* stopping: at most what is left of the grace */
			flush_ms = stop_left > 0 ? stop_left : 0;
		if (!kb->broken && !kb->fatal && flush_ms > 0)
			rd_kafka_flush(kb->rk, (int)flush_ms);
		if (rd_kafka_outq_len(kb->rk) > 0) {
			rd_kafka_purge(kb->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
			rd_kafka_flush(kb->rk, 1000);
		}
		free_topics(kb);
		rd_kafka_destroy(kb->rk);
	}
	mqtx_window_free(&kb->win);
	free(kb->where);
	free(kb);
}

/* Error value for an rd_kafka_error_t (destroyed here). */
static int txn_err(struct kafka_backend *kb, struct mqtx_err *err, rd_kafka_error_t *e, const char *doing)
{
	int rc;
	if (rd_kafka_error_is_fatal(e)) {
		kb->fatal = true;
		rc = mqtx_err_set(err, MQTX_E_BROKER, "%s '%s': fatal: %s", doing, kb->where, rd_kafka_error_string(e));
	} else {
		rc = mqtx_err_retry(err, MQTX_E_BROKER, "%s '%s': %s", doing, kb->where, rd_kafka_error_string(e));
	}
	kb->broken = true;
	rd_kafka_error_destroy(e);
	return rc;
}

static struct mqtx_backend *kafka_open(const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
				       struct mqtx_err *err)
{
	struct kafka_backend *kb = mqtx_xcalloc(1, sizeof(*kb));

	kb->base.ops = &mqtx_backend_kafka;
	kb->opts = *opts;
	if (kb->opts.window == 0)
		kb->opts.window = 1024;
	kb->tx = opts->mode == MQTX_PUB_TX;
	kb->cfg = cfg;
	kb->confirm_timeout_ms = cfg->broker_confirm_timeout_ms;
	kb->connect_timeout_ms = cfg->broker_connect_timeout_ms;
	kb->where = mqtx_redact(cfg->broker_url);
	kb->win.next = 1;

	if (kb->tx && (opts->transactional_id == NULL || opts->transactional_id[0] == '\0')) {
		mqtx_err_set(err, MQTX_E_CONFIG, "Kafka transactions need a transactional id");
		goto fail;
	}
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (build_conf(kb, cfg, opts, conf, false, err) < 0) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_conf_set_opaque(conf, kb);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	const struct mqtx_kafka_conf kc = {.cfg = cfg};
	kb->rk = mqtx_kafka_client_new(RD_KAFKA_PRODUCER, conf, &kc, "producer", kb->where, err);
	if (kb->rk == NULL)
		goto fail;
	char mmb[32];
	size_t mmbl = sizeof(mmb);
	if (rd_kafka_conf_get(rd_kafka_conf(kb->rk), "message.max.bytes", mmb, &mmbl) == RD_KAFKA_CONF_OK)
		kb->max_msg_bytes = (size_t)strtoull(mmb, NULL, 10);

	/* A broker-only metadata request proves the cluster answers. */
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(kb->rk, 0, NULL, &md, (int)kb->connect_timeout_ms);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		kb->broken = true;
		rd_kafka_poll(kb->rk, 0); /* collect the client's own account of it */
		if (kb->last_error[0] != '\0')
			mqtx_err_retry(err, MQTX_E_BROKER, "cannot connect to '%s': %s (%s)", kb->where,
				       rd_kafka_err2str(e), kb->last_error);
		else
			mqtx_err_retry(err, MQTX_E_BROKER, "cannot connect to '%s': %s", kb->where,
				       rd_kafka_err2str(e));
		goto fail;
	}
	mqtx_debug("connected to '%s': %d broker(s)", kb->where, md->broker_cnt);
	rd_kafka_metadata_destroy(md);

	if (kb->tx) {
		rd_kafka_error_t *te = rd_kafka_init_transactions(kb->rk, (int)kb->connect_timeout_ms);
		if (te != NULL) {
			txn_err(kb, err, te, "cannot initialise transactions on");
			goto fail;
		}
	}
	return &kb->base;
fail:
	kb->broken = true;
	kafka_close(&kb->base);
	return NULL;
}

/* ---- topics ---- */

static void topic_fill(struct topic_entry *t, const struct rd_kafka_metadata *md)
{
	const struct rd_kafka_metadata_topic *mt = NULL;
	for (int i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, t->name) == 0)
			mt = &md->topics[i];
	t->partitions = 0;
	if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
		snprintf(t->why, sizeof(t->why), "topic '%.150s' does not exist", t->name);
	} else if (mt->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
		   (mt->err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE && mt->partition_cnt > 0)) {
		t->partitions = mt->partition_cnt;
		t->why[0] = '\0';
		if (t->partitions == 0)
			snprintf(t->why, sizeof(t->why), "topic '%.150s' has no partitions", t->name);
	} else {
		snprintf(t->why, sizeof(t->why), "topic '%.150s': %s", t->name, rd_kafka_err2str(mt->err));
	}
}

/* Looks a topic up in the metadata (fresh). Returns 0, or -1 with err
 * when the cluster did not answer. */
static int topic_refresh(struct kafka_backend *kb, struct topic_entry *t, struct mqtx_err *err)
{
	const struct rd_kafka_metadata *md = NULL;
	if (t->rkt == NULL) {
		t->rkt = rd_kafka_topic_new(kb->rk, t->name, NULL);
		if (t->rkt == NULL) {
			t->partitions = 0;
			snprintf(t->why, sizeof(t->why), "invalid topic name '%.150s': %s", t->name,
				 rd_kafka_err2str(rd_kafka_last_error()));
			t->fetched_at = mqtx_now_ms();
			t->call = kb->win.call;
			return 0;
		}
	}
	rd_kafka_resp_err_t e = rd_kafka_metadata(kb->rk, 0, t->rkt, &md, (int)kb->connect_timeout_ms);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return mqtx_err_retry(err, MQTX_E_BROKER, "cannot get metadata for topic '%s' from '%s': %s", t->name,
				      kb->where, rd_kafka_err2str(e));
	topic_fill(t, md);
	rd_kafka_metadata_destroy(md);
	t->fetched_at = mqtx_now_ms();
	t->call = kb->win.call;
	if (t->partitions == 0) {
		/* keep no handle: librdkafka would keep asking about the topic */
		rd_kafka_topic_destroy(t->rkt);
		t->rkt = NULL;
	}
	return 0;
}

/* The cache entry for name, fresh enough for this call. An unusable
 * topic is looked up again in every call, a usable one every TOPIC_TTL_MS. */
static struct topic_entry *topic_get(struct kafka_backend *kb, const char *name, struct mqtx_err *err)
{
	struct topic_entry *t = NULL;
	for (size_t i = 0; i < kb->n_topics; i++) {
		if (strcmp(kb->topics[i].name, name) == 0) {
			t = &kb->topics[i];
			break;
		}
	}
	if (t == NULL) {
		kb->topics = mqtx_xrealloc(kb->topics, (kb->n_topics + 1) * sizeof(*kb->topics));
		t = &kb->topics[kb->n_topics++];
		memset(t, 0, sizeof(*t));
		t->name = mqtx_xstrdup(name);
	} else if (t->call == kb->win.call || (t->partitions > 0 && mqtx_now_ms() - t->fetched_at < TOPIC_TTL_MS)) {
		return t;
	}
	return topic_refresh(kb, t, err) < 0 ? NULL : t;
}

/* Topic entries for msgs[0..n), in tops[]. Entries stay valid for the call:
 * the array only grows by topic_get, so indexes are kept, not pointers. */
static int resolve_topics(struct kafka_backend *kb, struct mqtx_msg *msgs, size_t n, size_t *tops, struct mqtx_err *err)
{
	const char *last = NULL;
	size_t last_i = 0;
	for (size_t i = 0; i < n; i++) {
		const char *d = msgs[i].destination != NULL ? msgs[i].destination : "";
		if (last != NULL && strcmp(last, d) == 0) {
			tops[i] = last_i;
			continue;
		}
		struct topic_entry *t = topic_get(kb, d, err);
		if (t == NULL)
			return -1;
		tops[i] = last_i = (size_t)(t - kb->topics);
		last = d;
	}
	return 0;
}

/* ---- producing ---- */

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value, ssize_t len)
{
	rd_kafka_header_add(h, name, -1, value, len);
}

static rd_kafka_headers_t *build_headers(const struct mqtx_msg *m)
{
	char num[MQTX_I64_DIGITS];
	rd_kafka_headers_t *h = rd_kafka_headers_new(m->n_headers + 4);
	for (size_t i = 0; i < m->n_headers; i++)
		add_header(h, m->headers[i].name, m->headers[i].value,
			   m->headers[i].value != NULL ? (ssize_t)m->headers[i].value_len : 0);
	if (m->id > 0) {
		mqtx_fmt_i64(num, m->id);
		add_header(h, "x-mqtx-outbox-id", num, -1);
	}
	if (m->key != NULL)
		add_header(h, "x-mqtx-idempotency-key", m->key, -1);
	if (m->redelivery_count > 0) {
		mqtx_fmt_i64(num, m->redelivery_count);
		add_header(h, "x-mqtx-redelivery-count", num, -1);
	}
	if (m->content_type != NULL && m->content_type[0] != '\0')
		add_header(h, "content-type", m->content_type, -1);
	return h;
}

/* Waits for reports up to until (or 100ms). Returns false once until has passed. */
/* Serves callbacks for up to 100 ms (false once until has passed). With
 * flush, for the end of a call: rd_kafka_flush() sends what waits in the
 * queue at once instead of after linger.ms (5 ms a batch otherwise). */
static bool serve_how(struct kafka_backend *kb, int64_t until, bool flush)
{
	int64_t left = until - mqtx_now_ms();
	if (left <= 0)
		return false;
	int ms = (int)(left < 100 ? left : 100);
	if (flush)
		rd_kafka_flush(kb->rk, ms);
	else
		rd_kafka_poll(kb->rk, ms);
	return true;
}

static bool serve(struct kafka_backend *kb, int64_t until)
{
	return serve_how(kb, until, false);
}

struct call {
	int64_t resolved; /* when the topic lookups were done */
	int64_t deadline; /* for the delivery reports: counted from resolved */
};

static int64_t until(const struct kafka_backend *kb, const struct call *c)
{
	return mqtx_broker_until(kb->opts.stop, kb->opts.stop_grace_ms, c->deadline);
}

enum produced { PRODUCED, REFUSED, GAVE_UP };

/* Hands msgs[i] to librdkafka, waiting while its queue is full. REFUSED:
 * the message is FAILED. GAVE_UP: time ran out, a stop came or a fatal
 * error was raised; the message is still PENDING. */
static enum produced produce_one(struct kafka_backend *kb, struct call *c, size_t i, const struct topic_entry *t)
{
	static const char empty[1] = "";
	struct mqtx_msg *m = &kb->win.msgs[i];
	const char *key = m->routing_key != NULL ? m->routing_key : m->ordering_key;
	size_t klen = key != NULL ? strlen(key) : 0;
	int32_t part = RD_KAFKA_PARTITION_UA;
	if (m->ordering_key != NULL)
		part = rd_kafka_msg_partitioner_murmur2(t->rkt, m->ordering_key, strlen(m->ordering_key), t->partitions,
							NULL, NULL);
	void *payload = (void *)(m->payload != NULL ? m->payload : empty);
	rd_kafka_headers_t *h = build_headers(m);
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(kb->rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_PARTITION(part),
							  RD_KAFKA_V_KEY(key, klen),
							  RD_KAFKA_V_VALUE(payload, m->payload_len),
							  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							  RD_KAFKA_V_HEADERS(h),
							  RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(kb->win.base + i)),
							  RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) { /* h belongs to the message now */
			kb->win.awaiting[i] = true;
			kb->win.outstanding++;
			m->state = MQTX_MSG_UNKNOWN;
			return PRODUCED;
		}
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !kb->fatal && serve(kb, until(kb, c)) &&
		    !mqtx_broker_stopping(kb->opts.stop))
			continue;
		rd_kafka_headers_destroy(h);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL || e == RD_KAFKA_RESP_ERR__FATAL || kb->fatal)
			return GAVE_UP;
		m->state = MQTX_MSG_FAILED;
		/* too large for message.max.bytes: it never fits as it is */
		m->permanent = e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
		snprintf(m->error, sizeof(m->error), "cannot produce to topic '%s': %s%s", m->destination,
			 rd_kafka_err2str(e), m->permanent ? " (more than the producer's message.max.bytes)" : "");
		return REFUSED;
	}
}

/* Kafka topic names: 1 to 249 of [a-zA-Z0-9._-], not "." or "..". A
 * message's size (key, value and headers, ours included) must stay
 * within the producer's message.max.bytes; what this counts is less than
 * librdkafka does (it adds the record's framing), so a message just under
 * the limit may still be refused by rd_kafka_producev(), which is then
 * permanent too. */
static int kafka_validate(struct mqtx_backend *b, const struct mqtx_msg *m, char *why, size_t len)
{
	struct kafka_backend *kb = (struct kafka_backend *)b;
	const char *t = m->destination != NULL ? m->destination : "";
	size_t tl = strlen(t);
	if (tl == 0 || tl > 249) {
		snprintf(why, len, "destination (the topic) is %zu bytes; Kafka topic names have 1 to 249", tl);
		return -1;
	}
	if (strcmp(t, ".") == 0 || strcmp(t, "..") == 0) {
		snprintf(why, len, "destination (the topic) '%s' is not a legal Kafka topic name", t);
		return -1;
	}
	size_t bad = strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
	if (bad < tl) {
		snprintf(why, len,
			 "destination (the topic) '%.100s' has byte 0x%02x at %zu; Kafka topic names allow only [a-zA-Z0-9._-]",
			 t, (unsigned char)t[bad], bad);
		return -1;
	}
	if (kb == NULL || kb->max_msg_bytes == 0)
		return 0;
	const char *key = m->routing_key != NULL ? m->routing_key : m->ordering_key;
	size_t sz = m->payload_len + (key != NULL ? strlen(key) : 0);
	for (size_t i = 0; i < m->n_headers; i++)
		sz += strlen(m->headers[i].name) + m->headers[i].value_len;
	sz += 16 + MQTX_I64_DIGITS + 22 + (m->key != NULL ? strlen(m->key) : 0); /* x-mqtx-outbox-id at most, the key */
	if (m->content_type != NULL)
		sz += 12 + strlen(m->content_type);
	if (sz > kb->max_msg_bytes) {
		snprintf(why, len,
			 "the message is at least %zu bytes (payload, key, headers); the producer's message.max.bytes is %zu",
			 sz, kb->max_msg_bytes);
		return -1;
	}
	return 0;
}

static int fatal_err(struct kafka_backend *kb, struct mqtx_err *err)
{
	char why[300];
	snprintf(why, sizeof(why), "fatal producer error: %s", kb->fatal_text[0] ? kb->fatal_text : "unknown");
	mqtx_window_end(&kb->win, why);
	kb->broken = true;
	return mqtx_err_set(err, MQTX_E_BROKER, "fatal Kafka producer error on '%s': %s", kb->where,
			    kb->fatal_text[0] ? kb->fatal_text : "unknown");
}

/* Produces msgs in order (skipping those whose topic is unusable, which
 * FAIL), keeping at most window messages without a report. Returns the
 * number of messages left unproduced (a stop, a fatal error, the deadline),
 * or 0; *first_refused gets the index of the first refused message or n. */
static size_t produce_all(struct kafka_backend *kb, struct call *c, const size_t *tops, size_t *first_refused)
{
	size_t n = kb->win.n;
	*first_refused = n;
	for (size_t i = 0; i < n; i++) {
		struct mqtx_msg *m = &kb->win.msgs[i];
		const struct topic_entry *t = &kb->topics[tops[i]];
		if (mqtx_broker_stopping(kb->opts.stop) || kb->fatal)
			return n - i;
		if (t->partitions == 0) {
			m->state = MQTX_MSG_FAILED;
			snprintf(m->error, sizeof(m->error), "%s", t->why);
			mqtx_keyset_add(&kb->win.blocked, m->ordering_key);
			if (*first_refused == n)
				*first_refused = i;
			continue;
		}
		while (kb->win.outstanding >= kb->opts.window && !kb->fatal && !mqtx_broker_stopping(kb->opts.stop))
			if (!serve(kb, until(kb, c)))
				return n - i;
		if (mqtx_broker_stopping(kb->opts.stop) || kb->fatal)
			return n - i;
		if (mqtx_keyset_has(&kb->win.blocked, m->ordering_key))
			continue; /* stays PENDING: it must not overtake the failed one */
		enum produced p = produce_one(kb, c, i, t);
		if (p == GAVE_UP)
			return n - i;
		if (p == REFUSED) {
			mqtx_keyset_add(&kb->win.blocked, m->ordering_key);
			if (*first_refused == n)
				*first_refused = i;
		}
		if ((i & 63) == 63)
			rd_kafka_poll(kb->rk, 0);
	}
	return 0;
}

/* Waits until every produced message has its report. Returns false when
 * the deadline (or the stop grace) passed first. */
static bool wait_reports(struct kafka_backend *kb, struct call *c)
{
	rd_kafka_poll(kb->rk, 0);
	while (kb->win.outstanding > 0 && !kb->fatal)
		if (!serve_how(kb, until(kb, c), true))
			return kb->win.outstanding == 0;
	return true;
}

/* Starts a publish call: the messages become this call's, and every
 * destination's topic is looked up, and c's clock starts. Returns tops (owned: tops[i] is
 * msgs[i]'s entry in kb->topics), or NULL with err when the cluster cannot
 * say (the producer is then given up). */
static size_t *start_call(struct kafka_backend *kb, struct call *c, struct mqtx_msg *msgs, size_t n,
			  struct mqtx_err *err)
{
	size_t *tops = mqtx_xmalloc((n + 1) * sizeof(size_t));
	mqtx_window_begin(&kb->win, msgs, n);
	kb->timed_out = 0;
	if (resolve_topics(kb, msgs, n, tops, err) == 0) {
		/* the clock starts once metadata is in: a slow lookup must not eat it */
		*c = (struct call){.resolved = mqtx_now_ms()};
		c->deadline = c->resolved + kb->confirm_timeout_ms + DEADLINE_SLACK_MS;
		return tops;
	}
	kb->broken = true;
	mqtx_window_end(&kb->win, "");
	free(tops);
	return NULL;
}

static int publish_confirm(struct kafka_backend *kb, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	int64_t start = mqtx_now_ms();
	struct call c;
	size_t refused;
	int rc = 0;
	size_t *tops = start_call(kb, &c, msgs, n, err);
	if (tops == NULL)
		return -1;
	produce_all(kb, &c, tops, &refused);
	(void)MQTX_FAILPOINT("relay.before_confirm");
	bool done = wait_reports(kb, &c);
	if (kb->fatal) {
		rc = fatal_err(kb, err);
	} else if (!done && mqtx_broker_stopping(kb->opts.stop)) {
		rc = mqtx_err_retry(err, MQTX_E_BROKER,
				    "stopped with %zu message(s) to '%s' unconfirmed when the shutdown grace ran out",
				    kb->win.outstanding, kb->where);
		mqtx_window_end(&kb->win, "stopped before a delivery report came: outcome unknown");
		kb->broken = true;
	} else if (!done) {
		char why[128];
		snprintf(why, sizeof(why), "no delivery report within %lldms: outcome unknown",
			 (long long)kb->confirm_timeout_ms);
		rc = mqtx_err_retry(err, MQTX_E_BROKER, "no delivery report from '%s' within %lldms for %zu message(s)",
				    kb->where, (long long)kb->confirm_timeout_ms, kb->win.outstanding);
		mqtx_window_end(&kb->win, why);
		kb->broken = true;
	} else if (kb->timed_out > 0) {
		rc = mqtx_err_retry(err, MQTX_E_BROKER, "%zu message(s) to '%s' timed out after %lldms", kb->timed_out,
				    kb->where, (long long)kb->confirm_timeout_ms);
		mqtx_window_end(&kb->win, "");
		kb->broken = true;
	} else {
		mqtx_window_end(&kb->win, "");
	}
	mqtx_debug("kafka: %zu message(s) in %lldms (topic lookups %lldms)", n, (long long)(mqtx_now_ms() - start),
		   (long long)(c.resolved - start));
	free(tops);
	return rc;
}

/* ---- transactions ---- */

/* Aborts the open transaction. Returns 0, or -1 with err (the producer
 * is then unusable). */
static int txn_abort(struct kafka_backend *kb, int64_t deadline, struct mqtx_err *err)
{
	rd_kafka_error_t *e = NULL;
	/* stopping: no longer than the grace; a transaction left open is
	 * aborted by the next producer with this transactional.id (fencing) */
	int64_t stop = mqtx_stop_deadline(kb->opts.stop, kb->opts.stop_grace_ms);
	if (stop < deadline)
		deadline = stop;
	for (int i = 0; i < TXN_TRIES; i++) {
		int64_t left = deadline - mqtx_now_ms();
		if (left <= 0 && i > 0)
			break;
		e = rd_kafka_abort_transaction(kb->rk, (int)(left > 1000 ? left : 1000));
		if (e == NULL)
			return 0;
		if (!rd_kafka_error_is_retriable(e))
			break;
		rd_kafka_error_destroy(e);
		e = NULL;
	}
	if (e == NULL)
		return mqtx_err_retry(err, MQTX_E_BROKER, "cannot abort a transaction on '%s': timed out", kb->where);
	return txn_err(kb, err, e, "cannot abort a transaction on");
}

/* Every message FAILED: the transaction is gone. The message that caused
 * it keeps its own reason. */
static void fail_all(struct mqtx_msg *msgs, size_t n, size_t culprit, const char *why)
{
	for (size_t i = 0; i < n; i++) {
		if (i == culprit && msgs[i].state == MQTX_MSG_FAILED)
			continue;
		msgs[i].state = MQTX_MSG_FAILED;
		snprintf(msgs[i].error, sizeof(msgs[i].error), "%.255s", why);
	}
}

static void set_all(struct mqtx_msg *msgs, size_t n, enum mqtx_msg_state st, const char *why)
{
	for (size_t i = 0; i < n; i++) {
		msgs[i].state = st;
		snprintf(msgs[i].error, sizeof(msgs[i].error), "%.255s", why);
	}
}

static size_t first_failed(const struct mqtx_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (msgs[i].state == MQTX_MSG_FAILED || msgs[i].state == MQTX_MSG_UNKNOWN)
			return i;
	return n;
}

/* Aborts, then fails every message because of msgs[culprit]. */
static int abort_and_fail(struct kafka_backend *kb, struct mqtx_msg *msgs, size_t n, size_t culprit, const char *reason,
			  int64_t deadline, struct mqtx_err *err)
{
	char why[256];
	mqtx_window_end(&kb->win, "");
	snprintf(why, sizeof(why), "transaction aborted: %.200s", reason);
	if (txn_abort(kb, deadline, err) < 0) {
		set_all(msgs, n, MQTX_MSG_UNKNOWN, why);
		return -1;
	}
	fail_all(msgs, n, culprit, why);
	return 0;
}

static int commit(struct kafka_backend *kb, struct mqtx_msg *msgs, size_t n, int64_t deadline, struct mqtx_err *err)
{
	rd_kafka_error_t *e = NULL;
	for (int i = 0; i < TXN_TRIES; i++) {
		int64_t left = deadline - mqtx_now_ms();
		if (left <= 0 && i > 0)
			break;
		e = rd_kafka_commit_transaction(kb->rk, (int)(left > 1000 ? left : 1000));
		if (e == NULL) {
			set_all(msgs, n, MQTX_MSG_CONFIRMED, "");
			return 0;
		}
		if (!rd_kafka_error_is_retriable(e))
			break;
		mqtx_debug("commit on '%s' failed, retrying: %s", kb->where, rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		e = NULL;
	}
	char why[256];
	if (e == NULL) {
		snprintf(why, sizeof(why), "transaction commit timed out: outcome unknown");
		set_all(msgs, n, MQTX_MSG_UNKNOWN, why);
		kb->broken = true;
		return mqtx_err_retry(err, MQTX_E_BROKER, "commit of %zu message(s) to '%s' timed out: outcome unknown",
				      n, kb->where);
	}
	if (rd_kafka_error_txn_requires_abort(e)) {
		snprintf(why, sizeof(why), "commit failed: %.200s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return abort_and_fail(kb, msgs, n, n, why, deadline, err);
	}
	snprintf(why, sizeof(why), "transaction commit failed (outcome unknown): %.180s", rd_kafka_error_string(e));
	set_all(msgs, n, MQTX_MSG_UNKNOWN, why);
	return txn_err(kb, err, e, "cannot commit a transaction on");
}

/* One unusable topic sinks the batch: nothing is started, every message
 * FAILED (those to unusable topics with their own reason). True then. */
static bool unusable_topic(struct kafka_backend *kb, struct mqtx_msg *msgs, size_t n, const size_t *tops)
{
	for (size_t i = 0; i < n; i++) {
		const struct topic_entry *t = &kb->topics[tops[i]];
		if (t->partitions != 0)
			continue;
		char why[256];
		snprintf(why, sizeof(why), "transaction not started: %s", t->why);
		msgs[i].state = MQTX_MSG_FAILED;
		snprintf(msgs[i].error, sizeof(msgs[i].error), "%s", t->why);
		fail_all(msgs, n, i, why);
		for (size_t k = i + 1; k < n; k++)
			if (kb->topics[tops[k]].partitions == 0)
				snprintf(msgs[k].error, sizeof(msgs[k].error), "%s", kb->topics[tops[k]].why);
		return true;
	}
	return false;
}

/* Every message is acknowledged: the caller's before_commit, then the
 * commit (with the failpoints around it). */
static int finish_tx(struct kafka_backend *kb, struct mqtx_msg *msgs, size_t n, int64_t deadline, struct mqtx_err *err)
{
	struct mqtx_err herr;
	mqtx_err_clear(&herr);
	if (kb->opts.before_commit != NULL && kb->opts.before_commit(kb->opts.before_commit_ctx, &herr) != 0) {
		/* never committed: nothing of it can become visible, even if the abort fails */
		char why[256];
		snprintf(why, sizeof(why), "transaction aborted: %.200s", herr.msg);
		int rc = txn_abort(kb, deadline + kb->confirm_timeout_ms, err) < 0 ? -1 : 0;
		set_all(msgs, n, MQTX_MSG_FAILED, why);
		return rc;
	}
	if (MQTX_FAILPOINT("backend.before_tx_commit") < 0) {
		/* as if the producer broke before committing: never visible */
		kb->broken = true;
		set_all(msgs, n, MQTX_MSG_PENDING, "");
		return mqtx_err_retry(err, MQTX_E_BROKER,
				      "failpoint backend.before_tx_commit: producer for '%s' given up", kb->where);
	}
	int rc = commit(kb, msgs, n, deadline, err);
	if (rc == 0 && MQTX_FAILPOINT("backend.after_tx_commit") < 0) {
		/* as if the answer to the commit was lost */
		kb->broken = true;
		set_all(msgs, n, MQTX_MSG_UNKNOWN, "transaction commit not answered: outcome unknown");
		rc = mqtx_err_retry(err, MQTX_E_BROKER,
				    "failpoint backend.after_tx_commit: lost the answer to the commit from '%s'",
				    kb->where);
	}
	return rc;
}

static int publish_tx(struct kafka_backend *kb, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	struct call c;
	size_t *tops = start_call(kb, &c, msgs, n, err);
	if (tops == NULL)
		return -1;
	if (unusable_topic(kb, msgs, n, tops)) {
		mqtx_window_end(&kb->win, "");
		free(tops);
		return 0;
	}
	rd_kafka_error_t *te = rd_kafka_begin_transaction(kb->rk);
	if (te != NULL) {
		mqtx_window_end(&kb->win, "");
		free(tops);
		return txn_err(kb, err, te, "cannot begin a transaction on");
	}
	size_t refused;
	size_t left = produce_all(kb, &c, tops, &refused);
	bool done = left == 0 && refused == n && wait_reports(kb, &c);
	int rc = 0;
	size_t bad = first_failed(msgs, n);
	if (kb->fatal) {
		rc = fatal_err(kb, err);
	} else if (refused < n || (done && bad < n)) {
		size_t culprit = refused < n ? refused : bad;
		char reason[256];
		snprintf(reason, sizeof(reason), "%s", msgs[culprit].error);
		rc = abort_and_fail(kb, msgs, n, culprit, reason, c.deadline, err);
	} else if (left > 0 || !done) {
		/* a stop or the deadline: nothing of this batch may become visible */
		bool stopped = mqtx_broker_stopping(kb->opts.stop);
		mqtx_window_end(&kb->win, "");
		char why[128];
		snprintf(why, sizeof(why), "%s",
			 stopped ? "stopped before commit" : "no delivery report in time: transaction aborted");
		if (txn_abort(kb, c.deadline + kb->confirm_timeout_ms, err) < 0) {
			set_all(msgs, n, MQTX_MSG_UNKNOWN, why);
			rc = -1;
		} else if (stopped) {
			set_all(msgs, n, MQTX_MSG_PENDING, "");
		} else {
			set_all(msgs, n, MQTX_MSG_FAILED, why);
		}
	} else {
		mqtx_window_end(&kb->win, "");
		rc = finish_tx(kb, msgs, n, c.deadline, err);
	}
	free(tops);
	return rc;
}

static int kafka_publish(struct mqtx_backend *b, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	struct kafka_backend *kb = (struct kafka_backend *)b;
	if (kb->fatal)
		return mqtx_err_set(err, MQTX_E_BROKER, "Kafka producer for '%s' hit a fatal error: %s", kb->where,
				    kb->fatal_text);
	if (kb->broken)
		return mqtx_err_retry(err, MQTX_E_BROKER, "connection to '%s' is broken", kb->where);
	if (n == 0)
		return 0;
	if (kb->tx)
		return publish_tx(kb, msgs, n, err);
	return publish_confirm(kb, msgs, n, err);
}

static int kafka_inspect(struct mqtx_backend *b, const char *destination, const char *queue,
			 struct mqtx_dest_info *info, struct mqtx_err *err)
{
	struct kafka_backend *kb = (struct kafka_backend *)b;
	(void)queue; /* Kafka has no queues */
	memset(info, 0, sizeof(*info));
	info->depth = info->consumers = -1;
	if (destination == NULL)
		return 0;
	struct topic_entry t = {.name = (char *)destination};
	if (topic_refresh(kb, &t, err) < 0) {
		if (t.rkt != NULL)
			rd_kafka_topic_destroy(t.rkt);
		return -1;
	}
	if (t.rkt != NULL)
		rd_kafka_topic_destroy(t.rkt);
	info->exists = t.partitions > 0;
	if (info->exists)
		snprintf(info->detail, sizeof(info->detail), "%d partitions", (int)t.partitions);
	else
		snprintf(info->detail, sizeof(info->detail), "%s", t.why);
	return 0;
}

/* ---- consuming (ack topics) ----
 *
 * A consumer of its own (a separate client), in consumer group o->group
 * with auto commit off: offsets are committed only by consume_ack(), after
 * the caller stored what the messages say. A new member starts from the
 * group's committed offsets, or at the beginning. enable.partition.eof
 * tells when every assigned partition has been read to its end. */

struct kafka_consumer {
	rd_kafka_t *rk;
	char *topic;
	bool assigned; /* the group gave us partitions (a rebalance finished) */
	bool *eof;     /* per partition: at its end since the last message */
	size_t n_eof;
	rd_kafka_message_t **msgs; /* taken and not committed */
	struct mqtx_delivery *dels;
	size_t n, cap;
	char error[256]; /* the latest client error */
};

static void consumer_clear(struct kafka_consumer *c)
{
	for (size_t i = 0; i < c->n; i++)
		rd_kafka_message_destroy(c->msgs[i]);
	c->n = 0;
}

static void consumer_free(struct kafka_backend *kb)
{
	struct kafka_consumer *c = kb->cons;
	if (c == NULL)
		return;
	consumer_clear(c);
	if (c->rk != NULL) {
		rd_kafka_consumer_close(c->rk);
		rd_kafka_destroy(c->rk);
	}
	free(c->topic);
	free(c->eof);
	free(c->msgs);
	free(c->dels);
	free(c);
	kb->cons = NULL;
}

static void on_consumer_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
	struct kafka_consumer *c = opaque;
	(void)rk;
	snprintf(c->error, sizeof(c->error), "%.250s", reason);
	mqtx_debug("kafka consumer: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

/* Assignment changes: take what the group gives, forget end-of-partition marks. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kafka_consumer *c = opaque;
	bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	for (size_t i = 0; i < c->n_eof; i++)
		c->eof[i] = false;
	if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		if (coop)
			rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
		else
			rd_kafka_assign(rk, parts);
		c->assigned = parts->cnt > 0;
	} else {
		if (coop)
			rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
		else
			rd_kafka_assign(rk, NULL);
		c->assigned = false;
	}
}

static int consumer_open(struct kafka_backend *kb, const struct mqtx_consume_opts *o, struct mqtx_err *err)
{
	struct kafka_consumer *c = mqtx_xcalloc(1, sizeof(*c));
	kb->cons = c;
	c->topic = mqtx_xstrdup(o->source);
	if (o->group == NULL || o->group[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG, "reading ack topic '%s' needs a consumer group", o->source);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const struct mqtx_kafka_conf kc = {.conf = conf, .cfg = kb->cfg};
	if (build_conf(kb, kb->cfg, &kb->opts, conf, true, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "group.id", o->group, "consumer group", err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "enable.auto.commit", "false", "default", err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "auto.offset.reset", "earliest", "default", err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "enable.partition.eof", "true", "default", err) < 0 ||
	    /* a short-lived member: after it leaves or dies, the next run rejoins soon */
	    (mqtx_kafka_conf_user_prop(kb->cfg, "session.timeout.ms") == NULL &&
	     mqtx_kafka_conf_set(&kc, "session.timeout.ms", "6000", "default", err) < 0)) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_error_cb(conf, on_consumer_error);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	c->rk = mqtx_kafka_client_new(RD_KAFKA_CONSUMER, conf, &kc, "consumer", kb->where, err);
	if (c->rk == NULL)
		return -1;
	rd_kafka_poll_set_consumer(c->rk);
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, o->source, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return mqtx_err_set(err, MQTX_E_BROKER, "cannot subscribe to ack topic '%s' on '%s': %s", o->source,
				    kb->where, rd_kafka_err2str(e));
	return 0;
}

static void mark_eof(struct kafka_consumer *c, int32_t partition, bool at_end)
{
	if (partition < 0)
		return;
	if ((size_t)partition >= c->n_eof) {
		size_t n = (size_t)partition + 1;
		c->eof = mqtx_xrealloc(c->eof, n * sizeof(bool));
		for (size_t i = c->n_eof; i < n; i++)
			c->eof[i] = false;
		c->n_eof = n;
	}
	c->eof[partition] = at_end;
}

/* Every assigned partition has been read to its end. */
static bool all_at_end(struct kafka_consumer *c)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (!c->assigned || rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return false;
	bool done = parts->cnt > 0;
	for (int i = 0; i < parts->cnt && done; i++) {
		int32_t pn = parts->elems[i].partition;
		done = pn >= 0 && (size_t)pn < c->n_eof && c->eof[pn];
	}
	rd_kafka_topic_partition_list_destroy(parts);
	return done;
}

/* After the first message of a batch, how long a silence ends it early. */
#define CONSUME_LINGER_MS 1000

static int kafka_consume(struct mqtx_backend *b, const struct mqtx_consume_opts *o, const struct mqtx_delivery **out,
			 struct mqtx_err *err)
{
	struct kafka_backend *kb = (struct kafka_backend *)b;
	*out = NULL;
	if (kb->cons == NULL && consumer_open(kb, o, err) < 0) {
		consumer_free(kb);
		return -1;
	}
	struct kafka_consumer *c = kb->cons;
	size_t start = c->n;
	/* Joining the group takes a while; the idle wait starts once partitions are ours. */
	int64_t join_deadline = mqtx_now_ms() + kb->connect_timeout_ms + 10000;
	int64_t idle_since = mqtx_now_ms();
	while (c->n - start < o->max && !mqtx_broker_stopping(kb->opts.stop)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
		int64_t now = mqtx_now_ms();
		if (m == NULL) {
			/* a batch ends when every partition is read to its end; a
			 * partition whose fetch is slow gets a little longer than
			 * one poll (its messages belong in this batch) */
			if (all_at_end(c) || (c->n > start && now - idle_since >= CONSUME_LINGER_MS))
				break;
			if (c->assigned ? now - idle_since >= o->wait_ms : now >= join_deadline)
				break;
			if (!c->assigned)
				idle_since = now;
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			mark_eof(c, m->partition, true);
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_resp_err_t e = m->err;
			char why[256];
			snprintf(why, sizeof(why), "%s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
			    e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
			    e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
				return mqtx_err_set(err, MQTX_E_BROKER, "cannot read ack topic '%s' on '%s': %s",
						    o->source, kb->where, why);
			mqtx_debug("kafka consumer: %s", why);
			continue;
		}
		mark_eof(c, m->partition, false);
		idle_since = now;
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 64;
			c->msgs = mqtx_xrealloc(c->msgs, c->cap * sizeof(*c->msgs));
			c->dels = mqtx_xrealloc(c->dels, c->cap * sizeof(*c->dels));
		}
		c->msgs[c->n] = m; /* kept until committed */
		struct mqtx_delivery *d = &c->dels[c->n];
		memset(d, 0, sizeof(*d));
		d->body = m->payload;
		d->body_len = m->payload != NULL ? m->len : 0;
		rd_kafka_headers_t *h = NULL;
		const void *v = NULL;
		size_t vl = 0;
		if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    rd_kafka_header_get_last(h, "x-mqtx-idempotency-key", &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    v != NULL) {
			/* librdkafka NUL-terminates header values */
			d->key_header = v;
			d->key_header_len = vl;
		}
		c->n++;
	}
	if (c->n == start && !c->assigned && !mqtx_broker_stopping(kb->opts.stop))
		return mqtx_err_retry(err, MQTX_E_BROKER,
				      "consumer group '%s' on '%s' assigned no partition of ack topic '%s'%s%s",
				      o->group, kb->where, o->source, c->error[0] ? ": " : "", c->error);
	*out = c->dels + start;
	return (int)(c->n - start);
}

static int kafka_consume_ack(struct mqtx_backend *b, struct mqtx_err *err)
{
	struct kafka_backend *kb = (struct kafka_backend *)b;
	struct kafka_consumer *c = kb->cons;
	if (c == NULL || c->n == 0)
		return 0;
	rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0); /* synchronous: the positions of what poll returned */
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
		return mqtx_err_retry(err, MQTX_E_BROKER, "cannot commit offsets of ack topic '%s' on '%s': %s",
				      c->topic, kb->where, rd_kafka_err2str(e));
	consumer_clear(c);
	return 0;
}

const struct mqtx_backend_ops mqtx_backend_kafka = {
	.name = "kafka",
	.dest_noun = "topic",
	.caps = MQTX_CAP_TRANSACTIONS | MQTX_CAP_FENCED_TRANSACTIONS | MQTX_CAP_CONSUME | MQTX_CAP_INSPECT |
		MQTX_CAP_READ | MQTX_CAP_PROPERTIES,
	.schemes = kafka_schemes,
	.open = kafka_open,
	.close = kafka_close,
	.publish = kafka_publish,
	.validate = kafka_validate,
	.inspect = kafka_inspect,
	.consume = kafka_consume,
	.consume_ack = kafka_consume_ack,
	.read = mqtx_kafka_read,
	.read_check = mqtx_kafka_read_check,
};
