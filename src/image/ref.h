/* Image references as users write them, and their normalised form.
 *
 *   busybox                      -> docker.io/library/busybox:latest
 *   127.0.0.1:5000/app:1.2       -> 127.0.0.1:5000/app:1.2
 *   ghcr.io/org/app@sha256:...   -> digest-pinned (tag optional: name:tag@digest)
 *
 * The first path component is a registry when it contains '.' or ':' or is
 * "localhost" (docker also takes an uppercase first component for a host;
 * we do not, so "MyOrg/app" gets "must be lowercase", not a DNS error);
 * otherwise the default registry applies (docker.io unless configured), and
 * single-component names on docker.io get "library/" ("index.docker.io" is
 * docker.io too).  Names
 * (registry/path as written) are at most 255 characters; a bare 64-hex string
 * is an image id, not a name, and is refused.
 * Repository components are lowercase [a-z0-9] separated by '.', '_', '__'
 * or '-' runs, as the distribution spec says; tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
 */
#pragma once

#include <stdbool.h>

#include "util/error.h"

struct lm_image_ref {
	char *registry;    /* "docker.io", "127.0.0.1:5000" */
	char *repository;  /* "library/busybox" */
	char *tag;         /* "latest"; NULL when only a digest was given */
	char *digest;      /* "sha256:..." or NULL */
};

/* default_registry: NULL means "docker.io".  On success ref owns malloc'd
 * strings (lm_image_ref_free); on failure ref is left empty and err says
 * which rule the text breaks ("invalid reference \"FOO\": repository names
 * must be lowercase"). */
int lm_image_ref_parse(const char *text, const char *default_registry, struct lm_image_ref *ref,
		       struct lm_error *err);
void lm_image_ref_free(struct lm_image_ref *ref);
/* "registry/repository:tag", "registry/repository@digest" or with both; malloc'd. */
char *lm_image_ref_string(const struct lm_image_ref *ref);
/* "registry/repository" without tag or digest; malloc'd. */
char *lm_image_ref_name(const struct lm_image_ref *ref);
/* The short form docker prints: "busybox:latest", "org/app:1",
 * "127.0.0.1:5000/app:1.2" (docker.io and library/ dropped); malloc'd. */
char *lm_image_ref_familiar(const struct lm_image_ref *ref);
/* The host that serves registry (docker.io -> registry-1.docker.io). */
const char *lm_image_ref_endpoint_host(const struct lm_image_ref *ref);
/* True for loopback registries (localhost, 127.0.0.0/8, [::1]): plain HTTP allowed. */
bool lm_registry_is_loopback(const char *registry);
