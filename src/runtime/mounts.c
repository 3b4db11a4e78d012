/* The container's root filesystem, built in its new mount namespace.
 *
 * Every mount target is resolved once inside the rootfs (fs.h: openat2 with
 * RESOLVE_IN_ROOT) to an O_PATH fd and mounted through /proc/self/fd/N, so a
 * symlink in the image, or one swapped in later, can never redirect a mount
 * onto the host.  /dev is always a fresh tmpfs that we fill ourselves.  After
 * pivot_root the old root is detached; masked and read-only paths are applied
 * last, once nothing else needs to write there.
 *
 * Nothing but procfs may end up at the container's /proc or inside it (the
 * rule is lm_spec_proc_mount_refusal): the runtime writes sysctls and
 * oomScoreAdj there after pivot_root, and a volume there would take them
 * instead of the kernel (CVE-2019-16884).  The config parser refuses
 * destinations that say /proc; here each target is checked once more where it
 * really is, against where "/proc" leads in the rootfs at that moment, so a
 * symlink in the image cannot carry a mount there, and no mount may cover a
 * proc already mounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define PROPAGATION_FLAGS (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)

/* mount_setattr(2) attributes, for a libc that does not name them */
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

static void fd_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static int mount_at_fd(const char *source, int fd, const char *type, unsigned long flags,
		       const char *data, const char *what, struct lm_error *err)
{
	char target[64];
	fd_path(target, sizeof(target), fd);
	if (mount(source, target, type, flags, data) < 0)
		return lm_err_sys(err, "mount %s", what);
	return 0;
}

/* The path of what fd names, as this mount namespace sees it. */
static int fd_real_path(int fd, char *buf, size_t size, struct lm_error *err)
{
	char link[64];
	fd_path(link, sizeof(link), fd);
	ssize_t n = readlink(link, buf, size);
	if (n < 0)
		return lm_err_sys(err, "readlink %s", link);
	if ((size_t)n >= size)
		return lm_err(err, ENAMETOOLONG, "readlink %s: path too long", link);
	buf[n] = '\0';
	return 0;
}

/* Whether path is dir or below it; *rest gets the remainder ("" or "a/b"). */
static bool path_within(const char *path, const char *dir, const char **rest)
{
	size_t n = strlen(dir);
	while (n > 0 && dir[n - 1] == '/')
		n--;
	if (strncmp(path, dir, n) != 0 || (path[n] && path[n] != '/'))
		return false;
	*rest = path + n;
	while (**rest == '/')
		(*rest)++;
	return true;
}

static bool path_on_procfs(const char *path)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

/* The /proc rule (see the top of this file) for a mount whose target is
 * already resolved inside the rootfs to the fd target. */
static int check_proc_target(int rootfd, int target, const struct lm_mount *m, struct lm_error *err)
{
	struct lm_error perr;
	autofd proc = lm_open_in_root(rootfd, "/proc", O_PATH, 0, &perr);
	if (proc < 0) {
		/* nothing at /proc (yet, or ever: a dangling or looping symlink) */
		if (perr.code == ENOENT || perr.code == ENOTDIR || perr.code == ELOOP)
			return 0;
		return lm_err(err, perr.code, "mount %s: resolve /proc: %s", m->destination, perr.msg);
	}
	char tpath[PATH_MAX], ppath[PATH_MAX];
	if (fd_real_path(target, tpath, sizeof(tpath), err) < 0 || fd_real_path(proc, ppath, sizeof(ppath), err) < 0)
		return lm_error_prefix(err, "mount %s", m->destination);
	const char *rel;
	if (path_within(tpath, ppath, &rel)) {
		bool source_on_procfs = m->bind && m->source && path_on_procfs(m->source);
		const char *why = lm_spec_proc_mount_refusal(rel, m, source_on_procfs);
		if (!why)
			return 0;
		char where[PATH_MAX], note[PATH_MAX + 32] = "", what[PATH_MAX + 32];
		snprintf(where, sizeof(where), "/proc%s%s", rel[0] ? "/" : "", rel);
		if (strcmp(m->destination, where) != 0)
			snprintf(note, sizeof(note), " (it leads to %s)", where);
		if (m->bind)
			snprintf(what, sizeof(what), "bind mount of %s", m->source ? m->source : "(no source)");
		else
			snprintf(what, sizeof(what), "%s mount", m->type ? m->type : "untyped");
		return lm_err(err, EPERM, "%s on %s refused%s: %s", what, m->destination, note, why);
	}
	if (path_within(ppath, tpath, &rel) && lm_fd_on_procfs(proc))
		return lm_err(err, EPERM, "mount on %s refused: it would cover the container's /proc",
			      m->destination);
	return 0;
}

/* Flags the kernel locks on a mount seen from a user namespace: a remount
 * must keep them or it fails with EPERM. */
static unsigned long locked_flags(int fd)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (fstatvfs(fd, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static int remount_bind(int rootfd, const char *dest, unsigned long flags, struct lm_error *err)
{
	/* Re-resolve: the fd must name the new mount, not the directory under it. */
	autofd fd = lm_open_in_root(rootfd, dest, O_PATH, 0, err);
	if (fd < 0)
		return -1;
	char target[64];
	/* "/" needs no fd (nothing in it can be swapped), nor a /proc to name one */
	if (!strcmp(dest, "/"))
		snprintf(target, sizeof(target), "/");
	else
		fd_path(target, sizeof(target), fd);
	if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags, NULL) == 0)
		return 0;
	if (errno == EPERM &&
	    mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags | locked_flags(fd), NULL) == 0)
		return 0;
	return lm_err_sys(err, "remount %s", dest);
}

static int make_target(int rootfd, const char *dest, bool file, struct lm_error *err)
{
	return file ? lm_mkfile_in_root(rootfd, dest, 0644, err) : lm_mkdir_in_root(rootfd, dest, 0755, err);
}

static int mount_bind(int rootfd, const struct lm_mount *m, struct lm_error *err)
{
	const char *src = m->source ? m->source : "";
	struct stat st;
	if (stat(src, &st) < 0)
		return lm_err_sys(err, "mount %s: source %s", m->destination, src);
	autofd target = make_target(rootfd, m->destination, !S_ISDIR(st.st_mode), err);
	if (target < 0)
		return lm_error_prefix(err, "mount %s", m->destination);
	if (check_proc_target(rootfd, target, m, err) < 0)
		return -1;
	unsigned long flags = MS_BIND | (m->recursive ? MS_REC : 0);
	if (mount_at_fd(src, target, NULL, flags, NULL, m->destination, err) < 0)
		return -1;
	unsigned long extra = m->flags & ~(MS_BIND | MS_REC | PROPAGATION_FLAGS);
	if (extra && remount_bind(rootfd, m->destination, extra, err) < 0)
		return -1;
	return 0;
}

static int set_propagation(int rootfd, const struct lm_mount *m, struct lm_error *err)
{
	autofd fd = lm_open_in_root(rootfd, m->destination, O_PATH, 0, err);
	if (fd < 0)
		return -1;
	return mount_at_fd(NULL, fd, NULL, m->propagation, NULL, m->destination, err);
}

/* The host's cgroup v1 hierarchies (and a hybrid v2 one), as mounted under
 * /sys/fs/cgroup: mount-point basename and the controller options. */
struct cg_hier {
	char name[64];
	char opts[128];
	bool v2;
};

static size_t host_cgroup_hierarchies(struct cg_hier *out, size_t max)
{
	autofclose *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	char line[4096];
	size_t n = 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts ... - fstype source superopts */
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		char mnt[1024], fstype[64], source[256], super[1024];
		if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %255s %1023s", fstype, source, super) != 3)
			continue;
		bool v2 = strcmp(fstype, "cgroup2") == 0;
		if (!v2 && strcmp(fstype, "cgroup") != 0)
			continue;
		if (strncmp(mnt, "/sys/fs/cgroup/", 15) != 0 || strchr(mnt + 15, '/'))
			continue;
		struct cg_hier *h = &out[n];
		memset(h, 0, sizeof(*h));
		h->v2 = v2;
		snprintf(h->name, sizeof(h->name), "%s", mnt + 15);
		/* keep only controller names and name=..., drop rw/ro and the like */
		char *save = NULL;
		for (char *o = strtok_r(super, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			if (strcmp(o, "rw") == 0 || strcmp(o, "ro") == 0 || strncmp(o, "release_agent", 13) == 0 ||
			    strcmp(o, "clone_children") == 0 || strcmp(o, "nsdelegate") == 0 ||
			    strcmp(o, "memory_recursiveprot") == 0)
				continue;
			size_t used = strlen(h->opts);
			snprintf(h->opts + used, sizeof(h->opts) - used, "%s%s", used ? "," : "", o);
		}
		n++;
	}
	return n;
}

static int mount_cgroup(const struct lm_init_ctx *ctx, int rootfd, const struct lm_mount *m,
			struct lm_error *err)
{
	unsigned long flags = m->flags & ~(MS_BIND | MS_REC | PROPAGATION_FLAGS);
	autofd target = lm_mkdir_in_root(rootfd, m->destination, 0755, err);
	if (target < 0)
		return lm_error_prefix(err, "mount %s", m->destination);
	if (check_proc_target(rootfd, target, m, err) < 0)
		return -1;
	/* type cgroup2, or any cgroup mount on a pure v2 host: the v2 hierarchy
	 * alone (on a hybrid host, the one at /sys/fs/cgroup/unified) */
	bool want_v2 = strcmp(m->type, "cgroup2") == 0;
	if (want_v2 || ctx->cgroup_mode == LM_CGROUP_V2) {
		if (want_v2 && ctx->cgroup_mode == LM_CGROUP_V1)
			return lm_err(err, ENOTSUP, "mount %s: this host has no cgroup v2 hierarchy", m->destination);
		if (ctx->new_cgroupns)
			return mount_at_fd("cgroup2", target, "cgroup2", flags, NULL, m->destination, err);
		char src[PATH_MAX];
		snprintf(src, sizeof(src), "/sys/fs/cgroup%s%s",
			 ctx->cgroup_mode == LM_CGROUP_HYBRID ? "/unified" : "", ctx->cgroup_path);
		if (mount_at_fd(src, target, NULL, MS_BIND | MS_REC, NULL, m->destination, err) < 0)
			return -1;
		return flags ? remount_bind(rootfd, m->destination, flags, err) : 0;
	}
	/* v1 and hybrid: a tmpfs with one directory per hierarchy, as on the host */
	if (mount_at_fd("tmpfs", target, "tmpfs", flags & ~MS_RDONLY, "mode=755", m->destination, err) < 0)
		return -1;
	struct cg_hier hier[32];
	size_t n = host_cgroup_hierarchies(hier, 32);
	autofd base = lm_open_in_root(rootfd, m->destination, O_PATH | O_DIRECTORY, 0, err);
	if (base < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char dest[PATH_MAX];
		snprintf(dest, sizeof(dest), "%s/%s", m->destination, hier[i].name);
		autofd sub = lm_mkdir_in_root(rootfd, dest, 0755, err);
		if (sub < 0)
			return lm_error_prefix(err, "mount %s", dest);
		int r;
		if (ctx->new_cgroupns) {
			r = hier[i].v2 ? mount_at_fd("cgroup2", sub, "cgroup2", flags, NULL, dest, err)
				       : mount_at_fd("cgroup", sub, "cgroup", flags, hier[i].opts, dest, err);
		} else {
			char src[PATH_MAX];
			snprintf(src, sizeof(src), "/sys/fs/cgroup/%s%s", hier[i].name, ctx->cgroup_path);
			struct stat st;
			if (stat(src, &st) < 0) /* a hierarchy the container has no cgroup in */
				snprintf(src, sizeof(src), "/sys/fs/cgroup/%s", hier[i].name);
			r = mount_at_fd(src, sub, NULL, MS_BIND, NULL, dest, err);
			if (r == 0 && flags)
				r = remount_bind(rootfd, dest, flags, err);
		}
		if (r < 0)
			return -1;
	}
	/* co-mounted controllers are reached through symlinks (cpu -> cpu,cpuacct) */
	autoclosedir *d = opendir("/sys/fs/cgroup");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_type != DT_LNK)
			continue;
		char link[256];
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", de->d_name);
		ssize_t l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0 || memchr(link, '/', (size_t)l))
			continue;
		link[l] = '\0';
		symlinkat(link, base, de->d_name);
	}
	if (flags & MS_RDONLY) {
		char t[64];
		fd_path(t, sizeof(t), base);
		if (mount(NULL, t, NULL, MS_REMOUNT | flags, "mode=755") < 0)
			return lm_err_sys(err, "remount %s read-only", m->destination);
	}
	return 0;
}

/* devpts refuses a gid= naming a group that the user namespace does not
 * map (EINVAL): the usual gid=5 with a mapping of root alone, say.  That
 * option is dropped, as LXC does, and a pty then gets the group of the
 * process that opens it.  *out is NULL when data is used as it is. */
static int devpts_data(const char *data, char **out, struct lm_error *err)
{
	*out = NULL;
	if (!data || !strstr(data, "gid="))
		return 0;
	char *copy = strdup(data);
	*out = calloc(1, strlen(data) + 1);
	if (!copy || !*out) {
		free(copy);
		free(*out);
		*out = NULL;
		return lm_err(err, ENOMEM, "out of memory");
	}
	char *save = NULL;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		char *end;
		if (strncmp(o, "gid=", 4) == 0) {
			errno = 0;
			unsigned long gid = strtoul(o + 4, &end, 10);
			if (!errno && end != o + 4 && !*end && gid <= UINT32_MAX &&
			    !lm_process_id_mapped("/proc/self/gid_map", (uint32_t)gid))
				continue;
		}
		if (**out)
			strcat(*out, ",");
		strcat(*out, o);
	}
	free(copy);
	return 0;
}

/* sysfs belongs to a network namespace: from a user namespace that does
 * not own the container's (none of its own, or one joined by path), the
 * kernel refuses a new instance with EPERM.  As runc does, /sys is then the
 * host's, bound recursively, with the mount's flags on every mount of the
 * tree where the kernel can (mount_setattr), else on its top. */
static int mount_sysfs_bind(int rootfd, const struct lm_mount *m, int target, struct lm_error *err)
{
	char t[64];
	fd_path(t, sizeof(t), target);
	if (mount("/sys", t, NULL, MS_BIND | MS_REC, NULL) < 0)
		return lm_err_sys(err, "mount %s: no sysfs of our own in this user namespace, and a bind of the host's /sys",
				  m->destination);
	unsigned long flags = m->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
	if (!flags)
		return 0;
#ifdef SYS_mount_setattr
	autofd fd = lm_open_in_root(rootfd, m->destination, O_PATH, 0, err);
	if (fd < 0)
		return -1;
	struct {
		uint64_t attr_set, attr_clr, propagation, userns_fd;
	} attr = {
		.attr_set = ((flags & MS_RDONLY) ? MOUNT_ATTR_RDONLY : 0) | ((flags & MS_NOSUID) ? MOUNT_ATTR_NOSUID : 0) |
			    ((flags & MS_NODEV) ? MOUNT_ATTR_NODEV : 0) | ((flags & MS_NOEXEC) ? MOUNT_ATTR_NOEXEC : 0),
	};
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) == 0)
		return 0;
	if (errno != ENOSYS)
		return lm_err_sys(err, "mount %s: flags of the bind of the host's /sys", m->destination);
#endif
	return remount_bind(rootfd, m->destination, flags, err);
}

static int mount_one(const struct lm_init_ctx *ctx, int rootfd, const struct lm_mount *m,
		     struct lm_error *err)
{
	int r;
	if (m->bind) {
		r = mount_bind(rootfd, m, err);
	} else if (m->type && (strcmp(m->type, "cgroup") == 0 || strcmp(m->type, "cgroup2") == 0)) {
		r = mount_cgroup(ctx, rootfd, m, err);
	} else {
		autofd target = lm_mkdir_in_root(rootfd, m->destination, 0755, err);
		if (target < 0)
			return lm_error_prefix(err, "mount %s", m->destination);
		if (check_proc_target(rootfd, target, m, err) < 0)
			return -1;
		unsigned long flags = m->flags & ~PROPAGATION_FLAGS;
		autofree char *data = NULL;
		bool devpts = m->type && strcmp(m->type, "devpts") == 0;
		if (devpts && devpts_data(m->data, &data, err) < 0)
			return lm_error_prefix(err, "mount %s", m->destination);
		r = mount_at_fd(m->source ? m->source : m->type, target, m->type, flags, data ? data : m->data,
				m->destination, err);
		if (r < 0 && err->code == EPERM && m->type && strcmp(m->type, "sysfs") == 0 &&
		    lm_spec_namespace(ctx->spec, LM_NS_USER))
			r = mount_sysfs_bind(rootfd, m, target, err);
	}
	if (r == 0 && m->propagation)
		r = set_propagation(rootfd, m, err);
	return r;
}

static bool spec_mounts_dev(const struct lm_spec *spec, bool *is_bind)
{
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const char *d = spec->mounts[i].destination;
		if (strcmp(d, "/dev") == 0 || strcmp(d, "/dev/") == 0) {
			*is_bind = spec->mounts[i].bind;
			return true;
		}
	}
	return false;
}

static int pivot(int rootfd, struct lm_error *err)
{
	autofd oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0)
		return lm_err_sys(err, "open /");
	if (fchdir(rootfd) < 0)
		return lm_err_sys(err, "chdir to rootfs");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return lm_err_sys(err, "pivot_root");
	/* The old root now sits on top of the new one: detach it without letting
	 * the unmount propagate to the host. */
	if (fchdir(oldroot) < 0)
		return lm_err_sys(err, "chdir to old root");
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return lm_err_sys(err, "make old root slave");
	if (umount2(".", MNT_DETACH) < 0)
		return lm_err_sys(err, "detach old root");
	if (chdir("/") < 0)
		return lm_err_sys(err, "chdir /");
	return 0;
}

int lm_rootfs_prepare(const struct lm_init_ctx *ctx, int *rootfd_out, struct lm_error *err)
{
	const struct lm_spec *spec = ctx->spec;
	/* Nothing we mount may reach the host, and host unmounts still reach us. */
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return lm_err_sys(err, "make / slave");
	/* The root is either the rootfs directory bound onto itself, or a
	 * container's writable layer mounted here, inside this mount namespace
	 * only: it then disappears with the container, whatever happens. */
	const char *overlay = NULL;
	for (size_t i = 0; i < spec->n_annotations; i++)
		if (strcmp(spec->annotation_keys[i], LM_ANNOTATION_ROOTFS_OVERLAY) == 0)
			overlay = spec->annotation_values[i];
	if (overlay) {
		if (mount("overlay", spec->root_path, "overlay", 0, overlay) < 0)
			return lm_err_sys(err, "mount the writable layer on %s", spec->root_path);
	} else if (mount(spec->root_path, spec->root_path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		return lm_err_sys(err, "bind rootfs %s", spec->root_path);
	}
	autofd rootfd = open(spec->root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return lm_err_sys(err, "open rootfs %s", spec->root_path);

	bool dev_bind = false;
	bool fresh_dev = !spec_mounts_dev(spec, &dev_bind) || !dev_bind;
	if (!spec_mounts_dev(spec, &dev_bind)) {
		autofd dev = lm_mkdir_in_root(rootfd, "/dev", 0755, err);
		if (dev < 0 || mount_at_fd("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k",
					   "/dev", err) < 0)
			return -1;
	}
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (mount_one(ctx, rootfd, &spec->mounts[i], err) < 0)
			return -1;
	if (fresh_dev) {
		autofd dev = lm_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, 0, err);
		if (dev < 0 || lm_dev_populate(dev, spec, ctx->new_userns, err) < 0)
			return lm_error_prefix(err, "populate /dev");
	}
	/* A missing working directory is made, as other runtimes do. */
	const char *cwd = spec->process.cwd ? spec->process.cwd : "/";
	autofd cwd_fd = lm_mkdir_in_root(rootfd, cwd, 0755, err);
	if (cwd_fd < 0)
		return lm_error_prefix(err, "cwd");
	*rootfd_out = steal_fd(&rootfd);
	return 0;
}

int lm_rootfs_pivot(int rootfd, struct lm_error *err)
{
	return pivot(rootfd, err);
}

static int mask_path(const char *path, struct lm_error *err)
{
	autofd root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	autofd fd = lm_open_in_root(root, path, O_PATH | O_NOFOLLOW, 0, err);
	if (fd < 0)
		return err->code == ENOENT ? 0 : -1;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return lm_err_sys(err, "mask %s", path);
	if (S_ISDIR(st.st_mode))
		return mount_at_fd("tmpfs", fd, "tmpfs", MS_RDONLY, NULL, path, err);
	/* Only the real null device may cover a path. */
	autofd null = lm_open_in_root(root, "/dev/null", O_PATH | O_NOFOLLOW, 0, err);
	struct stat nst;
	if (null < 0 || fstat(null, &nst) < 0 || !S_ISCHR(nst.st_mode) || nst.st_rdev != makedev(1, 3))
		return lm_err(err, EINVAL, "mask %s: /dev/null is not the null device", path);
	char src[64];
	fd_path(src, sizeof(src), null);
	return mount_at_fd(src, fd, NULL, MS_BIND, NULL, path, err);
}

static int readonly_path(const char *path, struct lm_error *err)
{
	autofd root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	autofd fd = lm_open_in_root(root, path, O_PATH | O_NOFOLLOW, 0, err);
	if (fd < 0)
		return err->code == ENOENT ? 0 : -1;
	char self[64];
	fd_path(self, sizeof(self), fd);
	if (mount(self, self, NULL, MS_BIND | MS_REC, NULL) < 0)
		return lm_err_sys(err, "bind %s", path);
	return remount_bind(root, path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, err);
}

int lm_rootfs_finalize(const struct lm_spec *spec, struct lm_error *err)
{
	for (size_t i = 0; i < spec->n_masked_paths; i++)
		if (mask_path(spec->masked_paths[i], err) < 0)
			return lm_error_prefix(err, "maskedPaths");
	for (size_t i = 0; i < spec->n_readonly_paths; i++)
		if (readonly_path(spec->readonly_paths[i], err) < 0)
			return lm_error_prefix(err, "readonlyPaths");
	if (spec->root_readonly) {
		autofd root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (remount_bind(root, "/", MS_RDONLY, err) < 0)
			return lm_error_prefix(err, "read-only root");
	}
	if (spec->rootfs_propagation_flags && mount(NULL, "/", NULL, spec->rootfs_propagation_flags, NULL) < 0)
		return lm_err_sys(err, "rootfsPropagation %s", spec->rootfs_propagation);
	return 0;
}
