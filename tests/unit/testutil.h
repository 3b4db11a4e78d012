/* Helpers shared by the unit tests (tests/unit/test_*.c).
 *
 * Header-only on purpose: every test is its own executable built from one
 * source file, so there is no test library to link, and each test takes
 * only what it uses.  Everything here is a macro or a static inline
 * function: unused ones cost nothing and draw no -Wunused-function, and
 * static inline needs no prototype for -Wmissing-prototypes.
 *
 * The checks fail the running cmocka test (fail_msg/assert_*) rather than
 * returning errors, so they may only be called from a test or from a
 * helper a test calls, not from a group setup or teardown.  The exceptions,
 * tu_mkdtemp, tu_rm_tree, tu_dir_entries, tu_need_root, tu_rm_cgroup and
 * tu_unshare_mounts, return a status (or nothing) and fail nothing, for use
 * in fixtures and before cmocka runs.
 *
 * Assertion-style macros keep the cmocka-like names the tests always used
 * (FMT, assert_contains, assert_ok); functions are prefixed tu_ so that
 * they never clash with a test's own helpers.
 */
#ifndef LAMINA_TESTS_UNIT_TESTUTIL_H
#define LAMINA_TESTS_UNIT_TESTUTIL_H

/* cmocka.h needs these first. */
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
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------- assertions */

/* snprintf into an array `buf` (sizeof must be its size, so not a pointer)
 * that fails the test instead of truncating. */
#define FMT(buf, ...)                                                                     \
	do {                                                                              \
		int fmt_n_ = snprintf((buf), sizeof(buf), __VA_ARGS__);                    \
		assert_true(fmt_n_ >= 0 && (size_t)fmt_n_ < sizeof(buf));                   \
	} while (0)

/* Fails unless the string hay contains needle. */
#define assert_contains(hay, needle)                                                      \
	do {                                                                              \
		if (!strstr((hay), (needle)))                                             \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));      \
	} while (0)

/* Fails if expr is negative, with the expression and the message of err,
 * the struct lm_error the call filled in. */
#define assert_ok(expr, err)                                                              \
	do {                                                                              \
		if ((expr) < 0)                                                           \
			fail_msg("%s: %s", #expr, (err).msg);                             \
	} while (0)

/* ------------------------------------------------------ temporary trees */

/* Makes a fresh /tmp/lm-<tag>-XXXXXX and leaves its name in buf.
 * 0, or -1 when the name does not fit or mkdtemp fails. */
static inline int tu_mkdtemp(char *buf, size_t size, const char *tag)
{
	int n = snprintf(buf, size, "/tmp/lm-%s-XXXXXX", tag);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

static inline int tu_rm_cb_(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* carry on past what cannot go: remove all that can */
}

/* Removes dir and everything below it, not following symlinks; extra_flags
 * are more nftw flags (FTW_MOUNT: stay on dir's filesystem).  0 when dir is
 * gone, -1 when it could not all be removed. */
static inline int tu_rm_tree(const char *dir, int extra_flags)
{
	int r = nftw(dir, tu_rm_cb_, 16, FTW_DEPTH | FTW_PHYS | extra_flags);
	struct stat st;
	if (r == 0 && lstat(dir, &st) == 0)
		r = -1;
	return r;
}

/* ------------------------------------------------------------------ bytes */

/* A growing buffer of bytes; {0} is an empty one, free(data) frees it. */
struct tu_buf {
	char *data;
	size_t len;
};

/* Appends len bytes of data to b, keeping a NUL after them (not counted in
 * len) so that text in b is a string. */
static inline void tu_buf_add(struct tu_buf *b, const void *data, size_t len)
{
	b->data = realloc(b->data, b->len + len + 1);
	assert_non_null(b->data);
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

/* ------------------------------------------------------- files and dirs */

/* Does path exist (a dangling symlink counts)? */
static inline bool tu_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* mkdir -p, mode 0755. */
static inline void tu_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	FMT(buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", buf, strerror(errno));
}

/* mkdir -p of the directory holding path, if path names one. */
static inline void tu_mkparents(const char *path)
{
	char parent[PATH_MAX];
	FMT(parent, "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		tu_mkdirs(parent);
	}
}

/* Creates or truncates path (open's mode, so the umask applies) and writes
 * len bytes of data, all in one write. */
static inline void tu_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* tu_write_file of a string, mode 0644. */
static inline void tu_put_file(const char *path, const char *text)
{
	tu_write_file(path, text, strlen(text), 0644);
}

/* All of fd from offset 0 (up to 64 KiB), NUL-terminated, in a static
 * buffer that the next call (or tu_file_content) overwrites. */
static inline const char *tu_fd_content(int fd)
{
	static char buf[65536];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0) {
		fail_msg("pread: %s", strerror(errno));
		n = 0; /* not reached: fail_msg ends the test */
	}
	buf[n] = '\0';
	return buf;
}

/* The content of the file at path, as tu_fd_content. */
static inline const char *tu_file_content(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	const char *s = tu_fd_content(fd);
	close(fd);
	return s;
}

/* Number of entries in dir besides . and .., or -1 when it cannot be
 * opened (errno set). */
static inline int tu_dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* tu_dir_entries that fails the test when dir cannot be opened. */
static inline int tu_count_entries(const char *dir)
{
	int n = tu_dir_entries(dir);
	if (n < 0)
		fail_msg("opendir %s: %s", dir, strerror(errno));
	return n;
}

/* ------------------------------------------------- root, cgroups, mounts */

/* 0 when running as root; otherwise says "<test> needs root" and returns
 * -1, for a group setup to fail the whole group. */
static inline int tu_need_root(const char *test)
{
	if (geteuid() == 0)
		return 0;
	fprintf(stderr, "%s needs root\n", test);
	return -1;
}

/* rmdir dir after the directories below it, deepest first: a cgroup's
 * files go with its directory, and rmdir is all cgroupfs allows.  What is
 * busy (a cgroup with processes) stays. */
static inline void tu_rmdir_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char child[PATH_MAX];
		int n = snprintf(child, sizeof(child), "%s/%s", dir, de->d_name);
		if (n > 0 && (size_t)n < sizeof(child))
			tu_rmdir_tree(child);
	}
	closedir(d);
	rmdir(dir);
}

/* Removes the cgroup rel (a path like "/lamina-test-1234") and those below
 * it from every hierarchy mounted under /sys/fs/cgroup, v1 or v2. */
static inline void tu_rm_cgroup(const char *rel)
{
	char p[PATH_MAX];
	DIR *d = opendir("/sys/fs/cgroup");
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			int n = snprintf(p, sizeof(p), "/sys/fs/cgroup/%s%s", de->d_name, rel);
			if (de->d_name[0] != '.' && n > 0 && (size_t)n < sizeof(p))
				tu_rmdir_tree(p);
		}
		closedir(d);
	}
	int n = snprintf(p, sizeof(p), "/sys/fs/cgroup%s", rel);
	if (n > 0 && (size_t)n < sizeof(p))
		tu_rmdir_tree(p);
}

/* Moves this process into a mount namespace of its own whose mounts do not
 * reach the host's, and with cgroup2 set mounts the host's cgroup2
 * hierarchy over /sys/fs/cgroup: a pure v2 view, even of a v1 or hybrid
 * host.  0, or -1 with errno set. */
static inline int tu_unshare_mounts(bool cgroup2)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	if (cgroup2 && mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL) < 0)
		return -1;
	return 0;
}

/* Runs this test program again, with name=value in its environment (a mode
 * its main looks for), and waits for it.  An exit status of 77 skips the
 * running test (what the mode needs cannot be had here); any other but 0
 * fails it. */
static inline void tu_run_self(const char *name, const char *value)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv(name, value, 1);
		execl("/proc/self/exe", program_invocation_short_name, (char *)NULL);
		_exit(127);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	if (WEXITSTATUS(status) != 0)
		fail_msg("%s=%s: exit status %d", name, value, WEXITSTATUS(status));
}

#endif /* LAMINA_TESTS_UNIT_TESTUTIL_H */
