/* Unit tests for image/load.c, against a real store in a temp directory.
 *
 * Inputs are built in the test: a layout is a list of files (name, bytes,
 * or a symlink target) written either as a directory or as a tar archive
 * (libarchive's writer, in memory), optionally gzipped by `gzip -n`.
 * Layers are small tars made the same way; configs, manifests and indexes
 * are written with jansson and named by their sha256.  Every error case
 * checks the message and that no image record was written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/digest.h"
#include "image/load.h"
#include "image/registry.h"
#include "image/store.h"
#include "util/fs.h"
#include "testutil.h"

#define MEDIA_TAR "application/vnd.oci.image.layer.v1.tar"
#define MEDIA_TGZ "application/vnd.oci.image.layer.v1.tar+gzip"

/* ---------------------------------------------------------------- fixture */

static struct {
	char tmp[64];  /* /tmp/lm-load-XXXXXX */
	char root[128];
	struct lm_store *store;
} F;

static int setup(void **state)
{
	(void)state;
	if (tu_mkdtemp(F.tmp, sizeof(F.tmp), "load") < 0)
		return -1;
	snprintf(F.root, sizeof(F.root), "%s/store", F.tmp);
	struct lm_error err;
	if (lm_store_open(F.root, &F.store, &err) < 0)
		return -1;
	lm_store_set_sync(F.store, false);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct lm_error err;
	lm_store_close(F.store);
	int dirfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	lm_rm_rf_at(dirfd, F.tmp + 5, &err);
	close(dirfd);
	return 0;
}

static size_t n_images(void)
{
	struct lm_image_record *recs = NULL;
	size_t n = 0;
	struct lm_error err;
	assert_int_equal(lm_store_image_list(F.store, &recs, &n, &err), 0);
	lm_image_record_list_free(recs, n);
	return n;
}

/* ------------------------------------------------------------------ bytes */

static la_ssize_t to_buf(struct archive *a, void *ctx, const void *data, size_t len)
{
	(void)a;
	tu_buf_add(ctx, data, len);
	return (la_ssize_t)len;
}

static struct tu_buf read_path(const char *path)
{
	struct tu_buf b = {0};
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		tu_buf_add(&b, chunk, n);
	fclose(f);
	return b;
}

static void write_path(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* gzip -n: no name or time in the header, so the bytes are reproducible */
static struct tu_buf gzip_buf(const struct tu_buf *in)
{
	char src[160], dst[160], cmd[400];
	FMT(src, "%s/gzip-in", F.tmp);
	FMT(dst, "%s/gzip-out", F.tmp);
	write_path(src, in->data, in->len);
	FMT(cmd, "gzip -n -c %s > %s", src, dst);
	assert_int_equal(system(cmd), 0);
	struct tu_buf out = read_path(dst);
	unlink(src);
	unlink(dst);
	return out;
}

/* ---------------------------------------------------------------- layouts */

struct file {
	char *name;
	struct tu_buf data;
	char *symlink;
};

struct files {
	struct file v[64];
	size_t n;
};

static struct file *files_slot(struct files *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strcmp(fs->v[i].name, name) == 0) {
			free(fs->v[i].data.data);
			free(fs->v[i].symlink);
			fs->v[i].data = (struct tu_buf){0};
			fs->v[i].symlink = NULL;
			return &fs->v[i];
		}
	assert_true(fs->n < 64);
	struct file *f = &fs->v[fs->n++];
	memset(f, 0, sizeof(*f));
	f->name = strdup(name);
	return f;
}

static void files_add(struct files *fs, const char *name, const void *data, size_t len)
{
	tu_buf_add(&files_slot(fs, name)->data, data, len);
}

static void files_symlink(struct files *fs, const char *name, const char *target)
{
	files_slot(fs, name)->symlink = strdup(target);
}

static void files_remove(struct files *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strcmp(fs->v[i].name, name) == 0) {
			free(fs->v[i].name);
			free(fs->v[i].data.data);
			free(fs->v[i].symlink);
			fs->v[i] = fs->v[--fs->n];
			return;
		}
	fail_msg("no file %s", name);
}

static struct tu_buf *files_get(struct files *fs, const char *name)
{
	size_t i = 0;
	while (i < fs->n && strcmp(fs->v[i].name, name) != 0)
		i++;
	assert_true(i < fs->n);
	return &fs->v[i].data;
}

static void files_free(struct files *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->v[i].name);
		free(fs->v[i].data.data);
		free(fs->v[i].symlink);
	}
	fs->n = 0;
}

/* The files as a tar (pax), in order. */
static struct tu_buf tar_files(const struct files *fs, const char *prefix)
{
	struct tu_buf out = {0};
	struct archive *a = archive_write_new();
	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open(a, &out, NULL, to_buf, NULL), ARCHIVE_OK);
	for (size_t i = 0; i < fs->n; i++) {
		const struct file *f = &fs->v[i];
		struct archive_entry *e = archive_entry_new();
		char name[512];
		FMT(name, "%s%s", prefix, f->name);
		archive_entry_set_pathname(e, name);
		archive_entry_set_mtime(e, 1500000000, 0);
		size_t size = f->symlink ? 0 : f->data.len;
		if (f->symlink) {
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, f->symlink);
			archive_entry_set_perm(e, 0777);
		} else {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
		}
		archive_entry_set_size(e, (la_int64_t)size);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (size)
			assert_int_equal(archive_write_data(a, f->data.data, size), (la_ssize_t)size);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return out;
}

/* A layer: a tar of (name, text) pairs, NULL-terminated. */
static struct tu_buf make_tar(const char *const *pairs)
{
	struct files fs = {0};
	for (size_t i = 0; pairs[i]; i += 2)
		files_add(&fs, pairs[i], pairs[i + 1], strlen(pairs[i + 1]));
	struct tu_buf out = tar_files(&fs, "");
	files_free(&fs);
	return out;
}

/* The blob's name in a layout; digest receives its digest. */
static void add_blob(struct files *fs, const struct tu_buf *b, char digest[LM_DIGEST_SIZE])
{
	lm_sha256_buffer(b->data, b->len, digest);
	char name[128];
	FMT(name, "blobs/sha256/%s", lm_digest_hex(digest));
	files_add(fs, name, b->data, b->len);
}

static struct tu_buf json_buf(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(s);
	json_decref(j);
	return (struct tu_buf){.data = s, .len = strlen(s)};
}

struct image {
	char manifest[LM_DIGEST_SIZE];
	size_t manifest_size;
	char config[LM_DIGEST_SIZE];
	char layer[LM_DIGEST_SIZE];
	char diff_id[LM_DIGEST_SIZE];
};

/* A one-layer image (hello.txt holding `hello`) for arch. */
static void add_image(struct files *fs, const char *arch, const char *variant, const char *hello, bool gz,
		      const char *claimed_diff_id, struct image *out)
{
	struct tu_buf tar = make_tar((const char *const[]){"hello.txt", hello, "etc/os", arch, NULL});
	lm_sha256_buffer(tar.data, tar.len, out->diff_id);
	struct tu_buf layer = gz ? gzip_buf(&tar) : tar;
	add_blob(fs, &layer, out->layer);
	json_t *diff_ids = json_pack("[s]", claimed_diff_id ? claimed_diff_id : out->diff_id);
	json_t *config = json_pack("{s:s,s:s,s:{s:[s]},s:{s:s,s:o}}", "architecture", arch, "os", "linux",
				   "config", "Cmd", "/bin/sh", "rootfs", "type", "layers", "diff_ids", diff_ids);
	if (variant)
		json_object_set_new(config, "variant", json_string(variant));
	struct tu_buf cb = json_buf(config);
	add_blob(fs, &cb, out->config);
	json_t *manifest = json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:[{s:s,s:s,s:I}]}", "schemaVersion", 2, "mediaType",
				     LM_MEDIA_OCI_MANIFEST, "config", "mediaType", LM_MEDIA_OCI_CONFIG, "digest",
				     out->config, "size", (json_int_t)cb.len, "layers", "mediaType",
				     gz ? MEDIA_TGZ : MEDIA_TAR, "digest", out->layer, "size", (json_int_t)layer.len);
	struct tu_buf mb = json_buf(manifest);
	add_blob(fs, &mb, out->manifest);
	out->manifest_size = mb.len;
	free(cb.data);
	free(mb.data);
	if (gz)
		free(layer.data);
	free(tar.data);
}

/* An index.json / index entry for img; ref (annotation) and arch may be NULL. */
static json_t *entry(const struct image *img, const char *ref, const char *arch)
{
	json_t *e = json_pack("{s:s,s:s,s:I}", "mediaType", LM_MEDIA_OCI_MANIFEST, "digest", img->manifest, "size",
			      (json_int_t)img->manifest_size);
	if (ref)
		json_object_set_new(e, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", ref));
	if (arch)
		json_object_set_new(e, "platform", json_pack("{s:s,s:s}", "architecture", arch, "os", "linux"));
	return e;
}

static void finish_layout(struct files *fs, json_t *manifests, const char *version)
{
	struct tu_buf layout = json_buf(json_pack("{s:s}", "imageLayoutVersion", version ? version : "1.0.0"));
	files_add(fs, "oci-layout", layout.data, layout.len);
	free(layout.data);
	struct tu_buf index = json_buf(json_pack("{s:i,s:s,s:o}", "schemaVersion", 2, "mediaType", LM_MEDIA_OCI_INDEX,
					      "manifests", manifests));
	files_add(fs, "index.json", index.data, index.len);
	free(index.data);
}

/* The files as a directory tmp/<name>; returns its path (static buffer). */
static const char *write_dir(const struct files *fs, const char *name)
{
	static char dir[256];
	FMT(dir, "%s/%s", F.tmp, name);
	struct lm_error err;
	for (size_t i = 0; i < fs->n; i++) {
		char path[512];
		FMT(path, "%s/%s", dir, fs->v[i].name);
		char parent[512];
		FMT(parent, "%s", path);
		*strrchr(parent, '/') = '\0';
		assert_int_equal(lm_mkdir_p(parent, 0755, &err), 0);
		if (fs->v[i].symlink)
			assert_int_equal(symlink(fs->v[i].symlink, path), 0);
		else
			write_path(path, fs->v[i].data.data, fs->v[i].data.len);
	}
	if (fs->n == 0)
		assert_int_equal(lm_mkdir_p(dir, 0755, &err), 0);
	return dir;
}

/* The files as a tar archive tmp/<name> (names prefixed with prefix, e.g.
 * "./"), gzipped when gz; returns its path (static buffer). */
static const char *write_tar(const struct files *fs, const char *name, const char *prefix, bool gz)
{
	static char path[256];
	struct tu_buf tar = tar_files(fs, prefix);
	FMT(path, "%s/%s", F.tmp, name);
	if (gz) {
		struct tu_buf z = gzip_buf(&tar);
		write_path(path, z.data, z.len);
		free(z.data);
	} else {
		write_path(path, tar.data, tar.len);
	}
	free(tar.data);
	return path;
}

/* ------------------------------------------------------------------ checks */

static void check_hello(const struct lm_image_record *r, const char *want)
{
	assert_int_equal(r->n_layers, 1);
	char *fs = lm_store_snapshot_path(F.store, r->chain_ids[r->n_layers - 1]);
	assert_non_null(fs);
	char path[512];
	FMT(path, "%s/hello.txt", fs);
	free(fs);
	struct tu_buf b = read_path(path);
	assert_string_equal(b.data, want);
	free(b.data);
}

static int load(const char *path, const struct lm_load_opts *o, struct lm_image_record **recs, size_t *n,
		struct lm_error *err)
{
	*recs = NULL;
	*n = 0;
	memset(err, 0, sizeof(*err));
	return lm_image_load(F.store, path, o, recs, n, err);
}

static void load_ok(const char *path, const struct lm_load_opts *o, struct lm_image_record **recs, size_t *n)
{
	struct lm_error err;
	if (load(path, o, recs, n, &err) < 0)
		fail_msg("load %s: %s", path, err.msg);
}

/* Loading fails with a message holding `want`, and records nothing. */
static void load_fails(const char *path, const char *want)
{
	struct lm_image_record *recs;
	size_t n;
	struct lm_error err;
	assert_true(load(path, NULL, &recs, &n, &err) < 0);
	assert_null(recs);
	assert_int_equal(n, 0);
	if (getenv("TEST_LOAD_VERBOSE"))
		print_message("%s\n", err.msg);
	assert_contains(err.msg, "load ");
	assert_contains(err.msg, want);
	assert_int_equal(n_images(), 0);
}

/* ------------------------------------------------------------------ tests */

/* One image under three names: a bare tag, a full reference, no annotation. */
static void three_names(struct files *fs, struct image *img)
{
	add_image(fs, "amd64", NULL, "hello oci\n", true, NULL, img);
	finish_layout(fs, json_pack("[o,o,o]", entry(img, "1.0", NULL), entry(img, "busybox:2", NULL),
				    entry(img, NULL, NULL)),
		      NULL);
}

static void test_oci_dir_names(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	three_names(&fs, &img);
	const char *dir = write_dir(&fs, "MyImage");
	struct lm_image_record *recs;
	size_t n;
	load_ok(dir, NULL, &recs, &n);
	assert_int_equal(n, 3);
	assert_string_equal(recs[0].name, "localhost/myimage:1.0");
	assert_string_equal(recs[1].name, "docker.io/library/busybox:2");
	char want[160];
	FMT(want, "localhost/myimage@%s", img.manifest);
	assert_string_equal(recs[2].name, want);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(recs[i].manifest_digest, img.manifest);
		assert_string_equal(recs[i].config_digest, img.config);
		assert_string_equal(recs[i].layer_digests[0], img.layer);
		assert_string_equal(recs[i].diff_ids[0], img.diff_id);
		check_hello(&recs[i], "hello oci\n");
	}
	assert_non_null(recs[0].platform);
	assert_string_equal(recs[0].platform, "linux/amd64");
	assert_null(recs[0].index_digest);
	lm_image_record_list_free(recs, n);
	assert_int_equal(n_images(), 3);

	/* --name: the repository for bare tags, the name for unannotated images */
	struct lm_load_opts o = {.name = "example.com/app"};
	load_ok(dir, &o, &recs, &n);
	assert_int_equal(n, 3);
	assert_string_equal(recs[0].name, "example.com/app:1.0");
	assert_string_equal(recs[1].name, "docker.io/library/busybox:2");
	assert_string_equal(recs[2].name, "example.com/app:latest");
	lm_image_record_list_free(recs, n);
	assert_int_equal(n_images(), 5);

	/* a --name with its own tag is used as is */
	o.name = "example.com/app:pinned";
	load_ok(dir, &o, &recs, &n);
	assert_int_equal(n, 2); /* "1.0" and the unannotated entry share the name */
	assert_string_equal(recs[0].name, "docker.io/library/busybox:2");
	assert_string_equal(recs[1].name, "example.com/app:pinned");
	lm_image_record_list_free(recs, n);

	o.name = "Not A Name";
	struct lm_error err;
	assert_true(load(dir, &o, &recs, &n, &err) < 0);
	assert_contains(err.msg, "--name");
	files_free(&fs);
}

static void test_oci_archive(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	add_image(&fs, "amd64", NULL, "hello archive\n", true, NULL, &img);
	finish_layout(&fs, json_pack("[o]", entry(&img, "v1", NULL)), NULL);
	struct lm_image_record *recs;
	size_t n;

	/* plain tar, names as `tar -C layout .` writes them */
	load_ok(write_tar(&fs, "app.tar", "./", false), NULL, &recs, &n);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].name, "localhost/app:v1");
	assert_string_equal(recs[0].manifest_digest, img.manifest);
	check_hello(&recs[0], "hello archive\n");
	lm_image_record_list_free(recs, n);

	/* gzipped, into a fresh store: every blob comes from the archive */
	lm_store_close(F.store);
	char root2[160];
	FMT(root2, "%s/store2", F.tmp);
	struct lm_error err;
	assert_int_equal(lm_store_open(root2, &F.store, &err), 0);
	lm_store_set_sync(F.store, false);
	load_ok(write_tar(&fs, "other-app.tar.gz", "", true), NULL, &recs, &n);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].name, "localhost/other-app:v1");
	check_hello(&recs[0], "hello archive\n");
	lm_image_record_list_free(recs, n);
	/* again: everything is there already, nothing changes */
	load_ok(write_tar(&fs, "other-app.tgz", "", true), NULL, &recs, &n);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].name, "localhost/other-app:v1");
	lm_image_record_list_free(recs, n);
	assert_int_equal(n_images(), 1);
	files_free(&fs);
}

/* A docker save tarball: manifest.json, "<config hex>.json", layers as
 * "<id>/layer.tar" (docker) and "<hex>.tar" behind a "<id>/layer.tar"
 * symlink (skopeo), plus files that do not matter. */
static void docker_save(struct files *fs, bool bad_diff_id, char diff_ids[2][LM_DIGEST_SIZE],
			char config[LM_DIGEST_SIZE])
{
	struct tu_buf l1 = make_tar((const char *const[]){"hello.txt", "layer one\n", NULL});
	struct tu_buf l2 = make_tar((const char *const[]){"hello.txt", "layer two\n", "two.txt", "2\n", NULL});
	lm_sha256_buffer(l1.data, l1.len, diff_ids[0]);
	lm_sha256_buffer(l2.data, l2.len, diff_ids[1]);
	json_t *ids = json_pack("[s,s]", diff_ids[0], bad_diff_id ? diff_ids[0] : diff_ids[1]);
	struct tu_buf cb = json_buf(json_pack("{s:s,s:s,s:{s:[s]},s:{s:s,s:o}}", "architecture", "amd64", "os",
					   "linux", "config", "Cmd", "/bin/sh", "rootfs", "type", "layers",
					   "diff_ids", ids));
	lm_sha256_buffer(cb.data, cb.len, config);
	char name[160];
	FMT(name, "%s.json", lm_digest_hex(config));
	files_add(fs, name, cb.data, cb.len);
	files_add(fs, "1111aaaa/layer.tar", l1.data, l1.len);
	files_add(fs, "1111aaaa/VERSION", "1.0", 3);
	files_add(fs, "1111aaaa/json", "{}", 2);
	FMT(name, "%s.tar", lm_digest_hex(diff_ids[1]));
	files_add(fs, name, l2.data, l2.len);
	char target[160];
	FMT(target, "../%s.tar", lm_digest_hex(diff_ids[1]));
	files_symlink(fs, "2222bbbb/layer.tar", target);
	char manifest[512];
	FMT(manifest,
	    "[{\"Config\":\"%s.json\",\"RepoTags\":[\"busybox:latest\",\"example.com/x:1\"],"
	    "\"Layers\":[\"1111aaaa/layer.tar\",\"2222bbbb/layer.tar\"]}]",
	    lm_digest_hex(config));
	files_add(fs, "manifest.json", manifest, strlen(manifest));
	files_add(fs, "repositories", "{}", 2);
	free(l1.data);
	free(l2.data);
	free(cb.data);
}

static void test_docker_save(void **state)
{
	(void)state;
	struct files fs = {0};
	char diff_ids[2][LM_DIGEST_SIZE], config[LM_DIGEST_SIZE];
	docker_save(&fs, false, diff_ids, config);
	struct lm_image_record *recs;
	size_t n;
	load_ok(write_tar(&fs, "busybox.tar", "", false), NULL, &recs, &n);
	assert_int_equal(n, 2);
	assert_string_equal(recs[0].name, "docker.io/library/busybox:latest");
	assert_string_equal(recs[1].name, "example.com/x:1");
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(recs[i].config_digest, config);
		assert_int_equal(recs[i].n_layers, 2);
		for (size_t k = 0; k < 2; k++) {
			/* uncompressed layers: the blob is the diff */
			assert_string_equal(recs[i].layer_digests[k], diff_ids[k]);
			assert_string_equal(recs[i].diff_ids[k], diff_ids[k]);
		}
	}
	assert_string_equal(recs[0].manifest_digest, recs[1].manifest_digest);
	char *snap = lm_store_snapshot_path(F.store, recs[0].chain_ids[1]);
	char path[512];
	FMT(path, "%s/two.txt", snap);
	free(snap);
	assert_int_equal(access(path, F_OK), 0);

	/* the synthesised manifest is stored, OCI, with plain tar layers */
	char *bytes = NULL;
	size_t len = 0;
	struct lm_error err;
	assert_int_equal(lm_store_blob_read(F.store, recs[0].manifest_digest, 1 << 20, &bytes, &len, &err), 0);
	struct lm_manifest m;
	assert_int_equal(lm_manifest_parse(bytes, len, NULL, &m, &err), 0);
	assert_string_equal(m.media_type, LM_MEDIA_OCI_MANIFEST);
	assert_string_equal(m.config.digest, config);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].media_type, MEDIA_TAR);
	lm_manifest_free(&m);
	free(bytes);
	char first_manifest[LM_DIGEST_SIZE];
	strcpy(first_manifest, recs[0].manifest_digest);
	lm_image_record_list_free(recs, n);

	/* the same, extracted into a directory: the same image */
	load_ok(write_dir(&fs, "saved"), NULL, &recs, &n);
	assert_int_equal(n, 2);
	assert_string_equal(recs[0].manifest_digest, first_manifest);
	lm_image_record_list_free(recs, n);
	assert_int_equal(n_images(), 2);
	files_free(&fs);
}

/* docker 25+: layers and config under blobs/sha256, no RepoTags */
static void test_docker_save_blobs(void **state)
{
	(void)state;
	struct files fs = {0};
	struct tu_buf l1 = make_tar((const char *const[]){"hello.txt", "new docker\n", NULL});
	char diff_id[LM_DIGEST_SIZE], config[LM_DIGEST_SIZE];
	add_blob(&fs, &l1, diff_id);
	struct tu_buf cb = json_buf(json_pack("{s:s,s:s,s:{s:s,s:[s]}}", "architecture", "amd64", "os", "linux",
					   "rootfs", "type", "layers", "diff_ids", diff_id));
	add_blob(&fs, &cb, config);
	char manifest[512];
	FMT(manifest, "[{\"Config\":\"blobs/sha256/%s\",\"RepoTags\":null,\"Layers\":[\"blobs/sha256/%s\"]}]",
	    lm_digest_hex(config), lm_digest_hex(diff_id));
	files_add(&fs, "manifest.json", manifest, strlen(manifest));
	struct lm_image_record *recs;
	size_t n;
	struct lm_load_opts o = {.name = "saved/by-id"};
	load_ok(write_tar(&fs, "x.tar", "", false), &o, &recs, &n);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].name, "docker.io/saved/by-id:latest");
	check_hello(&recs[0], "new docker\n");
	lm_image_record_list_free(recs, n);
	free(l1.data);
	free(cb.data);
	files_free(&fs);
}

static void test_multi_platform(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image amd, arm;
	add_image(&fs, "amd64", NULL, "amd64\n", true, NULL, &amd);
	add_image(&fs, "arm64", "v8", "arm64\n", true, NULL, &arm);
	struct tu_buf ib = json_buf(json_pack("{s:i,s:s,s:[o,o]}", "schemaVersion", 2, "mediaType", LM_MEDIA_OCI_INDEX,
					   "manifests", entry(&amd, NULL, "amd64"), entry(&arm, NULL, "arm64")));
	char index[LM_DIGEST_SIZE];
	add_blob(&fs, &ib, index);
	json_t *e = json_pack("{s:s,s:s,s:I,s:{s:s}}", "mediaType", LM_MEDIA_OCI_INDEX, "digest", index, "size",
			      (json_int_t)ib.len, "annotations", "org.opencontainers.image.ref.name", "multi");
	free(ib.data);
	finish_layout(&fs, json_pack("[o]", e), NULL);
	const char *tar = write_tar(&fs, "multi.tar", "", false);

	struct lm_platform want = {.os = "linux", .arch = "arm64"};
	struct lm_load_opts o = {.platform = &want};
	struct lm_image_record *recs;
	size_t n;
	load_ok(tar, &o, &recs, &n);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].name, "localhost/multi:multi");
	assert_string_equal(recs[0].manifest_digest, arm.manifest);
	assert_string_equal(recs[0].index_digest, index);
	assert_contains(recs[0].platform, "linux/arm64");
	check_hello(&recs[0], "arm64\n");
	lm_image_record_list_free(recs, n);

	want.arch = "amd64";
	load_ok(tar, &o, &recs, &n);
	assert_string_equal(recs[0].manifest_digest, amd.manifest);
	assert_string_equal(recs[0].platform, "linux/amd64");
	lm_image_record_list_free(recs, n);

	want.arch = "s390x";
	struct lm_error err;
	assert_true(load(tar, &o, &recs, &n, &err) < 0);
	assert_contains(err.msg, "no manifest for linux/s390x");
	assert_contains(err.msg, "available: linux/amd64, linux/arm64");
	files_free(&fs);

	/* platform manifests side by side in index.json, under one tag */
	struct files flat = {0};
	add_image(&flat, "amd64", NULL, "flat amd64\n", false, NULL, &amd);
	add_image(&flat, "arm64", "v8", "flat arm64\n", false, NULL, &arm);
	finish_layout(&flat, json_pack("[o,o]", entry(&amd, "t", "amd64"), entry(&arm, "t", "arm64")), NULL);
	want.arch = "arm64";
	load_ok(write_dir(&flat, "flat"), &o, &recs, &n);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].name, "localhost/flat:t");
	assert_string_equal(recs[0].manifest_digest, arm.manifest);
	check_hello(&recs[0], "flat arm64\n");
	lm_image_record_list_free(recs, n);
	files_free(&flat);
}

/* --- bad input --- */

static void good_layout(struct files *fs, struct image *img)
{
	add_image(fs, "amd64", NULL, "hello\n", true, NULL, img);
	finish_layout(fs, json_pack("[o]", entry(img, "1", NULL)), NULL);
}

static void test_bad_digest(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	good_layout(&fs, &img);
	char name[128];
	FMT(name, "blobs/sha256/%s", lm_digest_hex(img.layer));
	struct tu_buf *layer = files_get(&fs, name);
	layer->data[layer->len / 2] ^= 0x20;
	load_fails(write_dir(&fs, "bad-dir"), "digest mismatch");
	/* an archive: the blob is checked against its name while it streams */
	load_fails(write_tar(&fs, "bad.tar", "", false), "digest mismatch");
	files_free(&fs);
}

static void test_missing_blob(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	good_layout(&fs, &img);
	char name[128];
	FMT(name, "blobs/sha256/%s", lm_digest_hex(img.config));
	files_remove(&fs, name);
	load_fails(write_dir(&fs, "missing"), "is missing");
	load_fails(write_tar(&fs, "missing.tar", "", false), "is missing from the archive");
	files_free(&fs);
}

static void test_bad_layout_version(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	add_image(&fs, "amd64", NULL, "hello\n", false, NULL, &img);
	finish_layout(&fs, json_pack("[o]", entry(&img, "1", NULL)), "2.0.0");
	load_fails(write_dir(&fs, "v2"), "unsupported OCI layout version \"2.0.0\"");
	files_free(&fs);
}

static void test_malformed_json(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	good_layout(&fs, &img);
	files_add(&fs, "index.json", "{\"manifests\": [", 15);
	load_fails(write_tar(&fs, "json.tar", "", false), "index.json: invalid JSON");
	files_free(&fs);
}

static void test_not_a_tar(void **state)
{
	(void)state;
	char path[160];
	FMT(path, "%s/notes.txt", F.tmp);
	char junk[2048];
	memset(junk, 'x', sizeof(junk));
	write_path(path, junk, sizeof(junk));
	load_fails(path, "not a directory, nor a tar archive");
	write_path(path, "", 0);
	load_fails(path, "not a directory, nor a tar archive");
	FMT(path, "%s/nothing-here", F.tmp);
	load_fails(path, "No such file");

	/* a tar, but of neither kind */
	struct files fs = {0};
	files_add(&fs, "README", "hi", 2);
	load_fails(write_tar(&fs, "other.tar", "", false), "neither an OCI image layout");
	files_free(&fs);
}

static void test_truncated_gzip(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	good_layout(&fs, &img);
	const char *path = write_tar(&fs, "cut.tar.gz", "", true);
	struct tu_buf b = read_path(path);
	write_path(path, b.data, b.len - 20);
	free(b.data);
	load_fails(path, "gzip");
	files_free(&fs);
}

static void test_traversal_name(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	good_layout(&fs, &img);
	files_add(&fs, "../index.json", "{}", 2);
	load_fails(write_tar(&fs, "evil.tar", "", false), "refused");
	files_free(&fs);

	/* a docker save manifest naming a path outside the archive */
	struct files d = {0};
	char manifest[] = "[{\"Config\":\"../../etc/passwd\",\"RepoTags\":[\"x:1\"],\"Layers\":[]}]";
	files_add(&d, "manifest.json", manifest, strlen(manifest));
	load_fails(write_dir(&d, "evil-dir"), "refused");
	files_free(&d);
}

static void test_docker_diff_id_mismatch(void **state)
{
	(void)state;
	struct files fs = {0};
	char diff_ids[2][LM_DIGEST_SIZE], config[LM_DIGEST_SIZE];
	docker_save(&fs, true, diff_ids, config);
	load_fails(write_tar(&fs, "bad-diff.tar", "", false), "rootfs.diff_ids[1]");
	files_free(&fs);
}

/* An OCI image whose compressed layer unpacks to something else than its
 * config says is only found out while unpacking: the load still records
 * nothing, and an image it would have replaced is kept. */
static void test_all_or_nothing(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image old;
	add_image(&fs, "amd64", NULL, "old\n", true, NULL, &old);
	finish_layout(&fs, json_pack("[o]", entry(&old, "1", NULL)), NULL);
	struct lm_image_record *recs;
	size_t n;
	load_ok(write_dir(&fs, "app"), NULL, &recs, &n);
	lm_image_record_list_free(recs, n);
	files_free(&fs);

	struct image good, bad;
	add_image(&fs, "amd64", NULL, "new\n", true, NULL, &good);
	add_image(&fs, "amd64", NULL, "liar\n", true,
		  "sha256:0000000000000000000000000000000000000000000000000000000000000000", &bad);
	finish_layout(&fs, json_pack("[o,o]", entry(&good, "1", NULL), entry(&bad, "2", NULL)), NULL);
	struct lm_error err;
	assert_true(load(write_tar(&fs, "app.tar", "", false), NULL, &recs, &n, &err) < 0);
	assert_contains(err.msg, "image localhost/app:2");
	assert_contains(err.msg, "unpacks to");
	struct lm_image_record r;
	assert_int_equal(lm_store_image_list(F.store, &recs, &n, &err), 0);
	assert_int_equal(n, 1);
	lm_image_record_list_free(recs, n);
	assert_int_equal(lm_store_image_get(F.store, "localhost/app:1", &r, &err), 0);
	assert_string_equal(r.manifest_digest, old.manifest);
	check_hello(&r, "old\n");
	lm_image_record_free(&r);
	files_free(&fs);
}

static void test_descriptor_size(void **state)
{
	(void)state;
	struct files fs = {0};
	struct image img;
	add_image(&fs, "amd64", NULL, "hello\n", false, NULL, &img);
	img.manifest_size += 1;
	finish_layout(&fs, json_pack("[o]", entry(&img, "1", NULL)), NULL);
	load_fails(write_dir(&fs, "size-dir"), "descriptor says");
	load_fails(write_tar(&fs, "size.tar", "", false), "descriptor says");
	files_free(&fs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_oci_dir_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oci_archive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docker_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docker_save_blobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_platform, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_digest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_layout_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_tar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_traversal_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docker_diff_id_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_descriptor_size, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
