/* Layer unpacking: one (already decompressed) tar stream into one snapshot
 * directory, in overlayfs form.
 *
 * libarchive only parses; every write is ours, relative to target_dirfd,
 * and nothing is ever written through a symlink.  What a layer may do is
 * written down here because it is the security boundary between an image
 * and the host:
 *
 *  - Names: a leading '/' is stripped (as tar does); a ".." component, an
 *    empty name, a name longer than PATH_MAX or a component longer than
 *    NAME_MAX is rejected.  A non-directory may not name the target itself
 *    ("." or "/") nor end in "/.".  Names whose directory part has a
 *    component starting with ".wh." are rejected (the prefix is reserved
 *    for whiteouts).
 *  - Parents: every directory on the way is opened without following
 *    symlinks; a parent that is a symlink (made by this layer or already in
 *    the target) is rejected: "layer entry a/b: parent a is a symlink".
 *    Missing parents are created (0755, root-owned).
 *  - An entry replaces whatever non-directory is at its name (unlinked
 *    first, never opened); an existing directory is kept for a directory
 *    entry (its metadata updated) and removed for anything else, as tar and
 *    docker do.
 *  - Symlinks are stored as they are: their target is never resolved here.
 *  - Hard links: the target (same name rules) must resolve inside the
 *    target directory without symlinks in its parents and must not be a
 *    directory.  A target that does not exist yet is retried after the last
 *    entry (some writers put the link first); still missing is an error.
 *  - Whiteouts: ".wh.NAME" in D becomes the overlayfs whiteout D/NAME (a 0/0
 *    character device).  Whiteouts hide lower layers only, so an entry this
 *    layer made at D/NAME (before or after the whiteout) is kept: a
 *    directory there is made opaque instead, a non-directory needs nothing.
 *    ".wh..wh..opq" makes D opaque ("trusted.overlay.opaque"="y", or
 *    "user.overlay.opaque" with opts.userxattr).  Other ".wh..wh.*" names
 *    (aufs bookkeeping) and everything under a top-level ".wh..wh.*"
 *    directory are ignored and counted.  A whiteout of "", "." or ".." is
 *    rejected.
 *  - Metadata: numeric uid/gid, mode including setuid/setgid/sticky
 *    (applied after chown, which clears them), mtimes (directories' at the
 *    end, after their contents), xattrs.  xattrs named trusted.overlay.* or
 *    user.overlay.* in the archive are dropped and counted: they would let
 *    a layer forge overlayfs state (redirects, metacopy, opaqueness).  An
 *    xattr the filesystem does not support (ENOTSUP), or a security.* one
 *    the kernel refuses (EPERM, EINVAL), is skipped and counted; any other
 *    failure is an error.
 *  - opts.unprivileged: chown and mknod (devices, fifos) failing with EPERM
 *    are skipped and counted, as are xattrs refused with EPERM.
 *
 * On any error unpacking stops at once and the error is returned; the target
 * is left half-filled for the caller to throw away.  Nothing outside the
 * target ever changes.  Nothing is fsynced: the caller syncs the snapshot
 * (syncfs) before publishing it.  After the tar's end-of-archive marker the
 * stream is read to its end, so a decompressor below sees (and checks) all
 * of its input and its diff_id covers every byte.  An empty stream is an
 * empty layer.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "image/decompress.h"
#include "util/error.h"

struct lm_unpack_opts {
	bool unprivileged; /* EPERM from chown/mknod/xattrs is counted, not fatal */
	bool userxattr;    /* opaque directories as user.overlay.opaque (rootless overlay) */
};

struct lm_unpack_stats {
	uint64_t files, dirs, symlinks, hardlinks, devices; /* devices: char, block and fifos */
	uint64_t whiteouts;        /* whiteout devices made, plus opaque markers */
	uint64_t bytes;            /* regular file data written */
	uint64_t skipped_chown;    /* unprivileged: chown refused */
	uint64_t skipped_devices;  /* unprivileged: mknod refused */
	uint64_t skipped_xattrs;   /* dropped or refused xattrs */
	uint64_t ignored_entries;  /* aufs ".wh..wh.*" bookkeeping */
};

/* Unpacks the tar stream into target_dirfd (a directory fd).  opts and
 * stats may be NULL. */
int lm_unpack(struct lm_reader *tar_stream, int target_dirfd, const struct lm_unpack_opts *opts,
	      struct lm_unpack_stats *stats, struct lm_error *err);
