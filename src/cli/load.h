/* `lamina image load`: images from an OCI layout, an OCI archive or a
 * docker save tarball (see image/load.h). */
#pragma once

#include "cli/cli.h"

/* argv[0] is the command's own name ("load"); returns the exit code. */
int lm_cli_load(const struct lm_cli_global *g, int argc, char **argv);
