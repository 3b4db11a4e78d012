/* `lamina run --rm IMAGE [CMD...]`: a container from an image, in the
 * foreground, without the agent.  The image is pulled as the policy says;
 * the container's writable layer is scaffolded on the host but mounted only
 * inside the container's own mount namespace; the config comes from the
 * image config and the options; the runtime runs it; everything is removed
 * when it ends, whatever way it ends. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "image/oci_config.h"
#include "image/pull.h"
#include "image/store.h"
#include "rootfs/writable.h"
#include "runtime/container.h"
#include "runtime/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define EXIT_LAMINA 125  /* lamina itself failed, as docker and podman say it */

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"ki", 1024}, {"m", 1 << 20}, {"mb", 1 << 20},
		{"mi", 1 << 20}, {"g", 1 << 30}, {"gb", 1 << 30}, {"gi", 1 << 30},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].suffix) == 0) {
			*out = (int64_t)(v * units[i].mult);
			return *out > 0 || v == 0 ? 0 : -1;
		}
	return -1;
}

static int parse_volume(const char *spec, struct lm_run_mount *m)
{
	/* SRC:DST[:ro|rw] with an absolute host path */
	char *copy = strdup(spec);
	if (!copy)
		return -1;
	char *dst = strchr(copy, ':');
	if (!dst || copy[0] != '/')
		goto bad;
	*dst++ = '\0';
	char *mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (dst[0] != '/' || (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0))
		goto bad;
	m->type = LM_RUN_MOUNT_BIND;
	m->source = copy;
	m->target = dst;
	m->readonly = mode && strcmp(mode, "ro") == 0;
	return 0;
bad:
	free(copy);
	return -1;
}

static void random_id(char out[13])
{
	unsigned char b[6];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
		memset(b, 0, sizeof(b));
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 6; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The writable layer's overlay, as the runtime mounts it in the container's
 * namespace (too long a chain for one page: mounted on the host instead). */
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

int lm_cli_run(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina run";
	bool rm = false, detach = false, read_only = false, privileged = false, tty = false, interactive = false;
	const char *name = NULL, *workdir = NULL, *user = NULL, *hostname = NULL, *memory = NULL,
		   *cpus = NULL, *network = NULL, *pull = "missing", *platform = NULL, *entrypoint = NULL;
	int pids = 0;
	struct strlist env = {0}, volumes = {0}, tmpfs = {0}, cap_add = {0}, cap_drop = {0};
	struct opt opts[] = {
		{"rm", 0, OPT_FLAG, &rm},
		{"detach", 'd', OPT_FLAG, &detach},
		{"name", 0, OPT_STRING, &name},
		{"env", 'e', OPT_LIST, &env},
		{"workdir", 'w', OPT_STRING, &workdir},
		{"user", 'u', OPT_STRING, &user},
		{"volume", 'v', OPT_LIST, &volumes},
		{"tmpfs", 0, OPT_LIST, &tmpfs},
		{"memory", 'm', OPT_STRING, &memory},
		{"cpus", 0, OPT_STRING, &cpus},
		{"pids-limit", 0, OPT_INT, &pids},
		{"hostname", 'h', OPT_STRING, &hostname},
		{"read-only", 0, OPT_FLAG, &read_only},
		{"cap-add", 0, OPT_LIST, &cap_add},
		{"cap-drop", 0, OPT_LIST, &cap_drop},
		{"privileged", 0, OPT_FLAG, &privileged},
		{"network", 0, OPT_STRING, &network},
		{"tty", 't', OPT_FLAG, &tty},
		{"interactive", 'i', OPT_FLAG, &interactive},
		{"pull", 0, OPT_STRING, &pull},
		{"platform", 0, OPT_STRING, &platform},
		{"entrypoint", 0, OPT_STRING, &entrypoint},
		{NULL, 0, 0, NULL},
	};
	int i = 1, rc = EXIT_LAMINA;
	struct lm_error err = {0};
	struct lm_run_mount *mounts = NULL;
	size_t n_mounts = 0;
	struct lm_store *store = NULL;
	struct lm_registry_client *client = NULL;
	struct lm_store_lease *lease = NULL;
	struct lm_image_record rec = {0};
	struct lm_writable *w = NULL;
	struct lm_image_run run = {0};
	char *config_text = NULL, *containers_dir = NULL, *bundle = NULL;
	size_t config_len = 0;
	int view_fd = -1;
	char id[128];

	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 1, -1, prog, "--rm [OPTIONS] IMAGE [COMMAND [ARG...]]") < 0) {
		rc = 2;
		goto out;
	}
	if (detach) {
		fprintf(stderr, "%s: detached containers (-d) need the lamina agent, which is not available yet\n", prog);
		rc = 2;
		goto out;
	}
	if (!rm) {
		fprintf(stderr, "%s: without the agent a container cannot outlive this command: use --rm\n", prog);
		rc = 2;
		goto out;
	}
	if (tty) {
		fprintf(stderr, "%s: -t needs the agent's terminal handling, which is not available yet\n", prog);
		rc = 2;
		goto out;
	}
	(void)interactive; /* stdin is passed through as it is */
	struct lm_run_opts ro = {0};
	ro.cmd = argc - i > 1 ? argv + i + 1 : NULL;
	char *ep[2] = {(char *)entrypoint, NULL};
	if (entrypoint) {
		ro.entrypoint = entrypoint[0] ? ep : NULL;
		ro.entrypoint_set = true;
	}
	ro.env = env.v;
	ro.workdir = workdir;
	ro.user = user;
	ro.read_only = read_only;
	ro.privileged = privileged;
	ro.cap_add = cap_add.v;
	ro.cap_drop = cap_drop.v;
	ro.pids_limit = pids;
	if (memory && parse_size(memory, &ro.memory) < 0) {
		fprintf(stderr, "%s: --memory %s: expected a size like 64Mi, 512m or 1g\n", prog, memory);
		rc = 2;
		goto out;
	}
	if (cpus) {
		char *end;
		ro.cpus = strtod(cpus, &end);
		if (*end || ro.cpus <= 0) {
			fprintf(stderr, "%s: --cpus %s: expected a positive number\n", prog, cpus);
			rc = 2;
			goto out;
		}
	}
	if (network) {
		if (strcmp(network, "none") == 0)
			ro.network = LM_RUN_NET_NONE;
		else if (strcmp(network, "host") == 0)
			ro.network = LM_RUN_NET_HOST;
		else {
			fprintf(stderr, "%s: --network %s: only none and host exist without the agent\n", prog, network);
			rc = 2;
			goto out;
		}
	}
	mounts = calloc(volumes.n + tmpfs.n + 1, sizeof(*mounts));
	if (!mounts)
		goto out;
	for (size_t k = 0; k < volumes.n; k++, n_mounts++)
		if (parse_volume(volumes.v[k], &mounts[n_mounts]) < 0) {
			fprintf(stderr, "%s: -v %s: expected /host/path:/container/path[:ro|rw]\n", prog, volumes.v[k]);
			rc = 2;
			goto out;
		}
	for (size_t k = 0; k < tmpfs.n; k++, n_mounts++) {
		if (tmpfs.v[k][0] != '/') {
			fprintf(stderr, "%s: --tmpfs %s: expected an absolute path\n", prog, tmpfs.v[k]);
			rc = 2;
			goto out;
		}
		mounts[n_mounts] = (struct lm_run_mount){.type = LM_RUN_MOUNT_TMPFS, .target = tmpfs.v[k]};
	}
	ro.mounts = mounts;
	ro.n_mounts = n_mounts;

	if (name) {
		if (lm_id_validate(name, &err) < 0)
			goto fail;
		snprintf(id, sizeof(id), "%s", name);
	} else {
		random_id(id);
	}
	ro.hostname = hostname ? hostname : id;

	/* the image */
	struct lm_pull_opts po = {0};
	struct lm_platform plat = {0};
	char platbuf[128];
	po.default_registry = g->default_registry;
	if (lm_pull_policy_parse(pull, &po.policy, &err) < 0)
		goto fail;
	if (platform) {
		if (lm_cli_parse_platform(platform, platbuf, sizeof(platbuf), &plat, &err) < 0)
			goto fail;
		po.platform = &plat;
	}
	if (lm_cli_open_store(g, &store, &err) < 0 || lm_store_lease_acquire(store, &lease, &err) < 0)
		goto fail;
	if (po.policy != LM_PULL_NEVER && lm_cli_registry_client(g, NULL, &client, &err) < 0)
		goto fail;
	if (lm_image_pull(store, client, argv[i], &po, &rec, &err) < 0)
		goto fail;

	/* the writable layer, over the image's snapshots (top first) */
	const char **lowers = calloc(rec.n_layers + 1, sizeof(char *));
	if (!lowers)
		goto out;
	for (size_t k = 0; k < rec.n_layers; k++)
		lowers[k] = lm_store_snapshot_path(store, rec.chain_ids[rec.n_layers - 1 - k]);
	if (asprintf(&containers_dir, "%s/containers", g->root) < 0)
		containers_dir = NULL;
	int wrc = containers_dir ? lm_writable_create(containers_dir, id, lowers, rec.n_layers, &w, &err) : -1;
	for (size_t k = 0; k < rec.n_layers; k++)
		free((char *)lowers[k]);
	free(lowers);
	if (wrc < 0)
		goto fail;
	/* from here on prune sees the container's layer and keeps its snapshots */
	lm_store_lease_release(lease);
	lease = NULL;

	/* the config, from the image config and the options */
	if (lm_store_blob_read(store, rec.config_digest, 8u << 20, &config_text, &config_len, &err) < 0 ||
	    lm_writable_image_view(w, &view_fd, &err) < 0 ||
	    lm_oci_config_build(config_text, config_len, &ro, view_fd, &run, &err) < 0 ||
	    attach_rootfs(w, run.config, &err) < 0)
		goto fail;
	if (asprintf(&bundle, "%s/bundles/%s", g->state, id) < 0) {
		bundle = NULL;
		goto out;
	}
	if (lm_mkdir_p(bundle, 0700, &err) < 0)
		goto fail;
	char config_path[4096];
	snprintf(config_path, sizeof(config_path), "%s/config.json", bundle);
	if (json_dump_file(run.config, config_path, JSON_COMPACT) < 0) {
		lm_err_sys(&err, "write %s", config_path);
		goto fail;
	}

	char oci_root[4096];
	snprintf(oci_root, sizeof(oci_root), "%s/oci", g->state);
	struct lm_create_opts co = {.root = oci_root, .id = id, .bundle = bundle};
	struct lm_exit ex;
	if (lm_container_run(&co, &ex, &err) < 0) {
		rc = err.code == ENOENT && strstr(err.msg, "exec") ? 127 : err.code == EACCES ? 126 : EXIT_LAMINA;
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		goto out;
	}
	if (ex.oom_killed)
		fprintf(stderr, "%s: the container was killed: out of memory\n", prog);
	rc = ex.code;
	goto out;
fail:
	fprintf(stderr, "%s: %s\n", prog, err.msg);
out:
	if (view_fd >= 0)
		close(view_fd);
	if (w) {
		struct lm_error werr;
		if (lm_writable_destroy(w, &werr) < 0)
			fprintf(stderr, "%s: removing the writable layer: %s\n", prog, werr.msg);
		lm_writable_free(w);
	}
	if (bundle) {
		struct lm_error berr;
		lm_rm_rf_at(AT_FDCWD, bundle, &berr);
	}
	free(bundle);
	free(containers_dir);
	free(config_text);
	lm_image_run_free(&run);
	lm_image_record_free(&rec);
	lm_registry_client_free(client);
	if (lease)
		lm_store_lease_release(lease);
	lm_store_close(store);
	for (size_t k = 0; mounts && k < volumes.n; k++)
		free((char *)mounts[k].source);
	free(mounts);
	free(env.v);
	free(volumes.v);
	free(tmpfs.v);
	free(cap_add.v);
	free(cap_drop.v);
	return rc;
}
