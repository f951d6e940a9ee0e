/* Helpers around struct mqtx_msg shared by the backends. */
#include "base/msg.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void mqtx_keyset_add(struct mqtx_keyset *s, const char *key)
{
	if (key == NULL || mqtx_keyset_has(s, key))
		return;
	s->keys = mqtx_xrealloc(s->keys, (s->n + 1) * sizeof(char *));
	s->keys[s->n++] = mqtx_xstrdup(key);
}

bool mqtx_keyset_has(const struct mqtx_keyset *s, const char *key)
{
	if (key == NULL)
		return false;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return true;
	return false;
}

void mqtx_keyset_free(struct mqtx_keyset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
	s->keys = NULL;
	s->n = 0;
}
