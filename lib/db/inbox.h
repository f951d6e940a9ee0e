/* The SQL of dedupe-audit's inbox source: a consumer's processed-messages
 * table, on a connection of its own (which may be another database).
 * Checks the table and its mapped columns (audit.inbox_*), reports its
 * idempotency guard (a unique constraint or unique index on the key
 * column alone) and streams its rows with COPY ... TO STDOUT, in
 * processing order when a time column is mapped. */
#ifndef MQTX_DB_INBOX_H
#define MQTX_DB_INBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "config/config.h"

struct mqtx_inbox;

/* Connects to url (NULL: audit.inbox_database_url, else database.url) and
 * quotes the configured names; table overrides audit.inbox_table when not
 * NULL. cfg is borrowed and must outlive in. */
struct mqtx_inbox *mqtx_inbox_connect(const struct mqtx_config *cfg, const char *url, const char *table,
				      struct mqtx_err *err);
void mqtx_inbox_free(struct mqtx_inbox *in);
/* "schema"."table", quoted; borrowed. */
const char *mqtx_inbox_table(const struct mqtx_inbox *in);
/* Checks that the table and the mapped columns exist and have fitting
 * types (MQTX_E_CONFIG when not), and looks for the key's unique guard. */
int mqtx_inbox_check(struct mqtx_inbox *in, struct mqtx_err *err);
/* After mqtx_inbox_check: "unique constraint x" / "primary key y" /
 * "unique index z", or NULL when the key column has no unique guard. */
const char *mqtx_inbox_unique_by(const struct mqtx_inbox *in);
/* Whether a time column (audit.inbox_ts_column) orders the rows. */
bool mqtx_inbox_ordered(const struct mqtx_inbox *in);

/* Streams the rows: each is one COPY text line of four fields (key, outbox
 * id, ordering key, processing time in microseconds since the epoch, each
 * may be \N), line[0..n) NUL-terminated, borrowed for the call. row returns
 * 0 to go on, 1 to stop, -1 with err to fail; stopping or failing ends the
 * connection (the COPY cannot be left half read). Returns 0 at the end or
 * after a stop, -1 with err. */
int mqtx_inbox_read(struct mqtx_inbox *in, int (*row)(void *ctx, char *line, size_t n, struct mqtx_err *err), void *ctx,
		    struct mqtx_err *err);

#endif
