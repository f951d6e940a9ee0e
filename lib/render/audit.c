/* mqtx dedupe-audit's report as text, JSON and CSV. Only shows what the
 * report holds; the verdict is the report's (lib/audit/audit.c). */
#define _POSIX_C_SOURCE 200809L
#include "render/audit.h"

#include <stdio.h>
#include <string.h>

static const char *plural(int64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* "partition 2 offset 17 at 2026-...Z (redelivery 1)", the parts known. */
static void where_text(const struct mqtx_audit_report *rep, const struct mqtx_audit_where *w, struct mqtx_buf *b)
{
	if (w->partition >= 0)
		mqtx_buf_printf(b, "partition %d ", (int)w->partition);
	if (w->offset >= 0)
		mqtx_buf_printf(b, "%s %lld", rep->position, (long long)w->offset);
	if (w->ts_us != MQTX_AUDIT_NO_TS) {
		char t[40];
		mqtx_audit_format_time(w->ts_us, t, sizeof(t));
		mqtx_buf_printf(b, "%s%s", w->offset >= 0 ? " at " : "", t);
	}
	if (w->redelivery_count > 0)
		mqtx_buf_printf(b, " (redelivery %lld)", (long long)w->redelivery_count);
}

/* Every place a duplicate was seen, "; "-separated. */
static void dup_where_text(const struct mqtx_audit_report *rep, const struct mqtx_audit_dup *d, struct mqtx_buf *b)
{
	for (size_t j = 0; j < d->n_where; j++) {
		if (j > 0)
			mqtx_buf_adds(b, "; ");
		where_text(rep, &d->where[j], b);
	}
}

void mqtx_render_audit_verdict(struct mqtx_buf *b, const struct mqtx_audit_report *rep)
{
	size_t start = b->len;
	if (rep->status == MQTX_AUDIT_OK)
		mqtx_buf_adds(b, "OK: within --max-duplicates and --max-missing");
	else
		mqtx_buf_adds(b, "FAIL:");
	if (rep->duplicates_over)
		mqtx_buf_printf(b, " %lld duplicated %s > --max-duplicates %lld;", (long long)rep->dup_unexplained_keys,
				plural(rep->dup_unexplained_keys, "key", "keys"), (long long)rep->max_duplicates);
	if (rep->missing_over)
		mqtx_buf_printf(b, " %lld missing > --max-missing %lld;", (long long)rep->missing,
				(long long)rep->max_missing);
	if (b->len > start && b->data[b->len - 1] == ';')
		b->data[--b->len] = '\0';
	mqtx_buf_printf(b, " (exit %d)", rep->status);
}

/* ------------------------------------------------------------ text */

static void text_summary(struct mqtx_render *r, const struct mqtx_audit_report *rep)
{
	char t1[40], t2[40];
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_render_printf(r, "dedupe-audit of %s\n", rep->source);
	mqtx_render_printf(r, "  %-15s %lld %s (%s) in %.1fs\n", "read", (long long)rep->deliveries,
			   plural(rep->deliveries, "delivery", "deliveries"), rep->detail,
			   (double)rep->read_ms / 1000.0);
	if (rep->stopped)
		mqtx_render_printf(r,
				   "  %-15s a signal ended reading early: losses and order cover only what was read\n",
				   "stopped");
	mqtx_audit_format_time(rep->until_us, t2, sizeof(t2));
	if (rep->has_since) {
		mqtx_audit_format_time(rep->since_us, t1, sizeof(t1));
		mqtx_render_printf(r, "  %-15s rows sent from %s to %s\n", "window", t1, t2);
	} else if (rep->sent_at_known) {
		mqtx_render_printf(r, "  %-15s rows sent before %s\n", "window", t2);
	} else {
		mqtx_render_printf(r, "  %-15s every sent row (the outbox has no sent_at column)\n", "window");
	}
	for (size_t i = 0; i < rep->n_destinations; i++)
		mqtx_buf_printf(&b, "%s%s", i ? ", " : "", rep->destinations[i]);
	if (rep->losses_checked)
		mqtx_render_printf(r, "  %-15s %s%s\n", "destinations", b.data ? b.data : "",
				   rep->destinations_inferred ? " (of the delivered rows)" : "");
	else
		mqtx_render_printf(r, "  %-15s none known: losses and gaps not checked (give --destination)\n",
				   "destinations");
	if (rep->losses_checked)
		mqtx_render_printf(r, "  %-15s %lld\n", "outbox sent", (long long)rep->outbox_sent);
	mqtx_render_printf(r, "  %-15s %lld\n", "distinct keys", (long long)rep->distinct_keys);
	mqtx_render_printf(r, "  %-15s %lld %s, %lld extra %s: %lld not explained by redelivery, %lld explained\n",
			   "duplicates", (long long)rep->dup_keys, plural(rep->dup_keys, "key", "keys"),
			   (long long)rep->dup_extra, plural(rep->dup_extra, "copy", "copies"),
			   (long long)rep->dup_unexplained_keys, (long long)rep->dup_explained_keys);
	if (rep->losses_checked)
		mqtx_render_printf(r, "  %-15s %lld\n", "missing", (long long)rep->missing);
	else
		mqtx_render_printf(r, "  %-15s not checked\n", "missing");
	mqtx_render_printf(r, "  %-15s %lld %s, %lld %s%s\n", "strangers", (long long)rep->stranger_keys,
			   plural(rep->stranger_keys, "key", "keys"), (long long)rep->stranger_deliveries,
			   plural(rep->stranger_deliveries, "delivery", "deliveries"),
			   rep->unkeyed > 0 ? " (some without an idempotency key)" : "");
	if (rep->order_checked)
		mqtx_render_printf(r, "  %-15s %lld %s in %lld of %lld ordering %s\n", "out of order",
				   (long long)rep->out_of_order, plural(rep->out_of_order, "delivery", "deliveries"),
				   (long long)rep->out_of_order_keys, (long long)rep->order_keys,
				   plural(rep->order_keys, "key", "keys"));
	else
		mqtx_render_printf(r, "  %-15s not checked (%s)\n", "out of order",
				   rep->order_note[0] ? rep->order_note : "the source has no order");
	if (rep->losses_checked)
		mqtx_render_printf(r, "  %-15s %lld in %lld ordering %s\n", "gaps", (long long)rep->gaps,
				   (long long)rep->gap_keys, plural(rep->gap_keys, "key", "keys"));
	if (rep->delivered_unsent > 0)
		mqtx_render_printf(r, "  %-15s %lld delivered %s not marked sent in the outbox (yet)\n", "unmarked",
				   (long long)rep->delivered_unsent,
				   plural(rep->delivered_unsent, "row is", "rows are"));
	if (rep->has_table)
		mqtx_render_printf(r, "  %-15s %s: %s\n", "consumer table", rep->table,
				   rep->table_unique
					   ? rep->table_unique_by
					   : "NO unique constraint or index on the key column: duplicates are not prevented");
	mqtx_buf_reset(&b);
	mqtx_render_audit_verdict(&b, rep);
	mqtx_render_printf(r, "  %-15s %s\n", "result", b.data);
	mqtx_buf_free(&b);
}

static void text_dups(struct mqtx_render *r, const struct mqtx_audit_report *rep)
{
	if (rep->n_dups == 0)
		return;
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_adds(&b, ""); /* b.data is a string from here on, empty or not */
	mqtx_render_printf(r, "\nduplicates (%s):\n",
			   rep->dup_keys > (int64_t)rep->n_dups ? "first ones, unexplained first"
								: "unexplained first");
	for (size_t i = 0; i < rep->n_dups; i++) {
		const struct mqtx_audit_dup *d = &rep->dups[i];
		mqtx_buf_reset(&b);
		dup_where_text(rep, d, &b);
		if ((int64_t)d->n_where < d->count)
			mqtx_buf_adds(&b, "; ...");
		mqtx_render_printf(r, "  %s  id %lld  %lld copies%s: %s\n", d->key, (long long)d->outbox_id,
				   (long long)d->count, d->explained ? " (explained by redelivery)" : "", b.data);
	}
	mqtx_buf_free(&b);
}

static void text_rows(struct mqtx_render *r, const struct mqtx_audit_report *rep)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_adds(&b, ""); /* b.data is a string from here on, empty or not */
	if (rep->missing_rows.n > 0) {
		mqtx_render_puts(r, "\nmissing:\n");
		for (size_t i = 0; i < rep->missing_rows.n; i++) {
			const struct mqtx_audit_row *row = &rep->missing_rows.rows[i];
			char t[40] = "?";
			if (row->sent_at_us != MQTX_AUDIT_NO_TS)
				mqtx_audit_format_time(row->sent_at_us, t, sizeof(t));
			mqtx_render_printf(r, "  %s  id %lld%s%s  sent %s\n", row->key, (long long)row->outbox_id,
					   row->ordering_key ? "  ordering key " : "",
					   row->ordering_key ? row->ordering_key : "", t);
		}
	}
	if (rep->strangers.n > 0) {
		mqtx_render_puts(r, "\nstrangers (keys the outbox does not know):\n");
		for (size_t i = 0; i < rep->strangers.n; i++) {
			const struct mqtx_audit_row *row = &rep->strangers.rows[i];
			mqtx_buf_reset(&b);
			where_text(rep, &row->where, &b);
			mqtx_render_printf(r, "  %s  %lld %s, first at %s\n",
					   row->key ? row->key : "(no idempotency key)", (long long)row->count,
					   plural(row->count, "delivery", "deliveries"), b.data);
		}
	}
	if (rep->order_rows.n > 0) {
		mqtx_render_puts(r, "\nout of order (came after a later row of its ordering key):\n");
		for (size_t i = 0; i < rep->order_rows.n; i++) {
			const struct mqtx_audit_row *row = &rep->order_rows.rows[i];
			mqtx_buf_reset(&b);
			where_text(rep, &row->where, &b);
			mqtx_render_printf(r, "  %s  id %lld  ordering key %s  after id %lld, at %s\n", row->key,
					   (long long)row->outbox_id, row->ordering_key, (long long)row->after_id,
					   b.data);
		}
	}
	if (rep->gap_rows.n > 0) {
		mqtx_render_puts(r, "\ngaps (not seen, between delivered rows of its ordering key):\n");
		for (size_t i = 0; i < rep->gap_rows.n; i++) {
			const struct mqtx_audit_row *row = &rep->gap_rows.rows[i];
			mqtx_render_printf(r,
					   "  %s  id %lld  ordering key %s  %s, between delivered ids %lld and %lld\n",
					   row->key, (long long)row->outbox_id, row->ordering_key, row->status,
					   (long long)row->after_id, (long long)row->before_id);
		}
	}
	mqtx_buf_free(&b);
}

void mqtx_render_audit_text(struct mqtx_render *r, const struct mqtx_audit_report *rep)
{
	text_summary(r, rep);
	text_dups(r, rep);
	text_rows(r, rep);
}

/* ------------------------------------------------------------ JSON */

static void json_time(struct mqtx_jw *w, int64_t us)
{
	if (us == MQTX_AUDIT_NO_TS) {
		mqtx_jw_null(w);
		return;
	}
	char t[40];
	mqtx_audit_format_time(us, t, sizeof(t));
	mqtx_jw_str(w, t);
}

static void json_where(struct mqtx_jw *w, const struct mqtx_audit_report *rep, const struct mqtx_audit_where *where)
{
	mqtx_jw_obj(w);
	if (where->partition >= 0)
		mqtx_jw_kint(w, "partition", where->partition);
	mqtx_jw_kint_or_null(w, rep->position, where->offset);
	mqtx_jw_key(w, "ts");
	json_time(w, where->ts_us);
	mqtx_jw_kint(w, "redelivery_count", where->redelivery_count > 0 ? where->redelivery_count : 0);
	mqtx_jw_obj_end(w);
}

enum row_kind { ROW_MISSING, ROW_STRANGER, ROW_ORDER, ROW_GAP };

static void json_rows(struct mqtx_jw *w, const struct mqtx_audit_report *rep, const struct mqtx_audit_list *l,
		      enum row_kind kind)
{
	mqtx_jw_arr(w);
	for (size_t i = 0; i < l->n; i++) {
		const struct mqtx_audit_row *row = &l->rows[i];
		mqtx_jw_obj(w);
		mqtx_jw_kstr(w, "key", row->key);
		if (kind == ROW_STRANGER) {
			mqtx_jw_kint(w, "deliveries", row->count);
			mqtx_jw_key(w, "first");
			json_where(w, rep, &row->where);
		} else {
			mqtx_jw_kint(w, "outbox_id", row->outbox_id);
			mqtx_jw_kstr(w, "ordering_key", row->ordering_key);
		}
		if (kind == ROW_MISSING || kind == ROW_GAP) {
			mqtx_jw_kstr(w, "status", row->status);
			mqtx_jw_key(w, "sent_at");
			json_time(w, row->sent_at_us);
		}
		if (kind == ROW_ORDER) {
			mqtx_jw_kint(w, "after_id", row->after_id);
			mqtx_jw_key(w, "at");
			json_where(w, rep, &row->where);
		}
		if (kind == ROW_GAP) {
			mqtx_jw_key(w, "between");
			mqtx_jw_arr(w);
			mqtx_jw_int(w, row->after_id);
			mqtx_jw_int(w, row->before_id);
			mqtx_jw_arr_end(w);
		}
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_arr_end(w);
}

static void json_window(struct mqtx_jw *w, const struct mqtx_audit_report *rep)
{
	mqtx_jw_key(w, "window");
	mqtx_jw_obj(w);
	mqtx_jw_key(w, "since");
	json_time(w, rep->has_since ? rep->since_us : MQTX_AUDIT_NO_TS);
	mqtx_jw_key(w, "until");
	json_time(w, rep->sent_at_known ? rep->until_us : MQTX_AUDIT_NO_TS);
	mqtx_jw_key(w, "destinations");
	mqtx_jw_arr(w);
	for (size_t i = 0; i < rep->n_destinations; i++)
		mqtx_jw_str(w, rep->destinations[i]);
	mqtx_jw_arr_end(w);
	mqtx_jw_kbool(w, "destinations_inferred", rep->destinations_inferred);
	mqtx_jw_obj_end(w);
}

static void json_dups(struct mqtx_jw *w, const struct mqtx_audit_report *rep)
{
	mqtx_jw_key(w, "duplicates");
	mqtx_jw_obj(w);
	mqtx_jw_kint(w, "keys", rep->dup_keys);
	mqtx_jw_kint(w, "extra_deliveries", rep->dup_extra);
	mqtx_jw_kint(w, "unexplained_keys", rep->dup_unexplained_keys);
	mqtx_jw_kint(w, "unexplained_extra_deliveries", rep->dup_unexplained_extra);
	mqtx_jw_kint(w, "explained_keys", rep->dup_explained_keys);
	mqtx_jw_key(w, "details");
	mqtx_jw_arr(w);
	for (size_t i = 0; i < rep->n_dups; i++) {
		const struct mqtx_audit_dup *d = &rep->dups[i];
		mqtx_jw_obj(w);
		mqtx_jw_kstr(w, "key", d->key);
		mqtx_jw_kint(w, "outbox_id", d->outbox_id);
		mqtx_jw_kint(w, "count", d->count);
		mqtx_jw_kbool(w, "explained", d->explained);
		mqtx_jw_key(w, "where");
		mqtx_jw_arr(w);
		for (size_t j = 0; j < d->n_where; j++)
			json_where(w, rep, &d->where[j]);
		mqtx_jw_arr_end(w);
		mqtx_jw_obj_end(w);
	}
	mqtx_jw_arr_end(w);
	mqtx_jw_obj_end(w);
}

/* "name":{ ... the counts ..., "details":[rows]} */
static void section_begin(struct mqtx_jw *w, const char *name)
{
	mqtx_jw_key(w, name);
	mqtx_jw_obj(w);
}

static void section_end(struct mqtx_jw *w, const struct mqtx_audit_report *rep, const struct mqtx_audit_list *l,
			enum row_kind kind)
{
	mqtx_jw_key(w, "details");
	json_rows(w, rep, l, kind);
	mqtx_jw_obj_end(w);
}

static void json_findings(struct mqtx_jw *w, const struct mqtx_audit_report *rep)
{
	section_begin(w, "missing");
	mqtx_jw_kbool(w, "checked", rep->losses_checked);
	mqtx_jw_kint(w, "count", rep->missing);
	section_end(w, rep, &rep->missing_rows, ROW_MISSING);

	section_begin(w, "strangers");
	mqtx_jw_kint(w, "keys", rep->stranger_keys);
	mqtx_jw_kint(w, "deliveries", rep->stranger_deliveries);
	mqtx_jw_kint(w, "unkeyed_deliveries", rep->unkeyed);
	section_end(w, rep, &rep->strangers, ROW_STRANGER);

	section_begin(w, "order");
	mqtx_jw_kbool(w, "checked", rep->order_checked);
	mqtx_jw_kint(w, "ordering_keys", rep->order_keys);
	mqtx_jw_kint(w, "out_of_order", rep->out_of_order);
	mqtx_jw_kint(w, "out_of_order_keys", rep->out_of_order_keys);
	section_end(w, rep, &rep->order_rows, ROW_ORDER);

	section_begin(w, "gaps");
	mqtx_jw_kint(w, "count", rep->gaps);
	mqtx_jw_kint(w, "ordering_keys", rep->gap_keys);
	section_end(w, rep, &rep->gap_rows, ROW_GAP);
}

static void json_table(struct mqtx_jw *w, const struct mqtx_audit_report *rep)
{
	mqtx_jw_key(w, "consumer_table");
	if (!rep->has_table) {
		mqtx_jw_null(w);
		return;
	}
	mqtx_jw_obj(w);
	mqtx_jw_kstr(w, "table", rep->table);
	mqtx_jw_kstr(w, "key_column", rep->key_column);
	mqtx_jw_kbool(w, "unique", rep->table_unique);
	mqtx_jw_kstr(w, "unique_by", rep->table_unique ? rep->table_unique_by : NULL);
	mqtx_jw_obj_end(w);
}

void mqtx_render_audit_json(struct mqtx_render *r, const struct mqtx_audit_report *rep)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	struct mqtx_jw w;
	mqtx_jw_init(&w, &b);
	mqtx_jw_obj(&w);
	mqtx_jw_kstr(&w, "source", rep->source);
	mqtx_jw_kstr(&w, "kind", rep->kind);
	mqtx_jw_kstr(&w, "read", rep->detail);
	mqtx_jw_kbool(&w, "stopped", rep->stopped);
	mqtx_jw_kint(&w, "deliveries", rep->deliveries);
	mqtx_jw_kint(&w, "distinct_keys", rep->distinct_keys);
	json_window(&w, rep);
	mqtx_jw_kint(&w, "outbox_sent", rep->outbox_sent);
	json_dups(&w, rep);
	json_findings(&w, rep);
	mqtx_jw_kint(&w, "delivered_not_sent", rep->delivered_unsent);
	json_table(&w, rep);
	mqtx_jw_key(&w, "tolerance");
	mqtx_jw_obj(&w);
	mqtx_jw_kint(&w, "max_duplicates", rep->max_duplicates);
	mqtx_jw_kint(&w, "max_missing", rep->max_missing);
	mqtx_jw_kbool(&w, "duplicates_over", rep->duplicates_over);
	mqtx_jw_kbool(&w, "missing_over", rep->missing_over);
	mqtx_jw_obj_end(&w);
	mqtx_jw_kint(&w, "exit_status", rep->status);
	mqtx_jw_kint(&w, "elapsed_ms", rep->elapsed_ms);
	mqtx_jw_obj_end(&w);
	mqtx_buf_addc(&b, '\n');
	mqtx_render_take(r, &b);
	mqtx_buf_free(&b);
}

/* ------------------------------------------------------------ CSV */

static void csv_row(struct mqtx_buf *b, const char *finding, const char *key, int64_t id, const char *okey,
		    int64_t count, const char *status, const char *where)
{
	char num[32] = "", cnt[32];
	if (id > 0)
		snprintf(num, sizeof(num), "%lld", (long long)id);
	snprintf(cnt, sizeof(cnt), "%lld", (long long)count);
	const char *fields[] = {finding, key, num, okey, cnt, status, where};
	mqtx_csv_row(b, fields, sizeof(fields) / sizeof(fields[0]));
}

void mqtx_render_audit_csv(struct mqtx_render *r, const struct mqtx_audit_report *rep)
{
	struct mqtx_buf b = MQTX_BUF_INIT, w = MQTX_BUF_INIT;
	mqtx_buf_adds(&b, "finding,key,outbox_id,ordering_key,count,status,where\n");
	for (size_t i = 0; i < rep->n_dups; i++) {
		const struct mqtx_audit_dup *d = &rep->dups[i];
		mqtx_buf_reset(&w);
		dup_where_text(rep, d, &w);
		csv_row(&b, "duplicate", d->key, d->outbox_id, NULL, d->count,
			d->explained ? "explained" : "unexplained", w.data);
	}
	for (size_t i = 0; i < rep->missing_rows.n; i++) {
		const struct mqtx_audit_row *row = &rep->missing_rows.rows[i];
		csv_row(&b, "missing", row->key, row->outbox_id, row->ordering_key, 0, row->status, NULL);
	}
	for (size_t i = 0; i < rep->strangers.n; i++) {
		const struct mqtx_audit_row *row = &rep->strangers.rows[i];
		mqtx_buf_reset(&w);
		where_text(rep, &row->where, &w);
		csv_row(&b, "stranger", row->key, 0, NULL, row->count, NULL, w.data);
	}
	for (size_t i = 0; i < rep->order_rows.n; i++) {
		const struct mqtx_audit_row *row = &rep->order_rows.rows[i];
		mqtx_buf_reset(&w);
		mqtx_buf_printf(&w, "after id %lld at ", (long long)row->after_id);
		where_text(rep, &row->where, &w);
		csv_row(&b, "out_of_order", row->key, row->outbox_id, row->ordering_key, 1, NULL, w.data);
	}
	for (size_t i = 0; i < rep->gap_rows.n; i++) {
		const struct mqtx_audit_row *row = &rep->gap_rows.rows[i];
		mqtx_buf_reset(&w);
		mqtx_buf_printf(&w, "between ids %lld and %lld", (long long)row->after_id, (long long)row->before_id);
		csv_row(&b, "gap", row->key, row->outbox_id, row->ordering_key, 0, row->status, w.data);
	}
	mqtx_render_take(r, &b);
	mqtx_buf_free(&b);
	mqtx_buf_free(&w);
}

void mqtx_render_audit(struct mqtx_render *r, enum mqtx_audit_format format, const struct mqtx_audit_report *rep)
{
	switch (format) {
	case MQTX_AUDIT_FMT_TEXT: mqtx_render_audit_text(r, rep); break;
	case MQTX_AUDIT_FMT_JSON: mqtx_render_audit_json(r, rep); break;
	case MQTX_AUDIT_FMT_CSV: mqtx_render_audit_csv(r, rep); break;
	}
}
