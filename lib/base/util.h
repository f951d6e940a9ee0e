/* Small shared utilities: growable buffers, durations, sizes, base64,
 * secret redaction and clocks. Nothing here touches the network. */
#ifndef MQTX_UTIL_H
#define MQTX_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Allocation failure is not recoverable for a CLI; these abort() on OOM. */
void *mqtx_xmalloc(size_t n);
void *mqtx_xcalloc(size_t n, size_t size);
void *mqtx_xrealloc(void *p, size_t n);
char *mqtx_xstrdup(const char *s);
char *mqtx_xstrndup(const char *s, size_t n);

/* A growable byte buffer; data is always NUL-terminated (not counted in len). */
struct mqtx_buf {
	char *data;
	size_t len;
	size_t cap;
};
#define MQTX_BUF_INIT      \
	{                  \
		NULL, 0, 0 \
	}
void mqtx_buf_grow(struct mqtx_buf *b, size_t extra);
void mqtx_buf_add(struct mqtx_buf *b, const void *p, size_t n);
void mqtx_buf_adds(struct mqtx_buf *b, const char *s);
void mqtx_buf_addc(struct mqtx_buf *b, char c);
/* Appends v in decimal (without printf: it is on every message's path). */
void mqtx_buf_add_i64(struct mqtx_buf *b, int64_t v);
/* Writes v in decimal to out, which has room for MQTX_I64_DIGITS bytes;
 * NUL-terminated; returns the length. */
#define MQTX_I64_DIGITS 21
size_t mqtx_fmt_i64(char *out, int64_t v);
void mqtx_buf_printf(struct mqtx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mqtx_buf_vprintf(struct mqtx_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* An owned, formatted string (never NULL; aborts on OOM like mqtx_xmalloc). */
char *mqtx_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mqtx_buf_reset(struct mqtx_buf *b);
/* Returns the owned string and leaves b empty. */
char *mqtx_buf_detach(struct mqtx_buf *b);
void mqtx_buf_free(struct mqtx_buf *b);

/* Frees the n owned strings of l, then l itself (NULL l with n 0 is fine). */
void mqtx_strv_free(char **l, size_t n);

/* Durations are written with a unit: 250ms, 30s, 5m, 2h, 1d, or combined
 * (1m30s). "0" alone is accepted. Result in milliseconds. */
int mqtx_parse_duration(const char *s, int64_t *ms_out, struct mqtx_err *err);
/* Formats ms as a short human string ("1.5s", "3m", "2h5m"). */
void mqtx_format_duration(int64_t ms, char *out, size_t outlen);
/* Sizes: bytes, or with B, KB, KiB, MB, MiB, GB, GiB (case-insensitive). */
int mqtx_parse_size(const char *s, uint64_t *bytes_out, struct mqtx_err *err);
/* Parses a non-negative decimal integer with no junk; max bounds the value. */
int mqtx_parse_uint(const char *s, uint64_t max, uint64_t *out, struct mqtx_err *err);
/* Parses a decimal integer (optional leading '-', at most 18 digits) in
 * s[0..n), which need not be NUL-terminated (header values, COPY fields);
 * false on junk. */
bool mqtx_parse_i64n(const char *s, size_t n, int64_t *out);

/* base64 (RFC 4648, with padding). decode returns -1 on invalid input. */
void mqtx_base64_encode(struct mqtx_buf *out, const void *data, size_t len);
int mqtx_base64_decode(struct mqtx_buf *out, const char *s, size_t len);

/* Returns an owned copy of a URL or libpq conninfo with any password
 * replaced by "***", fit for logs and error messages. */
char *mqtx_redact(const char *url_or_conninfo);
/* True when a URL or conninfo string carries a password. */
bool mqtx_has_password(const char *url_or_conninfo);

int64_t mqtx_now_ms(void);      /* monotonic clock */
int64_t mqtx_wall_ms(void);     /* realtime clock */
void mqtx_sleep_ms(int64_t ms); /* returns early on a signal */

/* Length of the valid UTF-8 sequence at s (at most n bytes): 1 for ASCII,
 * 2-4 for a valid multi-byte character, 0 when invalid. */
size_t mqtx_utf8_seq(const unsigned char *s, size_t n);
/* The length of the longest prefix of s, at most max bytes, that does not split a UTF-8 character. */
size_t mqtx_utf8_clip(const char *s, size_t max);
/* 0 when s is valid UTF-8, else the 1-based position of the first byte
 * that is not. */
size_t mqtx_utf8_invalid_at(const char *s);

/* The value of the 4 hex digits at s (a JSON \\u escape); -1 when one is
 * not a hex digit. s must have 4 readable bytes. */
int mqtx_hex4(const char *s, unsigned *out);

/* Appends code point cp (at most 0x10FFFF) to b, UTF-8 encoded. */
void mqtx_buf_add_utf8(struct mqtx_buf *b, unsigned cp);

/* Owned, percent-decoded copy of s[0..n) (URL user, password, path parts). */
char *mqtx_pct_decode(const char *s, size_t n);

/* Levenshtein distance, for "did you mean" suggestions. */
size_t mqtx_edit_distance(const char *a, const char *b);

/* A string and where it came from, for sorting keys while keeping their
 * positions (qsort with mqtx_keyidx_cmp: by key, then by position). */
struct mqtx_keyidx {
	const char *key;
	size_t i;
};
int mqtx_keyidx_cmp(const void *a, const void *b);

#endif
