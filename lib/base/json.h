/* A small, strict JSON reader (RFC 8259) and writer helpers. The reader
 * parses outbox headers (jsonb read back as text), txpub's jsonl input and
 * what brokers answer (NATS publish acks). The helpers (string escaping,
 * writing a parsed value back) build the JSON that goes on the wire and
 * into the database: query parameters in lib/db, txpub's headers, JSON
 * log lines, NATS API requests. Command output is not written here: lib/render's mqtx_jw
 * is the output writer, on top of mqtx_json_add_str. Strings may contain
 * NUL (\u0000), so they carry their length. */
#ifndef MQTX_JSON_H
#define MQTX_JSON_H

#include <stddef.h>

#include "base/error.h"
#include "base/util.h"

enum mqtx_json_type {
	MQTX_JSON_NULL,
	MQTX_JSON_BOOL,
	MQTX_JSON_NUMBER,
	MQTX_JSON_STRING,
	MQTX_JSON_ARRAY,
	MQTX_JSON_OBJECT,
};

struct mqtx_json {
	enum mqtx_json_type type;
	int boolean;
	double number;
	char *str;   /* STRING: decoded bytes; NUMBER: the literal text */
	size_t len;  /* length of str */
	char **keys; /* OBJECT: member names (NUL-terminated; see key_lens) */
	size_t *key_lens;
	struct mqtx_json **items; /* ARRAY items or OBJECT values */
	size_t count;
};

/* Parses exactly one JSON value (surrounding white space allowed). Returns an
 * owned tree (free with mqtx_json_free) or NULL with err set to a message
 * that names the byte offset. Nesting is limited to 64 levels. */
struct mqtx_json *mqtx_json_parse(const char *text, size_t len, struct mqtx_err *err);
void mqtx_json_free(struct mqtx_json *v);
/* Borrowed member of an object, or NULL. */
const struct mqtx_json *mqtx_json_get(const struct mqtx_json *obj, const char *key);

/* Appends s as a quoted JSON string (escapes control characters, quotes,
 * backslash; invalid UTF-8 bytes become U+FFFD). */
void mqtx_json_add_str(struct mqtx_buf *b, const char *s, size_t len);
void mqtx_json_add_cstr(struct mqtx_buf *b, const char *s); /* NULL -> null */
/* Appends any value back as compact JSON. */
void mqtx_json_write(struct mqtx_buf *b, const struct mqtx_json *v);
/* The text a message header gets from a JSON value: a string as is, true
 * or false, anything else as compact JSON. Owned, NUL-terminated, never
 * NULL; its length (it may hold NUL bytes) in *len. */
char *mqtx_json_header_text(const struct mqtx_json *v, size_t *len);

#endif
