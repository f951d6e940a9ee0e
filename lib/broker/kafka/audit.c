/* dedupe-audit reader for a Kafka topic, through librdkafka directly.
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

#include "audit/source.h"
#include "broker/broker.h"
#include "broker/kafka/conf.h"
#include "broker/kafka/url.h"
#include "base/log.h"
#include "base/util.h"

#define META_TIMEOUT_MS 10000

/* Our consumer defaults, then the connection settings (the URL's servers
 * and credentials, broker.tls.*, broker.kafka verbatim). */
static int build_conf(const struct mqtx_config *cfg, const struct mqtx_kafka_url *u, rd_kafka_conf_t *conf, struct mqtx_err *err)
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
	bool filter_from;    /* drop records older than --from (no offsetsForTimes answer) */
	int64_t read;
};

/* Number of partitions of topic, 0 when it does not exist, -1 on error.
 * Asks for all topics: naming one could create it on some clusters. */
static int partitions_of(rd_kafka_t *rk, const char *topic, const char *where, struct mqtx_err *err)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, META_TIMEOUT_MS);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return mqtx_err_retry(err, MQTX_E_BROKER, "cannot get metadata from '%s': %s", where, rd_kafka_err2str(e));
	int n = 0;
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, topic) != 0)
			continue;
		e = md->topics[i].err;
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			n = md->topics[i].partition_cnt;
		} else if (e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
			rd_kafka_metadata_destroy(md);
			return mqtx_err_set(err, MQTX_E_BROKER, "topic '%s' on '%s': %s", topic, where, rd_kafka_err2str(e));
		}
	}
	rd_kafka_metadata_destroy(md);
	return n;
}

/* Start and stop offsets of every partition, from the watermarks now and
 * --from/--to. */
static int plan(rd_kafka_t *rk, const char *topic, const struct mqtx_audit_opts *o, struct part *ps, int np,
		const char *where, struct mqtx_err *err)
{
	rd_kafka_topic_partition_list_t *times = NULL;
	if (o->from.kind == MQTX_AUDIT_POS_TIME || o->to.kind == MQTX_AUDIT_POS_TIME)
		times = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++) {
		int64_t lo, hi;
		rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, META_TIMEOUT_MS);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (times != NULL)
				rd_kafka_topic_partition_list_destroy(times);
			return mqtx_err_retry(err, MQTX_E_BROKER, "cannot read the offsets of '%s' partition %d on '%s': %s", topic,
					      p, where, rd_kafka_err2str(e));
		}
		ps[p].start = lo;
		ps[p].stop = hi;
		if (o->from.kind == MQTX_AUDIT_POS_OFFSET)
			ps[p].start = o->from.offset < lo ? lo : o->from.offset > hi ? hi : o->from.offset;
		if (o->to.kind == MQTX_AUDIT_POS_OFFSET && o->to.offset < ps[p].stop)
			ps[p].stop = o->to.offset;
		if (o->from.kind == MQTX_AUDIT_POS_OFFSET && o->from.offset < lo)
			mqtx_warn("topic '%s' partition %d starts at offset %lld now: earlier records are gone", topic, p,
				  (long long)lo);
		if (times != NULL && o->from.kind == MQTX_AUDIT_POS_TIME)
			rd_kafka_topic_partition_list_add(times, topic, p)->offset = o->from.time_us / 1000;
	}
	if (times != NULL && o->from.kind == MQTX_AUDIT_POS_TIME) {
		rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, times, META_TIMEOUT_MS);
		for (int p = 0; p < np; p++) {
			int64_t off = e == RD_KAFKA_RESP_ERR_NO_ERROR && times->elems[p].err == RD_KAFKA_RESP_ERR_NO_ERROR
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

static int on_message(struct audit_ctx *c, struct part *pp, const rd_kafka_message_t *m, struct mqtx_err *err)
{
	rd_kafka_timestamp_type_t tt;
	int64_t ts_ms = rd_kafka_message_timestamp(m, &tt);
	const struct mqtx_audit_opts *o = c->o;
	if (pp->filter_from && ts_ms >= 0 && ts_ms * 1000 < o->from.time_us)
		return 0;
	if (o->to.kind == MQTX_AUDIT_POS_TIME && ts_ms >= 0 && ts_ms * 1000 >= o->to.time_us)
		return 0;
	rd_kafka_headers_t *h = NULL;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	struct audit_delivery d = {.partition = m->partition, .offset = m->offset, .redelivery_count = -1,
				   .ts_us = ts_ms >= 0 ? ts_ms * 1000 : MQTX_AUDIT_NO_TS};
	size_t n;
	const char *v;
	d.key = header(h, "x-mqtx-idempotency-key", &d.key_len);
	if ((v = header(h, "x-mqtx-outbox-id", &n)) != NULL && (!audit_parse_i64(v, n, &d.id) || d.id < 0))
		d.id = 0;
	if ((v = header(h, "x-mqtx-redelivery-count", &n)) != NULL && !audit_parse_i64(v, n, &d.redelivery_count))
		d.redelivery_count = -1;
	pp->read++;
	return audit_emit(c->sink, &d, err);
}

static void describe(struct audit_ctx *c, const char *topic, const struct part *ps, int np, const char *ending)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "topic %s, %d partition%s:", topic, np, np == 1 ? "" : "s");
	for (int p = 0; p < np && b.len < 400; p++)
		mqtx_buf_printf(&b, " %d[%lld,%lld)", p, (long long)ps[p].start, (long long)ps[p].stop);
	if (b.len >= 400)
		mqtx_buf_adds(&b, " ...");
	mqtx_buf_printf(&b, "; %s", ending);
	snprintf(c->rep->detail, sizeof(c->rep->detail), "%s", b.data);
	mqtx_buf_free(&b);
}

int audit_read_kafka(struct audit_ctx *c, const char *url, struct mqtx_err *err)
{
	struct mqtx_kafka_url u, bu = {0};
	rd_kafka_t *rk = NULL;
	struct part *ps = NULL;
	int rc = -1;
	char *where = mqtx_redact(url);

	c->rep->kind = "kafka";
	c->rep->position = "offset";
	if (mqtx_kafka_url_parse(url, where, true, &u, err) < 0)
		goto out;
	if (u.servers[0] == '\0') {
		/* kafka:///TOPIC: the cluster of broker.url */
		const char *b = c->cfg->broker_url;
		if (b == NULL || (strncmp(b, "kafka://", 8) != 0 && strncmp(b, "kafkas://", 9) != 0)) {
			mqtx_err_set(err, MQTX_E_USAGE, "source '%s' names no brokers, and broker.url is not a kafka:// URL", where);
			goto out;
		}
		char *bw = mqtx_redact(b);
		int r = mqtx_kafka_url_parse(b, bw, false, &bu, err);
		free(bw);
		if (r < 0)
			goto out;
		free(u.servers);
		u.servers = bu.servers;
		bu.servers = NULL;
		u.tls = bu.tls;
		if (u.user == NULL) {
			u.user = bu.user;
			bu.user = NULL;
			u.password = bu.password;
			bu.password = NULL;
		}
	}
	c->default_destination = mqtx_xstrdup(u.topic);

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (build_conf(c->cfg, &u, conf, err) < 0) {
		rd_kafka_conf_destroy(conf);
		goto out;
	}
	char errstr[512];
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf); /* not taken over on failure */
		const struct mqtx_kafka_conf kc = {.cfg = c->cfg, .password = u.password};
		if (mqtx_kafka_conf_leaks(&kc, errstr))
			mqtx_err_set(err, MQTX_E_CONFIG, "cannot create a Kafka consumer for '%s': invalid configuration", where);
		else
			mqtx_err_set(err, MQTX_E_CONFIG, "cannot create a Kafka consumer for '%s': %s", where, errstr);
		goto out;
	}
	/* rd_kafka_new() took ownership of conf */
	int np = partitions_of(rk, u.topic, where, err);
	if (np < 0)
		goto out;
	if (np == 0) {
		mqtx_err_set(err, MQTX_E_BROKER, "topic '%s' does not exist on '%s'", u.topic, where);
		goto out;
	}
	ps = mqtx_xcalloc((size_t)np, sizeof(*ps));
	if (plan(rk, u.topic, c->o, ps, np, where, err) < 0)
		goto out;

	rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(np);
	int open = 0;
	for (int p = 0; p < np; p++) {
		if (ps[p].done)
			continue;
		rd_kafka_topic_partition_list_add(assign, u.topic, p)->offset = ps[p].start;
		open++;
	}
	rd_kafka_resp_err_t e = open > 0 ? rd_kafka_assign(rk, assign) : RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_topic_partition_list_destroy(assign);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		mqtx_err_set(err, MQTX_E_BROKER, "cannot read topic '%s' on '%s': %s", u.topic, where, rd_kafka_err2str(e));
		goto out;
	}

	const char *ending = "to the end at start";
	int64_t last = mqtx_now_ms();
	bool heard = false; /* until the cluster answers once, wait as long as for a connection */
	while (open > 0) {
		if (c->o->stop != NULL && *c->o->stop) {
			c->rep->stopped = true;
			ending = "stopped by a signal";
			break;
		}
		if (mqtx_now_ms() - last >= (heard ? c->idle_timeout_ms : c->cfg->broker_connect_timeout_ms)) {
			ending = "some partitions ended early: nothing arrived for audit.idle_timeout";
			for (int p = 0; p < np; p++)
				if (!ps[p].done)
					mqtx_warn("topic '%s' partition %d: stopped at offset %lld before %lld (nothing arrived for %lldms)",
						  u.topic, p, (long long)ps[p].next, (long long)ps[p].stop,
						  (long long)c->idle_timeout_ms);
			break;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (m == NULL)
			continue;
		int p = m->partition;
		if (p < 0 || p >= np || ps[p].done) {
			rd_kafka_message_destroy(m);
			continue;
		}
		struct part *pp = &ps[p];
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			heard = true;
			last = mqtx_now_ms();
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->offset >= pp->stop) {
				pp->done = true;
				open--;
			}
		} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_resp_err_t me = m->err;
			char msg[300];
			snprintf(msg, sizeof(msg), "%s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			if (me == RD_KAFKA_RESP_ERR__TRANSPORT || me == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
			    me == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
				mqtx_debug("kafka: %s (retrying)", msg);
				continue;
			}
			mqtx_err_set(err, MQTX_E_BROKER, "cannot read topic '%s' partition %d on '%s': %s", u.topic, p, where, msg);
			goto out;
		} else {
			if (m->offset < pp->stop) {
				int r = on_message(c, pp, m, err);
				pp->next = m->offset + 1;
				if (r < 0) {
					rd_kafka_message_destroy(m);
					goto out;
				}
			}
			if (m->offset + 1 >= pp->stop) {
				pp->done = true;
				open--;
			}
		}
		rd_kafka_message_destroy(m);
	}
	describe(c, u.topic, ps, np, ending);
	rc = 0;
out:
	if (rk != NULL) {
		rd_kafka_assign(rk, NULL);
		rd_kafka_destroy(rk);
	}
	free(ps);
	mqtx_kafka_url_free(&u);
	mqtx_kafka_url_free(&bu);
	free(where);
	return rc;
}
