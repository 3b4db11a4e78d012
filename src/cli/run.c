/* `lamina run [OPTIONS] IMAGE [CMD...]`.
 *
 * The options become a create request (agent/run_spec.h), the same JSON
 * whichever way the container runs:
 *  - with an agent listening: the image is pulled here (as the policy says),
 *    then the agent creates and starts the container; without -d this command
 *    follows its log and returns its exit code (removing it with --rm).  With
 *    -i or -t it attaches instead (an upgraded connection, cli/exec.c): the
 *    container starts only once attached, so none of its output is missed,
 *    and its stdin (-i) and terminal (-t) are ours.
 *  - without an agent, only `run --rm` in the foreground: the container is
 *    this command's child, its writable layer is mounted only inside its own
 *    mount namespace, and everything is removed when it ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/prepare.h"
#include "agent/run_spec.h"
#include "cli/attach.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/opts.h"
#include "image/pull.h"
#include "image/store.h"
#include "monitor/logfile.h"
#include "runtime/container.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/random.h"

#define EXIT_LAMINA 125  /* lamina itself failed, as docker and podman say it */

struct run_flags {
	bool rm, detach, read_only, privileged, tty, interactive;
	const char *name, *workdir, *user, *hostname, *memory, *cpus, *network, *pull, *platform, *entrypoint,
		*restart, *stop_signal;
	int pids, stop_timeout;
	struct strlist env, env_files, volumes, tmpfs, cap_add, cap_drop, security_opts;
};

static json_t *string_array(char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* KEY=VALUE lines; blank lines and # comments skipped; a bare KEY takes our
 * environment's value, as docker does. */
static int read_env_file(const char *path, json_t *env, const char *prog)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "%s: --env-file %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0, lineno = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		char *p = line + strspn(line, " \t");
		if (!*p || *p == '#')
			continue;
		if (*p == '=') {
			fprintf(stderr, "%s: --env-file %s:%d: a variable needs a name\n", prog, path, lineno);
			rc = -1;
			break;
		}
		if (strchr(p, '=')) {
			json_array_append_new(env, json_string(p));
		} else if (getenv(p)) {
			char *kv;
			if (asprintf(&kv, "%s=%s", p, getenv(p)) >= 0) {
				json_array_append_new(env, json_string(kv));
				free(kv);
			}
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static int parse_volume(const char *spec, json_t *mounts)
{
	/* SRC:DST[:ro|rw] with an absolute host path */
	char *copy = strdup(spec);
	if (!copy)
		return -1;
	char *dst = strchr(copy, ':');
	int rc = -1;
	if (!dst || copy[0] != '/')
		goto out;
	*dst++ = '\0';
	char *mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (dst[0] != '/' || (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0))
		goto out;
	json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:b}", "type", "bind", "source", copy, "target",
						dst, "readonly", mode && strcmp(mode, "ro") == 0));
	rc = 0;
out:
	free(copy);
	return rc;
}

/* The create request; NULL after printing why. */
static json_t *build_request(struct run_flags *f, int argc, char **argv, int i, const char *prog)
{
	json_t *req = json_object();
	json_object_set_new(req, "image", json_string(argv[i]));
	if (argc - i > 1)
		json_object_set_new(req, "cmd", string_array(argv + i + 1, (size_t)(argc - i - 1)));
	if (f->entrypoint)
		json_object_set_new(req, "entrypoint",
				    f->entrypoint[0] ? string_array((char **)&f->entrypoint, 1) : json_array());
	json_t *env = string_array(f->env.v, f->env.n);
	for (size_t k = 0; k < f->env_files.n; k++)
		if (read_env_file(f->env_files.v[k], env, prog) < 0) {
			json_decref(env);
			json_decref(req);
			return NULL;
		}
	json_object_set_new(req, "env", env);
	json_t *mounts = json_array();
	json_object_set_new(req, "mounts", mounts);
	for (size_t k = 0; k < f->volumes.n; k++)
		if (parse_volume(f->volumes.v[k], mounts) < 0) {
			fprintf(stderr, "%s: -v %s: expected /host/path:/container/path[:ro|rw]\n", prog, f->volumes.v[k]);
			json_decref(req);
			return NULL;
		}
	for (size_t k = 0; k < f->tmpfs.n; k++)
		json_array_append_new(mounts, json_pack("{s:s, s:s}", "type", "tmpfs", "target", f->tmpfs.v[k]));
	const struct {
		const char *key, *val;
	} strings[] = {
		{"name", f->name},       {"workdir", f->workdir},         {"user", f->user},
		{"hostname", f->hostname}, {"network", f->network},       {"restart", f->restart},
		{"stop_signal", f->stop_signal}, {"memory", f->memory},   {"platform", f->platform},
	};
	for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++)
		if (strings[k].val)
			json_object_set_new(req, strings[k].key, json_string(strings[k].val));
	int64_t bytes;
	if (f->memory && lm_parse_size(f->memory, &bytes) < 0) {
		fprintf(stderr, "%s: --memory %s: expected a size like 64Mi, 512m or 1g\n", prog, f->memory);
		json_decref(req);
		return NULL;
	}
	if (f->cpus) {
		char *end;
		double v = strtod(f->cpus, &end);
		if (*end || end == f->cpus || !(v > 0)) {
			fprintf(stderr, "%s: --cpus %s: expected a positive number\n", prog, f->cpus);
			json_decref(req);
			return NULL;
		}
		json_object_set_new(req, "cpus", json_real(v));
	}
	if (f->pids)
		json_object_set_new(req, "pids_limit", json_integer(f->pids));
	for (size_t k = 0; k < f->security_opts.n; k++) {
		const char *o = f->security_opts.v[k];
		if (strcmp(o, "seccomp=unconfined") == 0 || strcmp(o, "seccomp=default") == 0) {
			json_object_set_new(req, "seccomp", json_string(o + 8));
		} else {
			fprintf(stderr, "%s: --security-opt %s: only seccomp=unconfined|default is supported\n", prog, o);
			json_decref(req);
			return NULL;
		}
	}
	if (f->stop_timeout >= 0)
		json_object_set_new(req, "stop_timeout", json_integer(f->stop_timeout));
	if (f->read_only)
		json_object_set_new(req, "read_only", json_true());
	if (f->privileged)
		json_object_set_new(req, "privileged", json_true());
	json_object_set_new(req, "cap_add", string_array(f->cap_add.v, f->cap_add.n));
	json_object_set_new(req, "cap_drop", string_array(f->cap_drop.v, f->cap_drop.n));
	return req;
}

static int pull_image(const struct lm_cli_global *g, const char *image, const char *policy, const char *platform,
		      struct lm_store **store, struct lm_error *err)
{
	struct lm_pull_opts po = {.default_registry = g->default_registry};
	struct lm_platform plat = {0};
	struct lm_registry_client *client = NULL;
	struct lm_image_record rec = {0};
	char platbuf[128];
	if (lm_pull_policy_parse(policy, &po.policy, err) < 0)
		return -1;
	if (platform) {
		if (lm_cli_parse_platform(platform, platbuf, sizeof(platbuf), &plat, err) < 0)
			return -1;
		po.platform = &plat;
	}
	if (lm_cli_open_store(g, store, err) < 0)
		return -1;
	if (po.policy != LM_PULL_NEVER && lm_cli_registry_client(g, NULL, &client, err) < 0)
		return -1;
	int rc = lm_image_pull(*store, client, image, &po, &rec, err);
	lm_image_record_free(&rec);
	lm_registry_client_free(client);
	return rc;
}

/* --- through the agent --- */

struct follow_ctx {
	bool at_line_start;
};

static int print_log_line(const char *line, size_t len, void *ctx)
{
	(void)ctx;
	struct lm_log_entry e;
	struct lm_error err;
	if (lm_log_parse_line(line, len, &e, &err) < 0)
		return 0;
	FILE *out = e.stream == LM_LOG_STDOUT ? stdout : stderr;
	fwrite(e.msg, 1, e.len, out);
	if (!e.partial)
		fputc('\n', out);
	fflush(out);
	return 0;
}

static int exit_code_for_start(const struct lm_error *err)
{
	if (strstr(err->msg, "executable file not found") || (err->code == ENOENT && strstr(err->msg, "exec")))
		return 127;
	if (err->code == EACCES && strstr(err->msg, "exec"))
		return 126;
	return EXIT_LAMINA;
}

static void remove_container(struct lm_client *cl, const char *id, bool force, const char *prog)
{
	char path[160];
	struct lm_error err = {0};
	long status = 0;
	snprintf(path, sizeof(path), "/v1/containers/%s%s", id, force ? "?force=1" : "");
	if (lm_client_call(cl, "DELETE", path, NULL, &status, NULL, &err) < 0 && status != 404)
		fprintf(stderr, "%s: removing the container: %s\n", prog, err.msg);
}

/* -i, -t: attached to the container from its start to its end. */
static int run_attached(struct lm_client *cl, struct run_flags *f, const char *id, const char *prog)
{
	bool exited;
	int rc = lm_cli_session_attach(cl, prog, id, f->tty, f->interactive, &exited);
	if (exited) {
		/* the agent may not have recorded the end yet: a remove right
		 * away would find it running */
		char path[160];
		struct lm_error err = {0};
		long status = 0;
		snprintf(path, sizeof(path), "/v1/containers/%s/wait", id);
		lm_client_call(cl, "POST", path, NULL, &status, NULL, &err);
	}
	/* --rm without the end seen (a session that broke, a third ^C): the
	 * container would outlive the command that was to remove it */
	if (f->rm)
		remove_container(cl, id, !exited, prog);
	return rc < 0 ? EXIT_LAMINA : rc;
}

static int run_with_agent(const struct lm_cli_global *g, struct lm_client *cl, struct run_flags *f, json_t *req,
			  const char *prog)
{
	struct lm_error err = {0};
	struct lm_store *store = NULL;
	long status = 0;
	json_t *resp = NULL;
	char path[512];
	int rc = EXIT_LAMINA;
	const char *image = json_string_value(json_object_get(req, "image"));
	if (pull_image(g, image, f->pull, f->platform, &store, &err) < 0) {
		lm_store_close(store);
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_LAMINA;
	}
	lm_store_close(store);
	/* -d --rm: the agent removes it when it ends; in the foreground we do,
	 * after reading its exit code */
	if (f->rm && f->detach)
		json_object_set_new(req, "auto_remove", json_true());
	/* the monitor keeps the container's stdin open (-i), gives it a terminal (-t) */
	unsigned rows, cols;
	if (f->tty)
		json_object_set_new(req, "tty", json_true());
	if (f->tty && lm_attach_term_size(&rows, &cols) == 0)
		json_object_set_new(req, "tty_size", json_pack("{s:i, s:i}", "rows", (int)rows, "cols", (int)cols));
	if (f->interactive)
		json_object_set_new(req, "interactive", json_true());
	bool attach = !f->detach && (f->tty || f->interactive);
	if (lm_client_call(cl, "POST", "/v1/containers", req, &status, &resp, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_LAMINA;
	}
	char id[80];
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(resp, "id")));
	json_decref(resp);
	resp = NULL;
	snprintf(path, sizeof(path), "/v1/containers/%s/start%s", id, attach ? "?attach=1" : "");
	if (lm_client_call(cl, "POST", path, NULL, &status, NULL, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = exit_code_for_start(&err);
		if (f->rm) {
			snprintf(path, sizeof(path), "/v1/containers/%s?force=1", id);
			lm_client_call(cl, "DELETE", path, NULL, &status, NULL, &err);
		}
		return rc;
	}
	if (f->detach) {
		printf("%s\n", id);
		return 0;
	}
	if (attach)
		return run_attached(cl, f, id, prog);
	struct follow_ctx fc = {.at_line_start = true};
	snprintf(path, sizeof(path), "/v1/containers/%s/logs?follow=1", id);
	if (lm_client_stream(cl, "GET", path, print_log_line, &fc, &status, &err) < 0)
		fprintf(stderr, "%s: following the log: %s\n", prog, err.msg);
	snprintf(path, sizeof(path), "/v1/containers/%s/wait", id);
	if (lm_client_call(cl, "POST", path, NULL, &status, &resp, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return EXIT_LAMINA;
	}
	rc = (int)json_integer_value(json_object_get(resp, "exit_code"));
	if (json_is_true(json_object_get(resp, "oom_killed")))
		fprintf(stderr, "%s: the container was killed: out of memory\n", prog);
	if (rc < 0) {
		const char *why = json_string_value(json_object_get(resp, "error"));
		fprintf(stderr, "%s: the container's end was not recorded: %s\n", prog, why ? why : "unknown");
		rc = EXIT_LAMINA;
	}
	json_decref(resp);
	if (f->rm) {
		snprintf(path, sizeof(path), "/v1/containers/%s", id);
		if (lm_client_call(cl, "DELETE", path, NULL, &status, NULL, &err) < 0)
			fprintf(stderr, "%s: removing the container: %s\n", prog, err.msg);
	}
	return rc;
}

/* --- standalone: the container is our child --- */

static int run_standalone(const struct lm_cli_global *g, struct run_flags *f, json_t *req, const char *prog)
{
	struct lm_error err = {0};
	struct lm_run_spec spec;
	struct lm_store *store = NULL;
	struct lm_registry_client *client = NULL;
	struct lm_prepared prep = {0};
	bool prepared = false;
	char id[140], *containers_dir = NULL, *bundle = NULL;
	int rc = EXIT_LAMINA;
	if (lm_run_spec_parse(req, &spec, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 2;
	}
	if (spec.name)
		snprintf(id, sizeof(id), "%s", spec.name);
	else
		lm_random_hex(id, 6);
	struct lm_pull_opts po = {.default_registry = g->default_registry};
	struct lm_platform plat = {0};
	char platbuf[128];
	if (lm_pull_policy_parse(f->pull, &po.policy, &err) < 0)
		goto fail;
	if (f->platform) {
		if (lm_cli_parse_platform(f->platform, platbuf, sizeof(platbuf), &plat, &err) < 0)
			goto fail;
		po.platform = &plat;
	}
	if (lm_cli_open_store(g, &store, &err) < 0)
		goto fail;
	if (po.policy != LM_PULL_NEVER && lm_cli_registry_client(g, NULL, &client, &err) < 0)
		goto fail;
	if (asprintf(&containers_dir, "%s/containers", g->root) < 0 ||
	    asprintf(&bundle, "%s/bundles/%s", g->state, id) < 0) {
		lm_err(&err, ENOMEM, "out of memory");
		goto fail;
	}
	if (lm_container_prepare(store, client, &po, &spec, id, containers_dir, bundle, &prep, &err) < 0)
		goto fail;
	prepared = true;
	char oci_root[4096];
	snprintf(oci_root, sizeof(oci_root), "%s/oci", g->state);
	struct lm_create_opts co = {.root = oci_root, .id = id, .bundle = bundle};
	struct lm_exit ex;
	if (lm_container_run(&co, &ex, &err) < 0) {
		rc = exit_code_for_start(&err);
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		goto out;
	}
	if (ex.oom_killed)
		fprintf(stderr, "%s: the container was killed: out of memory\n", prog);
	rc = ex.code;
	goto out;
fail:
	fprintf(stderr, "%s: %s\n", prog, err.msg);
out:
	if (prepared) {
		struct lm_error derr;
		if (lm_prepared_destroy(&prep, &derr) < 0)
			fprintf(stderr, "%s: removing the container: %s\n", prog, derr.msg);
		lm_prepared_free(&prep);
	}
	free(containers_dir);
	free(bundle);
	lm_registry_client_free(client);
	lm_store_close(store);
	lm_run_spec_free(&spec);
	return rc;
}

int lm_cli_run(const struct lm_cli_global *g, int argc, char **argv)
{
	const char *prog = "lamina run";
	struct run_flags f = {.pull = "missing", .stop_timeout = -1};
	struct opt opts[] = {
		{"rm", 0, OPT_FLAG, &f.rm},
		{"detach", 'd', OPT_FLAG, &f.detach},
		{"name", 0, OPT_STRING, &f.name},
		{"env", 'e', OPT_LIST, &f.env},
		{"env-file", 0, OPT_LIST, &f.env_files},
		{"workdir", 'w', OPT_STRING, &f.workdir},
		{"user", 'u', OPT_STRING, &f.user},
		{"volume", 'v', OPT_LIST, &f.volumes},
		{"tmpfs", 0, OPT_LIST, &f.tmpfs},
		{"memory", 'm', OPT_STRING, &f.memory},
		{"cpus", 0, OPT_STRING, &f.cpus},
		{"pids-limit", 0, OPT_INT, &f.pids},
		{"hostname", 'h', OPT_STRING, &f.hostname},
		{"read-only", 0, OPT_FLAG, &f.read_only},
		{"cap-add", 0, OPT_LIST, &f.cap_add},
		{"cap-drop", 0, OPT_LIST, &f.cap_drop},
		{"privileged", 0, OPT_FLAG, &f.privileged},
		{"network", 0, OPT_STRING, &f.network},
		{"restart", 0, OPT_STRING, &f.restart},
		{"stop-signal", 0, OPT_STRING, &f.stop_signal},
		{"stop-timeout", 0, OPT_INT, &f.stop_timeout},
		{"tty", 't', OPT_FLAG, &f.tty},
		{"interactive", 'i', OPT_FLAG, &f.interactive},
		{"pull", 0, OPT_STRING, &f.pull},
		{"platform", 0, OPT_STRING, &f.platform},
		{"entrypoint", 0, OPT_STRING, &f.entrypoint},
		{"security-opt", 0, OPT_LIST, &f.security_opts},
		{NULL, 0, 0, NULL},
	};
	int i = 1, rc = 2;
	struct lm_client *cl = NULL;
	json_t *req = NULL;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 1, -1, prog, "[OPTIONS] IMAGE [COMMAND [ARG...]]") < 0)
		goto out;
	/* docker's check: keys typed into something that is not a terminal
	 * cannot be a terminal's input */
	if (f.tty && f.interactive && !f.detach && !isatty(STDIN_FILENO)) {
		fprintf(stderr, "%s: the input device is not a TTY\n", prog);
		rc = EXIT_LAMINA;
		goto out;
	}
	if (f.rm && f.restart && strcmp(f.restart, "no") != 0) {
		fprintf(stderr, "%s: --rm and --restart %s conflict\n", prog, f.restart);
		goto out;
	}
	req = build_request(&f, argc, argv, i, prog);
	if (!req)
		goto out;
	struct lm_error err = {0};
	if (lm_client_open(g->socket, g->state, &cl, &err) == 0) {
		rc = run_with_agent(g, cl, &f, req, prog);
		goto out;
	}
	if (f.detach || f.tty || !f.rm || (f.restart && strcmp(f.restart, "no") != 0)) {
		fprintf(stderr,
			"%s: %s: %s needs the agent (start one with: lamina agent); without it only `run --rm` "
			"in the foreground works\n",
			prog, err.msg,
			f.detach ? "-d" : f.tty ? "-t (a terminal)" : !f.rm ? "a container that outlives this command" : "--restart");
		rc = EXIT_LAMINA;
		goto out;
	}
	/* stdin passes through as it is (-i or not) */
	rc = run_standalone(g, &f, req, prog);
out:
	json_decref(req);
	lm_client_close(cl);
	free(f.env.v);
	free(f.env_files.v);
	free(f.volumes.v);
	free(f.tmpfs.v);
	free(f.cap_add.v);
	free(f.cap_drop.v);
	free(f.security_opts.v);
	return rc;
}
