/* Unit tests for dedupe-audit's pure parts: positions and times, and the
 * external sort with runs spilled to temporary files. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>

#include "audit/audit.h"
#include "audit/source.h"
#include "unit.h"

TEST(audit_positions)
{
	struct mqtx_read_pos p;
	struct mqtx_err e;
	int64_t now = 1714564800000000LL; /* 2024-05-01T12:00:00Z */
	CHECK(mqtx_audit_parse_pos("first", "--from", now, &p, &e) == 0 && p.kind == MQTX_READ_POS_FIRST);
	CHECK(mqtx_audit_parse_pos("0", "--from", now, &p, &e) == 0 && p.kind == MQTX_READ_POS_OFFSET && p.offset == 0);
	CHECK(mqtx_audit_parse_pos("12345", "--to", now, &p, &e) == 0 && p.offset == 12345);
	CHECK(mqtx_audit_parse_pos("2h", "--from", now, &p, &e) == 0 && p.kind == MQTX_READ_POS_TIME &&
	      p.time_us == now - 7200000000LL);
	CHECK(mqtx_audit_parse_pos("2024-05-01T12:00:00Z", "--from", now, &p, &e) == 0 && p.time_us == now);
	CHECK(mqtx_audit_parse_pos("2024-05-01T14:00:00.250+02:00", "--from", now, &p, &e) == 0 &&
	      p.time_us == now + 250000);
	CHECK(mqtx_audit_parse_pos("-3", "--from", now, &p, &e) < 0 && e.kind == MQTX_E_USAGE);
	CHECK_CONTAINS(e.msg, "--from '-3'");
	CHECK(mqtx_audit_parse_pos("2024-05-01T12:00:00", "--from", now, &p, &e) < 0); /* no zone */
	CHECK(mqtx_audit_parse_pos("", "--from", now, &p, &e) < 0);
}

TEST(audit_times)
{
	int64_t us;
	struct mqtx_err e;
	char buf[40];
	CHECK(mqtx_audit_parse_time("2024-02-29", "--since", 0, &us, &e) == 0 && us == 1709164800000000LL);
	CHECK(mqtx_audit_parse_time("42", "--since", 0, &us, &e) < 0); /* no offsets here */
	CHECK(mqtx_audit_parse_time("2024-13-01T00:00:00Z", "--since", 0, &us, &e) < 0);
	mqtx_audit_format_time(1714564800123456LL, buf, sizeof(buf));
	CHECK_STR(buf, "2024-05-01T12:00:00.123Z");
	mqtx_audit_format_time(0, buf, sizeof(buf));
	CHECK_STR(buf, "1970-01-01T00:00:00.000Z");
}

struct rec {
	int64_t k;
	int64_t v;
};

static int cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return x->v < y->v ? -1 : x->v > y->v;
}

TEST(audit_external_sort)
{
	struct mqtx_err e;
	/* 1 KiB of memory: 1024 records a run at the least, so 50,000 records spill ~49 runs */
	struct audit_sorter *s = audit_sorter_new(sizeof(struct rec), cmp_rec, 1024);
	uint64_t x = 88172645463325252ULL;
	int64_t sum = 0;
	for (int i = 0; i < 50000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		struct rec r = {(int64_t)(x % 10000), i};
		sum += r.k;
		CHECK(audit_sorter_add(s, &r, &e) == 0);
	}
	CHECK(audit_sorter_count(s) == 50000);
	for (int pass = 0; pass < 2; pass++) {
		CHECK(audit_sorter_rewind(s, &e) == 0);
		struct rec r, prev = {-1, -1};
		int failed = 0, n = 0;
		int64_t got = 0;
		while (audit_sorter_next(s, &r, &e, &failed) != NULL) {
			CHECK(cmp_rec(&prev, &r) < 0);
			prev = r;
			got += r.k;
			n++;
		}
		CHECK(failed == 0);
		CHECK(n == 50000);
		CHECK(got == sum);
	}
	audit_sorter_free(s);

	/* everything in memory, and nothing at all */
	s = audit_sorter_new(sizeof(struct rec), cmp_rec, 1 << 20);
	struct rec a = {2, 0}, b = {1, 0}, r;
	int failed = 0;
	CHECK(audit_sorter_add(s, &a, &e) == 0 && audit_sorter_add(s, &b, &e) == 0);
	CHECK(audit_sorter_rewind(s, &e) == 0);
	CHECK(audit_sorter_next(s, &r, &e, &failed) != NULL && r.k == 1);
	CHECK(audit_sorter_next(s, &r, &e, &failed) != NULL && r.k == 2);
	CHECK(audit_sorter_next(s, &r, &e, &failed) == NULL && failed == 0);
	audit_sorter_free(s);
	s = audit_sorter_new(sizeof(struct rec), cmp_rec, 1 << 20);
	CHECK(audit_sorter_rewind(s, &e) == 0);
	CHECK(audit_sorter_next(s, &r, &e, &failed) == NULL && failed == 0);
	audit_sorter_free(s);
}
