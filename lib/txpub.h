/* txpub: transactional publishing for shell scripts, RocketMQ-style half
 * messages through the outbox, and PostgreSQL PREPARE TRANSACTION as a
 * last-resource commit. The in-doubt listing and resolution below are
 * also what `mqtx check` and `mqtx check --resolve` call. */
#ifndef MQTX_TXPUB_H
#define MQTX_TXPUB_H

#include <libpq-fe.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* One in-doubt item, for `mqtx check`. Strings are borrowed for the
 * duration of the callback. */
struct mqtx_indoubt {
	const char *kind;   /* "half-message" (outbox row in status prepared) or "prepared-xact" (gid mqtx:<key>) */
	const char *key;    /* idempotency key */
	int64_t id;         /* outbox id, 0 for prepared transactions */
	int64_t age_ms;     /* since prepared */
	const char *detail; /* human-readable: what is known, what --resolve would do */
};

/* Lists prepared half messages older than txpub.check_after and every
 * prepared transaction whose gid starts with "mqtx:". Calls cb per item. */
int mqtx_txpub_list_in_doubt(PGconn *conn, const struct mqtx_config *cfg,
			     void (*cb)(void *ctx, const struct mqtx_indoubt *item), void *ctx, struct mqtx_err *err);

struct mqtx_resolve_stats {
	int64_t committed;   /* half messages made pending / prepared xacts committed */
	int64_t rolled_back; /* half messages rolled back / prepared xacts rolled back */
	int64_t unknown;     /* left for a later check */
	int64_t failed;      /* a check-back or a statement failed */
};

/* Resolves what is in doubt: half messages through the configured
 * check-back (txpub.check_sql or txpub.check_command; past
 * txpub.check_max_age the default action applies), prepared transactions
 * through the coordinator record (confirmed -> COMMIT PREPARED, else older
 * than the timeout -> ROLLBACK PREPARED). Every decision is logged with
 * its reason. */
int mqtx_txpub_resolve(PGconn *conn, const struct mqtx_config *cfg, struct mqtx_resolve_stats *st,
		       struct mqtx_err *err);

#endif
