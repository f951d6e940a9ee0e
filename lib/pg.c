/* PostgreSQL connection helpers (see pg.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "pg.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stop.h"
#include "util.h"

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
	PGconn *conn = PQconnectStartParams(kw, val, 1);
	if (password != NULL) { /* libpq has its own copy now */
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (conn == NULL) {
		mqtx_err_set(err, MQTX_E_DB, "cannot allocate a database connection");
		return NULL;
	}
	const char *why = PQstatus(conn) == CONNECTION_BAD ? PQerrorMessage(conn)
							    : finish_connect(conn, cfg->database_connect_timeout_ms);
	if (why != NULL) {
		char *r = mqtx_redact(url);
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", why);
		msg[strcspn(msg, "\n")] = '\0';
		mqtx_err_retry(err, MQTX_E_DB, "cannot connect to database '%s': %s", r, msg);
		free(r);
		PQfinish(conn);
		return NULL;
	}
	mqtx_stop_watch(PQsocket(conn));
	PGresult *res = PQexec(conn, "SET search_path = pg_catalog; SET lock_timeout = '30s'; SET client_min_messages = warning");
	mqtx_stop_unwatch(PQsocket(conn));
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
