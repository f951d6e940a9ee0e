/* txpub (see txpub.h): message sets and derived keys, direct publishing,
 * half messages in the outbox, PREPARE TRANSACTION as a last-resource
 * commit, and the resolution of what a crash left in doubt.
 *
 * Outbox rows written by --sql are "parked" inside the prepared
 * transaction: status pending with available_at = 'infinity', which the
 * relay never claims. Once the transaction is committed, txpub marks them
 * sent (the broker confirmed them) or un-parks them (available_at = now())
 * so the relay publishes what the broker may not have; `mqtx check
 * --resolve` does the latter after a crash. So a crash at any step leaves
 * either nothing (no coordinator record: rolled back, and the broker was
 * never asked to commit) or the database change plus its messages, sent
 * at least once with the same keys. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "txpub/txpub.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/broker.h"
#include "base/failpoint.h"
#include "base/json.h"
#include "base/log.h"
#include "db/pg.h"
#include "base/sha256.h"
#include "base/util.h"

extern char **environ;

/* gid = "mqtx:" + key must fit PostgreSQL's 200-byte GID buffer. */
#define GID_PREFIX "mqtx:"
#define MAX_SQL_KEY 194
/* Rows per INSERT statement (7 parameters each, below the 65535 limit). */
#define INSERT_CHUNK 1000
/* Rows looked at per resolve pass. */
#define RESOLVE_LIMIT 10000

/* ------------------------------------------------------------ message sets */

static char *keep(struct mqtx_txpub_set *s, char *p)
{
	s->owned = mqtx_xrealloc(s->owned, (s->n_owned + 1) * sizeof(char *));
	s->owned[s->n_owned++] = p;
	return p;
}

void mqtx_txpub_set_free(struct mqtx_txpub_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_owned; i++)
		free(s->owned[i]);
	free(s->owned);
	mqtx_input_free(&s->in);
	free(s->msgs);
	free(s->where);
	free(s->status);
	free(s);
}

struct hashidx {
	char hex[65];
	size_t i;
};

static int cmp_hashidx(const void *a, const void *b)
{
	const struct hashidx *x = a, *y = b;
	int c = strcmp(x->hex, y->hex);
	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

struct keyidx {
	const char *key;
	size_t i;
};

static int cmp_keyidx(const void *a, const void *b)
{
	const struct keyidx *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Merges the default headers with the message's own (which win by name; a
 * null value removes one; "headers": null drops them all). */
static void merge_headers(struct mqtx_txpub_set *s, struct mqtx_msg *m, const struct mqtx_input_msg *im,
			  const struct mqtx_txpub_defaults *d)
{
	size_t cap = d->n_headers + im->n_headers;
	struct mqtx_header *h = mqtx_xcalloc(cap + 1, sizeof(*h));
	size_t k = 0;
	bool drop_defaults = im->has_headers && im->headers == NULL;
	for (size_t i = 0; i < d->n_headers && !drop_defaults; i++) {
		bool overridden = false;
		for (size_t j = 0; j < im->n_headers; j++)
			if (strcmp(im->headers[j].name, d->headers[i].name) == 0)
				overridden = true;
		if (overridden || d->headers[i].value == NULL)
			continue;
		h[k].name = d->headers[i].name;
		h[k].value = d->headers[i].value;
		h[k].value_len = d->headers[i].value_len;
		k++;
	}
	for (size_t j = 0; j < im->n_headers; j++) {
		if (im->headers[j].value == NULL)
			continue;
		h[k].name = im->headers[j].name;
		h[k].value = im->headers[j].value;
		h[k].value_len = im->headers[j].value_len;
		k++;
	}
	keep(s, (char *)h);
	m->headers = h;
	m->n_headers = k;
}

static int check_len(const char *what, const char *v, size_t max, const char *where, struct mqtx_err *err)
{
	if (v != NULL && strlen(v) > max)
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: %s is %zu bytes long, more than %zu", where, what, strlen(v), max);
	return 0;
}

/* Gives every message without a key its derived key. */
static void derive_keys(struct mqtx_txpub_set *s)
{
	size_t nd = 0;
	for (size_t i = 0; i < s->n; i++)
		nd += s->msgs[i].key == NULL;
	if (nd == 0)
		return;
	struct hashidx *h = mqtx_xcalloc(nd, sizeof(*h));
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct mqtx_msg *m = &s->msgs[i];
		if (m->key != NULL)
			continue;
		struct mqtx_sha256 sh;
		mqtx_sha256_init(&sh);
		mqtx_sha256_update(&sh, m->destination, strlen(m->destination) + 1); /* with its NUL */
		const char *rk = m->routing_key != NULL ? m->routing_key : "";
		mqtx_sha256_update(&sh, rk, strlen(rk) + 1);
		mqtx_sha256_update(&sh, m->payload, m->payload_len);
		mqtx_sha256_hex(&sh, h[k].hex);
		h[k].i = i;
		k++;
	}
	qsort(h, nd, sizeof(*h), cmp_hashidx);
	size_t ordinal = 0;
	for (size_t j = 0; j < nd; j++) {
		ordinal = (j > 0 && strcmp(h[j].hex, h[j - 1].hex) == 0) ? ordinal + 1 : 1;
		struct mqtx_buf b = MQTX_BUF_INIT;
		mqtx_buf_printf(&b, "txpub:%s", h[j].hex);
		if (ordinal > 1)
			mqtx_buf_printf(&b, ":%zu", ordinal);
		s->msgs[h[j].i].key = keep(s, mqtx_buf_detach(&b));
	}
	free(h);
}

struct mqtx_txpub_set *mqtx_txpub_set_new(struct mqtx_input *in, const struct mqtx_txpub_defaults *d,
					  struct mqtx_err *err)
{
	struct mqtx_txpub_set *s = mqtx_xcalloc(1, sizeof(*s));
	s->in = *in;
	memset(in, 0, sizeof(*in));
	s->n = s->in.n;
	s->batch_size = d->batch_size;
	s->msgs = mqtx_xcalloc(s->n + 1, sizeof(*s->msgs));
	s->where = mqtx_xcalloc(s->n + 1, sizeof(char *));
	s->status = mqtx_xcalloc(s->n + 1, sizeof(char *));
	size_t max_key = d->max_key_len > 0 ? d->max_key_len : 255;
	const char *default_key_user = NULL;

	if (s->n == 0) {
		mqtx_err_set(err, MQTX_E_INPUT, "no message in the input");
		goto fail;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct mqtx_input_msg *im = &s->in.msgs[i];
		struct mqtx_msg *m = &s->msgs[i];
		const char *where = im->where;
		s->where[i] = where;
		m->destination = im->has_destination ? im->destination : d->destination;
		m->routing_key = im->has_routing_key ? im->routing_key : d->routing_key;
		m->ordering_key = im->has_ordering_key ? im->ordering_key : d->ordering_key;
		m->content_type = im->has_content_type ? im->content_type : d->content_type;
		m->key = im->has_key ? im->key : d->key;
		m->payload = im->payload;
		m->payload_len = im->payload_len;
		m->state = MQTX_MSG_PENDING;
		if (!im->has_key && d->key != NULL) {
			if (default_key_user != NULL) {
				mqtx_err_set(err, MQTX_E_INPUT,
					     "%s: --key names one message, and %s uses it already (give each JSON line its own 'key')",
					     where, default_key_user);
				goto fail;
			}
			default_key_user = where;
		}
		if (m->destination == NULL) {
			mqtx_err_set(err, MQTX_E_INPUT, "%s: no destination (give --destination or a 'destination' field)", where);
			goto fail;
		}
		if (check_len("the key", m->key, max_key, where, err) < 0)
			goto fail;
		if (m->key != NULL && m->key[0] == '\0') {
			mqtx_err_set(err, MQTX_E_INPUT, "%s: the key is empty", where);
			goto fail;
		}
		merge_headers(s, m, im, d);
	}
	derive_keys(s);
	/* keys must be unique within the input: consumers would drop the second */
	struct keyidx *ki = mqtx_xcalloc(s->n, sizeof(*ki));
	for (size_t i = 0; i < s->n; i++) {
		ki[i].key = s->msgs[i].key;
		ki[i].i = i;
	}
	qsort(ki, s->n, sizeof(*ki), cmp_keyidx);
	for (size_t j = 1; j < s->n; j++) {
		if (strcmp(ki[j].key, ki[j - 1].key) == 0) {
			mqtx_err_set(err, MQTX_E_INPUT, "%s: key '%s' is also the key of %s (keys must be unique)",
				     s->where[ki[j].i], ki[j].key, s->where[ki[j - 1].i]);
			free(ki);
			goto fail;
		}
	}
	free(ki);
	/* the broker's limits, the same rules the relay applies */
	for (size_t i = 0; i < s->n && d->ops != NULL; i++) {
		char why[256];
		if (mqtx_backend_validate(d->ops, NULL, &s->msgs[i], why, sizeof(why)) < 0) {
			mqtx_err_set(err, MQTX_E_INPUT, "%s: %s", s->where[i], why);
			goto fail;
		}
	}
	return s;
fail:
	mqtx_txpub_set_free(s);
	return NULL;
}

size_t mqtx_txpub_batches(const struct mqtx_txpub_set *s)
{
	if (s->n == 0)
		return 0;
	if (s->batch_size == 0)
		return 1;
	return (s->n + s->batch_size - 1) / s->batch_size;
}

size_t mqtx_txpub_batch_of(const struct mqtx_txpub_set *s, size_t i)
{
	return s->batch_size == 0 ? 0 : i / s->batch_size;
}

void mqtx_txpub_count(const struct mqtx_txpub_set *s, struct mqtx_txpub_counts *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < s->n; i++) {
		switch (s->msgs[i].state) {
		case MQTX_MSG_CONFIRMED: c->confirmed++; break;
		case MQTX_MSG_UNKNOWN: c->in_doubt++; break;
		default: c->not_published++; break;
		}
	}
}

/* ------------------------------------------------------ direct publishing */

const char *mqtx_txpub_mode_name(enum mqtx_txpub_mode m)
{
	switch (m) {
	case MQTX_TXPUB_AUTO: return "auto";
	case MQTX_TXPUB_TX: return "tx";
	case MQTX_TXPUB_CONFIRM: return "confirm";
	case MQTX_TXPUB_KAFKA_TX: return "kafka-tx";
	}
	return "auto";
}

int mqtx_txpub_mode_for(const struct mqtx_backend_ops *ops, enum mqtx_txpub_mode mode, bool for_sql,
			enum mqtx_txpub_mode *out, struct mqtx_err *err)
{
	bool tx = mqtx_broker_can(ops, MQTX_CAP_TRANSACTIONS);
	bool fenced = mqtx_broker_can(ops, MQTX_CAP_FENCED_TRANSACTIONS);
	const char *name = mqtx_broker_name(ops);
	if (mode == MQTX_TXPUB_AUTO)
		mode = fenced ? MQTX_TXPUB_KAFKA_TX : for_sql && tx ? MQTX_TXPUB_TX : MQTX_TXPUB_CONFIRM;
	if (mode == MQTX_TXPUB_TX && !tx)
		return mqtx_err_set(err, MQTX_E_CONFIG, "txpub mode 'tx': the %s broker cannot do transactions (use --mode confirm)",
				    name);
	if (mode == MQTX_TXPUB_TX && fenced)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "txpub mode 'tx': the %s broker's transactions need a fencing transactional id (use --mode kafka-tx)",
				    name);
	if (mode == MQTX_TXPUB_KAFKA_TX && !fenced)
		return mqtx_err_set(err, MQTX_E_CONFIG, "txpub mode 'kafka-tx': the %s broker cannot do fenced transactions (use --mode %s)",
				    name, tx ? "tx" : "confirm");
	*out = mode;
	return 0;
}

int mqtx_txpub_effective_mode(const struct mqtx_config *cfg, enum mqtx_txpub_mode mode, bool for_sql,
			      enum mqtx_txpub_mode *out, struct mqtx_err *err)
{
	const struct mqtx_backend_ops *ops = mqtx_backend_find(cfg->broker_url, err);
	if (ops == NULL)
		return -1;
	return mqtx_txpub_mode_for(ops, mode, for_sql, out, err);
}

/* Messages in [from, to) that were never handed over say so. */
static void mark_unsent(struct mqtx_txpub_set *s, size_t from, size_t to, const char *why)
{
	for (size_t i = from; i < to; i++) {
		struct mqtx_msg *m = &s->msgs[i];
		if (m->state == MQTX_MSG_PENDING && m->error[0] == '\0')
			snprintf(m->error, sizeof(m->error), "%s", why);
	}
}

static void set_all(struct mqtx_txpub_set *s, enum mqtx_msg_state st, const char *why)
{
	for (size_t i = 0; i < s->n; i++) {
		s->msgs[i].state = st;
		snprintf(s->msgs[i].error, sizeof(s->msgs[i].error), "%.255s", why);
	}
}

static void backend_opts(const struct mqtx_txpub_opts *o, enum mqtx_txpub_mode mode, size_t n,
			 struct mqtx_backend_opts *bo)
{
	memset(bo, 0, sizeof(*bo));
	bo->mode = mode == MQTX_TXPUB_CONFIRM ? MQTX_PUB_CONFIRM : MQTX_PUB_TX;
	bo->client_name = "mqtx txpub";
	bo->stop = o->stop;
	bo->stop_grace_ms = o->stop_grace_ms;
	bo->window = o->window > 0 ? o->window : 1024;
	if (mode == MQTX_TXPUB_CONFIRM && o->confirm == MQTX_TXPUB_SYNC)
		bo->window = 1;
	else if (mode == MQTX_TXPUB_CONFIRM && o->confirm == MQTX_TXPUB_BATCH)
		bo->window = n > 0 ? n : 1;
}

int mqtx_txpub_publish(const struct mqtx_config *cfg, const struct mqtx_txpub_opts *o, struct mqtx_txpub_set *s,
		       struct mqtx_err *err)
{
	enum mqtx_txpub_mode mode;
	if (mqtx_txpub_effective_mode(cfg, o->mode, false, &mode, err) < 0) {
		set_all(s, MQTX_MSG_PENDING, err->msg);
		return -1;
	}
	size_t bs = s->batch_size > 0 && s->batch_size < s->n ? s->batch_size : s->n;
	struct mqtx_backend_opts bo;
	backend_opts(o, mode, bs, &bo);
	char tid[320];
	if (mode == MQTX_TXPUB_KAFKA_TX) {
		/* unique per process: txpub has nothing to fence */
		char host[256] = "";
		gethostname(host, sizeof(host) - 1);
		snprintf(tid, sizeof(tid), "mqtx-txpub:%s:%ld:%lld", host, (long)getpid(), (long long)mqtx_wall_ms());
		bo.transactional_id = tid;
	}
	struct mqtx_backend *b = mqtx_backend_open(cfg, &bo, err);
	if (b == NULL) {
		set_all(s, MQTX_MSG_PENDING, err->msg);
		return -1;
	}
	/* confirming one at a time hands over one message per call */
	size_t unit = mode == MQTX_TXPUB_CONFIRM && o->confirm == MQTX_TXPUB_SYNC ? 1 : bs;
	int rc = 0;
	for (size_t pos = 0; pos < s->n;) {
		if (o->stop != NULL && *o->stop) {
			mark_unsent(s, pos, s->n, "not sent: stopped by a signal");
			break;
		}
		size_t len = s->n - pos < unit ? s->n - pos : unit;
		int r = mqtx_backend_publish(b, s->msgs + pos, len, err);
		bool all = true;
		for (size_t i = pos; i < pos + len; i++)
			all = all && s->msgs[i].state == MQTX_MSG_CONFIRMED;
		mark_unsent(s, pos, pos + len,
			    r < 0 ? "not sent: the broker connection broke" : "not sent: held back behind a failed message");
		pos += len;
		if (r < 0) {
			rc = -1;
			mark_unsent(s, pos, s->n, "not sent: the broker connection broke");
			break;
		}
		if (!all) {
			mark_unsent(s, pos, s->n,
				    unit == 1 ? "not sent: an earlier message was not published" : "not sent: an earlier batch was not published");
			break;
		}
	}
	mqtx_backend_close(b);
	return rc;
}

/* ------------------------------------------------------------- outbox SQL */

struct ob {
	PGconn *conn;
	const struct mqtx_config *cfg;
	char *T;     /* "schema"."table" */
	char *L;     /* "schema".mqtx_txpub_log */
	char *q[MQTX_COL__COUNT];
};

static void ob_init(struct ob *o, PGconn *conn, const struct mqtx_config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->conn = conn;
	o->cfg = cfg;
	char *qs = mqtx_pg_ident(conn, cfg->outbox_schema);
	char *qt = mqtx_pg_ident(conn, cfg->outbox_table);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "%s.%s", qs, qt);
	o->T = mqtx_buf_detach(&b);
	mqtx_buf_printf(&b, "%s.mqtx_txpub_log", qs);
	o->L = mqtx_buf_detach(&b);
	free(qs);
	free(qt);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		if (cfg->outbox_columns[c] != NULL && cfg->outbox_columns[c][0] != '\0')
			o->q[c] = mqtx_pg_ident(conn, cfg->outbox_columns[c]);
}

static void ob_free(struct ob *o)
{
	free(o->T);
	free(o->L);
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		free(o->q[c]);
}

static int need_key_column(const struct ob *o, const char *what, struct mqtx_err *err)
{
	if (o->q[MQTX_COL_KEY] == NULL)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "%s needs an idempotency key column in the outbox (outbox.columns.idempotency_key is empty)", what);
	return 0;
}

/* JSON array of the given keys, for "key IN (SELECT jsonb_array_elements_text($1))". */
static char *keys_json(const char *const *keys, size_t n)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_addc(&b, '[');
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			mqtx_buf_addc(&b, ',');
		mqtx_json_add_cstr(&b, keys[i]);
	}
	mqtx_buf_addc(&b, ']');
	return mqtx_buf_detach(&b);
}

static char *set_keys_json(const struct mqtx_txpub_set *s, enum mqtx_msg_state only, bool all)
{
	const char **k = mqtx_xcalloc(s->n + 1, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		if (all || s->msgs[i].state == only)
			k[n++] = s->msgs[i].key;
	char *j = keys_json(k, n);
	free(k);
	return j;
}

static int exec_params(struct ob *o, const char *sql, int n, const char *const *v, ExecStatusType want,
		       const char *doing, PGresult **out, struct mqtx_err *err)
{
	PGresult *res = PQexecParams(o->conn, sql, n, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != want)
		return mqtx_pg_fail(o->conn, res, doing, err);
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

static void rollback_quietly(PGconn *conn)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

/* Statuses of the outbox rows with these keys: out[i] = status of keys[i] or "". */
static int find_statuses(struct ob *o, const char *const *keys, size_t n, bool lock, char (*out)[16],
			 struct mqtx_err *err)
{
	char *json = keys_json(keys, n);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT t.%s::text, t.%s::text FROM %s t WHERE t.%s IN (SELECT jsonb_array_elements_text($1::jsonb))%s",
			o->q[MQTX_COL_KEY], o->q[MQTX_COL_STATUS], o->T, o->q[MQTX_COL_KEY], lock ? " FOR UPDATE OF t" : "");
	const char *p[1] = {json};
	PGresult *res = NULL;
	int rc = exec_params(o, sql.data, 1, p, PGRES_TUPLES_OK, "cannot look up keys in the outbox", &res, err);
	mqtx_buf_free(&sql);
	free(json);
	if (rc < 0)
		return -1;
	struct keyidx *ki = mqtx_xcalloc(n + 1, sizeof(*ki));
	for (size_t i = 0; i < n; i++) {
		out[i][0] = '\0';
		ki[i].key = keys[i];
		ki[i].i = i;
	}
	qsort(ki, n, sizeof(*ki), cmp_keyidx);
	for (int r = 0; r < PQntuples(res); r++) {
		struct keyidx want = {.key = PQgetvalue(res, r, 0), .i = 0};
		/* first entry with this key, then all equal ones */
		size_t lo = 0, hi = n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (strcmp(ki[mid].key, want.key) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t j = lo; j < n && strcmp(ki[j].key, want.key) == 0; j++)
			snprintf(out[ki[j].i], 16, "%s", PQgetvalue(res, r, 1));
	}
	free(ki);
	PQclear(res);
	return 0;
}

/* Headers as the JSON object the outbox column holds. */
static int headers_json(const struct mqtx_msg *m, const char *where, struct mqtx_buf *b, struct mqtx_err *err)
{
	mqtx_buf_addc(b, '{');
	for (size_t i = 0; i < m->n_headers; i++) {
		if (memchr(m->headers[i].value, '\0', m->headers[i].value_len) != NULL)
			return mqtx_err_set(err, MQTX_E_INPUT, "%s: header '%s' contains a NUL byte, which the outbox cannot store",
					    where, m->headers[i].name);
		if (i > 0)
			mqtx_buf_addc(b, ',');
		mqtx_json_add_cstr(b, m->headers[i].name);
		mqtx_buf_addc(b, ':');
		mqtx_json_add_str(b, m->headers[i].value, m->headers[i].value_len);
	}
	mqtx_buf_addc(b, '}');
	return 0;
}

/* Inserts s->msgs[idx[0..cnt)] with the given status and available_at
 * (SQL literals), INSERT_CHUNK rows per statement. */
static int insert_rows(struct ob *o, const struct mqtx_txpub_set *s, const size_t *idx, size_t cnt,
		       const char *status_sql, const char *avail_sql, bool on_conflict_nothing, struct mqtx_err *err)
{
	static const enum mqtx_col opt_cols[] = {MQTX_COL_ROUTING_KEY, MQTX_COL_ORDERING_KEY, MQTX_COL_HEADERS,
						 MQTX_COL_CONTENT_TYPE};
	bool bytea = strcmp(o->cfg->outbox_payload_type, "bytea") == 0;
	int rc = 0;

	/* what the table cannot hold is an error before anything is written */
	for (size_t k = 0; k < cnt; k++) {
		const struct mqtx_msg *m = &s->msgs[idx[k]];
		const char *where = s->where[idx[k]];
		const void *vals[] = {m->routing_key, m->ordering_key, m->n_headers > 0 ? "" : NULL, m->content_type};
		static const char *const names[] = {"routing_key", "ordering_key", "headers", "content_type"};
		for (size_t c = 0; c < 4; c++)
			if (vals[c] != NULL && o->q[opt_cols[c]] == NULL)
				return mqtx_err_set(err, MQTX_E_CONFIG,
						    "%s: the message has a %s, but the outbox has no column for it (outbox.columns.%s is empty)",
						    where, names[c], names[c]);
		if (!bytea && memchr(m->payload, '\0', m->payload_len) != NULL)
			return mqtx_err_set(err, MQTX_E_INPUT, "%s: the payload contains a NUL byte, which outbox.payload_type %s cannot store",
					    where, o->cfg->outbox_payload_type);
	}
	int per = 3;
	for (size_t c = 0; c < 4; c++)
		per += o->q[opt_cols[c]] != NULL;
	for (size_t base = 0; base < cnt && rc == 0; base += INSERT_CHUNK) {
		size_t rows = cnt - base < INSERT_CHUNK ? cnt - base : INSERT_CHUNK;
		struct mqtx_buf sql = MQTX_BUF_INIT;
		mqtx_buf_printf(&sql, "INSERT INTO %s (%s, %s", o->T, o->q[MQTX_COL_KEY], o->q[MQTX_COL_DESTINATION]);
		for (size_t c = 0; c < 4; c++)
			if (o->q[opt_cols[c]] != NULL)
				mqtx_buf_printf(&sql, ", %s", o->q[opt_cols[c]]);
		mqtx_buf_printf(&sql, ", %s, %s, %s) VALUES ", o->q[MQTX_COL_PAYLOAD], o->q[MQTX_COL_STATUS],
				o->q[MQTX_COL_AVAILABLE_AT]);
		size_t np = rows * (size_t)per;
		const char **v = mqtx_xcalloc(np + 1, sizeof(char *));
		int *lens = mqtx_xcalloc(np + 1, sizeof(int));
		int *fmts = mqtx_xcalloc(np + 1, sizeof(int));
		char **hj = mqtx_xcalloc(rows + 1, sizeof(char *));
		size_t p = 0;
		for (size_t r = 0; r < rows && rc == 0; r++) {
			const struct mqtx_msg *m = &s->msgs[idx[base + r]];
			mqtx_buf_printf(&sql, "%s(", r > 0 ? ", " : "");
			v[p++] = m->key;
			v[p++] = m->destination;
			const char *ov[] = {m->routing_key, m->ordering_key, NULL, m->content_type};
			if (m->n_headers > 0) {
				struct mqtx_buf h = MQTX_BUF_INIT;
				rc = headers_json(m, s->where[idx[base + r]], &h, err);
				hj[r] = mqtx_buf_detach(&h);
				ov[2] = hj[r];
			}
			for (size_t c = 0; c < 4; c++)
				if (o->q[opt_cols[c]] != NULL)
					v[p++] = ov[c];
			lens[p] = (int)m->payload_len;
			fmts[p] = bytea ? 1 : 0;
			v[p++] = m->payload;
			size_t first = p - (size_t)per + 1;
			mqtx_buf_printf(&sql, "$%zu", first);
			for (size_t j = first + 1; j <= p; j++)
				mqtx_buf_printf(&sql, ", $%zu", j);
			mqtx_buf_printf(&sql, ", %s, %s)", status_sql, avail_sql);
		}
		if (on_conflict_nothing)
			mqtx_buf_adds(&sql, " ON CONFLICT DO NOTHING");
		if (rc == 0) {
			PGresult *res = PQexecParams(o->conn, sql.data, (int)p, NULL, v, lens, fmts, 0);
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				rc = mqtx_pg_fail(o->conn, res, "cannot insert into the outbox", err);
			else
				PQclear(res);
		}
		for (size_t r = 0; r < rows; r++)
			free(hj[r]);
		free(hj);
		free(v);
		free(lens);
		free(fmts);
		mqtx_buf_free(&sql);
	}
	return rc;
}

/* ---------------------------------------------------------- half messages */

int mqtx_txpub_prepare(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_txpub_set *s, struct mqtx_err *err)
{
	struct ob o;
	ob_init(&o, conn, cfg);
	int rc = -1;
	char (*found)[16] = mqtx_xcalloc(s->n + 1, 16);
	const char **keys = mqtx_xcalloc(s->n + 1, sizeof(char *));
	size_t *idx = mqtx_xcalloc(s->n + 1, sizeof(size_t));
	size_t nnew = 0;

	if (need_key_column(&o, "txpub --prepare", err) < 0)
		goto out;
	for (size_t i = 0; i < s->n; i++)
		keys[i] = s->msgs[i].key;
	/* prepared rows are nothing for the relay: no wake-up */
	if (mqtx_pg_exec(conn, "BEGIN; SET LOCAL mqtx.skip_notify = on", err) < 0)
		goto out;
	if (find_statuses(&o, keys, s->n, false, found, err) < 0)
		goto out;
	for (size_t i = 0; i < s->n; i++)
		if (found[i][0] == '\0')
			idx[nnew++] = i;
	if (nnew > 0 && insert_rows(&o, s, idx, nnew, "'prepared'", "now()", true, err) < 0)
		goto out;
	if (MQTX_FAILPOINT("txpub.prepare_before_commit") < 0) {
		mqtx_err_set(err, MQTX_E_DB, "failpoint txpub.prepare_before_commit");
		goto out;
	}
	if (mqtx_pg_exec(conn, "COMMIT", err) < 0)
		goto out;
	(void)MQTX_FAILPOINT("txpub.prepare_after_commit");
	for (size_t i = 0; i < s->n; i++) {
		s->msgs[i].state = MQTX_MSG_CONFIRMED;
		s->status[i] = keep(s, mqtx_xstrdup(found[i][0] != '\0' ? found[i] : "prepared"));
		if (found[i][0] != '\0')
			mqtx_debug("half message '%s' exists already (status %s)", keys[i], found[i]);
	}
	rc = 0;
out:
	if (rc < 0)
		rollback_quietly(conn);
	free(found);
	free(keys);
	free(idx);
	ob_free(&o);
	return rc;
}

static bool is_committed_status(const char *st)
{
	return strcmp(st, "pending") == 0 || strcmp(st, "sent") == 0 || strcmp(st, "dead") == 0;
}

int mqtx_txpub_finish_half(PGconn *conn, const struct mqtx_config *cfg, bool commit, struct mqtx_half_key *keys,
			   size_t n, struct mqtx_err *err)
{
	struct ob o;
	ob_init(&o, conn, cfg);
	int rc = -1;
	const char **kv = mqtx_xcalloc(n + 1, sizeof(char *));
	char (*found)[16] = mqtx_xcalloc(n + 1, 16);
	const char *op = commit ? "commit" : "rollback";

	if (need_key_column(&o, commit ? "txpub --commit" : "txpub --rollback", err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		kv[i] = keys[i].key;
		keys[i].changed = false;
	}
	if (mqtx_pg_exec(conn, "BEGIN", err) < 0)
		goto out;
	if (find_statuses(&o, kv, n, true, found, err) < 0)
		goto out;
	int result = MQTX_HALF_DONE;
	for (size_t i = 0; i < n; i++) {
		snprintf(keys[i].before, sizeof(keys[i].before), "%s", found[i]);
		if (commit && strcmp(found[i], "rolled_back") == 0)
			result = MQTX_HALF_CONFLICT;
		else if (!commit && is_committed_status(found[i]))
			result = MQTX_HALF_CONFLICT;
		else if (commit && found[i][0] == '\0' && result == MQTX_HALF_DONE)
			result = MQTX_HALF_MISSING;
	}
	if (result != MQTX_HALF_DONE) {
		rollback_quietly(conn);
		rc = result;
		goto out;
	}
	char *json = keys_json(kv, n);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"UPDATE %s t SET %s = '%s', %s = now() "
			"WHERE t.%s IN (SELECT jsonb_array_elements_text($1::jsonb)) AND t.%s = 'prepared'",
			o.T, o.q[MQTX_COL_STATUS], commit ? "pending" : "rolled_back", o.q[MQTX_COL_AVAILABLE_AT],
			o.q[MQTX_COL_KEY], o.q[MQTX_COL_STATUS]);
	const char *p[1] = {json};
	int r = exec_params(&o, sql.data, 1, p, PGRES_COMMAND_OK,
			    commit ? "cannot commit half messages" : "cannot roll back half messages", NULL, err);
	mqtx_buf_free(&sql);
	free(json);
	if (r < 0)
		goto out;
	if (MQTX_FAILPOINT(commit ? "txpub.commit_before_db_commit" : "txpub.rollback_before_db_commit") < 0) {
		mqtx_err_set(err, MQTX_E_DB, "failpoint txpub.%s_before_db_commit", op);
		goto out;
	}
	if (mqtx_pg_exec(conn, "COMMIT", err) < 0)
		goto out;
	(void)MQTX_FAILPOINT(commit ? "txpub.commit_after_db_commit" : "txpub.rollback_after_db_commit");
	for (size_t i = 0; i < n; i++) {
		keys[i].changed = strcmp(found[i], "prepared") == 0;
		if (keys[i].changed)
			mqtx_info("half message '%s': %s", keys[i].key,
				  commit ? "committed (pending: the relay publishes it)" : "rolled back");
		else if (found[i][0] == '\0')
			mqtx_info("half message '%s': no such message; nothing to roll back", keys[i].key);
		else
			mqtx_info("half message '%s': already %s (status %s)", keys[i].key, commit ? "committed" : "rolled back",
				  found[i]);
	}
	rc = MQTX_HALF_DONE;
out:
	if (rc < 0)
		rollback_quietly(conn);
	free(kv);
	free(found);
	ob_free(&o);
	return rc;
}

/* ------------------------------------------------ last-resource commit */

/* The lock class of txpub's session advisory locks: the oid of the
 * coordinator table, so the numbers cannot meet the relay's (the outbox's
 * oid). Returns 0 with *out, or -1 with err (the table is missing). */
static int lock_class(struct ob *o, int32_t *out, struct mqtx_err *err)
{
	const char *p[1] = {o->L};
	PGresult *res = NULL;
	if (exec_params(o, "SELECT to_regclass($1)::oid::int8", 1, p, PGRES_TUPLES_OK, "cannot look up the coordinator table",
			&res, err) < 0)
		return -1;
	bool missing = PQgetisnull(res, 0, 0);
	if (!missing)
		*out = (int32_t)(uint32_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (missing)
		return mqtx_err_set(err, MQTX_E_CONFIG, "table %s does not exist: run 'mqtx init' (it creates the coordinator table)",
				    o->L);
	return 0;
}

/* pg_try_advisory_lock on (class, hashtext(gid)). 1: taken, 0: busy. */
static int try_lock(struct ob *o, int32_t cls, const char *gid, bool unlock, struct mqtx_err *err)
{
	char c[16];
	snprintf(c, sizeof(c), "%ld", (long)cls);
	const char *p[2] = {c, gid};
	PGresult *res = NULL;
	const char *sql = unlock ? "SELECT pg_advisory_unlock($1::int4, hashtext($2))"
				 : "SELECT pg_try_advisory_lock($1::int4, hashtext($2))";
	if (exec_params(o, sql, 2, p, PGRES_TUPLES_OK, "cannot take an advisory lock", &res, err) < 0)
		return -1;
	int got = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return got;
}

/* COMMIT PREPARED / ROLLBACK PREPARED: the gid can only be a literal. */
static int finish_prepared(PGconn *conn, const char *gid, bool commit, struct mqtx_err *err)
{
	char *lit = PQescapeLiteral(conn, gid, strlen(gid));
	if (lit == NULL)
		return mqtx_pg_fail(conn, NULL, "cannot quote the transaction id", err);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "%s PREPARED %s", commit ? "COMMIT" : "ROLLBACK", lit);
	PQfreemem(lit);
	PGresult *res = PQexec(conn, sql.data);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		char doing[300];
		snprintf(doing, sizeof(doing), "cannot %s prepared transaction '%s'", commit ? "commit" : "roll back", gid);
		return mqtx_pg_fail(conn, res, doing, err);
	}
	PQclear(res);
	return 0;
}

/* Parked rows of the transaction whose xid is given (or, with by_key, of
 * the transaction that inserted the row with that key) become visible to
 * the relay. Returns how many, or -1. */
static long unpark(struct ob *o, const char *xid_or_key, bool by_key, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "UPDATE %s t SET %s = now() WHERE t.%s = 'pending' AND t.%s = 'infinity' AND t.xmin = ", o->T,
			o->q[MQTX_COL_AVAILABLE_AT], o->q[MQTX_COL_STATUS], o->q[MQTX_COL_AVAILABLE_AT]);
	if (by_key)
		mqtx_buf_printf(&sql, "(SELECT k.xmin FROM %s k WHERE k.%s = $1 LIMIT 1)", o->T, o->q[MQTX_COL_KEY]);
	else
		mqtx_buf_adds(&sql, "$1::text::xid");
	const char *p[1] = {xid_or_key};
	PGresult *res = NULL;
	int rc = exec_params(o, sql.data, 1, p, PGRES_COMMAND_OK, "cannot hand parked messages to the relay", &res, err);
	mqtx_buf_free(&sql);
	if (rc < 0)
		return -1;
	long n = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return n;
}

static int delete_log(struct ob *o, const char *gid, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "DELETE FROM %s WHERE gid = $1", o->L);
	const char *p[1] = {gid};
	int rc = exec_params(o, sql.data, 1, p, PGRES_COMMAND_OK, "cannot delete the coordinator record", NULL, err);
	mqtx_buf_free(&sql);
	return rc;
}

/* Wakes relays in --loop mode after rows became claimable without the
 * status change the update trigger watches for. Best effort. */
static void notify_relays(struct ob *o)
{
	const char *p[2] = {o->cfg->outbox_notify_channel, o->cfg->outbox_table};
	PQclear(PQexecParams(o->conn, "SELECT pg_catalog.pg_notify($1, $2)", 2, NULL, p, NULL, NULL, 0));
}

struct lrc {
	struct ob a;  /* connection A: the user's transaction */
	struct ob b;  /* connection B: coordinator record and lock, outside it */
	struct mqtx_txpub_set *s;
	char gid[200];
	bool logged;
};

static int write_log(struct lrc *c, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"INSERT INTO %s (gid, idempotency_key) VALUES ($1, $2) ON CONFLICT (gid) DO UPDATE "
			"SET idempotency_key = EXCLUDED.idempotency_key, confirmed_at = now()",
			c->b.L);
	const char *p[2] = {c->gid, c->s->msgs[0].key};
	int rc = exec_params(&c->b, sql.data, 2, p, PGRES_COMMAND_OK, "cannot write the coordinator record", NULL, err);
	mqtx_buf_free(&sql);
	if (rc == 0)
		c->logged = true;
	return rc;
}

/* Backend callback in tx and kafka-tx modes: every message is with the
 * broker, none visible yet. The record goes first; then the broker commits. */
static int before_commit(void *ctx, struct mqtx_err *err)
{
	struct lrc *c = ctx;
	if (MQTX_FAILPOINT("txpub.after_publish") < 0)
		return mqtx_err_set(err, MQTX_E_BROKER, "failpoint txpub.after_publish");
	if (write_log(c, err) < 0)
		return -1;
	if (MQTX_FAILPOINT("txpub.after_log") < 0)
		return mqtx_err_set(err, MQTX_E_BROKER, "failpoint txpub.after_log");
	return 0;
}

/* Runs the user's SQL and inserts the parked rows, then PREPARE TRANSACTION. */
static int run_and_prepare(struct lrc *c, const char *sql, struct mqtx_err *err)
{
	PGconn *A = c->a.conn;
	/* parked rows need no wake-up, and a transaction that NOTIFYs cannot be prepared */
	if (mqtx_pg_exec(A, "BEGIN; SET LOCAL mqtx.skip_notify = on; SET LOCAL search_path TO DEFAULT", err) < 0)
		return -1;
	PGresult *res = PQexec(A, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
		PQclear(res);
		PQputCopyEnd(A, "COPY is not supported by txpub --sql");
		while ((res = PQgetResult(A)) != NULL)
			PQclear(res);
		rollback_quietly(A);
		return mqtx_err_set(err, MQTX_E_INPUT, "the SQL uses COPY FROM STDIN or TO STDOUT, which txpub --sql cannot serve");
	}
	if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
		int rc = mqtx_pg_fail(A, res, "the SQL failed", err);
		rollback_quietly(A);
		return rc;
	}
	PQclear(res);
	PGTransactionStatusType ts = PQtransactionStatus(A);
	if (ts == PQTRANS_IDLE)
		return mqtx_err_set(err, MQTX_E_INPUT,
				    "the SQL ended the transaction itself (COMMIT, ROLLBACK or END in it?): what it did before that "
				    "may be committed; nothing was published");
	if (ts != PQTRANS_INTRANS) {
		rollback_quietly(A);
		return mqtx_err_set(err, MQTX_E_DB, "the SQL left the transaction in a failed state");
	}
	size_t *idx = mqtx_xcalloc(c->s->n + 1, sizeof(size_t));
	for (size_t i = 0; i < c->s->n; i++)
		idx[i] = i;
	int rc = mqtx_pg_exec(A, "SET LOCAL search_path = pg_catalog", err);
	if (rc == 0)
		rc = insert_rows(&c->a, c->s, idx, c->s->n, "'pending'", "'infinity'", false, err);
	free(idx);
	if (rc < 0) {
		rollback_quietly(A);
		return -1;
	}
	char *lit = PQescapeLiteral(A, c->gid, strlen(c->gid));
	struct mqtx_buf q = MQTX_BUF_INIT;
	mqtx_buf_printf(&q, "PREPARE TRANSACTION %s", lit != NULL ? lit : "''");
	PQfreemem(lit);
	rc = mqtx_pg_exec(A, q.data, err);
	mqtx_buf_free(&q);
	if (rc < 0) {
		rollback_quietly(A);
		if (strstr(err->msg, "max_prepared_transactions") != NULL)
			mqtx_err_prefix(err, "txpub --sql needs PREPARE TRANSACTION (set max_prepared_transactions > 0 in postgresql.conf)");
		else if (strstr(err->msg, "NOTIFY") != NULL)
			mqtx_err_prefix(err, "the SQL (or an outbox trigger older than this mqtx: run 'mqtx init' again) sent a NOTIFY, "
					     "which a prepared transaction cannot");
		return -1;
	}
	return 0;
}

/* After the transaction is committed: confirmed messages are sent, the
 * others go to the relay (which publishes them, perhaps again); the
 * coordinator record is no longer needed. One statement. */
static void settle_rows(struct lrc *c)
{
	struct mqtx_err e;
	struct ob *o = &c->a;
	const char *T = o->T, *st = o->q[MQTX_COL_STATUS], *av = o->q[MQTX_COL_AVAILABLE_AT], *k = o->q[MQTX_COL_KEY];
	const char *att = o->q[MQTX_COL_ATTEMPTS], *sa = o->q[MQTX_COL_SENT_AT];
	char *sent = set_keys_json(c->s, MQTX_MSG_CONFIRMED, false);
	const char **other = mqtx_xcalloc(c->s->n + 1, sizeof(char *));
	size_t no = 0;
	for (size_t i = 0; i < c->s->n; i++)
		if (c->s->msgs[i].state != MQTX_MSG_CONFIRMED)
			other[no++] = c->s->msgs[i].key;
	char *rest = keys_json(other, no);
	free(other);
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "WITH s AS (UPDATE %s t SET %s = 'sent', %s = now(), %s = t.%s + 1", T, st, av, att, att);
	if (sa != NULL)
		mqtx_buf_printf(&sql, ", %s = now()", sa);
	mqtx_buf_printf(&sql,
			" WHERE t.%s IN (SELECT jsonb_array_elements_text($1::jsonb)) AND t.%s = 'pending' AND t.%s = 'infinity' RETURNING 1), "
			"u AS (UPDATE %s t SET %s = now() WHERE t.%s IN (SELECT jsonb_array_elements_text($2::jsonb)) "
			"AND t.%s = 'pending' AND t.%s = 'infinity' RETURNING 1), "
			"d AS (DELETE FROM %s WHERE gid = $3 RETURNING 1) "
			"SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM u), (SELECT count(*) FROM d)",
			k, st, av, T, av, k, st, av, o->L);
	const char *p[3] = {sent, rest, c->gid};
	PGresult *res = NULL;
	if (exec_params(o, sql.data, 3, p, PGRES_TUPLES_OK, "cannot settle the outbox rows", &res, &e) < 0) {
		mqtx_warn("transaction '%s' is committed, but its outbox rows could not be settled (%s): 'mqtx check --resolve' "
			  "hands them to the relay",
			  c->gid, e.msg);
	} else {
		mqtx_debug("transaction '%s': %s row(s) marked sent, %s handed to the relay", c->gid, PQgetvalue(res, 0, 0),
			   PQgetvalue(res, 0, 1));
		bool woke = strcmp(PQgetvalue(res, 0, 1), "0") != 0;
		PQclear(res);
		if (woke)
			notify_relays(o);
	}
	mqtx_buf_free(&sql);
	free(sent);
	free(rest);
}

/* Before anything runs: is this transaction in doubt from an earlier run,
 * or done already? Returns 0 to go on, 1 when r says it is decided, -1. */
static int sql_precheck(struct lrc *c, struct mqtx_sql_result *r, struct mqtx_err *err)
{
	struct mqtx_txpub_set *s = c->s;
	const char *p[1] = {c->gid};
	PGresult *res = NULL;
	if (exec_params(&c->b, "SELECT count(*) FROM pg_catalog.pg_prepared_xacts WHERE gid = $1", 1, p, PGRES_TUPLES_OK,
			"cannot look at prepared transactions", &res, err) < 0)
		return -1;
	bool prepared = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	if (prepared) {
		r->outcome = MQTX_SQL_IN_DOUBT;
		set_all(s, MQTX_MSG_UNKNOWN, "an earlier run of this transaction is still prepared (in doubt)");
		return mqtx_err_set(err, MQTX_E_DB,
				    "transaction '%s' of an earlier run is still prepared (in doubt); 'mqtx check --resolve' decides it",
				    c->gid);
	}
	const char **keys = mqtx_xcalloc(s->n + 1, sizeof(char *));
	char (*found)[16] = mqtx_xcalloc(s->n + 1, 16);
	for (size_t i = 0; i < s->n; i++)
		keys[i] = s->msgs[i].key;
	int rc = find_statuses(&c->b, keys, s->n, false, found, err);
	size_t have = 0;
	for (size_t i = 0; rc == 0 && i < s->n; i++)
		have += found[i][0] != '\0';
	if (rc == 0 && have == s->n) {
		/* a re-run after an unknown outcome: the earlier run committed */
		r->outcome = MQTX_SQL_DONE_BEFORE;
		for (size_t i = 0; i < s->n; i++) {
			s->status[i] = keep(s, mqtx_xstrdup(found[i]));
			if (strcmp(found[i], "sent") == 0) {
				s->msgs[i].state = MQTX_MSG_CONFIRMED;
			} else {
				s->msgs[i].state = MQTX_MSG_UNKNOWN;
				snprintf(s->msgs[i].error, sizeof(s->msgs[i].error),
					 "committed by an earlier run; outbox status %s (pending: the relay publishes it)", found[i]);
			}
		}
		rc = 1;
	} else if (rc == 0 && have > 0) {
		for (size_t i = 0; i < s->n; i++)
			if (found[i][0] != '\0') {
				rc = mqtx_err_set(err, MQTX_E_INPUT,
						  "%s: key '%s' is in the outbox already (status %s), the other keys are not: "
						  "not a re-run of the same transaction",
						  s->where[i], keys[i], found[i]);
				break;
			}
	} else if (rc == 0) {
		rc = delete_log(&c->b, c->gid, err); /* a stale record must not decide for this run */
	}
	free(keys);
	free(found);
	return rc;
}

int mqtx_txpub_sql(const struct mqtx_config *cfg, const struct mqtx_txpub_opts *o, const char *sql,
		   struct mqtx_txpub_set *s, struct mqtx_sql_result *r, struct mqtx_err *err)
{
	struct lrc c;
	memset(&c, 0, sizeof(c));
	memset(r, 0, sizeof(*r));
	r->outcome = MQTX_SQL_ROLLED_BACK;
	c.s = s;
	snprintf(c.gid, sizeof(c.gid), GID_PREFIX "%s", s->msgs[0].key);
	snprintf(r->gid, sizeof(r->gid), "%s", c.gid);
	PGconn *A = NULL, *B = NULL;
	struct mqtx_backend *b = NULL;
	int rc = -1;
	enum mqtx_txpub_mode mode;
	char tid[256];

	set_all(s, MQTX_MSG_PENDING, "");
	if (mqtx_txpub_effective_mode(cfg, o->mode, true, &mode, err) < 0)
		goto out;
	if (strlen(s->msgs[0].key) > MAX_SQL_KEY) {
		mqtx_err_set(err, MQTX_E_INPUT, "%s: the key is longer than %d bytes, too long for a transaction id", s->where[0],
			     MAX_SQL_KEY);
		goto out;
	}
	B = mqtx_pg_connect(cfg, "mqtx txpub", err);
	if (B == NULL)
		goto out;
	A = mqtx_pg_connect(cfg, "mqtx txpub", err);
	if (A == NULL)
		goto out;
	ob_init(&c.a, A, cfg);
	ob_init(&c.b, B, cfg);
	int32_t cls;
	if (need_key_column(&c.a, "txpub --sql", err) < 0 || lock_class(&c.b, &cls, err) < 0)
		goto out;
	/* held until B closes: `mqtx check --resolve` leaves a running txpub alone */
	int got = try_lock(&c.b, cls, c.gid, false, err);
	if (got < 0)
		goto out;
	if (got == 0) {
		mqtx_err_set(err, MQTX_E_DB, "another 'mqtx txpub --sql' is working on transaction '%s'", c.gid);
		goto out;
	}
	int pre = sql_precheck(&c, r, err);
	if (pre != 0) {
		rc = pre > 0 ? 0 : -1;
		goto out;
	}

	struct mqtx_backend_opts bo;
	backend_opts(o, mode, s->n, &bo);
	if (mode != MQTX_TXPUB_CONFIRM) {
		bo.before_commit = before_commit;
		bo.before_commit_ctx = &c;
	}
	if (mode == MQTX_TXPUB_KAFKA_TX) {
		/* one id per transaction: a restarted producer fences a stuck one */
		snprintf(tid, sizeof(tid), "mqtx-txpub:%s", c.gid);
		bo.transactional_id = tid;
	}
	b = mqtx_backend_open(cfg, &bo, err);
	if (b == NULL) {
		set_all(s, MQTX_MSG_PENDING, err->msg);
		goto out;
	}
	r->ran = true;
	if (run_and_prepare(&c, sql, err) < 0) {
		set_all(s, MQTX_MSG_PENDING, err->msg);
		goto out;
	}
	r->outcome = MQTX_SQL_IN_DOUBT;
	mqtx_debug("prepared transaction '%s'", c.gid);
	bool failed_early = false;
	if (MQTX_FAILPOINT("txpub.after_prepare_sql") < 0)
		failed_early = mqtx_err_set(err, MQTX_E_BROKER, "failpoint txpub.after_prepare_sql") < 0;
	if (!failed_early && mode == MQTX_TXPUB_CONFIRM) {
		/* confirms cannot be taken back: the record goes before the first publish */
		if (write_log(&c, err) < 0)
			failed_early = true;
		else if (MQTX_FAILPOINT("txpub.after_log") < 0)
			failed_early = mqtx_err_set(err, MQTX_E_BROKER, "failpoint txpub.after_log") < 0;
	}
	int pr = 0;
	if (failed_early) {
		set_all(s, MQTX_MSG_PENDING, err->msg);
	} else {
		pr = mqtx_backend_publish(b, s->msgs, s->n, err);
		(void)MQTX_FAILPOINT("txpub.after_confirm");
	}
	mqtx_backend_close(b);
	b = NULL;
	struct mqtx_txpub_counts n;
	mqtx_txpub_count(s, &n);
	struct mqtx_err e2;
	mqtx_err_clear(&e2);
	if (n.confirmed == 0 && n.in_doubt == 0) {
		/* the broker has nothing: undo the database side */
		if (c.logged && delete_log(&c.b, c.gid, &e2) < 0)
			mqtx_warn("%s", e2.msg);
		if (finish_prepared(A, c.gid, false, &e2) < 0) {
			mqtx_err_set(err, MQTX_E_DB, "%s; 'mqtx check --resolve' rolls it back", e2.msg);
			goto out;
		}
		r->outcome = MQTX_SQL_ROLLED_BACK;
		if (pr < 0 || failed_early)
			rc = -1; /* err says what broke */
		else
			rc = 0;
		goto out;
	}
	if (!c.logged && write_log(&c, &e2) < 0) {
		/* cannot happen: the broker commits only after the record; stay in doubt */
		mqtx_err_set(err, MQTX_E_DB, "%s", e2.msg);
		goto out;
	}
	if (finish_prepared(A, c.gid, true, &e2) < 0) {
		mqtx_err_set(err, MQTX_E_DB, "%s; the coordinator record is written, so 'mqtx check --resolve' commits it", e2.msg);
		goto out;
	}
	r->outcome = MQTX_SQL_COMMITTED;
	(void)MQTX_FAILPOINT("txpub.after_commit_prepared");
	settle_rows(&c);
	rc = pr < 0 ? -1 : 0;
out:
	mqtx_backend_close(b);
	if (c.a.conn != NULL)
		ob_free(&c.a);
	if (c.b.conn != NULL)
		ob_free(&c.b);
	if (A != NULL)
		PQfinish(A);
	if (B != NULL)
		PQfinish(B); /* releases the lock */
	return rc;
}

/* ------------------------------------------------------------- check-back */

enum decision { D_COMMIT, D_ROLLBACK, D_UNKNOWN, D_FAILED };

static const char *decision_name(enum decision d)
{
	switch (d) {
	case D_COMMIT: return "commit";
	case D_ROLLBACK: return "rollback";
	case D_UNKNOWN: return "unknown";
	case D_FAILED: return "failed";
	}
	return "?";
}

static enum decision parse_answer(const char *a)
{
	char w[16];
	size_t k = 0;
	while (isspace((unsigned char)*a))
		a++;
	while (*a != '\0' && !isspace((unsigned char)*a) && k < sizeof(w) - 1)
		w[k++] = (char)tolower((unsigned char)*a++);
	w[k] = '\0';
	while (isspace((unsigned char)*a))
		a++;
	if (*a != '\0')
		return D_FAILED;
	if (strcmp(w, "commit") == 0)
		return D_COMMIT;
	if (strcmp(w, "rollback") == 0)
		return D_ROLLBACK;
	if (strcmp(w, "unknown") == 0)
		return D_UNKNOWN;
	return D_FAILED;
}

/* txpub.check_sql in a transaction of its own, rolled back afterwards:
 * $1 = key, $2 = headers as JSON text. A lost connection is -1. */
static int check_by_sql(PGconn *conn, const struct mqtx_config *cfg, const char *key, const char *headers,
			enum decision *d, char *why, size_t wl, struct mqtx_err *err)
{
	char tmo[32];
	snprintf(tmo, sizeof(tmo), "%lld", (long long)cfg->txpub_check_timeout_ms);
	*d = D_FAILED;
	if (mqtx_pg_exec(conn, "BEGIN; SET LOCAL search_path TO DEFAULT", err) < 0)
		return -1;
	PGresult *res = PQexecParams(conn, "SELECT pg_catalog.set_config('statement_timeout', $1, true)", 1, NULL,
				     (const char *[]){tmo}, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(conn, res, "cannot set statement_timeout", err);
		rollback_quietly(conn);
		return -1;
	}
	PQclear(res);
	static const Oid types[2] = {25, 25}; /* text: an unused $2 is fine */
	const char *p[2] = {key, headers};
	res = PQexecParams(conn, cfg->txpub_check_sql, 2, types, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		struct mqtx_err e;
		mqtx_pg_fail(conn, PQresultStatus(res) == PGRES_COMMAND_OK ? NULL : res, "txpub.check_sql failed", &e);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			PQclear(res);
			snprintf(e.msg, sizeof(e.msg), "txpub.check_sql returned no rows (it must be a SELECT)");
		}
		snprintf(why, wl, "%.500s", e.msg);
		rollback_quietly(conn);
		if (PQstatus(conn) != CONNECTION_OK)
			return mqtx_err_retry(err, MQTX_E_DB, "%s", e.msg);
		return 0;
	}
	if (PQntuples(res) < 1 || PQnfields(res) < 1 || PQgetisnull(res, 0, 0)) {
		snprintf(why, wl, "txpub.check_sql returned no value");
	} else {
		*d = parse_answer(PQgetvalue(res, 0, 0));
		if (*d == D_FAILED)
			snprintf(why, wl, "txpub.check_sql returned '%.60s' (expected commit, rollback or unknown)",
				 PQgetvalue(res, 0, 0));
		else
			snprintf(why, wl, "txpub.check_sql said %s", decision_name(*d));
	}
	PQclear(res);
	rollback_quietly(conn);
	return 0;
}

static bool env_taken(const char *entry)
{
	static const char *const ours[] = {"MQTX_KEY=", "MQTX_HEADERS=", "MQTX_DESTINATION=", "MQTX_ROUTING_KEY=",
					   "MQTX_AGE_SECONDS="};
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (strncmp(entry, ours[i], strlen(ours[i])) == 0)
			return true;
	return false;
}

/* txpub.check_command through /bin/sh, the key as its last argument (never
 * part of the command text), facts in the environment. */
static enum decision check_by_command(const struct mqtx_config *cfg, const char *key, const char *headers,
				      const char *dest, const char *rk, int64_t age_ms, char *why, size_t wl)
{
	struct mqtx_buf script = MQTX_BUF_INIT, e1 = MQTX_BUF_INIT, e2 = MQTX_BUF_INIT, e3 = MQTX_BUF_INIT,
			e4 = MQTX_BUF_INIT, e5 = MQTX_BUF_INIT;
	mqtx_buf_printf(&script, "%s \"$@\"", cfg->txpub_check_command);
	mqtx_buf_printf(&e1, "MQTX_KEY=%s", key);
	mqtx_buf_printf(&e2, "MQTX_HEADERS=%s", headers != NULL ? headers : "{}");
	mqtx_buf_printf(&e3, "MQTX_DESTINATION=%s", dest != NULL ? dest : "");
	mqtx_buf_printf(&e4, "MQTX_ROUTING_KEY=%s", rk != NULL ? rk : "");
	mqtx_buf_printf(&e5, "MQTX_AGE_SECONDS=%lld", (long long)(age_ms / 1000));
	size_t ne = 0;
	while (environ[ne] != NULL)
		ne++;
	char **envp = mqtx_xcalloc(ne + 6, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < ne; i++)
		if (!env_taken(environ[i]))
			envp[k++] = environ[i];
	envp[k++] = e1.data;
	envp[k++] = e2.data;
	envp[k++] = e3.data;
	envp[k++] = e4.data;
	envp[k++] = e5.data;
	char *argv[] = {"sh", "-c", script.data, "mqtx-check", (char *)key, NULL};
	enum decision d = D_FAILED;

	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		dup2(2, 1); /* our stdout carries data only */
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	if (pid < 0) {
		snprintf(why, wl, "cannot start txpub.check_command: %s", strerror(errno));
		goto out;
	}
	setpgid(pid, pid);
	int64_t deadline = mqtx_now_ms() + cfg->txpub_check_timeout_ms;
	int status = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(why, wl, "cannot wait for txpub.check_command: %s", strerror(errno));
			goto out;
		}
		if (mqtx_now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			snprintf(why, wl, "txpub.check_command did not finish within txpub.check_timeout (%lldms)",
				 (long long)cfg->txpub_check_timeout_ms);
			goto out;
		}
		mqtx_sleep_ms(10);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) <= 2) {
		static const enum decision by_code[] = {D_COMMIT, D_ROLLBACK, D_UNKNOWN};
		d = by_code[WEXITSTATUS(status)];
		snprintf(why, wl, "txpub.check_command exited %d (%s)", WEXITSTATUS(status), decision_name(d));
	} else if (WIFEXITED(status)) {
		snprintf(why, wl, "txpub.check_command exited %d (expected 0 commit, 1 rollback, 2 unknown)%s",
			 WEXITSTATUS(status), WEXITSTATUS(status) == 127 ? ": command not found?" : "");
	} else {
		snprintf(why, wl, "txpub.check_command was killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
out:
	free(envp);
	mqtx_buf_free(&script);
	mqtx_buf_free(&e1);
	mqtx_buf_free(&e2);
	mqtx_buf_free(&e3);
	mqtx_buf_free(&e4);
	mqtx_buf_free(&e5);
	return d;
}

/* ------------------------------------------------------------- resolution */

static int ensure_idle(PGconn *conn, struct mqtx_err *err)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		return mqtx_err_set(err, MQTX_E_INTERNAL, "txpub resolution must run outside a transaction");
	return 0;
}

static char *half_query(const struct ob *o, bool with_details)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT t.%s::int8, t.%s::text, (extract(epoch FROM now() - t.%s) * 1000)::int8", o->q[MQTX_COL_ID],
			o->q[MQTX_COL_KEY], o->q[MQTX_COL_AVAILABLE_AT]);
	if (with_details) {
		if (o->q[MQTX_COL_HEADERS] != NULL)
			mqtx_buf_printf(&sql, ", t.%s::text", o->q[MQTX_COL_HEADERS]);
		else
			mqtx_buf_adds(&sql, ", NULL::text");
		mqtx_buf_printf(&sql, ", t.%s::text", o->q[MQTX_COL_DESTINATION]);
		if (o->q[MQTX_COL_ROUTING_KEY] != NULL)
			mqtx_buf_printf(&sql, ", t.%s::text", o->q[MQTX_COL_ROUTING_KEY]);
		else
			mqtx_buf_adds(&sql, ", NULL::text");
	}
	mqtx_buf_printf(&sql, " FROM %s t WHERE t.%s = 'prepared' AND t.%s <= now() - $1::int8 * interval '1 millisecond' "
			      "ORDER BY t.%s LIMIT %d",
			o->T, o->q[MQTX_COL_STATUS], o->q[MQTX_COL_AVAILABLE_AT], o->q[MQTX_COL_ID], RESOLVE_LIMIT);
	return mqtx_buf_detach(&sql);
}

static int resolve_half(struct ob *o, const struct mqtx_config *cfg, struct mqtx_resolve_stats *st,
			struct mqtx_err *err)
{
	if (o->q[MQTX_COL_KEY] == NULL)
		return 0; /* no key column: no half messages */
	char after[32];
	snprintf(after, sizeof(after), "%lld", (long long)cfg->txpub_check_after_ms);
	char *sql = half_query(o, true);
	const char *p[1] = {after};
	PGresult *rows = NULL;
	int rc = exec_params(o, sql, 1, p, PGRES_TUPLES_OK, "cannot look for prepared half messages", &rows, err);
	free(sql);
	if (rc < 0)
		return -1;
	struct mqtx_buf upd = MQTX_BUF_INIT;
	mqtx_buf_printf(&upd, "UPDATE %s t SET %s = $2, %s = now() WHERE t.%s = $1::int8 AND t.%s = 'prepared'", o->T,
			o->q[MQTX_COL_STATUS], o->q[MQTX_COL_AVAILABLE_AT], o->q[MQTX_COL_ID], o->q[MQTX_COL_STATUS]);
	for (int r = 0; r < PQntuples(rows) && rc == 0; r++) {
		const char *id = PQgetvalue(rows, r, 0), *key = PQgetvalue(rows, r, 1);
		int64_t age = strtoll(PQgetvalue(rows, r, 2), NULL, 10);
		const char *headers = PQgetisnull(rows, r, 3) ? NULL : PQgetvalue(rows, r, 3);
		const char *dest = PQgetvalue(rows, r, 4);
		const char *rk = PQgetisnull(rows, r, 5) ? NULL : PQgetvalue(rows, r, 5);
		char why[600], agetxt[32], maxtxt[32];
		enum decision d = D_UNKNOWN;
		mqtx_format_duration(age, agetxt, sizeof(agetxt));
		mqtx_format_duration(cfg->txpub_check_max_age_ms, maxtxt, sizeof(maxtxt));
		if (age >= cfg->txpub_check_max_age_ms) {
			d = strcmp(cfg->txpub_check_default, "commit") == 0 ? D_COMMIT : D_ROLLBACK;
			snprintf(why, sizeof(why), "older than txpub.check_max_age (%s): txpub.check_default is %s", maxtxt,
				 cfg->txpub_check_default);
		} else if (cfg->txpub_check_sql != NULL && cfg->txpub_check_sql[0] != '\0') {
			if (check_by_sql(o->conn, cfg, key, headers, &d, why, sizeof(why), err) < 0) {
				rc = -1;
				break;
			}
		} else if (cfg->txpub_check_command != NULL && cfg->txpub_check_command[0] != '\0') {
			d = check_by_command(cfg, key, headers, dest, rk, age, why, sizeof(why));
		} else {
			snprintf(why, sizeof(why), "no check-back configured (txpub.check_sql or txpub.check_command); "
						   "txpub.check_default applies after txpub.check_max_age (%s)",
				 maxtxt);
		}
		if (d == D_UNKNOWN || d == D_FAILED) {
			if (d == D_FAILED) {
				st->failed++;
				mqtx_warn("half message '%s' (id %s, prepared %s ago): left for a later check: %s", key, id, agetxt, why);
			} else {
				st->unknown++;
				mqtx_info("half message '%s' (id %s, prepared %s ago): left for a later check: %s", key, id, agetxt, why);
			}
			continue;
		}
		const char *v[2] = {id, d == D_COMMIT ? "pending" : "rolled_back"};
		PGresult *res = NULL;
		if (exec_params(o, upd.data, 2, v, PGRES_COMMAND_OK, "cannot resolve a half message", &res, err) < 0) {
			if (PQstatus(o->conn) != CONNECTION_OK) {
				rc = -1;
				break;
			}
			st->failed++;
			mqtx_warn("half message '%s': %s", key, err->msg);
			continue;
		}
		bool changed = strcmp(PQcmdTuples(res), "1") == 0;
		PQclear(res);
		if (!changed) {
			mqtx_debug("half message '%s' was resolved meanwhile", key);
			continue;
		}
		if (d == D_COMMIT)
			st->committed++;
		else
			st->rolled_back++;
		mqtx_info("half message '%s' (id %s, prepared %s ago): %s: %s", key, id, agetxt,
			  d == D_COMMIT ? "committed (the relay publishes it)" : "rolled back", why);
	}
	mqtx_buf_free(&upd);
	PQclear(rows);
	return rc;
}

static int log_table_oid(struct ob *o, int32_t *cls, bool *exists, struct mqtx_err *err)
{
	struct mqtx_err e;
	*exists = lock_class(o, cls, &e) == 0;
	if (!*exists && e.kind != MQTX_E_CONFIG) {
		*err = e;
		return -1;
	}
	return 0;
}

static int resolve_xacts(struct ob *o, const struct mqtx_config *cfg, struct mqtx_resolve_stats *st,
			 struct mqtx_err *err)
{
	PGresult *rows = NULL;
	if (exec_params(o,
			"SELECT gid, transaction::text, (extract(epoch FROM now() - prepared) * 1000)::int8 "
			"FROM pg_catalog.pg_prepared_xacts WHERE gid LIKE 'mqtx:%' AND database = current_database() ORDER BY prepared",
			0, NULL, PGRES_TUPLES_OK, "cannot list prepared transactions", &rows, err) < 0)
		return -1;
	int32_t cls = 0;
	bool have_log;
	if (log_table_oid(o, &cls, &have_log, err) < 0) {
		PQclear(rows);
		return -1;
	}
	if (!have_log) {
		if (PQntuples(rows) > 0) {
			mqtx_warn("%d prepared transaction(s) 'mqtx:...' left alone: table %s does not exist (run 'mqtx init')",
				  PQntuples(rows), o->L);
			st->unknown += PQntuples(rows);
		}
		PQclear(rows);
		return 0;
	}
	struct mqtx_buf q = MQTX_BUF_INIT;
	mqtx_buf_printf(&q, "SELECT confirmed_at::text FROM %s WHERE gid = $1", o->L);
	char tmo[32];
	mqtx_format_duration(cfg->txpub_prepared_timeout_ms, tmo, sizeof(tmo));
	int rc = 0;
	for (int r = 0; r < PQntuples(rows) && rc == 0; r++) {
		const char *gid = PQgetvalue(rows, r, 0), *xid = PQgetvalue(rows, r, 1);
		int64_t age = strtoll(PQgetvalue(rows, r, 2), NULL, 10);
		char agetxt[32];
		mqtx_format_duration(age, agetxt, sizeof(agetxt));
		int got = try_lock(o, cls, gid, false, err);
		if (got < 0) {
			rc = -1;
			break;
		}
		if (got == 0) {
			st->unknown++;
			mqtx_info("prepared transaction '%s' (%s old): left alone: the txpub that prepared it is still running", gid,
				  agetxt);
			continue;
		}
		PGresult *lr = NULL;
		const char *p[1] = {gid};
		if (exec_params(o, q.data, 1, p, PGRES_TUPLES_OK, "cannot read the coordinator record", &lr, err) < 0) {
			rc = -1;
		} else if (PQntuples(lr) > 0) {
			struct mqtx_err e;
			if (finish_prepared(o->conn, gid, true, &e) < 0) {
				st->failed++;
				mqtx_warn("%s", e.msg);
			} else {
				long n = unpark(o, xid, false, &e);
				if (n > 0)
					notify_relays(o);
				if (n < 0 || delete_log(o, gid, &e) < 0)
					mqtx_warn("prepared transaction '%s' is committed, but: %s (the next --resolve finishes it)", gid,
						  e.msg);
				st->committed++;
				mqtx_info("prepared transaction '%s' (%s old): committed: its coordinator record (%s) says the broker may "
					  "have its messages; %ld message(s) handed to the relay, which publishes them with the same keys",
					  gid, agetxt, PQgetvalue(lr, 0, 0), n < 0 ? 0 : n);
			}
		} else if (age >= cfg->txpub_prepared_timeout_ms) {
			struct mqtx_err e;
			if (finish_prepared(o->conn, gid, false, &e) < 0) {
				st->failed++;
				mqtx_warn("%s", e.msg);
			} else {
				st->rolled_back++;
				mqtx_info("prepared transaction '%s' (%s old): rolled back: no coordinator record after "
					  "txpub.prepared_timeout (%s), so the broker was never asked to commit",
					  gid, agetxt, tmo);
			}
		} else {
			st->unknown++;
			mqtx_info("prepared transaction '%s' (%s old): left for a later check: no coordinator record yet; rolled back "
				  "once older than txpub.prepared_timeout (%s)",
				  gid, agetxt, tmo);
		}
		PQclear(lr);
		if (rc == 0 && try_lock(o, cls, gid, true, err) < 0)
			rc = -1;
	}
	PQclear(rows);
	mqtx_buf_free(&q);
	if (rc < 0)
		return -1;

	/* Records whose transaction was committed by a txpub that died before
	 * settling its rows: those rows wait, parked, for the relay. */
	mqtx_buf_printf(&q,
			"SELECT l.gid, l.idempotency_key FROM %s l WHERE NOT EXISTS "
			"(SELECT 1 FROM pg_catalog.pg_prepared_xacts p WHERE p.gid = l.gid)",
			o->L);
	rc = exec_params(o, q.data, 0, NULL, PGRES_TUPLES_OK, "cannot read the coordinator records", &rows, err);
	mqtx_buf_free(&q);
	if (rc < 0)
		return -1;
	for (int r = 0; r < PQntuples(rows) && rc == 0; r++) {
		const char *gid = PQgetvalue(rows, r, 0), *key = PQgetvalue(rows, r, 1);
		int got = try_lock(o, cls, gid, false, err);
		if (got <= 0) {
			rc = got < 0 ? -1 : 0;
			continue; /* its txpub is finishing */
		}
		struct mqtx_err e;
		long n = unpark(o, key, true, &e);
		if (n > 0)
			notify_relays(o);
		if (n < 0 || delete_log(o, gid, &e) < 0) {
			st->failed++;
			mqtx_warn("coordinator record '%s': %s", gid, e.msg);
		} else if (n > 0) {
			mqtx_info("transaction '%s' was committed by a txpub that stopped before settling it: %ld message(s) handed "
				  "to the relay",
				  gid, n);
		} else {
			mqtx_debug("coordinator record '%s' removed: its transaction is settled", gid);
		}
		if (try_lock(o, cls, gid, true, err) < 0)
			rc = -1;
	}
	PQclear(rows);
	return rc;
}

int mqtx_txpub_resolve(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_resolve_stats *st,
		       struct mqtx_err *err)
{
	memset(st, 0, sizeof(*st));
	if (ensure_idle(conn, err) < 0)
		return -1;
	struct ob o;
	ob_init(&o, conn, cfg);
	int rc = resolve_half(&o, cfg, st, err);
	if (rc == 0)
		rc = resolve_xacts(&o, cfg, st, err);
	ob_free(&o);
	return rc;
}

int mqtx_txpub_list_in_doubt(PGconn *conn, const struct mqtx_config *cfg,
			     void (*cb)(void *ctx, const struct mqtx_indoubt *item), void *ctx, struct mqtx_err *err)
{
	struct ob o;
	ob_init(&o, conn, cfg);
	int rc = 0;
	PGresult *rows = NULL;
	char maxtxt[32], tmo[32];
	mqtx_format_duration(cfg->txpub_check_max_age_ms, maxtxt, sizeof(maxtxt));
	mqtx_format_duration(cfg->txpub_prepared_timeout_ms, tmo, sizeof(tmo));
	bool checks = (cfg->txpub_check_sql != NULL && cfg->txpub_check_sql[0] != '\0') ||
		      (cfg->txpub_check_command != NULL && cfg->txpub_check_command[0] != '\0');

	if (o.q[MQTX_COL_KEY] != NULL) {
		char after[32];
		snprintf(after, sizeof(after), "%lld", (long long)cfg->txpub_check_after_ms);
		char *sql = half_query(&o, false);
		const char *p[1] = {after};
		rc = exec_params(&o, sql, 1, p, PGRES_TUPLES_OK, "cannot look for prepared half messages", &rows, err);
		free(sql);
		for (int r = 0; rc == 0 && r < PQntuples(rows); r++) {
			char detail[300];
			int64_t age = strtoll(PQgetvalue(rows, r, 2), NULL, 10);
			if (age >= cfg->txpub_check_max_age_ms)
				snprintf(detail, sizeof(detail), "older than txpub.check_max_age (%s): --resolve applies txpub.check_default (%s)",
					 maxtxt, cfg->txpub_check_default);
			else if (checks)
				snprintf(detail, sizeof(detail), "--resolve asks %s", cfg->txpub_check_sql != NULL && cfg->txpub_check_sql[0] != '\0'
											    ? "txpub.check_sql"
											    : "txpub.check_command");
			else
				snprintf(detail, sizeof(detail),
					 "no check-back configured: txpub.check_default (%s) applies after txpub.check_max_age (%s)",
					 cfg->txpub_check_default, maxtxt);
			struct mqtx_indoubt it = {.kind = "half-message",
						  .key = PQgetvalue(rows, r, 1),
						  .id = strtoll(PQgetvalue(rows, r, 0), NULL, 10),
						  .age_ms = age,
						  .detail = detail};
			cb(ctx, &it);
		}
		if (rc == 0)
			PQclear(rows);
		rows = NULL;
	}
	int32_t cls = 0;
	bool have_log = false;
	if (rc == 0)
		rc = log_table_oid(&o, &cls, &have_log, err);
	if (rc == 0) {
		struct mqtx_buf sql = MQTX_BUF_INIT;
		char clsbuf[16];
		snprintf(clsbuf, sizeof(clsbuf), "%lu", (unsigned long)(uint32_t)cls);
		if (have_log)
			mqtx_buf_printf(&sql,
					"SELECT p.gid, (extract(epoch FROM now() - p.prepared) * 1000)::int8, l.confirmed_at::text, "
					"EXISTS (SELECT 1 FROM pg_catalog.pg_locks k WHERE k.locktype = 'advisory' AND k.classid = $1::oid "
					"AND k.objid = hashtext(p.gid)::oid AND k.objsubid = 2 AND k.granted) "
					"FROM pg_catalog.pg_prepared_xacts p LEFT JOIN %s l ON l.gid = p.gid "
					"WHERE p.gid LIKE 'mqtx:%%' AND p.database = current_database() ORDER BY p.prepared",
					o.L);
		else
			mqtx_buf_adds(&sql, "SELECT p.gid, (extract(epoch FROM now() - p.prepared) * 1000)::int8, NULL::text, false "
					    "FROM pg_catalog.pg_prepared_xacts p WHERE p.gid LIKE 'mqtx:%' AND $1::text IS NOT NULL "
					    "AND p.database = current_database() ORDER BY p.prepared");
		const char *p[1] = {clsbuf};
		rc = exec_params(&o, sql.data, 1, p, PGRES_TUPLES_OK, "cannot list prepared transactions", &rows, err);
		mqtx_buf_free(&sql);
	}
	for (int r = 0; rc == 0 && r < PQntuples(rows); r++) {
		char detail[300];
		int64_t age = strtoll(PQgetvalue(rows, r, 1), NULL, 10);
		bool logged = !PQgetisnull(rows, r, 2);
		bool busy = PQgetvalue(rows, r, 3)[0] == 't';
		if (!have_log)
			snprintf(detail, sizeof(detail), "table %s does not exist (run 'mqtx init'): --resolve leaves it alone", o.L);
		else if (busy)
			snprintf(detail, sizeof(detail), "the txpub that prepared it is still running");
		else if (logged)
			snprintf(detail, sizeof(detail),
				 "coordinator record present: --resolve commits it and hands its messages to the relay");
		else if (age >= cfg->txpub_prepared_timeout_ms)
			snprintf(detail, sizeof(detail), "no coordinator record: --resolve rolls it back");
		else
			snprintf(detail, sizeof(detail), "no coordinator record yet: rolled back once older than txpub.prepared_timeout (%s)",
				 tmo);
		const char *gid = PQgetvalue(rows, r, 0);
		struct mqtx_indoubt it = {.kind = "prepared-xact", .key = gid + strlen(GID_PREFIX), .id = 0, .age_ms = age, .detail = detail};
		cb(ctx, &it);
	}
	if (rows != NULL && rc == 0)
		PQclear(rows);
	ob_free(&o);
	return rc;
}

/* ----------------------------------------------------------------- report */

const char *mqtx_txpub_state_name(enum mqtx_msg_state st)
{
	switch (st) {
	case MQTX_MSG_CONFIRMED: return "confirmed";
	case MQTX_MSG_UNKNOWN: return "in_doubt";
	default: return "not_published";
	}
}

const char *mqtx_txpub_batch_state(const struct mqtx_txpub_set *s, size_t bi, size_t *first, size_t *last)
{
	*first = s->batch_size == 0 ? 0 : bi * s->batch_size;
	*last = s->batch_size == 0 ? s->n : *first + s->batch_size;
	if (*last > s->n)
		*last = s->n;
	size_t ok = 0, doubt = 0;
	for (size_t i = *first; i < *last; i++) {
		ok += s->msgs[i].state == MQTX_MSG_CONFIRMED;
		doubt += s->msgs[i].state == MQTX_MSG_UNKNOWN;
	}
	return doubt > 0 ? "in_doubt" : ok == *last - *first ? "confirmed" : ok == 0 ? "not_published" : "partial";
}
