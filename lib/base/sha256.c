/* SHA-256 through libcrypto's EVP interface (see sha256.h). */
#include "base/sha256.h"

#include <openssl/evp.h>
#include <stdlib.h>

#include "base/log.h"

/* libcrypto fails here only when out of memory, or when SHA-256 is not
 * available at all (a broken OpenSSL configuration): no input causes it,
 * neither can be worked around, and a wrong key must never be produced. So,
 * like mqtx_xmalloc, this aborts rather than return an error every caller
 * would have to carry for a state that cannot be recovered from; the reason
 * goes through the log (its format and stream), not straight to stderr. */
static void crypto_die(const char *what)
{
	mqtx_error("fatal: SHA-256 (libcrypto): %s failed", what);
	abort();
}

void mqtx_sha256_init(struct mqtx_sha256 *s)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		crypto_die("EVP_MD_CTX_new");
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		crypto_die("EVP_DigestInit_ex");
	s->ctx = ctx;
}

void mqtx_sha256_update(struct mqtx_sha256 *s, const void *data, size_t n)
{
	if (n > 0 && EVP_DigestUpdate(s->ctx, data, n) != 1)
		crypto_die("EVP_DigestUpdate");
}

void mqtx_sha256_final(struct mqtx_sha256 *s, unsigned char out[32])
{
	unsigned int len = 0;
	if (EVP_DigestFinal_ex(s->ctx, out, &len) != 1 || len != 32)
		crypto_die("EVP_DigestFinal_ex");
	EVP_MD_CTX_free(s->ctx);
	s->ctx = NULL;
}

void mqtx_sha256_hex(struct mqtx_sha256 *s, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[32];
	mqtx_sha256_final(s, d);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}
