/* Runs every unit test; the last line is "N passed, N failed". */
#include <stdio.h>

#include "unit.h"

#define X(name) void test_##name(int *failed_);
#include "tests.def"
#undef X

static const struct unit_test tests[] = {
#define X(name) {#name, test_##name},
#include "tests.def"
#undef X
};

int main(void)
{
	int passed = 0, failed = 0;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int f = 0;
		tests[i].fn(&f);
		printf("%s %zu - %s\n", f ? "not ok" : "ok", i + 1, tests[i].name);
		if (f)
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
