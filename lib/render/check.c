/* mqtx check's report and --explain, rendered (see check.h): text, JSON,
 * Prometheus. Nothing is judged here: levels, states and thresholds come
 * with the report. */
#include "render/check.h"

#include <stdio.h>
#include <string.h>

static const char *level_colour(const struct mqtx_render *r, enum mqtx_check_level l)
{
	switch (l) {
	case MQTX_CHECK_OK: return mqtx_render_sgr(r, MQTX_SGR_GREEN);
	case MQTX_CHECK_WARNING: return mqtx_render_sgr(r, MQTX_SGR_YELLOW);
	case MQTX_CHECK_CRITICAL: return mqtx_render_sgr(r, MQTX_SGR_RED);
	case MQTX_CHECK_UNKNOWN: return mqtx_render_sgr(r, MQTX_SGR_MAGENTA);
	}
	return "";
}

/* ------------------------------------------------------------ text */

static const char *upper_level(enum mqtx_check_level l)
{
	switch (l) {
	case MQTX_CHECK_OK: return "OK";
	case MQTX_CHECK_WARNING: return "WARNING";
	case MQTX_CHECK_CRITICAL: return "CRITICAL";
	case MQTX_CHECK_UNKNOWN: return "UNKNOWN";
	}
	return "UNKNOWN";
}

static void count_text(const struct mqtx_check_count *c, char *out, size_t n)
{
	if (c->n < 0)
		snprintf(out, n, "unknown");
	else
		snprintf(out, n, "%s%lld", c->approximate ? "~" : "", (long long)c->n);
}

static void row_line(struct mqtx_render *r, const char *indent, const struct mqtx_check_row *row)
{
	char age[32], err[200];
	mqtx_render_age(row->age_ms, age, sizeof(age));
	mqtx_render_cell(row->last_error, 120, err, sizeof(err));
	mqtx_render_printf(r, "%srow %lld to '%s'%s%s%s, %lld attempt(s)%s%s%s%s%s\n", indent, (long long)row->id,
			   row->destination, row->ordering_key ? " (ordering key '" : "",
			   row->ordering_key ? row->ordering_key : "", row->ordering_key ? "')" : "",
			   (long long)row->attempts, row->age_ms >= 0 ? ", written " : "", row->age_ms >= 0 ? age : "",
			   row->age_ms >= 0 ? " ago" : "", row->last_error ? ": " : "", row->last_error ? err : "");
}

static void summary_line(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	mqtx_render_printf(r, "%s%s%s - outbox %s: ", level_colour(r, rep->level), upper_level(rep->level),
			   mqtx_render_sgr(r, MQTX_SGR_RESET), rep->outbox);
	if (rep->n_problems > 0) {
		mqtx_render_printf(r, "%s", rep->problems[0].message);
		if (rep->n_problems > 1)
			mqtx_render_printf(r, " (and %zu more problem%s)", rep->n_problems - 1,
					   rep->n_problems > 2 ? "s" : "");
		mqtx_render_printf(r, "\n");
		return;
	}
	char pend[48], age[32];
	count_text(&rep->db.status[MQTX_ST_PENDING], pend, sizeof(pend));
	mqtx_render_age(rep->db.oldest_pending_ms, age, sizeof(age));
	mqtx_render_printf(r, "%s pending", pend);
	if (rep->db.oldest_pending_ms >= 0)
		mqtx_render_printf(r, " (oldest %s)", age);
	mqtx_render_printf(r, ", %lld dead", (long long)rep->db.status[MQTX_ST_DEAD].n);
	if (rep->db.tail.on)
		mqtx_render_printf(r, ", tail mode: %s%lld unrelayed",
				   rep->db.tail.unrelayed_truncated ? "at least " : "",
				   (long long)rep->db.tail.unrelayed);
	if (rep->db.relayed_hour >= 0)
		mqtx_render_printf(r, ", %lld relayed in the last hour", (long long)rep->db.relayed_hour);
	if (rep->relays_live > 0) {
		mqtx_render_printf(r, ", %lld relay%s live", (long long)rep->relays_live,
				   rep->relays_live == 1 ? "" : "s");
	} else if (rep->db.last_relay_seen_ms >= 0) {
		char seen[32];
		mqtx_render_age(rep->db.last_relay_seen_ms, seen, sizeof(seen));
		mqtx_render_printf(r, ", last relay seen %s ago", seen);
	}
	if (rep->db.table_bytes >= 0) {
		char size[32];
		mqtx_check_size_text(rep->db.table_bytes, size, sizeof(size));
		mqtx_render_printf(r, ", table %s", size);
	}
	mqtx_render_printf(r, "\n");
}

static void text_status(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	static const struct mqtx_table_col status_cols[] = {{"status", 14, false}, {"rows", 12, true}};
	mqtx_render_puts(r, "\n");
	mqtx_table_header(r, status_cols, 2, NULL);
	bool approx = false;
	for (int s = 0; s < MQTX_ST__COUNT; s++) {
		char n[48];
		count_text(&rep->db.status[s], n, sizeof(n));
		approx = approx || rep->db.status[s].approximate;
		const char *cells[] = {mqtx_check_status_names[s], n};
		mqtx_table_cells(r, status_cols, 2, cells);
		if (s == MQTX_ST_PENDING && rep->db.oldest_pending_ms >= 0) {
			char age[32];
			mqtx_render_age(rep->db.oldest_pending_ms, age, sizeof(age));
			mqtx_render_printf(r, "   oldest %s", age);
		}
		mqtx_render_printf(r, "\n");
	}
	if (approx)
		mqtx_render_printf(r,
				   "(~ approximately: estimated from table statistics, or more rows than check.scan_limit)\n");
	if (rep->db.relayed_hour >= 0)
		mqtx_render_printf(r, "relayed: %s%lld in the last minute, %s%lld in the last hour\n",
				   rep->db.relayed_approximate ? "~" : "", (long long)rep->db.relayed_minute,
				   rep->db.relayed_approximate ? "at least " : "", (long long)rep->db.relayed_hour);
}

/* Due rows per pruned kind: "3 sent, 0 rolled_back, at least 100 relays". */
static void text_due(struct mqtx_render *r, const struct mqtx_check_retention *ret)
{
	bool first = true;
	for (int k = 0; k < MQTX_RET__COUNT; k++) {
		if (!ret->pruned[k])
			continue;
		mqtx_render_printf(r, "%s%s%lld %s", first ? "" : ", ", ret->capped[k] ? "at least " : "",
				   (long long)ret->due[k], mqtx_retention_kind_name((enum mqtx_retention_kind)k));
		first = false;
	}
}

/* The table's size and age, and what retention deletes next. */
static void text_storage(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	const struct mqtx_check_snapshot *s = &rep->db;
	const struct mqtx_check_retention *ret = &s->retention;
	const struct mqtx_check_thresholds *t = &rep->thresholds;
	char size[32], age[32];
	mqtx_check_size_text(s->table_bytes, size, sizeof(size));
	mqtx_render_printf(r, "\ntable: %s (table, indexes and TOAST", size);
	if (s->partitions >= 0)
		mqtx_render_printf(r, ", %lld partition%s", (long long)s->partitions, s->partitions == 1 ? "" : "s");
	mqtx_render_printf(r, ")");
	if (s->oldest_row_ms >= 0) {
		mqtx_render_age(s->oldest_row_ms, age, sizeof(age));
		mqtx_render_printf(r, ", oldest row written %s ago", age);
	}
	mqtx_render_printf(r, "\n");

	bool any = false;
	for (int k = 0; k < MQTX_RET__COUNT; k++)
		any = any || ret->pruned[k];
	if (t->retention_ms == 0) {
		mqtx_render_printf(r, "retention off: nothing is deleted");
		if (t->dead_retention_ms != 0) {
			mqtx_render_age(t->dead_retention_ms, age, sizeof(age));
			mqtx_render_printf(r, " but dead rows (outbox.dead_retention: %s)", age);
		}
	} else {
		mqtx_render_age(t->retention_ms, age, sizeof(age));
		mqtx_render_printf(r, "retention: %s", age);
	}
	if (!ret->known) {
		mqtx_render_printf(r, "; what it deletes next is unknown (see problems)\n");
	} else if (any) {
		mqtx_render_printf(r, "; the next pass deletes ");
		text_due(r, ret);
		if (ret->overdue_ms >= 0) {
			mqtx_render_age(ret->overdue_ms, age, sizeof(age));
			mqtx_render_printf(r, "; the oldest has been due for %s", age);
		}
		mqtx_render_printf(r, "\n");
	} else {
		mqtx_render_printf(r, "\n");
	}
	if (ret->note != NULL)
		mqtx_render_printf(r, "retention: %s\n", ret->note);
}

/* Tail mode: what the checkpoints say. */
static char *xact_text(const struct mqtx_check_xact *x, char *out, size_t n)
{
	char a[32];
	mqtx_render_age(x->age_ms, a, sizeof(a));
	if (x->prepared)
		snprintf(out, n, "prepared transaction '%s' (xid %s), prepared %s ago%s%s", x->gid ? x->gid : "?",
			 x->xid ? x->xid : "?", a, x->wrote_outbox ? ", wrote to the outbox" : "",
			 x->in_xip ? ", seen running by a relay" : "");
	else
		snprintf(out, n, "backend pid %lld (xid %s%s%s%s%s), open for %s%s%s", (long long)x->pid,
			 x->xid ? x->xid : "?", x->application_name && x->application_name[0] ? ", " : "",
			 x->application_name && x->application_name[0] ? x->application_name : "", x->state ? ", " : "",
			 x->state ? x->state : "", a, x->wrote_outbox ? ", wrote to the outbox" : "",
			 x->in_xip ? ", seen running by a relay" : "");
	return out;
}

static void text_tail(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	const struct mqtx_check_tail *t = &rep->db.tail;
	if (!t->on)
		return;
	char age[32];
	mqtx_render_printf(r, "\ntail mode: %lld bucket%s (%lld held by a relay now), %s%lld unrelayed row(s)",
			   (long long)t->buckets, t->buckets == 1 ? "" : "s", (long long)t->owned_buckets,
			   t->unrelayed_truncated ? "at least " : "", (long long)t->unrelayed);
	if (t->oldest_unrelayed_ms >= 0) {
		mqtx_render_age(t->oldest_unrelayed_ms, age, sizeof(age));
		mqtx_render_printf(r, " (oldest %s, row %lld)", age, (long long)t->oldest_unrelayed_id);
	}
	mqtx_render_printf(r, "; parked: %lld retry, %lld blocked, %lld dead; %lld blocked key(s)\n",
			   (long long)t->parked[MQTX_PARKED_RETRY], (long long)t->parked[MQTX_PARKED_BLOCKED],
			   (long long)t->parked[MQTX_PARKED_DEAD],
			   (long long)(rep->db.blocked_keys > 0 ? rep->db.blocked_keys : 0));
	static const struct mqtx_table_col cols[] = {{"buckets", 16, false},  {"checkpoint by", 24, false},
						     {"owner", 22, false},    {"written", 10, true},
						     {"unrelayed", 10, true}, {"lag", 9, true}};
	mqtx_render_puts(r, "\n");
	mqtx_table_header(r, cols, 6, NULL);
	for (size_t i = 0; i < t->n_groups; i++) {
		const struct mqtx_check_tail_group *g = &t->groups[i];
		char b[40], by[40], owner[64], own[48], w[32], lag[32];
		mqtx_render_cell(g->buckets, 16, b, sizeof(b));
		mqtx_render_cell(g->relay_id ? g->relay_id : "-", 24, by, sizeof(by));
		if (g->owner_pid >= 0)
			snprintf(own, sizeof(own), "pid %lld", (long long)g->owner_pid);
		else
			snprintf(own, sizeof(own), "none");
		mqtx_render_cell(own, 22, owner, sizeof(owner));
		if (g->prev_snapshot == NULL && g->cur_snapshot == NULL)
			snprintf(w, sizeof(w), "never");
		else
			mqtx_render_age(g->updated_ms, w, sizeof(w));
		if (g->oldest_unrelayed_ms >= 0)
			mqtx_render_age(g->oldest_unrelayed_ms, lag, sizeof(lag));
		else
			snprintf(lag, sizeof(lag), "0");
		mqtx_render_printf(r, "%-16s %-24s %-22s %10s %10lld %9s\n", b, by, owner, w, (long long)g->unrelayed,
				   lag);
	}
	if (t->n_xacts > 0) {
		mqtx_render_printf(r, "\nopen or prepared transactions (rows they wrote wait for them):\n");
		for (size_t i = 0; i < t->n_xacts; i++) {
			char line[400];
			mqtx_render_printf(r, "  %s\n", xact_text(&t->xacts[i], line, sizeof(line)));
		}
		if (t->n_xacts_total > (int64_t)t->n_xacts)
			mqtx_render_printf(r, "  ... and %lld more\n",
					   (long long)(t->n_xacts_total - (int64_t)t->n_xacts));
	}
}

static void text_dests(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	const char *R = mqtx_render_sgr(r, MQTX_SGR_RESET);
	if (rep->db.n_dests == 0)
		return;
	bool broker = false;
	for (size_t i = 0; i < rep->db.n_dests; i++)
		broker = broker || rep->db.dests[i].exists >= 0;
	static const struct mqtx_table_col dest_cols[] = {{"destination", 30, false}, {"pending", 9, true},
							  {"oldest", 9, true},        {"dead", 7, true},
							  {"last min", 9, true},      {"last hour", 9, true}};
	mqtx_render_puts(r, "\n");
	mqtx_table_header(r, dest_cols, 6, broker ? "  broker" : NULL);
	size_t shown = 0;
	for (size_t i = 0; i < rep->db.n_dests; i++) {
		const struct mqtx_check_dest *d = &rep->db.dests[i];
		if (shown++ >= 100) {
			mqtx_render_printf(r, "... and %zu more destinations (see --format json)\n",
					   rep->db.n_dests - 100);
			break;
		}
		char name[64], age[32], m[32], h[32];
		mqtx_render_cell(d->name[0] ? d->name : "(default exchange)", 30, name, sizeof(name));
		mqtx_render_age(d->oldest_pending_ms, age, sizeof(age));
		snprintf(m, sizeof(m), "%lld", (long long)d->relayed_minute);
		snprintf(h, sizeof(h), "%lld", (long long)d->relayed_hour);
		mqtx_render_printf(r, "%-30s %9lld %9s %7lld %9s %9s", name, (long long)d->pending, age,
				   (long long)d->dead, d->relayed_minute >= 0 ? m : "-",
				   d->relayed_hour >= 0 ? h : "-");
		if (d->exists == 1)
			mqtx_render_printf(r, "  exists");
		else if (d->exists == 0)
			mqtx_render_printf(r, "  %sMISSING%s", level_colour(r, MQTX_CHECK_CRITICAL), R);
		mqtx_render_printf(r, "\n");
	}
}

static void text_relays(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	const char *R = mqtx_render_sgr(r, MQTX_SGR_RESET);
	if (!rep->db.relays_known) {
		mqtx_render_printf(r, "\nrelays: unknown (no mqtx_relays table: run 'mqtx init')\n");
	} else if (rep->db.n_relays == 0) {
		mqtx_render_printf(r, "\nrelays: none has run for this outbox\n");
	} else {
		static const struct mqtx_table_col relay_cols[] = {{"relay", 40, false},
								   {"state", 9, false},
								   {"seen", 10, true},
								   {"relayed", 10, true},
								   {"failed", 8, true}};
		mqtx_render_puts(r, "\n");
		mqtx_table_header(r, relay_cols, 5, NULL);
		for (size_t i = 0; i < rep->db.n_relays; i++) {
			const struct mqtx_check_relay *x = &rep->db.relays[i];
			char id[64], seen[40], a[32];
			mqtx_render_cell(x->relay_id, 40, id, sizeof(id));
			mqtx_render_age(x->seen_ms, a, sizeof(a));
			snprintf(seen, sizeof(seen), "%s ago", a);
			mqtx_render_printf(r, "%-40s %s%-9s%s %10s %10lld %8lld\n", id,
					   x->state == MQTX_RELAY_STOPPED
						   ? ""
						   : level_colour(r, mqtx_relay_state_level(x->state)),
					   mqtx_relay_state_name(x->state), R, seen, (long long)x->relayed,
					   (long long)x->failed);
		}
	}
}

static void text_queues(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	if (rep->n_queues == 0)
		return;
	static const struct mqtx_table_col queue_cols[] = {{"queue", 30, false},
							   {"messages", 10, true},
							   {"consumers", 10, true}};
	mqtx_render_puts(r, "\n");
	mqtx_table_header(r, queue_cols, 3, NULL);
	for (size_t i = 0; i < rep->n_queues; i++) {
		const struct mqtx_check_queue *q = &rep->queues[i];
		char name[64];
		mqtx_render_cell(q->name, 30, name, sizeof(name));
		if (q->depth < 0)
			mqtx_render_printf(r, "%-30s %10s %10s  %s\n", name, "-", "-",
					   q->detail ? q->detail : "does not exist");
		else
			mqtx_render_printf(r, "%-30s %10lld %10lld\n", name, (long long)q->depth,
					   (long long)q->consumers);
	}
}

static void text_problem(struct mqtx_render *r, const struct mqtx_check_problem *p)
{
	const char *B = mqtx_render_sgr(r, MQTX_SGR_BOLD), *R = mqtx_render_sgr(r, MQTX_SGR_RESET);
	mqtx_render_printf(r, "%s%-8s%s %s: %s\n", level_colour(r, p->level), upper_level(p->level), R, p->check,
			   p->message);
	for (size_t k = 0; k < p->n_rows; k++)
		row_line(r, "         ", &p->rows[k]);
	for (size_t k = 0; k < p->n_keys; k++) {
		const struct mqtx_check_blocked *b = &p->keys[k];
		char err[160];
		mqtx_render_cell(b->head.last_error, 100, err, sizeof(err));
		mqtx_render_printf(r,
				   "         key '%s': %lld row(s) wait behind row %lld (to '%s', %lld attempt(s): %s)\n",
				   b->ordering_key, (long long)b->behind, (long long)b->head.id, b->head.destination,
				   (long long)b->head.attempts, err);
	}
	for (size_t k = 0; k < p->n_relays; k++) {
		char a[32];
		mqtx_render_age(p->relays[k].seen_ms, a, sizeof(a));
		mqtx_render_printf(r, "         relay %s (pid %lld) last seen %s ago\n", p->relays[k].relay_id,
				   (long long)p->relays[k].pid, a);
	}
	for (size_t k = 0; k < p->n_xacts; k++) {
		char line[400];
		mqtx_render_printf(r, "         %s\n", xact_text(&p->xacts[k], line, sizeof(line)));
	}
	for (size_t k = 0; k < p->n_items; k++) {
		char a[32];
		mqtx_render_age(p->items[k].age_ms, a, sizeof(a));
		mqtx_render_printf(r, "         %s '%s', %s old: %s\n", p->items[k].kind, p->items[k].key, a,
				   p->items[k].detail);
	}
	if (p->action != NULL)
		mqtx_render_printf(r, "         %s-> %s%s\n", B, p->action, R);
}

void mqtx_render_check_text(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	const char *B = mqtx_render_sgr(r, MQTX_SGR_BOLD), *R = mqtx_render_sgr(r, MQTX_SGR_RESET);
	summary_line(r, rep);
	mqtx_render_printf(r, "\n%sdatabase%s %s, checked %s in %lldms\n", B, R,
			   rep->db.database ? rep->db.database : "?", rep->db.checked_at ? rep->db.checked_at : "?",
			   (long long)rep->elapsed_ms);
	text_status(r, rep);
	text_tail(r, rep);
	text_storage(r, rep);
	text_dests(r, rep);
	text_relays(r, rep);
	if (rep->db.completion_checked)
		mqtx_render_printf(r, "\ncompletion: %lld sent message(s) awaiting a consumer's completion\n",
				   (long long)rep->db.awaiting_completion);
	text_queues(r, rep);
	if (rep->resolved)
		mqtx_render_printf(r, "\nresolve: %lld committed, %lld rolled back, %lld still unknown, %lld failed\n",
				   (long long)rep->resolve.committed, (long long)rep->resolve.rolled_back,
				   (long long)rep->resolve.unknown, (long long)rep->resolve.failed);
	if (rep->n_problems == 0) {
		mqtx_render_printf(r, "\nno problems\n");
		return;
	}
	mqtx_render_printf(r, "\n%sproblems%s\n", B, R);
	for (size_t i = 0; i < rep->n_problems; i++)
		text_problem(r, &rep->problems[i]);
}

void mqtx_render_explain_text(struct mqtx_render *r, const struct mqtx_explain *ex, const char *ident)
{
	const char *B = mqtx_render_sgr(r, MQTX_SGR_BOLD), *R = mqtx_render_sgr(r, MQTX_SGR_RESET);
	if (!ex->found) {
		mqtx_render_printf(r, "%s%s%s - no outbox row and no in-doubt txpub item with id or key '%s'\n",
				   level_colour(r, MQTX_CHECK_UNKNOWN), upper_level(MQTX_CHECK_UNKNOWN), R, ident);
		if (ex->verdict != NULL)
			mqtx_render_printf(r, "\n%s\n", ex->verdict);
		if (ex->n_story > 0) {
			mqtx_render_printf(r, "\n%swhy%s\n", B, R);
			for (size_t i = 0; i < ex->n_story; i++)
				mqtx_render_printf(r, "  - %s\n", ex->story[i]);
		}
		if (ex->n_actions > 0) {
			mqtx_render_printf(r, "\n%swhat to do%s\n", B, R);
			for (size_t i = 0; i < ex->n_actions; i++)
				mqtx_render_printf(r, "  %s\n", ex->actions[i]);
		}
		return;
	}
	mqtx_render_printf(r, "%s%s%s - ", level_colour(r, ex->level), upper_level(ex->level), R);
	if (ex->in_outbox)
		mqtx_render_printf(r, "row %lld: %s\n\n", (long long)ex->id, ex->verdict);
	else
		mqtx_render_printf(r, "'%s': %s\n\n", ex->key, ex->verdict);
	char a[32];
	if (ex->in_outbox) {
		mqtx_render_printf(r, "%s%-16s%s %lld\n", B, "id", R, (long long)ex->id);
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "key", R, ex->key ? ex->key : "-");
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "status", R, ex->status);
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "destination", R,
				   ex->destination ? (ex->destination[0] ? ex->destination : "(default exchange)")
						   : "-");
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "routing key", R, ex->routing_key ? ex->routing_key : "-");
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "ordering key", R,
				   ex->ordering_key ? ex->ordering_key : "-");
		mqtx_render_printf(r, "%s%-16s%s %lld\n", B, "attempts", R, (long long)ex->attempts);
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "last error", R, ex->last_error ? ex->last_error : "-");
		mqtx_render_age(ex->age_ms, a, sizeof(a));
		mqtx_render_printf(r, "%s%-16s%s %s%s%s%s\n", B, "created", R, ex->created_at ? ex->created_at : "-",
				   ex->age_ms >= 0 ? " (" : "", ex->age_ms >= 0 ? a : "",
				   ex->age_ms >= 0 ? " ago)" : "");
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "available", R, ex->available_at ? ex->available_at : "-");
		mqtx_render_printf(r, "%s%-16s%s %s\n", B, "sent", R, ex->sent_at ? ex->sent_at : "-");
		if (ex->redelivery_count > 0)
			mqtx_render_printf(r, "%s%-16s%s %lld (last %s)\n", B, "redelivered", R,
					   (long long)ex->redelivery_count,
					   ex->redelivered_at ? ex->redelivered_at : "-");
		if (ex->completed_at != NULL)
			mqtx_render_printf(r, "%s%-16s%s %s\n", B, "completed", R, ex->completed_at);
		if (ex->tail && ex->tail_row.status != NULL) {
			const struct mqtx_db_check_tail_row *tr = &ex->tail_row;
			mqtx_render_printf(r, "%s%-16s%s %lld\n", B, "bucket", R, (long long)tr->bucket);
			mqtx_render_printf(r, "%s%-16s%s %s\n", B, "txid", R, tr->txid ? tr->txid : "- (status era)");
			mqtx_render_printf(r, "%s%-16s%s prev %s, cur %s, position ", B, "checkpoint", R,
					   tr->prev_snapshot ? tr->prev_snapshot : "-",
					   tr->cur_snapshot ? tr->cur_snapshot : "-");
			if (tr->pos_id >= 0)
				mqtx_render_printf(r, "%lld\n", (long long)tr->pos_id);
			else
				mqtx_render_printf(r, "-\n");
			if (tr->parked)
				mqtx_render_printf(r, "%s%-16s%s %s, %lld attempt(s), next %s\n", B, "parked", R,
						   tr->parked_state ? tr->parked_state : "?",
						   (long long)tr->parked_attempts, tr->next_at ? tr->next_at : "-");
		}
	}
	if (ex->n_story > 0) {
		mqtx_render_printf(r, "\n%swhy%s\n", B, R);
		for (size_t i = 0; i < ex->n_story; i++)
			mqtx_render_printf(r, "  - %s\n", ex->story[i]);
	}
	if (ex->n_actions > 0) {
		mqtx_render_printf(r, "\n%swhat to do%s\n", B, R);
		for (size_t i = 0; i < ex->n_actions; i++)
			mqtx_render_printf(r, "  %s\n", ex->actions[i]);
	}
}

/* ------------------------------------------------------------ JSON */

/* retry_in_ms as seconds: null when parked (available_at is infinity), 0
 * when eligible now. */
static void retry_secs(struct mqtx_jw *w, int64_t retry_in_ms)
{
	mqtx_jw_key(w, "retry_in_seconds");
	if (retry_in_ms == MQTX_CHECK_PARKED)
		mqtx_jw_null(w);
	else
		mqtx_jw_secs(w, retry_in_ms > 0 ? retry_in_ms : 0);
}

static void json_row(struct mqtx_jw *w, const struct mqtx_check_row *row)
{
	mqtx_jw_obj(w);
	mqtx_jw_kint(w, "id", row->id);
	mqtx_jw_kstr(w, "key", row->key);
	mqtx_jw_kstr(w, "destination", row->destination);
	mqtx_jw_kstr(w, "ordering_key", row->ordering_key);
	mqtx_jw_kint(w, "attempts", row->attempts);
	mqtx_jw_kstr(w, "last_error", row->last_error);
	mqtx_jw_ksecs(w, "age_seconds", row->age_ms, true);
	retry_secs(w, row->retry_in_ms);
	mqtx_jw_obj_end(w);
}

static void json_relay(struct mqtx_jw *w, const struct mqtx_check_relay *x, bool tail)
{
	mqtx_jw_obj(w);
	mqtx_jw_kstr(w, "relay_id", x->relay_id);
	mqtx_jw_kstr(w, "host", x->host);
	mqtx_jw_kint(w, "pid", x->pid);
	mqtx_jw_kstr(w, "version", x->version);
	mqtx_jw_kstr(w, "state", mqtx_relay_state_name(x->state));
	mqtx_jw_ksecs(w, "last_seen_age_seconds", x->seen_ms, false);
	mqtx_jw_ksecs(w, "started_age_seconds", x->started_ms, false);
	mqtx_jw_kint(w, "relayed", x->relayed);
	mqtx_jw_kint(w, "failed", x->failed);
	mqtx_jw_kstr(w, "last_error", x->last_error);
	if (tail) {
		mqtx_jw_kstr(w, "tail_buckets", x->tail_buckets);
		mqtx_jw_ksecs(w, "tail_checkpoint_lag_seconds", x->tail_lag_ms, true);
	}
	mqtx_jw_obj_end(w);
}

static void json_indoubt(struct mqtx_jw *w, const struct mqtx_check_indoubt *x)
{
	mqtx_jw_obj(w);
	mqtx_jw_kstr(w, "kind", x->kind);
	mqtx_jw_kstr(w, "key", x->key);
	mqtx_jw_kint_or_null(w, "id", x->id > 0 ? x->id : -1);
	mqtx_jw_ksecs(w, "age_seconds", x->age_ms, true);
	mqtx_jw_kstr(w, "detail", x->detail);
	mqtx_jw_obj_end(w);
}

static void json_count(struct mqtx_jw *w, const char *k, int64_t n, bool approximate)
{
	mqtx_jw_key(w, k);
	mqtx_jw_obj(w);
	mqtx_jw_kint_or_null(w, "rows", n);
	mqtx_jw_kbool(w, "approximate", approximate);
	mqtx_jw_obj_end(w);
}

/* A threshold that 0 turns off: null when off. */
static int64_t on_or_null(int64_t v)
{
	return v > 0 ? v : -1;
}

static void json_thresholds(struct mqtx_jw *w, const struct mqtx_check_thresholds *t)
{
	mqtx_jw_key(w, "thresholds");
	mqtx_jw_obj(w);
	mqtx_jw_ksecs(w, "warn_age_seconds", on_or_null(t->warn_age_ms), true);
	mqtx_jw_ksecs(w, "crit_age_seconds", on_or_null(t->crit_age_ms), true);
	mqtx_jw_kint_or_null(w, "warn_attempts", on_or_null(t->warn_attempts));
	mqtx_jw_kint(w, "max_dead", t->max_dead);
	mqtx_jw_ksecs(w, "relay_stale_seconds", t->relay_stale_ms, false);
	mqtx_jw_ksecs(w, "completion_after_seconds", t->completion ? t->completion_after_ms : -1, true);
	mqtx_jw_kint_or_null(w, "queue_max_depth", on_or_null(t->queue_max_depth));
	mqtx_jw_kint(w, "queue_min_consumers", t->queue_min_consumers);
	mqtx_jw_kint(w, "scan_limit", t->scan_limit);
	mqtx_jw_kint_or_null(w, "max_table_size_bytes", on_or_null(t->max_table_size));
	mqtx_jw_ksecs(w, "retention_lag_seconds", on_or_null(t->retention_lag_ms), true);
	mqtx_jw_obj_end(w);
}

static void json_retention(struct mqtx_jw *w, const struct mqtx_check_report *rep)
{
	const struct mqtx_check_retention *ret = &rep->db.retention;
	mqtx_jw_key(w, "retention");
	mqtx_jw_obj(w);
	mqtx_jw_kbool(w, "enabled", rep->thresholds.retention_ms != 0);
	mqtx_jw_ksecs(w, "retention_seconds", on_or_null(rep->thresholds.retention_ms), true);
	mqtx_jw_ksecs(w, "dead_retention_seconds", on_or_null(rep->thresholds.dead_retention_ms), true);
	mqtx_jw_key(w, "due");
	if (!ret->known) {
		mqtx_jw_null(w);
	} else {
		mqtx_jw_obj(w);
		for (int k = 0; k < MQTX_RET__COUNT; k++) {
			const char *name = mqtx_retention_kind_name((enum mqtx_retention_kind)k);
			if (ret->pruned[k]) {
				json_count(w, name, ret->due[k], ret->capped[k]);
			} else {
				mqtx_jw_key(w, name);
				mqtx_jw_null(w);
			}
		}
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_ksecs(w, "overdue_seconds", ret->known ? ret->overdue_ms : -1, true);
	mqtx_jw_kstr(w, "note", ret->note);
	mqtx_jw_kstr(w, "error", ret->error);
	mqtx_jw_obj_end(w);
}

static void json_dest(struct mqtx_jw *w, const struct mqtx_check_dest *d)
{
	mqtx_jw_obj(w);
	mqtx_jw_kstr(w, "destination", d->name);
	mqtx_jw_kint(w, "pending", d->pending);
	mqtx_jw_kint(w, "dead", d->dead);
	mqtx_jw_ksecs(w, "oldest_pending_age_seconds", d->oldest_pending_ms, true);
	mqtx_jw_kint_or_null(w, "relayed_last_minute", d->relayed_minute);
	mqtx_jw_kint_or_null(w, "relayed_last_hour", d->relayed_hour);
	mqtx_jw_key(w, "exists");
	if (d->exists < 0)
		mqtx_jw_null(w);
	else
		mqtx_jw_bool(w, d->exists != 0);
	mqtx_jw_kstr(w, "broker_detail", d->broker_detail);
	mqtx_jw_obj_end(w);
}

static void json_relays(struct mqtx_jw *w, const struct mqtx_check_report *rep)
{
	mqtx_jw_key(w, "relays");
	if (!rep->db.relays_known) {
		mqtx_jw_null(w);
		return;
	}
	mqtx_jw_obj(w);
	mqtx_jw_kint(w, "live", rep->relays_live);
	mqtx_jw_kint(w, "stale", rep->relays_stale);
	mqtx_jw_kint(w, "stopped", rep->relays_stopped);
	mqtx_jw_ksecs(w, "last_seen_age_seconds", rep->db.last_relay_seen_ms, true);
	mqtx_jw_key(w, "list");
	mqtx_jw_arr(w);
	for (size_t i = 0; i < rep->db.n_relays; i++)
		json_relay(w, &rep->db.relays[i], rep->db.tail.on);
	mqtx_jw_arr_end(w);
	mqtx_jw_obj_end(w);
}

static void json_broker(struct mqtx_jw *w, const struct mqtx_check_report *rep)
{
	mqtx_jw_key(w, "broker");
	if (!rep->thresholds.broker) {
		mqtx_jw_null(w);
		return;
	}
	mqtx_jw_obj(w);
	mqtx_jw_kbool(w, "checked", rep->broker_checked);
	mqtx_jw_key(w, "queues");
	mqtx_jw_arr(w);
	for (size_t i = 0; i < rep->n_queues; i++) {
		const struct mqtx_check_queue *q = &rep->queues[i];
		mqtx_jw_obj(w);
		mqtx_jw_kstr(w, "queue", q->name);
		mqtx_jw_kbool(w, "exists", q->exists);
		mqtx_jw_kint_or_null(w, "messages", q->depth);
		mqtx_jw_kint_or_null(w, "consumers", q->consumers);
		mqtx_jw_kstr(w, "detail", q->detail);
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_arr_end(w);
	mqtx_jw_obj_end(w);
}

static void json_xact(struct mqtx_jw *w, const struct mqtx_check_xact *x)
{
	mqtx_jw_obj(w);
	mqtx_jw_kbool(w, "prepared", x->prepared);
	mqtx_jw_kint_or_null(w, "pid", x->pid);
	mqtx_jw_kstr(w, "gid", x->gid);
	mqtx_jw_kstr(w, "xid", x->xid);
	mqtx_jw_kstr(w, "application_name", x->application_name);
	mqtx_jw_kstr(w, "state", x->state);
	mqtx_jw_ksecs(w, "age_seconds", x->age_ms, true);
	mqtx_jw_kbool(w, "in_checkpoint_snapshot", x->in_xip);
	mqtx_jw_kbool(w, "wrote_outbox", x->wrote_outbox);
	mqtx_jw_obj_end(w);
}

static void json_tail(struct mqtx_jw *w, const struct mqtx_check_report *rep)
{
	const struct mqtx_check_tail *t = &rep->db.tail;
	mqtx_jw_key(w, "tail");
	if (!t->on) {
		mqtx_jw_null(w);
		return;
	}
	mqtx_jw_obj(w);
	mqtx_jw_kint(w, "buckets", t->buckets);
	mqtx_jw_kint(w, "owned_buckets", t->owned_buckets);
	json_count(w, "unrelayed", t->unrelayed, t->unrelayed_truncated);
	mqtx_jw_ksecs(w, "oldest_unrelayed_age_seconds", t->oldest_unrelayed_ms, true);
	mqtx_jw_kint_or_null(w, "oldest_unrelayed_id", t->oldest_unrelayed_id);
	mqtx_jw_key(w, "parked");
	mqtx_jw_obj(w);
	for (int k = 0; k < MQTX_PARKED__COUNT; k++)
		mqtx_jw_kint(w, mqtx_check_parked_names[k], t->parked[k]);
	mqtx_jw_obj_end(w);
	mqtx_jw_kint(w, "blocked_keys", rep->db.blocked_keys > 0 ? rep->db.blocked_keys : 0);
	mqtx_jw_key(w, "bucket_groups");
	mqtx_jw_arr(w);
	for (size_t i = 0; i < t->n_groups; i++) {
		const struct mqtx_check_tail_group *g = &t->groups[i];
		mqtx_jw_obj(w);
		mqtx_jw_kstr(w, "buckets", g->buckets);
		mqtx_jw_kint(w, "bucket_count", g->n_buckets);
		mqtx_jw_kstr(w, "prev_snapshot", g->prev_snapshot);
		mqtx_jw_kstr(w, "cur_snapshot", g->cur_snapshot);
		mqtx_jw_kint_or_null(w, "position_id", g->pos_id);
		mqtx_jw_kstr(w, "relay_id", g->relay_id);
		mqtx_jw_ksecs(w, "checkpoint_age_seconds", g->updated_ms, true);
		mqtx_jw_kint_or_null(w, "owner_pid", g->owner_pid);
		mqtx_jw_kstr(w, "owner_application_name", g->owner_app);
		mqtx_jw_kint(w, "unrelayed", g->unrelayed);
		mqtx_jw_ksecs(w, "oldest_unrelayed_age_seconds", g->oldest_unrelayed_ms, true);
		mqtx_jw_ksecs(w, "checkpoint_lag_seconds", g->oldest_unrelayed_ms > 0 ? g->oldest_unrelayed_ms : 0,
			      false);
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_arr_end(w);
	mqtx_jw_key(w, "transactions");
	mqtx_jw_arr(w);
	for (size_t i = 0; i < t->n_xacts; i++)
		json_xact(w, &t->xacts[i]);
	mqtx_jw_arr_end(w);
	mqtx_jw_kint(w, "transactions_total", t->n_xacts_total);
	mqtx_jw_ksecs(w, "old_transaction_age_seconds", t->n_xacts > 0 ? t->xacts[0].age_ms : -1, true);
	mqtx_jw_obj_end(w);
}

static void json_problem(struct mqtx_jw *w, const struct mqtx_check_problem *p, bool tail)
{
	mqtx_jw_obj(w);
	mqtx_jw_kstr(w, "check", p->check);
	mqtx_jw_kstr(w, "severity", mqtx_check_level_name(p->level));
	mqtx_jw_kstr(w, "message", p->message);
	mqtx_jw_kstr(w, "action", p->action);
	mqtx_jw_kint_or_null(w, "count", p->count);
	if (p->destination != NULL)
		mqtx_jw_kstr(w, "destination", p->destination);
	if (p->queue != NULL)
		mqtx_jw_kstr(w, "queue", p->queue);
	if (p->n_rows > 0) {
		mqtx_jw_key(w, "rows");
		mqtx_jw_arr(w);
		for (size_t k = 0; k < p->n_rows; k++)
			json_row(w, &p->rows[k]);
		mqtx_jw_arr_end(w);
	}
	if (p->n_keys > 0) {
		mqtx_jw_key(w, "ordering_keys");
		mqtx_jw_arr(w);
		for (size_t k = 0; k < p->n_keys; k++) {
			mqtx_jw_obj(w);
			mqtx_jw_kstr(w, "ordering_key", p->keys[k].ordering_key);
			mqtx_jw_kint(w, "behind", p->keys[k].behind);
			mqtx_jw_key(w, "head");
			json_row(w, &p->keys[k].head);
			mqtx_jw_obj_end(w);
		}
		mqtx_jw_arr_end(w);
	}
	if (p->n_relays > 0) {
		mqtx_jw_key(w, "relays");
		mqtx_jw_arr(w);
		for (size_t k = 0; k < p->n_relays; k++)
			json_relay(w, &p->relays[k], tail);
		mqtx_jw_arr_end(w);
	}
	if (p->n_xacts > 0) {
		mqtx_jw_key(w, "transactions");
		mqtx_jw_arr(w);
		for (size_t k = 0; k < p->n_xacts; k++)
			json_xact(w, &p->xacts[k]);
		mqtx_jw_arr_end(w);
	}
	if (p->n_items > 0) {
		mqtx_jw_key(w, "items");
		mqtx_jw_arr(w);
		for (size_t k = 0; k < p->n_items; k++)
			json_indoubt(w, &p->items[k]);
		mqtx_jw_arr_end(w);
	}
	mqtx_jw_obj_end(w);
}

void mqtx_render_check_json(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	struct mqtx_jw w;
	mqtx_jw_init(&w, &b);
	mqtx_jw_obj(&w);
	mqtx_jw_kint(&w, "version", MQTX_CHECK_JSON_VERSION);
	mqtx_jw_kstr(&w, "status", mqtx_check_level_name(rep->level));
	mqtx_jw_kint(&w, "exit_code", (int64_t)rep->level);
	mqtx_jw_kstr(&w, "outbox", rep->outbox);
	mqtx_jw_kstr(&w, "database", rep->db.database);
	mqtx_jw_kstr(&w, "checked_at", rep->db.checked_at);
	mqtx_jw_ksecs(&w, "elapsed_seconds", rep->elapsed_ms, false);
	json_thresholds(&w, &rep->thresholds);

	mqtx_jw_key(&w, "counts");
	mqtx_jw_obj(&w);
	bool any_approx = false;
	for (int s = 0; s < MQTX_ST__COUNT; s++) {
		json_count(&w, mqtx_check_status_names[s], rep->db.status[s].n, rep->db.status[s].approximate);
		any_approx = any_approx || rep->db.status[s].approximate;
	}
	mqtx_jw_obj_end(&w);
	json_count(&w, "total", rep->db.total_estimate, any_approx);
	mqtx_jw_kint_or_null(&w, "table_bytes", rep->db.table_bytes);
	mqtx_jw_kint_or_null(&w, "partitions", rep->db.partitions);
	mqtx_jw_ksecs(&w, "oldest_row_age_seconds", rep->db.oldest_row_ms, true);
	mqtx_jw_ksecs(&w, "oldest_pending_age_seconds", rep->db.oldest_pending_ms, true);
	mqtx_jw_kint_or_null(&w, "relayed_last_minute", rep->db.relayed_minute);
	mqtx_jw_kint_or_null(&w, "relayed_last_hour", rep->db.relayed_hour);
	mqtx_jw_kbool(&w, "relayed_approximate", rep->db.relayed_approximate);
	mqtx_jw_kint(&w, "high_attempt_rows", rep->db.high_attempt_rows);
	mqtx_jw_kint_or_null(&w, "blocked_ordering_keys", rep->db.blocked_keys);
	mqtx_jw_kint_or_null(&w, "blocked_rows", rep->db.blocked_rows);

	mqtx_jw_key(&w, "destinations");
	mqtx_jw_arr(&w);
	for (size_t i = 0; i < rep->db.n_dests; i++)
		json_dest(&w, &rep->db.dests[i]);
	mqtx_jw_arr_end(&w);

	json_relays(&w, rep);
	json_tail(&w, rep);

	mqtx_jw_key(&w, "in_doubt");
	if (!rep->in_doubt_known) {
		mqtx_jw_null(&w);
	} else {
		mqtx_jw_arr(&w);
		for (size_t i = 0; i < rep->n_in_doubt; i++)
			json_indoubt(&w, &rep->in_doubt[i]);
		mqtx_jw_arr_end(&w);
	}

	mqtx_jw_key(&w, "completion");
	if (!rep->db.completion_checked) {
		mqtx_jw_null(&w);
	} else {
		mqtx_jw_obj(&w);
		mqtx_jw_kint(&w, "awaiting", rep->db.awaiting_completion);
		mqtx_jw_ksecs(&w, "oldest_sent_age_seconds", rep->db.oldest_awaiting_ms, true);
		mqtx_jw_obj_end(&w);
	}

	json_retention(&w, rep);
	json_broker(&w, rep);

	mqtx_jw_key(&w, "resolve");
	if (!rep->resolved) {
		mqtx_jw_null(&w);
	} else {
		mqtx_jw_obj(&w);
		mqtx_jw_kint(&w, "committed", rep->resolve.committed);
		mqtx_jw_kint(&w, "rolled_back", rep->resolve.rolled_back);
		mqtx_jw_kint(&w, "unknown", rep->resolve.unknown);
		mqtx_jw_kint(&w, "failed", rep->resolve.failed);
		mqtx_jw_obj_end(&w);
	}

	mqtx_jw_key(&w, "problems");
	mqtx_jw_arr(&w);
	for (size_t i = 0; i < rep->n_problems; i++)
		json_problem(&w, &rep->problems[i], rep->db.tail.on);
	mqtx_jw_arr_end(&w);
	mqtx_jw_obj_end(&w);
	mqtx_buf_addc(&b, '\n');
	mqtx_render_take(r, &b);
	mqtx_buf_free(&b);
}

/* ------------------------------------------------------------ Prometheus */

/* Every sample carries outbox="schema.table"; some one more label. */
struct prom {
	struct mqtx_buf b;
	const char *outbox;
};

static void prom_family(struct prom *p, const char *name, const char *help)
{
	mqtx_prom_family(&p->b, name, "gauge", help);
}

static size_t prom_labels(const struct prom *p, const char *label, const char *value, struct mqtx_prom_label *l)
{
	l[0] = (struct mqtx_prom_label){"outbox", p->outbox};
	if (label == NULL)
		return 1;
	l[1] = (struct mqtx_prom_label){label, value};
	return 2;
}

static void prom_int(struct prom *p, const char *name, const char *label, const char *value, int64_t n)
{
	struct mqtx_prom_label l[2];
	mqtx_prom_sample_int(&p->b, name, l, prom_labels(p, label, value, l), n);
}

static void prom_secs(struct prom *p, const char *name, const char *label, const char *value, int64_t ms)
{
	struct mqtx_prom_label l[2];
	mqtx_prom_sample_secs(&p->b, name, l, prom_labels(p, label, value, l), ms);
}

static void prom_status(struct prom *p, enum mqtx_check_level level)
{
	prom_family(p, "mqtx_check_status", "Result of mqtx check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN");
	prom_int(p, "mqtx_check_status", NULL, NULL, (int64_t)level);
}

static void prom_outbox(struct prom *p, const struct mqtx_check_report *rep)
{
	prom_family(p, "mqtx_outbox_rows", "Outbox rows by status (see mqtx_outbox_rows_approximate)");
	for (int s = 0; s < MQTX_ST__COUNT; s++)
		if (rep->db.status[s].n >= 0)
			prom_int(p, "mqtx_outbox_rows", "status", mqtx_check_status_names[s], rep->db.status[s].n);
	prom_family(p, "mqtx_outbox_rows_approximate",
		    "1 when mqtx_outbox_rows of the status is an estimate or a lower bound");
	for (int s = 0; s < MQTX_ST__COUNT; s++)
		if (rep->db.status[s].n >= 0)
			prom_int(p, "mqtx_outbox_rows_approximate", "status", mqtx_check_status_names[s],
				 rep->db.status[s].approximate ? 1 : 0);
	prom_family(p, "mqtx_outbox_oldest_pending_age_seconds", "Age of the oldest pending row (0: none)");
	prom_secs(p, "mqtx_outbox_oldest_pending_age_seconds", NULL, NULL, rep->db.oldest_pending_ms);
	if (rep->db.relayed_hour >= 0) {
		prom_family(p, "mqtx_outbox_relayed_last_minute", "Rows sent in the last minute");
		prom_int(p, "mqtx_outbox_relayed_last_minute", NULL, NULL, rep->db.relayed_minute);
		prom_family(p, "mqtx_outbox_relayed_last_hour", "Rows sent in the last hour");
		prom_int(p, "mqtx_outbox_relayed_last_hour", NULL, NULL, rep->db.relayed_hour);
	}
	prom_family(p, "mqtx_outbox_high_attempt_rows", "Pending rows that failed at least check.warn_attempts times");
	prom_int(p, "mqtx_outbox_high_attempt_rows", NULL, NULL, rep->db.high_attempt_rows);
	if (rep->db.blocked_keys >= 0) {
		prom_family(p, "mqtx_outbox_blocked_ordering_keys", "Ordering keys held back by a failing first row");
		prom_int(p, "mqtx_outbox_blocked_ordering_keys", NULL, NULL, rep->db.blocked_keys);
		prom_family(p, "mqtx_outbox_blocked_rows",
			    "Pending rows waiting behind a failing row of their ordering key");
		prom_int(p, "mqtx_outbox_blocked_rows", NULL, NULL, rep->db.blocked_rows);
	}
}

static void prom_storage(struct prom *p, const struct mqtx_check_report *rep)
{
	const struct mqtx_check_snapshot *s = &rep->db;
	const struct mqtx_check_retention *ret = &s->retention;
	if (s->table_bytes >= 0) {
		prom_family(p, "mqtx_outbox_table_bytes",
			    "Size of the outbox on disk: table, indexes and TOAST, summed over its partitions");
		prom_int(p, "mqtx_outbox_table_bytes", NULL, NULL, s->table_bytes);
	}
	if (s->partitions >= 0) {
		prom_family(p, "mqtx_outbox_partitions", "Partitions of a partitioned outbox");
		prom_int(p, "mqtx_outbox_partitions", NULL, NULL, s->partitions);
	}
	prom_family(p, "mqtx_outbox_oldest_row_age_seconds", "Age of the oldest outbox row, any status (0: none)");
	prom_secs(p, "mqtx_outbox_oldest_row_age_seconds", NULL, NULL, s->oldest_row_ms);
	prom_family(p, "mqtx_retention_enabled", "1 when outbox.retention is on (0: nothing is deleted)");
	prom_int(p, "mqtx_retention_enabled", NULL, NULL, rep->thresholds.retention_ms != 0 ? 1 : 0);
	if (!ret->known)
		return;
	bool any = false;
	for (int k = 0; k < MQTX_RET__COUNT; k++)
		any = any || ret->pruned[k];
	if (any) {
		prom_family(p, "mqtx_retention_due_rows",
			    "Rows the next retention pass deletes, by kind (counted up to check.scan_limit)");
		for (int k = 0; k < MQTX_RET__COUNT; k++)
			if (ret->pruned[k])
				prom_int(p, "mqtx_retention_due_rows", "kind",
					 mqtx_retention_kind_name((enum mqtx_retention_kind)k), ret->due[k]);
	}
	prom_family(p, "mqtx_retention_overdue_seconds",
		    "How long the oldest outbox row retention deletes next has been due (0: none)");
	prom_secs(p, "mqtx_retention_overdue_seconds", NULL, NULL, ret->overdue_ms);
}

static void prom_dests(struct prom *p, const struct mqtx_check_report *rep)
{
	if (rep->db.n_dests == 0)
		return;
	prom_family(p, "mqtx_destination_pending_rows", "Pending rows per destination");
	for (size_t i = 0; i < rep->db.n_dests; i++)
		prom_int(p, "mqtx_destination_pending_rows", "destination", rep->db.dests[i].name,
			 rep->db.dests[i].pending);
	prom_family(p, "mqtx_destination_dead_rows", "Dead rows per destination");
	for (size_t i = 0; i < rep->db.n_dests; i++)
		prom_int(p, "mqtx_destination_dead_rows", "destination", rep->db.dests[i].name, rep->db.dests[i].dead);
	prom_family(p, "mqtx_destination_oldest_pending_age_seconds", "Age of the oldest pending row per destination");
	for (size_t i = 0; i < rep->db.n_dests; i++)
		prom_secs(p, "mqtx_destination_oldest_pending_age_seconds", "destination", rep->db.dests[i].name,
			  rep->db.dests[i].oldest_pending_ms);
	if (rep->db.relayed_hour >= 0) {
		prom_family(p, "mqtx_destination_relayed_last_hour", "Rows sent in the last hour per destination");
		for (size_t i = 0; i < rep->db.n_dests; i++)
			prom_int(p, "mqtx_destination_relayed_last_hour", "destination", rep->db.dests[i].name,
				 rep->db.dests[i].relayed_hour < 0 ? 0 : rep->db.dests[i].relayed_hour);
	}
	bool asked = false;
	for (size_t i = 0; i < rep->db.n_dests; i++)
		asked = asked || rep->db.dests[i].exists >= 0;
	if (asked) {
		prom_family(p, "mqtx_destination_exists", "--broker: 1 when the destination exists on the broker");
		for (size_t i = 0; i < rep->db.n_dests; i++)
			if (rep->db.dests[i].exists >= 0)
				prom_int(p, "mqtx_destination_exists", "destination", rep->db.dests[i].name,
					 rep->db.dests[i].exists);
	}
}

static void prom_relays(struct prom *p, const struct mqtx_check_report *rep)
{
	if (!rep->db.relays_known)
		return;
	prom_family(p, "mqtx_relays", "Relays by state (stopped: the most recent ones only)");
	prom_int(p, "mqtx_relays", "state", "live", rep->relays_live);
	prom_int(p, "mqtx_relays", "state", "stale", rep->relays_stale - rep->relays_replaced);
	prom_int(p, "mqtx_relays", "state", "replaced", rep->relays_replaced);
	prom_int(p, "mqtx_relays", "state", "stopped", rep->relays_stopped);
	if (rep->db.last_relay_seen_ms >= 0) {
		prom_family(p, "mqtx_relay_last_seen_age_seconds", "Time since any relay of the outbox was last seen");
		prom_secs(p, "mqtx_relay_last_seen_age_seconds", NULL, NULL, rep->db.last_relay_seen_ms);
	}
}

static void prom_tail(struct prom *p, const struct mqtx_check_report *rep)
{
	const struct mqtx_check_tail *t = &rep->db.tail;
	if (!t->on)
		return;
	prom_family(p, "mqtx_tail_buckets", "Tail mode: checkpoint buckets of the outbox");
	prom_int(p, "mqtx_tail_buckets", NULL, NULL, t->buckets);
	prom_family(p, "mqtx_tail_buckets_owned", "Tail mode: buckets a relay holds right now");
	prom_int(p, "mqtx_tail_buckets_owned", NULL, NULL, t->owned_buckets);
	prom_family(p, "mqtx_tail_unrelayed_rows",
		    "Tail mode: committed rows not covered by their bucket's checkpoint and not parked (up to check.scan_limit)");
	prom_int(p, "mqtx_tail_unrelayed_rows", NULL, NULL, t->unrelayed);
	prom_family(p, "mqtx_tail_oldest_unrelayed_age_seconds",
		    "Tail mode: age of the oldest unrelayed row (0: none)");
	prom_secs(p, "mqtx_tail_oldest_unrelayed_age_seconds", NULL, NULL, t->oldest_unrelayed_ms);
	prom_family(p, "mqtx_tail_checkpoint_lag_seconds",
		    "Tail mode: age of the oldest unrelayed row of a bucket group (0: caught up)");
	for (size_t i = 0; i < t->n_groups; i++)
		prom_secs(p, "mqtx_tail_checkpoint_lag_seconds", "buckets", t->groups[i].buckets,
			  t->groups[i].oldest_unrelayed_ms);
	prom_family(p, "mqtx_tail_checkpoint_age_seconds",
		    "Tail mode: time since a bucket group's checkpoint was written");
	for (size_t i = 0; i < t->n_groups; i++)
		prom_secs(p, "mqtx_tail_checkpoint_age_seconds", "buckets", t->groups[i].buckets,
			  t->groups[i].updated_ms);
	prom_family(p, "mqtx_tail_bucket_unrelayed_rows", "Tail mode: unrelayed rows of a bucket group");
	for (size_t i = 0; i < t->n_groups; i++)
		prom_int(p, "mqtx_tail_bucket_unrelayed_rows", "buckets", t->groups[i].buckets, t->groups[i].unrelayed);
	prom_family(p, "mqtx_tail_parked_rows", "Tail mode: parked rows by state (retry, blocked, dead)");
	for (int k = 0; k < MQTX_PARKED__COUNT; k++)
		prom_int(p, "mqtx_tail_parked_rows", "state", mqtx_check_parked_names[k], t->parked[k]);
	prom_family(p, "mqtx_tail_blocked_keys", "Tail mode: ordering keys with parked 'blocked' rows");
	prom_int(p, "mqtx_tail_blocked_keys", NULL, NULL, rep->db.blocked_keys > 0 ? rep->db.blocked_keys : 0);
	prom_family(p, "mqtx_tail_open_transactions",
		    "Tail mode: open or prepared transactions that wrote, were seen by a relay, or are older than check.warn_age");
	prom_int(p, "mqtx_tail_open_transactions", NULL, NULL, t->n_xacts_total);
	prom_family(p, "mqtx_tail_old_transaction_age_seconds",
		    "Tail mode: age of the oldest of those transactions (0: none)");
	prom_secs(p, "mqtx_tail_old_transaction_age_seconds", NULL, NULL, t->n_xacts > 0 ? t->xacts[0].age_ms : -1);
}

static void prom_queues(struct prom *p, const struct mqtx_check_report *rep)
{
	if (rep->n_queues == 0)
		return;
	prom_family(p, "mqtx_queue_exists", "--broker: 1 when the queue exists");
	for (size_t i = 0; i < rep->n_queues; i++)
		prom_int(p, "mqtx_queue_exists", "queue", rep->queues[i].name, rep->queues[i].exists ? 1 : 0);
	prom_family(p, "mqtx_queue_messages", "--broker: messages ready in the queue");
	for (size_t i = 0; i < rep->n_queues; i++)
		if (rep->queues[i].depth >= 0)
			prom_int(p, "mqtx_queue_messages", "queue", rep->queues[i].name, rep->queues[i].depth);
	prom_family(p, "mqtx_queue_consumers", "--broker: consumers of the queue");
	for (size_t i = 0; i < rep->n_queues; i++)
		if (rep->queues[i].consumers >= 0)
			prom_int(p, "mqtx_queue_consumers", "queue", rep->queues[i].name, rep->queues[i].consumers);
}

void mqtx_render_check_prometheus(struct mqtx_render *r, const struct mqtx_check_report *rep)
{
	struct prom p = {MQTX_BUF_INIT, rep->outbox ? rep->outbox : ""};
	prom_status(&p, rep->level);
	prom_family(&p, "mqtx_check_problems", "Problems found, by severity");
	static const enum mqtx_check_level sev[] = {MQTX_CHECK_WARNING, MQTX_CHECK_CRITICAL, MQTX_CHECK_UNKNOWN};
	for (size_t i = 0; i < 3; i++) {
		int64_t n = 0;
		for (size_t k = 0; k < rep->n_problems; k++)
			n += rep->problems[k].level == sev[i];
		prom_int(&p, "mqtx_check_problems", "severity", mqtx_check_level_name(sev[i]), n);
	}
	prom_family(&p, "mqtx_check_duration_seconds", "How long the check took");
	prom_secs(&p, "mqtx_check_duration_seconds", NULL, NULL, rep->elapsed_ms);

	prom_outbox(&p, rep);
	prom_storage(&p, rep);
	prom_dests(&p, rep);
	prom_relays(&p, rep);
	prom_tail(&p, rep);
	if (rep->in_doubt_known) {
		prom_family(&p, "mqtx_in_doubt_items", "txpub items in doubt (half messages, prepared transactions)");
		prom_int(&p, "mqtx_in_doubt_items", NULL, NULL, (int64_t)rep->n_in_doubt);
	}
	if (rep->db.completion_checked) {
		prom_family(&p, "mqtx_completion_awaiting_rows",
			    "Sent messages not completed after check.completion_after");
		prom_int(&p, "mqtx_completion_awaiting_rows", NULL, NULL, rep->db.awaiting_completion);
		prom_family(&p, "mqtx_completion_oldest_age_seconds",
			    "Time since the oldest of them was sent (0: none)");
		prom_secs(&p, "mqtx_completion_oldest_age_seconds", NULL, NULL, rep->db.oldest_awaiting_ms);
	}
	prom_queues(&p, rep);
	if (rep->resolved) {
		prom_family(&p, "mqtx_resolve_items", "--resolve: in-doubt items by outcome");
		prom_int(&p, "mqtx_resolve_items", "result", "committed", rep->resolve.committed);
		prom_int(&p, "mqtx_resolve_items", "result", "rolled_back", rep->resolve.rolled_back);
		prom_int(&p, "mqtx_resolve_items", "result", "unknown", rep->resolve.unknown);
		prom_int(&p, "mqtx_resolve_items", "result", "failed", rep->resolve.failed);
	}
	mqtx_render_take(r, &p.b);
	mqtx_buf_free(&p.b);
}

void mqtx_render_check(struct mqtx_render *r, enum mqtx_check_format format, const struct mqtx_check_report *rep)
{
	switch (format) {
	case MQTX_CHECK_FMT_TEXT: mqtx_render_check_text(r, rep); break;
	case MQTX_CHECK_FMT_JSON: mqtx_render_check_json(r, rep); break;
	case MQTX_CHECK_FMT_PROMETHEUS: mqtx_render_check_prometheus(r, rep); break;
	}
}

void mqtx_render_check_unknown(struct mqtx_render *r, enum mqtx_check_format format, const char *outbox,
			       const char *message)
{
	if (format == MQTX_CHECK_FMT_JSON) {
		struct mqtx_buf b = MQTX_BUF_INIT;
		struct mqtx_jw w;
		mqtx_jw_init(&w, &b);
		mqtx_jw_obj(&w);
		mqtx_jw_kint(&w, "version", MQTX_CHECK_JSON_VERSION);
		mqtx_jw_kstr(&w, "status", "unknown");
		mqtx_jw_kint(&w, "exit_code", MQTX_CHECK_UNKNOWN);
		mqtx_jw_kstr(&w, "outbox", outbox);
		mqtx_jw_kstr(&w, "error", message);
		mqtx_jw_obj_end(&w);
		mqtx_buf_addc(&b, '\n');
		mqtx_render_take(r, &b);
		mqtx_buf_free(&b);
	} else if (format == MQTX_CHECK_FMT_PROMETHEUS) {
		struct prom p = {MQTX_BUF_INIT, outbox ? outbox : ""};
		prom_status(&p, MQTX_CHECK_UNKNOWN);
		mqtx_render_take(r, &p.b);
		mqtx_buf_free(&p.b);
	} else {
		/* Nagios reads the first line of standard output */
		mqtx_render_printf(r, "UNKNOWN - %s\n", message);
	}
}

/* ------------------------------------------------------------ explain */

static void json_strings(struct mqtx_jw *w, const char *k, char *const *v, size_t n)
{
	mqtx_jw_key(w, k);
	mqtx_jw_arr(w);
	for (size_t i = 0; i < n; i++)
		mqtx_jw_str(w, v[i]);
	mqtx_jw_arr_end(w);
}

/* --explain on a tail-mode outbox: the row's bucket, checkpoint and parked row. */
static void json_explain_tail(struct mqtx_jw *w, const struct mqtx_explain *ex)
{
	mqtx_jw_key(w, "tail");
	const struct mqtx_db_check_tail_row *tr = &ex->tail_row;
	if (!ex->tail || !ex->in_outbox || tr->status == NULL) {
		mqtx_jw_null(w);
		return;
	}
	mqtx_jw_obj(w);
	mqtx_jw_kint(w, "bucket", tr->bucket);
	mqtx_jw_kstr(w, "txid", tr->txid);
	mqtx_jw_kbool(w, "covered", tr->covered);
	mqtx_jw_kbool(w, "in_prev_snapshot", tr->in_prev);
	mqtx_jw_kbool(w, "in_cur_snapshot", tr->in_cur);
	mqtx_jw_key(w, "checkpoint");
	mqtx_jw_obj(w);
	mqtx_jw_kstr(w, "prev_snapshot", tr->prev_snapshot);
	mqtx_jw_kstr(w, "cur_snapshot", tr->cur_snapshot);
	mqtx_jw_kint_or_null(w, "position_id", tr->pos_id);
	mqtx_jw_kstr(w, "relay_id", tr->relay_id);
	mqtx_jw_ksecs(w, "checkpoint_age_seconds", tr->updated_ms, true);
	mqtx_jw_kint_or_null(w, "owner_pid", tr->owner_pid);
	mqtx_jw_kstr(w, "owner_application_name", tr->owner_app);
	mqtx_jw_obj_end(w);
	mqtx_jw_kint(w, "unrelayed_ahead", tr->ahead);
	mqtx_jw_key(w, "parked");
	if (!tr->parked) {
		mqtx_jw_null(w);
	} else {
		mqtx_jw_obj(w);
		mqtx_jw_kstr(w, "state", tr->parked_state);
		mqtx_jw_kint(w, "attempts", tr->parked_attempts);
		mqtx_jw_kstr(w, "next_at", tr->next_at);
		mqtx_jw_kstr(w, "last_error", tr->parked_error);
		mqtx_jw_kstr(w, "parked_at", tr->parked_at);
		mqtx_jw_kint(w, "seq", tr->seq);
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_obj_end(w);
}

void mqtx_render_explain_json(struct mqtx_render *r, const struct mqtx_explain *ex, const char *ident)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	struct mqtx_jw w;
	mqtx_jw_init(&w, &b);
	mqtx_jw_obj(&w);
	mqtx_jw_kint(&w, "version", MQTX_CHECK_JSON_VERSION);
	mqtx_jw_kstr(&w, "query", ident);
	mqtx_jw_kbool(&w, "found", ex->found);
	enum mqtx_check_level lvl = ex->found ? ex->level : MQTX_CHECK_UNKNOWN;
	mqtx_jw_kstr(&w, "severity", mqtx_check_level_name(lvl));
	mqtx_jw_kint(&w, "exit_code", (int64_t)lvl);
	if (!ex->found && ex->verdict != NULL) {
		mqtx_jw_kstr(&w, "verdict", ex->verdict);
		json_strings(&w, "story", ex->story, ex->n_story);
		json_strings(&w, "actions", ex->actions, ex->n_actions);
		if (ex->tail) {
			mqtx_jw_key(&w, "writers");
			mqtx_jw_arr(&w);
			for (size_t i = 0; i < ex->n_writers; i++)
				json_xact(&w, &ex->writers[i]);
			mqtx_jw_arr_end(&w);
			mqtx_jw_kint_or_null(&w, "max_id", ex->max_id);
		}
	}
	if (ex->found) {
		mqtx_jw_kbool(&w, "in_outbox", ex->in_outbox);
		mqtx_jw_kint_or_null(&w, "id", ex->in_outbox ? ex->id : -1);
		mqtx_jw_kstr(&w, "key", ex->key);
		mqtx_jw_kstr(&w, "status", ex->status);
		mqtx_jw_kstr(&w, "destination", ex->destination);
		mqtx_jw_kstr(&w, "routing_key", ex->routing_key);
		mqtx_jw_kstr(&w, "ordering_key", ex->ordering_key);
		mqtx_jw_kint(&w, "attempts", ex->attempts);
		mqtx_jw_kint(&w, "redelivery_count", ex->redelivery_count);
		mqtx_jw_kstr(&w, "last_error", ex->last_error);
		mqtx_jw_kstr(&w, "created_at", ex->created_at);
		mqtx_jw_kstr(&w, "available_at", ex->available_at);
		mqtx_jw_kstr(&w, "sent_at", ex->sent_at);
		mqtx_jw_kstr(&w, "redelivered_at", ex->redelivered_at);
		mqtx_jw_kstr(&w, "completed_at", ex->completed_at);
		mqtx_jw_ksecs(&w, "age_seconds", ex->age_ms, true);
		retry_secs(&w, ex->retry_in_ms);
		mqtx_jw_key(&w, "blocked_by");
		if (ex->ahead > 0) {
			mqtx_jw_obj(&w);
			mqtx_jw_kint(&w, "ahead", ex->ahead);
			mqtx_jw_key(&w, "head");
			json_row(&w, &ex->head);
			mqtx_jw_obj_end(&w);
		} else {
			mqtx_jw_null(&w);
		}
		mqtx_jw_kint(&w, "behind", ex->behind);
		mqtx_jw_kbool(&w, "relay_alive", ex->relay_alive);
		mqtx_jw_kstr(&w, "in_doubt", ex->in_doubt);
		mqtx_jw_kstr(&w, "verdict", ex->verdict);
		json_strings(&w, "story", ex->story, ex->n_story);
		json_strings(&w, "actions", ex->actions, ex->n_actions);
		json_explain_tail(&w, ex);
	}
	mqtx_jw_obj_end(&w);
	mqtx_buf_addc(&b, '\n');
	mqtx_render_take(r, &b);
	mqtx_buf_free(&b);
}
