/* Splitting broker URLs (see url.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "broker/url.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

int mqtx_url_split(const char *rest, struct mqtx_url_parts *p)
{
	memset(p, 0, sizeof(*p));
	size_t alen = strcspn(rest, "/?#");
	const char *path = rest + alen;
	if (strpbrk(path, "?#") != NULL)
		return -1;
	p->path = *path == '/' ? path + 1 : path;
	p->authority = rest;
	for (size_t i = alen; i > 0; i--) {
		if (rest[i - 1] == '@') {
			const char *colon = memchr(rest, ':', i - 1);
			size_t ulen = colon != NULL ? (size_t)(colon - rest) : i - 1;
			p->user = mqtx_pct_decode(rest, ulen);
			if (colon != NULL)
				p->password = mqtx_pct_decode(colon + 1, (size_t)(rest + i - 1 - (colon + 1)));
			p->authority = rest + i;
			break;
		}
	}
	p->authority_len = (size_t)(rest + alen - p->authority);
	return 0;
}

void mqtx_url_parts_free(struct mqtx_url_parts *p)
{
	free(p->user);
	if (p->password != NULL) {
		explicit_bzero(p->password, strlen(p->password));
		free(p->password);
	}
	memset(p, 0, sizeof(*p));
}
