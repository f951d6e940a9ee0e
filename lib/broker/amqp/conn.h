/* One AMQP connection path for the whole backend: URL parsing, TLS,
 * login, channels and the translation of every rabbitmq-c status into
 * struct mqtx_err. Publishing and consuming (amqp.c) and reading a
 * dedupe-audit source (read.c) all connect through here. Private to
 * lib/broker/amqp/. */
#ifndef MQTX_BROKER_AMQP_CONN_H
#define MQTX_BROKER_AMQP_CONN_H

#include <amqp.h>
#include <stdbool.h>

#include "base/error.h"
#include "config/config.h"

/* The frame_max mqtx asks for; the broker may lower it (amqp_get_frame_max). */
#define MQTX_AMQP_FRAME_MAX 131072

struct mqtx_amqp_conn {
	amqp_connection_state_t c; /* NULL until connected */
	char *where;               /* redacted URL for messages; owned */
	bool broken;               /* no closing handshake: the connection is gone or unusable */
	int fd;                    /* the socket, watched by a stop's watchdog (base/stop.h); -1 before */
};

struct mqtx_amqp_login {
	const char *url;         /* amqp[s]://[user[:password]@]host[:port][/vhost]; may hold a password */
	const char *vhost;       /* NULL: the URL's */
	const char *client_name; /* connection_name shown by the broker */
	int heartbeat_s;         /* 0: none */
	/* a URL amqp_parse_url refuses: "cannot parse <what> '<url>' (expected
	 * <hint>)", of this kind (MQTX_E_CONFIG for broker.url, MQTX_E_USAGE
	 * for a source) */
	const char *what; /* "broker URL", "source" */
	enum mqtx_err_kind bad_url_kind;
	const char *bad_url_hint; /* "amqp://user:pass@host:port/vhost" */
};

/* Connects and logs in: broker.tls.* for amqps:// (with a warning through
 * the log when verification is off), broker.password_file over the URL's
 * password, broker.connect_timeout for the socket and every RPC. Sets
 * k->where from l->url unless the caller set it (k zeroed otherwise). 0, or -1 with
 * err; either way mqtx_amqp_conn_close(k) releases k. */
int mqtx_amqp_connect(struct mqtx_amqp_conn *k, const struct mqtx_config *cfg, const struct mqtx_amqp_login *l,
		      struct mqtx_err *err);
/* Closes channel ch (0: none) and the connection, with the handshake
 * unless k->broken, and frees what k holds. */
void mqtx_amqp_conn_close(struct mqtx_amqp_conn *k, amqp_channel_t ch);

/* A rabbitmq-c status (negative int): the connection is unusable. */
int mqtx_amqp_status_err(struct mqtx_amqp_conn *k, int status, const char *doing, struct mqtx_err *err);
/* An RPC reply: 0 when normal, else -1 with err ("<doing> '<where>': why").
 * A channel closed by the broker is answered with close-ok when ch is not 0
 * (callers that reopen or retry the channel answer it themselves). */
int mqtx_amqp_reply_err(struct mqtx_amqp_conn *k, amqp_rpc_reply_t r, amqp_channel_t ch, const char *doing,
			struct mqtx_err *err);
/* Opens channel ch. 0, or -1 with err. */
int mqtx_amqp_channel_open(struct mqtx_amqp_conn *k, amqp_channel_t ch, struct mqtx_err *err);

#endif
