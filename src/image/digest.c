/* See digest.h.  OpenSSL's EVP interface does the hashing. */
#include "image/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lm_sha256 {
	EVP_MD_CTX *ctx;
};

int lm_digest_validate(const char *digest, struct lm_error *err)
{
	if (!digest)
		return lm_err(err, EINVAL, "missing digest");
	const char *colon = strchr(digest, ':');
	if (!colon || colon == digest)
		return lm_err(err, EINVAL, "invalid digest \"%.80s\": expected algorithm:hex", digest);
	if ((size_t)(colon - digest) != 6 || strncmp(digest, "sha256", 6) != 0)
		return lm_err(err, ENOTSUP, "digest \"%.80s\": only sha256 is supported", digest);
	const char *hex = colon + 1;
	size_t n = strlen(hex);
	if (n != 64)
		return lm_err(err, EINVAL, "invalid digest \"%.80s\": expected 64 hex characters", digest);
	for (size_t i = 0; i < n; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			return lm_err(err, EINVAL, "invalid digest \"%.80s\": not lowercase hex", digest);
	return 0;
}

const char *lm_digest_hex(const char *digest)
{
	return digest + 7;
}

struct lm_sha256 *lm_sha256_new(void)
{
	struct lm_sha256 *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		lm_sha256_free(h);
		return NULL;
	}
	return h;
}

void lm_sha256_update(struct lm_sha256 *h, const void *data, size_t len)
{
	EVP_DigestUpdate(h->ctx, data, len);
}

void lm_sha256_final(struct lm_sha256 *h, char out[LM_DIGEST_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_DigestFinal_ex(h->ctx, md, &len);
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < len && i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
	out[LM_DIGEST_LEN] = '\0';
	lm_sha256_free(h);
}

void lm_sha256_free(struct lm_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void lm_sha256_buffer(const void *data, size_t len, char out[LM_DIGEST_SIZE])
{
	struct lm_sha256 *h = lm_sha256_new();
	if (!h) {
		memset(out, 0, LM_DIGEST_SIZE);
		return;
	}
	lm_sha256_update(h, data, len);
	lm_sha256_final(h, out);
}
