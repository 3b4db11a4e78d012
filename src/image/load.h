/* Image load: images from an OCI image layout directory, an OCI archive (a
 * tar of such a layout, plain, gzip or zstd) or a `docker save` tarball,
 * into the content store, without a registry.
 *
 * The kind is detected, not declared: a directory is read in place; a file
 * is read once, as a stream, and every blob in it that could belong to an
 * image ("blobs/sha256/<hex>", "<hex>.json", "<hex>.tar", "<dir>/layer.tar")
 * goes straight into the store through a verifying blob writer, while the
 * small metadata files (oci-layout, index.json, manifest.json; at most
 * 4 MiB each) are kept in memory.  Then an "oci-layout" file makes it an OCI
 * layout; otherwise "manifest.json" makes it a docker save archive.
 *
 * Every blob is verified: a blob named by its digest must hash to it (and
 * have the size its descriptor says); a docker save layer (an uncompressed
 * tar) must hash to the diff id its config lists.  For docker save images an
 * OCI manifest is synthesised (config + layers of media type
 * application/vnd.oci.image.layer.v1.tar, or +gzip / +zstd when the file is
 * compressed) and stored like any manifest.
 *
 * Names given to the images:
 *   - OCI: a manifest's "io.containerd.image.name" annotation (what docker
 *     25+ writes), else its "org.opencontainers.image.ref.name":
 *       - a full reference (it has '/', ':' or '@'): that, normalised
 *         ("busybox:1" -> docker.io/library/busybox:1);
 *       - a bare tag T: REPO:T, where REPO is the repository of opts->name,
 *         else "localhost/<base>" (<base>: the last component of path,
 *         lowercased, without .tar, .tar.gz, .tgz or .tar.zst); when
 *         opts->name carries its own tag or digest it is used as is.
 *   - docker save: every entry of RepoTags, normalised.
 *   - Neither: opts->name (":latest" when it has no tag), else
 *     "localhost/<base>@<manifest digest>".
 * An index.json entry that is an index (a multi-platform image) is resolved
 * to opts->platform (NULL: this machine); so are several index.json entries
 * that carry platforms under the same name.  Entries of other media types
 * (artifacts) are skipped.
 *
 * All or nothing: every image of the input is imported and checked before
 * the first record is written; if unpacking one fails, the records this
 * load already wrote are restored to what they were.  Blobs already stored
 * stay until `lamina image prune`; a store lease keeps prune from removing
 * them while the load runs.
 */
#pragma once

#include <stddef.h>

#include "image/pull.h"
#include "image/registry.h"
#include "image/store.h"
#include "util/error.h"

struct lm_load_opts {
	const char *name;                        /* --name REPO[:TAG], or NULL */
	const struct lm_platform *platform;      /* NULL: this machine */
	const struct lm_pull_progress *progress; /* layer unpacking; may be NULL */
};

/* Loads every image in path (opts may be NULL).  On success *records holds
 * the record of each name written, in input order (free with
 * lm_image_record_list_free).  Errors start with "load PATH: ". */
int lm_image_load(struct lm_store *s, const char *path, const struct lm_load_opts *opts,
		  struct lm_image_record **records, size_t *n, struct lm_error *err);
