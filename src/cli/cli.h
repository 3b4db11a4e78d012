/* Front-end commands.  Each returns the process exit code. */
#pragma once

#include <stddef.h>

struct lm_error;
struct lm_store;
struct lm_registry_client;

/* Options every top-level command shares: lamina [--root DIR] [--state DIR] COMMAND */
struct lm_cli_global {
	const char *root;   /* images and containers' layers: /var/lib/lamina */
	const char *state;  /* runtime state: /run/lamina */
	/* registries: where bare names go (NULL: docker.io), mirrors as
	 * "REGISTRY=ENDPOINT", registries reached without TLS verification */
	const char *default_registry;
	char **mirrors;
	size_t n_mirrors;
	char **insecure;
	size_t n_insecure;
};

int lm_cli_oci(int argc, char **argv);
int lm_cli_pull(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_images(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_rmi(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_image(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_login(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_run(const struct lm_cli_global *g, int argc, char **argv);

struct lm_platform;
/* "os/arch[/variant]" into p, whose strings point into buf. */
int lm_cli_parse_platform(const char *s, char *buf, size_t len, struct lm_platform *p, struct lm_error *err);

int lm_cli_open_store(const struct lm_cli_global *g, struct lm_store **s, struct lm_error *err);
/* insecure_registry: one registry allowed without TLS verification, or NULL. */
int lm_cli_registry_client(const struct lm_cli_global *g, const char *insecure_registry,
			   struct lm_registry_client **c, struct lm_error *err);
