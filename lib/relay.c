/* The relay engine (see relay.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "outbox.h"
#include "pg.h"
#include "util.h"

struct relay {
	const struct mqtx_config *cfg;
	const struct mqtx_relay_opts *opts;
	struct mqtx_relay_stats *stats;
	PGconn *pg;
	struct mqtx_outbox *ob;
	struct mqtx_backend *be;
	char relay_id[300];
	int64_t last_heartbeat;
	char last_error[1024];
	int64_t reconnect_delay;
};

static bool stop_requested(const struct relay *r)
{
	return r->opts->stop != NULL && *r->opts->stop != 0;
}

static void drop_db(struct relay *r)
{
	mqtx_outbox_free(r->ob);
	r->ob = NULL;
	if (r->pg != NULL)
		PQfinish(r->pg);
	r->pg = NULL;
}

static void drop_broker(struct relay *r)
{
	mqtx_backend_close(r->be);
	r->be = NULL;
}

static void heartbeat(struct relay *r, bool batch_done, bool stopping)
{
	if (r->ob == NULL || r->opts->dry_run)
		return;
	int64_t now = mqtx_now_ms();
	if (!stopping && now - r->last_heartbeat < r->cfg->relay_heartbeat_interval_ms && r->last_heartbeat != 0)
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
	if (mqtx_outbox_heartbeat(r->ob, &hb, &e) < 0)
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
		if (r->ob != NULL) {
			struct mqtx_err e;
			int got = mqtx_outbox_wait(r->ob, left, &e);
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
	snprintf(r->last_error, sizeof(r->last_error), "%s", e->msg);
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
	r->pg = mqtx_pg_connect(r->cfg, "mqtx relay", err);
	if (r->pg == NULL)
		return -1;
	r->ob = mqtx_outbox_new(r->pg, r->cfg, err);
	if (r->ob == NULL) {
		drop_db(r);
		return -1;
	}
	if (r->cfg->relay_loop && mqtx_outbox_listen(r->ob, err) < 0) {
		drop_db(r);
		return -1;
	}
	r->last_heartbeat = 0;
	heartbeat(r, false, false);
	return 0;
}

static int connect_broker(struct relay *r, struct mqtx_err *err)
{
	struct mqtx_backend_opts bo = {
		.mode = MQTX_PUB_CONFIRM,
		.window = (size_t)r->cfg->relay_confirm_window,
		.client_name = r->relay_id,
		.stop = r->opts->stop,
		.stop_grace_ms = r->cfg->relay_shutdown_grace_ms,
	};
	r->be = mqtx_backend_open(r->cfg, &bo, err);
	return r->be == NULL ? -1 : 0;
}

/* Publishes the messages of b that are fit to go; rows whose contents are
 * unusable fail on their own. Returns the backend's verdict. */
static int publish_batch(struct relay *r, struct mqtx_batch *b, struct mqtx_err *err)
{
	struct mqtx_msg *good = mqtx_xcalloc(b->n + 1, sizeof(*good));
	size_t *from = mqtx_xcalloc(b->n + 1, sizeof(size_t));
	size_t ng = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (b->bad_headers[i] != NULL) {
			b->msgs[i].state = MQTX_MSG_FAILED;
			snprintf(b->msgs[i].error, sizeof(b->msgs[i].error), "%s", b->bad_headers[i]);
			continue;
		}
		good[ng] = b->msgs[i];
		from[ng++] = i;
	}
	int rc = mqtx_backend_publish(r->be, good, ng, err);
	for (size_t k = 0; k < ng; k++) {
		b->msgs[from[k]].state = good[k].state;
		memcpy(b->msgs[from[k]].error, good[k].error, sizeof(good[k].error));
	}
	free(good);
	free(from);
	return rc;
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

/* One batch. Returns 1 when there was work, 0 when the outbox is drained
 * for now, -1 on error (err set; the caller decides whether to go on). */
static int one_batch(struct relay *r, struct mqtx_err *err)
{
	size_t limit = (size_t)r->cfg->relay_batch_size;
	if (r->cfg->relay_max_messages > 0) {
		int64_t left = r->cfg->relay_max_messages - r->stats->relayed - r->stats->failed - r->stats->dead;
		if (left <= 0)
			return 0;
		if ((int64_t)limit > left)
			limit = (size_t)left;
	}
	struct mqtx_batch *b = mqtx_outbox_claim(r->ob, limit, r->opts->dry_run, err);
	if (b == NULL)
		return -1;
	if (b->n == 0) {
		mqtx_batch_free(b);
		mqtx_outbox_abort(r->ob);
		return 0;
	}
	if (r->opts->dry_run) {
		for (size_t i = 0; i < b->n; i++) {
			const struct mqtx_msg *m = &b->msgs[i];
			if (r->opts->dry_run_row != NULL)
				r->opts->dry_run_row(r->opts->ctx, m->id, m->key, m->destination, m->routing_key,
						     m->ordering_key, m->payload_len);
		}
		r->stats->batches++;
		r->stats->relayed += (int64_t)b->n; /* "would relay" */
		mqtx_batch_free(b);
		mqtx_outbox_abort(r->ob);
		return 0; /* rows stay pending: one look is all a dry run can take */
	}
	struct mqtx_err perr;
	mqtx_err_clear(&perr);
	int prc = publish_batch(r, b, &perr);
	log_failures(b);
	struct mqtx_finish_stats fs;
	if (mqtx_outbox_finish(r->ob, b, &fs, err) < 0) {
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
	if (prc < 0) {
		*err = perr;
		drop_broker(r);
		return -1;
	}
	heartbeat(r, true, false);
	return 1;
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
	if (!opts->dry_run && mqtx_backend_find(cfg->broker_url, err) == NULL)
		return -1;
	if (cfg->database_url == NULL || cfg->database_url[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG, "no database URL (set --database-url, MQTX_DATABASE_URL or database.url)");
	gethostname(host, sizeof(host) - 1);
	snprintf(r.relay_id, sizeof(r.relay_id), "%s:%ld:%lld", host, (long)getpid(), (long long)mqtx_wall_ms());
	srandom((unsigned)(mqtx_wall_ms() ^ getpid()));

	while (!stop_requested(&r)) {
		if (cfg->relay_max_time_ms > 0 && mqtx_now_ms() - start >= cfg->relay_max_time_ms)
			break;
		if (cfg->relay_max_messages > 0 && stats->relayed + stats->failed + stats->dead >= cfg->relay_max_messages)
			break;
		if (r.pg == NULL && connect_db(&r, err) < 0) {
			if (!cfg->relay_loop || !err->retriable) {
				rc = -1;
				break;
			}
			remember_error(&r, err);
			mqtx_warn("%s; retrying", err->msg);
			reconnect_pause(&r);
			continue;
		}
		if (r.be == NULL && !opts->dry_run && connect_broker(&r, err) < 0) {
			if (!cfg->relay_loop || err->kind == MQTX_E_CONFIG) {
				rc = -1;
				break;
			}
			remember_error(&r, err);
			heartbeat(&r, false, false);
			mqtx_warn("%s; retrying", err->msg);
			reconnect_pause(&r);
			continue;
		}
		int n = one_batch(&r, err);
		if (n > 0) {
			r.reconnect_delay = 0;
			continue;
		}
		if (n == 0) {
			if (!cfg->relay_loop || opts->dry_run)
				break;
			heartbeat(&r, false, false);
			nap(&r, cfg->relay_poll_interval_ms);
			continue;
		}
		/* n < 0 */
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
	heartbeat(&r, false, true);
	drop_broker(&r);
	drop_db(&r);
	stats->elapsed_ms = mqtx_now_ms() - start;
	return rc;
}
