/* Inside dedupe-audit: what a source reader gets and how it hands over
 * deliveries. Private to lib/audit/. */
#ifndef MQTX_AUDIT_SOURCE_H
#define MQTX_AUDIT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "config/config.h"
#include "base/error.h"

struct audit_sink;

struct audit_ctx {
	const struct mqtx_config *cfg;
	const struct mqtx_audit_opts *o;
	struct mqtx_audit_report *rep; /* readers set kind, position, detail; inbox: the table facts */
	struct audit_sink *sink;
	int64_t idle_timeout_ms;
	bool order_meaningful;     /* readers clear it when delivery order means nothing (inbox without ts) */
	char *default_destination; /* owned; the destination the source receives, when it knows (a Kafka topic) */
};

/* Queues one delivery for the database. 0, or -1 with err. Broker
 * sources come through mqtx_broker_read() (broker/broker.h), whose records
 * audit.c hands here; the readers below are the ones that are not brokers. */
int audit_emit(struct audit_sink *s, const struct mqtx_read_record *d, struct mqtx_err *err);

int audit_read_jsonl(struct audit_ctx *c, const char *path, struct mqtx_err *err);
/* url: a PostgreSQL URL, or NULL for audit.inbox_database_url / database.url;
 * table: overrides audit.inbox_table when non-NULL. */
int audit_read_inbox(struct audit_ctx *c, const char *url, const char *table, struct mqtx_err *err);

/* An external sort of fixed-size records (lib/audit/sort.c): memory stays at
 * mem_bytes plus a small buffer per spilled run. Add everything, rewind,
 * then take records in order with next() (NULL at the end, or on an error
 * with *failed set); rewind again to read them once more. */
struct audit_sorter;
struct audit_sorter *audit_sorter_new(size_t rec_size, int (*cmp)(const void *, const void *), size_t mem_bytes);
int audit_sorter_add(struct audit_sorter *s, const void *rec, struct mqtx_err *err);
int audit_sorter_rewind(struct audit_sorter *s, struct mqtx_err *err);
const void *audit_sorter_next(struct audit_sorter *s, void *out, struct mqtx_err *err, int *failed);
int64_t audit_sorter_count(const struct audit_sorter *s);
void audit_sorter_free(struct audit_sorter *s);

/* One field of a COPY text row, decoded in place and NUL-terminated. */
struct audit_field {
	char *s;
	size_t len;
	bool null;
};
/* Splits a COPY text row (line[0..n), n not counting the
 * terminator libpq adds) into at most want fields; returns how many. */
int audit_copy_split(char *line, size_t n, struct audit_field *f, int want);

#endif
