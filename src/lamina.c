/* lamina: command dispatch only.  Invoked as "lamina-oci" (a symlink), the
 * binary is the OCI runtime command line, for tools that take a runtime path. */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: lamina COMMAND [ARGS...]\n"
		"\n"
		"Commands:\n"
		"  oci       OCI runtime command line (create, start, state, kill, delete, run, exec,\n"
		"            list, features), compatible with runc's\n"
		"  version   print the version\n"
		"  help      this text\n");
}

int main(int argc, char **argv)
{
	const char *self = argc > 0 ? argv[0] : "lamina";
	const char *base = strrchr(self, '/');
	base = base ? base + 1 : self;
	if (strcmp(base, "lamina-oci") == 0)
		return lm_cli_oci(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "oci") == 0)
		return lm_cli_oci(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("lamina version %s\n", LAMINA_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "lamina: unknown command \"%s\" (see lamina help)\n", cmd);
	return 2;
}
