/* The OCI runtime configuration (config.json), parsed once into plain C.
 *
 * The parser validates types and values up front so that the container's
 * child process never meets a malformed field: after lm_spec_load() succeeds,
 * the rest of the runtime trusts this struct.  Strings are owned by the spec
 * and freed by lm_spec_free().  Unknown fields are ignored (the OCI spec asks
 * runtimes to tolerate them); wrong types and invalid values are errors that
 * name the JSON path ("process.user.uid: expected an unsigned integer").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Namespace kinds, in the order they are joined/created. */
enum lm_ns_type {
	LM_NS_USER,
	LM_NS_MOUNT,
	LM_NS_PID,
	LM_NS_NET,
	LM_NS_IPC,
	LM_NS_UTS,
	LM_NS_CGROUP,
	LM_NS_TIME,
	LM_NS__COUNT,
};

struct lm_namespace {
	enum lm_ns_type type;
	char *path; /* NULL: create a new one; else join the one at this path */
};

struct lm_id_mapping {
	uint32_t container_id;
	uint32_t host_id;
	uint32_t size;
};

struct lm_mount {
	char *destination; /* absolute path inside the container */
	char *type;        /* may be NULL (bind mounts) */
	char *source;      /* may be NULL */
	unsigned long flags;         /* MS_* flags set from options */
	unsigned long clear_flags;   /* MS_* flags explicitly cleared (e.g. "rw", "suid") */
	unsigned long propagation;   /* MS_SHARED|MS_SLAVE|MS_PRIVATE|MS_UNBINDABLE (+MS_REC), 0 = none */
	bool bind;                   /* "bind" or "rbind" given */
	bool recursive;              /* "rbind" */
	char *data;        /* comma-joined options that are not flags (e.g. "mode=755,size=65536k"), or NULL */
};

struct lm_device {
	char *path;   /* absolute path inside the container */
	char type;    /* 'c', 'b', 'u' (=c), or 'p' */
	int64_t major, minor;
	uint32_t file_mode; /* permission bits; 0666 when absent */
	bool has_file_mode;
	uint32_t uid, gid;
	bool has_uid, has_gid;
};

struct lm_device_rule { /* linux.resources.devices[] */
	bool allow;
	char type;             /* 'a', 'c', 'b' */
	int64_t major, minor;  /* -1 = wildcard */
	char *access;          /* "rwm" subset; NULL = "rwm" */
};

/* linux.resources.blockIO per-device entries */
enum lm_throttle { LM_THROTTLE_READ_BPS, LM_THROTTLE_WRITE_BPS, LM_THROTTLE_READ_IOPS,
		   LM_THROTTLE_WRITE_IOPS, LM_THROTTLE__COUNT };

struct lm_blkio_device {
	int64_t major, minor;
	uint64_t value; /* a rate (throttle*), or a weight (weightDevice) */
};

struct lm_rlimit {
	int resource;  /* RLIMIT_* */
	uint64_t soft, hard;
};

struct lm_capset {
	/* bitmasks indexed by CAP_* numbers (0..63) */
	uint64_t bounding, effective, inheritable, permitted, ambient;
	bool has_bounding, has_effective, has_inheritable, has_permitted, has_ambient;
};

struct lm_process {
	bool terminal;
	uint16_t console_width, console_height; /* 0 when not given */
	uint32_t uid, gid;
	uint32_t *additional_gids;
	size_t n_additional_gids;
	uint32_t umask;
	bool has_umask;
	char **args;  /* NULL-terminated, at least one element */
	size_t n_args;
	char **env;   /* NULL-terminated (may be empty) */
	size_t n_env;
	char *cwd;    /* absolute */
	struct lm_capset caps;
	bool has_caps;
	struct lm_rlimit *rlimits;
	size_t n_rlimits;
	bool no_new_privileges;
	int oom_score_adj;
	bool has_oom_score_adj;
	char *apparmor_profile;  /* not applied: see lm_process_check_lsm */
	char *selinux_label;     /* not applied: see lm_process_check_lsm */
};

/* One OCI hook (run by runtime/hooks.c). */
struct lm_hook {
	char *path;
	char **args;
	char **env;
	int timeout; /* seconds, 0 = none */
};

struct lm_hooks {
	struct lm_hook *prestart, *create_runtime, *create_container, *start_container,
		*poststart, *poststop;
	size_t n_prestart, n_create_runtime, n_create_container, n_start_container,
		n_poststart, n_poststop;
};

struct lm_sysctl {
	char *key;
	char *value;
};

struct lm_resources {
	/* memory (bytes; -1 = unlimited; has_* false = leave untouched) */
	int64_t mem_limit, mem_reservation, mem_swap;
	bool has_mem_limit, has_mem_reservation, has_mem_swap;
	int64_t mem_swappiness; bool has_mem_swappiness;
	bool disable_oom_killer;
	/* cpu */
	uint64_t cpu_shares; bool has_cpu_shares;
	int64_t cpu_quota; bool has_cpu_quota;
	uint64_t cpu_period; bool has_cpu_period;
	int64_t cpu_rt_runtime; bool has_cpu_rt_runtime;
	uint64_t cpu_rt_period; bool has_cpu_rt_period;
	char *cpuset_cpus, *cpuset_mems;
	/* pids */
	int64_t pids_limit; bool has_pids_limit; /* <= 0 means unlimited */
	/* blkio */
	uint16_t blkio_weight; bool has_blkio_weight;
	struct lm_blkio_device *throttle[LM_THROTTLE__COUNT];
	size_t n_throttle[LM_THROTTLE__COUNT];
	struct lm_blkio_device *weight_devices;
	size_t n_weight_devices;
	/* devices */
	struct lm_device_rule *devices;
	size_t n_devices;
	/* cgroup v2 "unified" key/value pairs */
	struct lm_sysctl *unified;
	size_t n_unified;
};

struct lm_spec {
	char *oci_version;
	char *root_path;     /* absolute (resolved against the bundle) */
	bool root_readonly;
	char *hostname;
	char *domainname;
	struct lm_process process;
	struct lm_mount *mounts;
	size_t n_mounts;
	struct lm_hooks hooks;
	/* annotations, as a JSON object serialised back to text for the state output */
	char **annotation_keys, **annotation_values;
	size_t n_annotations;

	/* linux */
	struct lm_namespace *namespaces;
	size_t n_namespaces;
	struct lm_id_mapping *uid_mappings, *gid_mappings;
	size_t n_uid_mappings, n_gid_mappings;
	struct lm_device *devices;
	size_t n_devices;
	char *cgroups_path;  /* NULL: runtime picks one */
	struct lm_resources resources;
	bool has_resources;
	char *rootfs_propagation; /* NULL, or shared|slave|private|unbindable|rshared|rslave|rprivate|runbindable */
	unsigned long rootfs_propagation_flags;
	char **masked_paths;
	size_t n_masked_paths;
	char **readonly_paths;
	size_t n_readonly_paths;
	struct lm_sysctl *sysctls;
	size_t n_sysctls;
	char *mount_label;
	bool has_seccomp;    /* linux.seccomp present (checked by lm_seccomp_check) */
	char *seccomp_json;  /* the section as compact JSON with sorted keys (runtime/seccomp.h) */
	/* the section does not allow these outright (lm_seccomp_allows): how
	 * the sealed launcher is started (runtime/dmz.h) */
	bool seccomp_blocks_execveat, seccomp_blocks_execve;
	char *personality_domain; /* linux.personality.domain or NULL */
};

/* The overlay mount options (lowerdir=...,upperdir=...,workdir=...) of a
 * container's writable layer: with this annotation the runtime mounts the
 * overlay on root.path inside the container's mount namespace, never on the
 * host (rootfs/writable.h). */
#define LM_ANNOTATION_ROOTFS_OVERLAY "org.lamina.rootfs.overlay"

/* Parse <bundle>/config.json.  bundle must be an absolute path. */
int lm_spec_load(const char *bundle, struct lm_spec **out, struct lm_error *err);
/* Parse from a JSON text; root.path is resolved against bundle. */
int lm_spec_parse(const char *json, size_t len, const char *bundle, struct lm_spec **out,
		  struct lm_error *err);
/* Parse a process.json (for exec --process) into *proc. */
int lm_process_parse(const char *json, size_t len, struct lm_process *proc, struct lm_error *err);
void lm_process_free(struct lm_process *proc);
void lm_spec_free(struct lm_spec *spec);

/* The rule for mounts at or inside the container's /proc (CVE-2019-16884:
 * the runtime writes sysctls and oomScoreAdj there, and the masks go there,
 * so a volume there would receive them instead of the kernel).  rel is the
 * destination relative to /proc: "" for /proc itself, "sys/kernel/x" inside
 * it.  At /proc only a fresh proc mount or a bind of a procfs; inside it only
 * a bind of something on procfs, or anything on the few files lxcfs
 * emulates (/proc/meminfo, ...).  source_on_procfs says whether a bind's
 * source is on procfs (config parsing, which looks at no file, passes true and
 * leaves that part to mount time).  NULL when the mount is allowed, else why
 * not, for an error message. */
const char *lm_spec_proc_mount_refusal(const char *rel, const struct lm_mount *m, bool source_on_procfs);

/* The namespace of a given type in the spec, or NULL. */
const struct lm_namespace *lm_spec_namespace(const struct lm_spec *spec, enum lm_ns_type type);

/* The default config.json (`lamina oci spec`), or NULL when out of memory. */
struct json_t;
struct json_t *lm_spec_default(void);

/* Helpers also used by the command line. */
int lm_signal_parse(const char *s, int *sig); /* "KILL", "SIGKILL", "9" -> 9; -1 if unknown */
int lm_cap_from_name(const char *name);       /* "CAP_SYS_ADMIN" -> 21; -1 if unknown */
const char *lm_cap_name(int cap);
int lm_rlimit_from_name(const char *name);    /* "RLIMIT_NOFILE" -> RLIMIT_NOFILE; -1 if unknown */
