/* linux.seccomp: checked when the config is parsed, compiled once by the
 * parent (create, exec), loaded by the container process.
 *
 * The OCI section is compiled with libseccomp into a classic BPF program in
 * the parent; the container process (a clone of the parent, so it shares the
 * program copy-on-write) only makes the seccomp(2) call, as late as it can.
 * Compiled programs are cached under the state root, keyed by the exact
 * canonical JSON plus what else decides the output (native architecture,
 * libseccomp version, kernel release): the key is stored in the cache file
 * and compared byte for byte, so a file is only ever used for the profile
 * that produced it, and a short, corrupted or foreign file is recompiled.
 */
#pragma once

#include <jansson.h>
#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime/spec.h"
#include "util/error.h"

/* A compiled filter, ready for seccomp(2). */
struct lm_seccomp {
	struct sock_filter *insns; /* malloc'd */
	size_t len;                /* instructions, 1..BPF_MAXINSNS */
	unsigned int flags;        /* SECCOMP_FILTER_FLAG_* for seccomp(2) */
	bool from_cache;           /* the cache had it: nothing was compiled */
};

/* Where the compiled filters live: <state root>/.seccomp-cache/<key hash>.bpf */
#define LM_SECCOMP_CACHE_DIR ".seccomp-cache"

/* Check a linux.seccomp object (path: its JSON path in messages, e.g.
 * "linux.seccomp").  Errors name the field: unknown action, operator,
 * architecture or flag, errnoRet out of range or on an action that has none,
 * argument index above 5.  Unknown syscall names are not errors (they are
 * skipped when compiling, as other runtimes do).  SCMP_ACT_NOTIFY is refused
 * with ENOTSUP. */
int lm_seccomp_check(json_t *seccomp, const char *path, struct lm_error *err);

/* Whether a checked linux.seccomp object (NULL: none) allows a system call
 * outright: by a rule naming it without argument conditions, or, with no
 * rule naming it, by the default action (allow or log).  Any other rule or
 * action naming it, even a conditional allow, counts as not outright. */
bool lm_seccomp_allows(json_t *seccomp, const char *syscall);

/* Check and compile a linux.seccomp object, without any cache. */
int lm_seccomp_compile(json_t *seccomp, struct lm_seccomp *out, struct lm_error *err);

/* The filter for a linux.seccomp section given as its JSON text (as the
 * spec keeps it: compact, keys sorted): from <cache_root>/.seccomp-cache when
 * it holds the same profile, else checked, compiled and stored there (a cache
 * that cannot be written is only a debug note).  cache_root NULL: no cache. */
int lm_seccomp_prepare(const char *json, const char *cache_root, struct lm_seccomp *out,
		       struct lm_error *err);

/* Whether the filter may wait until right before execve.  Loading a filter
 * needs no_new_privs or CAP_SYS_ADMIN; a process that has neither once its
 * identity is set must load it before the identity switch drops the
 * capability (runc's rule). */
bool lm_seccomp_load_late(const struct lm_process *proc);

/* In the container process: install the filter (seccomp(2), no allocation). */
int lm_seccomp_load(const struct lm_seccomp *sc, struct lm_error *err);

void lm_seccomp_free(struct lm_seccomp *sc);

/* The built-in profile of lamina's own containers: Docker's default effect
 * (kernel keyring, kexec, bpf, perf_event_open, mount/umount, pivot_root,
 * unshare/clone of new namespaces, open_by_handle_at, module loading, clock
 * and swap changes, ... denied with EPERM; everything else allowed), with the
 * syscalls a granted capability is for allowed again (CAP_SYS_ADMIN: mount,
 * namespaces, bpf, ...; CAP_SYS_TIME: clock changes; CAP_SYS_MODULE, ...).
 * caps: the capability names the process is granted, NULL-terminated (NULL:
 * none).  *out: a linux.seccomp object, owned by the caller. */
int lm_seccomp_default_profile(const char *const *caps, json_t **out, struct lm_error *err);

/* The "seccomp" object of `lamina oci features`, or NULL when out of memory. */
json_t *lm_seccomp_features(void);
