/* See load.h for what is loaded and how images are named.
 *
 * Two phases.  First every image of the input is resolved to a plan: its
 * manifest (as found, or synthesised for docker save), every blob imported
 * and verified, the config read for its platform and diff ids.  Any error
 * there records nothing.  Then each plan is handed to
 * lm_image_realize_local, which unpacks the missing snapshots and writes the
 * record; a failure there (a layer that does not unpack to its diff id)
 * puts back the records this load replaced, so an input is loaded whole or
 * not at all.
 *
 * A source is either a directory, read file by file as the plans need them
 * (every path resolved inside it: a layout is untrusted input too), or the
 * table of interesting members of a tar archive, which was read once up
 * front: the archive is a stream (it may be a pipe, and is usually too big
 * to read twice), and in a docker save tarball manifest.json comes last.
 * Archive member names are only names here: nothing is extracted, but a
 * name that is absolute or has a ".." component marks a hostile archive and
 * is refused.  Links between members (skopeo's "<id>/layer.tar" ->
 * "../<hex>.tar") are followed lexically, within the archive only.
 */
#include "image/load.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/decompress.h"
#include "image/digest.h"
#include "image/ref.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define META_MAX LM_MANIFEST_MAX /* oci-layout, index.json, manifest.json, manifests, indexes */
#define CONFIG_MAX (8u << 20)    /* as a pull accepts */
#define MAX_ENTRIES 16384        /* archive members kept: blobs and metadata */
#define MAX_IMAGES 1024          /* entries of index.json / manifest.json */
#define MAX_LINK_DEPTH 8
#define COPY_BUF (256u << 10)

#define ANNOTATION_REF "org.opencontainers.image.ref.name"
#define ANNOTATION_CONTAINERD "io.containerd.image.name"
#define MEDIA_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"

/* --------------------------------------------------------------- sources */

struct entry {
	char *name;
	uint64_t hash;
	char *link;     /* a hard link or symlink: the member it stands for */
	bool dangling;  /* a symlink that leaves the archive */
	bool is_blob;   /* stored: digest and size are set */
	char digest[LM_DIGEST_SIZE];
	int64_t size;
	char *data;     /* a metadata file: its contents, NUL-terminated */
	size_t len;
};

struct source {
	int dirfd;  /* a layout directory, or -1: an archive, its members below */
	bool is_archive;
	struct entry *entries;
	size_t n, cap;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct entry *find_entry(struct source *src, const char *name)
{
	uint64_t h = name_hash(name);
	for (size_t i = 0; i < src->n; i++)
		if (src->entries[i].hash == h && strcmp(src->entries[i].name, name) == 0)
			return &src->entries[i];
	return NULL;
}

static void entry_clear(struct entry *e)
{
	free(e->link);
	free(e->data);
	char *name = e->name;
	uint64_t h = e->hash;
	memset(e, 0, sizeof(*e));
	e->name = name;
	e->hash = h;
	e->size = -1;
}

/* A fresh entry for name; a later member of the same name replaces the
 * earlier one, as tar itself has it. */
static struct entry *add_entry(struct source *src, const char *name, struct lm_error *err)
{
	struct entry *e = find_entry(src, name);
	if (e) {
		entry_clear(e);
		return e;
	}
	if (src->n == MAX_ENTRIES) {
		lm_err(err, E2BIG, "more than %d image files in the archive", MAX_ENTRIES);
		return NULL;
	}
	if (src->n == src->cap) {
		size_t cap = src->cap ? src->cap * 2 : 64;
		struct entry *grown = realloc(src->entries, cap * sizeof(*grown));
		if (!grown) {
			lm_err(err, ENOMEM, "out of memory");
			return NULL;
		}
		src->entries = grown;
		src->cap = cap;
	}
	e = &src->entries[src->n];
	memset(e, 0, sizeof(*e));
	if (!(e->name = strdup(name))) {
		lm_err(err, ENOMEM, "out of memory");
		return NULL;
	}
	e->hash = name_hash(name);
	e->size = -1;
	src->n++;
	return e;
}

static void source_free(struct source *src)
{
	for (size_t i = 0; i < src->n; i++) {
		entry_clear(&src->entries[i]);
		free(src->entries[i].name);
	}
	free(src->entries);
	if (src->dirfd >= 0)
		close(src->dirfd);
	memset(src, 0, sizeof(*src));
	src->dirfd = -1;
}

/* The member name stands for, links followed; NULL when there is none. */
static struct entry *resolve_entry(struct source *src, const char *name)
{
	struct entry *e = find_entry(src, name);
	for (int depth = 0; e && e->link; depth++) {
		if (depth == MAX_LINK_DEPTH)
			return NULL;
		e = find_entry(src, e->link);
	}
	return e && !e->dangling ? e : NULL;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

enum member_kind { MEMBER_IGNORED, MEMBER_META, MEMBER_BLOB };

/* Which archive members matter.  expected receives the digest a member's
 * name promises ("" when the name promises none). */
static enum member_kind classify(const char *name, char expected[LM_DIGEST_SIZE])
{
	static const char *const meta[] = {"oci-layout", "index.json", "manifest.json"};
	expected[0] = '\0';
	for (size_t i = 0; i < sizeof(meta) / sizeof(meta[0]); i++)
		if (strcmp(name, meta[i]) == 0)
			return MEMBER_META;
	size_t n = strlen(name);
	const char *blobs = "blobs/sha256/";
	if (n == strlen(blobs) + 64 && strncmp(name, blobs, strlen(blobs)) == 0 && is_hex(name + strlen(blobs), 64)) {
		snprintf(expected, LM_DIGEST_SIZE, "sha256:%s", name + strlen(blobs));
		return MEMBER_BLOB;
	}
	/* docker save: "<config hex>.json" (its name is its digest), layers as
	 * "<id>/layer.tar" (docker) or "<hex>.tar" (skopeo, podman) */
	if (n == 64 + 5 && is_hex(name, 64) && strcmp(name + 64, ".json") == 0) {
		snprintf(expected, LM_DIGEST_SIZE, "sha256:%.64s", name);
		return MEMBER_BLOB;
	}
	if (n == 64 + 4 && is_hex(name, 64) && strcmp(name + 64, ".tar") == 0)
		return MEMBER_BLOB;
	const char *slash = strchr(name, '/');
	if (slash && slash != name && strcmp(slash, "/layer.tar") == 0)
		return MEMBER_BLOB;
	return MEMBER_IGNORED;
}

/* Lexically cleaned relative path: "./" and empty components dropped; ".."
 * either refused (-1) or, with pop, taking back the previous component (and
 * refused when there is none to take back).  Returns 0, 1 when nothing is
 * left, -1 when refused or too long. */
static int clean_path(const char *in, bool pop, char *out, size_t size)
{
	size_t o = 0;
	for (const char *p = in; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (!pop || o == 0)
				return -1;
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (n && !(n == 1 && p[0] == '.')) {
			if (o + n + 2 > size)
				return -1;
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	out[o] = '\0';
	return o ? 0 : 1;
}

/* An archive member name as a clean relative path.  1: nothing is left (the
 * archive root); -1: the name is absolute, has a ".." component or is too
 * long. */
static int clean_name(const char *in, char *out, size_t size)
{
	if (in[0] == '/')
		return -1;
	return clean_path(in, false, out, size);
}

/* The member a symlink named `link` pointing at `target` stands for,
 * resolved lexically; -1 when it leaves the archive (absolute targets do). */
static int symlink_member(const char *link, const char *target, char *out, size_t size)
{
	if (target[0] == '/')
		return -1;
	const char *slash = strrchr(link, '/');
	size_t dl = slash ? (size_t)(slash - link) : 0;
	char joined[2 * PATH_MAX];
	int len = snprintf(joined, sizeof(joined), "%.*s%s%s", (int)dl, link, dl ? "/" : "", target);
	if (len < 0 || (size_t)len >= sizeof(joined))
		return -1;
	return clean_path(joined, true, out, size) == 0 ? 0 : -1;
}

/* --- reading an archive --- */

struct fd_reader {
	int fd;
	char msg[160];
};

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	struct fd_reader *r = ctx;
	ssize_t n;
	do
		n = read(r->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		snprintf(r->msg, sizeof(r->msg), "read: %s", strerror(errno));
	return n;
}

static const char *fd_error(void *ctx)
{
	struct fd_reader *r = ctx;
	return r->msg;
}

struct tar_in {
	struct lm_decompress *dec;
	struct lm_error err; /* why the last read failed */
	bool failed;
	char *inbuf;  /* what libarchive parses */
	char *outbuf; /* member data on its way to the store */
};

static la_ssize_t tar_read_cb(struct archive *a, void *ctx, const void **buffer)
{
	struct tar_in *t = ctx;
	*buffer = t->inbuf;
	if (t->failed)
		return -1;
	ssize_t n = lm_decompress_read(t->dec, t->inbuf, COPY_BUF, &t->err);
	if (n < 0) {
		t->failed = true;
		archive_set_error(a, t->err.code ? t->err.code : EIO, "%s", t->err.msg);
		return -1;
	}
	return n;
}

/* The error of a failed libarchive call: the stream's own when reading
 * failed underneath (a truncated gzip says so), else libarchive's. */
static int tar_error(struct tar_in *t, struct archive *a, const char *what, struct lm_error *err)
{
	if (t->failed) {
		*err = t->err;
		return lm_error_prefix(err, "%s", what);
	}
	const char *msg = archive_error_string(a);
	int code = archive_errno(a);
	return lm_err(err, code > 0 ? code : EINVAL, "%s: %s", what, msg ? msg : "unknown error");
}

static int tar_meta(struct archive *a, struct tar_in *t, struct archive_entry *ae, struct entry *e,
		    struct lm_error *err)
{
	if (archive_entry_size_is_set(ae) && archive_entry_size(ae) > (la_int64_t)META_MAX)
		return lm_err(err, EFBIG, "%s is larger than %u MiB", e->name, META_MAX >> 20);
	size_t cap = archive_entry_size_is_set(ae) ? (size_t)archive_entry_size(ae) + 1 : 4096, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return lm_err(err, ENOMEM, "out of memory");
	for (;;) {
		if (len + 1 >= cap) {
			/* room for one byte past the limit, to tell "too big" from "exactly" */
			if (cap >= META_MAX + 2) {
				free(buf);
				return lm_err(err, EFBIG, "%s is larger than %u MiB", e->name, META_MAX >> 20);
			}
			size_t grow = cap * 2 > META_MAX + 2 ? META_MAX + 2 : cap * 2;
			char *grown = realloc(buf, grow);
			if (!grown) {
				free(buf);
				return lm_err(err, ENOMEM, "out of memory");
			}
			buf = grown;
			cap = grow;
		}
		la_ssize_t n = archive_read_data(a, buf + len, cap - len - 1);
		if (n < 0) {
			free(buf);
			return tar_error(t, a, e->name, err);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > META_MAX) {
		free(buf);
		return lm_err(err, EFBIG, "%s is larger than %u MiB", e->name, META_MAX >> 20);
	}
	buf[len] = '\0';
	e->data = buf;
	e->len = len;
	return 0;
}

static int tar_blob(struct lm_store *s, struct archive *a, struct tar_in *t, struct archive_entry *ae,
		    const char *expected, struct entry *e, struct lm_error *err)
{
	int64_t size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : -1;
	if (expected[0] && size >= 0 && lm_store_blob_exists(s, expected)) {
		/* Loaded or pulled before: the store's copy is verified already. */
		snprintf(e->digest, sizeof(e->digest), "%s", expected);
		e->size = size;
		e->is_blob = true;
		return 0;
	}
	struct lm_blob_writer *w = NULL;
	/* the writer's errors name the blob when its digest is known */
	if (lm_blob_writer_open(s, expected[0] ? expected : NULL, size, &w, err) < 0)
		return expected[0] ? -1 : lm_error_prefix(err, "%s", e->name);
	for (;;) {
		la_ssize_t n = archive_read_data(a, t->outbuf, COPY_BUF);
		if (n == 0)
			break;
		if (n < 0) {
			lm_blob_writer_abort(w);
			return tar_error(t, a, e->name, err);
		}
		if (lm_blob_writer_write(w, t->outbuf, (size_t)n, err) < 0) {
			lm_blob_writer_abort(w);
			return expected[0] ? -1 : lm_error_prefix(err, "%s", e->name);
		}
	}
	int64_t got = lm_blob_writer_offset(w);
	if (lm_blob_writer_commit(w, e->digest, err) < 0)
		return expected[0] ? -1 : lm_error_prefix(err, "%s", e->name);
	e->size = got;
	e->is_blob = true;
	return 0;
}

static int tar_member(struct lm_store *s, struct source *src, struct archive *a, struct tar_in *t,
		      struct archive_entry *ae, struct lm_error *err)
{
	const char *raw = archive_entry_pathname(ae);
	if (!raw)
		return lm_err(err, EINVAL, "an archive member has no name");
	char name[PATH_MAX];
	int r = clean_name(raw, name, sizeof(name));
	if (r < 0)
		return lm_err(err, EINVAL, "archive member \"%.200s\": absolute, \"..\" or overlong names are refused",
			      raw);
	if (r > 0)
		return 0;
	char expected[LM_DIGEST_SIZE];
	enum member_kind kind = classify(name, expected);
	if (kind == MEMBER_IGNORED)
		return 0;
	const char *hardlink = archive_entry_hardlink(ae);
	mode_t type = archive_entry_filetype(ae);
	if (!hardlink && type != AE_IFLNK && type != AE_IFREG)
		return 0;
	struct entry *e = add_entry(src, name, err);
	if (!e)
		return -1;
	char target[PATH_MAX];
	if (hardlink) {
		if (clean_name(hardlink, target, sizeof(target)) != 0)
			return lm_err(err, EINVAL, "archive member %s: hard link to \"%.200s\" is refused", name,
				      hardlink);
		return (e->link = strdup(target)) ? 0 : lm_err(err, ENOMEM, "out of memory");
	}
	if (type == AE_IFLNK) {
		const char *to = archive_entry_symlink(ae);
		if (!to || symlink_member(name, to, target, sizeof(target)) < 0) {
			e->dangling = true; /* as good as missing, should anything need it */
			return 0;
		}
		return (e->link = strdup(target)) ? 0 : lm_err(err, ENOMEM, "out of memory");
	}
	return kind == MEMBER_META ? tar_meta(a, t, ae, e, err) : tar_blob(s, a, t, ae, expected, e, err);
}

/* One pass over the archive: blobs into the store, metadata into memory. */
static int read_archive(struct lm_store *s, struct source *src, int fd, struct lm_error *err)
{
	struct fd_reader fr = {.fd = fd};
	struct lm_reader reader = {.read = fd_read, .error = fd_error, .ctx = &fr};
	struct tar_in t = {0};
	struct archive *a = NULL;
	int rc = -1;
	t.inbuf = malloc(COPY_BUF);
	t.outbuf = malloc(COPY_BUF);
	if (!t.inbuf || !t.outbuf) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	if (lm_decompress_open(&reader, LM_COMPRESSION_AUTO, 0, &t.dec, err) < 0)
		goto out;
	a = archive_read_new();
	if (!a) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	if (archive_read_support_format_tar(a) != ARCHIVE_OK) {
		tar_error(&t, a, "tar", err);
		goto out;
	}
	const char *not_tar = "not a directory, nor a tar archive (plain, gzip or zstd)";
	if (archive_read_open(a, &t, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
			tar_error(&t, a, t.failed ? "read" : not_tar, err);
		goto out;
	}
	size_t members = 0;
	for (;;) {
		struct archive_entry *ae;
		int r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			tar_error(&t, a, members || t.failed ? "corrupt tar archive" : not_tar, err);
			goto out;
		}
		members++;
		if (tar_member(s, src, a, &t, ae, err) < 0)
			goto out;
	}
	if (!members) {
		lm_err(err, EINVAL, "%s (it holds no files)", not_tar);
		goto out;
	}
	/* What follows the tar's end must still be a sound stream: a gzip
	 * trailer that does not check out means a corrupt file. */
	ssize_t n;
	while ((n = lm_decompress_read(t.dec, t.outbuf, COPY_BUF, err)) > 0)
		;
	if (n < 0)
		goto out;
	rc = 0;
out:
	if (a)
		archive_read_free(a);
	lm_decompress_free(t.dec);
	free(t.inbuf);
	free(t.outbuf);
	return rc;
}

/* --- reading from either kind --- */

static bool source_has(struct source *src, const char *name)
{
	if (src->is_archive)
		return resolve_entry(src, name) != NULL;
	struct stat st;
	return fstatat(src->dirfd, name, &st, 0) == 0;
}

/* A metadata file (at most META_MAX bytes), malloc'd and NUL-terminated. */
static int source_meta(struct source *src, const char *name, char **out, size_t *len, struct lm_error *err)
{
	if (src->is_archive) {
		struct entry *e = resolve_entry(src, name);
		if (!e || !e->data)
			return lm_err(err, ENOENT, "%s is missing", name);
		if (!(*out = malloc(e->len + 1)))
			return lm_err(err, ENOMEM, "out of memory");
		memcpy(*out, e->data, e->len + 1);
		*len = e->len;
		return 0;
	}
	autofd fd = lm_open_in_root(src->dirfd, name, O_RDONLY | O_NONBLOCK, 0, err);
	if (fd < 0)
		return err->code == ENOENT ? lm_err(err, ENOENT, "%s is missing", name) : lm_error_prefix(err, "%s", name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return lm_err_sys(err, "%s", name);
	if (!S_ISREG(st.st_mode))
		return lm_err(err, EINVAL, "%s is not a regular file", name);
	if (lm_read_fd(fd, META_MAX, out, len, err) < 0)
		return lm_error_prefix(err, "%s", name);
	return 0;
}

static int check_size(const char *name, int64_t size, int64_t expected, struct lm_error *err)
{
	if (expected >= 0 && size >= 0 && size != expected)
		return lm_err(err, EBADMSG, "%s is %lld bytes, its descriptor says %lld", name, (long long)size,
			      (long long)expected);
	return 0;
}

/* Makes the file `name` a verified blob in the store (expected: the digest
 * it must have, or NULL; expected_size: -1 for any) and says which. */
static int source_import(struct lm_store *s, struct source *src, const char *name, const char *expected,
			 int64_t expected_size, char digest[LM_DIGEST_SIZE], int64_t *size, struct lm_error *err)
{
	if (src->is_archive) {
		struct entry *e = resolve_entry(src, name);
		if (!e || !e->is_blob)
			return lm_err(err, ENOENT, "%s is missing from the archive", name);
		if (expected && strcmp(e->digest, expected) != 0)
			return lm_err(err, EBADMSG, "%s hashes to %s, not %s", name, e->digest, expected);
		if (check_size(name, e->size, expected_size, err) < 0)
			return -1;
		snprintf(digest, LM_DIGEST_SIZE, "%s", e->digest);
		*size = e->size;
		return 0;
	}
	struct stat st;
	if (expected && lm_store_blob_exists(s, expected)) {
		autofd have = -1;
		if (lm_store_blob_open(s, expected, &have, err) < 0)
			return -1;
		if (fstat(have, &st) < 0)
			return lm_err_sys(err, "blob %s", expected);
		if (check_size(name, st.st_size, expected_size, err) < 0)
			return -1;
		snprintf(digest, LM_DIGEST_SIZE, "%s", expected);
		*size = st.st_size;
		return 0;
	}
	autofd fd = lm_open_in_root(src->dirfd, name, O_RDONLY | O_NONBLOCK, 0, err);
	if (fd < 0)
		return err->code == ENOENT ? lm_err(err, ENOENT, "%s is missing", name) : lm_error_prefix(err, "%s", name);
	if (fstat(fd, &st) < 0)
		return lm_err_sys(err, "%s", name);
	if (!S_ISREG(st.st_mode))
		return lm_err(err, EINVAL, "%s is not a regular file", name);
	if (check_size(name, st.st_size, expected_size, err) < 0)
		return -1;
	autofree char *buf = malloc(COPY_BUF);
	if (!buf)
		return lm_err(err, ENOMEM, "out of memory");
	struct lm_blob_writer *w = NULL;
	/* the writer's errors name the blob when its digest is known */
	if (lm_blob_writer_open(s, expected, st.st_size, &w, err) < 0)
		return expected ? -1 : lm_error_prefix(err, "%s", name);
	for (;;) {
		ssize_t n = read(fd, buf, COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			lm_err_sys(err, "read %s", name);
			lm_blob_writer_abort(w);
			return -1;
		}
		if (n == 0)
			break;
		if (lm_blob_writer_write(w, buf, (size_t)n, err) < 0) {
			lm_blob_writer_abort(w);
			return expected ? -1 : lm_error_prefix(err, "%s", name);
		}
	}
	*size = lm_blob_writer_offset(w);
	if (lm_blob_writer_commit(w, digest, err) < 0)
		return expected ? -1 : lm_error_prefix(err, "%s", name);
	return 0;
}

/* ----------------------------------------------------------------- plans */

struct plan {
	struct lm_manifest m; /* bytes, digest and index_digest set */
	char **names;
	size_t n_names;
	char *os, *arch, *variant;
};

struct loader {
	struct lm_store *s;
	const struct lm_load_opts *o;
	struct source src;
	char *default_repo;  /* "localhost/<base>" */
	char *user_repo;     /* the repository of opts->name, or NULL */
	bool user_pinned;    /* opts->name has its own tag or digest */
	struct plan *plans;
	size_t n_plans;
};

static void plan_free(struct plan *p)
{
	lm_manifest_free(&p->m);
	for (size_t i = 0; i < p->n_names; i++)
		free(p->names[i]);
	free(p->names);
	free(p->os);
	free(p->arch);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

/* A name belongs to one image: the last one of the input to claim it. */
static int plan_add_name(struct loader *l, struct plan *p, char *name, struct lm_error *err)
{
	for (size_t i = 0; i < l->n_plans; i++) {
		struct plan *q = &l->plans[i];
		for (size_t k = 0; k < q->n_names; k++)
			if (strcmp(q->names[k], name) == 0) {
				free(q->names[k]);
				memmove(&q->names[k], &q->names[k + 1], (q->n_names - k - 1) * sizeof(char *));
				q->n_names--;
				break;
			}
	}
	for (size_t k = 0; k < p->n_names; k++)
		if (strcmp(p->names[k], name) == 0) {
			free(name);
			return 0;
		}
	char **grown = realloc(p->names, (p->n_names + 1) * sizeof(char *));
	if (!grown) {
		free(name);
		return lm_err(err, ENOMEM, "out of memory");
	}
	p->names = grown;
	p->names[p->n_names++] = name;
	return 0;
}

static int normalise(const char *text, char **out, struct lm_error *err)
{
	struct lm_image_ref ref;
	if (lm_image_ref_parse(text, NULL, &ref, err) < 0)
		return -1;
	*out = lm_image_ref_string(&ref);
	lm_image_ref_free(&ref);
	return *out ? 0 : lm_err(err, ENOMEM, "out of memory");
}

/* The name of an image whose annotation (or RepoTags entry) is `key`
 * (NULL: none); the rules are in load.h. */
static int image_name(struct loader *l, const char *key, const char *manifest_digest, char **out,
		      struct lm_error *err)
{
	autofree char *text = NULL;
	int r;
	if (key && strpbrk(key, "/:@"))
		r = (text = strdup(key)) ? 0 : -1;
	else if (key && l->user_pinned)
		r = (text = strdup(l->o->name)) ? 0 : -1;
	else if (key)
		r = asprintf(&text, "%s:%s", l->user_repo ? l->user_repo : l->default_repo, key);
	else if (l->o->name)
		r = (text = strdup(l->o->name)) ? 0 : -1;
	else
		r = asprintf(&text, "%s@%s", l->default_repo, manifest_digest);
	if (r < 0) {
		text = NULL;
		return lm_err(err, ENOMEM, "out of memory");
	}
	return normalise(text, out, err);
}

static char *platform_field(json_t *config, const char *key)
{
	const char *v = json_string_value(json_object_get(config, key));
	if (!v || !*v || strlen(v) > 32)
		return NULL;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return NULL;
	return strdup(v);
}

/* Reads the (stored) config of p: its platform, and a diff id per layer. */
static int plan_config(struct loader *l, struct plan *p, char ***diff_ids_out, struct lm_error *err)
{
	autofree char *config = NULL;
	size_t len = 0;
	if (lm_store_blob_read(l->s, p->m.config.digest, CONFIG_MAX, &config, &len, err) < 0)
		return lm_error_prefix(err, "image config %s", p->m.config.digest);
	char **diff_ids = NULL;
	size_t n = 0;
	if (lm_image_config_diff_ids(config, len, &diff_ids, &n, err) < 0)
		return lm_error_prefix(err, "%s", p->m.config.digest);
	if (n != p->m.n_layers) {
		for (size_t i = 0; i < n; i++)
			free(diff_ids[i]);
		free(diff_ids);
		return lm_err(err, EINVAL, "image config %s lists %zu layers, the manifest %zu", p->m.config.digest, n,
			      p->m.n_layers);
	}
	json_auto_t *root = json_loadb(config, len, 0, NULL);
	p->os = platform_field(root, "os");
	p->arch = platform_field(root, "architecture");
	p->variant = platform_field(root, "variant");
	if (diff_ids_out) {
		*diff_ids_out = diff_ids;
	} else {
		for (size_t i = 0; i < n; i++)
			free(diff_ids[i]);
		free(diff_ids);
	}
	return 0;
}

static int push_plan(struct loader *l, struct plan *p, struct lm_error *err)
{
	struct plan *grown = realloc(l->plans, (l->n_plans + 1) * sizeof(*grown));
	if (!grown) {
		plan_free(p);
		return lm_err(err, ENOMEM, "out of memory");
	}
	l->plans = grown;
	l->plans[l->n_plans++] = *p;
	memset(p, 0, sizeof(*p));
	return 0;
}

/* --- OCI layouts --- */

static int import_digest(struct loader *l, const char *what, const char *digest, int64_t size,
			 struct lm_error *err)
{
	if (lm_digest_validate(digest, err) < 0)
		return lm_error_prefix(err, "%s", what);
	char name[64 + 16], got[LM_DIGEST_SIZE];
	snprintf(name, sizeof(name), "blobs/sha256/%s", lm_digest_hex(digest));
	int64_t got_size;
	if (source_import(l->s, &l->src, name, digest, size, got, &got_size, err) < 0)
		return lm_error_prefix(err, "%s", what);
	return 0;
}

static bool is_manifest_type(const char *mt)
{
	return !strcmp(mt, LM_MEDIA_OCI_MANIFEST) || !strcmp(mt, LM_MEDIA_DOCKER_MANIFEST);
}

static bool is_index_type(const char *mt)
{
	return !strcmp(mt, LM_MEDIA_OCI_INDEX) || !strcmp(mt, LM_MEDIA_DOCKER_LIST);
}

/* digest and size of an index.json entry */
static int entry_descriptor(json_t *j, size_t i, const char **digest, int64_t *size, struct lm_error *err)
{
	*digest = json_string_value(json_object_get(j, "digest"));
	json_t *sz = json_object_get(j, "size");
	if (lm_digest_validate(*digest, err) < 0)
		return lm_error_prefix(err, "index.json: manifests[%zu]", i);
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return lm_err(err, EBADMSG, "index.json: manifests[%zu]: missing or negative size", i);
	*size = (int64_t)json_integer_value(sz);
	return 0;
}

static int plan_oci(struct loader *l, const char *media_type, const char *digest, int64_t size,
		    const char *index_digest, const char *key, struct lm_error *err)
{
	struct plan p = {0};
	char *bytes = NULL;
	size_t len = 0;
	int rc = -1;
	if (size > (int64_t)META_MAX) {
		lm_err(err, EFBIG, "manifest %s: %lld bytes (at most %u MiB are accepted)", digest, (long long)size,
		       META_MAX >> 20);
		return -1;
	}
	if (import_digest(l, "manifest", digest, size, err) < 0)
		return -1;
	if (lm_store_blob_read(l->s, digest, META_MAX, &bytes, &len, err) < 0)
		return lm_error_prefix(err, "manifest %s", digest);
	if (lm_manifest_parse(bytes, len, media_type && is_manifest_type(media_type) ? media_type : NULL, &p.m,
			      err) < 0) {
		free(bytes);
		return lm_error_prefix(err, "manifest %s", digest);
	}
	p.m.bytes = bytes;
	p.m.len = len;
	snprintf(p.m.digest, sizeof(p.m.digest), "%s", digest);
	snprintf(p.m.index_digest, sizeof(p.m.index_digest), "%s", index_digest ? index_digest : "");
	if (p.m.config.size > (int64_t)CONFIG_MAX) {
		lm_err(err, EFBIG, "image config %s: %lld bytes (at most %u MiB are accepted)", p.m.config.digest,
		       (long long)p.m.config.size, CONFIG_MAX >> 20);
		goto out;
	}
	if (import_digest(l, "image config", p.m.config.digest, p.m.config.size, err) < 0)
		goto out;
	for (size_t i = 0; i < p.m.n_layers; i++) {
		char what[32];
		snprintf(what, sizeof(what), "layer %zu", i + 1);
		if (import_digest(l, what, p.m.layers[i].digest, p.m.layers[i].size, err) < 0)
			goto out;
	}
	if (plan_config(l, &p, NULL, err) < 0)
		goto out;
	char *name;
	if (image_name(l, key, digest, &name, err) < 0 || plan_add_name(l, &p, name, err) < 0) {
		lm_error_prefix(err, "manifest %s", digest);
		goto out;
	}
	rc = push_plan(l, &p, err);
out:
	plan_free(&p);
	return rc;
}

static bool layout_version_ok(const char *v)
{
	/* 1.x.y: minor versions stay compatible */
	unsigned minor, patch;
	char end;
	return strncmp(v, "1.", 2) == 0 && v[2] >= '0' && v[2] <= '9' &&
	       sscanf(v, "1.%u.%u%c", &minor, &patch, &end) == 2;
}

/* The ref annotation of an index.json entry ("" when it has none). */
static const char *entry_key(json_t *j)
{
	json_t *ann = json_object_get(j, "annotations");
	const char *k = json_string_value(json_object_get(ann, ANNOTATION_CONTAINERD));
	if (!k || !*k)
		k = json_string_value(json_object_get(ann, ANNOTATION_REF));
	return k ? k : "";
}

static bool entry_is_manifest(json_t *j)
{
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	return !mt || is_manifest_type(mt);
}

/* Several platform manifests under one name in index.json itself (no index
 * blob): keep only the platform asked for. */
static int select_platform_groups(struct loader *l, json_t *manifests, bool *skip, struct lm_error *err)
{
	size_t n = json_array_size(manifests);
	for (size_t i = 0; i < n; i++) {
		json_t *ji = json_array_get(manifests, i);
		if (skip[i] || !entry_is_manifest(ji) || !json_is_object(json_object_get(ji, "platform")))
			continue;
		const char *key = entry_key(ji);
		json_auto_t *group = json_pack("{s:i,s:[O]}", "schemaVersion", 2, "manifests", ji);
		if (!group)
			return lm_err(err, ENOMEM, "out of memory");
		json_t *members = json_object_get(group, "manifests");
		for (size_t j = i + 1; j < n; j++) {
			json_t *jj = json_array_get(manifests, j);
			if (!skip[j] && entry_is_manifest(jj) && json_is_object(json_object_get(jj, "platform")) &&
			    strcmp(entry_key(jj), key) == 0)
				json_array_append(members, jj);
		}
		if (json_array_size(members) < 2)
			continue;
		autofree char *text = json_dumps(group, JSON_COMPACT);
		if (!text)
			return lm_err(err, ENOMEM, "out of memory");
		struct lm_descriptor chosen;
		if (lm_index_select(text, strlen(text), l->o->platform, &chosen, err) < 0)
			return lm_error_prefix(err, "index.json%s%s", *key ? ": " : "", key);
		bool kept = false;
		for (size_t j = i; j < n; j++) {
			json_t *jj = json_array_get(manifests, j);
			if (skip[j] || !entry_is_manifest(jj) || !json_is_object(json_object_get(jj, "platform")) ||
			    strcmp(entry_key(jj), key) != 0)
				continue;
			const char *d = json_string_value(json_object_get(jj, "digest"));
			if (!kept && d && strcmp(d, chosen.digest) == 0)
				kept = true;
			else
				skip[j] = true;
		}
		lm_descriptor_free(&chosen);
	}
	return 0;
}

static int load_oci(struct loader *l, struct lm_error *err)
{
	autofree char *layout = NULL, *index = NULL;
	size_t len = 0;
	json_error_t jerr;
	if (source_meta(&l->src, "oci-layout", &layout, &len, err) < 0)
		return -1;
	json_auto_t *lj = json_loadb(layout, len, 0, &jerr);
	if (!json_is_object(lj))
		return lm_err(err, EBADMSG, "oci-layout is not a JSON object");
	const char *version = json_string_value(json_object_get(lj, "imageLayoutVersion"));
	if (!version)
		return lm_err(err, EBADMSG, "oci-layout has no imageLayoutVersion");
	if (!layout_version_ok(version))
		return lm_err(err, ENOTSUP, "unsupported OCI layout version \"%.40s\" (1.x is supported)", version);

	if (source_meta(&l->src, "index.json", &index, &len, err) < 0)
		return -1;
	json_auto_t *root = json_loadb(index, len, 0, &jerr);
	if (!root)
		return lm_err(err, EBADMSG, "index.json: invalid JSON (line %d: %s)", jerr.line, jerr.text);
	json_t *sv = json_object_get(root, "schemaVersion");
	if (!json_is_object(root) || (sv && (!json_is_integer(sv) || json_integer_value(sv) != 2)))
		return lm_err(err, EBADMSG, "index.json is not an OCI image index (schemaVersion 2)");
	json_t *manifests = json_object_get(root, "manifests");
	if (!json_is_array(manifests))
		return lm_err(err, EBADMSG, "index.json has no manifests array");
	size_t n = json_array_size(manifests);
	if (n > MAX_IMAGES)
		return lm_err(err, E2BIG, "index.json lists %zu manifests (at most %d are accepted)", n, MAX_IMAGES);
	autofree bool *skip = calloc(n ? n : 1, sizeof(bool));
	if (!skip)
		return lm_err(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *j = json_array_get(manifests, i);
		if (!json_is_object(j))
			return lm_err(err, EBADMSG, "index.json: manifests[%zu] is not an object", i);
		const char *mt = json_string_value(json_object_get(j, "mediaType"));
		skip[i] = mt && !is_manifest_type(mt) && !is_index_type(mt); /* artifacts: not images */
	}
	if (select_platform_groups(l, manifests, skip, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (skip[i])
			continue;
		json_t *j = json_array_get(manifests, i);
		const char *mt = json_string_value(json_object_get(j, "mediaType"));
		const char *key = entry_key(j), *digest = NULL;
		int64_t size = 0;
		if (entry_descriptor(j, i, &digest, &size, err) < 0)
			return -1;
		if (!mt || !is_index_type(mt)) {
			if (plan_oci(l, mt, digest, size, NULL, *key ? key : NULL, err) < 0)
				return -1;
			continue;
		}
		if (size > (int64_t)META_MAX)
			return lm_err(err, EFBIG, "index %s: %lld bytes (at most %u MiB are accepted)", digest,
				      (long long)size, META_MAX >> 20);
		autofree char *bytes = NULL;
		size_t blen = 0;
		struct lm_descriptor d;
		if (import_digest(l, "index", digest, size, err) < 0)
			return -1;
		if (lm_store_blob_read(l->s, digest, META_MAX, &bytes, &blen, err) < 0 ||
		    lm_index_select(bytes, blen, l->o->platform, &d, err) < 0)
			return lm_error_prefix(err, "index %s", digest);
		int r = plan_oci(l, d.media_type, d.digest, d.size, digest, *key ? key : NULL, err);
		lm_descriptor_free(&d);
		if (r < 0)
			return -1;
	}
	if (!l->n_plans)
		return lm_err(err, ENOENT, "the OCI layout holds no images (index.json lists none)");
	return 0;
}

/* --- docker save --- */

static const char *sniff_layer_type(struct lm_store *s, const char *digest)
{
	autofd fd = -1;
	struct lm_error ignored;
	unsigned char magic[4] = {0};
	if (lm_store_blob_open(s, digest, &fd, &ignored) < 0 || pread(fd, magic, sizeof(magic), 0) < 4)
		return MEDIA_LAYER_TAR;
	if (magic[0] == 0x1f && magic[1] == 0x8b)
		return MEDIA_LAYER_TAR "+gzip";
	if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
		return MEDIA_LAYER_TAR "+zstd";
	return MEDIA_LAYER_TAR;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* manifest.json entry j, as an OCI manifest over blobs imported into the store. */
static int plan_docker(struct loader *l, json_t *j, size_t i, struct lm_error *err)
{
	const char *config = json_string_value(json_object_get(j, "Config"));
	json_t *layers = json_object_get(j, "Layers");
	json_t *tags = json_object_get(j, "RepoTags");
	if (!json_is_object(j) || !config || !json_is_array(layers))
		return lm_err(err, EBADMSG, "manifest.json: entry %zu needs Config and Layers", i);
	if (tags && !json_is_null(tags) && !json_is_array(tags))
		return lm_err(err, EBADMSG, "manifest.json: entry %zu: RepoTags is not a list", i);
	size_t n = json_array_size(layers);
	if (n > 1024)
		return lm_err(err, E2BIG, "manifest.json: entry %zu: %zu layers (at most 1024 are accepted)", i, n);

	struct plan p = {0};
	char **diff_ids = NULL;
	json_t *descs = NULL, *doc = NULL;
	char *bytes = NULL;
	int rc = -1;
	char cname[PATH_MAX], expected[LM_DIGEST_SIZE], cdigest[LM_DIGEST_SIZE];
	int64_t csize;
	if (clean_name(config, cname, sizeof(cname)) != 0) {
		lm_err(err, EINVAL, "config path \"%.200s\" is refused", config);
		goto out;
	}
	classify(cname, expected);
	if (source_import(l->s, &l->src, cname, expected[0] ? expected : NULL, -1, cdigest, &csize, err) < 0) {
		lm_error_prefix(err, "image config");
		goto out;
	}
	/* the config is read before the layers are imported: it names their diff ids */
	if (!(descs = json_array())) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	const char **types = calloc(n ? n : 1, sizeof(char *));
	char (*ldigest)[LM_DIGEST_SIZE] = calloc(n ? n : 1, LM_DIGEST_SIZE);
	int64_t *lsize = calloc(n ? n : 1, sizeof(int64_t));
	if (!types || !ldigest || !lsize) {
		free(types);
		free(ldigest);
		free(lsize);
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	int lr = 0;
	for (size_t k = 0; k < n && lr == 0; k++) {
		const char *path = json_string_value(json_array_get(layers, k));
		char lname[PATH_MAX];
		if (!path || clean_name(path, lname, sizeof(lname)) != 0) {
			lr = lm_err(err, EINVAL, "layer path %zu is refused", k + 1);
			break;
		}
		classify(lname, expected);
		lr = source_import(l->s, &l->src, lname, expected[0] ? expected : NULL, -1, ldigest[k], &lsize[k], err);
		if (lr < 0) {
			lm_error_prefix(err, "layer %zu", k + 1);
			break;
		}
		types[k] = sniff_layer_type(l->s, ldigest[k]);
		json_t *d = json_pack("{s:s,s:s,s:I}", "mediaType", types[k], "digest", ldigest[k], "size",
				      (json_int_t)lsize[k]);
		if (!d || json_array_append_new(descs, d) < 0)
			lr = lm_err(err, ENOMEM, "out of memory");
	}
	if (lr == 0) {
		doc = json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:O}", "schemaVersion", 2, "mediaType", LM_MEDIA_OCI_MANIFEST,
				"config", "mediaType", LM_MEDIA_OCI_CONFIG, "digest", cdigest, "size", (json_int_t)csize,
				"layers", descs);
		if (!doc || !(bytes = json_dumps(doc, JSON_COMPACT)))
			lr = lm_err(err, ENOMEM, "out of memory");
	}
	if (lr == 0 && lm_manifest_parse(bytes, strlen(bytes), LM_MEDIA_OCI_MANIFEST, &p.m, err) < 0)
		lr = lm_error_prefix(err, "synthesised manifest");
	if (lr == 0) {
		p.m.bytes = steal_ptr(&bytes);
		p.m.len = strlen(p.m.bytes);
		lm_sha256_buffer(p.m.bytes, p.m.len, p.m.digest);
		if (plan_config(l, &p, &diff_ids, err) < 0)
			lr = -1;
	}
	for (size_t k = 0; lr == 0 && k < n; k++)
		if (strcmp(types[k], MEDIA_LAYER_TAR) == 0 && strcmp(ldigest[k], diff_ids[k]) != 0)
			lr = lm_err(err, EBADMSG,
				    "layer %zu (%s) hashes to %s, but the image config's rootfs.diff_ids[%zu] is %s",
				    k + 1, json_string_value(json_array_get(layers, k)), ldigest[k], k, diff_ids[k]);
	free(types);
	free(ldigest);
	free(lsize);
	if (lr < 0)
		goto out;

	size_t n_tags = json_array_size(tags);
	for (size_t t = 0; t < n_tags; t++) {
		const char *tag = json_string_value(json_array_get(tags, t));
		char *name;
		if (!tag || normalise(tag, &name, err) < 0) {
			if (!tag)
				lm_err(err, EBADMSG, "not a string");
			lm_error_prefix(err, "RepoTags[%zu]", t);
			goto out;
		}
		if (plan_add_name(l, &p, name, err) < 0)
			goto out;
	}
	if (!n_tags) {
		char *name;
		if (image_name(l, NULL, p.m.digest, &name, err) < 0 || plan_add_name(l, &p, name, err) < 0)
			goto out;
	}
	rc = push_plan(l, &p, err);
out:
	if (rc < 0)
		lm_error_prefix(err, "manifest.json: entry %zu", i);
	free_strv(diff_ids);
	free(bytes);
	json_decref(doc);
	json_decref(descs);
	plan_free(&p);
	return rc;
}

static int load_docker(struct loader *l, struct lm_error *err)
{
	autofree char *text = NULL;
	size_t len = 0;
	json_error_t jerr;
	if (source_meta(&l->src, "manifest.json", &text, &len, err) < 0)
		return -1;
	json_auto_t *root = json_loadb(text, len, 0, &jerr);
	if (!root)
		return lm_err(err, EBADMSG, "manifest.json: invalid JSON (line %d: %s)", jerr.line, jerr.text);
	if (!json_is_array(root))
		return lm_err(err, EBADMSG, "manifest.json is not a list of images");
	size_t n = json_array_size(root);
	if (n == 0)
		return lm_err(err, ENOENT, "manifest.json lists no images");
	if (n > MAX_IMAGES)
		return lm_err(err, E2BIG, "manifest.json lists %zu images (at most %d are accepted)", n, MAX_IMAGES);
	for (size_t i = 0; i < n; i++)
		if (plan_docker(l, json_array_get(root, i), i, err) < 0)
			return -1;
	return 0;
}

/* ------------------------------------------------------------- recording */

struct undo {
	const char *name;
	bool had;
	struct lm_image_record old;
};

/* Records every plan's names; on failure puts back what was replaced. */
static int realize_all(struct loader *l, struct lm_image_record **records, size_t *n_records,
		       struct lm_error *err)
{
	size_t total = 0;
	for (size_t i = 0; i < l->n_plans; i++)
		total += l->plans[i].n_names;
	struct undo *undo = calloc(total ? total : 1, sizeof(*undo));
	struct lm_image_record *recs = calloc(total ? total : 1, sizeof(*recs));
	size_t done = 0;
	int rc = -1;
	if (!undo || !recs) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < l->n_plans; i++) {
		struct plan *p = &l->plans[i];
		struct lm_platform plat;
		lm_platform_default(&plat);
		if (p->os && p->arch) {
			plat.os = p->os;
			plat.arch = p->arch;
			plat.variant = p->variant;
		}
		for (size_t k = 0; k < p->n_names; k++) {
			const char *name = p->names[k];
			struct lm_error ignored;
			undo[done].name = name;
			undo[done].had = lm_store_image_get(l->s, name, &undo[done].old, &ignored) == 0;
			done++;
			if (lm_image_realize_local(l->s, name, &p->m, &plat, l->o->progress, err) < 0) {
				lm_error_prefix(err, "image %s", name);
				goto out;
			}
			if (lm_store_image_get(l->s, name, &recs[done - 1], err) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	for (size_t i = done; rc < 0 && i-- > 0;) {
		struct lm_error ignored;
		if (undo[i].had)
			lm_store_image_put(l->s, &undo[i].old, &ignored);
		else
			lm_store_image_remove(l->s, undo[i].name, &ignored);
	}
	for (size_t i = 0; undo && i < done; i++)
		if (undo[i].had)
			lm_image_record_free(&undo[i].old);
	free(undo);
	if (rc < 0) {
		lm_image_record_list_free(recs, done);
		return -1;
	}
	*records = recs;
	*n_records = done;
	return 0;
}

/* ----------------------------------------------------------------- names */

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n > k && strcasecmp(s + n - k, suffix) == 0;
}

/* "localhost/<base>" for path; any base that is no valid repository name
 * is made one ("My Image" -> "my-image"). */
static int default_repo(const char *path, char **out, struct lm_error *err)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	size_t n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	const char *slash = strrchr(buf, '/');
	const char *base = slash ? slash + 1 : buf;
	char real[PATH_MAX];
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		if (realpath(path, real)) {
			slash = strrchr(real, '/');
			base = slash && slash[1] ? slash + 1 : "image";
		}
	}
	char name[128];
	snprintf(name, sizeof(name), "%s", base);
	n = strlen(name);
	static const char *const suffixes[] = {".tar.gz", ".tar.zst", ".tgz", ".tar"};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (ends_with(name, n, suffixes[i])) {
			n -= strlen(suffixes[i]);
			name[n] = '\0';
			break;
		}
	for (size_t i = 0; i < n; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			name[i] = (char)(name[i] - 'A' + 'a');
	char text[160];
	struct lm_image_ref ref;
	struct lm_error ignored;
	snprintf(text, sizeof(text), "localhost/%s", name);
	if (lm_image_ref_parse(text, NULL, &ref, &ignored) == 0 && !ref.digest && strcmp(ref.tag, "latest") == 0 &&
	    !strchr(name, ':')) {
		lm_image_ref_free(&ref);
	} else {
		/* anything but [a-z0-9] becomes '-', trimmed at both ends */
		size_t o = 0;
		for (size_t i = 0; i < n; i++) {
			bool alnum = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9');
			if (alnum || (o && name[o - 1] != '-'))
				name[o++] = alnum ? name[i] : '-';
		}
		while (o && name[o - 1] == '-')
			o--;
		name[o] = '\0';
		snprintf(text, sizeof(text), "localhost/%s", o ? name : "image");
	}
	if (!(*out = strdup(text)))
		return lm_err(err, ENOMEM, "out of memory");
	return 0;
}

static int setup_names(struct loader *l, const char *path, struct lm_error *err)
{
	if (default_repo(path, &l->default_repo, err) < 0)
		return -1;
	const char *name = l->o->name;
	if (!name)
		return 0;
	struct lm_image_ref ref;
	if (lm_image_ref_parse(name, NULL, &ref, err) < 0)
		return lm_error_prefix(err, "--name");
	l->user_repo = lm_image_ref_name(&ref);
	lm_image_ref_free(&ref);
	if (!l->user_repo)
		return lm_err(err, ENOMEM, "out of memory");
	const char *slash = strrchr(name, '/'), *colon = strrchr(name, ':');
	l->user_pinned = strchr(name, '@') || (colon && (!slash || colon > slash));
	return 0;
}

/* ------------------------------------------------------------------ load */

int lm_image_load(struct lm_store *s, const char *path, const struct lm_load_opts *opts,
		  struct lm_image_record **records, size_t *n, struct lm_error *err)
{
	static const struct lm_load_opts defaults = {0};
	*records = NULL;
	*n = 0;
	struct loader l = {.s = s, .o = opts ? opts : &defaults, .src = {.dirfd = -1}};
	struct lm_store_lease *lease = NULL;
	autofd fd = -1;
	int rc = -1;
	if (setup_names(&l, path, err) < 0)
		goto out;
	/* from the first blob stored until the records are written */
	if (lm_store_lease_acquire(s, &lease, err) < 0)
		goto out;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		lm_err_sys(err, "open");
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		lm_err_sys(err, "stat");
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		l.src.dirfd = steal_fd(&fd);
	} else {
		l.src.is_archive = true;
		if (read_archive(s, &l.src, fd, err) < 0)
			goto out;
	}
	if (source_has(&l.src, "oci-layout")) {
		if (load_oci(&l, err) < 0)
			goto out;
	} else if (source_has(&l.src, "manifest.json")) {
		if (load_docker(&l, err) < 0)
			goto out;
	} else {
		lm_err(err, EINVAL, "neither an OCI image layout (no oci-layout file) nor a docker save archive "
				    "(no manifest.json)");
		goto out;
	}
	rc = realize_all(&l, records, n, err);
out:
	if (rc < 0)
		lm_error_prefix(err, "load %s", path);
	if (lease)
		lm_store_lease_release(lease);
	for (size_t i = 0; i < l.n_plans; i++)
		plan_free(&l.plans[i]);
	free(l.plans);
	free(l.default_repo);
	free(l.user_repo);
	source_free(&l.src);
	return rc;
}
