/* `lamina image load [--name REPO] [--platform os/arch[/variant]] [-q] PATH`.
 * Like `docker load`, it prints "Loaded image: NAME" for every name it
 * wrote, and one line per layer as it is unpacked unless -q; the work and
 * its all-or-nothing rule live in image/load.c, so the agent can load the
 * same way. */
#include "cli/load.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/opts.h"
#include "image/load.h"
#include "image/store.h"

static void on_layer(void *ctx, size_t index, size_t n_layers, const char *digest, enum lm_layer_phase phase,
		     int64_t done, int64_t size)
{
	(void)ctx;
	(void)done;
	/* the blobs are local: only the outcome per layer is worth a line */
	if (phase != LM_LAYER_DONE && phase != LM_LAYER_CACHED)
		return;
	const char *hex = strchr(digest, ':') ? strchr(digest, ':') + 1 : digest;
	printf("layer %zu/%zu %.12s %s (%lld bytes)\n", index + 1, n_layers, hex,
	       phase == LM_LAYER_DONE ? "unpacked" : "already present", (long long)size);
	fflush(stdout);
}

int lm_cli_load(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina image load", *name = NULL, *platform_s = NULL;
	bool quiet = false;
	struct opt opts[] = {
		{"name", 0, OPT_STRING, &name},
		{"platform", 0, OPT_STRING, &platform_s},
		{"quiet", 'q', OPT_FLAG, &quiet},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 1, 1, prog, "[--name REPO[:TAG]] [--platform os/arch[/variant]] [-q] PATH") < 0)
		return 2;
	struct lm_error err = {0};
	struct lm_platform plat;
	char platbuf[128];
	struct lm_pull_progress progress = {.layer = on_layer};
	struct lm_load_opts lo = {.name = name, .progress = quiet ? NULL : &progress};
	if (platform_s) {
		if (lm_cli_parse_platform(platform_s, platbuf, sizeof(platbuf), &plat, &err) < 0) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			return 2;
		}
		lo.platform = &plat;
	}
	struct lm_store *store = NULL;
	struct lm_image_record *recs = NULL;
	size_t n = 0;
	if (lm_cli_open_store(g, &store, &err) < 0 || lm_image_load(store, argv[i], &lo, &recs, &n, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		lm_store_close(store);
		return 1;
	}
	for (size_t k = 0; k < n; k++)
		printf("Loaded image: %s\n", recs[k].name);
	lm_image_record_list_free(recs, n);
	lm_store_close(store);
	return 0;
}
