/* The database limit for `make bench`: a minimal libpq loop that claims
 * pending outbox rows in batches (FOR UPDATE SKIP LOCKED, the same columns
 * the relay reads) and marks them sent, with no broker.
 * usage: pg_claim CONNINFO SCHEMA BATCH   -> prints "ROWS SECONDS" */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static PGresult *run(PGconn *c, const char *sql, int n, const char *const *p, ExecStatusType want)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 1);
	if (PQresultStatus(r) != want) {
		fprintf(stderr, "pg_claim: %s", PQerrorMessage(c));
		exit(2);
	}
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: pg_claim CONNINFO SCHEMA BATCH\n");
		return 2;
	}
	PGconn *c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg_claim: %s", PQerrorMessage(c));
		return 2;
	}
	char *schema = PQescapeIdentifier(c, argv[2], strlen(argv[2]));
	char claim[512], mark[512];
	snprintf(claim, sizeof(claim),
		 "SELECT id, idempotency_key, destination, routing_key, headers::text, payload FROM %s.mqtx_outbox "
		 "WHERE status = 'pending' AND available_at <= now() ORDER BY id LIMIT $1::int8 FOR UPDATE SKIP LOCKED",
		 schema);
	snprintf(mark, sizeof(mark),
		 "UPDATE %s.mqtx_outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1::int8[])",
		 schema);
	const char *batch[1] = {argv[3]};
	long total = 0;
	double t0 = now();
	for (;;) {
		PQclear(run(c, "BEGIN", 0, NULL, PGRES_COMMAND_OK));
		PGresult *r = run(c, claim, 1, batch, PGRES_TUPLES_OK);
		int n = PQntuples(r);
		if (n == 0) {
			PQclear(r);
			PQclear(run(c, "COMMIT", 0, NULL, PGRES_COMMAND_OK));
			break;
		}
		/* ids as a text array literal, as the relay sends them */
		size_t cap = (size_t)n * 24 + 4, len = 0;
		char *ids = malloc(cap);
		ids[len++] = '{';
		for (int i = 0; i < n; i++) {
			unsigned long long v = 0;
			const unsigned char *b = (const unsigned char *)PQgetvalue(r, i, 0);
			for (int k = 0; k < 8; k++)
				v = v << 8 | b[k];
			len += (size_t)snprintf(ids + len, cap - len, "%s%llu", i ? "," : "", v);
		}
		ids[len++] = '}';
		ids[len] = '\0';
		PQclear(r);
		const char *p[1] = {ids};
		PGresult *u = PQexecParams(c, mark, 1, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(u) != PGRES_COMMAND_OK) {
			fprintf(stderr, "pg_claim: %s", PQerrorMessage(c));
			return 2;
		}
		PQclear(u);
		free(ids);
		PQclear(run(c, "COMMIT", 0, NULL, PGRES_COMMAND_OK));
		total += n;
	}
	printf("%ld %.3f\n", total, now() - t0);
	PQfreemem(schema);
	PQfinish(c);
	return 0;
}
