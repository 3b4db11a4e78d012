/* Unit tests for image/decompress.c and image/unpack.c.
 *
 * Layers are built in memory: well-formed ones with libarchive's writer
 * (pax), malformed ones from hand-made ustar headers, compressed with ISA-L
 * (gzip; also the gzip binary once, for a header with a file name) and
 * libzstd.  Each test gets /tmp/lm-unpack-XXXXXX holding target/ (the
 * snapshot) and sentinel/ (a host directory beside it holding one file);
 * every test ends by checking that the sandbox holds exactly those two and
 * that the sentinel is untouched: an unpacker that fails with the right
 * message after writing outside its target is still broken.  Escapes that
 * would land at absolute host paths use names unique to this process and
 * check that nothing appeared there.  Runs as root (devices, ownership,
 * trusted.* xattrs).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <isa-l.h>
#include <limits.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zstd.h>

#include "image/decompress.h"
#include "image/digest.h"
#include "image/unpack.h"
#include "util/fs.h"
#include "testutil.h"

#define SENTINEL_DATA "sentinel data\n"

/* ---------------------------------------------------------------- fixture */

static struct {
	char tmp[64];        /* /tmp/lm-unpack-XXXXXX */
	char target[128];
	char sentinel[128];
	int tmpfd;
	int target_fd;
} F;

static int setup(void **state)
{
	if (tu_mkdtemp(F.tmp, sizeof(F.tmp), "unpack") < 0)
		return -1;
	snprintf(F.target, sizeof(F.target), "%s/target", F.tmp);
	snprintf(F.sentinel, sizeof(F.sentinel), "%s/sentinel", F.tmp);
	if (mkdir(F.target, 0755) < 0 || mkdir(F.sentinel, 0755) < 0)
		return -1;
	char keep[160];
	snprintf(keep, sizeof(keep), "%s/keep", F.sentinel);
	FILE *f = fopen(keep, "w");
	if (!f)
		return -1;
	fputs(SENTINEL_DATA, f);
	fclose(f);
	F.tmpfd = open(F.tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	F.target_fd = open(F.target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return F.tmpfd >= 0 && F.target_fd >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct lm_error err;
	close(F.target_fd);
	close(F.tmpfd);
	lm_rm_rf_at(AT_FDCWD, F.tmp, &err);
	return 0;
}

/* The sandbox holds target/ and sentinel/ only; sentinel/ holds keep only,
 * unchanged. */
static void check_outside(void)
{
	int fd = openat(F.tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	DIR *d = fdopendir(fd);
	assert_non_null(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strcmp(de->d_name, "target") && strcmp(de->d_name, "sentinel"))
			fail_msg("unexpected %s next to the target", de->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 2);

	d = opendir(F.sentinel);
	assert_non_null(d);
	n = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strcmp(de->d_name, "keep"))
			fail_msg("unexpected %s in the sentinel", de->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
	char keep[160], buf[64] = { 0 };
	FMT(keep, "%s/keep", F.sentinel);
	struct stat st;
	assert_int_equal(lstat(keep, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_uid, 0);
	int kfd = open(keep, O_RDONLY | O_CLOEXEC);
	assert_true(kfd >= 0);
	ssize_t r = read(kfd, buf, sizeof(buf) - 1);
	close(kfd);
	assert_int_equal(r, (ssize_t)strlen(SENTINEL_DATA));
	assert_string_equal(buf, SENTINEL_DATA);
}

static void assert_absent_on_host(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		fail_msg("%s appeared on the host", path);
}

/* ----------------------------------------------------------- tar building */

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void buf_zero(struct buf *b, size_t len)
{
	unsigned char z[512] = { 0 };
	while (len > 0) {
		size_t n = len < sizeof(z) ? len : sizeof(z);
		buf_add(b, z, n);
		len -= n;
	}
}

static la_ssize_t tb_write(struct archive *a, void *ctx, const void *data, size_t len)
{
	buf_add(ctx, data, len);
	return (la_ssize_t)len;
}

struct tb {
	struct archive *a;
	struct buf out;
};

static struct tb *tb_new(void)
{
	struct tb *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->a = archive_write_new();
	assert_non_null(t->a);
	assert_int_equal(archive_write_set_format_pax(t->a), ARCHIVE_OK);
	assert_int_equal(archive_write_open(t->a, &t->out, NULL, tb_write, NULL), ARCHIVE_OK);
	return t;
}

struct ent {
	const char *path;
	mode_t type;          /* AE_IF*; 0 with link = hard link */
	mode_t perm;
	const char *data;
	const char *link;
	int64_t uid, gid;
	time_t mtime;
	long mtime_ns;
	unsigned maj, min;
	const char *xname;
	const void *xval;
	size_t xlen;
};

static void tb_add(struct tb *t, const struct ent *x)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, x->path);
	size_t size = x->data ? strlen(x->data) : 0;
	if (x->type == 0 && x->link) {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_hardlink(e, x->link);
		size = 0;
	} else {
		archive_entry_set_filetype(e, x->type);
		if (x->type == AE_IFLNK)
			archive_entry_set_symlink(e, x->link);
	}
	archive_entry_set_perm(e, x->perm ? x->perm : (x->type == AE_IFDIR ? 0755 : 0644));
	archive_entry_set_uid(e, x->uid);
	archive_entry_set_gid(e, x->gid);
	archive_entry_set_mtime(e, x->mtime ? x->mtime : 1500000000, x->mtime_ns);
	if (x->type == AE_IFCHR || x->type == AE_IFBLK) {
		archive_entry_set_rdevmajor(e, x->maj);
		archive_entry_set_rdevminor(e, x->min);
	}
	if (x->xname)
		archive_entry_xattr_add_entry(e, x->xname, x->xval, x->xlen);
	archive_entry_set_size(e, (la_int64_t)size);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	if (size)
		assert_int_equal(archive_write_data(t->a, x->data, size), (la_ssize_t)size);
	archive_entry_free(e);
}

static void tb_file(struct tb *t, const char *path, const char *data)
{
	tb_add(t, &(struct ent){ .path = path, .type = AE_IFREG, .data = data });
}

static void tb_dir(struct tb *t, const char *path)
{
	tb_add(t, &(struct ent){ .path = path, .type = AE_IFDIR });
}

static void tb_symlink(struct tb *t, const char *path, const char *target)
{
	tb_add(t, &(struct ent){ .path = path, .type = AE_IFLNK, .link = target });
}

static void tb_hardlink(struct tb *t, const char *path, const char *target)
{
	tb_add(t, &(struct ent){ .path = path, .link = target });
}

/* Finishes the archive; the caller frees the returned buffer. */
static struct buf tb_finish(struct tb *t)
{
	assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
	archive_write_free(t->a);
	struct buf b = t->out;
	free(t);
	return b;
}

/* A ustar header written by hand, for what libarchive's writer would not produce. */
static void raw_entry(struct buf *b, const char *name, char type, const char *data, const char *link)
{
	unsigned char h[512] = { 0 };
	size_t size = data ? strlen(data) : 0;
	memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	snprintf((char *)h + 124, 12, "%011zo", size);
	memcpy(h + 136, "13000000000", 12);
	h[156] = (unsigned char)type;
	if (link)
		memcpy(h + 157, link, strlen(link) < 100 ? strlen(link) : 100);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	buf_add(b, h, 512);
	if (size) {
		buf_add(b, data, size);
		buf_zero(b, (512 - size % 512) % 512);
	}
}

static void raw_end(struct buf *b)
{
	buf_zero(b, 1024);
}

/* ---------------------------------------------------------- compression */

static struct buf gzip_buf(const void *data, size_t len)
{
	struct isal_zstream s;
	isal_deflate_init(&s);
	s.gzip_flag = IGZIP_GZIP;
	s.end_of_stream = 1;
	s.next_in = (uint8_t *)(uintptr_t)data;
	s.avail_in = (uint32_t)len;
	struct buf out = { 0 };
	out.cap = len + len / 2 + 1024;
	out.p = malloc(out.cap);
	assert_non_null(out.p);
	s.next_out = out.p;
	s.avail_out = (uint32_t)out.cap;
	assert_int_equal(isal_deflate(&s), COMP_OK);
	assert_int_equal(s.internal_state.state, ZSTATE_END);
	out.len = s.total_out;
	return out;
}

static struct buf zstd_buf(const void *data, size_t len)
{
	struct buf out = { 0 };
	out.cap = ZSTD_compressBound(len);
	out.p = malloc(out.cap);
	assert_non_null(out.p);
	/* With a content checksum, as zstd(1) writes by default. */
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_non_null(c);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
	size_t r = ZSTD_compress2(c, out.p, out.cap, data, len);
	ZSTD_freeCCtx(c);
	assert_false(ZSTD_isError(r));
	out.len = r;
	return out;
}

/* ---------------------------------------------------------------- running */

struct memsrc {
	const unsigned char *p;
	size_t len, pos;
	size_t chunk;   /* most bytes per read; 0 = all */
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct memsrc *m = ctx;
	size_t n = m->len - m->pos;
	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

struct run {
	size_t chunk;
	uint64_t limit;
	struct lm_unpack_opts opts;
	struct lm_unpack_stats st;
	char diff_id[LM_DIGEST_SIZE];
	enum lm_compression format;
	struct lm_error err;
};

/* Decompress (AUTO) and unpack into the target; the diff_id is filled on success. */
static int run_layer(const void *data, size_t len, struct run *r)
{
	struct memsrc m = { .p = data, .len = len, .chunk = r->chunk };
	struct lm_reader src = { .read = mem_read, .ctx = &m };
	struct lm_decompress *d = NULL;
	memset(&r->err, 0, sizeof(r->err));
	if (lm_decompress_open(&src, LM_COMPRESSION_AUTO, r->limit, &d, &r->err) < 0)
		return -1;
	r->format = lm_decompress_format(d);
	int ret = lm_unpack(lm_decompress_reader(d), F.target_fd, &r->opts, &r->st, &r->err);
	if (ret == 0) {
		assert_int_equal(m.pos, m.len); /* consumed to the end */
		assert_int_equal(lm_decompress_diff_id(d, r->diff_id, &r->err), 0);
	} else {
		assert_true(ret < 0);
		assert_true(r->err.msg[0] != '\0');
	}
	lm_decompress_free(d);
	return ret;
}

static int run_buf(struct buf b, struct run *r)
{
	int ret = run_layer(b.p, b.len, r);
	free(b.p);
	return ret;
}

static void expect_error(struct buf b, const char *needle)
{
	struct run r = { 0 };
	int ret = run_buf(b, &r);
	if (ret == 0)
		fail_msg("unpack succeeded; expected an error containing \"%s\"", needle);
	assert_contains(r.err.msg, needle);
	check_outside();
}

static void expect_ok(struct buf b, struct run *r)
{
	if (run_buf(b, r) < 0)
		fail_msg("unpack failed: %s", r->err.msg);
	check_outside();
}

static struct stat lst(const char *rel)
{
	struct stat st;
	if (fstatat(F.target_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		fail_msg("%s: %s", rel, strerror(errno));
	return st;
}

static bool exists(const char *rel)
{
	struct stat st;
	return fstatat(F.target_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void assert_file_content(const char *rel, const char *want)
{
	char *got = NULL;
	size_t len = 0;
	struct lm_error err;
	if (lm_read_file_at(F.target_fd, rel, 1 << 20, &got, &len, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
}

static void assert_xattr(const char *rel, const char *name, const char *want)
{
	char path[256], val[256];
	FMT(path, "%s/%s", F.target, rel);
	ssize_t n = lgetxattr(path, name, val, sizeof(val));
	if (n < 0)
		fail_msg("getxattr %s %s: %s", rel, name, strerror(errno));
	assert_int_equal((size_t)n, strlen(want));
	assert_memory_equal(val, want, (size_t)n);
}

static void assert_no_xattr(const char *rel, const char *name)
{
	char path[256], val[64];
	FMT(path, "%s/%s", F.target, rel);
	assert_true(lgetxattr(path, name, val, sizeof(val)) < 0);
}

/* ================================================================ tests */

static void test_entry_types(void **state)
{
	struct tb *t = tb_new();
	tb_add(t, &(struct ent){ .path = "dir", .type = AE_IFDIR, .perm = 0750, .uid = 1000, .gid = 1001,
				 .mtime = 1600000000, .mtime_ns = 5 });
	tb_add(t, &(struct ent){ .path = "dir/file", .type = AE_IFREG, .perm = 0640, .data = "hello\n",
				 .uid = 1002, .gid = 1003, .mtime = 1600000001, .mtime_ns = 123456789,
				 .xname = "user.test", .xval = "value", .xlen = 5 });
	tb_add(t, &(struct ent){ .path = "suid", .type = AE_IFREG, .perm = 04755, .data = "x", .uid = 1000,
				 .gid = 1000 });
	tb_add(t, &(struct ent){ .path = "sgid", .type = AE_IFREG, .perm = 02711, .data = "y", .uid = 0,
				 .gid = 50 });
	tb_add(t, &(struct ent){ .path = "tmp", .type = AE_IFDIR, .perm = 01777 });
	tb_add(t, &(struct ent){ .path = "shared", .type = AE_IFDIR, .perm = 02775, .gid = 100 });
	tb_add(t, &(struct ent){ .path = "dir/link", .type = AE_IFLNK, .link = "/etc/passwd", .uid = 7,
				 .gid = 8, .mtime = 1400000000 });
	tb_add(t, &(struct ent){ .path = "dir/hard", .link = "dir/file" });
	tb_add(t, &(struct ent){ .path = "dev/null", .type = AE_IFCHR, .perm = 0666, .maj = 1, .min = 3 });
	tb_add(t, &(struct ent){ .path = "dev/sda1", .type = AE_IFBLK, .perm = 0660, .maj = 8, .min = 1,
				 .gid = 6 });
	tb_add(t, &(struct ent){ .path = "dev/big", .type = AE_IFCHR, .perm = 0600, .maj = 260, .min = 70000 });
	tb_add(t, &(struct ent){ .path = "dev/fifo", .type = AE_IFIFO, .perm = 0620, .uid = 3 });
	/* v2 file capability: cap_net_raw permitted + effective.  chown
	 * drops capabilities, so this checks the order too. */
	static const unsigned char cap[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20 };
	tb_add(t, &(struct ent){ .path = "ping", .type = AE_IFREG, .perm = 0755, .data = "elf", .uid = 0,
				 .gid = 0, .xname = "security.capability", .xval = cap, .xlen = sizeof(cap) });
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);

	struct stat st = lst("dir");
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1001);
	/* Its contents were created after it; its mtime is still the archive's. */
	assert_int_equal(st.st_mtim.tv_sec, 1600000000);
	assert_int_equal(st.st_mtim.tv_nsec, 5);

	st = lst("dir/file");
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, 1002);
	assert_int_equal(st.st_gid, 1003);
	assert_int_equal(st.st_mtim.tv_sec, 1600000001);
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	assert_int_equal(st.st_nlink, 2);
	assert_file_content("dir/file", "hello\n");
	assert_xattr("dir/file", "user.test", "value");
	struct stat hst = lst("dir/hard");
	assert_int_equal(hst.st_ino, st.st_ino);

	st = lst("suid");
	assert_int_equal(st.st_mode & 07777, 04755);
	assert_int_equal(st.st_uid, 1000);
	st = lst("sgid");
	assert_int_equal(st.st_mode & 07777, 02711);
	assert_int_equal(st.st_gid, 50);
	st = lst("tmp");
	assert_int_equal(st.st_mode & 07777, 01777);
	st = lst("shared");
	assert_int_equal(st.st_mode & 07777, 02775);
	assert_int_equal(st.st_gid, 100);

	st = lst("dir/link");
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_uid, 7);
	assert_int_equal(st.st_gid, 8);
	assert_int_equal(st.st_mtim.tv_sec, 1400000000);
	char target[64] = { 0 };
	assert_int_equal(readlinkat(F.target_fd, "dir/link", target, sizeof(target) - 1), 11);
	assert_string_equal(target, "/etc/passwd");

	st = lst("dev/null");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0666);
	assert_int_equal(major(st.st_rdev), 1);
	assert_int_equal(minor(st.st_rdev), 3);
	st = lst("dev/sda1");
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(major(st.st_rdev), 8);
	assert_int_equal(minor(st.st_rdev), 1);
	assert_int_equal(st.st_gid, 6);
	st = lst("dev/big");
	assert_int_equal(major(st.st_rdev), 260);
	assert_int_equal(minor(st.st_rdev), 70000);
	st = lst("dev/fifo");
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0620);
	assert_int_equal(st.st_uid, 3);
	/* dev/ had no entry of its own: made 0755 whatever the umask. */
	st = lst("dev");
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);

	char path[256];
	unsigned char got[32];
	FMT(path, "%s/ping", F.target);
	assert_int_equal(lgetxattr(path, "security.capability", got, sizeof(got)), (ssize_t)sizeof(cap));
	assert_memory_equal(got, cap, sizeof(cap));

	assert_int_equal(r.st.files, 4);
	assert_int_equal(r.st.dirs, 3);
	assert_int_equal(r.st.symlinks, 1);
	assert_int_equal(r.st.hardlinks, 1);
	assert_int_equal(r.st.devices, 4);
	assert_int_equal(r.st.whiteouts, 0);
	assert_int_equal(r.st.bytes, strlen("hello\n") + 1 + 1 + 3);
	assert_int_equal(r.format, LM_COMPRESSION_NONE);
}

static void test_root_entry_and_implicit_parents(void **state)
{
	mode_t old = umask(077);
	struct tb *t = tb_new();
	tb_add(t, &(struct ent){ .path = "./", .type = AE_IFDIR, .perm = 0751, .mtime = 1234567890 });
	tb_file(t, "./a/b/c/file", "deep");
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	umask(old);
	assert_file_content("a/b/c/file", "deep");
	assert_int_equal(lst("a").st_mode & 07777, 0755);
	assert_int_equal(lst("a/b/c").st_mode & 07777, 0755);
	struct stat st;
	assert_int_equal(fstat(F.target_fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	assert_int_equal(st.st_mtim.tv_sec, 1234567890);
}

static void test_later_entries_replace(void **state)
{
	struct tb *t = tb_new();
	tb_file(t, "f", "first");
	tb_file(t, "f", "second");
	tb_file(t, "d", "a file first");
	tb_dir(t, "d");
	tb_file(t, "d/inner", "in");
	tb_dir(t, "gone");
	tb_file(t, "gone/x", "x");
	tb_symlink(t, "gone", "f");
	/* A symlink pointing outside, replaced by a file: the file is made
	 * in its place, nothing is written where it pointed. */
	tb_symlink(t, "s", "../sentinel/keep");
	tb_file(t, "s", "replaced");
	tb_symlink(t, "s2", "/etc/passwd");
	tb_dir(t, "s2");
	tb_file(t, "s2/x", "inside");
	/* The same directory twice: the last entry's metadata. */
	tb_add(t, &(struct ent){ .path = "twice", .type = AE_IFDIR, .perm = 0700, .mtime = 1000000000 });
	tb_file(t, "twice/x", "x");
	tb_add(t, &(struct ent){ .path = "twice/", .type = AE_IFDIR, .perm = 0751, .uid = 5,
				 .mtime = 1100000000 });
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	struct stat st = lst("twice");
	assert_int_equal(st.st_mode & 07777, 0751);
	assert_int_equal(st.st_uid, 5);
	assert_int_equal(st.st_mtim.tv_sec, 1100000000);
	assert_file_content("twice/x", "x");
	assert_file_content("f", "second");
	assert_true(S_ISDIR(lst("d").st_mode));
	assert_file_content("d/inner", "in");
	assert_true(S_ISLNK(lst("gone").st_mode));
	assert_true(S_ISREG(lst("s").st_mode));
	assert_file_content("s", "replaced");
	assert_true(S_ISDIR(lst("s2").st_mode));
	assert_file_content("s2/x", "inside");
}

static void test_hardlinks(void **state)
{
	/* Target after the link: resolved after the last entry. */
	struct tb *t = tb_new();
	tb_hardlink(t, "early", "later");
	tb_file(t, "later", "content");
	tb_file(t, "a", "A");
	tb_hardlink(t, "/b", "/a"); /* absolute names stay inside */
	tb_hardlink(t, "dir/c", "a");
	/* A link waiting for its target loses its name to a later entry. */
	tb_hardlink(t, "taken", "comes-later");
	tb_file(t, "taken", "own");
	tb_file(t, "comes-later", "other");
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	assert_file_content("taken", "own");
	assert_int_equal(lst("taken").st_nlink, 1);
	assert_int_equal(lst("early").st_ino, lst("later").st_ino);
	assert_int_equal(lst("a").st_ino, lst("b").st_ino);
	assert_int_equal(lst("a").st_ino, lst("dir/c").st_ino);
	assert_int_equal(lst("a").st_nlink, 3);
	assert_int_equal(r.st.hardlinks, 3);
}

static void test_hardlink_missing(void **state)
{
	struct tb *t = tb_new();
	tb_file(t, "a", "A");
	tb_hardlink(t, "link", "nothere");
	expect_error(tb_finish(t), "layer entry link: hard link target nothere does not exist in the layer");
}

static void test_hardlink_escapes(void **state)
{
	struct stat before;
	assert_int_equal(stat("/etc/passwd", &before), 0);

	struct buf b = { 0 };
	raw_entry(&b, "evil", '1', NULL, "../../etc/passwd");
	raw_end(&b);
	expect_error(b, "\"..\" components are not allowed");

	/* Absolute: looked up inside the target, where it is missing. */
	struct tb *t = tb_new();
	tb_hardlink(t, "evil", "/etc/passwd");
	expect_error(tb_finish(t), "hard link target etc/passwd does not exist");

	/* Through a symlink in the target. */
	t = tb_new();
	tb_symlink(t, "etc", "/etc");
	tb_hardlink(t, "evil", "etc/passwd");
	expect_error(tb_finish(t), "hard link target etc/passwd: parent etc is a symlink");

	t = tb_new();
	tb_dir(t, "d");
	tb_hardlink(t, "evil", "d");
	expect_error(tb_finish(t), "hard link target d is a directory");

	b = (struct buf){ 0 };
	raw_entry(&b, "evil", '1', NULL, ".");
	raw_end(&b);
	expect_error(b, "hard link to the layer's root directory");

	struct stat after;
	assert_int_equal(stat("/etc/passwd", &after), 0);
	assert_int_equal(after.st_nlink, before.st_nlink);
	assert_int_equal(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
}

static void test_whiteouts(void **state)
{
	struct tb *t = tb_new();
	tb_dir(t, "etc");
	tb_file(t, "etc/.wh.gone", "");
	tb_dir(t, "opq");
	tb_file(t, "opq/.wh..wh..opq", "");
	tb_file(t, "opq/kept", "mine");
	tb_file(t, "nodir/.wh.x", ""); /* parent made on the way */
	tb_file(t, ".wh..wh.plnk/123.456", "aufs");
	tb_file(t, "etc/.wh..wh.aufs", "");
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	struct stat st = lst("etc/gone");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(0, 0));
	assert_false(exists("etc/.wh.gone"));
	assert_xattr("opq", "trusted.overlay.opaque", "y");
	assert_file_content("opq/kept", "mine");
	assert_false(exists("opq/.wh..wh..opq"));
	assert_true(S_ISCHR(lst("nodir/x").st_mode));
	assert_false(exists(".wh..wh.plnk"));
	assert_false(exists("etc/.wh..wh.aufs"));
	assert_no_xattr("etc", "trusted.overlay.opaque");
	assert_int_equal(r.st.whiteouts, 3);
	assert_int_equal(r.st.ignored_entries, 2);
}

static void test_whiteout_same_layer_readd(void **state)
{
	/* Whiteouts hide lower layers only: what this layer adds at the same
	 * name stays, in either order. */
	struct tb *t = tb_new();
	tb_file(t, ".wh.f", "");
	tb_file(t, "f", "re-added");
	tb_file(t, "g", "before");
	tb_file(t, ".wh.g", "");
	tb_file(t, ".wh.d", "");
	tb_dir(t, "d");
	tb_file(t, "d/new", "n");
	tb_dir(t, "e");
	tb_file(t, "e/new", "n");
	tb_file(t, ".wh.e", "");
	tb_dir(t, "plain");
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	assert_file_content("f", "re-added");
	assert_file_content("g", "before");
	/* A directory that replaces a deleted one must not show the lower
	 * one's contents: opaque. */
	assert_true(S_ISDIR(lst("d").st_mode));
	assert_file_content("d/new", "n");
	assert_xattr("d", "trusted.overlay.opaque", "y");
	assert_xattr("e", "trusted.overlay.opaque", "y");
	assert_file_content("e/new", "n");
	assert_no_xattr("plain", "trusted.overlay.opaque");
}

static void test_overlay_xattrs_dropped(void **state)
{
	struct tb *t = tb_new();
	tb_add(t, &(struct ent){ .path = "d", .type = AE_IFDIR, .xname = "trusted.overlay.redirect",
				 .xval = "/etc", .xlen = 4 });
	tb_add(t, &(struct ent){ .path = "f", .type = AE_IFREG, .xname = "trusted.overlay.metacopy",
				 .xval = "", .xlen = 0 });
	tb_add(t, &(struct ent){ .path = "o", .type = AE_IFDIR, .xname = "trusted.overlay.opaque",
				 .xval = "y", .xlen = 1 });
	tb_add(t, &(struct ent){ .path = "t", .type = AE_IFDIR, .xname = "trusted.other",
				 .xval = "ok", .xlen = 2 });
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	assert_no_xattr("d", "trusted.overlay.redirect");
	assert_no_xattr("f", "trusted.overlay.metacopy");
	assert_no_xattr("o", "trusted.overlay.opaque");
	assert_xattr("t", "trusted.other", "ok");
	/* (libarchive's pax writer stores each xattr twice, as LIBARCHIVE.xattr
	 * and SCHILY.xattr records, and its reader reports both.) */
	assert_true(r.st.skipped_xattrs >= 3);
}

static void test_escape_dotdot(void **state)
{
	struct buf b = { 0 };
	raw_entry(&b, "../evil", '0', "x", NULL);
	raw_end(&b);
	expect_error(b, "layer entry ../evil: \"..\" components are not allowed");

	b = (struct buf){ 0 };
	raw_entry(&b, "a/../../evil", '0', "x", NULL);
	raw_end(&b);
	expect_error(b, "\"..\" components are not allowed");

	b = (struct buf){ 0 };
	raw_entry(&b, "a/..", '5', NULL, NULL);
	raw_end(&b);
	expect_error(b, "\"..\" components are not allowed");

	b = (struct buf){ 0 };
	raw_entry(&b, "..", '2', NULL, "/");
	raw_end(&b);
	expect_error(b, "\"..\" components are not allowed");
	assert_false(exists("evil"));
}

static void test_escape_absolute(void **state)
{
	char abs[128], rel[128];
	FMT(abs, "/lm-unpack-abs-%d/sub/file", (int)getpid());
	FMT(rel, "lm-unpack-abs-%d/sub/file", (int)getpid());
	struct tb *t = tb_new();
	tb_file(t, abs, "inside");
	tb_file(t, "//double//slash///x", "y");
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	assert_file_content(rel, "inside");
	assert_file_content("double/slash/x", "y");
	FMT(abs, "/lm-unpack-abs-%d", (int)getpid());
	assert_absent_on_host(abs);
}

static void test_escape_symlink_this_layer(void **state)
{
	char evil[128], host[128];
	FMT(evil, "link/lm-unpack-evil-%d", (int)getpid());
	FMT(host, "/lm-unpack-evil-%d", (int)getpid());
	struct tb *t = tb_new();
	tb_symlink(t, "link", "/");
	tb_file(t, evil, "pwned");
	expect_error(tb_finish(t), "parent link is a symlink");
	assert_absent_on_host(host);

	/* Relative, towards the sentinel beside the target; and deeper. */
	t = tb_new();
	tb_symlink(t, "up", "../sentinel");
	tb_file(t, "up/keep", "overwritten");
	expect_error(tb_finish(t), "layer entry up/keep: parent up is a symlink");

	t = tb_new();
	tb_dir(t, "a");
	tb_symlink(t, "a/b", "../../sentinel");
	tb_dir(t, "a/b/c");
	expect_error(tb_finish(t), "parent a/b is a symlink");

	/* Whiteouts and hard links go through the same resolution. */
	t = tb_new();
	tb_symlink(t, "w", "../sentinel");
	tb_file(t, "w/.wh.keep", "");
	expect_error(tb_finish(t), "parent w is a symlink");

	t = tb_new();
	tb_file(t, "a", "A");
	tb_symlink(t, "h", "../sentinel");
	tb_hardlink(t, "h/x", "a");
	expect_error(tb_finish(t), "parent h is a symlink");

	t = tb_new();
	tb_symlink(t, "o", "../sentinel");
	tb_file(t, "o/.wh..wh..opq", "");
	expect_error(tb_finish(t), "parent o is a symlink");
}

static void test_escape_symlink_earlier_layer(void **state)
{
	/* Left in the target by someone else (an earlier layer unpacked into
	 * the same directory). */
	assert_int_equal(symlinkat("../sentinel", F.target_fd, "pre"), 0);
	assert_int_equal(symlinkat("/", F.target_fd, "root"), 0);
	char evil[128], host[128];
	FMT(evil, "root/lm-unpack-evil-%d", (int)getpid());
	FMT(host, "/lm-unpack-evil-%d", (int)getpid());

	struct tb *t = tb_new();
	tb_file(t, "pre/evil", "x");
	expect_error(tb_finish(t), "layer entry pre/evil: parent pre is a symlink");

	t = tb_new();
	tb_dir(t, evil);
	expect_error(tb_finish(t), "parent root is a symlink");
	assert_absent_on_host(host);

	/* Replacing the symlink itself is fine: it is not followed. */
	t = tb_new();
	tb_file(t, "pre", "now a file");
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	assert_file_content("pre", "now a file");
}

static void test_symlink_named_dot(void **state)
{
	struct buf b = { 0 };
	raw_entry(&b, ".", '2', NULL, "/");
	raw_end(&b);
	expect_error(b, "a symlink cannot replace the layer's root directory");

	b = (struct buf){ 0 };
	raw_entry(&b, "/", '2', NULL, "/etc");
	raw_end(&b);
	expect_error(b, "a symlink cannot replace the layer's root directory");

	b = (struct buf){ 0 };
	raw_entry(&b, ".", '0', "data", NULL);
	raw_end(&b);
	expect_error(b, "a non-directory cannot replace the layer's root directory");

	b = (struct buf){ 0 };
	raw_entry(&b, "a/.", '2', NULL, "/");
	raw_end(&b);
	expect_error(b, "only a directory name may end in \"/.\"");

	b = (struct buf){ 0 };
	raw_entry(&b, "", '0', "x", NULL);
	raw_end(&b);
	expect_error(b, "layer entry \"\": empty name");
	struct stat st;
	assert_int_equal(fstat(F.target_fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
}

static void test_whiteout_escapes(void **state)
{
	struct buf b = { 0 };
	raw_entry(&b, ".wh.../x", '0', NULL, NULL);
	raw_end(&b);
	expect_error(b, "a directory name starting with .wh. (reserved for whiteouts)");

	b = (struct buf){ 0 };
	raw_entry(&b, "a/.wh...", '0', NULL, NULL);
	raw_end(&b);
	expect_error(b, "whiteout of \"..\" escapes its directory");

	b = (struct buf){ 0 };
	raw_entry(&b, ".wh..", '0', NULL, NULL);
	raw_end(&b);
	expect_error(b, "whiteout of \".\" escapes its directory");

	b = (struct buf){ 0 };
	raw_entry(&b, "d/.wh.", '0', NULL, NULL);
	raw_end(&b);
	expect_error(b, "whiteout of \"\" escapes its directory");

	b = (struct buf){ 0 };
	raw_entry(&b, "a/../.wh.sentinel", '0', NULL, NULL);
	raw_end(&b);
	expect_error(b, "\"..\" components are not allowed");
}

static void test_malformed_headers(void **state)
{
	/* Bad checksum. */
	struct buf b = { 0 };
	raw_entry(&b, "ok", '0', "x", NULL);
	raw_entry(&b, "bad", '0', "y", NULL);
	b.p[512 + 512 + 148] ^= 1;
	raw_end(&b);
	expect_error(b, "tar: Damaged tar archive");

	/* Data shorter than the header says. */
	b = (struct buf){ 0 };
	raw_entry(&b, "short", '0', "0123456789", NULL);
	snprintf((char *)b.p + 124, 12, "%011o", 4000);
	memset(b.p + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += b.p[i];
	snprintf((char *)b.p + 148, 8, "%06o", sum);
	expect_error(b, "Truncated tar archive");

	/* A stream that ends right after the last file's data (no padding, no
	 * end blocks), as Debian's umoci writes: the layer is complete. */
	b = (struct buf){ 0 };
	raw_entry(&b, "first", '0', "hello", NULL);
	raw_entry(&b, "last", '0', "0123456789", NULL);
	b.len -= 512 - 10;
	struct run ended = { 0 };
	expect_ok(b, &ended);
	assert_file_content("first", "hello");
	assert_file_content("last", "0123456789");
	/* ...but a stream cut inside the last file's data is damage */
	b = (struct buf){ 0 };
	raw_entry(&b, "cut", '0', "0123456789", NULL);
	b.len -= 512 - 7;
	expect_error(b, "cut");

	/* A GNU long name past PATH_MAX. */
	b = (struct buf){ 0 };
	size_t n = PATH_MAX + 100;
	char *longname = malloc(n + 1);
	assert_non_null(longname);
	for (size_t i = 0; i < n; i++)
		longname[i] = (i % 10 == 9) ? '/' : 'a';
	longname[n] = '\0';
	raw_entry(&b, "././@LongLink", 'L', longname, NULL);
	raw_entry(&b, "short", '0', "x", NULL);
	raw_end(&b);
	free(longname);
	expect_error(b, "name longer than 4095 bytes");

	/* A component past NAME_MAX (pax path). */
	char comp[NAME_MAX + 10];
	memset(comp, 'c', sizeof(comp) - 1);
	comp[sizeof(comp) - 1] = '\0';
	struct tb *t = tb_new();
	tb_file(t, comp, "x");
	expect_error(tb_finish(t), "a component is longer than 255 bytes");

	/* Not a tar at all. */
	b = (struct buf){ 0 };
	buf_add(&b, "this is not a tar archive, just some text that goes on and on", 62);
	buf_zero(&b, 1000);
	expect_error(b, "");

	/* A socket cannot be in a layer. */
	b = (struct buf){ 0 };
	raw_entry(&b, "weird", '8', NULL, NULL);
	raw_end(&b);
	struct run r = { 0 };
	(void)run_buf(b, &r);
	check_outside();
}

static void test_empty_layer(void **state)
{
	struct run r = { 0 };
	assert_int_equal(run_layer("", 0, &r), 0);
	char want[LM_DIGEST_SIZE];
	lm_sha256_buffer("", 0, want);
	assert_string_equal(r.diff_id, want);

	/* Only the end-of-archive marker (the OCI "empty layer"). */
	struct buf b = { 0 };
	raw_end(&b);
	struct buf gz = gzip_buf(b.p, b.len);
	lm_sha256_buffer(b.p, b.len, want);
	free(b.p);
	memset(&r, 0, sizeof(r));
	expect_ok(gz, &r);
	assert_string_equal(r.diff_id, want);
	assert_int_equal(r.format, LM_COMPRESSION_GZIP);
}

static void test_unicode_name(void **state)
{
	/* libarchive's pax writer needs a UTF-8 locale for non-ASCII names;
	 * the reader runs in the C locale, as lamina does. */
	assert_non_null(setlocale(LC_ALL, "C.UTF-8"));
	struct tb *t = tb_new();
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname_utf8(e, "caf\xc3\xa9");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, 2);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(t->a, "ok", 2), 2);
	archive_entry_free(e);
	struct buf b = tb_finish(t);
	setlocale(LC_ALL, "C");
	struct run r = { 0 };
	expect_ok(b, &r);
	assert_file_content("caf\xc3\xa9", "ok");
}

static void test_sparse_file(void **state)
{
	struct tb *t = tb_new();
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "sparse");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, 1 << 20);
	archive_entry_sparse_add_entry(e, 0, 4096);
	archive_entry_sparse_add_entry(e, 512 * 1024, 4096);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	char *data = malloc(1 << 20);
	assert_non_null(data);
	memset(data, 0, 1 << 20);
	memset(data, 'a', 4096);
	memset(data + 512 * 1024, 'b', 4096);
	assert_true(archive_write_data(t->a, data, 1 << 20) > 0);
	archive_entry_free(e);
	struct run r = { 0 };
	expect_ok(tb_finish(t), &r);
	char *got = NULL;
	size_t len = 0;
	struct lm_error err;
	assert_int_equal(lm_read_file_at(F.target_fd, "sparse", 2 << 20, &got, &len, &err), 0);
	assert_int_equal(len, 1 << 20);
	assert_memory_equal(got, data, len);
	free(got);
	free(data);
}

/* ------------------------------------------------------ compression tests */

static struct buf sample_tar(void)
{
	struct tb *t = tb_new();
	tb_dir(t, "etc");
	char big[200000];
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + (i * 7 + i / 13) % 26);
	big[sizeof(big) - 1] = '\0';
	tb_file(t, "etc/big", big);
	tb_file(t, "etc/small", "small\n");
	tb_symlink(t, "etc/link", "small");
	return tb_finish(t);
}

static void check_sample(void)
{
	assert_true(S_ISDIR(lst("etc").st_mode));
	assert_int_equal(lst("etc/big").st_size, 199999);
	assert_file_content("etc/small", "small\n");
	assert_true(S_ISLNK(lst("etc/link").st_mode));
}

/* Unpack data into a fresh target twice, in whole reads and in reads of
 * `chunk` bytes, and check the sample tree, format and diff id each time. */
static void unpack_sample_in_chunks(const struct buf *data, size_t chunk_size, enum lm_compression format,
				    const char *want)
{
	for (size_t chunk = 0; chunk <= chunk_size; chunk += chunk_size) {
		struct run r = { .chunk = chunk };
		assert_int_equal(lm_rm_rf_at(F.tmpfd, "target", &r.err), 0);
		assert_int_equal(mkdirat(F.tmpfd, "target", 0755), 0);
		close(F.target_fd);
		F.target_fd = openat(F.tmpfd, "target", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (run_layer(data->p, data->len, &r) < 0)
			fail_msg("chunk %zu: %s", chunk, r.err.msg);
		assert_int_equal(r.format, format);
		assert_string_equal(r.diff_id, want);
		check_sample();
	}
	check_outside();
}

static void test_gzip_multi_member(void **state)
{
	struct buf tar = sample_tar();
	char want[LM_DIGEST_SIZE];
	lm_sha256_buffer(tar.p, tar.len, want);
	/* Three members, split at awkward places. */
	size_t cut1 = 1000, cut2 = tar.len / 2 + 17;
	struct buf a = gzip_buf(tar.p, cut1), b = gzip_buf(tar.p + cut1, cut2 - cut1),
		   c = gzip_buf(tar.p + cut2, tar.len - cut2);
	struct buf all = { 0 };
	buf_add(&all, a.p, a.len);
	buf_add(&all, b.p, b.len);
	buf_add(&all, c.p, c.len);
	free(a.p);
	free(b.p);
	free(c.p);

	/* Whole reads, then tiny reads (member boundaries inside a read). */
	unpack_sample_in_chunks(&all, 7, LM_COMPRESSION_GZIP, want);
	free(all.p);
	free(tar.p);
}

static void test_gzip_binary(void **state)
{
	/* gzip(1) writes a header with a file name and mtime. */
	struct buf tar = sample_tar();
	char path[160], cmd[400];
	FMT(path, "%s/layer.tar", F.tmp);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(tar.p, 1, tar.len, f), tar.len);
	fclose(f);
	FMT(cmd, "gzip -9 '%s'", path);
	assert_int_equal(system(cmd), 0);
	FMT(path, "%s/layer.tar.gz", F.tmp);
	char *gz = NULL;
	size_t len = 0;
	struct lm_error err;
	assert_int_equal(lm_read_file_at(AT_FDCWD, path, 1 << 24, &gz, &len, &err), 0);
	assert_int_equal(unlink(path), 0);
	struct run r = { 0 };
	assert_int_equal(run_layer(gz, len, &r), 0);
	char want[LM_DIGEST_SIZE];
	lm_sha256_buffer(tar.p, tar.len, want);
	assert_string_equal(r.diff_id, want);
	check_sample();
	check_outside();
	free(gz);
	free(tar.p);
}

static void test_gzip_corrupt(void **state)
{
	struct buf tar = sample_tar();
	struct buf gz = gzip_buf(tar.p, tar.len);

	/* Truncated, at several places (inside the data and inside the trailer). */
	size_t cuts[] = { gz.len / 2, gz.len - 5, gz.len - 1, 11 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct run r = { 0 };
		assert_true(run_layer(gz.p, cuts[i], &r) < 0);
		assert_contains(r.err.msg, "gzip: truncated stream");
	}
	check_outside();

	/* A flipped byte in the CRC. */
	struct buf bad = { 0 };
	buf_add(&bad, gz.p, gz.len);
	bad.p[bad.len - 6] ^= 0x55;
	struct run r = { 0 };
	assert_true(run_buf(bad, &r) < 0);
	assert_contains(r.err.msg, "gzip: checksum mismatch");

	/* Garbage in the deflate data. */
	bad = (struct buf){ 0 };
	buf_add(&bad, gz.p, gz.len);
	assert_true(bad.len >= 60);
	for (size_t i = 20; i < 60; i++)
		bad.p[i] = 0xff;
	memset(&r, 0, sizeof(r));
	assert_true(run_buf(bad, &r) < 0);

	/* Trailing bytes that are not another member. */
	bad = (struct buf){ 0 };
	buf_add(&bad, gz.p, gz.len);
	buf_zero(&bad, 16);
	memset(&r, 0, sizeof(r));
	assert_true(run_buf(bad, &r) < 0);
	assert_contains(r.err.msg, "gzip: unexpected data after member 1");
	check_outside();
	free(gz.p);
	free(tar.p);
}

static void test_zstd_multi_frame(void **state)
{
	struct buf tar = sample_tar();
	char want[LM_DIGEST_SIZE];
	lm_sha256_buffer(tar.p, tar.len, want);
	size_t cut = tar.len / 3;
	struct buf a = zstd_buf(tar.p, cut), b = zstd_buf(tar.p + cut, tar.len - cut);
	struct buf all = { 0 };
	buf_add(&all, a.p, a.len);
	/* A skippable frame between the two: allowed by the format. */
	static const unsigned char skippable[] = { 0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c' };
	buf_add(&all, skippable, sizeof(skippable));
	buf_add(&all, b.p, b.len);
	free(a.p);
	free(b.p);
	unpack_sample_in_chunks(&all, 5, LM_COMPRESSION_ZSTD, want);
	free(all.p);
	free(tar.p);
}

static void test_zstd_corrupt(void **state)
{
	struct buf tar = sample_tar();
	struct buf z = zstd_buf(tar.p, tar.len);
	struct run r = { 0 };
	assert_true(run_layer(z.p, z.len - 3, &r) < 0);
	assert_contains(r.err.msg, "zstd: ");

	/* A flipped byte: the frame checksum catches what decodes. */
	struct buf bad = { 0 };
	buf_add(&bad, z.p, z.len);
	bad.p[z.len / 2] ^= 0x01;
	memset(&r, 0, sizeof(r));
	assert_true(run_buf(bad, &r) < 0);

	bad = (struct buf){ 0 };
	buf_add(&bad, z.p, z.len);
	buf_add(&bad, "junk", 4);
	memset(&r, 0, sizeof(r));
	assert_true(run_buf(bad, &r) < 0);
	assert_contains(r.err.msg, "zstd: ");

	memset(&r, 0, sizeof(r));
	assert_true(run_layer(z.p, 4, &r) < 0);
	assert_contains(r.err.msg, "zstd: ");
	check_outside();
	free(z.p);
	free(tar.p);
}

static void test_media_types(void **state)
{
	struct buf tar = sample_tar();
	struct buf gz = gzip_buf(tar.p, tar.len), zs = zstd_buf(tar.p, tar.len);
	struct {
		struct buf *data;
		const char *type;
		const char *error; /* NULL: matches */
	} cases[] = {
		{ &gz, "application/vnd.oci.image.layer.v1.tar+gzip", NULL },
		{ &gz, "application/vnd.docker.image.rootfs.diff.tar.gzip", NULL },
		{ &gz, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", NULL },
		{ &gz, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", NULL },
		{ &zs, "application/vnd.oci.image.layer.v1.tar+zstd", NULL },
		{ &zs, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", NULL },
		{ &tar, "application/vnd.oci.image.layer.v1.tar", NULL },
		{ &tar, "application/vnd.oci.image.layer.nondistributable.v1.tar", NULL },
		{ &gz, "application/vnd.oci.image.layer.v1.tar+zstd",
		  "layer media type application/vnd.oci.image.layer.v1.tar+zstd declares zstd but the data is gzip" },
		{ &tar, "application/vnd.docker.image.rootfs.diff.tar.gzip", "declares gzip but the data is not compressed" },
		{ &zs, "application/vnd.oci.image.layer.v1.tar", "declares an uncompressed tar but the data is zstd" },
		{ &gz, "application/vnd.oci.image.config.v1+json", "unsupported layer media type" },
		{ &gz, "", "layer has no media type" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct memsrc m = { .p = cases[i].data->p, .len = cases[i].data->len };
		struct lm_reader src = { .read = mem_read, .ctx = &m };
		struct lm_decompress *d = NULL;
		struct lm_error err;
		assert_int_equal(lm_decompress_open(&src, LM_COMPRESSION_AUTO, 0, &d, &err), 0);
		int r = lm_decompress_check_media_type(d, cases[i].type, &err);
		if (cases[i].error) {
			assert_true(r < 0);
			assert_contains(err.msg, cases[i].error);
		} else if (r < 0) {
			fail_msg("%s: %s", cases[i].type, err.msg);
		}
		lm_decompress_free(d);
	}
	enum lm_compression c;
	struct lm_error err;
	assert_int_equal(lm_layer_media_type_compression("application/vnd.oci.image.layer.v1.tar+zstd", &c, &err), 0);
	assert_int_equal(c, LM_COMPRESSION_ZSTD);
	assert_int_equal(lm_layer_media_type_compression("application/x-tar", &c, &err), -ENOTSUP);
	free(gz.p);
	free(zs.p);
	free(tar.p);
}

static void test_diff_id_and_explicit_formats(void **state)
{
	struct buf tar = sample_tar();
	char want[LM_DIGEST_SIZE];
	lm_sha256_buffer(tar.p, tar.len, want);
	struct buf gz = gzip_buf(tar.p, tar.len);
	struct {
		struct buf *data;
		enum lm_compression c;
		bool ok;
	} cases[] = {
		{ &tar, LM_COMPRESSION_NONE, true },
		{ &gz, LM_COMPRESSION_GZIP, true },
		{ &gz, LM_COMPRESSION_AUTO, true },
		{ &tar, LM_COMPRESSION_GZIP, false },
		{ &gz, LM_COMPRESSION_ZSTD, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct memsrc m = { .p = cases[i].data->p, .len = cases[i].data->len };
		struct lm_reader src = { .read = mem_read, .ctx = &m };
		struct lm_decompress *d = NULL;
		struct lm_error err;
		assert_int_equal(lm_decompress_open(&src, cases[i].c, 0, &d, &err), 0);
		char got[LM_DIGEST_SIZE];
		assert_true(lm_decompress_diff_id(d, got, &err) < 0); /* not yet */
		char buf[4096];
		ssize_t n;
		while ((n = lm_decompress_read(d, buf, sizeof(buf), &err)) > 0)
			;
		if (cases[i].ok) {
			if (n < 0)
				fail_msg("case %zu: %s", i, err.msg);
			assert_int_equal(lm_decompress_diff_id(d, got, &err), 0);
			assert_string_equal(got, want);
			assert_int_equal(lm_decompress_bytes_out(d), tar.len);
			assert_int_equal(lm_decompress_bytes_in(d), cases[i].data->len);
		} else {
			assert_true(n < 0);
			assert_true(lm_decompress_diff_id(d, got, &err) < 0);
			/* Sticky. */
			assert_true(lm_decompress_read(d, buf, sizeof(buf), &err) < 0);
		}
		lm_decompress_free(d);
	}
	free(gz.p);
	free(tar.p);
}

static void test_limit(void **state)
{
	struct buf tar = sample_tar();
	struct buf gz = gzip_buf(tar.p, tar.len);
	struct buf zs = zstd_buf(tar.p, tar.len);
	struct buf *all[] = { &tar, &gz, &zs };
	for (size_t i = 0; i < 3; i++) {
		struct run r = { .limit = tar.len - 1 };
		assert_true(run_layer(all[i]->p, all[i]->len, &r) < 0);
		assert_int_equal(r.err.code, EFBIG);
		assert_contains(r.err.msg, "larger than the limit");
		check_outside();
	}
	/* Exactly at the limit is fine. */
	struct run r = { .limit = tar.len };
	if (run_layer(gz.p, gz.len, &r) < 0)
		fail_msg("%s", r.err.msg);
	check_sample();

	/* A zip bomb in small: 64 MiB of zeros in ~64 KiB of gzip, 1 MiB limit. */
	size_t big = 64u << 20;
	char *zeros = calloc(1, big);
	assert_non_null(zeros);
	struct buf bomb = gzip_buf(zeros, big);
	free(zeros);
	assert_true(bomb.len < (1u << 20));
	struct memsrc m = { .p = bomb.p, .len = bomb.len };
	struct lm_reader src = { .read = mem_read, .ctx = &m };
	struct lm_decompress *d = NULL;
	struct lm_error err;
	assert_int_equal(lm_decompress_open(&src, LM_COMPRESSION_AUTO, 1u << 20, &d, &err), 0);
	char buf[65536];
	ssize_t n;
	while ((n = lm_decompress_read(d, buf, sizeof(buf), &err)) > 0)
		;
	assert_true(n < 0);
	assert_int_equal(err.code, EFBIG);
	assert_true(lm_decompress_bytes_out(d) <= (1u << 20));
	lm_decompress_free(d);
	free(bomb.p);
	free(gz.p);
	free(zs.p);
	free(tar.p);
}

static ssize_t failing_read(void *ctx, void *buf, size_t len)
{
	int *calls = ctx;
	if ((*calls)++ == 0) {
		memset(buf, 0, len < 10 ? len : 10);
		return len < 10 ? (ssize_t)len : 10;
	}
	errno = ECONNRESET;
	return -1;
}

static const char *failing_error(void *ctx)
{
	return "registry: connection reset";
}

static void test_source_error(void **state)
{
	int calls = 0;
	struct lm_reader src = { .read = failing_read, .error = failing_error, .ctx = &calls };
	struct lm_decompress *d = NULL;
	struct lm_error err;
	assert_int_equal(lm_decompress_open(&src, LM_COMPRESSION_NONE, 0, &d, &err), 0);
	assert_true(lm_unpack(lm_decompress_reader(d), F.target_fd, NULL, NULL, &err) < 0);
	assert_string_equal(err.msg, "registry: connection reset");
	assert_int_equal(err.code, ECONNRESET);
	lm_decompress_free(d);
	check_outside();
}

/* Unprivileged: chown, mknod and trusted.* xattrs refused, counted. */
static void test_unprivileged(void **state)
{
	struct tb *t = tb_new();
	tb_add(t, &(struct ent){ .path = "f", .type = AE_IFREG, .data = "x", .uid = 0, .gid = 0 });
	tb_add(t, &(struct ent){ .path = "null", .type = AE_IFCHR, .maj = 1, .min = 3 });
	tb_add(t, &(struct ent){ .path = "fifo", .type = AE_IFIFO, .perm = 0600, .uid = 0 });
	tb_add(t, &(struct ent){ .path = "d", .type = AE_IFDIR, .xname = "trusted.x", .xval = "1", .xlen = 1 });
	tb_file(t, "o/.wh..wh..opq", "");
	struct buf b = tb_finish(t);
	assert_int_equal(fchown(F.target_fd, 65534, 65534), 0);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(10);
		struct memsrc m = { .p = b.p, .len = b.len };
		struct lm_reader src = { .read = mem_read, .ctx = &m };
		struct lm_unpack_opts opts = { .unprivileged = true, .userxattr = true };
		struct lm_unpack_stats st;
		struct lm_error err;
		if (lm_unpack(&src, F.target_fd, &opts, &st, &err) < 0) {
			fprintf(stderr, "unprivileged unpack: %s\n", err.msg);
			_exit(11);
		}
		if (st.skipped_chown < 2 || st.skipped_devices != 1 || st.skipped_xattrs < 1 ||
		    st.files != 1 || st.devices != 1 || st.whiteouts != 1)
			_exit(12);
		/* Without the option the same layer fails. */
		m.pos = 0;
		opts.unprivileged = false;
		if (lm_unpack(&src, F.target_fd, &opts, &st, &err) == 0)
			_exit(13);
		if (!strstr(err.msg, "layer entry f: chown 0:0"))
			_exit(14);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(b.p);
	assert_true(S_ISFIFO(lst("fifo").st_mode));
	assert_false(exists("null"));
	assert_xattr("o", "user.overlay.opaque", "y");
	check_outside();
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_unpack needs root (devices, ownership, trusted xattrs)\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_entry_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_entry_and_implicit_parents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_later_entries_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlink_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlink_escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteout_same_layer_readd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_xattrs_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_dotdot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_absolute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_symlink_this_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_symlink_earlier_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_named_dot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteout_escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unicode_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_multi_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_multi_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_media_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_diff_id_and_explicit_formats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_source_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unprivileged, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
