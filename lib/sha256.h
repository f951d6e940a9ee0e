/* SHA-256 (FIPS 180-4), for txpub's derived idempotency keys. Small and
 * self-contained: the keys must not depend on which crypto library is
 * installed. Not for secrets. */
#ifndef MQTX_SHA256_H
#define MQTX_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct mqtx_sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	unsigned char block[64];
	size_t fill;
};

void mqtx_sha256_init(struct mqtx_sha256 *s);
void mqtx_sha256_update(struct mqtx_sha256 *s, const void *data, size_t n);
void mqtx_sha256_final(struct mqtx_sha256 *s, unsigned char out[32]);
/* Lower-case hex digest of what was hashed: 64 characters and a NUL. */
void mqtx_sha256_hex(struct mqtx_sha256 *s, char out[65]);

#endif
