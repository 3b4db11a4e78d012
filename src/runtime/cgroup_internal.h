/* Shared by cgroup.c (host layout, paths, lifecycle) and cgroup_limits.c
 * (validating and writing resource limits).  Nothing here is public API:
 * everything else uses runtime/cgroup.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "runtime/cgroup.h"
#include "runtime/spec.h"
#include "util/error.h"

#define MAX_V1_HIERARCHIES 32

struct hierarchy {
	char *mount;   /* where it is mounted */
	char *options; /* super options wrapped in commas: ",rw,cpu,cpuacct," */
	char dev[32];  /* "major:minor" of the superblock: one per hierarchy */
};

struct layout {
	bool ok;
	struct lm_error error; /* why detection failed, when !ok */
	enum lm_cgroup_mode mode;
	struct hierarchy v1[MAX_V1_HIERARCHIES];
	size_t n_v1;
	char *v2; /* mount point of the cgroup2 hierarchy, or NULL */
};

/* ---- cgroup.c */

bool cg_file_exists(const char *dir, const char *file);
/* cgroup files take one write() per value: the kernel parses each write as a
 * whole, so a partial write is an error, not something to continue. */
int cg_write(const char *dir, const char *file, const char *value, struct lm_error *err);
/* A one-line file, trailing whitespace stripped. */
int cg_read_line(const char *dir, const char *file, char *buf, size_t size, struct lm_error *err);
/* The directory holding `controller`'s files, false when it is not mounted. */
bool cg_controller_dir(const struct layout *l, const char *rel, const char *controller, char *buf,
		       size_t size);
/* The cgroup's directory in the v2 hierarchy, false when there is none. */
bool cg_v2_dir(const struct layout *l, const char *rel, char *buf, size_t size);
/* A path component that is ".." or holds control characters. */
bool cg_bad_component(const char *s, size_t len);
/* Enable controllers (all available ones, or only `only`) in the
 * cgroup.subtree_control of every ancestor of root+rel; failures are ignored. */
void cg_v2_delegate(const char *root, const char *rel, const char *only);

/* ---- cgroup_limits.c */

/* Reject resources that are invalid or unsupported on this layout. */
int cg_validate_resources(const struct layout *l, const struct lm_resources *r, struct lm_error *err);
/* Write the (validated) resources into the cgroup rel's existing directories:
 * v1 or v2 limits, then the unified map. */
int cg_apply_resources(const struct layout *l, const char *rel, const struct lm_resources *r, struct lm_error *err);
