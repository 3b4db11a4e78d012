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
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
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
			if (cap >= max) {
				/* Exactly max bytes is fine: only one more byte is too much. */
				char extra;
				ssize_t r = read(fd, &extra, 1);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0)
					return lm_err_sys(err, "read");
				if (r == 0)
					break;
				return lm_err(err, EFBIG, "larger than %zu bytes", max);
			}
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
	/* A fresh, exclusive temp name: threads and stale leftovers never share it. */
	static unsigned counter;
	char tmp[PATH_MAX];
	autofd fd = -1;
	for (int attempt = 0; fd < 0; attempt++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
		if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d-%u-%lx", path, getpid(), n, (unsigned long)ts.tv_nsec) >=
		    (int)sizeof(tmp))
			return lm_err(err, ENAMETOOLONG, "write %s: path too long", path);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd < 0 && (errno != EEXIST || attempt > 8))
			return lm_err_sys(err, "create %s", tmp);
	}
	if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		lm_err_sys(err, "write %s", tmp);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	if (renameat(dirfd, tmp, dirfd, path) < 0) {
		lm_err_sys(err, "rename %s", path);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	/* the rename itself is durable only once the directory is */
	autofd dir = openat(dirfd, path[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *slash = strrchr(path, '/');
	if (slash) {
		char parent[PATH_MAX];
		size_t pl = slash == path ? 1 : (size_t)(slash - path);
		memcpy(parent, path, pl);
		parent[pl] = '\0';
		close(dir);
		dir = openat(dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dir >= 0)
		fsync(dir);
	return 0;
}

/* --- resolution inside a root --- */

#define MAX_SYMLINKS 40
#define PROC_ROOT_INO 1

/* A magic link (/proc/<pid>/{root,cwd,exe,fd/N,ns/...}) is any symlink on
 * procfs except the ordinary ones in the procfs root (self, thread-self,
 * mounts, net).  dirfd is the directory holding the link. */
static bool is_magic_link(int linkfd, int dirfd)
{
	struct statfs sfs;
	if (fstatfs(linkfd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
		return false;
	struct stat st;
	return fstat(dirfd, &st) < 0 || st.st_ino != PROC_ROOT_INO;
}

/* The component walk shared by the fallback resolver and the mkdir helper.
 * Starts at startfd (a directory inside the root), expands symlinks itself
 * (absolute ones from the root), never steps above the root on "..", and
 * refuses magic links.  With mkdir_mode >= 0, missing directories are made
 * on the way, so a dangling symlink leads to directories made where it
 * points, inside the root. */
static int walk_from(int rootfd, int startfd, const char *path, bool follow_last, int mkdir_mode,
		     struct lm_error *err)
{
	autofree char *pending = strdup(path);
	if (!pending)
		return lm_err(err, ENOMEM, "resolve %s: out of memory", path);
	autofd cur = openat(startfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return lm_err_sys(err, "resolve %s: open start", path);
	int links = 0;
	char *p = pending;
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
		bool trailing = last && *end == '/';
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
		if (next < 0 && errno == ENOENT && mkdir_mode >= 0) {
			if (mkdirat(cur, name, (mode_t)mkdir_mode) < 0 && errno != EEXIST)
				return lm_err_sys(err, "mkdir %s: %s", path, name);
			next = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0)
			return lm_err_sys(err, "resolve %s: %s", path, name);
		struct stat st;
		if (fstat(next, &st) < 0) {
			close(next);
			return lm_err_sys(err, "resolve %s: stat %s", path, name);
		}
		/* A trailing slash follows a final symlink even with O_NOFOLLOW. */
		if (S_ISLNK(st.st_mode) && (!last || follow_last || trailing || mkdir_mode >= 0)) {
			if (is_magic_link(next, cur)) {
				close(next);
				return lm_err(err, ELOOP, "resolve %s: %s is a magic link", path, name);
			}
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
			free(pending);
			pending = nt;
			p = pending;
			continue;
		}
		if ((trailing || mkdir_mode >= 0 || !last) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
			close(next);
			return lm_err(err, ENOTDIR, "resolve %s: %s: not a directory", path, name);
		}
		close(cur);
		cur = next;
	}
}

static int walk_in_root(int rootfd, const char *path, bool follow_last, struct lm_error *err)
{
	if (*path == '\0')
		return lm_err(err, ENOENT, "resolve: empty path");
	return walk_from(rootfd, rootfd, path, follow_last, -1, err);
}

/* Parent and last name of path; "" parent means the start directory. */
static int split_last(const char *path, char **parent, char **base, struct lm_error *err)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	*parent = strndup(path, len);
	if (!*parent)
		return lm_err(err, ENOMEM, "out of memory");
	char *slash = strrchr(*parent, '/');
	*base = strdup(slash ? slash + 1 : *parent);
	if (!*base) {
		free(*parent);
		return lm_err(err, ENOMEM, "out of memory");
	}
	if (!slash)
		(*parent)[0] = '\0';
	else if (slash == *parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

/* O_CREAT in the fallback: resolve the parent, create the last name in it;
 * a final symlink is followed (within the root) unless O_EXCL or O_NOFOLLOW,
 * as the kernel does. */
static int open_creat_fallback(int rootfd, const char *path, int flags, mode_t mode, struct lm_error *err)
{
	autofree char *parent = NULL, *base = NULL;
	if (split_last(path, &parent, &base, err) < 0)
		return -1;
	autofd dir = walk_from(rootfd, rootfd, parent, true, -1, err);
	if (dir < 0)
		return -1;
	for (int links = 0;; links++) {
		int fd = openat(dir, base, flags | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd >= 0)
			return fd;
		if (errno != ELOOP || (flags & (O_EXCL | O_NOFOLLOW)))
			return lm_err_sys(err, "open %s", path);
		if (links >= MAX_SYMLINKS)
			return lm_err(err, ELOOP, "open %s: too many symbolic links", path);
		char target[PATH_MAX];
		ssize_t tl = readlinkat(dir, base, target, sizeof(target) - 1);
		if (tl < 0)
			return lm_err_sys(err, "open %s: readlink", path);
		target[tl] = '\0';
		autofree char *tparent = NULL, *tbase = NULL;
		if (split_last(target, &tparent, &tbase, err) < 0)
			return -1;
		int ndir = walk_from(rootfd, target[0] == '/' ? rootfd : dir, tparent, true, -1, err);
		if (ndir < 0)
			return -1;
		close(dir);
		dir = ndir;
		free(base);
		base = steal_ptr(&tbase);
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
	if (flags & O_CREAT)
		return open_creat_fallback(rootfd, path, flags, mode, err);
	bool follow = !(flags & O_NOFOLLOW);
	autofd target = walk_in_root(rootfd, path, follow, err);
	if (target < 0)
		return -1;
	if (flags & O_PATH)
		return steal_fd(&target);
	/* Re-open the O_PATH fd with the wanted access through /proc. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", target);
	int fd = open(proc, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "open %s", path);
	return fd;
}

int lm_mkdir_in_root(int rootfd, const char *path, mode_t mode, struct lm_error *err)
{
	int fd = walk_from(rootfd, rootfd, path, true, (int)mode, err);
	if (fd < 0)
		return lm_error_prefix(err, "mkdir %s", path);
	return fd;
}

int lm_mkfile_in_root(int rootfd, const char *path, mode_t mode, struct lm_error *err)
{
	int fd = lm_open_in_root(rootfd, path, O_PATH, 0, err);
	if (fd >= 0 || err->code != ENOENT)
		return fd;
	autofree char *parent = NULL, *base = NULL;
	if (split_last(path, &parent, &base, err) < 0)
		return -1;
	autofd dir = walk_from(rootfd, rootfd, parent, true, 0755, err);
	if (dir < 0)
		return lm_error_prefix(err, "create %s", path);
	/* A dangling symlink at path: make the file where it points, in the root. */
	for (int links = 0;; links++) {
		autofd f = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (f >= 0)
			break;
		if (errno != EEXIST)
			return lm_err_sys(err, "create %s", path);
		struct stat st;
		if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return lm_err_sys(err, "create %s", path);
		if (!S_ISLNK(st.st_mode))
			break;
		if (links >= MAX_SYMLINKS)
			return lm_err(err, ELOOP, "create %s: too many symbolic links", path);
		char target[PATH_MAX];
		ssize_t tl = readlinkat(dir, base, target, sizeof(target) - 1);
		if (tl < 0)
			return lm_err_sys(err, "create %s: readlink", path);
		target[tl] = '\0';
		autofree char *tparent = NULL, *tbase = NULL;
		if (split_last(target, &tparent, &tbase, err) < 0)
			return -1;
		int ndir = walk_from(rootfd, target[0] == '/' ? rootfd : dir, tparent, true, 0755, err);
		if (ndir < 0)
			return lm_error_prefix(err, "create %s", path);
		close(dir);
		dir = ndir;
		free(base);
		base = steal_ptr(&tbase);
	}
	return lm_open_in_root(rootfd, path, O_PATH, 0, err);
}

/* Never crosses into another filesystem: a mount left inside the tree (a
 * bind mount of a host directory, say) is an error, not something to empty. */
static int rm_rf(int dirfd, const char *name, dev_t dev, struct lm_error *err)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return lm_err_sys(err, "remove %s", name);
	autofd fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : lm_err_sys(err, "open %s", name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return lm_err_sys(err, "stat %s", name);
	if (dev != 0 && st.st_dev != dev)
		return lm_err(err, EBUSY, "remove %s: a filesystem is mounted there", name);
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
		if (rm_rf(fd, de->d_name, st.st_dev, err) < 0)
			return lm_error_prefix(err, "%s", name);
	}
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return lm_err_sys(err, "remove %s", name);
	return 0;
}

int lm_rm_rf_at(int dirfd, const char *name, struct lm_error *err)
{
	/* the top may itself be a mount point; what lies below it may not */
	return rm_rf(dirfd, name, 0, err);
}

int lm_mkdir_p(const char *path, mode_t mode, struct lm_error *err)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(buf))
		return lm_err(err, ENAMETOOLONG, "mkdir %s: bad length", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return lm_err_sys(err, "mkdir %s", buf);
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	return 0;
}

bool lm_fd_on_procfs(int fd)
{
	struct statfs sf;
	return fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}
