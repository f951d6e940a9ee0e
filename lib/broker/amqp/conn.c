/* The AMQP backend's connection path (see conn.h). Every rabbitmq-c
 * status of connecting, logging in and RPC replies is translated here. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "broker/amqp/conn.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "broker/broker.h"
#include "base/log.h"
#include "base/stop.h"
#include "base/util.h"

int mqtx_amqp_status_err(struct mqtx_amqp_conn *k, int status, const char *doing, struct mqtx_err *err)
{
	k->broken = true;
	return mqtx_err_retry(err, MQTX_E_BROKER, "%s '%s': %s", doing, k->where, amqp_error_string2(status));
}

int mqtx_amqp_reply_err(struct mqtx_amqp_conn *k, amqp_rpc_reply_t r, amqp_channel_t ch, const char *doing,
			struct mqtx_err *err)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL: return 0;
	case AMQP_RESPONSE_NONE:
		k->broken = true;
		return mqtx_err_retry(err, MQTX_E_BROKER, "%s '%s': no reply from the broker", doing, k->where);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION: return mqtx_amqp_status_err(k, r.library_error, doing, err);
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			k->broken = true;
			return mqtx_err_set(err, MQTX_E_BROKER, "%s '%s': broker closed the connection: %.*s", doing,
					    k->where, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		}
		if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			mqtx_err_set(err, MQTX_E_BROKER, "%s '%s': broker closed the channel: %.*s", doing, k->where,
				     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
			if (ch != 0) {
				amqp_channel_close_ok_t ok = {0};
				amqp_send_method(k->c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
			}
			return -1;
		}
		return mqtx_err_set(err, MQTX_E_BROKER, "%s '%s': unexpected broker method 0x%08x", doing, k->where,
				    r.reply.id);
	}
	return mqtx_err_set(err, MQTX_E_BROKER, "%s '%s': unknown failure", doing, k->where);
}

int mqtx_amqp_channel_open(struct mqtx_amqp_conn *k, amqp_channel_t ch, struct mqtx_err *err)
{
	amqp_channel_open(k->c, ch);
	return mqtx_amqp_reply_err(k, amqp_get_rpc_reply(k->c), 0, "cannot open a channel on", err);
}

static amqp_socket_t *tls_socket(struct mqtx_amqp_conn *k, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	amqp_socket_t *sock = amqp_ssl_socket_new(k->c);
	if (sock == NULL) {
		mqtx_err_set(err, MQTX_E_BROKER, "cannot create a TLS socket for '%s'", k->where);
		return NULL;
	}
	if (cfg->broker_tls_ca_file != NULL &&
	    amqp_ssl_socket_set_cacert(sock, cfg->broker_tls_ca_file) != AMQP_STATUS_OK) {
		mqtx_err_set(err, MQTX_E_CONFIG, "cannot load CA file '%s' (broker.tls.ca_file)",
			     cfg->broker_tls_ca_file);
		return NULL;
	}
	if (cfg->broker_tls_cert_file != NULL && cfg->broker_tls_key_file != NULL &&
	    amqp_ssl_socket_set_key(sock, cfg->broker_tls_cert_file, cfg->broker_tls_key_file) != AMQP_STATUS_OK) {
		mqtx_err_set(err, MQTX_E_CONFIG, "cannot load client certificate '%s' or key '%s'",
			     cfg->broker_tls_cert_file, cfg->broker_tls_key_file);
		return NULL;
	}
	amqp_ssl_socket_set_verify_peer(sock, cfg->broker_tls_verify);
	amqp_ssl_socket_set_verify_hostname(sock, cfg->broker_tls_verify);
	if (!cfg->broker_tls_verify)
		mqtx_warn("TLS certificate verification is OFF for '%s' (broker.tls.verify: false): anyone on the path can read and change messages",
			  k->where);
	return sock;
}

static void wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* The hosts of a URL that names several, amqp://user:pass@h1:p1,h2:p2/vhost:
 * one URL per host, scheme, user info and the rest the same. A URL with
 * one host is itself. Returns the count (0: an empty host in the list);
 * out[] owned, each may hold a password: free them with wipe_urls (parsing
 * cuts them into pieces, so their lengths are kept in out[n]'s place). */
struct host_urls {
	char **url;
	size_t *len;
};

static void wipe_urls(struct host_urls *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		explicit_bzero(h->url[i], h->len[i]);
		free(h->url[i]);
	}
	free(h->url);
	free(h->len);
}

static size_t split_hosts(const char *url, struct host_urls *out)
{
	out->url = NULL;
	out->len = NULL;
	const char *sep = strstr(url, "://");
	const char *auth = sep != NULL ? sep + 3 : url;
	const char *auth_end = auth + strcspn(auth, "/?#");
	const char *hosts = auth;
	for (const char *p = auth; p < auth_end; p++)
		if (*p == '@')
			hosts = p + 1;
	size_t n = 1;
	for (const char *p = hosts; p < auth_end; p++)
		n += *p == ',';
	out->url = mqtx_xcalloc(n, sizeof(char *));
	out->len = mqtx_xcalloc(n, sizeof(size_t));
	const char *h = hosts;
	for (size_t i = 0; i < n; i++) {
		const char *e = h;
		while (e < auth_end && *e != ',')
			e++;
		if (e == h && n > 1) {
			wipe_urls(out, i);
			return 0;
		}
		struct mqtx_buf b = MQTX_BUF_INIT;
		mqtx_buf_printf(&b, "%.*s%.*s%s", (int)(hosts - url), url, (int)(e - h), h, auth_end);
		out->url[i] = b.data;
		out->len[i] = b.len;
		h = e + 1;
	}
	return n;
}

/* One host: socket, TLS, login. 0, or -1 with err; k->c is then NULL. */
static int connect_host(struct mqtx_amqp_conn *k, const struct mqtx_config *cfg, const struct mqtx_amqp_login *l,
			char *url, const char *password, struct mqtx_err *err)
{
	struct amqp_connection_info info;
	amqp_default_connection_info(&info);
	if (amqp_parse_url(url, &info) != AMQP_STATUS_OK)
		return mqtx_err_set(err, l->bad_url_kind, "cannot parse %s '%s' (expected %s)", l->what, k->where,
				    l->bad_url_hint);
	k->c = amqp_new_connection();
	amqp_socket_t *sock = info.ssl ? tls_socket(k, cfg, err) : amqp_tcp_socket_new(k->c);
	if (sock == NULL) {
		if (!info.ssl)
			mqtx_err_set(err, MQTX_E_BROKER, "cannot create a socket for '%s'", k->where);
		goto fail;
	}
	struct timeval tv = {.tv_sec = cfg->broker_connect_timeout_ms / 1000,
			     .tv_usec = (cfg->broker_connect_timeout_ms % 1000) * 1000};
	int st = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
	if (st != AMQP_STATUS_OK) {
		mqtx_err_retry(err, MQTX_E_BROKER, "cannot connect to '%s': %s", k->where, amqp_error_string2(st));
		goto fail;
	}
	k->fd = amqp_get_sockfd(k->c);
	mqtx_stop_watch(k->fd); /* the handshake below cannot be told to give up otherwise */
	amqp_set_rpc_timeout(k->c, &tv);
	amqp_table_entry_t prop = {.key = amqp_cstring_bytes("connection_name"),
				   .value = {.kind = AMQP_FIELD_KIND_UTF8,
					     .value.bytes = amqp_cstring_bytes(l->client_name != NULL ? l->client_name
												      : "mqtx")}};
	amqp_table_t props = {.num_entries = 1, .entries = &prop};
	amqp_rpc_reply_t r = amqp_login_with_properties(k->c, l->vhost != NULL ? l->vhost : info.vhost, 0,
							MQTX_AMQP_FRAME_MAX, l->heartbeat_s, &props,
							AMQP_SASL_METHOD_PLAIN, info.user,
							password != NULL ? password : info.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		mqtx_amqp_reply_err(k, r, 0, "cannot log in to", err);
		goto fail;
	}
	return 0;
fail:
	if (k->fd >= 0)
		mqtx_stop_unwatch(k->fd);
	amqp_destroy_connection(k->c);
	k->c = NULL;
	k->fd = -1;
	k->broken = true;
	return -1;
}

int mqtx_amqp_connect(struct mqtx_amqp_conn *k, const struct mqtx_config *cfg, const struct mqtx_amqp_login *l,
		      struct mqtx_err *err)
{
	char *password = NULL;
	struct host_urls urls;
	int rc = -1;

	k->fd = -1;
	bool own_where = k->where == NULL;
	if (own_where)
		k->where = mqtx_redact(l->url);
	size_t n = split_hosts(l->url, &urls);
	if (n == 0) {
		mqtx_err_set(err, l->bad_url_kind,
			     "cannot parse %s '%s' (expected %s; several hosts: host1:port1,host2:port2)", l->what,
			     k->where, l->bad_url_hint);
		goto out;
	}
	if (mqtx_backend_password(cfg, &password, err) < 0)
		goto out;
	if (n == 1) {
		rc = connect_host(k, cfg, l, urls.url[0], password, err);
		goto out;
	}
	/* several hosts (a cluster's nodes): the first that lets us in; the
	 * messages say which node is in use */
	char *all = k->where;
	struct mqtx_buf why = MQTX_BUF_INIT;
	for (size_t i = 0; i < n && rc < 0; i++) {
		k->where = mqtx_redact(urls.url[i]);
		k->broken = false;
		struct mqtx_err e;
		mqtx_err_clear(&e);
		if (connect_host(k, cfg, l, urls.url[i], password, &e) == 0) {
			rc = 0;
		} else if (e.kind != MQTX_E_BROKER) {
			*err = e; /* a configuration error: the same for every host */
			break;
		} else {
			mqtx_buf_printf(&why, "%s%s", why.len > 0 ? "; " : "", e.msg);
		}
		if (rc < 0) {
			free(k->where);
			k->where = NULL;
		}
	}
	if (rc == 0) {
		if (!own_where) {
			free(k->where);
			k->where = all;
		} else {
			mqtx_debug("broker: connected to '%s' (of '%s')", k->where, all);
			free(all);
		}
	} else {
		k->where = all;
		k->broken = true;
		if (why.len > 0)
			mqtx_err_retry(err, MQTX_E_BROKER, "no broker host of '%s' let us in: %s", all, why.data);
	}
	mqtx_buf_free(&why);
out:
	wipe_free(password);
	if (n > 0)
		wipe_urls(&urls, n);
	if (rc == 0)
		k->broken = false;
	return rc;
}

void mqtx_amqp_conn_close(struct mqtx_amqp_conn *k, amqp_channel_t ch)
{
	if (k->c != NULL) {
		if (!k->broken) {
			if (ch != 0)
				amqp_channel_close(k->c, ch, AMQP_REPLY_SUCCESS);
			amqp_connection_close(k->c, AMQP_REPLY_SUCCESS);
		}
		mqtx_stop_unwatch(k->fd);
		amqp_destroy_connection(k->c);
	}
	free(k->where);
	k->c = NULL;
	k->where = NULL;
	k->fd = -1;
}
