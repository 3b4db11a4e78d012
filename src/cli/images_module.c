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
	static const struct {
		const char *name;
		int (*fn)(const struct lm_cli_global *g, int argc, char **argv);
	} container_cmds[] = {
		{"ps", lm_cli_ps}, {"logs", lm_cli_logs}, {"start", lm_cli_start}, {"stop", lm_cli_stop},
		{"restart", lm_cli_restart}, {"kill", lm_cli_kill}, {"rm", lm_cli_rm}, {"inspect", lm_cli_inspect},
		{"wait", lm_cli_wait}, {"stats", lm_cli_stats}, {"events", lm_cli_events}, {"exec", lm_cli_exec},
		{"attach", lm_cli_attach},
	};
	for (size_t k = 0; k < sizeof(container_cmds) / sizeof(container_cmds[0]); k++)
		if (strcmp(cmd, container_cmds[k].name) == 0)
			return container_cmds[k].fn(g, argc, argv);
	return -1;
}
