/* txpub's message input (see input.h). */
#define _POSIX_C_SOURCE 200809L
#include "txpub/input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"

/* Fields a JSON line may have. */
static const char *const fields[] = {"payload",     "payload_base64", "key",          "destination",
				     "routing_key", "ordering_key",   "content_type", "headers"};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static struct mqtx_input_msg *new_msg(struct mqtx_input *in, const char *where)
{
	in->msgs = mqtx_xrealloc(in->msgs, (in->n + 1) * sizeof(*in->msgs));
	struct mqtx_input_msg *m = &in->msgs[in->n++];
	memset(m, 0, sizeof(*m));
	snprintf(m->where, sizeof(m->where), "%s", where);
	return m;
}

static void free_msg(struct mqtx_input_msg *m)
{
	free(m->payload);
	free(m->key);
	free(m->destination);
	free(m->routing_key);
	free(m->ordering_key);
	free(m->content_type);
	for (size_t i = 0; i < m->n_headers; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	free(m->headers);
}

void mqtx_input_free(struct mqtx_input *in)
{
	for (size_t i = 0; i < in->n; i++)
		free_msg(&in->msgs[i]);
	free(in->msgs);
	in->msgs = NULL;
	in->n = 0;
}

/* Drops the last message (it failed to parse). */
static void drop_last(struct mqtx_input *in)
{
	free_msg(&in->msgs[--in->n]);
}

static int too_big(struct mqtx_err *err, const char *where, uint64_t len, uint64_t max)
{
	return mqtx_err_set(err, MQTX_E_INPUT, "%s: payload is %llu bytes, more than txpub.max_payload (%llu bytes)",
			    where, (unsigned long long)len, (unsigned long long)max);
}

const char *mqtx_input_bad_header_name(const char *name, size_t len)
{
	if (len == 0)
		return "a header name is empty";
	if (len > 255)
		return "a header name is longer than 255 bytes";
	if (memchr(name, '\0', len) != NULL)
		return "a header name contains a NUL byte";
	if (len >= 7 && strncmp(name, "x-mqtx-", 7) == 0)
		return "header names starting with 'x-mqtx-' are reserved for mqtx";
	return NULL;
}

int mqtx_input_add_payload(struct mqtx_input *in, const char *where, const void *payload, size_t len,
			   uint64_t max_payload, struct mqtx_err *err)
{
	if (len > max_payload)
		return too_big(err, where, len, max_payload);
	struct mqtx_input_msg *m = new_msg(in, where);
	m->payload = mqtx_xmalloc(len + 1);
	if (len > 0)
		memcpy(m->payload, payload, len);
	m->payload[len] = '\0';
	m->payload_len = len;
	return 0;
}

/* Reads all of fd into b; fails once more than limit bytes came. */
static int slurp(int fd, struct mqtx_buf *b, uint64_t limit, const char *name, struct mqtx_err *err)
{
	for (;;) {
		mqtx_buf_grow(b, 65536);
		ssize_t r = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return mqtx_err_set(err, MQTX_E_IO, "cannot read %s: %s", name, strerror(errno));
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
		if (b->len > limit)
			return mqtx_err_set(err, MQTX_E_INPUT,
					    "%s: payload is more than txpub.max_payload (%llu bytes)", name,
					    (unsigned long long)limit);
	}
	if (b->data == NULL)
		mqtx_buf_add(b, "", 0);
	return 0;
}

int mqtx_input_add_file(struct mqtx_input *in, const char *path, uint64_t max_payload, struct mqtx_err *err)
{
	char where[64];
	bool is_stdin = strcmp(path, "-") == 0;
	if (is_stdin)
		snprintf(where, sizeof(where), "stdin");
	else
		snprintf(where, sizeof(where), "file '%.50s'", path);
	int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mqtx_err_set(err, MQTX_E_INPUT, "cannot open payload file '%s': %s", path, strerror(errno));
	struct mqtx_buf b = MQTX_BUF_INIT;
	int rc = slurp(fd, &b, max_payload, where, err);
	if (!is_stdin)
		close(fd);
	if (rc == 0)
		rc = mqtx_input_add_payload(in, where, b.data, b.len, max_payload, err);
	mqtx_buf_free(&b);
	return rc;
}

/* ---- JSON lines ---- */

static char *dup_field(const struct mqtx_json *v)
{
	return mqtx_xstrndup(v->str, v->len);
}

/* A string field (or null when nullable): *out owned, NULL for null. */
static int string_field(const struct mqtx_json *v, const char *name, bool nullable, char **out, const char *where,
			struct mqtx_err *err)
{
	*out = NULL;
	if (v->type == MQTX_JSON_NULL && nullable)
		return 0;
	if (v->type != MQTX_JSON_STRING)
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: '%s' must be a string%s", where, name,
				    nullable ? " or null" : "");
	if (memchr(v->str, '\0', v->len) != NULL)
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: '%s' contains a NUL byte (\\u0000)", where, name);
	*out = dup_field(v);
	return 0;
}

static int headers_field(struct mqtx_input_msg *m, const struct mqtx_json *v, struct mqtx_err *err)
{
	if (v->type == MQTX_JSON_NULL) {
		m->has_headers = true;
		return 0;
	}
	if (v->type != MQTX_JSON_OBJECT)
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: 'headers' must be a JSON object", m->where);
	m->has_headers = true;
	m->headers = mqtx_xcalloc(v->count + 1, sizeof(*m->headers));
	for (size_t i = 0; i < v->count; i++) {
		const char *bad = mqtx_input_bad_header_name(v->keys[i], v->key_lens[i]);
		if (bad != NULL)
			return mqtx_err_set(err, MQTX_E_INPUT, "%s: headers: %s", m->where, bad);
		for (size_t j = 0; j < i; j++)
			if (v->key_lens[j] == v->key_lens[i] && memcmp(v->keys[j], v->keys[i], v->key_lens[i]) == 0)
				return mqtx_err_set(err, MQTX_E_INPUT, "%s: headers: '%s' appears twice", m->where,
						    v->keys[i]);
		struct mqtx_input_header *h = &m->headers[m->n_headers++];
		h->name = mqtx_xstrndup(v->keys[i], v->key_lens[i]);
		const struct mqtx_json *item = v->items[i];
		if (item->type == MQTX_JSON_NULL)
			continue; /* removes a --header default */
		h->value = mqtx_json_header_text(item, &h->value_len);
	}
	return 0;
}

/* Closest known field name, for "did you mean". */
static const char *suggest_field(const char *name)
{
	const char *best = NULL;
	size_t bd = 3;
	for (size_t i = 0; i < NFIELDS; i++) {
		size_t d = mqtx_edit_distance(name, fields[i]);
		if (d < bd) {
			bd = d;
			best = fields[i];
		}
	}
	return best;
}

static int parse_object(struct mqtx_input_msg *m, const struct mqtx_json *o, uint64_t max_payload, struct mqtx_err *err)
{
	const char *where = m->where;
	if (o->type != MQTX_JSON_OBJECT)
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: expected a JSON object", where);
	const struct mqtx_json *payload = NULL, *b64 = NULL;
	for (size_t i = 0; i < o->count; i++) {
		const char *name = o->keys[i];
		const struct mqtx_json *v = o->items[i];
		size_t f;
		for (f = 0; f < NFIELDS; f++)
			if (strlen(fields[f]) == o->key_lens[i] && memcmp(fields[f], name, o->key_lens[i]) == 0)
				break;
		if (f == NFIELDS) {
			const char *s = memchr(name, '\0', o->key_lens[i]) == NULL ? suggest_field(name) : NULL;
			if (s != NULL)
				return mqtx_err_set(err, MQTX_E_INPUT, "%s: unknown field '%s' (did you mean '%s'?)",
						    where, name, s);
			return mqtx_err_set(err, MQTX_E_INPUT,
					    "%s: unknown field '%s' (known: payload, payload_base64, key, destination, routing_key, "
					    "ordering_key, content_type, headers)",
					    where, name);
		}
		for (size_t j = 0; j < i; j++)
			if (o->key_lens[j] == o->key_lens[i] && memcmp(o->keys[j], name, o->key_lens[i]) == 0)
				return mqtx_err_set(err, MQTX_E_INPUT, "%s: field '%s' appears twice", where, name);
		int rc = 0;
		switch (f) {
		case 0: payload = v; break;
		case 1: b64 = v; break;
		case 2:
			m->has_key = true;
			rc = string_field(v, "key", false, &m->key, where, err);
			if (rc == 0 && m->key[0] == '\0')
				rc = mqtx_err_set(err, MQTX_E_INPUT, "%s: 'key' is empty", where);
			break;
		case 3:
			m->has_destination = true;
			rc = string_field(v, "destination", false, &m->destination, where, err);
			break;
		case 4:
			m->has_routing_key = true;
			rc = string_field(v, "routing_key", true, &m->routing_key, where, err);
			break;
		case 5:
			m->has_ordering_key = true;
			rc = string_field(v, "ordering_key", true, &m->ordering_key, where, err);
			break;
		case 6:
			m->has_content_type = true;
			rc = string_field(v, "content_type", true, &m->content_type, where, err);
			break;
		case 7: rc = headers_field(m, v, err); break;
		}
		if (rc < 0)
			return -1;
	}
	if (payload != NULL && b64 != NULL)
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: give 'payload' or 'payload_base64', not both", where);
	if (payload == NULL && b64 == NULL)
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: no 'payload' or 'payload_base64'", where);
	struct mqtx_buf body = MQTX_BUF_INIT;
	if (payload != NULL) {
		if (payload->type != MQTX_JSON_STRING)
			return mqtx_err_set(err, MQTX_E_INPUT,
					    "%s: 'payload' must be a string (JSON text goes in as a string; bytes as payload_base64)",
					    where);
		mqtx_buf_add(&body, payload->str, payload->len);
	} else {
		if (b64->type != MQTX_JSON_STRING)
			return mqtx_err_set(err, MQTX_E_INPUT, "%s: 'payload_base64' must be a string", where);
		if (mqtx_base64_decode(&body, b64->str, b64->len) < 0) {
			mqtx_buf_free(&body);
			return mqtx_err_set(err, MQTX_E_INPUT, "%s: 'payload_base64' is not valid base64", where);
		}
	}
	if (body.data == NULL)
		mqtx_buf_add(&body, "", 0);
	if (body.len > max_payload) {
		size_t n = body.len;
		mqtx_buf_free(&body);
		return too_big(err, where, n, max_payload);
	}
	m->payload_len = body.len;
	m->payload = mqtx_buf_detach(&body);
	return 0;
}

static int parse_record(struct mqtx_input *in, const char *rec, size_t len, const char *where,
			const struct mqtx_input_opts *o, struct mqtx_err *err)
{
	if (o->format == MQTX_INPUT_LINES)
		return mqtx_input_add_payload(in, where, rec, len, o->max_payload, err);
	struct mqtx_input_msg *m = new_msg(in, where);
	if (len == 0) {
		drop_last(in);
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: empty line (expected a JSON object)", where);
	}
	struct mqtx_err je;
	struct mqtx_json *v = mqtx_json_parse(rec, len, &je);
	if (v == NULL) {
		drop_last(in);
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: %s", where, je.msg);
	}
	int rc = parse_object(m, v, o->max_payload, err);
	mqtx_json_free(v);
	if (rc < 0)
		drop_last(in);
	return rc;
}

int mqtx_input_parse(struct mqtx_input *in, const char *data, size_t len, const struct mqtx_input_opts *o,
		     struct mqtx_err *err)
{
	if (o->format == MQTX_INPUT_RAW)
		return mqtx_input_add_payload(in, o->name, data, len, o->max_payload, err);
	const char *unit = o->delim == '\n' ? "line" : "record";
	size_t pos = 0, recno = 0;
	while (pos < len) {
		const char *end = memchr(data + pos, o->delim, len - pos);
		size_t rl = end != NULL ? (size_t)(end - (data + pos)) : len - pos;
		char where[64];
		snprintf(where, sizeof(where), "%.30s %s %zu", o->name, unit, ++recno);
		if (parse_record(in, data + pos, rl, where, o, err) < 0)
			return -1;
		pos += rl + (end != NULL);
	}
	return 0;
}

int mqtx_input_read_fd(struct mqtx_input *in, int fd, const struct mqtx_input_opts *o, struct mqtx_err *err)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	uint64_t limit = o->format == MQTX_INPUT_RAW ? o->max_payload : UINT64_MAX;
	int rc = slurp(fd, &b, limit, o->name, err);
	if (rc == 0)
		rc = mqtx_input_parse(in, b.data, b.len, o, err);
	mqtx_buf_free(&b);
	return rc;
}
