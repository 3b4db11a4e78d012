/* OCI distribution client: manifests, indexes and blobs over libcurl.
 *
 * A client holds configuration and the per-registry state learned on the way
 * (which auth scheme a registry asked for, bearer tokens per scope, whether an
 * insecure registry turned out to speak plain HTTP).  That state sits behind
 * a mutex, so one client may serve several threads at once; every call runs
 * its own curl transfers on the calling thread and calls the sinks there.
 *
 * Nothing is trusted until hashed: manifests are held in memory (at most
 * LM_MANIFEST_MAX bytes) and checked against Docker-Content-Digest and the
 * reference's digest; blobs stream through a sink while being hashed, and a
 * blob whose size or digest is wrong is reported to the sink as discarded.
 *
 * Where a registry is reached: its mirrors first (in the order configured),
 * then the registry itself.  Loopback registries speak plain HTTP unless
 * listed in tls_loopback; insecure registries try HTTPS without certificate
 * checks and fall back to plain HTTP; every other registry is HTTPS with
 * verification.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/digest.h"
#include "image/ref.h"
#include "util/error.h"

#define LM_MANIFEST_MAX (4u << 20)

#define LM_MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define LM_MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define LM_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define LM_MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define LM_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define LM_MEDIA_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

struct lm_registry_mirror {
	const char *registry;  /* "docker.io", "127.0.0.1:5000" */
	/* "host[:port]", or with "http://" / "https://" to force the scheme. */
	const char *endpoint;
};

struct lm_registry_opts {
	/* Credentials file; NULL: $REGISTRY_AUTH_FILE, else ~/.docker/config.json. */
	const char *auth_file;
	/* NULL-terminated lists of registry names ("host[:port]"). */
	const char *const *insecure;      /* HTTPS unverified, then plain HTTP */
	const char *const *tls_loopback;  /* loopback registries that serve HTTPS */
	const struct lm_registry_mirror *mirrors;
	size_t n_mirrors;
	const char *user_agent;  /* NULL: "lamina/<version>" */
	int retries;             /* extra attempts per transfer; 0: 3; negative: none */
	int parallel;            /* concurrent blob transfers; 0: 4 */
	unsigned retry_delay_ms; /* first backoff delay, doubled each time; 0: 250 */
	/* Fetch layers that carry urls (foreign / non-distributable) from those
	 * urls.  Off by default: such a layer is refused with a clear error. */
	bool allow_foreign_urls;
};

struct lm_registry_client;

int lm_registry_client_new(const struct lm_registry_opts *opts, struct lm_registry_client **out,
			   struct lm_error *err);
void lm_registry_client_free(struct lm_registry_client *c);

/* --- manifests --------------------------------------------------------- */

/* NULL fields take this machine's value ("linux", "amd64"/"arm64", variant
 * "v8" on arm64, "v7" on 32-bit arm). */
struct lm_platform {
	const char *os;
	const char *arch;
	const char *variant;
};

struct lm_descriptor {
	char *media_type;
	char digest[LM_DIGEST_SIZE];
	int64_t size;
	char **urls;  /* NULL-terminated, or NULL */
};

struct lm_manifest {
	char *bytes;                    /* the manifest exactly as served (NUL-terminated) */
	size_t len;
	char digest[LM_DIGEST_SIZE];    /* sha256 of bytes */
	char *media_type;               /* LM_MEDIA_OCI_MANIFEST or LM_MEDIA_DOCKER_MANIFEST */
	char index_digest[LM_DIGEST_SIZE]; /* the index/list it was selected from, or "" */
	char *index_bytes;              /* that index as served (verified), or NULL */
	size_t index_len;
	struct lm_descriptor config;
	struct lm_descriptor *layers;
	size_t n_layers;
};

void lm_descriptor_free(struct lm_descriptor *d);
void lm_manifest_free(struct lm_manifest *m);

/* GET the manifest of ref; an index or manifest list is resolved to the
 * platform's manifest (platform NULL: this machine).  The result owns its
 * memory (lm_manifest_free). */
int lm_registry_get_manifest(struct lm_registry_client *c, const struct lm_image_ref *ref,
			     const struct lm_platform *platform, struct lm_manifest *out,
			     struct lm_error *err);
/* The digest the registry reports for ref right now (HEAD; GET and hash when
 * the registry sends no Docker-Content-Digest).  For a multi-platform image
 * this is the index digest: compare it with index_digest when that is set,
 * else with digest. */
int lm_registry_head_manifest(struct lm_registry_client *c, const struct lm_image_ref *ref,
			      char digest[LM_DIGEST_SIZE], struct lm_error *err);

/* Offline pieces of the above, for OCI layouts and archives too. */
void lm_platform_default(struct lm_platform *p);
/* Parse an image manifest (OCI or Docker schema2).  media_type may be NULL
 * (then the body's mediaType decides).  out->bytes/digest stay unset. */
int lm_manifest_parse(const char *bytes, size_t len, const char *media_type,
		      struct lm_manifest *out, struct lm_error *err);
/* Pick the platform's manifest from an index or manifest list. */
int lm_index_select(const char *bytes, size_t len, const struct lm_platform *platform,
		    struct lm_descriptor *out, struct lm_error *err);

/* --- blobs ------------------------------------------------------------- */

/* Where a blob's bytes go.  Every call happens on the thread that called
 * fetch; a sink sees, in order: write* (reset write*)*, then commit once the
 * size and digest are verified, and discard whenever the blob does not end
 * committed (any failure, including an error from commit itself). */
struct lm_blob_sink {
	void *ctx;
	/* The next bytes of the blob, in order.  An error aborts this blob. */
	int (*write)(void *ctx, const void *buf, size_t len, struct lm_error *err);
	/* The registry ignored a resume request: forget everything written so far,
	 * the blob starts again from byte 0.  Required. */
	int (*reset)(void *ctx, struct lm_error *err);
	/* Optional: the blob is complete and verified; an error fails the blob. */
	int (*commit)(void *ctx, struct lm_error *err);
	/* Optional: the blob failed; drop what was written. */
	void (*discard)(void *ctx);
};

/* Stream one blob (desc: digest and size; urls as described in opts). */
int lm_registry_fetch_blob(struct lm_registry_client *c, const struct lm_image_ref *ref,
			   const struct lm_descriptor *desc, const struct lm_blob_sink *sink,
			   struct lm_error *err);
/* Stream n blobs at once, at most opts.parallel transfers in flight, each to
 * its own sink as data arrives.  The first failure stops the others (their
 * sinks are told to discard); blobs already committed stay committed. */
int lm_registry_fetch_blobs(struct lm_registry_client *c, const struct lm_image_ref *ref,
			    const struct lm_descriptor *descs, size_t n,
			    const struct lm_blob_sink *sinks, struct lm_error *err);

/* --- login ------------------------------------------------------------- */

/* Check user/password against registry ("host[:port]") at /v2/, through the
 * token flow when the registry asks for one.  Error "authentication to X
 * failed: ..." when they are refused.  Save them with lm_auth_save (auth.h). */
int lm_auth_verify(struct lm_registry_client *c, const char *registry, const char *user,
		   const char *password, struct lm_error *err);
