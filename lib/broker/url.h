/* What every broker URL shares: scheme://[user[:password]@]authority[/path],
 * split once here for the backends' own parsers (kafka/url.c,
 * nats/url.c), which judge the authority and the path by their rules. */
#ifndef MQTX_BROKER_URL_H
#define MQTX_BROKER_URL_H

#include <stdbool.h>
#include <stddef.h>

struct mqtx_url_parts {
	char *user;            /* percent-decoded; NULL when the URL has none; owned */
	char *password;        /* percent-decoded; NULL when the URL has none; owned, wiped by _free */
	const char *authority; /* borrowed from the URL: what follows the userinfo, up to the path */
	size_t authority_len;
	const char *path; /* borrowed: after the '/' that ends the authority; "" when none */
};

/* Splits rest, a URL after its "scheme://", into p. Returns 0, or -1 when
 * a query string or a fragment follows (p is then empty). The last '@'
 * of the authority ends the userinfo, so a password may hold '@' as
 * written; ':' splits user and password at its first place. */
int mqtx_url_split(const char *rest, struct mqtx_url_parts *p);
/* Frees what p owns (the user, the wiped password). */
void mqtx_url_parts_free(struct mqtx_url_parts *p);

#endif
