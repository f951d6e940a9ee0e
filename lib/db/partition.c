/* Outbox partitions (see partition.h). */
#define _POSIX_C_SOURCE 200809L
#include "db/partition.h"

int mqtx_partitions_maintain(PGconn *conn, const struct mqtx_config *cfg, const char *deletable_sql,
			     int64_t deadline_ms, int64_t *created, int64_t *dropped, char *warning, size_t wsize,
			     struct mqtx_err *err)
{
	(void)conn, (void)cfg, (void)deletable_sql, (void)deadline_ms, (void)created, (void)dropped, (void)warning,
		(void)wsize, (void)err;
	return 0;
}
