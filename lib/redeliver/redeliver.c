/* mqtx redeliver (see redeliver.h): the --where parser, the selection SQL,
 * re-sending, reviving dead rows and collecting acks. Identifiers come
 * from configuration and are quoted; every value an operator types is a
 * parameter. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "redeliver/redeliver.h"

#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/broker.h"
#include "base/failpoint.h"
#include "base/log.h"
#include "db/outbox.h"
#include "db/pg.h"
#include "base/util.h"

/* ---- --where ---- */

enum wtype { W_INT, W_TEXT, W_TIME };

static const struct {
	const char *name;
	enum mqtx_col col;
	enum wtype type;
} wcols[] = {
	{"id", MQTX_COL_ID, W_INT},
	{"idempotency_key", MQTX_COL_KEY, W_TEXT},
	{"destination", MQTX_COL_DESTINATION, W_TEXT},
	{"routing_key", MQTX_COL_ROUTING_KEY, W_TEXT},
	{"ordering_key", MQTX_COL_ORDERING_KEY, W_TEXT},
	{"content_type", MQTX_COL_CONTENT_TYPE, W_TEXT},
	{"status", MQTX_COL_STATUS, W_TEXT},
	{"attempts", MQTX_COL_ATTEMPTS, W_INT},
	{"last_error", MQTX_COL_LAST_ERROR, W_TEXT},
	{"created_at", MQTX_COL_CREATED_AT, W_TIME},
	{"available_at", MQTX_COL_AVAILABLE_AT, W_TIME},
	{"sent_at", MQTX_COL_SENT_AT, W_TIME},
	{"redelivery_count", MQTX_COL_REDELIVERY_COUNT, W_INT},
	{"redelivered_at", MQTX_COL_REDELIVERED_AT, W_TIME},
};
#define NWCOLS (sizeof(wcols) / sizeof(wcols[0]))

const char *mqtx_where_columns(void)
{
	return "id, idempotency_key, destination, routing_key, ordering_key, content_type, status, attempts, "
	       "last_error, created_at, available_at, sent_at, redelivery_count, redelivered_at";
}

static enum wtype col_type(enum mqtx_col c)
{
	for (size_t i = 0; i < NWCOLS; i++)
		if (wcols[i].col == c)
			return wcols[i].type;
	return W_TEXT;
}

static const char *col_name(enum mqtx_col c)
{
	for (size_t i = 0; i < NWCOLS; i++)
		if (wcols[i].col == c)
			return wcols[i].name;
	return "?";
}

struct lexer {
	const char *text;
	size_t pos;
};

static void skip_space(struct lexer *lx)
{
	while (lx->text[lx->pos] == ' ' || lx->text[lx->pos] == '\t' || lx->text[lx->pos] == '\n' ||
	       lx->text[lx->pos] == '\r')
		lx->pos++;
}

static bool is_word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* A bare word: letters, digits, _ . : + - (numbers, simple values). */
static bool is_bare_char(char c)
{
	return is_word_char(c) || c == '.' || c == ':' || c == '+' || c == '-';
}

/* Shows what is at pos, for messages: at most 20 printable bytes. */
static void near(const struct lexer *lx, char *out, size_t n)
{
	const char *p = lx->text + lx->pos;
	if (*p == '\0') {
		snprintf(out, n, "the end");
		return;
	}
	size_t k = 0;
	out[k++] = '\'';
	for (; *p != '\0' && k + 5 < n && k < 21; p++)
		out[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	out[k++] = '\'';
	out[k] = '\0';
}

static int where_err(const struct lexer *lx, struct mqtx_err *err, const char *what)
{
	char at[32];
	near(lx, at, sizeof(at));
	return mqtx_err_set(err, MQTX_E_USAGE, "--where: %s at offset %zu (found %s)", what, lx->pos, at);
}

/* Case-insensitive keyword at pos, ending at a word boundary. */
static bool keyword(struct lexer *lx, const char *kw)
{
	size_t n = strlen(kw);
	if (strncasecmp(lx->text + lx->pos, kw, n) != 0 || is_word_char(lx->text[lx->pos + n]))
		return false;
	lx->pos += n;
	return true;
}

static int parse_value(struct lexer *lx, char **out, struct mqtx_err *err)
{
	const char *t = lx->text;
	if (t[lx->pos] == '\'') {
		struct mqtx_buf b = MQTX_BUF_INIT;
		size_t start = lx->pos++;
		for (;;) {
			char c = t[lx->pos];
			if (c == '\0') {
				mqtx_buf_free(&b);
				lx->pos = start;
				return where_err(lx, err, "unterminated quoted value");
			}
			lx->pos++;
			if (c == '\'') {
				if (t[lx->pos] != '\'')
					break;
				lx->pos++;
			}
			mqtx_buf_addc(&b, c);
		}
		*out = b.data != NULL ? mqtx_buf_detach(&b) : mqtx_xstrdup("");
		return 0;
	}
	size_t start = lx->pos;
	while (is_bare_char(t[lx->pos]))
		lx->pos++;
	if (lx->pos == start)
		return where_err(lx, err, "expected a value ('quoted' or a bare number or word)");
	*out = mqtx_xstrndup(t + start, lx->pos - start);
	return 0;
}

static bool valid_int(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	(void)v;
	return *s != '\0' && *end == '\0' && errno == 0 && !isspace((unsigned char)*s);
}

static int parse_cond(struct lexer *lx, struct mqtx_where_cond *c, struct mqtx_err *err)
{
	skip_space(lx);
	size_t start = lx->pos;
	while (is_word_char(lx->text[lx->pos]))
		lx->pos++;
	if (lx->pos == start)
		return where_err(lx, err, "expected a column name");
	size_t n = lx->pos - start;
	bool found = false;
	for (size_t i = 0; i < NWCOLS && !found; i++) {
		if (strlen(wcols[i].name) == n && strncasecmp(wcols[i].name, lx->text + start, n) == 0) {
			c->col = wcols[i].col;
			found = true;
		}
	}
	if (!found) {
		lx->pos = start;
		return mqtx_err_set(err, MQTX_E_USAGE, "--where: column '%.*s' at offset %zu cannot be used (allowed: %s)",
				    (int)(n > 64 ? 64 : n), lx->text + start, start, mqtx_where_columns());
	}
	enum wtype type = col_type(c->col);
	skip_space(lx);
	const char *t = lx->text + lx->pos;
	size_t oplen = 0;
	if (keyword(lx, "IS")) {
		skip_space(lx);
		bool not = keyword(lx, "NOT");
		skip_space(lx);
		if (!keyword(lx, "NULL"))
			return where_err(lx, err, not ? "expected NULL after IS NOT" : "expected NULL or NOT NULL after IS");
		c->op = not ? MQTX_OP_NOT_NULL : MQTX_OP_IS_NULL;
		c->value = NULL;
		return 0;
	} else if (keyword(lx, "LIKE")) {
		if (type != W_TEXT) {
			lx->pos -= 4;
			return where_err(lx, err, "LIKE needs a text column");
		}
		c->op = MQTX_OP_LIKE;
	} else if (strncmp(t, "<=", 2) == 0) {
		c->op = MQTX_OP_LE, oplen = 2;
	} else if (strncmp(t, ">=", 2) == 0) {
		c->op = MQTX_OP_GE, oplen = 2;
	} else if (strncmp(t, "!=", 2) == 0 || strncmp(t, "<>", 2) == 0) {
		c->op = MQTX_OP_NE, oplen = 2;
	} else if (*t == '=') {
		c->op = MQTX_OP_EQ, oplen = 1;
	} else if (*t == '<') {
		c->op = MQTX_OP_LT, oplen = 1;
	} else if (*t == '>') {
		c->op = MQTX_OP_GT, oplen = 1;
	} else {
		return where_err(lx, err, "expected an operator (=, !=, <>, <, <=, >, >=, LIKE, IS [NOT] NULL)");
	}
	lx->pos += oplen;
	skip_space(lx);
	size_t vpos = lx->pos;
	if (parse_value(lx, &c->value, err) < 0)
		return -1;
	if (type == W_INT && !valid_int(c->value)) {
		free(c->value);
		c->value = NULL;
		lx->pos = vpos;
		return where_err(lx, err, "expected an integer");
	}
	return 0;
}

int mqtx_where_parse(struct mqtx_where *w, const char *text, struct mqtx_err *err)
{
	struct lexer lx = {.text = text, .pos = 0};
	size_t first = w->n;
	for (;;) {
		struct mqtx_where_cond c = {0};
		if (parse_cond(&lx, &c, err) < 0)
			goto fail;
		w->conds = mqtx_xrealloc(w->conds, (w->n + 1) * sizeof(*w->conds));
		w->conds[w->n++] = c;
		skip_space(&lx);
		if (text[lx.pos] == '\0')
			return 0;
		if (!keyword(&lx, "AND")) {
			where_err(&lx, err, "expected AND or the end (only AND joins conditions)");
			goto fail;
		}
	}
fail:
	/* all or nothing: drop what this text added */
	for (size_t i = first; i < w->n; i++)
		free(w->conds[i].value);
	w->n = first;
	return -1;
}

void mqtx_where_free(struct mqtx_where *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->conds[i].value);
	free(w->conds);
	w->conds = NULL;
	w->n = 0;
}

/* ---- selection pieces ---- */

static int parse_id(const char *s, size_t n, int64_t *out)
{
	char buf[32];
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	uint64_t v;
	struct mqtx_err e;
	if (mqtx_parse_uint(buf, INT64_MAX, &v, &e) < 0)
		return -1;
	*out = (int64_t)v;
	return 0;
}

int mqtx_id_list_parse(struct mqtx_selection *s, const char *text, struct mqtx_err *err)
{
	const char *p = text;
	size_t first = s->n_ids;
	for (;;) {
		size_t n = strcspn(p, ",");
		const char *dash = memchr(p, '-', n);
		struct mqtx_id_range r;
		int bad;
		if (dash != NULL)
			bad = parse_id(p, (size_t)(dash - p), &r.lo) < 0 ||
			      parse_id(dash + 1, n - (size_t)(dash - p) - 1, &r.hi) < 0 || r.hi < r.lo;
		else
			bad = parse_id(p, n, &r.lo) < 0, r.hi = r.lo;
		if (bad) {
			s->n_ids = first;
			return mqtx_err_set(err, MQTX_E_USAGE,
					    "--id: '%.*s' is not an id or a range LOW-HIGH (expected a list like 1,5,9 or 100-200)",
					    (int)(n > 60 ? 60 : n), p);
		}
		s->ids = mqtx_xrealloc(s->ids, (s->n_ids + 1) * sizeof(*s->ids));
		s->ids[s->n_ids++] = r;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

void mqtx_list_add(char ***list, size_t *n, const char *v)
{
	*list = mqtx_xrealloc(*list, (*n + 1) * sizeof(char *));
	(*list)[(*n)++] = mqtx_xstrdup(v);
}

void mqtx_time_bound_set(struct mqtx_time_bound *t, const char *text)
{
	int64_t ms;
	struct mqtx_err e;
	free(t->at);
	t->at = NULL;
	t->set = true;
	t->ago_ms = -1;
	if (mqtx_parse_duration(text, &ms, &e) == 0)
		t->ago_ms = ms;
	else
		t->at = mqtx_xstrdup(text);
}

static void list_free(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

void mqtx_selection_free(struct mqtx_selection *s)
{
	free(s->ids);
	list_free(s->keys, s->n_keys);
	list_free(s->ordering_keys, s->n_ordering_keys);
	list_free(s->destinations, s->n_destinations);
	list_free(s->statuses, s->n_statuses);
	free(s->since.at);
	free(s->until.at);
	mqtx_where_free(&s->where);
	memset(s, 0, sizeof(*s));
}

int mqtx_rate_parse(const char *text, double *per_sec, struct mqtx_err *err)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	double div = 1;
	if (end != text && errno == 0) {
		if (strcmp(end, "") == 0 || strcmp(end, "/s") == 0)
			div = 1;
		else if (strcmp(end, "/m") == 0 || strcmp(end, "/min") == 0)
			div = 60;
		else if (strcmp(end, "/h") == 0)
			div = 3600;
		else
			end = (char *)text;
	}
	if (end == text || errno != 0 || !(v >= 0) || v > 1e9 || isspace((unsigned char)text[0]))
		return mqtx_err_set(err, MQTX_E_USAGE, "invalid rate '%s' (expected N, N/s, N/m or N/h; 0: no limit)", text);
	*per_sec = v / div;
	return 0;
}

/* ---- SQL building ---- */

/* A statement and its parameters (owned text). */
struct stmt {
	struct mqtx_buf sql;
	char **params;
	int n;
};

static int param(struct stmt *s, const char *v)
{
	s->params = mqtx_xrealloc(s->params, (size_t)(s->n + 1) * sizeof(char *));
	s->params[s->n++] = v != NULL ? mqtx_xstrdup(v) : NULL;
	return s->n;
}

static int param_i64(struct stmt *s, int64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return param(s, buf);
}

/* A text[] literal: every element double-quoted, " and \ escaped. */
static char *text_array(char *const *v, size_t n)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			mqtx_buf_addc(&b, ',');
		mqtx_buf_addc(&b, '"');
		for (const char *p = v[i]; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				mqtx_buf_addc(&b, '\\');
			mqtx_buf_addc(&b, *p);
		}
		mqtx_buf_addc(&b, '"');
	}
	mqtx_buf_addc(&b, '}');
	return mqtx_buf_detach(&b);
}

static int param_array(struct stmt *s, char *const *v, size_t n)
{
	char *a = text_array(v, n);
	int k = param(s, a);
	free(a);
	return k;
}

static void stmt_free(struct stmt *s)
{
	mqtx_buf_free(&s->sql);
	for (int i = 0; i < s->n; i++)
		free(s->params[i]);
	free(s->params);
	memset(s, 0, sizeof(*s));
}

static PGresult *stmt_exec(PGconn *conn, const struct stmt *s, int format)
{
	return PQexecParams(conn, s->sql.data, s->n, NULL, (const char *const *)s->params, NULL, NULL, format);
}

struct mqtx_redeliver {
	const struct mqtx_config *cfg;
	const struct mqtx_redeliver_opts *o;
	PGconn *pg;
	struct mqtx_outbox *ob;
	struct mqtx_backend *be;
	char *T;           /* "schema"."table" */
	char *completions; /* "schema".mqtx_completions */
	const char *c[MQTX_COL__COUNT];
	bool buckets_agreed; /* relay.ordering_buckets announced (mqtx_outbox_agree_buckets) */
};

/* t.<column>, or an error naming the unmapped column. */
static int col(struct mqtx_redeliver *r, struct mqtx_buf *b, enum mqtx_col c, const char *why, struct mqtx_err *err)
{
	if (c == MQTX_COL_KEY) {
		mqtx_outbox_key_sql(r->ob, b, "t");
		return 0;
	}
	if (r->c[c] == NULL)
		return mqtx_err_set(err, MQTX_E_CONFIG, "%s needs the column '%s', which this outbox table lacks (outbox.columns.%s is empty)",
				    why, col_name(c), col_name(c));
	mqtx_buf_printf(b, "t.%s", r->c[c]);
	return 0;
}

static const char *op_sql(enum mqtx_where_op op)
{
	switch (op) {
	case MQTX_OP_EQ: return "=";
	case MQTX_OP_NE: return "<>";
	case MQTX_OP_LT: return "<";
	case MQTX_OP_LE: return "<=";
	case MQTX_OP_GT: return ">";
	case MQTX_OP_GE: return ">=";
	case MQTX_OP_LIKE: return "LIKE";
	case MQTX_OP_IS_NULL: return "IS NULL";
	case MQTX_OP_NOT_NULL: return "IS NOT NULL";
	}
	return "=";
}

static int add_time_bound(struct mqtx_redeliver *r, struct stmt *s, const struct mqtx_time_bound *t, const char *cmp,
			  struct mqtx_err *err)
{
	if (!t->set)
		return 0;
	enum mqtx_col c = r->o->sel->time_sent ? MQTX_COL_SENT_AT : MQTX_COL_CREATED_AT;
	mqtx_buf_adds(&s->sql, " AND ");
	if (col(r, &s->sql, c, "--since/--until", err) < 0)
		return -1;
	if (t->ago_ms >= 0)
		mqtx_buf_printf(&s->sql, " %s now() - $%d::int8 * interval '1 millisecond'", cmp, param_i64(s, t->ago_ms));
	else
		mqtx_buf_printf(&s->sql, " %s $%d::timestamptz", cmp, param(s, t->at));
	return 0;
}

/* Appends the selection's conditions (" AND ..."), for row alias t. */
static int add_selection(struct mqtx_redeliver *r, struct stmt *s, struct mqtx_err *err)
{
	const struct mqtx_selection *sel = r->o->sel;
	struct mqtx_buf *b = &s->sql;

	if (sel->n_ids > 0) {
		mqtx_buf_adds(b, " AND (");
		for (size_t i = 0; i < sel->n_ids; i++) {
			int lo = param_i64(s, sel->ids[i].lo);
			if (sel->ids[i].lo == sel->ids[i].hi)
				mqtx_buf_printf(b, "%st.%s = $%d::int8", i ? " OR " : "", r->c[MQTX_COL_ID], lo);
			else
				mqtx_buf_printf(b, "%st.%s BETWEEN $%d::int8 AND $%d::int8", i ? " OR " : "", r->c[MQTX_COL_ID],
						lo, param_i64(s, sel->ids[i].hi));
		}
		mqtx_buf_addc(b, ')');
	}
	if (sel->n_keys > 0) {
		mqtx_buf_adds(b, " AND ");
		mqtx_outbox_key_sql(r->ob, b, "t");
		mqtx_buf_printf(b, " = ANY($%d::text[])", param_array(s, sel->keys, sel->n_keys));
	}
	if (sel->n_ordering_keys > 0) {
		mqtx_buf_adds(b, " AND ");
		if (col(r, b, MQTX_COL_ORDERING_KEY, "--ordering-key", err) < 0)
			return -1;
		mqtx_buf_printf(b, "::text = ANY($%d::text[])", param_array(s, sel->ordering_keys, sel->n_ordering_keys));
	}
	if (sel->n_destinations > 0)
		mqtx_buf_printf(b, " AND t.%s::text = ANY($%d::text[])", r->c[MQTX_COL_DESTINATION],
				param_array(s, sel->destinations, sel->n_destinations));
	if (sel->n_statuses > 0)
		mqtx_buf_printf(b, " AND t.%s::text = ANY($%d::text[])", r->c[MQTX_COL_STATUS],
				param_array(s, sel->statuses, sel->n_statuses));
	if (add_time_bound(r, s, &sel->since, ">=", err) < 0 || add_time_bound(r, s, &sel->until, "<", err) < 0)
		return -1;
	for (size_t i = 0; i < sel->where.n; i++) {
		const struct mqtx_where_cond *c = &sel->where.conds[i];
		char why[64];
		snprintf(why, sizeof(why), "--where on %s", col_name(c->col));
		mqtx_buf_adds(b, " AND ");
		if (col(r, b, c->col, why, err) < 0)
			return -1;
		enum wtype type = col_type(c->col);
		if (c->op == MQTX_OP_IS_NULL || c->op == MQTX_OP_NOT_NULL) {
			mqtx_buf_printf(b, " %s", op_sql(c->op));
			continue;
		}
		if (type == W_TEXT)
			mqtx_buf_adds(b, "::text");
		mqtx_buf_printf(b, " %s $%d::%s", op_sql(c->op), param(s, c->value),
				type == W_INT ? "int8" : type == W_TIME ? "timestamptz" : "text");
	}
	if (sel->unacked_after_ms >= 0) {
		int p = param_i64(s, sel->unacked_after_ms);
		/* redelivered_at >= sent_at: both older than the cutoff, written so the sent_at index can help */
		mqtx_buf_printf(b, " AND t.%s = 'sent' AND ", r->c[MQTX_COL_STATUS]);
		if (col(r, b, MQTX_COL_SENT_AT, "--unacked-after", err) < 0)
			return -1;
		mqtx_buf_printf(b, " < now() - $%d::int8 * interval '1 millisecond'", p);
		mqtx_buf_printf(b, " AND (t.%s IS NULL OR t.%s < now() - $%d::int8 * interval '1 millisecond')",
				r->c[MQTX_COL_REDELIVERED_AT], r->c[MQTX_COL_REDELIVERED_AT], p);
		mqtx_buf_printf(b, " AND NOT EXISTS (SELECT 1 FROM %s c WHERE c.idempotency_key = ", r->completions);
		mqtx_outbox_key_sql(r->ob, b, "t");
		mqtx_buf_addc(b, ')');
		if (sel->max_redeliveries > 0)
			mqtx_buf_printf(b, " AND t.%s < $%d::int8", r->c[MQTX_COL_REDELIVERY_COUNT],
					param_i64(s, sel->max_redeliveries));
	}
	return 0;
}

/* A failed selection query: bad operator input (a timestamp PostgreSQL
 * cannot read, a key that is not valid UTF-8) is a usage error. */
static int select_fail(struct mqtx_redeliver *r, PGresult *res, const char *doing, struct mqtx_err *err)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	bool input = state != NULL && strncmp(state, "22", 2) == 0;
	mqtx_pg_fail(r->pg, res, doing, err);
	if (input) {
		err->kind = MQTX_E_USAGE;
		err->retriable = false;
		mqtx_err_prefix(err, "a selection value was not accepted");
	}
	return -1;
}

/* ---- setting up ---- */

struct mqtx_redeliver *mqtx_redeliver_new(const struct mqtx_config *cfg, const struct mqtx_redeliver_opts *o,
					  struct mqtx_err *err)
{
	struct mqtx_redeliver *r = mqtx_xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->o = o;
	r->pg = mqtx_pg_connect(cfg, o->client_name != NULL ? o->client_name : "mqtx redeliver", err);
	if (r->pg == NULL)
		goto fail;
	r->ob = mqtx_outbox_new(r->pg, cfg, err);
	if (r->ob == NULL)
		goto fail;
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		r->c[c] = mqtx_outbox_col(r->ob, (enum mqtx_col)c);
	r->T = mqtx_xstrdup(mqtx_outbox_qualified(r->ob));
	char *qs = mqtx_pg_ident(r->pg, cfg->outbox_schema);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "%s.mqtx_completions", qs);
	r->completions = mqtx_buf_detach(&b);
	free(qs);
	return r;
fail:
	mqtx_redeliver_free(r);
	return NULL;
}

void mqtx_redeliver_free(struct mqtx_redeliver *r)
{
	if (r == NULL)
		return;
	mqtx_backend_close(r->be);
	mqtx_outbox_free(r->ob);
	if (r->pg != NULL)
		PQfinish(r->pg);
	free(r->T);
	free(r->completions);
	free(r);
}

static int open_broker(struct mqtx_redeliver *r, struct mqtx_err *err)
{
	if (r->be != NULL)
		return 0;
	struct mqtx_backend_opts bo = {
		.mode = MQTX_PUB_CONFIRM,
		.window = (size_t)r->cfg->relay_confirm_window,
		.client_name = r->o->client_name != NULL ? r->o->client_name : "mqtx redeliver",
		.stop = NULL, /* a stop lets the batch in flight finish: it is recorded, not abandoned */
		.stop_grace_ms = r->cfg->relay_shutdown_grace_ms,
	};
	r->be = mqtx_backend_open(r->cfg, &bo, err);
	return r->be == NULL ? -1 : 0;
}

static bool stop_requested(const struct mqtx_redeliver *r)
{
	return r->o->stop != NULL && *r->o->stop != 0;
}

static void progress(struct mqtx_redeliver *r, const struct mqtx_redeliver_stats *st)
{
	if (r->o->progress != NULL)
		r->o->progress(r->o->ctx, st);
}

/* How many more rows --limit allows (INT64_MAX: no limit). */
static int64_t left(const struct mqtx_redeliver *r, const struct mqtx_redeliver_stats *st)
{
	if (r->o->limit <= 0)
		return INT64_MAX;
	return r->o->limit > st->done ? r->o->limit - st->done : 0;
}

/* ---- looking ---- */

int mqtx_redeliver_count(struct mqtx_redeliver *r, int64_t *n, struct mqtx_err *err)
{
	struct stmt s = {0};
	mqtx_buf_printf(&s.sql, "SELECT count(*) FROM (SELECT 1 FROM %s t WHERE true", r->T);
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return -1;
	}
	if (r->o->limit > 0)
		mqtx_buf_printf(&s.sql, " LIMIT $%d::int8", param_i64(&s, r->o->limit));
	mqtx_buf_adds(&s.sql, ") s");
	PGresult *res = stmt_exec(r->pg, &s, 0);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return select_fail(r, res, "cannot count the selected rows", err);
	*n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static void add_text_col(struct mqtx_redeliver *r, struct mqtx_buf *b, enum mqtx_col c, bool time)
{
	if (r->c[c] == NULL)
		mqtx_buf_adds(b, ", NULL::text");
	else if (time)
		mqtx_buf_printf(b, ", to_char(t.%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", r->c[c]);
	else
		mqtx_buf_printf(b, ", t.%s::text", r->c[c]);
}

int mqtx_redeliver_sample(struct mqtx_redeliver *r, size_t n,
			  void (*row)(void *ctx, const struct mqtx_redeliver_row *row), void *ctx, struct mqtx_err *err)
{
	struct stmt s = {0};
	mqtx_buf_printf(&s.sql, "SELECT t.%s::text, ", r->c[MQTX_COL_ID]);
	mqtx_outbox_key_sql(r->ob, &s.sql, "t");
	mqtx_buf_printf(&s.sql, ", t.%s::text, t.%s::text", r->c[MQTX_COL_STATUS], r->c[MQTX_COL_DESTINATION]);
	add_text_col(r, &s.sql, MQTX_COL_ROUTING_KEY, false);
	add_text_col(r, &s.sql, MQTX_COL_ORDERING_KEY, false);
	add_text_col(r, &s.sql, MQTX_COL_ATTEMPTS, false);
	add_text_col(r, &s.sql, MQTX_COL_REDELIVERY_COUNT, false);
	add_text_col(r, &s.sql, MQTX_COL_CREATED_AT, true);
	add_text_col(r, &s.sql, MQTX_COL_SENT_AT, true);
	mqtx_buf_printf(&s.sql, " FROM %s t WHERE true", r->T);
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return -1;
	}
	int64_t lim = (int64_t)n;
	if (r->o->limit > 0 && r->o->limit < lim)
		lim = r->o->limit;
	mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8", r->c[MQTX_COL_ID], param_i64(&s, lim));
	PGresult *res = stmt_exec(r->pg, &s, 0);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return select_fail(r, res, "cannot read the selected rows", err);
	for (int i = 0; i < PQntuples(res); i++) {
#define V(k) (PQgetisnull(res, i, k) ? NULL : PQgetvalue(res, i, k))
		struct mqtx_redeliver_row rw = {
			.id = V(0), .key = V(1), .status = V(2), .destination = V(3), .routing_key = V(4),
			.ordering_key = V(5), .attempts = V(6), .redelivery_count = V(7), .created_at = V(8),
			.sent_at = V(9),
		};
#undef V
		row(ctx, &rw);
	}
	PQclear(res);
	return 0;
}

/* ---- re-sending ---- */

/* A token bucket holding at most a tenth of a second's worth (and at least
 * one), so a rate is kept from the first message on. */
struct bucket {
	double rate, tokens, cap;
	int64_t last;
};

static void bucket_init(struct bucket *b, double rate)
{
	b->rate = rate;
	b->cap = rate / 10 > 1 ? rate / 10 : 1;
	b->tokens = 1;
	b->last = mqtx_now_ms();
}

/* Waits for at least one token; returns how many of want may go now (0 on a stop). */
static size_t bucket_take(struct mqtx_redeliver *r, struct bucket *b, size_t want)
{
	if (b->rate <= 0)
		return want;
	for (;;) {
		int64_t now = mqtx_now_ms();
		b->tokens += (double)(now - b->last) * b->rate / 1000.0;
		if (b->tokens > b->cap)
			b->tokens = b->cap;
		b->last = now;
		if (b->tokens >= 1)
			break;
		if (stop_requested(r))
			return 0;
		int64_t wait = (int64_t)ceil((1 - b->tokens) * 1000.0 / b->rate);
		mqtx_sleep_ms(wait < 1 ? 1 : wait);
	}
	size_t k = (size_t)b->tokens;
	if (k > want)
		k = want;
	b->tokens -= (double)k;
	return k;
}

/* Phase 1: the ordering keys among the next rows, owned, in *keys. */
static int next_keys(struct mqtx_redeliver *r, int64_t cursor, int64_t limit, char ***keys, size_t *n,
		     struct mqtx_err *err)
{
	*keys = NULL;
	*n = 0;
	if (r->c[MQTX_COL_ORDERING_KEY] == NULL)
		return 0;
	struct stmt s = {0};
	mqtx_buf_printf(&s.sql, "SELECT DISTINCT h.k FROM (SELECT t.%s::text AS k FROM %s t WHERE t.%s > $%d::int8",
			r->c[MQTX_COL_ORDERING_KEY], r->T, r->c[MQTX_COL_ID], param_i64(&s, cursor));
	mqtx_buf_printf(&s.sql, " AND t.%s IN ('sent', 'dead')", r->c[MQTX_COL_STATUS]);
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return -1;
	}
	mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8) h WHERE h.k IS NOT NULL", r->c[MQTX_COL_ID],
			param_i64(&s, limit));
	PGresult *res = stmt_exec(r->pg, &s, 0);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return select_fail(r, res, "cannot select rows to re-send", err);
	for (int i = 0; i < PQntuples(res); i++)
		mqtx_list_add(keys, n, PQgetvalue(res, i, 0));
	PQclear(res);
	return 0;
}

/* Column indexes after the message columns in the phase-2 result. */
enum { C_RCOUNT = 9, C_STATUS, C_LOCKED, C_BLOCKED };

static int64_t get_i64(const PGresult *res, int row, int c)
{
	uint64_t v;
	memcpy(&v, PQgetvalue(res, row, c), 8);
	return (int64_t)be64toh(v);
}

static bool get_bool(const PGresult *res, int row, int c)
{
	return !PQgetisnull(res, row, c) && PQgetvalue(res, row, c)[0] != 0;
}

/* Phase 2: locks and reads the next rows. */
static struct mqtx_batch *next_rows(struct mqtx_redeliver *r, int64_t cursor, int64_t limit, char **keys, size_t nkeys,
				    struct mqtx_err *err)
{
	struct stmt s = {0};
	const char *ok = r->c[MQTX_COL_ORDERING_KEY];
	mqtx_buf_adds(&s.sql, "SELECT ");
	mqtx_outbox_msg_columns(r->ob, &s.sql, "t");
	mqtx_buf_printf(&s.sql, ", t.%s::int8, t.%s::text", r->c[MQTX_COL_REDELIVERY_COUNT], r->c[MQTX_COL_STATUS]);
	if (ok != NULL) {
		int k = param_array(&s, keys, nkeys);
		/* whether we hold the key's bucket; whether an earlier row of the key is still pending */
		mqtx_buf_printf(&s.sql, ", (t.%s IS NULL OR t.%s::text = ANY($%d::text[]))", ok, ok, k);
		mqtx_buf_printf(&s.sql,
				", (t.%s IS NOT NULL AND EXISTS (SELECT 1 FROM %s p WHERE p.%s = t.%s AND p.%s = 'pending'"
				" AND p.%s < t.%s))",
				ok, r->T, ok, ok, r->c[MQTX_COL_STATUS], r->c[MQTX_COL_ID], r->c[MQTX_COL_ID]);
	} else {
		mqtx_buf_adds(&s.sql, ", true, false");
	}
	mqtx_buf_printf(&s.sql, " FROM %s t WHERE t.%s > $%d::int8 AND t.%s IN ('sent', 'dead')", r->T, r->c[MQTX_COL_ID],
			param_i64(&s, cursor), r->c[MQTX_COL_STATUS]);
	if (add_selection(r, &s, err) < 0) {
		stmt_free(&s);
		return NULL;
	}
	/* rows locked by someone else are being re-sent or requeued by them */
	mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8 FOR UPDATE OF t SKIP LOCKED", r->c[MQTX_COL_ID],
			param_i64(&s, limit));
	PGresult *res = stmt_exec(r->pg, &s, 1);
	stmt_free(&s);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		select_fail(r, res, "cannot lock rows to re-send", err);
		return NULL;
	}
	return mqtx_batch_decode(res);
}

static void log_row(const struct mqtx_msg *m, const char *why, int64_t *shown)
{
	if ((*shown)++ < 5)
		mqtx_warn("row %lld (key '%s'): %s", (long long)m->id, m->key, why);
	else if (*shown == 6)
		mqtx_warn("... more rows not re-sent; see the summary");
}

/* Records the confirmed messages of b[0..n). Returns how many rows changed. */
static int record(struct mqtx_redeliver *r, const struct mqtx_batch *b, size_t n, int64_t *changed,
		  struct mqtx_err *err)
{
	struct mqtx_buf ids = MQTX_BUF_INIT;
	size_t k = 0;
	*changed = 0;
	mqtx_buf_addc(&ids, '{');
	for (size_t i = 0; i < n; i++)
		if (b->msgs[i].state == MQTX_MSG_CONFIRMED)
			mqtx_buf_printf(&ids, "%s%lld", k++ ? "," : "", (long long)b->msgs[i].id);
	mqtx_buf_addc(&ids, '}');
	if (k == 0) {
		mqtx_buf_free(&ids);
		return 0;
	}
	if (MQTX_FAILPOINT("redeliver.before_record") < 0) {
		mqtx_buf_free(&ids);
		return mqtx_err_retry(err, MQTX_E_DB, "failpoint redeliver.before_record");
	}
	const char *st = r->c[MQTX_COL_STATUS], *rc = r->c[MQTX_COL_REDELIVERY_COUNT];
	struct mqtx_buf sql = MQTX_BUF_INIT;
	/* a dead row the broker now took is sent */
	mqtx_buf_printf(&sql, "UPDATE %s t SET %s = t.%s + 1, %s = clock_timestamp(), %s = 'sent'", r->T, rc, rc,
			r->c[MQTX_COL_REDELIVERED_AT], st);
	if (r->c[MQTX_COL_SENT_AT] != NULL)
		mqtx_buf_printf(&sql, ", %s = coalesce(t.%s, clock_timestamp())", r->c[MQTX_COL_SENT_AT],
				r->c[MQTX_COL_SENT_AT]);
	mqtx_buf_printf(&sql, " WHERE t.%s = ANY($1::int8[]) AND t.%s IN ('sent', 'dead')", r->c[MQTX_COL_ID], st);
	const char *p[1] = {ids.data};
	PGresult *res = PQexecParams(r->pg, sql.data, 1, NULL, p, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	mqtx_buf_free(&ids);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return mqtx_pg_fail(r->pg, res, "cannot record the redeliveries", err);
	*changed = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

static void rollback(struct mqtx_redeliver *r)
{
	PGresult *res = PQexec(r->pg, "ROLLBACK");
	PQclear(res);
}

/* One batch: lock, publish, record, commit. Returns 1 when a batch was
 * handled, 0 when nothing is left, -1 with err. *cursor moves past it. */
static int resend_batch(struct mqtx_redeliver *r, struct bucket *tb, int64_t *cursor, struct mqtx_redeliver_stats *st,
			struct mqtx_err *err)
{
	int64_t limit = r->cfg->redeliver_batch_size;
	int64_t l = left(r, st);
	if (l < limit)
		limit = l;
	if (r->o->rate > 0 && (double)limit > ceil(r->o->rate)) /* about a second of work per transaction */
		limit = (int64_t)ceil(r->o->rate);
	if (limit <= 0)
		return 0;
	char lt[64];
	int64_t wait = 2 * r->cfg->broker_confirm_timeout_ms + 10000; /* a relay holds a bucket for a batch */
	snprintf(lt, sizeof(lt), "SET LOCAL lock_timeout = %lld", (long long)wait);
	if (!r->buckets_agreed && mqtx_outbox_agree_buckets(r->ob, err) < 0)
		return -1;
	r->buckets_agreed = true;
	if (mqtx_pg_exec(r->pg, "BEGIN", err) < 0)
		return -1;
	char **keys = NULL;
	size_t nkeys = 0;
	struct mqtx_batch *b = NULL;
	int rc = -1;
	if (mqtx_pg_exec(r->pg, lt, err) < 0 || next_keys(r, *cursor, limit, &keys, &nkeys, err) < 0 ||
	    mqtx_outbox_lock_keys(r->ob, (const char *const *)keys, nkeys, err) < 0)
		goto out;
	b = next_rows(r, *cursor, limit, keys, nkeys, err);
	if (b == NULL)
		goto out;
	if (b->n == 0) {
		rc = 0;
		goto out;
	}
	/* Rows past the first whose key's bucket we do not hold wait for the next batch. */
	size_t n = 0;
	while (n < b->n && get_bool(b->res, (int)n, C_LOCKED))
		n++;
	if (n == 0) {
		/* its key is not among those locked: it changed since phase 1; look again */
		rc = 1;
		goto out;
	}
	if (MQTX_FAILPOINT("redeliver.after_select") < 0) {
		mqtx_err_retry(err, MQTX_E_DB, "failpoint redeliver.after_select");
		goto out;
	}
	struct mqtx_msg *go = mqtx_xcalloc(n + 1, sizeof(*go));
	size_t *from = mqtx_xcalloc(n + 1, sizeof(size_t));
	size_t ngo = 0;
	int64_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		struct mqtx_msg *m = &b->msgs[i];
		m->state = MQTX_MSG_PENDING;
		if (get_bool(b->res, (int)i, C_BLOCKED)) {
			st->held_back++;
			log_row(m, "held back: an earlier row of its ordering key is still pending", &shown);
			continue;
		}
		if (b->bad_headers[i] != NULL) {
			st->failed++;
			log_row(m, b->bad_headers[i], &shown);
			continue;
		}
		m->redelivery_count = get_i64(b->res, (int)i, C_RCOUNT) + 1;
		go[ngo] = *m;
		from[ngo++] = i;
	}
	/* Publish in chunks the rate allows; a stop ends it between chunks. */
	int prc = 0;
	struct mqtx_err perr;
	size_t sent = 0;
	while (sent < ngo) {
		size_t k = bucket_take(r, tb, ngo - sent);
		if (k == 0 || (sent > 0 && stop_requested(r))) {
			st->interrupted = true;
			break;
		}
		prc = mqtx_backend_publish(r->be, go + sent, k, &perr);
		for (size_t j = sent; j < sent + k; j++) {
			struct mqtx_msg *m = &b->msgs[from[j]];
			m->state = go[j].state;
			memcpy(m->error, go[j].error, sizeof(m->error));
		}
		sent += k;
		(void)MQTX_FAILPOINT("redeliver.after_publish");
		if (prc < 0)
			break;
		struct mqtx_redeliver_stats now = *st;
		for (size_t j = 0; j < sent; j++)
			if (go[j].state == MQTX_MSG_CONFIRMED)
				now.redelivered++;
		now.done += (int64_t)sent;
		progress(r, &now);
	}
	free(go);
	free(from);
	int64_t confirmed = 0;
	for (size_t i = 0; i < n; i++) {
		const struct mqtx_msg *m = &b->msgs[i];
		if (m->state == MQTX_MSG_CONFIRMED) {
			confirmed++;
		} else if ((m->state == MQTX_MSG_FAILED || m->state == MQTX_MSG_UNKNOWN) && prc == 0) {
			st->failed++;
			log_row(m, m->error[0] ? m->error : "no confirm from the broker", &shown);
		}
	}
	int64_t changed;
	if (record(r, b, n, &changed, err) < 0)
		goto out;
	if (MQTX_FAILPOINT("redeliver.before_commit") < 0) {
		mqtx_err_retry(err, MQTX_E_DB, "failpoint redeliver.before_commit");
		goto out;
	}
	if (mqtx_pg_exec(r->pg, "COMMIT", err) < 0) {
		mqtx_error("the broker took %lld message(s) again but that could not be recorded; a re-run sends them once more (same idempotency keys)",
			   (long long)confirmed);
		mqtx_batch_free(b);
		list_free(keys, nkeys);
		return -1;
	}
	st->redelivered += changed;
	if (st->interrupted || prc < 0) {
		/* what was handed over is recorded; the rest stays for a re-run */
		for (size_t i = 0; i < n; i++)
			if (b->msgs[i].state != MQTX_MSG_PENDING || get_bool(b->res, (int)i, C_BLOCKED) ||
			    b->bad_headers[i] != NULL)
				st->done++;
	} else {
		st->done += (int64_t)n;
	}
	*cursor = b->msgs[n - 1].id;
	mqtx_batch_free(b);
	list_free(keys, nkeys);
	progress(r, st);
	if (prc < 0) {
		*err = perr;
		return -1;
	}
	return 1;
out:
	rollback(r);
	mqtx_batch_free(b);
	list_free(keys, nkeys);
	return rc;
}

static int need_col(struct mqtx_redeliver *r, enum mqtx_col c, const char *what, struct mqtx_err *err)
{
	if (r->c[c] != NULL)
		return 0;
	return mqtx_err_set(err, MQTX_E_CONFIG, "%s needs the column '%s', which this outbox table lacks (outbox.columns.%s is empty; 'mqtx init --print' shows how to add it)",
			    what, col_name(c), col_name(c));
}

int mqtx_redeliver_resend(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st, struct mqtx_err *err)
{
	if (need_col(r, MQTX_COL_REDELIVERY_COUNT, "re-sending", err) < 0 ||
	    need_col(r, MQTX_COL_REDELIVERED_AT, "re-sending", err) < 0)
		return -1;
	if (open_broker(r, err) < 0)
		return -1;
	struct bucket tb;
	bucket_init(&tb, r->o->rate);
	int64_t cursor = INT64_MIN;
	int again = 0;
	for (;;) {
		if (stop_requested(r)) {
			st->interrupted = true;
			return 0;
		}
		int64_t before = cursor;
		int b = resend_batch(r, &tb, &cursor, st, err);
		if (b < 0)
			return -1;
		if (b == 0 || st->interrupted)
			return 0;
		if (cursor != before) {
			again = 0;
			continue;
		}
		/* the head row's key changed between looking and locking, or it is locked by someone else */
		if (++again > 10)
			return mqtx_err_set(err, MQTX_E_DB, "the selected rows keep changing or stay locked by another session; try again");
		mqtx_sleep_ms(100 * again);
	}
}

/* ---- reviving dead rows ---- */

int mqtx_redeliver_requeue(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st, struct mqtx_err *err)
{
	int64_t cursor = INT64_MIN;
	const char *id = r->c[MQTX_COL_ID], *stc = r->c[MQTX_COL_STATUS];
	for (;;) {
		if (stop_requested(r)) {
			st->interrupted = true;
			return 0;
		}
		int64_t limit = r->cfg->redeliver_batch_size, l = left(r, st);
		if (l < limit)
			limit = l;
		if (limit <= 0)
			return 0;
		struct stmt s = {0};
		mqtx_buf_printf(&s.sql, "WITH s AS (SELECT t.%s AS id FROM %s t WHERE t.%s > $%d::int8 AND t.%s = 'dead'", id,
				r->T, id, param_i64(&s, cursor), stc);
		if (add_selection(r, &s, err) < 0) {
			stmt_free(&s);
			return -1;
		}
		mqtx_buf_printf(&s.sql, " ORDER BY t.%s LIMIT $%d::int8 FOR UPDATE OF t SKIP LOCKED) ", id, param_i64(&s, limit));
		/* the update trigger installed by mqtx init wakes relays in --loop */
		mqtx_buf_printf(&s.sql, "UPDATE %s u SET %s = 'pending', %s = 0, %s = now() FROM s WHERE u.%s = s.id AND u.%s = 'dead' "
				"RETURNING u.%s::int8",
				r->T, stc, r->c[MQTX_COL_ATTEMPTS], r->c[MQTX_COL_AVAILABLE_AT], id, stc, id);
		PGresult *res = stmt_exec(r->pg, &s, 0);
		stmt_free(&s);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			return select_fail(r, res, "cannot set dead rows back to pending", err);
		int n = PQntuples(res);
		for (int i = 0; i < n; i++) {
			int64_t v = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			if (v > cursor)
				cursor = v;
		}
		PQclear(res);
		if (n == 0)
			return 0;
		st->requeued += n;
		st->done += n;
		progress(r, st);
	}
}

/* ---- collecting acks ---- */

/* Valid UTF-8 without control characters. */
static bool printable_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len;
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4;
		else
			return false;
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		/* overlong 3- and 4-byte forms, surrogates, beyond U+10FFFF */
		if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) || (c == 0xf0 && s[i + 1] < 0x90) ||
		    (c == 0xf4 && s[i + 1] > 0x8f))
			return false;
		i += len;
	}
	return true;
}

#define MAX_KEY_LEN 4096

/* The key an ack message carries: its x-mqtx-idempotency-key header, else
 * its body, without surrounding white space. NULL when unusable. */
static char *ack_key(const struct mqtx_delivery *d)
{
	const char *p = d->key_header != NULL ? d->key_header : d->body;
	size_t n = d->key_header != NULL ? d->key_header_len : d->body_len;
	if (p == NULL)
		return NULL;
	while (n > 0 && isspace((unsigned char)p[0]))
		p++, n--;
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	if (n == 0 || n > MAX_KEY_LEN || !printable_utf8((const unsigned char *)p, n))
		return NULL;
	return mqtx_xstrndup(p, n);
}

int mqtx_redeliver_collect_acks(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st, struct mqtx_err *err)
{
	const char *source = r->cfg->redeliver_ack_source;
	if (source == NULL || source[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG, "--collect-acks needs an ack queue or topic (--ack-source, redeliver.ack_source)");
	const struct mqtx_backend_ops *ops = mqtx_backend_find(r->cfg->broker_url, err);
	if (ops == NULL)
		return -1;
	if (!mqtx_broker_can(ops, MQTX_CAP_CONSUME))
		return mqtx_err_set(err, MQTX_E_CONFIG, "--collect-acks: the %s broker cannot consume messages", mqtx_broker_name(ops));
	if (open_broker(r, err) < 0)
		return -1;
	char label[300];
	snprintf(label, sizeof(label), "%s:%.280s", mqtx_backend_name(r->be), source);
	struct mqtx_consume_opts co = {
		.source = source,
		.group = r->cfg->redeliver_ack_group,
		.max = (size_t)r->cfg->redeliver_batch_size,
		.wait_ms = r->cfg->redeliver_ack_wait_ms,
	};
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"INSERT INTO %s (idempotency_key, source) SELECT DISTINCT k, $2 FROM unnest($1::text[]) k "
			"ON CONFLICT (idempotency_key) DO NOTHING",
			r->completions);
	int rc = 0;
	int64_t ignored_shown = 0;
	while (!stop_requested(r)) {
		const struct mqtx_delivery *d;
		int n = mqtx_backend_consume(r->be, &co, &d, err);
		if (n < 0) {
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		char **keys = NULL;
		size_t nk = 0;
		for (int i = 0; i < n; i++) {
			char *k = ack_key(&d[i]);
			if (k == NULL) {
				st->acks_ignored++;
				if (ignored_shown++ < 5)
					mqtx_warn("ack from '%s' ignored: no usable key (the body or the header x-mqtx-idempotency-key must hold one, 1 to %d bytes of printable UTF-8)",
						  source, MAX_KEY_LEN);
				continue;
			}
			keys = mqtx_xrealloc(keys, (nk + 1) * sizeof(char *));
			keys[nk++] = k;
		}
		if (nk > 0) {
			char *arr = text_array(keys, nk);
			const char *p[2] = {arr, label};
			PGresult *res = PQexecParams(r->pg, sql.data, 2, NULL, p, NULL, NULL, 0);
			free(arr);
			list_free(keys, nk);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
				if (state != NULL && strcmp(state, "42P01") == 0) {
					PQclear(res);
					rc = mqtx_err_set(err, MQTX_E_DB, "no table %s: run 'mqtx init' to create it", r->completions);
				} else {
					rc = mqtx_pg_fail(r->pg, res, "cannot record completions", err);
				}
				break; /* not acknowledged: the broker keeps them */
			}
			st->completions += strtoll(PQcmdTuples(res), NULL, 10);
			PQclear(res);
		}
		/* stored (autocommit): now the broker may forget them */
		if (MQTX_FAILPOINT("redeliver.before_ack") < 0) {
			rc = mqtx_err_retry(err, MQTX_E_BROKER, "failpoint redeliver.before_ack");
			break;
		}
		if (mqtx_backend_consume_ack(r->be, err) < 0) {
			rc = -1;
			break;
		}
		st->acks += n;
		progress(r, st);
	}
	if (stop_requested(r))
		st->interrupted = true;
	mqtx_buf_free(&sql);
	return rc;
}
