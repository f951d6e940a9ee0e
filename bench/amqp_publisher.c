/* The broker limit for `make bench`: the least a program must do to
 * publish N persistent messages with publisher confirms (an async window)
 * or in tx mode (commit every B messages), with no database at all.
 * usage: amqp_publisher URL EXCHANGE ROUTING_KEY COUNT SIZE confirm WINDOW [bare|mqtx|txpub]
 *        amqp_publisher URL EXCHANGE ROUTING_KEY COUNT SIZE tx BATCH [bare|mqtx|txpub]
 * "bare" (the default) sends persistent messages with a short message_id;
 * "mqtx" sends what mqtx relay sends for an outbox row: mandatory, the
 * idempotency key (mqtx:DB:SCHEMA.TABLE:ID, as in make bench) as message_id and as header
 * x-mqtx-idempotency-key, and header x-mqtx-outbox-id; "txpub" what mqtx
 * txpub sends for a line: mandatory, a derived key (txpub:<64 hex>) as
 * message_id and header. So the broker does the same work per message.
 * Prints "COUNT SECONDS" on stdout. */
#define _POSIX_C_SOURCE 200809L
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "amqp_publisher: %s\n", what);
	exit(2);
}

static void check_reply(amqp_rpc_reply_t r, const char *what)
{
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die(what);
}

int main(int argc, char **argv)
{
	if (argc != 8 && argc != 9)
		die("usage: URL EXCHANGE ROUTING_KEY COUNT SIZE confirm|tx WINDOW|BATCH [bare|mqtx]");
	int like_mqtx = argc == 9 && strcmp(argv[8], "mqtx") == 0;
	int like_txpub = argc == 9 && strcmp(argv[8], "txpub") == 0;
	if (argc == 9 && !like_mqtx && !like_txpub && strcmp(argv[8], "bare") != 0)
		die("the message kind is bare, mqtx or txpub");
	struct amqp_connection_info ci;
	char *url = strdup(argv[1]);
	if (url == NULL || amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
		die("bad URL");
	long count = atol(argv[4]), size = atol(argv[5]), param = atol(argv[7]);
	int tx = strcmp(argv[6], "tx") == 0;
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	if (s == NULL || amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK)
		die("cannot connect");
	check_reply(amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password), "login");
	amqp_channel_open(c, 1);
	check_reply(amqp_get_rpc_reply(c), "channel.open");
	if (tx)
		amqp_tx_select(c, 1);
	else
		amqp_confirm_select(c, 1);
	check_reply(amqp_get_rpc_reply(c), "select");

	char *body = malloc((size_t)size);
	if (body == NULL)
		die("out of memory");
	memset(body, 'x', (size_t)size);
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	p.delivery_mode = 2;
	char id[96], num[32];
	amqp_table_entry_t hdr[2];
	if (like_txpub) {
		p._flags |= AMQP_BASIC_HEADERS_FLAG;
		hdr[0].key = amqp_cstring_bytes("x-mqtx-idempotency-key");
		hdr[0].value.kind = AMQP_FIELD_KIND_UTF8;
		p.headers.num_entries = 1;
		p.headers.entries = hdr;
	} else if (like_mqtx) {
		p._flags |= AMQP_BASIC_HEADERS_FLAG;
		hdr[0].key = amqp_cstring_bytes("x-mqtx-outbox-id");
		hdr[0].value.kind = AMQP_FIELD_KIND_UTF8;
		hdr[1].key = amqp_cstring_bytes("x-mqtx-idempotency-key");
		hdr[1].value.kind = AMQP_FIELD_KIND_UTF8;
		p.headers.num_entries = 2;
		p.headers.entries = hdr;
	}
	amqp_bytes_t ex = amqp_cstring_bytes(argv[2]), rk = amqp_cstring_bytes(argv[3]);
	amqp_bytes_t b = {.len = (size_t)size, .bytes = body};

	double t0 = now();
	long acked = 0;
	for (long i = 0; i < count; i++) {
		if (like_txpub) {
			/* 64 hex digits, different per message, as a SHA-256 would give */
			snprintf(id, sizeof(id), "txpub:%016lx%016lx%016lx%016lx",
				 (unsigned long)i * 0x9e3779b97f4a7c15UL, (unsigned long)i, (unsigned long)~i,
				 (unsigned long)i * 31);
			hdr[0].value.value.bytes = amqp_cstring_bytes(id);
		} else if (like_mqtx) {
			snprintf(num, sizeof(num), "%ld", i + 1);
			snprintf(id, sizeof(id), "mqtx:mqtx_test:bench.mqtx_outbox:%ld", i + 1);
			hdr[0].value.value.bytes = amqp_cstring_bytes(num);
			hdr[1].value.value.bytes = amqp_cstring_bytes(id);
		} else {
			snprintf(id, sizeof(id), "bench-%ld", i);
		}
		p.message_id = amqp_cstring_bytes(id);
		if (amqp_basic_publish(c, 1, ex, rk, like_mqtx || like_txpub, 0, &p, b) != AMQP_STATUS_OK)
			die("publish");
		if (tx) {
			if ((i + 1) % param == 0 || i + 1 == count) {
				amqp_tx_commit(c, 1);
				check_reply(amqp_get_rpc_reply(c), "tx.commit");
			}
			continue;
		}
		/* keep at most `param` unconfirmed */
		while (i + 1 - acked >= param || (i + 1 == count && acked < count)) {
			amqp_frame_t f;
			if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
				die("wait");
			if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
				amqp_basic_ack_t *a = f.payload.method.decoded;
				acked = (long)a->delivery_tag;
			} else if (f.frame_type == AMQP_FRAME_METHOD) {
				die("unexpected method (nack or close)");
			}
			amqp_maybe_release_buffers(c);
		}
	}
	double t1 = now();
	printf("%ld %.3f\n", count, t1 - t0);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	free(body);
	free(url);
	return 0;
}
