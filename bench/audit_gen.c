/*
 * audit_gen - deliveries for the dedupe-audit benchmark, as JSONL on stdout.
 *
 *   audit_gen N [PREFIX]
 *
 * Pretends a consumer saw the outbox rows 1..N whose keys are PREFIX<id>
 * (default "bench-"), with ordering keys "k" + id % 1000, and plants known
 * faults at fixed places so that the audit's counts can be checked:
 *   - every 100,000th id (100000, 200000, ...) is never delivered  -> missing
 *   - every 100,000th id + 7 is delivered twice                    -> duplicate
 *   - every 100,000th id + 11 comes after id + 1011 (the next row of
 *     its ordering key), so it is late                             -> out of order
 *   - one stranger key after id 500,001, 1,500,001, ...                    -> stranger
 * It prints the expected counts on stderr. The outbox side is made with SQL
 * (see bench/audit.sh).
 *
 *   cc -std=c11 -O2 -o bench/bin/audit_gen bench/audit_gen.c
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[1 << 20];
static size_t used;

static void flush(void)
{
	if (fwrite(out, 1, used, stdout) != used) {
		perror("audit_gen: write");
		exit(1);
	}
	used = 0;
}

static void line(const char *prefix, long long id, long long ts)
{
	if (used > sizeof(out) - 256)
		flush();
	used += (size_t)snprintf(out + used, sizeof(out) - used, "{\"key\":\"%s%lld\",\"id\":%lld,\"ts\":%lld}\n",
				 prefix, id, id, ts);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: audit_gen N [PREFIX]\n");
		return 2;
	}
	long long n = atoll(argv[1]);
	const char *prefix = argc > 2 ? argv[2] : "bench-";
	long long ts0 = 1700000000000LL;
	long long missing = 0, dups = 0, late = 0, strangers = 0;
	for (long long id = 1; id <= n; id++) {
		long long r = id % 100000;
		if (r == 0) {
			missing++;
			continue;
		}
		if (r == 11 && id + 1000 <= n) {
			/* the next row of this ordering key first, then this one */
			line(prefix, id + 1000, ts0 + id);
			line(prefix, id, ts0 + id);
			late++;
			continue;
		}
		if (r == 1011 && id > 1000)
			continue; /* already sent early */
		line(prefix, id, ts0 + id);
		if (r == 7) {
			line(prefix, id, ts0 + id + 1);
			dups++;
		}
		if (id % 1000000 == 500001) {
			if (used > sizeof(out) - 256)
				flush();
			used += (size_t)snprintf(out + used, sizeof(out) - used, "{\"key\":\"stranger-%lld\"}\n", id);
			strangers++;
		}
	}
	flush();
	fprintf(stderr, "audit_gen: expect missing %lld, duplicated keys %lld, out of order %lld, strangers %lld\n",
		missing, dups, late, strangers);
	return 0;
}
