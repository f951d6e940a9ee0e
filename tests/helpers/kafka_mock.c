/*
 * kafka_mock - a librdkafka mock Kafka cluster in its own process, for the
 * mqtx test suite.
 *
 * Build:
 *   cc -std=c11 -Wall -Wextra -Werror -O2 -o tests/helpers/kafka_mock \
 *      tests/helpers/kafka_mock.c $(pkg-config --cflags --libs rdkafka)
 *
 * Usage:
 *   kafka_mock [--brokers N] [--control FIFO_PATH] [--topic NAME:PARTITIONS]...
 *
 * Starts N mock brokers (default 3, ids 1..N) on 127.0.0.1, creates the
 * given topics (replication factor N), prints the bootstrap list
 * ("127.0.0.1:P1,127.0.0.1:P2,...") as one line on stdout and runs until
 * SIGTERM or SIGINT.
 *
 * With --control, FIFO_PATH is created (mode 0600; an existing FIFO is
 * reused) and read for commands, one per line:
 *   topic NAME PARTITIONS          create a topic
 *   down BROKERID                  disconnect a broker, refuse connections (-1: all)
 *   up BROKERID                    accept connections again (-1: all)
 *   errors APIKEY COUNT ERRCODE    the next COUNT requests of APIKEY fail with
 *                                  ERRCODE (cluster-wide error stack)
 *   rtt BROKERID MS                delay every response of a broker (-1: all)
 *   errors-rtt BROKERID APIKEY COUNT ERRCODE MS
 *                                  the next COUNT requests of APIKEY to that
 *                                  broker (-1: each broker) answer ERRCODE
 *                                  (NO_ERROR: success) after MS milliseconds
 *   clear APIKEY                   drop the pending errors of APIKEY
 *   topic-error NAME ERRCODE       answer metadata requests for a topic with
 *                                  ERRCODE (NO_ERROR to undo): the mock
 *                                  creates every topic a client asks about,
 *                                  so `topic-error NAME UNKNOWN_TOPIC_OR_PART`
 *                                  is how a missing topic is simulated
 * APIKEY is a Kafka request name (Produce, Metadata, InitProducerId, EndTxn,
 * ...) or number; ERRCODE a Kafka error name with or without the
 * RD_KAFKA_RESP_ERR_ prefix (NOT_ENOUGH_REPLICAS, NOT_LEADER_FOR_PARTITION,
 * REQUEST_TIMED_OUT, _TRANSPORT, ...) or number. Each command's result goes
 * to stderr as one line: "kafka_mock: ok: <command>" or
 * "kafka_mock: error: <command>: <why>". The FIFO is removed on exit.
 *
 * Exit status: 0 after a signal, 2 on usage or startup errors.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: kafka_mock [--brokers N] [--control FIFO_PATH] [--topic NAME:PARTITIONS]...\n");
	exit(2);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	fputs("kafka_mock: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* A whole decimal number in [lo, hi], or false. */
static bool parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static const struct {
	const char *name;
	int16_t key;
} api_keys[] = {
	{"Produce", 0},
	{"Fetch", 1},
	{"ListOffsets", 2},
	{"Metadata", 3},
	{"OffsetCommit", 8},
	{"OffsetFetch", 9},
	{"FindCoordinator", 10},
	{"JoinGroup", 11},
	{"Heartbeat", 12},
	{"LeaveGroup", 13},
	{"SyncGroup", 14},
	{"DescribeGroups", 15},
	{"ListGroups", 16},
	{"SaslHandshake", 17},
	{"ApiVersions", 18},
	{"CreateTopics", 19},
	{"DeleteTopics", 20},
	{"DeleteRecords", 21},
	{"InitProducerId", 22},
	{"OffsetForLeaderEpoch", 23},
	{"AddPartitionsToTxn", 24},
	{"AddOffsetsToTxn", 25},
	{"EndTxn", 26},
	{"WriteTxnMarkers", 27},
	{"TxnOffsetCommit", 28},
	{"SaslAuthenticate", 36},
};

static bool parse_api_key(const char *s, int16_t *out)
{
	long v;
	for (size_t i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++) {
		if (strcasecmp(s, api_keys[i].name) == 0 ||
		    (strncasecmp(s, api_keys[i].name, strlen(api_keys[i].name)) == 0 &&
		     strcasecmp(s + strlen(api_keys[i].name), "Request") == 0)) {
			*out = api_keys[i].key;
			return true;
		}
	}
	if (parse_int(s, 0, INT16_MAX, &v)) {
		*out = (int16_t)v;
		return true;
	}
	return false;
}

static bool parse_err_code(const char *s, rd_kafka_resp_err_t *out)
{
	const struct rd_kafka_err_desc *descs;
	size_t cnt;
	long v;
	if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
		s += 18;
	rd_kafka_get_err_descs(&descs, &cnt);
	for (size_t i = 0; i < cnt; i++) {
		if (descs[i].name != NULL && strcasecmp(descs[i].name, s) == 0) {
			*out = descs[i].code;
			return true;
		}
	}
	if (parse_int(s, INT_MIN, INT_MAX, &v)) {
		*out = (rd_kafka_resp_err_t)v;
		return true;
	}
	return false;
}

/* Splits line into at most max words (modifies line). */
static int split(char *line, char **words, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *w = strtok_r(line, " \t\r", &save); w != NULL; w = strtok_r(NULL, " \t\r", &save)) {
		if (n == max)
			return max + 1;
		words[n++] = w;
	}
	return n;
}

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *name, const char *parts, int brokers, char *why,
			size_t whylen)
{
	long p;
	if (!parse_int(parts, 1, 100000, &p)) {
		snprintf(why, whylen, "bad partition count '%s'", parts);
		return -1;
	}
	rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, (int)p, brokers);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(why, whylen, "%s", rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

/* Runs one control command; returns 0 or -1 with why. */
static int run_command(rd_kafka_mock_cluster_t *mc, int brokers, char *line, char *why, size_t whylen)
{
	char *w[7];
	int n = split(line, w, 6);
	long id, v;
	rd_kafka_resp_err_t e;

	if (n == 0) {
		snprintf(why, whylen, "empty command");
		return -1;
	}
	if (strcmp(w[0], "topic") == 0 && n == 3)
		return create_topic(mc, w[1], w[2], brokers, why, whylen);
	if ((strcmp(w[0], "down") == 0 || strcmp(w[0], "up") == 0) && n == 2) {
		if (!parse_int(w[1], -1, INT32_MAX, &id)) {
			snprintf(why, whylen, "bad broker id '%s'", w[1]);
			return -1;
		}
		e = w[0][0] == 'd' ? rd_kafka_mock_broker_set_down(mc, (int32_t)id)
				   : rd_kafka_mock_broker_set_up(mc, (int32_t)id);
	} else if (strcmp(w[0], "rtt") == 0 && n == 3) {
		if (!parse_int(w[1], -1, INT32_MAX, &id) || !parse_int(w[2], 0, INT_MAX, &v)) {
			snprintf(why, whylen, "expected: rtt BROKERID MS");
			return -1;
		}
		e = rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)v);
	} else if (strcmp(w[0], "errors") == 0 && n == 4) {
		int16_t api;
		rd_kafka_resp_err_t code;
		if (!parse_api_key(w[1], &api)) {
			snprintf(why, whylen, "unknown API key '%s'", w[1]);
			return -1;
		}
		if (!parse_int(w[2], 1, 100000, &v)) {
			snprintf(why, whylen, "bad count '%s'", w[2]);
			return -1;
		}
		if (!parse_err_code(w[3], &code)) {
			snprintf(why, whylen, "unknown error code '%s'", w[3]);
			return -1;
		}
		rd_kafka_resp_err_t *codes = calloc((size_t)v, sizeof(*codes));
		if (codes == NULL) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		for (long i = 0; i < v; i++)
			codes[i] = code;
		rd_kafka_mock_push_request_errors_array(mc, api, (size_t)v, codes);
		free(codes);
		return 0;
	} else if (strcmp(w[0], "errors-rtt") == 0 && n == 6) {
		int16_t api;
		rd_kafka_resp_err_t code;
		long cnt;
		if (!parse_int(w[1], -1, INT32_MAX, &id) || !parse_api_key(w[2], &api) ||
		    !parse_int(w[3], 1, 100000, &cnt) || !parse_err_code(w[4], &code) ||
		    !parse_int(w[5], 0, INT_MAX, &v)) {
			snprintf(why, whylen, "expected: errors-rtt BROKERID APIKEY COUNT ERRCODE MS");
			return -1;
		}
		e = RD_KAFKA_RESP_ERR_NO_ERROR;
		for (int32_t b = id == -1 ? 1 : (int32_t)id; b <= (id == -1 ? brokers : (int32_t)id) && !e; b++)
			for (long i = 0; i < cnt && !e; i++)
				e = rd_kafka_mock_broker_push_request_error_rtts(mc, b, api, 1, code, (int)v);
	} else if (strcmp(w[0], "topic-error") == 0 && n == 3) {
		rd_kafka_resp_err_t code;
		if (!parse_err_code(w[2], &code)) {
			snprintf(why, whylen, "unknown error code '%s'", w[2]);
			return -1;
		}
		rd_kafka_mock_topic_set_error(mc, w[1], code);
		return 0;
	} else if (strcmp(w[0], "clear") == 0 && n == 2) {
		int16_t api;
		if (!parse_api_key(w[1], &api)) {
			snprintf(why, whylen, "unknown API key '%s'", w[1]);
			return -1;
		}
		rd_kafka_mock_clear_request_errors(mc, api);
		return 0;
	} else {
		snprintf(why, whylen,
			 "unknown command (expected: topic NAME PARTITIONS | down ID | up ID | errors APIKEY COUNT ERRCODE | rtt ID MS | errors-rtt ID APIKEY COUNT ERRCODE MS | clear APIKEY | topic-error NAME ERRCODE)");
		return -1;
	}
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(why, whylen, "%s", rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

static void handle_line(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
	char copy[4096], why[512];
	size_t l = strlen(line);
	while (l > 0 && isspace((unsigned char)line[l - 1]))
		line[--l] = '\0';
	if (l == 0 || line[0] == '#')
		return;
	snprintf(copy, sizeof(copy), "%s", line);
	if (run_command(mc, brokers, line, why, sizeof(why)) == 0)
		fprintf(stderr, "kafka_mock: ok: %s\n", copy);
	else
		fprintf(stderr, "kafka_mock: error: %s: %s\n", copy, why);
	fflush(stderr);
}

/* Opened read-write so the FIFO always has a writer: no EOF between
 * clients and open() never blocks. */
static int open_fifo(const char *path)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		die("cannot open control FIFO '%s': %s", path, strerror(errno));
	return fd;
}

static void serve(rd_kafka_mock_cluster_t *mc, int brokers, const char *fifo)
{
	int fd = fifo != NULL ? open_fifo(fifo) : -1;
	char buf[4096];
	size_t have = 0;

	while (!stop) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, fd >= 0 ? 1 : 0, 500);
		if (r <= 0 || fd < 0)
			continue; /* timeout or EINTR: look at the stop flag */
		ssize_t got = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("cannot read control FIFO '%s': %s", fifo, strerror(errno));
		}
		if (got == 0) { /* every writer left: start over */
			close(fd);
			fd = open_fifo(fifo);
			have = 0;
			continue;
		}
		have += (size_t)got;
		buf[have] = '\0';
		char *start = buf, *nl;
		while ((nl = strchr(start, '\n')) != NULL) {
			*nl = '\0';
			handle_line(mc, brokers, start);
			start = nl + 1;
		}
		have = (size_t)(buf + have - start);
		memmove(buf, start, have);
		if (have == sizeof(buf) - 1) {
			fprintf(stderr, "kafka_mock: error: command line too long, dropped\n");
			have = 0;
		}
	}
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	long brokers = 3;
	const char *fifo = NULL;
	const char **topics = calloc((size_t)argc, sizeof(char *));
	size_t ntopics = 0;
	char errstr[512];

	if (topics == NULL)
		die("out of memory");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
			if (!parse_int(argv[++i], 1, 100, &brokers))
				die("--brokers: expected a number from 1 to 100, got '%s'", argv[i]);
		} else if (strcmp(argv[i], "--control") == 0 && i + 1 < argc) {
			fifo = argv[++i];
		} else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
			topics[ntopics++] = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage();
		} else {
			fprintf(stderr, "kafka_mock: unknown argument '%s'\n", argv[i]);
			usage();
		}
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (fifo != NULL) {
		struct stat st;
		if (mkfifo(fifo, 0600) < 0 && errno != EEXIST)
			die("cannot create control FIFO '%s': %s", fifo, strerror(errno));
		if (stat(fifo, &st) < 0 || !S_ISFIFO(st.st_mode))
			die("'%s' exists and is not a FIFO", fifo);
	}

	/* librdkafka hosts the mock brokers on a client instance's threads. */
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* log_level 4: no notice about the missing bootstrap.servers */
	if (rd_kafka_conf_set(conf, "client.id", "kafka_mock", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		die("%s", errstr);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("cannot create the client instance: %s", errstr);
	conf = NULL; /* rd_kafka_new() took ownership */

	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
	if (mc == NULL)
		die("cannot create a mock cluster with %ld brokers", brokers);

	for (size_t i = 0; i < ntopics; i++) {
		char name[512], why[256];
		const char *colon = strrchr(topics[i], ':');
		if (colon == NULL || colon == topics[i] || (size_t)(colon - topics[i]) >= sizeof(name))
			die("--topic: expected NAME:PARTITIONS, got '%s'", topics[i]);
		memcpy(name, topics[i], (size_t)(colon - topics[i]));
		name[colon - topics[i]] = '\0';
		if (create_topic(mc, name, colon + 1, (int)brokers, why, sizeof(why)) < 0)
			die("--topic %s: %s", topics[i], why);
	}

	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	if (fflush(stdout) != 0)
		die("cannot write the bootstrap list: %s", strerror(errno));

	serve(mc, (int)brokers, fifo);

	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	if (fifo != NULL)
		unlink(fifo);
	free(topics);
	return 0;
}
