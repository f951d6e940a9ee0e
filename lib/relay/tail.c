/* The tail-mode relay engine (outbox.mode: tail; see mqtx-relay(1), TAIL
 * MODE, and lib/db/tail_relay.h).
 *
 * One connection, one broker connection, rounds of: take and give back
 * buckets (a fair share of them); publish parked rows that may go now;
 * per group of buckets at the same checkpoint, one chunk of its interval
 * (opening one with a new snapshot when none is open). Each chunk is
 * published, then recorded with its checkpoint in one transaction: the
 * broker confirmed everything a checkpoint covers. A one-shot run ends
 * after a round that found nothing: every transaction committed before
 * its last snapshot is relayed, open and prepared ones are not waited for. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/failpoint.h"
#include "base/log.h"
#include "base/msg.h"
#include "base/util.h"
#include "db/tail_relay.h"
#include "relay/internal.h"

/* An empty interval is written down (its checkpoint moved to the new
 * snapshot) at most this often: retention and mqtx check read checkpoints. */
#define IDLE_WRITE_MS 30000
#define REBALANCE_MS 1000
#define FORGET_MS 5000

/* The chunk after the one being published, read while the broker works on
 * that one (the database and the broker in parallel, one lane). It is
 * used only by the same group at the position it was read from; else it
 * is dropped, its reservation given back. Read before the previous chunk
 * was recorded, it cannot know which keys that chunk parked: held are the
 * keys of that chunk's rows that did not go (its decide starts from them). */
struct ahead {
	struct mqtx_tail_chunk *c;
	size_t limit; /* rows reserved for it (relay.max_messages) */
	int first;    /* the group: its first bucket... */
	size_t n;     /* ...and how many */
	int64_t pos;  /* read after this position... */
	char *cur;    /* ...of this interval */
	struct mqtx_keyset held;
};

struct tail_state {
	bool *own; /* buckets this connection holds */
	struct mqtx_tail_group *g;
	size_t ng;
	bool loaded;
	int64_t next_rebalance, next_forget;
	size_t scan; /* ids a chunk looks at: grows while the interval is sparse */
	struct ahead ahead;
};

static void ahead_clear(struct ahead *a)
{
	mqtx_tail_chunk_free(a->c);
	free(a->cur);
	mqtx_keyset_free(&a->held);
	*a = (struct ahead){0};
}

void mqtx_relay_tail_reset(struct slot *sl)
{
	if (sl->ts == NULL)
		return;
	ahead_clear(&sl->ts->ahead);
	mqtx_tail_groups_free(sl->ts->g, sl->ts->ng);
	free(sl->ts->own);
	free(sl->ts);
	sl->ts = NULL;
}

static struct tail_state *state(struct slot *sl)
{
	if (sl->ts == NULL) {
		sl->ts = mqtx_xcalloc(1, sizeof(*sl->ts));
		sl->ts->own = mqtx_xcalloc((size_t)mqtx_tail_buckets(sl->tl) + 1, sizeof(bool));
	}
	return sl->ts;
}

/* relay.max_messages: rows are reserved before reading, the unused part
 * given back after. When none are left while the other lane holds a
 * reservation it may give back unused, a lane that holds none waits for it
 * (the other lane gives back after its chunk); one that holds some (a
 * chunk read ahead), or when wait is false, does not wait: it gets 0 and
 * is marked starved (the drain then runs the lanes again). */
static size_t reserve(struct relay *r, struct slot *sl, bool wait)
{
	pthread_mutex_lock(&r->lock);
	size_t limit;
	for (;;) {
		limit = (size_t)r->cfg->relay_batch_size;
		if (r->cfg->relay_max_messages <= 0)
			break;
		int64_t left = r->cfg->relay_max_messages - r->claimed;
		if (left < (int64_t)limit)
			limit = left > 0 ? (size_t)left : 0;
		if (limit > 0 || r->reserved - sl->treserved <= 0)
			break;
		if (!wait || sl->treserved > 0 || r->halt || mqtx_relay_stopping(r)) {
			sl->tstarved = true;
			break;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100 * 1000000L; /* to look at halt and the stop flag again */
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->given_back, &r->lock, &until);
	}
	r->claimed += (int64_t)limit;
	r->reserved += (int64_t)limit;
	sl->treserved += (int64_t)limit;
	pthread_mutex_unlock(&r->lock);
	return limit;
}

static void give_back(struct slot *sl, size_t reserved, size_t used)
{
	struct relay *r = sl->r;
	pthread_mutex_lock(&r->lock);
	r->claimed -= (int64_t)reserved - (int64_t)(used < reserved ? used : reserved);
	r->reserved -= (int64_t)reserved;
	sl->treserved -= (int64_t)reserved;
	pthread_cond_broadcast(&r->given_back);
	pthread_mutex_unlock(&r->lock);
}

static void looked(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	r->stats->claims++;
	pthread_mutex_unlock(&r->lock);
}

/* relay.max_messages is used up for good: by rows settled, not by
 * reservations that may come back unused (reserve() waits for those). */
static bool enough(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	bool e = r->cfg->relay_max_messages > 0 && r->claimed - r->reserved >= r->cfg->relay_max_messages;
	pthread_mutex_unlock(&r->lock);
	return e;
}

static bool out_of_time(const struct relay *r)
{
	return r->cfg->relay_max_time_ms > 0 && mqtx_now_ms() - r->started_ms >= r->cfg->relay_max_time_ms;
}

/* What happens to each row of an interval chunk before publishing: rows
 * of a key with parked rows wait behind them, rows not due yet are parked
 * until their time, rows parked before that came back (their txid was
 * bumped: a half message committed) are handed to the parked pass. */
static void decide(struct mqtx_tail_chunk *c, const struct mqtx_keyset *before)
{
	struct mqtx_keyset held = {0};
	for (size_t i = 0; before != NULL && i < before->n; i++)
		mqtx_keyset_add(&held, before->keys[i]);
	for (size_t i = 0; i < c->b->n; i++) {
		const char *key = c->b->msgs[i].ordering_key;
		if (c->parked[i] == 'r' || c->parked[i] == 'b')
			c->act[i] = MQTX_TAIL_REBLOCK;
		else if (key != NULL && (c->behind[i] || mqtx_keyset_has(&held, key)))
			c->act[i] = MQTX_TAIL_BLOCK;
		else if (c->later[i])
			c->act[i] = MQTX_TAIL_DELAY;
		else
			c->act[i] = MQTX_TAIL_PUBLISH;
		if (c->act[i] != MQTX_TAIL_PUBLISH)
			mqtx_keyset_add(&held, key);
	}
	mqtx_keyset_free(&held);
}

/* Publishes the rows of c whose act is PUBLISH; their states are set. */
static int publish(struct mqtx_backend *be, struct mqtx_tail_chunk *c, struct mqtx_err *err)
{
	struct mqtx_batch sub = {0};
	size_t n = c->b->n, k = 0;
	size_t *from = mqtx_xcalloc(n + 1, sizeof(size_t));
	sub.msgs = mqtx_xcalloc(n + 1, sizeof(*sub.msgs));
	sub.bad_headers = mqtx_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		if (c->act[i] != MQTX_TAIL_PUBLISH)
			continue;
		sub.msgs[k] = c->b->msgs[i];
		sub.bad_headers[k] = c->b->bad_headers[i];
		from[k++] = i;
	}
	sub.n = k;
	int rc = 0;
	mqtx_err_clear(err);
	if (k > 0)
		rc = mqtx_relay_publish(be, &sub, err);
	for (size_t j = 0; j < k; j++)
		c->b->msgs[from[j]] = sub.msgs[j];
	free(sub.msgs);
	free(sub.bad_headers);
	free(from);
	return rc;
}

/* After a broken publish, the rows the broker answered for, in order, up
 * to the first one it did not: the checkpoint moves no further. */
static size_t settled(const struct mqtx_tail_chunk *c, int prc)
{
	if (prc == 0)
		return c->b->n;
	for (size_t i = 0; i < c->b->n; i++) {
		const struct mqtx_msg *m = &c->b->msgs[i];
		if (c->act[i] == MQTX_TAIL_PUBLISH && m->state != MQTX_MSG_CONFIRMED && m->state != MQTX_MSG_FAILED)
			return i;
	}
	return c->b->n;
}

static void count(struct relay *r, const struct mqtx_tail_outcome *o)
{
	pthread_mutex_lock(&r->lock);
	r->stats->relayed += (int64_t)o->sent;
	r->stats->failed += (int64_t)o->failed;
	r->stats->dead += (int64_t)o->dead;
	r->stats->batches++;
	pthread_mutex_unlock(&r->lock);
	mqtx_relay_log_dead(r, o->dead, o->dead_permanent);
}

/* Opens g's interval if none is open. 1 when there is one to read, 0 when
 * nothing committed for g's buckets since its checkpoint, -1 with err. */
static int open_interval(struct slot *sl, struct mqtx_tail_group *g, char **snap, struct mqtx_err *err)
{
	struct relay *r = sl->r;
	int64_t n, min, max;
	if (g->cur != NULL) {
		if (g->bounded)
			return 1;
		/* resumed from a checkpoint inside an interval */
		looked(r);
		if (mqtx_tail_bounds(sl->tl, g, g->cur, &n, &min, &max, err) < 0)
			return -1;
		g->max = max;
		g->bounded = true;
		if (n > 0 && g->pos < max)
			return 1;
		free(g->prev);
		g->prev = g->cur;
		g->cur = NULL;
		g->written_ms = mqtx_now_ms();
		return mqtx_tail_write_checkpoint(sl->tl, g, r->relay_id, err) < 0 ? -1 : 0;
	}
	if (*snap == NULL && (*snap = mqtx_tail_snapshot(sl->tl, err)) == NULL)
		return -1;
	looked(r); /* a look at the outbox, even when it finds nothing */
	if (mqtx_tail_bounds(sl->tl, g, *snap, &n, &min, &max, err) < 0)
		return -1;
	if (n == 0) {
		/* nothing for these buckets: the next interval starts here */
		free(g->prev);
		g->prev = mqtx_xstrdup(*snap);
		int64_t now = mqtx_now_ms();
		if (now - g->written_ms >= IDLE_WRITE_MS) {
			g->written_ms = now;
			if (mqtx_tail_write_checkpoint(sl->tl, g, r->relay_id, err) < 0)
				return -1;
		}
		return 0;
	}
	g->cur = mqtx_xstrdup(*snap);
	g->pos = min - 1;
	g->max = max;
	g->bounded = true;
	return 1;
}

/* Drops the chunk read ahead, if any, giving its reservation back. */
static void ahead_drop(struct slot *sl)
{
	struct ahead *a = &sl->ts->ahead;
	if (a->c != NULL)
		give_back(sl, a->limit, 0);
	ahead_clear(a);
}

/* The chunk read ahead when it is g's next one (its reservation in
 * *limit, the keys it must hold back in held), else NULL (dropped). */
static struct mqtx_tail_chunk *ahead_take(struct slot *sl, const struct mqtx_tail_group *g, size_t *limit,
					  struct mqtx_keyset *held)
{
	struct ahead *a = &sl->ts->ahead;
	if (a->c == NULL)
		return NULL;
	if (g->n == 0 || a->first != g->buckets[0] || a->n != g->n || a->pos != g->pos || g->cur == NULL ||
	    strcmp(a->cur, g->cur) != 0) {
		ahead_drop(sl);
		return NULL;
	}
	struct mqtx_tail_chunk *c = a->c;
	*limit = a->limit;
	*held = a->held;
	a->c = NULL;
	a->held = (struct mqtx_keyset){0};
	ahead_clear(a);
	return c;
}

/* Asks for the chunk after c (a full chunk with more of the interval
 * after it) before c is published. true when a read is under way. */
static bool ahead_send(struct slot *sl, const struct mqtx_tail_group *g, const struct mqtx_tail_chunk *c, size_t limit)
{
	if (c->scan_done || c->b->n < limit || g->n == 0)
		return false;
	size_t next = reserve(sl->r, sl, false); /* none: no read-ahead */
	if (next == 0)
		return false;
	struct mqtx_err e;
	mqtx_err_clear(&e);
	if (mqtx_tail_fetch_send(sl->tl, g, c->scan_end, next, sl->ts->scan, &e) < 0) {
		give_back(sl, next, 0);
		mqtx_debug("tail: no read-ahead: %s", e.msg);
		return false;
	}
	struct ahead *a = &sl->ts->ahead;
	a->limit = next;
	a->first = g->buckets[0];
	a->n = g->n;
	a->pos = c->scan_end;
	a->cur = mqtx_xstrdup(g->cur);
	return true;
}

/* Takes the chunk asked for by ahead_send, after c's publish: the keys
 * of c's rows that did not go are held back in it. A failed read is
 * dropped: the next chunk is read again, as if never read ahead. */
static void ahead_recv(struct slot *sl, const struct mqtx_tail_group *g, const struct mqtx_tail_chunk *c)
{
	struct ahead *a = &sl->ts->ahead;
	struct mqtx_err e;
	mqtx_err_clear(&e);
	const struct mqtx_tail_group at = {.buckets = g->buckets,
					   .n = g->n,
					   .prev = g->prev,
					   .cur = g->cur,
					   .pos = a->pos,
					   .max = g->max,
					   .bounded = true};
	a->c = mqtx_tail_fetch_recv(sl->tl, &at, a->limit, sl->ts->scan, &e);
	if (a->c == NULL) {
		mqtx_debug("tail: read-ahead failed, reading again: %s", e.msg);
		give_back(sl, a->limit, 0);
		ahead_clear(a);
		return;
	}
	for (size_t i = 0; i < c->b->n; i++)
		if (c->act[i] != MQTX_TAIL_PUBLISH || c->b->msgs[i].state != MQTX_MSG_CONFIRMED)
			mqtx_keyset_add(&a->held, c->b->msgs[i].ordering_key);
}

/* One chunk of g's interval. 1 when it moved on, 0 when there was
 * nothing, -1 with err (perr set: the broker failed after the chunk was
 * recorded as far as the broker answered). */
static int group_step(struct slot *sl, struct mqtx_tail_group *g, char **snap, struct mqtx_err *err, bool *broker)
{
	struct relay *r = sl->r;
	struct tail_state *ts = sl->ts;
	int o = open_interval(sl, g, snap, err);
	if (o <= 0)
		return o;
	size_t limit = 0;
	struct mqtx_keyset held = {0};
	int64_t t0 = mqtx_now_ms();
	struct mqtx_tail_chunk *c = ahead_take(sl, g, &limit, &held);
	if (c == NULL) {
		if ((limit = reserve(r, sl, true)) == 0)
			return 0;
		if ((c = mqtx_tail_fetch(sl->tl, g, limit, ts->scan, err)) == NULL) {
			give_back(sl, limit, 0);
			return -1;
		}
	}
	int64_t t1 = mqtx_now_ms();
	decide(c, &held);
	mqtx_keyset_free(&held);
	bool reading = ahead_send(sl, g, c, limit);
	struct mqtx_err perr;
	int prc = publish(sl->be, c, &perr);
	(void)MQTX_FAILPOINT("relay.tail.after_confirm");
	int64_t t2 = mqtx_now_ms();
	if (reading)
		ahead_recv(sl, g, c);
	size_t done = settled(c, prc);
	if (done < c->b->n || prc < 0)
		ahead_drop(sl); /* the chunk after c starts elsewhere */
	bool closes = done == c->b->n && c->scan_done;
	if (done == c->b->n)
		g->pos = c->scan_end;
	else
		g->pos = c->b->msgs[done].id - 1;
	if (closes) {
		free(g->prev);
		g->prev = g->cur;
		g->cur = NULL;
		g->bounded = false;
	}
	mqtx_relay_log_failures(c->b);
	struct mqtx_tail_outcome out;
	if (mqtx_tail_record(sl->tl, g, c, done, r->relay_id, &out, err) < 0) {
		mqtx_error("the broker took %zu message(s) but the checkpoint could not be written; they will be sent again (same idempotency keys)",
			   c->b->n);
		ahead_drop(sl);
		give_back(sl, limit, 0);
		mqtx_tail_chunk_free(c);
		return -1; /* a database error: the caller reconnects and reloads the checkpoints */
	}
	g->written_ms = mqtx_now_ms();
	count(r, &out);
	mqtx_debug("tail batch (lane %d): %zu row(s) read, %zu sent, %zu parked (%zu failed, %zu dead), position %lld of %lld; "
		   "read %lld ms, publish %lld ms, checkpoint %lld ms",
		   sl->index, c->b->n, out.sent, out.parked, out.failed, out.dead, (long long)g->pos, (long long)g->max,
		   (long long)(t1 - t0), (long long)(t2 - t1), (long long)(mqtx_now_ms() - t2));
	/* a sparse interval (rows of other buckets or of open transactions
	 * in between): look at as many more ids per chunk as it takes to
	 * fill one, up to 64 times the batch */
	if (!closes && c->b->n < limit) {
		size_t want = c->b->n > 0 ? ts->scan * limit / c->b->n : ts->scan * 4;
		ts->scan = want > limit * 64 ? limit * 64 : want;
	} else if (closes && ts->scan > limit * 64) {
		ts->scan = limit * 64;
	}
	if (ts->scan < limit)
		ts->scan = limit;
	give_back(sl, limit, done);
	mqtx_tail_chunk_free(c);
	mqtx_relay_heartbeat(r, sl->ob, true, false);
	if (prc < 0) {
		*err = perr;
		*broker = true;
		return -1;
	}
	return 1;
}

/* Parked rows that may go now. 1 when some went, 0 when none, -1. */
static int parked_step(struct slot *sl, struct mqtx_err *err, bool *broker)
{
	struct relay *r = sl->r;
	size_t limit = reserve(r, sl, true);
	if (limit == 0)
		return 0;
	struct mqtx_tail_chunk *c = mqtx_tail_fetch_parked(sl->tl, sl->ts->own, limit, err);
	if (c == NULL) {
		give_back(sl, limit, 0);
		return -1;
	}
	if (c->b->n == 0) {
		give_back(sl, limit, 0);
		mqtx_tail_chunk_free(c);
		return 0;
	}
	looked(r);
	struct mqtx_err perr;
	int prc = publish(sl->be, c, &perr);
	(void)MQTX_FAILPOINT("relay.tail.after_confirm");
	mqtx_relay_log_failures(c->b);
	struct mqtx_tail_outcome out;
	if (mqtx_tail_record_parked(sl->tl, c, &out, err) < 0) {
		give_back(sl, limit, 0);
		mqtx_tail_chunk_free(c);
		return -1;
	}
	count(r, &out);
	give_back(sl, limit, c->b->n);
	mqtx_tail_chunk_free(c);
	mqtx_relay_heartbeat(r, sl->ob, true, false);
	if (prc < 0) {
		*err = perr;
		*broker = true;
		return -1;
	}
	return 1;
}

/* Takes this relay's share of the buckets, and their checkpoints. */
static int own_buckets(struct slot *sl, struct mqtx_err *err)
{
	struct tail_state *ts = sl->ts;
	int64_t now = mqtx_now_ms();
	if (ts->loaded && now < ts->next_rebalance)
		return 0;
	bool changed = false;
	if (mqtx_tail_rebalance(sl->tl, ts->own, &changed, err) < 0)
		return -1;
	ts->next_rebalance = now + REBALANCE_MS;
	if (!changed && ts->loaded)
		return 0;
	mqtx_tail_groups_free(ts->g, ts->ng);
	ts->g = NULL;
	ts->ng = 0;
	if (mqtx_tail_load(sl->tl, ts->own, &ts->g, &ts->ng, err) < 0)
		return -1;
	ts->loaded = true;
	int held = 0;
	for (int i = 0; i < mqtx_tail_buckets(sl->tl); i++)
		held += ts->own[i];
	mqtx_debug("tail: this relay holds %d of %d bucket(s), in %zu group(s)", held, mqtx_tail_buckets(sl->tl),
		   ts->ng);
	return 0;
}

static bool halted(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	bool h = r->halt;
	pthread_mutex_unlock(&r->lock);
	return h || mqtx_relay_stopping(r);
}

/* One lane: rounds until one finds nothing for its buckets. */
static int lane_drain(struct slot *sl, struct mqtx_err *err, bool *broker)
{
	struct relay *r = sl->r;
	struct tail_state *ts = state(sl);
	if (ts->scan == 0)
		ts->scan = (size_t)r->cfg->relay_batch_size;
	for (;;) {
		if (halted(r) || out_of_time(r) || enough(r))
			return 0;
		if (own_buckets(sl, err) < 0)
			return -1;
		if (ts->ng == 0)
			return 0; /* other relays hold every bucket */
		int progress = parked_step(sl, err, broker);
		if (progress < 0)
			return -1;
		char *snap = NULL;
		for (size_t i = 0; i < ts->ng && !halted(r); i++) {
			int s = group_step(sl, &ts->g[i], &snap, err, broker);
			if (s < 0) {
				free(snap);
				return -1;
			}
			progress += s;
		}
		free(snap);
		mqtx_tail_groups_merge(ts->g, &ts->ng);
		int64_t now = mqtx_now_ms();
		if (now >= ts->next_forget) {
			ts->next_forget = now + FORGET_MS;
			if (mqtx_tail_forget_parked(sl->tl, ts->own, err) < 0)
				return -1;
		}
		if (progress == 0)
			return 0;
		sl->tprogress = true;
		if (sl->index == 0)
			mqtx_relay_prune_if_due(r); /* retention runs on lane 0's connection */
	}
}

static void *lane_main(void *arg)
{
	struct slot *sl = arg;
	sl->trc = lane_drain(sl, &sl->terr, &sl->tbroker);
	if (sl->ts != NULL)
		ahead_drop(sl);
	if (sl->trc < 0) {
		pthread_mutex_lock(&sl->r->lock);
		sl->r->halt = true; /* the other lane stops after its chunk */
		pthread_mutex_unlock(&sl->r->lock);
	}
	return NULL;
}

/* Two lanes, each a tail relay of its own with its own connections and
 * its share of the buckets: one lane's database turn overlaps the other's
 * publishing. */
static void run_lanes(struct relay *r)
{
	r->halt = false;
	for (int i = 0; i < 2; i++) {
		struct slot *sl = &r->slots[i];
		sl->r = r;
		sl->index = i;
		sl->trc = 0;
		sl->tbroker = sl->tstarved = sl->tprogress = false;
		mqtx_err_clear(&sl->terr);
	}
	bool threaded = mqtx_relay_start_thread(&r->slots[1].thread, lane_main, &r->slots[1]);
	lane_main(&r->slots[0]);
	if (threaded)
		pthread_join(r->slots[1].thread, NULL);
	else
		lane_main(&r->slots[1]);
}

int mqtx_relay_tail_drain(struct relay *r, struct mqtx_err *err)
{
	/* With relay.max_messages a lane may stop while the other one held
	 * the rest of the allowance and then did not need all of it: again. */
	for (int pass = 0; pass < 1000; pass++) {
		run_lanes(r);
		bool again = false, failed = false;
		for (int i = 0; i < 2; i++) {
			failed = failed || r->slots[i].trc < 0;
			again = again || r->slots[i].tstarved;
		}
		if (failed || !again || !(r->slots[0].tprogress || r->slots[1].tprogress) || enough(r) ||
		    mqtx_relay_stopping(r))
			break;
	}
	/* a database error first: the caller reconnects (and reloads the checkpoints) */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 2; i++) {
			struct slot *sl = &r->slots[i];
			if (sl->trc < 0 && sl->tbroker == (pass == 1)) {
				*err = sl->terr;
				if (sl->tbroker)
					mqtx_relay_drop_broker(r);
				return -1;
			}
		}
	}
	return 0;
}

int mqtx_relay_tail_dry_run(struct relay *r, struct mqtx_err *err)
{
	struct slot *sl = &r->slots[0];
	struct mqtx_tail_group *g = NULL;
	size_t ng = 0;
	if (mqtx_tail_load(sl->tl, NULL, &g, &ng, err) < 0)
		return -1;
	char *snap = NULL;
	int rc = 0;
	size_t left = (size_t)r->cfg->relay_batch_size;
	if (r->cfg->relay_max_messages > 0 && r->cfg->relay_max_messages < (int64_t)left)
		left = (size_t)r->cfg->relay_max_messages;
	for (size_t i = 0; i < ng && left > 0; i++) {
		int64_t n, min, max;
		const char *cur = g[i].cur;
		if (cur == NULL) {
			if (snap == NULL && (snap = mqtx_tail_snapshot(sl->tl, err)) == NULL) {
				rc = -1;
				break;
			}
			cur = snap;
		}
		looked(r);
		if (mqtx_tail_bounds(sl->tl, &g[i], cur, &n, &min, &max, err) < 0) {
			rc = -1;
			break;
		}
		if (n == 0)
			continue;
		if (g[i].cur == NULL) {
			g[i].cur = mqtx_xstrdup(cur);
			g[i].pos = min - 1;
		}
		g[i].max = max;
		struct mqtx_tail_chunk *c = mqtx_tail_fetch(sl->tl, &g[i], left, left * 16, err);
		if (c == NULL) {
			rc = -1;
			break;
		}
		decide(c, NULL);
		for (size_t k = 0; k < c->b->n; k++) {
			const struct mqtx_msg *m = &c->b->msgs[k];
			if (c->act[k] != MQTX_TAIL_PUBLISH)
				continue;
			if (r->opts->dry_run_row != NULL)
				r->opts->dry_run_row(r->opts->ctx, m->id, m->key, m->destination, m->routing_key,
						     m->ordering_key, m->payload_len);
			r->stats->relayed++; /* "would relay" */
			left--;
		}
		mqtx_tail_chunk_free(c);
	}
	free(snap);
	mqtx_tail_groups_free(g, ng);
	return rc;
}
