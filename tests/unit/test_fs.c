/* Unit tests for util/fs.c: whole-file reads, atomic writes, and path
 * resolution that stays inside a root directory.
 *
 * Every case runs twice, once through openat2(RESOLVE_IN_ROOT) and once with
 * the userspace fallback resolver forced, and both runs check the same
 * expected answer: the fallback is only worth having if it gives the answers
 * openat2 gives.  Each test gets a fresh directory /tmp/lm-fs-XXXXXX holding
 * root/ (the "container rootfs") and outside/ (a host directory beside it
 * that symlinks in the root try to reach).  Escape checks look at the
 * outside tree itself, not only at the return value: a resolver that fails
 * with the right errno after writing on the host is still broken.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/fs.h"
#include "testutil.h"

/* ---------------------------------------------------------------- fixture */

static struct {
	char tmp[64];       /* /tmp/lm-fs-XXXXXX */
	char root[128];     /* tmp/root */
	char outside[128];  /* tmp/outside: a host directory beside the root */
	int rootfd;         /* O_PATH of root, as the runtime holds it */
	bool proc_mounted;  /* root/proc is a procfs mount (magic link test) */
} F;

static bool have_mount_ns; /* main() moved us into a private mount namespace */

/* Mismatches collected by the tests that check several independent paths,
 * so that one run lists every divergence, not only the first. */
static char problems[8192];
static bool fallback_mode;

/* Write a host file (parents created), by plain path: test scaffolding. */
static void put_host(const char *path, const char *content, mode_t mode)
{
	tu_mkparents(path);
	tu_write_file(path, content, strlen(content), mode);
	assert_int_equal(chmod(path, mode), 0); /* whatever the umask */
}

/* root-relative helpers */
static void in_root(char *out, size_t size, const char *rel)
{
	int n = snprintf(out, size, "%s/%s", F.root, rel);
	assert_true(n >= 0 && (size_t)n < size);
}

static void put_root(const char *rel, const char *content)
{
	char p[PATH_MAX];
	in_root(p, sizeof(p), rel);
	put_host(p, content, 0644);
}

static void mkdir_root(const char *rel)
{
	char p[PATH_MAX];
	in_root(p, sizeof(p), rel);
	tu_mkdirs(p);
}

static void symlink_root(const char *target, const char *rel)
{
	char p[PATH_MAX];
	in_root(p, sizeof(p), rel);
	if (symlink(target, p) < 0)
		fail_msg("symlink %s -> %s: %s", p, target, strerror(errno));
}

static bool exists_root(const char *rel)
{
	char p[PATH_MAX];
	in_root(p, sizeof(p), rel);
	return tu_exists(p);
}

static void assert_same_inode(int fd, const char *path)
{
	struct stat a, b;
	assert_int_equal(fstat(fd, &a), 0);
	if (lstat(path, &b) < 0)
		fail_msg("lstat %s: %s", path, strerror(errno));
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		fail_msg("fd is not %s", path);
}

static void assert_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	assert_true(fl >= 0);
	assert_true(fl & FD_CLOEXEC);
}

/* Every entry below dir (type, relative path, size, mode, mtime, link
 * target), one a line, sorted: a tree snapshot to prove nothing changed. */
static char snap_buf[65536];
static size_t snap_base_len;

static int snap_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type;
	(void)ftw;
	char target[PATH_MAX] = "";
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n >= 0)
			target[n] = '\0';
	}
	size_t used = strlen(snap_buf);
	snprintf(snap_buf + used, sizeof(snap_buf) - used, "%c %s %lld %o %lld.%09ld %s\n",
		 S_ISDIR(st->st_mode) ? 'd' : S_ISLNK(st->st_mode) ? 'l' : 'f', path + snap_base_len,
		 S_ISDIR(st->st_mode) ? 0LL : (long long)st->st_size, (unsigned)(st->st_mode & 07777),
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, target);
	return 0;
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *snapshot(const char *dir)
{
	snap_buf[0] = '\0';
	snap_base_len = strlen(dir);
	assert_int_equal(nftw(dir, snap_cb, 16, FTW_PHYS), 0);
	/* nftw order depends on readdir: sort the lines. */
	char *lines[1024];
	size_t n = 0;
	char *copy = strdup(snap_buf);
	assert_non_null(copy);
	for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		assert_true(n < 1024);
		lines[n++] = l;
	}
	qsort(lines, n, sizeof(lines[0]), cmp_lines);
	size_t total = 1;
	for (size_t i = 0; i < n; i++)
		total += strlen(lines[i]) + 1;
	char *out = calloc(1, total);
	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
	free(copy);
	return out;
}

static int setup(void **state)
{
	(void)state;
	umask(022);
	memset(&F, 0, sizeof(F));
	problems[0] = '\0';
	F.rootfd = -1;
	if (tu_mkdtemp(F.tmp, sizeof(F.tmp), "fs") < 0)
		return -1;
	snprintf(F.root, sizeof(F.root), "%s/root", F.tmp);
	snprintf(F.outside, sizeof(F.outside), "%s/outside", F.tmp);
	if (mkdir(F.root, 0755) < 0 || mkdir(F.outside, 0755) < 0)
		return -1;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/sentinel", F.outside);
	put_host(p, "host-sentinel", 0644);
	snprintf(p, sizeof(p), "%s/dir/keep", F.outside);
	put_host(p, "host-keep", 0644);
	F.rootfd = open(F.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return F.rootfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	lm_fs_force_fallback(false);
	if (F.rootfd >= 0)
		close(F.rootfd);
	if (F.proc_mounted) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/proc", F.root);
		umount2(p, MNT_DETACH);
	}
	if (F.tmp[0])
		tu_rm_tree(F.tmp, FTW_MOUNT);
	return 0;
}

static bool have_openat2(void)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Each case is a plain function run once per resolver. */
#define BOTH(name)                                                                        \
	static void name##_openat2(void **state)                                          \
	{                                                                                 \
		(void)state;                                                              \
		if (!have_openat2())                                                      \
			skip();                                                           \
		fallback_mode = false;                                                    \
		lm_fs_force_fallback(false);                                              \
		name();                                                                   \
	}                                                                                 \
	static void name##_fallback(void **state)                                         \
	{                                                                                 \
		(void)state;                                                              \
		fallback_mode = true;                                                     \
		lm_fs_force_fallback(true);                                               \
		name();                                                                   \
	}

#define TESTS(name)                                                                       \
	cmocka_unit_test_setup_teardown(name##_openat2, setup, teardown),                 \
	cmocka_unit_test_setup_teardown(name##_fallback, setup, teardown)

static const char *mode_name(void)
{
	return fallback_mode ? "fallback" : "openat2";
}

/* Open and expect success with the given content. */
static void expect_content(const char *path, int flags, const char *want)
{
	struct lm_error err = { 0 };
	int fd = lm_open_in_root(F.rootfd, path, flags, 0, &err);
	if (fd < 0)
		fail_msg("[%s] open %s: unexpected error: %s", mode_name(),
			 path, err.msg);
	assert_cloexec(fd);
	const char *got = tu_fd_content(fd);
	if (strcmp(got, want) != 0)
		fail_msg("[%s] open %s: got \"%s\", want \"%s\"", mode_name(),
			 path, got, want);
	close(fd);
}

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	size_t used = strlen(problems);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(problems + used, sizeof(problems) - used, fmt, ap);
	va_end(ap);
	used = strlen(problems);
	snprintf(problems + used, sizeof(problems) - used, "\n");
}

static void report_problems(void)
{
	if (problems[0])
		fail_msg("[%s]\n%s", mode_name(), problems);
}

/* false (and why) unless opening path fails with code. */
static bool check_open_error(const char *path, int flags, int code, char *why, size_t size)
{
	struct lm_error err = { 0 };
	int fd = lm_open_in_root(F.rootfd, path, flags, 0, &err);
	if (fd >= 0) {
		char host[PATH_MAX];
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(proc, host, sizeof(host) - 1);
		host[n < 0 ? 0 : n] = '\0';
		close(fd);
		snprintf(why, size, "open \"%s\" (flags %#o): expected %s, got an fd of %s", path, flags,
			 strerror(code), host);
		return false;
	}
	if (err.code != code || err.msg[0] == '\0') {
		snprintf(why, size, "open \"%s\" (flags %#o): expected %s, got code %d: %s", path, flags,
			 strerror(code), err.code, err.msg);
		return false;
	}
	return true;
}

static void expect_open_error(const char *path, int flags, int code)
{
	char why[PATH_MAX + 256];
	if (!check_open_error(path, flags, code, why, sizeof(why)))
		fail_msg("[%s] %s", mode_name(), why);
}

static void soft_open_error(const char *path, int flags, int code)
{
	char why[PATH_MAX + 256];
	if (!check_open_error(path, flags, code, why, sizeof(why)))
		problem("%s", why);
}

/* ---------------------------------------------------------------- lm_open_in_root */

static void open_normal_file(void)
{
	put_root("etc/hostname", "in-root");
	expect_content("etc/hostname", O_RDONLY, "in-root");
	expect_content("/etc/hostname", O_RDONLY, "in-root");
	expect_content("./etc//hostname", O_RDONLY, "in-root");
	/* O_PATH of a directory, as the mount code asks for. */
	struct lm_error err = { 0 };
	int fd = lm_open_in_root(F.rootfd, "/etc", O_PATH | O_DIRECTORY, 0, &err);
	assert_true(fd >= 0);
	assert_cloexec(fd);
	char p[PATH_MAX];
	in_root(p, sizeof(p), "etc");
	assert_same_inode(fd, p);
	close(fd);
	/* Writable open keeps the flags it was given. */
	fd = lm_open_in_root(F.rootfd, "etc/hostname", O_WRONLY | O_TRUNC, 0, &err);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "new", 3), 3);
	close(fd);
	in_root(p, sizeof(p), "etc/hostname");
	assert_string_equal(tu_file_content(p), "new");
	expect_open_error("etc/missing", O_RDONLY, ENOENT);
	expect_open_error("etc/hostname/x", O_RDONLY, ENOTDIR);
}
BOTH(open_normal_file)

static void open_dotdot_clamped_existing(void)
{
	put_root("etc/passwd", "root-passwd");
	expect_content("../../etc/passwd", O_RDONLY, "root-passwd");
	expect_content("/../../../../../../etc/passwd", O_RDONLY, "root-passwd");
	expect_content("etc/../../../etc/passwd", O_RDONLY, "root-passwd");
	/* ".." inside the root still works normally. */
	mkdir_root("a/b");
	expect_content("a/b/../../etc/passwd", O_RDONLY, "root-passwd");
}
BOTH(open_dotdot_clamped_existing)

static void open_dotdot_clamped_missing(void)
{
	/* No etc/ in the root: never the host's /etc/passwd. */
	expect_open_error("../../etc/passwd", O_RDONLY, ENOENT);
	expect_open_error("../../../../../../../../etc/passwd", O_RDONLY, ENOENT);
	/* "../outside/sentinel" from the root names the host file by string. */
	expect_open_error("../outside/sentinel", O_RDONLY, ENOENT);
	char p[PATH_MAX];
	FMT(p, "../../../../../..%s", F.outside);
	expect_open_error(p, O_RDONLY, ENOENT);
}
BOTH(open_dotdot_clamped_missing)

static void open_absolute_symlink_inside(void)
{
	put_root("etc/shadow-like-target", "inside-shadow");
	symlink_root("/etc/shadow-like-target", "link");
	expect_content("link", O_RDONLY, "inside-shadow");
	expect_content("/link", O_RDONLY, "inside-shadow");

	/* Pointing at a host path that exists on the host: only the in-root copy counts. */
	char target[PATH_MAX];
	FMT(target, "%s/sentinel", F.outside);
	symlink_root(target, "hostlink");
	expect_open_error("hostlink", O_RDONLY, ENOENT);
	char mirror[PATH_MAX];
	FMT(mirror, "%s%s", F.root, target);
	put_host(mirror, "mirror-in-root", 0644);
	expect_content("hostlink", O_RDONLY, "mirror-in-root");

	/* A directory symlink in the middle of the path. */
	put_root("etc/passwd", "root-passwd");
	symlink_root("/etc", "etclink");
	expect_content("etclink/passwd", O_RDONLY, "root-passwd");
	symlink_root("/", "rootlink");
	expect_content("rootlink/../rootlink/etc/passwd", O_RDONLY, "root-passwd");
}
BOTH(open_absolute_symlink_inside)

static void open_relative_symlink_many_dotdot(void)
{
	put_root("etc/target", "inside-target");
	mkdir_root("a/b/c");
	symlink_root("../../../../../../../../../../../../etc/target", "a/b/c/up");
	expect_content("a/b/c/up", O_RDONLY, "inside-target");

	/* root/a/esc -> ../../outside/sentinel is tmp/outside/sentinel by string. */
	symlink_root("../../outside/sentinel", "a/esc");
	expect_open_error("a/esc", O_RDONLY, ENOENT);
	symlink_root("../../../outside", "a/b/escdir");
	expect_open_error("a/b/escdir/sentinel", O_RDONLY, ENOENT);
	/* Once the in-root path exists it is what is opened. */
	put_root("outside/sentinel", "in-root-sentinel");
	expect_content("a/esc", O_RDONLY, "in-root-sentinel");
	expect_content("a/b/escdir/sentinel", O_RDONLY, "in-root-sentinel");
}
BOTH(open_relative_symlink_many_dotdot)

static void open_symlink_loop(void)
{
	symlink_root("loop2", "loop1");
	symlink_root("/loop1", "loop2");
	symlink_root("self", "self");
	expect_open_error("loop1", O_RDONLY, ELOOP);
	expect_open_error("loop1/x", O_RDONLY, ELOOP);
	expect_open_error("self", O_PATH, ELOOP);
	mkdir_root("d");
	symlink_root("../d/dl", "d/dl");
	expect_open_error("d/dl/a/b", O_RDONLY, ELOOP);

	/* The bound is the kernel's: 40 expansions resolve, 41 do not. */
	put_root("end", "end-of-chain");
	char name[32], target[32];
	for (int i = 0; i < 41; i++) {
		FMT(name, "c%d", i);
		if (i == 40)
			FMT(target, "end");
		else
			FMT(target, "c%d", i + 1);
		symlink_root(target, name);
	}
	expect_content("c1", O_RDONLY, "end-of-chain");  /* 40 links */
	expect_open_error("c0", O_RDONLY, ELOOP);        /* 41 links */
}
BOTH(open_symlink_loop)

static void open_nofollow_final_symlink(void)
{
	put_root("etc/hostname", "in-root");
	symlink_root("/etc/hostname", "link");
	symlink_root("/etc", "dirlink");
	/* Opening a symlink itself for reading is ELOOP, as openat(O_NOFOLLOW). */
	expect_open_error("link", O_RDONLY | O_NOFOLLOW, ELOOP);
	/* O_PATH|O_NOFOLLOW gives the link itself. */
	struct lm_error err = { 0 };
	int fd = lm_open_in_root(F.rootfd, "link", O_PATH | O_NOFOLLOW, 0, &err);
	if (fd < 0)
		fail_msg("O_PATH|O_NOFOLLOW: %s", err.msg);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	char p[PATH_MAX];
	in_root(p, sizeof(p), "link");
	assert_same_inode(fd, p);
	close(fd);
	/* Only the last component is not followed. */
	expect_content("dirlink/hostname", O_RDONLY | O_NOFOLLOW, "in-root");
	/* Without O_NOFOLLOW the link is followed. */
	expect_content("link", O_RDONLY, "in-root");
}
BOTH(open_nofollow_final_symlink)

/* Paths at the edges: empty, the root itself, a trailing slash. */
static void open_edge_paths(void)
{
	put_root("etc/hostname", "in-root");
	symlink_root("/etc", "dirlink");
	struct lm_error err = { 0 };
	int fd = lm_open_in_root(F.rootfd, "/", O_PATH | O_DIRECTORY, 0, &err);
	assert_true(fd >= 0);
	assert_same_inode(fd, F.root);
	close(fd);
	fd = lm_open_in_root(F.rootfd, ".", O_PATH | O_DIRECTORY, 0, &err);
	assert_true(fd >= 0);
	assert_same_inode(fd, F.root);
	close(fd);
	fd = lm_open_in_root(F.rootfd, "etc/", O_PATH, 0, &err);
	assert_true(fd >= 0);
	close(fd);
	/* openat2 says ENOENT for "" (no AT_EMPTY_PATH); the fallback must too. */
	soft_open_error("", O_PATH, ENOENT);
	soft_open_error("", O_RDONLY, ENOENT);
	/* A trailing slash demands a directory... */
	soft_open_error("etc/hostname/", O_RDONLY, ENOTDIR);
	soft_open_error("etc/hostname/", O_PATH, ENOTDIR);
	/* ...and follows a final symlink even with O_NOFOLLOW, as the kernel does. */
	fd = lm_open_in_root(F.rootfd, "dirlink/", O_PATH | O_NOFOLLOW, 0, &err);
	char p[PATH_MAX];
	in_root(p, sizeof(p), "etc");
	struct stat a, b;
	if (fd < 0)
		problem("open \"dirlink/\" O_PATH|O_NOFOLLOW: %s", err.msg);
	else if (fstat(fd, &a) < 0 || stat(p, &b) < 0 || a.st_ino != b.st_ino)
		problem("open \"dirlink/\" O_PATH|O_NOFOLLOW: not the directory it points to");
	if (fd >= 0)
		close(fd);
	report_problems();
}
BOTH(open_edge_paths)

/* "flags as for openat": O_CREAT makes the file, O_EXCL refuses an existing one. */
static void open_creat(void)
{
	mkdir_root("etc");
	struct lm_error err = { 0 };
	int fd = lm_open_in_root(F.rootfd, "etc/new", O_WRONLY | O_CREAT | O_EXCL, 0640, &err);
	if (fd < 0)
		fail_msg("[%s] O_CREAT etc/new: %s", mode_name(), err.msg);
	close(fd);
	char p[PATH_MAX];
	in_root(p, sizeof(p), "etc/new");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	expect_open_error("etc/new", O_WRONLY | O_CREAT | O_EXCL, EEXIST);

	/* O_CREAT through a dangling absolute symlink creates inside the root. */
	char target[PATH_MAX], mirror[PATH_MAX];
	FMT(target, "%s/created", F.outside);
	FMT(mirror, "%s%s", F.root, F.outside);
	tu_mkdirs(mirror);
	symlink_root(target, "dangling");
	char *before = snapshot(F.outside);
	fd = lm_open_in_root(F.rootfd, "dangling", O_WRONLY | O_CREAT, 0600, &err);
	char *after = snapshot(F.outside);
	assert_string_equal(before, after); /* never on the host */
	free(before);
	free(after);
	assert_false(tu_exists(target));
	if (fd < 0)
		fail_msg("[%s] O_CREAT through dangling symlink: %s", mode_name(),
			 err.msg);
	close(fd);
	FMT(p, "%s/created", mirror);
	assert_true(tu_exists(p));
}
BOTH(open_creat)

/* A symlink to /proc/self/root (a magic link) must not be followed: openat2
 * says ELOOP (RESOLVE_NO_MAGICLINKS).  Needs a procfs inside the root, which
 * is mounted in the private mount namespace main() set up. */
static void open_magic_links(void)
{
	if (!have_mount_ns)
		skip();
	char p[PATH_MAX];
	in_root(p, sizeof(p), "proc");
	tu_mkdirs(p);
	if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		skip();
	F.proc_mounted = true;
	put_root("etc/hostname", "in-root");
	symlink_root("/proc/self/root", "me");

	/* Ordinary procfs symlinks (/proc/self) are fine. */
	struct lm_error err = { 0 };
	int fd = lm_open_in_root(F.rootfd, "proc/self/status", O_RDONLY, 0, &err);
	if (fd < 0)
		fail_msg("proc/self/status: %s", err.msg);
	close(fd);

	/* A host fd, visible as the magic link /proc/self/fd/N. */
	char sentinel[PATH_MAX];
	FMT(sentinel, "%s/sentinel", F.outside);
	int host = open(sentinel, O_RDONLY | O_CLOEXEC);
	assert_true(host >= 0);
	char via_fd[64];
	FMT(via_fd, "proc/self/fd/%d", host);

	const char *paths[] = { "me/etc/hostname", "proc/self/root/etc/hostname", "proc/self/cwd",
				via_fd };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		fd = lm_open_in_root(F.rootfd, paths[i], O_RDONLY, 0, &err);
		if (fd >= 0) {
			/* Whatever it opened, it must not be the host's file. */
			struct stat a, b;
			assert_int_equal(fstat(fd, &a), 0);
			assert_int_equal(stat(sentinel, &b), 0);
			assert_false(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
			char what[PATH_MAX], proc[64];
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(proc, what, sizeof(what) - 1);
			what[n < 0 ? 0 : n] = '\0';
			close(fd);
			problem("open \"%s\": magic link followed to %s (want ELOOP)", paths[i], what);
		} else if (err.code != ELOOP) {
			problem("open \"%s\": want ELOOP, got %s", paths[i], err.msg);
		}
	}
	close(host);
	report_problems();
}
BOTH(open_magic_links)

/* ---------------------------------------------------------------- lm_mkdir_in_root */

static void mkdir_nested(void)
{
	struct lm_error err = { 0 };
	int fd = lm_mkdir_in_root(F.rootfd, "a/b/c", 0750, &err);
	if (fd < 0)
		fail_msg("mkdir a/b/c: %s", err.msg);
	assert_cloexec(fd);
	assert_true(fcntl(fd, F_GETFL) & O_PATH);
	char p[PATH_MAX];
	in_root(p, sizeof(p), "a/b/c");
	assert_same_inode(fd, p);
	close(fd);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);

	/* Again: nothing to do, same directory. */
	fd = lm_mkdir_in_root(F.rootfd, "/a/b/c/", 0700, &err);
	assert_true(fd >= 0);
	assert_same_inode(fd, p);
	close(fd);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);

	/* Extending an existing chain. */
	fd = lm_mkdir_in_root(F.rootfd, "a/b/c/d/e", 0755, &err);
	assert_true(fd >= 0);
	in_root(p, sizeof(p), "a/b/c/d/e");
	assert_same_inode(fd, p);
	close(fd);

	/* A file in the way. */
	put_root("f", "file");
	fd = lm_mkdir_in_root(F.rootfd, "f/x", 0755, &err);
	assert_true(fd < 0);
	assert_int_equal(err.code, ENOTDIR);
	assert_contains(err.msg, "f/x");
}
BOTH(mkdir_nested)

static void mkdir_dotdot_clamped(void)
{
	char esc1[PATH_MAX], esc2[PATH_MAX], rel[PATH_MAX];
	FMT(esc1, "%s/lm-escape-%d", F.tmp, (int)getpid());
	FMT(esc2, "/tmp/lm-escape-%d", (int)getpid());
	FMT(rel, "../../lm-escape-%d/d", (int)getpid());
	struct lm_error err = { 0 };
	int fd = lm_mkdir_in_root(F.rootfd, rel, 0755, &err);
	bool escaped = tu_exists(esc1) || tu_exists(esc2);
	if (escaped) { /* do not leave the escape behind */
		char d[PATH_MAX + 8];
		FMT(d, "%s/d", esc1);
		rmdir(d);
		rmdir(esc1);
		FMT(d, "%s/d", esc2);
		rmdir(d);
		rmdir(esc2);
		fail_msg("mkdir %s escaped the root", rel);
	}
	if (fd < 0)
		fail_msg("mkdir %s: %s", rel, err.msg);
	char p[PATH_MAX];
	FMT(p, "%s/lm-escape-%d/d", F.root, (int)getpid());
	assert_same_inode(fd, p);
	close(fd);
}
BOTH(mkdir_dotdot_clamped)

/* Through symlinks whose targets exist inside the root. */
static void mkdir_through_symlink(void)
{
	mkdir_root("real");
	symlink_root("/real", "abs");
	symlink_root("../../../real", "rel");
	char *before = snapshot(F.outside);
	struct lm_error err = { 0 };
	int fd = lm_mkdir_in_root(F.rootfd, "abs/sub1/x", 0755, &err);
	if (fd < 0)
		fail_msg("mkdir abs/sub1/x: %s", err.msg);
	close(fd);
	fd = lm_mkdir_in_root(F.rootfd, "rel/sub2", 0755, &err);
	if (fd < 0)
		fail_msg("mkdir rel/sub2: %s", err.msg);
	close(fd);
	assert_true(exists_root("real/sub1/x"));
	assert_true(exists_root("real/sub2"));
	struct stat st;
	char p[PATH_MAX];
	in_root(p, sizeof(p), "abs");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));

	/* An absolute symlink naming the host's outside/ dir, mirrored in the root. */
	char mirror[PATH_MAX];
	FMT(mirror, "%s%s", F.root, F.outside);
	tu_mkdirs(mirror);
	symlink_root(F.outside, "host");
	fd = lm_mkdir_in_root(F.rootfd, "host/sub3", 0755, &err);
	if (fd < 0)
		fail_msg("mkdir host/sub3: %s", err.msg);
	FMT(p, "%s/sub3", mirror);
	assert_same_inode(fd, p);
	close(fd);
	char *after = snapshot(F.outside);
	assert_string_equal(before, after);
	free(before);
	free(after);
}
BOTH(mkdir_through_symlink)

/* Through symlinks that point outside and dangle inside the root: the
 * directories are made inside the root where the link leads (runc allows
 * dangling symlinks in mount targets the same way), the host is untouched. */
static void mkdir_through_dangling_symlink(void)
{
	char *before = snapshot(F.outside);
	symlink_root("../outside", "rel");  /* tmp/outside on the host, by string */
	symlink_root(F.outside, "abs");     /* the host path itself */
	struct lm_error err_rel = { 0 }, err_abs = { 0 };
	int fd_rel = lm_mkdir_in_root(F.rootfd, "rel/sub", 0755, &err_rel);
	int fd_abs = lm_mkdir_in_root(F.rootfd, "abs/dir/sub", 0755, &err_abs);
	char *after = snapshot(F.outside);
	assert_string_equal(before, after); /* first: nothing outside changed */
	free(before);
	free(after);
	if (fd_rel < 0)
		problem("mkdir rel/sub (rel -> ../outside): %s", err_rel.msg);
	if (fd_abs < 0)
		problem("mkdir abs/dir/sub (abs -> %s): %s", F.outside, err_abs.msg);
	report_problems();
	char p[PATH_MAX];
	in_root(p, sizeof(p), "outside/sub");
	assert_same_inode(fd_rel, p);
	FMT(p, "%s%s/dir/sub", F.root, F.outside);
	assert_same_inode(fd_abs, p);
	close(fd_rel);
	close(fd_abs);
}
BOTH(mkdir_through_dangling_symlink)

/* ---------------------------------------------------------------- lm_mkfile_in_root */

static void mkfile_basic(void)
{
	struct lm_error err = { 0 };
	int fd = lm_mkfile_in_root(F.rootfd, "a/b/file", 0640, &err);
	if (fd < 0)
		fail_msg("mkfile a/b/file: %s", err.msg);
	assert_cloexec(fd);
	char p[PATH_MAX];
	in_root(p, sizeof(p), "a/b/file");
	assert_same_inode(fd, p);
	close(fd);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	in_root(p, sizeof(p), "a/b");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);

	/* An existing directory is returned as is. */
	mkdir_root("d");
	fd = lm_mkfile_in_root(F.rootfd, "/d", 0644, &err);
	assert_true(fd >= 0);
	in_root(p, sizeof(p), "d");
	assert_same_inode(fd, p);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	close(fd);

	/* An existing file is returned untouched. */
	put_root("e/full", "content");
	fd = lm_mkfile_in_root(F.rootfd, "e/full", 0600, &err);
	assert_true(fd >= 0);
	in_root(p, sizeof(p), "e/full");
	assert_same_inode(fd, p);
	close(fd);
	assert_string_equal(tu_file_content(p), "content");

	/* Parents through ".." stay in the root. */
	fd = lm_mkfile_in_root(F.rootfd, "../../x/y", 0644, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_true(exists_root("x/y"));
	char esc[PATH_MAX];
	FMT(esc, "%s/x", F.tmp);
	assert_false(tu_exists(esc));
}
BOTH(mkfile_basic)

/* A dangling symlink to "/outside/file": the file is made inside the root. */
static void mkfile_dangling_symlink(void)
{
	bool host_outside_existed = tu_exists("/outside");
	char *before = snapshot(F.outside);
	mkdir_root("outside");
	symlink_root("/outside/file", "lit");
	char target[PATH_MAX];
	FMT(target, "%s/newfile", F.outside);
	symlink_root(target, "abs");
	symlink_root("../outside/newfile2", "rel");
	struct lm_error e1 = { 0 }, e2 = { 0 }, e3 = { 0 };
	int f1 = lm_mkfile_in_root(F.rootfd, "lit", 0644, &e1);
	int f2 = lm_mkfile_in_root(F.rootfd, "abs", 0644, &e2);
	int f3 = lm_mkfile_in_root(F.rootfd, "rel", 0644, &e3);
	/* Security first: the host is untouched whatever the return values. */
	if (!host_outside_existed)
		assert_false(tu_exists("/outside"));
	else
		assert_false(tu_exists("/outside/file") && !exists_root("outside/file"));
	char *after = snapshot(F.outside);
	assert_string_equal(before, after);
	free(before);
	free(after);
	if (f1 < 0)
		problem("mkfile lit (-> /outside/file): %s", e1.msg);
	if (f2 < 0)
		problem("mkfile abs (-> %s): %s", target, e2.msg);
	if (f3 < 0)
		problem("mkfile rel (-> ../outside/newfile2): %s", e3.msg);
	report_problems();
	char p[PATH_MAX];
	in_root(p, sizeof(p), "outside/file");
	assert_same_inode(f1, p);
	FMT(p, "%s%s", F.root, target);
	assert_same_inode(f2, p);
	in_root(p, sizeof(p), "outside/newfile2");
	assert_same_inode(f3, p);
	close(f1);
	close(f2);
	close(f3);
	struct stat st;
	in_root(p, sizeof(p), "lit");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode)); /* the link itself stays */
}
BOTH(mkfile_dangling_symlink)

/* ---------------------------------------------------------------- reads */

static int root_dirfd(void)
{
	int fd = open(F.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void read_file_normal(void)
{
	put_root("f", "hello world");
	int dfd = root_dirfd();
	struct lm_error err = { 0 };
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(lm_read_file_at(dfd, "f", 1024, &out, &len, &err), 0);
	assert_int_equal(len, 11);
	assert_string_equal(out, "hello world");
	free(out);

	/* len may be NULL; an empty file is an empty string. */
	put_root("empty", "");
	out = NULL;
	assert_int_equal(lm_read_file_at(dfd, "empty", 16, &out, NULL, &err), 0);
	assert_non_null(out);
	assert_string_equal(out, "");
	free(out);

	/* Larger than the first buffer: grown as needed. */
	static char big[20000];
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof(big) - 1] = '\0';
	put_root("big", big);
	out = NULL;
	assert_int_equal(lm_read_file_at(dfd, "big", 1 << 20, &out, &len, &err), 0);
	assert_int_equal(len, sizeof(big) - 1);
	assert_memory_equal(out, big, len);
	assert_int_equal(out[len], '\0');
	free(out);

	/* Missing. */
	out = NULL;
	assert_true(lm_read_file_at(dfd, "missing", 16, &out, &len, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "missing");
	assert_null(out);
	close(dfd);
}
BOTH(read_file_normal)

static void read_file_limit(void)
{
	put_root("f", "0123456789A"); /* 11 bytes */
	int dfd = root_dirfd();
	struct lm_error err = { 0 };
	char *out = NULL;
	size_t len = 0;
	assert_true(lm_read_file_at(dfd, "f", 10, &out, &len, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	assert_contains(err.msg, "f");
	assert_contains(err.msg, "larger than 10");
	assert_null(out);

	/* Above the first 4096-byte step too. */
	static char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put_root("big", big);
	assert_true(lm_read_file_at(dfd, "big", 4500, &out, &len, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	assert_null(out);
	close(dfd);
}
BOTH(read_file_limit)

/* "at most max bytes; larger is an error": exactly max is allowed. */
static void read_file_exactly_max(void)
{
	put_root("ten", "0123456789");
	put_root("empty", "");
	static char page[4097];
	memset(page, 'p', 4096);
	put_root("page", page);
	int dfd = root_dirfd();
	struct lm_error err = { 0 };
	char *out = NULL;
	size_t len = 0;
	if (lm_read_file_at(dfd, "ten", 10, &out, &len, &err) < 0)
		fail_msg("10-byte file, max 10: %s", err.msg);
	assert_int_equal(len, 10);
	assert_string_equal(out, "0123456789");
	free(out);
	out = NULL;
	if (lm_read_file_at(dfd, "page", 4096, &out, &len, &err) < 0)
		fail_msg("4096-byte file, max 4096: %s", err.msg);
	assert_int_equal(len, 4096);
	free(out);
	out = NULL;
	if (lm_read_file_at(dfd, "empty", 0, &out, &len, &err) < 0)
		fail_msg("empty file, max 0: %s", err.msg);
	assert_int_equal(len, 0);
	free(out);
	close(dfd);
}
BOTH(read_file_exactly_max)

static void read_fd_cases(void)
{
	struct lm_error err = { 0 };
	char *out = NULL;
	size_t len = 0;
	/* What is left of a file after a partial read. */
	put_root("f", "skip-rest");
	char p[PATH_MAX];
	in_root(p, sizeof(p), "f");
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char five[5];
	assert_int_equal(read(fd, five, 5), 5);
	assert_int_equal(lm_read_fd(fd, 100, &out, &len, &err), 0);
	assert_int_equal(len, 4);
	assert_string_equal(out, "rest");
	free(out);
	close(fd);

	/* A pipe: no size known in advance. */
	int pp[2];
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	assert_int_equal(write(pp[1], "piped data", 10), 10);
	close(pp[1]);
	out = NULL;
	assert_int_equal(lm_read_fd(pp[0], 100, &out, &len, &err), 0);
	assert_int_equal(len, 10);
	assert_string_equal(out, "piped data");
	free(out);
	close(pp[0]);

	/* Over the limit from a pipe. */
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	assert_int_equal(write(pp[1], "0123456789abcdef", 16), 16);
	close(pp[1]);
	out = NULL;
	assert_true(lm_read_fd(pp[0], 8, &out, &len, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	assert_contains(err.msg, "larger than 8");
	assert_null(out);
	close(pp[0]);

	/* A bad fd is an error, not a crash. */
	assert_true(lm_read_fd(-1, 8, &out, &len, &err) < 0);
	assert_int_equal(err.code, EBADF);
}
BOTH(read_fd_cases)

/* ---------------------------------------------------------------- writes */

/* Names in dir other than the expected ones (temp files left behind). */
static void assert_only_entries(const char *dir, const char *const *names, size_t n)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool known = false;
		for (size_t i = 0; i < n; i++)
			known |= strcmp(de->d_name, names[i]) == 0;
		if (!known) {
			closedir(d);
			fail_msg("unexpected entry %s/%s", dir, de->d_name);
		}
	}
	closedir(d);
}

static void write_atomic(void)
{
	mkdir_root("s");
	char dir[PATH_MAX], p[PATH_MAX];
	in_root(dir, sizeof(dir), "s");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	struct lm_error err = { 0 };

	/* New file, mode applied. */
	assert_int_equal(lm_write_file_atomic_at(dfd, "state.json", "{\"a\":1}", 7, 0640, &err), 0);
	in_root(p, sizeof(p), "s/state.json");
	assert_string_equal(tu_file_content(p), "{\"a\":1}");
	struct stat st, st2;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	/* Replaced: shorter content, new mode, a new inode (readers see old or new). */
	int old = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(old >= 0);
	assert_int_equal(lm_write_file_atomic_at(dfd, "state.json", "new", 3, 0600, &err), 0);
	assert_string_equal(tu_file_content(p), "new");
	assert_string_equal(tu_fd_content(old), "{\"a\":1}");
	close(old);
	assert_int_equal(stat(p, &st2), 0);
	assert_int_equal(st2.st_mode & 07777, 0600);
	assert_true(st.st_ino != st2.st_ino);

	/* Empty content. */
	assert_int_equal(lm_write_file_atomic_at(dfd, "empty", "", 0, 0644, &err), 0);
	in_root(p, sizeof(p), "s/empty");
	assert_string_equal(tu_file_content(p), "");

	/* A symlink at path is replaced, never written through. */
	char target[PATH_MAX];
	FMT(target, "%s/sentinel", F.outside);
	symlink_root(target, "s/link");
	assert_int_equal(lm_write_file_atomic_at(dfd, "link", "replaced", 8, 0644, &err), 0);
	assert_string_equal(tu_file_content(target), "host-sentinel");
	in_root(p, sizeof(p), "s/link");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_string_equal(tu_file_content(p), "replaced");

	/* No temp file anywhere. */
	const char *names[] = { "state.json", "empty", "link" };
	assert_only_entries(dir, names, 3);

	/* Failure: missing directory, nothing left behind. */
	assert_true(lm_write_file_atomic_at(dfd, "nodir/x", "x", 1, 0644, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "nodir/x");
	assert_only_entries(dir, names, 3);

	/* AT_FDCWD with an absolute path. */
	FMT(p, "%s/s/abs", F.root);
	assert_int_equal(lm_write_file_atomic_at(AT_FDCWD, p, "abs", 3, 0644, &err), 0);
	assert_string_equal(tu_file_content(p), "abs");
	close(dfd);
}
BOTH(write_atomic)

static void write_no_create(void)
{
	mkdir_root("s");
	char dir[PATH_MAX], p[PATH_MAX];
	in_root(dir, sizeof(dir), "s");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	struct lm_error err = { 0 };

	assert_true(lm_write_file_at(dfd, "missing", "x", 1, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "missing");
	assert_false(exists_root("s/missing"));

	/* Existing: truncated and written. */
	put_root("s/f", "a much longer old content");
	assert_int_equal(lm_write_file_at(dfd, "f", "new", 3, &err), 0);
	in_root(p, sizeof(p), "s/f");
	assert_string_equal(tu_file_content(p), "new");

	/* A symlink is not written through. */
	char target[PATH_MAX];
	FMT(target, "%s/sentinel", F.outside);
	symlink_root(target, "s/link");
	assert_true(lm_write_file_at(dfd, "link", "pwned", 5, &err) < 0);
	assert_int_equal(err.code, ELOOP);
	assert_string_equal(tu_file_content(target), "host-sentinel");
	close(dfd);
}
BOTH(write_no_create)

/* ---------------------------------------------------------------- lm_rm_rf_at */

static void rm_rf_symlinks_outside(void)
{
	char *before = snapshot(F.outside);
	char target[PATH_MAX];
	put_root("t/f", "file");
	put_root("t/d/g", "deep");
	mkdir_root("t/d/empty");
	mkdir_root("t/d/e/f/g/h");
	symlink_root(F.outside, "t/abs");               /* absolute, to the host dir */
	symlink_root("../../outside", "t/rel");         /* relative, to the host dir */
	symlink_root("../../../outside/dir", "t/d/rel2");
	FMT(target, "%s/sentinel", F.outside);
	symlink_root(target, "t/d/filelink");
	symlink_root("/nonexistent", "t/dangling");
	char p[PATH_MAX];
	in_root(p, sizeof(p), "t/fifo");
	assert_int_equal(mkfifo(p, 0600), 0);
	/* A top-level symlink to the host dir: only the link goes. */
	symlink_root(F.outside, "top");

	int dfd = root_dirfd();
	struct lm_error err = { 0 };
	if (lm_rm_rf_at(dfd, "t", &err) < 0)
		fail_msg("rm -rf t: %s", err.msg);
	if (lm_rm_rf_at(dfd, "top", &err) < 0)
		fail_msg("rm -rf top: %s", err.msg);
	assert_false(exists_root("t"));
	assert_false(exists_root("top"));
	char *after = snapshot(F.outside);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_string_equal(tu_file_content(target), "host-sentinel");

	/* Missing is fine; a plain file is removed. */
	assert_int_equal(lm_rm_rf_at(dfd, "missing", &err), 0);
	put_root("plain", "x");
	assert_int_equal(lm_rm_rf_at(dfd, "plain", &err), 0);
	assert_false(exists_root("plain"));
	close(dfd);
	/* The root itself is still there. */
	assert_true(tu_exists(F.root));
}
BOTH(rm_rf_symlinks_outside)

/* ---------------------------------------------------------------- main */

int main(void)
{
	/* A private mount namespace for the procfs the magic-link test mounts:
	 * nothing it does is visible on the host. */
	have_mount_ns = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	const struct CMUnitTest tests[] = {
		TESTS(open_normal_file),
		TESTS(open_dotdot_clamped_existing),
		TESTS(open_dotdot_clamped_missing),
		TESTS(open_absolute_symlink_inside),
		TESTS(open_relative_symlink_many_dotdot),
		TESTS(open_symlink_loop),
		TESTS(open_nofollow_final_symlink),
		TESTS(open_edge_paths),
		TESTS(open_creat),
		TESTS(open_magic_links),
		TESTS(mkdir_nested),
		TESTS(mkdir_dotdot_clamped),
		TESTS(mkdir_through_symlink),
		TESTS(mkdir_through_dangling_symlink),
		TESTS(mkfile_basic),
		TESTS(mkfile_dangling_symlink),
		TESTS(read_file_normal),
		TESTS(read_file_limit),
		TESTS(read_file_exactly_max),
		TESTS(read_fd_cases),
		TESTS(write_atomic),
		TESTS(write_no_create),
		TESTS(rm_rf_symlinks_outside),
	};
	return cmocka_run_group_tests_name("fs", tests, NULL, NULL);
}
