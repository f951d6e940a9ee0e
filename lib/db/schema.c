/* `mqtx init`: the SQL that creates the default outbox (table, indexes,
 * triggers, heartbeat table), or for an existing table what it lacks. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "db/catalog.h"
#include "db/outbox.h"
#include "db/partition.h"
#include "db/pg.h"
#include "db/tail_switch.h"
#include "base/util.h"

struct colspec {
	enum mqtx_col col;
	const char *type; /* for CREATE TABLE */
	const char *add;  /* for ALTER TABLE ADD COLUMN on an adopted table (NULL: the user must map it) */
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

/* ---- names of the objects init creates for a table ----
 *
 * "<table>_<suffix>" when it fits PostgreSQL's 63 bytes: the names mqtx
 * always gave them. Longer ones used to be cut (the table name to 50 bytes,
 * then PostgreSQL cut to 63), so two tables whose names share their first
 * 50 bytes shared indexes and the key function. Now a longer name is a
 * readable prefix of the table name, a hash of the schema and table names
 * and the suffix: unique per (schema, table). */
#define PG_NAME_MAX MQTX_PG_NAME_MAX

enum {
	N_PENDING,
	N_PENDING_KEY,
	N_DEAD,
	N_SENT_AT,
	N_PREPARED,
	N_ROLLED_BACK,
	N_NOTIFY,
	N_NOTIFY_UPDATE,
	N_KEY_TRIGGER,
	N_KEY_FN,
	N_TXID_IDX, /* tail mode's, from here on */
	N_TXID_TRIGGER,
	N_TXID_FN,
	N__COUNT
};
static const char *const name_suffix[N__COUNT] = {"pending_idx",      "pending_key_idx",    "dead_idx",
						  "sent_at_idx",      "prepared_idx",       "rolled_back_idx",
						  "mqtx_notify",      "mqtx_notify_update", "mqtx_key",
						  "mqtx_default_key", "txid_idx",           "mqtx_txid",
						  "mqtx_txid_fn"};
#define N_FIRST_TRIGGER N_NOTIFY

struct names {
	char now[N__COUNT][PG_NAME_MAX + 1];
	char before[N__COUNT][PG_NAME_MAX + 1]; /* the cut name older versions gave; "" when the same */
};

static void make_names(const struct mqtx_config *cfg, struct names *nm)
{
	const char *table = cfg->outbox_table;
	for (int i = 0; i < N__COUNT; i++) {
		const char *suffix = name_suffix[i];
		char old[160];
		snprintf(old, sizeof(old), "%.50s_%s", table, suffix);
		old[mqtx_utf8_clip(old, PG_NAME_MAX)] = '\0'; /* as PostgreSQL cut it */
		mqtx_partition_name(cfg->outbox_schema, table, suffix, nm->now[i]);
		snprintf(nm->before[i], sizeof(nm->before[i]), "%.*s", PG_NAME_MAX,
			 strcmp(old, nm->now[i]) == 0 ? "" : old);
	}
	nm->before[N_ROLLED_BACK][0] = '\0'; /* newer than the cut names */
	for (int i = N_TXID_IDX; i < N__COUNT; i++)
		nm->before[i][0] = '\0';
}

/* A name for an index or trigger derived from the table name, quoted. */
static char *derived(PGconn *conn, const struct names *nm, int which)
{
	return mqtx_pg_ident(conn, nm->now[which]);
}

/* A literal of configured names (the notify channel, ":schema.table:"),
 * which mqtx_pg_connect checked: NULL can only be out of memory. */
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

/* The body of the key function (the function's prosrc is "\n" body). */
static char *key_body(PGconn *conn, const struct mqtx_config *cfg, const char *const *q)
{
	char *prefix = mqtx_outbox_key_prefix_literal(conn, cfg);
	struct mqtx_buf body = MQTX_BUF_INIT;
	mqtx_buf_printf(&body,
			"BEGIN\n  IF NEW.%s IS NULL THEN\n    NEW.%s := %s || NEW.%s;\n"
			"  END IF;\n  RETURN NEW;\nEND\n",
			q[MQTX_COL_KEY], q[MQTX_COL_KEY], prefix, q[MQTX_COL_ID]);
	free(prefix);
	return mqtx_buf_detach(&body);
}

static void add_common(struct mqtx_buf *out, PGconn *conn, const struct mqtx_config *cfg, const char *const *q,
		       const char *qschema, const char *T, const struct names *nm)
{
	char *ix_pending = derived(conn, nm, N_PENDING);
	char *ix_key = derived(conn, nm, N_PENDING_KEY);
	char *ix_dead = derived(conn, nm, N_DEAD);
	char *tr_notify = derived(conn, nm, N_NOTIFY);
	char *tr_key = derived(conn, nm, N_KEY_TRIGGER);
	char *fn_key_name = derived(conn, nm, N_KEY_FN);
	char *chan = lit(conn, cfg->outbox_notify_channel);
	struct mqtx_buf fn = MQTX_BUF_INIT;

	mqtx_buf_printf(out,
			"-- the relay scans pending rows in id order, per ordering key, and check looks at dead ones\n");
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'pending';\n", ix_pending, T,
			q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	if (q[MQTX_COL_ORDERING_KEY] != NULL)
		mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s, %s) WHERE %s = 'pending';\n", ix_key, T,
				q[MQTX_COL_ORDERING_KEY], q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'dead';\n", ix_dead, T,
			q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	if (q[MQTX_COL_SENT_AT] != NULL) {
		char *ix_sent = derived(conn, nm, N_SENT_AT);
		mqtx_buf_printf(out, "-- recent traffic and completion for mqtx check, time windows for redeliver\n");
		mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'sent';\n", ix_sent, T,
				q[MQTX_COL_SENT_AT], q[MQTX_COL_STATUS]);
		free(ix_sent);
	}
	char *ix_prepared = derived(conn, nm, N_PREPARED);
	mqtx_buf_printf(out, "-- txpub half messages waiting for --commit, --rollback or a check-back\n");
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'prepared';\n", ix_prepared, T,
			q[MQTX_COL_ID], q[MQTX_COL_STATUS]);
	free(ix_prepared);
	char *ix_rb = derived(conn, nm, N_ROLLED_BACK);
	mqtx_buf_printf(out, "-- retention deletes rolled back half messages by the time of their rollback\n");
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s) WHERE %s = 'rolled_back';\n", ix_rb, T,
			q[MQTX_COL_AVAILABLE_AT], q[MQTX_COL_STATUS]);
	free(ix_rb);

	mqtx_buf_printf(out, "-- wake relays in --loop mode when rows become pending\n");
	mqtx_buf_printf(&fn, "%s.mqtx_notify", qschema);
	/* txpub sets mqtx.skip_notify: a transaction that NOTIFYs cannot be PREPAREd (txpub --sql) */
	add_function(out, fn.data,
		     "BEGIN\n  IF current_setting('mqtx.skip_notify', true) = 'on' THEN\n    RETURN NULL;\n  END IF;\n"
		     "  PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME);\n  RETURN NULL;\nEND\n");
	mqtx_buf_printf(out,
			"CREATE OR REPLACE TRIGGER %s AFTER INSERT ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s);\n",
			tr_notify, T, fn.data, chan);
	char *tr_requeue = derived(conn, nm, N_NOTIFY_UPDATE);
	mqtx_buf_printf(out,
			"CREATE OR REPLACE TRIGGER %s AFTER UPDATE OF %s ON %s FOR EACH ROW WHEN (NEW.%s = 'pending' AND OLD.%s <> 'pending') "
			"EXECUTE FUNCTION %s(%s);\n",
			tr_requeue, q[MQTX_COL_STATUS], T, q[MQTX_COL_STATUS], q[MQTX_COL_STATUS], fn.data, chan);
	free(tr_requeue);

	if (q[MQTX_COL_KEY] != NULL) {
		char *body = key_body(conn, cfg, q);
		mqtx_buf_reset(&fn);
		mqtx_buf_printf(&fn, "%s.%s", qschema, fn_key_name);
		mqtx_buf_printf(out,
				"-- idempotency key derived from the id when the writer gives none (see mqtx-keys(7))\n");
		add_function(out, fn.data, body);
		mqtx_buf_printf(out,
				"CREATE OR REPLACE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s();\n",
				tr_key, T, fn.data);
		free(body);
	}

	mqtx_buf_printf(out, "-- consumer completion (Sent -> Completed): consumers insert their keys here, or\n"
			     "-- publish them to an ack queue/topic that 'mqtx redeliver --collect-acks' drains\n");
	mqtx_buf_printf(out,
			"CREATE TABLE IF NOT EXISTS %s.mqtx_completions (\n  idempotency_key text PRIMARY KEY,\n"
			"  completed_at timestamptz NOT NULL DEFAULT now(),\n  source text\n);\n",
			qschema);
	mqtx_buf_printf(out,
			"CREATE INDEX IF NOT EXISTS mqtx_completions_completed_at_idx ON %s.mqtx_completions (completed_at);\n",
			qschema);
	mqtx_buf_printf(out, "-- relay heartbeats, read by mqtx check\n");
	mqtx_buf_printf(out,
			"CREATE TABLE IF NOT EXISTS %s.mqtx_relays (\n  relay_id text PRIMARY KEY,\n  outbox text NOT NULL,\n"
			"  host text,\n  pid integer,\n  version text,\n  started_at timestamptz NOT NULL DEFAULT now(),\n"
			"  last_seen timestamptz NOT NULL DEFAULT now(),\n  last_batch_at timestamptz,\n  stopped_at timestamptz,\n"
			"  relayed bigint NOT NULL DEFAULT 0,\n  failed bigint NOT NULL DEFAULT 0,\n  last_error text\n);\n",
			qschema);
	mqtx_buf_printf(out,
			"-- txpub --sql coordinator records: a prepared transaction 'mqtx:<key>' with a record here is\n"
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
}

/* Tail mode (outbox.mode tail): the txid column's index, the trigger that
 * moves a row that becomes eligible by an UPDATE to the updating
 * transaction's place in commit order, the checkpoint and parked tables and
 * the outbox's checkpoint rows (the column itself is with the table's). */
static int add_tail(struct mqtx_buf *out, PGconn *conn, const struct mqtx_config *cfg, const char *const *q,
		    const char *qschema, const char *T, const struct names *nm, struct mqtx_err *err)
{
	int64_t have = mqtx_tail_checkpoint_count(conn, cfg, err);
	if (have < 0)
		return -1;
	char *ix = derived(conn, nm, N_TXID_IDX);
	char *tr = derived(conn, nm, N_TXID_TRIGGER);
	char *fn_name = derived(conn, nm, N_TXID_FN);
	char *name = lit(conn, T);
	struct mqtx_buf fn = MQTX_BUF_INIT, body = MQTX_BUF_INIT;

	mqtx_buf_printf(out,
			"-- tail mode: relays follow the outbox by transaction snapshots, a checkpoint per bucket\n"
			"-- instead of a sent flag per row (see mqtx-relay(1), TAIL MODE); intervals by writing transaction\n");
	mqtx_buf_printf(out, "CREATE INDEX IF NOT EXISTS %s ON %s (%s);\n", ix, T, q[MQTX_COL_TXID]);
	mqtx_buf_printf(out, "-- a row that becomes eligible by an UPDATE (txpub --commit, a requeue) goes out in the\n"
			     "-- updating transaction's place in commit order\n");
	mqtx_buf_printf(&fn, "%s.%s", qschema, fn_name);
	/* and wakes --loop relays (a hand-over of a row txpub --sql parked changes
	 * available_at only, which the status-mode notify trigger does not watch); not in a transaction to be
	 * PREPAREd (txpub sets mqtx.skip_notify), which cannot NOTIFY */
	char *chan = lit(conn, cfg->outbox_notify_channel);
	mqtx_buf_printf(&body,
			"BEGIN\n  NEW.%s := pg_current_xact_id();\n"
			"  IF current_setting('mqtx.skip_notify', true) IS DISTINCT FROM 'on' THEN\n"
			"    PERFORM pg_notify(%s, TG_TABLE_NAME);\n  END IF;\n  RETURN NEW;\nEND\n",
			q[MQTX_COL_TXID], chan);
	free(chan);
	add_function(out, fn.data, body.data);
	const char *st = q[MQTX_COL_STATUS], *av = q[MQTX_COL_AVAILABLE_AT];
	mqtx_buf_printf(out,
			"CREATE OR REPLACE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN (NEW.%s = 'pending' AND ",
			tr, T, st);
	if (av != NULL)
		mqtx_buf_printf(out, "(OLD.%s IS DISTINCT FROM NEW.%s OR OLD.%s IS DISTINCT FROM NEW.%s)", st, st, av,
				av);
	else
		mqtx_buf_printf(out, "OLD.%s IS DISTINCT FROM NEW.%s", st, st);
	mqtx_buf_printf(out, ") EXECUTE FUNCTION %s();\n", fn.data);

	mqtx_buf_printf(out,
			"-- tail relays' progress: per outbox and bucket, the snapshots of the interval being relayed\n"
			"-- and the id it got to inside it\n");
	mqtx_buf_printf(out,
			"CREATE TABLE IF NOT EXISTS %s.mqtx_tail_checkpoints (\n  outbox text,\n  bucket int4,\n"
			"  prev_snapshot pg_snapshot,\n  cur_snapshot pg_snapshot,\n  pos_id int8,\n  relay_id text,\n"
			"  updated_at timestamptz NOT NULL DEFAULT now(),\n  PRIMARY KEY (outbox, bucket)\n);\n",
			qschema);
	mqtx_buf_printf(out,
			"-- rows that failed, wait for a retry or a delivery time, or wait behind such a row of their\n"
			"-- ordering key: their state lives here, not in the outbox rows\n");
	mqtx_buf_printf(out,
			"CREATE TABLE IF NOT EXISTS %s.mqtx_tail_parked (\n  outbox text,\n  id int8,\n  bucket int4 NOT NULL,\n"
			"  ordering_key text,\n  state text NOT NULL CHECK (state IN ('retry', 'blocked', 'dead')),\n"
			"  attempts int4 NOT NULL DEFAULT 0,\n  next_at timestamptz,\n  last_error text,\n"
			"  seq bigint GENERATED ALWAYS AS IDENTITY,\n  parked_at timestamptz NOT NULL DEFAULT now(),\n"
			"  updated_at timestamptz NOT NULL DEFAULT now(),\n  PRIMARY KEY (outbox, id)\n);\n",
			qschema);
	mqtx_buf_printf(out,
			"CREATE INDEX IF NOT EXISTS mqtx_tail_parked_key_idx ON %s.mqtx_tail_parked (outbox, ordering_key, seq);\n",
			qschema);
	mqtx_buf_printf(out,
			"CREATE INDEX IF NOT EXISTS mqtx_tail_parked_state_idx ON %s.mqtx_tail_parked (outbox, state, next_at);\n",
			qschema);
	if (have > 0 && have != cfg->outbox_tail_buckets) {
		mqtx_buf_printf(out,
				"-- the outbox has %lld checkpoint rows (buckets), not outbox.tail_buckets %lld: init leaves them;\n"
				"-- relays read the count from the table (see mqtx-init(1) for changing it)\n",
				(long long)have, (long long)cfg->outbox_tail_buckets);
	} else {
		mqtx_buf_printf(out,
				"-- the outbox's buckets, relayed from the beginning (rows of the status era that are\n"
				"-- pending included)\n");
		mqtx_buf_printf(out,
				"INSERT INTO %s.mqtx_tail_checkpoints (outbox, bucket) SELECT %s, b FROM generate_series(0, %lld) b "
				"ON CONFLICT DO NOTHING;\n",
				qschema, name, (long long)cfg->outbox_tail_buckets - 1);
	}
	free(ix);
	free(tr);
	free(fn_name);
	free(name);
	mqtx_buf_free(&fn);
	mqtx_buf_free(&body);
	return 0;
}

static void add_grants(struct mqtx_buf *out, const char *r, const char *qschema, const char *T, bool tail)
{
	mqtx_buf_printf(out, "-- least privilege for role %s: relay (with retention), check, redeliver and txpub\n", r);
	mqtx_buf_printf(out, "GRANT USAGE ON SCHEMA %s TO %s;\n", qschema, r);
	/* DELETE: the relay's retention prunes relayed rows, stopped relays'
	 * records and old completions (lib/db/retention.c) */
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s;\n", T, r);
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.mqtx_relays TO %s;\n", qschema, r);
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.mqtx_completions TO %s;\n", qschema, r);
	mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.mqtx_txpub_log TO %s;\n", qschema, r);
	if (tail) {
		mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.mqtx_tail_checkpoints TO %s;\n",
				qschema, r);
		mqtx_buf_printf(out, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.mqtx_tail_parked TO %s;\n", qschema,
				r);
	}
	mqtx_buf_printf(out, "GRANT USAGE ON ALL SEQUENCES IN SCHEMA %s TO %s; -- txpub --prepare inserts rows\n",
			qschema, r);
}

/* The default partition and those of now and MQTX_PARTITIONS_AHEAD after. */
static int add_partitions(struct mqtx_buf *out, PGconn *conn, const struct mqtx_config *cfg, const char *qschema,
			  const char *T, struct mqtx_err *err)
{
	struct mqtx_partition_period per[MQTX_PARTITIONS_AHEAD + 1];
	if (mqtx_partitions_periods(conn, cfg, cfg->outbox_partition_by, per, err) < 0)
		return -1;
	char name[MQTX_PG_NAME_MAX + 1];
	mqtx_partition_name(cfg->outbox_schema, cfg->outbox_table, "default", name);
	char *q = mqtx_pg_ident(conn, name);
	mqtx_buf_printf(out, "-- rows outside every partition's range land here: writers never fail\n");
	mqtx_buf_printf(out, "CREATE TABLE IF NOT EXISTS %s.%s PARTITION OF %s DEFAULT;\n", qschema, q, T);
	free(q);
	for (int i = 0; i <= MQTX_PARTITIONS_AHEAD; i++) {
		q = mqtx_pg_ident(conn, per[i].name);
		mqtx_buf_printf(out,
				"CREATE TABLE IF NOT EXISTS %s.%s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s');\n",
				qschema, q, T, per[i].from, per[i].to);
		free(q);
	}
	return 0;
}

/* Whether the existing outbox is a partitioned table (false on errors:
 * only a comment depends on it). */
static bool is_partitioned(PGconn *conn, const struct mqtx_config *cfg)
{
	const char *p[2] = {cfg->outbox_schema, cfg->outbox_table};
	PGresult *res = PQexecParams(conn,
				     "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
				     "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'p'",
				     2, NULL, p, NULL, NULL, 0);
	bool yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	PQclear(res);
	return yes;
}

/* Tail mode on an existing table: the txid column, added nullable (the
 * rows already there keep NULL: rows of the status era) with its default
 * set after, so no row is rewritten. */
static int add_txid_column(struct mqtx_buf *out, PGconn *conn, const struct mqtx_config *cfg,
			   const struct mqtx_pg_columns *cols, const char *const *q, const char *T, bool *incomplete,
			   struct mqtx_err *err)
{
	const char *x = q[MQTX_COL_TXID];
	const struct mqtx_pg_column *have = mqtx_pg_columns_find(cols, cfg->outbox_columns[MQTX_COL_TXID]);
	if (have != NULL && strcmp(have->type, "xid8") != 0) {
		*incomplete = true;
		mqtx_buf_printf(out,
				"-- column %s is %s, but tail mode needs the writing transaction's xid8 there:\n"
				"-- map outbox.columns.txid to a new column name, and init adds it\n",
				x, have->type);
		return 0;
	}
	bool has_default = false;
	if (have != NULL) {
		char oid[32];
		snprintf(oid, sizeof(oid), "%lld", (long long)cols->oid);
		const char *p[2] = {oid, cfg->outbox_columns[MQTX_COL_TXID]};
		PGresult *res =
			PQexecParams(conn,
				     "SELECT 1 FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
				     "WHERE d.adrelid = $1::oid AND a.attname = $2 "
				     "AND pg_get_expr(d.adbin, d.adrelid) = 'pg_current_xact_id()'",
				     2, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			return mqtx_pg_fail(conn, res, "cannot look up the txid column's default", err);
		has_default = PQntuples(res) > 0;
		PQclear(res);
	}
	if (have == NULL) {
		mqtx_buf_printf(out,
				"-- tail mode: each row's writing transaction; rows already there keep NULL (rows of the\n"
				"-- status era: the pending ones are relayed first, sent and dead ones stay so)\n");
		mqtx_buf_printf(out, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s xid8;\n", T, x);
	}
	if (!has_default)
		mqtx_buf_printf(out, "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT pg_current_xact_id();\n", T, x);
	return 0;
}

/* JSON array of the names[first..last) that are set. */
static char *names_json(const char (*names)[PG_NAME_MAX + 1], int first, int last)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_addc(&b, '[');
	for (int i = first; i < last; i++) {
		if (names[i][0] == '\0')
			continue;
		if (b.len > 1)
			mqtx_buf_addc(&b, ',');
		mqtx_json_add_cstr(&b, names[i]);
	}
	mqtx_buf_addc(&b, ']');
	return mqtx_buf_detach(&b);
}

/* The table's objects under the names older mqtx versions gave them, where
 * those differ: drops the ones that certainly are mqtx's and this table's
 * (triggers on it that call mqtx's functions, partial non-unique indexes on
 * it, the key function once no other table's trigger calls it). */
static int add_replaced(struct mqtx_buf *out, PGconn *conn, const struct mqtx_config *cfg, const char *qschema,
			const char *T, const struct names *nm, struct mqtx_err *err)
{
	char *triggers = names_json(nm->before, N_FIRST_TRIGGER, N_KEY_FN);
	char *indexes = names_json(nm->before, 0, N_FIRST_TRIGGER);
	const char *fn = nm->before[N_KEY_FN][0] != '\0' ? nm->before[N_KEY_FN] : NULL;
	const char *p[5] = {cfg->outbox_schema, cfg->outbox_table, triggers, indexes, fn};
	PGresult *res =
		PQexecParams(conn,
			     "WITH tb AS (SELECT c.oid, c.relnamespace FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
			     "WHERE n.nspname = $1 AND c.relname = $2), "
			     "trg AS (SELECT t.tgname::text AS name FROM pg_trigger t, tb WHERE t.tgrelid = tb.oid AND NOT t.tgisinternal "
			     "AND t.tgname IN (SELECT jsonb_array_elements_text($3::jsonb)) AND t.tgfoid IN (SELECT f.oid FROM pg_proc f "
			     "WHERE f.pronamespace = tb.relnamespace AND (f.proname = 'mqtx_notify' OR f.proname = $5))) "
			     "SELECT 1, name FROM trg "
			     "UNION ALL SELECT 2, ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid, tb "
			     "WHERE i.indrelid = tb.oid AND NOT i.indisunique AND i.indpred IS NOT NULL "
			     "AND ic.relname IN (SELECT jsonb_array_elements_text($4::jsonb)) "
			     "UNION ALL SELECT 3, f.proname::text FROM pg_proc f, tb WHERE f.pronamespace = tb.relnamespace AND f.proname = $5 "
			     "AND f.pronargs = 0 AND f.prorettype = 'trigger'::regtype AND strpos(f.prosrc, 'current_database()') > 0 "
			     "AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = f.oid "
			     "AND NOT (t.tgrelid = tb.oid AND t.tgname IN (SELECT name FROM trg))) "
			     "ORDER BY 1, 2",
			     5, NULL, p, NULL, NULL, 0);
	free(triggers);
	free(indexes);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look for the table's objects under their old names", err);
	if (PQntuples(res) > 0)
		mqtx_buf_printf(out,
				"-- this table's objects under the names mqtx gave them before names were unique per table\n");
	for (int r = 0; r < PQntuples(res); r++) {
		char *name = mqtx_pg_ident(conn, PQgetvalue(res, r, 1));
		switch (PQgetvalue(res, r, 0)[0]) {
		case '1': mqtx_buf_printf(out, "DROP TRIGGER IF EXISTS %s ON %s;\n", name, T); break;
		case '2': mqtx_buf_printf(out, "DROP INDEX IF EXISTS %s.%s;\n", qschema, name); break;
		default: mqtx_buf_printf(out, "DROP FUNCTION IF EXISTS %s.%s();\n", qschema, name); break;
		}
		free(name);
	}
	PQclear(res);
	return 0;
}

/* Tail mode's part of mqtx_outbox_init_verify: the txid column is xid8,
 * its index and trigger are the table's, the checkpoint and parked tables
 * are mqtx's, the outbox has checkpoint rows. */
static int verify_tail(PGconn *conn, const struct mqtx_config *cfg, const struct names *nm, struct mqtx_err *err)
{
	char *qs = mqtx_pg_ident(conn, cfg->outbox_schema), *qt = mqtx_pg_ident(conn, cfg->outbox_table);
	char *outbox = mqtx_xasprintf("%s.%s", qs, qt);
	char *cp = mqtx_xasprintf("%s.mqtx_tail_checkpoints", qs), *parked = mqtx_xasprintf("%s.mqtx_tail_parked", qs);
	const char *p[8] = {cfg->outbox_schema,
			    cfg->outbox_table,
			    cfg->outbox_columns[MQTX_COL_TXID],
			    nm->now[N_TXID_IDX],
			    nm->now[N_TXID_TRIGGER],
			    nm->now[N_TXID_FN],
			    cp,
			    parked};
	PGresult *res = PQexecParams(
		conn,
		"WITH tb AS (SELECT c.oid, c.relnamespace FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		"WHERE n.nspname = $1 AND c.relname = $2) "
		"SELECT 'column ' || quote_ident($3) || ' is not xid8' WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a, tb "
		"WHERE a.attrelid = tb.oid AND a.attname = $3 AND NOT a.attisdropped AND a.atttypid = 'xid8'::regtype) "
		"UNION ALL SELECT 'index ' || quote_ident($4) || ' is not an index of the table' WHERE NOT EXISTS "
		"(SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid, tb "
		"WHERE ic.relnamespace = tb.relnamespace AND ic.relname = $4 AND i.indrelid = tb.oid) "
		"UNION ALL SELECT 'trigger ' || quote_ident($5) || ' of the table does not call ' || quote_ident($6) "
		"WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_proc f ON f.oid = t.tgfoid, tb "
		"WHERE t.tgrelid = tb.oid AND t.tgname = $5 AND f.proname = $6 AND f.pronamespace = tb.relnamespace) "
		"UNION ALL SELECT $7 || ' is not the tail checkpoint table' WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a "
		"WHERE a.attrelid = to_regclass($7) AND a.attname = 'prev_snapshot' AND a.atttypid = 'pg_snapshot'::regtype) "
		"UNION ALL SELECT $8 || ' is not the tail parked table' WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a "
		"WHERE a.attrelid = to_regclass($8) AND a.attname = 'seq' AND a.attidentity = 'a')",
		8, NULL, p, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = mqtx_pg_fail(conn, res, "cannot check what init created for tail mode", err);
	} else {
		if (PQntuples(res) > 0)
			rc = mqtx_err_set(err, MQTX_E_CONFIG,
					  "after init of %s.%s: %s%s (another object has the name?); nothing was changed",
					  cfg->outbox_schema, cfg->outbox_table, PQgetvalue(res, 0, 0),
					  PQntuples(res) > 1 ? ", and more" : "");
		PQclear(res);
	}
	if (rc == 0) {
		int64_t n = mqtx_tail_checkpoint_count(conn, cfg, err);
		if (n < 0)
			rc = -1;
		else if (n == 0)
			rc = mqtx_err_set(err, MQTX_E_CONFIG, "after init of %s.%s: %s has no checkpoint rows for %s",
					  cfg->outbox_schema, cfg->outbox_table, cp, outbox);
	}
	free(qs);
	free(qt);
	free(outbox);
	free(cp);
	free(parked);
	return rc;
}

int mqtx_outbox_init_verify(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	struct names nm;
	make_names(cfg, &nm);
	bool has_key = cfg->outbox_columns[MQTX_COL_KEY] != NULL && cfg->outbox_columns[MQTX_COL_KEY][0] != '\0';
	bool has_okey = cfg->outbox_columns[MQTX_COL_ORDERING_KEY] != NULL &&
			cfg->outbox_columns[MQTX_COL_ORDERING_KEY][0] != '\0';
	bool has_sent = cfg->outbox_columns[MQTX_COL_SENT_AT] != NULL &&
			cfg->outbox_columns[MQTX_COL_SENT_AT][0] != '\0';
	if (!has_okey)
		nm.now[N_PENDING_KEY][0] = '\0';
	if (!has_sent)
		nm.now[N_SENT_AT][0] = '\0';
	char *indexes = names_json(nm.now, 0, N_FIRST_TRIGGER);
	/* trigger -> function */
	struct mqtx_buf trg = MQTX_BUF_INIT;
	mqtx_buf_addc(&trg, '{');
	mqtx_json_add_cstr(&trg, nm.now[N_NOTIFY]);
	mqtx_buf_adds(&trg, ":\"mqtx_notify\",");
	mqtx_json_add_cstr(&trg, nm.now[N_NOTIFY_UPDATE]);
	mqtx_buf_adds(&trg, ":\"mqtx_notify\"");
	if (has_key) {
		mqtx_buf_addc(&trg, ',');
		mqtx_json_add_cstr(&trg, nm.now[N_KEY_TRIGGER]);
		mqtx_buf_addc(&trg, ':');
		mqtx_json_add_cstr(&trg, nm.now[N_KEY_FN]);
	}
	mqtx_buf_addc(&trg, '}');
	/* the key function must derive this table's keys */
	struct mqtx_buf name = MQTX_BUF_INIT;
	mqtx_buf_printf(&name, ":%s.%s:", cfg->outbox_schema, cfg->outbox_table);
	char *lit = PQescapeLiteral(conn, name.data, name.len);
	if (lit == NULL)
		abort(); /* out of memory: the names were checked at connect */
	const char *p[6] =
		{cfg->outbox_schema, cfg->outbox_table, indexes, trg.data, has_key ? nm.now[N_KEY_FN] : NULL, lit};
	PGresult *res =
		PQexecParams(conn,
			     "WITH tb AS (SELECT c.oid, c.relnamespace FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
			     "WHERE n.nspname = $1 AND c.relname = $2) "
			     "SELECT 'index ' || quote_ident(x) || ' is not an index of the table' FROM jsonb_array_elements_text($3::jsonb) x "
			     "WHERE NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid, tb "
			     "WHERE ic.relnamespace = tb.relnamespace AND ic.relname = x AND i.indrelid = tb.oid) "
			     "UNION ALL SELECT 'trigger ' || quote_ident(e.key) || ' of the table does not call ' || quote_ident(e.value) "
			     "FROM jsonb_each_text($4::jsonb) e WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_proc f ON f.oid = t.tgfoid, tb "
			     "WHERE t.tgrelid = tb.oid AND t.tgname = e.key AND f.proname = e.value AND f.pronamespace = tb.relnamespace) "
			     "UNION ALL SELECT 'function ' || quote_ident($5) || ' does not derive the keys of this table' WHERE $5 IS NOT NULL "
			     "AND NOT EXISTS (SELECT 1 FROM pg_proc f, tb WHERE f.pronamespace = tb.relnamespace AND f.proname = $5 "
			     "AND strpos(f.prosrc, $6) > 0)",
			     6, NULL, p, NULL, NULL, 0);
	PQfreemem(lit);
	mqtx_buf_free(&name);
	mqtx_buf_free(&trg);
	free(indexes);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot check what init created", err);
	int rc = 0;
	if (PQntuples(res) > 0)
		rc = mqtx_err_set(err, MQTX_E_CONFIG,
				  "after init of %s.%s: %s%s (another object has the name?); nothing was changed",
				  cfg->outbox_schema, cfg->outbox_table, PQgetvalue(res, 0, 0),
				  PQntuples(res) > 1 ? ", and more" : "");
	PQclear(res);
	if (rc == 0 && mqtx_config_tail(cfg))
		rc = verify_tail(conn, cfg, &nm, err);
	return rc;
}

int mqtx_outbox_key_unique(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	const char *col = cfg->outbox_columns[MQTX_COL_KEY];
	if (col == NULL || col[0] == '\0')
		return 1; /* keys derive from the id */
	return mqtx_pg_unique_guard(conn, cfg->outbox_schema, cfg->outbox_table, col, NULL, 0,
				    "cannot look at the outbox table's indexes", err);
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
	struct mqtx_pg_columns cols;
	if (mqtx_pg_table_columns(conn, cfg->outbox_schema, cfg->outbox_table, NULL, &cols,
				  "cannot look up the outbox table", err) < 0)
		goto fail;
	*table_exists = cols.exists;
	*table_incomplete = false;
	const char *by = cfg->outbox_partition_by;
	bool partitioned = by != NULL && strcmp(by, "none") != 0;
	bool tail = mqtx_config_tail(cfg);
	if (!tail) {
		q[MQTX_COL_TXID] = NULL; /* the txid column is tail mode's */
	} else if (q[MQTX_COL_TXID] == NULL) {
		mqtx_pg_columns_free(&cols);
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "outbox.mode is tail but outbox.columns.txid is empty: tail mode needs the xid8 column");
		goto fail;
	}
	if (partitioned && !*table_exists && q[MQTX_COL_CREATED_AT] == NULL) {
		mqtx_pg_columns_free(&cols);
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "outbox.partition_by %s partitions by creation time, but outbox.columns.created_at is empty",
			     by);
		goto fail;
	}
	mqtx_buf_printf(&out, "-- mqtx init for %s\n", T.data);
	if (!*table_exists) {
		mqtx_buf_printf(&out, "CREATE SCHEMA IF NOT EXISTS %s;\n", qschema);
		if (partitioned)
			mqtx_buf_printf(&out,
					"-- partitioned by %s of %s (UTC): the relay creates partitions ahead and drops expired\n"
					"-- ones; idempotency keys are unique together with %s only (see mqtx.yaml(5), \"Partitions\")\n",
					by, q[MQTX_COL_CREATED_AT], q[MQTX_COL_CREATED_AT]);
		mqtx_buf_printf(&out, "CREATE TABLE IF NOT EXISTS %s (\n", T.data);
		bool first = true;
		for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
			if (q[specs[i].col] == NULL)
				continue;
			const char *type = specs[i].type;
			if (partitioned && specs[i].col == MQTX_COL_ID)
				type = "bigserial NOT NULL"; /* the primary key has the partition key in it */
			if (partitioned && specs[i].col == MQTX_COL_KEY)
				type = "text NOT NULL";
			if (specs[i].col == MQTX_COL_PAYLOAD && strcmp(cfg->outbox_payload_type, "bytea") != 0) {
				static char pt[64];
				snprintf(pt, sizeof(pt), "%s NOT NULL", cfg->outbox_payload_type);
				type = pt;
			}
			mqtx_buf_printf(&out, "%s  %s %s", first ? "" : ",\n", q[specs[i].col], type);
			first = false;
		}
		if (tail) /* the writing transaction, for tail mode's intervals */
			mqtx_buf_printf(&out, ",\n  %s xid8 DEFAULT pg_current_xact_id()", q[MQTX_COL_TXID]);
		mqtx_buf_printf(&out, ",\n  CHECK (%s IN ('pending', 'sent', 'dead', 'prepared', 'rolled_back'))",
				q[MQTX_COL_STATUS]);
		if (!partitioned) {
			mqtx_buf_adds(&out, "\n);\n");
		} else {
			const char *cr = q[MQTX_COL_CREATED_AT];
			mqtx_buf_printf(&out, ",\n  PRIMARY KEY (%s, %s)", q[MQTX_COL_ID], cr);
			if (q[MQTX_COL_KEY] != NULL)
				mqtx_buf_printf(&out, ",\n  UNIQUE (%s, %s)", q[MQTX_COL_KEY], cr);
			mqtx_buf_printf(&out, "\n) PARTITION BY RANGE (%s);\n", cr);
			if (add_partitions(&out, conn, cfg, qschema, T.data, err) < 0) {
				mqtx_pg_columns_free(&cols);
				goto fail;
			}
		}
	} else {
		if (partitioned && !is_partitioned(conn, cfg))
			mqtx_buf_printf(&out,
					"-- outbox.partition_by is %s, but the table exists unpartitioned: converting it is manual,\n"
					"-- see mqtx.yaml(5), \"Partitions\" (until then the setting has no effect)\n",
					by);
		/* An existing table: say what it lacks. */
		bool adopted_note = false;
		for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
			enum mqtx_col c = specs[i].col;
			if (q[c] == NULL)
				continue;
			const struct mqtx_pg_column *have = mqtx_pg_columns_find(&cols, cfg->outbox_columns[c]);
			bool found = have != NULL;
			const char *type = found ? have->type : "";
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
				mqtx_buf_printf(&out,
						"-- column %s is missing: map outbox.columns to an existing column, or set it to \"\" if the table has none\n",
						q[c]);
				continue;
			}
			if (!adopted_note) {
				mqtx_buf_printf(&out,
						"-- existing rows become 'pending' and will be relayed; to skip them, after this run:\n"
						"--   UPDATE %s SET %s = 'sent';\n",
						T.data, q[MQTX_COL_STATUS]);
				adopted_note = true;
			}
			mqtx_buf_printf(&out, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s;\n", T.data, q[c],
					specs[i].add);
		}
		if (tail && add_txid_column(&out, conn, cfg, &cols, q, T.data, table_incomplete, err) < 0) {
			mqtx_pg_columns_free(&cols);
			goto fail;
		}
	}
	mqtx_pg_columns_free(&cols);
	struct names nm;
	make_names(cfg, &nm);
	add_common(&out, conn, cfg, q, qschema, T.data, &nm);
	if (*table_exists && add_replaced(&out, conn, cfg, qschema, T.data, &nm, err) < 0)
		goto fail;
	if (tail && add_tail(&out, conn, cfg, q, qschema, T.data, &nm, err) < 0)
		goto fail;
	if (grant_role != NULL) {
		char *r = mqtx_pg_ident_checked(conn, grant_role, "--grant", err);
		if (r == NULL) {
			err->kind = MQTX_E_USAGE;
			goto fail;
		}
		add_grants(&out, r, qschema, T.data, tail);
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

int mqtx_outbox_init_apply(PGconn *conn, const struct mqtx_config *cfg, const char *sql, struct mqtx_err *err)
{
	/* one transaction: the SQL, then a look at what it made, then COMMIT */
	struct mqtx_buf tx = MQTX_BUF_INIT;
	mqtx_buf_printf(&tx, "BEGIN;\n%s", sql);
	PGresult *res = PQexec(conn, tx.data);
	mqtx_buf_free(&tx);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = mqtx_pg_fail(conn, res, "cannot create the outbox", err);
	else {
		PQclear(res);
		if (mqtx_outbox_init_verify(conn, cfg, err) < 0 || mqtx_pg_exec(conn, "COMMIT", err) < 0)
			rc = -1;
	}
	if (rc != 0 && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	return rc;
}
