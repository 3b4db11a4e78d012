/* See fs.h.  The fallback resolver walks one component at a time with
 * O_PATH|O_NOFOLLOW, expands symlinks itself (relative to the current
 * directory, absolute ones from the root), and never steps above the root on
 * "..": the same answers openat2(RESOLVE_IN_ROOT) gives, with a bounded
 * number of symlink expansions (40, like the kernel). */
#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"

static bool force_fallback;

void lm_fs_force_fallback(bool on)
{
	force_fallback = on;
}

int lm_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len,
		    struct lm_error *err)
{
	autofd fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "open %s", path);
	if (lm_read_fd(fd, max, out, len, err) < 0)
		return lm_error_prefix(err, "%s", path);
	return 0;
}

int lm_read_fd(int fd, size_t max, char **out, size_t *len, struct lm_error *err)
{
	size_t cap = max < 4096 ? max : 4096, n = 0;
	autofree char *buf = malloc(cap + 1);
	if (!buf)
		return lm_err(err, ENOMEM, "out of memory");
	for (;;) {
		if (n == cap) {
			if (cap >= max)
				return lm_err(err, EFBIG, "larger than %zu bytes", max);
			cap = cap * 2 > max ? max : cap * 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb)
				return lm_err(err, ENOMEM, "out of memory");
			buf = nb;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return lm_err_sys(err, "read");
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	*out = steal_ptr(&buf);
	return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

int lm_write_file_at(int dirfd, const char *path, const char *data, size_t len, struct lm_error *err)
{
	autofd fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return lm_err_sys(err, "open %s", path);
	if (write_all(fd, data, len) < 0)
		return lm_err_sys(err, "write %s", path);
	return 0;
}

int lm_write_file_atomic_at(int dirfd, const char *path, const char *data, size_t len, mode_t mode,
			    struct lm_error *err)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, getpid()) >= (int)sizeof(tmp))
		return lm_err(err, ENAMETOOLONG, "write %s: path too long", path);
	autofd fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return lm_err_sys(err, "create %s", tmp);
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		lm_err_sys(err, "write %s", tmp);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	if (renameat(dirfd, tmp, dirfd, path) < 0) {
		lm_err_sys(err, "rename %s", path);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	return 0;
}

/* --- resolution inside a root --- */

#define MAX_SYMLINKS 40

/* Fallback walk.  remaining is a heap string of what is left to walk;
 * returns an O_PATH fd of the final component (following a final symlink
 * only when follow_last). */
static int walk_in_root(int rootfd, const char *path, bool follow_last, struct lm_error *err)
{
	autofree char *todo = strdup(path);
	if (!todo)
		return lm_err(err, ENOMEM, "resolve %s: out of memory", path);
	autofd cur = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return lm_err_sys(err, "resolve %s: open root", path);
	int links = 0;
	char *p = todo;
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			return steal_fd(&cur);
		char *end = strchrnul(p, '/');
		bool last = true;
		for (const char *q = end; *q; q++)
			if (*q != '/') {
				last = false;
				break;
			}
		char name[NAME_MAX + 1];
		size_t nl = (size_t)(end - p);
		if (nl > NAME_MAX)
			return lm_err(err, ENAMETOOLONG, "resolve %s: component too long", path);
		memcpy(name, p, nl);
		name[nl] = '\0';
		p = end;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			struct stat st_cur, st_root;
			if (fstat(cur, &st_cur) < 0 || fstat(rootfd, &st_root) < 0)
				return lm_err_sys(err, "resolve %s: stat", path);
			if (st_cur.st_dev == st_root.st_dev && st_cur.st_ino == st_root.st_ino)
				continue; /* clamped at the root */
			int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (up < 0)
				return lm_err_sys(err, "resolve %s", path);
			close(cur);
			cur = up;
			continue;
		}
		int next = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return lm_err_sys(err, "resolve %s: %s", path, name);
		struct stat st;
		if (fstat(next, &st) < 0) {
			close(next);
			return lm_err_sys(err, "resolve %s: stat %s", path, name);
		}
		if (S_ISLNK(st.st_mode) && (!last || follow_last)) {
			char target[PATH_MAX];
			ssize_t tl = readlinkat(next, "", target, sizeof(target) - 1);
			close(next);
			if (tl < 0)
				return lm_err_sys(err, "resolve %s: readlink %s", path, name);
			target[tl] = '\0';
			if (++links > MAX_SYMLINKS)
				return lm_err(err, ELOOP, "resolve %s: too many symbolic links", path);
			size_t rest = strlen(p);
			char *nt = malloc((size_t)tl + rest + 2);
			if (!nt)
				return lm_err(err, ENOMEM, "resolve %s: out of memory", path);
			memcpy(nt, target, (size_t)tl);
			memcpy(nt + tl, p, rest + 1);
			if (target[0] == '/') {
				close(cur);
				cur = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (cur < 0) {
					free(nt);
					return lm_err_sys(err, "resolve %s: open root", path);
				}
			}
			free(todo);
			todo = nt;
			p = todo;
			continue;
		}
		close(cur);
		cur = next;
	}
}

int lm_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct lm_error *err)
{
	if (!force_fallback) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_CLOEXEC),
			.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
			.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
		};
		int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS && errno != EPERM)
			return lm_err_sys(err, "open %s", path);
	}
	/* Fallback: resolve the parent safely, then open the last name without
	 * following it unless the caller allows following. */
	bool follow = !(flags & O_NOFOLLOW);
	autofd target = walk_in_root(rootfd, path, follow, err);
	if (target < 0)
		return -1;
	if ((flags & O_PATH) && !(flags & O_CREAT))
		return steal_fd(&target);
	/* Re-open the O_PATH fd with the wanted access through /proc. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", target);
	int fd = open(proc, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "open %s", path);
	return fd;
}

static int split_parent(const char *path, char **parent, const char **base, struct lm_error *err)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	char *copy = strndup(path, len);
	if (!copy)
		return lm_err(err, ENOMEM, "out of memory");
	char *slash = strrchr(copy, '/');
	if (!slash) {
		*parent = strdup(".");
		*base = path;
		free(copy);
		return *parent ? 0 : lm_err(err, ENOMEM, "out of memory");
	}
	*base = path + (slash - copy) + 1;
	if (slash == copy)
		slash[1] = '\0';
	else
		*slash = '\0';
	*parent = copy;
	return 0;
}

int lm_mkdir_in_root(int rootfd, const char *path, mode_t mode, struct lm_error *err)
{
	autofd cur = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return lm_err_sys(err, "mkdir %s: open root", path);
	/* Each step resolves the next component from the current directory within
	 * the root, so a symlink anywhere in the chain is followed inside the root. */
	autofree char *copy = strdup(path);
	if (!copy)
		return lm_err(err, ENOMEM, "mkdir %s: out of memory", path);
	autofree char *walked = calloc(1, strlen(path) + 2);
	if (!walked)
		return lm_err(err, ENOMEM, "mkdir %s: out of memory", path);
	char *save = NULL;
	for (char *name = strtok_r(copy, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		strcat(walked, "/");
		strcat(walked, name);
		int fd = lm_open_in_root(rootfd, walked, O_PATH | O_DIRECTORY, 0, err);
		if (fd < 0 && err->code == ENOENT) {
			if (strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
				return lm_err(err, EINVAL, "mkdir %s: bad path", path);
			if (mkdirat(cur, name, mode) < 0 && errno != EEXIST)
				return lm_err_sys(err, "mkdir %s", walked);
			fd = lm_open_in_root(rootfd, walked, O_PATH | O_DIRECTORY, 0, err);
		}
		if (fd < 0)
			return lm_error_prefix(err, "mkdir %s", path);
		close(cur);
		cur = fd;
	}
	return steal_fd(&cur);
}

int lm_mkfile_in_root(int rootfd, const char *path, mode_t mode, struct lm_error *err)
{
	int fd = lm_open_in_root(rootfd, path, O_PATH, 0, err);
	if (fd >= 0 || err->code != ENOENT)
		return fd;
	autofree char *parent = NULL;
	const char *base = NULL;
	if (split_parent(path, &parent, &base, err) < 0)
		return -1;
	autofd dir = lm_mkdir_in_root(rootfd, parent, 0755, err);
	if (dir < 0)
		return -1;
	autofd f = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (f < 0 && errno != EEXIST)
		return lm_err_sys(err, "create %s", path);
	return lm_open_in_root(rootfd, path, O_PATH, 0, err);
}

int lm_rm_rf_at(int dirfd, const char *name, struct lm_error *err)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return lm_err_sys(err, "remove %s", name);
	autofd fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : lm_err_sys(err, "open %s", name);
	int dup_fd = dup(fd);
	if (dup_fd < 0)
		return lm_err_sys(err, "dup");
	autoclosedir *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return lm_err_sys(err, "opendir %s", name);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (lm_rm_rf_at(fd, de->d_name, err) < 0)
			return -1;
	}
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return lm_err_sys(err, "remove %s", name);
	return 0;
}
