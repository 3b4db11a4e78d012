/* See prepare.h.  The overlay is never mounted on the host when its options
 * fit a page: the runtime mounts it inside the container's mount namespace
 * (annotation org.lamina.rootfs.overlay), so nothing is left mounted if
 * everything dies. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/prepare.h"
#include "runtime/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"

static int attach_rootfs(struct lm_writable *w, json_t *config, struct lm_error *err)
{
	char *data = NULL;
	if (lm_writable_mount_options(w, &data, err) == 0) {
		json_t *ann = json_object_get(config, "annotations");
		if (!ann) {
			ann = json_object();
			json_object_set_new(config, "annotations", ann);
		}
		json_object_set_new(ann, LM_ANNOTATION_ROOTFS_OVERLAY, json_string(data));
		free(data);
	} else if (err->code != E2BIG || lm_writable_mount(w, err) < 0) {
		return -1;
	}
	json_t *root = json_object_get(config, "root");
	json_object_set_new(root, "path", json_string(lm_writable_merged_path(w)));
	return 0;
}

static int make_layer(struct lm_store *store, const struct lm_image_record *rec, const char *containers_dir,
		      const char *id, struct lm_writable **w, struct lm_error *err)
{
	const char **lowers = calloc(rec->n_layers + 1, sizeof(char *));
	if (!lowers)
		return lm_err(err, ENOMEM, "out of memory");
	for (size_t k = 0; k < rec->n_layers; k++)
		lowers[k] = lm_store_snapshot_path(store, rec->chain_ids[rec->n_layers - 1 - k]);
	int rc = lm_writable_create(containers_dir, id, lowers, rec->n_layers, w, err);
	for (size_t k = 0; k < rec->n_layers; k++)
		free((char *)lowers[k]);
	free(lowers);
	return rc;
}

int lm_container_prepare(struct lm_store *store, struct lm_registry_client *client,
			 const struct lm_pull_opts *pull, const struct lm_run_spec *spec, const char *id,
			 const char *containers_dir, const char *bundle, struct lm_prepared *out,
			 struct lm_error *err)
{
	struct lm_store_lease *lease = NULL;
	char *config_text = NULL;
	size_t config_len = 0;
	int view_fd = -1, rc = -1;
	memset(out, 0, sizeof(*out));
	if (lm_mkdir_p(containers_dir, 0700, err) < 0)
		return -1;
	/* the lease keeps prune away until the layer names the snapshots */
	if (lm_store_lease_acquire(store, &lease, err) < 0 ||
	    lm_image_pull(store, client, spec->image, pull, &out->image, err) < 0 ||
	    make_layer(store, &out->image, containers_dir, id, &out->layer, err) < 0)
		goto out;
	lm_store_lease_release(lease);
	lease = NULL;

	struct lm_run_opts ro = spec->opts;
	/* the hostname defaults to the id, shortened as docker does for its long ids */
	char short_id[13];
	snprintf(short_id, sizeof(short_id), "%s", id);
	ro.hostname = ro.hostname ? ro.hostname : strlen(id) == 64 ? short_id : id;
	if (lm_store_blob_read(store, out->image.config_digest, 8u << 20, &config_text, &config_len, err) < 0 ||
	    lm_writable_image_view(out->layer, &view_fd, err) < 0 ||
	    lm_oci_config_build(config_text, config_len, &ro, view_fd, &out->run, err) < 0 ||
	    attach_rootfs(out->layer, out->run.config, err) < 0)
		goto out;
	if (spec->tty && spec->tty_rows && spec->tty_cols)
		json_object_set_new(json_object_get(out->run.config, "process"), "consoleSize",
				    json_pack("{s:i, s:i}", "height", spec->tty_rows, "width", spec->tty_cols));
	if (lm_mkdir_p(bundle, 0700, err) < 0)
		goto out;
	out->bundle = strdup(bundle);
	if (!out->bundle) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	char *text = json_dumps(out->run.config, JSON_COMPACT);
	if (!text) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	int bfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0) {
		lm_err_sys(err, "open %s", bundle);
		free(text);
		goto out;
	}
	rc = lm_write_file_atomic_at(bfd, "config.json", text, strlen(text), 0600, err);
	close(bfd);
	free(text);
out:
	if (view_fd >= 0)
		close(view_fd);
	free(config_text);
	if (lease)
		lm_store_lease_release(lease);
	if (rc < 0) {
		struct lm_error derr;
		if (!out->bundle)
			out->bundle = strdup(bundle); /* lm_mkdir_p may have made it */
		lm_prepared_destroy(out, &derr);
		lm_prepared_free(out);
	}
	return rc;
}

int lm_prepared_destroy(struct lm_prepared *p, struct lm_error *err)
{
	int rc = 0;
	if (p->layer && lm_writable_destroy(p->layer, err) < 0)
		rc = -1;
	if (p->bundle) {
		struct lm_error berr;
		if (lm_rm_rf_at(AT_FDCWD, p->bundle, &berr) < 0 && rc == 0) {
			*err = berr;
			rc = -1;
		}
	}
	return rc;
}

void lm_prepared_free(struct lm_prepared *p)
{
	lm_writable_free(p->layer);
	lm_image_record_free(&p->image);
	lm_image_run_free(&p->run);
	free(p->bundle);
	memset(p, 0, sizeof(*p));
}
