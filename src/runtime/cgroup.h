/* Container cgroups on cgroup v1, v2 and hybrid hosts.
 *
 * The layout of the host is detected once (lm_cgroup_detect): pure v2 when
 * /sys/fs/cgroup is a cgroup2 mount; otherwise v1 controllers under
 * /sys/fs/cgroup/<controller> (with co-mounted names like "cpu,cpuacct"), plus
 * in hybrid mode a v2 hierarchy at /sys/fs/cgroup/unified.  A container's
 * cgroup is one relative path (from linux.cgroupsPath) created in every
 * hierarchy the container needs; resources are written to whichever hierarchy
 * owns the controller.  The v2 `unified` map goes to the v2 hierarchy (on
 * hybrid hosts only the files that exist there are writable; anything else is
 * a clear error).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/spec.h"
#include "util/error.h"

enum lm_cgroup_mode { LM_CGROUP_V1, LM_CGROUP_V2, LM_CGROUP_HYBRID };

struct lm_cgroup {
	enum lm_cgroup_mode mode;
	char *rel_path;  /* e.g. "/lamina/<id>" (leading slash, no trailing one) */
	/* the container's directory in every hierarchy (made or reused by
	 * create, or found by open), absolute; destroy removes these, never
	 * the ancestors, which other containers share */
	char **dirs;
	size_t n_dirs;
};

/* The host layout, detected once per process; fails when no cgroup
 * hierarchy is mounted at all. */
int lm_cgroup_detect(enum lm_cgroup_mode *mode, struct lm_error *err);
/* Same, for callers that only branch on it (LM_CGROUP_V1 if detection failed;
 * lm_cgroup_create then reports why). */
enum lm_cgroup_mode lm_cgroup_host_mode(void);
/* Whether linux.resources.devices is enforced: true with the v1 devices
 * controller; false on pure v2, where rules need an eBPF program (not
 * implemented yet: rules other than the default are skipped there). */
bool lm_cgroup_device_filter_supported(void);
/* runc's conversions to v2 scales: cpu shares 2..262144 -> cpu.weight
 * 1..10000, blkio weight 10..1000 -> io.weight 1..10000 (0 stays 0 = unset). */
uint64_t lm_cgroup_shares_to_weight(uint64_t shares);
uint64_t lm_cgroup_blkio_to_io_weight(uint16_t weight);

/* cgroupsPath from the spec, or NULL for the default "/lamina/<id>".
 * Accepts "/a/b" (absolute in each hierarchy), "a/b" (relative: same as "/a/b"),
 * and the systemd form "slice:prefix:name" (mapped to "/slice/prefix-name.scope";
 * an empty slice is system.slice, and nested slices expand as systemd does:
 * "user-1000.slice" -> "/user.slice/user-1000.slice").  Rejects "", the root,
 * ".." components and control characters. */
int lm_cgroup_path_for(const char *cgroups_path, const char *id, char **out, struct lm_error *err);

/* Create the cgroup directories in every hierarchy and apply resources.
 * On failure, removes what it created. `resources` may be NULL. */
int lm_cgroup_create(struct lm_cgroup *cg, const char *rel_path, const struct lm_resources *resources,
		     struct lm_error *err);
/* Re-open a container's cgroup from its relative path (for delete/exec/kill). */
int lm_cgroup_open(struct lm_cgroup *cg, const char *rel_path, struct lm_error *err);
/* runtime-spec "Cgroup ownership": on a pure v2 host, the cgroup's directory
 * and its delegation files (cgroup.procs, cgroup.threads,
 * cgroup.subtree_control, ... as /sys/kernel/cgroup/delegate lists them) get
 * owner uid, so that user can make and use sub-cgroups; limit files keep
 * theirs.  A no-op on v1 and hybrid hosts (no safe delegation there). */
int lm_cgroup_give_to(const struct lm_cgroup *cg, uid_t uid, struct lm_error *err);

/* Move a process into the cgroup (every hierarchy). */
int lm_cgroup_enter(const struct lm_cgroup *cg, pid_t pid, struct lm_error *err);
/* Pids currently in the cgroup (from the pids or any v1 hierarchy / v2 cgroup.procs);
 * *pids is malloc'd. */
int lm_cgroup_pids(const struct lm_cgroup *cg, pid_t **pids, size_t *n, struct lm_error *err);
/* Kill every process in the cgroup with sig (freezer used where available so
 * nothing forks away).  Used by kill --all and delete --force. */
int lm_cgroup_kill_all(const struct lm_cgroup *cg, int sig, struct lm_error *err);
/* Number of OOM kills recorded in the cgroup's memory controller (0 if unknown). */
uint64_t lm_cgroup_oom_kills(const struct lm_cgroup *cg);
/* Remove every directory (retrying briefly while tasks drain). Missing dirs are fine. */
int lm_cgroup_destroy(struct lm_cgroup *cg, struct lm_error *err);
void lm_cgroup_free(struct lm_cgroup *cg);
/* The directory holding a controller's files for this cgroup ("memory",
 * "cpu", ...; on pure v2 the one cgroup directory), malloc'd; NULL with
 * errno ENOENT when the controller is not mounted.  For stats readers. */
char *lm_cgroup_controller_dir(const struct lm_cgroup *cg, const char *controller);
