/* The entry point of the lamina-images module (see src/meson.build): the
 * image and container commands, reached from lamina.c through dlopen. */
#include <string.h>

#include "cli/cli.h"

int lamina_images_main(const struct lm_cli_global *g, const char *cmd, int argc, char **argv)
	__attribute__((visibility("default")));

int lamina_images_main(const struct lm_cli_global *g, const char *cmd, int argc, char **argv)
{
	if (strcmp(cmd, "pull") == 0)
		return lm_cli_pull(g, argc, argv);
	if (strcmp(cmd, "images") == 0)
		return lm_cli_images(g, argc, argv);
	if (strcmp(cmd, "rmi") == 0)
		return lm_cli_rmi(g, argc, argv);
	if (strcmp(cmd, "image") == 0)
		return lm_cli_image(g, argc, argv);
	if (strcmp(cmd, "login") == 0)
		return lm_cli_login(g, argc, argv);
	if (strcmp(cmd, "run") == 0)
		return lm_cli_run(g, argc, argv);
	return -1;
}
