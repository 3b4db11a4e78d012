/* Users and groups as a container image knows them: "user[:group]" resolved
 * against the IMAGE's /etc/passwd and /etc/group, read through a directory fd
 * of its root filesystem (never by joining paths, so a symlinked /etc/passwd
 * cannot reach the host).  Reads are bounded (LM_IMAGE_ACCOUNT_FILE_MAX: a
 * larger file is an error, not a silent truncation that would change whose
 * groups a process gets), and numeric ids must be in 0..4294967294.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Bound on reading the image's /etc/passwd and /etc/group. */
#define LM_IMAGE_ACCOUNT_FILE_MAX ((size_t)1 << 20)

struct lm_user {
	uint32_t uid, gid;
	uint32_t *additional_gids;
	size_t n_additional_gids;
};

/* Resolve a user as the image knows it.  NULL or "" is root.  A name must be
 * in /etc/passwd; a numeric uid need not be (its gid is then 0).  Without a
 * group part, the gid is the user's primary group and additional_gids the
 * groups of /etc/group that list the user by name; with one, exactly that
 * group.  Malformed lines are skipped.  rootfd < 0: no files (numeric only). */
int lm_image_user_resolve(int rootfd, const char *user, struct lm_user *out, struct lm_error *err);
void lm_user_free(struct lm_user *u);
