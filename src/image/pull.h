/* Pulling an image: manifest, config and layers from a registry into the
 * content store, each layer unpacked into its snapshot while it downloads.
 *
 * Per missing layer, the registry streams the blob into a store blob writer
 * (a temp file, hashed as it grows) and an unpack thread reads the same file
 * behind the download, decompressing and unpacking into a temp snapshot.
 * Downloads never wait for unpacking (the page cache is the buffer), and a
 * layer costs its download time plus the unpack of its last bytes.  Nothing
 * is visible before it is verified: the blob by its digest, the snapshot by
 * the diff id the image config names for it. */
#pragma once

#include <stdint.h>

#include "image/registry.h"
#include "image/store.h"
#include "util/error.h"

enum lm_pull_policy {
	LM_PULL_IF_NOT_PRESENT, /* the default */
	LM_PULL_ALWAYS,
	LM_PULL_NEWER,          /* re-check the tag; the local copy when the registry is unreachable */
	LM_PULL_NEVER,
};

int lm_pull_policy_parse(const char *s, enum lm_pull_policy *out, struct lm_error *err);

/* Progress, called on the pulling thread only, at most every 100 ms per
 * layer and once at each phase change. */
enum lm_layer_phase { LM_LAYER_WAITING, LM_LAYER_DOWNLOADING, LM_LAYER_UNPACKING, LM_LAYER_DONE,
		      LM_LAYER_CACHED };

struct lm_pull_progress {
	void (*layer)(void *ctx, size_t index, size_t n_layers, const char *digest, enum lm_layer_phase phase,
		      int64_t downloaded, int64_t size);
	/* a note for the user ("using the local copy: registry unreachable") */
	void (*note)(void *ctx, const char *msg);
	void *ctx;
};

struct lm_pull_opts {
	enum lm_pull_policy policy;
	const struct lm_platform *platform;        /* NULL: this machine */
	const char *default_registry;              /* NULL: docker.io */
	const struct lm_pull_progress *progress;   /* may be NULL */
};

/* Makes ref present in the store as the policy says and fills *out with its
 * record (lm_image_record_free).  client may be NULL with policy never. */
int lm_image_pull(struct lm_store *s, struct lm_registry_client *client, const char *ref,
		  const struct lm_pull_opts *opts, struct lm_image_record *out, struct lm_error *err);

/* For image load: every blob of manifest m (m->bytes and m->digest set)
 * already imported into the store; unpacks the missing snapshots and records
 * the image as name (a normalised reference). */
int lm_image_realize_local(struct lm_store *s, const char *name, const struct lm_manifest *m,
			   const struct lm_platform *platform, const struct lm_pull_progress *progress,
			   struct lm_error *err);

/* The diff ids of an image config (rootfs.diff_ids), checked; *out is a
 * NULL-terminated malloc'd vector. */
int lm_image_config_diff_ids(const char *config, size_t len, char ***out, size_t *n, struct lm_error *err);
