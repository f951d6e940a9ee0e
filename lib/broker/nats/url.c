/* nats:// and tls:// URL parsing and subject mapping (see url.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "broker/nats/url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "broker/url.h"

void mqtx_nats_url_free(struct mqtx_nats_url *u)
{
	free(u->server);
	free(u->host);
	free(u->user);
	if (u->password != NULL) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->stream);
	memset(u, 0, sizeof(*u));
}

/* host[:port] or [v6][:port]: *hl gets the host's length, *port the port (default 4222). */
static bool split_hostport(const char *h, size_t n, size_t *hl, int *port)
{
	const char *p = NULL;
	*port = 4222;
	if (n > 0 && h[0] == '[') {
		const char *close = memchr(h, ']', n);
		if (close == NULL || close == h + 1)
			return false;
		*hl = (size_t)(close - h) + 1;
		if (*hl < n) {
			if (h[*hl] != ':')
				return false;
			p = h + *hl + 1;
		}
	} else {
		const char *colon = memchr(h, ':', n);
		*hl = colon != NULL ? (size_t)(colon - h) : n;
		if (colon != NULL)
			p = colon + 1;
	}
	if (*hl == 0)
		return false;
	for (size_t i = 0; i < *hl; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == ',' || h[i] == '/')
			return false;
	if (p != NULL) {
		size_t pl = (size_t)(h + n - p);
		long v = 0;
		if (pl == 0 || pl > 5)
			return false;
		for (size_t i = 0; i < pl; i++) {
			if (p[i] < '0' || p[i] > '9')
				return false;
			v = v * 10 + (p[i] - '0');
		}
		if (v < 1 || v > 65535)
			return false;
		*port = (int)v;
	}
	return true;
}

int mqtx_nats_url_parse(const char *url, const char *where, bool as_source, struct mqtx_nats_url *u,
			struct mqtx_err *err)
{
	enum mqtx_err_kind kind = as_source ? MQTX_E_USAGE : MQTX_E_CONFIG;
	const char *what = as_source ? "source" : "broker URL";
	const char *shape = as_source ? "nats://host:port/STREAM or tls://host:port/STREAM"
				      : "nats://host:port or tls://host:port";
	const char *rest;
	memset(u, 0, sizeof(*u));
	if (strncmp(url, "nats://", 7) == 0) {
		rest = url + 7;
	} else if (strncmp(url, "tls://", 6) == 0) {
		rest = url + 6;
		u->tls = true;
	} else {
		return mqtx_err_set(err, kind, "%s '%s' is not a nats:// or tls:// URL", what, where);
	}
	struct mqtx_url_parts up;
	if (mqtx_url_split(rest, &up) < 0)
		return mqtx_err_set(err, kind, "%s '%s': query strings and fragments are not supported (expected %s)",
				    what, where, shape);
	const char *path = up.path;
	if (strchr(path, '/') != NULL || (!as_source && *path != '\0')) {
		mqtx_url_parts_free(&up);
		return mqtx_err_set(err, kind, "cannot parse %s '%s' (expected %s)", what, where, shape);
	}
	u->user = up.user; /* u owns them now */
	u->password = up.password;
	const char *hosts = up.authority;
	size_t hlen = up.authority_len, host_len = 0;
	if (hlen == 0) {
		mqtx_nats_url_free(u);
		return mqtx_err_set(err, kind, "%s '%s' names no server (expected %s)", what, where, shape);
	}
	if (memchr(hosts, ',', hlen) != NULL) {
		mqtx_nats_url_free(u);
		return mqtx_err_set(err, kind, "%s '%s' names several servers; mqtx connects to one (expected %s)",
				    what, where, shape);
	}
	if (!split_hostport(hosts, hlen, &host_len, &u->port)) {
		mqtx_nats_url_free(u);
		return mqtx_err_set(err, kind, "%s '%s': bad host or port (expected %s, port 1 to 65535)", what, where,
				    shape);
	}
	u->host = mqtx_xstrndup(hosts, host_len);
	size_t sl = strlen(u->host) + 24;
	u->server = mqtx_xmalloc(sl);
	snprintf(u->server, sl, "nats://%s:%d", u->host, u->port);
	if (*path != '\0')
		u->stream = mqtx_pct_decode(path, strlen(path));
	if (as_source) {
		const char *s = u->stream != NULL ? u->stream : "";
		size_t bad = strcspn(s, " \t\r\n.*>");
		if (s[0] == '\0' || s[bad] != '\0') {
			mqtx_nats_url_free(u);
			return mqtx_err_set(err, kind,
					    "source '%s' names no valid stream (expected %s; stream names have no blank, '.', '*' or '>')",
					    where, shape);
		}
	}
	return 0;
}

int mqtx_nats_subject_check(const char *field, const char *s, char *why, size_t len)
{
	size_t n = s != NULL ? strlen(s) : 0;
	if (n == 0) {
		snprintf(why, len, "%s is empty; a NATS subject needs at least one token", field);
		return -1;
	}
	size_t tok = 0; /* start of the current token */
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == n || c == '.') {
			if (i == tok) {
				snprintf(why, len,
					 "%s '%.100s' has an empty subject token at byte %zu (a NATS subject is tokens separated by '.')",
					 field, s, i);
				return -1;
			}
			if (i - tok == 1 && (s[tok] == '*' || s[tok] == '>')) {
				snprintf(why, len,
					 "%s '%.100s' has the wildcard token '%c'; messages cannot be published to wildcards",
					 field, s, s[tok]);
				return -1;
			}
			tok = i + 1;
			continue;
		}
		if (c <= ' ' || c == 0x7f) {
			snprintf(why, len,
				 "%s '%.100s' has byte 0x%02x at %zu; NATS subjects allow no blank or control byte",
				 field, s, c, i);
			return -1;
		}
	}
	return 0;
}

char *mqtx_nats_subject(const char *destination, const char *routing_key)
{
	const char *d = destination != NULL ? destination : "";
	if (routing_key == NULL || routing_key[0] == '\0')
		return mqtx_xstrdup(d);
	size_t dl = strlen(d), rl = strlen(routing_key);
	char *s = mqtx_xmalloc(dl + rl + 2);
	memcpy(s, d, dl);
	s[dl] = '.';
	memcpy(s + dl + 1, routing_key, rl + 1);
	return s;
}
