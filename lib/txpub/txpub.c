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
#include "db/txpub.h"
#include "base/sha256.h"
#include "base/util.h"

extern char **environ;

/* gid = "mqtx:" + key must fit PostgreSQL's 200-byte GID buffer. */
#define GID_PREFIX "mqtx:"
#define MAX_SQL_KEY 194

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
		return mqtx_err_set(err, MQTX_E_INPUT, "%s: %s is %zu bytes long, more than %zu", where, what,
				    strlen(v), max);
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
			mqtx_err_set(err, MQTX_E_INPUT,
				     "%s: no destination (give --destination or a 'destination' field)", where);
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
	struct mqtx_keyidx *ki = mqtx_xcalloc(s->n, sizeof(*ki));
	for (size_t i = 0; i < s->n; i++) {
		ki[i].key = s->msgs[i].key;
		ki[i].i = i;
	}
	qsort(ki, s->n, sizeof(*ki), mqtx_keyidx_cmp);
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

enum mqtx_txpub_verdict mqtx_txpub_verdict(const struct mqtx_txpub_set *s)
{
	struct mqtx_txpub_counts c;
	mqtx_txpub_count(s, &c);
	if (c.confirmed == s->n)
		return MQTX_TXPUB_ALL_CONFIRMED;
	if (c.in_doubt > 0)
		return MQTX_TXPUB_IN_DOUBT;
	return c.confirmed == 0 ? MQTX_TXPUB_NONE_PUBLISHED : MQTX_TXPUB_PARTIAL;
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
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "txpub mode 'tx': the %s broker cannot do transactions (use --mode confirm)", name);
	if (mode == MQTX_TXPUB_TX && fenced)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "txpub mode 'tx': the %s broker's transactions need a fencing transactional id (use --mode kafka-tx)",
				    name);
	if (mode == MQTX_TXPUB_KAFKA_TX && !fenced)
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "txpub mode 'kafka-tx': the %s broker cannot do fenced transactions (use --mode %s)",
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
	if (mqtx_txpub_mode_for(ops, mode, for_sql, out, err) == 0)
		return 0;
	/* --mode on the command line is a usage error; txpub.mode from the
	 * file or the environment a configuration error that says where */
	const char *o = mqtx_config_origin(cfg, "txpub.mode");
	if (o != NULL && strncmp(o, "option", 6) == 0) {
		err->kind = MQTX_E_USAGE;
	} else if (o != NULL) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, " (txpub.mode from %s)", o);
	}
	return -1;
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
			    r < 0 ? "not sent: the broker connection broke"
				  : "not sent: held back behind a failed message");
		pos += len;
		if (r < 0) {
			rc = -1;
			mark_unsent(s, pos, s->n, "not sent: the broker connection broke");
			break;
		}
		if (!all) {
			mark_unsent(s, pos, s->n,
				    unit == 1 ? "not sent: an earlier message was not published"
					      : "not sent: an earlier batch was not published");
			break;
		}
	}
	mqtx_backend_close(b);
	return rc;
}

/* ------------------------------------------------------------- outbox rows */

static int need_key_column(const struct mqtx_txpub_db *o, const char *what, struct mqtx_err *err)
{
	if (!mqtx_txpub_db_has_col(o, MQTX_COL_KEY))
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "%s needs an idempotency key column in the outbox (outbox.columns.idempotency_key is empty)",
				    what);
	return 0;
}

/* The keys of the set, owned array of borrowed strings. */
static const char **set_keys(const struct mqtx_txpub_set *s)
{
	const char **k = mqtx_xcalloc(s->n + 1, sizeof(char *));
	for (size_t i = 0; i < s->n; i++)
		k[i] = s->msgs[i].key;
	return k;
}

/* ---------------------------------------------------------- half messages */

int mqtx_txpub_prepare(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_txpub_set *s, struct mqtx_err *err)
{
	struct mqtx_txpub_db *o = mqtx_txpub_db_new(conn, cfg);
	int rc = -1;
	char(*found)[16] = mqtx_xcalloc(s->n + 1, 16);
	const char **keys = set_keys(s);
	size_t *idx = mqtx_xcalloc(s->n + 1, sizeof(size_t));
	size_t nnew = 0;

	if (need_key_column(o, "txpub --prepare", err) < 0)
		goto out;
	/* prepared rows are nothing for the relay: no wake-up */
	if (mqtx_txpub_db_begin(o, true, err) < 0)
		goto out;
	if (mqtx_txpub_db_statuses(o, keys, s->n, false, found, err) < 0)
		goto out;
	for (size_t i = 0; i < s->n; i++)
		if (found[i][0] == '\0')
			idx[nnew++] = i;
	if (nnew > 0 && mqtx_txpub_db_insert(o, s->msgs, s->where, idx, nnew, MQTX_TXPUB_ROW_PREPARED, err) < 0)
		goto out;
	if (MQTX_FAILPOINT("txpub.prepare_before_commit") < 0) {
		mqtx_err_set(err, MQTX_E_DB, "failpoint txpub.prepare_before_commit");
		goto out;
	}
	if (mqtx_txpub_db_commit(o, err) < 0)
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
		mqtx_txpub_db_rollback(o);
	free(found);
	free(keys);
	free(idx);
	mqtx_txpub_db_free(o);
	return rc;
}

static bool is_committed_status(const char *st)
{
	return strcmp(st, "pending") == 0 || strcmp(st, "sent") == 0 || strcmp(st, "dead") == 0;
}

int mqtx_txpub_finish_half(PGconn *conn, const struct mqtx_config *cfg, bool commit, struct mqtx_half_key *keys,
			   size_t n, struct mqtx_err *err)
{
	struct mqtx_txpub_db *o = mqtx_txpub_db_new(conn, cfg);
	int rc = -1;
	const char **kv = mqtx_xcalloc(n + 1, sizeof(char *));
	char(*found)[16] = mqtx_xcalloc(n + 1, 16);
	const char *op = commit ? "commit" : "rollback";

	if (need_key_column(o, commit ? "txpub --commit" : "txpub --rollback", err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		kv[i] = keys[i].key;
		keys[i].changed = false;
	}
	if (mqtx_txpub_db_begin(o, false, err) < 0)
		goto out;
	if (mqtx_txpub_db_statuses(o, kv, n, true, found, err) < 0)
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
		mqtx_txpub_db_rollback(o);
		rc = result;
		goto out;
	}
	if (mqtx_txpub_db_finish_half(o, kv, n, commit, err) < 0)
		goto out;
	if (MQTX_FAILPOINT(commit ? "txpub.commit_before_db_commit" : "txpub.rollback_before_db_commit") < 0) {
		mqtx_err_set(err, MQTX_E_DB, "failpoint txpub.%s_before_db_commit", op);
		goto out;
	}
	if (mqtx_txpub_db_commit(o, err) < 0)
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
			mqtx_info("half message '%s': already %s (status %s)", keys[i].key,
				  commit ? "committed" : "rolled back", found[i]);
	}
	rc = MQTX_HALF_DONE;
out:
	if (rc < 0)
		mqtx_txpub_db_rollback(o);
	free(kv);
	free(found);
	mqtx_txpub_db_free(o);
	return rc;
}

/* ------------------------------------------------ last-resource commit */

struct lrc {
	struct mqtx_txpub_db *a; /* connection A: the user's transaction */
	struct mqtx_txpub_db *b; /* connection B: coordinator record and lock, outside it */
	struct mqtx_txpub_set *s;
	struct mqtx_sql_result *r;
	char gid[200];
	bool logged;
	enum mqtx_txpub_mode mode;
	char tid[256];
};

static int write_log(struct lrc *c, struct mqtx_err *err)
{
	int rc = mqtx_txpub_db_write_log(c->b, c->gid, c->s->msgs[0].key, err);
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
	if (mqtx_txpub_db_run_user_sql(c->a, sql, err) < 0)
		return -1;
	return mqtx_txpub_db_park_and_prepare(c->a, c->s->msgs, c->s->where, c->s->n, c->gid, err);
}

/* After the transaction is committed: confirmed messages are sent, the
 * others go to the relay (which publishes them, perhaps again); the
 * coordinator record is no longer needed. One statement. */
static void settle_rows(struct lrc *c)
{
	struct mqtx_err e;
	const char **sent = mqtx_xcalloc(c->s->n + 1, sizeof(char *));
	const char **other = mqtx_xcalloc(c->s->n + 1, sizeof(char *));
	size_t ns = 0, no = 0;
	for (size_t i = 0; i < c->s->n; i++) {
		if (c->s->msgs[i].state == MQTX_MSG_CONFIRMED)
			sent[ns++] = c->s->msgs[i].key;
		else
			other[no++] = c->s->msgs[i].key;
	}
	int64_t marked, handed;
	if (mqtx_txpub_db_settle(c->a, sent, ns, other, no, c->gid, &marked, &handed, &e) < 0) {
		mqtx_warn("transaction '%s' is committed, but its outbox rows could not be settled (%s): 'mqtx check --resolve' "
			  "hands them to the relay",
			  c->gid, e.msg);
	} else {
		mqtx_debug("transaction '%s': %lld row(s) marked sent, %lld handed to the relay", c->gid,
			   (long long)marked, (long long)handed);
		if (handed > 0)
			mqtx_txpub_db_notify_relays(c->a);
	}
	free(sent);
	free(other);
}

/* Before anything runs: is this transaction in doubt from an earlier run,
 * or done already? Returns 0 to go on, 1 when r says it is decided, -1. */
static int sql_precheck(struct lrc *c, struct mqtx_sql_result *r, struct mqtx_err *err)
{
	struct mqtx_txpub_set *s = c->s;
	int prepared = mqtx_txpub_db_is_prepared(c->b, c->gid, err);
	if (prepared < 0)
		return -1;
	if (prepared) {
		r->outcome = MQTX_SQL_IN_DOUBT;
		set_all(s, MQTX_MSG_UNKNOWN, "an earlier run of this transaction is still prepared (in doubt)");
		return mqtx_err_set(err, MQTX_E_DB,
				    "transaction '%s' of an earlier run is still prepared (in doubt); 'mqtx check --resolve' decides it",
				    c->gid);
	}
	const char **keys = set_keys(s);
	char(*found)[16] = mqtx_xcalloc(s->n + 1, 16);
	int rc = mqtx_txpub_db_statuses(c->b, keys, s->n, false, found, err);
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
					 "committed by an earlier run; outbox status %s (pending: the relay publishes it)",
					 found[i]);
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
		rc = mqtx_txpub_db_delete_log(c->b, c->gid, err); /* a stale record must not decide for this run */
	}
	free(keys);
	free(found);
	return rc;
}

/* Connects A and B and takes the transaction's lock on B, held until B
 * closes: `mqtx check --resolve` leaves a running txpub alone. */
static int sql_connect(struct lrc *c, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	if ((c->b = mqtx_txpub_db_connect(cfg, err)) == NULL || (c->a = mqtx_txpub_db_connect(cfg, err)) == NULL)
		return -1;
	int32_t cls;
	if (need_key_column(c->a, "txpub --sql", err) < 0 || mqtx_txpub_db_lock_class(c->b, &cls, err) < 0)
		return -1;
	int got = mqtx_txpub_db_try_lock(c->b, cls, c->gid, false, err);
	if (got < 0)
		return -1;
	if (got == 0)
		return mqtx_err_set(err, MQTX_E_DB, "another 'mqtx txpub --sql' is working on transaction '%s'",
				    c->gid);
	return 0;
}

/* The broker connection for the transaction's mode. */
static struct mqtx_backend *sql_open_broker(struct lrc *c, const struct mqtx_config *cfg,
					    const struct mqtx_txpub_opts *o, struct mqtx_err *err)
{
	struct mqtx_backend_opts bo;
	backend_opts(o, c->mode, c->s->n, &bo);
	if (c->mode != MQTX_TXPUB_CONFIRM) {
		bo.before_commit = before_commit;
		bo.before_commit_ctx = c;
	}
	if (c->mode == MQTX_TXPUB_KAFKA_TX) {
		/* one id per transaction: a restarted producer fences a stuck one */
		snprintf(c->tid, sizeof(c->tid), "mqtx-txpub:%s", c->gid);
		bo.transactional_id = c->tid;
	}
	struct mqtx_backend *b = mqtx_backend_open(cfg, &bo, err);
	if (b == NULL)
		set_all(c->s, MQTX_MSG_PENDING, err->msg);
	return b;
}

/* With the transaction prepared: the coordinator record (before the first
 * publish in confirm mode: confirms cannot be taken back), then the
 * messages. Returns the publish result; *failed_early when nothing was
 * handed to the broker. */
static int sql_publish(struct lrc *c, struct mqtx_backend *b, bool *failed_early, struct mqtx_err *err)
{
	*failed_early = false;
	if (MQTX_FAILPOINT("txpub.after_prepare_sql") < 0)
		*failed_early = mqtx_err_set(err, MQTX_E_BROKER, "failpoint txpub.after_prepare_sql") < 0;
	if (!*failed_early && c->mode == MQTX_TXPUB_CONFIRM) {
		if (write_log(c, err) < 0)
			*failed_early = true;
		else if (MQTX_FAILPOINT("txpub.after_log") < 0)
			*failed_early = mqtx_err_set(err, MQTX_E_BROKER, "failpoint txpub.after_log") < 0;
	}
	if (*failed_early) {
		set_all(c->s, MQTX_MSG_PENDING, err->msg);
		return 0;
	}
	int pr = mqtx_backend_publish(b, c->s->msgs, c->s->n, err);
	(void)MQTX_FAILPOINT("txpub.after_confirm");
	return pr;
}

/* The broker has nothing: undo the database side. */
static int sql_undo(struct lrc *c, int pr, bool failed_early, struct mqtx_err *err)
{
	struct mqtx_err e2;
	mqtx_err_clear(&e2);
	if (c->logged && mqtx_txpub_db_delete_log(c->b, c->gid, &e2) < 0)
		mqtx_warn("%s", e2.msg);
	if (mqtx_txpub_db_finish_prepared(c->a, c->gid, false, &e2) < 0)
		return mqtx_err_set(err, MQTX_E_DB, "%s; 'mqtx check --resolve' rolls it back", e2.msg);
	c->r->outcome = MQTX_SQL_ROLLED_BACK;
	return pr < 0 || failed_early ? -1 : 0; /* err says what broke */
}

/* The broker has some or all: commit, then settle the rows. */
static int sql_commit(struct lrc *c, int pr, struct mqtx_err *err)
{
	struct mqtx_err e2;
	mqtx_err_clear(&e2);
	if (!c->logged && write_log(c, &e2) < 0)
		/* cannot happen: the broker commits only after the record; stay in doubt */
		return mqtx_err_set(err, MQTX_E_DB, "%s", e2.msg);
	if (mqtx_txpub_db_finish_prepared(c->a, c->gid, true, &e2) < 0)
		return mqtx_err_set(err, MQTX_E_DB,
				    "%s; the coordinator record is written, so 'mqtx check --resolve' commits it",
				    e2.msg);
	c->r->outcome = MQTX_SQL_COMMITTED;
	(void)MQTX_FAILPOINT("txpub.after_commit_prepared");
	settle_rows(c);
	return pr < 0 ? -1 : 0;
}

int mqtx_txpub_sql(const struct mqtx_config *cfg, const struct mqtx_txpub_opts *o, const char *sql,
		   struct mqtx_txpub_set *s, struct mqtx_sql_result *r, struct mqtx_err *err)
{
	struct lrc c;
	memset(&c, 0, sizeof(c));
	memset(r, 0, sizeof(*r));
	r->outcome = MQTX_SQL_ROLLED_BACK;
	c.s = s;
	c.r = r;
	snprintf(c.gid, sizeof(c.gid), GID_PREFIX "%s", s->msgs[0].key);
	snprintf(r->gid, sizeof(r->gid), "%s", c.gid);
	struct mqtx_backend *b = NULL;
	int rc = -1;

	set_all(s, MQTX_MSG_PENDING, "");
	if (mqtx_txpub_effective_mode(cfg, o->mode, true, &c.mode, err) < 0)
		goto out;
	if (strlen(s->msgs[0].key) > MAX_SQL_KEY) {
		mqtx_err_set(err, MQTX_E_INPUT, "%s: the key is longer than %d bytes, too long for a transaction id",
			     s->where[0], MAX_SQL_KEY);
		goto out;
	}
	if (sql_connect(&c, cfg, err) < 0)
		goto out;
	int pre = sql_precheck(&c, r, err);
	if (pre != 0) {
		rc = pre > 0 ? 0 : -1;
		goto out;
	}
	if ((b = sql_open_broker(&c, cfg, o, err)) == NULL)
		goto out;
	r->ran = true;
	if (run_and_prepare(&c, sql, err) < 0) {
		set_all(s, MQTX_MSG_PENDING, err->msg);
		goto out;
	}
	r->outcome = MQTX_SQL_IN_DOUBT;
	mqtx_debug("prepared transaction '%s'", c.gid);
	bool failed_early;
	int pr = sql_publish(&c, b, &failed_early, err);
	mqtx_backend_close(b);
	b = NULL;
	struct mqtx_txpub_counts n;
	mqtx_txpub_count(s, &n);
	if (n.confirmed == 0 && n.in_doubt == 0)
		rc = sql_undo(&c, pr, failed_early, err);
	else
		rc = sql_commit(&c, pr, err);
out:
	mqtx_backend_close(b);
	mqtx_txpub_db_free(c.a);
	mqtx_txpub_db_free(c.b); /* releases the lock */
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

/* txpub.check_sql (lib/db/txpub.c runs it): $1 = key, $2 = headers as
 * JSON text. A lost connection is -1. */
static int check_by_sql(struct mqtx_txpub_db *o, const char *key, const char *headers, enum decision *d, char *why,
			size_t wl, struct mqtx_err *err)
{
	char *answer = NULL;
	*d = D_FAILED;
	if (mqtx_txpub_db_check_sql(o, key, headers, &answer, why, wl, err) < 0)
		return -1;
	if (answer == NULL)
		return 0; /* why says what went wrong */
	*d = parse_answer(answer);
	if (*d == D_FAILED)
		snprintf(why, wl, "txpub.check_sql returned '%.60s' (expected commit, rollback or unknown)", answer);
	else
		snprintf(why, wl, "txpub.check_sql said %s", decision_name(*d));
	free(answer);
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
		snprintf(why, wl, "txpub.check_command was killed by signal %d",
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
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

struct resolve {
	struct mqtx_txpub_db *o;
	const struct mqtx_config *cfg;
	struct mqtx_resolve_stats *st;
	int32_t cls;
	char tmo[32]; /* txpub.prepared_timeout, for messages */
};

/* What the check-back (or the age) says about a half message. */
static int half_decision(struct resolve *rs, const struct mqtx_half_row *h, enum decision *d, char *why, size_t wl,
			 struct mqtx_err *err)
{
	const struct mqtx_config *cfg = rs->cfg;
	char maxtxt[32];
	mqtx_format_duration(cfg->txpub_check_max_age_ms, maxtxt, sizeof(maxtxt));
	*d = D_UNKNOWN;
	if (h->age_ms >= cfg->txpub_check_max_age_ms) {
		*d = strcmp(cfg->txpub_check_default, "commit") == 0 ? D_COMMIT : D_ROLLBACK;
		snprintf(why, wl, "older than txpub.check_max_age (%s): txpub.check_default is %s", maxtxt,
			 cfg->txpub_check_default);
	} else if (cfg->txpub_check_sql != NULL && cfg->txpub_check_sql[0] != '\0') {
		return check_by_sql(rs->o, h->key, h->headers, d, why, wl, err);
	} else if (cfg->txpub_check_command != NULL && cfg->txpub_check_command[0] != '\0') {
		*d = check_by_command(cfg, h->key, h->headers, h->destination, h->routing_key, h->age_ms, why, wl);
	} else {
		snprintf(why, wl,
			 "no check-back configured (txpub.check_sql or txpub.check_command); "
			 "txpub.check_default applies after txpub.check_max_age (%s)",
			 maxtxt);
	}
	return 0;
}

static int resolve_one_half(void *ctx, const struct mqtx_half_row *h, struct mqtx_err *err)
{
	struct resolve *rs = ctx;
	struct mqtx_resolve_stats *st = rs->st;
	char why[600], agetxt[32];
	enum decision d;
	mqtx_format_duration(h->age_ms, agetxt, sizeof(agetxt));
	if (half_decision(rs, h, &d, why, sizeof(why), err) < 0)
		return -1;
	if (d == D_UNKNOWN || d == D_FAILED) {
		if (d == D_FAILED) {
			st->failed++;
			mqtx_warn("half message '%s' (id %s, prepared %s ago): left for a later check: %s", h->key,
				  h->id, agetxt, why);
		} else {
			st->unknown++;
			mqtx_info("half message '%s' (id %s, prepared %s ago): left for a later check: %s", h->key,
				  h->id, agetxt, why);
		}
		return 0;
	}
	bool changed;
	if (mqtx_txpub_db_resolve_half(rs->o, h->id, d == D_COMMIT, &changed, err) < 0) {
		if (!mqtx_txpub_db_connected(rs->o))
			return -1;
		st->failed++;
		mqtx_warn("half message '%s': %s", h->key, err->msg);
		return 0;
	}
	if (!changed) {
		mqtx_debug("half message '%s' was resolved meanwhile", h->key);
		return 0;
	}
	if (d == D_COMMIT)
		st->committed++;
	else
		st->rolled_back++;
	mqtx_info("half message '%s' (id %s, prepared %s ago): %s: %s", h->key, h->id, agetxt,
		  d == D_COMMIT ? "committed (the relay publishes it)" : "rolled back", why);
	return 0;
}

static int resolve_half(struct resolve *rs, struct mqtx_err *err)
{
	if (!mqtx_txpub_db_has_col(rs->o, MQTX_COL_KEY))
		return 0; /* no key column: no half messages */
	return mqtx_txpub_db_halves(rs->o, rs->cfg->txpub_check_after_ms, true, resolve_one_half, rs, err);
}

static int log_table_oid(struct mqtx_txpub_db *o, int32_t *cls, bool *exists, struct mqtx_err *err)
{
	struct mqtx_err e;
	*exists = mqtx_txpub_db_lock_class(o, cls, &e) == 0;
	if (!*exists && e.kind != MQTX_E_CONFIG) {
		*err = e;
		return -1;
	}
	return 0;
}

/* A prepared transaction with a coordinator record: the broker may have
 * its messages, so it is committed and its rows go to the relay. */
static void commit_logged(struct resolve *rs, const struct mqtx_xact_row *x, const char *agetxt, const char *confirmed)
{
	struct mqtx_err e;
	if (mqtx_txpub_db_finish_prepared(rs->o, x->gid, true, &e) < 0) {
		rs->st->failed++;
		mqtx_warn("%s", e.msg);
		return;
	}
	long n = mqtx_txpub_db_unpark(rs->o, x->xid, false, &e);
	if (n > 0)
		mqtx_txpub_db_notify_relays(rs->o);
	if (n < 0 || mqtx_txpub_db_delete_log(rs->o, x->gid, &e) < 0)
		mqtx_warn("prepared transaction '%s' is committed, but: %s (the next --resolve finishes it)", x->gid,
			  e.msg);
	rs->st->committed++;
	mqtx_info("prepared transaction '%s' (%s old): committed: its coordinator record (%s) says the broker may "
		  "have its messages; %ld message(s) handed to the relay, which publishes them with the same keys",
		  x->gid, agetxt, confirmed, n < 0 ? 0 : n);
}

/* A kafka-tx txpub --sql that died with its producer transaction open
 * leaves read_committed consumers of the transaction's partitions waiting
 * until the broker's transaction timeout. Its transactional id follows
 * from the gid (sql_open_broker): a producer opened with it fences the
 * dead one, and the broker aborts its transaction at once. On a broker
 * without fenced transactions there is nothing to fence; a failure only
 * warns (the timeout still ends the transaction). */
static void fence_leftover(struct resolve *rs, const char *gid)
{
	struct mqtx_err e;
	mqtx_err_clear(&e);
	const struct mqtx_backend_ops *ops = mqtx_backend_find(rs->cfg->broker_url, &e);
	if (ops == NULL || !mqtx_broker_can(ops, MQTX_CAP_FENCED_TRANSACTIONS))
		return;
	char tid[320];
	snprintf(tid, sizeof(tid), "mqtx-txpub:%s", gid);
	struct mqtx_backend_opts bo = {.mode = MQTX_PUB_TX,
				       .transactional_id = tid,
				       .client_name = "mqtx check",
				       .window = 1};
	struct mqtx_backend *b = mqtx_backend_open(rs->cfg, &bo, &e);
	if (b == NULL) {
		mqtx_warn("transaction '%s': cannot fence a producer it may have left open (%s); the broker aborts its "
			  "transaction after the transaction timeout",
			  gid, e.msg);
		return;
	}
	mqtx_backend_close(b);
	mqtx_debug("transaction '%s': transactional id '%s' fenced", gid, tid);
}

static int resolve_one_xact(void *ctx, const struct mqtx_xact_row *x, struct mqtx_err *err)
{
	struct resolve *rs = ctx;
	struct mqtx_resolve_stats *st = rs->st;
	char agetxt[32];
	mqtx_format_duration(x->age_ms, agetxt, sizeof(agetxt));
	int got = mqtx_txpub_db_try_lock(rs->o, rs->cls, x->gid, false, err);
	if (got < 0)
		return -1;
	if (got == 0) {
		st->unknown++;
		mqtx_info("prepared transaction '%s' (%s old): left alone: the txpub that prepared it is still running",
			  x->gid, agetxt);
		return 0;
	}
	char confirmed[64];
	int logged = mqtx_txpub_db_read_log(rs->o, x->gid, confirmed, sizeof(confirmed), err);
	int rc = logged < 0 ? -1 : 0;
	if (logged > 0 || (logged == 0 && x->age_ms >= rs->cfg->txpub_prepared_timeout_ms))
		fence_leftover(rs, x->gid); /* before the decision: nothing of the dead one can commit after it */
	if (logged > 0) {
		commit_logged(rs, x, agetxt, confirmed);
	} else if (logged == 0 && x->age_ms >= rs->cfg->txpub_prepared_timeout_ms) {
		struct mqtx_err e;
		if (mqtx_txpub_db_finish_prepared(rs->o, x->gid, false, &e) < 0) {
			st->failed++;
			mqtx_warn("%s", e.msg);
		} else {
			st->rolled_back++;
			mqtx_info("prepared transaction '%s' (%s old): rolled back: no coordinator record after "
				  "txpub.prepared_timeout (%s), so the broker was never asked to commit",
				  x->gid, agetxt, rs->tmo);
		}
	} else if (logged == 0) {
		st->unknown++;
		mqtx_info("prepared transaction '%s' (%s old): left for a later check: no coordinator record yet; rolled back "
			  "once older than txpub.prepared_timeout (%s)",
			  x->gid, agetxt, rs->tmo);
	}
	if (rc == 0 && mqtx_txpub_db_try_lock(rs->o, rs->cls, x->gid, true, err) < 0)
		rc = -1;
	return rc;
}

static int count_xact(void *ctx, const struct mqtx_xact_row *x, struct mqtx_err *err)
{
	(void)x;
	(void)err;
	(*(int64_t *)ctx)++;
	return 0;
}

/* Records whose transaction was committed by a txpub that died before
 * settling its rows: those rows wait, parked, for the relay. */
static int resolve_orphan(void *ctx, const char *gid, const char *key, struct mqtx_err *err)
{
	struct resolve *rs = ctx;
	int got = mqtx_txpub_db_try_lock(rs->o, rs->cls, gid, false, err);
	if (got <= 0)
		return got < 0 ? -1 : 0; /* its txpub is finishing */
	struct mqtx_err e;
	long n = mqtx_txpub_db_unpark(rs->o, key, true, &e);
	if (n > 0)
		mqtx_txpub_db_notify_relays(rs->o);
	if (n < 0 || mqtx_txpub_db_delete_log(rs->o, gid, &e) < 0) {
		rs->st->failed++;
		mqtx_warn("coordinator record '%s': %s", gid, e.msg);
	} else if (n > 0) {
		mqtx_info("transaction '%s' was committed by a txpub that stopped before settling it: %ld message(s) handed "
			  "to the relay",
			  gid, n);
	} else {
		mqtx_debug("coordinator record '%s' removed: its transaction is settled", gid);
	}
	return mqtx_txpub_db_try_lock(rs->o, rs->cls, gid, true, err) < 0 ? -1 : 0;
}

static int resolve_xacts(struct resolve *rs, struct mqtx_err *err)
{
	bool have_log;
	if (log_table_oid(rs->o, &rs->cls, &have_log, err) < 0)
		return -1;
	if (!have_log) {
		int64_t n = 0;
		if (mqtx_txpub_db_xacts(rs->o, false, 0, count_xact, &n, err) < 0)
			return -1;
		if (n > 0) {
			mqtx_warn("%lld prepared transaction(s) 'mqtx:...' left alone: table %s does not exist (run 'mqtx init')",
				  (long long)n, mqtx_txpub_db_log_table(rs->o));
			rs->st->unknown += n;
		}
		return 0;
	}
	mqtx_format_duration(rs->cfg->txpub_prepared_timeout_ms, rs->tmo, sizeof(rs->tmo));
	if (mqtx_txpub_db_xacts(rs->o, false, rs->cls, resolve_one_xact, rs, err) < 0)
		return -1;
	return mqtx_txpub_db_orphan_logs(rs->o, resolve_orphan, rs, err);
}

int mqtx_txpub_resolve(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_resolve_stats *st, struct mqtx_err *err)
{
	memset(st, 0, sizeof(*st));
	struct resolve rs = {.o = mqtx_txpub_db_new(conn, cfg), .cfg = cfg, .st = st};
	int rc = -1;
	if (!mqtx_txpub_db_idle(rs.o))
		mqtx_err_set(err, MQTX_E_INTERNAL, "txpub resolution must run outside a transaction");
	else if ((rc = resolve_half(&rs, err)) == 0)
		rc = resolve_xacts(&rs, err);
	mqtx_txpub_db_free(rs.o);
	return rc;
}

struct listing {
	const struct mqtx_config *cfg;
	void (*cb)(void *ctx, const struct mqtx_indoubt *item);
	void *ctx;
	bool have_log;
	const char *log_table;
};

static int list_half(void *ctx, const struct mqtx_half_row *h, struct mqtx_err *err)
{
	(void)err;
	struct listing *l = ctx;
	const struct mqtx_config *cfg = l->cfg;
	char detail[300], maxtxt[32];
	mqtx_format_duration(cfg->txpub_check_max_age_ms, maxtxt, sizeof(maxtxt));
	bool by_sql = cfg->txpub_check_sql != NULL && cfg->txpub_check_sql[0] != '\0';
	bool checks = by_sql || (cfg->txpub_check_command != NULL && cfg->txpub_check_command[0] != '\0');
	if (h->age_ms >= cfg->txpub_check_max_age_ms)
		snprintf(detail, sizeof(detail),
			 "older than txpub.check_max_age (%s): --resolve applies txpub.check_default (%s)", maxtxt,
			 cfg->txpub_check_default);
	else if (checks)
		snprintf(detail, sizeof(detail), "--resolve asks %s",
			 by_sql ? "txpub.check_sql" : "txpub.check_command");
	else
		snprintf(detail, sizeof(detail),
			 "no check-back configured: txpub.check_default (%s) applies after txpub.check_max_age (%s)",
			 cfg->txpub_check_default, maxtxt);
	struct mqtx_indoubt it = {.kind = "half-message",
				  .key = h->key,
				  .id = strtoll(h->id, NULL, 10),
				  .age_ms = h->age_ms,
				  .detail = detail};
	l->cb(l->ctx, &it);
	return 0;
}

static int list_xact(void *ctx, const struct mqtx_xact_row *x, struct mqtx_err *err)
{
	(void)err;
	struct listing *l = ctx;
	char detail[300], tmo[32];
	mqtx_format_duration(l->cfg->txpub_prepared_timeout_ms, tmo, sizeof(tmo));
	if (!l->have_log)
		snprintf(detail, sizeof(detail), "table %s does not exist (run 'mqtx init'): --resolve leaves it alone",
			 l->log_table);
	else if (x->busy)
		snprintf(detail, sizeof(detail), "the txpub that prepared it is still running");
	else if (x->logged)
		snprintf(detail, sizeof(detail),
			 "coordinator record present: --resolve commits it and hands its messages to the relay");
	else if (x->age_ms >= l->cfg->txpub_prepared_timeout_ms)
		snprintf(detail, sizeof(detail), "no coordinator record: --resolve rolls it back");
	else
		snprintf(detail, sizeof(detail),
			 "no coordinator record yet: rolled back once older than txpub.prepared_timeout (%s)", tmo);
	struct mqtx_indoubt it = {.kind = "prepared-xact",
				  .key = x->gid + strlen(GID_PREFIX),
				  .id = 0,
				  .age_ms = x->age_ms,
				  .detail = detail};
	l->cb(l->ctx, &it);
	return 0;
}

int mqtx_txpub_list_in_doubt(PGconn *conn, const struct mqtx_config *cfg,
			     void (*cb)(void *ctx, const struct mqtx_indoubt *item), void *ctx, struct mqtx_err *err)
{
	struct mqtx_txpub_db *o = mqtx_txpub_db_new(conn, cfg);
	struct listing l = {.cfg = cfg, .cb = cb, .ctx = ctx, .log_table = mqtx_txpub_db_log_table(o)};
	int rc = 0;
	if (mqtx_txpub_db_has_col(o, MQTX_COL_KEY))
		rc = mqtx_txpub_db_halves(o, cfg->txpub_check_after_ms, false, list_half, &l, err);
	int32_t cls = 0;
	if (rc == 0)
		rc = log_table_oid(o, &cls, &l.have_log, err);
	if (rc == 0)
		rc = mqtx_txpub_db_xacts(o, l.have_log, cls, list_xact, &l, err);
	mqtx_txpub_db_free(o);
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
