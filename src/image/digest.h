/* Content digests ("sha256:<64 lowercase hex>") and streaming SHA-256.
 *
 * Every blob lamina stores or unpacks is hashed while it streams, never after
 * the fact.  Only sha256 is accepted; other algorithms get a clear error. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

#define LM_DIGEST_LEN (7 + 64)          /* "sha256:" + hex */
#define LM_DIGEST_SIZE (LM_DIGEST_LEN + 1)

/* 0 when digest is a well-formed sha256 digest. */
int lm_digest_validate(const char *digest, struct lm_error *err);
/* The 64 hex characters after "sha256:" (digest must be valid). */
const char *lm_digest_hex(const char *digest);

struct lm_sha256;
struct lm_sha256 *lm_sha256_new(void);
void lm_sha256_update(struct lm_sha256 *h, const void *data, size_t len);
/* Writes "sha256:<hex>" into out (LM_DIGEST_SIZE bytes) and frees h. */
void lm_sha256_final(struct lm_sha256 *h, char out[LM_DIGEST_SIZE]);
void lm_sha256_free(struct lm_sha256 *h);
/* Digest of a whole buffer. */
void lm_sha256_buffer(const void *data, size_t len, char out[LM_DIGEST_SIZE]);
