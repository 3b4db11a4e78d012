/* A container's OCI runtime config, built from its image's config and the
 * options of one run.
 *
 * The base is the runtime's own default config (lm_spec_default(): the
 * namespaces, mounts, masked paths and capability set of reference-agent.md);
 * the image and the options only change what they speak about.  The image
 * config is untrusted input: every field is type-checked with an error that
 * names it, user and group names are looked up in the IMAGE's /etc/passwd and
 * /etc/group through a directory fd with lm_open_in_root() (never by joining
 * paths, so a symlinked /etc/passwd cannot reach the host), reads are bounded
 * (LM_IMAGE_ACCOUNT_FILE_MAX: a larger file is an error, not a silent
 * truncation that would change whose groups a process gets), and numeric ids
 * must be in 0..4294967294 ((uid_t)-1 means "no change" to the kernel).
 *
 * Rules, as users of docker and the reference agent expect them:
 *  - command: entrypoint_set ? opts.entrypoint : image Entrypoint, followed by
 *    opts.cmd when given, else by the image's Cmd unless the entrypoint was
 *    replaced (a new entrypoint drops the image's Cmd, as docker does).  Empty
 *    → "no command specified".
 *  - env: the image's Env; then PATH (if absent), HOSTNAME, and TERM=xterm
 *    with a tty, each only when the image does not set it; then opts.env,
 *    replacing same-named entries in place and appending the rest.
 *  - cwd: opts.workdir (absolute), else the image's WorkingDir (a relative one
 *    is taken from "/"), else "/".
 *  - user: opts.user, else the image's User, else root; see
 *    lm_image_user_resolve() (passwd.h).
 *  - capabilities: the default set; cap_add "ALL" starts from every
 *    capability; cap_drop "ALL" empties the set; then drops are removed and
 *    adds added (an add wins over a drop of the same one).  privileged: every
 *    capability, no no_new_privs, no masked or read-only paths, sysfs and
 *    cgroupfs read-write, every device allowed in the device cgroup (host
 *    device nodes are not added: that is the caller's choice).
 *  - seccomp: lamina's default profile (runtime/seccomp.h) fitted to the
 *    bounding capabilities, unless privileged or seccomp_unconfined.
 *  - resources: memory → memory.limit; cpus → quota over a 100000 µs period;
 *    pids → pids.limit.  0 leaves each unlimited.
 *  - network: LM_RUN_NET_NONE keeps a new, empty network namespace (the
 *    default); LM_RUN_NET_HOST drops the network namespace.
 *  - mounts: bind (rbind, rprivate) and tmpfs (nosuid, nodev, mode 1777 unless
 *    given) mounts; one on the destination of a default mount (/dev/shm, ...)
 *    replaces it.
 *  - annotations: the image's Labels, then org.opencontainers.image.stopSignal
 *    and org.opencontainers.image.exposedPorts (OCI image-spec conversion).
 *  - the image's Volumes are returned as anonymous-volume requests (minus the
 *    targets opts.mounts already cover), not mounted here; StopSignal, Labels
 *    and ExposedPorts are returned too.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/passwd.h"
#include "util/error.h"

enum lm_run_mount_type { LM_RUN_MOUNT_BIND, LM_RUN_MOUNT_TMPFS };

struct lm_run_mount {
	enum lm_run_mount_type type;
	const char *source;   /* bind: absolute host path */
	const char *target;   /* absolute path in the container */
	bool readonly;
	uint64_t tmpfs_size;  /* bytes; 0: the kernel's default */
	uint32_t tmpfs_mode;  /* 0: 01777 */
};

enum lm_run_network { LM_RUN_NET_NONE, LM_RUN_NET_HOST };

/* Everything optional: NULL / 0 / false means "as the image says" or the
 * default.  String lists are NULL-terminated. */
struct lm_run_opts {
	char *const *cmd;         /* replaces the image's Cmd */
	char *const *entrypoint;  /* with entrypoint_set, replaces the image's Entrypoint */
	bool entrypoint_set;      /* (an empty or NULL entrypoint then clears it) */
	char *const *env;         /* "NAME=value" */
	const char *workdir;
	const char *user;         /* "name", "uid", "uid:gid", "name:group", "uid:group", "name:gid" */
	const char *hostname;     /* the caller passes the container id; NULL keeps the default */
	const struct lm_run_mount *mounts;
	size_t n_mounts;
	int64_t memory;           /* bytes */
	double cpus;
	int64_t pids_limit;
	bool read_only;
	bool tty;
	bool privileged;
	bool seccomp_unconfined;  /* no seccomp filter (else lamina's default profile, unless privileged) */
	char *const *cap_add;     /* "NET_ADMIN", "CAP_NET_ADMIN" or "ALL" */
	char *const *cap_drop;
	enum lm_run_network network;
	const char *rootfs;       /* root.path; NULL: "rootfs" (next to config.json) */
};

struct lm_image_run {
	json_t *config;           /* the OCI runtime config */
	int stop_signal;          /* the image's StopSignal; SIGTERM when it names none */
	json_t *labels;           /* the image's Labels: an object of strings (maybe empty) */
	char **volumes;           /* NULL-terminated anonymous volume targets */
	size_t n_volumes;
	char **exposed_ports;     /* NULL-terminated, "80/tcp" */
	size_t n_exposed_ports;
};

/* Build the config.  image_config is the image config blob (JSON).  rootfd is
 * a directory fd of the image's root filesystem (O_PATH is fine; see
 * lm_writable_image_view() when the overlay is not mounted on the host), used
 * only to read /etc/passwd and /etc/group; -1 opens opts->rootfs when it is
 * absolute; with neither, only numeric users work.  On success *out is
 * filled and must be released with lm_image_run_free(). */
int lm_oci_config_build(const char *image_config, size_t len, const struct lm_run_opts *opts, int rootfd,
			struct lm_image_run *out, struct lm_error *err);
void lm_image_run_free(struct lm_image_run *r);
