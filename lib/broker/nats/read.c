/* The dedupe-audit reader for JetStream streams: a source
 * nats://host:port/STREAM (or tls://) is read in stream order through an
 * ordered consumer (ephemeral, no acks: reading removes nothing).
 *
 * --from N starts at stream sequence N (inclusive), --from TIME at the
 * first message stored at or after TIME; --to N stops before sequence N,
 * --to TIME before the first message stored at or after TIME. Without
 * --to, reading stops at the stream's last sequence when reading began,
 * so a busy stream still ends. record.offset is the stream sequence,
 * record.ts_us the time the stream stored the message. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/nats/nats.h"
#include "base/stop.h"
#include "base/util.h"

/* How long one wait for the next message lasts, so a stop is seen in time. */
#define SLICE_MS 200

static int64_t json_int(const struct mqtx_json *obj, const char *key, int64_t dflt)
{
	const struct mqtx_json *v = obj != NULL ? mqtx_json_get(obj, key) : NULL;
	return v != NULL && v->type == MQTX_JSON_NUMBER ? (int64_t)v->number : dflt;
}

/* The destination rows for this stream carry: its one subject, or the
 * prefix of its one "prefix.>" subject (rows with a routing key). */
static char *stream_destination(const struct mqtx_json *config)
{
	const struct mqtx_json *subs = config != NULL ? mqtx_json_get(config, "subjects") : NULL;
	if (subs == NULL || subs->type != MQTX_JSON_ARRAY || subs->count != 1 ||
	    subs->items[0]->type != MQTX_JSON_STRING)
		return NULL;
	const char *s = subs->items[0]->str;
	size_t n = strlen(s);
	if (n > 2 && strcmp(s + n - 2, ".>") == 0)
		n -= 2;
	char *d = mqtx_xstrndup(s, n);
	if (strchr(d, '*') != NULL || strchr(d, '>') != NULL) {
		free(d);
		return NULL;
	}
	return d;
}

static int64_t header_i64(natsMsg *m, const char *name, int64_t dflt)
{
	const char *v = NULL;
	if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == NULL || v[0] == '\0')
		return dflt;
	char *end = NULL;
	long long x = strtoll(v, &end, 10);
	return end != NULL && *end == '\0' ? (int64_t)x : dflt;
}

struct reader {
	const struct mqtx_read_opts *o;
	struct mqtx_read_result *res;
	const char *where;
	const char *stream;
	uint64_t first_seq, last_seq; /* of what is read: [first_seq, last_seq] */
	uint64_t n, lo, hi;           /* messages emitted, their lowest and highest sequence */
};

/* Emits m. Returns 1 to go on, 0 at the end, -1 with err. */
static int take(struct reader *r, natsMsg *m, struct mqtx_err *err)
{
	jsMsgMetaData *md = NULL;
	if (natsMsg_GetMetaData(&md, m) != NATS_OK)
		return 1; /* not a stream message (libnats passes none of its control messages) */
	uint64_t seq = md->Sequence.Stream;
	int64_t ts_ns = md->Timestamp;
	uint64_t pending = md->NumPending;
	jsMsgMetaData_Destroy(md);
	const struct mqtx_read_opts *o = r->o;
	if (seq > r->last_seq)
		return 0;
	if (o->to.kind == MQTX_READ_POS_TIME && ts_ns / 1000 >= o->to.time_us)
		return 0;
	struct mqtx_read_record rec = {0};
	const char *v = NULL;
	if (natsMsgHeader_Get(m, "x-mqtx-idempotency-key", &v) == NATS_OK && v != NULL)
		rec.key = v;
	else if (natsMsgHeader_Get(m, "Nats-Msg-Id", &v) == NATS_OK && v != NULL)
		rec.key = v;
	rec.key_len = rec.key != NULL ? strlen(rec.key) : 0;
	rec.id = header_i64(m, "x-mqtx-outbox-id", 0);
	if (natsMsgHeader_Get(m, "x-mqtx-ordering-key", &v) == NATS_OK && v != NULL) {
		rec.ordering_key = v;
		rec.ordering_key_len = strlen(v);
	}
	rec.redelivery_count = header_i64(m, "x-mqtx-redelivery-count", 0);
	rec.partition = -1;
	rec.offset = (int64_t)seq;
	rec.ts_us = ts_ns > 0 ? ts_ns / 1000 : MQTX_READ_NO_TS;
	if (o->emit(o->emit_ctx, &rec, err) != 0)
		return -1;
	if (r->n == 0)
		r->lo = seq;
	r->hi = seq;
	r->n++;
	return seq >= r->last_seq || pending == 0 ? 0 : 1;
}

/* Reads from the consumer until the end, a stop or the idle timeout. */
static int read_loop(struct reader *r, natsSubscription *sub, const char **ending, struct mqtx_err *err)
{
	const struct mqtx_read_opts *o = r->o;
	int64_t idle = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 10000;
	int64_t quiet_since = mqtx_now_ms();
	for (;;) {
		if (o->stop != NULL && *o->stop != 0) {
			r->res->stopped = true;
			*ending = "stopped";
			return 0;
		}
		int64_t left = quiet_since + idle - mqtx_now_ms();
		if (left <= 0) {
			*ending = "the stream stayed quiet for the idle timeout";
			return 0;
		}
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, sub, left < SLICE_MS ? left : SLICE_MS);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK)
			return mqtx_err_retry(err, MQTX_E_BROKER, "reading stream '%s' on '%s' failed: %s", r->stream,
					      r->where, natsStatus_GetText(s));
		quiet_since = mqtx_now_ms();
		int t = take(r, m, err);
		natsMsg_Destroy(m);
		if (t < 0)
			return -1;
		if (t == 0) {
			*ending = o->to.kind != MQTX_READ_POS_NONE ? "to --to" : "to the end at start";
			return 0;
		}
	}
}

int mqtx_nats_read_check(const struct mqtx_read_opts *o, struct mqtx_err *err)
{
	/* --to first and --destructive: mqtx_broker_read_check */
	if (o->from.kind == MQTX_READ_POS_OFFSET && o->from.offset < 1)
		return mqtx_err_set(err, MQTX_E_USAGE, "--from %lld: stream sequences start at 1",
				    (long long)o->from.offset);
	/* the source's shape too, before anything connects */
	struct mqtx_nats_url u;
	char *where = mqtx_redact(o->url);
	int rc = mqtx_nats_url_parse(o->url, where, true, &u, err);
	if (rc == 0)
		mqtx_nats_url_free(&u);
	free(where);
	return rc;
}

int mqtx_nats_read(const struct mqtx_read_opts *o, struct mqtx_read_result *res, struct mqtx_err *err)
{
	struct mqtx_nats_url u;
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsSubscription *sub = NULL;
	struct mqtx_json *info = NULL;
	char *where = mqtx_redact(o->url);
	int rc = -1;
	res->kind = "jetstream";
	res->position = "sequence";
	if (mqtx_nats_url_parse(o->url, where, true, &u, err) < 0) {
		free(where);
		return -1;
	}
	int64_t timeout = o->cfg->broker_connect_timeout_ms > 0 ? o->cfg->broker_connect_timeout_ms : 5000;
	if (mqtx_nats_connect(o->cfg, &u, where, "mqtx dedupe-audit", timeout, &nc, err) < 0)
		goto out;
	int r = mqtx_nats_stream_info(nc, u.stream, timeout, where, &info, err);
	if (r < 0)
		goto out;
	if (r == 1) {
		mqtx_err_set(err, MQTX_E_USAGE, "source '%s': the server has no JetStream", where);
		goto out;
	}
	int code = 0;
	const char *je = mqtx_nats_api_error(info, &code);
	if (je != NULL) {
		if (code == 404)
			mqtx_err_set(err, MQTX_E_BROKER, "source '%s': stream '%s' does not exist", where, u.stream);
		else
			mqtx_err_set(err, MQTX_E_BROKER, "source '%s': cannot get stream '%s': %s (%d)", where,
				     u.stream, je, code);
		goto out;
	}
	res->default_destination = stream_destination(mqtx_json_get(info, "config"));
	const struct mqtx_json *state = mqtx_json_get(info, "state");
	int64_t first = json_int(state, "first_seq", 0), last = json_int(state, "last_seq", 0);
	int64_t count = json_int(state, "messages", 0);

	struct reader rd = {.o = o, .res = res, .where = where, .stream = u.stream};
	rd.first_seq = (uint64_t)(first > 0 ? first : 1);
	rd.last_seq = (uint64_t)(last > 0 ? last : 0);
	if (o->from.kind == MQTX_READ_POS_OFFSET && o->from.offset > first)
		rd.first_seq = (uint64_t)o->from.offset;
	if (o->to.kind == MQTX_READ_POS_OFFSET && o->to.offset <= last)
		rd.last_seq = o->to.offset > 0 ? (uint64_t)(o->to.offset - 1) : 0;
	const char *ending = "to the end at start";
	if (count == 0 || rd.last_seq == 0 || rd.first_seq > rd.last_seq) {
		ending = count == 0 ? "the stream is empty" : "nothing within --from/--to";
	} else {
		natsStatus s = natsConnection_JetStream(&js, nc, NULL);
		jsSubOptions so;
		jsErrCode jerr = 0;
		jsSubOptions_Init(&so);
		so.Stream = u.stream;
		so.Ordered = true;
		if (o->from.kind == MQTX_READ_POS_TIME) {
			so.Config.DeliverPolicy = js_DeliverByStartTime;
			so.Config.OptStartTime = o->from.time_us * 1000;
		} else {
			so.Config.DeliverPolicy = js_DeliverByStartSequence;
			so.Config.OptStartSeq = rd.first_seq;
		}
		if (s == NATS_OK)
			s = js_SubscribeSync(&sub, js, ">", NULL, &so, &jerr);
		if (s != NATS_OK) {
			const char *text = nats_GetLastError(NULL);
			mqtx_err_retry(err, MQTX_E_BROKER, "cannot read stream '%s' on '%s': %s (%d)", u.stream, where,
				       text != NULL && text[0] ? text : natsStatus_GetText(s), (int)jerr);
			goto out;
		}
		natsSubscription_SetPendingLimits(sub, -1, -1);
		if (read_loop(&rd, sub, &ending, err) < 0)
			goto out;
	}
	if (rd.n > 0)
		snprintf(res->detail, sizeof(res->detail),
			 "stream '%.100s': %llu message(s), sequences %llu..%llu; read %s", u.stream,
			 (unsigned long long)rd.n, (unsigned long long)rd.lo, (unsigned long long)rd.hi, ending);
	else
		snprintf(res->detail, sizeof(res->detail), "stream '%.100s': no message read (%s)", u.stream, ending);
	rc = 0;
out:
	if (sub != NULL) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	jsCtx_Destroy(js);
	if (nc != NULL) {
		natsConnection_Close(nc);
		natsConnection_Destroy(nc);
	}
	mqtx_json_free(info);
	mqtx_nats_url_free(&u);
	free(where);
	if (rc < 0) {
		free(res->default_destination);
		res->default_destination = NULL;
	}
	return rc;
}
