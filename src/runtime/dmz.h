/* The sealed launcher of a container's program (src/dmz/dmz.c says why).
 *
 * The parent makes one memfd per container process (create, exec) holding
 * lamina-dmz, sealed against any write, resize or further sealing; the
 * container process execs it as its last step, and it execs the program.
 */
#pragma once

#include <stdbool.h>

#include "runtime/spec.h"
#include "util/error.h"

/* How the container process reaches the launcher. */
struct lm_dmz {
	int fd;        /* the sealed memfd, or -1: the program is exec'd directly */
	bool via_proc; /* execve("/proc/self/fd/N") rather than execveat(N) */
};

/* A sealed, close-on-exec memfd holding lamina-dmz, at an fd number of at
 * least min_fd (above the fds a container is given with --preserve-fds). */
int lm_dmz_open(int min_fd, struct lm_error *err);

/* In the container process, as its last step: exec exe with argv and envp
 * through the launcher (dmz->fd < 0: directly).  Returns only on failure,
 * with errno set.  Allocates (the launcher's argv). */
void lm_dmz_exec(const struct lm_dmz *dmz, const char *exe, char *const argv[], char *const envp[]);

/* The launcher for a process of the container the spec describes: a sealed
 * memfd (lm_dmz_open, above the preserved fds) started with execveat, or,
 * when the seccomp profile does not allow execveat, with execve of its
 * /proc/self/fd path (the config mounts a procfs at /proc); with neither,
 * dmz->fd -1 and a warning. */
int lm_dmz_prepare(const struct lm_spec *spec, int preserve_fds, struct lm_dmz *dmz, struct lm_error *err);
