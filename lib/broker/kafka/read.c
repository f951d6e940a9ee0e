/* The read op (MQTX_CAP_READ): a Kafka topic as a dedupe-audit source,
 * through librdkafka directly.
 *
 * Non-destructive: the partitions are assigned (no group membership) and
 * nothing is committed, so no consumer group's position moves. The end of
 * every partition is taken when the audit starts (high watermark), so a
 * busy topic still ends; --to lowers it. Times (--from/--to) are matched
 * against record timestamps: the start is found with offsetsForTimes
 * when the broker can say, otherwise the partition is read from its start
 * and filtered. Every librdkafka error is translated here. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/internal.h"
#include "broker/kafka/conf.h"
#include "broker/kafka/kafka.h"
#include "broker/kafka/url.h"
#include "base/log.h"
#include "base/util.h"

#define META_TIMEOUT_MS 10000

/* Our consumer defaults, then the connection settings (the URL's servers
 * and credentials, broker.tls.*, broker.kafka verbatim). */
static int build_conf(const struct mqtx_config *cfg, const struct mqtx_kafka_url *u, rd_kafka_conf_t *conf,
		      struct mqtx_err *err)
{
	struct mqtx_kafka_conf kc = {0};
	char group[64], num[32];
	int rc = -1;
	const char *def = "default";

	if (mqtx_kafka_conf_begin(&kc, conf, cfg, u, err) < 0)
		goto out;
	snprintf(group, sizeof(group), "mqtx-dedupe-audit-%ld", (long)getpid());
	snprintf(num, sizeof(num), "%lld", (long long)cfg->broker_connect_timeout_ms);
	if (mqtx_kafka_conf_set(&kc, "client.id", "mqtx-dedupe-audit", def, err) < 0 ||
	    /* the API wants a group id; it is never joined and nothing is committed */
	    mqtx_kafka_conf_set(&kc, "group.id", group, def, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "enable.auto.commit", "false", def, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "enable.auto.offset.store", "false", def, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "enable.partition.eof", "true", def, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "auto.offset.reset", "earliest", def, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "isolation.level", "read_committed", def, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "allow.auto.create.topics", "false", def, err) < 0 ||
	    /* the read ends at offsets known at the start: a fetch at a
	     * partition's end need not wait the default 500 ms for more */
	    mqtx_kafka_conf_set(&kc, "fetch.wait.max.ms", "100", def, err) < 0 ||
	    /* bounds what librdkafka prefetches, and so this process's memory */
	    mqtx_kafka_conf_set(&kc, "queued.max.messages.kbytes", "32768", def, err) < 0 ||
	    mqtx_kafka_conf_set(&kc, "socket.connection.setup.timeout.ms", num, "broker.connect_timeout", err) < 0)
		goto out;
	rc = mqtx_kafka_conf_connection(&kc, u, "source URL", "the audit source", err);
out:
	mqtx_kafka_conf_end(&kc);
	return rc;
}

struct part {
	int64_t start, stop; /* [start, stop) */
	int64_t next;        /* next offset expected */
	bool done;
	bool filter_from; /* drop records older than --from (no offsetsForTimes answer) */
	int64_t read;
};

/* Number of partitions of topic, 0 when it does not exist, -1 on error.
 * Asks for all topics: naming one could create it on some clusters. */
static int partitions_of(rd_kafka_t *rk, const char *topic, const char *where, struct mqtx_err *err)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, META_TIMEOUT_MS);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return mqtx_err_retry(err, MQTX_E_BROKER, "cannot get metadata from '%s': %s", where,
				      rd_kafka_err2str(e));
	int n = 0;
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, topic) != 0)
			continue;
		e = md->topics[i].err;
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			n = md->topics[i].partition_cnt;
		} else if (e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
			rd_kafka_metadata_destroy(md);
			return mqtx_err_set(err, MQTX_E_BROKER, "topic '%s' on '%s': %s", topic, where,
					    rd_kafka_err2str(e));
		}
	}
	rd_kafka_metadata_destroy(md);
	return n;
}

/* Start and stop offsets of every partition, from the watermarks now and
 * --from/--to. */
static int plan(rd_kafka_t *rk, const char *topic, const struct mqtx_read_opts *o, struct part *ps, int np,
		const char *where, struct mqtx_err *err)
{
	rd_kafka_topic_partition_list_t *times = NULL;
	if (o->from.kind == MQTX_READ_POS_TIME || o->to.kind == MQTX_READ_POS_TIME)
		times = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++) {
		int64_t lo, hi;
		rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, META_TIMEOUT_MS);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (times != NULL)
				rd_kafka_topic_partition_list_destroy(times);
			return mqtx_err_retry(err, MQTX_E_BROKER,
					      "cannot read the offsets of '%s' partition %d on '%s': %s", topic, p,
					      where, rd_kafka_err2str(e));
		}
		ps[p].start = lo;
		ps[p].stop = hi;
		if (o->from.kind == MQTX_READ_POS_OFFSET)
			ps[p].start = o->from.offset < lo ? lo : o->from.offset > hi ? hi : o->from.offset;
		if (o->to.kind == MQTX_READ_POS_OFFSET && o->to.offset < ps[p].stop)
			ps[p].stop = o->to.offset;
		if (o->from.kind == MQTX_READ_POS_OFFSET && o->from.offset < lo)
			mqtx_warn("topic '%s' partition %d starts at offset %lld now: earlier records are gone", topic,
				  p, (long long)lo);
		if (times != NULL && o->from.kind == MQTX_READ_POS_TIME)
			rd_kafka_topic_partition_list_add(times, topic, p)->offset = o->from.time_us / 1000;
	}
	if (times != NULL && o->from.kind == MQTX_READ_POS_TIME) {
		rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, times, META_TIMEOUT_MS);
		for (int p = 0; p < np; p++) {
			int64_t off = e == RD_KAFKA_RESP_ERR_NO_ERROR &&
						      times->elems[p].err == RD_KAFKA_RESP_ERR_NO_ERROR
					      ? times->elems[p].offset
					      : -1;
			/* -1: the broker found no record at or after the time, or
			 * cannot look up times: read from the start and filter */
			if (off >= ps[p].start && off <= ps[p].stop)
				ps[p].start = off;
			ps[p].filter_from = true;
		}
	}
	if (times != NULL)
		rd_kafka_topic_partition_list_destroy(times);
	for (int p = 0; p < np; p++) {
		ps[p].next = ps[p].start;
		ps[p].done = ps[p].start >= ps[p].stop;
	}
	return 0;
}

static const char *header(rd_kafka_headers_t *h, const char *name, size_t *len)
{
	const void *v = NULL;
	size_t n = 0;
	if (h == NULL || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || v == NULL)
		return NULL;
	*len = n;
	return v;
}

/* One read: the topic, its partitions and where reading each stands. */
struct kreader {
	const struct mqtx_read_opts *o;
	const char *where; /* redacted source URL */
	const char *topic;
	rd_kafka_t *rk;
	struct part *ps;
	int np;
	int open; /* partitions not yet at their stop */
};

static int on_message(struct kreader *kr, struct part *pp, const rd_kafka_message_t *m, struct mqtx_err *err)
{
	rd_kafka_timestamp_type_t tt;
	int64_t ts_ms = rd_kafka_message_timestamp(m, &tt);
	const struct mqtx_read_opts *o = kr->o;
	if (pp->filter_from && ts_ms >= 0 && ts_ms * 1000 < o->from.time_us)
		return 0;
	if (o->to.kind == MQTX_READ_POS_TIME && ts_ms >= 0 && ts_ms * 1000 >= o->to.time_us)
		return 0;
	rd_kafka_headers_t *h = NULL;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	struct mqtx_read_record d = {.partition = m->partition,
				     .offset = m->offset,
				     .redelivery_count = -1,
				     .ts_us = ts_ms >= 0 ? ts_ms * 1000 : MQTX_READ_NO_TS};
	size_t n;
	const char *v;
	d.key = header(h, "x-mqtx-idempotency-key", &d.key_len);
	if ((v = header(h, "x-mqtx-outbox-id", &n)) != NULL && (!mqtx_parse_i64n(v, n, &d.id) || d.id < 0))
		d.id = 0;
	if ((v = header(h, "x-mqtx-redelivery-count", &n)) != NULL && !mqtx_parse_i64n(v, n, &d.redelivery_count))
		d.redelivery_count = -1;
	pp->read++;
	return o->emit(o->emit_ctx, &d, err);
}

static void describe(const struct kreader *kr, const char *ending, struct mqtx_read_result *res)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "topic %s, %d partition%s:", kr->topic, kr->np, kr->np == 1 ? "" : "s");
	for (int p = 0; p < kr->np && b.len < 400; p++)
		mqtx_buf_printf(&b, " %d[%lld,%lld)", p, (long long)kr->ps[p].start, (long long)kr->ps[p].stop);
	if (b.len >= 400)
		mqtx_buf_adds(&b, " ...");
	mqtx_buf_printf(&b, "; %s", ending);
	snprintf(res->detail, sizeof(res->detail), "%s", b.data);
	mqtx_buf_free(&b);
}

/* Parses the source URL; kafka:///TOPIC takes the cluster (servers, TLS,
 * and credentials unless the source has its own) of broker.url. */
static int source_url(const struct mqtx_read_opts *o, const char *where, struct mqtx_kafka_url *u, struct mqtx_err *err)
{
	struct mqtx_kafka_url bu = {0};
	if (mqtx_kafka_url_parse(o->url, where, true, u, err) < 0)
		return -1;
	if (u->servers[0] != '\0')
		return 0;
	const char *b = o->cfg->broker_url;
	if (b == NULL || mqtx_broker_of_url(b) != &mqtx_backend_kafka)
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "source '%s' names no brokers, and broker.url is not a kafka:// URL", where);
	char *bw = mqtx_redact(b);
	int r = mqtx_kafka_url_parse(b, bw, false, &bu, err);
	free(bw);
	if (r < 0) {
		mqtx_kafka_url_free(&bu);
		return -1;
	}
	free(u->servers);
	u->servers = bu.servers;
	bu.servers = NULL;
	u->tls = bu.tls;
	if (u->user == NULL) {
		u->user = bu.user;
		bu.user = NULL;
		u->password = bu.password;
		bu.password = NULL;
	}
	mqtx_kafka_url_free(&bu);
	return 0;
}

int mqtx_kafka_read_check(const struct mqtx_read_opts *o, struct mqtx_err *err)
{
	/* --to first and --destructive: mqtx_broker_read_check */
	/* the source's shape too, before anything connects */
	struct mqtx_kafka_url u = {0};
	char *where = mqtx_redact(o->url);
	int rc = source_url(o, where, &u, err);
	mqtx_kafka_url_free(&u);
	free(where);
	return rc;
}

static rd_kafka_t *new_consumer(const struct mqtx_config *cfg, const struct mqtx_kafka_url *u, const char *where,
				struct mqtx_err *err)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (build_conf(cfg, u, conf, err) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	const struct mqtx_kafka_conf kc = {.cfg = cfg, .password = u->password};
	return mqtx_kafka_client_new(RD_KAFKA_CONSUMER, conf, &kc, "consumer", where, err);
}

/* Plans every partition's range and assigns those with something to read. */
static int assign(struct kreader *kr, struct mqtx_err *err)
{
	kr->np = partitions_of(kr->rk, kr->topic, kr->where, err);
	if (kr->np < 0)
		return -1;
	if (kr->np == 0)
		return mqtx_err_set(err, MQTX_E_BROKER, "topic '%s' does not exist on '%s'", kr->topic, kr->where);
	kr->ps = mqtx_xcalloc((size_t)kr->np, sizeof(*kr->ps));
	if (plan(kr->rk, kr->topic, kr->o, kr->ps, kr->np, kr->where, err) < 0)
		return -1;
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(kr->np);
	for (int p = 0; p < kr->np; p++) {
		if (kr->ps[p].done)
			continue;
		rd_kafka_topic_partition_list_add(list, kr->topic, p)->offset = kr->ps[p].start;
		kr->open++;
	}
	rd_kafka_resp_err_t e = kr->open > 0 ? rd_kafka_assign(kr->rk, list) : RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_topic_partition_list_destroy(list);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return mqtx_err_set(err, MQTX_E_BROKER, "cannot read topic '%s' on '%s': %s", kr->topic, kr->where,
				    rd_kafka_err2str(e));
	return 0;
}

static void partition_done(struct kreader *kr, struct part *pp)
{
	pp->done = true;
	kr->open--;
}

/* One polled message or event: 1 the cluster answered, 0 nothing to
 * note (a transient error), -1 with err. */
static int on_polled(struct kreader *kr, const rd_kafka_message_t *m, struct mqtx_err *err)
{
	int p = m->partition;
	if (p < 0 || p >= kr->np || kr->ps[p].done)
		return 0;
	struct part *pp = &kr->ps[p];
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (m->offset >= pp->stop)
			partition_done(kr, pp);
		return 1;
	}
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (m->err == RD_KAFKA_RESP_ERR__TRANSPORT || m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
		    m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
			mqtx_debug("kafka: %s (retrying)", rd_kafka_message_errstr(m));
			return 0;
		}
		return mqtx_err_set(err, MQTX_E_BROKER, "cannot read topic '%s' partition %d on '%s': %.300s",
				    kr->topic, p, kr->where, rd_kafka_message_errstr(m));
	}
	if (m->offset < pp->stop) {
		pp->next = m->offset + 1;
		if (on_message(kr, pp, m, err) < 0)
			return -1;
	}
	if (m->offset + 1 >= pp->stop)
		partition_done(kr, pp);
	return 1;
}

/* Polls until every partition reached its stop, a signal, or silence;
 * returns how reading ended, or NULL with err. */
static const char *poll_all(struct kreader *kr, struct mqtx_read_result *res, struct mqtx_err *err)
{
	const struct mqtx_read_opts *o = kr->o;
	int64_t last = mqtx_now_ms();
	bool heard = false; /* until the cluster answers once, wait as long as for a connection */
	while (kr->open > 0) {
		if (o->stop != NULL && *o->stop) {
			res->stopped = true;
			return "stopped by a signal";
		}
		if (mqtx_now_ms() - last >= (heard ? o->idle_timeout_ms : o->cfg->broker_connect_timeout_ms)) {
			for (int p = 0; p < kr->np; p++)
				if (!kr->ps[p].done)
					mqtx_warn("topic '%s' partition %d: stopped at offset %lld before %lld (nothing arrived for %lldms)",
						  kr->topic, p, (long long)kr->ps[p].next, (long long)kr->ps[p].stop,
						  (long long)o->idle_timeout_ms);
			return "some partitions ended early: nothing arrived for audit.idle_timeout";
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(kr->rk, 100);
		if (m == NULL)
			continue;
		int r = on_polled(kr, m, err);
		rd_kafka_message_destroy(m);
		if (r < 0)
			return NULL;
		if (r > 0) {
			heard = true;
			last = mqtx_now_ms();
		}
	}
	return "to the end at start";
}

int mqtx_kafka_read(const struct mqtx_read_opts *o, struct mqtx_read_result *res, struct mqtx_err *err)
{
	struct mqtx_kafka_url u = {0};
	char *where = mqtx_redact(o->url);
	struct kreader kr = {.o = o, .where = where};
	int rc = -1;

	res->kind = "kafka";
	res->position = "offset";
	if (source_url(o, where, &u, err) < 0)
		goto out;
	kr.topic = u.topic;
	res->default_destination = mqtx_xstrdup(u.topic);
	if ((kr.rk = new_consumer(o->cfg, &u, where, err)) == NULL || assign(&kr, err) < 0)
		goto out;
	const char *ending = poll_all(&kr, res, err);
	if (ending == NULL)
		goto out;
	describe(&kr, ending, res);
	rc = 0;
out:
	if (kr.rk != NULL) {
		rd_kafka_assign(kr.rk, NULL);
		rd_kafka_destroy(kr.rk);
	}
	free(kr.ps);
	mqtx_kafka_url_free(&u);
	free(where);
	return rc;
}
