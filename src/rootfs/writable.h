/* The container's writable layer: an overlayfs upper/work pair over the
 * chain of read-only layer snapshots of its image.
 *
 * It follows the lifecycle of the seed's Windows scratch layer:
 *   create   scaffolds <layers_root>/<id>/{upper,work,merged} and records the
 *            lower chain in <layers_root>/<id>/layer.json (written first, so
 *            that whatever a crash leaves behind is recognisable by a
 *            restarted agent or the orphan sweep);
 *   mount    mounts the overlay on merged (activate + prepare), and
 *            lm_writable_mount_path() is what goes into the container's config;
 *   unmount, destroy
 *            teardown in the inverse order.  A create that fails part-way
 *            removes what it made; destroy reports the first error but still
 *            attempts every step; destroying twice is harmless.
 * The seed's "unactivated" layer is an overlay never mounted on the host: the
 * runtime mounts it itself inside the container's mount namespace with
 * lm_writable_mount_at() (or with mount(2) and lm_writable_mount_options()),
 * so nothing is left on the host when every process of the container is gone.
 *
 * Layer order: lowerdirs[0] is the TOP layer (the image's last layer, the
 * immediate parent of the writable layer), lowerdirs[n-1] the base layer —
 * the order of overlayfs' lowerdir= list and of the seed's parent chain.
 *
 * <layers_root>/<id> belongs to this module entirely: destroy removes the
 * whole directory, so keep bundles, logs and state elsewhere.  layer.json is
 * {"version": 1, "id": "<id>", "lowerdirs": ["<top>", ..., "<base>"]}; the
 * upper, work and merged paths are derived from layers_root and id, never
 * read from the file.  The layer directory is 0700; the upper's root takes
 * the owner and mode of the top layer's root, because overlayfs shows the
 * upper's root as the container's "/".
 *
 * Mount options, the same on every path: index=off (the index records the
 * lowers' file handles in the upper and refuses to mount once a snapshot was
 * re-unpacked or moved; without it a hard-linked lower file that is copied
 * up is split from its other names, as with Docker's overlay2);
 * redirect_dir=nofollow and metacopy=off (lower layers come from images:
 * redirect and metacopy xattrs in them are never followed, at the cost of
 * EXDEV on renaming a directory that comes from a lower layer, which mv and
 * friends handle by copying); xino=off (the snapshots and the upper normally
 * share one filesystem, where overlayfs already reports real inode numbers).
 *
 * Limits: 1..LM_WRITABLE_MAX_LAYERS layers (the overlayfs stack limit); paths
 * must be absolute and must not contain ',', ':' or '\\' (they would have to
 * be escaped in the mount(2) option string; snapshot paths we make never
 * contain them, so they are rejected).  With the new mount API each layer
 * goes to the kernel on its own ("lowerdir+": as an fd where the kernel takes
 * one, 6.13 and later, else as a path of at most 255 bytes, 6.8 and later),
 * so a long chain is not bound by the one page mount(2) copies; other
 * kernels fall back to mount(2), where it is (E2BIG with a clear message).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

#define LM_WRITABLE_MAX_LAYERS 500

struct lm_writable;

/* Scaffold the writable layer of container id under layers_root (made, mode
 * 0700, when missing; its parent must exist).  Every lowerdir must be an
 * existing directory.  Fails with EEXIST when the layer already exists; on
 * any failure nothing it made is left. */
int lm_writable_create(const char *layers_root, const char *id, const char *const *lowerdirs, size_t n,
		       struct lm_writable **out, struct lm_error *err);
/* Re-open an existing layer from its layer.json (after an agent restart).
 * Whether the overlay is mounted on merged is read from the mount table.
 * The lower layers need not exist any more (destroy must still work). */
int lm_writable_open(const char *layers_root, const char *id, struct lm_writable **out,
		     struct lm_error *err);

/* Mount the overlay on merged, on the host.  Mounting a mounted layer is a
 * no-op. */
int lm_writable_mount(struct lm_writable *w, struct lm_error *err);
/* The host path of the mounted overlay, or NULL when it is not mounted on the
 * host (never mounted, unmounted, or the in-namespace variant). */
const char *lm_writable_mount_path(const struct lm_writable *w);
/* Unmount from the host.  A busy mount is an error (EBUSY) and stays mounted;
 * not mounted is fine. */
int lm_writable_unmount(struct lm_writable *w, struct lm_error *err);
/* Unmount if mounted (a busy mount is detached lazily: its users keep a
 * private view until they let go, and the host is clean at once), then remove
 * work, upper, merged and the layer directory.  Returns the first error but
 * attempts every step; a directory that is still a mount point is never
 * descended into.  After a successful destroy, destroy is a no-op; after a
 * failed one it retries what is left. */
int lm_writable_destroy(struct lm_writable *w, struct lm_error *err);
/* Free the handle only: the layer stays on disk (and mounted) until destroy
 * or the sweep removes it.  NULL is fine. */
void lm_writable_free(struct lm_writable *w);

const char *lm_writable_id(const struct lm_writable *w);
const char *lm_writable_dir(const struct lm_writable *w);    /* <layers_root>/<id> */
const char *lm_writable_upper(const struct lm_writable *w);  /* <dir>/upper */
/* <dir>/merged: the mount point, on the host or inside the container's mount
 * namespace — what root.path names in either case. */
const char *lm_writable_merged_path(const struct lm_writable *w);
size_t lm_writable_n_lowers(const struct lm_writable *w);
const char *lm_writable_lower(const struct lm_writable *w, size_t i); /* 0 = top */
bool lm_writable_is_mounted(const struct lm_writable *w);

/* --- the variant never mounted on the host ---
 *
 * The runtime's container process, after unshare(CLONE_NEWNS) and making "/"
 * MS_SLAVE|MS_REC (so that nothing it mounts propagates to the host), calls
 * lm_writable_mount_at(w, lm_writable_merged_path(w)) where it would otherwise
 * bind the rootfs onto itself, then pivots into it as usual.  The mount lives
 * and dies with the container's mount namespace; upper and work stay on the
 * host and are removed by destroy once the container is gone.
 * lm_writable_mount_at() allocates nothing, so it is safe in a child cloned
 * from a multi-threaded agent. */
int lm_writable_mount_at(const struct lm_writable *w, const char *target, struct lm_error *err);
/* The mount(2) data for the same overlay, for callers that cannot call the
 * above: mount("overlay", target, "overlay", 0, *data).  *data is malloc'd.
 * E2BIG when the string does not fit in the page mount(2) copies (a long
 * layer chain: use lm_writable_mount_at, which does not have that limit). */
int lm_writable_mount_options(const struct lm_writable *w, char **data, struct lm_error *err);
/* A read-only view of the image (the lower chain, without the upper) that is
 * mounted nowhere, as a directory fd for lm_open_in_root(): for reading the
 * image's /etc/passwd and /etc/group (oci_config.h) when the overlay is not
 * mounted on the host.  One layer: that layer's directory; more: a detached
 * overlay (new mount API; ENOSYS without it).  Closing the fd releases it. */
int lm_writable_image_view(const struct lm_writable *w, int *fd, struct lm_error *err);

/* Remove every layer under layers_root whose container is gone (alive()
 * returns false), unmounting a merged mount first.  alive() must also answer
 * true for containers being created right now.  Directories with a missing
 * or broken layer.json (a crash during create) are removed too.  *removed
 * counts the layers removed; the first error is returned after trying all. */
int lm_writable_sweep(const char *layers_root, bool (*alive)(const char *id, void *ctx), void *ctx,
		      size_t *removed, struct lm_error *err);

/* Tests: make the next creates fail right after step `step` (1: layer
 * directory, 2: layer.json, 3: upper, 4: work, 5: merged); 0 turns it off. */
void lm_writable_inject_failure(int step);
/* Tests: mount only one way: 0 automatic (newest the kernel has), 1 layers
 * by fd, 2 layers by path ("lowerdir+" strings), 3 mount(2). */
void lm_writable_force_mount_way(int way);
