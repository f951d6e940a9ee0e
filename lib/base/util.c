/* Small shared utilities (see util.h). */
#define _POSIX_C_SOURCE 200809L
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void *mqtx_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

void *mqtx_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

void *mqtx_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		abort();
	return q;
}

char *mqtx_xstrdup(const char *s)
{
	return mqtx_xstrndup(s, strlen(s));
}

char *mqtx_xstrndup(const char *s, size_t n)
{
	char *p = mqtx_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void mqtx_buf_grow(struct mqtx_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = mqtx_xrealloc(b->data, cap);
	b->cap = cap;
}

void mqtx_buf_add(struct mqtx_buf *b, const void *p, size_t n)
{
	mqtx_buf_grow(b, n);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void mqtx_buf_adds(struct mqtx_buf *b, const char *s)
{
	mqtx_buf_add(b, s, strlen(s));
}

void mqtx_buf_addc(struct mqtx_buf *b, char c)
{
	mqtx_buf_add(b, &c, 1);
}

size_t mqtx_fmt_i64(char *out, int64_t v)
{
	char tmp[MQTX_I64_DIGITS];
	size_t n = 0, len = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		out[len++] = '-';
	while (n > 0)
		out[len++] = tmp[--n];
	out[len] = '\0';
	return len;
}

void mqtx_buf_add_i64(struct mqtx_buf *b, int64_t v)
{
	char num[MQTX_I64_DIGITS];
	mqtx_buf_add(b, num, mqtx_fmt_i64(num, v));
}

void mqtx_buf_vprintf(struct mqtx_buf *b, const char *fmt, va_list ap)
{
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	if (n >= 0) {
		mqtx_buf_grow(b, (size_t)n);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
		b->len += (size_t)n;
	}
	va_end(again);
}

void mqtx_buf_printf(struct mqtx_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mqtx_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

char *mqtx_xasprintf(const char *fmt, ...)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	mqtx_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (b.data == NULL)
		return mqtx_xstrdup("");
	return mqtx_buf_detach(&b);
}

int mqtx_keyidx_cmp(const void *a, const void *b)
{
	const struct mqtx_keyidx *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

void mqtx_buf_reset(struct mqtx_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

char *mqtx_buf_detach(struct mqtx_buf *b)
{
	char *p = b->data;
	if (p == NULL)
		p = mqtx_xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void mqtx_buf_free(struct mqtx_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void mqtx_strv_free(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

bool mqtx_parse_i64n(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (n > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == n || n - i > 18)
		return false;
	int64_t v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

int mqtx_parse_uint(const char *s, uint64_t max, uint64_t *out, struct mqtx_err *err)
{
	uint64_t v = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return mqtx_err_set(err, MQTX_E_USAGE, "expected a whole number, got an empty value");
	for (; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return mqtx_err_set(err, MQTX_E_USAGE, "expected a whole number, got '%s'", s);
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return mqtx_err_set(err, MQTX_E_USAGE, "number '%s' is too large", s);
		v = v * 10 + d;
	}
	if (v > max)
		return mqtx_err_set(err, MQTX_E_USAGE, "number %s is too large (at most %llu)", s,
				    (unsigned long long)max);
	*out = v;
	return 0;
}

int mqtx_parse_duration(const char *s, int64_t *ms_out, struct mqtx_err *err)
{
	const char *p = s;
	int64_t total = 0;
	bool any = false;

	if (s == NULL || *s == '\0')
		return mqtx_err_set(err, MQTX_E_USAGE, "expected a duration like 500ms, 30s or 5m, got an empty value");
	if (strcmp(s, "0") == 0) {
		*ms_out = 0;
		return 0;
	}
	while (*p != '\0') {
		if (!isdigit((unsigned char)*p))
			goto bad;
		double v = 0;
		double scale = 0;
		while (isdigit((unsigned char)*p)) {
			v = v * 10 + (*p - '0');
			p++;
			if (v > 1e12)
				goto bad;
		}
		if (*p == '.') {
			p++;
			scale = 0.1;
			if (!isdigit((unsigned char)*p))
				goto bad;
			while (isdigit((unsigned char)*p)) {
				v += (*p - '0') * scale;
				scale /= 10;
				p++;
			}
		}
		double unit;
		if (strncmp(p, "ms", 2) == 0) {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = 1000;
			p++;
		} else if (*p == 'm') {
			unit = 60000;
			p++;
		} else if (*p == 'h') {
			unit = 3600000;
			p++;
		} else if (*p == 'd') {
			unit = 86400000;
			p++;
		} else {
			goto bad;
		}
		double ms = v * unit;
		if (ms > 1e15 || (double)total + ms > 1e15)
			goto bad;
		total += (int64_t)(ms + 0.5);
		any = true;
	}
	if (!any)
		goto bad;
	*ms_out = total;
	return 0;
bad:
	return mqtx_err_set(err, MQTX_E_USAGE,
			    "invalid duration '%s' (use a number with a unit: 500ms, 30s, 5m, 2h, 1d)", s);
}

void mqtx_format_duration(int64_t ms, char *out, size_t outlen)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(out, outlen, "%lldms", (long long)ms);
	else if (ms < 60000)
		snprintf(out, outlen, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(out, outlen, "%lldm%llds", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
	else if (ms < 86400000)
		snprintf(out, outlen, "%lldh%lldm", (long long)(ms / 3600000), (long long)(ms % 3600000 / 60000));
	else
		snprintf(out, outlen, "%lldd%lldh", (long long)(ms / 86400000), (long long)(ms % 86400000 / 3600000));
}

int mqtx_parse_size(const char *s, uint64_t *bytes_out, struct mqtx_err *err)
{
	const char *p = s;
	uint64_t v = 0;
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
		{"", 1},           {"b", 1},         {"kb", 1000},   {"kib", 1024},      {"k", 1024},
		{"mb", 1000000},   {"mib", 1048576}, {"m", 1048576}, {"gb", 1000000000}, {"gib", 1073741824},
		{"g", 1073741824},
	};

	if (s == NULL || !isdigit((unsigned char)*s))
		goto bad;
	while (isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			goto bad;
		v = v * 10 + d;
		p++;
	}
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(p, units[i].suffix) == 0) {
			if (v > UINT64_MAX / units[i].mult)
				goto bad;
			*bytes_out = v * units[i].mult;
			return 0;
		}
	}
bad:
	return mqtx_err_set(err, MQTX_E_USAGE, "invalid size '%s' (use bytes or a unit: 512KiB, 16MiB, 1GiB)",
			    s ? s : "");
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void mqtx_base64_encode(struct mqtx_buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	mqtx_buf_grow(out, (len + 2) / 3 * 4);
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		char q[4] = {b64chars[v >> 18], b64chars[(v >> 12) & 63], b64chars[(v >> 6) & 63], b64chars[v & 63]};
		mqtx_buf_add(out, q, 4);
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		char q[4] = {b64chars[v >> 18], b64chars[(v >> 12) & 63], i + 1 < len ? b64chars[(v >> 6) & 63] : '=',
			     '='};
		mqtx_buf_add(out, q, 4);
	}
	if (out->data == NULL)
		mqtx_buf_add(out, "", 0);
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int mqtx_base64_decode(struct mqtx_buf *out, const char *s, size_t len)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t pad = 0;

	mqtx_buf_grow(out, len / 4 * 3 + 3);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			return -1; /* data after padding */
		int v = b64val(c);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			mqtx_buf_addc(out, (char)((acc >> bits) & 0xff));
		}
	}
	if (pad > 2 || bits >= 6)
		return -1;
	if (out->data == NULL)
		mqtx_buf_add(out, "", 0);
	return 0;
}

/* URL form: scheme://user:password@host... -> scheme://user:***@host... */
static char *redact_url(const char *s)
{
	const char *scheme_end = strstr(s, "://");
	const char *auth = scheme_end + 3;
	const char *end = auth + strcspn(auth, "/?#");
	const char *at = NULL;

	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	struct mqtx_buf b = MQTX_BUF_INIT;
	const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (at == NULL) {
		mqtx_buf_adds(&b, s); /* no user info; a password may still be a parameter */
	} else if (colon == NULL) {
		mqtx_buf_adds(&b, s);
	} else {
		mqtx_buf_add(&b, s, (size_t)(colon - s));
		mqtx_buf_adds(&b, ":***");
		mqtx_buf_adds(&b, at);
	}
	/* libpq URLs may also carry ?password=... (any number of times; only
	 * as a parameter after the authority, so that what is hidden here
	 * cannot change where the authority ends when redacting again) */
	size_t auth_off = (size_t)(auth - s);
	for (size_t from = auth_off + strcspn(b.data + auth_off, "/?#");;) {
		char *q = strstr(b.data + from, "password=");
		if (q == NULL)
			break;
		size_t at_q = (size_t)(q - b.data), vstart = at_q + 9;
		if (at_q == 0 || (q[-1] != '?' && q[-1] != '&')) {
			from = vstart;
			continue;
		}
		size_t vlen = strcspn(b.data + vstart, "&#");
		struct mqtx_buf c = MQTX_BUF_INIT;
		mqtx_buf_add(&c, b.data, vstart);
		mqtx_buf_adds(&c, "***");
		mqtx_buf_adds(&c, b.data + vstart + vlen);
		mqtx_buf_free(&b);
		b = c;
		from = vstart + 3;
	}
	return mqtx_buf_detach(&b);
}

/* conninfo form: key=value pairs, values possibly 'quoted'. */
static char *redact_conninfo(const char *s)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	const char *p = s;

	while (*p != '\0') {
		const char *k = strstr(p, "password");
		if (k == NULL) {
			mqtx_buf_adds(&b, p);
			break;
		}
		const char *eq = k + 8;
		while (*eq == ' ')
			eq++;
		bool keystart = (k == s || k[-1] == ' ' || k[-1] == '\t');
		if (*eq != '=' || !keystart) {
			mqtx_buf_add(&b, p, (size_t)(k - p) + 8);
			p = k + 8;
			continue;
		}
		mqtx_buf_add(&b, p, (size_t)(eq - p) + 1);
		const char *v = eq + 1;
		while (*v == ' ')
			v++;
		if (*v == '\'') {
			v++;
			while (*v != '\0' && *v != '\'') {
				if (*v == '\\' && v[1] != '\0')
					v++;
				v++;
			}
			if (*v == '\'')
				v++;
			/* anything glued to the closing quote is part of the value too */
			while (*v != '\0' && *v != ' ' && *v != '\t')
				v++;
		} else {
			while (*v != '\0' && *v != ' ' && *v != '\t')
				v++;
		}
		mqtx_buf_adds(&b, "***");
		p = v;
	}
	return mqtx_buf_detach(&b);
}

char *mqtx_redact(const char *s)
{
	if (s == NULL)
		return mqtx_xstrdup("");
	if (strstr(s, "://") != NULL)
		return redact_url(s);
	return redact_conninfo(s);
}

bool mqtx_has_password(const char *s)
{
	char *r = mqtx_redact(s);
	bool differs = strcmp(r, s) != 0;
	free(r);
	return differs;
}

int64_t mqtx_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mqtx_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mqtx_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	nanosleep(&ts, NULL); /* EINTR ends the nap early: callers check their stop flag */
}

size_t mqtx_edit_distance(const char *a, const char *b)
{
	/* optimal string alignment: insert, delete, substitute, swap neighbours */
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return (size_t)-1;
	size_t d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t m = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < m)
				m = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < m)
				m = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < m)
				m = d[i - 2][j - 2] + 1;
			d[i][j] = m;
		}
	}
	return d[la][lb];
}

/* Length of a valid UTF-8 sequence starting at s (max n bytes), 0 if invalid. */
size_t mqtx_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t need;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	unsigned cp = c & (need == 2 ? 0x1F : need == 3 ? 0x0F : 0x07);
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return need;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *mqtx_pct_decode(const char *s, size_t n)
{
	char *out = mqtx_xmalloc(n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			out[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			out[k++] = s[i];
		}
	}
	out[k] = '\0';
	return out;
}

int mqtx_hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

size_t mqtx_utf8_invalid_at(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		size_t l = mqtx_utf8_seq((const unsigned char *)s + i, n - i);
		if (l == 0)
			return i + 1;
		i += l;
	}
	return 0;
}

void mqtx_buf_add_utf8(struct mqtx_buf *b, unsigned cp)
{
	char o[4];
	size_t n;
	if (cp < 0x80) {
		o[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		o[0] = (char)(0xF0 | cp >> 18);
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	mqtx_buf_add(b, o, n);
}

size_t mqtx_utf8_clip(const char *s, size_t max)
{
	size_t n = strlen(s), i = 0;
	while (i < n) {
		size_t l = mqtx_utf8_seq((const unsigned char *)s + i, n - i);
		if (l == 0 || i + l > max)
			break;
		i += l;
	}
	return i;
}
