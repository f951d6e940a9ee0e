/* PostgreSQL connection helpers: connecting with secrets kept out of argv
 * and messages, and translating libpq failures into struct mqtx_err. */
#ifndef MQTX_PG_H
#define MQTX_PG_H

#include <libpq-fe.h>

#include "config.h"
#include "error.h"

/* Connects to cfg->database_url (password from database.password_file
 * when set). Returns an owned connection (PQfinish it) or NULL with err. */
PGconn *mqtx_pg_connect(const struct mqtx_config *cfg, const char *application_name, struct mqtx_err *err);
/* Fills err from a failed result (or the connection when res is NULL) and
 * clears res. Connection loss is marked retriable. Returns -1. */
int mqtx_pg_fail(PGconn *conn, PGresult *res, const char *doing, struct mqtx_err *err);
/* Runs a parameterless command (BEGIN, COMMIT, ...). */
int mqtx_pg_exec(PGconn *conn, const char *sql, struct mqtx_err *err);
/* Returns an owned, quoted identifier ("a""b"), abort()s on OOM. */
char *mqtx_pg_ident(PGconn *conn, const char *name);

#endif
