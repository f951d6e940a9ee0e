/* `mqtx init`: the SQL that creates the default outbox (table, indexes,
 * triggers, heartbeat table), or for an existing table what it lacks. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"
#include "pg.h"
#include "util.h"

struct colspec {
	enum mqtx_col col;
	const char *type;    /* for CREATE TABLE */
	const char *add;     /* for ALTER TABLE ADD COLUMN on an adopted table (NULL: the user must map it) */
};

static const struct colspec specs[] = {
	{MQTX_COL_ID, "bigserial PRIMARY KEY", NULL},
	{MQTX_COL_KEY, "text NOT NULL UNIQUE", NULL},
	{MQTX_COL_DESTINATION, "text NOT NULL", NULL},
	{MQTX_COL_ROUTING_KEY, "text", NULL},
	{MQTX_COL_ORDERING_KEY, "text", NULL},
	{MQTX_COL_HEADERS, "jsonb", NULL},
	{MQTX_COL_PAYLOAD, "bytea NOT NULL", NULL},
	{MQTX_COL_CONTENT_TYPE, "text", NULL},
	{MQTX_COL_STATUS, "text NOT NULL DEFAULT 'pending'", "text NOT NULL DEFAULT 'pending'"},
	{MQTX_COL_ATTEMPTS, "integer NOT NULL DEFAULT 0", "integer NOT NULL DEFAULT 0"},
	{MQTX_COL_AVAILABLE_AT, "timestamptz NOT NULL DEFAULT now()", "timestamptz NOT NULL DEFAULT now()"},
	{MQTX_COL_CREATED_AT, "timestamptz NOT NULL DEFAULT now()", "timestamptz NOT NULL DEFAULT now()"},
	{MQTX_COL_SENT_AT, "timestamptz", "timestamptz"},
	{MQTX_COL_LAST_ERROR, "text", "text"},
	{MQTX_COL_REDELIVERY_COUNT, "integer NOT NULL DEFAULT 0", "integer NOT NULL DEFAULT 0"},
	{MQTX_COL_REDELIVERED_AT, "timestamptz", "timestamptz"},
};

/* A name for an index or trigger derived from the table name, quoted. */
static char *derived(PGconn *conn, const char *table, const char *suffix)
{
	char name[128];
	snprintf(name, sizeof(name), "%.50s_%s", table, suffix);
	return mqtx_pg_ident(conn, name);
}

static char *lit(PGconn *conn, const char *s)
{
	char *q = PQescapeLiteral(conn, s, strlen(s));
	if (q == NULL)
		abort();
	char *r = mqtx_xstrdup(q);
	PQfreemem(q);
	return r;
}

/* Dollar-quote tag that does not occur in body. */
static void dollar_tag(const char *body, char *tag, size_t n)
{
	for (unsigned i = 0;; i++) {
		snprintf(tag, n, "$mqtx%u$", i);
		if (strstr(body, tag) == NULL)
			return;
	}
}

static void add_function(struct mqtx_buf *out, const char *qname, const char *body)
{
	char tag[32];
	dollar_tag(body, tag, sizeof(tag));
	mqtx_buf_printf(out,
			"CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS %s\n%s%s;\n",
			qname, tag, body, tag);
}

static void add_common(struct mqtx_buf *out, PGconn *conn, const struct mqtx_config *cfg, const char *const *q,
		       const char *qschema, const char *T)
{
	const char *table = cfg->outbox_table;
	char *ix_pending = derived(conn, table, "pending_idx");
	char *ix_key = derived(conn, table, "pending_key_idx");
	char *ix_dead = derived(conn, table, "dead_idx");
	char *tr_notify = derived(conn, table, "mqtx_notify");
	char *tr_key = derived(conn, table, "mqtx_key");
	char *fn_key_name = derived(conn, table, "mqtx_default_key");
	char *chan = lit(conn, cfg->outbox_notify_channel);
	struct mqtx_buf fn = MQTX_BUF_INIT, body = MQTX_BUF_INIT;

	mqtx_buf_printf(out, "-- the relay scans pending rows in id order, per ordering key, and check looks at dead ones\n");
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'pending';\n", ix_pending, T,
			q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	if (q[MQTX_COL_ORDERING_KEY] != NULL)
		mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s, %s) WHERE %s = 'pending';\n", ix_key, T,
				q[MQTX_COL_ORDERING_KEY], q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'dead';\n", ix_dead, T,
			q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	if (q[MQTX_COL_SENT_AT] != NULL) {
		char *ix_sent = derived(conn, table, "sent_at_idx");
		mqtx_buf_printf(out, "-- recent traffic and completion for mqtx check, time windows for redeliver\n");
		mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'sent';\n", ix_sent, T,
				q[MQTX_COL_SENT_AT], q[MQTX_COL_STATUS]);
		free(ix_sent);
	}
	char *ix_prepared = derived(conn, table, "prepared_idx");
	mqtx_buf_printf(out, "-- txpub half messages waiting for --commit, --rollback or a check-back\n");
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'prepared';\n", ix_prepared, T,
			q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	free(ix_prepared);

	mqtx_buf_printf(out, "-- wake relays in --loop mode when rows become pending\n");
	mqtx_buf_printf(&fn, "%s.mqtx_notify", qschema);
	/* txpub sets mqtx.skip_notify: a transaction that NOTIFYs cannot be PREPAREd (txpub --sql) */
	add_function(out, fn.data,
		     "BEGIN\n  IF current_setting('mqtx.skip_notify', true) = 'on' THEN\n    RETURN NULL;\n  END IF;\n"
		     "  PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME);\n  RETURN NULL;\nEND\n");
	mqtx_buf_printf(out, "CREATE OR REPLACE TRIGGER %s AFTER INSERT ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s);\n",
			tr_notify, T, fn.data, chan);
	char *tr_requeue = derived(conn, table, "mqtx_notify_update");
	mqtx_buf_printf(out,
			"CREATE OR REPLACE TRIGGER %s AFTER UPDATE OF %s ON %s FOR EACH ROW WHEN (NEW.%s = 'pending' AND OLD.%s <> 'pending') "
			"EXECUTE FUNCTION %s(%s);\n",
			tr_requeue, q[MQTX_COL_STATUS], T, q[MQTX_COL_STATUS], q[MQTX_COL_STATUS], fn.data, chan);
	free(tr_requeue);

	if (q[MQTX_COL_KEY] != NULL) {
		char *prefix = mqtx_outbox_key_prefix_literal(conn, cfg);
		mqtx_buf_reset(&fn);
		mqtx_buf_printf(&fn, "%s.%s", qschema, fn_key_name);
		mqtx_buf_printf(&body,
				"BEGIN\n  IF NEW.%s IS NULL THEN\n    NEW.%s := %s || NEW.%s;\n"
				"  END IF;\n  RETURN NEW;\nEND\n",
				q[MQTX_COL_KEY], q[MQTX_COL_KEY], prefix, q[MQTX_COL_ID]);
		mqtx_buf_printf(out, "-- idempotency key derived from the id when the writer gives none (see mqtx-keys(7))\n");
		add_function(out, fn.data, body.data);
		mqtx_buf_printf(out, "CREATE OR REPLACE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s();\n",
				tr_key, T, fn.data);
		free(prefix);
	}

	mqtx_buf_printf(out, "-- consumer completion (Sent -> Completed): consumers insert their keys here, or\n"
			      "-- publish them to an ack queue/topic that 'mqtx redeliver --collect-acks' drains\n");
	mqtx_buf_printf(out,
			"CREATE TABLE IF NOT EXISTS %s.mqtx_completions (\n  idempotency_key text PRIMARY KEY,\n"
			"  completed_at timestamptz NOT NULL DEFAULT now(),\n  source text\n);\n",
			qschema);
	mqtx_buf_printf(out, "-- relay heartbeats, read by mqtx check\n");
	mqtx_buf_printf(out,
			"CREATE TABLE IF NOT EXISTS %s.mqtx_relays (\n  relay_id text PRIMARY KEY,\n  outbox text NOT NULL,\n"
			"  host text,\n  pid integer,\n  version text,\n  started_at timestamptz NOT NULL DEFAULT now(),\n"
			"  last_seen timestamptz NOT NULL DEFAULT now(),\n  last_batch_at timestamptz,\n  stopped_at timestamptz,\n"
			"  relayed bigint NOT NULL DEFAULT 0,\n  failed bigint NOT NULL DEFAULT 0,\n  last_error text\n);\n",
			qschema);
	mqtx_buf_printf(out, "-- txpub --sql coordinator records: a prepared transaction 'mqtx:<key>' with a record here is\n"
			      "-- committed by mqtx check --resolve, one without is rolled back (see mqtx-txpub(1))\n");
	mqtx_buf_printf(out,
			"CREATE TABLE IF NOT EXISTS %s.mqtx_txpub_log (\n  gid text PRIMARY KEY,\n  idempotency_key text NOT NULL,\n"
			"  confirmed_at timestamptz NOT NULL DEFAULT now()\n);\n",
			qschema);
	free(ix_pending);
	free(ix_key);
	free(ix_dead);
	free(tr_notify);
	free(tr_key);
	free(fn_key_name);
	free(chan);
	mqtx_buf_free(&fn);
	mqtx_buf_free(&body);
}

static void add_grants(struct mqtx_buf *out, const char *r, const char *qschema, const char *T)
{
	mqtx_buf_printf(out, "-- least privilege for role %s: relay, check, redeliver and txpub\n", r);
	mqtx_buf_printf(out, "GRANT USAGE ON SCHEMA %s TO %s;\n", qschema, r);
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE ON %s TO %s;\n", T, r);
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE ON %s.mqtx_relays TO %s;\n", qschema, r);
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE ON %s.mqtx_completions TO %s;\n", qschema, r);
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.mqtx_txpub_log TO %s;\n", qschema, r);
	mqtx_buf_printf(out, "GRANT USAGE ON ALL SEQUENCES IN SCHEMA %s TO %s; -- txpub --prepare inserts rows\n", qschema, r);
}

char *mqtx_outbox_key_prefix_literal(PGconn *conn, const struct mqtx_config *cfg)
{
	struct mqtx_buf name = MQTX_BUF_INIT;
	mqtx_buf_printf(&name, ":%s.%s:", cfg->outbox_schema, cfg->outbox_table);
	char *l = lit(conn, name.data);
	mqtx_buf_free(&name);
	struct mqtx_buf out = MQTX_BUF_INIT;
	mqtx_buf_printf(&out, "'mqtx:' || current_database() || %s", l);
	free(l);
	return mqtx_buf_detach(&out);
}

char *mqtx_outbox_init_sql(PGconn *conn, const struct mqtx_config *cfg, const char *grant_role, bool *table_exists,
			   bool *table_incomplete, struct mqtx_err *err)
{
	struct mqtx_buf out = MQTX_BUF_INIT;
	const char *q[MQTX_COL__COUNT] = {0};
	char *owned[MQTX_COL__COUNT] = {0};
	char *qschema = mqtx_pg_ident(conn, cfg->outbox_schema);
	char *qtable = mqtx_pg_ident(conn, cfg->outbox_table);
	struct mqtx_buf T = MQTX_BUF_INIT;
	mqtx_buf_printf(&T, "%s.%s", qschema, qtable);

	for (int c = 0; c < MQTX_COL__COUNT; c++)
		if (cfg->outbox_columns[c] != NULL && cfg->outbox_columns[c][0] != '\0')
			q[c] = owned[c] = mqtx_pg_ident(conn, cfg->outbox_columns[c]);

	/* Which of the mapped columns exist already (and with which type)? */
	const char *params[2] = {cfg->outbox_schema, cfg->outbox_table};
	PGresult *res = PQexecParams(conn,
				     "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_class c "
				     "JOIN pg_namespace n ON n.oid = c.relnamespace "
				     "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
				     "WHERE n.nspname = $1 AND c.relname = $2",
				     2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqtx_pg_fail(conn, res, "cannot look up the outbox table", err);
		goto fail;
	}
	*table_exists = PQntuples(res) > 0;
	*table_incomplete = false;
	mqtx_buf_printf(&out, "-- mqtx init for %s\n", T.data);
	if (!*table_exists) {
		mqtx_buf_printf(&out, "CREATE SCHEMA IF NOT EXISTS %s;\n", qschema);
		mqtx_buf_printf(&out, "CREATE TABLE IF NOT EXISTS %s (\n", T.data);
		bool first = true;
		for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
			if (q[specs[i].col] == NULL)
				continue;
			const char *type = specs[i].type;
			if (specs[i].col == MQTX_COL_PAYLOAD && strcmp(cfg->outbox_payload_type, "bytea") != 0) {
				static char pt[64];
				snprintf(pt, sizeof(pt), "%s NOT NULL", cfg->outbox_payload_type);
				type = pt;
			}
			mqtx_buf_printf(&out, "%s  %s %s", first ? "" : ",\n", q[specs[i].col], type);
			first = false;
		}
		mqtx_buf_printf(&out, ",\n  CHECK (%s IN ('pending', 'sent', 'dead', 'prepared', 'rolled_back'))\n);\n",
				q[MQTX_COL_STATUS]);
	} else {
		/* An existing table: say what it lacks. */
		bool adopted_note = false;
		for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
			enum mqtx_col c = specs[i].col;
			if (q[c] == NULL)
				continue;
			bool found = false;
			const char *type = "";
			for (int r = 0; r < PQntuples(res); r++) {
				if (strcmp(PQgetvalue(res, r, 0), cfg->outbox_columns[c]) == 0) {
					found = true;
					type = PQgetvalue(res, r, 1);
				}
			}
			if (found && c == MQTX_COL_ID && strcmp(type, "bigint") != 0 && strcmp(type, "integer") != 0) {
				*table_incomplete = true;
				mqtx_buf_printf(&out,
						"-- column %s is %s, but the relay orders by an integer id: add one and map it\n"
						"ALTER TABLE %s ADD COLUMN IF NOT EXISTS mqtx_id bigint GENERATED ALWAYS AS IDENTITY;\n"
						"-- then in config: outbox: {columns: {id: mqtx_id}}\n",
						q[c], type, T.data);
				continue;
			}
			if (found)
				continue;
			*table_incomplete = true;
			if (specs[i].add == NULL) {
				mqtx_buf_printf(&out, "-- column %s is missing: map outbox.columns to an existing column, or set it to \"\" if the table has none\n",
						q[c]);
				continue;
			}
			if (!adopted_note) {
				mqtx_buf_printf(&out, "-- existing rows become 'pending' and will be relayed; to skip them, after this run:\n"
						      "--   UPDATE %s SET %s = 'sent';\n",
						T.data, q[MQTX_COL_STATUS]);
				adopted_note = true;
			}
			mqtx_buf_printf(&out, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s;\n", T.data, q[c], specs[i].add);
		}
	}
	PQclear(res);
	add_common(&out, conn, cfg, q, qschema, T.data);
	if (grant_role != NULL) {
		char *r = mqtx_pg_ident_checked(conn, grant_role, "--grant", err);
		if (r == NULL) {
			err->kind = MQTX_E_USAGE;
			goto fail;
		}
		add_grants(&out, r, qschema, T.data);
		free(r);
	}
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		free(owned[c]);
	free(qschema);
	free(qtable);
	mqtx_buf_free(&T);
	return mqtx_buf_detach(&out);
fail:
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		free(owned[c]);
	free(qschema);
	free(qtable);
	mqtx_buf_free(&T);
	mqtx_buf_free(&out);
	return NULL;
}
