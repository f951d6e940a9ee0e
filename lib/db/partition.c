/* Outbox partitions (see partition.h). Bounds are the catalogue's
 * (pg_get_expr(relpartbound)), periods the server's clock in UTC; DDL
 * cannot take parameters, so names are quoted identifiers and bounds
 * literals the server formatted itself. */
#define _POSIX_C_SOURCE 200809L
#include "db/partition.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/sha256.h"
#include "db/pg.h"

/* The objid of the upkeep's session advisory lock (class: the outbox's
 * oid as int4, like the relay's locks; those use objids from -1000000 -
 * 65536 up). */
#define UPKEEP_OBJID "-2000000000"
/* How long DDL waits for a lock on the parent before giving up until
 * the next pass. */
#define PARTITION_LOCK_TIMEOUT "100ms"

void mqtx_partition_name(const char *schema, const char *table, const char *suffix, char out[MQTX_PG_NAME_MAX + 1])
{
	size_t tl = strlen(table), sl = strlen(suffix);
	if (tl + 1 + sl <= MQTX_PG_NAME_MAX) {
		memcpy(out, table, tl);
		out[tl] = '_';
		memcpy(out + tl + 1, suffix, sl + 1);
		return;
	}
	struct mqtx_sha256 h;
	char hex[65];
	mqtx_sha256_init(&h);
	mqtx_sha256_update(&h, schema, strlen(schema) + 1); /* with its NUL: a separator */
	mqtx_sha256_update(&h, table, tl);
	mqtx_sha256_hex(&h, hex);
	snprintf(out, MQTX_PG_NAME_MAX + 1, "%.*s_%.10s_%s", (int)mqtx_utf8_clip(table, MQTX_PG_NAME_MAX - sl - 12),
		 table, hex, suffix);
}

static bool is_day(const char *by)
{
	return strcmp(by, "day") == 0;
}

/* The periods wanted, as a query: columns lo, hi (timestamptz). */
static void add_wanted(struct mqtx_buf *b, const char *by)
{
	const char *unit = is_day(by) ? "day" : "hour", *step = is_day(by) ? "24 hours" : "1 hour";
	mqtx_buf_printf(b,
			"SELECT lo, lo + interval '%s' AS hi FROM generate_series(date_trunc('%s', now(), 'UTC'), "
			"date_trunc('%s', now(), 'UTC') + %d * interval '%s', interval '%s') lo",
			step, unit, unit, MQTX_PARTITIONS_AHEAD, step, step);
}

/* "YYYY-MM-DD HH:MM:SS+00" of a timestamptz expression */
#define UTC_TEXT(e) "to_char((" e ") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'"

int mqtx_partitions_periods(PGconn *conn, const struct mqtx_config *cfg, const char *by,
			    struct mqtx_partition_period out[MQTX_PARTITIONS_AHEAD + 1], struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT to_char(w.lo AT TIME ZONE 'UTC', '%s'), " UTC_TEXT("w.lo") ", " UTC_TEXT(
				"w.hi") " FROM (",
			is_day(by) ? "YYYYMMDD" : "YYYYMMDDHH24");
	add_wanted(&sql, by);
	mqtx_buf_adds(&sql, ") w ORDER BY w.lo");
	PGresult *res = PQexec(conn, sql.data);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot compute the outbox's partitions", err);
	int n = PQntuples(res);
	for (int r = 0; r < n && r <= MQTX_PARTITIONS_AHEAD; r++) {
		char suffix[32];
		snprintf(suffix, sizeof(suffix), "p%s", PQgetvalue(res, r, 0));
		mqtx_partition_name(cfg->outbox_schema, cfg->outbox_table, suffix, out[r].name);
		snprintf(out[r].from, sizeof(out[r].from), "%s", PQgetvalue(res, r, 1));
		snprintf(out[r].to, sizeof(out[r].to), "%s", PQgetvalue(res, r, 2));
	}
	PQclear(res);
	if (n != MQTX_PARTITIONS_AHEAD + 1)
		return mqtx_err_set(err, MQTX_E_DB, "cannot compute the outbox's partitions: %d periods", n);
	return 0;
}

/* The outbox as the catalogue sees it. */
struct parent {
	bool exists;
	char oid[24], cls[16]; /* the oid, and as an int4 (advisory lock class) */
	char relkind;
	char strategy;    /* 'r' range, 'l' list, 'h' hash; 0: not partitioned */
	int nkeys;        /* partition key columns (0: an expression) */
	char *key, *type; /* the first key column and its type ("" when none) */
	bool has_default;
};

static void parent_free(struct parent *p)
{
	free(p->key);
	free(p->type);
}

static int look_up(PGconn *conn, const struct mqtx_config *cfg, struct parent *p, struct mqtx_err *err)
{
	memset(p, 0, sizeof(*p));
	const char *v[2] = {cfg->outbox_schema, cfg->outbox_table};
	PGresult *res =
		PQexecParams(conn,
			     "SELECT c.oid::int8::text, c.relkind::text, coalesce(p.partstrat::text, ''), coalesce(p.partnatts, 0), "
			     "coalesce(a.attname::text, ''), coalesce(format_type(a.atttypid, a.atttypmod), ''), "
			     "coalesce(p.partdefid <> 0, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
			     "LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid "
			     "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] AND a.attnum > 0 "
			     "WHERE n.nspname = $1 AND c.relname = $2",
			     2, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look up the outbox's partitions", err);
	if (PQntuples(res) == 1) {
		p->exists = true;
		snprintf(p->oid, sizeof(p->oid), "%s", PQgetvalue(res, 0, 0));
		snprintf(p->cls, sizeof(p->cls), "%ld", (long)(int32_t)(uint32_t)strtoull(p->oid, NULL, 10));
		p->relkind = PQgetvalue(res, 0, 1)[0];
		p->strategy = PQgetvalue(res, 0, 2)[0];
		p->nkeys = atoi(PQgetvalue(res, 0, 3));
		p->key = mqtx_xstrdup(PQgetvalue(res, 0, 4));
		p->type = mqtx_xstrdup(PQgetvalue(res, 0, 5));
		p->has_default = PQgetvalue(res, 0, 6)[0] == 't';
	}
	PQclear(res);
	return 0;
}

int mqtx_partitions_key_unique_per_period(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	const char *key = cfg->outbox_columns[MQTX_COL_KEY], *created = cfg->outbox_columns[MQTX_COL_CREATED_AT];
	if (key == NULL || key[0] == '\0' || created == NULL || created[0] == '\0')
		return 0;
	const char *v[4] = {cfg->outbox_schema, cfg->outbox_table, key, created};
	PGresult *res =
		PQexecParams(conn,
			     "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
			     "JOIN pg_attribute k ON k.attrelid = c.oid AND k.attname = $3 "
			     "JOIN pg_attribute t ON t.attrelid = c.oid AND t.attname = $4 "
			     "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'p' AND i.indisunique AND i.indpred IS NULL "
			     "AND i.indexprs IS NULL AND i.indnkeyatts = 2 AND i.indkey[0] = k.attnum AND i.indkey[1] = t.attnum LIMIT 1",
			     4, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, "cannot look at the outbox table's indexes", err);
	int found = PQntuples(res) == 1;
	PQclear(res);
	return found;
}

/* The partitions of the parent, with their bounds lo, hi (timestamptz;
 * NULL for the default), as a query on parent oid $1. */
static const char *const PARTS_SQL =
	"SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qname, c.relname::text AS name, "
	"b.m IS NULL AS is_default, "
	"CASE WHEN b.m[1] = 'MINVALUE' THEN '-infinity' ELSE btrim(b.m[1], '''') END::timestamptz AS lo, "
	"CASE WHEN b.m[2] = 'MAXVALUE' THEN 'infinity' ELSE btrim(b.m[2], '''') END::timestamptz AS hi "
	"FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
	"CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid), "
	"'^FOR VALUES FROM \\((.+)\\) TO \\((.+)\\)$') AS m) b WHERE i.inhparent = $1::oid";

static const char *sqlstate(const PGresult *res)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return s != NULL ? s : "";
}

/* The first line of the server's message, without "ERROR:  ". */
static void first_line(const PGresult *res, char *out, size_t size)
{
	const char *m = PQresultErrorMessage(res);
	if (strncmp(m, "ERROR:  ", 8) == 0)
		m += 8;
	snprintf(out, size, "%.*s", (int)strcspn(m, "\n"), m);
}

static void rollback(PGconn *conn)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

static void set_warning(char *warning, size_t wsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_warning(char *warning, size_t wsize, const char *fmt, ...)
{
	if (warning == NULL || wsize == 0 || warning[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(warning, wsize, fmt, ap);
	va_end(ap);
}

struct upkeep {
	PGconn *conn;
	const struct mqtx_config *cfg;
	struct parent p;
	char *qparent, *qschema, *qcreated, *qstatus, *qsent;
	const char *deletable;
	int64_t deadline_ms;
	char *warning;
	size_t wsize;
	bool stop; /* a lock timeout or a missing privilege: no more DDL this pass */
};

/* A failed DDL statement: 1 when it is one the next pass may get past
 * (lock timeout, privilege, a table in the way), res cleared; 0 else. */
static int soft(struct upkeep *u, PGresult *res, const char *doing, const char *name)
{
	const char *st = sqlstate(res);
	char msg[300];
	first_line(res, msg, sizeof(msg));
	if (strcmp(st, "55P03") == 0) { /* lock_not_available: busy, next pass */
		mqtx_debug("partitions: cannot %s %s now (%s); next pass", doing, name, msg);
		u->stop = true;
	} else if (strcmp(st, "42P01") == 0) { /* a table the rows' condition needs (mqtx_completions) */
		set_warning(u->warning, u->wsize, "partitions: cannot %s %s (%s): it is kept (run 'mqtx init')", doing,
			    name, msg);
		u->stop = true;
	} else if (strcmp(st, "42501") == 0) { /* insufficient_privilege */
		set_warning(u->warning, u->wsize,
			    "partitions: cannot %s %s (%s): partitions of %s are not kept up (run the relay as the "
			    "table's owner, or do it yourself; see mqtx.yaml(5), \"Partitions\")",
			    doing, name, msg, u->qparent);
		u->stop = true;
	} else if (strcmp(st, "23514") == 0) { /* rows of the range are in the default partition already */
		mqtx_debug("partitions: cannot %s %s (%s): the default partition keeps that period", doing, name, msg);
	} else if (strcmp(st, "42P07") == 0 || strcmp(st, "2BP01") == 0 || strcmp(st, "42809") == 0) {
		set_warning(u->warning, u->wsize, "partitions: cannot %s %s: %s", doing, name, msg);
	} else {
		return 0;
	}
	PQclear(res);
	return 1;
}

static bool usable(struct upkeep *u);

/* Above this estimate of rows in the default partition, no ATTACH. */
#define DEFAULT_ATTACH_MAX_ROWS 100000

static bool past(const struct upkeep *u)
{
	return u->deadline_ms > 0 && mqtx_now_ms() >= u->deadline_ms;
}

/* Is there a row in the default partition in [from, to)? Looked at
 * without locks, so that ATTACH (which scans the default under a lock)
 * is only tried when it can succeed. */
static int default_has_rows(struct upkeep *u, const char *lo, const char *hi, struct mqtx_err *err)
{
	if (!u->p.has_default)
		return 0;
	/* ATTACH scans the default partition under an exclusive lock (claims
	 * and writers of its rows wait): not while it is big */
	char q[256];
	snprintf(q, sizeof(q),
		 "SELECT c.reltuples::int8 FROM pg_class c WHERE c.oid = (SELECT partdefid FROM pg_partitioned_table "
		 "WHERE partrelid = %s::oid)",
		 u->p.oid);
	PGresult *est = PQexec(u->conn, q);
	if (PQresultStatus(est) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(u->conn, est, "partitions: cannot look at the default partition", err);
	long long rows = PQntuples(est) > 0 ? strtoll(PQgetvalue(est, 0, 0), NULL, 10) : 0;
	PQclear(est);
	if (rows > DEFAULT_ATTACH_MAX_ROWS) {
		set_warning(u->warning, u->wsize,
			    "partitions: the default partition of %s holds about %lld rows (periods without a partition "
			    "land there): no partition is attached while it holds more than %d, because ATTACH scans it "
			    "under an exclusive lock; retention empties it row by row (see mqtx.yaml(5), \"Partitions\")",
			    u->qparent, rows, DEFAULT_ATTACH_MAX_ROWS);
		return 1;
	}
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT 1 FROM %s t WHERE t.tableoid = (SELECT partdefid FROM pg_partitioned_table WHERE "
			"partrelid = %s::oid) AND t.%s >= $1::timestamptz AND t.%s < $2::timestamptz LIMIT 1",
			u->qparent, u->p.oid, u->qcreated, u->qcreated);
	const char *v[2] = {lo, hi};
	PGresult *res = PQexecParams(u->conn, sql.data, 2, NULL, v, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(u->conn, res, "partitions: cannot look at the default partition", err);
	int found = PQntuples(res) > 0;
	PQclear(res);
	return found;
}

static int create_ahead(struct upkeep *u, int64_t *created, struct mqtx_err *err)
{
	const char *by = u->cfg->outbox_partition_by;
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "WITH parts AS (%s), want AS (", PARTS_SQL);
	add_wanted(&sql, by);
	mqtx_buf_printf(&sql,
			") SELECT to_char(w.lo AT TIME ZONE 'UTC', '%s'), " UTC_TEXT("w.lo") ", " UTC_TEXT(
				"w.hi") " FROM want w WHERE NOT EXISTS (SELECT 1 FROM parts p WHERE NOT p.is_default "
					"AND p.lo < w.hi AND p.hi > w.lo) ORDER BY w.lo",
			is_day(by) ? "YYYYMMDD" : "YYYYMMDDHH24");
	const char *v[1] = {u->p.oid};
	PGresult *res = PQexecParams(u->conn, sql.data, 1, NULL, v, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(u->conn, res, "partitions: cannot list the missing partitions", err);
	int rc = 0;
	/* not bounded by the deadline: at most 1 + MQTX_PARTITIONS_AHEAD small
	 * statements, and a period without its partition fills the default */
	for (int r = 0; r < PQntuples(res) && !u->stop; r++) {
		char suffix[32], name[MQTX_PG_NAME_MAX + 1];
		snprintf(suffix, sizeof(suffix), "p%s", PQgetvalue(res, r, 0));
		mqtx_partition_name(u->cfg->outbox_schema, u->cfg->outbox_table, suffix, name);
		const char *lo = PQgetvalue(res, r, 1), *hi = PQgetvalue(res, r, 2);
		int busy = default_has_rows(u, lo, hi, err);
		if (busy < 0) {
			rc = -1;
			break;
		}
		if (busy) {
			mqtx_debug("partitions: %s not created: rows of its period are in the default partition", name);
			continue;
		}
		char *qname = mqtx_pg_ident(u->conn, name);
		struct mqtx_buf ddl = MQTX_BUF_INIT;
		mqtx_buf_printf(&ddl,
				"BEGIN; SET LOCAL lock_timeout = '" PARTITION_LOCK_TIMEOUT "'; "
				"CREATE TABLE %s.%s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS); "
				"ALTER TABLE %s ATTACH PARTITION %s.%s FOR VALUES FROM ('%s') TO ('%s'); COMMIT",
				u->qschema, qname, u->qparent, u->qparent, u->qschema, qname, lo, hi);
		free(qname);
		PGresult *d = PQexec(u->conn, ddl.data);
		mqtx_buf_free(&ddl);
		if (PQresultStatus(d) != PGRES_COMMAND_OK) {
			rollback(u->conn);
			if (soft(u, d, "create partition", name))
				continue;
			rc = mqtx_pg_fail(u->conn, d, "partitions: cannot create a partition", err);
			break;
		}
		PQclear(d);
		(*created)++;
		mqtx_debug("partitions: created %s for [%s, %s)", name, lo, hi);
	}
	PQclear(res);
	return rc;
}

/* Whether partition qpart holds a row to keep; cheap: only the indexed
 * kinds of rows that can have appeared since the first look. */
static int holds_rows_to_keep(struct upkeep *u, const char *qpart, bool cheap, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql, "SELECT 1 FROM %s t WHERE ", qpart);
	if (cheap) {
		const char *s = u->qstatus;
		mqtx_buf_printf(&sql, "(t.%s = 'pending' OR t.%s = 'prepared' OR t.%s = 'dead' OR ", s, s, s);
		if (u->qsent != NULL)
			mqtx_buf_printf(&sql, "(t.%s = 'sent' AND t.%s >= now() - interval '%lld milliseconds')) AND ",
					s, u->qsent, (long long)u->cfg->outbox_retention_ms);
		else
			mqtx_buf_printf(&sql, "t.%s = 'sent') AND ", s);
	}
	mqtx_buf_printf(&sql, "(%s) IS NOT TRUE LIMIT 1", u->deletable);
	PGresult *res = PQexec(u->conn, sql.data);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (soft(u, res, "look at the rows of partition", qpart))
			return 1; /* kept: the next pass looks again */
		return mqtx_pg_fail(u->conn, res, "partitions: cannot look at the rows of a partition", err);
	}
	int found = PQntuples(res) > 0;
	PQclear(res);
	return found;
}

static int drop_expired(struct upkeep *u, int64_t *dropped, struct mqtx_err *err)
{
	struct mqtx_buf sql = MQTX_BUF_INIT;
	mqtx_buf_printf(&sql,
			"SELECT p.qname, p.name FROM (%s) p WHERE NOT p.is_default "
			"AND p.hi <= now() - interval '%lld milliseconds' ORDER BY p.hi",
			PARTS_SQL, (long long)u->cfg->outbox_retention_ms);
	const char *v[1] = {u->p.oid};
	PGresult *res = PQexecParams(u->conn, sql.data, 1, NULL, v, NULL, NULL, 0);
	mqtx_buf_free(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return mqtx_pg_fail(u->conn, res, "partitions: cannot list the expired partitions", err);
	int rc = 0;
	for (int r = 0; r < PQntuples(res) && !u->stop && !past(u); r++) {
		const char *qpart = PQgetvalue(res, r, 0), *name = PQgetvalue(res, r, 1);
		int keep = holds_rows_to_keep(u, qpart, false, err);
		if (keep < 0) {
			rc = -1;
			break;
		}
		if (keep)
			continue; /* row retention deletes the others meanwhile */
		struct mqtx_buf ddl = MQTX_BUF_INIT;
		mqtx_buf_printf(&ddl,
				"BEGIN; SET LOCAL lock_timeout = '" PARTITION_LOCK_TIMEOUT "'; "
				"ALTER TABLE %s DETACH PARTITION %s",
				u->qparent, qpart);
		PGresult *d = PQexec(u->conn, ddl.data);
		mqtx_buf_free(&ddl);
		if (PQresultStatus(d) != PGRES_COMMAND_OK) {
			rollback(u->conn);
			if (soft(u, d, "detach partition", name))
				continue;
			rc = mqtx_pg_fail(u->conn, d, "partitions: cannot detach a partition", err);
			break;
		}
		PQclear(d);
		/* under the lock now: what came since the first look */
		keep = holds_rows_to_keep(u, qpart, true, err);
		if (keep != 0) {
			rollback(u->conn);
			if (keep < 0) {
				rc = -1;
				break;
			}
			continue;
		}
		struct mqtx_buf drop = MQTX_BUF_INIT;
		mqtx_buf_printf(&drop, "DROP TABLE %s; COMMIT", qpart);
		d = PQexec(u->conn, drop.data);
		mqtx_buf_free(&drop);
		if (PQresultStatus(d) != PGRES_COMMAND_OK) {
			rollback(u->conn);
			if (soft(u, d, "drop partition", name))
				continue;
			rc = mqtx_pg_fail(u->conn, d, "partitions: cannot drop a partition", err);
			break;
		}
		PQclear(d);
		(*dropped)++;
		mqtx_debug("partitions: dropped %s", name);
	}
	PQclear(res);
	return rc;
}

/* The outbox is partitioned the way upkeep can work with; else a warning. */
static bool usable(struct upkeep *u)
{
	const struct mqtx_config *cfg = u->cfg;
	const char *created = cfg->outbox_columns[MQTX_COL_CREATED_AT];
	if (u->p.relkind != 'p') {
		set_warning(u->warning, u->wsize,
			    "outbox.partition_by is %s, but %s is not a partitioned table: the setting has no effect "
			    "(converting a table is manual: see mqtx.yaml(5), \"Partitions\")",
			    cfg->outbox_partition_by, u->qparent);
		return false;
	}
	if (created == NULL || created[0] == '\0' || u->p.strategy != 'r' || u->p.nkeys != 1 ||
	    strcmp(u->p.key, created) != 0 || strcmp(u->p.type, "timestamp with time zone") != 0) {
		set_warning(u->warning, u->wsize,
			    "outbox.partition_by is %s, but %s is not partitioned by range of its created_at column "
			    "(outbox.columns.created_at, timestamptz): its partitions are neither created nor dropped",
			    cfg->outbox_partition_by, u->qparent);
		return false;
	}
	return true;
}

int mqtx_partitions_row_guard(PGconn *conn, const struct mqtx_config *cfg, char **guard, struct mqtx_err *err)
{
	*guard = NULL;
	const char *by = cfg->outbox_partition_by;
	if ((strcmp(by, "hour") != 0 && strcmp(by, "day") != 0) || cfg->outbox_retention_ms == 0)
		return 0;
	struct upkeep u = {.conn = conn, .cfg = cfg};
	if (look_up(conn, cfg, &u.p, err) < 0)
		return -1;
	if (u.p.exists) {
		char w[8] = ""; /* the warning is the upkeep's to give */
		u.warning = w;
		u.wsize = sizeof(w);
		u.qparent = mqtx_xstrdup("");
		if (usable(&u)) {
			char *qc = mqtx_pg_ident(conn, cfg->outbox_columns[MQTX_COL_CREATED_AT]);
			*guard = mqtx_xasprintf("t.%s < date_trunc('%s', now() - interval '%lld milliseconds', 'UTC')",
						qc, by, (long long)cfg->outbox_retention_ms);
			free(qc);
		}
		free(u.qparent);
	}
	parent_free(&u.p);
	return 0;
}

int mqtx_partitions_maintain(PGconn *conn, const struct mqtx_config *cfg, const char *deletable_sql,
			     int64_t deadline_ms, int64_t *created, int64_t *dropped, char *warning, size_t wsize,
			     struct mqtx_err *err)
{
	mqtx_err_clear(err);
	if (strcmp(cfg->outbox_partition_by, "hour") != 0 && strcmp(cfg->outbox_partition_by, "day") != 0)
		return 0;
	struct upkeep u = {.conn = conn,
			   .cfg = cfg,
			   .deletable = deletable_sql,
			   .deadline_ms = deadline_ms,
			   .warning = warning,
			   .wsize = wsize};
	if (look_up(conn, cfg, &u.p, err) < 0)
		return -1;
	if (!u.p.exists) {
		parent_free(&u.p);
		return 0; /* retention says what is missing */
	}
	u.qschema = mqtx_pg_ident(conn, cfg->outbox_schema);
	char *qtable = mqtx_pg_ident(conn, cfg->outbox_table);
	u.qparent = mqtx_xasprintf("%s.%s", u.qschema, qtable);
	free(qtable);
	int rc = 0;
	if (!usable(&u))
		goto out;
	u.qcreated = mqtx_pg_ident(conn, cfg->outbox_columns[MQTX_COL_CREATED_AT]);
	u.qstatus = mqtx_pg_ident(conn, cfg->outbox_columns[MQTX_COL_STATUS]);
	if (cfg->outbox_columns[MQTX_COL_SENT_AT] != NULL && cfg->outbox_columns[MQTX_COL_SENT_AT][0] != '\0')
		u.qsent = mqtx_pg_ident(conn, cfg->outbox_columns[MQTX_COL_SENT_AT]);

	/* one session at a time does the upkeep of an outbox */
	const char *v[1] = {u.p.cls};
	PGresult *res = PQexecParams(conn, "SELECT pg_try_advisory_lock($1::int4, " UPKEEP_OBJID ")", 1, NULL, v, NULL,
				     NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = mqtx_pg_fail(conn, res, "partitions: cannot take the upkeep lock", err);
		goto out;
	}
	bool mine = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!mine) {
		mqtx_debug("partitions: another session keeps up the partitions of %s", u.qparent);
		goto out;
	}
	rc = create_ahead(&u, created, err);
	if (rc == 0 && deletable_sql != NULL && cfg->outbox_retention_ms != 0)
		rc = drop_expired(&u, dropped, err);
	if (PQstatus(conn) == CONNECTION_OK) {
		rollback(conn);
		PQclear(PQexecParams(conn, "SELECT pg_advisory_unlock($1::int4, " UPKEEP_OBJID ")", 1, NULL, v, NULL,
				     NULL, 0));
	}
out:
	parent_free(&u.p);
	free(u.qschema);
	free(u.qparent);
	free(u.qcreated);
	free(u.qstatus);
	free(u.qsent);
	return rc;
}
