/* `lamina exec` and `lamina attach`, and the attached part of `lamina run`:
 * sessions through the agent's API (docs/api.md, "Attach and exec").
 *
 * Each is one upgraded connection (lm_client_upgrade) run by
 * lm_attach_session with this command's stdio.  The agent and the
 * container's monitor do the rest: exec resolves the user in the
 * container's /etc/passwd and starts the process there, so nothing here
 * needs the runtime or the container's files, and the CLI could as well
 * talk to an agent it reaches through a forwarded socket.
 *
 * Attached to a container (run, attach), the signals that would end this
 * command go to the container instead, as docker's --sig-proxy does; a
 * third SIGINT gives up (130) and leaves it running (`run --rm` then
 * removes it by force).  An exec'd process has no API to signal it: a
 * signal ends the session (128 + the signal).  Detaching with a key
 * sequence (docker's ctrl-p ctrl-q) is not there yet.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/attach.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/opts.h"
#include "util/cleanup.h"

#define EXIT_LAMINA 125

/* --- attached to a container --- */

struct sig_proxy {
	struct lm_client *c;
	const char *ref;
	int interrupts;
};

static int proxy_signal(int sig, void *ctx)
{
	struct sig_proxy *p = ctx;
	if (sig == SIGINT && ++p->interrupts >= 3)
		return -1;
	char query[32];
	snprintf(query, sizeof(query), "signal=%d", sig);
	autofree char *path = lm_cli_container_path(p->c, p->ref, "kill", query);
	struct lm_error err = {0};
	long status = 0;
	/* a container that has just ended (409) is no reason to stop: its
	 * EXIT frame is on its way */
	if (path)
		lm_client_call(p->c, "POST", path, NULL, &status, NULL, &err);
	return 0;
}

int lm_cli_session_attach(struct lm_client *c, const char *prog, const char *ref, bool tty, bool send_stdin,
			  bool *exited)
{
	struct lm_error err = {0};
	long status = 0;
	autofd fd = -1;
	*exited = false;
	autofree char *path = lm_cli_container_path(c, ref, "attach", send_stdin ? "stdin=1" : "stdin=0");
	if (!path) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	if (lm_client_upgrade(c, path, NULL, &fd, &status, &err) < 0) {
		lm_cli_agent_failed(prog, c, status, &err);
		return -1;
	}
	struct sig_proxy proxy = {.c = c, .ref = ref};
	struct lm_attach_opts o = {
		.in = STDIN_FILENO,
		.out = STDOUT_FILENO,
		.err = STDERR_FILENO,
		.send_stdin = send_stdin,
		.tty = tty,
		.on_signal = proxy_signal,
		.ctx = &proxy,
	};
	struct lm_attach_end end;
	if (lm_attach_session(fd, &o, &end, &err) < 0) {
		if (end.interrupted)
			return 128 + end.interrupted;
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return -1;
	}
	if (end.oom_killed)
		fprintf(stderr, "%s: the container was killed: out of memory\n", prog);
	*exited = true;
	return end.exit_code;
}

int lm_cli_attach(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina attach";
	bool no_stdin = false;
	struct opt opts[] = {
		{"no-stdin", 0, OPT_FLAG, &no_stdin},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 1, 1, prog, "[--no-stdin] CONTAINER") < 0)
		return 2;
	autoclient *c = NULL;
	json_auto_t *info = NULL;
	struct lm_error err = {0};
	long status = 0;
	int rc = lm_cli_connect(g, prog, &c);
	if (rc)
		return rc;
	autofree char *path = lm_cli_container_path(c, argv[i], NULL, NULL);
	if (!path) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	if (lm_client_call(c, "GET", path, NULL, &status, &info, &err) < 0)
		return lm_cli_agent_failed(prog, c, status, &err);
	const char *st = json_string_value(json_object_get(info, "status"));
	const char *id = json_string_value(json_object_get(info, "id"));
	if (!id || !st || strcmp(st, "running") != 0) {
		fprintf(stderr, "%s: container %s is not running (start it first)\n", prog, argv[i]);
		return 1;
	}
	/* as it was started: a terminal, a stdin kept open (run -t, -i) */
	json_t *spec = json_object_get(info, "spec");
	bool tty = json_is_true(json_object_get(spec, "tty"));
	bool send_stdin = json_is_true(json_object_get(spec, "interactive")) && !no_stdin;
	if (tty && send_stdin && !isatty(STDIN_FILENO)) {
		fprintf(stderr, "%s: the input device is not a TTY (use --no-stdin)\n", prog);
		return 1;
	}
	bool exited;
	rc = lm_cli_session_attach(c, prog, id, tty, send_stdin, &exited);
	return rc < 0 ? 1 : rc;
}

/* --- exec --- */

/* The exit code of an exec whose process could not be started, as docker
 * has them: 127 for a command that is not there, 126 for one that cannot
 * be run. */
static int exec_failure_code(const struct lm_error *err)
{
	if (err->code == ENOENT || strcasestr(err->msg, "not found") || strcasestr(err->msg, "no such file"))
		return 127;
	if (err->code == EACCES || strcasestr(err->msg, "permission denied"))
		return 126;
	return EXIT_LAMINA;
}

static json_t *exec_body(char **args, const struct strlist *env, const char *user, const char *workdir, bool tty,
			 bool interactive)
{
	json_t *a = json_array(), *e = json_array();
	for (char **p = args; *p; p++)
		json_array_append_new(a, json_string(*p));
	for (size_t k = 0; k < env->n; k++)
		json_array_append_new(e, json_string(env->v[k]));
	json_t *body = json_pack("{s:o, s:o, s:s*, s:s*, s:b, s:b}", "args", a, "env", e, "user", user, "cwd",
				 workdir, "tty", tty, "stdin", interactive);
	unsigned rows, cols;
	if (body && tty && lm_attach_term_size(&rows, &cols) == 0) {
		json_object_set_new(body, "rows", json_integer(rows));
		json_object_set_new(body, "cols", json_integer(cols));
	}
	return body;
}

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
	json_t *body = NULL;
	char *path = NULL;
	int fd = -1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 2, -1, prog, "[OPTIONS] CONTAINER COMMAND [ARG...]") < 0)
		goto out;
	if (detach) {
		fprintf(stderr, "%s: -d (a detached exec) is not supported through the agent's API yet\n", prog);
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
	if (tty && interactive && !isatty(STDIN_FILENO)) {
		fprintf(stderr, "%s: the input device is not a TTY\n", prog);
		rc = 1;
		goto out;
	}
	rc = lm_cli_connect(g, prog, &c);
	if (rc)
		goto out;
	struct lm_error err = {0};
	long status = 0;
	path = lm_cli_container_path(c, argv[i], "exec", NULL);
	body = exec_body(argv + i + 1, &env, user, workdir, tty, interactive);
	if (!path || !body) {
		fprintf(stderr, "%s: out of memory\n", prog);
		rc = 1;
		goto out;
	}
	if (lm_client_upgrade(c, path, body, &fd, &status, &err) < 0) {
		/* the process could not be started: the agent says why in errno
		 * terms (start_failed); a bad request is EINVAL, a 404 the container's */
		if (status == 400 && (err.code == ENOENT || err.code == EACCES)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			rc = exec_failure_code(&err);
		} else {
			rc = lm_cli_agent_failed(prog, c, status, &err);
		}
		goto out;
	}
	struct lm_attach_opts o = {
		.in = STDIN_FILENO,
		.out = STDOUT_FILENO,
		.err = STDERR_FILENO,
		.send_stdin = interactive,
		.tty = tty,
	};
	struct lm_attach_end end;
	if (lm_attach_session(fd, &o, &end, &err) < 0) {
		if (end.interrupted) {
			rc = 128 + end.interrupted;
			goto out;
		}
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = end.error_frame ? exec_failure_code(&err) : EXIT_LAMINA;
		goto out;
	}
	if (end.oom_killed)
		fprintf(stderr, "%s: the process was killed: out of memory\n", prog);
	rc = end.exit_code;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	json_decref(body);
	lm_client_close(c);
	free(env.v);
	return rc;
}
