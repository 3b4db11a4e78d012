/* The OCI runtime lifecycle: create, start, state, kill, delete, run, exec.
 *
 * A container's state lives in <root>/<id>/ (state.json, the exec fifo while
 * it is "created", a copy of its config for exec).  `create` parses the config
 * once, clones the container process straight into its new namespaces (no
 * re-exec of this binary), lets it build its rootfs and stop right before
 * execve on the exec fifo; `start` opens the fifo and the process execs.
 * `run` skips the fifo and releases the process through the sync socket.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

#define LM_DEFAULT_STATE_ROOT "/run/lamina"

enum lm_status { LM_STATUS_CREATING, LM_STATUS_CREATED, LM_STATUS_RUNNING, LM_STATUS_STOPPED };
const char *lm_status_name(enum lm_status st);

struct lm_create_opts {
	const char *root;            /* state root, e.g. /run/lamina */
	const char *id;
	const char *bundle;          /* NULL: current directory */
	const char *pid_file;        /* NULL: none */
	const char *console_socket;  /* NULL: none */
	bool detach;                 /* run only */
	int preserve_fds;            /* fds 3..3+N-1 stay open in the container */
};

/* How a foreground container ended. */
struct lm_exit {
	int code;       /* exit code, or 128+signal */
	int signal;     /* 0 unless killed by a signal */
	bool oom_killed;
};

int lm_container_create(const struct lm_create_opts *opts, struct lm_error *err);
/* create + start (+ wait unless detach); the container is deleted when it ends. */
int lm_container_run(const struct lm_create_opts *opts, struct lm_exit *exit_info, struct lm_error *err);
int lm_container_start(const char *root, const char *id, struct lm_error *err);
/* The OCI state object, as printed by `state`. */
int lm_container_state(const char *root, const char *id, json_t **out, struct lm_error *err);
int lm_container_kill(const char *root, const char *id, int sig, bool all, struct lm_error *err);
/* force: kill a container that still runs; one that does not exist is not an error. */
int lm_container_delete(const char *root, const char *id, bool force, struct lm_error *err);
/* Array of state objects for every container under root. */
int lm_container_list(const char *root, json_t **out, struct lm_error *err);

struct lm_exec_opts {
	const char *root;
	const char *id;
	const char *process_json;    /* path to a process.json, or NULL */
	char *const *args;           /* used when process_json is NULL */
	char *const *env;            /* extra K=V, appended */
	const char *cwd;
	const char *user;            /* "uid[:gid]" */
	bool tty;
	uint16_t console_rows, console_cols;  /* the terminal's first size; 0: the kernel's */
	const char *console_socket;
	bool detach;
	const char *pid_file;
	char *const *cap_add;        /* extra capability names */
	bool no_new_privs_set, no_new_privs;
	int preserve_fds;
};

int lm_container_exec(const struct lm_exec_opts *opts, struct lm_exit *exit_info, struct lm_error *err);

/* Write a pid file atomically (relative paths are taken from the cwd). */
int lm_pid_file_write(const char *path, pid_t pid, struct lm_error *err);

/* Container ids: 1..1024 chars of [A-Za-z0-9_.+-], not "." or "..". */
int lm_id_validate(const char *id, struct lm_error *err);
