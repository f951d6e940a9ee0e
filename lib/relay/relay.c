/* The relay engine (see relay.h).
 *
 * Two lanes run side by side, each on its own thread with its own database
 * connection and broker connection: claim a batch, publish it, record its
 * outcome, again. So one lane's database turn overlaps the other's
 * publishing, and on a database-bound broker both lanes' database work
 * runs in parallel. Each batch is its own transaction, so the rows and
 * ordering-key buckets of a batch stay locked until its outcome is
 * committed: the other lane cannot take them (SKIP LOCKED, try-locks), and
 * per-key order holds exactly as between two relays. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "relay/relay.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "base/failpoint.h"
#include "base/log.h"
#include "db/outbox.h"
#include "db/pg.h"
#include "db/retention.h"
#include "base/ratelimit.h"
#include "base/stop.h"
#include "base/util.h"
#include "relay/internal.h"

bool mqtx_relay_stopping(const struct relay *r)
{
	return r->opts->stop != NULL && *r->opts->stop != 0;
}

/* The end of relay.shutdown_grace is kept for recording what the broker
 * answered and the heartbeat: 1 s, or half the grace when it is shorter. */
static int64_t record_reserve_ms(const struct relay *r)
{
	int64_t g = r->cfg->relay_shutdown_grace_ms;
	return g / 2 < 1000 ? g / 2 : 1000;
}

/* Until when broker answers are waited for once a stop was asked for. */
static int64_t answers_grace_ms(const struct relay *r)
{
	return r->cfg->relay_shutdown_grace_ms - record_reserve_ms(r);
}

/* Lane 1 leaves SIGINT, SIGTERM and SIGHUP to the main thread, whose
 * waits notice them. */
bool mqtx_relay_start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigemptyset(&all);
	sigaddset(&all, SIGINT);
	sigaddset(&all, SIGTERM);
	sigaddset(&all, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	bool ok = pthread_create(t, NULL, fn, arg) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ok;
}

static void drop_db(struct relay *r)
{
	/* Transactional ids are leased on the database connections: without
	 * them another relay may take the same ids, so the producers go too. */
	if (r->cfg->relay_kafka_transactions)
		mqtx_relay_drop_broker(r);
	mqtx_retention_free(r->rt);
	r->rt = NULL;
	for (int i = 0; i < 2; i++) {
		mqtx_relay_tail_reset(&r->slots[i]);
		mqtx_tail_free(r->slots[i].tl);
		r->slots[i].tl = NULL;
	}
	for (int i = 0; i < 2; i++) {
		mqtx_outbox_free(r->slots[i].ob);
		r->slots[i].ob = NULL;
		if (r->slots[i].pg != NULL) {
			mqtx_stop_unwatch(mqtx_pg_socket(r->slots[i].pg)); /* before its number can be reused */
			mqtx_pg_close(r->slots[i].pg);
		}
		r->slots[i].pg = NULL;
	}
}

void mqtx_relay_drop_broker(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		mqtx_backend_close(r->slots[i].be);
		r->slots[i].be = NULL;
	}
}

/* Records that this relay is alive, on an idle connection. Either lane
 * may call it; at most one per interval goes to the database. */
void mqtx_relay_heartbeat(struct relay *r, struct mqtx_outbox *ob, bool batch_done, bool stopping)
{
	if (ob == NULL || r->opts->dry_run)
		return;
	int64_t now = mqtx_now_ms();
	pthread_mutex_lock(&r->lock);
	if (!stopping && r->last_heartbeat != 0 && now - r->last_heartbeat < r->cfg->relay_heartbeat_interval_ms) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	r->last_heartbeat = now;
	struct mqtx_heartbeat hb = {
		.relay_id = r->relay_id,
		.version = r->opts->version,
		.relayed = r->stats->relayed,
		.failed = r->stats->failed,
		.last_error = r->last_error[0] ? r->last_error : NULL,
		.batch_done = batch_done,
		.stopping = stopping,
	};
	pthread_mutex_unlock(&r->lock);
	struct mqtx_err e;
	if (mqtx_outbox_heartbeat(ob, &hb, &e) < 0)
		mqtx_warn("%s", e.msg);
}

/* Sleeps up to ms, waking early on a stop, and on NOTIFY when notify
 * (while listening; otherwise notifications are read and dropped). */
static void nap(struct relay *r, int64_t ms, bool notify)
{
	int64_t until = mqtx_now_ms() + ms;
	while (!mqtx_relay_stopping(r)) {
		int64_t left = until - mqtx_now_ms();
		if (left <= 0)
			return;
		if (left > 250)
			left = 250;
		if (r->slots[0].ob != NULL) {
			struct mqtx_err e;
			int got = mqtx_outbox_wait(r->slots[0].ob, left, &e);
			if (got < 0) {
				mqtx_warn("%s", e.msg);
				drop_db(r);
				return;
			}
			if (got > 0 && notify)
				return;
		} else {
			mqtx_sleep_ms(left);
		}
	}
}

static void remember_error(struct relay *r, const struct mqtx_err *e)
{
	snprintf(r->last_error, sizeof(r->last_error), "%.*s", (int)sizeof(r->last_error) - 1, e->msg);
}

/* In --loop, after a connection failure: log it (identical lines at most
 * once per step, the rest counted) and wait before the next attempt,
 * 0.5s doubling to 30s, spread by relay.backoff_jitter. A NOTIFY does not
 * end the wait: while the broker or database is unreachable, every new
 * row would otherwise cause another attempt. */
static void retry_later(struct relay *r, const struct mqtx_err *e)
{
	int64_t prev = r->reconnect_delay;
	r->reconnect_delay = prev == 0 ? 500 : prev * 2;
	if (r->reconnect_delay > 30000)
		r->reconnect_delay = 30000;
	int64_t d = r->reconnect_delay;
	if (r->cfg->relay_backoff_jitter > 0) {
		double j = (double)r->cfg->relay_backoff_jitter / 100.0;
		d = (int64_t)((double)d * (1.0 - j + 2.0 * j * ((double)random() / (double)RAND_MAX)));
	}
	uint64_t repeats = 0;
	/* a step waits at least half its base (jitter up to 50%): each step's line goes through */
	if (mqtx_ratelimit_pass(&r->retry_log, e->msg, prev / 2, &repeats)) {
		char in[32];
		mqtx_format_duration(d, in, sizeof(in));
		if (repeats > 0)
			mqtx_warn("%s; retrying in %s (repeated %llu times)", e->msg, in, (unsigned long long)repeats);
		else
			mqtx_warn("%s; retrying in %s", e->msg, in);
	}
	nap(r, d, false);
}

static int connect_db(struct relay *r, struct mqtx_err *err)
{
	int n = r->opts->dry_run ? 1 : 2;
	for (int i = 0; i < n; i++) {
		r->slots[i].pg = mqtx_pg_connect(r->cfg, "mqtx relay", err);
		if (r->slots[i].pg == NULL)
			goto fail;
		mqtx_stop_watch(mqtx_pg_socket(r->slots[i].pg)); /* a stop's grace bounds every call on it */
		r->slots[i].ob = mqtx_outbox_new(r->slots[i].pg, r->cfg, err);
		if (r->slots[i].ob == NULL)
			goto fail;
		/* relays of the two modes never run side by side on an outbox;
		 * in tail mode each lane counts as a relay of its own */
		if (!r->opts->dry_run && (i == 0 || r->tail) &&
		    mqtx_tail_announce(r->slots[i].pg, r->slots[i].ob, r->tail, err) < 0)
			goto fail;
		if (r->tail) {
			r->slots[i].tl = mqtx_tail_new(r->slots[i].pg, r->slots[i].ob, r->cfg, err);
			if (r->slots[i].tl == NULL)
				goto fail;
		}
	}
	if (!r->tail && !r->opts->dry_run && mqtx_outbox_agree_buckets(r->slots[0].ob, err) < 0)
		goto fail;
	if (r->cfg->relay_loop && mqtx_outbox_listen(r->slots[0].ob, err) < 0)
		goto fail;
	if (!r->opts->dry_run) {
		r->rt = mqtx_retention_new(r->slots[0].pg, r->cfg, err);
		if (r->rt == NULL)
			goto fail;
		const char *note = mqtx_retention_note(r->rt);
		if (note != NULL && !r->note_warned) {
			mqtx_warn("%s", note);
			r->note_warned = true;
		}
	}
	r->last_heartbeat = 0;
	mqtx_relay_heartbeat(r, r->slots[0].ob, false, false);
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
		.stop_grace_ms = answers_grace_ms(r),
	};
	for (int i = 0; i < 2; i++) {
		char tid[512];
		if (r->cfg->relay_kafka_transactions) {
			int n = mqtx_outbox_lease_slot(r->slots[i].ob, MAX_TX_SLOTS, err);
			if (n < 0) {
				mqtx_relay_drop_broker(r);
				return -1;
			}
			snprintf(tid, sizeof(tid), "mqtx:%.100s:%.150s.%.150s:relay-%d", mqtx_pg_dbname(r->slots[i].pg),
				 r->cfg->outbox_schema, r->cfg->outbox_table, n);
			bo.transactional_id = tid;
			mqtx_debug("relay slot %d: transactional.id '%s'", i, tid);
		}
		r->slots[i].be = mqtx_backend_open(r->cfg, &bo, err);
		if (r->slots[i].be == NULL) {
			mqtx_relay_drop_broker(r);
			return -1;
		}
	}
	return 0;
}

/* ---- retention ---- */

/* In --loop a pass is due this often: a minute, or the shortest retention
 * when that is shorter (at least a second). */
static int64_t prune_interval_ms(const struct mqtx_config *cfg)
{
	int64_t every = 60000;
	const int64_t v[2] = {cfg->outbox_retention_ms, cfg->outbox_dead_retention_ms};
	for (int i = 0; i < 2; i++)
		if (v[i] != 0 && v[i] < every)
			every = v[i];
	return every < 1000 ? 1000 : every;
}

/* A --loop pass takes at most this long; when rows are left, the next one
 * runs after lane 0's next batch (or at once when idle). */
#define PRUNE_SLICE_MS 200

/* One retention pass on lane 0's connection (idle: no batch open),
 * until deadline_ms (0: until done). Problems are logged, never fatal:
 * relaying goes on; mqtx check shows a pruning that stopped. */
static void prune(struct relay *r, int64_t deadline_ms)
{
	if (r->rt == NULL)
		return;
	struct mqtx_err e;
	struct mqtx_retention_stats st = {0};
	int rc = mqtx_retention_run(r->rt, deadline_ms, r->opts->stop, &st, &e);
	pthread_mutex_lock(&r->lock);
	struct mqtx_retention_stats *tot = &r->stats->pruned;
	for (int k = 0; k < MQTX_RET__COUNT; k++)
		tot->deleted[k] += st.deleted[k];
	tot->partitions_created += st.partitions_created;
	tot->partitions_dropped += st.partitions_dropped;
	tot->more = st.more;
	r->stats->prune_ran = true;
	if (rc < 0)
		r->stats->prune_failed = true;
	pthread_mutex_unlock(&r->lock);
	if (st.warning[0] != '\0' && !r->prune_warned) {
		mqtx_warn("%s", st.warning);
		r->prune_warned = true;
	}
	if (rc < 0)
		mqtx_warn("%s; retention tries again later", e.msg);
	int64_t now = mqtx_now_ms();
	r->next_prune = st.more && rc == 0 ? now : now + prune_interval_ms(r->cfg);
	if (st.deleted[MQTX_RET_SENT] + st.deleted[MQTX_RET_DEAD] + st.deleted[MQTX_RET_ROLLED_BACK] > 0)
		mqtx_debug("retention: deleted %lld sent, %lld dead, %lld rolled back row(s)%s",
			   (long long)st.deleted[MQTX_RET_SENT], (long long)st.deleted[MQTX_RET_DEAD],
			   (long long)st.deleted[MQTX_RET_ROLLED_BACK], st.more ? "; more to go" : "");
}

/* A bounded pass when one is due: the first right after the first batch,
 * then every prune_interval_ms, or after each of lane 0's batches while
 * rows are left (so a one-shot run that relays for all of its --max-time
 * prunes as it goes, not only in what is left at its end). */
void mqtx_relay_prune_if_due(struct relay *r)
{
	if (r->rt != NULL && !mqtx_relay_stopping(r) && mqtx_now_ms() >= r->next_prune)
		prune(r, mqtx_now_ms() + PRUNE_SLICE_MS);
}

/* ---- the lanes ---- */

/* Publishes the messages of b that are fit to go; rows whose contents are
 * unusable fail on their own. */
int mqtx_relay_publish(struct mqtx_backend *be, struct mqtx_batch *b, struct mqtx_err *err)
{
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
	mqtx_err_clear(err);
	int rc = mqtx_backend_publish(be, good, ng, err);
	for (size_t k = 0; k < ng; k++) {
		b->msgs[from[k]].state = good[k].state;
		b->msgs[from[k]].permanent = good[k].permanent;
		memcpy(b->msgs[from[k]].error, good[k].error, sizeof(good[k].error));
	}
	free(good);
	free(from);
	return rc;
}

/* The first few failures of a batch by row, the rest as a count. */
void mqtx_relay_log_failures(const struct mqtx_batch *b)
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
	/* relay.max_messages: reserve the rows before claiming, give back
	 * what the claim did not take, so two lanes never take too many. */
	pthread_mutex_lock(&r->lock);
	size_t limit = (size_t)r->cfg->relay_batch_size;
	if (r->cfg->relay_max_messages > 0) {
		int64_t left = r->cfg->relay_max_messages - r->claimed;
		if (left < (int64_t)limit)
			limit = left > 0 ? (size_t)left : 0;
	}
	r->claimed += (int64_t)limit;
	pthread_mutex_unlock(&r->lock);
	struct mqtx_batch *b = mqtx_outbox_claim(r->slots[s].ob, limit, r->opts->dry_run, err);
	pthread_mutex_lock(&r->lock);
	r->claimed -= (int64_t)limit - (b != NULL ? (int64_t)b->n : 0);
	if (b != NULL)
		r->stats->claims++;
	pthread_mutex_unlock(&r->lock);
	return b;
}

void mqtx_relay_log_dead(const struct relay *r, size_t dead, size_t dead_permanent)
{
	if (dead > dead_permanent)
		mqtx_warn("%zu row(s) reached relay.max_attempts (%lld) and are now dead", dead - dead_permanent,
			  (long long)r->cfg->relay_max_attempts);
	if (dead_permanent > 0)
		mqtx_warn("%zu row(s) can never be sent as they are and are now dead (see their last_error; fix them, then 'mqtx redeliver --requeue')",
			  dead_permanent);
}

/* Records batch b's outcome on slot s and commits; frees b. */
static int finish(struct relay *r, int s, struct mqtx_batch *b, struct mqtx_err *err)
{
	mqtx_relay_log_failures(b);
	struct mqtx_finish_stats fs;
	if (mqtx_outbox_finish(r->slots[s].ob, b, &fs, err) < 0) {
		mqtx_error("the broker took %zu message(s) but their outcome could not be recorded; they stay pending and will be sent again (same idempotency keys)",
			   b->n);
		mqtx_batch_free(b);
		return -1;
	}
	mqtx_batch_free(b);
	pthread_mutex_lock(&r->lock);
	r->stats->relayed += (int64_t)fs.sent;
	r->stats->failed += (int64_t)fs.failed;
	r->stats->dead += (int64_t)fs.dead;
	r->stats->batches++;
	pthread_mutex_unlock(&r->lock);
	mqtx_relay_log_dead(r, fs.dead, fs.dead_permanent);
	mqtx_debug("batch: %zu sent, %zu failed, %zu dead, %zu released", fs.sent, fs.failed, fs.dead, fs.released);
	mqtx_relay_heartbeat(r, r->slots[s].ob, true, false);
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
			r->opts->dry_run_row(r->opts->ctx, m->id, m->key, m->destination, m->routing_key,
					     m->ordering_key, m->payload_len);
	}
	r->stats->relayed += (int64_t)b->n; /* "would relay" */
	release(r, 0, b);                   /* rows stay pending: one look is all a dry run can take */
	return 0;
}

static bool halted(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	bool h = r->halt;
	pthread_mutex_unlock(&r->lock);
	return h || mqtx_relay_stopping(r);
}

static void halt(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	r->halt = true;
	pthread_mutex_unlock(&r->lock);
}

/* One lane: claim, publish, record, until nothing is eligible for it, a
 * stop, or a failure here or in the other lane. A failed publish is still
 * recorded (what the broker confirmed is sent) before the lane gives up. */
static void *lane_main(void *arg)
{
	struct slot *sl = arg;
	struct relay *r = sl->r;
	int s = sl->index;
	while (!halted(r) || sl->first != NULL) {
		struct mqtx_batch *b = sl->first != NULL ? sl->first : claim(r, s, &sl->ferr);
		sl->first = NULL;
		if (b == NULL) {
			sl->frc = -1;
			break;
		}
		if (b->n == 0) {
			release(r, s, b);
			break;
		}
		if (MQTX_FAILPOINT("relay.after_claim") < 0) {
			release(r, s, b);
			sl->frc = mqtx_err_retry(&sl->ferr, MQTX_E_DB, "failpoint relay.after_claim");
			break;
		}
		sl->prc = mqtx_relay_publish(sl->be, b, &sl->perr);
		(void)MQTX_FAILPOINT("relay.after_confirm");
		sl->frc = finish(r, s, b, &sl->ferr);
		if (sl->prc < 0 || sl->frc < 0)
			break;
		if (s == 0)
			mqtx_relay_prune_if_due(r); /* between batches: a steady backlog must not stop pruning */
	}
	if (sl->prc < 0 || sl->frc < 0)
		halt(r);
	return NULL;
}

/* Relays until the outbox has nothing eligible. Returns 0 when drained (or
 * stopped), -1 with err. */
static int drain(struct relay *r, struct mqtx_err *err)
{
	for (;;) {
		if (mqtx_relay_stopping(r))
			return 0;
		r->halt = false;
		for (int i = 0; i < 2; i++) {
			struct slot *sl = &r->slots[i];
			sl->r = r;
			sl->index = i;
			sl->prc = sl->frc = 0;
			mqtx_err_clear(&sl->perr);
			mqtx_err_clear(&sl->ferr);
		}
		/* Lane 0 claims first, so that a small backlog goes out as one
		 * batch in id order; then lane 1 on a thread of its own, lane 0 here. */
		struct slot *s0 = &r->slots[0];
		s0->first = claim(r, 0, &s0->ferr);
		if (s0->first == NULL) {
			*err = s0->ferr;
			return -1;
		}
		if (s0->first->n == 0) { /* drained */
			release(r, 0, s0->first);
			s0->first = NULL;
			return 0;
		}
		bool threaded = mqtx_relay_start_thread(&r->slots[1].thread, lane_main, &r->slots[1]);
		lane_main(s0);
		if (threaded)
			pthread_join(r->slots[1].thread, NULL);
		else
			lane_main(&r->slots[1]); /* no thread: one lane after the other */
		for (int i = 0; i < 2; i++) {
			if (r->slots[i].prc < 0) {
				*err = r->slots[i].perr;
				mqtx_relay_drop_broker(r);
				return -1;
			}
		}
		for (int i = 0; i < 2; i++) {
			if (r->slots[i].frc < 0) {
				*err = r->slots[i].ferr;
				return -1;
			}
		}
		/* A lane that found nothing while the other held its rows ended
		 * early, and rows that failed may be eligible again: another round,
		 * until lane 0's first claim finds nothing. */
	}
}

int mqtx_relay_run(const struct mqtx_config *cfg, const struct mqtx_relay_opts *opts, struct mqtx_relay_stats *stats,
		   struct mqtx_err *err)
{
	struct relay r = {.cfg = cfg,
			  .opts = opts,
			  .stats = stats,
			  .lock = PTHREAD_MUTEX_INITIALIZER,
			  .given_back = PTHREAD_COND_INITIALIZER,
			  .retry_log = MQTX_RATELIMIT_INIT,
			  .tail = mqtx_config_tail(cfg)};
	char host[256] = "";
	int rc = 0;
	int64_t start = mqtx_now_ms();
	r.started_ms = start;

	memset(stats, 0, sizeof(*stats));
	/* Settings problems first, before anything is touched. */
	const struct mqtx_backend_ops *ops = opts->dry_run ? NULL : mqtx_backend_find(cfg->broker_url, err);
	if (!opts->dry_run && ops == NULL)
		return -1;
	if (ops != NULL && cfg->relay_kafka_transactions && !mqtx_broker_can(ops, MQTX_CAP_FENCED_TRANSACTIONS)) {
		char schemes[128];
		mqtx_broker_schemes_with(MQTX_CAP_FENCED_TRANSACTIONS, schemes, sizeof(schemes));
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "relay.kafka_transactions (--transactional) needs a %s broker: the %s broker cannot do fenced transactions",
				    schemes[0] != '\0' ? schemes : "fencing-capable", mqtx_broker_name(ops));
	}
	if (cfg->database_url == NULL || cfg->database_url[0] == '\0')
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "no database URL (set --database-url, MQTX_DATABASE_URL or database.url)");
	gethostname(host, sizeof(host) - 1);
	snprintf(r.relay_id, sizeof(r.relay_id), "%s:%ld:%lld", host, (long)getpid(), (long long)mqtx_wall_ms());
	srandom((unsigned)(mqtx_wall_ms() ^ getpid()));
	/* once a stop was asked for, connections still busy when the grace ends are cut */
	bool watching = mqtx_stop_watchdog_start(opts->stop, answers_grace_ms(&r), record_reserve_ms(&r));

	while (!mqtx_relay_stopping(&r)) {
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
			retry_later(&r, err);
			continue;
		}
		if (opts->dry_run) {
			rc = r.tail ? mqtx_relay_tail_dry_run(&r, err) : dry_run(&r, err);
			break;
		}
		if (r.slots[0].be == NULL && connect_broker(&r, err) < 0) {
			if (!cfg->relay_loop || err->kind == MQTX_E_CONFIG) {
				rc = -1;
				break;
			}
			remember_error(&r, err);
			mqtx_relay_heartbeat(&r, r.slots[0].ob, false, false);
			mqtx_relay_prune_if_due(&r); /* the database is up: a broker outage must not stop retention */
			retry_later(&r, err);
			continue;
		}
		if ((r.tail ? mqtx_relay_tail_drain(&r, err) : drain(&r, err)) == 0) {
			r.reconnect_delay = 0;
			if (!cfg->relay_loop)
				break;
			mqtx_relay_heartbeat(&r, r.slots[0].ob, false, false);
			mqtx_relay_prune_if_due(&r);
			int64_t wait = cfg->relay_poll_interval_ms;
			if (r.rt != NULL && r.next_prune - mqtx_now_ms() < wait)
				wait = r.next_prune > mqtx_now_ms() ? r.next_prune - mqtx_now_ms() : 0;
			nap(&r, wait, true);
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
		} else {
			mqtx_relay_prune_if_due(&r); /* the broker failed, the database is up */
		}
		if (mqtx_relay_stopping(&r)) { /* what was cut short by the stop stays pending */
			mqtx_warn("%s", err->msg);
			break;
		}
		retry_later(&r, err);
	}
	/* a one-shot run prunes at its end, also when it found nothing to
	 * relay, within what is left of relay.max_time */
	if (!cfg->relay_loop && !opts->dry_run && r.rt != NULL && !mqtx_relay_stopping(&r))
		prune(&r, cfg->relay_max_time_ms > 0 ? start + cfg->relay_max_time_ms : 0);
	mqtx_relay_heartbeat(&r, r.slots[0].ob, false, true);
	mqtx_relay_drop_broker(&r);
	drop_db(&r);
	if (watching)
		mqtx_stop_watchdog_end();
	stats->elapsed_ms = mqtx_now_ms() - start;
	return rc;
}
