/* See decompress.h.
 *
 * One input buffer is shared by all formats: sniffing reads the first bytes
 * into it and they are decoded from there, so nothing is read twice and the
 * source needs no rewind.  Output goes straight into the caller's buffer;
 * the only copies are the decoders' own.  Every error is sticky: once the
 * stream is known to be bad, a caller that keeps reading gets the same error,
 * never bytes that follow a corrupt block.
 */
#include "image/decompress.h"

#include <errno.h>
#include <isa-l.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define IN_BUF_SIZE (128 * 1024)

struct lm_decompress {
	struct lm_reader src;
	struct lm_reader reader; /* what lm_decompress_reader hands out */
	enum lm_compression format;
	uint64_t limit;
	uint64_t bytes_in, bytes_out;

	unsigned char *in;
	size_t in_pos, in_len;
	bool src_eof;

	struct inflate_state *gz;
	unsigned gz_members;   /* members fully decoded */

	ZSTD_DStream *zs;
	bool zs_in_frame;      /* a frame has started and not yet ended */

	struct lm_sha256 *sha;
	char diff_id[LM_DIGEST_SIZE];
	bool eof;
	bool failed;
	struct lm_error err;   /* the sticky error */
};

const char *lm_compression_name(enum lm_compression c)
{
	switch (c) {
	case LM_COMPRESSION_AUTO: return "auto";
	case LM_COMPRESSION_NONE: return "none";
	case LM_COMPRESSION_GZIP: return "gzip";
	case LM_COMPRESSION_ZSTD: return "zstd";
	}
	return "unknown";
}

/* Records the error in d (sticky) and copies it to err. */
static ssize_t fail(struct lm_decompress *d, struct lm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static ssize_t fail(struct lm_decompress *d, struct lm_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err.msg, sizeof(d->err.msg), fmt, ap);
	va_end(ap);
	d->err.code = code;
	d->failed = true;
	if (err != &d->err)
		*err = d->err;
	return -1;
}

/* Reads more source bytes after what is buffered (compacting first). */
static int fill(struct lm_decompress *d, struct lm_error *err)
{
	if (d->src_eof)
		return 0;
	if (d->in_pos > 0) {
		memmove(d->in, d->in + d->in_pos, d->in_len - d->in_pos);
		d->in_len -= d->in_pos;
		d->in_pos = 0;
	}
	if (d->in_len == IN_BUF_SIZE)
		return 0;
	for (;;) {
		ssize_t r = d->src.read(d->src.ctx, d->in + d->in_len, IN_BUF_SIZE - d->in_len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int code = errno ? errno : EIO;
			const char *msg = d->src.error ? d->src.error(d->src.ctx) : NULL;
			if (msg && *msg)
				return (int)fail(d, err, code, "%s", msg);
			return (int)fail(d, err, code, "read layer: %s", strerror(code));
		}
		if (r == 0)
			d->src_eof = true;
		if ((size_t)r > IN_BUF_SIZE - d->in_len)
			return (int)fail(d, err, EIO, "read layer: source returned too many bytes");
		d->in_len += (size_t)r;
		d->bytes_in += (uint64_t)r;
		return 0;
	}
}

static size_t buffered(const struct lm_decompress *d)
{
	return d->in_len - d->in_pos;
}

/* The decoder took nothing and gave nothing: it needs more input than is
 * buffered.  Get more, or fail: at EOF the stream was cut short, and with a
 * full buffer the decoder is stuck (looping would never end). */
static int no_progress(struct lm_decompress *d, struct lm_error *err, const char *what)
{
	size_t before = buffered(d);
	if (!d->src_eof && fill(d, err) < 0)
		return -1;
	if (buffered(d) > before)
		return 0;
	if (d->src_eof)
		return (int)fail(d, err, EINVAL, "%s: truncated stream", what);
	return (int)fail(d, err, EINVAL, "%s: decoder made no progress", what);
}

static const char *isal_error(int ret)
{
	switch (ret) {
	case ISAL_INVALID_BLOCK: return "invalid deflate block";
	case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
	case ISAL_INVALID_LOOKBACK: return "invalid lookback distance";
	case ISAL_INVALID_WRAPPER: return "not in gzip format";
	case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
	case ISAL_INCORRECT_CHECKSUM: return "checksum mismatch (corrupt data)";
	case ISAL_NEED_DICT: return "stream needs a preset dictionary";
	default: return "decompression failed";
	}
}

static ssize_t read_gzip(struct lm_decompress *d, unsigned char *buf, size_t len, struct lm_error *err)
{
	if (len > UINT32_MAX)
		len = UINT32_MAX;
	for (;;) {
		if (d->gz->block_state == ISAL_BLOCK_FINISH) {
			/* A member ended; what follows must be another member or nothing. */
			if (buffered(d) == 0 && fill(d, err) < 0)
				return -1;
			if (buffered(d) == 0)
				return 0;
			d->gz_members++;
			isal_inflate_reset(d->gz);
			d->gz->crc_flag = ISAL_GZIP;
		}
		if (buffered(d) == 0 && fill(d, err) < 0)
			return -1;
		size_t avail = buffered(d);
		d->gz->next_in = d->in + d->in_pos;
		d->gz->avail_in = (uint32_t)avail;
		d->gz->next_out = buf;
		d->gz->avail_out = (uint32_t)len;
		int ret = isal_inflate(d->gz);
		size_t used = avail - d->gz->avail_in;
		size_t produced = len - d->gz->avail_out;
		d->in_pos += used;
		if (ret < 0) {
			if (ret == ISAL_INVALID_WRAPPER && d->gz_members > 0)
				return fail(d, err, EINVAL, "gzip: unexpected data after member %u (not gzip)",
					    d->gz_members);
			return fail(d, err, EINVAL, "gzip: %s", isal_error(ret));
		}
		if (produced > 0)
			return (ssize_t)produced;
		if (d->gz->block_state == ISAL_BLOCK_FINISH || used > 0)
			continue;
		if (no_progress(d, err, "gzip") < 0)
			return -1;
	}
}

static ssize_t read_zstd(struct lm_decompress *d, unsigned char *buf, size_t len, struct lm_error *err)
{
	for (;;) {
		if (buffered(d) == 0 && fill(d, err) < 0)
			return -1;
		if (buffered(d) == 0 && d->src_eof && !d->zs_in_frame) {
			if (d->bytes_in == 0)
				return fail(d, err, EINVAL, "zstd: empty stream");
			return 0;
		}
		ZSTD_inBuffer in = { d->in + d->in_pos, buffered(d), 0 };
		ZSTD_outBuffer out = { buf, len, 0 };
		size_t ret = ZSTD_decompressStream(d->zs, &out, &in);
		d->in_pos += in.pos;
		if (ZSTD_isError(ret))
			return fail(d, err, EINVAL, "zstd: %s", ZSTD_getErrorName(ret));
		/* 0 means a frame is complete and fully flushed. */
		d->zs_in_frame = ret != 0;
		if (out.pos > 0)
			return (ssize_t)out.pos;
		if (!d->zs_in_frame || in.pos > 0)
			continue;
		if (no_progress(d, err, "zstd") < 0)
			return -1;
	}
}

static ssize_t read_plain(struct lm_decompress *d, unsigned char *buf, size_t len, struct lm_error *err)
{
	if (buffered(d) == 0) {
		if (d->src_eof)
			return 0;
		/* Large reads bypass the buffer: no copy for plain tar. */
		for (;;) {
			ssize_t r = d->src.read(d->src.ctx, buf, len);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				int code = errno ? errno : EIO;
				const char *msg = d->src.error ? d->src.error(d->src.ctx) : NULL;
				if (msg && *msg)
					return fail(d, err, code, "%s", msg);
				return fail(d, err, code, "read layer: %s", strerror(code));
			}
			if ((size_t)r > len)
				return fail(d, err, EIO, "read layer: source returned too many bytes");
			if (r == 0)
				d->src_eof = true;
			d->bytes_in += (uint64_t)r;
			return r;
		}
	}
	size_t n = buffered(d) < len ? buffered(d) : len;
	memcpy(buf, d->in + d->in_pos, n);
	d->in_pos += n;
	return (ssize_t)n;
}

ssize_t lm_decompress_read(struct lm_decompress *d, void *buf, size_t len, struct lm_error *err)
{
	if (d->failed) {
		*err = d->err;
		return -1;
	}
	if (d->eof || len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	/* Ask for at most one byte past the limit: enough to know it was
	 * crossed, never a large overshoot. */
	uint64_t room = d->limit - d->bytes_out;
	if (room < len)
		len = (size_t)room + 1;

	ssize_t n;
	switch (d->format) {
	case LM_COMPRESSION_GZIP:
		n = read_gzip(d, buf, len, err);
		break;
	case LM_COMPRESSION_ZSTD:
		n = read_zstd(d, buf, len, err);
		break;
	default:
		n = read_plain(d, buf, len, err);
		break;
	}
	if (n < 0)
		return -1;
	if ((uint64_t)n > room)
		return fail(d, err, EFBIG, "uncompressed layer larger than the limit of %llu bytes",
			    (unsigned long long)d->limit);
	if (n == 0) {
		d->eof = true;
		lm_sha256_final(d->sha, d->diff_id);
		d->sha = NULL;
		return 0;
	}
	d->bytes_out += (uint64_t)n;
	lm_sha256_update(d->sha, buf, (size_t)n);
	return n;
}

static ssize_t reader_read(void *ctx, void *buf, size_t len)
{
	struct lm_decompress *d = ctx;
	struct lm_error e;
	ssize_t n = lm_decompress_read(d, buf, len, &e);
	if (n < 0)
		errno = e.code > 0 ? e.code : EIO;
	return n;
}

static const char *reader_error(void *ctx)
{
	struct lm_decompress *d = ctx;
	return d->failed ? d->err.msg : NULL;
}

int lm_decompress_open(const struct lm_reader *src, enum lm_compression compression, uint64_t limit,
		       struct lm_decompress **out, struct lm_error *err)
{
	*out = NULL;
	struct lm_decompress *d = calloc(1, sizeof(*d));
	if (!d)
		return lm_err(err, ENOMEM, "decompress: out of memory");
	d->src = *src;
	d->limit = limit ? limit : LM_DECOMPRESS_DEFAULT_LIMIT;
	d->reader = (struct lm_reader){ .read = reader_read, .error = reader_error, .ctx = d };
	d->in = malloc(IN_BUF_SIZE);
	d->sha = lm_sha256_new();
	if (!d->in || !d->sha) {
		lm_decompress_free(d);
		return lm_err(err, ENOMEM, "decompress: out of memory");
	}

	if (compression == LM_COMPRESSION_AUTO) {
		while (d->in_len < 4 && !d->src_eof) {
			if (fill(d, err) < 0) {
				lm_decompress_free(d);
				return -1;
			}
		}
		static const unsigned char gz_magic[] = { 0x1f, 0x8b };
		static const unsigned char zstd_magic[] = { 0x28, 0xb5, 0x2f, 0xfd };
		if (d->in_len >= 2 && memcmp(d->in, gz_magic, 2) == 0)
			compression = LM_COMPRESSION_GZIP;
		else if (d->in_len >= 4 && memcmp(d->in, zstd_magic, 4) == 0)
			compression = LM_COMPRESSION_ZSTD;
		else
			compression = LM_COMPRESSION_NONE;
	}
	d->format = compression;

	switch (compression) {
	case LM_COMPRESSION_GZIP:
		d->gz = calloc(1, sizeof(*d->gz));
		if (!d->gz) {
			lm_decompress_free(d);
			return lm_err(err, ENOMEM, "decompress: out of memory");
		}
		isal_inflate_init(d->gz);
		d->gz->crc_flag = ISAL_GZIP;
		break;
	case LM_COMPRESSION_ZSTD:
		d->zs = ZSTD_createDStream();
		if (!d->zs) {
			lm_decompress_free(d);
			return lm_err(err, ENOMEM, "decompress: out of memory");
		}
		ZSTD_initDStream(d->zs);
		break;
	case LM_COMPRESSION_NONE:
		break;
	default:
		lm_decompress_free(d);
		return lm_err(err, EINVAL, "decompress: unknown compression %d", (int)compression);
	}
	*out = d;
	return 0;
}

void lm_decompress_free(struct lm_decompress *d)
{
	if (!d)
		return;
	free(d->in);
	free(d->gz);
	ZSTD_freeDStream(d->zs);
	lm_sha256_free(d->sha);
	free(d);
}

struct lm_reader *lm_decompress_reader(struct lm_decompress *d)
{
	return &d->reader;
}

enum lm_compression lm_decompress_format(const struct lm_decompress *d)
{
	return d->format;
}

uint64_t lm_decompress_bytes_in(const struct lm_decompress *d)
{
	return d->bytes_in;
}

uint64_t lm_decompress_bytes_out(const struct lm_decompress *d)
{
	return d->bytes_out;
}

int lm_decompress_diff_id(const struct lm_decompress *d, char out[LM_DIGEST_SIZE], struct lm_error *err)
{
	if (d->failed)
		return lm_err(err, EINVAL, "diff_id: the stream failed: %s", d->err.msg);
	if (!d->eof)
		return lm_err(err, EINVAL, "diff_id: the stream has not been read to its end");
	memcpy(out, d->diff_id, LM_DIGEST_SIZE);
	return 0;
}

static const struct {
	const char *type;
	enum lm_compression compression;
} media_types[] = {
	{ "application/vnd.oci.image.layer.v1.tar", LM_COMPRESSION_NONE },
	{ "application/vnd.oci.image.layer.v1.tar+gzip", LM_COMPRESSION_GZIP },
	{ "application/vnd.oci.image.layer.v1.tar+zstd", LM_COMPRESSION_ZSTD },
	{ "application/vnd.oci.image.layer.nondistributable.v1.tar", LM_COMPRESSION_NONE },
	{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LM_COMPRESSION_GZIP },
	{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LM_COMPRESSION_ZSTD },
	{ "application/vnd.docker.image.rootfs.diff.tar", LM_COMPRESSION_NONE },
	{ "application/vnd.docker.image.rootfs.diff.tar.gzip", LM_COMPRESSION_GZIP },
	{ "application/vnd.docker.image.rootfs.diff.tar.zstd", LM_COMPRESSION_ZSTD },
	{ "application/vnd.docker.image.rootfs.foreign.diff.tar", LM_COMPRESSION_NONE },
	{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LM_COMPRESSION_GZIP },
};

int lm_layer_media_type_compression(const char *media_type, enum lm_compression *out,
				    struct lm_error *err)
{
	if (!media_type || !*media_type)
		return lm_err(err, EINVAL, "layer has no media type");
	for (size_t i = 0; i < sizeof(media_types) / sizeof(media_types[0]); i++) {
		if (strcmp(media_type, media_types[i].type) == 0) {
			*out = media_types[i].compression;
			return 0;
		}
	}
	return lm_err(err, ENOTSUP, "unsupported layer media type \"%.200s\"", media_type);
}

int lm_decompress_check_media_type(const struct lm_decompress *d, const char *media_type,
				   struct lm_error *err)
{
	enum lm_compression declared;
	if (lm_layer_media_type_compression(media_type, &declared, err) < 0)
		return -1;
	if (declared == d->format)
		return 0;
	if (declared == LM_COMPRESSION_NONE)
		return lm_err(err, EINVAL, "layer media type %s declares an uncompressed tar but the data is %s",
			      media_type, lm_compression_name(d->format));
	if (d->format == LM_COMPRESSION_NONE)
		return lm_err(err, EINVAL, "layer media type %s declares %s but the data is not compressed",
			      media_type, lm_compression_name(declared));
	return lm_err(err, EINVAL, "layer media type %s declares %s but the data is %s", media_type,
		      lm_compression_name(declared), lm_compression_name(d->format));
}
