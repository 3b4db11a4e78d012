/* `lamina oci`: the OCI runtime command line, shaped like runc's so that
 * tools which drive runc (podman --runtime, conformance suites) can drive
 * lamina.  Options come before positional arguments, as with runc; both
 * "--opt value" and "--opt=value" are accepted.  Global flags runc has that
 * mean nothing here are accepted and noted in the debug log. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "runtime/cgroup.h"
#include "runtime/container.h"
#include "runtime/seccomp.h"
#include "runtime/spec.h"
#include "util/log.h"

static int fail(const struct lm_error *err)
{
	lm_log(LM_LOG_ERROR, "%s", err->msg);
	return 1;
}


static int print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return 1;
	printf("%s\n", s);
	free(s);
	return 0;
}

struct global {
	const char *root;
};

static int cmd_create(struct global *g, int argc, char **argv, bool run)
{
	struct lm_create_opts o = {.root = g->root};
	bool detach = false, ignored = false;
	const char *ignored_s = NULL;
	struct opt opts[] = {
		{"bundle", 'b', OPT_STRING, &o.bundle},
		{"pid-file", 0, OPT_STRING, &o.pid_file},
		{"console-socket", 0, OPT_STRING, &o.console_socket},
		{"detach", 'd', OPT_FLAG, &detach},
		{"preserve-fds", 0, OPT_INT, &o.preserve_fds},
		{"no-pivot", 0, OPT_FLAG, &ignored},
		{"no-new-keyring", 0, OPT_FLAG, &ignored},
		{"notify-socket", 0, OPT_STRING, &ignored_s},
		{"keep", 0, OPT_FLAG, &ignored},
		{NULL, 0, 0, NULL},
	};
	const char *prog = run ? "lamina oci run" : "lamina oci create";
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, prog) < 0 || need_args(argc, i, 1, 1, prog, "[options] ID") < 0)
		return 2;
	if (ignored || ignored_s)
		lm_debug("%s: ignoring --no-pivot/--no-new-keyring/--notify-socket/--keep (not applicable)", prog);
	o.id = argv[i];
	o.detach = detach;
	struct lm_error err = {0};
	if (!run)
		return lm_container_create(&o, &err) < 0 ? fail(&err) : 0;
	struct lm_exit ex;
	if (lm_container_run(&o, &ex, &err) < 0) {
		fail(&err);
		if (err.code == ENOENT && strstr(err.msg, "exec"))
			return 127;
		return ex.code ? ex.code : 1;
	}
	if (ex.oom_killed)
		lm_log(LM_LOG_WARN, "container %s was killed: out of memory (OOM)", o.id);
	return ex.code;
}

static int cmd_simple(struct global *g, int argc, char **argv, const char *cmd)
{
	bool force = false, all = false;
	struct opt opts[] = {
		{"force", 'f', OPT_FLAG, &force},
		{"all", 'a', OPT_FLAG, &all},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	bool is_kill = strcmp(cmd, "kill") == 0;
	char prog[64];
	snprintf(prog, sizeof(prog), "lamina oci %s", cmd);
	if (parse_opts(argc, argv, &i, opts, prog) < 0 ||
	    need_args(argc, i, 1, is_kill ? 2 : 1, prog, is_kill ? "[--all] ID [SIGNAL]" : "ID") < 0)
		return 2;
	const char *id = argv[i];
	struct lm_error err = {0};
	if (strcmp(cmd, "start") == 0)
		return lm_container_start(g->root, id, &err) < 0 ? fail(&err) : 0;
	if (strcmp(cmd, "delete") == 0)
		return lm_container_delete(g->root, id, force, &err) < 0 ? fail(&err) : 0;
	if (strcmp(cmd, "state") == 0) {
		json_t *st;
		if (lm_container_state(g->root, id, &st, &err) < 0)
			return fail(&err);
		return print_json(st);
	}
	/* kill */
	int sig = 15;
	if (i + 1 < argc && lm_signal_parse(argv[i + 1], &sig) < 0) {
		lm_err(&err, EINVAL, "kill: unknown signal \"%s\"", argv[i + 1]);
		return fail(&err);
	}
	return lm_container_kill(g->root, id, sig, all, &err) < 0 ? fail(&err) : 0;
}

static int cmd_list(struct global *g, int argc, char **argv)
{
	const char *format = "table";
	bool quiet = false;
	struct opt opts[] = {
		{"format", 'f', OPT_STRING, &format},
		{"quiet", 'q', OPT_FLAG, &quiet},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, "lamina oci list") < 0 || need_args(argc, i, 0, 0, "lamina oci list", "[--format table|json] [-q]") < 0)
		return 2;
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0) {
		fprintf(stderr, "lamina oci list: --format must be table or json\n");
		return 2;
	}
	json_t *arr;
	struct lm_error err = {0};
	if (lm_container_list(g->root, &arr, &err) < 0)
		return fail(&err);
	if (strcmp(format, "json") == 0)
		return print_json(arr);
	if (!quiet)
		printf("%-24s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
	size_t idx;
	json_t *c;
	json_array_foreach(arr, idx, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		if (quiet) {
			printf("%s\n", id);
			continue;
		}
		printf("%-24s %-8lld %-10s %-40s %s\n", id, (long long)json_integer_value(json_object_get(c, "pid")),
		       json_string_value(json_object_get(c, "status")),
		       json_string_value(json_object_get(c, "bundle")),
		       json_string_value(json_object_get(c, "created")));
	}
	json_decref(arr);
	return 0;
}

static int cmd_exec(struct global *g, int argc, char **argv)
{
	struct lm_exec_opts o = {.root = g->root};
	struct strlist env = {0}, caps = {0};
	bool ignored = false;
	const char *nnp = NULL, *ignored_s = NULL;
	struct opt opts[] = {
		{"tty", 't', OPT_FLAG, &o.tty},
		{"console-socket", 0, OPT_STRING, &o.console_socket},
		{"env", 'e', OPT_LIST, &env},
		{"cwd", 0, OPT_STRING, &o.cwd},
		{"user", 'u', OPT_STRING, &o.user},
		{"detach", 'd', OPT_FLAG, &o.detach},
		{"process", 'p', OPT_STRING, &o.process_json},
		{"pid-file", 0, OPT_STRING, &o.pid_file},
		{"cap", 'c', OPT_LIST, &caps},
		{"no-new-privs", 0, OPT_STRING, &nnp},
		{"preserve-fds", 0, OPT_INT, &o.preserve_fds},
		{"process-label", 0, OPT_STRING, &ignored_s},
		{"apparmor", 0, OPT_STRING, &ignored_s},
		{"ignore-paused", 0, OPT_FLAG, &ignored},
		{NULL, 0, 0, NULL},
	};
	int i = 1, rc = 2;
	if (parse_opts(argc, argv, &i, opts, "lamina oci exec") < 0)
		goto out;
	if (argc - i < 1 || (!o.process_json && argc - i < 2)) {
		fprintf(stderr, "usage: lamina oci exec [options] ID COMMAND [ARGS...]\n"
				"       lamina oci exec [options] --process process.json ID\n");
		goto out;
	}
	if (nnp) {
		o.no_new_privs_set = true;
		o.no_new_privs = strcmp(nnp, "false") != 0;
	}
	o.id = argv[i];
	o.args = argv + i + 1;
	o.env = env.v;
	o.cap_add = caps.v;
	struct lm_exit ex;
	struct lm_error err = {0};
	if (lm_container_exec(&o, &ex, &err) < 0) {
		fail(&err);
		rc = err.code == ENOENT && strstr(err.msg, "exec") ? 127 : err.code == EACCES ? 126 : 255;
		goto out;
	}
	rc = ex.code;
out:
	free(env.v);
	free(caps.v);
	return rc;
}

static int cmd_features(void)
{
	json_t *ns = json_pack("[s,s,s,s,s,s,s,s]", "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time");
	json_t *capl = json_array();
	for (int c = 0; c <= 40; c++)
		json_array_append_new(capl, json_string(lm_cap_name(c)));
	enum lm_cgroup_mode mode = lm_cgroup_host_mode();
	json_t *mopts = json_pack("[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]", "async",
				  "atime", "bind", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
				  "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime",
				  "nosuid", "nosymfollow", "private", "rbind", "relatime", "remount", "ro",
				  "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
				  "strictatime", "unbindable");
	json_t *o = json_pack(
		"{s:s,s:s,s:[ssssss],s:o,s:{s:o,s:o,s:{s:b,s:b,s:b,s:b},s:o,s:{s:b},s:{s:b},s:{s:b}},s:{s:s,s:s}}",
		"ociVersionMin", "1.0.0", "ociVersionMax", "1.2.0", "hooks", "prestart", "createRuntime",
		"createContainer", "startContainer", "poststart", "poststop", "mountOptions", mopts, "linux",
		"namespaces", ns, "capabilities", capl, "cgroup", "v1", mode != LM_CGROUP_V2, "v2",
		mode != LM_CGROUP_V1, "systemd", false, "systemdUser", false, "seccomp", lm_seccomp_features(),
		"apparmor", "enabled", false, "selinux", "enabled", false, "intelRdt", "enabled", false,
		"annotations", "org.lamina.runtime.version", LAMINA_VERSION,
		"org.lamina.cgroup.v2.devices",
		"device rules apply on cgroup v1 and hybrid hosts; on pure cgroup v2 they are not enforced yet");
	if (!o) {
		fprintf(stderr, "lamina oci features: out of memory\n");
		return 1;
	}
	return print_json(o);
}

/* Add a capability to the three sets of the default spec (they may share one array). */
static int spec_add_cap(json_t *spec, const char *name)
{
	if (lm_cap_from_name(name) < 0) {
		fprintf(stderr, "lamina oci spec: --cap-add %s: unknown capability\n", name);
		return -1;
	}
	json_t *caps = json_object_get(json_object_get(spec, "process"), "capabilities");
	const char *sets[] = {"bounding", "effective", "permitted"};
	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
		json_t *set = json_object_get(caps, sets[s]);
		size_t i;
		json_t *c;
		bool have = false;
		json_array_foreach(set, i, c) have = have || strcmp(json_string_value(c), name) == 0;
		if (!have && json_array_append_new(set, json_string(name)) < 0)
			return -1;
	}
	return 0;
}

/* linux.seccomp: the built-in profile, for the capabilities the spec grants. */
static int spec_add_seccomp(json_t *spec)
{
	json_t *bounding = json_object_get(json_object_get(json_object_get(spec, "process"), "capabilities"),
					   "bounding");
	size_t n = json_array_size(bounding), i;
	const char **names = calloc(n + 1, sizeof(char *));
	json_t *c, *profile = NULL;
	if (!names)
		return -1;
	json_array_foreach(bounding, i, c) names[i] = json_string_value(c);
	struct lm_error err = {0};
	int r = lm_seccomp_default_profile(names, &profile, &err);
	free(names);
	if (r < 0) {
		fprintf(stderr, "lamina oci spec: %s\n", err.msg);
		return -1;
	}
	return json_object_set_new(json_object_get(spec, "linux"), "seccomp", profile);
}

static int cmd_spec(int argc, char **argv)
{
	const char *bundle = ".";
	bool seccomp = false;
	struct strlist caps = {0};
	struct opt opts[] = {
		{"bundle", 'b', OPT_STRING, &bundle},
		{"seccomp-default", 0, OPT_FLAG, &seccomp},
		{"cap-add", 0, OPT_LIST, &caps},
		{NULL, 0, 0, NULL},
	};
	int i = 1, rc = 1;
	json_t *spec = NULL;
	if (parse_opts(argc, argv, &i, opts, "lamina oci spec") < 0 ||
	    need_args(argc, i, 0, 0, "lamina oci spec", "[--bundle DIR] [--cap-add CAP]... [--seccomp-default]") < 0) {
		rc = 2;
		goto out;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "lamina oci spec: %s exists already: remove it first\n", path);
		goto out;
	}
	spec = lm_spec_default();
	if (!spec) {
		fprintf(stderr, "lamina oci spec: out of memory\n");
		goto out;
	}
	for (size_t c = 0; c < caps.n; c++)
		if (spec_add_cap(spec, caps.v[c]) < 0)
			goto out;
	if (seccomp && spec_add_seccomp(spec) < 0)
		goto out;
	if (json_dump_file(spec, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
		fprintf(stderr, "lamina oci spec: cannot write %s: %s\n", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	json_decref(spec);
	free(caps.v);
	return rc;
}

static void oci_usage(FILE *out)
{
	fprintf(out,
		"Usage: lamina oci [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND\n"
		"\n"
		"Commands (as runc's):\n"
		"  create [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N] ID\n"
		"  start ID\n"
		"  state ID\n"
		"  kill [--all] ID [SIGNAL]\n"
		"  delete [--force] ID\n"
		"  run [--bundle DIR] [--detach] [--pid-file F] [--console-socket S] ID\n"
		"  exec [--tty] [--console-socket S] [--env K=V] [--cwd D] [--user U[:G]] [--detach]\n"
		"       [--process process.json] [--pid-file F] ID [COMMAND ARGS...]\n"
		"  list [--format table|json] [-q]\n"
		"  features\n"
		"  spec [--bundle DIR] [--cap-add CAP]... [--seccomp-default]\n"
		"                         write a default config.json (with lamina's default seccomp profile)\n");
}

int lm_cli_oci(int argc, char **argv)
{
	struct global g = {.root = LM_DEFAULT_STATE_ROOT};
	const char *log_path = NULL, *log_format = "text", *ignored_s = NULL;
	bool debug = false, ignored = false, help = false, version = false;
	struct opt opts[] = {
		{"root", 0, OPT_STRING, &g.root},
		{"log", 0, OPT_STRING, &log_path},
		{"log-format", 0, OPT_STRING, &log_format},
		{"debug", 0, OPT_FLAG, &debug},
		{"systemd-cgroup", 0, OPT_FLAG, &ignored},
		{"rootless", 0, OPT_STRING, &ignored_s},
		{"criu", 0, OPT_STRING, &ignored_s},
		{"help", 'h', OPT_FLAG, &help},
		{"version", 'v', OPT_FLAG, &version},
		{NULL, 0, 0, NULL},
	};
	int i = 1;
	if (parse_opts(argc, argv, &i, opts, "lamina oci") < 0)
		return 2;
	if (strcmp(log_format, "text") != 0 && strcmp(log_format, "json") != 0) {
		fprintf(stderr, "lamina oci: --log-format must be text or json\n");
		return 2;
	}
	if (lm_log_open(log_path, strcmp(log_format, "json") == 0, debug) < 0) {
		fprintf(stderr, "lamina oci: cannot open log file %s\n", log_path);
		return 2;
	}
	if (ignored || ignored_s)
		lm_debug("ignoring --systemd-cgroup/--rootless/--criu: not applicable to lamina");
	if (version) {
		printf("lamina version %s\nspec: 1.2.0\n", LAMINA_VERSION);
		return 0;
	}
	if (help || i >= argc) {
		oci_usage(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	char *cmd = argv[i];
	int sub_argc = argc - i;
	char **sub_argv = argv + i;
	if (strcmp(cmd, "create") == 0)
		return cmd_create(&g, sub_argc, sub_argv, false);
	if (strcmp(cmd, "run") == 0)
		return cmd_create(&g, sub_argc, sub_argv, true);
	if (strcmp(cmd, "start") == 0 || strcmp(cmd, "state") == 0 || strcmp(cmd, "kill") == 0 ||
	    strcmp(cmd, "delete") == 0)
		return cmd_simple(&g, sub_argc, sub_argv, cmd);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "exec") == 0)
		return cmd_exec(&g, sub_argc, sub_argv);
	if (strcmp(cmd, "features") == 0)
		return cmd_features();
	if (strcmp(cmd, "spec") == 0)
		return cmd_spec(sub_argc, sub_argv);
	fprintf(stderr, "lamina oci: unknown command \"%s\"\n", cmd);
	oci_usage(stderr);
	return 2;
}
