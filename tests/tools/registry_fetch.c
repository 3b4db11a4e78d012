/* registry_fetch: drives the registry client from the integration tests.
 *
 *   registry_fetch [options] REF OUTDIR    manifest (after index selection),
 *                                          config and layers into OUTDIR/<hex>,
 *                                          the manifest into OUTDIR/manifest.json
 *   registry_fetch [options] --head REF    the digest a HEAD reports
 *   registry_fetch [options] --login USER:PASS REGISTRY
 *                                          lm_auth_verify, then lm_auth_save
 *                                          into --auth-file
 * Options: --auth-file F, --platform os/arch[/variant], --parallel N,
 * --retries N, --retry-delay-ms N, --mirror REGISTRY=ENDPOINT,
 * --insecure REGISTRY, --allow-foreign, --sequential (one blob at a time
 * through lm_registry_fetch_blob).
 *
 * A JSON summary goes to stdout; it counts, per blob, how often the sink was
 * reset, so tests can tell a resumed download from a restarted one.  Errors
 * are one line "registry_fetch: <message>" on stderr and exit status 1.
 * Blobs are written to OUTDIR/<hex>.partial and renamed on commit, unlinked
 * on discard: what a store does, in miniature.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/auth.h"
#include "image/digest.h"
#include "image/ref.h"
#include "image/registry.h"
#include "util/cleanup.h"
#include "util/error.h"

#define MAX_LIST 16

struct file_sink {
	int dirfd;
	char name[LM_DIGEST_SIZE];
	char partial[LM_DIGEST_SIZE + 16];
	int fd;
	int64_t written;
	int resets;
	bool committed;
};

static int fs_write(void *ctx, const void *buf, size_t len, struct lm_error *err)
{
	struct file_sink *s = ctx;
	const char *p = buf;
	while (len) {
		ssize_t w = write(s->fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return lm_err_sys(err, "write %s", s->partial);
		p += w;
		len -= (size_t)w;
		s->written += w;
	}
	return 0;
}

static int fs_reset(void *ctx, struct lm_error *err)
{
	struct file_sink *s = ctx;
	s->resets++;
	s->written = 0;
	if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0)
		return lm_err_sys(err, "reset %s", s->partial);
	return 0;
}

static int fs_commit(void *ctx, struct lm_error *err)
{
	struct file_sink *s = ctx;
	if (renameat(s->dirfd, s->partial, s->dirfd, s->name) < 0)
		return lm_err_sys(err, "rename %s", s->partial);
	s->committed = true;
	return 0;
}

static void fs_discard(void *ctx)
{
	struct file_sink *s = ctx;
	if (!s->committed)
		unlinkat(s->dirfd, s->partial, 0);
}

static int fail(const char *msg)
{
	fprintf(stderr, "registry_fetch: %s\n", msg);
	return 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: registry_fetch [--auth-file F] [--platform os/arch[/variant]] [--parallel N]\n"
		"                      [--retries N] [--retry-delay-ms N] [--mirror REG=ENDPOINT]\n"
		"                      [--insecure REG] [--allow-foreign] [--sequential] REF OUTDIR\n"
		"       registry_fetch [options] --head REF\n"
		"       registry_fetch [options] --login USER:PASS REGISTRY\n");
}

static json_t *desc_json(const struct lm_descriptor *d, const struct file_sink *s)
{
	json_t *o = json_pack("{s:s,s:s,s:I}", "digest", d->digest, "media_type", d->media_type, "size",
			      (json_int_t)d->size);
	if (s)
		json_object_set_new(o, "resets", json_integer(s->resets));
	return o;
}

static double seconds_since(struct timespec t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
	struct lm_registry_opts opts = {0};
	struct lm_registry_mirror mirrors[MAX_LIST];
	const char *insecure[MAX_LIST + 1] = {0};
	size_t n_insecure = 0;
	struct lm_platform platform = {0};
	bool have_platform = false, sequential = false, head = false;
	const char *login = NULL;
	char platform_buf[128];

	static const struct option longopts[] = {
		{"auth-file", required_argument, NULL, 'a'},
		{"platform", required_argument, NULL, 'p'},
		{"parallel", required_argument, NULL, 'j'},
		{"retries", required_argument, NULL, 'r'},
		{"retry-delay-ms", required_argument, NULL, 'd'},
		{"mirror", required_argument, NULL, 'm'},
		{"insecure", required_argument, NULL, 'i'},
		{"allow-foreign", no_argument, NULL, 'f'},
		{"sequential", no_argument, NULL, 's'},
		{"head", no_argument, NULL, 'H'},
		{"login", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			opts.auth_file = optarg;
			break;
		case 'p': {
			snprintf(platform_buf, sizeof(platform_buf), "%s", optarg);
			char *save = NULL;
			platform.os = strtok_r(platform_buf, "/", &save);
			platform.arch = strtok_r(NULL, "/", &save);
			platform.variant = strtok_r(NULL, "/", &save);
			if (!platform.os || !platform.arch)
				return fail("--platform wants os/arch[/variant]");
			have_platform = true;
			break;
		}
		case 'j':
			opts.parallel = atoi(optarg);
			break;
		case 'r':
			opts.retries = atoi(optarg);
			break;
		case 'd':
			opts.retry_delay_ms = (unsigned)atoi(optarg);
			break;
		case 'm': {
			char *eq = strchr(optarg, '=');
			if (!eq || opts.n_mirrors == MAX_LIST)
				return fail("--mirror wants REGISTRY=ENDPOINT");
			*eq = '\0';
			mirrors[opts.n_mirrors++] = (struct lm_registry_mirror){optarg, eq + 1};
			break;
		}
		case 'i':
			if (n_insecure == MAX_LIST)
				return fail("too many --insecure");
			insecure[n_insecure++] = optarg;
			break;
		case 'f':
			opts.allow_foreign_urls = true;
			break;
		case 's':
			sequential = true;
			break;
		case 'H':
			head = true;
			break;
		case 'l':
			login = optarg;
			break;
		default:
			usage();
			return 2;
		}
	}
	opts.mirrors = mirrors;
	opts.insecure = insecure;
	int want_args = head || login ? 1 : 2;
	if (argc - optind != want_args) {
		usage();
		return 2;
	}

	struct lm_error err = {0};
	struct lm_registry_client *client = NULL;
	if (lm_registry_client_new(&opts, &client, &err) < 0)
		return fail(err.msg);

	if (login) {
		const char *registry = argv[optind];
		autofree char *user = strdup(login);
		char *colon = user ? strchr(user, ':') : NULL;
		if (!colon) {
			lm_registry_client_free(client);
			return fail("--login wants USER:PASS");
		}
		*colon = '\0';
		int r = lm_auth_verify(client, registry, user, colon + 1, &err);
		if (r == 0)
			r = lm_auth_save(opts.auth_file, registry, user, colon + 1, &err);
		lm_registry_client_free(client);
		if (r < 0)
			return fail(err.msg);
		printf("{\"login\": \"ok\"}\n");
		return 0;
	}

	struct lm_image_ref ref = {0};
	if (lm_image_ref_parse(argv[optind], NULL, &ref, &err) < 0) {
		lm_registry_client_free(client);
		return fail(err.msg);
	}

	if (head) {
		char digest[LM_DIGEST_SIZE];
		int r = lm_registry_head_manifest(client, &ref, digest, &err);
		lm_image_ref_free(&ref);
		lm_registry_client_free(client);
		if (r < 0)
			return fail(err.msg);
		printf("{\"digest\": \"%s\"}\n", digest);
		return 0;
	}

	const char *outdir = argv[optind + 1];
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = 1;
	struct lm_manifest m = {0};
	struct lm_descriptor *descs = NULL;
	struct file_sink *fsinks = NULL;
	struct lm_blob_sink *sinks = NULL;
	size_t n = 0;
	autofd dirfd = -1;
	autofree char *refstr = NULL;
	json_t *summary = NULL;

	if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
		lm_err_sys(&err, "mkdir %s", outdir);
		goto out;
	}
	dirfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		lm_err_sys(&err, "open %s", outdir);
		goto out;
	}
	if (lm_registry_get_manifest(client, &ref, have_platform ? &platform : NULL, &m, &err) < 0)
		goto out;
	{
		autofd mfd = openat(dirfd, "manifest.json", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (mfd < 0 || write(mfd, m.bytes, m.len) != (ssize_t)m.len) {
			lm_err_sys(&err, "write manifest.json");
			goto out;
		}
	}

	/* config + unique layers: two sinks must never share a file */
	descs = calloc(m.n_layers + 1, sizeof(*descs));
	fsinks = calloc(m.n_layers + 1, sizeof(*fsinks));
	sinks = calloc(m.n_layers + 1, sizeof(*sinks));
	if (!descs || !fsinks || !sinks) {
		lm_err(&err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i <= m.n_layers; i++) {
		const struct lm_descriptor *d = i == 0 ? &m.config : &m.layers[i - 1];
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(descs[k].digest, d->digest) == 0;
		if (dup)
			continue;
		descs[n] = *d;
		struct file_sink *s = &fsinks[n];
		s->dirfd = dirfd;
		snprintf(s->name, sizeof(s->name), "%s", lm_digest_hex(d->digest));
		snprintf(s->partial, sizeof(s->partial), "%s.partial", s->name);
		s->fd = openat(dirfd, s->partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->fd < 0) {
			lm_err_sys(&err, "create %s", s->partial);
			goto out;
		}
		sinks[n] = (struct lm_blob_sink){.ctx = s, .write = fs_write, .reset = fs_reset,
						 .commit = fs_commit, .discard = fs_discard};
		n++;
	}
	if (sequential) {
		for (size_t i = 0; i < n; i++)
			if (lm_registry_fetch_blob(client, &ref, &descs[i], &sinks[i], &err) < 0)
				goto out;
	} else if (lm_registry_fetch_blobs(client, &ref, descs, n, sinks, &err) < 0) {
		goto out;
	}

	summary = json_object();
	refstr = lm_image_ref_string(&ref);
	json_object_set_new(summary, "reference", json_string(refstr ? refstr : argv[optind]));
	json_object_set_new(summary, "digest", json_string(m.digest));
	json_object_set_new(summary, "media_type", json_string(m.media_type));
	json_object_set_new(summary, "index_digest", m.index_digest[0] ? json_string(m.index_digest) : json_null());
	json_object_set_new(summary, "config", desc_json(&m.config, &fsinks[0]));
	json_t *layers = json_array();
	int64_t total = 0;
	for (size_t i = 0; i < m.n_layers; i++) {
		const struct file_sink *s = NULL;
		for (size_t k = 0; k < n; k++)
			if (strcmp(descs[k].digest, m.layers[i].digest) == 0)
				s = &fsinks[k];
		json_array_append_new(layers, desc_json(&m.layers[i], s));
	}
	for (size_t k = 0; k < n; k++)
		total += descs[k].size;
	json_object_set_new(summary, "layers", layers);
	json_object_set_new(summary, "bytes", json_integer((json_int_t)total));
	json_object_set_new(summary, "seconds", json_real(seconds_since(t0)));
	char *text = json_dumps(summary, JSON_INDENT(2));
	if (text) {
		printf("%s\n", text);
		free(text);
	}
	rc = 0;
out:
	for (size_t i = 0; fsinks && i < n; i++) {
		if (!fsinks[i].committed)
			unlinkat(dirfd, fsinks[i].partial, 0);
		close(fsinks[i].fd);
	}
	json_decref(summary);
	free(descs);
	free(fsinks);
	free(sinks);
	lm_manifest_free(&m);
	lm_image_ref_free(&ref);
	lm_registry_client_free(client);
	if (rc)
		return fail(err.msg);
	return 0;
}
