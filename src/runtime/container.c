/* Parent side of the lifecycle (see container.h).
 *
 * create runs in one process: parse the config, make the state directory,
 * the cgroup and the exec fifo, then clone(3) the container process straight
 * into its namespaces.  The child inherits the parsed config (copy-on-write),
 * so nothing is parsed twice and this binary is never re-executed.  Parent and
 * child talk over a SOCK_SEQPACKET pair: GO (ids mapped, cgroup joined),
 * READY or ERROR (with the child's message).  Any failure before READY rolls
 * back everything: child killed, cgroup removed, state directory removed.
 *
 * Hooks (hooks.c) follow the OCI lifecycle.  When the config has create-time
 * hooks the child stops before pivot_root with HOOKS: we run prestart and
 * createRuntime here, in the runtime's namespaces, and answer RESUME; it
 * runs createContainer itself.  startContainer runs in the child after
 * start; poststart here once the process has exec'd, before start returns;
 * poststop after delete removed the container.  A failing hook up to
 * startContainer fails the operation and the container is destroyed, as
 * the spec says ("continue the lifecycle at step 12": poststop hooks run
 * then too); poststart and poststop failures are warnings.
 */
#include "runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/dmz.h"
#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define EXEC_FIFO "exec.fifo"
#define CONFIG_COPY "config.json"

static const int ns_clone_flag[LM_NS__COUNT] = {
	[LM_NS_USER] = CLONE_NEWUSER, [LM_NS_MOUNT] = CLONE_NEWNS,   [LM_NS_PID] = CLONE_NEWPID,
	[LM_NS_NET] = CLONE_NEWNET,   [LM_NS_IPC] = CLONE_NEWIPC,    [LM_NS_UTS] = CLONE_NEWUTS,
	[LM_NS_CGROUP] = CLONE_NEWCGROUP, [LM_NS_TIME] = CLONE_NEWTIME,
};

int lm_sync_send(int fd, enum lm_sync_type type, const struct lm_error *err)
{
	struct lm_sync_msg msg = {.type = (int32_t)type};
	size_t len = offsetof(struct lm_sync_msg, msg);
	if (err) {
		msg.code = err->code;
		size_t ml = strnlen(err->msg, sizeof(msg.msg) - 1);
		memcpy(msg.msg, err->msg, ml);
		len += ml + 1;
	}
	ssize_t n;
	do
		n = send(fd, &msg, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

int lm_sync_recv(int fd, struct lm_sync_msg *msg, struct lm_error *err)
{
	ssize_t n;
	memset(msg, 0, sizeof(*msg));
	do
		n = recv(fd, msg, sizeof(*msg) - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return lm_err_sys(err, "sync with container process");
	if (n < (ssize_t)offsetof(struct lm_sync_msg, msg))
		return lm_err(err, EPIPE, "container process exited during setup");
	msg->msg[sizeof(msg->msg) - 1] = '\0';
	return 0;
}

void lm_sync_fail(int fd, const struct lm_error *err)
{
	lm_sync_send(fd, LM_SYNC_ERROR, err);
	_exit(1);
}

static void now_rfc3339(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%09ldZ", ts.tv_nsec);
}

/* What create builds; torn down in reverse by create_rollback. */
struct create_ctx {
	char bundle[PATH_MAX];
	struct lm_spec *spec;
	int state_dirfd;
	bool state_created;
	struct lm_cgroup cg;
	bool cg_created;
	char *cg_path;
	int console_fd;
	int sync_fd;
	struct lm_dmz dmz;   /* the sealed launcher (runtime/dmz.h) */
	pid_t pid;
	int pidfd;
	struct lm_device_rule *rules;
	bool hooks_reached;  /* the create-time hooks began: destroying runs poststop */
	struct lm_seccomp seccomp;
};

static void create_ctx_init(struct create_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->state_dirfd = c->console_fd = c->sync_fd = c->pidfd = c->dmz.fd = -1;
}

static void create_ctx_release(struct create_ctx *c)
{
	if (c->state_dirfd >= 0)
		close(c->state_dirfd);
	if (c->console_fd >= 0)
		close(c->console_fd);
	if (c->sync_fd >= 0)
		close(c->sync_fd);
	if (c->dmz.fd >= 0)
		close(c->dmz.fd);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->cg_created)
		lm_cgroup_free(&c->cg);
	free(c->cg_path);
	free(c->rules);
	lm_seccomp_free(&c->seccomp);
	lm_spec_free(c->spec);
	create_ctx_init(c);
}

/* The state a runtime-side hook reads. */
static char *hook_state(const struct create_ctx *c, const char *id, enum lm_status status, pid_t pid)
{
	json_t *ann = lm_spec_annotations_json(c->spec);
	char *text = lm_hook_state_json(id, status, pid, c->bundle, ann);
	json_decref(ann);
	return text;
}

static void run_poststop(const struct create_ctx *c, const char *id)
{
	if (!c->spec->hooks.n_poststop)
		return;
	char *state = hook_state(c, id, LM_STATUS_STOPPED, 0);
	lm_hooks_run_warn(&c->spec->hooks, LM_HOOK_POSTSTOP, state, c->bundle, id);
	free(state);
}

/* poststop: the container got far enough for its hooks to have run, so
 * they get to undo what they did. */
static void create_rollback(struct create_ctx *c, const char *root, const char *id, bool poststop)
{
	struct lm_error ignored;
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
	if (c->cg_created) {
		lm_cgroup_kill_all(&c->cg, SIGKILL, &ignored);
		lm_cgroup_destroy(&c->cg, &ignored);
	}
	if (c->state_created)
		lm_state_dir_remove(root, id, &ignored);
	if (poststop && c->spec)
		run_poststop(c, id);
	create_ctx_release(c);
}

static bool id_mapped(uint32_t id, const struct lm_id_mapping *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (id >= m[i].container_id && id - m[i].container_id < m[i].size)
			return true;
	return false;
}

/* In a new user namespace the setup runs as its root, and the process then
 * takes its own ids: all of them must be mapped (the kernel would refuse
 * them half-way through create, with a bare EINVAL). */
static int check_mapped(const struct lm_spec *spec, struct lm_error *err)
{
	const struct lm_process *proc = &spec->process;
	if (!id_mapped(0, spec->uid_mappings, spec->n_uid_mappings))
		return lm_err(err, EINVAL, "linux.uidMappings does not map uid 0: the container is set up as its root");
	if (!id_mapped(0, spec->gid_mappings, spec->n_gid_mappings))
		return lm_err(err, EINVAL, "linux.gidMappings does not map gid 0: the container is set up as its root");
	if (!id_mapped(proc->uid, spec->uid_mappings, spec->n_uid_mappings))
		return lm_err(err, EINVAL, "process.user.uid %u is not mapped by linux.uidMappings", proc->uid);
	if (!id_mapped(proc->gid, spec->gid_mappings, spec->n_gid_mappings))
		return lm_err(err, EINVAL, "process.user.gid %u is not mapped by linux.gidMappings", proc->gid);
	for (size_t i = 0; i < proc->n_additional_gids; i++)
		if (!id_mapped(proc->additional_gids[i], spec->gid_mappings, spec->n_gid_mappings))
			return lm_err(err, EINVAL, "process.user.additionalGids: %u is not mapped by linux.gidMappings",
				      proc->additional_gids[i]);
	return 0;
}

/* Features this runtime does not have yet are refused, never silently skipped. */
static int check_supported(const struct lm_spec *spec, struct lm_error *err)
{
	if (!lm_spec_namespace(spec, LM_NS_MOUNT))
		return lm_err(err, EINVAL, "a mount namespace is required (linux.namespaces has no \"mount\")");
	const struct lm_namespace *user = lm_spec_namespace(spec, LM_NS_USER);
	const struct lm_namespace *pid = lm_spec_namespace(spec, LM_NS_PID);
	if (user && user->path && pid && !pid->path)
		return lm_err(err, ENOTSUP, "joining a user namespace while creating a pid namespace is not supported");
	if (user && !user->path && (spec->n_uid_mappings == 0 || spec->n_gid_mappings == 0))
		return lm_err(err, EINVAL, "a new user namespace needs linux.uidMappings and linux.gidMappings");
	if (!user && (spec->n_uid_mappings || spec->n_gid_mappings))
		return lm_err(err, EINVAL,
			      "linux.uidMappings and linux.gidMappings need a user namespace (linux.namespaces has no \"user\")");
	if (user && !user->path && check_mapped(spec, err) < 0)
		return -1;
	if (lm_process_check_lsm(&spec->process, err) < 0)
		return -1;
	if (spec->hostname && spec->hostname[0]) {
		const struct lm_namespace *uts = lm_spec_namespace(spec, LM_NS_UTS);
		if (!uts || uts->path)
			return lm_err(err, EINVAL, "process hostname needs a new uts namespace");
	}
	return 0;
}

static int write_id_map(pid_t pid, const char *file, const struct lm_id_mapping *m, size_t n,
			struct lm_error *err)
{
	char buf[4096];
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + len, sizeof(buf) - len, "%u %u %u\n", m[i].container_id, m[i].host_id,
				 m[i].size);
		if (w < 0 || (size_t)w >= sizeof(buf) - len)
			return lm_err(err, E2BIG, "%s: too many mappings", file);
		len += (size_t)w;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	if (lm_write_file_at(AT_FDCWD, path, buf, len, err) < 0)
		return lm_error_prefix(err, "write %s", file);
	return 0;
}

/* The host id a container id maps to (identity without a user namespace). */
static uint32_t host_id(uint32_t id, const struct lm_id_mapping *m, size_t n, bool userns)
{
	if (!userns)
		return id;
	for (size_t i = 0; i < n; i++)
		if (id >= m[i].container_id && id - m[i].container_id < m[i].size)
			return m[i].host_id + (id - m[i].container_id);
	return 65534;
}

/* runtime-spec "Cgroup ownership": the container's cgroup goes to its user
 * (mapped to the host) when it has its own user and cgroup namespaces and
 * mounts /sys/fs/cgroup read-write; lm_cgroup_give_to does it on pure v2
 * hosts only. */
static bool cgroup_given(const struct lm_spec *spec)
{
	const struct lm_namespace *user = lm_spec_namespace(spec, LM_NS_USER);
	const struct lm_namespace *cgns = lm_spec_namespace(spec, LM_NS_CGROUP);
	if (!user || user->path || !cgns || cgns->path)
		return false;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct lm_mount *m = &spec->mounts[i];
		if (strcmp(m->destination, "/sys/fs/cgroup") == 0 && m->type && !m->bind &&
		    (strcmp(m->type, "cgroup") == 0 || strcmp(m->type, "cgroup2") == 0))
			return !(m->flags & MS_RDONLY);
	}
	return false;
}

/* Joining a pid namespace only changes where our children go.  *own gets an
 * fd of our own namespace so the caller can put that back after the clone
 * (anything we fork later, a sanitizer's helper thread included, must not
 * land in the container). */
static int join_pid_ns(const struct lm_spec *spec, int *own, struct lm_error *err)
{
	const struct lm_namespace *ns = lm_spec_namespace(spec, LM_NS_PID);
	*own = -1;
	if (!ns || !ns->path)
		return 0;
	autofd fd = open(ns->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lm_err_sys(err, "open pid namespace %s", ns->path);
	autofd self = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return lm_err_sys(err, "open our own pid namespace");
	if (setns(fd, CLONE_NEWPID) < 0)
		return lm_err_sys(err, "join pid namespace %s", ns->path);
	*own = steal_fd(&self);
	return 0;
}

/* On a pure v2 host the child is born in its cgroup (CLONE_INTO_CGROUP):
 * no migration afterwards, which on v1 costs an RCU grace period. */
static pid_t clone_child(uint64_t flags, int cgroup_fd, int *pidfd)
{
	struct clone_args args = {
		.flags = flags | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0,
	};
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

/* The config is kept beside the state: exec takes its defaults from it. */
static int copy_config(const struct create_ctx *c, struct lm_error *err)
{
	autofree char *text = NULL;
	size_t len;
	autofd bundle_fd = open(c->bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (bundle_fd < 0)
		return lm_err_sys(err, "open bundle %s", c->bundle);
	if (lm_read_file_at(bundle_fd, "config.json", 16 << 20, &text, &len, err) < 0)
		return -1;
	return lm_write_file_atomic_at(c->state_dirfd, CONFIG_COPY, text, len, 0600, err);
}

/* The devices every container needs, allowed after the config's own rules
 * (as other runtimes do).  A node from linux.devices is only usable when the
 * config's rules allow it.  Without any rules the container starts from
 * deny-all. */
static const struct lm_device_rule default_device_rules[] = {
	{true, 'c', -1, -1, (char *)"m"}, {true, 'b', -1, -1, (char *)"m"},
	{true, 'c', 1, 3, NULL},  {true, 'c', 1, 5, NULL},  {true, 'c', 1, 7, NULL},
	{true, 'c', 1, 8, NULL},  {true, 'c', 1, 9, NULL},  {true, 'c', 5, 0, NULL},
	{true, 'c', 5, 1, NULL},  {true, 'c', 5, 2, NULL},  {true, 'c', 136, -1, NULL},
};

static int device_rules(const struct lm_spec *spec, struct lm_resources *res, struct lm_device_rule **owned,
			struct lm_error *err)
{
	size_t n_cfg = spec->has_resources ? spec->resources.n_devices : 0;
	size_t n_def = sizeof(default_device_rules) / sizeof(default_device_rules[0]);
	size_t total = 1 + n_cfg + n_def;
	struct lm_device_rule *r = calloc(total, sizeof(*r));
	if (!r)
		return lm_err(err, ENOMEM, "out of memory");
	size_t n = 0;
	if (n_cfg == 0)
		r[n++] = (struct lm_device_rule){false, 'a', -1, -1, NULL};
	for (size_t i = 0; i < n_cfg; i++)
		r[n++] = spec->resources.devices[i];
	for (size_t i = 0; i < n_def; i++)
		r[n++] = default_device_rules[i];
	if (spec->has_resources)
		*res = spec->resources;
	else
		memset(res, 0, sizeof(*res));
	res->devices = r;
	res->n_devices = n;
	*owned = r;
	return 0;
}

/* state.json: pid 0 while creating (the creator is recorded instead). */
static int write_state(const struct create_ctx *c, const char *id, pid_t pid, const char *created,
		       struct lm_error *err)
{
	json_t *ann = lm_spec_annotations_json(c->spec);
	struct lm_state state = {
		.id = (char *)id,
		.bundle = (char *)c->bundle,
		.rootfs = c->spec->root_path,
		.created = (char *)created,
		.cgroup_path = c->cg_path,
		.pid = pid,
		.pid_start = pid > 0 ? lm_pid_start_time(pid) : 0,
		.annotations = ann,
		.has_userns = lm_spec_namespace(c->spec, LM_NS_USER) != NULL,
		.has_hooks = c->spec->hooks.n_poststart || c->spec->hooks.n_poststop,
		.creator = pid > 0 ? 0 : getpid(),
		.creator_start = pid > 0 ? 0 : lm_pid_start_time(getpid()),
	};
	int r = lm_state_write(c->state_dirfd, &state, err);
	json_decref(ann);
	return r;
}

/* Everything up to a container process that is set up and waiting. */
static int create_common(const struct lm_create_opts *opts, bool run_mode, struct create_ctx *c,
			 struct lm_error *err)
{
	create_ctx_init(c);
	if (lm_id_validate(opts->id, err) < 0)
		return -1;
	if (opts->bundle) {
		if (!realpath(opts->bundle, c->bundle))
			return lm_err_sys(err, "bundle %s", opts->bundle);
	} else if (!getcwd(c->bundle, sizeof(c->bundle))) {
		return lm_err_sys(err, "current directory");
	}
	if (lm_spec_load(c->bundle, &c->spec, err) < 0)
		return -1;
	if (check_supported(c->spec, err) < 0)
		goto fail;
	/* Compiled here, once: the container process only loads it. */
	if (c->spec->has_seccomp && lm_seccomp_prepare(c->spec->seccomp_json, opts->root, &c->seccomp, err) < 0)
		goto fail;
	struct stat st;
	if (stat(c->spec->root_path, &st) < 0) {
		lm_err_sys(err, "rootfs %s", c->spec->root_path);
		goto fail;
	}
	if (!S_ISDIR(st.st_mode)) {
		lm_err(err, ENOTDIR, "rootfs %s is not a directory", c->spec->root_path);
		goto fail;
	}
	if (c->spec->process.terminal && !opts->console_socket) {
		lm_err(err, EINVAL, "process.terminal is true: --console-socket is required");
		goto fail;
	}
	if (!c->spec->process.terminal && opts->console_socket) {
		lm_err(err, EINVAL, "--console-socket given but process.terminal is false");
		goto fail;
	}
	if (lm_state_dir_create(opts->root, opts->id, &c->state_dirfd, err) < 0)
		goto fail;
	c->state_created = true;
	if (!run_mode) {
		/* The process opens the fifo with its final identity: it must own it. */
		bool userns = lm_spec_namespace(c->spec, LM_NS_USER) != NULL;
		uid_t fuid = host_id(c->spec->process.uid, c->spec->uid_mappings, c->spec->n_uid_mappings, userns);
		gid_t fgid = host_id(c->spec->process.gid, c->spec->gid_mappings, c->spec->n_gid_mappings, userns);
		if (mkfifoat(c->state_dirfd, EXEC_FIFO, 0600) < 0 ||
		    fchownat(c->state_dirfd, EXEC_FIFO, fuid, fgid, AT_SYMLINK_NOFOLLOW) < 0) {
			lm_err_sys(err, "create exec fifo");
			goto fail;
		}
	}
	if (lm_cgroup_path_for(c->spec->cgroups_path, opts->id, &c->cg_path, err) < 0)
		goto fail;
	/* The config is kept beside the state: exec takes its defaults from it,
	 * start and delete its hooks (a create killed half-way included). */
	if (copy_config(c, err) < 0)
		goto fail;
	/* From here on, a create killed half-way leaves a state that delete understands. */
	if (write_state(c, opts->id, 0, "", err) < 0)
		goto fail;
	struct lm_resources res;
	if (device_rules(c->spec, &res, &c->rules, err) < 0)
		goto fail;
	if (lm_cgroup_create(&c->cg, c->cg_path, &res, err) < 0)
		goto fail;
	c->cg_created = true;
	if (cgroup_given(c->spec) &&
	    lm_cgroup_give_to(&c->cg,
			      host_id(c->spec->process.uid, c->spec->uid_mappings, c->spec->n_uid_mappings, true),
			      err) < 0)
		goto fail;
	if (opts->console_socket) {
		c->console_fd = lm_console_connect(opts->console_socket, err);
		if (c->console_fd < 0)
			goto fail;
	}
	if (lm_dmz_prepare(c->spec, opts->preserve_fds, &c->dmz, err) < 0)
		goto fail;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		lm_err_sys(err, "socketpair");
		goto fail;
	}
	c->sync_fd = sv[0];

	uint64_t flags = 0;
	const struct lm_namespace *userns = NULL;
	for (size_t i = 0; i < c->spec->n_namespaces; i++) {
		const struct lm_namespace *ns = &c->spec->namespaces[i];
		if (ns->type == LM_NS_USER)
			userns = ns;
		/* The cgroup namespace must be made after the process is in its cgroup. */
		if (!ns->path && ns->type != LM_NS_CGROUP)
			flags |= (uint64_t)ns_clone_flag[ns->type];
	}
	const struct lm_namespace *cgns = lm_spec_namespace(c->spec, LM_NS_CGROUP);
	int own_pidns;
	if (join_pid_ns(c->spec, &own_pidns, err) < 0) {
		close(sv[1]);
		goto fail;
	}

	/* which joined namespaces are not ours (the host's): see sysctl_allowed */
	bool joined_not_host[LM_NS__COUNT] = {false};
	static const char *const ns_proc[LM_NS__COUNT] = {
		[LM_NS_NET] = "/proc/self/ns/net", [LM_NS_IPC] = "/proc/self/ns/ipc", [LM_NS_UTS] = "/proc/self/ns/uts"};
	for (size_t i = 0; i < c->spec->n_namespaces; i++) {
		const struct lm_namespace *ns = &c->spec->namespaces[i];
		struct stat mine, theirs;
		if (ns->path && ns_proc[ns->type] && stat(ns_proc[ns->type], &mine) == 0 &&
		    stat(ns->path, &theirs) == 0 && (mine.st_dev != theirs.st_dev || mine.st_ino != theirs.st_ino))
			joined_not_host[ns->type] = true;
	}
	struct lm_init_ctx ictx = {
		.spec = c->spec,
		.id = opts->id,
		.sync_fd = sv[1],
		.state_dirfd = run_mode ? -1 : c->state_dirfd,
		.console_fd = c->console_fd,
		.cgroup_path = c->cg_path,
		.cgroup_mode = c->cg.mode,
		.new_cgroupns = cgns && !cgns->path,
		.new_userns = userns && !userns->path,
		.preserve_fds = opts->preserve_fds,
		.bundle = c->bundle,
		.seccomp = c->spec->has_seccomp ? &c->seccomp : NULL,
		.dmz = c->dmz,
	};
	memcpy(ictx.joined_not_host, joined_not_host, sizeof(joined_not_host));
	/* The child starts in the bundle so relative mount sources resolve
	 * against it; we go back so relative paths given to us still work. */
	int cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd_fd < 0 || chdir(c->bundle) < 0) {
		close(sv[1]);
		if (cwd_fd >= 0)
			close(cwd_fd);
		lm_err_sys(err, "chdir %s", c->bundle);
		goto fail;
	}
	int cgroup_fd = -1;
	if (c->cg.mode == LM_CGROUP_V2 && c->cg.n_dirs == 1)
		cgroup_fd = open(c->cg.dirs[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
	c->pid = clone_child(flags, cgroup_fd, &c->pidfd);
	if (c->pid < 0 && cgroup_fd >= 0 && (errno == EINVAL || errno == ENOSYS || errno == EBUSY)) {
		/* an older kernel, or a cgroup it will not start us in: migrate instead */
		close(cgroup_fd);
		cgroup_fd = -1;
		c->pid = clone_child(flags, -1, &c->pidfd);
	}
	bool born_in_cgroup = cgroup_fd >= 0 && c->pid > 0;
	if (cgroup_fd >= 0 && c->pid != 0)
		close(cgroup_fd);
	if (c->pid != 0) {
		int r = fchdir(cwd_fd);
		close(cwd_fd);
		if (r < 0) {
			close(sv[1]);
			lm_err_sys(err, "return to the working directory");
			goto fail;
		}
	}
	if (c->pid < 0) {
		close(sv[1]);
		lm_err_sys(err, "clone container process");
		c->pid = 0;
		goto fail;
	}
	if (c->pid == 0) {
		close(sv[0]);
		close(cwd_fd);
		if (cgroup_fd >= 0)
			close(cgroup_fd);
		if (own_pidns >= 0)
			close(own_pidns);
		lm_init_child(&ictx);
	}
	close(sv[1]);
	if (own_pidns >= 0) {
		int r = setns(own_pidns, CLONE_NEWPID);
		close(own_pidns);
		if (r < 0) {
			lm_err_sys(err, "return to our own pid namespace");
			goto fail;
		}
	}

	if (ictx.new_userns) {
		if (write_id_map(c->pid, "uid_map", c->spec->uid_mappings, c->spec->n_uid_mappings, err) < 0 ||
		    write_id_map(c->pid, "gid_map", c->spec->gid_mappings, c->spec->n_gid_mappings, err) < 0)
			goto fail;
	}
	if (!born_in_cgroup && lm_cgroup_enter(&c->cg, c->pid, err) < 0)
		goto fail;
	struct lm_error go = {.code = c->pid};
	if (lm_sync_send(c->sync_fd, LM_SYNC_GO, &go) < 0) {
		lm_err_sys(err, "sync with container process");
		goto fail;
	}
	for (;;) {
		struct lm_sync_msg msg;
		if (lm_sync_recv(c->sync_fd, &msg, err) < 0)
			goto fail;
		if (msg.type == LM_SYNC_ERROR) {
			lm_err(err, msg.code, "%s", msg.msg);
			goto fail;
		}
		if (msg.type == LM_SYNC_READY)
			break;
		if (msg.type != LM_SYNC_HOOKS || c->hooks_reached) {
			lm_err(err, EPROTO, "unexpected message %d from container process", msg.type);
			goto fail;
		}
		/* mounts are done, pivot_root is not: the runtime's create hooks */
		c->hooks_reached = true;
		if (c->spec->hooks.n_prestart || c->spec->hooks.n_create_runtime) {
			autofree char *state = hook_state(c, opts->id, LM_STATUS_CREATING, c->pid);
			if (!state) {
				lm_err(err, ENOMEM, "hooks: out of memory");
				goto fail;
			}
			if (lm_hooks_run(&c->spec->hooks, LM_HOOK_PRESTART, state, c->bundle, err) < 0 ||
			    lm_hooks_run(&c->spec->hooks, LM_HOOK_CREATE_RUNTIME, state, c->bundle, err) < 0)
				goto fail;
		}
		if (lm_sync_send(c->sync_fd, LM_SYNC_RESUME, NULL) < 0) {
			lm_err_sys(err, "sync with container process");
			goto fail;
		}
	}

	if (opts->pid_file && lm_pid_file_write(opts->pid_file, c->pid, err) < 0)
		goto fail;
	char created[64];
	now_rfc3339(created, sizeof(created));
	if (lm_pid_start_time(c->pid) == 0) {
		lm_err(err, ESRCH, "the container process exited during create");
		goto fail;
	}
	if (write_state(c, opts->id, c->pid, created, err) < 0)
		goto fail;
	return 0;
fail:
	if (err->msg[0])
		lm_error_prefix(err, "create container \"%s\"", opts->id);
	create_rollback(c, opts->root, opts->id, c->hooks_reached);
	return -1;
}

int lm_container_create(const struct lm_create_opts *opts, struct lm_error *err)
{
	struct create_ctx c;
	if (create_common(opts, false, &c, err) < 0)
		return -1;
	/* The child now waits on the exec fifo; it is reparented when we exit. */
	create_ctx_release(&c);
	return 0;
}

static int read_state(const char *root, const char *id, int *dirfd, struct lm_state *st,
		      struct lm_error *err)
{
	if (lm_state_dir_open(root, id, dirfd, err) < 0)
		return -1;
	if (lm_state_read(*dirfd, st, err) < 0) {
		close(*dirfd);
		*dirfd = -1;
		return lm_error_prefix(err, "container \"%s\"", id);
	}
	return 0;
}

/* A pidfd for the container's init, or -1 with an error when it is gone
 * (the start time check rules out a recycled pid). */
static int open_init_pidfd(const struct lm_state *st, struct lm_error *err)
{
	int fd = lm_state_init_pidfd(st);
	if (fd < 0)
		return lm_err(err, ESRCH, "container \"%s\" is not running", st->id);
	return fd;
}

/* The config kept beside the state (for its hooks). */
static int load_config_copy(int dirfd, const struct lm_state *st, struct lm_spec **spec, struct lm_error *err)
{
	autofree char *text = NULL;
	size_t len;
	if (lm_read_file_at(dirfd, CONFIG_COPY, 16 << 20, &text, &len, err) < 0 ||
	    lm_spec_parse(text, len, st->bundle, spec, err) < 0)
		return lm_error_prefix(err, "the container's copy of its config");
	return 0;
}

/* Hooks of a container that has some (state.json says), from its config
 * copy; a copy that cannot be read is warned about: the hooks cannot run. */
static struct lm_spec *hooks_spec(int dirfd, const struct lm_state *st, const char *what)
{
	if (!st->has_hooks)
		return NULL;
	struct lm_spec *spec = NULL;
	struct lm_error err;
	if (load_config_copy(dirfd, st, &spec, &err) < 0) {
		lm_warn("container \"%s\": %s hooks not run: %s", st->id, what, err.msg);
		return NULL;
	}
	return spec;
}

static void run_hooks_warn(const struct lm_spec *spec, enum lm_hook_kind kind, const struct lm_state *st,
			   enum lm_status status, pid_t pid)
{
	const struct lm_hook *list;
	if (!spec || !lm_hooks_of(&spec->hooks, kind, &list))
		return;
	char *state = lm_hook_state_json(st->id, status, pid, st->bundle, st->annotations);
	lm_hooks_run_warn(&spec->hooks, kind, state, st->bundle, st->id);
	free(state);
}

static int destroy_container(const char *root, const struct lm_state *st, struct lm_error *err);

/* What the container process reports on the exec fifo: "0" when it goes on
 * to execve, "E" and a message when a startContainer hook failed; the fifo
 * closes with its execve (close-on-exec) or its exit.  *len 0: it exited
 * without a word. */
static int read_start_report(int fifo, int pidfd, char *buf, size_t size, size_t *len, struct lm_error *err)
{
	*len = 0;
	bool exited = false;
	for (;;) {
		struct pollfd pfd[2] = {{.fd = fifo, .events = POLLIN}, {.fd = exited ? -1 : pidfd, .events = POLLIN}};
		if (poll(pfd, 2, exited ? 0 : -1) < 0) {
			if (errno == EINTR)
				continue;
			return lm_err_sys(err, "poll");
		}
		if (pfd[1].revents & POLLIN)
			exited = true; /* take what it wrote, then stop */
		if (pfd[0].revents || exited) {
			ssize_t n = read(fifo, buf + *len, size - 1 - *len);
			if (n > 0) {
				*len += (size_t)n;
				if (*len < size - 1)
					continue;
			} else if (n < 0 && errno == EINTR) {
				continue;
			} else if (n < 0 && errno == EAGAIN && !exited) {
				continue;
			}
			break; /* EOF: every writer is gone (exec or exit), or buffer full */
		}
	}
	buf[*len] = '\0';
	return 0;
}

int lm_container_start(const char *root, const char *id, struct lm_error *err)
{
	autofd dirfd = -1;
	struct lm_state st;
	if (read_state(root, id, &dirfd, &st, err) < 0)
		return -1;
	int ret = -1;
	autofd pidfd = -1, fifo = -1;
	struct lm_spec *spec = NULL;
	flock(dirfd, LOCK_EX);
	enum lm_status status = lm_state_status(&st, dirfd);
	if (status != LM_STATUS_CREATED) {
		lm_err(err, EINVAL, "cannot start container \"%s\": it is %s, not created", id,
		       lm_status_name(status));
		goto out;
	}
	pidfd = open_init_pidfd(&st, err);
	if (pidfd < 0)
		goto out;
	fifo = openat(dirfd, EXEC_FIFO, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fifo < 0) {
		lm_err_sys(err, "start container \"%s\": open exec fifo", id);
		goto out;
	}
	char report[2 + LM_ERROR_MSG_MAX];
	size_t len;
	if (read_start_report(fifo, pidfd, report, sizeof(report), &len, err) < 0) {
		lm_error_prefix(err, "start container \"%s\"", id);
		goto out;
	}
	if (len == 0) {
		lm_err(err, ESRCH, "start container \"%s\": its process exited before start", id);
		goto out;
	}
	spec = hooks_spec(dirfd, &st, report[0] == '0' ? "poststart" : "poststop");
	if (report[0] != '0') {
		if (report[0] == 'E')
			lm_err(err, ECANCELED, "start container \"%s\": %s", id, report + 1);
		else
			lm_err(err, EPROTO, "start container \"%s\": unexpected report from its process", id);
		/* The process is gone: the container ends here (lifecycle step 12). */
		struct lm_error derr;
		if (destroy_container(root, &st, &derr) < 0)
			lm_warn("container \"%s\": %s", id, derr.msg);
		run_hooks_warn(spec, LM_HOOK_POSTSTOP, &st, LM_STATUS_STOPPED, 0);
		goto out;
	}
	/* (an exec failure after "0" is the process's own exit status, as before) */
	unlinkat(dirfd, EXEC_FIFO, 0);
	run_hooks_warn(spec, LM_HOOK_POSTSTART, &st, LM_STATUS_RUNNING, st.pid);
	ret = 0;
out:
	lm_spec_free(spec);
	lm_state_free(&st);
	return ret;
}

int lm_container_state(const char *root, const char *id, json_t **out, struct lm_error *err)
{
	autofd dirfd = -1;
	struct lm_state st;
	if (read_state(root, id, &dirfd, &st, err) < 0)
		return -1;
	enum lm_status status = lm_state_status(&st, dirfd);
	*out = lm_state_to_json(&st, status);
	/* The cgroup outlives the process until delete: it still knows whether
	 * the kernel's OOM killer ended the container (a lamina extension). */
	if (*out && status == LM_STATUS_STOPPED) {
		struct lm_cgroup cg;
		struct lm_error ignored;
		if (lm_cgroup_open(&cg, st.cgroup_path, &ignored) == 0) {
			json_object_set_new(*out, "oomKilled", json_boolean(lm_cgroup_oom_kills(&cg) > 0));
			lm_cgroup_free(&cg);
		}
	}
	lm_state_free(&st);
	return *out ? 0 : lm_err(err, ENOMEM, "state: out of memory");
}

int lm_container_list(const char *root, json_t **out, struct lm_error *err)
{
	json_t *arr = json_array();
	if (!arr)
		return lm_err(err, ENOMEM, "list: out of memory");
	autoclosedir *d = opendir(root);
	if (!d) {
		if (errno == ENOENT) {
			*out = arr;
			return 0;
		}
		json_decref(arr);
		return lm_err_sys(err, "list %s", root);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		json_t *one = NULL;
		struct lm_error ignored;
		if (lm_container_state(root, de->d_name, &one, &ignored) == 0)
			json_array_append_new(arr, one);
	}
	*out = arr;
	return 0;
}

int lm_container_kill(const char *root, const char *id, int sig, bool all, struct lm_error *err)
{
	autofd dirfd = -1;
	struct lm_state st;
	if (read_state(root, id, &dirfd, &st, err) < 0)
		return -1;
	int ret = -1;
	autofd pidfd = -1;
	if (lm_state_status(&st, dirfd) == LM_STATUS_STOPPED) {
		lm_err(err, ESRCH, "container \"%s\" is not running", id);
		goto out;
	}
	if (all) {
		struct lm_cgroup cg;
		if (lm_cgroup_open(&cg, st.cgroup_path, err) < 0)
			goto out;
		ret = lm_cgroup_kill_all(&cg, sig, err);
		lm_cgroup_free(&cg);
		goto out;
	}
	pidfd = open_init_pidfd(&st, err);
	if (pidfd < 0)
		goto out;
	if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) {
		lm_err_sys(err, "kill container \"%s\"", id);
		goto out;
	}
	ret = 0;
out:
	lm_state_free(&st);
	return ret;
}

/* Wait for a pidfd to report exit, up to timeout_ms. */
static bool wait_pidfd(int pidfd, int timeout_ms)
{
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
	int r;
	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r > 0;
}

static int destroy_container(const char *root, const struct lm_state *st, struct lm_error *err)
{
	struct lm_cgroup cg;
	int ret = 0;
	if (lm_cgroup_open(&cg, st->cgroup_path, err) == 0) {
		/* A stopped container can still have processes in its cgroup: ones
		 * that outlived init (no pid namespace), or the half-made process of
		 * a create that died. */
		struct lm_error ignored;
		lm_cgroup_kill_all(&cg, SIGKILL, &ignored);
		ret = lm_cgroup_destroy(&cg, err);
		lm_cgroup_free(&cg);
	}
	struct lm_error err2;
	if (lm_state_dir_remove(root, st->id, &err2) < 0 && ret == 0) {
		*err = err2;
		ret = -1;
	}
	return ret;
}

int lm_container_delete(const char *root, const char *id, bool force, struct lm_error *err)
{
	autofd dirfd = -1;
	struct lm_state st;
	if (read_state(root, id, &dirfd, &st, err) < 0) {
		/* As runc and crun: forcing the delete of a container that is not
		 * there succeeds.  podman deletes with --force after a failed
		 * create, which has already removed everything. */
		if (force && err->code == ENOENT) {
			lm_error_clear(err);
			return 0;
		}
		return -1;
	}
	int ret = -1;
	autofd pidfd = -1;
	flock(dirfd, LOCK_EX);
	enum lm_status status = lm_state_status(&st, dirfd);
	if (status != LM_STATUS_STOPPED) {
		if (!force) {
			lm_err(err, EBUSY, "cannot delete container \"%s\": it is %s (stop it first, or use --force)",
			       id, lm_status_name(status));
			goto out;
		}
		if (status == LM_STATUS_CREATING) {
			/* its half-made container process dies with it (PDEATHSIG) */
			autofd creator = (int)syscall(SYS_pidfd_open, st.creator, 0);
			if (creator >= 0 && lm_pid_start_time(st.creator) == st.creator_start) {
				syscall(SYS_pidfd_send_signal, creator, SIGKILL, NULL, 0);
				wait_pidfd(creator, 10000);
			}
		}
		pidfd = open_init_pidfd(&st, err);
		struct lm_cgroup cg;
		if (lm_cgroup_open(&cg, st.cgroup_path, err) == 0) {
			lm_cgroup_kill_all(&cg, SIGKILL, err);
			lm_cgroup_free(&cg);
		}
		if (pidfd >= 0) {
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
			if (!wait_pidfd(pidfd, 10000)) {
				lm_err(err, ETIMEDOUT, "delete container \"%s\": its process did not die", id);
				goto out;
			}
		}
	}
	/* read before destroying: the config copy goes with the state */
	struct lm_spec *spec = hooks_spec(dirfd, &st, "poststop");
	ret = destroy_container(root, &st, err);
	if (ret < 0)
		lm_error_prefix(err, "delete container \"%s\"", id);
	run_hooks_warn(spec, LM_HOOK_POSTSTOP, &st, LM_STATUS_STOPPED, 0);
	lm_spec_free(spec);
out:
	lm_state_free(&st);
	return ret;
}

/* --- run: the foreground container, with signals forwarded to it --- */

static volatile pid_t forward_pid;

static void forward_signal(int sig)
{
	if (forward_pid > 0)
		kill(forward_pid, sig);
}

static const int forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

int lm_container_run(const struct lm_create_opts *opts, struct lm_exit *exit_info, struct lm_error *err)
{
	struct create_ctx c;
	memset(exit_info, 0, sizeof(*exit_info));
	if (create_common(opts, true, &c, err) < 0)
		return -1;
	if (!opts->detach) {
		forward_pid = c.pid;
		struct sigaction sa = {.sa_handler = forward_signal};
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
			sigaction(forwarded_signals[i], &sa, NULL);
	}
	if (lm_sync_send(c.sync_fd, LM_SYNC_START, NULL) < 0) {
		lm_err_sys(err, "start container \"%s\"", opts->id);
		create_rollback(&c, opts->root, opts->id, true);
		return -1;
	}
	/* A failed startContainer hook or exec arrives as an ERROR message;
	 * success closes the socket (close-on-exec). */
	struct lm_sync_msg msg;
	struct lm_error sync_err;
	bool exec_failed = lm_sync_recv(c.sync_fd, &msg, &sync_err) == 0 && msg.type == LM_SYNC_ERROR;
	if (!exec_failed && c.spec->hooks.n_poststart) {
		char *state = hook_state(&c, opts->id, LM_STATUS_RUNNING, c.pid);
		lm_hooks_run_warn(&c.spec->hooks, LM_HOOK_POSTSTART, state, c.bundle, opts->id);
		free(state);
	}
	if (opts->detach) {
		if (exec_failed) {
			lm_err(err, msg.code, "start container \"%s\": %s", opts->id, msg.msg);
			create_rollback(&c, opts->root, opts->id, true);
			return -1;
		}
		create_ctx_release(&c);
		return 0;
	}

	int status = 0;
	while (waitpid(c.pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = 0;
			break;
		}
	}
	forward_pid = 0;
	c.pid = 0;
	if (WIFSIGNALED(status)) {
		exit_info->signal = WTERMSIG(status);
		exit_info->code = 128 + exit_info->signal;
	} else {
		exit_info->code = WEXITSTATUS(status);
	}
	exit_info->oom_killed = lm_cgroup_oom_kills(&c.cg) > 0;
	int ret = 0;
	if (exec_failed) {
		lm_err(err, msg.code, "%s", msg.msg);
		ret = -1;
	}
	/* The container is gone with its process: remove what is left of it. */
	struct lm_error cleanup_err;
	lm_cgroup_kill_all(&c.cg, SIGKILL, &cleanup_err);
	if (lm_cgroup_destroy(&c.cg, &cleanup_err) < 0)
		lm_warn("run %s: %s", opts->id, cleanup_err.msg);
	if (lm_state_dir_remove(opts->root, opts->id, &cleanup_err) < 0)
		lm_warn("run %s: %s", opts->id, cleanup_err.msg);
	c.state_created = false;
	run_poststop(&c, opts->id);
	create_ctx_release(&c);
	return ret;
}
