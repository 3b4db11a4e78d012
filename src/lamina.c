/* lamina: command dispatch only.  Invoked as "lamina-oci" (a symlink), the
 * binary is the OCI runtime command line, for tools that take a runtime path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: lamina [--root DIR] [--state DIR] COMMAND [ARGS...]\n"
		"\n"
		"Images:\n"
		"  pull IMAGE          pull an image from a registry\n"
		"  images              list images\n"
		"  rmi IMAGE...        remove images (their data goes with `image prune`)\n"
		"  image prune|inspect remove unreferenced data; show an image\n"
		"  image load PATH     load an OCI layout, OCI archive or docker save tarball\n"
		"  login REGISTRY      store credentials for a registry\n"
		"Containers:\n"
		"  run --rm IMAGE [CMD...]  run a container from an image in the foreground\n"
		"Runtime:\n"
		"  oci COMMAND         OCI runtime command line (create, start, state, kill, delete, run,\n"
		"                      exec, list, features, spec), compatible with runc's\n"
		"Other:\n"
		"  version, help\n"
		"\n"
		"--root: images and layers (default /var/lib/lamina, or $LAMINA_ROOT);\n"
		"--state: runtime state (default /run/lamina, or $LAMINA_STATE).\n");
}

int main(int argc, char **argv)
{
	const char *self = argc > 0 ? argv[0] : "lamina";
	const char *base = strrchr(self, '/');
	base = base ? base + 1 : self;
	if (strcmp(base, "lamina-oci") == 0)
		return lm_cli_oci(argc, argv);

	struct lm_cli_global g = {
		.root = getenv("LAMINA_ROOT") ? getenv("LAMINA_ROOT") : "/var/lib/lamina",
		.state = getenv("LAMINA_STATE") ? getenv("LAMINA_STATE") : "/run/lamina",
	};
	bool help = false, version = false;
	struct opt opts[] = {
		{"root", 0, OPT_STRING, &g.root},
		{"state", 0, OPT_STRING, &g.state},
		{"help", 'h', OPT_FLAG, &help},
		{"version", 0, OPT_FLAG, &version},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, "lamina") < 0)
		return 2;
	if (help) {
		usage(stdout);
		return 0;
	}
	if (version) {
		printf("lamina version %s\n", LAMINA_VERSION);
		return 0;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i];
	int sub_argc = argc - i;
	char **sub_argv = argv + i;
	if (strcmp(cmd, "oci") == 0)
		return lm_cli_oci(sub_argc, sub_argv);
	if (strcmp(cmd, "pull") == 0)
		return lm_cli_pull(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "images") == 0)
		return lm_cli_images(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "rmi") == 0)
		return lm_cli_rmi(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "image") == 0)
		return lm_cli_image(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "login") == 0)
		return lm_cli_login(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "run") == 0)
		return lm_cli_run(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "version") == 0) {
		printf("lamina version %s\n", LAMINA_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "lamina: unknown command \"%s\" (see lamina help)\n", cmd);
	return 2;
}
