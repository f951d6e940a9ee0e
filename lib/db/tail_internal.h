/* Inside lib/db/tail*.c only. */
#ifndef MQTX_DB_TAIL_INTERNAL_H
#define MQTX_DB_TAIL_INTERNAL_H

#include <stdbool.h>

#include "db/tail.h"

struct mqtx_tail_relay; /* the relay's statements and bucket state (tail_relay.c) */

struct mqtx_tail {
	PGconn *conn;
	struct mqtx_outbox *ob;
	const struct mqtx_config *cfg;
	char *cp;     /* "schema".mqtx_tail_checkpoints */
	char *parked; /* "schema".mqtx_tail_parked */
	char *lit;    /* the outbox name as an SQL literal */
	int32_t lock_class;
	const char *q[MQTX_COL__COUNT]; /* borrowed from ob */
	int nbuckets;
	struct mqtx_tail_relay *relay; /* NULL unless the relay uses tl */
	bool prepared[3];              /* the relay's per-batch statements, prepared on conn (tail_relay.c) */
};

void mqtx_tail_relay_free_state(struct mqtx_tail *tl);

#endif
