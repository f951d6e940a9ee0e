/* txpub's message input: payloads from arguments and files, and stdin as
 * lines, JSON lines or one raw message, with newline or NUL delimiters.
 * Payloads are bytes (NUL, invalid UTF-8 and empty payloads included); the
 * size limit is checked while reading, so an oversized message is an error
 * before anything is sent. Every message remembers where it came from
 * ("stdin line 7") for error messages and the report. */
#ifndef MQTX_INPUT_H
#define MQTX_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum mqtx_input_format {
	MQTX_INPUT_LINES, /* one payload per record */
	MQTX_INPUT_JSONL, /* one JSON object per record */
	MQTX_INPUT_RAW,   /* the whole stream is one payload */
};

struct mqtx_input_opts {
	enum mqtx_input_format format;
	char delim;           /* record delimiter: '\n', or '\0' for -0 */
	uint64_t max_payload; /* bytes; larger payloads are an error */
	const char *name;     /* "stdin" or a file name, for messages */
};

/* One header of one message. value == NULL (only from JSON null) removes a
 * header given as a default (--header). */
struct mqtx_input_header {
	char *name;
	char *value;
	size_t value_len;
};

/* One message as read. Fields are owned; a field absent from the input is
 * NULL with its has_* flag false (the command's defaults apply); a JSON
 * null sets has_* with a NULL value (explicitly none). */
struct mqtx_input_msg {
	char where[64]; /* "stdin line 7", "--payload #2", "file 'x'" */
	char *payload;  /* never NULL; NUL-terminated for convenience, not counted */
	size_t payload_len;
	char *key;
	char *destination;
	char *routing_key;
	char *ordering_key;
	char *content_type;
	bool has_key, has_destination, has_routing_key, has_ordering_key, has_content_type, has_headers;
	struct mqtx_input_header *headers;
	size_t n_headers;
};

struct mqtx_input {
	struct mqtx_input_msg *msgs;
	size_t n;
};

/* Parses data[0..len) (all of one stream) and appends its messages to in.
 * Errors (kind MQTX_E_INPUT) name the record: "stdin line 7: ...". */
int mqtx_input_parse(struct mqtx_input *in, const char *data, size_t len, const struct mqtx_input_opts *o,
		     struct mqtx_err *err);

/* Reads all of fd, then parses it as above. With MQTX_INPUT_RAW, reading
 * stops with an error as soon as the stream exceeds o->max_payload. */
int mqtx_input_read_fd(struct mqtx_input *in, int fd, const struct mqtx_input_opts *o, struct mqtx_err *err);

/* Appends one message with the given payload (copied); where names it. */
int mqtx_input_add_payload(struct mqtx_input *in, const char *where, const void *payload, size_t len,
			   uint64_t max_payload, struct mqtx_err *err);

/* Reads a whole file (or "-" for stdin) into one message. */
int mqtx_input_add_file(struct mqtx_input *in, const char *path, uint64_t max_payload, struct mqtx_err *err);

void mqtx_input_free(struct mqtx_input *in);

/* Checks a header name: 1 to 255 bytes, no NUL, not starting with
 * "x-mqtx-" (those are set by mqtx). Returns NULL or why it is not. */
const char *mqtx_input_bad_header_name(const char *name, size_t len);

#endif
