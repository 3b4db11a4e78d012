/* Per-container state on disk: <root>/<id>/state.json, written atomically.
 * Status is derived, never stored: a live init process (same pid and start
 * time) with the exec fifo present is "created", without it "running"; no
 * such process is "stopped".  Deriving it means a crash can never leave a
 * stale status behind. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/container.h"
#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define STATE_FILE "state.json"
#define EXEC_FIFO "exec.fifo"

const char *lm_status_name(enum lm_status st)
{
	switch (st) {
	case LM_STATUS_CREATING: return "creating";
	case LM_STATUS_CREATED: return "created";
	case LM_STATUS_RUNNING: return "running";
	case LM_STATUS_STOPPED: return "stopped";
	}
	return "unknown";
}

int lm_id_validate(const char *id, struct lm_error *err)
{
	size_t len = strlen(id);
	if (len == 0 || len > 1024)
		return lm_err(err, EINVAL, "invalid container id \"%.64s%s\": must be 1 to 1024 characters (not %zu)",
			      id, len > 64 ? "..." : "", len);
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return lm_err(err, EINVAL, "invalid container id \"%s\"", id);
	for (const char *p = id; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '.' || c == '+' || c == '-';
		if (!ok)
			return lm_err(err, EINVAL,
				      "invalid container id \"%s\": only letters, digits and _.+- are allowed", id);
	}
	return 0;
}

static int open_root(const char *root, bool create, struct lm_error *err)
{
	if (create && lm_mkdir_p(root, 0700, err) < 0)
		return lm_error_prefix(err, "create state root");
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "open state root %s", root);
	return fd;
}

int lm_state_dir_create(const char *root, const char *id, int *dirfd, struct lm_error *err)
{
	if (lm_id_validate(id, err) < 0)
		return -1;
	autofd rootfd = open_root(root, true, err);
	if (rootfd < 0)
		return -1;
	if (mkdirat(rootfd, id, 0711) < 0) {
		if (errno == EEXIST)
			return lm_err(err, EEXIST, "container \"%s\" already exists", id);
		return lm_err_sys(err, "create state directory %s/%s", root, id);
	}
	*dirfd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (*dirfd < 0) {
		lm_err_sys(err, "open state directory %s/%s", root, id);
		unlinkat(rootfd, id, AT_REMOVEDIR);
		return -1;
	}
	return 0;
}

int lm_state_dir_open(const char *root, const char *id, int *dirfd, struct lm_error *err)
{
	if (lm_id_validate(id, err) < 0)
		return -1;
	autofd rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 && errno != ENOENT)
		return lm_err_sys(err, "open state root %s", root);
	int fd = rootfd < 0 ? -1 : openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return lm_err(err, ENOENT, "container \"%s\" does not exist", id);
		return lm_err_sys(err, "open state of container \"%s\"", id);
	}
	/* A directory without a state file is a create that never finished. */
	if (faccessat(fd, STATE_FILE, F_OK, 0) < 0) {
		close(fd);
		return lm_err(err, ENOENT, "container \"%s\" does not exist", id);
	}
	*dirfd = fd;
	return 0;
}

int lm_state_dir_remove(const char *root, const char *id, struct lm_error *err)
{
	autofd rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return errno == ENOENT ? 0 : lm_err_sys(err, "open state root %s", root);
	return lm_rm_rf_at(rootfd, id, err);
}

int lm_state_write(int dirfd, const struct lm_state *st, struct lm_error *err)
{
	json_t *o = json_pack("{s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:b}", "id", st->id, "pid", (json_int_t)st->pid,
			      "pid_start", (json_int_t)st->pid_start, "bundle", st->bundle, "rootfs",
			      st->rootfs, "created", st->created, "cgroup_path", st->cgroup_path,
			      "userns", st->has_userns);
	if (!o)
		return lm_err(err, ENOMEM, "write state: out of memory");
	if (st->annotations)
		json_object_set(o, "annotations", st->annotations);
	if (st->has_hooks)
		json_object_set_new(o, "hooks", json_true());
	if (st->creator > 0) {
		json_object_set_new(o, "creator", json_integer(st->creator));
		json_object_set_new(o, "creator_start", json_integer((json_int_t)st->creator_start));
	}
	autofree char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return lm_err(err, ENOMEM, "write state: out of memory");
	return lm_write_file_atomic_at(dirfd, STATE_FILE, text, strlen(text), 0600, err);
}

static char *dup_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return strdup(s ? s : "");
}

int lm_state_read(int dirfd, struct lm_state *st, struct lm_error *err)
{
	memset(st, 0, sizeof(*st));
	autofree char *text = NULL;
	size_t len;
	if (lm_read_file_at(dirfd, STATE_FILE, 1 << 20, &text, &len, err) < 0)
		return -1;
	json_error_t jerr;
	json_t *o = json_loadb(text, len, 0, &jerr);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		return lm_err(err, EINVAL, "state.json is corrupt: %s", jerr.text);
	}
	st->id = dup_str(o, "id");
	st->bundle = dup_str(o, "bundle");
	st->rootfs = dup_str(o, "rootfs");
	st->created = dup_str(o, "created");
	st->cgroup_path = dup_str(o, "cgroup_path");
	st->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	st->pid_start = (unsigned long long)json_integer_value(json_object_get(o, "pid_start"));
	st->has_userns = json_is_true(json_object_get(o, "userns"));
	st->has_hooks = json_is_true(json_object_get(o, "hooks"));
	st->creator = (pid_t)json_integer_value(json_object_get(o, "creator"));
	st->creator_start = (unsigned long long)json_integer_value(json_object_get(o, "creator_start"));
	json_t *ann = json_object_get(o, "annotations");
	if (json_is_object(ann))
		st->annotations = json_incref(ann);
	json_decref(o);
	if (!st->id || !st->bundle || !st->rootfs || !st->created || !st->cgroup_path) {
		lm_state_free(st);
		return lm_err(err, ENOMEM, "read state: out of memory");
	}
	return 0;
}

void lm_state_free(struct lm_state *st)
{
	free(st->id);
	free(st->bundle);
	free(st->rootfs);
	free(st->created);
	free(st->cgroup_path);
	json_decref(st->annotations);
	memset(st, 0, sizeof(*st));
}

unsigned long long lm_pid_start_time(pid_t pid)
{
	if (pid <= 0)
		return 0;
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	autofd fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields restart after the last ')' */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	char state = p[2];
	if (state == 'Z' || state == 'X')
		return 0;
	/* field 3 is state; starttime is field 22 */
	p += 2;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return 0;
		p++;
	}
	return strtoull(p, NULL, 10);
}

bool lm_state_init_alive(const struct lm_state *st)
{
	if (st->pid <= 0)
		return false;
	/* 0 means "gone" (or unknown): never a match, even for a recorded 0. */
	unsigned long long start = lm_pid_start_time(st->pid);
	return start != 0 && start == st->pid_start;
}

int lm_pidfd_open_checked(pid_t pid, unsigned long long start)
{
	if (pid <= 0 || start == 0)
		return -1;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* checked after opening: a pidfd taken before a pid is reused stays
	 * with the old process, so a match now means the right one */
	if (fd >= 0 && lm_pid_start_time(pid) != start) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int lm_state_init_pidfd(const struct lm_state *st)
{
	return lm_pidfd_open_checked(st->pid, st->pid_start);
}

enum lm_status lm_state_status(const struct lm_state *st, int dirfd)
{
	if (st->pid <= 0 && st->creator > 0 && lm_pid_start_time(st->creator) == st->creator_start)
		return LM_STATUS_CREATING;
	if (!lm_state_init_alive(st))
		return LM_STATUS_STOPPED;
	if (faccessat(dirfd, EXEC_FIFO, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return LM_STATUS_CREATED;
	return LM_STATUS_RUNNING;
}

json_t *lm_state_to_json(const struct lm_state *st, enum lm_status status)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s}", "ociVersion", "1.2.0", "id", st->id,
			      "status", lm_status_name(status), "pid",
			      (json_int_t)(status == LM_STATUS_STOPPED ? 0 : st->pid), "bundle", st->bundle,
			      "rootfs", st->rootfs, "created", st->created, "owner", "");
	if (o && st->annotations)
		json_object_set(o, "annotations", st->annotations);
	return o;
}

int lm_pid_file_write(const char *path, pid_t pid, struct lm_error *err)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%d", pid);
	autofree char *abs = NULL;
	if (path[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, path) < 0)
			return lm_err_sys(err, "pid file %s", path);
		path = abs;
	}
	if (lm_write_file_atomic_at(AT_FDCWD, path, text, (size_t)n, 0644, err) < 0)
		return lm_error_prefix(err, "pid file");
	return 0;
}
