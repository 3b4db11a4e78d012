/* exec: a new process in a running container.
 *
 * The parent joins only the container's pid namespace (which affects its
 * children, not itself) and forks; the child moves itself into the
 * container's cgroup, joins the remaining namespaces in one setns(pidfd, ...)
 * call, and then takes the same last steps as the container's init
 * (process.c), the container's seccomp filter included.  Defaults come from
 * the container's own config, as with runc.
 * A failure before execve comes back over a CLOEXEC pipe, so "not found"
 * is an error of this command, not a mystery exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/container.h"
#include "runtime/dmz.h"
#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

struct ns_kind {
	const char *file;
	int flag;
};

static const struct ns_kind ns_kinds[] = {
	{"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},     {"net", CLONE_NEWNET},
	{"ipc", CLONE_NEWIPC},   {"uts", CLONE_NEWUTS},    {"cgroup", CLONE_NEWCGROUP},
	{"time", CLONE_NEWTIME}, {"pid", CLONE_NEWPID},
};

static bool same_ns(pid_t pid, const char *file)
{
	char a[64], b[64];
	struct stat sa, sb;
	snprintf(a, sizeof(a), "/proc/%d/ns/%s", pid, file);
	snprintf(b, sizeof(b), "/proc/self/ns/%s", file);
	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return true; /* not supported by this kernel: nothing to join */
	return sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

static char **strv_dup(char *const *v, size_t n)
{
	char **out = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; out && i < n; i++)
		if (!(out[i] = strdup(v[i])))
			return NULL;
	return out;
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int parse_user(const char *s, struct lm_process *proc, struct lm_error *err)
{
	char *end;
	errno = 0;
	unsigned long uid = strtoul(s, &end, 10);
	if (errno || end == s || uid > UINT32_MAX || (*end && *end != ':'))
		return lm_err(err, EINVAL, "--user %s: expected uid[:gid] as numbers", s);
	proc->uid = (uint32_t)uid;
	if (*end == ':') {
		const char *g = end + 1;
		unsigned long gid = strtoul(g, &end, 10);
		if (errno || end == g || *end || gid > UINT32_MAX)
			return lm_err(err, EINVAL, "--user %s: expected uid[:gid] as numbers", s);
		proc->gid = (uint32_t)gid;
	}
	return 0;
}

/* Apply the command-line options over the config's process (all owned by proc). */
static int override_process(struct lm_process *proc, const struct lm_exec_opts *o, struct lm_error *err)
{
	size_t na = strv_len(o->args);
	if (na == 0)
		return lm_err(err, EINVAL, "exec needs a command");
	char **args = strv_dup(o->args, na);
	if (!args)
		return lm_err(err, ENOMEM, "out of memory");
	strv_free(proc->args, proc->n_args);
	proc->args = args;
	proc->n_args = na;
	size_t ne = strv_len(o->env);
	if (ne) {
		char **env = realloc(proc->env, (proc->n_env + ne + 1) * sizeof(char *));
		if (!env)
			return lm_err(err, ENOMEM, "out of memory");
		proc->env = env;
		for (size_t i = 0; i < ne; i++) {
			const char *eq = strchr(o->env[i], '=');
			if (!eq || eq == o->env[i])
				return lm_err(err, EINVAL, "--env %s: expected KEY=VALUE", o->env[i]);
			char *copy = strdup(o->env[i]);
			if (!copy)
				return lm_err(err, ENOMEM, "out of memory");
			/* a variable given again replaces the config's value */
			size_t kl = (size_t)(eq - o->env[i]) + 1, j;
			for (j = 0; j < proc->n_env; j++)
				if (strncmp(proc->env[j], copy, kl) == 0)
					break;
			if (j < proc->n_env) {
				free(proc->env[j]);
				proc->env[j] = copy;
				continue;
			}
			env[proc->n_env] = copy;
			env[++proc->n_env] = NULL;
		}
	}
	if (o->cwd) {
		if (o->cwd[0] != '/')
			return lm_err(err, EINVAL, "--cwd %s: must be an absolute path", o->cwd);
		free(proc->cwd);
		proc->cwd = strdup(o->cwd);
	}
	if (o->user && parse_user(o->user, proc, err) < 0)
		return -1;
	proc->terminal = o->tty;
	if (o->console_rows && o->console_cols) {
		proc->console_height = o->console_rows;
		proc->console_width = o->console_cols;
	}
	for (size_t i = 0; o->cap_add && o->cap_add[i]; i++) {
		int c = lm_cap_from_name(o->cap_add[i]);
		if (c < 0)
			return lm_err(err, EINVAL, "--cap %s: unknown capability", o->cap_add[i]);
		uint64_t bit = 1ULL << c;
		proc->caps.bounding |= bit;
		proc->caps.effective |= bit;
		proc->caps.permitted |= bit;
		proc->has_caps = true;
	}
	if (o->no_new_privs_set)
		proc->no_new_privileges = o->no_new_privs;
	return 0;
}

static bool id_mapped(pid_t pid, const char *file, uint32_t id)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	return lm_process_id_mapped(path, id);
}

/* In the container's user namespace the process takes ids of that
 * namespace: unmapped ones would fail in the child with a bare EINVAL. */
static int check_ids_mapped(pid_t pid, const struct lm_process *proc, struct lm_error *err)
{
	if (!id_mapped(pid, "uid_map", proc->uid))
		return lm_err(err, EINVAL, "uid %u is not mapped in the container's user namespace", proc->uid);
	if (!id_mapped(pid, "gid_map", proc->gid))
		return lm_err(err, EINVAL, "gid %u is not mapped in the container's user namespace", proc->gid);
	for (size_t i = 0; i < proc->n_additional_gids; i++)
		if (!id_mapped(pid, "gid_map", proc->additional_gids[i]))
			return lm_err(err, EINVAL, "additional gid %u is not mapped in the container's user namespace",
				      proc->additional_gids[i]);
	return 0;
}

static void child_fail(int fd, const struct lm_error *err)
{
	size_t len = strnlen(err->msg, sizeof(err->msg));
	int code = err->code;
	if (write(fd, &code, sizeof(code)) < 0 || write(fd, err->msg, len) < 0)
		_exit(1);
	_exit(1);
}

static void exec_child(int status_fd, int pidfd, int join_flags, const struct lm_cgroup *cg,
		       const struct lm_process *proc, int console_fd, int preserve_fds,
		       const struct lm_seccomp *seccomp, const struct lm_dmz *dmz)
{
	struct lm_error err;
	lm_error_clear(&err);
	/* runtime code with host fds until execve: out of the container's reach (see init.c) */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (lm_cgroup_enter(cg, 0, &err) < 0)
		child_fail(status_fd, &err);
	if (join_flags && setns(pidfd, join_flags) < 0) {
		lm_err_sys(&err, "join the container's namespaces");
		child_fail(status_fd, &err);
	}
	if (console_fd >= 0 && lm_terminal_setup(console_fd, proc, false, &err) < 0)
		child_fail(status_fd, &err);
	autofree char *exe = NULL;
	char **envp = NULL;
	/* The container's filter, at the same point as for its init (init.c). */
	bool late = seccomp && lm_seccomp_load_late(proc);
	if (lm_process_apply_oom_score(proc, &err) < 0 || lm_process_apply_rlimits(proc, &err) < 0 ||
	    lm_process_chdir(proc, &err) < 0 || lm_process_lookup(proc, &exe, &err) < 0 ||
	    lm_process_env(proc, &envp, &err) < 0 ||
	    (seccomp && !late && lm_seccomp_load(seccomp, &err) < 0) ||
	    lm_process_apply_identity(proc, &err) < 0 || lm_process_seal_fds(preserve_fds, &err) < 0)
		child_fail(status_fd, &err);
	lm_process_reset_signals();
	if (late && lm_seccomp_load(seccomp, &err) < 0)
		child_fail(status_fd, &err);
	lm_dmz_exec(dmz, exe, proc->args, envp);
	lm_err_sys(&err, "exec %s", proc->args[0]);
	child_fail(status_fd, &err);
}

static volatile pid_t exec_forward_pid;

static void exec_forward(int sig)
{
	if (exec_forward_pid > 0)
		kill(exec_forward_pid, sig);
}

int lm_container_exec(const struct lm_exec_opts *o, struct lm_exit *exit_info, struct lm_error *err)
{
	memset(exit_info, 0, sizeof(*exit_info));
	autofd dirfd = -1;
	if (lm_state_dir_open(o->root, o->id, &dirfd, err) < 0)
		return -1;
	struct lm_state st;
	if (lm_state_read(dirfd, &st, err) < 0)
		return -1;
	int ret = -1;
	struct lm_spec *spec = NULL;
	struct lm_process own = {0};
	struct lm_process *proc = NULL;
	struct lm_cgroup cg = {0};
	struct lm_seccomp seccomp = {0};
	struct lm_dmz dmz = {.fd = -1};
	bool cg_open = false;
	autofd pidfd = -1, console_fd = -1, own_pidns = -1;
	autofree char *config = NULL;
	int pipefd[2] = {-1, -1};

	enum lm_status status = lm_state_status(&st, dirfd);
	if (status == LM_STATUS_STOPPED) {
		lm_err(err, ESRCH, "cannot exec in container \"%s\": it is stopped", o->id);
		goto out;
	}
	size_t config_len;
	if (lm_read_file_at(dirfd, "config.json", 16 << 20, &config, &config_len, err) < 0 ||
	    lm_spec_parse(config, config_len, st.bundle, &spec, err) < 0)
		goto out;
	if (o->process_json) {
		autofree char *pj = NULL;
		size_t pl;
		if (lm_read_file_at(AT_FDCWD, o->process_json, 4 << 20, &pj, &pl, err) < 0 ||
		    lm_process_parse(pj, pl, &own, err) < 0) {
			lm_error_prefix(err, "--process %s", o->process_json);
			goto out;
		}
		proc = &own;
	} else {
		if (override_process(&spec->process, o, err) < 0)
			goto out;
		proc = &spec->process;
	}
	if (lm_process_check_lsm(proc, err) < 0)
		goto out;
	/* The container's filter applies to every process in it. */
	if (spec->has_seccomp && lm_seccomp_prepare(spec->seccomp_json, o->root, &seccomp, err) < 0)
		goto out;
	if (lm_dmz_prepare(spec, o->preserve_fds, &dmz, err) < 0)
		goto out;
	if (proc->terminal && !o->console_socket) {
		lm_err(err, EINVAL, "a terminal needs --console-socket");
		goto out;
	}
	if (o->console_socket) {
		if (!proc->terminal) {
			lm_err(err, EINVAL, "--console-socket given but no terminal was asked for (--tty)");
			goto out;
		}
		console_fd = lm_console_connect(o->console_socket, err);
		if (console_fd < 0)
			goto out;
	}
	pidfd = lm_state_init_pidfd(&st);
	if (pidfd < 0) {
		lm_err(err, ESRCH, "cannot exec in container \"%s\": it is stopped", o->id);
		goto out;
	}
	if (!same_ns(st.pid, "user") && check_ids_mapped(st.pid, proc, err) < 0) {
		lm_error_prefix(err, "exec in container \"%s\"", o->id);
		goto out;
	}
	if (lm_cgroup_open(&cg, st.cgroup_path, err) < 0)
		goto out;
	cg_open = true;
	int join = 0;
	bool join_pid = false;
	for (size_t i = 0; i < sizeof(ns_kinds) / sizeof(ns_kinds[0]); i++) {
		if (same_ns(st.pid, ns_kinds[i].file))
			continue;
		if (ns_kinds[i].flag == CLONE_NEWPID)
			join_pid = true;
		else
			join |= ns_kinds[i].flag;
	}
	/* Our children go to the container's pid namespace; we stay in ours, and
	 * put the default back right after the fork. */
	if (join_pid) {
		own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
		if (own_pidns < 0 || setns(pidfd, CLONE_NEWPID) < 0) {
			lm_err_sys(err, "join the pid namespace of container \"%s\"", o->id);
			goto out;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		lm_err_sys(err, "pipe");
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		lm_err_sys(err, "fork");
		goto out;
	}
	if (pid == 0) {
		close(pipefd[0]);
		exec_child(pipefd[1], pidfd, join, &cg, proc, console_fd, o->preserve_fds,
			   spec->has_seccomp ? &seccomp : NULL, &dmz);
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	if (own_pidns >= 0 && setns(own_pidns, CLONE_NEWPID) < 0) {
		lm_err_sys(err, "return to our own pid namespace");
		goto out;
	}
	if (!o->detach) {
		exec_forward_pid = pid;
		struct sigaction sa = {.sa_handler = exec_forward};
		sigemptyset(&sa.sa_mask);
		int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			sigaction(sigs[i], &sa, NULL);
	}
	int code = 0;
	char msg[LM_ERROR_MSG_MAX] = {0};
	ssize_t n;
	do
		n = read(pipefd[0], &code, sizeof(code));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(code)) {
		ssize_t ml = read(pipefd[0], msg, sizeof(msg) - 1);
		msg[ml > 0 ? ml : 0] = '\0';
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		lm_err(err, code, "%s", msg);
		goto out;
	}
	if (o->pid_file) {
		if (lm_pid_file_write(o->pid_file, pid, err) < 0)
			goto out;
	}
	if (o->detach) {
		ret = 0;
		goto out;
	}
	int wstatus = 0;
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	exec_forward_pid = 0;
	if (WIFSIGNALED(wstatus)) {
		exit_info->signal = WTERMSIG(wstatus);
		exit_info->code = 128 + exit_info->signal;
	} else {
		exit_info->code = WEXITSTATUS(wstatus);
	}
	ret = 0;
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (cg_open)
		lm_cgroup_free(&cg);
	lm_process_free(&own);
	lm_seccomp_free(&seccomp);
	if (dmz.fd >= 0)
		close(dmz.fd);
	lm_spec_free(spec);
	lm_state_free(&st);
	return ret;
}
