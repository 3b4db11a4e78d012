/* The container process, from clone to execve.
 *
 * Runs in the child of create/run with the parsed config inherited from the
 * parent.  Order matters: namespaces joined before any mount; the cgroup
 * namespace made only after the parent put us in our cgroup; mounts before
 * pivot_root; sysctls before /proc/sys goes read-only; the identity switch
 * last, and the exec fifo opened with the final identity so a stopped
 * "created" container holds nothing it would not hold running.  Every error
 * before READY goes back to the parent, which rolls the container back.
 * The hooks that run in the container's namespaces run here: createContainer
 * right before pivot_root (after the runtime ran prestart and createRuntime
 * on our HOOKS message), startContainer after start, right before execve.
 * The seccomp filter comes after all of that, right before execve (or, when
 * the process ends up with neither no_new_privs nor CAP_SYS_ADMIN, right
 * before the identity switch, since loading needs one of them).  The last
 * execve is of the sealed launcher (runtime/dmz.h), which execs the program:
 * the container never gets to run the runtime's host binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/dmz.h"
#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

static const int ns_flag[LM_NS__COUNT] = {
	[LM_NS_USER] = CLONE_NEWUSER, [LM_NS_MOUNT] = CLONE_NEWNS,   [LM_NS_PID] = CLONE_NEWPID,
	[LM_NS_NET] = CLONE_NEWNET,   [LM_NS_IPC] = CLONE_NEWIPC,    [LM_NS_UTS] = CLONE_NEWUTS,
	[LM_NS_CGROUP] = CLONE_NEWCGROUP, [LM_NS_TIME] = CLONE_NEWTIME,
};

static const char *ns_name[LM_NS__COUNT] = {
	[LM_NS_USER] = "user", [LM_NS_MOUNT] = "mount", [LM_NS_PID] = "pid", [LM_NS_NET] = "network",
	[LM_NS_IPC] = "ipc",   [LM_NS_UTS] = "uts",     [LM_NS_CGROUP] = "cgroup", [LM_NS_TIME] = "time",
};

static int join_namespaces(const struct lm_spec *spec, struct lm_error *err)
{
	/* enum order puts user first: later joins need its privileges */
	for (int type = 0; type < LM_NS__COUNT; type++) {
		const struct lm_namespace *ns = lm_spec_namespace(spec, (enum lm_ns_type)type);
		if (!ns || !ns->path || type == LM_NS_PID)
			continue;
		autofd fd = open(ns->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return lm_err_sys(err, "open %s namespace %s", ns_name[type], ns->path);
		if (setns(fd, ns_flag[type]) < 0)
			return lm_err_sys(err, "join %s namespace %s", ns_name[type], ns->path);
	}
	return 0;
}

/* Only sysctls that live in the container's own namespaces may be set: new
 * ones, or ones joined by path that are not the runtime's (the host's), as
 * runc allows (podman joins the network namespace it made). */
static int sysctl_allowed(const struct lm_init_ctx *ctx, const char *key)
{
	static const char *const ipc_keys[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
					       "kernel.sem", "kernel.shmall", "kernel.shmmax",
					       "kernel.shmmni", "kernel.shm_rmid_forced"};
	enum lm_ns_type type;
	bool ipc_key = strncmp(key, "fs.mqueue.", 10) == 0;
	for (size_t i = 0; i < sizeof(ipc_keys) / sizeof(ipc_keys[0]); i++)
		ipc_key = ipc_key || strcmp(key, ipc_keys[i]) == 0;
	if (ipc_key)
		type = LM_NS_IPC;
	else if (strncmp(key, "net.", 4) == 0)
		type = LM_NS_NET;
	else if (strcmp(key, "kernel.hostname") == 0 || strcmp(key, "kernel.domainname") == 0)
		type = LM_NS_UTS;
	else
		return 0;
	const struct lm_namespace *ns = lm_spec_namespace(ctx->spec, type);
	return ns && (!ns->path || ctx->joined_not_host[type]);
}

static int apply_sysctls(const struct lm_init_ctx *ctx, struct lm_error *err)
{
	const struct lm_spec *spec = ctx->spec;
	for (size_t i = 0; i < spec->n_sysctls; i++) {
		const char *key = spec->sysctls[i].key, *value = spec->sysctls[i].value;
		if (!sysctl_allowed(ctx, key))
			return lm_err(err, EPERM,
				      "sysctl %s is not allowed: it is not in a namespace of this container", key);
		if (strpbrk(value, "\n\r\0") || strstr(key, "..") || strchr(key, '/'))
			return lm_err(err, EINVAL, "sysctl %s: invalid key or value", key);
		char path[512];
		int n = snprintf(path, sizeof(path), "/proc/sys/%s", key);
		if (n < 0 || (size_t)n >= sizeof(path))
			return lm_err(err, ENAMETOOLONG, "sysctl %s: name too long", key);
		for (char *p = path + 10; *p; p++)
			if (*p == '.')
				*p = '/';
		autofd fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return lm_err_sys(err, "sysctl %s", key);
		/* Only the kernel may take it, never a file that stands in /proc. */
		if (!lm_fd_on_procfs(fd))
			return lm_err(err, EPERM, "sysctl %s: /proc/sys is not the kernel's (is proc mounted on /proc?)",
				      key);
		if (write(fd, value, strlen(value)) < 0)
			return lm_err_sys(err, "sysctl %s=%s", key, value);
	}
	return 0;
}

/* The create-time hooks, between the mounts and pivot_root: the runtime's
 * own (prestart, createRuntime) while we wait, then createContainer here, in
 * the container's namespaces, its path still resolved in the host's view of
 * the filesystem (we have not pivoted yet). */
static int create_hooks(const struct lm_init_ctx *ctx, pid_t host_pid, struct lm_error *err)
{
	const struct lm_hooks *h = &ctx->spec->hooks;
	if (!h->n_prestart && !h->n_create_runtime && !h->n_create_container)
		return 0;
	if (lm_sync_send(ctx->sync_fd, LM_SYNC_HOOKS, NULL) < 0)
		return lm_err_sys(err, "sync with the runtime");
	struct lm_sync_msg msg;
	if (lm_sync_recv(ctx->sync_fd, &msg, err) < 0)
		return -1;
	if (msg.type != LM_SYNC_RESUME)
		return lm_err(err, EPROTO, "unexpected message %d from the runtime", msg.type);
	if (!h->n_create_container)
		return 0;
	json_t *ann = lm_spec_annotations_json(ctx->spec);
	autofree char *state = lm_hook_state_json(ctx->id, LM_STATUS_CREATING, host_pid, ctx->bundle, ann);
	json_decref(ann);
	if (!state)
		return lm_err(err, ENOMEM, "createContainer hooks: out of memory");
	return lm_hooks_run(h, LM_HOOK_CREATE_CONTAINER, state, ctx->bundle, err);
}

static int setup(const struct lm_init_ctx *ctx, pid_t host_pid, char **exe, char ***envp, struct lm_error *err)
{
	const struct lm_spec *spec = ctx->spec;
	if (ctx->new_userns) {
		/* The parent has written our maps: become root of the new namespace. */
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			return lm_err_sys(err, "become root in the user namespace (is container uid/gid 0 mapped?)");
	}
	if (join_namespaces(spec, err) < 0)
		return -1;
	if (ctx->new_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
		return lm_err_sys(err, "create cgroup namespace");
	umask(0);
	if (spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
		return lm_err_sys(err, "set hostname %s", spec->hostname);
	if (spec->domainname && setdomainname(spec->domainname, strlen(spec->domainname)) < 0)
		return lm_err_sys(err, "set domainname %s", spec->domainname);
	autofd rootfd = -1;
	if (lm_rootfs_prepare(ctx, &rootfd, err) < 0 || create_hooks(ctx, host_pid, err) < 0 ||
	    lm_rootfs_pivot(rootfd, err) < 0)
		return -1;
	if (apply_sysctls(ctx, err) < 0)
		return -1;
	if (ctx->console_fd >= 0) {
		if (lm_terminal_setup(ctx->console_fd, &spec->process, true, err) < 0)
			return -1;
	} else if (setsid() < 0) {
		return lm_err_sys(err, "setsid");
	}
	if (lm_rootfs_finalize(spec, err) < 0)
		return -1;
	if (lm_process_apply_oom_score(&spec->process, err) < 0 ||
	    lm_process_apply_rlimits(&spec->process, err) < 0)
		return -1;
	if (lm_process_chdir(&spec->process, err) < 0)
		return -1;
	if (lm_process_lookup(&spec->process, exe, err) < 0 || lm_process_env(&spec->process, envp, err) < 0)
		return -1;
	/* Without no_new_privs the filter needs CAP_SYS_ADMIN, which the
	 * identity switch may drop: then it goes in now (see lm_init_child). */
	if (ctx->seccomp && !lm_seccomp_load_late(&spec->process) && lm_seccomp_load(ctx->seccomp, err) < 0)
		return -1;
	if (lm_process_apply_identity(&spec->process, err) < 0)
		return -1;
	return lm_process_seal_fds(ctx->preserve_fds, err);
}

/* startContainer hooks: in the container, after start, before execve. */
static int start_hooks(const struct lm_init_ctx *ctx, const char *state, struct lm_error *err)
{
	if (!ctx->spec->hooks.n_start_container)
		return 0;
	return lm_hooks_run(&ctx->spec->hooks, LM_HOOK_START_CONTAINER, state, NULL, err);
}

void lm_init_child(const struct lm_init_ctx *ctx)
{
	struct lm_error err;
	lm_error_clear(&err);
	int fd = ctx->sync_fd;
	/* If create dies during setup, so do we: nobody would clean up after us. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Until execve this process is the runtime: its exe is the host binary
	 * and it holds host fds (the state directory).  Not dumpable, its /proc
	 * files are out of reach of the container's other processes (they would
	 * need CAP_SYS_PTRACE); execve makes the workload dumpable again. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	lm_process_reset_signals();

	struct lm_sync_msg msg;
	if (lm_sync_recv(fd, &msg, &err) < 0 || msg.type != LM_SYNC_GO)
		_exit(1);
	pid_t host_pid = (pid_t)msg.code;
	autofree char *exe = NULL;
	char **envp = NULL;
	if (setup(ctx, host_pid, &exe, &envp, &err) < 0)
		lm_sync_fail(fd, &err);
	char *start_state = NULL;
	if (ctx->spec->hooks.n_start_container) {
		json_t *ann = lm_spec_annotations_json(ctx->spec);
		start_state = lm_hook_state_json(ctx->id, LM_STATUS_CREATED, host_pid, ctx->bundle, ann);
		json_decref(ann);
		if (!start_state) {
			lm_err(&err, ENOMEM, "startContainer hooks: out of memory");
			lm_sync_fail(fd, &err);
		}
	}

	prctl(PR_SET_PDEATHSIG, 0);
	if (lm_sync_send(fd, LM_SYNC_READY, NULL) < 0)
		_exit(1);
	int fifo = -1;
	if (ctx->state_dirfd >= 0) {
		/* create: block until `start` opens the other end.  It reads until
		 * the fifo closes (our execve, close-on-exec): "0" is a start, "E"
		 * and a message a failed startContainer hook. */
		fifo = openat(ctx->state_dirfd, "exec.fifo", O_WRONLY | O_CLOEXEC);
		if (fifo < 0)
			_exit(1);
		close(ctx->state_dirfd);
		if (start_hooks(ctx, start_state, &err) < 0) {
			char report[1 + LM_ERROR_MSG_MAX];
			int n = snprintf(report, sizeof(report), "E%s", err.msg);
			ssize_t ignored = write(fifo, report, (size_t)n < sizeof(report) ? (size_t)n : sizeof(report) - 1);
			(void)ignored;
			_exit(1);
		}
		if (write(fifo, "0", 1) != 1)
			_exit(1);
	} else {
		if (lm_sync_recv(fd, &msg, &err) < 0 || msg.type != LM_SYNC_START)
			_exit(1);
		if (start_hooks(ctx, start_state, &err) < 0)
			lm_sync_fail(fd, &err);
	}
	/* The filter goes in last, so a profile only has to allow execve, not
	 * the runtime's own steps.  The parent compiled it and checked what the
	 * kernel could refuse (flags, size), so this is not expected to fail. */
	if (ctx->seccomp && lm_seccomp_load_late(&ctx->spec->process) && lm_seccomp_load(ctx->seccomp, &err) < 0) {
		if (ctx->state_dirfd < 0)
			lm_sync_send(fd, LM_SYNC_ERROR, &err);
		dprintf(STDERR_FILENO, "lamina: %s\n", err.msg);
		_exit(1);
	}
	lm_dmz_exec(&ctx->dmz, exe, ctx->spec->process.args, envp);
	int code = errno == ENOENT ? 127 : 126;
	lm_err_sys(&err, "exec %s", ctx->spec->process.args[0]);
	if (ctx->state_dirfd < 0)
		lm_sync_send(fd, LM_SYNC_ERROR, &err);
	dprintf(STDERR_FILENO, "lamina: %s\n", err.msg);
	_exit(code);
}
