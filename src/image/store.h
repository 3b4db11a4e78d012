/* The content store: verified blobs, unpacked layer snapshots and image
 * records under one root directory (e.g. /var/lib/lamina).
 *
 *   <root>/blobs/sha256/<hex>        verified blobs, 0644, immutable
 *   <root>/tmp/                      in-progress blobs and snapshots
 *   <root>/snapshots/<chain-hex>/fs  one unpacked layer each
 *   <root>/images.json               image records
 *   <root>/lock                      flock: images.json updates, prune
 *   <root>/gc.lock                   flock: leases (shared) vs prune (exclusive)
 *
 * Nothing becomes visible under blobs/ or snapshots/ until it is complete
 * and verified: it is built in tmp/ (same filesystem) and renamed into
 * place, so a crash or kill at any moment leaves either nothing or the
 * right thing.  Every entry in tmp/ is flocked by the process building it;
 * lm_store_gc_tmp() removes the entries whose builder is gone.
 *
 * A store handle holds directory fds only; every lock is taken on a fresh
 * open file description, so one handle may be used from several threads and
 * several processes may share a root.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/digest.h"
#include "util/error.h"

struct lm_store;

/* Opens root, creating it (0700, parents 0755) and the layout if missing. */
int lm_store_open(const char *root, struct lm_store **out, struct lm_error *err);
void lm_store_close(struct lm_store *s);
const char *lm_store_root(const struct lm_store *s);
/* Snapshot commits syncfs() the filesystem before the rename (default on),
 * so a power loss cannot leave a visible snapshot with lost file data.
 * Benchmarks and tests may turn it off.  Blob commits always fsync. */
void lm_store_set_sync(struct lm_store *s, bool on);

/* --- blobs --- */

struct lm_blob_writer;

/* A writer for one blob.  expected_digest may be NULL (the blob is stored
 * under whatever it hashes to; see lm_blob_writer_commit); expected_size -1
 * means unknown.  Exactly one of commit or abort ends the writer and frees
 * it, whatever the outcome. */
int lm_blob_writer_open(struct lm_store *s, const char *expected_digest, int64_t expected_size,
			struct lm_blob_writer **out, struct lm_error *err);
/* Hashes and appends.  More bytes than the expected size fail at once, and
 * the writer then only accepts abort (commit fails with the same error). */
int lm_blob_writer_write(struct lm_blob_writer *w, const void *buf, size_t len, struct lm_error *err);
/* Bytes written so far: where a resumed download (Range) continues. */
int64_t lm_blob_writer_offset(const struct lm_blob_writer *w);
/* The temp file (O_RDWR, owned by w), so an unpacker can read the blob
 * while it downloads: read with pread (writes never move the offset), and
 * dup it to keep reading after commit or abort; the bytes only count once
 * commit has verified them. */
int lm_blob_writer_fd(const struct lm_blob_writer *w);
/* Back to zero bytes, for a retry whose server ignored Range. */
int lm_blob_writer_reset(struct lm_blob_writer *w, struct lm_error *err);
/* Checks size and digest, fsyncs, renames into blobs/, fsyncs the directory.
 * A blob that is already there wins (ours is discarded: success).  On error
 * the temp file is removed.  Frees w.  digest_out (may be NULL) receives the
 * digest the blob is stored under. */
int lm_blob_writer_commit(struct lm_blob_writer *w, char digest_out[LM_DIGEST_SIZE], struct lm_error *err);
void lm_blob_writer_abort(struct lm_blob_writer *w);

bool lm_store_blob_exists(struct lm_store *s, const char *digest);
/* O_RDONLY|O_CLOEXEC fd of a stored blob (not re-verified: big layers are
 * hashed by whoever streams them). */
int lm_store_blob_open(struct lm_store *s, const char *digest, int *fd_out, struct lm_error *err);
/* Reads a small blob (manifest, config: at most max_size bytes) and checks
 * its digest.  A blob whose bytes do not match its name is corrupt: it is
 * removed (so the next pull fetches it again) and the error says so (EIO).
 * *out is NUL-terminated. */
int lm_store_blob_read(struct lm_store *s, const char *digest, size_t max_size, char **out, size_t *len,
		       struct lm_error *err);
/* Stores a blob held in memory; digest_out (may be NULL) gets its digest. */
int lm_store_blob_put(struct lm_store *s, const void *buf, size_t len, char digest_out[LM_DIGEST_SIZE],
		      struct lm_error *err);

/* --- snapshots --- */

/* OCI chain id: chainid(L0) = diffid(L0); chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln)).
 * parent NULL for the bottom layer.  0, or -EINVAL for a malformed digest. */
int lm_chain_id(const char *parent_chain_id, const char *diff_id, char out[LM_DIGEST_SIZE]);

struct lm_snapshot;

bool lm_store_snapshot_exists(struct lm_store *s, const char *chain_id);
/* "<root>/snapshots/<hex>/fs" (malloc'd), the overlay lowerdir; NULL on a
 * malformed chain id or no memory.  Says nothing about existence. */
char *lm_store_snapshot_path(struct lm_store *s, const char *chain_id);
/* A temp directory with an empty "fs" (0755) for the unpacker to fill. */
int lm_store_snapshot_begin(struct lm_store *s, const char *chain_id, struct lm_snapshot **out,
			    struct lm_error *err);
/* O_RDONLY|O_DIRECTORY fd of the snapshot's fs directory, owned by snap. */
int lm_store_snapshot_fs_fd(const struct lm_snapshot *snap);
/* Renames into snapshots/.  If another process committed the same chain id
 * meanwhile, ours is discarded (success).  On error the temp tree is
 * removed.  Frees snap. */
int lm_store_snapshot_commit(struct lm_snapshot *snap, struct lm_error *err);
/* Removes the temp tree (fd-relative, never following symlinks) and frees snap. */
void lm_store_snapshot_abort(struct lm_snapshot *snap);

/* --- leases --- */

/* A pull holds a lease from its first blob until its image record is put,
 * so a concurrent prune cannot remove what it fetched but has not recorded
 * yet (prune fails with EBUSY while any lease is held, in any process). */
struct lm_store_lease;
int lm_store_lease_acquire(struct lm_store *s, struct lm_store_lease **out, struct lm_error *err);
void lm_store_lease_release(struct lm_store_lease *lease);

/* --- image records --- */

struct lm_image_record {
	char *name;             /* normalised reference: "registry/repo:tag" or "registry/repo@digest" */
	char *manifest_digest;  /* the platform's image manifest */
	char *config_digest;    /* the image id */
	char **layer_digests;   /* compressed layer blobs, bottom first */
	char **diff_ids;        /* uncompressed layer digests (from the config) */
	char **chain_ids;       /* snapshot keys */
	size_t n_layers;
	int64_t size;           /* sum of the layer blob sizes */
	char *created;          /* RFC 3339 UTC, when stored; put fills it in when NULL */
	char *platform;         /* "linux/amd64", "linux/arm64/v8" */
	char *index_digest;     /* the index / manifest list the manifest was chosen from, or NULL */
};

/* Adds or replaces (same name) a record.  Checked first: well-formed
 * digests, chain ids that follow from the diff ids, and the manifest and
 * config blobs and every snapshot present in the store (layer blobs may be
 * absent: a puller may stream them straight into the unpacker). */
int lm_store_image_put(struct lm_store *s, const struct lm_image_record *rec, struct lm_error *err);
/* By name: exact, else as a reference normalised by lm_image_ref_parse
 * ("busybox" finds "docker.io/library/busybox:latest").  ENOENT:
 * "image NAME not found".  Fills *out (lm_image_record_free). */
int lm_store_image_get(struct lm_store *s, const char *name, struct lm_image_record *out,
		       struct lm_error *err);
/* By image id: a prefix of the config digest, with or without "sha256:"
 * (like docker image ids).  ENOENT when none matches, ENOTUNIQ when the
 * prefix fits two different images. */
int lm_store_image_find_by_id(struct lm_store *s, const char *prefix, struct lm_image_record *out,
			      struct lm_error *err);
/* Every record, in the order first stored; free with lm_image_record_list_free. */
int lm_store_image_list(struct lm_store *s, struct lm_image_record **out, size_t *n, struct lm_error *err);
/* Removes the record (exact or normalised name, as get); blobs and
 * snapshots stay until prune.  ENOENT when there is no such image. */
int lm_store_image_remove(struct lm_store *s, const char *name, struct lm_error *err);
/* Frees the fields (not rec itself) and zeroes them. */
void lm_image_record_free(struct lm_image_record *rec);
void lm_image_record_list_free(struct lm_image_record *recs, size_t n);

/* Removes every blob and snapshot no image record references (manifests,
 * configs, index and layer blobs and the chain-id snapshots of recorded
 * images are kept), and stale tmp entries.  EBUSY while a lease is held.
 * freed_bytes (may be NULL): apparent size of what was removed. */
int lm_store_prune(struct lm_store *s, uint64_t *freed_bytes, struct lm_error *err);
/* The same, also keeping the snapshots named by keep_chain_ids (the layers
 * of containers that exist right now). */
int lm_store_prune_keeping(struct lm_store *s, const char *const *keep_chain_ids, size_t n_keep,
			   uint64_t *freed_bytes, struct lm_error *err);
/* Removes tmp entries whose builder is gone (crashed or killed). */
int lm_store_gc_tmp(struct lm_store *s, uint64_t *freed_bytes, struct lm_error *err);
