/* Image commands: pull, images, rmi, image prune/inspect, login/logout.
 * They work on the store directly (no agent needed); the store's own locks
 * make concurrent commands safe. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/load.h"
#include "cli/opts.h"
#include "image/auth.h"
#include "image/pull.h"
#include "image/ref.h"
#include "image/registry.h"
#include "image/store.h"
#include "rootfs/writable.h"
#include "runtime/container.h"
#include "util/fs.h"

static int fail(const char *prog, const struct lm_error *err)
{
	fprintf(stderr, "%s: %s\n", prog, err->msg);
	return 1;
}

/* --- progress: bars on a terminal, plain lines otherwise --- */

struct progress_view {
	bool tty;
	size_t n_layers;
	size_t drawn;        /* lines drawn so far (tty) */
	char **lines;        /* last text per layer */
};

static void human(char *buf, size_t len, int64_t bytes)
{
	const char *unit[] = {"B", "kB", "MB", "GB", "TB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

static const char *phase_name(enum lm_layer_phase p)
{
	switch (p) {
	case LM_LAYER_WAITING: return "waiting";
	case LM_LAYER_DOWNLOADING: return "downloading";
	case LM_LAYER_UNPACKING: return "unpacking";
	case LM_LAYER_DONE: return "done";
	case LM_LAYER_CACHED: return "already present";
	}
	return "?";
}

static void on_layer(void *ctx, size_t index, size_t n_layers, const char *digest, enum lm_layer_phase phase,
		     int64_t done, int64_t size)
{
	struct progress_view *v = ctx;
	if (!v->lines) {
		v->n_layers = n_layers;
		v->lines = calloc(n_layers, sizeof(char *));
		if (!v->lines)
			return;
	}
	if (index >= v->n_layers)
		return;
	char a[32], b[32], line[256];
	human(a, sizeof(a), done);
	human(b, sizeof(b), size);
	const char *hex = strchr(digest, ':') ? strchr(digest, ':') + 1 : digest;
	if (v->tty && (phase == LM_LAYER_DOWNLOADING || phase == LM_LAYER_UNPACKING) && size > 0) {
		int width = 30, fill = (int)(done * width / size);
		char bar[64];
		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
		bar[width] = '\0';
		snprintf(line, sizeof(line), "%.12s %-11s [%s] %s / %s", hex, phase_name(phase), bar, a, b);
	} else if (phase == LM_LAYER_DONE || phase == LM_LAYER_CACHED || phase == LM_LAYER_WAITING) {
		snprintf(line, sizeof(line), "%.12s %s (%s)", hex, phase_name(phase), b);
	} else {
		snprintf(line, sizeof(line), "%.12s %s %s / %s", hex, phase_name(phase), a, b);
	}
	if (!v->tty) {
		/* plain output: one line per phase change, no repeats */
		if (v->lines[index] && strncmp(v->lines[index], line, 12 + 1 + strlen(phase_name(phase))) == 0)
			return;
		free(v->lines[index]);
		v->lines[index] = strdup(line);
		printf("layer %zu/%zu %s\n", index + 1, n_layers, line);
		fflush(stdout);
		return;
	}
	free(v->lines[index]);
	v->lines[index] = strdup(line);
	/* redraw the block of layer lines in place */
	if (v->drawn)
		printf("\033[%zuA", v->drawn);
	for (size_t i = 0; i < v->n_layers; i++)
		printf("\r\033[K%s\n", v->lines[i] ? v->lines[i] : "");
	v->drawn = v->n_layers;
	fflush(stdout);
}

static void on_note(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "lamina: %s\n", msg);
}

static void progress_free(struct progress_view *v)
{
	for (size_t i = 0; v->lines && i < v->n_layers; i++)
		free(v->lines[i]);
	free(v->lines);
}

int lm_cli_parse_platform(const char *s, char *buf, size_t len, struct lm_platform *p, struct lm_error *err)
{
	snprintf(buf, len, "%s", s);
	char *os = buf, *arch = strchr(os, '/');
	if (!arch || arch == os || !arch[1])
		return lm_err(err, EINVAL, "--platform %s: expected os/arch[/variant]", s);
	*arch++ = '\0';
	char *variant = strchr(arch, '/');
	if (variant)
		*variant++ = '\0';
	p->os = os;
	p->arch = arch;
	p->variant = variant && *variant ? variant : NULL;
	return 0;
}

int lm_cli_open_store(const struct lm_cli_global *g, struct lm_store **s, struct lm_error *err)
{
	return lm_store_open(g->root, s, err);
}

int lm_cli_registry_client(const struct lm_cli_global *g, const char *insecure_registry,
			   struct lm_registry_client **c, struct lm_error *err)
{
	const char **insecure = calloc(g->n_insecure + 2, sizeof(char *));
	struct lm_registry_mirror *mirrors = calloc(g->n_mirrors + 1, sizeof(*mirrors));
	char **mirror_names = calloc(g->n_mirrors + 1, sizeof(char *));
	int rc = -1;
	if (!insecure || !mirrors || !mirror_names) {
		lm_err(err, ENOMEM, "out of memory");
		goto out;
	}
	size_t n = 0;
	for (size_t i = 0; i < g->n_insecure; i++)
		insecure[n++] = g->insecure[i];
	if (insecure_registry)
		insecure[n++] = insecure_registry;
	for (size_t i = 0; i < g->n_mirrors; i++) {
		const char *eq = strchr(g->mirrors[i], '=');
		if (!eq || eq == g->mirrors[i] || !eq[1]) {
			lm_err(err, EINVAL, "--registry-mirror %s: expected REGISTRY=ENDPOINT", g->mirrors[i]);
			goto out;
		}
		mirror_names[i] = strndup(g->mirrors[i], (size_t)(eq - g->mirrors[i]));
		if (!mirror_names[i]) {
			lm_err(err, ENOMEM, "out of memory");
			goto out;
		}
		mirrors[i] = (struct lm_registry_mirror){mirror_names[i], eq + 1};
	}
	struct lm_registry_opts ro = {
		.insecure = n ? insecure : NULL,
		.mirrors = g->n_mirrors ? mirrors : NULL,
		.n_mirrors = g->n_mirrors,
	};
	rc = lm_registry_client_new(&ro, c, err);
out:
	/* the client keeps copies of what it needs */
	for (size_t i = 0; mirror_names && i < g->n_mirrors; i++)
		free(mirror_names[i]);
	free(mirror_names);
	free(mirrors);
	free(insecure);
	return rc;
}

int lm_cli_pull(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina pull", *platform_s = NULL, *policy_s = "always";
	bool quiet = false, tls_off = false;
	struct opt opts[] = {
		{"platform", 0, OPT_STRING, &platform_s},
		{"policy", 0, OPT_STRING, &policy_s},
		{"quiet", 'q', OPT_FLAG, &quiet},
		{"insecure", 0, OPT_FLAG, &tls_off},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 1, 1, prog, "[--platform os/arch[/variant]] [--policy always|newer|if_not_present|never] [--insecure] [-q] IMAGE") < 0)
		return 2;
	struct lm_error err = {0};
	struct lm_pull_opts po = {0};
	struct lm_platform plat;
	char platbuf[128];
	if (lm_pull_policy_parse(policy_s, &po.policy, &err) < 0 ||
	    (platform_s && lm_cli_parse_platform(platform_s, platbuf, sizeof(platbuf), &plat, &err) < 0))
		return fail(prog, &err);
	if (platform_s)
		po.platform = &plat;
	struct progress_view view = {.tty = isatty(STDOUT_FILENO)};
	struct lm_pull_progress progress = {.layer = on_layer, .note = on_note, .ctx = &view};
	if (!quiet)
		po.progress = &progress;

	po.default_registry = g->default_registry;
	struct lm_image_ref ref = {0};
	if (lm_image_ref_parse(argv[i], g->default_registry, &ref, &err) < 0)
		return fail(prog, &err);
	struct lm_store *store = NULL;
	struct lm_registry_client *client = NULL;
	struct lm_image_record rec = {0};
	int rc = 1;
	if (lm_cli_open_store(g, &store, &err) < 0 ||
	    lm_cli_registry_client(g, tls_off ? ref.registry : NULL, &client, &err) < 0 ||
	    lm_image_pull(store, client, argv[i], &po, &rec, &err) < 0) {
		fail(prog, &err);
		goto out;
	}
	if (quiet)
		printf("%s\n", rec.config_digest);
	else
		printf("%s: %s (%zu layers)\n", rec.name, rec.config_digest, rec.n_layers);
	rc = 0;
out:
	progress_free(&view);
	lm_image_record_free(&rec);
	lm_registry_client_free(client);
	lm_store_close(store);
	lm_image_ref_free(&ref);
	return rc;
}

static void age(char *buf, size_t len, const char *created)
{
	struct tm tm = {0};
	if (!created || !strptime(created, "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, len, "?");
		return;
	}
	long secs = (long)difftime(time(NULL), timegm(&tm));
	if (secs < 60)
		snprintf(buf, len, "%ld seconds ago", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%ld minutes ago", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "%ld hours ago", secs / 3600);
	else
		snprintf(buf, len, "%ld days ago", secs / 86400);
}

static json_t *record_json(const struct lm_image_record *r)
{
	json_t *layers = json_array(), *diffs = json_array();
	for (size_t i = 0; i < r->n_layers; i++) {
		json_array_append_new(layers, json_string(r->layer_digests[i]));
		json_array_append_new(diffs, json_string(r->diff_ids[i]));
	}
	return json_pack("{s:s,s:s,s:s,s:s?,s:o,s:o,s:I,s:s?,s:s?}", "name", r->name, "id", r->config_digest,
			 "manifest", r->manifest_digest, "index", r->index_digest, "layers", layers, "diff_ids",
			 diffs, "size", (json_int_t)r->size, "created", r->created, "platform", r->platform);
}

int lm_cli_images(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina images", *format = "table";
	bool quiet = false;
	struct opt opts[] = {
		{"format", 0, OPT_STRING, &format},
		{"quiet", 'q', OPT_FLAG, &quiet},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 0, 0, prog, "[--format table|json] [-q]") < 0)
		return 2;
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
		fprintf(stderr, "%s: --format must be table or json\n", prog);
		return 2;
	}
	struct lm_error err = {0};
	struct lm_store *store = NULL;
	struct lm_image_record *recs = NULL;
	size_t n = 0;
	if (lm_cli_open_store(g, &store, &err) < 0 || lm_store_image_list(store, &recs, &n, &err) < 0) {
		lm_store_close(store);
		return fail(prog, &err);
	}
	if (strcmp(format, "json") == 0) {
		json_t *arr = json_array();
		for (size_t k = 0; k < n; k++)
			json_array_append_new(arr, record_json(&recs[k]));
		char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(arr);
	} else {
		if (!quiet)
			printf("%-50s %-14s %-16s %s\n", "IMAGE", "ID", "CREATED", "SIZE");
		for (size_t k = 0; k < n; k++) {
			const char *id = recs[k].config_digest + 7;
			if (quiet) {
				printf("%.12s\n", id);
				continue;
			}
			char when[32], size[32];
			age(when, sizeof(when), recs[k].created);
			human(size, sizeof(size), recs[k].size);
			printf("%-50s %-14.12s %-16s %s\n", recs[k].name, id, when, size);
		}
	}
	lm_image_record_list_free(recs, n);
	lm_store_close(store);
	return 0;
}

/* A name, or an image id (a prefix of the config digest, as docker's). */
static int find_image(const struct lm_cli_global *g, struct lm_store *store, const char *arg,
		      struct lm_image_record *rec, struct lm_error *err)
{
	if (g->default_registry) {
		/* a bare name means the configured registry, not docker.io */
		struct lm_image_ref ref = {0};
		struct lm_error ignored;
		if (lm_image_ref_parse(arg, g->default_registry, &ref, &ignored) == 0) {
			char *name = lm_image_ref_string(&ref);
			int r = name ? lm_store_image_get(store, name, rec, err) : -1;
			free(name);
			lm_image_ref_free(&ref);
			if (r == 0)
				return 0;
		}
	}
	if (lm_store_image_get(store, arg, rec, err) == 0)
		return 0;
	const char *hex = strncmp(arg, "sha256:", 7) == 0 ? arg + 7 : arg;
	if (!*hex || strspn(hex, "0123456789abcdef") != strlen(hex))
		return -1; /* not an id: the name's "not found" stands */
	return lm_store_image_find_by_id(store, arg, rec, err);
}

int lm_cli_rmi(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina rmi";
	struct opt opts[] = {{NULL, 0, 0, NULL}};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 1, -1, prog, "IMAGE...") < 0)
		return 2;
	struct lm_error err = {0};
	struct lm_store *store = NULL;
	if (lm_cli_open_store(g, &store, &err) < 0)
		return fail(prog, &err);
	int rc = 0;
	for (; i < argc; i++) {
		struct lm_image_record rec = {0};
		if (find_image(g, store, argv[i], &rec, &err) < 0) {
			fail(prog, &err);
			rc = 1;
			continue;
		}
		if (lm_store_image_remove(store, rec.name, &err) < 0) {
			fail(prog, &err);
			rc = 1;
		} else {
			printf("Untagged: %s\n", rec.name);
		}
		lm_image_record_free(&rec);
	}
	lm_store_close(store);
	return rc;
}

/* Sweep callback: a container whose runtime state says it still exists
 * (creating, created, running) keeps its writable layer; one that stopped
 * without its runner cleaning up (a killed `lamina run`) has its runtime
 * state deleted, and the sweep removes its layer. */
static bool container_alive(const char *id, void *ctx)
{
	const struct lm_cli_global *g = ctx;
	char oci_root[4096], bundles[4096];
	snprintf(oci_root, sizeof(oci_root), "%s/oci", g->state);
	snprintf(bundles, sizeof(bundles), "%s/bundles", g->state);
	struct lm_error err;
	json_t *st = NULL;
	if (lm_container_state(oci_root, id, &st, &err) < 0)
		return false;
	const char *status = json_string_value(json_object_get(st, "status"));
	bool alive = status && strcmp(status, "stopped") != 0;
	json_decref(st);
	if (!alive) {
		lm_container_delete(oci_root, id, false, &err);
		int bfd = open(bundles, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (bfd >= 0) {
			lm_rm_rf_at(bfd, id, &err);
			close(bfd);
		}
	}
	return alive;
}

static int sweep_containers(const struct lm_cli_global *g, size_t *removed, struct lm_error *err)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/containers", g->root);
	if (access(dir, F_OK) < 0)
		return 0;
	return lm_writable_sweep(dir, container_alive, (void *)g, removed, err);
}

/* The chain ids of the snapshots under every container's writable layer
 * (<root>/containers/<id>), which prune must keep whatever images say. */
static int containers_layers(const struct lm_cli_global *g, struct strlist *keep, struct lm_error *err)
{
	char dir[4096], prefix[4096];
	snprintf(dir, sizeof(dir), "%s/containers", g->root);
	snprintf(prefix, sizeof(prefix), "%s/snapshots/", g->root);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : lm_err_sys(err, "open %s", dir);
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct lm_writable *w = NULL;
		struct lm_error werr;
		if (lm_writable_open(dir, de->d_name, &w, &werr) < 0)
			continue; /* not a layer (or a broken one the sweep removes) */
		for (size_t i = 0; i < lm_writable_n_lowers(w); i++) {
			const char *lower = lm_writable_lower(w, i);
			size_t pl = strlen(prefix);
			if (strncmp(lower, prefix, pl) != 0 || strlen(lower) < pl + 64)
				continue;
			char *id = NULL;
			if (asprintf(&id, "sha256:%.64s", lower + pl) < 0 || strlist_add(keep, id) < 0) {
				free(id);
				rc = lm_err(err, ENOMEM, "out of memory");
				break;
			}
		}
		lm_writable_free(w);
	}
	closedir(d);
	return rc;
}

int lm_cli_image(const struct lm_cli_global *g, int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: lamina image prune|inspect|load|ls|rm|pull ...\n");
		return 2;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
		return lm_cli_images(g, argc - 1, argv + 1);
	if (strcmp(sub, "rm") == 0)
		return lm_cli_rmi(g, argc - 1, argv + 1);
	if (strcmp(sub, "pull") == 0)
		return lm_cli_pull(g, argc - 1, argv + 1);
	if (strcmp(sub, "load") == 0)
		return lm_cli_load(g, argc - 1, argv + 1);
	struct lm_error err = {0};
	struct lm_store *store = NULL;
	if (strcmp(sub, "prune") == 0) {
		if (argc != 2) {
			fprintf(stderr, "usage: lamina image prune\n");
			return 2;
		}
		uint64_t freed = 0;
		size_t swept = 0;
		struct strlist keep = {0};
		int prc = lm_cli_open_store(g, &store, &err) < 0 || sweep_containers(g, &swept, &err) < 0 ||
				  containers_layers(g, &keep, &err) < 0 ||
				  lm_store_prune_keeping(store, (const char *const *)keep.v, keep.n, &freed, &err) < 0
			  ? -1
			  : 0;
		for (size_t k = 0; k < keep.n; k++)
			free(keep.v[k]);
		free(keep.v);
		if (prc < 0) {
			lm_store_close(store);
			return fail("lamina image prune", &err);
		}
		char h[32];
		human(h, sizeof(h), (int64_t)freed);
		if (swept)
			printf("Removed %zu writable layer%s of containers that are gone\n", swept, swept == 1 ? "" : "s");
		printf("Total reclaimed space: %s\n", h);
		lm_store_close(store);
		return 0;
	}
	if (strcmp(sub, "inspect") == 0) {
		if (argc != 3) {
			fprintf(stderr, "usage: lamina image inspect IMAGE\n");
			return 2;
		}
		struct lm_image_record rec = {0};
		if (lm_cli_open_store(g, &store, &err) < 0 || find_image(g, store, argv[2], &rec, &err) < 0) {
			lm_store_close(store);
			return fail("lamina image inspect", &err);
		}
		json_t *o = record_json(&rec);
		char *config = NULL;
		size_t len = 0;
		if (lm_store_blob_read(store, rec.config_digest, 8u << 20, &config, &len, &err) == 0) {
			json_t *c = json_loadb(config, len, 0, NULL);
			if (c)
				json_object_set_new(o, "config", c);
			free(config);
		}
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(o);
		lm_image_record_free(&rec);
		lm_store_close(store);
		return 0;
	}
	fprintf(stderr, "lamina image: unknown command \"%s\"\n", sub);
	return 2;
}

static char *read_password(bool from_stdin)
{
	char buf[1024];
	struct termios old, quiet;
	bool tty = !from_stdin && isatty(STDIN_FILENO);
	if (tty) {
		fprintf(stderr, "Password: ");
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
	}
	char *r = fgets(buf, sizeof(buf), stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
		fprintf(stderr, "\n");
	}
	if (!r)
		return NULL;
	buf[strcspn(buf, "\r\n")] = '\0';
	return strdup(buf);
}

int lm_cli_login(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina login", *user = NULL, *password = NULL, *authfile = NULL;
	bool from_stdin = false, tls_off = false;
	struct opt opts[] = {
		{"username", 'u', OPT_STRING, &user},
		{"password", 'p', OPT_STRING, &password},
		{"password-stdin", 0, OPT_FLAG, &from_stdin},
		{"authfile", 0, OPT_STRING, &authfile},
		{"insecure", 0, OPT_FLAG, &tls_off},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 1, 1, prog, "-u USER [-p PASSWORD | --password-stdin] [--authfile F] REGISTRY") < 0)
		return 2;
	if (!user) {
		fprintf(stderr, "%s: --username is required\n", prog);
		return 2;
	}
	struct lm_error err = {0};
	char *pw = password ? strdup(password) : read_password(from_stdin);
	if (!pw) {
		fprintf(stderr, "%s: no password given\n", prog);
		return 2;
	}
	char *registry = lm_auth_normalize_registry(argv[i]);
	char *file = authfile ? strdup(authfile) : lm_auth_default_file();
	struct lm_registry_client *client = NULL;
	int rc = 1;
	if (!registry || !file) {
		lm_err(&err, ENOMEM, "out of memory");
		fail(prog, &err);
		goto out;
	}
	if (lm_cli_registry_client(g, tls_off ? registry : NULL, &client, &err) < 0 ||
	    lm_auth_verify(client, registry, user, pw, &err) < 0 || lm_auth_save(file, registry, user, pw, &err) < 0) {
		fail(prog, &err);
		goto out;
	}
	printf("Login Succeeded\n");
	rc = 0;
out:
	lm_registry_client_free(client);
	free(registry);
	free(file);
	free(pw);
	return rc;
}
