/* PostgreSQL connection helpers (see pg.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "db/pg.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/stop.h"
#include "base/util.h"

static int quote_failed(PGconn *conn, const char *s, const char *role, const char *what, struct mqtx_err *err);

/* Every name from the configuration that SQL quotes as an identifier must
 * be text libpq accepts in this connection's encoding (config.c already
 * wants UTF-8): checked once here, so mqtx_pg_ident cannot fail later. */
static int check_names(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_err *err)
{
	const char *names[5 + MQTX_COL__COUNT], *roles[5 + MQTX_COL__COUNT];
	size_t n = 0;
	names[n] = cfg->outbox_schema, roles[n++] = "outbox.schema";
	names[n] = cfg->outbox_table, roles[n++] = "outbox.table";
	names[n] = cfg->outbox_notify_channel, roles[n++] = "outbox.notify_channel";
	names[n] = cfg->audit_inbox_schema, roles[n++] = "audit.inbox_schema";
	names[n] = cfg->audit_inbox_table, roles[n++] = "audit.inbox_table";
	for (int c = 0; c < MQTX_COL__COUNT; c++)
		names[n] = cfg->outbox_columns[c], roles[n++] = mqtx_config_column_key((enum mqtx_col)c);
	for (size_t i = 0; i < n; i++) {
		if (names[i] == NULL)
			continue;
		char *q = PQescapeIdentifier(conn, names[i], strlen(names[i]));
		if (q == NULL)
			return quote_failed(conn, names[i], roles[i], "an SQL identifier", err);
		PQfreemem(q);
	}
	return 0;
}

/* What the server or libpq says outside a result (a WARNING, the FATAL
 * that ends an idle connection, libpq's own complaints) would go raw to
 * stderr by default; through the log it keeps --log-format and one line.
 * The failure a caller then sees still travels as its error value. */
static void on_notice(void *arg, const PGresult *res)
{
	(void)arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *shown = PQresultErrorField(res, PG_DIAG_SEVERITY);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_printf(&b, "database: %s: %s",
			shown != NULL ? shown
			: sev != NULL ? sev
				      : "NOTICE",
			msg != NULL ? msg : PQresultErrorMessage(res));
	if (detail != NULL)
		mqtx_buf_printf(&b, " (%s)", detail);
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\n' || b.data[i] == '\r')
			b.data[i] = ' ';
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.data[--b.len] = '\0';
	/* without a SQLSTATE it is libpq's own complaint: worth a warning */
	bool server = PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL;
	enum mqtx_log_level level = MQTX_LOG_WARN;
	if (server && sev != NULL && strcmp(sev, "DEBUG") == 0)
		level = MQTX_LOG_DEBUG;
	else if (server && sev != NULL &&
		 (strcmp(sev, "NOTICE") == 0 || strcmp(sev, "INFO") == 0 || strcmp(sev, "LOG") == 0))
		level = MQTX_LOG_INFO;
	mqtx_log(level, "%s", b.data);
	mqtx_buf_free(&b);
}

/* libpq's connection error on one line: with several hosts in the URL it
 * has a line per host tried ("connection to server at ... failed: ..."),
 * each maybe followed by a tab-indented hint; the hosts' lines are kept,
 * joined by "; ", the hints dropped. */
static void one_line_per_host(const char *why, char *out, size_t size)
{
	size_t n = 0;
	out[0] = '\0';
	for (const char *p = why; *p != '\0' && n + 1 < size;) {
		size_t len = strcspn(p, "\n");
		if (p[0] != '\t' && len > 0) {
			int w = snprintf(out + n, size - n, "%s%.*s", n > 0 ? "; " : "", (int)len, p);
			n = w < 0 || (size_t)w >= size - n ? size - 1 : n + (size_t)w;
		}
		p += len;
		if (*p == '\n')
			p++;
	}
}

/* Drives an started connection to its end, polling in slices so that it
 * gives up at database.connect_timeout or when a stop's grace runs out
 * (libpq ignores connect_timeout with PQconnectPoll). Returns NULL when
 * connected, or why not. */
static const char *finish_connect(PGconn *conn, int64_t timeout_ms)
{
	int64_t until = mqtx_now_ms() + timeout_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	for (;;) {
		if (st == PGRES_POLLING_OK)
			return NULL;
		if (st == PGRES_POLLING_FAILED)
			return PQerrorMessage(conn);
		int64_t stop = mqtx_stop_cut_deadline();
		int64_t end = until < stop ? until : stop;
		int64_t left = end - mqtx_now_ms();
		if (left <= 0)
			return end == stop ? "stopped: the shutdown grace ran out" : "timeout expired";
		struct pollfd pfd = {.fd = PQsocket(conn), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		int pr = poll(&pfd, 1, (int)(left < 200 ? left : 200));
		if (pr < 0 && errno != EINTR)
			return strerror(errno);
		if (pr > 0)
			st = PQconnectPoll(conn);
	}
}

PGconn *mqtx_pg_connect(const struct mqtx_config *cfg, const char *application_name, struct mqtx_err *err)
{
	const char *url = cfg->database_url;
	char *password = NULL;
	char timeout[32];

	if (url == NULL || url[0] == '\0') {
		mqtx_err_set(err, MQTX_E_CONFIG,
			     "no database URL (set --database-url, MQTX_DATABASE_URL or database.url)");
		return NULL;
	}
	if (cfg->database_password_file != NULL && cfg->database_password_file[0] != '\0') {
		password = mqtx_read_secret_file(cfg->database_password_file, err);
		if (password == NULL)
			return NULL;
	}
	snprintf(timeout, sizeof(timeout), "%lld", (long long)((cfg->database_connect_timeout_ms + 999) / 1000));
	/* dbname is expanded as a URL/conninfo; later keywords override it */
	const char *kw[] = {"dbname", "application_name", "connect_timeout", password ? "password" : NULL, NULL};
	const char *val[] = {url, application_name, timeout, password, NULL};
	PGconn *conn = PQconnectStartParams(kw, val, 1);
	if (password != NULL) { /* libpq has its own copy now */
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (conn == NULL) {
		mqtx_err_set(err, MQTX_E_DB, "cannot allocate a database connection");
		return NULL;
	}
	PQsetNoticeReceiver(conn, on_notice, NULL);
	const char *why = PQstatus(conn) == CONNECTION_BAD ? PQerrorMessage(conn)
							   : finish_connect(conn, cfg->database_connect_timeout_ms);
	if (why != NULL) {
		char *r = mqtx_redact(url);
		char msg[600];
		one_line_per_host(why, msg, sizeof(msg));
		mqtx_err_retry(err, MQTX_E_DB, "cannot connect to database '%s': %s", r, msg);
		free(r);
		PQfinish(conn);
		return NULL;
	}
	mqtx_stop_watch(PQsocket(conn));
	PGresult *res =
		PQexec(conn,
		       "SET search_path = pg_catalog; SET lock_timeout = '30s'; SET client_min_messages = warning");
	mqtx_stop_unwatch(PQsocket(conn));
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mqtx_pg_fail(conn, res, "cannot set up the session", err);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	if (check_names(conn, cfg, err) < 0) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

void mqtx_pg_close(PGconn *conn)
{
	if (conn != NULL)
		PQfinish(conn);
}

int mqtx_pg_socket(const PGconn *conn)
{
	return PQsocket(conn);
}

const char *mqtx_pg_dbname(const PGconn *conn)
{
	return PQdb(conn);
}

int mqtx_pg_fail(PGconn *conn, PGresult *res, const char *doing, struct mqtx_err *err)
{
	const char *msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	char text[700];
	snprintf(text, sizeof(text), "%s", msg != NULL && msg[0] != '\0' ? msg : "unknown error");
	text[strcspn(text, "\n")] = '\0';
	if (strncmp(text, "ERROR:  ", 8) == 0)
		memmove(text, text + 8, strlen(text + 8) + 1);
	bool lost = PQstatus(conn) != CONNECTION_OK;
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	/* class 08 connection exceptions, 57P01 admin shutdown, 40001/40P01 conflicts */
	if (state != NULL && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
			      strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
		lost = true;
	if (lost)
		mqtx_err_retry(err, MQTX_E_DB, "%s: %s", doing, text);
	else
		mqtx_err_set(err, MQTX_E_DB, "%s: %s", doing, text);
	if (res != NULL)
		PQclear(res);
	return -1;
}

/* Prepares name unless *prepared: NULL when it is, else the failed result. */
static PGresult *prepare_once(PGconn *conn, bool *prepared, const char *name, const char *sql, int n)
{
	if (*prepared)
		return NULL;
	PGresult *r = PQprepare(conn, name, sql, n, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return r;
	PQclear(r);
	*prepared = true;
	return NULL;
}

PGresult *mqtx_pg_exec_prepared(PGconn *conn, bool *prepared, const char *name, const char *sql, int n,
				const char *const *params, int binary)
{
	PGresult *r = prepare_once(conn, prepared, name, sql, n);
	return r != NULL ? r : PQexecPrepared(conn, name, n, params, NULL, NULL, binary);
}

int mqtx_pg_send_prepared(PGconn *conn, bool *prepared, const char *name, const char *sql, int n,
			  const char *const *params, int binary, const char *doing, struct mqtx_err *err)
{
	PGresult *r = prepare_once(conn, prepared, name, sql, n);
	if (r != NULL)
		return mqtx_pg_fail(conn, r, doing, err);
	/* libpq copies the parameters into its output buffer */
	if (!PQsendQueryPrepared(conn, name, n, params, NULL, NULL, binary))
		return mqtx_pg_fail(conn, NULL, doing, err);
	return 0;
}

int mqtx_pg_exec(PGconn *conn, const char *sql, struct mqtx_err *err)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return mqtx_pg_fail(conn, res, sql, err);
	PQclear(res);
	return 0;
}

char *mqtx_pg_ident(PGconn *conn, const char *name)
{
	char *q = PQescapeIdentifier(conn, name, strlen(name));
	if (q == NULL)
		abort(); /* out of memory: the name itself was checked (check_names) */
	char *s = mqtx_xstrdup(q);
	PQfreemem(q);
	return s;
}

/* libpq's message for a refused string, one line, or the first bad byte. */
static int quote_failed(PGconn *conn, const char *s, const char *role, const char *what, struct mqtx_err *err)
{
	size_t bad = mqtx_utf8_invalid_at(s);
	if (bad > 0)
		return mqtx_err_set(err, MQTX_E_CONFIG, "%s: not valid UTF-8 (byte %zu); cannot use it as %s", role,
				    bad, what);
	char msg[300];
	snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
	msg[strcspn(msg, "\n")] = '\0';
	const char *enc = PQparameterStatus(conn, "client_encoding");
	return mqtx_err_set(err, MQTX_E_CONFIG, "%s: cannot use it as %s in the connection's encoding %s: %s", role,
			    what, enc != NULL ? enc : "?", msg[0] != '\0' ? msg : "refused by libpq");
}

char *mqtx_pg_ident_checked(PGconn *conn, const char *name, const char *role, struct mqtx_err *err)
{
	char *q = PQescapeIdentifier(conn, name, strlen(name));
	if (q == NULL) {
		quote_failed(conn, name, role, "an SQL identifier", err);
		return NULL;
	}
	char *s = mqtx_xstrdup(q);
	PQfreemem(q);
	return s;
}

/* Reads the results after a COPY; the first failure sets err while rc is 0. */
static int drain_results(PGconn *conn, int rc, const char *doing, struct mqtx_err *err)
{
	PGresult *res;
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0)
			rc = mqtx_pg_fail(conn, res, doing, err);
		else
			PQclear(res);
	}
	return rc;
}

int mqtx_pg_copy_out(PGconn *conn, const char *sql, const char *doing, bool drain,
		     int (*fn)(void *ctx, char *line, size_t n, struct mqtx_err *err), void *ctx, struct mqtx_err *err)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
		return mqtx_pg_fail(conn, res, doing, err);
	PQclear(res);
	int rc = 0;
	for (;;) {
		char *line = NULL;
		int n = PQgetCopyData(conn, &line, 0);
		if (n == -1)
			break;
		if (n < 0)
			return rc < 0 ? rc : mqtx_pg_fail(conn, NULL, doing, err);
		if (rc == 0) {
			size_t len = (size_t)n;
			if (len > 0 && line[len - 1] == '\n')
				line[--len] = '\0';
			rc = fn(ctx, line, len, err);
		}
		PQfreemem(line);
		if (rc != 0 && !drain)
			return rc;
	}
	return drain_results(conn, rc, doing, err);
}

int mqtx_pg_copy_in_begin(PGconn *conn, const char *sql, const char *doing, struct mqtx_err *err)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		return mqtx_pg_fail(conn, res, doing, err);
	PQclear(res);
	return 0;
}

int mqtx_pg_copy_put(PGconn *conn, const char *data, size_t n, const char *doing, struct mqtx_err *err)
{
	if (n > 0 && PQputCopyData(conn, data, (int)n) != 1)
		return mqtx_pg_fail(conn, NULL, doing, err);
	return 0;
}

int mqtx_pg_copy_in_end(PGconn *conn, const char *abort_msg, const char *doing, struct mqtx_err *err)
{
	if (PQputCopyEnd(conn, abort_msg) != 1)
		return abort_msg != NULL ? -1 : mqtx_pg_fail(conn, NULL, doing, err);
	int rc = abort_msg != NULL ? -1 : 0;
	return drain_results(conn, rc, doing, err);
}

char *mqtx_pg_text_array(const char *const *v, size_t n)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			mqtx_buf_addc(&b, ',');
		mqtx_buf_addc(&b, '"');
		for (const char *p = v[i]; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				mqtx_buf_addc(&b, '\\');
			mqtx_buf_addc(&b, *p);
		}
		mqtx_buf_addc(&b, '"');
	}
	mqtx_buf_addc(&b, '}');
	return mqtx_buf_detach(&b);
}

char *mqtx_pg_int8_array(const int64_t *v, size_t n)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++)
		mqtx_buf_printf(&b, "%s%lld", i ? "," : "", (long long)v[i]);
	mqtx_buf_addc(&b, '}');
	return mqtx_buf_detach(&b);
}

int64_t mqtx_pg_get_i64(const PGresult *res, int row, int col)
{
	uint64_t v;
	memcpy(&v, PQgetvalue(res, row, col), 8);
	return (int64_t)be64toh(v);
}
