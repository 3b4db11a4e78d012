/* Unit tests for image/store.c: the content store, on real files.
 *
 * Each test gets a fresh /tmp/lm-store-XXXXXX with the store root one level
 * below (so lm_store_open has to create it).  What matters for a store is
 * what another process would see on disk, so the checks look at the
 * directories themselves: after a failed commit nothing may be under blobs/
 * and nothing may be left in tmp/; after a crash (a child that _exits
 * mid-write) the leftovers must be found by gc and only those.  Concurrency
 * is tested with forked processes, because flock and rename semantics are
 * about processes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/digest.h"
#include "image/store.h"
#include "util/fs.h"
#include "testutil.h"

/* ---------------------------------------------------------------- fixture */

static char tmp[64];
static char root[128];
static struct lm_store *S;

static int setup(void **state)
{
	(void)state;
	if (tu_mkdtemp(tmp, sizeof(tmp), "store") < 0)
		return -1;
	snprintf(root, sizeof(root), "%s/var/lamina", tmp);
	struct lm_error err = { 0 };
	if (lm_store_open(root, &S, &err) < 0) {
		fprintf(stderr, "lm_store_open: %s\n", err.msg);
		return -1;
	}
	/* Durability is not under test here and syncfs slows every commit. */
	lm_store_set_sync(S, false);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lm_store_close(S);
	S = NULL;
	struct lm_error err = { 0 };
	return lm_rm_rf_at(AT_FDCWD, tmp, &err);
}

static int count_entries(const char *sub)
{
	char p[PATH_MAX];
	FMT(p, "%s/%s", root, sub);
	return tu_count_entries(p);
}

static void blob_path(char *out, size_t size, const char *digest)
{
	int n = snprintf(out, size, "%s/blobs/sha256/%s", root, lm_digest_hex(digest));
	assert_true(n > 0 && (size_t)n < size);
}

static char *slurp(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	struct lm_error err = { 0 };
	if (lm_read_file_at(AT_FDCWD, path, 1 << 24, &data, &len, &err) < 0)
		fail_msg("read %s: %s", path, err.msg);
	return data;
}

static void digest_of(const char *s, char out[LM_DIGEST_SIZE])
{
	lm_sha256_buffer(s, strlen(s), out);
}

/* A whole blob through a writer, in chunks of `chunk` bytes. */
static int write_blob(struct lm_store *s, const char *expected, int64_t size, const char *data, size_t len,
		      size_t chunk, char out[LM_DIGEST_SIZE], struct lm_error *err)
{
	struct lm_blob_writer *w;
	if (lm_blob_writer_open(s, expected, size, &w, err) < 0)
		return -1;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		if (lm_blob_writer_write(w, data + off, n, err) < 0) {
			lm_blob_writer_abort(w);
			return -1;
		}
	}
	return lm_blob_writer_commit(w, out, err);
}

/* ---------------------------------------------------------------- open */

static void test_open_layout(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(stat(root, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	const char *dirs[] = { "blobs", "blobs/sha256", "tmp", "snapshots" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char p[PATH_MAX];
		FMT(p, "%s/%s", root, dirs[i]);
		if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
			fail_msg("%s is not a directory", p);
	}
	char p[PATH_MAX];
	FMT(p, "%s/tmp", root);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_string_equal(lm_store_root(S), root);

	/* Opening an existing store changes nothing. */
	struct lm_store *again;
	struct lm_error err = { 0 };
	assert_ok(lm_store_open(root, &again, &err), err);
	lm_store_close(again);

	/* A root under a regular file cannot be made. */
	FMT(p, "%s/file", tmp);
	tu_put_file(p, "x");
	FMT(p, "%s/file/store", tmp);
	assert_true(lm_store_open(p, &again, &err) < 0);
	assert_null(again);
	assert_int_equal(err.code, ENOTDIR);
	assert_contains(err.msg, "open store");

	assert_true(lm_store_open("", &again, &err) < 0);
	assert_int_equal(err.code, EINVAL);
	lm_store_close(NULL);
}

/* ---------------------------------------------------------------- blobs */

static void test_blob_commit_good(void **state)
{
	(void)state;
	const char *data = "hello, content store\n";
	char d[LM_DIGEST_SIZE], got[LM_DIGEST_SIZE] = "";
	digest_of(data, d);
	mode_t old = umask(077); /* the blob must still be 0644 */
	struct lm_error err = { 0 };
	struct lm_blob_writer *w;
	assert_ok(lm_blob_writer_open(S, d, (int64_t)strlen(data), &w, &err), err);
	assert_int_equal(lm_blob_writer_offset(w), 0);
	assert_ok(lm_blob_writer_write(w, data, 5, &err), err);
	assert_int_equal(lm_blob_writer_offset(w), 5);
	assert_int_equal(count_entries("tmp"), 1);
	assert_false(lm_store_blob_exists(S, d));
	assert_ok(lm_blob_writer_write(w, data + 5, strlen(data) - 5, &err), err);
	assert_int_equal(lm_blob_writer_offset(w), (int64_t)strlen(data));
	assert_ok(lm_blob_writer_commit(w, got, &err), err);
	umask(old);

	assert_string_equal(got, d);
	assert_true(lm_store_blob_exists(S, d));
	char p[PATH_MAX];
	blob_path(p, sizeof(p), d);
	char *content = slurp(p);
	assert_string_equal(content, data);
	free(content);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(count_entries("tmp"), 0);
	assert_int_equal(count_entries("blobs/sha256"), 1);
}

/* The unpacker reads the blob while it downloads, through a dup of the
 * writer's fd, and keeps reading after commit (or abort) closed the writer. */
static void test_blob_read_while_writing(void **state)
{
	(void)state;
	const char *data = "first half|second half";
	char d[LM_DIGEST_SIZE];
	digest_of(data, d);
	struct lm_error err = { 0 };
	struct lm_blob_writer *w;
	assert_ok(lm_blob_writer_open(S, d, (int64_t)strlen(data), &w, &err), err);
	int rd = dup(lm_blob_writer_fd(w));
	assert_true(rd >= 0);
	char buf[64] = { 0 };
	assert_ok(lm_blob_writer_write(w, data, 11, &err), err);
	assert_int_equal(pread(rd, buf, sizeof(buf), 0), 11);
	assert_memory_equal(buf, data, 11);
	assert_ok(lm_blob_writer_write(w, data + 11, strlen(data) - 11, &err), err);
	assert_ok(lm_blob_writer_commit(w, NULL, &err), err);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pread(rd, buf, sizeof(buf), 11), (ssize_t)strlen(data) - 11);
	assert_string_equal(buf, data + 11);
	close(rd);

	/* After abort the bytes are still readable, but nothing is stored. */
	char d2[LM_DIGEST_SIZE];
	digest_of("abandoned", d2);
	assert_ok(lm_blob_writer_open(S, d2, 9, &w, &err), err);
	rd = dup(lm_blob_writer_fd(w));
	assert_ok(lm_blob_writer_write(w, "aband", 5, &err), err);
	lm_blob_writer_abort(w);
	assert_int_equal(pread(rd, buf, sizeof(buf), 0), 5);
	close(rd);
	assert_false(lm_store_blob_exists(S, d2));
	assert_int_equal(count_entries("tmp"), 0);
}

static void test_blob_wrong_digest(void **state)
{
	(void)state;
	char d[LM_DIGEST_SIZE];
	digest_of("what the manifest promised", d);
	const char *data = "what the registry sent.....";
	struct lm_error err = { 0 };
	assert_true(write_blob(S, d, (int64_t)strlen(data), data, strlen(data), 4, NULL, &err) < 0);
	assert_int_equal(err.code, EBADMSG);
	assert_contains(err.msg, "digest mismatch");
	assert_contains(err.msg, d);
	assert_false(lm_store_blob_exists(S, d));
	assert_int_equal(count_entries("blobs/sha256"), 0);
	assert_int_equal(count_entries("tmp"), 0);
}

static void test_blob_too_many_bytes(void **state)
{
	(void)state;
	const char *data = "0123456789";
	char d[LM_DIGEST_SIZE];
	digest_of("01234", d);
	struct lm_error err = { 0 };
	struct lm_blob_writer *w;
	assert_ok(lm_blob_writer_open(S, d, 5, &w, &err), err);
	assert_ok(lm_blob_writer_write(w, data, 3, &err), err);
	/* Crossing the limit in the middle of a chunk fails at once. */
	assert_int_equal(lm_blob_writer_write(w, data + 3, 3, &err), -EFBIG);
	assert_contains(err.msg, "more data than the expected 5 bytes");
	assert_int_equal(lm_blob_writer_offset(w), 3);
	/* And stays failed, even for bytes that would fit. */
	memset(&err, 0, sizeof(err));
	assert_true(lm_blob_writer_write(w, data + 3, 2, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	memset(&err, 0, sizeof(err));
	assert_true(lm_blob_writer_commit(w, NULL, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	assert_false(lm_store_blob_exists(S, d));
	assert_int_equal(count_entries("tmp"), 0);

	/* Exactly the expected size, then one byte more. */
	assert_ok(lm_blob_writer_open(S, d, 5, &w, &err), err);
	assert_ok(lm_blob_writer_write(w, data, 5, &err), err);
	assert_true(lm_blob_writer_write(w, "x", 1, &err) < 0);
	lm_blob_writer_abort(w);
	assert_int_equal(count_entries("tmp"), 0);
	assert_int_equal(count_entries("blobs/sha256"), 0);
}

static void test_blob_too_few_bytes(void **state)
{
	(void)state;
	const char *data = "0123456789";
	char d[LM_DIGEST_SIZE];
	digest_of(data, d);
	struct lm_error err = { 0 };
	/* The digest of the prefix would not match either; the size is reported first. */
	assert_true(write_blob(S, d, 10, data, 5, 5, NULL, &err) < 0);
	assert_int_equal(err.code, EBADMSG);
	assert_contains(err.msg, "truncated: got 5 of 10 bytes");
	assert_false(lm_store_blob_exists(S, d));
	assert_int_equal(count_entries("tmp"), 0);
	assert_int_equal(count_entries("blobs/sha256"), 0);
}

static void test_blob_unknown_digest_and_size(void **state)
{
	(void)state;
	const char *data = "stored under what it hashes to";
	char want[LM_DIGEST_SIZE], got[LM_DIGEST_SIZE];
	digest_of(data, want);
	struct lm_error err = { 0 };
	assert_ok(write_blob(S, NULL, -1, data, strlen(data), 7, got, &err), err);
	assert_string_equal(got, want);
	assert_true(lm_store_blob_exists(S, want));

	/* Invalid arguments. */
	struct lm_blob_writer *w;
	assert_true(lm_blob_writer_open(S, "sha256:nothex", 1, &w, &err) < 0);
	assert_null(w);
	assert_int_equal(err.code, EINVAL);
	assert_true(lm_blob_writer_open(S, want, -2, &w, &err) < 0);
	assert_int_equal(count_entries("tmp"), 0);
}

static void test_blob_reset(void **state)
{
	(void)state;
	const char *data = "the right bytes";
	char d[LM_DIGEST_SIZE];
	digest_of(data, d);
	struct lm_error err = { 0 };
	struct lm_blob_writer *w;
	assert_ok(lm_blob_writer_open(S, d, (int64_t)strlen(data), &w, &err), err);
	assert_ok(lm_blob_writer_write(w, "garbage from a server that ignored Range", 10, &err), err);
	assert_ok(lm_blob_writer_reset(w, &err), err);
	assert_int_equal(lm_blob_writer_offset(w), 0);
	assert_ok(lm_blob_writer_write(w, data, strlen(data), &err), err);
	assert_ok(lm_blob_writer_commit(w, NULL, &err), err);
	char p[PATH_MAX];
	blob_path(p, sizeof(p), d);
	char *content = slurp(p);
	assert_string_equal(content, data);
	free(content);
}

static void test_blob_existing(void **state)
{
	(void)state;
	const char *data = "already here";
	char d[LM_DIGEST_SIZE], got[LM_DIGEST_SIZE];
	struct lm_error err = { 0 };
	assert_ok(lm_store_blob_put(S, data, strlen(data), d, &err), err);
	char p[PATH_MAX];
	blob_path(p, sizeof(p), d);
	struct stat before, after;
	assert_int_equal(stat(p, &before), 0);

	/* A second copy commits fine; the first stays. */
	assert_ok(write_blob(S, d, (int64_t)strlen(data), data, strlen(data), 3, got, &err), err);
	assert_string_equal(got, d);
	assert_int_equal(stat(p, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(count_entries("tmp"), 0);
	assert_int_equal(count_entries("blobs/sha256"), 1);

	/* put of a blob that exists writes nothing. */
	assert_ok(lm_store_blob_put(S, data, strlen(data), got, &err), err);
	assert_string_equal(got, d);
	assert_int_equal(stat(p, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	/* Empty blobs are blobs too. */
	assert_ok(lm_store_blob_put(S, "", 0, got, &err), err);
	assert_string_equal(got, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_true(lm_store_blob_exists(S, got));
}

static void test_blob_concurrent_writers(void **state)
{
	(void)state;
	enum { N = 6, SIZE = 256 * 1024 };
	char *data = malloc(SIZE);
	assert_non_null(data);
	for (size_t i = 0; i < SIZE; i++)
		data[i] = (char)(i * 31 + i / 251);
	char d[LM_DIGEST_SIZE];
	lm_sha256_buffer(data, SIZE, d);
	for (int round = 0; round < 3; round++) {
		pid_t pids[N];
		for (int i = 0; i < N; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				/* Half share the parent's handle, half open their own. */
				struct lm_store *s = S;
				struct lm_error err = { 0 };
				if (i % 2 && lm_store_open(root, &s, &err) < 0)
					_exit(2);
				lm_store_set_sync(s, false);
				char got[LM_DIGEST_SIZE];
				int r = write_blob(s, d, SIZE, data, SIZE, 4096 + (size_t)i * 1000, got, &err);
				if (r < 0)
					fprintf(stderr, "writer %d: %s\n", i, err.msg);
				_exit(r < 0 || strcmp(got, d) != 0 ? 1 : 0);
			}
		}
		for (int i = 0; i < N; i++) {
			int status;
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
		}
		assert_true(lm_store_blob_exists(S, d));
		assert_int_equal(count_entries("tmp"), 0);
		assert_int_equal(count_entries("blobs/sha256"), 1);
		char *back = NULL;
		size_t len = 0;
		struct lm_error err = { 0 };
		assert_ok(lm_store_blob_read(S, d, SIZE, &back, &len, &err), err);
		assert_int_equal(len, SIZE);
		assert_memory_equal(back, data, SIZE);
		free(back);
		char p[PATH_MAX];
		blob_path(p, sizeof(p), d);
		assert_int_equal(unlink(p), 0);
	}
	free(data);
}

static void test_blob_abort(void **state)
{
	(void)state;
	char d[LM_DIGEST_SIZE];
	digest_of("abc", d);
	struct lm_error err = { 0 };
	struct lm_blob_writer *w;
	assert_ok(lm_blob_writer_open(S, d, 3, &w, &err), err);
	assert_ok(lm_blob_writer_write(w, "ab", 2, &err), err);
	assert_int_equal(count_entries("tmp"), 1);
	lm_blob_writer_abort(w);
	lm_blob_writer_abort(NULL);
	assert_int_equal(count_entries("tmp"), 0);
	assert_false(lm_store_blob_exists(S, d));
}

static void test_blob_read_verifies(void **state)
{
	(void)state;
	const char *json = "{\"schemaVersion\":2}";
	char d[LM_DIGEST_SIZE];
	struct lm_error err = { 0 };
	assert_ok(lm_store_blob_put(S, json, strlen(json), d, &err), err);
	char *buf = NULL;
	size_t len = 0;
	assert_ok(lm_store_blob_read(S, d, 1024, &buf, &len, &err), err);
	assert_int_equal(len, strlen(json));
	assert_string_equal(buf, json);
	free(buf);

	/* Too big for the caller's limit. */
	assert_true(lm_store_blob_read(S, d, 5, &buf, &len, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	assert_null(buf);
	assert_true(lm_store_blob_exists(S, d)); /* too big is not corrupt */

	/* Bit rot on disk: found, reported, removed. */
	char p[PATH_MAX];
	blob_path(p, sizeof(p), d);
	tu_put_file(p, "{\"schemaVersion\":3}");
	memset(&err, 0, sizeof(err));
	assert_int_equal(lm_store_blob_read(S, d, 1024, &buf, &len, &err), -EIO);
	assert_null(buf);
	assert_contains(err.msg, "is corrupt");
	assert_contains(err.msg, d);
	assert_contains(err.msg, "removed");
	assert_false(lm_store_blob_exists(S, d));

	/* Gone, and malformed digests. */
	assert_true(lm_store_blob_read(S, d, 1024, &buf, &len, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "not found");
	assert_true(lm_store_blob_read(S, "sha256:../../etc/passwd", 1024, &buf, &len, &err) < 0);
	assert_int_equal(err.code, EINVAL);
	assert_false(lm_store_blob_exists(S, "sha256:../../etc/passwd"));
	assert_false(lm_store_blob_exists(S, "md5:abc"));
}

static void test_blob_open(void **state)
{
	(void)state;
	const char *data = "layer bytes";
	char d[LM_DIGEST_SIZE];
	struct lm_error err = { 0 };
	assert_ok(lm_store_blob_put(S, data, strlen(data), d, &err), err);
	int fd = -1;
	assert_ok(lm_store_blob_open(S, d, &fd, &err), err);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	char buf[64] = { 0 };
	assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)strlen(data));
	assert_string_equal(buf, data);
	close(fd);
	digest_of("absent", d);
	assert_int_equal(lm_store_blob_open(S, d, &fd, &err), -ENOENT);
	assert_int_equal(fd, -1);
}

/* ---------------------------------------------------------------- gc of tmp */

static void test_gc_tmp(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	char d[LM_DIGEST_SIZE], chain[LM_DIGEST_SIZE];
	digest_of("0123456789", d);
	digest_of("a layer", chain);

	/* A writer and an unpacker killed mid-way leave their temp entries. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct lm_blob_writer *w;
		struct lm_snapshot *snap;
		if (lm_blob_writer_open(S, d, 10, &w, &err) < 0 || lm_blob_writer_write(w, "01234", 5, &err) < 0 ||
		    lm_store_snapshot_begin(S, chain, &snap, &err) < 0)
			_exit(1);
		int fs = lm_store_snapshot_fs_fd(snap);
		if (mkdirat(fs, "etc", 0555) < 0)
			_exit(1);
		int f = openat(fs, "etc/passwd", O_WRONLY | O_CREAT, 0444);
		if (f < 0 || write(f, "root:x:0:0::/root:/bin/sh\n", 26) != 26)
			_exit(1);
		if (mknodat(fs, "etc/gone", S_IFCHR | 0, makedev(0, 0)) < 0)
			_exit(1);
		_exit(0); /* no abort: as if killed */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(count_entries("tmp"), 2);

	/* Live builders in this process. */
	struct lm_blob_writer *live;
	assert_ok(lm_blob_writer_open(S, d, 10, &live, &err), err);
	assert_ok(lm_blob_writer_write(live, "01234", 5, &err), err);
	struct lm_snapshot *live_snap;
	assert_ok(lm_store_snapshot_begin(S, chain, &live_snap, &err), err);

	/* Strays that are nobody's: a symlink and a fifo (must not hang us). */
	char p[PATH_MAX];
	FMT(p, "%s/tmp/stray-link", root);
	assert_int_equal(symlink("/etc", p), 0);
	FMT(p, "%s/tmp/stray-fifo", root);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(count_entries("tmp"), 6);

	uint64_t freed = 0;
	assert_ok(lm_store_gc_tmp(S, &freed, &err), err);
	assert_int_equal(count_entries("tmp"), 2);
	assert_int_equal(freed, 5 + 26);
	assert_int_equal(access("/etc/passwd", F_OK), 0);

	/* The live ones still work. */
	assert_ok(lm_blob_writer_write(live, "56789", 5, &err), err);
	assert_ok(lm_blob_writer_commit(live, NULL, &err), err);
	assert_true(lm_store_blob_exists(S, d));
	assert_ok(lm_store_snapshot_commit(live_snap, &err), err);
	assert_true(lm_store_snapshot_exists(S, chain));
	assert_int_equal(count_entries("tmp"), 0);
	assert_ok(lm_store_gc_tmp(S, NULL, &err), err);
}

/* ---------------------------------------------------------------- chain ids */

#define L0 "sha256:4fbec69b941195fd56f8212a5000e304129451d82efca94ff0e0fb2d5355472e" /* "layer0" */
#define L1 "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2" /* "layer1" */
#define L2 "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06" /* "layer2" */
/* printf '%s %s' L0 L1 | sha256sum, then the same with C1 and L2 */
#define C1 "sha256:ef232af0eb422cdfd7917631657cd8ed2bfd5b9461b37c427aa0d3e0a19adf79"
#define C2 "sha256:7ad3896338947cc04ee0b35b50d400ff32538d63f42f85ec87feac78bf71a54d"

static void sha256sum_of(const char *text, char out[LM_DIGEST_SIZE])
{
	char cmd[512];
	FMT(cmd, "printf '%%s' '%s' | sha256sum", text);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char hex[65] = { 0 };
	assert_int_equal(fscanf(f, "%64s", hex), 1);
	assert_int_equal(pclose(f), 0);
	snprintf(out, LM_DIGEST_SIZE, "sha256:%s", hex);
}

static void test_chain_id(void **state)
{
	(void)state;
	char c0[LM_DIGEST_SIZE], c1[LM_DIGEST_SIZE], c2[LM_DIGEST_SIZE];
	assert_int_equal(lm_chain_id(NULL, L0, c0), 0);
	assert_string_equal(c0, L0);
	assert_int_equal(lm_chain_id(c0, L1, c1), 0);
	assert_string_equal(c1, C1);
	assert_int_equal(lm_chain_id(c1, L2, c2), 0);
	assert_string_equal(c2, C2);

	/* And against sha256sum on this machine, for a pair not hard-coded. */
	char text[200], want[LM_DIGEST_SIZE], got[LM_DIGEST_SIZE];
	FMT(text, "%s %s", L2, L0);
	sha256sum_of(text, want);
	assert_int_equal(lm_chain_id(L2, L0, got), 0);
	assert_string_equal(got, want);

	assert_int_equal(lm_chain_id(NULL, "sha256:xyz", got), -EINVAL);
	assert_int_equal(lm_chain_id("sha512:00", L0, got), -EINVAL);
	assert_int_equal(lm_chain_id(L0, "", got), -EINVAL);
}

/* ---------------------------------------------------------------- snapshots */

static void test_snapshot_commit(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	struct lm_snapshot *snap;
	assert_false(lm_store_snapshot_exists(S, C1));
	assert_ok(lm_store_snapshot_begin(S, C1, &snap, &err), err);
	int fs = lm_store_snapshot_fs_fd(snap);
	assert_true(fs >= 0);
	struct stat st;
	assert_int_equal(fstat(fs, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(mkdirat(fs, "bin", 0755), 0);
	int f = openat(fs, "bin/sh", O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	assert_true(f >= 0);
	assert_int_equal(write(f, "#!", 2), 2);
	close(f);
	assert_int_equal(symlinkat("sh", fs, "bin/ash"), 0);
	/* Not visible while in progress. */
	assert_false(lm_store_snapshot_exists(S, C1));
	assert_int_equal(count_entries("snapshots"), 0);
	assert_ok(lm_store_snapshot_commit(snap, &err), err);

	assert_true(lm_store_snapshot_exists(S, C1));
	assert_false(lm_store_snapshot_exists(S, C2));
	assert_false(lm_store_snapshot_exists(S, "garbage"));
	char *path = lm_store_snapshot_path(S, C1);
	char want[PATH_MAX];
	FMT(want, "%s/snapshots/%s/fs", root, lm_digest_hex(C1));
	assert_string_equal(path, want);
	char p[PATH_MAX];
	FMT(p, "%s/bin/sh", path);
	char *content = slurp(p);
	assert_string_equal(content, "#!");
	free(content);
	char link[16] = { 0 };
	FMT(p, "%s/bin/ash", path);
	assert_int_equal(readlink(p, link, sizeof(link) - 1), 2);
	assert_string_equal(link, "sh");
	free(path);
	assert_null(lm_store_snapshot_path(S, "sha256:short"));
	assert_int_equal(count_entries("tmp"), 0);

	/* With sync on, the same path works (syncfs before the rename). */
	lm_store_set_sync(S, true);
	assert_ok(lm_store_snapshot_begin(S, C2, &snap, &err), err);
	assert_ok(lm_store_snapshot_commit(snap, &err), err);
	assert_true(lm_store_snapshot_exists(S, C2));

	assert_true(lm_store_snapshot_begin(S, "sha256:nope", &snap, &err) < 0);
	assert_null(snap);
	assert_int_equal(err.code, EINVAL);
}

static void test_snapshot_abort(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	/* Something outside that a symlink in the layer points at. */
	char outside[PATH_MAX], sentinel[PATH_MAX];
	FMT(outside, "%s/outside", tmp);
	assert_int_equal(mkdir(outside, 0755), 0);
	FMT(sentinel, "%s/keep", outside);
	tu_put_file(sentinel, "keep");

	struct lm_snapshot *snap;
	assert_ok(lm_store_snapshot_begin(S, L0, &snap, &err), err);
	int fs = lm_store_snapshot_fs_fd(snap);
	assert_int_equal(mkdirat(fs, "usr", 0755), 0);
	assert_int_equal(mknodat(fs, "usr/.wh-style-whiteout", S_IFCHR | 0, makedev(0, 0)), 0);
	assert_int_equal(mkdirat(fs, "ro", 0755), 0);
	int f = openat(fs, "ro/file", O_WRONLY | O_CREAT | O_CLOEXEC, 0);
	assert_true(f >= 0);
	close(f);
	assert_int_equal(mkdirat(fs, "ro/sub", 0), 0);
	assert_int_equal(fchmodat(fs, "ro", 0555, 0), 0);
	assert_int_equal(symlinkat(outside, fs, "escape"), 0);
	assert_int_equal(symlinkat("/", fs, "root"), 0);
	assert_int_equal(mkfifoat(fs, "fifo", 0600), 0);
	/* Deep enough to matter for a recursive walk. */
	char deep[PATH_MAX] = "d";
	for (int i = 0; i < 100; i++) {
		assert_int_equal(mkdirat(fs, deep, 0700), 0);
		strcat(deep, "/d");
	}
	assert_int_equal(count_entries("tmp"), 1);
	lm_store_snapshot_abort(snap);
	lm_store_snapshot_abort(NULL);

	assert_int_equal(count_entries("tmp"), 0);
	assert_int_equal(count_entries("snapshots"), 0);
	assert_false(lm_store_snapshot_exists(S, L0));
	assert_int_equal(access(sentinel, F_OK), 0);
	assert_int_equal(access("/etc/passwd", F_OK), 0);
}

static void test_snapshot_same_chain_twice(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	struct lm_snapshot *a, *b;
	assert_ok(lm_store_snapshot_begin(S, C1, &a, &err), err);
	assert_ok(lm_store_snapshot_begin(S, C1, &b, &err), err);
	int fa = openat(lm_store_snapshot_fs_fd(a), "who", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	int fb = openat(lm_store_snapshot_fs_fd(b), "who", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fa >= 0 && fb >= 0);
	assert_int_equal(write(fa, "a", 1), 1);
	assert_int_equal(write(fb, "b", 1), 1);
	close(fa);
	close(fb);
	assert_ok(lm_store_snapshot_commit(b, &err), err);
	assert_ok(lm_store_snapshot_commit(a, &err), err); /* loses the race: discarded, fine */
	char p[PATH_MAX];
	FMT(p, "%s/snapshots/%s/fs/who", root, lm_digest_hex(C1));
	char *who = slurp(p);
	assert_string_equal(who, "b");
	free(who);
	assert_int_equal(count_entries("tmp"), 0);
	assert_int_equal(count_entries("snapshots"), 1);
}

/* ---------------------------------------------------------------- images */

/* An image with everything its record needs in the store.  Layer i has the
 * diff id of layer_texts[i] and a snapshot holding one file. */
struct image {
	struct lm_image_record rec;
	char manifest[LM_DIGEST_SIZE], config[LM_DIGEST_SIZE];
	char layers[4][LM_DIGEST_SIZE], diffs[4][LM_DIGEST_SIZE], chains[4][LM_DIGEST_SIZE];
	char *lp[4], *dp[4], *cp[4];
};

static void make_image(struct image *im, const char *name, const char *config_text, const char **layer_texts,
		       size_t n)
{
	struct lm_error err = { 0 };
	memset(im, 0, sizeof(*im));
	char buf[256];
	assert_ok(lm_store_blob_put(S, config_text, strlen(config_text), im->config, &err), err);
	for (size_t i = 0; i < n; i++) {
		FMT(buf, "gzip of %s", layer_texts[i]);
		assert_ok(lm_store_blob_put(S, buf, strlen(buf), im->layers[i], &err), err);
		digest_of(layer_texts[i], im->diffs[i]);
		assert_int_equal(lm_chain_id(i ? im->chains[i - 1] : NULL, im->diffs[i], im->chains[i]), 0);
		if (!lm_store_snapshot_exists(S, im->chains[i])) {
			struct lm_snapshot *snap;
			assert_ok(lm_store_snapshot_begin(S, im->chains[i], &snap, &err), err);
			int f = openat(lm_store_snapshot_fs_fd(snap), "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			assert_true(f >= 0);
			assert_int_equal(write(f, layer_texts[i], strlen(layer_texts[i])),
					 (ssize_t)strlen(layer_texts[i]));
			close(f);
			assert_ok(lm_store_snapshot_commit(snap, &err), err);
		}
		im->lp[i] = im->layers[i];
		im->dp[i] = im->diffs[i];
		im->cp[i] = im->chains[i];
	}
	FMT(buf, "manifest of %s with %zu layers", config_text, n);
	assert_ok(lm_store_blob_put(S, buf, strlen(buf), im->manifest, &err), err);
	im->rec = (struct lm_image_record){
		.name = (char *)name,
		.manifest_digest = im->manifest,
		.config_digest = im->config,
		.layer_digests = im->lp,
		.diff_ids = im->dp,
		.chain_ids = im->cp,
		.n_layers = n,
		.size = -1,
		.platform = (char *)"linux/amd64",
	};
}

static void test_image_put_get_list_remove(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	const char *layers[] = { "base", "app" };
	struct image a, b;
	make_image(&a, "docker.io/library/busybox:latest", "{\"config\":\"a\"}", layers, 2);
	make_image(&b, "127.0.0.1:5000/app:1.2", "{\"config\":\"b\"}", layers, 1);

	struct lm_image_record *list;
	size_t n = 99;
	assert_ok(lm_store_image_list(S, &list, &n, &err), err);
	assert_int_equal(n, 0);
	lm_image_record_list_free(list, n);

	assert_ok(lm_store_image_put(S, &a.rec, &err), err);
	assert_ok(lm_store_image_put(S, &b.rec, &err), err);

	struct lm_image_record got;
	assert_ok(lm_store_image_get(S, "docker.io/library/busybox:latest", &got, &err), err);
	assert_string_equal(got.name, "docker.io/library/busybox:latest");
	assert_string_equal(got.manifest_digest, a.manifest);
	assert_string_equal(got.config_digest, a.config);
	assert_int_equal(got.n_layers, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(got.layer_digests[i], a.layers[i]);
		assert_string_equal(got.diff_ids[i], a.diffs[i]);
		assert_string_equal(got.chain_ids[i], a.chains[i]);
	}
	/* Size: the layer blobs "gzip of base" + "gzip of app". */
	assert_int_equal(got.size, (int64_t)(strlen("gzip of base") + strlen("gzip of app")));
	assert_string_equal(got.platform, "linux/amd64");
	assert_non_null(got.created);
	assert_int_equal(strlen(got.created), 20); /* 2024-01-02T03:04:05Z */
	assert_int_equal(got.created[19], 'Z');
	assert_null(got.index_digest);
	lm_image_record_free(&got);
	assert_null(got.name);

	/* Short names find normalised records. */
	assert_ok(lm_store_image_get(S, "busybox", &got, &err), err);
	assert_string_equal(got.config_digest, a.config);
	lm_image_record_free(&got);
	assert_ok(lm_store_image_get(S, "127.0.0.1:5000/app:1.2", &got, &err), err);
	assert_string_equal(got.config_digest, b.config);
	lm_image_record_free(&got);

	assert_ok(lm_store_image_list(S, &list, &n, &err), err);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, a.rec.name);
	assert_string_equal(list[1].name, b.rec.name);
	lm_image_record_list_free(list, n);

	/* Same name again: replaced in place, with what we give it. */
	struct image a2;
	make_image(&a2, "docker.io/library/busybox:latest", "{\"config\":\"a2\"}", layers, 1);
	a2.rec.created = (char *)"2020-01-01T00:00:00Z";
	a2.rec.size = 1234;
	a2.rec.index_digest = a.manifest;
	assert_ok(lm_store_image_put(S, &a2.rec, &err), err);
	assert_ok(lm_store_image_list(S, &list, &n, &err), err);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].config_digest, a2.config);
	assert_string_equal(list[0].created, "2020-01-01T00:00:00Z");
	assert_int_equal(list[0].size, 1234);
	assert_string_equal(list[0].index_digest, a.manifest);
	assert_int_equal(list[0].n_layers, 1);
	lm_image_record_list_free(list, n);

	char p[PATH_MAX];
	FMT(p, "%s/images.json", root);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Remove, by short name. */
	assert_ok(lm_store_image_remove(S, "busybox:latest", &err), err);
	memset(&err, 0, sizeof(err));
	assert_int_equal(lm_store_image_get(S, "busybox", &got, &err), -ENOENT);
	assert_string_equal(err.msg, "image busybox not found");
	assert_null(got.name);
	assert_int_equal(lm_store_image_remove(S, "busybox", &err), -ENOENT);
	assert_string_equal(err.msg, "image busybox not found");
	assert_int_equal(lm_store_image_get(S, "not a ref!", &got, &err), -ENOENT);
	assert_ok(lm_store_image_list(S, &list, &n, &err), err);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, b.rec.name);
	lm_image_record_list_free(list, n);
	/* The blobs stay until prune. */
	assert_true(lm_store_blob_exists(S, a.manifest));
	assert_int_equal(count_entries("tmp"), 0);
}

static void test_image_put_rejects(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	const char *layers[] = { "one", "two" };
	struct image im;
	make_image(&im, "docker.io/library/x:1", "{}", layers, 2);

	struct lm_image_record r = im.rec;
	r.name = (char *)"x:1";
	assert_int_equal(lm_store_image_put(S, &r, &err), -EINVAL);
	assert_contains(err.msg, "not normalised");
	assert_contains(err.msg, "docker.io/library/x:1");

	r = im.rec;
	r.name = NULL;
	assert_int_equal(lm_store_image_put(S, &r, &err), -EINVAL);

	r = im.rec;
	r.config_digest = (char *)"sha256:abc";
	assert_int_equal(lm_store_image_put(S, &r, &err), -EINVAL);
	assert_contains(err.msg, "config");

	/* Chain ids must follow from the diff ids. */
	r = im.rec;
	char *swapped[2] = { im.cp[1], im.cp[0] };
	r.chain_ids = swapped;
	assert_int_equal(lm_store_image_put(S, &r, &err), -EINVAL);
	assert_contains(err.msg, "does not follow from the diff ids");

	/* Everything must be in the store: a record never points at nothing. */
	char absent[LM_DIGEST_SIZE];
	digest_of("never stored", absent);
	r = im.rec;
	r.manifest_digest = absent;
	assert_int_equal(lm_store_image_put(S, &r, &err), -ENOENT);
	assert_contains(err.msg, "manifest blob");
	assert_contains(err.msg, "is not in the store");
	r = im.rec;
	r.index_digest = absent;
	assert_int_equal(lm_store_image_put(S, &r, &err), -ENOENT);
	assert_contains(err.msg, "index blob");

	char d0[LM_DIGEST_SIZE], c0[LM_DIGEST_SIZE];
	digest_of("a layer never unpacked", d0);
	lm_chain_id(NULL, d0, c0);
	char *dp[1] = { d0 }, *cp[1] = { c0 };
	r = im.rec;
	r.n_layers = 1;
	r.diff_ids = dp;
	r.chain_ids = cp;
	assert_int_equal(lm_store_image_put(S, &r, &err), -ENOENT);
	assert_contains(err.msg, "layer snapshot");

	/* Layer blobs may be absent (streamed straight into the unpacker). */
	r = im.rec;
	char *lp[2] = { absent, absent };
	r.layer_digests = lp;
	assert_ok(lm_store_image_put(S, &r, &err), err);

	/* Nothing was stored by the failures. */
	struct lm_image_record *list;
	size_t n;
	assert_ok(lm_store_image_list(S, &list, &n, &err), err);
	assert_int_equal(n, 1);
	lm_image_record_list_free(list, n);
}

static void test_images_json_corrupt(void **state)
{
	(void)state;
	char p[PATH_MAX];
	FMT(p, "%s/images.json", root);
	struct lm_error err = { 0 };
	struct lm_image_record *list;
	size_t n;

	tu_put_file(p, "{\"images\": [ {\"name\": ");
	assert_int_equal(lm_store_image_list(S, &list, &n, &err), -EINVAL);
	assert_contains(err.msg, "images.json: line 1");

	tu_put_file(p, "[]");
	assert_true(lm_store_image_list(S, &list, &n, &err) < 0);
	assert_contains(err.msg, "expected {\"images\"");

	tu_put_file(p, "{\"images\": [{\"name\": \"docker.io/library/a:1\", \"manifest_digest\": \"sha256:00\","
		      " \"config_digest\": \"x\"}]}");
	assert_true(lm_store_image_list(S, &list, &n, &err) < 0);
	assert_contains(err.msg, "image 0");
	assert_contains(err.msg, "manifest");

	/* A corrupt index is not silently replaced by a put. */
	const char *layers[] = { "l" };
	struct image im;
	make_image(&im, "docker.io/library/y:1", "{}", layers, 1);
	assert_true(lm_store_image_put(S, &im.rec, &err) < 0);
	char *content = slurp(p);
	assert_contains(content, "sha256:00");
	free(content);
}

static void test_find_by_id(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	const char *layers[] = { "l" };
	/* Two configs whose digests share the first hex digit, for ambiguity. */
	char cfg_a[64], cfg_b[64], da[LM_DIGEST_SIZE], db[LM_DIGEST_SIZE];
	FMT(cfg_a, "{\"n\":0}");
	digest_of(cfg_a, da);
	for (int i = 1;; i++) {
		FMT(cfg_b, "{\"n\":%d}", i);
		digest_of(cfg_b, db);
		if (db[7] == da[7])
			break;
	}
	struct image a, a_tag2, b;
	make_image(&a, "docker.io/library/a:1", cfg_a, layers, 1);
	make_image(&a_tag2, "docker.io/library/a:2", cfg_a, layers, 1);
	make_image(&b, "docker.io/library/b:1", cfg_b, layers, 1);
	assert_ok(lm_store_image_put(S, &a.rec, &err), err);
	assert_ok(lm_store_image_put(S, &a_tag2.rec, &err), err);
	assert_ok(lm_store_image_put(S, &b.rec, &err), err);

	/* Find the shortest prefix of a that is not a prefix of b. */
	size_t k = 0;
	while (da[7 + k] == db[7 + k])
		k++;
	char prefix[80];
	FMT(prefix, "%.*s", (int)(k + 1), da + 7);

	struct lm_image_record got;
	assert_ok(lm_store_image_find_by_id(S, prefix, &got, &err), err); /* two tags, one image: fine */
	assert_string_equal(got.config_digest, da);
	lm_image_record_free(&got);
	FMT(prefix, "sha256:%.12s", da + 7);
	assert_ok(lm_store_image_find_by_id(S, prefix, &got, &err), err);
	assert_string_equal(got.config_digest, da);
	lm_image_record_free(&got);
	assert_ok(lm_store_image_find_by_id(S, db, &got, &err), err);
	assert_string_equal(got.name, "docker.io/library/b:1");
	lm_image_record_free(&got);

	FMT(prefix, "%.1s", da + 7);
	assert_int_equal(lm_store_image_find_by_id(S, prefix, &got, &err), -ENOTUNIQ);
	assert_contains(err.msg, "ambiguous");
	assert_null(got.name);

	char none[LM_DIGEST_SIZE];
	digest_of("no such config", none);
	FMT(prefix, "%.12s", none + 7);
	if (strncmp(prefix, da + 7, 12) != 0 && strncmp(prefix, db + 7, 12) != 0) {
		assert_int_equal(lm_store_image_find_by_id(S, prefix, &got, &err), -ENOENT);
		assert_contains(err.msg, "not found");
	}
	assert_int_equal(lm_store_image_find_by_id(S, "xyz", &got, &err), -EINVAL);
	assert_int_equal(lm_store_image_find_by_id(S, "", &got, &err), -EINVAL);
	assert_int_equal(lm_store_image_find_by_id(S, "sha256:", &got, &err), -EINVAL);
	assert_int_equal(lm_store_image_find_by_id(S, "ABC", &got, &err), -EINVAL);
}

/* ---------------------------------------------------------------- prune */

static void test_prune(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	const char *la[] = { "shared base", "a top" };
	const char *lb[] = { "shared base", "b top" };
	struct image a, b;
	make_image(&a, "docker.io/library/a:1", "{\"a\":1}", la, 2);
	make_image(&b, "docker.io/library/b:1", "{\"b\":1}", lb, 2);
	assert_ok(lm_store_image_put(S, &a.rec, &err), err);
	assert_ok(lm_store_image_put(S, &b.rec, &err), err);

	/* Garbage: an unrecorded blob, an unrecorded snapshot with a hard link,
	 * a stale tmp entry, and names the store never makes (left alone). */
	char junk[LM_DIGEST_SIZE], junk_chain[LM_DIGEST_SIZE];
	assert_ok(lm_store_blob_put(S, "0123456789", 10, junk, &err), err);
	digest_of("junk layer", junk_chain);
	struct lm_snapshot *snap;
	assert_ok(lm_store_snapshot_begin(S, junk_chain, &snap, &err), err);
	int fs = lm_store_snapshot_fs_fd(snap);
	int f = openat(fs, "data", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_int_equal(write(f, "12345678901234567890", 20), 20);
	close(f);
	assert_int_equal(linkat(fs, "data", fs, "data-link", 0), 0);
	assert_int_equal(mknodat(fs, "whiteout", S_IFCHR, makedev(0, 0)), 0);
	assert_ok(lm_store_snapshot_commit(snap, &err), err);
	char p[PATH_MAX];
	FMT(p, "%s/tmp/blob-deadbeefdeadbeef", root);
	tu_put_file(p, "12345");
	FMT(p, "%s/blobs/sha256/README", root);
	tu_put_file(p, "not a blob");
	FMT(p, "%s/images.json.tmp-999999", root);
	tu_put_file(p, "half a write");

	int blobs_before = count_entries("blobs/sha256");
	uint64_t freed = 0;
	assert_ok(lm_store_prune(S, &freed, &err), err);
	assert_int_equal(freed, 10 + 20 + 5);
	assert_false(lm_store_blob_exists(S, junk));
	assert_false(lm_store_snapshot_exists(S, junk_chain));
	assert_int_equal(count_entries("blobs/sha256"), blobs_before - 1);
	assert_int_equal(count_entries("tmp"), 0);
	FMT(p, "%s/blobs/sha256/README", root);
	assert_int_equal(access(p, F_OK), 0);
	FMT(p, "%s/images.json.tmp-999999", root);
	assert_int_equal(access(p, F_OK), -1);
	struct image *ims[] = { &a, &b };
	for (size_t i = 0; i < 2; i++) {
		assert_true(lm_store_blob_exists(S, ims[i]->manifest));
		assert_true(lm_store_blob_exists(S, ims[i]->config));
		for (size_t l = 0; l < 2; l++) {
			assert_true(lm_store_blob_exists(S, ims[i]->layers[l]));
			assert_true(lm_store_snapshot_exists(S, ims[i]->chains[l]));
		}
	}

	/* Nothing to do: nothing freed. */
	assert_ok(lm_store_prune(S, &freed, &err), err);
	assert_int_equal(freed, 0);

	/* Without a: its own layer goes, the shared base stays for b. */
	assert_ok(lm_store_image_remove(S, a.rec.name, &err), err);
	assert_ok(lm_store_prune(S, &freed, &err), err);
	assert_true(freed > 0);
	assert_false(lm_store_blob_exists(S, a.manifest));
	assert_false(lm_store_blob_exists(S, a.config));
	assert_false(lm_store_blob_exists(S, a.layers[1]));
	assert_false(lm_store_snapshot_exists(S, a.chains[1]));
	assert_true(lm_store_blob_exists(S, b.layers[0]));
	assert_true(lm_store_snapshot_exists(S, b.chains[0]));
	assert_true(lm_store_snapshot_exists(S, b.chains[1]));

	/* Without anything: everything goes but what is not ours. */
	assert_ok(lm_store_image_remove(S, b.rec.name, &err), err);
	assert_ok(lm_store_prune(S, NULL, &err), err);
	assert_int_equal(count_entries("blobs/sha256"), 1); /* README */
	assert_int_equal(count_entries("snapshots"), 0);
	assert_int_equal(count_entries("tmp"), 0);
}

static void test_prune_waits_for_leases(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	char junk[LM_DIGEST_SIZE];
	assert_ok(lm_store_blob_put(S, "fetched, not recorded yet", 25, junk, &err), err);

	struct lm_store_lease *lease;
	assert_ok(lm_store_lease_acquire(S, &lease, &err), err);
	struct lm_store_lease *second; /* leases are shared */
	assert_ok(lm_store_lease_acquire(S, &second, &err), err);
	uint64_t freed = 7;
	assert_int_equal(lm_store_prune(S, &freed, &err), -EBUSY);
	assert_contains(err.msg, "a pull is storing an image");
	assert_int_equal(freed, 0);
	assert_true(lm_store_blob_exists(S, junk));
	lm_store_lease_release(lease);
	assert_int_equal(lm_store_prune(S, &freed, &err), -EBUSY);
	lm_store_lease_release(second);
	lm_store_lease_release(NULL);

	/* A lease held by another process counts too. */
	int to_child[2], from_child[2];
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(from_child), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct lm_store *s;
		struct lm_store_lease *l;
		char c = 0;
		if (lm_store_open(root, &s, &err) < 0 || lm_store_lease_acquire(s, &l, &err) < 0)
			_exit(1);
		if (write(from_child[1], "L", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(1);
		_exit(0); /* the lease dies with the process */
	}
	char c;
	assert_int_equal(read(from_child[0], &c, 1), 1);
	assert_int_equal(lm_store_prune(S, &freed, &err), -EBUSY);
	assert_int_equal(write(to_child[1], "x", 1), 1);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);

	assert_ok(lm_store_prune(S, &freed, &err), err);
	assert_int_equal(freed, 25);
	assert_false(lm_store_blob_exists(S, junk));
}

/* ---------------------------------------------------------------- main */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_commit_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_read_while_writing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_wrong_digest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_too_many_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_too_few_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_unknown_digest_and_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_read_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_same_chain_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_put_get_list_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_put_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_images_json_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_waits_for_leases, setup, teardown),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
