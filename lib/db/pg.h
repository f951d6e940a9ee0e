/* PostgreSQL connection helpers: connecting with secrets kept out of argv
 * and messages, and translating libpq failures into struct mqtx_err. */
#ifndef MQTX_PG_H
#define MQTX_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "base/error.h"

/* Connects to cfg->database_url (password from database.password_file
 * when set). Returns an owned connection (PQfinish it) or NULL with err;
 * MQTX_E_CONFIG when a configured identifier (outbox.table, ...) is text
 * libpq refuses to quote in the connection's encoding. */
PGconn *mqtx_pg_connect(const struct mqtx_config *cfg, const char *application_name, struct mqtx_err *err);
/* Closes conn (NULL: nothing). */
void mqtx_pg_close(PGconn *conn);
/* The connection's socket (for poll and stop watches), -1 when none. */
int mqtx_pg_socket(const PGconn *conn);
/* The database name the connection is to; borrowed. */
const char *mqtx_pg_dbname(const PGconn *conn);
/* Fills err from a failed result (or the connection when res is NULL) and
 * clears res. Connection loss is marked retriable. Returns -1. */
int mqtx_pg_fail(PGconn *conn, PGresult *res, const char *doing, struct mqtx_err *err);
/* Runs a parameterless command (BEGIN, COMMIT, ...). */
int mqtx_pg_exec(PGconn *conn, const char *sql, struct mqtx_err *err);
/* Runs the statement NAME with params, preparing it from sql first when
 * *prepared is false (then sets it). A statement run once per batch is
 * planned once per connection this way. The result is the caller's to
 * check and PQclear, as PQexecPrepared's (a failed PREPARE's result too). */
PGresult *mqtx_pg_exec_prepared(PGconn *conn, bool *prepared, const char *name, const char *sql, int n,
				const char *const *params, int binary);
/* The same, sent without waiting for it: 0 (the caller takes the result
 * with PQgetResult until NULL before its next statement), -1 with err
 * ("doing: why") when the PREPARE or the send failed. */
int mqtx_pg_send_prepared(PGconn *conn, bool *prepared, const char *name, const char *sql, int n,
			  const char *const *params, int binary, const char *doing, struct mqtx_err *err);
/* Returns an owned, quoted identifier ("a""b"), or NULL with err when
 * libpq refuses name (text not valid in the connection's encoding: libpq
 * will not quote it, see CVE-2025-1094). role names the value in the
 * message ("outbox.table"). A configuration error: MQTX_E_CONFIG. */
char *mqtx_pg_ident_checked(PGconn *conn, const char *name, const char *role, struct mqtx_err *err);
/* Returns an owned, quoted identifier ("a""b"), for a name that libpq
 * accepts on this connection: the configuration's identifiers are checked
 * by mqtx_pg_connect, other names go through mqtx_pg_ident_checked. NULL
 * can then only mean out of memory, which abort()s like mqtx_xmalloc. */
char *mqtx_pg_ident(PGconn *conn, const char *name);
/* Runs a COPY ... TO STDOUT and hands each row (one text line, line[0..n)
 * without the newline, NUL-terminated, borrowed for the call) to fn, which
 * returns 0 to go on, 1 to stop or -1 with err. With drain, rows after a
 * stop or failure are read and dropped, so the connection stays usable;
 * without, it returns at once and the COPY is left unfinished: the caller
 * must close the connection. doing names the step in errors. Returns 0
 * when every row was read, 1 after a stop, -1 with err. */
int mqtx_pg_copy_out(PGconn *conn, const char *sql, const char *doing, bool drain,
		     int (*fn)(void *ctx, char *line, size_t n, struct mqtx_err *err), void *ctx, struct mqtx_err *err);

/* Array literals for a text[] or int8[] parameter (owned): every text
 * element double-quoted, " and \ escaped. */
char *mqtx_pg_text_array(const char *const *v, size_t n);
char *mqtx_pg_int8_array(const int64_t *v, size_t n);
/* The int8 at (row, col) of a binary-format result (not NULL). */
int64_t mqtx_pg_get_i64(const PGresult *res, int row, int col);
/* COPY ... FROM STDIN: begin runs sql, put sends rows (COPY text), end
 * finishes it, or aborts it with abort_msg (then it returns -1 and leaves
 * err alone: the caller's err says why). doing names the step in errors. */
int mqtx_pg_copy_in_begin(PGconn *conn, const char *sql, const char *doing, struct mqtx_err *err);
int mqtx_pg_copy_put(PGconn *conn, const char *data, size_t n, const char *doing, struct mqtx_err *err);
int mqtx_pg_copy_in_end(PGconn *conn, const char *abort_msg, const char *doing, struct mqtx_err *err);

#endif
