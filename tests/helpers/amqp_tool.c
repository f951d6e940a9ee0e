/*
 * amqp_tool - small AMQP 0-9-1 client used by the mqtx test suite.
 *
 * Build:
 *   cc -std=c11 -Wall -Wextra -Werror -o tests/helpers/amqp_tool \
 *      tests/helpers/amqp_tool.c $(pkg-config --cflags --libs librabbitmq)
 *
 * Usage (URL is an amqp:// URL; a vhost of %2f means "/"):
 *   amqp_tool declare-exchange URL NAME [--type direct|topic|fanout|headers]
 *   amqp_tool delete-exchange  URL NAME
 *   amqp_tool declare-queue    URL QUEUE [--quorum|--stream] [--max-length N] [--bind EXCHANGE:KEY]...
 *   amqp_tool delete-queue     URL QUEUE
 *   amqp_tool purge            URL QUEUE
 *   amqp_tool count            URL QUEUE
 *   amqp_tool drain            URL QUEUE [--expect N] [--timeout SECONDS]
 *                                        [--max N]
 *   amqp_tool publish          URL EXCHANGE ROUTINGKEY BODY
 *                              [--message-id ID] [--content-type TYPE]
 *                              [--header KEY=VALUE]... [--]
 *
 * Options may come before or after the positional arguments; after `--`
 * everything is positional (for a BODY that starts with "--").
 * Exchanges and queues are declared durable. `count` prints the number of
 * ready messages (passive declare). `publish` sends a persistent message and
 * waits for the broker's publisher confirm; --header values are sent
 * as strings (longstr).
 *
 * `drain` consumes (prefetch 500, every message acked; with --expect/--max
 * no message beyond N is taken from the queue) and prints one JSON
 * object per message and line:
 *   {"exchange":"..","routing_key":"..","message_id":"..",
 *    "content_type":"..","delivery_mode":2,"redelivered":false,
 *    "headers":{"k":"v",...},"body":"..","body_base64":"..","body_len":N}
 * Absent properties are null. "body" is null unless the body is valid UTF-8
 * without NUL bytes. Header values: strings (longstr and byte arrays) as JSON
 * strings (bytes that are not valid UTF-8 come out as \u00XX), integers and
 * timestamps as numbers, booleans, void as null, nested tables and arrays as
 * objects and arrays, floats as numbers, decimals and the rest as strings.
 * It stops after N messages (--expect/--max) or when no message arrived for
 * --timeout seconds (default 2, fractions allowed).
 *
 * Exit status: 0 success; 1 drain got fewer messages than --expect;
 * 2 usage, connection or broker error (one line on stderr:
 * "amqp_tool: <what>: <why>").
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#define AMQP_TOOL_NEW_HEADERS 1
#endif
#endif
#ifndef AMQP_TOOL_NEW_HEADERS
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#endif

#include "base/util.h"

#define EXIT_SHORT 1
#define EXIT_ERROR 2
#define CHANNEL 1
#define PREFETCH 500
#define IO_TIMEOUT_SEC 30

static const char usage_text[] =
	"usage: amqp_tool COMMAND URL ARGS...\n"
	"  declare-exchange URL NAME [--type direct|topic|fanout|headers]\n"
	"  delete-exchange  URL NAME\n"
	"  declare-queue    URL QUEUE [--quorum|--stream] [--max-length N] [--bind EXCHANGE:KEY]...\n"
	"  delete-queue     URL QUEUE\n"
	"  purge            URL QUEUE\n"
	"  count            URL QUEUE\n"
	"  drain            URL QUEUE [--expect N] [--timeout SECONDS] [--max N]\n"
	"  publish          URL EXCHANGE ROUTINGKEY BODY [--message-id ID]\n"
	"                   [--content-type TYPE] [--header KEY=VALUE]... [--]\n";

/* ------------------------------------------------------------------ errors */

static void die(const char *what, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

static void die(const char *what, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "amqp_tool: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_ERROR);
}

static void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "amqp_tool: usage: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see amqp_tool --help)\n");
	exit(EXIT_ERROR);
}

/* Report a failed RPC (library error, channel or connection close). */
static void check_reply(amqp_rpc_reply_t r, const char *what)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL: return;
	case AMQP_RESPONSE_NONE: die(what, "missing RPC reply");
	case AMQP_RESPONSE_LIBRARY_EXCEPTION: die(what, "%s", amqp_error_string2(r.library_error));
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			const amqp_connection_close_t *m = r.reply.decoded;
			die(what, "server closed the connection: %u %.*s", (unsigned)m->reply_code,
			    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		}
		if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			const amqp_channel_close_t *m = r.reply.decoded;
			die(what, "server closed the channel: %u %.*s", (unsigned)m->reply_code, (int)m->reply_text.len,
			    (const char *)m->reply_text.bytes);
		}
		die(what, "unexpected server method 0x%08" PRIx32, r.reply.id);
	}
	die(what, "unknown RPC reply type %d", (int)r.reply_type);
}

/* ------------------------------------------------------------- connection */

static amqp_connection_state_t conn;

static void check_rpc(amqp_connection_state_t c, const char *what)
{
	check_reply(amqp_get_rpc_reply(c), what);
}

static void open_connection(const char *url)
{
	struct amqp_connection_info ci;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_SEC, .tv_usec = 0};
	char *copy = strdup(url);
	char where[300];
	amqp_socket_t *sock;
	amqp_table_entry_t cap, prop;
	amqp_table_t props;
	int rc;

	if (copy == NULL)
		die("connect", "out of memory");
	amqp_default_connection_info(&ci);
	rc = amqp_parse_url(copy, &ci);
	if (rc != AMQP_STATUS_OK)
		die("parse URL", "'%s': %s", url, amqp_error_string2(rc));
	if (ci.ssl)
		die("parse URL", "'%s': amqps:// is not supported", url);

	snprintf(where, sizeof where, "connect to %s:%d", ci.host, ci.port);
	conn = amqp_new_connection();
	if (conn == NULL)
		die(where, "out of memory");
	sock = amqp_tcp_socket_new(conn);
	if (sock == NULL)
		die(where, "cannot create socket");
	rc = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
	if (rc != AMQP_STATUS_OK)
		die(where, "%s (is the broker running?)", amqp_error_string2(rc));
	amqp_set_handshake_timeout(conn, &tv);
	amqp_set_rpc_timeout(conn, &tv);

	snprintf(where, sizeof where, "login to %s:%d vhost '%s' as '%s'", ci.host, ci.port, ci.vhost, ci.user);
	/* Ask for consumer-cancel notifications so that `drain` notices a
     * deleted queue at once instead of waiting for its timeout. */
	cap.key = amqp_cstring_bytes("consumer_cancel_notify");
	cap.value.kind = AMQP_FIELD_KIND_BOOLEAN;
	cap.value.value.boolean = 1;
	prop.key = amqp_cstring_bytes("capabilities");
	prop.value.kind = AMQP_FIELD_KIND_TABLE;
	prop.value.value.table.num_entries = 1;
	prop.value.value.table.entries = &cap;
	props.num_entries = 1;
	props.entries = &prop;
	check_reply(amqp_login_with_properties(conn, ci.vhost, 0, 131072, 0, &props, AMQP_SASL_METHOD_PLAIN, ci.user,
					       ci.password),
		    where);
	amqp_channel_open(conn, CHANNEL);
	check_rpc(conn, "open channel");
	free(copy);
}

static void close_connection(void)
{
	/* Closing the connection closes the channel; unacked deliveries are
     * requeued by the broker. Errors here do not matter any more. */
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
	conn = NULL;
}

/* ------------------------------------------------------------------ parsing */

static long parse_count(const char *opt, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		usage_error("%s needs a non-negative integer, got '%s'", opt, s);
	return v;
}

static double parse_seconds(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0) || v > 86400.0)
		usage_error("%s needs a number of seconds, got '%s'", opt, s);
	return v;
}

/* Value of option argv[*i] (advances *i). */
static const char *opt_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		usage_error("option %s needs a value", argv[*i]);
	++*i;
	return argv[*i];
}

/* ------------------------------------------------------------------- JSON */

static bool is_text(amqp_bytes_t b)
{
	const unsigned char *p = b.bytes;
	size_t i = 0, len;

	while (i < b.len) {
		if (p[i] == 0)
			return false;
		len = mqtx_utf8_seq(p + i, b.len - i);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* JSON string; bytes that are not valid UTF-8 are written as \u00XX. */
static void json_bytes(FILE *out, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i = 0, len;

	putc('"', out);
	while (i < n) {
		unsigned char c = p[i];
		switch (c) {
		case '"':
			fputs("\\\"", out);
			i++;
			continue;
		case '\\':
			fputs("\\\\", out);
			i++;
			continue;
		case '\b':
			fputs("\\b", out);
			i++;
			continue;
		case '\f':
			fputs("\\f", out);
			i++;
			continue;
		case '\n':
			fputs("\\n", out);
			i++;
			continue;
		case '\r':
			fputs("\\r", out);
			i++;
			continue;
		case '\t':
			fputs("\\t", out);
			i++;
			continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7F) {
			fprintf(out, "\\u%04x", c);
			i++;
			continue;
		}
		len = mqtx_utf8_seq(p + i, n - i);
		if (len == 0) {
			fprintf(out, "\\u%04x", c);
			i++;
		} else {
			fwrite(p + i, 1, len, out);
			i += len;
		}
	}
	putc('"', out);
}

static void json_amqp_bytes(FILE *out, amqp_bytes_t b)
{
	json_bytes(out, b.bytes, b.len);
}

static void json_base64(FILE *out, amqp_bytes_t b)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = b.bytes;
	size_t i;

	putc('"', out);
	for (i = 0; i + 2 < b.len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		putc(tbl[v >> 18], out);
		putc(tbl[(v >> 12) & 63], out);
		putc(tbl[(v >> 6) & 63], out);
		putc(tbl[v & 63], out);
	}
	if (b.len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		putc(tbl[v >> 18], out);
		putc(tbl[(v >> 12) & 63], out);
		fputs("==", out);
	} else if (b.len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		putc(tbl[v >> 18], out);
		putc(tbl[(v >> 12) & 63], out);
		putc(tbl[(v >> 6) & 63], out);
		putc('=', out);
	}
	putc('"', out);
}

static void json_double(FILE *out, double d, int digits)
{
	if (isfinite(d))
		fprintf(out, "%.*g", digits, d);
	else
		fprintf(out, "\"%s\"", isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf"));
}

static void json_table(FILE *out, const amqp_table_t *t);

static void json_field(FILE *out, const amqp_field_value_t *v)
{
	char buf[64];
	int k;

	switch (v->kind) {
	case AMQP_FIELD_KIND_BOOLEAN: fputs(v->value.boolean ? "true" : "false", out); break;
	case AMQP_FIELD_KIND_I8: fprintf(out, "%d", (int)v->value.i8); break;
	case AMQP_FIELD_KIND_U8: fprintf(out, "%u", (unsigned)v->value.u8); break;
	case AMQP_FIELD_KIND_I16: fprintf(out, "%d", (int)v->value.i16); break;
	case AMQP_FIELD_KIND_U16: fprintf(out, "%u", (unsigned)v->value.u16); break;
	case AMQP_FIELD_KIND_I32: fprintf(out, "%" PRId32, v->value.i32); break;
	case AMQP_FIELD_KIND_U32: fprintf(out, "%" PRIu32, v->value.u32); break;
	case AMQP_FIELD_KIND_I64: fprintf(out, "%" PRId64, v->value.i64); break;
	case AMQP_FIELD_KIND_U64:
	case AMQP_FIELD_KIND_TIMESTAMP: fprintf(out, "%" PRIu64, v->value.u64); break;
	case AMQP_FIELD_KIND_F32: json_double(out, v->value.f32, 9); break;
	case AMQP_FIELD_KIND_F64: json_double(out, v->value.f64, 17); break;
	case AMQP_FIELD_KIND_DECIMAL: {
		/* value * 10^-decimals, as a string, e.g. "123.45" */
		uint32_t val = v->value.decimal.value;
		unsigned dec = v->value.decimal.decimals;
		char digits[32];
		int n = snprintf(digits, sizeof digits, "%0*" PRIu32, (int)dec + 1, val);
		if (dec == 0 || n <= 0)
			snprintf(buf, sizeof buf, "%s", digits);
		else
			snprintf(buf, sizeof buf, "%.*s.%s", n - (int)dec, digits, digits + (n - (int)dec));
		json_bytes(out, buf, strlen(buf));
		break;
	}
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES: json_amqp_bytes(out, v->value.bytes); break;
	case AMQP_FIELD_KIND_VOID: fputs("null", out); break;
	case AMQP_FIELD_KIND_TABLE: json_table(out, &v->value.table); break;
	case AMQP_FIELD_KIND_ARRAY:
		putc('[', out);
		for (k = 0; k < v->value.array.num_entries; k++) {
			if (k > 0)
				putc(',', out);
			json_field(out, &v->value.array.entries[k]);
		}
		putc(']', out);
		break;
	default:
		snprintf(buf, sizeof buf, "<field kind '%c'>", v->kind);
		json_bytes(out, buf, strlen(buf));
		break;
	}
}

static void json_table(FILE *out, const amqp_table_t *t)
{
	int k;

	putc('{', out);
	for (k = 0; k < t->num_entries; k++) {
		if (k > 0)
			putc(',', out);
		json_amqp_bytes(out, t->entries[k].key);
		putc(':', out);
		json_field(out, &t->entries[k].value);
	}
	putc('}', out);
}

static void print_message(FILE *out, const amqp_envelope_t *env)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	amqp_bytes_t body = env->message.body;

	fputs("{\"exchange\":", out);
	json_amqp_bytes(out, env->exchange);
	fputs(",\"routing_key\":", out);
	json_amqp_bytes(out, env->routing_key);
	fputs(",\"message_id\":", out);
	if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		json_amqp_bytes(out, p->message_id);
	else
		fputs("null", out);
	fputs(",\"content_type\":", out);
	if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
		json_amqp_bytes(out, p->content_type);
	else
		fputs("null", out);
	fputs(",\"delivery_mode\":", out);
	if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
		fprintf(out, "%u", (unsigned)p->delivery_mode);
	else
		fputs("null", out);
	fprintf(out, ",\"redelivered\":%s", env->redelivered ? "true" : "false");
	fputs(",\"headers\":", out);
	if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
		json_table(out, &p->headers);
	else
		fputs("{}", out);
	fputs(",\"body\":", out);
	if (is_text(body))
		json_amqp_bytes(out, body);
	else
		fputs("null", out);
	fputs(",\"body_base64\":", out);
	json_base64(out, body);
	fprintf(out, ",\"body_len\":%zu}\n", body.len);
	fflush(out);
}

/* --------------------------------------------------------------- commands */

static int cmd_declare_exchange(const char *url, int argc, char **argv)
{
	const char *name = NULL, *type = "direct";
	int i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--type") == 0)
			type = opt_value(argc, argv, &i);
		else if (argv[i][0] == '-' && argv[i][1] == '-')
			usage_error("declare-exchange: unknown option %s", argv[i]);
		else if (name == NULL)
			name = argv[i];
		else
			usage_error("declare-exchange: unexpected argument '%s'", argv[i]);
	}
	if (name == NULL)
		usage_error("declare-exchange needs URL NAME");
	open_connection(url);
	amqp_exchange_declare(conn, CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
			      amqp_empty_table);
	check_rpc(conn, "declare exchange");
	return 0;
}

static int cmd_delete_exchange(const char *url, int argc, char **argv)
{
	if (argc != 1)
		usage_error("delete-exchange needs URL NAME");
	open_connection(url);
	amqp_exchange_delete(conn, CHANNEL, amqp_cstring_bytes(argv[0]), 0);
	check_rpc(conn, "delete exchange");
	return 0;
}

static int cmd_declare_queue(const char *url, int argc, char **argv)
{
	const char *name = NULL;
	bool quorum = false;
	bool stream = false;
	amqp_table_entry_t qargs[2];
	amqp_table_t args = amqp_empty_table;
	long long max_length = -1;
	int i;

	/* Validate everything before talking to the broker. */
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--quorum") == 0) {
			quorum = true;
		} else if (strcmp(argv[i], "--stream") == 0) {
			stream = true;
		} else if (strcmp(argv[i], "--max-length") == 0) {
			const char *v = opt_value(argc, argv, &i);
			char *end = NULL;
			max_length = strtoll(v, &end, 10);
			if (*v == '\0' || *end != '\0' || max_length < 0)
				usage_error("--max-length needs a count, got '%s'", v);
		} else if (strcmp(argv[i], "--bind") == 0) {
			const char *b = opt_value(argc, argv, &i);
			if (strchr(b, ':') == NULL)
				usage_error("--bind needs EXCHANGE:BINDINGKEY, got '%s'", b);
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			usage_error("declare-queue: unknown option %s", argv[i]);
		} else if (name == NULL) {
			name = argv[i];
		} else {
			usage_error("declare-queue: unexpected argument '%s'", argv[i]);
		}
	}
	if (name == NULL)
		usage_error("declare-queue needs URL QUEUE");
	args.entries = qargs;
	if (quorum || stream) {
		qargs[args.num_entries].key = amqp_cstring_bytes("x-queue-type");
		qargs[args.num_entries].value.kind = AMQP_FIELD_KIND_UTF8;
		qargs[args.num_entries].value.value.bytes = amqp_cstring_bytes(stream ? "stream" : "quorum");
		args.num_entries++;
	}
	if (max_length >= 0) { /* the oldest messages are dropped beyond it */
		qargs[args.num_entries].key = amqp_cstring_bytes("x-max-length");
		qargs[args.num_entries].value.kind = AMQP_FIELD_KIND_I64;
		qargs[args.num_entries].value.value.i64 = max_length;
		args.num_entries++;
	}
	open_connection(url);
	amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
	check_rpc(conn, "declare queue");

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--bind") == 0) {
			const char *b = argv[++i];
			const char *colon = strchr(b, ':');
			amqp_bytes_t exchange = {.len = (size_t)(colon - b), .bytes = (void *)(uintptr_t)b};
			amqp_queue_bind(conn, CHANNEL, amqp_cstring_bytes(name), exchange,
					amqp_cstring_bytes(colon + 1), amqp_empty_table);
			check_rpc(conn, "bind queue");
		}
	}
	return 0;
}

static int cmd_delete_queue(const char *url, int argc, char **argv)
{
	if (argc != 1)
		usage_error("delete-queue needs URL QUEUE");
	open_connection(url);
	amqp_queue_delete(conn, CHANNEL, amqp_cstring_bytes(argv[0]), 0, 0);
	check_rpc(conn, "delete queue");
	return 0;
}

static int cmd_purge(const char *url, int argc, char **argv)
{
	if (argc != 1)
		usage_error("purge needs URL QUEUE");
	open_connection(url);
	amqp_queue_purge(conn, CHANNEL, amqp_cstring_bytes(argv[0]));
	check_rpc(conn, "purge queue");
	return 0;
}

static int cmd_count(const char *url, int argc, char **argv)
{
	amqp_queue_declare_ok_t *ok;

	if (argc != 1)
		usage_error("count needs URL QUEUE");
	open_connection(url);
	ok = amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(argv[0]), 1, 0, 0, 0, amqp_empty_table);
	check_rpc(conn, "count messages");
	printf("%" PRIu32 "\n", ok->message_count);
	return 0;
}

/* Handle a non-delivery frame that arrived while consuming. Returns false
 * if consuming must stop. */
static bool handle_other_frame(void)
{
	amqp_frame_t frame;
	amqp_message_t msg;
	int rc = amqp_simple_wait_frame(conn, &frame);

	if (rc != AMQP_STATUS_OK)
		die("drain", "%s", amqp_error_string2(rc));
	if (frame.frame_type != AMQP_FRAME_METHOD)
		return true;
	switch (frame.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: return true;
	case AMQP_BASIC_RETURN_METHOD:
		if (amqp_read_message(conn, frame.channel, &msg, 0).reply_type == AMQP_RESPONSE_NORMAL)
			amqp_destroy_message(&msg);
		return true;
	case AMQP_BASIC_CANCEL_METHOD:
		fprintf(stderr, "amqp_tool: drain: consumer cancelled by the broker "
				"(queue deleted?)\n");
		return false;
	case AMQP_CHANNEL_CLOSE_METHOD: {
		const amqp_channel_close_t *m = frame.payload.method.decoded;
		die("drain", "server closed the channel: %u %.*s", (unsigned)m->reply_code, (int)m->reply_text.len,
		    (const char *)m->reply_text.bytes);
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		const amqp_connection_close_t *m = frame.payload.method.decoded;
		die("drain", "server closed the connection: %u %.*s", (unsigned)m->reply_code, (int)m->reply_text.len,
		    (const char *)m->reply_text.bytes);
	}
	default: return true;
	}
}

static int cmd_drain(const char *url, int argc, char **argv)
{
	const char *queue = NULL;
	long expect = -1, max = -1, limit = -1, received = 0, acked = 0;
	long prefetch = PREFETCH;
	uint64_t held_tag = 0; /* highest delivery tag not acked yet, or 0 */
	amqp_basic_consume_ok_t *ok;
	amqp_bytes_t tag = amqp_empty_bytes;
	bool cancelled = false;
	double timeout = 2.0;
	struct timeval tv;
	int i, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--expect") == 0)
			expect = parse_count("--expect", opt_value(argc, argv, &i));
		else if (strcmp(argv[i], "--max") == 0)
			max = parse_count("--max", opt_value(argc, argv, &i));
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout = parse_seconds("--timeout", opt_value(argc, argv, &i));
		else if (argv[i][0] == '-' && argv[i][1] == '-')
			usage_error("drain: unknown option %s", argv[i]);
		else if (queue == NULL)
			queue = argv[i];
		else
			usage_error("drain: unexpected argument '%s'", argv[i]);
	}
	if (queue == NULL)
		usage_error("drain needs URL QUEUE");
	limit = expect;
	if (max >= 0 && (limit < 0 || max < limit))
		limit = max;

	open_connection(url);
	if (limit != 0) {
		if (limit > 0 && limit < PREFETCH)
			prefetch = limit;
		amqp_basic_qos(conn, CHANNEL, 0, (uint16_t)prefetch, 0);
		check_rpc(conn, "set prefetch");
		ok = amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
					amqp_empty_table);
		check_rpc(conn, "consume");
		tag = amqp_bytes_malloc_dup(ok->consumer_tag);
		if (tag.bytes == NULL)
			die("consume", "out of memory");
	}

	while (limit < 0 || received < limit) {
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		tv.tv_sec = (time_t)timeout;
		tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
		amqp_maybe_release_buffers(conn);
		r = amqp_consume_message(conn, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			print_message(stdout, &env);
			if (ferror(stdout))
				die("drain", "cannot write to stdout");
			/* The broker delivers at most acked + prefetch messages. With
             * a limit, stop acking once that could exceed the limit and
             * ack the rest at the end: so no message beyond the limit is
             * taken from the queue (and redelivered later). */
			if (limit < 0 || acked + 1 + prefetch <= limit) {
				rc = amqp_basic_ack(conn, CHANNEL, env.delivery_tag, 0);
				if (rc != AMQP_STATUS_OK)
					die("ack", "%s", amqp_error_string2(rc));
				acked++;
			} else {
				held_tag = env.delivery_tag;
			}
			amqp_destroy_envelope(&env);
			received++;
			continue;
		}
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
			break;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			if (!handle_other_frame()) {
				cancelled = true;
				break;
			}
			continue;
		}
		check_reply(r, "drain");
		break; /* not reached */
	}
	/* Cancel first: otherwise the broker would refill the prefetch window
     * as soon as the held messages are acked, and those deliveries would
     * be requeued (as redelivered) when the connection closes. */
	if (tag.bytes != NULL && !cancelled) {
		amqp_basic_cancel(conn, CHANNEL, tag);
		check_rpc(conn, "cancel consumer");
	}
	amqp_bytes_free(tag);
	if (held_tag != 0) {
		rc = amqp_basic_ack(conn, CHANNEL, held_tag, 1);
		if (rc != AMQP_STATUS_OK)
			die("ack", "%s", amqp_error_string2(rc));
	}

	if (expect >= 0 && received < expect) {
		char why[64];
		if (cancelled)
			snprintf(why, sizeof why, "consumer cancelled by the broker");
		else
			snprintf(why, sizeof why, "no message for %gs", timeout);
		fprintf(stderr,
			"amqp_tool: drain: expected %ld message(s) from queue '%s', "
			"received %ld (%s)\n",
			expect, queue, received, why);
		return EXIT_SHORT;
	}
	return 0;
}

static int cmd_publish(const char *url, int argc, char **argv)
{
	const char *pos[3] = {NULL, NULL, NULL};
	int npos = 0, nhdr = 0, i;
	bool only_pos = false;
	amqp_basic_properties_t props;
	amqp_table_entry_t *hdrs;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_SEC, .tv_usec = 0};
	amqp_frame_t frame;
	int rc;

	hdrs = calloc((size_t)argc + 1, sizeof *hdrs);
	if (hdrs == NULL)
		die("publish", "out of memory");
	memset(&props, 0, sizeof props);
	props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.delivery_mode = AMQP_DELIVERY_PERSISTENT;

	for (i = 0; i < argc; i++) {
		if (!only_pos && strcmp(argv[i], "--") == 0) {
			only_pos = true; /* e.g. for a BODY that starts with "--" */
		} else if (only_pos || !(argv[i][0] == '-' && argv[i][1] == '-')) {
			if (npos == 3)
				usage_error("publish: unexpected argument '%s'", argv[i]);
			pos[npos++] = argv[i];
		} else if (strcmp(argv[i], "--message-id") == 0) {
			props.message_id = amqp_cstring_bytes(opt_value(argc, argv, &i));
			props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
		} else if (strcmp(argv[i], "--content-type") == 0) {
			props.content_type = amqp_cstring_bytes(opt_value(argc, argv, &i));
			props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
		} else if (strcmp(argv[i], "--header") == 0) {
			const char *h = opt_value(argc, argv, &i);
			const char *eq = strchr(h, '=');
			if (eq == NULL || eq == h)
				usage_error("--header needs KEY=VALUE, got '%s'", h);
			hdrs[nhdr].key.bytes = (void *)(uintptr_t)h;
			hdrs[nhdr].key.len = (size_t)(eq - h);
			hdrs[nhdr].value.kind = AMQP_FIELD_KIND_UTF8;
			hdrs[nhdr].value.value.bytes = amqp_cstring_bytes(eq + 1);
			nhdr++;
		} else {
			usage_error("publish: unknown option %s", argv[i]);
		}
	}
	if (npos != 3)
		usage_error("publish needs URL EXCHANGE ROUTINGKEY BODY");
	if (nhdr > 0) {
		props.headers.num_entries = nhdr;
		props.headers.entries = hdrs;
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
	}
	open_connection(url);

	amqp_confirm_select(conn, CHANNEL);
	check_rpc(conn, "enable publisher confirms");
	rc = amqp_basic_publish(conn, CHANNEL, amqp_cstring_bytes(pos[0]), amqp_cstring_bytes(pos[1]), 0, 0, &props,
				amqp_cstring_bytes(pos[2]));
	if (rc != AMQP_STATUS_OK)
		die("publish", "%s", amqp_error_string2(rc));

	for (;;) {
		rc = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
		if (rc != AMQP_STATUS_OK)
			die("publish: waiting for confirm", "%s", amqp_error_string2(rc));
		if (frame.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (frame.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: free(hdrs); return 0;
		case AMQP_BASIC_NACK_METHOD: die("publish", "broker refused the message (basic.nack)");
		case AMQP_CHANNEL_CLOSE_METHOD: {
			const amqp_channel_close_t *m = frame.payload.method.decoded;
			die("publish", "server closed the channel: %u %.*s", (unsigned)m->reply_code,
			    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		}
		case AMQP_CONNECTION_CLOSE_METHOD: {
			const amqp_connection_close_t *m = frame.payload.method.decoded;
			die("publish", "server closed the connection: %u %.*s", (unsigned)m->reply_code,
			    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		}
		default: break;
		}
	}
}

/* ------------------------------------------------------------------- main */

struct command {
	const char *name;
	int (*fn)(const char *url, int argc, char **argv);
};

static const struct command commands[] = {
	{"declare-exchange", cmd_declare_exchange},
	{"delete-exchange", cmd_delete_exchange},
	{"declare-queue", cmd_declare_queue},
	{"delete-queue", cmd_delete_queue},
	{"purge", cmd_purge},
	{"count", cmd_count},
	{"drain", cmd_drain},
	{"publish", cmd_publish},
};

int main(int argc, char **argv)
{
	const struct command *cmd = NULL;
	size_t k;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 3)
		usage_error("missing %s", argc < 2 ? "COMMAND" : "URL");
	for (k = 0; k < sizeof commands / sizeof commands[0]; k++)
		if (strcmp(argv[1], commands[k].name) == 0)
			cmd = &commands[k];
	if (cmd == NULL)
		usage_error("unknown command '%s'", argv[1]);

	/* Each command checks its arguments, then connects. */
	rc = cmd->fn(argv[2], argc - 3, argv + 3);
	if (fflush(stdout) != 0)
		die(cmd->name, "cannot write to stdout");
	if (conn != NULL)
		close_connection();
	return rc;
}
