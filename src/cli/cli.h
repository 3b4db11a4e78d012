/* Front-end commands.  Each returns the process exit code. */
#pragma once

int lm_cli_oci(int argc, char **argv);
