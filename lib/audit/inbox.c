/* dedupe-audit reader for a consumer's inbox (processed-messages) table:
 * every row is one message the consumer processed. The table and its
 * columns come from audit.inbox_*; lib/db/inbox.c checks them, finds the
 * key's unique guard and streams the rows (in processing order when a
 * time column is given) on a connection of their own, which may be
 * another database. This file turns rows into deliveries. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/source.h"
#include "base/log.h"
#include "base/util.h"
#include "db/inbox.h"

static bool set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

struct inbox_read {
	struct audit_ctx *c;
	int64_t row;
};

/* One COPY row: key, outbox id, ordering key, processing time (µs). */
static int on_row(void *ctx, char *line, size_t n, struct mqtx_err *err)
{
	struct inbox_read *ir = ctx;
	struct audit_ctx *c = ir->c;
	int64_t row = ++ir->row;
	struct audit_field f[4];
	int nf = audit_copy_split(line, n, f, 4);
	struct mqtx_read_record d = {.partition = -1, .offset = row, .redelivery_count = -1, .ts_us = MQTX_AUDIT_NO_TS};
	if (nf != 4)
		return mqtx_err_set(err, MQTX_E_INPUT, "inbox table %s row %lld: unexpected COPY data", c->rep->table,
				    (long long)row);
	if (!f[0].null) {
		d.key = f[0].s;
		d.key_len = f[0].len;
	}
	if (!f[1].null && (!mqtx_parse_i64n(f[1].s, f[1].len, &d.id) || d.id < 1))
		return mqtx_err_set(err, MQTX_E_INPUT, "inbox table %s row %lld: %s '%.*s' is not an outbox id",
				    c->rep->table, (long long)row, c->cfg->audit_inbox_id_column,
				    (int)(f[1].len > 40 ? 40 : f[1].len), f[1].s);
	if (!f[2].null) {
		d.ordering_key = f[2].s;
		d.ordering_key_len = f[2].len;
	}
	if (!f[3].null && !mqtx_parse_i64n(f[3].s, f[3].len, &d.ts_us))
		d.ts_us = MQTX_AUDIT_NO_TS;
	if (audit_emit(c->sink, &d, err) < 0)
		return -1;
	if (c->o->stop != NULL && *c->o->stop) {
		c->rep->stopped = true;
		return 1;
	}
	return 0;
}

int audit_read_inbox(struct audit_ctx *c, const char *url, const char *table, struct mqtx_err *err)
{
	const struct mqtx_config *cfg = c->cfg;
	c->rep->kind = "inbox";
	c->rep->position = "row";
	if (table == NULL)
		table = cfg->audit_inbox_table;
	if (!set(table))
		return mqtx_err_set(err, MQTX_E_CONFIG,
				    "no inbox table: set audit.inbox_table (or use --source inbox:TABLE)");
	if (!set(cfg->audit_inbox_key_column))
		return mqtx_err_set(err, MQTX_E_CONFIG, "audit.inbox_key_column must name the key column");
	struct mqtx_inbox *in = mqtx_inbox_connect(cfg, url, table, err);
	if (in == NULL)
		return -1;
	snprintf(c->rep->table, sizeof(c->rep->table), "%s", mqtx_inbox_table(in));
	snprintf(c->rep->key_column, sizeof(c->rep->key_column), "%s", cfg->audit_inbox_key_column);
	c->rep->has_table = true;
	int rc = -1;
	if (mqtx_inbox_check(in, err) < 0)
		goto out;
	const char *by = mqtx_inbox_unique_by(in);
	c->rep->table_unique = by != NULL;
	if (by != NULL)
		snprintf(c->rep->table_unique_by, sizeof(c->rep->table_unique_by), "%s", by);
	bool ordered = mqtx_inbox_ordered(in);
	c->order_meaningful = ordered;
	if (!ordered)
		snprintf(c->rep->order_note, sizeof(c->rep->order_note),
			 "no audit.inbox_ts_column says in which order rows were processed");
	struct inbox_read ir = {.c = c, .row = 0};
	if (mqtx_inbox_read(in, on_row, &ir, err) < 0)
		goto out;
	snprintf(c->rep->detail, sizeof(c->rep->detail), "table %s, %lld row%s%s%s", c->rep->table, (long long)ir.row,
		 ir.row == 1 ? "" : "s", ordered ? " in order of " : "", ordered ? cfg->audit_inbox_ts_column : "");
	rc = 0;
out:
	mqtx_inbox_free(in);
	return rc;
}
