/* dedupe-audit engine (see audit.h): picks the reader for the source,
 * sorts what it delivers, and compares it with the outbox, which
 * PostgreSQL streams in id order (COPY ... TO STDOUT). Memory stays bounded:
 * deliveries go through an external sort (lib/audit/sort.c) and temporary
 * files; only the capped detail lists live in memory. Deliveries without
 * an outbox id are matched by key in the database (pg_temp tables).
 *
 * Measured on 10M deliveries: a hash or merge join of deliveries and outbox
 * inside PostgreSQL alone took longer than the whole audit may; the sort
 * and merge here read the outbox once, in primary key order. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "audit/audit.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/source.h"
#include "base/log.h"
#include "db/audit.h"
#include "base/util.h"

#define COPY_FLUSH_BYTES (512 * 1024)
#define MAX_WHERE 10

/* ---- times and positions ---- */

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* RFC 3339: YYYY-MM-DD[T ]hh:mm[:ss[.frac]](Z|+hh:mm|-hh:mm), or a bare date. */
static int parse_rfc3339(const char *s, int64_t *us)
{
	int Y, M, D, h = 0, m = 0, sec = 0;
	int64_t frac_us = 0;
	size_t n = strlen(s);
	if (n < 10 || digits(s, 4, &Y) < 0 || s[4] != '-' || digits(s + 5, 2, &M) < 0 || s[7] != '-' ||
	    digits(s + 8, 2, &D) < 0)
		return -1;
	const char *p = s + 10;
	int tz = 0;
	if (*p != '\0') {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return -1;
		p++;
		if (digits(p, 2, &h) < 0 || p[2] != ':' || digits(p + 3, 2, &m) < 0)
			return -1;
		p += 5;
		if (*p == ':') {
			if (digits(p + 1, 2, &sec) < 0)
				return -1;
			p += 3;
			if (*p == '.' || *p == ',') {
				p++;
				int64_t scale = 100000;
				if (!isdigit((unsigned char)*p))
					return -1;
				while (isdigit((unsigned char)*p)) {
					frac_us += (*p - '0') * scale;
					scale /= 10;
					p++;
				}
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int th, tm;
			int sign = *p == '-' ? -1 : 1;
			if (digits(p + 1, 2, &th) < 0)
				return -1;
			p += 3;
			if (*p == ':')
				p++;
			if (digits(p, 2, &tm) < 0)
				return -1;
			p += 2;
			tz = sign * (th * 60 + tm);
		} else {
			return -1; /* a time without a zone is ambiguous */
		}
		if (*p != '\0')
			return -1;
	}
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -1;
	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
	time_t t = timegm(&tm);
	*us = ((int64_t)t - (int64_t)tz * 60) * 1000000 + frac_us;
	return 0;
}

int mqtx_audit_parse_time(const char *s, const char *what, int64_t now_us, int64_t *us, struct mqtx_err *err)
{
	if (parse_rfc3339(s, us) == 0)
		return 0;
	int64_t ms;
	struct mqtx_err e;
	if (!all_digits(s) && mqtx_parse_duration(s, &ms, &e) == 0 && ms <= 36500LL * 86400000) { /* 100 years */
		*us = now_us - ms * 1000;
		return 0;
	}
	return mqtx_err_set(err, MQTX_E_USAGE,
			    "%s '%s': expected a time (2024-05-01T12:00:00Z) or a duration ago (90m, 2h, 1d)", what, s);
}

int mqtx_audit_parse_pos(const char *s, const char *what, int64_t now_us, struct mqtx_read_pos *out,
			 struct mqtx_err *err)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(s, "first") == 0 || strcmp(s, "beginning") == 0) {
		out->kind = MQTX_READ_POS_FIRST;
		return 0;
	}
	if (all_digits(s)) {
		uint64_t v;
		if (mqtx_parse_uint(s, INT64_MAX, &v, err) < 0) {
			mqtx_err_prefix(err, "%s", what);
			err->kind = MQTX_E_USAGE;
			return -1;
		}
		out->kind = MQTX_READ_POS_OFFSET;
		out->offset = (int64_t)v;
		return 0;
	}
	if (mqtx_audit_parse_time(s, what, now_us, &out->time_us, err) < 0)
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "%s '%s': expected first, an offset, a time (2024-05-01T12:00:00Z) or a duration ago (90m)",
				    what, s);
	out->kind = MQTX_READ_POS_TIME;
	return 0;
}

void mqtx_audit_format_time(int64_t us, char *out, size_t outlen)
{
	int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	int64_t ms = (us - secs * 1000000) / 1000;
	time_t t = (time_t)secs;
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(out, outlen, "?");
		return;
	}
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%03dZ", base, (int)ms);
}

/* ---- key hashing ---- */

/* 64-bit hash of a key (multiply-xorshift mixing in the manner of
 * MurmurHash64A). Deliveries are matched with their outbox row by id and
 * this hash of the key: two different keys collide with probability 2^-64. */
static uint64_t khash(const void *p, size_t n)
{
	const uint64_t m = 0xc6a4a7935bd1e995ULL;
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * m);
	const unsigned char *b = p;
	while (n >= 8) {
		uint64_t k;
		memcpy(&k, b, 8);
		k *= m;
		k ^= k >> 47;
		k *= m;
		h ^= k;
		h *= m;
		b += 8;
		n -= 8;
	}
	if (n > 0) {
		for (size_t i = n; i > 0; i--)
			h ^= (uint64_t)b[i - 1] << (8 * (i - 1));
		h *= m;
	}
	h ^= h >> 47;
	h *= m;
	h ^= h >> 47;
	return h;
}

/* ---- records ---- */

/* A delivery that names its outbox id, sorted by (id, seq). */
struct r1 {
	int64_t id;
	int64_t seq;
	uint64_t kh;
	int32_t rc;
	uint32_t flags;
};
#define R1_VERIFIED 1u /* matched by key in the database: no hash check */

static int cmp_r1(const void *a, const void *b)
{
	const struct r1 *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* An outbox row with an ordering key, sorted by (ordering key hash, id). */
struct r2 {
	uint64_t okh;
	int64_t id;
	int64_t first_seq; /* 0: nobody saw it */
	uint32_t dest;
	uint32_t flags;
};

static int cmp_r2(const void *a, const void *b)
{
	const struct r2 *x = a, *y = b;
	if (x->okh != y->okh)
		return x->okh < y->okh ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* An outbox row nobody saw, in id order. */
struct ru {
	int64_t id;
	int64_t sent_at;
	uint32_t dest;
	uint32_t lost; /* sent within the window */
};

/* Where delivery seq was seen, at (seq - 1) in the location file. */
struct loc {
	int64_t off;
	int64_t ts;
	int64_t keyoff;
	int32_t part;
	int32_t rc;
	uint32_t keylen;
	uint32_t has_key;
};

/* ---- the sink ---- */

struct audit_sink {
	struct mqtx_audit_db *db; /* COPY IN of deliveries without an id, into pg_temp.mqtx_audit_k */
	struct mqtx_buf buf;
	int64_t seq;
	int64_t unkeyed;
	int64_t bad_bytes;
	int64_t to_resolve; /* rows sent to pg_temp.mqtx_audit_k */
	FILE *loc, *keys;   /* locations and key bytes, by seq */
	int64_t keys_len;
	bool flushed;
	struct audit_sorter *s1;
	char *derived_prefix; /* "mqtx:<db>:<schema>.<table>:": a key's id follows */
	size_t derived_len;
	bool has_ids; /* s1 holds deliveries with ids min_id..max_id */
	int64_t min_id, max_id;
};

static int sink_flush(struct audit_sink *s, struct mqtx_err *err)
{
	if (s->buf.len == 0)
		return 0;
	if (mqtx_audit_db_put(s->db, s->buf.data, s->buf.len, err) < 0)
		return -1;
	mqtx_buf_reset(&s->buf);
	return 0;
}

/* Appends s as a COPY text field. Bytes that cannot be stored in a text
 * column (NUL, invalid UTF-8) become the four characters \xNN. */
static void copy_text(struct mqtx_buf *b, const char *s, size_t n, int64_t *bad)
{
	const unsigned char *p = (const unsigned char *)s;
	mqtx_buf_grow(b, n + 8);
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		if (c >= 0x20 && c < 0x80 && c != '\\') {
			size_t j = i + 1;
			while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '\\')
				j++;
			mqtx_buf_add(b, p + i, j - i);
			i = j;
			continue;
		}
		if (c == '\\') {
			mqtx_buf_add(b, "\\\\", 2);
		} else if (c == '\n') {
			mqtx_buf_add(b, "\\n", 2);
		} else if (c == '\r') {
			mqtx_buf_add(b, "\\r", 2);
		} else if (c == '\t') {
			mqtx_buf_add(b, "\\t", 2);
		} else if (c >= 0x80) {
			size_t l = mqtx_utf8_seq(p + i, n - i);
			if (l > 0) {
				mqtx_buf_add(b, p + i, l);
				i += l;
				continue;
			}
			mqtx_buf_printf(b, "\\\\x%02x", c);
			(*bad)++;
		} else if (c == 0) {
			mqtx_buf_add(b, "\\\\x00", 5);
			(*bad)++;
		} else {
			mqtx_buf_addc(b, (char)c); /* other control characters are fine in text */
		}
		i++;
	}
}

static void copy_i64(struct mqtx_buf *b, int64_t v)
{
	char tmp[24];
	int k = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[k++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		tmp[k++] = '-';
	mqtx_buf_grow(b, (size_t)k);
	while (k > 0)
		b->data[b->len++] = tmp[--k];
	b->data[b->len] = '\0';
}

static int file_err(struct mqtx_err *err)
{
	return mqtx_err_set(err, MQTX_E_IO, "cannot write a temporary file (TMPDIR full?): %s", strerror(errno));
}

/* A delivery to resolve by key in the database: seq, key, rc. */
static void copy_row(struct audit_sink *s, int64_t seq, const char *key, size_t key_len, int64_t rc)
{
	copy_i64(&s->buf, seq);
	mqtx_buf_addc(&s->buf, '\t');
	if (key != NULL)
		copy_text(&s->buf, key, key_len, &s->bad_bytes);
	else
		mqtx_buf_add(&s->buf, "\\N", 2);
	mqtx_buf_addc(&s->buf, '\t');
	copy_i64(&s->buf, rc > 0 && rc <= INT32_MAX ? rc : 0);
	mqtx_buf_addc(&s->buf, '\n');
	s->to_resolve++;
}

int audit_emit(struct audit_sink *s, const struct mqtx_read_record *d, struct mqtx_err *err)
{
	s->seq++;
	int32_t rc = d->redelivery_count > 0 && d->redelivery_count <= INT32_MAX ? (int32_t)d->redelivery_count : 0;
	struct loc l = {.off = d->offset,
			.ts = d->ts_us,
			.keyoff = s->keys_len,
			.part = d->partition,
			.rc = rc,
			.keylen = d->key != NULL ? (uint32_t)d->key_len : 0,
			.has_key = d->key != NULL};
	if (fwrite(&l, sizeof(l), 1, s->loc) != 1)
		return file_err(err);
	if (d->key != NULL && d->key_len > 0) {
		if (fwrite(d->key, 1, d->key_len, s->keys) != d->key_len)
			return file_err(err);
		s->keys_len += (int64_t)d->key_len;
	}
	if (d->key == NULL)
		s->unkeyed++;
	int64_t id = d->id;
	if (id <= 0 && d->key != NULL && s->derived_prefix != NULL && d->key_len > s->derived_len &&
	    memcmp(d->key, s->derived_prefix, s->derived_len) == 0 &&
	    (!mqtx_parse_i64n(d->key + s->derived_len, d->key_len - s->derived_len, &id) || id <= 0))
		id = 0; /* a key derived from the id (mqtx-keys(7)) names its row; the merge checks it */
	if (d->key != NULL && id > 0) {
		struct r1 r = {.id = id, .seq = s->seq, .kh = khash(d->key, d->key_len), .rc = rc};
		if (!s->has_ids || id < s->min_id)
			s->min_id = id;
		if (!s->has_ids || id > s->max_id)
			s->max_id = id;
		s->has_ids = true;
		return audit_sorter_add(s->s1, &r, err);
	}
	/* no id: the database finds the row by its key */
	copy_row(s, s->seq, d->key, d->key_len, rc);
	if (s->buf.len >= COPY_FLUSH_BYTES)
		return sink_flush(s, err);
	return 0;
}

static int read_loc(struct audit_sink *s, int64_t seq, struct loc *l, struct mqtx_err *err)
{
	if (!s->flushed) {
		if (fflush(s->loc) != 0 || fflush(s->keys) != 0)
			return file_err(err);
		s->flushed = true;
	}
	if (pread(fileno(s->loc), l, sizeof(*l), (off_t)(seq - 1) * (off_t)sizeof(*l)) != (ssize_t)sizeof(*l))
		return mqtx_err_set(err, MQTX_E_IO, "cannot read a temporary file: %s", strerror(errno));
	return 0;
}

/* The delivered key of seq (owned, NUL-terminated), or NULL without one. */
static int read_key(struct audit_sink *s, int64_t seq, char **key, size_t *len, int32_t *rc, struct mqtx_err *err)
{
	struct loc l;
	*key = NULL;
	*len = 0;
	if (read_loc(s, seq, &l, err) < 0)
		return -1;
	if (rc != NULL)
		*rc = l.rc;
	if (!l.has_key)
		return 0;
	*key = mqtx_xmalloc((size_t)l.keylen + 1);
	if (l.keylen > 0 && pread(fileno(s->keys), *key, l.keylen, (off_t)l.keyoff) != (ssize_t)l.keylen) {
		free(*key);
		*key = NULL;
		return mqtx_err_set(err, MQTX_E_IO, "cannot read a temporary file: %s", strerror(errno));
	}
	(*key)[l.keylen] = '\0';
	*len = l.keylen;
	return 0;
}

static void where_of(const struct loc *l, struct mqtx_audit_where *w)
{
	w->partition = l->part;
	w->offset = l->off;
	w->ts_us = l->ts;
	w->redelivery_count = l->rc;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- COPY text rows ---- */

/* Decodes one COPY text field in place; returns its length. */
static size_t unescape(char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\' || i + 1 >= n) {
			s[k++] = s[i];
			continue;
		}
		char c = s[++i];
		switch (c) {
		case 'n': s[k++] = '\n'; break;
		case 't': s[k++] = '\t'; break;
		case 'r': s[k++] = '\r'; break;
		case 'b': s[k++] = '\b'; break;
		case 'f': s[k++] = '\f'; break;
		case 'v': s[k++] = '\v'; break;
		default: s[k++] = c; break; /* \\ and the rest; text output has no numeric escapes */
		}
	}
	return k;
}

int audit_copy_split(char *line, size_t n, struct audit_field *f, int want)
{
	if (n > 0 && line[n - 1] == '\n')
		n--;
	int k = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n && k < want; i++) {
		if (i == n || line[i] == '\t') {
			f[k].s = line + start;
			f[k].len = i - start;
			f[k].null = f[k].len == 2 && line[start] == '\\' && line[start + 1] == 'N';
			if (!f[k].null)
				f[k].len = unescape(f[k].s, f[k].len);
			f[k].s[f[k].len] = '\0'; /* the tab or newline after it, or the terminator libpq adds */
			k++;
			start = i + 1;
		}
	}
	return k;
}

struct copy_fields {
	int nfields;
	const char *doing;
	int (*fn)(void *ctx, struct audit_field *f, struct mqtx_err *err);
	void *ctx;
};

static int on_copy_line(void *ctx, char *line, size_t n, struct mqtx_err *err)
{
	struct copy_fields *cf = ctx;
	struct audit_field f[8];
	if (audit_copy_split(line, n, f, cf->nfields) != cf->nfields)
		return mqtx_err_set(err, MQTX_E_INTERNAL, "%s: unexpected COPY data", cf->doing);
	return cf->fn(cf->ctx, f, err);
}

/* A COPY row handler for lib/db that splits rows into nfields fields for fn. */
static struct copy_fields fields(int nfields, const char *doing,
				 int (*fn)(void *ctx, struct audit_field *f, struct mqtx_err *err), void *ctx)
{
	return (struct copy_fields){.nfields = nfields, .doing = doing, .fn = fn, .ctx = ctx};
}

/* ---- destinations ---- */

struct dict {
	char **names;
	uint32_t *slots; /* index + 1, 0 empty */
	size_t n, nslots;
	bool *matched;      /* a delivered row has this destination */
	bool *checked;      /* losses and gaps are counted for it */
	int64_t *sent_seen; /* delivered rows sent within the window */
	int64_t *missing;
};

static uint32_t intern(struct dict *d, const char *s, size_t len)
{
	if (d->n * 2 >= d->nslots) {
		size_t ns = d->nslots ? d->nslots * 2 : 64;
		uint32_t *slots = mqtx_xcalloc(ns, sizeof(*slots));
		for (size_t i = 0; i < d->n; i++) {
			size_t h = (size_t)khash(d->names[i], strlen(d->names[i])) & (ns - 1);
			while (slots[h] != 0)
				h = (h + 1) & (ns - 1);
			slots[h] = (uint32_t)i + 1;
		}
		free(d->slots);
		d->slots = slots;
		d->nslots = ns;
	}
	size_t h = (size_t)khash(s, len) & (d->nslots - 1);
	while (d->slots[h] != 0) {
		uint32_t i = d->slots[h] - 1;
		if (strlen(d->names[i]) == len && memcmp(d->names[i], s, len) == 0)
			return i;
		h = (h + 1) & (d->nslots - 1);
	}
	if ((d->n & (d->n - 1)) == 0 || d->n == 0) { /* grow the per-name arrays at powers of two */
		size_t cap = d->n ? d->n * 2 : 1;
		d->names = mqtx_xrealloc(d->names, cap * sizeof(*d->names));
		d->matched = mqtx_xrealloc(d->matched, cap * sizeof(*d->matched));
		d->checked = mqtx_xrealloc(d->checked, cap * sizeof(*d->checked));
		d->sent_seen = mqtx_xrealloc(d->sent_seen, cap * sizeof(*d->sent_seen));
		d->missing = mqtx_xrealloc(d->missing, cap * sizeof(*d->missing));
	}
	d->names[d->n] = mqtx_xstrndup(s, len);
	d->matched[d->n] = d->checked[d->n] = false;
	d->sent_seen[d->n] = d->missing[d->n] = 0;
	d->slots[h] = (uint32_t)d->n + 1;
	return (uint32_t)d->n++;
}

static void dict_free(struct dict *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	free(d->names);
	free(d->slots);
	free(d->matched);
	free(d->checked);
	free(d->sent_seen);
	free(d->missing);
	memset(d, 0, sizeof(*d));
}

/* ---- sources ---- */

enum src_kind { SRC_BROKER, SRC_JSONL, SRC_INBOX };

struct src {
	enum src_kind kind;
	const struct mqtx_backend_ops *broker; /* SRC_BROKER: the backend of url's scheme */
	const char *url;                       /* broker or inbox database URL (NULL: configured), jsonl path */
	char *table;                           /* inbox:TABLE */
};

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int classify(const char *s, struct src *out, struct mqtx_err *err)
{
	memset(out, 0, sizeof(*out));
	out->url = s;
	if (s == NULL || s[0] == '\0')
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "no source: give --source (a broker URL: %s; inbox:, a file, or - for stdin)",
				    mqtx_broker_schemes_text());
	if ((out->broker = mqtx_broker_of_url(s)) != NULL) {
		out->kind = SRC_BROKER;
	} else if (has_prefix(s, "postgresql://") || has_prefix(s, "postgres://")) {
		out->kind = SRC_INBOX;
	} else if (has_prefix(s, "inbox:")) {
		out->kind = SRC_INBOX;
		out->url = NULL;
		if (s[6] != '\0')
			out->table = mqtx_xstrdup(s + 6);
	} else if (has_prefix(s, "file:")) {
		out->kind = SRC_JSONL;
		out->url = s + 5;
	} else if (strstr(s, "://") != NULL) {
		char *r = mqtx_redact(s);
		int rc =
			mqtx_err_set(err, MQTX_E_USAGE,
				     "source '%s': unknown scheme (expected a broker URL: %s; postgresql://, inbox:, file: or a path)",
				     r, mqtx_broker_schemes_text());
		free(r);
		return rc;
	} else {
		out->kind = SRC_JSONL;
	}
	return 0;
}

static void read_opts_of(const struct audit_ctx *c, const char *url, struct mqtx_read_opts *ro)
{
	*ro = (struct mqtx_read_opts){.cfg = c->cfg,
				      .url = url,
				      .from = c->o->from,
				      .to = c->o->to,
				      .destructive = c->o->destructive,
				      .idle_timeout_ms = c->idle_timeout_ms,
				      .stop = c->o->stop};
}

/* Options that make no sense for a kind are errors before anything connects. */
static int check_opts(const struct src *s, const struct mqtx_config *cfg, const struct mqtx_audit_opts *o,
		      struct mqtx_err *err)
{
	bool positions = o->from.kind != MQTX_READ_POS_NONE || o->to.kind != MQTX_READ_POS_NONE;
	if (s->kind == SRC_BROKER) {
		struct audit_ctx c = {.cfg = cfg, .o = o, .idle_timeout_ms = cfg->audit_idle_timeout_ms};
		struct mqtx_read_opts ro;
		read_opts_of(&c, s->url, &ro);
		return mqtx_broker_read_check(s->broker, &ro, err);
	}
	const char *what = s->kind == SRC_JSONL ? "JSONL file" : "inbox table";
	if (positions)
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "--from and --to are for broker sources that keep their messages (streams, topics); a %s is read whole",
				    what);
	if (o->destructive)
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "--destructive is for broker queues, which are read by consuming them; reading a %s never changes it",
				    what);
	return 0;
}

static int emit_record(void *ctx, const struct mqtx_read_record *r, struct mqtx_err *err)
{
	return audit_emit(ctx, r, err);
}

/* A broker source: the backend reads, audit_emit() takes each record, the
 * report gets what the backend says about the source. */
static int read_broker(struct audit_ctx *c, const struct src *s, struct mqtx_err *err)
{
	struct mqtx_read_opts ro;
	struct mqtx_read_result res;
	read_opts_of(c, s->url, &ro);
	ro.emit = emit_record;
	ro.emit_ctx = c->sink;
	int rc = mqtx_broker_read(s->broker, &ro, &res, err);
	c->rep->kind = res.kind;
	c->rep->position = res.position;
	snprintf(c->rep->detail, sizeof(c->rep->detail), "%s", res.detail);
	c->rep->stopped = res.stopped;
	free(c->default_destination);
	c->default_destination = res.default_destination;
	return rc;
}

static int read_source(struct audit_ctx *c, const struct src *s, struct mqtx_err *err)
{
	switch (s->kind) {
	case SRC_BROKER: return read_broker(c, s, err);
	case SRC_JSONL: return audit_read_jsonl(c, s->url, err);
	case SRC_INBOX: return audit_read_inbox(c, s->url, s->table, err);
	}
	return mqtx_err_set(err, MQTX_E_INTERNAL, "unknown source kind");
}

/* ---- the comparison ----
 *
 * Deliveries that name their outbox id are sorted by (id, seq) (sorter s1)
 * and merged with the outbox rows of the delivered id range, streamed in
 * id order; a delivery belongs to a row when the hash of its key equals the
 * hash of the row's key. Deliveries without an id, or whose id does not
 * match their key, are looked up by key in the database. The merge yields,
 * per outbox row, its deliveries (duplicates), or none (missing, when sent
 * within the window); rows with an ordering key go to sorter s2, sorted by
 * (ordering key, id), where successive rows delivered the other way round
 * (out of order) and unseen rows between seen ones (gaps) show. */

#define MAX_RC 64

/* A duplicate waiting for its locations. */
struct pdup {
	struct mqtx_audit_dup d;
	int64_t seqs[MAX_WHERE];
	size_t nseqs;
};

struct late {
	int64_t id, after_id, seq;
};

struct gapd {
	int64_t id, lo, hi;
};

/* Up to cap smallest ids (a max-heap). */
struct idheap {
	int64_t *v;
	size_t n, cap;
};

static void idheap_add(struct idheap *h, int64_t id)
{
	if (h->cap == 0)
		return;
	if (h->v == NULL)
		h->v = mqtx_xcalloc(h->cap, sizeof(*h->v));
	size_t i;
	if (h->n < h->cap) {
		i = h->n++;
		h->v[i] = id;
		while (i > 0 && h->v[(i - 1) / 2] < h->v[i]) {
			int64_t t = h->v[i];
			h->v[i] = h->v[(i - 1) / 2];
			h->v[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
		return;
	}
	if (id >= h->v[0])
		return;
	h->v[0] = id;
	i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->v[l] > h->v[m])
			m = l;
		if (r < h->n && h->v[r] > h->v[m])
			m = r;
		if (m == i)
			break;
		int64_t t = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = t;
		i = m;
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* What one merge finds; reset when the merge runs again. */
struct found {
	struct dict dests;
	struct audit_sorter *s2;
	FILE *undelivered; /* struct ru */
	int64_t matched_keys;
	int64_t dup_keys, dup_extra, dup_explained, dup_unexplained, dup_unexplained_extra;
	int64_t delivered_unsent;
	struct pdup *dups_u, *dups_e; /* unexplained / explained, at most max_details each */
	size_t n_u, n_e;
};

struct run {
	struct mqtx_audit_db *db;
	const struct mqtx_config *cfg;
	const struct mqtx_audit_opts *o;
	struct mqtx_audit_report *rep;
	struct audit_sink *sink;
	const char *default_destination;
	bool order_meaningful;
	struct audit_sorter *s1b; /* deliveries matched by key after their id did not fit */
	FILE *mismatched;         /* seqs (int64) whose id did not fit their key */
	int64_t n_mismatched;
	FILE *strangers; /* seqs (int64) whose key the outbox does not know */
	int64_t n_strangers;
	int64_t lo, hi; /* delivered ids */
	bool have_range;
	bool rerun;
	struct found f;
};

static void found_free(struct found *f)
{
	for (size_t i = 0; i < f->n_u; i++)
		free(f->dups_u[i].d.key);
	for (size_t i = 0; i < f->n_e; i++)
		free(f->dups_e[i].d.key);
	free(f->dups_u);
	free(f->dups_e);
	dict_free(&f->dests);
	audit_sorter_free(f->s2);
	if (f->undelivered != NULL)
		fclose(f->undelivered);
	memset(f, 0, sizeof(*f));
}

static int found_init(struct run *r, struct mqtx_err *err)
{
	found_free(&r->f);
	r->f.s2 = audit_sorter_new(sizeof(struct r2), cmp_r2, 64u << 20);
	r->f.undelivered = tmpfile();
	if (r->f.undelivered == NULL)
		return mqtx_err_set(err, MQTX_E_IO, "cannot create a temporary file (TMPDIR): %s", strerror(errno));
	return 0;
}

static void note_range(struct run *r, int64_t id)
{
	if (!r->have_range || id < r->lo)
		r->lo = id;
	if (!r->have_range || id > r->hi)
		r->hi = id;
	r->have_range = true;
}

static int put_seq(FILE *f, int64_t seq, struct mqtx_err *err)
{
	if (fwrite(&seq, sizeof(seq), 1, f) != 1)
		return file_err(err);
	return 0;
}

/* Resolution by key: rows of COPY (seq, outbox id or NULL, rc). */
struct resolving {
	struct run *r;
	struct audit_sorter *into;
};

static int on_resolved(void *ctx, struct audit_field *f, struct mqtx_err *err)
{
	struct resolving *rs = ctx;
	int64_t seq = strtoll(f[0].s, NULL, 10);
	if (f[1].null) {
		rs->r->n_strangers++;
		return put_seq(rs->r->strangers, seq, err);
	}
	struct r1 x = {.id = strtoll(f[1].s, NULL, 10),
		       .seq = seq,
		       .rc = (int32_t)strtol(f[2].s, NULL, 10),
		       .flags = R1_VERIFIED};
	note_range(rs->r, x.id);
	return audit_sorter_add(rs->into, &x, err);
}

static int resolve(struct run *r, const char *table, struct audit_sorter *into, struct mqtx_err *err)
{
	struct resolving rs = {.r = r, .into = into};
	struct copy_fields cf = fields(3, "cannot find deliveries by key", on_resolved, &rs);
	return mqtx_audit_db_resolve(r->db, table, on_copy_line, &cf, err);
}

/* ---- the merge ---- */

struct merge {
	struct run *r;
	struct r1 a, b; /* heads of s1 and s1b */
	bool have_a, have_b;
	struct r1 cur;
	bool have;
	struct audit_sorter *s1;
};

static int advance(struct merge *m, struct mqtx_err *err)
{
	int failed = 0;
	if (m->have && m->have_a && m->cur.seq == m->a.seq && m->cur.id == m->a.id) {
		m->have_a = audit_sorter_next(m->s1, &m->a, err, &failed) != NULL;
	} else if (m->have && m->have_b) {
		m->have_b = audit_sorter_next(m->r->s1b, &m->b, err, &failed) != NULL;
	}
	if (failed)
		return -1;
	m->have = m->have_a || m->have_b;
	if (m->have_a && (!m->have_b || cmp_r1(&m->a, &m->b) <= 0))
		m->cur = m->a;
	else if (m->have_b)
		m->cur = m->b;
	return 0;
}

static int mismatch(struct merge *m, struct mqtx_err *err)
{
	if (m->r->rerun)
		return 0; /* settled by the first merge */
	m->r->n_mismatched++;
	return put_seq(m->r->mismatched, m->cur.seq, err);
}

static void add_dup(struct run *r, const char *key, int64_t id, int64_t n, int64_t nd, const int64_t *seqs,
		    size_t nseqs)
{
	struct found *f = &r->f;
	bool explained = nd == n;
	f->dup_keys++;
	f->dup_extra += n - 1;
	if (explained) {
		f->dup_explained++;
	} else {
		f->dup_unexplained++;
		f->dup_unexplained_extra += n - nd;
	}
	struct pdup **list = explained ? &f->dups_e : &f->dups_u;
	size_t *nl = explained ? &f->n_e : &f->n_u;
	if ((int64_t)*nl >= r->o->max_details)
		return;
	if ((*nl & (*nl - 1)) == 0) /* grow at powers of two: --max-details may be large, duplicates few */
		*list = mqtx_xrealloc(*list, (*nl ? *nl * 2 : 1) * sizeof(**list));
	struct pdup *p = &(*list)[(*nl)++];
	memset(p, 0, sizeof(*p));
	p->d.key = mqtx_xstrdup(key);
	p->d.outbox_id = id;
	p->d.count = n;
	p->d.distinct_redeliveries = nd;
	p->d.explained = explained;
	memcpy(p->seqs, seqs, nseqs * sizeof(*seqs));
	p->nseqs = nseqs;
}

/* One outbox row of the id range: id, key, okey, status, dest, sent_at, in window. */
static int on_outbox_row(void *ctx, struct audit_field *fl, struct mqtx_err *err)
{
	struct merge *m = ctx;
	struct run *r = m->r;
	int64_t id = strtoll(fl[0].s, NULL, 10);
	uint64_t kh = khash(fl[1].s, fl[1].len);
	while (m->have && m->cur.id < id) {
		if (mismatch(m, err) < 0 || advance(m, err) < 0)
			return -1;
	}
	int64_t n = 0, first_seq = 0, seqs[MAX_WHERE];
	int32_t rcs[MAX_RC];
	size_t nrc = 0, nseqs = 0;
	while (m->have && m->cur.id == id) {
		if ((m->cur.flags & R1_VERIFIED) || m->cur.kh == kh) {
			if (n == 0 || m->cur.seq < first_seq)
				first_seq = m->cur.seq;
			n++;
			if (nrc < MAX_RC)
				rcs[nrc++] = m->cur.rc;
			if (nseqs < MAX_WHERE)
				seqs[nseqs++] = m->cur.seq;
		} else if (mismatch(m, err) < 0) {
			return -1;
		}
		if (advance(m, err) < 0)
			return -1;
	}
	uint32_t dest = intern(&r->f.dests, fl[4].s, fl[4].len);
	bool inwin = fl[6].s[0] == 't';
	if (n > 0) {
		r->f.matched_keys++;
		r->f.dests.matched[dest] = true;
		if (inwin)
			r->f.dests.sent_seen[dest]++;
		if (strcmp(fl[3].s, "sent") != 0)
			r->f.delivered_unsent++;
		if (n > 1) {
			/* distinct redelivery counts: copies sent again on purpose */
			qsort(rcs, nrc, sizeof(*rcs), cmp_i32);
			int64_t nd = nrc > 0 ? 1 : 0;
			for (size_t i = 1; i < nrc; i++)
				nd += rcs[i] != rcs[i - 1];
			add_dup(r, fl[1].s, id, n, nd, seqs, nseqs);
		}
	} else {
		struct ru u = {.id = id,
			       .sent_at = fl[5].null ? MQTX_AUDIT_NO_TS : strtoll(fl[5].s, NULL, 10),
			       .dest = dest,
			       .lost = inwin};
		if (fwrite(&u, sizeof(u), 1, r->f.undelivered) != 1)
			return file_err(err);
	}
	if (!fl[2].null) {
		struct r2 x = {.okh = khash(fl[2].s, fl[2].len), .id = id, .first_seq = first_seq, .dest = dest};
		if (audit_sorter_add(r->f.s2, &x, err) < 0)
			return -1;
	}
	return 0;
}

static int merge(struct run *r, struct audit_sorter *s1, struct mqtx_err *err)
{
	if (found_init(r, err) < 0)
		return -1;
	struct merge m = {.r = r, .s1 = s1};
	int failed = 0;
	if (audit_sorter_rewind(s1, err) < 0 || (r->s1b != NULL && audit_sorter_rewind(r->s1b, err) < 0))
		return -1;
	m.have_a = audit_sorter_next(s1, &m.a, err, &failed) != NULL;
	if (!failed && r->s1b != NULL)
		m.have_b = audit_sorter_next(r->s1b, &m.b, err, &failed) != NULL;
	if (failed)
		return -1;
	m.have = m.have_a || m.have_b;
	if (m.have_a && (!m.have_b || cmp_r1(&m.a, &m.b) <= 0))
		m.cur = m.a;
	else if (m.have_b)
		m.cur = m.b;
	if (r->have_range) {
		struct copy_fields cf = fields(7, "cannot read the outbox", on_outbox_row, &m);
		if (mqtx_audit_db_read_outbox(r->db, r->lo, r->hi, on_copy_line, &cf, err) < 0)
			return -1;
	}
	while (m.have) {
		if (mismatch(&m, err) < 0 || advance(&m, err) < 0)
			return -1;
	}
	return 0;
}

/* Rows sent within the window outside the delivered id range: all unseen. */
static int on_outside_row(void *ctx, struct audit_field *fl, struct mqtx_err *err)
{
	struct run *r = ctx;
	struct ru u = {.id = strtoll(fl[0].s, NULL, 10),
		       .sent_at = fl[2].null ? MQTX_AUDIT_NO_TS : strtoll(fl[2].s, NULL, 10),
		       .dest = intern(&r->f.dests, fl[1].s, fl[1].len),
		       .lost = 1};
	if (fwrite(&u, sizeof(u), 1, r->f.undelivered) != 1)
		return file_err(err);
	return 0;
}

static int outside(struct run *r, struct mqtx_err *err)
{
	struct copy_fields cf = fields(3, "cannot read the sent rows", on_outside_row, r);
	return mqtx_audit_db_read_sent(r->db, r->have_range, r->lo, r->hi, on_copy_line, &cf, err);
}

static void choose_destinations(struct run *r)
{
	struct mqtx_audit_report *rep = r->rep;
	struct dict *d = &r->f.dests;
	if (r->o->n_destinations > 0) {
		rep->destinations = mqtx_xcalloc(r->o->n_destinations, sizeof(char *));
		for (size_t i = 0; i < r->o->n_destinations; i++) {
			const char *name = r->o->destinations[i];
			rep->destinations[rep->n_destinations++] = mqtx_xstrdup(name);
			d->checked[intern(d, name, strlen(name))] = true;
		}
	} else if (r->default_destination != NULL) {
		rep->destinations = mqtx_xcalloc(1, sizeof(char *));
		rep->destinations[rep->n_destinations++] = mqtx_xstrdup(r->default_destination);
		d->checked[intern(d, r->default_destination, strlen(r->default_destination))] = true;
	} else {
		rep->destinations = mqtx_xcalloc(d->n + 1, sizeof(char *));
		for (size_t i = 0; i < d->n; i++) {
			if (!d->matched[i])
				continue;
			d->checked[i] = true;
			rep->destinations[rep->n_destinations++] = mqtx_xstrdup(d->names[i]);
		}
		rep->destinations_inferred = true;
	}
	rep->losses_checked = rep->n_destinations > 0;
}

/* Missing: unseen rows sent within the window, of a checked destination. */
static int count_missing(struct run *r, struct idheap *ids, struct mqtx_err *err)
{
	FILE *u = r->f.undelivered;
	if (fflush(u) != 0 || fseek(u, 0, SEEK_SET) != 0)
		return file_err(err);
	struct ru x;
	while (fread(&x, sizeof(x), 1, u) == 1) {
		if (!x.lost || !r->f.dests.checked[x.dest])
			continue;
		r->rep->missing++;
		r->f.dests.missing[x.dest]++;
		idheap_add(ids, x.id);
	}
	if (ferror(u))
		return mqtx_err_set(err, MQTX_E_IO, "cannot read a temporary file: %s", strerror(errno));
	for (size_t i = 0; i < r->f.dests.n; i++)
		if (r->f.dests.checked[i])
			r->rep->outbox_sent += r->f.dests.sent_seen[i] + r->f.dests.missing[i];
	return 0;
}

/* Order and gaps, one ordering key (hash) at a time in id order. */
static int scan_order(struct run *r, struct late *lates, size_t *nlate, struct gapd *gaps, size_t *ngap,
		      struct mqtx_err *err)
{
	struct mqtx_audit_report *rep = r->rep;
	size_t cap = (size_t)r->o->max_details;
	struct r2 x;
	int failed = 0;
	uint64_t okh = 0;
	bool first = true, have_prev = false, inverted = false, gapped = false;
	int64_t prev_id = 0, prev_seq = 0, pending = 0;
	int64_t *pend = mqtx_xcalloc(cap + 1, sizeof(int64_t));
	size_t npend = 0;
	if (audit_sorter_rewind(r->f.s2, err) < 0) {
		free(pend);
		return -1;
	}
	for (;;) {
		bool more = audit_sorter_next(r->f.s2, &x, err, &failed) != NULL;
		if (failed) {
			free(pend);
			return -1;
		}
		if (!more || first || x.okh != okh) {
			if (!first) {
				rep->order_keys += have_prev;
				rep->out_of_order_keys += inverted;
				rep->gap_keys += gapped;
			}
			if (!more)
				break;
			first = false;
			okh = x.okh;
			have_prev = inverted = gapped = false;
			pending = 0;
			npend = 0;
		}
		if (x.first_seq == 0) {
			if (have_prev && r->f.dests.checked[x.dest]) {
				pending++;
				if (npend < cap)
					pend[npend++] = x.id;
			}
			continue;
		}
		if (have_prev) {
			if (r->order_meaningful && x.first_seq < prev_seq) {
				/* prev came after x although it is the earlier row */
				rep->out_of_order++;
				inverted = true;
				if (*nlate < cap)
					lates[(*nlate)++] = (struct late){.id = prev_id,
									  .after_id = x.id,
									  .seq = prev_seq};
			}
			if (pending > 0) {
				rep->gaps += pending;
				gapped = true;
				for (size_t i = 0; i < npend && *ngap < cap; i++)
					gaps[(*ngap)++] = (struct gapd){.id = pend[i], .lo = prev_id, .hi = x.id};
			}
		}
		have_prev = true;
		prev_id = x.id;
		prev_seq = x.first_seq;
		pending = 0;
		npend = 0;
	}
	free(pend);
	return 0;
}

/* ---- strangers and details ---- */

static int copy_seqs_in(struct run *r, FILE *seqs, const char *table, bool with_key, struct mqtx_err *err)
{
	if (mqtx_audit_db_store_begin(r->db, table, err) < 0)
		return -1;
	if (fflush(seqs) != 0 || fseek(seqs, 0, SEEK_SET) != 0)
		return file_err(err);
	struct mqtx_buf b = MQTX_BUF_INIT;
	int64_t seq;
	int rc = 0;
	while (rc == 0 && fread(&seq, sizeof(seq), 1, seqs) == 1) {
		copy_i64(&b, seq);
		if (with_key) {
			char *key;
			size_t len;
			int32_t rcount;
			if (read_key(r->sink, seq, &key, &len, &rcount, err) < 0) {
				rc = -1;
				break;
			}
			mqtx_buf_addc(&b, '\t');
			if (key != NULL)
				copy_text(&b, key, len, &r->sink->bad_bytes);
			else
				mqtx_buf_add(&b, "\\N", 2);
			mqtx_buf_addc(&b, '\t');
			copy_i64(&b, rcount);
			free(key);
		}
		mqtx_buf_addc(&b, '\n');
		if (b.len >= COPY_FLUSH_BYTES) {
			rc = mqtx_audit_db_put(r->db, b.data, b.len, err);
			mqtx_buf_reset(&b);
		}
	}
	if (rc == 0)
		rc = mqtx_audit_db_put(r->db, b.data, b.len, err);
	mqtx_buf_free(&b);
	if (mqtx_audit_db_store_end(r->db, rc != 0, err) < 0)
		rc = -1;
	return rc;
}

struct stranger_list {
	struct run *r;
	struct mqtx_audit_list *l;
};

static int on_stranger(void *ctx, const char *key, int64_t n, int64_t first, struct mqtx_err *err)
{
	struct stranger_list *sl = ctx;
	struct mqtx_audit_row *row = &sl->l->rows[sl->l->n++];
	row->key = key != NULL ? mqtx_xstrdup(key) : NULL;
	row->count = n;
	row->sent_at_us = MQTX_AUDIT_NO_TS;
	struct loc l;
	if (read_loc(sl->r->sink, first, &l, err) < 0)
		return -1;
	where_of(&l, &row->where);
	return 0;
}

static int strangers(struct run *r, struct mqtx_err *err)
{
	struct mqtx_audit_report *rep = r->rep;
	if (r->n_strangers == 0)
		return 0;
	if (mqtx_audit_db_strangers_table(r->db, err) < 0 ||
	    copy_seqs_in(r, r->strangers, "mqtx_audit_s", false, err) < 0 ||
	    mqtx_audit_db_count_strangers(r->db, &rep->stranger_keys, &rep->stranger_deliveries, err) < 0)
		return -1;
	if (rep->unkeyed > 0)
		rep->stranger_keys++; /* the deliveries without a key count as one */
	if (r->o->max_details <= 0)
		return 0;
	rep->strangers.rows = mqtx_xcalloc((size_t)r->o->max_details + 1, sizeof(struct mqtx_audit_row));
	struct stranger_list sl = {.r = r, .l = &rep->strangers};
	return mqtx_audit_db_list_strangers(r->db, r->o->max_details, on_stranger, &sl, err);
}

struct enriching {
	struct mqtx_audit_row *rows;
	size_t n;
};

static void on_row_facts(void *ctx, int64_t id, const char *key, const char *okey, const char *status,
			 int64_t sent_at_us)
{
	struct enriching *e = ctx;
	for (size_t j = 0; j < e->n; j++) {
		if (e->rows[j].outbox_id != id)
			continue;
		e->rows[j].key = key != NULL ? mqtx_xstrdup(key) : NULL;
		e->rows[j].ordering_key = okey != NULL ? mqtx_xstrdup(okey) : NULL;
		e->rows[j].status = status != NULL ? mqtx_xstrdup(status) : NULL;
		e->rows[j].sent_at_us = sent_at_us == INT64_MIN ? MQTX_AUDIT_NO_TS : sent_at_us;
	}
}

/* Fills key, ordering key, status and sent_at of rows from the outbox. */
static int enrich(struct run *r, struct mqtx_audit_row *rows, size_t n, struct mqtx_err *err)
{
	if (n == 0)
		return 0;
	int64_t *ids = mqtx_xcalloc(n, sizeof(int64_t));
	for (size_t i = 0; i < n; i++)
		ids[i] = rows[i].outbox_id;
	struct enriching e = {.rows = rows, .n = n};
	int rc = mqtx_audit_db_rows(r->db, ids, n, on_row_facts, &e, err);
	free(ids);
	return rc;
}

static struct mqtx_audit_row *new_rows(struct mqtx_audit_list *l, size_t n)
{
	l->rows = mqtx_xcalloc(n + 1, sizeof(*l->rows));
	l->n = n;
	for (size_t i = 0; i < n; i++) {
		l->rows[i].sent_at_us = MQTX_AUDIT_NO_TS;
		l->rows[i].where = (struct mqtx_audit_where){-1, -1, MQTX_AUDIT_NO_TS, -1};
	}
	return l->rows;
}

static int details(struct run *r, struct idheap *missing, struct late *lates, size_t nlate, struct gapd *gaps,
		   size_t ngap, struct mqtx_err *err)
{
	struct mqtx_audit_report *rep = r->rep;
	size_t cap = (size_t)r->o->max_details;
	/* duplicates: unexplained first */
	rep->dups = mqtx_xcalloc(r->f.n_u + r->f.n_e + 1, sizeof(*rep->dups));
	for (int pass = 0; pass < 2; pass++) {
		struct pdup *list = pass == 0 ? r->f.dups_u : r->f.dups_e;
		size_t n = pass == 0 ? r->f.n_u : r->f.n_e;
		for (size_t i = 0; i < n && rep->n_dups < cap; i++) {
			struct mqtx_audit_dup *d = &rep->dups[rep->n_dups++];
			*d = list[i].d;
			list[i].d.key = NULL; /* moved */
			d->where = mqtx_xcalloc(MAX_WHERE, sizeof(*d->where));
			for (size_t j = 0; j < list[i].nseqs; j++) {
				struct loc l;
				if (read_loc(r->sink, list[i].seqs[j], &l, err) < 0)
					return -1;
				where_of(&l, &d->where[d->n_where++]);
			}
		}
	}
	/* missing, in id order */
	if (missing->n > 0)
		qsort(missing->v, missing->n, sizeof(int64_t), cmp_i64);
	struct mqtx_audit_row *rows = new_rows(&rep->missing_rows, missing->n);
	for (size_t i = 0; i < missing->n; i++)
		rows[i].outbox_id = missing->v[i];
	if (enrich(r, rows, missing->n, err) < 0)
		return -1;
	rows = new_rows(&rep->order_rows, nlate);
	for (size_t i = 0; i < nlate; i++) {
		struct loc l;
		rows[i].outbox_id = lates[i].id;
		rows[i].after_id = lates[i].after_id;
		if (read_loc(r->sink, lates[i].seq, &l, err) < 0)
			return -1;
		where_of(&l, &rows[i].where);
	}
	if (enrich(r, rows, nlate, err) < 0)
		return -1;
	rows = new_rows(&rep->gap_rows, ngap);
	for (size_t i = 0; i < ngap; i++) {
		rows[i].outbox_id = gaps[i].id;
		rows[i].after_id = gaps[i].lo;
		rows[i].before_id = gaps[i].hi;
	}
	return enrich(r, rows, ngap, err);
}

/* ---- setup ---- */

static int end_copy(struct audit_sink *sink, const char *abort_msg, struct mqtx_err *err)
{
	if (abort_msg == NULL && sink_flush(sink, err) < 0)
		abort_msg = "flush failed";
	return mqtx_audit_db_end(sink->db, abort_msg, err);
}

static FILE *temp(struct mqtx_err *err)
{
	FILE *f = tmpfile();
	if (f == NULL) {
		mqtx_err_set(err, MQTX_E_IO, "cannot create a temporary file (TMPDIR): %s", strerror(errno));
		return NULL;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

static int compare(struct run *r, struct mqtx_err *err)
{
	struct mqtx_audit_report *rep = r->rep;
	struct audit_sink *sink = r->sink;
	int rc = -1;
	struct idheap missing = {.cap = (size_t)r->o->max_details};
	size_t cap = (size_t)r->o->max_details;
	struct late *lates = mqtx_xcalloc(cap + 1, sizeof(*lates));
	struct gapd *gaps = mqtx_xcalloc(cap + 1, sizeof(*gaps));
	size_t nlate = 0, ngap = 0;

	if ((r->mismatched = temp(err)) == NULL || (r->strangers = temp(err)) == NULL)
		goto out;
	/* deliveries without an id: found by key */
	if (sink->to_resolve > 0 && resolve(r, "mqtx_audit_k", sink->s1, err) < 0)
		goto out;
	if (merge(r, sink->s1, err) < 0)
		goto out;
	if (r->n_mismatched > 0) {
		/* an id that does not fit the key: look the key up; when it is
		 * known after all, merge again with the row it belongs to */
		mqtx_warn("%lld deliveries carry an outbox id that does not fit their key (another outbox publishing to the same place?); looking them up by key",
			  (long long)r->n_mismatched);
		r->s1b = audit_sorter_new(sizeof(struct r1), cmp_r1, 16u << 20);
		if (copy_seqs_in(r, r->mismatched, "mqtx_audit_km", true, err) < 0 ||
		    resolve(r, "mqtx_audit_km", r->s1b, err) < 0)
			goto out;
		if (audit_sorter_count(r->s1b) > 0) {
			r->rerun = true;
			if (merge(r, sink->s1, err) < 0)
				goto out;
		}
	}
	rep->distinct_keys = r->f.matched_keys;
	rep->dup_keys = r->f.dup_keys;
	rep->dup_extra = r->f.dup_extra;
	rep->dup_explained_keys = r->f.dup_explained;
	rep->dup_unexplained_keys = r->f.dup_unexplained;
	rep->dup_unexplained_extra = r->f.dup_unexplained_extra;
	rep->delivered_unsent = r->f.delivered_unsent;
	if (outside(r, err) < 0)
		goto out;
	choose_destinations(r);
	if (count_missing(r, &missing, err) < 0)
		goto out;
	if (scan_order(r, lates, &nlate, gaps, &ngap, err) < 0)
		goto out;
	if (!rep->losses_checked) {
		rep->gaps = rep->gap_keys = 0;
		ngap = 0;
	}
	if (strangers(r, err) < 0)
		goto out;
	rep->distinct_keys += rep->stranger_keys - (rep->unkeyed > 0);
	if (details(r, &missing, lates, nlate, gaps, ngap, err) < 0)
		goto out;
	rc = 0;
out:
	free(missing.v);
	free(lates);
	free(gaps);
	return rc;
}

/* The verdict: the findings against the tolerance. */
static void judge(struct mqtx_audit_report *rep, const struct mqtx_audit_opts *o)
{
	rep->max_duplicates = o->max_duplicates;
	rep->max_missing = o->max_missing;
	rep->duplicates_over = rep->dup_unexplained_keys > o->max_duplicates;
	rep->missing_over = rep->losses_checked && rep->missing > o->max_missing;
	if (rep->duplicates_over && rep->missing_over)
		rep->status = MQTX_AUDIT_BOTH;
	else if (rep->duplicates_over)
		rep->status = MQTX_AUDIT_DUPLICATES;
	else if (rep->missing_over)
		rep->status = MQTX_AUDIT_MISSING;
	else
		rep->status = MQTX_AUDIT_OK;
}

int mqtx_audit_run(const struct mqtx_config *cfg, const struct mqtx_audit_opts *o, struct mqtx_audit_report *rep,
		   struct mqtx_err *err)
{
	struct src s;
	struct run r = {.cfg = cfg, .o = o, .rep = rep};
	struct audit_sink sink = {0};
	struct audit_ctx c = {0};
	int rc = -1;
	int64_t t0 = mqtx_now_ms();

	memset(rep, 0, sizeof(*rep));
	if (classify(o->source, &s, err) < 0)
		return -1;
	if (check_opts(&s, cfg, o, err) < 0)
		goto out;
	char *red = mqtx_redact(strcmp(o->source, "-") == 0 ? "stdin" : o->source);
	snprintf(rep->source, sizeof(rep->source), "%s", red);
	free(red);

	r.db = mqtx_audit_db_connect(cfg, err);
	if (r.db == NULL)
		goto out;
	rep->sent_at_known = mqtx_audit_db_has_sent_at(r.db);
	if (!rep->sent_at_known && (o->has_since || o->has_until)) {
		mqtx_err_set(err, MQTX_E_USAGE, "--since/--until need a sent_at column (outbox.columns.sent_at)");
		goto out;
	}
	/* The window ends when the audit starts, unless told otherwise: rows
	 * sent later may not have reached the source yet. */
	int64_t now_us;
	if (mqtx_audit_db_clock(r.db, &now_us, &sink.derived_prefix, err) < 0)
		goto out;
	rep->until_us = o->has_until ? o->until_us : now_us;
	sink.derived_len = sink.derived_prefix != NULL ? strlen(sink.derived_prefix) : 0;
	rep->has_since = o->has_since;
	rep->since_us = o->since_us;
	mqtx_audit_db_set_window(r.db, rep->has_since, rep->since_us, rep->until_us);

	if (mqtx_audit_db_start(r.db, err) < 0)
		goto out;
	sink.db = r.db;
	sink.s1 = audit_sorter_new(sizeof(struct r1), cmp_r1, 64u << 20);
	if ((sink.loc = temp(err)) == NULL || (sink.keys = temp(err)) == NULL) {
		struct mqtx_err ignored;
		end_copy(&sink, "no temporary file", &ignored);
		goto out;
	}
	c = (struct audit_ctx){.cfg = cfg,
			       .o = o,
			       .rep = rep,
			       .sink = &sink,
			       .idle_timeout_ms = cfg->audit_idle_timeout_ms,
			       .order_meaningful = true};
	int64_t t_read = mqtx_now_ms();
	if (read_source(&c, &s, err) < 0) {
		struct mqtx_err ignored;
		end_copy(&sink, "source failed", &ignored);
		goto out;
	}
	if (end_copy(&sink, NULL, err) < 0)
		goto out;
	rep->read_ms = mqtx_now_ms() - t_read;
	rep->deliveries = sink.seq;
	rep->unkeyed = sink.unkeyed;
	rep->order_checked = c.order_meaningful;
	mqtx_info("read %lld deliveries from %s in %.1fs; comparing with the outbox", (long long)sink.seq, rep->source,
		  (double)rep->read_ms / 1000.0);

	r.sink = &sink;
	r.default_destination = c.default_destination;
	r.order_meaningful = c.order_meaningful;
	/* the delivered id range bounds the outbox scan */
	r.have_range = sink.has_ids;
	r.lo = sink.min_id;
	r.hi = sink.max_id;
	if (compare(&r, err) < 0)
		goto out;
	if (sink.bad_bytes > 0)
		mqtx_warn("%lld byte(s) of delivered keys were not UTF-8 text; they are shown as \\xNN",
			  (long long)sink.bad_bytes);
	judge(rep, o);
	rc = 0;
out:
	rep->elapsed_ms = mqtx_now_ms() - t0;
	mqtx_buf_free(&sink.buf);
	free(sink.derived_prefix);
	audit_sorter_free(sink.s1);
	audit_sorter_free(r.s1b);
	if (sink.loc != NULL)
		fclose(sink.loc);
	if (sink.keys != NULL)
		fclose(sink.keys);
	if (r.mismatched != NULL)
		fclose(r.mismatched);
	if (r.strangers != NULL)
		fclose(r.strangers);
	found_free(&r.f);
	mqtx_audit_db_free(r.db);
	free(s.table);
	free(c.default_destination);
	return rc;
}

static void free_list(struct mqtx_audit_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->rows[i].key);
		free(l->rows[i].ordering_key);
		free(l->rows[i].status);
	}
	free(l->rows);
	memset(l, 0, sizeof(*l));
}

void mqtx_audit_report_free(struct mqtx_audit_report *rep)
{
	for (size_t i = 0; i < rep->n_dups; i++) {
		free(rep->dups[i].key);
		free(rep->dups[i].where);
	}
	free(rep->dups);
	for (size_t i = 0; i < rep->n_destinations; i++)
		free(rep->destinations[i]);
	free(rep->destinations);
	free_list(&rep->missing_rows);
	free_list(&rep->strangers);
	free_list(&rep->order_rows);
	free_list(&rep->gap_rows);
	memset(rep, 0, sizeof(*rep));
}
