/* See store.h.
 *
 * Why it is safe to crash anywhere:
 *  - Blobs and snapshots are built in tmp/ and become visible by one
 *    rename (RENAME_NOREPLACE: the first complete copy wins; a later one is
 *    discarded, since equal digests mean equal content).  Blob data and the
 *    directory entry are fsynced; snapshot data is synced with one syncfs()
 *    rather than an fsync per file.
 *  - A snapshot is deleted by first renaming it into tmp/, so a half-removed
 *    tree is never visible under snapshots/.
 *  - Every tmp/ entry is flocked (LOCK_EX) by the open fd of whoever builds
 *    it; the kernel drops the lock when that process dies, which is how
 *    gc_tmp tells a stale entry from a live one without pids or timeouts.
 *    Between creating an entry and locking it there is a window; builders
 *    hold a shared flock on tmp/ itself across it, and gc_tmp scans under
 *    an exclusive one.
 *  - images.json is replaced whole (write temp, fsync, rename) under the
 *    flock on <root>/lock; readers never lock.
 *  - gc.lock separates pulls (shared leases) from prune (exclusive): a blob
 *    fetched but not yet recorded is not garbage.
 * Locks are always taken on a fresh open file description, because flock
 * locks belong to the description: two threads sharing one fd would not
 * exclude each other.
 */
#include "image/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/ref.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define IMAGES_FILE "images.json"
#define IMAGES_MAX (64u << 20)
#define INDEX_LOCK "lock"
#define GC_LOCK "gc.lock"
#define TMP_NAME_SIZE 32

struct lm_store {
	char *root;
	int rootfd, blobsfd, tmpfd, snapfd;
	bool sync;
};

/* ---------------------------------------------------------------- helpers */

/* What lm_err returned for the error already in err. */
static int errcode(const struct lm_error *err)
{
	return err->code > 0 ? -err->code : -1;
}

static bool is_hex64(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

static int write_all_at(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		off += w;
		len -= (size_t)w;
	}
	return 0;
}

static int flock_retry(int fd, int op)
{
	int r;
	while ((r = flock(fd, op)) < 0 && errno == EINTR)
		;
	return r;
}

/* A lock file in the root, locked on its own open file description. */
static int lock_file(struct lm_store *s, const char *name, int op, struct lm_error *err)
{
	autofd fd = openat(s->rootfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return lm_err_sys(err, "open %s/%s", s->root, name);
	if (flock_retry(fd, op) < 0)
		return lm_err_sys(err, "lock %s/%s", s->root, name);
	return steal_fd(&fd);
}

/* Unique without coordination: 64 random bits. */
static void random_name(char out[TMP_NAME_SIZE], const char *prefix)
{
	unsigned char r[8];
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		/* No entropy yet (early boot): unique enough with O_EXCL retries. */
		static unsigned counter;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		unsigned long long v = ((unsigned long long)getpid() << 40) ^ (unsigned long long)ts.tv_nsec ^
				       ((unsigned long long)__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) << 20);
		memcpy(r, &v, sizeof(r));
	}
	snprintf(out, TMP_NAME_SIZE, "%s-%02x%02x%02x%02x%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3], r[4],
		 r[5], r[6], r[7]);
}

/* A new locked entry in tmp/: a file (O_RDWR) or a directory (O_RDONLY). */
static int tmp_create(struct lm_store *s, bool dir, char name[TMP_NAME_SIZE], struct lm_error *err)
{
	autofd guard = openat(s->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (guard < 0 || flock_retry(guard, LOCK_SH) < 0)
		return lm_err_sys(err, "lock %s/tmp", s->root);
	for (int tries = 0; tries < 16; tries++) {
		random_name(name, dir ? "snap" : "blob");
		autofd fd = -1;
		if (dir) {
			if (mkdirat(s->tmpfd, name, 0755) < 0) {
				if (errno == EEXIST)
					continue;
				return lm_err_sys(err, "create %s/tmp/%s", s->root, name);
			}
			fd = openat(s->tmpfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		} else {
			fd = openat(s->tmpfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (fd < 0 && errno == EEXIST)
				continue;
		}
		if (fd < 0)
			return lm_err_sys(err, "create %s/tmp/%s", s->root, name);
		if (flock_retry(fd, LOCK_EX | LOCK_NB) < 0) {
			lm_err_sys(err, "lock %s/tmp/%s", s->root, name);
			lm_rm_rf_at(s->tmpfd, name, &(struct lm_error){ 0 });
			return errcode(err);
		}
		return steal_fd(&fd);
	}
	return lm_err(err, EEXIST, "create %s/tmp: no unused temp name after 16 tries", s->root);
}

/* Apparent size of a tree, not following symlinks.  A file with n links
 * counts 1/n per link: exact when all links are inside the tree, as in a
 * layer. */
static uint64_t tree_size_at(int parent, const char *name)
{
	struct stat st;
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size / (st.st_nlink > 1 ? st.st_nlink : 1);
	if (!S_ISDIR(st.st_mode))
		return 0;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	autoclosedir *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			total += tree_size_at(dirfd(d), de->d_name);
	return total;
}

/* ---------------------------------------------------------------- open */

static int mkdir_p(const char *path, mode_t last_mode, struct lm_error *err)
{
	autofree char *buf = strdup(path);
	if (!buf)
		return lm_err(err, ENOMEM, "out of memory");
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return lm_err_sys(err, "mkdir %s", buf);
		*p = '/';
	}
	if (mkdir(buf, last_mode) < 0 && errno != EEXIST)
		return lm_err_sys(err, "mkdir %s", buf);
	return 0;
}

static int open_subdir(int parent, const char *name, mode_t mode, struct lm_error *err, const char *root)
{
	if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
		return lm_err_sys(err, "mkdir %s/%s", root, name);
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "open %s/%s", root, name);
	return fd;
}

void lm_store_close(struct lm_store *s)
{
	if (!s)
		return;
	int *fds[] = { &s->rootfd, &s->blobsfd, &s->tmpfd, &s->snapfd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(s->root);
	free(s);
}

static int open_layout(struct lm_store *s, struct lm_error *err)
{
	const char *root = s->root;
	if (mkdir_p(root, 0700, err) < 0)
		return errcode(err);
	s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0)
		return lm_err_sys(err, "open %s", root);
	autofd blobs = open_subdir(s->rootfd, "blobs", 0755, err, root);
	if (blobs < 0)
		return errcode(err);
	s->blobsfd = open_subdir(blobs, "sha256", 0755, err, root);
	if (s->blobsfd < 0)
		return lm_error_prefix(err, "blobs");
	s->tmpfd = open_subdir(s->rootfd, "tmp", 0700, err, root);
	if (s->tmpfd < 0)
		return errcode(err);
	s->snapfd = open_subdir(s->rootfd, "snapshots", 0755, err, root);
	if (s->snapfd < 0)
		return errcode(err);
	/* A mount point under the root would turn every commit into EXDEV;
	 * better to say so now. */
	struct stat st_tmp, st_blobs, st_snap;
	if (fstat(s->tmpfd, &st_tmp) < 0 || fstat(s->blobsfd, &st_blobs) < 0 || fstat(s->snapfd, &st_snap) < 0)
		return lm_err_sys(err, "stat %s", root);
	if (st_tmp.st_dev != st_blobs.st_dev || st_tmp.st_dev != st_snap.st_dev)
		return lm_err(err, EXDEV, "tmp, blobs and snapshots must be on one filesystem");
	return 0;
}

int lm_store_open(const char *root, struct lm_store **out, struct lm_error *err)
{
	*out = NULL;
	if (!root || !*root)
		return lm_err(err, EINVAL, "open store: empty root path");
	struct lm_store *s = calloc(1, sizeof(*s));
	if (!s)
		return lm_err(err, ENOMEM, "out of memory");
	s->rootfd = s->blobsfd = s->tmpfd = s->snapfd = -1;
	s->sync = true;
	s->root = strdup(root);
	if (!s->root) {
		lm_store_close(s);
		return lm_err(err, ENOMEM, "out of memory");
	}
	if (open_layout(s, err) < 0) {
		lm_store_close(s);
		return lm_error_prefix(err, "open store %s", root);
	}
	*out = s;
	return 0;
}

const char *lm_store_root(const struct lm_store *s)
{
	return s->root;
}

void lm_store_set_sync(struct lm_store *s, bool on)
{
	s->sync = on;
}

/* ---------------------------------------------------------------- blobs */

struct lm_blob_writer {
	struct lm_store *s;
	char expected[LM_DIGEST_SIZE]; /* "" when not known */
	int64_t expected_size;
	int64_t offset;
	struct lm_sha256 *h;
	int fd;
	char name[TMP_NAME_SIZE];
	bool failed;
	struct lm_error fail; /* replayed by later calls once failed */
};

static void writer_free(struct lm_blob_writer *w, bool remove)
{
	if (remove)
		unlinkat(w->s->tmpfd, w->name, 0);
	if (w->fd >= 0)
		close(w->fd);
	lm_sha256_free(w->h);
	free(w);
}

static const char *writer_label(const struct lm_blob_writer *w)
{
	return w->expected[0] ? w->expected : "(unknown digest)";
}

int lm_blob_writer_open(struct lm_store *s, const char *expected_digest, int64_t expected_size,
			struct lm_blob_writer **out, struct lm_error *err)
{
	*out = NULL;
	if (expected_digest && lm_digest_validate(expected_digest, err) < 0)
		return lm_error_prefix(err, "blob writer");
	if (expected_size < -1)
		return lm_err(err, EINVAL, "blob %s: invalid expected size %lld",
			      expected_digest ? expected_digest : "", (long long)expected_size);
	struct lm_blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return lm_err(err, ENOMEM, "out of memory");
	w->s = s;
	w->fd = -1;
	w->expected_size = expected_size;
	if (expected_digest)
		memcpy(w->expected, expected_digest, LM_DIGEST_SIZE);
	w->h = lm_sha256_new();
	if (!w->h) {
		writer_free(w, false);
		return lm_err(err, ENOMEM, "out of memory");
	}
	w->fd = tmp_create(s, false, w->name, err);
	if (w->fd < 0) {
		writer_free(w, false);
		return lm_error_prefix(err, "blob %s", expected_digest ? expected_digest : "");
	}
	*out = w;
	return 0;
}

static int writer_fail(struct lm_blob_writer *w, struct lm_error *err)
{
	w->failed = true;
	w->fail = *err;
	return errcode(err);
}

int lm_blob_writer_write(struct lm_blob_writer *w, const void *buf, size_t len, struct lm_error *err)
{
	if (w->failed) {
		*err = w->fail;
		return errcode(err);
	}
	if (w->expected_size >= 0 && (uint64_t)len > (uint64_t)(w->expected_size - w->offset)) {
		lm_err(err, EFBIG, "blob %s: more data than the expected %lld bytes", writer_label(w),
		       (long long)w->expected_size);
		return writer_fail(w, err);
	}
	/* Hash only what reached the file, so a failed write never leaves the
	 * hash ahead of the data. */
	if (write_all_at(w->fd, buf, len, (off_t)w->offset) < 0) {
		lm_err_sys(err, "blob %s: write %s/tmp/%s", writer_label(w), w->s->root, w->name);
		return writer_fail(w, err);
	}
	lm_sha256_update(w->h, buf, len);
	w->offset += (int64_t)len;
	return 0;
}

int64_t lm_blob_writer_offset(const struct lm_blob_writer *w)
{
	return w->offset;
}

int lm_blob_writer_fd(const struct lm_blob_writer *w)
{
	return w->fd;
}

int lm_blob_writer_reset(struct lm_blob_writer *w, struct lm_error *err)
{
	struct lm_sha256 *h = lm_sha256_new();
	if (!h)
		return lm_err(err, ENOMEM, "out of memory");
	if (ftruncate(w->fd, 0) < 0) {
		lm_sha256_free(h);
		return lm_err_sys(err, "blob %s: truncate", writer_label(w));
	}
	lm_sha256_free(w->h);
	w->h = h;
	w->offset = 0;
	w->failed = false;
	return 0;
}

/* Moves tmp/name to dir/target unless target exists.  1 when it was there
 * already (tmp/name is left for the caller), 0 when moved. */
static int publish(struct lm_store *s, const char *name, int dirfd, const char *target, bool is_dir,
		   struct lm_error *err)
{
	if (renameat2(s->tmpfd, name, dirfd, target, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST || errno == ENOTEMPTY)
		return 1;
	if (errno != EINVAL && errno != ENOSYS)
		return lm_err_sys(err, "rename %s/tmp/%s to %s", s->root, name, target);
	/* No RENAME_NOREPLACE on this filesystem.  A file can still be placed
	 * without replacing by link(); a directory rename never replaces a
	 * non-empty directory, and snapshot directories are never empty. */
	if (is_dir) {
		if (renameat(s->tmpfd, name, dirfd, target) == 0)
			return 0;
		if (errno == EEXIST || errno == ENOTEMPTY)
			return 1;
		return lm_err_sys(err, "rename %s/tmp/%s to %s", s->root, name, target);
	}
	if (linkat(s->tmpfd, name, dirfd, target, 0) < 0) {
		if (errno == EEXIST)
			return 1;
		return lm_err_sys(err, "link %s/tmp/%s to %s", s->root, name, target);
	}
	unlinkat(s->tmpfd, name, 0);
	return 0;
}

int lm_blob_writer_commit(struct lm_blob_writer *w, char digest_out[LM_DIGEST_SIZE], struct lm_error *err)
{
	struct lm_store *s = w->s;
	if (w->failed) {
		*err = w->fail;
		writer_free(w, true);
		return errcode(err);
	}
	if (w->expected_size >= 0 && w->offset != w->expected_size) {
		lm_err(err, EBADMSG, "blob %s: truncated: got %lld of %lld bytes", writer_label(w),
		       (long long)w->offset, (long long)w->expected_size);
		writer_free(w, true);
		return -EBADMSG;
	}
	char got[LM_DIGEST_SIZE];
	lm_sha256_final(w->h, got);
	w->h = NULL;
	if (w->expected[0] && strcmp(got, w->expected) != 0) {
		lm_err(err, EBADMSG, "blob %s: digest mismatch: the %lld bytes received hash to %s", w->expected,
		       (long long)w->offset, got);
		writer_free(w, true);
		return -EBADMSG;
	}
	/* umask must not decide who may read a blob. */
	if (fchmod(w->fd, 0644) < 0 || fsync(w->fd) < 0) {
		lm_err_sys(err, "blob %s: sync", got);
		writer_free(w, true);
		return errcode(err);
	}
	int r = publish(s, w->name, s->blobsfd, lm_digest_hex(got), false, err);
	if (r < 0) {
		lm_error_prefix(err, "blob %s", got);
		writer_free(w, true);
		return errcode(err);
	}
	writer_free(w, r == 1);
	if (r == 0 && fsync(s->blobsfd) < 0)
		return lm_err_sys(err, "blob %s: sync %s/blobs/sha256", got, s->root);
	if (digest_out)
		memcpy(digest_out, got, LM_DIGEST_SIZE);
	return 0;
}

void lm_blob_writer_abort(struct lm_blob_writer *w)
{
	if (w)
		writer_free(w, true);
}

bool lm_store_blob_exists(struct lm_store *s, const char *digest)
{
	struct lm_error err;
	struct stat st;
	if (lm_digest_validate(digest, &err) < 0)
		return false;
	return fstatat(s->blobsfd, lm_digest_hex(digest), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

int lm_store_blob_open(struct lm_store *s, const char *digest, int *fd_out, struct lm_error *err)
{
	*fd_out = -1;
	if (lm_digest_validate(digest, err) < 0)
		return errcode(err);
	int fd = openat(s->blobsfd, lm_digest_hex(digest), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return lm_err(err, ENOENT, "blob %s not found in %s", digest, s->root);
		return lm_err_sys(err, "open blob %s", digest);
	}
	*fd_out = fd;
	return 0;
}

int lm_store_blob_read(struct lm_store *s, const char *digest, size_t max_size, char **out, size_t *len,
		       struct lm_error *err)
{
	*out = NULL;
	autofd fd = -1;
	if (lm_store_blob_open(s, digest, &fd, err) < 0)
		return errcode(err);
	autofree char *buf = NULL;
	size_t n = 0;
	if (lm_read_fd(fd, max_size, &buf, &n, err) < 0)
		return lm_error_prefix(err, "blob %s", digest);
	char got[LM_DIGEST_SIZE];
	lm_sha256_buffer(buf, n, got);
	if (strcmp(got, digest) != 0) {
		/* Remove it only if it is still the file we read. */
		struct stat a, b;
		bool same = fstat(fd, &a) == 0 &&
			    fstatat(s->blobsfd, lm_digest_hex(digest), &b, AT_SYMLINK_NOFOLLOW) == 0 &&
			    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
		bool removed = same && unlinkat(s->blobsfd, lm_digest_hex(digest), 0) == 0;
		return lm_err(err, EIO, "blob %s is corrupt: its %zu bytes hash to %s%s", digest, n, got,
			      removed ? "; removed it from the store" : "");
	}
	if (len)
		*len = n;
	*out = steal_ptr(&buf);
	return 0;
}

int lm_store_blob_put(struct lm_store *s, const void *buf, size_t len, char digest_out[LM_DIGEST_SIZE],
		      struct lm_error *err)
{
	char digest[LM_DIGEST_SIZE];
	lm_sha256_buffer(buf, len, digest);
	if (digest[0] == '\0')
		return lm_err(err, ENOMEM, "out of memory");
	if (!lm_store_blob_exists(s, digest)) {
		struct lm_blob_writer *w;
		if (lm_blob_writer_open(s, digest, (int64_t)len, &w, err) < 0)
			return errcode(err);
		if (lm_blob_writer_write(w, buf, len, err) < 0) {
			lm_blob_writer_abort(w);
			return errcode(err);
		}
		if (lm_blob_writer_commit(w, NULL, err) < 0)
			return errcode(err);
	}
	if (digest_out)
		memcpy(digest_out, digest, LM_DIGEST_SIZE);
	return 0;
}

/* ---------------------------------------------------------------- snapshots */

int lm_chain_id(const char *parent_chain_id, const char *diff_id, char out[LM_DIGEST_SIZE])
{
	struct lm_error err;
	if (lm_digest_validate(diff_id, &err) < 0 ||
	    (parent_chain_id && lm_digest_validate(parent_chain_id, &err) < 0)) {
		out[0] = '\0';
		return -EINVAL;
	}
	if (!parent_chain_id) {
		memcpy(out, diff_id, LM_DIGEST_SIZE);
		return 0;
	}
	char buf[2 * LM_DIGEST_LEN + 2];
	snprintf(buf, sizeof(buf), "%s %s", parent_chain_id, diff_id);
	lm_sha256_buffer(buf, strlen(buf), out);
	return out[0] ? 0 : -ENOMEM;
}

struct lm_snapshot {
	struct lm_store *s;
	char chain_id[LM_DIGEST_SIZE];
	char name[TMP_NAME_SIZE];
	int dirfd; /* the locked temp directory */
	int fsfd;
};

static void snapshot_free(struct lm_snapshot *snap, bool remove)
{
	if (remove) {
		struct lm_error ignored;
		/* While still locked, so gc_tmp cannot race us; what we fail to
		 * remove is unlocked when we close, and gc_tmp finishes it. */
		lm_rm_rf_at(snap->s->tmpfd, snap->name, &ignored);
	}
	if (snap->fsfd >= 0)
		close(snap->fsfd);
	if (snap->dirfd >= 0)
		close(snap->dirfd);
	free(snap);
}

bool lm_store_snapshot_exists(struct lm_store *s, const char *chain_id)
{
	struct lm_error err;
	if (lm_digest_validate(chain_id, &err) < 0)
		return false;
	char path[64 + 4];
	snprintf(path, sizeof(path), "%s/fs", lm_digest_hex(chain_id));
	struct stat st;
	return fstatat(s->snapfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

char *lm_store_snapshot_path(struct lm_store *s, const char *chain_id)
{
	struct lm_error err;
	if (lm_digest_validate(chain_id, &err) < 0)
		return NULL;
	char *p = NULL;
	if (asprintf(&p, "%s/snapshots/%s/fs", s->root, lm_digest_hex(chain_id)) < 0)
		return NULL;
	return p;
}

int lm_store_snapshot_begin(struct lm_store *s, const char *chain_id, struct lm_snapshot **out,
			    struct lm_error *err)
{
	*out = NULL;
	if (lm_digest_validate(chain_id, err) < 0)
		return lm_error_prefix(err, "snapshot");
	struct lm_snapshot *snap = calloc(1, sizeof(*snap));
	if (!snap)
		return lm_err(err, ENOMEM, "out of memory");
	snap->s = s;
	snap->fsfd = -1;
	memcpy(snap->chain_id, chain_id, LM_DIGEST_SIZE);
	snap->dirfd = tmp_create(s, true, snap->name, err);
	if (snap->dirfd < 0) {
		snapshot_free(snap, false);
		return lm_error_prefix(err, "snapshot %s", chain_id);
	}
	if (mkdirat(snap->dirfd, "fs", 0755) < 0 || fchmodat(snap->dirfd, "fs", 0755, 0) < 0 ||
	    (snap->fsfd = openat(snap->dirfd, "fs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		lm_err_sys(err, "snapshot %s: create %s/tmp/%s/fs", chain_id, s->root, snap->name);
		snapshot_free(snap, true);
		return errcode(err);
	}
	*out = snap;
	return 0;
}

int lm_store_snapshot_fs_fd(const struct lm_snapshot *snap)
{
	return snap->fsfd;
}

int lm_store_snapshot_commit(struct lm_snapshot *snap, struct lm_error *err)
{
	struct lm_store *s = snap->s;
	char id[LM_DIGEST_SIZE];
	memcpy(id, snap->chain_id, sizeof(id));
	if (s->sync && syncfs(snap->fsfd) < 0) {
		lm_err_sys(err, "snapshot %s: syncfs", id);
		snapshot_free(snap, true);
		return errcode(err);
	}
	int r = publish(s, snap->name, s->snapfd, lm_digest_hex(id), true, err);
	snapshot_free(snap, r != 0);
	if (r < 0)
		return lm_error_prefix(err, "snapshot %s", id);
	if (r == 0 && s->sync && fsync(s->snapfd) < 0)
		return lm_err_sys(err, "snapshot %s: sync %s/snapshots", id, s->root);
	return 0;
}

void lm_store_snapshot_abort(struct lm_snapshot *snap)
{
	if (snap)
		snapshot_free(snap, true);
}

/* ---------------------------------------------------------------- leases */

struct lm_store_lease {
	int fd;
};

int lm_store_lease_acquire(struct lm_store *s, struct lm_store_lease **out, struct lm_error *err)
{
	*out = NULL;
	struct lm_store_lease *l = malloc(sizeof(*l));
	if (!l)
		return lm_err(err, ENOMEM, "out of memory");
	l->fd = lock_file(s, GC_LOCK, LOCK_SH, err);
	if (l->fd < 0) {
		free(l);
		return lm_error_prefix(err, "store lease");
	}
	*out = l;
	return 0;
}

void lm_store_lease_release(struct lm_store_lease *lease)
{
	if (!lease)
		return;
	close(lease->fd);
	free(lease);
}

/* ---------------------------------------------------------------- records */

void lm_image_record_free(struct lm_image_record *rec)
{
	if (!rec)
		return;
	for (size_t i = 0; i < rec->n_layers; i++) {
		if (rec->layer_digests)
			free(rec->layer_digests[i]);
		if (rec->diff_ids)
			free(rec->diff_ids[i]);
		if (rec->chain_ids)
			free(rec->chain_ids[i]);
	}
	free(rec->layer_digests);
	free(rec->diff_ids);
	free(rec->chain_ids);
	free(rec->name);
	free(rec->manifest_digest);
	free(rec->config_digest);
	free(rec->created);
	free(rec->platform);
	free(rec->index_digest);
	memset(rec, 0, sizeof(*rec));
}

void lm_image_record_list_free(struct lm_image_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lm_image_record_free(&recs[i]);
	free(recs);
}

static int dup_str(const char *in, char **out)
{
	*out = NULL;
	if (!in)
		return 0;
	*out = strdup(in);
	return *out ? 0 : -1;
}

static int record_copy(const struct lm_image_record *in, struct lm_image_record *out, struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	out->size = in->size;
	if (dup_str(in->name, &out->name) < 0 || dup_str(in->manifest_digest, &out->manifest_digest) < 0 ||
	    dup_str(in->config_digest, &out->config_digest) < 0 || dup_str(in->created, &out->created) < 0 ||
	    dup_str(in->platform, &out->platform) < 0 || dup_str(in->index_digest, &out->index_digest) < 0)
		goto oom;
	if (in->n_layers) {
		out->layer_digests = calloc(in->n_layers, sizeof(char *));
		out->diff_ids = calloc(in->n_layers, sizeof(char *));
		out->chain_ids = calloc(in->n_layers, sizeof(char *));
		if (!out->layer_digests || !out->diff_ids || !out->chain_ids)
			goto oom;
		out->n_layers = in->n_layers;
		for (size_t i = 0; i < in->n_layers; i++)
			if (dup_str(in->layer_digests[i], &out->layer_digests[i]) < 0 ||
			    dup_str(in->diff_ids[i], &out->diff_ids[i]) < 0 ||
			    dup_str(in->chain_ids[i], &out->chain_ids[i]) < 0)
				goto oom;
	}
	return 0;
oom:
	lm_image_record_free(out);
	return lm_err(err, ENOMEM, "out of memory");
}

/* Structure and digests, not existence. */
static int record_check(const struct lm_image_record *r, struct lm_error *err)
{
	const char *name = r->name ? r->name : "";
	if (!*name)
		return lm_err(err, EINVAL, "image record without a name");
	struct lm_image_ref ref;
	if (lm_image_ref_parse(name, NULL, &ref, err) < 0)
		return lm_error_prefix(err, "image record");
	autofree char *norm = lm_image_ref_string(&ref);
	lm_image_ref_free(&ref);
	if (!norm)
		return lm_err(err, ENOMEM, "out of memory");
	if (strcmp(norm, name) != 0)
		return lm_err(err, EINVAL, "image record name \"%s\" is not normalised (expected \"%s\")", name, norm);
	if (lm_digest_validate(r->manifest_digest, err) < 0)
		return lm_error_prefix(err, "image %s: manifest", name);
	if (lm_digest_validate(r->config_digest, err) < 0)
		return lm_error_prefix(err, "image %s: config", name);
	if (r->index_digest && lm_digest_validate(r->index_digest, err) < 0)
		return lm_error_prefix(err, "image %s: index", name);
	if (r->n_layers && (!r->layer_digests || !r->diff_ids || !r->chain_ids))
		return lm_err(err, EINVAL, "image %s: %zu layers but missing layer arrays", name, r->n_layers);
	for (size_t i = 0; i < r->n_layers; i++) {
		if (lm_digest_validate(r->layer_digests[i], err) < 0)
			return lm_error_prefix(err, "image %s: layer %zu", name, i);
		if (lm_digest_validate(r->diff_ids[i], err) < 0)
			return lm_error_prefix(err, "image %s: layer %zu diff id", name, i);
		if (lm_digest_validate(r->chain_ids[i], err) < 0)
			return lm_error_prefix(err, "image %s: layer %zu chain id", name, i);
		char want[LM_DIGEST_SIZE];
		lm_chain_id(i ? r->chain_ids[i - 1] : NULL, r->diff_ids[i], want);
		if (strcmp(want, r->chain_ids[i]) != 0)
			return lm_err(err, EINVAL,
				      "image %s: layer %zu: chain id %s does not follow from the diff ids (expected %s)",
				      name, i, r->chain_ids[i], want);
	}
	return 0;
}

static int json_str(json_t *obj, const char *key, bool required, char **out, struct lm_error *err)
{
	*out = NULL;
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		if (required)
			return lm_err(err, EINVAL, "missing \"%s\"", key);
		return 0;
	}
	if (!json_is_string(v))
		return lm_err(err, EINVAL, "\"%s\" is not a string", key);
	*out = strdup(json_string_value(v));
	return *out ? 0 : lm_err(err, ENOMEM, "out of memory");
}

static int record_from_json(json_t *j, struct lm_image_record *r, struct lm_error *err)
{
	memset(r, 0, sizeof(*r));
	if (!json_is_object(j))
		return lm_err(err, EINVAL, "not an object");
	if (json_str(j, "name", true, &r->name, err) < 0 ||
	    json_str(j, "manifest_digest", true, &r->manifest_digest, err) < 0 ||
	    json_str(j, "config_digest", true, &r->config_digest, err) < 0 ||
	    json_str(j, "index_digest", false, &r->index_digest, err) < 0 ||
	    json_str(j, "created", false, &r->created, err) < 0 ||
	    json_str(j, "platform", false, &r->platform, err) < 0)
		goto fail;
	json_t *size = json_object_get(j, "size");
	if (size && !json_is_integer(size)) {
		lm_err(err, EINVAL, "\"size\" is not an integer");
		goto fail;
	}
	r->size = size ? (int64_t)json_integer_value(size) : -1;
	json_t *layers = json_object_get(j, "layers");
	if (layers && !json_is_array(layers)) {
		lm_err(err, EINVAL, "\"layers\" is not an array");
		goto fail;
	}
	size_t n = json_array_size(layers);
	if (n) {
		r->layer_digests = calloc(n, sizeof(char *));
		r->diff_ids = calloc(n, sizeof(char *));
		r->chain_ids = calloc(n, sizeof(char *));
		if (!r->layer_digests || !r->diff_ids || !r->chain_ids) {
			lm_err(err, ENOMEM, "out of memory");
			goto fail;
		}
		r->n_layers = n;
		for (size_t i = 0; i < n; i++) {
			json_t *l = json_array_get(layers, i);
			if (!json_is_object(l)) {
				lm_err(err, EINVAL, "layer %zu is not an object", i);
				goto fail;
			}
			if (json_str(l, "digest", true, &r->layer_digests[i], err) < 0 ||
			    json_str(l, "diff_id", true, &r->diff_ids[i], err) < 0 ||
			    json_str(l, "chain_id", true, &r->chain_ids[i], err) < 0) {
				lm_error_prefix(err, "layer %zu", i);
				goto fail;
			}
		}
	}
	if (record_check(r, err) < 0)
		goto fail;
	return 0;
fail:
	lm_image_record_free(r);
	return errcode(err);
}

static json_t *record_to_json(const struct lm_image_record *r)
{
	json_t *layers = json_array();
	for (size_t i = 0; layers && i < r->n_layers; i++)
		json_array_append_new(layers, json_pack("{s:s, s:s, s:s}", "digest", r->layer_digests[i], "diff_id",
							r->diff_ids[i], "chain_id", r->chain_ids[i]));
	json_t *j = json_pack("{s:s, s:s, s:s, s:s*, s:I, s:s*, s:s*, s:o*}", "name", r->name, "manifest_digest",
			      r->manifest_digest, "config_digest", r->config_digest, "index_digest", r->index_digest,
			      "size", (json_int_t)r->size, "created", r->created, "platform", r->platform, "layers",
			      layers);
	if (!j || json_array_size(layers) != r->n_layers) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* All records; a missing file is an empty store. */
static int load_records(struct lm_store *s, struct lm_image_record **out, size_t *n, struct lm_error *err)
{
	*out = NULL;
	*n = 0;
	autofree char *data = NULL;
	size_t len = 0;
	if (lm_read_file_at(s->rootfd, IMAGES_FILE, IMAGES_MAX, &data, &len, err) < 0) {
		if (err->code == ENOENT)
			return 0;
		return lm_error_prefix(err, "%s", s->root);
	}
	json_error_t jerr;
	json_t *root = json_loadb(data, len, 0, &jerr);
	if (!root)
		return lm_err(err, EINVAL, "%s/%s: line %d column %d: %s", s->root, IMAGES_FILE, jerr.line,
			      jerr.column, jerr.text);
	json_t *images = json_object_get(root, "images");
	if (!json_is_object(root) || !json_is_array(images)) {
		json_decref(root);
		return lm_err(err, EINVAL, "%s/%s: expected {\"images\": [...]}", s->root, IMAGES_FILE);
	}
	size_t count = json_array_size(images);
	struct lm_image_record *recs = calloc(count ? count : 1, sizeof(*recs));
	if (!recs) {
		json_decref(root);
		return lm_err(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < count; i++) {
		if (record_from_json(json_array_get(images, i), &recs[i], err) < 0) {
			lm_image_record_list_free(recs, i);
			json_decref(root);
			return lm_error_prefix(err, "%s/%s: image %zu", s->root, IMAGES_FILE, i);
		}
	}
	json_decref(root);
	*out = recs;
	*n = count;
	return 0;
}

/* Caller holds the index lock. */
static int save_records(struct lm_store *s, const struct lm_image_record *recs, size_t n,
			struct lm_error *err)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *j = record_to_json(&recs[i]);
		if (!j || json_array_append_new(arr, j) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	json_t *root = arr ? json_pack("{s:i, s:o}", "version", 1, "images", arr) : NULL;
	autofree char *data = root ? json_dumps(root, JSON_INDENT(1)) : NULL;
	json_decref(root);
	if (!data)
		return lm_err(err, ENOMEM, "%s/%s: out of memory", s->root, IMAGES_FILE);
	if (lm_write_file_atomic_at(s->rootfd, IMAGES_FILE, data, strlen(data), 0600, err) < 0)
		return lm_error_prefix(err, "%s", s->root);
	if (fsync(s->rootfd) < 0)
		return lm_err_sys(err, "sync %s", s->root);
	return 0;
}

/* Index of the record called name (exact, else normalised), or -1. */
static ssize_t find_name(const struct lm_image_record *recs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(recs[i].name, name) == 0)
			return (ssize_t)i;
	struct lm_image_ref ref;
	struct lm_error err;
	if (lm_image_ref_parse(name, NULL, &ref, &err) < 0)
		return -1;
	autofree char *norm = lm_image_ref_string(&ref);
	lm_image_ref_free(&ref);
	for (size_t i = 0; norm && i < n; i++)
		if (strcmp(recs[i].name, norm) == 0)
			return (ssize_t)i;
	return -1;
}

static void now_rfc3339(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int lm_store_image_put(struct lm_store *s, const struct lm_image_record *rec, struct lm_error *err)
{
	if (record_check(rec, err) < 0)
		return errcode(err);
	struct lm_image_record copy;
	if (record_copy(rec, &copy, err) < 0)
		return errcode(err);
	if (!copy.created) {
		char now[32];
		now_rfc3339(now);
		copy.created = strdup(now);
		if (!copy.created) {
			lm_image_record_free(&copy);
			return lm_err(err, ENOMEM, "out of memory");
		}
	}
	if (copy.size < 0) {
		copy.size = 0;
		for (size_t i = 0; i < copy.n_layers; i++) {
			struct stat st;
			if (fstatat(s->blobsfd, lm_digest_hex(copy.layer_digests[i]), &st, AT_SYMLINK_NOFOLLOW) == 0)
				copy.size += st.st_size;
		}
	}
	autofd lock = lock_file(s, INDEX_LOCK, LOCK_EX, err);
	if (lock < 0) {
		lm_image_record_free(&copy);
		return errcode(err);
	}
	/* Checked under the lock: prune holds it while it deletes. */
	const char *missing = NULL, *what = NULL;
	if (!lm_store_blob_exists(s, copy.manifest_digest))
		missing = copy.manifest_digest, what = "manifest blob";
	else if (!lm_store_blob_exists(s, copy.config_digest))
		missing = copy.config_digest, what = "config blob";
	else if (copy.index_digest && !lm_store_blob_exists(s, copy.index_digest))
		missing = copy.index_digest, what = "index blob";
	for (size_t i = 0; !missing && i < copy.n_layers; i++)
		if (!lm_store_snapshot_exists(s, copy.chain_ids[i]))
			missing = copy.chain_ids[i], what = "layer snapshot";
	if (missing) {
		lm_err(err, ENOENT, "image %s: %s %s is not in the store", copy.name, what, missing);
		lm_image_record_free(&copy);
		return -ENOENT;
	}
	struct lm_image_record *recs = NULL;
	size_t n = 0;
	if (load_records(s, &recs, &n, err) < 0) {
		lm_image_record_free(&copy);
		return lm_error_prefix(err, "store image %s", rec->name);
	}
	ssize_t at = -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(recs[i].name, copy.name) == 0)
			at = (ssize_t)i;
	if (at >= 0) {
		lm_image_record_free(&recs[at]);
		recs[at] = copy;
	} else {
		struct lm_image_record *grown = realloc(recs, (n + 1) * sizeof(*recs));
		if (!grown) {
			lm_image_record_free(&copy);
			lm_image_record_list_free(recs, n);
			return lm_err(err, ENOMEM, "out of memory");
		}
		recs = grown;
		recs[n++] = copy;
	}
	int r = save_records(s, recs, n, err);
	lm_image_record_list_free(recs, n);
	return r < 0 ? lm_error_prefix(err, "store image %s", rec->name) : 0;
}

int lm_store_image_list(struct lm_store *s, struct lm_image_record **out, size_t *n, struct lm_error *err)
{
	return load_records(s, out, n, err);
}

/* Moves recs[i] to *out and frees the rest. */
static void take_record(struct lm_image_record *recs, size_t n, size_t i, struct lm_image_record *out)
{
	*out = recs[i];
	memset(&recs[i], 0, sizeof(recs[i]));
	lm_image_record_list_free(recs, n);
}

int lm_store_image_get(struct lm_store *s, const char *name, struct lm_image_record *out,
		       struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	struct lm_image_record *recs;
	size_t n;
	if (load_records(s, &recs, &n, err) < 0)
		return errcode(err);
	ssize_t i = find_name(recs, n, name);
	if (i < 0) {
		lm_image_record_list_free(recs, n);
		return lm_err(err, ENOENT, "image %s not found", name);
	}
	take_record(recs, n, (size_t)i, out);
	return 0;
}

int lm_store_image_find_by_id(struct lm_store *s, const char *prefix, struct lm_image_record *out,
			      struct lm_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *hex = strncmp(prefix, "sha256:", 7) == 0 ? prefix + 7 : prefix;
	size_t hl = strlen(hex);
	bool ok = hl > 0 && hl <= 64;
	for (size_t i = 0; ok && i < hl; i++)
		ok = (hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f');
	if (!ok)
		return lm_err(err, EINVAL, "invalid image id \"%.80s\": expected 1 to 64 lowercase hex digits", prefix);
	struct lm_image_record *recs;
	size_t n;
	if (load_records(s, &recs, &n, err) < 0)
		return errcode(err);
	ssize_t found = -1;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(lm_digest_hex(recs[i].config_digest), hex, hl) != 0)
			continue;
		if (found < 0) {
			found = (ssize_t)i;
		} else if (strcmp(recs[found].config_digest, recs[i].config_digest) != 0) {
			lm_err(err, ENOTUNIQ, "image id %s is ambiguous: it matches %s and %s", prefix,
			       recs[found].config_digest, recs[i].config_digest);
			lm_image_record_list_free(recs, n);
			return -ENOTUNIQ;
		}
	}
	if (found < 0) {
		lm_image_record_list_free(recs, n);
		return lm_err(err, ENOENT, "image %s not found", prefix);
	}
	take_record(recs, n, (size_t)found, out);
	return 0;
}

int lm_store_image_remove(struct lm_store *s, const char *name, struct lm_error *err)
{
	autofd lock = lock_file(s, INDEX_LOCK, LOCK_EX, err);
	if (lock < 0)
		return errcode(err);
	struct lm_image_record *recs;
	size_t n;
	if (load_records(s, &recs, &n, err) < 0)
		return errcode(err);
	ssize_t i = find_name(recs, n, name);
	if (i < 0) {
		lm_image_record_list_free(recs, n);
		return lm_err(err, ENOENT, "image %s not found", name);
	}
	lm_image_record_free(&recs[i]);
	memmove(&recs[i], &recs[i + 1], (n - (size_t)i - 1) * sizeof(*recs));
	n--;
	int r = save_records(s, recs, n, err);
	lm_image_record_list_free(recs, n);
	return r < 0 ? lm_error_prefix(err, "remove image %s", name) : 0;
}

/* A directory stream over a directory fd, on its own open file
 * description (readdir's position is not shared with dirfd); NULL with errno. */
static DIR *opendir_at(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

/* ---------------------------------------------------------------- gc */

int lm_store_gc_tmp(struct lm_store *s, uint64_t *freed_bytes, struct lm_error *err)
{
	if (freed_bytes)
		*freed_bytes = 0;
	autofd guard = openat(s->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (guard < 0 || flock_retry(guard, LOCK_EX) < 0)
		return lm_err_sys(err, "lock %s/tmp", s->root);
	autoclosedir *d = opendir_at(s->tmpfd);
	if (!d)
		return lm_err_sys(err, "open %s/tmp", s->root);
	int result = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		/* O_NONBLOCK: a stray fifo must not hang us.  Anything that cannot
		 * be opened (a symlink, a socket) is not a builder's entry. */
		autofd fd = openat(s->tmpfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd >= 0 && flock_retry(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno == EWOULDBLOCK)
				continue; /* its builder is alive */
			if (!result)
				result = lm_err_sys(err, "lock %s/tmp/%s", s->root, name);
			continue;
		}
		uint64_t size = tree_size_at(s->tmpfd, name);
		struct lm_error rerr;
		if (lm_rm_rf_at(s->tmpfd, name, &rerr) < 0) {
			if (!result) {
				*err = rerr;
				result = lm_error_prefix(err, "%s/tmp", s->root);
			}
			continue;
		}
		if (freed_bytes)
			*freed_bytes += size;
	}
	return result;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted hex names of everything the records reference (borrowed pointers). */
struct keep_set {
	const char **v;
	size_t n;
};

static bool keep_has(const struct keep_set *k, const char *hex)
{
	return k->n && bsearch(&hex, k->v, k->n, sizeof(*k->v), cmp_str);
}

static int prune_blobs(struct lm_store *s, const struct keep_set *keep, uint64_t *freed, struct lm_error *err)
{
	autoclosedir *d = opendir_at(s->blobsfd);
	if (!d)
		return lm_err_sys(err, "open %s/blobs/sha256", s->root);
	int result = 0;
	bool removed = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		/* Only names the store itself makes: never delete what we do not know. */
		if (!is_hex64(de->d_name) || keep_has(keep, de->d_name))
			continue;
		struct stat st;
		if (fstatat(s->blobsfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (unlinkat(s->blobsfd, de->d_name, 0) < 0) {
			if (errno != ENOENT && !result)
				result = lm_err_sys(err, "remove blob sha256:%s", de->d_name);
			continue;
		}
		removed = true;
		*freed += (uint64_t)st.st_size;
	}
	if (removed && fsync(s->blobsfd) < 0 && !result)
		result = lm_err_sys(err, "sync %s/blobs/sha256", s->root);
	return result;
}

static int prune_snapshots(struct lm_store *s, const struct keep_set *keep, uint64_t *freed,
			   struct lm_error *err)
{
	autoclosedir *d = opendir_at(s->snapfd);
	if (!d)
		return lm_err_sys(err, "open %s/snapshots", s->root);
	int result = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_hex64(de->d_name) || keep_has(keep, de->d_name))
			continue;
		/* Out of sight first, then removed: a half-removed tree must never
		 * look like a snapshot.  Locked before the move, so gc_tmp leaves
		 * it to us until we are done or dead. */
		autofd fd = openat(s->snapfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || flock_retry(fd, LOCK_EX | LOCK_NB) < 0) {
			if (!result && errno != ENOENT)
				result = lm_err_sys(err, "remove snapshot sha256:%s", de->d_name);
			continue;
		}
		char dead[TMP_NAME_SIZE];
		random_name(dead, "dead");
		if (renameat(s->snapfd, de->d_name, s->tmpfd, dead) < 0) {
			if (!result)
				result = lm_err_sys(err, "remove snapshot sha256:%s", de->d_name);
			continue;
		}
		uint64_t size = tree_size_at(s->tmpfd, dead);
		struct lm_error rerr;
		if (lm_rm_rf_at(s->tmpfd, dead, &rerr) < 0) {
			if (!result) {
				*err = rerr;
				result = lm_error_prefix(err, "remove snapshot sha256:%s", de->d_name);
			}
			continue;
		}
		*freed += size;
	}
	if (s->sync && fsync(s->snapfd) < 0 && !result)
		result = lm_err_sys(err, "sync %s/snapshots", s->root);
	return result;
}

/* images.json temp files of writers that died mid-write (we hold the index lock). */
static void prune_index_temps(struct lm_store *s)
{
	autoclosedir *d = opendir_at(s->rootfd);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, IMAGES_FILE ".tmp-", strlen(IMAGES_FILE ".tmp-")) == 0)
			unlinkat(s->rootfd, de->d_name, 0);
}

int lm_store_prune(struct lm_store *s, uint64_t *freed_bytes, struct lm_error *err)
{
	return lm_store_prune_keeping(s, NULL, 0, freed_bytes, err);
}

int lm_store_prune_keeping(struct lm_store *s, const char *const *keep_chain_ids, size_t n_keep,
			   uint64_t *freed_bytes, struct lm_error *err)
{
	if (freed_bytes)
		*freed_bytes = 0;
	autofd gc = lock_file(s, GC_LOCK, LOCK_EX | LOCK_NB, err);
	if (gc < 0) {
		if (err->code == EWOULDBLOCK)
			return lm_err(err, EBUSY, "prune %s: a pull is storing an image right now; try again when it is done",
				      s->root);
		return lm_error_prefix(err, "prune");
	}
	autofd lock = lock_file(s, INDEX_LOCK, LOCK_EX, err);
	if (lock < 0)
		return lm_error_prefix(err, "prune");
	struct lm_image_record *recs;
	size_t n;
	if (load_records(s, &recs, &n, err) < 0)
		return lm_error_prefix(err, "prune");

	struct keep_set blobs = { 0 }, snaps = { 0 };
	struct lm_error e_keep;
	size_t cap = n_keep;
	for (size_t i = 0; i < n; i++)
		cap += 3 + recs[i].n_layers;
	blobs.v = calloc(cap ? cap : 1, sizeof(char *));
	snaps.v = calloc(cap ? cap : 1, sizeof(char *));
	int result = 0;
	uint64_t freed = 0;
	if (!blobs.v || !snaps.v) {
		result = lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct lm_image_record *r = &recs[i];
		blobs.v[blobs.n++] = lm_digest_hex(r->manifest_digest);
		blobs.v[blobs.n++] = lm_digest_hex(r->config_digest);
		if (r->index_digest)
			blobs.v[blobs.n++] = lm_digest_hex(r->index_digest);
		for (size_t l = 0; l < r->n_layers; l++) {
			blobs.v[blobs.n++] = lm_digest_hex(r->layer_digests[l]);
			snaps.v[snaps.n++] = lm_digest_hex(r->chain_ids[l]);
		}
	}
	for (size_t i = 0; i < n_keep; i++)
		if (lm_digest_validate(keep_chain_ids[i], &e_keep) == 0)
			snaps.v[snaps.n++] = lm_digest_hex(keep_chain_ids[i]);
	qsort(blobs.v, blobs.n, sizeof(*blobs.v), cmp_str);
	qsort(snaps.v, snaps.n, sizeof(*snaps.v), cmp_str);

	/* Keep going after a failure: one stuck entry should not keep the
	 * rest; the first error is the one reported. */
	struct lm_error e2;
	uint64_t tmp_freed = 0;
	if (prune_snapshots(s, &snaps, &freed, err) < 0)
		result = -1;
	if (prune_blobs(s, &blobs, &freed, result ? &e2 : err) < 0 && !result)
		result = -1;
	if (lm_store_gc_tmp(s, &tmp_freed, result ? &e2 : err) < 0 && !result)
		result = -1;
	freed += tmp_freed;
	prune_index_temps(s);
	if (result < 0)
		lm_error_prefix(err, "prune %s", s->root);
out:
	free(blobs.v);
	free(snaps.v);
	lm_image_record_list_free(recs, n);
	if (freed_bytes)
		*freed_bytes = freed;
	return result < 0 ? errcode(err) : 0;
}
