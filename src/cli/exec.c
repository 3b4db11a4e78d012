/* `lamina exec [-i] [-e K=V] [-u USER] [-w DIR] [-d] CONTAINER CMD...`: a
 * process in a running container of the agent.
 *
 * The agent names the container (a name, id or prefix, and whether it
 * runs); the process itself is started here, by the runtime, as `lamina oci
 * exec` would: it joins every namespace and the cgroup of the container, and
 * this command's stdio is its stdio (so pipes and redirections work as with
 * docker exec -i).  Going through the agent's API with an upgraded
 * connection (for a remote CLI, and for -t) is not implemented yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/opts.h"
#include "image/passwd.h"
#include "runtime/container.h"
#include "util/cleanup.h"

int lm_cli_exec(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina exec";
	bool interactive = false, tty = false, detach = false, privileged = false;
	const char *user = NULL, *workdir = NULL;
	struct strlist env = {0};
	struct opt opts[] = {
		{"interactive", 'i', OPT_FLAG, &interactive},
		{"tty", 't', OPT_FLAG, &tty},
		{"detach", 'd', OPT_FLAG, &detach},
		{"env", 'e', OPT_LIST, &env},
		{"user", 'u', OPT_STRING, &user},
		{"workdir", 'w', OPT_STRING, &workdir},
		{"privileged", 0, OPT_FLAG, &privileged},
		{NULL, 0, 0, NULL},
	};
	int i = 1, rc = 2;
	struct lm_client *c = NULL;
	json_t *info = NULL;
	char *path = NULL;
	int rootfd = -1;
	struct lm_user u = {0};
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 2, -1, prog, "[OPTIONS] CONTAINER COMMAND [ARG...]") < 0)
		goto out;
	if (tty) {
		fprintf(stderr, "%s: -t (a terminal) is not implemented yet\n", prog);
		goto out;
	}
	if (privileged) {
		fprintf(stderr, "%s: --privileged is not implemented yet\n", prog);
		goto out;
	}
	for (size_t k = 0; k < env.n; k++)
		if (!strchr(env.v[k], '=') || env.v[k][0] == '=') {
			fprintf(stderr, "%s: -e %s: expected NAME=value\n", prog, env.v[k]);
			goto out;
		}
	if (workdir && workdir[0] != '/') {
		fprintf(stderr, "%s: -w %s: expected an absolute path\n", prog, workdir);
		goto out;
	}
	rc = lm_cli_connect(g, prog, &c);
	if (rc)
		goto out;
	struct lm_error err = {0};
	long status = 0;
	path = lm_cli_container_path(c, argv[i], NULL, NULL);
	if (!path || lm_client_call(c, "GET", path, NULL, &status, &info, &err) < 0) {
		rc = path ? lm_cli_agent_failed(prog, c, status, &err) : 125;
		goto out;
	}
	const char *id = json_string_value(json_object_get(info, "id"));
	json_int_t pid = json_integer_value(json_object_get(info, "pid"));
	if (!id || strcmp(json_string_value(json_object_get(info, "status")), "running") != 0 || pid <= 0) {
		fprintf(stderr, "%s: container %s is not running\n", prog, argv[i]);
		rc = 1;
		goto out;
	}
	/* a user name means what the container's /etc/passwd says */
	char idbuf[32];
	if (user) {
		char proc_root[64];
		snprintf(proc_root, sizeof(proc_root), "/proc/%lld/root", (long long)pid);
		rootfd = open(proc_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (lm_image_user_resolve(rootfd, user, &u, &err) < 0) {
			fprintf(stderr, "%s: -u %s: %s\n", prog, user, err.msg);
			rc = 1;
			goto out;
		}
		snprintf(idbuf, sizeof(idbuf), "%u:%u", u.uid, u.gid);
	}
	char oci_root[4096];
	snprintf(oci_root, sizeof(oci_root), "%s/oci", g->state);
	struct lm_exec_opts eo = {
		.root = oci_root,
		.id = id,
		.args = argv + i + 1,
		.env = env.v,
		.cwd = workdir,
		.user = user ? idbuf : NULL,
		.detach = detach,
	};
	if (!interactive) {
		/* docker gives the process no stdin without -i */
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			close(null);
		}
	}
	struct lm_exit ex = {0};
	if (lm_container_exec(&eo, &ex, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		bool not_found = strstr(err.msg, "executable file not found") || (err.code == ENOENT && strstr(err.msg, "exec"));
		rc = not_found ? 127 : err.code == EACCES ? 126 : 125;
		goto out;
	}
	rc = detach ? 0 : ex.code;
out:
	if (rootfd >= 0)
		close(rootfd);
	lm_user_free(&u);
	free(path);
	json_decref(info);
	lm_client_close(c);
	free(env.v);
	return rc;
}
