/* Unit tests for the hook runner (runtime/hooks.c), outside any container:
 * what a hook gets (stdin, argv, env, cwd, fds), how each failure reads
 * (exit status, signal, exec error, timeout) and that the error stays one
 * line, that a timeout kills the hook's process group, that a helper left
 * running with the output pipe open does not hang us, and the order and
 * keep-going rules of lm_hooks_run and lm_hooks_run_warn.  Also the state
 * text the hooks read, and the "hooks" flag of state.json.
 *
 * Hooks are /bin/sh scripts in a fresh /tmp/lm-hooks-XXXXXX.
 */
#include "testutil.h"

#include <signal.h>
#include <time.h>

#include <jansson.h>

#include "runtime/internal.h"

static char tmp[64];

static int setup(void **state)
{
	(void)state;
	return tu_mkdtemp(tmp, sizeof(tmp), "hooks");
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(tmp, 0);
	return 0;
}

/* A script at tmp/name (mode 0755) with body after "#!/bin/sh"; its path in out. */
static void script(char *out, size_t size, const char *name, const char *body)
{
	int n = snprintf(out, size, "%s/%s", tmp, name);
	assert_true(n > 0 && (size_t)n < size);
	char text[4096];
	FMT(text, "#!/bin/sh\n%s\n", body);
	tu_write_file(out, text, strlen(text), 0755);
}

static struct lm_hook hook_of(char *path, char **args, char **env, int timeout)
{
	return (struct lm_hook){.path = path, .args = args, .env = env, .timeout = timeout};
}

static struct lm_hooks one_kind(enum lm_hook_kind kind, struct lm_hook *list, size_t n)
{
	struct lm_hooks h = {0};
	switch (kind) {
	case LM_HOOK_PRESTART: h.prestart = list; h.n_prestart = n; break;
	case LM_HOOK_CREATE_RUNTIME: h.create_runtime = list; h.n_create_runtime = n; break;
	case LM_HOOK_CREATE_CONTAINER: h.create_container = list; h.n_create_container = n; break;
	case LM_HOOK_START_CONTAINER: h.start_container = list; h.n_start_container = n; break;
	case LM_HOOK_POSTSTART: h.poststart = list; h.n_poststart = n; break;
	case LM_HOOK_POSTSTOP: h.poststop = list; h.n_poststop = n; break;
	}
	return h;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ tests */

static void test_hook_gets_state_args_env_cwd(void **state)
{
	(void)state;
	char path[PATH_MAX], out[PATH_MAX], body[2048];
	FMT(out, "%s/out", tmp);
	FMT(body,
	    "{ cat; echo; echo \"0=$0 1=$1 2=$2 n=$#\"; echo \"A=$A\"; /bin/pwd; /usr/bin/env | /usr/bin/sort; } > %s",
	    out);
	script(path, sizeof(path), "h", body);
	char a0[] = "ignored-argv0", a1[] = "one", a2[] = "two words", e0[] = "A=1", e1[] = "B=2";
	char *args[] = {a0, a1, a2, NULL};
	char *env[] = {e0, e1, NULL};
	struct lm_hook hk = hook_of(path, args, env, 0);
	struct lm_hooks h = one_kind(LM_HOOK_CREATE_RUNTIME, &hk, 1);
	struct lm_error err;
	assert_ok(lm_hooks_run(&h, LM_HOOK_CREATE_RUNTIME, "{\"id\":\"x\"}", tmp, &err), err);
	const char *got = tu_file_content(out);
	assert_contains(got, "{\"id\":\"x\"}\n");
	assert_contains(got, "1=one 2=two words n=2");
	assert_contains(got, "A=1\n");
	char cwd[PATH_MAX + 2];
	FMT(cwd, "\n%s\n", tmp);
	assert_contains(got, cwd);
	/* only its own environment (and what the shell adds itself) */
	assert_contains(got, "B=2\n");
	assert_null(strstr(got, "PATH=/"));
	assert_null(strstr(got, "HOME="));
}

static void test_hook_without_args_gets_its_path_as_argv0(void **state)
{
	(void)state;
	char path[PATH_MAX], out[PATH_MAX], body[512];
	FMT(out, "%s/out", tmp);
	FMT(body, "echo \"n=$#\" > %s", out);
	script(path, sizeof(path), "h", body);
	struct lm_hook hk = hook_of(path, NULL, NULL, 0);
	struct lm_hooks h = one_kind(LM_HOOK_POSTSTOP, &hk, 1);
	struct lm_error err;
	assert_ok(lm_hooks_run(&h, LM_HOOK_POSTSTOP, "{}", NULL, &err), err);
	assert_string_equal(tu_file_content(out), "n=0\n");
}

static void test_hook_gets_no_other_fds(void **state)
{
	(void)state;
	/* fds of ours that are not close-on-exec must still not reach the hook */
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(null >= 0);
	assert_int_equal(dup2(null, 5), 5);
	assert_int_equal(dup2(null, 77), 77);
	close(null);
	char path[PATH_MAX], out[PATH_MAX], body[512];
	FMT(out, "%s/out", tmp);
	/* the shell's fds, listed by a child that does not change them, one a line */
	FMT(body, "/bin/ls -1 /proc/$$/fd > %s", out);
	script(path, sizeof(path), "h", body);
	struct lm_hook hk = hook_of(path, NULL, NULL, 0);
	struct lm_hooks h = one_kind(LM_HOOK_CREATE_RUNTIME, &hk, 1);
	struct lm_error err;
	int r = lm_hooks_run(&h, LM_HOOK_CREATE_RUNTIME, "{}", NULL, &err);
	close(5);
	close(77);
	assert_ok(r, err);
	/* 0-2, and what the shell opens itself (dash: its script, on fd 10 and up) */
	char got[4096];
	FMT(got, "%s", tu_file_content(out));
	char *save = NULL;
	int n_std = 0;
	for (char *line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int fd = atoi(line);
		if (fd <= 2)
			n_std++;
		else if (fd < 10)
			fail_msg("the hook got fd %d", fd);
		assert_int_not_equal(fd, 77);
	}
	assert_int_equal(n_std, 3);
}

static void test_failing_hook_error(void **state)
{
	(void)state;
	char path[PATH_MAX];
	script(path, sizeof(path), "bad", "echo line one\necho line two >&2\nexit 3");
	struct lm_hook hk = hook_of(path, NULL, NULL, 0);
	struct lm_hooks h = one_kind(LM_HOOK_PRESTART, &hk, 1);
	struct lm_error err;
	assert_true(lm_hooks_run(&h, LM_HOOK_PRESTART, "{}", NULL, &err) < 0);
	assert_int_equal(err.code, ECANCELED);
	char want[PATH_MAX + 64];
	FMT(want, "prestart hook %s: exited with status 3 (output: line one line two)", path);
	assert_string_equal(err.msg, want);
}

static void test_killed_hook_error(void **state)
{
	(void)state;
	char path[PATH_MAX];
	script(path, sizeof(path), "bad", "kill -TERM $$");
	struct lm_hook hk = hook_of(path, NULL, NULL, 0);
	struct lm_hooks h = one_kind(LM_HOOK_START_CONTAINER, &hk, 1);
	struct lm_error err;
	assert_true(lm_hooks_run(&h, LM_HOOK_START_CONTAINER, "{}", NULL, &err) < 0);
	assert_contains(err.msg, "startContainer hook ");
	assert_contains(err.msg, "killed by signal 15");
}

static void test_long_output_is_cut_to_one_line(void **state)
{
	(void)state;
	char path[PATH_MAX];
	script(path, sizeof(path), "bad", "i=0; while [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done; exit 1");
	struct lm_hook hk = hook_of(path, NULL, NULL, 0);
	struct lm_hooks h = one_kind(LM_HOOK_CREATE_CONTAINER, &hk, 1);
	struct lm_error err;
	assert_true(lm_hooks_run(&h, LM_HOOK_CREATE_CONTAINER, "{}", NULL, &err) < 0);
	assert_null(strchr(err.msg, '\n'));
	assert_contains(err.msg, "(output: line 0 line 1 ");
	assert_contains(err.msg, "...)");
	assert_true(strlen(err.msg) < 600);
}

static void test_missing_hook(void **state)
{
	(void)state;
	char path[PATH_MAX];
	FMT(path, "%s/nope", tmp);
	struct lm_hook hk = hook_of(path, NULL, NULL, 0);
	struct lm_hooks h = one_kind(LM_HOOK_CREATE_RUNTIME, &hk, 1);
	struct lm_error err;
	assert_true(lm_hooks_run(&h, LM_HOOK_CREATE_RUNTIME, "{}", NULL, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	char want[PATH_MAX + 64];
	FMT(want, "createRuntime hook %s: exec: No such file or directory", path);
	assert_string_equal(err.msg, want);
}

static void test_timeout_kills_the_group(void **state)
{
	(void)state;
	char path[PATH_MAX], pidfile[PATH_MAX], body[512];
	FMT(pidfile, "%s/child.pid", tmp);
	FMT(body, "sleep 30 &\necho $! > %s\nwait", pidfile);
	script(path, sizeof(path), "slow", body);
	struct lm_hook hk = hook_of(path, NULL, NULL, 1);
	struct lm_hooks h = one_kind(LM_HOOK_CREATE_RUNTIME, &hk, 1);
	struct lm_error err;
	double t0 = now_s();
	assert_true(lm_hooks_run(&h, LM_HOOK_CREATE_RUNTIME, "{}", NULL, &err) < 0);
	assert_int_equal(err.code, ETIMEDOUT);
	double took = now_s() - t0;
	assert_true(took >= 0.9 && took < 5);
	char want[PATH_MAX + 64];
	FMT(want, "createRuntime hook %s: did not finish within its timeout of 1 s (killed)", path);
	assert_string_equal(err.msg, want);
	pid_t child = (pid_t)atoi(tu_file_content(pidfile));
	assert_true(child > 0);
	/* it was ours (a grandchild), reparented: gone once the kill lands */
	bool gone = false;
	for (int i = 0; i < 250 && !gone; i++) {
		char st[64];
		FMT(st, "/proc/%d/stat", child);
		FILE *f = fopen(st, "re");
		if (!f) {
			gone = true;
			break;
		}
		char line[512] = "";
		if (fgets(line, sizeof(line), f)) {
			char *p = strrchr(line, ')');
			gone = p && (p[2] == 'Z' || p[2] == 'X');
		}
		fclose(f);
		if (!gone)
			usleep(20000);
	}
	if (!gone)
		kill(child, SIGKILL);
	assert_true(gone);
}

static void test_helper_holding_the_pipe_does_not_hang(void **state)
{
	(void)state;
	char path[PATH_MAX], pidfile[PATH_MAX], body[512];
	FMT(pidfile, "%s/child.pid", tmp);
	FMT(body, "sleep 20 &\necho $! > %s\nexit 0", pidfile);
	script(path, sizeof(path), "leaves", body);
	struct lm_hook hk = hook_of(path, NULL, NULL, 0);
	struct lm_hooks h = one_kind(LM_HOOK_POSTSTART, &hk, 1);
	struct lm_error err;
	double t0 = now_s();
	int r = lm_hooks_run(&h, LM_HOOK_POSTSTART, "{}", NULL, &err);
	double took = now_s() - t0;
	pid_t child = (pid_t)atoi(tu_file_content(pidfile));
	if (child > 0)
		kill(child, SIGKILL);
	assert_ok(r, err);
	assert_true(took < 5);
}

static void test_run_stops_at_first_failure(void **state)
{
	(void)state;
	char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX], log[PATH_MAX], body[512];
	FMT(log, "%s/log", tmp);
	FMT(body, "echo one >> %s", log);
	script(p1, sizeof(p1), "one", body);
	FMT(body, "echo two >> %s; exit 1", log);
	script(p2, sizeof(p2), "two", body);
	FMT(body, "echo three >> %s", log);
	script(p3, sizeof(p3), "three", body);
	struct lm_hook list[] = {hook_of(p1, NULL, NULL, 0), hook_of(p2, NULL, NULL, 0), hook_of(p3, NULL, NULL, 0)};
	struct lm_hooks h = one_kind(LM_HOOK_CREATE_RUNTIME, list, 3);
	struct lm_error err;
	assert_true(lm_hooks_run(&h, LM_HOOK_CREATE_RUNTIME, "{}", NULL, &err) < 0);
	assert_string_equal(tu_file_content(log), "one\ntwo\n");
	assert_contains(err.msg, "/two: exited with status 1");
	/* the other kinds of the same struct are empty */
	assert_ok(lm_hooks_run(&h, LM_HOOK_PRESTART, "{}", NULL, &err), err);
}

static void test_run_warn_keeps_going(void **state)
{
	(void)state;
	char p1[PATH_MAX], p2[PATH_MAX], log[PATH_MAX], body[512];
	FMT(log, "%s/log", tmp);
	FMT(body, "echo one >> %s; exit 1", log);
	script(p1, sizeof(p1), "one", body);
	FMT(body, "echo two >> %s", log);
	script(p2, sizeof(p2), "two", body);
	struct lm_hook list[] = {hook_of(p1, NULL, NULL, 0), hook_of(p2, NULL, NULL, 0)};
	struct lm_hooks h = one_kind(LM_HOOK_POSTSTOP, list, 2);
	lm_hooks_run_warn(&h, LM_HOOK_POSTSTOP, "{}", NULL, "c1");
	assert_string_equal(tu_file_content(log), "one\ntwo\n");
}

static void test_state_json(void **state)
{
	(void)state;
	char *text = lm_hook_state_json("c1", LM_STATUS_CREATING, 42, "/b", NULL);
	assert_non_null(text);
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	assert_non_null(o);
	assert_null(strchr(text, '\n'));
	assert_string_equal(json_string_value(json_object_get(o, "id")), "c1");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "creating");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), 42);
	assert_string_equal(json_string_value(json_object_get(o, "bundle")), "/b");
	assert_true(json_is_string(json_object_get(o, "ociVersion")));
	assert_null(json_object_get(o, "annotations"));
	json_decref(o);
	free(text);

	json_t *ann = json_pack("{s:s}", "k", "v");
	text = lm_hook_state_json("c1", LM_STATUS_STOPPED, 0, "/b", ann);
	o = json_loads(text, 0, &jerr);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "annotations"), "k")), "v");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "stopped");
	json_decref(o);
	json_decref(ann);
	free(text);
}

static void test_state_file_hooks_flag(void **state)
{
	(void)state;
	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	for (int flag = 0; flag < 2; flag++) {
		char id[] = "c1", bundle[] = "/b", rootfs[] = "/b/rootfs", created[] = "", cg[] = "/x";
		struct lm_state st = {.id = id, .bundle = bundle, .rootfs = rootfs, .created = created,
				      .cgroup_path = cg, .pid = 1, .has_hooks = flag};
		struct lm_error err;
		assert_ok(lm_state_write(dfd, &st, &err), err);
		struct lm_state back;
		assert_ok(lm_state_read(dfd, &back, &err), err);
		assert_int_equal(back.has_hooks, flag);
		lm_state_free(&back);
	}
	close(dfd);
}

int main(void)
{
	/* the runtime's callers may ignore SIGPIPE or block signals: the hook must not inherit that */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hook_gets_state_args_env_cwd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_without_args_gets_its_path_as_argv0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_gets_no_other_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_hook_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_hook_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_output_is_cut_to_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_kills_the_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_holding_the_pipe_does_not_hang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_stops_at_first_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_warn_keeps_going, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_file_hooks_flag, setup, teardown),
	};
	return cmocka_run_group_tests_name("hooks", tests, NULL, NULL);
}
