/* lamina: command dispatch only.  Invoked as "lamina-oci" (a symlink), the
 * binary is the OCI runtime command line, for tools that take a runtime path. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: lamina [--root DIR] [--state DIR] [--socket PATH] [registry options] COMMAND [ARGS...]\n"
		"\n"
		"Images:\n"
		"  pull IMAGE          pull an image from a registry\n"
		"  images              list images\n"
		"  rmi IMAGE...        remove images (their data goes with `image prune`)\n"
		"  image prune|inspect remove unreferenced data; show an image\n"
		"  image load PATH     load an OCI layout, OCI archive or docker save tarball\n"
		"  login REGISTRY      store credentials for a registry\n"
		"Containers without the agent:\n"
		"  run --rm IMAGE [CMD...]  run a container from an image in the foreground\n"
		"Containers (need the agent: lamina agent):\n"
		"  run -d IMAGE [CMD...]    create and start a container in the background\n"
		"  run [-i] [-t] IMAGE [CMD...]  ... or attached to it (-i: our stdin, -t: a terminal)\n"
		"  ps [-a] [-q]             list containers (--format json)\n"
		"  logs [-f] [-t] [--tail N] [--since T] [--until T] CONTAINER\n"
		"                           show a container's output\n"
		"  stop [-t S] | kill [-s SIG] | rm [-f] | start | restart [-t S]  CONTAINER...\n"
		"  inspect CONTAINER...     show containers as JSON\n"
		"  wait CONTAINER...        wait for containers to end; print their exit codes\n"
		"  stats [--no-stream] [CONTAINER...]  CPU, memory and pids of containers\n"
		"  events [--since SEQ]     follow the agent's container events\n"
		"  exec [-i] [-t] [-e K=V] [-u USER] [-w DIR] CONTAINER CMD...\n"
		"                           run a command in a running container\n"
		"  attach [--no-stdin] CONTAINER  attach to a running container's output (and stdin)\n"
		"  agent [--socket PATH]    run the agent in the foreground (see lamina agent --help)\n"
		"Runtime:\n"
		"  oci COMMAND         OCI runtime command line (create, start, state, kill, delete, run,\n"
		"                      exec, list, features, spec), compatible with runc's\n"
		"Other:\n"
		"  version, help\n"
		"\n"
		"--root: images and layers (default /var/lib/lamina, or $LAMINA_ROOT);\n"
		"--state: runtime state (default /run/lamina, or $LAMINA_STATE);\n"
		"--socket: the agent's API socket (default $LAMINA_SOCKET, else STATE/lamina.sock);\n"
		"--default-registry HOST: where names without a registry go (default docker.io, or\n"
		"  $LAMINA_DEFAULT_REGISTRY); --registry-mirror REGISTRY=ENDPOINT (repeatable): tried\n"
		"  before REGISTRY; --insecure-registry HOST (repeatable): no TLS verification.\n");
}

typedef int (*module_main_fn)(const struct lm_cli_global *g, const char *cmd, int argc, char **argv);

/* Commands with heavy libraries live in modules, beside this binary in a
 * build tree, or in LAMINA_MODULE_DIR once installed: lamina-images.so
 * (images and the container CLI: libcurl, OpenSSL, libarchive, ...) and
 * lamina-agent.so (the daemon: also libmicrohttpd and SQLite), so that no
 * command loads what it does not use.  Lazy binding: of the thousands of
 * symbols those libraries import, a command calls few (`lamina ps` took
 * 11.8 ms with RTLD_NOW, 8.9 ms with RTLD_LAZY). */
static int run_module(const char *module, const char *entry, const struct lm_cli_global *g, const char *cmd,
		      int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	void *handle = NULL;
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(path, sizeof(path), "%s/%s", self, module);
		handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	}
	if (!handle) {
		snprintf(path, sizeof(path), "%s/%s", LAMINA_MODULE_DIR, module);
		handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	}
	if (!handle) {
		fprintf(stderr, "lamina: the %s command is not available: %s\n", cmd, dlerror());
		return 125;
	}
	module_main_fn fn = (module_main_fn)dlsym(handle, entry);
	if (!fn) {
		fprintf(stderr, "lamina: %s is not a lamina module\n", path);
		return 125;
	}
	return fn(g, cmd, argc, argv);
}

static int dispatch(const struct lm_cli_global *g, bool help, bool version, int argc, char **argv)
{
	if (help) {
		usage(stdout);
		return 0;
	}
	if (version) {
		printf("lamina version %s\n", LAMINA_VERSION);
		return 0;
	}
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[0];
	if (strcmp(cmd, "oci") == 0)
		return lm_cli_oci(argc, argv);
	static const char *const module_cmds[] = {
		"pull", "images", "rmi", "image", "login", "run",
		"ps", "logs", "start", "stop", "restart", "kill", "rm", "inspect", "wait", "stats", "events",
		"exec", "attach",
	};
	for (size_t k = 0; k < sizeof(module_cmds) / sizeof(module_cmds[0]); k++)
		if (strcmp(cmd, module_cmds[k]) == 0)
			return run_module("lamina-images.so", "lamina_images_main", g, cmd, argc, argv);
	if (strcmp(cmd, "agent") == 0)
		return run_module("lamina-agent.so", "lamina_agent_main", g, cmd, argc, argv);
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
	g.default_registry = getenv("LAMINA_DEFAULT_REGISTRY");
	bool help = false, version = false;
	struct strlist mirrors = {0}, insecure = {0};
	struct opt opts[] = {
		{"root", 0, OPT_STRING, &g.root},
		{"state", 0, OPT_STRING, &g.state},
		{"socket", 0, OPT_STRING, &g.socket},
		{"default-registry", 0, OPT_STRING, &g.default_registry},
		{"registry-mirror", 0, OPT_LIST, &mirrors},
		{"insecure-registry", 0, OPT_LIST, &insecure},
		{"help", 'h', OPT_FLAG, &help},
		{"version", 0, OPT_FLAG, &version},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, "lamina") < 0)
		return 2;
	g.mirrors = mirrors.v;
	g.n_mirrors = mirrors.n;
	g.insecure = insecure.v;
	g.n_insecure = insecure.n;
	int rc = dispatch(&g, help, version, argc - i, argv + i);
	free(mirrors.v);
	free(insecure.v);
	return rc;
}
