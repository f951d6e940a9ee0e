/* mqtx txpub's --report document and --prepare's keys. */
#define _POSIX_C_SOURCE 200809L
#include "render/txpub.h"

#include "base/log.h"

static const char *sql_state_name(enum mqtx_sql_outcome o)
{
	switch (o) {
	case MQTX_SQL_COMMITTED: return "committed";
	case MQTX_SQL_ROLLED_BACK: return "rolled_back";
	case MQTX_SQL_IN_DOUBT: return "in_doubt";
	case MQTX_SQL_DONE_BEFORE: return "committed_earlier";
	}
	return "in_doubt";
}

static void batches(struct mqtx_jw *w, const struct mqtx_txpub_set *s)
{
	mqtx_jw_key(w, "batches");
	mqtx_jw_arr(w);
	size_t nb = s != NULL ? mqtx_txpub_batches(s) : 0;
	for (size_t bi = 0; bi < nb; bi++) {
		size_t first, last;
		const char *state = mqtx_txpub_batch_state(s, bi, &first, &last);
		mqtx_jw_obj(w);
		mqtx_jw_kint(w, "batch", (int64_t)bi + 1);
		mqtx_jw_kint(w, "first", (int64_t)first + 1);
		mqtx_jw_kint(w, "last", (int64_t)last);
		mqtx_jw_kstr(w, "state", state);
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_arr_end(w);
}

static void messages(struct mqtx_jw *w, const struct mqtx_txpub_set *s)
{
	mqtx_jw_key(w, "messages");
	mqtx_jw_arr(w);
	for (size_t i = 0; s != NULL && i < s->n; i++) {
		const struct mqtx_msg *m = &s->msgs[i];
		mqtx_jw_obj(w);
		mqtx_jw_kint(w, "n", (int64_t)i + 1);
		mqtx_jw_kstr(w, "input", s->where[i]);
		mqtx_jw_kstr(w, "key", m->key);
		mqtx_jw_kstr(w, "destination", m->destination);
		mqtx_jw_kstr(w, "routing_key", m->routing_key);
		mqtx_jw_kint(w, "bytes", (int64_t)m->payload_len);
		mqtx_jw_kint(w, "batch", (int64_t)mqtx_txpub_batch_of(s, i) + 1);
		mqtx_jw_kstr(w, "state", mqtx_txpub_state_name(m->state));
		if (s->status[i] != NULL)
			mqtx_jw_kstr(w, "status", s->status[i]);
		if (m->error[0] != '\0' && m->state != MQTX_MSG_CONFIRMED)
			mqtx_jw_kstr(w, "error", m->error);
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_arr_end(w);
}

void mqtx_render_txpub_report(struct mqtx_render *r, const struct mqtx_txpub_report *rep)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	struct mqtx_jw w;
	struct mqtx_txpub_counts c = {0, 0, 0};
	if (rep->set != NULL)
		mqtx_txpub_count(rep->set, &c);
	mqtx_jw_init(&w, &b);
	mqtx_jw_obj(&w);
	mqtx_jw_kstr(&w, "operation", rep->operation);
	if (rep->set != NULL) /* no mode before there were messages */
		mqtx_jw_kstr(&w, "mode", rep->mode);
	mqtx_jw_kint(&w, "exit_code", rep->exit_code);
	mqtx_jw_kstr(&w, "outcome", rep->outcome);
	mqtx_jw_kint(&w, "confirmed", (int64_t)c.confirmed);
	mqtx_jw_kint(&w, "not_published", (int64_t)c.not_published);
	mqtx_jw_kint(&w, "in_doubt", (int64_t)c.in_doubt);
	batches(&w, rep->set);
	messages(&w, rep->set);
	if (rep->sql != NULL) {
		mqtx_jw_key(&w, "transaction");
		mqtx_jw_obj(&w);
		mqtx_jw_kstr(&w, "gid", rep->sql->gid);
		mqtx_jw_kstr(&w, "state", sql_state_name(rep->sql->outcome));
		mqtx_jw_obj_end(&w);
	}
	mqtx_jw_obj_end(&w);
	mqtx_buf_addc(&b, '\n');
	mqtx_render_take(r, &b);
	mqtx_buf_free(&b);
}

void mqtx_render_txpub_keys(struct mqtx_render *r, const struct mqtx_txpub_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		mqtx_render_printf(r, "%s\n", s->msgs[i].key);
}

/* The messages that did not make it, on stderr: failures (the first few),
 * then every key in doubt, one per line, for scripts to pick up. */
void mqtx_render_txpub_problems(const struct mqtx_txpub_set *s, const char *what)
{
	struct mqtx_txpub_counts c;
	mqtx_txpub_count(s, &c);
	size_t shown = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct mqtx_msg *m = &s->msgs[i];
		if (m->state == MQTX_MSG_CONFIRMED || m->state == MQTX_MSG_UNKNOWN)
			continue;
		if (shown++ < 5)
			mqtx_warn("%s: key '%s' not published: %s", s->where[i], m->key,
				  m->error[0] ? m->error : "not sent");
	}
	if (shown > 5)
		mqtx_warn("... and %zu more not published", shown - 5);
	/* a summary with losses is a warning: --quiet keeps it */
	mqtx_log(c.confirmed == s->n ? MQTX_LOG_INFO : MQTX_LOG_WARN,
		 "%s: %zu confirmed, %zu not published, %zu in doubt (of %zu)", what, c.confirmed, c.not_published,
		 c.in_doubt, s->n);
	if (c.in_doubt > 0) {
		mqtx_error("outcome unknown for %zu message(s): running the same command again publishes them again with the same keys",
			   c.in_doubt);
		for (size_t i = 0; i < s->n; i++)
			if (s->msgs[i].state == MQTX_MSG_UNKNOWN)
				mqtx_error("in doubt: %s", s->msgs[i].key);
	}
}
