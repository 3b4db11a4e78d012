/* Front-end commands.  Each returns the process exit code. */
#pragma once

#include <stdbool.h>
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
	/* the agent's API socket (--socket); NULL: $LAMINA_SOCKET, else <state>/lamina.sock */
	const char *socket;
};

int lm_cli_oci(int argc, char **argv);
int lm_cli_pull(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_images(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_rmi(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_image(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_login(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_run(const struct lm_cli_global *g, int argc, char **argv);
/* The daemon (agent/agent.c). */
int lm_cli_agent(const struct lm_cli_global *g, int argc, char **argv);

/* Container commands, clients of the agent (cli/containers.c,
 * cli/container_stats.c).  Exit codes: 0; 1 when the agent reported an
 * error (the other arguments are still done); 2 for a usage error; 125
 * when the agent cannot be reached. */
int lm_cli_ps(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_logs(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_start(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_stop(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_restart(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_kill(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_rm(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_inspect(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_wait(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_stats(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_events(const struct lm_cli_global *g, int argc, char **argv);
/* cli/exec.c: sessions through the agent (an upgraded connection each):
 * exec, a process in a running container (its exit code; 126/127 when it
 * could not be started); attach, to a running container's output (and
 * stdin when it was started with -i): its exit code. */
int lm_cli_exec(const struct lm_cli_global *g, int argc, char **argv);
int lm_cli_attach(const struct lm_cli_global *g, int argc, char **argv);

struct lm_client;
/* The one message for an agent that cannot be reached at socket: "<prog>:
 * no lamina agent is running at <socket> (start one with: lamina agent)"
 * when nothing listens there (err->code ENOENT or ECONNREFUSED), else
 * "<prog>: <err->msg>".  Returns the exit code, 125. */
int lm_cli_agent_unreachable(const char *prog, const char *socket, const struct lm_error *err);
/* A client of the agent g names: 0 and *c, or the exit code (125) after
 * lm_cli_agent_unreachable. */
int lm_cli_connect(const struct lm_cli_global *g, const char *prog, struct lm_client **c);
/* cli/exec.c: attaches to the running container ref with our stdio (a
 * terminal: tty; our stdin forwarded: send_stdin), passing the signals
 * that would end this command on to the container.  The container's exit
 * code (*exited true), or 128 + a signal that ended the session here (a
 * third SIGINT; *exited false); -1 after printing why it failed. */
int lm_cli_session_attach(struct lm_client *c, const char *prog, const char *ref, bool tty, bool send_stdin,
			  bool *exited);
/* After a failed request: prints "<prog>: <message>" and returns 1 when the
 * agent answered (status != 0); when it did not, reports it as
 * unreachable and returns 125. */
int lm_cli_agent_failed(const char *prog, const struct lm_client *c, long status, const struct lm_error *err);
/* "/v1/containers/<ref>[/<action>][?<query>]", ref escaped, query as it is;
 * NULL when out of memory. */
char *lm_cli_container_path(struct lm_client *c, const char *ref, const char *action, const char *query);

struct lm_platform;
/* "os/arch[/variant]" into p, whose strings point into buf. */
int lm_cli_parse_platform(const char *s, char *buf, size_t len, struct lm_platform *p, struct lm_error *err);

int lm_cli_open_store(const struct lm_cli_global *g, struct lm_store **s, struct lm_error *err);
/* insecure_registry: one registry allowed without TLS verification, or NULL. */
int lm_cli_registry_client(const struct lm_cli_global *g, const char *insecure_registry,
			   struct lm_registry_client **c, struct lm_error *err);
