/* The sealed launcher of a container's program (src/dmz/dmz.c says why).
 *
 * The parent makes one memfd per container process (create, exec) holding
 * lamina-dmz, sealed against any write, resize or further sealing; the
 * container process execs it as its last step, and it execs the program.
 */
#pragma once

#include <stdbool.h>

#include "util/error.h"

/* A sealed, close-on-exec memfd holding lamina-dmz, at an fd number of at
 * least min_fd (above the fds a container is given with --preserve-fds). */
int lm_dmz_open(int min_fd, struct lm_error *err);

/* In the container process, as its last step: exec exe with argv and envp
 * through the launcher (dmz_fd < 0: directly).  Returns only on failure,
 * with errno set.  Allocates (the launcher's argv). */
void lm_dmz_exec(int dmz_fd, const char *exe, char *const argv[], char *const envp[]);

/* The launcher for a container process: *fd a sealed memfd (lm_dmz_open
 * above the preserved fds), or -1 with a warning when the container's
 * seccomp profile (JSON text, NULL: none) would not let it start. */
int lm_dmz_prepare(const char *seccomp_json, int preserve_fds, int *fd, struct lm_error *err);

/* Whether a linux.seccomp section (JSON text, NULL: none) lets the launcher
 * start: execveat must be allowed outright, by a rule without argument
 * conditions or by the default action.  A profile that denies it gets its
 * program exec'd directly, without the launcher. */
bool lm_dmz_seccomp_ok(const char *seccomp_json);
