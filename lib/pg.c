/* PostgreSQL connection helpers (see pg.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

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
	mqtx_buf_printf(&b, "database: %s: %s", shown != NULL ? shown : sev != NULL ? sev : "NOTICE",
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
	else if (server && sev != NULL && (strcmp(sev, "NOTICE") == 0 || strcmp(sev, "INFO") == 0 || strcmp(sev, "LOG") == 0))
		level = MQTX_LOG_INFO;
	mqtx_log(level, "%s", b.data);
	mqtx_buf_free(&b);
}

PGconn *mqtx_pg_connect(const struct mqtx_config *cfg, const char *application_name, struct mqtx_err *err)
{
	const char *url = cfg->database_url;
	char *password = NULL;
	char timeout[32];

	if (url == NULL || url[0] == '\0') {
		mqtx_err_set(err, MQTX_E_CONFIG, "no database URL (set --database-url, MQTX_DATABASE_URL or database.url)");
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
	PGconn *conn = PQconnectdbParams(kw, val, 1);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (conn == NULL) {
		mqtx_err_set(err, MQTX_E_DB, "cannot allocate a database connection");
		return NULL;
	}
	PQsetNoticeReceiver(conn, on_notice, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		char *r = mqtx_redact(url);
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		msg[strcspn(msg, "\n")] = '\0';
		mqtx_err_retry(err, MQTX_E_DB, "cannot connect to database '%s': %s", r, msg);
		free(r);
		PQfinish(conn);
		return NULL;
	}
	PGresult *res = PQexec(conn, "SET search_path = pg_catalog; SET lock_timeout = '30s'; SET client_min_messages = warning");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mqtx_pg_fail(conn, res, "cannot set up the session", err);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
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
		abort();
	char *s = mqtx_xstrdup(q);
	PQfreemem(q);
	return s;
}
