/* mqtx redeliver (see redeliver.h): the --where parser, re-sending,
 * reviving dead rows and collecting acks. The SQL is lib/db/redeliver.c. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "redeliver/redeliver.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/broker.h"
#include "base/failpoint.h"
#include "base/log.h"
#include "db/redeliver.h"
#include "base/util.h"

/* ---- --where ---- */

enum wtype { W_INT = MQTX_WHERE_INT, W_TEXT = MQTX_WHERE_TEXT, W_TIME = MQTX_WHERE_TIME };

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
		return mqtx_err_set(err, MQTX_E_USAGE,
				    "--where: column '%.*s' at offset %zu cannot be used (allowed: %s)",
				    (int)(n > 64 ? 64 : n), lx->text + start, start, mqtx_where_columns());
	}
	enum wtype type = col_type(c->col);
	c->type = (enum mqtx_where_type)type;
	skip_space(lx);
	const char *t = lx->text + lx->pos;
	size_t oplen = 0;
	if (keyword(lx, "IS")) {
		skip_space(lx);
		bool not = keyword(lx, "NOT");
		skip_space(lx);
		if (!keyword(lx, "NULL"))
			return where_err(lx, err,
					 not ? "expected NULL after IS NOT" : "expected NULL or NOT NULL after IS");
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

void mqtx_selection_free(struct mqtx_selection *s)
{
	free(s->ids);
	mqtx_strv_free(s->keys, s->n_keys);
	mqtx_strv_free(s->ordering_keys, s->n_ordering_keys);
	mqtx_strv_free(s->destinations, s->n_destinations);
	mqtx_strv_free(s->statuses, s->n_statuses);
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
		return mqtx_err_set(err, MQTX_E_USAGE, "invalid rate '%s' (expected N, N/s, N/m or N/h; 0: no limit)",
				    text);
	*per_sec = v / div;
	return 0;
}

int mqtx_redeliver_rate(const struct mqtx_config *cfg, double *per_sec, struct mqtx_err *err)
{
	if (mqtx_rate_parse(cfg->redeliver_rate, per_sec, err) == 0)
		return 0;
	const char *o = mqtx_config_origin(cfg, "redeliver.rate");
	if (o != NULL && strncmp(o, "option", 6) == 0) {
		mqtx_err_prefix(err, "--rate");
		err->kind = MQTX_E_USAGE;
	} else {
		mqtx_err_prefix(err, "redeliver.rate (%s)", o != NULL ? o : "default");
		err->kind = MQTX_E_CONFIG;
	}
	return -1;
}

int mqtx_redeliver_check_ack_source(const struct mqtx_config *cfg, struct mqtx_err *err)
{
	const char *source = cfg->redeliver_ack_source;
	if (source == NULL || source[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "--collect-acks needs an ack queue or topic (--ack-source, redeliver.ack_source)");
	return 0;
}

struct mqtx_redeliver {
	const struct mqtx_config *cfg;
	const struct mqtx_redeliver_opts *o;
	struct mqtx_redeliver_db *db;
	struct mqtx_backend *be;
};

/* ---- setting up ---- */

struct mqtx_redeliver *mqtx_redeliver_new(const struct mqtx_config *cfg, const struct mqtx_redeliver_opts *o,
					  struct mqtx_err *err)
{
	struct mqtx_redeliver *r = mqtx_xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->o = o;
	r->db = mqtx_redeliver_db_new(cfg, o->sel, o->client_name != NULL ? o->client_name : "mqtx redeliver", err);
	if (r->db == NULL) {
		mqtx_redeliver_free(r);
		return NULL;
	}
	return r;
}

void mqtx_redeliver_free(struct mqtx_redeliver *r)
{
	if (r == NULL)
		return;
	mqtx_backend_close(r->be);
	mqtx_redeliver_db_free(r->db);
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
	return mqtx_redeliver_db_count(r->db, r->o->limit, n, err);
}

int mqtx_redeliver_sample(struct mqtx_redeliver *r, size_t n,
			  void (*row)(void *ctx, const struct mqtx_redeliver_row *row), void *ctx, struct mqtx_err *err)
{
	int64_t lim = (int64_t)n;
	if (r->o->limit > 0 && r->o->limit < lim)
		lim = r->o->limit;
	return mqtx_redeliver_db_sample(r->db, lim, row, ctx, err);
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

static void log_row(const struct mqtx_msg *m, const char *why, int64_t *shown)
{
	if ((*shown)++ < 5)
		mqtx_warn("row %lld (key '%s'): %s", (long long)m->id, m->key, why);
	else if (*shown == 6)
		mqtx_warn("... more rows not re-sent; see the summary");
}

/* The rows of a batch that go to the broker, copied out of the batch
 * (go[i] is rows->batch->msgs[from[i]]). */
struct resend {
	struct mqtx_resend_rows rows;
	size_t n;            /* rows->n_locked: the rows this batch handles */
	struct mqtx_msg *go; /* owned */
	size_t *from;        /* owned */
	size_t ngo;
	int64_t shown; /* rows named in warnings */
	int prc;       /* the broker's answer: 0, or -1 with perr */
	struct mqtx_err perr;
};

static void resend_free(struct resend *rs)
{
	mqtx_resend_rows_free(&rs->rows);
	free(rs->go);
	free(rs->from);
}

/* How many rows the next batch may take: batch_size, --limit, and about a
 * second of work per transaction with --rate. */
static int64_t batch_limit(const struct mqtx_redeliver *r, const struct mqtx_redeliver_stats *st)
{
	int64_t limit = r->cfg->redeliver_batch_size;
	int64_t l = left(r, st);
	if (l < limit)
		limit = l;
	if (r->o->rate > 0 && (double)limit > ceil(r->o->rate))
		limit = (int64_t)ceil(r->o->rate);
	return limit;
}

/* Picks the rows that go: not held back by a pending earlier row of their
 * key, headers usable. The others are counted and named. */
static void pick_rows(struct resend *rs, struct mqtx_redeliver_stats *st)
{
	struct mqtx_batch *b = rs->rows.batch;
	rs->go = mqtx_xcalloc(rs->n + 1, sizeof(*rs->go));
	rs->from = mqtx_xcalloc(rs->n + 1, sizeof(size_t));
	for (size_t i = 0; i < rs->n; i++) {
		struct mqtx_msg *m = &b->msgs[i];
		m->state = MQTX_MSG_PENDING;
		if (rs->rows.blocked[i]) {
			st->held_back++;
			log_row(m, "held back: an earlier row of its ordering key is still pending", &rs->shown);
			continue;
		}
		if (b->bad_headers[i] != NULL) {
			st->failed++;
			log_row(m, b->bad_headers[i], &rs->shown);
			continue;
		}
		m->redelivery_count = rs->rows.redeliveries[i] + 1;
		rs->go[rs->ngo] = *m;
		rs->from[rs->ngo++] = i;
	}
}

/* Publishes the picked rows in chunks the rate allows; a stop ends it
 * between chunks. Outcomes go back into the batch's messages. */
static void publish_rows(struct mqtx_redeliver *r, struct bucket *tb, struct resend *rs,
			 struct mqtx_redeliver_stats *st)
{
	size_t sent = 0;
	while (sent < rs->ngo) {
		size_t k = bucket_take(r, tb, rs->ngo - sent);
		if (k == 0 || (sent > 0 && stop_requested(r))) {
			st->interrupted = true;
			break;
		}
		rs->prc = mqtx_backend_publish(r->be, rs->go + sent, k, &rs->perr);
		for (size_t j = sent; j < sent + k; j++) {
			struct mqtx_msg *m = &rs->rows.batch->msgs[rs->from[j]];
			m->state = rs->go[j].state;
			memcpy(m->error, rs->go[j].error, sizeof(m->error));
		}
		sent += k;
		(void)MQTX_FAILPOINT("redeliver.after_publish");
		if (rs->prc < 0)
			break;
		struct mqtx_redeliver_stats now = *st;
		for (size_t j = 0; j < sent; j++)
			if (rs->go[j].state == MQTX_MSG_CONFIRMED)
				now.redelivered++;
		now.done += (int64_t)sent;
		progress(r, &now);
	}
}

/* Counts the broker's refusals (named in warnings) and writes the ids of
 * the confirmed rows to ids; returns how many. */
static size_t confirmed_ids(struct resend *rs, int64_t *ids, struct mqtx_redeliver_stats *st)
{
	size_t k = 0;
	for (size_t i = 0; i < rs->n; i++) {
		const struct mqtx_msg *m = &rs->rows.batch->msgs[i];
		if (m->state == MQTX_MSG_CONFIRMED) {
			ids[k++] = m->id;
		} else if ((m->state == MQTX_MSG_FAILED || m->state == MQTX_MSG_UNKNOWN) && rs->prc == 0) {
			st->failed++;
			log_row(m, m->error[0] ? m->error : "no confirm from the broker", &rs->shown);
		}
	}
	return k;
}

/* Records the confirmed rows and commits. */
static int record_and_commit(struct mqtx_redeliver *r, struct resend *rs, struct mqtx_redeliver_stats *st,
			     struct mqtx_err *err)
{
	int64_t *ids = mqtx_xcalloc(rs->n + 1, sizeof(int64_t));
	size_t k = confirmed_ids(rs, ids, st);
	int64_t changed = 0;
	int rc = 0;
	if (k > 0 && MQTX_FAILPOINT("redeliver.before_record") < 0)
		rc = mqtx_err_retry(err, MQTX_E_DB, "failpoint redeliver.before_record");
	else if (mqtx_redeliver_db_record(r->db, ids, k, &changed, err) < 0)
		rc = -1;
	else if (MQTX_FAILPOINT("redeliver.before_commit") < 0)
		rc = mqtx_err_retry(err, MQTX_E_DB, "failpoint redeliver.before_commit");
	free(ids);
	if (rc < 0) {
		mqtx_redeliver_db_rollback(r->db);
		return -1;
	}
	if (mqtx_redeliver_db_commit(r->db, err) < 0) {
		mqtx_error("the broker took %lld message(s) again but that could not be recorded; a re-run sends them once more (same idempotency keys)",
			   (long long)k);
		return -1;
	}
	st->redelivered += changed;
	return 0;
}

/* After the commit: how many selected rows the batch handled. */
static void count_done(const struct resend *rs, struct mqtx_redeliver_stats *st)
{
	if (!st->interrupted && rs->prc == 0) {
		st->done += (int64_t)rs->n;
		return;
	}
	/* what was handed over is recorded; the rest stays for a re-run */
	const struct mqtx_batch *b = rs->rows.batch;
	for (size_t i = 0; i < rs->n; i++)
		if (b->msgs[i].state != MQTX_MSG_PENDING || rs->rows.blocked[i] || b->bad_headers[i] != NULL)
			st->done++;
}

/* One batch: lock, publish, record, commit. Returns 1 when a batch was
 * handled, 0 when nothing is left, -1 with err. *cursor moves past it. */
static int resend_batch(struct mqtx_redeliver *r, struct bucket *tb, int64_t *cursor, struct mqtx_redeliver_stats *st,
			struct mqtx_err *err)
{
	int64_t limit = batch_limit(r, st);
	if (limit <= 0)
		return 0;
	int64_t wait = 2 * r->cfg->broker_confirm_timeout_ms + 10000; /* a relay holds a bucket for a batch */
	if (mqtx_redeliver_db_begin(r->db, wait, err) < 0)
		return -1;
	struct resend rs = {0};
	int rc = -1;
	if (mqtx_redeliver_db_lock_rows(r->db, *cursor, limit, &rs.rows, err) < 0)
		goto out;
	rs.n = rs.rows.n_locked;
	if (rs.rows.batch->n == 0 || rs.n == 0) {
		/* nothing left, or the head row's key changed since its key was read: look again */
		rc = rs.rows.batch->n == 0 ? 0 : 1;
		goto out;
	}
	if (MQTX_FAILPOINT("redeliver.after_select") < 0) {
		mqtx_err_retry(err, MQTX_E_DB, "failpoint redeliver.after_select");
		goto out;
	}
	pick_rows(&rs, st);
	publish_rows(r, tb, &rs, st);
	if (record_and_commit(r, &rs, st, err) < 0) {
		resend_free(&rs);
		return -1;
	}
	count_done(&rs, st);
	*cursor = rs.rows.batch->msgs[rs.n - 1].id;
	int prc = rs.prc;
	if (prc < 0)
		*err = rs.perr;
	resend_free(&rs);
	progress(r, st);
	return prc < 0 ? -1 : 1;
out:
	mqtx_redeliver_db_rollback(r->db);
	resend_free(&rs);
	return rc;
}

static int need_col(struct mqtx_redeliver *r, enum mqtx_col c, const char *what, struct mqtx_err *err)
{
	if (mqtx_redeliver_db_has_col(r->db, c))
		return 0;
	return mqtx_err_set(err, MQTX_E_CONFIG,
			    "%s needs the column '%s', which this outbox table lacks (outbox.columns.%s is empty; 'mqtx init --print' shows how to add it)",
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
			return mqtx_err_set(err, MQTX_E_DB,
					    "the selected rows keep changing or stay locked by another session; try again");
		mqtx_sleep_ms(100 * again);
	}
}

/* ---- reviving dead rows ---- */

int mqtx_redeliver_requeue(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st, struct mqtx_err *err)
{
	int64_t cursor = INT64_MIN;
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
		int64_t n;
		if (mqtx_redeliver_db_requeue(r->db, &cursor, limit, &n, err) < 0)
			return -1;
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
		if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) ||
		    (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] > 0x8f))
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
	if (mqtx_redeliver_check_ack_source(r->cfg, err) < 0)
		return -1;
	const char *source = r->cfg->redeliver_ack_source;
	const struct mqtx_backend_ops *ops = mqtx_backend_find(r->cfg->broker_url, err);
	if (ops == NULL)
		return -1;
	if (!mqtx_broker_can(ops, MQTX_CAP_CONSUME))
		return mqtx_err_set(err, MQTX_E_CONFIG, "--collect-acks: the %s broker cannot consume messages",
				    mqtx_broker_name(ops));
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
		int64_t added;
		int src = mqtx_redeliver_db_add_completions(r->db, keys, nk, label, &added, err);
		mqtx_strv_free(keys, nk);
		if (src < 0) {
			rc = -1;
			break; /* not acknowledged: the broker keeps them */
		}
		st->completions += added;
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
	return rc;
}
