/* The relay engine (see relay.h).
 *
 * Two slots take turns, each with its own database connection, broker
 * connection and publishing thread, so that two batches are in flight:
 * while batch N waits for its last confirms, batch N+1 is already being
 * published and the main thread records N-1's outcome. Each batch is its
 * own transaction, so the rows and ordering-key buckets of batch N stay
 * locked until its outcome is committed: batch N+1 cannot take them (SKIP
 * LOCKED, try-locks), and per-key order holds. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "relay.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "failpoint.h"
#include "log.h"
#include "outbox.h"
#include "pg.h"
#include "util.h"

struct publish_job {
	struct mqtx_backend *be;
	struct mqtx_batch *b;
	int rc;
	struct mqtx_err err;
	pthread_t thread;
	bool running;
};

struct slot {
	PGconn *pg;
	struct mqtx_outbox *ob;
	struct mqtx_backend *be;
	struct publish_job job;
	struct mqtx_batch *b; /* claimed, being published */
};

struct relay {
	const struct mqtx_config *cfg;
	const struct mqtx_relay_opts *opts;
	struct mqtx_relay_stats *stats;
	struct slot slots[2];
	char relay_id[300];
	int64_t last_heartbeat;
	char last_error[1024];
	int64_t reconnect_delay;
	int64_t claimed; /* rows taken so far, for relay.max_messages */
};

static bool stop_requested(const struct relay *r)
{
	return r->opts->stop != NULL && *r->opts->stop != 0;
}

static void drop_broker(struct relay *r);

static void drop_db(struct relay *r)
{
	/* Transactional ids are leased on the database connections: without
	 * them another relay may take the same ids, so the producers go too. */
	if (r->cfg->relay_kafka_transactions)
		drop_broker(r);
	for (int i = 0; i < 2; i++) {
		mqtx_outbox_free(r->slots[i].ob);
		r->slots[i].ob = NULL;
		if (r->slots[i].pg != NULL)
			PQfinish(r->slots[i].pg);
		r->slots[i].pg = NULL;
	}
}

static void drop_broker(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		mqtx_backend_close(r->slots[i].be);
		r->slots[i].be = NULL;
	}
}

/* Records that this relay is alive, on an idle connection. */
static void heartbeat(struct relay *r, struct mqtx_outbox *ob, bool batch_done, bool stopping)
{
	if (ob == NULL || r->opts->dry_run)
		return;
	int64_t now = mqtx_now_ms();
	if (!stopping && r->last_heartbeat != 0 && now - r->last_heartbeat < r->cfg->relay_heartbeat_interval_ms)
		return;
	struct mqtx_heartbeat hb = {
		.relay_id = r->relay_id,
		.version = r->opts->version,
		.relayed = r->stats->relayed,
		.failed = r->stats->failed,
		.last_error = r->last_error[0] ? r->last_error : NULL,
		.batch_done = batch_done,
		.stopping = stopping,
	};
	struct mqtx_err e;
	if (mqtx_outbox_heartbeat(ob, &hb, &e) < 0)
		mqtx_warn("%s", e.msg);
	r->last_heartbeat = now;
}

/* Sleeps up to ms, waking early on NOTIFY (when listening) or a stop. */
static void nap(struct relay *r, int64_t ms)
{
	int64_t until = mqtx_now_ms() + ms;
	while (!stop_requested(r)) {
		int64_t left = until - mqtx_now_ms();
		if (left <= 0)
			return;
		if (left > 250)
			left = 250;
		if (r->slots[0].ob != NULL) {
			struct mqtx_err e;
			int got = mqtx_outbox_wait(r->slots[0].ob, left, &e);
			if (got != 0) {
				if (got < 0) {
					mqtx_warn("%s", e.msg);
					drop_db(r);
				}
				return;
			}
		} else {
			mqtx_sleep_ms(left);
		}
	}
}

static void remember_error(struct relay *r, const struct mqtx_err *e)
{
	snprintf(r->last_error, sizeof(r->last_error), "%.*s", (int)sizeof(r->last_error) - 1, e->msg);
}

/* In --loop, wait before reconnecting: 0.5s doubling to 30s. */
static void reconnect_pause(struct relay *r)
{
	r->reconnect_delay = r->reconnect_delay == 0 ? 500 : r->reconnect_delay * 2;
	if (r->reconnect_delay > 30000)
		r->reconnect_delay = 30000;
	nap(r, r->reconnect_delay);
}

static int connect_db(struct relay *r, struct mqtx_err *err)
{
	int n = r->opts->dry_run ? 1 : 2;
	for (int i = 0; i < n; i++) {
		r->slots[i].pg = mqtx_pg_connect(r->cfg, "mqtx relay", err);
		if (r->slots[i].pg == NULL)
			goto fail;
		r->slots[i].ob = mqtx_outbox_new(r->slots[i].pg, r->cfg, err);
		if (r->slots[i].ob == NULL)
			goto fail;
	}
	if (!r->opts->dry_run && mqtx_outbox_agree_buckets(r->slots[0].ob, err) < 0)
		goto fail;
	if (r->cfg->relay_loop && mqtx_outbox_listen(r->slots[0].ob, err) < 0)
		goto fail;
	r->last_heartbeat = 0;
	heartbeat(r, r->slots[0].ob, false, false);
	return 0;
fail:
	drop_db(r);
	return -1;
}

/* With relay.kafka_transactions each batch is one producer transaction.
 * The transactional id comes from a relay slot leased on the slot's
 * database connection, so a restarted relay reuses its dead predecessor's
 * id and fences that zombie producer. */
#define MAX_TX_SLOTS 256

static int connect_broker(struct relay *r, struct mqtx_err *err)
{
	struct mqtx_backend_opts bo = {
		.mode = r->cfg->relay_kafka_transactions ? MQTX_PUB_TX : MQTX_PUB_CONFIRM,
		.window = (size_t)r->cfg->relay_confirm_window,
		.client_name = r->relay_id,
		.stop = r->opts->stop,
		.stop_grace_ms = r->cfg->relay_shutdown_grace_ms,
	};
	for (int i = 0; i < 2; i++) {
		char tid[512];
		if (r->cfg->relay_kafka_transactions) {
			int n = mqtx_outbox_lease_slot(r->slots[i].ob, MAX_TX_SLOTS, err);
			if (n < 0) {
				drop_broker(r);
				return -1;
			}
			snprintf(tid, sizeof(tid), "mqtx:%.100s:%.150s.%.150s:relay-%d", PQdb(r->slots[i].pg),
				 r->cfg->outbox_schema, r->cfg->outbox_table, n);
			bo.transactional_id = tid;
			mqtx_debug("relay slot %d: transactional.id '%s'", i, tid);
		}
		r->slots[i].be = mqtx_backend_open(r->cfg, &bo, err);
		if (r->slots[i].be == NULL) {
			drop_broker(r);
			return -1;
		}
	}
	return 0;
}

/* ---- publishing on the worker threads ---- */

/* Publishes the messages of b that are fit to go; rows whose contents are
 * unusable fail on their own. */
static void *publish_main(void *arg)
{
	struct publish_job *j = arg;
	struct mqtx_batch *b = j->b;
	struct mqtx_msg *good = mqtx_xcalloc(b->n + 1, sizeof(*good));
	size_t *from = mqtx_xcalloc(b->n + 1, sizeof(size_t));
	size_t ng = 0;
	struct mqtx_keyset failed = {0};
	for (size_t i = 0; i < b->n; i++) {
		if (b->bad_headers[i] != NULL) {
			b->msgs[i].state = MQTX_MSG_FAILED;
			snprintf(b->msgs[i].error, sizeof(b->msgs[i].error), "%s", b->bad_headers[i]);
			mqtx_keyset_add(&failed, b->msgs[i].ordering_key);
			continue;
		}
		if (mqtx_keyset_has(&failed, b->msgs[i].ordering_key))
			continue; /* stays PENDING behind its failed predecessor */
		good[ng] = b->msgs[i];
		from[ng++] = i;
	}
	mqtx_keyset_free(&failed);
	mqtx_err_clear(&j->err);
	j->rc = mqtx_backend_publish(j->be, good, ng, &j->err);
	for (size_t k = 0; k < ng; k++) {
		b->msgs[from[k]].state = good[k].state;
		memcpy(b->msgs[from[k]].error, good[k].error, sizeof(good[k].error));
	}
	free(good);
	free(from);
	return NULL;
}

static void publish_start(struct publish_job *j, struct mqtx_backend *be, struct mqtx_batch *b)
{
	j->be = be;
	j->b = b;
	j->rc = 0;
	if (pthread_create(&j->thread, NULL, publish_main, j) == 0) {
		j->running = true;
	} else {
		publish_main(j); /* no thread: publish here */
		j->running = false;
	}
}

static int publish_join(struct publish_job *j)
{
	if (j->running)
		pthread_join(j->thread, NULL);
	j->running = false;
	return j->rc;
}

/* The first few failures of a batch by row, the rest as a count. */
static void log_failures(const struct mqtx_batch *b)
{
	size_t shown = 0, more = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct mqtx_msg *m = &b->msgs[i];
		if (m->state != MQTX_MSG_FAILED && m->state != MQTX_MSG_UNKNOWN)
			continue;
		if (shown++ < 5)
			mqtx_warn("row %lld (key '%s', destination '%s'): %s", (long long)m->id, m->key, m->destination,
				  m->error[0] ? m->error : "no confirm from the broker");
		else
			more++;
	}
	if (more > 0)
		mqtx_warn("... and %zu more failed row(s) in this batch", more);
}

/* Claims on slot s; NULL with err on failure, an empty batch when drained. */
static struct mqtx_batch *claim(struct relay *r, int s, struct mqtx_err *err)
{
	size_t limit = (size_t)r->cfg->relay_batch_size;
	if (r->cfg->relay_max_messages > 0) {
		int64_t left = r->cfg->relay_max_messages - r->claimed;
		if (left < (int64_t)limit)
			limit = left > 0 ? (size_t)left : 0;
	}
	struct mqtx_batch *b = mqtx_outbox_claim(r->slots[s].ob, limit, r->opts->dry_run, err);
	if (b != NULL)
		r->claimed += (int64_t)b->n;
	return b;
}

/* Records batch b's outcome on slot s and commits; frees b. */
static int finish(struct relay *r, int s, struct mqtx_batch *b, struct mqtx_err *err)
{
	log_failures(b);
	struct mqtx_finish_stats fs;
	if (mqtx_outbox_finish(r->slots[s].ob, b, &fs, err) < 0) {
		mqtx_error("the broker took %zu message(s) but their outcome could not be recorded; they stay pending and will be sent again (same idempotency keys)",
			   b->n);
		mqtx_batch_free(b);
		return -1;
	}
	mqtx_batch_free(b);
	r->stats->relayed += (int64_t)fs.sent;
	r->stats->failed += (int64_t)fs.failed;
	r->stats->dead += (int64_t)fs.dead;
	r->stats->batches++;
	if (fs.dead > 0)
		mqtx_warn("%zu row(s) reached relay.max_attempts (%lld) and are now dead", fs.dead,
			  (long long)r->cfg->relay_max_attempts);
	mqtx_debug("batch: %zu sent, %zu failed, %zu dead, %zu released", fs.sent, fs.failed, fs.dead, fs.released);
	heartbeat(r, r->slots[s].ob, true, false);
	return 0;
}

static void release(struct relay *r, int s, struct mqtx_batch *b)
{
	mqtx_batch_free(b);
	mqtx_outbox_abort(r->slots[s].ob);
}

static int dry_run(struct relay *r, struct mqtx_err *err)
{
	struct mqtx_batch *b = claim(r, 0, err);
	if (b == NULL)
		return -1;
	for (size_t i = 0; i < b->n; i++) {
		const struct mqtx_msg *m = &b->msgs[i];
		if (r->opts->dry_run_row != NULL)
			r->opts->dry_run_row(r->opts->ctx, m->id, m->key, m->destination, m->routing_key, m->ordering_key,
					     m->payload_len);
	}
	r->stats->relayed += (int64_t)b->n; /* "would relay" */
	release(r, 0, b); /* rows stay pending: one look is all a dry run can take */
	return 0;
}

/* Claims a batch on slot s and starts publishing it. Returns 1 when a
 * batch is on its way, 0 when there was nothing, -1 with err. */
static int fill(struct relay *r, int s, struct mqtx_err *err)
{
	struct slot *sl = &r->slots[s];
	sl->b = claim(r, s, err);
	if (sl->b == NULL)
		return -1;
	if (sl->b->n == 0) {
		release(r, s, sl->b);
		sl->b = NULL;
		return 0;
	}
	if (MQTX_FAILPOINT("relay.after_claim") < 0) {
		release(r, s, sl->b);
		sl->b = NULL;
		return mqtx_err_retry(err, MQTX_E_DB, "failpoint relay.after_claim");
	}
	publish_start(&sl->job, sl->be, sl->b);
	return 1;
}

/* Waits for slot s's publish and records its outcome. Returns the
 * publish verdict (-1: broker broken, perr set) and sets *frc to the
 * recording verdict (-1: database error, ferr set). */
static int settle(struct relay *r, int s, int *frc, struct mqtx_err *perr, struct mqtx_err *ferr)
{
	struct slot *sl = &r->slots[s];
	int prc = publish_join(&sl->job);
	if (prc < 0)
		*perr = sl->job.err;
	(void)MQTX_FAILPOINT("relay.after_confirm");
	*frc = finish(r, s, sl->b, ferr);
	sl->b = NULL;
	return prc;
}

/* Relays until the outbox has nothing eligible. Returns 0 when drained (or
 * stopped), -1 with err. */
static int drain(struct relay *r, struct mqtx_err *err)
{
again:
	if (stop_requested(r))
		return 0;
	int f = fill(r, 0, err);
	if (f <= 0)
		return f;
	for (int i = 0;; i = 1 - i) {
		int o = 1 - i;
		struct mqtx_err cerr, perr, ferr, perr2, ferr2;
		int fo = stop_requested(r) ? 0 : fill(r, o, &cerr);
		int frc, frc2 = 0, prc2 = 0;
		int prc = settle(r, i, &frc, &perr, &ferr);
		if (prc == 0 && frc == 0 && fo == 1)
			continue;
		if (fo == 1) /* the other batch is out: see it through before anything else */
			prc2 = settle(r, o, &frc2, &perr2, &ferr2);
		if (prc < 0 || prc2 < 0) {
			*err = prc < 0 ? perr : perr2;
			drop_broker(r);
			return -1;
		}
		if (frc < 0 || frc2 < 0) {
			*err = frc < 0 ? ferr : ferr2;
			return -1;
		}
		if (fo < 0) {
			*err = cerr;
			return -1;
		}
		/* The look-ahead claim saw nothing while the other batch held its
		 * rows; rows that failed may be eligible again: look once more. */
		goto again;
	}
}

int mqtx_relay_run(const struct mqtx_config *cfg, const struct mqtx_relay_opts *opts, struct mqtx_relay_stats *stats,
		   struct mqtx_err *err)
{
	struct relay r = {.cfg = cfg, .opts = opts, .stats = stats};
	char host[256] = "";
	int rc = 0;
	int64_t start = mqtx_now_ms();

	memset(stats, 0, sizeof(*stats));
	/* Settings problems first, before anything is touched. */
	const struct mqtx_backend_ops *ops = opts->dry_run ? NULL : mqtx_backend_find(cfg->broker_url, err);
	if (!opts->dry_run && ops == NULL)
		return -1;
	if (ops != NULL && cfg->relay_kafka_transactions && !mqtx_backend_has_fenced_transactions(ops))
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "relay.kafka_transactions (--transactional) needs a kafka:// or kafkas:// broker");
	if (cfg->database_url == NULL || cfg->database_url[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG, "no database URL (set --database-url, MQTX_DATABASE_URL or database.url)");
	gethostname(host, sizeof(host) - 1);
	snprintf(r.relay_id, sizeof(r.relay_id), "%s:%ld:%lld", host, (long)getpid(), (long long)mqtx_wall_ms());
	srandom((unsigned)(mqtx_wall_ms() ^ getpid()));

	while (!stop_requested(&r)) {
		if (cfg->relay_max_time_ms > 0 && mqtx_now_ms() - start >= cfg->relay_max_time_ms)
			break;
		if (cfg->relay_max_messages > 0 && r.claimed >= cfg->relay_max_messages)
			break;
		if (r.slots[0].pg == NULL && connect_db(&r, err) < 0) {
			if (!cfg->relay_loop || !err->retriable) {
				rc = -1;
				break;
			}
			remember_error(&r, err);
			mqtx_warn("%s; retrying", err->msg);
			reconnect_pause(&r);
			continue;
		}
		if (opts->dry_run) {
			rc = dry_run(&r, err);
			break;
		}
		if (r.slots[0].be == NULL && connect_broker(&r, err) < 0) {
			if (!cfg->relay_loop || err->kind == MQTX_E_CONFIG) {
				rc = -1;
				break;
			}
			remember_error(&r, err);
			heartbeat(&r, r.slots[0].ob, false, false);
			mqtx_warn("%s; retrying", err->msg);
			reconnect_pause(&r);
			continue;
		}
		if (drain(&r, err) == 0) {
			r.reconnect_delay = 0;
			if (!cfg->relay_loop)
				break;
			heartbeat(&r, r.slots[0].ob, false, false);
			nap(&r, cfg->relay_poll_interval_ms);
			continue;
		}
		remember_error(&r, err);
		if (err->kind == MQTX_E_DB) {
			bool fatal = !err->retriable;
			drop_db(&r);
			if (!cfg->relay_loop || fatal) {
				rc = -1;
				break;
			}
		} else if (!cfg->relay_loop) {
			rc = -1;
			break;
		}
		mqtx_warn("%s; retrying", err->msg);
		reconnect_pause(&r);
	}
	heartbeat(&r, r.slots[0].ob, false, true);
	drop_broker(&r);
	drop_db(&r);
	stats->elapsed_ms = mqtx_now_ms() - start;
	return rc;
}
