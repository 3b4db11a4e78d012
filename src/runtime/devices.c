/* A fresh /dev: the default device nodes, the standard links, and the
 * config's devices.  Nodes are made fd-relative inside the new tmpfs; in a
 * user namespace, where mknod is not allowed, the host node is bind-mounted
 * onto an empty file instead (after checking it is the node it claims): the
 * one at the same path, else the one sysfs names for that major:minor.  It
 * keeps the host's owner and mode (fileMode, uid and gid cannot apply). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

struct default_dev {
	const char *name;
	unsigned major, minor;
};

static const struct default_dev default_devs[] = {
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static const char *const default_links[][2] = {
	{"ptmx", "pts/ptmx"},           {"fd", "/proc/self/fd"},         {"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},  {"stderr", "/proc/self/fd/2"},
};

/* The host's name of a device node, from sysfs (DEVNAME in its uevent,
 * as udev names it under /dev): for a node the config places at a path the
 * host does not have.  Returns false when sysfs does not know the device. */
static bool host_node_path(mode_t type, dev_t rdev, char *buf, size_t size)
{
	char uevent[96];
	snprintf(uevent, sizeof(uevent), "/sys/dev/%s/%u:%u/uevent", type == S_IFBLK ? "block" : "char",
		 major(rdev), minor(rdev));
	autofclose *f = fopen(uevent, "re");
	if (!f)
		return false;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "DEVNAME=", 8) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		const char *name = line + 8;
		if (!*name || name[0] == '/' || strstr(name, ".."))
			return false;
		int n = snprintf(buf, size, "/dev/%s", name);
		return n > 0 && (size_t)n < size;
	}
	return false;
}

/* An O_PATH fd of path if it is the device type/rdev, else -1. */
static int open_node(const char *path, mode_t type, dev_t rdev)
{
	struct stat st;
	autofd fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != type || st.st_rdev != rdev)
		return -1;
	return steal_fd(&fd);
}

/* Bind the host's node over an empty file at dirfd/name: the one at
 * host_path (the container's path, as runc does) when it is that device,
 * else the one sysfs names. */
static int bind_host_node(int dirfd, const char *name, const char *host_path, mode_t type,
			  dev_t rdev, struct lm_error *err)
{
	char found[PATH_MAX];
	/* opened once and checked through the fd: what is bound is what was checked */
	autofd node = open_node(host_path, type, rdev);
	if (node < 0 && host_node_path(type, rdev, found, sizeof(found)))
		node = open_node(found, type, rdev);
	if (node < 0)
		return lm_err(err, ENOENT,
			      "device %s: in a user namespace a device node is bound from the host, which has no %s device %u:%u",
			      host_path, type == S_IFBLK ? "block" : "character", major(rdev), minor(rdev));
	autofd f = openat(dirfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f < 0)
		return lm_err_sys(err, "create %s", name);
	autofd target = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (target < 0)
		return lm_err_sys(err, "open %s", name);
	char src[64], t[64];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", node);
	snprintf(t, sizeof(t), "/proc/self/fd/%d", target);
	if (mount(src, t, NULL, MS_BIND, NULL) < 0)
		return lm_err_sys(err, "bind %s", host_path);
	return 0;
}

static int make_node(int dirfd, const char *name, mode_t type, mode_t perm, dev_t rdev, uid_t uid,
		     gid_t gid, bool in_userns, const char *host_path, struct lm_error *err)
{
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return lm_err_sys(err, "replace %s", name);
	if (in_userns && type != S_IFIFO)
		return bind_host_node(dirfd, name, host_path, type, rdev, err);
	if (mknodat(dirfd, name, type | perm, rdev) < 0)
		return lm_err_sys(err, "mknod %s", name);
	if (fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return lm_err_sys(err, "chown %s", name);
	return 0;
}

static int split_dir(int rootfd, const char *path, int *dirfd, const char **base, struct lm_error *err)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash[1] == '\0')
		return lm_err(err, EINVAL, "device path %s is not a file path", path);
	char parent[PATH_MAX];
	size_t pl = (size_t)(slash - path);
	if (pl >= sizeof(parent))
		return lm_err(err, ENAMETOOLONG, "device path %s too long", path);
	memcpy(parent, path, pl);
	parent[pl] = '\0';
	*dirfd = lm_mkdir_in_root(rootfd, pl ? parent : "/", 0755, err);
	if (*dirfd < 0)
		return -1;
	*base = slash + 1;
	if (strcmp(*base, "..") == 0 || strcmp(*base, ".") == 0) {
		close(*dirfd);
		return lm_err(err, EINVAL, "device path %s is not a file path", path);
	}
	return 0;
}

int lm_dev_populate(int devfd, const struct lm_spec *spec, bool in_userns, struct lm_error *err)
{
	for (size_t i = 0; i < sizeof(default_devs) / sizeof(default_devs[0]); i++) {
		char host[64];
		snprintf(host, sizeof(host), "/dev/%s", default_devs[i].name);
		if (make_node(devfd, default_devs[i].name, S_IFCHR, 0666,
			      makedev(default_devs[i].major, default_devs[i].minor), 0, 0, in_userns, host, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < sizeof(default_links) / sizeof(default_links[0]); i++) {
		if (symlinkat(default_links[i][1], devfd, default_links[i][0]) < 0 && errno != EEXIST)
			return lm_err_sys(err, "symlink /dev/%s", default_links[i][0]);
	}
	if (mkdirat(devfd, "pts", 0755) < 0 && errno != EEXIST)
		return lm_err_sys(err, "mkdir /dev/pts");
	if (mkdirat(devfd, "shm", 01777) < 0 && errno != EEXIST)
		return lm_err_sys(err, "mkdir /dev/shm");

	/* config devices are resolved from the rootfs: /dev is the usual but not the only place */
	autofd rootfd = openat(devfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return lm_err_sys(err, "open rootfs");
	for (size_t i = 0; i < spec->n_devices; i++) {
		const struct lm_device *d = &spec->devices[i];
		autofd dir = -1;
		const char *base;
		if (split_dir(rootfd, d->path, &dir, &base, err) < 0)
			return -1;
		mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
		mode_t perm = d->has_file_mode ? (d->file_mode & 07777) : 0666;
		if (make_node(dir, base, type, perm, makedev((unsigned)d->major, (unsigned)d->minor),
			      d->has_uid ? d->uid : 0, d->has_gid ? d->gid : 0, in_userns, d->path, err) < 0)
			return -1;
	}
	return 0;
}
