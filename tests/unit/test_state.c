/* Unit tests for the container state on disk (runtime/state.c): id
 * validation, the state directory, state.json round trips, process start
 * times and the derived status, the OCI state object and pid files.
 *
 * Each test works in a fresh /tmp/lm-state-XXXXXX.  Processes whose status is
 * checked are real children of the test (a sleeping one, a zombie, a reaped
 * one); start times are checked against an independent parse of
 * /proc/<pid>/stat, not against the module's own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "runtime/container.h"
#include "runtime/internal.h"
#include "testutil.h"

/* ---------------------------------------------------------------- fixture */

static char tmp[64];       /* /tmp/lm-state-XXXXXX */
static char sroot[128];    /* tmp/state: the state root, not created up front */
static pid_t children[8];  /* killed and reaped by the teardown */

static int setup(void **state)
{
	(void)state;
	umask(022);
	memset(children, 0, sizeof(children));
	if (tu_mkdtemp(tmp, sizeof(tmp), "state") < 0)
		return -1;
	snprintf(sroot, sizeof(sroot), "%s/state", tmp);
	return 0;
}

static void reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	*pid = 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
		reap(&children[i]);
	if (tmp[0])
		tu_rm_tree(tmp, 0);
	return 0;
}

static pid_t *track(pid_t pid)
{
	for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
		if (children[i] == 0) {
			children[i] = pid;
			return &children[i];
		}
	}
	fail_msg("too many children");
	abort(); /* not reached: fail_msg jumps out */
}

/* A child that sleeps until killed (and dies with the test). */
static pid_t *spawn_sleeper(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	return track(pid);
}

/* A child that has exited and is not reaped yet. */
static pid_t *spawn_zombie(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	return track(pid);
}

/* The pid of a child that has exited and been reaped. */
static pid_t reaped_pid(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

/* Independent parse of /proc/<pid>/stat: field (1-based) and the state letter. */
static bool proc_stat_field(pid_t pid, int field, char *out, size_t size, char *state_letter)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return false;
	p += 2; /* field 3 */
	if (state_letter)
		*state_letter = *p;
	char *save = NULL;
	int i = 3;
	for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++) {
		if (i == field) {
			snprintf(out, size, "%s", tok);
			return true;
		}
	}
	return false;
}

static unsigned long long ref_start_time(pid_t pid)
{
	char v[64];
	assert_true(proc_stat_field(pid, 22, v, sizeof(v), NULL));
	return strtoull(v, NULL, 10);
}

static char proc_state(pid_t pid)
{
	char v[64], st = 0;
	if (!proc_stat_field(pid, 3, v, sizeof(v), &st))
		return 0;
	return st;
}

/* A state directory with a written state for id; returns its fd. */
static int make_state(const char *id, const struct lm_state *st)
{
	struct lm_error err = { 0 };
	int dfd = -1;
	if (lm_state_dir_create(sroot, id, &dfd, &err) < 0)
		fail_msg("state dir %s: %s", id, err.msg);
	if (st && lm_state_write(dfd, st, &err) < 0)
		fail_msg("state write %s: %s", id, err.msg);
	return dfd;
}

static struct lm_state sample_state(pid_t pid, unsigned long long start)
{
	struct lm_state st = {
		.id = (char *)"c1",
		.bundle = (char *)"/run/bundle",
		.rootfs = (char *)"/run/bundle/rootfs",
		.created = (char *)"2024-05-01T12:34:56.789Z",
		.cgroup_path = (char *)"/lamina/c1",
		.pid = pid,
		.pid_start = start,
		.annotations = NULL,
		.has_userns = false,
	};
	return st;
}

/* ---------------------------------------------------------------- ids */

static void test_id_validate(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	const char *good[] = { "ok-1_2.3+x", "a", "A", "0", "...", ".a", "a..b", "-", "+" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (lm_id_validate(good[i], &err) != 0)
			fail_msg("\"%s\" rejected: %s", good[i], err.msg);
	}
	char longest[1026];
	memset(longest, 'a', 1024);
	longest[1024] = '\0';
	assert_int_equal(lm_id_validate(longest, &err), 0);

	const char *bad[] = { "", ".", "..", "a/b", "a b", "/", "../x", "a\nb", "a:b", "a\\b", "é",
			      "a*", "a\tb" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		if (lm_id_validate(bad[i], &err) >= 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(err.code, EINVAL);
		assert_contains(err.msg, "invalid container id");
	}
	longest[1024] = 'a';
	longest[1025] = '\0';
	memset(&err, 0, sizeof(err));
	assert_true(lm_id_validate(longest, &err) < 0);
	assert_int_equal(err.code, EINVAL);
	/* The reason must survive: a message that quotes the whole id is cut
	 * at LM_ERROR_MSG_MAX before it says what is wrong. */
	if (!strstr(err.msg, "1 to 1024"))
		fail_msg("the error for a 1025-character id has lost its reason (%zu chars, cut): \"%.50s...\"",
			 strlen(err.msg), err.msg);
}

/* ---------------------------------------------------------------- state directory */

static void test_state_dir_create_twice(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	int dfd = -1;
	/* The root is created (0700) when missing. */
	assert_int_equal(lm_state_dir_create(sroot, "c1", &dfd, &err), 0);
	assert_true(dfd >= 0);
	assert_true(fcntl(dfd, F_GETFD) & FD_CLOEXEC);
	struct stat st, dst;
	assert_int_equal(stat(sroot, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	char p[PATH_MAX];
	FMT(p, "%s/c1", sroot);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0711);
	assert_int_equal(fstat(dfd, &dst), 0);
	assert_true(st.st_ino == dst.st_ino);
	close(dfd);

	int dfd2 = -1;
	assert_true(lm_state_dir_create(sroot, "c1", &dfd2, &err) < 0);
	assert_int_equal(err.code, EEXIST);
	assert_contains(err.msg, "already exists");
	assert_contains(err.msg, "c1");
	assert_int_equal(dfd2, -1);

	/* Bad ids never touch the disk. */
	assert_true(lm_state_dir_create(sroot, "../evil", &dfd2, &err) < 0);
	assert_int_equal(err.code, EINVAL);
	FMT(p, "%s/evil", tmp);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(tu_count_entries(sroot), 1);
}

static void test_state_dir_open(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	int dfd = -1;
	/* No root at all. */
	assert_true(lm_state_dir_open(sroot, "c1", &dfd, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "does not exist");

	/* A directory without state.json: a create that never finished. */
	int cfd = make_state("c1", NULL);
	close(cfd);
	memset(&err, 0, sizeof(err));
	assert_true(lm_state_dir_open(sroot, "c1", &dfd, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "container \"c1\" does not exist");
	assert_int_equal(dfd, -1);

	/* No directory. */
	memset(&err, 0, sizeof(err));
	assert_true(lm_state_dir_open(sroot, "c2", &dfd, &err) < 0);
	assert_contains(err.msg, "container \"c2\" does not exist");

	/* Bad id. */
	memset(&err, 0, sizeof(err));
	assert_true(lm_state_dir_open(sroot, "..", &dfd, &err) < 0);
	assert_int_equal(err.code, EINVAL);

	/* A symlinked state directory is not followed. */
	char p[PATH_MAX], t[PATH_MAX];
	FMT(p, "%s/link", sroot);
	FMT(t, "%s/c1", sroot);
	assert_int_equal(symlink(t, p), 0);
	assert_true(lm_state_dir_open(sroot, "link", &dfd, &err) < 0);

	/* With a state file it opens. */
	struct lm_state st = sample_state(0, 0);
	cfd = make_state("c3", &st);
	close(cfd);
	memset(&err, 0, sizeof(err));
	if (lm_state_dir_open(sroot, "c3", &dfd, &err) < 0)
		fail_msg("open c3: %s", err.msg);
	assert_true(dfd >= 0);
	close(dfd);

	/* Remove: gone, and removing again or under a missing root is fine. */
	assert_int_equal(lm_state_dir_remove(sroot, "c3", &err), 0);
	FMT(p, "%s/c3", sroot);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(lm_state_dir_remove(sroot, "c3", &err), 0);
	FMT(p, "%s/nothing", tmp);
	assert_int_equal(lm_state_dir_remove(p, "c3", &err), 0);
}

/* ---------------------------------------------------------------- state.json */

static void test_state_round_trip(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	json_t *ann = json_pack("{s:s,s:s,s:s}", "org.example/key", "value with \"quotes\"", "empty", "",
				"unicode", "h\xc3\xa9llo");
	assert_non_null(ann);
	struct lm_state st = sample_state(4242, 123456789ULL);
	st.annotations = ann;
	st.has_userns = true;
	int dfd = make_state("c1", &st);

	struct lm_state got;
	if (lm_state_read(dfd, &got, &err) < 0)
		fail_msg("read: %s", err.msg);
	assert_string_equal(got.id, "c1");
	assert_string_equal(got.bundle, "/run/bundle");
	assert_string_equal(got.rootfs, "/run/bundle/rootfs");
	assert_string_equal(got.created, "2024-05-01T12:34:56.789Z");
	assert_string_equal(got.cgroup_path, "/lamina/c1");
	assert_int_equal(got.pid, 4242);
	assert_true(got.pid_start == 123456789ULL);
	assert_true(got.has_userns);
	assert_non_null(got.annotations);
	assert_true(json_equal(got.annotations, ann));
	lm_state_free(&got);
	assert_null(got.id);

	/* File mode and no temp file beside it. */
	char dir[PATH_MAX], p[PATH_MAX];
	FMT(dir, "%s/c1", sroot);
	FMT(p, "%s/state.json", dir);
	struct stat sb;
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(tu_count_entries(dir), 1);

	/* Rewritten without annotations and userns, large start time. */
	st.annotations = NULL;
	st.has_userns = false;
	st.pid_start = 18446744073709551ULL;
	assert_int_equal(lm_state_write(dfd, &st, &err), 0);
	assert_int_equal(lm_state_read(dfd, &got, &err), 0);
	assert_null(got.annotations);
	assert_false(got.has_userns);
	assert_true(got.pid_start == 18446744073709551ULL);
	lm_state_free(&got);
	assert_int_equal(tu_count_entries(dir), 1);
	json_decref(ann);
	close(dfd);
}

static void expect_corrupt(int dfd, const char *dir, const char *content, const char *needle)
{
	char p[PATH_MAX];
	FMT(p, "%s/state.json", dir);
	tu_put_file(p, content);
	struct lm_error err = { 0 };
	struct lm_state got;
	if (lm_state_read(dfd, &got, &err) >= 0) {
		lm_state_free(&got);
		fail_msg("state.json \"%.40s\" accepted", content);
	}
	assert_int_equal(err.code, EINVAL);
	assert_contains(err.msg, "state.json");
	assert_contains(err.msg, needle);
	/* The struct is safe to free after a failure. */
	lm_state_free(&got);
}

static void test_state_corrupt(void **state)
{
	(void)state;
	int dfd = make_state("c1", NULL);
	char dir[PATH_MAX];
	FMT(dir, "%s/c1", sroot);
	expect_corrupt(dfd, dir, "{\"id\": \"c1\", \"pid\": ", "corrupt");
	expect_corrupt(dfd, dir, "", "corrupt");
	expect_corrupt(dfd, dir, "[1, 2]", "corrupt");
	expect_corrupt(dfd, dir, "\"just a string\"", "corrupt");
	expect_corrupt(dfd, dir, "{} trailing", "corrupt");

	/* Oversized: refused by size, not parsed. */
	char p[PATH_MAX];
	FMT(p, "%s/state.json", dir);
	int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 << 20), 0);
	close(fd);
	struct lm_error err = { 0 };
	struct lm_state got;
	assert_true(lm_state_read(dfd, &got, &err) < 0);
	assert_int_equal(err.code, EFBIG);
	assert_contains(err.msg, "state.json");

	/* Missing. */
	assert_int_equal(unlink(p), 0);
	assert_true(lm_state_read(dfd, &got, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	close(dfd);
}

/* ---------------------------------------------------------------- start times */

static void test_pid_start_time(void **state)
{
	(void)state;
	unsigned long long self = lm_pid_start_time(getpid());
	assert_true(self > 0);
	assert_true(self == ref_start_time(getpid()));
	assert_true(lm_pid_start_time(0) == 0);
	assert_true(lm_pid_start_time(-1) == 0);

	pid_t *live = spawn_sleeper();
	unsigned long long t = lm_pid_start_time(*live);
	assert_true(t > 0);
	assert_true(t == ref_start_time(*live));
	assert_true(t >= self);

	/* A comm with spaces and parentheses does not shift the fields. */
	int pp[2];
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	pid_t odd = fork();
	assert_true(odd >= 0);
	if (odd == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, "a) b (c) 1 2 3");
		if (write(pp[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	pid_t *oddp = track(odd);
	close(pp[1]);
	char c;
	assert_int_equal(read(pp[0], &c, 1), 1);
	close(pp[0]);
	assert_true(lm_pid_start_time(*oddp) == ref_start_time(*oddp));
	assert_true(lm_pid_start_time(*oddp) > 0);
}

static void test_pid_start_time_gone(void **state)
{
	(void)state;
	pid_t gone = reaped_pid();
	assert_true(lm_pid_start_time(gone) == 0);

	pid_t *zombie = spawn_zombie();
	assert_int_equal(proc_state(*zombie), 'Z');
	assert_true(lm_pid_start_time(*zombie) == 0);
}

/* ---------------------------------------------------------------- status */

static void test_state_status(void **state)
{
	(void)state;
	pid_t *live = spawn_sleeper();
	unsigned long long start = lm_pid_start_time(*live);
	assert_true(start > 0);
	struct lm_state st = sample_state(*live, start);
	int dfd = make_state("c1", &st);
	char fifo[PATH_MAX];
	FMT(fifo, "%s/c1/exec.fifo", sroot);

	/* Live init, fifo present: created. */
	assert_int_equal(mkfifo(fifo, 0622), 0);
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_CREATED);
	/* Fifo gone: running. */
	assert_int_equal(unlink(fifo), 0);
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_RUNNING);
	/* A plain file named exec.fifo also counts. */
	tu_put_file(fifo, "");
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_CREATED);

	/* Same pid, other start time: a recycled pid is not our container. */
	st.pid_start = start + 1;
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_STOPPED);
	st.pid_start = start;

	/* No pid. */
	st.pid = 0;
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_STOPPED);
	st.pid = *live;

	/* Dead: stopped, fifo or not. */
	reap(live);
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_STOPPED);
	assert_int_equal(unlink(fifo), 0);
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_STOPPED);
	close(dfd);
}

/* An init that has exited but is not reaped yet is stopped. */
static void test_state_status_zombie(void **state)
{
	(void)state;
	int pp[2];
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(pp[1]);
		while (read(pp[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	pid_t *child = track(pid);
	close(pp[0]);
	unsigned long long start = lm_pid_start_time(*child);
	assert_true(start > 0);
	struct lm_state st = sample_state(*child, start);
	int dfd = make_state("c1", &st);
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_RUNNING);
	close(pp[1]); /* the child exits */
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)*child, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(proc_state(*child), 'Z');
	assert_int_equal(lm_state_status(&st, dfd), LM_STATUS_STOPPED);
	close(dfd);
}

/* A state whose recorded start time is 0 (the init was already gone when
 * create read it, or the field is missing from state.json) must not make a
 * dead or zombie pid look alive: 0 is also what lm_pid_start_time() returns
 * for "gone". */
static void test_state_status_unknown_start(void **state)
{
	(void)state;
	pid_t gone = reaped_pid();
	struct lm_state st = sample_state(gone, 0);
	int dfd = make_state("c1", &st);
	enum lm_status s_gone = lm_state_status(&st, dfd);

	pid_t *zombie = spawn_zombie();
	st.pid = *zombie;
	enum lm_status s_zombie = lm_state_status(&st, dfd);
	close(dfd);
	if (s_gone != LM_STATUS_STOPPED || s_zombie != LM_STATUS_STOPPED)
		fail_msg("pid_start 0: reaped pid is \"%s\", zombie pid is \"%s\"; want \"stopped\" for both",
			 lm_status_name(s_gone), lm_status_name(s_zombie));
}

/* ---------------------------------------------------------------- OCI state object */

static void check_common_fields(json_t *o, const char *status)
{
	assert_non_null(o);
	assert_true(json_is_object(o));
	const char *ver = json_string_value(json_object_get(o, "ociVersion"));
	assert_non_null(ver);
	assert_true(strncmp(ver, "1.", 2) == 0);
	assert_string_equal(json_string_value(json_object_get(o, "id")), "c1");
	assert_string_equal(json_string_value(json_object_get(o, "status")), status);
	assert_string_equal(json_string_value(json_object_get(o, "bundle")), "/run/bundle");
	assert_string_equal(json_string_value(json_object_get(o, "rootfs")), "/run/bundle/rootfs");
	assert_string_equal(json_string_value(json_object_get(o, "created")), "2024-05-01T12:34:56.789Z");
	assert_true(json_is_string(json_object_get(o, "owner")));
	assert_true(json_is_integer(json_object_get(o, "pid")));
}

static void test_state_to_json(void **state)
{
	(void)state;
	json_t *ann = json_pack("{s:s}", "org.example/a", "b");
	struct lm_state st = sample_state(4242, 99);
	st.annotations = ann;

	json_t *o = lm_state_to_json(&st, LM_STATUS_CREATED);
	check_common_fields(o, "created");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), 4242);
	assert_true(json_equal(json_object_get(o, "annotations"), ann));
	json_decref(o);

	o = lm_state_to_json(&st, LM_STATUS_RUNNING);
	check_common_fields(o, "running");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), 4242);
	json_decref(o);

	/* Stopped: pid 0 (the recorded one may belong to someone else by now). */
	o = lm_state_to_json(&st, LM_STATUS_STOPPED);
	check_common_fields(o, "stopped");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), 0);
	/* Internal fields stay internal. */
	assert_null(json_object_get(o, "pid_start"));
	assert_null(json_object_get(o, "cgroup_path"));
	json_decref(o);

	/* No annotations: none in the object. */
	st.annotations = NULL;
	o = lm_state_to_json(&st, LM_STATUS_CREATING);
	check_common_fields(o, "creating");
	assert_null(json_object_get(o, "annotations"));
	json_decref(o);

	/* The object holds its own reference to the annotations. */
	st.annotations = ann;
	o = lm_state_to_json(&st, LM_STATUS_RUNNING);
	json_decref(ann);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "annotations"),
							      "org.example/a")),
			    "b");
	json_decref(o);

	assert_string_equal(lm_status_name(LM_STATUS_CREATING), "creating");
	assert_string_equal(lm_status_name(LM_STATUS_STOPPED), "stopped");
}

/* ---------------------------------------------------------------- pid file */

static void test_pid_file_write(void **state)
{
	(void)state;
	struct lm_error err = { 0 };
	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(cwd >= 0);
	assert_int_equal(chdir(tmp), 0);

	/* Relative: from the cwd. */
	int r = lm_pid_file_write("pid.txt", 12345, &err);
	char p[PATH_MAX];
	FMT(p, "%s/pid.txt", tmp);
	bool ok = r == 0 && access(p, F_OK) == 0;
	assert_int_equal(fchdir(cwd), 0);
	close(cwd);
	if (!ok)
		fail_msg("relative pid file: %s", err.msg);
	assert_string_equal(tu_file_content(p), "12345");

	/* Overwritten; absolute path; nothing else left in the directory. */
	assert_int_equal(lm_pid_file_write(p, 678, &err), 0);
	assert_string_equal(tu_file_content(p), "678");
	assert_int_equal(tu_count_entries(tmp), 1);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* A directory that does not exist. */
	FMT(p, "%s/nodir/pid", tmp);
	memset(&err, 0, sizeof(err));
	assert_true(lm_pid_file_write(p, 1, &err) < 0);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.msg, "pid file");
	assert_int_equal(tu_count_entries(tmp), 1);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_id_validate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_create_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_start_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_start_time_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_status_zombie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_status_unknown_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_to_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_file_write, setup, teardown),
	};
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
