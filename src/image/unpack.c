/* See unpack.h for the rules a layer must follow.
 *
 * How they are kept: every name from the archive is cleaned into a relative
 * path with no "..", then its parent directory is opened from the target
 * with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) (or a component-by-
 * component O_PATH|O_NOFOLLOW walk, which also creates missing parents and
 * names the offending component in errors).  The last component is only
 * ever created with calls that do not follow it (O_CREAT|O_EXCL|O_NOFOLLOW,
 * mkdirat, symlinkat, mknodat, linkat without AT_SYMLINK_FOLLOW); when it
 * exists, it is unlinked and the call retried.  Metadata is then applied
 * through the fd we created, or with AT_SYMLINK_NOFOLLOW calls, or (xattrs
 * on symlinks and device nodes, which cannot be opened safely) through
 * /proc/self/fd/<parent>/<name> with lsetxattr: the magic link pins the
 * parent we resolved and the last name is not followed.
 *
 * Directory modes and mtimes are applied after the last entry: creating
 * children changes a directory's mtime, and a read-only or setgid directory
 * would get in the way of (or leak its group into) what is created below it.
 */
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define READ_BUF_SIZE (256 * 1024)
#define DISPLAY_MAX 200
/* Links waiting for their target cost memory but no inode: bounded.  Real
 * layers have none or a handful. */
#define MAX_DEFERRED_LINKS 65536

/* One record per directory name (a name given twice updates its record), so
 * memory follows the directories on disk, not the entries in the archive. */
struct deferred_dir {
	char *path;
	mode_t mode;
	struct timespec times[2];
};

struct deferred_link {
	char *path;
	char *target;  /* NULL: a later entry took the name */
};

/* Name -> record index, open addressing; keys point into the records. */
struct name_index {
	struct name_slot {
		const char *key;
		size_t idx;
	} *slots;
	size_t cap, used;
};

struct unpacker {
	int root;
	struct lm_unpack_opts opts;
	struct lm_unpack_stats *st;
	const char *opaque_xattr;
	bool try_openat2;

	struct lm_reader *src;
	unsigned char *buf;
	uint64_t bytes_read;
	bool src_eof;
	bool ended_early; /* the stream ended after the last file's data: see write_data */
	bool read_failed;
	struct lm_error read_err;

	struct deferred_dir *dirs;
	size_t n_dirs, cap_dirs;
	struct name_index dir_index;
	struct deferred_link *links;
	size_t n_links, cap_links, live_links;
	struct name_index link_index;

	char display[DISPLAY_MAX + 4]; /* the current entry's name, printable */
};

/* --- errors --- */

/* Archive names go into messages that end up on terminals and in logs:
 * control characters are replaced, long names shortened. */
static void set_display(struct unpacker *u, const char *name)
{
	size_t n = 0;
	if (!name || !*name)
		name = "\"\"";
	for (; name[n] && n < DISPLAY_MAX; n++) {
		unsigned char c = (unsigned char)name[n];
		u->display[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (name[n]) {
		memcpy(u->display + n, "...", 3);
		n += 3;
	}
	u->display[n] = '\0';
}

static int entry_err(struct unpacker *u, struct lm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int entry_err(struct unpacker *u, struct lm_error *err, int code, const char *fmt, ...)
{
	char msg[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return lm_err(err, code, "layer entry %s: %s", u->display, msg);
}

static int entry_err_sys(struct unpacker *u, struct lm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int entry_err_sys(struct unpacker *u, struct lm_error *err, const char *fmt, ...)
{
	int saved = errno;
	char msg[LM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return lm_err(err, saved, "layer entry %s: %s: %s", u->display, msg, strerror(saved));
}

/* --- names --- */

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Cleans an archive name into out (relative, no empty, "." or ".."
 * components; "" is the target itself).  *ends_dot: the last component
 * written was ".", which only a directory may do.  what: "" for the
 * entry's own name, else "hard link target: " and the like. */
static int clean_path(struct unpacker *u, const char *raw, const char *what, char out[PATH_MAX],
		      bool *ends_dot, struct lm_error *err)
{
	if (!raw || !*raw)
		return entry_err(u, err, EINVAL, "%sempty name", what);
	if (strlen(raw) >= PATH_MAX)
		return entry_err(u, err, ENAMETOOLONG, "%sname longer than %d bytes", what, PATH_MAX - 1);
	size_t n = 0;
	bool dot = false;
	const char *p = raw;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (len == 1 && p[0] == '.') {
			dot = true;
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			return entry_err(u, err, EINVAL, "%s\"..\" components are not allowed", what);
		} else {
			if (len > NAME_MAX)
				return entry_err(u, err, ENAMETOOLONG, "%sa component is longer than %d bytes",
						 what, NAME_MAX);
			if (n > 0)
				out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
			dot = false;
		}
		p = end;
	}
	out[n] = '\0';
	*ends_dot = dot;
	return 0;
}

/* --- resolution --- */

/* O_PATH fd of the directory path[0..len) below the target, never
 * following a symlink; missing directories are made (0755) when create is
 * set.  Errors name the component at fault (no entry prefix). */
static int open_dir_beneath(struct unpacker *u, const char *path, size_t len, bool create,
			    struct lm_error *err)
{
	char buf[PATH_MAX];
	if (len >= sizeof(buf))
		return lm_err(err, ENAMETOOLONG, "name too long");
	if (len == 0) {
		int fd = openat(u->root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		return fd >= 0 ? fd : lm_err_sys(err, "open target directory");
	}
	memcpy(buf, path, len);
	buf[len] = '\0';

	if (u->try_openat2) {
		struct open_how how = {
			.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		int fd = (int)syscall(SYS_openat2, u->root, buf, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno == ENOSYS || errno == E2BIG || errno == EPERM)
			u->try_openat2 = false;
		/* Anything else: the walk below makes what is missing, or finds
		 * the component to blame. */
	}

	autofd cur = openat(u->root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return lm_err_sys(err, "open target directory");
	char *p = buf;
	for (;;) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		int next = openat(cur, p, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, p, 0755) == 0) {
				/* mkdir's mode went through the umask. */
				if (fchmodat(cur, p, 0755, AT_SYMLINK_NOFOLLOW) < 0)
					return lm_err_sys(err, "chmod %s", buf);
			} else if (errno != EEXIST) {
				return lm_err_sys(err, "create directory %s", buf);
			}
			next = openat(cur, p, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		}
		if (next < 0) {
			int e = errno;
			struct stat st;
			if (e == ENOTDIR || e == ELOOP) {
				if (fstatat(cur, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
					return lm_err(err, ELOOP, "parent %s is a symlink", buf);
				return lm_err(err, ENOTDIR, "parent %s is not a directory", buf);
			}
			if (e == ENOENT)
				return lm_err(err, ENOENT, "parent %s does not exist", buf);
			errno = e;
			return lm_err_sys(err, "open %s", buf);
		}
		close(cur);
		cur = next;
		if (!slash)
			break;
		*slash = '/';
		p = slash + 1;
	}
	return steal_fd(&cur);
}

/* Splits a cleaned path at its last '/'. */
static void split(const char *path, size_t *parent_len, const char **base)
{
	const char *slash = strrchr(path, '/');
	*parent_len = slash ? (size_t)(slash - path) : 0;
	*base = slash ? slash + 1 : path;
}

static int open_parent(struct unpacker *u, const char *path, bool create, struct lm_error *err)
{
	size_t plen;
	const char *base;
	split(path, &plen, &base);
	int fd = open_dir_beneath(u, path, plen, create, err);
	if (fd < 0)
		return lm_error_prefix(err, "layer entry %s", u->display);
	return fd;
}

/* Makes room for a new entry at dirfd/name: what is there goes, a
 * directory with everything below it. */
static int remove_existing(struct unpacker *u, int dirfd, const char *name, struct lm_error *err)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return entry_err_sys(u, err, "remove existing %s", name);
	if (lm_rm_rf_at(dirfd, name, err) < 0)
		return lm_error_prefix(err, "layer entry %s: replace directory", u->display);
	return 0;
}

static bool is_whiteout_device(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/* --- metadata --- */

static int entry_ids(struct unpacker *u, struct archive_entry *e, uid_t *uid, gid_t *gid,
		     struct lm_error *err)
{
	la_int64_t id_u = archive_entry_uid(e), id_g = archive_entry_gid(e);
	/* (uid_t)-1 would mean "leave unchanged" to chown. */
	if (id_u < 0 || id_u >= (la_int64_t)UINT32_MAX || id_g < 0 || id_g >= (la_int64_t)UINT32_MAX)
		return entry_err(u, err, ERANGE, "uid/gid %lld:%lld out of range", (long long)id_u,
				 (long long)id_g);
	*uid = (uid_t)id_u;
	*gid = (gid_t)id_g;
	return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[1].tv_sec = (time_t)archive_entry_mtime(e);
	ts[1].tv_nsec = archive_entry_mtime_nsec(e);
	if (ts[1].tv_nsec < 0 || ts[1].tv_nsec >= 1000000000L)
		ts[1].tv_nsec = 0;
	if (archive_entry_atime_is_set(e)) {
		ts[0].tv_sec = (time_t)archive_entry_atime(e);
		ts[0].tv_nsec = archive_entry_atime_nsec(e);
		if (ts[0].tv_nsec < 0 || ts[0].tv_nsec >= 1000000000L)
			ts[0].tv_nsec = 0;
	} else {
		ts[0] = ts[1];
	}
}

/* chown with fd (an open fd) or dirfd+name (never followed). */
static int apply_owner(struct unpacker *u, struct archive_entry *e, int fd, int dirfd, const char *name,
		       struct lm_error *err)
{
	uid_t uid = 0;
	gid_t gid = 0;
	if (entry_ids(u, e, &uid, &gid, err) < 0)
		return -1;
	int r = fd >= 0 ? fchown(fd, uid, gid) : fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
	if (r == 0)
		return 0;
	if (u->opts.unprivileged && (errno == EPERM || errno == EINVAL)) {
		u->st->skipped_chown++;
		return 0;
	}
	return entry_err_sys(u, err, "chown %u:%u", (unsigned)uid, (unsigned)gid);
}

/* xattrs on fd when it is an open fd; otherwise on dirfd/name, not followed. */
static int apply_xattrs(struct unpacker *u, struct archive_entry *e, int fd, int dirfd, const char *name,
			struct lm_error *err)
{
	if (archive_entry_xattr_reset(e) == 0)
		return 0;
	char proc[64 + NAME_MAX];
	if (fd < 0)
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dirfd, name);
	const char *xname;
	const void *value;
	size_t size;
	while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
		if (!xname || !*xname || has_prefix(xname, "trusted.overlay.") ||
		    has_prefix(xname, "user.overlay.")) {
			u->st->skipped_xattrs++;
			continue;
		}
		if (!value)
			value = "";
		int r = fd >= 0 ? fsetxattr(fd, xname, value, size, 0) : lsetxattr(proc, xname, value, size, 0);
		if (r == 0)
			continue;
		int e2 = errno;
		bool security = has_prefix(xname, "security.");
		if (e2 == ENOTSUP || e2 == EOPNOTSUPP || (security && (e2 == EPERM || e2 == EINVAL)) ||
		    (u->opts.unprivileged && (e2 == EPERM || e2 == EACCES))) {
			u->st->skipped_xattrs++;
			continue;
		}
		char shown[64];
		snprintf(shown, sizeof(shown), "%s", xname);
		for (char *c = shown; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
		return entry_err_sys(u, err, "set xattr %s", shown);
	}
	return 0;
}

static int set_opaque(struct unpacker *u, int dirfd, struct lm_error *err)
{
	if (fsetxattr(dirfd, u->opaque_xattr, "y", 1, 0) < 0)
		return entry_err_sys(u, err, "mark directory opaque (%s)", u->opaque_xattr);
	return 0;
}

/* --- deferred work --- */

static size_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

/* The slot holding key, or the empty one where it would go. */
static struct name_slot *name_slot(const struct name_index *ni, const char *key)
{
	size_t mask = ni->cap - 1;
	for (size_t i = name_hash(key) & mask;; i = (i + 1) & mask)
		if (!ni->slots[i].key || strcmp(ni->slots[i].key, key) == 0)
			return &ni->slots[i];
}

static bool name_get(const struct name_index *ni, const char *key, size_t *idx)
{
	if (ni->cap == 0)
		return false;
	const struct name_slot *s = name_slot(ni, key);
	if (!s->key)
		return false;
	*idx = s->idx;
	return true;
}

/* key must not be in the index yet, and must outlive it. */
static int name_put(struct name_index *ni, const char *key, size_t idx, struct lm_error *err)
{
	if (2 * (ni->used + 1) > ni->cap) {
		size_t cap = ni->cap ? ni->cap * 2 : 64;
		struct name_index bigger = { .slots = calloc(cap, sizeof(struct name_slot)), .cap = cap };
		if (!bigger.slots)
			return lm_err(err, ENOMEM, "out of memory");
		for (size_t i = 0; i < ni->cap; i++)
			if (ni->slots[i].key)
				*name_slot(&bigger, ni->slots[i].key) = ni->slots[i];
		bigger.used = ni->used;
		free(ni->slots);
		*ni = bigger;
	}
	*name_slot(ni, key) = (struct name_slot){ .key = key, .idx = idx };
	ni->used++;
	return 0;
}

static int defer_dir(struct unpacker *u, const char *path, struct archive_entry *e, struct lm_error *err)
{
	size_t i;
	if (!name_get(&u->dir_index, path, &i)) {
		if (u->n_dirs == u->cap_dirs) {
			size_t cap = u->cap_dirs ? u->cap_dirs * 2 : 64;
			struct deferred_dir *nd = realloc(u->dirs, cap * sizeof(*nd));
			if (!nd)
				return lm_err(err, ENOMEM, "out of memory");
			u->dirs = nd;
			u->cap_dirs = cap;
		}
		i = u->n_dirs;
		u->dirs[i].path = strdup(path);
		if (!u->dirs[i].path)
			return lm_err(err, ENOMEM, "out of memory");
		u->n_dirs++;
		if (name_put(&u->dir_index, u->dirs[i].path, i, err) < 0)
			return -1;
	}
	u->dirs[i].mode = archive_entry_perm(e) & 07777;
	entry_times(e, u->dirs[i].times);
	return 0;
}

/* A later entry at the same name wins over a link still waiting for its target. */
static void drop_deferred_link(struct unpacker *u, const char *path)
{
	size_t i;
	if (u->live_links == 0 || !name_get(&u->link_index, path, &i) || !u->links[i].target)
		return;
	free(u->links[i].target);
	u->links[i].target = NULL;
	u->live_links--;
}

static int defer_link(struct unpacker *u, const char *path, const char *target, struct lm_error *err)
{
	char *t = strdup(target);
	if (!t)
		return lm_err(err, ENOMEM, "out of memory");
	size_t i;
	if (name_get(&u->link_index, path, &i)) {
		if (!u->links[i].target)
			u->live_links++;
		free(u->links[i].target);
		u->links[i].target = t;
		return 0;
	}
	if (u->n_links >= MAX_DEFERRED_LINKS) {
		free(t);
		return entry_err(u, err, E2BIG, "more than %d hard links whose target comes later",
				 MAX_DEFERRED_LINKS);
	}
	if (u->n_links == u->cap_links) {
		size_t cap = u->cap_links ? u->cap_links * 2 : 16;
		struct deferred_link *nl = realloc(u->links, cap * sizeof(*nl));
		if (!nl) {
			free(t);
			return lm_err(err, ENOMEM, "out of memory");
		}
		u->links = nl;
		u->cap_links = cap;
	}
	i = u->n_links;
	u->links[i] = (struct deferred_link){ .path = strdup(path), .target = t };
	if (!u->links[i].path) {
		free(t);
		return lm_err(err, ENOMEM, "out of memory");
	}
	u->n_links++;
	u->live_links++;
	return name_put(&u->link_index, u->links[i].path, i, err);
}

/* --- entries --- */

static int write_data(struct unpacker *u, struct archive *a, struct archive_entry *e, int fd,
		      struct lm_error *err)
{
	int64_t end = 0;
	for (;;) {
		const void *block;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(a, &block, &size, &offset);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			if (u->read_failed) {
				*err = u->read_err;
				return -1;
			}
			/* Some writers (Debian's umoci 0.4.7 `insert`) end the stream
			 * right after the last file's data, without its block padding
			 * and end-of-archive blocks.  Every byte of the file is here and
			 * nothing can follow: that is the end of the layer, not damage. */
			if (u->src_eof && archive_entry_size_is_set(e) && end == archive_entry_size(e) &&
			    !archive_entry_sparse_count(e)) {
				u->ended_early = true;
				break;
			}
			return entry_err(u, err, EINVAL, "%s", archive_error_string(a) ?: "corrupt file data");
		}
		if (offset < 0 || (uint64_t)offset > INT64_MAX - size)
			return entry_err(u, err, EINVAL, "bad data offset");
		const char *p = block;
		size_t left = size;
		off_t at = (off_t)offset;
		while (left > 0) {
			ssize_t w = pwrite(fd, p, left, at);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return entry_err_sys(u, err, "write");
			}
			p += w;
			left -= (size_t)w;
			at += w;
		}
		if (offset + (int64_t)size > end)
			end = offset + (int64_t)size;
		u->st->bytes += size;
	}
	/* A sparse file may end in a hole. */
	if (archive_entry_size_is_set(e) && archive_entry_size(e) > end &&
	    ftruncate(fd, (off_t)archive_entry_size(e)) < 0)
		return entry_err_sys(u, err, "truncate");
	return 0;
}

static int apply_file(struct unpacker *u, struct archive *a, struct archive_entry *e, int pfd,
		      const char *base, struct lm_error *err)
{
	autofd fd = -1;
	for (int tries = 0;; tries++) {
		fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || tries > 0)
			return entry_err_sys(u, err, "create file");
		if (remove_existing(u, pfd, base, err) < 0)
			return -1;
	}
	if (write_data(u, a, e, fd, err) < 0)
		return -1;
	/* chown drops setuid/setgid and file capabilities: owner first, then
	 * xattrs (security.capability), then the mode. */
	if (apply_owner(u, e, fd, -1, NULL, err) < 0 || apply_xattrs(u, e, fd, -1, NULL, err) < 0)
		return -1;
	if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
		return entry_err_sys(u, err, "chmod");
	struct timespec ts[2];
	entry_times(e, ts);
	if (futimens(fd, ts) < 0)
		return entry_err_sys(u, err, "set times");
	u->st->files++;
	return 0;
}

static int apply_dir(struct unpacker *u, struct archive_entry *e, const char *path, int pfd,
		     const char *base, struct lm_error *err)
{
	bool opaque = false;
	if (mkdirat(pfd, base, 0700) < 0) {
		if (errno != EEXIST)
			return entry_err_sys(u, err, "create directory");
		struct stat st;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return entry_err_sys(u, err, "stat");
		if (!S_ISDIR(st.st_mode)) {
			/* A directory over this layer's own whiteout: the lower
			 * directory was deleted, so its contents must not show
			 * through the new one. */
			opaque = is_whiteout_device(&st);
			if (remove_existing(u, pfd, base, err) < 0)
				return -1;
			if (mkdirat(pfd, base, 0700) < 0)
				return entry_err_sys(u, err, "create directory");
		}
	}
	autofd fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return entry_err_sys(u, err, "open directory");
	if (apply_owner(u, e, fd, -1, NULL, err) < 0 || apply_xattrs(u, e, fd, -1, NULL, err) < 0)
		return -1;
	if (opaque && set_opaque(u, fd, err) < 0)
		return -1;
	if (defer_dir(u, path, e, err) < 0)
		return -1;
	u->st->dirs++;
	return 0;
}

static int apply_root_dir(struct unpacker *u, struct archive_entry *e, struct lm_error *err)
{
	autofd fd = openat(u->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return entry_err_sys(u, err, "open target directory");
	if (apply_owner(u, e, fd, -1, NULL, err) < 0 || apply_xattrs(u, e, fd, -1, NULL, err) < 0)
		return -1;
	if (defer_dir(u, "", e, err) < 0)
		return -1;
	u->st->dirs++;
	return 0;
}

static int apply_symlink(struct unpacker *u, struct archive_entry *e, int pfd, const char *base,
			 struct lm_error *err)
{
	const char *target = archive_entry_symlink(e);
	if (!target || !*target)
		return entry_err(u, err, EINVAL, "symlink without a target");
	if (strlen(target) >= PATH_MAX)
		return entry_err(u, err, ENAMETOOLONG, "symlink target longer than %d bytes", PATH_MAX - 1);
	for (int tries = 0;; tries++) {
		if (symlinkat(target, pfd, base) == 0)
			break;
		if (errno != EEXIST || tries > 0)
			return entry_err_sys(u, err, "create symlink");
		if (remove_existing(u, pfd, base, err) < 0)
			return -1;
	}
	if (apply_owner(u, e, -1, pfd, base, err) < 0 || apply_xattrs(u, e, -1, pfd, base, err) < 0)
		return -1;
	struct timespec ts[2];
	entry_times(e, ts);
	if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_err_sys(u, err, "set times");
	u->st->symlinks++;
	return 0;
}

static int apply_node(struct unpacker *u, struct archive_entry *e, mode_t type, int pfd, const char *base,
		      struct lm_error *err)
{
	dev_t dev = 0;
	if (type != AE_IFIFO)
		dev = makedev((unsigned)archive_entry_rdevmajor(e), (unsigned)archive_entry_rdevminor(e));
	for (int tries = 0;; tries++) {
		if (mknodat(pfd, base, type | 0600, dev) == 0)
			break;
		if (errno == EPERM && u->opts.unprivileged) {
			u->st->skipped_devices++;
			return 0;
		}
		if (errno != EEXIST || tries > 0)
			return entry_err_sys(u, err, "create %s", type == AE_IFIFO ? "fifo" : "device node");
		if (remove_existing(u, pfd, base, err) < 0)
			return -1;
	}
	if (apply_owner(u, e, -1, pfd, base, err) < 0 || apply_xattrs(u, e, -1, pfd, base, err) < 0)
		return -1;
	if (fchmodat(pfd, base, archive_entry_perm(e) & 07777, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_err_sys(u, err, "chmod");
	struct timespec ts[2];
	entry_times(e, ts);
	if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_err_sys(u, err, "set times");
	u->st->devices++;
	return 0;
}

/* 1: linked; 0: the target does not exist (yet); -1: error. */
static int try_hardlink(struct unpacker *u, const char *path, const char *target, struct lm_error *err)
{
	size_t tplen;
	const char *tbase;
	split(target, &tplen, &tbase);
	struct lm_error terr;
	autofd tpfd = open_dir_beneath(u, target, tplen, false, &terr);
	if (tpfd < 0) {
		if (terr.code == ENOENT)
			return 0;
		return entry_err(u, err, terr.code, "hard link target %s: %s", target, terr.msg);
	}
	struct stat tst;
	if (fstatat(tpfd, tbase, &tst, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return entry_err_sys(u, err, "hard link target %s", target);
	}
	if (S_ISDIR(tst.st_mode))
		return entry_err(u, err, EPERM, "hard link target %s is a directory", target);
	if (strcmp(path, target) == 0)
		return 1;

	autofd pfd = open_parent(u, path, true, err);
	if (pfd < 0)
		return -1;
	size_t plen;
	const char *base;
	split(path, &plen, &base);
	for (int tries = 0;; tries++) {
		if (linkat(tpfd, tbase, pfd, base, 0) == 0)
			break;
		if (errno != EEXIST || tries > 0)
			return entry_err_sys(u, err, "hard link to %s", target);
		struct stat st;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev &&
		    st.st_ino == tst.st_ino)
			break; /* already that file */
		if (remove_existing(u, pfd, base, err) < 0)
			return -1;
	}
	u->st->hardlinks++;
	return 1;
}

static int apply_hardlink(struct unpacker *u, const char *path, const char *raw_target, struct lm_error *err)
{
	char target[PATH_MAX];
	bool ends_dot;
	if (clean_path(u, raw_target, "hard link target: ", target, &ends_dot, err) < 0)
		return -1;
	if (!*target)
		return entry_err(u, err, EPERM, "hard link to the layer's root directory");
	int r = try_hardlink(u, path, target, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	/* Target not there yet: retried after the last entry. */
	return defer_link(u, path, target, err);
}

static int apply_whiteout(struct unpacker *u, const char *path, const char *base, struct lm_error *err)
{
	if (strcmp(base, ".wh..wh..opq") == 0) {
		autofd pfd = open_parent(u, path, true, err);
		if (pfd < 0)
			return -1;
		autofd dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return entry_err_sys(u, err, "open directory");
		if (set_opaque(u, dfd, err) < 0)
			return -1;
		u->st->whiteouts++;
		return 0;
	}
	if (has_prefix(base, ".wh..wh.")) {
		u->st->ignored_entries++;
		return 0;
	}
	const char *name = base + 4;
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return entry_err(u, err, EINVAL, "whiteout of \"%s\" escapes its directory", name);

	autofd pfd = open_parent(u, path, true, err);
	if (pfd < 0)
		return -1;
	if (mknodat(pfd, name, S_IFCHR | 0, makedev(0, 0)) == 0) {
		u->st->whiteouts++;
		return 0;
	}
	if (errno != EEXIST)
		return entry_err_sys(u, err, "create whiteout %s", name);
	/* This layer already has something at that name, which hides the lower
	 * one by itself, except that a directory merges with the lower
	 * directory unless it is opaque. */
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_err_sys(u, err, "stat %s", name);
	if (S_ISDIR(st.st_mode)) {
		autofd dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return entry_err_sys(u, err, "open %s", name);
		if (set_opaque(u, dfd, err) < 0)
			return -1;
	}
	u->st->whiteouts++;
	return 0;
}

static int apply_entry(struct unpacker *u, struct archive *a, struct archive_entry *e, struct lm_error *err)
{
	const char *raw = archive_entry_pathname(e);
	set_display(u, raw);
	char path[PATH_MAX];
	bool ends_dot;
	if (clean_path(u, raw, "", path, &ends_dot, err) < 0)
		return -1;

	const char *hardlink = archive_entry_hardlink(e);
	mode_t type = archive_entry_filetype(e);
	bool is_dir = !hardlink && type == AE_IFDIR;
	size_t plen;
	const char *base;
	split(path, &plen, &base);

	/* aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs) at the top. */
	if (has_prefix(path, ".wh..wh.") && (plen > 0 || strcmp(path, ".wh..wh..opq") != 0)) {
		u->st->ignored_entries++;
		return 0;
	}
	for (const char *c = path; c < path + plen;) {
		const char *end = memchr(c, '/', (size_t)(path + plen - c));
		if (!end)
			end = path + plen;
		if (has_prefix(c, ".wh."))
			return entry_err(u, err, EINVAL, "a directory name starting with .wh. (reserved for whiteouts)");
		c = end + 1;
	}
	if (has_prefix(base, ".wh."))
		return apply_whiteout(u, path, base, err);

	if (!*path) {
		if (!is_dir)
			return entry_err(u, err, EINVAL, "a %s cannot replace the layer's root directory",
					 hardlink ? "hard link" : type == AE_IFLNK ? "symlink" : "non-directory");
		return apply_root_dir(u, e, err);
	}
	if (ends_dot && !is_dir)
		return entry_err(u, err, EINVAL, "only a directory name may end in \"/.\"");

	drop_deferred_link(u, path);
	if (hardlink)
		return apply_hardlink(u, path, hardlink, err);

	autofd pfd = open_parent(u, path, true, err);
	if (pfd < 0)
		return -1;
	switch (type) {
	case AE_IFREG:
		return apply_file(u, a, e, pfd, base, err);
	case AE_IFDIR:
		return apply_dir(u, e, path, pfd, base, err);
	case AE_IFLNK:
		return apply_symlink(u, e, pfd, base, err);
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
		return apply_node(u, e, type, pfd, base, err);
	default:
		return entry_err(u, err, ENOTSUP, "unsupported entry type 0%o", (unsigned)type);
	}
}

/* --- after the last entry --- */

static int finish_links(struct unpacker *u, struct lm_error *err)
{
	for (size_t i = 0; i < u->n_links; i++) {
		struct deferred_link *l = &u->links[i];
		if (!l->target)
			continue;
		set_display(u, l->path);
		int r = try_hardlink(u, l->path, l->target, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return entry_err(u, err, ENOENT, "hard link target %s does not exist in the layer", l->target);
	}
	return 0;
}

static int cmp_dirs(const void *a, const void *b)
{
	const struct deferred_dir *x = a, *y = b;
	return strcmp(x->path, y->path);
}

static int finish_dirs(struct unpacker *u, struct lm_error *err)
{
	if (u->n_dirs == 0)
		return 0;
	/* Deepest first: a child sorts after its parent.  (The index is stale
	 * from here on.) */
	qsort(u->dirs, u->n_dirs, sizeof(*u->dirs), cmp_dirs);
	for (size_t i = u->n_dirs; i-- > 0;) {
		struct deferred_dir *d = &u->dirs[i];
		set_display(u, *d->path ? d->path : ".");
		autofd fd = -1;
		if (!*d->path) {
			fd = openat(u->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		} else {
			size_t plen;
			const char *base;
			split(d->path, &plen, &base);
			struct lm_error ignored;
			autofd pfd = open_dir_beneath(u, d->path, plen, false, &ignored);
			/* Replaced by a later entry: its metadata went with it. */
			if (pfd < 0)
				continue;
			fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
				continue;
		}
		if (fd < 0)
			return entry_err_sys(u, err, "open directory");
		if (fchmod(fd, d->mode) < 0)
			return entry_err_sys(u, err, "chmod");
		if (futimens(fd, d->times) < 0)
			return entry_err_sys(u, err, "set times");
	}
	return 0;
}

/* --- the archive --- */

static la_ssize_t archive_read_cb(struct archive *a, void *ctx, const void **buffer)
{
	struct unpacker *u = ctx;
	*buffer = u->buf;
	if (u->read_failed)
		return -1;
	if (u->src_eof)
		return 0;
	for (;;) {
		ssize_t n = u->src->read(u->src->ctx, u->buf, READ_BUF_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || n > READ_BUF_SIZE) {
			int code = n < 0 && errno ? errno : EIO;
			const char *msg = u->src->error ? u->src->error(u->src->ctx) : NULL;
			if (msg && *msg)
				lm_err(&u->read_err, code, "%s", msg);
			else
				lm_err(&u->read_err, code, "read layer: %s", strerror(code));
			u->read_failed = true;
			archive_set_error(a, code, "%s", u->read_err.msg);
			return -1;
		}
		if (n == 0)
			u->src_eof = true;
		u->bytes_read += (uint64_t)n;
		return n;
	}
}

/* The only warnings accepted: names that are not valid in the current
 * locale (pax names are UTF-8; in the C locale libarchive warns yet keeps
 * the bytes as they are, which is what the layer means). */
static bool harmless_warning(struct archive *a)
{
	const char *msg = archive_error_string(a);
	return msg && strstr(msg, "can't be converted from");
}

static int archive_failure(struct unpacker *u, struct archive *a, const char *what, struct lm_error *err)
{
	if (u->read_failed) {
		*err = u->read_err;
		return -1;
	}
	const char *msg = archive_error_string(a);
	int code = archive_errno(a);
	if (code <= 0 || code > 4095)
		code = EINVAL;
	return lm_err(err, code, "%s: %s", what, msg ? msg : "corrupt tar archive");
}

/* Reads what follows the end-of-archive marker (tar padding, usually), so
 * the layer below is consumed to its end and its checks run. */
static int drain(struct unpacker *u, struct lm_error *err)
{
	while (!u->src_eof) {
		ssize_t n = u->src->read(u->src->ctx, u->buf, READ_BUF_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int code = errno ? errno : EIO;
			const char *msg = u->src->error ? u->src->error(u->src->ctx) : NULL;
			if (msg && *msg)
				return lm_err(err, code, "%s", msg);
			return lm_err(err, code, "read layer: %s", strerror(code));
		}
		if (n == 0)
			u->src_eof = true;
	}
	return 0;
}

static int run(struct unpacker *u, struct archive *a, struct lm_error *err)
{
	/* Only the tar reader, and no decompression filters: the stream is
	 * already decompressed, and a layer compressed twice is not a layer. */
	if (archive_read_support_format_tar(a) != ARCHIVE_OK)
		return lm_err(err, ENOMEM, "tar: %s", archive_error_string(a) ?: "setup failed");
	if (archive_read_open(a, u, NULL, archive_read_cb, NULL) != ARCHIVE_OK) {
		if (!u->read_failed && u->src_eof && u->bytes_read == 0)
			return 0; /* an empty stream: an empty layer */
		return archive_failure(u, a, "not a tar archive", err);
	}
	for (;;) {
		struct archive_entry *e;
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_WARN && harmless_warning(a))
			r = ARCHIVE_OK;
		if (r != ARCHIVE_OK) {
			if (!u->read_failed && u->src_eof && u->bytes_read == 0)
				return 0;
			return archive_failure(u, a, "tar", err);
		}
		if (apply_entry(u, a, e, err) < 0)
			return -1;
		if (u->ended_early)
			break;
	}
	if (drain(u, err) < 0)
		return -1;
	if (finish_links(u, err) < 0 || finish_dirs(u, err) < 0)
		return -1;
	return 0;
}

int lm_unpack(struct lm_reader *tar_stream, int target_dirfd, const struct lm_unpack_opts *opts,
	      struct lm_unpack_stats *stats, struct lm_error *err)
{
	struct lm_unpack_stats local;
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	struct unpacker u = {
		.root = target_dirfd,
		.st = stats,
		.src = tar_stream,
		.try_openat2 = true,
	};
	if (opts)
		u.opts = *opts;
	u.opaque_xattr = u.opts.userxattr ? "user.overlay.opaque" : "trusted.overlay.opaque";

	struct stat st;
	if (fstat(target_dirfd, &st) < 0)
		return lm_err_sys(err, "unpack: target directory");
	if (!S_ISDIR(st.st_mode))
		return lm_err(err, ENOTDIR, "unpack: target is not a directory");

	u.buf = malloc(READ_BUF_SIZE);
	struct archive *a = archive_read_new();
	int r;
	if (!u.buf || !a)
		r = lm_err(err, ENOMEM, "unpack: out of memory");
	else
		r = run(&u, a, err);
	if (a)
		archive_read_free(a);
	free(u.buf);
	for (size_t i = 0; i < u.n_dirs; i++)
		free(u.dirs[i].path);
	free(u.dirs);
	free(u.dir_index.slots);
	for (size_t i = 0; i < u.n_links; i++) {
		free(u.links[i].path);
		free(u.links[i].target);
	}
	free(u.links);
	free(u.link_index.slots);
	if (r < 0)
		return err->code > 0 ? -err->code : -1;
	return 0;
}
