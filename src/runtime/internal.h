/* Shared between the parent (create/exec) and the container-side code.
 * Nothing here is public API. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/dmz.h"
#include "runtime/seccomp.h"
#include "runtime/spec.h"
#include "util/error.h"

/* Messages on the parent<->child sync socket (SOCK_SEQPACKET). */
enum lm_sync_type {
	LM_SYNC_GO = 1,      /* parent -> child: ids mapped, cgroup joined: set up */
	LM_SYNC_READY,       /* child -> parent: set up, about to wait for start */
	LM_SYNC_START,       /* parent -> child (run): exec now */
	LM_SYNC_ERROR,       /* child -> parent: failed, see code and msg */
	LM_SYNC_HOOKS,       /* child -> parent: mounts done, before pivot_root: run the
				prestart and createRuntime hooks (sent only when there
				are create-time hooks) */
	LM_SYNC_RESUME,      /* parent -> child: hooks done, go on */
};
/* GO carries in code the pid of the container process as the host sees it
 * (the state its hooks read). */

struct lm_sync_msg {
	int32_t type;
	int32_t code;
	char msg[LM_ERROR_MSG_MAX];
};

int lm_sync_send(int fd, enum lm_sync_type type, const struct lm_error *err);
/* Wait for a message; a closed socket becomes an error. */
int lm_sync_recv(int fd, struct lm_sync_msg *msg, struct lm_error *err);
void lm_sync_fail(int fd, const struct lm_error *err) __attribute__((noreturn));

/* Everything the container process needs, prepared by the parent. */
struct lm_init_ctx {
	const struct lm_spec *spec;
	const char *id;
	int sync_fd;
	int state_dirfd;          /* -1 for run: no exec fifo */
	int console_fd;           /* connected console socket, or -1 */
	const char *cgroup_path;  /* relative cgroup path */
	enum lm_cgroup_mode cgroup_mode;
	bool new_cgroupns;        /* unshare the cgroup ns after joining the cgroup */
	bool new_userns;
	int preserve_fds;
	const char *bundle;       /* absolute bundle path, for the hooks' state */
	/* namespaces joined by path that are not the runtime's own (a pod's,
	 * a network namespace made by the caller): their sysctls may be set */
	bool joined_not_host[LM_NS__COUNT];
	const struct lm_seccomp *seccomp; /* compiled by the parent, or NULL */
	struct lm_dmz dmz;        /* the sealed launcher (runtime/dmz.h) */
};

void lm_init_child(const struct lm_init_ctx *ctx) __attribute__((noreturn));

/* mounts.c: build the rootfs in the (new) mount namespace; *rootfd gets an
 * O_PATH fd of it, for lm_rootfs_pivot (the create-time hooks run between). */
int lm_rootfs_prepare(const struct lm_init_ctx *ctx, int *rootfd, struct lm_error *err);
int lm_rootfs_pivot(int rootfd, struct lm_error *err);
/* After pivot: sysctls were written; now maskedPaths, readonlyPaths, ro root. */
int lm_rootfs_finalize(const struct lm_spec *spec, struct lm_error *err);

/* devices.c: fill a fresh /dev (devfd: the /dev directory inside the rootfs). */
int lm_dev_populate(int devfd, const struct lm_spec *spec, bool in_userns, struct lm_error *err);

/* terminal.c */
int lm_console_connect(const char *path, struct lm_error *err);
/* In the container (after pivot): new pty from /dev/pts/ptmx, master sent over
 * console_fd, slave becomes stdio and controlling terminal; /dev/console bound
 * to it when bind_console. */
int lm_terminal_setup(int console_fd, const struct lm_process *proc, bool bind_console,
		      struct lm_error *err);

/* process.c: the last steps before execve, shared by init and exec. */
int lm_process_apply_rlimits(const struct lm_process *proc, struct lm_error *err);
int lm_process_apply_oom_score(const struct lm_process *proc, struct lm_error *err);
/* Find args[0] in the process's PATH inside the current root; *path malloc'd. */
int lm_process_lookup(const struct lm_process *proc, char **path, struct lm_error *err);
/* process.apparmorProfile and process.selinuxLabel: lamina applies neither.
 * Refused when the host enforces that LSM (the container would run less
 * confined than asked); a warning when it does not (there is nothing to
 * apply, as for any runtime on such a host). */
int lm_process_check_lsm(const struct lm_process *proc, struct lm_error *err);
/* uid/gid/groups, capabilities, no_new_privs, umask. */
int lm_process_apply_identity(const struct lm_process *proc, struct lm_error *err);
/* Mark every fd above the preserved ones close-on-exec, so no host fd
 * reaches the workload; the preserved ones (3..3+n-1) are kept open. */
int lm_process_seal_fds(int preserve_fds, struct lm_error *err);
/* Unblock every signal and put ignored ones back to their default. */
void lm_process_reset_signals(void);
/* The environment for execve: the process's, plus HOME from the container's
 * /etc/passwd (or "/") when it has none.  The array lives until exec. */
int lm_process_env(const struct lm_process *proc, char ***envp, struct lm_error *err);
/* chdir to cwd and check it is inside the root. */
int lm_process_chdir(const struct lm_process *proc, struct lm_error *err);
/* Whether id is mapped by a /proc/PID/uid_map or gid_map file (true when it
 * cannot be read: then the kernel has the last word). */
bool lm_process_id_mapped(const char *map_file, uint32_t id);

/* state.c */
struct lm_state {
	char *id;
	char *bundle;
	char *rootfs;
	char *created;        /* RFC 3339 */
	char *cgroup_path;
	pid_t pid;
	unsigned long long pid_start;  /* /proc/<pid>/stat starttime, guards pid reuse */
	json_t *annotations;  /* object or NULL */
	bool has_userns;
	/* The config has poststart or poststop hooks: start and delete read
	 * them from the copy of the config beside the state. */
	bool has_hooks;
	/* While pid is 0 the container is being created by this process; if it
	 * is gone, the create died half-way and the container counts as stopped
	 * (so delete cleans it up). */
	pid_t creator;
	unsigned long long creator_start;
};

int lm_state_dir_create(const char *root, const char *id, int *dirfd, struct lm_error *err);
int lm_state_dir_open(const char *root, const char *id, int *dirfd, struct lm_error *err);
int lm_state_dir_remove(const char *root, const char *id, struct lm_error *err);
int lm_state_write(int dirfd, const struct lm_state *st, struct lm_error *err);
int lm_state_read(int dirfd, struct lm_state *st, struct lm_error *err);
void lm_state_free(struct lm_state *st);
/* starttime of pid from /proc, 0 when it is gone or a zombie. */
unsigned long long lm_pid_start_time(pid_t pid);
/* A pidfd of pid, or -1 unless it is still the process that started at
 * start (checked after opening: a pidfd keeps its process). */
int lm_pidfd_open_checked(pid_t pid, unsigned long long start);
enum lm_status lm_state_status(const struct lm_state *st, int dirfd);
/* Whether the recorded init process is still the one running (pid and start time). */
bool lm_state_init_alive(const struct lm_state *st);
/* A pidfd of the recorded init process, or -1 when it is gone. */
int lm_state_init_pidfd(const struct lm_state *st);
json_t *lm_state_to_json(const struct lm_state *st, enum lm_status status);

/* hooks.c: the OCI hooks (config.md "POSIX-platform Hooks"). */
enum lm_hook_kind {
	LM_HOOK_PRESTART,
	LM_HOOK_CREATE_RUNTIME,
	LM_HOOK_CREATE_CONTAINER,
	LM_HOOK_START_CONTAINER,
	LM_HOOK_POSTSTART,
	LM_HOOK_POSTSTOP,
};

const char *lm_hook_kind_name(enum lm_hook_kind kind);
/* The hooks of one kind: count, *list set. */
size_t lm_hooks_of(const struct lm_hooks *h, enum lm_hook_kind kind, const struct lm_hook **list);
/* The spec's annotations as a JSON object, or NULL when it has none. */
json_t *lm_spec_annotations_json(const struct lm_spec *spec);
/* The OCI state a hook reads on stdin (malloc'd text, NULL when out of memory). */
char *lm_hook_state_json(const char *id, enum lm_status status, pid_t pid, const char *bundle,
			 json_t *annotations);
/* Run the hooks of one kind in order, each with state on stdin, in cwd (NULL:
 * ours); stops at the first failure, whose error names the kind and path. */
int lm_hooks_run(const struct lm_hooks *hooks, enum lm_hook_kind kind, const char *state, const char *cwd,
		 struct lm_error *err);
/* poststart and poststop: every hook runs; a failure is a warning (state
 * NULL: out of memory, warned about too). */
void lm_hooks_run_warn(const struct lm_hooks *hooks, enum lm_hook_kind kind, const char *state,
		       const char *cwd, const char *id);
