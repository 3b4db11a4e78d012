/* File helpers: whole-file reads and atomic writes, and path resolution that
 * stays inside a root directory.
 *
 * Paths inside a container rootfs are never joined as strings: they are
 * walked from the rootfs fd with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS),
 * so ".." and absolute symlinks are clamped to the root.  Kernels without
 * openat2 get a component-by-component walk with the same semantics.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* Read a whole file (at most max bytes; larger is an error). *out is NUL-terminated. */
int lm_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len,
		    struct lm_error *err);
/* Read what is left of fd, same limits. */
int lm_read_fd(int fd, size_t max, char **out, size_t *len, struct lm_error *err);
/* Write data to path: O_WRONLY|O_TRUNC (no create) — for procfs, sysfs, cgroupfs. */
int lm_write_file_at(int dirfd, const char *path, const char *data, size_t len, struct lm_error *err);
/* Write to a temp file beside path, fsync, rename over path. */
int lm_write_file_atomic_at(int dirfd, const char *path, const char *data, size_t len, mode_t mode,
			    struct lm_error *err);

/* Open path inside root (rootfd), never leaving it.  flags as for openat;
 * O_CLOEXEC is always added. */
int lm_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct lm_error *err);
/* Make every missing directory of path inside root (mode for new ones) and
 * return an O_PATH fd of the last one. */
int lm_mkdir_in_root(int rootfd, const char *path, mode_t mode, struct lm_error *err);
/* Make the parent directories and an empty regular file if nothing is there;
 * return an O_PATH fd of what is at path (a file, or whatever already exists). */
int lm_mkfile_in_root(int rootfd, const char *path, mode_t mode, struct lm_error *err);

/* Whether fd is on a proc filesystem: what the runtime writes to /proc
 * (sysctls, oom_score_adj) must reach the kernel, not a file standing in. */
bool lm_fd_on_procfs(int fd);

/* Force the fallback resolver (tests). */
void lm_fs_force_fallback(bool on);

/* mkdir -p (existing directories are fine). */
int lm_mkdir_p(const char *path, mode_t mode, struct lm_error *err);

/* Remove a directory tree (fd-relative, does not follow symlinks, never
 * descends into another mounted filesystem). Missing is fine. */
int lm_rm_rf_at(int dirfd, const char *name, struct lm_error *err);
