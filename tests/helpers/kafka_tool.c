/*
 * kafka_tool - small Kafka client used by the mqtx test suite.
 *
 * Build:
 *   cc -std=c11 -Wall -Wextra -Werror -O2 -o tests/helpers/kafka_tool \
 *      tests/helpers/kafka_tool.c $(pkg-config --cflags --libs rdkafka)
 *
 * Usage (BROKERS is a bootstrap list, host:port[,host:port...]):
 *   kafka_tool consume      BROKERS TOPIC [--expect N] [--timeout SECONDS] [--uncommitted]
 *   kafka_tool create-topic BROKERS TOPIC PARTITIONS
 *   kafka_tool produce      BROKERS TOPIC KEY BODY
 *   kafka_tool ping         BROKERS
 *
 * Options may come before or after the positional arguments; after `--`
 * everything is positional.
 *
 * `consume` reads every partition from the beginning to its current end
 * (partitions assigned directly, no group membership, nothing committed)
 * and prints one JSON object per message and line, in offset order within
 * a partition:
 *   {"topic":"..","partition":P,"offset":O,"key":".."|null,
 *    "headers":{"name":"value"|null,...},"body":".."|null,
 *    "body_base64":"..","body_len":N}
 * "body" is null unless the value is valid UTF-8 without NUL bytes (and
 * for a null value). Keys and header values that are not valid UTF-8 come
 * out with \u00XX for the offending bytes. It stops once the end of every
 * partition was reached and (with --expect) at least N messages were
 * read, or when nothing new arrived for --timeout seconds (default 5,
 * fractions allowed). Transaction control records are not shown; the
 * consumer is read_committed (librdkafka's default), or read_uncommitted
 * with --uncommitted: then messages of open and aborted transactions show
 * too.
 *
 * `create-topic` uses the Admin API (an existing topic is fine), except
 * when BROKERS is MQTX_TEST_KAFKA_MOCK_BROKERS and MQTX_TEST_KAFKA_MOCK_CTL
 * names the control FIFO of tests/helpers/kafka_mock: the librdkafka mock
 * cluster has no CreateTopics, so the topic is created through the FIFO.
 * Either way it waits until the topic shows up in metadata with a leader
 * for every partition (listing all topics: the mock creates, with 4
 * partitions, any topic a client names in a metadata request).
 *
 * `produce` sends one message (an empty KEY means no key) with acks=all and
 * waits for its delivery report.
 *
 * `ping` asks for the cluster's brokers (a metadata request, 2 s): exit 0
 * when it answers.
 *
 * Exit status: 0 success; 1 consume got fewer messages than --expect;
 * 2 usage, connection or broker error (one line on stderr:
 * "kafka_tool: <what>: <why>").
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "base/util.h"

#define CONNECT_TIMEOUT_MS 10000

static void usage(void)
{
	fprintf(stderr, "usage: kafka_tool consume BROKERS TOPIC [--expect N] [--timeout SECONDS] [--uncommitted]\n"
			"       kafka_tool create-topic BROKERS TOPIC PARTITIONS\n"
			"       kafka_tool produce BROKERS TOPIC KEY BODY\n"
			"       kafka_tool ping BROKERS\n");
	exit(2);
}

static void die(const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "kafka_tool: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- output buffer and JSON ---- */

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL)
			die("consume", "out of memory");
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static bool is_text(const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len;) {
		if (p[i] == 0)
			return false;
		size_t l = mqtx_utf8_seq(p + i, len - i);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

/* A JSON string; bytes that are not valid UTF-8 become \u00XX. */
static void json_str(struct buf *b, const void *data, size_t len)
{
	const unsigned char *p = data;
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			buf_add(b, e, 2);
			i++;
		} else if (c == '\n') {
			buf_adds(b, "\\n");
			i++;
		} else if (c == '\r') {
			buf_adds(b, "\\r");
			i++;
		} else if (c == '\t') {
			buf_adds(b, "\\t");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
			i++;
		} else {
			size_t l = mqtx_utf8_seq(p + i, len - i);
			if (l == 0) {
				buf_printf(b, "\\u%04x", c);
				i++;
			} else {
				buf_add(b, p + i, l);
				i += l;
			}
		}
	}
	buf_add(b, "\"", 1);
}

static void base64(struct buf *b, const void *data, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	size_t i;
	for (i = 0; i + 2 < len; i += 3) {
		char o[4] = {tab[p[i] >> 2], tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
			     tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)], tab[p[i + 2] & 63]};
		buf_add(b, o, 4);
	}
	if (len - i == 1) {
		char o[4] = {tab[p[i] >> 2], tab[(p[i] & 3) << 4], '=', '='};
		buf_add(b, o, 4);
	} else if (len - i == 2) {
		char o[4] = {tab[p[i] >> 2], tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)], tab[(p[i + 1] & 15) << 2], '='};
		buf_add(b, o, 4);
	}
}

static void message_json(struct buf *b, const rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	b->len = 0;
	buf_adds(b, "{\"topic\":");
	json_str(b, topic, strlen(topic));
	buf_printf(b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"key\":", m->partition, m->offset);
	if (m->key == NULL)
		buf_adds(b, "null");
	else
		json_str(b, m->key, m->key_len);
	buf_adds(b, ",\"headers\":{");
	rd_kafka_headers_t *hdrs = NULL;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		const char *name;
		const void *val;
		size_t size;
		for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
		     i++) {
			if (i > 0)
				buf_adds(b, ",");
			json_str(b, name, strlen(name));
			buf_adds(b, ":");
			if (val == NULL)
				buf_adds(b, "null");
			else
				json_str(b, val, size);
		}
	}
	buf_adds(b, "},\"body\":");
	if (m->payload != NULL && is_text(m->payload, m->len))
		json_str(b, m->payload, m->len);
	else
		buf_adds(b, "null");
	buf_adds(b, ",\"body_base64\":\"");
	if (m->payload != NULL)
		base64(b, m->payload, m->len);
	buf_printf(b, "\",\"body_len\":%zu}\n", m->payload != NULL ? m->len : (size_t)0);
}

/* ---- client setup ---- */

static void set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		die("config", "%s", errstr);
}

static rd_kafka_t *client(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *brokers)
{
	char errstr[512];
	set(conf, "bootstrap.servers", brokers);
	set(conf, "client.id", "kafka_tool");
	set(conf, "log_level", "3");
	set(conf, "allow.auto.create.topics", "false");
	rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("connect", "%s", errstr);
	return rk; /* rd_kafka_new() took ownership of conf */
}

/* Partition count of topic: > 0, or 0 when the topic does not exist;
 * dies when the cluster cannot be reached. Asks for all topics: the mock
 * cluster creates any topic a client names in a metadata request. */
static int partition_count(rd_kafka_t *rk, const char *brokers, const char *topic)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, CONNECT_TIMEOUT_MS);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("connect", "cannot get metadata from '%s': %s", brokers, rd_kafka_err2str(e));
	int n = 0;
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, topic) != 0)
			continue;
		e = md->topics[i].err;
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			n = md->topics[i].partition_cnt;
			/* a partition without a leader yet: not usable, not there */
			for (int p = 0; p < md->topics[i].partition_cnt; p++)
				if (md->topics[i].partitions[p].leader < 0)
					n = 0;
		} else if (e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
			   e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
			rd_kafka_metadata_destroy(md);
			die("metadata", "topic '%s': %s", topic, rd_kafka_err2str(e));
		}
	}
	rd_kafka_metadata_destroy(md);
	return n;
}

/* ---- commands ---- */

static int cmd_consume(const char *brokers, const char *topic, long expect, double timeout_s, bool uncommitted)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	set(conf, "isolation.level", uncommitted ? "read_uncommitted" : "read_committed");
	char group[64];
	snprintf(group, sizeof(group), "kafka_tool-%ld", (long)getpid());
	set(conf, "group.id", group); /* needed by the API; never joined or committed */
	set(conf, "enable.auto.commit", "false");
	set(conf, "enable.auto.offset.store", "false");
	set(conf, "enable.partition.eof", "true");
	/* a real broker holds an empty fetch up to fetch.wait.max.ms (500) */
	set(conf, "fetch.wait.max.ms", "20");
	rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, conf, brokers);

	int np = partition_count(rk, brokers, topic);
	if (np == 0) {
		rd_kafka_destroy(rk);
		die("consume", "topic '%s' does not exist", topic);
	}
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("consume", "cannot assign partitions of '%s': %s", topic, rd_kafka_err2str(e));

	bool *eof = calloc((size_t)np, sizeof(bool));
	struct buf line = {0};
	long got = 0;
	int64_t quiet_limit = (int64_t)(timeout_s * 1000.0);
	int64_t last_new = mqtx_now_ms();
	if (eof == NULL)
		die("consume", "out of memory");
	for (;;) {
		int at_end = 0;
		for (int p = 0; p < np; p++)
			at_end += eof[p];
		if (at_end == np && (expect < 0 || got >= expect))
			break;
		if (mqtx_now_ms() - last_new >= quiet_limit)
			break;
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->partition >= 0 && m->partition < np)
				eof[m->partition] = true;
		} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "kafka_tool: consume: %s\n", rd_kafka_message_errstr(m));
		} else {
			message_json(&line, m);
			if (fwrite(line.data, 1, line.len, stdout) != line.len)
				die("consume", "cannot write to stdout: %s", strerror(errno));
			if (m->partition >= 0 && m->partition < np)
				eof[m->partition] = false;
			got++;
			last_new = mqtx_now_ms();
		}
		rd_kafka_message_destroy(m);
	}
	if (fflush(stdout) != 0)
		die("consume", "cannot write to stdout: %s", strerror(errno));
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	free(eof);
	free(line.data);
	if (expect >= 0 && got < expect) {
		fprintf(stderr, "kafka_tool: consume: expected %ld message(s) from '%s', got %ld\n", expect, topic,
			got);
		return 1;
	}
	return 0;
}

/* The mock cluster has no CreateTopics: ask it through its control FIFO. */
static bool create_via_mock(const char *brokers, const char *topic, long partitions)
{
	const char *ctl = getenv("MQTX_TEST_KAFKA_MOCK_CTL");
	const char *mock = getenv("MQTX_TEST_KAFKA_MOCK_BROKERS");
	if (ctl == NULL || ctl[0] == '\0' || mock == NULL || strcmp(mock, brokers) != 0)
		return false;
	int fd = open(ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		die("create-topic", "cannot open '%s': %s", ctl, strerror(errno));
	char cmd[1024];
	int n = snprintf(cmd, sizeof(cmd), "topic %s %ld\n", topic, partitions);
	if (n < 0 || (size_t)n >= sizeof(cmd) || write(fd, cmd, (size_t)n) != n)
		die("create-topic", "cannot write to '%s': %s", ctl, strerror(errno));
	close(fd);
	return true;
}

/* Waits until the topic is visible, as producers will see it. */
static int wait_for_topic(rd_kafka_t *rk, const char *brokers, const char *topic)
{
	int have;
	int64_t deadline = mqtx_now_ms() + CONNECT_TIMEOUT_MS;
	while ((have = partition_count(rk, brokers, topic)) == 0 && mqtx_now_ms() < deadline)
		mqtx_sleep_ms(100);
	rd_kafka_destroy(rk);
	if (have == 0)
		die("create-topic", "topic '%s' did not show up in metadata within %ds", topic,
		    CONNECT_TIMEOUT_MS / 1000);
	return 0;
}

static int cmd_create_topic(const char *brokers, const char *topic, long partitions)
{
	rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), brokers);
	int have = partition_count(rk, brokers, topic);
	if (have > 0) {
		if (have != partitions)
			fprintf(stderr, "kafka_tool: create-topic: '%s' already exists with %d partition(s)\n", topic,
				have);
		rd_kafka_destroy(rk);
		return 0;
	}
	if (create_via_mock(brokers, topic, partitions))
		return wait_for_topic(rk, brokers, topic);

	char errstr[512];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, (int)partitions, -1, errstr, sizeof(errstr));
	if (nt == NULL)
		die("create-topic", "%s", errstr);
	rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_AdminOptions_set_request_timeout(ao, CONNECT_TIMEOUT_MS, errstr, sizeof(errstr));
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, CONNECT_TIMEOUT_MS + 2000);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
	char why[512] = "no answer";
	if (ev != NULL) {
		e = rd_kafka_event_error(ev);
		snprintf(why, sizeof(why), "%s", rd_kafka_event_error_string(ev));
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
		size_t cnt = 0;
		const rd_kafka_topic_result_t **tr = res != NULL ? rd_kafka_CreateTopics_result_topics(res, &cnt)
								 : NULL;
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR && cnt == 1) {
			e = rd_kafka_topic_result_error(tr[0]);
			const char *s = rd_kafka_topic_result_error_string(tr[0]);
			snprintf(why, sizeof(why), "%s", s != NULL ? s : rd_kafka_err2str(e));
		}
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_queue_destroy(q);
	rd_kafka_AdminOptions_destroy(ao);
	rd_kafka_NewTopic_destroy(nt);

	if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
		rd_kafka_destroy(rk);
		die("create-topic", "cannot create '%s': %s", topic, why);
	}
	return wait_for_topic(rk, brokers, topic);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	rd_kafka_resp_err_t *out = m->_private;
	*out = m->err;
}

static int cmd_produce(const char *brokers, const char *topic, const char *key, const char *body)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	set(conf, "acks", "all");
	set(conf, "message.timeout.ms", "10000");
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, conf, brokers);
	rd_kafka_resp_err_t result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
	size_t klen = strlen(key);
	const char *k = klen > 0 ? key : NULL;
	rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(k, klen),
						  RD_KAFKA_V_VALUE((void *)body, strlen(body)),
						  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&result),
						  RD_KAFKA_V_END);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("produce", "%s", rd_kafka_err2str(e));
	rd_kafka_flush(rk, 15000);
	rd_kafka_destroy(rk);
	if (result == RD_KAFKA_RESP_ERR__IN_PROGRESS)
		die("produce", "no delivery report for '%s'", topic);
	if (result != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("produce", "delivery to '%s' failed: %s", topic, rd_kafka_err2str(result));
	return 0;
}

static int cmd_ping(const char *brokers)
{
	rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), brokers);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, 2000);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
		rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("ping", "no answer from '%s': %s", brokers, rd_kafka_err2str(e));
	return 0;
}

static long parse_long(const char *what, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		die("usage", "%s: expected a number from %ld to %ld, got '%s'", what, lo, hi, s);
	return v;
}

int main(int argc, char **argv)
{
	const char *pos[8];
	int npos = 0;
	long expect = -1;
	double timeout_s = 5;
	bool dashdash = false;
	bool uncommitted = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
		} else if (!dashdash && strcmp(a, "--expect") == 0 && i + 1 < argc) {
			expect = parse_long("--expect", argv[++i], 0, 1000000000L);
		} else if (!dashdash && strcmp(a, "--timeout") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			timeout_s = strtod(argv[++i], &end);
			if (errno != 0 || end == argv[i] || *end != '\0' || !(timeout_s >= 0) || timeout_s > 86400)
				die("usage", "--timeout: expected seconds, got '%s'", argv[i]);
		} else if (!dashdash && strcmp(a, "--uncommitted") == 0) {
			uncommitted = true;
		} else if (!dashdash && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			usage();
		} else if (!dashdash && a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "kafka_tool: usage: unknown option '%s'\n", a);
			usage();
		} else {
			if (npos == (int)(sizeof(pos) / sizeof(pos[0])))
				usage();
			pos[npos++] = a;
		}
	}
	if (npos < 1)
		usage();
	if (strcmp(pos[0], "consume") == 0 && npos == 3)
		return cmd_consume(pos[1], pos[2], expect, timeout_s, uncommitted);
	if (strcmp(pos[0], "create-topic") == 0 && npos == 4)
		return cmd_create_topic(pos[1], pos[2], parse_long("PARTITIONS", pos[3], 1, 100000));
	if (strcmp(pos[0], "ping") == 0 && npos == 2)
		return cmd_ping(pos[1]);
	if (strcmp(pos[0], "produce") == 0 && npos == 5)
		return cmd_produce(pos[1], pos[2], pos[3], pos[4]);
	usage();
	return 2;
}
