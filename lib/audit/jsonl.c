/* dedupe-audit reader for JSONL captures: one delivery per line,
 * {"key": "...", "ordering_key": "...", "id": 17, "ts": "...", "redelivery_count": 0},
 * only "key" required, other members ignored. A file or stdin.
 *
 * Lines are scanned by a small flat-object scanner (millions of lines a
 * second); anything it does not handle (nested values, errors) goes through
 * the strict JSON reader, whose messages name the byte. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/source.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

#define MAX_LINE (1024 * 1024)
#define READ_CHUNK (1024 * 1024)

enum vtype { V_NONE, V_NULL, V_STR, V_NUM, V_BOOL, V_OTHER };

struct val {
	enum vtype type;
	const char *s; /* V_STR: decoded bytes; V_NUM: the literal */
	size_t len;
};

enum field { F_KEY, F_OKEY, F_ID, F_TS, F_RC, F__COUNT };
static const char *const field_names[F__COUNT] = {"key", "ordering_key", "id", "ts", "redelivery_count"};

struct scan {
	const char *s;
	size_t len, pos;
	struct mqtx_buf scratch; /* decoded strings of the line */
	size_t off[F__COUNT];    /* where each V_STR field's bytes start in scratch */
	struct val v[F__COUNT];
	bool bail; /* something the fast scanner leaves to the strict reader */
};

static void ws(struct scan *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\r'))
		p->pos++;
}

/* A string at p->pos (the opening quote) into scratch; returns its start, or
 * (size_t)-1 (bail). */
static size_t string(struct scan *p)
{
	size_t start = p->scratch.len;
	p->pos++;
	for (;;) {
		size_t run = p->pos;
		while (p->pos < p->len && p->s[p->pos] != '"' && p->s[p->pos] != '\\' &&
		       (unsigned char)p->s[p->pos] >= 0x20)
			p->pos++;
		mqtx_buf_add(&p->scratch, p->s + run, p->pos - run);
		if (p->pos >= p->len || (unsigned char)p->s[p->pos] < 0x20)
			return (size_t)-1;
		if (p->s[p->pos] == '"') {
			p->pos++;
			return start;
		}
		/* an escape */
		if (p->pos + 1 >= p->len)
			return (size_t)-1;
		char e = p->s[p->pos + 1];
		p->pos += 2;
		switch (e) {
		case '"': mqtx_buf_addc(&p->scratch, '"'); break;
		case '\\': mqtx_buf_addc(&p->scratch, '\\'); break;
		case '/': mqtx_buf_addc(&p->scratch, '/'); break;
		case 'b': mqtx_buf_addc(&p->scratch, '\b'); break;
		case 'f': mqtx_buf_addc(&p->scratch, '\f'); break;
		case 'n': mqtx_buf_addc(&p->scratch, '\n'); break;
		case 'r': mqtx_buf_addc(&p->scratch, '\r'); break;
		case 't': mqtx_buf_addc(&p->scratch, '\t'); break;
		case 'u': {
			unsigned cp, lo;
			if (p->pos + 4 > p->len || mqtx_hex4(p->s + p->pos, &cp) < 0)
				return (size_t)-1;
			p->pos += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
				    mqtx_hex4(p->s + p->pos + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
					return (size_t)-1;
				p->pos += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				return (size_t)-1;
			}
			mqtx_buf_add_utf8(&p->scratch, cp);
			break;
		}
		default: return (size_t)-1;
		}
	}
}

static bool number(struct scan *p)
{
	size_t i = p->pos;
	if (i < p->len && p->s[i] == '-')
		i++;
	if (i >= p->len || p->s[i] < '0' || p->s[i] > '9')
		return false;
	if (p->s[i] == '0')
		i++;
	else
		while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
			i++;
	if (i < p->len && p->s[i] == '.') {
		i++;
		if (i >= p->len || p->s[i] < '0' || p->s[i] > '9')
			return false;
		while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
			i++;
	}
	if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
		i++;
		if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
			i++;
		if (i >= p->len || p->s[i] < '0' || p->s[i] > '9')
			return false;
		while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
			i++;
	}
	p->pos = i;
	return true;
}

static bool word(struct scan *p, const char *w)
{
	size_t n = strlen(w);
	if (p->pos + n > p->len || memcmp(p->s + p->pos, w, n) != 0)
		return false;
	p->pos += n;
	return true;
}

static int field_of(const char *name, size_t n)
{
	for (int f = 0; f < F__COUNT; f++)
		if (strlen(field_names[f]) == n && memcmp(field_names[f], name, n) == 0)
			return f;
	return -1;
}

/* Scans one flat object. Returns 0, or -1 to hand the line to the strict
 * reader (p->bail) or for a duplicate member (named in *dup). */
static int scan_line(struct scan *p, const char **dup)
{
	mqtx_buf_reset(&p->scratch);
	for (int f = 0; f < F__COUNT; f++)
		p->v[f].type = V_NONE;
	p->pos = 0;
	ws(p);
	if (p->pos >= p->len || p->s[p->pos] != '{')
		goto bail;
	p->pos++;
	ws(p);
	if (p->pos < p->len && p->s[p->pos] == '}') {
		p->pos++;
		goto end;
	}
	for (;;) {
		ws(p);
		if (p->pos >= p->len || p->s[p->pos] != '"')
			goto bail;
		size_t nstart = string(p);
		if (nstart == (size_t)-1)
			goto bail;
		size_t nlen = p->scratch.len - nstart;
		int f = field_of(p->scratch.data + nstart, nlen);
		p->scratch.len = nstart; /* the name is not kept */
		ws(p);
		if (p->pos >= p->len || p->s[p->pos] != ':')
			goto bail;
		p->pos++;
		ws(p);
		if (p->pos >= p->len)
			goto bail;
		struct val v = {V_OTHER, NULL, 0};
		char c = p->s[p->pos];
		if (c == '"') {
			size_t st = string(p);
			if (st == (size_t)-1)
				goto bail;
			v.type = V_STR;
			v.len = p->scratch.len - st;
			if (f >= 0)
				p->off[f] = st;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t st = p->pos;
			if (!number(p))
				goto bail;
			v.type = V_NUM;
			v.s = p->s + st;
			v.len = p->pos - st;
		} else if (word(p, "null")) {
			v.type = V_NULL;
		} else if (word(p, "true") || word(p, "false")) {
			v.type = V_BOOL;
		} else {
			goto bail; /* nested or broken */
		}
		if (f >= 0) {
			if (p->v[f].type != V_NONE) {
				*dup = field_names[f];
				return -1;
			}
			p->v[f] = v;
		}
		ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == '}') {
			p->pos++;
			break;
		}
		goto bail;
	}
end:
	ws(p);
	if (p->pos != p->len)
		goto bail;
	/* string values point into scratch, which may have moved while growing */
	for (int f = 0; f < F__COUNT; f++)
		if (p->v[f].type == V_STR)
			p->v[f].s = p->scratch.data + p->off[f];
	return 0;
bail:
	p->bail = true;
	return -1;
}

/* The same fields from a tree (the strict reader's path). */
static int from_tree(struct scan *p, const struct mqtx_json *obj, const char **dup)
{
	for (int f = 0; f < F__COUNT; f++)
		p->v[f].type = V_NONE;
	for (size_t i = 0; i < obj->count; i++) {
		int f = field_of(obj->keys[i], obj->key_lens[i]);
		if (f < 0)
			continue;
		if (p->v[f].type != V_NONE) {
			*dup = field_names[f];
			return -1;
		}
		const struct mqtx_json *v = obj->items[i];
		struct val *o = &p->v[f];
		switch (v->type) {
		case MQTX_JSON_NULL: o->type = V_NULL; break;
		case MQTX_JSON_STRING:
			o->type = V_STR;
			o->s = v->str;
			o->len = v->len;
			break;
		case MQTX_JSON_NUMBER:
			o->type = V_NUM;
			o->s = v->str;
			o->len = strlen(v->str);
			break;
		case MQTX_JSON_BOOL: o->type = V_BOOL; break;
		default: o->type = V_OTHER; break;
		}
	}
	return 0;
}

struct reader {
	struct audit_ctx *c;
	const char *name; /* "stdin" or the path */
	int64_t line;
	struct scan sc;
	int64_t now_us;
};

static int bad(struct reader *r, struct mqtx_err *err, const char *fmt, const char *what)
{
	char msg[1200];
	snprintf(msg, sizeof(msg), fmt, what);
	return mqtx_err_set(err, MQTX_E_INPUT, "%.200s:%lld: %.700s", r->name, (long long)r->line, msg);
}

static bool int_of(const struct val *v, int64_t *out)
{
	if (v->type == V_NUM || v->type == V_STR)
		return mqtx_parse_i64n(v->s, v->len, out);
	return false;
}

static int use_fields(struct reader *r, struct mqtx_err *err)
{
	struct val *v = r->sc.v;
	struct mqtx_read_record d = {.partition = -1,
				     .offset = r->line,
				     .ts_us = MQTX_AUDIT_NO_TS,
				     .redelivery_count = -1};
	if (v[F_KEY].type == V_NONE)
		return bad(r, err, "no \"%s\" member (each line needs the delivery's idempotency key)", "key");
	if (v[F_KEY].type != V_STR || v[F_KEY].len == 0)
		return bad(r, err, "\"%s\" must be a non-empty string", "key");
	d.key = v[F_KEY].s;
	d.key_len = v[F_KEY].len;
	if (v[F_OKEY].type == V_STR) {
		d.ordering_key = v[F_OKEY].s;
		d.ordering_key_len = v[F_OKEY].len;
	} else if (v[F_OKEY].type != V_NONE && v[F_OKEY].type != V_NULL) {
		return bad(r, err, "\"%s\" must be a string or null", "ordering_key");
	}
	if (v[F_ID].type != V_NONE && v[F_ID].type != V_NULL && (!int_of(&v[F_ID], &d.id) || d.id < 1))
		return bad(r, err, "\"%s\" must be a positive whole number (the outbox id) or null", "id");
	if (v[F_RC].type != V_NONE && v[F_RC].type != V_NULL &&
	    (!int_of(&v[F_RC], &d.redelivery_count) || d.redelivery_count < 0))
		return bad(r, err, "\"%s\" must be a whole number from 0 or null", "redelivery_count");
	if (v[F_TS].type == V_STR) {
		char tmp[64];
		struct mqtx_err e;
		if (v[F_TS].len >= sizeof(tmp))
			return bad(r, err, "\"%s\" is not an RFC 3339 time", "ts");
		memcpy(tmp, v[F_TS].s, v[F_TS].len);
		tmp[v[F_TS].len] = '\0';
		if (mqtx_audit_parse_time(tmp, "ts", r->now_us, &d.ts_us, &e) < 0 || strchr(tmp, '-') == NULL)
			return bad(r, err,
				   "\"%s\" is not an RFC 3339 time (2024-05-01T12:00:00.123Z) nor milliseconds since 1970",
				   "ts");
	} else if (v[F_TS].type == V_NUM) {
		int64_t ms;
		if (!mqtx_parse_i64n(v[F_TS].s, v[F_TS].len, &ms) || ms < 0 ||
		    ms > 253402300799999) /* up to year 9999 */
			return bad(r, err, "\"%s\" as a number must be whole milliseconds since 1970", "ts");
		d.ts_us = ms * 1000;
	} else if (v[F_TS].type != V_NONE && v[F_TS].type != V_NULL) {
		return bad(r, err, "\"%s\" must be a time string, milliseconds since 1970, or null", "ts");
	}
	return audit_emit(r->c->sink, &d, err);
}

static int one_line(struct reader *r, const char *s, size_t n, struct mqtx_err *err)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == n)
		return 0; /* blank lines are fine */
	r->sc.s = s;
	r->sc.len = n;
	r->sc.bail = false;
	const char *dup = NULL;
	if (scan_line(&r->sc, &dup) == 0)
		return use_fields(r, err);
	if (dup != NULL)
		return bad(r, err, "member \"%s\" given twice", dup);
	/* the strict reader decides, and names the byte when it is broken */
	struct mqtx_err e;
	struct mqtx_json *j = mqtx_json_parse(s, n, &e);
	if (j == NULL)
		return bad(r, err, "%s", e.msg);
	int rc;
	if (j->type != MQTX_JSON_OBJECT)
		rc = bad(r, err, "expected a JSON object per line, got %s",
			 j->type == MQTX_JSON_ARRAY    ? "an array"
			 : j->type == MQTX_JSON_STRING ? "a string"
						       : "a scalar");
	else if (from_tree(&r->sc, j, &dup) < 0)
		rc = bad(r, err, "member \"%s\" given twice", dup);
	else
		rc = use_fields(r, err);
	mqtx_json_free(j);
	return rc;
}

int audit_read_jsonl(struct audit_ctx *c, const char *path, struct mqtx_err *err)
{
	bool is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	struct reader r = {.c = c, .name = is_stdin ? "stdin" : path, .now_us = mqtx_wall_ms() * 1000};
	c->rep->kind = "jsonl";
	c->rep->position = "line";
	if (fd < 0)
		return mqtx_err_set(err, MQTX_E_IO, "cannot open '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return mqtx_err_set(err, MQTX_E_IO, "'%s' is a directory, not a JSONL file", path);
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

	char *buf = mqtx_xmalloc(READ_CHUNK + MAX_LINE + 1);
	size_t have = 0; /* bytes of an unfinished line at the start of buf */
	int rc = 0;
	bool eof = false;
	while (!eof && rc == 0) {
		ssize_t got = read(fd, buf + have, READ_CHUNK);
		if (got < 0) {
			if (errno == EINTR && (c->o->stop == NULL || !*c->o->stop))
				continue;
			if (errno == EINTR)
				break;
			rc = mqtx_err_set(err, MQTX_E_IO, "cannot read %s: %s", r.name, strerror(errno));
			break;
		}
		if (got == 0)
			eof = true;
		size_t end = have + (size_t)got;
		size_t start = 0;
		for (;;) {
			char *nl = memchr(buf + start, '\n', end - start);
			if (nl == NULL)
				break;
			r.line++;
			if ((rc = one_line(&r, buf + start, (size_t)(nl - (buf + start)), err)) < 0)
				break;
			start = (size_t)(nl - buf) + 1;
		}
		if (rc < 0)
			break;
		have = end - start;
		if (eof && have > 0) { /* a last line without a newline */
			r.line++;
			rc = one_line(&r, buf + start, have, err);
			break;
		}
		if (have > MAX_LINE) {
			r.line++;
			rc = bad(&r, err, "line longer than %s", "1 MiB");
			break;
		}
		memmove(buf, buf + start, have);
		if (c->o->stop != NULL && *c->o->stop) {
			c->rep->stopped = true;
			break;
		}
	}
	free(buf);
	mqtx_buf_free(&r.sc.scratch);
	if (!is_stdin)
		close(fd);
	if (rc == 0)
		snprintf(c->rep->detail, sizeof(c->rep->detail), "%lld line(s)%s", (long long)r.line,
			 c->rep->stopped ? ", stopped by a signal" : "");
	return rc;
}
