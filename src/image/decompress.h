/* Streaming layer decompression: pull-style readers from a source to a tar stream.
 *
 * A layer blob flows source -> lm_decompress -> unpacker without ever being
 * held in memory: the unpacker pulls uncompressed bytes, the decompressor
 * pulls compressed bytes from the source as it needs them.  gzip goes
 * through ISA-L's igzip (several times faster than zlib), zstd through
 * libzstd; both accept concatenated members/frames, as the formats allow.
 *
 * While streaming, the uncompressed bytes are hashed: after EOF the layer's
 * diff_id is available for the caller to check against the image config's
 * rootfs.diff_ids.  The total uncompressed size is bounded (a small blob
 * must not inflate into a full disk).  Corrupt or truncated input is an
 * error, never a silently short stream: a gzip member must end with its
 * trailer (CRC and size checked), a zstd frame must be complete, and bytes
 * after the last member that are not another member are an error.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/digest.h"
#include "util/error.h"

/* A pull-style byte source.  read returns the number of bytes stored (at
 * most len, possibly fewer), 0 at EOF, or -1 with errno set.  error, when
 * set, gives a message for the last failed read that says more than errno
 * ("gzip: truncated stream"); it may be NULL. */
struct lm_reader {
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	const char *(*error)(void *ctx);
	void *ctx;
};

enum lm_compression {
	LM_COMPRESSION_AUTO,  /* sniff the magic bytes (only for lm_decompress_open) */
	LM_COMPRESSION_NONE,
	LM_COMPRESSION_GZIP,
	LM_COMPRESSION_ZSTD,
};

/* Default bound on the uncompressed size of one layer. */
#define LM_DECOMPRESS_DEFAULT_LIMIT (UINT64_C(64) << 30)

struct lm_decompress;

/* Start decompressing src (which must outlive the decompressor).  AUTO
 * reads the first bytes to choose: 1f 8b gzip, 28 b5 2f fd zstd, anything
 * else (including an empty stream) plain.  limit bounds the total
 * uncompressed bytes (0 = LM_DECOMPRESS_DEFAULT_LIMIT); going past it is an
 * EFBIG error. */
int lm_decompress_open(const struct lm_reader *src, enum lm_compression compression, uint64_t limit,
		       struct lm_decompress **out, struct lm_error *err);
void lm_decompress_free(struct lm_decompress *d);

/* Up to len uncompressed bytes; 0 at the end of the stream; negative with
 * err filled on error.  After an error every later call fails the same way. */
ssize_t lm_decompress_read(struct lm_decompress *d, void *buf, size_t len, struct lm_error *err);

/* The same stream as an lm_reader (owned by d), for lm_unpack: a failed read
 * sets errno to the error's code and .error returns its message. */
struct lm_reader *lm_decompress_reader(struct lm_decompress *d);

/* The format in use (after AUTO: the sniffed one). */
enum lm_compression lm_decompress_format(const struct lm_decompress *d);
/* Bytes taken from the source / produced so far. */
uint64_t lm_decompress_bytes_in(const struct lm_decompress *d);
uint64_t lm_decompress_bytes_out(const struct lm_decompress *d);

/* "sha256:..." of all uncompressed bytes; an error before the stream has
 * been read to its end (a partial digest would be a lie). */
int lm_decompress_diff_id(const struct lm_decompress *d, char out[LM_DIGEST_SIZE], struct lm_error *err);

/* "none", "gzip", "zstd" ("auto" for AUTO). */
const char *lm_compression_name(enum lm_compression c);

/* The compression a layer media type declares: the OCI layer types
 * (application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]), their
 * nondistributable variants, and Docker's
 * application/vnd.docker.image.rootfs[.foreign].diff.tar[.gzip|.zstd].
 * Anything else is ENOTSUP "unsupported layer media type". */
int lm_layer_media_type_compression(const char *media_type, enum lm_compression *out,
				    struct lm_error *err);

/* Whether the bytes (as sniffed by an AUTO open) agree with the declared
 * media type; EINVAL "layer media type X declares gzip but the data is
 * zstd" when not. */
int lm_decompress_check_media_type(const struct lm_decompress *d, const char *media_type,
				   struct lm_error *err);
