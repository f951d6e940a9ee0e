/* SHA-256 for txpub's derived idempotency keys, computed by OpenSSL's
 * libcrypto (which uses the CPU's SHA instructions where it has them; the
 * digest is the same everywhere). Not for secrets. */
#ifndef MQTX_SHA256_H
#define MQTX_SHA256_H

#include <stddef.h>

/* init, update..., then final or hex, which also release it. */
struct mqtx_sha256 {
	void *ctx; /* EVP_MD_CTX, owned */
};

void mqtx_sha256_init(struct mqtx_sha256 *s);
void mqtx_sha256_update(struct mqtx_sha256 *s, const void *data, size_t n);
void mqtx_sha256_final(struct mqtx_sha256 *s, unsigned char out[32]);
/* Lower-case hex digest of what was hashed: 64 characters and a NUL. */
void mqtx_sha256_hex(struct mqtx_sha256 *s, char out[65]);

#endif
