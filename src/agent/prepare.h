/* A container's filesystem and config from an image: the image pulled as
 * the policy says, a writable layer over its snapshots, and the OCI config
 * written to <bundle>/config.json.  Shared by standalone `lamina run` and the
 * agent, so a container is made the same way by both.
 *
 * All or nothing: on failure the writable layer and the bundle directory are
 * removed again (the image stays; it is a cache).
 */
#pragma once

#include "agent/run_spec.h"
#include "image/oci_config.h"
#include "image/pull.h"
#include "image/store.h"
#include "rootfs/writable.h"

struct lm_prepared {
	struct lm_writable *layer;
	struct lm_image_record image;
	struct lm_image_run run;   /* config, stop signal, labels */
	char *bundle;
};

/* client may be NULL when the policy is never (the agent resolves local
 * images only; the CLI pulls first).  containers_dir: where writable layers
 * live (<root>/containers); bundle: a directory to create for config.json. */
int lm_container_prepare(struct lm_store *store, struct lm_registry_client *client,
			 const struct lm_pull_opts *pull, const struct lm_run_spec *spec, const char *id,
			 const char *containers_dir, const char *bundle, struct lm_prepared *out,
			 struct lm_error *err);
/* Remove the writable layer and the bundle (first error reported, every step tried). */
int lm_prepared_destroy(struct lm_prepared *p, struct lm_error *err);
/* Free memory only (for a container that lives on). */
void lm_prepared_free(struct lm_prepared *p);
