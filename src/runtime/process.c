/* The last steps before execve, shared by the container's init and exec:
 * limits, working directory, executable lookup, and the identity switch
 * (groups, uid/gid, capability sets, no_new_privs, umask).
 *
 * Capabilities are set with the raw capset/prctl interface: the bounding set
 * is trimmed while we still hold CAP_SETPCAP, PR_SET_KEEPCAPS carries the
 * permitted set across setresuid, then the five sets are installed exactly as
 * the config says.  The inheritable set is whatever the config says, which is
 * empty unless asked for. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

static const char *rlimit_name(int resource)
{
	static const char *const names[] = {
		[RLIMIT_CPU] = "RLIMIT_CPU",       [RLIMIT_FSIZE] = "RLIMIT_FSIZE",
		[RLIMIT_DATA] = "RLIMIT_DATA",     [RLIMIT_STACK] = "RLIMIT_STACK",
		[RLIMIT_CORE] = "RLIMIT_CORE",     [RLIMIT_RSS] = "RLIMIT_RSS",
		[RLIMIT_NPROC] = "RLIMIT_NPROC",   [RLIMIT_NOFILE] = "RLIMIT_NOFILE",
		[RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK", [RLIMIT_AS] = "RLIMIT_AS",
		[RLIMIT_LOCKS] = "RLIMIT_LOCKS",   [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
		[RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",
		[RLIMIT_RTPRIO] = "RLIMIT_RTPRIO", [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
	};
	if (resource >= 0 && (size_t)resource < sizeof(names) / sizeof(names[0]) && names[resource])
		return names[resource];
	return "RLIMIT_?";
}

static void fmt_limit(char *buf, size_t len, rlim_t v)
{
	if (v == RLIM_INFINITY)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

int lm_process_apply_rlimits(const struct lm_process *proc, struct lm_error *err)
{
	for (size_t i = 0; i < proc->n_rlimits; i++) {
		const struct lm_rlimit *rl = &proc->rlimits[i];
		struct rlimit cur, want = {.rlim_cur = (rlim_t)rl->soft, .rlim_max = (rlim_t)rl->hard};
		if (getrlimit(rl->resource, &cur) == 0 && cur.rlim_cur == want.rlim_cur &&
		    cur.rlim_max == want.rlim_max)
			continue; /* already so: nothing to ask of the kernel */
		if (setrlimit(rl->resource, &want) == 0)
			continue;
		if (errno == EPERM && want.rlim_max > cur.rlim_max) {
			char have[32], asked[32];
			fmt_limit(have, sizeof(have), cur.rlim_max);
			fmt_limit(asked, sizeof(asked), want.rlim_max);
			return lm_err(err, EPERM,
				      "%s: cannot raise the hard limit to %s above the current %s "
				      "(this host does not allow raising limits)",
				      rlimit_name(rl->resource), asked, have);
		}
		return lm_err_sys(err, "set %s", rlimit_name(rl->resource));
	}
	return 0;
}

int lm_process_apply_oom_score(const struct lm_process *proc, struct lm_error *err)
{
	if (!proc->has_oom_score_adj)
		return 0;
	char v[16];
	int n = snprintf(v, sizeof(v), "%d", proc->oom_score_adj);
	autofd fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && !lm_fd_on_procfs(fd))
		return lm_err(err, EPERM, "set oomScoreAdj %d: /proc/self/oom_score_adj is not the kernel's "
			      "(is proc mounted on /proc?)", proc->oom_score_adj);
	if (fd < 0 || write(fd, v, (size_t)n) != n)
		return lm_err_sys(err, "set oomScoreAdj %d", proc->oom_score_adj);
	return 0;
}

int lm_process_chdir(const struct lm_process *proc, struct lm_error *err)
{
	const char *cwd = proc->cwd ? proc->cwd : "/";
	if (chdir(cwd) < 0)
		return lm_err_sys(err, "cwd %s", cwd);
	/* After pivot_root every path resolves inside the container; a cwd that
	 * is not reachable from our root (a leaked host directory) shows up as
	 * "(unreachable)" or fails here. */
	char real[PATH_MAX];
	if (!getcwd(real, sizeof(real)) || real[0] != '/')
		return lm_err(err, EACCES, "cwd %s is outside the container", cwd);
	return 0;
}

static const char *env_get(const struct lm_process *proc, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < proc->n_env; i++)
		if (strncmp(proc->env[i], name, nl) == 0 && proc->env[i][nl] == '=')
			return proc->env[i] + nl + 1;
	return NULL;
}

static bool executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int lm_process_lookup(const struct lm_process *proc, char **path, struct lm_error *err)
{
	const char *arg0 = proc->args[0];
	if (strchr(arg0, '/')) {
		if (!executable(arg0)) {
			struct stat st;
			if (stat(arg0, &st) < 0)
				return lm_err_sys(err, "exec %s", arg0);
			return lm_err(err, EACCES, "exec %s: not an executable file", arg0);
		}
		*path = strdup(arg0);
		return *path ? 0 : lm_err(err, ENOMEM, "out of memory");
	}
	const char *search = env_get(proc, "PATH");
	if (!search)
		search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	const char *p = search;
	while (*p) {
		const char *end = strchrnul(p, ':');
		char cand[PATH_MAX];
		int n = snprintf(cand, sizeof(cand), "%.*s/%s", (int)(end - p), p, arg0);
		if (end > p && n > 0 && (size_t)n < sizeof(cand) && executable(cand)) {
			*path = strdup(cand);
			return *path ? 0 : lm_err(err, ENOMEM, "out of memory");
		}
		p = *end ? end + 1 : end;
	}
	return lm_err(err, ENOENT, "exec \"%s\": executable file not found in $PATH", arg0);
}

static int last_cap(void)
{
	static int cached = -1;
	if (cached >= 0)
		return cached;
	char buf[16] = {0};
	autofd fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0)
		cached = atoi(buf);
	else
		cached = CAP_LAST_CAP;
	return cached;
}

static int set_caps(const struct lm_capset *caps, struct lm_error *err)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(caps->effective >> (32 * i));
		data[i].permitted = (uint32_t)(caps->permitted >> (32 * i));
		data[i].inheritable = (uint32_t)(caps->inheritable >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return lm_err_sys(err, "set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return lm_err_sys(err, "clear ambient capabilities");
	/* The kernel only allows an ambient capability that is also permitted and
	 * inheritable; with the (safe) empty inheritable set that configs carry
	 * since CVE-2022-29162, an ambient entry is skipped, as runc does. */
	uint64_t ambient = caps->ambient & caps->permitted & caps->inheritable;
	for (int c = 0; c <= last_cap(); c++) {
		if (!(ambient & (1ULL << c)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			return lm_err_sys(err, "raise ambient capability %s", lm_cap_name(c));
	}
	return 0;
}

int lm_process_apply_identity(const struct lm_process *proc, struct lm_error *err)
{
	if (proc->has_caps) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return lm_err_sys(err, "keep capabilities");
		for (int c = 0; c <= last_cap(); c++) {
			if (proc->caps.bounding & (1ULL << c))
				continue;
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				return lm_err_sys(err, "drop %s from the bounding set", lm_cap_name(c));
		}
	}
	gid_t *groups = NULL;
	size_t ng = proc->n_additional_gids;
	if (ng) {
		groups = calloc(ng, sizeof(gid_t));
		if (!groups)
			return lm_err(err, ENOMEM, "out of memory");
		for (size_t i = 0; i < ng; i++)
			groups[i] = proc->additional_gids[i];
	}
	int r = setgroups(ng, groups);
	free(groups);
	if (r < 0 && !(errno == EPERM && ng == 0))
		return lm_err_sys(err, "set supplementary groups");
	if (setresgid(proc->gid, proc->gid, proc->gid) < 0)
		return lm_err_sys(err, "set gid %u", proc->gid);
	if (setresuid(proc->uid, proc->uid, proc->uid) < 0)
		return lm_err_sys(err, "set uid %u", proc->uid);
	if (proc->has_caps) {
		if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			return lm_err_sys(err, "reset keep capabilities");
		if (set_caps(&proc->caps, err) < 0)
			return -1;
	}
	if (proc->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return lm_err_sys(err, "set no_new_privs");
	umask(proc->has_umask ? proc->umask : 022);
	return 0;
}

void lm_process_reset_signals(void)
{
	/* The caller (a monitor using signalfd, a CLI ignoring SIGPIPE) may have
	 * signals blocked or ignored; both survive execve and would change how
	 * the workload behaves. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
			continue;
		if (sa.sa_handler == SIG_IGN) {
			sa.sa_handler = SIG_DFL;
			sigaction(sig, &sa, NULL);
		}
	}
}

int lm_process_seal_fds(int preserve_fds, struct lm_error *err)
{
	unsigned first = 3 + (unsigned)(preserve_fds > 0 ? preserve_fds : 0);
	if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return lm_err_sys(err, "mark fds close-on-exec");
	for (unsigned fd = 3; fd < first; fd++)
		if (fcntl((int)fd, F_SETFD, 0) < 0)
			return lm_err_sys(err, "preserve fd %u", fd);
	return 0;
}

/* Whether the host runs an LSM: its name in securityfs's list, or (without
 * securityfs) the module's own sign in sysfs. */
static bool lsm_enabled(const char *name, const char *sign)
{
	autofree char *list = NULL;
	struct lm_error ignored;
	if (lm_read_file_at(AT_FDCWD, "/sys/kernel/security/lsm", 4096, &list, NULL, &ignored) == 0) {
		for (char *save = NULL, *tok = strtok_r(list, ",\n", &save); tok; tok = strtok_r(NULL, ",\n", &save))
			if (!strcmp(tok, name))
				return true;
		return false;
	}
	return access(sign, F_OK) == 0;
}

int lm_process_check_lsm(const struct lm_process *proc, struct lm_error *err)
{
	const char *aa = proc->apparmor_profile;
	if (aa && *aa && strcmp(aa, "unconfined")) {
		if (lsm_enabled("apparmor", "/sys/module/apparmor/parameters/enabled"))
			return lm_err(err, ENOTSUP,
				      "process.apparmorProfile \"%s\": lamina does not apply AppArmor profiles, "
				      "and this host enforces AppArmor", aa);
		lm_warn("process.apparmorProfile \"%s\" ignored: AppArmor is not enabled on this host", aa);
	}
	const char *se = proc->selinux_label;
	if (se && *se) {
		if (lsm_enabled("selinux", "/sys/fs/selinux/enforce"))
			return lm_err(err, ENOTSUP,
				      "process.selinuxLabel \"%s\": lamina does not apply SELinux labels, "
				      "and this host runs SELinux", se);
		lm_warn("process.selinuxLabel \"%s\" ignored: SELinux is not enabled on this host", se);
	}
	return 0;
}

/* The home directory of uid in the container's /etc/passwd, or "/". */
static char *passwd_home(uint32_t uid)
{
	struct lm_error err;
	autofd root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	/* the image's file: a FIFO (or a device) there must not stall the runtime */
	autofd fd = root < 0 ? -1 : lm_open_in_root(root, "/etc/passwd", O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, &err);
	autofree char *text = NULL;
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || lm_read_fd(fd, 1 << 20, &text, NULL, &err) < 0)
		return strdup("/");
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* name:password:uid:gid:gecos:home:shell */
		char *field[7] = {0};
		int n = 0;
		for (char *p = line; n < 7; n++) {
			field[n] = p;
			char *colon = strchr(p, ':');
			if (!colon)
				break;
			*colon = '\0';
			p = colon + 1;
		}
		if (n < 5 || !field[2] || !field[5])
			continue;
		char *end;
		unsigned long u = strtoul(field[2], &end, 10);
		if (*end || end == field[2] || u != uid)
			continue;
		return strdup(field[5][0] == '/' ? field[5] : "/");
	}
	return strdup("/");
}

int lm_process_env(const struct lm_process *proc, char ***envp, struct lm_error *err)
{
	if (env_get(proc, "HOME")) {
		*envp = proc->env;
		return 0;
	}
	autofree char *home = passwd_home(proc->uid);
	char **env = calloc(proc->n_env + 2, sizeof(char *));
	if (!env || !home || asprintf(&env[proc->n_env], "HOME=%s", home) < 0) {
		free(env);
		return lm_err(err, ENOMEM, "out of memory");
	}
	memcpy(env, proc->env, proc->n_env * sizeof(char *));
	*envp = env;
	return 0;
}

bool lm_process_id_mapped(const char *map_file, uint32_t id)
{
	autofclose *f = fopen(map_file, "re");
	if (!f)
		return true;
	unsigned long inside, outside, count;
	while (fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3)
		if (id >= inside && id - inside < count)
			return true;
	return false;
}
