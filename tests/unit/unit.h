/* A minimal unit test runner: TEST(name) { CHECK(...); } and a registry.
 * Output ends with "N passed, N failed". */
#ifndef MQTX_UNIT_H
#define MQTX_UNIT_H

#include <stdio.h>
#include <string.h>

struct unit_test {
	const char *name;
	void (*fn)(int *failed);
};

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			*failed_ = 1;                                                              \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                                    \
	do {                                                                                               \
		const char *a_ = (a), *b_ = (b);                                                           \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                     \
			fprintf(stderr, "  %s:%d: '%s' != '%s'\n", __FILE__, __LINE__, a_ ? a_ : "(null)", \
				b_ ? b_ : "(null)");                                                       \
			*failed_ = 1;                                                                      \
		}                                                                                          \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                                                  \
	do {                                                                                         \
		const char *h_ = (hay), *n_ = (needle);                                              \
		if (h_ == NULL || strstr(h_, n_) == NULL) {                                          \
			fprintf(stderr, "  %s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__, \
				h_ ? h_ : "(null)", n_);                                             \
			*failed_ = 1;                                                                \
		}                                                                                    \
	} while (0)

#define TEST(name)                      \
	void test_##name(int *failed_); \
	void test_##name(int *failed_)

#endif
