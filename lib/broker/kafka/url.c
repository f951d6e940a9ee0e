/* kafka[s]:// URL parsing (see url.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "broker/kafka/url.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "broker/url.h"

void mqtx_kafka_url_free(struct mqtx_kafka_url *u)
{
	free(u->servers);
	free(u->user);
	if (u->password != NULL) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->topic);
	memset(u, 0, sizeof(*u));
}

/* A broker list: no empty entry, no blank. */
static bool servers_ok(const char *h, size_t n)
{
	if (n == 0 || h[0] == ',' || h[n - 1] == ',')
		return false;
	for (size_t i = 0; i < n; i++)
		if (h[i] == ' ' || (h[i] == ',' && i + 1 < n && h[i + 1] == ','))
			return false;
	return true;
}

int mqtx_kafka_url_parse(const char *url, const char *where, bool as_source, struct mqtx_kafka_url *u,
			 struct mqtx_err *err)
{
	enum mqtx_err_kind kind = as_source ? MQTX_E_USAGE : MQTX_E_CONFIG;
	const char *what = as_source ? "source" : "broker URL";
	const char *shape = as_source ? "kafka://host:port[,host:port...]/TOPIC" : "kafka://host:port[,host:port...]";
	const char *rest;
	memset(u, 0, sizeof(*u));
	if (strncmp(url, "kafka://", 8) == 0) {
		rest = url + 8;
	} else if (strncmp(url, "kafkas://", 9) == 0) {
		rest = url + 9;
		u->tls = true;
	} else {
		return mqtx_err_set(err, MQTX_E_CONFIG, "%s '%s' is not a kafka:// or kafkas:// URL", what, where);
	}
	struct mqtx_url_parts up;
	if (mqtx_url_split(rest, &up) < 0)
		return mqtx_err_set(err, kind,
				    "%s '%s': query strings and fragments are not supported (broker.kafka holds settings)",
				    what, where);
	const char *path = up.path;
	if (strchr(path, '/') != NULL || (!as_source && *path != '\0')) {
		mqtx_url_parts_free(&up);
		return mqtx_err_set(err, kind, "cannot parse %s '%s' (expected %s; use broker.kafka for settings)",
				    what, where, shape);
	}
	u->user = up.user; /* u owns them now */
	u->password = up.password;
	const char *hosts = up.authority;
	size_t hlen = up.authority_len;
	if (!(as_source && hlen == 0) && !servers_ok(hosts, hlen)) {
		mqtx_kafka_url_free(u);
		return mqtx_err_set(err, kind, "%s '%s' names no brokers (expected %s)", what, where, shape);
	}
	u->servers = mqtx_xstrndup(hosts, hlen);
	if (*path != '\0')
		u->topic = mqtx_pct_decode(path, strlen(path));
	if (as_source && (u->topic == NULL || u->topic[0] == '\0')) {
		mqtx_kafka_url_free(u);
		return mqtx_err_set(err, kind, "source '%s' names no topic (expected %s)", where, shape);
	}
	return 0;
}
