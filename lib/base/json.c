/* Small strict JSON reader and writer helpers (see json.h). */
#include "base/json.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *s;
	size_t len;
	size_t pos;
	int depth;
	struct mqtx_err *err;
};

static struct mqtx_json *parse_value(struct parser *p);

static int perr(struct parser *p, const char *what)
{
	return mqtx_err_set(p->err, MQTX_E_INPUT, "invalid JSON at byte %zu: %s", p->pos + 1, what);
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static struct mqtx_json *new_value(enum mqtx_json_type t)
{
	struct mqtx_json *v = mqtx_xcalloc(1, sizeof(*v));
	v->type = t;
	return v;
}

static int hex4(struct parser *p, unsigned *out)
{
	if (p->pos + 4 > p->len)
		return perr(p, "truncated \\u escape");
	if (mqtx_hex4(p->s + p->pos, out) < 0) {
		while (isxdigit((unsigned char)p->s[p->pos]))
			p->pos++;
		p->pos++; /* the position reported is just past the bad digit */
		return perr(p, "bad hex digit in \\u escape");
	}
	p->pos += 4;
	return 0;
}

static int parse_string_raw(struct parser *p, struct mqtx_buf *out)
{
	p->pos++; /* opening quote */
	for (;;) {
		if (p->pos >= p->len)
			return perr(p, "unterminated string");
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->pos++;
			if (out->data == NULL)
				mqtx_buf_add(out, "", 0);
			return 0;
		}
		if (c < 0x20)
			return perr(p, "control character in string");
		if (c == '\\') {
			p->pos++;
			if (p->pos >= p->len)
				return perr(p, "unterminated escape");
			char e = p->s[p->pos++];
			switch (e) {
			case '"': mqtx_buf_addc(out, '"'); break;
			case '\\': mqtx_buf_addc(out, '\\'); break;
			case '/': mqtx_buf_addc(out, '/'); break;
			case 'b': mqtx_buf_addc(out, '\b'); break;
			case 'f': mqtx_buf_addc(out, '\f'); break;
			case 'n': mqtx_buf_addc(out, '\n'); break;
			case 'r': mqtx_buf_addc(out, '\r'); break;
			case 't': mqtx_buf_addc(out, '\t'); break;
			case 'u': {
				unsigned cp;
				if (hex4(p, &cp) < 0)
					return -1;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					unsigned lo;
					if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
						return perr(p, "unpaired surrogate in \\u escape");
					p->pos += 2;
					if (hex4(p, &lo) < 0)
						return -1;
					if (lo < 0xDC00 || lo > 0xDFFF)
						return perr(p, "unpaired surrogate in \\u escape");
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
					return perr(p, "unpaired surrogate in \\u escape");
				}
				mqtx_buf_add_utf8(out, cp);
				break;
			}
			default: p->pos--; return perr(p, "unknown escape");
			}
			continue;
		}
		size_t n = mqtx_utf8_seq((const unsigned char *)p->s + p->pos, p->len - p->pos);
		if (n == 0)
			return perr(p, "invalid UTF-8 in string");
		mqtx_buf_add(out, p->s + p->pos, n);
		p->pos += n;
	}
}

static struct mqtx_json *parse_string(struct parser *p)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	if (parse_string_raw(p, &b) < 0) {
		mqtx_buf_free(&b);
		return NULL;
	}
	struct mqtx_json *v = new_value(MQTX_JSON_STRING);
	v->len = b.len;
	v->str = mqtx_buf_detach(&b);
	return v;
}

static struct mqtx_json *parse_number(struct parser *p)
{
	size_t start = p->pos;
	const char *s = p->s;
	if (p->pos < p->len && s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len)
		goto bad;
	if (s[p->pos] == '0') {
		p->pos++;
	} else if (s[p->pos] >= '1' && s[p->pos] <= '9') {
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	} else {
		goto bad;
	}
	if (p->pos < p->len && s[p->pos] == '.') {
		p->pos++;
		if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
			goto bad;
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
			goto bad;
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	}
	struct mqtx_json *v = new_value(MQTX_JSON_NUMBER);
	v->len = p->pos - start;
	v->str = mqtx_xstrndup(s + start, v->len);
	v->number = strtod(v->str, NULL);
	return v;
bad:
	perr(p, "malformed number");
	return NULL;
}

static int literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return perr(p, "unexpected character");
	p->pos += n;
	return 0;
}

static void push_item(struct mqtx_json *c, struct mqtx_json *item, char *key, size_t key_len)
{
	if ((c->count & (c->count - 1)) == 0) { /* grow at powers of two */
		size_t cap = c->count ? c->count * 2 : 4;
		c->items = mqtx_xrealloc(c->items, cap * sizeof(*c->items));
		if (c->type == MQTX_JSON_OBJECT) {
			c->keys = mqtx_xrealloc(c->keys, cap * sizeof(*c->keys));
			c->key_lens = mqtx_xrealloc(c->key_lens, cap * sizeof(*c->key_lens));
		}
	}
	c->items[c->count] = item;
	if (c->type == MQTX_JSON_OBJECT) {
		c->keys[c->count] = key;
		c->key_lens[c->count] = key_len;
	}
	c->count++;
}

static struct mqtx_json *parse_container(struct parser *p, int is_object)
{
	struct mqtx_json *c = new_value(is_object ? MQTX_JSON_OBJECT : MQTX_JSON_ARRAY);
	char close = is_object ? '}' : ']';

	if (++p->depth > 64) {
		perr(p, "nesting deeper than 64 levels");
		goto fail;
	}
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		p->depth--;
		return c;
	}
	for (;;) {
		char *key = NULL;
		size_t key_len = 0;
		skip_ws(p);
		if (is_object) {
			if (p->pos >= p->len || p->s[p->pos] != '"') {
				perr(p, "expected a member name in quotes");
				goto fail;
			}
			struct mqtx_buf kb = MQTX_BUF_INIT;
			if (parse_string_raw(p, &kb) < 0) {
				mqtx_buf_free(&kb);
				goto fail;
			}
			key_len = kb.len;
			key = mqtx_buf_detach(&kb);
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':') {
				free(key);
				perr(p, "expected ':' after member name");
				goto fail;
			}
			p->pos++;
		}
		struct mqtx_json *item = parse_value(p);
		if (item == NULL) {
			free(key);
			goto fail;
		}
		push_item(c, item, key, key_len);
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close) {
			p->pos++;
			p->depth--;
			return c;
		}
		perr(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
		goto fail;
	}
fail:
	mqtx_json_free(c);
	return NULL;
}

static struct mqtx_json *parse_value(struct parser *p)
{
	skip_ws(p);
	if (p->pos >= p->len) {
		perr(p, "unexpected end of input");
		return NULL;
	}
	char c = p->s[p->pos];
	struct mqtx_json *v;
	switch (c) {
	case '{': return parse_container(p, 1);
	case '[': return parse_container(p, 0);
	case '"': return parse_string(p);
	case 't':
	case 'f':
		if (literal(p, c == 't' ? "true" : "false") < 0)
			return NULL;
		v = new_value(MQTX_JSON_BOOL);
		v->boolean = c == 't';
		return v;
	case 'n':
		if (literal(p, "null") < 0)
			return NULL;
		return new_value(MQTX_JSON_NULL);
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return parse_number(p);
		perr(p, "unexpected character");
		return NULL;
	}
}

struct mqtx_json *mqtx_json_parse(const char *text, size_t len, struct mqtx_err *err)
{
	struct parser p = {.s = text, .len = len, .pos = 0, .depth = 0, .err = err};
	struct mqtx_json *v = parse_value(&p);
	if (v == NULL)
		return NULL;
	skip_ws(&p);
	if (p.pos != p.len) {
		perr(&p, "trailing characters after the value");
		mqtx_json_free(v);
		return NULL;
	}
	return v;
}

void mqtx_json_free(struct mqtx_json *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->count; i++) {
		mqtx_json_free(v->items[i]);
		if (v->keys != NULL)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->key_lens);
	free(v->str);
	free(v);
}

const struct mqtx_json *mqtx_json_get(const struct mqtx_json *obj, const char *key)
{
	if (obj == NULL || obj->type != MQTX_JSON_OBJECT)
		return NULL;
	size_t kl = strlen(key);
	for (size_t i = obj->count; i-- > 0;) /* last duplicate wins, as in jsonb */
		if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0)
			return obj->items[i];
	return NULL;
}

void mqtx_json_add_str(struct mqtx_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	mqtx_buf_addc(b, '"');
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			mqtx_buf_add(b, e, 2);
			i++;
		} else if (c < 0x20) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			if (c == '\n')
				mqtx_buf_adds(b, "\\n");
			else if (c == '\t')
				mqtx_buf_adds(b, "\\t");
			else if (c == '\r')
				mqtx_buf_adds(b, "\\r");
			else
				mqtx_buf_add(b, e, 6);
			i++;
		} else if (c < 0x80) {
			mqtx_buf_addc(b, (char)c);
			i++;
		} else {
			size_t n = mqtx_utf8_seq((const unsigned char *)s + i, len - i);
			if (n == 0) {
				mqtx_buf_adds(b, "\xEF\xBF\xBD");
				i++;
			} else {
				mqtx_buf_add(b, s + i, n);
				i += n;
			}
		}
	}
	mqtx_buf_addc(b, '"');
}

void mqtx_json_add_cstr(struct mqtx_buf *b, const char *s)
{
	if (s == NULL)
		mqtx_buf_adds(b, "null");
	else
		mqtx_json_add_str(b, s, strlen(s));
}

void mqtx_json_write(struct mqtx_buf *b, const struct mqtx_json *v)
{
	switch (v->type) {
	case MQTX_JSON_NULL: mqtx_buf_adds(b, "null"); break;
	case MQTX_JSON_BOOL: mqtx_buf_adds(b, v->boolean ? "true" : "false"); break;
	case MQTX_JSON_NUMBER: mqtx_buf_add(b, v->str, v->len); break;
	case MQTX_JSON_STRING: mqtx_json_add_str(b, v->str, v->len); break;
	case MQTX_JSON_ARRAY:
	case MQTX_JSON_OBJECT:
		mqtx_buf_addc(b, v->type == MQTX_JSON_ARRAY ? '[' : '{');
		for (size_t i = 0; i < v->count; i++) {
			if (i > 0)
				mqtx_buf_addc(b, ',');
			if (v->type == MQTX_JSON_OBJECT) {
				mqtx_json_add_str(b, v->keys[i], v->key_lens[i]);
				mqtx_buf_addc(b, ':');
			}
			mqtx_json_write(b, v->items[i]);
		}
		mqtx_buf_addc(b, v->type == MQTX_JSON_ARRAY ? ']' : '}');
		break;
	}
}

char *mqtx_json_header_text(const struct mqtx_json *v, size_t *len)
{
	struct mqtx_buf val = MQTX_BUF_INIT;
	if (v->type == MQTX_JSON_STRING)
		mqtx_buf_add(&val, v->str, v->len);
	else if (v->type == MQTX_JSON_BOOL)
		mqtx_buf_adds(&val, v->boolean ? "true" : "false");
	else
		mqtx_json_write(&val, v);
	*len = val.len;
	return mqtx_buf_detach(&val);
}
